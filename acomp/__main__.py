"""``python -m acomp`` (and the ``acomp`` command): list the algorithms, run the bench or checks.

The tools' layer, above the users' API; kernel counterpart: ``cat /proc/crypto`` and
``lsmod`` (``list``). Sub-commands:

- ``list``: load every driver module, print ``/proc/crypto``, then each module's state
  (live, or failed with the reason, e.g. ``lzo: python-lzo is not installed``).
- ``bench ...``: the same as ``python -m acomp.bench ...``.
- ``check DRIVER...``: the driver conformance suite (`acomp.testing.conformance`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

__all__ = ("main",)


def _list() -> int:
    from rich.console import Console
    from rich.table import Table

    from acomp import kmod
    from acomp.algapi import TEST_FAILED, crypto_alg_list, crypto_alg_sem
    from acomp.bench.drivers import load_all_modules
    from acomp.proc import proc_crypto

    load_all_modules()
    sys.stdout.write(proc_crypto())
    console = Console(file=sys.stdout)
    if not console.is_terminal:
        console.width = max(console.width, 120)
    t = Table(title="driver modules (acomp.drivers entry points)", title_justify="left")
    for c in ("module", "state", "algorithms", "reason"):
        t.add_column(c, overflow="fold")
    with crypto_alg_sem:
        algs = [a for a in crypto_alg_list if not a.dead]
    no_hw = os.environ.get("ACOMP_NO_HW", "") not in ("", "0")
    modules = kmod.all_modules()
    for name, state, reason in kmod.module_status():
        if state == "not loaded" and modules[name].hardware and no_hw and not reason:
            reason = "hardware drivers not probed (ACOMP_NO_HW is set)"
        style = {"live": "green", "failed": "red"}.get(state, "")
        mine = []
        for a in algs:
            if a.cra_module != name:
                continue
            if a.selftest == TEST_FAILED:
                last = a.selftest_log[-1] if a.selftest_log else ""
                mine.append(f"{a.cra_driver_name} [red]self-test failed[/red]: {last}")
            else:
                mine.append(a.cra_driver_name)
        t.add_row(name, f"[{style}]{state}[/{style}]" if style else state, "\n".join(mine),
                  reason or "")
    console.print()
    console.print(t)
    return 0


def _check(drivers: Sequence[str], backend: str) -> int:
    from acomp.testing import run_conformance

    failed = 0
    for d in drivers:
        for r in run_conformance(d, backend=backend):
            print(f"{d:<20} {r.check:<22} {r.outcome.upper():<7} {r.message}")
            failed += r.outcome == "failed"
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "bench":
        from acomp.bench.cli import main as bench_main

        return bench_main(args[1:])
    p = argparse.ArgumentParser(prog="acomp", description="The kernel's acomp stack, executable.")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="print /proc/crypto and the driver modules' state")
    sub.add_parser("bench", help="run the bench (python -m acomp.bench --help)")
    c = sub.add_parser("check", help="run the driver conformance suite")
    c.add_argument("drivers", nargs="+", metavar="DRIVER")
    c.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    ns = p.parse_args(args)
    if ns.cmd == "list":
        return _list()
    return _check(ns.drivers, ns.backend)


if __name__ == "__main__":
    sys.exit(main())
