"""examples/seed_report.py and examples/zswap_pressure.py, run as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from acomp import crypto_has_acomp

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(script: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True,
                          text=True, timeout=120, check=False, cwd=cwd)


def test_seed_report_shows_the_splat_the_corruption_and_the_fixes() -> None:
    p = run("seed_report.py", "--pages", "16", "--tasks", "4")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "BUG: sleeping function called from invalid context" in out
    assert "zs_map_object" in out  # where preemption was disabled
    assert "holds offset" in out
    assert "CORRUPTED" in out
    assert "v5.11: BROKEN: the splat and corrupted pages" in out
    for v in ("5.12", "6.9", "6.15", "6.18", "7.0"):
        assert f"  v{v}: clean" in out
    # v5.11's ___might_sleep has no preempt_count line; lockdep lists the zspage lock only.
    splat = out[out.index("BUG: sleeping function"):out.index("Call Trace:")]
    assert "preempt_count:" not in splat
    assert "(&zspage->lock), at: zs_map_object" in splat
    assert splat.index("Preemption disabled at:") < splat.index("CPU: 0 PID: ")
    assert "== v6.18, warn mode" in out
    assert "== v7.0, warn mode" in out


@pytest.mark.gpu
@pytest.mark.skipif(not crypto_has_acomp("lz4-opencl"), reason="no lz4-opencl driver")
def test_seed_report_on_the_device() -> None:
    p = run("seed_report.py", "--compressor", "opencl", "--pages", "16", "--tasks", "4")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "BUG: sleeping function called from invalid context" in p.stdout
    assert "  v6.9: clean" in p.stdout


def test_zswap_pressure_prints_counters_and_saves_a_plot(tmp_path: Path) -> None:
    png = tmp_path / "pressure.png"
    p = run("zswap_pressure.py", "--ram", "128", "--working-set", "256", "--accesses", "1000",
            "--tasks", "4", "--cpus", "2", "--zpool", "z3fold", "--plot", str(png))
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "/sys/kernel/debug/zswap at the end:" in out
    for name in ("pool_limit_hit", "written_back_pages", "stored_pages", "pool_total_size",
                 "reject_compress_poor", "decompress_fail"):
        assert name in out
    assert "zswap hit rate" in out
    assert "256 pages, 0 lost, 0 pages leaked" in out
    assert png.stat().st_size > 10_000


def test_zswap_pressure_with_large_folios_and_batches(tmp_path: Path) -> None:
    png = tmp_path / "folios.png"
    p = run("zswap_pressure.py", "--ram", "256", "--working-set", "512", "--accesses", "600",
            "--tasks", "4", "--cpus", "2", "--folio-size", "64K", "--kernel", "proposed",
            "--batch-size", "8", "--compressor", "faulty(lz4-scomp)", "--plot", str(png))
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "64K folios, zswap batch 8" in out
    assert "pages/s" in out
    assert "per 64K folio; compressor" in out
    assert "512 pages, 0 lost, 0 pages leaked" in out
    bad = run("zswap_pressure.py", "--folio-size", "48K")
    assert bad.returncode == 2
    assert "folio" in bad.stderr


def test_zswap_pressure_writes_no_file_unless_asked(tmp_path: Path) -> None:
    p = run("zswap_pressure.py", "--ram", "64", "--working-set", "128", "--accesses", "300",
            "--tasks", "2", "--cpus", "2", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "128 pages, 0 lost, 0 pages leaked" in p.stdout
    assert "plot " not in p.stdout
    assert list(tmp_path.iterdir()) == []


def test_every_example_flag_has_help() -> None:
    for script in ("zswap_pressure.py", "seed_report.py", "compress_tree.py"):
        p = run(script, "--help")
        assert p.returncode == 0, p.stderr
        lines = p.stdout.splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("options:"))
        # An option without help is a line of its own followed by the next option (or nothing).
        for i, line in enumerate(lines[start + 1:], start + 1):
            if line.startswith("  -"):
                nxt = lines[i + 1] if i + 1 < len(lines) else ""
                flag_only = len(line.split("  ")) <= 2  # no run of spaces before a help text
                assert not (flag_only and (nxt.startswith("  -") or not nxt.strip())), (
                    script, line)


def test_zswap_pressure_refuses_an_unknown_compressor() -> None:
    p = run("zswap_pressure.py", "--compressor", "nope")
    assert p.returncode == 2
    assert "no compressor" in p.stderr
