"""The bench's measurements: timed passes over the pages through the acomp API, verified.

No kernel counterpart; shaped after lzbench (best of several passes, ratio to a baseline) and
DPDK's compress-perf (throughput, batch-size and in-flight sweeps, latency per operation).

Every pass that is timed is checked: each compression pass is followed by a decompression
pass of its output, and every decompressed page must equal its original byte for byte
(`VerifyError` otherwise: a wrong byte is an error, not a statistic). The garbage collector is
off while a pass runs, and progress is reported between passes, never inside one.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import numpy as np
import numpy.typing as npt

from acomp import sched
from acomp._constants import CRYPTO_TFM_REQ_MAY_BACKLOG, PAGE_SIZE
from acomp._errors import errno_name
from acomp.acompress import (
    CryptoAcomp,
    acomp_is_async,
    acomp_request_alloc,
    acomp_request_free,
    acomp_request_set_callback,
    acomp_request_set_params,
    crypto_acomp_compress,
    crypto_acomp_decompress,
    crypto_alloc_acomp,
    crypto_free_acomp,
)
from acomp.api import open as acomp_open
from acomp.batch import BatchResult, crypto_acomp_batch_compress, crypto_acomp_batch_decompress
from acomp.scatterlist import sg_init_one
from acomp.wait import CryptoWait, crypto_req_done, crypto_wait_req

__all__ = (
    "DST_SIZE",
    "BatchPoint",
    "ConcurrencyPoint",
    "DriverRun",
    "OverheadResult",
    "VerifyError",
    "measure_batch",
    "measure_concurrency",
    "measure_driver",
    "measure_overhead",
    "percentiles",
)

#: Output capacity per page: zswap's per-CPU buffer is two pages.
DST_SIZE = 2 * PAGE_SIZE
#: Percentiles reported for per-request latency.
PCTS = (50.0, 90.0, 99.0, 99.9)

Tick = Callable[[], None]


class VerifyError(Exception):
    """A timed round trip gave back other bytes (or a request failed)."""


def percentiles(lat_ns: npt.NDArray[np.int64]) -> dict[str, float]:
    """``{"p50": us, "p90": us, ...}`` of latencies in nanoseconds, as microseconds."""
    if not len(lat_ns):
        return {}
    vals = np.percentile(lat_ns, PCTS) / 1000.0
    return {f"p{p:g}": float(v) for p, v in zip(PCTS, vals, strict=True)}


@contextmanager
def _quiet_gc() -> Iterator[None]:
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _rows(arr: npt.NDArray[np.uint8]) -> list[memoryview]:
    """One memoryview per row, made before timing starts."""
    flat = memoryview(arr.data).cast("B")
    w = arr.shape[1]
    return [flat[i * w : (i + 1) * w] for i in range(arr.shape[0])]


def _check_pages(driver: str, what: str, dec: npt.NDArray[np.uint8], dlen: Sequence[int],
                 pages: npt.NDArray[np.uint8]) -> None:
    sizes = np.asarray(dlen)
    bad_len = np.nonzero(sizes != pages.shape[1])[0]
    if len(bad_len):
        i = int(bad_len[0])
        raise VerifyError(f"{driver}: {what}: page {i} decompressed to {int(sizes[i])} bytes, "
                          f"expected {pages.shape[1]}")
    diff = np.nonzero((dec != pages).any(axis=1))[0]
    if len(diff):
        i = int(diff[0])
        col = int(np.nonzero(dec[i] != pages[i])[0][0])
        raise VerifyError(f"{driver}: {what}: page {i} differs at byte {col} after a round trip "
                          f"({len(diff)} of {len(pages)} pages wrong)")


# --------------------------------------------------------------------------------------------
# One-request-at-a-time passes through the kernel API (throughput and latency modes)


async def _pass(tfm: CryptoAcomp, compress: bool, srcs: list[memoryview], slens: Sequence[int],
                dsts: list[memoryview], cap: int, depth: int, lat: list[int],
                sizes: list[int]) -> float:
    """Submit every page as its own request, `depth` in flight; seconds the pass took.

    Each request's latency runs from its submission to the return of `crypto_wait_req`.
    """
    submit = crypto_acomp_compress if compress else crypto_acomp_decompress
    n = len(srcs)
    clock = time.perf_counter_ns
    next_i = 0
    failure: list[str] = []

    async def worker() -> None:
        nonlocal next_i
        req = acomp_request_alloc(tfm)
        if req is None:
            failure.append("cannot allocate a request")
            return
        wait = CryptoWait()
        acomp_request_set_callback(req, CRYPTO_TFM_REQ_MAY_BACKLOG, crypto_req_done, wait)
        try:
            while next_i < n and not failure:
                i = next_i
                next_i += 1
                acomp_request_set_params(req, sg_init_one(srcs[i]), sg_init_one(dsts[i]),
                                         slens[i], cap)
                t0 = clock()
                ret = await crypto_wait_req(submit(req), wait)
                lat[i] = clock() - t0
                if ret:
                    op = "compress" if compress else "decompress"
                    failure.append(f"{op} of page {i} failed: {errno_name(ret)}")
                    return
                sizes[i] = req.dlen
        finally:
            if not req.in_flight:
                acomp_request_free(req)

    t = time.perf_counter()
    if depth <= 1:
        await worker()
    else:
        async with anyio.create_task_group() as tg:
            for _ in range(min(depth, n)):
                tg.start_soon(worker)
    elapsed = time.perf_counter() - t
    if failure:
        raise VerifyError(f"{tfm.alg.cra_driver_name}: {failure[0]}")
    return elapsed


@dataclass
class DriverRun:
    """One driver's results over the corpus (best pass for throughput, all for latency)."""

    driver: str
    cra_name: str
    is_async: bool
    depth: int
    pages: int
    bytes_in: int
    bytes_out: int
    comp_s: float
    decomp_s: float
    comp_lat_ns: npt.NDArray[np.int64] = field(repr=False)
    decomp_lat_ns: npt.NDArray[np.int64] = field(repr=False)
    device: Any = None

    @property
    def ratio(self) -> float:
        return self.bytes_in / self.bytes_out if self.bytes_out else float("inf")

    @property
    def comp_gbps(self) -> float:
        return self.bytes_in / self.comp_s / 1e9

    @property
    def decomp_gbps(self) -> float:
        return self.bytes_in / self.decomp_s / 1e9

    def summary(self) -> dict[str, Any]:
        return {
            "driver": self.driver,
            "cra_name": self.cra_name,
            "async": self.is_async,
            "depth": self.depth,
            "pages": self.pages,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "ratio": self.ratio,
            "compress": {
                "seconds": self.comp_s,
                "gb_per_s": self.comp_gbps,
                "pages_per_s": self.pages / self.comp_s,
                "latency_us": percentiles(self.comp_lat_ns),
            },
            "decompress": {
                "seconds": self.decomp_s,
                "gb_per_s": self.decomp_gbps,
                "pages_per_s": self.pages / self.decomp_s,
                "latency_us": percentiles(self.decomp_lat_ns),
            },
            "device": None if self.device is None else str(self.device),
        }


