"""The proposed acomp segmentation: one compression request carrying many ``unit_size`` segments.

Kernel counterpart: none merged. Herbert Xu's "crypto: acomp - Add segmentation API for
compression" (3 patches, 26 Dec 2025: "Define a unit_size in struct acomp_req to enable
batching", "Add bit to indicate segmentation support", "Add trivial segmentation wrapper") as
Kanchana P Sridhar carries it, with the changes Herbert agreed to (14 Jan 2026), in "zswap
compression batching with optimized iaa_crypto driver" v14 (25 Jan 2026): 15/26 (the trivial
wrapper as changed) and 18/26 ("crypto_acomp integration of IAA Batching": the
``batch_completed`` wait). Only in the "proposed" mode (`acomp.eras.PROPOSED`): a transform
allocated in any other era has none of it (`acomp_request_set_unit_size` raises
`acomp.UnsupportedKernel`, as `acomp.acomp_request_chain` outside v6.15).

What the series defines, and this module models:

- ``req->unit_size`` (`AcompReq.unit_size`): set with `acomp_request_set_unit_size` after
  `acomp.acomp_request_set_callback`, which resets it to 0.
- ``CRYPTO_ALG_REQ_SEG``: the algorithm segments a request itself (`crypto_acomp_req_seg`).
- v14's ``crypto_acomp_compress``: after the on-stack check, a request with a unit size on
  scatterlists goes to a REQ_SEG algorithm as it is (or, with more than one unit and the
  algorithm's ``batch_completed``, through ``acomp_do_req_batch_parallel``: submit, then wait
  until ``batch_completed(req, True)``); any other algorithm gets the trivial segmentation
  (``acomp_do_req_chain``): ``-ENOSYS`` for more than one unit (``slen > unit_size``), else the
  request runs as usual with ``unit_size`` 0 and its dst's first entry's ``length`` becomes the
  status or, on success, ``dlen``. A request with a unit size on virtual addresses takes the
  v6.16 path unchanged ("we preserve existing behavior ... instead of returning an error").
  ``crypto_acomp_decompress`` is v6.16's (v14 dropped the Dec 2025 ``-ENOSYS`` for a unit
  size on decompression, so that zswap keeps one request for both).
- A segmented compression's results: entry i of ``req->dst`` has segment i's output, its
  ``length`` (`sg_length`) the compressed length or the negative errno of that segment;
  ``req->dlen`` is the first segment's (as iaa_crypto sets it); the request's status is 0 when
  every segment compressed, else ``-EINVAL`` ("If any sub-request has an error, -EINVAL is
  returned to the acomp_req's callback, else 0").

Which algorithms segment natively here (REQ_SEG), beyond the series (whose one native driver is
iaa_crypto): every scomp algorithm, through the CPU batch path (`acomp.cpubatch.run_chunk`:
all segments in one atomic section, each with the errno a request of its own would get), and
lz4-opencl (one device job for the request). Their segments: ``unit_size`` bytes each in order,
the last one shorter when ``slen`` is not a multiple (iaa_crypto takes ``slen / unit_size``
whole pages and leaves a tail out; here no byte is left out); segment i's capacity is the
memory of dst entry i (iaa_crypto sets every entry to ``PAGE_SIZE``); fewer dst entries than
segments is ``-EINVAL`` before anything runs (iaa_crypto walks past the list).

Not modelled: iaa_crypto itself. Its ``acomp_do_req_batch_parallel`` ORs ``-EINVAL`` into the
status when ``req->slen < 0``, which never holds for an ``unsigned int`` (an error found while
polling then reaches the caller only through the dst lengths); nothing is ORed here either.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from typing import Any

from acomp import acompress, cpubatch, sched
from acomp._constants import (
    CRYPTO_ACOMP_REQ_DST_VIRT,
    CRYPTO_ACOMP_REQ_SRC_VIRT,
    CRYPTO_ALG_ASYNC,
    CRYPTO_ALG_REQ_SEG,
)
from acomp._errors import UnsupportedKernel
from acomp.acompress import AcompReq, CryptoAcomp
from acomp.algapi import ScompAlg
from acomp.eras import PROPOSED, is_proposed
from acomp.scatterlist import Scatterlist

__all__ = (
    "acomp_request_set_unit_size",
    "crypto_acomp_req_seg",
    "finish_segments",
    "segment_views",
    "set_sg_length",
    "sg_length",
)

_EINVAL = -errno.EINVAL
_ENOSPC = -errno.ENOSPC
_ENOSYS = -errno.ENOSYS
_EAGAIN = -errno.EAGAIN
_EBUSY = -errno.EBUSY
_EINPROGRESS = -errno.EINPROGRESS
_VIRT = CRYPTO_ACOMP_REQ_SRC_VIRT | CRYPTO_ACOMP_REQ_DST_VIRT

Op = Callable[[AcompReq], int]


def _need(tfm: CryptoAcomp, what: str) -> None:
    if not is_proposed(tfm.kernel):
        have = ".".join(map(str, tfm.kernel))
        raise UnsupportedKernel(
            f"{what} is proposed, not merged (the compress-batching series v14, Jan 2026); "
            f"this transform follows kernel {have}: allocate it in the \"{PROPOSED}\" mode "
            f"(acomp.set_kernel(\"{PROPOSED}\"), ACOMP_KERNEL={PROPOSED})")


def acomp_request_set_unit_size(req: AcompReq, du: int) -> None:
    """``acomp_request_set_unit_size``: compress the request's source in segments of `du`
    bytes (``PAGE_SIZE`` for zswap), each into its own dst entry (`sg_length`). Call it after
    `acomp.acomp_request_set_callback`, which sets the unit size back to 0. Only on a
    transform of the "proposed" mode (`acomp.UnsupportedKernel` otherwise)."""
    _need(req.tfm, "acomp_request_set_unit_size")
    if type(du) is not int or du < 0:
        raise ValueError(f"a unit size is an unsigned int, not {du!r}")
    req.unit_size = du


def crypto_acomp_req_seg(tfm: CryptoAcomp) -> bool:
    """``crypto_acomp_req_seg``: whether `tfm`'s algorithm segments requests itself
    (``CRYPTO_ALG_REQ_SEG``); "proposed" mode only."""
    _need(tfm, "crypto_acomp_req_seg")
    return bool(tfm.alg.cra_flags & CRYPTO_ALG_REQ_SEG)


def sg_length(sgl: Scatterlist, i: int, unwritten: int | None = None) -> int:
    """Entry `i`'s ``length`` field: after a segmented compression, segment i's compressed
    length or its negative errno (``sg->length``, an ``unsigned int`` that zswap reads as
    ``int``); where nothing wrote one, `unwritten` if given, else the size of the entry's
    memory (what ``sg_set_buf`` set)."""
    lens = getattr(sgl, "seglen", None)
    if lens is not None and i < len(lens) and lens[i] is not None:
        return int(lens[i])
    return len(sgl[i]) if unwritten is None else unwritten


def set_sg_length(sgl: Scatterlist, i: int, n: int) -> None:
    """For drivers: write entry `i`'s ``length`` field (a segment's length or errno) without
    changing the memory it describes."""
    lens = getattr(sgl, "seglen", None)
    if lens is None or len(lens) < len(sgl):
        lens = sgl.seglen = [None] * len(sgl) if lens is None else (
            lens + [None] * (len(sgl) - len(lens)))
    lens[i] = n


def segment_views(req: AcompReq) -> tuple[list[Any], list[memoryview]] | int:
    """For drivers that segment natively: the segments of `req` (``unit_size`` bytes each,
    the last one shorter when ``slen`` is not a multiple) and the dst entry each one goes to;
    ``-EINVAL`` for a request that cannot be segmented (no source or destination, a length
    out of range, fewer dst entries than segments, a read-only entry)."""
    src, dst, slen, unit = req.src, req.dst, req.slen, req.unit_size
    if src is None or dst is None or unit <= 0 or slen <= 0 or slen > src.length:
        return _EINVAL
    n = -(-slen // unit)
    outs = dst._entries[:n]  # an entry sg_init_table left unset (None) describes no memory
    if len(outs) < n or any(e is None or e.readonly for e in outs):
        return _EINVAL
    flat: Any = src.linear(slen)
    if flat is None:
        flat = memoryview(src.tobytes(slen))  # a multi-entry source: one copy
    return [flat[o : o + unit] for o in range(0, slen, unit)], outs  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# v14 crypto_acomp_compress, bound over the v6.16 submission of a "proposed" transform


def _bind(tfm: CryptoAcomp, alg_compress: Op) -> None:
    """Bind the proposed ``crypto_acomp_compress`` of `tfm` over its v6.16 one."""
    v616 = tfm.compress
    alg = tfm.alg
    on_stack_check = bool(alg.cra_flags & CRYPTO_ALG_ASYNC)
    seg = bool(alg.cra_flags & CRYPTO_ALG_REQ_SEG)
    op = _scomp_segmented if isinstance(alg, ScompAlg) else alg_compress
    completed = getattr(alg, "batch_completed", None) if seg else None

    def submit(req: AcompReq) -> int:
        if not req.unit_size or req.base_flags & _VIRT:
            return v616(req)  # no unit size, or virtual addresses: v6.16 as it is
        if on_stack_check and req.on_stack:
            return _EAGAIN
        if req.src is None or req.dst is None:
            return _EINVAL  # no CRYPTO_ACOMP_ALLOC_OUTPUT since v6.15
        if not seg:
            return _trivial(req, alg_compress)
        if completed is not None and req.slen > req.unit_size:
            return _batch_parallel(req, op, completed)
        return op(req)

    tfm.compress = submit


acompress.crypto_acomp_bind_proposed = _bind


def _batch_parallel(req: AcompReq, op: Op, completed: Callable[[AcompReq, bool], bool]) -> int:
    """v14 ``acomp_do_req_batch_parallel``: the algorithm submits the segments, then the caller
    sleeps (``wait_event``) until ``batch_completed(req, true)``; the submission's status."""
    ret = op(req)
    sched.might_sleep()  # wait_event: a sleep, never in atomic context
    while not completed(req, True):
        sched.might_sleep()
    # `if (req->slen < 0) ret |= -EINVAL;`: never true for the unsigned slen (see the module).
    return ret


