"""Shared plumbing for the CPU drivers: an scomp algorithm over a library's one-shot calls.

Kernel counterpart: the ``scomp_alg`` halves of ``crypto/lz4.c``, ``lz4hc.c``, ``lzo.c``,
``zstd.c`` and ``deflate.c`` (v6.8 - v6.14). Their codes are the kernel's: ``-EINVAL`` for a
corrupt input and for an output that does not fit (``LZ4_compress_default`` returning 0,
``zstd_is_error``, deflate short of ``Z_STREAM_END``, ``lzo1x_decompress_safe`` overrunning);
only lzo's compression, which the kernel runs into the 128 KiB scratch unbounded, ends in
scomp's v6.8 check and ``-ENOSPC``. Beyond the kernel, an output that did not fit is told
apart through `acomp.scompress.scomp_set_reason` (the request's ``reason`` is ``-ENOSPC``), so
the Python layer can still raise `OutputTooSmall` rather than `BadData`.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

from acomp._constants import SCOMP_SCRATCH_SIZE
from acomp.internal import (
    CryptoAlg,
    CryptoModule,
    ScompAlg,
    crypto_register_scomp,
    crypto_unregister_scomp,
)
from acomp.scompress import scomp_set_reason, scomp_take_reason

_A = TypeVar("_A", bound=CryptoAlg)

_EINVAL = -errno.EINVAL
_ENOSPC = -errno.ENOSPC

#: compress(ctx, src) -> bytes
CompressFn = Callable[[Any, memoryview], bytes]
#: decompress(ctx, src, capacity) -> bytes; raises on corrupt input or when it does not fit
DecompressFn = Callable[[Any, memoryview, int], bytes]


class LibScomp(ScompAlg):
    """An scomp algorithm whose work is a library's compress/decompress functions."""

    cra_module = "kernel"
    #: Exceptions the library raises for bad input or a full output.
    lib_errors: ClassVar[tuple[type[BaseException], ...]] = (Exception,)
    #: How `acomp.cpubatch` splits a batch across cores: "threads" where the library releases
    #: the GIL for long enough per item, "processes" where it does not, "none".
    batch_parallel: ClassVar[str] = "none"
    #: What the kernel's driver returns when the compressed output does not fit.
    compress_nospace: ClassVar[int] = _EINVAL

    def __init__(self, compress: CompressFn, decompress: DecompressFn,
                 alloc: Callable[[], Any] = lambda: None) -> None:
        super().__init__()
        self._compress = compress
        self._decompress = decompress
        self._alloc = alloc

    def alloc_ctx(self, tfm: Any = None) -> Any:  # v6.15+: alloc_ctx(void)
        return self._alloc()

    def compress(self, tfm: Any, src: memoryview, dst: memoryview, ctx: Any) -> int:
        try:
            out = self._compress(ctx, src)
        except self.lib_errors:
            return _EINVAL
        n = len(out)
        if n > len(dst):
            scomp_set_reason(_ENOSPC)
            return self.compress_nospace
        dst[:n] = out
        return n

    # The vectored entry points (`acomp.cpubatch`): per item srcs[i] its output (at most
    # caps[i] bytes) or what compress/decompress would return, in one atomic section.

    def compress_batch(self, tfm: Any, srcs: Sequence[Any], caps: Sequence[int],
                       ctx: Any) -> list[bytes | int]:
        comp = self._compress
        errs = self.lib_errors
        res: list[bytes | int] = []
        for i, s in enumerate(srcs):
            try:
                out = comp(ctx, s)
            except errs:
                res.append(_EINVAL)
                continue
            res.append(out if len(out) <= caps[i] else _ENOSPC)
        return res

    def decompress_batch(self, tfm: Any, srcs: Sequence[Any], caps: Sequence[int],
                         ctx: Any) -> list[bytes | int]:
        dec = self._decompress
        errs = self.lib_errors
        res: list[bytes | int] = []
        for i, s in enumerate(srcs):
            cap = caps[i]
            try:
                out = dec(ctx, s, cap)
            except errs:  # too small or corrupt: the per-item path tells which
                res.append(item_status(self.decompress(tfm, s, memoryview(bytearray(cap)), ctx)))
                continue
            res.append(out if len(out) <= cap and self.valid_block(s, out)
                       else _ENOSPC if len(out) > cap else _EINVAL)
        return res

    def valid_block(self, src: Any, out: bytes) -> bool:
        """A rule the library does not check, judged after a successful decode (lz4: no
        offset-0 match): False makes the block corrupt (-EINVAL)."""
        return True

    def decompress(self, tfm: Any, src: memoryview, dst: memoryview, ctx: Any) -> int:
        cap = len(dst)
        try:
            out = self._decompress(ctx, src, cap)
        except self.lib_errors:
            return self.classify(ctx, src, cap)
        n = len(out)
        if n > cap:
            return nospace()
        if not self.valid_block(src, out):
            return _EINVAL
        dst[:n] = out
        return n

    def classify(self, ctx: Any, src: memoryview, cap: int) -> int:
        """The failure of a decompression into `cap` bytes: always the kernel's ``-EINVAL``;
        too small or corrupt? Only a larger output can tell them apart (the reason)."""
        if cap < SCOMP_SCRATCH_SIZE:
            try:
                bigger = self._decompress(ctx, src, SCOMP_SCRATCH_SIZE)
            except self.lib_errors:
                return _EINVAL
            # Decoded with more room yet no larger than cap: the library refused it for a
            # rule judged against the buffer's end (LZ4's end-of-block rules), so it is
            # malformed at this size, not too big.
            if len(bigger) > cap:
                return nospace()
        return _EINVAL


