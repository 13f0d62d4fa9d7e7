"""The project's import graph has no circle and no arrow up the layers (docs/design.md, Layering).

Read from the code with `ast` (nothing is imported): every ``import`` and ``from ... import``,
and ``importlib.import_module``/``__import__`` of a literal name, at module level or inside a
function; imports under ``if TYPE_CHECKING:`` do not run and do not count. Inside a function an
import still counts as an arrow, so one that only hides a circle (or a wrong direction) from
import time fails here too; in the crypto core no project import inside a function is allowed
at all (the core's order is fixed by its module-level imports alone).

The layers, each importing only what its row allows (its own layer included):

    core         acomp.* (the crypto API, its registry, types, self-tests, module loader)
    drivers      drivers.*                       -> core
    zswap        zswap.* (the library)           -> core
    kit          acomp.testing.*                 -> core
    acomp-bench  acomp.bench.*                   -> core, kit
    zswap-bench  zswap.bench*, zswap.workload*   -> core, zswap, kit, acomp-bench
    cli          acomp.__main__                  -> core, kit, acomp-bench
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Folder in the repository -> the name it is imported as (drivers/ installs as acomp_drivers).
PACKAGES = {"acomp": "acomp", "drivers": "acomp_drivers", "zswap": "zswap"}

ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "drivers": {"core", "drivers"},
    "zswap": {"core", "zswap"},
    "kit": {"core", "kit"},
    "acomp-bench": {"core", "kit", "acomp-bench"},
    "zswap-bench": {"core", "zswap", "kit", "acomp-bench", "zswap-bench"},
    "cli": {"core", "kit", "acomp-bench", "cli"},
}


def layer(mod: str, packages: dict[str, str] = PACKAGES) -> str:
    """The layer of module `mod` (an import name)."""
    acomp, drivers, zswap = packages["acomp"], packages["drivers"], packages["zswap"]

    def under(p: str) -> bool:
        return mod == p or mod.startswith(p + ".")

    if mod == f"{acomp}.__main__":
        return "cli"
    if under(f"{acomp}.bench"):
        return "acomp-bench"
    if under(f"{acomp}.testing"):
        return "kit"
    if mod.startswith((f"{zswap}.bench", f"{zswap}.workload")):  # bench, bench_folio, ...
        return "zswap-bench"
    if under(drivers):
        return "drivers"
    if under(zswap):
        return "zswap"
    if under(acomp):
        return "core"
    raise AssertionError(f"{mod} is in no layer")


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    where: str  # path:line
    in_function: bool


def modules(root: Path, packages: dict[str, str] = PACKAGES) -> dict[str, Path]:
    """Import name -> file, for every module of the project's packages."""
    out: dict[str, Path] = {}
    for folder, name in packages.items():
        base = root / folder
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base)
            if "__pycache__" in rel.parts or "build" in rel.parts:
                continue
            parts = [name, *rel.with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _resolve(name: str, mods: dict[str, Path]) -> str | None:
    while name:
        if name in mods:
            return name
        name = name.rpartition(".")[0]
    return None


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, in_function: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    """Import-like nodes, with whether they sit inside a function; skips TYPE_CHECKING blocks."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _type_checking(node.test):
            for sub in node.orelse:
                yield from _imports(sub, in_function)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom | ast.Call):
            yield node, in_function
        yield from _imports(node, in_function or isinstance(
            node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda))


def edges(root: Path, packages: dict[str, str] = PACKAGES) -> list[Edge]:
    mods = modules(root, packages)
    out: list[Edge] = []
    for mod, path in mods.items():
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, in_fn in _imports(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                # `from pkg import sub` depends on pkg.sub where that is a module, else on pkg
                names = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in mods else prefix
                         for a in node.names]
            elif isinstance(node, ast.Call):
                f = node.func
                fname = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                if (fname in ("import_module", "__import__") and node.args
                        and isinstance(node.args[0], ast.Constant)
                        and isinstance(node.args[0].value, str)):
                    names = [node.args[0].value]
            for n in names:
                dst = _resolve(n, mods)
                if dst is not None and dst != mod:
                    where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
                    out.append(Edge(mod, dst, where, in_fn))
    return out


def circles(es: list[Edge]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    graph: dict[str, set[str]] = {}
    for e in es:
        graph.setdefault(e.src, set()).add(e.dst)
        graph.setdefault(e.dst, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def against_layers(es: list[Edge], packages: dict[str, str] = PACKAGES) -> list[str]:
    out = []
    for e in es:
        src, dst = layer(e.src, packages), layer(e.dst, packages)
        if dst not in ALLOWED[src]:
            out.append(f"{e.where}: {e.src} ({src}) imports {e.dst} ({dst})")
    return out


def hidden_in_core(es: list[Edge], packages: dict[str, str] = PACKAGES) -> list[str]:
    return [f"{e.where}: {e.src} imports {e.dst} inside a function" for e in es
            if e.in_function and layer(e.src, packages) == "core"]


# --------------------------------------------------------------------------------------------
# The project

#: The project imports made inside a function, each with why it waits for the call (also in
#: docs/design.md, Layering). None of them hides a circle or an arrow up: the graph checks above
#: count them as arrows all the same. A new one must be named here with its reason; one that
#: is gone must leave the table.
LAZY_IMPORTS: dict[tuple[str, str], str] = {
    ("acomp.__main__", "acomp.testing"):
        "the command loads a sub-command's layer only when it runs: `acomp list` pays for no kit",
    ("acomp.__main__", "acomp.bench.cli"):
        "the command loads a sub-command's layer only when it runs: `acomp list` pays for no "
        "bench (its report and plot code)",
    ("acomp.testing.plugin", "acomp.sched"):
        "the pytest plugin loads in every pytest run where acomp is installed; it imports "
        "nothing of acomp until its option is given or a fixture is asked for",
    ("acomp.testing.plugin", "acomp.testing"):
        "the pytest plugin loads in every pytest run where acomp is installed; it imports "
        "nothing of acomp until its option is given or a fixture is asked for",
    ("acomp.testing.plugin", "acomp"):
        "the pytest plugin resolves --acomp-driver names (and lists the registered drivers "
        "for an unknown one) only when the option is given",
    ("acomp.testing.plugin", "acomp.algapi"):
        "the pytest plugin resolves --acomp-driver names (and lists the registered drivers "
        "for an unknown one) only when the option is given",
    ("acomp.testing.plugin", "acomp.kmod"):
        "the pytest plugin resolves --acomp-driver names (and lists the registered drivers "
        "for an unknown one) only when the option is given",
    ("acomp_drivers.lz4_opencl", "acomp_drivers.lz4_opencl.device"):
        "PyOpenCL is optional: the module init imports the device code, and a missing "
        "pyopencl becomes the module's reason (`acomp list`), not an import error",
}


@pytest.fixture(scope="module")
def project_edges() -> list[Edge]:
    return edges(ROOT)


def test_every_module_is_in_a_layer(project_edges: list[Edge]) -> None:
    mods = modules(ROOT)
    assert {"acomp.algapi", "acomp_drivers.lz4", "zswap.zswap"} <= set(mods)  # the walk found them
    for m in mods:
        layer(m)


def test_no_import_circle(project_edges: list[Edge]) -> None:
    assert circles(project_edges) == []


@pytest.mark.parametrize("pair", [
    ("acomp.batch", "acomp.cpubatch"),  # BatchResult is acomp.batchresult's
    ("acomp.testing.checks", "acomp.testing.contract"),  # the check model is testing._check's
    ("zswap.zswap", "zswap.versions"),  # ZswapEntry is zswap.entry's
])
def test_the_circles_once_hidden_in_functions_are_one_way(project_edges: list[Edge],
                                                          pair: tuple[str, str]) -> None:
    """The three circles the code had (each hidden by an import inside a function): the first
    module imports the second at module level, and the second imports nothing of the first."""
    a, b = pair
    assert any(e.src == a and e.dst == b and not e.in_function for e in project_edges)
    assert not any(e.src == b and e.dst == a for e in project_edges)


def test_no_import_against_the_layers(project_edges: list[Edge]) -> None:
    assert against_layers(project_edges) == []


def test_no_function_level_import_in_the_core(project_edges: list[Edge]) -> None:
    assert hidden_in_core(project_edges) == []


def test_every_function_level_import_is_a_named_lazy_one(project_edges: list[Edge]) -> None:
    found = {(e.src, e.dst): e.where for e in project_edges if e.in_function}
    unnamed = sorted(f"{where}: {src} imports {dst}" for (src, dst), where in found.items()
                     if (src, dst) not in LAZY_IMPORTS)
    assert unnamed == [], "an import inside a function: move it to module level, or name it " \
                          "in LAZY_IMPORTS with why it must wait"
    assert sorted(set(LAZY_IMPORTS) - set(found)) == [], "named lazy imports that are gone"


def test_the_lazy_imports_are_in_design_md() -> None:
    design = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    missing = [f"{src} -> {dst}" for src, dst in LAZY_IMPORTS
               if f"`{src}` -> `{dst}`" not in design]
    assert missing == []


def test_nothing_imports_the_folder_name_drivers() -> None:
    """drivers/ is installed as acomp_drivers; importing it as `drivers` (possible from a
    checkout) would load a second copy of every driver beside the entry points' one."""
    found = []
    for folder in ("acomp", "drivers", "zswap", "tests", "scripts", "examples"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix not in ("", ".py") or not path.is_file() or "build" in path.parts:
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            if path.suffix == "" and not text.startswith("#!/usr/bin/env python"):
                continue
            tree = ast.parse(text, str(path))
            for node in ast.walk(tree):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module or ""] if isinstance(node, ast.ImportFrom)
                         and not node.level else [])
                found += [f"{path.relative_to(ROOT)}:{node.lineno}" for n in names
                          if n == "drivers" or n.startswith("drivers.")]
    assert found == []


