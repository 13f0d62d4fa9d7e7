"""The CPU drivers interoperate with the reference libraries in both directions."""

from __future__ import annotations

import shutil
import subprocess
import zlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import acomp
from acomp import corpus

pytestmark = pytest.mark.anyio


def _ref() -> dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes, int], bytes]]]:
    import lz4.block
    import zstandard

    def dfl(d: bytes) -> bytes:
        c = zlib.compressobj(6, zlib.DEFLATED, -11, 9)
        return c.compress(d) + c.flush()

    refs = {
        "lz4-scomp": (lambda d: lz4.block.compress(d, store_size=False),
                      lambda b, n: lz4.block.decompress(b, uncompressed_size=n)),
        "lz4hc-scomp": (lambda d: lz4.block.compress(d, mode="high_compression",
                                                     store_size=False),
                        lambda b, n: lz4.block.decompress(b, uncompressed_size=n)),
        "zstd-scomp": (lambda d: zstandard.ZstdCompressor(level=3).compress(d),
                       lambda b, n: zstandard.ZstdDecompressor().decompress(b, max_output_size=n)),
        "deflate-scomp": (dfl, lambda b, n: zlib.decompress(b, -11, n)),
    }
    try:
        import lzo

        refs["lzo-scomp"] = (lambda d: lzo.compress(d, 1, False),
                             lambda b, n: lzo.decompress(b, False, n))
    except ImportError:
        pass
    return refs


REFS = _ref()
PAGES = [p.tobytes() for p in corpus.pages(48, seed=7)]


@pytest.mark.parametrize("drv", sorted(REFS))
async def test_interop_both_ways_on_the_corpus(drv: str) -> None:
    ref_c, ref_d = REFS[drv]
    async with acomp.open(drv) as c:
        assert c.driver == drv
        for page in PAGES:
            blob = await c.compress(page)
            assert ref_d(blob, len(page)) == page  # ours decodes with the library
            assert await c.decompress(ref_c(page), len(page)) == page  # theirs with ours


@settings(max_examples=40, deadline=None)
@given(data=st.binary(min_size=1, max_size=3000), drv=st.sampled_from(sorted(REFS)))
def test_round_trip_property(data: bytes, drv: str) -> None:
    async def main() -> None:
        async with acomp.open(drv) as c:
            assert await c.decompress(await c.compress(data), len(data)) == data

    import anyio

    anyio.run(main)


@pytest.mark.skipif(shutil.which("lz4") is None, reason="lz4 command-line tool not installed")
def test_lz4_cli_decodes_our_blocks() -> None:
    # The CLI reads frames: wrap each block of ours in a minimal LZ4 frame (no checksums).
    import anyio
    import lz4.frame

    page = PAGES[3] * 4

    async def comp() -> bytes:
        async with acomp.open("lz4-scomp") as c:
            return await c.compress(page)

    blob = anyio.run(comp)
    header = lz4.frame.compress(b"", block_size=lz4.frame.BLOCKSIZE_MAX64KB,
                                content_checksum=False)[:7]
    frame = header + len(blob).to_bytes(4, "little") + blob + b"\x00\x00\x00\x00"
    out = subprocess.run(["lz4", "-d", "-c"], input=frame, capture_output=True, check=True)
    assert out.stdout == page


def test_missing_library_leaves_module_unloaded_with_reason() -> None:
    from acomp import kmod
    from acomp_drivers._scomp import scomp_module

    def make() -> list[acomp.internal.ScompAlg]:
        raise ImportError("No module named 'nosuchlib'")

    mod = scomp_module("tnolib", ("tnolib",), make, "nosuchlib")
    assert kmod.load_module(mod) < 0
    assert not mod.loaded
    assert "nosuchlib is not installed" in mod.reason
