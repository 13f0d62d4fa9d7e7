"""The proposed acomp segmentation (the "proposed" mode): ``unit_size``, ``CRYPTO_ALG_REQ_SEG``,
the trivial segmentation, and the CPU batch path's native segmentation on every CPU driver.

Kernel: not merged. Herbert Xu, "crypto: acomp - Add segmentation API for compression" (26 Dec
2025): "Define a unit_size in struct acomp_req to enable batching" (include/crypto/acompress.h:
acomp_request_set_unit_size, acomp_request_set_callback's unit_size = 0), "Add bit to indicate
segmentation support" (include/linux/crypto.h CRYPTO_ALG_REQ_SEG 0x00100000,
crypto_acomp_req_seg), "Add trivial segmentation wrapper" (crypto/acompress.c
acomp_do_req_chain, acomp_reqchain_finish, crypto_acomp_compress); as carried in Kanchana P
Sridhar's "zswap compression batching with optimized iaa_crypto driver" v14 (25 Jan 2026),
15/26 and 18/26 (acomp_do_req_batch_parallel, batch_completed; decompression unchanged).
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from typing import Any

import lz4.block
import numpy as np
import pytest

import acomp
from acomp import (
    CRYPTO_ALG_ASYNC,
    CRYPTO_ALG_REQ_SEG,
    CRYPTO_TFM_REQ_MAY_BACKLOG,
    PAGE_SIZE,
    UnsupportedKernel,
)
from acomp.__main__ import list_state
from acomp.eras import PROPOSED, PROPOSED_KERNEL, era_of, is_proposed, parse_kernel
from acomp.internal import (
    AcompAlg,
    AcompReq,
    crypto_acomp_req_seg,
    crypto_register_acomp,
    crypto_register_scomp,
    crypto_unregister_acomp,
    crypto_unregister_scomp,
)
from acomp.testing import FixedLatencyDevice, ZeroCostScomp

CPU = ["lz4", "lz4hc", "lzo", "zstd", "deflate"]
RNG = np.random.default_rng(12)


def _pages(n: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """n pages: text-like ones, a zero page, and one incompressible page (index 1)."""
    rows = np.zeros((n, PAGE_SIZE), np.uint8)
    for i in range(n):
        text = (f"segment {i}: the proposed acomp segmentation ".encode() * 200)[:PAGE_SIZE]
        rows[i] = np.frombuffer(text, np.uint8)
    if n > 1:
        rows[1] = RNG.integers(0, 256, PAGE_SIZE, dtype=np.uint8)
    if n > 2:
        rows[2] = 0
    return rows


class Seg:
    """A segmented compression request on `tfm`: `n` dst entries of `cap` bytes each."""

    def __init__(self, tfm: acomp.CryptoAcomp, entries: int, cap: int = PAGE_SIZE) -> None:
        self.tfm = tfm
        req = acomp.acomp_request_alloc(tfm)
        assert req is not None
        self.req: AcompReq = req
        self.wait = acomp.CryptoWait()
        self.calls: list[int] = []
        acomp.acomp_request_set_callback(req, CRYPTO_TFM_REQ_MAY_BACKLOG, self._done, self)
        self.outs = np.zeros((entries, cap), np.uint8)
        self.dst = acomp.sg_init_table(entries)
        for i in range(entries):
            acomp.sg_set_buf(self.dst, i, self.outs[i])

    @staticmethod
    def _done(self: Seg, err: int) -> None:
        self.calls.append(err)
        acomp.crypto_req_done(self.wait, err)

    def set(self, src: Any, slen: int, unit: int = PAGE_SIZE) -> None:
        acomp.acomp_request_set_src_sg(self.req, acomp.sg_init_one(src), slen)
        acomp.acomp_request_set_dst_sg(self.req, self.dst, slen)
        acomp.acomp_request_set_unit_size(self.req, unit)

    async def compress(self) -> int:
        return await acomp.crypto_wait_req(acomp.crypto_acomp_compress(self.req), self.wait)

    def lengths(self, n: int) -> list[int]:
        return [acomp.sg_length(self.dst, i) for i in range(n)]

    def block(self, i: int) -> bytes:
        return self.outs[i, : acomp.sg_length(self.dst, i)].tobytes()

    def free(self) -> None:
        assert not self.req.in_flight
        acomp.acomp_request_free(self.req)
        acomp.crypto_free_acomp(self.tfm)


@pytest.fixture
def proposed() -> Iterator[None]:
    with acomp.using_kernel(PROPOSED):
        yield


def _cpu_tfm(name: str) -> acomp.CryptoAcomp:
    if not acomp.crypto_has_acomp(name, 0, CRYPTO_ALG_ASYNC):
        pytest.skip(f"no CPU {name} here")
    return acomp.crypto_alloc_acomp(name, 0, CRYPTO_ALG_ASYNC)


def _single(tfm: acomp.CryptoAcomp, page: bytes, cap: int) -> tuple[int, bytes]:
    """One ordinary request (no unit size) on the same transform: (status, output)."""
    req = acomp.acomp_request_alloc(tfm)
    assert req is not None
    out = bytearray(cap)
    acomp.acomp_request_set_params(req, acomp.sg_init_one(page), acomp.sg_init_one(out),
                                   len(page), cap)
    ret = acomp.crypto_acomp_compress(req)
    got = bytes(out[: req.dlen]) if ret == 0 else b""
    acomp.acomp_request_free(req)
    return ret, got


# -- the switch ------------------------------------------------------------------------------


def test_proposed_is_an_opt_in_kernel_that_compares_as_7_0() -> None:
    """The series applies to the newest kernel: "proposed" is 7.0 for every version test, its
    own era (not a released one), and named by the switch's error message and acomp list."""
    assert parse_kernel(PROPOSED) is PROPOSED_KERNEL
    assert PROPOSED_KERNEL == (7, 0)
    assert PROPOSED_KERNEL >= (6, 16)
    assert is_proposed(PROPOSED_KERNEL)
    assert not is_proposed((7, 0))
    assert is_proposed(PROPOSED)
    assert era_of(PROPOSED).name == PROPOSED
    assert era_of("7.0").name == "6.18-7.0"
    assert PROPOSED not in [e.name for e in acomp.eras.ERAS]
    with pytest.raises(UnsupportedKernel, match=r'modelled eras: .*6\.18 - 7\.0 \(and "proposed"'):
        era_of("5.4")
    with acomp.using_kernel(PROPOSED) as era:
        assert (acomp.kernel(), era.name, era.kernel) == (PROPOSED, PROPOSED, PROPOSED)
        state = list_state()
        assert (state["kernel"], state["era"]) == (PROPOSED, PROPOSED)
        tfm = acomp.crypto_alloc_acomp("lz4-scomp")
        assert is_proposed(tfm.kernel)
        acomp.crypto_free_acomp(tfm)
    assert acomp.kernel() != PROPOSED


