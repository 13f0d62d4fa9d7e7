"""The swap layer: a real swap file written at offset * PAGE_SIZE, slots, the frontswap map,
and zswap in front of it."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from zswap_helpers import ASYNC, PLAN, file_page

from acomp import PAGE_SIZE, faulty
from zswap import PhysMem, SwapArea, SwapDevice, SwapFullError, Zswap
from zswap.swap import SWAP_SIGNATURE

pytestmark = pytest.mark.anyio


def test_device_has_a_swap_header(tmp_path: Path) -> None:
    path = tmp_path / "swapfile"
    dev = SwapDevice(path, 16)
    assert dev.read_header() == (1, 15, SWAP_SIGNATURE)
    assert path.stat().st_size == 16 * PAGE_SIZE
    assert path.read_bytes()[PAGE_SIZE - 10:PAGE_SIZE] == b"SWAPSPACE2"
    dev.close()
    assert path.exists()  # a named file stays
    tmp = SwapDevice(None, 4)
    assert os.path.exists(tmp.path)
    tmp.close()
    assert not os.path.exists(tmp.path)  # a temporary one goes
    with pytest.raises(ValueError, match="header"):
        SwapDevice(None, 1)


async def test_pages_zswap_rejects_are_in_the_file(mem: PhysMem) -> None:
    zs = Zswap(mem=mem, compressor="lz4-scomp", zpool="zbud")
    area = SwapArea(SwapDevice(None, 8), zs)
    noise = os.urandom(PAGE_SIZE)  # incompressible: rejected
    text = (b"swap me " * 512)[:PAGE_SIZE]
    a = await area.swap_out(noise)
    b = await area.swap_out(bytearray(text))
    assert (a, b) == (1, 2)  # page 0 is the header
    assert not area.in_zswap(a)
    assert area.in_zswap(b)
    assert file_page(area.device.path, a) == noise
    assert file_page(area.device.path, b) == bytes(PAGE_SIZE)  # never written
    out = bytearray(PAGE_SIZE)
    assert await area.swap_in(a, out) == 0
    assert out == noise
    assert await area.swap_in(b, memoryview(out)) == 0
    assert out == text
    st = area.statistics()
    assert (st.swapouts, st.zswap_stores, st.device_writes) == (2, 1, 1)
    assert (st.swapins, st.zswap_loads, st.device_reads) == (2, 1, 1)
    assert st.zswap_hit_rate == 0.5
    assert st.slots_used == 0
    assert area.device.writes == 1
    assert area.device.reads == 1
    area.close()


async def test_without_zswap_everything_goes_to_the_device() -> None:
    area = SwapArea(SwapDevice(None, 8))
    pages = [bytes([i]) * PAGE_SIZE for i in range(7)]
    offs = [await area.swap_out(p) for p in pages]
    with pytest.raises(SwapFullError):
        await area.swap_out(pages[0])
    assert area.statistics().slots_used == 7
    out = bytearray(PAGE_SIZE)
    assert await area.swap_in(offs[3], out, free=False) == 0
    assert out == pages[3]
    area.swap_free(offs[3])
    with pytest.raises(ValueError, match="bad swap offset"):
        area.swap_free(offs[3])
    with pytest.raises(ValueError, match="not in use"):
        await area.swap_in(offs[3], out)
    assert await area.swap_out(pages[6]) == offs[3]  # the slot is reused
    area.close()


async def test_swapoff_empties_zswap(mem: PhysMem, cpages: list[bytes]) -> None:
    zs = Zswap(mem=mem, compressor="lz4-scomp", zpool="zsmalloc")
    area = SwapArea(SwapDevice(None, 64), zs, type=3)
    for p in cpages[:10]:
        await area.swap_out(p)
    assert len(zs.offsets(3)) == 10
    area.swapoff()
    assert zs.offsets(3) == []
    assert zs.stored_pages == 0
    assert mem.nr_used_pages == 0
    assert await zs.store(3, 1, cpages[0]) == -errno.ENODEV
    with pytest.raises(ValueError, match="off"):
        await area.swap_out(cpages[0])
    area.close()


async def test_a_failed_decompression_is_an_error_not_other_data(
        mem: PhysMem, cpages: list[bytes]) -> None:
    zs = Zswap(mem=mem, compressor=ASYNC, zpool="zsmalloc")
    area = SwapArea(SwapDevice(None, 8), zs)
    off = await area.swap_out(cpages[1])
    faulty.set_plan(PLAN, error=1.0, errors=(-errno.EIO,))
    out = bytearray(PAGE_SIZE)
    assert await area.swap_in(off, out) == -errno.EIO
    st = area.statistics()
    assert st.io_errors == 1
    assert st.device_reads == 0  # the device never had it: not read instead
    assert st.slots_used == 1  # kept, with zswap's entry
    faulty.set_plan(PLAN, error=0.0)
    assert await area.swap_in(off, out) == 0
    assert out == cpages[1]
    area.close()
    zs.close()
