"""The vectored API's result: each item's output and status, packed or leased outputs.

Made by every batch path (`acomp.batch`'s item-by-item and device paths, `acomp.cpubatch`'s
CPU chunks, a driver's ``batch_compress``); below them all, so the paths import it and not
each other. Users get it as `acomp.BatchResult`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from acomp._errors import error_from_errno

__all__ = ("BatchResult",)


@dataclass
class BatchResult:
    """``out[i, :sizes[i]]`` is item i's output when ``sizes[i] >= 0``; else ``sizes[i]`` is
    its negative errno. ``kernel_ns`` is the device time where a device did the work."""

    out: npt.NDArray[np.uint8]
    sizes: npt.NDArray[np.int32]
    kernel_ns: int = 0

    def __len__(self) -> int:
        return len(self.sizes)

    @property
    def ok(self) -> bool:
        """Whether every item succeeded (no negative size)."""
        return bool((self.sizes >= 0).all())

    def item(self, i: int) -> bytes:
        """Item `i`'s output bytes; its typed error when that item failed."""
        if self.released:
            raise ValueError("batch result released: its data went back to the driver")
        n = int(self.sizes[i])
        if n < 0:
            raise error_from_errno(n, "batch item", str(i))
        if self.packed is not None:
            assert self.offsets is not None
            o = int(self.offsets[i])
            return self.packed[o : o + n].tobytes()
        return self.out[i, :n].tobytes()

    def tolist(self) -> list[bytes]:
        """Every item's bytes; raises the typed error of the first failed item."""
        return [self.item(i) for i in range(len(self))]

    # -- zero-copy results (a device's pinned download buffer, lent to this result) ----------

    #: The pinned memory ``out`` (or ``packed``) is a view of, lent by the driver (an object
    #: with ``release()``), or None for an ordinary array. It goes back to the driver at
    #: `release` or when ``out`` / ``packed`` and every view of it have been collected.
    lease: Any = None
    #: True after `release` (``out`` and ``packed`` are then empty).
    released: bool = False
    #: A packed result (``packed=True``): every item's output back to back, item i at
    #: ``packed[offsets[i]:][:sizes[i]]``; ``out`` is then empty (n, 0).
    packed: npt.NDArray[np.uint8] | None = None
    offsets: npt.NDArray[np.int64] | None = None

    def to_packed(self) -> BatchResult:
        """This result packed (a copy on the host; a packed result is returned as is)."""
        if self.packed is not None:
            return self
        lens = np.maximum(self.sizes, 0).astype(np.int64)
        offsets = np.cumsum(lens) - lens
        packed = np.empty(int(lens.sum()), np.uint8)
        for i in np.flatnonzero(lens):
            o, n = int(offsets[i]), int(lens[i])
            packed[o : o + n] = self.out[i, :n]
        return BatchResult(np.zeros((len(self.sizes), 0), np.uint8), self.sizes,
                           self.kernel_ns, packed=packed, offsets=offsets)

    def to_rows(self) -> npt.NDArray[np.uint8]:
        """Every item's output in a padded row (``out`` itself for an unpacked result)."""
        if self.packed is None:
            return self.out
        assert self.offsets is not None
        lens = np.maximum(self.sizes, 0)
        rows = np.zeros((len(lens), max(1, int(lens.max()) if len(lens) else 1)), np.uint8)
        for i in np.flatnonzero(lens):
            o, n = int(self.offsets[i]), int(lens[i])
            rows[i, :n] = self.packed[o : o + n]
        return rows

    def release(self) -> None:
        """Give a leased ``out`` (or ``packed``) back to the driver now (idempotent; a no-op
        for an ordinary array). ``out`` (``packed``) becomes an empty array; views of the old
        one must not be used after this (the memory is lent again). Take `detach` first to
        keep the data."""
        if self.lease is not None:
            lease, self.lease = self.lease, None
            self.out = np.zeros((len(self.sizes), 0), np.uint8)
            if self.packed is not None:
                self.packed = np.zeros(0, np.uint8)
            self.released = True
            lease.release()

    def detach(self, out: npt.NDArray[np.uint8] | None = None) -> npt.NDArray[np.uint8]:
        """The results in an array of the caller's: one copy into `out` (an (n, >= width)
        uint8 array, ideally one already paged in and reused; for a packed result a 1-D
        uint8 array of at least ``len(packed)`` bytes) or into a new array; a leased ``out``
        (``packed``) is then released and this result holds the copy."""
        if self.released:
            raise ValueError("batch result released: its data went back to the driver")
        if self.packed is not None:
            blocks = self.packed
            if out is None:
                out = np.empty(blocks.shape, np.uint8)
            elif out.dtype != np.uint8 or out.ndim != 1 or out.shape[0] < blocks.shape[0]:
                raise ValueError(f"out must be a 1-D uint8 array of at least "
                                 f"{blocks.shape[0]} bytes for a packed result")
            np.copyto(out[: blocks.shape[0]], blocks)
            if self.lease is not None:
                lease, self.lease = self.lease, None
                lease.release()
            self.packed = out
            return out
        src = self.out
        if out is None:
            out = np.empty(src.shape, np.uint8)
        elif out.dtype != np.uint8 or out.ndim != 2 or out.shape[0] != src.shape[0] or \
                out.shape[1] < src.shape[1]:
            raise ValueError(f"out must be a uint8 array of {src.shape[0]} rows of at least "
                             f"{src.shape[1]} bytes")
        np.copyto(out[:, : src.shape[1]], src)
        if self.lease is not None:
            lease, self.lease = self.lease, None
            lease.release()
        self.out = out
        return out

    def __enter__(self) -> BatchResult:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
