"""Per-page work counts of the lz4-opencl kernels, from an instrumented build (-DCOUNT).

The kernels (kernels.cl, kernels_sg.cl) built with -DCOUNT take one more argument, a
``uint[n][4]`` buffer, and add per item: work-group barriers executed, trips of loops one
lane runs while the others of its page wait (single-lane trips), trips of the uniform
loops in which all lanes of a page work together (steps; in the sub-group kernels each is a
few sub-group operations), and the most trips any one lane ran in the lane-parallel loops.
Together with the kernels' local memory (the compile-time layout) they say, without a GPU,
where a kernel's time goes on one: barriers and single-lane trips are the serial dependency
chains, local memory bounds how many pages an SM keeps in flight.

The counts do not depend on the device: the same kernel logic runs everywhere (the
sub-group kernels' local-memory fallback computes what the PTX and khr forms compute; its
own exchange barriers emulate warp instructions and are not counted as work-group
barriers). Used by scripts/opencl-counts and tests/opencl/test_counts.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import lz4.block
import numpy as np
import numpy.typing as npt
import pyopencl as cl

from .device import (
    KERNEL_SOURCE,
    KERNEL_SOURCE_SG,
    Lz4Device,
    _build,
    _round_up,
    lz4_bound,
    set_page_args,
)

__all__ = (
    "COUNTERS",
    "H100",
    "DirectLaunch",
    "Occupancy",
    "count_variant",
    "h100_occupancy",
    "variant_device",
)

COUNTERS = ("barriers", "single_lane_trips", "steps", "lane_trips_max")

U8 = npt.NDArray[np.uint8]
I32 = npt.NDArray[np.int32]


@dataclass(frozen=True)
class SM:
    """An SM's limits for the occupancy model."""

    name: str
    registers: int
    shared: int  # bytes of shared memory per SM
    shared_reserved: int  # bytes the driver reserves per block
    warps: int
    blocks: int


H100 = SM("H100", registers=65536, shared=228 * 1024, shared_reserved=1024, warps=64, blocks=32)


@dataclass(frozen=True)
class Occupancy:
    pages_per_sm: int
    blocks_per_sm: int
    limit: str  # what bounds it: shared memory, warps or blocks
    warps_per_sm: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "pages_per_sm": self.pages_per_sm,
            "blocks_per_sm": self.blocks_per_sm,
            "limited_by": self.limit,
            "warps_per_sm": self.warps_per_sm,
        }


def h100_occupancy(
    local_per_group: int, lanes: int, pages_per_group: int, sm: SM = H100
) -> Occupancy:
    """Pages an SM holds at once for a launch shape (registers aside: their count is the GPU
    compiler's, measured on the device)."""
    warps = math.ceil(lanes / 32)
    by = {
        "shared memory": sm.shared // (local_per_group + sm.shared_reserved),
        "warps": sm.warps // warps,
        "blocks": sm.blocks,
    }
    limit = min(by, key=lambda k: by[k])
    blocks = by[limit]
    return Occupancy(blocks * pages_per_group, blocks, limit, blocks * warps)


# the launch shapes the driver uses on a GPU (the counts are taken with the same kernel logic)
GPU_CONFIG: dict[str, dict[str, Any]] = {
    "classic": {"lanes": 64, "hash_log": 11, "parse": "parallel", "decode": "parallel"},
    "subgroup": {},
}
GPU_PAGES_PER_GROUP = {"classic": 1, "subgroup": 2}


def variant_device(kernels: str, device: Any = None, **kw: Any) -> Lz4Device:
    """An Lz4Device of a kernel variant in its GPU configuration (on any device)."""
    opts = dict(GPU_CONFIG[kernels])
    opts.update(kw)
    return Lz4Device(device, kernels=kernels, slots=1, **opts)  # type: ignore[arg-type]


