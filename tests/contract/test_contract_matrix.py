"""The request-boundary contract (`acomp.testing.contract`) over every registered driver, on
asyncio and trio: the CPU drivers, lz4-opencl on PoCL (its device path: the small-request
fallback off), faulty(lz4-scomp), and rle-scomp, the out-of-tree example driver, through the
driver kit. The same checks run on any driver with ``pytest --acomp-driver NAME``."""

from __future__ import annotations

import itertools

import pytest

import acomp
from acomp.testing import conformance
from acomp.testing.contract import DIMENSIONS, check_lifetimes, check_matrix, matrix_cases

pytestmark = pytest.mark.anyio

DRIVERS = [
    "lz4-scomp", "lz4hc-scomp", "lzo-scomp", "zstd-scomp", "deflate-scomp",
    pytest.param("lz4-opencl", marks=[pytest.mark.gpu, pytest.mark.skipif(
        not acomp.crypto_has_acomp("lz4-opencl"), reason="no OpenCL device")]),
    "faulty(lz4-scomp)",
    pytest.param("rle-scomp", marks=pytest.mark.skipif(
        not acomp.crypto_has_acomp("rle-scomp"),
        reason="examples/my_driver is not installed")),
]


@pytest.fixture(autouse=True)
def _device_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """lz4-opencl transforms made here send single requests to the device, not lz4-scomp."""
    monkeypatch.setenv("ACOMP_OPENCL_FALLBACK", "0")


@pytest.mark.parametrize("driver", DRIVERS)
async def test_request_boundary_matrix(driver: str) -> None:
    await check_matrix(driver)


@pytest.mark.parametrize("driver", DRIVERS)
async def test_request_and_transform_lifetimes(driver: str) -> None:
    await check_lifetimes(driver)


def test_the_matrix_covers_every_pair_of_values() -> None:
    cases = matrix_cases()
    names = list(DIMENSIONS)
    for a, b in itertools.combinations(names, 2):
        seen = {(getattr(c, a), getattr(c, b)) for c in cases}
        want = {(x, y) for x in DIMENSIONS[a] for y in DIMENSIONS[b]}
        assert seen == want, (a, b, want - seen)
    full = 1
    for values in DIMENSIONS.values():
        full *= len(values)
    assert len(cases) < 100 < full  # pairwise, not the product (71 680 cases)


def test_the_contract_ships_in_the_conformance_suite() -> None:
    names = [c.name for c in conformance("lz4-scomp")]
    assert "contract-matrix" in names
    assert "contract-lifetimes" in names
