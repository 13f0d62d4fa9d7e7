"""v6.15's request chaining and v6.16's CRYPTO_ALG_REQ_VIRT / cra_reqsize, each bound when a
transform is allocated in its era (acomp.eras).

Kernel: crypto/acompress.c of v6.15 (acomp_do_req_chain, acomp_do_one_req,
acomp_reqchain_finish, acomp_reqchain_done), crypto/scompress.c of v6.15 (scomp_acomp_chain,
scomp_prepare_alg's CRYPTO_ALG_REQ_CHAIN), include/crypto/acompress.h of v6.15
(acomp_request_chain, acomp_request_set_callback's crypto_reqchain_init), include/linux/crypto.h
of v6.15 (crypto_request_chain: err = -EINPROGRESS); "crypto: acomp - Remove request chaining"
(v6.16); crypto/acompress.c of v6.16 (crypto_acomp_compress: crypto_acomp_req_virt(tfm) ||
acomp_request_issg(req) goes straight to the algorithm) and crypto_acomp_init_tfm
(acomp->reqsize from the algorithm's cra_reqsize).
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

import lz4.block
import pytest

import acomp
from acomp import (
    CRYPTO_ALG_REQ_CHAIN,
    CRYPTO_ALG_REQ_VIRT,
    CRYPTO_TFM_REQ_MAY_BACKLOG,
    PAGE_SIZE,
    UnsupportedKernel,
)
from acomp.internal import acomp_request_chained
from acomp.testing import FakeAsyncDriver, Step

PAGES = [(f"page {i}: the v6.15 request chain ".encode() * 200)[:PAGE_SIZE] for i in range(4)]
CORRUPT = b"\xff" * 64


class _Chain:
    """Requests on one transform with their buffers; everything freed at the end."""

    def __init__(self, tfm: acomp.CryptoAcomp) -> None:
        self.tfm = tfm
        self.reqs: list[acomp.AcompReq] = []
        self.outs: list[bytearray] = []

    def add(self, src: bytes | None, cap: int = 2 * PAGE_SIZE,
            dst: bool = True) -> acomp.AcompReq:
        req = acomp.acomp_request_alloc(self.tfm)
        assert req is not None
        out = bytearray(cap)
        acomp.acomp_request_set_params(req, acomp.sg_init_one(src or b"x"),
                                       acomp.sg_init_one(out) if dst else None,
                                       len(src or b"x"), cap)
        self.reqs.append(req)
        self.outs.append(out)
        return req

    def output(self, i: int) -> bytes:
        return bytes(self.outs[i][: self.reqs[i].dlen])

    def free(self) -> None:
        for r in self.reqs:
            assert not r.in_flight
            acomp.acomp_request_free(r)
        acomp.crypto_free_acomp(self.tfm)


@pytest.fixture
def fake() -> Iterator[FakeAsyncDriver]:
    """An async "lz4" (its v6.15 fallback is lz4-scomp) completing after a short latency."""
    with FakeAsyncDriver(name="lz4", driver="fake-lz4", default=Step(latency=0.001)) as f:
        yield f


def _alloc(name: str, version: str = "6.15") -> acomp.CryptoAcomp:
    with acomp.using_kernel(version):
        return acomp.crypto_alloc_acomp(name)


@pytest.mark.parametrize(("version", "says"), [
    ("6.14", "is in v6.15 only"),
    ("6.16", "was removed in v6.16"),
    ("6.18", "was removed in v6.16"),
])
def test_chaining_is_an_error_outside_6_15(version: str, says: str) -> None:
    """acomp_request_chain exists in include/crypto/acompress.h of v6.15 alone."""
    c = _Chain(_alloc("lz4-scomp", version))
    head, req = c.add(PAGES[0]), c.add(PAGES[1])
    with pytest.raises(UnsupportedKernel, match=says):
        acomp.acomp_request_chain(req, head)
    assert not acomp_request_chained(head)
    c.free()


def test_scomp_walks_the_chain_and_returns_the_heads_status() -> None:
    """v6.15 scomp_acomp_chain: the head, then every chained request; each status in its
    base.err; the call returns the head's. A request in the middle that fails stops nothing."""
    c = _Chain(_alloc("lz4-scomp"))
    assert c.tfm.alg.cra_flags & CRYPTO_ALG_REQ_CHAIN  # scomp_prepare_alg
    head = c.add(PAGES[0])
    mid = c.add(PAGES[1], dst=False)  # no dst: -EINVAL since v6.15
    tail = c.add(PAGES[2])
    for r in (mid, tail):
        acomp.acomp_request_chain(r, head)
        assert r.err == -errno.EINPROGRESS  # crypto_request_chain
    assert acomp_request_chained(head)
    assert acomp.crypto_acomp_compress(head) == 0
    assert [r.err for r in c.reqs] == [0, -errno.EINVAL, 0]
    for i in (0, 2):
        assert lz4.block.decompress(c.output(i), uncompressed_size=PAGE_SIZE) == PAGES[i]
    c.free()


