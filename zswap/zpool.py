"""The zpool layer: one API over the compressed-memory allocators, backends loaded on demand.

Kernel counterpart: ``mm/zpool.c`` and ``include/linux/zpool.h`` as of v5.12-v6.14 (``map``,
``unmap``, ``sleep_mapped``), plus the v6.15 object API (``obj_read_begin``, ``obj_read_end``,
``obj_write``) where a backend offers it.

A backend is a `ZpoolDriver` (``struct zpool_driver``): a table of operations on its own pool
type, registered with `zpool_register_driver`. `zpool_create_pool` finds the driver by type, and
when none is registered it loads the backend module as the kernel's ``request_module("zpool-%s")``
does (`request_module`); it returns ``None`` on failure, as the kernel returns NULL. The other
calls pass straight through to the driver, with the kernel's return conventions: ``int`` results
are 0 or a negative errno; `zpool_malloc` returns ``(ret, handle)`` for the kernel's out parameter.

The mapping rules come from the backend: `zpool_can_sleep_mapped` tells whether a caller may
sleep between `zpool_map_handle` and `zpool_unmap_handle` (zbud and z3fold: yes; zsmalloc: no,
preemption is disabled while a handle is mapped).
"""

from __future__ import annotations

import errno
import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from acomp import sched
from zswap._errors import UnsupportedOperation
from zswap.page import __GFP_DIRECT_RECLAIM, PAGE_SHIFT, PhysMem

__all__ = (
    "ZPOOL_MM_DEFAULT",
    "ZPOOL_MM_RO",
    "ZPOOL_MM_RW",
    "ZPOOL_MM_WO",
    "Zpool",
    "ZpoolDriver",
    "buddy_zpool_driver",
    "request_module",
    "zpool_can_sleep_mapped",
    "zpool_create_pool",
    "zpool_destroy_pool",
    "zpool_free",
    "zpool_get_total_pages",
    "zpool_get_total_size",
    "zpool_get_type",
    "zpool_has_pool",
    "zpool_malloc",
    "zpool_malloc_support_movable",
    "zpool_map_handle",
    "zpool_obj_read_begin",
    "zpool_obj_read_end",
    "zpool_obj_write",
    "zpool_register_driver",
    "zpool_unmap_handle",
    "zpool_unregister_driver",
)

log = logging.getLogger("zswap.zpool")

#: ``enum zpool_mapmode``: read and write (the default).
ZPOOL_MM_RW = 0
#: Read only: the view is read-only, and zsmalloc skips the copy back at unmap.
ZPOOL_MM_RO = 1
#: Write only: zsmalloc skips the copy in of an object that spans two pages.
ZPOOL_MM_WO = 2
ZPOOL_MM_DEFAULT = ZPOOL_MM_RW

#: A buffer the caller passes in.
Buffer = bytes | bytearray | memoryview
#: A buffer the callee writes into.
WritableBuffer = bytearray | memoryview


@dataclass(eq=False)
class ZpoolDriver:
    """``struct zpool_driver``: a backend's operations, each taking the backend's own pool.

    ``create(name, gfp, mem, **options)`` returns the backend pool or None; ``malloc(pool,
    size, gfp)`` returns ``(ret, handle)``; ``obj_*`` are None where the backend lacks them.
    """

    type: str
    create: Callable[..., Any]
    destroy: Callable[[Any], None]
    malloc: Callable[[Any, int, int], tuple[int, int]]
    free: Callable[[Any, int], None]
    map: Callable[[Any, int, int], memoryview]
    unmap: Callable[[Any, int], None]
    total_size: Callable[[Any], int]
    sleep_mapped: bool = False
    malloc_support_movable: bool = False
    obj_read_begin: Callable[[Any, int, WritableBuffer | None], memoryview] | None = None
    obj_read_end: Callable[[Any, int, memoryview], None] | None = None
    obj_write: Callable[[Any, int, Buffer, int], None] | None = None
    #: Pools of this driver alive (``atomic_t refcount``).
    refcount: int = 0


class Zpool:
    """``struct zpool``: a driver and the backend pool it made."""

    __slots__ = ("driver", "name", "pool")

    def __init__(self, driver: ZpoolDriver, pool: Any, name: str) -> None:
        self.driver = driver
        self.pool = pool
        self.name = name

    def __repr__(self) -> str:
        return f"<Zpool {self.driver.type} {self.name!r}>"


