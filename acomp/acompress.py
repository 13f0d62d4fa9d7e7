"""The acomp user API: transforms, requests and the compress/decompress calls.

Kernel counterpart: ``include/crypto/acompress.h`` and ``crypto/acompress.c`` (v5.12 - v6.14:
scatterlists, ``CRYPTO_ACOMP_ALLOC_OUTPUT`` for a NULL dst, a per-request scomp context; the
v6.15 and v6.16+ submissions, each its own code, bound when a transform is allocated in that
era: v6.15's request chaining, v6.16's ``CRYPTO_ALG_REQ_VIRT`` and on-stack requests).

A transform (`CryptoAcomp`) is bound at allocation by its algorithm's type (`CryptoType`): to
the algorithm's own ``compress`` for an acomp algorithm (the type registered here), to the scomp
wrapper for an scomp one (registered by `acomp.scompress`), so nothing after allocation asks
whether it is synchronous. A request (`AcompReq`) carries one operation.
"""

from __future__ import annotations

import errno
import operator
from collections.abc import Callable
from typing import Any

from acomp import sched
from acomp._constants import (
    CRYPTO_ACOMP_ALLOC_OUTPUT,
    CRYPTO_ACOMP_REQ_DST_NONDMA,
    CRYPTO_ACOMP_REQ_DST_VIRT,
    CRYPTO_ACOMP_REQ_PRIVATE,
    CRYPTO_ACOMP_REQ_SRC_NONDMA,
    CRYPTO_ACOMP_REQ_SRC_VIRT,
    CRYPTO_ALG_ASYNC,
    CRYPTO_ALG_REQ_CHAIN,
    CRYPTO_ALG_REQ_VIRT,
    CRYPTO_ALG_TYPE_ACOMPRESS,
    CRYPTO_ALG_TYPE_ACOMPRESS_MASK,
    CRYPTO_ALG_TYPE_MASK,
    CRYPTO_TFM_REQ_MAY_BACKLOG,
)
from acomp._errors import CryptoError, UnsupportedKernel
from acomp.algapi import (
    AcompAlg,
    CryptoAlg,
    CryptoType,
    crypto_alg_mod_lookup,
    crypto_alg_sem,
    crypto_register_type,
    crypto_type_of,
)
from acomp.eras import Kernel, is_proposed, kernel, parse_kernel
from acomp.scatterlist import Scatterlist, sg_init_one

__all__ = (
    "ACOMP_FBREQ_ON_STACK",
    "ACOMP_REQUEST_CLONE",
    "ACOMP_REQUEST_ON_STACK",
    "AcompReq",
    "CryptoAcomp",
    "acomp_is_async",
    "acomp_request_alloc",
    "acomp_request_chain",
    "acomp_request_chained",
    "acomp_request_complete",
    "acomp_request_free",
    "acomp_request_set_callback",
    "acomp_request_set_dst_dma",
    "acomp_request_set_dst_folio",
    "acomp_request_set_dst_nondma",
    "acomp_request_set_dst_sg",
    "acomp_request_set_params",
    "acomp_request_set_src_dma",
    "acomp_request_set_src_folio",
    "acomp_request_set_src_nondma",
    "acomp_request_set_src_sg",
    "crypto_acomp_compress",
    "crypto_acomp_decompress",
    "crypto_acomp_driver_name",
    "crypto_acomp_name",
    "crypto_acomp_reqtfm",
    "crypto_alloc_acomp",
    "crypto_alloc_acomp_node",
    "crypto_free_acomp",
    "crypto_has_acomp",
)

_EINPROGRESS = -errno.EINPROGRESS
_EBUSY = -errno.EBUSY
_EINVAL = -errno.EINVAL
_MAY_BACKLOG = CRYPTO_TFM_REQ_MAY_BACKLOG
_NOT_PRIVATE = ~CRYPTO_ACOMP_REQ_PRIVATE  # masks of every request, computed once
_NOT_ALLOC_OUTPUT = ~CRYPTO_ACOMP_ALLOC_OUTPUT

Complete = Callable[[Any, int], None]


