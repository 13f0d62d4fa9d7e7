"""Fixtures for the zpool tests: a small memory per test, every backend, both event loops."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import zswap
from acomp import sched
from zswap import zpool, zsmalloc
from zswap.page import PhysMem


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _clean_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with no splats, raise modes, CPU 0 and idle zsmalloc mapping areas,
    and ends with every zpool it created destroyed (a pool left alive keeps its driver's
    refcount up: a later zbud.module_exit() would get -EBUSY)."""
    sched.reset()
    sched.config.atomic_sleep = "raise"
    sched.config.lock_debug = "raise"
    zsmalloc.reset_mapping_areas()
    made: list[zpool.Zpool] = []
    create = zswap.zpool_create_pool

    def tracking_create(*a: Any, **kw: Any) -> zpool.Zpool | None:
        pool = create(*a, **kw)
        if pool is not None:
            made.append(pool)
        return pool

    monkeypatch.setattr(zswap, "zpool_create_pool", tracking_create)
    yield
    for pool in made:
        try:
            zswap.zpool_destroy_pool(pool)
        except zswap.ZpoolError:  # the test destroyed it already
            pass
    sched.reset()
    sched.config.atomic_sleep = "raise"
    sched.config.lock_debug = "raise"
    zsmalloc.reset_mapping_areas()


@pytest.fixture
def mem() -> PhysMem:
    """16 MiB of fresh memory."""
    return PhysMem(4096, name="test")
