"""Fixtures for the zswap tests: fresh memory, idle zsmalloc mapping areas, no fault plans."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from acomp import corpus, faulty
from zswap import zsmalloc
from zswap.page import PhysMem

#: The asynchronous compressor of these tests: faulty(...) around lz4-scomp, completing from a
#: thread (not the best lz4, which may be lz4-opencl).
ASYNC = "faulty(lz4-scomp)"
PLAN = "faulty(lz4)"  # the plan's key: the instance's cra_name


@pytest.fixture(autouse=True)
def _clean_zswap_state() -> Iterator[None]:
    zsmalloc.reset_mapping_areas()
    faulty.set_plan(PLAN, faulty.FaultPlan())
    yield
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


def random_prefix_page(seed: int, n: int) -> bytes:
    """`n` random bytes then zeros: lz4 output about `n` + 20 bytes, the same for every seed."""
    return random.Random(seed).randbytes(n) + bytes(4096 - n)