class CryptoAcomp:
    """``struct crypto_acomp``: one user's handle on an algorithm, bound at allocation."""

    __slots__ = ("__weakref__", "_core_fb", "_dst_free", "alg", "compress", "decompress",
                 "fb", "freed", "kernel", "reqsize")

    def __init__(self, alg: CryptoAlg) -> None:
        self.alg = alg
        #: The kernel (`acomp.kernel()`) whose acomp API this transform follows, fixed at
        #: allocation: its era's submission path is bound then, never compared per call.
        self.kernel: Kernel = parse_kernel(kernel())
        #: The v6.15+ fallback the core allocated (freed with the transform).
        self._core_fb: CryptoAcomp | None = None
        #: A synchronous fallback transform a device driver may keep (the newest kernel's fb).
        self.fb: CryptoAcomp | None = None
        self.freed = False
        self.reqsize = 0
        self.compress: Callable[[AcompReq], int]
        self.decompress: Callable[[AcompReq], int]
        self._dst_free: Callable[[Scatterlist], None] = lambda sgl: None

    def __repr__(self) -> str:
        # Live state: what a user debugging a leak or a wrong pick wants to see.
        a = self.alg
        mode = "async" if a.cra_flags & CRYPTO_ALG_ASYNC else "sync"
        return (f"<CryptoAcomp {a.cra_name!r} driver={a.cra_driver_name!r} "
                f"prio={a.cra_priority} {mode}" + (", freed>" if self.freed else ">"))


def _no_op(data: Any, err: int) -> None:
    pass


class AcompReq:
    """``struct acomp_req``: one operation (src, dst, slen, dlen, flags, callback).

    ``dlen`` is the output capacity going in and the bytes produced coming out. ``ctx`` is the
    driver's per-request context (``reqsize`` bytes), ``scomp_ctx`` the scomp context,
    ``reason`` (beyond the kernel) why a failed operation failed where its errno is ambiguous.
    """

    __slots__ = (
        "base_flags",
        "chain",
        "complete",
        "ctx",
        "data",
        "dlen",
        "dst",
        "err",
        "flags",
        "freed",
        "in_flight",
        "on_stack",
        "reason",
        "scomp_ctx",
        "slen",
        "src",
        "tfm",
        "unit_size",
        "user",
    )

    def __init__(self, tfm: CryptoAcomp) -> None:
        self.tfm = tfm
        self.src: Scatterlist | None = None
        self.dst: Scatterlist | None = None
        self.slen = 0
        self.dlen = 0
        self.flags = 0
        self.base_flags = 0
        self.complete: Complete = _no_op
        self.data: Any = None
        self.ctx: Any = bytearray(tfm.reqsize) if tfm.reqsize else None
        self.scomp_ctx: Any = None
        self.in_flight = False
        self.freed = False
        #: Beyond the kernel: why the last operation failed when its errno does not say
        #: (``-ENOSPC``: the output did not fit, under the kernel's ``-EINVAL``); 0 if unknown.
        self.reason = 0
        #: v6.16 ``ACOMP_REQUEST_ON_STACK``: no context; an async tfm refuses it (-EAGAIN).
        self.on_stack = False
        #: v6.15 only: the requests chained after this head (``req->base.list``), in order;
        #: None when nothing is chained (`acomp_request_chain`).
        self.chain: list[AcompReq] | None = None
        #: v6.15 only: ``req->base.err``, this request's status once its chain ran
        #: (``-EINPROGRESS`` from `acomp_request_set_callback` or `acomp_request_chain` until then).
        self.err = _EINPROGRESS
        #: "proposed" only (`acomp.segment`): ``req->unit_size``, the segment size of a
        #: segmented compression; 0 (none) from `acomp_request_set_callback`.
        self.unit_size = 0
        self.user: Any = None  # free for the submitter's own bookkeeping

    def __repr__(self) -> str:
        return (
            f"<AcompReq {self.tfm.alg.cra_driver_name} slen={self.slen} dlen={self.dlen} "
            f"flags={self.base_flags:#x}{' in-flight' if self.in_flight else ''}>"
        )


# --------------------------------------------------------------------------------------------
# Transforms


def _crypto_acomp_init_tfm(tfm: CryptoAcomp) -> int:
    alg = tfm.alg
    assert isinstance(alg, AcompAlg)
    tfm.compress = alg.compress
    tfm.decompress = alg.decompress
    tfm._dst_free = alg.dst_free
    if tfm.kernel >= _V6_16:  # v6.16: the request size is the algorithm's cra_reqsize
        tfm.reqsize = alg.cra_reqsize
    return alg.init(tfm)


def _crypto_acomp_exit_tfm(tfm: CryptoAcomp) -> None:
    alg = tfm.alg
    assert isinstance(alg, AcompAlg)
    alg.exit(tfm)