async def measure_driver(driver: str, pages: npt.NDArray[np.uint8], *, repeat: int = 3,
                         depth: int | None = None, tick: Tick = lambda: None) -> DriverRun:
    """`repeat` verified compress + decompress passes over `pages` with `driver`.

    `depth` is the number of requests in flight (default: 1 for a synchronous driver, 64
    for an asynchronous one). `tick` is called after each pass (2 per repetition).
    """
    tfm = crypto_alloc_acomp(driver)
    try:
        is_async = acomp_is_async(tfm)
        d = depth if depth is not None else (64 if is_async else 1)
        n = pages.shape[0]
        comp = np.zeros((n, DST_SIZE), np.uint8)
        dec = np.zeros_like(pages)
        srcs, comp_rows, dec_rows = _rows(pages), _rows(comp), _rows(dec)
        slens = [PAGE_SIZE] * n
        csizes = [0] * n
        dsizes = [0] * n
        clat: list[int] = [0] * n
        dlat: list[int] = [0] * n
        all_clat: list[npt.NDArray[np.int64]] = []
        all_dlat: list[npt.NDArray[np.int64]] = []
        best_c = best_d = float("inf")
        out_bytes = 0
        # An untimed warm-up over a few pages (caches, a device's first launch, JIT builds).
        w = min(n, max(d, 16))
        await _pass(tfm, True, srcs[:w], slens[:w], comp_rows[:w], DST_SIZE, d, clat, csizes)
        for _ in range(max(1, repeat)):
            dec.fill(0xA5)
            with _quiet_gc():
                tc = await _pass(tfm, True, srcs, slens, comp_rows, DST_SIZE, d, clat, csizes)
            tick()
            comp_views = [comp_rows[i][: csizes[i]] for i in range(n)]
            with _quiet_gc():
                td = await _pass(tfm, False, comp_views, csizes, dec_rows, PAGE_SIZE, d, dlat,
                                 dsizes)
            tick()
            _check_pages(driver, "round trip", dec, dsizes, pages)
            best_c, best_d = min(best_c, tc), min(best_d, td)
            out_bytes = sum(csizes)
            all_clat.append(np.array(clat, np.int64))
            all_dlat.append(np.array(dlat, np.int64))
        return DriverRun(driver, tfm.alg.cra_name, is_async, d, n, int(pages.nbytes), out_bytes,
                         best_c, best_d, np.concatenate(all_clat), np.concatenate(all_dlat),
                         getattr(tfm.alg, "device_info", None))
    finally:
        crypto_free_acomp(tfm)


