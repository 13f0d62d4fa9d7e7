"""Resource bounds: the crypto engine's queue, the OpenCL driver's pinned buffers, the zswap
pool against its limit. The figures these bounds give are in docs/reliability.md.

- Engine: at most ``max_qlen`` requests queued, plus those backlogged (one per submitter that
  got ``-EBUSY`` and waits, as the kernel's callers do); batches of at most ``batch_limit``;
  at most ``max_in_flight`` batches handed to the driver at once.
- lz4-opencl: each slot's pinned staging (a device buffer and a mapped host buffer, for the
  input and for the output of one launch) is sized for at most ``max_batch`` items of one
  page, whatever the batch; only used slots hold any; nothing grows past that.
- zswap: the pool exceeds ``max_pool_percent`` by at most one zpool allocation per store in
  flight at the moment it crossed (one zspage of up to ``chain_size`` pages for zsmalloc): with
  a synchronous compressor a store is atomic and the overshoot is one allocation.
"""

from __future__ import annotations

import errno
import random
import threading
from collections.abc import Iterator

import anyio
import lz4.block
import numpy as np
import pytest

import acomp
from acomp import corpus, faulty, sched
from acomp.acompress import AcompReq
from acomp.engine import CryptoEngine
from zswap import PhysMem, Zswap

pytestmark = pytest.mark.anyio

PAGE = acomp.PAGE_SIZE
PLAN = "faulty(lz4)"


# ---------------------------------------------------------------------------------------------
# The crypto engine
# ---------------------------------------------------------------------------------------------


