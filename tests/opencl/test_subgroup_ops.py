"""The sub-group operations of kernels_sg.cl (ballot, match-any, shuffle, scans) against numpy.

On PoCL this checks the local-memory fallback, the implementation the sub-group kernels run
on in CI; where the device offers cl_khr_subgroups (+ ballot, shuffle) or is an NVIDIA GPU,
those builds are checked too, so every implementation the driver may pick computes the
same thing.
"""

from __future__ import annotations

import numpy as np
import pytest

cl = pytest.importorskip("pyopencl")

from acomp_drivers.lz4_opencl.device import Lz4Device, choose_device  # noqa: E402
from acomp_drivers.lz4_opencl.kbench import expected_selftest, selftest, sg_impls  # noqa: E402

pytestmark = pytest.mark.gpu


def _device() -> cl.Device:
    try:
        return choose_device()
    except LookupError:
        pytest.skip("no OpenCL device")


def test_expected_values_by_hand() -> None:
    """The numpy reference itself on a group small enough to check by hand."""
    v = np.zeros(32, np.uint32)
    v[[1, 4, 9]] = 3  # odd: in the ballot; equal: one match-any group
    v[31] = 8
    idx = np.full(32, 31, np.uint32)
    got = expected_selftest(v, idx).reshape(32, 8)
    assert got[0, 0] == (1 << 1) | (1 << 4) | (1 << 9)
    assert got[4, 1] == (1 << 1) | (1 << 4) | (1 << 9)
    assert got[0, 1] == 0xFFFFFFFF & ~((1 << 1) | (1 << 4) | (1 << 9) | (1 << 31))
    assert (got[:, 2] == 8).all()
    assert [got[9, 3], got[9, 4], got[31, 3]] == [9, 6, 17]
    assert [got[0, 5], got[1, 5], got[31, 5]] == [0, 3, 8]
    assert (got[:, 7] == np.arange(32)).all()


@pytest.mark.parametrize("impl", ["local", "khr", "ptx"])
def test_subgroup_primitives_match_numpy(impl: str) -> None:
    dev = _device()
    if impl not in sg_impls(dev):
        pytest.skip(f"the device offers no {impl} sub-group operations")
    assert selftest(dev, impl) == []


def test_subgroup_device_choice() -> None:
    """The driver's sub-group build: the implementation it picked and its launch shape."""
    with Lz4Device(kernels="subgroup", max_batch=4) as d:
        assert d.kernels == "subgroup"
        assert d.sg_impl in sg_impls(d.device)
        assert d.lanes == 32 * d.pages_per_group
        if d.sg_impl == "local":
            assert d.pages_per_group == 1
        assert d.groups(5) == -(-5 // d.pages_per_group)
        assert f"-DPPG={d.pages_per_group}" in d.build_options
        # local memory per page within the goal (<= 20 KiB) for 4 KiB pages
        for v in d.local_mem.values():
            assert v / d.pages_per_group <= 20 * 1024
    with pytest.raises(ValueError, match="kernels"):
        Lz4Device(kernels="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sg_impl"):
        Lz4Device(kernels="subgroup", sg_impl="magic")  # type: ignore[arg-type]


def test_kernels_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACOMP_OPENCL_KERNELS", "subgroup")
    with Lz4Device(max_batch=4) as d:
        assert d.kernels == "subgroup"
    monkeypatch.setenv("ACOMP_OPENCL_KERNELS", "classic")
    with Lz4Device(max_batch=4) as d:
        assert d.kernels == "classic"
        assert d.pages_per_group == 1
    monkeypatch.setenv("ACOMP_OPENCL_KERNELS", "bogus")
    with pytest.raises(ValueError, match="kernels"):
        Lz4Device(max_batch=4)
