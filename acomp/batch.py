"""Vectored submission: many items in one call, no per-item Python work where the driver can.

Shaped after the kernel's batching proposal (``crypto_acomp_batch_compress``, Kanchana
Sridhar's zswap IAA series) and nvCOMP's batched API: arrays of inputs, per-item output sizes
and per-item status. A driver that implements ``batch_compress``/``batch_decompress`` (the
OpenCL driver) gets the whole array at once; a synchronous (scomp) driver gets it in chunks, one
per core, each in one atomic section (`acomp.cpubatch`); any other driver is served item by item
through ordinary requests, so the call works with every algorithm.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from acomp import cpubatch
from acomp._constants import CRYPTO_TFM_REQ_MAY_BACKLOG, PAGE_SIZE
from acomp._errors import error_from_errno
from acomp.acompress import (
    CryptoAcomp,
    acomp_is_async,
    acomp_request_alloc,
    acomp_request_free,
    acomp_request_set_callback,
    acomp_request_set_params,
    crypto_acomp_compress,
    crypto_acomp_decompress,
)
from acomp.algapi import ScompAlg
from acomp.batchresult import BatchResult
from acomp.scatterlist import sg_init_one
from acomp.wait import CryptoWait, crypto_req_done, crypto_wait_req

_ENOSPC = -errno.ENOSPC

__all__ = ("BatchResult", "batch_buffer", "crypto_acomp_batch_compress",
           "crypto_acomp_batch_decompress", "crypto_acomp_batch_size", "lz4_bound", "pack")

#: The batch a vectored driver that declares none is assumed to prefer (a 2 MiB folio's pages).
DEFAULT_DEVICE_BATCH = 512


def lz4_bound(n: int) -> int:
    """Worst-case output for `n` input bytes, generous enough for every algorithm here."""
    return n + n // 128 + 64


def crypto_acomp_batch_size(tfm: CryptoAcomp) -> int:
    """The compress-batching series' ``crypto_acomp_batch_size``: how many pages the driver
    wants in one batch. 1 for a synchronous driver (batching it gains nothing: zswap keeps the
    page-at-a-time path); an asynchronous driver's ``batch_size`` attribute, else
    `DEFAULT_DEVICE_BATCH` for one with the vectored entry points, else 1."""
    if not acomp_is_async(tfm):
        return 1
    alg = tfm.alg
    size = getattr(alg, "batch_size", None)
    if size is None:
        size = DEFAULT_DEVICE_BATCH if getattr(alg, "batch_compress", None) is not None else 1
    return max(1, int(size))


def refuse_one_buffer(items: Any) -> None:
    """One buffer is not a batch: iterating it would make every byte an item (TypeError)."""
    if isinstance(items, (bytes, bytearray, memoryview, np.ndarray)):
        what = (f"a {items.ndim}-D {items.dtype} array" if isinstance(items, np.ndarray)
                else f"one {type(items).__name__}")
        raise TypeError(f"items must be a 2-D (n, slot) uint8 array or a sequence of buffers, "
                        f"not {what}: reshape it to (n, slot), or pass [buffer]")


def pack(
    items: Any, slot: int | None = None
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int32]]:
    """Inputs as one ``(n, slot)`` uint8 array and their lengths (no copy for such an array)."""
    if isinstance(items, np.ndarray) and items.ndim == 2 and items.dtype == np.uint8:
        arr = np.ascontiguousarray(items)
        return arr, np.full(arr.shape[0], arr.shape[1], np.int32)
    refuse_one_buffer(items)
    views = [memoryview(x).cast("B") if memoryview(x).c_contiguous
             else memoryview(memoryview(x).tobytes()) for x in items]
    lengths = np.array([len(v) for v in views], np.int32)
    width = slot if slot is not None else (int(lengths.max()) if len(views) else 1)
    arr = np.zeros((len(views), max(width, 1)), np.uint8)
    for i, v in enumerate(views):
        arr[i, : len(v)] = np.frombuffer(v, np.uint8)
    return arr, lengths


def batch_buffer(tfm: CryptoAcomp, n: int, width: int = PAGE_SIZE) -> npt.NDArray[np.uint8]:
    """An ``(n, width)`` uint8 array for batch inputs: pinned, mapped memory where the driver
    has it (lz4-opencl: `crypto_acomp_batch_compress` then uploads it in place, with no staging
    copy), else an ordinary array. Fill it and pass it (or whole rows of it) as `items`; it is
    lent by the driver and goes back when it and its views are collected."""
    fn = getattr(tfm.alg, "batch_buffer", None)
    if fn is not None:
        arr = fn(tfm, n, width)
        if arr is not None:
            return cast("npt.NDArray[np.uint8]", arr)
    return np.empty((n, width), np.uint8)


async def _generic(tfm: CryptoAcomp, compress: bool, src: npt.NDArray[np.uint8],
                   lengths: npt.NDArray[np.int32], capacity: npt.NDArray[np.int32]) -> BatchResult:
    n = src.shape[0]
    width = int(capacity.max()) if n else 1
    out = np.zeros((n, width), np.uint8)
    sizes = np.zeros(n, np.int32)
    reqs = []
    submit = crypto_acomp_compress if compress else crypto_acomp_decompress
    try:
        for i in range(n):
            req = acomp_request_alloc(tfm)
            if req is None:
                sizes[i] = -errno.ENOMEM
                continue
            wait = CryptoWait()
            acomp_request_set_params(req, sg_init_one(src[i, : lengths[i]]),
                                     sg_init_one(out[i, : capacity[i]]), int(lengths[i]),
                                     int(capacity[i]))
            acomp_request_set_callback(req, CRYPTO_TFM_REQ_MAY_BACKLOG, crypto_req_done, wait)
            reqs.append((i, req, wait, submit(req)))
        for i, req, wait, ret in reqs:
            ret = await crypto_wait_req(ret, wait)
            # an item's status says "does not fit" as -ENOSPC on every driver (the request's
            # reason under the kernel's -EINVAL of lz4, zstd, deflate)
            sizes[i] = req.dlen if ret == 0 else _ENOSPC if req.reason == _ENOSPC else ret
    finally:
        for _, req, _, _ in reqs:
            if not req.in_flight:
                acomp_request_free(req)
    return BatchResult(out, sizes)


def _ints(x: Any, name: str, n: int) -> npt.NDArray[np.int64]:
    """`x` (an int or one per item) as n int64s; a TypeError naming it when not integers."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu" or arr.dtype == np.bool_:
        raise TypeError(f"{name} must be integers, not {arr.dtype}")
    try:
        return np.broadcast_to(arr.astype(np.int64), (n,))
    except ValueError:
        raise ValueError(f"{name} must be one integer or {n} of them, not shape "
                         f"{arr.shape}") from None