class _Saved:
    """``struct acomp_req_chain`` as v14's ``acomp_save_req`` fills it: the caller's callback
    and data, and its unit size (0 while the request runs)."""

    __slots__ = ("compl", "data", "req", "unit_size")

    def __init__(self, req: AcompReq) -> None:
        self.req = req
        self.compl = req.complete
        self.data = req.data
        self.unit_size = req.unit_size


def _trivial(req: AcompReq, op: Op) -> int:
    """v14 ``acomp_do_req_chain`` with a unit size: one segment at most."""
    if req.slen > req.unit_size:
        return _ENOSYS
    st = _Saved(req)  # acomp_save_req
    req.complete, req.data = _trivial_done, st
    req.unit_size = 0
    err = op(req)  # acomp_do_one_req: on scatterlists, the algorithm itself
    if err == _EINPROGRESS or err == _EBUSY:
        if err == _EBUSY and not req.base_flags & acompress._MAY_BACKLOG:
            # Refused, not queued: beyond the kernel, which leaves the saved state in place.
            _restore(st)
        return err
    return _trivial_finish(st, err)


def _restore(st: _Saved) -> None:
    req = st.req
    req.complete, req.data, req.unit_size = st.compl, st.data, st.unit_size  # acomp_restore_req


def _trivial_finish(st: _Saved, err: int) -> int:
    """v14 ``acomp_reqchain_finish``: the caller's state back, and the status (or ``dlen``)
    in the first dst entry's length."""
    _restore(st)
    req = st.req
    if req.unit_size and req.dst is not None and len(req.dst):
        set_sg_length(req.dst, 0, err if err else req.dlen)
    return err


