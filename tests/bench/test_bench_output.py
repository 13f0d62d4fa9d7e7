"""The bench's output: default tables that fit 80 columns (piped output is never widened),
``--wide`` for every column, ``--csv`` and ``--json`` with a schema version, the device in
words."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

import pytest

from acomp.bench.cli import main
from acomp.bench.report import SCHEMA, describe_device, flatten, write_csv

SMALL = ["--pages", "16", "--repeat", "1", "--no-progress"]
ZSWAP_SMALL = ["--working-set", "128", "--ram", "64", "--accesses", "200", "--tasks", "2",
               "--cpus", "2", "--cycle-pages", "16", "--repeat", "1", "--store-pages", "16",
               "--store-tasks", "2", "--store-cpus", "2"]

#: mode argv -> headers the compact table must show whole.
CASES = {
    "throughput": (["--driver", "lz4-scomp", "--driver", "zstd", "--driver", "deflate"],
                   ["driver", "ratio", "comp GB/s", "xbase", "dec GB/s", "p99 µs"]),
    "batch": (["--driver", "lz4-scomp", "--driver", "lz4hc", "--batch-sizes", "1,8"],
              ["driver", "batch", "comp GB/s", "xbase", "dec GB/s", "call p99 µs"]),
    "concurrency": (["--driver", "lz4-scomp", "--driver", "zstd", "--inflight", "1,4"],
                    ["driver", "in flight", "comp GB/s", "xbase", "dec GB/s"]),
    "latency": (["--driver", "lz4-scomp", "--driver", "deflate"],
                ["driver", "k", "op", "p50", "p99.9", "max"]),
    "overhead": ([], ["algorithm", "library call", "acomp", "direct", "best", "median"]),
    "zswap": ([*ZSWAP_SMALL, "--zpool", "zsmalloc", "--zpool", "z3fold"],
              ["driver/zpool", "stored", "ratio", "hits", "writeback", "p99 store/load",
               "lost"]),
}


def _lines_fit(out: str, width: int) -> None:
    assert "…" not in out  # nothing cut
    too_wide = [line for line in out.splitlines() if len(line) > width]
    assert not too_wide, too_wide


@pytest.mark.parametrize("mode", list(CASES))
def test_default_tables_fit_80_columns(mode: str, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    argv, headers = CASES[mode]
    assert main([mode, *argv, *(SMALL if mode != "zswap" else ["--no-progress"])]) == 0
    out = capsys.readouterr().out
    _lines_fit(out, 80)
    header_lines = [line for line in out.splitlines() if line.split()[:1] == [headers[0]]]
    assert header_lines, out
    for h in headers:  # every column there, whole, on its header line
        assert any(h in line for line in header_lines), (h, header_lines)
    for name in ("lz4-scomp", "zstd-scomp", "lz4hc-scomp", "deflate-scomp"):
        if name.split("-")[0] in " ".join(argv):
            assert name in out  # driver names never folded


def test_piped_output_is_not_widened(monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert main(["--driver", "lz4-scomp", *SMALL]) == 0
    _lines_fit(capsys.readouterr().out, 80)  # not a terminal: 80, as any pipe reader expects


def test_wide_shows_every_column(monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["--driver", "lz4-scomp", "--wide", *SMALL]) == 0
    out = capsys.readouterr().out
    for h in ("pages/s", "p50 µs", "p99 µs", "decomp GB/s", "vs base"):
        assert h in out
    assert "…" not in out
    assert max(len(line) for line in out.splitlines()) > 80  # asked for: room for all


def test_csv_has_a_schema_and_the_json_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--driver", "lz4-scomp", "--driver", "zstd", "--csv", *SMALL]) == 0
    out = capsys.readouterr().out
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["driver"] for r in rows] == ["lz4-scomp", "zstd-scomp"]
    assert list(rows[0])[:2] == ["schema", "mode"]
    assert {r["schema"] for r in rows} == {str(SCHEMA)}
    assert {r["mode"] for r in rows} == {"throughput"}
    assert float(rows[0]["vs_baseline.compress"]) == 1.0
    z = rows[1]
    assert float(z["vs_baseline.compress"]) == pytest.approx(
        float(z["compress.gb_per_s"]) / float(rows[0]["compress.gb_per_s"]), rel=1e-6)
    assert main(["--driver", "lz4-scomp", "--json", *SMALL]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == SCHEMA
    assert set(flatten(doc["results"][0])) == {k for k in rows[0] if k not in ("schema",
                                                                                 "mode")}


def test_csv_of_a_plugin_mode(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zswap", "--csv", "--no-progress", *ZSWAP_SMALL]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["part"] for r in rows] == ["workload", "cycle", "stores", "stores"][:len(rows)]
    assert rows[0]["lost"] == "0"
    assert {r["schema"] for r in rows} == {str(SCHEMA)}


def test_csv_and_json_are_one_or_the_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--csv", "--json"])
    assert e.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_write_csv_unions_columns() -> None:
    buf = io.StringIO()
    write_csv(buf, [{"a": 1, "n": {"x": 2}}, {"b": [1, 2]}], {"schema": 9})
    assert buf.getvalue().splitlines() == ["schema,a,n.x,b", "9,1,2,", '9,,,"[1, 2]"']


@dataclass
class _Info:
    platform: str
    device: str
    kind: str
    compute_units: int
    local_mem: int
    global_mem: int


def test_device_line_is_words() -> None:
    cpu = describe_device(_Info("Portable Computing Language", "pthread-haswell-AMD EPYC",
                                "CPU", 2, 524288, 6 * 2**30))
    assert cpu == ("pthread-haswell-AMD EPYC (Portable Computing Language): a CPU device, "
                   "2 compute units, 6.0 GiB (a CPU: no accelerator)")
    gpu = describe_device(_Info("NVIDIA CUDA", "NVIDIA H100 80GB HBM3", "GPU", 132, 49152,
                                80 * 2**30))
    assert gpu.startswith("NVIDIA H100 80GB HBM3 (NVIDIA CUDA): a GPU device, 132 compute")
    assert "_Info(" not in cpu + gpu
    assert describe_device("plain") == "plain"