def item_status(ret: int) -> int:
    """A batch item's status: "does not fit" is -ENOSPC on every driver (acomp.batch), the
    reason folded into the kernel's -EINVAL."""
    return _ENOSPC if ret < 0 and scomp_take_reason() == _ENOSPC else ret


def nospace() -> int:
    """A decompressed output that does not fit: the kernel's ``-EINVAL``, reason ``-ENOSPC``."""
    scomp_set_reason(_ENOSPC)
    return _EINVAL


def driver_module(name: str, aliases: tuple[str, ...], make: Callable[[], Sequence[_A]],
                  needs: str, register: Callable[[_A], int], unregister: Callable[[_A], int],
                  release: Callable[[_A], None] | None = None) -> CryptoModule:
    """A driver module whose init builds its algorithms (importing the library) and registers
    each with `register`, unregistering those already done (newest first) when one fails; its
    exit unregisters them newest first and then calls `release` on each. A missing library
    leaves it unloaded with the reason. `scomp_module` and ``_acomp.native_module`` are this
    with their types' register calls."""

    def init(mod: CryptoModule) -> int:
        try:
            algs = make()
        except ImportError as e:
            mod.reason = f"{needs} is not installed ({e})"
            return -errno.ENOENT
        done: list[_A] = []
        for alg in algs:
            err = register(alg)
            if err:
                for a in reversed(done):
                    unregister(a)
                mod.reason = f"registering {alg.cra_driver_name} failed: {err}"
                return err
            done.append(alg)
        mod.data["algs"] = done
        return 0

    def exit(mod: CryptoModule) -> None:
        for alg in reversed(mod.data.pop("algs", [])):
            unregister(alg)
            if release is not None:
                release(alg)

    return CryptoModule(name, aliases, init, exit, description=f"{name} via {needs}")


def scomp_module(name: str, aliases: tuple[str, ...], make: Callable[[], list[ScompAlg]],
                 needs: str) -> CryptoModule:
    """A driver module whose init builds its scomp algorithms (importing the library) and
    registers them; a missing library leaves it unloaded with the reason."""
    return driver_module(name, aliases, make, needs, crypto_register_scomp,
                         crypto_unregister_scomp)
