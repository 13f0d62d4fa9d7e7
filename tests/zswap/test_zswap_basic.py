"""Store, load and invalidate as the kernel's zswap does, on every zpool and load path."""

from __future__ import annotations

import errno

import pytest

import acomp.eras
import zswap
from acomp import PAGE_SIZE
from zswap import COUNTERS, PARAMETERS, VERSIONS, PhysMem, Zswap
from zswap.versions import PATHS

pytestmark = pytest.mark.anyio

ZPOOLS = ["zsmalloc", "zbud", "z3fold"]
# 5.11 on zsmalloc splats at every load (the mutex under the mapping): see test_zswap_seed.
# zbud and z3fold were removed in 6.15 (test_zswap_versions checks the error).
CASES = [(z, v) for z in ZPOOLS for v in VERSIONS
         if (z, v) != ("zsmalloc", "5.11") and z not in PATHS[v].removed]


def make(mem: PhysMem, zpool: str = "zsmalloc", **kw: object) -> Zswap:
    zs = Zswap(mem=mem, compressor="lz4-scomp", zpool=zpool, **kw)  # type: ignore[arg-type]
    zs.init(0)
    return zs


@pytest.mark.parametrize(("zpool", "version"), CASES)
async def test_every_page_comes_back(mem: PhysMem, pages: list[bytes], zpool: str,
                                     version: zswap.zswap.Version) -> None:
    zs = make(mem, zpool, version=version, max_pool_percent=100)
    rets = [await zs.store(0, i, p) for i, p in enumerate(pages)]
    kept = [i for i, r in enumerate(rets) if r == 0]
    # incompressible pages are rejected (lz4's code, as the kernel's: -EINVAL)
    assert set(rets) <= {0, -errno.EINVAL, -errno.ENOSPC}  # -ENOSPC: zbud's allocator
    assert len(kept) > len(pages) // 2
    assert zs.stored_pages == len(kept)
    assert zs.pool_total_size > 0
    out = bytearray(PAGE_SIZE)
    for i in kept:
        assert await zs.load(0, i, out) == 0
        assert out == pages[i]
    exclusive = zs.paths.load_is_exclusive()
    assert zs.stored_pages == (0 if exclusive else len(kept))
    for i, r in enumerate(rets):
        if r:
            assert await zs.load(0, i, out) == zs.load_miss  # -1 (frontswap) or -ENOENT
    zs.invalidate_area(0)
    assert zs.stored_pages == zs.same_filled_pages == zs.pool_total_size == 0
    assert mem.nr_used_pages == 0


async def test_exclusive_loads_parameter_before_6_9(mem: PhysMem, cpages: list[bytes]) -> None:
    zs = make(mem, "zbud", version="5.12", exclusive_loads=True)
    assert await zs.store(0, 1, cpages[3]) == 0
    out = bytearray(PAGE_SIZE)
    assert await zs.load(0, 1, out) == 0
    assert out == cpages[3]
    assert zs.entry(0, 1) is None
    assert await zs.load(0, 1, out) == -1  # zswap_frontswap_load: "entry was written back"


