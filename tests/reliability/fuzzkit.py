"""The fuzzing kit shared by tests/reliability/test_fuzz.py and scripts/fuzz.

Reference decoders (the libraries each driver wraps, called directly), hypothesis strategies
for malformed, truncated, bit-flipped and adversarial blocks, and `decompress_guarded`: one
decompression through the kernel-style API into a destination surrounded by guard bytes, timed
and bounded. `check` states the contract every decompressor keeps, whatever the input:

- the status is 0, -EINVAL, -EBADMSG or -ENOSPC (nothing else, no exception);
- nothing outside the first ``dlen`` bytes of the destination changes;
- 0 means the reference library decodes the same bytes from the same block with ``dlen``
  bytes of output (never wrong data, silently);
- -ENOSPC (or the kernel's -EINVAL with the request's reason -ENOSPC, as lz4-scomp says it)
  means the block is well formed and decodes to more than ``dlen`` bytes;
- it comes back within `BLOCK_TIMEOUT` seconds.

Counts of inputs per decompressor and per kind go to `COUNTS` (scripts/fuzz prints them).
"""

from __future__ import annotations

import errno
import itertools
import os
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import lz4.block
import pytest
import zstandard
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import acomp
from acomp import corpus

PAGE = 4096
#: The output a reference decode may use to find out whether a block is well formed but
#: larger than the capacity given (beyond any block of a page: lz4 expands 255 times at most).
BIG = 8 << 20
SENTINEL = 0xA5
GUARD = 64
#: Seconds one block may take, generously (a hang, not a slow machine, should trip it).
BLOCK_TIMEOUT = float(os.environ.get("ACOMP_FUZZ_BLOCK_TIMEOUT", "20"))
#: Examples per property: modest in CI, large in scripts/fuzz.
EXAMPLES = int(os.environ.get("ACOMP_FUZZ_EXAMPLES", "100"))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("ACOMP_FUZZ_RANDOM", "0") != "1",
    database=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
        HealthCheck.filter_too_much,
    ],
)

ALLOWED = {0, -errno.EINVAL, -errno.EBADMSG, -errno.ENOSPC}

#: inputs fed per decompressor and kind of input (scripts/fuzz reports them)
COUNTS: dict[str, Counter[str]] = {}
#: blocks a driver rejects that its reference library accepts (stricter, never wrong)
STRICTER: dict[str, Counter[str]] = {}
#: the longest one block took, per decompressor (seconds)
SLOWEST: dict[str, float] = {}


def count(driver: str, kind: str) -> None:
    COUNTS.setdefault(driver, Counter())[kind] += 1


# ---------------------------------------------------------------------------------------------
# Reference libraries
# ---------------------------------------------------------------------------------------------


class TooBig:
    """The reference decodes the block, but only into more than the capacity given."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __repr__(self) -> str:
        return f"TooBig({self.size})"


Ref = bytes | TooBig | None


def _lz4_dec(blob: bytes, cap: int) -> bytes | None:
    try:
        return bytes(lz4.block.decompress(blob, uncompressed_size=cap))
    except lz4.block.LZ4BlockError:
        return None


def _zstd_dec(blob: bytes, cap: int) -> bytes | None:
    # Only decode what a bounded decoder would: a header claiming more than `cap` is not
    # allocated (zstandard would try to allocate the claimed content size).
    try:
        size = zstandard.frame_content_size(blob)
        if size > cap:
            return None
        out = zstandard.ZstdDecompressor().decompress(blob, max_output_size=cap)
    except (zstandard.ZstdError, MemoryError):
        return None
    return bytes(out) if len(out) <= cap else None


def _deflate_dec(blob: bytes, cap: int) -> bytes | None:
    d = zlib.decompressobj(-11)
    try:
        out = d.decompress(blob, cap)
    except zlib.error:
        return None
    if d.unconsumed_tail or not d.eof:
        return None
    return out


def _lzo_dec(blob: bytes, cap: int) -> bytes | None:
    import lzo

    try:
        return bytes(lzo.decompress(blob, False, cap))
    except lzo.error:
        return None


def _lzo_enc(data: bytes) -> bytes:
    import lzo

    return bytes(lzo.compress(data, 1, False))


def _deflate_enc(data: bytes) -> bytes:
    c = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -11, 9)
    return c.compress(data) + c.flush()


@dataclass(frozen=True)
class Codec:
    """A format's reference library: encode, and decode with a bounded output."""

    name: str
    encode: Callable[[bytes], bytes]
    decode_into: Callable[[bytes, int], bytes | None]

    def decode(self, blob: bytes, cap: int) -> Ref:
        """What the library makes of `blob` with `cap` bytes of output."""
        out = self.decode_into(blob, cap)
        if out is not None:
            return out
        if cap < BIG:
            bigger = self.decode_into(blob, BIG)
            if bigger is not None and len(bigger) > cap:
                return TooBig(len(bigger))
        return None


