"""Each kernel's zswap paths are one class of `zswap.versions`, chosen once per `Zswap.version`.

Kernel: mm/zswap.c, ``zswap_frontswap_load`` (v5.11, v5.12), ``zswap_decompress`` and
``zswap_compress`` (v6.9, v6.15).
"""

from __future__ import annotations

import errno

import pytest

from acomp import PAGE_SIZE
from zswap import VERSIONS, PhysMem, Zswap
from zswap.versions import (
    PATHS,
    Zswap511,
    Zswap512,
    Zswap609,
    Zswap613,
    Zswap615,
    ZswapPaths,
)

pytestmark = pytest.mark.anyio


def test_every_modelled_version_has_its_own_paths() -> None:
    assert tuple(PATHS) == VERSIONS
    released = [v for v in VERSIONS if v != "proposed"]
    classes = [PATHS[v] for v in released]
    assert classes == [Zswap511, Zswap512, Zswap609, Zswap613, Zswap615]
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
    assert issubclass(proposed, classes[-1])
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