async def _packed(tfm: CryptoAcomp, compress: bool, items: Any,
                  capacity: int | Sequence[int] | None, lengths: Any) -> BatchResult | None:
    """The packed forms: compress into packed output, decompress from a packed result, on the
    device where the driver can (``batch_compress_packed`` / ``batch_decompress_packed``)."""
    if compress:
        src, lens = pack(items)
        if lengths is not None:
            lens = np.asarray(lengths, np.int32)
        n = src.shape[0]
        cap = lz4_bound(src.shape[1]) if capacity is None else capacity
        caps = np.full(n, cap, np.int32) if isinstance(cap, int) else np.asarray(cap, np.int32)
        args: tuple[Any, ...] = (src, lens, caps)
        name = "batch_compress_packed"
    else:
        if not isinstance(items, BatchResult) or items.packed is None:
            return None
        n = len(items)
        cap = PAGE_SIZE if capacity is None else capacity
        caps = np.full(n, cap, np.int32) if isinstance(cap, int) else np.asarray(cap, np.int32)
        args = (items.packed, items.offsets, items.sizes, caps)
        name = "batch_decompress_packed"
    fn = getattr(tfm.alg, name, None)
    if fn is None or not n:
        return None
    wait = CryptoWait()
    result: list[BatchResult] = []

    def done(res: BatchResult) -> None:
        result.append(res)
        wait.complete(0)

    ret = fn(tfm, *args, done)
    if ret == -errno.EOPNOTSUPP:
        return None
    ret = await crypto_wait_req(ret, wait)
    if ret:
        raise error_from_errno(ret, "batch", tfm.alg.cra_driver_name)
    return result[0]


