"""The LZ4 block rule liblz4 does not check: no match with offset 0.

Kernel counterpart: the LZ4 block format (a match's offset is 1..65535), which ``crypto/lz4.c``
and ``lz4hc.c`` rely on; liblz4's ``LZ4_decompress_safe`` (1.9.4, the one python-lz4 bundles)
decodes an offset-0 match as zeros instead of refusing it (the open item 6 of
docs/reliability.md). After a successful decode lz4-scomp and lz4hc-scomp refuse the block
(``-EINVAL``, the kernel's code for a corrupt block) when a match has offset 0 (`refused`).

The answer is an exact walk over the block's sequences (`acomp_drivers._lz4walk`, typed Python that
``pip install`` compiles with mypyc where a C compiler is found: ~3 µs a page's block, 1.3x the
C extension it replaced; ~100 - 200 µs where it runs as Python), skipped at library speed for a
block without two zero bytes in a row (an offset of 0 is two zero bytes). A test of the output
for four zero bytes in a row (liblz4 writes an offset-0 match as zeros) was measured and not
taken: on corpus pages it costs about what it saves, and it would rely on liblz4's behaviour.
"""

from __future__ import annotations

from typing import Any

from . import _lz4walk

__all__ = ("COMPILED", "has_zero_offset", "refused")

_walk = _lz4walk.walk
#: Whether the walk runs compiled (mypyc), not as the Python source.
COMPILED: bool = not (_lz4walk.__file__ or "").endswith(".py")


def has_zero_offset(block: Any) -> bool:
    """Whether the LZ4 block (any buffer) has a match with offset 0 (the exact walk)."""
    if type(block) is bytes:
        b = block
    else:  # a view of a whole bytes object (a request's source over the caller's bytes): no copy
        obj = getattr(block, "obj", None)
        b = (obj if type(obj) is bytes and len(obj) == len(block) and block.c_contiguous
             else bytes(block))
    return b"\x00\x00" in b and _walk(b)


def refused(src: Any, out: bytes) -> bool:
    """Whether a block that liblz4 decoded into `out` breaks the offset-0 rule."""
    return bool(out) and has_zero_offset(src)
