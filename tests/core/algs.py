"""Test algorithms: tiny scomp/acomp drivers whose behaviour the tests script."""

from __future__ import annotations

import errno
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from acomp import CRYPTO_ALG_ASYNC
from acomp.internal import (
    AcompAlg,
    AcompReq,
    CryptoAlg,
    ScompAlg,
    acomp_request_complete,
    crypto_register_acomp,
    crypto_register_scomp,
    crypto_unregister_acomp,
    crypto_unregister_scomp,
)
from acomp.scatterlist import sg_copy_from_buffer


def zc(data: bytes | memoryview) -> bytes:
    return zlib.compress(bytes(data), 1)


class ZScomp(ScompAlg):
    """A correct scomp algorithm (zlib with a header) under names set per instance."""

    def __init__(self, name: str, driver: str, priority: int = 0, flags: int = 0) -> None:
        super().__init__()
        self.cra_name = name  # type: ignore[misc]
        self.cra_driver_name = driver  # type: ignore[misc]
        self.cra_priority = priority  # type: ignore[misc]
        self.cra_flags |= flags
        self.calls = 0

    def compress(self, tfm: Any, src: memoryview, dst: memoryview, ctx: Any) -> int:
        self.calls += 1
        out = zc(src)
        if len(out) > len(dst):
            return -errno.ENOSPC
        dst[: len(out)] = out
        return len(out)

    def decompress(self, tfm: Any, src: memoryview, dst: memoryview, ctx: Any) -> int:
        self.calls += 1
        try:
            d = zlib.decompressobj()
            out = d.decompress(bytes(src), len(dst))
        except zlib.error:
            return -errno.EINVAL
        if d.unconsumed_tail or not d.eof:
            return -errno.ENOSPC if d.unconsumed_tail else -errno.EINVAL
        dst[: len(out)] = out
        return len(out)


class ThreadAcomp(AcompAlg):
    """An async algorithm that completes from a worker thread (zlib), optionally later."""

    cra_flags = CRYPTO_ALG_ASYNC

    def __init__(self, name: str, driver: str, priority: int = 0) -> None:
        super().__init__()
        self.cra_name = name  # type: ignore[misc]
        self.cra_driver_name = driver  # type: ignore[misc]
        self.cra_priority = priority  # type: ignore[misc]
        self.gate: threading.Event | None = None

    def _work(self, req: AcompReq, compress: bool) -> None:
        if self.gate is not None:
            self.gate.wait(10)
        assert req.src is not None
        data = req.src.tobytes(req.slen)
        try:
            out = zc(data) if compress else zlib.decompress(data)
        except zlib.error:
            acomp_request_complete(req, -errno.EBADMSG)
            return
        if req.dst is None or len(out) > req.dlen:
            acomp_request_complete(req, -errno.ENOSPC)
            return
        sg_copy_from_buffer(req.dst, out, len(out))
        req.dlen = len(out)
        acomp_request_complete(req, 0)

    def compress(self, req: AcompReq) -> int:
        threading.Thread(target=self._work, args=(req, True), daemon=True).start()
        return -errno.EINPROGRESS

    def decompress(self, req: AcompReq) -> int:
        threading.Thread(target=self._work, args=(req, False), daemon=True).start()
        return -errno.EINPROGRESS


@contextmanager
def registered(*algs: CryptoAlg) -> Iterator[None]:
    """Register the algorithms for the duration of a test, then unregister them."""
    done = []
    try:
        for a in algs:
            if isinstance(a, ScompAlg):
                assert crypto_register_scomp(a) == 0
            else:
                assert isinstance(a, AcompAlg)
                assert crypto_register_acomp(a) == 0
            done.append(a)
        yield
    finally:
        for a in reversed(done):
            if isinstance(a, ScompAlg):
                crypto_unregister_scomp(a)
            else:
                assert isinstance(a, AcompAlg)
                crypto_unregister_acomp(a)
