"""LZ4 block compression on an OpenCL device: kernels, buffers and the submission pipeline.

The kernels (`kernels.cl`) give every page its own work-group: the compressor finds matches
for all positions of a window in parallel and one lane walks the greedy parse; the decompressor
validates a block with one lane and copies literals and matches with all lanes. See the comments
in `kernels.cl`.

The host side keeps `slots` sets of buffers, each with its own in-order command queue, so
that one batch uploads while another computes and a third downloads. `submit` returns at once:
a dispatcher thread copies the batch into pinned (ALLOC_HOST_PTR, mapped) host memory and
enqueues upload, kernel and download; a completer thread waits for the download event and
calls `on_done` with the results on the host. `compress` and `decompress` are synchronous
conveniences on top of `submit`.

Results: sizes[i] >= 0 is the output length of item i; errors are negative errnos: -EINVAL
(a length out of range), -ENOSPC (compressed block or well-formed decoded data larger than the
item's capacity), -EBADMSG (a malformed block: see `kernels.cl` for the exact rules, which
accept what LZ4_decompress_safe() accepts, except offset 0). A failing item writes nothing
and never disturbs the other items of its batch; no item is ever written past its capacity.

Only the driver imports this module, and only when an OpenCL device is wanted: it imports
pyopencl.
"""

from __future__ import annotations

import concurrent.futures
import errno
import itertools
import logging
import os
import queue
import re
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
import pyopencl as cl

__all__ = (
    "ENV_DEVICE",
    "KERNEL_SOURCE",
    "DeviceInfo",
    "Job",
    "Lz4Device",
    "choose_device",
    "list_devices",
    "lz4_bound",
)

log = logging.getLogger(__name__)

ENV_DEVICE = "ACOMP_OPENCL_DEVICE"
KERNEL_SOURCE = Path(__file__).with_name("kernels.cl")

Op = Literal["compress", "decompress"]
U8 = npt.NDArray[np.uint8]
I32 = npt.NDArray[np.int32]

_PARALLEL_COPY = 8 << 20  # staging copies from this size on use the copy threads
_ALIGN = 16  # row pitch of every device buffer (the kernels load and store 32-bit words)


def lz4_bound(n: int) -> int:
    """Largest LZ4 block for `n` input bytes (LZ4_COMPRESSBOUND)."""
    return n + n // 255 + 16


def _round_up(x: int, a: int = _ALIGN) -> int:
    return (x + a - 1) // a * a


# ---------------------------------------------------------------------------------------------
# Devices
# ---------------------------------------------------------------------------------------------


def _kind(dev: cl.Device) -> str:
    t = int(dev.type)
    for flag, name in (
        (cl.device_type.GPU, "GPU"),
        (cl.device_type.CPU, "CPU"),
        (cl.device_type.ACCELERATOR, "ACCELERATOR"),
    ):
        if t & int(flag):
            return name
    return "OTHER"


def list_devices() -> list[tuple[int, int, cl.Device]]:
    """Every OpenCL device as (platform index, device index, device); [] without a platform."""
    try:
        platforms = cl.get_platforms()
    except (cl.Error, RuntimeError):  # no ICD, or no platform at all
        return []
    found: list[tuple[int, int, cl.Device]] = []
    for pi, plat in enumerate(platforms):
        try:
            devs = plat.get_devices()
        except (cl.Error, RuntimeError):
            continue
        found.extend((pi, di, d) for di, d in enumerate(devs))
    return found


def _describe(pi: int, di: int, d: cl.Device) -> str:
    return f"{pi}:{di} {d.platform.name.strip()} / {d.name.strip()} ({_kind(d)})"


