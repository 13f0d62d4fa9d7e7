"""The zbud layer: an allocator that stores at most two objects ("buddies") in each page.

Kernel counterpart: ``mm/zbud.c`` (v5.x, removed in v6.15).

A page is 64 chunks of 64 bytes; the first chunk is the header. The FIRST buddy starts right after
the header, the LAST buddy ends at the end of the page. ``zbud_alloc`` rounds the size up to
chunks, takes the first page on the unbuddied list with exactly that many free chunks or more
(first fit: lists are indexed by free chunks, searched upwards), else a new page. Objects above
``PAGE_SIZE - 2 * CHUNK_SIZE`` (3968 bytes) are refused with ``-ENOSPC``, so a page always has a
chunk left. Mapping returns the object's bytes in place and holds no lock: a caller may sleep
while mapped (``sleep_mapped``). The density is at most two objects per page.

The header's ``struct zbud_header`` (list links, chunk counts) is kept in Python objects; its
chunk is reserved in the page but not written. Handles are opaque (see `zswap._errors`); the
kernel's handle is the object's address. Not modelled: the LRU and ``zbud_reclaim_page``
(eviction went with ``zpool_shrink`` in v6.5).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Any

from acomp import sched
from acomp._constants import PAGE_SIZE
from zswap._freelists import BuddyObj, BuddyPool, FreeLists
from zswap.page import __GFP_DIRECT_RECLAIM, PAGE_SHIFT, PhysMem, default_memory
from zswap.zpool import buddy_zpool_driver, zpool_register_driver, zpool_unregister_driver

__all__ = (
    "CHUNK_SHIFT",
    "CHUNK_SIZE",
    "NCHUNKS",
    "NCHUNKS_ORDER",
    "ZHDR_SIZE_ALIGNED",
    "ZbudPool",
    "ZbudStats",
    "module_exit",
    "module_init",
    "zbud_alloc",
    "zbud_create_pool",
    "zbud_destroy_pool",
    "zbud_free",
    "zbud_get_pool_size",
    "zbud_map",
    "zbud_stats",
    "zbud_unmap",
    "zbud_zpool_driver",
)

NCHUNKS_ORDER = 6
CHUNK_SHIFT = PAGE_SHIFT - NCHUNKS_ORDER
#: 64 bytes.
CHUNK_SIZE = 1 << CHUNK_SHIFT
#: The header takes one chunk.
ZHDR_SIZE_ALIGNED = CHUNK_SIZE
#: Chunks for the buddies: 63.
NCHUNKS = (PAGE_SIZE - ZHDR_SIZE_ALIGNED) >> CHUNK_SHIFT
#: The largest object: 3968 bytes.
ZBUD_MAX_SIZE = PAGE_SIZE - ZHDR_SIZE_ALIGNED - CHUNK_SIZE

FIRST, LAST = 0, 1


class _Page:
    """``struct zbud_header`` of one page (kept out of the page itself)."""

    __slots__ = ("addr", "first_chunks", "last_chunks", "pfn", "ub")

    def __init__(self, pfn: int) -> None:
        self.pfn = pfn
        self.addr = pfn << PAGE_SHIFT
        self.first_chunks = 0
        self.last_chunks = 0
        self.ub: tuple[FreeLists[Any], int] | None = None  # the unbuddied list it is on


class _Obj(BuddyObj):
    __slots__ = ("addr",)
    page: _Page

    def __init__(self, page: _Page, bud: int, addr: int, size: int) -> None:
        super().__init__(page, bud, size)
        self.addr = addr


class ZbudPool(BuddyPool[_Obj]):
    """``struct zbud_pool``: unbuddied lists by free chunks, the buddied list, the page count."""

    kind = "zbud"
    __slots__ = ("buddied", "unbuddied")

    def __init__(self, name: str, mem: PhysMem) -> None:
        super().__init__(name, mem)
        self.unbuddied: FreeLists[_Page] = FreeLists(NCHUNKS)
        self.buddied: dict[_Page, None] = {}


@dataclass(frozen=True)
class ZbudStats:
    """Pages and objects of a zbud pool; `unbuddied` counts pages by free chunks."""

    pages: int
    objects: int
    buddied: int
    unbuddied: tuple[int, ...]


def zbud_create_pool(name: str = "zbud", gfp: int = 0, *, mem: PhysMem | None = None) -> ZbudPool:
    if gfp & __GFP_DIRECT_RECLAIM:
        sched.might_sleep()  # kzalloc(sizeof(*pool), gfp)
    return ZbudPool(name, mem or default_memory())


def zbud_destroy_pool(pool: ZbudPool) -> None:
    """Free the pool and every page it still holds."""
    pool.destroying()
    for page in [*pool.unbuddied.pages(), *pool.buddied]:
        pool.memory.free_page(page.pfn)
    pool.unbuddied.clear()
    pool.buddied.clear()
    pool.destroyed()


def zbud_alloc(pool: ZbudPool, size: int, gfp: int) -> tuple[int, int]:
    """``(0, handle)``; ``-EINVAL`` for size 0 or ``__GFP_HIGHMEM``, ``-ENOSPC`` above 3968
    bytes, ``-ENOMEM`` when no page."""
    ret = pool.alloc_refused(size, gfp, ZBUD_MAX_SIZE)
    if ret:
        return ret, 0
    chunks = (size + CHUNK_SIZE - 1) >> CHUNK_SHIFT
    # First fit: the first unbuddied list, from `chunks` free chunks up, that has a page.
    page = pool.unbuddied.first_fit(chunks)
    if page is None:
        pfn = pool.memory.alloc_page(gfp)
        if pfn is None:
            return -errno.ENOMEM, 0
        page = _Page(pfn)
        pool.pages_nr += 1
    if page.first_chunks == 0:
        page.first_chunks = chunks
        bud = FIRST
        addr = page.addr + ZHDR_SIZE_ALIGNED
    else:
        page.last_chunks = chunks
        bud = LAST
        addr = page.addr + PAGE_SIZE - (chunks << CHUNK_SHIFT)
    if page.first_chunks == 0 or page.last_chunks == 0:
        pool.unbuddied.add(NCHUNKS - page.first_chunks - page.last_chunks, page)
    else:
        pool.buddied[page] = None
    return 0, pool.add(_Obj(page, bud, addr, size))


def zbud_free(pool: ZbudPool, handle: int) -> None:
    obj = pool.remove(handle)
    page = obj.page
    if obj.bud == FIRST:
        page.first_chunks = 0
    else:
        page.last_chunks = 0
    if page.ub is None:
        del pool.buddied[page]
    else:
        FreeLists.remove(page)
    if page.first_chunks == 0 and page.last_chunks == 0:
        pool.memory.free_page(page.pfn)
        pool.pages_nr -= 1
    else:
        pool.unbuddied.add(NCHUNKS - page.first_chunks - page.last_chunks, page)


def zbud_map(pool: ZbudPool, handle: int, mm: int = 0) -> memoryview:
    """The object's bytes in place (read-only for ``ZPOOL_MM_RO``); no lock is taken."""
    obj = pool.lookup_map(handle, mm)
    return obj.map(pool.mem, obj.addr, mm)


def zbud_unmap(pool: ZbudPool, handle: int) -> None:
    """End the mapping; when the last one ends, the views it handed out are released."""
    pool.lookup("zbud_unmap", handle).unmap("zbud_unmap", handle)


def zbud_get_pool_size(pool: ZbudPool) -> int:
    """Pages in the pool."""
    return pool.pages_nr


def zbud_stats(pool: ZbudPool) -> ZbudStats:
    return ZbudStats(
        pages=pool.pages_nr,
        objects=len(pool._handles),
        buddied=len(pool.buddied),
        unbuddied=pool.unbuddied.counts(),
    )


#: ``zbud_zpool_driver``.
zbud_zpool_driver = buddy_zpool_driver(
    "zbud", create_pool=zbud_create_pool, destroy=zbud_destroy_pool, malloc=zbud_alloc,
    free=zbud_free, map=zbud_map, unmap=zbud_unmap,
)


def module_init() -> int:
    """``init_zbud``: register the zpool driver (``MODULE_ALIAS("zpool-zbud")``)."""
    zpool_register_driver(zbud_zpool_driver)
    return 0


def module_exit() -> int:
    return zpool_unregister_driver(zbud_zpool_driver)
