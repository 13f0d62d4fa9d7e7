"""zswap's proposed batched store on segmented requests (acomp's "proposed" mode).

Kernel: not merged. "zswap compression batching with optimized iaa_crypto driver" v14 (25 Jan
2026), 26/26 "mm: zswap: Batched zswap_compress() for compress batching of large folios"
(mm/zswap.c zswap_compress: acomp_request_set_src_folio, acomp_request_set_dst_sg over the
per-CPU sg_table, acomp_request_set_unit_size(req, PAGE_SIZE) from zswap_cpu_comp_prepare; each
page's length or error read from its dst entry's sg->length; a compressor without batching gets
one page per request).
"""

from __future__ import annotations

import errno
import random
from collections.abc import Iterator
from typing import Any

import pytest

import acomp
from acomp import CRYPTO_ALG_REQ_SEG, PAGE_SIZE
from acomp.internal import (
    AcompReq,
    acomp_request_complete,
    crypto_register_scomp,
    crypto_unregister_scomp,
    finish_segments,
    segment_views,
)
from acomp.testing import FixedLatencyDevice, ZeroCostScomp
from acomp.testing.device import trim_compress
from zswap import Folio, PhysMem, Zswap

pytestmark = pytest.mark.anyio

EINVAL = -errno.EINVAL


class SegmentingDevice(FixedLatencyDevice):
    """The trim device with ``CRYPTO_ALG_REQ_SEG``: a segmented request is one submission
    that completes every segment together (as iaa_crypto's batch, without the polling)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.cra_flags |= CRYPTO_ALG_REQ_SEG
        self.segmented = 0

    def compress(self, req: AcompReq) -> int:
        if not req.unit_size:
            return super().compress(req)
        got = segment_views(req)
        if isinstance(got, int):
            return got
        segs, outs = got

        def finish() -> None:
            res: list[bytes | int] = []
            for seg, out in zip(segs, outs, strict=True):
                buf = memoryview(bytearray(len(out)))
                n = trim_compress(seg, buf)
                res.append(n if n < 0 else bytes(buf[:n]))
            acomp_request_complete(req, finish_segments(req, outs, res))

        with self._lock:
            self._stats["submissions"] += 1
            self._stats["items"] += len(segs)
            self.segmented += 1
            self._schedule(self.latency, finish)
        return -errno.EINPROGRESS


@pytest.fixture
def trim_sync() -> Iterator[None]:
    """The synchronous trim, the v6.15+ fallback the devices' transforms take."""
    sync = ZeroCostScomp(driver="trim-scomp-zseg")
    assert crypto_register_scomp(sync) == 0
    yield
    assert crypto_unregister_scomp(sync) == 0


@pytest.fixture
def seg_device(trim_sync: None) -> Iterator[SegmentingDevice]:
    with SegmentingDevice(latency=50e-6, batch_size=8, driver="trim-segdev") as dev:
        yield dev


@pytest.fixture
def plain_device(trim_sync: None) -> Iterator[FixedLatencyDevice]:
    with FixedLatencyDevice(latency=50e-6, batch_size=8, driver="trim-plaindev") as dev:
        yield dev


def folio_of(nr: int, seed: int, bad: int | None = None) -> Folio:
    pages = []
    for i in range(nr):
        r = random.Random(seed * 7919 + i)
        if i == bad:
            pages.append(r.randbytes(PAGE_SIZE - 1) + b"\x01")  # trim cannot shrink it
        else:
            n = r.randrange(200, 2000)
            pages.append(r.randbytes(n - 1) + b"\xff" + bytes(PAGE_SIZE - n))
    return Folio(b"".join(pages))


def _zswap(driver: str, acomp_kernel: str) -> Zswap:
    with acomp.using_kernel(acomp_kernel):  # the pool's transform follows this kernel
        zs = Zswap(mem=PhysMem(4096, name="seg"), compressor=driver, version="proposed",
                   batch_size=8)
    zs.init(0)  # swapon of type 0
    return zs


async def _round_trip(zs: Zswap, f: Folio) -> None:
    assert await zs.store_folio(0, 0, f) == 0
    assert zs.stored_pages == f.nr_pages
    for i in range(f.nr_pages):
        out = bytearray(PAGE_SIZE)
        assert await zs.load(0, i, out) == 0
        assert out == f.page(i)


async def test_a_segmenting_compressor_gets_one_request_per_batch(
        seg_device: SegmentingDevice) -> None:
    """v14 zswap_compress with a batching compressor: each batch of compr_batch_size pages is
    one segmented request (one device submission), each page's size from its dst entry."""
    zs = _zswap("trim-segdev", "proposed")
    await _round_trip(zs, folio_of(16, seed=1))
    st = seg_device.statistics()
    assert (seg_device.segmented, st.batch_submissions) == (2, 0)  # 16 pages, batches of 8
    zs.close()


async def test_a_failing_segment_fails_the_folio_and_is_counted(
        seg_device: SegmentingDevice) -> None:
    """A page whose segment failed (trim's -EINVAL in its dst length) is rejected as on the
    page-at-a-time path: the folio is not stored, reject_compress_fail counts it."""
    zs = _zswap("trim-segdev", "proposed")
    assert await zs.store_folio(0, 0, folio_of(16, seed=2, bad=11)) == EINVAL
    assert zs.reject_compress_fail == 1
    assert zs.stored_pages == 0
    assert seg_device.segmented == 2
    zs.close()


async def test_a_compressor_without_segmentation_gets_a_page_per_request(
        plain_device: FixedLatencyDevice) -> None:
    """Without CRYPTO_ALG_REQ_SEG the trivial segmentation takes one segment: zswap sends
    the batch's pages one request each, in turn (v14: "each page in the batch is compressed
    and stored sequentially")."""
    zs = _zswap("trim-plaindev", "proposed")
    await _round_trip(zs, folio_of(16, seed=3))
    st = plain_device.statistics()
    assert (st.submissions, st.batch_submissions) == (16 + 16, 0)  # 16 stores, 16 loads
    zs.close()


async def test_outside_the_mode_the_batch_api_serves_the_store(
        plain_device: FixedLatencyDevice) -> None:
    """With the pool's transform in a released kernel, zswap's proposed paths keep the
    project's batch API (one vectored submission per batch)."""
    zs = _zswap("trim-plaindev", "7.0")
    await _round_trip(zs, folio_of(16, seed=4))
    assert plain_device.statistics().batch_submissions == 2
    zs.close()
