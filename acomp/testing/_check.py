"""What the kit's checks share: the check model and the failures, below both suites.

`acomp.testing.checks` (the conformance suite) and `acomp.testing.contract` (the
request-boundary contract, part of the suite) both build on this module and neither on the
other's helpers, so checks imports contract at module level and no import waits in a function.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import anyio

from acomp._errors import CryptoError
from acomp.acompress import CryptoAcomp, crypto_alloc_acomp, crypto_free_acomp
from acomp.eras import Era, era_of, using_kernel
from acomp.kmod import module_reason

__all__ = ("Check", "CheckFailed", "CheckResult", "CheckSkipped", "alloc_tfm", "describe", "fail")


class CheckFailed(AssertionError):
    """The driver broke a rule; the message says which and how."""


class CheckSkipped(Exception):
    """The check does not apply (no generic driver to compare with, ...)."""


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome on one driver: ``passed``, ``failed`` or ``skipped``, with the
    reason."""

    driver: str
    check: str
    outcome: str  # "passed", "failed" or "skipped"
    message: str = ""


@dataclass(frozen=True)
class Check:
    """One conformance check of one driver."""

    name: str
    driver: str
    description: str
    func: Callable[[str], Awaitable[None]]
    #: The kernel modelled while the check runs (``"6.17"``); None: whatever is modelled then.
    kernel: str | None = None

    @property
    def era(self) -> Era | None:
        """The era of `kernel`."""
        return era_of(self.kernel) if self.kernel else None

    @property
    def label(self) -> str:
        """``driver:check``, or ``driver@era:check`` for a check bound to a kernel."""
        era = self.era
        return f"{self.driver}{'@' + era.name if era else ''}:{self.name}"

    @contextmanager
    def _kernel(self) -> Iterator[None]:
        if self.kernel is None:
            yield
            return
        with using_kernel(self.kernel):
            yield

    async def arun(self) -> None:
        """Run inside the caller's event loop; raises `CheckFailed` or `CheckSkipped`."""
        with self._kernel():
            await self.func(self.driver)

    def run(self, backend: str = "asyncio") -> None:
        """Run on a new event loop of `backend` (``"asyncio"`` or ``"trio"``)."""
        with self._kernel():
            anyio.run(self.func, self.driver, backend=backend)

    def result(self, backend: str = "asyncio") -> CheckResult:
        """Run on a new event loop of `backend` and return the outcome instead of raising."""
        try:
            self.run(backend)
        except CheckSkipped as e:
            return CheckResult(self.driver, self.name, "skipped", str(e))
        except CheckFailed as e:
            return CheckResult(self.driver, self.name, "failed", str(e))
        except Exception as e:
            return CheckResult(self.driver, self.name, "failed", describe(e))
        return CheckResult(self.driver, self.name, "passed")


def describe(e: BaseException) -> str:
    """The innermost exception of an exception group, as ``raised Type: message``."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    if isinstance(e, CheckFailed):
        return str(e)
    where = ""
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None:
        where = f" at {tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}"
    return f"raised {type(e).__name__}{where}: {e}"


# The surface users import them from (acomp.testing) is the one they print and pickle as.
for _cls in (Check, CheckFailed, CheckResult, CheckSkipped):
    _cls.__module__ = "acomp.testing"


def fail(msg: str) -> CheckFailed:
    """A `CheckFailed` to raise, saying `msg`."""
    return CheckFailed(msg)


def alloc_tfm(driver: str) -> CryptoAcomp:
    """A transform of exactly `driver`; `CheckFailed` (with why, where a module has none) when
    it cannot be allocated or the lookup by driver name found another driver."""
    try:
        tfm = crypto_alloc_acomp(driver)
    except CryptoError as e:
        why = module_reason(driver)
        raise fail(f"{driver}: cannot allocate a transform: {e.strerror}"
                   + (f" ({why})" if why else "")) from None
    if tfm.alg.cra_driver_name != driver:
        name = tfm.alg.cra_driver_name
        crypto_free_acomp(tfm)
        raise fail(f"{driver}: lookup by driver name returned {name}")
    return tfm
