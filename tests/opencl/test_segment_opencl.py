"""lz4-opencl's native segmentation (CRYPTO_ALG_REQ_SEG, the proposed mode): a segmented
request is one device job; small ones and segments wider than a block go to the fallback.

Kernel: not merged (the compress-batching series v14, Jan 2026: crypto_acomp_compress hands a
REQ_SEG algorithm the whole request; the driver writes each segment's length or error into its
dst entry, as iaa_crypto does). Runs on PoCL here (marked gpu).
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from typing import Any

import lz4.block
import numpy as np
import pytest

import acomp
from acomp import CRYPTO_ALG_REQ_SEG, CRYPTO_TFM_REQ_MAY_BACKLOG, PAGE_SIZE
from acomp.eras import PROPOSED

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not acomp.crypto_has_acomp("lz4-opencl"), reason="no OpenCL device"),
]

from acomp_drivers.lz4_opencl import Lz4OpenCL, set_fallback  # noqa: E402

N = 6
PAGES = np.zeros((N, PAGE_SIZE), np.uint8)
for _i in range(N):
    PAGES[_i] = np.frombuffer((f"opencl segment {_i} ".encode() * 300)[:PAGE_SIZE], np.uint8)
PAGES[1] = np.random.default_rng(3).integers(0, 256, PAGE_SIZE, dtype=np.uint8)


@pytest.fixture
def tfm() -> Iterator[acomp.CryptoAcomp]:
    with acomp.using_kernel(PROPOSED):
        t = acomp.crypto_alloc_acomp("lz4-opencl")
    yield t
    acomp.crypto_free_acomp(t)


@pytest.fixture
def submits(alg: Lz4OpenCL, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The rows of every device submission."""
    seen: list[int] = []
    real = alg.dev.submit

    def spy(op: str, src: Any, *a: Any, **kw: Any) -> Any:
        seen.append(int(src.shape[0]))
        return real(op, src, *a, **kw)

    monkeypatch.setattr(alg.dev, "submit", spy)
    return seen


async def _segmented(tfm: acomp.CryptoAcomp, unit: int = PAGE_SIZE
                     ) -> tuple[int, list[int], np.ndarray[Any, np.dtype[np.uint8]]]:
    req = acomp.acomp_request_alloc(tfm)
    assert req is not None
    wait = acomp.CryptoWait()
    acomp.acomp_request_set_callback(req, CRYPTO_TFM_REQ_MAY_BACKLOG, acomp.crypto_req_done, wait)
    outs = np.zeros((N, 2 * PAGE_SIZE), np.uint8)
    dst = acomp.sg_init_table(N)
    for i in range(N):
        acomp.sg_set_buf(dst, i, outs[i], min(max(unit, PAGE_SIZE), 2 * PAGE_SIZE))
    acomp.acomp_request_set_src_sg(req, acomp.sg_init_one(PAGES.reshape(-1)), N * PAGE_SIZE)
    acomp.acomp_request_set_dst_sg(req, dst, N * PAGE_SIZE)
    acomp.acomp_request_set_unit_size(req, unit)
    ret = await acomp.crypto_wait_req(acomp.crypto_acomp_compress(req), wait)
    n = -(-N * PAGE_SIZE // unit)
    lens = [acomp.sg_length(dst, i) for i in range(n)]
    assert req.dlen == lens[0]
    acomp.acomp_request_free(req)
    return ret, lens, outs


def _check(lens: list[int], outs: np.ndarray[Any, np.dtype[np.uint8]], bad: int) -> None:
    assert lens[1] == bad
    for i in (0, 2, 3, 4, 5):
        assert lz4.block.decompress(outs[i, : lens[i]].tobytes(),
                                    uncompressed_size=PAGE_SIZE) == PAGES[i].tobytes()


async def test_a_segmented_request_is_one_device_job(anyio_backend: str, tfm: acomp.CryptoAcomp,
                                                     submits: list[int]) -> None:
    """Fallback off: the 6 segments are the rows of one submission; each entry gets its block
    and its length, the incompressible page the device's -ENOSPC, the request -EINVAL."""
    assert tfm.alg.cra_flags & CRYPTO_ALG_REQ_SEG
    set_fallback(tfm, False)
    ret, lens, outs = await _segmented(tfm)
    assert submits == [N]
    assert ret == -errno.EINVAL
    _check(lens, outs, -errno.ENOSPC)


async def test_a_small_segmented_request_runs_on_the_fallback(anyio_backend: str,
                                                              tfm: acomp.CryptoAcomp,
                                                              submits: list[int]) -> None:
    """Fallback on: fewer segments than the break-even batch go to lz4-scomp, which segments
    on the CPU batch path (lz4's -EINVAL for the page that does not fit); the device is not
    used. Segments wider than a device block go there whatever the switch says."""
    set_fallback(tfm, True)
    ret, lens, outs = await _segmented(tfm)
    assert (submits, ret) == ([], -errno.EINVAL)
    _check(lens, outs, -errno.EINVAL)
    set_fallback(tfm, False)
    ret, lens, _ = await _segmented(tfm, unit=2 * PAGE_SIZE)
    assert submits == []
    assert ret == 0
    assert all(n > 0 for n in lens)
