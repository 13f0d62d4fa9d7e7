"""Per-CPU streams: an algorithm's working memory, one per CPU, made on first use (v6.16+).

Kernel counterpart: ``crypto/acompress.c`` of v6.16+ (``acomp_stream_workfn``,
``crypto_acomp_alloc_streams``, ``crypto_acomp_free_streams``,
``crypto_acomp_lock_stream_bh``) and ``include/crypto/internal/acompress.h``
(``struct crypto_acomp_stream``, ``struct crypto_acomp_streams``,
``crypto_acomp_unlock_stream_bh``), moved out of scomp by "crypto: acomp - Move scomp stream
allocation code into acomp" (v6.16) so native acomp drivers (deflate, zstd) share them.

An algorithm keeps one `CryptoAcompStreams`: its ``alloc_ctx()`` / ``free_ctx(ctx)`` (no
transform argument since v6.15) and a stream per CPU, each a spin lock and a context. Only the
first CPU's context is allocated by `crypto_acomp_alloc_streams`; a CPU that finds its own
missing in `crypto_acomp_lock_stream_bh` marks itself in ``stream_want``, schedules
``stream_work`` (which allocates the missing contexts outside atomic context, on a kworker)
and meanwhile uses the first CPU's stream under that stream's lock. The stream is held with
bottom halves disabled (``spin_lock_bh``): atomic context in `acomp.sched` until
`crypto_acomp_unlock_stream_bh`.

The work runs on a thread of its own (a kworker), soon after it is scheduled;
``stream_work.flush()`` waits for it (the kernel's ``flush_work``).
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from typing import Any

from acomp import sched

__all__ = (
    "CryptoAcompStream",
    "CryptoAcompStreams",
    "WorkStruct",
    "crypto_acomp_alloc_streams",
    "crypto_acomp_free_streams",
    "crypto_acomp_lock_stream_bh",
    "crypto_acomp_unlock_stream_bh",
)

#: ``cpumask_first(cpu_possible_mask)``: the CPU whose stream always exists.
FIRST_CPU = 0


class WorkStruct:
    """``struct work_struct`` on the system workqueue: `schedule` queues the function once (a
    second call while it is pending does nothing, as ``schedule_work`` returns false), and it
    runs soon after on a kworker thread, as a task of its own outside atomic context."""

    __slots__ = ("_cancelled", "_cond", "_pending", "_running", "fn", "name")

    def __init__(self, fn: Callable[[], None], name: str = "kworker/u:0") -> None:
        self.fn = fn
        self.name = name
        self._cond = threading.Condition()
        self._pending = False
        self._running = False
        self._cancelled = False

    def schedule(self) -> bool:
        """``schedule_work``: False when it is already pending."""
        with self._cond:
            if self._pending:
                return False
            self._pending = True
            self._cancelled = False
        threading.Thread(target=self._run, name=self.name, daemon=True).start()
        return True

    def _run(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: not self._running)  # one run at a time
            if self._cancelled or not self._pending:
                self._pending = False
                self._cond.notify_all()
                return
            # Queued work that starts clears its pending bit first: a schedule from now on
            # queues it again.
            self._pending = False
            self._running = True
        try:
            sched.new_task(self.name)
            self.fn()
        finally:
            with self._cond:
                self._running = False
                self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """``flush_work``: wait until the work queued now has run; False after `timeout`."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._running,
                                       timeout)

    def cancel_sync(self) -> None:
        """``cancel_work_sync``: drop it if it has not started, wait for it if it runs."""
        with self._cond:
            if self._pending:
                self._cancelled = True
                self._pending = False
            self._cond.wait_for(lambda: not self._running)

    @property
    def pending(self) -> bool:
        """``work_pending``: queued and not started yet."""
        return self._pending


class CryptoAcompStream:
    """``struct crypto_acomp_stream``: one CPU's ``lock`` and ``ctx``; ``made`` says whether
    the context exists (the kernel's ``ps->ctx != NULL``; here an algorithm's context may be
    None, as lz4's is)."""

    __slots__ = ("ctx", "lock", "made")

    def __init__(self, cpu: int) -> None:
        # spin_lock_init(&ps->lock): lockdep names the class after the expression.
        self.lock = sched.SpinLock("&ps->lock")
        self.ctx: Any = None
        self.made = False

    def set(self, ctx: Any) -> None:
        """``ps->ctx = ctx``: the stream has its context."""
        self.ctx = ctx
        self.made = True

    def __repr__(self) -> str:
        return f"<CryptoAcompStream ctx={self.ctx!r}>"


