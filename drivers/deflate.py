"""deflate: raw deflate, window bits 11, memLevel 9 (``crypto/deflate.c``), via zlib.

Up to v6.15 it is ``deflate-scomp``, an scomp algorithm over zlib's one-shot calls. From v6.16
("crypto: deflate - Convert to acomp") it is ``deflate-generic``, a native acomp algorithm
(``CRYPTO_ALG_REQ_VIRT``): each request locks this CPU's stream (one zlib workspace, per-CPU
streams of `acomp.streams`) and runs zlib over the request's segments as `acomp_walk_virt`
(atomic) hands them out, the kernel's ``deflate_compress_one`` / ``deflate_decompress_one``
loops. Its codes are v6.16's: ``-EINVAL`` for ``slen`` or ``dlen`` 0 (the walk), for a stream
zlib rejects or that ends short (``ret != Z_STREAM_END``), ``-ENOSPC`` when the destination is
full before the stream ends (the walk has no segment left), where the scomp driver answers
``-EINVAL``. Each kernel finds its own (``cra_kernels``): ``"-6.15"`` and ``"6.16-"``.

Beyond v6.16, one case: when the destination is full while the current source segment still
has bytes, the kernel's loop answers ``-ENOSPC`` without letting zlib read them, so a stream
whose end marker lies in a later segment than its last output byte (an exact-size destination,
a source split there) fails; the model lets zlib read them first and succeeds when the stream
ends without more output (``-ENOSPC`` otherwise, as the kernel), so every scatterlist shape
round trips. A source that is used up with the destination full and the stream not ended is
``-ENOSPC``, as in the kernel.

zlib here is CPython's, not the kernel's copy: the compressed bytes may differ (testmgr checks
compression by round trip), the format and both sides' errors are the same. Python's
compressor buffers what the kernel's writes into ``avail_out`` as it goes; the bytes that do
not fit the current segment go into the next one, so the result is the same stream.
"""

from __future__ import annotations

import errno
import zlib
from typing import Any

from acomp.internal import (
    AcompReq,
    AcompWalk,
    acomp_walk_done_dst,
    acomp_walk_done_src,
    acomp_walk_more_src,
    acomp_walk_next_dst,
    acomp_walk_next_src,
    acomp_walk_virt,
    crypto_acomp_lock_stream_bh,
    crypto_acomp_unlock_stream_bh,
)

from ._acomp import StreamAcomp, native_module
from ._scomp import LibScomp

DEFLATE_DEF_LEVEL = zlib.Z_DEFAULT_COMPRESSION
DEFLATE_DEF_WINBITS = 11
DEFLATE_DEF_MEMLEVEL = 9

_EINVAL = -errno.EINVAL
_ENOSPC = -errno.ENOSPC


class _Overflow(zlib.error):
    pass


def _compress(ctx: Any, src: memoryview) -> bytes:
    c = zlib.compressobj(
        DEFLATE_DEF_LEVEL, zlib.DEFLATED, -DEFLATE_DEF_WINBITS, DEFLATE_DEF_MEMLEVEL
    )
    return c.compress(src) + c.flush()


def _decompress(ctx: Any, src: memoryview, cap: int) -> bytes:
    d = zlib.decompressobj(-DEFLATE_DEF_WINBITS)
    out = d.decompress(src, cap)
    if d.unconsumed_tail:
        raise _Overflow("output larger than capacity")
    if not d.eof:
        raise zlib.error("truncated deflate stream")
    return out


class DeflateStream:
    """``struct deflate_stream``: one CPU's zlib stream, set up again for each request
    (``zlib_deflateInit2`` / ``zlib_inflateInit2`` on the workspace)."""

    __slots__ = ("comp", "decomp")

    def __init__(self) -> None:
        self.comp: Any = None
        self.decomp: Any = None