def test_the_registry_knows_no_type_no_selftest_no_loader(project_edges: list[Edge]) -> None:
    """algapi is the bottom of the core: types and the crypto manager register with it."""
    imported = {e.dst for e in project_edges if e.src == "acomp.algapi"}
    assert imported <= {"acomp._constants", "acomp._errors"}


# --------------------------------------------------------------------------------------------
# The checker itself, on a made-up tree: each rule fails where it should.


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    for pkg in PACKAGES:
        (tmp_path / pkg).mkdir(exist_ok=True)
        (tmp_path / pkg / "__init__.py").touch()
    return tmp_path


def test_checker_finds_a_circle_hidden_in_a_function(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "acomp/a.py": "from acomp import b\n",
        "acomp/b.py": "def f():\n    from acomp import a\n",
        "acomp/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                      "    from acomp import d\n",
        "acomp/d.py": "from acomp import c\n",
    })
    es = edges(root)
    assert circles(es) == [["acomp.a", "acomp.b"]]  # c <-> d only under TYPE_CHECKING
    assert hidden_in_core(es) == ["acomp/b.py:2: acomp.b imports acomp.a inside a function"]


def test_checker_finds_imports_up_the_layers(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "acomp/algapi.py": "import importlib\nimportlib.import_module('zswap.zswap')\n",
        "acomp/bench/cli.py": "def mode():\n    import zswap.bench\n",
        "drivers/lz4.py": "from acomp.testing import conformance\nfrom acomp import algapi\n",
        "zswap/zswap.py": "from acomp import algapi\n",
        "zswap/bench.py": "from acomp.bench import cli\nfrom zswap import zswap\n",
        "acomp/testing/__init__.py": "from ..algapi import *\n",
    })
    assert sorted(against_layers(edges(root))) == [
        "acomp/algapi.py:2: acomp.algapi (core) imports zswap.zswap (zswap)",
        "acomp/bench/cli.py:2: acomp.bench.cli (acomp-bench) imports zswap.bench (zswap-bench)",
        "drivers/lz4.py:1: acomp_drivers.lz4 (drivers) imports acomp.testing (kit)",
    ]
