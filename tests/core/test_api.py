"""The Python layer: acomp.open, typed errors, any buffer."""

from __future__ import annotations

import array
import errno

import numpy as np
import pytest

import acomp
from acomp import corpus

pytestmark = pytest.mark.anyio

DATA = corpus.pages(2, seed=3)[1].tobytes()


@pytest.mark.parametrize(
    "make",
    [bytes, bytearray, memoryview, lambda b: np.frombuffer(b, np.uint8),
     lambda b: array.array("B", b)],
    ids=["bytes", "bytearray", "memoryview", "numpy", "array"],
)
async def test_any_buffer(make: object) -> None:
    async with acomp.open("lz4") as c:
        blob = await c.compress(make(DATA))  # type: ignore[operator]
        out = await c.decompress(make(blob), len(DATA))  # type: ignore[operator]
        assert out == DATA
        buf = bytearray(len(DATA))
        assert await c.decompress_into(make(blob), buf) == len(DATA)  # type: ignore[operator]
        assert buf == DATA


async def test_errors_are_typed_and_distinct() -> None:
    async with acomp.open("zstd") as c:
        blob = await c.compress(DATA)
        with pytest.raises(acomp.OutputTooSmall) as small:
            await c.decompress(blob, len(DATA) - 1)
        assert small.value.errno < 0
        with pytest.raises(acomp.BadData):
            await c.decompress(b"\x28\xb5\x2f\xfd" + b"\x00" * 20, 4096)
        with pytest.raises(acomp.OutputTooSmall):
            await c.compress_into(DATA, bytearray(8))
        with pytest.raises(ValueError, match="empty"):
            await c.compress(b"")
    with pytest.raises(acomp.AlgorithmNotFound):
        async with acomp.open("no-such-alg"):
            pass


async def test_many() -> None:
    pages = [p.tobytes() for p in corpus.pages(20, seed=4)]
    async with acomp.open("lz4-scomp") as c:
        blobs = await c.compress_many(pages)
        assert await c.decompress_many(blobs, 4096) == pages
        st = c.statistics()
        assert st.compressed == 20
        assert st.decompressed == 20
        assert st.requests_in_flight == 0


async def test_batch_api_generic_path() -> None:
    pages = corpus.pages(16, seed=5)
    tfm = acomp.crypto_alloc_acomp("lz4-scomp")
    try:
        res = await acomp.crypto_acomp_batch_compress(tfm, pages)
        assert res.ok
        assert len(res) == 16
        back = await acomp.crypto_acomp_batch_decompress(tfm, res.tolist(), capacity=4096)
        assert back.ok
        assert all(back.item(i) == pages[i].tobytes() for i in range(16))
        small = await acomp.crypto_acomp_batch_decompress(tfm, res.tolist(), capacity=100)
        # an item's "does not fit" is -ENOSPC on every driver (the reason under lz4's -EINVAL)
        assert any(s == -errno.ENOSPC for s in small.sizes)
        with pytest.raises(acomp.OutputTooSmall):
            small.tolist()
    finally:
        acomp.crypto_free_acomp(tfm)


def test_proc_crypto_format() -> None:
    """crypto/proc.c c_show: the fields in order, keys padded to 12 columns, and a blank line
    after every entry, the last one included (seq_putc(m, '\\n') at "out:")."""
    tfm = acomp.crypto_alloc_acomp("deflate-scomp")
    try:
        text = acomp.proc_crypto()
    finally:
        acomp.crypto_free_acomp(tfm)
    assert text.endswith("\n\n")
    assert not text.endswith("\n\n\n")
    entries = text[:-2].split("\n\n")
    assert all(e and e.startswith("name         : ") for e in entries)
    block = next(b for b in entries if "driver       : deflate-scomp" in b)
    assert block.splitlines() == [
        "name         : deflate",
        "driver       : deflate-scomp",
        "module       : deflate",
        "priority     : 0",
        # crypto/scompress.c crypto_init_scomp_ops_async: the lookup's reference plus
        # crypto_mod_get(calg) for the inner crypto_scomp tfm, on top of registration's 1.
        "refcnt       : 3",
        "selftest     : passed",
        "internal     : no",
        "type         : scomp",
    ]


def _refcnt(driver: str) -> int:
    block = next(b for b in acomp.proc_crypto().split("\n\n")
                 if f"driver       : {driver}\n" in b)
    return int(block.split("refcnt       : ")[1].split("\n")[0])


def test_proc_crypto_refcnt_of_acomp_and_scomp_tfms() -> None:
    """crypto/api.c crypto_alloc_tfm_node holds the lookup's reference for the tfm's life
    (crypto_destroy_tfm puts it); an scomp algorithm's acomp tfm takes one more in
    crypto_init_scomp_ops_async and gives it back in crypto_exit_scomp_ops_async."""
    from acomp.testing import FakeAsyncDriver

    with FakeAsyncDriver(name="fakeref", driver="fakeref-async"):
        base_s, base_a = _refcnt("lz4-scomp"), _refcnt("fakeref-async")
        s1 = acomp.crypto_alloc_acomp("lz4-scomp")
        a1 = acomp.crypto_alloc_acomp("fakeref-async")
        try:
            assert _refcnt("lz4-scomp") == base_s + 2
            assert _refcnt("fakeref-async") == base_a + 1
            s2 = acomp.crypto_alloc_acomp("lz4-scomp")
            assert _refcnt("lz4-scomp") == base_s + 4
            acomp.crypto_free_acomp(s2)
            assert _refcnt("lz4-scomp") == base_s + 2
        finally:
            acomp.crypto_free_acomp(s1)
            acomp.crypto_free_acomp(a1)
        assert (_refcnt("lz4-scomp"), _refcnt("fakeref-async")) == (base_s, base_a)


def test_exports() -> None:
    for name in acomp.__all__:
        assert hasattr(acomp, name), name
    import acomp.internal as internal

    for name in internal.__all__:
        assert hasattr(internal, name), name
    assert acomp.CRYPTO_ALG_TYPE_ACOMPRESS == 0xA
    assert acomp.CRYPTO_ALG_TYPE_SCOMPRESS == 0xB
    assert acomp.CRYPTO_ALG_TYPE_ACOMPRESS_MASK == 0xE
    assert acomp.CRYPTO_ALG_ASYNC == 0x80
    assert acomp.CRYPTO_ALG_TESTED == 0x400
    assert acomp.CRYPTO_TFM_REQ_MAY_SLEEP == 0x200
    assert acomp.CRYPTO_TFM_REQ_MAY_BACKLOG == 0x400
    assert acomp.CRYPTO_ACOMP_ALLOC_OUTPUT == 0x1
    assert acomp.SCOMP_SCRATCH_SIZE == 131072
    assert acomp.CRYPTO_ACOMP_DST_MAX == 131072


def test_import_acomp_does_not_import_pyopencl() -> None:
    import subprocess
    import sys

    code = "import acomp, sys; acomp.proc_crypto(); print('pyopencl' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
