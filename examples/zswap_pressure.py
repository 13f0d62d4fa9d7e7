"""A memory-pressure workload over zswap: a working set larger than RAM, touched with a Zipf
pattern by many tasks on several virtual CPUs, swapping through zswap and a swap file.

    python examples/zswap_pressure.py --compressor lz4-scomp --zpool zsmalloc
    python examples/zswap_pressure.py --compressor zstd --zpool z3fold --plot pressure.png

Prints zswap's debugfs counters, the swap statistics and latencies, and saves a plot of the
pool size, the compression ratio and the zswap hit rate over time (matplotlib, Agg).
Exits 1 if any page came back wrong (it never should).
"""

from __future__ import annotations

import argparse
import sys

import anyio

from acomp import crypto_has_acomp
from zswap import VERSIONS
from zswap.bench.workload import WorkloadConfig, plot_samples, run_workload


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="zswap under memory pressure")
    p.add_argument("--compressor", default="lz4-scomp", help="acomp name (default lz4-scomp)")
    p.add_argument("--zpool", default="zsmalloc", choices=("zsmalloc", "zbud", "z3fold"))
    p.add_argument("--kernel", default="6.15", choices=VERSIONS, help="zswap's load paths")
    p.add_argument("--ram", type=int, default=1024, help="RAM in pages (default 1024)")
    p.add_argument("--working-set", type=int, default=2048, help="pages (default 2048)")
    p.add_argument("--accesses", type=int, default=10000, help="touches (default 10000)")
    p.add_argument("--tasks", type=int, default=16)
    p.add_argument("--cpus", type=int, default=4)
    p.add_argument("--zipf", type=float, default=1.0)
    p.add_argument("--max-pool-percent", type=int, default=20)
    p.add_argument("--shrinker", action="store_true", help="shrinker_enabled=Y")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", default="zswap_pressure.png", help="where to save the plot")
    p.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    a = p.parse_args(argv)
    if not crypto_has_acomp(a.compressor):
        print(f"zswap_pressure: no compressor {a.compressor!r}", file=sys.stderr)
        return 2
    cfg = WorkloadConfig(compressor=a.compressor, zpool=a.zpool, version=a.kernel,
                         ram_pages=a.ram, working_set=a.working_set, accesses=a.accesses,
                         tasks=a.tasks, cpus=a.cpus, zipf=a.zipf,
                         max_pool_percent=a.max_pool_percent, shrinker_enabled=a.shrinker,
                         seed=a.seed)
    r = anyio.run(run_workload, cfg, backend=a.backend)
    s = r.swap
    print(f"zswap_pressure: {r.driver} on {a.zpool} (kernel {a.kernel} paths), "
          f"{a.working_set} pages on {a.ram} pages of RAM, {a.tasks} tasks on {a.cpus} CPUs")
    print(f"{r.accesses} touches in {r.elapsed_s:.2f} s, {r.faults} swap-ins")
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
    print(f"store latency      p50 {r.store_us[0]:.1f} µs, p99 {r.store_us[1]:.1f} µs")
    print(f"load latency       p50 {r.load_us[0]:.1f} µs, p99 {r.load_us[1]:.1f} µs")
    print(f"verified           {r.verified} pages, {r.lost} lost, "
          f"{r.leaked_pages} pages leaked")
    plot_samples([r], a.plot)
    print(f"plot               {a.plot}")
    return 1 if r.lost or r.leaked_pages else 0


if __name__ == "__main__":
    sys.exit(main())
