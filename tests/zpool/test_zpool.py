"""The zpool layer: lookup and on-demand loading, the drivers' properties, return codes."""

from __future__ import annotations

import errno

import pytest
from zpool_backends import BACKENDS

import zswap
from zswap import page, z3fold, zbud, zpool, zsmalloc
from zswap.page import GFP_KERNEL, GFP_NOWAIT, PhysMem

MOVABLE = page.__GFP_HIGHMEM | page.__GFP_MOVABLE


def test_exports_resolve() -> None:
    for name in zswap.__all__:
        assert getattr(zswap, name) is not None, name
    assert len(set(zswap.__all__)) == len(zswap.__all__)


@pytest.mark.parametrize("type_", ["zsmalloc", "zbud", "z3fold"])
def test_backends_load_on_demand(type_: str) -> None:
    assert zswap.zpool_has_pool(type_)


def test_unknown_type_has_no_pool_and_create_returns_none(mem: PhysMem) -> None:
    assert not zswap.zpool_has_pool("zpoolx")
    assert zswap.zpool_create_pool("zpoolx", "p", GFP_KERNEL, mem=mem) is None
    assert zpool.request_module("zpool-zpoolx") == -errno.ENOENT


@pytest.mark.parametrize(
    ("type_", "sleep_mapped", "movable"),
    [("zsmalloc", False, True), ("zbud", True, False), ("z3fold", True, False)],
)
def test_driver_properties(mem: PhysMem, type_: str, sleep_mapped: bool, movable: bool) -> None:
    pool = zswap.zpool_create_pool(type_, "p", GFP_KERNEL, mem=mem)
    assert pool is not None
    assert zswap.zpool_get_type(pool) == type_
    assert zswap.zpool_can_sleep_mapped(pool) is sleep_mapped
    assert zswap.zpool_malloc_support_movable(pool) is movable
    zswap.zpool_destroy_pool(pool)


def test_unregister_is_busy_while_pools_exist_and_reload_works(mem: PhysMem) -> None:
    assert zswap.zpool_has_pool("zbud")
    pool = zswap.zpool_create_pool("zbud", "p", GFP_KERNEL, mem=mem)
    assert pool is not None
    assert zbud.module_exit() == -errno.EBUSY
    zswap.zpool_destroy_pool(pool)
    assert zbud.module_exit() == 0
    assert zbud.zbud_zpool_driver not in zpool._drivers
    # zpool_create_pool requests the module again, as request_module("zpool-zbud") would.
    pool = zswap.zpool_create_pool("zbud", "p", GFP_KERNEL, mem=mem)
    assert pool is not None
    assert zbud.zbud_zpool_driver in zpool._drivers
    zswap.zpool_destroy_pool(pool)
    assert zbud.zbud_zpool_driver.refcount == 0


def test_destroying_twice_is_an_error(mem: PhysMem) -> None:
    pool = zswap.zpool_create_pool("zsmalloc", "p", GFP_KERNEL, mem=mem)
    assert pool is not None
    zswap.zpool_destroy_pool(pool)
    with pytest.raises(zswap.ZpoolError, match="already destroyed"):
        zswap.zpool_destroy_pool(pool)


def test_a_custom_driver_registers_and_is_used(mem: PhysMem) -> None:
    calls: list[str] = []

    def create(name: str, gfp: int, m: PhysMem | None) -> dict[str, str]:
        calls.append("create")
        return {"name": name}

    drv = zswap.ZpoolDriver(
        type="toy",
        create=create,
        destroy=lambda p: calls.append("destroy"),
        malloc=lambda p, size, gfp: (0, 8),
        free=lambda p, h: calls.append("free"),
        map=lambda p, h, mm: memoryview(b"toy"),
        unmap=lambda p, h: calls.append("unmap"),
        total_size=lambda p: 4096,
    )
    zswap.zpool_register_driver(drv)
    try:
        pool = zswap.zpool_create_pool("toy", "t", GFP_KERNEL, mem=mem)
        assert pool is not None
        assert zswap.zpool_malloc(pool, 10, GFP_NOWAIT) == (0, 8)
        assert bytes(zswap.zpool_map_handle(pool, 8, zswap.ZPOOL_MM_RO)) == b"toy"
        zswap.zpool_unmap_handle(pool, 8)
        zswap.zpool_free(pool, 8)
        assert zswap.zpool_get_total_pages(pool) == 1
        assert zswap.zpool_unregister_driver(drv) == -errno.EBUSY
        zswap.zpool_destroy_pool(pool)
        assert calls == ["create", "unmap", "free", "destroy"]
    finally:
        assert zswap.zpool_unregister_driver(drv) == 0


E = errno


