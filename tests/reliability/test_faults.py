"""Fault injection: consumers react to what ``faulty(...)`` injects as the kernel's do.

Kernel counterpart: what a consumer of an asynchronous driver must survive (``-EIO``,
``-ENOMEM``, ``-EBUSY`` with and without ``CRYPTO_TFM_REQ_MAY_BACKLOG``, completions from
another context, lost or doubled completions, corrupted output). The Python layer turns each
into a typed error or a timeout, never a hang; a consumer that verifies never takes corrupted
output for correct data; zswap (below) counts ``reject_compress_fail`` and keeps the page on the
swap device, and with a per-entry checksum turns a corrupting compressor into a counted
``decompress_fail``.
"""

from __future__ import annotations

import errno
import threading
import zlib
from collections.abc import Iterator

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

import acomp
from acomp import corpus, faulty, sched
from acomp.testing import FakeAsyncDriver, Step
from zswap import PhysMem, SwapArea, SwapDevice
from zswap.integrity import ChecksumZswap

pytestmark = pytest.mark.anyio

PAGE = acomp.PAGE_SIZE
PLAN = "faulty(lz4)"  # the plan of every faulty(...) instance around an lz4 driver
#: faulty around lz4-scomp (synchronous inner) and around the best lz4 (lz4-opencl where an
#: OpenCL device exists, whose completions come from the device's thread).
INNERS = [
    pytest.param("faulty(lz4-scomp)", id="scomp"),
    pytest.param("faulty(lz4)", id="best", marks=[pytest.mark.gpu, pytest.mark.skipif(
        not acomp.crypto_has_acomp("lz4-opencl"), reason="same as scomp without lz4-opencl")]),
]
PAGES = [p.tobytes() for p in corpus.pages(64, seed=11)]


def _lz4(data: bytes) -> bytes:
    import lz4.block

    return bytes(lz4.block.compress(data, store_size=False))


@pytest.fixture(autouse=True)
def _clean_plan() -> Iterator[None]:
    faulty.set_plan(PLAN, faulty.FaultPlan())
    faulty.stats(PLAN).injected.clear()
    yield
    faulty.set_plan(PLAN, faulty.FaultPlan())
    assert not sched.reports, [r.title for r in sched.reports]


# ---------------------------------------------------------------------------------------------
# The Python layer: every fault a typed error or a timeout
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", INNERS)
@pytest.mark.parametrize(("err", "exc"), [(-errno.EIO, acomp.DeviceError),
                                          (-errno.ENOMEM, acomp.DeviceError)])
async def test_injected_errors_are_typed(name: str, err: int, exc: type[Exception]) -> None:
    faulty.set_plan(PLAN, error=1.0, errors=(err,))
    async with acomp.open(name, timeout=5) as c:
        with anyio.fail_after(10):
            with pytest.raises(exc) as ei:
                await c.compress(PAGES[0])
            assert ei.value.errno == err  # type: ignore[attr-defined]
            with pytest.raises(exc):
                await c.decompress(b"\x50hello", PAGE)
        faulty.set_plan(PLAN, error=0.0)
        assert await c.decompress(await c.compress(PAGES[1]), PAGE) == PAGES[1]
    assert faulty.stats(PLAN).injected["error"] == 2


@pytest.mark.parametrize("name", INNERS)
async def test_missing_completion_is_a_timeout_and_the_request_stays_with_the_driver(
    name: str,
) -> None:
    faulty.set_plan(PLAN, missing=1.0)
    async with acomp.open(name, timeout=0.05) as c:
        with anyio.fail_after(5):
            for _ in range(3):
                with pytest.raises(acomp.DeviceError) as ei:
                    await c.compress(PAGES[0])
                assert ei.value.errno == -errno.ETIMEDOUT
        assert c.statistics().requests_in_flight == 0
        faulty.set_plan(PLAN, missing=0.0)
        assert await c.decompress(await c.compress(PAGES[2]), PAGE) == PAGES[2]
    # closing did not free the three requests the driver still owns (that would be reported)
    assert faulty.stats(PLAN).injected["missing"] == 3


