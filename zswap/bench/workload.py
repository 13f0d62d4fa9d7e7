"""The workload layer: a process whose working set is larger than RAM, swapping through zswap.

Kernel counterpart: what page reclaim (``mm/vmscan.c``: the LRU, direct reclaim below the low
watermark) and the fault path (``do_swap_page``) do to a memory-hungry process; no single file.

RAM is a `PhysMem` of ``ram_pages``: resident pages of the process and zswap's pool share it,
as they do in the kernel, and ``max_pool_percent`` is a share of it. The process has
``working_set`` virtual pages (more than RAM holds), filled from the bench corpus
(`acomp.corpus.pages`). ``tasks`` tasks on ``cpus`` virtual CPUs touch pages with a skewed
(Zipf) pattern; a touch of a page not in RAM faults it in from swap (`SwapArea.swap_in`),
after direct reclaim has swapped out the least recently used resident pages whenever free
memory fell below the low watermark (and zsmalloc's shrinker compacted its pools). A fraction
of touches rewrite the page with other corpus contents. A shadow copy of every page's
expected bytes checks every swap-in byte for byte, and at the end every page is read back once
more: `WorkloadResult.lost` must be 0.

With ``folio_pages`` > 1 (16: 64 KiB mTHP, 512: 2 MiB THP) the process's memory is in large
folios: reclaim swaps out the least recently used folio whole (`SwapArea.swap_out_folio`:
zswap stores all of its pages or none), and a fault brings the whole folio back through one
readahead window (`SwapArea.swap_in_readahead`: one decompression batch where zswap batches).
``batch_size`` and ``compress_batching`` are zswap's (`Zswap.store_batch_size`).
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
import numpy as np

from acomp import corpus, sched
from acomp._constants import PAGE_SIZE
from zswap import zsmalloc
from zswap.bench.folio import compressor_timed
from zswap.page import GFP_KERNEL, Folio, PhysMem
from zswap.swap import SwapArea, SwapDevice, SwapFullError, SwapStatistics
from zswap.zswap import DEFAULT_VERSION, Version, Zswap

__all__ = ("Sample", "WorkloadConfig", "WorkloadResult", "percentile_us", "plot_samples",
           "run_workload")


@dataclass(frozen=True)
class WorkloadConfig:
    """One run: the compressor and zpool, RAM and working set in pages, the access pattern."""

    compressor: str = "lz4-scomp"
    zpool: str = "zsmalloc"
    version: Version = DEFAULT_VERSION
    ram_pages: int = 2048
    working_set: int = 4096
    accesses: int = 20000
    tasks: int = 16
    cpus: int = 4
    #: Zipf exponent of the access pattern (page of rank r is touched ~ 1 / r**zipf).
    zipf: float = 1.0
    #: Share of touches that rewrite the page.
    write_fraction: float = 0.1
    max_pool_percent: int = 20
    accept_threshold_percent: int = 90
    shrinker_enabled: bool = False
    #: Time-series samples taken over the random phase.
    samples: int = 50
    seed: int = 0
    #: The swap file (None: a temporary file).
    swap_path: str | None = None
    #: Seconds each swap-device read or write takes (0: as fast as the file).
    io_delay: float = 0.0
    #: Pages per folio of the process (a power of two up to 512; 1: order-0 pages only).
    folio_pages: int = 1
    #: zswap's `Zswap.batch_size` (None: the compressor's ``crypto_acomp_batch_size``).
    batch_size: int | None = None
    #: zswap's `Zswap.compress_batching` (None: as the version has it).
    compress_batching: bool | None = None


@dataclass(frozen=True)
class Sample:
    """The state at one moment of the run."""

    t: float
    accesses: int
    pool_total_size: int
    stored_pages: int
    ratio: float
    #: zswap's share of the swap-ins since the previous sample (zswap vs the swap file).
    hit_rate: float
    written_back_pages: int
    resident_pages: int


@dataclass(frozen=True)
class WorkloadResult:
    config: WorkloadConfig
    driver: str
    elapsed_s: float
    accesses: int
    faults: int
    counters: dict[str, int]
    swap: SwapStatistics
    #: Pages read back different from what was swapped out, or not read back at all.
    lost: int
    #: Every page was checked once more at the end (``working_set`` of them).
    verified: int
    #: RAM pages still allocated after swapoff and freeing the process: must be 0.
    leaked_pages: int
    store_us: tuple[float, float]
    load_us: tuple[float, float]
    peak_pool_total_size: int
    peak_ratio: float
    samples: list[Sample] = field(default_factory=list)
    #: Pages swapped out per second of the random phase.
    swapout_pages_per_s: float = 0.0
    #: The share of zswap's store time (random phase) spent submitting compressions and
    #: waiting for them.
    compressor_share: float = 0.0
    #: zswap's pages per compression batch (1: page at a time).
    batch_size: int = 1

    @property
    def hit_rate(self) -> float:
        return self.swap.zswap_hit_rate

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["swap"]["zswap_hit_rate"] = self.hit_rate
        return d


def percentile_us(ns: Sequence[int], q: float) -> float:
    """The `q`th percentile of nanosecond samples, in microseconds (0 when there are none)."""
    if not ns:
        return 0.0
    return float(np.percentile(np.asarray(ns, dtype=np.float64), q)) / 1000.0


class _Process:
    """The process's page table, its resident LRU and the reclaim that keeps RAM free."""

    def __init__(self, cfg: WorkloadConfig, mem: PhysMem, area: SwapArea, zs: Zswap,
                 contents: list[bytes]) -> None:
        self.cfg = cfg
        self.mem = mem
        self.area = area
        self.zs = zs
        self.contents = contents
        n = cfg.working_set
        #: Pages per folio: the LRU, the busy marks, reclaim and faults work on folios
        #: (folio f is pages f * nr .. f * nr + nr - 1); 1 is the order-0 process.
        self.nr = cfg.folio_pages
        self.pfn = [-1] * n  # resident: its page frame
        self.slot = [0] * n  # swapped out: its swap offset
        self.shadow = [contents[v % len(contents)] for v in range(n)]
        self.lru: OrderedDict[int, None] = OrderedDict()  # folios
        self.busy: dict[int, anyio.Event] = {}  # folios
        self.low = max(4, mem.totalram_pages // 32)
        self.high = max(8, mem.totalram_pages // 16)
        self.faults = 0
        self.splits = 0  # folios swapped out page by page for want of a run of slots
        self.reclaims = 0
        self.mismatches = 0
        self.errors = 0

    async def _evict_one(self) -> bool:
        if not self.lru:
            return False
        f, _ = self.lru.popitem(last=False)
        ev = self.busy[f] = anyio.Event()
        nr = self.nr
        first = f * nr
        pfns = self.pfn[first:first + nr]
        self.pfn[first:first + nr] = [-1] * nr
        try:
            if nr == 1:
                self.slot[f] = await self.area.swap_out(self.mem.page_view(pfns[0]))
            else:
                # The folio's pages as one buffer (a large folio is contiguous memory).
                data = b"".join(self.mem.page_view(p) for p in pfns)
                try:
                    off = await self.area.swap_out_folio(Folio(data))
                    self.slot[first:first + nr] = range(off, off + nr)
                except SwapFullError:  # no aligned run of slots: split the folio
                    self.splits += 1
                    for i, p in enumerate(pfns):
                        self.slot[first + i] = await self.area.swap_out(self.mem.page_view(p))
        finally:
            for p in pfns:
                self.mem.free_page(p)
            del self.busy[f]
            ev.set()
        return True

    def shrink_slab(self) -> None:
        """The shrinkers reclaim runs besides the LRU: zsmalloc's compacts its pools
        (``zs_shrinker_scan`` -> ``zs_compact``)."""
        self.reclaims += 1
        if self.reclaims % 16:
            return
        for pool in self.zs.pools:
            if pool.type == "zsmalloc":
                zsmalloc.zs_compact(pool.zpool.pool)

    async def reclaim(self) -> None:
        """Direct reclaim: swap out LRU pages until free memory is above the high watermark."""
        mem = self.mem
        self.shrink_slab()
        while mem.nr_free_pages < self.high:
            if self.zs.shrinker_enabled and self.zs.shrinker_count():
                await self.zs.shrinker_scan(4)
            if not await self._evict_one():
                return

    async def alloc_page(self) -> int:
        while True:
            if self.mem.nr_free_pages < self.low:
                await self.reclaim()
            p = self.mem.alloc_page(GFP_KERNEL)
            if p is not None:
                return p
            if not await self._evict_one():
                await anyio.lowlevel.checkpoint()  # others' swap-outs will free some

    async def alloc_pages(self, n: int) -> list[int]:
        """`n` page frames at once (a folio's): none taken until `n` are free, so faults of
        large folios cannot each hold part of RAM and wait for the rest."""
        if n == 1:
            return [await self.alloc_page()]
        mem = self.mem
        while True:
            if mem.nr_free_pages < n + self.low:
                await self.reclaim_for(n)
            if mem.nr_free_pages >= n:
                got = [mem.alloc_page(GFP_KERNEL) for _ in range(n)]
                pfns = [p for p in got if p is not None]
                if len(pfns) != n:  # cannot happen: nothing ran since the check
                    raise RuntimeError("alloc_pages: free pages vanished")
                return pfns
            if not await self._evict_one():
                await anyio.lowlevel.checkpoint()  # others' swap-outs will free some

    async def reclaim_for(self, n: int) -> None:
        """Direct reclaim until `n` pages more than the high watermark are free."""
        self.shrink_slab()
        while self.mem.nr_free_pages < self.high + n:
            if self.zs.shrinker_enabled and self.zs.shrinker_count():
                await self.zs.shrinker_scan(4)
            if not await self._evict_one():
                return

    async def touch(self, v: int, write: bytes | None) -> None:
        f = v // self.nr
        while True:
            ev = self.busy.get(f)
            if ev is None:
                break
            await ev.wait()
        if self.pfn[v] < 0:
            await self._fault(f)
        else:
            self.lru.move_to_end(f)
        if write is not None and self.pfn[v] >= 0 and f not in self.busy:
            self.mem.page_view(self.pfn[v])[:] = write
            self.shadow[v] = write

    async def _fault(self, f: int) -> None:
        """Fault folio `f` in: first touch, or its pages back from swap (one page, or the
        folio's slots as one readahead window)."""
        ev = self.busy[f] = anyio.Event()
        nr = self.nr
        first = f * nr
        try:
            pfns = await self.alloc_pages(nr)
            pages = [self.mem.page_view(p) for p in pfns]
            offs = self.slot[first:first + nr]
            if offs[0] == 0:
                for i, page in enumerate(pages):
                    page[:] = self.shadow[first + i]  # first touch
            else:
                self.faults += 1
                if offs == list(range(offs[0], offs[0] + nr)):
                    rets = (await self.area.swap_in_readahead(offs[0], pages) if nr > 1
                            else [await self.area.swap_in(offs[0], pages[0])])
                else:  # a split folio: its pages wherever they went
                    rets = [await self.area.swap_in(o, page) for o, page in zip(
                        offs, pages, strict=True)]
                for i, (ret, page) in enumerate(zip(rets, pages, strict=True)):
                    want = self.shadow[first + i]
                    if ret != 0:
                        self.errors += 1
                        self.area.swap_free(offs[i])
                        page[:] = want  # SIGBUS in the kernel; go on with good data
                    elif page.tobytes() != want:
                        self.mismatches += 1
                        page[:] = want
                self.slot[first:first + nr] = [0] * nr
            self.pfn[first:first + nr] = pfns
            self.lru[f] = None
        finally:
            del self.busy[f]
            ev.set()

    async def verify_all(self) -> int:
        """Read every page once more (swapping in what is out): pages not as expected."""
        bad = 0
        buf = memoryview(bytearray(PAGE_SIZE))
        for v in range(self.cfg.working_set):
            if self.pfn[v] >= 0:
                bad += self.mem.page_view(self.pfn[v]).tobytes() != self.shadow[v]
            elif self.slot[v]:
                ret = await self.area.swap_in(self.slot[v], buf)
                if ret:
                    self.area.swap_free(self.slot[v])
                self.slot[v] = 0
                bad += ret != 0 or buf.tobytes() != self.shadow[v]
            else:
                bad += 1  # never touched: cannot happen after the populate phase
        return bad

    def free_all(self) -> None:
        for v in range(self.cfg.working_set):
            if self.pfn[v] >= 0:
                self.mem.free_page(self.pfn[v])
                self.pfn[v] = -1
            if self.slot[v]:
                self.area.swap_free(self.slot[v])
                self.slot[v] = 0
        self.lru.clear()


def _zipf_sequence(rng: np.random.Generator, n: int, s: float, count: int,
                   perm: np.ndarray[Any, Any]) -> list[int]:
    ranks = np.arange(1, n + 1, dtype=np.float64)
    p = 1.0 / ranks**s
    p /= p.sum()
    return [int(x) for x in perm[rng.choice(n, size=count, p=p)]]


async def run_workload(cfg: WorkloadConfig,
                       progress: Callable[[int], None] | None = None) -> WorkloadResult:
    """Run the workload of `cfg`; `progress(accesses_done)` is called at each sample."""
    if cfg.working_set < 1 or cfg.ram_pages < 64 or cfg.tasks < 1 or cfg.cpus < 1:
        raise ValueError("need working_set >= 1, ram_pages >= 64, tasks >= 1, cpus >= 1")
    nr = cfg.folio_pages
    if nr < 1 or nr & (nr - 1) or nr > 512 or cfg.working_set % nr:
        raise ValueError("folio_pages must be a power of two up to 512 dividing working_set")
    if nr > 1 and cfg.ram_pages < 4 * nr:
        raise ValueError(f"ram_pages must hold at least 4 folios ({4 * nr} pages)")
    old_cpus = sched.nr_cpu_ids()
    if old_cpus < cfg.cpus:
        sched.set_nr_cpu_ids(cfg.cpus)
    try:
        return await _run(cfg, progress)
    finally:
        if old_cpus < cfg.cpus:
            sched.set_nr_cpu_ids(old_cpus)


async def _run(cfg: WorkloadConfig, progress: Callable[[int], None] | None) -> WorkloadResult:
    rng = np.random.default_rng(cfg.seed)
    contents = [bytes(p) for p in corpus.pages(min(cfg.working_set, 2048), cfg.seed)]
    mem = PhysMem(cfg.ram_pages, name="ram")
    zs = Zswap(mem=mem, compressor=cfg.compressor, zpool=cfg.zpool, version=cfg.version,
               max_pool_percent=cfg.max_pool_percent,
               accept_threshold_percent=cfg.accept_threshold_percent,
               shrinker_enabled=cfg.shrinker_enabled, batch_size=cfg.batch_size,
               compress_batching=cfg.compress_batching)
    driver = str(zs.describe()["driver"])
    # Room for every page, and for large folios the aligned runs they need (slot 0 is the
    # header, and a run freed while in the swap cache stays reserved a moment).
    extra = 0 if cfg.folio_pages == 1 else cfg.folio_pages * (cfg.tasks + 2)
    device = SwapDevice(cfg.swap_path, cfg.working_set + 1 + 64 + cfg.tasks + extra,
                        io_delay=cfg.io_delay)
    area = SwapArea(device, zs, 0)
    proc = _Process(cfg, mem, area, zs, contents)
    samples: list[Sample] = []
    peak_size = [0]
    peak_ratio = [0.0]
    done = [0]
    t0 = time.perf_counter()
    per_task = max(1, cfg.accesses // cfg.tasks)
    total = per_task * cfg.tasks
    every = max(1, total // max(1, cfg.samples))

    last = [0, 0, 0.0]  # zswap loads, device reads, hit rate at the previous sample

    def sample() -> None:
        st = area.statistics()
        dz, dd = st.zswap_loads - last[0], st.device_reads - last[1]
        if dz + dd:
            last[2] = dz / (dz + dd)
        last[0], last[1] = st.zswap_loads, st.device_reads
        s = Sample(
            t=time.perf_counter() - t0,
            accesses=done[0],
            pool_total_size=zs.pool_total_size,
            stored_pages=zs.stored_pages,
            ratio=zs.compression_ratio(),
            hit_rate=last[2],
            written_back_pages=zs.written_back_pages,
            resident_pages=len(proc.lru),
        )
        samples.append(s)
        peak_size[0] = max(peak_size[0], s.pool_total_size)
        peak_ratio[0] = max(peak_ratio[0], s.ratio)
        if progress is not None:
            progress(done[0])

    perm = rng.permutation(cfg.working_set)
    seqs = [_zipf_sequence(rng, cfg.working_set, cfg.zipf, per_task, perm)
            for _ in range(cfg.tasks)]
    wrng = random.Random(cfg.seed)
    writes = [[contents[wrng.randrange(len(contents))] if wrng.random() < cfg.write_fraction
               else None for _ in range(per_task)] for _ in range(cfg.tasks)]

    async def populate(cpu: int, vpages: range) -> None:
        sched.new_task(f"populate/{cpu}")
        with sched.on_cpu(cpu):
            for v in vpages[::cfg.folio_pages]:
                await proc.touch(v, None)

    async def worker(i: int) -> None:
        sched.new_task(f"worker/{i}")
        with sched.on_cpu(i % cfg.cpus):
            for v, w in zip(seqs[i], writes[i], strict=True):
                await proc.touch(v, w)
                done[0] += 1
                if done[0] % every == 0:
                    sample()

    async with zs:
        # Populate: every page touched once, in order, by one task per CPU.
        nr = cfg.folio_pages
        step = -(-cfg.working_set // (cfg.cpus * nr)) * nr
        async with anyio.create_task_group() as tg:
            for c in range(cfg.cpus):
                tg.start_soon(populate, c, range(c * step, min(cfg.working_set, (c + 1) * step)))
        out0 = area.statistics().swapouts
        spent = [0, 0]
        with compressor_timed(spent, zs):
            t0 = time.perf_counter()
            sample()
            async with anyio.create_task_group() as tg:
                for i in range(cfg.tasks):
                    tg.start_soon(worker, i)
            elapsed = time.perf_counter() - t0
        if samples[-1].accesses != done[0]:
            sample()
        counters = zs.counters()
        stats = area.statistics()
        batch = zs.store_batch_size()
        bad = await proc.verify_all()
        lost = bad + proc.mismatches + proc.errors
        proc.free_all()
        area.close()
    leaked = mem.nr_used_pages
    zs.close()  # its pools and per-CPU transforms (after counting what the run left in memory)
    return WorkloadResult(
        config=cfg,
        driver=driver,
        elapsed_s=elapsed,
        accesses=done[0],
        faults=proc.faults,
        counters=counters,
        swap=stats,
        lost=lost,
        verified=cfg.working_set,
        leaked_pages=leaked,
        store_us=(percentile_us(area.store_ns, 50), percentile_us(area.store_ns, 99)),
        load_us=(percentile_us(area.load_ns, 50), percentile_us(area.load_ns, 99)),
        peak_pool_total_size=peak_size[0],
        peak_ratio=peak_ratio[0],
        samples=samples,
        swapout_pages_per_s=(stats.swapouts - out0) / elapsed if elapsed else 0.0,
        compressor_share=spent[0] / spent[1] if spent[1] else 0.0,
        batch_size=batch,
    )


def plot_samples(results: Sequence[WorkloadResult], path: str) -> None:
    """Save pool size, compression ratio and zswap hit rate over time, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
    for r in results:
        label = f"{r.driver} / {r.config.zpool}"
        ts = [s.t for s in r.samples]
        axes[0].plot(ts, [s.pool_total_size / 2**20 for s in r.samples], label=label)
        axes[1].plot(ts, [s.ratio for s in r.samples], label=label)
        axes[2].plot(ts, [100 * s.hit_rate for s in r.samples], label=label)
        axes[2].axhline(100 * r.hit_rate, color="grey", linestyle=":", linewidth=0.8)
    if results:
        limit = (results[0].config.ram_pages * results[0].config.max_pool_percent // 100
                 * PAGE_SIZE / 2**20)
        axes[0].axhline(limit, color="grey", linestyle="--", linewidth=0.8,
                        label="max_pool_percent")
    axes[0].set_ylabel("pool_total_size (MiB)")
    axes[1].set_ylabel("compression ratio")
    axes[2].set_ylabel("zswap hits (% of swap-ins)")
    axes[2].set_xlabel("time (s)")
    axes[0].legend(fontsize="small")
    axes[0].set_title("zswap under memory pressure")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
