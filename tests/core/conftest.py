"""Fixtures shared by the core tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from acomp import sched


@pytest.fixture
def two_cpus() -> Iterator[None]:
    """At least two modelled CPUs for the test (per-CPU streams, scratches), restored after."""
    old = sched.nr_cpu_ids()
    sched.set_nr_cpu_ids(max(old, 2))
    yield
    sched.set_nr_cpu_ids(old)
