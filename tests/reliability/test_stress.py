"""A randomized zswap stress run checked against a shadow dict (the short CI version of
scripts/stress): zero lost or wrong pages, nothing leaked after ``invalidate_area``."""

from __future__ import annotations

import pytest
from stresskit import StressConfig, run_stress

from acomp import sched

pytestmark = pytest.mark.anyio

OPS = ("store", "load", "invalidate", "writeback", "direct_store", "direct_load",
       "direct_invalidate")


@pytest.mark.parametrize(("version", "seed"), [("6.15", 1), ("5.12", 2)])
async def test_stress_loses_nothing_and_leaks_nothing(version: str, seed: int) -> None:
    cfg = StressConfig(ops=8000, seed=seed, version=version)
    res = await run_stress(cfg)
    assert res.lost == 0, "\n".join(res.lines())
    assert res.leaked == 0, res.leaks
    assert res.reports == []
    assert res.total_ops == cfg.ops
    assert set(res.ops) == set(OPS)
    assert res.verified > 1000
    assert len(res.changes) == cfg.changes
    assert res.counters["written_back_pages"] > 0
    assert res.counters["duplicate_entry"] > 0
    assert res.faults_injected.get("error", 0) > 0
    assert res.faults_injected.get("busy_backlogged", 0) > 0
    # over the pool limit by at most one zsmalloc allocation (4 pages) per task storing at once
    assert res.peak_pool_pages <= res.pool_limit_pages + 4 * cfg.tasks
    assert res.longest_stall_ms > 0
    assert sched.reports == []


async def test_the_checker_sees_lost_pages() -> None:
    """The control: a compressor that corrupts some pages during its phase. The checksum
    turns them into -EIO (never wrong data), and the run counts them lost."""
    res = await run_stress(StressConfig(ops=1500, seed=3, corrupt=0.2))
    assert res.faults_injected.get("corrupt", 0) > 0
    assert res.lost > 0
    assert res.counters["decompress_fail"] > 0
    assert res.leaked == 0, res.leaks


@pytest.mark.parametrize(("version", "batch_size", "seed"), [("proposed", 8, 4), ("6.15", None, 5)])
async def test_folio_stress_loses_nothing(version: str, batch_size: int | None, seed: int) -> None:
    """Large folios out (all or nothing) and readahead windows in, batched (proposed, 8 pages
    a batch: faulty(...) with a request per page in flight, lz4-opencl with one submission)
    or page by page (6.15), against the shadow copy."""
    cfg = StressConfig(ops=4000, seed=seed, version=version, folios=True,
                       batch_size=batch_size)
    res = await run_stress(cfg)
    assert res.lost == 0, "\n".join(res.lines())
    assert res.leaked == 0, res.leaks
    assert res.reports == []
    assert res.ops["store_folio"] > 100
    assert res.ops["readahead"] > 100
    assert res.verified > 1000
    assert sched.reports == []
