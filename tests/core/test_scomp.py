"""The scomp wrapper's rules (crypto/scompress.c, v5.12 - v6.14 with the v6.8 fix)."""

from __future__ import annotations

import errno
from typing import Any

import numpy as np
import pytest
from algs import ZScomp, registered

import acomp
from acomp import SCOMP_SCRATCH_SIZE, sched, scompress
from acomp.scatterlist import sg_init_one, sg_init_table, sg_set_buf


def _req(tfm: acomp.CryptoAcomp, src: Any, dst: Any, slen: int, dlen: int) -> acomp.AcompReq:
    req = acomp.acomp_request_alloc(tfm)
    assert req is not None
    acomp.acomp_request_set_params(req, src, dst, slen, dlen)
    return req


@pytest.fixture
def lz4tfm() -> Any:
    tfm = acomp.crypto_alloc_acomp("lz4-scomp")
    yield tfm
    acomp.crypto_free_acomp(tfm)


PAGE = (b"abcdefgh" * 64 + bytes(range(256)) * 2) * 3


@pytest.mark.parametrize(
    ("src", "slen", "dst_len", "dlen"),
    [
        (None, 10, 100, 100),  # no src
        (PAGE, 0, 100, 100),  # slen 0
        (bytes(SCOMP_SCRATCH_SIZE + 1), SCOMP_SCRATCH_SIZE + 1, 100, 100),  # slen > scratch
        (PAGE, len(PAGE), 100, 0),  # a dst with dlen 0
        (b"abc", 10, 100, 100),  # slen longer than the buffer behind src
    ],
)
def test_invalid_requests_are_einval(lz4tfm: Any, src: Any, slen: int, dst_len: int,
                                     dlen: int) -> None:
    dst = bytearray(dst_len)
    req = _req(lz4tfm, None if src is None else sg_init_one(src), sg_init_one(dst), slen, dlen)
    assert acomp.crypto_acomp_compress(req) == -errno.EINVAL
    assert dst == bytearray(dst_len)  # nothing written
    acomp.acomp_request_free(req)


def test_compress_into_too_small_dst_is_einval_and_writes_nothing(lz4tfm: Any) -> None:
    """crypto/lz4.c: LZ4_compress_default() gives 0, -EINVAL; the reason (beyond the kernel)
    says the output did not fit."""
    dst = bytearray(32 + 8)
    req = _req(lz4tfm, sg_init_one(PAGE), sg_init_one(memoryview(dst)[:32]), len(PAGE), 32)
    assert acomp.crypto_acomp_compress(req) == -errno.EINVAL
    assert req.reason == -errno.ENOSPC
    assert dst == bytearray(40)
    acomp.acomp_request_free(req)


def test_decompress_into_too_small_dst_is_einval_with_the_reason(lz4tfm: Any) -> None:
    import lz4.block

    blob = lz4.block.compress(PAGE, store_size=False)
    dst = bytearray(len(PAGE) - 1 + 16)
    req = _req(lz4tfm, sg_init_one(blob), sg_init_one(memoryview(dst)[: len(PAGE) - 1]), len(blob),
               len(PAGE) - 1)
    assert acomp.crypto_acomp_decompress(req) == -errno.EINVAL  # the kernel's code
    assert req.reason == -errno.ENOSPC  # beyond the kernel: too small
    assert dst == bytearray(len(dst))
    acomp.acomp_request_set_params(req, sg_init_one(b"\xff" * 20), sg_init_one(dst), 20, len(dst))
    assert acomp.crypto_acomp_decompress(req) == -errno.EINVAL
    assert req.reason == 0  # corrupt: no reason to give
    acomp.acomp_request_free(req)


def test_dlen_is_capacity_in_and_produced_out(lz4tfm: Any) -> None:
    import lz4.block

    dst = bytearray(8192)
    req = _req(lz4tfm, sg_init_one(PAGE), sg_init_one(dst), len(PAGE), len(dst))
    assert acomp.crypto_acomp_compress(req) == 0
    assert req.dlen == len(lz4.block.compress(PAGE, store_size=False))
    assert lz4.block.decompress(bytes(dst[: req.dlen]), uncompressed_size=len(PAGE)) == PAGE
    acomp.acomp_request_free(req)


def test_dst_capacity_is_clamped_to_the_buffer_really_given(lz4tfm: Any) -> None:
    backing = bytearray(100)
    dst = sg_init_one(memoryview(backing)[:50])
    req = _req(lz4tfm, sg_init_one(PAGE), dst, len(PAGE), 10_000)  # claims more than it has
    assert acomp.crypto_acomp_compress(req) == -errno.EINVAL  # lz4's code: does not fit 50
    assert req.reason == -errno.ENOSPC
    assert backing == bytearray(100)
    acomp.acomp_request_free(req)


