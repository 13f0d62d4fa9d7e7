"""The page layer: physical memory as 4 KiB order-0 pages, allocated with GFP flags; folios.

Kernel counterpart: ``mm/page_alloc.c`` (``alloc_page``, ``__free_page``, ``totalram_pages``),
``include/linux/gfp.h`` (the GFP flags, ``gfpflags_allow_blocking``), ``page_address``, and
``include/linux/mm.h``'s folio helpers (``folio_order``, ``folio_nr_pages``, ``folio_page``).

A `PhysMem` is one block of real bytes (a numpy buffer, so untouched pages cost no host memory)
cut into `totalram_pages` pages numbered from 0 (the page frame number, pfn). Allocators store
their objects in it through `PhysMem.mem`, a writable ``memoryview`` of the whole memory, at byte
address ``pfn * PAGE_SIZE + offset``: objects are really written, really copied, and a bug that
writes at the wrong place really corrupts a neighbour.

``alloc_page(gfp)`` returns a pfn, or ``None`` when memory is exhausted (the kernel's NULL; there
is no reclaim here). A GFP mask that allows direct reclaim (``GFP_KERNEL``) may sleep, so it calls
`sched.might_sleep` first: allocating with it in atomic context produces the kernel's splat.
A freed page keeps its bytes, as in the kernel: the next owner sees stale data unless it asks for
``__GFP_ZERO``.

A `Folio` is what the swap layer swaps out: 2^order contiguous pages as one buffer (order 0 a
single page, up to ``HPAGE_PMD_ORDER``, a 2 MiB THP); zswap stores it one entry per page.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from acomp import sched
from acomp._constants import PAGE_SIZE
from zswap._errors import BadPageError

__all__ = (
    "DEFAULT_TOTALRAM_PAGES",
    "GFP_ATOMIC",
    "GFP_KERNEL",
    "GFP_NOFS",
    "GFP_NOIO",
    "GFP_NOWAIT",
    "HPAGE_PMD_ORDER",
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "__GFP_DIRECT_RECLAIM",
    "__GFP_FS",
    "__GFP_HIGH",
    "__GFP_HIGHMEM",
    "__GFP_IO",
    "__GFP_KSWAPD_RECLAIM",
    "__GFP_MOVABLE",
    "__GFP_NORETRY",
    "__GFP_NOWARN",
    "__GFP_RECLAIM",
    "__GFP_ZERO",
    "BadPageError",
    "Folio",
    "MemStats",
    "PhysMem",
    "alloc_page",
    "default_memory",
    "folio_nr_pages",
    "folio_order",
    "folio_page",
    "folio_test_large",
    "free_page",
    "gfpflags_allow_blocking",
    "page_view",
    "set_default_memory",
    "totalram_pages",
)

PAGE_SHIFT = 12
assert 1 << PAGE_SHIFT == PAGE_SIZE

# GFP bits with the kernel's values (include/linux/gfp_types.h, v5.x-v6.x).
#: Allocate from highmem: the page may have no permanent kernel mapping.
__GFP_HIGHMEM = 0x02
#: The page may be moved by compaction (zsmalloc's zspages are movable).
__GFP_MOVABLE = 0x08
#: The caller is high priority (may dip into reserves).
__GFP_HIGH = 0x20
#: May start physical I/O.
__GFP_IO = 0x40
#: May call into the filesystem.
__GFP_FS = 0x80
#: Return a zeroed page.
__GFP_ZERO = 0x100
#: May enter direct reclaim, i.e. may sleep (``gfpflags_allow_blocking``).
__GFP_DIRECT_RECLAIM = 0x400
#: May wake kswapd (does not sleep).
__GFP_KSWAPD_RECLAIM = 0x800
#: Suppress allocation-failure reports.
__GFP_NOWARN = 0x2000
#: Fail rather than retry hard.
__GFP_NORETRY = 0x10000
#: Both kinds of reclaim.
__GFP_RECLAIM = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM

#: The normal sleeping allocation.
GFP_KERNEL = __GFP_RECLAIM | __GFP_IO | __GFP_FS
#: Must not sleep; may use reserves (``__GFP_ATOMIC``, 0x200, was dropped in v6.4).
GFP_ATOMIC = __GFP_HIGH | 0x200 | __GFP_KSWAPD_RECLAIM
#: Must not sleep, no reserves.
GFP_NOWAIT = __GFP_KSWAPD_RECLAIM
#: May sleep but not start I/O.
GFP_NOIO = __GFP_RECLAIM
#: May sleep but not call into the filesystem.
GFP_NOFS = __GFP_RECLAIM | __GFP_IO

# Aliases for use inside classes, where Python would mangle the double-underscore names.
_DIRECT_RECLAIM = __GFP_DIRECT_RECLAIM
_ZERO = __GFP_ZERO

#: Default size of the default memory: 1 GiB of 4 KiB pages (host memory is used only as touched).
DEFAULT_TOTALRAM_PAGES = 262144


def gfpflags_allow_blocking(gfp: int) -> bool:
    """True when `gfp` allows direct reclaim, i.e. the allocation may sleep."""
    return bool(gfp & __GFP_DIRECT_RECLAIM)


@dataclass(frozen=True)
class MemStats:
    """Page accounting of one memory (as ``/proc/meminfo`` would show it, in pages)."""

    totalram_pages: int
    nr_used_pages: int
    nr_free_pages: int
    allocations: int
    failed_allocations: int


class PhysMem:
    """Physical memory: `totalram_pages` pages of real bytes and an order-0 page allocator.

    `mem` is a writable ``memoryview`` of all of it; page `pfn` is
    ``mem[pfn * PAGE_SIZE:(pfn + 1) * PAGE_SIZE]`` (`page_view`).
    """

    __slots__ = (
        "_allocated",
        "_allocs",
        "_array",
        "_failed",
        "_free",
        "_high",
        "mem",
        "name",
        "totalram_pages",
    )

    def __init__(self, totalram_pages: int = DEFAULT_TOTALRAM_PAGES, *, name: str = "mem") -> None:
        if totalram_pages < 1:
            raise ValueError("totalram_pages must be at least 1")
        self.name = name
        self.totalram_pages = totalram_pages
        # np.zeros is calloc: the host commits only the pages that are written.
        self._array = np.zeros(totalram_pages * PAGE_SIZE, np.uint8)
        self.mem = memoryview(self._array.data)
        # Freed pfns are reused last-freed-first (as the per-CPU page lists hand out hot pages);
        # pfns never allocated yet come from the high-water mark.
        self._free: list[int] = []
        self._high = 0
        self._allocated = bytearray(totalram_pages)
        self._allocs = 0
        self._failed = 0

    def __repr__(self) -> str:
        return f"<PhysMem {self.name}: {self.nr_used_pages}/{self.totalram_pages} pages used>"

    @property
    def nr_used_pages(self) -> int:
        """Pages allocated and not freed."""
        return self._high - len(self._free)

    @property
    def nr_free_pages(self) -> int:
        """Pages not allocated now."""
        return self.totalram_pages - self.nr_used_pages

    def alloc_page(self, gfp: int) -> int | None:
        """``alloc_page(gfp)``: a pfn, or None when memory is exhausted.

        Calls `sched.might_sleep` when `gfp` allows direct reclaim; zeroes the page with
        ``__GFP_ZERO``.
        """
        if gfp & _DIRECT_RECLAIM:
            sched.might_sleep()
        if self._free:
            pfn = self._free.pop()
        elif self._high < self.totalram_pages:
            pfn = self._high
            self._high += 1
        else:
            self._failed += 1
            return None
        self._allocated[pfn] = 1
        self._allocs += 1
        if gfp & _ZERO:
            base = pfn << PAGE_SHIFT
            self._array[base : base + PAGE_SIZE] = 0
        return pfn

    def free_page(self, pfn: int) -> None:
        """``__free_page``: give `pfn` back; its bytes stay as they are."""
        if not 0 <= pfn < self.totalram_pages:
            raise BadPageError(f"free_page: pfn {pfn} is outside {self.name}")
        if not self._allocated[pfn]:
            raise BadPageError(f"BUG: Bad page state: pfn {pfn:#x} freed twice ({self.name})")
        self._allocated[pfn] = 0
        self._free.append(pfn)

    def prefault(self) -> None:
        """Touch every page once so that the host commits the memory now (benchmarks call it, so
        that first-touch page faults are not timed as allocator work)."""
        self._array.fill(0)

    def page_allocated(self, pfn: int) -> bool:
        """Whether page frame `pfn` is allocated."""
        return 0 <= pfn < self.totalram_pages and bool(self._allocated[pfn])

    def page_view(self, pfn: int) -> memoryview:
        """A writable view of page `pfn` (``page_address``/``kmap``)."""
        if not 0 <= pfn < self.totalram_pages:
            raise BadPageError(f"page_view: pfn {pfn} is outside {self.name}")
        base = pfn << PAGE_SHIFT
        return self.mem[base : base + PAGE_SIZE]

    def stats(self) -> MemStats:
        """A snapshot of the pages used and free and the allocations so far."""
        return MemStats(
            totalram_pages=self.totalram_pages,
            nr_used_pages=self.nr_used_pages,
            nr_free_pages=self.nr_free_pages,
            allocations=self._allocs,
            failed_allocations=self._failed,
        )


_default: PhysMem | None = None


def default_memory() -> PhysMem:
    """The memory pools use when none is given (made on first use, `DEFAULT_TOTALRAM_PAGES`)."""
    global _default
    if _default is None:
        _default = PhysMem(DEFAULT_TOTALRAM_PAGES, name="default")
    return _default


def set_default_memory(mem: PhysMem | None) -> None:
    """Replace the default memory (None: a fresh one is made on next use)."""
    global _default
    _default = mem


def totalram_pages() -> int:
    """``totalram_pages()`` of the default memory."""
    return default_memory().totalram_pages


def alloc_page(gfp: int) -> int | None:
    """``alloc_page(gfp)`` from the default memory."""
    return default_memory().alloc_page(gfp)


def free_page(pfn: int) -> None:
    """``__free_page`` to the default memory."""
    default_memory().free_page(pfn)


def page_view(pfn: int) -> memoryview:
    """A writable view of page `pfn` of the default memory."""
    return default_memory().page_view(pfn)


# --------------------------------------------------------------------------------------------
# Folios

#: ``HPAGE_PMD_ORDER`` on x86-64: a PMD-mapped THP is 2^9 pages (2 MiB), the largest folio.
HPAGE_PMD_ORDER = 9


class Folio:
    """``struct folio``: 2^`order` contiguous pages handled as one, here one buffer of
    ``nr_pages * PAGE_SIZE`` bytes (order 0 is a single page, 4 = 64 KiB mTHP, 9 = 2 MiB THP).

    `data` is any buffer of a power-of-two number of whole pages, at most 2^``HPAGE_PMD_ORDER``;
    it is used in place, never copied. ``Folio.alloc(order)`` makes a zeroed one.
    """

    __slots__ = ("data", "nr_pages", "order")

    def __init__(self, data: Any) -> None:
        mv = data if type(data) is memoryview else memoryview(data)
        if mv.format != "B" or mv.ndim != 1:
            mv = mv.cast("B")
        nr, rest = divmod(len(mv), PAGE_SIZE)
        if rest or nr < 1 or nr & (nr - 1) or nr > 1 << HPAGE_PMD_ORDER:
            raise ValueError(f"a folio is 2^k whole pages, at most {1 << HPAGE_PMD_ORDER} "
                             f"({len(mv)} bytes given)")
        self.data = mv
        self.nr_pages = nr
        self.order = nr.bit_length() - 1

    @classmethod
    def alloc(cls, order: int) -> Folio:
        """A zeroed, writable folio of 2^`order` pages."""
        if not 0 <= order <= HPAGE_PMD_ORDER:
            raise ValueError(f"folio order must be 0..{HPAGE_PMD_ORDER}")
        return cls(bytearray(PAGE_SIZE << order))

    def __repr__(self) -> str:
        return f"<Folio order {self.order}: {self.nr_pages} pages>"

    def __len__(self) -> int:
        return self.nr_pages

    @property
    def size(self) -> int:
        """``folio_size``: bytes."""
        return self.nr_pages * PAGE_SIZE

    def page(self, i: int) -> memoryview:
        """``folio_page(folio, i)``: a view of page `i`."""
        if not 0 <= i < self.nr_pages:
            raise IndexError(f"page {i} of a {self.nr_pages}-page folio")
        return self.data[i * PAGE_SIZE:(i + 1) * PAGE_SIZE]

    def pages(self) -> Iterator[memoryview]:
        """Each page's view, in order."""
        data = self.data
        for i in range(self.nr_pages):
            yield data[i * PAGE_SIZE:(i + 1) * PAGE_SIZE]

    def array(self) -> npt.NDArray[np.uint8]:
        """The pages as an ``(nr_pages, PAGE_SIZE)`` uint8 array over the same bytes (no copy;
        read-only when the buffer is)."""
        return np.frombuffer(self.data, np.uint8).reshape(self.nr_pages, PAGE_SIZE)


def folio_order(folio: Folio) -> int:
    return folio.order


def folio_nr_pages(folio: Folio) -> int:
    return folio.nr_pages


def folio_page(folio: Folio, i: int) -> memoryview:
    return folio.page(i)


def folio_test_large(folio: Folio) -> bool:
    """More than one page."""
    return folio.nr_pages > 1
