"""Driver modules: loading on demand through entry points, the kernel's ``request_module``.

Kernel counterpart: ``kernel/kmod.c`` (``request_module``), ``MODULE_ALIAS_CRYPTO`` and the
module loader, plus udev's coldplug of hardware drivers at boot.

A driver package declares a `CryptoModule` under the ``acomp.drivers`` entry-point group. Its
`aliases` are the names it serves (``MODULE_ALIAS_CRYPTO``: cra_names and driver names). A
lookup that misses loads every module with that alias, then looks again. Modules marked
`hardware` are device drivers: they are loaded once, at the first lookup, as udev does when it
finds the device; their init probes for it and returns ``-ENODEV`` when there is none. A module
whose init fails (its library is missing, no device) stays unloaded with the reason kept, which
``python -m acomp list`` prints; `module_reason` and `unavailable` say why a name has no usable
driver (for ``acomp list``, the bench and the conformance kit).
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from acomp import algapi
from acomp.algapi import (
    TEST_FAILED,
    CryptoAlg,
    crypto_alg_list,
    crypto_alg_sem,
    crypto_module_eras,
    crypto_module_kernels,
    crypto_module_owner,
)
from acomp.eras import (
    ERAS,
    Era,
    eras_of,
    kernel,
    kernels_of,
    kernels_text,
    newest_in,
    parse_kernel,
    using_kernel,
)

__all__ = (
    "CryptoModule",
    "alg_kernel_in",
    "alg_kernels",
    "alg_supports",
    "coldplug",
    "current_module",
    "load_all_modules",
    "load_module",
    "loaded_modules",
    "module_eras",
    "module_reason",
    "module_status",
    "register_template",
    "request_module",
    "tested_in_supported_kernel",
    "unavailable",
)

GROUP = "acomp.drivers"


@dataclass
class CryptoModule:
    """A driver module: `init` registers its algorithms and returns 0 or a negative errno.

    `init` may set `reason` before failing, to say why (``python-lzo is not installed``).
    `eras` are the kernel eras the driver supports (`acomp.eras.eras_of`: era names such as
    ``"5.12-6.14"``, versions, ``"all"``; empty: every era): the algorithms it registers take
    them, so in another era a lookup does not find them (as a module built for another kernel
    does not load) and the conformance suite runs the driver in each of them. `kernels` are
    the kernel versions, finer than eras (`acomp.eras.kernels_of`: ``"6.17-"``, ``"-6.16"``,
    ``"6.16-6.17"``, ``"6.16"``; empty: every version), for a driver that changed inside an
    era; an algorithm's own ``cra_kernels`` come first. With both, an algorithm is there
    where both say so.
    """

    name: str
    aliases: tuple[str, ...]
    init: Callable[[CryptoModule], int]
    exit: Callable[[CryptoModule], None] = lambda m: None
    hardware: bool = False
    description: str = ""
    reason: str = ""
    loaded: bool = False
    err: int = 0
    data: dict[str, Any] = field(default_factory=dict)
    eras: tuple[str, ...] = ()
    kernels: tuple[str, ...] = ()


_lock = threading.RLock()
_modules: dict[str, CryptoModule] = {}
_tried: set[str] = set()
_coldplugged = False
_templates: dict[str, Callable[[str, str], CryptoAlg | None]] = {}


def current_module() -> str | None:
    """Name of the module whose init is running (algorithms it registers carry it)."""
    return crypto_module_owner.get()


def _discover() -> dict[str, CryptoModule]:
    found: dict[str, CryptoModule] = {}
    for ep in entry_points(group=GROUP):
        try:
            mod = ep.load()
        except Exception as e:  # a broken package must not break every lookup
            found[ep.name] = CryptoModule(
                ep.name, (), lambda m: -errno.ENOEXEC, reason=f"cannot import: {e}"
            )
            continue
        if isinstance(mod, CryptoModule):
            found[mod.name] = mod
    return found


def all_modules() -> dict[str, CryptoModule]:
    """Every module the installed packages declare, loaded or not."""
    with _lock:
        for name, mod in _discover().items():
            _modules.setdefault(name, mod)
        return dict(_modules)


def load_module(mod: CryptoModule) -> int:
    """``insmod``: run the module's init once; 0, or its negative errno."""
    with _lock:
        if mod.loaded:
            return 0
        _modules.setdefault(mod.name, mod)
        _tried.add(mod.name)  # before init: a module whose init looks names up must not recurse
        tok = crypto_module_owner.set(mod.name)
        etok = crypto_module_eras.set(tuple(mod.eras))
        ktok = crypto_module_kernels.set(tuple(mod.kernels))
        try:
            err = mod.init(mod)
        except Exception as e:
            err = -errno.ENOEXEC
            mod.reason = mod.reason or f"init raised {type(e).__name__}: {e}"
        finally:
            crypto_module_kernels.reset(ktok)
            crypto_module_eras.reset(etok)
            crypto_module_owner.reset(tok)
        mod.err = err
        mod.loaded = err == 0
        return err


