"""zbud and z3fold: where buddies go in the page, first fit, headless pages, and z3fold's
in-page and single-buddy compaction with handles that stay valid."""

from __future__ import annotations

from typing import Any

import pytest

from acomp import sched
from zswap import z3fold, zbud
from zswap.page import GFP_NOWAIT, PAGE_SIZE, PhysMem
from zswap.zpool import ZPOOL_MM_RW, ZpoolDriver


def _store(driver: ZpoolDriver, pool: Any, data: bytes) -> int:
    """Allocate an object for `data` through the backend's calls and write it: its handle."""
    ret, h = driver.malloc(pool, len(data), GFP_NOWAIT)
    assert ret == 0
    driver.map(pool, h, ZPOOL_MM_RW)[:] = data
    driver.unmap(pool, h)
    return h


def zb_store(pool: zbud.ZbudPool, data: bytes) -> int:
    return _store(zbud.zbud_zpool_driver, pool, data)


def z3_store(pool: z3fold.Z3foldPool, data: bytes) -> int:
    return _store(z3fold.z3fold_zpool_driver, pool, data)


def z3_load(pool: z3fold.Z3foldPool, h: int) -> bytes:
    out = bytes(z3fold.z3fold_map(pool, h, 1))
    z3fold.z3fold_unmap(pool, h)
    return out


def test_zbud_constants() -> None:
    assert (zbud.CHUNK_SIZE, zbud.NCHUNKS, zbud.ZBUD_MAX_SIZE) == (64, 63, 3968)
    assert (z3fold.CHUNK_SIZE, z3fold.TOTAL_CHUNKS) == (64, 64)


