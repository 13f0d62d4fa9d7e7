"""The acomp API of v6.15 and later, chosen when a transform is allocated (acomp.eras).

Kernel: crypto/acompress.c and include/crypto/acompress.h of v6.15 / v6.16 (crypto_acomp_init_tfm's
fallback, crypto_acomp_compress's dispatch, acomp_do_nondma, the virtual-address setters,
ACOMP_REQUEST_ON_STACK / ACOMP_FBREQ_ON_STACK / ACOMP_REQUEST_CLONE), crypto/scompress.c of
v6.15 (no NULL dst: CRYPTO_ACOMP_ALLOC_OUTPUT removed).
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

import lz4.block
import pytest

import acomp
from acomp import (
    CRYPTO_ACOMP_REQ_SRC_NONDMA,
    CRYPTO_ACOMP_REQ_SRC_VIRT,
    CRYPTO_TFM_REQ_MAY_BACKLOG,
    PAGE_SIZE,
    UnsupportedKernel,
)
from acomp.testing import FakeAsyncDriver

PAGE = (b"the kernel's acomp API, era by era " * 200)[:PAGE_SIZE]


@pytest.fixture
def fake() -> Iterator[FakeAsyncDriver]:
    """An async "lz4" (its fallback is lz4-scomp), allocated by its driver name."""
    with FakeAsyncDriver(name="lz4", driver="fake-lz4") as f:
        yield f


def _req(tfm: acomp.CryptoAcomp) -> acomp.AcompReq:
    req = acomp.acomp_request_alloc(tfm)
    assert req is not None
    return req


def test_a_null_dst_allocates_before_6_15_and_is_einval_from_6_15() -> None:
    for version, want in (("6.14", 0), ("6.15", -errno.EINVAL), ("6.18", -errno.EINVAL)):
        with acomp.using_kernel(version):
            tfm = acomp.crypto_alloc_acomp("lz4-scomp")
        req = _req(tfm)
        acomp.acomp_request_set_params(req, acomp.sg_init_one(PAGE), None, PAGE_SIZE, 0)
        assert acomp.crypto_acomp_compress(req) == want, version
        acomp.acomp_request_free(req)
        acomp.crypto_free_acomp(tfm)


def test_the_era_is_fixed_when_the_transform_is_allocated() -> None:
    with acomp.using_kernel("6.16"):
        new = acomp.crypto_alloc_acomp("lz4-scomp")
    old = acomp.crypto_alloc_acomp("lz4-scomp")  # the default, 6.14
    assert (new.kernel, old.kernel) == ((6, 16), (6, 14))
    with pytest.raises(UnsupportedKernel, match=r"v6\.15 and later"):
        acomp.acomp_request_set_src_dma(_req(old), PAGE, PAGE_SIZE)
    with pytest.raises(UnsupportedKernel, match=r"v6\.16 and later"):
        acomp.ACOMP_REQUEST_ON_STACK(old)
    acomp.crypto_free_acomp(new)
    acomp.crypto_free_acomp(old)


@pytest.mark.parametrize("nondma", [False, True])
def test_virtual_addresses_round_trip_on_scomp(nondma: bool) -> None:
    with acomp.using_kernel("6.15"):
        tfm = acomp.crypto_alloc_acomp("lz4")
    req = _req(tfm)
    out = bytearray(2 * PAGE_SIZE)
    (acomp.acomp_request_set_src_nondma if nondma else acomp.acomp_request_set_src_dma)(
        req, PAGE, PAGE_SIZE)
    acomp.acomp_request_set_dst_dma(req, out, len(out))
    flags = req.base_flags
    assert flags & CRYPTO_ACOMP_REQ_SRC_VIRT
    assert bool(flags & CRYPTO_ACOMP_REQ_SRC_NONDMA) is nondma
    acomp.acomp_request_set_callback(req, CRYPTO_TFM_REQ_MAY_BACKLOG, None, None)
    assert req.base_flags & CRYPTO_ACOMP_REQ_SRC_VIRT  # the callback keeps the private bits
    assert acomp.crypto_acomp_compress(req) == 0
    n = req.dlen
    assert lz4.block.decompress(bytes(out[:n]), uncompressed_size=PAGE_SIZE) == PAGE
    back = bytearray(PAGE_SIZE)
    acomp.acomp_request_set_src_folio(req, out, 0, n)
    acomp.acomp_request_set_dst_folio(req, back, 0, PAGE_SIZE)
    assert not req.base_flags & CRYPTO_ACOMP_REQ_SRC_VIRT  # a folio is a scatterlist
    assert acomp.crypto_acomp_decompress(req) == 0
    assert back == PAGE
    acomp.acomp_request_set_params(req, acomp.sg_init_one(PAGE), acomp.sg_init_one(out),
                                   PAGE_SIZE, len(out))
    assert not req.base_flags & 0x7E  # set_params: scatterlists on both sides
    acomp.acomp_request_free(req)
    acomp.crypto_free_acomp(tfm)


@pytest.mark.anyio
async def test_an_async_tfm_has_a_synchronous_fallback_for_nondma_buffers(
        fake: FakeAsyncDriver) -> None:
    """v6.15 crypto_acomp_init_tfm allocates tfm->fb (crypto_alloc_acomp(name, 0,
    CRYPTO_ALG_ASYNC)); acomp_do_nondma runs a NONDMA request on it, synchronously."""
    old = acomp.crypto_alloc_acomp("fake-lz4")
    assert old.fb is None  # 6.14: no fallback in the core
    acomp.crypto_free_acomp(old)
    with acomp.using_kernel("6.15"):
        tfm = acomp.crypto_alloc_acomp("fake-lz4")
    assert tfm.fb is not None
    assert acomp.crypto_acomp_driver_name(tfm.fb) == "lz4-scomp"
    req = _req(tfm)
    wait = acomp.CryptoWait()
    acomp.acomp_request_set_callback(req, CRYPTO_TFM_REQ_MAY_BACKLOG, acomp.crypto_req_done,
                                     wait)
    out = bytearray(2 * PAGE_SIZE)
    acomp.acomp_request_set_src_nondma(req, PAGE, PAGE_SIZE)
    acomp.acomp_request_set_dst_dma(req, out, len(out))
    submits = [e for e in fake.events if e[0] == "submit"]
    assert acomp.crypto_acomp_compress(req) == 0  # done by lz4-scomp, not queued
    assert lz4.block.decompress(bytes(out[:req.dlen]), uncompressed_size=PAGE_SIZE) == PAGE
    assert [e for e in fake.events if e[0] == "submit"] == submits  # the device saw nothing
    acomp.acomp_request_set_src_dma(req, PAGE, PAGE_SIZE)  # DMA-able: the device takes it
    ret = acomp.crypto_acomp_compress(req)
    assert ret in (-errno.EINPROGRESS, -errno.EBUSY)
    assert await acomp.crypto_wait_req(ret, wait) == 0
    assert len([e for e in fake.events if e[0] == "submit"]) == len(submits) + 1
    acomp.acomp_request_free(req)
    fb = tfm.fb
    acomp.crypto_free_acomp(tfm)
    assert fb is not None
    assert fb.freed  # freed with the transform, so the algorithm can be unregistered


def test_on_stack_requests_need_a_clone_on_an_async_tfm(fake: FakeAsyncDriver) -> None:
    """v6.16 crypto_acomp_compress: acomp_req_on_stack(req) && acomp_is_async(tfm) ->
    -EAGAIN; ACOMP_REQUEST_CLONE gives a heap request; ACOMP_FBREQ_ON_STACK the fallback's."""
    with acomp.using_kernel("6.16"):
        tfm = acomp.crypto_alloc_acomp("fake-lz4")
        sync = acomp.crypto_alloc_acomp("lz4-scomp")
    out = bytearray(2 * PAGE_SIZE)
    req = acomp.ACOMP_REQUEST_ON_STACK(tfm)
    acomp.acomp_request_set_params(req, acomp.sg_init_one(PAGE), acomp.sg_init_one(out),
                                   PAGE_SIZE, len(out))
    assert acomp.crypto_acomp_compress(req) == -errno.EAGAIN
    clone = acomp.ACOMP_REQUEST_CLONE(req)
    assert clone is not req
    assert not clone.on_stack
    assert (clone.src, clone.dst, clone.slen, clone.dlen) == (req.src, req.dst, req.slen,
                                                              req.dlen)
    fbreq = acomp.ACOMP_FBREQ_ON_STACK(req)
    assert fbreq.tfm is tfm.fb
    assert acomp.crypto_acomp_compress(fbreq) == 0
    assert lz4.block.decompress(bytes(out[:fbreq.dlen]), uncompressed_size=PAGE_SIZE) == PAGE
    mine = acomp.ACOMP_REQUEST_ON_STACK(sync)  # a synchronous tfm takes it as it is
    acomp.acomp_request_set_params(mine, acomp.sg_init_one(PAGE), acomp.sg_init_one(out),
                                   PAGE_SIZE, len(out))
    assert acomp.crypto_acomp_compress(mine) == 0
    assert acomp.ACOMP_REQUEST_CLONE(clone) is clone
    acomp.acomp_request_free(clone)
    acomp.crypto_free_acomp(tfm)
    acomp.crypto_free_acomp(sync)
