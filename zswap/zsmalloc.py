"""The zsmalloc layer: a size-class allocator that packs objects into chains of order-0 pages.

Kernel counterpart: ``mm/zsmalloc.c`` and ``include/linux/zsmalloc.h``. Locking and mapping are
v5.11's (a bit spin lock on the handle pins the object, the zspage's rwlock holds off
migration, the per-CPU mapping area is taken with ``get_cpu_var``); the zspage chain length,
the rule that picks each class's chain and the fullness groups are options for v6.3's
(``chain_size=8``, ``fullness="ratio"``, which brings ``calculate_zspage_chain_size``;
`pool_options` gives each version's); ``sleepable_reads=True`` adds v6.15's
``zs_obj_read_begin``/``zs_obj_read_end``/``zs_obj_write``, whose reads keep preemption
enabled, and v7.0's ``zs_obj_read_sg_begin``/``zs_obj_read_sg_end``.

Layout, as in the kernel:

- 255 size classes, 32 to 4096 bytes in steps of 16. Each class chains the 1..`chain_size` pages
  that use memory best into a *zspage* (before v6.3 the best used percentage, since the fewest
  bytes left over, a power-of-two class in one page); classes with the same (pages, objects)
  per zspage are merged into the largest of them. A class with one object in one page is *huge*.
- ``zs_malloc`` adds the 8-byte handle header (``ZS_HANDLE_SIZE``) to the size. In a non-huge
  class the first word of an allocated object holds ``handle | OBJ_ALLOCATED_TAG`` and that of a
  free one the index of the next free object (``<< OBJ_TAG_BITS``): both live in page memory,
  and compaction finds live objects by reading them. Huge objects have no header.
- Objects are packed back to back across the pages of a zspage, so an object may span two pages
  that are not contiguous in memory.
- Zspages sit in fullness groups; allocation takes the fullest non-full zspage, an emptied zspage
  is freed at once, and `zs_compact` moves objects from the emptiest zspages into the fullest.

Mapping (`zs_map_object`, v5.11's): the handle's pin bit is taken (``bit_spin_lock``), the
zspage's ``zspage->lock`` read-locked (``migrate_read_lock``), then this CPU's mapping area
(``get_cpu_var``): preemption is disabled until `zs_unmap_object`, and of the three only the
rwlock is a lock lockdep lists. An object inside
one page is mapped directly; one that spans two pages is copied into the area's buffer, one
``PAGE_SIZE`` buffer per CPU shared by every pool, and the view points into that buffer
(``ZS_MM_WO`` skips the copy in, ``ZS_MM_RO`` the copy back). A task that sleeps while mapped
therefore gets the kernel's splat, and if it carries on (``sched.config.atomic_sleep = "warn"``)
another task on the same CPU can overwrite the buffer under it, as in the kernel.

Handles are opaque integers, never reused within a pool; see `zswap._errors` for the errors.
Not modelled: page migration (``zs_page_migrate``), deferred freeing, the shrinker (call
`zs_compact`), per-class spin locks (the allocator is used from one thread or event loop).
"""

from __future__ import annotations

import contextvars
import errno
import functools
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from acomp import sched
from acomp._constants import PAGE_SIZE
from acomp.scatterlist import Scatterlist, sg_init_table, sg_set_buf
from zswap._errors import (
    HANDLE_STRIDE,
    HandleMappedError,
    NotMappedError,
    PoolCorruptedError,
    UnsupportedOperation,
    ZpoolError,
    bad_handle,
    new_handle_base,
    report,
)
from zswap.page import __GFP_DIRECT_RECLAIM, PAGE_SHIFT, PhysMem, default_memory
from zswap.zpool import ZpoolDriver, zpool_register_driver, zpool_unregister_driver

__all__ = (
    "CLASS_BITS",
    "HANDLE_PIN_BIT",
    "OBJ_ALLOCATED_TAG",
    "OBJ_TAG_BITS",
    "ZS_ALIGN",
    "ZS_HANDLE_SIZE",
    "ZS_MAX_ALLOC_SIZE",
    "ZS_MIN_ALLOC_SIZE",
    "ZS_MM_RO",
    "ZS_MM_RW",
    "ZS_MM_WO",
    "ZS_SIZE_CLASSES",
    "ZS_SIZE_CLASS_DELTA",
    "PoolCorruptedError",
    "ZsClassStats",
    "ZsObjInfo",
    "ZsPool",
    "ZsPoolStats",
    "module_exit",
    "module_init",
    "pool_options",
    "reset_mapping_areas",
    "zs_class_stats",
    "zs_compact",
    "zs_create_pool",
    "zs_destroy_pool",
    "zs_free",
    "zs_get_total_pages",
    "zs_huge_class_size",
    "zs_lookup_class_index",
    "zs_malloc",
    "zs_map_object",
    "zs_obj_info",
    "zs_obj_read_begin",
    "zs_obj_read_end",
    "zs_obj_read_sg_begin",
    "zs_obj_read_sg_end",
    "zs_obj_write",
    "zs_pool_stats",
    "zs_stats_classes",
    "zs_unmap_object",
    "zs_zpool_driver",
)

log = logging.getLogger("zswap.zsmalloc")

