"""The headline: a device driver named and no mode runs it against lz4-scomp on one core and on
every core, by batch size, end to end and kernel-only, with where it overtakes each and one
line of conclusion (on a CPU OpenCL device: that the figures say nothing about a GPU)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import acomp
from acomp.bench.cli import main
from acomp.bench.device import Crossover, _conclusion, crossovers

RIVALS = {"1 core": {"compress": 1.0, "decompress": 2.0},
          "8 cores": {"compress": 6.0, "decompress": 12.0}}


def _pts(e2e: list[float], kernel: list[float | None]) -> list[dict[str, Any]]:
    return [{"driver": "dev", "batch": b, "compress_gb_per_s": g, "decompress_gb_per_s": g,
             "kernel_compress_gb_per_s": k, "kernel_decompress_gb_per_s": k}
            for b, g, k in zip([1, 64, 1024, 65536], e2e, kernel, strict=True)]


def _at(c: list[Crossover], direction: str, what: str, rival: str) -> int | None:
    (x,) = [x for x in c if (x.direction, x.measure, x.rival) == (direction, what, rival)]
    return x.batch


def test_crossovers_are_the_smallest_batch_that_wins() -> None:
    pts = _pts([0.1, 1.5, 7.0, 9.0], [None, 3.0, 20.0, 30.0])
    c = crossovers(pts, RIVALS)
    assert _at(c, "compress", "end-to-end", "1 core") == 64
    assert _at(c, "compress", "end-to-end", "8 cores") == 1024
    assert _at(c, "compress", "kernel-only", "1 core") == 64  # batch 1 reported no kernel time
    assert _at(c, "decompress", "end-to-end", "8 cores") is None  # 9.0 < 12.0: never
    assert _at(c, "decompress", "kernel-only", "8 cores") == 1024


def test_conclusion_says_from_which_batch_and_warns_on_a_cpu_device() -> None:
    pts = _pts([0.1, 1.5, 7.0, 9.0], [None, 3.0, 20.0, 30.0])
    c = crossovers(pts, RIVALS)
    gpu = _conclusion("dev", "GPU", c, pts, RIVALS, "lz4-scomp")
    assert "faster than lz4-scomp on 8 cores from batch 1024" in gpu
    assert "GPU" not in gpu
    assert gpu.count("\n") == 0  # one line
    slow = _pts([0.1, 0.2, 0.3, 0.2], [None, 0.5, 0.6, 0.6])
    cpu = _conclusion("dev", "CPU", crossovers(slow, RIVALS), slow, RIVALS, "lz4-scomp")
    assert "never beats lz4-scomp on 1 core" in cpu
    assert "0.30x" in cpu  # its best, at batch 1024
    assert "say nothing about a GPU" in cpu
    mid = _pts([0.1, 1.5, 2.0, 3.0], [None, 2.0, 4.0, 5.0])
    text = _conclusion("dev", "GPU", crossovers(mid, RIVALS), mid, RIVALS, "lz4-scomp")
    assert "from batch 64 but never on 8 cores" in text


def test_device_mode_needs_a_device_driver(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["device", "--driver", "lz4-scomp", "--pages", "8"]) == 2
    assert "needs a device driver" in capsys.readouterr().err


def test_a_cpu_driver_named_keeps_the_throughput_mode(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--driver", "lz4-scomp", "--pages", "8", "--repeat", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mode"] == "throughput"


@pytest.mark.gpu
@pytest.mark.skipif(not acomp.crypto_has_acomp("lz4-opencl"), reason="no OpenCL device")
def test_naming_a_device_runs_the_headline(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    png = tmp_path / "device.png"
    argv = ["--driver", "opencl", "--pages", "64", "--repeat", "1", "--batch-sizes", "1,64",
            "--cpu-cores", "2"]
    assert main([*argv, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["mode"] == "device"
    assert doc["baseline"] == "lz4-scomp"
    res = doc["results"]
    cpu = [r["cpu"] for r in res if "cpu" in r]
    assert [c["cores"] for c in cpu] == [1, 2]  # one core and all of them, same run
    rows = [r for r in res if r.get("driver") == "lz4-opencl" and "batch" in r]
    assert [r["batch"] for r in rows] == [1, 64]
    for r in rows:
        for rival, cores in (("1 core", cpu[0]), ("2 cores", cpu[1])):
            assert r["vs_cpu"][rival]["compress"] == pytest.approx(
                r["compress_gb_per_s"] / cores["compress_gb_per_s"])
    assert rows[1]["kernel_compress_gb_per_s"] > 0  # a batch is timed inside the device too
    (summary,) = [r for r in res if "conclusion" in r]
    assert len(summary["crossovers"]) == 8  # 2 directions x 2 measures x 2 rivals
    if summary["device_kind"] == "CPU":
        assert "say nothing about a GPU" in summary["conclusion"]
    assert main([*argv, "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "lz4-opencl compress, GB/s by batch size" in out
    assert "conclusion" in out
    assert "end-to-end overtakes" in out
    assert "DeviceInfo(" not in out  # the device in words
    assert "…" not in out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert png.stat().st_size > 0