# --------------------------------------------------------------------------------------------
# Batch-size sweep through crypto_acomp_batch_compress


@dataclass
class BatchPoint:
    driver: str
    batch: int
    pages: int
    bytes_in: int
    bytes_out: int
    comp_s: float
    decomp_s: float
    comp_call_ns: npt.NDArray[np.int64] = field(repr=False)
    decomp_call_ns: npt.NDArray[np.int64] = field(repr=False)
    kernel_ns: int = 0
    dkernel_ns: int = 0

    def kernel_gbps(self) -> tuple[float | None, float | None]:
        """Throughput inside the device (its kernels alone), where a device reported it."""
        return (self.bytes_in / self.kernel_ns if self.kernel_ns else None,
                self.bytes_in / self.dkernel_ns if self.dkernel_ns else None)

    def summary(self) -> dict[str, Any]:
        kc, kd = self.kernel_gbps()
        return {
            "driver": self.driver,
            "batch": self.batch,
            "kernel_compress_gb_per_s": kc,
            "kernel_decompress_gb_per_s": kd,
            "pages": self.pages,
            "ratio": self.bytes_in / self.bytes_out if self.bytes_out else None,
            "compress_gb_per_s": self.bytes_in / self.comp_s / 1e9,
            "decompress_gb_per_s": self.bytes_in / self.decomp_s / 1e9,
            "compress_pages_per_s": self.pages / self.comp_s,
            "decompress_pages_per_s": self.pages / self.decomp_s,
            "compress_call_us": percentiles(self.comp_call_ns),
            "decompress_call_us": percentiles(self.decomp_call_ns),
            "kernel_ns": self.kernel_ns,
            "decompress_kernel_ns": self.dkernel_ns,
        }


def batch_sizes(n: int, sizes: Sequence[int] = (1, 64, 1024, 65536)) -> list[int]:
    """The sweep's batch sizes, each capped by the page count, without duplicates."""
    return sorted({max(1, min(b, n)) for b in sizes})


