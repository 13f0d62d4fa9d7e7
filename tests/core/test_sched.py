"""The execution model: atomic context, the splat, lock debugging, per-CPU data."""

from __future__ import annotations

import logging
import threading

import anyio
import pytest

from acomp import sched

pytestmark = pytest.mark.anyio


def map_something(lock: sched.SpinLock) -> None:
    lock.lock()


async def test_mutex_under_spinlock_splats_like_the_kernel() -> None:
    lock = sched.SpinLock("zspage->lock")
    m = sched.Mutex("acomp_ctx->mutex")
    map_something(lock)
    with pytest.raises(sched.SleepInAtomicError) as ei:
        await m.lock()
    text = ei.value.report.text
    lines = text.splitlines()
    assert lines[0].startswith(
        "BUG: sleeping function called from invalid context at acomp/sched.py:"
    )
    assert lines[1].startswith("in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: ")
    assert "preempt_count: 1, expected: 0" in text
    assert "1 lock held by" in text
    assert "(zspage->lock)" in text
    i = lines.index("Preemption disabled at:")
    assert "map_something" in lines[i + 1]
    assert "test_sched.py" in lines[i + 1]
    assert sched.reports
    assert sched.reports[-1].kind == "sleep_in_atomic"
    lock.unlock()
    assert not sched.in_atomic()
    await m.lock()  # fine now
    m.unlock()


async def test_warn_mode_logs_and_carries_on(caplog: pytest.LogCaptureFixture) -> None:
    sched.config.atomic_sleep = "warn"
    sched.preempt_disable()
    with caplog.at_level(logging.ERROR, logger="acomp.sched"):
        sched.might_sleep()
    sched.preempt_enable()
    assert "BUG: sleeping function called from invalid context" in caplog.text
    assert len(sched.reports) == 1


async def test_off_mode_ignores() -> None:
    sched.config.atomic_sleep = "off"
    sched.preempt_disable()
    sched.might_sleep()
    sched.preempt_enable()
    assert sched.reports == []


async def test_atomic_state_is_per_task() -> None:
    seen = []

    async def other() -> None:
        seen.append(sched.in_atomic())

    async with anyio.create_task_group() as tg:
        sched.preempt_disable()
        try:
            assert sched.in_atomic()
            tg.start_soon(other)
        finally:
            sched.preempt_enable()
    # The child started from a snapshot taken while atomic; its own state is its own.
    assert seen in ([True], [False])
    assert not sched.in_atomic()


def test_unlock_from_another_context_is_wrong_owner() -> None:
    lock = sched.SpinLock("mapping")
    lock.lock()
    errors: list[BaseException] = []

    def completion() -> None:  # "unmap on completion of a DMA-like transfer"
        try:
            lock.unlock()
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=completion, name="dma-complete")
    t.start()
    t.join()
    assert len(errors) == 1
    assert isinstance(errors[0], sched.LockDebugError)
    assert "BUG: spinlock wrong owner on CPU#0" in str(errors[0])
    assert "MainThread" in str(errors[0])
    sched.reset()


def test_double_unlock_is_reported() -> None:
    lock = sched.SpinLock("x")
    lock.lock()
    lock.unlock()
    with pytest.raises(sched.LockDebugError, match="already unlocked"):
        lock.unlock()


def test_per_cpu_variables_follow_the_cpu() -> None:
    sched.set_nr_cpu_ids(4)
    try:
        pc: sched.PerCpu[list[int]] = sched.PerCpu(lambda cpu: [cpu])
        with sched.on_cpu(2):
            assert sched.smp_processor_id() == 2
            assert pc.this_cpu() == [2]
            assert sched.get_cpu() == 2
            assert sched.in_atomic()
            sched.put_cpu()
        assert pc.this_cpu() == [0]
        with pytest.raises(ValueError, match="out of range"), sched.on_cpu(7):
            pass
    finally:
        import os

        sched.set_nr_cpu_ids(os.cpu_count() or 1)


def test_bit_spin_lock_disables_preemption() -> None:
    word = object()
    sched.bit_spin_lock(0, word)
    assert sched.bit_spin_is_locked(0, word)
    assert sched.in_atomic()
    sched.bit_spin_unlock(0, word)
    assert not sched.in_atomic()


def test_local_lock_is_no_mutual_exclusion() -> None:
    ll = sched.LocalLock("mapping_area->lock")
    sched.local_lock(ll)
    sched.local_lock(ll)  # a second holder on the CPU is not blocked: only preemption is off
    assert sched.preempt_count() == 2
    sched.local_unlock(ll)
    sched.local_unlock(ll)
    assert sched.preempt_count() == 0


async def test_new_task_gives_a_spawned_task_its_own_identity() -> None:
    lock = sched.SpinLock("shared")
    parent = sched.current_task_name()
    errors: list[BaseException] = []

    async def child() -> None:
        assert sched.current_task_name() == parent  # inherited
        sched.new_task("child")
        assert sched.current_task_name() != parent
        try:
            lock.unlock()  # the parent's lock: now a wrong owner
        except sched.LockDebugError as e:
            errors.append(e)

    lock.lock()
    async with anyio.create_task_group() as tg:
        tg.start_soon(child)
    assert len(errors) == 1
    assert "wrong owner" in str(errors[0])
    sched.reset()


