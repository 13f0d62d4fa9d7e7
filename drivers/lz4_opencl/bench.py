"""The driver layer's bench: the OpenCL LZ4 kernels (`device.Lz4Device`) against lz4.block on one
core, below the acomp API.

For each batch size n (1, 64, 1024 and --max) it prints, for compression and decompression:
  kernel GB/s   uncompressed bytes / kernel time from OpenCL profiling events
  e2e GB/s      uncompressed bytes / wall time of one synchronous compress()/decompress()
                call on host arrays (staging into pinned memory, transfers, copy-out)
  stream GB/s   the same for 4 batches submitted back to back (the pipeline overlaps them)
and the compressed size relative to lz4.block.compress(store_size=False) on the same pages.

``python -m acomp_drivers.lz4_opencl.bench`` (``scripts/opencl-kernel-bench`` runs it from a
checkout). On a CPU OpenCL (PoCL) keep --max small (1024).

    scripts/opencl-kernel-bench --max 1024 [--device pocl] [--repeat 3]

--variants instead compares the kernel variants (classic: kernels.cl, subgroup:
kernels_sg.cl) on one device: its extensions, the sub-group self-test, kernel GB/s per page
kind and on the --max-page mix (both directions, median of --repeat), an occupancy sweep
and a copy-only kernel of the subgroup launch shape as the ceiling (`kbench`). On an H100
with --max 65536 it should take about 3 minutes; on PoCL:

    scripts/opencl-kernel-bench --variants --max 64 --kind-pages 16 --repeat 1
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable, Sequence

import lz4.block
import numpy as np
import numpy.typing as npt

from acomp import corpus

from .device import Job, Lz4Device
from .kbench import run_variants

PAGE = corpus.PAGE_SIZE


def make_pages(n: int, seed: int) -> npt.NDArray[np.uint8]:
    """n corpus pages; beyond 8192 the first 8192 repeat (generating them is slow)."""
    base = corpus.pages(min(n, 8192), seed=seed)
    if n <= len(base):
        return base
    reps = -(-n // len(base))
    return np.ascontiguousarray(np.tile(base, (reps, 1))[:n])


Args = tuple[npt.NDArray[np.uint8], npt.NDArray[np.int32] | None, int | None]


def best_kernel_ns(dev: Lz4Device, op: str, args: Args, repeat: int) -> int:
    times = []
    for _ in range(repeat):
        job: Job = dev.submit(op, *args, None).wait()
        times.append(job.kernel_ns)
    return min(times)


def best_wall(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def stream_wall(dev: Lz4Device, op: str, args: Args, k: int) -> float:
    t = time.perf_counter()
    jobs = [dev.submit(op, *args, None) for _ in range(k)]
    for j in jobs:
        j.wait()
    return time.perf_counter() - t


def breakdown(dev: Lz4Device, op: str, args: Args) -> None:
    """Where the time of one synchronous call on the largest batch goes (Job.stages)."""
    job: Job = dev.submit(op, *args, None).wait()
    st = job.stages
    nbytes = job.n * PAGE
    wall = st["wall"]
    print(
        f"{op} of {job.n} pages in {job.launches} launches: wall {wall / 1e6:.2f} ms "
        f"({nbytes / wall:.2f} GB/s); stage sums (they overlap across launches):"
    )
    rows = (
        ("stage_in", "host copy into pinned memory (dispatcher + copy threads)"),
        ("enqueue", "Python enqueue calls"),
        ("upload", "host->device copy (device time)"),
        ("kernel", "kernel (device time)"),
        ("download", "device->host copy (device time)"),
        ("wait", "completer blocked on the last event"),
        ("copy_out", "host copy out of pinned memory (completer + copy threads)"),
    )
    busy = 0
    for key, what in rows:
        v = st[key]
        if key in ("stage_in", "enqueue", "copy_out"):
            busy += v
        print(f"  {key:>9} {v / 1e6:>9.2f} ms  {nbytes / max(v, 1):>8.2f} GB/s  {what}")
    print(f"  {'other':>9} {(wall - busy - st['wait']) / 1e6:>9.2f} ms  wall - host stages - "
          "wait (submit, thread hops, Python; negative when stages overlap)")


def cpu_lz4(pages: npt.NDArray[np.uint8]) -> tuple[float, float, int]:
    raws = [p.tobytes() for p in pages[:4096]]
    t = time.perf_counter()
    blocks = [lz4.block.compress(r, store_size=False) for r in raws]
    tc = time.perf_counter() - t
    t = time.perf_counter()
    for b in blocks:
        lz4.block.decompress(b, uncompressed_size=PAGE)
    td = time.perf_counter() - t
    nbytes = len(raws) * PAGE
    return nbytes / tc / 1e9, nbytes / td / 1e9, sum(map(len, blocks))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--max", type=int, default=65536, help="largest batch (default 65536)")
    ap.add_argument("--device", default=None, help="ACOMP_OPENCL_DEVICE-style device spec")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (best kept)")
    ap.add_argument("--lanes", type=int, default=None, help="work-group size (default 64)")
    ap.add_argument("--hash-log", type=int, default=None, help="log2 hash-table entries")
    ap.add_argument(
        "--launch", type=int, default=8192, help="most pages per kernel launch (default 8192)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", action="store_true", help="compare the kernel variants")
    ap.add_argument("--kind-pages", type=int, default=16384,
                    help="--variants: pages per page kind (default 16384)")
    ap.add_argument("--no-sweep", action="store_true", help="--variants: no occupancy sweep")
    args = ap.parse_args(argv)
    if args.variants:
        run_variants(args.device, pages=args.max, kind_pages=args.kind_pages,
                     repeat=args.repeat, seed=args.seed, sweep=not args.no_sweep)
        return 0

    sizes_n = sorted({n for n in (1, 64, 1024) if n <= args.max} | {args.max})
    dev = Lz4Device(
        args.device, max_batch=args.launch, lanes=args.lanes, hash_log=args.hash_log, slots=3
    )
    info = dev.info
    print(f"device: {info.platform} / {info.device} ({info.kind}, {info.compute_units} CUs)")
    print(
        f"lanes {dev.lanes}, hash_log {dev.hash_log}, local memory per work-group "
        + ", ".join(f"{k} {v} B" for k, v in dev.local_mem.items())
    )
    probe = make_pages(min(args.max, 4096), args.seed)
    c_gbs, d_gbs, lz4_total = cpu_lz4(probe)
    print(
        f"lz4.block on one core (4 KiB pages, with Python call overhead): "
        f"compress {c_gbs:.2f} GB/s, decompress {d_gbs:.2f} GB/s"
    )
    print()
    hdr = (
        f"{'n':>6} | {'comp kernel':>11} {'e2e':>7} {'stream':>7} | "
        f"{'dec kernel':>10} {'e2e':>7} {'stream':>7} | {'size/lz4':>8}  (GB/s)"
    )
    # The breakdown first (it also warms the buffers up for the largest batch), so that the
    # table and the ratio end the output (scripts/gpu-check keeps its last 20 lines).
    pages = make_pages(args.max, args.seed)
    out, sizes = dev.compress(pages)
    breakdown(dev, "compress", (pages, None, None))
    breakdown(dev, "decompress", (out, sizes, PAGE))
    print()
    print(hdr)
    print("-" * len(hdr))
    try:
        for n in sizes_n:
            pages = make_pages(n, args.seed)
            nbytes = pages.nbytes
            out, sizes = dev.compress(pages)  # warm-up: buffers, lazy kernel compilation
            assert (sizes > 0).all()
            dev.decompress(out, sizes, PAGE)
            ck = best_kernel_ns(dev, "compress", (pages, None, None), args.repeat)
            ce = best_wall(functools.partial(dev.compress, pages), args.repeat)
            cs = stream_wall(dev, "compress", (pages, None, None), 4)
            dk = best_kernel_ns(dev, "decompress", (out, sizes, PAGE), args.repeat)
            de = best_wall(functools.partial(dev.decompress, out, sizes, PAGE), args.repeat)
            ds = stream_wall(dev, "decompress", (out, sizes, PAGE), 4)
            m = min(n, 4096)
            ref = sum(len(lz4.block.compress(p.tobytes(), store_size=False)) for p in pages[:m])
            ratio = int(sizes[:m].sum()) / ref
            print(
                f"{n:>6} | {nbytes / ck:>11.3f} {nbytes / ce / 1e9:>7.3f} "
                f"{4 * nbytes / cs / 1e9:>7.3f} | {nbytes / dk:>10.3f} "
                f"{nbytes / de / 1e9:>7.3f} {4 * nbytes / ds / 1e9:>7.3f} | {ratio:>8.4f}"
            )
        ours = int(dev.compress(probe)[1].sum())
        print()
        print(
            f"compression ratio on {len(probe)} corpus pages: ours {probe.nbytes / ours:.4f}, "
            f"lz4.block {probe.nbytes / lz4_total:.4f} (size {ours / lz4_total:.4f}x lz4)"
        )
    finally:
        dev.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
