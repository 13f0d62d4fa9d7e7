"""The seed's bug and its fixes: v5.11 decompresses while a zsmalloc object is mapped.

With zsmalloc the mapping disables preemption and, for an object that spans two pages, points
into this CPU's mapping area. v5.11 then takes the per-CPU mutex and waits for the compressor:
the execution model reports "BUG: sleeping function called from invalid context", and when
execution goes on (warn mode) another task on the same CPU maps its own object into the same
area while the first one sleeps, so the first decompresses the other's bytes: its page comes
back with the wrong contents and the load says 0. v5.12 copies the object out first, v6.9 only
for an asynchronous compressor, v6.15 reads through zs_obj_read_begin: all clean.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import anyio
import pytest
from zswap_helpers import ASYNC, PLAN, assert_loads_back, random_prefix_page, wait_until

from acomp import PAGE_SIZE, AcompReq, faulty, sched, using_kernel
from acomp.testing import FakeAsyncDriver, Step
from zswap import PhysMem, Zswap, zsmalloc

pytestmark = pytest.mark.anyio


class Held:
    """An asynchronous compressor whose first decompression waits until `release`."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.fake: FakeAsyncDriver | None = None
        self.decompressions = 0

    @property
    def name(self) -> str:
        return "fakez-async" if self.kind == "fake" else ASYNC

    def _step(self, num: int, req: AcompReq, op: str) -> Step:
        if op == "decompress":
            self.decompressions += 1
            if self.decompressions == 1:
                return Step(latency=None)
        return Step()

    def __enter__(self) -> Held:
        if self.kind == "fake":
            self.fake = FakeAsyncDriver(self._step, name="fakez", driver="fakez-async")
            self.fake.register()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fake is not None:
            self.fake.unregister()

    def hold_first_decompress(self) -> None:
        if self.kind == "faulty":  # a delay stands for the hold
            faulty.set_plan(PLAN, delay=1.0, delay_s=(0.05, 0.05))

    async def wait_held(self, requests_before: int) -> None:
        if self.fake is not None:
            fake = self.fake
            await wait_until(lambda: fake.statistics().held == 1)
        else:
            await wait_until(lambda: faulty.stats(PLAN).requests > requests_before)

    def release(self) -> None:
        if self.fake is not None:
            self.fake.release()

    def requests(self) -> int:
        return faulty.stats(PLAN).requests


@pytest.fixture(params=["fake", "faulty"])
def held(request: pytest.FixtureRequest) -> Iterator[Held]:
    with Held(str(request.param)) as h:
        yield h


async def store_pair(zs: Zswap) -> tuple[int, int, dict[int, bytes]]:
    pages: dict[int, bytes] = {}
    spanning: list[int] = []
    for off in range(1, 40):
        pages[off] = random_prefix_page(off, 1100)
        assert await zs.store(0, off, pages[off]) == 0
        e = zs.entry(0, off)
        assert e is not None
        if zs.zpool != "zsmalloc":
            spanning.append(off)
        elif zsmalloc.zs_obj_info(zs.pools[0].zpool.pool, e.handle).spans:
            spanning.append(off)
        if len(spanning) == 2:
            break
    a, b = spanning
    ea, eb = zs.entry(0, a), zs.entry(0, b)
    assert ea is not None
    assert eb is not None
    assert ea.length == eb.length  # so that decompressing B's bytes "succeeds" for A
    return a, b, pages


async def two_loads_on_one_cpu(zs: Zswap, held: Held, a: int, b: int
                               ) -> tuple[dict[int, int | BaseException], dict[int, bytearray]]:
    """A's load sleeps in its decompression; then B's load runs on the same CPU."""
    outs = {a: bytearray(PAGE_SIZE), b: bytearray(PAGE_SIZE)}
    rets: dict[int, int | BaseException] = {}

    async def load(off: int) -> None:
        sched.new_task(f"load/{off}")
        try:
            rets[off] = await zs.load(0, off, outs[off])
        except sched.SleepInAtomicError as e:
            rets[off] = e

    before = held.requests()
    held.hold_first_decompress()
    async with anyio.create_task_group() as tg:
        tg.start_soon(load, a)
        await held.wait_held(before)
        tg.start_soon(load, b)
        await anyio.sleep(0.005)  # B maps, then waits for the per-CPU mutex A holds
        held.release()
    return rets, outs


async def assert_stored_intact(zs: Zswap, pages: dict[int, bytes], offs: tuple[int, ...]
                               ) -> None:
    """What the pool stores is intact (only what a corrupted load read was wrong): each of
    `offs` loads back as its page on a kernel without the bug (v6.15)."""
    zs.version = "6.15"
    await assert_loads_back(zs, {off: pages[off] for off in offs})


