"""Cancellation: a task cancelled while its request is on a device.

Kernel counterpart: ``crypto_wait_req`` sleeps uninterruptibly (``wait_for_completion``), so a
request is never abandoned while a device may still write into it. Here a cancelled task's
wait holds the cancellation back until the request completed: the request is never freed in
flight (the framework reports that as the kernel's use-after-free: checked not to happen),
locks are released (zswap's per-CPU mutex), and the next request on that CPU works.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import lz4.block
import pytest
from anyio.abc import TaskStatus

import acomp
from acomp import corpus, faulty, sched
from acomp.testing import FakeAsyncDriver, Step
from zswap import PhysMem, Zswap

pytestmark = pytest.mark.anyio

PAGE = acomp.PAGE_SIZE
PLAN = "faulty(lz4)"
PAGES = [p.tobytes() for p in corpus.pages(16, seed=13)]
ZPAGES = [p for p in PAGES
          if p[:8] * 512 != p and len(lz4.block.compress(p, store_size=False)) < 3072]


@pytest.fixture(autouse=True)
def _reports_collected() -> Iterator[None]:
    """Bug reports are collected, not raised (a completion thread may be the one to see one),
    and none may appear."""
    sched.config.lock_debug = "warn"
    faulty.set_plan(PLAN, faulty.FaultPlan())
    yield
    faulty.set_plan(PLAN, faulty.FaultPlan())
    assert not sched.reports, [r.title for r in sched.reports]


@pytest.fixture
def held_fake() -> Iterator[FakeAsyncDriver]:
    """An asynchronous driver that keeps every request until `release`."""
    fake = FakeAsyncDriver(driver="fake-held", default=Step(latency=None))
    fake.register()
    yield fake
    fake.unregister()


def _lz(data: bytes) -> bytes:
    return bytes(lz4.block.decompress(data, uncompressed_size=PAGE))


def test_freeing_a_request_in_flight_is_reported(held_fake: FakeAsyncDriver) -> None:
    """The control: the report the other tests check for does appear when it should."""
    tfm = acomp.crypto_alloc_acomp("fake-held")
    req = acomp.acomp_request_alloc(tfm)
    assert req is not None
    acomp.acomp_request_set_params(req, acomp.sg_init_one(PAGES[0]),
                                   acomp.sg_init_one(bytearray(PAGE + 64)), PAGE, PAGE + 64)
    acomp.acomp_request_set_callback(req, 0, acomp.crypto_req_done, acomp.CryptoWait())
    assert acomp.crypto_acomp_compress(req) == -errno.EINPROGRESS
    acomp.acomp_request_free(req)
    assert [r.title for r in sched.reports] == [
        f"BUG: acomp request freed while in flight: {req!r}"]
    sched.reports.clear()
    held_fake.release()
    assert held_fake.wait_idle()
    acomp.acomp_request_free(req)
    acomp.crypto_free_acomp(tfm)


async def _cancel_during_wait(tfm: acomp.CryptoAcomp, release: Callable[[], None] | None,
                              cpu: int) -> None:
    """Submit on `cpu`, cancel the task while it waits, then check what it left behind."""
    out = bytearray(PAGE + 64)
    state: dict[str, object] = {}

    async def victim(*, task_status: TaskStatus[anyio.CancelScope]) -> None:
        with sched.on_cpu(cpu), anyio.CancelScope() as scope:
            wait = acomp.CryptoWait()
            req = acomp.acomp_request_alloc(tfm)
            assert req is not None
            acomp.acomp_request_set_params(req, acomp.sg_init_one(PAGES[1]),
                                           acomp.sg_init_one(out), PAGE, PAGE + 64)
            acomp.acomp_request_set_callback(req, acomp.CRYPTO_TFM_REQ_MAY_BACKLOG,
                                             acomp.crypto_req_done, wait)
            ret = acomp.crypto_acomp_compress(req)
            task_status.started(scope)
            try:
                state["ret"] = await acomp.crypto_wait_req(ret, wait)
                state["finished"] = True  # not reached: the cancellation comes first
            finally:
                state["in_flight_at_exit"] = req.in_flight
                state["dlen"] = req.dlen
                acomp.acomp_request_free(req)  # the consumer's cleanup on the way out
        state["cancelled"] = scope.cancelled_caught

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            scope = await tg.start(victim)
            scope.cancel()
            if release is not None:
                await anyio.sleep(0.05)
                assert "in_flight_at_exit" not in state  # still waiting, cancel or not
                release()
    assert state["in_flight_at_exit"] is False
    assert state["cancelled"] is True
    assert "finished" not in state
    assert _lz(bytes(out[: state["dlen"]])) == PAGES[1]  # the device finished its work
    # the next request on that CPU works
    with sched.on_cpu(cpu):
        async with acomp.open(acomp.crypto_acomp_driver_name(tfm), timeout=10) as c:
            assert await c.decompress(await c.compress(PAGES[2]), PAGE) == PAGES[2]


async def test_cancel_while_a_fake_device_holds_the_request(held_fake: FakeAsyncDriver) -> None:
    tfm = acomp.crypto_alloc_acomp("fake-held")
    try:
        held_fake.default = Step(latency=None)
        def release() -> None:
            held_fake.default = Step()
            held_fake.release()

        await _cancel_during_wait(tfm, release, cpu=1)
    finally:
        held_fake.default = Step()
        held_fake.release()
        acomp.crypto_free_acomp(tfm)


async def test_cancel_while_faulty_delays_the_completion() -> None:
    faulty.set_plan(PLAN, delay=1.0, delay_s=(0.1, 0.1))
    tfm = acomp.crypto_alloc_acomp("faulty(lz4-scomp)")
    try:
        await _cancel_during_wait(tfm, None, cpu=0)
    finally:
        faulty.set_plan(PLAN, faulty.FaultPlan())
        acomp.crypto_free_acomp(tfm)


@pytest.mark.gpu
@pytest.mark.skipif(not acomp.crypto_has_acomp("lz4-opencl"), reason="no OpenCL device")
async def test_cancel_while_the_opencl_device_computes(monkeypatch: pytest.MonkeyPatch) -> None:
    from acomp_drivers.lz4_opencl import loaded_alg

    # a lone request would complete synchronously in the submitter's thread: make it wait
    monkeypatch.setattr(loaded_alg(), "inline", False)
    tfm = acomp.crypto_alloc_acomp("lz4-opencl")
    try:
        for cpu in (0, 1):
            await _cancel_during_wait(tfm, None, cpu=cpu)
    finally:
        acomp.crypto_free_acomp(tfm)


async def test_cancel_in_the_python_layer(held_fake: FakeAsyncDriver) -> None:
    """`Compressor.compress` cancelled mid-flight: the cancellation is raised once the device
    is done; the compressor keeps working and frees nothing it should not."""
    async with acomp.open("fake-held", timeout=10) as c:
        scope = anyio.CancelScope()

        async def victim() -> None:
            with scope:
                await c.compress(PAGES[3])

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(victim)
                await anyio.sleep(0.02)
                scope.cancel()
                await anyio.sleep(0.02)
                assert c.statistics().requests_in_flight == 1  # still waiting for the device
                held_fake.default = Step()
                held_fake.release()
        assert scope.cancelled_caught
        assert c.statistics().requests_in_flight == 0
        assert _lz(await c.compress(PAGES[4])) == PAGES[4]


# ---------------------------------------------------------------------------------------------
# zswap: a store or load cancelled mid-compression releases the per-CPU mutex
# ---------------------------------------------------------------------------------------------


async def _start_and_cancel(fn: Callable[[], object], release: Callable[[], None]) -> dict[
        str, object]:
    state: dict[str, object] = {}

    async def victim(*, task_status: TaskStatus[anyio.CancelScope]) -> None:
        with sched.on_cpu(1), anyio.CancelScope() as scope:
            task_status.started(scope)
            state["ret"] = await fn()  # type: ignore[misc]
        state["cancelled"] = scope.cancelled_caught

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            scope = await tg.start(victim)
            await anyio.sleep(0.02)  # the victim is waiting for the device, mutex held
            scope.cancel()
            await anyio.sleep(0.02)
            release()
    return state


@contextmanager
def _zswap_on(fake: FakeAsyncDriver, **kw: Any) -> Iterator[Zswap]:
    """A zswap on zbud compressing with `fake`, area 0 initialised; afterwards the fake lets
    every request go, and the area and zswap are freed: no page may be left in use."""
    mem = PhysMem(1024, name="cancel")
    zs = Zswap(mem=mem, compressor=fake.cra_driver_name, zpool="zbud", **kw)
    zs.init(0)
    try:
        yield zs
    finally:
        fake.default = Step()
        fake.release()
        zs.invalidate_area(0)
        zs.close()
    assert mem.nr_used_pages == 0


@pytest.mark.parametrize("version", ["5.11", "6.14"])  # 6.14: the last kernel with zbud
async def test_cancelled_zswap_store_and_load_release_the_mutex(
        held_fake: FakeAsyncDriver, version: str) -> None:
    with _zswap_on(held_fake, version=version) as zs:
        ctx = zs.pools[0].acomp_ctx.per_cpu(1)
        # a store cancelled while its page is being compressed
        state = await _start_and_cancel(lambda: zs.store(0, 1, ZPAGES[0]), held_fake.release)
        assert state == {"cancelled": True}
        assert not ctx.mutex.is_locked()
        assert zs.entry(0, 1) is None  # not stored: the swap layer writes it to the device
        assert zs.reject_compress_fail == zs.reject_compress_poor == 0
        assert zs.mem.nr_used_pages == 0
        held_fake.default = Step()
        with sched.on_cpu(1):
            assert await zs.store(0, 1, ZPAGES[0]) == 0  # the next store on that CPU works
        # a load cancelled while its page is being decompressed
        held_fake.default = Step(latency=None)
        out = bytearray(PAGE)
        state = await _start_and_cancel(lambda: zs.load(0, 1, out), held_fake.release)
        assert state == {"cancelled": True}
        assert not ctx.mutex.is_locked()
        entry = zs.entry(0, 1)
        assert entry is not None  # the entry stays, with only the tree's reference
        assert entry.refcount == 1
        held_fake.default = Step()
        with sched.on_cpu(1):
            assert await zs.load(0, 1, out) == 0
        assert out == ZPAGES[0]


async def test_cancelled_while_waiting_for_the_mutex(held_fake: FakeAsyncDriver) -> None:
    """A second store on the same CPU waits for the mutex the first holds while its page is
    on the device; cancelling the waiter leaves the mutex to its owner, then free."""
    results: dict[str, object] = {}
    with _zswap_on(held_fake) as zs:
        ctx = zs.pools[0].acomp_ctx.per_cpu(1)
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:

                async def store(name: str, off: int, *,
                                task_status: TaskStatus[anyio.CancelScope]) -> None:
                    with sched.on_cpu(1), anyio.CancelScope() as scope:
                        task_status.started(scope)
                        results[name] = await zs.store(0, off, ZPAGES[off])
                    results[name + "_cancelled"] = scope.cancelled_caught

                await tg.start(store, "owner", 1)
                await anyio.sleep(0.02)
                assert ctx.mutex.is_locked()
                waiter = await tg.start(store, "waiter", 2)
                await anyio.sleep(0.02)
                waiter.cancel()
                await anyio.sleep(0.02)
                assert results == {"waiter_cancelled": True}
                assert ctx.mutex.is_locked()  # still the owner's
                held_fake.default = Step()
                held_fake.release()
        assert results["owner"] == 0
        assert not ctx.mutex.is_locked()
        with sched.on_cpu(1):
            assert await zs.store(0, 2, ZPAGES[2]) == 0
        for off in (1, 2):
            out = bytearray(PAGE)
            assert await zs.load(0, off, out) == 0
            assert out == ZPAGES[off]
