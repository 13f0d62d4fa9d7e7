"""A memory-pressure workload over zswap: a working set larger than RAM, touched with a Zipf
pattern by many tasks on several virtual CPUs, swapping through zswap and a swap file.

    python examples/zswap_pressure.py --compressor lz4-scomp --zpool zsmalloc
    python examples/zswap_pressure.py --compressor zstd --zpool z3fold --plot pressure.png
    python examples/zswap_pressure.py --folio-size 64K --kernel proposed --batch-size 16

With ``--folio-size`` (4K, 64K, 2M) the process's memory is in large folios: reclaim swaps a
folio out whole (zswap keeps all its pages or none) and a fault reads it back as one readahead
window; ``--batch-size`` is zswap's pages per compression batch ("proposed" batches; 6.15 with
``--batch-size`` opts in). Prints zswap's debugfs counters, the swap statistics, swap-out
pages/s, the store latency per folio and the compressor's share of it. With ``--plot PATH`` it
also saves a plot of the pool size, the compression ratio and the zswap hit rate over time
(matplotlib, the ``plot`` extra); without it, it writes no file. Exits 1 if any page came back
wrong (it never should), 2 on a bad option.
"""

from __future__ import annotations

import argparse
import sys

import anyio

from acomp import crypto_has_acomp, kernel
from zswap.bench.folio import parse_folio_size
from zswap.bench.workload import WorkloadConfig, plot_samples, run_workload


def build_parser() -> argparse.ArgumentParser:
    """The command line; every option says what it does and its default."""
    p = argparse.ArgumentParser(description="zswap under memory pressure: a Zipf workload "
                                            "larger than RAM, swapping through zswap")
    p.add_argument("--compressor", default="lz4-scomp",
                   help="acomp algorithm or driver name (default lz4-scomp)")
    p.add_argument("--zpool", default="zsmalloc", choices=("zsmalloc", "zbud", "z3fold"),
                   help="the allocator zswap stores compressed pages in (default zsmalloc)")
    p.add_argument("--kernel", default=kernel(),
                   help=f"the kernel whose zswap paths are used (default {kernel()})")
    p.add_argument("--ram", type=int, default=1024, help="RAM in pages (default 1024)")
    p.add_argument("--working-set", type=int, default=2048,
                   help="pages the tasks touch (default 2048)")
    p.add_argument("--accesses", type=int, default=10000,
                   help="page touches in all (default 10000)")
    p.add_argument("--tasks", type=int, default=16,
                   help="tasks touching pages at once (default 16)")
    p.add_argument("--cpus", type=int, default=4,
                   help="virtual CPUs the tasks run on (default 4)")
    p.add_argument("--zipf", type=float, default=1.0,
                   help="Zipf exponent of the access pattern; 0 is uniform (default 1.0)")
    p.add_argument("--max-pool-percent", type=int, default=20,
                   help="zswap's max_pool_percent: the pool's limit in %% of RAM (default 20)")
    p.add_argument("--shrinker", action="store_true",
                   help="shrinker_enabled=Y (write cold entries back to the swap file)")
    p.add_argument("--folio-size", default="4K", help="4K (default), 64K or 2M")
    p.add_argument("--batch-size", type=int, default=None,
                   help="zswap's pages per compression batch (default: the compressor's)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the access pattern and the page contents (default 0)")
    p.add_argument("--plot", metavar="PATH", default=None,
                   help="save a plot of pool size, ratio and hit rate over time to PATH "
                        "(PNG; needs matplotlib); default: no plot, no file written")
    p.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio",
                   help="the anyio backend to run on (default asyncio)")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    if not crypto_has_acomp(a.compressor):
        print(f"zswap_pressure: no compressor {a.compressor!r}", file=sys.stderr)
        return 2
    try:
        folio = parse_folio_size(a.folio_size)
    except ValueError as e:
        print(f"zswap_pressure: --folio-size: {e}", file=sys.stderr)
        return 2
    if a.batch_size is not None and not 1 <= a.batch_size <= 512:
        print("zswap_pressure: --batch-size must be 1..512", file=sys.stderr)
        return 2
    if a.working_set % folio or a.ram < 4 * folio:
        print(f"zswap_pressure: with {a.folio_size} folios the working set must be a multiple "
              f"of {folio} pages and RAM at least {4 * folio}", file=sys.stderr)
        return 2
    cfg = WorkloadConfig(compressor=a.compressor, zpool=a.zpool, version=a.kernel,
                         ram_pages=a.ram, working_set=a.working_set, accesses=a.accesses,
                         tasks=a.tasks, cpus=a.cpus, zipf=a.zipf,
                         max_pool_percent=a.max_pool_percent, shrinker_enabled=a.shrinker,
                         seed=a.seed, folio_pages=folio, batch_size=a.batch_size,
                         compress_batching=True if a.batch_size and a.batch_size > 1 else None)
    r = anyio.run(run_workload, cfg, backend=a.backend)
    s = r.swap
    print(f"zswap_pressure: {r.driver} on {a.zpool} (kernel {a.kernel} paths), "
          f"{a.working_set} pages on {a.ram} pages of RAM, {a.tasks} tasks on {a.cpus} CPUs")
    print(f"{r.accesses} touches in {r.elapsed_s:.2f} s, {r.faults} swap-ins; "
          f"{a.folio_size} folios, zswap batch {r.batch_size}")
    print()
    print("/sys/kernel/debug/zswap at the end:")
    for name, value in r.counters.items():
        print(f"  {name:<22} {value}")
    print()
    ratio = (r.counters["stored_pages"] * 4096 / r.counters["pool_total_size"]
             if r.counters["pool_total_size"] else 0.0)
    print(f"compression ratio  {ratio:.2f} (stored_pages * 4096 / pool_total_size; "
          f"peak {r.peak_ratio:.2f})")
    print(f"swap-outs          {s.swapouts}: {s.zswap_stores} kept by zswap, "
          f"{s.device_writes} written to the swap file")
    print(f"swap-ins           {s.swapins}: {s.zswap_loads} from zswap, {s.device_reads} from "
          f"the swap file, {s.cache_hits} from the swap cache "
          f"(zswap hit rate {100 * r.hit_rate:.1f}%)")
    print(f"written back       {r.counters['written_back_pages']} pages")
    print(f"swap-out rate      {r.swapout_pages_per_s:,.0f} pages/s")
    print(f"store latency      p50 {r.store_us[0]:.1f} µs, p99 {r.store_us[1]:.1f} µs per "
          f"{a.folio_size} folio; compressor {100 * r.compressor_share:.0f}% of store time")
    print(f"load latency       p50 {r.load_us[0]:.1f} µs, p99 {r.load_us[1]:.1f} µs")
    print(f"verified           {r.verified} pages, {r.lost} lost, "
          f"{r.leaked_pages} pages leaked")
    if a.plot is not None:
        plot_samples([r], a.plot)
        print(f"plot               {a.plot}")
    return 1 if r.lost or r.leaked_pages else 0


if __name__ == "__main__":
    sys.exit(main())
