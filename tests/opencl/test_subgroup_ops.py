"""The sub-group operations of kernels_sg.cl (ballot, match-any, shuffle, scans) against numpy.

On PoCL this checks the local-memory fallback, the implementation the sub-group kernels run
on in CI; where the device offers cl_khr_subgroups (+ ballot, shuffle) or is an NVIDIA GPU,
those builds are checked too, so every implementation the driver may pick computes the
same thing.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

cl = pytest.importorskip("pyopencl")

from drivers.lz4_opencl.device import KERNEL_SOURCE_SG, Lz4Device  # noqa: E402

pytestmark = pytest.mark.gpu

U32 = npt.NDArray[np.uint32]


def _device() -> cl.Device:
    try:
        from drivers.lz4_opencl.device import choose_device

        return choose_device()
    except LookupError:
        pytest.skip("no OpenCL device")


def _impls(dev: cl.Device) -> list[str]:
    found = ["local"]
    ext = set(dev.extensions.split())
    if {"cl_khr_subgroups", "cl_khr_subgroup_ballot", "cl_khr_subgroup_shuffle"} <= ext:
        found.append("khr")
    if "nvidia" in dev.platform.vendor.lower():
        found.append("ptx")
    return found


def _expected(v: U32, idx: U32) -> U32:
    """What every lane of each 32-lane group must see (the kernel's out layout)."""
    groups = len(v) // 32
    out = np.zeros((len(v), 8), np.uint64)
    lanes = np.arange(32, dtype=np.uint64)
    for g in range(groups):
        gv = v[32 * g : 32 * g + 32].astype(np.uint64)
        bits = np.uint64(1) << lanes
        ballot = int(np.sum(bits[(gv & 1) == 1]))
        for i in range(32):
            row = out[32 * g + i]
            row[0] = ballot
            row[1] = int(np.sum(bits[gv == gv[i]]))
            row[2] = gv[int(idx[32 * g + i]) & 31]
            row[3] = int(np.sum(gv[: i + 1])) & 0xFFFFFFFF
            row[4] = int(np.sum(gv[:i])) & 0xFFFFFFFF
            row[5] = int(np.max(gv[: i + 1]))
            row[6] = g
            row[7] = i
    return out.astype(np.uint32).ravel()


@pytest.mark.parametrize("impl", ["local", "khr", "ptx"])
def test_subgroup_primitives_match_numpy(impl: str) -> None:
    dev = _device()
    if impl not in _impls(dev):
        pytest.skip(f"the device offers no {impl} sub-group operations")
    ppg = 1 if impl == "local" else 2
    ctx = cl.Context([dev])
    opts = [f"-DPPG={ppg}", f"-DSG_IMPL={('local', 'khr', 'ptx').index(impl)}"]
    if impl == "khr":
        opts.append("-cl-std=CL3.0" if "3." in dev.opencl_c_version else "-cl-std=CL2.0")
    prog = cl.Program(ctx, KERNEL_SOURCE_SG.read_text()).build(options=opts)
    q = cl.CommandQueue(ctx)
    rng = np.random.default_rng(7)
    groups = 6 * ppg
    n = 32 * groups
    v = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    v[32:64] = rng.integers(0, 4, 32)  # many equal values: match-any groups of several lanes
    v[64:96] = 5  # one value in every lane
    v[96:128] = np.arange(32)[::-1]  # a descending max-scan, odd/even ballot
    v[128:160] = rng.integers(0, 2**20, 32)  # sums that do not wrap
    v[160:192] = 0
    idx = rng.integers(0, 32, n).astype(np.uint32)
    idx[64:96] = 31 - np.arange(32)  # a reversal
    mf = cl.mem_flags
    bv = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=v)
    bi = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=idx)
    out = np.zeros(8 * n, np.uint32)
    bo = cl.Buffer(ctx, mf.WRITE_ONLY, out.nbytes)
    prog.sg_selftest(q, (n,), (32 * ppg,), bv, bi, bo)
    cl.enqueue_copy(q, out, bo)
    want = _expected(v, idx)
    names = ("ballot", "match", "shuffle", "scan", "xscan", "maxscan", "group", "lane")
    for k, name in enumerate(names):
        got, exp = out[k::8], want[k::8]
        bad = np.nonzero(got != exp)[0]
        if bad.size:
            i = int(bad[0])
            pytest.fail(f"{impl} {name}: lane {i} got {got[i]:#x}, want {exp[i]:#x}")


def test_subgroup_device_choice() -> None:
    """The driver's sub-group build: the implementation it picked and its launch shape."""
    with Lz4Device(kernels="subgroup", max_batch=4) as d:
        assert d.kernels == "subgroup"
        assert d.sg_impl in _impls(d.device)
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
