"""The all-cores CPU baseline: lz4-scomp on every core of the machine at once.

A device driver is worth using when it beats the machine's CPUs, all of them. This runs the
same pages through the acomp request API with a CPU driver in one worker process per core
(``anyio.to_process``), the pages shared through shared memory, all workers starting at the
same wall-clock instant, and reports the aggregate throughput.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Any

import anyio
import anyio.to_process
import numpy as np
import numpy.typing as npt

import acomp
from acomp import cpubatch

__all__ = ("CoresResult", "measure_cores")

PAGE = 4096


@dataclass(frozen=True)
class CoresResult:
    driver: str
    cores: int
    pages: int
    comp_gbps: float
    decomp_gbps: float

    def summary(self) -> dict[str, Any]:
        return {"driver": self.driver, "cores": self.cores, "pages": self.pages,
                "compress_gb_per_s": self.comp_gbps, "decompress_gb_per_s": self.decomp_gbps}


def _worker(shm_name: str, n: int, lo: int, hi: int, driver: str,
            start_at: float) -> tuple[float, float, float, int]:
    """In a worker process: compress then decompress pages [lo, hi) through `driver`.

    Returns (compress end, decompress start, decompress end, bytes) in wall-clock seconds.
    """
    os.environ["ACOMP_NO_HW"] = "1"  # a CPU baseline: kmod probes no device from here on

    shm = shared_memory.SharedMemory(name=shm_name)
    try:
        pages = np.ndarray((n, PAGE), np.uint8, buffer=shm.buf)
        tfm = acomp.crypto_alloc_acomp(driver)
        req = acomp.acomp_request_alloc(tfm)
        assert req is not None
        out = bytearray(2 * PAGE)
        dst = acomp.sg_init_one(out)
        srcs = [acomp.sg_init_one(pages[i]) for i in range(lo, hi)]
        blobs: list[bytes] = []
        while time.time() < start_at:
            time.sleep(0.001)
        for s in srcs:  # scomp completes synchronously: no wait needed
            acomp.acomp_request_set_params(req, s, dst, PAGE, len(out))
            if acomp.crypto_acomp_compress(req):
                raise RuntimeError("compression failed")
            blobs.append(bytes(out[: req.dlen]))
        t_comp = time.time()
        back = bytearray(PAGE)
        bdst = acomp.sg_init_one(back)
        t_dec0 = time.time()
        for b in blobs:
            acomp.acomp_request_set_params(req, acomp.sg_init_one(b), bdst, len(b), PAGE)
            if acomp.crypto_acomp_decompress(req) or req.dlen != PAGE:
                raise RuntimeError("decompression failed")
        t_dec = time.time()
        acomp.acomp_request_free(req)
        acomp.crypto_free_acomp(tfm)
        del pages, srcs
        return t_comp, t_dec0, t_dec, (hi - lo) * PAGE
    finally:
        shm.close()


async def measure_cores(pages: npt.NDArray[np.uint8], driver: str = "lz4-scomp",
                        cores: int | None = None) -> CoresResult:
    """Aggregate compress/decompress GB/s of `driver` on `cores` processes (default: all)."""
    cores = cpubatch.cores_count(cores, "cores")
    n = int(pages.shape[0])
    shm = shared_memory.SharedMemory(create=True, size=max(1, pages.nbytes))
    try:
        np.ndarray(pages.shape, np.uint8, buffer=shm.buf)[:] = pages
        limiter = anyio.CapacityLimiter(cores)
        bounds = [(n * k // cores, n * (k + 1) // cores) for k in range(cores)]
        results: list[tuple[float, float, float, int]] = []

        async def one(lo: int, hi: int, start_at: float) -> None:
            results.append(await anyio.to_process.run_sync(
                _worker, shm.name, n, lo, hi, driver, start_at, limiter=limiter))

        # Warm-up: start the worker processes and import everything (not timed).
        async with anyio.create_task_group() as tg:
            for _ in range(cores):
                tg.start_soon(one, 0, min(n, 8), time.time())
        results.clear()
        start_at = time.time() + 1.0
        async with anyio.create_task_group() as tg:
            for lo, hi in bounds:
                tg.start_soon(one, lo, hi, start_at)
        total = sum(r[3] for r in results)
        comp_end = max(r[0] for r in results)
        dec_start = min(r[1] for r in results)
        dec_end = max(r[2] for r in results)
        return CoresResult(driver, cores, n, total / (comp_end - start_at) / 1e9,
                           total / (dec_end - dec_start) / 1e9)
    finally:
        shm.close()
        shm.unlink()