def buddy_zpool_driver(
    type: str,
    *,
    create_pool: Callable[..., Any],
    destroy: Callable[[Any], None],
    malloc: Callable[[Any, int, int], tuple[int, int]],
    free: Callable[[Any, int], None],
    map: Callable[[Any, int, int], memoryview],
    unmap: Callable[[Any, int], None],
) -> ZpoolDriver:
    """The ``zpool_driver`` of a buddy allocator (zbud, z3fold): one declaration for both.

    Such a backend takes no pool options, counts its size in whole pages (``pool.pages_nr``),
    maps objects in place so a caller may sleep while mapped, and has no movable pages; it has
    none of the v6.15 object calls (it was removed before them).
    """

    def create(name: str, gfp: int, mem: PhysMem | None, **options: Any) -> Any:
        if options:
            raise TypeError(f"{type} takes no options: {sorted(options)}")
        return create_pool(name, gfp, mem=mem)

    def total_size(pool: Any) -> int:
        return int(pool.pages_nr) << PAGE_SHIFT

    return ZpoolDriver(type=type, create=create, destroy=destroy, malloc=malloc, free=free,
                       map=map, unmap=unmap, total_size=total_size, sleep_mapped=True,
                       malloc_support_movable=False)


_drivers: list[ZpoolDriver] = []

#: ``MODULE_ALIAS("zpool-<type>")`` of the backends this package ships: alias -> module.
_module_aliases: dict[str, str] = {
    "zpool-zsmalloc": "zswap.zsmalloc",
    "zpool-zbud": "zswap.zbud",
    "zpool-z3fold": "zswap.z3fold",
}


def request_module(alias: str) -> int:
    """Load the backend module that declares `alias` and run its ``module_init``.

    0 when it loaded (now or before), ``-ENOENT`` when no module has that alias, else the
    init's negative errno. A backend module registers its driver in ``module_init`` and
    unregisters it in ``module_exit``, so that unloading and reloading behave as in the kernel.
    """
    modname = _module_aliases.get(alias)
    if modname is None:
        return -errno.ENOENT
    try:
        mod = importlib.import_module(modname)
    except ImportError as e:
        log.error("request_module %s: %s", alias, e)
        return -errno.ENOENT
    init: Callable[[], int] = mod.module_init
    return init()


def zpool_register_driver(driver: ZpoolDriver) -> None:
    """Register a backend (a second registration of the same driver is ignored)."""
    if any(d is driver for d in _drivers):
        return
    driver.refcount = 0
    _drivers.append(driver)


def zpool_unregister_driver(driver: ZpoolDriver) -> int:
    """Unregister a backend: 0, or ``-EBUSY`` while pools of it exist."""
    if driver.refcount < 0:
        log.warning("zpool driver %s: refcount %d", driver.type, driver.refcount)
    if driver.refcount > 0:
        return -errno.EBUSY
    for i, d in enumerate(_drivers):
        if d is driver:
            del _drivers[i]
            break
    return 0


def _get_driver(type: str) -> ZpoolDriver | None:
    for d in _drivers:
        if d.type == type:
            d.refcount += 1
            return d
    return None


def _put_driver(driver: ZpoolDriver) -> None:
    driver.refcount -= 1


def zpool_has_pool(type: str) -> bool:
    """Whether a backend of `type` is available, loading it if need be."""
    driver = _get_driver(type)
    if driver is None:
        request_module(f"zpool-{type}")
        driver = _get_driver(type)
    if driver is None:
        return False
    _put_driver(driver)
    return True


def zpool_create_pool(
    type: str, name: str, gfp: int, *, mem: PhysMem | None = None, **options: Any
) -> Zpool | None:
    """Create a pool of backend `type` named `name`; None when there is no such backend or the
    backend could not create one.

    `mem` is the memory its pages come from (default: `zswap.page.default_memory`); `options`
    go to the backend (zsmalloc: ``chain_size``, ``fullness``, ``sleepable_reads``).
    """
    driver = _get_driver(type)
    if driver is None:
        request_module(f"zpool-{type}")
        driver = _get_driver(type)
    if driver is None:
        log.error("no driver for type %s", type)
        return None
    if gfp & __GFP_DIRECT_RECLAIM:
        sched.might_sleep()  # kmalloc(sizeof(*zpool), gfp)
    pool = driver.create(name, gfp, mem, **options)
    if pool is None:
        log.error("couldn't create %s pool", type)
        _put_driver(driver)
        return None
    return Zpool(driver, pool, name)


