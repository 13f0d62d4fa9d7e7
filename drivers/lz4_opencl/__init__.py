"""lz4-opencl: LZ4 block compression on an OpenCL device, an asynchronous acomp driver.

Kernel counterpart: the hardware acomp drivers (``drivers/crypto/intel/iaa``, ``hisilicon/zip``)
on top of ``crypto/crypto_engine.c``; the kernel has no GPU driver, this is the accelerator the
acomp design exists for.

``cra_name`` ``lz4``, ``cra_driver_name`` ``lz4-opencl``, ``CRYPTO_ALG_ASYNC``. Its priority
follows the hardware (`choose_priority`): 300 on a GPU or accelerator, so that
``crypto_alloc_acomp("lz4")`` picks it there; on a CPU-type OpenCL device (PoCL), which is no
accelerator (about 15x slower than lz4-scomp on this project's CPU), 0: the CPU drivers' own
priority, the lowest the kernel accepts. A tie goes to the newest registration (the kernel's
list is newest first), so on a CPU device the module registers its algorithm first and then
loads the software lz4 (its fallback anyway): lz4-scomp, the newer, wins ``lz4``, and
lz4-opencl is found by its driver name. ``mask=CRYPTO_ALG_ASYNC`` always gives lz4-scomp.

Each tfm keeps a synchronous fallback transform (``tfm.fb``, lz4-scomp: the newest kernel's
``fb``). Requests larger than the device's block size always run on it, so every size works;
while the tfm's small-request switch is on (`set_fallback`, the default unless
``ACOMP_OPENCL_FALLBACK=0``) so do requests and vectored batches of fewer pages than the
device's break-even batch (`Lz4OpenCL.break_even`, ``ACOMP_OPENCL_BREAK_EVEN``, 64). A request
the device takes, finding the engine idle, runs and completes in the submitter's thread
(`Lz4Device.run_sync`, waiting as ``ACOMP_OPENCL_WAIT`` says); otherwise it goes through a
`acomp.engine.CryptoEngine` that hands the driver every queued request at once, the driver
packs them into one launch (`device.Lz4Device`), and the device's completion thread finishes
each request through its callback.

The module is a hardware driver: it is loaded at the first lookup (udev's coldplug), imports
pyopencl only then, and stays unloaded (with the reason) where there is no OpenCL device.
Environment: ``ACOMP_OPENCL=0`` disables it; ``ACOMP_OPENCL_DEVICE`` picks the device
(see `device.choose_device`); ``ACOMP_OPENCL_BATCH`` caps the requests per launch;
``ACOMP_OPENCL_PRIORITY=N`` sets the priority whatever the device (for testing: 300 makes a
PoCL device the ``lz4`` that lookups pick); ``ACOMP_OPENCL_PINNED_MB`` bounds the device's
staging memory (192 MiB); ``ACOMP_OPENCL_SLOTS`` sets the launches in flight (4);
``ACOMP_OPENCL_LEASE_MB`` bounds the zero-copy memory lent out (1 GiB).
"""

from __future__ import annotations

import errno
import logging
import os
import weakref
from typing import Any

import numpy as np

from acomp._constants import (
    CRYPTO_ACOMP_REQ_DST_VIRT,
    CRYPTO_ACOMP_REQ_SRC_VIRT,
    CRYPTO_ALG_ASYNC,
    CRYPTO_ALG_REQ_SEG,
    PAGE_SIZE,
)
from acomp.acompress import (
    AcompReq,
    CryptoAcomp,
    crypto_alloc_acomp,
    crypto_free_acomp,
)
from acomp.batchresult import BatchResult
from acomp.engine import CryptoEngine
from acomp.internal import (
    AcompAlg,
    CryptoModule,
    acomp_request_complete,
    crypto_register_acomp,
    crypto_unregister_acomp,
    finish_segments,
    request_module,
    segment_views,
)
from acomp.scatterlist import sg_copy_from_buffer, sgl_alloc

__all__ = ("BREAK_EVEN", "ENV_BREAK_EVEN", "ENV_FALLBACK", "ENV_LEASE_MB", "ENV_PINNED_MB",
           "ENV_PRIORITY", "ENV_SLOTS", "ENV_WAIT", "GPU_PRIORITY", "MODULE", "Lz4OpenCL",
           "choose_priority", "set_fallback")

