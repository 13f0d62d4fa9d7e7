"""The LZ4 block rule liblz4 does not check: no match with offset 0.

Kernel counterpart: the LZ4 block format (a match's offset is 1..65535), which ``crypto/lz4.c``
and ``lz4hc.c`` rely on; liblz4's ``LZ4_decompress_safe`` (1.9.4, the one python-lz4 bundles)
decodes an offset-0 match as zeros instead of refusing it (the open item 6 of
docs/reliability.md). After a successful decode lz4-scomp and lz4hc-scomp refuse the block
(``-EINVAL``, the kernel's code for a corrupt block) when a match has offset 0 (`refused`).

The exact answer is a walk over the block's sequences (`drivers._lz4walk`, typed Python that
``pip install`` compiles with mypyc where a compiler is found: a few µs a page's block; ~100 -
200 µs where it runs as Python). Two library-speed tests come first and skip it for most
blocks: the block has no two zero bytes in a row (an offset of 0 is two zero bytes), or the
output has no four zero bytes in a row (liblz4 writes an offset-0 match, at least 4 bytes long,
as zeros; `ZERO_FILL` says whether the installed liblz4 does, probed once at import, and the
second test is only used where it does).
"""

from __future__ import annotations

from typing import Any

from drivers import _lz4walk

__all__ = ("COMPILED", "ZERO_FILL", "has_zero_offset", "refused")

_walk = _lz4walk.walk
#: Whether the walk runs compiled (mypyc), not as the Python source.
COMPILED: bool = not (_lz4walk.__file__ or "").endswith(".py")


def has_zero_offset(block: Any) -> bool:
    """Whether the LZ4 block (any buffer) has a match with offset 0 (the exact walk)."""
    b = block if type(block) is bytes else bytes(block)
    return b"\x00\x00" in b and _walk(b)


def _probe_zero_fill() -> bool:
    """Whether liblz4 decodes an offset-0 match as zeros, near the start of a long output
    (its fast loop) and near the end (its safe loop)."""
    import lz4.block

    lits = b"\xa7" * 4
    blocks = (  # (block, expected output)
        (bytes([0x40]) + lits + b"\x00\x00" + bytes([0x50]) + b"\xa7" * 5,
         lits + bytes(4) + b"\xa7" * 5),
        (bytes([0x4F]) + lits + b"\x00\x00" + bytes([20, 0xF0, 85]) + b"\x5a" * 100,
         lits + bytes(39) + b"\x5a" * 100),
    )
    for blk, want in blocks:
        try:
            out = lz4.block.decompress(blk, uncompressed_size=len(want))
        except lz4.block.LZ4BlockError:
            continue  # refused by the library itself: no decoded output to test
        if out != want:
            return False
    return True


#: Whether the installed liblz4 decodes an offset-0 match as zeros (then an output without four
#: zero bytes in a row had none).
ZERO_FILL: bool = _probe_zero_fill()


def refused(src: Any, out: bytes) -> bool:
    """Whether a block that liblz4 decoded into `out` breaks the offset-0 rule."""
    return bool(out) and (not ZERO_FILL or b"\x00\x00\x00\x00" in out) and has_zero_offset(src)
