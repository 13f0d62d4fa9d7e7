"""Property: whatever is stored, freed in whatever order and compacted, every live object reads
back byte-exact, on every backend, and freeing the rest gives every page back."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from zpool_backends import BACKENDS

import zswap
from acomp import sched
from zswap import zsmalloc
from zswap.page import GFP_KERNEL, GFP_NOWAIT, PAGE_SIZE, PhysMem
from zswap.zpool import Zpool

MAX_SIZE = {"zsmalloc": PAGE_SIZE, "zbud": 3968, "z3fold": PAGE_SIZE}

# An op: ("alloc", size, seed) | ("free", pick, 0) | ("rewrite", pick, seed) | ("compact", 0, 0)
Op = tuple[str, int, int]
sizes = st.one_of(st.integers(1, 64), st.integers(65, 1200), st.integers(1201, PAGE_SIZE))
ops = st.lists(
    st.one_of(
        st.tuples(st.just("alloc"), sizes, st.integers(0, 2**32)),
        st.tuples(st.just("free"), st.integers(0, 2**16), st.just(0)),
        st.tuples(st.just("rewrite"), st.integers(0, 2**16), st.integers(0, 2**32)),
        st.just(("compact", 0, 0)),
    ),
    max_size=120,
)


def write(pool: Zpool, h: int, data: bytes, sleepable: bool) -> None:
    if sleepable:
        zswap.zpool_obj_write(pool, h, data, len(data))
        return
    v = zswap.zpool_map_handle(pool, h, zswap.ZPOOL_MM_WO)
    v[:] = data
    zswap.zpool_unmap_handle(pool, h)


def read(pool: Zpool, h: int, sleepable: bool) -> bytes:
    if sleepable:
        local = bytearray(PAGE_SIZE)
        v = zswap.zpool_obj_read_begin(pool, h, local)
        out = bytes(v)
        zswap.zpool_obj_read_end(pool, h, v)
        return out
    v = zswap.zpool_map_handle(pool, h, zswap.ZPOOL_MM_RO)
    out = bytes(v)
    zswap.zpool_unmap_handle(pool, h)
    return out


def check_groups(pool: zsmalloc.ZsPool) -> None:
    """Each class's fullness lists, their counts and the mask of non-empty groups agree (the
    allocation takes the highest bit of the mask as the fullest non-full group)."""
    for i, cls in enumerate(pool.size_class):
        if cls.index != i:
            continue
        for fg, head in enumerate(cls.heads):
            n, node = 0, head.next
            while node is not head:
                n, node = n + 1, node.next
            assert cls.fg_count[fg] == n
            assert bool(cls.fg_mask >> fg & 1) == (n > 0)
        assert cls.fg_mask >> len(cls.heads) == 0


def run(backend: str, program: list[Op]) -> None:
    type_, opts = BACKENDS[backend]
    sleepable = bool(opts.get("sleepable_reads"))
    mem = PhysMem(1024)
    pool = zswap.zpool_create_pool(type_, "prop", GFP_KERNEL, mem=mem, **opts)
    assert pool is not None
    live: dict[int, bytes] = {}
    for op in program:
        if op[0] == "alloc":
            size = min(op[1], MAX_SIZE[type_])
            data = random.Random(op[2]).randbytes(size)
            ret, h = zswap.zpool_malloc(pool, size, GFP_NOWAIT)
            assert ret == 0
            assert h not in live
            write(pool, h, data, sleepable)
            live[h] = data
        elif op[0] in ("free", "rewrite") and live:
            h = sorted(live)[op[1] % len(live)]
            if op[0] == "free":
                zswap.zpool_free(pool, h)
                del live[h]
            else:
                data = random.Random(op[2]).randbytes(len(live[h]))
                write(pool, h, data, sleepable)
                live[h] = data
        elif op[0] == "compact" and type_ == "zsmalloc":
            zsmalloc.zs_compact(pool.pool)
        if type_ == "zsmalloc":
            check_groups(pool.pool)
        held = zswap.zpool_get_total_size(pool)
        assert held == mem.nr_used_pages * PAGE_SIZE
        assert held >= sum(len(d) for d in live.values())
    if type_ == "zsmalloc":
        zsmalloc.zs_compact(pool.pool)
        assert sum(r.freeable for r in zsmalloc.zs_class_stats(pool.pool)) == 0
    for h, data in live.items():
        assert read(pool, h, sleepable) == data
    for h in live:
        zswap.zpool_free(pool, h)
    assert zswap.zpool_get_total_size(pool) == 0
    assert mem.nr_used_pages == 0
    zswap.zpool_destroy_pool(pool)


def _test(backend: str, checks: bool = True) -> object:
    @settings(max_examples=50, deadline=None)
    @given(program=ops)
    def test(program: list[Op]) -> None:
        old = sched.set_debug_checks(checks)
        try:
            run(backend, program)
        finally:
            sched.set_debug_checks(old)

    test.__name__ = (f"test_roundtrip_{backend.replace('-', '_').replace('.', '')}"
                     f"{'' if checks else '_checks_off'}")
    return test


test_roundtrip_zsmalloc = _test("zsmalloc")
test_roundtrip_zsmalloc_v63 = _test("zsmalloc-v6.3")
test_roundtrip_zsmalloc_v615 = _test("zsmalloc-v6.15")
# zsmalloc's mapping takes a shorter path without the debug checks: the same data comes back.
test_roundtrip_zsmalloc_checks_off = _test("zsmalloc", checks=False)
test_roundtrip_zsmalloc_v63_checks_off = _test("zsmalloc-v6.3", checks=False)
test_roundtrip_zbud = _test("zbud")
test_roundtrip_z3fold = _test("z3fold")


@settings(max_examples=50, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 3968), min_size=1, max_size=150),
    order=st.randoms(use_true_random=False),
)
def test_free_in_any_order_then_compact(sizes: list[int], order: random.Random) -> None:
    """Store the same objects in every backend, free half in random order, compact, read."""
    for backend in BACKENDS:
        prog: list[Op] = [("alloc", s, i) for i, s in enumerate(sizes)]
        picks = list(range(len(sizes)))
        order.shuffle(picks)
        prog += [("free", p, 0) for p in picks[: len(sizes) // 2]]
        prog.append(("compact", 0, 0))
        run(backend, prog)
