"""The scomp wrapper of v6.15 and v6.16+: contexts on the algorithm's per-CPU streams.

Kernel counterpart: ``crypto/scompress.c`` of v6.15 (``scomp_alloc_streams``,
``crypto_scomp_init_tfm``, ``scomp_acomp_comp_decomp``, ``scomp_acomp_chain``,
``crypto_scomp_destroy``) and of v6.16+ ("crypto: scomp - Allocate per-cpu buffer on first use
of each CPU", "crypto: acomp - Move scomp stream allocation code into acomp", "crypto: scomp -
Drop the dst scratch buffer": ``scomp_lock_scratch``, ``scomp_scratch_workfn``,
``scomp_acomp_comp_decomp``), with ``include/crypto/internal/scompress.h`` (``alloc_ctx(void)``,
``free_ctx(ctx)``, the ``streams`` of ``struct scomp_alg``).

From v6.15 an scomp algorithm's contexts are no longer one per request: they live in the
algorithm (``alg.streams``, a `acomp.streams.CryptoAcompStreams`), one per CPU, shared by
every transform of the algorithm and freed when the algorithm is destroyed (unregistered).
``alloc_ctx()`` and ``free_ctx(ctx)`` take no transform. A transform's ``reqsize`` is 0 and a
request carries no scomp context.

- **v6.15**: the first transform allocates every CPU's context (``scomp_alloc_streams``) and the
  per-CPU scratch pair: a one-page source and a ``SCOMP_SCRATCH_SIZE`` (65400 bytes, from
  v6.15 a constant of scompress.c) destination. An operation takes the scratch lock
  (``spin_lock_bh``), then this CPU's stream lock. A source that is not one linear segment is
  copied to the source scratch; a destination that is not is written to the destination
  scratch (``dlen`` cut to its size) and copied out afterwards, failed or not, as the kernel's
  ``memcpy_to_sglist``. The transform walks request chains (``scomp_acomp_chain``).
- **v6.16+**: the streams are `acomp.streams`' (only the first CPU's context at first; a CPU
  without one borrows the first CPU's while a kworker makes its own), locked with
  `crypto_acomp_lock_stream_bh`. The destination scratch is gone: a destination whose first
  scatterlist entry cannot hold ``dlen`` bytes is ``-ENOSYS``. The source scratch is one page
  per CPU, the first CPU's made with the first transform, the others on first use
  (``scomp_scratch_work``; meanwhile the first CPU's, under its lock).

Both copy a non-linear source into a one-page scratch without checking its length: in the
kernel a longer one overruns the page. That is reported here as the memory corruption it is
(``BUG: KASAN: slab-out-of-bounds``, `acomp.sched`'s lock-debug report) and refused with
``-EINVAL`` instead of written. Beyond the kernel, as in v6.14's wrapper: a negative length, a
source shorter than ``slen`` and a read-only destination are ``-EINVAL``; ``dlen`` never
exceeds the bytes the destination has; an algorithm that claims more output than it was given
room for is ``-ENOSPC``.

Bound when a transform of those eras is made (`acomp.scompress` calls `init_tfm` /
`exit_tfm`); nothing compares versions per call.
"""

from __future__ import annotations

import errno
import threading
from functools import partial
from typing import TYPE_CHECKING, Any

from acomp import sched, scompress
from acomp._constants import CRYPTO_ACOMP_REQ_DST_VIRT, PAGE_SIZE
from acomp.algapi import CryptoAlg, ScompAlg, crypto_alg_sem
from acomp.scatterlist import sg_copy_from_buffer, sg_copy_to_buffer
from acomp.streams import (
    CryptoAcompStream,
    CryptoAcompStreams,
    WorkStruct,
    crypto_acomp_alloc_streams,
    crypto_acomp_free_streams,
    crypto_acomp_lock_stream_bh,
    crypto_acomp_unlock_stream_bh,
)

if TYPE_CHECKING:
    from acomp.acompress import AcompReq, CryptoAcomp

__all__ = (
    "SCOMP_SCRATCH_SIZE_V6_15",
    "crypto_scomp_destroy",
    "exit_tfm",
    "init_tfm",
    "scomp_acomp_chain",
    "scomp_streams",
    "scratch_state",
)

_EINVAL = -errno.EINVAL
_ENOSPC = -errno.ENOSPC
_ENOSYS = -errno.ENOSYS
_V6_15 = (6, 15)

#: v6.15's ``SCOMP_SCRATCH_SIZE`` (moved into scompress.c): the destination scratch.
SCOMP_SCRATCH_SIZE_V6_15 = 65400

