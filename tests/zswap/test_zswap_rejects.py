"""Each rejection moves the counter the kernel's does, and only that one; the limit's
hysteresis (pool_limit_hit, then refusals until the pool is under the accept threshold)."""

from __future__ import annotations

import errno
import os

import lz4.block
import pytest
from zswap_helpers import ASYNC, PLAN, random_prefix_page

from acomp import PAGE_SIZE, faulty
from zswap import PhysMem, Zswap

pytestmark = pytest.mark.anyio


def make(mem: PhysMem, zpool: str = "zsmalloc", compressor: str = "lz4-scomp",
         **kw: object) -> Zswap:
    zs = Zswap(mem=mem, compressor=compressor, zpool=zpool, **kw)  # type: ignore[arg-type]
    zs.init(0)
    return zs


def moved(zs: Zswap) -> dict[str, int]:
    """The counters that are not 0, but the gauges."""
    return {k: v for k, v in zs.counters().items()
            if v and k not in ("stored_pages", "pool_total_size", "same_filled_pages")}


@pytest.mark.parametrize("zpool", ["zsmalloc", "zbud", "z3fold"])
@pytest.mark.parametrize(("compressor", "err", "counter"), [
    # crypto/lz4.c: LZ4_compress_default() into a page fails, -EINVAL: v6.9 counts it as a
    # failed compression, not a poor one
    ("lz4-scomp", -errno.EINVAL, "reject_compress_fail"),
    # crypto/lzo.c writes into the 128 KiB scratch; scomp's v6.8 check says -ENOSPC: poor
    ("lzo-scomp", -errno.ENOSPC, "reject_compress_poor"),
])
async def test_incompressible_page_is_rejected_with_the_compressors_code(
        mem: PhysMem, zpool: str, compressor: str, err: int, counter: str) -> None:
    page = os.urandom(PAGE_SIZE)  # needs more than a page
    zs = make(mem, zpool, compressor=compressor)
    assert await zs.store(0, 1, page) == err
    assert moved(zs) == {counter: 1}
    assert zs.stored_pages == 0
    assert mem.nr_used_pages == 0


async def test_poor_compression_on_zbud_is_the_allocators_enospc(mem: PhysMem) -> None:
    """A page lz4 squeezes to ~4030 bytes fits zsmalloc (<= a page) but not zbud (<= 3968)."""
    page = random_prefix_page(1, 4000)
    dlen = len(lz4.block.compress(page, store_size=False))
    assert 3968 < dlen <= PAGE_SIZE
    zb = make(mem, "zbud")
    assert await zb.store(0, 1, page) == -errno.ENOSPC
    assert moved(zb) == {"reject_compress_poor": 1}
    zsm = make(mem, "zsmalloc")
    assert await zsm.store(0, 1, page) == 0
    assert moved(zsm) == {}
    e = zsm.entry(0, 1)
    assert e is not None
    assert e.length == dlen


async def test_alloc_failure_when_memory_is_exhausted(cpages: list[bytes]) -> None:
    mem = PhysMem(16)
    zs = make(mem, "zbud", max_pool_percent=100)  # the limit never applies first
    rets = [await zs.store(0, i, cpages[i % len(cpages)]) for i in range(48)]
    assert -errno.ENOMEM in rets
    assert mem.nr_free_pages == 0
    assert zs.reject_alloc_fail == rets.count(-errno.ENOMEM) > 0
    assert set(moved(zs)) == {"reject_alloc_fail"}
    assert zs.stored_pages == rets.count(0) > 0
    zs.invalidate_area(0)
    assert mem.nr_used_pages == 0


async def test_compression_error_is_compress_fail(mem: PhysMem, cpages: list[bytes]) -> None:
    zs = make(mem, compressor=ASYNC)
    faulty.set_plan(PLAN, error=1.0, errors=(-errno.EIO,))
    assert await zs.store(0, 1, cpages[0]) == -errno.EIO
    assert moved(zs) == {"reject_compress_fail": 1}
    faulty.set_plan(PLAN, error=0.0)
    assert await zs.store(0, 1, cpages[0]) == 0
    zs.close()


