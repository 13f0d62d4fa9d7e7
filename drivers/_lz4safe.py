"""The LZ4 block rule liblz4 does not check: no match with offset 0.

Kernel counterpart: the LZ4 block format (a match's offset is 1..65535), which ``crypto/lz4.c``
and ``lz4hc.c`` rely on; liblz4's ``LZ4_decompress_safe`` (1.9.4, the one python-lz4 bundles)
decodes an offset-0 match as zeros instead of refusing it (the open item 6 of
docs/reliability.md). After a successful decode lz4-scomp and lz4hc-scomp refuse the block
(``-EINVAL``, the kernel's code for a corrupt block) when a match has offset 0 (`refused`).

The answer is an exact walk over the block's sequences (`acomp_drivers._lz4walk`, typed Python
that ``pip install`` compiles with mypyc where a C compiler is found: ~0.8 µs a page's block of
~200 sequences; ~50 - 200 µs where it runs as Python). Compiled, the walk runs on every block:
CPython's search for two zero bytes in a row (an offset of 0 is two zero bytes) costs ~1.9 µs
on a page's block, more than the walk, and 70% of corpus blocks have such a pair anyway (the
offsets below 256 followed by a token 0, the zero pages' last literals). As Python, that search
still screens the block first. A test of the output for four zero bytes in a row (liblz4 writes
an offset-0 match as zeros) was measured and not taken: it relies on liblz4's behaviour.
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
    # Compiled, the walk is cheaper than the search that could skip it (docstring above).
    return (COMPILED or b"\x00\x00" in b) and _walk(b)


def refused(src: Any, out: bytes) -> bool:
    """Whether a block that liblz4 decoded into `out` breaks the offset-0 rule."""
    return bool(out) and has_zero_offset(src)
