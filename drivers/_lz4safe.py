"""The LZ4 block rule liblz4 does not check: no match with offset 0.

Kernel counterpart: the LZ4 block format (a match's offset is 1..65535), which ``crypto/lz4.c``
and ``lz4hc.c`` rely on; liblz4's ``LZ4_decompress_safe`` (1.9.4, the one python-lz4 bundles)
decodes an offset-0 match as zeros instead of refusing it (the open item 6 of
docs/reliability.md). After a successful decode lz4-scomp and lz4hc-scomp walk the block's
sequences and refuse it (``-EINVAL``, the kernel's code for a corrupt block) when a match has
offset 0. The walk is C (``drivers/_lz4check.c``, built by ``pip install``: about a
microsecond a page); without a compiler the same walk runs here in Python (~200 µs a page).
"""

from __future__ import annotations

from typing import Any

__all__ = ("has_zero_offset",)


def _has_zero_offset(block: Any) -> bool:
    """The walk of ``drivers/_lz4check.c``, in Python (every read bounds-checked)."""
    b = memoryview(block).cast("B")
    n = len(b)
    i = 0
    while i < n:
        t = b[i]
        i += 1
        lit = t >> 4
        if lit == 15:
            while True:
                if i >= n:
                    return False
                s = b[i]
                i += 1
                lit += s
                if s != 255:
                    break
        if n - i <= lit:
            return False  # the last literals: the end of the block
        i += lit
        if n - i < 2:
            return False
        if b[i] == 0 and b[i + 1] == 0:
            return True
        i += 2
        if t & 15 == 15:
            while True:
                if i >= n:
                    return False
                s = b[i]
                i += 1
                if s != 255:
                    break
    return False


try:
    from ._lz4check import has_zero_offset
except ImportError:  # built without a compiler
    has_zero_offset = _has_zero_offset
