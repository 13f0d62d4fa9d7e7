"""Scatterlists: copies across entries, skips and short buffers."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from acomp.scatterlist import (
    sg_copy_from_buffer,
    sg_copy_to_buffer,
    sg_init_one,
    sg_init_table,
    sg_set_buf,
)


@given(data=st.binary(min_size=0, max_size=300), cuts=st.lists(st.integers(0, 300), max_size=5),
       skip=st.integers(0, 320), buflen=st.integers(0, 320))
def test_copy_to_and_from_match_a_linear_buffer(data: bytes, cuts: list[int], skip: int,
                                                buflen: int) -> None:
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    parts = [bytearray(data[a:b]) for a, b in itertools.pairwise(bounds)] or [
        bytearray()]
    sgl = sg_init_table(len(parts))
    for i, p in enumerate(parts):
        sg_set_buf(sgl, i, p)
    assert sgl.length == len(data)
    out = bytearray(buflen)
    n = sg_copy_to_buffer(sgl, out, buflen, skip)
    expect = data[skip : skip + buflen]
    assert n == len(expect)
    assert bytes(out[:n]) == expect
    fill = bytes(range(256)) * 2
    m = sg_copy_from_buffer(sgl, fill, buflen, skip)
    assert m == n
    joined = b"".join(bytes(p) for p in parts)
    assert joined[skip : skip + m] == fill[:m]
    assert joined[:skip] == data[:skip]
    assert joined[skip + m :] == data[skip + m :]


def test_readonly_entries_make_a_readonly_list() -> None:
    assert not sg_init_one(b"abc").writable
    assert sg_init_one(bytearray(3)).writable
    sgl = sg_init_table(2)
    sg_set_buf(sgl, 0, bytearray(2))
    sg_set_buf(sgl, 1, b"xy")
    assert not sgl.writable
    assert sgl.length == 4