@pytest.mark.parametrize("version", ["6.14", "6.15", "6.17", "7.0"])
def test_outside_the_mode_the_segmentation_is_absent(version: str) -> None:
    """Released kernels have no unit_size: the setter and the flag test are a clear error
    naming the mode (as acomp_request_chain outside v6.15), and nothing changes."""
    with acomp.using_kernel(version):
        tfm = acomp.crypto_alloc_acomp("lz4-scomp")
    req = acomp.acomp_request_alloc(tfm)
    assert req is not None
    with pytest.raises(UnsupportedKernel, match=r'is proposed, not merged.*"proposed" mode'):
        acomp.acomp_request_set_unit_size(req, PAGE_SIZE)
    with pytest.raises(UnsupportedKernel, match="crypto_acomp_req_seg is proposed"):
        crypto_acomp_req_seg(tfm)
    assert req.unit_size == 0
    acomp.acomp_request_free(req)
    acomp.crypto_free_acomp(tfm)


def test_set_callback_resets_the_unit_size(proposed: None) -> None:
    """include/crypto/acompress.h (the series): acomp_request_set_callback sets unit_size to 0,
    so the unit size is set after it."""
    s = Seg(_cpu_tfm("lz4"), 1)
    acomp.acomp_request_set_unit_size(s.req, PAGE_SIZE)
    assert s.req.unit_size == PAGE_SIZE
    acomp.acomp_request_set_callback(s.req, 0, acomp.crypto_req_done, s.wait)
    assert s.req.unit_size == 0
    with pytest.raises(ValueError, match="unsigned int"):
        acomp.acomp_request_set_unit_size(s.req, -1)
    s.free()


