"""The bench's command line on small sizes: every mode, every corpus kind, every output form."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import acomp
from acomp.bench import measure
from acomp.bench.cli import main
from acomp.bench.drivers import resolve
from acomp.bench.report import Ticker
from acomp.corpus.sources import CorpusError, load_corpus, parse_maps
from acomp.internal import ScompAlg, crypto_register_scomp, crypto_unregister_scomp

SMALL = ["--pages", "24", "--repeat", "1"]


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    rc = main([*argv, "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    doc: dict[str, Any] = json.loads(out.out)
    return doc


def test_throughput_table_compares_with_lz4_scomp(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["--driver", "zstd", "--driver", "lz4-scomp", *SMALL])
    out = capsys.readouterr().out
    assert rc == 0
    assert "baseline  lz4-scomp" in out
    assert "zstd-scomp" in out
    assert "lz4-scomp" in out
    assert "1.00x" in out  # the baseline against itself
    assert "libraries" in out
    assert "lz4 " in out
    assert "cpu" in out
    assert f"kernel    {acomp.kernel()} modelled (era " in out  # acomp.eras


def test_json_is_complete_and_consistent(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, "--driver", "lz4", "--driver", "lzo-scomp", *SMALL)
    assert doc["mode"] == "throughput"
    assert doc["corpus"]["pages"] == 24
    assert doc["header"]["libraries"]["lz4"]
    assert doc["header"]["cpu_count"] >= 1
    assert (doc["header"]["kernel"], doc["header"]["era"]) == (acomp.kernel(),
                                                               acomp.kernel_era().name)
    by = {r["driver"]: r for r in doc["results"]}
    lz4 = next(r for r in doc["results"] if r["cra_name"] == "lz4")
    assert doc["baseline"] == ("lz4-scomp" if "lz4-scomp" in by else lz4["driver"])
    for r in doc["results"]:
        assert r["bytes_in"] == 24 * 4096
        assert 0 < r["bytes_out"] < r["bytes_in"]
        assert r["ratio"] == pytest.approx(r["bytes_in"] / r["bytes_out"])
        for op in ("compress", "decompress"):
            s = r[op]
            assert s["gb_per_s"] == pytest.approx(24 * 4096 / s["seconds"] / 1e9)
            assert s["pages_per_s"] == pytest.approx(24 / s["seconds"])
            assert 0 < s["latency_us"]["p50"] <= s["latency_us"]["p99"]
    base = by[doc["baseline"]]
    assert base["vs_baseline"] == {"compress": 1.0, "decompress": 1.0}
    lzo = by["lzo-scomp"]
    assert lzo["vs_baseline"]["compress"] == pytest.approx(
        lzo["compress"]["gb_per_s"] / base["compress"]["gb_per_s"])


def test_named_baseline_is_measured_too(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, "--driver", "zstd-scomp", "--baseline", "deflate-scomp", *SMALL)
    assert [r["driver"] for r in doc["results"]] == ["deflate-scomp", "zstd-scomp"]
    assert doc["baseline"] == "deflate-scomp"


def test_first_named_is_the_baseline_without_lz4(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, "--driver", "zstd-scomp", "--driver", "lzo", *SMALL)
    assert doc["baseline"] == "zstd-scomp"


@pytest.mark.parametrize("mode", ["throughput", "batch", "latency", "concurrency", "overhead"])
def test_plot_writes_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: str) -> None:
    png = tmp_path / f"{mode}.png"
    rc = main(["--mode", mode, "--driver", "lz4-scomp", "--pages", "8", "--repeat", "1",
               "--batch-sizes", "1,8", "--inflight", "1,4", "--plot", str(png)])
    assert rc == 0, capsys.readouterr().err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000


def test_corpus_path_cuts_files_into_zero_padded_pages(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_bytes(b"hello world " * 500)  # 6000 bytes: 2 pages
    (tmp_path / "d" / "b.bin").write_bytes(b"\x01" * 4096)  # exactly 1 page
    (tmp_path / "d" / "empty").write_bytes(b"")
    c = load_corpus(str(tmp_path / "d"), 100)
    assert c.n == 3
    assert bytes(c.pages[1, 6000 - 4096 :]) == bytes(4096 - (6000 - 4096))  # zero-padded tail
    assert bytes(c.pages[2]) == b"\x01" * 4096
    assert load_corpus(str(tmp_path / "d"), 2).n == 2  # --pages caps it
    assert load_corpus(str(tmp_path / "d" / "b.bin"), 10).n == 1  # a single file
    doc = run_json(capsys, "--corpus", str(tmp_path / "d"), "--driver", "lz4-scomp",
                   "--repeat", "1")
    assert doc["corpus"]["pages"] == 3
    assert "zero-padded" in doc["corpus"]["note"]


def test_corpus_path_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--corpus", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no such file" in err
    (tmp_path / "empty").mkdir()
    assert main(["--corpus", str(tmp_path / "empty")]) == 2
    assert "no data" in capsys.readouterr().err


def test_corpus_self_reads_this_process(capsys: pytest.CaptureFixture[str]) -> None:
    c = load_corpus("self", 64)
    assert c.n == 64
    assert c.pages.shape == (64, 4096)
    assert c.pages.any()  # real memory is not all zero
    doc = run_json(capsys, "--corpus", "self", "--pages", "16", "--driver", "lz4-scomp",
                   "--repeat", "1")
    assert doc["corpus"]["pages"] == 16
    assert doc["corpus"]["name"].startswith("self (pid ")


def test_corpus_pid_of_a_child_process(capsys: pytest.CaptureFixture[str]) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; x = b'z' * 10**6; "
                              "time.sleep(30)"])
    try:
        time.sleep(0.2)
        c = load_corpus(f"pid:{child.pid}", 32)
        assert c.n == 32
    finally:
        child.kill()
        child.wait()


def test_corpus_pid_nonexistent_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    pid = 4_000_000  # above pid_max's ceiling (2**22)
    assert main(["--corpus", f"pid:{pid}", "--driver", "lz4-scomp"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"no process with pid {pid}" in err
    assert main(["--corpus", "pid:notanumber", "--driver", "lz4-scomp"]) == 2
    assert "bad process id" in capsys.readouterr().err


def test_corpus_pid_not_permitted(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        Path("/proc/1/maps").read_text()
        os.close(os.open("/proc/1/mem", os.O_RDONLY))
    except PermissionError:
        pass
    else:
        pytest.skip("this process may read pid 1's memory: no refusal to observe")
    with pytest.raises(CorpusError, match="not permitted"):
        load_corpus("pid:1", 4)
    assert main(["--corpus", "pid:1", "--driver", "lz4-scomp"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "not permitted" in err


def test_parse_maps_keeps_private_writable_only() -> None:
    text = (
        "55d0c0000000-55d0c0021000 rw-p 00000000 00:00 0                          [heap]\n"
        "7f0000000000-7f0000001000 r--p 00000000 08:01 123                        /usr/lib/x.so\n"
        "7f0000001000-7f0000003000 rw-p 00001000 08:01 123                        /usr/lib/x.so\n"
        "7f0000003000-7f0000004000 rw-s 00000000 00:05 9                          /dev/shm/s\n"
        "7f0000004000-7f0000008000 rw-p 00000000 00:00 0 \n"
        "7ffc00000000-7ffc00002000 r--p 00000000 00:00 0                          [vvar]\n"
        "7ffc00010000-7ffc00031000 rw-p 00000000 00:00 0                          [stack]\n"
    )
    got = parse_maps(text)
    assert [(hi - lo) // 4096 for lo, hi, _ in got] == [33, 2, 4, 33]
    assert [name for *_, name in got] == ["[heap]", "/usr/lib/x.so", "", "[stack]"]


def test_batch_mode_sweeps_sizes_capped_by_pages(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, "--mode", "batch", "--driver", "lz4-scomp", "--driver", "zstd",
                   "--pages", "16", "--repeat", "1", "--batch-sizes", "1,4,64")
    pts = [(r["driver"], r["batch"]) for r in doc["results"]]
    assert pts == [("lz4-scomp", 1), ("lz4-scomp", 4), ("lz4-scomp", 16),
                   ("zstd-scomp", 1), ("zstd-scomp", 4), ("zstd-scomp", 16)]
    for r in doc["results"]:
        assert r["compress_gb_per_s"] > 0
        assert r["ratio"] > 1
    assert measure.batch_sizes(100000) == [1, 64, 1024, 65536]
    assert measure.batch_sizes(100) == [1, 64, 100]


def test_concurrency_mode(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, "--mode", "concurrency", "--driver", "lz4-scomp", "--pages", "16",
                   "--repeat", "1", "--inflight", "1,4,64")
    assert [r["in_flight"] for r in doc["results"]] == [1, 4, 16]
    assert all(r["decompress_pages_per_s"] > 0 for r in doc["results"])


def test_latency_mode_reports_four_percentiles(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, "--mode", "latency", "--driver", "lz4-scomp", *SMALL)
    lat = doc["results"][0]["compress"]["latency_us"]
    assert list(lat) == ["p50", "p90", "p99", "p99.9"]
    assert lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99.9"]
    main(["--mode", "latency", "--driver", "lz4-scomp", *SMALL])
    out = capsys.readouterr().out
    assert "p99.9" in out
    assert "decompress" in out


def test_overhead_mode_compares_lz4_lzo_zstd(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, "--mode", "overhead", "--pages", "16", "--repeat", "2")
    got = {r["cra_name"]: r for r in doc["results"]}
    assert set(got) == {"lz4", "lzo", "zstd"}
    for r in got.values():
        if "skipped" in r:
            continue
        assert r["passes"] == 2
        assert r["ratio_best"] == pytest.approx(
            r["acomp_ns_per_page_best"] / r["direct_ns_per_page_best"])
        # A measured, positive, finite ratio; how large it is is a benchmark's business, not a
        # test's (under load a 16-page run measured 0.29).
        assert 0 < r["ratio_best"] < float("inf")
        # Both positions of the debug-checks switch, side by side.
        assert r["ratio_off_best"] == pytest.approx(
            r["acomp_off_ns_per_page_best"] / r["direct_ns_per_page_best"])
        assert 0 < r["ratio_off_best"] < float("inf")
    main(["--mode", "overhead", "--pages", "8", "--repeat", "1", "--driver", "lz4"])
    out = capsys.readouterr().out
    assert "lz4.block.compress" in out
    assert "zstd" not in out.split("overhead")[-1]


def test_driver_names_resolve() -> None:
    assert resolve(["lz4-scomp"]) == ["lz4-scomp"]
    best = resolve(["lz4"])
    assert len(best) == 1
    assert best[0].startswith("lz4-")
    everything = resolve(["all"])
    assert everything[0] == "lz4-scomp"
    assert {"lz4-scomp", "lz4hc-scomp", "zstd-scomp", "deflate-scomp"} <= set(everything)
    assert resolve(["zstd", "zstd-scomp", "zstd"]) == ["zstd-scomp"]


def test_unknown_driver_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--driver", "no-such-thing", "--pages", "4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no-such-thing" in err
    assert "available" in err


def test_opencl_selects_only_opencl_drivers(capsys: pytest.CaptureFixture[str]) -> None:
    from acomp.bench.drivers import DriverSelectionError, available_algs, load_all_modules

    load_all_modules()
    if not any(a.cra_driver_name.endswith("-opencl") for a in available_algs()):
        with pytest.raises(DriverSelectionError, match="OpenCL"):
            resolve(["opencl"])
        assert main(["--driver", "opencl", "--pages", "4"]) == 2
        assert "no OpenCL driver" in capsys.readouterr().err
    else:
        names = resolve(["opencl"])
        assert names
        assert all(n.endswith("-opencl") for n in names)


class _Liar(ScompAlg):
    """Round trips every page but one: the bench must call that an error."""

    cra_name = "benchliar"
    cra_driver_name = "benchliar-scomp"

    def compress(self, tfm: Any, src: memoryview, dst: memoryview, ctx: Any) -> int:
        dst[: len(src)] = src
        return len(src)

    def decompress(self, tfm: Any, src: memoryview, dst: memoryview, ctx: Any) -> int:
        dst[: len(src)] = src
        if bytes(src[:8]) == bytes(8) and len(src) == 4096:
            dst[100] ^= 1  # one wrong byte in zero pages
        return len(src)


@pytest.fixture
def liar() -> Iterator[str]:
    alg = _Liar()
    assert crypto_register_scomp(alg) == 0
    yield alg.cra_driver_name
    assert crypto_unregister_scomp(alg) == 0


def test_a_wrong_byte_is_an_error_not_a_statistic(liar: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--driver", liar, "--pages", "32", "--repeat", "1"]) == 1
    err = capsys.readouterr().err
    assert "verification failed" in err
    assert "differs at byte 100" in err
    assert main(["--mode", "batch", "--driver", liar, "--pages", "32", "--repeat", "1",
                 "--batch-sizes", "8"]) == 1
    assert "verification failed" in capsys.readouterr().err


def test_progress_bar_appears_only_after_a_second() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=100)
    t = Ticker(console, 4, "work", enabled=True)
    t()
    assert buf.getvalue() == ""  # quick work: no bar
    t._t0 -= 2.0
    t()
    t.close()
    assert "work" in buf.getvalue()
    quiet = io.StringIO()
    q = Ticker(Console(file=quiet, force_terminal=True), 2, "json", enabled=False)
    q._t0 -= 2.0
    q()
    q.close()
    assert quiet.getvalue() == ""


def test_module_entry_points_in_a_fresh_process(tmp_path: Path) -> None:
    env = {**os.environ, "ACOMP_NO_HW": "1"}
    r = subprocess.run([sys.executable, "-m", "acomp.bench", "--pages", "8", "--repeat", "1",
                        "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    drivers = [x["driver"] for x in json.loads(r.stdout)["results"]]
    assert drivers[0] == "lz4-scomp"
    assert {"lz4hc-scomp", "zstd-scomp", "deflate-scomp"} <= set(drivers)
    assert "pyopencl" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "acomp", "bench", "--driver", "lz4-scomp",
                        "--pages", "4", "--repeat", "1", "--json"], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["results"][0]["driver"] == "lz4-scomp"


def test_import_acomp_imports_no_gpu_or_plot_library() -> None:
    code = ("import sys, acomp, acomp.bench, acomp.testing; "
            "print(sorted(m for m in ('pyopencl', 'matplotlib', 'rich.progress') "
            "if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    # the bench's report module uses rich (a core dependency); GPU and plotting stay out
    assert "pyopencl" not in r.stdout
    assert "matplotlib" not in r.stdout


def test_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--batch-sizes", "1,x"])
    assert e.value.code == 2
    with pytest.raises(SystemExit):
        main(["--mode", "throughput", "--bogus"])
    assert main(["--pages", "0"]) == 2


@pytest.mark.parametrize("mode", ["throughput", "concurrency", "batch", "overhead"])
def test_bench_runs_on_trio(capsys: pytest.CaptureFixture[str], mode: str) -> None:
    doc = run_json(capsys, "--backend", "trio", "--mode", mode, "--driver", "lz4-scomp",
                   "--pages", "8", "--repeat", "1", "--inflight", "1,4", "--batch-sizes", "4")
    assert doc["results"]
