"""Each kernel's zswap paths are one class of `zswap.versions`, chosen once per `Zswap.version`.

Kernel: mm/zswap.c, ``zswap_frontswap_load`` (v5.11, v5.12), ``zswap_decompress`` and
``zswap_compress`` (v6.9, v6.15).
"""

from __future__ import annotations

import errno
import random

import pytest
from zswap_helpers import assert_loads_back

from acomp import PAGE_SIZE, UnsupportedKernel
from zswap import COUNTERS, PARAMETERS, VERSIONS, PhysMem, Zswap
from zswap.versions import (
    PATHS,
    Zswap511,
    Zswap512,
    Zswap609,
    Zswap613,
    Zswap615,
    Zswap618,
    Zswap700,
    ZswapPaths,
)

pytestmark = pytest.mark.anyio


def test_every_modelled_version_has_its_own_paths() -> None:
    assert tuple(PATHS) == VERSIONS
    released = [v for v in VERSIONS if v != "proposed"]
    classes = [PATHS[v] for v in released]
    assert classes == [Zswap511, Zswap512, Zswap609, Zswap613, Zswap615, Zswap618, Zswap700]
    # Each kernel's decompression is its own function, not a shared one that branches; 6.13
    # changed the store only (large folios).
    assert len({c.decompress for c in classes}) == len(classes) - 1
    assert Zswap613.decompress is Zswap609.decompress
    assert Zswap613.large_folios
    assert not Zswap609.large_folios
    for v in released:
        cls = PATHS[v]
        assert cls.version == v
        assert cls.__doc__
        assert f"v{v}" in cls.__doc__
    # "proposed" is the newest kernel with the compress-batching series on top.
    proposed = PATHS["proposed"]
    assert proposed.version == "proposed"
    assert issubclass(proposed, Zswap615)
    assert proposed.compress_batching
    assert proposed.__doc__
    assert "compress-batching" in proposed.__doc__


@pytest.mark.parametrize("version", VERSIONS)
def test_the_paths_are_chosen_at_construction_and_when_the_version_is_set(
        version: str) -> None:
    zs = Zswap(mem=PhysMem(64), compressor="lz4-scomp", version=version)  # type: ignore[arg-type]
    paths = zs.paths
    assert type(paths) is PATHS[version]
    assert isinstance(paths, ZswapPaths)
    assert zs.paths is paths  # chosen once, not rebuilt per call
    other = "5.12" if version != "5.12" else "6.9"
    zs.version = other  # type: ignore[assignment]
    assert type(zs.paths) is PATHS[other]
    zs.close()


