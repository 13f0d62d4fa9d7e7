"""acomp.testing.FixedLatencyDevice: one completion per submission, a fixed latency later."""

from __future__ import annotations

import errno
import random
import time
from collections.abc import Iterator

import numpy as np
import pytest

import acomp
from acomp.testing import FixedLatencyDevice, ZeroCostScomp
from acomp.testing.device import trim_compress, trim_decompress

pytestmark = pytest.mark.anyio

ENOSPC, EINVAL = -errno.ENOSPC, -errno.EINVAL


def prefix_page(seed: int, n: int) -> bytes:
    """`n` bytes ending in a non-zero one, then zeros: ``trim`` keeps exactly `n`."""
    return random.Random(seed).randbytes(n - 1) + b"\xff" + bytes(4096 - n)


@pytest.fixture
def device() -> Iterator[FixedLatencyDevice]:
    with FixedLatencyDevice(latency=0.02, batch_size=16, driver="trim-device-t") as dev:
        yield dev


@pytest.fixture
def scomp() -> Iterator[ZeroCostScomp]:
    with ZeroCostScomp(driver="trim-scomp-t") as alg:
        yield alg


def test_trim_codec_round_trip_and_errors() -> None:
    page = prefix_page(1, 1000)
    out = bytearray(4096)
    n = trim_compress(page, memoryview(out))
    assert n == 1004
    back = bytearray(4096)
    assert trim_decompress(memoryview(out)[:n], memoryview(back)) == 4096
    assert back == page
    # lz4's code for an output that does not fit (crypto/lz4.c)
    assert trim_compress(random.Random(2).randbytes(4095) + b"\x01", memoryview(out)) == EINVAL
    assert trim_decompress(b"\x01", memoryview(back)) == EINVAL
    assert trim_decompress(memoryview(out)[:n], memoryview(back)[:100]) == ENOSPC


async def test_one_request_completes_after_the_latency(device: FixedLatencyDevice) -> None:
    tfm = acomp.crypto_alloc_acomp("trim-device-t")
    try:
        assert acomp.acomp_is_async(tfm)
        assert acomp.crypto_acomp_batch_size(tfm) == 16
        page = prefix_page(3, 700)
        out = bytearray(4096)
        req = acomp.acomp_request_alloc(tfm)
        assert req is not None
        wait = acomp.CryptoWait()
        acomp.acomp_request_set_params(req, acomp.sg_init_one(page), acomp.sg_init_one(out),
                                       4096, 4096)
        acomp.acomp_request_set_callback(req, acomp.CRYPTO_TFM_REQ_MAY_BACKLOG,
                                         acomp.crypto_req_done, wait)
        t0 = time.monotonic()
        ret = acomp.crypto_acomp_compress(req)
        assert ret == -errno.EINPROGRESS
        assert await acomp.crypto_wait_req(ret, wait) == 0
        assert time.monotonic() - t0 >= 0.02  # never before its latency
        blob = bytes(out[:req.dlen])
        acomp.acomp_request_free(req)
    finally:
        acomp.crypto_free_acomp(tfm)
    back = bytearray(4096)
    assert trim_decompress(blob, memoryview(back)) == 4096
    assert back == page
    s = device.statistics()
    assert (s.submissions, s.batch_submissions, s.items) == (1, 0, 1)


async def test_a_batch_is_one_submission_and_one_completion(device: FixedLatencyDevice,
                                                            scomp: ZeroCostScomp) -> None:
    pages = np.frombuffer(b"".join(prefix_page(i, 100 + 30 * i) for i in range(64)),
                          np.uint8).reshape(64, 4096)
    tfm = acomp.crypto_alloc_acomp("trim-device-t")
    try:
        res = await acomp.crypto_acomp_batch_compress(tfm, pages, capacity=4096)
        assert res.ok
        s = device.statistics()
        assert (s.submissions, s.batch_submissions, s.items, s.completions) == (1, 1, 64, 1)
        back = await acomp.crypto_acomp_batch_decompress(
            tfm, [res.item(i) for i in range(64)], capacity=4096)
        assert back.ok
        assert all(back.item(i) == pages[i].tobytes() for i in range(64))
    finally:
        acomp.crypto_free_acomp(tfm)
    # The synchronous twin decodes what the device encoded.
    async with acomp.open("trim-scomp-t") as c:
        assert await c.decompress(res.item(5), 4096) == pages[5].tobytes()


async def test_an_incompressible_row_fails_alone(device: FixedLatencyDevice) -> None:
    rows = [prefix_page(1, 200), random.Random(9).randbytes(4095) + b"\x01", prefix_page(2, 50)]
    tfm = acomp.crypto_alloc_acomp("trim-device-t")
    try:
        res = await acomp.crypto_acomp_batch_compress(tfm, rows, capacity=4096)
    finally:
        acomp.crypto_free_acomp(tfm)
    assert res.sizes[1] == EINVAL
    assert res.sizes[0] > 0
    assert res.sizes[2] > 0


def test_a_synchronous_driver_batches_one(scomp: ZeroCostScomp) -> None:
    tfm = acomp.crypto_alloc_acomp("trim-scomp-t")
    try:
        assert not acomp.acomp_is_async(tfm)
        assert acomp.crypto_acomp_batch_size(tfm) == 1
    finally:
        acomp.crypto_free_acomp(tfm)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="latency"):
        FixedLatencyDevice(latency=-1)
    with pytest.raises(ValueError, match="batch_size"):
        FixedLatencyDevice(batch_size=0)