#: ``crypto_acomp_type``: an acomp algorithm's transform calls the algorithm itself.
crypto_acomp_type = CryptoType(
    "acomp",
    CRYPTO_ALG_TYPE_ACOMPRESS,
    _crypto_acomp_init_tfm,
    _crypto_acomp_exit_tfm,
    extsize=lambda alg: alg.reqsize if isinstance(alg, AcompAlg) else 0,
)
crypto_register_type(crypto_acomp_type)


def _create_tfm(alg: CryptoAlg) -> CryptoAcomp:
    ctype = crypto_type_of(alg)
    tfm = CryptoAcomp(alg)
    with crypto_alg_sem:
        alg.cra_refcnt += 1
    try:
        tfm.reqsize = ctype.extsize(alg)
        if tfm.kernel >= _V6_15 and alg.cra_flags & CRYPTO_ALG_ASYNC:
            # v6.15+ crypto_acomp_init_tfm: an async tfm gets a synchronous fallback (the
            # kernel fails the allocation when there is none).
            tfm.fb = tfm._core_fb = crypto_alloc_acomp(alg.cra_name, 0, CRYPTO_ALG_ASYNC)
        err = ctype.init_tfm(tfm)
        if err:
            raise CryptoError(err, f"{alg.cra_driver_name}: init")
    except BaseException:
        crypto_free_acomp(tfm._core_fb)
        with crypto_alg_sem:
            alg.cra_refcnt -= 1
        raise
    if tfm.kernel >= _V6_15:
        _bind_v6_15(tfm)
    return tfm


def crypto_alloc_acomp(alg_name: str, type: int = 0, mask: int = 0) -> CryptoAcomp:
    """Allocate a transform for `alg_name` (a cra_name or a driver name).

    Raises `acomp.CryptoError` with ``-ENOENT`` when nothing matches (after loading driver
    modules on demand) and ``-ELIBBAD`` when the only matches failed their self-test.
    """
    type = (type & ~CRYPTO_ALG_TYPE_MASK) | CRYPTO_ALG_TYPE_ACOMPRESS
    mask |= CRYPTO_ALG_TYPE_ACOMPRESS_MASK
    alg = crypto_alg_mod_lookup(alg_name, type, mask)
    return _create_tfm(alg)


def crypto_alloc_acomp_node(
    alg_name: str, type: int = 0, mask: int = 0, node: int = -1
) -> CryptoAcomp:
    """NUMA variant (v5.11); one node here."""
    return crypto_alloc_acomp(alg_name, type, mask)


def _alloc_for_alg(alg: CryptoAlg) -> CryptoAcomp:
    """A tfm bound to this very algorithm, tested or not (the crypto manager's own use)."""
    return _create_tfm(alg)


def crypto_free_acomp(tfm: CryptoAcomp | None) -> None:
    """Free a transform (None is allowed, as the kernel's NULL)."""
    if tfm is None or tfm.freed:
        return
    tfm.freed = True
    # Its requests now reach a report (use-after-free), not the algorithm: no cost on the
    # request path.
    tfm.compress = tfm.decompress = _freed_tfm_op
    alg = tfm.alg
    crypto_type_of(alg).exit_tfm(tfm)
    if tfm._core_fb is not None:
        crypto_free_acomp(tfm._core_fb)  # a driver that replaced or freed tfm.fb: ours too
        tfm._core_fb = None
        tfm.fb = None
    with crypto_alg_sem:
        alg.cra_refcnt -= 1


def crypto_has_acomp(alg_name: str, type: int = 0, mask: int = 0) -> bool:
    """Whether a tested acomp/scomp algorithm named `alg_name` exists (loading modules)."""
    type = (type & ~CRYPTO_ALG_TYPE_MASK) | CRYPTO_ALG_TYPE_ACOMPRESS
    mask |= CRYPTO_ALG_TYPE_ACOMPRESS_MASK
    try:
        crypto_alg_mod_lookup(alg_name, type, mask)
    except CryptoError:
        return False
    return True


def acomp_is_async(tfm: CryptoAcomp) -> bool:
    """Whether `tfm`'s driver completes asynchronously (``CRYPTO_ALG_ASYNC``)."""
    return bool(tfm.alg.cra_flags & CRYPTO_ALG_ASYNC)


def crypto_acomp_driver_name(tfm: CryptoAcomp) -> str:
    """The driver name of `tfm`'s algorithm (``lz4-scomp``)."""
    return tfm.alg.cra_driver_name


def crypto_acomp_name(tfm: CryptoAcomp) -> str:
    """The algorithm name of `tfm` (``lz4``)."""
    return tfm.alg.cra_name


def crypto_acomp_reqtfm(req: AcompReq) -> CryptoAcomp:
    """The transform `req` was allocated for."""
    return req.tfm


