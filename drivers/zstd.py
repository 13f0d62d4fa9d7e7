"""zstd: Zstandard level 3, the kernel's default (``crypto/zstd.c``), via zstandard.

Up to v6.16 it is ``zstd-scomp``, an scomp algorithm whose request context holds its own
compressor and decompressor, as the kernel's workspace. From v6.17 ("crypto: zstd - convert to
acomp") it is ``zstd-generic``, a native acomp algorithm (``CRYPTO_ALG_REQ_VIRT``) on per-CPU
streams (`acomp.streams`: a compressor and a decompressor per CPU) that walks the request
(`acomp_walk_virt`, atomic), as v6.17's ``zstd_compress`` / ``zstd_decompress``:

- a request whose source and destination are one segment each (a page on scatterlists, any
  virtual buffer) is done in one call, ``zstd_compress_one`` / ``zstd_decompress_one``
  (``zstd_compress_cctx`` / ``zstd_decompress_dctx``): ``-EINVAL`` for a library error, an
  output that does not fit included (the reason says ``-ENOSPC``, beyond the kernel, as the
  scomp driver's);
- any other is streamed segment by segment: ``-EIO`` for a library error
  (``zstd_compress_stream`` / ``zstd_decompress_stream``), ``-ENOSPC`` when the destination is
  full first, ``-EINVAL`` for a frame that cannot finish once the source is used up.

Beyond v6.17 (and up to 7.0, whose ``crypto/zstd.c`` is the same there): the kernel's streamed
path advances the destination by whole segments, ends the stream once (so a segmented
destination can lose the frame's end while the call succeeds) and reports success when the
source runs out before the frame is decoded; "crypto: zstd - fix segmented acomp streaming
paths" (March 2026) describes and fixes it. The model streams as that fix does, since a
result with missing bytes is never returned here. And the kernel pledges no source size to the
stream (``zstd_init_cstream(&params, 0, ...)``), so its streamed frames lack the content size
that its one-call frames carry: a destination sized from a streamed result can be too small for
the one-call path. The model pledges ``slen``, so both paths give the same frame. ``slen`` or
``dlen`` 0 is ``-EINVAL`` (the walk); on any failure ``dlen`` is 0.
"""

from __future__ import annotations

import errno
from typing import Any

from acomp.internal import (
    AcompReq,
    AcompWalk,
    acomp_walk_done_dst,
    acomp_walk_done_src,
    acomp_walk_next_dst,
    acomp_walk_next_src,
    acomp_walk_virt,
    crypto_acomp_lock_stream_bh,
    crypto_acomp_unlock_stream_bh,
)

from ._acomp import StreamAcomp, native_module
from ._scomp import LibScomp

ZSTD_DEF_LEVEL = 3

_EINVAL = -errno.EINVAL
_ENOSPC = -errno.ENOSPC
_EIO = -errno.EIO


