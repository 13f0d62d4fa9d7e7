"""The scomp wrapper: synchronous algorithms on linear buffers, served through acomp.

Kernel counterpart: ``crypto/scompress.c`` in v5.12 - v6.14 (``scomp_acomp_comp_decomp``,
``crypto_init_scomp_ops_async``, ``crypto_acomp_scomp_alloc_ctx``), with the v6.8
"fix req->dst buffer overflow" check.

Each CPU has a scratch pair of ``SCOMP_SCRATCH_SIZE`` bytes (src and dst) under a spin lock,
allocated with the first scomp transform and freed with the last. The operation runs with
that lock held, in atomic context. One difference from v6.14, taken from the newest scomp:
a source that is one contiguous segment is used in place instead of being copied to scratch.
"""

from __future__ import annotations

import errno
import threading
from typing import TYPE_CHECKING

from acomp import sched
from acomp._constants import SCOMP_SCRATCH_SIZE
from acomp.algapi import ScompAlg
from acomp.scatterlist import sg_copy_from_buffer, sg_copy_to_buffer, sgl_alloc

if TYPE_CHECKING:
    from acomp.acompress import AcompReq, CryptoAcomp

__all__ = (
    "crypto_acomp_scomp_alloc_ctx",
    "crypto_acomp_scomp_free_ctx",
    "crypto_init_scomp_ops_async",
    "scomp_acomp_compress",
    "scomp_acomp_decompress",
    "scratch_users",
)

_EINVAL = -errno.EINVAL
_ENOSPC = -errno.ENOSPC


class _Scratch:
    __slots__ = ("dst", "lock", "src")

    def __init__(self, cpu: int) -> None:
        self.lock = sched.SpinLock("scomp_scratch.lock")
        self.src = memoryview(bytearray(SCOMP_SCRATCH_SIZE))
        self.dst = memoryview(bytearray(SCOMP_SCRATCH_SIZE))


_scratch: sched.PerCpu[_Scratch] = sched.PerCpu(_Scratch)
_users = 0
_users_lock = threading.Lock()


def scratch_users() -> int:
    """How many scomp transforms hold the per-CPU scratch (``scomp_scratch_users``)."""
    return _users


def crypto_init_scomp_ops_async(tfm: CryptoAcomp) -> None:
    global _users
    with _users_lock:
        _users += 1
    tfm.compress = scomp_acomp_compress
    tfm.decompress = scomp_acomp_decompress
    tfm._dst_free = lambda sgl: None  # sgl_free: the garbage collector's
    tfm.reqsize = 0


def crypto_exit_scomp_ops_async(tfm: CryptoAcomp) -> None:
    global _users
    with _users_lock:
        _users -= 1
        if _users == 0:
            _scratch.clear()  # the last user frees the scratch


def crypto_acomp_scomp_alloc_ctx(req: AcompReq) -> int:
    alg = req.tfm.alg
    assert isinstance(alg, ScompAlg)
    try:
        req.scomp_ctx = alg.alloc_ctx(req.tfm)
    except MemoryError:
        return -errno.ENOMEM
    return 0


def crypto_acomp_scomp_free_ctx(req: AcompReq) -> None:
    alg = req.tfm.alg
    assert isinstance(alg, ScompAlg)
    alg.free_ctx(req.tfm, req.scomp_ctx)
    req.scomp_ctx = None


def _comp_decomp(req: AcompReq, compress: bool) -> int:
    src = req.src
    slen = req.slen
    if src is None or not slen or slen > SCOMP_SCRATCH_SIZE or slen > src.length:
        return _EINVAL
    dst = req.dst
    if dst is not None:
        if not req.dlen:
            return _EINVAL
        if not dst.writable:
            return _EINVAL
        if req.dlen > dst.length:  # never write past what the caller really gave
            req.dlen = dst.length
    if not req.dlen or req.dlen > SCOMP_SCRATCH_SIZE:
        req.dlen = SCOMP_SCRATCH_SIZE
    dlen = req.dlen

    alg = req.tfm.alg
    scratch = _scratch.this_cpu()
    lock = scratch.lock
    lock.lock()
    try:
        srcv = src.linear(slen)
        if srcv is None:
            sg_copy_to_buffer(src, scratch.src, slen)
            srcv = scratch.src[:slen]
        out = scratch.dst[:dlen]
        if compress:
            ret = alg.compress(req.tfm, srcv, out, req.scomp_ctx)  # type: ignore[attr-defined]
        else:
            ret = alg.decompress(req.tfm, srcv, out, req.scomp_ctx)  # type: ignore[attr-defined]
        if ret < 0:
            return int(ret)
        if ret > dlen:  # the v6.8 fix: never copy more than the caller's capacity
            return _ENOSPC
        if dst is None:
            dst = req.dst = sgl_alloc(ret)
            dst[0][:] = out[:ret]
        else:
            e = dst[0]
            if len(e) >= ret:
                e[:ret] = out[:ret]
            else:
                sg_copy_from_buffer(dst, out, ret)
        req.dlen = ret
        return 0
    finally:
        lock.unlock()


def scomp_acomp_compress(req: AcompReq) -> int:
    return _comp_decomp(req, True)


def scomp_acomp_decompress(req: AcompReq) -> int:
    return _comp_decomp(req, False)