# --------------------------------------------------------------------------------------------
# Requests


def acomp_request_alloc(tfm: CryptoAcomp) -> AcompReq | None:
    """A request for `tfm`; None when the per-request context cannot be allocated."""
    if tfm.freed:
        sched._bug("lock", f"BUG: KASAN: use-after-free: acomp_request_alloc on freed {tfm!r}")
        return None
    req = AcompReq(tfm)
    if crypto_type_of(tfm.alg).init_request(req) != 0:
        return None
    return req


def acomp_request_free(req: AcompReq | None) -> None:
    """Free a request: its scomp context and, with ``ALLOC_OUTPUT``, the dst allocated for it.

    Freeing a request a driver still owns (queued or on the device) is the kernel's
    use-after-free: it is reported and the request is left alone.
    """
    if req is None:
        return
    if req.freed:
        sched._bug("lock", f"BUG: double free of acomp request {req!r}")
        return
    if req.in_flight:
        sched._bug("lock", f"BUG: acomp request freed while in flight: {req!r}")
        return
    req.freed = True
    crypto_type_of(req.tfm.alg).exit_request(req)
    if req.flags & CRYPTO_ACOMP_ALLOC_OUTPUT and req.dst is not None:
        req.tfm._dst_free(req.dst)
        req.dst = None


def acomp_request_set_params(
    req: AcompReq,
    src: Scatterlist | None,
    dst: Scatterlist | None,
    slen: int,
    dlen: int,
) -> None:
    """Set source, destination and lengths; ``dst=None`` asks for allocated output.

    A length that is not an integer is stored as -1: the submission returns ``-EINVAL``.
    Changing a request in flight (or a freed one) is reported and leaves it alone.
    """
    if req.in_flight or req.freed:
        _misuse(req, "acomp_request_set_params")
        return
    if type(slen) is not int or type(dlen) is not int:
        slen, dlen = _length(slen), _length(dlen)
    req.src = src
    req.dst = dst
    req.slen = slen
    req.dlen = dlen
    req.reason = 0
    req.base_flags &= _NOT_PRIVATE  # scatterlists on both sides
    if dst is None:
        req.flags |= CRYPTO_ACOMP_ALLOC_OUTPUT
    else:
        req.flags &= _NOT_ALLOC_OUTPUT


def _length(n: Any) -> int:
    """A length as an int (numpy integers included); anything else becomes -1, which every
    driver refuses with ``-EINVAL`` at submission (beyond the kernel, whose lengths are
    ``unsigned int``)."""
    try:
        return operator.index(n)
    except TypeError:
        return -1


def acomp_request_set_callback(
    req: AcompReq, flags: int, complete: Complete | None, data: Any
) -> None:
    """Set the completion callback, its data and the request flags (MAY_BACKLOG, MAY_SLEEP)."""
    if req.in_flight or req.freed:
        _misuse(req, "acomp_request_set_callback")
        return
    req.complete = complete if complete is not None else _no_op
    req.data = data
    # v6.15 crypto_reqchain_init: the request heads an empty chain (unused in other eras).
    req.chain = None
    req.err = _EINPROGRESS
    req.unit_size = 0  # the proposed segmentation: set it after the callback (acomp.segment)
    # v6.15+: the private VIRT/NONDMA bits stay (none are set before 6.15).
    req.base_flags = (req.base_flags & CRYPTO_ACOMP_REQ_PRIVATE) | (
        flags & ~CRYPTO_ACOMP_REQ_PRIVATE)


def acomp_request_complete(req: AcompReq, err: int) -> None:
    """For drivers: report the request's final status (or ``-EINPROGRESS``, the backlog notice)."""
    if err != _EINPROGRESS:
        req.in_flight = False
    req.complete(req.data, err)


def _misuse(req: AcompReq, what: str) -> int:
    """Report a request the caller may not submit or change now: ``-EINVAL`` when reporting
    does not raise (the request is left alone; beyond the kernel, where this is memory
    corruption, a second list_add of a queued request or a use-after-free that KASAN
    reports)."""
    if req.freed:
        sched._bug("lock", f"BUG: KASAN: use-after-free: {what} of freed acomp request {req!r}")
    elif req.tfm.freed:
        sched._bug("lock", f"BUG: KASAN: use-after-free: {what} of {req!r} whose transform "
                   "was freed")
    else:
        sched._bug("lock", f"BUG: {what} of acomp request {req!r} while in flight")
    return _EINVAL


def _freed_tfm_op(req: AcompReq) -> int:
    """A freed transform's compress/decompress (`crypto_free_acomp` installs it)."""
    return _misuse(req, "submission")


