"""The crypto manager: the notifier that self-tests new algorithms and answers lookup misses.

Kernel counterpart: ``crypto/algboss.c`` (``cryptomgr_notify``, ``cryptomgr_schedule_test``,
``cryptomgr_schedule_probe``). It listens on the registry's notifier chain, so the registry
(`acomp.algapi`) imports neither the self-tests nor the module loader:

- ``CRYPTO_MSG_ALG_REGISTER``: run `acomp.testmgr.alg_test` on the new algorithm and report
  the verdict with `crypto_alg_tested` (synchronously; the kernel runs it in a kthread and
  lookups wait for it);
- ``CRYPTO_MSG_ALG_LOOKUP``: coldplug the hardware driver modules once (`acomp.kmod.coldplug`);
- ``CRYPTO_MSG_ALG_REQUEST``: load the modules that serve the name (``request_module``), else
  build a template instance (``faulty(lz4)``).

Importing it registers the notifier; ``import acomp`` does.
"""

from __future__ import annotations

from typing import Any

# The templates that ship with acomp register themselves with the module loader on import.
from acomp import faulty as _faulty  # noqa: F401
from acomp import kmod, testmgr
from acomp.algapi import (
    CRYPTO_MSG_ALG_LOOKUP,
    CRYPTO_MSG_ALG_REGISTER,
    CRYPTO_MSG_ALG_REQUEST,
    NOTIFY_DONE,
    NOTIFY_STOP,
    CryptoAlg,
    crypto_alg_tested,
    crypto_register_notifier,
)

__all__ = ("cryptomgr_notify",)


def cryptomgr_notify(msg: int, data: Any) -> int:
    """The crypto manager's notifier: `NOTIFY_STOP` for what it handled."""
    if msg == CRYPTO_MSG_ALG_REGISTER:
        alg: CryptoAlg = data
        with kmod.tested_in_supported_kernel(alg):  # beyond the kernel: built for one kernel
            ok, log = testmgr.alg_test(alg)
        crypto_alg_tested(alg, ok, log)
        return NOTIFY_STOP
    if msg == CRYPTO_MSG_ALG_LOOKUP:
        kmod.coldplug()
        return NOTIFY_DONE
    if msg == CRYPTO_MSG_ALG_REQUEST:
        name: str = data
        if kmod.request_module(name) == 0 or kmod.probe_template(name) is not None:
            return NOTIFY_STOP
    return NOTIFY_DONE


crypto_register_notifier(cryptomgr_notify)
