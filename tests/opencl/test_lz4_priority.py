"""lz4-opencl's priority follows the hardware: 300 on a GPU, below lz4-scomp on a CPU device.

`choose_priority` is checked for every device kind without a device; the registrations are
checked in fresh processes (the registry is per process), on the OpenCL device there is: on
PoCL (a CPU device) ``lz4`` must be lz4-scomp, and ``ACOMP_OPENCL_PRIORITY`` must still raise
lz4-opencl above it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from acomp_drivers.lz4_opencl import ENV_PRIORITY, GPU_PRIORITY, choose_priority

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("kind", "env", "prio"), [
    ("GPU", None, GPU_PRIORITY),
    ("ACCELERATOR", None, GPU_PRIORITY),
    ("CPU", None, 0),
    ("CPU", "300", 300),       # raised for testing
    ("GPU", "7", 7),
    ("CPU", "", 0),            # empty: as unset
    ("CPU", "-1", 0),          # never a negative priority (registration would refuse it)
    ("GPU", "high", GPU_PRIORITY),
])
def test_choose_priority(kind: str, env: str | None, prio: int) -> None:
    got, why = choose_priority(kind, env)
    assert got == prio
    assert why  # `acomp list` prints it
    if env is not None and got != (0 if kind == "CPU" else GPU_PRIORITY):
        assert ENV_PRIORITY in why


_PROBE = """
import json, acomp
from acomp import api
from acomp_drivers.lz4_opencl import loaded_alg
picked = acomp.crypto_alloc_acomp("lz4")
by_name = acomp.crypto_alloc_acomp("lz4-opencl")
alg = loaded_alg()
print(json.dumps({"lz4": acomp.crypto_acomp_driver_name(picked),
                  "by_name": acomp.crypto_acomp_driver_name(by_name),
                  "kind": alg.device_info.kind, "priority": alg.cra_priority,
                  "why": alg.priority_reason}))
"""


def _probe(**env: str) -> dict[str, object]:
    e = {k: v for k, v in os.environ.items() if k not in (ENV_PRIORITY, "ACOMP_NO_HW")}
    e.update(env)
    r = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=e,
                       cwd=ROOT, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    out: dict[str, object] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


def _has_opencl() -> bool:
    r = subprocess.run([sys.executable, "-c", "import acomp; print(acomp.crypto_has_acomp("
                        "'lz4-opencl'))"], capture_output=True, text=True, cwd=ROOT,
                       timeout=120, check=False)
    return r.stdout.strip().endswith("True")


pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not _has_opencl(), reason="no OpenCL device (no lz4-opencl)")]


def test_lookup_follows_the_device_kind() -> None:
    got = _probe()
    assert got["by_name"] == "lz4-opencl"  # always found by its driver name
    if got["kind"] == "CPU":
        assert got["priority"] == 0
        assert got["lz4"] == "lz4-scomp"  # a CPU-emulated device is no accelerator
    else:
        assert got["priority"] == GPU_PRIORITY
        assert got["lz4"] == "lz4-opencl"


def test_environment_raises_it_for_testing() -> None:
    got = _probe(**{ENV_PRIORITY: "300"})
    assert got["priority"] == 300
    assert got["lz4"] == "lz4-opencl"
    assert ENV_PRIORITY in str(got["why"])


def test_acomp_list_says_why() -> None:
    r = subprocess.run([sys.executable, "-m", "acomp", "list", "--json"], capture_output=True,
                       text=True, cwd=ROOT, timeout=120, check=False,
                       env={k: v for k, v in os.environ.items() if k != ENV_PRIORITY})
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    row = next(a for a in doc["algorithms"] if a["driver"] == "lz4-opencl")
    scomp = next(a for a in doc["algorithms"] if a["driver"] == "lz4-scomp")
    assert row["priority_reason"] != scomp["priority_reason"]
    assert ("CPU" in row["priority_reason"]) == (row["priority"] == 0)
