"""lzo-scomp: raw LZO1X-1, no header (``crypto/lzo.c``), via python-lzo."""

from __future__ import annotations

import errno
from typing import Any

from ._scomp import LibScomp, scomp_module


def _make() -> list[Any]:
    import lzo

    def compress(ctx: Any, src: memoryview) -> bytes:
        return lzo.compress(bytes(src), 1, False)  # type: ignore[no-any-return]

    def decompress(ctx: Any, src: memoryview, cap: int) -> bytes:
        return lzo.decompress(bytes(src), False, cap)  # type: ignore[no-any-return]

    class LzoScomp(LibScomp):
        cra_name = "lzo"
        cra_driver_name = "lzo-scomp"
        cra_module = "lzo"
        lib_errors = (lzo.error,)
        batch_parallel = "processes"
        # The kernel's lzo1x_1_compress writes into the 128 KiB scratch unbounded: an output
        # larger than dlen ends in scomp's v6.8 check, -ENOSPC.
        compress_nospace = -errno.ENOSPC

    return [LzoScomp(compress, decompress)]


MODULE = scomp_module("lzo", ("lzo", "lzo-scomp"), _make, "python-lzo")
