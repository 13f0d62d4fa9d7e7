"""The request-boundary contract: a generated matrix of what callers hand a driver.

Kernel counterpart: none as a suite; what ``crypto/scompress.c`` checks (v6.14: ``!src``,
``!slen``, ``slen > SCOMP_SCRATCH_SIZE``, ``dst && !dlen``, the v6.8 ``-ENOSPC`` check; v6.16+:
``-ENOSYS`` for a destination whose first entry cannot hold ``dlen``, and from v6.15 the
reported overrun of a split source longer than the one-page scratch) and
what KASAN and ``CONFIG_DEBUG_LIST`` report (use after free, a request queued twice), as a
contract every driver must keep.

Dimensions, each value covered for every driver (pairwise, `pairwise`, not the full product):

- direction: compress, decompress (of the driver's own compressed page);
- source and destination buffer kinds: bytes (read-only), bytearray, memoryview, read-only
  memoryview, numpy contiguous, numpy strided, empty; and no destination (allocated output);
- scatterlist shapes: one entry, several, with zero-length entries, with an unset entry;
- slen and dlen: 0, 1, exact, short by one, negative, not an integer, over the buffer, over
  the scratch size (128 KiB).

Each case runs one request with guard bytes around (and between) every destination entry and a
deadline (`anyio.fail_after` and the wait's timeout) and checks the outcome an oracle derives
from the case: a TypeError before any driver sees a strided buffer; ``-EINVAL`` with nothing
written for an invalid length or destination; success with the right bytes when the output
fits the capacity actually given (``min(dlen, dst length, scratch)``); ``-ENOSPC`` or the
kernel's ``-EINVAL`` with the guards intact when it does not; an error for a truncated block.
Lifetimes (`check_lifetimes`): a request resubmitted in flight, submitted after it was freed,
on a freed transform, and a waiter cancelled while its request runs.

`check_matrix` and `check_lifetimes` are conformance checks (`acomp.testing.conformance`), so
``pytest --acomp-driver NAME`` runs them on any driver; `matrix_cases` gives the cases.
"""

from __future__ import annotations

import errno
import itertools
import os
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel
import numpy as np

from acomp import sched
from acomp._constants import CRYPTO_TFM_REQ_MAY_BACKLOG, PAGE_SIZE, SCOMP_SCRATCH_SIZE
from acomp._errors import errno_name
from acomp.acompress import (
    AcompReq,
    CryptoAcomp,
    acomp_is_async,
    acomp_request_alloc,
    acomp_request_free,
    acomp_request_set_callback,
    acomp_request_set_params,
    crypto_acomp_compress,
    crypto_acomp_decompress,
    crypto_free_acomp,
)
from acomp.scatterlist import Scatterlist, sg_init_one, sg_init_table, sg_set_buf
from acomp.testing._check import alloc_tfm as _alloc
from acomp.testing._check import fail as _fail
from acomp.wait import CryptoWait, crypto_req_done, crypto_wait_req

__all__ = ("DIMENSIONS", "Case", "check_lifetimes", "check_matrix", "matrix_cases", "pairwise")

#: Seconds one case may take before it is called a hang.
DEADLINE = float(os.environ.get("ACOMP_CHECK_TIMEOUT", "30"))
_FILL = 0x5A
_GUARD = 48
_EINVAL, _ENOSPC = -errno.EINVAL, -errno.ENOSPC

BUFFERS = ("bytes", "bytearray", "memoryview", "readonly-view", "numpy", "numpy-strided",
           "empty")
SHAPES = ("one", "several", "zero-length-entries", "unset-entry")
LENGTHS = ("0", "1", "exact", "short-by-one", "negative", "non-int", "over-buffer",
           "over-scratch")

#: Every dimension and its values (the pairwise generator covers each pair of values).
DIMENSIONS: dict[str, tuple[str, ...]] = {
    "op": ("compress", "decompress"),
    "src": BUFFERS,
    "dst": (*BUFFERS, "none"),
    "src_shape": SHAPES,
    "dst_shape": SHAPES,
    "slen": LENGTHS,
    "dlen": LENGTHS,
}