log = logging.getLogger(__name__)

#: Priority on a GPU or accelerator: above the CPU drivers (0), as the kernel's hardware drivers.
GPU_PRIORITY = 300
#: Environment variable that overrides `choose_priority`.
ENV_PRIORITY = "ACOMP_OPENCL_PRIORITY"

_EINVAL = -errno.EINVAL
_VIRT = CRYPTO_ACOMP_REQ_SRC_VIRT | CRYPTO_ACOMP_REQ_DST_VIRT
_COMPRESS = 1
_DECOMPRESS = 2

#: Default break-even batch (pages): on the H100 lz4-opencl overtook one CPU core at 64 pages
#: (2.1x there; a single page ran 0.07x), docs/benchmarks.md, 2026-11-26.
BREAK_EVEN = 64
ENV_BREAK_EVEN = "ACOMP_OPENCL_BREAK_EVEN"
#: "0": new transforms start with the small-request fallback off (the device for everything).
ENV_FALLBACK = "ACOMP_OPENCL_FALLBACK"
#: How a lone request waits for the device: block (default), poll or callback.
ENV_WAIT = "ACOMP_OPENCL_WAIT"
#: The bound on the device's staging memory, MiB (device.PINNED_LIMIT by default).
ENV_PINNED_MB = "ACOMP_OPENCL_PINNED_MB"
#: The bound on zero-copy memory lent out (batch buffers and results), MiB (1 GiB).
ENV_LEASE_MB = "ACOMP_OPENCL_LEASE_MB"
#: Launches in flight on the device (device.SLOTS, 4).
ENV_SLOTS = "ACOMP_OPENCL_SLOTS"


class _Inline:
    """A stand-in for the engine while a request completes in its submitter's thread: the
    status is returned to the submitter, the request's callback is not called (a synchronous
    0 or errno, as a driver that finished at once returns)."""

    __slots__ = ("err",)

    def __init__(self) -> None:
        self.err = -errno.EIO

    def finalize(self, req: AcompReq, err: int) -> None:
        self.err = err


def _bound(n: int) -> int:
    return n + n // 255 + 16


def choose_priority(kind: str, env: str | None = None) -> tuple[int, str]:
    """(priority, why) for a device of `kind` (``GPU``, ``CPU``, ``ACCELERATOR``, ``OTHER``).

    `env` is the value of ``ACOMP_OPENCL_PRIORITY`` when set: a non-negative integer wins.
    """
    if env is not None and env.strip():
        try:
            prio = int(env)
        except ValueError:
            prio = -1
        if prio >= 0:
            return prio, f"{ENV_PRIORITY}={prio}"
    if kind == "CPU":
        return 0, ("CPU OpenCL device, no accelerator: 0 as the CPU drivers; lz4-scomp, "
                   "registered after it, wins the tie")
    return GPU_PRIORITY, f"{kind} OpenCL device: above the CPU drivers (0)"


