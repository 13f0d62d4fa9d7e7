"""``/proc/crypto``: the registered algorithms in the kernel's text format.

Kernel counterpart: ``crypto/proc.c`` (``c_show``) with ``crypto_acomp_show`` and
``crypto_scomp_show``.

Only the algorithms of the kernel modelled now are listed (`acomp.kmod.alg_supports`): a driver
that is scomp up to one version and native acomp from the next (deflate: ``deflate-scomp`` to
6.15, ``deflate-generic`` from 6.16) shows the one that kernel has, with its type.
"""

from __future__ import annotations

from acomp import algapi
from acomp._constants import CRYPTO_ALG_INTERNAL, CRYPTO_ALG_TESTED
from acomp.algapi import crypto_alg_list, crypto_alg_sem, crypto_types

__all__ = ("proc_crypto",)


def _line(key: str, value: object) -> str:
    return f"{key:<12} : {value}"


def proc_crypto() -> str:
    """The text of ``/proc/crypto``: one block per algorithm, newest first, each followed by a
    blank line (``c_show`` ends every entry with ``seq_putc(m, '\\n')``, the last one too)."""
    blocks = []
    with crypto_alg_sem:
        algs = [a for a in crypto_alg_list if algapi.crypto_alg_present(a)]
    for alg in algs:
        lines = [
            _line("name", alg.cra_name),
            _line("driver", alg.cra_driver_name),
            _line("module", alg.cra_module),
            _line("priority", alg.cra_priority),
            _line("refcnt", alg.cra_refcnt),
            _line("selftest", "passed" if alg.cra_flags & CRYPTO_ALG_TESTED else "unknown"),
            _line("internal", "yes" if alg.cra_flags & CRYPTO_ALG_INTERNAL else "no"),
        ]
        ctype = crypto_types.get(alg.cra_type_bits)
        if ctype is not None:
            lines += [_line(k, v) for k, v in ctype.show(alg)]
        blocks.append("\n".join(lines) + "\n\n")
    return "".join(blocks)
