"""The crypto engine: the kernel's queue rules and the batch hand-off."""

from __future__ import annotations

import errno
import threading
import zlib

import anyio
import pytest

import acomp
from acomp import CRYPTO_ALG_ASYNC, CRYPTO_TFM_REQ_MAY_BACKLOG
from acomp.engine import CryptoEngine
from acomp.internal import AcompAlg, AcompReq, crypto_register_acomp, crypto_unregister_acomp
from acomp.scatterlist import sg_copy_from_buffer, sg_init_one

pytestmark = pytest.mark.anyio


class EngineAlg(AcompAlg):
    cra_name = "tengine"
    cra_driver_name = "tengine-drv"
    cra_flags = CRYPTO_ALG_ASYNC

    def __init__(self, max_qlen: int, batch_limit: int) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.batches: list[int] = []
        self.engine = CryptoEngine("tengine", self.do_batch, max_qlen=max_qlen,
                                   batch_limit=batch_limit, max_in_flight=1)
        self.engine.start()

    def do_batch(self, engine: CryptoEngine, reqs: list[AcompReq]) -> None:
        self.gate.wait(10)
        self.batches.append(len(reqs))
        for r in reqs:
            assert r.src is not None
            assert r.dst is not None
            out = zlib.compress(r.src.tobytes(r.slen))
            sg_copy_from_buffer(r.dst, out, len(out))
            r.dlen = len(out)
            engine.finalize(r, 0)
        engine.batch_done()

    def compress(self, req: AcompReq) -> int:
        return self.engine.transfer(req)

    def decompress(self, req: AcompReq) -> int:
        return -errno.EOPNOTSUPP


@pytest.fixture
def alg() -> EngineAlg:
    a = EngineAlg(max_qlen=4, batch_limit=3)
    a.gate.set()
    assert crypto_register_acomp(a) == 0
    yield a
    a.gate.set()
    crypto_unregister_acomp(a)
    a.engine.exit()


def _submit(tfm: acomp.CryptoAcomp, flags: int, notices: list[int],
            data: bytes) -> tuple[AcompReq, acomp.CryptoWait, int]:
    req = acomp.acomp_request_alloc(tfm)
    assert req is not None
    w = acomp.CryptoWait()

    def cb(d: acomp.CryptoWait, err: int) -> None:
        notices.append(err)
        acomp.crypto_req_done(d, err)

    acomp.acomp_request_set_params(req, sg_init_one(data), sg_init_one(bytearray(256)),
                                   len(data), 256)
    acomp.acomp_request_set_callback(req, flags, cb, w)
    return req, w, acomp.crypto_acomp_compress(req)


async def test_queue_backlog_and_refusal(alg: EngineAlg) -> None:
    tfm = acomp.crypto_alloc_acomp("tengine")
    alg.gate.clear()  # the device is busy: requests pile up
    notices: list[int] = []
    first = _submit(tfm, CRYPTO_TFM_REQ_MAY_BACKLOG, notices, b"first")
    await anyio.sleep(0.05)  # the worker has taken it and sits in do_batch
    queued = [_submit(tfm, 0, notices, b"q%d" % i) for i in range(4)]
    assert [r[2] for r in queued] == [-errno.EINPROGRESS] * 4
    refused = _submit(tfm, 0, notices, b"refused")
    assert refused[2] == -errno.ENOSPC
    assert not refused[0].in_flight
    backlogged = _submit(tfm, CRYPTO_TFM_REQ_MAY_BACKLOG, notices, b"backlogged")
    assert backlogged[2] == -errno.EBUSY
    assert backlogged[0].in_flight
    alg.gate.set()
    with anyio.fail_after(10):
        for req, w, ret in [first, *queued, backlogged]:
            assert await acomp.crypto_wait_req(ret, w) == 0
            assert zlib.decompress(bytes(req.dst[0][: req.dlen])) == req.src.tobytes()  # type: ignore[union-attr]
    # The backlogged request was told -EINPROGRESS when it left the backlog, then 0.
    assert notices.count(-errno.EINPROGRESS) == 1
    assert max(alg.batches) <= 3
    assert sum(alg.batches) == 6
    st = alg.engine.statistics()
    assert st.rejected == 1
    assert st.requests == 6
    assert st.queued == 0
    for req, _, _ in [first, *queued, backlogged, refused]:
        acomp.acomp_request_free(req)
    acomp.crypto_free_acomp(tfm)


async def test_batches_form_under_load(alg: EngineAlg) -> None:
    alg.engine.max_qlen = 100
    alg.engine.batch_limit = 50
    tfm = acomp.crypto_alloc_acomp("tengine")
    alg.gate.clear()
    reqs = [_submit(tfm, CRYPTO_TFM_REQ_MAY_BACKLOG, [], b"x%d" % i) for i in range(40)]
    await anyio.sleep(0.05)
    alg.gate.set()
    with anyio.fail_after(10):
        for _, w, ret in reqs:
            assert await acomp.crypto_wait_req(ret, w) == 0
    assert max(alg.batches) >= 20  # one launch served many requests
    for req, _, _ in reqs:
        acomp.acomp_request_free(req)
    acomp.crypto_free_acomp(tfm)


def test_stopped_engine_refuses() -> None:
    e = CryptoEngine("tstopped", lambda eng, reqs: None)
    tfm = acomp.crypto_alloc_acomp("lz4-scomp")
    req = acomp.acomp_request_alloc(tfm)
    assert req is not None
    assert e.transfer(req) == -errno.ESHUTDOWN
    acomp.acomp_request_free(req)
    acomp.crypto_free_acomp(tfm)


async def test_idle_engine_pumps_inline_in_the_callers_thread() -> None:
    import threading as th

    seen: list[str] = []

    def do_batch(engine: CryptoEngine, reqs: list[AcompReq]) -> None:
        seen.append(th.current_thread().name)
        for r in reqs:
            engine.finalize(r, 0)
        engine.batch_done()

    e = CryptoEngine("tinline", do_batch, max_qlen=4, inline_pump=True)
    e.start()
    tfm = acomp.crypto_alloc_acomp("lz4-scomp")
    req = acomp.acomp_request_alloc(tfm)
    assert req is not None
    w = acomp.CryptoWait()
    acomp.acomp_request_set_callback(req, 0, acomp.crypto_req_done, w)
    try:
        assert e.transfer(req) == -errno.EINPROGRESS
        assert await acomp.crypto_wait_req(-errno.EINPROGRESS, w) == 0
        assert seen == [th.current_thread().name]  # no hand-off to the engine's kthread
        assert e.statistics().inline == 1
    finally:
        e.exit()
        acomp.acomp_request_free(req)
        acomp.crypto_free_acomp(tfm)