class Lz4OpenCL(AcompAlg):
    cra_name = "lz4"
    cra_driver_name = "lz4-opencl"
    cra_priority = 300
    # CRYPTO_ALG_REQ_SEG: a segmented request (the proposed mode, acomp.segment) is one job.
    cra_flags = CRYPTO_ALG_ASYNC | CRYPTO_ALG_REQ_SEG
    cra_module = "lz4_opencl"
    reqsize = 1  # ctx[0]: the direction of the queued request

    def __init__(self, dev: Any, *, batch_limit: int = 4096, max_qlen: int = 65536,
                 priority: int = GPU_PRIORITY, priority_reason: str = "",
                 break_even: int | None = None, wait: str | None = None) -> None:
        super().__init__()
        self.dev = dev
        self.device_info = dev.info
        self.cra_priority = priority  # type: ignore[misc]  # per device, set before registering
        #: Why it has `cra_priority` (``python -m acomp list`` prints it).
        self.priority_reason = priority_reason
        self.block = int(dev.page_size)
        #: The batch size (pages) from which the device beats one CPU core: smaller requests
        #: and batches go to a transform's synchronous fallback while its switch is on.
        self.break_even = max(1, break_even if break_even is not None
                              else int(os.environ.get(ENV_BREAK_EVEN, BREAK_EVEN)))
        #: A lone request on an idle device runs in its submitter's thread and returns its
        #: status (off: every device request completes through its callback).
        self.inline = True
        #: How a lone request on an idle device waits for its launch (device.WAIT_MODES).
        self.wait = wait or os.environ.get(ENV_WAIT, "block")
        self._fallback: weakref.WeakKeyDictionary[CryptoAcomp, bool] = (
            weakref.WeakKeyDictionary())
        # as many engine batches on the device as it has launches in flight
        self.engine = CryptoEngine("lz4-opencl", self._do_batch, max_qlen=max_qlen,
                                   batch_limit=batch_limit,
                                   max_in_flight=int(getattr(dev, "slots", 3)),
                                   inline_pump=True)
        self.engine.start()

    # -- tfm ------------------------------------------------------------------------------------

    def init(self, tfm: CryptoAcomp) -> int:
        if tfm.fb is None:  # a core that allocates the v6.15+ fallback itself has done so
            try:
                tfm.fb = crypto_alloc_acomp(self.cra_name, 0, CRYPTO_ALG_ASYNC)
            except OSError:
                tfm.fb = None  # no software lz4: oversize requests get -EINVAL
        self._fallback[tfm] = os.environ.get(ENV_FALLBACK, "1") != "0"
        return 0

    # -- the small-request policy ------------------------------------------------------------

    def set_fallback(self, tfm: CryptoAcomp, on: bool) -> None:
        """Switch `tfm`'s small-request fallback: on, requests and batches of fewer than
        `break_even` pages run on the transform's synchronous fallback (lz4-scomp, the
        kernel's v6.15+ ``tfm->fb``); off, the device serves every request it can hold."""
        if tfm.alg is not self:
            raise ValueError(f"{tfm!r} is not an lz4-opencl transform")
        self._fallback[tfm] = bool(on)

    def fallback_on(self, tfm: CryptoAcomp) -> bool:
        return self._fallback.get(tfm, False) and tfm.fb is not None

    def _lend(self, req: AcompReq, direction: int) -> int:
        """Run `req` on its transform's fallback: synchronous, done before we return
        (compress()/decompress() give the request back its own tfm)."""
        fb = req.tfm.fb
        if fb is None:
            return _EINVAL
        # The request is already in flight (crypto_acomp_compress marked it): call the
        # fallback's entry point itself, not crypto_acomp_compress (a resubmission).
        req.tfm = fb
        return fb.compress(req) if direction == _COMPRESS else fb.decompress(req)

    def exit(self, tfm: CryptoAcomp) -> None:
        crypto_free_acomp(tfm.fb)
        tfm.fb = None

    # -- submission --------------------------------------------------------------------------

    def _submit(self, req: AcompReq, direction: int) -> int:
        src = req.src
        if src is None or req.slen <= 0 or req.slen > src.length or req.dlen < 0:
            return _EINVAL
        dst = req.dst
        if dst is not None:
            if req.dlen > dst.length:  # never more than the caller really gave (as scomp)
                req.dlen = dst.length
            if req.dlen == 0 or not dst.writable:
                return _EINVAL
        too_big = req.slen > (self.block if direction == _COMPRESS else _bound(self.block))
        if direction == _DECOMPRESS and (req.dlen == 0 or req.dlen > self.block):
            too_big = True  # the output may exceed a device slot
        if too_big or (self.break_even > 1 and self.fallback_on(req.tfm)):
            return self._lend(req, direction)  # one page is below the break-even batch
        if self.inline and self.engine.claim_idle():
            # A lone request on an idle device: this thread runs the launch and completes the
            # request (no thread hand-off at all), unless every slot is taken by batches.
            try:
                ret = self._run_inline(req, direction)
            finally:
                self.engine.batch_done()
            if ret is not None:
                return ret
        req.ctx[0] = direction
        return self.engine.transfer(req)

    def _run_inline(self, req: AcompReq, direction: int) -> int | None:
        """The device's synchronous path for one request: its status (0 or a negative
        errno, the request finished), or None when no device slot was free."""
        assert req.src is not None
        view = req.src.linear(req.slen)
        data = np.frombuffer(view if view is not None else req.src.tobytes(req.slen), np.uint8)
        if direction == _COMPRESS:
            op = "compress"
            cap = min(req.dlen, _bound(self.block)) if req.dlen else _bound(self.block)
        else:
            op, cap = "decompress", req.dlen
        status = _Inline()

        def consume(job: Any, sizes: Any, rows: Any) -> None:
            try:  # whatever the copy-out does, the submitter gets a status
                status.finalize(req, self._complete(req, rows[0], int(sizes[0])))
            except Exception:
                log.exception("lz4-opencl: completing %r failed", req)
                status.finalize(req, -errno.EIO)

        try:
            job = self.dev.run_sync(op, data.reshape(1, -1), None, cap, consume, wait=self.wait)
        except Exception:
            log.exception("lz4-opencl: a synchronous launch failed")
            return -errno.EIO
        return None if job is None else status.err

    def compress(self, req: AcompReq) -> int:
        tfm = req.tfm
        try:
            if req.unit_size and not req.base_flags & _VIRT:
                return self._segmented(req)
            return self._submit(req, _COMPRESS)
        finally:
            req.tfm = tfm

    def _segmented(self, req: AcompReq) -> int:
        """A segmented compression (the proposed ``CRYPTO_ALG_REQ_SEG``): every ``unit_size``
        segment a row of one device job, each row's output into its dst entry and its length
        or errno into the entry's length (`acomp.internal.finish_segments`); the request
        completes through its callback once the job is done. Segments wider than a device
        block, or fewer than the break-even batch while the fallback is on, run on the
        transform's fallback (lz4-scomp, which segments on the CPU)."""
        got = segment_views(req)
        if isinstance(got, int):
            return got
        segs, outs = got
        n = len(segs)
        if req.unit_size > self.block or (self.break_even > 1 and n < self.break_even
                                          and self.fallback_on(req.tfm)):
            return self._lend(req, _COMPRESS)
        src = np.zeros((n, self.block), np.uint8)
        lengths = np.empty(n, np.int32)
        for i, seg in enumerate(segs):
            src[i, : len(seg)] = np.frombuffer(seg, np.uint8)
            lengths[i] = len(seg)
        caps = np.array([min(len(o), _bound(self.block)) for o in outs], np.int32)

        def on_done(job: Any) -> None:
            try:  # whatever the copy-out does, the request completes
                sizes = job.sizes.tolist()
                res: list[bytes | int] = [k if k < 0 else job.out[i, :k].tobytes()
                                          for i, k in enumerate(sizes)]
                status = finish_segments(req, outs, res)
            except Exception:
                log.exception("lz4-opencl: completing the segmented %r failed", req)
                status = -errno.EIO
            acomp_request_complete(req, status)

        try:
            self.dev.submit("compress", src, lengths, caps, on_done)
        except Exception:
            log.exception("lz4-opencl: a segmented launch failed")
            return -errno.EIO
        return -errno.EINPROGRESS

    def decompress(self, req: AcompReq) -> int:
        tfm = req.tfm
        try:
            return self._submit(req, _DECOMPRESS)
        finally:
            req.tfm = tfm

    # -- the engine's batches --------------------------------------------------------------

    def _do_batch(self, engine: CryptoEngine, reqs: list[AcompReq]) -> None:
        comp = [r for r in reqs if r.ctx[0] == _COMPRESS]
        decomp = [r for r in reqs if r.ctx[0] == _DECOMPRESS]
        groups = [(g, op) for g, op in ((comp, "compress"), (decomp, "decompress")) if g]
        remaining = [len(groups)]
        if not groups:
            engine.batch_done()
            return
        for group, op in groups:
            slot = self.block if op == "compress" else _bound(self.block)
            src = np.empty((len(group), slot), np.uint8)  # the kernels read only lengths[i]
            lengths = np.empty(len(group), np.int32)
            caps = np.empty(len(group), np.int32)
            for i, r in enumerate(group):
                assert r.src is not None
                view = r.src.linear(r.slen)
                if view is not None:
                    src[i, : r.slen] = np.frombuffer(view, np.uint8)
                else:
                    src[i, : r.slen] = np.frombuffer(r.src.tobytes(r.slen), np.uint8)
                lengths[i] = r.slen
                if op == "compress":
                    caps[i] = min(r.dlen, _bound(self.block)) if r.dlen else _bound(self.block)
                else:
                    caps[i] = r.dlen

            def done(job: Any, group: list[AcompReq] = group) -> None:
                remaining[0] -= 1
                out, sizes = job.out, job.sizes
                # Every request is finalized and the slot given back, whatever the copy-out
                # does (a bad destination must not strand the engine).
                engine.finish_batch(
                    group, lambda k, q: self._complete(q, out[k], int(sizes[k])),
                    last=remaining[0] == 0)

            self.dev.submit(op, src, lengths, caps, done)

    @staticmethod
    def _complete(r: AcompReq, row: Any, n: int) -> int:
        """Copy one request's output row out of the job: its status."""
        if n < 0:
            return n
        if r.dst is None:
            r.dst = sgl_alloc(n)
        e = r.dst.linear(n)  # one segment (None for an unset or too short first entry)
        if e is not None:
            e[:n] = row[:n].data
        elif sg_copy_from_buffer(r.dst, row[:n], n) != n:
            return _EINVAL  # cannot happen after _submit's checks: never a short success
        r.dlen = n
        return 0

    # -- the vectored API (acomp.crypto_acomp_batch_compress) -------------------------------

    def _batch(self, op: str, tfm: CryptoAcomp, src: Any, lengths: Any, caps: Any,
               done: Any) -> int:
        if src.shape[0] < self.break_even and self.fallback_on(tfm):
            # Below the break-even batch: the fallback's own vectored entry, else item by
            # item (each request of this tfm then goes to the fallback too).
            assert tfm.fb is not None
            fb_batch = getattr(tfm.fb.alg, f"batch_{op}", None)
            if fb_batch is None:
                return -errno.EOPNOTSUPP
            ret: int = fb_batch(tfm.fb, src, lengths, caps, done)
            return ret
        slot_in = self.block if op == "compress" else _bound(self.block)
        if src.shape[1] > slot_in or (op == "decompress" and int(caps.max()) > self.block):
            return -errno.EOPNOTSUPP  # the caller serves other shapes item by item
        # One job for the whole array: the device splits it into launches that flow through
        # its slots pipelined, writes every launch's rows straight into the result arrays (no
        # concatenation, no padding copy: strided and narrower rows are staged as they are),
        # and clamps compress capacities to the LZ4 bound, so a caller's generous capacity
        # does not make the output rows wider than a block can be.
        # Zero copy: src rows of a batch_buffer upload in place; the results are a view of a
        # pinned buffer the device downloads into, lent to the BatchResult (lease).
        def on_done(job: Any) -> None:
            done(BatchResult(job.out, job.sizes, int(job.kernel_ns), lease=job.lease))

        self.dev.submit(op, src, lengths, caps, on_done, lease=True)
        return -errno.EINPROGRESS

    # -- packed results: compaction on the device ------------------------------------------

    def batch_compress_packed(self, tfm: CryptoAcomp, src: Any, lengths: Any, caps: Any,
                              done: Any) -> int:
        """Compress into packed output: the device scans the sizes and gathers the blocks,
        and the download carries the compressed bytes only, into pinned memory lent to the
        result (`BatchResult.lease`; an ordinary array past the zero-copy bound)."""
        n = src.shape[0]
        if src.shape[1] > self.block or (n < self.break_even and self.fallback_on(tfm)):
            return -errno.EOPNOTSUPP  # the caller compresses and packs on the host

        def on_done(job: Any) -> None:  # the blocks are a view of a leased pinned buffer
            done(BatchResult(np.zeros((n, 0), np.uint8), job.sizes, int(job.kernel_ns),
                             packed=job.packed if job.packed is not None
                             else np.zeros(0, np.uint8), offsets=job.offsets,
                             lease=job.lease))

        self.dev.submit("compress", src, lengths, caps, on_done, packed=True, lease=True)
        return -errno.EINPROGRESS

    def batch_decompress_packed(self, tfm: CryptoAcomp, packed: Any, offsets: Any,
                                lengths: Any, caps: Any, done: Any) -> int:
        """Decompress packed blocks: the upload carries them as they are (from the leased
        result's pinned memory in place), a scatter kernel puts each in its row on the device;
        the results are leased as `batch_decompress`'s."""
        n = len(offsets)
        if int(caps.max()) > self.block or (n < self.break_even and self.fallback_on(tfm)):
            return -errno.EOPNOTSUPP

        def on_done(job: Any) -> None:
            done(BatchResult(job.out, job.sizes, int(job.kernel_ns), lease=job.lease))

        self.dev.submit("decompress", packed, lengths, caps, on_done, offsets=offsets,
                        lease=True)
        return -errno.EINPROGRESS

    def batch_buffer(self, tfm: CryptoAcomp, n: int, width: int) -> Any:
        """`acomp.batch_buffer`: pinned rows the device uploads in place (None past the
        zero-copy bound, or for rows wider than a device input: an ordinary array then)."""
        if width > _bound(self.block):
            return None
        try:
            return self.dev.batch_buffer(n, width)
        except MemoryError:
            log.info("lz4-opencl: zero-copy pool full, an ordinary array instead")
            return None

    def batch_compress(self, tfm: CryptoAcomp, src: Any, lengths: Any, caps: Any,
                       done: Any) -> int:
        return self._batch("compress", tfm, src, lengths, caps, done)

    def batch_decompress(self, tfm: CryptoAcomp, src: Any, lengths: Any, caps: Any,
                         done: Any) -> int:
        return self._batch("decompress", tfm, src, lengths, caps, done)

    def shutdown(self) -> None:
        self.engine.exit()
        self.dev.close()


