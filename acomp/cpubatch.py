"""The vectored API on synchronous (scomp) drivers: whole chunks, one atomic section each, on
every core.

Kernel counterpart: the scomp side of the batching proposal (``crypto_acomp_batch_compress``
in Kanchana Sridhar's zswap IAA series lets a driver take a whole batch); the split across
cores has none (the kernel would use one CPU per request).

`scomp_batch` serves ``crypto_acomp_batch_compress``/``_decompress`` and the Python layer's
``compress_many``/``decompress_many`` for an scomp algorithm with no per-item request: the
items are cut into one chunk per core, and each chunk runs in one atomic section (the per-CPU
scratch spin lock held, as the scomp wrapper holds it for one request) through the driver's
vectored entry point ``compress_batch``/``decompress_batch`` where it has one, else its
ordinary ``compress``/``decompress`` item by item. Per item the checks and errnos are those of
the scomp wrapper (`acomp.scompress`): ``-EINVAL`` for an empty or oversized source or a zero
capacity, ``-ENOSPC`` for output over the capacity, whatever the driver says otherwise.

How chunks run in parallel is the driver's ``batch_parallel``:

- ``"threads"``: the library releases the GIL long enough per item (zstd, deflate) for threads
  to scale; each thread has its own scomp context (a ``ZstdCompressor`` is not thread-safe);
- ``"processes"``: the library releases the GIL for too short a time per 4 KiB page (lz4, lzo:
  two threads run slower than one), so worker processes (``anyio.to_process``) take chunks over
  shared memory (a memfd the workers map through ``/proc``); the driver must be loadable by
  name there (the ``acomp.drivers`` entry points);
- ``"none"`` (the default for drivers that do not say): one chunk, in the calling thread.

``config.cores`` bounds the cores used (default: all; ``ACOMP_BATCH_CORES`` sets it; 0 is every
core there and in the bench's ``--cpu-cores``, a negative or non-integer count a ValueError) and
``config.min_chunk`` the items below which a chunk is not split off (the hand-off costs more).
In "processes" mode the caller's own chunk is ``config.local_share`` (0.65) of a worker's: it
also copies the workers' items into the arena and their outputs out (measured on 2 cores, the
split that gives the caller and the worker the same CPU time).
"""

from __future__ import annotations

import errno
import itertools
import mmap
import os
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_process
import anyio.to_thread
import numpy as np
import numpy.typing as npt

from acomp import sched, scompress
from acomp._constants import SCOMP_SCRATCH_SIZE
from acomp.acompress import crypto_alloc_acomp
from acomp.batchresult import BatchResult
from acomp.scomp_streams import scomp_streams
from acomp.scompress import scomp_take_reason
from acomp.streams import crypto_acomp_lock_stream_bh, crypto_acomp_unlock_stream_bh

if TYPE_CHECKING:
    from acomp.acompress import CryptoAcomp

__all__ = ("config", "cores_count", "parallel_mode", "run_chunk", "scomp_batch",
           "worker_cpu_ns")

_EINVAL = -errno.EINVAL
_V6_15 = (6, 15)
_ENOSPC = -errno.ENOSPC
_CPUS = os.cpu_count() or 1


def cores_count(cores: int | None, what: str = "cores") -> int:
    """A core count as every knob here reads it: None or 0 is every core (``os.cpu_count()``),
    a positive count bounds it; anything else is a ValueError naming `what`."""
    if cores is None or cores == 0:
        return _CPUS
    if isinstance(cores, bool) or not isinstance(cores, int) or cores < 0:
        raise ValueError(f"{what} must be 0 (every core) or a positive count, not {cores!r}")
    return cores


def _env_cores() -> int | None:
    v = os.environ.get("ACOMP_BATCH_CORES", "").strip()
    if not v:
        return None
    try:
        n = int(v)
    except ValueError:
        n = -1
    return cores_count(n, f"ACOMP_BATCH_CORES={v!r}") if n else None


@dataclass
class _Config:
    #: Cores a batch may use (None or 0: all of ``os.cpu_count()``; `cores_count`).
    cores: int | None = field(default_factory=_env_cores)
    #: Fewest items worth a chunk of their own.
    min_chunk: int = 256
    #: Force a mode for every driver ("threads", "processes", "none"), or None: the driver's.
    mode: str | None = None
    #: In "processes" mode, the calling process's chunk as a share of each worker's: besides
    #: its own chunk it copies every worker's items into the arena and their outputs out.
    local_share: float = 0.65


config = _Config()


def _cores() -> int:
    return cores_count(config.cores, "cpubatch.config.cores")


