"""The buddy allocators' shared parts: free lists of pages by how many chunks they have free,
and the end of an object's mapped views (`release_views`).

Kernel counterpart: the ``unbuddied[NCHUNKS]`` arrays of ``list_head`` in ``mm/zbud.c`` and
``mm/z3fold.c`` and their first-fit walk (``for_each_unbuddied_list``).

Each list is an insertion-ordered dict used as a stack (the newest page is the head, as with
``list_add``). A bitmask of the non-empty lists makes the first-fit walk from `chunks` upwards one
bit operation instead of a visit to every empty list; it finds the same page the kernel's walk
finds.
"""

from __future__ import annotations

from typing import Any, Generic, Protocol, TypeVar

__all__ = ("FreeLists", "release_views")


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