def unload_module(mod: CryptoModule) -> None:
    """``rmmod``: run exit; its algorithms must be unregistered by it."""
    with _lock:
        if mod.loaded:
            mod.exit(mod)
            mod.loaded = False
            _tried.discard(mod.name)


def request_module(alias: str) -> int:
    """Load every module that serves `alias`; 0 if one loaded now or earlier, else -ENOENT."""
    with _lock:
        ok = False
        no_hw = _no_hw()
        for mod in all_modules().values():
            if alias not in mod.aliases or (no_hw and mod.hardware):
                continue
            if mod.loaded:
                ok = True
                continue
            if mod.name in _tried:
                continue
            if load_module(mod) == 0:
                ok = True
        return 0 if ok else -errno.ENOENT


def _no_hw() -> bool:
    return os.environ.get("ACOMP_NO_HW", "") not in ("", "0")


def load_all_modules() -> list[CryptoModule]:
    """Load every declared driver module once (``modprobe`` of each), keeping failures' reasons.

    Hardware modules are probed as `coldplug` does, so ``ACOMP_NO_HW=1`` leaves them alone.
    Returns the modules now loaded.
    """
    coldplug()
    for mod in all_modules().values():
        if not mod.loaded and mod.name not in _tried and not (mod.hardware and _no_hw()):
            load_module(mod)
    return loaded_modules()


def coldplug() -> None:
    """Load the hardware driver modules once, as udev does at boot.

    ``ACOMP_NO_HW=1`` in the environment skips it (no device drivers are probed).
    """
    global _coldplugged
    if _coldplugged:
        return
    with _lock:
        if _coldplugged:
            return
        _coldplugged = True
        if _no_hw():
            return
        for mod in all_modules().values():
            if mod.hardware and not mod.loaded and mod.name not in _tried:
                load_module(mod)


def loaded_modules() -> list[CryptoModule]:
    with _lock:
        return [m for m in _modules.values() if m.loaded]


def module_status() -> list[tuple[str, str, str]]:
    """(module, state, reason) for every known module: ``live``, ``failed`` or ``not loaded``."""
    out = []
    for name, mod in sorted(all_modules().items()):
        if mod.loaded:
            state = "live"
        elif mod.name in _tried:
            state = "failed"
        else:
            state = "not loaded"
        out.append((name, state, mod.reason))
    return out


def _failed_selftests() -> list[CryptoAlg]:
    with crypto_alg_sem:
        return [a for a in crypto_alg_list if not a.dead and a.selftest == TEST_FAILED]


def _why_failed(alg: CryptoAlg) -> str:
    last = alg.selftest_log[-1] if alg.selftest_log else ""
    return f"{alg.cra_driver_name}: self-test failed ({last})"


def module_reason(name: str) -> str:
    """Why no driver serves `name`, from the module status (``python-lzo is not installed``).

    `name` is a cra_name, a driver name or ``opencl`` (every ``*opencl`` module and driver).
    """
    reasons = []
    modules = all_modules()
    for mod_name, state, reason in module_status():
        mod = modules[mod_name]
        opencl = name == "opencl" and mod_name.endswith("opencl")
        if (name in mod.aliases or opencl) and state != "live":
            reasons.append(f"{mod_name}: {reason or state}")
    for a in _failed_selftests():
        if name in (a.cra_name, a.cra_driver_name) or (
                name == "opencl" and a.cra_driver_name.endswith("-opencl")):
            reasons.append(_why_failed(a))
    now = kernel()
    with crypto_alg_sem:
        other = [a for a in crypto_alg_list if not a.dead and not alg_supports(a, now)
                 and name in (a.cra_name, a.cra_driver_name)]
    for a in other:
        reasons.append(f"{a.cra_driver_name}: supports kernel {alg_kernels(a)}; "
                       f"kernel {now} is modelled")
    return "; ".join(reasons)