#: Object alignment inside a zspage.
ZS_ALIGN = 8
#: Bytes of the handle header at the start of a non-huge object.
ZS_HANDLE_SIZE = 8
#: Low bit of an object's first word: set in an allocated object's header.
OBJ_ALLOCATED_TAG = 1
OBJ_TAG_BITS = 1
#: Bit of the handle word that `zs_map_object` locks to pin the object (v5.10).
HANDLE_PIN_BIT = 0
CLASS_BITS = 8
#: Smallest class size (``MAX(32, ...)`` is 32 with 4 KiB pages on 64-bit).
ZS_MIN_ALLOC_SIZE = 32
#: Largest allocation: one page.
ZS_MAX_ALLOC_SIZE = PAGE_SIZE
#: Distance between class sizes: 16 bytes.
ZS_SIZE_CLASS_DELTA = PAGE_SIZE >> CLASS_BITS
#: 255 classes: 32, 48, ..., 4096.
ZS_SIZE_CLASSES = -(-(ZS_MAX_ALLOC_SIZE - ZS_MIN_ALLOC_SIZE) // ZS_SIZE_CLASS_DELTA) + 1

#: ``enum zs_mapmode`` (the same values as ``enum zpool_mapmode``).
ZS_MM_RW = 0
ZS_MM_RO = 1
ZS_MM_WO = 2

# Fullness groups before v6.3 (fullness="legacy") ...
ZS_EMPTY, ZS_ALMOST_EMPTY, ZS_ALMOST_FULL, ZS_FULL = 0, 1, 2, 3
# ... and since v6.3 (fullness="ratio"): group = used% // 10 + 1, with 0 and 100% apart.
ZS_INUSE_RATIO_0, ZS_INUSE_RATIO_10, ZS_INUSE_RATIO_99, ZS_INUSE_RATIO_100 = 0, 1, 10, 11

_U64 = struct.Struct("<Q")
_unpack_u64 = _U64.unpack_from
_pack_u64 = _U64.pack_into
_U64_MASK = (1 << 64) - 1
_LAST_LINK = (-1 << OBJ_TAG_BITS) & _U64_MASK
_PAGE_MASK = PAGE_SIZE - 1

Fullness = Literal["legacy", "ratio"]
#: How a class's chain length is chosen: ``"v5"`` (``get_pages_per_zspage``, before v6.3) or
#: ``"v6.3"`` (``calculate_zspage_chain_size``).
ChainRule = Literal["v5", "v6.3"]
Mode = Literal["raise", "warn", "off"]


# --------------------------------------------------------------------------------------------
# Geometry


def _pages_per_zspage(class_size: int, chain_size: int) -> int:
    """Before v6.3, ``get_pages_per_zspage``: the chain length (1..chain_size) with the best
    used percentage (integer percent: the first of equal percentages wins)."""
    best, best_pc = 1, 0
    for i in range(1, chain_size + 1):
        zspage_size = i * PAGE_SIZE
        used_pc = (zspage_size - zspage_size % class_size) * 100 // zspage_size
        if used_pc > best_pc:
            best, best_pc = i, used_pc
    return best


def _zspage_chain_size(class_size: int, chain_size: int) -> int:
    """v6.3+ ``calculate_zspage_chain_size``: a power-of-two class wastes nothing in one page;
    otherwise the chain length (1..chain_size) that leaves the fewest bytes unused (the first
    of equal ones wins)."""
    if class_size & (class_size - 1) == 0:
        return 1
    best, min_waste = 1, PAGE_SIZE * chain_size
    for i in range(1, chain_size + 1):
        waste = i * PAGE_SIZE % class_size
        if waste < min_waste:
            best, min_waste = i, waste
    return best


_CHAIN_RULES: dict[str, Callable[[int, int], int]] = {
    "v5": _pages_per_zspage, "v6.3": _zspage_chain_size}


@functools.cache
def _geometry(chain_size: int, rule: ChainRule = "v5"
              ) -> tuple[tuple[tuple[int, int, int, int], ...], int]:
    """Per class index: (index of the class serving it, size, pages, objects); huge_class_size
    (``zs_create_pool``'s loop from the largest class down, merging equal geometries)."""
    pages_of = _CHAIN_RULES[rule]
    out: list[tuple[int, int, int, int]] = [(0, 0, 0, 0)] * ZS_SIZE_CLASSES
    prev: tuple[int, int, int, int] | None = None
    huge_class_size = 0
    for i in range(ZS_SIZE_CLASSES - 1, -1, -1):
        size = min(ZS_MIN_ALLOC_SIZE + i * ZS_SIZE_CLASS_DELTA, ZS_MAX_ALLOC_SIZE)
        ppz = pages_of(size, chain_size)
        opz = ppz * PAGE_SIZE // size
        if ppz != 1 and opz != 1 and not huge_class_size:
            huge_class_size = size - (ZS_HANDLE_SIZE - 1)
        if prev is not None and prev[2] == ppz and prev[3] == opz:
            out[i] = prev
            continue
        prev = (i, size, ppz, opz)
        out[i] = prev
    return tuple(out), huge_class_size


def _size_class_index(size: int) -> int:
    """``get_size_class_index`` (size includes the handle header)."""
    idx = 0
    if size > ZS_MIN_ALLOC_SIZE:
        idx = -(-(size - ZS_MIN_ALLOC_SIZE) // ZS_SIZE_CLASS_DELTA)
    return min(ZS_SIZE_CLASSES - 1, idx)


# --------------------------------------------------------------------------------------------
# Structures


class _ListHead:
    """``struct list_head``: a node of a circular doubly linked list (a head is a sentinel)."""

    __slots__ = ("next", "prev")

    def __init__(self) -> None:
        self.next: _ListHead = self
        self.prev: _ListHead = self


def _list_add(new: _ListHead, head: _ListHead) -> None:
    nxt = head.next
    nxt.prev = new
    new.next = nxt
    new.prev = head
    head.next = new


def _list_del(entry: _ListHead) -> None:
    entry.prev.next = entry.next
    entry.next.prev = entry.prev
    entry.next = entry.prev = entry


class _Zspage(_ListHead):
    """``struct zspage``: its pages (pfns and byte addresses), use count and free-list head."""

    __slots__ = ("addrs", "cls", "freeobj", "fullness", "huge_handle", "inuse", "isolated",
                 "lock", "pfns", "readers")

    def __init__(self, cls: _SizeClass, pfns: list[int]) -> None:
        super().__init__()
        self.cls = cls
        self.pfns = pfns
        self.addrs = [p << PAGE_SHIFT for p in pfns]
        self.inuse = 0
        self.freeobj = 0
        self.fullness = 0
        self.huge_handle = 0  # page->index of a huge zspage
        self.isolated = False
        self.readers = 0  # v6.15 zspage read lock
        # v5.11 ``zspage->lock``, an rwlock_t that zs_map_object read-locks
        # (migrate_read_lock): readers do not exclude each other, lockdep tracks it and it
        # keeps preemption disabled, which is what a local lock models.
        self.lock = sched.LocalLock("&zspage->lock")


class _SizeClass:
    """``struct size_class`` with where each object index lies in a zspage."""

    __slots__ = ("fg_count", "fg_mask", "fg_of_inuse", "hdr", "heads", "huge", "index", "loc_off",
                 "loc_page", "loc_span", "obj_allocated", "obj_used", "objs_per_zspage",
                 "pages_per_zspage", "size", "templates")

    def __init__(self, index: int, size: int, ppz: int, opz: int, fullness: Fullness) -> None:
        self.index = index
        self.size = size
        self.pages_per_zspage = ppz
        self.objs_per_zspage = opz
        self.huge = ppz == 1 and opz == 1
        self.hdr = 0 if self.huge else ZS_HANDLE_SIZE
        ngroups = 4 if fullness == "legacy" else 12
        self.heads = [_ListHead() for _ in range(ngroups)]
        self.fg_count = [0] * ngroups
        #: Bit `fg` set while group `fg` has a zspage on its list (`fg_count[fg]` > 0): the
        #: fullest non-full group is a highest bit, not a walk over the groups.
        self.fg_mask = 0
        self.fg_of_inuse = tuple(_fullness_group(n, opz, fullness) for n in range(opz + 1))
        self.obj_allocated = 0
        self.obj_used = 0
        offs = [i * size for i in range(opz)]
        self.loc_page: tuple[int, ...] = tuple(o >> PAGE_SHIFT for o in offs)
        self.loc_off: tuple[int, ...] = tuple(o & _PAGE_MASK for o in offs)
        self.loc_span: tuple[bool, ...] = tuple((o & _PAGE_MASK) + size > PAGE_SIZE for o in offs)
        self.templates: tuple[bytes, ...] = ()


def _fullness_group(inuse: int, opz: int, fullness: Fullness) -> int:
    if fullness == "legacy":
        if inuse == 0:
            return ZS_EMPTY
        if inuse == opz:
            return ZS_FULL
        if inuse <= 3 * opz // 4:
            return ZS_ALMOST_EMPTY
        return ZS_ALMOST_FULL
    if inuse == 0:
        return ZS_INUSE_RATIO_0
    if inuse == opz:
        return ZS_INUSE_RATIO_100
    return 100 * inuse // opz // 10 + 1


class _Obj:
    """What a handle refers to: the handle word (its location) plus the model's bookkeeping."""

    __slots__ = ("displaced", "idx", "pin", "readers", "size", "view", "zspage")

    def __init__(self, zspage: _Zspage, idx: int, size: int) -> None:
        self.zspage = zspage
        self.idx = idx
        self.size = size
        self.view: memoryview | None = None  # set while mapped (the pin bit is held)
        self.readers = 0  # v6.15 reads in progress
        # While mapped: the report mode under which another mapping took this CPU's area.
        self.displaced: Mode | Literal[""] = ""
        # The handle word's HANDLE_PIN_BIT: a bit spin lock, made at the first map. (Kept here
        # rather than in sched's table of bit locks, so that it goes away with the handle.)
        self.pin: sched.SpinLock | None = None


class ZsPool:
    """``struct zs_pool``."""

    __slots__ = ("_alloc_mask", "_alloc_order", "_base", "_dst_order", "_handles", "_next",
                 "_pins", "_src_order", "chain_rule", "chain_size", "dead", "fullness",
                 "huge_class_size", "mem", "memory", "name", "pages_allocated", "pages_compacted",
                 "size_class", "size_to_class", "sleepable_reads")

    def __init__(self, name: str, mem: PhysMem, chain_size: int, fullness: Fullness,
                 sleepable_reads: bool, chain_rule: ChainRule = "v5") -> None:
        self.name = name
        self.memory = mem
        self.mem = mem.mem
        self.chain_size = chain_size
        self.fullness = fullness
        self.sleepable_reads = sleepable_reads
        self.chain_rule = chain_rule
        geometry, self.huge_class_size = _geometry(chain_size, chain_rule)
        classes: dict[int, _SizeClass] = {}
        for idx, size, ppz, opz in geometry:
            if idx not in classes:
                classes[idx] = _SizeClass(idx, size, ppz, opz, fullness)
        self.size_class = [classes[g[0]] for g in geometry]
        # The class serving each requested size, header included (zs_malloc's lookup).
        self.size_to_class = [self.size_class[0]] + [
            self.size_class[_size_class_index(s + ZS_HANDLE_SIZE)]
            for s in range(1, ZS_MAX_ALLOC_SIZE + 1)
        ]
        self._alloc_order: tuple[int, ...]
        self._src_order: tuple[int, ...]
        self._dst_order: tuple[int, ...]
        if fullness == "legacy":
            #: find_get_zspage's order: from the fullest group below full down to empty.
            self._alloc_order = (ZS_ALMOST_FULL, ZS_ALMOST_EMPTY, ZS_EMPTY)
            self._src_order = (ZS_ALMOST_EMPTY, ZS_ALMOST_FULL)
            self._dst_order = (ZS_ALMOST_FULL, ZS_ALMOST_EMPTY)
        else:
            self._alloc_order = tuple(range(ZS_INUSE_RATIO_99, ZS_INUSE_RATIO_0 - 1, -1))
            self._src_order = tuple(range(ZS_INUSE_RATIO_10, ZS_INUSE_RATIO_99 + 1))
            self._dst_order = tuple(range(ZS_INUSE_RATIO_99, ZS_INUSE_RATIO_10 - 1, -1))
        # The order is every group below full, fullest first: its first group with a zspage is
        # the highest bit of fg_mask under this mask.
        self._alloc_mask = sum(1 << fg for fg in self._alloc_order)
        assert self._alloc_mask == (1 << (self._alloc_order[0] + 1)) - 1
        self.pages_allocated = 0
        self.pages_compacted = 0
        self._handles: dict[int, _Obj] = {}
        #: Pin locks of freed handles, for the next handles' first maps: a handle word's pin
        #: bit costs nothing to have in the kernel, a `sched.SpinLock` does to make.
        self._pins: list[sched.SpinLock] = []
        self._base = new_handle_base()
        self._next = self._base
        self.dead = False

    def __repr__(self) -> str:
        return f"<ZsPool {self.name!r}: {len(self._handles)} objects, {self.pages_allocated} pages>"

    def _bad(self, kind: str, handle: int, free: bool = False) -> ZpoolError:
        return bad_handle(kind, handle, self._base, self._next, free=free)


@dataclass(frozen=True)
class ZsPoolStats:
    """``struct zs_pool_stats`` plus the pool's page count."""

    pages_compacted: int
    pages_allocated: int
    objects: int


@dataclass(frozen=True)
class ZsObjInfo:
    """Where an object lives: its class, its zspage's pages, its offset in its first page."""

    class_index: int
    class_size: int
    huge: bool
    pfns: tuple[int, ...]
    page_index: int
    offset: int
    spans: bool


@dataclass(frozen=True)
class ZsClassStats:
    """One row of the debugfs ``classes`` file; `groups` counts zspages per fullness group."""

    index: int
    size: int
    pages_per_zspage: int
    objs_per_zspage: int
    huge: bool
    obj_allocated: int
    obj_used: int
    pages_used: int
    freeable: int
    groups: tuple[int, ...]


# --------------------------------------------------------------------------------------------
# Pool


def zs_create_pool(
    name: str,
    *,
    mem: PhysMem | None = None,
    chain_size: int = 4,
    fullness: Fullness = "legacy",
    sleepable_reads: bool = False,
    chain_rule: ChainRule | None = None,
) -> ZsPool:
    """A pool of `mem` (default memory if None).

    `chain_size` is ``ZS_MAX_PAGES_PER_ZSPAGE``: 4 before v6.3, ``CONFIG_ZSMALLOC_CHAIN_SIZE``
    (4..16, default 8) since. `fullness` picks the v5 groups (``"legacy"``: empty, almost empty
    (<= 3/4 used), almost full, full) or v6.3's ten-percent groups (``"ratio"``). `chain_rule`
    is how each class's pages per zspage are chosen: ``"v5"`` (the best used percentage,
    ``get_pages_per_zspage``) or ``"v6.3"`` (the least waste, ``calculate_zspage_chain_size``);
    None follows `fullness` (both changed in v6.3). `sleepable_reads` enables the v6.15 object
    API. `pool_options` gives a kernel version's settings.
    """
    if not 1 <= chain_size <= 16:
        raise ValueError("chain_size must be 1..16 (CONFIG_ZSMALLOC_CHAIN_SIZE)")
    if fullness not in ("legacy", "ratio"):
        raise ValueError("fullness must be 'legacy' or 'ratio'")
    if chain_rule is None:
        chain_rule = "v6.3" if fullness == "ratio" else "v5"
    if chain_rule not in _CHAIN_RULES:
        raise ValueError("chain_rule must be 'v5' or 'v6.3'")
    return ZsPool(name, mem or default_memory(), chain_size, fullness, sleepable_reads,
                  chain_rule)


def pool_options(version: tuple[int, int]) -> dict[str, Any]:
    """`zs_create_pool`'s options for kernel `version` (``(6, 3)``): before v6.3 four-page
    chains, the legacy fullness groups and ``get_pages_per_zspage``; from v6.3 the default
    ``CONFIG_ZSMALLOC_CHAIN_SIZE`` of 8, the ratio groups and ``calculate_zspage_chain_size``;
    from v6.15 the sleepable object API (``zs_obj_read_begin``)."""
    if version < (6, 3):
        opts: dict[str, Any] = {"chain_size": 4, "fullness": "legacy", "chain_rule": "v5"}
    else:
        opts = {"chain_size": 8, "fullness": "ratio", "chain_rule": "v6.3"}
    opts["sleepable_reads"] = version >= (6, 15)
    return opts


def zs_destroy_pool(pool: ZsPool) -> None:
    """Free every page of the pool (the kernel leaks what is still allocated, and says so)."""
    if pool.dead:
        raise ZpoolError(f"zs_destroy_pool: pool {pool.name!r} already destroyed")
    for h, obj in pool._handles.items():
        if obj.view is not None or obj.readers:
            raise HandleMappedError(f"zs_destroy_pool: handle {h:#x} is mapped", h)
    seen: set[int] = set()
    for cls in pool.size_class:
        if id(cls) in seen:
            continue
        seen.add(id(cls))
        for fg, head in enumerate(cls.heads):
            if head.next is not head:
                log.info("Freeing non-empty class with size %db, fullness group %d", cls.size, fg)
            while head.next is not head:
                zs = head.next
                assert isinstance(zs, _Zspage)
                _list_del(zs)
                for pfn in zs.pfns:
                    pool.memory.free_page(pfn)
    pool._handles.clear()
    pool.pages_allocated = 0
    pool.dead = True


def zs_get_total_pages(pool: ZsPool) -> int:
    return pool.pages_allocated


def zs_huge_class_size(pool: ZsPool) -> int:
    """Objects of at least this many bytes take a whole page (``zs_huge_class_size``)."""
    return pool.huge_class_size


def zs_lookup_class_index(pool: ZsPool, size: int) -> int:
    """The index of the class that stores a `size`-byte object (header included)."""
    return pool.size_class[_size_class_index(size + ZS_HANDLE_SIZE)].index


def zs_obj_info(pool: ZsPool, handle: int) -> ZsObjInfo:
    """Where the object of `handle` lives (what the kernel decodes from the handle's word)."""
    obj = pool._handles.get(handle)
    if obj is None:
        raise pool._bad("zs_obj_info", handle)
    zs = obj.zspage
    cls = zs.cls
    return ZsObjInfo(
        class_index=cls.index,
        class_size=cls.size,
        huge=cls.huge,
        pfns=tuple(zs.pfns),
        page_index=cls.loc_page[obj.idx],
        offset=cls.loc_off[obj.idx],
        spans=cls.loc_span[obj.idx],
    )


def _fg_del(cls: _SizeClass, fg: int) -> None:
    """A zspage left group `fg`'s list: its count, and its bit when the list is empty."""
    n = cls.fg_count[fg] - 1
    cls.fg_count[fg] = n
    if not n:
        cls.fg_mask &= ~(1 << fg)


def _insert_zspage(pool: ZsPool, cls: _SizeClass, zs: _Zspage, fg: int) -> None:
    cls.fg_count[fg] += 1
    cls.fg_mask |= 1 << fg
    head = cls.heads[fg]
    if pool.fullness == "legacy":
        # v5: keep zspages with more objects in use at the front.
        first = head.next
        if first is not head and zs.inuse < first.inuse:  # type: ignore[attr-defined]
            _list_add(zs, first)
            zs.fullness = fg
            return
    _list_add(zs, head)
    zs.fullness = fg


def _fix_fullness_group(pool: ZsPool, cls: _SizeClass, zs: _Zspage) -> int:
    newfg = cls.fg_of_inuse[zs.inuse]
    cur = zs.fullness
    if newfg != cur:
        if zs.isolated:
            zs.fullness = newfg
        else:
            _list_del(zs)
            _fg_del(cls, cur)
            _insert_zspage(pool, cls, zs, newfg)
    return newfg


def _templates(cls: _SizeClass) -> tuple[bytes, ...]:
    """The free-list links of a fresh zspage, one page image per page (``init_zspage``)."""
    if not cls.templates:
        pages = [bytearray(PAGE_SIZE) for _ in range(cls.pages_per_zspage)]
        if not cls.huge:
            n = cls.objs_per_zspage
            for i in range(n):
                link = ((i + 1) << OBJ_TAG_BITS) if i + 1 < n else _LAST_LINK
                _U64.pack_into(pages[cls.loc_page[i]], cls.loc_off[i], link)
        cls.templates = tuple(bytes(p) for p in pages)
    return cls.templates


def _alloc_zspage(pool: ZsPool, cls: _SizeClass, gfp: int) -> _Zspage | None:
    pfns: list[int] = []
    memory = pool.memory
    for _ in range(cls.pages_per_zspage):
        pfn = memory.alloc_page(gfp)
        if pfn is None:
            for p in pfns:
                memory.free_page(p)
            return None
        pfns.append(pfn)
    zs = _Zspage(cls, pfns)
    mem = pool.mem
    for a, tpl in zip(zs.addrs, _templates(cls), strict=True):
        mem[a : a + PAGE_SIZE] = tpl
    zs.freeobj = 0
    return zs


def _free_zspage(pool: ZsPool, cls: _SizeClass, zs: _Zspage) -> None:
    _list_del(zs)
    _fg_del(cls, zs.fullness)
    for pfn in zs.pfns:
        pool.memory.free_page(pfn)
    cls.obj_allocated -= cls.objs_per_zspage
    pool.pages_allocated -= cls.pages_per_zspage


def _obj_malloc(pool: ZsPool, cls: _SizeClass, zs: _Zspage, handle: int) -> int:
    idx = zs.freeobj
    if not 0 <= idx < cls.objs_per_zspage:
        raise PoolCorruptedError(f"zsmalloc: free list of a class-{cls.size} zspage is corrupt "
                                 f"(next free object {idx})")
    if cls.huge:
        zs.freeobj = -1
        zs.huge_handle = handle
    else:
        a = zs.addrs[cls.loc_page[idx]] + cls.loc_off[idx]
        mem = pool.mem
        zs.freeobj = _U64.unpack_from(mem, a)[0] >> OBJ_TAG_BITS
        _U64.pack_into(mem, a, handle | OBJ_ALLOCATED_TAG)
    zs.inuse += 1
    cls.obj_used += 1
    return idx


def _obj_free(pool: ZsPool, cls: _SizeClass, zs: _Zspage, idx: int) -> None:
    if cls.huge:
        zs.huge_handle = 0
    else:
        a = zs.addrs[cls.loc_page[idx]] + cls.loc_off[idx]
        _U64.pack_into(pool.mem, a, (zs.freeobj << OBJ_TAG_BITS) & _U64_MASK)
    zs.freeobj = idx
    zs.inuse -= 1
    cls.obj_used -= 1


def zs_malloc(pool: ZsPool, size: int, gfp: int) -> int:
    """Allocate `size` bytes: a handle, or a negative errno (v6.0+'s ``ERR_PTR`` values).

    ``-EINVAL`` for size 0, ``-ENOSPC`` above ``ZS_MAX_ALLOC_SIZE``, ``-ENOMEM`` when no page.
    """
    if size <= 0:
        return -errno.EINVAL
    if size > ZS_MAX_ALLOC_SIZE:
        return -errno.ENOSPC
    if pool.dead:
        raise ZpoolError(f"zs_malloc: pool {pool.name!r} was destroyed")
    if gfp & __GFP_DIRECT_RECLAIM:
        sched.might_sleep()  # cache_alloc_handle: kmem_cache_alloc may sleep
    cls = pool.size_to_class[size]
    handle = pool._next
    # find_get_zspage: the first zspage of the fullest non-full group (_alloc_order).
    groups = cls.fg_mask & pool._alloc_mask
    zs: Any
    if groups:
        zs = cls.heads[groups.bit_length() - 1].next
    else:
        zs = _alloc_zspage(pool, cls, gfp)
        if zs is None:
            return -errno.ENOMEM
        idx = _obj_malloc(pool, cls, zs, handle)
        _insert_zspage(pool, cls, zs, cls.fg_of_inuse[zs.inuse])
        cls.obj_allocated += cls.objs_per_zspage
        pool.pages_allocated += cls.pages_per_zspage
        pool._next = handle + HANDLE_STRIDE
        pool._handles[handle] = _Obj(zs, idx, size)
        return handle
    # obj_malloc and fix_fullness_group, inline: this is the hot path.
    idx = zs.freeobj
    if cls.huge or not 0 <= idx < cls.objs_per_zspage:
        idx = _obj_malloc(pool, cls, zs, handle)  # (raises on a corrupt free list)
    else:
        a = zs.addrs[cls.loc_page[idx]] + cls.loc_off[idx]
        mem = pool.mem
        zs.freeobj = _unpack_u64(mem, a)[0] >> OBJ_TAG_BITS
        _pack_u64(mem, a, handle | OBJ_ALLOCATED_TAG)
        zs.inuse += 1
        cls.obj_used += 1
    newfg = cls.fg_of_inuse[zs.inuse]
    if newfg != zs.fullness:
        _list_del(zs)
        _fg_del(cls, zs.fullness)
        _insert_zspage(pool, cls, zs, newfg)
    pool._next = handle + HANDLE_STRIDE
    pool._handles[handle] = _Obj(zs, idx, size)
    return handle


def zs_free(pool: ZsPool, handle: int) -> None:
    """Free the object; its zspage is freed when it becomes empty."""
    obj = pool._handles.pop(handle, None)
    if obj is None:
        if handle == 0:
            return  # zs_free(pool, 0) is a no-op, as in the kernel
        raise pool._bad("zs_free", handle, free=True)
    if obj.view is not None or obj.readers:
        pool._handles[handle] = obj
        raise HandleMappedError(f"zs_free: handle {handle:#x} is mapped", handle)
    pin = obj.pin
    if pin is not None and pin.owner is None:
        pool._pins.append(pin)
    zs = obj.zspage
    cls = zs.cls
    idx = obj.idx
    if cls.huge:
        _obj_free(pool, cls, zs, idx)
    else:  # obj_free, inline: this is every invalidation's path
        _pack_u64(pool.mem, zs.addrs[cls.loc_page[idx]] + cls.loc_off[idx],
                  (zs.freeobj << OBJ_TAG_BITS) & _U64_MASK)
        zs.freeobj = idx
        zs.inuse -= 1
        cls.obj_used -= 1
    if cls.fg_of_inuse[zs.inuse] != zs.fullness:
        if _fix_fullness_group(pool, cls, zs) == 0 and not zs.isolated:
            _free_zspage(pool, cls, zs)


# --------------------------------------------------------------------------------------------
# Mapping


class _MappingArea:
    """``struct mapping_area``: this CPU's copy buffer and mapping mode (v5.11 takes it with
    ``get_cpu_var``: preemption disabled, no lock that lockdep sees)."""

    __slots__ = ("buf", "owner", "owner_handle", "owner_task", "vm_buf", "vm_mm")

    def __init__(self, cpu: int) -> None:
        self.buf = bytearray(PAGE_SIZE)
        self.vm_buf = memoryview(self.buf)
        self.vm_mm = ZS_MM_RW
        # Lockdep's local_lock owner, and which handle it is for (for the reports).
        self.owner: _Obj | None = None
        self.owner_handle = 0
        self.owner_task = ""


#: ``DEFINE_PER_CPU(struct mapping_area, zs_map_area)``: one per CPU, shared by all pools.
_zs_map_area: sched.PerCpu[_MappingArea] = sched.PerCpu(_MappingArea)
#: The current task's (zsmalloc mappings held, name): nesting is told from another task's sleep
#: by the count; the name (sched's, computed once per task) is for the reports.
_task_maps: contextvars.ContextVar[tuple[int, str]] = contextvars.ContextVar(
    "zs_task_maps", default=(0, "")
)


def reset_mapping_areas() -> None:
    """Forget every CPU's mapping area and the calling context's mapping count (tests call it
    so that a test that left a handle mapped does not leak into the next)."""
    _zs_map_area.clear()
    _task_maps.set((0, ""))


def _area_report(area: _MappingArea, handle: int, what: str, mode: Mode) -> None:
    """The area taken twice on one CPU, reported in `mode` as lockdep's ``DEBUG_LOCKS_WARN_ON``
    on the area's ``local_lock`` reports it since v5.17 ("mm/zsmalloc: replace get_cpu_var with
    local_lock"); v5.11's ``get_cpu_var`` has no such check, the model reports it anyway."""
    me = sched.current_task_name()
    cpu = sched.smp_processor_id()
    if area.owner is None:
        held = "no handle mapped on it"
    else:
        held = f"handle {area.owner_handle:#x} mapped by {area.owner_task}"
    check = "l->owner" if what == "zs_map_object" else "l->owner != current"
    text = "\n".join(
        (
            f"WARNING: CPU: {cpu} PID: {me} at mm/zsmalloc.c {what}: zs_map_area in use",
            f"DEBUG_LOCKS_WARN_ON({check})",
            f"zs_map_area of CPU#{cpu}: {held}; {what} of handle {handle:#x} by {me}",
            "zsmalloc: only one object can be mapped per cpu at a time",
        )
    )
    report("zs_map_area", text, mode, handle)


def _map_conflict(area: _MappingArea, handle: int) -> None:
    """This CPU's area is in use by another mapping.

    The same task nesting two mappings is a lock-debugging error (`sched.config.lock_debug`).
    Another task can only get here because the owner slept with preemption disabled, which its
    splat already reported: this follows that report's mode (`sched.config.atomic_sleep`), so
    that in ``"warn"`` mode the kernel's consequence (the shared buffer overwritten) happens.
    """
    nested = _task_maps.get()[0] > 0
    mode: Mode = "off" if not sched.checks else (
        sched.config.lock_debug if nested else sched.config.atomic_sleep)
    _area_report(area, handle, "zs_map_object", mode)
    owner = area.owner
    if owner is not None:
        owner.displaced = mode


def _unmap_conflict(area: _MappingArea, obj: _Obj, handle: int) -> None:
    """Unmapping `obj` while the area is not its: in the mode its area was taken in."""
    mode = obj.displaced or (sched.config.lock_debug if sched.checks else "off")
    _area_report(area, handle, "zs_unmap_object", mode)


def zs_map_object(pool: ZsPool, handle: int, mm: int = ZS_MM_RW) -> memoryview:
    """Map the object: a view of exactly its bytes (read-only for ``ZS_MM_RO``).

    Returns with the handle pinned and preemption disabled, until `zs_unmap_object`. With the
    debug checks off (`sched.set_debug_checks`) none of the three records anything, so none is
    taken: the pin bit (a bit spin lock that only the preemption count shows) guards nothing
    the mapped view does not already (a mapped handle is refused a second mapping, a free and
    compaction either way), and the area's owner, kept for its "in use" report, is not tracked
    (a second mapping on the CPU still overwrites the area's buffer and mode, as before).
    """
    obj = pool._handles.get(handle)
    if obj is None:
        raise pool._bad("zs_map_object", handle)
    if obj.view is not None:
        raise HandleMappedError(f"zs_map_object: handle {handle:#x} is already mapped", handle)
    if mm != ZS_MM_RO and mm != ZS_MM_WO and mm != ZS_MM_RW:
        raise ValueError(f"zs_map_object: unknown mode {mm}")
    area = _zs_map_area.this_cpu()
    if sched.checks:
        if area.owner is not None:
            _map_conflict(area, handle)
        # From now on, migration cannot move the object (pin_tag: HANDLE_PIN_BIT, a bit spin
        # lock with no lockdep map).
        pin = obj.pin
        if pin is None:
            pins = pool._pins
            pin = obj.pin = (pins.pop() if pins
                             else sched.SpinLock("bit_spin_lock#0", lockdep=False))
        pin.lock()
        # Migration cannot move any subpage of this zspage (migrate_read_lock).
        obj.zspage.lock.lock()  # (sched.local_lock without its frame: the same caller)
        sched.preempt_disable()  # area = &get_cpu_var(zs_map_area)
        area.owner = obj
        area.owner_handle = handle
        depth, name = _task_maps.get()
        if not name:
            name = sched.current_task_name()
        area.owner_task = name
        _task_maps.set((depth + 1, name))
        obj.displaced = ""
    area.vm_mm = mm
    zs = obj.zspage
    cls = zs.cls
    idx = obj.idx
    hdr = cls.hdr
    if not cls.loc_span[idx]:
        a = zs.addrs[cls.loc_page[idx]] + cls.loc_off[idx] + hdr
        view = pool.mem[a : a + obj.size]
    else:
        # The object spans two pages: work on a copy in this CPU's buffer.
        buf = area.vm_buf
        if mm != ZS_MM_WO:
            pi = cls.loc_page[idx]
            off = cls.loc_off[idx]
            first = PAGE_SIZE - off
            a0 = zs.addrs[pi] + off
            a1 = zs.addrs[pi + 1]
            mem = pool.mem
            buf[:first] = mem[a0 : a0 + first]
            buf[first : cls.size] = mem[a1 : a1 + cls.size - first]
        view = buf[hdr : hdr + obj.size]
    if mm == ZS_MM_RO:
        view = view.toreadonly()
    obj.view = view
    return view


def zs_unmap_object(pool: ZsPool, handle: int) -> None:
    """Unmap: copy a spanning object back (unless the area's mode is RO), re-enable preemption,
    release the pin. The view given by `zs_map_object` is released."""
    obj = pool._handles.get(handle)
    if obj is None:
        raise pool._bad("zs_unmap_object", handle)
    view = obj.view
    if view is None:
        raise NotMappedError(f"zs_unmap_object: handle {handle:#x} is not mapped", handle)
    checks = sched.checks
    area = _zs_map_area.this_cpu() if checks else None
    if area is not None and area.owner is not obj:
        _unmap_conflict(area, obj, handle)
    zs = obj.zspage
    cls = zs.cls
    idx = obj.idx
    if cls.loc_span[idx] and (area or _zs_map_area.this_cpu()).vm_mm != ZS_MM_RO:
        # Copy back everything after the header, from whatever the buffer holds now.
        hdr = cls.hdr
        pi = cls.loc_page[idx]
        off = cls.loc_off[idx] + hdr
        first = PAGE_SIZE - off
        a0 = zs.addrs[pi] + off
        a1 = zs.addrs[pi + 1]
        mem = pool.mem
        buf = _zs_map_area.this_cpu().vm_buf
        mem[a0 : a0 + first] = buf[hdr : hdr + first]
        mem[a1 : a1 + cls.size - hdr - first] = buf[hdr + first : cls.size]
    obj.view = None
    try:
        view.release()
    except BufferError:
        pass  # the caller exported it (numpy, ...): it stays usable, as a stale kernel pointer
    if area is not None:
        area.owner = None
        depth, name = _task_maps.get()
        _task_maps.set((depth - 1, name))
        sched.preempt_enable()  # put_cpu_var(zs_map_area)
        obj.zspage.lock.unlock()  # migrate_read_unlock
        pin = obj.pin
        assert pin is not None
        pin.unlock()


# --------------------------------------------------------------------------------------------
# v6.15 object API


def _as_bytes_view(buf: Any) -> memoryview:
    v = memoryview(buf)
    if v.format != "B" or v.ndim != 1:
        v = v.cast("B")
    return v


def zs_obj_read_begin(pool: ZsPool, handle: int, local_copy: bytearray | memoryview | None
                      ) -> memoryview:
    """v6.15: a read-only view of the object; preemption stays enabled (the caller may sleep).

    The zspage is read-locked against compaction until `zs_obj_read_end`. An object that spans
    two pages is copied into `local_copy` (writable, at least its class size) and the view points
    there; one inside a page is viewed in place.
    """
    if not pool.sleepable_reads:
        raise UnsupportedOperation("zs_obj_read_begin needs a pool with sleepable_reads=True",
                                   handle)
    obj = pool._handles.get(handle)
    if obj is None:
        raise pool._bad("zs_obj_read_begin", handle)
    zs = obj.zspage
    cls = zs.cls
    idx = obj.idx
    hdr = cls.hdr
    mem = pool.mem
    if not cls.loc_span[idx]:
        a = zs.addrs[cls.loc_page[idx]] + cls.loc_off[idx] + hdr
        view = mem[a : a + obj.size].toreadonly()
    else:
        if local_copy is None:
            raise ValueError("zs_obj_read_begin: the object spans two pages: local_copy needed")
        lc = _as_bytes_view(local_copy)
        if len(lc) < cls.size:
            raise ValueError(f"zs_obj_read_begin: local_copy has {len(lc)} bytes, "
                             f"the object's class needs {cls.size}")
        pi = cls.loc_page[idx]
        off = cls.loc_off[idx]
        first = PAGE_SIZE - off
        a0 = zs.addrs[pi] + off
        a1 = zs.addrs[pi + 1]
        lc[:first] = mem[a0 : a0 + first]
        lc[first : cls.size] = mem[a1 : a1 + cls.size - first]
        view = lc[hdr : hdr + obj.size].toreadonly()
    zs.readers += 1
    obj.readers += 1
    return view


def zs_obj_read_end(pool: ZsPool, handle: int, handle_mem: memoryview) -> None:
    """v6.15: end a read begun by `zs_obj_read_begin`; `handle_mem` (its view) is released."""
    obj = pool._handles.get(handle)
    if obj is None:
        raise pool._bad("zs_obj_read_end", handle)
    if not obj.readers:
        raise NotMappedError(f"zs_obj_read_end: handle {handle:#x} is not being read", handle)
    obj.readers -= 1
    obj.zspage.readers -= 1
    try:
        handle_mem.release()
    except BufferError:
        pass


def zs_obj_read_sg_begin(pool: ZsPool, handle: int, mem_len: int) -> Scatterlist:
    """v7.0 ("zsmalloc: introduce SG-list based object read API"): the object's first
    `mem_len` bytes as a read-only scatterlist over the pool's pages, nothing copied.

    One entry when they lie in one page (``off + mem_len <= PAGE_SIZE``, `off` past the handle
    header), else two: the rest of the first page and the start of the next, which need not be
    adjacent in memory. The zspage is read-locked against compaction (preemption stays
    enabled) until `zs_obj_read_sg_end`.
    """
    if not pool.sleepable_reads:
        raise UnsupportedOperation("zs_obj_read_sg_begin needs a pool with "
                                   "sleepable_reads=True", handle)
    obj = pool._handles.get(handle)
    if obj is None:
        raise pool._bad("zs_obj_read_sg_begin", handle)
    if not 0 < mem_len <= obj.size:
        raise ValueError(f"zs_obj_read_sg_begin: {mem_len} bytes of a {obj.size}-byte object")
    zs = obj.zspage
    cls = zs.cls
    idx = obj.idx
    pi = cls.loc_page[idx]
    off = cls.loc_off[idx] + cls.hdr
    mem = pool.mem
    a0 = zs.addrs[pi] + off
    if off + mem_len <= PAGE_SIZE:  # contained entirely within a page
        sg = sg_init_table(1)
        sg_set_buf(sg, 0, mem[a0 : a0 + mem_len].toreadonly())
    else:  # spans two pages
        first = PAGE_SIZE - off
        a1 = zs.addrs[pi + 1]
        sg = sg_init_table(2)
        sg_set_buf(sg, 0, mem[a0 : a0 + first].toreadonly())
        sg_set_buf(sg, 1, mem[a1 : a1 + mem_len - first].toreadonly())
    zs.readers += 1
    obj.readers += 1
    return sg


def zs_obj_read_sg_end(pool: ZsPool, handle: int) -> None:
    """v7.0: end a read begun by `zs_obj_read_sg_begin` (the zspage's read lock dropped)."""
    obj = pool._handles.get(handle)
    if obj is None:
        raise pool._bad("zs_obj_read_sg_end", handle)
    if not obj.readers:
        raise NotMappedError(f"zs_obj_read_sg_end: handle {handle:#x} is not being read",
                             handle)
    obj.readers -= 1
    obj.zspage.readers -= 1


def zs_obj_write(pool: ZsPool, handle: int, handle_mem: bytes | bytearray | memoryview,
                 mem_len: int) -> None:
    """v6.15: copy the first `mem_len` bytes of `handle_mem` into the object (no mapping)."""
    if not pool.sleepable_reads:
        raise UnsupportedOperation("zs_obj_write needs a pool with sleepable_reads=True", handle)
    obj = pool._handles.get(handle)
    if obj is None:
        raise pool._bad("zs_obj_write", handle)
    src = _as_bytes_view(handle_mem)
    if not 0 <= mem_len <= obj.size or mem_len > len(src):
        raise ValueError(f"zs_obj_write: {mem_len} bytes into a {obj.size}-byte object "
                         f"from a {len(src)}-byte buffer")
    zs = obj.zspage
    cls = zs.cls
    idx = obj.idx
    pi = cls.loc_page[idx]
    off = cls.loc_off[idx] + cls.hdr
    a0 = zs.addrs[pi] + off
    mem = pool.mem
    if off + mem_len <= PAGE_SIZE:
        mem[a0 : a0 + mem_len] = src[:mem_len]
    else:
        first = PAGE_SIZE - off
        a1 = zs.addrs[pi + 1]
        mem[a0 : a0 + first] = src[:first]
        mem[a1 : a1 + mem_len - first] = src[first:mem_len]


# --------------------------------------------------------------------------------------------
# Compaction


def _zs_can_compact(cls: _SizeClass) -> int:
    """Pages that compaction could free in this class."""
    wasted = cls.obj_allocated - cls.obj_used
    if wasted <= 0:
        return 0
    return wasted // cls.objs_per_zspage * cls.pages_per_zspage


def _isolate(cls: _SizeClass, order: tuple[int, ...]) -> _Zspage | None:
    for fg in order:
        head = cls.heads[fg]
        zs = head.next
        if zs is not head:
            assert isinstance(zs, _Zspage)
            _list_del(zs)
            _fg_del(cls, fg)
            zs.isolated = True
            return zs
    return None


def _putback(pool: ZsPool, cls: _SizeClass, zs: _Zspage) -> int:
    zs.isolated = False
    fg = cls.fg_of_inuse[zs.inuse]
    _insert_zspage(pool, cls, zs, fg)
    return fg


def _read_slot(pool: ZsPool, cls: _SizeClass, zs: _Zspage, idx: int) -> bytes:
    mem = pool.mem
    pi = cls.loc_page[idx]
    off = cls.loc_off[idx]
    a0 = zs.addrs[pi] + off
    if not cls.loc_span[idx]:
        return bytes(mem[a0 : a0 + cls.size])
    first = PAGE_SIZE - off
    a1 = zs.addrs[pi + 1]
    return bytes(mem[a0 : a0 + first]) + bytes(mem[a1 : a1 + cls.size - first])


def _write_slot(pool: ZsPool, cls: _SizeClass, zs: _Zspage, idx: int, data: bytes) -> None:
    mem = pool.mem
    pi = cls.loc_page[idx]
    off = cls.loc_off[idx]
    a0 = zs.addrs[pi] + off
    if not cls.loc_span[idx]:
        mem[a0 : a0 + cls.size] = data
        return
    first = PAGE_SIZE - off
    a1 = zs.addrs[pi + 1]
    mem[a0 : a0 + first] = data[:first]
    mem[a1 : a1 + cls.size - first] = data[first:]


def _migrate_zspage(pool: ZsPool, cls: _SizeClass, src: _Zspage, dst: _Zspage) -> None:
    """Move live objects of `src` into `dst` until `src` is empty or `dst` full.

    Live objects are found by their header word in page memory (``find_alloced_obj``); a pinned
    (mapped) object is skipped, as v5.10's ``trypin_tag`` skips it.
    """
    mem = pool.mem
    handles = pool._handles
    opz = cls.objs_per_zspage
    for idx in range(opz):
        if dst.inuse == opz:
            break
        if cls.huge:
            handle = src.huge_handle
            if not handle:
                continue
        else:
            head = _U64.unpack_from(mem, src.addrs[cls.loc_page[idx]] + cls.loc_off[idx])[0]
            if not head & OBJ_ALLOCATED_TAG:
                continue
            handle = head & ~OBJ_ALLOCATED_TAG
        obj = handles.get(handle)
        if obj is None or obj.zspage is not src or obj.idx != idx:
            raise PoolCorruptedError(f"zsmalloc: object header {handle:#x} in a class-{cls.size}"
                                     " zspage names no live handle of it")
        if obj.view is not None:
            continue
        data = _read_slot(pool, cls, src, idx)
        new_idx = _obj_malloc(pool, cls, dst, handle)
        _write_slot(pool, cls, dst, new_idx, data)
        obj.zspage = dst
        obj.idx = new_idx
        _obj_free(pool, cls, src, idx)


def _zs_compact_class(pool: ZsPool, cls: _SizeClass) -> int:
    """``__zs_compact`` (v6 loop): fill the fullest zspage from the emptiest, free emptied ones."""
    freed = 0
    dst: _Zspage | None = None
    while _zs_can_compact(cls):
        if dst is None:
            dst = _isolate(cls, pool._dst_order)
            if dst is None:
                break
        src = _isolate(cls, pool._src_order)
        if src is None:
            break
        if src.readers:
            # v6.15: zspage_write_trylock fails while the zspage is being read.
            _putback(pool, cls, src)
            break
        _migrate_zspage(pool, cls, src, dst)
        if _putback(pool, cls, src) == 0:
            _free_zspage(pool, cls, src)
            freed += cls.pages_per_zspage
        elif dst.inuse < cls.objs_per_zspage:
            break  # src kept only pinned objects: nothing more to gain here now
        if dst.inuse == cls.objs_per_zspage:
            _putback(pool, cls, dst)
            dst = None
    if dst is not None:
        _putback(pool, cls, dst)
    return freed


def zs_compact(pool: ZsPool) -> int:
    """Compact every class; the pages freed by this call (``zs_compact``, v5.11+)."""
    freed = 0
    for i in range(ZS_SIZE_CLASSES - 1, -1, -1):
        cls = pool.size_class[i]
        if cls.index != i:
            continue
        freed += _zs_compact_class(pool, cls)
    pool.pages_compacted += freed
    return freed


# --------------------------------------------------------------------------------------------
# Stats


def zs_pool_stats(pool: ZsPool) -> ZsPoolStats:
    return ZsPoolStats(
        pages_compacted=pool.pages_compacted,
        pages_allocated=pool.pages_allocated,
        objects=len(pool._handles),
    )


def zs_class_stats(pool: ZsPool) -> tuple[ZsClassStats, ...]:
    """One record per distinct class (merged classes appear once, under their largest index)."""
    out = []
    for i, cls in enumerate(pool.size_class):
        if cls.index != i:
            continue
        out.append(
            ZsClassStats(
                index=i,
                size=cls.size,
                pages_per_zspage=cls.pages_per_zspage,
                objs_per_zspage=cls.objs_per_zspage,
                huge=cls.huge,
                obj_allocated=cls.obj_allocated,
                obj_used=cls.obj_used,
                pages_used=cls.obj_allocated // cls.objs_per_zspage * cls.pages_per_zspage,
                freeable=_zs_can_compact(cls),
                groups=tuple(cls.fg_count),
            )
        )
    return tuple(out)


def _cols(widths: tuple[int, ...], cells: tuple[object, ...]) -> str:
    """Right-aligned cells, each followed by a space (seq_printf's ``%<w>s ``/``%<w>lu ``)."""
    return "".join(f"{c!s:>{w}} " for w, c in zip(widths, cells, strict=True))


_LEGACY_W = (5, 5, 11, 12, 13, 10, 10, 16, 8)
_RATIO_W = (5, 5) + (8,) * 11 + (13, 10, 10, 16, 8)
_RATIO_LABELS = ("10%", "20%", "30%", "40%", "50%", "60%", "70%", "80%", "90%", "99%", "100%")


def zs_stats_classes(pool: ZsPool) -> str:
    """The debugfs file ``/sys/kernel/debug/zsmalloc/<pool>/classes``, in the pool's era's format.

    ``"legacy"`` pools print v5's ``almost_full``/``almost_empty`` columns; ``"ratio"`` pools
    v6.3's ``10%`` ... ``100%`` columns.
    """
    rows = zs_class_stats(pool)
    tail = ("obj_allocated", "obj_used", "pages_used", "pages_per_zspage", "freeable")
    legacy = pool.fullness == "legacy"
    widths: tuple[int, ...]
    if legacy:
        widths = _LEGACY_W
        groups: tuple[int, ...] = (ZS_ALMOST_FULL, ZS_ALMOST_EMPTY)
        labels: tuple[str, ...] = ("almost_full", "almost_empty")
    else:
        widths = _RATIO_W
        groups = tuple(range(ZS_INUSE_RATIO_10, ZS_INUSE_RATIO_100 + 1))
        labels = _RATIO_LABELS
    lines = [" " + _cols(widths, ("class", "size", *labels, *tail)).rstrip(" ")]
    totals = [0] * len(groups)
    tot_objs = tot_used = tot_pages = tot_free = 0
    for r in rows:
        cells = tuple(r.groups[fg] for fg in groups)
        totals = [t + c for t, c in zip(totals, cells, strict=True)]
        lines.append(" " + _cols(widths, (r.index, r.size, *cells, r.obj_allocated, r.obj_used,
                                          r.pages_used, r.pages_per_zspage, r.freeable))
                     .rstrip(" "))
        tot_objs += r.obj_allocated
        tot_used += r.obj_used
        tot_pages += r.pages_used
        tot_free += r.freeable
    lines.append("")
    lines.append(" " + _cols(widths, ("Total", "", *totals, tot_objs, tot_used, tot_pages, "",
                                      tot_free)).rstrip(" "))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# zpool driver


def _zpool_create(name: str, gfp: int, mem: PhysMem | None, **options: Any) -> ZsPool:
    # "Ignore global gfp flags: zs_malloc() may be invoked from different contexts and its
    # caller must provide a valid gfp mask."
    return zs_create_pool(name, mem=mem, **options)


def _zpool_malloc(pool: ZsPool, size: int, gfp: int) -> tuple[int, int]:
    h = zs_malloc(pool, size, gfp)
    if h < 0:
        return h, 0
    return 0, h


def _zpool_total_size(pool: ZsPool) -> int:
    return pool.pages_allocated << PAGE_SHIFT


#: ``zs_zpool_driver``.
zs_zpool_driver = ZpoolDriver(
    type="zsmalloc",
    create=_zpool_create,
    destroy=zs_destroy_pool,
    malloc=_zpool_malloc,
    free=zs_free,
    map=zs_map_object,
    unmap=zs_unmap_object,
    total_size=_zpool_total_size,
    sleep_mapped=False,
    malloc_support_movable=True,
    obj_read_begin=zs_obj_read_begin,
    obj_read_end=zs_obj_read_end,
    obj_write=zs_obj_write,
)


def module_init() -> int:
    """``zs_init``: register the zpool driver (``MODULE_ALIAS("zpool-zsmalloc")``)."""
    zpool_register_driver(zs_zpool_driver)
    return 0


def module_exit() -> int:
    """``zs_exit``: unregister the driver; ``-EBUSY`` while pools exist."""
    return zpool_unregister_driver(zs_zpool_driver)
