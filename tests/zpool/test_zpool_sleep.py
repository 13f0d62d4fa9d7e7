"""Sleeping while mapped: the splat under a zsmalloc mapping, the v5.11 zswap corruption it lets
happen when execution goes on, and the designs where sleeping is allowed (zbud, z3fold, and
zsmalloc's v6.15 sleepable reads)."""

from __future__ import annotations

import logging
import random

import anyio
import pytest

import zswap
from acomp import sched
from zswap import zsmalloc
from zswap.page import GFP_KERNEL, GFP_NOWAIT, PhysMem
from zswap.zpool import Zpool

pytestmark = pytest.mark.anyio

SIZE = 1096  # + 8-byte header: class 1104, 11 objects in 3 pages, two of them span two


def make_pool(mem: PhysMem, type_: str = "zsmalloc", **opts: object) -> Zpool:
    p = zswap.zpool_create_pool(type_, "sleep", GFP_KERNEL, mem=mem, **opts)
    assert p is not None
    return p


def store(pool: Zpool, data: bytes) -> int:
    ret, h = zswap.zpool_malloc(pool, len(data), GFP_NOWAIT)
    assert ret == 0
    v = zswap.zpool_map_handle(pool, h, zswap.ZPOOL_MM_WO)
    v[:] = data
    zswap.zpool_unmap_handle(pool, h)
    return h


def spanning_objects(pool: Zpool, n: int, seed: int = 0) -> list[tuple[int, bytes]]:
    """`n` stored objects of SIZE bytes that each span two pages (so they map through the
    per-CPU buffer), with distinct random contents."""
    rng = random.Random(seed)
    out: list[tuple[int, bytes]] = []
    while len(out) < n:
        data = rng.randbytes(SIZE)
        h = store(pool, data)
        if zsmalloc.zs_obj_info(pool.pool, h).spans:
            out.append((h, data))
    return out


async def test_sleep_under_zsmalloc_mapping_splats(mem: PhysMem) -> None:
    pool = make_pool(mem)
    (h, data), = spanning_objects(pool, 1)
    view = zswap.zpool_map_handle(pool, h, zswap.ZPOOL_MM_RO)
    assert sched.in_atomic()
    mutex = sched.Mutex("acomp_ctx->mutex")
    with pytest.raises(sched.SleepInAtomicError) as ei:
        await mutex.lock()
    text = ei.value.report.text
    lines = text.splitlines()
    assert lines[0].startswith("BUG: sleeping function called from invalid context at ")
    # mm/zsmalloc.c (v5.11) zs_map_object: pin_tag (a bit spin lock), migrate_read_lock
    # (zspage->lock, an rwlock) and get_cpu_var(zs_map_area) each disable preemption ...
    assert "preempt_count: 3, expected: 0" in text
    # ... and lockdep (debug_show_held_locks) knows only the rwlock.
    assert "1 lock held by " in text
    assert "(&zspage->lock), at: zs_map_object" in text
    assert "bit_spin_lock" not in text
    assert "zs_map_area" not in text
    i = lines.index("Preemption disabled at:")
    assert "zs_map_object" in lines[i + 1]
    assert "zswap/zsmalloc.py" in lines[i + 1]
    assert bytes(view) == data
    zswap.zpool_unmap_handle(pool, h)
    assert not sched.in_atomic()
    await mutex.lock()  # fine once unmapped
    mutex.unlock()


async def test_sleep_under_mapping_lets_another_task_overwrite_the_buffer(
    mem: PhysMem, caplog: pytest.LogCaptureFixture
) -> None:
    """The v5.11 zswap bug: load maps (preemption off), decompression sleeps, another task on
    the same CPU maps and the per-CPU buffer the first one reads from is overwritten."""
    sched.config.atomic_sleep = "warn"  # log the splat and go on, as the kernel does
    pool = make_pool(mem)
    (a, data_a), (b, data_b) = spanning_objects(pool, 2)
    a_mapped, b_done = anyio.Event(), anyio.Event()
    seen: dict[str, bytes] = {}

    async def load_a() -> None:
        view = zswap.zpool_map_handle(pool, a, zswap.ZPOOL_MM_RO)
        seen["a before"] = bytes(view)
        a_mapped.set()
        mutex = sched.Mutex("acomp_ctx->mutex")
        await mutex.lock()  # "decompress" sleeps with the handle mapped
        await b_done.wait()
        seen["a after"] = bytes(view)  # what decompression would read now
        mutex.unlock()
        zswap.zpool_unmap_handle(pool, a)

    async def load_b() -> None:
        await a_mapped.wait()
        view = zswap.zpool_map_handle(pool, b, zswap.ZPOOL_MM_RO)
        seen["b"] = bytes(view)
        zswap.zpool_unmap_handle(pool, b)
        b_done.set()

    with caplog.at_level(logging.ERROR):
        async with anyio.create_task_group() as tg:
            tg.start_soon(load_a)
            tg.start_soon(load_b)
    assert seen["a before"] == data_a
    assert seen["b"] == data_b
    assert seen["a after"] == data_b != data_a  # A's view now shows B's bytes
    kinds = [r.kind for r in sched.reports]
    assert kinds[0] == "sleep_in_atomic"
    assert kinds.count("zs_map_area") == 2  # B's map on a busy area, A's unmap of a lost one
    splat = sched.reports[0].text.splitlines()
    assert "zs_map_object" in splat[splat.index("Preemption disabled at:") + 1]
    assert "BUG: sleeping function called from invalid context" in caplog.text
    # The objects themselves are intact: the corruption is in what A read.
    for h, d in ((a, data_a), (b, data_b)):
        v = zswap.zpool_map_handle(pool, h, zswap.ZPOOL_MM_RO)
        assert bytes(v) == d
        zswap.zpool_unmap_handle(pool, h)


