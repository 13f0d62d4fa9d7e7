"""scripts/opencl-counts' core (drivers/lz4_opencl/counts.py) on a few corpus pages.

Asserts the issue's count goals for the subgroup kernels against the classic ones, and that
the instrumented build (-DCOUNT) computes what the plain build does (count_variant checks
sizes and bytes both ways and raises otherwise). No timing is asserted.
"""

from __future__ import annotations

from typing import Any

import pytest

cl = pytest.importorskip("pyopencl")

from acomp import corpus  # noqa: E402
from acomp_drivers.lz4_opencl.counts import (  # noqa: E402
    H100,
    count_variant,
    goals,
    h100_occupancy,
)

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def counts() -> dict[str, dict[str, Any]]:
    try:
        pages = corpus.pages(6, seed=3)
        return {v: count_variant(pages, v) for v in ("classic", "subgroup")}
    except LookupError:
        pytest.skip("no OpenCL device")


def test_subgroup_counts_meet_the_goals(counts: dict[str, dict[str, Any]]) -> None:
    new, old = counts["subgroup"], counts["classic"]
    got = goals(new, old)
    assert all(got.values()), got
    for d in ("compress", "decompress"):
        assert new[d]["barriers"]["max"] == 0  # lanes sync through sub-group operations only
        assert new[d]["single_lane_trips"]["max"] == 0
        assert new[d]["steps"]["mean"] > 0  # the counters count
        assert old[d]["barriers"]["mean"] > 8  # ... and the classic kernels' barriers show
        assert old[d]["single_lane_trips"]["mean"] > 0
    # the compressor's phase 1 alone is 128 windows of 32 positions on a full 4 KiB page
    assert new["compress"]["steps"]["max"] >= 128
    assert new["size_vs_lz4"] <= 1.03


def test_h100_occupancy_model() -> None:
    # the reading of the classic kernels: 23.9 KB per work-group -> 9 per SM
    occ = h100_occupancy(23904, 64, 1)
    assert (occ.pages_per_sm, occ.limit) == (9, "shared memory")
    # tiny groups: 32 blocks per SM bound it; one warp per block
    tiny = h100_occupancy(1024, 32, 1)
    assert (tiny.blocks_per_sm, tiny.limit) == (H100.blocks, "blocks")
    assert h100_occupancy(1024, 128, 4).pages_per_sm == 64  # 16 blocks of 4 warps: 64 warps
