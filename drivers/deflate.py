"""deflate-scomp: raw deflate, window bits 11, memLevel 9 (``crypto/deflate.c``), via zlib."""

from __future__ import annotations

import zlib
from typing import Any

from ._scomp import LibScomp, scomp_module

DEFLATE_DEF_LEVEL = zlib.Z_DEFAULT_COMPRESSION
DEFLATE_DEF_WINBITS = 11
DEFLATE_DEF_MEMLEVEL = 9


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


def _make() -> list[Any]:
    class DeflateScomp(LibScomp):
        cra_name = "deflate"
        cra_driver_name = "deflate-scomp"
        cra_module = "deflate"
        lib_errors = (zlib.error,)
        batch_parallel = "threads"

    return [DeflateScomp(_compress, _decompress)]


MODULE = scomp_module("deflate", ("deflate", "deflate-scomp"), _make, "zlib")