def make(zpool: str, version: str, compressor: str) -> Zswap:
    zs = Zswap(mem=PhysMem(1024), compressor=compressor, zpool=zpool,
               version=version)  # type: ignore[arg-type]
    zs.init(0)
    return zs


@pytest.mark.parametrize("compressor", [ASYNC, "lz4-scomp"])
async def test_5_11_load_on_zsmalloc_splats(compressor: str) -> None:
    """Raise mode: the splat, whatever the compressor (Mike Galbraith's report was with a
    synchronous one: the mutex alone sleeps under the mapping). Its lines in the order v5.11's
    kernel/sched/core.c ___might_sleep prints them: the BUG and in_atomic() lines, no
    preempt_count line (v5.16 added it), debug_show_held_locks (the zspage's rwlock is the only
    lock lockdep knows of: the pin is a bit spin lock, the mapping area get_cpu_var), the place
    preemption was disabled, then dump_stack's CPU/PID/Comm line (lib/dump_stack.c) and trace."""
    with using_kernel("5.11"):
        zs = make("zsmalloc", "5.11", compressor)
        page = random_prefix_page(3, 1100)
        assert await zs.store(0, 1, page) == 0
        out = bytearray(PAGE_SIZE)
        with pytest.raises(sched.SleepInAtomicError) as ei:
            await zs.load(0, 1, out)
    lines = ei.value.report.text.splitlines()
    assert lines[0].startswith("BUG: sleeping function called from invalid context at ")
    assert lines[1].startswith("in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: ")
    assert not any(line.startswith("preempt_count:") for line in lines)
    assert re.fullmatch(r"1 lock held by \S+/\d+:", lines[2])
    assert re.fullmatch(r" #0: \(&zspage->lock\), at: zs_map_object\+0x0/0x0 \[.*\]",
                        lines[3])
    assert lines[4] == "Preemption disabled at:"
    assert "zs_map_object" in lines[5]
    pid = lines[1].split("pid: ")[1].split(",")[0]
    assert re.fullmatch(rf"CPU: 0 PID: {pid} Comm: \S+", lines[6])
    assert lines[7] == "Call Trace:"
    trace = "\n".join(lines[7:])
    assert "_decompress" in trace
    assert "load" in trace


def might_sleep_under_demo_lock() -> str:
    """The splat of might_sleep() under a held spin lock "demo_lock" (in the current kernel)."""
    lock = sched.SpinLock("demo_lock")
    lock.lock()
    try:
        with pytest.raises(sched.SleepInAtomicError) as ei:
            sched.might_sleep()
    finally:
        lock.unlock()
    return ei.value.report.text


async def test_splat_has_preempt_count_and_uid_where_the_kernel_prints_them() -> None:
    """kernel/sched/core.c __might_resched (v5.16+) prints "preempt_count: %x, expected: %x"
    after the in_atomic() line; lib/dump_stack.c prints UID from v6.11."""
    for version, count, uid in (("5.11", False, False), ("6.9", True, False),
                                ("6.14", True, True)):
        with using_kernel(version):
            sched.reset()
            lines = might_sleep_under_demo_lock().splitlines()
        assert (lines[2] == "preempt_count: 1, expected: 0") is count, version
        held = lines.index(next(x for x in lines if "lock held by" in x))
        assert held == (3 if count else 2)
        assert lines[held + 1].startswith(" #0: (demo_lock), at: ")
        cpu = next(x for x in lines if x.startswith("CPU: "))
        assert cpu.startswith("CPU: 0 UID: 0 PID: " if uid else "CPU: 0 PID: "), version
        assert lines.index(cpu) > lines.index("Preemption disabled at:")
        assert lines[lines.index(cpu) + 1] == "Call Trace:"


async def test_5_11_warn_mode_returns_another_pages_bytes(
        held: Held, caplog: pytest.LogCaptureFixture) -> None:
    sched.config.atomic_sleep = "warn"  # the kernel prints the splat and carries on
    sched.config.lock_debug = "warn"
    zs = make("zsmalloc", "5.11", held.name)
    a, b, pages = await store_pair(zs)
    with caplog.at_level(logging.ERROR):
        rets, outs = await two_loads_on_one_cpu(zs, held, a, b)
    assert rets == {a: 0, b: 0}  # both loads "succeeded"
    assert outs[b] == pages[b]
    assert outs[a] != pages[a]
    assert outs[a] == pages[b]  # A's page holds B's data: silent corruption
    kinds = [r.kind for r in sched.reports]
    assert kinds[0] == "sleep_in_atomic"
    assert "zs_map_area" in kinds  # B's map took the area A still used
    assert "BUG: sleeping function called from invalid context" in caplog.text
    # What zsmalloc stores is intact: only what A read was wrong.
    await assert_stored_intact(zs, pages, (a, b))
    zs.close()