# The kernel's scomp_lock (a mutex around the first and last user).
_scomp_lock = threading.Lock()


def scomp_streams(alg: CryptoAlg) -> CryptoAcompStreams:
    """``alg->streams`` of an scomp algorithm: its per-CPU streams (made empty on first use),
    with its ``alloc_ctx()`` and ``free_ctx(ctx)``."""
    s: CryptoAcompStreams | None = alg.__dict__.get("streams")
    if s is None:
        a: Any = alg
        s = CryptoAcompStreams(a.alloc_ctx, lambda ctx: a.free_ctx(ctx))
        a.streams = s
    return s


def _report_overrun(slen: int) -> int:
    sched._bug("lock", f"BUG: KASAN: slab-out-of-bounds in memcpy_from_sglist: a {slen}-byte "
               f"source copied into scomp's {PAGE_SIZE}-byte scratch page "
               "(scomp_acomp_comp_decomp)")
    return _EINVAL


def _finish(req: AcompReq, ret: int, dlen: int) -> int:
    if ret < 0:
        req.reason = scompress.scomp_take_reason()
        return ret
    if ret > dlen:  # an algorithm that claims more than its room (beyond the kernel)
        req.reason = _ENOSPC
        return _ENOSPC
    req.dlen = ret
    return 0


def _src_linear(req: AcompReq, slen: int) -> memoryview | None:
    """The source in place when its first entry holds ``slen`` bytes (or it is virtual)."""
    src = req.src
    assert src is not None
    e = src._entries[0] if src._entries else None
    if e is not None and len(e) >= slen:
        return e if len(e) == slen else e[:slen]
    return None


# --------------------------------------------------------------------------------------------
# v6.15


class _Scratch615:
    __slots__ = ("dst", "lock", "src")

    def __init__(self, cpu: int) -> None:
        self.lock = sched.SpinLock("scomp_scratch.lock")
        self.src = memoryview(bytearray(PAGE_SIZE))  # alloc_pages_node(node, GFP_KERNEL, 0)
        self.dst = memoryview(bytearray(SCOMP_SCRATCH_SIZE_V6_15))  # vmalloc_node


_scratch615: sched.PerCpu[_Scratch615] = sched.PerCpu(_Scratch615)
_users615 = 0


def _alloc_streams_v6_15(s: CryptoAcompStreams) -> int:
    """v6.15 ``scomp_alloc_streams``: every possible CPU's context now; a failure frees those
    made and is the allocation's errno."""
    streams: sched.PerCpu[CryptoAcompStream] = sched.PerCpu(CryptoAcompStream)
    s.streams = streams
    for cpu in range(sched.nr_cpu_ids()):
        try:
            ctx = s.alloc_ctx()
        except MemoryError:
            crypto_acomp_free_streams(s)  # scomp_free_streams
            return -errno.ENOMEM
        streams.per_cpu(cpu).set(ctx)
    return 0


def _comp_decomp_v6_15(compress: bool, req: AcompReq) -> int:
    """v6.15 ``scomp_acomp_comp_decomp``."""
    src, dst, slen, dlen = req.src, req.dst, req.slen, req.dlen
    if src is None or slen <= 0:
        return _EINVAL
    if dst is None or dlen <= 0:
        return _EINVAL
    if slen > src.length or not dst.writable:
        return _EINVAL  # beyond the kernel: never read or write past what the caller gave
    tfm = req.tfm
    alg = tfm.alg
    srcv = _src_linear(req, slen)
    d = dst._entries[0] if dst._entries else None
    direct = d is not None and len(d) >= dlen
    if direct:
        assert d is not None
        out = d if len(d) == dlen else d[:dlen]
    else:
        dlen = min(dlen, SCOMP_SCRATCH_SIZE_V6_15, dst.length)
        if not dlen:  # a destination with no room (beyond the kernel, as v6.14's wrapper)
            return _EINVAL
    if srcv is None and slen > PAGE_SIZE:
        return _report_overrun(slen)
    scratch = _scratch615.this_cpu()
    sched.preempt_disable()  # spin_lock_bh(&scratch->lock)
    scratch.lock.lock()
    try:
        if srcv is None:
            sg_copy_to_buffer(src, scratch.src, slen)  # memcpy_from_sglist
            srcv = scratch.src[:slen]
        if not direct:
            out = scratch.dst[:dlen]
        streams = scomp_streams(alg).streams
        assert streams is not None
        stream = streams.this_cpu()  # raw_cpu_ptr(alg->stream)
        stream.lock.lock()
        try:
            op = alg.compress if compress else alg.decompress  # type: ignore[attr-defined]
            ret: int = op(tfm, srcv, out, stream.ctx)
            if not direct:  # memcpy_to_sglist(req->dst, 0, dst, dlen): failed or not
                sg_copy_from_buffer(dst, out, ret if 0 <= ret <= dlen else dlen)
        finally:
            stream.lock.unlock()
    finally:
        scratch.lock.unlock()
        sched.preempt_enable()
    req.dlen = dlen
    return _finish(req, ret, dlen)


