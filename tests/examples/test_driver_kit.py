"""The driver author's kit end to end: the out-of-tree rle driver, and the conformance suite
passing for good drivers and failing for broken ones."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import acomp
from acomp import kmod
from acomp.internal import ScompAlg, crypto_register_scomp, crypto_unregister_scomp
from acomp.testing import Check, CheckSkipped, conformance, conformance_eras, run_conformance

pytestmark = pytest.mark.anyio

GOOD = ("lz4-scomp", "zstd-scomp", "rle-scomp")


def test_rle_module_is_installed_and_listed() -> None:
    mods = kmod.all_modules()
    assert "rle" in mods, "examples/my_driver is not installed: pip install -e examples/my_driver"
    env = {**os.environ, "ACOMP_NO_HW": "1"}
    r = subprocess.run([sys.executable, "-m", "acomp", "list"], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    blocks = r.stdout.split("\n\n")
    rle = next(b for b in blocks if "driver       : rle-scomp" in b)
    assert "name         : rle\n" in rle
    assert "module       : rle\n" in rle
    assert "selftest     : passed" in rle
    assert "type         : scomp" in rle
    table = r.stdout[r.stdout.index("driver modules"):]
    row = next(line for line in table.splitlines() if "│ rle " in line)
    assert "live" in row
    assert "rle-scomp" in row


def test_rle_loads_on_demand_and_round_trips_through_acomp() -> None:
    assert acomp.crypto_has_acomp("rle")
    tfm = acomp.crypto_alloc_acomp("rle")
    try:
        assert acomp.crypto_acomp_driver_name(tfm) == "rle-scomp"
        assert tfm.alg.selftest == "passed"
        assert not any("No test" in line for line in tfm.alg.selftest_log)  # its own vectors
    finally:
        acomp.crypto_free_acomp(tfm)


async def test_rle_through_the_python_layer() -> None:
    data = b"\x00" * 3000 + b"abcdef" * 100 + b"\xff" * 500
    async with acomp.open("rle") as c:
        blob = await c.compress(data)
        assert len(blob) == 24 * 2 + (600 + 5) + 4 * 2  # runs, 5 literal runs, runs
        assert await c.decompress(blob, len(data)) == data
        with pytest.raises(acomp.OutputTooSmall):
            await c.decompress(blob, len(data) - 1)
        with pytest.raises(acomp.BadData):
            await c.decompress(b"\x05ab", len(data))  # a literal run cut short
        with pytest.raises(acomp.BadData):
            await c.decompress(b"\x80", len(data))  # the reserved header


def test_rle_in_the_bench(capsys: pytest.CaptureFixture[str]) -> None:
    from acomp.bench.cli import main

    assert main(["--driver", "rle", "--pages", "16", "--repeat", "1"]) == 0
    assert "rle-scomp" in capsys.readouterr().out


def _cases() -> list[Any]:
    """The in-tree drivers in the era modelled now; the out-of-tree rle in every era it
    declares (examples/my_driver: all of them), as ``pytest --acomp-driver rle-scomp`` runs."""
    now = [pytest.param(c, id=f"{d}:{c.name}") for d in GOOD if d != "rle-scomp"
           for c in conformance(d)]
    return now + [pytest.param(c, id=c.label) for c in conformance_eras("rle-scomp")]


@pytest.mark.parametrize("check", _cases())
async def test_conformance_passes(check: Check) -> None:
    try:
        await check.arun()
    except CheckSkipped as e:
        assert "is the generic driver" in str(e)  # noqa: PT017 - the only allowed skip here
        pytest.skip(str(e))


# --------------------------------------------------------------------------------------------
# Broken drivers: each must be caught by the check that names its fault.


class _Base(ScompAlg):
    """Correct PackBits via the rle example, so only the injected fault differs."""

    cra_priority = 0

    # The example's own calls (imported here: the first test says when it is not installed).
    def compress(self, tfm: Any, src: memoryview, dst: memoryview, ctx: Any) -> int:
        from my_driver import RleScomp

        return RleScomp.compress(self, tfm, src, dst, ctx)

    def decompress(self, tfm: Any, src: memoryview, dst: memoryview, ctx: Any) -> int:
        from my_driver import RleScomp

        return RleScomp.decompress(self, tfm, src, dst, ctx)


class LenientDecoder(_Base):
    """Returns 0 with what it could decode from a stream cut short (a "robust" decoder)."""

    cra_name = "kitbroken1"
    cra_driver_name = "kitbroken1-scomp"

    def decompress(self, tfm: Any, src: memoryview, dst: memoryview, ctx: Any) -> int:
        for cut in range(len(src), 0, -1):
            ret = super().decompress(tfm, src[:cut], dst, ctx)
            if ret >= 0:
                return ret
        return -errno.EINVAL


class Truncates(_Base):
    """Cuts an output that does not fit to the room there is and says success (-EINVAL, the
    kernel's lz4 code for it, would be fine; a short success never is)."""

    cra_name = "kitbroken2"
    cra_driver_name = "kitbroken2-scomp"

    def compress(self, tfm: Any, src: memoryview, dst: memoryview, ctx: Any) -> int:
        from my_driver import rle_compress

        out = rle_compress(src)[: len(dst)]
        dst[: len(out)] = out
        return len(out)


class Raises(_Base):
    """Lets the codec's exception escape on garbage instead of returning an errno."""

    cra_name = "kitbroken3"
    cra_driver_name = "kitbroken3-scomp"

    def decompress(self, tfm: Any, src: memoryview, dst: memoryview, ctx: Any) -> int:
        if len(src) == 64:
            raise ValueError("garbage!")
        return super().decompress(tfm, src, dst, ctx)


class DropsTail(_Base):
    """Loses the last byte of inputs longer than a page (a chunking bug)."""

    cra_name = "kitbroken4"
    cra_driver_name = "kitbroken4-scomp"

    def compress(self, tfm: Any, src: memoryview, dst: memoryview, ctx: Any) -> int:
        return super().compress(tfm, src[:-1] if len(src) > 4096 else src, dst, ctx)


@pytest.fixture(params=[(LenientDecoder, "malformed-input", "without an error"),
                        (Truncates, "short-dst", "gave 0"),
                        (Raises, "malformed-input", "raised ValueError"),
                        (DropsTail, "roundtrip", "does not round trip")],
                ids=["lenient-decoder", "truncates", "raises", "drops-tail"])
def broken(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, str]]:
    cls, check, words = request.param
    alg = cls()
    assert crypto_register_scomp(alg) == 0
    assert alg.selftest == "passed"  # "No test for kitbrokenN": only the suite can tell
    yield alg.cra_driver_name, check, words
    assert crypto_unregister_scomp(alg) == 0


def test_conformance_fails_a_broken_driver(broken: tuple[str, str, str]) -> None:
    driver, check, words = broken
    results = {r.check: r for r in run_conformance(driver)}
    assert results[check].outcome == "failed"
    assert words in results[check].message
    assert results["selftest"].outcome == "passed"


def test_python_m_acomp_check(broken: tuple[str, str, str]) -> None:
    from acomp.__main__ import main

    assert main(["check", "lz4-scomp"]) == 0
    assert main(["check", broken[0]]) == 1
