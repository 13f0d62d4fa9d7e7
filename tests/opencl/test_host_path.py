"""lz4-opencl's host path: the synchronous single-request path, the small-request fallback,
the bounded pinned pool, zero-copy batch buffers and device-side compaction.

Runs on PoCL here (marked gpu); pages are few, PoCL's kernels are slow.
"""

from __future__ import annotations

import errno
import gc
import threading
from collections.abc import Iterator
from typing import Any

import lz4.block
import numpy as np
import pytest

import acomp
from acomp import corpus
from acomp.scatterlist import sg_init_one
from acomp.wait import CryptoWait, crypto_req_done

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not acomp.crypto_has_acomp("lz4-opencl"), reason="no OpenCL device"),
]

from acomp_drivers.lz4_opencl import Lz4OpenCL, set_fallback  # noqa: E402
from acomp_drivers.lz4_opencl.device import (  # noqa: E402
    WAIT_MODES,
    Lz4Device,
    bytes_lease_of,
    lease_of,
)

PAGE = 4096
PAGES = corpus.pages(8, seed=15)


@pytest.fixture
def tfm() -> Iterator[acomp.CryptoAcomp]:
    t = acomp.crypto_alloc_acomp("lz4-opencl")
    yield t
    acomp.crypto_free_acomp(t)


class Req:
    """One request with its own buffers and a completion that counts callbacks."""

    def __init__(self, tfm: acomp.CryptoAcomp, src: bytes, dlen: int) -> None:
        self.req = acomp.acomp_request_alloc(tfm)
        assert self.req is not None
        self.src, self.dst = src, bytearray(dlen)
        self.wait = CryptoWait()
        acomp.acomp_request_set_params(self.req, sg_init_one(self.src), sg_init_one(self.dst),
                                       len(src), dlen)
        acomp.acomp_request_set_callback(self.req, 0, crypto_req_done, self.wait)

    def compress(self) -> int:
        return acomp.crypto_acomp_compress(self.req)

    def decompress(self) -> int:
        return acomp.crypto_acomp_decompress(self.req)

    def out(self) -> bytes:
        return bytes(self.dst[: self.req.dlen])

    def free(self) -> None:
        acomp.acomp_request_free(self.req)


