"""The zpool bench runs end to end on a few pages and its figures are consistent."""

from __future__ import annotations

import pytest

from zswap.bench import zpool as bench_zpool


def test_bench_results_are_consistent() -> None:
    outputs, same = bench_zpool.compress_corpus(120, seed=3)
    assert same > 0  # the corpus has zero and same-filled pages; zswap keeps them out
    assert len(outputs["lz4"]) == len(outputs["zstd"]) == 120 - same
    for label, (type_, _, _) in bench_zpool.BACKENDS.items():
        r = bench_zpool.run_backend(label, "lz4", outputs["lz4"], repeat=1, seed=3)
        assert r.objects + r.rejected == len(outputs["lz4"])
        assert 0 < r.density <= 1
        limit = {"zbud": 2, "z3fold": 3}.get(type_)
        if limit is not None:
            assert r.objs_per_page <= limit
        else:
            assert r.class_bound is not None
            assert r.density <= r.class_bound
        assert r.pages_after_free <= r.pool_pages
        assert r.pages_after_compaction <= r.pages_after_free
        assert min(r.malloc_us, r.read_us, r.free_us) > 0


def test_bench_cli_prints_three_tables(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_zpool.main(["--pages", "40", "--repeat", "1", "--markdown",
                             "--backend", "zbud"]) == 0
    out = capsys.readouterr().out
    assert out.count("| backend | comp |") == 3
    assert "| zbud | lz4 |" in out
    assert "same-filled" in out