def choose_device(spec: str | None = None) -> cl.Device:
    """The OpenCL device to use.

    `spec` (else the environment variable ACOMP_OPENCL_DEVICE) selects one:
    "P:D" or "P" are platform and device indices; otherwise "platform[:device]" are
    case-insensitive substrings of the platform name or vendor and of the device name
    ("pocl", "nvidia", "portable:pthread"). Among several matches, and without a spec, a GPU
    wins over other kinds. Raises LookupError when nothing matches or no device exists.
    """
    if spec is None:
        spec = os.environ.get(ENV_DEVICE, "")
    spec = spec.strip()
    devices = list_devices()
    if not devices:
        raise LookupError("no OpenCL platform or device found")
    if not spec:
        matches = devices
    elif re.fullmatch(r"\d+(:\d+)?", spec):
        p, _, d = spec.partition(":")
        matches = [x for x in devices if x[0] == int(p) and x[1] == int(d or 0)]
    else:
        plat_sub, _, dev_sub = (s.strip().lower() for s in spec.partition(":"))

        def plat_ok(dev: cl.Device) -> bool:
            plat = dev.platform
            return plat_sub in plat.name.lower() or plat_sub in plat.vendor.lower()

        matches = [
            x for x in devices if plat_ok(x[2]) and (not dev_sub or dev_sub in x[2].name.lower())
        ]
    if not matches:
        avail = "; ".join(_describe(*x) for x in devices)
        raise LookupError(f"no OpenCL device matches {spec!r} (available: {avail})")
    gpus = [x for x in matches if _kind(x[2]) == "GPU"]
    return (gpus or matches)[0][2]


@dataclass(frozen=True)
class DeviceInfo:
    platform: str
    device: str
    kind: str
    compute_units: int
    local_mem: int
    global_mem: int

    @classmethod
    def of(cls, dev: cl.Device) -> DeviceInfo:
        return cls(
            platform=dev.platform.name.strip(),
            device=dev.name.strip(),
            kind=_kind(dev),
            compute_units=int(dev.max_compute_units),
            local_mem=int(dev.local_mem_size),
            global_mem=int(dev.global_mem_size),
        )


# ---------------------------------------------------------------------------------------------
# Jobs and buffers
# ---------------------------------------------------------------------------------------------


