"""The self-test gate: testmgr decides what becomes selectable."""

from __future__ import annotations

import errno
from typing import Any

import pytest
from algs import ZScomp, registered

import acomp
from acomp import CRYPTO_ALG_TESTED, testmgr
from acomp.internal import TestDesc, register_test


class Corrupting(ZScomp):
    """Round trips fail: decompression returns the data with one byte flipped."""

    def decompress(self, tfm: Any, src: memoryview, dst: memoryview, ctx: Any) -> int:
        n = super().decompress(tfm, src, dst, ctx)
        if n > 0:
            dst[0] ^= 0xFF
        return n


class Overrunning(ZScomp):
    """Writes past the capacity it was given when the output does not fit (a kernel bug)."""

    def decompress(self, tfm: Any, src: memoryview, dst: memoryview, ctx: Any) -> int:
        import zlib

        out = zlib.decompress(bytes(src))
        base = dst.obj  # type: ignore[attr-defined]
        memoryview(base)[: len(out)] = out  # scribbles past len(dst) into the scratch
        return len(out) if len(out) <= len(dst) else len(dst)


@pytest.fixture
def tzip_vectors() -> Any:
    import zlib

    inputs = (b"self-test input " * 8, b"another one, shorter")
    desc = TestDesc("tgate", inputs, tuple((zlib.compress(x), x) for x in inputs))
    register_test(desc)
    yield desc
    testmgr.alg_test_descs.pop("tgate", None)


def test_passing_driver_is_tested_and_selectable(tzip_vectors: Any) -> None:
    a = ZScomp("tgate", "tgate-good")
    with registered(a):
        assert a.cra_flags & CRYPTO_ALG_TESTED
        assert a.selftest == "passed"
        tfm = acomp.crypto_alloc_acomp("tgate")
        assert acomp.crypto_acomp_driver_name(tfm) == "tgate-good"
        acomp.crypto_free_acomp(tfm)
        assert "selftest     : passed" in acomp.proc_crypto()


def test_failing_driver_is_registered_but_never_selected(tzip_vectors: Any) -> None:
    bad = Corrupting("tgate", "tgate-bad", priority=500)
    good = ZScomp("tgate", "tgate-good")
    with registered(good, bad):
        assert bad.registered
        assert bad.selftest == "failed"
        assert not bad.cra_flags & CRYPTO_ALG_TESTED
        assert any("Compression test 1 failed" in m or "Decompression" in m
                   for m in bad.selftest_log)
        tfm = acomp.crypto_alloc_acomp("tgate")  # the lower-priority good one
        assert acomp.crypto_acomp_driver_name(tfm) == "tgate-good"
        acomp.crypto_free_acomp(tfm)
        with pytest.raises(acomp.CryptoError) as ei:
            acomp.crypto_alloc_acomp("tgate-bad")
        assert ei.value.err == -errno.ELIBBAD
        block = acomp.proc_crypto().split("driver       : tgate-bad")[1].split("\n\n")[0]
        assert "selftest     : unknown" in block


def test_no_test_for_x_passes() -> None:
    a = ZScomp("tuntested-name", "tuntested-drv")
    with registered(a):
        assert a.selftest == "passed"
        assert a.selftest_log == ["alg: No test for tuntested-name (tuntested-drv)"]


def test_short_dst_check_catches_an_overrunning_driver(tzip_vectors: Any) -> None:
    a = Overrunning("tgate", "tgate-overrun")
    with registered(a):
        assert a.selftest == "failed"
        assert any("short-dst" in m for m in a.selftest_log)


@pytest.mark.parametrize("drv", ["lz4-scomp", "lz4hc-scomp", "zstd-scomp", "deflate-scomp",
                                 "lzo-scomp"])
def test_builtin_drivers_pass_their_vectors(drv: str) -> None:
    if drv == "lzo-scomp":
        pytest.importorskip("lzo")
    tfm = acomp.crypto_alloc_acomp(drv)
    try:
        assert tfm.alg.selftest == "passed"
        assert tfm.alg.cra_name in testmgr.alg_test_descs
        assert tfm.alg.selftest_log == []
    finally:
        acomp.crypto_free_acomp(tfm)
