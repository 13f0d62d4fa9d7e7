"""Misuse is a clear error, never silent corruption: stale, foreign and made-up handles, double
free, unmapping what is not mapped, writing through a read-only mapping, using a view after
unmap, freeing while mapped, and (zsmalloc) two mappings on one CPU."""

from __future__ import annotations

import logging

import pytest
from zpool_backends import BACKENDS

import zswap
from acomp import sched
from zswap import zsmalloc
from zswap.page import GFP_KERNEL, GFP_NOWAIT, PhysMem
from zswap.zpool import Zpool


@pytest.fixture(params=list(BACKENDS))
def pool(request: pytest.FixtureRequest, mem: PhysMem) -> Zpool:
    type_, opts = BACKENDS[request.param]
    p = zswap.zpool_create_pool(type_, "safety", GFP_KERNEL, mem=mem, **opts)
    assert p is not None
    return p


def alloc(pool: Zpool, size: int = 100, data: bytes | None = None) -> int:
    ret, h = zswap.zpool_malloc(pool, size, GFP_NOWAIT)
    assert ret == 0
    if data is not None:
        v = zswap.zpool_map_handle(pool, h, zswap.ZPOOL_MM_WO)
        v[:] = data
        zswap.zpool_unmap_handle(pool, h)
    return h


def test_use_after_free_is_detected(pool: Zpool) -> None:
    h = alloc(pool)
    zswap.zpool_free(pool, h)
    alloc(pool)  # the slot is reused by someone else
    with pytest.raises(zswap.UseAfterFreeError, match="freed handle"):
        zswap.zpool_map_handle(pool, h, zswap.ZPOOL_MM_RO)
    with pytest.raises(zswap.UseAfterFreeError):
        zswap.zpool_unmap_handle(pool, h)


def test_double_free_is_detected(pool: Zpool) -> None:
    h = alloc(pool)
    zswap.zpool_free(pool, h)
    with pytest.raises(zswap.DoubleFreeError, match="double free"):
        zswap.zpool_free(pool, h)


@pytest.mark.parametrize("bogus", [0x1234, -8, 1 << 70])
def test_values_never_allocated_are_rejected(pool: Zpool, bogus: int) -> None:
    alloc(pool)
    with pytest.raises(zswap.InvalidHandleError) as ei:
        zswap.zpool_map_handle(pool, bogus, zswap.ZPOOL_MM_RW)
    assert not isinstance(ei.value, zswap.UseAfterFreeError)
    with pytest.raises(zswap.InvalidHandleError):
        zswap.zpool_free(pool, bogus)


def test_another_pools_handle_is_rejected(pool: Zpool, mem: PhysMem) -> None:
    other = zswap.zpool_create_pool(zswap.zpool_get_type(pool), "other", GFP_KERNEL, mem=mem)
    assert other is not None
    h = alloc(other)
    with pytest.raises(zswap.InvalidHandleError, match="not a handle of this pool"):
        zswap.zpool_map_handle(pool, h, zswap.ZPOOL_MM_RO)


def test_unmapping_what_is_not_mapped(pool: Zpool) -> None:
    h = alloc(pool)
    with pytest.raises(zswap.NotMappedError):
        zswap.zpool_unmap_handle(pool, h)
    zswap.zpool_map_handle(pool, h, zswap.ZPOOL_MM_RO)
    zswap.zpool_unmap_handle(pool, h)
    with pytest.raises(zswap.NotMappedError):
        zswap.zpool_unmap_handle(pool, h)


def test_read_only_mapping_refuses_writes(pool: Zpool) -> None:
    h = alloc(pool, 100, b"a" * 100)
    v = zswap.zpool_map_handle(pool, h, zswap.ZPOOL_MM_RO)
    assert v.readonly
    with pytest.raises(TypeError):
        v[0] = 1
    zswap.zpool_unmap_handle(pool, h)
    v = zswap.zpool_map_handle(pool, h, zswap.ZPOOL_MM_RO)
    assert bytes(v) == b"a" * 100
    zswap.zpool_unmap_handle(pool, h)


