"""docs/design.md's file tree is the code's: every source file is in it, with its one job, and
everything in it exists; pyproject.toml installs every package of the tree."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOPS = ("acomp", "drivers", "zswap")
SOURCE_SUFFIXES = (".py", ".c", ".cl")  # the kernels and the compiled check are sources too


def tree_files(design: str) -> tuple[set[str], set[str]]:
    """(files, folders) named in the code block of design.md that starts with ``acomp/``."""
    blocks = re.findall(r"^```\n(.*?)^```", design, re.M | re.S)
    tree = next((b for b in blocks if b.startswith("acomp/")), None)
    assert tree is not None, "docs/design.md has no file tree (a code block starting acomp/)"
    files: set[str] = set()
    folders: set[str] = set()
    stack: list[tuple[int, str]] = []  # (indent, folder path)
    for line in tree.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        name = line.split()[0]
        desc = line[indent + len(name):].strip()
        assert desc, f"{name}: no job given in the tree"
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = (stack[-1][1] if stack else "") + name
        if name.endswith("/"):
            folders.add(path.rstrip("/"))
            stack.append((indent, path))
        else:
            files.add(path)
    return files, folders


def source_files() -> set[str]:
    out = set()
    for top in TOPS:
        for p in (ROOT / top).rglob("*"):
            rel = p.relative_to(ROOT)
            if p.suffix not in SOURCE_SUFFIXES or not p.is_file():
                continue
            if "__pycache__" not in rel.parts and "build" not in rel.parts:
                out.add(rel.as_posix())
    return out


def test_the_tree_names_every_source_file_and_nothing_else() -> None:
    files, folders = tree_files((ROOT / "docs" / "design.md").read_text(encoding="utf-8"))
    real = source_files()
    assert sorted(real - files) == [], "source files missing from docs/design.md's tree"
    assert sorted(files - real) == [], "docs/design.md's tree names files that do not exist"
    assert all((ROOT / f).is_dir() for f in folders)


def test_every_package_of_the_tree_is_installed() -> None:
    """A folder with an ``__init__.py`` that pyproject.toml does not list would be missing
    from a wheel (the explicit list is needed because drivers/ is installed under another
    name)."""
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    st = conf["tool"]["setuptools"]
    mapping = {folder: name for name, folder in st.get("package-dir", {}).items()}
    installed = set(st["packages"])
    want = set()
    for init in sorted(p for top in TOPS for p in (ROOT / top).rglob("__init__.py")):
        rel = init.parent.relative_to(ROOT)
        if "build" in rel.parts:
            continue
        top = mapping.get(rel.parts[0], rel.parts[0])
        want.add(".".join((top, *rel.parts[1:])))
    assert sorted(want - installed) == []
    assert sorted(installed - want) == []


def test_the_tree_reader() -> None:
    text = ("x\n```\nacomp/    the API\n  a.py    one job\n  sub/    a folder\n    b.py  two\n"
            "  c.py    three\ndrivers/  d\n  e.py    e\n```\n")
    assert tree_files(text) == ({"acomp/a.py", "acomp/sub/b.py", "acomp/c.py",
                                 "drivers/e.py"}, {"acomp", "acomp/sub", "drivers"})