async def measure_batch(driver: str, pages: npt.NDArray[np.uint8], sizes: Sequence[int], *,
                        repeat: int = 3, tick: Tick = lambda: None,
                        max_calls: int = 256) -> list[BatchPoint]:
    """For each batch size: the pages in batches through the vectored API, verified.

    A size makes at most `max_calls` calls (so batch 1 on 65536 pages times 256 of them).
    """
    tfm = crypto_alloc_acomp(driver)
    points = []
    all_pages = pages
    try:
        for b in sizes:
            pages = all_pages[: min(all_pages.shape[0], b * max_calls)]
            n = pages.shape[0]
            # Untimed warm-up: one batch of this size (a device may build or size buffers).
            warm = await crypto_acomp_batch_compress(tfm, pages[:b], capacity=DST_SIZE)
            await crypto_acomp_batch_decompress(tfm, warm.out[:, : max(1, int(warm.sizes.max()))],
                                                lengths=warm.sizes, capacity=PAGE_SIZE)
            best_c = best_d = float("inf")
            out_bytes = 0
            kernel_ns = dkernel_ns = 0
            ccall: list[int] = []
            dcall: list[int] = []
            for _ in range(max(1, repeat)):
                results: list[BatchResult] = []
                with _quiet_gc():
                    t = time.perf_counter()
                    for s in range(0, n, b):
                        t0 = time.perf_counter_ns()
                        results.append(await crypto_acomp_batch_compress(
                            tfm, pages[s : s + b], capacity=DST_SIZE))
                        ccall.append(time.perf_counter_ns() - t0)
                    tc = time.perf_counter() - t
                for k, r in enumerate(results):
                    if not r.ok:
                        i = int(np.nonzero(r.sizes < 0)[0][0])
                        raise VerifyError(f"{driver}: batch compress of page {k * b + i} failed: "
                                          f"{errno_name(int(r.sizes[i]))}")
                dk = 0
                decoded: list[BatchResult] = []
                with _quiet_gc():
                    t = time.perf_counter()
                    for r in results:
                        t0 = time.perf_counter_ns()
                        # r.out as it is: the lengths say where each block ends, and a
                        # narrower slice is not contiguous, which acomp.batch.pack copies
                        # (single-threaded, inside the timed loop) before any driver runs.
                        d = await crypto_acomp_batch_decompress(tfm, r.out,
                                                                lengths=r.sizes,
                                                                capacity=PAGE_SIZE)
                        dcall.append(time.perf_counter_ns() - t0)
                        dk += d.kernel_ns
                        decoded.append(d)
                    td = time.perf_counter() - t
                # Gathered for the check after the clock stops: copying every decoded page
                # into one array inside the timed loop cost a single-threaded memcpy of the
                # whole batch (about 30 ms for 65536 pages) that is no part of the driver.
                dec = np.full_like(pages, 0xA5)
                dsizes = np.zeros(n, np.int32)
                for k, d in enumerate(decoded):
                    s = k * b
                    dsizes[s : s + len(d)] = d.sizes
                    dec[s : s + len(d)] = d.out[:, :PAGE_SIZE]
                _check_pages(driver, f"batch {b}", dec, dsizes.tolist(), pages)
                best_c, best_d = min(best_c, tc), min(best_d, td)
                out_bytes = int(sum(int(r.sizes.sum()) for r in results))
                kernel_ns = int(sum(r.kernel_ns for r in results))
                dkernel_ns = dk
                tick()
            points.append(BatchPoint(driver, b, n, int(pages.nbytes), out_bytes, best_c, best_d,
                                     np.array(ccall, np.int64), np.array(dcall, np.int64),
                                     kernel_ns, dkernel_ns))
    finally:
        crypto_free_acomp(tfm)
    return points


# --------------------------------------------------------------------------------------------
# In-flight sweep through the Python layer (Compressor.compress_many)


@dataclass
class ConcurrencyPoint:
    driver: str
    limit: int
    pages: int
    bytes_in: int
    bytes_out: int
    comp_s: float
    decomp_s: float

    def summary(self) -> dict[str, Any]:
        return {
            "driver": self.driver,
            "in_flight": self.limit,
            "pages": self.pages,
            "ratio": self.bytes_in / self.bytes_out if self.bytes_out else None,
            "compress_gb_per_s": self.bytes_in / self.comp_s / 1e9,
            "decompress_gb_per_s": self.bytes_in / self.decomp_s / 1e9,
            "compress_pages_per_s": self.pages / self.comp_s,
            "decompress_pages_per_s": self.pages / self.decomp_s,
        }


def inflight_levels(n: int, levels: Sequence[int] = (1, 4, 16, 64, 256, 1024)) -> list[int]:
    return sorted({max(1, min(k, n)) for k in levels})


async def measure_concurrency(driver: str, pages: npt.NDArray[np.uint8], levels: Sequence[int],
                              *, repeat: int = 3,
                              tick: Tick = lambda: None) -> list[ConcurrencyPoint]:
    """For each in-flight limit: `compress_many` then `decompress_many`, verified."""
    rows = _rows(pages)
    out = []
    async with acomp_open(driver) as c:
        for k in levels:
            best_c = best_d = float("inf")
            out_bytes = 0
            for _ in range(max(1, repeat)):
                with _quiet_gc():
                    t = time.perf_counter()
                    blobs = await c.compress_many(rows, limit=k)
                    tc = time.perf_counter() - t
                with _quiet_gc():
                    t = time.perf_counter()
                    plain = await c.decompress_many(blobs, PAGE_SIZE, limit=k)
                    td = time.perf_counter() - t
                dec = np.full_like(pages, 0xA5)
                for i, p in enumerate(plain):
                    if len(p) == PAGE_SIZE:
                        dec[i] = np.frombuffer(p, np.uint8)
                _check_pages(driver, f"in-flight {k}", dec, [len(p) for p in plain], pages)
                best_c, best_d = min(best_c, tc), min(best_d, td)
                out_bytes = sum(len(b) for b in blobs)
                tick()
            out.append(ConcurrencyPoint(driver, k, pages.shape[0], int(pages.nbytes), out_bytes,
                                        best_c, best_d))
    return out


