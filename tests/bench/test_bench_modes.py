"""The bench's modes: subcommands with their own flags, the old ``--mode``, plug-ins found
through the ``acomp.bench_modes`` entry points (zswap's among them), and ``--version``."""

from __future__ import annotations

import argparse
import sys
import types
from importlib.metadata import EntryPoint

import pytest

import acomp
from acomp.bench import cli, modes
from acomp.bench.cli import main
from acomp.bench.modes import GROUP, BenchMode


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert e.value.code == 0
    return capsys.readouterr().out


def test_subcommand_help_shows_its_own_flags(capsys: pytest.CaptureFixture[str]) -> None:
    top = _help(capsys)
    assert "--zpool" not in top  # the zswap mode's flags are not the top level's
    for mode in ("throughput", "batch", "overhead", "zswap"):
        assert f"\n  {mode} " in top  # every mode listed with its one-line help
    z = _help(capsys, "zswap")
    assert z.startswith("usage: python -m acomp.bench zswap")
    for flag in ("--zpool", "--kernel", "--working-set", "--skip", "--driver", "--json"):
        assert flag in z
    assert "--batch-sizes" not in z  # the crypto modes' flags are theirs
    assert "default lz4-scomp" in z  # common flags say what they mean in this mode
    b = _help(capsys, "batch")
    assert b.startswith("usage: python -m acomp.bench batch")
    assert "--batch-sizes" in b
    assert "--zpool" not in b


def test_old_mode_flag_is_the_same_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert _help(capsys, "--mode", "zswap") == _help(capsys, "zswap")
    assert _help(capsys, "--mode=batch") == _help(capsys, "batch")


def test_unknown_mode_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zswpa"]) == 2
    err = capsys.readouterr().err
    assert "no mode 'zswpa'" in err
    assert "zswap" in err  # the modes there are
    assert err.count("\n") == 1
    with pytest.raises(SystemExit):
        main(["--mode"])  # a flag without its value: argparse's own error


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"acomp.bench (acomp {acomp.__version__})"


def test_zswap_registers_itself_through_the_entry_point() -> None:
    eps = modes.plugins()
    assert eps["zswap"].value == "zswap.bench.mode:MODE"
    from zswap.bench.mode import MODE

    assert modes.load(eps["zswap"]) is MODE
    found, broken = modes.discover()
    assert found["zswap"] is MODE
    assert "zswap" not in broken


@pytest.fixture
def fake_plugins(monkeypatch: pytest.MonkeyPatch) -> list[argparse.Namespace]:
    """Two plug-ins in the entry-point group: a working mode and a broken one."""
    ran: list[argparse.Namespace] = []

    def add(p: argparse.ArgumentParser) -> None:
        p.add_argument("--colour", default="blue", help="a flag of the plug-in's own")

    def run(args: argparse.Namespace) -> int:
        ran.append(args)
        return 0

    mod = types.ModuleType("_acomp_fake_mode")
    mod.MODE = BenchMode("fake", "a plug-in for the test", add, run)  # type: ignore[attr-defined]
    mod.NOT_A_MODE = 42  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "_acomp_fake_mode", mod)
    real = modes.entry_points

    def eps(group: str) -> list[EntryPoint]:
        assert group == GROUP
        return [*real(group=group),
                EntryPoint("fake", "_acomp_fake_mode:MODE", GROUP),
                EntryPoint("wrong", "_acomp_fake_mode:NOT_A_MODE", GROUP),
                EntryPoint("gone", "_acomp_no_such_module:MODE", GROUP)]

    monkeypatch.setattr(modes, "entry_points", eps)
    return ran


def test_a_plugin_mode_runs_with_common_and_own_flags(
        fake_plugins: list[argparse.Namespace], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fake", "--colour", "red", "--pages", "3", "--driver", "x"]) == 0
    (args,) = fake_plugins
    assert (args.mode, args.colour, args.pages, args.driver) == ("fake", "red", 3, ["x"])
    assert main(["--mode", "fake"]) == 0
    assert fake_plugins[1].colour == "blue"
    top = _help(capsys)
    assert "a plug-in for the test" in top
    assert "broken" in top  # the broken ones are listed as such, not hidden
    assert "--colour" in _help(capsys, "fake")


def test_a_broken_plugin_is_an_error_only_when_chosen(
        fake_plugins: list[argparse.Namespace], capsys: pytest.CaptureFixture[str]) -> None:
    found, broken = modes.discover()
    assert "fake" in found
    assert "not a BenchMode" in broken["wrong"]
    assert "cannot import" in broken["gone"]
    assert main(["gone"]) == 2
    assert "installed but broken" in capsys.readouterr().err
    assert main(["wrong"]) == 2
    assert "not a BenchMode" in capsys.readouterr().err


def test_a_plugin_never_replaces_a_builtin_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    evil = BenchMode("batch", "evil", lambda p: None, lambda a: 99)
    monkeypatch.setattr(cli, "discover", lambda: ({"batch": evil}, {}))
    found, _ = cli.all_modes()
    assert found["batch"] is not evil
