"""The zswap bench: ``python -m acomp.bench zswap`` (``--mode zswap``) runs `run`.

Kernel counterpart: none; it measures `zswap.zswap` the way an administrator reads
``/sys/kernel/debug/zswap`` under load, and compares its hot path with the bare library.

Three parts, each optional (``--skip``):

- ``workload``: `zswap.bench.workload` for each ``--driver`` x ``--zpool``: stored pages, pool size,
  effective compression ratio, zswap vs swap-device hits, written-back pages, store and load
  latency p50/p99, and the pages lost (always 0, or the bench fails);
- ``cycle``: with lz4-scomp on zsmalloc, a store plus a load of each page (``-- kernel``'s
  paths; 6.15: exclusive loads) against ``lz4.block.compress`` + ``lz4.block.decompress`` of
  the same pages, interleaved passes in one run (the issue's goal: at most 1.5x);
- ``stores``: the whole store path with many concurrent stores on many virtual CPUs, pages/s,
  for lz4-scomp and for lz4-opencl where it exists (the device batches concurrent requests).

A plug-in of the bench (`MODE`, in the ``acomp.bench_modes`` entry points): the bench's common
flags (``--driver``, ``--pages``, ``--seed``, ``--json``, ``--plot``, ``--backend``,
``--no-progress``, ``--repeat``) and zswap's own (`add_arguments`) are in one namespace;
``python -m acomp.bench zswap --help`` lists them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import anyio
import lz4.block

from acomp import corpus, crypto_has_acomp, kernel, sched
from acomp._constants import PAGE_SIZE
from acomp.bench.drivers import DriverSelectionError, resolve
from acomp.bench.modes import BenchMode
from acomp.bench.report import (
    SCHEMA,
    compact_table,
    header_info,
    new_table,
    print_header,
    stdout_console,
    write_csv,
)
from zswap.bench.folio import measure_folio_stores, parse_folio_size
from zswap.bench.workload import WorkloadConfig, WorkloadResult, plot_samples, run_workload
from zswap.page import PhysMem
from zswap.versions import paths_for
from zswap.zpool import zpool_has_pool
from zswap.zswap import Zswap, same_filled_word

__all__ = ("MODE", "CycleResult", "StoreResult", "add_arguments", "measure_cycle",
           "measure_stores", "run")

#: What the cycle is compared with, and the issue's goal.
CYCLE_GOAL = 1.5


DESCRIPTION = ("zswap under memory pressure, its store+load cycle against bare lz4, and "
               "concurrent stores. --driver defaults to lz4-scomp here, --pages is the working "
               "set (default 4096), --repeat the cycle's passes (default 5).")


def _kernel_arg(value: str) -> str:
    """``--kernel``: a version of a modelled era (acomp.eras), or "proposed"."""
    try:
        return paths_for(value)[0]
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The zswap mode's own flags (the bench adds its common ones)."""
    p.add_argument("--zpool", action="append", default=[], metavar="NAME",
                   help="zsmalloc, zbud or z3fold (repeatable; default zsmalloc)")
    p.add_argument("--kernel", default=kernel(), metavar="VERSION", type=_kernel_arg,
                   help=f"the kernel whose zswap paths are used (default {kernel()}: "
                        "acomp.kernel(), ACOMP_KERNEL)")
    p.add_argument("--ram", type=int, default=None, metavar="PAGES",
                   help="RAM in pages (default: half the working set)")
    p.add_argument("--working-set", type=int, default=None, metavar="PAGES",
                   help="the process's pages (default: --pages, else 4096)")
    p.add_argument("--accesses", type=int, default=20000, metavar="N",
                   help="touches in the random phase (default 20000)")
    p.add_argument("--tasks", type=int, default=16, metavar="N",
                   help="concurrent tasks (default 16)")
    p.add_argument("--cpus", type=int, default=4, metavar="N", help="virtual CPUs (default 4)")
    p.add_argument("--zipf", type=float, default=1.0, metavar="S",
                   help="Zipf exponent (default 1.0)")
    p.add_argument("--writes", type=float, default=0.1, metavar="SHARE",
                   help="share of touches that write (default 0.1)")
    p.add_argument("--max-pool-percent", type=int, default=20, metavar="P",
                   help="zswap's max_pool_percent, of RAM (default 20)")
    p.add_argument("--cycle-pages", type=int, default=2048, metavar="N",
                   help="corpus pages for the cycle measurement (default 2048)")
    p.add_argument("--store-pages", type=int, default=4096, metavar="N",
                   help="pages stored concurrently in the stores measurement (default 4096)")
    p.add_argument("--store-tasks", type=int, default=256, metavar="N",
                   help="tasks storing concurrently in the stores measurement (default 256)")
    p.add_argument("--store-cpus", type=int, default=64, metavar="N",
                   help="virtual CPUs for concurrent stores: one per-CPU mutex each, so at "
                        "most this many requests in flight (default 64)")
    p.add_argument("--folio-size", default="4K", metavar="SIZE",
                   help="the process's folios: 4K (pages, the default), 64K, 2M (any power of "
                        "two of pages up to 2M); with more than 4K also a folio-store table")
    p.add_argument("--compress-batch", type=int, default=None, metavar="N",
                   help="zswap's pages per compression batch (1..512; default: the "
                        "compressor's crypto_acomp_batch_size, 1 for synchronous drivers)")
    p.add_argument("--skip", action="append", default=[],
                   choices=("workload", "cycle", "stores", "folios"), help="leave a part out")