@dataclass(frozen=True)
class Case:
    op: str
    src: str
    dst: str
    src_shape: str
    dst_shape: str
    slen: str
    dlen: str

    def __str__(self) -> str:
        return (f"{self.op} src={self.src}/{self.src_shape} slen={self.slen} "
                f"dst={self.dst}/{self.dst_shape} dlen={self.dlen}")


def pairwise(dims: Mapping[str, Sequence[str]], seed: int = 10) -> list[dict[str, str]]:
    """A small set of rows in which every pair of values of every two dimensions appears
    (greedy, deterministic for a seed; about the product of the two largest dimensions)."""
    names = list(dims)
    uncovered = {(a, va, b, vb) for a, b in itertools.combinations(names, 2)
                 for va in dims[a] for vb in dims[b]}
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    while uncovered:
        # start from an uncovered pair, then fill each other dimension greedily
        a, va, b, vb = min(uncovered)
        row = {a: va, b: vb}
        for n in rng.sample(names, len(names)):
            if n in row:
                continue
            best = max(dims[n], key=lambda v: (sum(
                (m, row[m], n, v) in uncovered or (n, v, m, row[m]) in uncovered
                for m in row), rng.random()))
            row[n] = best
        for x, y in itertools.combinations(names, 2):
            uncovered.discard((x, row[x], y, row[y]))
        rows.append(row)
    return rows


def matrix_cases() -> list[Case]:
    """The generated cases (the same for every driver)."""
    return [Case(**r) for r in pairwise(DIMENSIONS)]


# ---------------------------------------------------------------------------------------------
# Building a case


def _text(n: int) -> bytes:
    words = b"the quick brown fox jumps over the lazy dog 0123456789 acomp zswap "
    rng = random.Random(n)
    out = bytearray()
    while len(out) < n:
        out += words[rng.randrange(len(words) - 8):][:rng.randrange(3, 9)]
    return bytes(out[:n])


DATA = _text(PAGE_SIZE)


def _container(kind: str, data: bytes) -> Any:
    """`data` in a buffer of `kind` (for a destination, `data` is its initial content)."""
    if kind == "bytes":
        return bytes(data)
    if kind == "bytearray":
        return bytearray(data)
    if kind == "memoryview":
        return memoryview(bytearray(data))
    if kind == "readonly-view":
        return memoryview(bytearray(data)).toreadonly()
    if kind == "numpy":
        return np.frombuffer(bytearray(data), np.uint8)
    if kind == "numpy-strided":
        twice = np.zeros(2 * len(data), np.uint8)
        twice[::2] = np.frombuffer(data, np.uint8)
        return twice[::2]
    if kind == "empty":
        return bytearray()
    raise ValueError(kind)


