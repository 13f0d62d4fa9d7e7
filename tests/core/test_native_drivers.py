"""deflate (v6.16) and zstd (v6.17) as native acomp drivers; scomp before; lz4, lz4hc, lzo stay
scomp.

Kernel: crypto/deflate.c of v6.16 ("crypto: deflate - Convert to acomp": deflate-generic,
CRYPTO_ALG_REQ_VIRT, deflate_compress_one / deflate_decompress_one over acomp_walk_virt under
crypto_acomp_lock_stream_bh), crypto/zstd.c of v6.17 ("crypto: zstd - convert to acomp":
zstd-generic, zstd_compress_one / zstd_decompress_one for one segment each side, the stream
otherwise), crypto/proc.c c_show with crypto_acomp_show ("type         : acomp").
"""

from __future__ import annotations

import errno
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import zstandard

import acomp
from acomp import PAGE_SIZE, sched
from acomp.algapi import crypto_alg_list, crypto_alg_sem

PAGE = (b"native acomp drivers walk their requests \x00\x01\x02 " * 100)[:PAGE_SIZE]
BIG = bytes(range(256)) * 16 + PAGE * 3  # 16 KiB: several segments on a scatterlist
NATIVE = {"deflate": ("deflate-generic", "6.16"), "zstd": ("zstd-generic", "6.17")}


def _ref_decompress(name: str, blob: bytes, n: int) -> bytes:
    if name == "deflate":
        return zlib.decompress(blob, -11, n)
    return zstandard.ZstdDecompressor().decompress(blob, max_output_size=n)


def _ref_compress(name: str, data: bytes) -> bytes:
    if name == "deflate":
        c = zlib.compressobj(6, zlib.DEFLATED, -11, 9)
        return c.compress(data) + c.flush()
    return zstandard.ZstdCompressor(level=3).compress(data)


class Tfm:
    def __init__(self, name: str, version: str) -> None:
        with acomp.using_kernel(version):
            self.tfm = acomp.crypto_alloc_acomp(name)
        req = acomp.acomp_request_alloc(self.tfm)
        assert req is not None
        self.req = req

    def run(self, compress: bool, src: acomp.Scatterlist, slen: int, dst: acomp.Scatterlist,
            dlen: int) -> int:
        acomp.acomp_request_set_params(self.req, src, dst, slen, dlen)
        op = acomp.crypto_acomp_compress if compress else acomp.crypto_acomp_decompress
        return op(self.req)

    def close(self) -> None:
        acomp.acomp_request_free(self.req)
        acomp.crypto_free_acomp(self.tfm)


@pytest.fixture(params=sorted(NATIVE))
def native(request: pytest.FixtureRequest) -> Iterator[tuple[str, Tfm]]:
    name = request.param
    t = Tfm(name, NATIVE[name][1])
    yield name, t
    t.close()


def _sgl(data: bytes, *sizes: int) -> acomp.Scatterlist:
    sgl = acomp.sg_init_table(len(sizes))
    at = 0
    for i, n in enumerate(sizes):
        acomp.sg_set_buf(sgl, i, bytearray(data[at:at + n]) if data else bytearray(n))
        at += n
    return sgl


@pytest.mark.parametrize(("name", "before", "since"), [
    ("deflate", "6.15", "6.16"), ("zstd", "6.16", "6.17")])
def test_each_kernel_finds_its_own_driver(name: str, before: str, since: str) -> None:
    """crypto_alloc_acomp(name) gives <name>-scomp (type scomp) up to the conversion and the
    native <name>-generic (type acomp) from it; /proc/crypto lists the one that kernel has."""
    for version, driver, ctype in ((before, f"{name}-scomp", "scomp"),
                                   (since, f"{name}-generic", "acomp"), ("7.0", f"{name}-generic",
                                                                         "acomp")):
        with acomp.using_kernel(version):
            tfm = acomp.crypto_alloc_acomp(name)
            text = acomp.proc_crypto()
        assert acomp.crypto_acomp_driver_name(tfm) == driver, version
        assert not acomp.acomp_is_async(tfm)
        acomp.crypto_free_acomp(tfm)
        block = next(b for b in text.split("\n\n") if f"driver       : {driver}\n" in b + "\n")
        assert f"type         : {ctype}" in block
        assert "selftest     : passed" in block
        other = f"{name}-scomp" if ctype == "acomp" else f"{name}-generic"
        assert f"driver       : {other}\n" not in text


