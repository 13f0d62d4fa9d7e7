"""The OpenCL LZ4 kernels and their host runner (drivers/lz4_opencl/device.py).

Runs on any OpenCL platform (PoCL on a CPU counts); skipped only where none exists. A kernel
that fails to build or gives wrong results fails these tests. Every test on the `dev`
fixture (and the ones taking `variant`) runs on both kernel variants: "classic"
(kernels.cl, with its parallel parses) and "subgroup" (kernels_sg.cl; on PoCL its
local-memory fallback, the same logic the GPU's sub-group operations run).
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pytest

cl = pytest.importorskip("pyopencl")


def _has_platform() -> bool:
    try:
        return len(cl.get_platforms()) > 0
    except Exception:  # no ICD loader configuration, no platform: nothing to test on
        return False


if not _has_platform():
    pytest.skip("no OpenCL platform", allow_module_level=True)

import lz4.block  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from acomp import corpus  # noqa: E402
from acomp_drivers.lz4_opencl.device import (  # noqa: E402
    ENV_DEVICE,
    DeviceInfo,
    Job,
    Lz4Device,
    choose_device,
    lz4_bound,
)

pytestmark = pytest.mark.gpu

PAGE = 4096
EBADMSG, ENOSPC, EINVAL = errno.EBADMSG, errno.ENOSPC, errno.EINVAL
SENTINEL = 0xA5
HYP = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


VARIANTS = ("classic", "subgroup")


@pytest.fixture(scope="module", params=VARIANTS)
def dev(request: pytest.FixtureRequest) -> Iterator[Lz4Device]:
    # classic: the GPU default (parallel parses) explicitly: on a CPU device the default is
    # serial, and the serial kernels are compared with these below.
    if request.param == "classic":
        d = Lz4Device(max_batch=2048, parse="parallel", decode="parallel", kernels="classic")
    else:
        d = Lz4Device(max_batch=2048, kernels="subgroup")
    assert d.kernels == request.param
    yield d
    d.close()


@pytest.fixture(params=VARIANTS)
def variant(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# ---------------------------------------------------------------------------------------------
# helpers: an LZ4 block parser and a strict reference decoder
# ---------------------------------------------------------------------------------------------


def sequences(blk: bytes) -> list[tuple[int, int, int, int]]:
    """(output position, literal length, offset, match length) of a well-formed block."""
    ip = op = 0
    res = []

    def length(base: int) -> int:
        """A token's length nibble, extended by the bytes that follow while they are 255."""
        nonlocal ip
        if base == 15:
            while True:
                b = blk[ip]
                ip += 1
                base += b
                if b != 255:
                    break
        return base

    while True:
        tok = blk[ip]
        ip += 1
        lit = length(tok >> 4)
        ip += lit
        if ip == len(blk):
            res.append((op, lit, 0, 0))
            return res
        off = blk[ip] | blk[ip + 1] << 8
        ip += 2
        m = length(tok & 15) + 4
        res.append((op, lit, off, m))
        op += lit + m


def ref_decode(blk: bytes, cap: int) -> bytes | int:
    """The decoder's contract: bytes, -EBADMSG (malformed) or -ENOSPC (well formed, > cap).

    Well formed: literals inside the input, offsets in [1, bytes so far], the block ends after
    the literals of a sequence, and the end-of-block rules hold for the decoded size n (the
    last match starts at or before n - 12 and ends at or before n - 5).
    """
    out = bytearray()
    ip = op = 0
    n = len(blk)
    fits = True
    last_match = (-1, 0)

    def length(base: int) -> int:
        nonlocal ip
        if base != 15:
            return base
        while True:
            if ip >= n:
                raise ValueError
            b = blk[ip]
            ip += 1
            base += b
            if b != 255:
                return base

    try:
        while True:
            if ip >= n:
                return -EBADMSG
            tok = blk[ip]
            ip += 1
            lit = length(tok >> 4)
            if lit > n - ip:
                return -EBADMSG
            if fits and op + lit <= cap:
                out += blk[ip : ip + lit]
            else:
                fits = False
            ip += lit
            op += lit
            if ip == n:
                break
            if n - ip < 2:
                return -EBADMSG
            off = blk[ip] | blk[ip + 1] << 8
            ip += 2
            if off == 0 or off > op:
                return -EBADMSG
            m = length(tok & 15) + 4
            last_match = (op, op + m)
            if fits and op + m <= cap:
                for _ in range(m):
                    out.append(out[-off])
            else:
                fits = False
            op += m
    except ValueError:
        return -EBADMSG
    start, end = last_match
    if start >= 0 and (start > op - 12 or end > op - 5):
        return -EBADMSG
    return bytes(out) if fits else -ENOSPC


def encode_block(seqs: list[tuple[bytes, int, int]], last: bytes) -> bytes:
    """An LZ4 block of (literals, offset, match length) sequences and the final literals."""

    def ext(x: int) -> bytes:
        if x < 15:
            return b""
        x -= 15
        return b"\xff" * (x // 255) + bytes([x % 255])

    out = bytearray()
    for lits, off, m in seqs:
        out.append(min(len(lits), 15) << 4 | min(m - 4, 15))
        out += ext(len(lits)) + lits + bytes([off & 255, off >> 8]) + ext(m - 4)
    out.append(min(len(last), 15) << 4)
    out += ext(len(last)) + last
    return bytes(out)


def _lz4(blk: bytes, size: int) -> bytes | None:
    try:
        return bytes(lz4.block.decompress(blk, uncompressed_size=size))
    except lz4.block.LZ4BlockError:
        return None


def _zero_offset(blk: bytes) -> bool:
    try:
        return any(off == 0 and m for _, _, off, m in sequences(blk))
    except IndexError:
        return False


def check_against_lz4(blk: bytes, cap: int, size: int, data: bytes) -> None:
    """Our verdict against LZ4_decompress_safe's (python-lz4) on the same block.

    lz4 rejects with `cap` bytes of output -> we reject. We accept -> lz4 decodes the same
    bytes. lz4 accepts with the exact output size (and no offset 0, which it takes) -> so do
    we, or we say the output does not fit `cap`.
    """
    if cap == 0:
        # LZ4_decompress_safe special-cases an empty output buffer (only b"\0" passes): an
        # empty block we accept must decode to b"" with one byte of room instead.
        with_cap = _lz4(blk, 1) if size == 0 else None
    else:
        with_cap = _lz4(blk, cap)
    if size >= 0:
        assert with_cap == data, "lz4 rejects or decodes differently a block we accept"
        return
    if with_cap is None:
        return
    exact = _lz4(blk, len(with_cap)) if with_cap else None
    if exact is not None and not _zero_offset(blk):
        assert size == -ENOSPC, "lz4 accepts a block we call malformed"


def pack(blocks: list[bytes], slot: int) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int32]]:
    src = np.zeros((len(blocks), slot), np.uint8)
    for i, b in enumerate(blocks):
        src[i, : len(b)] = np.frombuffer(b, np.uint8)
    return src, np.array([len(b) for b in blocks], np.int32)