def crypto_acomp_compress(req: AcompReq) -> int:
    """Submit a compression: ``0`` done, ``-EINPROGRESS``/``-EBUSY`` queued, or an error.

    A request already in flight, a freed request or one on a freed transform is reported
    (`acomp.sched`, the kernel's list corruption or use-after-free) and refused with
    ``-EINVAL``.
    """
    if req.in_flight or req.freed:
        return _misuse(req, "submission")
    req.in_flight = True
    try:
        ret = req.tfm.compress(req)
    except BaseException:
        req.in_flight = False
        raise
    if not ret or (ret != _EINPROGRESS and (ret != _EBUSY or not (
            req.base_flags & _MAY_BACKLOG or type(req.data) is _ChainState))):
        req.in_flight = False  # done, failed, or refused (-EBUSY without backlog)
    return ret


def crypto_acomp_decompress(req: AcompReq) -> int:
    """Submit a decompression: ``0`` done, ``-EINPROGRESS``/``-EBUSY`` queued, or an error
    (misuse as for `crypto_acomp_compress`)."""
    if req.in_flight or req.freed:
        return _misuse(req, "submission")
    req.in_flight = True
    try:
        ret = req.tfm.decompress(req)
    except BaseException:
        req.in_flight = False
        raise
    if not ret or (ret != _EINPROGRESS and (ret != _EBUSY or not (
            req.base_flags & _MAY_BACKLOG or type(req.data) is _ChainState))):
        req.in_flight = False  # done, failed, or refused (-EBUSY without backlog)
    return ret


# --------------------------------------------------------------------------------------------
# The v6.15+ API (crypto/acompress.c, include/crypto/acompress.h of v6.15 and v6.16): virtual
# addresses, the synchronous fallback, NULL dst an error; v6.16's on-stack requests.

_V6_15 = (6, 15)
_V6_16 = (6, 16)
_EAGAIN = -errno.EAGAIN
_EINVAL = -errno.EINVAL
_NONDMA = CRYPTO_ACOMP_REQ_SRC_NONDMA | CRYPTO_ACOMP_REQ_DST_NONDMA


def _bind_v6_15(tfm: CryptoAcomp) -> None:
    """Bind the submission of the transform's era over the type's: v6.15's
    (`_bind_chaining`) or v6.16+'s (`_bind_v6_16`), and in the "proposed" mode the
    segmentation's compress over that (`crypto_acomp_bind_proposed`, set by `acomp.segment`)."""
    if tfm.kernel == _V6_15:
        _bind_chaining(tfm)
        return
    alg_compress = tfm.compress
    _bind_v6_16(tfm)
    if is_proposed(tfm.kernel):
        crypto_acomp_bind_proposed(tfm, alg_compress)


def _no_segmentation(tfm: CryptoAcomp, alg_compress: Callable[[AcompReq], int]) -> None:
    raise UnsupportedKernel("the proposed mode needs acomp.segment (import acomp)")


#: The "proposed" submission's binder, ``(tfm, the type's compress)``: `acomp.segment` sets it
#: when imported (the segmentation needs the CPU batch path, which needs this module).
crypto_acomp_bind_proposed: Callable[[CryptoAcomp, Callable[[AcompReq], int]], None] = (
    _no_segmentation)


def _bind_v6_16(tfm: CryptoAcomp) -> None:
    """v6.16+ ``crypto_acomp_compress``: an on-stack request on an async tfm is ``-EAGAIN``;
    an algorithm with ``CRYPTO_ALG_REQ_VIRT`` (every scomp one) or a request on scatterlists
    goes to the algorithm as it is; otherwise ``acomp_do_req_chain`` (no chain any more): a
    NONDMA buffer runs on the synchronous fallback, a virtual one as a one-entry scatterlist."""
    comp, decomp = tfm.compress, tfm.decompress
    on_stack_check = bool(tfm.alg.cra_flags & CRYPTO_ALG_ASYNC)
    virt = bool(tfm.alg.cra_flags & CRYPTO_ALG_REQ_VIRT)

    def submit(req: AcompReq, op: Callable[[AcompReq], int], compress: bool) -> int:
        if on_stack_check and req.on_stack:
            return _EAGAIN  # an on-stack request has no context for an async driver
        if req.dst is None or req.src is None:
            return _EINVAL  # no CRYPTO_ACOMP_ALLOC_OUTPUT since v6.15
        if not virt and req.base_flags & _NONDMA and tfm.fb is not None:
            return _do_nondma(req, compress)  # acomp_do_nondma: the fallback, synchronously
        return op(req)

    tfm.compress = lambda req: submit(req, comp, True)
    tfm.decompress = lambda req: submit(req, decomp, False)


