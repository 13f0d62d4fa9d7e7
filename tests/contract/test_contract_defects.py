"""The request boundary's defects of issue 10, one regression test each (each failed before
its fix): hangs, silent wrong results, unclear errors. The generated matrix over every driver
is `test_contract_matrix.py` (`acomp.testing.contract`)."""

from __future__ import annotations

import errno
import threading
from pathlib import Path
from typing import Any

import anyio
import lz4.block
import numpy as np
import pytest
import zstandard

import acomp
from acomp import corpus, faulty, sched
from acomp.engine import CryptoEngine
from acomp.internal import AcompAlg, AcompReq, crypto_register_acomp, crypto_unregister_acomp
from acomp.scatterlist import sg_init_one, sg_init_table, sg_set_buf

pytestmark = pytest.mark.anyio

PAGE = acomp.PAGE_SIZE
EINVAL, ENOSPC, EIO = -errno.EINVAL, -errno.ENOSPC, -errno.EIO
TEXT = corpus.pages(4, seed=3)[1].tobytes()
CPU = ["lz4-scomp", "lz4hc-scomp", "lzo-scomp", "zstd-scomp", "deflate-scomp"]
HAS_OPENCL = acomp.crypto_has_acomp("lz4-opencl")
OPENCL = pytest.param("lz4-opencl", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not HAS_OPENCL, reason="no OpenCL device")])
DRIVERS = [*CPU, OPENCL]


@pytest.fixture(autouse=True)
def _reports_collected() -> None:
    """Misuse reports are collected (warn mode) so a test can see both the report and the
    errno the caller gets (the suite's autouse fixture restores raise mode afterwards)."""
    sched.config.lock_debug = "warn"


def _blob(driver: str, data: bytes = TEXT) -> bytes:
    tfm = acomp.crypto_alloc_acomp(driver)
    try:
        req = acomp.acomp_request_alloc(tfm)
        assert req is not None
        out = bytearray(2 * len(data) + 64)
        acomp.acomp_request_set_params(req, sg_init_one(data), sg_init_one(out), len(data),
                                       len(out))
        assert acomp.crypto_wait_req_sync(acomp.crypto_acomp_compress(req), _wait(req)) == 0
        blob = bytes(out[: req.dlen])
        acomp.acomp_request_free(req)
        return blob
    finally:
        acomp.crypto_free_acomp(tfm)


def _wait(req: AcompReq) -> acomp.CryptoWait:
    w = acomp.CryptoWait()
    acomp.acomp_request_set_callback(req, acomp.CRYPTO_TFM_REQ_MAY_BACKLOG, acomp.crypto_req_done,
                                     w)
    return w


async def _run(tfm: acomp.CryptoAcomp, compress: bool, src: Any, dst: Any, slen: Any,
               dlen: Any) -> tuple[int, AcompReq]:
    """One request, with a deadline: its final status and the request."""
    req = acomp.acomp_request_alloc(tfm)
    assert req is not None
    acomp.acomp_request_set_params(req, src, dst, slen, dlen)
    w = _wait(req)
    with anyio.fail_after(30):
        submit = acomp.crypto_acomp_compress if compress else acomp.crypto_acomp_decompress
        ret = await acomp.crypto_wait_req(submit(req), w)
    return ret, req


async def _still_serves(tfm: acomp.CryptoAcomp, blob: bytes) -> None:
    """The driver still works after the defect: `blob` decompresses to `TEXT`."""
    out = bytearray(PAGE)
    ret, req = await _run(tfm, False, sg_init_one(blob), sg_init_one(out), len(blob), PAGE)
    assert ret == 0
    assert bytes(out[: req.dlen]) == TEXT


# ---------------------------------------------------------------------------------------------
# Hangs


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_OPENCL, reason="no OpenCL device")
async def test_opencl_unset_first_dst_entry_never_hangs() -> None:
    """An unset entry 0 (the IndexError that stranded requests and the engine's slots):
    every such request ends with an errno or a correct output, and lz4-opencl keeps serving."""
    blob = _blob("lz4-scomp")
    tfm = acomp.crypto_alloc_acomp("lz4-opencl")
    try:
        for _ in range(5):  # more than the engine's 3 batches in flight
            sgl = sg_init_table(2)
            buf = bytearray(PAGE + 32)
            sg_set_buf(sgl, 1, memoryview(buf)[:PAGE])
            ret, req = await _run(tfm, False, sg_init_one(blob), sgl, len(blob), PAGE)
            assert (ret == 0 and bytes(buf[: req.dlen]) == TEXT) or ret < 0, ret
            assert bytes(buf[PAGE:]) == bytes(32)
        await _still_serves(tfm, blob)
    finally:
        acomp.crypto_free_acomp(tfm)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_OPENCL, reason="no OpenCL device")
