"""The z3fold layer: an allocator that stores up to three objects per page, or one big one.

Kernel counterpart: ``mm/z3fold.c`` (v5.x; deprecated in v6.12, removed in v6.15).

A page is 64 chunks of 64 bytes with the header in the first two (``struct z3fold_header`` is
88 bytes on x86_64, see `Z3FOLD_HEADER_SIZE`). Three buddies share it: FIRST right after the
header, LAST ending at the page end, MIDDLE in between (placed right after FIRST). An object
above ``PAGE_SIZE - ZHDR_SIZE_ALIGNED - CHUNK_SIZE`` (3904 bytes) gets a *headless* page of its
own.
Pages with room sit on per-CPU unbuddied lists indexed by their largest free run of chunks;
allocation takes the first page of this CPU's lists from the object's chunk count up, then an
exact fit on another CPU's.

Handles are indirect (the kernel's ``z3fold_buddy_slots``), so objects can move without their
handle changing. After every free the page is compacted (the kernel queues this work; here it
runs at once): a page left with a single object moves it into another page with room
(``compact_single_buddy``) and is freed; otherwise a MIDDLE object moves next to the header when
FIRST and LAST are free (it becomes FIRST), or next to FIRST or LAST when that closes a gap of at
least ``BIG_CHUNK_GAP`` chunks. A mapped MIDDLE object (``MIDDLE_CHUNK_MAPPED``) and a page with
mapped objects are not moved. Mapping takes no lock that is held afterwards: a caller may sleep
while mapped (``sleep_mapped``).

The header struct is kept in Python objects; its two chunks are reserved but not written. Not
modelled: the LRU and reclaim (gone with ``zpool_shrink`` in v6.5), page migration, stale pages.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Any

from acomp import sched
from acomp._constants import PAGE_SIZE
from zswap._errors import ZpoolError
from zswap._freelists import BuddyObj, BuddyPool, FreeLists
from zswap.page import __GFP_DIRECT_RECLAIM, PAGE_SHIFT, PhysMem, default_memory
from zswap.zpool import buddy_zpool_driver, zpool_register_driver, zpool_unregister_driver

__all__ = (
    "BIG_CHUNK_GAP",
    "CHUNK_SHIFT",
    "CHUNK_SIZE",
    "FIRST",
    "HEADLESS",
    "LAST",
    "MIDDLE",
    "NCHUNKS",
    "TOTAL_CHUNKS",
    "Z3FOLD_HEADER_SIZE",
    "ZHDR_CHUNKS",
    "ZHDR_SIZE_ALIGNED",
    "Z3foldPool",
    "Z3foldStats",
    "module_exit",
    "module_init",
    "z3fold_alloc",
    "z3fold_create_pool",
    "z3fold_destroy_pool",
    "z3fold_free",
    "z3fold_get_pool_size",
    "z3fold_map",
    "z3fold_stats",
    "z3fold_unmap",
    "z3fold_zpool_driver",
)

NCHUNKS_ORDER = 6
CHUNK_SHIFT = PAGE_SHIFT - NCHUNKS_ORDER
#: 64 bytes.
CHUNK_SIZE = 1 << CHUNK_SHIFT
#: ``sizeof(struct z3fold_header)`` on x86_64 without lock debugging (v5.4 - v6.14): ``buddy``
#: (a list_head, 16 bytes), ``page_lock`` (spinlock_t, 4), ``refcount`` (kref, 4), ``work``
#: (work_struct, 32), ``slots`` and ``pool`` (pointers, 8 each), ``cpu`` (short) and the four
#: ``unsigned short`` chunk fields (10), the three 2-bit fields (one unsigned short, 2): 84
#: bytes, 88 with the struct's 8-byte alignment. (mm/z3fold.c's comment still says 63 chunks:
#: it predates ``work``, ``slots`` and ``pool``.)
Z3FOLD_HEADER_SIZE = 88
#: ``round_up(sizeof(struct z3fold_header), CHUNK_SIZE)``: 128 bytes, two chunks.
ZHDR_SIZE_ALIGNED = -(-Z3FOLD_HEADER_SIZE // CHUNK_SIZE) * CHUNK_SIZE
ZHDR_CHUNKS = ZHDR_SIZE_ALIGNED >> CHUNK_SHIFT
#: 64.
TOTAL_CHUNKS = PAGE_SIZE >> CHUNK_SHIFT
#: 62 chunks for the buddies.
NCHUNKS = TOTAL_CHUNKS - ZHDR_CHUNKS
#: A MIDDLE object moves only to close a gap of at least this many chunks.
BIG_CHUNK_GAP = 3

#: ``enum buddy``.
HEADLESS, FIRST, MIDDLE, LAST = 0, 1, 2, 3


class _Page:
    """``struct z3fold_header`` of one page, plus its objects by buddy (the slots)."""

    __slots__ = ("addr", "cpu", "first_chunks", "foreign_handles", "headless", "last_chunks",
                 "mapped_count", "middle_chunks", "middle_mapped", "objs", "pfn", "start_middle",
                 "ub")

    def __init__(self, pfn: int, headless: bool) -> None:
        self.pfn = pfn
        self.addr = pfn << PAGE_SHIFT
        self.headless = headless
        self.first_chunks = 0
        self.middle_chunks = 0
        self.last_chunks = 0
        self.start_middle = 0
        self.mapped_count = 0
        self.middle_mapped = False
        self.foreign_handles = 0
        self.cpu = -1
        self.ub: tuple[FreeLists[Any], int] | None = None  # the unbuddied list it is on
        self.objs: dict[int, _Obj] = {}  # buddy -> object


class _Obj(BuddyObj):
    __slots__ = ("foreign",)
    page: _Page

    def __init__(self, page: _Page, bud: int, size: int) -> None:
        super().__init__(page, bud, size)
        self.foreign = False  # moved here from another page: its slot lives there


class Z3foldPool(BuddyPool[_Obj]):
    """``struct z3fold_pool``."""

    kind = "z3fold"
    __slots__ = ("compactions", "single_moves", "unbuddied")

    def __init__(self, name: str, mem: PhysMem) -> None:
        super().__init__(name, mem)
        # Per CPU, NCHUNKS lists by free chunks.
        self.unbuddied: sched.PerCpu[FreeLists[_Page]] = sched.PerCpu(
            lambda cpu: FreeLists(NCHUNKS)
        )
        self.compactions = 0
        self.single_moves = 0


@dataclass(frozen=True)
class Z3foldStats:
    """Pages and objects of a z3fold pool, and the in-page and single-buddy moves so far."""

    pages: int
    objects: int
    headless: int
    in_page_compactions: int
    single_buddy_moves: int


def z3fold_create_pool(name: str = "z3fold", gfp: int = 0, *, mem: PhysMem | None = None
                       ) -> Z3foldPool:
    if gfp & __GFP_DIRECT_RECLAIM:
        sched.might_sleep()  # kzalloc(sizeof(struct z3fold_pool), gfp)
    return Z3foldPool(name, mem or default_memory())


def z3fold_destroy_pool(pool: Z3foldPool) -> None:
    """Free the pool and every page it still holds."""
    pool.destroying()
    pages = {id(obj.page): obj.page for obj in pool._handles.values()}
    for page in pages.values():
        pool.memory.free_page(page.pfn)
    for _cpu, lists in pool.unbuddied.items():
        lists.clear()
    pool.destroyed()


def _num_free_chunks(p: _Page) -> int:
    """The largest run of free chunks a new object could take."""
    if p.middle_chunks:
        before = 0 if p.first_chunks else p.start_middle - ZHDR_CHUNKS
        after = 0 if p.last_chunks else TOTAL_CHUNKS - (p.start_middle + p.middle_chunks)
        return max(before, after)
    return NCHUNKS - p.first_chunks - p.last_chunks


def _get_free_buddy(p: _Page, chunks: int) -> int:
    if p.middle_chunks:
        if not p.first_chunks and chunks <= p.start_middle - ZHDR_CHUNKS:
            return FIRST
        if not p.last_chunks:
            return LAST
        return HEADLESS
    if not p.first_chunks:
        return FIRST
    if not p.last_chunks:
        return LAST
    return MIDDLE


def _add_to_unbuddied(pool: Z3foldPool, p: _Page) -> None:
    if p.first_chunks == 0 or p.last_chunks == 0 or p.middle_chunks == 0:
        pool.unbuddied.this_cpu().add(_num_free_chunks(p), p)
        p.cpu = sched.smp_processor_id()


def _del_from_list(p: _Page) -> None:
    FreeLists.remove(p)
    p.cpu = -1


def _find_page(pool: Z3foldPool, chunks: int) -> _Page | None:
    """``__z3fold_alloc``: this CPU's lists from `chunks` up, then an exact fit elsewhere."""
    me = sched.smp_processor_id()
    p = pool.unbuddied.per_cpu(me).first_fit(chunks)
    if p is None:
        for cpu, other in pool.unbuddied.items():
            if cpu != me:
                p = other.first_fit(chunks, exact=True)
                if p is not None:
                    break
    if p is not None:
        p.cpu = -1
    return p


