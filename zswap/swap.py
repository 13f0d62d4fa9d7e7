"""The swap layer: a swap area on a real file, its swap cache, and frontswap in front of zswap.

Kernel counterpart: ``mm/swapfile.c`` (``swap_info_struct``, slot allocation, ``swap_free``,
swapon/swapoff), ``mm/swap_state.c`` (the swap cache), ``mm/page_io.c`` (``swap_writepage``,
``swap_readpage``) and ``mm/frontswap.c`` (v3.5 - v6.5: the bitmap of offsets a backend may hold).

A `SwapDevice` is a file: page `offset` lives at byte ``offset * PAGE_SIZE``, written with
``os.pwrite`` and read with ``os.preadv``; page 0 is the header (``SWAPSPACE2``), so slots start
at 1. A `SwapArea` hands out slots, keeps the swap cache (one locked page per offset being
swapped in, swapped out or written back, which is what serialises them) and puts zswap in
front: a swap-out tries `Zswap.store` and writes the page to the file only when zswap rejects
it; a swap-in tries `Zswap.load` for an offset the frontswap map has and reads the file when
zswap does not hold the page (never stored, or written back). Whatever was swapped out comes
back byte-exact, or the swap-in returns an error (``-EIO``), never other data.

As in the kernel, a slot freed while its page is in the swap cache stays reserved
(``SWAP_HAS_CACHE``) until the page leaves the cache, and only then is zswap told
(``frontswap_invalidate_page``) and the slot reused.

Large folios (v6.10+ mTHP swap-out, ``folio_alloc_swap``): `SwapArea.swap_out_folio` takes
2^order contiguous slots aligned to the order (a swap cluster's run), offers the whole folio to
zswap (``zswap_store(folio)``, all or nothing) and writes the whole folio to the device when
zswap rejects it; ``swpout`` counts those folios per order (``MTHP_STAT_SWPOUT``). Swap-in stays
per page, and `SwapArea.swap_in_readahead` reads a window of contiguous slots at once
(``swap_cluster_readahead``), zswap decompressing its pages as one batch where it batches.
"""

from __future__ import annotations

import errno
import os
import struct
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel

from acomp._constants import PAGE_SIZE
from zswap._errors import SwapFullError
from zswap.page import HPAGE_PMD_ORDER, Folio
from zswap.zswap import Zswap

__all__ = ("SWAP_SIGNATURE", "SwapArea", "SwapDevice", "SwapFullError", "SwapStatistics")

#: ``mkswap``'s signature in the last 10 bytes of page 0.
SWAP_SIGNATURE = b"SWAPSPACE2"
_ENOENT = -errno.ENOENT


