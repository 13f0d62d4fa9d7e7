"""A scripted fake asynchronous acomp driver, for testing code that uses acomp deterministically.

The driver authors' layer (an `acomp.internal.AcompAlg`); kernel counterpart: none in tree, it
plays a hardware driver (``CRYPTO_ALG_ASYNC``) on top of a queue like ``crypto/crypto_engine.c``.

Each submission takes the next `Step` of the script (then `FakeAsyncDriver.default`): how the
submission returns (``-EINPROGRESS``, ``-EBUSY`` backlogged, ``0`` done at once, or an error),
after how long a background thread completes it (or ``latency=None``: held until `release`),
with which final status, and how many times (0 drops the completion, 2 duplicates it). The
real work is LZ4 block compression (python-lz4), so outputs interoperate with ``lz4-scomp``.
With ``max_queue`` the queue follows the kernel's rules: when full, a request with
``MAY_BACKLOG`` is backlogged (``-EBUSY``, then the ``-EINPROGRESS`` notice when it enters the
queue), one without is refused with ``reject`` (``-ENOSPC``) and never completed.

Self-tests at registration run before the script is armed, so they see `Step()` defaults.
"""

from __future__ import annotations

import errno
import functools
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from acomp._constants import (
    CRYPTO_ACOMP_ALLOC_OUTPUT,
    CRYPTO_ACOMP_DST_MAX,
    CRYPTO_ALG_ASYNC,
    CRYPTO_TFM_REQ_MAY_BACKLOG,
)
from acomp.acompress import AcompReq, acomp_request_complete
from acomp.scatterlist import sg_copy_from_buffer, sgl_alloc
from acomp.testing._irq import IrqAcompAlg

__all__ = ("FakeAsyncDriver", "FakeStatistics", "Step")

_EINPROGRESS = -errno.EINPROGRESS
_EBUSY = -errno.EBUSY
_ENOSPC = -errno.ENOSPC
_EINVAL = -errno.EINVAL


@dataclass(frozen=True)
class Step:
    """What the fake does with one submission."""

    #: Seconds from submission (or from leaving the backlog) to the completion; None holds the
    #: request until `FakeAsyncDriver.release`.
    latency: float | None = 0.0
    #: The final status; 0 does the real work (which may still give ``-ENOSPC``/``-EINVAL``).
    status: int = 0
    #: What the submission returns: ``-EINPROGRESS`` (queued), ``-EBUSY`` (backlogged when the
    #: request has MAY_BACKLOG: a ``-EINPROGRESS`` notice comes first; refused without it),
    #: ``0`` (done synchronously, no callback) or another errno (refused, no callback).
    submit: int = _EINPROGRESS
    #: Final completions to deliver: 1, 0 (dropped: the request never completes), 2 (a
    #: duplicate, the driver bug the kernel's completion counting exposes).
    completions: int = 1
    #: For a backlogged step: seconds until the ``-EINPROGRESS`` notice.
    backlog_delay: float = 0.0


@dataclass(frozen=True)
class FakeStatistics:
    """What a `FakeAsyncDriver` did: requests submitted, completed, rejected, backlogged, dropped
    and duplicated (as scripted), and those queued and held now."""

    submitted: int
    completed: int
    rejected: int
    backlogged: int
    dropped: int
    duplicated: int
    queued: int
    held: int


Script = Iterable[Step] | Callable[[int, AcompReq, str], Step]