def parallel_mode(tfm: CryptoAcomp) -> str:
    """How this tfm's batches are split across cores: "threads", "processes" or "none"."""
    mode = config.mode or getattr(tfm.alg, "batch_parallel", "none")
    if mode == "processes" and (tfm.alg.cra_driver_name in _no_worker or not _have_proc_fd()):
        return "none"
    return mode if mode in ("threads", "processes") else "none"


# --------------------------------------------------------------------------------------------
# One chunk in one atomic section

# Scomp contexts per (tfm, thread): a batch reuses them instead of one per item.
_ctxs: weakref.WeakKeyDictionary[Any, dict[int, Any]] = weakref.WeakKeyDictionary()
_ctx_lock = threading.Lock()
_scratch_out = threading.local()


def _ctx(tfm: CryptoAcomp) -> Any:
    tid = threading.get_ident()
    with _ctx_lock:
        per = _ctxs.get(tfm)
        if per is None:
            per = _ctxs[tfm] = {}
        if tid in per:
            return per[tid]
    ctx = tfm.alg.alloc_ctx(tfm)  # type: ignore[attr-defined]
    with _ctx_lock:
        per[tid] = ctx
    return ctx


def _per_item(alg: Any, compress: bool, tfm: Any, srcs: Sequence[Any], caps: Sequence[int],
              ctx: Any) -> list[bytes | int]:
    """The default vectored entry: the driver's own per-item call, as one request makes it."""
    fn = alg.compress if compress else alg.decompress
    buf = getattr(_scratch_out, "buf", None)
    if buf is None:
        buf = _scratch_out.buf = memoryview(bytearray(SCOMP_SCRATCH_SIZE))
    out: list[bytes | int] = []
    for i, s in enumerate(srcs):
        cap = caps[i]
        ret: int = fn(tfm, s, buf[:cap], ctx)
        if ret < 0 and scomp_take_reason() == _ENOSPC:
            ret = _ENOSPC  # an item's "does not fit" is -ENOSPC (acomp.batch), whatever errno
        out.append(_ENOSPC if ret > cap else bytes(buf[:ret]) if ret >= 0 else ret)
    return out


def _scratch_lock() -> sched.SpinLock:
    return scompress._scratch.this_cpu().lock


def run_chunk(tfm: CryptoAcomp, compress: bool, srcs: Sequence[Any],
              caps: Sequence[int]) -> list[bytes | int]:
    """Items ``srcs`` (buffers of bytes) with output capacities `caps`, in one atomic section
    on the calling task's CPU: per item its output, or -errno, with the scomp wrapper's
    checks (``-EINVAL`` for an empty source, one over ``SCOMP_SCRATCH_SIZE`` or a capacity of
    0; capacities over the scratch size are clamped to it)."""
    alg = tfm.alg
    n = len(srcs)
    if not n:
        return []
    lens = list(map(len, srcs))
    ok = min(lens) > 0 and max(lens) <= SCOMP_SCRATCH_SIZE and min(caps) > 0
    if max(caps) > SCOMP_SCRATCH_SIZE:
        caps = [min(c, SCOMP_SCRATCH_SIZE) for c in caps]
    entry = getattr(alg, "compress_batch" if compress else "decompress_batch", None)
    if tfm.kernel >= _V6_15:  # v6.15+: the context is this CPU's stream's, under its lock
        stream = crypto_acomp_lock_stream_bh(scomp_streams(alg))
        try:
            return _chunk(alg, compress, tfm, srcs, caps, stream.ctx, entry, lens, ok)
        finally:
            crypto_acomp_unlock_stream_bh(stream)
    ctx = _ctx(tfm)
    lock = _scratch_lock()
    lock.lock()
    try:
        return _chunk(alg, compress, tfm, srcs, caps, ctx, entry, lens, ok)
    finally:
        lock.unlock()


def _chunk(alg: Any, compress: bool, tfm: Any, srcs: Sequence[Any], caps: Sequence[int],
           ctx: Any, entry: Any, lens: list[int], ok: bool) -> list[bytes | int]:
    """`run_chunk`'s work, inside its atomic section."""
    n = len(srcs)
    if ok:
        if entry is not None:
            return list(entry(tfm, srcs, caps, ctx))
        return _per_item(alg, compress, tfm, srcs, caps, ctx)
    res: list[bytes | int] = [_EINVAL] * n
    for i in range(n):  # some items are refused: the rest one by one
        if lens[i] and lens[i] <= SCOMP_SCRATCH_SIZE and caps[i] > 0:
            res[i] = _per_item(alg, compress, tfm, [srcs[i]], [caps[i]], ctx)[0]
    return res