class SwapDevice:
    """A swap file of `nr_pages` pages (page 0: the header). `path` None makes a temporary
    file, removed by `close`. `io_delay` seconds are slept after each read or write (a disk's
    latency); 0 only yields to other tasks."""

    def __init__(self, path: str | os.PathLike[str] | None, nr_pages: int, *,
                 io_delay: float = 0.0) -> None:
        if nr_pages < 2:
            raise ValueError("a swap device needs a header page and at least one slot")
        self.nr_pages = nr_pages
        self.io_delay = io_delay
        self._temp = path is None
        if path is None:
            fd, name = tempfile.mkstemp(prefix="zswap-", suffix=".swap")
            self.path = name
        else:
            self.path = os.fspath(path)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        self._fd = fd
        os.ftruncate(fd, nr_pages * PAGE_SIZE)
        header = bytearray(PAGE_SIZE)
        # union swap_header: bootbits[1024], version, last_page, nr_badpages; magic at the end.
        struct.pack_into("<III", header, 1024, 1, nr_pages - 1, 0)
        header[PAGE_SIZE - len(SWAP_SIGNATURE):] = SWAP_SIGNATURE
        os.pwrite(fd, header, 0)
        self.reads = 0
        self.writes = 0

    def __repr__(self) -> str:
        return f"<SwapDevice {self.path} {self.nr_pages} pages>"

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._fd < 0

    def _check(self, offset: int) -> None:
        if self._fd < 0:
            raise ValueError("swap device is closed")
        if not 1 <= offset < self.nr_pages:
            raise ValueError(f"swap offset {offset} outside 1..{self.nr_pages - 1}")

    async def write_page(self, offset: int, data: Any) -> None:
        """Write one page at ``offset * PAGE_SIZE``."""
        self._check(offset)
        n = os.pwrite(self._fd, data, offset * PAGE_SIZE)
        if n != PAGE_SIZE:
            raise OSError(errno.EIO, f"short write at swap offset {offset}: {n}")
        self.writes += 1
        await self._io_wait()

    async def write_pages(self, offset: int, data: memoryview) -> None:
        """Write ``len(data) // PAGE_SIZE`` pages from ``offset * PAGE_SIZE`` (one I/O)."""
        nr = len(data) // PAGE_SIZE
        self._check(offset)
        self._check(offset + nr - 1)
        n = os.pwrite(self._fd, data, offset * PAGE_SIZE)
        if n != nr * PAGE_SIZE:
            raise OSError(errno.EIO, f"short write at swap offset {offset}: {n}")
        self.writes += nr
        await self._io_wait()

    async def read_page(self, offset: int, buf: memoryview) -> None:
        """Read one page from ``offset * PAGE_SIZE`` into `buf`."""
        self._check(offset)
        n = os.preadv(self._fd, [buf], offset * PAGE_SIZE)
        if n != PAGE_SIZE:
            raise OSError(errno.EIO, f"short read at swap offset {offset}: {n}")
        self.reads += 1
        await self._io_wait()

    async def _io_wait(self) -> None:
        if self.io_delay > 0:
            await anyio.sleep(self.io_delay)
        else:
            await anyio.lowlevel.checkpoint()

    def read_header(self) -> tuple[int, int, bytes]:
        """(version, last_page, signature) of page 0."""
        page = os.pread(self._fd, PAGE_SIZE, 0)
        version, last_page, _ = struct.unpack_from("<III", page, 1024)
        return version, last_page, page[PAGE_SIZE - len(SWAP_SIGNATURE):]

    def close(self) -> None:
        """Close the file (and remove it, if the device made it)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            if self._temp:
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass


class _CachePage:
    """A page in the swap cache: locked while being filled or written."""

    __slots__ = ("data", "event", "uptodate")

    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.uptodate = False
        self.event = anyio.Event()  # set at unlock_page


@dataclass(frozen=True)
class SwapStatistics:
    """What went where: swap-outs kept by zswap or written to the device, swap-ins served by
    zswap, the device or the swap cache, pages written back by zswap, failed swap-ins."""

    swapouts: int
    zswap_stores: int
    device_writes: int
    swapins: int
    zswap_loads: int
    device_reads: int
    cache_hits: int
    writebacks: int
    io_errors: int
    slots_used: int
    #: Large folios written to the device whole, by order (``MTHP_STAT_SWPOUT``).
    swpout: tuple[int, ...] = ()

    @property
    def zswap_hit_rate(self) -> float:
        """Swap-ins zswap served over those zswap or the device served."""
        n = self.zswap_loads + self.device_reads
        return self.zswap_loads / n if n else 0.0


class SwapArea:
    """One swap area (``swap_info_struct``) of `device`, with `zswap` in front (or None).

    Creating it is swapon: zswap's tree for `type` is made and writeback is pointed here.
    `store_ns`/`load_ns` collect the time of each zswap store (kept: one figure per folio) and
    load (hit; a readahead batch adds its time shared out over its pages).
    """

    def __init__(self, device: SwapDevice, zswap: Zswap | None = None, type: int = 0) -> None:
        self.device = device
        self.zswap = zswap
        self.type = type
        n = device.nr_pages
        self._count = bytearray(n)  # swap_map: 1 while the slot is in use
        self._count[0] = 1  # the header
        self._frontswap = bytearray(n)  # frontswap_map
        self._cache: dict[int, _CachePage] = {}
        self._free: deque[int] = deque(range(1, n))
        #: 1 while the slot is in `_free` (a folio's run may take it out of order; the copy
        #: left in the queue is skipped when popped, and never doubled).
        self._queued = bytearray(b"\x01") * n
        self._queued[0] = 0
        self._free_pending: set[int] = set()
        self._used = 0
        self._swapouts = self._zstores = self._dwrites = 0
        self._swapins = self._zloads = self._dreads = self._chits = 0
        self._writebacks = self._ioerr = 0
        self._swpout = [0] * (HPAGE_PMD_ORDER + 1)
        self.store_ns: list[int] = []
        self.load_ns: list[int] = []
        self.active = True
        if zswap is not None:
            zswap.init(type)
            zswap.register_backend(type, self)

    def __repr__(self) -> str:
        return f"<SwapArea {self.type} on {self.device.path}: {self._used} slots used>"

    # -- slots ---------------------------------------------------------------------------------

    def get_swap_page(self) -> int | None:
        """A free slot, or None when the area is full."""
        free = self._free
        count = self._count
        while free:
            offset = free.popleft()
            self._queued[offset] = 0
            if count[offset]:
                continue  # a stale copy: a folio's run took this slot out of order
            count[offset] = 1
            self._used += 1
            return offset
        return None

    def get_swap_pages(self, nr: int) -> int | None:
        """``folio_alloc_swap``: `nr` (a power of two) free contiguous slots aligned to `nr`,
        the first of them, or None when no such run is free (the kernel then splits the
        folio)."""
        if nr == 1:
            return self.get_swap_page()
        if nr < 1 or nr & (nr - 1):
            raise ValueError(f"get_swap_pages: {nr} is not a power of two")
        count = self._count
        run = bytes(nr)
        end = len(count)
        start = nr
        while start + nr <= end:
            i = count.find(run, start)
            if i < 0:
                return None
            offset = -(-i // nr) * nr  # align up
            if offset + nr > end:
                return None
            if count[offset:offset + nr] != run:
                start = offset + nr
                continue
            if any(o in self._cache for o in range(offset, offset + nr)):
                start = offset + nr  # freed but still in the swap cache (SWAP_HAS_CACHE)
                continue
            count[offset:offset + nr] = b"\x01" * nr
            self._used += nr
            return offset
        return None

    def swap_free(self, offset: int) -> None:
        """Drop the slot's last user; it is freed now, or when its page leaves the cache."""
        if not 1 <= offset < len(self._count) or not self._count[offset]:
            raise ValueError(f"swap_free: bad swap offset {offset}")
        self._count[offset] = 0
        self._used -= 1
        if offset in self._cache:
            self._free_pending.add(offset)  # SWAP_HAS_CACHE keeps it reserved
        else:
            self._entry_free(offset)

    def _entry_free(self, offset: int) -> None:
        """``swap_entry_free``: zswap forgets the page, the slot is reusable."""
        self._free_pending.discard(offset)
        if self._frontswap[offset]:
            self._frontswap[offset] = 0
            if self.zswap is not None:
                self.zswap.invalidate_page(self.type, offset)
        if not self._queued[offset]:
            self._queued[offset] = 1
            self._free.append(offset)

    def _cache_add(self, offset: int, data: memoryview) -> _CachePage:
        page = _CachePage(data)
        self._cache[offset] = page
        return page

    def _cache_del(self, offset: int, page: _CachePage) -> None:
        """Unlock the page and take it out of the swap cache."""
        if self._cache.get(offset) is page:
            del self._cache[offset]
        page.event.set()
        if offset in self._free_pending and not self._count[offset]:
            self._entry_free(offset)

    # -- swap out / swap in --------------------------------------------------------------------

    async def swap_out(self, page: Any) -> int:
        """Swap `page` out to a new slot: its offset. zswap keeps it, or the device does.

        Raises `SwapFullError` when no slot is free.
        """
        if not self.active:
            raise ValueError("swap area is off")
        view = memoryview(page).cast("B") if not isinstance(page, memoryview) else page
        if view.nbytes != PAGE_SIZE:
            raise ValueError(f"swap_out takes one page of {PAGE_SIZE} bytes, not "
                             f"{view.nbytes}")
        offset = self.get_swap_page()
        if offset is None:
            raise SwapFullError(self.device.nr_pages)
        cp = self._cache_add(offset, view)
        try:
            self._swapouts += 1
            if await self._frontswap_store(offset, view) != 0:
                await self.device.write_page(offset, view)
                self._dwrites += 1
        except BaseException:
            self._cache_del(offset, cp)
            self.swap_free(offset)
            raise
        cp.uptodate = True
        self._cache_del(offset, cp)
        return offset

    async def swap_out_folio(self, folio: Folio) -> int:
        """Swap `folio` out to 2^order new contiguous slots: the first offset. zswap keeps the
        whole folio, or the device gets the whole folio.

        Raises `SwapFullError` when no aligned run of free slots is left.
        """
        if not self.active:
            raise ValueError("swap area is off")
        nr = folio.nr_pages
        offset = self.get_swap_pages(nr)
        if offset is None:
            raise SwapFullError(self.device.nr_pages)
        cps = [self._cache_add(offset + i, page) for i, page in enumerate(folio.pages())]
        try:
            self._swapouts += nr
            if await self._frontswap_store_folio(offset, folio) != 0:
                await self.device.write_pages(offset, folio.data)
                self._dwrites += nr
                self._swpout[folio.order] += 1
        except BaseException:
            for i, cp in enumerate(cps):
                self._cache_del(offset + i, cp)
                self.swap_free(offset + i)
            raise
        for i, cp in enumerate(cps):
            cp.uptodate = True
            self._cache_del(offset + i, cp)
        return offset

    async def _frontswap_store_folio(self, offset: int, folio: Folio) -> int:
        z = self.zswap
        if z is None:
            return -errno.ENODEV
        nr = folio.nr_pages
        for o in range(offset, offset + nr):
            if self._frontswap[o]:
                self._frontswap[o] = 0
                z.invalidate_page(self.type, o)
        t0 = time.perf_counter_ns()
        ret = await z.store_folio(self.type, offset, folio)
        if ret == 0:
            self.store_ns.append(time.perf_counter_ns() - t0)
            self._frontswap[offset:offset + nr] = b"\x01" * nr
            self._zstores += nr
        return ret

    async def _frontswap_store(self, offset: int, page: memoryview) -> int:
        z = self.zswap
        if z is None:
            return -errno.ENODEV
        if self._frontswap[offset]:
            # A dup: the old copy must go whether or not the new store succeeds.
            self._frontswap[offset] = 0
            z.invalidate_page(self.type, offset)
        t0 = time.perf_counter_ns()
        ret = await z.store(self.type, offset, page)
        if ret == 0:
            self.store_ns.append(time.perf_counter_ns() - t0)
            self._frontswap[offset] = 1
            self._zstores += 1
        return ret

    async def swap_in(self, offset: int, page: Any, *, free: bool = True) -> int:
        """Read the page of `offset` into `page`: 0, or ``-EIO`` when zswap failed to
        decompress it (the slot and zswap's entry are then kept). With `free`, the slot is
        released afterwards (the page now lives in memory only)."""
        if not 1 <= offset < len(self._count) or not self._count[offset]:
            raise ValueError(f"swap_in: swap offset {offset} is not in use")
        dst = memoryview(page).cast("B") if not isinstance(page, memoryview) else page
        while True:
            cp = self._cache.get(offset)
            if cp is None:
                break
            await cp.event.wait()  # wait_on_page_locked
            if not self._count[offset]:
                return _ENOENT  # another swap-in of it freed the slot meanwhile
            if cp.uptodate:
                dst[:] = cp.data
                self._swapins += 1
                self._chits += 1
                if free:
                    self.swap_free(offset)
                return 0
        cp = self._cache_add(offset, dst)
        z = self.zswap
        miss = _ENOENT if z is None else z.load_miss  # frontswap's -1 up to v6.4
        ret = miss
        try:
            self._swapins += 1
            if self._frontswap[offset] and z is not None:
                t0 = time.perf_counter_ns()
                ret = await z.load(self.type, offset, dst)
                if ret == 0:
                    self.load_ns.append(time.perf_counter_ns() - t0)
                    self._zloads += 1
            if ret == miss:
                await self.device.read_page(offset, dst)
                self._dreads += 1
                ret = 0
            elif ret:
                self._ioerr += 1
            cp.uptodate = ret == 0
        finally:
            self._cache_del(offset, cp)
        if ret == 0 and free:
            self.swap_free(offset)
        return ret

    async def swap_in_readahead(self, offset: int, pages: list[Any], *,
                                free: bool = True) -> list[int]:
        """Read the window of ``len(pages)`` contiguous slots from `offset` into `pages`
        (``swap_cluster_readahead``): each page's status as `swap_in` gives it. The pages zswap
        holds are loaded together (`Zswap.load_batch`: one decompression batch where the
        compressor batches); the rest are read from the device; a page already in the swap
        cache is taken from there."""
        n = len(pages)
        for o in range(offset, offset + n):
            if not 1 <= o < len(self._count) or not self._count[o]:
                raise ValueError(f"swap_in_readahead: swap offset {o} is not in use")
        dsts = [memoryview(p).cast("B") if not isinstance(p, memoryview) else p for p in pages]
        z = self.zswap
        miss = _ENOENT if z is None else z.load_miss
        rets = [miss] * n
        mine = [i for i in range(n) if offset + i not in self._cache]
        cps = {i: self._cache_add(offset + i, dsts[i]) for i in mine}
        try:
            self._swapins += len(mine)
            hits = [i for i in mine if self._frontswap[offset + i]] if z is not None else []
            if hits:
                assert z is not None
                t0 = time.perf_counter_ns()
                got = await z.load_batch(self.type, [offset + i for i in hits],
                                         [dsts[i] for i in hits])
                each = (time.perf_counter_ns() - t0) // len(hits)
                for i, r in zip(hits, got, strict=True):
                    rets[i] = r
                    if r == 0:
                        self.load_ns.append(each)
                        self._zloads += 1
            for i in mine:
                if rets[i] == miss:
                    await self.device.read_page(offset + i, dsts[i])
                    self._dreads += 1
                    rets[i] = 0
                elif rets[i]:
                    self._ioerr += 1
                cps[i].uptodate = rets[i] == 0
        finally:
            for i, cp in cps.items():
                self._cache_del(offset + i, cp)
        for i in range(n):
            if i in cps:
                if rets[i] == 0 and free:
                    self.swap_free(offset + i)
            else:
                rets[i] = await self.swap_in(offset + i, dsts[i], free=free)
        return rets

    # -- zswap writeback (SwapBackend) ---------------------------------------------------------

    def swapcache_prepare(self, offset: int) -> memoryview | None:
        """Add a swap-cache page for slot `offset` for writeback to fill; ``None`` when the slot is
        free or already cached."""
        if offset in self._cache or not self._count[offset]:
            return None
        return self._cache_add(offset, memoryview(bytearray(PAGE_SIZE))).data

    def swapcache_abort(self, offset: int) -> None:
        """Drop the swap-cache page `swapcache_prepare` added (writeback gave up)."""
        cp = self._cache.get(offset)
        if cp is not None:
            self._cache_del(offset, cp)

    async def swap_writepage(self, offset: int) -> int:
        """Write slot `offset`'s swap-cache page to the device and drop it from the cache."""
        cp = self._cache[offset]
        cp.uptodate = True
        cp.event.set()  # unlocked: swap-ins may use it while it is written
        try:
            await self.device.write_page(offset, cp.data)
        finally:
            self._cache_del(offset, cp)
        self._writebacks += 1
        return 0

    # -- the area ------------------------------------------------------------------------------

    def swapoff(self) -> None:
        """``swapoff``: zswap forgets the whole area (``invalidate_area``); the device stays
        open (`close` closes it)."""
        if not self.active:
            return
        self.active = False
        if self.zswap is not None:
            self.zswap.invalidate_area(self.type)
            self.zswap.register_backend(self.type, None)

    def close(self) -> None:
        """``swapoff`` and close the device."""
        self.swapoff()
        self.device.close()

    def in_zswap(self, offset: int) -> bool:
        """Whether zswap holds the page of `offset` now."""
        return self.zswap is not None and self.zswap.entry(self.type, offset) is not None

    def statistics(self) -> SwapStatistics:
        """A snapshot of the swap-outs and swap-ins so far and where each went."""
        return SwapStatistics(
            swapouts=self._swapouts,
            zswap_stores=self._zstores,
            device_writes=self._dwrites,
            swapins=self._swapins,
            zswap_loads=self._zloads,
            device_reads=self._dreads,
            cache_hits=self._chits,
            writebacks=self._writebacks,
            io_errors=self._ioerr,
            slots_used=self._used,
            swpout=tuple(self._swpout),
        )