# --------------------------------------------------------------------------------------------
# The store+load cycle against bare lz4


class CycleResult(dict[str, Any]):
    """``zswap_ns``, ``bare_ns`` (per page, best pass), ``ratio`` (of the bests),
    ``ratio_median`` (median over interleaved pairs), ``pages``, ``passes``, ``version``."""


#: The largest lz4 output every zpool stores (zbud refuses objects above 3968 bytes), so that
#: the cycle runs on the same pages on zsmalloc, zbud and z3fold.
CYCLE_MAX_BLOB = 3968


def cycle_pages(n: int, seed: int = 0, max_blob: int = CYCLE_MAX_BLOB) -> list[bytes]:
    """`n` corpus pages every zpool stores (not same-filled, lz4 output ≤ `max_blob`)."""
    m = 2 * n + 16
    while True:
        out = [bytes(p) for p in corpus.iter_pages(m, seed)
               if same_filled_word(memoryview(p)) is None
               and len(lz4.block.compress(p, store_size=False)) <= max_blob]
        if len(out) >= n:
            return out[:n]
        m *= 2


def zpool_version(version: str, zpool: str) -> str:
    """`version`, or for a zpool that kernel removed the last minor version before it went."""
    _, paths = paths_for(version)
    gone = paths.removed.get(zpool)
    if gone is None:
        return version
    major, minor = (int(x) for x in gone.split("."))
    return f"{major}.{minor - 1}"


