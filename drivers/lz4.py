"""lz4-scomp: LZ4 block compression, acceleration 1 (``crypto/lz4.c``), via python-lz4."""

from __future__ import annotations

from typing import Any

from drivers._scomp import LibScomp, scomp_module


def _make() -> list[Any]:
    import lz4.block

    def compress(ctx: Any, src: memoryview) -> bytes:
        return lz4.block.compress(src, mode="default", store_size=False)  # type: ignore[no-any-return]

    def decompress(ctx: Any, src: memoryview, cap: int) -> bytes:
        return lz4.block.decompress(src, uncompressed_size=cap)  # type: ignore[no-any-return]

    block_compress = lz4.block.compress

    class Lz4Scomp(LibScomp):
        cra_name = "lz4"
        cra_driver_name = "lz4-scomp"
        cra_module = "lz4"
        lib_errors = (lz4.block.LZ4BlockError,)

        def compress(self, tfm: Any, src: memoryview, dst: memoryview, ctx: Any) -> int:
            # The hot path of zswap's default compressor: no indirection (cannot fail).
            out = block_compress(src, store_size=False)
            n = len(out)
            if n > len(dst):
                return -28  # -ENOSPC
            dst[:n] = out
            return n

    return [Lz4Scomp(compress, decompress)]


MODULE = scomp_module("lz4", ("lz4", "lz4-scomp"), _make, "python-lz4")
