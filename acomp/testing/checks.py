"""The driver conformance suite: what any acomp driver must do, checked against a driver name.

Kernel counterpart: ``crypto/testmgr.c`` and its extra tests (``CONFIG_CRYPTO_MANAGER_EXTRA_TESTS``,
which fuzz a driver against the generic implementation), plus what the crypto API's users rely
on without a test in the kernel: the ``-EBUSY``/backlog rules of ``include/linux/crypto.h``, a
completion exactly once, and never writing past ``dlen``.

`conformance(name)` gives the checks; each runs on its own event loop (`Check.run`) or inside
one (`Check.arun`) and raises `CheckFailed` (an ``AssertionError``) or `CheckSkipped`.
`run_conformance(name)` runs them all and returns `CheckResult` records.

Eras: a check may carry a kernel (`Check.kernel`), modelled while it runs (`acomp.using_kernel`),
so its transforms follow that era's API. `conformance_eras(name)` gives the checks once per
era the driver supports (`driver_eras`: its module's `acomp.kmod.CryptoModule.eras`, or its
algorithm's ``cra_eras``; every era when it declares none), each at the era's newest kernel;
``pytest --acomp-driver NAME`` runs those.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel
import numpy as np

from acomp import corpus, testmgr
from acomp._constants import CRYPTO_TFM_REQ_MAY_BACKLOG, PAGE_SIZE
from acomp._errors import CryptoError, OutputTooSmall, errno_name
from acomp.acompress import (
    AcompReq,
    CryptoAcomp,
    acomp_request_alloc,
    acomp_request_free,
    acomp_request_set_callback,
    acomp_request_set_params,
    crypto_acomp_compress,
    crypto_acomp_decompress,
    crypto_alloc_acomp,
    crypto_free_acomp,
)
from acomp.algapi import TEST_PASSED, CryptoAlg, crypto_alg_list, crypto_alg_sem
from acomp.api import open as acomp_open
from acomp.eras import ERAS, Era, era_of, kernel
from acomp.kmod import alg_kernel_in, alg_supports, request_module
from acomp.scatterlist import Scatterlist, sg_init_one, sg_init_table, sg_set_buf
from acomp.testing._check import Check, CheckFailed, CheckResult, CheckSkipped
from acomp.testing._check import alloc_tfm as _alloc
from acomp.testing._check import fail as _fail
from acomp.testing.contract import CHECKS as contract_checks
from acomp.wait import CryptoWait, crypto_req_done, crypto_wait_req

__all__ = (
    "Check",
    "CheckFailed",
    "CheckResult",
    "CheckSkipped",
    "conformance",
    "conformance_eras",
    "driver_eras",
    "generic_driver",
    "run_conformance",
)

#: Seconds any one request may take before the check calls it lost.
TIMEOUT = float(os.environ.get("ACOMP_CHECK_TIMEOUT", "30"))
_GUARD = b"\x5a" * 32
_EINPROGRESS = -errno.EINPROGRESS
_EBUSY = -errno.EBUSY
_ENOSPC = -errno.ENOSPC


# --------------------------------------------------------------------------------------------
# Helpers


def _find(driver: str) -> CryptoAlg | None:
    with crypto_alg_sem:
        for a in crypto_alg_list:
            if not a.dead and a.cra_driver_name == driver:
                return a
    return None


def generic_driver(driver: str) -> str | None:
    """``<cra_name>-scomp`` for `driver`'s algorithm, when registered, tested and in the
    kernel modelled (none for deflate-generic in 6.16: deflate-scomp ends with 6.15)."""
    alg = _find(driver)
    if alg is None:
        try:
            crypto_free_acomp(_alloc(driver))
        except CheckFailed:
            return None
        alg = _find(driver)
        if alg is None:
            return None
    generic = f"{alg.cra_name}-scomp"
    g = _find(generic)
    if g is None:
        try:
            crypto_free_acomp(crypto_alloc_acomp(generic))
        except CryptoError:
            return None
        g = _find(generic)
    if g is None or g.selftest != TEST_PASSED or not alg_supports(g, kernel()):
        return None
    return generic


@dataclass
class _Out:
    ret: int
    data: bytes
    dlen: int
    guard_ok: bool


def _sg(buf: Any, parts: int) -> Scatterlist:
    """`buf` as a scatterlist of `parts` entries (1: ``sg_init_one``)."""
    mv = memoryview(buf).cast("B")
    if parts <= 1 or len(mv) < parts:
        return sg_init_one(mv)
    sgl = sg_init_table(parts)
    step = len(mv) // parts
    for i in range(parts):
        end = len(mv) if i == parts - 1 else (i + 1) * step
        sg_set_buf(sgl, i, mv[i * step : end])
    return sgl


async def _op(tfm: CryptoAcomp, compress: bool, src: Any, cap: int, *, parts: int = 1,
              alloc_output: bool = False) -> _Out:
    """One request, waited for; output with guard bytes after `cap` checked."""
    req = acomp_request_alloc(tfm)
    if req is None:
        raise _fail(f"{tfm.alg.cra_driver_name}: acomp_request_alloc failed")
    wait = CryptoWait()
    buf = bytearray(cap + len(_GUARD))
    buf[cap:] = _GUARD
    # crypto/scompress.c: from v6.15 a split source is copied into a one-page scratch (a
    # longer one would overrun it) and from v6.16 a split destination is -ENOSYS: requests
    # the kernel's callers do not make, so not made here.
    dparts = parts if tfm.kernel < (6, 16) else 1
    dst = None if alloc_output else _sg(memoryview(buf)[:cap], dparts)
    srcl = _sg(src, parts if tfm.kernel < (6, 15) or memoryview(src).nbytes <= PAGE_SIZE
               else 1)
    acomp_request_set_params(req, srcl, dst, srcl.length, cap)
    acomp_request_set_callback(req, CRYPTO_TFM_REQ_MAY_BACKLOG, crypto_req_done, wait)
    try:
        submit = crypto_acomp_compress if compress else crypto_acomp_decompress
        ret = submit(req)
        if not isinstance(ret, int):
            raise _fail(f"{tfm.alg.cra_driver_name}: returned {ret!r}, not an int")
        ret = await crypto_wait_req(ret, wait, TIMEOUT)
        if ret == -errno.ETIMEDOUT:
            raise _fail(f"{tfm.alg.cra_driver_name}: no completion within {TIMEOUT:g}s")
        data = b""
        if ret == 0:
            if req.dlen > cap and not alloc_output:
                raise _fail(f"{tfm.alg.cra_driver_name}: dlen {req.dlen} > capacity {cap}")
            if alloc_output:
                if req.dst is None:
                    raise _fail(f"{tfm.alg.cra_driver_name}: dst=None and no output allocated")
                data = req.dst.tobytes(req.dlen)
            else:
                data = bytes(buf[: req.dlen])
        return _Out(ret, data, req.dlen, bytes(buf[cap:]) == _GUARD)
    finally:
        if not req.in_flight:
            acomp_request_free(req)


def _inputs() -> list[tuple[str, bytes]]:
    """Sizes and kinds a driver meets: anonymous-memory pages, odd lengths, incompressible."""
    rng = np.random.default_rng(20240)
    kinds = corpus.page_kinds(48, seed=7)
    pages = corpus.pages(48, seed=7)
    seen: dict[str, bytes] = {}
    for k, p in zip(kinds, pages, strict=True):
        seen.setdefault(k, p.tobytes())
    out = [(f"page:{k}", v) for k, v in seen.items()]
    text = seen.get("text", b"abc" * 2000)
    noise = rng.integers(0, 256, PAGE_SIZE, dtype=np.uint8).tobytes()
    out += [
        ("1 byte", b"x"),
        ("7 bytes", b"abcdefg"),
        ("100 bytes text", text[:100]),
        ("4095 bytes", text[:4095]),
        ("2 pages", (text * 3)[: 2 * PAGE_SIZE]),
        ("16 KiB mixed", (text[:4096].ljust(4096, b" ") + noise[:2048] + bytes(2048)) * 2),
        ("incompressible 4 KiB", noise),
    ]
    return out


def _bound(n: int) -> int:
    return 2 * n + 64


# --------------------------------------------------------------------------------------------
# The checks


async def check_selftest(driver: str) -> None:
    """Registered, its self-test passed, and `acomp.testmgr.alg_test` passes again now."""
    tfm = _alloc(driver)
    alg = tfm.alg
    crypto_free_acomp(tfm)
    if alg.selftest != TEST_PASSED:
        raise _fail(f"{driver}: self-test state is {alg.selftest!r}")
    ok, log = await anyio.to_thread.run_sync(testmgr.alg_test, alg)
    if not ok:
        raise _fail(f"{driver}: self-test failed now: {'; '.join(log)}")


async def check_roundtrip(driver: str) -> None:
    """Every input round trips, from bytes, bytearray, memoryview and numpy sources, over one-
    and three-entry scatterlists, on two transforms used in turn."""
    tfms = [_alloc(driver), _alloc(driver)]
    try:
        for i, (what, data) in enumerate(_inputs()):
            tfm = tfms[i % 2]
            kinds: list[Any] = [data, bytearray(data), memoryview(data),
                                np.frombuffer(data, np.uint8)]
            for j, src in enumerate(kinds):
                parts = 3 if j % 2 else 1
                c = await _op(tfm, True, src, _bound(len(data)), parts=parts)
                if c.ret:
                    raise _fail(f"{driver}: compress {what} ({type(src).__name__}, {parts} "
                                f"entries) failed: {errno_name(c.ret)}")
                if not c.guard_ok:
                    raise _fail(f"{driver}: compress {what} wrote past dlen")
                d = await _op(tfms[(i + 1) % 2], False, c.data, len(data), parts=parts)
                if d.ret:
                    raise _fail(f"{driver}: decompress {what} ({parts} entries) failed: "
                                f"{errno_name(d.ret)}")
                if d.data != data:
                    raise _fail(f"{driver}: {what} does not round trip ({type(src).__name__}, "
                                f"{parts} entries): got {d.dlen} bytes")
                if not d.guard_ok:
                    raise _fail(f"{driver}: decompress {what} wrote past dlen")
    finally:
        for t in tfms:
            crypto_free_acomp(t)


async def check_alloc_output(driver: str) -> None:
    """``dst=None`` (``CRYPTO_ACOMP_ALLOC_OUTPUT``, v4.10 - v6.14): the output is allocated and
    round trips; from v6.15, which removed it, a NULL dst is ``-EINVAL``."""
    tfm = _alloc(driver)
    if tfm.kernel >= (6, 15):
        try:
            data = _inputs()[0][1]
            c = await _op(tfm, True, data, 0, alloc_output=True)
            if c.ret != -errno.EINVAL:
                raise _fail(f"{driver}: compress with dst=None gave {errno_name(c.ret)} in "
                            f"kernel {'.'.join(map(str, tfm.kernel))} (want -EINVAL: no "
                            "CRYPTO_ACOMP_ALLOC_OUTPUT since v6.15)")
        finally:
            crypto_free_acomp(tfm)
        return
    try:
        for what, data in _inputs()[:4]:
            c = await _op(tfm, True, data, 0, alloc_output=True)
            if c.ret:
                raise _fail(f"{driver}: compress {what} with dst=None failed: {errno_name(c.ret)}")
            d = await _op(tfm, False, c.data, 0, alloc_output=True)
            if d.ret or d.data != data:
                raise _fail(f"{driver}: {what} with dst=None does not round trip "
                            f"({errno_name(d.ret)})")
    finally:
        crypto_free_acomp(tfm)


async def _interop(driver: str, to_generic: bool) -> None:
    generic = generic_driver(driver)
    if generic is None:
        raise CheckSkipped(f"{driver}: no generic driver of its cra_name is registered")
    if generic == driver:
        raise CheckSkipped(f"{driver} is the generic driver")
    ours, ref = _alloc(driver), _alloc(generic)
    comp, dec = (ours, ref) if to_generic else (ref, ours)
    try:
        for what, data in _inputs():
            c = await _op(comp, True, data, _bound(len(data)))
            if c.ret:
                raise _fail(f"{comp.alg.cra_driver_name}: compress {what} failed: "
                            f"{errno_name(c.ret)}")
            d = await _op(dec, False, c.data, len(data))
            if d.ret or d.data != data:
                raise _fail(f"{what} compressed by {comp.alg.cra_driver_name} does not decompress "
                            f"with {dec.alg.cra_driver_name} ({errno_name(d.ret)}, {d.dlen} "
                            "bytes)")
    finally:
        crypto_free_acomp(ours)
        crypto_free_acomp(ref)


async def check_interop_to_generic(driver: str) -> None:
    """What the driver compresses, the generic ``<cra_name>-scomp`` decompresses."""
    await _interop(driver, True)


async def check_interop_from_generic(driver: str) -> None:
    """What the generic ``<cra_name>-scomp`` compresses, the driver decompresses."""
    await _interop(driver, False)


def _malformed(valid: bytes) -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(99)
    flipped = bytearray(valid)
    for k in range(0, len(flipped), max(1, len(flipped) // 5)):
        flipped[k] ^= 0xFF
    return [
        ("truncated by one byte", valid[:-1]),
        ("truncated to half", valid[: max(1, len(valid) // 2)]),
        ("bit-flipped", bytes(flipped)),
        ("64 random bytes", rng.integers(0, 256, 64, dtype=np.uint8).tobytes()),
        ("4096 random bytes", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()),
        ("100 bytes of 0xff", b"\xff" * 100),
        ("one zero byte", b"\x00"),
    ]


async def check_malformed_input(driver: str) -> None:
    """Corrupt input gives an error code (no exception, no crash) and never writes past dlen;
    input the generic driver rejects, the driver rejects too; a stream cut short by one byte
    is always rejected."""
    tfm = _alloc(driver)
    generic = generic_driver(driver)
    ref = _alloc(generic) if generic and generic != driver else None
    try:
        text = dict(_inputs())["4095 bytes"]
        c = await _op(tfm, True, text, _bound(len(text)))
        if c.ret:
            raise _fail(f"{driver}: compress failed: {errno_name(c.ret)}")
        for what, bad in _malformed(c.data):
            cap = PAGE_SIZE
            try:
                d = await _op(tfm, False, bad, cap)
            except CheckFailed:
                raise
            except Exception as e:
                raise _fail(f"{driver}: decompressing {what} raised {type(e).__name__}: {e}") \
                    from None
            if d.ret > 0 or (d.ret < 0 and -d.ret not in errno.errorcode):
                raise _fail(f"{driver}: decompressing {what} returned {d.ret}, not 0 or -errno")
            if not d.guard_ok:
                raise _fail(f"{driver}: decompressing {what} wrote past dlen ({cap})")
            if what == "truncated by one byte" and d.ret == 0:
                raise _fail(f"{driver}: a stream {what} decompressed without an error "
                            f"({d.dlen} bytes)")
            if ref is not None:
                r = await _op(ref, False, bad, cap)
                if r.ret < 0 and d.ret == 0:
                    raise _fail(f"{driver}: accepted {what} that {generic} rejects "
                                f"({errno_name(r.ret)})")
    finally:
        crypto_free_acomp(tfm)
        crypto_free_acomp(ref)


#: What a driver may return for an output that does not fit: ``-ENOSPC`` (scomp's v6.8 check,
#: lzo, most hardware) or ``-EINVAL`` (the kernel's lz4, lz4hc, zstd and deflate).
_NOSPACE = (_ENOSPC, -errno.EINVAL)


async def check_short_dst(driver: str) -> None:
    """A dst too small gives ``-ENOSPC`` or the kernel's ``-EINVAL`` (lz4, zstd, deflate) and
    writes nothing past dlen: compressing into 1 byte, an incompressible page into one page,
    decompressing into one byte less than needed; an exact fit succeeds; the Python layer
    raises OutputTooSmall for both directions."""

    tfm = _alloc(driver)
    try:
        inputs = dict(_inputs())
        text = inputs["4095 bytes"]
        c = await _op(tfm, True, text, 1)
        if c.ret not in _NOSPACE or not c.guard_ok:
            raise _fail(f"{driver}: compress into a 1-byte dst gave {errno_name(c.ret)}, "
                        f"guard {'intact' if c.guard_ok else 'OVERWRITTEN'} (want -ENOSPC or "
                        "-EINVAL)")
        noise = inputs["incompressible 4 KiB"]
        c = await _op(tfm, True, noise, PAGE_SIZE)
        if c.ret not in _NOSPACE or not c.guard_ok:
            raise _fail(f"{driver}: compress of an incompressible page into one page gave "
                        f"{errno_name(c.ret)}, guard {'intact' if c.guard_ok else 'OVERWRITTEN'}"
                        " (want -ENOSPC or -EINVAL)")
        c = await _op(tfm, True, text, _bound(len(text)))
        if c.ret:
            raise _fail(f"{driver}: compress failed: {errno_name(c.ret)}")
        exact = await _op(tfm, True, text, c.dlen)
        if exact.ret or exact.dlen != c.dlen:
            raise _fail(f"{driver}: compress into exactly {c.dlen} bytes gave "
                        f"{errno_name(exact.ret)}")
        d = await _op(tfm, False, c.data, len(text) - 1)
        if d.ret not in _NOSPACE or not d.guard_ok:
            raise _fail(f"{driver}: decompress into one byte too few gave {errno_name(d.ret)}, "
                        f"guard {'intact' if d.guard_ok else 'OVERWRITTEN'} (want -ENOSPC or "
                        "-EINVAL)")
        d = await _op(tfm, False, c.data, len(text))
        if d.ret or d.data != text:
            raise _fail(f"{driver}: decompress into the exact size gave {errno_name(d.ret)}")
        async with acomp_open(driver, timeout=TIMEOUT) as py:
            for what, call in (("compress_into", py.compress_into(text, bytearray(1))),
                               ("decompress_into",
                                py.decompress_into(c.data, bytearray(len(text) - 1)))):
                try:
                    await call
                except OutputTooSmall:
                    continue
                except Exception as e:
                    raise _fail(f"{driver}: {what} into too small a buffer raised "
                                f"{type(e).__name__}, not OutputTooSmall: {e}") from None
                raise _fail(f"{driver}: {what} into too small a buffer succeeded")
    finally:
        crypto_free_acomp(tfm)


class _Recorder:
    """Per-request callback record: every call, in order, from whatever thread."""

    def __init__(self, n: int) -> None:
        self.lock = threading.Lock()
        self.calls: list[list[int]] = [[] for _ in range(n)]
        self.waits = [CryptoWait() for _ in range(n)]

    def callback(self, i: int) -> Callable[[Any, int], None]:
        def done(data: Any, err: int) -> None:
            with self.lock:
                self.calls[i].append(err)
            if err != _EINPROGRESS:
                self.waits[i].complete(err)
        return done


async def _flood(tfm: CryptoAcomp, driver: str, flags: int, n: int) -> tuple[int, int]:
    """Submit `n` requests without waiting, then check each one's return and callbacks."""
    rng = np.random.default_rng(5)
    data = [bytes(rng.integers(0, 4, 1024, dtype=np.uint8)) for _ in range(n)]
    rec = _Recorder(n)
    reqs: list[AcompReq] = []
    rets: list[int] = []
    bufs = [bytearray(4096) for _ in range(n)]
    try:
        for i in range(n):
            req = acomp_request_alloc(tfm)
            if req is None:
                raise _fail(f"{driver}: acomp_request_alloc failed")
            reqs.append(req)
            acomp_request_set_params(req, sg_init_one(data[i]), sg_init_one(bufs[i]), 1024, 4096)
            acomp_request_set_callback(req, flags, rec.callback(i), None)
            rets.append(crypto_acomp_compress(req))
        accepted = rejected = 0
        for i, ret in enumerate(rets):
            backlogged = ret == _EBUSY and flags & CRYPTO_TFM_REQ_MAY_BACKLOG
            if ret == _EINPROGRESS or backlogged:
                if not await rec.waits[i].wait_for_completion(TIMEOUT):
                    raise _fail(f"{driver}: request {i} ({errno_name(ret)}) never completed")
                accepted += 1
            elif ret == 0:
                accepted += 1
            elif ret in (_EBUSY, _ENOSPC) and not flags & CRYPTO_TFM_REQ_MAY_BACKLOG:
                rejected += 1
            else:
                raise _fail(f"{driver}: submission {i} returned {errno_name(ret)}")
        await anyio.sleep(0.05)  # let late duplicate completions show up
        for i, ret in enumerate(rets):
            with rec.lock:
                calls = list(rec.calls[i])
            finals = [e for e in calls if e != _EINPROGRESS]
            notices = [e for e in calls if e == _EINPROGRESS]
            if ret == 0 or (ret in (_EBUSY, _ENOSPC) and not flags & CRYPTO_TFM_REQ_MAY_BACKLOG):
                if calls:
                    raise _fail(f"{driver}: request {i} returned {errno_name(ret)} but its "
                                f"callback was called with {[errno_name(e) for e in calls]}")
                if ret:
                    continue
            else:
                if len(finals) != 1:
                    raise _fail(f"{driver}: request {i} completed {len(finals)} times "
                                f"({[errno_name(e) for e in calls]})")
                if ret == _EBUSY and (not notices or calls.index(notices[0])
                                      > calls.index(finals[0])):
                    raise _fail(f"{driver}: backlogged request {i} (-EBUSY) completed without "
                                "the -EINPROGRESS notice first")
                if ret == _EINPROGRESS and notices:
                    raise _fail(f"{driver}: request {i} got a -EINPROGRESS notice but was not "
                                "backlogged")
                if finals[0]:
                    raise _fail(f"{driver}: request {i} failed: {errno_name(finals[0])}")
            if reqs[i].in_flight:
                raise _fail(f"{driver}: request {i} still in flight after its completion")
            plain = await _op(tfm, False, bytes(bufs[i][: reqs[i].dlen]), 1024)
            if plain.ret or plain.data != data[i]:
                raise _fail(f"{driver}: flooded request {i} does not round trip")
        return accepted, rejected
    finally:
        for r in reqs:
            if not r.in_flight:
                acomp_request_free(r)


