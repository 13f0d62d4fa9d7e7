"""Fixtures for the zswap tests: fresh memory, idle zsmalloc mapping areas, no fault plans."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from zswap_helpers import PLAN

from acomp import corpus, faulty
from zswap import Zswap, zsmalloc
from zswap.page import PhysMem


@pytest.fixture(autouse=True)
def _clean_zswap_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    zsmalloc.reset_mapping_areas()
    faulty.set_plan(PLAN, faulty.FaultPlan())
    made: list[Zswap] = []
    init = Zswap.__init__

    def tracking_init(self: Zswap, *a: Any, **kw: Any) -> None:
        made.append(self)
        init(self, *a, **kw)

    monkeypatch.setattr(Zswap, "__init__", tracking_init)
    yield
    # Unload what each test loaded, so pools and transforms never outlive it (other tests
    # unregister drivers and expect them idle).
    for zs in made:
        try:
            zs.close()
        except Exception:  # a test that left a load in progress: nothing more to free
            pass
    zsmalloc.reset_mapping_areas()
    faulty.set_plan(PLAN, faulty.FaultPlan())


@pytest.fixture
def mem() -> PhysMem:
    """8 MiB of fresh memory."""
    return PhysMem(2048, name="test")


@pytest.fixture(scope="session")
def pages() -> list[bytes]:
    """64 corpus pages (every kind: zero, same-filled, compressible, incompressible)."""
    return [bytes(p) for p in corpus.pages(64, seed=7)]


@pytest.fixture(scope="session")
def cpages(pages: list[bytes]) -> list[bytes]:
    """The corpus pages zswap compresses into a zpool: not same-filled, lz4 output < 3 KiB."""
    import lz4.block

    return [p for p in pages
            if p[:8] * 512 != p and len(lz4.block.compress(p, store_size=False)) < 3072]

