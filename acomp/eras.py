"""The kernel version being modelled: one switch for the acomp API, the drivers and zswap.

Kernel counterpart: none in the code (a kernel is one version; ``uname -r`` names it). The
kernel's compression stack changed in steps; between two steps it is one *era*, and the model
keeps one era's behaviour as that era's own code, chosen when an object is made (a transform
at allocation, a driver module when it loads, a `zswap.Zswap` at construction), never compared
on every call.

The switch, read in this order:

1. ``ACOMP_KERNEL=6.16`` in the environment, read once when `acomp` is imported;
2. `set_kernel` (or `using_kernel`, a context manager) in the program;
3. per zswap instance, ``Zswap(version="6.18")`` (its paths only; the default is `kernel`).

A version is ``MAJOR.MINOR`` (``6.16``; a patch level or ``-rc`` suffix is ignored). One that
no modelled era covers is an `UnsupportedKernel` error naming the eras that are.

``"proposed"`` (`PROPOSED`) is the newest kernel (7.0) with series posted but not merged on top,
as zswap's ``Zswap(version="proposed")`` has been: the acomp segmentation of the compress-batching
series (`acomp.segment`: ``acomp_request_set_unit_size``, ``CRYPTO_ALG_REQ_SEG``). It is its own
era (`PROPOSED_ERA`, not in `ERAS`, the released kernels); everything that compares versions sees
7.0 (`parse_kernel` gives `PROPOSED_KERNEL`, equal to ``(7, 0)``), and what the series adds asks
`is_proposed`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from acomp._errors import UnsupportedKernel

__all__ = (
    "DEFAULT_KERNEL",
    "ENV",
    "ERAS",
    "PROPOSED",
    "PROPOSED_ERA",
    "PROPOSED_KERNEL",
    "Era",
    "KernelRange",
    "UnsupportedKernel",
    "era_of",
    "era_versions",
    "eras_of",
    "is_proposed",
    "kernel",
    "kernel_era",
    "kernels_of",
    "kernels_text",
    "newest_in",
    "parse_kernel",
    "set_kernel",
    "using_kernel",
)

#: The environment variable read at import.
ENV = "ACOMP_KERNEL"

#: The default: v6.14, the newest kernel of the v5.12 - v6.14 era. That era's acomp API
#: (scatterlists, ``CRYPTO_ACOMP_ALLOC_OUTPUT``, a per-request scomp context) is the one the
#: drivers here, the Python layer and most running kernels (the 6.1, 6.6 and 6.12 LTS) follow;
#: 6.14 is its newest, so zswap has large-folio stores (v6.13) and still all three zpools.
DEFAULT_KERNEL = "6.14"

#: The newest minor of each major the kernel has released (6.19 precedes 7.0).
_LAST_MINOR = {2: 6, 3: 19, 4: 20, 5: 19, 6: 19, 7: 0}
_VERSION_RE = re.compile(r"^\s*v?(\d+)\.(\d+)(?:\.\d+)?(?:-[\w.+-]*)?\s*$")

Kernel = tuple[int, int]
#: Kernel versions from one to another, both included (`kernels_of`).
KernelRange = tuple[Kernel, Kernel]


@dataclass(frozen=True)
class Era:
    """A run of kernels whose compression stack the model keeps as one behaviour."""

    #: ``"5.12-6.14"``; a one-version era is its version (``"6.15"``).
    name: str
    first: Kernel
    last: Kernel
    #: What sets the era apart, in a line.
    summary: str

    def __contains__(self, version: object) -> bool:
        if self.name == "proposed":  # 7.0 with the series: only the "proposed" kernel
            return type(version).__name__ == "_ProposedKernel"
        return isinstance(version, tuple) and self.first <= version <= self.last

    def __str__(self) -> str:
        return self.name.replace("-", " - ")

    @property
    def kernel(self) -> str:
        """The era's newest kernel (``"6.17"`` for 6.16 - 6.17): the one a check of the era
        models; ``"proposed"`` for the proposed era)."""
        return self.name if self.name == "proposed" else _name(self.last)


#: The modelled eras, oldest first.
ERAS: tuple[Era, ...] = (
    Era("5.11", (5, 11), (5, 11),
        "zswap on acomp (commit 1ec3b5fe6eec), the seed bug: decompressing inside a zsmalloc "
        "mapping"),
    Era("5.12-6.14", (5, 12), (6, 14),
        "scatterlist requests, NULL dst = CRYPTO_ACOMP_ALLOC_OUTPUT, a scomp context per "
        "request; zswap on zpool (zsmalloc, zbud, z3fold)"),
    Era("6.15", (6, 15), (6, 15),
        "request chaining and virtual addresses, NULL dst an error; zbud and z3fold removed, "
        "zpool obj_read_begin/obj_write"),
    Era("6.16-6.17", (6, 16), (6, 17),
        "chaining removed, CRYPTO_ALG_REQ_VIRT, on-stack requests, scomp streams; deflate "
        "(6.16) and zstd (6.17) native acomp"),
    Era("6.18-7.0", (6, 18), (7, 0),
        "zpool removed: zswap on zsmalloc directly, incompressible pages stored as they are; "
        "7.0 scatterlist reads"),
)


#: The opt-in name of the newest kernel with the unmerged series on top.
PROPOSED = "proposed"


class _ProposedKernel(tuple[int, int]):
    """``(7, 0)`` for every comparison, but known apart (`is_proposed`): the kernel tuple of
    a transform allocated in the "proposed" mode."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "PROPOSED_KERNEL"


