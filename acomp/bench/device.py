"""The headline: a device driver against lz4-scomp on one core and on every core, in one run.

No kernel counterpart; the question it answers is the one a user of a compression device asks
first: from which batch size is the device worth it? It runs the batch-size sweep
(`acomp.bench.measure.measure_batch`, the vectored ``crypto_acomp_batch_compress``) for each
device driver, and lz4-scomp through the request API in one process and in one process per
core at once (`acomp.bench.cpucores`: the same code path both times), then reports per batch
size the device's end-to-end throughput
(what a caller sees: transfers and host copies included) and its kernel-only throughput (the
device's own profiling), each against one core and against all cores; the smallest batch at
which the device overtakes each; and one line of conclusion. On a CPU-type OpenCL device
(PoCL) the device shares the cores it is compared with, and the conclusion says that these
figures say nothing about a GPU.

``python -m acomp.bench --driver opencl`` runs it (any device driver named, no mode given);
``python -m acomp.bench device`` names it.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from acomp import cpubatch
from acomp._constants import CRYPTO_ALG_ASYNC
from acomp.bench import cpucores, measure
from acomp.bench.drivers import find_alg
from acomp.bench.report import Ticker, compact_table, plot_sweep
from acomp.corpus.sources import Corpus

__all__ = ("Crossover", "crossovers", "device_kind", "is_device", "run_device")

DIRECTIONS = ("compress", "decompress")


def is_device(driver: str) -> bool:
    """A driver that runs on a device (asynchronous, with a `device_info`): lz4-opencl."""
    alg = find_alg(driver)
    return (alg is not None and bool(alg.cra_flags & CRYPTO_ALG_ASYNC)
            and getattr(alg, "device_info", None) is not None)


def device_kind(driver: str) -> str:
    """``GPU``, ``CPU``, ``ACCELERATOR``, ``OTHER``, or ``""`` when unknown."""
    alg = find_alg(driver)
    return str(getattr(getattr(alg, "device_info", None), "kind", "") or "")


@dataclass(frozen=True)
class Crossover:
    """The smallest batch at which `driver` beats `rival` in `direction`; None: never."""

    driver: str
    direction: str
    measure: str  # "end-to-end" or "kernel-only"
    rival: str  # "one core" or "N cores"
    batch: int | None


def crossovers(points: Sequence[dict[str, Any]], rivals: dict[str, dict[str, float]]
               ) -> list[Crossover]:
    """For one driver's sweep `points` (summaries), the smallest batch at which it beats each
    rival (``{"one core": {"compress": GB/s, ...}, "2 cores": ...}``), end to end and
    kernel-only."""
    out: list[Crossover] = []
    for direction in DIRECTIONS:
        for what, key in (("end-to-end", f"{direction}_gb_per_s"),
                          ("kernel-only", f"kernel_{direction}_gb_per_s")):
            for rival, gbps in rivals.items():
                won = [p["batch"] for p in points
                       if p.get(key) is not None and p[key] > gbps[direction]]
                out.append(Crossover(points[0]["driver"] if points else "", direction, what,
                                     rival, min(won) if won else None))
    return out


def _at(c: list[Crossover], direction: str, what: str, rival: str) -> int | None:
    return next((x.batch for x in c if (x.direction, x.measure, x.rival) == (direction, what,
                                                                              rival)), None)


def _conclusion(driver: str, kind: str, c: list[Crossover], points: list[dict[str, Any]],
                rivals: dict[str, dict[str, float]], base: str) -> str:
    names = list(rivals)
    one, every = names[0], names[-1]
    at_all = _at(c, "compress", "end-to-end", every)
    at_one = _at(c, "compress", "end-to-end", one)
    dec_all = _at(c, "decompress", "end-to-end", every)
    if at_all is not None and every != one:
        text = (f"{driver} compresses faster than {base} on {every} from batch {at_all}"
                + (f" (decompresses from {dec_all})" if dec_all is not None else "")
                + f": give it batches of {at_all} pages or more")
    elif at_one is not None:
        text = (f"{driver} beats {base} on {one} from batch {at_one}"
                + (f" but never on {every}" if every != one else "")
                + ": use it to offload the CPU, not for speed")
    else:
        best = max(points, key=lambda p: p["compress_gb_per_s"])
        text = (f"{driver} never beats {base} on {one} here (compress: best "
                f"{best['compress_gb_per_s'] / rivals[one]['compress']:.2f}x of it, at batch "
                f"{best['batch']}): use {base}")
    if kind == "CPU":
        text += (f". {driver} runs on a CPU OpenCL device here, sharing the cores it is "
                 "compared with: these figures say nothing about a GPU")
    return text + "."


def run_device(args: argparse.Namespace, drivers: list[str], base: str, corpus: Corpus,
               out: Any, err: Any, progress: bool) -> list[dict[str, Any]]:
    """The headline mode; `drivers` holds the device drivers and `base` (lz4-scomp)."""
    devices = [d for d in drivers if d != base and is_device(d)]
    sizes = measure.batch_sizes(corpus.n, args.batch_sizes)
    repeat = args.repeat or 3
    ncores = cpubatch.cores_count(args.cpu_cores, "--cpu-cores")
    core_counts = sorted({1, ncores})
    tick = Ticker(err, len(devices) * len(sizes) * repeat + len(core_counts), "device vs CPU",
                  progress)
    points: dict[str, list[dict[str, Any]]] = {}
    raw: dict[str, list[measure.BatchPoint]] = {}
    cpu: dict[int, cpucores.CoresResult] = {}
    try:
        for d in devices:
            tick.describe(d)
            raw[d] = anyio.run(lambda d=d: measure.measure_batch(  # type: ignore[misc]
                d, corpus.pages, sizes, repeat=repeat, tick=tick), backend=args.backend)
            points[d] = [p.summary() for p in raw[d]]
        for n in core_counts:
            tick.describe(f"{base} on {n} core{'s' if n > 1 else ''}")
            cpu[n] = anyio.run(lambda n=n: cpucores.measure_cores(  # type: ignore[misc]
                corpus.pages, base, n), backend=args.backend)
            tick()
    finally:
        tick.close()
    rivals = {_cores(n): {"compress": r.comp_gbps, "decompress": r.decomp_gbps}
              for n, r in cpu.items()}
    results: list[dict[str, Any]] = [{"cpu": r.summary()} for r in cpu.values()]
    lines: list[str] = []
    quiet = args.json or getattr(args, "csv", False)
    for d in devices:
        for p in points[d]:
            row = dict(p)
            row["vs_cpu"] = {rival: {k: p[f"{k}_gb_per_s"] / g[k] for k in DIRECTIONS}
                             for rival, g in rivals.items()}
            results.append(row)
        c = crossovers(points[d], rivals)
        kind = device_kind(d)
        conclusion = _conclusion(d, kind, c, points[d], rivals, base)
        results.append({"driver": d, "device_kind": kind,
                        "crossovers": [x.__dict__ for x in c], "conclusion": conclusion})
        lines.append(conclusion)
        if not quiet:
            _tables(out, d, points[d], rivals, base, c)
    if not quiet:
        for line in lines:
            out.print(f"[bold]conclusion[/bold] {line}")
    if args.plot:
        _plot(args.plot, corpus, raw, points, rivals, base)
    return results


def _cores(n: int) -> str:
    return "1 core" if n == 1 else f"{n} cores"


def _gb(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _x(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def _tables(out: Any, d: str, pts: list[dict[str, Any]], rivals: dict[str, dict[str, float]],
            base: str, c: list[Crossover]) -> None:
    names = list(rivals)
    cpu = "; ".join(f"{r} {g['compress']:.3f} / {g['decompress']:.3f}" for r, g in rivals.items())
    out.print(f"{base} (request API, one process per core): {cpu} GB/s (compress / decompress)")
    out.print("e2e: end to end, what a caller sees; kernel: the device's kernels alone; "
              + ", ".join(f"/{n.split()[0]}: ratio to {base} on {n}" for n in names))
    for direction in DIRECTIONS:
        t = compact_table(f"{d} {direction}, GB/s by batch size",
                      ["batch", "e2e", "kernel",
                       *[f"e2e/{n.split()[0]}" for n in names],
                       *[f"kern/{n.split()[0]}" for n in names]])
        for p in pts:
            e2e = p[f"{direction}_gb_per_s"]
            k = p[f"kernel_{direction}_gb_per_s"]
            t.add_row(str(p["batch"]), _gb(e2e), _gb(k),
                      *[_x(e2e / rivals[n][direction]) for n in names],
                      *[_x(k / rivals[n][direction] if k is not None else None)
                        for n in names])
        out.print(t)
        for what in ("end-to-end", "kernel-only"):
            at = [f"{n} at {b}" if (b := _at(c, direction, what, n)) is not None
                  else f"{n} never" for n in names]
            out.print(f"  {what} overtakes " + ", ".join(at))


def _plot(path: str, corpus: Corpus, raw: dict[str, list[measure.BatchPoint]],
          points: dict[str, list[dict[str, Any]]], rivals: dict[str, dict[str, float]],
          base: str) -> None:
    series: dict[str, tuple[list[float], list[float], list[float]]] = {}
    xs_all = sorted({float(p["batch"]) for pts in points.values() for p in pts})
    for d, pts in points.items():
        xs = [float(p["batch"]) for p in pts]
        series[f"{d} end to end"] = (
            xs, [p["compress_gb_per_s"] for p in pts], [p["decompress_gb_per_s"] for p in pts])
        if any(p["kernel_compress_gb_per_s"] for p in pts):
            series[f"{d} kernel only"] = (
                xs, [p["kernel_compress_gb_per_s"] or math.nan for p in pts],
                [p["kernel_decompress_gb_per_s"] or math.nan for p in pts])
    for rival, g in rivals.items():
        series[f"{base} on {rival}"] = (xs_all, [g["compress"]] * len(xs_all),
                                        [g["decompress"]] * len(xs_all))
    lat = {d: ([float(p.batch) for p in pts], [measure.percentiles(p.comp_call_ns)
                                               for p in pts])
           for d, pts in raw.items()}
    plot_sweep(path, f"acomp: device vs CPU, {corpus.name}, {corpus.n} pages", "batch size",
               series, lat, "compress call latency (µs)")
