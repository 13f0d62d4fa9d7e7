"""``struct zswap_entry`` and the same-filled test: what zswap's store paths build, per page.

Below both `zswap.zswap` (the layer) and `zswap.versions` (each kernel's store and load
paths), which both make entries, so neither has to import the other to build one.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from acomp._constants import PAGE_SIZE

if TYPE_CHECKING:
    from zswap.zswap import ZswapPool

__all__ = ("ZswapEntry", "same_filled_word")

#: The first and the last word of a page, native order (either order tells equal words).
_first_last = struct.Struct(f"=Q{PAGE_SIZE - 16}xQ").unpack_from


class ZswapEntry:
    """``struct zswap_entry``: where one swapped-out page is kept.

    ``length`` 0 means a same-filled page kept as ``value`` (no zpool memory, no pool).
    """

    __slots__ = ("handle", "in_tree", "incompressible", "length", "offset", "pool", "refcount",
                 "type", "value")

    def __init__(self, type: int, offset: int) -> None:
        self.type = type
        self.offset = offset
        self.refcount = 1
        self.length = 0
        #: v6.18: the page is kept as it is (``length == PAGE_SIZE``), not compressed.
        self.incompressible = False
        self.pool: ZswapPool | None = None
        self.handle = 0
        self.value = b""
        self.in_tree = False

    def __repr__(self) -> str:
        what = f"same-filled {self.value.hex()}" if not self.length else (
            f"{self.length} bytes in {self.pool.name if self.pool else '?'}")
        return f"<ZswapEntry {self.type}:{self.offset:#x} {what} ref={self.refcount}>"


def same_filled_word(v: memoryview) -> bytes | None:
    """``zswap_is_page_same_filled``: the 8-byte word a page repeats, or None.

    The first word against the last, as the kernel starts (a memoryview comparison goes byte
    by byte through the struct module: two words unpacked at once cost a tenth), then the
    whole page against the word repeated."""
    first, last = _first_last(v)
    if first != last:
        return None
    word = v[0:8].tobytes()
    return word if v.tobytes() == word * (PAGE_SIZE // 8) else None
