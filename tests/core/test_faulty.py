"""The faulty(...) template and how consumers survive what it injects."""

from __future__ import annotations

import errno
import threading
from collections.abc import Iterator

import anyio
import anyio.to_thread
import pytest

import acomp
from acomp import faulty

pytestmark = pytest.mark.anyio

DATA = b"fault injection needs real data to break " * 40


@pytest.fixture(autouse=True)
def _reset_plan() -> Iterator[None]:
    """Each test starts from the empty plan and leaves it so (a plan left set would reach
    the next module's faulty(zstd))."""
    faulty.set_plan("faulty(zstd)", faulty.FaultPlan())
    faulty.stats("faulty(zstd)").injected.clear()
    yield
    faulty.set_plan("faulty(zstd)", faulty.FaultPlan())


async def test_template_instantiates_around_the_inner_driver() -> None:
    tfm = acomp.crypto_alloc_acomp("faulty(zstd)")
    try:
        assert acomp.crypto_acomp_driver_name(tfm) == "faulty(zstd-scomp)"
        assert acomp.acomp_is_async(tfm)
        assert "faulty(zstd-scomp)" in acomp.proc_crypto()
    finally:
        acomp.crypto_free_acomp(tfm)
    async with acomp.open("faulty(zstd)") as c:
        blob = await c.compress(DATA)
        assert await c.decompress(blob, len(DATA)) == DATA


async def test_errors_reach_the_python_layer_typed() -> None:
    faulty.set_plan("faulty(zstd)", error=1.0, errors=(-errno.EIO,), seed=1)
    async with acomp.open("faulty(zstd)") as c:
        with pytest.raises(acomp.DeviceError) as ei:
            await c.compress(DATA)
        assert ei.value.errno == -errno.EIO
    assert faulty.stats("faulty(zstd)").injected.get("error", 0) >= 1


async def test_missing_completion_is_a_timeout_not_a_hang() -> None:
    faulty.set_plan("faulty(zstd)", missing=1.0)
    async with acomp.open("faulty(zstd)", timeout=0.1) as c:
        with anyio.fail_after(5), pytest.raises(acomp.DeviceError, match="no completion"):
            await c.compress(DATA)


async def test_corruption_is_detected_on_round_trip() -> None:
    faulty.set_plan("faulty(zstd)", corrupt=1.0, seed=3)
    async with acomp.open("faulty(zstd)") as c:
        blob = await c.compress(DATA)
    faulty.set_plan("faulty(zstd)", corrupt=0.0)
    async with acomp.open("zstd-scomp") as c:
        try:
            out = await c.decompress(blob, len(DATA))
        except acomp.BadData:
            return
        assert out != DATA  # never silently the right answer from a corrupted block


async def test_backlogged_busy_storm_completes_everything() -> None:
    faulty.set_plan("faulty(zstd)", busy=0.7, delay=0.5, seed=5)
    pages = [DATA[i:] + bytes(i) for i in range(30)]
    async with acomp.open("faulty(zstd)") as c:
        with anyio.fail_after(20):
            blobs = await c.compress_many(pages, limit=8)
    async with acomp.open("zstd-scomp") as c:
        assert await c.decompress_many(blobs, len(DATA) + 40) == pages
    st = faulty.stats("faulty(zstd)")
    assert st.injected.get("busy_backlogged", 0) > 0


async def test_duplicate_completion_leaves_a_stale_wake_up() -> None:
    # The second completion is held until the wait has consumed the first (a timer could
    # fire first on a loaded machine, and the wait's reinit would absorb it).
    later = threading.Event()
    faulty.set_plan("faulty(zstd)", duplicate=1.0, hold=later)
    tfm = acomp.crypto_alloc_acomp("faulty(zstd)")
    req = acomp.acomp_request_alloc(tfm)
    assert req is not None
    w = acomp.CryptoWait()
    out = bytearray(4096)
    acomp.acomp_request_set_params(req, acomp.sg_init_one(DATA), acomp.sg_init_one(out),
                                   len(DATA), 4096)
    acomp.acomp_request_set_callback(req, 0, acomp.crypto_req_done, w)
    with anyio.fail_after(5):
        assert await acomp.crypto_wait_req(acomp.crypto_acomp_compress(req), w) == 0
        assert w.done == 0
        # The second completion comes later, after the wait consumed the first.
        later.set()
    assert await anyio.to_thread.run_sync(faulty.stats("faulty(zstd)").wait_for, "released", 1, 30)
    assert w.done == 1  # the kernel's hazard: the next wait would return at once
    acomp.acomp_request_free(req)
    acomp.crypto_free_acomp(tfm)


