"""The request boundary as properties (hypothesis): where the matrix picks eight length
classes, these draw any slen, dlen and destination size around the edges, and scatterlists
cut anywhere, on the synchronous CPU drivers (the kernel-style call returns the status)."""

from __future__ import annotations

import errno
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import acomp
from acomp.scatterlist import sg_init_one, sg_init_table, sg_set_buf
from acomp.testing.contract import DATA

DRIVERS = ["lz4-scomp", "lz4hc-scomp", "lzo-scomp", "zstd-scomp", "deflate-scomp"]
FILL, GUARD = 0x5A, 32
SETTINGS = settings(max_examples=60)
_TFMS: dict[str, acomp.CryptoAcomp] = {}
pytestmark = pytest.mark.module_tfms  # _TFMS: freed after the module
_BLOBS: dict[str, bytes] = {}


@pytest.fixture(scope="module", autouse=True)
def _free_tfms() -> Any:
    """The module shares one tfm per driver across examples; free them after it, so that
    later tests see the registry's reference counts as a fresh process would."""
    yield
    while _TFMS:
        acomp.crypto_free_acomp(_TFMS.popitem()[1])


def _tfm(driver: str) -> acomp.CryptoAcomp:
    if driver not in _TFMS:
        _TFMS[driver] = acomp.crypto_alloc_acomp(driver)
    return _TFMS[driver]


def _run(driver: str, compress: bool, src: bytes, slen: Any, cuts: list[int], size: int,
         dlen: Any) -> tuple[int, int, bytearray]:
    tfm = _tfm(driver)
    back = bytearray([FILL]) * (size + 2 * GUARD)
    region = memoryview(back)[GUARD : GUARD + size]
    if cuts:
        bounds = [0, *sorted(min(c, size) for c in cuts), size]
        dst = sg_init_table(len(bounds) - 1)
        for i in range(len(bounds) - 1):
            sg_set_buf(dst, i, region[bounds[i] : bounds[i + 1]])
    else:
        dst = sg_init_one(region)
    req = acomp.acomp_request_alloc(tfm)
    assert req is not None
    acomp.acomp_request_set_params(req, sg_init_one(src), dst, slen, dlen)
    ret = (acomp.crypto_acomp_compress if compress else acomp.crypto_acomp_decompress)(req)
    n = req.dlen
    acomp.acomp_request_free(req)
    return ret, n, back


def _blob(driver: str) -> bytes:
    if driver not in _BLOBS:
        ret, n, back = _run(driver, True, DATA, len(DATA), [], 2 * len(DATA), 2 * len(DATA))
        assert ret == 0
        _BLOBS[driver] = bytes(back[GUARD : GUARD + n])
    return _BLOBS[driver]


lengths = st.one_of(st.integers(-3, 4200), st.sampled_from([2**31, 2**40]),
                    st.floats(-2, 5000), st.none(), st.text(max_size=3))


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("compress", [True, False], ids=["compress", "decompress"])
@SETTINGS
@given(data=st.data())
def test_any_lengths_give_the_right_answer_or_einval(driver: str, compress: bool,
                                                     data: st.DataObject) -> None:
    src = DATA if compress else _blob(driver)
    slen = data.draw(st.one_of(st.just(len(src)), lengths), label="slen")
    size = data.draw(st.integers(0, 4200), label="dst size")
    dlen = data.draw(st.one_of(st.just(size), lengths), label="dlen")
    cuts = data.draw(st.lists(st.integers(0, 4200), max_size=3), label="cuts")
    ret, n, back = _run(driver, compress, src, slen, cuts, size, dlen)
    assert back[:GUARD] == bytes([FILL]) * GUARD, "wrote before the destination"
    assert back[GUARD + size :] == bytes([FILL]) * GUARD, "wrote past the destination"
    valid = (type(slen) is int and type(dlen) is int and 0 < slen <= len(src)
             and dlen >= 0 and min(dlen, size) > 0)
    if not valid:
        assert ret == -errno.EINVAL, (slen, dlen, size, ret)
        assert back.count(FILL) == len(back), "written although refused"
        return
    assert ret in (0, -errno.EINVAL, -errno.ENOSPC), ret
    if ret == 0:
        cap = min(dlen, size, acomp.SCOMP_SCRATCH_SIZE)
        assert 0 < n <= cap
        out = bytes(back[GUARD : GUARD + n])
        if compress:  # the output decodes to the input
            r2, n2, b2 = _run(driver, False, out, n, [], 2 * len(DATA), 2 * len(DATA))
            assert r2 == 0
            assert bytes(b2[GUARD : GUARD + n2]) == src[:slen]
        elif slen == len(src):  # (a cut block may be a shorter valid one: any output)
            assert out == DATA
    elif slen == len(src):  # the whole input: refused only when the output does not fit
        need = len(_blob(driver)) if compress else len(DATA)
        assert min(dlen, size) < need, f"{errno.errorcode[-ret]} although it fits"