def test_scomp_returns_a_failing_heads_status_after_running_the_rest() -> None:
    """v6.15 scomp_acomp_chain returns the head's err, whatever the others' were."""
    c = _Chain(_alloc("lz4-scomp"))
    blob = lz4.block.compress(PAGES[1], store_size=False)
    head = c.add(CORRUPT, cap=PAGE_SIZE)
    ok = c.add(blob, cap=PAGE_SIZE)
    acomp.acomp_request_chain(ok, head)
    assert acomp.crypto_acomp_decompress(head) == -errno.EINVAL
    assert (head.err, ok.err) == (-errno.EINVAL, 0)
    assert c.output(1) == PAGES[1]
    c.free()


def test_set_callback_empties_the_chain() -> None:
    """v6.15 acomp_request_set_callback calls crypto_reqchain_init: set it before chaining."""
    c = _Chain(_alloc("lz4-scomp"))
    head, req = c.add(PAGES[0]), c.add(PAGES[1])
    acomp.acomp_request_chain(req, head)
    acomp.acomp_request_set_callback(head, 0, None, None)
    assert not acomp_request_chained(head)
    assert acomp.crypto_acomp_compress(head) == 0
    assert req.err == -errno.EINPROGRESS  # never run
    assert req.dlen == 2 * PAGE_SIZE
    c.free()


@pytest.mark.anyio
@pytest.mark.parametrize(("bad", "final"), [(None, 0), (1, 0), (2, -errno.EINVAL)])
async def test_an_async_tfm_runs_the_chain_one_request_after_another(
        fake: FakeAsyncDriver, bad: int | None, final: int) -> None:
    """v6.15 acomp_do_req_chain on an algorithm without CRYPTO_ALG_REQ_CHAIN: the submission
    answers -EBUSY (the request went asynchronous), each completion runs the next request
    (acomp_reqchain_done -> acomp_reqchain_finish), and the head's own callback, restored,
    gets the LAST request's status; each request's status is in its err."""
    c = _Chain(_alloc("fake-lz4"))
    assert not c.tfm.alg.cra_flags & CRYPTO_ALG_REQ_CHAIN
    head = c.add(PAGES[0])
    wait = acomp.CryptoWait()
    acomp.acomp_request_set_callback(head, CRYPTO_TFM_REQ_MAY_BACKLOG, acomp.crypto_req_done,
                                     wait)
    rest = [c.add(PAGES[i], dst=i != bad) for i in (1, 2)]
    for r in rest:
        acomp.acomp_request_chain(r, head)
    ret = acomp.crypto_acomp_compress(head)
    assert ret == -errno.EBUSY
    assert head.in_flight
    assert await acomp.crypto_wait_req(ret, wait, 30) == final
    want = [0, 0, 0]
    if bad is not None:
        want[bad] = -errno.EINVAL
    assert [r.err for r in c.reqs] == want
    assert head.complete is acomp.crypto_req_done  # acomp_restore_req
    assert head.data is wait
    assert not any(r.in_flight for r in c.reqs)
    for i, r in enumerate(c.reqs):
        if not r.err:
            assert lz4.block.decompress(c.output(i), uncompressed_size=PAGE_SIZE) == PAGES[i]
    assert fake.wait_idle()
    assert len([e for e in fake.events if e[0] == "submit"]) >= 3 - (bad is not None)
    c.free()


@pytest.mark.anyio
async def test_a_chain_without_backlog_still_completes(fake: FakeAsyncDriver) -> None:
    """v6.15 acomp_do_req_chain answers -EBUSY for a chain that went asynchronous even when the
    head has no MAY_BACKLOG: the head stays in flight until its callback, which does come."""
    c = _Chain(_alloc("fake-lz4"))
    head = c.add(PAGES[0])
    wait = acomp.CryptoWait()
    acomp.acomp_request_set_callback(head, 0, acomp.crypto_req_done, wait)
    acomp.acomp_request_chain(c.add(PAGES[1]), head)
    ret = acomp.crypto_acomp_compress(head)
    assert ret == -errno.EBUSY
    assert head.in_flight  # not "refused": the chain runs
    assert await acomp.crypto_wait_req(ret, wait, 30) == 0
    assert [r.err for r in c.reqs] == [0, 0]
    assert fake.wait_idle()
    c.free()


