"""The vectored API on scomp drivers (acomp.cpubatch): the same per-item sizes, bytes and
errnos as one request per item, in one atomic section per chunk, on threads and processes."""

from __future__ import annotations

import errno
import gc
import itertools
import os
from collections.abc import Iterator
from typing import Any, ClassVar

import lz4.block
import numpy as np
import pytest

import acomp
from acomp import corpus, cpubatch, sched
from acomp.internal import ScompAlg, crypto_register_scomp, crypto_unregister_scomp
from acomp.scatterlist import sg_init_one

pytestmark = pytest.mark.anyio

PAGE = 4096


@pytest.fixture
def split() -> Iterator[None]:
    """Small chunks, so that a short batch is cut across two cores."""
    old = (cpubatch.config.min_chunk, cpubatch.config.cores, cpubatch.config.mode)
    cpubatch.config.min_chunk = 4
    cpubatch.config.cores = 2
    yield
    cpubatch.config.min_chunk, cpubatch.config.cores, cpubatch.config.mode = old


async def _one(tfm: acomp.CryptoAcomp, compress: bool, src: bytes, cap: int) -> tuple[int, bytes]:
    """What one ordinary request gives for this item: (status or size, bytes)."""
    req = acomp.acomp_request_alloc(tfm)
    assert req is not None
    wait = acomp.CryptoWait()
    out = bytearray(max(cap, 0))
    acomp.acomp_request_set_params(req, sg_init_one(src), sg_init_one(out), len(src), cap)
    acomp.acomp_request_set_callback(req, acomp.CRYPTO_TFM_REQ_MAY_BACKLOG,
                                     acomp.crypto_req_done, wait)
    submit = acomp.crypto_acomp_compress if compress else acomp.crypto_acomp_decompress
    ret = await acomp.crypto_wait_req(submit(req), wait)
    n = req.dlen
    if ret == -errno.EINVAL and req.reason == -errno.ENOSPC:
        ret = -errno.ENOSPC  # a batch item says "does not fit" as -ENOSPC on every driver
    acomp.acomp_request_free(req)
    return (n, bytes(out[:n])) if ret == 0 else (ret, b"")


DRIVERS = ["lz4-scomp", "lz4hc-scomp", "lzo-scomp", "zstd-scomp", "deflate-scomp"]


def _items(seed: int) -> tuple[list[bytes], list[int]]:
    pages = [p.tobytes() for p in corpus.pages(14, seed=seed)]
    pages[3] = b""  # -EINVAL: no source
    caps = [PAGE + 512] * len(pages)
    caps[5] = 0  # -EINVAL: no capacity
    caps[7] = 16  # -ENOSPC: does not fit
    return pages, caps


@pytest.mark.parametrize(("driver", "mode"), [
    *((d, m) for d in DRIVERS for m in ("none", "threads")),
    ("lz4-scomp", "processes"), ("zstd-scomp", "processes")])
async def test_batch_matches_one_request_per_item(driver: str, mode: str,
                                                  split: None) -> None:
    if not acomp.crypto_has_acomp(driver):
        pytest.skip(f"{driver} not available")
    cpubatch.config.mode = mode
    tfm = acomp.crypto_alloc_acomp(driver)
    try:
        pages, caps = _items(11)
        res = await acomp.crypto_acomp_batch_compress(tfm, pages, capacity=caps)
        for i, p in enumerate(pages):
            want, data = await _one(tfm, True, p, caps[i])
            assert int(res.sizes[i]) == want, (i, int(res.sizes[i]), want)
            if want > 0:
                assert res.item(i) == data
                assert res.out[i, :want].tobytes() == data
        assert res.sizes[3] == -errno.EINVAL
        assert res.sizes[5] == -errno.EINVAL
        assert res.sizes[7] == -errno.ENOSPC
        # Decompress what came out, plus a corrupt block and a short capacity.
        blobs = [res.item(i) if res.sizes[i] > 0 else b"\x00" for i in range(len(pages))]
        blobs[2] = b"\xff" * 40
        dcaps = [PAGE] * len(blobs)
        dcaps[4] = 100
        back = await acomp.crypto_acomp_batch_decompress(tfm, blobs, capacity=dcaps)
        for i, b in enumerate(blobs):
            want, data = await _one(tfm, False, b, dcaps[i])
            assert int(back.sizes[i]) == want, (i, int(back.sizes[i]), want)
            if want > 0:
                assert back.item(i) == data == pages[i]
        assert back.sizes[2] == -errno.EINVAL
        assert back.sizes[4] == -errno.ENOSPC
    finally:
        acomp.crypto_free_acomp(tfm)