# ---------------------------------------------------------------------------------------------
# A lone request on an idle device completes in the submitting thread
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", WAIT_MODES)
def test_lone_request_completes_inline(alg: Lz4OpenCL, tfm: acomp.CryptoAcomp,
                                       monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    monkeypatch.setattr(alg, "wait", mode)
    set_fallback(tfm, False)
    before = alg.engine.statistics()
    page = PAGES[0].tobytes()
    c = Req(tfm, page, 5000)
    # synchronous: 0 at once, the callback is not called, the engine counts one inline batch
    assert c.compress() == 0
    assert c.wait.done == 0
    assert lz4.block.decompress(c.out(), uncompressed_size=PAGE) == page
    blk = c.out()
    d = Req(tfm, blk, PAGE)
    assert d.decompress() == 0
    assert d.out() == page
    after = alg.engine.statistics()
    assert after.inline - before.inline == 2
    assert after.in_flight_batches == 0
    # errors come back synchronously too, with nothing written
    small = Req(tfm, page, 64)
    assert small.compress() == -errno.ENOSPC
    assert small.dst == bytearray(64)
    bad = Req(tfm, b"\xff" * 40, PAGE)
    assert bad.decompress() == -errno.EBADMSG
    short = Req(tfm, blk, 100)
    assert short.decompress() == -errno.ENOSPC
    for r in (c, d, small, bad, short):
        assert r.wait.done == 0
        r.free()


def test_busy_slots_hand_the_request_to_the_engine(alg: Lz4OpenCL,
                                                   tfm: acomp.CryptoAcomp) -> None:
    """Every device slot held (by batches): the request is queued, not run inline, and its
    callback completes it."""
    set_fallback(tfm, False)
    dev = alg.dev
    held = [dev._free.get() for _ in dev._slots]
    page = PAGES[1].tobytes()
    c = Req(tfm, page, 5000)
    try:
        assert dev.run_sync("compress", PAGES[:1], None, None, lambda *a: None) is None
        assert c.compress() == -errno.EINPROGRESS
        # the engine's batch waits in the device for a slot
        assert alg.engine.statistics().in_flight_batches == 1
        assert c.wait.done == 0
    finally:
        for s in held:
            dev._free.put(s)
    assert c.wait.wait_for_completion_sync(30)
    assert c.wait.err == 0
    assert lz4.block.decompress(c.out(), uncompressed_size=PAGE) == page
    c.free()


@pytest.mark.parametrize("mode", WAIT_MODES)
def test_run_sync_views_and_stages(mode: str) -> None:
    got: list[Any] = []
    with Lz4Device(max_batch=64) as dev:
        def consume(job: Any, sizes: Any, rows: Any) -> None:
            got.extend(rows[i, : sizes[i]].tobytes() for i in range(len(sizes)))

        job = dev.run_sync("compress", PAGES[:3], None, None, consume, wait=mode)
        assert job is not None
        assert job.done()
        assert job.kernel_ns > 0
        assert job.stages["wall"] >= job.stages["wait"] > 0
        assert [lz4.block.decompress(b, uncompressed_size=PAGE) for b in got] == [
            p.tobytes() for p in PAGES[:3]]
        with pytest.raises(ValueError, match="wait"):
            dev.run_sync("compress", PAGES[:1], None, None, consume, wait="spin")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="items"):
            dev.run_sync("compress", np.zeros((300, 64), np.uint8), None, None, consume)

        def boom(job: Any, sizes: Any, rows: Any) -> None:
            raise RuntimeError("consumer failed")

        with pytest.raises(RuntimeError, match="consumer"):
            dev.run_sync("compress", PAGES[:1], None, None, boom)
        assert dev._free.qsize() == len(dev._slots)  # the slot came back
    with pytest.raises(RuntimeError, match="closed"):
        dev.run_sync("compress", PAGES[:1], None, None, consume)


# ---------------------------------------------------------------------------------------------
# The small-request fallback (the transform's fb, lz4-scomp)
# ---------------------------------------------------------------------------------------------


def test_fallback_serves_small_requests(alg: Lz4OpenCL, tfm: acomp.CryptoAcomp) -> None:
    assert tfm.fb is not None
    assert acomp.crypto_acomp_driver_name(tfm.fb) == "lz4-scomp"
    set_fallback(tfm, True)
    assert alg.fallback_on(tfm)
    before = alg.engine.statistics()
    page = PAGES[2].tobytes()
    c = Req(tfm, page, 5000)
    assert c.compress() == 0
    d = Req(tfm, c.out(), PAGE)
    assert d.decompress() == 0
    assert d.out() == page
    assert alg.engine.statistics().requests == before.requests  # the device saw nothing
    assert c.req.tfm is tfm
    assert d.req.tfm is tfm
    c.free()
    d.free()