def _bind_chaining(tfm: CryptoAcomp) -> None:
    """v6.15 ``crypto_acomp_compress`` = ``acomp_do_req_chain``: an algorithm with
    ``CRYPTO_ALG_REQ_CHAIN`` (every scomp one: ``scomp_acomp_chain``) gets the head and walks
    the chain itself; an unchained request on scatterlists goes to the algorithm as it is;
    anything else runs request by request here (`_do_req_chain`)."""
    comp, decomp = tfm.compress, tfm.decompress
    chains = bool(tfm.alg.cra_flags & CRYPTO_ALG_REQ_CHAIN)

    def one(req: AcompReq, op: Callable[[AcompReq], int], compress: bool) -> int:
        """``acomp_do_one_req``: NONDMA on the fallback, else the algorithm."""
        if req.dst is None or req.src is None:
            return _EINVAL  # no CRYPTO_ACOMP_ALLOC_OUTPUT since v6.15
        if req.base_flags & _NONDMA and tfm.fb is not None:
            return _do_nondma(req, compress)
        return op(req)

    def submit(req: AcompReq, op: Callable[[AcompReq], int], compress: bool) -> int:
        if chains:
            return op(req) if req.chain else one(req, op, compress)
        if not req.chain:
            return one(req, op, compress)
        return _do_req_chain(req, op, compress, one)

    tfm.compress = lambda req: submit(req, comp, True)
    tfm.decompress = lambda req: submit(req, decomp, False)


# --------------------------------------------------------------------------------------------
# v6.15 request chaining (crypto/acompress.c and include/crypto/acompress.h of v6.15 only;
# "crypto: acomp - Remove request chaining", v6.16, took it out again).

_One = Callable[[AcompReq, Callable[[AcompReq], int], bool], int]


class _ChainState:
    """``struct acomp_req_chain`` of the head: the requests still to run and the head's own
    callback, saved while the chain runs (``acomp_save_req``)."""

    __slots__ = ("compl", "compress", "cur", "data", "head", "one", "op", "req0")

    def __init__(self, req0: AcompReq, op: Callable[[AcompReq], int], compress: bool,
                 one: _One) -> None:
        self.req0 = req0
        self.cur = req0
        self.op = op
        self.compress = compress
        self.one = one
        self.compl: Complete = req0.complete
        self.data: Any = req0.data
        self.head: list[AcompReq] = []


def acomp_request_chain(req: AcompReq, head: AcompReq) -> None:
    """v6.15 only: chain `req` after `head` (``crypto_request_chain``: its ``err`` becomes
    ``-EINPROGRESS``). Submitting `head` then runs every request of the chain, in order; each
    one's status is left in its ``err``. The submission returns (or `head`'s callback gets)
    the last request's status on a transform that runs the chain itself here, the head's on
    an scomp one (``scomp_acomp_chain``): read each request's ``err``.

    `acomp_request_set_callback` on `head` empties its chain (``crypto_reqchain_init``), so
    set the callback first. Raises `acomp.UnsupportedKernel` on a transform of any other era
    (chaining was added in v6.15 and removed in v6.16)."""
    if head.tfm.kernel != _V6_15:
        have = ".".join(map(str, head.tfm.kernel))
        when = ("was removed in v6.16 (crypto: acomp - Remove request chaining)"
                if head.tfm.kernel > _V6_15 else "is in v6.15 only")
        raise UnsupportedKernel(f"acomp_request_chain {when}; this transform follows kernel "
                                f"{have} (acomp.set_kernel)")
    if head.in_flight or head.freed:
        _misuse(head, "acomp_request_chain")
        return
    if req.in_flight or req.freed or req is head or (head.chain and req in head.chain):
        _misuse(req, "acomp_request_chain")  # list corruption in the kernel
        return
    req.err = _EINPROGRESS
    if head.chain is None:
        head.chain = []
    head.chain.append(req)


def acomp_request_chained(req: AcompReq) -> bool:
    """v6.15: whether requests are chained after `req` (``acomp_request_chained``)."""
    return bool(req.chain)