async def test_opencl_exception_in_completion_completes_with_eio(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Any exception while a completion copies out: the request completes with -EIO and the
    engine's slot comes back (six such requests, then a good one)."""
    import acomp_drivers.lz4_opencl as drv

    blob = _blob("lz4-scomp")
    tfm = acomp.crypto_alloc_acomp("lz4-opencl")

    def broken(*a: object) -> int:
        raise RuntimeError("a driver bug in the completion path")

    try:
        with monkeypatch.context() as m:
            m.setattr(drv.Lz4OpenCL, "_complete", staticmethod(broken))
            for _ in range(6):
                ret, _req = await _run(tfm, False, sg_init_one(blob), sg_init_one(bytearray(PAGE)),
                                       len(blob), PAGE)
                assert ret == EIO
        await _still_serves(tfm, blob)
    finally:
        acomp.crypto_free_acomp(tfm)


class _EngineAlg(AcompAlg):
    """An engine driver whose completion thread's copy-out raises for odd requests."""

    cra_name = "tcontract"
    cra_driver_name = "tcontract-engine"
    cra_flags = acomp.CRYPTO_ALG_ASYNC

    def __init__(self) -> None:
        super().__init__()
        self.engine = CryptoEngine("tcontract", self._do_batch, max_in_flight=1, batch_limit=4)
        self.engine.start()
        self.n = 0

    def _do_batch(self, engine: CryptoEngine, reqs: list[AcompReq]) -> None:
        def work(i: int, r: AcompReq) -> int:
            self.n += 1
            if self.n % 2:
                raise IndexError("a bad destination entry")
            r.dlen = 0
            return 0

        threading.Thread(target=engine.finish_batch, args=(reqs, work)).start()

    def compress(self, req: AcompReq) -> int:
        return self.engine.transfer(req)

    decompress = compress


async def test_engine_completion_exception_completes_and_frees_the_slot() -> None:
    alg = _EngineAlg()
    assert crypto_register_acomp(alg) == 0
    tfm = acomp.crypto_alloc_acomp("tcontract-engine")
    try:
        rets = []
        for _ in range(6):  # max_in_flight 1: a slot not given back would hang the second
            ret, _req = await _run(tfm, True, sg_init_one(b"x"), sg_init_one(bytearray(8)), 1, 8)
            rets.append(ret)
        assert rets == [EIO, 0] * 3
        for _ in range(500):  # the slot comes back just after the last completion
            if not alg.engine.statistics().in_flight_batches:
                break
            await anyio.sleep(0.01)
        assert alg.engine.statistics().in_flight_batches == 0
    finally:
        acomp.crypto_free_acomp(tfm)
        crypto_unregister_acomp(alg)
        alg.engine.exit()


async def test_resubmitting_a_request_in_flight_is_refused_and_reported() -> None:
    """faulty(lz4-scomp) with a delay: submit, set_params, submit. The second submission and
    the set_params are reported and refused; the first completes with its own output."""
    faulty.set_plan("faulty(lz4)", faulty.FaultPlan(delay=1.0, delay_s=(0.2, 0.2)))
    tfm = acomp.crypto_alloc_acomp("faulty(lz4-scomp)")
    try:
        req = acomp.acomp_request_alloc(tfm)
        assert req is not None
        out = bytearray(2 * PAGE)
        acomp.acomp_request_set_params(req, sg_init_one(TEXT), sg_init_one(out), PAGE, len(out))
        w = _wait(req)
        first = acomp.crypto_acomp_compress(req)
        assert first == -errno.EINPROGRESS
        other = bytearray(2 * PAGE)
        acomp.acomp_request_set_params(req, sg_init_one(b"y" * 100), sg_init_one(other), 100,
                                       len(other))
        assert acomp.crypto_acomp_compress(req) == EINVAL
        assert acomp.crypto_acomp_decompress(req) == EINVAL
        titles = [r.title for r in sched.reports]
        assert any("acomp_request_set_params" in t and "in flight" in t for t in titles)
        assert sum("submission" in t and "in flight" in t for t in titles) == 2
        with anyio.fail_after(10):
            assert await acomp.crypto_wait_req(first, w) == 0
        assert lz4.block.decompress(bytes(out[: req.dlen]), uncompressed_size=PAGE) == TEXT
        assert not req.in_flight
        await anyio.sleep(0.3)  # no second completion ever comes
        assert w.done == 0
        acomp.acomp_request_free(req)
    finally:
        acomp.crypto_free_acomp(tfm)
        faulty.set_plan("faulty(lz4)", faulty.FaultPlan())


# ---------------------------------------------------------------------------------------------
# Silent wrong results


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("shape", ["one empty", "all empty", "unset"])
async def test_zero_length_destination_is_einval(driver: str, shape: str) -> None:
    tfm = acomp.crypto_alloc_acomp(driver)
    try:
        if shape == "one empty":
            dst = sg_init_one(bytearray(0))
        else:
            dst = sg_init_table(3)
            if shape == "all empty":
                for i in range(3):
                    sg_set_buf(dst, i, bytearray(0))
        ret, req = await _run(tfm, True, sg_init_one(TEXT), dst, PAGE, PAGE)
        assert ret == EINVAL, (ret, req.dlen)
    finally:
        acomp.crypto_free_acomp(tfm)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_OPENCL, reason="no OpenCL device")