class DirectLaunch:
    """The device buffers of one batch in the launch layout of lz4_common.cl (lengths, caps
    and rows in; sizes and rows out), for running a program's kernels directly, below the
    submission pipeline: the instrumented build here, the kernel bench's timed launches
    (kbench). The buffers are reused across launches."""

    def __init__(self, dev: Lz4Device, src: U8, lengths: npt.ArrayLike, caps: npt.ArrayLike,
                 out_slot: int) -> None:
        n, slot = src.shape
        self.n, self.dev, self.out_slot = n, dev, out_slot
        self.in_pitch, self.out_pitch = _round_up(slot), _round_up(out_slot)
        self.in_meta, self.out_meta = _round_up(8 * n), _round_up(4 * n)
        h_in = np.zeros(self.in_meta + n * self.in_pitch, np.uint8)
        meta = h_in[: self.in_meta].view(np.int32)
        meta[:n] = lengths
        meta[n : 2 * n] = caps
        h_in[self.in_meta :].reshape(n, self.in_pitch)[:, :slot] = src
        self.q = cl.CommandQueue(
            dev.ctx, properties=cl.command_queue_properties.PROFILING_ENABLE
        )
        mf = cl.mem_flags
        self.d_in = cl.Buffer(dev.ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=h_in)
        self.d_out = cl.Buffer(dev.ctx, mf.READ_WRITE, self.out_meta + n * self.out_pitch)

    def run(self, kernel: cl.Kernel, lanes: int, groups: int, *extra: Any) -> int:
        """One launch of `kernel` (extra: arguments after the layout's); its kernel ns."""
        set_page_args(kernel, self.d_in, self.in_meta, self.in_pitch, self.d_out,
                        self.out_meta, self.out_pitch, self.n, *extra)
        ev = cl.enqueue_nd_range_kernel(self.q, kernel, (groups * lanes,), (lanes,))
        ev.wait()
        return int(ev.profile.end - ev.profile.start)

    def sizes(self) -> I32:
        h = np.empty(4 * self.n, np.uint8)
        cl.enqueue_copy(self.q, h, self.d_out)
        self.q.finish()
        return h.view(np.int32).copy()

    def results(self) -> tuple[U8, I32]:
        """The last launch's rows (n, out_slot) and sizes."""
        n = self.n
        h = np.empty(self.out_meta + n * self.out_pitch, np.uint8)
        cl.enqueue_copy(self.q, h, self.d_out)
        self.q.finish()
        rows = h[self.out_meta :].reshape(n, self.out_pitch)[:, : self.out_slot].copy()
        return rows, h[: 4 * n].view(np.int32).copy()


def _launch(
    dev: Lz4Device,
    prog: cl.Program,
    op: str,
    src: U8,
    lengths: I32,
    caps: I32,
    out_slot: int,
) -> tuple[U8, I32, npt.NDArray[np.uint32]]:
    """One launch of the instrumented kernel: its rows, sizes and counters."""
    n = len(src)
    lc = DirectLaunch(dev, src, lengths, caps, out_slot)
    cnt = np.zeros((n, len(COUNTERS)), np.uint32)
    d_cnt = cl.Buffer(dev.ctx, cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR, hostbuf=cnt)
    k = cl.Kernel(prog, "lz4_compress" if op == "compress" else "lz4_decompress")
    lc.run(k, dev.lanes, dev.groups(n), d_cnt)
    cl.enqueue_copy(lc.q, cnt, d_cnt)
    rows, sizes = lc.results()
    return rows, sizes, cnt


def _stats(c: npt.NDArray[np.uint32]) -> dict[str, dict[str, float]]:
    res = {}
    for j, name in enumerate(COUNTERS):
        col = c[:, j].astype(np.float64)
        res[name] = {
            "mean": round(float(col.mean()), 2),
            "p50": float(np.percentile(col, 50)),
            "p99": float(np.percentile(col, 99)),
            "max": float(col.max()),
        }
    return res