def _make() -> list[Any]:
    import zstandard

    def alloc() -> Any:
        return (zstandard.ZstdCompressor(level=ZSTD_DEF_LEVEL), zstandard.ZstdDecompressor())

    def compress(ctx: Any, src: memoryview) -> bytes:
        return ctx[0].compress(src)  # type: ignore[no-any-return]

    def decompress(ctx: Any, src: Any, cap: int) -> bytes:
        # A frame header may claim any content size, and python-zstandard allocates what it
        # claims (MemoryError past what the machine can map): refuse it first.
        if zstandard.frame_content_size(src) > cap:
            raise zstandard.ZstdError("content size larger than capacity")
        try:
            # zstd_decompress_dctx decodes the whole input or fails: no bytes left over.
            out = ctx[1].decompress(src, max_output_size=cap, allow_extra_data=False)
        except zstandard.ZstdError as e:
            if "unused data" not in str(e):
                raise
            out = _frames(ctx[1], src, cap)  # several frames, or junk after the first
        if len(out) > cap:
            raise zstandard.ZstdError("output larger than capacity")
        return out  # type: ignore[no-any-return]

    def _frames(dctx: Any, src: Any, cap: int) -> bytes:
        """The kernel's ZSTD_decompressMultiFrame: every frame in turn until the input is
        consumed; anything that is not a whole frame is an error. Input is fed in small
        pieces so a frame that expands enormously stops at `cap`, not at the machine's end."""
        out = bytearray()
        rest = bytes(src)
        while rest:
            obj = dctx.decompressobj()
            pos = 0
            while not obj.eof:
                if pos >= len(rest):
                    raise zstandard.ZstdError("truncated frame")
                out += obj.decompress(rest[pos : pos + 256])
                pos += 256
                if len(out) > cap:
                    raise zstandard.ZstdError("output larger than capacity")
            rest = obj.unused_data + rest[pos:]
        return bytes(out)

    class ZstdScomp(LibScomp):
        cra_name = "zstd"
        cra_driver_name = "zstd-scomp"
        cra_module = "zstd"
        cra_kernels = ("-6.16",)
        lib_errors = (zstandard.ZstdError,)
        batch_parallel = "threads"

    def _put(walk: AcompWalk, data: bytes) -> int:
        """The bytes of `data` into the destination's segments (the stream's output buffer
        refilled from ``acomp_walk_next_dst``): 0, or ``-ENOSPC`` when they do not fit."""
        at = 0
        while at < len(data):
            dcur = acomp_walk_next_dst(walk)
            if not dcur:
                return _ENOSPC
            n = min(dcur, len(data) - at)
            walk.dst[:n] = data[at:at + n]
            acomp_walk_done_dst(walk, n)
            at += n
        return 0

    class ZstdGeneric(StreamAcomp):
        cra_name = "zstd"
        cra_driver_name = "zstd-generic"
        cra_module = "zstd"
        cra_kernels = ("6.17-",)

        def compress(self, req: AcompReq) -> int:
            """``zstd_compress``: this CPU's stream; one call for one segment each side
            (``zstd_compress_one``), else the stream over the segments."""
            s = crypto_acomp_lock_stream_bh(self.streams)
            try:
                ret, total = self._compress(req, s.ctx)
                req.dlen = 0 if ret else total
                return ret
            finally:
                crypto_acomp_unlock_stream_bh(s)

        def _compress(self, req: AcompReq, ctx: Any) -> tuple[int, int]:
            walk = AcompWalk()
            ret = acomp_walk_virt(walk, req, True)
            if ret:
                return ret, 0
            slen, dlen = walk.slen, walk.dlen
            dcur = acomp_walk_next_dst(walk)
            if not dcur:
                return _ENOSPC, 0
            scur = acomp_walk_next_src(walk)
            if dcur == dlen and scur == slen:  # zstd_compress_one: zstd_compress_cctx
                try:
                    out = compress(ctx, walk.src[:scur])
                except zstandard.ZstdError:
                    return _EINVAL, 0
                if len(out) > dcur:  # dstSize_tooSmall: zstd_is_error
                    req.reason = _ENOSPC
                    return _EINVAL, 0
                walk.dst[:len(out)] = out
                acomp_walk_done_src(walk, scur)
                acomp_walk_done_dst(walk, len(out))
                return 0, len(out)
            # zstd_init_cstream; beyond the kernel, the source size is pledged (see above)
            cobj = ctx[0].compressobj(size=slen)
            total = 0
            try:
                while scur:
                    piece = cobj.compress(walk.src[:scur])  # zstd_compress_stream
                    acomp_walk_done_src(walk, scur)
                    ret = _put(walk, piece)
                    if ret:
                        return ret, 0
                    total += len(piece)
                    scur = acomp_walk_next_src(walk)
                tail = cobj.flush()  # zstd_end_stream until it returns 0
            except zstandard.ZstdError:
                return _EIO, 0
            ret = _put(walk, tail)
            return ret, total + len(tail)

        def decompress(self, req: AcompReq) -> int:
            """``zstd_decompress``: this CPU's stream; one call for one segment each side
            (``zstd_decompress_one``), else the stream over the segments."""
            s = crypto_acomp_lock_stream_bh(self.streams)
            try:
                ret, total = self._decompress(req, s.ctx)
                req.dlen = 0 if ret else total
                return ret
            finally:
                crypto_acomp_unlock_stream_bh(s)

        def _decompress(self, req: AcompReq, ctx: Any) -> tuple[int, int]:
            walk = AcompWalk()
            ret = acomp_walk_virt(walk, req, True)
            if ret:
                return ret, 0
            slen, dlen = walk.slen, walk.dlen
            scur = acomp_walk_next_src(walk)
            dcur = acomp_walk_next_dst(walk)
            if dcur == dlen and scur == slen:  # zstd_decompress_one: zstd_decompress_dctx
                try:
                    out = decompress(ctx, walk.src[:scur], dcur)
                except zstandard.ZstdError:
                    if self._bigger(ctx, walk.src[:scur], dcur):
                        req.reason = _ENOSPC  # beyond the kernel: it did not fit
                    return _EINVAL, 0
                walk.dst[:len(out)] = out
                acomp_walk_done_src(walk, scur)
                acomp_walk_done_dst(walk, len(out))
                return 0, len(out)
            if not dcur:
                return _ENOSPC, 0
            dobj = ctx[1].decompressobj()  # zstd_init_dstream
            total = 0
            room = dlen
            try:
                while scur:
                    src = walk.src[:scur]
                    for at in range(0, scur, 256):  # in pieces: a bomb stops at the room
                        piece = dobj.decompress(src[at:at + 256])  # zstd_decompress_stream
                        if len(piece) > room - total:
                            return _ENOSPC, 0
                        if _put(walk, piece):
                            return _ENOSPC, 0
                        total += len(piece)
                        if dobj.eof:
                            break
                    acomp_walk_done_src(walk, scur)
                    if dobj.eof:
                        break
                    scur = acomp_walk_next_src(walk)
            except zstandard.ZstdError:
                return _EIO, 0
            if not dobj.eof:
                return _EINVAL, 0  # the source ran out before the frame was decoded
            return 0, total

        def _bigger(self, ctx: Any, src: Any, cap: int) -> bool:
            """Whether the frame decodes with more room than `cap` (the reason's probe)."""
            if cap >= 1 << 17:
                return False
            try:
                decompress(ctx, src, 1 << 17)
            except zstandard.ZstdError:
                return False
            return True

    return [ZstdScomp(compress, decompress, alloc), ZstdGeneric(alloc)]


MODULE = native_module("zstd", ("zstd", "zstd-scomp", "zstd-generic"), _make, "zstandard")
