"""Fixtures shared by the lz4-opencl tests (each module skips itself without a device)."""

from __future__ import annotations

import pytest

from acomp_drivers.lz4_opencl import Lz4OpenCL, loaded_alg


@pytest.fixture
def alg() -> Lz4OpenCL:
    """The loaded lz4-opencl algorithm."""
    a = loaded_alg()
    assert a is not None
    return a