async def test_busy_without_backlog_is_a_refusal_not_in_flight() -> None:
    faulty.set_plan("faulty(zstd)", busy=1.0)
    tfm = acomp.crypto_alloc_acomp("faulty(zstd)")
    req = acomp.acomp_request_alloc(tfm)
    assert req is not None
    out = bytearray(4096)
    acomp.acomp_request_set_params(req, acomp.sg_init_one(DATA), acomp.sg_init_one(out),
                                   len(DATA), 4096)
    acomp.acomp_request_set_callback(req, 0, acomp.crypto_req_done, acomp.CryptoWait())
    assert acomp.crypto_acomp_compress(req) == -errno.EBUSY
    assert not req.in_flight  # refused: the caller owns it again
    acomp.acomp_request_free(req)
    acomp.crypto_free_acomp(tfm)
    assert faulty.stats("faulty(zstd)").injected["busy_rejected"] >= 1


@pytest.mark.parametrize("version", [e.kernel for e in acomp.eras.ERAS])
async def test_the_template_works_in_every_era(version: str) -> None:
    """v6.15+ crypto_acomp_init_tfm (crypto/acompress.c): an async transform's fallback is
    crypto_alloc_acomp(cra_name, 0, CRYPTO_ALG_ASYNC), a synchronous faulty(zstd), which the
    template builds with the instance; before v6.15 there is none and none is needed. The
    instance wraps that kernel's zstd (zstd-scomp to 6.16, zstd-generic from 6.17)."""
    with acomp.using_kernel(version):
        zstd = acomp.crypto_alloc_acomp("zstd")
        inner = acomp.crypto_acomp_driver_name(zstd)
        acomp.crypto_free_acomp(zstd)
        tfm = acomp.crypto_alloc_acomp("faulty(zstd)")
        try:
            assert acomp.crypto_acomp_driver_name(tfm) == f"faulty({inner})"
            assert acomp.acomp_is_async(tfm)
            if tfm.kernel >= (6, 15):
                assert tfm.fb is not None
                assert acomp.crypto_acomp_driver_name(tfm.fb) == f"faulty-sync({inner})"
                assert not acomp.acomp_is_async(tfm.fb)
            else:
                assert tfm.fb is None
        finally:
            acomp.crypto_free_acomp(tfm)
        async with acomp.open("faulty(zstd)") as c:
            assert c.is_async
            blob = await c.compress(DATA)
            assert await c.decompress(blob, len(DATA)) == DATA


@pytest.mark.parametrize("version", ["6.15", "6.16", "7.0"])
def test_a_nondma_request_runs_synchronously_with_the_plans_errors(version: str) -> None:
    """acomp_do_nondma (v6.15+): a NONDMA buffer on an async transform runs on the fallback,
    synchronously; the synchronous instance injects the plan's errors there too."""
    with acomp.using_kernel(version):
        tfm = acomp.crypto_alloc_acomp("faulty(zstd)")
        out = bytearray(2 * len(DATA))
        try:
            req = acomp.acomp_request_alloc(tfm)
            assert req is not None
            acomp.acomp_request_set_callback(req, 0, None, None)
            acomp.acomp_request_set_src_nondma(req, DATA, len(DATA))
            acomp.acomp_request_set_dst_nondma(req, out, len(out))
            assert acomp.crypto_acomp_compress(req) == 0  # done: no completion to wait for
            assert acomp.compress(DATA, "zstd") == bytes(out[:req.dlen])
            faulty.set_plan("faulty(zstd)", error=1.0, errors=(-errno.EIO,), seed=2)
            acomp.acomp_request_set_src_nondma(req, DATA, len(DATA))
            acomp.acomp_request_set_dst_nondma(req, out, len(out))
            assert acomp.crypto_acomp_compress(req) == -errno.EIO
            assert faulty.stats("faulty(zstd)").injected.get("error", 0) == 1
            acomp.acomp_request_free(req)
        finally:
            acomp.crypto_free_acomp(tfm)