# -- native segmentation on the CPU batch path -------------------------------------------------


@pytest.mark.parametrize("name", CPU)
async def test_every_cpu_driver_segments_as_its_single_requests(anyio_backend: str,
                                                                proposed: None,
                                                                name: str) -> None:
    """A segmented request of 8 pages on a CPU driver: each dst entry holds what a request of
    its own gives (bytes, or the same errno for the incompressible page: lz4's -EINVAL, lzo's
    -ENOSPC), dlen is the first segment's, and the status is -EINVAL since one segment failed.
    An scomp algorithm segments natively (CRYPTO_ALG_REQ_SEG); a native acomp one (deflate,
    zstd from v6.16/6.17, if modelled) gets the trivial segmentation: one segment at most."""
    pages = _pages(8)
    s = Seg(_cpu_tfm(name), 8)
    seg = crypto_acomp_req_seg(s.tfm)
    if name in ("lz4", "lz4hc", "lzo"):
        assert seg  # scomp in every kernel (crypto/lz4.c, lz4hc.c, lzo.c)
    n = 8 if seg else 1
    s.set(pages.reshape(-1), n * PAGE_SIZE)
    ret = await s.compress()
    if not seg:
        assert ret == 0  # page 0: one segment, the trivial wrapper
    singles = [_single(s.tfm, pages[i].tobytes(), PAGE_SIZE) for i in range(n)]
    lens = s.lengths(n)
    for i, (sret, out) in enumerate(singles):
        if sret:
            assert lens[i] == sret < 0
        else:
            assert lens[i] == len(out) > 0
            assert s.block(i) == out
    assert s.req.dlen == lens[0]
    assert ret == (-errno.EINVAL if any(x < 0 for x in lens) else 0)
    if seg:
        assert lens[1] < 0  # the random page fails, the others do not stop
        assert all(x > 0 for i, x in enumerate(lens) if i != 1)
    if name == "lz4":
        assert lens[1] == -errno.EINVAL  # crypto/lz4.c: LZ4_compress_default gave 0
        for i in (0, 2, 3):
            assert lz4.block.decompress(s.block(i), uncompressed_size=PAGE_SIZE) == \
                pages[i].tobytes()
    s.free()


async def test_a_short_tail_is_a_segment_and_every_byte_comes_back(anyio_backend: str,
                                                                   proposed: None) -> None:
    """slen not a multiple of unit_size: the last segment is the rest (iaa_crypto drops it;
    here no byte is left out), each segment decompresses to its slice."""
    data = _pages(4).reshape(-1)[: 3 * 1000 + 123].copy()
    data[1000:2000] = 7
    s = Seg(_cpu_tfm("lz4"), 4)
    s.set(data, len(data), unit=1000)
    assert await s.compress() == 0
    back = b"".join(lz4.block.decompress(s.block(i), uncompressed_size=1000)
                    for i in range(4))
    assert back == data.tobytes()
    assert len(lz4.block.decompress(s.block(3), uncompressed_size=1000)) == 123
    s.free()


async def test_too_few_dst_entries_is_einval_before_any_segment(anyio_backend: str,
                                                                proposed: None) -> None:
    """Fewer dst entries than segments: -EINVAL, nothing written (iaa_crypto would walk past
    the list)."""
    s = Seg(_cpu_tfm("lz4"), 2)
    s.set(_pages(4).reshape(-1), 3 * PAGE_SIZE)
    assert await s.compress() == -errno.EINVAL
    assert s.lengths(2) == [PAGE_SIZE, PAGE_SIZE]  # the entries' own sizes: untouched
    assert not s.outs.any()
    s.free()


