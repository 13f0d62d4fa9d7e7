"""Shared plumbing for the native acomp CPU drivers (v6.16+): per-CPU streams and the module.

Kernel counterpart: the ``acomp_alg`` halves of ``crypto/deflate.c`` (v6.16, "crypto: deflate -
Convert to acomp") and ``crypto/zstd.c`` (v6.17, "crypto: zstd - convert to acomp"): an
algorithm with ``CRYPTO_ALG_REQ_VIRT`` whose ``init`` allocates the algorithm's per-CPU streams
once (``crypto_acomp_alloc_streams`` under a mutex) and whose module exit frees them
(``crypto_acomp_free_streams``); each request locks this CPU's stream
(``crypto_acomp_lock_stream_bh``) and walks the request (`acomp.internal.acomp_walk_virt`,
atomic: a stream is a spin lock). A module registers its scomp algorithm for the kernels before
the conversion and the native one from it (``cra_kernels``), so each kernel finds its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ClassVar

from acomp._constants import CRYPTO_ALG_REQ_VIRT
from acomp.internal import (
    AcompAlg,
    CryptoAcomp,
    CryptoAcompStreams,
    CryptoAlg,
    CryptoModule,
    ScompAlg,
    crypto_acomp_alloc_streams,
    crypto_acomp_free_streams,
    crypto_register_acomp,
    crypto_register_scomp,
    crypto_unregister_acomp,
    crypto_unregister_scomp,
)

from ._scomp import driver_module


class StreamAcomp(AcompAlg):
    """A native acomp algorithm on per-CPU streams: `streams` is the algorithm's
    ``struct crypto_acomp_streams`` (``alloc_ctx``/``free_ctx`` per subclass)."""

    cra_flags = CRYPTO_ALG_REQ_VIRT
    cra_module = "kernel"
    #: How `acomp.cpubatch` would split a batch (not used: a native acomp driver's batches go
    #: through requests).
    batch_parallel: ClassVar[str] = "none"

    def __init__(self, alloc_ctx: Callable[[], Any],
                 free_ctx: Callable[[Any], None] = lambda ctx: None) -> None:
        super().__init__()
        self.streams = CryptoAcompStreams(alloc_ctx, free_ctx)
        #: ``DEFINE_MUTEX(deflate_stream_lock)`` / ``zstd_stream_lock``: tfm inits race to
        #: allocate the streams once (not a spin lock: the allocation sleeps).
        self.stream_lock = threading.Lock()

    def init(self, tfm: CryptoAcomp) -> int:
        """``deflate_init`` / ``zstd_init``: the streams, once (0 or ``-ENOMEM``)."""
        with self.stream_lock:
            return crypto_acomp_alloc_streams(self.streams)


def native_module(name: str, aliases: tuple[str, ...], make: Callable[[], list[CryptoAlg]],
                  needs: str) -> CryptoModule:
    """A driver module whose init builds its algorithms (importing the library) and registers
    each as its type (scomp or acomp); its exit unregisters them and frees the streams
    (``deflate_mod_fini``). A missing library leaves it unloaded with the reason."""

    def unregister(alg: CryptoAlg) -> int:
        if isinstance(alg, ScompAlg):
            return crypto_unregister_scomp(alg)
        assert isinstance(alg, AcompAlg)
        return crypto_unregister_acomp(alg)

    def register(alg: CryptoAlg) -> int:
        if isinstance(alg, ScompAlg):
            return crypto_register_scomp(alg)
        assert isinstance(alg, AcompAlg)
        return crypto_register_acomp(alg)

    def release(alg: CryptoAlg) -> None:
        if isinstance(alg, StreamAcomp):
            crypto_acomp_free_streams(alg.streams)

    return driver_module(name, aliases, make, needs, register, unregister, release)