async def test_a_load_runs_the_chosen_kernels_decompression(
        mem: PhysMem, cpages: list[bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace v6.9's ``zswap_decompress`` only: a 6.9 zswap uses it, a 6.15 one does not."""
    calls: list[str] = []

    async def failing(self: ZswapPaths, entry: object, dst: memoryview) -> int:
        calls.append(self.version)
        return -errno.EIO

    monkeypatch.setattr(Zswap609, "decompress", failing)
    out = bytearray(PAGE_SIZE)
    for version, want in (("6.9", -errno.EIO), ("6.15", 0)):
        zs = Zswap(mem=mem, compressor="lz4-scomp", zpool="zsmalloc",
                   version=version)  # type: ignore[arg-type]
        zs.init(0)
        assert await zs.store(0, 1, cpages[0]) == 0
        assert await zs.load(0, 1, out) == want
        zs.close()
    assert calls == ["6.9"]


@pytest.mark.parametrize(("version", "exclusive"),
                         [("5.11", False), ("5.12", False), ("6.9", True), ("6.13", True),
                          ("6.15", True)])
def test_loads_are_exclusive_from_6_9_and_by_parameter_before(version: str,
                                                             exclusive: bool) -> None:
    zs = Zswap(mem=PhysMem(64), compressor="lz4-scomp", version=version)  # type: ignore[arg-type]
    assert zs.paths.load_is_exclusive() is exclusive
    zs.exclusive_loads = True
    assert zs.paths.load_is_exclusive()
    zs.close()


# -- zbud and z3fold removed in v6.15 (6df8bae8e851, 58ba73e521b3) ------------------------------


@pytest.mark.parametrize("version", ["6.15", "6.17", "6.18", "7.0", "proposed"])
@pytest.mark.parametrize("zpool", ["zbud", "z3fold"])
def test_zbud_and_z3fold_are_an_error_from_6_15(zpool: str, version: str) -> None:
    with pytest.raises(UnsupportedKernel, match=rf"zpool {zpool} was removed in v6\.15"):
        Zswap(mem=PhysMem(64), compressor="lz4-scomp", zpool=zpool, version=version)


def test_a_6_15_zswap_refuses_them_as_its_zpool_parameter_does() -> None:
    """mm/zswap.c v6.15 __zswap_param_set: "zpool %s not available" and -ENOENT."""
    zs = Zswap(mem=PhysMem(64), compressor="lz4-scomp", version="6.15")
    assert zs.set_param("zpool", "zbud") == -errno.ENOENT
    assert zs.zpool == "zsmalloc"
    old = Zswap(mem=PhysMem(64), compressor="lz4-scomp", zpool="z3fold", version="6.14")
    with pytest.raises(UnsupportedKernel, match=r"z3fold was removed in v6\.15"):
        old.version = "6.15"
    assert old.version == "6.14"
    zs.close()
    old.close()


# -- each version's files ---------------------------------------------------------------------


@pytest.mark.parametrize(("version", "gone", "there"), [
    ("5.11", {"reject_compress_fail", "decompress_fail", "stored_incompressible_pages",
              "non_same_filled_pages_enabled", "exclusive_loads", "shrinker_enabled"},
     {"duplicate_entry", "same_filled_pages", "zpool", "same_filled_pages_enabled"}),
    ("6.8", {"decompress_fail", "stored_incompressible_pages"},
     {"reject_compress_fail", "duplicate_entry", "exclusive_loads", "shrinker_enabled",
      "non_same_filled_pages_enabled"}),
    ("6.14", {"duplicate_entry", "same_filled_pages", "decompress_fail", "exclusive_loads",
              "same_filled_pages_enabled", "non_same_filled_pages_enabled"},
     {"reject_compress_fail", "zpool", "shrinker_enabled"}),
    ("6.15", {"stored_incompressible_pages", "same_filled_pages"},
     {"decompress_fail", "zpool"}),
    ("6.18", {"zpool", "duplicate_entry"}, {"stored_incompressible_pages", "decompress_fail"}),
])
def test_each_version_has_its_own_debugfs_files_and_parameters(
        version: str, gone: set[str], there: set[str]) -> None:
    """The debugfs files (zswap_debugfs_init) and module_param()s of mm/zswap.c per version."""
    zs = Zswap(mem=PhysMem(64), compressor="lz4-scomp", version=version)
    files = set(zs.debugfs_files()) | set(zs.parameter_files())
    assert not gone & files
    assert there <= files
    assert set(zs.debugfs_files()) <= set(COUNTERS)
    text = zs.debugfs_text()
    for name in gone & set(COUNTERS):
        assert f"/{name}:" not in text
        with pytest.raises(FileNotFoundError):
            zs.debugfs_read(name)
    for name in gone & set(PARAMETERS):
        assert zs.set_param(name, "1") == -errno.ENOENT
        assert name not in zs.params()
    zs.close()


# -- v6.18: zsmalloc direct, incompressible pages kept as they are ----------------------------


def _incompressible(seed: int) -> bytes:
    return random.Random(seed).randbytes(PAGE_SIZE)


async def test_6_18_stores_an_incompressible_page_as_it_is(mem: PhysMem,
                                                          cpages: list[bytes]) -> None:
    """mm/zswap.c v6.18 zswap_compress: comp_ret || !dlen || dlen >= PAGE_SIZE with writeback
    enabled stores the page (length PAGE_SIZE, stored_incompressible_pages); zswap_decompress
    copies it back; zswap_entry_free takes it off the counter."""
    zs = Zswap(mem=mem, compressor="lz4-scomp", zpool="zsmalloc", version="6.18")
    zs.init(0)
    raw = _incompressible(1)
    assert await zs.store(0, 1, raw) == 0
    assert await zs.store(0, 2, cpages[0]) == 0
    e1, e2 = zs.entry(0, 1), zs.entry(0, 2)
    assert e1 is not None
    assert e2 is not None
    assert (e1.length, e1.incompressible) == (PAGE_SIZE, True)
    assert 0 < e2.length < PAGE_SIZE
    assert not e2.incompressible
    assert zs.stored_incompressible_pages == 1
    assert zs.stored_pages == 2
    assert zs.reject_compress_poor == zs.reject_compress_fail == 0
    assert "/sys/kernel/debug/zswap/stored_incompressible_pages:1" in zs.debugfs_text()
    out = bytearray(PAGE_SIZE)
    assert await zs.load(0, 1, out) == 0
    assert out == raw
    assert zs.stored_incompressible_pages == 0  # exclusive load freed it
    assert await zs.load(0, 2, out) == 0
    assert out == cpages[0]
    assert zs.stored_pages == 0
    assert mem.nr_used_pages == 0
    zs.close()


async def test_6_18_rejects_it_where_the_cgroup_has_writeback_off(mem: PhysMem) -> None:
    """memory.zswap.writeback = 0: the old rejection, counted as the compressor's error was
    (-ENOSPC: reject_compress_poor; -EINVAL, or none at all for dlen >= PAGE_SIZE:
    reject_compress_fail)."""
    zs = Zswap(mem=mem, compressor="lz4-scomp", version="6.18", writeback_enabled=False)
    zs.init(0)
    ret = await zs.store(0, 1, _incompressible(2))
    assert ret in (-errno.ENOSPC, -errno.EINVAL)
    assert zs.stored_pages == zs.stored_incompressible_pages == 0
    poor = ret == -errno.ENOSPC
    assert (zs.reject_compress_poor, zs.reject_compress_fail) == ((1, 0) if poor else (0, 1))
    zs.close()


async def test_before_6_18_an_incompressible_page_is_rejected(mem: PhysMem) -> None:
    zs = Zswap(mem=mem, compressor="lz4-scomp", version="6.15")
    zs.init(0)
    assert await zs.store(0, 1, _incompressible(3)) < 0
    assert zs.stored_pages == zs.stored_incompressible_pages == 0
    assert zs.reject_compress_poor + zs.reject_compress_fail == 1
    zs.close()


async def test_6_18_has_no_zpool_parameter_and_calls_zsmalloc_directly(
        mem: PhysMem, cpages: list[bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    """"mm: zswap: interact directly with zsmalloc": no zpool_* call on the store or load."""
    import zswap.versions as versions
    import zswap.zpool as zpool_mod

    zs = Zswap(mem=mem, compressor="lz4-scomp", version="6.18")
    zs.init(0)
    assert "zpool" not in zs.params()
    assert zs.set_param("zpool", "zsmalloc") == -errno.ENOENT

    def no_zpool(*a: object) -> None:
        raise AssertionError("zpool called in v6.18")

    for name in ("zpool_malloc", "zpool_obj_write", "zpool_obj_read_begin", "zpool_map_handle"):
        monkeypatch.setattr(zpool_mod, name, no_zpool)
        if hasattr(versions, name):
            monkeypatch.setattr(versions, name, no_zpool)
    for op in ("malloc", "map", "unmap"):  # the zpool driver's calls, bound to the pool
        monkeypatch.setattr(zs.pools[0], op, no_zpool)
    assert await zs.store(0, 1, cpages[1]) == 0
    out = bytearray(PAGE_SIZE)
    assert await zs.load(0, 1, out) == 0
    assert out == cpages[1]
    zs.close()


@pytest.mark.parametrize(("version", "miss"), [
    ("5.11", -1), ("5.12", -1), ("6.4", -1),  # frontswap
    ("6.5", -errno.ENOENT), ("6.14", -errno.ENOENT), ("6.18", -errno.ENOENT),
])
async def test_load_of_a_missing_entry_returns_what_that_kernel_returned(
        version: str, miss: int) -> None:
    """mm/zswap.c zswap_frontswap_load (v5.11 - v6.4): no entry ("entry was written back") is
    ``return -1``; frontswap went in v6.5 ("mm: kill frontswap") and zswap_load's miss is
    false there, -ENOENT in the int zswap_load (modelled as -ENOENT from v6.5)."""
    zs = Zswap(mem=PhysMem(64), compressor="lz4-scomp", version=version)
    zs.init(0)
    out = bytearray(PAGE_SIZE)
    try:
        assert zs.load_miss == miss
        assert await zs.load(0, 5, out) == miss  # never stored
        assert await zs.load(7, 5, out) == miss  # a swap type zswap was not told about
        page = (b"miss " * 1000)[:PAGE_SIZE]
        assert await zs.store(0, 5, page) == 0
        zs.invalidate_page(0, 5)
        assert await zs.load(0, 5, out) == miss  # gone
        assert await zs.load_batch(0, [5, 6], [out, bytearray(PAGE_SIZE)]) == [miss, miss]
    finally:
        zs.close()


async def test_frontswap_era_swap_in_reads_the_device_on_a_miss() -> None:
    """mm/frontswap.c __frontswap_load (v5.11): a nonzero return from zswap_frontswap_load
    means the page is not in zswap and swap_readpage reads it from the device."""
    from zswap import SwapArea, SwapDevice

    zs = Zswap(mem=PhysMem(64), compressor="lz4-scomp", version="5.11")
    area = SwapArea(SwapDevice(None, 8), zs)
    try:
        text = bytearray((b"frontswap " * 500)[:PAGE_SIZE])
        off = await area.swap_out(text)
        assert area.in_zswap(off)
        zs.invalidate_page(area.type, off)  # zswap dropped it, the frontswap bit is still set
        out = bytearray(PAGE_SIZE)
        assert await area.swap_in(off, out) == 0  # -1 from zswap: read from the device
        st = area.statistics()
        assert (st.zswap_loads, st.device_reads, st.io_errors) == (0, 1, 0)
    finally:
        area.close()
        zs.close()


async def test_v7_0_decompresses_straight_from_the_zsmalloc_scatterlist() -> None:
    """mm/zswap.c (v7.0) zswap_decompress: zs_obj_read_sg_begin(pool->zs_pool, handle, input,
    entry->length) and acomp_request_set_params(req, input, &output, entry->length,
    PAGE_SIZE): the compressor reads the pool's pages, two entries for an object that spans
    two (v6.18 read it through zs_obj_read_begin, copied into acomp_ctx->buffer)."""
    import numpy as np
    from zswap_helpers import random_prefix_page

    from acomp.testing import FakeAsyncDriver, Step
    from zswap import zsmalloc

    seen: list[tuple[int, bool]] = []  # each decompression's (entries, reads the pool's pages)
    pool_mem: list[np.ndarray] = []

    def script(num: int, req: object, op: str) -> Step:
        if op == "decompress" and pool_mem:
            src = req.src  # type: ignore[attr-defined]
            seen.append((len(src), all(np.shares_memory(np.frombuffer(e, np.uint8), pool_mem[0])
                                       for e in src)))
        return Step()

    with FakeAsyncDriver(script, name="fakesg", driver="fakesg-async"):
        for version, want in (("7.0", (2, True)), ("6.18", (1, False))):
            seen.clear()
            zs = Zswap(mem=PhysMem(256), compressor="fakesg-async", version=version,
                       max_pool_percent=100)
            zs.init(0)
            try:
                assert type(zs.paths) is (Zswap700 if version == "7.0" else Zswap618)
                zp = zs.pools[0].zpool.pool
                pool_mem[:] = [np.frombuffer(zs.mem.mem, np.uint8)]
                pages = {}
                spanning = inside = None
                for off in range(1, 40):
                    pages[off] = random_prefix_page(off, 1100)
                    assert await zs.store(0, off, pages[off]) == 0
                    e = zs.entry(0, off)
                    assert e is not None
                    if zsmalloc.zs_obj_info(zp, e.handle).spans:
                        spanning = spanning or off
                    else:
                        inside = inside or off
                assert spanning is not None
                assert inside is not None
                out = bytearray(PAGE_SIZE)
                assert await zs.load(0, spanning, out) == 0
                assert out == pages[spanning]
                assert seen == [want]
                assert await zs.load(0, inside, out) == 0
                assert out == pages[inside]
                assert seen[1] == (1, True)  # inside one page: read in place in both
                assert zs.decompress_fail == 0
            finally:
                zs.close()


async def test_v7_0_incompressible_page_is_copied_out_of_the_scatterlist() -> None:
    """mm/zswap.c (v7.0) zswap_decompress: entry->length == PAGE_SIZE is memcpy_from_sglist of
    the object's one entry (a page-sized object is zsmalloc's huge class: a page of its own)."""
    import os

    from zswap import zsmalloc

    zs = Zswap(mem=PhysMem(256), compressor="lz4-scomp", version="7.0", max_pool_percent=100)
    zs.init(0)
    try:
        noise = {off: os.urandom(PAGE_SIZE) for off in range(1, 6)}
        for off, page in noise.items():
            assert await zs.store(0, off, page) == 0
        assert zs.stored_incompressible_pages == 5
        zp = zs.pools[0].zpool.pool
        e = zs.entry(0, 1)
        assert e is not None
        assert e.length == PAGE_SIZE
        assert zsmalloc.zs_obj_info(zp, e.handle).huge  # a whole page: the huge class
        await assert_loads_back(zs, noise)
        assert zs.stored_incompressible_pages == 0
    finally:
        zs.close()


async def test_v7_0_era_end_to_end_on_its_own_acomp_api() -> None:
    """ACOMP_KERNEL=7.0 (acomp.using_kernel): the acomp API of the 6.18 - 7.0 era under
    Zswap700's paths; objects that span two zsmalloc pages come back byte-exact through their
    two-entry scatterlists (mm/zswap.c v7.0 zswap_decompress)."""
    from zswap_helpers import random_prefix_page

    from acomp import using_kernel
    from zswap import zsmalloc

    with using_kernel("7.0"):
        zs = Zswap(mem=PhysMem(256), compressor="lz4-scomp", max_pool_percent=100)
        zs.init(0)
        try:
            assert type(zs.paths) is Zswap700
            pages = {off: random_prefix_page(off, 1100) for off in range(1, 30)}
            for off, page in pages.items():
                assert await zs.store(0, off, page) == 0
            zp = zs.pools[0].zpool.pool
            spans = [off for off in pages
                     if zsmalloc.zs_obj_info(zp, zs.entry(0, off).handle).spans]  # type: ignore[union-attr]
            assert spans
            await assert_loads_back(zs, pages)
            assert zs.decompress_fail == 0
        finally:
            zs.close()