async def measure_cycle(pages: Sequence[bytes], *, repeat: int = 5, zpool: str = "zsmalloc",
                        compressor: str = "lz4-scomp", version: str = "6.15",
                        checks: bool | None = None) -> CycleResult:
    """Interleaved passes (A B B A ...): A stores every page then loads each back (exclusive
    loads from 6.9; older versions invalidate after the load), B compresses and decompresses
    each with python-lz4. Every load is checked byte for byte. `checks` sets the debug checks
    (`acomp.sched.set_debug_checks`) for the measurement; None leaves them as they are."""
    if checks is not None:
        old = sched.set_debug_checks(checks)
        try:
            res = await measure_cycle(pages, repeat=repeat, zpool=zpool, compressor=compressor,
                                      version=version)
        finally:
            sched.set_debug_checks(old)
        res["checks"] = checks
        return res
    n = len(pages)
    if n == 0:
        raise ValueError("no pages")
    mem = PhysMem(max(256, 4 * n), name="cycle")
    mem.prefault()
    zs = Zswap(mem=mem, compressor=compressor, zpool=zpool, version=version,  # type: ignore[arg-type]
               max_pool_percent=100)
    zs.init(0)
    out = bytearray(PAGE_SIZE)
    exclusive = zs.paths.load_is_exclusive()
    compress = lz4.block.compress
    decompress = lz4.block.decompress

    async def zswap_pass() -> int:
        t0 = time.perf_counter_ns()
        for i, p in enumerate(pages):
            if await zs.store(0, i, p):
                raise RuntimeError(f"zswap rejected cycle page {i}")
        for i in range(n):
            if await zs.load(0, i, out):
                raise RuntimeError(f"zswap lost cycle page {i}")
            if not exclusive:
                zs.invalidate_page(0, i)
        t = time.perf_counter_ns() - t0
        # verify outside the timing
        for i, p in enumerate(pages):
            await zs.store(0, i, p)
            await zs.load(0, i, out)
            zs.invalidate_page(0, i)
            if out != p:
                raise RuntimeError(f"cycle page {i} came back wrong")
        return t

    def bare_pass() -> int:
        t0 = time.perf_counter_ns()
        for p in pages:
            c = compress(p, store_size=False)
            decompress(c, uncompressed_size=PAGE_SIZE)
        return time.perf_counter_ns() - t0

    await zswap_pass()  # warm up: zspages, caches
    bare_pass()
    za: list[int] = []
    ba: list[int] = []
    for k in range(repeat):
        if k % 2 == 0:
            za.append(await zswap_pass())
            ba.append(bare_pass())
        else:
            ba.append(bare_pass())
            za.append(await zswap_pass())
    zs.invalidate_area(0)
    zs.close()  # its pool and per-CPU transforms (the driver stays unloadable otherwise)
    best_z, best_b = min(za) / n, min(ba) / n
    return CycleResult(
        zswap_ns=best_z, bare_ns=best_b, ratio=best_z / best_b,
        ratio_median=statistics.median(z / b for z, b in zip(za, ba, strict=True)),
        pages=n, passes=repeat, version=version, zpool=zpool, compressor=compressor,
        goal=CYCLE_GOAL, checks=sched.debug_checks())


# --------------------------------------------------------------------------------------------
# Concurrent stores


class StoreResult(dict[str, Any]):
    """``driver``, ``pages``, ``tasks``, ``cpus``, ``seconds``, ``pages_per_s``, ``stored``."""


async def measure_stores(driver: str, pages: Sequence[bytes], *, zpool: str = "zsmalloc",
                         tasks: int = 256, cpus: int = 64, version: str = "6.15"
                         ) -> StoreResult:
    """`tasks` tasks on `cpus` virtual CPUs store every page once (distinct offsets); the
    time until the last store returned. Loaded back and checked afterwards (untimed)."""
    n = len(pages)
    old = sched.nr_cpu_ids()
    if old < cpus:
        sched.set_nr_cpu_ids(cpus)
    zs: Zswap | None = None
    try:
        mem = PhysMem(max(256, 2 * n), name="stores")
        mem.prefault()
        zs = Zswap(mem=mem, compressor=driver, zpool=zpool, version=version,  # type: ignore[arg-type]
                   max_pool_percent=100)
        zs.init(0)
        rets = [0] * n

        async def storer(i: int) -> None:
            with sched.on_cpu(i % cpus):
                for j in range(i, n, tasks):
                    rets[j] = await zs.store(0, j, pages[j])

        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i in range(min(tasks, n)):
                tg.start_soon(storer, i)
        secs = time.perf_counter() - t0
        out = bytearray(PAGE_SIZE)
        for j, p in enumerate(pages):
            if rets[j] == 0:
                if await zs.load(0, j, out) or out != p:
                    raise RuntimeError(f"{driver}: stored page {j} came back wrong")
        stored = sum(1 for r in rets if r == 0)
        zs.invalidate_area(0)
        return StoreResult(driver=str(zs.describe()["driver"]), pages=n, tasks=tasks,
                           cpus=cpus, seconds=secs, pages_per_s=n / secs if secs else 0.0,
                           stored=stored, zpool=zpool)
    finally:
        if zs is not None:
            zs.close()  # its pool and per-CPU transforms
        if old < cpus:
            sched.set_nr_cpu_ids(old)


# --------------------------------------------------------------------------------------------
# The command