def test_z3fold_header_is_the_real_struct_rounded_to_chunks() -> None:
    """mm/z3fold.c (v5.4 - v6.14): ZHDR_SIZE_ALIGNED = round_up(sizeof(struct z3fold_header),
    CHUNK_SIZE). On x86_64 the struct is list_head (16), spinlock_t (4), kref (4), work_struct
    (32), two pointers (16), short cpu + four unsigned shorts (10) and one unsigned short of
    bit fields (2): 84 bytes, 88 aligned; two chunks, so 62 left for the buddies."""
    fields = 16 + 4 + 4 + 32 + 8 + 8 + 2 + 4 * 2 + 2
    assert fields == 84
    assert z3fold.Z3FOLD_HEADER_SIZE == -(-fields // 8) * 8 == 88
    assert z3fold.ZHDR_SIZE_ALIGNED == 128
    assert (z3fold.ZHDR_CHUNKS, z3fold.NCHUNKS) == (2, 62)


def test_z3fold_headless_threshold_follows_the_header(mem: PhysMem) -> None:
    """mm/z3fold.c z3fold_alloc: size > PAGE_SIZE - ZHDR_SIZE_ALIGNED - CHUNK_SIZE (3904) is a
    headless page; 3904 bytes (61 chunks) still fit after the two header chunks."""
    pool = z3fold.z3fold_create_pool("z", mem=mem)
    fits = z3_store(pool, b"f" * 3904)
    assert pool._handles[fits].bud == z3fold.FIRST
    page = mem.page_view(pool._handles[fits].page.pfn)
    assert bytes(page[128 : 128 + 3904]) == b"f" * 3904  # right after the 128-byte header
    alone = z3_store(pool, b"h" * 3905)
    assert pool._handles[alone].bud == z3fold.HEADLESS
    assert bytes(mem.page_view(pool._handles[alone].page.pfn)[:3905]) == b"h" * 3905
    assert z3fold.z3fold_stats(pool).headless == 1
    z3fold.z3fold_free(pool, fits)
    z3fold.z3fold_free(pool, alone)
    assert z3fold.z3fold_get_pool_size(pool) == 0


def test_zbud_first_after_header_last_at_page_end(mem: PhysMem) -> None:
    pool = zbud.zbud_create_pool("b", mem=mem)
    a = zb_store(pool, b"F" * 1000)
    b = zb_store(pool, b"L" * 1000)
    assert zbud.zbud_get_pool_size(pool) == 1
    pfn = pool._handles[a].page.pfn
    assert pool._handles[b].page.pfn == pfn
    page = mem.page_view(pfn)
    assert bytes(page[64:1064]) == b"F" * 1000
    last_start = PAGE_SIZE - 16 * 64  # 1000 bytes round up to 16 chunks
    assert bytes(page[last_start : last_start + 1000]) == b"L" * 1000
    c = zb_store(pool, b"x" * 10)  # at most two buddies: a new page
    assert zbud.zbud_get_pool_size(pool) == 2
    assert pool._handles[c].page.pfn != pfn


def test_zbud_first_fit_by_free_chunks(mem: PhysMem) -> None:
    pool = zbud.zbud_create_pool("b", mem=mem)
    zb_store(pool, b"a" * 3000)  # 47 chunks: 16 left
    zb_store(pool, b"b" * 2000)  # 32 chunks: 31 left
    assert zbud.zbud_get_pool_size(pool) == 2  # 32 chunks do not fit in the 16 left
    s = zbud.zbud_stats(pool)
    assert s.unbuddied[16] == 1
    assert s.unbuddied[31] == 1
    small = zb_store(pool, b"c" * 900)  # 15 chunks: the first fit is the 16-chunk page
    assert pool._handles[small].page.first_chunks == 47
    assert zbud.zbud_stats(pool).buddied == 1


def test_zbud_density_is_at_most_two_per_page(mem: PhysMem) -> None:
    pool = zbud.zbud_create_pool("b", mem=mem)
    for _ in range(100):
        zb_store(pool, b"t" * 64)
    assert zbud.zbud_get_pool_size(pool) == 50


def test_z3fold_three_buddies_and_headless(mem: PhysMem) -> None:
    pool = z3fold.z3fold_create_pool("z", mem=mem)
    hs = [z3_store(pool, bytes([i]) * 1000) for i in range(3)]
    assert z3fold.z3fold_get_pool_size(pool) == 1
    buds = sorted(pool._handles[h].bud for h in hs)
    assert buds == [z3fold.FIRST, z3fold.MIDDLE, z3fold.LAST]
    big = z3_store(pool, b"H" * 4000)
    assert pool._handles[big].bud == z3fold.HEADLESS
    assert bytes(mem.page_view(pool._handles[big].page.pfn)[:4000]) == b"H" * 4000
    assert z3fold.z3fold_stats(pool).headless == 1
    assert z3fold.z3fold_get_pool_size(pool) == 2
    z3fold.z3fold_free(pool, big)
    assert z3fold.z3fold_get_pool_size(pool) == 1


def test_z3fold_middle_moves_and_its_handle_follows(mem: PhysMem) -> None:
    pool = z3fold.z3fold_create_pool("z", mem=mem)
    first = z3_store(pool, b"1" * 640)  # 10 chunks
    last = z3_store(pool, b"3" * 640)
    middle = z3_store(pool, b"2" * 640)  # placed right after FIRST
    assert pool._handles[middle].bud == z3fold.MIDDLE
    z3fold.z3fold_free(pool, last)
    # FIRST and MIDDLE remain, MIDDLE already next to FIRST: nothing to gain.
    assert z3fold.z3fold_stats(pool).in_page_compactions == 0
    z3fold.z3fold_free(pool, first)
    # Only MIDDLE remains and no other page has room: it moves to the start, becoming FIRST.
    assert pool._handles[middle].bud == z3fold.FIRST
    assert z3fold.z3fold_stats(pool).in_page_compactions == 1
    assert z3_load(pool, middle) == b"2" * 640
    pfn = pool._handles[middle].page.pfn
    hdr = z3fold.ZHDR_SIZE_ALIGNED
    assert bytes(mem.page_view(pfn)[hdr : hdr + 640]) == b"2" * 640


def test_z3fold_mapped_middle_is_not_moved(mem: PhysMem) -> None:
    pool = z3fold.z3fold_create_pool("z", mem=mem)
    first = z3_store(pool, b"1" * 640)
    z3_store(pool, b"3" * 640)
    middle = z3_store(pool, b"2" * 640)
    view = z3fold.z3fold_map(pool, middle, 1)
    z3fold.z3fold_free(pool, first)
    assert pool._handles[middle].bud == z3fold.MIDDLE
    assert z3fold.z3fold_stats(pool).in_page_compactions == 0
    assert bytes(view) == b"2" * 640
    z3fold.z3fold_unmap(pool, middle)


def test_z3fold_single_buddy_moves_to_another_page(mem: PhysMem) -> None:
    pool = z3fold.z3fold_create_pool("z", mem=mem)
    a = z3_store(pool, b"a" * 2000)  # 32 chunks: page 1
    b = z3_store(pool, b"b" * 2000)  # page 2 (only 31 chunks left in page 1)
    c = z3_store(pool, b"c" * 640)  # fits in page 1 or 2
    assert z3fold.z3fold_get_pool_size(pool) == 2
    lone_page = pool._handles[a].page is not pool._handles[c].page
    victim = b if lone_page else a
    keep = a if lone_page else b
    z3fold.z3fold_free(pool, victim)
    # c's page now has c alone; the other page has room for it: c moves and a page is freed.
    assert z3fold.z3fold_get_pool_size(pool) == 1
    assert z3fold.z3fold_stats(pool).single_buddy_moves == 1
    assert pool._handles[c].page is pool._handles[keep].page
    assert z3_load(pool, c) == b"c" * 640
    assert z3_load(pool, keep) == (b"a" if keep == a else b"b") * 2000
    assert mem.nr_used_pages == 1


@pytest.mark.parametrize("n", [1, 7, 100])
def test_freeing_everything_returns_every_page(mem: PhysMem, n: int) -> None:
    zb = zbud.zbud_create_pool("b", mem=mem)
    z3 = z3fold.z3fold_create_pool("z", mem=mem)
    hb = [zb_store(zb, bytes(50 + 37 * i % 3900)) for i in range(n)]
    h3 = [z3_store(z3, bytes(50 + 37 * i % 4000)) for i in range(n)]
    for h in reversed(hb):
        zbud.zbud_free(zb, h)
    for h in h3:
        z3fold.z3fold_free(z3, h)
    assert mem.nr_used_pages == 0
    zbud.zbud_destroy_pool(zb)
    z3fold.z3fold_destroy_pool(z3)


def test_z3fold_unbuddied_lists_are_per_cpu(mem: PhysMem) -> None:
    pool = z3fold.z3fold_create_pool("z", mem=mem)
    a = z3_store(pool, b"a" * 1000)  # 16 chunks: its page is listed on CPU 0 with 46 free
    with sched.on_cpu(1):
        # CPU 1 has no lists of its own: an exact fit on another CPU's list is taken ...
        c = z3_store(pool, b"c" * (46 * 64))
        assert pool._handles[c].page is pool._handles[a].page
        # ... but only an exact one: no listed page has 40 chunks free, so a new page.
        b = z3_store(pool, b"b" * (40 * 64))
        assert pool._handles[b].page is not pool._handles[a].page
    assert z3fold.z3fold_get_pool_size(pool) == 2
    with sched.on_cpu(1):
        d = z3_store(pool, b"d" * (22 * 64))  # fits beside b, on CPU 1's own list
    assert pool._handles[d].page is pool._handles[b].page
    assert z3_load(pool, c) == b"c" * (46 * 64)
