"""The zpool bench: how densely and how fast each backend stores compressed pages.

Kernel counterpart: none; it measures `zswap.zpool`'s backends (``mm/zsmalloc.c``, ``mm/zbud.c``,
``mm/z3fold.c`` as modelled here) the way zswap uses them, next to the kernel's published figures.

``python -m zswap.bench.zpool [--pages N] [--seed S] [--repeat R] [--backend B] [--markdown]``

The bench corpus (`acomp.corpus`) is compressed with lz4 (``lz4.block.compress(page,
store_size=False)``, as the kernel's lz4 writes no size) and zstd level 3. As zswap does, pages
filled with one repeated word are not sent to the pool (``zswap_is_page_same_filled``) and outputs
the backend refuses (``-ENOSPC``: zbud above 3968 bytes, everyone above 4096) are counted as
rejected. For each backend and compressor it reports:

- density: compressed bytes stored / bytes of pool pages, and objects per page, beside the
  published figures (zbud at most 2 objects a page, z3fold 3, zsmalloc bounded by the rounding
  of each object up to its size class plus the 8-byte handle);
- the cost per object, in microseconds, of ``malloc``, ``map(WO) + write + unmap``,
  ``map(RO) + read + unmap`` and ``free`` in random order (each the best of R passes over all
  objects), through the zpool API; the v6.15 row uses ``obj_write`` and ``obj_read_begin/end``;
- compaction: pages held after freeing a random half of the objects, and the pages compaction
  then gives back (``zs_compact``; z3fold compacts as it frees; zbud cannot).
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import lz4.block
import numpy as np
import zstandard
from rich.console import Console
from rich.table import Table

from acomp import corpus, sched
from acomp._constants import PAGE_SIZE
from zswap import z3fold, zsmalloc
from zswap.page import (
    __GFP_HIGHMEM,
    __GFP_KSWAPD_RECLAIM,
    __GFP_MOVABLE,
    __GFP_NORETRY,
    __GFP_NOWARN,
    GFP_KERNEL,
    PhysMem,
)
from zswap.zpool import (
    ZPOOL_MM_RO,
    ZPOOL_MM_WO,
    Zpool,
    zpool_create_pool,
    zpool_destroy_pool,
    zpool_free,
    zpool_get_total_size,
    zpool_malloc,
    zpool_malloc_support_movable,
    zpool_map_handle,
    zpool_obj_read_begin,
    zpool_obj_read_end,
    zpool_obj_write,
    zpool_unmap_handle,
)

__all__ = ("BACKENDS", "Result", "compress_corpus", "main", "run_backend")

#: zswap's allocation flags (v5.x ``zswap_frontswap_store``).
ZSWAP_GFP = __GFP_NORETRY | __GFP_NOWARN | __GFP_KSWAPD_RECLAIM

#: label -> (zpool type, options, the published density figure).
BACKENDS: dict[str, tuple[str, dict[str, Any], str]] = {
    "zsmalloc": ("zsmalloc", {}, "by size class"),
    "zsmalloc v6.3 (chain 8)": ("zsmalloc", {"chain_size": 8, "fullness": "ratio"},
                                "by size class"),
    "zsmalloc v6.15 reads": ("zsmalloc", {"sleepable_reads": True}, "by size class"),
    "zbud": ("zbud", {}, "<= 2 objs/page (~1.7x)"),
    "z3fold": ("z3fold", {}, "<= 3 objs/page (~2.7x)"),
}


@dataclass(frozen=True)
class Result:
    """One backend on one compressor's output."""

    backend: str
    compressor: str
    objects: int
    rejected: int
    stored_bytes: int
    pool_pages: int
    class_bound: float | None  # zsmalloc: density if every zspage were full
    malloc_us: float
    write_us: float  # map(WO) + write + unmap, or obj_write
    read_us: float  # map(RO) + read + unmap, or obj_read_begin + read + obj_read_end
    free_us: float
    pages_after_free: int
    compaction_freed: int | None  # zs_compact's pages; z3fold: pages its frees compacted away
    pages_after_compaction: int

    @property
    def density(self) -> float:
        return self.stored_bytes / (self.pool_pages * PAGE_SIZE) if self.pool_pages else 0.0

    @property
    def objs_per_page(self) -> float:
        return self.objects / self.pool_pages if self.pool_pages else 0.0


def _same_filled(page: np.ndarray[Any, Any]) -> bool:
    words = page.view(np.uint64)
    return bool((words == words[0]).all())


