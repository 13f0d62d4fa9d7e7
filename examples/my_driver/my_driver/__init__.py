"""rle-scomp: an out-of-tree acomp driver, run-length encoding (PackBits) as an scomp algorithm.

The driver authors' layer, written only against `acomp.internal`, as a module outside the
kernel tree would be against ``include/crypto/internal/scompress.h``. Installing this package
(``pip install -e examples/my_driver``) declares `MODULE` under the ``acomp.drivers`` entry
points, so ``crypto_alloc_acomp("rle")`` loads it on demand, ``python -m acomp list`` shows it,
and the bench runs it.

The format is Apple's PackBits, byte-oriented: a header byte ``h`` followed by either
``h + 1`` literal bytes (``h`` 0..127) or one byte repeated ``257 - h`` times (``h``
129..255); ``h`` = 128 is invalid here. Worst case: ``n + ceil(n / 128)`` bytes.
"""

from __future__ import annotations

import errno
import re
from typing import Any

from acomp.internal import (
    CryptoModule,
    ScompAlg,
    TestDesc,
    crypto_register_scomp,
    crypto_unregister_scomp,
    register_test,
)

__all__ = ("ERAS", "MODULE", "RleScomp", "rle_compress", "rle_decompress")

_EINVAL = -errno.EINVAL
_ENOSPC = -errno.ENOSPC
# Runs of 3 or more equal bytes are worth a repeat token (2 bytes); shorter ones stay literal.
_RUN = re.compile(rb"(.)\1{2,}", re.DOTALL)


class RleError(ValueError):
    """Corrupt PackBits input."""


def rle_compress(src: bytes | memoryview) -> bytes:
    """PackBits-encode `src`."""
    data = bytes(src)
    out = bytearray()

    def literals(lo: int, hi: int) -> None:
        while lo < hi:
            n = min(128, hi - lo)
            out.append(n - 1)
            out.extend(data[lo : lo + n])
            lo += n

    pos = 0
    for m in _RUN.finditer(data):
        literals(pos, m.start())
        byte = m.group(1)
        left = m.end() - m.start()
        while left >= 3:
            n = min(128, left)
            out.append(257 - n)
            out += byte
            left -= n
        pos = m.end() - left  # a tail of 1 or 2 goes with the next literals
    literals(pos, len(data))
    return bytes(out)


def rle_decompress(src: bytes | memoryview, capacity: int) -> bytes:
    """Decode `src`; `RleError` when corrupt, `OverflowError` past `capacity` bytes."""
    data = bytes(src)
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        h = data[i]
        i += 1
        if h < 128:
            k = h + 1
            if i + k > n:
                raise RleError("literal run past the end of the input")
            if len(out) + k > capacity:
                raise OverflowError
            out += data[i : i + k]
            i += k
        elif h > 128:
            if i >= n:
                raise RleError("repeat token without its byte")
            k = 257 - h
            if len(out) + k > capacity:
                raise OverflowError
            out += data[i : i + 1] * k
            i += 1
        else:
            raise RleError("reserved header byte 0x80")
    return bytes(out)


class RleScomp(ScompAlg):
    """``struct scomp_alg`` for PackBits; needs no per-request context."""

    cra_name = "rle"
    cra_driver_name = "rle-scomp"
    cra_priority = 0
    cra_module = "rle"

    def compress(self, tfm: Any, src: memoryview, dst: memoryview, ctx: Any) -> int:
        out = rle_compress(src)
        if len(out) > len(dst):
            return _ENOSPC
        dst[: len(out)] = out
        return len(out)

    def decompress(self, tfm: Any, src: memoryview, dst: memoryview, ctx: Any) -> int:
        try:
            out = rle_decompress(src, len(dst))
        except RleError:
            return _EINVAL
        except OverflowError:
            return _ENOSPC
        dst[: len(out)] = out
        return len(out)


# Self-test vectors, written for this format by hand (the crypto manager checks compression by
# round trip and decompression byte for byte, as for the in-tree algorithms).
_PLAIN = (
    b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabcd\x00\x00\x00\x00\x00\x00\x00\x00xyz"
)
VECTORS = TestDesc(
    "rle",
    comp=(
        _PLAIN,
        bytes(300),
        b"no runs here at all, just text",
        bytes(range(256)),
    ),
    decomp=(
        (b"\xfe\x41", b"AAA"),
        (b"\x02abc\xfd\x00\x00z", b"abc\x00\x00\x00\x00z"),
        (b"\x81\x07", b"\x07" * 128),
        (rle_compress(_PLAIN), _PLAIN),
    ),
)

_alg: RleScomp | None = None


def _init(mod: CryptoModule) -> int:
    global _alg
    register_test(VECTORS)
    alg = RleScomp()
    err = crypto_register_scomp(alg)
    if err:
        mod.reason = f"registering rle-scomp failed: {err}"
        return err
    _alg = alg
    return 0


def _exit(mod: CryptoModule) -> None:
    global _alg
    if _alg is not None:
        crypto_unregister_scomp(_alg)
        _alg = None


#: The kernel eras this driver supports (`acomp.eras.eras_of`: era names or versions). An
#: scomp driver sees the same ``scomp_alg`` calls in every era (the scomp wrapper takes the
#: era's changes), so rle lists them all; an acomp driver that needs
#: ``CRYPTO_ACOMP_ALLOC_OUTPUT`` would list ``"5.11", "5.12-6.14"``, one that declares only
#: ``cra_reqsize`` ``"6.16-6.17", "6.18-7.0"``. In another era ``crypto_alloc_acomp("rle")``
#: finds nothing (the module is built for other kernels) and ``acomp list`` says why;
#: ``pytest --acomp-driver rle-scomp`` runs the conformance suite in each era listed.
ERAS = ("5.11", "5.12-6.14", "6.15", "6.16-6.17", "6.18-7.0")

#: ``module_init``/``module_exit`` and ``MODULE_ALIAS_CRYPTO("rle")``, ``("rle-scomp")``.
MODULE = CryptoModule("rle", ("rle", "rle-scomp"), _init, _exit,
                      description="run-length encoding (PackBits), out of tree", eras=ERAS)
