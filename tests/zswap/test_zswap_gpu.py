"""zswap on the OpenCL driver (PoCL counts): an asynchronous compressor whose completions come
from the device's thread, so every store and load really sleeps in crypto_wait_req."""

from __future__ import annotations

import anyio
import pytest

from acomp import PAGE_SIZE, acomp_is_async, crypto_has_acomp, sched
from zswap import PhysMem, Zswap

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.gpu,
    pytest.mark.skipif(not crypto_has_acomp("lz4-opencl"), reason="no lz4-opencl driver"),
]


@pytest.mark.parametrize("version", ["5.12", "6.9", "6.15"])
async def test_concurrent_stores_and_loads_on_the_device(version: str,
                                                         cpages: list[bytes]) -> None:
    old = sched.nr_cpu_ids()
    sched.set_nr_cpu_ids(max(old, 4))
    try:
        zs = Zswap(mem=PhysMem(1024), compressor="lz4-opencl", zpool="zsmalloc",
                   version=version, max_pool_percent=100)  # type: ignore[arg-type]
        zs.init(0)
        assert acomp_is_async(zs.pools[0].acomp_ctx.per_cpu(0).acomp)
        pages = cpages[:24]
        rets: dict[int, int] = {}
        outs = {i: bytearray(PAGE_SIZE) for i in range(len(pages))}

        async def one(i: int) -> None:
            with sched.on_cpu(i % 4):
                rets[i] = await zs.store(0, i, pages[i])
                if rets[i] == 0:
                    assert await zs.load(0, i, outs[i]) == 0

        async with anyio.create_task_group() as tg:
            for i in range(len(pages)):
                tg.start_soon(one, i)
        kept = [i for i, r in rets.items() if r == 0]
        assert len(kept) >= len(pages) - 2
        for i in kept:
            assert outs[i] == pages[i]
        assert sched.reports == []
        zs.close()
    finally:
        sched.set_nr_cpu_ids(old)


async def test_5_11_splats_with_the_device(cpages: list[bytes]) -> None:
    zs = Zswap(mem=PhysMem(256), compressor="lz4-opencl", zpool="zsmalloc", version="5.11")
    zs.init(0)
    assert await zs.store(0, 1, cpages[0]) == 0
    with pytest.raises(sched.SleepInAtomicError):
        await zs.load(0, 1, bytearray(PAGE_SIZE))
    zs.close()
