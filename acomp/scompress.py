"""The scomp wrapper: synchronous algorithms on linear buffers, served through acomp.

Kernel counterpart: ``crypto/scompress.c`` in v5.12 - v6.14 (``scomp_acomp_comp_decomp``,
``crypto_init_scomp_ops_async``, ``crypto_acomp_scomp_alloc_ctx``), with the v6.8
"fix req->dst buffer overflow" check.

Each CPU has a scratch pair of ``SCOMP_SCRATCH_SIZE`` bytes (src and dst) under a spin lock,
allocated with the first scomp transform and freed with the last. The operation runs with
that lock held, in atomic context. One difference from v6.14, taken from the newest scomp
(v6.16+): a source that is one contiguous segment is used in place instead of being copied to
scratch, and a destination that is one contiguous segment with room for ``dlen`` bytes is
written in place; other scatterlists go through the scratch buffers as in v6.14.

A transform of v6.15 or later is another wrapper, bound when it is made: `acomp.scomp_streams`
(contexts on the algorithm's per-CPU streams, no per-request context, v6.15's request chains,
v6.16's dropped dst scratch); this module's type hands such a transform to it.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from acomp import sched
from acomp._constants import CRYPTO_ALG_TYPE_SCOMPRESS, SCOMP_SCRATCH_SIZE
from acomp.algapi import CryptoType, ScompAlg, crypto_alg_sem, crypto_register_type
from acomp.scatterlist import sg_copy_from_buffer, sg_copy_to_buffer, sgl_alloc

if TYPE_CHECKING:
    from acomp.acompress import AcompReq, CryptoAcomp
    from acomp.algapi import CryptoAlg

__all__ = (
    "crypto_acomp_scomp_alloc_ctx",
    "crypto_acomp_scomp_free_ctx",
    "crypto_exit_scomp_ops_async",
    "crypto_init_scomp_ops_async",
    "crypto_scomp_type",
    "scomp_acomp_compress",
    "scomp_acomp_decompress",
    "scomp_set_reason",
    "scomp_take_reason",
    "scratch_users",
)

_EINVAL = -errno.EINVAL
_ENOSPC = -errno.ENOSPC
_V6_15 = (6, 15)


class _Scratch:
    __slots__ = ("dst", "lock", "src")

    def __init__(self, cpu: int) -> None:
        self.lock = sched.SpinLock("scomp_scratch.lock")
        self.src = memoryview(bytearray(SCOMP_SCRATCH_SIZE))
        self.dst = memoryview(bytearray(SCOMP_SCRATCH_SIZE))


_scratch: sched.PerCpu[_Scratch] = sched.PerCpu(_Scratch)
_users = 0
_users_lock = threading.Lock()


#: v6.15+ transforms' ``(init_tfm, exit_tfm, destroy)``, installed by `acomp.scomp_streams`
#: when it is imported (with `acomp`).
_era_ops: tuple[Callable[[CryptoAcomp], int], Callable[[CryptoAcomp], None],
                Callable[[CryptoAlg], None]] | None = None


def scratch_users() -> int:
    """How many scomp transforms hold the per-CPU scratch (``scomp_scratch_users``; the
    transforms of every era)."""
    return _users


def crypto_init_scomp_ops_async(tfm: CryptoAcomp) -> int:
    global _users
    if tfm.kernel >= _V6_15:  # contexts on the algorithm's streams (acomp.scomp_streams)
        assert _era_ops is not None, "acomp.scomp_streams is not imported"
        return _era_ops[0](tfm)
    with _users_lock:
        _users += 1
    tfm.compress = scomp_acomp_compress
    tfm.decompress = scomp_acomp_decompress
    tfm._dst_free = lambda sgl: None  # sgl_free: the garbage collector's
    tfm.reqsize = 0
    # crypto_mod_get(calg) for the inner crypto_scomp tfm: an acomp tfm on an scomp algorithm
    # holds two references (the lookup's and this one), as /proc/crypto's refcnt shows.
    with crypto_alg_sem:
        tfm.alg.cra_refcnt += 1
    return 0


def crypto_exit_scomp_ops_async(tfm: CryptoAcomp) -> None:
    global _users
    if tfm.kernel >= _V6_15:
        assert _era_ops is not None
        _era_ops[1](tfm)
        return
    with crypto_alg_sem:
        tfm.alg.cra_refcnt -= 1  # crypto_free_scomp(*ctx): crypto_mod_put(calg)
    with _users_lock:
        _users -= 1
        if _users == 0:
            _scratch.clear()  # the last user frees the scratch


def crypto_acomp_scomp_alloc_ctx(req: AcompReq) -> int:
    """A request's scomp context (v5.12 - v6.14); from v6.15 a request has none (reqsize 0:
    the contexts are the algorithm's streams), so this allocates nothing."""
    if req.tfm.kernel >= _V6_15:
        return 0
    alg = req.tfm.alg
    assert isinstance(alg, ScompAlg)
    try:
        req.scomp_ctx = alg.alloc_ctx(req.tfm)
    except MemoryError:
        return -errno.ENOMEM
    return 0


def crypto_acomp_scomp_free_ctx(req: AcompReq) -> None:
    ctx = req.scomp_ctx
    if ctx is None:  # if (ctx) crypto_scomp_free_ctx(...)
        return
    alg = req.tfm.alg
    assert isinstance(alg, ScompAlg)
    alg.free_ctx(req.tfm, ctx)
    req.scomp_ctx = None


def _crypto_scomp_destroy(alg: CryptoAlg) -> None:
    """``crypto_scomp_destroy`` (v6.15+): the algorithm's streams are freed with it."""
    if _era_ops is not None:
        _era_ops[2](alg)


