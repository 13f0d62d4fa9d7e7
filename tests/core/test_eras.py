"""One switch for the kernel being modelled: ``ACOMP_KERNEL``, `acomp.set_kernel`, and
``Zswap(version=...)`` per instance; a version no era models is a clear error."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys

import pytest

import acomp
from acomp import UnsupportedKernel
from acomp.__main__ import main
from acomp.eras import DEFAULT_KERNEL, ENV, ERAS, era_of, parse_kernel
from zswap import PhysMem, Zswap
from zswap.versions import (
    Zswap511,
    Zswap512,
    Zswap609,
    Zswap613,
    Zswap615,
    Zswap618,
    Zswap700,
    ZswapProposed,
)


def test_the_modelled_eras_in_order() -> None:
    assert [e.name for e in ERAS] == ["5.11", "5.12-6.14", "6.15", "6.16-6.17", "6.18-7.0"]
    for older, newer in itertools.pairwise(ERAS):
        assert older.last < newer.first  # no overlap, oldest first
    assert str(era_of("6.16")) == "6.16 - 6.17"


@pytest.mark.parametrize(("version", "era"), [
    ("5.11", "5.11"), ("5.12", "5.12-6.14"), ("6.1", "5.12-6.14"), ("6.14.7", "5.12-6.14"),
    ("6.15", "6.15"), ("6.16", "6.16-6.17"), ("6.17", "6.16-6.17"), ("6.18", "6.18-7.0"),
    ("6.19", "6.18-7.0"), ("v7.0-rc2", "6.18-7.0"),
])
def test_every_kernel_of_an_era_is_that_era(version: str, era: str) -> None:
    assert era_of(version).name == era


@pytest.mark.parametrize(("version", "says"), [
    ("5.10", "5.10 is not modelled"), ("4.19", "4.19 is not modelled"),
    ("6.20", "there is no kernel 6.20"), ("7.1", "there is no kernel 7.1"),
    ("six", "not MAJOR.MINOR"), ("", "not MAJOR.MINOR"),
])
def test_a_version_no_era_models_is_a_clear_error(version: str, says: str) -> None:
    with pytest.raises(UnsupportedKernel, match=re.escape(says)) as ei:
        era_of(version)
    assert "modelled eras: 5.11, 5.12 - 6.14, 6.15, 6.16 - 6.17, 6.18 - 7.0" in str(ei.value)
    assert isinstance(ei.value, ValueError)


def test_the_default_is_6_14_and_set_kernel_switches_it() -> None:
    if os.environ.get(ENV):
        pytest.skip(f"{ENV} is set")
    assert acomp.kernel() == DEFAULT_KERNEL == "6.14"
    assert acomp.kernel_era().name == "5.12-6.14"
    with acomp.using_kernel("6.16.2") as era:
        assert era.name == "6.16-6.17"
        assert acomp.kernel() == "6.16"
    assert acomp.kernel() == "6.14"
    with pytest.raises(UnsupportedKernel):
        acomp.set_kernel("5.4")
    assert acomp.kernel() == "6.14"  # a refused version changes nothing
    assert parse_kernel((6, 15)) == (6, 15)


@pytest.mark.parametrize(("version", "paths"), [
    ("5.11", Zswap511), ("5.12", Zswap512), ("6.8", Zswap512), ("6.9", Zswap609),
    ("6.12", Zswap609), ("6.13", Zswap613), ("6.14", Zswap613), ("6.15", Zswap615),
    ("6.17", Zswap615), ("6.18", Zswap618), ("6.19", Zswap618), ("7.0", Zswap700),
])
def test_zswap_follows_the_switch_unless_given_a_version(version: str, paths: type) -> None:
    """mm/zswap.c: a kernel between two modelled changes has the older one's paths
    (v6.12's zswap_decompress is v6.9's)."""
    with acomp.using_kernel(version):
        zs = Zswap(mem=PhysMem(64), compressor="lz4-scomp")
        assert (zs.version, type(zs.paths)) == (version, paths)
        zs.close()
        mine = Zswap(mem=PhysMem(64), compressor="lz4-scomp", version="5.12")
        assert type(mine.paths) is Zswap512  # per instance, as before
        mine.close()
    proposed = Zswap(mem=PhysMem(64), compressor="lz4-scomp", version="proposed")
    assert (proposed.version, type(proposed.paths)) == ("proposed", ZswapProposed)
    proposed.close()
    with pytest.raises(UnsupportedKernel, match=r"4\.19 is not modelled"):
        Zswap(mem=PhysMem(64), compressor="lz4-scomp", version="4.19")


def test_the_environment_variable_and_the_cli_option(capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    env = {**os.environ, ENV: "6.16", "ACOMP_NO_HW": "1"}
    r = subprocess.run([sys.executable, "-m", "acomp", "list", "--json"], capture_output=True,
                       text=True, env=env, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert (doc["kernel"], doc["era"]) == ("6.16", "6.16-6.17")
    bad = subprocess.run([sys.executable, "-c", "import acomp"], capture_output=True, text=True,
                         env={**env, ENV: "5.4"}, timeout=120, check=False)
    assert bad.returncode != 0
    assert "ACOMP_KERNEL=5.4: kernel version 5.4 is not modelled" in bad.stderr
    old = acomp.kernel()
    try:
        assert main(["--kernel", "6.18", "list"]) == 0
        assert "kernel 6.18 modelled (era 6.18 - 7.0" in capsys.readouterr().out
    finally:
        acomp.set_kernel(old)
    assert main(["--kernel=4.4", "list"]) == 2
    assert "4.4 is not modelled" in capsys.readouterr().err