def test_a_synchronous_chain_on_an_async_tfm_runs_nondma_on_the_fallback(
        fake: FakeAsyncDriver) -> None:
    """v6.15 acomp_do_one_req: a NONDMA request of the chain runs on tfm->fb at once; when all
    of them do, the chain completes synchronously with the last one's status."""
    c = _Chain(_alloc("fake-lz4"))
    for i in range(3):
        req = c.add(PAGES[i])
        acomp.acomp_request_set_src_nondma(req, PAGES[i], PAGE_SIZE)
        if i:
            acomp.acomp_request_chain(req, c.reqs[0])
    submits = len([e for e in fake.events if e[0] == "submit"])
    assert acomp.crypto_acomp_compress(c.reqs[0]) == 0
    assert [r.err for r in c.reqs] == [0, 0, 0]
    assert len([e for e in fake.events if e[0] == "submit"]) == submits  # all on lz4-scomp
    for i in range(3):
        assert lz4.block.decompress(c.output(i), uncompressed_size=PAGE_SIZE) == PAGES[i]
    c.free()


def test_a_request_chained_twice_or_in_flight_is_reported(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Chaining a request already on the list, or the head itself, is the kernel's list
    corruption: reported (acomp.sched), the list left alone."""
    reports: list[str] = []
    monkeypatch.setattr(acomp.sched, "_bug", lambda kind, msg: reports.append(msg))
    c = _Chain(_alloc("lz4-scomp"))
    head, req = c.add(PAGES[0]), c.add(PAGES[1])
    acomp.acomp_request_chain(req, head)
    acomp.acomp_request_chain(req, head)
    acomp.acomp_request_chain(head, head)
    assert len(reports) == 2
    assert head.chain == [req]
    c.free()


def test_req_virt_sends_nondma_requests_to_the_driver_from_6_16() -> None:
    """v6.16 crypto_acomp_compress: crypto_acomp_req_virt(tfm) -> the algorithm gets the
    request as it is, NONDMA included (no fallback); without the flag the fallback takes it."""
    for virt in (False, True):
        fake = FakeAsyncDriver(name="lz4", driver="fake-lz4")
        if virt:
            fake.cra_flags |= CRYPTO_ALG_REQ_VIRT
        with fake:
            c = _Chain(_alloc("fake-lz4", "6.16"))
            req = c.add(PAGES[0])
            acomp.acomp_request_set_src_nondma(req, PAGES[0], PAGE_SIZE)
            wait = acomp.CryptoWait()
            acomp.acomp_request_set_callback(req, CRYPTO_TFM_REQ_MAY_BACKLOG,
                                             acomp.crypto_req_done, wait)
            ret = acomp.crypto_acomp_compress(req)
            assert acomp.crypto_wait_req_sync(ret, wait, 30) == 0
            assert (ret == 0) is not virt  # the fallback is synchronous, the device is not
            assert lz4.block.decompress(c.output(0), uncompressed_size=PAGE_SIZE) == PAGES[0]
            assert fake.wait_idle()
            c.free()
    scomp = _alloc("lz4-scomp", "6.16")
    assert scomp.alg.cra_flags & CRYPTO_ALG_REQ_VIRT  # scomp_prepare_alg
    acomp.crypto_free_acomp(scomp)


def test_the_request_size_is_cra_reqsize_from_6_16() -> None:
    """v6.16 moved the request size to cra_reqsize (acomp_alg.reqsize removed): a transform
    takes reqsize before, cra_reqsize from 6.16 on; the request context has that size."""

    class Sized(FakeAsyncDriver):
        reqsize = 24
        cra_reqsize = 40

    with Sized(name="lz4", driver="sized-lz4"):  # its v6.15+ fallback: lz4-scomp
        for version, size in (("6.14", 24), ("6.15", 24), ("6.16", 40), ("7.0", 40)):
            tfm = _alloc("sized-lz4", version)
            req = acomp.acomp_request_alloc(tfm)
            assert req is not None
            assert (tfm.reqsize, len(req.ctx)) == (size, size), version
            acomp.acomp_request_free(req)
            acomp.crypto_free_acomp(tfm)