async def test_a_segment_gets_its_entrys_memory_as_capacity(anyio_backend: str,
                                                            proposed: None) -> None:
    """Each segment's capacity is its dst entry: a small entry fails alone (lz4's -EINVAL),
    never writing past it."""
    pages = _pages(1)
    src = np.concatenate([pages[0], pages[0]])
    s = Seg(_cpu_tfm("lz4"), 2, cap=PAGE_SIZE)
    acomp.sg_set_buf(s.dst, 1, s.outs[1], 16)
    s.set(src, 2 * PAGE_SIZE)
    assert await s.compress() == -errno.EINVAL
    lens = s.lengths(2)
    assert lens[0] > 0
    assert lens[1] == -errno.EINVAL
    assert not s.outs[1].any()
    s.free()


async def test_decompression_ignores_the_unit_size(anyio_backend: str, proposed: None) -> None:
    """v14 left crypto_acomp_decompress as v6.16 has it (zswap uses one request for both)."""
    page = _pages(1)[0].tobytes()
    blob = lz4.block.compress(page, store_size=False)
    s = Seg(_cpu_tfm("lz4"), 1)
    out = bytearray(PAGE_SIZE)
    acomp.acomp_request_set_params(s.req, acomp.sg_init_one(blob), acomp.sg_init_one(out),
                                   len(blob), PAGE_SIZE)
    acomp.acomp_request_set_unit_size(s.req, 1024)
    ret = await acomp.crypto_wait_req(acomp.crypto_acomp_decompress(s.req), s.wait)
    assert (ret, s.req.dlen, bytes(out)) == (0, PAGE_SIZE, page)
    s.free()


async def test_virtual_addresses_take_the_v6_16_path(anyio_backend: str, proposed: None) -> None:
    """A unit size on a virtual-address request changes nothing ("we preserve existing
    behavior ... instead of returning an error"): no segmentation, no dst length."""
    pages = _pages(4)
    s = Seg(_cpu_tfm("lz4"), 1, cap=4 * PAGE_SIZE)
    out = bytearray(4 * PAGE_SIZE)
    acomp.acomp_request_set_src_dma(s.req, pages.reshape(-1), 4 * PAGE_SIZE)
    acomp.acomp_request_set_dst_dma(s.req, out, len(out))
    acomp.acomp_request_set_unit_size(s.req, PAGE_SIZE)
    assert await s.compress() == 0
    whole = lz4.block.decompress(bytes(out[: s.req.dlen]), uncompressed_size=4 * PAGE_SIZE)
    assert whole == pages.tobytes()
    s.free()


# -- the trivial segmentation (an algorithm without CRYPTO_ALG_REQ_SEG) -------------------------


@pytest.fixture
def device(proposed: None) -> Iterator[FixedLatencyDevice]:
    """An asynchronous trim device without CRYPTO_ALG_REQ_SEG, and the synchronous trim its
    v6.15+ transforms take as their fallback."""
    sync = ZeroCostScomp(driver="trim-scomp-seg")
    assert crypto_register_scomp(sync) == 0
    try:
        with FixedLatencyDevice(latency=0.001, driver="trim-seg") as dev:
            yield dev
    finally:
        assert crypto_unregister_scomp(sync) == 0


async def test_trivial_segmentation_takes_one_segment(anyio_backend: str,
                                                      device: FixedLatencyDevice) -> None:
    """crypto/acompress.c acomp_do_req_chain (the series): one segment runs as an ordinary
    request with unit_size 0, then acomp_reqchain_finish puts dlen (or the error) in the first
    dst entry's length and gives the caller its callback and unit size back; more than one
    segment is -ENOSYS at once."""
    s = Seg(acomp.crypto_alloc_acomp("trim-seg"), 2)
    assert not crypto_acomp_req_seg(s.tfm)
    page = np.zeros(PAGE_SIZE, np.uint8)
    page[:100] = 9
    s.set(page, PAGE_SIZE)
    assert await s.compress() == 0
    assert s.calls == [0]  # the caller's own callback and data, once
    assert s.lengths(1) == [s.req.dlen] == [104]  # trim: 4-byte header + 100 bytes
    assert s.req.unit_size == PAGE_SIZE
    assert s.req.complete is Seg._done
    s.set(np.tile(page, 2), 2 * PAGE_SIZE)
    assert acomp.crypto_acomp_compress(s.req) == -errno.ENOSYS
    assert not s.req.in_flight
    assert s.calls == [0]
    rnd = RNG.integers(1, 256, PAGE_SIZE, dtype=np.uint8)  # does not fit: trim's -EINVAL
    s.set(rnd, PAGE_SIZE)
    assert await s.compress() == -errno.EINVAL
    assert s.lengths(1) == [-errno.EINVAL]
    s.free()


