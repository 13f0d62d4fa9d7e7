"""A scripted device with a fixed completion latency per submission, and its zero-cost twin.

The driver authors' layer (`acomp.internal`); kernel counterpart: none in tree. It plays an
accelerator such as Intel IAA (``iaa_crypto``) or a GPU behind ``CRYPTO_ALG_ASYNC``: every
submission, one request or one batch of any size, completes `FixedLatencyDevice.latency`
seconds after it was submitted, from a completion thread, with negligible compute. That is the
device the goal "the device's latency is hidden" is measured on: page-at-a-time waits pay the
latency per page, a batch pays it once.

The work is a codec that costs next to nothing, ``trim``: a 4-byte little-endian original
length, then the input up to its last non-zero byte (so a page of `k` random bytes followed by
zeros compresses to ``k + 4`` bytes, and an incompressible page does not fit: ``-EINVAL``, the
kernel's lz4 code for it, with the request's reason ``-ENOSPC``, so zswap counts a page the
device rejects as it counts one lz4 rejects).
`ZeroCostScomp` is the same codec as a synchronous scomp (cra_name ``trim`` too, so the two
interoperate): the store rate of zswap on it is the bookkeeping ceiling.

``FixedLatencyDevice(latency=100e-6, batch_size=512)`` registers as ``trim``/``trim-device``;
`batch_size` is what ``crypto_acomp_batch_size`` reports (the device's preferred batch). The
vectored entry points (``batch_compress``/``batch_decompress``, the shape `acomp.batch` calls)
take any number of rows and complete them with one completion.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from acomp._constants import CRYPTO_ALG_ASYNC
from acomp.acompress import AcompReq, acomp_request_complete
from acomp.algapi import (
    ScompAlg,
    crypto_register_scomp,
    crypto_unregister_scomp,
)
from acomp.batchresult import BatchResult
from acomp.scatterlist import sg_copy_from_buffer
from acomp.scompress import scomp_set_reason
from acomp.testing._irq import IrqAcompAlg

__all__ = ("DeviceStatistics", "FixedLatencyDevice", "ZeroCostScomp", "trim_compress",
           "trim_decompress")

_EINPROGRESS = -errno.EINPROGRESS
_ENOSPC = -errno.ENOSPC
_EINVAL = -errno.EINVAL
_HDR = struct.Struct("<I")


def trim_compress(src: memoryview | bytes, dst: memoryview) -> int:
    """``trim`` one buffer into `dst`: bytes written, or ``-EINVAL`` when it does not fit (as
    ``crypto/lz4.c`` says it; the callers record the reason, ``-ENOSPC``)."""
    data = bytes(src).rstrip(b"\0")
    n = 4 + len(data)
    if n > len(dst):
        return _EINVAL
    _HDR.pack_into(dst, 0, len(src))
    dst[4:n] = data
    return n


def trim_decompress(src: memoryview | bytes, dst: memoryview) -> int:
    """Undo `trim_compress` into `dst`: bytes written, ``-EINVAL`` for a malformed block,
    ``-ENOSPC`` when the original does not fit."""
    if len(src) < 4:
        return _EINVAL
    (total,) = _HDR.unpack_from(src, 0)
    kept = len(src) - 4
    if kept > total:
        return _EINVAL
    if total > len(dst):
        return _ENOSPC
    dst[:kept] = src[4:]
    dst[kept:total] = bytes(total - kept)
    return int(total)


def _trim_rows(src: npt.NDArray[np.uint8], lengths: npt.NDArray[np.int32],
               caps: npt.NDArray[np.int32], compress: bool
               ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int32]]:
    n = src.shape[0]
    width = int(caps.max()) if n else 1
    out = np.zeros((n, max(width, 1)), np.uint8)
    sizes = np.empty(n, np.int32)
    fn = trim_compress if compress else trim_decompress
    for i in range(n):
        sizes[i] = fn(src[i, :lengths[i]].data, out[i, :caps[i]].data)
    return out, sizes


@dataclass(frozen=True)
class DeviceStatistics:
    """Submissions (one per request or per batch), the pages they carried, completions."""

    submissions: int
    batch_submissions: int
    items: int
    completions: int
    in_flight: int


class FixedLatencyDevice(IrqAcompAlg):
    """An asynchronous ``trim`` device: each submission completes `latency` seconds later.

    ``with FixedLatencyDevice(latency=100e-6) as dev:`` registers it and, on exit, waits for
    its completions and unregisters it. Requests and batches are independent (the device is as
    parallel as it is asked to be): n submissions in flight complete about `latency` after
    each was made, not n times `latency`.
    """

    cra_flags = CRYPTO_ALG_ASYNC
    cra_name = "trim"
    cra_driver_name = "trim-device"
    cra_module = "acomp.testing"

    def __init__(self, latency: float = 100e-6, *, batch_size: int = 512,
                 name: str = "trim", driver: str = "trim-device", priority: int = 0) -> None:
        if latency < 0 or batch_size < 1:
            raise ValueError("latency must be >= 0 and batch_size >= 1")
        super().__init__(name, driver, priority)
        self.latency = latency
        #: The preferred batch (``crypto_acomp_batch_size``).
        self.batch_size = batch_size
        self._stats = dict.fromkeys(("submissions", "batch_submissions", "items",
                                     "completions"), 0)

    def statistics(self) -> DeviceStatistics:
        """A snapshot of the submissions, pages and completions so far."""
        with self._lock:
            s = self._stats
            return DeviceStatistics(s["submissions"], s["batch_submissions"], s["items"],
                                    s["completions"], len(self._heap) + self._busy)

    # -- one request ----------------------------------------------------------------------------

    def compress(self, req: AcompReq) -> int:
        """Queue `req`; it completes after the fixed latency (``-EINPROGRESS``)."""
        return self._submit(req, True)

    def decompress(self, req: AcompReq) -> int:
        """Queue `req`; it completes after the fixed latency (``-EINPROGRESS``)."""
        return self._submit(req, False)

    def _submit(self, req: AcompReq, compress: bool) -> int:
        if req.src is None or req.dst is None or not req.slen or req.slen > req.src.length:
            return _EINVAL

        def finish() -> None:
            assert req.src is not None
            assert req.dst is not None
            src = req.src.tobytes(req.slen)
            cap = min(req.dlen, req.dst.length) if req.dlen else req.dst.length
            out = bytearray(cap)
            fn = trim_compress if compress else trim_decompress
            n = fn(src, memoryview(out))
            if n >= 0:
                sg_copy_from_buffer(req.dst, out, n)
                req.dlen = n
            elif compress:  # trim's compression fails only for an output that does not fit
                req.reason = _ENOSPC
            acomp_request_complete(req, min(n, 0))

        with self._lock:
            self._stats["submissions"] += 1
            self._stats["items"] += 1
            self._schedule(self.latency, finish)
        return _EINPROGRESS

    # -- the vectored API (acomp.batch) ---------------------------------------------------------

    def _batch(self, src: Any, lengths: Any, caps: Any, done: Any, compress: bool) -> int:
        def finish() -> None:
            out, sizes = _trim_rows(src, lengths, caps, compress)
            done(BatchResult(out, sizes))

        with self._lock:
            self._stats["submissions"] += 1
            self._stats["batch_submissions"] += 1
            self._stats["items"] += int(src.shape[0])
            self._schedule(self.latency, finish)
        return _EINPROGRESS

    def batch_compress(self, tfm: Any, src: Any, lengths: Any, caps: Any, done: Any) -> int:
        """Compress a batch in one submission; `done` is called once when all finished."""
        return self._batch(src, lengths, caps, done, True)

    def batch_decompress(self, tfm: Any, src: Any, lengths: Any, caps: Any, done: Any) -> int:
        """Decompress a batch in one submission; `done` is called once when all finished."""
        return self._batch(src, lengths, caps, done, False)

    # -- the completion thread ------------------------------------------------------------------

    def _delivering(self) -> None:
        self._stats["completions"] += 1


class ZeroCostScomp(ScompAlg):
    """The ``trim`` codec as a synchronous scomp (``trim``/``trim-scomp``): the compressor
    that costs (almost) nothing, for the bookkeeping ceiling of a store path."""

    cra_name = "trim"
    cra_driver_name = "trim-scomp"
    cra_module = "acomp.testing"

    def __init__(self, *, name: str = "trim", driver: str = "trim-scomp",
                 priority: int = 0) -> None:
        super().__init__()
        setattr(self, "cra_name", name)  # noqa: B010
        setattr(self, "cra_driver_name", driver)  # noqa: B010
        setattr(self, "cra_priority", priority)  # noqa: B010

    def compress(self, tfm: Any, src: memoryview, dst: memoryview, ctx: Any) -> int:
        """Compress `src` into `dst` at no cost (the trim codec); ``-EINVAL`` with reason
        ``-ENOSPC`` when it does not fit."""
        n = trim_compress(src, dst)
        if n < 0:
            scomp_set_reason(_ENOSPC)
        return n

    def decompress(self, tfm: Any, src: memoryview, dst: memoryview, ctx: Any) -> int:
        """Decompress what `compress` wrote into `dst`: bytes written or a negative errno."""
        return trim_decompress(src, dst)

    def register(self) -> None:
        """Register it as an scomp driver; `OSError` if the registry refuses it."""
        err = crypto_register_scomp(self)
        if err:
            raise OSError(-err, f"cannot register {self.cra_driver_name}: {errno.errorcode[-err]}")

    def unregister(self) -> None:
        """Unregister it; `OSError` while a tfm still uses it."""
        err = crypto_unregister_scomp(self)
        if err:
            raise OSError(-err, f"cannot unregister {self.cra_driver_name} (a tfm still uses it?)")

    def __enter__(self) -> ZeroCostScomp:
        self.register()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unregister()