class FakeAsyncDriver(IrqAcompAlg):
    """An asynchronous acomp algorithm completing from a background thread, as scripted.

    ``with FakeAsyncDriver([Step(latency=0.01), Step(submit=-EBUSY)]) as fake:`` registers it
    (as ``fake``/``fake-async`` unless named otherwise), arms the script, and on exit releases
    held requests, waits for the thread to go idle and unregisters it. `events` records
    ``(what, request number, value)`` tuples: ``submit``, ``notice``, ``complete``.
    """

    cra_flags = CRYPTO_ALG_ASYNC
    cra_name = "fake"
    cra_driver_name = "fake-async"
    cra_module = "acomp.testing"

    def __init__(self, script: Script = (), *, name: str = "fake",
                 driver: str = "fake-async", priority: int = 0, default: Step = Step(),
                 max_queue: int | None = None, reject: int = _ENOSPC) -> None:
        super().__init__(name, driver, priority)
        self.default = default
        self.max_queue = max_queue
        self.reject = reject
        self._script_fn: Callable[[int, AcompReq, str], Step] | None = None
        self._script: Iterator[Step] = iter(())
        if callable(script):
            self._script_fn = script
        else:
            self._pending_script = list(script)
        self._armed = False
        self._held: list[tuple[AcompReq, Step, int, str]] = []
        self._backlog: deque[tuple[AcompReq, Step, int, str]] = deque()
        self._active = 0  # in the queue (not backlogged), not yet finally completed
        self._n = itertools.count()
        self._stats = dict.fromkeys(("submitted", "completed", "rejected", "backlogged",
                                     "dropped", "duplicated"), 0)
        self.events: list[tuple[str, int, int]] = []
        #: Each request's number (the order it was submitted in), by ``id(req)``.
        self.numbers: dict[int, int] = {}

    # -- set-up ---------------------------------------------------------------------------------

    def register(self) -> None:
        """Register (self-tests run on `Step()` defaults), then arm the script."""
        super().register()
        self.arm()

    def arm(self) -> None:
        """Start taking steps from the script (from its beginning)."""
        with self._lock:
            if self._script_fn is None:
                self._script = iter(self._pending_script)
            self._armed = True

    def _quiesce(self) -> None:
        self.release()  # held requests first: unregistering waits for what is in flight
        self.wait_idle(5.0)

    # -- control --------------------------------------------------------------------------------

    def release(self, n: int | None = None) -> int:
        """Let `n` held requests (all by default) complete now; how many were released."""
        with self._lock:
            take = self._held if n is None else self._held[:n]
            self._held = [] if n is None else self._held[n:]
            for req, step, num, op in take:
                self._schedule(0.0, functools.partial(self._finish, req, step, num, op))
            return len(take)

    def _idle(self) -> bool:
        # Held requests don't count: they wait for `release`, not for the thread.
        return super()._idle() and not self._backlog

    def statistics(self) -> FakeStatistics:
        """A snapshot of the requests so far."""
        with self._lock:
            s = self._stats
            return FakeStatistics(s["submitted"], s["completed"], s["rejected"],
                                  s["backlogged"], s["dropped"], s["duplicated"],
                                  self._active + len(self._backlog), len(self._held))

    # -- the driver -----------------------------------------------------------------------------

    def compress(self, req: AcompReq) -> int:
        """Take `req` as the script's next step says (``-EINPROGRESS``, ``-EBUSY``, an
        error, ...)."""
        return self._submit(req, "compress")

    def decompress(self, req: AcompReq) -> int:
        """Take `req` as the script's next step says."""
        return self._submit(req, "decompress")

    def _next_step(self, num: int, req: AcompReq, op: str) -> Step:
        if not self._armed:
            return Step()
        if self._script_fn is not None:
            return self._script_fn(num, req, op)
        return next(self._script, self.default)

    def _submit(self, req: AcompReq, op: str) -> int:
        with self._lock:
            num = next(self._n)
            self.numbers[id(req)] = num
            step = self._next_step(num, req, op)
            self._stats["submitted"] += 1
            ret = step.submit
            backlog_ok = bool(req.base_flags & CRYPTO_TFM_REQ_MAY_BACKLOG)
            full = self.max_queue is not None and self._active >= self.max_queue
            if ret == _EINPROGRESS and full:
                ret = _EBUSY if backlog_ok else self.reject
            if ret == _EBUSY and not backlog_ok:
                ret = self.reject if full else _EBUSY
            self.events.append(("submit", num, ret))
            if ret == 0:
                return self._work(req, op)
            if ret == _EBUSY and backlog_ok:
                self._stats["backlogged"] += 1
                self._backlog.append((req, step, num, op))
                if not full:  # scripted -EBUSY with room: it leaves the backlog at once
                    self._schedule(step.backlog_delay, self._drain_backlog)
                return ret
            if ret != _EINPROGRESS:
                self._stats["rejected"] += 1
                return ret
            self._active += 1
            self._start(req, step, num, op)
            return ret

    def _start(self, req: AcompReq, step: Step, num: int, op: str) -> None:
        if step.latency is None:
            self._held.append((req, step, num, op))
        else:
            self._schedule(step.latency, functools.partial(self._finish, req, step, num, op))

    def _drain_backlog(self) -> None:
        """Move the first backlogged request into the queue: notice now, work later."""
        with self._lock:
            if not self._backlog:
                return
            req, step, num, op = self._backlog.popleft()
            self._active += 1
            self.events.append(("notice", num, _EINPROGRESS))
            self._busy += 1
        try:
            acomp_request_complete(req, _EINPROGRESS)
        finally:
            with self._lock:
                self._busy -= 1
                self._start(req, step, num, op)
                self._lock.notify_all()

    def _finish(self, req: AcompReq, step: Step, num: int, op: str) -> None:
        err = step.status if step.status else self._work(req, op)
        with self._lock:
            self._active -= 1
            if self._backlog and (self.max_queue is None or self._active < self.max_queue):
                self._schedule(self._backlog[0][1].backlog_delay, self._drain_backlog)
            if step.completions == 0:
                self._stats["dropped"] += 1
                self.events.append(("dropped", num, err))
                self._lock.notify_all()
                return
            self._busy += 1
        try:
            for k in range(step.completions):
                with self._lock:
                    self.events.append(("complete", num, err))
                    self._stats["completed" if k == 0 else "duplicated"] += 1
                if k:
                    req.complete(req.data, err)  # a duplicate: straight to the callback
                else:
                    acomp_request_complete(req, err)
        finally:
            with self._lock:
                self._busy -= 1
                self._lock.notify_all()

    @staticmethod
    def _work(req: AcompReq, op: str) -> int:
        """LZ4 block compression of src into dst, honouring dlen; 0 or -errno."""
        import lz4.block

        if req.src is None or req.slen <= 0 or req.slen > req.src.length or req.dlen < 0:
            return _EINVAL
        src = req.src.tobytes(req.slen)
        alloc = bool(req.flags & CRYPTO_ACOMP_ALLOC_OUTPUT) or req.dst is None
        cap = req.dlen if req.dlen else CRYPTO_ACOMP_DST_MAX
        if not alloc and req.dst is not None:
            cap = min(req.dlen, req.dst.length)  # dst && !dlen is -EINVAL, as scomp's
            if not cap or not req.dst.writable:
                return _EINVAL
        try:
            if op == "compress":
                out = lz4.block.compress(src, store_size=False)
            else:
                out = lz4.block.decompress(src, uncompressed_size=cap)
        except lz4.block.LZ4BlockError:
            if op == "decompress":
                try:
                    lz4.block.decompress(src, uncompressed_size=CRYPTO_ACOMP_DST_MAX)
                except lz4.block.LZ4BlockError:
                    return _EINVAL
                return _ENOSPC
            return _EINVAL
        if len(out) > cap:
            return _ENOSPC
        if alloc:
            req.dst = sgl_alloc(len(out))
        assert req.dst is not None
        sg_copy_from_buffer(req.dst, out, len(out))
        req.dlen = len(out)
        return 0

