"""The acomp walk: a driver's view of a request's source and destination, one segment at a time.

Kernel counterpart: ``crypto/acompress.c`` and ``include/crypto/internal/acompress.h`` of v6.16
(``struct acomp_walk``, ``acomp_walk_virt``, ``acomp_walk_next_src`` / ``_dst``,
``acomp_walk_done_src`` / ``_dst``, ``acomp_walk_more_src``), with the ``atomic`` argument of
"crypto: deflate - Make the acomp walk atomic" (also v6.16).

A native acomp driver (deflate from v6.16, zstd from v6.17) walks a request this way instead of
having scomp linearise it: `acomp_walk_virt` starts the walk; each `acomp_walk_next_src` maps the
next source segment (``walk.src``, its length returned; 0 when none is left) and
`acomp_walk_done_src` says how much of it was consumed; the destination likewise. A virtual
buffer (``CRYPTO_ACOMP_REQ_SRC_VIRT`` / ``DST_VIRT``, `acomp.acomp_request_set_src_dma` ...) is
one *linear* segment; a scatterlist gives one segment per entry, at most ``PAGE_SIZE`` bytes each
(``scatterwalk_next`` on a kernel without ``CONFIG_HIGHMEM``, x86_64: a segment may cross a page
but never exceeds one page's length).

A walk of a request with ``CRYPTO_TFM_REQ_MAY_SLEEP`` that is not started `atomic` may sleep:
each ``done`` is a ``cond_resched()``, which reports a sleep in atomic context
(`acomp.sched.might_sleep`) when the driver holds a spin lock, as the kernel's
``__might_resched`` did for deflate's first acomp conversion (the kernel test robot's "BUG:
sleeping function called from invalid context at crypto/acompress.c"); on a kernel without
full preemption (``preempt_model_preemptible()`` false, the distributions' voluntary
preemption, modelled here) such a walk also cuts linear segments to ``PAGE_SIZE``.

Beyond the kernel, where the kernel trusts its caller: a missing source or destination, a
negative length, or a source shorter than ``slen`` is ``-EINVAL`` (the kernel would read past
the list), ``dlen`` is clamped to the bytes the destination really has, and a read-only
destination is ``-EINVAL``, the scomp wrapper's answers; empty or unset scatterlist entries are
skipped.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from acomp import sched
from acomp._constants import (
    CRYPTO_ACOMP_REQ_DST_VIRT,
    CRYPTO_ACOMP_REQ_SRC_VIRT,
    CRYPTO_TFM_REQ_MAY_SLEEP,
    PAGE_SIZE,
)
from acomp._errors import UnsupportedKernel

if TYPE_CHECKING:
    from acomp.acompress import AcompReq
    from acomp.scatterlist import Scatterlist

__all__ = (
    "ACOMP_WALK_DST_LINEAR",
    "ACOMP_WALK_SLEEP",
    "ACOMP_WALK_SRC_LINEAR",
    "PREEMPTIBLE",
    "AcompWalk",
    "acomp_walk_done_dst",
    "acomp_walk_done_src",
    "acomp_walk_more_src",
    "acomp_walk_next_dst",
    "acomp_walk_next_src",
    "acomp_walk_virt",
)

#: The walk may sleep between segments (``MAY_SLEEP`` and not `atomic`).
ACOMP_WALK_SLEEP = 1 << 0
#: The source is one virtual buffer (``CRYPTO_ACOMP_REQ_SRC_VIRT``).
ACOMP_WALK_SRC_LINEAR = 1 << 1
#: The destination is one virtual buffer (``CRYPTO_ACOMP_REQ_DST_VIRT``).
ACOMP_WALK_DST_LINEAR = 1 << 3

#: ``preempt_model_preemptible()``: false, the voluntary preemption distributions build with,
#: so a walk that may sleep hands out linear segments of at most ``PAGE_SIZE``.
PREEMPTIBLE = False

_EINVAL = -errno.EINVAL
_UINT_MAX = 0xFFFFFFFF
_V6_16 = (6, 16)


class _ScatterWalk:
    """``struct scatter_walk``: the entries of one side, the entry and the offset in it."""

    __slots__ = ("entries", "index", "offset")

    def __init__(self, sgl: Scatterlist) -> None:
        self.entries = [e for e in sgl._entries if e is not None and len(e)]
        self.index = 0
        self.offset = 0

    def next(self, total: int, linear: bool, limit: int) -> memoryview | None:
        """``scatterwalk_next`` (or the linear case): the next segment of at most `total`
        bytes, None when the list is used up."""
        while self.index < len(self.entries):
            e = self.entries[self.index]
            room = len(e) - self.offset
            if room > 0:
                n = min(total, room, limit if linear else min(limit, PAGE_SIZE))
                return e[self.offset:self.offset + n]
            if linear:
                return None
            self.index += 1  # scatterwalk_clamp: the entry is used up, sg_next
            self.offset = 0
        return None

    def advance(self, used: int) -> None:
        self.offset += used


class AcompWalk:
    """``struct acomp_walk``: the current source and destination segments of a request.

    ``src`` and ``dst`` (the kernel's ``walk.src.virt.addr`` / ``walk.dst.virt.addr``) are the
    segments the last `acomp_walk_next_src` / `acomp_walk_next_dst` mapped; ``slen`` and
    ``dlen`` the bytes left to walk; ``flags`` the ``ACOMP_WALK_*`` bits.
    """

    __slots__ = ("_in", "_out", "dlen", "dst", "flags", "slen", "src")

    def __init__(self) -> None:
        self.src: memoryview = memoryview(b"")
        self.dst: memoryview = memoryview(bytearray())
        self.slen = 0
        self.dlen = 0
        self.flags = 0
        self._in: _ScatterWalk | None = None
        self._out: _ScatterWalk | None = None

    def __repr__(self) -> str:
        return f"<AcompWalk slen={self.slen} dlen={self.dlen} flags={self.flags:#x}>"


def acomp_walk_virt(walk: AcompWalk, req: AcompReq, atomic: bool) -> int:
    """``acomp_walk_virt``: start walking `req`; 0, or ``-EINVAL`` for ``slen`` or ``dlen`` 0
    (the kernel's one check) and, beyond it, for a request the walk could not serve without
    reading or writing past its buffers. `atomic`: the caller holds a lock (a per-CPU stream)
    and the walk must not sleep. Raises `acomp.UnsupportedKernel` on a transform older than
    v6.16, whose API has no walk."""
    if req.tfm.kernel < _V6_16:
        have = ".".join(map(str, req.tfm.kernel))
        raise UnsupportedKernel(f"acomp_walk_virt is in v6.16 and later; this transform "
                                f"follows kernel {have} (acomp.set_kernel)")
    walk.slen = req.slen
    walk.dlen = req.dlen
    if not walk.slen or not walk.dlen:
        return _EINVAL
    src, dst = req.src, req.dst
    if (src is None or dst is None or walk.slen < 0 or walk.dlen < 0
            or walk.slen > src.length or not dst.writable):
        return _EINVAL  # beyond the kernel: it would run off the list or write read-only
    if walk.dlen > dst.length:
        walk.dlen = dst.length  # never write past what the caller really gave
        if not walk.dlen:
            return _EINVAL
    flags = req.base_flags
    walk.flags = 0
    if flags & CRYPTO_TFM_REQ_MAY_SLEEP and not atomic:
        walk.flags |= ACOMP_WALK_SLEEP
    if flags & CRYPTO_ACOMP_REQ_SRC_VIRT:
        walk.flags |= ACOMP_WALK_SRC_LINEAR
    if flags & CRYPTO_ACOMP_REQ_DST_VIRT:
        walk.flags |= ACOMP_WALK_DST_LINEAR
    walk._in = _ScatterWalk(src)
    walk._out = _ScatterWalk(dst)
    return 0


def _max(walk: AcompWalk) -> int:
    return PAGE_SIZE if not PREEMPTIBLE and walk.flags & ACOMP_WALK_SLEEP else _UINT_MAX


def acomp_walk_next_src(walk: AcompWalk) -> int:
    """``acomp_walk_next_src``: map the next source segment as ``walk.src``; its length, 0 when
    the source is walked."""
    if walk.slen <= 0 or walk._in is None:
        return 0
    seg = walk._in.next(walk.slen, bool(walk.flags & ACOMP_WALK_SRC_LINEAR), _max(walk))
    if seg is None:
        return 0
    walk.src = seg
    return len(seg)


def acomp_walk_next_dst(walk: AcompWalk) -> int:
    """``acomp_walk_next_dst``: map the next destination segment as ``walk.dst``; its length,
    0 when the destination is full."""
    if walk.dlen <= 0 or walk._out is None:
        return 0
    seg = walk._out.next(walk.dlen, bool(walk.flags & ACOMP_WALK_DST_LINEAR), _max(walk))
    if seg is None:
        return 0
    walk.dst = seg
    return len(seg)


def acomp_walk_done_src(walk: AcompWalk, used: int) -> None:
    """``acomp_walk_done_src``: `used` bytes of the current source segment were consumed; a
    walk that may sleep reschedules here (``cond_resched``)."""
    walk.slen -= used
    if walk._in is not None:
        walk._in.advance(used)
    if walk.flags & ACOMP_WALK_SLEEP:
        sched.might_sleep()  # cond_resched(): __might_resched in atomic context


def acomp_walk_done_dst(walk: AcompWalk, used: int) -> None:
    """``acomp_walk_done_dst``: `used` bytes of the current destination segment were written;
    a walk that may sleep reschedules here (``cond_resched``)."""
    walk.dlen -= used
    if walk._out is not None:
        walk._out.advance(used)
    if walk.flags & ACOMP_WALK_SLEEP:
        sched.might_sleep()  # cond_resched(): __might_resched in atomic context


def acomp_walk_more_src(walk: AcompWalk, cur: int) -> bool:
    """``acomp_walk_more_src``: whether source bytes remain after the `cur` just mapped."""
    return walk.slen != cur
