"""lz4hc-scomp: LZ4 high-compression level 9 (``crypto/lz4hc.c``), via python-lz4."""

from __future__ import annotations

from typing import Any

from ._lz4safe import refused
from ._scomp import LibScomp, scomp_module

LZ4HC_DEFAULT_CLEVEL = 9


def _make() -> list[Any]:
    import lz4.block

    def compress(ctx: Any, src: memoryview) -> bytes:
        return lz4.block.compress(  # type: ignore[no-any-return]
            src, mode="high_compression", compression=LZ4HC_DEFAULT_CLEVEL, store_size=False
        )

    def decompress(ctx: Any, src: memoryview, cap: int) -> bytes:
        return lz4.block.decompress(src, uncompressed_size=cap)  # type: ignore[no-any-return]

    class Lz4hcScomp(LibScomp):
        cra_name = "lz4hc"
        cra_driver_name = "lz4hc-scomp"
        cra_module = "lz4hc"
        lib_errors = (lz4.block.LZ4BlockError,)
        batch_parallel = "processes"

        def valid_block(self, src: Any, out: bytes) -> bool:
            # The format forbids an offset-0 match; liblz4 decodes it (as zeros).
            return not refused(src, out)

    return [Lz4hcScomp(compress, decompress)]


MODULE = scomp_module("lz4hc", ("lz4hc", "lz4hc-scomp"), _make, "python-lz4")