def _place(p: _Page, bud: int, chunks: int) -> None:
    if bud == FIRST:
        p.first_chunks = chunks
    elif bud == LAST:
        p.last_chunks = chunks
    else:
        p.middle_chunks = chunks
        p.start_middle = p.first_chunks + ZHDR_CHUNKS


def _buddy_addr(p: _Page, bud: int) -> int:
    if bud == FIRST:
        return p.addr + ZHDR_SIZE_ALIGNED
    if bud == MIDDLE:
        return p.addr + (p.start_middle << CHUNK_SHIFT)
    if bud == LAST:
        return p.addr + PAGE_SIZE - (p.last_chunks << CHUNK_SHIFT)
    return p.addr


def z3fold_alloc(pool: Z3foldPool, size: int, gfp: int) -> tuple[int, int]:
    """``(0, handle)``; ``-EINVAL`` for size 0 or ``__GFP_HIGHMEM``, ``-ENOSPC`` above a page,
    ``-ENOMEM`` when no page."""
    ret = pool.alloc_refused(size, gfp, PAGE_SIZE)
    if ret:
        return ret, 0
    chunks = (size + CHUNK_SIZE - 1) >> CHUNK_SHIFT
    page: _Page | None = None
    if size > PAGE_SIZE - ZHDR_SIZE_ALIGNED - CHUNK_SIZE:
        bud = HEADLESS
    else:
        page = _find_page(pool, chunks)
        bud = FIRST
        if page is not None:
            bud = _get_free_buddy(page, chunks)
            if bud == HEADLESS:  # the lists lied: the kernel WARNs and retries
                raise ZpoolError("z3fold: No free chunks in unbuddied")
    if page is None:
        pfn = pool.memory.alloc_page(gfp)
        if pfn is None:
            return -errno.ENOMEM, 0
        page = _Page(pfn, bud == HEADLESS)
        pool.pages_nr += 1
    if bud != HEADLESS:
        _place(page, bud, chunks)
        _add_to_unbuddied(pool, page)
    obj = _Obj(page, bud, size)
    page.objs[bud] = obj
    return 0, pool.add(obj)


