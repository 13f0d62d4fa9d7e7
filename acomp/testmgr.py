"""Registration-time self-tests: an algorithm is selectable only once these pass.

Kernel counterpart: ``crypto/testmgr.c`` (``alg_test``, ``alg_test_comp``, ``test_acomp``).

As in the kernel: tests are found by ``cra_name`` and by driver name (both run when both
exist); a name with no entry passes ("No test for X"); compression vectors are checked by
round trip, not byte for byte, so other implementations may emit other bitstreams;
decompression vectors must decode byte-exact. Beyond the kernel: decompressing into a dst one
byte too small must fail without writing past it (guard bytes are checked), and so must
compressing into a one-byte dst.

The vectors (`acomp.testmgr_vectors`) were made by this project from the reference libraries.
"""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from acomp import acompress as a
from acomp._constants import CRYPTO_TFM_REQ_MAY_BACKLOG
from acomp._errors import errno_name
from acomp.acompress import CryptoAcomp, _alloc_for_alg, crypto_free_acomp
from acomp.scatterlist import sg_init_one
from acomp.testmgr_vectors import VECTORS
from acomp.wait import CryptoWait, crypto_req_done, crypto_wait_req_sync

if TYPE_CHECKING:
    from acomp.algapi import CryptoAlg

__all__ = ("COMP_BUF_SIZE", "TestDesc", "alg_test", "alg_test_descs", "register_test")

log = logging.getLogger("acomp.testmgr")

COMP_BUF_SIZE = 512
_GUARD = b"\xa5" * 16
#: Seconds an asynchronous driver gets to complete a self-test request.
TEST_TIMEOUT = float(os.environ.get("ACOMP_TEST_TIMEOUT", "60"))


@dataclass(frozen=True)
class TestDesc:
    """``struct alg_test_desc`` for a compression algorithm."""

    __test__ = False  # not a pytest class

    alg: str
    comp: tuple[bytes, ...]
    decomp: tuple[tuple[bytes, bytes], ...]


alg_test_descs: dict[str, TestDesc] = {
    name: TestDesc(name, tuple(c), tuple(d)) for name, (c, d) in VECTORS.items()
}


def register_test(desc: TestDesc) -> None:
    """Add vectors for an algorithm or driver name (out-of-tree algorithms bring their own)."""
    alg_test_descs[desc.alg] = desc


def _run(tfm: CryptoAcomp, compress: bool, src: bytes, cap: int) -> tuple[int, bytes, bool]:
    """One request through the acomp API; (status, output, guard intact)."""
    buf = bytearray(cap + len(_GUARD))
    buf[cap:] = _GUARD
    req = a.acomp_request_alloc(tfm)
    if req is None:
        return -errno.ENOMEM, b"", True
    wait = CryptoWait()
    try:
        inp = bytearray(src)  # kmemdup: the driver may not keep a pointer to our constant
        dst = sg_init_one(memoryview(buf)[:cap])
        a.acomp_request_set_params(req, sg_init_one(inp), dst, len(src), cap)
        a.acomp_request_set_callback(req, CRYPTO_TFM_REQ_MAY_BACKLOG, crypto_req_done, wait)
        op = a.crypto_acomp_compress if compress else a.crypto_acomp_decompress
        ret = crypto_wait_req_sync(op(req), wait, TEST_TIMEOUT)
        return ret, bytes(buf[: req.dlen]) if ret == 0 else b"", bytes(buf[cap:]) == _GUARD
    finally:
        if not req.in_flight:
            a.acomp_request_free(req)


def test_acomp(tfm: CryptoAcomp, desc: TestDesc, out: list[str]) -> bool:
    drv = tfm.alg.cra_driver_name
    for i, inp in enumerate(desc.comp, 1):
        ret, comp, _ = _run(tfm, True, inp, COMP_BUF_SIZE)
        if ret:
            out.append(f"alg: acomp: compression failed on test {i} for {drv}: ret={ret}")
            return False
        ret, plain, _ = _run(tfm, False, comp, COMP_BUF_SIZE)
        if ret:
            out.append(f"alg: acomp: compression failed on test {i} for {drv}: ret={ret}")
            return False
        if len(plain) != len(inp):
            out.append(
                f"alg: acomp: Compression test {i} failed for {drv}: output len = {len(plain)}"
            )
            return False
        if plain != inp:
            out.append(f"alg: acomp: Compression test {i} failed for {drv}")
            return False
    for i, (inp, expect) in enumerate(desc.decomp, 1):
        ret, plain, _ = _run(tfm, False, inp, COMP_BUF_SIZE)
        if ret:
            out.append(f"alg: acomp: decompression failed on test {i} for {drv}: ret={ret}")
            return False
        if plain != expect:
            out.append(
                f"alg: acomp: Decompression test {i} failed for {drv}: output len = {len(plain)}"
            )
            return False
        # Beyond the kernel: one byte too small must fail and write nothing past dlen.
        ret, _, intact = _run(tfm, False, inp, len(expect) - 1)
        if ret == 0 or not intact:
            out.append(
                f"alg: acomp: short-dst decompression test {i} for {drv}: "
                f"ret={errno_name(ret)}, guard {'intact' if intact else 'OVERWRITTEN'}"
            )
            return False
    if desc.comp:
        ret, _, intact = _run(tfm, True, desc.comp[0], 1)
        if ret == 0 or not intact:
            out.append(
                f"alg: acomp: short-dst compression test for {drv}: ret={errno_name(ret)}, "
                f"guard {'intact' if intact else 'OVERWRITTEN'}"
            )
            return False
    return True


def alg_test(alg: CryptoAlg) -> tuple[bool, list[str]]:
    """Test a newly registered algorithm; (passed, messages)."""
    out: list[str] = []
    if os.environ.get("ACOMP_DISABLE_SELFTESTS", "") not in ("", "0"):
        return True, ["self-tests disabled (CONFIG_CRYPTO_MANAGER_DISABLE_TESTS)"]
    descs = [alg_test_descs.get(alg.cra_name), alg_test_descs.get(alg.cra_driver_name)]
    found = [d for d in descs if d is not None]
    if len(found) == 2 and found[0] is found[1]:
        found = found[:1]
    if not found:
        out.append(f"alg: No test for {alg.cra_name} ({alg.cra_driver_name})")
        log.info(out[-1])
        return True, out
    try:
        tfm = _alloc_for_alg(alg)
    except OSError as e:
        out.append(f"alg: acomp: Failed to load tfm for {alg.cra_driver_name}: {e}")
        return False, out
    try:
        ok = all(test_acomp(tfm, d, out) for d in found)
    except Exception as e:  # a driver that raises fails its test; it must not kill the caller
        out.append(f"alg: acomp: {alg.cra_driver_name} raised {type(e).__name__}: {e}")
        ok = False
    finally:
        crypto_free_acomp(tfm)
    if not ok:
        log.warning("alg: self-tests for %s (%s) failed: %s", alg.cra_driver_name,
                    alg.cra_name, out)
    return ok, out
