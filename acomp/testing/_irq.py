"""What the kit's asynchronous drivers share: registration and a completion thread.

`acomp.testing.fake.FakeAsyncDriver` (completions as scripted) and
`acomp.testing.device.FixedLatencyDevice` (a fixed latency) are both an ``acomp_alg`` with
``CRYPTO_ALG_ASYNC`` whose completions come from a thread of their own, the stand-in for a
device's interrupt handler: a heap of timed callbacks, the thread that runs them when due (it
starts with the first one), an idle wait, and registration as a context manager. Each driver
adds what it submits and counts; this class holds the part that is the same.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Self

from acomp.algapi import AcompAlg, crypto_register_acomp, crypto_unregister_acomp

__all__ = ("IrqAcompAlg",)


class IrqAcompAlg(AcompAlg):
    """An acomp algorithm completing from its own thread; ``with alg:`` registers it and, on
    exit, waits for its completions and unregisters it."""

    def __init__(self, name: str, driver: str, priority: int) -> None:
        super().__init__()
        # Instance attributes shadow the class's (the registry reads them from the instance).
        setattr(self, "cra_name", name)  # noqa: B010
        setattr(self, "cra_driver_name", driver)  # noqa: B010
        setattr(self, "cra_priority", priority)  # noqa: B010
        self._lock = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._stop = False
        self._busy = 0  # callbacks being delivered right now

    # -- set-up ---------------------------------------------------------------------------------

    def register(self) -> None:
        """Register as an acomp driver; `OSError` if the registry refuses it."""
        err = crypto_register_acomp(self)
        if err:
            raise OSError(-err, f"cannot register {self.cra_driver_name}: {errno.errorcode[-err]}")

    def _quiesce(self) -> None:
        """Before unregistering: let what is in flight finish."""
        self.wait_idle(5.0)

    def unregister(self) -> None:
        """Let what is in flight finish (a fake first releases the requests it holds), unregister
        and stop the completion thread; `OSError` while a tfm still uses it."""
        self._quiesce()
        err = crypto_unregister_acomp(self)
        self.close()
        if err:
            raise OSError(-err, f"cannot unregister {self.cra_driver_name} (a tfm still uses it?)")

    def __enter__(self) -> Self:
        self.register()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unregister()

    def close(self) -> None:
        """Stop the completion thread (pending completions are not delivered)."""
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(5.0)
        self._thread = None

    def _idle(self) -> bool:
        """Nothing scheduled and nothing being delivered (the caller holds the lock)."""
        return not self._heap and not self._busy

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until nothing is scheduled or being delivered (a request the driver holds back
        until told does not count); False when `timeout` seconds pass first."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self._idle():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True

    # -- the completion thread ------------------------------------------------------------------

    def _schedule(self, delay: float, fn: Callable[[], None]) -> None:
        """Run `fn` on the completion thread after `delay` seconds (the caller holds the lock)."""
        heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), fn))
        if self._thread is None:
            self._stop = False
            self._thread = threading.Thread(target=self._loop, name=f"{self.cra_driver_name}-irq",
                                            daemon=True)
            self._thread.start()
        self._lock.notify_all()

    def _delivering(self) -> None:
        """A callback is taken off the heap to run (the lock is held): a hook for counting."""

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._stop:
                    if self._heap:
                        wait = self._heap[0][0] - time.monotonic()
                        if wait <= 0:
                            break
                        self._lock.wait(wait)
                    else:
                        self._lock.wait()
                if self._stop:
                    return
                _, _, fn = heapq.heappop(self._heap)
                self._busy += 1
                self._delivering()
            try:
                fn()
            finally:
                with self._lock:
                    self._busy -= 1
                    self._lock.notify_all()
