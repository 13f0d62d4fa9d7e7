"""The scomp wrapper of v6.15 and v6.16+ (acomp.scomp_streams): crypto/scompress.c of v6.15
(scomp_alloc_streams, crypto_scomp_init_tfm, scomp_acomp_comp_decomp with the page-and-65400
scratch pair, crypto_scomp_destroy) and of v6.16+ (crypto_scomp_init_tfm on
crypto_acomp_alloc_streams, scomp_lock_scratch, scomp_scratch_workfn, scomp_acomp_comp_decomp
without the dst scratch), include/crypto/internal/scompress.h (alloc_ctx(void), free_ctx(ctx))."""

from __future__ import annotations

import errno
import os
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from algs import ZScomp, registered

import acomp
from acomp import PAGE_SIZE, cpubatch, sched, scomp_streams, scompress
from acomp.scatterlist import Scatterlist, sg_init_one, sg_init_table, sg_set_buf

NEW = ("6.15", "6.16", "6.18")
DATA = (b"per-CPU streams, shared by every transform of the algorithm. " * 60)[:3000]


class Probe(ZScomp):
    """zlib, recording the context each operation got, whether it ran atomic and the locks
    held; its contexts say which CPU's stream they are."""

    def __init__(self) -> None:
        super().__init__("sprobe", "sprobe-scomp")
        self.made: list[int] = []
        self.freed: list[Any] = []
        self.seen: list[tuple[Any, bool, tuple[str, ...]]] = []

    def alloc_ctx(self) -> Any:  # v6.15+: alloc_ctx(void)
        self.made.append(len(self.made))
        return f"ctx{len(self.made) - 1}"

    def free_ctx(self, ctx: Any) -> None:  # v6.15+: free_ctx(ctx)
        self.freed.append(ctx)

    def _see(self, ctx: Any) -> None:
        held = tuple(name for name, _ in sched._state.get()[2])
        self.seen.append((ctx, sched.in_atomic(), held))

    def compress(self, tfm: Any, src: memoryview, dst: memoryview, ctx: Any) -> int:
        self._see(ctx)
        return super().compress(tfm, src, dst, ctx)

    def decompress(self, tfm: Any, src: memoryview, dst: memoryview, ctx: Any) -> int:
        self._see(ctx)
        return super().decompress(tfm, src, dst, ctx)


@pytest.fixture
def probe() -> Iterator[Probe]:
    alg = Probe()
    with registered(alg):
        yield alg


def _run(tfm: acomp.CryptoAcomp, src: Scatterlist, slen: int, dst: Scatterlist, dlen: int,
         compress: bool = True) -> tuple[int, acomp.AcompReq]:
    req = acomp.acomp_request_alloc(tfm)
    assert req is not None
    acomp.acomp_request_set_params(req, src, dst, slen, dlen)
    op = acomp.crypto_acomp_compress if compress else acomp.crypto_acomp_decompress
    ret = op(req)
    acomp.acomp_request_free(req)
    return ret, req


def _two(buf: bytearray, first: int) -> Scatterlist:
    sgl = sg_init_table(2)
    sg_set_buf(sgl, 0, memoryview(buf)[:first])
    sg_set_buf(sgl, 1, memoryview(buf)[first:])
    return sgl


@pytest.mark.parametrize("version", NEW)
def test_contexts_live_in_the_algorithm_not_the_request(probe: Probe, version: str) -> None:
    """v6.15 "crypto: scomp - move streams into the alg": no per-request context (reqsize 0,
    crypto_acomp_scomp_alloc_ctx gone); both transforms' operations get the same per-CPU
    context, made by alloc_ctx() without a transform."""
    with acomp.using_kernel(version):
        t1 = acomp.crypto_alloc_acomp("sprobe")
        t2 = acomp.crypto_alloc_acomp("sprobe")
        try:
            assert t1.reqsize == t2.reqsize == 0
            req = acomp.acomp_request_alloc(t1)
            assert req is not None
            assert req.scomp_ctx is None
            acomp.acomp_request_free(req)
            for t in (t1, t2):
                out = bytearray(4096)
                ret, r = _run(t, sg_init_one(DATA), len(DATA), sg_init_one(out), len(out))
                assert ret == 0
                assert zlib.decompress(out[:r.dlen]) == DATA
            assert [ctx for ctx, _, _ in probe.seen] == ["ctx0", "ctx0"]
        finally:
            acomp.crypto_free_acomp(t1)
            acomp.crypto_free_acomp(t2)
    assert probe.freed == []  # the streams stay with the algorithm until it is destroyed