class CryptoAcompStreams:
    """``struct crypto_acomp_streams``: ``alloc_ctx()`` (raise MemoryError to fail),
    ``free_ctx(ctx)``, the per-CPU ``streams`` (None until `crypto_acomp_alloc_streams`),
    ``stream_work`` (allocates the contexts CPUs asked for) and ``stream_want`` (those CPUs:
    the cpumask, a set here)."""

    __slots__ = ("alloc_ctx", "free_ctx", "stream_want", "stream_work", "streams")

    def __init__(self, alloc_ctx: Callable[[], Any],
                 free_ctx: Callable[[Any], None] = lambda ctx: None) -> None:
        self.alloc_ctx = alloc_ctx
        self.free_ctx = free_ctx
        self.streams: sched.PerCpu[CryptoAcompStream] | None = None
        self.stream_want: set[int] = set()
        self.stream_work = WorkStruct(lambda: _stream_workfn(self))

    def __repr__(self) -> str:
        made = [cpu for cpu, ps in self.streams.items() if ps.made] \
            if self.streams is not None else []
        return f"<CryptoAcompStreams contexts on CPUs {made} want {sorted(self.stream_want)}>"

    def contexts(self) -> dict[int, Any]:
        """Beyond the kernel, for tests and tools: CPU -> its context, for the CPUs that have
        one."""
        if self.streams is None:
            return {}
        return {cpu: ps.ctx for cpu, ps in self.streams.items() if ps.made}


def _alloc(s: CryptoAcompStreams) -> Any:
    """``s->alloc_ctx()``: the context, or a negative errno (``IS_ERR``)."""
    try:
        return s.alloc_ctx()
    except MemoryError:
        return -errno.ENOMEM


def _stream_workfn(s: CryptoAcompStreams) -> None:
    """``acomp_stream_workfn``: a context for each CPU in ``stream_want`` that has none, in CPU
    order; the first failure stops the work (those CPUs stay wanted)."""
    streams = s.streams
    if streams is None:
        return
    for cpu in sorted(s.stream_want):
        ps = streams.per_cpu(cpu)
        if ps.made:
            continue
        ctx = _alloc(s)  # GFP_KERNEL: it may sleep, which is why it is deferred to here
        if isinstance(ctx, int) and ctx < 0:
            break
        sched.preempt_disable()  # spin_lock_bh
        ps.lock.lock()
        ps.set(ctx)
        ps.lock.unlock()
        sched.preempt_enable()
        s.stream_want.discard(cpu)


def crypto_acomp_alloc_streams(s: CryptoAcompStreams) -> int:
    """``crypto_acomp_alloc_streams``: the per-CPU streams with the first CPU's context (0, or
    the errno of a failed ``alloc_ctx``); 0 at once when they exist."""
    if s.streams is not None:
        return 0
    ctx = _alloc(s)
    if isinstance(ctx, int) and ctx < 0:
        return ctx
    streams: sched.PerCpu[CryptoAcompStream] = sched.PerCpu(CryptoAcompStream)
    streams.per_cpu(FIRST_CPU).set(ctx)
    s.streams = streams
    return 0


def crypto_acomp_free_streams(s: CryptoAcompStreams) -> None:
    """``crypto_acomp_free_streams``: cancel the work (waiting if it runs), then free every
    CPU's context."""
    s.stream_work.cancel_sync()
    streams = s.streams
    if streams is None:
        return
    for _cpu, ps in streams.items():
        if not ps.made:
            continue
        s.free_ctx(ps.ctx)
        ps.ctx = None
        ps.made = False
    # Beyond the kernel (whose algorithm is gone with its module): the streams can be
    # allocated again, as a re-registered algorithm here needs.
    s.streams = None
    s.stream_want.clear()


def crypto_acomp_lock_stream_bh(s: CryptoAcompStreams) -> CryptoAcompStream:
    """``crypto_acomp_lock_stream_bh``: this CPU's stream, locked with bottom halves disabled;
    if it has no context yet, ask for one (``stream_want``, ``stream_work``) and lock the
    first CPU's instead. Release with `crypto_acomp_unlock_stream_bh`."""
    streams = s.streams
    if streams is None:
        raise RuntimeError("crypto_acomp_lock_stream_bh before crypto_acomp_alloc_streams "
                           "(a NULL dereference in the kernel)")
    cpu = sched.smp_processor_id()
    ps = streams.per_cpu(cpu)
    sched.preempt_disable(1)  # local_bh_disable: atomic until the unlock
    try:
        ps.lock.lock(1)
        if ps.made:
            return ps
        ps.lock.unlock()  # spin_unlock: bottom halves stay disabled
        s.stream_want.add(cpu)
        s.stream_work.schedule()
        ps = streams.per_cpu(FIRST_CPU)
        ps.lock.lock(1)
    except BaseException:  # a lock misuse reported by raising: bottom halves on again
        sched.preempt_enable()
        raise
    return ps


def crypto_acomp_unlock_stream_bh(stream: CryptoAcompStream) -> None:
    """``crypto_acomp_unlock_stream_bh``: ``spin_unlock_bh`` of the stream's lock."""
    stream.lock.unlock()
    sched.preempt_enable()
