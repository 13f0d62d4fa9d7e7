"""Per-entry checksums for zswap: a corrupting compressor becomes ``decompress_fail``.

Beyond the kernel: ``mm/zswap.c`` keeps no checksum, so an accelerator that corrupts its output
(or a pool that corrupts memory) hands wrong data to the faulting task. `ChecksumZswap` is
`zswap.Zswap` with one option more: the CRC-32 (``zlib.crc32``, no new dependency; xxhash
would be faster on large pages but 4 KiB costs a few microseconds either way) of every page it
compresses into a pool is kept with the entry and checked after each decompression (load and
writeback). A mismatch counts ``decompress_fail`` (and `checksum_fail`) and returns ``-EIO``,
as a failed decompression does in v6.15: the entry stays, and nothing wrong is written back.

Kept apart from `zswap.zswap` (whose structures follow the kernel's) as a subclass; it relies
on three of its internals, ``_decompress`` and ``_decompress_batch`` (every decompression goes
through one of them) and ``_free_entry`` (every entry leaves through it).
"""

from __future__ import annotations

import errno
import zlib
from typing import Any

from zswap.page import Folio
from zswap.zswap import Buffer, Zswap, ZswapEntry, ZswapPool, _page_view

__all__ = ("ChecksumZswap",)


class ChecksumZswap(Zswap):
    """`Zswap` that verifies each decompressed page against a CRC-32 taken at store time.

    `checksum` False makes it behave exactly as `Zswap` (the option's off position).
    """

    def __init__(self, *, checksum: bool = True, **kw: Any) -> None:
        super().__init__(**kw)
        self.checksum = checksum
        #: Decompressions that succeeded but gave other bytes than were stored.
        self.checksum_fail = 0
        self._sums: dict[ZswapEntry, int] = {}

    async def store(self, type: int, offset: int, page: Buffer) -> int:
        """`Zswap.store`, remembering the page's CRC-32 when it is kept."""
        if not self.checksum:
            return await super().store(type, offset, page)
        crc = zlib.crc32(_page_view(page))  # the page as the swap layer handed it over
        ret = await super().store(type, offset, page)
        if ret == 0:
            # store() returned right after inserting the entry (no await between): it is ours.
            entry = self.entry(type, offset)
            if entry is not None and entry.length:
                self._sums[entry] = crc
        return ret

    async def store_folio(self, type: int, offset: int, folio: Folio | Buffer) -> int:
        """`Zswap.store_folio`, remembering each page's CRC-32 when the folio is kept."""
        if not isinstance(folio, Folio):
            folio = Folio(folio)
        if not self.checksum or folio.nr_pages == 1:
            return await super().store_folio(type, offset, folio)
        crcs = [zlib.crc32(page) for page in folio.pages()]
        ret = await super().store_folio(type, offset, folio)
        if ret == 0:
            for i, crc in enumerate(crcs):
                entry = self.entry(type, offset + i)
                if entry is not None and entry.length:
                    self._sums[entry] = crc
        return ret

    async def _decompress_batch(self, pool: ZswapPool, entries: list[ZswapEntry],
                                dsts: list[memoryview]) -> list[int]:
        rets = await super()._decompress_batch(pool, entries, dsts)
        for i, entry in enumerate(entries):
            want = self._sums.get(entry)
            if rets[i] == 0 and want is not None and zlib.crc32(dsts[i]) != want:
                self.decompress_fail += 1
                self.checksum_fail += 1
                rets[i] = -errno.EIO
        return rets

    async def _decompress(self, entry: ZswapEntry, dst: memoryview) -> int:
        ret = await super()._decompress(entry, dst)
        if ret == 0:
            want = self._sums.get(entry)
            if want is not None and zlib.crc32(dst) != want:
                self.decompress_fail += 1
                self.checksum_fail += 1
                return -errno.EIO
        return ret

    def _free_entry(self, entry: ZswapEntry) -> None:
        self._sums.pop(entry, None)
        super()._free_entry(entry)
