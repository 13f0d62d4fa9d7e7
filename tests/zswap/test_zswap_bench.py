"""``python -m acomp.bench zswap`` (and ``--mode zswap``) on small sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import acomp
from acomp.bench.cli import main
from zswap.bench.mode import cycle_pages, measure_cycle, measure_stores, zpool_version

SMALL = ["--driver", "lz4-scomp", "--working-set", "256", "--ram", "128", "--accesses", "600",
         "--tasks", "4", "--cpus", "2", "--cycle-pages", "48", "--repeat", "1"]


def test_zswap_bench_json(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["zswap", "--json", *SMALL, "--zpool", "zsmalloc", "--zpool", "zbud",
               "--skip", "stores"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["mode"] == "zswap"
    assert doc["kernel"] == acomp.kernel()  # the era switch (acomp.eras), 6.14 by default
    rows = doc["workload"]
    assert [(r["driver"], r["zpool"]) for r in rows] == [("lz4-scomp", "zsmalloc"),
                                                          ("lz4-scomp", "zbud")]
    for r in rows:
        assert r["lost"] == 0
        assert r["leaked_pages"] == 0
        assert r["accesses"] == 600
        assert 0 <= r["zswap_hit_rate"] <= 1
        assert r["store_p99_us"] >= r["store_p50_us"] > 0
    cyc = doc["cycle"]
    assert cyc["pages"] == 48
    assert cyc["ratio"] == pytest.approx(cyc["zswap_ns"] / cyc["bare_ns"])
    assert cyc["goal"] == 1.5
    assert cyc["checks"] is True  # the suite runs with the debug checks on
    assert [(c["zpool"], c["checks"]) for c in doc["cycles"]] == [
        (z, on) for z in ("zsmalloc", "zbud", "z3fold") for on in (True, False)]
    assert all(c["zswap_ns"] > 0 and c["pages"] == 48 for c in doc["cycles"])
    assert {c["zpool"]: c["version"] for c in doc["cycles"]} == {
        z: zpool_version(doc["kernel"], z) for z in ("zsmalloc", "zbud", "z3fold")}
    assert "stores" not in doc


def test_cycles_of_removed_zpools_run_on_the_last_version_with_them() -> None:
    """zbud and z3fold left in v6.15: a 6.15 or later bench cycles them on 6.14 (and says so)."""
    assert zpool_version("6.15", "zsmalloc") == "6.15"
    assert zpool_version("6.14", "zbud") == "6.14"
    for v in ("6.15", "6.18"):
        assert zpool_version(v, "zbud") == zpool_version(v, "z3fold") == "6.14"


def test_zswap_bench_table_and_plot(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    png = tmp_path / "zswap.png"
    rc = main(["--mode", "zswap", *SMALL, "--kernel", "5.12", "--plot", str(png),
               "--store-pages", "64", "--store-tasks", "8", "--store-cpus", "4"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "zswap under memory pressure" in out
    assert "store+load cycle" in out
    assert "concurrent stores" in out
    assert "lz4-scomp/zsmalloc" in out
    assert png.stat().st_size > 0


def test_zswap_bench_folios(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["zswap", "--json", *SMALL, "--skip", "stores", "--skip", "cycle",
               "--folio-size", "64K", "--kernel", "proposed", "--compress-batch", "8",
               "--driver", "faulty(lz4-scomp)", "--store-pages", "64"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    for r in doc["workload"]:
        assert r["folio_pages"] == 16
        assert r["lost"] == 0
        assert r["leaked_pages"] == 0
        assert r["swapout_pages_per_s"] > 0
        assert 0 <= r["compressor_share"] <= 1
    batched = [r for r in doc["folios"] if r["driver"] == "faulty(lz4-scomp)"]
    assert batched
    assert batched[0]["batch_size"] == 8
    for r in doc["folios"]:
        assert r["folio_kib"] == 64
        assert r["wrong"] == 0
        assert r["zswap_stores"] == r["pages"]  # prefix pages: every folio kept whole
        assert r["store_p99_us"] >= r["store_p50_us"] > 0
        assert 0 < r["compressor_share"] <= 1


def test_zswap_bench_bad_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zswap", "--zpool", "zblah"]) == 2
    assert "no zpool named zblah" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # the subcommand's own parser refuses it
        main(["zswap", "--kernel", "4.19"])
    assert e.value.code == 2
    assert "4.19 is not modelled; modelled eras: 5.11," in capsys.readouterr().err
    assert main(["zswap", "--tasks", "0"]) == 2
    assert "--tasks must be at least 1" in capsys.readouterr().err
    assert main(["zswap", "--folio-size", "3K"]) == 2
    assert "--folio-size" in capsys.readouterr().err
    assert main(["zswap", "--compress-batch", "0"]) == 2
    assert "--compress-batch must be 1..512" in capsys.readouterr().err


@pytest.mark.anyio
async def test_cycle_and_stores_are_verified() -> None:
    pages = cycle_pages(32)
    assert len(pages) == 32
    c = await measure_cycle(pages, repeat=2, version="6.9")
    assert c["zswap_ns"] > 0
    assert c["bare_ns"] > 0
    s = await measure_stores("lz4-scomp", pages, tasks=8, cpus=2)
    assert s["stored"] == 32
    assert s["pages_per_s"] > 0