@pytest.mark.parametrize("compress", [True, False], ids=["compress", "decompress"])
async def test_opencl_clamps_dlen_to_the_destination(compress: bool) -> None:
    """dlen 4096 over 10 (compress) or 100 (decompress) real bytes: never a short success."""
    blob = _blob("lz4-scomp")
    tfm = acomp.crypto_alloc_acomp("lz4-opencl")
    try:
        size = 10 if compress else 100
        buf = bytearray(size + 16)
        src = TEXT if compress else blob
        ret, req = await _run(tfm, compress, sg_init_one(src), sg_init_one(memoryview(buf)[:size]),
                              len(src), PAGE)
        assert ret in (EINVAL, ENOSPC), (ret, req.dlen)
        assert bytes(buf[size:]) == bytes(16)
    finally:
        acomp.crypto_free_acomp(tfm)


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize(("slen", "dlen"), [(-1, PAGE), (PAGE, -1), (100.5, PAGE), (PAGE, "4096"),
                                            (None, PAGE)])
async def test_negative_or_non_integer_lengths_are_einval(driver: str, slen: Any,
                                                          dlen: Any) -> None:
    tfm = acomp.crypto_alloc_acomp(driver)
    try:
        out = bytearray(2 * PAGE)
        ret, _req = await _run(tfm, True, sg_init_one(TEXT), sg_init_one(out), slen, dlen)
        assert ret == EINVAL
        assert out == bytes(2 * PAGE)  # nothing written
    finally:
        acomp.crypto_free_acomp(tfm)


@pytest.mark.parametrize("driver", DRIVERS)
async def test_batch_negative_lengths_and_zero_capacity_are_einval_per_item(driver: str) -> None:
    tfm = acomp.crypto_alloc_acomp(driver)
    try:
        pages = np.frombuffer(TEXT * 3, np.uint8).reshape(3, PAGE).copy()
        res = await acomp.crypto_acomp_batch_compress(tfm, pages, lengths=[PAGE, -1, 0])
        assert list(res.sizes[1:]) == [EINVAL, EINVAL]
        assert res.sizes[0] > 0
        res = await acomp.crypto_acomp_batch_compress(tfm, pages, capacity=0)
        assert list(res.sizes) == [EINVAL] * 3
        res = await acomp.crypto_acomp_batch_compress(tfm, pages, capacity=[PAGE * 2, 0, -5])
        assert res.sizes[0] > 0
        assert list(res.sizes[1:]) == [EINVAL, EINVAL]
        with pytest.raises(TypeError, match="lengths must be integers"):
            await acomp.crypto_acomp_batch_compress(tfm, pages, lengths=[PAGE, 10.5, 3])
    finally:
        acomp.crypto_free_acomp(tfm)


def _zstd_frames() -> tuple[bytes, bytes]:
    c = zstandard.ZstdCompressor(level=3)
    return c.compress(b"hello " * 100), c.compress(b"world " * 50)