class Recorder:
    """A driver for the engine: records each batch, finishes it later from a thread."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.batches: list[int] = []
        self.max_in_flight = 0
        self.lock = threading.Lock()

    def do_batch(self, engine: CryptoEngine, batch: list[AcompReq]) -> None:
        st = engine.statistics()
        with self.lock:
            self.batches.append(len(batch))
            self.max_in_flight = max(self.max_in_flight, st.in_flight_batches)
        threading.Timer(self.delay, self.finish, (engine, batch)).start()

    @staticmethod
    def finish(engine: CryptoEngine, batch: list[AcompReq]) -> None:
        for r in batch:
            engine.finalize(r, 0)
        engine.batch_done()


@pytest.fixture
def tfm() -> Iterator[acomp.CryptoAcomp]:
    t = acomp.crypto_alloc_acomp("lz4-scomp")  # only owns the requests here
    yield t
    acomp.crypto_free_acomp(t)


@pytest.mark.parametrize(("max_qlen", "batch_limit", "max_in_flight"),
                         [(1, 1, 1), (4, 2, 2), (10, 8, 3)])
async def test_engine_queue_and_batches_stay_bounded(
    tfm: acomp.CryptoAcomp, max_qlen: int, batch_limit: int, max_in_flight: int
) -> None:
    rec = Recorder(delay=0.002)
    eng = CryptoEngine("bounds", rec.do_batch, max_qlen=max_qlen, batch_limit=batch_limit,
                       max_in_flight=max_in_flight)
    eng.start()
    submitters = 12
    worst = [0, 0]  # queued beyond the backlog, backlogged

    async def submitter(k: int) -> None:
        for _ in range(15):
            req = AcompReq(tfm)
            wait = acomp.CryptoWait()
            acomp.acomp_request_set_callback(req, acomp.CRYPTO_TFM_REQ_MAY_BACKLOG,
                                             acomp.crypto_req_done, wait)
            req.in_flight = True
            ret = eng.transfer(req)
            st = eng.statistics()
            worst[0] = max(worst[0], st.queued - st.backlogged)
            worst[1] = max(worst[1], st.backlogged)
            assert ret in (-errno.EINPROGRESS, -errno.EBUSY)
            assert await acomp.crypto_wait_req(ret, wait) == 0

    try:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for k in range(submitters):
                    tg.start_soon(submitter, k)
    finally:
        eng.exit()
    st = eng.statistics()
    assert st.requests == submitters * 15
    assert worst[0] <= max_qlen
    assert worst[1] <= submitters  # each waiting submitter has at most one backlogged
    assert max(rec.batches) <= batch_limit
    assert rec.max_in_flight <= max_in_flight
    if max_qlen < submitters:
        assert worst[1] > 0  # the backlog was used: the bound was tested, not idle


async def test_engine_without_backlog_never_holds_more_than_max_qlen(
    tfm: acomp.CryptoAcomp,
) -> None:
    rec = Recorder(delay=0.01)
    eng = CryptoEngine("bounds", rec.do_batch, max_qlen=8, batch_limit=4, max_in_flight=2)
    eng.start()
    waits = []
    refused = 0
    try:
        for _ in range(200):  # a flood from one submitter that never waits
            req = AcompReq(tfm)
            wait = acomp.CryptoWait()
            acomp.acomp_request_set_callback(req, 0, acomp.crypto_req_done, wait)
            ret = eng.transfer(req)
            assert eng.statistics().queued <= 8
            if ret == -errno.ENOSPC:
                refused += 1
            else:
                assert ret == -errno.EINPROGRESS
                waits.append(wait)
        with anyio.fail_after(10):
            for w in waits:
                assert await acomp.crypto_wait_req(-errno.EINPROGRESS, w) == 0
    finally:
        eng.exit()
    assert refused == eng.statistics().rejected > 0
    assert len(waits) + refused == 200
    # what the engine held at most: 8 queued + 2 batches of 4 on the driver
    assert rec.max_in_flight <= 2
    assert max(rec.batches) <= 4


# ---------------------------------------------------------------------------------------------
# lz4-opencl's pinned staging buffers
# ---------------------------------------------------------------------------------------------


def _alloc_bound(nbytes: int) -> int:
    """What a staging buffer of `nbytes` may take: powers of two (at least 64 KiB) up to
    8 MiB, then 8 MiB multiples, i.e. at most twice the need below 8 MiB, need + 8 MiB above."""
    return max(1 << 16, min(2 * nbytes, nbytes + (8 << 20)))


def launch_bound(n: int, page: int = PAGE) -> int:
    """Bytes one slot may pin for launches of `n` items: input (8 bytes of length and
    capacity per item + a row of up to lz4_bound(page)) and output (4 bytes of size + a row),
    each as a device buffer and a mapped host buffer."""
    pitch = -(-(page + page // 255 + 16) // 16) * 16
    return 2 * (_alloc_bound(8 * n + 16 + n * pitch) + _alloc_bound(4 * n + 16 + n * pitch))


@pytest.mark.gpu
@pytest.mark.skipif(not acomp.crypto_has_acomp("lz4-opencl"), reason="no OpenCL device")
def test_opencl_pinned_buffers_are_bounded_by_max_batch() -> None:
    from acomp_drivers.lz4_opencl.device import Lz4Device

    dev = Lz4Device(page_size=PAGE, max_batch=128, slots=3)

    def pinned() -> tuple[int, int]:
        """(bytes pinned, slots holding any): each buffer counted twice (device + host)."""
        per_slot = [sum(2 * b[0] for b in s._bufs.values()) for s in dev._slots]
        return sum(per_slot), sum(1 for p in per_slot if p)

    try:
        pages = corpus.pages(1000, seed=21)
        assert pinned() == (0, 0)
        for n in (1, 64, 1000):  # 1000 items: eight launches of at most 128
            out, sizes = dev.compress(pages[:n])
            assert (sizes > 0).all()
            blocks = [out[i, : sizes[i]].tobytes() for i in range(n)]
            last = lz4.block.decompress(blocks[-1], uncompressed_size=PAGE)
            assert last == pages[n - 1].tobytes()
            width = max(len(b) for b in blocks)
            src = np.zeros((n, width), np.uint8)
            for i, b in enumerate(blocks):
                src[i, : len(b)] = np.frombuffer(b, np.uint8)
            back, bsizes = dev.decompress(src, sizes, PAGE)
            assert (bsizes == PAGE).all()
            assert np.array_equal(back[:, :PAGE], pages[:n])
            total, used = pinned()
            assert total <= used * launch_bound(min(n, dev.max_batch))
        # 128 items a launch: 1 MiB of input and 1 MiB of output staging, each twice, per
        # slot; a device that staged the 1000 items at once would pin 32 MiB a slot.
        assert pinned()[0] <= 3 * (4 << 20)
    finally:
        dev.close()


# ---------------------------------------------------------------------------------------------
# The zswap pool against its limit
# ---------------------------------------------------------------------------------------------


def _pages(n: int, seed: int) -> list[bytes]:
    """Distinct compressible pages (about 1.3 KiB of lz4 each: three a zspage)."""
    rng = random.Random(seed)
    base = (b"reliability " * 400)[:PAGE]
    return [rng.randbytes(1200) + base[1200:PAGE - 8] + i.to_bytes(8, "little")
            for i in range(n)]


@pytest.mark.parametrize(("zpool", "alloc_pages"), [("zsmalloc", 4), ("zbud", 1), ("z3fold", 1)])
@pytest.mark.parametrize("compressor", ["lz4-scomp", "faulty(lz4-scomp)"])
async def test_zswap_pool_overshoots_its_limit_by_at_most_one_batch(
    zpool: str, alloc_pages: int, compressor: str
) -> None:
    """Stores from 8 tasks on 4 CPUs into a pool limited to 5% of 2048 pages (102 pages).
    Sampled after every store, the pool never holds more than the limit plus one allocation
    per store that was in flight (8 with the asynchronous compressor, whose stores interleave
    between the limit check and zpool_malloc; 1 with a synchronous one)."""
    old = sched.nr_cpu_ids()
    sched.set_nr_cpu_ids(max(old, 4))
    faulty.set_plan(PLAN, delay=0.5, delay_s=(0.0005, 0.002), seed=5)
    mem = PhysMem(2048, name="bounds")
    zs = Zswap(mem=mem, compressor=compressor, zpool=zpool, max_pool_percent=5)
    zs.init(0)
    tasks = 8
    limit = 2048 * 5 // 100
    peak = [0]
    pages = _pages(400, 1)

    async def storer(t: int) -> None:
        sched.new_task(f"bounds/{t}")
        with sched.on_cpu(t % 4):
            for i in range(t, len(pages), tasks):
                await zs.store(0, i, pages[i])
                peak[0] = max(peak[0], mem.nr_used_pages)

    try:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for t in range(tasks):
                    tg.start_soon(storer, t)
        in_flight = tasks if compressor.startswith("faulty") else 1
        assert zs.pool_limit_hit > 0  # the limit was reached: the bound was exercised
        assert peak[0] <= limit + in_flight * alloc_pages, (peak[0], limit)
        assert -(-zs.pool_total_size // PAGE) == mem.nr_used_pages
    finally:
        faulty.set_plan(PLAN, faulty.FaultPlan())
        zs.invalidate_area(0)
        zs.close()
        sched.set_nr_cpu_ids(old)
    assert mem.nr_used_pages == 0