async def test_mutex_contention_is_fifo_and_excludes() -> None:
    m = sched.Mutex("m")
    order: list[int] = []
    inside = [0]

    async def worker(i: int) -> None:
        sched.new_task(f"w{i}")
        await m.lock()
        inside[0] += 1
        assert inside[0] == 1  # mutual exclusion across the sleep below
        order.append(i)
        await anyio.sleep(0.001)
        inside[0] -= 1
        m.unlock()

    await m.lock()
    async with anyio.create_task_group() as tg:
        for i in range(5):
            tg.start_soon(worker, i)
            await anyio.sleep(0.001)  # queue them in order
        m.unlock()
    assert order == [0, 1, 2, 3, 4]
    assert not m.is_locked()


async def test_mutex_sleeper_cancelled_before_or_after_hand_over_never_leaks_it() -> None:
    m = sched.Mutex("m")
    await m.lock()
    got: list[str] = []

    async def sleeper(name: str) -> None:
        sched.new_task(name)
        await m.lock()
        got.append(name)
        m.unlock()

    async with anyio.create_task_group() as tg:
        early = anyio.CancelScope()

        async def cancelled_while_waiting() -> None:
            sched.new_task("early")
            with early:
                await m.lock()
                got.append("early")  # never: it is cancelled before the hand-over
                m.unlock()

        tg.start_soon(cancelled_while_waiting)
        await anyio.sleep(0.01)
        tg.start_soon(sleeper, "late")
        await anyio.sleep(0.01)
        early.cancel()
        await anyio.sleep(0.01)
        m.unlock()  # "early" left the queue: "late" gets it
    assert got == ["late"]
    assert not m.is_locked()
    # And a sleeper cancelled right after the hand-over passes the lock on.
    await m.lock()
    async with anyio.create_task_group() as tg:
        scope = anyio.CancelScope()

        async def doomed() -> None:
            sched.new_task("doomed")
            with scope:
                await m.lock()
                m.unlock()

        tg.start_soon(doomed)
        tg.start_soon(sleeper, "next")
        await anyio.sleep(0.01)
        m.unlock()  # handed to "doomed" ...
        scope.cancel()  # ... which is cancelled before it runs
    assert got[-1] == "next"
    assert not m.is_locked()


async def test_mutex_unlock_by_another_task_is_reported() -> None:
    m = sched.Mutex("m")
    await m.lock()

    async def other() -> None:
        sched.new_task("other")
        with pytest.raises(sched.LockDebugError, match="__owner_task"):
            m.unlock()
        sched.config.lock_debug = "warn"  # reported, and the kernel carries on
        m.unlock()

    async with anyio.create_task_group() as tg:
        tg.start_soon(other)
    assert not m.is_locked()
    assert [r.kind for r in sched.reports] == ["lock", "lock"]
    sched.reset()


# --------------------------------------------------------------------------------------------
# The debug-checks switch (CONFIG_DEBUG_ATOMIC_SLEEP / CONFIG_PROVE_LOCKING)


def test_debug_checks_are_on_in_the_suite_and_switch() -> None:
    assert sched.debug_checks()
    assert sched.set_debug_checks(False) is True
    assert not sched.debug_checks()
    assert sched.set_debug_checks(True) is False


async def test_checks_off_report_nothing_but_locks_still_exclude() -> None:
    sched.set_debug_checks(False)
    lock = sched.SpinLock("zspage->lock")
    m = sched.Mutex("acomp_ctx->mutex")
    lock.lock()
    assert not sched.in_atomic()  # no preemption count is kept
    assert sched.preempt_count() == 0
    await m.lock()  # a sleep under a spin lock: not reported
    m.unlock()
    sched.preempt_disable()
    sched.might_sleep()
    sched.preempt_enable()
    # The spin lock is still a lock: another thread spins until it is released.
    got: list[float] = []

    def other() -> None:
        with lock:
            got.append(1.0)

    t = threading.Thread(target=other)
    t.start()
    t.join(0.05)
    assert got == []
    lock.unlock()
    t.join()
    assert got == [1.0]
    lock.unlock()  # an unlock of an unlocked lock: not reported either
    m.unlock()
    assert sched.reports == []


def test_checks_off_still_report_a_lock_that_would_hang() -> None:
    sched.set_debug_checks(False)
    lock = sched.SpinLock("x")
    lock.lock()
    with pytest.raises(sched.LockDebugError, match="recursion"):
        lock.lock()  # the alternative is a hang
    lock.unlock()


def test_checks_off_in_a_fresh_interpreter_by_environment() -> None:
    import os
    import subprocess
    import sys

    code = ("from acomp import sched; l = sched.SpinLock(); l.lock(); sched.might_sleep(); "
            "print(sched.debug_checks(), sched.in_atomic(), len(sched.reports))")
    env = dict(os.environ, ACOMP_DEBUG_CHECKS="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["False", "False", "0"]
    env["ACOMP_DEBUG_CHECKS"] = "1"
    out = subprocess.run([sys.executable, "-c", code + "; l.unlock()"], env=env,
                         capture_output=True, text=True).stderr
    assert "BUG: sleeping function called from invalid context" in out