async def test_array_in_array_out(split: None) -> None:
    cpubatch.config.mode = "threads"
    pages = corpus.pages(64, seed=2)
    tfm = acomp.crypto_alloc_acomp("lz4-scomp")
    try:
        res = await acomp.crypto_acomp_batch_compress(tfm, pages)
        assert res.ok
        back = await acomp.crypto_acomp_batch_decompress(
            tfm, res.out[:, : int(res.sizes.max())], lengths=res.sizes, capacity=PAGE)
        assert back.ok
        assert np.array_equal(back.out, pages)
        # A row length over the row is refused, as an sg entry shorter than slen is.
        bad = await acomp.crypto_acomp_batch_compress(tfm, pages[:2], lengths=[PAGE, PAGE + 1])
        assert list(bad.sizes[1:]) == [-errno.EINVAL]
    finally:
        acomp.crypto_free_acomp(tfm)


class _Probe(ScompAlg):
    """An scomp driver that records the context its batch entry runs in."""

    cra_name = "probe"
    cra_driver_name = "probe-scomp"
    batch_parallel = "processes"  # not loadable by a worker: the chunk falls back here
    seen: ClassVar[list[tuple[bool, int]]] = []

    def compress(self, tfm: Any, src: memoryview, dst: memoryview, ctx: Any) -> int:
        n = len(src)
        if n > len(dst):
            return -errno.ENOSPC
        dst[:n] = src
        return n

    decompress = compress

    def compress_batch(self, tfm: Any, srcs: Any, caps: Any, ctx: Any) -> list[bytes | int]:
        self.seen.append((sched.in_atomic(), len(srcs)))
        return [bytes(s) if len(s) <= caps[i] else -errno.ENOSPC for i, s in enumerate(srcs)]


@pytest.fixture
def probe() -> Iterator[_Probe]:
    alg = _Probe()
    assert crypto_register_scomp(alg) == 0
    _Probe.seen = []
    yield alg
    assert crypto_unregister_scomp(alg) == 0
    cpubatch._no_worker.discard("probe-scomp")


async def test_one_atomic_section_per_chunk(probe: _Probe, split: None) -> None:
    tfm = acomp.crypto_alloc_acomp("probe-scomp")
    try:
        items = [bytes([i]) * 10 for i in range(16)]
        res = await acomp.crypto_acomp_batch_compress(tfm, items)
        assert res.tolist() == items
        # Two chunks (two cores; the caller's `local_share` of the worker's), each one call of
        # the vectored entry in atomic context; the worker process could not load this
        # driver, so its chunk ran here.
        b = cpubatch._skewed_bounds(16, 2, cpubatch.config.local_share)
        assert b[1] < 8
        assert sorted(probe.seen) == sorted([(True, b[1]), (True, 16 - b[1])])
        assert "probe-scomp" in cpubatch._no_worker
        assert not sched.in_atomic()
    finally:
        acomp.crypto_free_acomp(tfm)