def check_end_rules(blk: bytes, n: int) -> None:
    seqs = sequences(blk)
    op, lit, off, m = seqs[-1]
    assert off == 0
    assert m == 0
    assert op + lit == n
    if n < 13:
        assert len(seqs) == 1, "inputs < 13 bytes are all literals"
        return
    assert lit >= 5, "the last 5 bytes are literals"
    if len(seqs) > 1:
        op, lit, off, m = seqs[-2]
        assert op + lit <= n - 12, "the last match starts at least 12 bytes before the end"
        assert op + lit + m <= n - 5


def structured(rng: np.random.Generator, n: int) -> bytes:
    """Data with matches of all kinds: runs, short periods, copies, text, noise."""
    out = bytearray()
    while len(out) < n:
        kind = int(rng.integers(0, 5))
        k = int(rng.integers(1, 300))
        if kind == 0:
            out += bytes([int(rng.integers(0, 256))]) * k
        elif kind == 1:
            period = rng.integers(0, 256, int(rng.integers(1, 20)), dtype=np.uint8).tobytes()
            out += (period * (k // len(period) + 1))[:k]
        elif kind == 2 and out:
            start = int(rng.integers(0, len(out)))
            out += out[start : start + k]
        elif kind == 3:
            out += b"the kernel page swap compress "[: k % 31] * 2
        else:
            out += rng.integers(0, 256, k, dtype=np.uint8).tobytes()
    return bytes(out[:n])


# ---------------------------------------------------------------------------------------------
# device selection
# ---------------------------------------------------------------------------------------------


def test_choose_device_default_and_specs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_DEVICE, raising=False)
    d = choose_device()
    assert isinstance(d, cl.Device)
    assert choose_device("0:0") is not None
    plat = cl.get_platforms()[0].name.split()[0]
    assert choose_device(plat.lower()) is not None
    if any("pocl" in p.vendor.lower() for p in cl.get_platforms()):
        assert "Portable" in choose_device("pocl").platform.name
    with pytest.raises(LookupError):
        choose_device("no-such-platform-anywhere")
    with pytest.raises(LookupError):
        choose_device("99:0")
    monkeypatch.setenv(ENV_DEVICE, "no-such-platform-anywhere")
    with pytest.raises(LookupError):
        choose_device()


def test_device_info(dev: Lz4Device) -> None:
    info = dev.info
    assert isinstance(info, DeviceInfo)
    assert info.platform
    assert info.device
    assert info.kind in ("GPU", "CPU", "ACCELERATOR", "OTHER")
    assert info.compute_units >= 1
    assert info.local_mem > 0
    assert info.global_mem > 0
    assert all(0 < v <= info.local_mem for v in dev.local_mem.values())


# ---------------------------------------------------------------------------------------------
# compression: format, ratio, lengths, batches
# ---------------------------------------------------------------------------------------------


def test_corpus_ratio_and_format(dev: Lz4Device) -> None:
    pages = corpus.pages(4096)
    out, sizes = dev.compress(pages)
    assert out.shape == (4096, lz4_bound(PAGE))
    assert sizes.dtype == np.int32
    assert (sizes > 0).all()
    ref = 0
    for i, page in enumerate(pages):
        raw = page.tobytes()
        ref += len(lz4.block.compress(raw, store_size=False))
        if i % 4 == 0:  # lz4 decodes every block (a quarter is enough for the time budget)
            blk = out[i, : sizes[i]].tobytes()
            assert lz4.block.decompress(blk, uncompressed_size=PAGE) == raw
    assert int(sizes.sum()) <= 1.03 * ref, f"{sizes.sum()} bytes vs lz4's {ref}"
    # all of them round-trip through our decoder
    back, bsizes = dev.decompress(out, sizes, PAGE)
    assert (bsizes == PAGE).all()
    assert np.array_equal(back, pages)


def test_zero_and_same_filled_pages(dev: Lz4Device) -> None:
    pages = np.zeros((4, PAGE), np.uint8)
    pages[1] = 0xFF
    pages[2] = np.frombuffer(np.full(PAGE // 8, 0x1122334455667788, np.uint64).tobytes(), np.uint8)
    pages[3, :4] = [1, 2, 3, 4]  # a page that starts with something else
    out, sizes = dev.compress(pages)
    for i in range(4):
        ref = len(lz4.block.compress(pages[i].tobytes(), store_size=False))
        assert sizes[i] <= max(ref, 40), (i, sizes[i], ref)
        assert lz4.block.decompress(out[i, : sizes[i]].tobytes(), uncompressed_size=PAGE) == (
            pages[i].tobytes()
        )


def test_every_small_length_and_end_rules(dev: Lz4Device) -> None:
    rng = np.random.default_rng(1)
    lengths = np.array([*range(1, 80), 255, 256, 1000, 4093, 4094, 4095, 4096], np.int32)
    data = np.zeros((len(lengths), PAGE), np.uint8)
    for i, n in enumerate(lengths):
        kind = i % 3
        if kind == 0:
            data[i, :n] = 7  # all matches where allowed
        elif kind == 1:
            data[i, :n] = np.frombuffer(structured(rng, int(n)), np.uint8)
        else:
            data[i, :n] = rng.integers(0, 4, n)
        data[i, n:] = rng.integers(0, 256, PAGE - n)  # junk past the length is ignored
    out, sizes = dev.compress(data, lengths)
    for i, n in enumerate(lengths):
        raw = data[i, :n].tobytes()
        blk = out[i, : sizes[i]].tobytes()
        assert lz4.block.decompress(blk, uncompressed_size=int(n)) == raw, n
        check_end_rules(blk, int(n))
        assert sizes[i] <= lz4_bound(int(n))
    back, bs = dev.decompress(out, sizes, lengths)
    assert np.array_equal(bs, lengths)
    for i, n in enumerate(lengths):
        assert np.array_equal(back[i, :n], data[i, :n])


@given(st.data())
@HYP
def test_compress_roundtrip_hypothesis(dev: Lz4Device, data: st.DataObject) -> None:
    seed = data.draw(st.integers(0, 2**32 - 1))
    n_items = data.draw(st.integers(1, 24))
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, PAGE + 1, n_items).astype(np.int32)
    if data.draw(st.booleans()):
        lengths = np.minimum(lengths, rng.integers(1, 64, n_items)).astype(np.int32)
    src = np.zeros((n_items, PAGE), np.uint8)
    for i, n in enumerate(lengths):
        src[i, :n] = np.frombuffer(structured(rng, int(n)), np.uint8)
    out, sizes = dev.compress(src, lengths)
    assert (sizes > 0).all()
    for i, n in enumerate(lengths):
        blk = out[i, : sizes[i]].tobytes()
        assert lz4.block.decompress(blk, uncompressed_size=int(n)) == src[i, :n].tobytes()
        check_end_rules(blk, int(n))


@pytest.mark.parametrize("n", [1, 64, 1024])
def test_batch_sizes(dev: Lz4Device, n: int) -> None:
    pages = corpus.pages(n, seed=n)
    out, sizes = dev.compress(pages)
    assert sizes.shape == (n,)
    for i in range(0, n, max(1, n // 64)):
        blk = out[i, : sizes[i]].tobytes()
        assert lz4.block.decompress(blk, uncompressed_size=PAGE) == pages[i].tobytes()
    back, bs = dev.decompress(out, sizes, PAGE)
    assert (bs == PAGE).all()
    assert np.array_equal(back, pages)


def test_batches_larger_than_max_batch(variant: str) -> None:
    with Lz4Device(max_batch=16, slots=2, kernels=variant) as d:  # type: ignore[arg-type]
        pages = corpus.pages(50, seed=3)
        out, sizes = d.compress(pages)
        back, bs = d.decompress(out, sizes, PAGE)
        assert (bs == PAGE).all()
        assert np.array_equal(back, pages)
        assert d.compress(pages[:0])[1].shape == (0,)


def _check_capped(out: npt.NDArray[np.uint8], got: npt.NDArray[np.int32],
                  ref: npt.NDArray[np.uint8], sizes: npt.NDArray[np.int32],
                  fits: npt.NDArray[np.bool_]) -> None:
    """Each page that `fits` its capacity has its block (as `ref`) and `SENTINEL` after it; any
    other is -ENOSPC with its row untouched."""
    for i in range(len(got)):
        if fits[i]:
            assert got[i] == sizes[i]
            assert np.array_equal(out[i, : got[i]], ref[i, : sizes[i]])
            assert (out[i, got[i] :] == SENTINEL).all()
        else:
            assert got[i] == -ENOSPC
            assert (out[i] == SENTINEL).all()


def test_compress_capacity_enospc_and_guard(dev: Lz4Device) -> None:
    pages = corpus.pages(64, seed=5)
    ref, sizes = dev.compress(pages)
    cap = int(np.median(sizes))
    out, got = dev.compress(pages, capacity=cap, out_slot=cap + 64, fill=SENTINEL)
    assert out.shape == (64, cap + 64)
    _check_capped(out, got, ref, sizes, sizes <= cap)
    _, zero = dev.compress(pages[:4], capacity=0)
    assert (zero == -ENOSPC).all()
    # per-item capacities (what the acomp driver passes: each request's dlen)
    caps = np.where(np.arange(64) % 2 == 0, sizes, sizes - 1).astype(np.int32)
    out, got = dev.compress(pages, capacity=caps, fill=SENTINEL)
    assert out.shape == (64, int(caps.max()))
    _check_capped(out, got, ref, sizes, np.arange(64) % 2 == 0)
    job = dev.submit("compress", pages[:3], None, np.array([5000, 10, 4200]), None).wait(60)
    assert job.out is not None
    assert job.out.shape == (3, lz4_bound(PAGE))  # capacities clamp to the LZ4 bound
    assert job.sizes is not None
    assert job.sizes[1] == (-ENOSPC if sizes[1] > 10 else sizes[1])


def test_compress_bad_lengths(dev: Lz4Device) -> None:
    pages = corpus.pages(4, seed=6)
    _, sizes = dev.compress(pages, np.array([0, -3, PAGE + 1, 100]))
    assert list(sizes[:3]) == [-EINVAL] * 3
    assert sizes[3] > 0
    with pytest.raises(ValueError, match="page_size"):
        dev.compress(np.zeros((1, PAGE + 16), np.uint8))


def test_compress_odd_slot_width(dev: Lz4Device) -> None:
    rng = np.random.default_rng(8)
    src = np.stack([np.frombuffer(structured(rng, 1001), np.uint8) for _ in range(5)])
    out, sizes = dev.compress(src)  # rows of 1001 bytes: the runner pads the pitch
    assert out.shape == (5, lz4_bound(1001))
    for i in range(5):
        blk = out[i, : sizes[i]].tobytes()
        assert lz4.block.decompress(blk, uncompressed_size=1001) == src[i].tobytes()


# ---------------------------------------------------------------------------------------------
# decompression: lz4's blocks, capacity, malformed input
# ---------------------------------------------------------------------------------------------


def test_decompress_lz4_blocks_all_modes(dev: Lz4Device) -> None:
    rng = np.random.default_rng(9)
    raws = [structured(rng, int(n)) for n in [*range(1, 40), *rng.integers(1, PAGE + 1, 60)]]
    raws += [p.tobytes() for p in corpus.pages(60, seed=9)]
    blocks = []
    for i, raw in enumerate(raws):
        mode = ("default", "fast", "high_compression")[i % 3]
        kw = {"acceleration": 8} if mode == "fast" else {}
        kw = {"compression": 12} if mode == "high_compression" else kw
        blocks.append(lz4.block.compress(raw, mode=mode, store_size=False, **kw))
    src, lens = pack(blocks, lz4_bound(PAGE))
    caps = np.array([len(r) for r in raws], np.int32)
    out, sizes = dev.decompress(src, lens, caps, fill=SENTINEL)
    for i, raw in enumerate(raws):
        assert sizes[i] == len(raw)
        assert out[i, : len(raw)].tobytes() == raw
        assert (out[i, len(raw) :] == SENTINEL).all()


def test_decompress_capacity(dev: Lz4Device) -> None:
    raw = structured(np.random.default_rng(10), 3000)
    blk = lz4.block.compress(raw, store_size=False)
    src, lens = pack([blk] * 4, len(blk))
    out, sizes = dev.decompress(src, lens, np.array([3000, 2999, 0, PAGE]), fill=SENTINEL)
    assert list(sizes) == [3000, -ENOSPC, -ENOSPC, 3000]
    assert out[0, :3000].tobytes() == raw
    assert (out[0, 3000:] == SENTINEL).all()
    assert (out[1] == SENTINEL).all()
    assert (out[2] == SENTINEL).all()
    with pytest.raises(ValueError, match="capacity"):
        dev.decompress(src, lens, PAGE + 1)


def test_decompress_handmade_blocks(dev: Lz4Device) -> None:
    lit = bytes(range(20))
    tail = b"0123456789AB"  # 12 final literals keep the end-of-block rules
    end = b"\xc0" + tail
    cases: list[tuple[bytes, int, bytes | int]] = [
        (b"", 100, -EBADMSG),  # no token
        (b"\x00", 100, b""),  # an empty block
        (b"\x50hello", 100, b"hello"),
        (b"\x50hell", 100, -EBADMSG),  # literals past the input
        (b"\x50hello\x00", 100, -EBADMSG),  # a truncated offset
        (b"\x50hello\x00\x00" + end, 100, -EBADMSG),  # offset 0
        (b"\x50hello\x06\x00" + end, 100, -EBADMSG),  # offset before the start
        (b"\x50hello\x05\x00", 100, -EBADMSG),  # the block ends with a match
        (b"\x50hello\x05\x00" + end, 100, b"hello" + b"hell" + tail),
        (b"\x50hello\x05\x00" + end, 20, -ENOSPC),
        (b"\x50hello\x05\x00" + end, 21, b"hello" + b"hell" + tail),
        (b"\x1fa\x01\x00\xff\xff\x10" + end, 100, -ENOSPC),  # 1 + 545 + 12 bytes
        (b"\x1fa\x01\x00\xff", 1000, -EBADMSG),  # the length runs past the input
        (b"\x1fa\x01\x00\x05" + end, 100, b"a" * 25 + tail),  # overlapping, offset 1
        (b"\x32abc\x03\x00" + end, 100, b"abc" + b"abc" * 2 + tail),
        (b"\xf0\x05" + lit + b"\x15\x00" + end, 100, -EBADMSG),  # offset 21 after 20 bytes
        (b"\xf0\x05" + lit + b"\x14\x00" + end, 100, lit + lit[:4] + tail),
        (b"\x00" * 2, 100, -EBADMSG),  # 0 literals, then a truncated offset
        # the end-of-block rules: the last match ends 5 bytes and starts 12 bytes before the end
        (b"\x10a\x01\x00\x00", 100, -EBADMSG),  # no final literals
        (b"\x10a\x01\x00\x40abcd", 100, -EBADMSG),  # 4 final literals
        (b"\x10a\x01\x00\x70abcdefg", 100, -EBADMSG),  # the match starts 11 from the end
        (b"\x10a\x01\x00\x80abcdefgh", 100, b"aaaaa" + b"abcdefgh"),  # 12 from the end
        (b"\x13a\x01\x00\x50abcde", 100, b"a" * 8 + b"abcde"),  # ends 5 before the end
        (b"\x13a\x01\x00\x50abcde", 12, -ENOSPC),
        (b"\x13a\x01\x00\x40abcd", 100, -EBADMSG),  # ends 4 before the end
    ]
    blocks = [c[0] for c in cases]
    src, lens = pack(blocks, 64)
    caps = np.array([c[1] for c in cases], np.int32)
    out, sizes = dev.decompress(src, lens, caps, fill=SENTINEL)
    for i, (blk, cap, want) in enumerate(cases):
        assert ref_decode(blk, cap) == want, f"reference disagrees on case {i}"
        if isinstance(want, int):
            assert sizes[i] == want, (i, blk, sizes[i])
            assert (out[i] == SENTINEL).all()
        else:
            assert sizes[i] == len(want), (i, blk, sizes[i])
            assert out[i, : len(want)].tobytes() == want
            assert (out[i, len(want) :] == SENTINEL).all()
            assert lz4.block.decompress(blk, uncompressed_size=len(want)) == want


def test_decompress_bad_lengths(dev: Lz4Device) -> None:
    src, _ = pack([b"\x50hello"] * 3, 16)
    _, sizes = dev.decompress(src, np.array([-1, 17, 6]), 100)
    assert list(sizes) == [-EINVAL, -EINVAL, 5]


def _mutate(rng: np.random.Generator, blk: bytes, kind: int) -> bytes:
    b = bytearray(blk)
    if kind == 1:  # truncated
        return bytes(b[: int(rng.integers(0, len(b)))])
    if kind == 2:  # bit flips
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(0, len(b)))
            b[i] ^= 1 << int(rng.integers(0, 8))
        return bytes(b)
    if kind == 3:  # random bytes
        return rng.integers(0, 256, int(rng.integers(0, 200)), dtype=np.uint8).tobytes()
    if kind == 4:  # junk appended
        return bytes(b) + rng.integers(0, 256, int(rng.integers(1, 20)), dtype=np.uint8).tobytes()
    if kind == 5:  # a byte set to 0xff (long length runs) or 0
        i = int(rng.integers(0, len(b)))
        b[i] = 0xFF if rng.random() < 0.5 else 0
        return bytes(b)
    return blk


def _check_mixed_batch(dev: Lz4Device, seed: int, n_items: int) -> None:
    rng = np.random.default_rng(seed)
    slot = lz4_bound(PAGE) + 32
    blocks, caps = [], []
    for _ in range(n_items):
        n = int(rng.integers(1, PAGE + 1)) if rng.random() < 0.7 else int(rng.integers(1, 64))
        raw = structured(rng, n)
        blk = lz4.block.compress(raw, store_size=False)
        blk = _mutate(rng, blk, int(rng.integers(0, 6)))[:slot]
        blocks.append(blk)
        r = rng.random()
        caps.append(n if r < 0.5 else int(rng.integers(0, PAGE + 1)) if r < 0.8 else PAGE)
    src, lens = pack(blocks, slot)
    capa = np.array(caps, np.int32)
    out, sizes = dev.decompress(src, lens, capa, fill=SENTINEL)
    for i, blk in enumerate(blocks):
        want = ref_decode(blk, caps[i])
        if isinstance(want, int):
            assert sizes[i] == want, (i, blk.hex(), caps[i])
            assert (out[i] == SENTINEL).all()
        else:
            assert sizes[i] == len(want), (i, blk.hex(), caps[i])
            assert out[i, : len(want)].tobytes() == want
            assert (out[i, len(want) :] == SENTINEL).all()
        check_against_lz4(blk, caps[i], int(sizes[i]), out[i, : max(0, sizes[i])].tobytes())


@given(seed=st.integers(0, 2**32 - 1), n_items=st.integers(1, 40))
@HYP
def test_malformed_mixed_batches_hypothesis(dev: Lz4Device, seed: int, n_items: int) -> None:
    _check_mixed_batch(dev, seed, n_items)


def test_malformed_mixed_large_batch(dev: Lz4Device) -> None:
    _check_mixed_batch(dev, 12345, 2048)


@given(st.binary(min_size=0, max_size=300), st.integers(0, PAGE))
@HYP
def test_random_bytes_hypothesis(dev: Lz4Device, blk: bytes, cap: int) -> None:
    good = lz4.block.compress(b"abcd" * 100, store_size=False)
    src, lens = pack([good, blk, good], 320)
    out, sizes = dev.decompress(src, lens, np.array([400, cap, 400]), fill=SENTINEL)
    want = ref_decode(blk, cap)
    assert sizes[1] == (want if isinstance(want, int) else len(want))
    check_against_lz4(blk, cap, int(sizes[1]), out[1, : max(0, sizes[1])].tobytes())
    if isinstance(want, bytes):
        assert out[1, : len(want)].tobytes() == want
        assert (out[1, len(want) :] == SENTINEL).all()
    else:
        assert (out[1] == SENTINEL).all()
    for i in (0, 2):  # the neighbours are not affected
        assert sizes[i] == 400
        assert out[i, :400].tobytes() == b"abcd" * 100


@st.composite
def wellformed_blocks(draw: st.DrawFn) -> tuple[bytes, int]:
    """Random well-formed blocks: short offsets, overlapping and long matches, long literals."""
    seqs = []
    pos = 0
    for _ in range(draw(st.integers(0, 40))):
        lits = draw(st.binary(max_size=draw(st.sampled_from([0, 4, 20, 300]))))
        if pos + len(lits) == 0:
            lits = b"x"
        near = st.integers(1, min(pos + len(lits), 20))
        off = draw(st.one_of(near, st.integers(1, min(pos + len(lits), 65535))))
        m = draw(st.one_of(st.integers(4, 40), st.integers(4, 1200)))
        seqs.append((lits, off, m))
        pos += len(lits) + m
    last = draw(st.binary(min_size=draw(st.sampled_from([0, 5, 12])), max_size=30))
    cap = draw(st.one_of(st.just(PAGE), st.integers(0, PAGE)))
    return encode_block(seqs, last), cap


@given(st.lists(wellformed_blocks(), min_size=1, max_size=16))
@HYP
def test_wellformed_random_blocks_hypothesis(
    dev: Lz4Device, cases: list[tuple[bytes, int]]
) -> None:
    slot = max(len(b) for b, _ in cases)
    blocks = [b for b, _ in cases]
    src, lens = pack(blocks, slot)
    caps = np.array([c for _, c in cases], np.int32)
    out, sizes = dev.decompress(src, lens, caps, fill=SENTINEL)
    for i, (blk, cap) in enumerate(cases):
        want = ref_decode(blk, cap)
        if isinstance(want, int):
            assert sizes[i] == want
            assert (out[i] == SENTINEL).all()
        else:
            assert sizes[i] == len(want)
            assert out[i, : len(want)].tobytes() == want
            assert (out[i, len(want) :] == SENTINEL).all()
        check_against_lz4(blk, cap, int(sizes[i]), out[i, : max(0, sizes[i])].tobytes())


# ---------------------------------------------------------------------------------------------
# asynchronous submission
# ---------------------------------------------------------------------------------------------


def test_submit_on_done_from_completer_thread(dev: Lz4Device) -> None:
    pages = corpus.pages(256, seed=11)
    done: list[tuple[Job, str]] = []
    cond = threading.Condition()

    def on_done(job: Job) -> None:
        with cond:
            done.append((job, threading.current_thread().name))
            cond.notify_all()

    jobs = []
    for k in range(4):  # more batches than slots: the pipeline has to recycle them
        jobs.append(dev.submit("compress", pages[64 * k : 64 * (k + 1)], None, None, on_done))
    with cond:
        assert cond.wait_for(lambda: len(done) == 4, timeout=60)
    main = threading.current_thread().name
    for job, thread in done:
        assert thread != main
        assert job.error is None
        assert job.kernel_ns > 0
        assert job.out is not None
        assert job.sizes is not None
        assert (job.sizes > 0).all()
    djobs = []
    for j in jobs:
        assert j.out is not None
        djobs.append(dev.submit("decompress", j.out, j.sizes, PAGE, None))
    for k, j in enumerate(djobs):
        j.wait(60)
        assert j.out is not None
        assert np.array_equal(j.out, pages[64 * k : 64 * (k + 1)])


def test_submit_from_many_threads(dev: Lz4Device) -> None:
    pages = corpus.pages(96, seed=12)
    results: dict[int, Job] = {}
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            j = dev.submit("compress", pages[16 * k : 16 * (k + 1)], None, None, None)
            results[k] = j.wait(60)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k, j in results.items():
        assert j.out is not None
        assert j.sizes is not None
        for i in range(16):
            blk = j.out[i, : j.sizes[i]].tobytes()
            assert lz4.block.decompress(blk, uncompressed_size=PAGE) == pages[16 * k + i].tobytes()


def test_submit_validation_and_close(variant: str) -> None:
    d = Lz4Device(max_batch=8, slots=1, kernels=variant)  # type: ignore[arg-type]
    pages = corpus.pages(9, seed=13)
    big = d.submit("compress", pages, None, None, None).wait(60)  # two launches of <= 8
    assert big.launches == 2
    assert big.sizes is not None
    assert (big.sizes > 0).all()
    with pytest.raises(ValueError, match="op must be"):
        d.submit("transmogrify", pages[:2], None, None, None)
    with pytest.raises(ValueError, match="capacity"):
        d.submit("decompress", pages[:2], None, PAGE + 1, None)
    empty = d.submit("compress", pages[:0], None, None, None).wait(60)
    assert empty.sizes is not None
    assert empty.sizes.shape == (0,)
    jobs = [d.submit("compress", pages[i : i + 1], None, None, None) for i in range(8)]
    d.close()  # waits for the work in flight
    assert all(j.done() and j.error is None for j in jobs)
    d.close()
    with pytest.raises(RuntimeError):
        d.submit("compress", pages[:1], None, None, None)


def test_close_from_on_done() -> None:
    d = Lz4Device(max_batch=8, slots=2)
    pages = corpus.pages(8, seed=16)
    seen: list[Job] = []
    both_submitted = threading.Event()

    def on_done(job: Job) -> None:
        both_submitted.wait(60)
        d.close()  # must not wait for its own thread
        seen.append(job)

    first = d.submit("compress", pages[:4], None, None, on_done)
    second = d.submit("compress", pages[4:], None, None, None)  # already queued: still served
    both_submitted.set()
    first.wait(60)
    second.wait(60)
    d.close()
    assert seen == [first]
    assert second.error is None
    assert second.sizes is not None
    assert (second.sizes > 0).all()


@pytest.mark.parametrize(
    ("cap", "variant"), [(None, "classic"), (16, "classic"), (None, "subgroup")]
)
def test_other_page_size(cap: int | None, variant: str) -> None:
    """8 KiB pages: 16-bit match cells with 3 length bits (the default: it fits 48 KiB of
    local memory, NVIDIA's limit), and the generic path (32-bit cells, cap 16) where the
    device has the local memory for it."""
    rng = np.random.default_rng(15)
    big = 8192
    try:
        d = Lz4Device(page_size=big, max_batch=4, cap=cap, kernels=variant)  # type: ignore[arg-type]
    except ValueError as e:
        if cap is None:
            raise
        pytest.skip(f"not enough local memory: {e}")
    with d:
        assert max(d.local_mem.values()) <= d.info.local_mem
        if cap is None:
            assert d.cap == 11
        src = np.zeros((6, big), np.uint8)
        lengths = np.array([big, big, 5000, 13, 1, big], np.int32)
        for i, n in enumerate(lengths):
            src[i, :n] = np.frombuffer(structured(rng, int(n)), np.uint8)
        src[5] = 0
        out, sizes = d.compress(src, lengths)
        for i, n in enumerate(lengths):
            blk = out[i, : sizes[i]].tobytes()
            assert lz4.block.decompress(blk, uncompressed_size=int(n)) == src[i, :n].tobytes()
        back, bs = d.decompress(out, sizes, lengths)
        assert np.array_equal(bs, lengths)
        for i, n in enumerate(lengths):
            assert np.array_equal(back[i, :n], src[i, :n])


def test_warp_sized_work_groups() -> None:
    """32 lanes (one NVIDIA warp) builds, round-trips, and compresses as well as 64."""
    pages = corpus.pages(256, seed=14)
    with (
        Lz4Device(lanes=32, max_batch=256, kernels="classic") as d32,
        Lz4Device(lanes=64, max_batch=256, kernels="classic") as d64,
    ):
        o32, s32 = d32.compress(pages)
        _, s64 = d64.compress(pages)
        assert abs(int(s32.sum()) - int(s64.sum())) <= 0.01 * int(s64.sum())
        for i in range(0, 256, 8):
            blk = o32[i, : s32[i]].tobytes()
            assert lz4.block.decompress(blk, uncompressed_size=PAGE) == pages[i].tobytes()
        back, bs = d32.decompress(o32, s32, PAGE)
        assert (bs == PAGE).all()
        assert np.array_equal(back, pages)


# ---------------------------------------------------------------------------------------------
# the parallel parse (speculative segment walks, stitched) against the serial one
# ---------------------------------------------------------------------------------------------


U8s = npt.NDArray[np.uint8]


def _adversarial_pages(rng: np.random.Generator, page: int, seg: int) -> U8s:
    """Pages that stress the stitching of the segment walks: short periods (matches overlap
    their source and run across many segments), zero runs, incompressible data, matches that
    start just before and end just after segment boundaries, and mixtures."""
    rows: list[npt.NDArray[np.uint8]] = []
    for per in (1, 2, 3, 4, 5, 7, 13, 17, seg - 1, seg, seg + 1, 100, 255, 1000):
        rows.append(np.resize(rng.integers(0, 256, per, dtype=np.uint8), page))
    rows.append(np.zeros(page, np.uint8))
    rows.append(rng.integers(0, 256, page, dtype=np.uint8))
    x = rng.integers(0, 256, page, dtype=np.uint8)
    x[page // 3 : page - 40] = 0  # a zero run up to the end-of-block region
    rows.append(x)
    for k in range(8):  # copies that straddle segment boundaries, with a few lengths
        x = rng.integers(0, 256, page, dtype=np.uint8)
        for b in range(seg, page - seg, seg):
            ln = int(rng.integers(4, 3 * seg)) if k % 2 else 4 + (k + b // seg) % 24
            at = b - int(rng.integers(1, min(ln, 20) + 1))
            src = int(rng.integers(0, max(1, at - ln)))
            if at + ln <= page and src + ln <= at:
                x[at : at + ln] = x[src : src + ln]
        rows.append(x)
    for alphabet in (2, 3, 4, 16):  # many short overlapping candidates
        rows.append(rng.integers(0, alphabet, page, dtype=np.uint8))
    for _ in range(6):  # runs and random spans mixed, so walks converge late
        x = rng.integers(0, 256, page, dtype=np.uint8)
        for _ in range(20):
            a = int(rng.integers(0, page - 8))
            ln = int(rng.integers(4, 300))
            x[a : a + ln] = x[a] if rng.integers(2) else rng.integers(0, 256, 1, dtype=np.uint8)
        rows.append(x)
    x = rng.integers(0, 256, page, dtype=np.uint8)
    x[-24:] = x[-48:-24]  # a match in the end-of-block region
    rows.append(x)
    return np.stack(rows)


def _seg(page: int, lanes: int) -> int:
    """The kernel's SEG: positions per lane, rounded up to a multiple of 32."""
    return (-(-page // lanes) + 31) // 32 * 32


def _assert_same_blocks(
    par: Lz4Device, ser: Lz4Device, src: U8s, lengths: npt.NDArray[np.int32]
) -> None:
    o1, s1 = ser.compress(src, lengths)
    o2, s2 = par.compress(src, lengths)
    assert np.array_equal(s1, s2)
    assert (s2 > 0).all()
    for i, n in enumerate(lengths):
        blk = o2[i, : s2[i]].tobytes()
        assert blk == o1[i, : s1[i]].tobytes(), i
        assert lz4.block.decompress(blk, uncompressed_size=int(n)) == src[i, :n].tobytes(), i


@pytest.mark.parametrize("lanes", [32, 64])
def test_parallel_parse_matches_serial(lanes: int) -> None:
    """The parallel parse gives byte for byte the serial parse's blocks (corpus pages,
    adversarial pages, short and odd lengths), with 32 and 64 lanes; lz4 reads them all."""
    rng = np.random.default_rng(40 + lanes)
    seg = _seg(PAGE, lanes)
    adv = _adversarial_pages(rng, PAGE, seg)
    pages = np.concatenate([corpus.pages(384, seed=41), adv, adv[:64]])
    lengths = np.full(len(pages), PAGE, np.int32)
    # the last copies of the adversarial pages get shorter lengths: the end-of-block rules
    # fall in other segments, some inputs are too short for any match
    lengths[-64:] = rng.integers(1, PAGE + 1, 64)
    lengths[-64:-50] = [1, 4, 12, 13, 14, 17, 31, 32, 33, 63, 64, 65, 127, 129]
    with (
        Lz4Device(lanes=lanes, max_batch=512, parse="parallel", kernels="classic") as par,
        Lz4Device(lanes=lanes, max_batch=512, parse="serial", kernels="classic") as ser,
    ):
        assert "-DPARSE=1" in par.build_options
        assert "-DPARSE=0" in ser.build_options
        _assert_same_blocks(par, ser, pages, lengths)
        _, bs = par.decompress(*par.compress(pages, lengths), lengths)
        assert np.array_equal(bs, lengths)


def test_subgroup_adversarial_pages() -> None:
    """The sub-group compressor's speculative segment walks (128 positions per lane),
    stitched by shuffles and ballots, on the pages that stress the classic parse's stitching:
    lz4 decodes every block byte for byte, the end-of-block rules hold, our decoder reads
    them back, and the size stays within 3% of the classic kernels' on the same pages."""
    rng = np.random.default_rng(47)
    adv = _adversarial_pages(rng, PAGE, _seg(PAGE, 32))
    pages = np.concatenate([adv, adv[:40]])
    lengths = np.full(len(pages), PAGE, np.int32)
    lengths[-40:] = rng.integers(1, PAGE + 1, 40)
    lengths[-40:-26] = [1, 4, 12, 13, 14, 17, 31, 32, 33, 63, 64, 65, 127, 129]
    with (
        Lz4Device(max_batch=512, kernels="subgroup") as sg,
        Lz4Device(max_batch=512, kernels="classic") as cls,
    ):
        out, sizes = sg.compress(pages, lengths)
        _, csizes = cls.compress(pages, lengths)
        for i, n in enumerate(lengths):
            blk = out[i, : sizes[i]].tobytes()
            assert lz4.block.decompress(blk, uncompressed_size=int(n)) == pages[i, :n].tobytes(), i
            check_end_rules(blk, int(n))
        assert int(sizes.sum()) <= 1.03 * int(csizes.sum())
        back, bs = sg.decompress(out, sizes, lengths)
        assert np.array_equal(bs, lengths)
        for i, n in enumerate(lengths):
            assert np.array_equal(back[i, :n], pages[i, :n])


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_parallel_parse_hypothesis(dev: Lz4Device, data: st.DataObject) -> None:
    """Random pages built from runs, repeats and noise: parallel == serial, lz4 reads them."""
    if dev.kernels != "classic":
        pytest.skip("the classic kernels' two parses (subgroup: test_subgroup_adversarial_pages)")
    ser = _serial_dev()
    n = data.draw(st.integers(1, PAGE))
    parts: list[bytes] = []
    size = 0
    while size < n:
        kind = data.draw(st.integers(0, 2))
        ln = data.draw(st.integers(1, 200))
        if kind == 0:
            parts.append(bytes([data.draw(st.integers(0, 255))]) * ln)
        elif kind == 1 and size:
            back = data.draw(st.integers(1, size))
            whole = b"".join(parts)
            parts.append(bytes(whole[size - back + i % back] for i in range(ln)))
        else:
            parts.append(data.draw(st.binary(min_size=ln, max_size=ln)))
        size += ln
    raw = b"".join(parts)[:n]
    src = np.zeros((1, PAGE), np.uint8)
    src[0, :n] = np.frombuffer(raw, np.uint8)
    assert dev.parse == "parallel"
    _assert_same_blocks(dev, ser, src, np.array([n], np.int32))


_SERIAL: list[Lz4Device] = []


def _serial_dev() -> Lz4Device:
    if not _SERIAL:
        _SERIAL.append(Lz4Device(max_batch=16, slots=1, parse="serial", kernels="classic"))
    return _SERIAL[0]


@pytest.fixture(scope="module", autouse=True)
def _close_serial() -> Iterator[None]:
    yield
    while _SERIAL:
        _SERIAL.pop().close()


def test_parallel_parse_big_pages() -> None:
    """8 KiB pages (other segment sizes and 3-bit cell lengths): parallel == serial."""
    rng = np.random.default_rng(43)
    big = 8192
    with (
        Lz4Device(page_size=big, max_batch=64, parse="parallel", kernels="classic") as par,
        Lz4Device(page_size=big, max_batch=64, parse="serial", kernels="classic") as ser,
    ):
        seg = _seg(big, par.lanes)
        adv = _adversarial_pages(rng, big, seg)[::2]
        pages = np.concatenate([corpus.pages(16, seed=44).reshape(8, big), adv])
        lengths = np.full(len(pages), big, np.int32)
        lengths[-6:] = [13, 100, 4097, 5000, 8191, 8180]
        _assert_same_blocks(par, ser, pages, lengths)


def test_parse_option() -> None:
    with pytest.raises(ValueError, match="parse"):
        Lz4Device(parse="fast")  # type: ignore[arg-type]


@pytest.mark.parametrize("lanes", [32, 64])
def test_parallel_decode_matches_serial(lanes: int) -> None:
    """The decompressor's parallel header parse decides every block as the serial one does
    (sizes, errors, bytes written, nothing else): valid blocks of lz4 and of the kernel,
    tight capacities, truncated, bit-flipped and random blocks, long 0xFF runs."""
    rng = np.random.default_rng(50 + lanes)
    pages = np.concatenate([corpus.pages(96, seed=51), _adversarial_pages(rng, PAGE, 64)])
    blocks: list[bytes] = []
    caps: list[int] = []
    for i, page in enumerate(pages):
        blk = lz4.block.compress(page.tobytes(), store_size=False)
        blocks.append(blk)
        caps.append(PAGE if i % 5 else PAGE - 1 - i % 7)  # some one to a few bytes short
        blocks.append(blk[: int(rng.integers(0, len(blk)))])  # truncated
        caps.append(PAGE)
        bad = bytearray(blk)
        for _ in range(1 + i % 3):
            bad[int(rng.integers(0, len(bad)))] ^= 1 << int(rng.integers(0, 8))
        blocks.append(bytes(bad))  # bit flips: mostly malformed, some still well formed
        caps.append(PAGE)
    for fill in (0xFF, 0xF0, 0x0F, 0x00):
        for n in (1, 2, 17, 300, 2000, lz4_bound(PAGE)):
            blocks.append(bytes([fill]) * n)
            caps.append(PAGE)
    for _ in range(64):
        blocks.append(rng.integers(0, 256, int(rng.integers(1, 300)), dtype=np.uint8).tobytes())
        caps.append(int(rng.integers(0, PAGE + 1)))
    slot = lz4_bound(PAGE) + 16
    src = np.zeros((len(blocks), slot), np.uint8)
    for i, b in enumerate(blocks):
        src[i, : len(b)] = np.frombuffer(b, np.uint8)
    lengths = np.array([len(b) for b in blocks], np.int32)
    cap_arr = np.array(caps, np.int32)
    with (
        Lz4Device(lanes=lanes, max_batch=512, decode="parallel", kernels="classic") as par,
        Lz4Device(lanes=lanes, max_batch=512, decode="serial", kernels="classic") as ser,
    ):
        assert "-DDPARSE=1" in par.build_options
        assert "-DDPARSE=0" in ser.build_options
        o1, s1 = ser.decompress(src, lengths, cap_arr, fill=SENTINEL)
        o2, s2 = par.decompress(src, lengths, cap_arr, fill=SENTINEL)
        assert np.array_equal(s1, s2)
        assert np.array_equal(o1, o2)
        if lanes == 32:  # the sub-group decoder decides every block as the serial parse does
            with Lz4Device(max_batch=512, kernels="subgroup") as sg:
                o3, s3 = sg.decompress(src, lengths, cap_arr, fill=SENTINEL)
            assert np.array_equal(s1, s3)
            assert np.array_equal(o1, o3)
        assert (s2 == PAGE).sum() >= 96  # the valid blocks went through
        assert {-EBADMSG, -ENOSPC} <= set(s2.tolist())


def test_decode_option() -> None:
    with pytest.raises(ValueError, match="decode"):
        Lz4Device(decode="fast")  # type: ignore[arg-type]
