"""The folio store bench: large-folio swap-outs through zswap, batched or page at a time.

Kernel counterpart: what the compress-batching series measures with usemem30 (the swap-out of
large folios through ``zswap_store``): throughput and elapsed time, batched against
sequential compression on the same device, for 64 KiB and 2 MiB folios.

`measure_folio_stores` swaps `pages` pages out as folios of 2^`order` pages (one task on one
virtual CPU, the reclaimer), times each folio's ``zswap_store`` (`SwapArea.store_ns`) and the
compressor's share of it (the stores' time in submitting compressions and waiting for them),
then reads every page back through readahead windows and checks it byte for byte. The pages are
random prefixes followed by zeros, which every compressor here (lz4 and the scripted device's
``trim``) compresses to about the prefix.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from acomp._constants import PAGE_SIZE
from zswap import versions
from zswap.page import Folio, PhysMem
from zswap.swap import SwapArea, SwapDevice
from zswap.zswap import Version, Zswap

__all__ = ("compressor_timed", "folio_pages", "measure_folio_stores", "median_run",
           "parse_folio_size", "percentile")


def folio_pages(n: int, seed: int = 0) -> list[bytes]:
    """`n` pages of 300 - 2000 random bytes (ending non-zero) then zeros."""
    r = random.Random(seed)
    out = []
    for _ in range(n):
        k = r.randrange(300, 2000)
        out.append(r.randbytes(k - 1) + b"\xff" + bytes(PAGE_SIZE - k))
    return out


def parse_folio_size(text: str) -> int:
    """Pages in a folio of ``4K``, ``64K``, ``2M`` (``KiB``/``MiB``/``k``/``m`` too): a
    power of two of pages, at most 512; ValueError otherwise."""
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    mult = {"k": 1024, "m": 1024 * 1024}.get(t[-1:], None)
    try:
        size = int(t[:-1]) * mult if mult else int(t)
    except ValueError:
        raise ValueError(f"{text!r} is not a size such as 4K, 64K or 2M") from None
    nr, rest = divmod(size, PAGE_SIZE)
    if rest or nr < 1 or nr & (nr - 1) or nr > 512:
        raise ValueError(f"{text!r}: a folio is 2^k pages of 4 KiB, at most 2M")
    return nr


def percentile(values: Sequence[float], q: float) -> float:
    """The `q` quantile (0..1) of `values`, nearest rank; 0 when empty."""
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


@contextmanager
def compressor_timed(spent: list[int], zs: Zswap | None = None) -> Iterator[None]:
    """While the block runs, add the time zswap's stores spend submitting compressions and
    waiting for them (``crypto_acomp_compress`` + ``crypto_wait_req``, or one
    ``crypto_acomp_batch_compress``) to ``spent[0]``, and with `zs` the time of its stores
    (``store``, ``store_folio``: kept or rejected) to ``spent[1]``; the compressor's share of
    the store is their ratio, whatever the number of tasks storing at once."""
    if zs is not None:
        while len(spent) < 2:
            spent.append(0)
        for name in ("store", "store_folio"):
            fn = getattr(zs, name)

            async def timed_store(*a: Any, _fn: Any = fn, **kw: Any) -> int:
                t0 = time.perf_counter_ns()
                try:
                    return int(await _fn(*a, **kw))
                finally:
                    spent[1] += time.perf_counter_ns() - t0

            setattr(zs, name, timed_store)
    saved = {n: getattr(versions, n) for n in
             ("crypto_acomp_compress", "crypto_wait_req", "crypto_acomp_batch_compress")}

    def timed_sync(fn: Any) -> Any:
        def call(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter_ns()
            try:
                return fn(*a, **kw)
            finally:
                spent[0] += time.perf_counter_ns() - t0
        return call

    def timed_async(fn: Any) -> Any:
        async def call(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter_ns()
            try:
                return await fn(*a, **kw)
            finally:
                spent[0] += time.perf_counter_ns() - t0
        return call

    versions.crypto_acomp_compress = timed_sync(saved["crypto_acomp_compress"])  # type: ignore[attr-defined]
    versions.crypto_wait_req = timed_async(saved["crypto_wait_req"])  # type: ignore[attr-defined]
    versions.crypto_acomp_batch_compress = timed_async(  # type: ignore[attr-defined]
        saved["crypto_acomp_batch_compress"])
    try:
        yield
    finally:
        for n, fn in saved.items():
            setattr(versions, n, fn)
        if zs is not None:
            for name in ("store", "store_folio"):
                delattr(zs, name)


async def measure_folio_stores(
    compressor: str, *, order: int = 9, pages: int = 2048, version: Version = "proposed",
    batching: bool | None = None, batch_size: int | None = None, zpool: str = "zsmalloc",
    contents: Sequence[bytes] | None = None, readahead: int = 64,
) -> dict[str, Any]:
    """Swap out `pages` pages as folios of 2^`order` pages, then read them back; figures."""
    nr = 1 << order
    nfolios = max(1, pages // nr)
    total = nfolios * nr
    data = list(contents) if contents is not None else folio_pages(total)
    folios = [Folio(b"".join(data[(i * nr) % len(data):(i * nr) % len(data) + nr]))
              for i in range(nfolios)]
    mem = PhysMem(max(4096, total * 2), name="folio-bench")
    zs = Zswap(mem=mem, compressor=compressor, zpool=zpool, version=version,
               compress_batching=batching, batch_size=batch_size, max_pool_percent=90,
               accept_threshold_percent=100)
    spent = [0, 0]
    area = SwapArea(SwapDevice(None, total + 2 * nr), zs)
    try:
        offsets = []
        with compressor_timed(spent, zs):
            t0 = time.perf_counter()
            for f in folios:
                offsets.append(await area.swap_out_folio(f))
            seconds = time.perf_counter() - t0
        st = area.statistics()
        wrong = 0
        t1 = time.perf_counter()
        for f, off in zip(folios, offsets, strict=True):
            for start in range(0, nr, readahead):
                n = min(readahead, nr - start)
                outs = [bytearray(PAGE_SIZE) for _ in range(n)]
                rets = await area.swap_in_readahead(off + start, outs)
                wrong += sum(1 for i in range(n)
                             if rets[i] != 0 or outs[i] != f.page(start + i))
        load_seconds = time.perf_counter() - t1
        store_us = [ns / 1000 for ns in area.store_ns]
        return {
            "compressor": compressor, "driver": zs.describe()["driver"], "version": version,
            "zpool": zpool, "order": order, "folio_kib": nr * PAGE_SIZE // 1024,
            "batching": zs.compress_batching, "batch_size": zs.store_batch_size(),
            "pages": total, "seconds": seconds, "pages_per_s": total / seconds,
            "store_p50_us": percentile(store_us, 0.5), "store_p99_us": percentile(store_us, 0.99),
            "compressor_share": spent[0] / spent[1] if spent[1] else 0.0,
            "zswap_stores": st.zswap_stores, "device_writes": st.device_writes,
            "load_pages_per_s": total / load_seconds, "wrong": wrong,
            "counters": zs.counters(),
        }
    finally:
        area.close()
        zs.close()


def median_run(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The row of median pages/s among repeats, with every repeat's rate."""
    rates = [r["pages_per_s"] for r in rows]
    med = statistics.median(rates)
    best = min(rows, key=lambda r: abs(r["pages_per_s"] - med))
    return {**best, "pages_per_s": med, "repeats": rates}
