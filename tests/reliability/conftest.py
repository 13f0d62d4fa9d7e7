"""Reliability tests: fuzzing, faults, stress, cancellation, resource bounds.

With ``ACOMP_FUZZ_REPORT=path`` the fuzzing counts (inputs per decompressor and kind) are
written there as JSON at the end of the session; scripts/fuzz prints them.
"""

from __future__ import annotations

import json
import os

import pytest


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get("ACOMP_FUZZ_REPORT")
    if not path:
        return
    import fuzzkit

    data = {
        "counts": {k: dict(v) for k, v in fuzzkit.COUNTS.items()},
        "stricter": {k: dict(v) for k, v in fuzzkit.STRICTER.items()},
        "slowest_block_s": fuzzkit.SLOWEST,
        "examples": fuzzkit.EXAMPLES,
    }
    with open(path, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