async def test_the_same_race_in_raise_mode_stops_at_the_splat(mem: PhysMem) -> None:
    pool = make_pool(mem)
    (a, _), (b, data_b) = spanning_objects(pool, 2)
    a_mapped = anyio.Event()
    errors: list[BaseException] = []

    async def load_a() -> None:
        zswap.zpool_map_handle(pool, a, zswap.ZPOOL_MM_RO)
        a_mapped.set()
        try:
            await sched.Mutex("acomp_ctx->mutex").lock()
        except sched.SleepInAtomicError as e:
            errors.append(e)
        finally:
            zswap.zpool_unmap_handle(pool, a)

    async def load_b() -> None:
        await a_mapped.wait()
        v = zswap.zpool_map_handle(pool, b, zswap.ZPOOL_MM_RO)
        assert bytes(v) == data_b
        zswap.zpool_unmap_handle(pool, b)

    async with anyio.create_task_group() as tg:
        tg.start_soon(load_a)
        tg.start_soon(load_b)
    assert len(errors) == 1
    assert [r.kind for r in sched.reports] == ["sleep_in_atomic"]


async def test_tasks_on_different_cpus_have_their_own_buffers(mem: PhysMem) -> None:
    sched.config.atomic_sleep = "warn"
    pool = make_pool(mem)
    (a, data_a), (b, _) = spanning_objects(pool, 2)
    a_mapped, b_done = anyio.Event(), anyio.Event()
    seen: list[bytes] = []

    async def load_a() -> None:
        view = zswap.zpool_map_handle(pool, a, zswap.ZPOOL_MM_RO)
        a_mapped.set()
        await sched.Mutex().lock()
        await b_done.wait()
        seen.append(bytes(view))
        zswap.zpool_unmap_handle(pool, a)

    async def load_b() -> None:
        await a_mapped.wait()
        with sched.on_cpu(1):
            zswap.zpool_map_handle(pool, b, zswap.ZPOOL_MM_RO)
            zswap.zpool_unmap_handle(pool, b)
        b_done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(load_a)
        tg.start_soon(load_b)
    assert seen == [data_a]
    assert [r.kind for r in sched.reports] == ["sleep_in_atomic"]


@pytest.mark.parametrize("type_", ["zbud", "z3fold"])
async def test_sleeping_while_mapped_is_allowed_on_zbud_and_z3fold(
    mem: PhysMem, type_: str
) -> None:
    pool = make_pool(mem, type_)
    assert zswap.zpool_can_sleep_mapped(pool)
    h = store(pool, b"z" * 3000)
    view = zswap.zpool_map_handle(pool, h, zswap.ZPOOL_MM_RO)
    assert not sched.in_atomic()
    mutex = sched.Mutex()
    await mutex.lock()
    mutex.unlock()
    assert bytes(view) == b"z" * 3000
    zswap.zpool_unmap_handle(pool, h)
    assert sched.reports == []


async def test_v615_sleepable_reads_keep_each_readers_copy(mem: PhysMem) -> None:
    """The v6.15 design: the caller's own buffer instead of the per-CPU one, no preemption off."""
    pool = make_pool(mem, sleepable_reads=True)
    (a, data_a), (b, data_b) = spanning_objects(pool, 2)
    a_reading, b_done = anyio.Event(), anyio.Event()
    seen: list[bytes] = []

    async def load(h: int, first: bool) -> None:
        local_copy = bytearray(2 * zswap.PAGE_SIZE)  # the acomp_ctx buffer
        if not first:
            await a_reading.wait()
        view = zswap.zpool_obj_read_begin(pool, h, local_copy)
        assert not sched.in_atomic()
        await sched.Mutex().lock()  # decompression may sleep: no splat
        if first:
            a_reading.set()
            await b_done.wait()
        seen.append(bytes(view))
        zswap.zpool_obj_read_end(pool, h, view)
        if not first:
            b_done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(load, a, True)
        tg.start_soon(load, b, False)
    assert sorted(seen) == sorted([data_a, data_b])
    assert sched.reports == []