class Job:
    """One submitted batch. `out`, `sizes`, `kernel_ns` are set before `on_done` runs.

    kernel_ns is the kernel's run time from OpenCL profiling events; transfer_ns the time of
    the upload and download commands around it (both measured by the device).
    """

    __slots__ = (
        "_done",
        "_dst",
        "_fill",
        "caps",
        "done_ns",
        "error",
        "id",
        "kernel_ns",
        "lengths",
        "n",
        "on_done",
        "op",
        "out",
        "out_slot",
        "sizes",
        "src",
        "submit_ns",
        "transfer_ns",
    )

    def __init__(
        self,
        op: Op,
        src: U8,
        lengths: I32,
        caps: I32,
        out_slot: int,
        on_done: Callable[[Job], None] | None,
        dst: U8 | None,
        fill: int | None,
    ) -> None:
        self.id = next(_job_ids)
        self.op: Op = op
        self.n = int(src.shape[0])
        self.src: U8 | None = src
        self.lengths: I32 | None = lengths
        self.caps = caps
        self.out_slot = out_slot if dst is None else int(dst.shape[1])
        self.on_done = on_done
        self._dst = dst
        self._fill = fill
        self.out: U8 | None = None
        self.sizes: I32 | None = None
        self.kernel_ns = 0
        self.transfer_ns = 0
        self.error: BaseException | None = None
        self.submit_ns = time.perf_counter_ns()
        self.done_ns = 0
        self._done = threading.Event()

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> Job:
        """Block until the results are on the host; re-raises a failure of the batch."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"LZ4 OpenCL job {self.id} not done after {timeout} s")
        if self.error is not None:
            raise self.error
        return self

    def __repr__(self) -> str:
        state = "done" if self.done() else "pending"
        return f"<Job {self.id} {self.op} n={self.n} {state}>"


_job_ids = itertools.count(1)


class _Slot:
    """Buffers of one in-flight batch: pinned host staging and device buffers, one queue."""

    def __init__(self, ctx: cl.Context, dev: cl.Device, index: int) -> None:
        self.index = index
        self.ctx = ctx
        self.queue = cl.CommandQueue(
            ctx, dev, properties=cl.command_queue_properties.PROFILING_ENABLE
        )
        self._bufs: dict[str, tuple[int, cl.Buffer, Any]] = {}

    def pinned(self, name: str, nbytes: int) -> tuple[cl.Buffer, U8]:
        """A device buffer and a mapped pinned host array of at least nbytes (reused, grown)."""
        have = self._bufs.get(name)
        if have is None or have[0] < nbytes:
            if have is not None:
                self._release(name)
            size = 1 << max(12, (max(nbytes, 1) - 1).bit_length())
            dev_buf = cl.Buffer(self.ctx, cl.mem_flags.READ_WRITE, size)
            host_buf = cl.Buffer(
                self.ctx, cl.mem_flags.READ_WRITE | cl.mem_flags.ALLOC_HOST_PTR, size
            )
            flags = cast("cl.map_flags", cl.map_flags.READ | cl.map_flags.WRITE)
            arr, _ev = cl.enqueue_map_buffer(
                self.queue, host_buf, flags, 0, (size,), np.dtype(np.uint8), is_blocking=True
            )
            have = (size, dev_buf, (host_buf, arr))
            self._bufs[name] = have
        return have[1], have[2][1]

    def _release(self, name: str) -> None:
        _size, dev_buf, (host_buf, arr) = self._bufs.pop(name)
        try:
            arr.base.release(self.queue)
        except Exception:  # pragma: no cover - best effort on teardown
            log.debug("unmap failed", exc_info=True)
        self.queue.finish()
        dev_buf.release()
        host_buf.release()

    def close(self) -> None:
        self.queue.finish()
        for name in list(self._bufs):
            self._release(name)


_STOP = object()


# ---------------------------------------------------------------------------------------------
# The device
# ---------------------------------------------------------------------------------------------


class Lz4Device:
    """LZ4 block compression and decompression of page batches on one OpenCL device.

    device: a pyopencl Device, a `choose_device` spec, or None (ACOMP_OPENCL_DEVICE, else
    the first GPU, else any device). max_batch: most items per kernel launch (`compress` and
    `decompress` split larger inputs). page_size: the largest uncompressed item. Tuning:
    lanes (work-group size, a multiple of 32; default 64 on GPUs, 32 on CPUs), hash_log
    (2**hash_log entries in each of the two hash tables: 12 uses 16 KiB of local memory, 11
    saves 8 KiB for about 0.1% larger output), cap (bytes each lane compares per candidate
    before the parse chains on), slots (batches in flight, each with its own queue).
    """

    def __init__(
        self,
        device: cl.Device | str | None = None,
        *,
        max_batch: int = 65536,
        page_size: int = 4096,
        lanes: int | None = None,
        hash_log: int = 12,
        cap: int = 16,
        slots: int = 3,
    ) -> None:
        if isinstance(device, str) or device is None:
            device = choose_device(device)
        if page_size % _ALIGN or not 64 <= page_size <= 32768:
            raise ValueError(f"page_size must be a multiple of 16 in [64, 32768], not {page_size}")
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        if slots < 1:
            raise ValueError("slots must be >= 1")
        if not 7 <= hash_log <= 15 or not 4 <= cap <= 255:
            raise ValueError("hash_log must be in [7, 15] and cap in [4, 255]")
        self.device = device
        self.info = DeviceInfo.of(device)
        self.page_size = page_size
        self.max_batch = max_batch
        # 64 lanes (two warps) on GPUs: local memory, not lanes, bounds the work-groups per
        # compute unit, and the second warp hides latency in the parallel phases. On CPU
        # devices (PoCL) every lane is a loop iteration: 32 is a little faster there.
        self.lanes = lanes or (64 if self.info.kind == "GPU" else 32)
        if self.lanes % 32 or self.lanes > int(device.max_work_group_size):
            raise ValueError(f"lanes must be a multiple of 32 the device supports: {self.lanes}")
        self.hash_log = hash_log
        self.in_local = _round_up(lz4_bound(page_size))
        self.ctx = cl.Context([device])
        self.build_options = [
            f"-DPAGE={page_size}",
            f"-DLANES={self.lanes}",
            f"-DHASH_LOG={hash_log}",
            f"-DCAP={cap}",
            "-DSHORT=16",
            f"-DIN_LOCAL={self.in_local}",
            f"-DE_NOSPC={errno.ENOSPC}",
            f"-DE_INVAL={errno.EINVAL}",
            f"-DE_BADMSG={errno.EBADMSG}",
        ]
        if "1.0" not in device.opencl_c_version and "1.1" not in device.opencl_c_version:
            self.build_options.append("-cl-std=CL1.2")
        self.program = _build(self.ctx, KERNEL_SOURCE.read_text(), self.build_options)
        self._k_compress = cl.Kernel(self.program, "lz4_compress")
        self._k_decompress = cl.Kernel(self.program, "lz4_decompress")
        for k in (self._k_compress, self._k_decompress):
            wg = k.get_work_group_info(cl.kernel_work_group_info.WORK_GROUP_SIZE, device)
            if wg < self.lanes:
                raise RuntimeError(f"{k.function_name}: work-group size {wg} < {self.lanes}")
        self.local_mem = {
            k.function_name: int(
                k.get_work_group_info(cl.kernel_work_group_info.LOCAL_MEM_SIZE, device)
            )
            for k in (self._k_compress, self._k_decompress)
        }
        if max(self.local_mem.values()) > self.info.local_mem:
            raise ValueError(
                f"page_size {page_size} needs {max(self.local_mem.values())} bytes of local memory "
                f"per work-group, the device has {self.info.local_mem} (try a smaller hash_log)"
            )

        self._slots = [_Slot(self.ctx, device, i) for i in range(slots)]
        self._free: queue.Queue[_Slot] = queue.Queue()
        for s in self._slots:
            self._free.put(s)
        self._pending: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._inflight: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        # Staging copies (host arrays <-> pinned memory) of big batches are split over a few
        # threads: one thread's memcpy is slower than the PCIe link. numpy drops the GIL.
        ncopy = self._ncopy = max(1, min(4, (os.cpu_count() or 1) // 2))
        self._copy_pool = (
            concurrent.futures.ThreadPoolExecutor(ncopy, thread_name_prefix="lz4-opencl-copy")
            if ncopy > 1
            else None
        )
        self._closed = False
        self._dispatcher = threading.Thread(
            target=self._dispatch_loop, name="lz4-opencl-dispatch", daemon=True
        )
        self._completer = threading.Thread(
            target=self._complete_loop, name="lz4-opencl-complete", daemon=True
        )
        self._dispatcher.start()
        self._completer.start()

    # -- context manager --------------------------------------------------------------------

    def __enter__(self) -> Lz4Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Lz4Device {self.info.platform} / {self.info.device} page={self.page_size}>"

    # -- synchronous conveniences ------------------------------------------------------------

    def compress(
        self,
        src: U8,
        lengths: npt.ArrayLike | None = None,
        capacity: npt.ArrayLike | None = None,
        *,
        out_slot: int | None = None,
        fill: int | None = None,
    ) -> tuple[U8, I32]:
        """Compress every row of src (n, slot) into one LZ4 block each.

        lengths: input bytes per item (default the full slot); capacity: output bytes per
        item, an int or int32[n] (default the LZ4 bound of the slot). Returns (out (n,
        out_slot) uint8, sizes int32[n]), out_slot defaulting to the largest capacity:
        sizes[i] >= 0 is the block length in out[i, :sizes[i]], -ENOSPC when the block does
        not fit capacity, -EINVAL when lengths[i] is not in [1, slot]. Bytes of a row past
        sizes[i] are unspecified unless `fill` is given (see `decompress`).
        """
        src, lens = self._check_src(src, lengths, "compress")
        n = src.shape[0]
        caps = self._compress_caps(capacity, src.shape[1], n)
        width = int(caps.max()) if n else 0
        slot = width if out_slot is None else int(out_slot)
        if slot < width:
            raise ValueError(f"out_slot {slot} < capacity {width}")
        out = np.empty((n, slot), np.uint8)
        sizes = self._run("compress", src, lens, caps, out, fill)
        return out, sizes

    def decompress(
        self,
        src: U8,
        lengths: npt.ArrayLike,
        capacity: npt.ArrayLike,
        *,
        out_slot: int | None = None,
        fill: int | None = None,
    ) -> tuple[U8, I32]:
        """Decompress the LZ4 block in each row of src (n, slot); lengths: block bytes.

        capacity: output bytes allowed per item (int or int32[n]), at most the output slot
        (out_slot, default page_size) and at most page_size. Returns (out (n, out_slot)
        uint8, sizes int32[n]): sizes[i] >= 0 is the decoded length, -EBADMSG for a malformed
        block, -ENOSPC for a well-formed block that decodes to more than capacity, -EINVAL for
        a length outside [0, slot]. An item that fails writes nothing. Bytes of a row past
        sizes[i] are unspecified, unless `fill` is given: then the device buffer is filled
        with that byte first, so every byte the kernel did not write reads back as `fill`.
        """
        src, lens = self._check_src(src, lengths, "decompress")
        n = src.shape[0]
        slot = self.page_size if out_slot is None else int(out_slot)
        caps = self._check_caps(capacity, n, min(slot, self.page_size))
        out = np.empty((n, slot), np.uint8)
        sizes = self._run("decompress", src, lens, caps, out, fill)
        return out, sizes

    def _run(self, op: Op, src: U8, lens: I32, caps: I32, out: U8, fill: int | None) -> I32:
        """Submit src in batches of max_batch into rows of `out`; wait; return the sizes."""
        n = src.shape[0]
        sizes = np.empty(n, np.int32)
        jobs = []
        for a in range(0, max(n, 1), self.max_batch):
            b = min(n, a + self.max_batch)
            job = self._submit(
                op, src[a:b], lens[a:b], caps[a:b], out.shape[1], None, out[a:b], fill
            )
            jobs.append((a, b, job))
        for a, b, job in jobs:
            job.wait()
            assert job.sizes is not None
            sizes[a:b] = job.sizes
        return sizes

    # -- asynchronous submission -------------------------------------------------------------

    def submit(
        self,
        op: str,
        src: U8,
        lengths: npt.ArrayLike | None,
        capacity: npt.ArrayLike | None,
        on_done: Callable[[Job], None] | None,
        *,
        out: U8 | None = None,
        fill: int | None = None,
    ) -> Job:
        """Enqueue one batch of at most max_batch items and return at once.

        capacity: output bytes per item, an int or int32[n]. op 'compress': None means the
        LZ4 bound of the slot; job.out is (n, largest capacity). op 'decompress': None means
        page_size, each at most page_size; job.out is (n, page_size). `out`, when given,
        receives the results and becomes job.out: its rows are the output slots (>= every
        capacity). If the batch fails as a whole (an OpenCL error), job.error is set and every
        item's size is -EIO.

        on_done(job) runs on the device's completer thread (never an event-loop thread) once
        job.out, job.sizes and job.kernel_ns are on the host, or job.error is set; job.wait()
        blocks for the same moment. src and lengths are read later by the dispatcher thread:
        leave them unchanged until then. Safe to call from any thread.
        """
        if op not in ("compress", "decompress"):
            raise ValueError(f"op must be 'compress' or 'decompress', not {op!r}")
        src, lens = self._check_src(src, lengths, op)
        n = src.shape[0]
        if n > self.max_batch:
            raise ValueError(f"batch of {n} items > max_batch {self.max_batch}")
        if out is not None and (out.dtype != np.uint8 or out.ndim != 2 or out.shape[0] != n):
            raise ValueError(f"out must be a uint8 array of {n} rows")
        if op == "compress":
            caps = self._compress_caps(capacity, src.shape[1], n)
            slot = int(caps.max()) if n else 0
            if out is not None:
                if out.shape[1] < slot:
                    raise ValueError(f"out rows of {out.shape[1]} bytes < capacity {slot}")
                slot = out.shape[1]
        else:
            slot = self.page_size if out is None else out.shape[1]
            cap = self.page_size if capacity is None else capacity
            caps = self._check_caps(cap, n, min(slot, self.page_size))
        return self._submit(op, src, lens, caps, slot, on_done, out, fill)  # type: ignore[arg-type]

    def _submit(
        self,
        op: Op,
        src: U8,
        lens: I32,
        caps: I32,
        out_slot: int,
        on_done: Callable[[Job], None] | None,
        dst: U8 | None,
        fill: int | None,
    ) -> Job:
        job = Job(op, src, lens, caps, out_slot, on_done, dst, fill)
        with self._lock:
            if self._closed:
                raise RuntimeError("Lz4Device is closed")
            self._pending.put(job)
        return job

    def _check_src(self, src: U8, lengths: npt.ArrayLike | None, op: str) -> tuple[U8, I32]:
        src = np.asarray(src)
        if src.dtype != np.uint8 or src.ndim != 2:
            raise ValueError(f"src must be a 2-D uint8 array, not {src.dtype} {src.shape}")
        if not src.flags.c_contiguous:
            src = np.ascontiguousarray(src)
        n, slot = src.shape
        if op == "compress" and slot > self.page_size:
            raise ValueError(f"rows of {slot} bytes > page_size {self.page_size}")
        if slot > 65535:
            raise ValueError(f"rows of {slot} bytes: the limit is 65535")
        if lengths is None:
            lens = np.full(n, slot, np.int32)
        else:
            lens = np.asarray(lengths)
            if lens.shape != (n,):
                raise ValueError(f"lengths must have shape ({n},), not {lens.shape}")
            lens = np.clip(lens, -1, 1 << 30).astype(np.int32, copy=False)
        return src, lens

    @staticmethod
    def _compress_caps(capacity: npt.ArrayLike | None, slot: int, n: int) -> I32:
        if capacity is None:
            return np.full(n, lz4_bound(slot), np.int32)
        caps = np.broadcast_to(np.asarray(capacity, dtype=np.int64), (n,))
        if n and int(caps.min()) < 0:
            raise ValueError("capacity must be >= 0")
        return np.ascontiguousarray(np.minimum(caps, 1 << 30), dtype=np.int32)

    @staticmethod
    def _check_caps(capacity: npt.ArrayLike, n: int, most: int) -> I32:
        caps = np.broadcast_to(np.asarray(capacity, dtype=np.int64), (n,))
        if n and (int(caps.min()) < 0 or int(caps.max()) > most):
            raise ValueError(f"capacity must be in [0, {most}] (the output slot and page size)")
        return np.ascontiguousarray(caps, dtype=np.int32)

    # -- threads ------------------------------------------------------------------------------

    def _copy(self, dst: U8, src: U8) -> None:
        """dst[...] = src, by rows over the copy threads when the batch is large."""
        pool = self._copy_pool
        n = dst.shape[0]
        if pool is None or dst.nbytes < _PARALLEL_COPY or n < 2:
            np.copyto(dst, src)
            return
        step = -(-n // self._ncopy)
        futs = [
            pool.submit(np.copyto, dst[a : a + step], src[a : a + step]) for a in range(0, n, step)
        ]
        for f in futs:
            f.result()

    def _dispatch_loop(self) -> None:
        while True:
            job = self._pending.get()
            if job is _STOP:
                self._inflight.put(_STOP)
                return
            if job.n == 0:
                self._inflight.put((job, None, None))
                continue
            slot = self._free.get()
            try:
                events = self._enqueue(slot, job)
            except BaseException as e:  # report it through the job, keep serving
                job.error = e
                self._inflight.put((job, slot, None))
                continue
            self._inflight.put((job, slot, events))

    def _enqueue(self, slot: _Slot, job: Job) -> tuple[cl.Event, cl.Event, cl.Event, U8, I32]:
        """Stage the batch in the slot's pinned memory; enqueue upload, kernel, download."""
        n = job.n
        src, lengths = job.src, job.lengths
        assert src is not None
        assert lengths is not None
        in_slot = src.shape[1]
        in_pitch = _round_up(max(in_slot, 1))
        out_pitch = _round_up(max(job.out_slot, 1))
        q = slot.queue
        d_in, h_in = slot.pinned("in", n * in_pitch)
        d_out, h_out = slot.pinned("out", n * out_pitch)
        d_lens, h_lens = slot.pinned("lens", 4 * n)
        d_sizes, h_sizes = slot.pinned("sizes", 4 * n)

        view = h_in[: n * in_pitch].reshape(n, in_pitch)
        if in_pitch == in_slot:
            self._copy(view, src)
        else:
            self._copy(view[:, :in_slot], src)
        lens = h_lens[: 4 * n].view(np.int32)
        np.copyto(lens, lengths)
        low = 1 if job.op == "compress" else 0
        bad = (lengths < low) | (lengths > in_slot)
        if bad.any():
            lens[bad] = -1  # the kernel answers -EINVAL

        up = cl.enqueue_copy(q, d_in, h_in[: n * in_pitch], is_blocking=False)
        cl.enqueue_copy(q, d_lens, lens, is_blocking=False)
        if job._fill is not None:
            pattern = np.array([job._fill], np.uint8)
            cl.enqueue_fill_buffer(q, d_out, pattern, 0, n * out_pitch)
        assert job.caps is not None
        d_caps, h_caps = slot.pinned("caps", 4 * n)
        caps = h_caps[: 4 * n].view(np.int32)
        np.copyto(caps, job.caps)
        cl.enqueue_copy(q, d_caps, caps, is_blocking=False)
        k = self._k_compress if job.op == "compress" else self._k_decompress
        k.set_args(d_in, np.uint32(in_pitch), d_lens, d_caps, d_out, np.uint32(out_pitch), d_sizes)
        kev = cl.enqueue_nd_range_kernel(q, k, (n * self.lanes,), (self.lanes,))
        out_view = h_out[: n * out_pitch].reshape(n, out_pitch)
        sizes_view = h_sizes[: 4 * n].view(np.int32)
        cl.enqueue_copy(q, out_view, d_out, is_blocking=False)
        last = cl.enqueue_copy(q, sizes_view, d_sizes, is_blocking=False)
        q.flush()
        return up, kev, last, out_view, sizes_view

    def _complete_loop(self) -> None:
        while True:
            item = self._inflight.get()
            if item is _STOP:  # the dispatcher has stopped: nothing else uses the buffers
                if self._copy_pool is not None:
                    self._copy_pool.shutdown()
                for s in self._slots:
                    s.close()
                return
            job, slot, events = item
            try:
                if events is not None:
                    up, kev, last, out_view, sizes_view = events
                    last.wait()
                    job.kernel_ns = int(kev.profile.end - kev.profile.start)
                    job.transfer_ns = int(last.profile.end - up.profile.start) - job.kernel_ns
                    slot_w = job.out_slot
                    dst = job._dst
                    if dst is None:
                        dst = np.empty((job.n, slot_w), np.uint8)
                    self._copy(dst, out_view[:, :slot_w])
                    job.out = dst
                    job.sizes = sizes_view.copy()
                elif job.error is None:  # an empty batch
                    empty = np.empty((0, job.out_slot), np.uint8)
                    job.out = job._dst if job._dst is not None else empty
                    job.sizes = np.empty(0, np.int32)
                else:  # enqueueing failed: let whatever was enqueued finish first
                    slot.queue.finish()
            except BaseException as e:
                job.error = e
            finally:
                if slot is not None:
                    self._free.put(slot)
            if job.error is not None:
                job.sizes = np.full(job.n, -errno.EIO, np.int32)
                if job.out is None:
                    job.out = np.zeros((job.n, job.out_slot), np.uint8)
            job.src = job.lengths = None
            job.done_ns = time.perf_counter_ns()
            job._done.set()
            if job.on_done is not None:
                try:
                    job.on_done(job)
                except Exception:
                    log.exception("on_done of LZ4 OpenCL job %d failed", job.id)

    # -- teardown -----------------------------------------------------------------------------

    def close(self) -> None:
        """Finish the work submitted so far (every on_done runs), then stop the threads and
        release the buffers. Idempotent. Called from an on_done callback it does not wait."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._pending.put(_STOP)
        me = threading.current_thread()
        for t in (self._dispatcher, self._completer):
            if t is not me:
                t.join()


def _build(ctx: cl.Context, source: str, options: list[str]) -> cl.Program:
    with warnings.catch_warnings():
        # a non-empty build log is a warning in pyopencl; it is not an error here
        warnings.simplefilter("ignore")
        return cast("cl.Program", cl.Program(ctx, source).build(options=options))
