"""pytest plugin of acomp: ``--acomp-driver NAME`` turns the conformance suite into tests.

The driver author's kit (`acomp.testing`) seen from pytest; loaded through the ``pytest11``
entry point by every pytest run where acomp is installed, so it imports nothing of acomp until
the option is used or a fixture is asked for.

- ``pytest --acomp-driver rle-scomp [--acomp-driver ...]`` adds one test per conformance check,
  driver and kernel era the driver supports (`acomp.testing.driver_eras`; each era at its
  newest kernel), each run on asyncio and (where installed) trio:
  ``acomp-conformance[rle-scomp@6.16-6.17:backlog]`` (a name is what the bench takes: a
  driver name, or a cra_name such as ``rle``, which means the driver ``crypto_alloc_acomp``
  picks for it; a name that matches nothing is one usage error before any test runs). Select
  with ``-k``, as any test; ``--acomp-kernel 6.16`` runs the checks in that kernel only.
- fixture ``acomp_driver``: each ``--acomp-driver`` name in turn (tests using it are skipped
  when the option is not given).
- fixture ``acomp_fake_driver``: a factory of registered `acomp.testing.FakeAsyncDriver`
  instances, unregistered after the test.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ("ConformanceItem", "resolve_driver")

_OPTION = "--acomp-driver"
_KERNEL = "--acomp-kernel"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("acomp", "acomp driver conformance")
    group.addoption(_OPTION, action="append", default=[], metavar="NAME", dest="acomp_driver",
                    help="run the acomp conformance suite against this driver (repeatable)")
    group.addoption(_KERNEL, default=None, metavar="VERSION", dest="acomp_kernel",
                    help="run the conformance checks with this kernel modelled only (default: "
                         "every era the driver supports)")


def _backends() -> list[str]:
    return ["asyncio"] + (["trio"] if importlib.util.find_spec("trio") is not None else [])


class ConformanceItem(pytest.Item):
    """One conformance check of one driver, run on every available event-loop backend."""

    def __init__(self, *, check: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.add_marker(pytest.mark.acomp_conformance)

    def runtest(self) -> None:
        from acomp.testing import CheckSkipped

        for backend in _backends():
            try:
                self.check.run(backend)
            except CheckSkipped as e:
                pytest.skip(str(e))
            except AssertionError as e:
                raise AssertionError(f"[{backend}] {e}") from None

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, AssertionError):
            return f"{self.check.label}: {excinfo.value}\n" \
                   f"  (check: {self.check.description})"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"acomp conformance: {self.check.label}"


def resolve_driver(name: str) -> str:
    """The driver name `name` stands for: itself for a driver name, the one
    ``crypto_alloc_acomp`` picks for a cra_name (or a template such as ``faulty(lz4)``).
    `pytest.UsageError` naming the drivers there are when it matches nothing."""
    from acomp import CryptoError, crypto_acomp_driver_name, crypto_alloc_acomp, crypto_free_acomp
    from acomp.algapi import crypto_alg_list, crypto_alg_sem
    from acomp.kmod import load_all_modules, module_reason

    try:
        tfm = crypto_alloc_acomp(name)
    except CryptoError as e:
        load_all_modules()
        with crypto_alg_sem:
            known = sorted({a.cra_driver_name for a in crypto_alg_list if not a.dead})
        why = module_reason(name)
        raise pytest.UsageError(
            f"{_OPTION} {name}: no such driver or algorithm ({why or e.strerror}); "
            f"registered drivers: {', '.join(known)}") from None
    try:
        return crypto_acomp_driver_name(tfm)
    finally:
        crypto_free_acomp(tfm)


def _drivers(config: pytest.Config) -> list[str]:
    """The ``--acomp-driver`` names resolved to driver names, once per session."""
    cached: list[str] | None = getattr(config, "_acomp_drivers", None)
    if cached is None:
        names: list[str] = config.getoption("acomp_driver") or []
        cached = list(dict.fromkeys(resolve_driver(n) for n in names))
        config._acomp_drivers = cached  # type: ignore[attr-defined]
    return cached


def pytest_configure(config: pytest.Config) -> None:
    from acomp import sched

    sched.set_debug_checks(True)  # a driver's tests are where its misuse must be reported
    if config.getoption("acomp_driver", None):
        _drivers(config)  # an unknown name: one usage error, before collection
    config.addinivalue_line("markers", "acomp_conformance: a check of the acomp driver "
                                       "conformance suite (added by --acomp-driver)")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    names = _drivers(config)
    if not names:
        return
    from acomp.testing import conformance, conformance_eras

    kernel: str | None = config.getoption("acomp_kernel")
    for driver in names:
        checks = conformance(driver, kernel) if kernel else conformance_eras(driver)
        for check in checks:
            items.append(ConformanceItem.from_parent(
                session, name=f"acomp-conformance[{check.label}]", check=check))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "acomp_driver" not in metafunc.fixturenames:
        return
    names = _drivers(metafunc.config)
    if names:
        metafunc.parametrize("acomp_driver", names)
    else:
        metafunc.parametrize("acomp_driver", [pytest.param(
            None, marks=pytest.mark.skip(reason=f"no {_OPTION} given"))])


@pytest.fixture
def acomp_fake_driver() -> Iterator[Callable[..., Any]]:
    """``make(script, **kwargs)`` registers a `FakeAsyncDriver`; all are removed afterwards."""
    from acomp.testing import FakeAsyncDriver

    made: list[FakeAsyncDriver] = []

    def make(*args: Any, **kwargs: Any) -> FakeAsyncDriver:
        fake = FakeAsyncDriver(*args, **kwargs)
        fake.register()
        made.append(fake)
        return fake

    yield make
    for fake in reversed(made):
        fake.unregister()