def _chained_one(compress: bool, req: AcompReq) -> int:
    """One request of a v6.15 chain; a request freed or in flight is reported, not run."""
    if req.freed or req.in_flight:  # list corruption or a use-after-free in the kernel
        sched._bug("lock", f"BUG: chained acomp request {req!r} is "
                   f"{'freed' if req.freed else 'in flight'}")
        return _EINVAL
    return _comp_decomp_v6_15(compress, req)


def scomp_acomp_chain(compress: bool, req: AcompReq) -> int:
    """v6.15 ``scomp_acomp_chain``: the head, then each chained request, synchronously; each
    status in the request's ``err``; returns the head's."""
    chain = req.chain
    if not chain:
        return _comp_decomp_v6_15(compress, req)
    err = req.err = _comp_decomp_v6_15(compress, req)
    for r2 in chain:
        r2.err = _chained_one(compress, r2)
    return err


# --------------------------------------------------------------------------------------------
# v6.16+


class _Scratch616:
    __slots__ = ("lock", "src")

    def __init__(self, cpu: int) -> None:
        self.lock = sched.SpinLock("scomp_scratch.lock")
        self.src: memoryview | None = None  # one page, made on first use of the CPU


def _scratch_workfn() -> None:
    """``scomp_scratch_workfn``: a page for each CPU in ``scomp_scratch_want``."""
    for cpu in sorted(_scratch_want):
        scratch = _scratch616.per_cpu(cpu)
        if scratch.src is not None:
            continue
        page = memoryview(bytearray(PAGE_SIZE))  # alloc_pages_node(node, GFP_KERNEL, 0)
        sched.preempt_disable()  # spin_lock_bh
        scratch.lock.lock()
        scratch.src = page
        scratch.lock.unlock()
        sched.preempt_enable()
        _scratch_want.discard(cpu)


_scratch616: sched.PerCpu[_Scratch616] = sched.PerCpu(_Scratch616)
_scratch_want: set[int] = set()
_scratch_work = WorkStruct(_scratch_workfn)
_users616 = 0


def _lock_scratch() -> _Scratch616:
    """``scomp_lock_scratch``: this CPU's scratch, or (asking for it) the first CPU's."""
    cpu = sched.smp_processor_id()
    scratch = _scratch616.per_cpu(cpu)
    scratch.lock.lock(1)
    if scratch.src is not None:
        return scratch
    scratch.lock.unlock()
    _scratch_want.add(cpu)
    _scratch_work.schedule()
    scratch = _scratch616.per_cpu(0)
    scratch.lock.lock(1)
    return scratch


def _comp_decomp_v6_16(compress: bool, req: AcompReq) -> int:
    """v6.16+ ``scomp_acomp_comp_decomp``."""
    src, dst, slen, dlen = req.src, req.dst, req.slen, req.dlen
    if src is None or slen <= 0:
        return _EINVAL
    if dst is None or dlen <= 0:
        return _EINVAL
    d = dst._entries[0] if dst._entries else None
    if req.base_flags & CRYPTO_ACOMP_REQ_DST_VIRT and d is not None:
        dlen = min(dlen, len(d))  # req->dvirt: the kernel trusts dlen; never past the buffer
    if d is None or dlen > len(d):
        return _ENOSYS  # a destination it cannot map as one segment
    if slen > src.length or d.readonly:
        return _EINVAL  # beyond the kernel, as v6.14's wrapper
    out = d if len(d) == dlen else d[:dlen]
    srcv = _src_linear(req, slen)
    if srcv is None and slen > PAGE_SIZE:
        return _report_overrun(slen)
    tfm = req.tfm
    alg = tfm.alg
    op = alg.compress if compress else alg.decompress  # type: ignore[attr-defined]
    stream = crypto_acomp_lock_stream_bh(scomp_streams(alg))
    try:
        if srcv is None:
            scratch = _lock_scratch()
            try:
                assert scratch.src is not None
                sg_copy_to_buffer(src, scratch.src, slen)  # memcpy_from_sglist
                ret: int = op(tfm, scratch.src[:slen], out, stream.ctx)
            finally:
                scratch.lock.unlock()
        else:
            ret = op(tfm, srcv, out, stream.ctx)
    finally:
        crypto_acomp_unlock_stream_bh(stream)
    req.dlen = dlen
    return _finish(req, ret, dlen)


