"""Waiting for a request: ``struct crypto_wait``, ``crypto_req_done`` and ``crypto_wait_req``.

Kernel counterpart: ``include/linux/crypto.h`` / ``crypto/api.c`` (``crypto_req_done``) and
``kernel/sched/completion.c``.

A completion may come from any thread (a device's completion thread, a worker) or from the
event loop itself. `CryptoWait.complete` never blocks: on the waiter's loop it sets an
``anyio.Event`` directly, from another thread it schedules that ``set`` on the waiter's loop
(``run_sync_soon``), so no wake-up is lost and nobody polls. Like the kernel's completion it
counts: a completion that arrives before the wait is kept. `crypto_wait_req` then
reinitialises it, as the kernel's does, so a duplicate that came meanwhile is absorbed; one
that comes after the wait is kept, and the next wait returns at once with it (the kernel's
hazard, which is why a driver must complete once).
"""

from __future__ import annotations

import errno
import threading
from typing import Any

import anyio
import anyio.lowlevel

from acomp import sched

__all__ = (
    "DECLARE_CRYPTO_WAIT",
    "CryptoWait",
    "crypto_init_wait",
    "crypto_req_done",
    "crypto_wait_req",
    "crypto_wait_req_sync",
)

_EINPROGRESS = -errno.EINPROGRESS
_EBUSY = -errno.EBUSY


class CryptoWait:
    """``struct crypto_wait``: a completion and the final status of the request."""

    __slots__ = ("_cond", "_done", "_event", "_thread", "_token", "err")

    def __init__(self) -> None:
        self.err = 0
        self._done = 0
        self._cond = threading.Condition(threading.Lock())
        self._event: anyio.Event | None = None
        self._token: anyio.lowlevel.EventLoopToken | None = None
        self._thread = 0

    def __repr__(self) -> str:
        return f"<CryptoWait done={self._done} err={self.err}>"

    @property
    def done(self) -> int:
        """Completions not yet consumed by a wait."""
        return self._done

    def complete(self, err: int) -> None:
        """``complete()``: record `err` and wake the waiter, from any thread, without blocking."""
        with self._cond:
            self.err = err
            self._done += 1
            event, token, thread = self._event, self._token, self._thread
            self._cond.notify_all()
        if event is None:
            return
        if threading.get_ident() == thread:
            event.set()
        else:
            assert token is not None
            try:
                token.backend_class.run_sync_soon(event.set, (), token.native_token)
            except Exception:  # the waiter's loop has ended: nobody is left to wake
                pass

    def reinit(self) -> None:
        """``reinit_completion``."""
        with self._cond:
            self._done = 0

    async def wait_for_completion(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Sleep until completed (uninterruptible, as the kernel's); False on `timeout`.

        Cancellation of the waiting task is held back until the completion arrived, so a
        request is never abandoned while a device may still write into it.
        """
        with self._cond:
            if self._done:
                self._done -= 1
                return True
            event = self._event = anyio.Event()
            self._token = anyio.lowlevel.current_token()
            self._thread = threading.get_ident()
        try:
            with anyio.CancelScope(shield=True) as scope:
                if timeout is not None:
                    scope.deadline = anyio.current_time() + timeout
                await event.wait()
        finally:
            with self._cond:
                self._event = None
                got = self._done > 0
                if got:
                    self._done -= 1
        return got

    def wait_for_completion_sync(self, timeout: float | None = None) -> bool:
        """Block the calling thread (a kthread: the self-tests, a worker) until completed."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._done > 0, timeout):
                return False
            self._done -= 1
            return True


def DECLARE_CRYPTO_WAIT() -> CryptoWait:
    """``DECLARE_CRYPTO_WAIT(wait)``: a new, initialised `CryptoWait`."""
    return CryptoWait()


def crypto_init_wait(wait: CryptoWait) -> None:
    """``crypto_init_wait``: make `wait` ready for the next request."""
    wait.err = 0
    wait.reinit()


def crypto_req_done(data: Any, err: int) -> None:
    """The standard callback: ignore the backlog notice (``-EINPROGRESS``), else complete."""
    if err == _EINPROGRESS:
        return
    data.complete(err)


async def crypto_wait_req(
    err: int, wait: CryptoWait, timeout: float | None = None  # noqa: ASYNC109
) -> int:
    """Wait for the request if it was queued (``-EINPROGRESS``/``-EBUSY``); its final status.

    A synchronous result passes straight through without sleeping (and without a checkpoint),
    as in the kernel. Waiting calls ``might_sleep()`` first. The wait itself is not
    interrupted by cancellation (the kernel's is uninterruptible and the device may still be
    writing); a cancellation that arrived meanwhile is raised once the request completed.
    With `timeout`, a completion that never comes gives ``-ETIMEDOUT`` (the request is then
    still owned by the driver: don't free it).
    """
    if err != _EINPROGRESS and err != _EBUSY:
        return err
    sched.might_sleep()
    if not await wait.wait_for_completion(timeout):
        return -errno.ETIMEDOUT
    wait.reinit()  # reinit_completion(): completions that came meanwhile are absorbed
    # The request is finished: a cancellation that arrived meanwhile is delivered now.
    await anyio.lowlevel.checkpoint_if_cancelled()
    return wait.err


def crypto_wait_req_sync(err: int, wait: CryptoWait, timeout: float | None = None) -> int:
    """`crypto_wait_req` for code running in a thread (self-tests, workers), blocking it."""
    if err != _EINPROGRESS and err != _EBUSY:
        return err
    sched.might_sleep()
    if not wait.wait_for_completion_sync(timeout):
        return -errno.ETIMEDOUT
    wait.reinit()
    return wait.err
