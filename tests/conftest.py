"""Shared fixtures: every async test runs on asyncio and trio; each test starts clean."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from acomp import sched

# The suite's property tests are derandomized (the same examples every run), so CI is
# reproducible; exploring new inputs is scripts/fuzz's job. ACOMP_HYPOTHESIS=random opts out.
settings.register_profile("acomp", derandomize=True, deadline=None)
settings.register_profile("random", deadline=None)
settings.load_profile("random" if os.environ.get("ACOMP_HYPOTHESIS") == "random" else "acomp")

# lz4-opencl sends requests below its break-even batch to a software fallback by default; the
# suite's lz4-opencl tests are there to exercise the device, so their transforms start with
# the fallback off (tests/opencl/test_host_path.py switches it on where it is the subject).
os.environ.setdefault("ACOMP_OPENCL_FALLBACK", "0")


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _clean_sched() -> Iterator[None]:
    """Splats of one test never leak into the next; raise mode is the default in tests, and
    the debug checks are on (whatever ACOMP_DEBUG_CHECKS says): the bugs are the subject."""
    sched.set_debug_checks(True)
    sched.reset()
    sched.config.atomic_sleep = "raise"
    sched.config.lock_debug = "raise"
    yield
    sched.set_debug_checks(True)
    sched.reset()
    sched.config.atomic_sleep = "raise"
    sched.config.lock_debug = "raise"
