"""The bench's output: the header, rich tables, JSON, plots and a progress bar.

No kernel counterpart. Library versions come from package metadata, so no GPU library is
imported to print them; matplotlib is imported only when a plot is asked for.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from acomp.eras import kernel, kernel_era

__all__ = ("LIBRARIES", "SCHEMA", "Ticker", "compact_table", "describe_device", "flatten",
           "header_info", "plot", "plot_sweep", "print_header", "ratio_text", "write_csv")

#: Version of the bench's ``--json`` and ``--csv`` output; raised when a field changes meaning.
SCHEMA = 1

#: Distributions whose versions the header shows (import names differ: lzo, pyopencl, ...).
LIBRARIES = ("acomp", "lz4", "zstandard", "python-lzo", "pyopencl", "numpy")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def header_info(devices: dict[str, str] | None = None) -> dict[str, Any]:
    """Platform, Python, library versions, CPUs and (for device drivers) the device."""
    libs: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            libs[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            libs[name] = None
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "libraries": libs,
        "devices": devices or {},
        "kernel": kernel(),
        "era": kernel_era().name,
    }


def print_header(console: Console, info: dict[str, Any], extra: dict[str, str]) -> None:
    libs = ", ".join(f"{k} {v}" for k, v in info["libraries"].items() if v is not None)
    missing = [k for k, v in info["libraries"].items() if v is None]
    console.print(f"[bold]acomp bench[/bold]  {info['date']}")
    console.print(f"platform  {info['platform']}, {info['python']}")
    console.print(f"kernel    {info['kernel']} modelled (era {info['era']})")
    console.print(f"cpu       {info['cpu']} ({info['cpu_count']} CPUs, "
                  f"{info['cpus_usable']} usable)")
    console.print(f"libraries {libs}" + (f" (not installed: {', '.join(missing)})"
                                         if missing else ""))
    for drv, dev in info["devices"].items():
        console.print(f"device    {drv}: {dev}")
    for k, v in extra.items():
        console.print(f"{k:<9} {v}")


def describe_device(dev: Any) -> str:
    """A device in words: ``pthread-haswell-AMD EPYC (Portable Computing Language): a CPU
    device, 2 compute units, 5.8 GiB``; anything without those fields as its ``str``."""
    name = getattr(dev, "device", None)
    if not isinstance(name, str):
        return str(dev)
    kind = str(getattr(dev, "kind", "") or "")
    parts = [f"a {kind} device" if kind else "a device"]
    cu = getattr(dev, "compute_units", None)
    if cu:
        parts.append(f"{cu} compute units")
    mem = getattr(dev, "global_mem", None)
    if mem:
        parts.append(f"{mem / 2**30:.1f} GiB")
    text = f"{name} ({getattr(dev, 'platform', '?')}): {', '.join(parts)}"
    return text + (" (a CPU: no accelerator)" if kind == "CPU" else "")


def flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys (``vs_baseline.compress``); lists as JSON text."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif isinstance(v, (list, tuple)):
            out[key] = json.dumps(v, default=str)
        else:
            out[key] = v
    return out


def write_csv(stream: Any, rows: Sequence[dict[str, Any]], fixed: dict[str, Any]) -> None:
    """`rows` as CSV with a header line: the `fixed` columns first (``schema``, ``mode``: the
    same on every row), then every key any row has, in order of first appearance; empty
    where a row lacks one."""
    flat = [{**fixed, **flatten(r)} for r in rows]
    cols: dict[str, None] = dict.fromkeys(fixed)
    for r in flat:
        cols.update(dict.fromkeys(r))
    w = csv.DictWriter(stream, fieldnames=list(cols), restval="", lineterminator="\n")
    w.writeheader()
    w.writerows(flat)


class _CompactTable(Table):
    """Keeps its text columns at least as wide as their longest cell (up to 24 characters),
    so that narrowing them to fit never folds a driver name into slivers."""

    def add_row(self, *renderables: Any, **kwargs: Any) -> None:
        super().add_row(*renderables, **kwargs)
        for col, cell in zip(self.columns, renderables, strict=False):
            if col.overflow == "fold" and isinstance(cell, str):
                col.min_width = max(col.min_width or 0, min(len(cell), 24))


def compact_table(title: str, columns: Sequence[str], fold: Sequence[int] = (0,)) -> Table:
    """A table for 80 columns: no vertical rules, one space between columns, the columns in
    `fold` (left-aligned text) wrapping when they must; numbers never wrap."""
    t = _CompactTable(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1),
                      pad_edge=False, show_edge=False)
    for i, c in enumerate(columns):
        if i in fold:
            t.add_column(c, justify="left", overflow="fold")
        else:
            t.add_column(c, justify="right", no_wrap=True)
    return t


def ratio_text(value: float, base: float | None) -> str:
    if base is None or base <= 0:
        return "-"
    return f"{value / base:.2f}x"


def new_table(title: str, columns: Sequence[str]) -> Table:
    t = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right", no_wrap=True)
    return t


class Ticker:
    """A progress bar that appears only once the work has taken more than a second.

    Advanced between timed passes; refreshed by hand (no refresh thread competes with a pass).
    """

    def __init__(self, console: Console, total: int, description: str, enabled: bool) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console, transient=True, auto_refresh=False,
        )
        self._task = self._progress.add_task(description, total=total)
        self._t0 = time.monotonic()
        self._enabled = enabled
        self._shown = False

    def describe(self, description: str) -> None:
        self._progress.update(self._task, description=description)
        self._refresh()

    def __call__(self) -> None:
        self._progress.advance(self._task)
        self._refresh()

    def _refresh(self) -> None:
        if not self._enabled:
            return
        if not self._shown and time.monotonic() - self._t0 > 1.0:
            self._progress.start()
            self._shown = True
        if self._shown:
            self._progress.refresh()

    def close(self) -> None:
        if self._shown:
            self._progress.stop()
            self._shown = False


def plot(path: str, title: str, throughput: dict[str, tuple[str, list[float], list[float],
                                                            list[float]]],
         latencies: dict[str, Any], latency_label: str = "latency per request (µs)",
         labels: tuple[str, str] = ("compress", "decompress")) -> None:
    """Save a figure: throughput (left) and latency distributions (right, empirical CDF).

    `throughput` maps a driver to (x label, x values, compress GB/s, decompress GB/s); with a
    single x value per driver it is drawn as bars. `latencies` maps a series name to an array
    of nanoseconds.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    fig.suptitle(title)
    single = all(len(v[1]) <= 1 for v in throughput.values())
    if single:
        names = list(throughput)
        x = np.arange(len(names))
        comp = [v[2][0] if v[2] else 0.0 for v in throughput.values()]
        dec = [v[3][0] if v[3] else 0.0 for v in throughput.values()]
        ax1.bar(x - 0.2, comp, 0.4, label=labels[0])
        ax1.bar(x + 0.2, dec, 0.4, label=labels[1])
        ax1.set_xticks(x, names, rotation=30, ha="right")
    else:
        for name, (xlabel, xs, comp, dec) in throughput.items():
            line = ax1.plot(xs, comp, marker="o", label=f"{name} {labels[0]}")[0]
            ax1.plot(xs, dec, marker="s", linestyle="--", color=line.get_color(),
                     label=f"{name} {labels[1]}")
            ax1.set_xlabel(xlabel)
        ax1.set_xscale("log", base=2)
    ax1.set_ylabel("GB/s (uncompressed bytes)")
    ax1.set_title("throughput")
    ax1.grid(True, alpha=0.3)
    ax1.legend(fontsize="small")
    for name, arr in latencies.items():
        a = np.sort(np.asarray(arr, dtype=np.float64)) / 1000.0
        if not len(a):
            continue
        ax2.plot(a, np.arange(1, len(a) + 1) / len(a), label=name)
    ax2.set_xscale("log")
    ax2.set_xlabel(latency_label)
    ax2.set_ylabel("fraction ≤ x")
    ax2.set_title("latency distribution")
    ax2.grid(True, alpha=0.3)
    if latencies:
        ax2.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def stderr_console() -> Console:
    return Console(stderr=True)