async def test_sleeping_in_the_batch_entry_is_reported(probe: _Probe,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def sleepy(self: Any, tfm: Any, srcs: Any, caps: Any, ctx: Any) -> list[bytes | int]:
        sched.might_sleep()
        return []

    # monkeypatch puts _Probe's own compress_batch back (a `del` after the test removed it,
    # and test_one_atomic_section_per_chunk, run after this one, saw no batch entry at all)
    monkeypatch.setattr(_Probe, "compress_batch", sleepy)
    tfm = acomp.crypto_alloc_acomp("probe-scomp")
    try:
        with pytest.raises(sched.SleepInAtomicError, match=r"scomp_scratch\.lock"):
            await acomp.crypto_acomp_batch_compress(tfm, [b"x" * 8])
        assert not sched.in_atomic()  # the section was left on the way out
    finally:
        acomp.crypto_free_acomp(tfm)


async def test_python_layer_many(split: None) -> None:
    pages = [p.tobytes() for p in corpus.pages(40, seed=6)]
    async with acomp.open("zstd-scomp") as c:
        blobs = await c.compress_many(pages)
        assert [await c.decompress(b, PAGE) for b in blobs] == pages
        assert await c.decompress_many(blobs, PAGE) == pages
        st = c.statistics()
        assert (st.compressed, st.decompressed) == (40, 80)
        assert st.bytes_in == sum(map(len, pages)) + 2 * sum(map(len, blobs))
        assert st.bytes_out == 2 * sum(map(len, pages)) + sum(map(len, blobs))
        with pytest.raises(acomp.BadData):
            await c.decompress_many([*blobs[:5], b"\x28\xb5\x2f\xfd" + b"\0" * 20], PAGE)
        with pytest.raises(acomp.OutputTooSmall):
            await c.decompress_many(blobs, 100)
        with pytest.raises(ValueError, match="empty"):
            await c.compress_many([pages[0], b""])
        with pytest.raises(ValueError, match="max_len"):
            await c.decompress_many(blobs, 0)


async def test_packed_results_and_packed_input(split: None) -> None:
    pages = corpus.pages(24, seed=8)
    tfm = acomp.crypto_alloc_acomp("lz4-scomp")
    try:
        res = await acomp.crypto_acomp_batch_compress(tfm, pages, packed=True)
        assert res.packed is not None
        assert res.offsets is not None
        rows = await acomp.crypto_acomp_batch_compress(tfm, pages)
        assert res.tolist() == rows.tolist()
        back = await acomp.crypto_acomp_batch_decompress(tfm, res, capacity=PAGE)
        assert np.array_equal(back.out, pages)
    finally:
        acomp.crypto_free_acomp(tfm)


def test_core_counts_mean_one_thing(monkeypatch: pytest.MonkeyPatch) -> None:
    """0 (and unset) is every core wherever a core count is read; a negative or non-integer
    count is refused naming its knob."""
    every = os.cpu_count() or 1
    assert cpubatch.cores_count(None) == cpubatch.cores_count(0) == every
    assert cpubatch.cores_count(3) == 3
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="--cpu-cores must be 0"):
            cpubatch.cores_count(bad, "--cpu-cores")  # type: ignore[arg-type]
    for env, want in (("", None), ("0", None), (" 2 ", 2)):
        monkeypatch.setenv("ACOMP_BATCH_CORES", env)
        assert cpubatch._env_cores() == want
    for env in ("-1", "two"):
        monkeypatch.setenv("ACOMP_BATCH_CORES", env)
        with pytest.raises(ValueError, match="ACOMP_BATCH_CORES"):
            cpubatch._env_cores()
    monkeypatch.setattr(cpubatch.config, "cores", 0)
    assert cpubatch._cores() == every
    monkeypatch.setattr(cpubatch.config, "cores", -2)
    with pytest.raises(ValueError, match=r"cpubatch\.config\.cores"):
        cpubatch._cores()


def test_worker_never_reuses_the_mapping_of_a_closed_arena() -> None:
    """A closed arena's fd number comes back for the next one: a worker (here called in
    process) that cached the old mapping by the /proc path alone would read the old pages and
    write its results into the closed arena. The serial in the path tells them apart."""
    if not cpubatch._have_proc_fd():
        pytest.skip("no memfd or /proc/<pid>/fd here")
    pages = [p.tobytes() for p in corpus.pages(2, seed=11)]
    size = 1 << 16
    caps = np.full(1, 8192, np.int32).tobytes()
    lens = np.full(1, PAGE, np.int32).tobytes()

    def compress_in(arena: Any) -> bytes:
        raw, cpu = cpubatch._worker_chunk("lz4-scomp", True, arena.path, size, 0, lens, PAGE,
                                          caps)
        assert cpu > 0
        n = int(np.frombuffer(raw, np.int32)[0])
        assert n > 0
        return bytes(arena.view[PAGE : PAGE + n])

    try:
        first = cpubatch._Arena(size)
        first.view[:PAGE] = pages[0]
        assert lz4.block.decompress(compress_in(first), uncompressed_size=PAGE) == pages[0]
        fd, path = first.fd, first.path
        del first  # closed (its finalizer): the fd number is free again
        gc.collect()
        second = cpubatch._Arena(size)
        # The number normally comes back (lowest free fd), which made a path-only key unsafe;
        # the path differs either way.
        assert second.path != path
        assert second.path.partition("#")[0] == path.partition("#")[0] or second.fd != fd
        second.view[:PAGE] = pages[1]
        assert lz4.block.decompress(compress_in(second), uncompressed_size=PAGE) == pages[1]
        del second
    finally:
        for m, v in cpubatch._w_maps.values():  # the worker-side caches this test filled
            v.release()
            m.close()
        cpubatch._w_maps.clear()
        for tfm in cpubatch._w_tfms.values():
            acomp.crypto_free_acomp(tfm)
        cpubatch._w_tfms.clear()
        gc.collect()


