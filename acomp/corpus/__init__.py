"""The bench corpus: deterministic 4 KiB pages that resemble anonymous memory.

A swap cache sees heap and stack pages, not files: zero pages, pages full of pointers into the
same few mappings, arrays of small integers, strings, and some data that does not compress at all.
`pages(n, seed)` builds such a mix from a seed, so every run of the bench (and every machine)
compresses the same bytes. `acomp.corpus.sources` turns a user's ``--corpus`` (this corpus,
files, a live process's memory) into pages; the benches and the driver kit use both.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

__all__ = ("KINDS", "PAGE_SIZE", "iter_pages", "page_kinds", "pages")

PAGE_SIZE = 4096

#: The page kinds and their share of the mix (they sum to 1).
KINDS: dict[str, float] = {
    "zero": 0.15,
    "same_filled": 0.03,
    "sparse": 0.12,
    "pointers": 0.22,
    "small_ints": 0.18,
    "text": 0.18,
    "incompressible": 0.12,
}

_WORDS = (
    "the of and to in is was for that with as on by at from his it an were are which this be "
    "or has had not but one their its new after also first two been they have who into more "
    "time other all when there can would only used most she over some year may such between "
    "kernel memory page swap compress buffer request driver queue device cpu lock mutex sleep "
    "error return value pointer struct list node tree entry pool handle object size class free"
).split()


def _zero(rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    return np.zeros(PAGE_SIZE, np.uint8)


def _same_filled(rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    word = rng.integers(1, 2**63, dtype=np.uint64)
    return np.full(PAGE_SIZE // 8, word, np.uint64).view(np.uint8)


def _sparse(rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    page = np.zeros(PAGE_SIZE // 8, np.uint64)
    n = int(rng.integers(4, 64))
    idx = rng.choice(PAGE_SIZE // 8, n, replace=False)
    page[idx] = rng.integers(1, 2**40, n, dtype=np.uint64)
    return page.view(np.uint8)


def _pointers(rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    # Heap objects: a few base addresses, 16-byte aligned offsets, lengths, flags and zeros.
    bases = np.array([0x7F0000000000, 0x550000000000, 0x7FFC00000000], np.uint64)
    bases = bases + (rng.integers(0, 2**28, 3, dtype=np.uint64) << np.uint64(12))
    words = PAGE_SIZE // 8
    out = np.zeros(words, np.uint64)
    kind = rng.choice(4, words, p=[0.5, 0.2, 0.1, 0.2])
    ptr = bases[rng.integers(0, 3, words)] + (
        rng.integers(0, 1 << 16, words, dtype=np.uint64) << np.uint64(4)
    )
    out[kind == 0] = ptr[kind == 0]
    out[kind == 1] = rng.integers(0, 256, words, dtype=np.uint64)[kind == 1]
    out[kind == 2] = rng.integers(0, 2**32, words, dtype=np.uint64)[kind == 2]
    # Objects repeat: copy some earlier 64-byte runs forward, as allocators lay out like objects.
    for _ in range(int(rng.integers(4, 16))):
        src = int(rng.integers(0, words - 16))
        dst = int(rng.integers(0, words - 16))
        out[dst : dst + 8] = out[src : src + 8]
    return out.view(np.uint8)


def _small_ints(rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    dtype = (np.int32, np.int64, np.int16)[int(rng.integers(0, 3))]
    n = PAGE_SIZE // np.dtype(dtype).itemsize
    if rng.random() < 0.5:
        vals = np.cumsum(rng.integers(0, 4, n)).astype(dtype)  # counters, indices
    else:
        vals = rng.integers(0, 100, n).astype(dtype)
    return vals.view(np.uint8)


def _text(rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    parts: list[str] = []
    size = 0
    while size < PAGE_SIZE:
        w = _WORDS[int(rng.integers(0, len(_WORDS)))]
        sep = "\n" if rng.random() < 0.08 else " "
        parts.append(w + sep)
        size += len(w) + 1
    return np.frombuffer("".join(parts).encode()[:PAGE_SIZE], np.uint8).copy()


def _incompressible(rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    return rng.integers(0, 256, PAGE_SIZE, dtype=np.uint8)


_MAKERS = {
    "zero": _zero,
    "same_filled": _same_filled,
    "sparse": _sparse,
    "pointers": _pointers,
    "small_ints": _small_ints,
    "text": _text,
    "incompressible": _incompressible,
}


def page_kinds(n: int, seed: int = 0) -> list[str]:
    """The kind of each of the first `n` pages of the corpus for `seed`."""
    rng = np.random.default_rng([seed, 1])
    names = list(KINDS)
    picks = rng.choice(len(names), n, p=list(KINDS.values()))
    return [names[int(i)] for i in picks]


def pages(n: int, seed: int = 0) -> npt.NDArray[np.uint8]:
    """`n` pages as one C-contiguous ``(n, 4096)`` uint8 array; the same for the same seed."""
    if n < 0:
        raise ValueError("n must be >= 0")
    out = np.empty((n, PAGE_SIZE), np.uint8)
    for i, kind in enumerate(page_kinds(n, seed)):
        out[i] = _MAKERS[kind](np.random.default_rng([seed, 2, i]))
    return out


def iter_pages(n: int, seed: int = 0) -> Iterator[bytes]:
    """The same pages as `pages`, one `bytes` object each."""
    for row in pages(n, seed):
        yield row.tobytes()
