"""Fixtures for the zpool tests: a small memory per test, every backend, both event loops."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from acomp import sched
from zswap import zsmalloc
from zswap.page import PhysMem


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _clean_state() -> Iterator[None]:
    """Each test starts with no splats, raise modes, CPU 0 and idle zsmalloc mapping areas."""
    sched.reset()
    sched.config.atomic_sleep = "raise"
    sched.config.lock_debug = "raise"
    zsmalloc.reset_mapping_areas()
    yield
    sched.reset()
    sched.config.atomic_sleep = "raise"
    sched.config.lock_debug = "raise"
    zsmalloc.reset_mapping_areas()


@pytest.fixture
def mem() -> PhysMem:
    """16 MiB of fresh memory."""
    return PhysMem(4096, name="test")
