"""The randomized zswap stress run shared by tests/reliability/test_stress.py and scripts/stress.

Many tasks on several virtual CPUs swap pages out and in through a swap area with zswap in
front (store, load, invalidate through ``swap_free``, writeback through the shrinker and the
shrink worker), and use a second swap type's frontswap ops directly (store over an existing
offset, load, invalidate_page). A controller changes the compressor and the zpool during the
run, through synchronous, asynchronous (``faulty(...)`` with errors, ``-EBUSY``, delays and
synchronous completions; lz4-opencl where present) and every CPU driver. Everything is checked
against a shadow dict: every page that went out comes back byte-exact, or the run counts it
lost. At the end ``invalidate_area`` must leave no page, handle, entry, slot or old pool.

With `StressConfig.folios`, a share of the swap-outs are large folios (2 - 16 pages: all or
nothing in zswap) and a share of the swap-ins read a readahead window of contiguous slots (one
decompression batch where zswap batches), with `StressConfig.batch_size` pages per batch.

zswap here is `zswap.integrity.ChecksumZswap` with its checksum on: a false checksum failure
would show up as a lost page.
"""

from __future__ import annotations

import errno
import random
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import anyio

from acomp import PAGE_SIZE, corpus, crypto_has_acomp, faulty, sched
from zswap import Folio, PhysMem, SwapArea, SwapDevice, SwapFullError
from zswap.integrity import ChecksumZswap

PLAN = "faulty(lz4)"
#: The fault plan of the faulty(...) phases: no corruption, no lost completion (zswap, like
#: the kernel, waits for a completion without a timeout), no duplicate (see docs/reliability).
FAULTS = faulty.FaultPlan(error=0.03, busy=0.2, delay=0.3, delay_s=(0.0002, 0.002), sync=0.2)
#: How often a swap-in that failed with -EIO (an injected decompression error) is retried.
EIO_RETRIES = 20


@dataclass
class StressConfig:
    ops: int = 3000
    seed: int = 0
    tasks: int = 8
    cpus: int = 4
    vpages: int = 512  # the simulated processes' pages (split between the tasks)
    direct_offsets: int = 128  # offsets of the second swap type used through frontswap ops
    ram_pages: int = 2048  # the memory the pools allocate from
    max_pool_percent: int = 8  # small: the shrink worker writes back
    changes: int = 6  # compressor/zpool changes over the run
    faults: bool = True
    version: str = "6.15"
    #: Swap out large folios and swap in readahead windows too (a share of the operations).
    folios: bool = False
    #: zswap's batch size (`Zswap.batch_size`; None: the compressor's own).
    batch_size: int | None = None
    #: Corrupt this share of the faulty phase's outputs (a control: the run must count them
    #: lost, since the checksum turns them into -EIO; 0 in real runs).
    corrupt: float = 0.0


@dataclass
class StressResult:
    config: StressConfig
    ops: Counter[str] = field(default_factory=Counter)
    lost: int = 0  # pages that did not come back, or came back wrong
    leaks: dict[str, int] = field(default_factory=dict)
    longest_stall_ms: float = 0.0
    longest_stall_op: str = ""
    max_ms: dict[str, float] = field(default_factory=dict)  # the slowest of each kind
    seconds: float = 0.0
    eio_retries: int = 0
    changes: list[str] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    faults_injected: dict[str, int] = field(default_factory=dict)
    peak_pool_pages: int = 0
    pool_limit_pages: int = 0
    reports: list[str] = field(default_factory=list)
    verified: int = 0

    @property
    def total_ops(self) -> int:
        return sum(self.ops.values())

    @property
    def leaked(self) -> int:
        return sum(self.leaks.values())

    def lines(self) -> list[str]:
        c = self.config
        out = [
            f"stress: {self.total_ops} operations in {self.seconds:.1f} s "
            f"({self.total_ops / max(self.seconds, 1e-9):.0f}/s), seed {c.seed}, "
            f"{c.tasks} tasks on {c.cpus} CPUs, zswap {c.version}",
            "  operations: " + ", ".join(f"{k} {v}" for k, v in sorted(self.ops.items())),
            f"  pages verified: {self.verified}",
            f"  pages lost: {self.lost}",
            f"  leaks: {self.leaked} {self.leaks}",
            f"  longest stall: {self.longest_stall_ms:.1f} ms ({self.longest_stall_op}); "
            "slowest by kind: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(
                self.max_ms.items())) + " ms",
            f"  pool peak: {self.peak_pool_pages} pages, limit {self.pool_limit_pages}",
            f"  swap-ins retried after an injected -EIO: {self.eio_retries}",
            "  faults injected (all survived): " + (", ".join(
                f"{k} {v}" for k, v in sorted(self.faults_injected.items())) or "none"),
            f"  changes: {len(self.changes)} (" + "; ".join(self.changes[:6])
            + ("; ..." if len(self.changes) > 6 else "") + ")",
            "  counters: " + ", ".join(f"{k} {v}" for k, v in self.counters.items() if v),
            f"  bug reports: {len(self.reports)}",
        ]
        out += [f"    {r}" for r in self.reports[:5]]
        return out


