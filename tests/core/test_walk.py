"""The acomp walk a native acomp driver reads and writes a request through (acomp.walk).

Kernel: crypto/acompress.c of v6.16 (acomp_walk_virt, acomp_walk_next_src / _dst,
acomp_walk_done_src / _dst), include/crypto/internal/acompress.h (struct acomp_walk,
acomp_walk_more_src), include/crypto/scatterwalk.h (scatterwalk_next / scatterwalk_clamp
without CONFIG_HIGHMEM: a segment is at most PAGE_SIZE), and "crypto: deflate - Make the acomp
walk atomic" (v6.16: the atomic argument).
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

import pytest

import acomp
from acomp import CRYPTO_TFM_REQ_MAY_SLEEP, PAGE_SIZE, UnsupportedKernel, sched
from acomp.internal import (
    AcompWalk,
    acomp_walk_done_dst,
    acomp_walk_done_src,
    acomp_walk_more_src,
    acomp_walk_next_dst,
    acomp_walk_next_src,
    acomp_walk_virt,
)
from acomp.walk import ACOMP_WALK_DST_LINEAR, ACOMP_WALK_SLEEP, ACOMP_WALK_SRC_LINEAR

DATA = bytes(range(256)) * 64  # 16 KiB, every offset distinguishable


@pytest.fixture
def tfm() -> Iterator[acomp.CryptoAcomp]:
    with acomp.using_kernel("6.16"):
        t = acomp.crypto_alloc_acomp("lz4-scomp")
    yield t
    acomp.crypto_free_acomp(t)


@pytest.fixture
def req(tfm: acomp.CryptoAcomp) -> Iterator[acomp.AcompReq]:
    r = acomp.acomp_request_alloc(tfm)
    assert r is not None
    yield r
    acomp.acomp_request_free(r)


def _sgl(*sizes: int, data: bytes = DATA) -> acomp.Scatterlist:
    sgl = acomp.sg_init_table(len(sizes))
    at = 0
    for i, n in enumerate(sizes):
        acomp.sg_set_buf(sgl, i, bytearray(data[at:at + n]))
        at += n
    return sgl


def _walk_src(walk: AcompWalk) -> list[bytes]:
    segs = []
    while n := acomp_walk_next_src(walk):
        segs.append(bytes(walk.src[:n]))
        acomp_walk_done_src(walk, n)
    return segs


def test_a_scatterlist_is_walked_entry_by_entry_at_most_a_page_at_a_time(
        req: acomp.AcompReq) -> None:
    """scatterwalk_next: min(what is left, the rest of the entry, PAGE_SIZE); acomp_walk_done_src
    advances; an entry used up moves to the next (scatterwalk_clamp's sg_next)."""
    src = _sgl(3000, 5000, 100)
    acomp.acomp_request_set_params(req, src, _sgl(9000), 8100, 9000)
    walk = AcompWalk()
    assert acomp_walk_virt(walk, req, True) == 0
    assert walk.flags == 0
    segs = _walk_src(walk)
    assert [len(s) for s in segs] == [3000, 4096, 904, 100]
    assert b"".join(segs) == DATA[:8100]
    assert walk.slen == 0
    assert acomp_walk_next_src(walk) == 0  # walked


def test_slen_stops_the_walk_inside_an_entry(req: acomp.AcompReq) -> None:
    acomp.acomp_request_set_params(req, _sgl(3000, 5000), _sgl(100), 3500, 100)
    walk = AcompWalk()
    assert acomp_walk_virt(walk, req, True) == 0
    assert [len(s) for s in _walk_src(walk)] == [3000, 500]


def test_a_partly_consumed_segment_is_mapped_again_from_where_it_stopped(
        req: acomp.AcompReq) -> None:
    """acomp_walk_done_src(walk, used) with used below the segment: the next call maps the
    rest (a compressor that took part of its input); acomp_walk_more_src tells whether more
    than the segment just mapped is left."""
    acomp.acomp_request_set_params(req, _sgl(4000), _sgl(100), 4000, 100)
    walk = AcompWalk()
    assert acomp_walk_virt(walk, req, True) == 0
    assert acomp_walk_next_src(walk) == 4000
    assert not acomp_walk_more_src(walk, 4000)
    acomp_walk_done_src(walk, 1000)
    assert acomp_walk_next_src(walk) == 3000
    assert bytes(walk.src) == DATA[1000:4000]


def test_the_destination_is_written_segment_by_segment(req: acomp.AcompReq) -> None:
    dst = _sgl(100, 6000, data=bytes(6100))
    acomp.acomp_request_set_params(req, _sgl(10), dst, 10, 6100)
    walk = AcompWalk()
    assert acomp_walk_virt(walk, req, True) == 0
    got: list[int] = []
    while n := acomp_walk_next_dst(walk):
        walk.dst[:n] = bytes([len(got) + 1]) * n
        got.append(n)
        acomp_walk_done_dst(walk, n)
    assert got == [100, 4096, 1904]
    assert dst[0] == b"\x01" * 100
    assert dst[1] == b"\x02" * 4096 + b"\x03" * 1904
    assert acomp_walk_next_dst(walk) == 0  # full: a driver answers -ENOSPC


def test_a_virtual_buffer_is_one_linear_segment(req: acomp.AcompReq) -> None:
    """CRYPTO_ACOMP_REQ_SRC_VIRT / DST_VIRT: ACOMP_WALK_SRC_LINEAR / DST_LINEAR, and the
    segment is the whole buffer (min(slen, UINT_MAX)), not cut at pages."""
    out = bytearray(3 * PAGE_SIZE)
    acomp.acomp_request_set_src_dma(req, DATA, len(DATA))
    acomp.acomp_request_set_dst_dma(req, out, len(out))
    walk = AcompWalk()
    assert acomp_walk_virt(walk, req, True) == 0
    assert walk.flags == ACOMP_WALK_SRC_LINEAR | ACOMP_WALK_DST_LINEAR
    assert acomp_walk_next_src(walk) == len(DATA)
    assert acomp_walk_next_dst(walk) == len(out)


def test_a_walk_that_may_sleep_cuts_linear_segments_at_pages(req: acomp.AcompReq) -> None:
    """MAY_SLEEP and not atomic: ACOMP_WALK_SLEEP; without full preemption
    (preempt_model_preemptible() false) a linear segment is then at most PAGE_SIZE."""
    acomp.acomp_request_set_src_dma(req, DATA, len(DATA))
    acomp.acomp_request_set_dst_dma(req, bytearray(64), 64)
    acomp.acomp_request_set_callback(req, CRYPTO_TFM_REQ_MAY_SLEEP, None, None)
    walk = AcompWalk()
    assert acomp_walk_virt(walk, req, False) == 0
    assert walk.flags & ACOMP_WALK_SLEEP
    assert [len(s) for s in _walk_src(walk)] == [PAGE_SIZE] * 4
    atomic = AcompWalk()
    assert acomp_walk_virt(atomic, req, True) == 0  # the atomic argument drops the bit
    assert not atomic.flags & ACOMP_WALK_SLEEP
    assert acomp_walk_next_src(atomic) == len(DATA)


def test_a_sleeping_walk_under_a_lock_is_the_kernel_test_robots_splat(
        req: acomp.AcompReq) -> None:
    """deflate's first acomp conversion walked with MAY_SLEEP under its per-CPU stream lock:
    acomp_walk_done_src's cond_resched() reported "BUG: sleeping function called from invalid
    context" (fixed by the atomic argument). The same walk, atomic, reports nothing."""
    acomp.acomp_request_set_params(req, _sgl(100), _sgl(100), 100, 100)
    acomp.acomp_request_set_callback(req, CRYPTO_TFM_REQ_MAY_SLEEP, None, None)
    lock = sched.SpinLock("deflate_stream.lock")
    for atomic in (True, False):
        walk = AcompWalk()
        assert acomp_walk_virt(walk, req, atomic) == 0
        n = acomp_walk_next_src(walk)
        with lock:
            if atomic:
                acomp_walk_done_src(walk, n)
                continue
            with pytest.raises(sched.SleepInAtomicError) as ei:
                acomp_walk_done_src(walk, n)
        text = str(ei.value)
        assert "BUG: sleeping function called from invalid context at acomp/walk.py" in text
        assert "deflate_stream.lock" in text


@pytest.mark.parametrize(("slen", "dlen"), [(0, 100), (100, 0)])
def test_a_zero_length_is_einval(req: acomp.AcompReq, slen: int, dlen: int) -> None:
    """acomp_walk_virt's one check: !walk->slen || !walk->dlen."""
    acomp.acomp_request_set_params(req, _sgl(100), _sgl(100), slen, dlen)
    assert acomp_walk_virt(AcompWalk(), req, True) == -errno.EINVAL


def test_what_the_kernel_trusts_is_refused_or_clamped(req: acomp.AcompReq) -> None:
    """Beyond the kernel: a source shorter than slen, a negative length, a missing or
    read-only destination are -EINVAL; dlen above the destination is clamped to it."""
    for src, dst, slen, dlen in ((_sgl(100), _sgl(100), 101, 100),
                                 (_sgl(100), _sgl(100), -1, 100),
                                 (_sgl(100), acomp.sg_init_one(bytes(100)), 100, 100)):
        acomp.acomp_request_set_params(req, src, dst, slen, dlen)
        assert acomp_walk_virt(AcompWalk(), req, True) == -errno.EINVAL
    acomp.acomp_request_set_params(req, _sgl(100), None, 100, 100)
    assert acomp_walk_virt(AcompWalk(), req, True) == -errno.EINVAL
    acomp.acomp_request_set_params(req, _sgl(100), _sgl(50), 100, 9999)
    walk = AcompWalk()
    assert acomp_walk_virt(walk, req, True) == 0
    assert walk.dlen == 50
    assert acomp_walk_next_dst(walk) == 50


def test_empty_entries_are_skipped(req: acomp.AcompReq) -> None:
    src = acomp.sg_init_table(3)
    acomp.sg_set_buf(src, 0, b"")
    acomp.sg_set_buf(src, 2, b"abc")
    acomp.acomp_request_set_params(req, src, _sgl(10), 3, 10)
    walk = AcompWalk()
    assert acomp_walk_virt(walk, req, True) == 0
    assert _walk_src(walk) == [b"abc"]


def test_the_walk_is_refused_before_6_16() -> None:
    tfm = acomp.crypto_alloc_acomp("lz4-scomp")  # the default kernel, 6.14
    req = acomp.acomp_request_alloc(tfm)
    assert req is not None
    acomp.acomp_request_set_params(req, _sgl(10), _sgl(10), 10, 10)
    with pytest.raises(UnsupportedKernel, match=r"acomp_walk_virt is in v6\.16 and later"):
        acomp_walk_virt(AcompWalk(), req, True)
    acomp.acomp_request_free(req)
    acomp.crypto_free_acomp(tfm)
