"""The page model: allocation, exhaustion, GFP sleeping rules, stale contents, accounting."""

from __future__ import annotations

import pytest

import zswap
from acomp import sched
from zswap import page
from zswap.page import PAGE_SIZE, BadPageError, PhysMem


def test_gfp_values_are_the_kernels() -> None:
    assert page.GFP_KERNEL == 0xCC0
    assert page.GFP_NOWAIT == 0x800
    assert page.GFP_ATOMIC == 0xA20
    assert page.__GFP_HIGHMEM == 0x02
    assert page.__GFP_MOVABLE == 0x08
    assert page.__GFP_ZERO == 0x100
    assert page.gfpflags_allow_blocking(page.GFP_KERNEL)
    assert not page.gfpflags_allow_blocking(page.GFP_NOWAIT)
    assert not page.gfpflags_allow_blocking(page.GFP_ATOMIC)


def test_alloc_until_exhausted_then_none() -> None:
    m = PhysMem(3)
    pfns = [m.alloc_page(page.GFP_NOWAIT) for _ in range(3)]
    assert sorted(p for p in pfns if p is not None) == [0, 1, 2]
    assert m.nr_used_pages == 3
    assert m.nr_free_pages == 0
    assert m.alloc_page(page.GFP_NOWAIT) is None
    assert m.stats().failed_allocations == 1
    m.free_page(1)
    assert m.alloc_page(page.GFP_KERNEL) == 1
    assert m.stats().allocations == 4


def test_double_free_and_bad_pfn_are_errors() -> None:
    m = PhysMem(2)
    pfn = m.alloc_page(page.GFP_KERNEL)
    assert pfn is not None
    m.free_page(pfn)
    with pytest.raises(BadPageError, match="freed twice"):
        m.free_page(pfn)
    with pytest.raises(BadPageError, match="outside"):
        m.free_page(5)


def test_sleeping_allocation_in_atomic_context_splats() -> None:
    m = PhysMem(4)
    sched.preempt_disable()
    try:
        assert m.alloc_page(page.GFP_NOWAIT) is not None  # may not sleep: fine
        assert m.alloc_page(page.GFP_ATOMIC) is not None
        with pytest.raises(sched.SleepInAtomicError) as ei:
            m.alloc_page(page.GFP_KERNEL)
    finally:
        sched.preempt_enable()
    assert ei.value.report.title.startswith("BUG: sleeping function called from invalid context")
    assert "alloc_page" in ei.value.report.text


def test_freed_pages_keep_stale_bytes_unless_zeroed() -> None:
    m = PhysMem(1)
    pfn = m.alloc_page(page.GFP_KERNEL)
    assert pfn is not None
    m.page_view(pfn)[:5] = b"stale"
    m.free_page(pfn)
    again = m.alloc_page(page.GFP_KERNEL)
    assert again == pfn
    assert bytes(m.page_view(pfn)[:5]) == b"stale"
    m.free_page(pfn)
    zeroed = m.alloc_page(page.GFP_KERNEL | page.__GFP_ZERO)
    assert zeroed == pfn
    assert bytes(m.page_view(pfn)) == bytes(PAGE_SIZE)


def test_page_views_are_windows_into_one_memory() -> None:
    m = PhysMem(2)
    a, b = m.alloc_page(0), m.alloc_page(0)
    assert a is not None
    assert b is not None
    m.page_view(b)[0] = 7
    assert m.mem[b * PAGE_SIZE] == 7
    assert len(m.page_view(a)) == PAGE_SIZE
    assert not m.mem.readonly


def test_memories_are_independent_and_the_default_is_replaceable() -> None:
    m1, m2 = PhysMem(2), PhysMem(2)
    m1.alloc_page(0)
    assert m1.nr_used_pages == 1
    assert m2.nr_used_pages == 0
    old = page.default_memory()
    try:
        page.set_default_memory(m2)
        assert page.totalram_pages() == 2
        pfn = zswap.alloc_page(page.GFP_KERNEL)
        assert pfn == 0
        assert m2.nr_used_pages == 1
        zswap.page_view(pfn)[0] = 1
        zswap.free_page(pfn)
        assert m2.nr_used_pages == 0
    finally:
        page.set_default_memory(old)
    assert page.default_memory() is old
    with pytest.raises(ValueError, match="at least 1"):
        PhysMem(0)
