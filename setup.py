"""The one compiled piece: drivers/_lz4walk.py, typed Python that mypyc compiles where a C
compiler is found (optional: without one, or without mypyc, the same file runs as Python,
slower; see drivers/_lz4safe.py). No hand-written C. Everything else is in pyproject.toml."""

from typing import Any

from setuptools import setup

ext_modules: list[Any] = []
try:
    from mypyc.build import mypycify
except ImportError:  # no mypyc in the build environment: the walk runs as Python
    pass
else:
    ext_modules = mypycify(["drivers/_lz4walk.py"], opt_level="3")
    for ext in ext_modules:
        ext.optional = True  # no compiler: installs and works, the walk as Python

setup(ext_modules=ext_modules)
