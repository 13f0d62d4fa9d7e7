"""The prepared GPU comparison (scripts/opencl-kernel-bench --variants) on PoCL, tiny sizes.

Checks it runs end to end and reports what it promises (the self-test of every sub-group
implementation the device offers, both variants and directions on every page kind, the copy
ceiling), and that the checks it makes on the way hold (blocks lz4 decodes, pages restored).
No figure is asserted beyond being measured.
"""

from __future__ import annotations

import pytest

cl = pytest.importorskip("pyopencl")

from acomp import corpus  # noqa: E402
from acomp_drivers.lz4_opencl.kbench import run_variants, sg_impls  # noqa: E402

pytestmark = pytest.mark.gpu


def test_variants_bench_small() -> None:
    lines: list[str] = []
    try:
        res = run_variants(pages=8, kind_pages=2, repeat=1, sweep=False, out=lines.append)
    except LookupError:
        pytest.skip("no OpenCL device")
    assert set(res["selftest"]) >= {"local"}
    assert all(v == "ok" for v in res["selftest"].values()), res["selftest"]
    assert set(res["kernels"]) == {"mix", *corpus.KINDS}
    for row in res["kernels"].values():
        for v in ("classic", "subgroup"):
            assert row[v]["compress_gbs"] > 0
            assert row[v]["decompress_gbs"] > 0
    assert res["kernels"]["mix"]["subgroup"]["size_vs_lz4"] <= 1.03
    assert res["copy_ceiling_gbs"] > 0
    text = "\n".join(lines)
    assert "extensions:" in text
    assert "copy-only kernel" in text
    assert "sub-group self-test local: ok" in text


def test_sg_impls_always_has_the_fallback() -> None:
    from acomp_drivers.lz4_opencl.device import choose_device

    try:
        dev = choose_device()
    except LookupError:
        pytest.skip("no OpenCL device")
    impls = sg_impls(dev)
    assert impls[0] == "local"
    assert ("ptx" in impls) == ("nvidia" in dev.platform.vendor.lower())
