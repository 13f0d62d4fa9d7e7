"""Writeback: the shrink worker writes the oldest entries to the swap device until the pool
accepts again, and the races with a swap-in, an invalidation or a newer store of the same
offset neither lose nor resurrect data (the kernel's swap-cache ``-EEXIST`` protocol)."""

from __future__ import annotations

import errno
from collections.abc import Iterator

import anyio
import pytest
from zswap_helpers import file_page, random_prefix_page, wait_until

from acomp import PAGE_SIZE, AcompReq, sched
from acomp.testing import FakeAsyncDriver, Step
from zswap import PhysMem, SwapArea, SwapDevice, Zswap

pytestmark = pytest.mark.anyio


def one_page_objects(n: int, seed: int = 100) -> list[bytes]:
    """Pages whose lz4 output (~2.4 KiB) takes a zbud page alone: pool pages == entries."""
    return [random_prefix_page(seed + i, 2400) for i in range(n)]


class HoldNext:
    """A fake async driver; `hold()` makes its next decompression wait for `release()`."""

    def __init__(self) -> None:
        self.armed = False
        self.fake = FakeAsyncDriver(self._step, name="fakewb", driver="fakewb-async")

    def _step(self, num: int, req: AcompReq, op: str) -> Step:
        if op == "decompress" and self.armed:
            self.armed = False
            return Step(latency=None)
        return Step()

    def hold(self) -> None:
        self.armed = True

    async def wait_held(self) -> None:
        await wait_until(lambda: self.fake.statistics().held == 1)

    def release(self) -> None:
        self.fake.release()


@pytest.fixture
def hold() -> Iterator[HoldNext]:
    h = HoldNext()
    h.fake.register()
    yield h
    h.fake.unregister()


def setup(compressor: str = "lz4-scomp", zpool: str = "zbud", **kw: object
          ) -> tuple[PhysMem, Zswap, SwapArea]:
    mem = PhysMem(1000)
    zs = Zswap(mem=mem, compressor=compressor, zpool=zpool, **kw)  # type: ignore[arg-type]
    return mem, zs, SwapArea(SwapDevice(None, 256), zs)


async def test_shrink_worker_writes_back_to_under_the_accept_threshold() -> None:
    mem, zs, area = setup(max_pool_percent=5)  # full above 50 pages, accepts below 45
    objs = one_page_objects(80)
    offs: list[int] = []
    async with zs:
        for p in objs:
            offs.append(await area.swap_out(p))
        await zs.flush_shrink_work()
        assert zs.pool_limit_hit >= 1
        assert zs.written_back_pages > 0
        assert zs.pool_total_size <= 50 * PAGE_SIZE
        st = area.statistics()
        assert st.writebacks == zs.written_back_pages
        assert st.zswap_stores + st.device_writes == 80
        # Written back and rejected pages are in the file, at offset * PAGE_SIZE.
        on_disk = [i for i, off in enumerate(offs) if not area.in_zswap(off)]
        assert len(on_disk) == st.device_writes + zs.written_back_pages
        for i in on_disk:
            assert file_page(area.device.path, offs[i]) == objs[i]
        out = bytearray(PAGE_SIZE)
        for off, p in zip(offs, objs, strict=True):
            assert await area.swap_in(off, out) == 0
            assert out == p
        st = area.statistics()
        assert st.zswap_loads + st.device_reads == 80
        assert st.device_reads == len(on_disk)
        assert st.slots_used == 0
    assert zs.stored_pages == 0
    assert mem.nr_used_pages == 0
    area.close()


async def test_the_oldest_entries_go_first() -> None:
    _, zs, area = setup(shrinker_enabled=True)
    objs = one_page_objects(6)
    offs = [await area.swap_out(p) for p in objs]
    out = bytearray(PAGE_SIZE)
    assert await zs.shrinker_scan(2) == 2
    assert [area.in_zswap(o) for o in offs] == [False, False, True, True, True, True]
    assert zs.shrinker_count() > 0
    assert await area.swap_in(offs[0], out) == 0
    assert out == objs[0]
    zs.shrinker_enabled = False
    assert zs.shrinker_count() == 0
    assert await zs.shrinker_scan(4) == 0
    area.close()


async def test_swap_in_during_writeback_uses_the_swap_cache_page(hold: HoldNext) -> None:
    mem, zs, area = setup("fakewb-async", shrinker_enabled=True)
    page = one_page_objects(1)[0]
    off = await area.swap_out(page)
    out = bytearray(PAGE_SIZE)
    got: dict[str, int] = {}

    async def writeback() -> None:
        got["written"] = await zs.shrinker_scan(1)

    async def swap_in() -> None:
        sched.new_task("fault")
        got["swap_in"] = await area.swap_in(off, out)

    hold.hold()
    async with anyio.create_task_group() as tg:
        tg.start_soon(writeback)
        await hold.wait_held()  # writeback owns the swap-cache page, decompressing into it
        tg.start_soon(swap_in)
        await anyio.sleep(0.005)
        assert "swap_in" not in got  # waits for the page, does not ask zswap
        hold.release()
    assert got == {"written": 1, "swap_in": 0}
    assert out == page
    st = area.statistics()
    assert (st.cache_hits, st.zswap_loads, st.device_reads, st.writebacks) == (1, 0, 0, 1)
    assert zs.written_back_pages == 1
    assert zs.stored_pages == 0
    assert file_page(area.device.path, off) == page
    assert st.slots_used == 0  # freed once writeback let go of the cache page
    area.close()
    zs.close()
    assert mem.nr_used_pages == 0