def test_contexts_are_freed_when_the_algorithm_is_destroyed(two_cpus: None) -> None:
    """crypto_scomp_destroy -> crypto_acomp_free_streams: free_ctx(ctx) for each CPU's."""
    alg = Probe()
    with registered(alg), acomp.using_kernel("6.15"):
        acomp.crypto_free_acomp(acomp.crypto_alloc_acomp("sprobe"))
        assert alg.freed == []
    assert sorted(alg.freed) == ["ctx0", "ctx1"]


@pytest.mark.parametrize(("version", "made"), [("6.15", 2), ("6.16", 1), ("7.0", 1)])
def test_which_contexts_the_first_transform_makes(probe: Probe, two_cpus: None, version: str,
                                                  made: int) -> None:
    """v6.15 scomp_alloc_streams: every possible CPU's at once; v6.16+
    crypto_acomp_alloc_streams: only cpumask_first's, the others on first use."""
    with acomp.using_kernel(version):
        tfm = acomp.crypto_alloc_acomp("sprobe")
        acomp.crypto_free_acomp(tfm)
    assert len(probe.made) == made


def test_v6_16_a_cpu_borrows_the_first_stream_until_its_own_is_made(probe: Probe,
                                                                    two_cpus: None) -> None:
    """v6.16 crypto_acomp_lock_stream_bh: CPU 1 has no context yet, so its first operation
    runs on CPU 0's (under CPU 0's stream lock) and asks the kworker for its own; the next
    runs on CPU 1's."""
    with acomp.using_kernel("6.16"):
        tfm = acomp.crypto_alloc_acomp("sprobe")
        try:
            with sched.on_cpu(1):
                out = bytearray(4096)
                assert _run(tfm, sg_init_one(DATA), len(DATA), sg_init_one(out), 4096)[0] == 0
                assert scomp_streams.scomp_streams(probe).stream_work.flush(10)
                assert _run(tfm, sg_init_one(DATA), len(DATA), sg_init_one(out), 4096)[0] == 0
        finally:
            acomp.crypto_free_acomp(tfm)
    assert [ctx for ctx, _, _ in probe.seen] == ["ctx0", "ctx1"]


@pytest.mark.parametrize(("version", "held"), [
    ("6.15", ("scomp_scratch.lock", "&ps->lock")),  # scratch (bh), then raw_cpu_ptr stream
    ("6.16", ("&ps->lock",)),  # crypto_acomp_lock_stream_bh; a linear src needs no scratch
])
def test_the_algorithm_runs_atomic_under_the_stream_lock(probe: Probe, version: str,
                                                         held: tuple[str, ...]) -> None:
    if not sched.debug_checks():
        pytest.skip("the held-lock record is the debug checks'")
    with acomp.using_kernel(version):
        tfm = acomp.crypto_alloc_acomp("sprobe")
        try:
            out = bytearray(4096)
            assert _run(tfm, sg_init_one(DATA), len(DATA), sg_init_one(out), 4096)[0] == 0
        finally:
            acomp.crypto_free_acomp(tfm)
    (_, atomic, locks), = probe.seen
    assert atomic
    assert locks == held
    assert not sched.in_atomic()


def test_v6_16_a_split_source_goes_through_the_scratch_page_and_the_lock(probe: Probe) -> None:
    """v6.16: a source not in one entry is memcpy_from_sglist'd into scomp_lock_scratch()'s
    page, taken inside the stream lock."""
    if not sched.debug_checks():
        pytest.skip("the held-lock record is the debug checks'")
    with acomp.using_kernel("6.16"):
        tfm = acomp.crypto_alloc_acomp("sprobe")
        try:
            src = bytearray(DATA)
            out = bytearray(4096)
            ret, r = _run(tfm, _two(src, 1000), len(DATA), sg_init_one(out), 4096)
            assert ret == 0
            assert zlib.decompress(out[:r.dlen]) == DATA
        finally:
            acomp.crypto_free_acomp(tfm)
    assert probe.seen[0][2] == ("&ps->lock", "scomp_scratch.lock")