def _do_req_chain(req: AcompReq, op: Callable[[AcompReq], int], compress: bool,
                  one: _One) -> int:
    """v6.15 ``acomp_do_req_chain`` for an algorithm that does not walk chains itself."""
    st = _ChainState(req, op, compress, one)
    req.complete, req.data = _reqchain_done, st  # acomp_save_req
    st.head = req.chain or []  # list_splice_init: the head's list is rebuilt as they finish
    req.chain = []
    err = one(req, op, compress)
    if err == _EINPROGRESS or (err == _EBUSY and req.base_flags & _MAY_BACKLOG):
        return _EBUSY  # the kernel's answer for a chain that went asynchronous
    return _reqchain_finish(st, err, ~0)


def _reqchain_finish(st: _ChainState, err: int, mask: int) -> int:
    """v6.15 ``acomp_reqchain_finish``: record the current request's status, then run the rest
    until one goes asynchronous; the head's callback is restored when all are done."""
    req0 = st.req0
    done = req0.chain
    assert done is not None
    cur = st.cur
    cur.err = err
    if cur is not req0:
        done.append(cur)
    while st.head:
        r = st.head.pop(0)
        if r.freed or r.in_flight:
            err = r.err = _misuse(r, "a chained submission")
            continue
        # With mask MAY_BACKLOG (a completion's continuation) MAY_SLEEP and the private
        # VIRT/NONDMA bits go too: a NONDMA request then reaches the device (the kernel's).
        r.base_flags &= mask
        r.complete, r.data = _reqchain_done, st
        st.cur = r
        r.in_flight = True
        err = st.one(r, st.op, st.compress)
        if err == _EINPROGRESS or (err == _EBUSY and r.base_flags & _MAY_BACKLOG):
            if err == _EINPROGRESS and st.head:
                err = _EBUSY
            return err
        # Beyond the kernel: a request refused with -EBUSY (no MAY_BACKLOG) is recorded as
        # failed and the chain goes on; the kernel's loop stops there and never completes.
        r.in_flight = False
        r.err = err
        done.append(r)
    req0.complete, req0.data = st.compl, st.data  # acomp_restore_req
    return err


def _reqchain_done(st: _ChainState, err: int) -> None:
    """v6.15 ``acomp_reqchain_done``: a chained request completed; run the rest, then call the
    head's own callback with the status the chain ends with."""
    compl, data = st.compl, st.data
    req0 = st.req0
    if err == _EINPROGRESS:  # a backlog notice
        if st.head:
            return
        compl(data, err)
        return
    req0.in_flight = True  # the chain still runs (a head that completed is not done yet)
    err = _reqchain_finish(st, err, _MAY_BACKLOG)
    pending = req0.complete is _reqchain_done  # not yet restored: a request still runs
    if err == _EBUSY and pending:
        return
    if not pending:
        req0.in_flight = False
    compl(data, err)  # the status, or (-EINPROGRESS) the notice that the last one is queued


def _do_nondma(req: AcompReq, compress: bool) -> int:
    fbreq = ACOMP_FBREQ_ON_STACK(req)
    ret = (crypto_acomp_compress if compress else crypto_acomp_decompress)(fbreq)
    req.dlen = fbreq.dlen
    return ret


def _need(req: AcompReq, since: Kernel, what: str) -> None:
    if req.tfm.kernel < since:
        have = ".".join(map(str, req.tfm.kernel))
        raise UnsupportedKernel(f"{what} is in v{since[0]}.{since[1]} and later; this "
                                f"transform follows kernel {have} (acomp.set_kernel)")


def acomp_request_set_src_sg(req: AcompReq, src: Scatterlist, slen: int) -> None:
    """v6.15: the source as a scatterlist."""
    _need(req, _V6_15, "acomp_request_set_src_sg")
    req.src, req.slen = src, slen
    req.base_flags &= ~(CRYPTO_ACOMP_REQ_SRC_VIRT | CRYPTO_ACOMP_REQ_SRC_NONDMA)


def acomp_request_set_dst_sg(req: AcompReq, dst: Scatterlist, dlen: int) -> None:
    """v6.15: the destination as a scatterlist."""
    _need(req, _V6_15, "acomp_request_set_dst_sg")
    req.dst, req.dlen = dst, dlen
    req.base_flags &= ~(CRYPTO_ACOMP_REQ_DST_VIRT | CRYPTO_ACOMP_REQ_DST_NONDMA)


def _set_virt(req: AcompReq, src: bool, buf: Any, length: int, nondma: bool, what: str) -> None:
    _need(req, _V6_15, what)
    sgl = sg_init_one(buf)  # acomp_virt_to_sg: the one-entry scatterlist a driver sees
    virt = CRYPTO_ACOMP_REQ_SRC_VIRT if src else CRYPTO_ACOMP_REQ_DST_VIRT
    flag = CRYPTO_ACOMP_REQ_SRC_NONDMA if src else CRYPTO_ACOMP_REQ_DST_NONDMA
    if src:
        req.src, req.slen = sgl, length
    else:
        req.dst, req.dlen = sgl, length
    req.base_flags = (req.base_flags | virt) & ~flag | (flag if nondma else 0)


