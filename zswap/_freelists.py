"""The buddy allocators' shared parts: free lists of pages by how many chunks they have free,
the pool's handle table with the checks every zbud and z3fold call makes (`BuddyPool`), and an
object's mapped views (`BuddyObj`, `release_views`).

Kernel counterpart: the ``unbuddied[NCHUNKS]`` arrays of ``list_head`` in ``mm/zbud.c`` and
``mm/z3fold.c`` and their first-fit walk (``for_each_unbuddied_list``); the handle and size
checks at the top of ``zbud_alloc`` / ``z3fold_alloc`` and their map, unmap and free.

Each list is an insertion-ordered dict used as a stack (the newest page is the head, as with
``list_add``). A bitmask of the non-empty lists makes the first-fit walk from `chunks` upwards one
bit operation instead of a visit to every empty list; it finds the same page the kernel's walk
finds.
"""

from __future__ import annotations

import errno
from typing import Any, Generic, Protocol, TypeVar

from zswap._errors import (
    HANDLE_STRIDE,
    HandleMappedError,
    NotMappedError,
    ZpoolError,
    bad_handle,
    new_handle_base,
)
from zswap.page import __GFP_HIGHMEM, PhysMem

__all__ = ("BuddyObj", "BuddyPool", "FreeLists", "release_views")

_GFP_HIGHMEM = __GFP_HIGHMEM  # a dunder name would be mangled inside a class


def release_views(views: list[memoryview]) -> None:
    """Release the views a mapping handed out (a use after unmap then raises ValueError); one
    the caller still exports (a buffer taken from it) stays valid until that is dropped."""
    for v in views:
        try:
            v.release()
        except BufferError:
            pass
    views.clear()


class Listed(Protocol):
    #: (the lists, the index) of the list the page is on, or None.
    ub: tuple[FreeLists[Any], int] | None


P = TypeVar("P", bound=Listed)


class FreeLists(Generic[P]):
    """`n` lists of pages, indexed by free chunks."""

    __slots__ = ("lists", "mask")

    def __init__(self, n: int) -> None:
        self.lists: list[dict[P, None]] = [{} for _ in range(n)]
        self.mask = 0

    def add(self, i: int, page: P) -> None:
        """``list_add(&page->buddy, &unbuddied[i])``."""
        self.lists[i][page] = None
        self.mask |= 1 << i
        page.ub = (self, i)

    def first_fit(self, chunks: int, exact: bool = False) -> P | None:
        """Take the head of the first non-empty list from `chunks` up (only `chunks` if exact)."""
        m = self.mask >> chunks
        if not m or (exact and not m & 1):
            return None
        i = chunks + (m & -m).bit_length() - 1
        page = next(reversed(self.lists[i]))
        self.remove(page)
        return page

    @staticmethod
    def remove(page: P) -> None:
        """``list_del``: take `page` off the list it is on (if any)."""
        where = page.ub
        if where is None:
            return
        fl, i = where
        lst = fl.lists[i]
        del lst[page]
        if not lst:
            fl.mask &= ~(1 << i)
        page.ub = None

    def counts(self) -> tuple[int, ...]:
        return tuple(len(lst) for lst in self.lists)

    def pages(self) -> list[P]:
        return [p for lst in self.lists for p in lst]

    def clear(self) -> None:
        for lst in self.lists:
            for p in lst:
                p.ub = None
            lst.clear()
        self.mask = 0


class BuddyObj:
    """One object of a buddy allocator: its page, its buddy slot, its size and its mappings."""

    __slots__ = ("bud", "mapped", "page", "size", "views")

    def __init__(self, page: Any, bud: int, size: int) -> None:
        self.page = page
        self.bud = bud
        self.size = size
        self.mapped = 0
        self.views: list[memoryview] = []

    def map(self, mem: memoryview, addr: int, mm: int) -> memoryview:
        """The object's bytes at `addr` in place (read-only for ``ZPOOL_MM_RO``), one more
        mapping counted."""
        view = mem[addr : addr + self.size]
        if mm == 1:
            view = view.toreadonly()
        self.mapped += 1
        self.views.append(view)
        return view

    def unmap(self, kind: str, handle: int) -> bool:
        """End one mapping (`NotMappedError` when there is none); whether it was the last, whose
        end releases the views the mappings handed out."""
        if not self.mapped:
            raise NotMappedError(f"{kind}: handle {handle:#x} is not mapped", handle)
        self.mapped -= 1
        if self.mapped:
            return False
        release_views(self.views)
        return True


