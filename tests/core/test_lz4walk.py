"""lz4's offset-0 walk: the compiled module (mypyc, where pip built it) and the Python source
give the same answers, the prefilter never hides an offset-0 match, and the drivers refuse
offset 0 with the walk as Python too (so `make test` runs both)."""

from __future__ import annotations

import importlib.util
import pathlib
from collections.abc import Callable
from types import ModuleType

import lz4.block
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import acomp
import acomp_drivers._lz4safe as safe
import acomp_drivers._lz4walk as installed
from acomp import corpus
from acomp.scatterlist import sg_init_one

SRC = pathlib.Path(installed.__file__ or "").with_name("_lz4walk.py")


def _source() -> ModuleType:
    """drivers/_lz4walk.py as Python, whatever the import system would pick."""
    spec = importlib.util.spec_from_file_location("_lz4walk_source", SRC)
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


REF: Callable[[bytes], bool] = _source().walk
BLOCKS = [lz4.block.compress(p.tobytes(), store_size=False) for p in corpus.pages(64, seed=5)]


def _seq(lits: bytes, offset: int, mlen: int = 4) -> bytes:
    """One LZ4 sequence: token, literal length, literals, offset, match length."""
    ln, ml = len(lits), mlen - 4
    tok = (min(ln, 15) << 4) | min(ml, 15)
    out = bytearray([tok])
    for rest in ([ln - 15] if ln >= 15 else []):
        out += b"\xff" * (rest // 255) + bytes([rest % 255])
    out += lits + offset.to_bytes(2, "little")
    for rest in ([ml - 15] if ml >= 15 else []):
        out += b"\xff" * (rest // 255) + bytes([rest % 255])
    return bytes(out)


def _last(lits: bytes) -> bytes:
    ln = len(lits)
    head = bytes([min(ln, 15) << 4])
    if ln >= 15:
        head += b"\xff" * ((ln - 15) // 255) + bytes([(ln - 15) % 255])
    return head + lits


KNOWN = [
    (b"", False),
    (b"\x00", False),
    (b"\x00\x00", False),  # a token 0 then one byte: truncated, not an offset
    (b"\x00\x00\x00", True),  # no literals, offset 0
    (_seq(b"abcd", 0) + _last(b"efghi"), True),
    (_seq(b"abcd", 4) + _last(b"efghi"), False),
    (_seq(b"\x00" * 20, 1, 30) + _seq(b"x", 0) + _last(b"\x00" * 6), True),  # long runs first
    (_seq(b"\x00" * 300, 1, 300) + _last(b"\x00" * 6), False),  # zeros everywhere but offsets
    (_seq(b"ab" * 200, 2, 280) + _seq(b"", 0, 19) + _last(b"12345"), True),
    (_last(b"\x00\x00\x00\x00\x00"), False),  # zeros in the last literals only
]


@pytest.mark.parametrize(("block", "want"), KNOWN)
def test_known_blocks(block: bytes, want: bool) -> None:
    assert REF(block) is want
    assert installed.walk(block) is want
    assert safe.has_zero_offset(memoryview(block)) is want
    assert safe.has_zero_offset(bytearray(block)) is want


def test_library_blocks_have_no_offset_zero() -> None:
    assert not any(safe.has_zero_offset(b) for b in BLOCKS)
    assert sum(b"\x00\x00" in b for b in BLOCKS) > 10  # most of them take the walk


@st.composite
def _blocks(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=80))
    b = bytearray(draw(st.sampled_from(BLOCKS)))
    for _ in range(draw(st.integers(1, 4))):
        b[draw(st.integers(0, len(b) - 1))] = draw(st.sampled_from([0, 0, 15, 0xF0, 0xFF, 7]))
    return bytes(b[: draw(st.integers(0, len(b)))])


@settings(max_examples=300, deadline=None)
@given(_blocks())
def test_compiled_and_source_agree(block: bytes) -> None:
    assert installed.walk(block) is REF(block)


def test_compiled_where_built() -> None:
    """A compiled module next to the source is the one imported (and COMPILED says so)."""
    built = [p for p in SRC.parent.glob("_lz4walk.*") if p.suffix in (".so", ".pyd")]
    assert safe.COMPILED is bool(built)
    if not built:
        pytest.skip("the walk was not compiled here (no mypyc or no C compiler at install)")


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=1, max_size=40), st.integers(4, 80), st.binary(min_size=5,
                                                                          max_size=40))
def test_prefilter_never_hides_offset_zero(lits: bytes, mlen: int, tail: bytes) -> None:
    """Whatever the literals, liblz4's output of an offset-0 block is refused."""
    block = _seq(lits, 0, mlen) + _last(tail)
    try:
        out = lz4.block.decompress(block, uncompressed_size=len(lits) + mlen + len(tail))
    except lz4.block.LZ4BlockError:
        return  # the library refused it itself
    assert safe.refused(block, out)
    assert safe.refused(memoryview(bytearray(block)), out)


@pytest.fixture(params=["compiled-or-installed", "source"])
def walk_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "source":
        monkeypatch.setattr(safe, "_walk", REF)
    return request.param


@pytest.mark.parametrize("driver", ["lz4-scomp", "lz4hc-scomp"])
def test_drivers_refuse_offset_zero(driver: str, walk_kind: str) -> None:
    tfm = acomp.crypto_alloc_acomp(driver)
    req = acomp.acomp_request_alloc(tfm)
    assert req is not None
    try:
        for lits in (b"abcd", b"\x00" * 4, b"\xa7" * 20):
            blk = _seq(lits, 0, 8) + _last(b"efghi")
            out = bytearray(64)
            acomp.acomp_request_set_params(req, sg_init_one(blk), sg_init_one(out), len(blk), 64)
            assert acomp.crypto_acomp_decompress(req) == -22  # -EINVAL
            assert out == bytearray(64)  # nothing written
        good = BLOCKS[0]
        page = bytearray(acomp.PAGE_SIZE)
        acomp.acomp_request_set_params(req, sg_init_one(good), sg_init_one(page), len(good),
                                       acomp.PAGE_SIZE)
        assert acomp.crypto_acomp_decompress(req) == 0
        assert req.dlen == acomp.PAGE_SIZE
    finally:
        acomp.acomp_request_free(req)
        acomp.crypto_free_acomp(tfm)


def test_views_are_walked_as_they_read() -> None:
    """A view is walked for the bytes it shows (the whole-object fast path keeps to exact,
    contiguous views)."""
    blk = _seq(b"abcd", 0) + _last(b"efghi")
    assert safe.has_zero_offset(memoryview(blk))
    assert safe.has_zero_offset(memoryview(b"xyz" + blk)[3:])
    assert not safe.has_zero_offset(memoryview(blk)[:5])
    assert safe.has_zero_offset(memoryview(blk)[::-1]) is REF(blk[::-1])