def zpool_destroy_pool(zpool: Zpool) -> None:
    """Destroy the pool; its handles become invalid."""
    zpool.driver.destroy(zpool.pool)
    _put_driver(zpool.driver)


def zpool_get_type(zpool: Zpool) -> str:
    """The pool's driver name, e.g. ``zsmalloc``."""
    return zpool.driver.type


def zpool_malloc_support_movable(zpool: Zpool) -> bool:
    """Whether malloc may be given ``__GFP_HIGHMEM | __GFP_MOVABLE`` (zsmalloc only)."""
    return zpool.driver.malloc_support_movable


def zpool_can_sleep_mapped(zpool: Zpool) -> bool:
    """Whether the caller may sleep while a handle is mapped (v5.12+)."""
    return zpool.driver.sleep_mapped


def zpool_malloc(zpool: Zpool, size: int, gfp: int) -> tuple[int, int]:
    """Allocate `size` bytes: ``(0, handle)``, or ``(-errno, 0)``.

    ``-EINVAL`` for size 0 (and for ``__GFP_HIGHMEM`` on zbud/z3fold), ``-ENOSPC`` when the
    size is above what the backend stores, ``-ENOMEM`` when memory is exhausted.
    """
    return zpool.driver.malloc(zpool.pool, size, gfp)


def zpool_free(zpool: Zpool, handle: int) -> None:
    """Free the object at `handle`."""
    zpool.driver.free(zpool.pool, handle)


def zpool_map_handle(zpool: Zpool, handle: int, mm: int = ZPOOL_MM_RW) -> memoryview:
    """Map `handle`: a view of exactly the bytes allocated, read-only for ``ZPOOL_MM_RO``.

    The view is released by `zpool_unmap_handle` (using it afterwards raises ValueError). With
    zsmalloc, preemption stays disabled until then and at most one handle may be mapped per CPU.
    """
    return zpool.driver.map(zpool.pool, handle, mm)


def zpool_unmap_handle(zpool: Zpool, handle: int) -> None:
    """Unmap a handle `zpool_map_handle` mapped (preemption is enabled again on zsmalloc)."""
    zpool.driver.unmap(zpool.pool, handle)


def zpool_get_total_size(zpool: Zpool) -> int:
    """Bytes of pages the pool holds (``zpool_get_total_size``, up to v6.10)."""
    return zpool.driver.total_size(zpool.pool)


def zpool_get_total_pages(zpool: Zpool) -> int:
    """Pages the pool holds (``zpool_get_total_pages``, v6.11+)."""
    return zpool.driver.total_size(zpool.pool) >> PAGE_SHIFT


def zpool_obj_read_begin(
    zpool: Zpool, handle: int, local_copy: WritableBuffer | None
) -> memoryview:
    """v6.15: a read-only view of the object, sleepable until `zpool_obj_read_end`.

    An object that spans two pages is copied into `local_copy` (at least the size class's bytes)
    and the view points there. Raises `UnsupportedOperation` where the backend lacks it.
    """
    op = zpool.driver.obj_read_begin
    if op is None:
        raise UnsupportedOperation(f"{zpool.driver.type} has no obj_read_begin", handle)
    return op(zpool.pool, handle, local_copy)


def zpool_obj_read_end(zpool: Zpool, handle: int, mem: memoryview) -> None:
    """End a read `zpool_obj_read_begin` started (v6.16+); `UnsupportedOperation` on a zpool without
    it."""
    op = zpool.driver.obj_read_end
    if op is None:
        raise UnsupportedOperation(f"{zpool.driver.type} has no obj_read_end", handle)
    op(zpool.pool, handle, mem)


def zpool_obj_write(zpool: Zpool, handle: int, buf: Buffer, length: int) -> None:
    """v6.15: copy the first `length` bytes of `buf` into the object."""
    op = zpool.driver.obj_write
    if op is None:
        raise UnsupportedOperation(f"{zpool.driver.type} has no obj_write", handle)
    op(zpool.pool, handle, buf, length)