O = TypeVar("O", bound=BuddyObj)


class BuddyPool(Generic[O]):
    """What a zbud and a z3fold pool share: the name, the memory, the page count, the handle
    table (handles issued in order, `HANDLE_STRIDE` apart, from the pool's own base) and
    whether the pool was destroyed. `kind` names the allocator in errors."""

    kind = "buddy"
    __slots__ = ("_base", "_handles", "_next", "dead", "mem", "memory", "name", "pages_nr")

    def __init__(self, name: str, mem: PhysMem) -> None:
        self.name = name
        self.memory = mem
        self.mem = mem.mem
        self.pages_nr = 0
        self._handles: dict[int, O] = {}
        self._base = new_handle_base()
        self._next = self._base
        self.dead = False

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.name!r}: {len(self._handles)} objects, "
                f"{self.pages_nr} pages>")

    def alloc_refused(self, size: int, gfp: int, max_size: int) -> int:
        """The allocation's first checks: ``-EINVAL`` for size 0 or ``__GFP_HIGHMEM``,
        ``-ENOSPC`` above `max_size`, else 0; `ZpoolError` on a destroyed pool."""
        if size <= 0 or gfp & _GFP_HIGHMEM:
            return -errno.EINVAL
        if size > max_size:
            return -errno.ENOSPC
        if self.dead:
            raise ZpoolError(f"{self.kind}_alloc: pool {self.name!r} was destroyed")
        return 0

    def add(self, obj: O) -> int:
        """Issue the next handle for `obj`."""
        handle = self._next
        self._next = handle + HANDLE_STRIDE
        self._handles[handle] = obj
        return handle

    def lookup(self, kind: str, handle: int) -> O:
        """The live object of `handle`, else the `bad_handle` error, named after `kind`."""
        obj = self._handles.get(handle)
        if obj is None:
            raise bad_handle(kind, handle, self._base, self._next)
        return obj

    def lookup_map(self, handle: int, mm: int) -> O:
        """`lookup` for ``<kind>_map``, then the mode's check (ValueError)."""
        obj = self._handles.get(handle)
        if obj is None:  # (the error's name made only here: every store and load maps)
            raise bad_handle(f"{self.kind}_map", handle, self._base, self._next)
        if mm != 1 and mm != 2 and mm != 0:
            raise ValueError(f"{self.kind}_map: unknown mode {mm}")
        return obj

    def remove(self, handle: int) -> O:
        """Take `handle` out of the table for ``<kind>_free``: a double free or a foreign
        handle raises its `bad_handle` error, a mapped object `HandleMappedError` (left in)."""
        obj = self._handles.pop(handle, None)
        if obj is None:
            raise bad_handle(f"{self.kind}_free", handle, self._base, self._next, free=True)
        if obj.mapped:
            self._handles[handle] = obj
            raise HandleMappedError(f"{self.kind}_free: handle {handle:#x} is mapped", handle)
        return obj

    def destroying(self) -> None:
        """The checks of ``<kind>_destroy_pool``: not destroyed twice, no object mapped."""
        kind = f"{self.kind}_destroy_pool"
        if self.dead:
            raise ZpoolError(f"{kind}: pool {self.name!r} already destroyed")
        for h, obj in self._handles.items():
            if obj.mapped:
                raise HandleMappedError(f"{kind}: handle {h:#x} is mapped", h)

    def destroyed(self) -> None:
        """Forget every object and mark the pool destroyed (its pages freed by the caller)."""
        self._handles.clear()
        self.pages_nr = 0
        self.dead = True