def _workload_row(r: WorkloadResult) -> dict[str, Any]:
    c = r.counters
    return {
        "driver": r.driver, "zpool": r.config.zpool, "kernel": r.config.version,
        "stored_pages": c["stored_pages"], "same_filled_pages": c["same_filled_pages"],
        "pool_total_size": c["pool_total_size"], "peak_pool_total_size": r.peak_pool_total_size,
        "ratio": (c["stored_pages"] * PAGE_SIZE / c["pool_total_size"]
                  if c["pool_total_size"] else 0.0),
        "zswap_hit_rate": r.hit_rate, "zswap_loads": r.swap.zswap_loads,
        "device_reads": r.swap.device_reads, "written_back_pages": c["written_back_pages"],
        "pool_limit_hit": c["pool_limit_hit"], "reject_compress_poor": c["reject_compress_poor"],
        "reject_alloc_fail": c["reject_alloc_fail"],
        "store_p50_us": r.store_us[0], "store_p99_us": r.store_us[1],
        "load_p50_us": r.load_us[0], "load_p99_us": r.load_us[1],
        "accesses": r.accesses, "faults": r.faults, "seconds": r.elapsed_s,
        "lost": r.lost, "leaked_pages": r.leaked_pages,
        "folio_pages": r.config.folio_pages, "batch_size": r.batch_size,
        "swapout_pages_per_s": r.swapout_pages_per_s, "compressor_share": r.compressor_share,
        "device_writes": r.swap.device_writes,
    }