def test_fallback_switch_is_per_transform(alg: Lz4OpenCL, tfm: acomp.CryptoAcomp,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACOMP_OPENCL_FALLBACK", "1")
    other = acomp.crypto_alloc_acomp("lz4-opencl")
    try:
        assert alg.fallback_on(other)  # the module default for new transforms
        set_fallback(tfm, False)
        assert alg.fallback_on(other)
        assert not alg.fallback_on(tfm)
    finally:
        acomp.crypto_free_acomp(other)
    scomp = acomp.crypto_alloc_acomp("lz4-scomp")
    try:
        with pytest.raises(ValueError, match="not an lz4-opencl"):
            set_fallback(scomp, True)
    finally:
        acomp.crypto_free_acomp(scomp)


@pytest.mark.anyio
async def test_batch_below_break_even_uses_the_fallback(alg: Lz4OpenCL,
                                                        tfm: acomp.CryptoAcomp) -> None:
    n = 4
    assert n < alg.break_even
    for on in (True, False):
        set_fallback(tfm, on)
        before = alg.engine.statistics()
        res = await acomp.crypto_acomp_batch_compress(tfm, PAGES[:n])
        assert res.ok
        assert [lz4.block.decompress(b, uncompressed_size=PAGE) for b in res.tolist()] == [
            p.tobytes() for p in PAGES[:n]]
        if on:  # lz4-scomp, no device time; item by item it went to the fallback too
            assert res.kernel_ns == 0
            assert alg.engine.statistics().requests == before.requests
        else:
            assert res.kernel_ns > 0


# ---------------------------------------------------------------------------------------------
# The bounded pinned pool
# ---------------------------------------------------------------------------------------------


def _blocks(out: Any, sizes: Any) -> np.ndarray:
    """Compressed rows as one (n, widest block) array, for decompress."""
    arr = np.zeros((len(sizes), int(sizes.max())), np.uint8)
    for i, n in enumerate(sizes):
        arr[i, :n] = out[i, :n]
    return arr


def test_pinned_memory_stays_within_the_bound_and_is_returned_when_idle() -> None:
    limit, keep = 3 << 20, 1 << 16
    pages = corpus.pages(200, seed=16)
    with Lz4Device(max_batch=8192, slots=3, pinned_limit=limit, keep_pinned=keep,
                   idle_release_s=0.05) as dev:
        share = limit // 3
        seen: list[int] = []

        def watch(job: Any) -> None:
            seen.append(dev.pinned_bytes())

        job = dev.submit("compress", pages, None, None, watch)
        job.wait(60)
        assert job.launches > 1  # 200 pages do not fit one launch in a 1 MiB share
        assert job.sizes is not None
        assert job.out is not None
        assert (job.sizes > 0).all()
        blocks = _blocks(job.out, job.sizes)
        # wide rows (decompress from 8 KiB rows) shrink the launches further, same bound
        wide = np.zeros((200, 8192), np.uint8)
        wide[:, : blocks.shape[1]] = blocks
        back, bsizes = dev.decompress(wide, job.sizes, PAGE)
        assert (bsizes == PAGE).all()
        assert np.array_equal(back[:, :PAGE], pages)
        seen.append(dev.pinned_bytes())
        assert max(seen) <= limit
        assert all(s.pinned_bytes() <= share for s in dev._slots)
        # idle: the big buffers go back, what a single page uses may stay
        for _ in range(400):
            if dev.pinned_bytes() <= 4 * keep * 3:
                break
            threading.Event().wait(0.05)
        assert dev.pinned_bytes() <= 4 * keep * 3
        out, sizes = dev.compress(pages[:1])  # and the device still works after the trim
        assert lz4.block.decompress(out[0, : sizes[0]].tobytes(), uncompressed_size=PAGE) == \
            pages[0].tobytes()
    with pytest.raises(ValueError, match="pinned_limit"):
        Lz4Device(pinned_limit=1 << 16)


# ---------------------------------------------------------------------------------------------
# Zero-copy buffers and leased results
# ---------------------------------------------------------------------------------------------


def _lent(alg: Lz4OpenCL, want: int | None = None) -> int:
    """Bytes the device's zero-copy pool has lent out, once garbage is collected; with `want`,
    waits (up to 10 s) for that figure: the device's completion thread drops its reference to
    a finished job just after it has woken the waiter."""
    for _ in range(200):
        gc.collect()
        lent = int(alg.dev.lease_stats()["lent"])
        if want is None or lent == want:
            break
        threading.Event().wait(0.05)
    return lent


def _count_copies(alg: Lz4OpenCL, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the host copies the device makes from now on (its `_copy` spied)."""
    copies: list[int] = []
    real_copy = alg.dev._copy

    def spy(dst: Any, src: Any) -> None:
        copies.append(dst.nbytes)
        real_copy(dst, src)

    monkeypatch.setattr(alg.dev, "_copy", spy)
    return copies


def _check_pages(blocks: list[bytes], pages: np.ndarray) -> None:
    assert [lz4.block.decompress(b, uncompressed_size=PAGE) for b in blocks] == [
        p.tobytes() for p in pages]


@pytest.mark.anyio
async def test_zero_copy_round_trip_skips_the_host_copies(
        alg: Lz4OpenCL, tfm: acomp.CryptoAcomp, monkeypatch: pytest.MonkeyPatch) -> None:
    set_fallback(tfm, False)
    base = _lent(alg)
    pages = corpus.pages(70, seed=17)
    buf = acomp.batch_buffer(tfm, len(pages))
    assert lease_of(buf) is not None  # pinned, lent by the device
    buf[:] = pages
    copies = _count_copies(alg, monkeypatch)
    res = await acomp.crypto_acomp_batch_compress(tfm, buf)
    assert res.ok
    assert res.lease is not None
    assert lease_of(res.out) is not None  # a view of the pinned download buffer
    _check_pages(res.tolist(), pages)
    # decompress straight from the leased result rows: in place again
    back = await acomp.crypto_acomp_batch_decompress(tfm, res.out, lengths=res.sizes,
                                                     capacity=PAGE)
    assert copies == []  # neither direction copied rows into or out of the staging buffers
    assert back.lease is not None
    assert np.array_equal(back.out[:, :PAGE], pages)
    # a part of the buffer (whole rows) is zero-copy too
    part = await acomp.crypto_acomp_batch_compress(tfm, buf[10:40])
    _check_pages(part.tolist(), pages[10:40])
    assert copies == []
    assert _lent(alg) > base
    # an ordinary array and a list of bytes still work (staged), their results leased
    plain = await acomp.crypto_acomp_batch_compress(tfm, np.array(pages))
    _check_pages(plain.tolist(), pages)
    listed = await acomp.crypto_acomp_batch_compress(tfm, [p.tobytes() for p in pages[:3]])
    _check_pages(listed.tolist(), pages[:3])
    assert copies  # those were staged
    for r in (res, back, part, plain, listed):
        r.release()
        assert r.released
        with pytest.raises(ValueError, match="released"):
            r.item(0)
    del buf
    assert _lent(alg, base) == base


@pytest.mark.anyio
async def test_leases_come_back_on_every_path(alg: Lz4OpenCL, tfm: acomp.CryptoAcomp,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    set_fallback(tfm, False)
    base = _lent(alg)
    pages = corpus.pages(66, seed=18)
    # errors per item: some items fail, the result is still lent and returned on release
    res = await acomp.crypto_acomp_batch_compress(tfm, pages,
                                                  capacity=[4] * 3 + [5000] * 63)
    assert (res.sizes[:3] == -errno.ENOSPC).all()
    assert (res.sizes[3:] > 0).all()
    assert res.lease is not None
    with res:  # the context manager releases
        _check_pages([res.item(i) for i in range(3, 66)], pages[3:])
    assert res.released
    assert _lent(alg, base) == base
    # the result collected without release()
    res = await acomp.crypto_acomp_batch_compress(tfm, pages)
    assert _lent(alg) > base
    del res
    assert _lent(alg, base) == base
    # a view kept alive keeps the lease; dropping it returns it
    res = await acomp.crypto_acomp_batch_compress(tfm, pages)
    row = res.out[5]
    del res
    assert _lent(alg) > base
    del row
    assert _lent(alg, base) == base
    # detach: one copy into the caller's array, the lease returned
    res = await acomp.crypto_acomp_batch_compress(tfm, pages)
    mine = np.zeros((len(pages), 5000), np.uint8)
    assert res.detach(mine) is mine
    assert res.out is mine
    assert res.lease is None
    assert _lent(alg, base) == base
    _check_pages(res.tolist(), pages)
    # the batch fails as a whole (an OpenCL error): -EIO, nothing stays lent
    def broken(*a: Any) -> Any:
        raise RuntimeError("injected enqueue failure")

    with monkeypatch.context() as m:
        m.setattr(alg.dev, "_enqueue", broken)
        res = await acomp.crypto_acomp_batch_compress(tfm, pages)
    assert (res.sizes == -errno.EIO).all()
    assert res.lease is None
    assert _lent(alg, base) == base
    # cancelled while the device works: the result is dropped, its lease comes back
    import anyio

    with anyio.CancelScope() as scope:
        scope.cancel()
        await acomp.crypto_acomp_batch_compress(tfm, pages)
    assert scope.cancelled_caught
    for _ in range(200):  # the event loop lets go of the cancelled call's frames
        if _lent(alg) == base:
            break
        await anyio.sleep(0.05)
    assert _lent(alg) == base


def test_zero_copy_pool_is_bounded() -> None:
    pages = corpus.pages(40, seed=19)
    with Lz4Device(lease_limit=256 << 10) as dev:  # 256 KiB: 40 pages of 4 KiB fit, not 80
        buf = dev.batch_buffer(40)
        with pytest.raises(MemoryError, match="pool full"):
            dev.batch_buffer(40)
        buf[:] = pages
        job = dev.submit("compress", buf, None, None, None, lease=True)
        job.wait(60)
        assert job.lease is None  # no room: an ordinary array, still correct
        assert lease_of(job.out) is None
        assert job.sizes is not None
        assert job.out is not None
        _check_pages([job.out[i, : job.sizes[i]].tobytes() for i in range(40)], pages)
        st = dev.lease_stats()
        assert st["refused"] == 2
        assert st["lent"] <= st["limit"]
        del buf
        gc.collect()
        assert dev.lease_stats()["lent"] == 0
        job = dev.submit("compress", pages[:8], None, None, None, lease=True)
        job.wait(60)
        assert job.lease is not None  # room again


# ---------------------------------------------------------------------------------------------
# Compaction on the device: the download carries the compressed bytes, not n x capacity rows
# ---------------------------------------------------------------------------------------------


def test_compress_download_carries_only_the_compressed_bytes() -> None:
    pages = corpus.pages(300, seed=20)
    caps = np.full(300, 5000, np.int32)
    caps[:2] = 4  # two items fail (-ENOSPC): they take no bytes
    lengths = np.full(300, PAGE, np.int32)
    lengths[7] = 0  # and one is malformed (-EINVAL)
    with Lz4Device(max_batch=128) as dev:
        job = dev.submit("compress", pages, lengths, caps, None, packed=True)
        job.wait(60)
        assert job.launches == 3
        sizes, packed, offsets = job.sizes, job.packed, job.offsets
        assert sizes is not None
        assert packed is not None
        assert offsets is not None
        assert job.out is None
        assert (sizes[:2] == -errno.ENOSPC).all()
        assert sizes[7] == -errno.EINVAL
        good = [i for i in range(300) if i not in (0, 1, 7)]
        assert (sizes[good] > 0).all()
        total = int(sizes[good].sum())
        # counted: one int32 of size per item, then exactly the blocks
        assert job.downloaded == 4 * 300 + total
        assert len(packed) == total
        for i in good:
            blk = packed[offsets[i] : offsets[i] + sizes[i]].tobytes()
            assert lz4.block.decompress(blk, uncompressed_size=PAGE) == pages[i].tobytes()
        # the blocks are the same as the padded rows' (same kernel), and those download more
        rows = dev.submit("compress", pages, lengths, caps, None)
        rows.wait(60)
        assert rows.out is not None
        assert rows.downloaded > 2 * job.downloaded
        for i in good[:20]:
            assert rows.out[i, : sizes[i]].tobytes() == packed[offsets[i] : offsets[i] +
                                                               sizes[i]].tobytes()
        with pytest.raises(ValueError, match="packed"):
            dev.submit("decompress", pages, None, None, None, packed=True)


@pytest.mark.anyio
async def test_packed_round_trip_through_the_batch_api(alg: Lz4OpenCL, tfm: acomp.CryptoAcomp,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    set_fallback(tfm, False)
    pages = corpus.pages(90, seed=21)
    jobs: list[Any] = []
    real_submit = alg.dev.submit

    def spy(*a: Any, **k: Any) -> Any:
        job = real_submit(*a, **k)
        jobs.append(job)
        return job

    monkeypatch.setattr(alg.dev, "submit", spy)
    comp = await acomp.crypto_acomp_batch_compress(tfm, pages, packed=True)
    assert comp.ok
    assert comp.packed is not None
    assert comp.offsets is not None
    total = int(comp.sizes.sum())
    assert len(comp.packed) == total
    assert jobs[-1].downloaded == 4 * 90 + total  # counted: sizes, then the blocks only
    _check_pages(comp.tolist(), pages)
    back = await acomp.crypto_acomp_batch_decompress(tfm, comp)
    assert back.ok
    assert np.array_equal(back.out[:, :PAGE], pages)
    # the upload carried the header and the packed blocks, not 90 padded rows
    assert jobs[-1].uploaded == (12 * 90 + 15) // 16 * 16 + total
    back.release()
    # a CPU driver gets the same forms, packed and unpacked on the host
    scomp = acomp.crypto_alloc_acomp("lz4-scomp")
    try:
        cpu = await acomp.crypto_acomp_batch_compress(scomp, pages, packed=True)
        assert cpu.packed is not None
        _check_pages(cpu.tolist(), pages)
        cback = await acomp.crypto_acomp_batch_decompress(scomp, comp)  # the device's blocks
        assert np.array_equal(cback.out[:, :PAGE], pages)
    finally:
        acomp.crypto_free_acomp(scomp)


# ---------------------------------------------------------------------------------------------
# Leased packed results: the blocks stay in the pinned download buffer, lent to the result
# ---------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_packed_results_are_leased_and_decompress_in_place(
        alg: Lz4OpenCL, tfm: acomp.CryptoAcomp, monkeypatch: pytest.MonkeyPatch) -> None:
    set_fallback(tfm, False)
    base = _lent(alg)
    pages = corpus.pages(66, seed=22)
    copies = _count_copies(alg, monkeypatch)
    # errors per item: three items do not fit, the rest are packed into the lease
    res = await acomp.crypto_acomp_batch_compress(tfm, pages, capacity=[4] * 3 + [5000] * 63,
                                                  packed=True)
    assert (res.sizes[:3] == -errno.ENOSPC).all()
    assert (res.sizes[3:] > 0).all()
    assert res.lease is not None
    assert res.packed is not None
    assert bytes_lease_of(res.packed) is not None  # a view of the pinned download buffer
    assert len(res.packed) == int(res.sizes[3:].sum())  # no bytes for the failed items
    _check_pages([res.item(i) for i in range(3, 66)], pages[3:])
    staged = len(copies)  # the ordinary input was staged; nothing was copied out
    assert staged == 1
    # decompress straight from the leased blocks: uploaded in place, results leased too
    back = await acomp.crypto_acomp_batch_decompress(tfm, res)
    assert len(copies) == staged
    assert (back.sizes[:3] == -errno.EINVAL).all()  # no block for a failed item
    assert np.array_equal(back.out[3:, :PAGE], pages[3:])
    assert back.lease is not None
    with res:  # the context manager releases
        pass
    assert res.released
    assert res.packed is not None
    assert len(res.packed) == 0
    with pytest.raises(ValueError, match="released"):
        res.item(3)
    back.release()
    assert _lent(alg, base) == base
    # collected without release()
    res = await acomp.crypto_acomp_batch_compress(tfm, pages, packed=True)
    assert res.lease is not None
    assert _lent(alg) > base
    del res
    assert _lent(alg, base) == base
    # a view of the blocks kept alive keeps the lease; dropping it returns it
    res = await acomp.crypto_acomp_batch_compress(tfm, pages, packed=True)
    assert res.packed is not None
    part = res.packed[10:20]
    del res
    assert _lent(alg) > base
    del part
    assert _lent(alg, base) == base
    # detach: one copy into the caller's array, the lease returned, the items intact
    res = await acomp.crypto_acomp_batch_compress(tfm, pages, packed=True)
    assert res.packed is not None
    mine = np.zeros(len(res.packed) + 100, np.uint8)
    assert res.detach(mine) is mine
    assert res.lease is None
    assert _lent(alg, base) == base
    _check_pages(res.tolist(), pages)
    with pytest.raises(ValueError, match="1-D"):
        (await acomp.crypto_acomp_batch_compress(tfm, pages, packed=True)).detach(
            np.zeros((66, 5000), np.uint8))
    assert _lent(alg, base) == base


@pytest.mark.anyio
@pytest.mark.parametrize("packed", [False, True], ids=["rows", "packed"])
async def test_leases_come_back_when_a_batch_fails_or_is_abandoned(
        alg: Lz4OpenCL, tfm: acomp.CryptoAcomp, monkeypatch: pytest.MonkeyPatch,
        packed: bool) -> None:
    set_fallback(tfm, False)
    base = _lent(alg)
    pages = corpus.pages(66, seed=23)

    def broken(*a: Any) -> Any:
        raise RuntimeError("injected failure")

    # enqueueing fails, and (separately) collecting a launch fails: -EIO, nothing stays lent
    for where in ("_enqueue", "_collect"):
        with monkeypatch.context() as m:
            m.setattr(alg.dev, where, broken)
            res = await acomp.crypto_acomp_batch_compress(tfm, pages, packed=packed)
        assert (res.sizes == -errno.EIO).all(), where
        assert res.lease is None, where
        if packed:
            assert res.packed is not None
            assert len(res.packed) == 0
        assert _lent(alg, base) == base, where
    assert alg.dev._free.qsize() == alg.dev.slots  # every slot came back
    assert alg.dev.pipeline_stats()["in_flight"] == 0
    # the caller raises while holding the result: leaving `with` releases it
    res = await acomp.crypto_acomp_batch_compress(tfm, pages, packed=packed)
    assert res.lease is not None
    with pytest.raises(KeyError), res:
        raise KeyError("the caller's own error")
    assert res.released
    assert _lent(alg, base) == base
    # cancelled while the device works: the result is dropped, its lease comes back
    import anyio

    with anyio.CancelScope() as scope:
        scope.cancel()
        await acomp.crypto_acomp_batch_compress(tfm, pages, packed=packed)
    assert scope.cancelled_caught
    for _ in range(200):  # the event loop lets go of the cancelled call's frames
        if _lent(alg) == base:
            break
        await anyio.sleep(0.05)
    assert _lent(alg) == base
    # and the device still gives correct, leased results afterwards
    with await acomp.crypto_acomp_batch_compress(tfm, pages, packed=packed) as res:
        assert res.lease is not None
        _check_pages(res.tolist(), pages)
    assert _lent(alg, base) == base


# ---------------------------------------------------------------------------------------------
# Overlap: launches in flight at once, counted by the pipeline and by the device's timestamps
# ---------------------------------------------------------------------------------------------


def test_launches_are_in_flight_together_and_overlap_on_the_device() -> None:
    import pyopencl as cl

    pages = corpus.pages(128, seed=24)
    with Lz4Device(max_batch=16) as dev:  # 128 pages: 8 launches over the default slots
        assert dev.slots == 4 > 3  # deeper than the three slots of before
        warm = dev.submit("compress", pages[:64], None, None, None)  # buffers made
        warm.wait(120)
        # Hold the device: every launch's first command waits for a user event, so nothing
        # completes until the test says so, and the dispatcher fills every slot meanwhile.
        gate = cl.UserEvent(dev.ctx)
        real = dev._enqueue

        def gated(slot: Any, job: Any, a: int, b: int) -> Any:
            cl.enqueue_marker(slot.queue, wait_for=[gate])
            return real(slot, job, a, b)

        dev._enqueue = gated  # type: ignore[method-assign]
        before = dev.pipeline_stats()
        job = dev.submit("compress", pages, None, None, None)
        assert job.launches == 8
        for _ in range(6000):  # wait for the state, not for a time
            if dev.pipeline_stats()["in_flight"] == dev.slots:
                break
            threading.Event().wait(0.01)
        held = dev.pipeline_stats()
        assert held["in_flight"] == dev.slots  # four launches enqueued, none collected
        assert not job.done()
        gate.set_status(cl.command_execution_status.COMPLETE)
        job.wait(300)
        after = dev.pipeline_stats()
        assert after["most_in_flight"] == dev.slots
        assert after["in_flight"] == 0
        assert after["launches"] - before["launches"] == 8
        # the four held launches were released at once: on the device (profiling
        # timestamps) at least one started before an earlier one had finished
        assert job.overlapped >= 1
        assert after["overlapped"] - before["overlapped"] == job.overlapped
        assert job.sizes is not None
        assert job.out is not None
        _check_pages([job.out[i, : job.sizes[i]].tobytes() for i in range(128)], pages)