@pytest.mark.parametrize("name", INNERS)
async def test_completion_later_than_the_timeout_is_harmless(name: str) -> None:
    """The request timed out, the device completes it later: nobody is woken wrongly, the
    next operations get their own results."""
    later = threading.Event()  # the device's completion comes when the test says, not before
    faulty.set_plan(PLAN, delay=1.0, hold=later)
    async with acomp.open(name, timeout=0.02) as c:
        with pytest.raises(acomp.DeviceError) as ei:
            await c.compress(PAGES[3])
        assert ei.value.errno == -errno.ETIMEDOUT  # type: ignore[attr-defined]
        faulty.set_plan(PLAN, delay=0.0, hold=None)
        later.set()  # the late completion arrives
        assert await anyio.to_thread.run_sync(faulty.stats(PLAN).wait_for, "released", 1, 30)
        # The next operations wait as long as they need (the device may be slow on a loaded
        # machine): what matters is that each gets its own result, not the stale one.
        c.timeout = 30
        for p in PAGES[4:12]:
            assert await c.decompress(await c.compress(p), PAGE) == p


@pytest.mark.parametrize("name", INNERS)
async def test_duplicate_completions_never_return_another_operations_data(name: str) -> None:
    """Every completion doubled: each result is still the one of its own request."""
    faulty.set_plan(PLAN, duplicate=1.0)
    async with acomp.open("lz4-scomp") as g:
        blobs = [await g.compress(p) for p in PAGES[:40]]
    async with acomp.open(name, timeout=5) as c:
        with anyio.fail_after(20):
            for p, b in zip(PAGES[:40], blobs, strict=True):
                assert await c.decompress(b, PAGE) == p
                assert lz_decode(await c.compress(p)) == p
            for _ in range(1000):  # the last duplicate is on its way from its thread
                if faulty.stats(PLAN).injected["duplicate"] == 80:
                    break
                await anyio.sleep(0.001)
            assert faulty.stats(PLAN).injected["duplicate"] == 80


@pytest.mark.parametrize("name", INNERS)
async def test_mixed_faults_typed_errors_or_verified_data(name: str) -> None:
    """Errors, -EBUSY (backlogged), delays, synchronous completions, duplicates, lost
    completions and corruption, at random, on compress and decompress. A consumer that keeps a
    CRC of each page and checks it after decompression (without the original at hand) never
    takes a corrupted page for a good one; every operation ends, none hangs."""
    faulty.set_plan(PLAN, error=0.08, busy=0.2, delay=0.2, delay_s=(0.0005, 0.003), sync=0.1,
                    duplicate=0.1, missing=0.04, corrupt=0.1, seed=7)
    pages = PAGES * 2
    typed = detected = good = 0
    async with acomp.open(name, timeout=0.2) as c, acomp.open("lz4-scomp") as g:
        for i, page in enumerate(pages):
            crc = zlib.crc32(page)
            with anyio.fail_after(10):
                try:
                    if i % 2:
                        blob = await c.compress(page)
                        out = await g.decompress(blob, PAGE)
                    else:
                        out = await c.decompress(await g.compress(page), PAGE)
                except acomp.AcompError:
                    typed += 1  # an injected error, a timeout, or a corrupt block refused
                    continue
            if zlib.crc32(out) != crc:
                detected += 1
                continue
            assert out == page  # accepted by its CRC: it is the page
            good += 1
    inj = faulty.stats(PLAN).injected
    assert typed + detected + good == len(pages)
    assert typed >= inj.get("error", 0) + inj.get("missing", 0)
    assert inj.get("corrupt", 0) >= detected > 0
    assert good > len(pages) // 2
    assert inj.get("busy_backlogged", 0) > 0
    assert inj.get("duplicate", 0) > 0


# ---------------------------------------------------------------------------------------------
# -EBUSY storms, with and without MAY_BACKLOG (the kernel API)
# ---------------------------------------------------------------------------------------------