def _sg(buf: Any, shape: str) -> Scatterlist:
    """`buf` as a scatterlist of `shape` (a TypeError for a strided buffer, from sg_*)."""
    if shape == "one":
        return sg_init_one(buf)
    mv = memoryview(buf)
    if not mv.c_contiguous:
        return sg_init_one(buf)  # raises the TypeError every shape would
    mv = mv.cast("B")
    n = len(mv)
    if shape == "several":
        sgl = sg_init_table(3)
        cut = [0, n // 3, 2 * n // 3, n]
        for i in range(3):
            sg_set_buf(sgl, i, mv[cut[i]:cut[i + 1]])
        return sgl
    if shape == "zero-length-entries":
        sgl = sg_init_table(4)
        sg_set_buf(sgl, 0, mv[:0])
        sg_set_buf(sgl, 1, mv[: n // 2])
        sg_set_buf(sgl, 2, mv[n // 2 : n // 2])
        sg_set_buf(sgl, 3, mv[n // 2 :])
        return sgl
    if shape == "unset-entry":
        sgl = sg_init_table(3)  # entry 0 left unset
        sg_set_buf(sgl, 1, mv[: n // 2])
        sg_set_buf(sgl, 2, mv[n // 2 :])
        return sgl
    raise ValueError(shape)


def _length(kind: str, exact: int, buffer: int) -> Any:
    return {"0": 0, "1": 1, "exact": exact, "short-by-one": exact - 1, "negative": -1,
            "non-int": exact + 0.5, "over-buffer": buffer + 1000,
            "over-scratch": SCOMP_SCRATCH_SIZE + 1}[kind]


class _Guarded:
    """A destination buffer of `kind` with `size` bytes of room, guard bytes on both sides."""

    def __init__(self, kind: str, size: int) -> None:
        # (a strided view of 0 or 1 element is contiguous: give it two)
        self.size = 0 if kind == "empty" else max(size, 2) if kind == "numpy-strided" else size
        self.back = bytearray([_FILL]) * (self.size + 2 * _GUARD)
        region = memoryview(self.back)[_GUARD : _GUARD + self.size]
        if kind in ("bytearray", "memoryview"):
            self.view: Any = region
        elif kind == "numpy":
            self.view = np.frombuffer(region, np.uint8)
        elif kind == "readonly-view":
            self.view = region.toreadonly()
        elif kind == "bytes":
            self.view = bytes(region)  # read-only, and a copy: nothing can reach `back`
        elif kind == "numpy-strided":
            self.view = np.frombuffer(self.back, np.uint8)[_GUARD : _GUARD + 2 * self.size : 2]
        else:  # empty
            self.view = region

    def guards_ok(self) -> bool:
        b = self.back
        return (b[:_GUARD] == bytes([_FILL]) * _GUARD
                and b[_GUARD + self.size :] == bytes([_FILL]) * (len(b) - _GUARD - self.size))

    def untouched(self) -> bool:
        return self.back.count(_FILL) == len(self.back)

    def data(self, n: int) -> bytes:
        return bytes(self.back[_GUARD : _GUARD + n])


@dataclass
class _Outcome:
    ret: int
    dlen: int
    output: bytes
    guards_ok: bool
    untouched: bool


async def _submit(tfm: CryptoAcomp, compress: bool, src: Scatterlist, dst: Scatterlist | None,
                  slen: Any, dlen: Any) -> tuple[int, AcompReq]:
    req = acomp_request_alloc(tfm)
    if req is None:
        raise AssertionError(f"{tfm.alg.cra_driver_name}: acomp_request_alloc failed")
    wait = CryptoWait()
    acomp_request_set_params(req, src, dst, slen, dlen)
    acomp_request_set_callback(req, CRYPTO_TFM_REQ_MAY_BACKLOG, crypto_req_done, wait)
    with anyio.fail_after(DEADLINE):
        submit = crypto_acomp_compress if compress else crypto_acomp_decompress
        ret = await crypto_wait_req(submit(req), wait, DEADLINE)
    if ret == -errno.ETIMEDOUT or req.in_flight:
        raise AssertionError(f"{tfm.alg.cra_driver_name}: no completion within {DEADLINE:g}s")
    return ret, req


async def _roundtrip_size(tfm: CryptoAcomp, data: bytes) -> tuple[int, bytes]:
    """The driver's compressed size of `data` with ample room, and its output."""
    out = bytearray(2 * len(data) + 64)
    ret, req = await _submit(tfm, True, sg_init_one(data), sg_init_one(out), len(data), len(out))
    if ret:
        raise AssertionError(f"{tfm.alg.cra_driver_name}: compress of {len(data)} bytes with "
                             f"ample room failed: {errno_name(ret)}")
    n = req.dlen
    acomp_request_free(req)
    return n, bytes(out[:n])


async def _decodes_to(tfm: CryptoAcomp, blob: bytes, want: bytes) -> bool:
    out = bytearray(len(want) + 64)
    ret, req = await _submit(tfm, False, sg_init_one(blob), sg_init_one(out), len(blob),
                             len(out))
    ok = ret == 0 and bytes(out[: req.dlen]) == want
    acomp_request_free(req)
    return ok


# ---------------------------------------------------------------------------------------------
# The matrix


async def run_case(tfm: CryptoAcomp, case: Case, blob: bytes) -> None:
    """Run `case` on `tfm` and check it; AssertionError naming the case and what broke."""
    drv = tfm.alg.cra_driver_name
    compress = case.op == "compress"
    full = DATA if compress else blob
    big = case.slen == "over-scratch"
    content = full + bytes(SCOMP_SCRATCH_SIZE + 16 - len(full)) if big else full
    src_buf = _container(case.src, content)
    src_len = 0 if case.src == "empty" else len(content)
    slen = _length(case.slen, len(full), src_len)
    data = content[:slen] if isinstance(slen, int) and 0 < slen <= src_len else b""
    # What the output needs, for this very input.
    if not data:
        need = 1
    elif compress:
        need = (await _roundtrip_size(tfm, data))[0] if slen <= SCOMP_SCRATCH_SIZE else 1
    else:
        need = len(DATA)
    room = need + 64
    if case.dlen == "over-buffer":
        room = max(need - 1, 1)  # a dlen beyond a buffer too small for the output
    dlen = _length(case.dlen, need, room)
    if case.dlen in ("1", "exact", "short-by-one") and case.dst != "none":
        room = max(int(dlen), 0)
    where = f"{drv}: {case}"

    strided = "numpy-strided" in (case.src, case.dst)
    guarded = None if case.dst == "none" else _Guarded(case.dst, room)
    try:
        src_sg = _sg(src_buf, case.src_shape)
        dst_sg = None if guarded is None else _sg(guarded.view, case.dst_shape)
    except TypeError as e:
        if not strided:
            raise AssertionError(f"{where}: building the scatterlists raised {e}") from None
        if "contiguous" not in str(e):
            raise AssertionError(f"{where}: the TypeError does not name the problem: {e}") \
                from None
        return
    if strided:
        raise AssertionError(f"{where}: a strided buffer reached the request")

    # The oracle.
    bad_len = (not isinstance(slen, int) or not isinstance(dlen, int) or slen <= 0
               or slen > src_len or dlen < 0)
    cap = 0
    if not bad_len:
        assert isinstance(dlen, int)
        if guarded is None and tfm.kernel >= (6, 15):
            bad_len = True  # no CRYPTO_ACOMP_ALLOC_OUTPUT since v6.15: a NULL dst is -EINVAL
        elif guarded is None:
            cap = dlen or SCOMP_SCRATCH_SIZE
        else:
            cap = min(dlen, guarded.size)
            if case.dst in ("bytes", "readonly-view") or cap == 0:
                bad_len = True
        cap = min(cap, SCOMP_SCRATCH_SIZE)
    over_scratch = not bad_len and slen > SCOMP_SCRATCH_SIZE

    lengths_ok = isinstance(slen, int) and isinstance(dlen, int) and slen > 0 and dlen > 0
    split_src = src_sg._entries[0] is None or len(src_sg._entries[0]) < src_len
    try:
        ret, req = await _submit(tfm, compress, src_sg, dst_sg, slen, dlen)
    except sched.LockDebugError as e:
        # v6.15+ scomp copies a split source into its one-page scratch unchecked: the kernel's
        # overrun, reported (crypto/scompress.c scomp_acomp_comp_decomp).
        if (tfm.kernel >= (6, 15) and lengths_ok and split_src and int(slen) > PAGE_SIZE
                and "KASAN" in str(e) and (guarded is None or guarded.untouched())):
            return
        raise
    if (ret == -errno.ENOSYS and tfm.kernel >= (6, 16) and lengths_ok and dst_sg is not None
            and (dst_sg._entries[0] is None or len(dst_sg._entries[0]) < int(dlen))):
        # v6.16+ scomp: a destination whose first entry cannot hold dlen is not mapped
        # ("crypto: scomp - Drop the dst scratch buffer").
        if guarded is not None and not guarded.untouched():
            raise AssertionError(f"{where}: -ENOSYS, but the destination was written")
        acomp_request_free(req)
        return
    out = b""
    if ret == 0 and guarded is not None:
        out = guarded.data(req.dlen)
    elif ret == 0 and req.dst is not None:
        out = req.dst.tobytes(req.dlen)
    o = _Outcome(ret, req.dlen, out, guarded is None or guarded.guards_ok(),
                 guarded is None or guarded.untouched())
    acomp_request_free(req)

    if not o.guards_ok:
        raise AssertionError(f"{where}: wrote outside the destination ({errno_name(ret)})")
    if ret > 0 or (ret < 0 and -ret not in errno.errorcode):
        raise AssertionError(f"{where}: returned {ret}, not 0 or -errno")
    if over_scratch:  # scomp's limit: -EINVAL; a driver without one may take it
        if ret == _EINVAL and o.untouched:
            return
        if ret == 0 and (acomp_is_async(tfm) or tfm.kernel >= (6, 15)):
            return  # from v6.15 scomp has no SCOMP_SCRATCH_SIZE limit on the source
        raise AssertionError(f"{where}: {errno_name(ret)} for slen {slen} > the scratch size: "
                             "want -EINVAL with nothing written")
    if bad_len:
        if ret != _EINVAL:
            raise AssertionError(f"{where}: gave {errno_name(ret)}, want -EINVAL "
                                 f"(slen {slen!r}, dlen {dlen!r}, cap {cap})")
        if not o.untouched:
            raise AssertionError(f"{where}: -EINVAL, but the destination was written")
        return
    full_input = data == full
    if compress:
        if need <= cap:
            if ret:
                raise AssertionError(f"{where}: {errno_name(ret)} although {need} bytes fit "
                                     f"the {cap} given")
            if o.dlen > cap or not await _decodes_to(tfm, o.output, data):
                raise AssertionError(f"{where}: the output ({o.dlen} bytes) does not decode "
                                     "to the input")
        elif ret not in (_ENOSPC, _EINVAL):
            raise AssertionError(f"{where}: {errno_name(ret)} ({o.dlen} bytes) for an output "
                                 f"of {need} bytes into {cap}: want -ENOSPC or -EINVAL")
        return
    if full_input and len(DATA) <= cap:
        if ret or o.output != DATA:
            raise AssertionError(f"{where}: {errno_name(ret)}, {o.dlen} bytes: want the page")
    elif full_input:
        if ret not in (_ENOSPC, _EINVAL):
            raise AssertionError(f"{where}: {errno_name(ret)} ({o.dlen} bytes) decoding a page "
                                 f"into {cap} bytes: want -ENOSPC or -EINVAL")
    elif len(data) == len(full) - 1 and ret == 0:
        raise AssertionError(f"{where}: a block cut short by one byte decoded ({o.dlen} bytes)")
    elif ret == 0 and o.dlen > cap:
        raise AssertionError(f"{where}: dlen {o.dlen} > capacity {cap}")


async def check_matrix(driver: str) -> None:
    """The generated request-boundary matrix (buffer kinds, scatterlist shapes, lengths; see
    `acomp.testing.contract`): each case has the outcome its oracle derives, guard bytes
    intact and a completion before the deadline."""
    tfm = _alloc(driver)
    try:
        _n, blob = await _roundtrip_size(tfm, DATA)
        failures = []
        with _collecting():
            for case in matrix_cases():
                try:
                    await run_case(tfm, case, blob)
                except AssertionError as e:
                    failures.append(str(e))
                except Exception as e:  # the request path must not raise
                    failures.append(f"{driver}: {case}: raised {type(e).__name__}: {e}")
        if failures:
            raise _fail(f"{len(failures)} of {len(matrix_cases())} cases failed:\n  "
                        + "\n  ".join(failures[:12]))
    finally:
        crypto_free_acomp(tfm)


# ---------------------------------------------------------------------------------------------
# Lifetimes


class _collecting:
    """Bug reports collected (warn mode) for the duration; restored afterwards."""

    def __enter__(self) -> _collecting:
        self.mode = sched.config.lock_debug
        sched.config.lock_debug = "warn"
        self.start = len(sched.reports)
        return self

    def __exit__(self, *exc: object) -> None:
        sched.config.lock_debug = self.mode  # type: ignore[assignment]

    def new(self) -> list[str]:
        return [r.title for r in sched.reports[self.start :]]


async def check_lifetimes(driver: str) -> None:
    """Request and transform lifetimes: a submission in flight is refused (-EINVAL) and
    reported, the first completes with its own output; a freed request and one on a freed
    transform are reported as use-after-free and refused; a request out when its transform is
    freed still completes; a waiter cancelled while its request runs leaves only after the
    completion, with the output whole."""
    tfm = _alloc(driver)
    freed = False
    try:
        _n, blob = await _roundtrip_size(tfm, DATA)
        col = _collecting()
        with col:
            # 1. reuse in flight
            req = acomp_request_alloc(tfm)
            assert req is not None
            out = bytearray(2 * PAGE_SIZE)
            wait = CryptoWait()
            acomp_request_set_params(req, sg_init_one(DATA), sg_init_one(out), PAGE_SIZE,
                                     len(out))
            acomp_request_set_callback(req, CRYPTO_TFM_REQ_MAY_BACKLOG, crypto_req_done, wait)
            first = crypto_acomp_compress(req)
            if req.in_flight:
                again = crypto_acomp_compress(req)
                if again != _EINVAL:
                    raise _fail(f"{driver}: a resubmission in flight gave {errno_name(again)}, "
                                "want -EINVAL")
                if not any("in flight" in t for t in col.new()):
                    raise _fail(f"{driver}: a resubmission in flight was not reported")
            with anyio.fail_after(DEADLINE):
                ret = await crypto_wait_req(first, wait, DEADLINE)
            if ret or not await _decodes_to(tfm, bytes(out[: req.dlen]), DATA):
                raise _fail(f"{driver}: the first submission ({errno_name(ret)}) lost its "
                            "output to the resubmission")
            # 2. after free
            acomp_request_free(req)
            n = len(col.new())
            if crypto_acomp_compress(req) != _EINVAL or not any(
                    "use-after-free" in t for t in col.new()[n:]):
                raise _fail(f"{driver}: a freed request was served or not reported")
            # 3. tfm freed with requests out: one in flight, one idle
            busy = acomp_request_alloc(tfm)
            idle = acomp_request_alloc(tfm)
            assert busy is not None
            assert idle is not None
            bout = bytearray(PAGE_SIZE + 64)
            bwait = CryptoWait()
            acomp_request_set_params(busy, sg_init_one(blob), sg_init_one(bout), len(blob),
                                     len(bout))
            acomp_request_set_callback(busy, CRYPTO_TFM_REQ_MAY_BACKLOG, crypto_req_done, bwait)
            acomp_request_set_params(idle, sg_init_one(DATA), sg_init_one(bytearray(8192)),
                                     PAGE_SIZE, 8192)
            acomp_request_set_callback(idle, CRYPTO_TFM_REQ_MAY_BACKLOG, crypto_req_done,
                                       CryptoWait())
            bret = crypto_acomp_decompress(busy)
            crypto_free_acomp(tfm)
            freed = True
            with anyio.fail_after(DEADLINE):
                bret = await crypto_wait_req(bret, bwait, DEADLINE)
            if bret == -errno.ETIMEDOUT:
                raise _fail(f"{driver}: a request out when its transform was freed never "
                            "completed")
            if bret == 0 and bytes(bout[: busy.dlen]) != DATA:
                raise _fail(f"{driver}: a request out when its transform was freed completed "
                            "with wrong data")
            n = len(col.new())
            if crypto_acomp_compress(idle) != _EINVAL or not any(
                    "use-after-free" in t for t in col.new()[n:]):
                raise _fail(f"{driver}: a request on a freed transform was served or not "
                            "reported")
        await _cancelled_waiter(driver)
    finally:
        if not freed:
            crypto_free_acomp(tfm)


async def _cancelled_waiter(driver: str) -> None:
    tfm = _alloc(driver)
    try:
        req = acomp_request_alloc(tfm)
        assert req is not None
        out = bytearray(2 * PAGE_SIZE)
        wait = CryptoWait()
        acomp_request_set_params(req, sg_init_one(DATA), sg_init_one(out), PAGE_SIZE, len(out))
        acomp_request_set_callback(req, CRYPTO_TFM_REQ_MAY_BACKLOG, crypto_req_done, wait)
        status: list[int] = []

        async def waiter(ret: int) -> None:
            status.append(await crypto_wait_req(ret, wait, DEADLINE))
            await anyio.sleep(3600)

        ret = crypto_acomp_compress(req)
        with anyio.fail_after(DEADLINE), anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(waiter, ret)
                await anyio.lowlevel.checkpoint()
                scope.cancel()
        if req.in_flight:
            raise _fail(f"{driver}: a cancelled waiter left while its request was in flight")
        final = status[0] if status else (ret if ret != -errno.EINPROGRESS else wait.err)
        if final or not await _decodes_to(tfm, bytes(out[: req.dlen]), DATA):
            raise _fail(f"{driver}: the request of a cancelled waiter gave {errno_name(final)} "
                        "or a wrong output")
        acomp_request_free(req)
    finally:
        crypto_free_acomp(tfm)


CHECKS: tuple[tuple[str, Callable[[str], Any]], ...] = (
    ("contract-matrix", check_matrix),
    ("contract-lifetimes", check_lifetimes),
)