# --------------------------------------------------------------------------------------------
# Framework overhead: crypto_acomp_compress + crypto_wait_req vs the library itself


@dataclass
class OverheadResult:
    """Per-page cost of one algorithm through acomp and through its library, same pages."""

    cra_name: str
    driver: str
    library: str
    pages: int
    acomp_ns: list[float]  # per page, one entry per pass (debug checks on)
    direct_ns: list[float]
    #: The same passes with the debug checks off (`acomp.sched.set_debug_checks`), interleaved.
    acomp_off_ns: list[float] = field(default_factory=list)

    @property
    def best_ratio(self) -> float:
        return min(self.acomp_ns) / min(self.direct_ns)

    @property
    def median_ratio(self) -> float:
        """Median over the interleaved pass pairs of acomp/direct."""
        return _median_ratio(self.acomp_ns, self.direct_ns)

    def summary(self) -> dict[str, Any]:
        return {
            "cra_name": self.cra_name,
            "driver": self.driver,
            "library": self.library,
            "pages": self.pages,
            "acomp_ns_per_page_best": min(self.acomp_ns),
            "direct_ns_per_page_best": min(self.direct_ns),
            "acomp_ns_per_page_median": float(np.median(self.acomp_ns)),
            "direct_ns_per_page_median": float(np.median(self.direct_ns)),
            "ratio_best": self.best_ratio,
            "ratio_median": self.median_ratio,
            "passes": len(self.acomp_ns),
            **({"acomp_off_ns_per_page_best": min(self.acomp_off_ns),
                "ratio_off_best": self.best_ratio_off,
                "ratio_off_median": self.median_ratio_off} if self.acomp_off_ns else {}),
        }

    @property
    def best_ratio_off(self) -> float:
        """As `best_ratio`, with the debug checks off."""
        return min(self.acomp_off_ns) / min(self.direct_ns)

    @property
    def median_ratio_off(self) -> float:
        return _median_ratio(self.acomp_off_ns, self.direct_ns)


def _median_ratio(acomp_ns: list[float], direct_ns: list[float]) -> float:
    """The median over interleaved pass pairs of acomp's time / the library's."""
    return float(np.median([a / d for a, d in zip(acomp_ns, direct_ns, strict=True)]))


DirectFn = Callable[[Any], bytes]


def direct_compressor(cra_name: str) -> tuple[str, DirectFn, Callable[[bytes], bytes]]:
    """(library call as text, compress(page) -> bytes, decompress(blob) -> page) for the
    overhead comparison; ImportError when the library is missing."""
    if cra_name == "lz4":
        import lz4.block

        def lz4_comp(p: Any) -> bytes:
            return lz4.block.compress(p, store_size=False)  # type: ignore[no-any-return]

        def lz4_dec(b: bytes) -> bytes:
            return lz4.block.decompress(b, uncompressed_size=PAGE_SIZE)  # type: ignore[no-any-return]

        return "lz4.block.compress(p, store_size=False)", lz4_comp, lz4_dec
    if cra_name == "lzo":
        import lzo

        def lzo_comp(p: Any) -> bytes:
            return lzo.compress(p, 1, False)  # type: ignore[no-any-return]

        def lzo_dec(b: bytes) -> bytes:
            return lzo.decompress(b, False, PAGE_SIZE)  # type: ignore[no-any-return]

        return "lzo.compress(p, 1, False)", lzo_comp, lzo_dec
    if cra_name == "zstd":
        import zstandard

        zc = zstandard.ZstdCompressor(level=3)
        zd = zstandard.ZstdDecompressor()

        def zstd_comp(p: Any) -> bytes:
            return zc.compress(p)  # type: ignore[no-any-return]

        def zstd_dec(b: bytes) -> bytes:
            return zd.decompress(b, max_output_size=PAGE_SIZE)  # type: ignore[no-any-return]

        return "ZstdCompressor(level=3).compress(p), reused", zstd_comp, zstd_dec
    raise ValueError(f"no direct library call for {cra_name}")