# --------------------------------------------------------------------------------------------
# Shared memory for worker processes: one memfd per arena, mapped by the workers via /proc


_proc_fd: bool | None = None


def _have_proc_fd() -> bool:
    """Whether workers can map a memfd through /proc (asked once: a stat is a syscall)."""
    global _proc_fd
    if _proc_fd is None:
        _proc_fd = hasattr(os, "memfd_create") and os.path.isdir(f"/proc/{os.getpid()}/fd")
    return _proc_fd


class _Arena:
    """A pre-faulted shared mapping (faults are what fresh memory costs; it is reused)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.fd = os.memfd_create("acomp-batch")
        os.ftruncate(self.fd, size)
        self.map = mmap.mmap(self.fd, size)
        # The fd number is reused once an arena is closed: the serial tells a worker's cached
        # mapping of a closed arena from a new one behind the same path.
        self.path = f"/proc/{os.getpid()}/fd/{self.fd}#{next(_serials)}"
        self.view = memoryview(self.map)
        np.frombuffer(self.map, np.uint8)[:] = 0  # fault every page in once
        weakref.finalize(self, _Arena._close, self.view, self.map, self.fd)

    @staticmethod
    def _close(view: memoryview, m: mmap.mmap, fd: int) -> None:
        view.release()
        m.close()
        os.close(fd)


_serials = itertools.count(1)
_arenas: list[_Arena] = []
_arena_lock = threading.Lock()


def _take_arena(size: int) -> _Arena:
    with _arena_lock:
        for a in _arenas:
            if a.size >= size:
                _arenas.remove(a)
                return a
        if _arenas:
            _arenas.pop(0)  # too small: let it go
    return _Arena(max(size, 1 << 20))


def _give_arena(a: _Arena) -> None:
    with _arena_lock:
        _arenas.append(a)
        while len(_arenas) > 2:
            _arenas.pop(0)


# Worker side: state kept between calls (the worker process lives on between batches).
_w_maps: dict[str, tuple[mmap.mmap, memoryview]] = {}
_w_tfms: dict[str, Any] = {}


def _worker_chunk(driver: str, compress: bool, path: str, size: int, src_off: int,
                  slens: bytes, dst_off: int, caps: bytes) -> tuple[bytes, int]:
    """In a worker process: one chunk from the shared arena back into it; the int32 results
    and the CPU time the chunk took here (ns).

    The chunk's sources lie back to back from `src_off` (int32 lengths `slens`), its outputs
    are written back to back from `dst_off`, each straight from the library's object (no
    joined copy: a fresh multi-MiB object costs its page faults, on some VMs more than the
    work)."""
    t0 = time.thread_time_ns()
    got = _w_maps.get(path)
    if got is None or len(got[0]) != size:
        while len(_w_maps) >= 4:  # the arenas in use are few: keep their mappings
            m, v = _w_maps.pop(next(iter(_w_maps)))
            v.release()
            m.close()
        fd = os.open(path.partition("#")[0], os.O_RDWR)
        try:
            m = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        got = _w_maps[path] = (m, memoryview(m))
    mm, view = got
    tfm = _w_tfms.get(driver)
    if tfm is None:
        tfm = _w_tfms[driver] = crypto_alloc_acomp(driver)
        if tfm.alg.cra_driver_name != driver:
            raise LookupError(f"worker found {tfm.alg.cra_driver_name}, not {driver}")
    srcs = []
    o = src_off
    for ln in np.frombuffer(slens, np.int32).tolist():
        srcs.append(view[o : o + ln])
        o += ln
    try:
        res = run_chunk(tfm, compress, srcs, np.frombuffer(caps, np.int32).tolist())
    finally:
        del srcs
    mm.seek(dst_off)
    write = mm.write
    sizes: list[int] = []
    add = sizes.append
    for r in res:
        if isinstance(r, int):
            add(r)
        else:
            add(write(r))
    return np.asarray(sizes, np.int32).tobytes(), time.thread_time_ns() - t0


_worker_cpu_ns = 0


def worker_cpu_ns() -> int:
    """CPU time the worker processes spent on chunks so far (ns), as they measured it: with
    ``time.process_time_ns()`` of the caller, what a batch cost on every core, which a shared
    machine's wall clock does not show."""
    return _worker_cpu_ns


_no_worker: set[str] = set()  # drivers a worker could not load: served in-process from then


# --------------------------------------------------------------------------------------------
# The batch


