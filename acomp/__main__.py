"""``python -m acomp`` (and the ``acomp`` command): list the algorithms, run the bench or checks.

The tools' layer, above the users' API; kernel counterpart: ``cat /proc/crypto`` and
``lsmod`` (``list``). Sub-commands:

- ``list``: load every driver module, print ``/proc/crypto``, then each module's state
  (live, or failed with the reason, e.g. ``lzo: python-lzo is not installed``) and each
  driver's priority with the reason for it; ``--json`` prints the same as data.
- ``--version``: the installed version.
- ``--kernel VERSION`` (before the sub-command): model that kernel (`acomp.set_kernel`), as
  ``ACOMP_KERNEL=VERSION`` does; ``list`` and the bench header print the kernel and its era.
- ``bench ...``: the same as ``python -m acomp.bench ...``.
- ``check DRIVER...``: the driver conformance suite (`acomp.testing.conformance`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from acomp import __version__, kmod
from acomp._constants import CRYPTO_ALG_ASYNC
from acomp.algapi import TEST_FAILED, crypto_alg_list, crypto_alg_sem
from acomp.eras import kernel, kernel_era, set_kernel
from acomp.proc import proc_crypto

__all__ = ("LIST_SCHEMA", "list_state", "main")

#: Version of ``acomp list --json``'s document; raised when a field changes meaning.
LIST_SCHEMA = 1


def _priority_reason(alg: object) -> str:
    """Why `alg` has its priority: the driver's own word (``priority_reason``), else the rule."""
    why = str(getattr(alg, "priority_reason", "") or "")
    if why:
        return why
    prio = int(getattr(alg, "cra_priority", 0))
    return "as the kernel's CPU drivers" if prio == 0 else "the driver's own"


def list_state() -> dict[str, object]:
    """What ``acomp list`` prints, as data: every algorithm and every driver module."""
    kmod.load_all_modules()
    with crypto_alg_sem:
        algs = [a for a in crypto_alg_list if not a.dead]
    no_hw = os.environ.get("ACOMP_NO_HW", "") not in ("", "0")
    modules = kmod.all_modules()
    mods = []
    for name, state, reason in kmod.module_status():
        if state == "not loaded" and modules[name].hardware and no_hw and not reason:
            reason = "hardware drivers not probed (ACOMP_NO_HW is set)"
        mods.append({"module": name, "state": state, "reason": reason or "",
                     "hardware": modules[name].hardware, "eras": kmod.module_eras(modules[name]),
                     "algorithms": [a.cra_driver_name for a in algs if a.cra_module == name
                                    and kmod.alg_supports(a, kernel())]})
    rows = []
    for a in algs:
        if not kmod.alg_supports(a, kernel()):
            continue  # not in the kernel modelled (deflate-scomp from 6.16), as /proc/crypto
        rows.append({
            "name": a.cra_name, "driver": a.cra_driver_name, "module": a.cra_module,
            "priority": a.cra_priority, "priority_reason": _priority_reason(a),
            "async": bool(getattr(a, "cra_flags", 0) & CRYPTO_ALG_ASYNC),
            "selftest": "failed" if a.selftest == TEST_FAILED else str(a.selftest),
            "selftest_log": list(a.selftest_log[-1:]) if a.selftest == TEST_FAILED else [],
        })
    era = kernel_era()
    return {"schema": LIST_SCHEMA, "version": __version__, "kernel": kernel(), "era": era.name,
            "algorithms": rows, "modules": mods}


def _list(as_json: bool) -> int:
    from rich.console import Console
    from rich.table import Table

    state = list_state()
    if as_json:
        sys.stdout.write(json.dumps(state, indent=2) + "\n")
        return 0
    sys.stdout.write(proc_crypto())
    console = Console(file=sys.stdout)
    console.print(f"kernel {state['kernel']} modelled (era {kernel_era()}: "
                  f"{kernel_era().summary})", highlight=False)
    algs: list[dict[str, Any]] = state["algorithms"]  # type: ignore[assignment]
    mods: list[dict[str, Any]] = state["modules"]  # type: ignore[assignment]
    t = Table(title="driver modules (acomp.drivers entry points)", title_justify="left")
    for c in ("module", "state", "algorithms", "eras", "reason"):
        t.add_column(c, overflow="fold")
    by_driver = {a["driver"]: a for a in algs}
    for m in mods:
        style = {"live": "green", "failed": "red"}.get(m["state"], "")
        mine = []
        for d in m["algorithms"]:
            a = by_driver[d]
            if a["selftest"] == "failed":
                last = a["selftest_log"][0] if a["selftest_log"] else ""
                mine.append(f"{d} [red]self-test failed[/red]: {last}")
            else:
                mine.append(d)
        t.add_row(m["module"], f"[{style}]{m['state']}[/{style}]" if style else m["state"],
                  "\n".join(mine), m["eras"], m["reason"])
    console.print()
    console.print(t)
    p = Table(title="priorities (crypto_alloc_acomp(name) picks the first row of its name: the "
                    "highest, a tie going to the newest)", title_justify="left")
    for c in ("name", "driver", "priority", "why"):
        p.add_column(c, overflow="fold")
    for a in sorted(algs, key=lambda a: (a["name"], -a["priority"])):
        p.add_row(a["name"], a["driver"], str(a["priority"]), a["priority_reason"])
    console.print()
    console.print(p)
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
    if (len(args) >= 2 and args[0] == "--kernel") or (args and args[0].startswith("--kernel=")):
        version = args[1] if args[0] == "--kernel" else args[0].split("=", 1)[1]
        del args[:2 if args[0] == "--kernel" else 1]
        try:
            set_kernel(version)
        except ValueError as e:
            print(f"acomp: --kernel: {e}", file=sys.stderr)
            return 2
    if args and args[0] == "bench":
        from acomp.bench.cli import main as bench_main

        return bench_main(args[1:])
    p = argparse.ArgumentParser(prog="acomp", description="The kernel's acomp stack, executable.")
    p.add_argument("--version", action="version", version=f"acomp {__version__}")
    p.add_argument("--kernel", metavar="VERSION",
                   help=f"the kernel version to model (default {kernel()}: ACOMP_KERNEL or "
                        "6.14)")
    sub = p.add_subparsers(dest="cmd", required=True)
    lp = sub.add_parser("list", help="print /proc/crypto, the driver modules' state and each "
                                     "driver's priority with the reason")
    lp.add_argument("--json", action="store_true",
                    help="print the algorithms and modules as JSON (schema "
                         f"{LIST_SCHEMA}), nothing else")
    sub.add_parser("bench", help="run the bench (python -m acomp.bench --help)")
    c = sub.add_parser("check", help="run the driver conformance suite")
    c.add_argument("drivers", nargs="+", metavar="DRIVER")
    c.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    ns = p.parse_args(args)
    if ns.cmd == "list":
        return _list(ns.json)
    return _check(ns.drivers, ns.backend)


if __name__ == "__main__":
    sys.exit(main())
