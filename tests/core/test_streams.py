"""Per-CPU streams (acomp.streams): crypto/acompress.c of v6.16+, ``crypto_acomp_alloc_streams``,
``crypto_acomp_free_streams``, ``crypto_acomp_lock_stream_bh``, ``acomp_stream_workfn``, and
include/crypto/internal/acompress.h's ``crypto_acomp_unlock_stream_bh``."""

from __future__ import annotations

import errno
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from acomp import sched
from acomp.internal import (
    CryptoAcompStreams,
    crypto_acomp_alloc_streams,
    crypto_acomp_free_streams,
    crypto_acomp_lock_stream_bh,
    crypto_acomp_unlock_stream_bh,
)
from acomp.streams import WorkStruct


class _Ctxs:
    """alloc_ctx/free_ctx that record what they did (and can be told to fail)."""

    def __init__(self) -> None:
        self.made: list[int] = []
        self.freed: list[int] = []
        self.fail = False
        self.atomic_at_alloc: list[bool] = []
        self.tasks: list[str] = []

    def alloc(self) -> Any:
        self.atomic_at_alloc.append(sched.in_atomic())
        self.tasks.append(threading.current_thread().name)
        if self.fail:
            raise MemoryError
        n = len(self.made) + 1
        self.made.append(n)
        return n

    def free(self, ctx: Any) -> None:
        self.freed.append(ctx)


@pytest.fixture
def ctxs() -> _Ctxs:
    return _Ctxs()


@pytest.fixture
def streams(ctxs: _Ctxs) -> Iterator[CryptoAcompStreams]:
    s = CryptoAcompStreams(ctxs.alloc, ctxs.free)
    yield s
    crypto_acomp_free_streams(s)


def test_alloc_makes_only_the_first_cpus_context(streams: CryptoAcompStreams,
                                                 ctxs: _Ctxs) -> None:
    """crypto_acomp_alloc_streams: alloc_ctx() once, for cpumask_first(cpu_possible_mask);
    a second call finds the streams there and allocates nothing."""
    assert crypto_acomp_alloc_streams(streams) == 0
    assert streams.contexts() == {0: 1}
    assert crypto_acomp_alloc_streams(streams) == 0
    assert ctxs.made == [1]


def test_alloc_failure_is_its_errno_and_leaves_no_streams(streams: CryptoAcompStreams,
                                                          ctxs: _Ctxs) -> None:
    """crypto_acomp_alloc_streams: IS_ERR(ctx) frees the percpu area and returns the error."""
    ctxs.fail = True
    assert crypto_acomp_alloc_streams(streams) == -errno.ENOMEM
    assert streams.streams is None
    ctxs.fail = False
    assert crypto_acomp_alloc_streams(streams) == 0


def test_lock_on_the_first_cpu_is_atomic_until_unlock(streams: CryptoAcompStreams) -> None:
    """crypto_acomp_lock_stream_bh: spin_lock_bh, so the holder is in atomic context and a
    sleep there is the kernel's splat."""
    crypto_acomp_alloc_streams(streams)
    ps = crypto_acomp_lock_stream_bh(streams)
    try:
        assert ps.ctx == 1
        assert sched.in_atomic()
        assert ps.lock.is_locked()
        if sched.debug_checks():
            with pytest.raises(sched.SleepInAtomicError):
                sched.might_sleep()
    finally:
        crypto_acomp_unlock_stream_bh(ps)
    assert not sched.in_atomic()
    assert not ps.lock.is_locked()


def test_a_cpu_without_a_context_borrows_the_first_and_asks_for_its_own(
        two_cpus: None, streams: CryptoAcompStreams, ctxs: _Ctxs) -> None:
    """crypto_acomp_lock_stream_bh on a CPU whose stream has no ctx: cpumask_set_cpu in
    stream_want, schedule_work, and the first CPU's stream (locked) meanwhile;
    acomp_stream_workfn then allocates it outside atomic context, on a kworker."""
    crypto_acomp_alloc_streams(streams)
    with sched.on_cpu(1):
        ps = crypto_acomp_lock_stream_bh(streams)
        try:
            assert streams.streams is not None
            assert ps is streams.streams.per_cpu(0)
            assert ps.ctx == 1
            assert not streams.streams.per_cpu(1).lock.is_locked()
            assert sched.in_atomic()
        finally:
            crypto_acomp_unlock_stream_bh(ps)
        assert not sched.in_atomic()
        assert streams.stream_work.flush(10)
        assert streams.contexts() == {0: 1, 1: 2}
        assert streams.stream_want == set()
        assert ctxs.atomic_at_alloc == [False, False]
        assert ctxs.tasks[1].startswith("kworker")
        ps = crypto_acomp_lock_stream_bh(streams)
        try:
            assert ps is streams.streams.per_cpu(1)
            assert ps.ctx == 2
        finally:
            crypto_acomp_unlock_stream_bh(ps)


