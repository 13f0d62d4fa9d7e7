"""``python -m acomp.bench``: the command line, its modes and their tables.

No kernel counterpart (the closest are lzbench and DPDK's ``dpdk-test-compress-perf``). See
`acomp.bench` for what each mode measures.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import anyio

from acomp import __version__
from acomp._constants import PAGE_SIZE
from acomp.bench import cpucores, measure
from acomp.bench.device import is_device, run_device
from acomp.bench.drivers import (
    BASELINE,
    DriverSelectionError,
    find_alg,
    load_all_modules,
    module_reason,
    resolve,
    unavailable,
)
from acomp.bench.modes import GROUP, BenchMode, ModeError, discover, load, plugins
from acomp.bench.report import (
    SCHEMA,
    Ticker,
    compact_table,
    describe_device,
    header_info,
    new_table,
    plot,
    plot_sweep,
    print_header,
    ratio_text,
    stderr_console,
    stdout_console,
    write_csv,
)
from acomp.corpus.sources import Corpus, CorpusError, load_corpus

__all__ = ("CRYPTO_MODES", "DEFAULT_PAGES", "MODES", "add_common_arguments", "all_modes",
           "build_parser", "main")

#: Pages of the built-in corpus when ``--pages`` is not given: about 10-20 s for every CPU
#: driver on a small machine (the default run compresses and decompresses them 3 times each).
DEFAULT_PAGES = 8192
#: The crypto layer's own modes (``zswap`` and others are plug-ins: `acomp.bench.modes`).
CRYPTO_MODES = ("throughput", "device", "batch", "concurrency", "latency", "overhead")
MODES = CRYPTO_MODES
#: The algorithms whose framework overhead is compared with their library.
OVERHEAD_ALGS = ("lz4", "lzo", "zstd")

_MODE_HELP = {
    "throughput": "every page as its own request: GB/s, ratio, p99 latency (the default)",
    "device": "a device driver vs lz4-scomp on one core and all cores, by batch size (the "
              "default when a device driver is named)",
    "batch": "a batch-size sweep through crypto_acomp_batch_compress, with the CPU's cores",
    "concurrency": "an in-flight sweep through Compressor.compress_many(limit=k)",
    "latency": "p50, p90, p99 and p99.9 per request",
    "overhead": "lz4, lzo and zstd through acomp as zswap calls it vs their library directly",
}

T = TypeVar("T")


def _int_list(text: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of integers: {text!r}") from None
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"need positive integers: {text!r}")
    return vals


def add_common_arguments(p: argparse.ArgumentParser,
                         help: Mapping[str, str] | None = None) -> None:
    """The flags every mode takes (a plug-in mode reads them from its namespace); `help`
    replaces the help text of those whose meaning differs in the mode."""
    h = dict(help or {})
    p.add_argument("--driver", action="append", default=[], metavar="NAME",
                   help=h.get("--driver", "driver to run (repeatable): a cra_name (lz4: the one "
                        "crypto_alloc_acomp picks), a driver name (lz4-scomp, lz4-opencl), "
                        "'opencl' (every *-opencl driver) or 'all' (the default)"))
    p.add_argument("--pages", type=int, default=None, metavar="N",
                   help=h.get("--pages", f"pages to use (default {DEFAULT_PAGES}; other "
                                         "corpora: at most this many)"))
    p.add_argument("--seed", type=int, default=0,
                   help=h.get("--seed", "seed of the built-in corpus"))
    p.add_argument("--repeat", type=int, default=None, metavar="R",
                   help=h.get("--repeat", "timed passes per measurement; the best is reported "
                                          "(default 3; 7 in overhead mode)"))
    p.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio",
                   help="event loop to run on")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true",
                     help=f"print JSON to stdout, nothing else (schema {SCHEMA})")
    fmt.add_argument("--csv", action="store_true",
                     help=f"print the results as CSV to stdout, nothing else (a header line; "
                          f"columns schema ({SCHEMA}) and mode first)")
    p.add_argument("--wide", action="store_true",
                   help="every column (pages/s, p50, kernel times, ...); the default table fits "
                        "80 columns")
    p.add_argument("--plot", metavar="FILE.png", help="save throughput and latency plots")
    p.add_argument("--no-progress", action="store_true", help="never show a progress bar")


def _add_crypto_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--baseline", metavar="DRIVER",
                   help=f"driver the others are compared with (default: {BASELINE} when run, "
                        "else the first)")
    p.add_argument("--corpus", default="builtin", metavar="SPEC",
                   help="builtin (default), PATH (files or directories; the last partial page "
                        "of each file is zero-padded), self, or pid:N (private writable memory)")
    p.add_argument("--depth", type=int, default=None, metavar="K",
                   help="requests in flight in throughput/latency modes (default: 1 for a "
                        "synchronous driver, 64 for an asynchronous one)")
    p.add_argument("--batch-sizes", type=_int_list, default=[1, 64, 1024, 65536], metavar="LIST",
                   help="batch mode sweep, capped by --pages (default 1,64,1024,65536)")
    p.add_argument("--inflight", type=_int_list, default=[1, 4, 16, 64, 256, 1024],
                   metavar="LIST", help="concurrency mode sweep (default 1,4,16,64,256,1024)")
    p.add_argument("--cpu-cores", type=int, default=None, metavar="N",
                   help="batch mode: also run the baseline CPU driver on N worker processes at "
                        "once (0: every core, os.cpu_count(), as ACOMP_BATCH_CORES=0; default: "
                        "only when a device driver is measured; negative: an error)")


def _run_crypto_mode(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except _Fail as e:
        print(f"acomp.bench: {e}", file=sys.stderr)
        return e.code
    except (CorpusError, DriverSelectionError) as e:
        print(f"acomp.bench: error: {e}", file=sys.stderr)
        return 2
    except measure.VerifyError as e:
        print(f"acomp.bench: verification failed: {e}", file=sys.stderr)
        return 1


def _builtin_modes() -> dict[str, BenchMode]:
    return {name: BenchMode(name, _MODE_HELP[name], _add_crypto_arguments, _run_crypto_mode)
            for name in CRYPTO_MODES}


def all_modes() -> tuple[dict[str, BenchMode], dict[str, str]]:
    """The crypto layer's modes and every installed plug-in, imported
    (`acomp.bench.modes.discover`); and ``{name: why}`` for broken plug-ins."""
    found = _builtin_modes()
    found_plugins, broken = discover()
    for name, mode in found_plugins.items():
        found.setdefault(name, mode)  # a plug-in never replaces a built-in mode
    return found, broken


def _version() -> str:
    return f"acomp.bench (acomp {__version__})"


def build_parser(mode: BenchMode | None = None,
                 available: dict[str, BenchMode] | None = None) -> argparse.ArgumentParser:
    """The parser of one mode's subcommand, or (`mode` None) the top level's, which lists
    `available` (default: every mode, plug-ins imported)."""
    if mode is not None:
        p = argparse.ArgumentParser(
            prog=f"python -m acomp.bench {mode.name}",
            description=mode.description or mode.help,
            epilog=f"The same as python -m acomp.bench --mode {mode.name}.")
        add_common_arguments(p, mode.common_help)
        mode.add_arguments(p)
        return p
    if available is None:
        available, broken = all_modes()
    else:
        broken = {}
    width = max(len(n) for n in [*available, *broken])
    listing = "\n".join([f"  {n:<{width}}  {m.help}" for n, m in available.items()]
                        + [f"  {n:<{width}}  (broken: {why})" for n, why in broken.items()])
    p = argparse.ArgumentParser(
        prog="python -m acomp.bench",
        description="Benchmark acomp drivers on 4 KiB pages; every timed round trip is verified.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"modes (python -m acomp.bench MODE --help shows a mode's own flags):\n{listing}"
               f"\n\nPlug-in modes come from the {GROUP} entry points.")
    p.add_argument("--version", action="version", version=_version())
    p.add_argument("--mode", choices=[*available, *broken], default=None,
                   help="the mode, as a flag (the same as giving it first, as a subcommand)")
    add_common_arguments(p)
    _add_crypto_arguments(p)
    return p


class _Fail(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _split_mode(argv: list[str]) -> tuple[BenchMode | None, list[str]]:
    """(mode, the rest) from ``MODE ...`` or ``... --mode MODE ...``; (None, argv) if neither.
    Only the chosen plug-in is imported."""
    name: str | None = None
    rest = argv
    if argv and not argv[0].startswith("-"):
        name, rest = argv[0], argv[1:]
    else:
        for i, a in enumerate(argv):
            if a == "--mode" and i + 1 < len(argv):
                name, rest = argv[i + 1], argv[:i] + argv[i + 2:]
                break
            if a.startswith("--mode="):
                name, rest = a.split("=", 1)[1], argv[:i] + argv[i + 1:]
                break
    if name is None:
        return None, rest
    builtin = _builtin_modes()
    if name in builtin:
        return builtin[name], rest
    eps = plugins()
    if name not in eps:
        raise _Fail(2, f"error: no mode {name!r} (modes: {', '.join([*builtin, *eps])}; "
                       f"plug-in modes come from the {GROUP} entry points of installed "
                       "packages: after a change to pyproject.toml, reinstall, e.g. make setup)")
    try:
        return load(eps[name]), rest
    except ModeError as e:
        raise _Fail(2, f"error: mode {name!r} is installed but broken: {e}") from None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        mode, rest = _split_mode(argv)
    except _Fail as e:
        print(f"acomp.bench: {e}", file=sys.stderr)
        return e.code
    if mode is None:
        # Only --help needs the plug-ins imported (for their one-line help).
        wants_help = any(a in ("-h", "--help") for a in rest)
        available = None if wants_help else {**_builtin_modes(),
                                             **{n: _UNLOADED for n in plugins()}}
        args = build_parser(None, available).parse_args(rest)
        mode = _builtin_modes()["throughput"]
        args.mode_given = False  # a device driver named: the headline (device) mode instead
    else:
        args = build_parser(mode).parse_args(rest)
        args.mode_given = True
    args.mode = mode.name
    try:
        return int(mode.run(args) or 0)
    except KeyboardInterrupt:
        return 130


def _not_loaded(args: argparse.Namespace) -> int:
    raise AssertionError("a plug-in placeholder never runs")


#: Stands for a plug-in that is not imported (the top-level parser needs only its name).
_UNLOADED = BenchMode("(plug-in)", "", lambda p: None, _not_loaded)


def _run_async(args: argparse.Namespace, fn: Callable[[], Awaitable[T]]) -> T:
    return anyio.run(fn, backend=args.backend)


def _baseline(args: argparse.Namespace, drivers: list[str]) -> str:
    if args.baseline:
        base = resolve([args.baseline])[0]
        if base not in drivers:
            drivers.insert(0, base)
        return base
    return BASELINE if BASELINE in drivers else drivers[0]


#: Bytes the bench holds per corpus page at most (the page, its compressed copy, the round
#: trip's output and the batch arrays): what --pages is checked against.
_BYTES_PER_PAGE = 4 * PAGE_SIZE


def check_pages(pages: int | None, memory: int | None = None) -> None:
    """--pages: at least 1, and no more than this machine's memory holds (a clear error, not
    numpy's MemoryError)."""
    if pages is None:
        return
    if pages < 1:
        raise _Fail(2, "error: --pages must be at least 1")
    if memory is None:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    most = max(1, memory // _BYTES_PER_PAGE)
    if pages > most:
        raise _Fail(2, f"error: --pages {pages} needs about "
                       f"{pages * _BYTES_PER_PAGE / 2**30:,.0f} GiB; this machine has "
                       f"{memory / 2**30:,.1f} GiB: at most {most:,} pages")


def check_cpu_cores(cores: int | None, mode: str) -> None:
    """--cpu-cores: 0 (every core, as documented and used by scripts/gpu-check) or a positive
    count (the device headline passes it to every mode, so no mode is refused here)."""
    if cores is None:
        return
    if cores < 0:
        raise _Fail(2, "error: --cpu-cores must be 0 (every core) or a positive count")


def _run(args: argparse.Namespace) -> int:
    check_pages(args.pages)
    check_cpu_cores(args.cpu_cores, args.mode)
    if args.repeat is not None and args.repeat < 1:
        raise _Fail(2, "error: --repeat must be at least 1")
    out = stdout_console(wide=args.wide)
    err = stderr_console()
    as_csv = bool(getattr(args, "csv", False))
    args.json = args.json or as_csv  # the modes print no table for either
    show_progress = not args.json and not args.no_progress

    if args.mode == "overhead":
        drivers: list[str] = []
        base = ""
    else:
        drivers = resolve(args.driver)
        if (args.mode == "throughput" and not getattr(args, "mode_given", True) and args.driver
                and any(is_device(d) for d in drivers)):
            args.mode = "device"  # the user's question: is the device worth it, from when?
        if args.mode == "device":
            if not any(is_device(d) for d in drivers):
                raise _Fail(2, "error: device mode needs a device driver (--driver opencl); "
                               "none of " + ", ".join(drivers) + " is one")
            if BASELINE not in drivers:
                drivers.append(BASELINE)
            args.baseline = args.baseline or BASELINE
        base = _baseline(args, drivers)
    corpus = load_corpus(args.corpus, args.pages or DEFAULT_PAGES, args.seed)
    devices = {}
    for d in drivers:
        alg = find_alg(d)
        dev = getattr(alg, "device_info", None) if alg is not None else None
        if dev is not None:
            devices[d] = describe_device(dev)
    info = header_info(devices)
    info["unavailable"] = unavailable()
    extra = {"corpus": f"{corpus.name}: {corpus.n} pages ({corpus.nbytes / 2**20:.1f} MiB)"
             + (f"; {corpus.note}" if corpus.note else ""),
             "mode": args.mode}
    if base:
        extra["baseline"] = base
    if info["unavailable"]:
        extra["not run"] = "; ".join(info["unavailable"])
    if not args.json:
        print_header(out, info, extra)

    modes = {"throughput": _throughput, "latency": _throughput, "batch": _batch,
             "concurrency": _concurrency, "overhead": _overhead, "device": run_device}
    result = modes[args.mode](args, drivers, base, corpus, out, err, show_progress)
    if as_csv:
        write_csv(sys.stdout, result, {"schema": SCHEMA, "mode": args.mode})
    elif args.json:
        import json

        doc = {"bench": "acomp", "schema": SCHEMA, "mode": args.mode, "header": info,
               "corpus": {"name": corpus.name, "pages": corpus.n, "bytes": corpus.nbytes,
                          "note": corpus.note},
               "baseline": base or None, "results": result}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    elif args.plot:
        out.print(f"plot      {args.plot}")
    return 0


def _ticker(err: Any, total: int, what: str, enabled: bool) -> Ticker:
    return Ticker(err, total, what, enabled)


# --------------------------------------------------------------------------------------------
# throughput and latency


def _throughput(args: argparse.Namespace, drivers: list[str], base: str, corpus: Corpus,
                out: Any, err: Any, progress: bool) -> list[dict[str, Any]]:
    repeat = args.repeat or 3
    tick = _ticker(err, len(drivers) * repeat * 2, "bench", progress)
    runs: list[measure.DriverRun] = []
    try:
        for d in drivers:
            tick.describe(d)
            runs.append(_run_async(args, lambda d=d: measure.measure_driver(  # type: ignore[misc]
                d, corpus.pages, repeat=repeat, depth=args.depth, tick=tick)))
    finally:
        tick.close()
    b = next(r for r in runs if r.driver == base)
    results = []
    for r in runs:
        s = r.summary()
        s["vs_baseline"] = {"compress": r.comp_gbps / b.comp_gbps,
                            "decompress": r.decomp_gbps / b.decomp_gbps}
        results.append(s)
    if not args.json:
        if args.mode == "latency":
            _latency_table(out, runs, args.wide)
        else:
            _throughput_table(out, runs, b, args.wide)
    if args.plot:
        thr = {r.driver: ("", [0.0], [r.comp_gbps], [r.decomp_gbps]) for r in runs}
        lat: dict[str, Any] = {}
        for r in runs:
            lat[f"{r.driver} compress"] = r.comp_lat_ns
            lat[f"{r.driver} decompress"] = r.decomp_lat_ns
        plot(args.plot, f"acomp bench: {corpus.name}, {corpus.n} pages", thr, lat)
    return results


def _us(v: float) -> str:
    return f"{v:.1f}" if v < 100 else f"{v:,.0f}"


def _throughput_table(out: Any, runs: list[measure.DriverRun], b: measure.DriverRun,
                      wide: bool = False) -> None:
    if not wide:
        t = compact_table(f"throughput, best of passes; xbase: ratio to {b.driver} in this run; "
                          "p99 per request, compress/decompress",
                          ["driver", "ratio", "comp GB/s", "xbase", "dec GB/s", "xbase",
                           "p99 µs"])
        for r in runs:
            cl, dl = measure.percentiles(r.comp_lat_ns), measure.percentiles(r.decomp_lat_ns)
            t.add_row(r.driver + ("*" if r.is_async else ""), f"{r.ratio:.2f}",
                      f"{r.comp_gbps:.3f}", ratio_text(r.comp_gbps, b.comp_gbps),
                      f"{r.decomp_gbps:.3f}", ratio_text(r.decomp_gbps, b.decomp_gbps),
                      f"{_us(cl['p99'])}/{_us(dl['p99'])}")
        out.print(t)
        asyncs = [r for r in runs if r.is_async]
        if asyncs:
            out.print("* asynchronous: " + ", ".join(f"{r.driver} {r.depth} in flight"
                                                     for r in asyncs) + "; --wide for more")
        return
    t = new_table(
        f"throughput (best of passes; ratios to {b.driver} in this run; latency per request)",
        ["driver", "ratio", "comp GB/s", "vs base", "pages/s", "p50 µs", "p99 µs",
         "decomp GB/s", "vs base", "pages/s", "p50 µs", "p99 µs"])
    for r in runs:
        cl, dl = measure.percentiles(r.comp_lat_ns), measure.percentiles(r.decomp_lat_ns)
        name = r.driver + (f" (async, {r.depth} in flight)" if r.is_async else "")
        t.add_row(name, f"{r.ratio:.2f}",
                  f"{r.comp_gbps:.3f}", ratio_text(r.comp_gbps, b.comp_gbps),
                  f"{r.pages / r.comp_s:,.0f}", f"{cl['p50']:.1f}", f"{cl['p99']:.1f}",
                  f"{r.decomp_gbps:.3f}", ratio_text(r.decomp_gbps, b.decomp_gbps),
                  f"{r.pages / r.decomp_s:,.0f}", f"{dl['p50']:.1f}", f"{dl['p99']:.1f}")
    out.print(t)


def _latency_table(out: Any, runs: list[measure.DriverRun], wide: bool = False) -> None:
    if wide:
        t = new_table("latency per request, µs (submission to completion, all passes)",
                      ["driver", "in flight", "op", "p50", "p90", "p99", "p99.9", "mean", "max"])
    else:
        t = compact_table("latency per request, µs (submission to completion, all passes; "
                          "k: requests in flight)",
                          ["driver", "k", "op", "p50", "p90", "p99", "p99.9", "max"])
    for r in runs:
        for op, lat in (("compress", r.comp_lat_ns), ("decompress", r.decomp_lat_ns)):
            p = measure.percentiles(lat)
            if not wide:
                t.add_row(r.driver, str(r.depth), op,
                          *[_us(p[k]) for k in ("p50", "p90", "p99", "p99.9")],
                          _us(lat.max() / 1000))
                continue
            t.add_row(r.driver, str(r.depth), op, f"{p['p50']:.1f}", f"{p['p90']:.1f}",
                      f"{p['p99']:.1f}", f"{p['p99.9']:.1f}", f"{lat.mean() / 1000:.1f}",
                      f"{lat.max() / 1000:.1f}")
    out.print(t)


# --------------------------------------------------------------------------------------------
# sweeps


def _sweep(args: argparse.Namespace, drivers: list[str], err: Any, progress: bool, label: str,
           steps: int, measure: Callable[[str, int, Any], Awaitable[Any]]) -> dict[str, Any]:
    """Run `measure(driver, repeat, tick)` for each driver under one progress bar."""
    repeat = args.repeat or 3
    tick = _ticker(err, len(drivers) * steps * repeat, label, progress)
    points: dict[str, Any] = {}
    try:
        for d in drivers:
            tick.describe(d)
            points[d] = _run_async(args, lambda d=d: measure(d, repeat, tick))  # type: ignore[misc]
    finally:
        tick.close()
    return points


# --------------------------------------------------------------------------------------------
# batch-size sweep


def _batch(args: argparse.Namespace, drivers: list[str], base: str, corpus: Corpus, out: Any,
           err: Any, progress: bool) -> list[dict[str, Any]]:
    sizes = measure.batch_sizes(corpus.n, args.batch_sizes)
    points: dict[str, list[measure.BatchPoint]] = _sweep(
        args, drivers, err, progress, "batch", len(sizes),
        lambda d, repeat, tick: measure.measure_batch(d, corpus.pages, sizes, repeat=repeat,
                                                     tick=tick))
    cores = None
    want_cores = args.cpu_cores if args.cpu_cores is not None else (
        0 if any(d.endswith("-opencl") for d in drivers) else None)
    if want_cores is not None and not base.endswith("-opencl"):
        cores = _run_async(args, lambda: cpucores.measure_cores(
            corpus.pages, base, want_cores or None))
    bmap = {p.batch: p for p in points[base]}
    results: list[dict[str, Any]] = []
    t = new_table(f"batch-size sweep (crypto_acomp_batch_compress; ratios to {base} at the same "
                  "batch size)", ["driver", "batch", "comp GB/s", "vs base", "kernel comp",
                                  "decomp GB/s", "vs base", "kernel decomp", "comp pages/s",
                                  "call p50 µs", "call p99 µs"])

    def gb(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    c = compact_table(f"batch-size sweep, crypto_acomp_batch_compress; xbase: ratio to {base} "
                      "at the same batch size", ["driver", "batch", "comp GB/s", "xbase",
                                                  "dec GB/s", "xbase", "call p99 µs"])

    for d, pts in points.items():
        for p in pts:
            s = p.summary()
            bp = bmap[p.batch]
            s["vs_baseline"] = {
                "compress": s["compress_gb_per_s"] / bp.summary()["compress_gb_per_s"],
                "decompress": s["decompress_gb_per_s"] / bp.summary()["decompress_gb_per_s"]}
            if cores is not None:
                s["vs_all_cores"] = {
                    "compress": s["compress_gb_per_s"] / cores.comp_gbps,
                    "decompress": s["decompress_gb_per_s"] / cores.decomp_gbps}
            results.append(s)
            cc = measure.percentiles(p.comp_call_ns)
            t.add_row(d, str(p.batch), f"{s['compress_gb_per_s']:.3f}",
                      f"{s['vs_baseline']['compress']:.2f}x",
                      gb(s["kernel_compress_gb_per_s"]), f"{s['decompress_gb_per_s']:.3f}",
                      f"{s['vs_baseline']['decompress']:.2f}x",
                      gb(s["kernel_decompress_gb_per_s"]),
                      f"{s['compress_pages_per_s']:,.0f}", f"{cc['p50']:.1f}",
                      f"{cc['p99']:.1f}")
            c.add_row(d, str(p.batch), f"{s['compress_gb_per_s']:.3f}",
                      f"{s['vs_baseline']['compress']:.2f}x", f"{s['decompress_gb_per_s']:.3f}",
                      f"{s['vs_baseline']['decompress']:.2f}x", _us(cc["p99"]))
    if cores is not None:
        results.append({"all_cores": cores.summary()})
        t.add_row(f"{base} ×{cores.cores} cores", "-", f"{cores.comp_gbps:.3f}", "", "-",
                  f"{cores.decomp_gbps:.3f}", "", "-", "", "", "")
        c.add_row(f"{base}×{cores.cores}", "all", f"{cores.comp_gbps:.3f}", "",
                  f"{cores.decomp_gbps:.3f}", "", "")
        # The batch size from which each device driver beats one CPU core (the baseline).
        for d, pts in points.items():
            if d == base:
                continue
            over = [p.batch for p in pts
                    if p.summary()["compress_gb_per_s"] > bmap[p.batch].summary()[
                        "compress_gb_per_s"]]
            results.append({"driver": d, "overtakes_one_core_at_batch": min(over) if over
                            else None})
    if not args.json:
        out.print(t if args.wide else c)
        for r in results:
            if "overtakes_one_core_at_batch" in r:
                b = r["overtakes_one_core_at_batch"]
                out.print(f"{r['driver']} overtakes one core of {base} at batch "
                          f"{b if b is not None else '(never, in this sweep)'}")
    if args.plot:
        # Throughput against batch size for every driver, and call latency percentiles.
        sweep = {d: ([float(p.batch) for p in pts],
                     [p.summary()["compress_gb_per_s"] for p in pts],
                     [p.summary()["decompress_gb_per_s"] for p in pts])
                 for d, pts in points.items()}
        pcts = {d: ([float(p.batch) for p in pts],
                    [measure.percentiles(p.comp_call_ns) for p in pts])
                for d, pts in points.items()}
        plot_sweep(args.plot, f"acomp batch sweep: {corpus.name}, {corpus.n} pages",
                   "batch size", sweep, pcts, "compress call latency (µs)")
    return results


# --------------------------------------------------------------------------------------------
# in-flight sweep


def _concurrency(args: argparse.Namespace, drivers: list[str], base: str, corpus: Corpus,
                 out: Any, err: Any, progress: bool) -> list[dict[str, Any]]:
    levels = measure.inflight_levels(corpus.n, args.inflight)
    points: dict[str, list[measure.ConcurrencyPoint]] = _sweep(
        args, drivers, err, progress, "in flight", len(levels),
        lambda d, repeat, tick: measure.measure_concurrency(d, corpus.pages, levels,
                                                           repeat=repeat, tick=tick))
    bmap = {p.limit: p.summary() for p in points[base]}
    results = []
    title = (f"in-flight sweep, Compressor.compress_many(limit=k); xbase: ratio to {base} at "
             "the same k")
    t = (new_table if args.wide else compact_table)(
        title, ["driver", "in flight", "comp GB/s", "xbase", "dec GB/s", "xbase",
                "comp pages/s", "dec pages/s"][:8 if args.wide else 6])
    for d, pts in points.items():
        for p in pts:
            s = p.summary()
            bp = bmap[p.limit]
            s["vs_baseline"] = {"compress": s["compress_gb_per_s"] / bp["compress_gb_per_s"],
                                "decompress": s["decompress_gb_per_s"] / bp["decompress_gb_per_s"]}
            results.append(s)
            cells = [d, str(p.limit), f"{s['compress_gb_per_s']:.3f}",
                     f"{s['vs_baseline']['compress']:.2f}x", f"{s['decompress_gb_per_s']:.3f}",
                     f"{s['vs_baseline']['decompress']:.2f}x",
                     f"{s['compress_pages_per_s']:,.0f}", f"{s['decompress_pages_per_s']:,.0f}"]
            t.add_row(*cells[:len(t.columns)])
    if not args.json:
        out.print(t)
    if args.plot:
        thr = {d: ("requests in flight", [float(p.limit) for p in pts],
                   [p.summary()["compress_gb_per_s"] for p in pts],
                   [p.summary()["decompress_gb_per_s"] for p in pts])
               for d, pts in points.items()}
        plot(args.plot, f"acomp in-flight sweep: {corpus.name}, {corpus.n} pages", thr, {})
    return results


# --------------------------------------------------------------------------------------------
# framework overhead


def _overhead(args: argparse.Namespace, drivers: list[str], base: str, corpus: Corpus,
              out: Any, err: Any, progress: bool) -> list[dict[str, Any]]:
    load_all_modules()
    passes = args.repeat or 7
    wanted = [a for a in OVERHEAD_ALGS
              if not args.driver or a in args.driver or f"{a}-scomp" in args.driver]
    if not wanted:
        raise _Fail(2, f"error: overhead mode compares {', '.join(OVERHEAD_ALGS)} only")
    pages = [row.tobytes() for row in corpus.pages]
    tick = _ticker(err, len(wanted) * passes, "overhead", progress)
    done: list[measure.OverheadResult] = []
    skipped: dict[str, str] = {}
    try:
        for a in wanted:
            tick.describe(a)
            if find_alg(f"{a}-scomp") is None:
                skipped[a] = module_reason(a) or f"{a}-scomp is not registered"
                continue
            try:
                measure.direct_compressor(a)
            except ImportError as e:
                skipped[a] = f"library not importable: {e}"
                continue
            done.append(_run_async(args, lambda a=a: measure.measure_overhead(  # type: ignore[misc]
                a, pages, passes=passes, tick=tick)))
    finally:
        tick.close()
    results = [r.summary() for r in done]
    results += [{"cra_name": a, "skipped": why} for a, why in skipped.items()]
    if not args.json:
        t = new_table(
            f"framework overhead: crypto_acomp_compress + crypto_wait_req (one tfm, one request, "
            f"sg_init_one, reused dst) vs the library, {passes} interleaved passes; debug "
            f"checks on and off (ACOMP_DEBUG_CHECKS; goals ≤ 1.35x on, ≤ 1.15x off)",
            ["algorithm", "library call", "direct ns/page", "checks on: ns/page",
             "ratio (best / median)", "checks off: ns/page", "ratio (best / median)"],
        ) if args.wide else compact_table(
            f"framework overhead: crypto_acomp_compress + crypto_wait_req vs the library, "
            f"{passes} interleaved passes, debug checks on and off (goals ≤ 1.35x on, "
            f"≤ 1.15x off); ns per page",
            ["algorithm", "library call", "direct", "acomp", "best", "median", "acomp off",
             "best off", "median off"], fold=(0, 1))
        for r in done:
            if args.wide:
                t.add_row(r.driver, r.library, f"{min(r.direct_ns):,.0f}",
                          f"{min(r.acomp_ns):,.0f}",
                          f"{r.best_ratio:.2f}x / {r.median_ratio:.2f}x",
                          f"{min(r.acomp_off_ns):,.0f}",
                          f"{r.best_ratio_off:.2f}x / {r.median_ratio_off:.2f}x")
            else:
                t.add_row(r.driver, r.library, f"{min(r.direct_ns):,.0f}",
                          f"{min(r.acomp_ns):,.0f}", f"{r.best_ratio:.2f}x",
                          f"{r.median_ratio:.2f}x", f"{min(r.acomp_off_ns):,.0f}",
                          f"{r.best_ratio_off:.2f}x", f"{r.median_ratio_off:.2f}x")
        for a, why in skipped.items():
            t.add_row(a, f"skipped: {why}", *["-"] * (5 if args.wide else 7))
        out.print(t)
    if args.plot and done:
        thr = {r.driver: ("", [0.0], [PAGE_SIZE / min(r.acomp_ns)],
                          [PAGE_SIZE / min(r.direct_ns)]) for r in done}
        plot(args.plot, "acomp framework overhead: lz4/lzo/zstd page compression", thr, {},
             labels=("through acomp", "library directly"))
    return results