@pytest.mark.parametrize("name", ["lz4", "lz4hc", "lzo"])
def test_lz4_lz4hc_and_lzo_stay_scomp(name: str) -> None:
    with acomp.using_kernel("7.0"):
        try:
            tfm = acomp.crypto_alloc_acomp(name)
        except acomp.CryptoError as e:
            pytest.skip(f"{name}: {e}")
        text = acomp.proc_crypto()
    driver = acomp.crypto_acomp_driver_name(tfm)
    acomp.crypto_free_acomp(tfm)
    assert driver == f"{name}-scomp"
    block = next(b for b in text.split("\n\n") if f"driver       : {driver}\n" in b + "\n")
    assert "type         : scomp" in block


@pytest.mark.parametrize("shape", ["one segment", "virtual", "segmented"])
def test_round_trip_and_interoperability(native: tuple[str, Tfm], shape: str) -> None:
    """One segment each side (zstd's one-call path), virtual buffers (linear walks) and
    scatterlists of several segments (the walked loops): the output is the format the library
    reads, and the library's output decompresses."""
    name, t = native
    data = PAGE if shape != "segmented" else BIG
    out = bytearray(2 * len(data) + 64)
    req = t.req
    if shape == "virtual":
        acomp.acomp_request_set_src_dma(req, data, len(data))
        acomp.acomp_request_set_dst_dma(req, out, len(out))
        assert acomp.crypto_acomp_compress(req) == 0
        blob = bytes(out[:req.dlen])
    else:
        dst = (acomp.sg_init_one(out) if shape == "one segment"
               else _sgl(b"", 1000, 3000, len(out) - 4000))
        src = acomp.sg_init_one(data) if shape == "one segment" else _sgl(data, 5000, 100,
                                                                          len(data) - 5100)
        dlen = PAGE_SIZE if shape == "one segment" else len(out)
        assert t.run(True, src, len(data), dst, dlen) == 0
        blob = dst.tobytes(req.dlen)
    assert _ref_decompress(name, blob, len(data)) == data
    ref = _ref_compress(name, data)
    back = bytearray(len(data))
    dst2 = acomp.sg_init_one(back) if shape != "segmented" else _sgl(b"", 7, 4000,
                                                                     len(data) - 4007)
    src2 = acomp.sg_init_one(ref) if shape != "segmented" else _sgl(ref, 10, len(ref) - 10)
    assert t.run(False, src2, len(ref), dst2, len(data)) == 0
    assert req.dlen == len(data)
    assert dst2.tobytes(len(data)) == data


def test_pages_compressed_before_the_conversion_decompress_after_it() -> None:
    """An upgrade: what 6.15's deflate-scomp and 6.16's zstd-scomp wrote, 7.0's native
    drivers read, and the other way round."""
    for name, old in (("deflate", "6.15"), ("zstd", "6.16")):
        a, b = Tfm(name, old), Tfm(name, "7.0")
        try:
            for comp, dec in ((a, b), (b, a)):
                out = bytearray(2 * PAGE_SIZE)
                assert comp.run(True, acomp.sg_init_one(PAGE), PAGE_SIZE,
                                acomp.sg_init_one(out), len(out)) == 0
                n = comp.req.dlen
                back = bytearray(PAGE_SIZE)
                assert dec.run(False, acomp.sg_init_one(out[:n]), n, acomp.sg_init_one(back),
                               PAGE_SIZE) == 0
                assert bytes(back) == PAGE
        finally:
            a.close()
            b.close()


def _blob(name: str) -> bytes:
    return _ref_compress(name, PAGE)