async def test_5_11_with_the_debug_checks_off_corrupts_unreported(held: Held) -> None:
    """ACOMP_DEBUG_CHECKS=0 (a kernel without CONFIG_DEBUG_ATOMIC_SLEEP): the same silent
    corruption as warn mode, and not one report."""
    sched.set_debug_checks(False)
    zs = make("zsmalloc", "5.11", held.name)
    a, b, pages = await store_pair(zs)
    rets, outs = await two_loads_on_one_cpu(zs, held, a, b)
    assert rets == {a: 0, b: 0}
    assert outs[b] == pages[b]
    assert outs[a] == pages[b]  # A's page holds B's data
    assert sched.reports == []
    assert not sched.in_atomic()
    sched.set_debug_checks(True)
    await assert_stored_intact(zs, pages, (a, b))
    zs.close()


@pytest.mark.parametrize("zpool", ["zbud", "z3fold"])
async def test_5_11_is_clean_on_pools_that_can_sleep_mapped(held: Held, zpool: str) -> None:
    zs = make(zpool, "5.11", held.name)
    a, b, pages = await store_pair(zs)
    rets, outs = await two_loads_on_one_cpu(zs, held, a, b)
    assert rets == {a: 0, b: 0}
    assert outs[a] == pages[a]
    assert outs[b] == pages[b]
    assert sched.reports == []
    zs.close()


@pytest.mark.parametrize(("version", "copies"), [("5.12", 2), ("6.9", 2), ("6.15", 0)])
async def test_fixed_versions_are_clean_on_zsmalloc(held: Held, version: str,
                                                    copies: int) -> None:
    zs = make("zsmalloc", version, held.name)
    a, b, pages = await store_pair(zs)
    rets, outs = await two_loads_on_one_cpu(zs, held, a, b)
    assert rets == {a: 0, b: 0}
    assert outs[a] == pages[a]
    assert outs[b] == pages[b]
    assert sched.reports == []  # raise mode: any splat would have failed the load
    assert zs.statistics().load_copies == copies  # 6.15 reads via zs_obj_read_begin
    zs.close()


@pytest.mark.parametrize(("version", "copies"), [("5.12", 1), ("6.9", 0)])
async def test_6_9_skips_the_copy_for_a_synchronous_compressor(version: str,
                                                              copies: int) -> None:
    """lz4-scomp never sleeps: 6.9 decompresses straight from the mapping; 5.12 copied."""
    zs = make("zsmalloc", version, "lz4-scomp")
    page = random_prefix_page(5, 1100)
    assert await zs.store(0, 1, page) == 0
    out = bytearray(PAGE_SIZE)
    assert await zs.load(0, 1, out) == 0
    assert out == page
    assert zs.statistics().load_copies == copies
    assert sched.reports == []
    zs.close()


@pytest.mark.parametrize(("version", "modelled"), [("5.11", "6.14"), ("5.11", "7.0")])
async def test_the_splat_follows_the_instances_version(version: str, modelled: str) -> None:
    """Zswap(version="5.11") prints v5.11's lines (kernel/sched/core.c ___might_sleep: no
    preempt_count line; lib/dump_stack.c: no UID) whatever acomp.kernel() is: the format
    follows the kernel whose zswap code sleeps (the paths' splat_kernel), not the global
    switch."""
    with using_kernel(modelled):
        zs = make("zsmalloc", version, "lz4-scomp")
        page = random_prefix_page(3, 1100)
        assert await zs.store(0, 1, page) == 0
        with pytest.raises(sched.SleepInAtomicError) as ei:
            await zs.load(0, 1, bytearray(PAGE_SIZE))
        zs.close()
    lines = ei.value.report.text.splitlines()
    assert not any(line.startswith("preempt_count:") for line in lines)
    assert re.fullmatch(r"CPU: 0 PID: \d+ Comm: \S+", next(x for x in lines
                                                          if x.startswith("CPU: ")))


async def test_outside_zswap_the_splat_follows_the_modelled_kernel() -> None:
    with using_kernel("7.0"):
        text = might_sleep_under_demo_lock()
    assert "preempt_count: 1, expected: 0" in text
    assert "CPU: 0 UID: 0 PID: " in text
