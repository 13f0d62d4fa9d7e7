"""pytest plugin of acomp: ``--acomp-driver NAME`` turns the conformance suite into tests.

The driver author's kit (`acomp.testing`) seen from pytest; loaded through the ``pytest11``
entry point by every pytest run where acomp is installed, so it imports nothing of acomp until
the option is used or a fixture is asked for.

- ``pytest --acomp-driver rle-scomp [--acomp-driver ...]`` adds one test per conformance check
  and driver, each run on asyncio and (where installed) trio: ``acomp-conformance[rle-scomp:
  backlog]``. Select with ``-k``, as any test.
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

__all__ = ("ConformanceItem",)

_OPTION = "--acomp-driver"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("acomp", "acomp driver conformance")
    group.addoption(_OPTION, action="append", default=[], metavar="NAME", dest="acomp_driver",
                    help="run the acomp conformance suite against this driver (repeatable)")


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
            return f"{self.check.driver}: {self.check.name}: {excinfo.value}\n" \
                   f"  (check: {self.check.description})"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"acomp conformance: {self.check.driver} {self.check.name}"


def pytest_configure(config: pytest.Config) -> None:
    from acomp import sched

    sched.set_debug_checks(True)  # a driver's tests are where its misuse must be reported
    config.addinivalue_line("markers", "acomp_conformance: a check of the acomp driver "
                                       "conformance suite (added by --acomp-driver)")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    names: list[str] = config.getoption("acomp_driver") or []
    if not names:
        return
    from acomp.testing import conformance

    for driver in dict.fromkeys(names):
        for check in conformance(driver):
            items.append(ConformanceItem.from_parent(
                session, name=f"acomp-conformance[{driver}:{check.name}]", check=check))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "acomp_driver" not in metafunc.fixturenames:
        return
    names = metafunc.config.getoption("acomp_driver") or []
    if names:
        metafunc.parametrize("acomp_driver", list(dict.fromkeys(names)))
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