def alg_kernels(alg: CryptoAlg) -> str:
    """The kernels `alg` is in, as the reasons print them (``5.11, 5.12 - 6.14``: its eras;
    ``6.17 - 7.0``: its versions; both, joined by "within"; ``all``)."""
    eras = ", ".join(str(e) for e in alg.eras)
    versions = kernels_text(alg.kernels)
    if eras and versions:
        return f"{versions} within {eras}"
    return eras or versions or "all"


def module_eras(mod: CryptoModule) -> str:
    """The eras `mod` declares, as ``acomp list`` prints them (``all`` when it declares none),
    and the kernel versions when it declares them (``all; kernels 6.17 - 7.0``)."""
    try:
        eras = ", ".join(str(e) for e in eras_of(mod.eras)) if mod.eras else "all"
        if mod.kernels:
            eras += f"; kernels {kernels_text(kernels_of(mod.kernels))}"
    except ValueError as e:  # UnsupportedKernel: its algorithms fail to register
        return f"invalid ({e})"
    return eras


def unavailable() -> list[str]:
    """``"name: reason"`` for each module that failed to load and each algorithm whose
    self-test failed (what loading everything leaves out, and why)."""
    out = [f"{name}: {reason or state}" for name, state, reason in module_status()
           if state == "failed"]
    out += [_why_failed(a) for a in _failed_selftests()]
    return out


def register_template(name: str, build: Callable[[str, str], CryptoAlg | None]) -> None:
    """Register a template (``faulty``): `build(template, inner)` makes an instance."""
    _templates[name] = build


def probe_template(spec: str) -> CryptoAlg | None:
    """Instantiate ``tmpl(inner)`` when `tmpl` is a registered template (cryptomgr's probe)."""
    if "(" not in spec or not spec.endswith(")"):
        return None
    tmpl, inner = spec[:-1].split("(", 1)
    build = _templates.get(tmpl)
    if build is None:
        if request_module(tmpl) != 0:
            return None
        build = _templates.get(tmpl)
        if build is None:
            return None
    return build(tmpl, inner)


def alg_supports(alg: CryptoAlg, version: str) -> bool:
    """Whether `alg` is there in kernel `version`: among the eras it was registered with
    (``cra_eras`` or its module's `CryptoModule.eras`) and within the versions
    (``cra_kernels`` or `CryptoModule.kernels`), each where it declares any."""
    ver = parse_kernel(version)
    return ((not alg.eras or any(ver in e for e in alg.eras))
            and (not alg.kernels or any(a <= ver <= b for a, b in alg.kernels)))


def alg_kernel_in(alg: CryptoAlg, era: Era) -> str | None:
    """The newest kernel of `era` that `alg` is in (None when it is in none): where the
    conformance suite and the self-tests check the algorithm for that era."""
    if alg.eras and era not in alg.eras:
        return None
    return newest_in(era, alg.kernels)


@contextmanager
def tested_in_supported_kernel(alg: CryptoAlg) -> Iterator[None]:
    """Model, inside the block, a kernel `alg` is in (the newest one), when the kernel
    modelled now is not one of them: the crypto manager self-tests an algorithm there, as a
    module is tested on the kernel it was built for (deflate-generic, registered while 6.14
    is modelled, is tested on 7.0's API)."""
    if alg_supports(alg, kernel()):
        yield
        return
    newest = next((v for e in reversed(ERAS) if (v := alg_kernel_in(alg, e))), None)
    if newest is None:
        yield
        return
    with using_kernel(newest):
        yield


def _present_now(alg: CryptoAlg) -> bool:
    return alg_supports(alg, kernel())


# The registry asks these (it knows no eras): declarations read by acomp.eras, and whether an
# algorithm is there in the kernel modelled now.
algapi.crypto_eras_of = eras_of
algapi.crypto_kernels_of = kernels_of
algapi.crypto_alg_present = _present_now
