"""Bench modes: the subcommands of ``python -m acomp.bench``, built in or found as plug-ins.

No kernel counterpart; the mechanism is the drivers' (`acomp.kmod`): a package above the
crypto layer publishes a `BenchMode` under the ``acomp.bench_modes`` entry-point group, and the
bench finds it by name, so the crypto layer's bench imports none of its consumers (a plug-in
is imported only when its mode runs, or for ``--help``). zswap's
bench registers itself that way (``zswap = "zswap.bench.mode:MODE"`` in pyproject.toml).

A mode adds its own flags to its subcommand's parser (beside the bench's common ones:
``--driver``, ``--pages``, ``--seed``, ``--repeat``, ``--backend``, ``--json``, ``--csv``,
``--plot``, ``--no-progress``, ``--wide``) and runs with the parsed namespace, returning the exit
status: 0, 1 when a measurement failed verification, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points

__all__ = ("GROUP", "BenchMode", "ModeError", "discover", "load", "plugins")

#: The entry-point group bench modes are published under.
GROUP = "acomp.bench_modes"


@dataclass(frozen=True)
class BenchMode:
    """One subcommand: `add_arguments(parser)` adds its flags, `run(args)` runs it."""

    name: str
    #: One line, shown in ``python -m acomp.bench --help``.
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    #: The subcommand's ``--help`` text (default: `help`).
    description: str = ""
    #: Help texts of common flags whose meaning differs in this mode (``{"--pages": ...}``).
    common_help: Mapping[str, str] = field(default_factory=dict)


class ModeError(Exception):
    """A plug-in mode that cannot be loaded (its package is broken)."""


def plugins() -> dict[str, EntryPoint]:
    """The installed plug-in modes' entry points by name; nothing is imported."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def load(ep: EntryPoint) -> BenchMode:
    """Import one plug-in mode; `ModeError` saying why when it is broken."""
    try:
        mode = ep.load()
    except Exception as e:  # a broken package must not break the bench
        raise ModeError(f"cannot import {ep.value}: {type(e).__name__}: {e}") from e
    if not isinstance(mode, BenchMode):
        raise ModeError(f"{ep.value} is a {type(mode).__name__}, not a BenchMode")
    return mode


def discover() -> tuple[dict[str, BenchMode], dict[str, str]]:
    """Every installed plug-in mode, imported, by name; and ``{name: why}`` for broken ones."""
    found: dict[str, BenchMode] = {}
    broken: dict[str, str] = {}
    for name, ep in plugins().items():
        try:
            found[name] = load(ep)
        except ModeError as e:
            broken[name] = str(e)
    return found, broken
