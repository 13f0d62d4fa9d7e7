"""The crypto engine: a queue and a worker thread that feed an asynchronous driver, in batches.

Kernel counterpart: ``crypto/crypto_engine.c`` and ``crypto/algapi.c`` (``crypto_enqueue_request``,
``crypto_dequeue_request``, ``crypto_get_backlog``): ``crypto_transfer_acomp_request_to_engine``,
``crypto_finalize_acomp_request``, ``max_qlen`` (``CRYPTO_ENGINE_MAX_QLEN`` = 10 by default).

Queueing is the kernel's: below ``max_qlen`` a request is queued and the submitter gets
``-EINPROGRESS``; at ``max_qlen`` a request with ``CRYPTO_TFM_REQ_MAY_BACKLOG`` still joins the
queue but the submitter gets ``-EBUSY``, and is told ``-EINPROGRESS`` through its callback when
the request leaves the backlog; without the flag it is refused with ``-ENOSPC``.

The batch extension (the reason this engine exists here): the worker hands the driver every
queued request up to ``batch_limit`` at once, so a device gets one launch for many requests.
The driver's ``do_batch`` submits them and returns; it finishes each request later, from any
thread, with `crypto_finalize_acomp_request`. ``max_in_flight`` bounds the batches a driver has
outstanding, so while one computes the next is already being prepared. With ``inline_pump``
an idle engine runs a lone request's batch in the submitter's thread, as the v4.x engine did
(``crypto_pump_requests(engine, false)``), which saves a thread hand-off on a quiet device.
"""

from __future__ import annotations

import errno
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from acomp._constants import CRYPTO_TFM_REQ_MAY_BACKLOG
from acomp.acompress import AcompReq, acomp_request_complete

__all__ = (
    "CRYPTO_ENGINE_MAX_QLEN",
    "CryptoEngine",
    "EngineStatistics",
    "crypto_engine_alloc_init",
    "crypto_engine_exit",
    "crypto_engine_start",
    "crypto_finalize_acomp_request",
    "crypto_transfer_acomp_request_to_engine",
)

CRYPTO_ENGINE_MAX_QLEN = 10

log = logging.getLogger("acomp.engine")

DoBatch = Callable[["CryptoEngine", list[AcompReq]], None]


@dataclass(frozen=True)
class EngineStatistics:
    """A snapshot of a `CryptoEngine`: requests queued and backlogged now, batches in flight,
    batches and requests so far, the largest batch, requests refused (``-ENOSPC``), batches
    run inline in the submitter's thread."""

    queued: int
    backlogged: int
    in_flight_batches: int
    batches: int
    requests: int
    largest_batch: int
    rejected: int
    inline: int = 0


