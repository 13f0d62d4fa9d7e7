"""Concurrent stores through zswap, pages/s of the whole store path, per driver and per number
of virtual CPUs (each CPU's mutex lets one request of that CPU be in flight), and the
store+load cycle against bare lz4. Plain text and JSON (no rich), for the GPU machine.
``python -m zswap.bench.stores`` (``scripts/zswap-stores`` runs it from a checkout):

    scripts/zswap-stores [--pages N] [--cpus 1,16,64,256] [--driver lz4-scomp --driver lz4-opencl]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import time
from collections.abc import Sequence

import anyio

from acomp import corpus, crypto_has_acomp
from zswap.bench.mode import cycle_pages, measure_cycle, measure_stores


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m zswap.bench.stores",
                                description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--pages", type=int, default=16384, help="pages stored (default 16384)")
    p.add_argument("--cpus", default="1,16,64,256", metavar="LIST",
                   help="virtual CPU counts to sweep (default 1,16,64,256)")
    p.add_argument("--tasks-per-cpu", type=int, default=4, metavar="N",
                   help="storing tasks per virtual CPU (default 4)")
    p.add_argument("--driver", action="append", default=[], metavar="NAME",
                   help="compressor (repeatable; default lz4-scomp, and lz4-opencl where "
                        "it exists)")
    p.add_argument("--cycle-pages", type=int, default=2048, metavar="N",
                   help="pages of the store+load cycle (default 2048)")
    p.add_argument("--json", default="", metavar="FILE", help="also write the results here")
    a = p.parse_args(argv)
    drivers = a.driver or ["lz4-scomp"] + (["lz4-opencl"] if crypto_has_acomp("lz4-opencl")
                                           else [])
    print(f"zswap-stores {time.strftime('%Y-%m-%d %H:%M:%S %z')} {platform.node()} "
          f"{platform.processor() or platform.machine()} CPUs {os.cpu_count()} "
          f"Python {platform.python_version()}", flush=True)
    pages = [bytes(x) for x in corpus.iter_pages(a.pages, 0)]
    rows = []
    for cpus in [int(x) for x in a.cpus.split(",")]:
        for d in drivers:
            # warm-up (device program build, zspages), then the timed run
            anyio.run(functools.partial(measure_stores, d, pages[:1024], tasks=cpus * 4,
                                        cpus=cpus))
            r = anyio.run(functools.partial(measure_stores, d, pages,
                                            tasks=cpus * a.tasks_per_cpu, cpus=cpus))
            rows.append(dict(r))
            print(f"stores {r['driver']:<12} cpus {cpus:>4} tasks {r['tasks']:>5}: "
                  f"{r['pages_per_s']:>10,.0f} pages/s ({r['seconds']:.3f} s, "
                  f"{r['stored']} of {r['pages']} stored)", flush=True)
    cyc = anyio.run(lambda: measure_cycle(cycle_pages(a.cycle_pages), repeat=5))
    print(f"cycle lz4-scomp/zsmalloc 6.15: zswap {cyc['zswap_ns']:,.0f} ns/page, bare lz4 "
          f"{cyc['bare_ns']:,.0f} ns/page: {cyc['ratio']:.2f}x (median {cyc['ratio_median']:.2f}x)",
          flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"stores": rows, "cycle": dict(cyc)}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