def _release_page(pool: Z3foldPool, p: _Page) -> None:
    _del_from_list(p)
    pool.memory.free_page(p.pfn)
    pool.pages_nr -= 1


def _move(pool: Z3foldPool, src: int, dst: int, n: int) -> None:
    mem = pool.mem
    mem[dst : dst + n] = bytes(mem[src : src + n])


def _compact_page(pool: Z3foldPool, p: _Page) -> bool:
    """``z3fold_compact_page``: move the MIDDLE object where it frees the most room."""
    if p.middle_mapped or not p.middle_chunks:
        return False
    n = p.middle_chunks << CHUNK_SHIFT
    src = p.addr + (p.start_middle << CHUNK_SHIFT)
    if p.first_chunks == 0 and p.last_chunks == 0:
        # Move to the beginning: MIDDLE becomes FIRST (the kernel's first_num++).
        _move(pool, src, p.addr + ZHDR_SIZE_ALIGNED, n)
        p.first_chunks = p.middle_chunks
        p.middle_chunks = 0
        p.start_middle = 0
        obj = p.objs.pop(MIDDLE)
        obj.bud = FIRST
        p.objs[FIRST] = obj
        pool.compactions += 1
        return True
    if (p.first_chunks and not p.last_chunks
            and p.start_middle - (p.first_chunks + ZHDR_CHUNKS) >= BIG_CHUNK_GAP):
        new_start = p.first_chunks + ZHDR_CHUNKS
    elif (p.last_chunks and not p.first_chunks
            and TOTAL_CHUNKS - (p.last_chunks + p.start_middle + p.middle_chunks)
            >= BIG_CHUNK_GAP):
        new_start = TOTAL_CHUNKS - p.last_chunks - p.middle_chunks
    else:
        return False
    _move(pool, src, p.addr + (new_start << CHUNK_SHIFT), n)
    p.start_middle = new_start
    pool.compactions += 1
    return True