@pytest.mark.parametrize("case", ["two frames", "junk", "half a second frame"])
async def test_zstd_consumes_exactly_slen_or_fails(case: str) -> None:
    """zstd_decompress_dctx decodes the whole input or fails: every frame (two frames give
    both), nothing left over."""
    a, b = _zstd_frames()
    src = {"two frames": a + b, "junk": a + b"junk", "half a second frame": a + b[: len(b) // 2]
           }[case]
    tfm = acomp.crypto_alloc_acomp("zstd-scomp")
    try:
        out = bytearray(PAGE)
        ret, req = await _run(tfm, False, sg_init_one(src), sg_init_one(out), len(src), PAGE)
        if case == "two frames":
            assert ret == 0
            assert bytes(out[: req.dlen]) == b"hello " * 100 + b"world " * 50
        else:
            assert ret == EINVAL
    finally:
        acomp.crypto_free_acomp(tfm)


#: 4 literals 'abcd', a match of 4 at offset 0, last literals 'efghi'.
OFFSET0 = bytes([0x40]) + b"abcd" + b"\x00\x00" + bytes([0x50]) + b"efghi"


@pytest.mark.parametrize("driver", ["lz4-scomp", "lz4hc-scomp"])
async def test_lz4_offset_zero_is_rejected(driver: str) -> None:
    tfm = acomp.crypto_alloc_acomp(driver)
    try:
        for data_like_fill in (False, True):
            # the fill byte of the work buffer in the data itself must not hide it either
            blk = OFFSET0 if not data_like_fill else (bytes([0x40]) + b"\xa7" * 4 + b"\x00\x00"
                                                      + bytes([0x50]) + b"\xa7" * 5)
            ret, _req = await _run(tfm, False, sg_init_one(blk), sg_init_one(bytearray(100)),
                                   len(blk), 100)
            assert ret == EINVAL
        # a block whose output has runs of the fill byte decodes (confirmed on a second pass)
        data = b"\xa7" * 64 + TEXT[:500]
        blk = lz4.block.compress(data, store_size=False)
        out = bytearray(PAGE)
        ret, req = await _run(tfm, False, sg_init_one(blk), sg_init_one(out), len(blk), PAGE)
        assert ret == 0
        assert bytes(out[: req.dlen]) == data
    finally:
        acomp.crypto_free_acomp(tfm)


# ---------------------------------------------------------------------------------------------
# Unclear errors: the kernel-style layer


@pytest.mark.parametrize("driver", DRIVERS)
async def test_strided_numpy_source_is_a_type_error_naming_it(driver: str) -> None:
    a = np.frombuffer(TEXT * 2, np.uint8)[::2]
    with pytest.raises(TypeError, match="contiguous"):
        sg_init_one(a)
    sgl = sg_init_table(1)
    with pytest.raises(TypeError, match="contiguous"):
        sg_set_buf(sgl, 0, a)
    # the Python layer takes it (a copy), on every driver
    async with acomp.open(driver) as c:
        blob = await c.compress(a)
        assert await c.decompress(blob, PAGE) == a.tobytes()


async def test_freed_request_and_freed_tfm_are_use_after_free() -> None:
    for driver in ["lz4-scomp", "faulty(lz4-scomp)"]:
        sched.reports.clear()
        tfm = acomp.crypto_alloc_acomp(driver)
        req = acomp.acomp_request_alloc(tfm)
        assert req is not None
        out = bytearray(2 * PAGE)
        acomp.acomp_request_set_params(req, sg_init_one(TEXT), sg_init_one(out), PAGE, len(out))
        _wait(req)
        acomp.acomp_request_free(req)
        assert acomp.crypto_acomp_compress(req) == EINVAL
        assert out == bytes(2 * PAGE)
        req2 = acomp.acomp_request_alloc(tfm)
        assert req2 is not None
        acomp.acomp_request_set_params(req2, sg_init_one(TEXT), sg_init_one(out), PAGE, len(out))
        _wait(req2)
        acomp.crypto_free_acomp(tfm)
        assert acomp.crypto_acomp_decompress(req2) == EINVAL
        assert acomp.acomp_request_alloc(tfm) is None
        assert out == bytes(2 * PAGE)
        titles = [r.title for r in sched.reports]
        assert len(titles) == 3, titles
        assert all("use-after-free" in t for t in titles), titles


async def test_use_after_free_raises_in_raise_mode() -> None:
    sched.config.lock_debug = "raise"
    tfm = acomp.crypto_alloc_acomp("lz4-scomp")
    req = acomp.acomp_request_alloc(tfm)
    assert req is not None
    acomp.acomp_request_free(req)
    with pytest.raises(sched.LockDebugError, match="use-after-free"):
        acomp.crypto_acomp_compress(req)
    acomp.crypto_free_acomp(tfm)


# ---------------------------------------------------------------------------------------------
# Unclear errors: the Python layer


@pytest.mark.parametrize("driver", DRIVERS)
async def test_python_layer_names_the_callers_buffer_mistakes(driver: str) -> None:
    async with acomp.open(driver) as c:
        blob = await c.compress(TEXT)
        with pytest.raises(TypeError, match="writable"):
            await c.decompress_into(blob, bytes(PAGE))
        with pytest.raises(TypeError, match="writable"):
            await c.compress_into(TEXT, memoryview(bytearray(2 * PAGE)).toreadonly())
        with pytest.raises(acomp.OutputTooSmall, match="empty"):
            await c.decompress_into(blob, bytearray(0))
        with pytest.raises(acomp.OutputTooSmall, match="empty"):
            await c.compress_into(TEXT, bytearray(0))
        with pytest.raises(acomp.OutputTooSmall):
            await c.compress_into(TEXT, bytearray(8))
        with pytest.raises(acomp.OutputTooSmall):
            await c.decompress_into(blob, bytearray(PAGE - 1))
        with pytest.raises(acomp.BadData):
            await c.decompress_into(blob[: len(blob) // 2] + b"\xff" * 8, bytearray(PAGE))
        with pytest.raises(ValueError, match="131072"):
            await c.compress(bytes(200_000))
        # and the transform still works
        assert await c.decompress(await c.compress(TEXT), PAGE) == TEXT


@pytest.mark.parametrize("driver", DRIVERS)
async def test_batch_api_refuses_one_buffer(driver: str) -> None:
    tfm = acomp.crypto_alloc_acomp(driver)
    try:
        for one in (np.frombuffer(TEXT, np.uint8), TEXT, bytearray(TEXT)):
            with pytest.raises(TypeError, match="2-D"):
                await acomp.crypto_acomp_batch_compress(tfm, one)
    finally:
        acomp.crypto_free_acomp(tfm)


# ---------------------------------------------------------------------------------------------
# Unclear errors: zswap and the bench CLI


def test_zswap_numeric_params_are_checked() -> None:
    from zswap import PhysMem, Zswap

    zs = Zswap(mem=PhysMem(64), compressor="lz4-scomp", zpool="zsmalloc")
    try:
        before = zs.get_param("max_pool_percent")
        for bad in (None, 3.7, "3.7", "x", True, -1, "-1", b"5"):
            assert zs.set_param("max_pool_percent", bad) == EINVAL, bad  # type: ignore[arg-type]
            assert zs.get_param("max_pool_percent") == before
        assert zs.set_param("enabled", None) == EINVAL  # type: ignore[arg-type]
        assert zs.set_param("max_pool_percent", "7\n") == 0
        assert zs.get_param("max_pool_percent") == "7\n"
        assert zs.set_param("max_pool_percent", 9) == 0
        assert zs.set_param("accept_threshold_percent", 90.5) == EINVAL  # type: ignore[arg-type]
    finally:
        zs.close()  # its pool's per-CPU lz4-scomp transforms


async def test_swap_out_names_a_wrong_size(tmp_path: Path) -> None:
    from zswap import SwapArea, SwapDevice

    area = SwapArea(SwapDevice(tmp_path / "swap", 8))
    try:
        with pytest.raises(ValueError, match="4096 bytes, not 100"):
            await area.swap_out(bytes(100))
        off = await area.swap_out(TEXT)  # and a page still works
        out = bytearray(PAGE)
        assert await area.swap_in(off, out) == 0
        assert out == TEXT
    finally:
        area.close()


@pytest.mark.parametrize(("argv", "message"), [
    (["--pages", "1000000000000"], "at most"),
    (["--pages", "0"], "at least 1"),
    (["--mode", "batch", "--cpu-cores", "-1"], "--cpu-cores"),
])
def test_bench_cli_bounds(argv: list[str], message: str,
                          capsys: pytest.CaptureFixture[str]) -> None:
    from acomp.bench.cli import main

    assert main(["--driver", "lz4-scomp", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