async def measure_overhead(cra_name: str, pages: list[bytes], *, passes: int = 7,
                           tick: Tick = lambda: None) -> OverheadResult:
    """Compress every page as zswap does (one tfm, one request, ``sg_init_one`` over the page,
    a reused dst) and with the library directly, interleaving the passes (ABBA...).

    Each timed pass records its output sizes; an untimed pass then checks both ways that the
    outputs decode to the pages (acomp's output by the library, the library's by acomp) and
    that every timed pass produced those very sizes.
    """
    library, direct, direct_dec = direct_compressor(cra_name)
    driver = f"{cra_name}-scomp"
    tfm = crypto_alloc_acomp(driver)
    req = acomp_request_alloc(tfm)
    if req is None:
        crypto_free_acomp(tfm)
        raise VerifyError(f"{driver}: cannot allocate a request")
    wait = CryptoWait()
    acomp_request_set_callback(req, CRYPTO_TFM_REQ_MAY_BACKLOG, crypto_req_done, wait)
    dst = bytearray(DST_SIZE)
    n = len(pages)
    a_sizes = [0] * n
    d_sizes = [0] * n
    errors: list[str] = []

    async def through_acomp() -> float:
        clock = time.perf_counter_ns
        t = clock()
        for i in range(n):
            acomp_request_set_params(req, sg_init_one(pages[i]), sg_init_one(dst), PAGE_SIZE,
                                     DST_SIZE)
            ret = await crypto_wait_req(crypto_acomp_compress(req), wait)
            if ret:
                errors.append(f"page {i}: {errno_name(ret)}")
            a_sizes[i] = req.dlen
        return (clock() - t) / n

    async def through_acomp_checks(on: bool) -> float:
        # The same loop with the debug checks on or off (ACOMP_DEBUG_CHECKS); no lock is held.
        old = sched.set_debug_checks(on)
        try:
            return await through_acomp()
        finally:
            sched.set_debug_checks(old)

    async def through_acomp_off() -> float:
        return await through_acomp_checks(False)

    async def through_acomp_on() -> float:
        return await through_acomp_checks(True)

    async def through_library() -> float:
        clock = time.perf_counter_ns
        t = clock()
        for i in range(n):
            d_sizes[i] = len(direct(pages[i]))
        return (clock() - t) / n

    a_ns: list[float] = []
    off_ns: list[float] = []
    d_ns: list[float] = []
    ref_a: list[int] = []
    ref_d: list[int] = []
    try:
        # One untimed warm-up of each, which also gives the reference sizes.
        await through_acomp()
        await through_library()
        ref_a, ref_d = list(a_sizes), list(d_sizes)
        runs: list[tuple[Callable[[], Awaitable[float]], list[float], list[int], list[int]]] = [
            (through_acomp_on, a_ns, a_sizes, ref_a), (through_acomp_off, off_ns, a_sizes, ref_a),
            (through_library, d_ns, d_sizes, ref_d)]
        for k in range(max(1, passes)):
            order = runs if k % 2 == 0 else runs[::-1]
            for fn, acc, sizes, ref in order:
                with _quiet_gc():
                    acc.append(await fn())
                if errors:
                    raise VerifyError(f"{driver}: compress failed: {errors[0]}")
                if sizes != ref:
                    i = next(j for j in range(n) if sizes[j] != ref[j])
                    raise VerifyError(f"{cra_name}: a timed pass gave page {i} a different size "
                                      f"({sizes[i]} vs {ref[i]})")
            tick()
        # Untimed: acomp's output must decode with the library, the library's with acomp.
        for i in range(n):
            acomp_request_set_params(req, sg_init_one(pages[i]), sg_init_one(dst), PAGE_SIZE,
                                     DST_SIZE)
            ret = await crypto_wait_req(crypto_acomp_compress(req), wait)
            if ret or direct_dec(bytes(dst[: req.dlen])) != pages[i]:
                raise VerifyError(f"{driver}: page {i} does not decode with {library}")
            blob = direct(pages[i])
            out = bytearray(PAGE_SIZE)
            acomp_request_set_params(req, sg_init_one(blob), sg_init_one(out), len(blob),
                                     PAGE_SIZE)
            ret = await crypto_wait_req(crypto_acomp_decompress(req), wait)
            if ret or req.dlen != PAGE_SIZE or bytes(out) != pages[i]:
                raise VerifyError(f"{driver}: cannot decode page {i} compressed by {library} "
                                  f"({errno_name(ret)})")
    finally:
        if not req.in_flight:
            acomp_request_free(req)
        crypto_free_acomp(tfm)
    if not errors and ref_a and any(s <= 0 for s in ref_a):
        raise VerifyError(f"{driver}: empty output")
    return OverheadResult(cra_name, driver, library, n, a_ns, d_ns, off_ns)