def count_variant(pages: U8, kernels: str, device: Any = None) -> dict[str, Any]:
    """Counts of one kernel variant on `pages` (n, page_size), both directions.

    The decompressor decodes python-lz4's blocks of the pages (the same input for every
    variant). Raises AssertionError if the instrumented build's output differs from the
    plain build's: the instrumentation must not change what the kernels compute.
    """
    n, page = pages.shape
    dev = variant_device(kernels, device, page_size=page, max_batch=max(1, n))
    try:
        src = KERNEL_SOURCE_SG if dev.kernels == "subgroup" else KERNEL_SOURCE
        prog = _build(dev.ctx, src, [*dev.build_options, "-DCOUNT"])
        lens = np.full(n, page, np.int32)
        bound = lz4_bound(page)
        out, sizes = dev.compress(pages)
        c_out, c_sizes, c_cnt = _launch(
            dev, prog, "compress", pages, lens, np.full(n, bound, np.int32), bound
        )
        assert np.array_equal(c_sizes, sizes), "instrumented compress: other sizes"
        for i in range(n):
            assert np.array_equal(c_out[i, : sizes[i]], out[i, : sizes[i]]), (
                f"instrumented compress: other bytes in page {i}"
            )
        blocks = [lz4.block.compress(p.tobytes(), store_size=False) for p in pages]
        bsrc = np.zeros((n, _round_up(bound)), np.uint8)
        for i, b in enumerate(blocks):
            bsrc[i, : len(b)] = np.frombuffer(b, np.uint8)
        blens = np.array([len(b) for b in blocks], np.int32)
        back, bsizes = dev.decompress(bsrc, blens, page)
        d_out, d_sizes, d_cnt = _launch(
            dev, prog, "decompress", bsrc, blens, np.full(n, page, np.int32), page
        )
        assert np.array_equal(d_sizes, bsizes), "instrumented decompress: other sizes"
        assert (d_sizes == page).all(), "instrumented decompress: failed on lz4's blocks"
        assert np.array_equal(d_out, back), "instrumented decompress: other bytes"
        assert np.array_equal(back, pages), "decompress: not the pages"
        ppg_gpu = GPU_PAGES_PER_GROUP[kernels]
        per_page = {k: v // dev.pages_per_group for k, v in dev.local_mem.items()}
        lanes_gpu = dev.lanes // dev.pages_per_group * ppg_gpu
        occ = {
            k: h100_occupancy(v * ppg_gpu, lanes_gpu, ppg_gpu).as_dict()
            for k, v in per_page.items()
        }
        ref = sum(len(b) for b in blocks)
        return {
            "kernels": kernels,
            "device": f"{dev.info.platform} / {dev.info.device}",
            "sg_impl": dev.sg_impl,
            "build_options": dev.build_options,
            "pages": n,
            "gpu_launch": {"lanes_per_group": lanes_gpu, "pages_per_group": ppg_gpu},
            "compress": _stats(c_cnt),
            "decompress": _stats(d_cnt),
            "local_mem_per_page": {
                "compress": per_page["lz4_compress"],
                "decompress": per_page["lz4_decompress"],
            },
            "h100": {
                "compress": occ["lz4_compress"],
                "decompress": occ["lz4_decompress"],
            },
            "size_vs_lz4": round(int(sizes.sum()) / ref, 4),
        }
    finally:
        dev.close()


GOALS = {"barriers_per_page": 8, "local_mem_per_page": 20 * 1024, "single_lane_reduction": 10}


def goals(new: dict[str, Any], old: dict[str, Any]) -> dict[str, bool]:
    """The issue's goals for the sub-group variant against the classic one."""
    res = {}
    for d in ("compress", "decompress"):
        res[f"{d}: barriers per page <= {GOALS['barriers_per_page']}"] = (
            new[d]["barriers"]["max"] <= GOALS["barriers_per_page"]
        )
        res[f"{d}: local memory per page <= 20 KiB"] = (
            new["local_mem_per_page"][d] <= GOALS["local_mem_per_page"]
        )
        res[f"{d}: single-lane trips per page reduced >= 10x"] = (
            new[d]["single_lane_trips"]["mean"] * GOALS["single_lane_reduction"]
            <= old[d]["single_lane_trips"]["mean"]
        )
    return res
