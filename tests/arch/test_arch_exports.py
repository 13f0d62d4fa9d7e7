"""Each public surface exports exactly its documented names (docs/design.md, Public surfaces).

A surface's ``__all__`` is a tuple without repeats; every name in it can be imported; every
name is listed under the surface's heading in docs/design.md and every name listed there is
exported; and no public class or function the surface itself defines is left out of it.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SURFACES = ("acomp", "acomp.internal", "acomp.engine", "acomp.sched", "acomp.testing", "zswap")


def documented(design: str) -> dict[str, set[str]]:
    """Surface -> the names in backticks under its ``### `surface` `` heading."""
    m = re.search(r"^## Public surfaces\n(.*?)(?=^## )", design, re.M | re.S)
    assert m is not None, "docs/design.md has no '## Public surfaces' section"
    out: dict[str, set[str]] = {}
    for head, body in re.findall(r"^### `([\w.]+)`\n(.*?)(?=^### |\Z)", m.group(1),
                                 re.M | re.S):
        out[head] = set(re.findall(r"`([A-Za-z_]\w*)`", body))
    return out


@pytest.fixture(scope="module")
def docs() -> dict[str, set[str]]:
    return documented((ROOT / "docs" / "design.md").read_text(encoding="utf-8"))


def test_every_surface_is_documented(docs: dict[str, set[str]]) -> None:
    assert set(docs) == set(SURFACES)


@pytest.mark.parametrize("name", SURFACES)
def test_all_is_a_tuple_of_importable_names(name: str) -> None:
    mod = importlib.import_module(name)
    exported = mod.__all__
    assert isinstance(exported, tuple)
    assert len(set(exported)) == len(exported), "a name is exported twice"
    missing = [n for n in exported if not hasattr(mod, n)]
    assert missing == []
    ns: dict[str, object] = {}
    exec(f"from {name} import *", ns)  # what a star import gives is the same set
    assert set(ns) - {"__builtins__"} == set(exported)


@pytest.mark.parametrize("name", SURFACES)
def test_exports_exactly_the_documented_names(name: str, docs: dict[str, set[str]]) -> None:
    exported = set(importlib.import_module(name).__all__)
    listed = docs[name]
    assert sorted(exported - listed) == [], (
        f"exported by {name} but not listed under ### `{name}` in docs/design.md")
    assert sorted(listed - exported) == [], (
        f"listed under ### `{name}` in docs/design.md but not exported by {name}")


@pytest.mark.parametrize("name", SURFACES)
def test_no_public_definition_is_left_out(name: str) -> None:
    """A public class or function the surface defines (or, for a package, re-exports from its
    own private modules) is in ``__all__``; imported helpers (typing, dataclass) are not."""
    mod = importlib.import_module(name)
    top = name.split(".")[0]
    left_out = []
    for attr, value in vars(mod).items():
        if attr.startswith("_") or attr in mod.__all__ or inspect.ismodule(value):
            continue
        if not (inspect.isclass(value) or inspect.isfunction(value)):
            continue
        home = getattr(value, "__module__", "") or ""
        own = home == name or ((mod.__file__ or "").endswith("__init__.py") and (
            home.startswith(f"{name}._") or home == top))
        if own:
            left_out.append(attr)
    assert left_out == []


@pytest.mark.parametrize("name", SURFACES)
def test_classes_from_private_modules_show_the_surface(name: str) -> None:
    """A class a surface exports from one of its private modules (``acomp.testing._check``)
    prints, pickles and documents as the surface's (``acomp.testing.CheckFailed``)."""
    mod = importlib.import_module(name)
    private = [f"{n}: {c.__module__}" for n in mod.__all__
               if inspect.isclass(c := getattr(mod, n))
               and any(part.startswith("_") for part in c.__module__.split("."))]
    assert private == []


def test_the_checker_reads_the_section() -> None:
    text = ("## Public surfaces\n\nintro `notaname` is outside\n\n### `pkg`\n\n"
            "- a: `One`, `two_2`\n\n### `pkg.sub`\n\nonly `three`.\n\n## Next\n`four`\n")
    assert documented(text) == {"pkg": {"One", "two_2"}, "pkg.sub": {"three"}}