async def _batch(tfm: CryptoAcomp, compress: bool, items: Any, capacity: int | Sequence[int] | None,
                 lengths: Any, packed: bool = False) -> BatchResult:
    if packed or isinstance(items, BatchResult):
        res = await _packed(tfm, compress, items, capacity, lengths)
        if res is not None:
            return res
        if isinstance(items, BatchResult):  # unpacked on the host for this driver
            lengths = items.sizes if lengths is None else lengths
            items = items.to_rows()
        if packed:
            res = await _batch(tfm, compress, items, capacity, lengths)
            return res.to_packed()
    if (isinstance(tfm.alg, ScompAlg) and lengths is None
            and not isinstance(items, np.ndarray)):  # buffers straight to the CPU path
        refuse_one_buffer(items)
        n = len(items)
        caps = (None if capacity is None else np.minimum(
            _ints(capacity, "capacity", n), np.iinfo(np.int32).max).tolist())
        return await cpubatch.batch_buffers(tfm, compress, items, caps)
    src, lens32 = pack(items)
    n, width = src.shape
    lens = _ints(lens32 if lengths is None else lengths, "lengths", n)
    if capacity is None:
        capacity = lz4_bound(width) if compress else width * 4
    caps = _ints(capacity, "capacity", n)
    # Per item, before any driver sees it (the same answer on every driver, as scomp's
    # checks): a length outside 1..slot or a capacity below 1 is -EINVAL.
    bad = (lens <= 0) | (lens > width) | (caps <= 0)
    caps32 = np.minimum(caps, np.iinfo(np.int32).max).astype(np.int32)
    if not bad.any():
        return await _dispatch(tfm, compress, src, lens.astype(np.int32), caps32)
    good = np.flatnonzero(~bad)
    sizes = np.full(n, -errno.EINVAL, np.int32)
    if not len(good):
        return BatchResult(np.zeros((n, 1), np.uint8), sizes)
    res = await _dispatch(tfm, compress, np.ascontiguousarray(src[good]),
                          lens[good].astype(np.int32), caps32[good])
    out = np.zeros((n, res.out.shape[1]), np.uint8)
    out[good] = res.out
    sizes[good] = res.sizes
    return BatchResult(out, sizes, res.kernel_ns)


async def _dispatch(tfm: CryptoAcomp, compress: bool, src: npt.NDArray[np.uint8],
                    lens: npt.NDArray[np.int32], caps: npt.NDArray[np.int32]) -> BatchResult:
    n = src.shape[0]
    fn = getattr(tfm.alg, "batch_compress" if compress else "batch_decompress", None)
    if fn is not None and n:
        wait = CryptoWait()
        result: list[BatchResult] = []

        def done(res: BatchResult) -> None:
            result.append(res)
            wait.complete(0)

        ret = fn(tfm, src, lens, caps, done)
        if ret != -errno.EOPNOTSUPP:  # the driver can't take this shape: item by item
            ret = await crypto_wait_req(ret, wait)
            if ret:
                raise error_from_errno(ret, "batch", tfm.alg.cra_driver_name)
            return result[0]
    if isinstance(tfm.alg, ScompAlg):  # synchronous: chunks on every core, no requests
        return await cpubatch.batch_arrays(tfm, compress, src, lens, caps)
    return await _generic(tfm, compress, src, lens, caps)


async def crypto_acomp_batch_compress(tfm: CryptoAcomp, items: Any, *,
                                      capacity: int | Sequence[int] | None = None,
                                      lengths: Any = None, packed: bool = False) -> BatchResult:
    """Compress every item (an ``(n, slot)`` uint8 array or a sequence of buffers).

    `capacity` is each item's output capacity (default: the worst case); `lengths` the input
    length of each row when an array holds shorter items. ``packed=True``: the outputs come
    back to back in ``result.packed`` (``result.offsets``), compacted on the device where the
    driver can (lz4-opencl: the download carries only the compressed bytes). Lengths and
    capacities must be integers (TypeError); an item whose length is outside 1..row width, or
    whose capacity is below 1, gets ``-EINVAL`` in `BatchResult.sizes` on every driver, and
    the others run.
    """
    return await _batch(tfm, True, items, capacity, lengths, packed)


async def crypto_acomp_batch_decompress(tfm: CryptoAcomp, items: Any, *,
                                        capacity: int | Sequence[int] | None = None,
                                        lengths: Any = None) -> BatchResult:
    """Decompress every item; `lengths` gives each block's length when `items` is an array.
    `items` may be a packed compress result: on lz4-opencl its packed bytes are uploaded as
    they are (no padded rows) and put in rows on the device."""
    return await _batch(tfm, False, items, capacity, lengths)
