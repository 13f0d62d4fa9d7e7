"""Changing the compressor or the zpool at run time makes a new pool; entries of old pools stay
readable until freed, and an old pool goes away with its last entry (``__zswap_param_set``)."""

from __future__ import annotations

import errno

import pytest
from zswap_helpers import assert_loads_back

from acomp import PAGE_SIZE, crypto_acomp_driver_name
from zswap import PhysMem, Zswap

pytestmark = pytest.mark.anyio


async def fill(zs: Zswap, pages: list[bytes], first: int) -> dict[int, bytes]:
    kept = {}
    for i, p in enumerate(pages):
        if await zs.store(0, first + i, p) == 0:
            kept[first + i] = p
    return kept


async def test_compressor_and_zpool_changes_keep_old_entries_readable(
        mem: PhysMem, cpages: list[bytes]) -> None:
    zs = Zswap(mem=mem, compressor="lz4-scomp", zpool="zsmalloc", version="5.12")
    zs.init(0)
    third = len(cpages) // 3
    kept = await fill(zs, cpages[:third], 0)
    zs.compressor = "zstd-scomp"
    assert zs.get_param("compressor") == "zstd-scomp\n"
    assert [p.tfm_name for p in zs.pools] == ["zstd-scomp", "lz4-scomp"]
    kept |= await fill(zs, cpages[third:2 * third], 100)
    zs.zpool = "z3fold"
    assert [(p.type, p.tfm_name) for p in zs.pools] == [
        ("z3fold", "zstd-scomp"), ("zsmalloc", "zstd-scomp"), ("zsmalloc", "lz4-scomp")]
    kept |= await fill(zs, cpages[2 * third:], 200)
    assert zs.stored_pages == len(kept)
    assert zs.pool_total_size == sum(
        p.zpool.driver.total_size(p.zpool.pool) for p in zs.pools)
    by_pool = {}
    for off in kept:
        e = zs.entry(0, off)
        assert e is not None
        assert e.pool is not None
        by_pool.setdefault(e.pool.tfm_name + "/" + e.pool.type, set()).add(off // 100)
    assert by_pool == {"lz4-scomp/zsmalloc": {0}, "zstd-scomp/zsmalloc": {1},
                       "zstd-scomp/z3fold": {2}}
    await assert_loads_back(zs, kept)  # every entry with its own pool's compressor
    # An old pool is freed with its last entry.
    for off in [o for o in kept if o < 100]:
        zs.invalidate_page(0, off)
    assert [p.tfm_name + "/" + p.type for p in zs.pools] == [
        "zstd-scomp/z3fold", "zstd-scomp/zsmalloc"]
    zs.invalidate_area(0)
    assert [p.type for p in zs.pools] == ["z3fold"]
    assert mem.nr_used_pages == 0


async def test_going_back_revives_the_old_pool(mem: PhysMem, cpages: list[bytes]) -> None:
    zs = Zswap(mem=mem, compressor="lz4-scomp", zpool="zbud")
    zs.init(0)
    first = zs.pools[0]
    assert await zs.store(0, 1, cpages[0]) == 0
    zs.compressor = "zstd-scomp"
    zs.compressor = "lz4-scomp"  # the lz4 pool still has an entry: it becomes current again
    assert zs.pools[0] is first
    assert len(zs.pools) == 1  # the zstd pool had no entries: gone
    assert first.kref == 2  # current + one entry
    zs.compressor = "lz4-scomp"  # no change
    assert zs.pools == (first,)


async def test_bad_names_change_nothing(mem: PhysMem) -> None:
    zs = Zswap(mem=mem, compressor="lz4-scomp", zpool="zsmalloc")
    assert zs.set_param("compressor", "no-such-alg") == -errno.ENOENT
    assert zs.set_param("zpool", "zblah") == -errno.ENOENT
    with pytest.raises(OSError, match="ENOENT") as ei:
        zs.zpool = "zblah"
    assert ei.value.errno == errno.ENOENT
    assert (zs.compressor, zs.zpool, len(zs.pools)) == ("lz4-scomp", "zsmalloc", 1)


def test_each_cpu_has_its_acomp_ctx(mem: PhysMem) -> None:
    zs = Zswap(mem=mem, compressor="lz4-scomp", zpool="zsmalloc")
    ctxs = [c for _, c in zs.pools[0].acomp_ctx.items()]
    assert len(ctxs) >= 1
    for c in ctxs:
        assert crypto_acomp_driver_name(c.acomp) == "lz4-scomp"
        assert c.req.data is c.wait  # crypto_req_done completes the ctx's wait
        assert c.req.base_flags & 0x400  # CRYPTO_TFM_REQ_MAY_BACKLOG
        assert len(c.dstmem) == 2 * PAGE_SIZE
        assert not c.is_sleepable
    old = zs.pools[0].acomp_ctx.per_cpu(0)
    zs.compressor = "zstd-scomp"
    # dstmem and the mutex are per CPU, shared by every pool (v5.11).
    new = zs.pools[0].acomp_ctx.per_cpu(0)
    assert crypto_acomp_driver_name(new.acomp) == "zstd-scomp"
    assert new.dstmem is old.dstmem
    assert new.mutex is old.mutex
    assert old.acomp.freed  # the old pool had no entries: freed, its transforms too
    zs.close()
    assert zs.pools == ()
