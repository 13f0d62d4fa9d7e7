"""Shared fixtures: every async test runs on asyncio and trio; each test starts clean."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from acomp import sched


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _clean_sched() -> Iterator[None]:
    """Splats of one test never leak into the next; raise mode is the default in tests."""
    sched.reset()
    sched.config.atomic_sleep = "raise"
    sched.config.lock_debug = "raise"
    yield
    sched.reset()
    sched.config.atomic_sleep = "raise"
    sched.config.lock_debug = "raise"
