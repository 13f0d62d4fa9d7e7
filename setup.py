"""The one compiled piece: acomp_drivers._lz4check (optional: without a compiler, the same
check runs in Python, slower; see drivers/_lz4safe.py). Everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("acomp_drivers._lz4check", ["drivers/_lz4check.c"], optional=True)])