def test_v6_16_a_cpus_scratch_page_is_made_on_first_use(probe: Probe, two_cpus: None) -> None:
    """v6.16 "crypto: scomp - Allocate per-cpu buffer on first use of each CPU": the first
    transform makes CPU 0's page; CPU 1's first split source uses CPU 0's and schedules
    scomp_scratch_work, which makes CPU 1's; the last transform frees them."""
    with acomp.using_kernel("6.16"):
        tfm = acomp.crypto_alloc_acomp("sprobe")
        try:
            assert scomp_streams.scratch_state()["pages_v6_16"] == [0]
            with sched.on_cpu(1):
                src = bytearray(DATA)
                out = bytearray(4096)
                assert _run(tfm, _two(src, 100), len(DATA), sg_init_one(out), 4096)[0] == 0
            scomp_streams._scratch_work.flush(10)
            assert scomp_streams.scratch_state()["pages_v6_16"] == [0, 1]
            assert scomp_streams.scratch_state()["want_v6_16"] == []
        finally:
            acomp.crypto_free_acomp(tfm)
    assert scomp_streams.scratch_state()["pages_v6_16"] == []


def test_v6_16_a_destination_it_cannot_map_is_enosys(probe: Probe) -> None:
    """v6.16 "crypto: scomp - Drop the dst scratch buffer": dlen > req->dst->length (the first
    entry) returns -ENOSYS before anything runs; v6.15 wrote it to the dst scratch and copied it
    out."""
    out = bytearray(4096)
    with acomp.using_kernel("6.16"):
        tfm = acomp.crypto_alloc_acomp("sprobe")
        try:
            ret, _ = _run(tfm, sg_init_one(DATA), len(DATA), _two(out, 16), len(out))
        finally:
            acomp.crypto_free_acomp(tfm)
    assert ret == -errno.ENOSYS
    assert probe.seen == []
    assert out == bytearray(4096)
    with acomp.using_kernel("6.15"):
        tfm = acomp.crypto_alloc_acomp("sprobe")
        try:
            ret, r = _run(tfm, sg_init_one(DATA), len(DATA), _two(out, 16), len(out))
        finally:
            acomp.crypto_free_acomp(tfm)
    assert ret == 0
    assert zlib.decompress(out[:r.dlen]) == DATA


def test_v6_15_the_dst_scratch_caps_dlen_at_65400(probe: Probe) -> None:
    """v6.15: a destination written through the scratch gets dlen = min(dlen, 65400)
    (SCOMP_SCRATCH_SIZE, moved into scompress.c); an output that needs more does not fit."""
    data = os.urandom(70000)
    out = bytearray(80000)
    with acomp.using_kernel("6.15"):
        tfm = acomp.crypto_alloc_acomp("sprobe")
        try:
            ret, _ = _run(tfm, sg_init_one(data), len(data), _two(out, 16), len(out))
            assert ret == -errno.ENOSPC  # zlib's 70 KiB does not fit 65400
            ret, r = _run(tfm, sg_init_one(data), len(data), sg_init_one(out), len(out))
            assert ret == 0
            assert r.dlen > scomp_streams.SCOMP_SCRATCH_SIZE_V6_15
        finally:
            acomp.crypto_free_acomp(tfm)


