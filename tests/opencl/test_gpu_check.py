"""scripts/gpu-check, the one script a lent GPU runs: its steps' time limits fit in 7 minutes.

No OpenCL needed: this reads the script (the full run's defaults, not --quick's)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu-check"
BUDGET_S = 7 * 60
SETUP_S = 15  # the wheels' install and the platform listing before the first limited step


def _limits() -> list[tuple[str, int]]:
    text = SCRIPT.read_text()
    steps = re.findall(r"\$\(limit ([A-Z0-9_]+) (\d+)\)", text)
    # a step inside `for FB in 0 1` runs twice
    loop = re.search(r"for FB in 0 1; do(.*?)\ndone", text, re.S)
    twice = set(re.findall(r"\$\(limit ([A-Z0-9_]+) \d+\)", loop.group(1))) if loop else set()
    return [(name, int(s) * (2 if name in twice else 1)) for name, s in steps]


def test_every_step_has_a_limit_and_they_fit_in_seven_minutes() -> None:
    limits = _limits()
    names = [n for n, _ in limits]
    assert len(names) == len(set(names)) >= 9, names  # one limit per step, none shared
    assert sum(s for _, s in limits) + SETUP_S <= BUDGET_S, limits
    # every python step runs under timeout: no unbounded step
    text = SCRIPT.read_text()
    for line in text.splitlines():
        if re.search(r"\$PY (scripts/|-m (pytest|acomp))", line):
            assert "timeout $(limit " in line, line


def test_the_script_parses() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], check=False).returncode == 0