async def test_writeback_of_a_page_being_swapped_in_fails_with_eexist(hold: HoldNext) -> None:
    _, zs, area = setup("fakewb-async", shrinker_enabled=True)
    page = one_page_objects(1)[0]
    off = await area.swap_out(page)
    out = bytearray(PAGE_SIZE)
    got: dict[str, int] = {}

    async def swap_in() -> None:
        got["swap_in"] = await area.swap_in(off, out)

    hold.hold()
    async with anyio.create_task_group() as tg:
        tg.start_soon(swap_in)
        await hold.wait_held()  # the swap-in's load decompresses, its page in the swap cache
        with sched.on_cpu(1):
            got["written"] = await zs.shrinker_scan(1)
        hold.release()
    assert got == {"written": 0, "swap_in": 0}
    assert out == page
    assert zs.reject_reclaim_fail == 1
    assert zs.written_back_pages == 0
    assert area.statistics().zswap_loads == 1
    assert zs.stored_pages == 0  # the exclusive load took it
    area.close()
    zs.close()


async def test_invalidate_during_writeback_does_not_resurrect(hold: HoldNext) -> None:
    mem, zs, area = setup("fakewb-async", shrinker_enabled=True)
    old, new = one_page_objects(2)
    off = await area.swap_out(old)
    hold.hold()
    async with anyio.create_task_group() as tg:
        tg.start_soon(zs.shrinker_scan, 1)
        await hold.wait_held()
        zs.invalidate_page(0, off)  # swapoff of the slot, the kernel's invalidate() race
        assert zs.entry(0, off) is None
        assert zs.stored_pages == 1  # still referenced by writeback
        hold.release()
    assert zs.stored_pages == 0
    assert zs.entry(0, off) is None
    out = bytearray(PAGE_SIZE)
    assert await zs.load(0, off, out) == -errno.ENOENT  # not brought back
    assert await zs.store(0, off, new) == 0  # the offset's next life
    assert await zs.load(0, off, out) == 0
    assert out == new
    area.close()
    zs.close()
    assert mem.nr_used_pages == 0


async def test_newer_store_during_writeback_wins(hold: HoldNext) -> None:
    _, zs, area = setup("fakewb-async", shrinker_enabled=True)
    old, new = one_page_objects(2, seed=300)
    off = await area.swap_out(old)
    hold.hold()
    async with anyio.create_task_group() as tg:
        tg.start_soon(zs.shrinker_scan, 1)
        await hold.wait_held()
        with sched.on_cpu(1):
            assert await zs.store(0, off, new) == 0
        assert zs.duplicate_entry == 1
        hold.release()
    assert zs.written_back_pages == 1  # the old data went to the device ...
    assert file_page(area.device.path, off) == old
    out = bytearray(PAGE_SIZE)
    assert await area.swap_in(off, out) == 0  # ... but the newer copy in zswap is what counts
    assert out == new
    assert zs.stored_pages == 0
    area.close()
    zs.close()


async def test_writeback_without_a_swap_device_is_reclaim_fail() -> None:
    mem = PhysMem(1000)
    zs = Zswap(mem=mem, compressor="lz4-scomp", zpool="zbud", max_pool_percent=5)
    zs.init(0)
    objs = one_page_objects(60)
    async with zs:
        rets = [await zs.store(0, i, p) for i, p in enumerate(objs)]
        await zs.flush_shrink_work()
    assert -errno.ENOMEM in rets
    assert zs.reject_reclaim_fail >= 1
    assert zs.written_back_pages == 0
    out = bytearray(PAGE_SIZE)
    for i, r in enumerate(rets):
        if r == 0:
            assert await zs.load(0, i, out) == 0
            assert out == objs[i]
    zs.close()
    assert mem.nr_used_pages == 0


async def test_5_11_writeback_on_zsmalloc_splats_and_keeps_the_entry() -> None:
    _, zs, area = setup(zpool="zsmalloc", version="5.11", shrinker_enabled=True)
    page = random_prefix_page(9, 1500)
    off = await area.swap_out(page)
    with pytest.raises(sched.SleepInAtomicError):
        await zs.shrinker_scan(1)
    assert not sched.in_atomic()
    assert zs.stored_pages == 1
    assert area.in_zswap(off)
    zs.version = "6.9"
    out = bytearray(PAGE_SIZE)
    assert await area.swap_in(off, out) == 0
    assert out == page
    area.close()