async def check_backlog(driver: str) -> None:
    """Many requests at once: with MAY_BACKLOG each returns 0, -EINPROGRESS or -EBUSY
    (backlogged: a -EINPROGRESS notice, then the final status); without it, -EBUSY/-ENOSPC
    means rejected and no callback ever comes. Each accepted request completes exactly once,
    a synchronous return (0) calls no callback, and every output is correct."""
    tfm = _alloc(driver)
    try:
        await _flood(tfm, driver, CRYPTO_TFM_REQ_MAY_BACKLOG, 512)
        accepted, _ = await _flood(tfm, driver, 0, 512)
        if not accepted:
            raise _fail(f"{driver}: without MAY_BACKLOG every request was rejected")
    finally:
        crypto_free_acomp(tfm)


async def check_cancellation(driver: str) -> None:
    """A task cancelled while it waits leaves only once its request completed (the wait is not
    abandoned while the driver may still write), and the transform keeps working; cancelling
    a `Compressor.compress_many` leaves nothing in flight and closes cleanly."""
    tfm = _alloc(driver)
    data = dict(_inputs())["4095 bytes"]
    try:
        for _ in range(8):
            req = acomp_request_alloc(tfm)
            if req is None:
                raise _fail(f"{driver}: acomp_request_alloc failed")
            wait = CryptoWait()
            out = bytearray(_bound(len(data)))
            acomp_request_set_params(req, sg_init_one(data), sg_init_one(out), len(data),
                                     len(out))
            acomp_request_set_callback(req, CRYPTO_TFM_REQ_MAY_BACKLOG, crypto_req_done, wait)
            status: list[int] = []
            waiting = anyio.Event()

            async def waiter(ret: int, wait: CryptoWait = wait, status: list[int] = status,
                             waiting: anyio.Event = waiting) -> None:
                waiting.set()
                status.append(await crypto_wait_req(ret, wait, TIMEOUT))
                await anyio.sleep(3600)  # the cancellation lands here at the latest

            ret = crypto_acomp_compress(req)
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(waiter, ret)
                    await waiting.wait()
                    await anyio.lowlevel.checkpoint()  # the waiter sleeps in crypto_wait_req
                    scope.cancel()
            if req.in_flight:
                raise _fail(f"{driver}: a cancelled wait returned while the request was still "
                            "in flight")
            final = status[0] if status else (0 if ret == 0 else wait.err)
            if final == -errno.ETIMEDOUT:
                raise _fail(f"{driver}: no completion within {TIMEOUT:g}s")
            if final:
                raise _fail(f"{driver}: request failed: {errno_name(final)}")
            plain = await _op(tfm, False, bytes(out[: req.dlen]), len(data))
            if plain.ret or plain.data != data:
                raise _fail(f"{driver}: the output of a request whose waiter was cancelled "
                            "does not round trip")
            acomp_request_free(req)
        again = await _op(tfm, True, data, _bound(len(data)))
        if again.ret:
            raise _fail(f"{driver}: the transform fails after a cancellation: "
                        f"{errno_name(again.ret)}")
        pages = [p for _, p in _inputs()] * 8
        async with acomp_open(driver, timeout=TIMEOUT) as c:
            with anyio.move_on_after(0.002):
                await c.compress_many(pages, limit=64)
            left = c.statistics().requests_in_flight
            if left:
                raise _fail(f"{driver}: {left} requests still in flight after a cancelled "
                            "compress_many")
            blob = await c.compress(data)
            if await c.decompress(blob, len(data)) != data:
                raise _fail(f"{driver}: wrong round trip after a cancelled compress_many")
    finally:
        crypto_free_acomp(tfm)


