"""lz4-scomp: LZ4 block compression, acceleration 1 (``crypto/lz4.c``), via python-lz4."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from acomp.scompress import scomp_set_reason

from ._lz4safe import has_zero_offset, refused
from ._scomp import LibScomp, item_status, scomp_module


def LZ4_COMPRESSBOUND(n: int) -> int:
    """LZ4's worst-case output for `n` input bytes (``LZ4_COMPRESSBOUND``)."""
    return n + n // 255 + 16


@functools.cache
def lz4_family() -> tuple[type[LibScomp], Callable[[Any, memoryview, int], bytes]]:
    """What lz4-scomp and lz4hc-scomp share, made when python-lz4 is first needed: a base
    class with the decode side (the library's decompress with the format's offset-0 rule, its
    errors, its batch split) and the plain decompress function `LibScomp` is built with. The
    two differ only in how they compress (``crypto/lz4.c`` and ``crypto/lz4hc.c`` likewise
    share lib/lz4's decoder)."""
    import lz4.block

    block_decompress = lz4.block.decompress
    LZ4BlockError = lz4.block.LZ4BlockError

    def decompress(ctx: Any, src: memoryview, cap: int) -> bytes:
        return block_decompress(src, uncompressed_size=cap)  # type: ignore[no-any-return]

    class Lz4Family(LibScomp):
        lib_errors = (LZ4BlockError,)
        # python-lz4 releases the GIL for too short a time per page for threads to scale.
        batch_parallel = "processes"

        def valid_block(self, src: Any, out: bytes) -> bool:
            # The format forbids an offset-0 match; liblz4 decodes it (as zeros).
            return not refused(src, out)

        def decompress(self, tfm: Any, src: memoryview, dst: memoryview, ctx: Any) -> int:
            # zswap's load: the library's call; a refusal goes the generic way, which tells
            # a short output (-ENOSPC) from corrupt input (-EINVAL).
            try:
                out = block_decompress(src, uncompressed_size=len(dst))
            except LZ4BlockError:
                return LibScomp.decompress(self, tfm, src, dst, ctx)
            if out and has_zero_offset(src):  # valid_block's rule, inlined: an offset 0
                return -22  # -EINVAL
            n = len(out)
            dst[:n] = out
            return n

        def decompress_batch(self, tfm: Any, srcs: Sequence[Any], caps: Sequence[int],
                             ctx: Any) -> list[bytes | int]:
            # The bare library loop and the offset-0 walk, with no Python frame between them
            # (valid_block's rule, inlined: the walk costs a fraction of the decode).
            res: list[bytes | int] = []
            append = res.append
            for s, cap in zip(srcs, caps, strict=True):
                try:
                    out = block_decompress(s, uncompressed_size=cap)
                except LZ4BlockError:  # too small or corrupt: the per-item path tells which
                    append(item_status(
                        self.decompress(tfm, s, memoryview(bytearray(cap)), ctx)))
                    continue
                append(-22 if out and has_zero_offset(s) else out)  # offset 0: -EINVAL
            return res

    return Lz4Family, decompress


def _make() -> list[Any]:
    import lz4.block

    base, decompress = lz4_family()

    def compress(ctx: Any, src: memoryview) -> bytes:
        return lz4.block.compress(src, mode="default", store_size=False)  # type: ignore[no-any-return]

    block_compress = lz4.block.compress

    class Lz4Scomp(base):  # type: ignore[valid-type,misc]
        cra_name = "lz4"
        cra_driver_name = "lz4-scomp"
        cra_module = "lz4"

        def compress(self, tfm: Any, src: memoryview, dst: memoryview, ctx: Any) -> int:
            # The hot path of zswap's default compressor: no indirection (cannot fail).
            out = block_compress(src, store_size=False)
            n = len(out)
            if n > len(dst):  # LZ4_compress_default() gives 0: crypto/lz4.c says -EINVAL
                scomp_set_reason(-28)  # -ENOSPC, beyond the kernel
                return -22  # -EINVAL
            dst[:n] = out
            return n

        def compress_batch(self, tfm: Any, srcs: Sequence[Any], caps: Sequence[int],
                           ctx: Any) -> list[bytes | int]:
            # The bare library loop; sizes are checked after it only when a capacity could
            # be short of LZ4's worst case.
            res: list[bytes | int] = [block_compress(s, store_size=False) for s in srcs]
            if min(caps) < LZ4_COMPRESSBOUND(max(map(len, srcs))):
                for i, r in enumerate(res):
                    if len(r) > caps[i]:  # type: ignore[arg-type]
                        res[i] = -28  # -ENOSPC
            return res

    return [Lz4Scomp(compress, decompress)]


MODULE = scomp_module("lz4", ("lz4", "lz4-scomp"), _make, "python-lz4")