def _trivial_done(st: _Saved, err: int) -> None:
    """v14 ``acomp_reqchain_done``: the asynchronous completion of a trivially segmented
    request (a backlog notice passes through)."""
    compl, data = st.compl, st.data
    if err != _EINPROGRESS:
        err = _trivial_finish(st, err)
    compl(data, err)


def _scomp_segmented(req: AcompReq) -> int:
    """An scomp algorithm's native segmentation: every segment through the CPU batch path
    (`cpubatch.run_chunk`: one atomic section on this CPU, the scomp wrapper's checks per
    segment), each one's errno the one a request of its own gets (the batch path's "does not
    fit", ``-ENOSPC``, is the driver's ``compress_nospace`` where it declares one: lz4's
    ``-EINVAL``)."""
    got = segment_views(req)
    if isinstance(got, int):
        return got
    segs, outs = got
    caps = [len(o) for o in outs]
    if len(segs) == 1 and 0 < req.dlen < caps[0]:
        caps[0] = req.dlen  # one segment: the capacity asked, within the entry
    tfm = req.tfm
    res = cpubatch.run_chunk(tfm, True, segs, caps)
    nospace = int(getattr(tfm.alg, "compress_nospace", _ENOSPC))
    return finish_segments(req, outs, [nospace if r == _ENOSPC else r for r in res])


def finish_segments(req: AcompReq, outs: Sequence[memoryview], res: Sequence[bytes | int]
                    ) -> int:
    """For drivers: write each segment's output into its dst entry and its length or errno
    into the entry's ``length``; ``req->dlen`` is the first segment's; the status is 0 when
    every segment compressed, else ``-EINVAL``."""
    dst = req.dst
    assert dst is not None
    status = 0
    lens: list[int | None] = []
    for r, out in zip(res, outs, strict=True):
        if isinstance(r, int):
            lens.append(r)
            status = _EINVAL
            continue
        n = len(r)
        out[:n] = r
        lens.append(n)
    old = getattr(dst, "seglen", None)
    if old is not None and len(old) > len(lens):
        lens += old[len(lens):]  # entries past the request keep theirs
    dst.seglen = lens
    req.dlen = sg_length(dst, 0) if lens else 0
    return status