_CHECKS: tuple[tuple[str, Callable[[str], Awaitable[None]]], ...] = (
    ("selftest", check_selftest),
    ("roundtrip", check_roundtrip),
    ("alloc-output", check_alloc_output),
    ("interop-to-generic", check_interop_to_generic),
    ("interop-from-generic", check_interop_from_generic),
    ("malformed-input", check_malformed_input),
    ("short-dst", check_short_dst),
    ("backlog", check_backlog),
    ("cancellation", check_cancellation),
)


def conformance(driver_name: str, kernel: str | None = None) -> list[Check]:
    """The conformance checks for the driver called `driver_name` (e.g. ``"lz4-opencl"``),
    the request-boundary contract (`acomp.testing.contract`) included; with `kernel`, each
    runs with that kernel modelled."""
    if kernel is not None:
        era_of(kernel)  # UnsupportedKernel now, not when a check runs
    out = []
    for name, fn in (*_CHECKS, *contract_checks):
        doc = (fn.__doc__ or "").strip().split("\n\n")[0]
        out.append(Check(name, driver_name, " ".join(doc.split()), fn, kernel))
    return out


def _driver_kernels(driver_name: str) -> list[tuple[Era, str]]:
    """(era, kernel) for each era the driver is in at some version, oldest first: the newest
    kernel of the era it is in (its era's newest when it declares no versions)."""
    alg = _find(driver_name)
    if alg is None:
        request_module(driver_name)
        alg = _find(driver_name)
    if alg is None:
        return [(era, era.kernel) for era in ERAS]
    return [(era, k) for era in ERAS if (k := alg_kernel_in(alg, era)) is not None]


def driver_eras(driver_name: str) -> tuple[Era, ...]:
    """The eras the driver supports: those its algorithm was registered with (loading its
    module if need be, in whatever era) in which it is in at least one kernel version
    (``cra_kernels``, `acomp.kmod.CryptoModule.kernels`); every era when it declares none or
    is not found."""
    return tuple(era for era, _ in _driver_kernels(driver_name))


def conformance_eras(driver_name: str) -> list[Check]:
    """`conformance` once per era the driver supports (`driver_eras`), oldest era first, each
    at the newest kernel of the era the driver is in (the era's newest, ``"6.17"`` for 6.16 -
    6.17, unless it declares versions: zstd-scomp, scomp up to 6.16, is checked at 6.16)."""
    return [c for era, k in _driver_kernels(driver_name) for c in conformance(driver_name, k)]


def run_conformance(driver_name: str, backend: str = "asyncio",
                    kernel: str | None = None) -> list[CheckResult]:
    """Run every check on `backend` (with `kernel` modelled, when given); a result per
    check."""
    return [c.result(backend) for c in conformance(driver_name, kernel)]
