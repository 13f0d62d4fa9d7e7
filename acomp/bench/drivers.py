"""Which drivers the bench runs: load every driver module, then resolve ``--driver`` names.

Kernel counterpart: what ``modprobe`` of every crypto module followed by reading
``/proc/crypto`` gives a user. A name is a cra_name (resolved as ``crypto_alloc_acomp`` would:
the highest priority), a driver name, ``opencl`` (every driver named ``*-opencl``) or ``all``.
"""

from __future__ import annotations

from collections.abc import Sequence

from acomp import algapi
from acomp._constants import CRYPTO_ALG_INTERNAL, CRYPTO_ALG_TESTED
from acomp._errors import CryptoError
from acomp.acompress import crypto_alloc_acomp, crypto_free_acomp
from acomp.algapi import CryptoAlg, crypto_alg_list, crypto_alg_sem
from acomp.kmod import load_all_modules, module_reason, unavailable  # re-exported for the bench

__all__ = (
    "BASELINE",
    "DriverSelectionError",
    "available_algs",
    "find_alg",
    "load_all_modules",
    "module_reason",
    "resolve",
    "unavailable",
)

#: The driver every throughput is compared with, when it is among those run.
BASELINE = "lz4-scomp"


class DriverSelectionError(Exception):
    """A ``--driver`` name matches nothing usable."""


def available_algs() -> list[CryptoAlg]:
    """Tested, live, non-internal algorithms of the kernel modelled (deflate-generic from 6.16,
    deflate-scomp before): the baseline first, then by cra_name, priority."""
    with crypto_alg_sem:
        algs = [a for a in crypto_alg_list
                if not a.dead and a.cra_flags & CRYPTO_ALG_TESTED
                and not a.cra_flags & CRYPTO_ALG_INTERNAL and algapi.crypto_alg_present(a)]
    return sorted(algs, key=lambda a: (a.cra_driver_name != BASELINE, a.cra_name,
                                       -a.cra_priority, a.cra_driver_name))


def find_alg(driver: str) -> CryptoAlg | None:
    for a in available_algs():
        if a.cra_driver_name == driver:
            return a
    return None


def _best(name: str) -> str:
    """The driver ``crypto_alloc_acomp(name)`` picks."""
    try:
        tfm = crypto_alloc_acomp(name)
    except CryptoError as e:
        why = module_reason(name)
        if why:
            raise DriverSelectionError(f"no usable driver for {name!r} ({why})") from None
        names = sorted({n for a in available_algs() for n in (a.cra_name, a.cra_driver_name)})
        raise DriverSelectionError(
            f"no driver or algorithm named {name!r} ({e.strerror}; available: "
            f"{', '.join(names)}, opencl, all)") from None
    try:
        return tfm.alg.cra_driver_name
    finally:
        crypto_free_acomp(tfm)


def resolve(names: Sequence[str]) -> list[str]:
    """Driver names for the ``--driver`` arguments, in order, without duplicates.

    No names means every available driver.
    """
    load_all_modules()
    algs = available_algs()
    out: list[str] = []

    def add(d: str) -> None:
        if d not in out:
            out.append(d)

    for name in names or ["all"]:
        if name == "all":
            for a in algs:
                add(a.cra_driver_name)
        elif name == "opencl":
            found = [a.cra_driver_name for a in algs if a.cra_driver_name.endswith("-opencl")]
            if not found:
                why = module_reason("opencl")
                raise DriverSelectionError(
                    f"no OpenCL driver is available{' (' + why + ')' if why else ''}")
            for d in found:
                add(d)
        elif any(a.cra_driver_name == name for a in algs):
            add(name)
        else:
            add(_best(name))
    if not out:
        raise DriverSelectionError("no driver is available")
    return out
