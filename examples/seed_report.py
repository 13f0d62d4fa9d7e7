"""Replay the seed: zswap on zsmalloc with an asynchronous compressor, broken (v5.11) and fixed.

v5.11 made zswap use acomp: its load maps the zsmalloc object (preemption off, the per-CPU
mapping area in use), takes the per-CPU mutex and waits for the compressor. Mike Galbraith
reported the splat ("BUG: sleeping function called from invalid context"); with an asynchronous
compressor the task really sleeps there, and another task on the same CPU that maps an object
overwrites the mapping area the first one is decompressing from. v5.12 copies the object out
first ("mm/zswap: add the flag can_sleep_mapped"), v6.9 does so only for an asynchronous
compressor, v6.15 reads through zsmalloc's sleepable zs_obj_read_begin, v6.18 (no zpool
layer) calls zsmalloc's zs_obj_read_begin itself, and v7.0 decompresses straight from the
pool's pages through zs_obj_read_sg_begin's scatterlist. The v5.11 splat is printed as v5.11
prints it (the modelled kernel set to 5.11 for it); the loads run on the default kernel's
acomp API with each version's zswap paths.

    python examples/seed_report.py                      # faulty(lz4-scomp): completes from a thread
    python examples/seed_report.py --compressor opencl  # lz4-opencl, where an OpenCL device exists

Prints each outcome plainly; exits 0 when 5.11 is broken and every fixed version is clean.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field

import anyio

from acomp import PAGE_SIZE, crypto_has_acomp, faulty, sched, using_kernel
from zswap import PhysMem, Zswap, zsmalloc

PLAN = "faulty(lz4)"
#: The seed and every fix: v5.12's copy, v6.9's copy for an asynchronous compressor only,
#: v6.15's sleepable zsmalloc reads, v6.18's calls into zsmalloc without zpool and v7.0's
#: decompression straight from zsmalloc's scatterlist.
VERSIONS = ("5.11", "5.12", "6.9", "6.15", "6.18", "7.0")


def page_of(seed: int) -> bytes:
    """1100 random bytes then zeros: every such page compresses to the same length."""
    return random.Random(seed).randbytes(1100) + bytes(PAGE_SIZE - 1100)


@dataclass
class Outcome:
    version: str
    splat: str = ""
    pair: str = ""
    pair_ok: bool = True
    wrong: int = 0
    failed: int = 0
    right: int = 0
    reports: Counter[str] = field(default_factory=Counter)

    @property
    def clean(self) -> bool:
        return (not self.splat and self.pair_ok and not self.wrong and not self.failed
                and not self.reports)


def set_mode(mode: str) -> None:
    sched.set_debug_checks(True)  # the bugs are the subject: CONFIG_DEBUG_ATOMIC_SLEEP=y
    sched.reset()
    zsmalloc.reset_mapping_areas()
    sched.config.atomic_sleep = mode  # type: ignore[assignment]
    sched.config.lock_debug = mode  # type: ignore[assignment]


def new_zswap(compressor: str, version: str) -> Zswap:
    zs = Zswap(mem=PhysMem(2048), compressor=compressor, zpool="zsmalloc",
               version=version, max_pool_percent=100)  # type: ignore[arg-type]
    zs.init(0)
    return zs


async def splat(compressor: str, version: str) -> str:
    """One load in raise mode: the splat's text, or "" when there is none."""
    set_mode("raise")
    zs = new_zswap(compressor, version)
    page = page_of(1)
    await zs.store(0, 1, page)
    out = bytearray(PAGE_SIZE)
    try:
        await zs.load(0, 1, out)
    except sched.SleepInAtomicError as e:
        return e.report.text
    finally:
        zs.close()
    return ""


async def spanning_pair(zs: Zswap) -> tuple[int, int, dict[int, bytes]]:
    """Two stored objects that span two pages (so they map through the per-CPU area)."""
    pages: dict[int, bytes] = {}
    found: list[int] = []
    for off in range(1, 64):
        pages[off] = page_of(off)
        await zs.store(0, off, pages[off])
        e = zs.entry(0, off)
        if e is not None and zsmalloc.zs_obj_info(zs.pools[0].zpool.pool, e.handle).spans:
            found.append(off)
            if len(found) == 2:
                break
    return found[0], found[1], pages