def stdout_console(wide: bool = False) -> Console:
    """The console tables go to: the terminal's width (80 when piped: output is never widened
    unless `wide` is asked for, which makes room for every column)."""
    c = Console(file=sys.stdout)
    if wide:
        c.width = max(c.width, 200)
    return c


def plot_sweep(path: str, title: str, xlabel: str,
               throughput: dict[str, tuple[list[float], list[float], list[float]]],
               latencies: dict[str, tuple[list[float], list[dict[str, float]]]],
               latency_label: str = "latency (µs)") -> None:
    """Save a sweep's figure: GB/s against `xlabel` for every series (compress solid,
    decompress dashed; log scales) and latency percentiles (p50 solid, p99 dotted).

    `throughput` maps a series to (x values, compress GB/s, decompress GB/s); `latencies` maps
    a driver to (x values, `acomp.bench.measure.percentiles` at each x).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    fig.suptitle(title)
    for name, (xs, comp, dec) in throughput.items():
        line = ax1.plot(xs, comp, marker="o", label=f"{name} compress")[0]
        ax1.plot(xs, dec, marker="s", linestyle="--", color=line.get_color(),
                 label=f"{name} decompress")
    ax1.set_xscale("log", base=2)
    ax1.set_yscale("log")
    ax1.set_xlabel(xlabel)
    ax1.set_ylabel("GB/s (uncompressed bytes)")
    ax1.set_title("throughput")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize="x-small")
    for name, (xs, pcts) in latencies.items():
        p50 = [p.get("p50", 0.0) for p in pcts]
        p99 = [p.get("p99", 0.0) for p in pcts]
        line = ax2.plot(xs, p50, marker="o", label=f"{name} p50")[0]
        ax2.plot(xs, p99, marker="v", linestyle=":", color=line.get_color(),
                 label=f"{name} p99")
    ax2.set_xscale("log", base=2)
    ax2.set_yscale("log")
    ax2.set_xlabel(xlabel)
    ax2.set_ylabel(latency_label)
    ax2.set_title("latency percentiles")
    ax2.grid(True, which="both", alpha=0.3)
    if latencies:
        ax2.legend(fontsize="x-small")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