@pytest.mark.parametrize("version", ["6.15", "6.16"])
def test_a_split_source_longer_than_the_scratch_page_is_reported(probe: Probe,
                                                                 version: str) -> None:
    """scomp_acomp_comp_decomp copies a split source into a one-page scratch without checking
    slen: the kernel overruns the page. Reported as that memory corruption; refused (-EINVAL),
    nothing written, rather than done."""
    src = bytearray(os.urandom(PAGE_SIZE + 100))
    out = bytearray(3 * PAGE_SIZE)
    old = sched.config.lock_debug
    with acomp.using_kernel(version):
        tfm = acomp.crypto_alloc_acomp("sprobe")
        try:
            with pytest.raises(sched.LockDebugError, match="KASAN: slab-out-of-bounds"):
                _run(tfm, _two(src, 100), len(src), sg_init_one(out), len(out))
            sched.config.lock_debug = "off"
            ret, _ = _run(tfm, _two(src, 100), len(src), sg_init_one(out), len(out))
        finally:
            sched.config.lock_debug = old
            acomp.crypto_free_acomp(tfm)
    assert ret == -errno.EINVAL
    assert probe.seen == []
    assert out == bytearray(len(out))


@pytest.mark.parametrize("version", NEW)
def test_the_wrappers_checks(probe: Probe, version: str) -> None:
    """scomp_acomp_comp_decomp from v6.15: !req->src || !slen and !req->dst || !dlen are
    -EINVAL; there is no SCOMP_SCRATCH_SIZE limit on a linear source any more."""
    big = os.urandom(200000)
    out = bytearray(250000)
    with acomp.using_kernel(version):
        tfm = acomp.crypto_alloc_acomp("sprobe")
        try:
            assert _run(tfm, sg_init_one(DATA), 0, sg_init_one(out), 100)[0] == -errno.EINVAL
            assert _run(tfm, sg_init_one(DATA), len(DATA), sg_init_one(out), 0)[0] == -errno.EINVAL
            ret, r = _run(tfm, sg_init_one(big), len(big), sg_init_one(out), len(out))
            assert ret == 0
            assert zlib.decompress(out[:r.dlen]) == big
        finally:
            acomp.crypto_free_acomp(tfm)


@pytest.mark.parametrize("version", NEW)
def test_scratch_users_count_every_eras_transforms(version: str) -> None:
    """scomp_scratch_users: each scomp transform is a user; the last one frees the scratch."""
    before = scompress.scratch_users()
    with acomp.using_kernel(version):
        t1 = acomp.crypto_alloc_acomp("lz4-scomp")
        t2 = acomp.crypto_alloc_acomp("lz4-scomp")
    assert scompress.scratch_users() == before + 2
    acomp.crypto_free_acomp(t1)
    acomp.crypto_free_acomp(t2)
    assert scompress.scratch_users() == before


@pytest.mark.anyio
@pytest.mark.parametrize("version", NEW)
async def test_the_python_layer_round_trips_on_every_scomp_driver(version: str) -> None:
    with acomp.using_kernel(version):
        for name in ("lz4", "lz4hc", "lzo", "zstd", "deflate"):
            if not acomp.crypto_has_acomp(name):
                continue
            async with acomp.open(name) as c:
                blob = await c.compress(DATA)
                assert await c.decompress(blob, len(DATA)) == DATA


@pytest.mark.parametrize("version", NEW)
def test_the_cpu_batch_path_uses_the_streams(probe: Probe, version: str) -> None:
    # Beyond the kernel: the CPU batch path (acomp.cpubatch.run_chunk) runs a chunk the way
    # scomp_acomp_comp_decomp of the era runs a request: the CPU's stream context, under the
    # stream lock, atomic. A driver written for 6.15+ (alloc_ctx() without a transform) once
    # got alloc_ctx(tfm) there and a TypeError.
    with acomp.using_kernel(version):
        tfm = acomp.crypto_alloc_acomp("sprobe")
        try:
            made = list(probe.made)
            out = cpubatch.run_chunk(tfm, True, [DATA, DATA[:100]], [PAGE_SIZE, PAGE_SIZE])
            assert [zlib.decompress(o) for o in out] == [DATA, DATA[:100]]  # type: ignore[arg-type]
            assert probe.made == made  # no context of its own: the stream's
            assert len(probe.seen) == 2
            ctxs = {ctx for ctx, _, _ in probe.seen}
            assert ctxs <= set(scomp_streams.scomp_streams(probe).contexts().values())
            assert all(atomic for _, atomic, _ in probe.seen)
        finally:
            acomp.crypto_free_acomp(tfm)