def acomp_request_set_src_dma(req: AcompReq, src: Any, slen: int) -> None:
    """v6.15: a virtual source a device may DMA from (``CRYPTO_ACOMP_REQ_SRC_VIRT``)."""
    _set_virt(req, True, src, slen, False, "acomp_request_set_src_dma")


def acomp_request_set_src_nondma(req: AcompReq, src: Any, slen: int) -> None:
    """v6.15: a virtual source a device cannot DMA from (stack, vmalloc): an async tfm passes
    the request to its synchronous fallback."""
    _set_virt(req, True, src, slen, True, "acomp_request_set_src_nondma")


def acomp_request_set_dst_dma(req: AcompReq, dst: Any, dlen: int) -> None:
    """v6.15: a virtual destination a device may DMA to."""
    _set_virt(req, False, dst, dlen, False, "acomp_request_set_dst_dma")


def acomp_request_set_dst_nondma(req: AcompReq, dst: Any, dlen: int) -> None:
    """v6.15: a virtual destination a device cannot DMA to (the fallback takes it)."""
    _set_virt(req, False, dst, dlen, True, "acomp_request_set_dst_nondma")


def acomp_request_set_src_folio(req: AcompReq, folio: Any, off: int, length: int) -> None:
    """v6.15: `length` bytes of a folio's memory from `off` (v6.16: a one-entry scatterlist)."""
    _need(req, _V6_15, "acomp_request_set_src_folio")
    acomp_request_set_src_sg(req, sg_init_one(memoryview(folio)[off:off + length]), length)


def acomp_request_set_dst_folio(req: AcompReq, folio: Any, off: int, length: int) -> None:
    """v6.15: the destination in a folio (v6.16: a one-entry scatterlist)."""
    _need(req, _V6_15, "acomp_request_set_dst_folio")
    acomp_request_set_dst_sg(req, sg_init_one(memoryview(folio)[off:off + length]), length)


def ACOMP_REQUEST_ON_STACK(tfm: CryptoAcomp) -> AcompReq:
    """v6.16: a request without a context, for a synchronous tfm; an async one answers
    ``-EAGAIN`` until it is cloned (`ACOMP_REQUEST_CLONE`)."""
    req = AcompReq(tfm)
    _need(req, _V6_16, "ACOMP_REQUEST_ON_STACK")
    req.on_stack = True
    req.ctx = None
    # The type's request set-up (no scomp context from v6.15: the streams are the algorithm's).
    if crypto_type_of(tfm.alg).init_request(req) != 0:
        raise CryptoError(-errno.ENOMEM, "ACOMP_REQUEST_ON_STACK")
    return req


def ACOMP_FBREQ_ON_STACK(req: AcompReq) -> AcompReq:
    """v6.16: `req` on its tfm's synchronous fallback (same buffers, callback and flags)."""
    fb = req.tfm.fb
    if fb is None:
        raise UnsupportedKernel(f"{req.tfm.alg.cra_driver_name}: no fallback transform")
    fbreq = AcompReq(fb)
    if crypto_type_of(fb.alg).init_request(fbreq) != 0:
        raise CryptoError(-errno.ENOMEM, "ACOMP_FBREQ_ON_STACK")
    fbreq.on_stack = True
    fbreq.src, fbreq.dst, fbreq.slen, fbreq.dlen = req.src, req.dst, req.slen, req.dlen
    fbreq.complete, fbreq.data = req.complete, req.data
    fbreq.base_flags = req.base_flags & ~_NONDMA
    return fbreq


def ACOMP_REQUEST_CLONE(req: AcompReq) -> AcompReq:
    """v6.16: a heap copy of an on-stack request, which an async tfm accepts; the request
    itself when it is not on the stack."""
    if not req.on_stack:
        return req
    clone = acomp_request_alloc(req.tfm)
    if clone is None:
        return req  # the kernel falls back to the on-stack request (and the fallback tfm)
    clone.src, clone.dst, clone.slen, clone.dlen = req.src, req.dst, req.slen, req.dlen
    clone.complete, clone.data, clone.base_flags = req.complete, req.data, req.base_flags
    clone.unit_size = req.unit_size  # the proposed segmentation's field travels too (a memcpy)
    return clone