class CryptoEngine:
    """``struct crypto_engine``: a request queue and its kthread."""

    def __init__(self, name: str, do_batch: DoBatch, *, max_qlen: int = CRYPTO_ENGINE_MAX_QLEN,
                 batch_limit: int = 1, max_in_flight: int = 2,
                 inline_pump: bool = False) -> None:
        if max_qlen < 1 or batch_limit < 1 or max_in_flight < 1:
            raise ValueError("max_qlen, batch_limit and max_in_flight must be positive")
        self.name = name
        self.do_batch = do_batch
        self.max_qlen = max_qlen
        self.batch_limit = batch_limit
        self.max_in_flight = max_in_flight
        #: When idle, run a request's batch in the submitter's thread (the driver's do_batch
        #: must then be quick and must not block: it only hands the work to the device).
        self.inline_pump = inline_pump
        self._inline = 0
        self._queue: deque[AcompReq] = deque()
        self._backlog = 0  # how many at the tail of the queue are backlogged
        self._cond = threading.Condition()
        self._running = False
        self._thread: threading.Thread | None = None
        self._in_flight = 0
        self._batches = self._requests = self._largest = self._rejected = 0

    # -- the submit side ---------------------------------------------------------------------

    def transfer(self, req: AcompReq) -> int:
        """``crypto_transfer_acomp_request_to_engine``: queue `req`; the kernel's return codes."""
        with self._cond:
            if not self._running:
                return -errno.ESHUTDOWN
            if len(self._queue) >= self.max_qlen:
                if not req.base_flags & CRYPTO_TFM_REQ_MAY_BACKLOG:
                    self._rejected += 1
                    return -errno.ENOSPC
                self._queue.append(req)
                self._backlog += 1
                self._cond.notify()
                return -errno.EBUSY
            if self.inline_pump and not self._queue and self._in_flight == 0:
                # An idle engine runs the request in the caller's context (the v4.x engine's
                # crypto_pump_requests(engine, false)): no hand-off to the kthread.
                self._in_flight += 1
                self._batches += 1
                self._requests += 1
                self._largest = max(self._largest, 1)
                self._inline += 1
            else:
                self._queue.append(req)
                self._cond.notify()
                return -errno.EINPROGRESS
        self._run_batch([req])
        return -errno.EINPROGRESS

    def claim_idle(self) -> bool:
        """For a driver that finishes a lone request in its submitter's context: take an idle
        engine's batch slot, as the inline pump does (False when anything is queued or in
        flight); give it back with `batch_done`."""
        with self._cond:
            if not self._running or self._queue or self._in_flight:
                return False
            self._in_flight += 1
            self._batches += 1
            self._requests += 1
            self._largest = max(self._largest, 1)
            self._inline += 1
            return True

    def _run_batch(self, batch: list[AcompReq]) -> None:
        try:
            self.do_batch(self, batch)
        except Exception:  # a driver bug must not strand its requests
            for req in batch:
                if req.in_flight:
                    self.finalize(req, -errno.EIO)
            self.batch_done()

    def finalize(self, req: AcompReq, err: int) -> None:
        """``crypto_finalize_acomp_request``: complete `req` with its final status."""
        acomp_request_complete(req, err)

    def batch_done(self) -> None:
        """The driver has finished a batch it was given (frees a slot for the next)."""
        with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()

    def finish_batch(self, reqs: list[AcompReq], complete: Callable[[int, AcompReq], int],
                     *, last: bool = True) -> None:
        """Finish `reqs` of a batch from the driver's completion path, whatever happens there.

        ``complete(i, req)`` does the driver's work for request i (copying its output out) and
        returns its status; each request is finalized with it. A request whose `complete`
        raised is finalized with ``-EIO`` (the exception is logged) and the others still run;
        with `last`, the batch's slot is given back in every case. This is the completion side
        of the rule `_run_batch` keeps on the submission side: a driver bug never strands a
        request, nor the engine's slot (beyond the kernel, whose drivers must get this right).
        """
        try:
            for i, req in enumerate(reqs):
                try:
                    err = complete(i, req)
                except Exception:
                    log.exception("%s: completing %r failed", self.name, req)
                    err = -errno.EIO
                if req.in_flight:
                    try:
                        self.finalize(req, err)
                    except Exception:  # the submitter's callback: not ours to stop on
                        log.exception("%s: the completion callback of %r raised", self.name,
                                      req)
        finally:
            if last:
                self.batch_done()

    # -- the kthread ----------------------------------------------------------------------------

    def start(self) -> int:
        """Start the worker thread (``crypto_engine_start``): ``0``, or ``-EBUSY`` when it runs
        already."""
        with self._cond:
            if self._running:
                return -errno.EBUSY
            self._running = True
        self._thread = threading.Thread(target=self._pump, name=f"crypto-{self.name}", daemon=True)
        self._thread.start()
        return 0

    def exit(self) -> None:
        """Stop the kthread after the queue drained and every batch finished."""
        with self._cond:
            if not self._running:
                return
            self._cond.wait_for(lambda: not self._queue and self._in_flight == 0, timeout=30)
            self._running = False
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)

    def _take(self) -> list[AcompReq]:
        """Dequeue up to batch_limit requests; tell each request leaving the backlog."""
        batch: list[AcompReq] = []
        notices: list[AcompReq] = []
        while self._queue and len(batch) < self.batch_limit:
            batch.append(self._queue.popleft())
            # The queue shrank: its oldest backlogged request is now merely queued.
            if self._backlog:
                idx = len(self._queue) - self._backlog
                if idx < self.max_qlen:
                    notices.append(self._queue[idx])
                    self._backlog -= 1
        self._notices = notices
        return batch

    def _pump(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: not self._running
                    or (self._queue and self._in_flight < self.max_in_flight)
                )
                if not self._running:
                    return
                batch = self._take()
                notices = self._notices
                self._in_flight += 1
                self._batches += 1
                self._requests += len(batch)
                self._largest = max(self._largest, len(batch))
            for req in notices:
                acomp_request_complete(req, -errno.EINPROGRESS)
            self._run_batch(batch)

    def statistics(self) -> EngineStatistics:
        """A snapshot of the queue and the batches so far."""
        with self._cond:
            return EngineStatistics(len(self._queue), self._backlog, self._in_flight,
                                    self._batches, self._requests, self._largest, self._rejected,
                                    self._inline)


def crypto_engine_alloc_init(name: str, do_batch: DoBatch, **kw: Any) -> CryptoEngine:
    """An engine named `name` that hands batches to `do_batch` (keywords: `max_qlen`, `batch_limit`,
    `max_in_flight`, `inline_pump`); start it with `crypto_engine_start`."""
    return CryptoEngine(name, do_batch, **kw)


def crypto_engine_start(engine: CryptoEngine) -> int:
    """Start the engine's worker: ``0``, or ``-EBUSY`` when it runs already."""
    return engine.start()


def crypto_engine_exit(engine: CryptoEngine) -> None:
    """Stop the engine after its queue drained and every batch finished."""
    engine.exit()


def crypto_transfer_acomp_request_to_engine(engine: CryptoEngine, req: AcompReq) -> int:
    """Queue `req`: ``-EINPROGRESS``, ``-EBUSY`` when backlogged (``CRYPTO_TFM_REQ_MAY_BACKLOG``),
    ``-ENOSPC`` when the queue is full and it may not wait."""
    return engine.transfer(req)


def crypto_finalize_acomp_request(engine: CryptoEngine, req: AcompReq, err: int) -> None:
    """Finish `req` with `err` (from any thread): its completion callback runs."""
    engine.finalize(req, err)