def run(args: argparse.Namespace) -> int:
    """The bench's ``zswap`` mode, on the namespace its subcommand parsed. 0, 1 when a page was
    lost or came back wrong, 2 on bad arguments."""
    opts = args
    as_json = bool(getattr(args, "json", False))
    backend = getattr(args, "backend", "asyncio") or "asyncio"
    seed = int(getattr(args, "seed", 0) or 0)
    repeat = int(getattr(args, "repeat", None) or 5)
    try:
        drivers = resolve(list(getattr(args, "driver", []) or []) or ["lz4-scomp"])
    except DriverSelectionError as e:
        print(f"acomp.bench: error: {e}", file=sys.stderr)
        return 2
    zpools = opts.zpool or ["zsmalloc"]
    bad = [z for z in zpools if not zpool_has_pool(z)]
    if bad:
        print(f"acomp.bench: error: no zpool named {', '.join(bad)} (zsmalloc, zbud, z3fold)",
              file=sys.stderr)
        return 2
    for n, what in ((opts.accesses, "--accesses"), (opts.tasks, "--tasks"),
                    (opts.cpus, "--cpus"), (opts.cycle_pages, "--cycle-pages"),
                    (opts.store_pages, "--store-pages"), (opts.store_tasks, "--store-tasks"),
                    (opts.store_cpus, "--store-cpus")):
        if n < 1:
            print(f"acomp.bench: error: {what} must be at least 1", file=sys.stderr)
            return 2
    try:
        folio = parse_folio_size(opts.folio_size)
    except ValueError as e:
        print(f"acomp.bench: error: --folio-size: {e}", file=sys.stderr)
        return 2
    if opts.compress_batch is not None and not 1 <= opts.compress_batch <= 512:
        print("acomp.bench: error: --compress-batch must be 1..512", file=sys.stderr)
        return 2
    ws = opts.working_set or getattr(args, "pages", None) or 4096
    ws = max(ws, 8 * folio) // folio * folio
    ram = max(opts.ram or max(256, ws // 2), 4 * folio)
    as_csv = bool(getattr(args, "csv", False))
    as_json = as_json or as_csv  # no tables for either
    wide = bool(getattr(args, "wide", False))
    table = new_table if wide else compact_table
    out = stdout_console(wide=wide)
    info = header_info()
    if not as_json:
        print_header(out, info, {"mode": "zswap", "kernel": opts.kernel,
                                 "workload": f"{ws} pages working set, {ram} pages RAM, "
                                             f"{opts.tasks} tasks on {opts.cpus} CPUs, "
                                             f"Zipf {opts.zipf}, {opts.accesses} touches"})
    doc: dict[str, Any] = {"bench": "acomp", "schema": SCHEMA, "mode": "zswap", "header": info,
                           "kernel": opts.kernel}
    failed = False

    if "workload" not in opts.skip:
        results: list[WorkloadResult] = []
        for d in drivers:
            for zp in zpools:
                cfg = WorkloadConfig(compressor=d, zpool=zp, version=opts.kernel,
                                     ram_pages=ram, working_set=ws, accesses=opts.accesses,
                                     tasks=opts.tasks, cpus=opts.cpus, zipf=opts.zipf,
                                     write_fraction=opts.writes,
                                     max_pool_percent=opts.max_pool_percent, seed=seed,
                                     folio_pages=folio, batch_size=opts.compress_batch)
                results.append(anyio.run(run_workload, cfg, backend=backend))
        rows = [_workload_row(r) for r in results]
        doc["workload"] = rows
        failed |= any(r["lost"] or r["leaked_pages"] for r in rows)
        if not as_json:
            folios = folio > 1 or opts.compress_batch is not None
            t = table("zswap under memory pressure (end of run; latency per zswap call, µs"
                      + (f"; a store is one {opts.folio_size} folio" if folios else "")
                      + ("" if wide or not folios else "; --wide: the folio columns") + ")",
                      ["driver / zpool", "stored", "pool KiB (peak)", "ratio", "zswap hits",
                       "written back", "limit hit",
                       *(["swap-outs/s", "batch", "compressor"] if folios else []),
                       "store p50/p99 µs", "load p50/p99 µs", "lost"] if wide else
                      ["driver/zpool", "stored", "ratio", "hits", "writeback",
                       "p99 store/load", "lost"])
            for r in rows:
                if not wide:
                    t.add_row(f"{r['driver']}/{r['zpool']}", f"{r['stored_pages']:,}",
                              f"{r['ratio']:.2f}", f"{100 * r['zswap_hit_rate']:.1f}%",
                              f"{r['written_back_pages']:,}",
                              f"{r['store_p99_us']:.0f}/{r['load_p99_us']:.0f}", str(r["lost"]))
                    continue
                extra = [f"{r['swapout_pages_per_s']:,.0f}", str(r["batch_size"]),
                         f"{100 * r['compressor_share']:.0f}%"] if folios else []
                t.add_row(f"{r['driver']} / {r['zpool']}", f"{r['stored_pages']:,}",
                          f"{r['pool_total_size'] // 1024:,} "
                          f"({r['peak_pool_total_size'] // 1024:,})", f"{r['ratio']:.2f}",
                          f"{100 * r['zswap_hit_rate']:.1f}%",
                          f"{r['written_back_pages']:,}", f"{r['pool_limit_hit']:,}",
                          *extra,
                          f"{r['store_p50_us']:.1f} / {r['store_p99_us']:.1f}",
                          f"{r['load_p50_us']:.1f} / {r['load_p99_us']:.1f}",
                          str(r["lost"]))
            out.print(t)
        if getattr(args, "plot", None):
            plot_samples(results, args.plot)
            if not as_json:
                out.print(f"plot      {args.plot}")

    if "cycle" not in opts.skip:
        pages = cycle_pages(opts.cycle_pages, seed)
        # Both positions of the debug-checks switch, on each zpool (zsmalloc is the goal's).
        # A zpool the kernel no longer has (zbud, z3fold from v6.15) runs on the last version
        # that had it, and its row says which.
        cycles = [anyio.run(lambda z=z, on=on: measure_cycle(  # type: ignore[misc]
            pages, repeat=repeat, version=zpool_version(opts.kernel, z), zpool=z, checks=on),
            backend=backend)
            for z in ("zsmalloc", "zbud", "z3fold") for on in (True, False)]
        cyc = next(c for c in cycles
                   if c["zpool"] == "zsmalloc" and c["checks"] == sched.debug_checks())
        doc["cycle"] = dict(cyc)
        doc["cycles"] = [dict(c) for c in cycles]
        if not as_json:
            t = table(f"store+load cycle, lz4-scomp ({opts.kernel}) vs "
                          f"lz4.block.compress + decompress in the same run, {cyc['pages']} "
                          f"pages, {repeat} interleaved passes, debug checks on and off "
                          f"(goals on zsmalloc: ≤ 2.5x on, ≤ {CYCLE_GOAL}x off)",
                          ["zpool", "checks", "zswap ns", "bare ns", "best", "median"]
                          if not wide else
                          ["zpool", "checks", "zswap ns/page (best)", "bare ns/page (best)",
                           "ratio (best)", "ratio (median)"])
            for c in cycles:
                zp = (c["zpool"] if c["version"] == cyc["version"]
                      else f"{c['zpool']} ({c['version']})")
                t.add_row(zp, "on" if c["checks"] else "off", f"{c['zswap_ns']:,.0f}",
                          f"{c['bare_ns']:,.0f}", f"{c['ratio']:.2f}x",
                          f"{c['ratio_median']:.2f}x")
            out.print(t)

    if "stores" not in opts.skip:
        names = ["lz4-scomp"] + (["lz4-opencl"] if crypto_has_acomp("lz4-opencl") else [])
        for d in drivers:
            if d not in names:
                names.append(d)
        pages = [bytes(p) for p in corpus.iter_pages(opts.store_pages, seed)]
        srs = [anyio.run(lambda d=d: measure_stores(  # type: ignore[misc]
            d, pages, tasks=opts.store_tasks, cpus=opts.store_cpus, version=opts.kernel),
            backend=backend) for d in names]
        doc["stores"] = [dict(s) for s in srs]
        if not as_json:
            t = table(f"concurrent stores: {opts.store_pages} pages, {opts.store_tasks} "
                          f"tasks on {opts.store_cpus} virtual CPUs, zsmalloc",
                          ["driver", "pages/s", "seconds", "stored", "vs lz4-scomp"])
            base = srs[0]["pages_per_s"]
            for s in srs:
                t.add_row(s["driver"], f"{s['pages_per_s']:,.0f}", f"{s['seconds']:.3f}",
                          f"{s['stored']:,}", f"{s['pages_per_s'] / base:.2f}x" if base else "-")
            out.print(t)

    if folio > 1 and "folios" not in opts.skip:
        order = folio.bit_length() - 1
        frs = []
        for d in drivers:
            for zp in zpools:
                r = anyio.run(lambda d=d, zp=zp: measure_folio_stores(  # type: ignore[misc]
                    d, order=order, pages=max(opts.store_pages, folio), version=opts.kernel,
                    batch_size=opts.compress_batch, zpool=zp), backend=backend)
                frs.append(r)
        doc["folios"] = frs
        failed |= any(r["wrong"] for r in frs)
        if not as_json:
            t = new_table(f"folio stores: {opts.folio_size} folios, one task, every page read "
                          "back (zswap all or nothing per folio)",
                          ["driver / zpool", "pages/s", "batch", "store p50/p99 µs per folio",
                           "compressor", "in zswap", "to the device", "wrong"])
            for r in frs:
                t.add_row(f"{r['driver']} / {r['zpool']}", f"{r['pages_per_s']:,.0f}",
                          str(r["batch_size"]),
                          f"{r['store_p50_us']:,.0f} / {r['store_p99_us']:,.0f}",
                          f"{100 * r['compressor_share']:.0f}%", f"{r['zswap_stores']:,}",
                          f"{r['device_writes']:,}", str(r["wrong"]))
            out.print(t)

    if as_csv:
        rows_out = [{"part": "workload", **r} for r in doc.get("workload", [])]
        if "cycle" in doc:
            rows_out.append({"part": "cycle", **doc["cycle"]})
        rows_out += [{"part": "stores", **r} for r in doc.get("stores", [])]
        rows_out += [{"part": "folios", **r} for r in doc.get("folios", [])]
        write_csv(sys.stdout, rows_out, {"schema": SCHEMA, "mode": "zswap"})
    elif as_json:
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
    return 1 if failed else 0


#: Registered under the ``acomp.bench_modes`` entry points: ``python -m acomp.bench zswap``.
MODE = BenchMode(
    "zswap", "zswap under memory pressure, its store+load cycle vs bare lz4, concurrent stores",
    add_arguments, run, DESCRIPTION,
    common_help={"--driver": "zswap's compressor (repeatable; default lz4-scomp)",
                 "--pages": "the process's working set in pages (default 4096)",
                 "--seed": "seed of the corpus the pages are filled from",
                 "--repeat": "interleaved passes of the store+load cycle (default 5)"})