# -- acomp_do_req_batch_parallel (a REQ_SEG algorithm with batch_completed) ---------------------


class _Polled(AcompAlg):
    """A segmenting algorithm that completes through batch_completed, as iaa_crypto: compress()
    submits every segment and returns; batch_completed() polls them (here: counts the calls,
    done on the third) and writes the lengths."""

    cra_name = "polled"
    cra_driver_name = "polled-seg"
    cra_flags = CRYPTO_ALG_REQ_SEG  # synchronous here: no fallback transform to find
    cra_module = "tests"

    def __init__(self) -> None:
        super().__init__()
        self.submitted: list[int] = []
        self.polls = 0

    def compress(self, req: AcompReq) -> int:
        self.submitted.append(req.slen // req.unit_size)
        return 0

    def decompress(self, req: AcompReq) -> int:
        return -errno.EINVAL

    def batch_completed(self, req: AcompReq, comp: bool) -> bool:
        self.polls += 1
        if self.polls < 3:
            return False
        assert req.dst is not None
        for i in range(req.slen // req.unit_size):
            acomp.internal.set_sg_length(req.dst, i, 10 + i)
        return True


def test_a_batch_completed_algorithm_is_waited_for(proposed: None) -> None:
    """v14 18/26 acomp_do_req_batch_parallel: more than one unit on an algorithm with
    batch_completed: compress() submits, then the caller waits (sleeps) until
    batch_completed(req, true); the status is compress()'s. One unit goes straight to
    compress() (the driver sets the length itself)."""
    alg = _Polled()
    assert crypto_register_acomp(alg) == 0
    try:
        s = Seg(acomp.crypto_alloc_acomp("polled-seg"), 3)
        s.set(_pages(3).reshape(-1), 3 * PAGE_SIZE)
        assert acomp.crypto_acomp_compress(s.req) == 0
        assert (alg.submitted, alg.polls, s.lengths(3)) == ([3], 3, [10, 11, 12])
        s.set(_pages(1).reshape(-1), PAGE_SIZE)
        assert acomp.crypto_acomp_compress(s.req) == 0
        assert (alg.submitted, alg.polls) == ([3, 1], 3)  # no wait for one unit
        s.free()
    finally:
        assert crypto_unregister_acomp(alg) == 0


async def test_an_on_stack_request_is_refused_first_and_its_clone_keeps_the_unit(
        anyio_backend: str, device: FixedLatencyDevice) -> None:
    """crypto_acomp_compress (v14) tests acomp_req_on_stack before the unit size: -EAGAIN on
    an async tfm; ACOMP_REQUEST_CLONE copies the request (unit_size with it) and runs."""
    tfm = acomp.crypto_alloc_acomp("trim-seg")
    page = np.zeros(PAGE_SIZE, np.uint8)
    page[:10] = 3
    out = bytearray(PAGE_SIZE)
    dst = acomp.sg_init_one(out)
    req = acomp.ACOMP_REQUEST_ON_STACK(tfm)
    wait = acomp.CryptoWait()
    acomp.acomp_request_set_callback(req, CRYPTO_TFM_REQ_MAY_BACKLOG, acomp.crypto_req_done,
                                     wait)
    acomp.acomp_request_set_src_sg(req, acomp.sg_init_one(page), PAGE_SIZE)
    acomp.acomp_request_set_dst_sg(req, dst, PAGE_SIZE)
    acomp.acomp_request_set_unit_size(req, PAGE_SIZE)
    assert acomp.crypto_acomp_compress(req) == -errno.EAGAIN
    clone = acomp.ACOMP_REQUEST_CLONE(req)
    assert clone is not req
    assert clone.unit_size == PAGE_SIZE
    assert await acomp.crypto_wait_req(acomp.crypto_acomp_compress(clone), wait) == 0
    assert acomp.sg_length(dst, 0) == clone.dlen == 14
    acomp.acomp_request_free(clone)
    acomp.crypto_free_acomp(tfm)