#: `parse_kernel` of ``"proposed"``: equal to ``(7, 0)``, the kernel the series applies to.
PROPOSED_KERNEL: Kernel = _ProposedKernel((7, 0))

#: The "proposed" era: 7.0 plus the series (not in `ERAS`: no released kernel has it).
PROPOSED_ERA = Era(
    PROPOSED, (7, 0), (7, 0),
    "7.0 with the unmerged compress-batching series (v14, Jan 2026): acomp segmentation "
    "(unit_size, CRYPTO_ALG_REQ_SEG, the trivial segmentation), zswap batched stores")


def is_proposed(version: str | Kernel) -> bool:
    """Whether `version` (a name or a transform's kernel tuple) is the "proposed" mode."""
    return version == PROPOSED if isinstance(version, str) else type(version) is _ProposedKernel


def _modelled() -> str:
    return ", ".join(str(e) for e in ERAS) + f' (and "{PROPOSED}": 7.0 with unmerged series)'


def parse_kernel(version: str | Kernel) -> Kernel:
    """``"6.16"`` (or ``"6.16.3"``, ``"v7.0-rc2"``, ``(6, 16)``) as ``(6, 16)``;
    ``"proposed"`` as `PROPOSED_KERNEL`."""
    if isinstance(version, tuple):
        if type(version) is _ProposedKernel:
            return version
        if len(version) == 2 and all(isinstance(x, int) for x in version):
            return (version[0], version[1])
        raise UnsupportedKernel(f"kernel version {version!r} is not MAJOR.MINOR")
    if version == PROPOSED:
        return PROPOSED_KERNEL
    m = _VERSION_RE.match(str(version))
    if m is None:
        raise UnsupportedKernel(
            f"kernel version {version!r} is not MAJOR.MINOR (e.g. 6.16); modelled eras: "
            f"{_modelled()}")
    ver = (int(m.group(1)), int(m.group(2)))
    if ver[1] > _LAST_MINOR.get(ver[0], -1):
        raise UnsupportedKernel(f"there is no kernel {ver[0]}.{ver[1]}; modelled eras: "
                                f"{_modelled()}")
    return ver


def era_of(version: str | Kernel) -> Era:
    """The era that models `version`; `UnsupportedKernel` when none does."""
    ver = parse_kernel(version)
    if type(ver) is _ProposedKernel:
        return PROPOSED_ERA
    for era in ERAS:
        if ver in era:
            return era
    raise UnsupportedKernel(
        f"kernel version {ver[0]}.{ver[1]} is not modelled; modelled eras: {_modelled()}")


def eras_of(spec: str | Iterable[str]) -> tuple[Era, ...]:
    """The eras `spec` names, oldest first: era names (``"6.16-6.17"``), kernel versions
    (``"6.16"``: its era) or ``"all"``; `UnsupportedKernel` for one no era models. How a
    driver declares the eras it supports (`acomp.kmod.CryptoModule.eras`)."""
    items = [spec] if isinstance(spec, str) else list(spec)
    found: set[Era] = set()
    for item in items:
        if item == "all":
            found.update(ERAS)
            continue
        if item == PROPOSED:
            found.add(PROPOSED_ERA)
            continue
        named = [e for e in ERAS if e.name == item.replace(" ", "")]
        found.add(named[0] if named else era_of(item))
    return tuple(e for e in (*ERAS, PROPOSED_ERA) if e in found)


