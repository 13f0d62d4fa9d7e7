"""The README's bench output is what the bench prints now: every line of its two quoted blocks
that carries no measured figure (titles, legends, column headers, footnotes) comes out of the
same command at 80 columns, word for word (the spacing follows the figures' widths)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from acomp import crypto_has_acomp
from acomp.bench.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"
SMALL = ["--pages", "16", "--repeat", "1", "--no-progress"]
#: A figure: a decimal, a ratio, a row that starts with a number (a batch size).
FIGURE = re.compile(r"\d\.\d|\d+x\b|^\d|overtakes|conclusion|at batch")


def quoted_blocks() -> list[list[str]]:
    """The fenced blocks of the README's "What it shows" section."""
    text = README.read_text(encoding="utf-8")
    m = re.search(r"^## What it shows\n(.*?)(?=^## )", text, re.M | re.S)
    assert m is not None, "README.md has no '## What it shows' section"
    return [block.splitlines() for block in re.findall(r"^```\n(.*?)^```", m.group(1),
                                                        re.M | re.S)]


def fixed_lines(block: list[str]) -> list[str]:
    """The lines of `block` that carry no measured figure (the conclusion's lines wrap where
    its figures fall, so they are checked as text)."""
    out, skip = [], 0
    for line in block:
        if line.startswith("conclusion"):
            skip = 3
        if skip:
            skip -= 1
            continue
        if not FIGURE.search(line) and set(line.strip()) != {"─"}:  # a rule: width varies
            out.append(" ".join(line.split()))
    return out


def printed(argv: list[str], monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]) -> str:
    """What the bench prints, at 80 columns, its words joined by single spaces."""
    monkeypatch.setenv("COLUMNS", "80")
    assert main([*argv, *SMALL]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    return " ".join(out.split())


def test_the_readme_quotes_two_blocks() -> None:
    blocks = quoted_blocks()
    assert len(blocks) == 2
    assert any(line.startswith("driver ") for line in blocks[0])
    assert any(line.startswith("conclusion ") for line in blocks[1])
    for block in blocks:
        assert len(fixed_lines(block)) >= 3
        assert max(len(line) for line in block) <= 80


needs_opencl = pytest.mark.skipif(not crypto_has_acomp("lz4-opencl"),
                                  reason="no lz4-opencl driver")


@pytest.mark.gpu
@needs_opencl
def test_the_throughput_table_is_what_the_bench_prints(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    out = printed(["throughput", "--driver", "lz4-scomp", "--driver", "lz4-opencl"], monkeypatch,
                  capsys)
    missing = [line for line in fixed_lines(quoted_blocks()[0]) if line not in out]
    assert missing == [], out


@pytest.mark.gpu
@needs_opencl
def test_the_device_headline_is_what_the_bench_prints(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    out = printed(["--driver", "opencl"], monkeypatch, capsys)
    missing = [line for line in fixed_lines(quoted_blocks()[1]) if line not in out]
    assert missing == [], out
    quoted = " ".join(" ".join(quoted_blocks()[1]).split())
    tail = "these figures say nothing about a GPU."
    if "CPU OpenCL device" in out:  # PoCL here, as in the README's run
        assert quoted.endswith(tail)
        assert out.endswith(tail)