# --------------------------------------------------------------------------------------------
# Transforms and the algorithm


def _users_add(n: int) -> None:
    with scompress._users_lock:  # scomp_scratch_users counts every era's transforms here
        scompress._users += n


def init_tfm(tfm: CryptoAcomp) -> int:
    """``crypto_scomp_init_tfm`` and ``crypto_init_scomp_ops_async`` of v6.15 / v6.16+: the
    algorithm's streams and the scratch for the first user, the era's operations bound."""
    global _users615, _users616
    alg = tfm.alg
    assert isinstance(alg, ScompAlg)
    s = scomp_streams(alg)
    v6_15 = tfm.kernel == _V6_15
    with _scomp_lock:
        if v6_15:
            if s.streams is None or not s.contexts():
                err = _alloc_streams_v6_15(s)
                if err:
                    return err
            elif len(s.contexts()) < sched.nr_cpu_ids():
                _fill_streams(s)  # streams a v6.16 transform began: v6.15 makes them all
            _users615 += 1
        else:
            err = crypto_acomp_alloc_streams(s)
            if err:
                return err
            if not _users616:
                _scratch616.per_cpu(0).src = memoryview(bytearray(PAGE_SIZE))
            _users616 += 1
        _users_add(1)
    if v6_15:
        tfm.compress = partial(scomp_acomp_chain, True)
        tfm.decompress = partial(scomp_acomp_chain, False)
    else:
        tfm.compress = partial(_comp_decomp_v6_16, True)
        tfm.decompress = partial(_comp_decomp_v6_16, False)
    tfm._dst_free = lambda sgl: None
    tfm.reqsize = 0  # no per-request context any more
    with crypto_alg_sem:  # crypto_mod_get(calg) for the inner crypto_scomp tfm
        alg.cra_refcnt += 1
    return 0


def _fill_streams(s: CryptoAcompStreams) -> None:
    assert s.streams is not None
    for cpu in range(sched.nr_cpu_ids()):
        ps = s.streams.per_cpu(cpu)
        if not ps.made:
            try:
                ps.set(s.alloc_ctx())
            except MemoryError:
                return  # that CPU borrows the first CPU's context, as in v6.16
            s.stream_want.discard(cpu)


def exit_tfm(tfm: CryptoAcomp) -> None:
    """``crypto_exit_scomp_ops_async`` of v6.15 / v6.16+: the last user frees the scratch (the
    streams stay with the algorithm)."""
    global _users615, _users616
    with crypto_alg_sem:
        tfm.alg.cra_refcnt -= 1  # crypto_free_scomp(*ctx)
    if tfm.kernel == _V6_15:
        with _scomp_lock:
            _users615 -= 1
            if not _users615:
                _scratch615.clear()
            _users_add(-1)
        return
    _scratch_work.flush()  # flush_work(&scomp_scratch_work)
    with _scomp_lock:
        _users616 -= 1
        if not _users616:
            for _cpu, scratch in _scratch616.items():  # crypto_scomp_free_scratches
                scratch.src = None
        _users_add(-1)


def crypto_scomp_destroy(alg: CryptoAlg) -> None:
    """``crypto_scomp_destroy``: the algorithm is gone; its streams' contexts are freed."""
    s: CryptoAcompStreams | None = alg.__dict__.get("streams")
    if s is not None:
        crypto_acomp_free_streams(s)


def scratch_state() -> dict[str, Any]:
    """Beyond the kernel, for tests and tools: the v6.15 and v6.16+ scratch users, and the
    CPUs whose v6.16 source page exists or is wanted."""
    return {
        "users_v6_15": _users615,
        "users_v6_16": _users616,
        "pages_v6_16": [cpu for cpu, s in _scratch616.items() if s.src is not None],
        "want_v6_16": sorted(_scratch_want),
    }


# acomp.scompress binds a v6.15+ transform to these (the scomp type is one, its eras two).
scompress._era_ops = (init_tfm, exit_tfm, crypto_scomp_destroy)