def _compressors() -> list[str]:
    names = ["lz4-scomp", "faulty(lz4-scomp)", "zstd-scomp", "deflate-scomp", "lz4hc-scomp"]
    if crypto_has_acomp("lzo-scomp"):
        names.append("lzo-scomp")
    if crypto_has_acomp("lz4-opencl"):
        names.insert(2, "lz4-opencl")
    return names


async def run_stress(cfg: StressConfig) -> StressResult:
    """One run; the caller checks the result (`lost`, `leaked`, `reports` must be empty)."""
    old_cpus = sched.nr_cpu_ids()
    old_mode = sched.config.lock_debug
    sched.set_nr_cpu_ids(max(old_cpus, cfg.cpus))
    sched.config.lock_debug = "warn"  # a report from a completion thread must not kill it
    faulty.set_plan(PLAN, FAULTS if cfg.faults else faulty.FaultPlan(), seed=cfg.seed,
                    corrupt=cfg.corrupt)
    faulty.stats(PLAN).injected.clear()
    n_reports = len(sched.reports)
    try:
        return await _run(cfg)
    finally:
        faulty.set_plan(PLAN, faulty.FaultPlan())
        sched.set_nr_cpu_ids(old_cpus)
        sched.config.lock_debug = old_mode
        del sched.reports[n_reports:]