def test_view_is_exactly_the_allocation_and_dies_at_unmap(pool: Zpool) -> None:
    h = alloc(pool, 100)
    v = zswap.zpool_map_handle(pool, h, zswap.ZPOOL_MM_RW)
    assert len(v) == 100
    with pytest.raises(ValueError, match="different structures"):
        v[:] = b"x" * 101  # an overflow into the neighbour is refused
    zswap.zpool_unmap_handle(pool, h)
    with pytest.raises(ValueError, match="released"):
        v[0] = 1


def test_freeing_a_mapped_handle_is_refused(pool: Zpool) -> None:
    h = alloc(pool, 50, b"m" * 50)
    zswap.zpool_map_handle(pool, h, zswap.ZPOOL_MM_RO)
    with pytest.raises(zswap.HandleMappedError):
        zswap.zpool_free(pool, h)
    zswap.zpool_unmap_handle(pool, h)
    zswap.zpool_free(pool, h)


def test_bad_map_mode(pool: Zpool) -> None:
    h = alloc(pool)
    with pytest.raises(ValueError, match="mode"):
        zswap.zpool_map_handle(pool, h, 7)


# zsmalloc only: the pin and the per-CPU area


@pytest.fixture
def zs(mem: PhysMem) -> Zpool:
    p = zswap.zpool_create_pool("zsmalloc", "zs", GFP_KERNEL, mem=mem)
    assert p is not None
    return p


def test_zsmalloc_mapping_one_handle_twice_is_refused(zs: Zpool) -> None:
    h = alloc(zs)
    zswap.zpool_map_handle(zs, h, zswap.ZPOOL_MM_RO)
    with pytest.raises(zswap.HandleMappedError, match="already mapped"):
        zswap.zpool_map_handle(zs, h, zswap.ZPOOL_MM_RO)
    zswap.zpool_unmap_handle(zs, h)
    assert not sched.in_atomic()


def test_zsmalloc_second_handle_on_one_cpu_is_reported(zs: Zpool) -> None:
    a, b = alloc(zs), alloc(zs)
    zswap.zpool_map_handle(zs, a, zswap.ZPOOL_MM_RO)
    with pytest.raises(zswap.MapAreaBusyError) as ei:
        zswap.zpool_map_handle(zs, b, zswap.ZPOOL_MM_RO)
    text = ei.value.report.text
    assert text.startswith("WARNING: CPU: 0 PID: ")
    assert "DEBUG_LOCKS_WARN_ON(l->owner)" in text
    assert f"handle {a:#x} mapped by" in text
    assert f"handle {b:#x}" in text
    assert sched.reports[-1] is ei.value.report
    assert sched.preempt_count() == 3  # still a's pin, zspage lock and area: b took nothing
    zswap.zpool_unmap_handle(zs, a)
    assert not sched.in_atomic()


def test_zsmalloc_handles_on_two_cpus_do_not_conflict(zs: Zpool) -> None:
    a, b = alloc(zs, 10, b"0" * 10), alloc(zs, 10, b"1" * 10)
    va = zswap.zpool_map_handle(zs, a, zswap.ZPOOL_MM_RO)
    with sched.on_cpu(1):
        vb = zswap.zpool_map_handle(zs, b, zswap.ZPOOL_MM_RO)
        assert bytes(vb) == b"1" * 10
        zswap.zpool_unmap_handle(zs, b)
    assert bytes(va) == b"0" * 10
    zswap.zpool_unmap_handle(zs, a)
    assert sched.reports == []