#: ``crypto_scomp_type``: an scomp algorithm's transform goes through the wrapper below.
crypto_scomp_type = CryptoType(
    "scomp",
    CRYPTO_ALG_TYPE_SCOMPRESS,
    crypto_init_scomp_ops_async,
    crypto_exit_scomp_ops_async,
    init_request=crypto_acomp_scomp_alloc_ctx,
    exit_request=crypto_acomp_scomp_free_ctx,
    destroy=_crypto_scomp_destroy,
)
crypto_register_type(crypto_scomp_type)

_state = sched._state
_cpu = sched._cpu
_task_token = sched._task_token
_get_ident = threading.get_ident


_why = threading.local()


def scomp_set_reason(err: int) -> None:
    """For scomp drivers, beyond the kernel: say why the operation about to fail failed when
    its errno does not (the kernel's lz4, lz4hc, zstd and deflate return ``-EINVAL`` both for
    an output that does not fit and for a corrupt input). ``-ENOSPC``: the output did not
    fit. The wrapper records it as the request's ``reason``; the errno stays the kernel's."""
    _why.err = err


def scomp_take_reason() -> int:
    """The reason the last failing operation on this thread gave (cleared): for callers that
    run an scomp algorithm without a request (the vectored batch entry points)."""
    why: int = getattr(_why, "err", 0)
    _why.err = 0
    return why


def _comp_decomp(compress: bool, req: AcompReq) -> int:
    src = req.src
    slen = req.slen
    dlen = req.dlen
    # v6.14's checks; a negative length (an unsigned int in the kernel) is -EINVAL here.
    if src is None or slen <= 0 or slen > SCOMP_SCRATCH_SIZE or slen > src.length or dlen < 0:
        return _EINVAL
    dst = req.dst
    if dst is not None:
        if dlen > dst.length:  # never write past what the caller really gave
            dlen = dst.length
        if not dlen or not dst.writable:  # dst && !dlen (a zero-length dst included)
            return _EINVAL
    if not dlen or dlen > SCOMP_SCRATCH_SIZE:
        dlen = SCOMP_SCRATCH_SIZE
    req.dlen = dlen

    tfm = req.tfm
    alg = tfm.alg
    # One contiguous segment on each side is used in place (v6.16+); else the scratch.
    e = src._entries[0]
    srcv = (e if len(e) == slen else e[:slen]) if e is not None and len(e) >= slen else None
    d = dst._entries[0] if dst is not None else None
    out = (d if len(d) == dlen else d[:dlen]) if d is not None and len(d) >= dlen else None
    if srcv is not None and out is not None and not sched.checks:
        # Without the debug checks, the atomic section is not observed and the scratch the
        # lock guards is not used: the algorithm runs without it.
        ret: int = (alg.compress if compress else alg.decompress)(  # type: ignore[attr-defined]
            tfm, srcv, out, req.scomp_ctx)
        if ret < 0:
            return ret
        if ret > dlen:  # the v6.8 fix: never copy more than the caller's capacity
            return _ENOSPC
        req.dlen = ret
        return 0

    scratch = _scratch._items.get(_cpu.get()) or _scratch.this_cpu()
    # spin_lock(&scratch->lock), inlined: this is the hot path of every CPU compression.
    lock = scratch.lock
    tok: sched._TaskToken = _task_token.get() or sched._task()  # type: ignore[assignment]
    tid = _get_ident()
    if not lock._lock.acquire(False):
        lock._contended(tok)
    checks = sched.checks
    if checks:  # the debug checks' preemption count and held-lock record
        prev = _state.get()
        count, pwhere, held, irqs = prev
        _state.set((count + 1, pwhere if count else _WHERE, (*held, _HELD), irqs))
    lock.owner = tok
    lock.owner_tid = tid
    try:
        if srcv is None:
            sg_copy_to_buffer(src, scratch.src, slen)
            srcv = scratch.src[:slen]
        direct = out is not None  # one contiguous dst: written in place
        if out is None:
            out = scratch.dst[:dlen]
        if compress:
            ret = alg.compress(tfm, srcv, out, req.scomp_ctx)  # type: ignore[attr-defined]
        else:
            ret = alg.decompress(tfm, srcv, out, req.scomp_ctx)  # type: ignore[attr-defined]
        if ret < 0:
            req.reason = getattr(_why, "err", 0)
            _why.err = 0
            return ret
        if ret > dlen:  # the v6.8 fix: never copy more than the caller's capacity
            req.reason = _ENOSPC
            return _ENOSPC
        if not direct:
            if dst is None:
                dst = req.dst = sgl_alloc(ret)
            sg_copy_from_buffer(dst, out, ret)
        req.dlen = ret
        return 0
    finally:
        # spin_unlock, inlined; an unlock from elsewhere is still checked by SpinLock.unlock.
        if lock.owner is tok and lock.owner_tid == tid:
            lock.owner = None
            lock._lock.release()
            if checks:
                _state.set(prev)
        else:  # pragma: no cover - only a driver that unlocked our lock gets here
            lock.unlock()


# Where the scratch lock is taken, for the splat's "Preemption disabled at:" and lock list.
_WHERE: sched.Where = (_comp_decomp.__code__, 0)
_HELD = ("scomp_scratch.lock", _WHERE)


#: ``scomp_acomp_compress`` / ``scomp_acomp_decompress`` (partials: one Python frame less).
scomp_acomp_compress: Callable[[AcompReq], int] = partial(_comp_decomp, True)
scomp_acomp_decompress: Callable[[AcompReq], int] = partial(_comp_decomp, False)
