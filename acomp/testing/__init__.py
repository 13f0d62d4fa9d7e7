"""The driver author's kit: the conformance suite and a scripted fake asynchronous driver.

Sits beside the driver authors' surface (`acomp.internal`); kernel counterpart:
``crypto/testmgr.c`` with its extra tests, and the fake devices kernel developers script in
their own test modules.

- `conformance(driver_name)`: the checks every driver must pass (self-tests, round trips,
  interoperability with ``<cra_name>-scomp`` both ways, malformed input, a too-small dst,
  backlog, cancellation); `run_conformance` runs them; `conformance_eras(driver_name)` gives
  them once per kernel era the driver supports (`driver_eras`). With the pytest plugin
  installed (it is, with this package), ``pytest --acomp-driver NAME`` adds one test per check
  and era.
- `FakeAsyncDriver`: an ``acomp_alg`` with ``CRYPTO_ALG_ASYNC`` whose completions come from a
  background thread as scripted (`Step`: latency, ``-EBUSY``, failures, dropped or duplicated
  completions, requests held until released), for testing code that uses acomp.
- `FixedLatencyDevice`: an asynchronous device whose every submission (a request, or a batch
  through the vectored API) completes a fixed latency later, with negligible compute (the
  ``trim`` codec); `ZeroCostScomp` is the same codec, synchronous: the zero-cost baseline.
"""

from __future__ import annotations

from acomp.testing.checks import (
    Check,
    CheckFailed,
    CheckResult,
    CheckSkipped,
    conformance,
    conformance_eras,
    driver_eras,
    generic_driver,
    run_conformance,
)
from acomp.testing.device import DeviceStatistics, FixedLatencyDevice, ZeroCostScomp
from acomp.testing.fake import FakeAsyncDriver, FakeStatistics, Step

__all__ = (
    "Check",
    "CheckFailed",
    "CheckResult",
    "CheckSkipped",
    "DeviceStatistics",
    "FakeAsyncDriver",
    "FakeStatistics",
    "FixedLatencyDevice",
    "Step",
    "ZeroCostScomp",
    "conformance",
    "conformance_eras",
    "driver_eras",
    "generic_driver",
    "run_conformance",
)
