"""lz4hc-scomp: LZ4 high-compression level 9 (``crypto/lz4hc.c``), via python-lz4."""

from __future__ import annotations

from typing import Any

from ._scomp import scomp_module
from .lz4 import lz4_family

LZ4HC_DEFAULT_CLEVEL = 9


def _make() -> list[Any]:
    import lz4.block

    base, decompress = lz4_family()

    def compress(ctx: Any, src: memoryview) -> bytes:
        return lz4.block.compress(  # type: ignore[no-any-return]
            src, mode="high_compression", compression=LZ4HC_DEFAULT_CLEVEL, store_size=False
        )

    class Lz4hcScomp(base):  # type: ignore[valid-type,misc]
        cra_name = "lz4hc"
        cra_driver_name = "lz4hc-scomp"
        cra_module = "lz4hc"

    return [Lz4hcScomp(compress, decompress)]


MODULE = scomp_module("lz4hc", ("lz4hc", "lz4hc-scomp"), _make, "python-lz4")