def _request(tfm: acomp.CryptoAcomp, page: bytes, out: bytearray, flags: int,
             wait: acomp.CryptoWait) -> acomp.AcompReq:
    req = acomp.acomp_request_alloc(tfm)
    assert req is not None
    acomp.acomp_request_set_params(req, acomp.sg_init_one(page), acomp.sg_init_one(out),
                                   len(page), len(out))
    acomp.acomp_request_set_callback(req, flags, acomp.crypto_req_done, wait)
    return req


async def test_busy_storm_with_backlog_completes_everything() -> None:
    faulty.set_plan(PLAN, busy=0.9, delay=0.3, delay_s=(0.001, 0.004), seed=3)
    tfm = acomp.crypto_alloc_acomp("faulty(lz4-scomp)")
    try:
        outs = [bytearray(PAGE + 64) for _ in PAGES]
        waits = [acomp.CryptoWait() for _ in PAGES]
        reqs = [_request(tfm, p, o, acomp.CRYPTO_TFM_REQ_MAY_BACKLOG, w)
                for p, o, w in zip(PAGES, outs, waits, strict=True)]
        rets = [acomp.crypto_acomp_compress(r) for r in reqs]
        assert rets.count(-errno.EBUSY) > len(PAGES) // 2  # backlogged, not refused
        assert set(rets) == {-errno.EBUSY, -errno.EINPROGRESS}
        with anyio.fail_after(10):
            for r, ret, w, o, p in zip(reqs, rets, waits, outs, PAGES, strict=True):
                assert await acomp.crypto_wait_req(ret, w) == 0
                assert acomp.crypto_has_acomp("lz4-scomp")
                assert lz_decode(bytes(o[: r.dlen])) == p
                acomp.acomp_request_free(r)
    finally:
        acomp.crypto_free_acomp(tfm)


def lz_decode(blob: bytes) -> bytes:
    import lz4.block

    return bytes(lz4.block.decompress(blob, uncompressed_size=PAGE))


async def test_busy_storm_without_backlog_is_refusal_and_retry() -> None:
    """Without MAY_BACKLOG, -EBUSY means "not taken": the request is the caller's again, and a
    kernel-style consumer resubmits it. One that waited on it instead would wait forever: the
    timeout shows that as -ETIMEDOUT."""
    faulty.set_plan(PLAN, busy=0.8, seed=4)
    tfm = acomp.crypto_alloc_acomp("faulty(lz4-scomp)")
    try:
        tries = 0
        with anyio.fail_after(20):
            for p in PAGES[:30]:
                out = bytearray(PAGE + 64)
                wait = acomp.CryptoWait()
                req = _request(tfm, p, out, 0, wait)
                while True:
                    tries += 1
                    ret = acomp.crypto_acomp_compress(req)
                    if ret != -errno.EBUSY:
                        break
                    assert not req.in_flight  # refused: ours to resubmit or free
                    await anyio.lowlevel.checkpoint()
                assert await acomp.crypto_wait_req(ret, wait) == 0
                assert lz_decode(bytes(out[: req.dlen])) == p
                acomp.acomp_request_free(req)
        assert tries > 30
        assert faulty.stats(PLAN).injected["busy_rejected"] == tries - 30
        # The hazard: treating a refused -EBUSY like a backlogged one.
        faulty.set_plan(PLAN, busy=1.0)
        wait = acomp.CryptoWait()
        req = _request(tfm, PAGES[0], bytearray(PAGE + 64), 0, wait)
        with anyio.fail_after(5):
            ret = await acomp.crypto_wait_req(acomp.crypto_acomp_compress(req), wait,
                                              timeout=0.05)
        assert ret == -errno.ETIMEDOUT
        acomp.acomp_request_free(req)  # it was never in flight: freeing it is fine
    finally:
        acomp.crypto_free_acomp(tfm)


