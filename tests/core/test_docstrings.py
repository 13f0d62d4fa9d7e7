"""Every public name of every public surface has a docstring of its own.

The surfaces are those of docs/design.md (Public surfaces): `acomp`, `acomp.internal`,
`acomp.engine`, `acomp.sched`, `acomp.testing` and `zswap`. Each module, each class and
function in its ``__all__``, and each public method and property of those classes must say what
it does; a dataclass's generated ``Name(field: type, ...)`` signature does not count.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect

import pytest

SURFACES = ("acomp", "acomp.internal", "acomp.engine", "acomp.sched", "acomp.testing", "zswap")


def own_doc(obj: object) -> str:
    """The docstring `obj` itself carries ('' when it has none)."""
    if inspect.isclass(obj):
        doc = vars(obj).get("__doc__")
        if doc and dataclasses.is_dataclass(obj) and doc.startswith(f"{obj.__name__}("):
            return ""  # written by @dataclass, not by the author
        return (doc or "").strip()
    if isinstance(obj, property):
        return (obj.__doc__ or "").strip()
    if isinstance(obj, (staticmethod, classmethod)):
        return (obj.__func__.__doc__ or "").strip()
    return (getattr(obj, "__doc__", None) or "").strip()


def undocumented(surface: str) -> list[str]:
    """The public names of `surface` without a docstring, dotted."""
    mod = importlib.import_module(surface)
    missing = [] if own_doc(mod) else [surface]
    for name in mod.__all__:
        obj = getattr(mod, name)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue  # constants and instances: described in docs/design.md
        if not own_doc(obj):
            missing.append(f"{surface}.{name}")
        if not inspect.isclass(obj) or issubclass(obj, enum.Enum):
            continue
        for attr, value in vars(obj).items():
            if attr.startswith("_"):
                continue
            if inspect.isfunction(value) and value.__name__ != attr:
                continue  # a function-valued field (a lambda default), not a method
            if (inspect.isfunction(value) or isinstance(value, (property, staticmethod,
                                                                 classmethod))):
                if not own_doc(value):
                    missing.append(f"{surface}.{name}.{attr}")
    return missing


@pytest.mark.parametrize("surface", SURFACES)
def test_every_public_name_has_a_docstring(surface: str) -> None:
    assert undocumented(surface) == []


def test_the_check_sees_a_missing_docstring() -> None:
    """The scan itself: a method, a property and a dataclass without docstrings are found."""

    @dataclasses.dataclass
    class Plain:
        x: int

    class Documented:
        """Has one."""

        def method(self) -> None:
            pass

        @property
        def prop(self) -> int:
            return 1

        def said(self) -> None:
            """Says."""

    assert own_doc(Plain) == ""
    assert own_doc(Documented) == "Has one."
    assert own_doc(vars(Documented)["method"]) == ""
    assert own_doc(vars(Documented)["prop"]) == ""
    assert own_doc(vars(Documented)["said"]) == "Says."
