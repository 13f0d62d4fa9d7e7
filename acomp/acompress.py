"""The acomp user API: transforms, requests and the compress/decompress calls.

Kernel counterpart: ``include/crypto/acompress.h`` and ``crypto/acompress.c`` (v5.12 - v6.14:
scatterlists, ``CRYPTO_ACOMP_ALLOC_OUTPUT`` for a NULL dst, a per-request scomp context).

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
    CRYPTO_ALG_ASYNC,
    CRYPTO_ALG_TYPE_ACOMPRESS,
    CRYPTO_ALG_TYPE_ACOMPRESS_MASK,
    CRYPTO_ALG_TYPE_MASK,
    CRYPTO_TFM_REQ_MAY_BACKLOG,
)
from acomp._errors import CryptoError
from acomp.algapi import (
    AcompAlg,
    CryptoAlg,
    CryptoType,
    crypto_alg_mod_lookup,
    crypto_alg_sem,
    crypto_register_type,
    crypto_type_of,
)
from acomp.scatterlist import Scatterlist

__all__ = (
    "AcompReq",
    "CryptoAcomp",
    "acomp_is_async",
    "acomp_request_alloc",
    "acomp_request_complete",
    "acomp_request_free",
    "acomp_request_set_callback",
    "acomp_request_set_params",
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

Complete = Callable[[Any, int], None]


class CryptoAcomp:
    """``struct crypto_acomp``: one user's handle on an algorithm, bound at allocation."""

    __slots__ = ("__weakref__", "_dst_free", "alg", "compress", "decompress", "fb", "freed",
                 "reqsize")

    def __init__(self, alg: CryptoAlg) -> None:
        self.alg = alg
        #: A synchronous fallback transform a device driver may keep (the newest kernel's fb).
        self.fb: CryptoAcomp | None = None
        self.freed = False
        self.reqsize = 0
        self.compress: Callable[[AcompReq], int]
        self.decompress: Callable[[AcompReq], int]
        self._dst_free: Callable[[Scatterlist], None] = lambda sgl: None

    def __repr__(self) -> str:
        return f"<CryptoAcomp {self.alg.cra_driver_name}>"


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
        "complete",
        "ctx",
        "data",
        "dlen",
        "dst",
        "flags",
        "freed",
        "in_flight",
        "reason",
        "scomp_ctx",
        "slen",
        "src",
        "tfm",
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
        err = ctype.init_tfm(tfm)
        if err:
            raise CryptoError(err, f"{alg.cra_driver_name}: init")
    except BaseException:
        with crypto_alg_sem:
            alg.cra_refcnt -= 1
        raise
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
    with crypto_alg_sem:
        alg.cra_refcnt -= 1


def crypto_has_acomp(alg_name: str, type: int = 0, mask: int = 0) -> bool:
    type = (type & ~CRYPTO_ALG_TYPE_MASK) | CRYPTO_ALG_TYPE_ACOMPRESS
    mask |= CRYPTO_ALG_TYPE_ACOMPRESS_MASK
    try:
        crypto_alg_mod_lookup(alg_name, type, mask)
    except CryptoError:
        return False
    return True


def acomp_is_async(tfm: CryptoAcomp) -> bool:
    return bool(tfm.alg.cra_flags & CRYPTO_ALG_ASYNC)


def crypto_acomp_driver_name(tfm: CryptoAcomp) -> str:
    return tfm.alg.cra_driver_name


def crypto_acomp_name(tfm: CryptoAcomp) -> str:
    return tfm.alg.cra_name


def crypto_acomp_reqtfm(req: AcompReq) -> CryptoAcomp:
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
    if dst is None:
        req.flags |= CRYPTO_ACOMP_ALLOC_OUTPUT
    else:
        req.flags &= ~CRYPTO_ACOMP_ALLOC_OUTPUT


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
    req.base_flags = flags


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
    if not ret or (ret != _EINPROGRESS and (ret != _EBUSY or not req.base_flags & _MAY_BACKLOG)):
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
    if not ret or (ret != _EINPROGRESS and (ret != _EBUSY or not req.base_flags & _MAY_BACKLOG)):
        req.in_flight = False  # done, failed, or refused (-EBUSY without backlog)
    return ret