@pytest.mark.parametrize("backlog", [True, False], ids=["backlog", "no-backlog"])
async def test_full_queue_storm_on_a_queued_driver(backlog: bool) -> None:
    """A driver with a queue of 4 (the crypto engine's rules): 64 requests at once. With
    MAY_BACKLOG the overflow is backlogged (-EBUSY) and completes; without it is refused with
    -ENOSPC and never completed (never in flight, freed by the caller)."""
    flags = acomp.CRYPTO_TFM_REQ_MAY_BACKLOG if backlog else 0
    # The first four are held until every submission was made: the queue is full for the
    # other 60, however slowly this loop runs (with a latency one could complete meanwhile).
    with FakeAsyncDriver([Step(latency=None)] * 4, driver="fake-storm",
                         default=Step(latency=0.002), max_queue=4) as fake:
        tfm = acomp.crypto_alloc_acomp("fake-storm")
        try:
            outs = [bytearray(PAGE + 64) for _ in PAGES]
            waits = [acomp.CryptoWait() for _ in PAGES]
            reqs = [_request(tfm, p, o, flags, w)
                    for p, o, w in zip(PAGES, outs, waits, strict=True)]
            rets = [acomp.crypto_acomp_compress(r) for r in reqs]
            assert rets[:4] == [-errno.EINPROGRESS] * 4
            if backlog:
                assert set(rets[4:]) == {-errno.EBUSY}
            else:
                assert set(rets[4:]) == {-errno.ENOSPC}
            assert fake.release() == 4
            with anyio.fail_after(30):
                for r, ret, w, o, p in zip(reqs, rets, waits, outs, PAGES, strict=True):
                    if ret == -errno.ENOSPC:
                        assert not r.in_flight
                    else:
                        assert await acomp.crypto_wait_req(ret, w) == 0
                        assert lz_decode(bytes(o[: r.dlen])) == p
                    acomp.acomp_request_free(r)
            st = fake.statistics()
            assert st.completed == (64 if backlog else 4)
            assert st.rejected == (0 if backlog else 60)
        finally:
            acomp.crypto_free_acomp(tfm)


# ---------------------------------------------------------------------------------------------
# Completions from another thread
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*INNERS, pytest.param("fake-thread", id="fake")])
async def test_completions_from_other_threads_wake_the_waiter(name: str) -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    def done(data: acomp.CryptoWait, err: int) -> None:
        seen.append(threading.get_ident())
        acomp.crypto_req_done(data, err)

    fake = None
    if name == "fake-thread":
        fake = FakeAsyncDriver(driver="fake-thread", default=Step(latency=0.001))
        fake.register()
    tfm = acomp.crypto_alloc_acomp(name)
    try:
        with anyio.fail_after(10):
            for p in PAGES[:16]:
                out = bytearray(PAGE + 64)
                wait = acomp.CryptoWait()
                req = _request(tfm, p, out, acomp.CRYPTO_TFM_REQ_MAY_BACKLOG, wait)
                acomp.acomp_request_set_callback(req, acomp.CRYPTO_TFM_REQ_MAY_BACKLOG, done,
                                                 wait)
                assert await acomp.crypto_wait_req(acomp.crypto_acomp_compress(req), wait) == 0
                assert lz_decode(bytes(out[: req.dlen])) == p
                acomp.acomp_request_free(req)
    finally:
        acomp.crypto_free_acomp(tfm)
        if fake is not None:
            fake.unregister()
    assert len(seen) == 16
    assert loop_thread not in seen


# ---------------------------------------------------------------------------------------------
# zswap: rejections counted, pages kept on the device, corruption caught by the checksum
# ---------------------------------------------------------------------------------------------

#: Pages zswap compresses into the pool: not same-filled, and compressible.
ZPAGES = [p for p in PAGES if p[:8] * 512 != p and len(_lz4(p)) < 3072]


def _zswap(compressor: str, checksum: bool, zpool: str = "zsmalloc") -> tuple[
        ChecksumZswap, SwapArea, PhysMem]:
    mem = PhysMem(4096, name="faults")
    zs = ChecksumZswap(mem=mem, compressor=compressor, zpool=zpool, checksum=checksum,
                       shrinker_enabled=True)
    return zs, SwapArea(SwapDevice(None, 512), zs), mem


def _close(zs: ChecksumZswap, area: SwapArea, mem: PhysMem) -> None:
    area.close()  # swapoff: invalidate_area
    assert zs.stored_pages == zs.pool_total_size == 0
    assert mem.nr_used_pages == 0
    zs.close()