@pytest.mark.parametrize(
    ("type_", "size", "gfp", "ret"),
    [
        ("zsmalloc", 0, GFP_NOWAIT, -E.EINVAL),
        ("zsmalloc", 1, GFP_NOWAIT, 0),
        ("zsmalloc", 4096, GFP_NOWAIT, 0),
        ("zsmalloc", 4097, GFP_NOWAIT, -E.ENOSPC),
        ("zsmalloc", 100, GFP_NOWAIT | MOVABLE, 0),
        ("zbud", 0, GFP_NOWAIT, -E.EINVAL),
        ("zbud", 3968, GFP_NOWAIT, 0),
        ("zbud", 3969, GFP_NOWAIT, -E.ENOSPC),
        ("zbud", 100, GFP_NOWAIT | page.__GFP_HIGHMEM, -E.EINVAL),
        ("z3fold", 0, GFP_NOWAIT, -E.EINVAL),
        ("z3fold", 3969, GFP_NOWAIT, 0),
        ("z3fold", 4096, GFP_NOWAIT, 0),
        ("z3fold", 4097, GFP_NOWAIT, -E.ENOSPC),
        ("z3fold", 100, GFP_NOWAIT | page.__GFP_HIGHMEM, -E.EINVAL),
    ],
)
def test_malloc_return_codes(mem: PhysMem, type_: str, size: int, gfp: int, ret: int) -> None:
    pool = zswap.zpool_create_pool(type_, "p", GFP_KERNEL, mem=mem)
    assert pool is not None
    r, handle = zswap.zpool_malloc(pool, size, gfp)
    assert r == ret
    assert (handle != 0) is (ret == 0)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_enomem_when_memory_is_exhausted(backend: str) -> None:
    type_, opts = BACKENDS[backend]
    small = PhysMem(4)
    pool = zswap.zpool_create_pool(type_, "p", GFP_KERNEL, mem=small, **opts)
    assert pool is not None
    rets = [zswap.zpool_malloc(pool, 3960, GFP_NOWAIT)[0] for _ in range(6)]  # a page each
    assert rets[:4] == [0, 0, 0, 0]
    assert rets[4:] == [-errno.ENOMEM, -errno.ENOMEM]
    assert small.nr_used_pages == 4
    assert zswap.zpool_get_total_size(pool) == 4 * page.PAGE_SIZE


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_total_size_counts_pages_held(mem: PhysMem, backend: str) -> None:
    type_, opts = BACKENDS[backend]
    pool = zswap.zpool_create_pool(type_, "p", GFP_KERNEL, mem=mem, **opts)
    assert pool is not None
    assert zswap.zpool_get_total_size(pool) == 0
    handles = [zswap.zpool_malloc(pool, 700, GFP_NOWAIT)[1] for _ in range(40)]
    held = zswap.zpool_get_total_size(pool)
    assert held == mem.nr_used_pages * page.PAGE_SIZE > 0
    assert held >= 40 * 700
    for h in handles:
        zswap.zpool_free(pool, h)
    assert zswap.zpool_get_total_size(pool) == 0
    assert mem.nr_used_pages == 0


def test_sleeping_gfp_in_atomic_context_splats_in_malloc(mem: PhysMem) -> None:
    from acomp import sched

    pool = zswap.zpool_create_pool("zsmalloc", "p", GFP_KERNEL, mem=mem)
    assert pool is not None
    sched.preempt_disable()
    try:
        assert zswap.zpool_malloc(pool, 100, GFP_NOWAIT)[0] == 0
        with pytest.raises(sched.SleepInAtomicError):
            zswap.zpool_malloc(pool, 100, GFP_KERNEL)
    finally:
        sched.preempt_enable()


@pytest.mark.parametrize("backend", ["zsmalloc", "zbud", "z3fold"])
def test_obj_api_needs_a_sleepable_zsmalloc(mem: PhysMem, backend: str) -> None:
    pool = zswap.zpool_create_pool(backend, "p", GFP_KERNEL, mem=mem)
    assert pool is not None
    _, h = zswap.zpool_malloc(pool, 100, GFP_NOWAIT)
    with pytest.raises(zswap.UnsupportedOperation) as ei:
        zswap.zpool_obj_read_begin(pool, h, bytearray(4096))
    assert ei.value.errno == -errno.EOPNOTSUPP
    with pytest.raises(zswap.UnsupportedOperation):
        zswap.zpool_obj_write(pool, h, b"x", 1)


def test_backend_modules_name_their_kernel_counterpart() -> None:
    for mod in (zswap, page, zpool, zsmalloc, zbud, z3fold):
        assert mod.__doc__ is not None
    assert "mm/zsmalloc.c" in (zsmalloc.__doc__ or "")
    assert "mm/zbud.c" in (zbud.__doc__ or "")
    assert "mm/z3fold.c" in (z3fold.__doc__ or "")
    assert "mm/zpool.c" in (zpool.__doc__ or "")