def test_zsmalloc_nesting_in_warn_mode_logs_and_goes_on(
    zs: Zpool, caplog: pytest.LogCaptureFixture
) -> None:
    sched.config.lock_debug = "warn"
    a, b = alloc(zs), alloc(zs)
    with caplog.at_level(logging.ERROR, logger="zswap.zpool"):
        zswap.zpool_map_handle(zs, a, zswap.ZPOOL_MM_RO)
        zswap.zpool_map_handle(zs, b, zswap.ZPOOL_MM_RO)
        assert sched.preempt_count() == 6
        zswap.zpool_unmap_handle(zs, b)
        zswap.zpool_unmap_handle(zs, a)  # the area is no longer a's: reported again
    assert not sched.in_atomic()
    titles = [r.text.splitlines()[1] for r in sched.reports]
    assert titles == ["DEBUG_LOCKS_WARN_ON(l->owner)", "DEBUG_LOCKS_WARN_ON(l->owner != current)"]
    assert "zs_map_area in use" in caplog.text


def test_zsmalloc_unmap_on_another_cpu_is_reported(zs: Zpool) -> None:
    a = alloc(zs)
    zswap.zpool_map_handle(zs, a, zswap.ZPOOL_MM_RO)
    with sched.on_cpu(1), pytest.raises(zswap.MapAreaBusyError, match="zs_unmap_object"):
        zswap.zpool_unmap_handle(zs, a)
    zswap.zpool_unmap_handle(zs, a)


def test_zsmalloc_misuse_is_refused_with_the_debug_checks_off(zs: Zpool) -> None:
    """Without the debug checks a mapping takes no pin, zspage lock or preemption count, and
    a mapped handle is still refused a second mapping and a free, and compaction leaves it."""
    sched.set_debug_checks(False)
    h = alloc(zs, 100, b"x" * 100)
    view = zswap.zpool_map_handle(zs, h, zswap.ZPOOL_MM_RO)
    assert not sched.in_atomic()
    with pytest.raises(zswap.HandleMappedError, match="already mapped"):
        zswap.zpool_map_handle(zs, h, zswap.ZPOOL_MM_RO)
    with pytest.raises(zswap.HandleMappedError, match="is mapped"):
        zswap.zpool_free(zs, h)
    assert bytes(view) == b"x" * 100
    zswap.zpool_unmap_handle(zs, h)
    with pytest.raises(ValueError, match="released"):
        bytes(view)
    with pytest.raises(zswap.NotMappedError):
        zswap.zpool_unmap_handle(zs, h)
    zswap.zpool_free(zs, h)
    assert sched.reports == []


def test_zsmalloc_second_mapping_overwrites_the_area_unreported_with_the_checks_off(
    zs: Zpool,
) -> None:
    """A second mapping on the CPU takes the area the first still uses (the kernel's bug
    without CONFIG_DEBUG_LOCK_ALLOC): the first view reads the second object, nothing is
    reported, and what the pool stores stays intact."""
    sched.set_debug_checks(False)
    size = 3000  # two objects of this class: the second spans two pages
    a, b = alloc(zs, size, b"a" * size), alloc(zs, size, b"b" * size)
    spans = [zsmalloc.zs_obj_info(zs.pool, h).spans for h in (a, b)]
    assert spans == [False, True]
    c = alloc(zs, size, b"c" * size)  # another spanning one, in a second zspage
    assert zsmalloc.zs_obj_info(zs.pool, c).spans
    vb = zswap.zpool_map_handle(zs, b, zswap.ZPOOL_MM_RO)
    assert bytes(vb) == b"b" * size
    vc = zswap.zpool_map_handle(zs, c, zswap.ZPOOL_MM_RO)
    assert bytes(vb) == b"c" * size  # b's view points into the area c's mapping filled
    assert bytes(vc) == b"c" * size
    zswap.zpool_unmap_handle(zs, c)
    zswap.zpool_unmap_handle(zs, b)
    assert sched.reports == []
    for h, ch in ((a, b"a"), (b, b"b"), (c, b"c")):
        v = zswap.zpool_map_handle(zs, h, zswap.ZPOOL_MM_RO)
        assert bytes(v) == ch * size
        zswap.zpool_unmap_handle(zs, h)


def test_zsmalloc_free_of_zero_is_a_no_op(zs: Zpool) -> None:
    zsmalloc.zs_free(zs.pool, 0)
