"""Shared fixtures: every async test runs on asyncio and trio; each test starts clean."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import pytest
from hypothesis import settings

from acomp import algapi, cpubatch, eras, faulty, kmod, sched, scompress
from zswap import zpool

# The suite's property tests are derandomized (the same examples every run), so CI is
# reproducible; exploring new inputs is scripts/fuzz's job. ACOMP_HYPOTHESIS=random opts out.
settings.register_profile("acomp", derandomize=True, deadline=None)
settings.register_profile("random", deadline=None)
settings.load_profile("random" if os.environ.get("ACOMP_HYPOTHESIS") == "random" else "acomp")

# lz4-opencl sends requests below its break-even batch to a software fallback by default; the
# suite's lz4-opencl tests are there to exercise the device, so their transforms start with
# the fallback off (tests/opencl/test_host_path.py switches it on where it is the subject).
os.environ.setdefault("ACOMP_OPENCL_FALLBACK", "0")


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _clean_sched() -> Iterator[None]:
    """Splats of one test never leak into the next; raise mode is the default in tests, and
    the debug checks are on (whatever ACOMP_DEBUG_CHECKS says): the bugs are the subject."""
    sched.set_debug_checks(True)
    sched.reset()
    sched.config.atomic_sleep = "raise"
    sched.config.lock_debug = "raise"
    yield
    sched.set_debug_checks(True)
    sched.reset()
    sched.config.atomic_sleep = "raise"
    sched.config.lock_debug = "raise"


# --------------------------------------------------------------------------------------------
# Order: ``--acomp-order reverse|random|modules`` runs the suite in another order, to find tests
# that depend on what ran before them (``--acomp-seed N`` picks the shuffle; the header says it).


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("acomp-order", "acomp suite order")
    group.addoption("--acomp-order", default="file", choices=("file", "reverse", "random",
                                                              "modules"),
                    help="file (default), reverse (modules and their tests backwards), random "
                         "(modules shuffled, and the tests in each), modules (modules "
                         "shuffled, each in file order)")
    group.addoption("--acomp-seed", type=int, default=None,
                    help="seed of --acomp-order random/modules (default: from the clock, "
                         "printed in the header)")


def _seed(config: pytest.Config) -> int:
    seed = config.getoption("acomp_seed")
    if seed is None:
        seed = getattr(config, "_acomp_seed", None)
        if seed is None:
            seed = random.SystemRandom().randrange(1 << 16)
        config._acomp_seed = seed  # type: ignore[attr-defined]
    return int(seed)


def pytest_report_header(config: pytest.Config) -> str | None:
    order = config.getoption("acomp_order")
    if order in ("random", "modules"):
        return f"acomp order: {order}, --acomp-seed {_seed(config)}"
    return None if order == "file" else f"acomp order: {order}"


def _wide_params(item: pytest.Item) -> bool:
    """Whether `item` is one instance of a module- or class-scoped parametrized fixture (its
    module's tests are grouped by that parameter, which a shuffle would undo at a cost)."""
    spec = getattr(item, "callspec", None)
    scopes = getattr(spec, "_arg2scope", {}) if spec is not None else {}
    return any(getattr(s, "value", s) != "function" for s in scopes.values())


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    order = config.getoption("acomp_order")
    if order == "file":
        return
    groups: dict[str, list[pytest.Item]] = {}
    for it in items:
        groups.setdefault(it.nodeid.split("::", 1)[0], []).append(it)
    mods = list(groups.values())
    if order == "reverse":
        mods = [list(reversed(m)) for m in reversed(mods)]
    else:
        rng = random.Random(_seed(config))
        rng.shuffle(mods)
        if order == "random":
            for m in mods:
                if not any(_wide_params(it) for it in m):
                    rng.shuffle(m)
    items[:] = [it for m in mods for it in m]


# --------------------------------------------------------------------------------------------
# Leak guard: what one test changes in the process's global state and does not put back fails
# that test (at its teardown), so a leak is reported where it happens, not where a later test
# trips over it. Checked after each test and again after each module (for module fixtures).


def _algs() -> dict[str, tuple[int, int, str]]:
    algs = {a.cra_driver_name: (a.cra_refcnt, a.cra_priority, a.cra_module)
            for a in algapi.crypto_alg_list}
    # zpool drivers as "algorithms" of module zpool: a pool left alive is a refcount above 0
    algs.update({f"zpool {d.type}": (d.refcount + 1, 0, "zpool") for d in zpool._drivers})
    return algs


def _state() -> dict[str, object]:
    return {
        "the modelled kernel (acomp.eras)": eras.kernel(),
        "nr_cpu_ids (acomp.sched)": sched.nr_cpu_ids(),
        _SCRATCH: scompress._users,
        "acomp.cpubatch.config": repr(cpubatch.config),
        "faulty(...) plans": {k: v for k, v in faulty._plans.items() if v != faulty.FaultPlan()},
        "environment": {k: v for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES)},
    }


_ENV_PREFIXES = ("ACOMP_",)
_SCRATCH = "scomp scratch users (acomp.scompress)"


def _leaks(before: tuple[dict[str, object], dict[str, tuple[int, int, str]]],
           after: tuple[dict[str, object], dict[str, tuple[int, int, str]]],
           refs: bool = True) -> list[str]:
    (s0, a0), (s1, a1) = before, after
    if not refs:  # transforms the module keeps (mark module_tfms): counted per module
        a0 = {k: (1, p, m) for k, (_, p, m) in a0.items()}
        a1 = {k: (1, p, m) for k, (_, p, m) in a1.items()}
        s1 = {**s1, _SCRATCH: s0[_SCRATCH]}
    out = [f"{k}: {s0[k]!r} before, {s1[k]!r} after" for k in s0 if s0[k] != s1[k]]
    loadable = {m.name for m in kmod.loaded_modules()} | set(kmod._templates) | {"zpool"}
    for name, (ref, prio, module) in a1.items():
        if name in a0:
            ref0, prio0, _ = a0[name]
            if ref != ref0:
                out.append(f"{name}: refcnt {ref0} before, {ref} after (a transform or "
                           "request not freed)")
            if prio != prio0:
                out.append(f"{name}: priority {prio0} before, {prio} after")
        elif module not in loadable:
            out.append(f"{name} (module {module}) left registered")
        elif ref != 1:  # loaded on demand (a module, a template instance): idle afterwards
            out.append(f"{name}: loaded on demand, refcnt {ref} after (a transform or request "
                       "not freed)")
    out += [f"{name}: registered before, gone after" for name in a0
            if name not in a1 and not name.startswith("zpool ")]  # zpool drivers reload
    return out


@pytest.fixture(scope="module", autouse=True)
def _module_leak_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    before = (_state(), _algs())
    yield
    leaks = _leaks(before, (_state(), _algs()))
    if leaks and not (request.session.shouldstop or request.session.shouldfail):
        pytest.fail(f"{request.node.nodeid} (its module fixtures) left global state changed:\n  "
                    + "\n  ".join(leaks), pytrace=False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "module_tfms: the module keeps transforms across its "
                            "tests and frees them in a module fixture; the leak guard checks "
                            "reference counts after the module instead of after each test")


@pytest.fixture(autouse=True)
def _leak_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    before = (_state(), _algs())
    yield
    refs = request.node.get_closest_marker("module_tfms") is None
    leaks = _leaks(before, (_state(), _algs()), refs)
    if leaks:
        pytest.fail(f"{request.node.nodeid} left global state changed:\n  "
                    + "\n  ".join(leaks), pytrace=False)