def _init(mod: CryptoModule) -> int:
    if os.environ.get("ACOMP_OPENCL", "1") == "0":
        mod.reason = "disabled by ACOMP_OPENCL=0"
        return -errno.ENODEV
    try:
        from . import device
    except ImportError as e:
        mod.reason = f"pyopencl is not installed ({e})"
        return -errno.ENOENT
    try:
        cl_dev = device.choose_device(os.environ.get(device.ENV_DEVICE))
    except Exception as e:  # no platform, no device, a broken ICD
        mod.reason = f"no OpenCL device: {e}"
        return -errno.ENODEV
    try:
        mb = os.environ.get(ENV_PINNED_MB)
        limit = int(mb) << 20 if mb else device.PINNED_LIMIT
        lease_mb = os.environ.get(ENV_LEASE_MB)
        lease = int(lease_mb) << 20 if lease_mb else device.LEASE_LIMIT
        slots = int(os.environ.get(ENV_SLOTS) or device.SLOTS)
        dev = device.Lz4Device(cl_dev, page_size=PAGE_SIZE, pinned_limit=limit,
                               lease_limit=lease, slots=slots)
    except Exception as e:
        mod.reason = f"OpenCL set-up failed on {cl_dev.name}: {e}"
        return -errno.EIO
    batch = int(os.environ.get("ACOMP_OPENCL_BATCH", "4096"))
    info = dev.info
    prio, why = choose_priority(info.kind, os.environ.get(ENV_PRIORITY))
    alg = Lz4OpenCL(dev, batch_limit=max(1, batch), priority=prio, priority_reason=why)
    err = crypto_register_acomp(alg)
    if err:
        alg.shutdown()
        mod.reason = f"registering lz4-opencl failed: {err}"
        return err
    if prio == 0:
        # Equal to the CPU drivers: the newer registration wins a lookup of "lz4", so the
        # software lz4 (our fallback) registers after us where it is not loaded yet.
        request_module("lz4-scomp")
    mod.reason = f"{info.platform} / {info.device} ({info.kind}), priority {prio}"
    mod.data["alg"] = alg
    return 0


def _exit(mod: CryptoModule) -> None:
    alg = mod.data.pop("alg", None)
    if alg is not None:
        crypto_unregister_acomp(alg)
        alg.shutdown()


MODULE = CryptoModule(
    "lz4_opencl", ("lz4", "lz4-opencl", "opencl"), _init, _exit, hardware=True,
    description="LZ4 on an OpenCL device (GPU, or PoCL on a CPU)",
)


def set_fallback(tfm: CryptoAcomp, on: bool) -> None:
    """Switch an lz4-opencl transform's small-request fallback (see `Lz4OpenCL.set_fallback`)."""
    alg = tfm.alg
    if not isinstance(alg, Lz4OpenCL):
        raise ValueError(f"{tfm!r} is not an lz4-opencl transform")
    alg.set_fallback(tfm, on)


def loaded_alg() -> Lz4OpenCL | None:
    """The registered driver instance, when the module is loaded."""
    alg = MODULE.data.get("alg")
    return alg if isinstance(alg, Lz4OpenCL) else None