@pytest.mark.parametrize("name", INNERS)
async def test_zswap_compress_fail_keeps_the_page_on_the_device(name: str) -> None:
    """An accelerator failing half the stores: zswap counts reject_compress_fail, the swap
    layer writes those pages to the swap file, and every page comes back."""
    zs, area, mem = _zswap(name, checksum=False)
    faulty.set_plan(PLAN, error=0.5, errors=(-errno.EIO, -errno.ENOMEM), seed=9)
    with anyio.fail_after(30):
        offsets = [await area.swap_out(p) for p in ZPAGES]
    faulty.set_plan(PLAN, error=0.0)
    injected = faulty.stats(PLAN).injected["error"]
    st = area.statistics()
    assert 0 < injected < len(ZPAGES)
    assert zs.reject_compress_fail == injected
    assert st.device_writes == injected  # exactly the rejected ones went to the file
    assert st.zswap_stores == len(ZPAGES) - injected == zs.stored_pages
    for off, p in zip(offsets, ZPAGES, strict=True):
        out = bytearray(PAGE)
        assert await area.swap_in(off, out) == 0
        assert out == p
    assert area.statistics().device_reads == injected
    _close(zs, area, mem)


@pytest.mark.parametrize("name", INNERS)
@pytest.mark.parametrize("checksum", [False, True], ids=["kernel", "checksum"])
async def test_zswap_corrupting_compressor(name: str, checksum: bool) -> None:
    """Every compressed page has a byte flipped. The kernel's zswap (no checksum) hands some
    of them back as wrong data; with the checksum each is a counted decompress_fail and the
    swap-in fails with -EIO: never wrong data. Writeback never writes a corrupted page."""
    zs, area, mem = _zswap(name, checksum)
    faulty.set_plan(PLAN, corrupt=1.0, seed=10)
    offsets = [await area.swap_out(p) for p in ZPAGES]
    faulty.set_plan(PLAN, corrupt=0.0)
    corrupted = faulty.stats(PLAN).injected["corrupt"]
    assert corrupted == zs.stored_pages == len(ZPAGES)
    wrong = failed = 0
    for off, p in zip(offsets[: len(offsets) // 2], ZPAGES, strict=False):
        out = bytearray(PAGE)
        ret = await area.swap_in(off, out)
        if ret == 0:
            wrong += out != p
        else:
            assert ret == -errno.EIO
            failed += 1
    # the other half through writeback: a failed decompression is not written to the file
    await zs.shrinker_scan(len(offsets))
    for off, p in zip(offsets[len(offsets) // 2:], ZPAGES[len(offsets) // 2:], strict=True):
        if not area.in_zswap(off):  # written back: the file has it
            out = bytearray(PAGE)
            assert await area.swap_in(off, out) == 0
            wrong += out != p
    if checksum:
        assert wrong == 0
        assert zs.checksum_fail > 0
        assert zs.decompress_fail >= failed == len(offsets) // 2
        assert zs.written_back_pages == 0
    else:
        assert wrong > 0  # the exposure the checksum closes
    _close(zs, area, mem)


async def test_zswap_duplicate_completions_with_checksum_never_wrong_data() -> None:
    """A driver that completes every request twice. zswap reuses its per-CPU request and wait
    as the kernel does; a stale completion ends a later wait early. With the checksum no page
    comes back wrong (a mismatch is -EIO)."""
    sched.config.lock_debug = "warn"  # the use-after-free reports come from device threads
    zs, area, mem = _zswap("faulty(lz4-scomp)", checksum=True)
    faulty.set_plan(PLAN, duplicate=1.0, seed=12)
    with anyio.fail_after(30):
        offsets = [await area.swap_out(p) for p in ZPAGES]
        wrong = 0
        for off, p in zip(offsets, ZPAGES, strict=True):
            out = bytearray(PAGE)
            if await area.swap_in(off, out) == 0:
                wrong += out != p
    faulty.set_plan(PLAN, duplicate=0.0)
    await anyio.sleep(0.05)  # let the last completions land
    assert wrong == 0
    sched.reports.clear()
    _close(zs, area, mem)