def test_a_failed_deferred_allocation_leaves_the_cpu_wanted(
        two_cpus: None, streams: CryptoAcompStreams, ctxs: _Ctxs) -> None:
    """acomp_stream_workfn: IS_ERR(ctx) breaks out; the CPU stays in stream_want and keeps
    using the first CPU's stream, and asks again on its next lock."""
    crypto_acomp_alloc_streams(streams)
    ctxs.fail = True
    with sched.on_cpu(1):
        crypto_acomp_unlock_stream_bh(crypto_acomp_lock_stream_bh(streams))
        assert streams.stream_work.flush(10)
        assert streams.stream_want == {1}
        assert streams.contexts() == {0: 1}
        ctxs.fail = False
        ps = crypto_acomp_lock_stream_bh(streams)
        assert streams.streams is not None
        assert ps is streams.streams.per_cpu(0)
        crypto_acomp_unlock_stream_bh(ps)
        assert streams.stream_work.flush(10)
        assert streams.contexts() == {0: 1, 1: 2}


def test_free_frees_every_cpus_context(two_cpus: None, ctxs: _Ctxs) -> None:
    """crypto_acomp_free_streams: cancel_work_sync, then free_ctx for each CPU that has one."""
    s = CryptoAcompStreams(ctxs.alloc, ctxs.free)
    crypto_acomp_alloc_streams(s)
    with sched.on_cpu(1):
        crypto_acomp_unlock_stream_bh(crypto_acomp_lock_stream_bh(s))
    assert s.stream_work.flush(10)
    crypto_acomp_free_streams(s)
    assert sorted(ctxs.freed) == [1, 2]
    assert s.contexts() == {}


def test_two_tasks_on_one_cpu_exclude_each_other(streams: CryptoAcompStreams) -> None:
    """The stream's spin lock: a second holder on the same CPU is a lockup the kernel would
    spin in (reported), not a second user of the context."""
    crypto_acomp_alloc_streams(streams)
    ps = crypto_acomp_lock_stream_bh(streams)
    try:
        if sched.debug_checks():
            with pytest.raises(sched.LockDebugError, match="spinlock recursion"):
                crypto_acomp_lock_stream_bh(streams)
    finally:
        crypto_acomp_unlock_stream_bh(ps)


def test_lock_before_alloc_is_an_error(streams: CryptoAcompStreams) -> None:
    with pytest.raises(RuntimeError, match="before crypto_acomp_alloc_streams"):
        crypto_acomp_lock_stream_bh(streams)


def test_work_runs_once_per_schedule_and_can_be_cancelled() -> None:
    """schedule_work is false while the work is pending; cancel_work_sync drops work that has
    not started and waits for work that runs."""
    started = threading.Event()
    release = threading.Event()
    runs: list[int] = []

    def fn() -> None:
        runs.append(1)
        started.set()
        release.wait(10)

    w = WorkStruct(fn)
    assert w.schedule()
    assert started.wait(10)
    assert w.schedule()  # running, not pending: queued again
    assert not w.schedule()  # pending now
    release.set()
    assert w.flush(10)
    assert runs == [1, 1]
    release.clear()
    started.clear()
    w2 = WorkStruct(fn)
    assert w2.schedule()
    assert started.wait(10)
    release.set()
    w2.cancel_sync()
    assert not w2.pending


def test_a_context_of_none_is_a_context() -> None:
    """An algorithm whose context is None (lz4 here; the kernel's are pointers) has its stream
    once alloc_ctx() returned: the lock takes it and asks the kworker for nothing."""
    s = CryptoAcompStreams(lambda: None)
    try:
        assert crypto_acomp_alloc_streams(s) == 0
        for _ in range(3):
            ps = crypto_acomp_lock_stream_bh(s)
            assert s.streams is not None
            assert ps is s.streams.per_cpu(0)
            assert ps.ctx is None
            crypto_acomp_unlock_stream_bh(ps)
        assert s.stream_want == set()
        assert not s.stream_work.pending
        assert s.contexts() == {0: None}
    finally:
        crypto_acomp_free_streams(s)
