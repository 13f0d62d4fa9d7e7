"""LZ4 block compression on an OpenCL device: kernels, buffers and the submission pipeline.

The kernels (`kernels.cl`) give every page its own work-group: the compressor finds matches
for all positions of a window in parallel, every lane walks the greedy parse speculatively over
its segment of the page and one lane stitches the walks (or, with parse="serial", one lane walks
the whole parse); the decompressor parses a block's headers over segments in parallel too
(decode="serial": with one lane, which also decides every block the parallel parse does not
accept) and copies literals and matches with all lanes. See the comments in `kernels.cl`.
`kernels_sg.cl` ("subgroup", the default on GPUs) is a drop-in for them with another shape:
one 32-lane sub-group per page, several pages per work-group, no work-group barrier; the
lanes of a page cooperate through ballot, match-any, shuffle and scans (NVIDIA inline PTX,
cl_khr_subgroups, or a local-memory fallback that PoCL runs in CI). What the two share (the
format's constants, the launch's buffers, the helpers both call) is `lz4_common.cl`, which
both include; `kernel_source` gives the text a program is built from.

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
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
import pyopencl as cl

__all__ = (
    "ENV_DEVICE",
    "ENV_KERNELS",
    "KERNEL_SOURCE",
    "KERNEL_SOURCE_SG",
    "KERNEL_VARIANTS",
    "LEASE_LIMIT",
    "PINNED_LIMIT",
    "SG_IMPLS",
    "SLOTS",
    "STAGES",
    "WAIT_MODES",
    "DeviceInfo",
    "Job",
    "Lease",
    "Lz4Device",
    "PinnedPool",
    "bytes_lease_of",
    "choose_device",
    "kernel_source",
    "lease_of",
    "list_devices",
    "lz4_bound",
    "set_page_args",
)

log = logging.getLogger(__name__)

ENV_DEVICE = "ACOMP_OPENCL_DEVICE"
ENV_KERNELS = "ACOMP_OPENCL_KERNELS"
KERNEL_SOURCE = Path(__file__).with_name("kernels.cl")
KERNEL_SOURCE_SG = Path(__file__).with_name("kernels_sg.cl")
#: What both programs include (`#include "lz4_common.cl"`; see `kernel_source`).
COMMON_SOURCE = Path(__file__).with_name("lz4_common.cl")
KERNEL_VARIANTS = ("subgroup", "classic")
SG_IMPLS = ("ptx", "khr", "local")
#: The host path's own kernels: compaction of compress results (scan + gather).
COMPACT_SOURCE = Path(__file__).with_name("compact.cl")
_SCAN_LANES = 64
_GATHER_LANES = 32

Op = Literal["compress", "decompress"]
U8 = npt.NDArray[np.uint8]
I32 = npt.NDArray[np.int32]

#: Default bound on a device's staging memory (device buffers + pinned host buffers, all
#: slots): 192 MiB, launches of up to ~3,000 4 KiB pages on 4 slots.
PINNED_LIMIT = 192 << 20
#: Default launches in flight (slots, each with its own queue): upload, kernel and download
#: of consecutive launches overlap, with one more in flight to absorb the host's gaps (its
#: staging copy, the completer's wake-up, the packed form's second download).
SLOTS = 4
#: Default bound on zero-copy memory lent out (batch buffers and leased results together).
LEASE_LIMIT = 1 << 30
_PARALLEL_COPY = 8 << 20  # staging copies from this size on use the copy threads
_ALIGN = 16  # row pitch of every device buffer (the kernels load and store 32-bit words)


_INCLUDE = re.compile(r'^#include "([\w.-]+)"[ \t]*$', re.M)


def kernel_source(path: Path) -> str:
    """The text a program is built from: the kernel file at `path` with each of its
    `#include "name"` lines replaced by the text of that file of the same folder (one level:
    `lz4_common.cl`), framed by #line directives so that the compiler's messages name the
    file and line they come from. One self-contained string, not an include path: every
    cache keyed on the program text (pyopencl's, PoCL's, the NVIDIA driver's, which does not
    look into included files) changes when the common file does, and the build needs no -I
    option pointing into the installed package."""
    text = path.read_text()
    parts: list[str] = []
    pos = 0
    for m in _INCLUDE.finditer(text):
        inc = path.with_name(m.group(1)).read_text()
        line = text.count("\n", 0, m.start()) + 1  # the #include line's number
        parts += [text[pos : m.start()], f'#line 1 "{m.group(1)}"\n', inc.rstrip("\n"),
                  f'\n#line {line + 1} "{path.name}"']
        pos = m.end()
    parts.append(text[pos:])
    return "".join(parts)


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


STAGES = ("stage_in", "enqueue", "upload", "kernel", "download", "wait", "copy_out", "wall")
"""Keys of Job.stages (ns, summed over a job's launches): stage_in, the host copy of inputs
into pinned memory; enqueue, Python time spent enqueueing commands; upload, kernel, download,
device time from profiling events; wait, the time the completer blocked on the last event;
copy_out, the host copy of results out of pinned memory; wall, submit to done."""


class Job:
    """One submitted batch. `out`, `sizes`, `kernel_ns` are set before `on_done` runs.

    kernel_ns is the kernel's run time from OpenCL profiling events; transfer_ns the time of
    the upload and download commands around it (both measured by the device). A batch of
    more than max_batch items runs as several launches that flow through the slots
    pipelined; the times add up over them, and `stages` breaks them down (see STAGES).
    """

    __slots__ = (
        "_at",
        "_done",
        "_dst",
        "_fill",
        "_left",
        "_sizes",
        "caps",
        "done_ns",
        "downloaded",
        "error",
        "id",
        "kernel_ns",
        "launches",
        "lease",
        "lengths",
        "n",
        "offsets",
        "on_done",
        "op",
        "out",
        "out_slot",
        "overlapped",
        "packed",
        "packed_in",
        "sizes",
        "src",
        "stages",
        "step",
        "submit_ns",
        "transfer_ns",
        "uploaded",
        "zc",
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
        launch: int,
    ) -> None:
        self.id = next(_job_ids)
        self.op: Op = op
        self.n = n = int(src.shape[0])
        self.src: U8 | None = src
        self.lengths: I32 | None = lengths
        self.caps: I32 | None = caps
        self.out_slot = out_slot if dst is None else int(dst.shape[1])
        self.on_done = on_done
        # The result arrays are made here, on the submitting thread: np.empty maps pages
        # lazily, so the copy threads fault them in in parallel (no zero fill, no
        # concatenation: every launch writes its rows in place).
        self._dst: U8 = dst if dst is not None else np.empty((n, self.out_slot), np.uint8)
        self._sizes: I32 = np.empty(n, np.int32)
        self._fill = fill
        self.step = launch  # items per launch
        self.zc: tuple[_Owner, int] | None = None  # the input's zero-copy buffer, first row
        self.lease: Lease | None = None  # the output's pinned buffer, lent with job.out
        self.packed: U8 | None = None  # compaction: every block back to back (job.offsets)
        self.offsets: npt.NDArray[np.int64] | None = None
        self.downloaded = 0  # bytes the device-to-host copies carried
        self.overlapped = 0  # launches that started on the device before the previous ended
        self.uploaded = 0  # bytes the host-to-device copies carried
        # decompress from packed blocks: (packed bytes, each block's offset in them)
        self.packed_in: tuple[U8, npt.NDArray[np.int64]] | None = None
        self._at = 0
        self.launches = max(1, -(-n // launch))
        self._left = self.launches
        self.out: U8 | None = None
        self.sizes: I32 | None = None
        self.kernel_ns = 0
        self.transfer_ns = 0
        self.stages = dict.fromkeys(STAGES, 0)
        self.error: BaseException | None = None
        self.submit_ns = time.perf_counter_ns()
        self.done_ns = 0
        self._done = threading.Event()

    def done(self) -> bool:
        return self._done.is_set()

    def results(self) -> tuple[U8, I32]:
        """`wait`, then (out, sizes)."""
        self.wait()
        assert self.out is not None
        assert self.sizes is not None
        return self.out, self.sizes

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


def _alloc_size(nbytes: int) -> int:
    """Staging buffer sizes: powers of two up to 8 MiB, then multiples of 8 MiB (a launch of
    8192 pages needs ~34 MiB; a power of two would pin 64)."""
    nbytes = max(nbytes, 1)
    if nbytes <= 8 << 20:
        return 1 << max(16, (nbytes - 1).bit_length())
    return _round_up(nbytes, 8 << 20)


class _Slot:
    """Buffers of one in-flight launch: pinned host staging and device buffers, one queue, its
    own kernel objects (set_args + enqueue on a shared cl.Kernel would race between threads)."""

    def __init__(self, ctx: cl.Context, dev: cl.Device, index: int, program: cl.Program) -> None:
        self.index = index
        self.ctx = ctx
        self.queue = cl.CommandQueue(
            ctx, dev, properties=cl.command_queue_properties.PROFILING_ENABLE
        )
        self.kernels = {
            "compress": cl.Kernel(program, "lz4_compress"),
            "decompress": cl.Kernel(program, "lz4_decompress"),
        }
        self._bufs: dict[str, tuple[int, cl.Buffer, Any]] = {}
        self._dev: dict[str, tuple[int, cl.Buffer]] = {}
        self.compact: dict[str, cl.Kernel] = {}

    def pinned_bytes(self) -> int:
        """Bytes this slot holds: each staging buffer twice (the device buffer and the mapped
        host one), each device-only buffer (compaction's) once."""
        return sum(2 * b[0] for b in list(self._bufs.values())) + sum(
            b[0] for b in list(self._dev.values()))

    def device_buf(self, name: str, nbytes: int) -> cl.Buffer:
        """A device-only buffer of at least nbytes (reused, grown: no host copy)."""
        have = self._dev.get(name)
        if have is None or have[0] < nbytes:
            if have is not None:
                self.queue.finish()
                self._dev.pop(name)[1].release()
            size = _round_up(max(nbytes, 1), 1 << 16)
            have = self._dev[name] = (size, cl.Buffer(self.ctx, cl.mem_flags.READ_WRITE, size))
        return have[1]

    def ensure(self, needs: dict[str, int], share: int) -> list[tuple[cl.Buffer, U8]]:
        """A device buffer and a mapped pinned host array of at least needs[name] bytes for each
        name, reused while big enough. Grown buffers are rounded up (`_alloc_size`) unless that
        would take the slot past `share` bytes (device and host copies together): then every
        buffer of the slot is sized to this launch's need (64 KiB multiples), shrinking one
        that an earlier launch of another shape left large."""
        have = {name: (self._bufs[name][0] if name in self._bufs else 0) for name in needs}
        if any(have[k] < n for k, n in needs.items()):
            others = sum(b[0] for k, b in self._bufs.items() if k not in needs)
            target = {k: h if h >= needs[k] else _alloc_size(needs[k]) for k, h in have.items()}
            if 2 * (sum(target.values()) + others) > share:
                target = {k: _round_up(max(n, 1), 1 << 16) for k, n in needs.items()}
            for k, size in target.items():
                if have[k] != size:
                    self.pinned(k, size, exact=True)
        return [self.pinned(k, n) for k, n in needs.items()]

    def trim(self, keep: int) -> int:
        """Release every buffer larger than `keep` bytes; the bytes returned (both copies)."""
        freed = 0
        for name, b in list(self._bufs.items()):
            if b[0] > keep:
                freed += 2 * b[0]
                self._release(name)
        for name, d in list(self._dev.items()):
            if d[0] > keep:
                self.queue.finish()
                freed += d[0]
                self._dev.pop(name)[1].release()
        return freed

    def pinned(self, name: str, nbytes: int, *, exact: bool = False) -> tuple[cl.Buffer, U8]:
        """A device buffer and a mapped pinned host array of at least nbytes (reused, grown;
        `exact`: of exactly nbytes, replacing one of another size)."""
        have = self._bufs.get(name)
        if have is None or have[0] < nbytes or (exact and have[0] != nbytes):
            if have is not None:
                self._release(name)
            size = nbytes if exact else _alloc_size(nbytes)
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
        for name in list(self._dev):
            self._dev.pop(name)[1].release()


# ---------------------------------------------------------------------------------------------
# Zero-copy buffers: pinned host memory lent to bulk users as numpy views
# ---------------------------------------------------------------------------------------------


class Lease:
    """A pinned, mapped host buffer (ALLOC_HOST_PTR) lent out by a `PinnedPool`.

    The numpy views made by `view` all have one owner object as their base; the lease goes
    back to the pool when that owner is collected (the last view died) or at `release()`,
    whichever comes first. After release() the memory may be lent again: views still held
    then read whatever the next user writes.
    """

    __slots__ = ("__weakref__", "_returned", "_views", "addr", "arr", "host_buf", "pool", "size")

    def __init__(self, pool: PinnedPool, host_buf: cl.Buffer, arr: U8, size: int) -> None:
        self.pool = pool
        self.host_buf = host_buf
        self.arr = arr
        self.size = size
        self.addr = int(arr.__array_interface__["data"][0])
        self._returned = True
        self._views: weakref.WeakSet[_Owner] = weakref.WeakSet()

    @property
    def returned(self) -> bool:
        return self._returned

    def release(self) -> None:
        """Give the buffer back to its pool (idempotent)."""
        self.pool._give_back(self)

    def view(self, shape: tuple[int, int], pitch: int, offset: int = 0) -> U8:
        """A (rows, width) uint8 view with rows `pitch` bytes apart; its base is an owner whose
        collection returns the lease."""
        rows, width = shape
        if offset + max(rows - 1, 0) * pitch + (width if rows else 0) > self.size:
            raise ValueError("view past the end of the lease")
        return self._own(_Owner(self, self.addr + offset, shape, (pitch, 1), pitch))

    def bytes_view(self, nbytes: int) -> U8:
        """A 1-D uint8 view of the first nbytes (packed results), owned as `view`'s."""
        if not 0 <= nbytes <= self.size:
            raise ValueError("view past the end of the lease")
        return self._own(_Owner(self, self.addr, (nbytes,), (1,), 0))

    def _own(self, owner: _Owner) -> U8:
        self._views.add(owner)
        weakref.finalize(owner, self.release)
        return cast("U8", np.asarray(owner))


class _Owner:
    """The base object of a lease's numpy views (numpy keeps it alive as long as any view)."""

    def __init__(self, lease: Lease, addr: int, shape: tuple[int, ...],
                 strides: tuple[int, ...], pitch: int) -> None:
        self.lease = lease
        self.pitch = pitch
        self.addr = addr
        self.__array_interface__ = {
            "version": 3, "typestr": "|u1", "data": (addr, False), "shape": shape,
            "strides": strides,
        }

    def rows(self, src: U8) -> int | None:
        """The row index in this lease at which the view `src` starts, if src is whole rows of
        it (same pitch, unit byte stride); else None."""
        if not self.pitch or src.ndim != 2 or src.strides[1] != 1 or (src.shape[0] > 1 and
                                                    src.strides[0] != self.pitch):
            return None
        off = int(src.__array_interface__["data"][0]) - self.addr
        if off < 0 or off % self.pitch or src.shape[1] > self.pitch:
            return None
        return off // self.pitch


def _owner_of(arr: Any) -> _Owner | None:
    base = getattr(arr, "base", None)
    while isinstance(base, np.ndarray):  # a view of a view: numpy stops at the first array
        base = base.base
    if isinstance(base, _Owner) and not base.lease.returned:
        return base
    return None


def lease_of(arr: Any) -> tuple[_Owner, int] | None:
    """(owner, first row) when `arr` is rows of a zero-copy buffer, else None."""
    base = _owner_of(arr)
    if base is not None:
        row = base.rows(arr)
        if row is not None:
            return base, row
    return None


def bytes_lease_of(arr: Any) -> tuple[_Owner, int] | None:
    """(owner, byte offset in its lease) when `arr` is a contiguous 1-D uint8 view of pinned
    memory lent by a pool (a leased packed result), else None."""
    base = _owner_of(arr)
    if (base is None or not isinstance(arr, np.ndarray) or arr.ndim != 1
            or arr.dtype != np.uint8 or (arr.shape[0] > 1 and arr.strides[0] != 1)):
        return None
    off = int(arr.__array_interface__["data"][0]) - base.lease.addr
    if off < 0 or off + arr.shape[0] > base.lease.size:
        return None
    return base, off


class PinnedPool:
    """Pinned host buffers for zero-copy inputs and leased results, at most `limit` bytes
    (lent and cached together). take() never blocks: past the bound it answers None (results
    are then copied into ordinary arrays; `Lz4Device.batch_buffer` raises MemoryError).
    Returned buffers are kept for reuse until `trim` (the device's idle release)."""

    def __init__(self, ctx: cl.Context, queue: cl.CommandQueue, limit: int) -> None:
        self.ctx, self.queue, self.limit = ctx, queue, limit
        self._lock = threading.Lock()
        self._cached: list[Lease] = []
        self.lent = 0  # bytes lent out now
        self.leases = 0  # how many are lent out
        self.refused = 0  # takes answered None (the bound)
        self._closed = False

    @property
    def cached(self) -> int:
        return sum(x.size for x in self._cached)

    def take(self, nbytes: int) -> Lease | None:
        nbytes = _round_up(max(nbytes, 1), 1 << 16)
        with self._lock:
            if self._closed:
                return None
            for i, x in enumerate(self._cached):
                if nbytes <= x.size <= 2 * nbytes:
                    lease = self._cached.pop(i)
                    break
            else:
                while self._cached and self.lent + self.cached + nbytes > self.limit:
                    self._free(self._cached.pop())
                if self.lent + nbytes > self.limit:
                    self.refused += 1
                    return None
                lease = None
            self.lent += nbytes if lease is None else lease.size
            self.leases += 1
        if lease is None:
            try:
                host_buf = cl.Buffer(self.ctx, cl.mem_flags.READ_WRITE
                                     | cl.mem_flags.ALLOC_HOST_PTR, nbytes)
                flags = cast("cl.map_flags", cl.map_flags.READ | cl.map_flags.WRITE)
                arr, _ev = cl.enqueue_map_buffer(self.queue, host_buf, flags, 0, (nbytes,),
                                                 np.dtype(np.uint8), is_blocking=True)
            except BaseException:
                with self._lock:
                    self.lent -= nbytes
                    self.leases -= 1
                raise
            lease = Lease(self, host_buf, arr, nbytes)
        lease._returned = False
        return lease

    def _give_back(self, lease: Lease) -> None:
        with self._lock:
            if lease._returned:
                return
            lease._returned = True
            self.lent -= lease.size
            self.leases -= 1
            if not self._closed:
                self._cached.append(lease)
                return
        if not len(lease._views):
            self._free(lease)

    def _free(self, lease: Lease) -> None:
        try:
            cast("Any", lease.arr.base).release(self.queue)
        except Exception:  # pragma: no cover - best effort on teardown
            log.debug("unmap failed", exc_info=True)
        lease.host_buf.release()

    def trim(self) -> None:
        """Release the cached (returned) buffers, but never one a view still maps (a result
        released explicitly while its caller kept a view: that view reads stale bytes, it
        never faults)."""
        with self._lock:
            cached = [x for x in self._cached if not len(x._views)]
            self._cached = [x for x in self._cached if len(x._views)]
        for x in cached:
            self._free(x)

    def close(self) -> None:
        """Release the cached buffers; those still lent are released as they come back."""
        with self._lock:
            self._closed = True
        self.trim()


@dataclass
class _Launch:
    """The commands of one launch and the pinned views its results land in."""

    up: cl.Event
    kernel: cl.Event
    down: cl.Event
    sizes: I32
    rows: U8
    packed: cl.Buffer | None = None  # compaction: the packed blocks, downloaded in _collect
    queue: cl.CommandQueue | None = None


WaitMode = Literal["block", "poll", "callback"]
WAIT_MODES: tuple[WaitMode, ...] = ("block", "poll", "callback")
"""How `Lz4Device.run_sync` waits for a launch: "block" (clWaitForEvents, the GIL released),
"poll" (spin on the event's execution status, holding a core) or "callback" (an event
completion callback wakes the waiting thread: one more thread hand-off, in the driver)."""


def _wait_event(ev: cl.Event, mode: WaitMode) -> None:
    if mode == "block":
        ev.wait()
    elif mode == "poll":
        complete = int(cl.command_execution_status.COMPLETE)
        while (status := int(ev.command_execution_status)) > complete:
            pass
        if status < 0:
            ev.wait()  # raises the command's error
    else:
        fired = threading.Event()
        ev.set_callback(cl.command_execution_status.COMPLETE, lambda _status: fired.set())
        fired.wait()
        ev.wait()  # returns at once; raises a failed command's error


_STOP = object()
# A job of at most this many items is enqueued on the submitting thread when a slot is free
# (one thread hop less for single requests); bigger ones go through the dispatcher thread,
# whose staging copies must not hold up the submitter.
_DIRECT_MAX = 256


# ---------------------------------------------------------------------------------------------
# The device
# ---------------------------------------------------------------------------------------------


class Lz4Device:
    """LZ4 block compression and decompression of page batches on one OpenCL device.

    device: a pyopencl Device, a `choose_device` spec, or None (ACOMP_OPENCL_DEVICE, else
    the first GPU, else any device). max_batch: most items per kernel launch; bigger batches
    are split into launches of max_batch items that flow through the slots pipelined (the
    host staging copy of one, the kernel of the next and the download of a third overlap).
    page_size: the largest uncompressed item. Tuning: lanes (work-group size, a multiple of
    32; default 64 on GPUs, 32 on CPUs), hash_log (2**hash_log entries in each of the two
    hash tables: 12 uses 16 KiB of local memory, 11 saves 8 KiB for about 0.1% larger
    output), cap (bytes each lane compares per candidate before the parse chains on), slots
    (launches in flight, each with its own queue: `SLOTS`, 4; `pipeline_stats` counts how
    many were in flight at once and how many overlapped on the device). With hash_log and
    cap left as None the largest setting that fits the device's local memory is chosen (cap
    16 for pages up to 4 KiB, 11 above, so the match cells stay 16 bits; hash_log from 12,
    11 on GPUs, down to 9). parse: how the compressor walks the greedy parse, "parallel"
    (every lane walks its segment of the page speculatively, one lane stitches the walks)
    or "serial" (one lane walks the whole page); both give the same blocks. decode: how the
    decompressor parses a block's sequence headers, "parallel" (segments of the block,
    falling back to the serial parse for anything but a well-formed block that fits) or
    "serial" (one lane). Both default to "parallel" on GPUs and "serial" on CPU devices.

    Memory: pinned_limit bounds the staging memory of all slots together (each launch's input
    and output, as a device buffer and a pinned, mapped host buffer): a launch holds at most
    pinned_limit / slots bytes, so a batch of wide rows runs as more, smaller launches than
    max_batch alone would give. Once no launch has finished for idle_release_s seconds, every
    buffer above keep_pinned bytes is released (what single pages and small batches use
    stays), so an idle device holds at most 4 x keep_pinned a slot. pinned_bytes() is what is
    held now.

    kernels: "subgroup" (`kernels_sg.cl`: one 32-lane sub-group per page, no work-group
    barrier; parse and decode do not apply) or "classic" (`kernels.cl`: one work-group per
    page); default the environment variable ACOMP_OPENCL_KERNELS, else "subgroup" on GPUs and
    "classic" on CPU devices. For "subgroup", lanes is the work-group size, 32 lanes per
    page (pages_per_group = lanes // 32; default 2 pages on GPUs, 1 elsewhere), and sg_impl
    picks the sub-group operations: "ptx" (NVIDIA inline PTX), "khr" (cl_khr_subgroups with
    _ballot and _shuffle, sub-groups of 32), "local" (a local-memory fallback, one page per
    work-group); "auto" takes the first the device offers and falls back to "local" when a
    build fails.
    """

    def __init__(
        self,
        device: cl.Device | str | None = None,
        *,
        max_batch: int = 8192,
        page_size: int = 4096,
        lanes: int | None = None,
        hash_log: int | None = None,
        cap: int | None = None,
        slots: int = SLOTS,
        parse: Literal["parallel", "serial"] | None = None,
        decode: Literal["parallel", "serial"] | None = None,
        pinned_limit: int = PINNED_LIMIT,
        keep_pinned: int = 1 << 20,
        idle_release_s: float = 1.0,
        lease_limit: int = LEASE_LIMIT,
        kernels: Literal["subgroup", "classic"] | None = None,
        sg_impl: Literal["auto", "ptx", "khr", "local"] = "auto",
    ) -> None:
        if isinstance(device, str) or device is None:
            device = choose_device(device)
        if page_size % _ALIGN or not 64 <= page_size <= 32768:
            raise ValueError(f"page_size must be a multiple of 16 in [64, 32768], not {page_size}")
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        if parse not in ("parallel", "serial", None):
            raise ValueError(f"parse must be 'parallel' or 'serial', not {parse!r}")
        if decode not in ("parallel", "serial", None):
            raise ValueError(f"decode must be 'parallel' or 'serial', not {decode!r}")
        # Default: parallel on GPUs (1.26x / 1.53x the serial kernels on an H100), serial on
        # CPU devices, where lanes run one after another and the parallel parses' extra work
        # only costs (PoCL: 0.70 vs 0.47 GB/s decompress).
        is_gpu = bool(device.type & cl.device_type.GPU)
        self.parse: str = parse or ("parallel" if is_gpu else "serial")
        self.decode: str = decode or ("parallel" if is_gpu else "serial")
        kernels = kernels or cast("Any", os.environ.get(ENV_KERNELS, "").strip() or None)
        if kernels not in (*KERNEL_VARIANTS, None):
            raise ValueError(f"kernels must be 'subgroup' or 'classic', not {kernels!r}")
        if sg_impl not in ("auto", *SG_IMPLS):
            raise ValueError(f"sg_impl must be 'auto', 'ptx', 'khr' or 'local', not {sg_impl!r}")
        # Default: the sub-group kernels on GPUs; on CPU devices the classic serial ones,
        # which PoCL runs faster (its lanes are loop iterations: the sub-group fallback's
        # exchanges through local memory only cost there). Tests run both on PoCL.
        self.kernels: str = kernels or ("subgroup" if is_gpu else "classic")
        if slots < 1:
            raise ValueError("slots must be >= 1")
        if (hash_log is not None and not 7 <= hash_log <= 15) or (
            cap is not None and not 4 <= cap <= 255
        ):
            raise ValueError("hash_log must be in [7, 15] and cap in [4, 255]")
        self.device = device
        self.info = DeviceInfo.of(device)
        self.page_size = page_size
        self.max_batch = max_batch
        # The bound on staging memory: every slot's device and pinned host buffers together.
        row = _round_up(lz4_bound(page_size))
        if pinned_limit < slots * (4 * (1 << 16) + 2 * (12 + 2 * row)):
            raise ValueError(f"pinned_limit {pinned_limit} does not hold one page per slot")
        if keep_pinned < 0 or idle_release_s <= 0:
            raise ValueError("keep_pinned must be >= 0 and idle_release_s > 0")
        self.pinned_limit = pinned_limit
        self.keep_pinned = keep_pinned
        self.idle_release_s = idle_release_s
        self.ctx = cl.Context([device])
        self.in_local = _round_up(lz4_bound(page_size))
        self.pages_per_group = 1
        self.sg_impl: str | None = None
        if self.kernels == "subgroup":
            self._build_subgroup(lanes, hash_log, cap, sg_impl)
        else:
            self._build_classic(lanes, hash_log, cap)

        self._slots = [_Slot(self.ctx, device, i, self.program) for i in range(slots)]
        self.slots = slots
        # The pipeline's counters (pipeline_stats): launches enqueued and not yet collected,
        # the most at once, and launches whose first command started on the device before
        # an earlier launch's last command ended (profiling timestamps, the device's clock).
        self._stats_lock = threading.Lock()
        self._depth = self._most = self._launched = self._overlapped = 0
        self._last_end = 0
        self._pool = PinnedPool(self.ctx, cl.CommandQueue(self.ctx, device), lease_limit)
        compact = _build(self.ctx, COMPACT_SOURCE, [f"-DSCAN_LANES={_SCAN_LANES}"])
        for s in self._slots:
            s.compact = {"scan": cl.Kernel(compact, "lz4_scan_sizes"),
                         "gather": cl.Kernel(compact, "lz4_gather"),
                         "scatter": cl.Kernel(compact, "lz4_scatter")}
        self._free: queue.Queue[_Slot] = queue.Queue()
        for s in self._slots:
            self._free.put(s)
        self._pending: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._inflight: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        # Staging copies (host arrays <-> pinned memory) of big launches are split over a few
        # threads: one Python thread's memcpy (5-10 GB/s) is far slower than the link (55
        # GB/s pinned). numpy drops the GIL while copying. The copy in (dispatcher) and the
        # copy out (completer) run at the same time, so the pool has room for both.
        ncopy = self._ncopy = max(1, min(8, (os.cpu_count() or 1) // 2))
        self._copy_pool = (
            concurrent.futures.ThreadPoolExecutor(2 * ncopy, thread_name_prefix="lz4-opencl-copy")
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

    def _build_classic(self, lanes: int | None, hash_log: int | None, cap: int | None) -> None:
        device, page_size = self.device, self.page_size
        # 64 lanes (two warps) on GPUs: local memory, not lanes, bounds the work-groups per
        # compute unit, and the second warp hides latency in the parallel phases. On CPU
        # devices (PoCL) every lane is a loop iteration: 32 is a little faster there.
        self.lanes = lanes or (64 if self.info.kind == "GPU" else 32)
        if self.lanes % 32 or self.lanes > int(device.max_work_group_size):
            raise ValueError(f"lanes must be a multiple of 32 the device supports: {self.lanes}")
        caps_try = [cap] if cap is not None else [16 if page_size <= 4096 else 11]
        # On GPUs the hash tables start at 2**11 entries: the compressor's local memory drops
        # from ~32 to ~24 KiB per work-group, so an H100 SM (228 KiB) keeps 9 pages in flight
        # instead of 7. The kernel is bound by the latency of lane 0's serial parse, so that
        # is up to ~28% more throughput, for ~0.1% larger output on the bench corpus.
        first_log = 11 if self.info.kind == "GPU" else 12
        logs_try = [hash_log] if hash_log is not None else list(range(first_log, 8, -1))
        need = 0
        for c, hl in itertools.product(caps_try, logs_try):
            self.hash_log, self.cap = hl, c
            self.build_options = self._options(hl, c)
            self.program = _build(self.ctx, KERNEL_SOURCE, self.build_options)
            kernels = [cl.Kernel(self.program, nm) for nm in ("lz4_compress", "lz4_decompress")]
            self.local_mem = {
                k.function_name: int(
                    k.get_work_group_info(cl.kernel_work_group_info.LOCAL_MEM_SIZE, device)
                )
                for k in kernels
            }
            need = max(self.local_mem.values())
            if need <= self.info.local_mem:
                break
        else:
            raise ValueError(
                f"page_size {page_size} needs {need} bytes of local memory per work-group, "
                f"the device has {self.info.local_mem} (try a smaller hash_log)"
            )
        for k in kernels:
            wg = k.get_work_group_info(cl.kernel_work_group_info.WORK_GROUP_SIZE, device)
            if wg < self.lanes:
                raise RuntimeError(f"{k.function_name}: work-group size {wg} < {self.lanes}")

    def _build_subgroup(
        self, lanes: int | None, hash_log: int | None, cap: int | None, sg_impl: str
    ) -> None:
        """Build kernels_sg.cl: choose the sub-group operations, pages per work-group and
        the largest hash table that fits (<= 2**11 entries: ~18 KiB of local memory per
        page, so an H100 SM holds 12 pages; 2**12 takes ~21 KiB)."""
        device, page_size = self.device, self.page_size
        ext = set(device.extensions.split())
        if sg_impl == "auto":
            impls = []
            if "nvidia" in device.platform.vendor.lower() or "nvidia" in device.vendor.lower():
                impls.append("ptx")
            if {"cl_khr_subgroups", "cl_khr_subgroup_ballot", "cl_khr_subgroup_shuffle"} <= ext:
                impls.append("khr")
            impls.append("local")
        else:
            impls = [sg_impl]
        if lanes is not None and (lanes % 32 or lanes < 32):
            raise ValueError(f"lanes must be a multiple of 32 (32 per page): {lanes}")
        caps_try = [cap] if cap is not None else [16 if page_size <= 4096 else 11]
        logs_try = [hash_log] if hash_log is not None else list(range(11, 8, -1))
        self.sg_build_errors: list[str] = []
        need = 0
        for impl in impls:
            if impl == "local":
                if lanes not in (None, 32) and sg_impl == "local":
                    raise ValueError("sg_impl 'local' runs one page per work-group: lanes 32")
                ppgs = [1]
            elif lanes is not None:
                ppgs = [lanes // 32]
            else:  # 2 pages per work-group on GPUs, 1 where two do not fit
                ppgs = [2, 1] if self.info.kind == "GPU" else [1]
            for ppg, c, hl in itertools.product(ppgs, caps_try, logs_try):
                if ppg * 32 > int(device.max_work_group_size):
                    continue
                self.hash_log, self.cap = hl, c
                self.lanes, self.pages_per_group, self.sg_impl = 32 * ppg, ppg, impl
                self.build_options = self._sg_options(impl, ppg, hl, c)
                try:
                    self.program = _build(self.ctx, KERNEL_SOURCE_SG, self.build_options)
                    kernels = [
                        cl.Kernel(self.program, nm) for nm in ("lz4_compress", "lz4_decompress")
                    ]
                    if impl == "khr":
                        for k in kernels:
                            sgs = k.get_sub_group_info(
                                device,
                                cl.kernel_sub_group_info.MAX_SUB_GROUP_SIZE_FOR_NDRANGE,
                                (self.lanes,),
                            )
                            if int(cast("Any", sgs)) != 32:
                                raise RuntimeError(f"sub-groups of {sgs} lanes, not 32")
                except (cl.Error, RuntimeError) as e:
                    if impl == impls[-1]:
                        raise
                    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                    self.sg_build_errors.append(f"{impl}: {first}")
                    log.warning("lz4-opencl: sub-group build %r failed (%s); trying the next",
                                impl, first)
                    break  # the next implementation
                self.local_mem = {
                    k.function_name: int(
                        k.get_work_group_info(cl.kernel_work_group_info.LOCAL_MEM_SIZE, device)
                    )
                    for k in kernels
                }
                need = max(self.local_mem.values())
                wg = min(
                    int(k.get_work_group_info(cl.kernel_work_group_info.WORK_GROUP_SIZE, device))
                    for k in kernels
                )
                if need <= self.info.local_mem and wg >= self.lanes:
                    return
        raise ValueError(
            f"page_size {page_size} needs {need} bytes of local memory per work-group, "
            f"the device has {self.info.local_mem} (try a smaller hash_log)"
        )

    def _sg_options(self, impl: str, ppg: int, hash_log: int, cap: int) -> list[str]:
        opts = [
            f"-DPAGE={self.page_size}",
            f"-DPPG={ppg}",
            f"-DSG_IMPL={SG_IMPLS[::-1].index(impl)}",  # local 0, khr 1, ptx 2
            f"-DHASH_LOG={hash_log}",
            f"-DCAP={cap}",
            "-DSHORT=16",
            f"-DIN_LOCAL={self.in_local}",
            f"-DE_NOSPC={errno.ENOSPC}",
            f"-DE_INVAL={errno.EINVAL}",
            f"-DE_BADMSG={errno.EBADMSG}",
        ]
        ver = self.device.opencl_c_version
        if impl == "khr":
            opts.append("-cl-std=CL3.0" if "3." in ver else "-cl-std=CL2.0")
        elif "1.0" not in ver and "1.1" not in ver:
            opts.append("-cl-std=CL1.2")
        return opts

    def groups(self, n: int) -> int:
        """Work-groups of a launch of n items (pages_per_group items each)."""
        return -(-n // self.pages_per_group)

    def _options(self, hash_log: int, cap: int) -> list[str]:
        opts = [
            f"-DPAGE={self.page_size}",
            f"-DLANES={self.lanes}",
            f"-DHASH_LOG={hash_log}",
            f"-DCAP={cap}",
            "-DSHORT=16",
            f"-DPARSE={1 if self.parse == 'parallel' else 0}",
            f"-DDPARSE={1 if self.decode == 'parallel' else 0}",
            f"-DIN_LOCAL={self.in_local}",
            f"-DE_NOSPC={errno.ENOSPC}",
            f"-DE_INVAL={errno.EINVAL}",
            f"-DE_BADMSG={errno.EBADMSG}",
        ]
        ver = self.device.opencl_c_version
        if "1.0" not in ver and "1.1" not in ver:
            opts.append("-cl-std=CL1.2")
        return opts

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
        item, an int or int32[n] (default, and at most, the LZ4 bound of the slot: no block
        is larger). Returns (out (n, out_slot) uint8, sizes int32[n]), out_slot defaulting
        to the largest capacity: sizes[i] >= 0 is the block length in out[i, :sizes[i]],
        -ENOSPC when the block does not fit capacity, -EINVAL when lengths[i] is not in
        [1, slot]. Bytes of a row past sizes[i] are unspecified unless `fill` is given (see
        `decompress`).
        """
        return self.submit(
            "compress", src, lengths, capacity, None, fill=fill, out_slot=out_slot
        ).results()

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
        return self.submit(
            "decompress", src, lengths, capacity, None, fill=fill, out_slot=out_slot
        ).results()

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
        out_slot: int | None = None,
        fill: int | None = None,
        lease: bool = False,
        packed: bool = False,
        offsets: npt.ArrayLike | None = None,
    ) -> Job:
        """Enqueue one batch (any size: more than max_batch items run as several launches)
        and return at once.

        src may be any (n, width) uint8 array, strided views included (no copy is made before
        the staging copy into pinned memory). capacity: output bytes per item, an int or
        int32[n]. op 'compress': None means the LZ4 bound of the slot, larger values are
        clamped to it; job.out is (n, largest capacity). op 'decompress': None means
        page_size, each at most page_size; job.out is (n, page_size). `out`, when given,
        receives the results and becomes job.out: its rows are the output slots (>= every
        capacity); out_slot sets the width of a job.out made here. If the batch fails as a
        whole (an OpenCL error), job.error is set and every item's size is -EIO.

        on_done(job) runs on the device's completer thread (never an event-loop thread) once
        job.out, job.sizes and job.kernel_ns are on the host, or job.error is set; job.wait()
        blocks for the same moment. src and lengths are read later by the dispatcher thread:
        leave them unchanged until then. Safe to call from any thread.

        Zero copy: src made of whole rows of a `batch_buffer` is uploaded straight from that
        pinned memory (no staging copy). With lease=True (and no `out`), job.out is a view of
        pinned memory the device downloads into, lent from the device's pool (`Lease`): no
        copy out of pinned memory; it returns to the pool once job.out and every view of it
        are collected, or at job.lease.release(). Past the pool's bound the job falls back
        to an ordinary array (job.lease is None).

        packed=True (compress): the device compacts the blocks (`compact.cl`) and job.packed
        holds them back to back, item i at job.offsets[i]; with lease=True job.packed is a
        view of a leased pinned buffer the blocks are downloaded into. offsets= (decompress):
        src is such packed bytes (a leased job.packed is uploaded in place).
        """
        if offsets is not None:
            return self._submit_packed_in(op, src, offsets, lengths, capacity, on_done, lease)
        src, lens, caps, slot = self._args(op, src, lengths, capacity, out, out_slot)
        if packed:
            if op != "compress" or out is not None or fill is not None:
                raise ValueError("packed=True is for compress, without out or fill")
            return self._submit("compress", src, lens, caps, slot, on_done, None, None,
                                None, packed=True, lease_packed=lease)
        held: Lease | None = None
        if lease and out is None and src.shape[0]:
            pitch = _round_up(max(slot, 1))
            held = self._pool.take(src.shape[0] * pitch)
            if held is not None:
                out = held.view((src.shape[0], slot), pitch)
        try:
            job = self._submit(cast("Op", op), src, lens, caps, slot, on_done, out, fill,
                               held)
        except BaseException:
            if held is not None:
                held.release()
            raise
        return job

    def _submit_packed_in(self, op: str, packed: U8, offsets: npt.ArrayLike,
                          lengths: npt.ArrayLike | None, capacity: npt.ArrayLike | None,
                          on_done: Callable[[Job], None] | None, lease: bool) -> Job:
        """Decompress blocks packed back to back (block i is packed[offsets[i]:][:lengths[i]]):
        the upload carries the packed bytes, a scatter kernel puts each block in its row."""
        if op != "decompress":
            raise ValueError("offsets= is for decompress (packed blocks in)")
        packed = np.asarray(packed)
        if packed.dtype != np.uint8 or packed.ndim != 1:
            raise ValueError("packed blocks must be a 1-D uint8 array")
        offs = np.asarray(offsets, np.int64)
        n = offs.shape[0]
        if offs.ndim != 1 or lengths is None:
            raise ValueError("offsets must be 1-D and lengths given")
        lens64 = np.asarray(lengths, np.int64)
        if lens64.shape != (n,):
            raise ValueError(f"lengths must have shape ({n},)")
        width = lz4_bound(self.page_size)
        ok = (lens64 >= 0) & (lens64 <= width)
        if n and ok.any() and (int(offs[ok].min()) < 0 or
                               int((offs + lens64)[ok].max()) > packed.shape[0]):
            raise ValueError("a block lies outside the packed bytes")
        lens = np.where(ok, lens64, -1).astype(np.int32)
        cap = self.page_size if capacity is None else capacity
        caps = self._check_caps(cap, n, self.page_size)
        src = np.empty((n, 0), np.uint8)  # the rows are made on the device
        held: Lease | None = None
        dst: U8 | None = None
        pitch = _round_up(self.page_size)
        if lease and n:
            held = self._pool.take(n * pitch)
            if held is not None:
                dst = held.view((n, self.page_size), pitch)
        in_pitch = _round_up(width)
        job = Job("decompress", src, lens, caps, self.page_size, on_done, dst, None,
                  self._launch_items(in_pitch, self.page_size, in_pitch + 4))
        job.lease = held
        job.packed_in = (packed, offs)
        job.zc = bytes_lease_of(packed)  # a leased packed result: uploaded in place
        with self._lock:
            if self._closed:
                if held is not None:
                    held.release()
                raise RuntimeError("Lz4Device is closed")
            if n == 0:
                self._inflight.put((job, 0, 0, None, None))
                return job
            self._pending.put(job)
        return job

    def _args(
        self,
        op: str,
        src: U8,
        lengths: npt.ArrayLike | None,
        capacity: npt.ArrayLike | None,
        out: U8 | None,
        out_slot: int | None,
    ) -> tuple[U8, I32, I32, int]:
        """submit's argument checks: (src, lengths, capacities, output row width)."""
        if op not in ("compress", "decompress"):
            raise ValueError(f"op must be 'compress' or 'decompress', not {op!r}")
        src, lens = self._check_src(src, lengths, op)
        n = src.shape[0]
        if out is not None and (out.dtype != np.uint8 or out.ndim != 2 or out.shape[0] != n):
            raise ValueError(f"out must be a uint8 array of {n} rows")
        if op == "compress":
            caps = self._compress_caps(capacity, src.shape[1], n)
            width = int(caps.max()) if n else 0
            slot = width if out_slot is None else int(out_slot)
            if slot < width:
                raise ValueError(f"out_slot {slot} < capacity {width}")
            if out is not None:
                if out.shape[1] < width:
                    raise ValueError(f"out rows of {out.shape[1]} bytes < capacity {width}")
                slot = out.shape[1]
        else:
            slot = self.page_size if out_slot is None else int(out_slot)
            if out is not None:
                slot = out.shape[1]
            cap = self.page_size if capacity is None else capacity
            caps = self._check_caps(cap, n, min(slot, self.page_size))
        return src, lens, caps, slot

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
        held: Lease | None = None,
        packed: bool = False,
        lease_packed: bool = False,
    ) -> Job:
        zc = lease_of(src)
        width = zc[0].pitch if zc is not None else src.shape[1]
        extra = _round_up(max(out_slot, 1)) + 4 if packed else 0
        job = Job(op, src, lens, caps, out_slot, on_done,
                  np.empty((src.shape[0], 0), np.uint8) if packed else dst, fill,
                  self._launch_items(width, out_slot, extra))
        job.zc, job.lease = zc, held
        if packed:
            n = src.shape[0]
            most = max(1, n * min(out_slot, lz4_bound(self.page_size)))
            if lease_packed and n:  # the blocks land in a leased pinned buffer (no copy out)
                job.lease = self._pool.take(most)
            job.packed = (job.lease.bytes_view(most) if job.lease is not None
                          else np.empty(most, np.uint8))
            job.offsets = np.zeros(n, np.int64)
            job.out_slot = out_slot
        with self._lock:
            if self._closed:
                if job.lease is not None and held is None:
                    job.lease.release()
                raise RuntimeError("Lz4Device is closed")
            if job.n == 0:
                self._inflight.put((job, 0, 0, None, None))
                return job
            if job.n <= min(_DIRECT_MAX, job.step):  # one launch
                # The fast path: a free slot is used right here, on the submitting thread (the
                # engine's thread for single requests). The lock orders this before close()'s
                # stop marker; nothing here blocks.
                try:
                    slot = self._free.get_nowait()
                except queue.Empty:
                    pass
                else:
                    self._start(slot, job, 0, job.n)
                    return job
            self._pending.put(job)
        return job

    # -- zero-copy buffers ---------------------------------------------------------------------

    def batch_buffer(self, n: int, width: int | None = None) -> U8:
        """An (n, width) uint8 array in pinned, mapped host memory (width: page_size by
        default) for the inputs of batches: fill it and submit it (or whole rows of it), and
        the upload reads it in place, with no staging copy. It is lent from the device's pool
        (lease_limit bytes with the leased results) and goes back when the array and every
        view of it are collected. MemoryError past the bound."""
        width = self.page_size if width is None else int(width)
        if n < 1 or not 1 <= width <= 65535:
            raise ValueError("batch_buffer needs n >= 1 and a width in [1, 65535]")
        pitch = _round_up(width)
        lease = self._pool.take(n * pitch)
        if lease is None:
            raise MemoryError(f"zero-copy pool full: {self._pool.lent} of {self._pool.limit} "
                              "bytes lent (release results, or drop buffers)")
        return lease.view((n, width), pitch)

    def lease_stats(self) -> dict[str, int]:
        """The zero-copy pool: bytes lent and cached, leases out, takes refused (the bound)."""
        p = self._pool
        return {"lent": p.lent, "cached": p.cached, "leases": p.leases, "refused": p.refused,
                "limit": p.limit}

    # -- the synchronous path: one small launch completed in the caller's thread -------------

    def run_sync(
        self,
        op: str,
        src: U8,
        lengths: npt.ArrayLike | None,
        capacity: npt.ArrayLike | None,
        consume: Callable[[Job, I32, U8], None],
        *,
        wait: WaitMode = "block",
    ) -> Job | None:
        """Run a small batch (at most 256 items, one launch) on the calling thread.

        With a slot free, the batch is staged and enqueued here, this thread waits for its
        download (`wait`: "block" sleeps in clWaitForEvents with the GIL released, "poll"
        spins on the event's status, "callback" sleeps until the event's completion callback
        fires; see WAIT_MODES), then calls consume(job, sizes, rows) with views of the slot's
        pinned memory (valid only during the call: copy what you keep) and returns the job
        (its kernel_ns, transfer_ns and stages filled in; job.out is not). Returns None at once
        when every slot is busy (the caller then uses `submit`). No other thread takes part:
        for a lone request this is the fast path (iaa_crypto's sync mode, which polls for the
        descriptor's completion in the submitting context). Arguments as for `submit`; an
        OpenCL failure is raised here.
        """
        if wait not in WAIT_MODES:
            raise ValueError(f"wait must be one of {WAIT_MODES}, not {wait!r}")
        src, lens, caps, out_slot = self._args(op, src, lengths, capacity, None, None)
        n = src.shape[0]
        if not 1 <= n <= min(_DIRECT_MAX, self.max_batch):
            raise ValueError(f"run_sync takes 1 to {min(_DIRECT_MAX, self.max_batch)} items")
        step = self._launch_items(src.shape[1], out_slot)
        if n > step:
            raise ValueError(f"run_sync: {n} items of this shape exceed the pinned bound")
        with self._lock:
            if self._closed:
                raise RuntimeError("Lz4Device is closed")
            try:
                slot = self._free.get_nowait()
            except queue.Empty:
                return None
        job = Job(cast("Op", op), src, lens, caps, out_slot, None, None, None, step)
        launch: _Launch | None = None
        try:
            launch = self._enqueue(slot, job, 0, n)
            t0 = time.perf_counter_ns()
            _wait_event(launch.down, wait)
            t1 = time.perf_counter_ns()
            up, kev, down = launch.up.profile, launch.kernel.profile, launch.down.profile
            job.kernel_ns = k_ns = int(kev.end - kev.start)
            up_ns, down_ns = int(up.end - up.start), int(down.end - down.start)
            job.transfer_ns = up_ns + down_ns
            st = job.stages
            st["wait"], st["kernel"], st["upload"], st["download"] = t1 - t0, k_ns, up_ns, down_ns
            consume(job, launch.sizes, launch.rows)
            st["copy_out"] = time.perf_counter_ns() - t1
        except BaseException:
            try:
                slot.queue.finish()  # nothing of this launch may still write into the slot
            finally:
                if launch is not None:
                    self._retired()
                self._free.put(slot)
            raise
        self._retired()
        self._free.put(slot)
        job.src = job.lengths = job.caps = None
        job.done_ns = time.perf_counter_ns()
        job.stages["wall"] = job.done_ns - job.submit_ns
        job._done.set()
        return job

    def _check_src(self, src: U8, lengths: npt.ArrayLike | None, op: str) -> tuple[U8, I32]:
        src = np.asarray(src)
        if src.dtype != np.uint8 or src.ndim != 2:
            raise ValueError(f"src must be a 2-D uint8 array, not {src.dtype} {src.shape}")
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
            if lens.dtype != np.int32:
                lens = np.clip(lens, -1, 1 << 30).astype(np.int32)
        return src, lens

    @staticmethod
    def _compress_caps(capacity: npt.ArrayLike | None, slot: int, n: int) -> I32:
        bound = lz4_bound(slot)
        if capacity is None:
            return np.full(n, bound, np.int32)
        caps = np.broadcast_to(np.asarray(capacity, dtype=np.int64), (n,))
        if n and int(caps.min()) < 0:
            raise ValueError("capacity must be >= 0")
        # no block is larger than the bound: a bigger capacity only widens the output rows
        return np.ascontiguousarray(np.minimum(caps, bound), dtype=np.int32)

    @staticmethod
    def _check_caps(capacity: npt.ArrayLike, n: int, most: int) -> I32:
        caps = np.broadcast_to(np.asarray(capacity, dtype=np.int64), (n,))
        if n and (int(caps.min()) < 0 or int(caps.max()) > most):
            raise ValueError(f"capacity must be in [0, {most}] (the output slot and page size)")
        return np.ascontiguousarray(caps, dtype=np.int32)

    # -- threads ------------------------------------------------------------------------------

    def _copy(self, dst: U8, src: U8) -> None:
        """dst[...] = src, by rows over the copy threads when the launch is large."""
        pool = self._copy_pool
        n = dst.shape[0]
        if pool is None or dst.nbytes < _PARALLEL_COPY or n < 2:
            np.copyto(dst, src)
            return
        step = -(-n // self._ncopy)
        futs = [
            pool.submit(np.copyto, dst[a : a + step], src[a : a + step])
            for a in range(step, n, step)
        ]
        np.copyto(dst[:step], src[:step])  # this thread copies too
        for f in futs:
            f.result()

    def _dispatch_loop(self) -> None:
        while True:
            job = self._pending.get()
            if job is _STOP:
                self._inflight.put(_STOP)
                return
            for a in range(0, job.n, job.step):
                slot = self._free.get()
                self._start(slot, job, a, min(job.n, a + job.step))
            del job  # not kept alive until the next one comes

    def _start(self, slot: _Slot, job: Job, a: int, b: int) -> None:
        """Enqueue items [a, b) of job on slot and hand them to the completer."""
        try:
            launch: _Launch | None = self._enqueue(slot, job, a, b)
        except BaseException as e:  # report it through the job, keep serving
            job.error = e
            launch = None
        self._inflight.put((job, a, b, slot, launch))

    def _enqueue(self, slot: _Slot, job: Job, a: int, b: int) -> _Launch:
        """Stage items [a, b) in the slot's pinned memory; enqueue upload, kernel, download.

        One upload (lengths, capacities and rows in one buffer) and one download (sizes and
        rows): every command costs Python and driver time on the latency path.
        """
        t0 = time.perf_counter_ns()
        n = b - a
        src, lengths, caps = job.src, job.lengths, job.caps
        assert src is not None
        assert lengths is not None
        assert caps is not None
        in_slot = src.shape[1]
        zc = job.zc
        in_pitch = zc[0].pitch if zc is not None else _round_up(max(in_slot, 1))
        pin = job.packed_in
        if pin is not None:  # rows of the LZ4 bound, made on the device
            in_slot = lz4_bound(self.page_size)
            in_pitch = _round_up(in_slot)
        out_pitch = _round_up(max(job.out_slot, 1))
        in_meta, out_meta = _round_up(8 * n), _round_up(4 * n)
        span = lo = 0
        if pin is not None:  # header: lengths, caps, each block's offset in the span
            in_meta = _round_up(12 * n)
            poffs, plens = pin[1][a:b], lengths[a:b].astype(np.int64)
            good = plens > 0
            if good.any():
                lo = int(poffs[good].min())
                span = int((poffs + plens)[good].max()) - lo
        in_bytes, out_bytes = in_meta + n * in_pitch, out_meta + n * out_pitch
        in_bytes = max(in_bytes, in_meta + span)  # packed blocks with gaps between them
        q = slot.queue
        (d_in, h_in), (d_out, h_out) = slot.ensure(
            {"in": in_bytes, "out": out_bytes}, self.pinned_limit // len(self._slots))

        meta = h_in[:in_meta].view(np.int32)
        lens = meta[:n]
        np.copyto(lens, lengths[a:b])
        low = 1 if job.op == "compress" else 0
        bad = (lens < low) | (lens > in_slot)
        if bad.any():
            lens[bad] = -1  # the kernel answers -EINVAL
        np.copyto(meta[n : 2 * n], caps[a:b])
        if pin is not None:
            rel = meta[2 * n : 3 * n].view(np.uint32)
            np.copyto(rel, np.where(poffs >= lo, poffs - lo, 0).astype(np.uint32))
            if zc is None:
                self._copy(h_in[in_meta : in_meta + span], pin[0][lo : lo + span])
        elif zc is None:
            rows = h_in[in_meta:in_bytes].reshape(n, in_pitch)
            self._copy(rows if in_pitch == in_slot else rows[:, :in_slot], src[a:b])
        t1 = time.perf_counter_ns()

        if pin is not None:  # the packed bytes up, then each block into its row on the device
            d_src = slot.device_buf("packed_in", in_meta + span)
            if zc is None:
                up = cl.enqueue_copy(q, d_src, h_in[: in_meta + span], is_blocking=False)
            else:  # the header from the slot, the blocks straight from the leased result
                up = cl.enqueue_copy(q, d_src, h_in[:in_meta], is_blocking=False)
                if span:
                    first = zc[1] + lo
                    up = cl.enqueue_copy(q, d_src, zc[0].lease.arr[first : first + span],
                                         dst_offset=in_meta, is_blocking=False)
            job.uploaded += in_meta + span
            cl.enqueue_copy(q, d_in, d_src, byte_count=8 * n)  # lengths and caps
            scatter = slot.compact["scatter"]
            scatter.set_args(d_src, np.uint32(in_meta), np.uint32(n), d_in, np.uint32(in_meta),
                             np.uint32(in_pitch))
            cl.enqueue_nd_range_kernel(q, scatter, (n * _GATHER_LANES,), (_GATHER_LANES,))
        elif zc is None:
            up = cl.enqueue_copy(q, d_in, h_in[:in_bytes], is_blocking=False)
            job.uploaded += in_bytes
        else:  # the rows straight from the caller's pinned buffer, the header from the slot
            owner, row0 = zc
            first = owner.addr - owner.lease.addr + (row0 + a) * in_pitch
            cl.enqueue_copy(q, d_in, h_in[:in_meta], is_blocking=False)
            up = cl.enqueue_copy(q, d_in, owner.lease.arr[first : first + n * in_pitch],
                                 dst_offset=in_meta, is_blocking=False)
            job.uploaded += in_meta + n * in_pitch
        if job._fill is not None:
            pattern = np.array([job._fill], np.uint8)
            cl.enqueue_fill_buffer(q, d_out, pattern, out_meta, n * out_pitch)
        k = slot.kernels[job.op]
        set_page_args(k, d_in, in_meta, in_pitch, d_out, out_meta, out_pitch, n)
        kev = cl.enqueue_nd_range_kernel(q, k, (self.groups(n) * self.lanes,), (self.lanes,))
        d_pk: cl.Buffer | None = None
        if job.packed is not None:  # compaction: scan the sizes, gather the blocks
            d_off = slot.device_buf("offsets", 4 * (n + 1))
            d_pk = slot.device_buf("packed", n * out_pitch)
            scan, gather = slot.compact["scan"], slot.compact["gather"]
            scan.set_args(d_out, d_off, np.uint32(n))
            cl.enqueue_nd_range_kernel(q, scan, (_SCAN_LANES,), (_SCAN_LANES,))
            gather.set_args(d_out, np.uint32(out_meta), np.uint32(out_pitch), d_out, d_off, d_pk)
            cl.enqueue_nd_range_kernel(q, gather, (n * _GATHER_LANES,), (_GATHER_LANES,))
            down = cl.enqueue_copy(q, h_out[: 4 * n], d_out, is_blocking=False)
            job.downloaded += 4 * n
        elif job.lease is None:
            down = cl.enqueue_copy(q, h_out[:out_bytes], d_out, is_blocking=False)
            job.downloaded += out_bytes
        else:  # sizes into the slot, rows straight into the result's pinned buffer
            cl.enqueue_copy(q, h_out[:out_meta], d_out, is_blocking=False)
            down = cl.enqueue_copy(q, job.lease.arr[a * out_pitch : b * out_pitch], d_out,
                                   src_offset=out_meta, is_blocking=False)
            job.downloaded += out_meta + n * out_pitch
        q.flush()
        st = job.stages
        st["stage_in"] += t1 - t0
        st["enqueue"] += time.perf_counter_ns() - t1
        with self._stats_lock:
            self._depth += 1
            self._launched += 1
            self._most = max(self._most, self._depth)
        return _Launch(
            up,
            kev,
            down,
            h_out[: 4 * n].view(np.int32),
            h_out[out_meta:out_bytes].reshape(n, out_pitch),
            d_pk,
            q,
        )

    def _launch_items(self, in_width: int, out_width: int, extra: int = 0) -> int:
        """Items per launch for rows of these widths: max_batch, or fewer where a launch's
        buffers (input and output, each on the device and pinned on the host) would take one
        slot past its share of pinned_limit."""
        per = 2 * (8 + _round_up(max(in_width, 1)) + 4 + _round_up(max(out_width, 1))) + extra
        share = self.pinned_limit // len(self._slots) - 4 * (1 << 16)  # 64 KiB rounding
        return max(1, min(self.max_batch, share // per))

    def _retired(self) -> None:
        with self._stats_lock:
            self._depth -= 1

    def _overlap(self, job: Job, start: int, end: int) -> None:
        """Count a collected launch that started (device clock) before an earlier one ended."""
        with self._stats_lock:
            if start < self._last_end:
                self._overlapped += 1
                job.overlapped += 1
            self._last_end = max(self._last_end, end)

    def pipeline_stats(self) -> dict[str, int]:
        """The pipeline: its slots; launches in flight now (enqueued, not yet collected), the
        most at once, launches so far, and how many of them overlapped an earlier launch on
        the device (their first command started before its last ended: profiling
        timestamps, so this counts what the device did, not what the host hoped)."""
        with self._stats_lock:
            return {"slots": len(self._slots), "in_flight": self._depth,
                    "most_in_flight": self._most, "launches": self._launched,
                    "overlapped": self._overlapped}

    def pinned_bytes(self) -> int:
        """Bytes of staging memory the device holds now (device buffers and pinned host
        buffers); at most pinned_limit, and back to at most 4 x keep_pinned a slot once the
        device has been idle for idle_release_s."""
        return sum(s.pinned_bytes() for s in self._slots)

    def _trim(self) -> None:
        """The device is idle: return the staging buffers above keep_pinned of every slot
        (only while every slot is free: a slot in use is left alone)."""
        held: list[_Slot] = []
        try:
            for _ in self._slots:
                held.append(self._free.get_nowait())
        except queue.Empty:
            return
        finally:
            if len(held) == len(self._slots):
                for s in held:
                    s.trim(self.keep_pinned)
                self._pool.trim()
            for s in held:
                self._free.put(s)

    def _complete_loop(self) -> None:
        while True:
            try:
                item = self._inflight.get(timeout=self.idle_release_s)
            except queue.Empty:
                if (self.pinned_bytes() > 4 * self.keep_pinned * len(self._slots)
                        or self._pool.cached):
                    self._trim()
                continue
            if item is _STOP:  # the dispatcher has stopped: nothing else uses the buffers
                for _ in self._slots:  # once a run_sync still holding a slot has returned it
                    self._free.get()
                self._pool.close()
                if self._copy_pool is not None:
                    self._copy_pool.shutdown()
                for s in self._slots:
                    s.close()
                return
            job, a, b, slot, launch = item
            try:
                if launch is not None:
                    self._collect(job, a, b, launch)
                elif slot is not None:  # enqueueing failed: let whatever was enqueued finish
                    slot.queue.finish()
            except BaseException as e:
                job.error = e
                if slot is not None:  # nothing of this launch may still write anywhere
                    try:
                        slot.queue.finish()
                    except Exception:  # pragma: no cover - the device itself failed
                        log.debug("finish after a failed launch failed", exc_info=True)
            finally:
                if launch is not None:
                    self._retired()
                if slot is not None:
                    self._free.put(slot)
            job._left -= 1
            if job._left == 0:
                self._finish(job)
            del item, job, launch  # a finished job's leased result must not be kept alive

    def _collect(self, job: Job, a: int, b: int, launch: _Launch) -> None:
        """Wait for one launch (blocking on its last event: the fast completion path) and copy
        its results out of pinned memory into the job's arrays."""
        st = job.stages
        t0 = time.perf_counter_ns()
        launch.down.wait()
        t1 = time.perf_counter_ns()
        up, kev, down = launch.up.profile, launch.kernel.profile, launch.down.profile
        k_ns = int(kev.end - kev.start)
        up_ns, down_ns = int(up.end - up.start), int(down.end - down.start)
        job.kernel_ns += k_ns
        job.transfer_ns += up_ns + down_ns
        end = int(down.end)
        if launch.packed is not None:  # the second download: exactly the compressed bytes
            assert job.packed is not None
            assert job.offsets is not None
            assert launch.queue is not None
            lens = np.maximum(launch.sizes, 0).astype(np.int64)
            total = int(lens.sum())
            at = job._at
            job.offsets[a:b] = at + np.cumsum(lens) - lens
            if total:
                # leased: straight into the result's pinned buffer; else through the slot's
                # pinned rows into the ordinary array
                leased = job.lease is not None
                host = job.packed[at : at + total] if leased else launch.rows.reshape(-1)[:total]
                ev = cl.enqueue_copy(launch.queue, host, launch.packed, is_blocking=True)
                pk = ev.profile
                down_ns += int(pk.end - pk.start)
                job.transfer_ns += int(pk.end - pk.start)
                end = int(pk.end)
                if not leased:
                    self._copy(job.packed[at : at + total], host)
            job._at = at + total
            job.downloaded += total
        elif job.lease is None:
            self._copy(job._dst[a:b], launch.rows[:, : job._dst.shape[1]])
        self._overlap(job, int(up.start), end)
        job._sizes[a:b] = launch.sizes
        st["wait"] += t1 - t0
        st["kernel"] += k_ns
        st["upload"] += up_ns
        st["download"] += down_ns
        st["copy_out"] += time.perf_counter_ns() - t1

    def _finish(self, job: Job) -> None:
        if job.error is not None:
            job._sizes[:] = -errno.EIO
            if job.lease is not None:  # nothing to lend: the batch failed as a whole
                job.lease.release()
                job.lease = None
                job._dst = np.zeros(job._dst.shape, np.uint8)
                if job.packed is not None:
                    job.packed = np.zeros(0, np.uint8)
            job._at = 0
        job.out, job.sizes = job._dst, job._sizes
        if job.packed is not None:
            job.out = None
            job.packed = job.packed[: job._at]
        job.src = job.lengths = job.caps = None
        job.zc = job.packed_in = None
        job.done_ns = time.perf_counter_ns()
        job.stages["wall"] = job.done_ns - job.submit_ns
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


def set_page_args(k: cl.Kernel, d_in: cl.Buffer, in_meta: int, in_pitch: int, d_out: cl.Buffer,
                  out_meta: int, out_pitch: int, n: int, *extra: Any) -> None:
    """The page kernels' arguments (``lz4_compress`` / ``lz4_decompress`` in kernels.cl and
    kernels_sg.cl): the input buffer with its rows from `in_meta`, `in_pitch` apart, the output
    buffer likewise, the item count; `extra` after them (the instrumented build's counters)."""
    k.set_args(d_in, np.uint32(in_meta), np.uint32(in_pitch), d_out, np.uint32(out_meta),
               np.uint32(out_pitch), np.uint32(n), *extra)


def _build(ctx: cl.Context, path: Path, options: list[str]) -> cl.Program:
    """The program of the kernel file at `path` (its text: `kernel_source`), built."""
    source = kernel_source(path)
    with warnings.catch_warnings():
        # a non-empty build log is a warning in pyopencl; it is not an error here
        warnings.simplefilter("ignore")
        return cast("cl.Program", cl.Program(ctx, source).build(options=options))