def _compress_one(req: AcompReq, ds: DeflateStream) -> int:
    """``deflate_compress_one``: the source, segment by segment, into the destination's
    segments; ``Z_FINISH`` with the last source segment."""
    walk = AcompWalk()
    ret = acomp_walk_virt(walk, req, True)
    if ret:
        return ret
    stream = ds.comp
    pending = b""  # output zlib gave that the current segment had no room for
    finished = False
    total = 0
    while True:
        dcur = acomp_walk_next_dst(walk)
        if not dcur:
            return _ENOSPC  # the stream has not ended and the destination is full
        out = walk.dst
        pos = 0
        while pos < dcur:
            if pending:
                n = min(len(pending), dcur - pos)
                out[pos:pos + n] = pending[:n]
                pending = pending[n:]
                pos += n
                continue
            if finished:
                break
            scur = acomp_walk_next_src(walk)
            if scur and acomp_walk_more_src(walk, scur):
                pending = stream.compress(walk.src[:scur])  # Z_NO_FLUSH
            else:  # the last segment, or none left: Z_FINISH
                pending = (stream.compress(walk.src[:scur]) if scur else b"") + stream.flush()
                finished = True
            if scur:
                acomp_walk_done_src(walk, scur)
        acomp_walk_done_dst(walk, pos)
        total += pos
        if finished and not pending:  # Z_STREAM_END
            req.dlen = total  # stream->total_out
            return 0


def _decompress_one(req: AcompReq, ds: DeflateStream) -> int:
    """``deflate_decompress_one``: each source segment inflated into as many destination
    segments as it fills (``Z_NO_FLUSH``), until the stream ends (``Z_STREAM_END``), zlib
    fails, or there is no room left (``-ENOSPC``)."""
    walk = AcompWalk()
    ret = acomp_walk_virt(walk, req, True)
    if ret:
        return ret
    stream = ds.decomp
    total = 0
    out_of_space = False
    ok = True  # ret == Z_OK
    while ok:
        scur = acomp_walk_next_src(walk)
        data: Any = walk.src[:scur] if scur else b""
        while True:
            dcur = acomp_walk_next_dst(walk)
            if not dcur:
                if data:  # beyond the kernel: input left with no room may still end it
                    try:
                        extra = stream.decompress(data, 1)
                    except zlib.error:
                        ok = False
                        break
                    if not extra and stream.eof:
                        ok = False
                        break
                out_of_space = True
                break
            try:
                out = stream.decompress(data, dcur)
            except zlib.error:  # Z_DATA_ERROR
                ok = False
                break
            n = len(out)
            walk.dst[:n] = out
            acomp_walk_done_dst(walk, n)
            total += n
            rest = stream.unconsumed_tail
            if stream.eof or (not n and len(rest) == len(data)):
                ok = False  # Z_STREAM_END, or Z_BUF_ERROR: no progress was possible
                break
            data = rest
            if not data:  # avail_in 0: the next source segment
                break
        if scur:
            acomp_walk_done_src(walk, scur)
        if out_of_space:
            return _ENOSPC
    if not stream.eof:
        return _EINVAL  # ret != Z_STREAM_END: corrupt or truncated
    req.dlen = total
    return 0


def _make() -> list[Any]:
    class DeflateScomp(LibScomp):
        cra_name = "deflate"
        cra_driver_name = "deflate-scomp"
        cra_module = "deflate"
        cra_kernels = ("-6.15",)
        lib_errors = (zlib.error,)
        batch_parallel = "threads"

    class DeflateGeneric(StreamAcomp):
        cra_name = "deflate"
        cra_driver_name = "deflate-generic"
        cra_module = "deflate"
        cra_kernels = ("6.16-",)

        def compress(self, req: AcompReq) -> int:
            """``deflate_compress``: this CPU's stream, ``zlib_deflateInit2``, the walk."""
            s = crypto_acomp_lock_stream_bh(self.streams)
            try:
                ds: DeflateStream = s.ctx
                try:
                    ds.comp = zlib.compressobj(DEFLATE_DEF_LEVEL, zlib.DEFLATED,
                                               -DEFLATE_DEF_WINBITS, DEFLATE_DEF_MEMLEVEL)
                except zlib.error:  # err != Z_OK
                    return _EINVAL
                return _compress_one(req, ds)
            finally:
                crypto_acomp_unlock_stream_bh(s)

        def decompress(self, req: AcompReq) -> int:
            """``deflate_decompress``: this CPU's stream, ``zlib_inflateInit2``, the walk."""
            s = crypto_acomp_lock_stream_bh(self.streams)
            try:
                ds: DeflateStream = s.ctx
                try:
                    ds.decomp = zlib.decompressobj(-DEFLATE_DEF_WINBITS)
                except zlib.error:
                    return _EINVAL
                return _decompress_one(req, ds)
            finally:
                crypto_acomp_unlock_stream_bh(s)

    return [DeflateScomp(_compress, _decompress), DeflateGeneric(DeflateStream)]


MODULE = native_module("deflate", ("deflate", "deflate-scomp", "deflate-generic"), _make,
                       "zlib")