def compress_corpus(n: int, seed: int = 0) -> tuple[dict[str, list[bytes]], int]:
    """The compressed outputs of the first `n` corpus pages that are not same-filled, per
    compressor, and how many pages were same-filled."""
    pages = corpus.pages(n, seed)
    zc = zstandard.ZstdCompressor(level=3)
    out: dict[str, list[bytes]] = {"lz4": [], "zstd": []}
    same = 0
    for row in pages:
        if _same_filled(row):
            same += 1
            continue
        raw = row.tobytes()
        out["lz4"].append(lz4.block.compress(raw, store_size=False))
        out["zstd"].append(zc.compress(raw))
    return out, same


def run_backend(label: str, compressor: str, objects: Sequence[bytes], *, repeat: int = 3,
                seed: int = 0) -> Result:
    """Store `objects` in a fresh pool of backend `label`, time it, free half, compact."""
    type_, opts, _ = BACKENDS[label]
    sleepable = bool(opts.get("sleepable_reads"))
    mem = PhysMem(len(objects) + 256, name="bench")
    mem.prefault()

    def fresh() -> Zpool:
        p = zpool_create_pool(type_, f"bench-{label}", GFP_KERNEL, mem=mem, **opts)
        assert p is not None
        return p

    gfp = ZSWAP_GFP
    probe = fresh()
    if zpool_malloc_support_movable(probe):
        gfp |= __GFP_HIGHMEM | __GFP_MOVABLE
    zpool_destroy_pool(probe)

    state: dict[str, Any] = {}
    rng = random.Random(seed)

    def t_malloc_free() -> tuple[float, float]:
        """Allocate every object, then free them all in random order."""
        pool = fresh()
        t0 = time.perf_counter()
        hs = [zpool_malloc(pool, len(o), gfp) for o in objects]
        t1 = time.perf_counter()
        live = [h for ret, h in hs if ret == 0]
        rng.shuffle(live)
        t2 = time.perf_counter()
        for h in live:
            zpool_free(pool, h)
        t3 = time.perf_counter()
        zpool_destroy_pool(pool)
        return (t1 - t0) / len(objects), (t3 - t2) / max(1, len(live))

    def t_write() -> float:
        """Allocate (untimed), then map + write + unmap (or obj_write) every object."""
        if "pool" in state:
            zpool_destroy_pool(state.pop("pool"))
        pool = fresh()
        handles: list[tuple[int, bytes]] = []
        rejected = 0
        for o in objects:
            ret, h = zpool_malloc(pool, len(o), gfp)
            if ret:
                rejected += 1
            else:
                handles.append((h, o))
        t0 = time.perf_counter()
        if sleepable:
            for h, o in handles:
                zpool_obj_write(pool, h, o, len(o))
        else:
            for h, o in handles:
                v = zpool_map_handle(pool, h, ZPOOL_MM_WO)
                v[:] = o
                zpool_unmap_handle(pool, h)
        dt = time.perf_counter() - t0
        state.update(pool=pool, handles=handles, rejected=rejected)
        return dt / max(1, len(handles))

    def t_read() -> float:
        pool: Zpool = state["pool"]
        hs = [h for h, _ in state["handles"]]
        local = bytearray(2 * PAGE_SIZE)
        t0 = time.perf_counter()
        if sleepable:
            for h in hs:
                v = zpool_obj_read_begin(pool, h, local)
                bytes(v)
                zpool_obj_read_end(pool, h, v)
        else:
            for h in hs:
                v = zpool_map_handle(pool, h, ZPOOL_MM_RO)
                bytes(v)
                zpool_unmap_handle(pool, h)
        return (time.perf_counter() - t0) / max(1, len(hs))

    gc.disable()
    try:
        mf = [t_malloc_free() for _ in range(repeat)]
        malloc_s = min(m for m, _ in mf)
        free_s = min(f for _, f in mf)
        write_s = min(t_write() for _ in range(repeat))
        read_s = min(t_read() for _ in range(repeat))
    finally:
        gc.enable()
    pool: Zpool = state["pool"]
    handles: list[tuple[int, bytes]] = state["handles"]
    for h, o in handles:  # verify the round trip once
        v = zpool_map_handle(pool, h, ZPOOL_MM_RO)
        if bytes(v) != o:
            raise AssertionError(f"{label}: object {h:#x} read back wrong")
        zpool_unmap_handle(pool, h)
    pool_pages = zpool_get_total_size(pool) // PAGE_SIZE
    stored = sum(len(o) for _, o in handles)
    class_bound = None
    if type_ == "zsmalloc":
        zp = pool.pool
        per_obj = sum(zp.size_to_class[len(o)].size for _, o in handles)
        class_bound = stored / per_obj if per_obj else 0.0

    # Free a random half, then compact.
    victims = random.Random(seed).sample(range(len(handles)), len(handles) // 2)
    moves_before = pool.pool.single_moves if type_ == "z3fold" else 0
    for i in victims:
        zpool_free(pool, handles[i][0])
    after_free = zpool_get_total_size(pool) // PAGE_SIZE
    compacted: int | None
    if type_ == "zsmalloc":
        compacted = zsmalloc.zs_compact(pool.pool)
    elif type_ == "z3fold":
        compacted = z3fold.z3fold_stats(pool.pool).single_buddy_moves - moves_before
    else:
        compacted = None
    after_compaction = zpool_get_total_size(pool) // PAGE_SIZE
    zpool_destroy_pool(pool)
    return Result(
        backend=label,
        compressor=compressor,
        objects=len(handles),
        rejected=state["rejected"],
        stored_bytes=stored,
        pool_pages=pool_pages,
        class_bound=class_bound,
        malloc_us=malloc_s * 1e6,
        write_us=write_s * 1e6,
        read_us=read_s * 1e6,
        free_us=free_s * 1e6,
        pages_after_free=after_free,
        compaction_freed=compacted,
        pages_after_compaction=after_compaction,
    )


def sched_floor_us(n: int = 20_000, repeat: int = 5) -> float:
    """What the execution model's locks cost per zsmalloc map+unmap: the handle's bit spin lock,
    the zspage's read lock and the per-CPU area's preemption count, taken and released (best
    of `repeat` runs)."""
    pin = sched.SpinLock("bit_spin_lock#0", lockdep=False)
    zspage = sched.LocalLock("&zspage->lock")
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            pin.lock()
            sched.local_lock(zspage)
            sched.preempt_disable()
            sched.preempt_enable()
            sched.local_unlock(zspage)
            pin.unlock()
        best = min(best, time.perf_counter() - t0)
    return best / n * 1e6


def _tables(results: Sequence[Result]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, headers, rows) of the three tables: density, cost, compaction."""
    density, cost, compaction = [], [], []
    for r in results:
        published = BACKENDS[r.backend][2]
        if r.class_bound is not None:
            published = f"class rounding bound {r.class_bound:.3f}"
        density.append([r.backend, r.compressor, str(r.objects), str(r.rejected),
                        str(r.pool_pages), f"{r.density:.3f}", f"{r.objs_per_page:.2f}",
                        published])
        cost.append([r.backend, r.compressor, f"{r.malloc_us:.2f}", f"{r.write_us:.2f}",
                     f"{r.malloc_us + r.write_us:.2f}", f"{r.read_us:.2f}", f"{r.free_us:.2f}"])
        compaction.append([r.backend, r.compressor, str(r.pool_pages), str(r.pages_after_free),
                           "-" if r.compaction_freed is None else str(r.compaction_freed),
                           str(r.pages_after_compaction)])
    return [
        ("Density: compressed bytes stored / bytes of pool pages",
         ["backend", "comp", "objects", "rejected", "pages", "density", "objs/page",
          "published"], density),
        ("Cost per object, microseconds (best of the runs)",
         ["backend", "comp", "malloc", "map+write+unmap", "malloc+map+write+unmap",
          "map+read+unmap", "free"], cost),
        ("Compaction after freeing a random half of the objects (pages; z3fold compacts "
         "while freeing)",
         ["backend", "comp", "held", "after frees", "compaction freed", "after compaction"],
         compaction),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m zswap.bench.zpool", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=16000, help="corpus pages (default 16000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs, best kept (default 3)")
    ap.add_argument("--backend", action="append", choices=list(BACKENDS),
                    help="only these backends (repeatable)")
    ap.add_argument("--markdown", action="store_true", help="print markdown tables")
    args = ap.parse_args(argv)
    if args.pages < 1 or args.repeat < 1:
        ap.error("--pages and --repeat must be at least 1")
    outputs, same = compress_corpus(args.pages, args.seed)
    labels = args.backend or list(BACKENDS)
    results = [run_backend(label, comp, objs, repeat=args.repeat, seed=args.seed)
               for comp, objs in outputs.items() for label in labels]
    floor = sched_floor_us()
    note = (f"{args.pages} corpus pages (seed {args.seed}), {same} same-filled ones kept out "
            f"of the pool as zswap does; lz4 {sum(map(len, outputs['lz4']))} bytes, zstd "
            f"{sum(map(len, outputs['zstd']))} bytes compressed. Execution-model locks per "
            f"zsmalloc map+unmap: {floor:.2f} us.")
    tables = _tables(results)
    if args.markdown:
        for title, headers, rows in tables:
            print(f"**{title}**")
            print()
            print("| " + " | ".join(headers) + " |")
            print("|" + "---|" * len(headers))
            for row in rows:
                print("| " + " | ".join(row) + " |")
            print()
        print(note)
        return 0
    console = Console()
    for title, headers, rows in tables:
        table = Table(title=title, title_justify="left")
        for h in headers:
            table.add_column(h, justify="left" if h in ("backend", "comp", "published")
                             else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    console.print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