@pytest.mark.parametrize(("n", "k", "share"), [(4096, 2, 0.65), (4096, 2, 1.0), (4096, 16, 0.65),
                                                (10, 4, 0.8), (3, 2, 0.0), (7, 3, 2.0)])
def test_skewed_bounds_cover_every_item_once(n: int, k: int, share: float) -> None:
    b = cpubatch._skewed_bounds(n, k, share)
    assert len(b) == k + 1
    assert b[0] == 0
    assert b[-1] == n
    assert b == sorted(b)
    sizes = [hi - lo for lo, hi in itertools.pairwise(b)]
    assert max(sizes[1:]) - min(sizes[1:]) <= 1  # the workers' chunks are even
    assert abs(sizes[0] - share * n / (share + k - 1)) <= 1  # the caller's is `share` of one


@pytest.mark.parametrize("share", [0.0, 0.65, 1.0])
async def test_process_split_gives_the_workers_their_items(
        share: float, split: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """In processes mode the caller keeps `local_share` of a worker's chunk and the worker
    gets the rest through the arena (its chunk run here, in process, as a worker runs it):
    the results are those of one core, item for item."""
    if not cpubatch._have_proc_fd():
        pytest.skip("no memfd or /proc/<pid>/fd here")
    cpubatch.config.mode = "processes"
    monkeypatch.setattr(cpubatch.config, "local_share", share)
    sent: list[int] = []

    async def in_process(fn: Any, *args: Any) -> Any:
        assert fn is cpubatch._worker_chunk
        sent.append(len(args[5]) // 4)  # the int32 source lengths
        with sched.on_cpu(1):
            return fn(*args)

    cpu0 = cpubatch.worker_cpu_ns()
    monkeypatch.setattr(cpubatch.anyio.to_process, "run_sync", in_process)
    tfm = acomp.crypto_alloc_acomp("lz4-scomp")
    try:
        pages, caps = _items(12)
        res = await acomp.crypto_acomp_batch_compress(tfm, pages, capacity=caps)
        n = len(pages)
        first = cpubatch._skewed_bounds(n, 2, share)[1]
        assert sent == [n - first]
        blobs = [res.item(i) if res.sizes[i] > 0 else b"\x00" for i in range(n)]
        back = await acomp.crypto_acomp_batch_decompress(tfm, blobs, capacity=PAGE)
        assert sent == [n - first] * 2
        assert (cpubatch.worker_cpu_ns() > cpu0) is (n > first)
        cpubatch.config.mode = "none"
        one = await acomp.crypto_acomp_batch_compress(tfm, pages, capacity=caps)
        assert res.sizes.tolist() == one.sizes.tolist()
        assert [res.item(i) for i in range(n) if one.sizes[i] > 0] == [
            one.item(i) for i in range(n) if one.sizes[i] > 0]
        assert [back.item(i) for i in range(n) if one.sizes[i] > 0] == [
            pages[i] for i in range(n) if one.sizes[i] > 0]
    finally:
        acomp.crypto_free_acomp(tfm)
        for m, v in cpubatch._w_maps.values():  # the worker-side caches this test filled
            v.release()
            m.close()
        cpubatch._w_maps.clear()
        for t in cpubatch._w_tfms.values():
            acomp.crypto_free_acomp(t)
        cpubatch._w_tfms.clear()
        gc.collect()