def test_null_dst_allocates_output(lz4tfm: Any) -> None:
    req = _req(lz4tfm, sg_init_one(PAGE), None, len(PAGE), 0)
    assert req.flags & acomp.CRYPTO_ACOMP_ALLOC_OUTPUT
    assert acomp.crypto_acomp_compress(req) == 0
    assert req.dst is not None
    assert req.dst.length == req.dlen
    blob = req.dst.tobytes()
    acomp.acomp_request_set_params(req, sg_init_one(blob), None, len(blob), 0)
    assert acomp.crypto_acomp_decompress(req) == 0
    assert req.dst is not None
    assert req.dst.tobytes() == PAGE
    acomp.acomp_request_free(req)
    assert req.dst is None  # freed with the request (dst_free)


def test_scatterlists_with_several_entries(lz4tfm: Any) -> None:
    src = sg_init_table(3)
    a, b, c = PAGE[:100], PAGE[100:1000], PAGE[1000:]
    sg_set_buf(src, 0, a)
    sg_set_buf(src, 1, bytearray(b))
    sg_set_buf(src, 2, np.frombuffer(c, np.uint8).copy())
    d1, d2 = bytearray(7), bytearray(8192)
    dst = sg_init_table(2)
    sg_set_buf(dst, 0, d1)
    sg_set_buf(dst, 1, d2)
    req = _req(lz4tfm, src, dst, len(PAGE), 8192 + 7)
    assert acomp.crypto_acomp_compress(req) == 0
    blob = (d1 + d2)[: req.dlen]
    import lz4.block

    assert lz4.block.decompress(bytes(blob), uncompressed_size=len(PAGE)) == PAGE
    acomp.acomp_request_free(req)


def test_readonly_dst_is_refused(lz4tfm: Any) -> None:
    req = _req(lz4tfm, sg_init_one(PAGE), sg_init_one(bytes(8192)), len(PAGE), 8192)
    assert acomp.crypto_acomp_compress(req) == -errno.EINVAL
    acomp.acomp_request_free(req)


class Sleepy(ZScomp):
    """Sleeps inside compress: a bug, since scomp runs under the scratch spin lock."""

    def compress(self, tfm: Any, src: memoryview, dst: memoryview, ctx: Any) -> int:
        sched.might_sleep()
        return super().compress(tfm, src, dst, ctx)


def test_scomp_runs_in_atomic_context() -> None:
    alg = Sleepy("tsleepy", "tsleepy-drv")
    with registered(alg):
        sched.reset()
        tfm = acomp.crypto_alloc_acomp("tsleepy")
        req = _req(tfm, sg_init_one(PAGE), sg_init_one(bytearray(8192)), len(PAGE), 8192)
        with pytest.raises(sched.SleepInAtomicError) as ei:
            acomp.crypto_acomp_compress(req)
        text = str(ei.value)
        assert text.startswith("BUG: sleeping function called from invalid context at")
        assert "in_atomic(): 1, irqs_disabled(): 0" in text
        assert "scomp_scratch.lock" in text
        assert "Preemption disabled at:" in text
        assert "_comp_decomp" in text
        assert not sched.in_atomic()  # the lock was released on the way out
        acomp.acomp_request_free(req)
        acomp.crypto_free_acomp(tfm)


def test_scratch_is_per_cpu_and_refcounted() -> None:
    before = scompress.scratch_users()
    t1 = acomp.crypto_alloc_acomp("lz4-scomp")
    t2 = acomp.crypto_alloc_acomp("zstd-scomp")
    assert scompress.scratch_users() == before + 2
    with sched.on_cpu(0):
        s0 = scompress._scratch.this_cpu()
    if sched.nr_cpu_ids() > 1:
        with sched.on_cpu(1):
            assert scompress._scratch.this_cpu() is not s0
    acomp.crypto_free_acomp(t1)
    acomp.crypto_free_acomp(t2)
    assert scompress.scratch_users() == before


def test_request_owns_an_scomp_ctx_per_request() -> None:
    tfm = acomp.crypto_alloc_acomp("zstd-scomp")
    r1, r2 = acomp.acomp_request_alloc(tfm), acomp.acomp_request_alloc(tfm)
    assert r1 is not None
    assert r2 is not None
    assert r1.scomp_ctx is not None
    assert r1.scomp_ctx is not r2.scomp_ctx
    acomp.acomp_request_free(r1)
    acomp.acomp_request_free(r2)
    acomp.crypto_free_acomp(tfm)