async def test_entry_cache_exhausted_is_kmemcache_fail(mem: PhysMem, cpages: list[bytes]) -> None:
    zs = make(mem, max_entries=3)
    assert [await zs.store(0, i, cpages[i]) for i in range(4)] == [0, 0, 0, -errno.ENOMEM]
    assert moved(zs) == {"reject_kmemcache_fail": 1}
    zs.invalidate_page(0, 0)
    assert await zs.store(0, 4, cpages[4]) == 0


async def test_decompression_failure_is_eio_and_keeps_the_entry(
        mem: PhysMem, cpages: list[bytes]) -> None:
    zs = make(mem, compressor=ASYNC)
    assert await zs.store(0, 1, cpages[2]) == 0
    faulty.set_plan(PLAN, error=1.0, errors=(-errno.EIO,))
    out = bytearray(PAGE_SIZE)
    assert await zs.load(0, 1, out) == -errno.EIO  # v6.15: no BUG_ON
    assert moved(zs) == {"decompress_fail": 1}
    assert zs.stored_pages == 1  # not erased: the data is still there
    faulty.set_plan(PLAN, error=0.0)
    assert await zs.load(0, 1, out) == 0
    assert out == cpages[2]
    zs.close()


async def test_corrupt_output_of_wrong_length_is_decompress_fail(
        mem: PhysMem, cpages: list[bytes]) -> None:
    """A decompressor that "succeeds" with fewer than PAGE_SIZE bytes fails the load."""
    zs = make(mem, "zbud")
    assert await zs.store(0, 1, cpages[3]) == 0
    e = zs.entry(0, 1)
    assert e is not None
    e.length -= 7  # the stored object is now cut short: decompression cannot give a page
    out = bytearray(PAGE_SIZE)
    assert await zs.load(0, 1, out) == -errno.EIO
    assert zs.decompress_fail == 1
    e.length += 7
    zs.invalidate_area(0)
    assert mem.nr_used_pages == 0


def one_page_objects(n: int) -> list[bytes]:
    """Pages whose lz4 output (~2.4 KiB) takes a zbud page alone: pool pages == entries."""
    return [random_prefix_page(100 + i, 2400) for i in range(n)]


async def test_pool_limit_hit_and_the_accept_threshold_hysteresis() -> None:
    mem = PhysMem(1000)
    # max 5%: full above 50 pages; accept again below 1000 * 90% * 5% = 45 pages.
    zs = make(mem, "zbud", max_pool_percent=5, accept_threshold_percent=90)
    objs = one_page_objects(60)
    n = 0
    while (ret := await zs.store(0, n, objs[n])) == 0:
        n += 1
    assert ret == -errno.ENOMEM
    assert n == 51
    assert zs.pool_total_size == 51 * PAGE_SIZE
    assert zs.pool_limit_hit == 1
    assert zs.pool_reached_full
    assert await zs.store(0, 99, objs[59]) == -errno.ENOMEM
    assert zs.pool_limit_hit == 2  # still over the limit: counted again
    for i in range(5):  # 46 pages: under the limit, not under the accept threshold
        zs.invalidate_page(0, i)
    assert await zs.store(0, 99, objs[59]) == -errno.ENOMEM
    assert zs.pool_limit_hit == 2
    assert zs.pool_reached_full
    zs.invalidate_page(0, 5)
    zs.invalidate_page(0, 6)  # 44 pages
    assert await zs.store(0, 99, objs[59]) == 0
    assert not zs.pool_reached_full
    assert await zs.store(0, 98, objs[58]) == 0  # 45, 46 ...: accepted up to the limit again
    assert moved(zs) == {"pool_limit_hit": 2}
    assert zs.statistics().pools == 1


async def test_accept_threshold_100_disables_the_hysteresis() -> None:
    mem = PhysMem(1000)
    zs = make(mem, "zbud", max_pool_percent=5, accept_threshold_percent=100)
    objs = one_page_objects(53)
    n = 0
    while await zs.store(0, n, objs[n]) == 0:
        n += 1
    zs.invalidate_page(0, 0)  # 50 pages: at the limit, which is the accept threshold too
    assert await zs.store(0, 100, objs[52]) == -errno.ENOMEM
    zs.invalidate_page(0, 1)  # 49: under both, accepted at once
    assert await zs.store(0, 100, objs[52]) == 0
    assert zs.pool_limit_hit == 1
