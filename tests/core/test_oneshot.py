"""The Python layer's conveniences: ``acomp.compress`` / ``acomp.decompress`` one-shots (any
buffer, typed errors, both backends), and the live reprs (docstrings: test_docstrings.py)."""

from __future__ import annotations

import anyio
import pytest

import acomp
from acomp import corpus

PAGE = bytes(corpus.pages(1, seed=5)[0])
BUFFERS = [bytes, bytearray, memoryview]


@pytest.mark.parametrize("kind", BUFFERS, ids=lambda k: k.__name__)
@pytest.mark.parametrize("name", ["lz4-scomp", "zstd", "deflate-scomp"])
def test_one_shot_round_trip_of_any_buffer(kind: type, name: str) -> None:
    blob = acomp.compress(kind(PAGE), name)
    assert isinstance(blob, bytes)
    assert 0 < len(blob) < len(PAGE)
    assert acomp.decompress(kind(blob), len(PAGE), name) == PAGE


def test_one_shot_is_the_compressor_call() -> None:
    async def reused() -> list[bytes]:
        async with acomp.open("lz4-scomp") as c:
            return [await c.compress(PAGE), await c.decompress(await c.compress(PAGE), 4096)]

    comp, back = anyio.run(reused)
    assert acomp.compress(PAGE, "lz4-scomp") == comp
    assert acomp.decompress(comp, 4096, "lz4-scomp") == back == PAGE


def test_one_shot_runs_on_trio() -> None:
    blob = acomp.compress(PAGE, "lz4-scomp", backend="trio")
    assert acomp.decompress(blob, 4096, "lz4-scomp", backend="trio") == PAGE


def test_one_shot_errors_are_typed() -> None:
    blob = acomp.compress(PAGE, "lz4-scomp")
    with pytest.raises(acomp.OutputTooSmall):
        acomp.decompress(blob, 100, "lz4-scomp")
    with pytest.raises(acomp.BadData):
        acomp.decompress(b"\xff" * 64, 4096, "lz4-scomp")
    with pytest.raises(acomp.AlgorithmNotFound):
        acomp.compress(PAGE, "no-such-alg")
    with pytest.raises(ValueError, match="max_len"):
        acomp.decompress(blob, 0, "lz4-scomp")


def test_default_algorithm_is_lz4() -> None:
    blob = acomp.compress(PAGE)
    assert acomp.decompress(blob, 4096, "lz4-scomp") == PAGE  # lz4 format whatever the driver


def test_reprs_are_live() -> None:
    async def main() -> tuple[str, str, str, str, str]:
        async with acomp.open("lz4-scomp") as c:
            first = repr(c)
            await c.compress(PAGE)
            after = repr(c)
            tfm = repr(c.tfm)
        return first, after, repr(c), tfm, repr(c.tfm)

    first, after, closed, tfm, freed = anyio.run(main)
    assert first == ("<acomp.Compressor 'lz4' driver='lz4-scomp' sync, 0 compressed, "
                     "0 decompressed, 0 in flight>")
    assert "1 compressed" in after
    assert closed.endswith("closed>")
    assert tfm == "<CryptoAcomp 'lz4' driver='lz4-scomp' prio=0 sync>"
    assert freed == "<CryptoAcomp 'lz4' driver='lz4-scomp' prio=0 sync, freed>"