@pytest.mark.parametrize("segmented", [False, True])
def test_the_kernels_codes(native: tuple[str, Tfm], segmented: bool) -> None:
    """deflate-generic: -ENOSPC when the destination is full first (the walk has no segment
    left), -EINVAL for a stream zlib rejects or that ends short. zstd-generic: on one segment
    each side zstd_compress_one / zstd_decompress_one's -EINVAL for every library error (the
    reason says -ENOSPC where the output did not fit); streamed, -EIO for a library error,
    -ENOSPC when the destination is full, -EINVAL for a frame the source ends inside."""
    name, t = native
    blob = _blob(name)

    def dec(src: bytes, cap: int) -> int:
        sg = _sgl(src, 3, len(src) - 3) if segmented else acomp.sg_init_one(src)
        dst = _sgl(b"", 100, cap - 100) if segmented else acomp.sg_init_one(bytearray(cap))
        return t.run(False, sg, len(src), dst, cap)

    def comp(cap: int) -> int:
        dst = _sgl(b"", 10, cap - 10) if segmented else acomp.sg_init_one(bytearray(cap))
        src = _sgl(PAGE, 100, PAGE_SIZE - 100) if segmented else acomp.sg_init_one(PAGE)
        return t.run(True, src, PAGE_SIZE, dst, cap)

    fast = name == "zstd" and not segmented
    too_small = -errno.EINVAL if fast else -errno.ENOSPC
    assert comp(len(blob) // 2) == too_small
    assert t.req.dlen == (0 if name == "zstd" else len(blob) // 2)
    assert dec(blob, PAGE_SIZE - 1) == too_small
    if fast:
        assert t.req.reason == -errno.ENOSPC  # beyond the kernel: it did not fit
    corrupt = bytearray(blob)
    corrupt[len(corrupt) // 2:] = b"\xff" * (len(corrupt) - len(corrupt) // 2)
    bad = dec(bytes(corrupt), PAGE_SIZE)
    assert bad == (-errno.EIO if name == "zstd" and segmented else -errno.EINVAL)
    # cut short: never success. deflate_decompress_one asks for more room before it sees
    # that the stream ended short, so a stream cut inside its end marker whose output filled
    # the destination is -ENOSPC; with room to spare it is -EINVAL (no Z_STREAM_END)
    assert dec(blob[:-1], PAGE_SIZE) == (-errno.ENOSPC if name == "deflate" else -errno.EINVAL)
    assert dec(blob[:-1], PAGE_SIZE + 200) == -errno.EINVAL
    assert dec(blob[:len(blob) // 2], PAGE_SIZE) == -errno.EINVAL
    acomp.acomp_request_set_params(t.req, acomp.sg_init_one(PAGE), acomp.sg_init_one(
        bytearray(10)), 0, 10)
    assert acomp.crypto_acomp_compress(t.req) == -errno.EINVAL  # acomp_walk_virt: slen 0


def test_a_request_runs_on_this_cpus_stream(native: tuple[str, Tfm]) -> None:
    """crypto_acomp_lock_stream_bh: the first tfm allocated CPU 0's stream
    (crypto_acomp_alloc_streams in the driver's init); a request on a CPU without a stream of
    its own borrows CPU 0's and the kworker makes that CPU's (acomp_stream_workfn)."""
    name, t = native
    driver = NATIVE[name][0]
    with crypto_alg_sem:
        alg: Any = next(a for a in crypto_alg_list if a.cra_driver_name == driver and not a.dead)
    assert 0 in alg.streams.contexts()
    with sched.on_cpu(1):
        out = bytearray(2 * PAGE_SIZE)
        assert t.run(True, acomp.sg_init_one(PAGE), PAGE_SIZE, acomp.sg_init_one(out),
                     len(out)) == 0
        assert alg.streams.stream_work.flush(10)
    assert 1 in alg.streams.contexts()
    assert _ref_decompress(name, bytes(out[:t.req.dlen]), PAGE_SIZE) == PAGE


@pytest.mark.anyio
@pytest.mark.parametrize("name", sorted(NATIVE))
async def test_the_python_layer_on_the_native_drivers(name: str) -> None:
    with acomp.using_kernel("7.0"):
        async with acomp.open(name) as c:
            assert c.driver == NATIVE[name][0]
            blob = await c.compress(BIG)
            assert await c.decompress(blob, len(BIG)) == BIG
            with pytest.raises(acomp.OutputTooSmall):
                await c.decompress(blob, len(BIG) - 1)
            with pytest.raises(acomp.BadData):
                await c.decompress(blob[:len(blob) // 2], len(BIG))