async def test_same_filled_pages_take_no_pool_memory(mem: PhysMem) -> None:
    zs = make(mem)
    zero = bytes(PAGE_SIZE)
    word = bytes.fromhex("efbeadde00000000") * (PAGE_SIZE // 8)
    assert await zs.store(0, 1, zero) == 0
    assert await zs.store(0, 2, bytearray(word)) == 0
    assert zs.same_filled_pages == 2 == zs.stored_pages
    assert zs.pool_total_size == 0
    assert mem.nr_used_pages == 0
    e = zs.entry(0, 2)
    assert e is not None
    assert e.length == 0
    assert e.value == word[:8]
    out = bytearray(b"x" * PAGE_SIZE)
    assert await zs.load(0, 2, memoryview(out)) == 0
    assert out == word
    assert await zs.load(0, 1, out) == 0
    assert out == zero
    assert zs.same_filled_pages == 0 == zs.stored_pages  # 6.15: exclusive


async def test_same_filled_disabled_compresses_the_page(mem: PhysMem) -> None:
    zs = make(mem, same_filled_pages_enabled=False)
    assert await zs.store(0, 1, bytes(PAGE_SIZE)) == 0
    assert zs.same_filled_pages == 0
    assert zs.stored_pages == 1
    assert zs.pool_total_size > 0


async def test_non_same_filled_disabled_keeps_only_same_filled(
        mem: PhysMem, pages: list[bytes]) -> None:
    zs = make(mem, non_same_filled_pages_enabled=False)
    text = next(p for p in pages if len(set(p)) > 2)
    assert await zs.store(0, 1, text) == -errno.EINVAL
    assert await zs.store(0, 2, bytes(PAGE_SIZE)) == 0
    assert zs.stored_pages == 1
    assert zs.same_filled_pages == 1
    assert all(v == 0 for k, v in zs.counters().items()
               if k.startswith("reject"))  # -EINVAL counts nothing


async def test_duplicate_offset_replaces_the_old_entry(mem: PhysMem, cpages: list[bytes]) -> None:
    zs = make(mem, version="5.12")
    a, b = cpages[4], cpages[5]
    assert await zs.store(0, 9, a) == 0
    assert await zs.store(0, 9, b) == 0
    assert zs.duplicate_entry == 1
    assert zs.stored_pages == 1
    out = bytearray(PAGE_SIZE)
    assert await zs.load(0, 9, out) == 0
    assert out == b


async def test_invalidate_page_and_area(mem: PhysMem, pages: list[bytes]) -> None:
    zs = make(mem, version="5.12")
    zs.init(1)
    for i, p in enumerate(pages[:16]):
        assert await zs.store(i % 2, i, p) in (0, -errno.EINVAL)
    n1 = len(zs.offsets(1))
    zs.invalidate_page(0, 0)
    zs.invalidate_page(0, 0)  # twice is harmless
    zs.invalidate_page(5, 0)  # no such area
    assert zs.entry(0, 0) is None
    zs.invalidate_area(0)
    assert zs.offsets(0) == []
    assert len(zs.offsets(1)) == n1 == zs.stored_pages
    assert await zs.store(0, 1, pages[1]) == -errno.ENODEV  # no tree until swapon again
    zs.invalidate_area(1)
    assert zs.stored_pages == zs.same_filled_pages == zs.pool_total_size == 0
    assert mem.nr_used_pages == 0  # every zpool page went back
    assert zs.statistics().entries == 0
    zs.init(0)
    assert await zs.store(0, 1, pages[1]) == 0


async def test_disabled_stops_stores_not_loads(mem: PhysMem, cpages: list[bytes]) -> None:
    zs = make(mem, version="5.12")
    assert await zs.store(0, 1, cpages[6]) == 0
    zs.enabled = False
    assert await zs.store(0, 2, cpages[6]) == -errno.ENODEV
    out = bytearray(PAGE_SIZE)
    assert await zs.load(0, 1, out) == 0
    assert out == cpages[6]


async def test_bad_buffers(mem: PhysMem, cpages: list[bytes]) -> None:
    zs = make(mem)
    assert await zs.store(0, 1, cpages[0][:100]) == -errno.EINVAL
    assert await zs.store(0, 1, cpages[6]) == 0
    assert await zs.load(0, 1, cpages[6]) == -errno.EINVAL  # read-only page
    assert await zs.load(0, 1, bytearray(100)) == -errno.EINVAL
    assert zs.stored_pages == 1


async def test_debugfs_counters(mem: PhysMem, pages: list[bytes]) -> None:
    zs = make(mem)
    for i, p in enumerate(pages[:8]):
        await zs.store(0, i, p)
    c = zs.counters()
    assert tuple(c) == COUNTERS
    assert c["stored_pages"] == zs.stored_pages > 0
    assert c["pool_total_size"] % PAGE_SIZE == 0
    assert zs.debugfs_read("stored_pages") == f"{zs.stored_pages}\n"
    with pytest.raises(FileNotFoundError):
        zs.debugfs_read("nope")
    lines = zs.debugfs_text().splitlines()
    files = zs.debugfs_files()  # 6.14's (test_zswap_versions has each version's)
    assert lines[0] == f"/sys/kernel/debug/zswap/pool_limit_hit:{c['pool_limit_hit']}"
    assert len(lines) == len(files) < len(COUNTERS)
    assert zs.compression_ratio() == c["stored_pages"] * PAGE_SIZE / c["pool_total_size"]


def test_parameters_read_like_sysfs(mem: PhysMem) -> None:
    zs = make(mem, version="6.8")  # the one kernel with all of them
    assert tuple(zs.params()) == PARAMETERS
    assert zs.get_param("enabled") == "Y\n"
    assert zs.get_param("max_pool_percent") == "20\n"
    assert zs.get_param("accept_threshold_percent") == "90\n"
    assert zs.get_param("zpool") == "zsmalloc\n"
    assert zs.get_param("compressor") == "lz4-scomp\n"
    assert zs.get_param("exclusive_loads") == "N\n"
    assert zs.set_param("max_pool_percent", "33") == 0
    assert zs.max_pool_percent == 33
    assert zs.set_param("max_pool_percent", "lots") == -errno.EINVAL
    assert zs.set_param("accept_threshold_percent", 0) == -errno.EINVAL
    assert zs.set_param("accept_threshold_percent", 101) == -errno.EINVAL
    assert zs.set_param("shrinker_enabled", "y") == 0
    assert zs.shrinker_enabled
    assert zs.set_param("enabled", "maybe") == -errno.EINVAL
    assert zs.set_param("no_such", 1) == -errno.ENOENT
    with pytest.raises(ValueError, match="version"):
        zs.version = "4.19"  # type: ignore[assignment]


def test_defaults_are_the_kernels() -> None:
    zs = Zswap(mem=PhysMem(64))
    assert zs.compressor in ("lzo", "lz4")
    assert zs.zpool == "zsmalloc"
    assert zs.version == zswap.DEFAULT_VERSION == acomp.eras.DEFAULT_KERNEL == "6.14"
    assert (zs.max_pool_percent, zs.accept_threshold_percent) == (20, 90)
    assert zs.same_filled_pages_enabled
    assert zs.non_same_filled_pages_enabled
    assert not zs.exclusive_loads
    assert not zs.shrinker_enabled
    assert zs.enabled
    with pytest.raises(ValueError, match="compressor"):
        Zswap(mem=PhysMem(64), compressor="no-such-algorithm")
    with pytest.raises(ValueError, match="zpool"):
        Zswap(mem=PhysMem(64), zpool="zblah")
    zs.close()


_W = b"abcdefgh"


@pytest.mark.parametrize(("page", "word"), [
    (bytes(PAGE_SIZE), bytes(8)),
    (b"\x01" * PAGE_SIZE, b"\x01" * 8),
    (b"ab" * (PAGE_SIZE // 2), b"abababab"),
    (_W * (PAGE_SIZE // 8), _W),
    (_W * (PAGE_SIZE // 8 - 1) + b"abcdefgi", None),  # the last word differs
    (b"abcdefgi" + _W * (PAGE_SIZE // 8 - 1), None),  # the first
    (_W * 200 + b"abcdefgi" + _W * (PAGE_SIZE // 8 - 201), None),  # one in the middle
    (bytes(PAGE_SIZE - 1) + b"\x01", None),
    (b"a" + bytes(PAGE_SIZE - 1), None),
], ids=["zero", "ones", "period-2", "word", "last", "first", "middle", "last-byte",
        "first-byte"])
def test_same_filled_word_is_the_repeated_word_or_none(page: bytes, word: bytes | None
                                                       ) -> None:
    assert zswap.zswap.same_filled_word(memoryview(page)) == word
    assert zswap.zswap.same_filled_word(memoryview(bytearray(page))) == word


@pytest.mark.parametrize(("version", "at_once"), [("6.9", False), ("6.10", False),
                                                  ("6.11", True), ("6.14", True)])
async def test_pool_total_size_is_a_counter_before_6_11_and_computed_after(
        mem: PhysMem, version: str, at_once: bool) -> None:
    """Before v6.11 ``zswap_update_total_size`` sets a counter at stores and frees: a zsmalloc
    compaction in between shows at the next one. From v6.11 the file reads
    ``zswap_total_pages()``: the pool's size at that moment."""
    from zswap import zsmalloc

    zs = make(mem, version=version, max_pool_percent=100)
    page = (b"pool_total_size " * 100 + bytes(range(256)) * 10)[:PAGE_SIZE]
    for i in range(256):  # one size class, 4 of 5 objects freed: compaction frees zspages
        assert await zs.store(0, i, page[i:] + page[:i]) == 0
    for i in range(256):
        if i % 5:
            zs.invalidate_page(0, i)
    before = zs.pool_total_size
    zspool = zs.pools[0].zpool.pool
    assert before == zsmalloc.zs_get_total_pages(zspool) * PAGE_SIZE
    assert zsmalloc.zs_compact(zspool) > 0
    now = zsmalloc.zs_get_total_pages(zspool) * PAGE_SIZE
    assert now < before
    assert zs.pool_total_size == (now if at_once else before)
    zs.invalidate_page(0, 0)  # a free: the counter catches up
    assert zs.pool_total_size == zsmalloc.zs_get_total_pages(zspool) * PAGE_SIZE
    zs.close()
    assert zs.pool_total_size == 0