async def concurrent_loads(compressor: str, version: str, npages: int, tasks: int) -> Outcome:
    """Warn mode (the kernel carries on after the splat): first one pair of loads on CPU 0,
    A sleeping in its decompression while B maps; then `npages` pages loaded by `tasks` tasks
    on CPU 0. Counts pages that came back wrong or failed."""
    set_mode("warn")
    res = Outcome(version)
    zs = new_zswap(compressor, version)
    a, b, pages = await spanning_pair(zs)
    outs = {a: bytearray(PAGE_SIZE), b: bytearray(PAGE_SIZE)}
    rets: dict[int, int] = {}

    async def load(off: int, out: bytearray) -> None:
        sched.new_task(f"load/{off}")
        rets[off] = await zs.load(0, off, out)

    # With faulty(...), A's completion is held until B has mapped its object and waits too,
    # so the overlap happens however loaded the machine is; a real device completes when it
    # does (A is given a millisecond to fall asleep).
    held = threading.Event() if compressor.startswith("faulty(") else None
    if held is not None:
        faulty.set_plan(PLAN, hold=held)
    async with anyio.create_task_group() as tg:
        tg.start_soon(load, a, outs[a])
        await (anyio.sleep(0.001) if held is None else anyio.wait_all_tasks_blocked())
        tg.start_soon(load, b, outs[b])  # A is asleep in crypto_wait_req
        if held is not None:
            await anyio.wait_all_tasks_blocked()  # B mapped, and waits (mutex or device)
            held.set()
    if held is not None:
        faulty.set_plan(PLAN, hold=None)
    if outs[a] == pages[a]:
        res.pair = f"load(offset {a}) -> {rets[a]}, byte-exact"
    elif outs[a] == pages[b]:
        res.pair = (f"load(offset {a}) -> {rets[a]}, but the page holds offset {b}'s bytes: "
                    "CORRUPTED")
    else:
        res.pair = f"load(offset {a}) -> {rets[a]}, page differs from what was stored: CORRUPTED"
    res.pair += f"; load(offset {b}) -> {rets[b]}, " + (
        "byte-exact" if outs[b] == pages[b] else "CORRUPTED")
    # bulk
    bulk = {1000 + i: page_of(1000 + i) for i in range(npages)}
    for off, p in bulk.items():
        await zs.store(0, off, p)
    offs = [o for o in bulk if zs.entry(0, o) is not None]
    results: dict[int, tuple[int, bytes]] = {}

    async def loader(k: int) -> None:
        sched.new_task(f"loader/{k}")
        out = bytearray(PAGE_SIZE)
        for off in offs[k::tasks]:
            ret = await zs.load(0, off, out)
            results[off] = (ret, bytes(out))

    async with anyio.create_task_group() as tg:
        for k in range(tasks):
            tg.start_soon(loader, k)
    for off, (ret, data) in results.items():
        if ret:
            res.failed += 1
        elif data != bulk[off]:
            res.wrong += 1
        else:
            res.right += 1
    res.pair_ok = rets == {a: 0, b: 0} and outs[a] == pages[a] and outs[b] == pages[b]
    res.reports = Counter(r.kind for r in sched.reports)
    zs.close()
    return res


async def main_async(compressor: str, npages: int, tasks: int) -> int:
    if compressor.startswith("faulty("):
        # Each completion comes 2-5 ms later from a timer thread: the waits really sleep.
        faulty.set_plan(PLAN, delay=1.0, delay_s=(0.002, 0.005), seed=1)
    print(f"seed_report: zswap on zsmalloc with {compressor} (asynchronous: completions come "
          "from another thread)\n")
    with using_kernel("5.11"):  # the splat in v5.11's format (no preempt_count: line)
        text = await splat(compressor, "5.11")
    print("== v5.11, raise mode: one load ==")
    print(text if text else "no splat")
    print()
    outcomes = [await concurrent_loads(compressor, v, npages, tasks)
                for v in VERSIONS]
    for o in outcomes:
        o.splat = text if o.version == "5.11" else await splat(compressor, o.version)
        print(f"== v{o.version}, warn mode: two loads on CPU 0, then {npages} pages by "
              f"{tasks} tasks on CPU 0 ==")
        print(o.pair)
        print(f"bulk: {o.right} right, {o.wrong} wrong, {o.failed} failed (-EIO)")
        kinds = ", ".join(f"{k} x{n}" for k, n in sorted(o.reports.items())) or "none"
        print(f"splats and warnings reported: {kinds}")
        print("outcome: " + ("clean" if o.clean else "BROKEN"))
        print()
    broken = outcomes[0]
    fixed = outcomes[1:]
    print("Outcome:")
    print(f"  v5.11: {'BROKEN: the splat' if broken.splat else 'no splat'}"
          f"{' and corrupted pages' if broken.wrong or not broken.pair_ok else ''}"
          f"{' and failed loads' if broken.failed else ''}")
    for o in fixed:
        print(f"  v{o.version}: {'clean' if o.clean else 'BROKEN'}")
    faulty.set_plan(PLAN, faulty.FaultPlan())
    ok = (not broken.clean) and bool(broken.splat) and all(o.clean for o in fixed)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--compressor", default="faulty",
                   help="faulty (faulty(lz4-scomp), default), opencl (lz4-opencl) or any "
                        "acomp driver name")
    p.add_argument("--pages", type=int, default=48, help="pages in the bulk part (default 48)")
    p.add_argument("--tasks", type=int, default=8, help="loading tasks on CPU 0 (default 8)")
    p.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio",
                   help="the anyio backend to run on (default asyncio)")
    args = p.parse_args(argv)
    name = {"faulty": "faulty(lz4-scomp)", "opencl": "lz4-opencl"}.get(args.compressor,
                                                                        args.compressor)
    if not crypto_has_acomp(name):
        print(f"seed_report: no driver {name!r} here", file=sys.stderr)
        return 2
    # The splats are counted and the first one printed; the log would repeat each of them.
    logging.getLogger("acomp.sched").setLevel(logging.CRITICAL)
    logging.getLogger("zswap.zpool").setLevel(logging.CRITICAL)
    return anyio.run(main_async, name, args.pages, args.tasks, backend=args.backend)


if __name__ == "__main__":
    sys.exit(main())
