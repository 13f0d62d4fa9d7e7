"""Scatterlists: where a request's bytes live, as the kernel describes DMA-able memory.

Kernel counterpart: ``include/linux/scatterlist.h`` and ``lib/scatterlist.c``
(``sg_init_one``, ``sg_init_table``, ``sg_set_buf``, ``sg_copy_to_buffer``,
``sg_copy_from_buffer``, ``sgl_alloc``).

Any contiguous buffer (``bytes``, ``bytearray``, ``memoryview``, a numpy array, an ``mmap``)
can back an entry without copying; entries that receive output must be writable. A strided
view (``a[::2]``) is refused with a TypeError: an entry is contiguous memory, as the kernel's.
An entry `sg_init_table` left unset describes no memory (length 0), as the kernel's zeroed one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = (
    "Scatterlist",
    "sg_copy_from_buffer",
    "sg_copy_to_buffer",
    "sg_init_one",
    "sg_init_table",
    "sg_nents",
    "sg_set_buf",
    "sgl_alloc",
)

Buffer = Any  # anything that supports the buffer protocol


def _view(buf: Buffer) -> memoryview:
    mv = buf if isinstance(buf, memoryview) else memoryview(buf)
    if mv.format != "B" or mv.ndim != 1 or not mv.c_contiguous:
        mv = _flat(mv, buf)
    return mv


def _flat(mv: memoryview, buf: Buffer) -> memoryview:
    """`mv` as bytes; a scatterlist entry is contiguous memory, as the kernel's (one answer
    for every driver: a TypeError naming it, before any driver sees the buffer)."""
    if not mv.c_contiguous:
        raise TypeError(
            f"a scatterlist entry must be contiguous memory, and this {type(buf).__name__} is "
            f"not (a strided view such as a[::2]): copy it first (bytes(), "
            "numpy.ascontiguousarray())")
    return mv.cast("B")


class Scatterlist:
    """A table of (buffer, length) entries; ``sgl[i]`` is the memoryview of entry i."""

    __slots__ = ("_entries", "length", "seglen", "writable")

    def __init__(self, nents: int = 0) -> None:
        self._entries: list[memoryview | None] = [None] * nents
        #: The entries' ``length`` fields where something wrote one apart from the memory
        #: (the proposed segmentation writes each segment's compressed length or negative
        #: errno there: `acomp.segment.sg_length`); None, or None in a place: the entry's size.
        self.seglen: list[int | None] | None = None
        #: Total bytes described (``sg_nents_for_len`` over all entries).
        self.length = 0
        #: Whether every entry can receive output.
        self.writable = True

    def _update(self) -> None:
        es = [e for e in self._entries if e is not None]
        self.length = sum(len(e) for e in es)
        self.writable = all(not e.readonly for e in es)

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, i: int) -> memoryview:
        e = self._entries[i]
        if e is None:
            raise IndexError(f"scatterlist entry {i} is not set")
        return e

    def __iter__(self) -> Iterator[memoryview]:
        for e in self._entries:
            if e is not None:
                yield e

    def __repr__(self) -> str:
        return f"<Scatterlist {[len(e) if e is not None else None for e in self._entries]}>"

    def linear(self, nbytes: int) -> memoryview | None:
        """The first `nbytes` as one view when they lie in the first entry, else None."""
        e = self._entries[0] if self._entries else None
        if e is not None and len(e) >= nbytes:
            return e if len(e) == nbytes else e[:nbytes]
        return None

    def tobytes(self, nbytes: int | None = None) -> bytes:
        """The first `nbytes` bytes (default: all) of the list, copied out."""
        out = bytearray(self.length if nbytes is None else nbytes)
        sg_copy_to_buffer(self, out, len(out))
        return bytes(out)


_new = object.__new__


def sg_init_table(nents: int) -> Scatterlist:
    """An empty table of `nents` entries, to fill with `sg_set_buf`."""
    if nents < 1:
        raise ValueError("a scatterlist needs at least one entry")
    return Scatterlist(nents)


def sg_set_buf(sgl: Scatterlist, i: int, buf: Buffer, buflen: int | None = None) -> None:
    """Point entry `i` at the first `buflen` bytes of `buf` (all of it by default)."""
    mv = _view(buf)
    if buflen is not None:
        if not 0 <= buflen <= len(mv):
            raise ValueError(f"buflen {buflen} outside buffer of {len(mv)} bytes")
        mv = mv[:buflen]
    sgl._entries[i] = mv
    if getattr(sgl, "seglen", None):
        sgl.seglen[i] = None  # type: ignore[index]  # sg_set_buf sets the length anew
    sgl._update()


def sg_init_one(buf: Buffer, buflen: int | None = None) -> Scatterlist:
    """A one-entry scatterlist over `buf`."""
    sgl = _new(Scatterlist)  # no __init__: this is on every request's path
    t = type(buf)
    if t is bytes or t is bytearray:  # bytes of one dimension already: no checks
        mv = memoryview(buf)
        if buflen is None:
            sgl._entries = [mv]
            sgl.length = len(mv)
            sgl.writable = t is bytearray
            return sgl
    else:
        mv = buf if t is memoryview else memoryview(buf)
        if mv.format != "B" or mv.ndim != 1 or not mv.c_contiguous:
            mv = _flat(mv, buf)
    if buflen is not None:
        if not 0 <= buflen <= len(mv):
            raise ValueError(f"buflen {buflen} outside buffer of {len(mv)} bytes")
        mv = mv[:buflen]
    sgl._entries = [mv]
    sgl.length = len(mv)
    sgl.writable = not mv.readonly
    return sgl


def sg_nents(sgl: Scatterlist) -> int:
    return sum(1 for _ in sgl)


def _pieces(sgl: Scatterlist, buflen: int, skip: int) -> Iterator[tuple[memoryview, int]]:
    """The entry slices that hold bytes [skip, skip + buflen), with their offset in a buffer
    (``scatterwalk``)."""
    done = 0
    for e in sgl:
        if done >= buflen:
            break
        n = len(e)
        if skip >= n:
            skip -= n
            continue
        take = min(n - skip, buflen - done)
        yield e[skip : skip + take], done
        done += take
        skip = 0


def sg_copy_to_buffer(sgl: Scatterlist, buf: Buffer, buflen: int, skip: int = 0) -> int:
    """Copy up to `buflen` bytes from the scatterlist (after `skip`) into `buf`; returns count."""
    out = _view(buf)
    done = 0
    for piece, at in _pieces(sgl, buflen, skip):
        out[at : at + len(piece)] = piece
        done = at + len(piece)
    return done


def sg_copy_from_buffer(sgl: Scatterlist, buf: Buffer, buflen: int, skip: int = 0) -> int:
    """Copy up to `buflen` bytes of `buf` into the scatterlist (after `skip`); returns count."""
    src = _view(buf)
    done = 0
    for piece, at in _pieces(sgl, buflen, skip):
        piece[:] = src[at : at + len(piece)]
        done = at + len(piece)
    return done


def sgl_alloc(length: int) -> Scatterlist:
    """``sgl_alloc``: a scatterlist over newly allocated, zeroed memory of `length` bytes."""
    return sg_init_one(bytearray(length))