def _name(ver: Kernel) -> str:
    return PROPOSED if type(ver) is _ProposedKernel else f"{ver[0]}.{ver[1]}"


def kernels_of(spec: str | Iterable[str]) -> tuple[KernelRange, ...]:
    """The kernel versions `spec` names, finer than eras (a driver that changed inside one, as
    zstd turned native acomp in 6.17 within 6.16 - 6.17): ``"6.17"`` (that version alone),
    ``"6.17-"`` (it and every later one), ``"-6.16"`` (every one up to it), ``"6.16-6.17"``
    (from one to the other) or ``"all"``. Open ends stop at the oldest and newest modelled
    kernels. `UnsupportedKernel` for a version no kernel has or a range no modelled kernel
    is in. How a driver declares versions (`acomp.kmod.CryptoModule.kernels`,
    ``CryptoAlg.cra_kernels``)."""
    items = [spec] if isinstance(spec, str) else list(spec)
    lo, hi = ERAS[0].first, ERAS[-1].last
    out: list[KernelRange] = []
    for item in items:
        text = item.replace(" ", "")
        if text == "all":
            out.append((lo, hi))
            continue
        first, sep, last = text.partition("-")
        if "-" in last:
            raise UnsupportedKernel(f"kernel range {item!r} is not FIRST-LAST (e.g. 6.16-6.17)")
        a = parse_kernel(first) if first else lo
        b = (parse_kernel(last) if last else hi) if sep else a
        if a > b:
            raise UnsupportedKernel(f"kernel range {item!r} ends before it starts")
        a, b = max(a, lo), min(b, hi)
        if a > b:
            raise UnsupportedKernel(f"kernel versions {item!r}: none is modelled; modelled "
                                    f"eras: {_modelled()}")
        out.append((a, b))
    return tuple(sorted(set(out)))


def kernels_text(ranges: Iterable[KernelRange]) -> str:
    """``"5.11 - 6.15, 7.0"``: ranges as `acomp list` and the module loader's reasons print
    them."""
    return ", ".join(_name(a) if a == b else f"{_name(a)} - {_name(b)}" for a, b in ranges)


def era_versions(era: Era) -> tuple[Kernel, ...]:
    """Every kernel version of `era`, oldest first (5.12 - 6.14: 5.12 ... 5.19, 6.0 ... 6.14)."""
    out = [era.first]
    while out[-1] < era.last:
        major, minor = out[-1]
        out.append((major + 1, 0) if minor >= _LAST_MINOR.get(major, minor) else
                   (major, minor + 1))
    return tuple(out)


def newest_in(era: Era, ranges: Iterable[KernelRange] = ()) -> str | None:
    """The newest version of `era` within `ranges` (no ranges: every version), None when
    none is: the kernel a per-era check of a driver that declares `ranges` runs at."""
    rs = tuple(ranges)
    for ver in reversed(era_versions(era)):
        if not rs or any(a <= ver <= b for a, b in rs):
            return _name(ver)
    return None


def _from_env() -> str:
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return DEFAULT_KERNEL
    try:
        era_of(raw)
        return _name(parse_kernel(raw))
    except UnsupportedKernel as e:
        raise UnsupportedKernel(f"{ENV}={raw}: {e}") from None


_current: str = _from_env()


def kernel() -> str:
    """The kernel version being modelled (``"6.14"`` unless chosen otherwise)."""
    return _current


def kernel_era() -> Era:
    """The era of `kernel`."""
    return era_of(_current)


def set_kernel(version: str) -> str:
    """Model kernel `version` from now on; returns the version modelled before.

    Objects already made keep the era they were made in (a transform, a `zswap.Zswap`);
    allocate new ones to see the new era's behaviour.
    """
    global _current
    era_of(version)
    old, _current = _current, _name(parse_kernel(version))
    return old


@contextmanager
def using_kernel(version: str) -> Iterator[Era]:
    """Model `version` inside the block (tests, examples), then the one before."""
    old = set_kernel(version)
    try:
        yield kernel_era()
    finally:
        set_kernel(old)
