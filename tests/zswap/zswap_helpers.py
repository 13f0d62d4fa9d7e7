"""Helpers shared by the zswap tests."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from zswap import Zswap

#: The asynchronous compressor of these tests: faulty(...) around lz4-scomp, completing from a
#: thread (not around the best lz4, which may be lz4-opencl).
ASYNC = "faulty(lz4-scomp)"
#: The key of its fault plan (the instance's cra_name).
PLAN = "faulty(lz4)"


def random_prefix_page(seed: int, n: int) -> bytes:
    """`n` random bytes then zeros: lz4 output about `n` + 20 bytes, the same for every seed."""
    return random.Random(seed).randbytes(n) + bytes(4096 - n)


async def wait_until(cond: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll `cond()` until true: a driver's thread changes what it reads, and cannot set an
    anyio.Event of the loop."""
    with anyio.fail_after(seconds):
        while not cond():  # noqa: ASYNC110
            await anyio.sleep(0.001)


def file_page(path: str, offset: int) -> bytes:
    """Page `offset` of a swap file, read straight from the file."""
    with open(path, "rb") as f:
        return os.pread(f.fileno(), 4096, offset * 4096)


async def assert_loads_back(zs: Zswap, pages: Mapping[int, bytes]) -> None:
    """Each offset of `pages` (swap type 0) loads from `zs` successfully, as its page."""
    out = bytearray(4096)
    for off, page in pages.items():
        assert await zs.load(0, off, out) == 0, off
        assert out == page, off