CODECS: dict[str, Codec] = {
    "lz4": Codec("lz4", lambda d: lz4.block.compress(d, store_size=False), _lz4_dec),
    "lz4hc": Codec(
        "lz4hc",
        lambda d: lz4.block.compress(d, mode="high_compression", compression=9,
                                     store_size=False),
        _lz4_dec,
    ),
    "zstd": Codec("zstd", lambda d: zstandard.ZstdCompressor(level=3).compress(d), _zstd_dec),
    "deflate": Codec("deflate", _deflate_enc, _deflate_dec),
    "lzo": Codec("lzo", _lzo_enc, _lzo_dec),
}


def _has(name: str) -> bool:
    return acomp.crypto_has_acomp(name)


#: Every decompressor with its cra_name; lz4-opencl carries the gpu marker.
DRIVERS = [
    pytest.param("lz4-scomp", "lz4", id="lz4-scomp"),
    pytest.param("lz4hc-scomp", "lz4hc", id="lz4hc-scomp"),
    pytest.param("lzo-scomp", "lzo", id="lzo-scomp", marks=pytest.mark.skipif(
        not _has("lzo-scomp"), reason="python-lzo is not installed")),
    pytest.param("zstd-scomp", "zstd", id="zstd-scomp"),
    pytest.param("deflate-scomp", "deflate", id="deflate-scomp"),
    pytest.param("lz4-opencl", "lz4", id="lz4-opencl", marks=[pytest.mark.gpu, pytest.mark.skipif(
        not _has("lz4-opencl"), reason="no OpenCL device (lz4-opencl not loaded)")]),
]


# ---------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------


@st.composite
def plain_data(draw: st.DrawFn, max_size: int = PAGE) -> bytes:
    """Data worth compressing: random bytes, repeated patterns, runs, or a corpus page."""
    kind = draw(st.sampled_from(["random", "pattern", "runs", "corpus"]))
    if kind == "random":
        return draw(st.binary(min_size=1, max_size=max_size))
    if kind == "pattern":
        unit = draw(st.binary(min_size=1, max_size=24))
        n = draw(st.integers(1, max_size))
        return (unit * (n // len(unit) + 1))[:n]
    if kind == "runs":
        parts = draw(st.lists(st.tuples(st.integers(0, 255), st.integers(1, 600)),
                              min_size=1, max_size=12))
        return b"".join(bytes([b]) * n for b, n in parts)[:max_size]
    page = corpus.pages(1, draw(st.integers(0, 10_000)))[0].tobytes()
    n = draw(st.integers(1, min(PAGE, max_size)))
    return page[:n]


#: A mutation, independent of the format: (kind, position as a fraction of the block, a
#: second fraction, bytes). `apply` turns it into bytes once the block is known.
Mutation = tuple[str, float, float, bytes]

_frac = st.floats(0, 1, exclude_max=True)


@st.composite
def mutations(draw: st.DrawFn) -> list[Mutation]:
    """One to three of: truncated, bit-flipped, a byte set to 0/0xff/0x0f/0xf0 or random,
    junk inserted or appended, a range deleted or duplicated."""
    out = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["truncate", "bitflip", "bitflip", "byte", "insert",
                                     "append", "delete", "duplicate"]))
        extra = b""
        if kind == "byte":
            extra = bytes([draw(st.sampled_from([0, 0xFF, 0x0F, 0xF0]) | st.integers(0, 255))])
        elif kind in ("insert", "append"):
            extra = draw(st.binary(min_size=1, max_size=32))
        elif kind == "bitflip":
            extra = bytes([draw(st.integers(0, 7))])
        out.append((kind, draw(_frac), draw(_frac), extra))
    return out