def _bounds(n: int, k: int) -> list[int]:
    return [n * j // k for j in range(k + 1)]


def _skewed_bounds(n: int, k: int, share: float) -> list[int]:
    """`_bounds` with chunk 0 (the caller's) `share` times the size of each other one."""
    share = max(0.0, share)
    first = min(n, round(n * share / (share + k - 1)))
    rest = n - first
    return [0, *(first + rest * j // (k - 1) for j in range(k))]


async def scomp_batch(tfm: CryptoAcomp, compress: bool, srcs: Sequence[Any],
                      caps: Sequence[int],
                      block: tuple[memoryview, int] | None = None) -> list[bytes | int]:
    """Every item of `srcs` (capacity ``caps[i]``): its output or a negative errno, as
    `run_chunk` gives them, with one chunk per core. `block` (a flat view and a row width)
    says that item i is row i of one array, all rows full: worker chunks are copied at once."""
    n = len(srcs)
    mode = parallel_mode(tfm)
    k = min(_cores(), max(1, n // max(1, config.min_chunk))) if mode != "none" else 1
    if k <= 1:
        return run_chunk(tfm, compress, srcs, caps)
    b = _bounds(n, k) if mode == "threads" else _skewed_bounds(n, k, config.local_share)
    results: list[list[bytes | int]] = [[] for _ in range(k)]
    nr = sched.nr_cpu_ids()

    def local(j: int) -> None:
        lo, hi = b[j], b[j + 1]
        with sched.on_cpu(j % nr):
            results[j] = run_chunk(tfm, compress, srcs[lo:hi], caps[lo:hi])

    if mode == "threads":
        async with anyio.create_task_group() as tg:
            for j in range(1, k):
                tg.start_soon(anyio.to_thread.run_sync, local, j)
            await anyio.lowlevel.checkpoint()  # let the threads start before chunk 0
            local(0)
        return [r for part in results for r in part]

    # processes: chunk 0 here (in a thread, so that the loop serves the workers' pipes),
    # the others in workers over one shared arena
    first = b[1]
    lens = [len(s) for s in srcs]
    sw = max(lens[first:], default=1) or 1
    dw = max(1, min(SCOMP_SCRATCH_SIZE, max(caps[first:], default=1)))
    m = n - first
    arena = _take_arena(m * (sw + dw))
    try:
        mm = arena.map
        # The workers' sources back to back (one copy when they are the rows of one array).
        if block is not None and block[1] == sw:
            arena.view[: m * sw] = block[0][first * sw : n * sw]
        else:
            mm.seek(0)
            write = mm.write
            for i in range(first, n):
                write(srcs[i])
        offs = [0, *itertools.accumulate(lens[first:])]
        dst_base = m * sw
        driver = tfm.alg.cra_driver_name

        async def remote(j: int) -> None:
            lo, hi = b[j], b[j + 1]
            do = dst_base + (lo - first) * dw
            try:
                raw, cpu_ns = await anyio.to_process.run_sync(
                    _worker_chunk, driver, compress, arena.path, arena.size, offs[lo - first],
                    np.asarray(lens[lo:hi], np.int32).tobytes(), do,
                    np.asarray(caps[lo:hi], np.int32).tobytes())
            except Exception:  # the worker could not serve this driver: do it here
                _no_worker.add(driver)
                local(j)
                return
            global _worker_cpu_ns
            _worker_cpu_ns += cpu_ns
            # Each output straight out of the mapping (no joined copy of the chunk first).
            part: list[bytes | int] = []
            add = part.append
            o = do
            for r in np.frombuffer(raw, np.int32).tolist():
                if r >= 0:
                    add(mm[o : o + r])
                    o += r
                else:
                    add(r)
            results[j] = part

        async with anyio.create_task_group() as tg:
            for j in range(1, k):
                tg.start_soon(remote, j)
            await anyio.to_thread.run_sync(local, 0)
    finally:
        _give_arena(arena)
    return [r for part in results for r in part]


# --------------------------------------------------------------------------------------------
# The two callers: the vectored API (arrays) and the Python layer (sequences of buffers)


def _bound(n: int) -> int:
    """Room for any algorithm here on `n` input bytes (LZO's worst case is the largest)."""
    return n + n // 16 + 67


class _BlobResult(BatchResult):
    """A `BatchResult` that holds the library's output objects: ``out`` (the ``(n, width)``
    array) is built when first read, so that a caller who takes the items (`item`, `tolist`)
    pays no copy."""

    def __init__(self, blobs: list[bytes | int], width: int) -> None:
        self._blobs = blobs
        self._width = width
        self._out: npt.NDArray[np.uint8] | None = None
        try:  # every item done: the sizes at C speed
            self.sizes = np.fromiter(map(len, blobs), np.int32, len(blobs))  # type: ignore[arg-type]
        except TypeError:
            self.sizes = np.fromiter((b if isinstance(b, int) else len(b) for b in blobs),
                                     np.int32, len(blobs))
        self.kernel_ns = 0

    @property
    def out(self) -> npt.NDArray[np.uint8]:  # type: ignore[override]
        if self._out is None:
            out = np.zeros((len(self._blobs), self._width), np.uint8)
            if out.size:
                flat = memoryview(out.reshape(-1))  # type: ignore[arg-type]
                o = 0
                for b in self._blobs:
                    if not isinstance(b, int):
                        flat[o : o + len(b)] = b
                    o += self._width
            self._out = out
        return self._out

    def item(self, i: int) -> bytes:
        b = self._blobs[i]
        if isinstance(b, int):
            return super().item(i)  # the item's typed error
        return b

    def tolist(self) -> list[bytes]:
        return [self.item(i) for i in range(len(self._blobs))]

    def to_packed(self) -> BatchResult:
        """The outputs back to back, straight from the library's objects (one join)."""
        lens = np.maximum(self.sizes, 0).astype(np.int64)
        offsets = np.cumsum(lens) - lens
        packed = np.frombuffer(bytearray(b"".join(
            [b for b in self._blobs if not isinstance(b, int)])), np.uint8)
        return BatchResult(np.zeros((len(self.sizes), 0), np.uint8), self.sizes,
                           packed=packed, offsets=offsets)


async def batch_arrays(tfm: CryptoAcomp, compress: bool, src: npt.NDArray[np.uint8],
                       lengths: npt.NDArray[np.int32],
                       capacity: npt.NDArray[np.int32]) -> BatchResult:
    """``crypto_acomp_batch_*`` on an scomp tfm: a `BatchResult` whose ``out`` is made when
    first read."""
    n, w = src.shape
    width = max(1, int(capacity.max())) if n else 1
    flat = (memoryview(np.ascontiguousarray(src)).cast("B")  # type: ignore[arg-type]
            if src.size else memoryview(b""))
    ls = lengths.tolist()
    block = None
    if n and min(ls) == max(ls) == w:
        srcs = [flat[o : o + w] for o in range(0, n * w, w)]
        block = (flat, w)
    else:
        empty = flat[:0]
        srcs = [flat[i * w : i * w + ln] if 0 <= ln <= w else empty for i, ln in enumerate(ls)]
    res = await scomp_batch(tfm, compress, srcs, capacity.tolist(), block)
    return _BlobResult(res, width)


async def batch_buffers(tfm: CryptoAcomp, compress: bool, items: Sequence[Any],
                        capacity: int | Sequence[int] | None) -> BatchResult:
    """``crypto_acomp_batch_*`` on an scomp tfm with a sequence of buffers: no packing into
    an array first (its fresh pages cost more than the work on some machines)."""
    srcs = _views(items)
    n = len(srcs)
    if capacity is None:
        w = max(map(len, srcs), default=1) or 1
        capacity = w + w // 128 + 64 if compress else w * 4  # batch.lz4_bound, as pack's
    caps = [capacity] * n if isinstance(capacity, int) else [int(c) for c in capacity]
    if len(caps) != n:
        raise ValueError(f"{len(caps)} capacities for {n} items")
    res = await scomp_batch(tfm, compress, srcs, caps)
    return _BlobResult(res, max(1, max(caps, default=1)))


def _views(items: Sequence[Any]) -> list[Any]:
    return [x if type(x) is bytes or (type(x) is memoryview and x.format == "B" and x.ndim == 1
                                      and x.c_contiguous)
            else _view(x) for x in items]


def _view(x: Any) -> memoryview:
    m = memoryview(x)
    return m.cast("B") if m.c_contiguous else memoryview(m.tobytes())  # strided: a copy


async def many(tfm: CryptoAcomp, compress: bool, items: Sequence[Any],
               max_len: int) -> list[bytes | None]:
    """The Python layer's ``compress_many``/``decompress_many`` on an scomp tfm: each item's
    bytes, or None where it failed (the caller redoes that one to raise its typed error)."""
    srcs = _views(items)
    if compress:
        caps = [min(SCOMP_SCRATCH_SIZE, _bound(len(s))) for s in srcs]
    else:
        caps = [min(SCOMP_SCRATCH_SIZE, max_len)] * len(srcs)
    res = await scomp_batch(tfm, compress, srcs, caps)
    return [None if isinstance(r, int) else r for r in res]
