"""The bench's inputs: 4 KiB pages from the built-in corpus, from files, or from a live process.

No kernel counterpart: these stand in for what zswap is handed (anonymous pages on their way
to swap). Every corpus is an ``(n, 4096)`` uint8 array, so all modes see the same bytes.

- ``builtin``: `acomp.corpus.pages`, deterministic from a seed.
- a path: regular files (directories are walked in sorted order) cut into 4 KiB pages; the last
  partial page of each file is zero-padded, as the page cache fills a file's tail page.
- ``self`` / ``pid:N``: the private writable mappings in ``/proc/PID/maps`` read through
  ``/proc/PID/mem``; regions that cannot be read are skipped. When there are more pages than
  asked for, pages are taken at an even stride across all regions.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from acomp import corpus as builtin_corpus

__all__ = ("PAGE_SIZE", "Corpus", "CorpusError", "load_corpus", "parse_maps")

PAGE_SIZE = 4096


class CorpusError(Exception):
    """The corpus cannot be read (no such path or process, not permitted, nothing in it)."""


@dataclass(frozen=True)
class Corpus:
    """Pages to compress and where they came from."""

    name: str
    pages: npt.NDArray[np.uint8]
    note: str = ""

    @property
    def n(self) -> int:
        return int(self.pages.shape[0])

    @property
    def nbytes(self) -> int:
        return int(self.pages.nbytes)


def load_corpus(spec: str, n: int, seed: int = 0) -> Corpus:
    """The corpus named by `spec` (``builtin``, ``self``, ``pid:N`` or a path), ≤ `n` pages."""
    if n < 1:
        raise CorpusError("--pages must be at least 1")
    if spec == "builtin":
        return Corpus(f"builtin (seed {seed})", builtin_corpus.pages(n, seed))
    if spec == "self":
        return _from_process(os.getpid(), n, "self")
    if spec.startswith("pid:"):
        try:
            pid = int(spec[4:])
        except ValueError:
            raise CorpusError(f"bad process id in {spec!r}") from None
        return _from_process(pid, n, spec)
    return _from_paths(Path(spec), n)


# --------------------------------------------------------------------------------------------
# Files


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    if not root.exists():
        raise CorpusError(f"no such file or directory: {root}")
    if not root.is_dir():
        raise CorpusError(f"not a regular file or directory: {root}")
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath, name)
            if p.is_file() and not p.is_symlink():
                out.append(p)
    return out


def _from_paths(root: Path, n: int) -> Corpus:
    chunks: list[npt.NDArray[np.uint8]] = []
    have = 0
    nfiles = 0
    for path in _files(root):
        if have >= n:
            break
        try:
            data = path.read_bytes()
        except OSError:
            continue  # unreadable file: skipped like an unreadable region
        if not data:
            continue
        nfiles += 1
        npages = -(-len(data) // PAGE_SIZE)
        arr = np.zeros(npages * PAGE_SIZE, np.uint8)  # the tail page is zero-padded
        arr[: len(data)] = np.frombuffer(data, np.uint8)
        take = min(npages, n - have)
        chunks.append(arr.reshape(npages, PAGE_SIZE)[:take])
        have += take
    if not have:
        raise CorpusError(f"{root}: no data to read")
    pages = np.ascontiguousarray(np.concatenate(chunks))
    return Corpus(f"{root} ({nfiles} files)", pages, "last partial page of each file zero-padded")


# --------------------------------------------------------------------------------------------
# Process memory


def parse_maps(text: str) -> list[tuple[int, int, str]]:
    """(start, end, name) of each private writable mapping in ``/proc/PID/maps`` text."""
    out = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        addr, perms = parts[0], parts[1]
        name = parts[5].strip() if len(parts) > 5 else ""
        if len(perms) < 4 or perms[1] != "w" or perms[3] != "p":
            continue
        if name in ("[vvar]", "[vsyscall]", "[vdso]", "[vvar_vclock]"):
            continue
        lo, hi = addr.split("-")
        out.append((int(lo, 16), int(hi, 16), name))
    return out


def _from_process(pid: int, n: int, label: str) -> Corpus:
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except FileNotFoundError:
        raise CorpusError(f"{label}: no process with pid {pid}") from None
    except PermissionError:
        raise CorpusError(f"{label}: not permitted to read the memory map of pid {pid}") from None
    except OSError as e:
        raise CorpusError(f"{label}: cannot read /proc/{pid}/maps: {e.strerror}") from None
    regions = parse_maps(maps)
    try:
        fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    except FileNotFoundError:
        raise CorpusError(f"{label}: no process with pid {pid}") from None
    except PermissionError:
        raise CorpusError(
            f"{label}: not permitted to read the memory of pid {pid} "
            "(needs ptrace access: same user and kernel.yama.ptrace_scope, or root)"
        ) from None
    try:
        pages = _read_pages(fd, regions, n)
    finally:
        os.close(fd)
    if pages is None:
        raise CorpusError(
            f"{label}: not permitted to read the memory of pid {pid} "
            "(needs ptrace access: same user and kernel.yama.ptrace_scope, or root)"
        )
    if not len(pages):
        raise CorpusError(f"{label}: no readable private writable pages in pid {pid}")
    note = f"{len(regions)} private writable mappings; unreadable regions skipped"
    return Corpus(f"{label} (pid {pid})", pages, note)


def _read_pages(fd: int, regions: list[tuple[int, int, str]],
                n: int) -> npt.NDArray[np.uint8] | None:
    """Up to `n` pages at an even stride over the regions; None when reading is refused."""
    total = sum((hi - lo) // PAGE_SIZE for lo, hi, _ in regions)
    stride = max(1, -(-total // n)) if total else 1
    out = np.empty((min(n, total), PAGE_SIZE), np.uint8)
    got = 0
    refused = 0
    index = 0  # global page index over all regions, for the stride
    for lo, hi, _ in regions:
        npages = (hi - lo) // PAGE_SIZE
        # The pages of this region that fall on the stride.
        first = (-index) % stride
        wanted = range(first, npages, stride)
        index += npages
        if not len(wanted):
            continue
        if stride == 1:
            got, refused = _read_run(fd, lo, npages, out, got, refused)
        else:
            for k in wanted:
                if got >= len(out):
                    break
                got, refused = _read_run(fd, lo + k * PAGE_SIZE, 1, out, got, refused)
        if got >= len(out):
            break
    if got == 0 and refused:
        return None
    return np.ascontiguousarray(out[:got])


def _read_run(fd: int, addr: int, npages: int, out: npt.NDArray[np.uint8], got: int,
              refused: int) -> tuple[int, int]:
    """Read `npages` pages at `addr` into `out[got:]`, 1 MiB at a time; skip what fails."""
    step = 256
    k = 0
    while k < npages and got < len(out):
        count = min(step, npages - k, len(out) - got)
        try:
            data = os.pread(fd, count * PAGE_SIZE, addr + k * PAGE_SIZE)
        except OSError as e:
            if e.errno in (errno.EPERM, errno.EACCES):
                refused += 1
            break  # the rest of this region is unreadable (EIO): skip it
        full = len(data) // PAGE_SIZE
        if full:
            out[got : got + full] = np.frombuffer(data, np.uint8, full * PAGE_SIZE).reshape(
                full, PAGE_SIZE)
            got += full
        if full < count:
            break
        k += count
    return got, refused
