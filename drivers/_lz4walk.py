"""The walk over an LZ4 block's sequences that finds a match with offset 0 (the reference).

This module is plain, typed Python and stays the reference. ``pip install`` compiles it with
mypyc where a C compiler is found (setup.py; an optional build: without a compiler this very
file runs). Nothing here is hand-written C. Every read is bounds-checked: the walk is safe on
any input. `acomp_drivers._lz4safe` (drivers/_lz4safe.py) is the interface the drivers use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # mypyc's native 64-bit ints; as Python, the annotations are never evaluated
    from mypy_extensions import i64


def walk(b: bytes) -> bool:
    """Whether the LZ4 block `b` has a match with offset 0.

    A sequence is: token, literal length (high nibble; 15 adds bytes up to one below 255),
    literals, a 2-byte little-endian offset, match length (low nibble; 15 adds bytes up to one
    below 255). The last sequence is literals only. The walk stops at anything truncated (not
    an offset 0: liblz4 judges the rest). It searches nothing first: compiled, walking a
    page's block (~200 sequences) costs less than CPython's search for two zero bytes in it.
    """
    n: i64 = len(b)
    i: i64 = 0
    while i < n:
        t: i64 = b[i]
        i += 1
        lit: i64 = t >> 4
        if lit == 15:
            while True:
                if i >= n:
                    return False
                s: i64 = b[i]
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
                m: i64 = b[i]
                i += 1
                if m != 255:
                    break
    return False