async def _run(cfg: StressConfig) -> StressResult:
    res = StressResult(cfg)
    rng = random.Random(cfg.seed)
    contents = [bytes(p) for p in corpus.pages(256, seed=cfg.seed)]
    mem = PhysMem(cfg.ram_pages, name="stress")
    compressors = _compressors() if cfg.faults else [
        c for c in _compressors() if not c.startswith("faulty")]
    zpools = ["zsmalloc", "zbud", "z3fold"]
    zs = ChecksumZswap(mem=mem, compressor=compressors[0], zpool="zsmalloc",
                       version=cfg.version,  # type: ignore[arg-type]
                       max_pool_percent=cfg.max_pool_percent, shrinker_enabled=True,
                       batch_size=cfg.batch_size)
    zpools = [z for z in zpools if z not in zs.paths.removed]  # none after 6.15 but zsmalloc
    area = SwapArea(SwapDevice(None, cfg.vpages + 64), zs, type=0)
    zs.init(1)  # the second type: frontswap ops straight on zswap
    res.pool_limit_pages = cfg.ram_pages * cfg.max_pool_percent // 100
    shadow: dict[int, bytes] = {}  # vpage -> content while swapped out
    where: dict[int, int] = {}  # vpage -> swap offset
    owner: dict[int, int] = {}  # swap offset -> vpage
    direct: dict[int, bytes] = {}  # offset of type 1 -> content zswap must hold
    offset_locks = [anyio.Lock() for _ in range(cfg.direct_offsets)]
    gen = [0]
    done = [0]
    stall = [0.0, ""]
    per_task = max(1, cfg.vpages // cfg.tasks)
    change_every = max(1, cfg.ops // (cfg.changes + 1)) if cfg.changes else 0

    def content() -> bytes:
        gen[0] += 1
        base = contents[rng.randrange(len(contents))]
        if rng.random() < 0.1:
            return base  # same-filled and zero pages stay what they are
        page = bytearray(base)
        struct.pack_into("<QQ", page, 16 * rng.randrange(PAGE_SIZE // 16), gen[0], cfg.seed)
        return bytes(page)

    async def swap_in(v: int) -> None:
        off = where.pop(v)
        owner.pop(off, None)
        out = bytearray(PAGE_SIZE)
        for _ in range(EIO_RETRIES):
            ret = await area.swap_in(off, out)
            if ret != -errno.EIO:
                break
            res.eio_retries += 1  # an injected decompression error: the entry is kept
        want = shadow.pop(v)
        if ret != 0 or out != want:
            res.lost += 1
            if ret == -errno.EIO:
                area.swap_free(off)
        res.verified += 1

    async def swap_out_folio(r: random.Random, v: int, mine: range) -> bool:
        """A folio of 2^k of the task's vpages around `v`, all swapped in now; False when
        there is no such group or no aligned run of slots."""
        nr = 1 << r.randint(1, 4)
        first = v - (v - mine.start) % nr
        group = range(first, first + nr)
        if group.stop > mine.stop or any(u in where for u in group):
            return False
        pages = [content() for _ in group]
        try:
            off = await area.swap_out_folio(Folio(b"".join(pages)))
        except SwapFullError:
            return False
        for i, u in enumerate(group):
            shadow[u] = pages[i]
            where[u] = off + i
            owner[off + i] = u
        return True

    async def readahead(v: int, mine: range) -> None:
        """Swap in the run of contiguous slots from `v`'s that hold this task's vpages."""
        off = where[v]
        run = [v]
        while len(run) < 16 and owner.get(off + len(run), -1) in mine:
            run.append(owner[off + len(run)])
        for i, u in enumerate(run):
            where.pop(u)
            owner.pop(off + i, None)
        outs = [bytearray(PAGE_SIZE) for _ in run]
        rets = await area.swap_in_readahead(off, outs)
        for i, u in enumerate(run):
            ret = rets[i]
            for _ in range(EIO_RETRIES):
                if ret != -errno.EIO:
                    break
                res.eio_retries += 1
                ret = await area.swap_in(off + i, outs[i])
            want = shadow.pop(u)
            if ret != 0 or outs[i] != want:
                res.lost += 1
                if ret == -errno.EIO:
                    area.swap_free(off + i)
            res.verified += 1

    async def direct_op(r: random.Random) -> str:
        off = r.randrange(cfg.direct_offsets)
        # Callers of frontswap hold the page lock: one operation per offset at a time.
        async with offset_locks[off]:
            return await _direct_op(r, off)

    async def _direct_op(r: random.Random, off: int) -> str:
        what = r.random()
        if what < 0.5:  # store, over an old entry or not
            page = content()
            ret = await zs.store(1, off, page)
            if ret == 0:
                direct[off] = page
            return "direct_store"
        if what < 0.85:
            out = bytearray(PAGE_SIZE)
            ret = await zs.load(1, off, out)
            want = direct.get(off)
            if ret == -errno.EIO:
                res.eio_retries += 1
                return "direct_load"
            if want is None:
                if ret != zs.load_miss:
                    res.lost += 1
            elif ret != 0 or out != want:
                res.lost += 1
            else:
                res.verified += 1
                if zs.paths.load_is_exclusive():
                    del direct[off]  # exclusive loads: zswap let go of it
            return "direct_load"
        zs.invalidate_page(1, off)
        direct.pop(off, None)
        return "direct_invalidate"

    def change(i: int) -> None:
        if i % 2 and len(zpools) > 1:
            name = zpools[(i // 2 + 1) % len(zpools)]
            zs.zpool = name
            res.changes.append(f"zpool {name}")
        else:
            name = compressors[(i // 2 + 1) % len(compressors)]
            zs.compressor = name
            res.changes.append(f"compressor {name}")

    async def task(t: int) -> None:
        sched.new_task(f"stress/{t}")
        r = random.Random(cfg.seed * 1000 + t)
        mine = range(t * per_task, (t + 1) * per_task)
        with sched.on_cpu(t % cfg.cpus):
            while done[0] < cfg.ops:
                done[0] += 1
                if change_every and done[0] % change_every == 0 and \
                        len(res.changes) < cfg.changes:
                    change(len(res.changes))
                v = r.choice(mine)
                t0 = time.perf_counter()
                what = r.random()
                if what < 0.10:
                    op = await direct_op(r)
                elif what < 0.14:
                    op = "writeback"
                    await zs.shrinker_scan(r.randint(1, 8))
                elif v in where:
                    if what < 0.24:
                        op = "invalidate"
                        off = where.pop(v)
                        owner.pop(off, None)
                        area.swap_free(off)  # the process freed it unread
                        del shadow[v]
                    elif cfg.folios and what < 0.5:
                        op = "readahead"
                        await readahead(v, mine)
                    else:
                        op = "load"
                        await swap_in(v)
                elif cfg.folios and what < 0.5 and await swap_out_folio(r, v, mine):
                    op = "store_folio"
                else:
                    op = "store"
                    shadow[v] = content()
                    where[v] = await area.swap_out(shadow[v])
                    owner[where[v]] = v
                dt = time.perf_counter() - t0
                res.ops[op] += 1
                if dt * 1000 > res.max_ms.get(op, 0.0):
                    res.max_ms[op] = dt * 1000
                if dt > stall[0]:
                    stall[0], stall[1] = dt, op
                pages = -(-zs.pool_total_size // PAGE_SIZE)
                res.peak_pool_pages = max(res.peak_pool_pages, pages)

    t_start = time.perf_counter()
    async with zs:
        async with anyio.create_task_group() as tg:
            for t in range(cfg.tasks):
                tg.start_soon(task, t)
        await zs.flush_shrink_work()
        faulty.set_plan(PLAN, faulty.FaultPlan())  # read everything back without faults
        for v in list(where):
            await swap_in(v)
        for off, want in list(direct.items()):
            out = bytearray(PAGE_SIZE)
            if await zs.load(1, off, out) != 0 or out != want:
                res.lost += 1
            else:
                res.verified += 1
    res.seconds = time.perf_counter() - t_start
    res.longest_stall_ms, res.longest_stall_op = stall[0] * 1000, stall[1]
    res.counters = zs.counters()
    res.faults_injected = dict(faulty.stats(PLAN).injected)
    area.close()  # swapoff: invalidate_area(0)
    zs.invalidate_area(1)
    st = zs.statistics()
    res.leaks = {
        "pages": mem.nr_used_pages,
        "stored_pages": zs.stored_pages,
        "pool_bytes": zs.pool_total_size,
        "entries": st.entries,
        "old_pools": len(zs.pools) - 1,
        "swap_slots": area.statistics().slots_used,
        "checksums": len(zs._sums),
    }
    res.reports = [r.title for r in sched.reports]
    zs.close()
    return res


def to_dict(res: StressResult) -> dict[str, Any]:
    return {
        "ops": res.total_ops, "by_op": dict(res.ops), "lost": res.lost, "leaks": res.leaks,
        "longest_stall_ms": round(res.longest_stall_ms, 2),
        "longest_stall_op": res.longest_stall_op, "seconds": round(res.seconds, 2),
        "max_ms": {k: round(v, 2) for k, v in res.max_ms.items()},
        "verified": res.verified, "eio_retries": res.eio_retries,
        "faults_injected": res.faults_injected, "changes": res.changes,
        "counters": res.counters, "peak_pool_pages": res.peak_pool_pages,
        "pool_limit_pages": res.pool_limit_pages, "reports": res.reports,
        "seed": res.config.seed, "tasks": res.config.tasks, "cpus": res.config.cpus,
    }