def _compact_single_buddy(pool: Z3foldPool, p: _Page) -> bool:
    """Move the page's only object into another page with room; True if it moved."""
    (bud, obj), = p.objs.items()
    chunks = p.first_chunks if bud == FIRST else p.middle_chunks if bud == MIDDLE \
        else p.last_chunks
    new = _find_page(pool, chunks)
    if new is None:
        return False
    new_bud = _get_free_buddy(new, chunks)
    if new_bud == HEADLESS:
        _add_to_unbuddied(pool, new)
        return False
    src = _buddy_addr(p, bud)
    _place(new, new_bud, chunks)
    _move(pool, src, _buddy_addr(new, new_bud), chunks << CHUNK_SHIFT)
    new.foreign_handles += 1
    del p.objs[bud]
    obj.page = new
    obj.bud = new_bud
    obj.foreign = True
    new.objs[new_bud] = obj
    _add_to_unbuddied(pool, new)
    pool.single_moves += 1
    return True


def z3fold_free(pool: Z3foldPool, handle: int) -> None:
    """Free the object, then compact its page (or free it when empty)."""
    obj = pool.remove(handle)
    p = obj.page
    bud = obj.bud
    del p.objs[bud]
    if bud == HEADLESS:
        _release_page(pool, p)
        return
    if bud == FIRST:
        p.first_chunks = 0
    elif bud == MIDDLE:
        p.middle_chunks = 0
    else:
        p.last_chunks = 0
    if obj.foreign:
        p.foreign_handles -= 1
    if not p.objs:
        _release_page(pool, p)
        return
    # do_compact_page
    _del_from_list(p)
    if (not p.foreign_handles and len(p.objs) == 1 and p.mapped_count == 0
            and _compact_single_buddy(pool, p)):
        pool.memory.free_page(p.pfn)
        pool.pages_nr -= 1
        return
    _compact_page(pool, p)
    _add_to_unbuddied(pool, p)


def z3fold_map(pool: Z3foldPool, handle: int, mm: int = 0) -> memoryview:
    """The object's bytes in place (read-only for ``ZPOOL_MM_RO``); pins a MIDDLE object."""
    obj = pool.lookup_map(handle, mm)
    p = obj.page
    if obj.bud == MIDDLE:
        p.middle_mapped = True
    p.mapped_count += 1
    return obj.map(pool.mem, _buddy_addr(p, obj.bud), mm)


def z3fold_unmap(pool: Z3foldPool, handle: int) -> None:
    obj = pool.lookup("z3fold_unmap", handle)
    p = obj.page
    if obj.unmap("z3fold_unmap", handle) and obj.bud == MIDDLE:
        p.middle_mapped = False
    p.mapped_count -= 1


def z3fold_get_pool_size(pool: Z3foldPool) -> int:
    """Pages in the pool."""
    return pool.pages_nr


def z3fold_stats(pool: Z3foldPool) -> Z3foldStats:
    return Z3foldStats(
        pages=pool.pages_nr,
        objects=len(pool._handles),
        headless=sum(1 for o in pool._handles.values() if o.bud == HEADLESS),
        in_page_compactions=pool.compactions,
        single_buddy_moves=pool.single_moves,
    )


#: ``z3fold_zpool_driver``.
z3fold_zpool_driver = buddy_zpool_driver(
    "z3fold", create_pool=z3fold_create_pool, destroy=z3fold_destroy_pool, malloc=z3fold_alloc,
    free=z3fold_free, map=z3fold_map, unmap=z3fold_unmap,
)


def module_init() -> int:
    """``init_z3fold``: register the zpool driver (``MODULE_ALIAS("zpool-z3fold")``)."""
    zpool_register_driver(z3fold_zpool_driver)
    return 0


def module_exit() -> int:
    return zpool_unregister_driver(z3fold_zpool_driver)
