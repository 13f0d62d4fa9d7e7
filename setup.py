"""The one compiled piece: drivers/_lz4walk.py (installed as acomp_drivers._lz4walk), typed
Python that mypyc compiles where a C compiler is found (optional: without one, or without mypyc,
the same file runs as Python, slower; see drivers/_lz4safe.py). No hand-written C. Everything
else is in pyproject.toml."""

import pathlib
import shutil
from typing import Any

from setuptools import setup

ext_modules: list[Any] = []
try:
    from mypyc.build import mypycify
except ImportError:  # no mypyc in the build environment: the walk runs as Python
    pass
else:
    # mypyc names a module after its folders: compile a copy laid out as the installed
    # package (drivers/ is installed as acomp_drivers), so the extension is
    # acomp_drivers._lz4walk and lands beside drivers/_lz4walk.py.
    src = pathlib.Path("build", "mypyc-src", "acomp_drivers")
    src.mkdir(parents=True, exist_ok=True)
    (src / "__init__.py").write_text("")
    shutil.copyfile("drivers/_lz4walk.py", src / "_lz4walk.py")
    try:
        ext_modules = mypycify([str(src / "_lz4walk.py")], opt_level="3")
    except (Exception, SystemExit) as e:  # mypyc refused it (a newer mypy): the walk as Python
        print(f"setup.py: mypyc did not compile drivers/_lz4walk.py ({e!r}); it runs as Python")
        ext_modules = []
    for ext in ext_modules:
        ext.optional = True  # no compiler: installs and works, the walk as Python

setup(ext_modules=ext_modules)