def apply(blob: bytes, muts: list[Mutation]) -> bytes:
    b = bytearray(blob)
    for kind, f1, f2, extra in muts:
        i = int(f1 * len(b))
        if kind == "truncate":
            del b[i:]
        elif kind == "append":
            b += extra
        elif kind == "insert":
            b[i:i] = extra
        elif not b:
            continue
        elif kind == "bitflip":
            b[i] ^= 1 << extra[0]
        elif kind == "byte":
            b[i] = extra[0]
        elif kind == "delete":
            del b[i : i + 1 + int(f2 * 16)]
        elif kind == "duplicate":
            j = min(len(b), i + 1 + int(f2 * 32))
            b[j:j] = b[i:j]
    return bytes(b)


def _varint(n: int) -> bytes:
    """An LZ4 length continuation: 255 bytes and the remainder."""
    return b"\xff" * (n // 255) + bytes([n % 255])


@st.composite
def lz4_adversarial(draw: st.DrawFn) -> tuple[str, bytes]:
    """Hand-built LZ4 blocks that break one rule: offsets 0 or beyond the start, matches
    running past the output, literal runs past the input, huge length varints, a missing
    end. Returns (kind, block); kind names the rule tried (several may be broken)."""
    out = bytearray()
    produced = 0
    kinds: list[str] = []
    for _ in range(draw(st.integers(0, 6))):
        lits = draw(st.binary(max_size=draw(st.sampled_from([0, 8, 64]))))
        claimed = len(lits)
        lk = draw(st.sampled_from(["ok", "ok", "ok", "past_input", "huge"]))
        if lk == "past_input":
            claimed += draw(st.integers(1, 5000))
        elif lk == "huge":
            claimed = 15 + 255 * draw(st.integers(1, 600)) + draw(st.integers(0, 254))
        mk = draw(st.sampled_from(["ok", "ok", "zero", "beyond", "far", "long", "huge"]))
        if mk == "zero":
            off = 0
        elif mk == "beyond":
            off = produced + claimed + draw(st.integers(1, 300))
        elif mk == "far":
            off = 0xFFFF
        else:
            off = draw(st.integers(1, max(1, produced + claimed)))
        m = draw(st.integers(4, 40))
        if mk == "long":
            m = draw(st.integers(PAGE - 64, 3 * PAGE))
        elif mk == "huge":
            m = 19 + 255 * draw(st.integers(1, 600)) + draw(st.integers(0, 254))
        kinds += [f"lit_{lk}", f"match_{mk}"]
        out.append((min(claimed, 15) << 4) | min(m - 4, 15))
        if claimed >= 15:
            out += _varint(claimed - 15)
        out += lits
        off = min(off, 0xFFFF)
        out += bytes([off & 0xFF, off >> 8])
        if m - 4 >= 15:
            out += _varint(m - 4 - 15)
        produced += claimed + m
    end = draw(st.sampled_from(["literals", "literals", "none", "cut", "short_last"]))
    if end in ("literals", "short_last"):
        last = draw(st.binary(min_size=0 if end == "short_last" else 5,
                              max_size=4 if end == "short_last" else 40))
        out.append(min(len(last), 15) << 4)
        if len(last) >= 15:
            out += _varint(len(last) - 15)
        out += last
    elif end == "cut" and out:
        del out[draw(st.integers(0, len(out) - 1)):]
    kinds.append(f"end_{end}")
    return "adversarial:" + ",".join(sorted(set(kinds))), bytes(out)


@dataclass(frozen=True)
class Recipe:
    """How to make one test block, for any format: from valid data (kept or mutated), random
    bytes, or an adversarial LZ4 block; and the destination to decompress it into."""

    source: str  # "valid", "mutated", "random", "adversarial"
    data: bytes  # the data to compress (valid, mutated), or the block itself
    muts: tuple[Mutation, ...]
    detail: str  # the adversarial block's rules, or ""
    cap: tuple[str, int]  # ("size"|"size-1"|"size+1"|"fixed", n)
    layout: tuple[str, int, tuple[float, ...]]  # (layout, extra, cut fractions)
    split: float | None  # where the source scatterlist splits, as a fraction

    def build(self, cra: str) -> tuple[str, bytes, int]:
        """(kind, block, dlen) for format `cra`."""
        if self.source in ("random", "adversarial"):
            blob, kind = self.data, self.detail or self.source
            if self.source == "adversarial" and cra not in ("lz4", "lz4hc"):
                kind = "random:lz4-shaped"
            size = -1
        else:
            blob = CODECS[cra].encode(self.data)
            size = len(self.data)
            kind = "valid"
            if self.source == "mutated":
                blob = apply(blob, list(self.muts))
                kind = "mutated:" + "+".join(sorted({m[0] for m in self.muts}))
        how, n = self.cap
        if size > 0 and how != "fixed":
            n = {"size": size, "size-1": max(1, size - 1), "size+1": size + 1}[how]
        return kind, blob, n

    def dst(self, dlen: int) -> GuardedDst:
        layout, extra, fracs = self.layout
        if layout == "split" and dlen >= 3:
            cuts = tuple(sorted({1 + int(f * (dlen - 2)) for f in fracs}))
            return GuardedDst(dlen, "split", cuts=cuts)
        if layout == "roomy":
            return GuardedDst(dlen, "roomy", extra=extra)
        return GuardedDst(dlen, "exact")

    def src_split(self, blob: bytes) -> int | None:
        return None if self.split is None else int(self.split * len(blob))


@st.composite
def recipes(draw: st.DrawFn, max_len: int = PAGE + 16, adversarial: bool = True) -> Recipe:
    """Blocks for every format from one strategy (the test applies it to its format)."""
    source = draw(st.sampled_from(["valid", "mutated", "mutated", "mutated", "random"]
                                  + ["adversarial"] * adversarial))
    detail = ""
    muts: tuple[Mutation, ...] = ()
    if source == "adversarial":
        detail, data = draw(lz4_adversarial())
    elif source == "random":
        data = draw(st.binary(min_size=1, max_size=draw(st.sampled_from([16, 300, max_len]))))
    else:
        data = draw(plain_data())
        if source == "mutated":
            muts = tuple(draw(mutations()))
    cap = draw(st.sampled_from(["size", "size", "size-1", "size+1", "fixed", "fixed"]))
    fixed = draw(st.sampled_from([PAGE, 1]) | st.integers(1, 64) | st.integers(1, 2 * PAGE))
    layout = draw(st.sampled_from(["exact", "exact", "roomy", "split"]))
    extra = draw(st.integers(1, 512)) if layout == "roomy" else 0
    fracs = tuple(draw(st.lists(_frac, min_size=1, max_size=2))) if layout == "split" else ()
    split = draw(st.none() | _frac)
    return Recipe(source, data, muts, detail, (cap, fixed), (layout, extra, fracs), split)


# ---------------------------------------------------------------------------------------------
# One guarded decompression
# ---------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    ret: int
    output: bytes  # the first req.dlen bytes of the destination when ret == 0
    seconds: float
    reason: int = 0  # req.reason: -ENOSPC under the kernel's -EINVAL for "does not fit"


class GuardedDst:
    """A destination of `dlen` bytes inside buffers filled with `SENTINEL`.

    layout "exact": one segment of dlen bytes; "roomy": one segment with `extra` bytes more
    than dlen (the request's dlen still says dlen: the driver must honour it, not the buffer);
    "split": two or three segments with guard gaps between them.
    """

    def __init__(self, dlen: int, layout: str, extra: int = 0, cuts: tuple[int, ...] = ()) -> None:
        self.dlen = dlen
        self.layout = layout
        span = dlen + (extra if layout == "roomy" else 0)
        self.buf = bytearray([SENTINEL]) * (GUARD * (2 + len(cuts)) + span)
        mv = memoryview(self.buf)
        if layout == "split" and cuts:
            edges = [0, *sorted(cuts), dlen]
            self.segments = []
            pos = GUARD
            for a, b in itertools.pairwise(edges):
                self.segments.append((pos, b - a))
                pos += b - a + GUARD
            self.sgl = acomp.sg_init_table(len(self.segments))
            for i, (p, n) in enumerate(self.segments):
                acomp.sg_set_buf(self.sgl, i, mv[p : p + n])
        else:
            self.segments = [(GUARD, span)]
            self.sgl = acomp.sg_init_one(mv[GUARD : GUARD + span])

    def output(self, n: int) -> bytes:
        out = bytearray()
        for p, m in self.segments:
            take = min(m, n - len(out))
            out += self.buf[p : p + take]
        return bytes(out)

    def untouched_outside(self) -> bool:
        """Every byte past the first dlen bytes of the destination still holds the sentinel."""
        allowed = bytearray(len(self.buf))
        left = self.dlen
        for p, m in self.segments:
            take = min(m, left)
            allowed[p : p + take] = b"\x01" * take
            left -= take
        return all(a or v == SENTINEL for a, v in zip(allowed, self.buf, strict=True))


def source(blob: bytes, split: int | None) -> acomp.Scatterlist:
    if split is None or not 0 < split < len(blob):
        return acomp.sg_init_one(blob)
    sgl = acomp.sg_init_table(2)
    acomp.sg_set_buf(sgl, 0, blob[:split])
    acomp.sg_set_buf(sgl, 1, blob[split:])
    return sgl


async def decompress_guarded(tfm: acomp.CryptoAcomp, blob: bytes, dst: GuardedDst,
                             split: int | None = None) -> Outcome:
    """Decompress `blob` into `dst` through a request; the status, bounded in time."""
    req = acomp.acomp_request_alloc(tfm)
    assert req is not None
    wait = acomp.CryptoWait()
    acomp.acomp_request_set_params(req, source(blob, split), dst.sgl, len(blob), dst.dlen)
    acomp.acomp_request_set_callback(req, acomp.CRYPTO_TFM_REQ_MAY_BACKLOG,
                                     acomp.crypto_req_done, wait)
    t0 = time.perf_counter()
    with anyio.fail_after(BLOCK_TIMEOUT):
        ret = await acomp.crypto_wait_req(acomp.crypto_acomp_decompress(req), wait,
                                          timeout=BLOCK_TIMEOUT)
    seconds = time.perf_counter() - t0
    assert ret != -errno.ETIMEDOUT, f"no completion within {BLOCK_TIMEOUT}s: a hang"
    assert not req.in_flight
    out = dst.output(req.dlen) if ret == 0 else b""
    if ret == 0:
        assert 0 <= req.dlen <= dst.dlen, f"dlen {req.dlen} > capacity {dst.dlen}"
    reason = req.reason if ret else 0
    acomp.acomp_request_free(req)
    return Outcome(ret, out, seconds, reason)


def check(driver: str, cra: str, blob: bytes, dst: GuardedDst, res: Outcome) -> None:
    """The contract (see the module docstring); the assertion says what broke and how."""
    where = f"{driver}: block {blob.hex()} dlen {dst.dlen} ({dst.layout})"
    assert res.ret in ALLOWED, f"{where}: status {res.ret} ({acomp.errno_name(res.ret)})"
    assert res.seconds < BLOCK_TIMEOUT, f"{where}: took {res.seconds:.1f}s"
    SLOWEST[driver] = max(SLOWEST.get(driver, 0.0), res.seconds)
    assert dst.untouched_outside(), f"{where}: wrote past dlen"
    ref = CODECS[cra].decode(blob, dst.dlen)
    if res.ret == 0:
        assert isinstance(ref, bytes), f"{where}: accepted, the reference says {ref!r}"
        assert res.output == ref, (f"{where}: decoded {res.output.hex()} but the reference "
                                   f"decodes {ref.hex()}")
    elif res.ret == -errno.ENOSPC or res.reason == -errno.ENOSPC:
        assert isinstance(ref, TooBig), (
            f"{where}: -ENOSPC, but the reference gives "
            f"{f'{len(ref)} bytes' if isinstance(ref, bytes) else ref!r}")
    elif isinstance(ref, bytes):  # rejected what the library accepts: stricter, not wrong
        STRICTER.setdefault(driver, Counter())[acomp.errno_name(res.ret)] += 1


def report_lines() -> list[str]:
    lines = []
    for driver in sorted(COUNTS):
        c = COUNTS[driver]
        total = sum(c.values())
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(c.items(), key=lambda kv: -kv[1]))
        lines.append(f"{driver}: {total} inputs ({kinds})")
        if driver in STRICTER:
            lines.append(f"  rejected although the reference library accepts: "
                         f"{dict(STRICTER[driver])}")
    return lines


def as_bytes(x: Any) -> bytes:
    return bytes(memoryview(x).cast("B"))
