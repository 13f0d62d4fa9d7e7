"""The Python layer: ``async with acomp.open("lz4") as c: await c.compress(data)``.

Built only on the kernel-style API (`acomp.acompress`, `acomp.wait`): each call is one acomp
request awaited with `crypto_wait_req`. Errors are typed exceptions (`acomp.OutputTooSmall`,
`acomp.BadData`, ...). Reuse one `Compressor` in loops: it keeps its transform and requests.
"""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import anyio
from typing_extensions import Buffer

from acomp import cpubatch
from acomp._constants import CRYPTO_TFM_REQ_MAY_BACKLOG, SCOMP_SCRATCH_SIZE
from acomp._errors import (
    AlgorithmNotFound,
    BadData,
    CryptoError,
    DeviceError,
    OutputTooSmall,
    error_from_errno,
)
from acomp.acompress import (
    AcompReq,
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
from acomp.algapi import ScompAlg
from acomp.scatterlist import Scatterlist, sg_init_one
from acomp.wait import CryptoWait, crypto_req_done, crypto_wait_req

__all__ = ("Compressor", "CompressorStatistics", "compress", "decompress", "open")

_ETIMEDOUT = -errno.ETIMEDOUT
_EINVAL = -errno.EINVAL
_ENOSPC = -errno.ENOSPC


@dataclass(frozen=True)
class CompressorStatistics:
    """What a `Compressor` did so far (`Compressor.statistics`): operations, bytes in and out
    (uncompressed in and compressed out for compressions, the reverse for decompressions),
    and the requests it has in flight now."""

    driver: str
    is_async: bool
    compressed: int
    decompressed: int
    bytes_in: int
    bytes_out: int
    requests_in_flight: int


class Compressor:
    """One algorithm's transform with a pool of requests; made by `acomp.open`."""

    def __init__(self, tfm: CryptoAcomp, *, timeout: float | None = None) -> None:
        self.tfm = tfm
        self.timeout = timeout
        self._free: list[AcompReq] = []
        self._in_flight = 0
        self._n_comp = self._n_decomp = self._bytes_in = self._bytes_out = 0
        self._closed = False
        #: Whether the transform's era lets the driver allocate the output (a NULL dst,
        #: ``CRYPTO_ACOMP_ALLOC_OUTPUT``, v4.10 - v6.14); from v6.15 this layer gives a buffer.
        self._alloc_output = tfm.kernel < (6, 15)

    def __repr__(self) -> str:
        state = "closed" if self._closed else (
            f"{self._n_comp} compressed, {self._n_decomp} decompressed, "
            f"{self._in_flight} in flight")
        return (f"<acomp.Compressor {self.name!r} driver={self.driver!r} "
                f"{'async' if self.is_async else 'sync'}, {state}>")

    @property
    def name(self) -> str:
        """The algorithm (``cra_name``), e.g. ``lz4``."""
        return self.tfm.alg.cra_name

    @property
    def driver(self) -> str:
        """The driver that serves it (``cra_driver_name``), e.g. ``lz4-scomp``."""
        return self.tfm.alg.cra_driver_name

    @property
    def is_async(self) -> bool:
        """Whether the driver completes requests asynchronously (``CRYPTO_ALG_ASYNC``)."""
        return acomp_is_async(self.tfm)

    def statistics(self) -> CompressorStatistics:
        """A snapshot of what this compressor did so far."""
        return CompressorStatistics(
            self.driver, self.is_async, self._n_comp, self._n_decomp, self._bytes_in,
            self._bytes_out, self._in_flight,
        )

    def _get(self) -> AcompReq:
        if self._closed:
            raise anyio.ClosedResourceError
        if self._free:
            return self._free.pop()
        req = acomp_request_alloc(self.tfm)
        if req is None:
            raise DeviceError(f"{self.driver}: cannot allocate a request", -errno.ENOMEM)
        req.user = CryptoWait()
        return req

    def _put(self, req: AcompReq) -> None:
        if req.in_flight:  # timed out: the driver still owns it; never reuse or free it
            return
        if self._closed or self.is_async:
            # An asynchronous request is not reused: a duplicate completion from a buggy
            # driver, arriving late, would otherwise end the next operation's wait early
            # (wrong data, silently); it now reaches a request and a wait nobody uses.
            acomp_request_free(req)
        else:
            req.dst = None
            req.src = None
            self._free.append(req)

    async def _op(self, compress: bool, data: Any, out: Any, cap: int) -> AcompReq:
        try:
            src = sg_init_one(data)
        except TypeError:
            if not _strided(data):
                raise
            src = sg_init_one(memoryview(data).tobytes())  # any buffer: a strided one copied
        dst = None if out is None else _out_sg(out)
        req = self._get()
        wait: CryptoWait = req.user
        acomp_request_set_params(req, src, dst, src.length, cap)
        acomp_request_set_callback(req, CRYPTO_TFM_REQ_MAY_BACKLOG, crypto_req_done, wait)
        self._in_flight += 1
        try:
            submit = crypto_acomp_compress if compress else crypto_acomp_decompress
            ret = await crypto_wait_req(submit(req), wait, self.timeout)
        finally:
            self._in_flight -= 1
        if ret:
            self._put(req)
            if ret == _ETIMEDOUT:
                raise DeviceError(f"{self.driver}: no completion within {self.timeout}s", ret)
            op = "compress" if compress else "decompress"
            if src.length == 0:
                raise ValueError(f"cannot {op} an empty buffer")
            if ret == _EINVAL:
                if (not compress and not req.reason and 0 < cap < SCOMP_SCRATCH_SIZE
                        and await self._decodes_larger(src, cap)):
                    req.reason = _ENOSPC  # the driver did not say: the probe did
                raise self._einval(req, compress, src.length, cap)
            raise error_from_errno(ret, op, self.driver)
        if compress:
            self._n_comp += 1
        else:
            self._n_decomp += 1
        self._bytes_in += src.length
        self._bytes_out += req.dlen
        return req

    async def _decodes_larger(self, src: Scatterlist, cap: int) -> bool:
        """Whether `src` decodes to more than `cap` bytes (one more request, the driver's
        own allocation of up to SCOMP_SCRATCH_SIZE): how a ``-EINVAL`` from a driver that
        gives no reason is told apart from corrupt input, on the error path only."""
        req = self._get()
        if self._alloc_output:
            acomp_request_set_params(req, src, None, src.length, 0)
        else:
            acomp_request_set_params(req, src, sg_init_one(bytearray(SCOMP_SCRATCH_SIZE)),
                                     src.length, SCOMP_SCRATCH_SIZE)
        acomp_request_set_callback(req, CRYPTO_TFM_REQ_MAY_BACKLOG, crypto_req_done, req.user)
        try:
            ret = await crypto_wait_req(crypto_acomp_decompress(req), req.user, self.timeout)
            return ret == 0 and req.dlen > cap
        finally:
            self._put(req)

    def _einval(self, req: AcompReq, compress: bool, slen: int, cap: int) -> Exception:
        """The caller's mistake behind a ``-EINVAL``, which the kernel returns for an input it
        refuses, an output that does not fit (its lz4, zstd, deflate) and a corrupt block."""
        op = "compress" if compress else "decompress"
        what = f"{op} with {self.driver} failed: -EINVAL"
        if slen > SCOMP_SCRATCH_SIZE:
            return ValueError(
                f"{op}: {slen} bytes is more than {self.driver} takes in one call (at most "
                f"{SCOMP_SCRATCH_SIZE} bytes, the kernel's SCOMP_SCRATCH_SIZE): split the data "
                "(compress_many on chunks)")
        if compress or req.reason == _ENOSPC:
            # A valid input that does not compress (or decompress) into the room given: the
            # driver said so (reason), or compression refused an input this layer checked.
            room = f"{cap} bytes" if cap else "the output the driver may allocate"
            return OutputTooSmall(f"{what}: the output does not fit {room}", _EINVAL)
        return BadData(f"{what}: the compressed input is corrupt or truncated", _EINVAL)

    async def compress(self, data: Buffer) -> bytes:
        """Compress any buffer; the output is allocated by the driver (``dst=None``), or from
        v6.15 (no ``CRYPTO_ACOMP_ALLOC_OUTPUT``) here: twice the input and 64 bytes, at most
        ``SCOMP_SCRATCH_SIZE``, what the driver could allocate."""
        if not self._alloc_output:
            out = bytearray(min(SCOMP_SCRATCH_SIZE, 2 * memoryview(data).nbytes + 64))
            req = await self._op(True, data, out, len(out))
            result = bytes(out[: req.dlen])
            self._put(req)
            return result
        req = await self._op(True, data, None, 0)
        assert req.dst is not None
        result = req.dst.tobytes(req.dlen)
        self._put(req)
        return result

    async def compress_into(self, data: Buffer, out: Buffer) -> int:
        """Compress into writable buffer `out`; returns bytes written (OutputTooSmall if not)."""
        req = await self._op(True, data, out, memoryview(out).nbytes)
        n = req.dlen
        self._put(req)
        return n

    async def decompress(self, blob: Buffer, max_len: int) -> bytes:
        """Decompress into at most `max_len` bytes (OutputTooSmall / BadData otherwise)."""
        if max_len <= 0:
            raise ValueError("max_len must be positive")
        out = bytearray(max_len)
        n = await self.decompress_into(blob, out)
        return bytes(out[:n])

    async def decompress_into(self, blob: Buffer, out: Buffer) -> int:
        """Decompress into writable buffer `out`; returns bytes written (OutputTooSmall,
        BadData)."""
        req = await self._op(False, blob, out, memoryview(out).nbytes)
        n = req.dlen
        self._put(req)
        return n

    async def compress_many(self, items: Sequence[Buffer], *, limit: int = 256) -> list[bytes]:
        """Compress many buffers with up to `limit` requests in flight; results in order."""
        return await self._many(True, items, 0, limit)

    async def decompress_many(self, blobs: Sequence[Buffer], max_len: int, *,
                              limit: int = 256) -> list[bytes]:
        """Decompress many buffers, each into at most `max_len` bytes, with up to `limit`
        requests in flight; results in order."""
        return await self._many(False, blobs, max_len, limit)

    async def _many(self, compress: bool, items: Sequence[Any], max_len: int,
                    limit: int) -> list[bytes]:
        results: list[bytes] = [b""] * len(items)
        if isinstance(self.tfm.alg, ScompAlg) and items:  # chunks on every core, no requests
            if not compress and max_len <= 0:
                raise ValueError("max_len must be positive")
            if self._closed:
                raise anyio.ClosedResourceError
            blobs = await cpubatch.many(self.tfm, compress, items, max_len)
            done = 0
            for i, b in enumerate(blobs):
                if b is None:  # refused: the one-request path raises its typed error
                    blobs[i] = await (self.compress(items[i]) if compress
                                      else self.decompress(items[i], max_len))
                    continue
                done += 1
                self._bytes_in += memoryview(items[i]).nbytes
                self._bytes_out += len(b)
            if compress:
                self._n_comp += done
            else:
                self._n_decomp += done
            return blobs  # type: ignore[return-value]
        if not self.is_async:  # nothing to overlap: one after the other, no task overhead
            for i, item in enumerate(items):
                results[i] = await (self.compress(item) if compress
                                    else self.decompress(item, max_len))
            return results
        sem = anyio.Semaphore(limit)

        async def one(i: int, item: Any) -> None:
            async with sem:
                results[i] = await (self.compress(item) if compress
                                    else self.decompress(item, max_len))

        async with anyio.create_task_group() as tg:
            for i, item in enumerate(items):
                await sem.acquire()  # keep at most `limit` tasks alive
                sem.release()
                tg.start_soon(one, i, item)
        return results

    async def aclose(self) -> None:
        """Free the requests and the transform (``async with acomp.open(...)`` does it)."""
        if self._closed:
            return
        self._closed = True
        for req in self._free:
            acomp_request_free(req)
        self._free.clear()
        crypto_free_acomp(self.tfm)


def _strided(data: Any) -> bool:
    try:
        return not memoryview(data).c_contiguous
    except TypeError:
        return False


def _out_sg(out: Any) -> Scatterlist:
    """The caller's output buffer as a scatterlist; its problems are named here, never left
    to the driver's ``-EINVAL`` (which would read as corrupt input)."""
    mv = memoryview(out)
    if mv.readonly:
        raise TypeError(f"the output buffer must be writable, not a read-only "
                        f"{type(out).__name__}")
    if not mv.c_contiguous:
        raise TypeError(f"the output buffer must be contiguous, not a strided "
                        f"{type(out).__name__} (a view such as a[::2])")
    if mv.nbytes == 0:
        raise OutputTooSmall("the output buffer is empty (0 bytes)", -errno.ENOSPC)
    return sg_init_one(mv)


@asynccontextmanager
async def open(name: str, *, type: int = 0, mask: int = 0,
               timeout: float | None = None,  # noqa: ASYNC109 - per wait, not for the call
               ) -> AsyncIterator[Compressor]:
    """A `Compressor` for `name` (a cra_name like ``"lz4"`` or a driver like ``"lz4-scomp"``).

    Raises `acomp.AlgorithmNotFound` when no tested algorithm has that name. `timeout` bounds
    each wait for an asynchronous driver (``DeviceError`` instead of a hang).
    """
    try:
        tfm = crypto_alloc_acomp(name, type, mask)
    except CryptoError as e:
        raise AlgorithmNotFound(f"no algorithm {name!r}: {e.strerror}", e.err) from None
    c = Compressor(tfm, timeout=timeout)
    try:
        yield c
    finally:
        await c.aclose()


Backend = Literal["asyncio", "trio"]


def compress(data: Buffer, name: str = "lz4", *, backend: Backend = "asyncio") -> bytes:
    """Compress `data` with algorithm or driver `name`, synchronously, for scripts.

    Equivalent to ``anyio.run`` of ``async with acomp.open(name) as c: return await
    c.compress(data)``; reuse a `Compressor` in loops (each call allocates a transform and
    frees it). Raises the same typed errors; from async code, use `acomp.open`.
    """
    async def one() -> bytes:
        async with open(name) as c:
            return await c.compress(data)

    return anyio.run(one, backend=backend)


def decompress(blob: Buffer, max_len: int, name: str = "lz4", *,
               backend: Backend = "asyncio") -> bytes:
    """Decompress `blob` into at most `max_len` bytes, synchronously, for scripts.

    Equivalent to ``anyio.run`` of ``async with acomp.open(name) as c: return await
    c.decompress(blob, max_len)``; reuse a `Compressor` in loops. `acomp.OutputTooSmall` when
    the output does not fit, `acomp.BadData` when `blob` is corrupt.
    """
    async def one() -> bytes:
        async with open(name) as c:
            return await c.decompress(blob, max_len)

    return anyio.run(one, backend=backend)
