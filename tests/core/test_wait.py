"""crypto_wait_req: completions from any thread, from the loop, early, late, never."""

from __future__ import annotations

import errno
import threading
import time

import anyio
import pytest
from algs import ThreadAcomp, registered

import acomp
from acomp import sched
from acomp.scatterlist import sg_init_one

pytestmark = pytest.mark.anyio


async def test_sync_status_passes_through_without_waiting() -> None:
    w = acomp.CryptoWait()
    for err in (0, -errno.EINVAL, -errno.ENOSPC):
        assert await acomp.crypto_wait_req(err, w) == err
    assert w.done == 0


async def test_completion_from_another_thread_wakes_the_waiter() -> None:
    w = acomp.CryptoWait()

    def later() -> None:
        time.sleep(0.05)
        acomp.crypto_req_done(w, -errno.EINPROGRESS)  # the backlog notice is ignored
        time.sleep(0.05)
        acomp.crypto_req_done(w, 0)

    t = threading.Thread(target=later)
    t.start()
    with anyio.fail_after(5):
        assert await acomp.crypto_wait_req(-errno.EINPROGRESS, w) == 0
    t.join()


async def test_completion_before_the_wait_is_not_lost() -> None:
    w = acomp.CryptoWait()
    acomp.crypto_req_done(w, -errno.EBADMSG)
    with anyio.fail_after(1):
        assert await acomp.crypto_wait_req(-errno.EBUSY, w) == -errno.EBADMSG


async def test_completion_from_the_event_loop_itself() -> None:
    w = acomp.CryptoWait()

    async def completer() -> None:
        await anyio.sleep(0.01)
        acomp.crypto_req_done(w, 0)

    async with anyio.create_task_group() as tg:
        tg.start_soon(completer)
        with anyio.fail_after(5):
            assert await acomp.crypto_wait_req(-errno.EINPROGRESS, w) == 0


async def test_missing_completion_times_out() -> None:
    w = acomp.CryptoWait()
    assert await acomp.crypto_wait_req(-errno.EINPROGRESS, w, timeout=0.05) == -errno.ETIMEDOUT


async def test_cancellation_waits_for_the_completion_first() -> None:
    w = acomp.CryptoWait()
    finished = []

    def complete_later() -> None:
        time.sleep(0.2)
        finished.append(True)
        w.complete(0)

    threading.Thread(target=complete_later).start()
    with anyio.move_on_after(0.01) as scope:
        await acomp.crypto_wait_req(-errno.EINPROGRESS, w)
    # Cancelled, but only once the device was done with the request.
    assert scope.cancelled_caught
    assert finished == [True]


async def test_waiting_calls_might_sleep() -> None:
    w = acomp.CryptoWait()
    w.complete(0)
    sched.preempt_disable()
    try:
        with pytest.raises(sched.SleepInAtomicError):
            await acomp.crypto_wait_req(-errno.EINPROGRESS, w)
    finally:
        sched.preempt_enable()


async def test_duplicate_completion_is_counted_like_the_kernels() -> None:
    w = acomp.CryptoWait()
    w.complete(0)
    w.complete(-errno.EIO)
    assert w.done == 2
    assert await acomp.crypto_wait_req(-errno.EINPROGRESS, w) == -errno.EIO
    assert w.done == 0  # reinit_completion() absorbed the duplicate that came before
    w.complete(0)  # ... but one after the wait stays: the next wait returns at once with it
    with anyio.fail_after(1):
        assert await acomp.crypto_wait_req(-errno.EINPROGRESS, w) == 0


async def test_async_driver_round_trip_with_completion_thread() -> None:
    alg = ThreadAcomp("tasync", "tasync-drv")
    with registered(alg):
        tfm = acomp.crypto_alloc_acomp("tasync")
        assert acomp.acomp_is_async(tfm)
        req = acomp.acomp_request_alloc(tfm)
        assert req is not None
        w = acomp.CryptoWait()
        data = b"completion from another thread " * 20
        out = bytearray(4096)
        acomp.acomp_request_set_params(req, sg_init_one(data), sg_init_one(out), len(data), 4096)
        acomp.acomp_request_set_callback(req, acomp.CRYPTO_TFM_REQ_MAY_BACKLOG,
                                         acomp.crypto_req_done, w)
        ret = acomp.crypto_acomp_compress(req)
        assert ret == -errno.EINPROGRESS
        with anyio.fail_after(5):
            assert await acomp.crypto_wait_req(ret, w) == 0
        import zlib

        assert zlib.decompress(bytes(out[: req.dlen])) == data
        assert not req.in_flight
        acomp.acomp_request_free(req)
        acomp.crypto_free_acomp(tfm)


async def test_freeing_an_in_flight_request_is_reported() -> None:
    alg = ThreadAcomp("tinflight", "tinflight-drv")
    alg.gate = threading.Event()
    with registered(alg):
        alg.gate = threading.Event()
        tfm = acomp.crypto_alloc_acomp("tinflight")
        req = acomp.acomp_request_alloc(tfm)
        assert req is not None
        w = acomp.CryptoWait()
        out = bytearray(256)
        acomp.acomp_request_set_params(req, sg_init_one(b"x" * 100), sg_init_one(out), 100, 256)
        acomp.acomp_request_set_callback(req, 0, acomp.crypto_req_done, w)
        ret = acomp.crypto_acomp_compress(req)
        with pytest.raises(sched.LockDebugError, match="freed while in flight"):
            acomp.acomp_request_free(req)
        alg.gate.set()
        assert await acomp.crypto_wait_req(ret, w) == 0
        acomp.acomp_request_free(req)
        acomp.crypto_free_acomp(tfm)


def test_sync_wait_for_kthreads() -> None:
    w = acomp.CryptoWait()
    threading.Timer(0.02, w.complete, args=(0,)).start()
    assert acomp.crypto_wait_req_sync(-errno.EINPROGRESS, w, timeout=5) == 0
    assert acomp.crypto_wait_req_sync(-errno.EINPROGRESS, w, timeout=0.01) == -errno.ETIMEDOUT
