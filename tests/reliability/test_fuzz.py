"""Fuzzing every decompressor: malformed, truncated, bit-flipped and adversarial blocks.

Kernel counterpart: the crypto self-tests' fuzzing against the generic implementation
(``CONFIG_CRYPTO_MANAGER_EXTRA_TESTS``), and DPDK's compressdev negative tests. The contract
checked on every block is in `fuzzkit` (an error code, never a crash, never a byte past
``dlen``, never a hang, never wrong data silently). Differential checks: each driver's output
decodes with the generic driver of its cra_name (``<name>-scomp``) and with the reference
library, and the other way round, on random and corpus data.

``ACOMP_FUZZ_EXAMPLES`` sets the examples per property (scripts/fuzz runs many).
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

import lz4.block
import numpy as np
import pytest
from fuzzkit import (
    CODECS,
    DRIVERS,
    FUZZ,
    PAGE,
    SENTINEL,
    GuardedDst,
    Recipe,
    TooBig,
    check,
    count,
    decompress_guarded,
    lz4_adversarial,
    plain_data,
    recipes,
)
from hypothesis import given
from hypothesis import strategies as st

import acomp
from acomp import corpus

pytestmark = [pytest.mark.anyio, pytest.mark.module_tfms]  # _tfms: freed after the module

_tfms: dict[str, acomp.CryptoAcomp] = {}


@pytest.fixture(scope="module", autouse=True)
def _free_tfms() -> Iterator[None]:
    yield
    for tfm in _tfms.values():
        acomp.crypto_free_acomp(tfm)
    _tfms.clear()


def tfm_for(driver: str) -> acomp.CryptoAcomp:
    tfm = _tfms.get(driver)
    if tfm is None:
        tfm = _tfms[driver] = acomp.crypto_alloc_acomp(driver)
        assert acomp.crypto_acomp_driver_name(tfm) == driver
    return tfm


# ---------------------------------------------------------------------------------------------
# Bad blocks through the request API
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("driver", "cra"), DRIVERS)
@given(recipe=recipes())
@FUZZ
async def test_malformed_blocks_give_an_error_never_wrong_data(
    driver: str, cra: str, recipe: Recipe
) -> None:
    kind, blob, dlen = recipe.build(cra)
    if not blob:
        return
    dst = recipe.dst(dlen)
    res = await decompress_guarded(tfm_for(driver), blob, dst, recipe.src_split(blob))
    count(driver, kind)
    check(driver, cra, blob, dst, res)


@pytest.mark.parametrize(("driver", "cra"), [d for d in DRIVERS if d.values[1] in ("lz4",
                                                                                     "lz4hc")])
@given(block=lz4_adversarial(),
       dlen=st.sampled_from([PAGE, 1, 64, 4000]) | st.integers(1, PAGE))
@FUZZ
async def test_adversarial_lz4_blocks(driver: str, cra: str, block: tuple[str, bytes],
                                      dlen: int) -> None:
    kind, blob = block
    if not blob:
        return
    dst = GuardedDst(dlen, "exact")
    res = await decompress_guarded(tfm_for(driver), blob, dst)
    count(driver, kind)
    check(driver, cra, blob, dst, res)


def _seq(lits: bytes, off: int | None = None, m: int = 0) -> bytes:
    """One LZ4 sequence (no varint handling needed for the short ones used here)."""
    tok = (min(len(lits), 15) << 4) | (min(m - 4, 15) if off is not None else 0)
    out = bytes([tok]) + (bytes([len(lits) - 15]) if len(lits) >= 15 else b"") + lits
    if off is not None:
        out += bytes([off & 0xFF, off >> 8])
        if m - 4 >= 15:
            out += b"\xff" * ((m - 19) // 255) + bytes([(m - 19) % 255])
    return out


#: Handmade LZ4 blocks, one rule broken each (all must be refused by every lz4 decompressor).
LZ4_BAD = {
    "empty_token_only": b"\x00\x00",
    "offset_beyond_start": _seq(b"abcd", 5, 8) + _seq(b"zzzzz"),
    "offset_ffff_at_start": _seq(b"abcd", 0xFFFF, 8) + _seq(b"zzzzz"),
    "literals_past_input": b"\x50ab",
    "literal_varint_runs_off_the_end": b"\xf0" + b"\xff" * 40,
    "match_varint_runs_off_the_end": b"\x8f" + b"abcdefgh" + b"\x08\x00" + b"\xff" * 40,
    "offset_cut_in_half": b"\x80" + b"abcdefgh" + b"\x08",
    "no_last_literals": _seq(b"abcdefghijklmnop", 16, 8),
    "huge_literal_claim": b"\xf0" + b"\xff" * 300 + b"\x10" + b"x" * 10,
}


@pytest.mark.parametrize(("driver", "cra"), [d for d in DRIVERS if d.values[1] in ("lz4",
                                                                                     "lz4hc")])
@pytest.mark.parametrize("case", sorted(LZ4_BAD))
async def test_handmade_bad_lz4_blocks_are_refused(driver: str, cra: str, case: str) -> None:
    blob = LZ4_BAD[case]
    for dlen in (1, 64, PAGE):
        dst = GuardedDst(dlen, "exact")
        res = await decompress_guarded(tfm_for(driver), blob, dst)
        check(driver, cra, blob, dst, res)
        assert res.ret in (-errno.EINVAL, -errno.EBADMSG), (case, dlen, res.ret)
        if driver == "lz4-opencl":  # its contract: a failing item writes nothing
            assert dst.buf.count(SENTINEL) == len(dst.buf)


@pytest.mark.parametrize(("driver", "cra"), [d for d in DRIVERS if d.values[1] in ("lz4",
                                                                                     "lz4hc")])
async def test_end_of_block_rules_enospc_only_when_too_big(driver: str, cra: str) -> None:
    """8 literals, a match of 4, 5 literals: 17 bytes whose last match starts too late for a
    17-byte block. LZ4_decompress_safe() checks the end-of-block rules against the end of its
    buffer, so it refuses this block with 17 to 19 bytes of room and decodes it with more.
    -ENOSPC would tell the caller to retry with a larger buffer for data that already fits:
    with room for 17 bytes it is a malformed block (-EINVAL/-EBADMSG)."""
    blob = _seq(b"abcdefgh", 8, 4) + _seq(b"zzzzz")
    for dlen in (1, 16, 17, 18, 19, 20, 29, PAGE):
        dst = GuardedDst(dlen, "exact")
        res = await decompress_guarded(tfm_for(driver), blob, dst)
        check(driver, cra, blob, dst, res)
        if dlen < 17:  # the device judges the rules against the block itself: malformed
            if driver == "lz4-opencl":
                assert res.ret == -errno.EBADMSG
            else:  # the kernel's -EINVAL; too small, says the reason
                assert (res.ret, res.reason) == (-errno.EINVAL, -errno.ENOSPC)
        elif dlen < 20 or driver == "lz4-opencl":  # the device keeps the rules for the block
            assert res.ret in (-errno.EINVAL, -errno.EBADMSG), (dlen, res.ret)
            assert res.reason != -errno.ENOSPC  # data that fits is never "too small"
        else:
            assert res.ret == 0
            assert res.output == b"abcdefghabcdzzzzz"


async def test_zstd_header_claiming_a_huge_content_size() -> None:
    """A frame header may claim any content size; the decompressor must not try to allocate
    it (python-zstandard does, and raises MemoryError beyond what the machine can map)."""
    import struct

    good = CODECS["zstd"].encode(b"hello world " * 20)
    for claim in (5000, 1 << 32, 1 << 40, 1 << 62):
        # frame header descriptor 0xE0: single segment, 8-byte content size
        blob = good[:4] + b"\xe0" + struct.pack("<Q", claim) + good[6:]
        for dlen in (PAGE, 1):
            dst = GuardedDst(dlen, "exact")
            res = await decompress_guarded(tfm_for("zstd-scomp"), blob, dst)
            check("zstd-scomp", "zstd", blob, dst, res)
            assert res.ret in (-errno.EINVAL, -errno.ENOSPC)


@pytest.mark.parametrize(("driver", "cra"), [d for d in DRIVERS if d.values[1] in ("lz4",
                                                                                     "lz4hc")])
async def test_well_formed_block_larger_than_any_buffer(driver: str, cra: str) -> None:
    """A 150 KB match in a 600-byte block: well formed, too big for every destination here:
    -ENOSPC (the device says so) or -EINVAL (scomp cannot decode past its 128 KiB scratch)."""
    blob = b"\x4f" + b"abcd" + b"\x04\x00" + b"\xff" * 600 + b"\x00" + _seq(b"zzzzz")
    for dlen in (1, PAGE):
        dst = GuardedDst(dlen, "exact")
        res = await decompress_guarded(tfm_for(driver), blob, dst)
        check(driver, cra, blob, dst, res)
        assert res.ret in (-errno.ENOSPC, -errno.EINVAL)


async def test_offset_zero_is_refused_by_every_lz4_driver() -> None:
    """Offset 0 (a match that copies from itself): LZ4_decompress_safe() decodes it (as
    zeros), the format forbids it: lz4-scomp and lz4hc-scomp refuse it (-EINVAL, after their
    walk over the block), lz4-opencl too (-EBADMSG)."""
    blob = _seq(b"abcd", 0, 4) + _seq(b"zzzzz")
    for drv in ("lz4-scomp", "lz4hc-scomp"):
        dst = GuardedDst(PAGE, "exact")
        res = await decompress_guarded(tfm_for(drv), blob, dst)
        check(drv, "lz4", blob, dst, res)
        assert res.ret == -errno.EINVAL
    if acomp.crypto_has_acomp("lz4-opencl"):
        dst = GuardedDst(PAGE, "exact")
        res = await decompress_guarded(tfm_for("lz4-opencl"), blob, dst)
        assert res.ret == -errno.EBADMSG


# ---------------------------------------------------------------------------------------------
# lz4-opencl: the vectored API and the device's own guard bytes, good and bad blocks mixed
# ---------------------------------------------------------------------------------------------


@st.composite
def mixed_items(draw: st.DrawFn) -> list[tuple[bytes, bytes | None, int]]:
    """(block, the data when the block is good else None, capacity) items."""
    items = []
    for _ in range(draw(st.integers(1, 24))):
        if draw(st.booleans()):
            d = draw(plain_data())
            blob = CODECS["lz4"].encode(d)
            cap = draw(st.sampled_from([len(d), PAGE]))
            items.append((blob, d, cap))
        else:
            _, blob, cap = draw(recipes(max_len=PAGE)).build("lz4")
            items.append((blob or b"\x00", None, min(cap, PAGE)))
    return items


@pytest.mark.gpu
@pytest.mark.skipif(not acomp.crypto_has_acomp("lz4-opencl"), reason="no OpenCL device")
@given(items=mixed_items())
@FUZZ
async def test_opencl_batch_mixes_good_and_bad_blocks(
    items: list[tuple[bytes, bytes | None, int]],
) -> None:
    tfm = tfm_for("lz4-opencl")
    caps = [c for _, _, c in items]
    res = await acomp.crypto_acomp_batch_decompress(tfm, [b for b, _, _ in items],
                                                    capacity=caps)
    assert len(res) == len(items)
    for i, (blob, good, cap) in enumerate(items):
        count("lz4-opencl", "batch:" + ("good" if good is not None else "bad"))
        n = int(res.sizes[i])
        if good is not None:
            assert n == len(good), (i, blob.hex())
            assert res.out[i, :n].tobytes() == good, (i, blob.hex())
            continue
        assert n >= 0 or n in (-errno.EBADMSG, -errno.EINVAL, -errno.ENOSPC), n
        ref = CODECS["lz4"].decode(blob, cap)
        if n >= 0:
            assert isinstance(ref, bytes), (i, blob.hex())
            assert res.out[i, :n].tobytes() == ref, (i, blob.hex())
        elif n == -errno.ENOSPC:
            assert isinstance(ref, TooBig), (i, blob.hex(), cap)

    # The same batch on the device itself, its output filled with a sentinel first: a bad
    # item writes nothing, a good one nothing past its size (guard bytes on the device).
    from acomp_drivers.lz4_opencl import loaded_alg

    alg = loaded_alg()
    assert alg is not None
    slot = max(len(b) for b, _, _ in items)
    src = np.zeros((len(items), slot), np.uint8)
    for i, (blob, _, _) in enumerate(items):
        src[i, : len(blob)] = np.frombuffer(blob, np.uint8)
    lens = np.array([len(b) for b, _, _ in items], np.int32)
    out, sizes = alg.dev.decompress(src, lens, np.array(caps, np.int32), fill=SENTINEL)
    assert (sizes == res.sizes).all()
    for i in range(len(items)):
        n = max(0, int(sizes[i]))
        assert (out[i, n:] == SENTINEL).all(), (i, items[i][0].hex())


@pytest.mark.gpu
@pytest.mark.skipif(not acomp.crypto_has_acomp("lz4-opencl"), reason="no OpenCL device")
@given(items=mixed_items())
@FUZZ
async def test_opencl_concurrent_requests_mix_good_and_bad(
    items: list[tuple[bytes, bytes | None, int]],
) -> None:
    """The engine batches concurrent requests into one launch; each keeps its own verdict."""
    import anyio

    tfm = tfm_for("lz4-opencl")
    dsts = [GuardedDst(cap, "exact") for _, _, cap in items]
    results: list[object] = [None] * len(items)

    async def one(i: int) -> None:
        results[i] = await decompress_guarded(tfm, items[i][0], dsts[i])

    async with anyio.create_task_group() as tg:
        for i in range(len(items)):
            tg.start_soon(one, i)
    for i, (blob, good, _) in enumerate(items):
        res = results[i]
        count("lz4-opencl", "concurrent:" + ("good" if good is not None else "bad"))
        check("lz4-opencl", "lz4", blob, dsts[i], res)  # type: ignore[arg-type]
        if good is not None:
            assert res.ret == 0
            assert res.output == good


# ---------------------------------------------------------------------------------------------
# Differential: each driver against the generic driver of its name and the reference library
# ---------------------------------------------------------------------------------------------


async def _roundtrip_both_ways(driver: str, cra: str, data: bytes) -> None:
    generic = f"{cra}-scomp"
    codec = CODECS[cra]
    async with acomp.open(driver) as d, acomp.open(generic) as g:
        blob = await d.compress(data)
        assert await g.decompress(blob, len(data)) == data
        assert codec.decode(blob, len(data)) == data  # the reference library agrees
        for theirs in (await g.compress(data), codec.encode(data)):
            assert await d.decompress(theirs, len(data)) == data
            # exactly one byte too small: -ENOSPC, never a truncated answer
            if len(data) > 1:
                with pytest.raises(acomp.OutputTooSmall):
                    await d.decompress(theirs, len(data) - 1)


@pytest.mark.parametrize(("driver", "cra"), DRIVERS)
@given(data=plain_data())
@FUZZ
async def test_differential_random(driver: str, cra: str, data: bytes) -> None:
    count(driver, "differential")
    await _roundtrip_both_ways(driver, cra, data)


@pytest.mark.parametrize(("driver", "cra"), DRIVERS)
async def test_differential_corpus(driver: str, cra: str) -> None:
    pages = corpus.pages(48, seed=6)
    for page in pages:
        await _roundtrip_both_ways(driver, cra, page.tobytes())
    count(driver, "differential:corpus")


@pytest.mark.parametrize(("driver", "cra"), [d for d in DRIVERS if d.values[1] == "lz4hc"])
async def test_lz4hc_blocks_are_lz4_blocks(driver: str, cra: str) -> None:
    """lz4hc makes LZ4 blocks: every lz4 decompressor reads them."""
    pages = corpus.pages(16, seed=7)
    names = ["lz4-scomp"] + (["lz4-opencl"] if acomp.crypto_has_acomp("lz4-opencl") else [])
    async with acomp.open(driver) as hc:
        blobs = [await hc.compress(p.tobytes()) for p in pages]
    for name in names:
        async with acomp.open(name) as c:
            for p, blob in zip(pages, blobs, strict=True):
                assert await c.decompress(blob, PAGE) == p.tobytes()
    assert all(lz4.block.decompress(b, uncompressed_size=PAGE) == p.tobytes()
               for p, b in zip(pages, blobs, strict=True))


@pytest.mark.gpu
@pytest.mark.skipif(not acomp.crypto_has_acomp("lz4-opencl"), reason="no OpenCL device")
async def test_differential_corpus_batch_opencl() -> None:
    """The vectored API both ways on the corpus: device blocks decode with lz4-scomp, and
    lz4-scomp blocks decode on the device."""
    tfm = tfm_for("lz4-opencl")
    pages = corpus.pages(256, seed=8)
    comp = await acomp.crypto_acomp_batch_compress(tfm, pages)
    assert comp.ok
    blobs = comp.tolist()
    async with acomp.open("lz4-scomp") as g:
        assert [await g.decompress(b, PAGE) for b in blobs] == [p.tobytes() for p in pages]
        theirs = [await g.compress(p.tobytes()) for p in pages]
    back = await acomp.crypto_acomp_batch_decompress(tfm, theirs, capacity=PAGE)
    assert back.ok
    assert np.array_equal(back.out[:, :PAGE], pages)
    count("lz4-opencl", "differential:corpus-batch")
