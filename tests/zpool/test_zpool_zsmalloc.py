"""zsmalloc: class geometry and merging, the in-page header and free list, objects spanning two
pages and the map modes, fullness groups, compaction, the debugfs stats and the v6.15 API."""

from __future__ import annotations

import itertools
import random
import struct

import pytest

import zswap
from acomp import sched
from zswap import zsmalloc as zsm
from zswap.page import GFP_NOWAIT, PAGE_SIZE, PhysMem
from zswap.zsmalloc import ZS_MM_RO, ZS_MM_RW, ZS_MM_WO, ZsPool


def store(pool: ZsPool, data: bytes) -> int:
    h = zsm.zs_malloc(pool, len(data), GFP_NOWAIT)
    assert h > 0
    v = zsm.zs_map_object(pool, h, ZS_MM_WO)
    v[:] = data
    zsm.zs_unmap_object(pool, h)
    return h


def load(pool: ZsPool, h: int) -> bytes:
    v = zsm.zs_map_object(pool, h, ZS_MM_RO)
    out = bytes(v)
    zsm.zs_unmap_object(pool, h)
    return out


# Geometry


def _used_pc_rule(size: int, chain: int) -> int:
    """mm/zsmalloc.c get_pages_per_zspage (before v6.3): the best integer used percentage."""
    pcts = [(k * PAGE_SIZE - k * PAGE_SIZE % size) * 100 // (k * PAGE_SIZE)
            for k in range(1, chain + 1)]
    return pcts.index(max(pcts)) + 1


def _least_waste_rule(size: int, chain: int) -> int:
    """mm/zsmalloc.c calculate_zspage_chain_size (v6.3+): 1 for a power of two, else the
    chain with the fewest bytes left over."""
    if size & (size - 1) == 0:
        return 1
    waste = [k * PAGE_SIZE % size for k in range(1, chain + 1)]
    return waste.index(min(waste)) + 1


@pytest.mark.parametrize(("chain", "rule"), [(4, "v5"), (4, "v6.3"), (8, "v6.3"), (16, "v6.3")])
def test_classes_minimise_waste_and_merge_equal_geometry(chain: int, rule: str,
                                                         mem: PhysMem) -> None:
    pool = zsm.zs_create_pool("g", mem=mem, chain_size=chain,
                              chain_rule=rule)  # type: ignore[arg-type]
    assert zsm.ZS_SIZE_CLASSES == 255
    sizes = [32 + 16 * i for i in range(255)]
    assert sizes[-1] == 4096
    rows = {r.index: r for r in zsm.zs_class_stats(pool)}
    brute = _used_pc_rule if rule == "v5" else _least_waste_rule
    for size in sizes:
        best = brute(size, chain)
        served_by = zsm.zs_lookup_class_index(pool, size - zsm.ZS_HANDLE_SIZE) if size > 32 \
            else rows[min(rows)].index
        rep = rows[served_by]
        assert rep.size >= size
        assert rep.pages_per_zspage == best
        assert rep.objs_per_zspage == best * PAGE_SIZE // size
    # Merged classes: representatives are distinct geometries, in index order of size.
    geoms = [(r.pages_per_zspage, r.objs_per_zspage) for r in rows.values()]
    assert all(a != b for a, b in itertools.pairwise(geoms))
    assert len(rows) < 255
    huge = [r for r in rows.values() if r.huge]
    assert len(huge) == 1
    assert huge[0].size == 4096
    assert max(r.pages_per_zspage for r in rows.values()) == chain
    zsm.zs_destroy_pool(pool)


def test_v63_chain_sizes_follow_calculate_zspage_chain_size(mem: PhysMem) -> None:
    """mm/zsmalloc.c (v6.3+) calculate_zspage_chain_size with CONFIG_ZSMALLOC_CHAIN_SIZE 8 and
    16: the least waste, not get_pages_per_zspage's used percentage, which loses the
    difference in its integer division (class 208: 2 pages leave 80 bytes, 3 pages 16; both
    are "99%")."""
    def geometry(pool: ZsPool, size: int) -> tuple[int, int]:
        row = next(r for r in zsm.zs_class_stats(pool)
                   if r.index == zsm.zs_lookup_class_index(pool, size - zsm.ZS_HANDLE_SIZE))
        assert row.size == size  # not merged into a larger class
        return row.pages_per_zspage, row.objs_per_zspage

    v62 = zsm.zs_create_pool("v6.2", mem=mem)  # 4 pages, get_pages_per_zspage
    v63 = zsm.zs_create_pool("v6.3", mem=mem, **zsm.pool_options((6, 3)))
    v63_16 = zsm.zs_create_pool("v6.3-16", mem=mem, chain_size=16, fullness="ratio")
    assert (v63.chain_size, v63.chain_rule, v63.fullness) == (8, "v6.3", "ratio")
    assert (v62.chain_rule, v63_16.chain_rule) == ("v5", "v6.3")
    assert geometry(v62, 208) == (2, 39)  # 8192 - 39 * 208 = 80 bytes wasted
    assert geometry(v63, 208) == (3, 59)  # 12288 - 59 * 208 = 16
    assert geometry(v63, 144) == (7, 199)  # the old rule: 3 pages, 85 objects
    assert geometry(v63, 352) == (8, 93)  # the old rule: 5 pages, 58
    assert geometry(v63_16, 624) == (16, 105)  # the old rule: 2 pages, 13
    assert geometry(v63_16, 560) == (16, 117)  # the old rule: 4 pages, 29
    # A power of two needs one page: no chain beats zero waste.
    assert geometry(v63_16, 512) == (1, 8)
    for pool in (v62, v63, v63_16):
        zsm.zs_destroy_pool(pool)


def test_each_kernel_gets_its_zsmalloc_geometry(mem: PhysMem) -> None:
    """zswap's zsmalloc pool has the geometry of the kernel it models: v6.2 four-page chains
    and get_pages_per_zspage, v6.3 on CONFIG_ZSMALLOC_CHAIN_SIZE=8 and
    calculate_zspage_chain_size (mm/zsmalloc.c zs_create_pool)."""
    from zswap import Zswap

    for version, chain, rule in (("5.11", 4, "v5"), ("6.2", 4, "v5"), ("6.3", 8, "v6.3"),
                                 ("6.14", 8, "v6.3"), ("6.18", 8, "v6.3")):
        zs = Zswap(mem=mem, compressor="lz4-scomp", zpool="zsmalloc", version=version)
        pool = zs.pools[0].zpool.pool
        assert (pool.chain_size, pool.chain_rule) == (chain, rule), version
        assert pool.fullness == ("legacy" if rule == "v5" else "ratio")
        zs.close()


def test_huge_class_size_is_the_kernels(mem: PhysMem) -> None:
    # 3264 is the largest class that still shares zspages with 4-page chains (5 per 4 pages).
    assert zsm.zs_huge_class_size(zsm.zs_create_pool("h", mem=mem)) == 3264 - 7
    pool = zsm.zs_create_pool("h", mem=mem)
    big = zsm.zs_malloc(pool, 3257, GFP_NOWAIT)
    small = zsm.zs_malloc(pool, 3256, GFP_NOWAIT)
    assert zsm.zs_obj_info(pool, big).huge
    assert zsm.zs_obj_info(pool, big).class_size == 4096
    assert not zsm.zs_obj_info(pool, small).huge


def test_handle_header_and_free_list_live_in_page_memory(mem: PhysMem) -> None:
    pool = zsm.zs_create_pool("hdr", mem=mem)
    a = store(pool, b"A" * 40)  # class 48
    b = store(pool, b"B" * 40)
    ia, ib = zsm.zs_obj_info(pool, a), zsm.zs_obj_info(pool, b)
    base = ia.pfns[0] * PAGE_SIZE
    word = struct.unpack_from("<Q", mem.mem, base + ia.offset)[0]
    assert word == a | zsm.OBJ_ALLOCATED_TAG
    assert bytes(mem.mem[base + ia.offset + 8 : base + ia.offset + 48]) == b"A" * 40
    assert ib.offset == ia.offset + 48
    zsm.zs_free(pool, a)
    # A free object's first word links to the next free one (tag bit clear).
    word = struct.unpack_from("<Q", mem.mem, base + ia.offset)[0]
    assert word & zsm.OBJ_ALLOCATED_TAG == 0
    assert word >> zsm.OBJ_TAG_BITS == 2  # object 2 was the free-list head
    c = store(pool, b"C" * 40)
    assert zsm.zs_obj_info(pool, c).offset == ia.offset  # LIFO reuse of the freed slot


def test_corrupt_header_is_caught_by_compaction(mem: PhysMem) -> None:
    pool = zsm.zs_create_pool("bad", mem=mem)
    hs = [store(pool, bytes([i % 256]) * 40) for i in range(300)]
    for h in hs[1:150]:
        zsm.zs_free(pool, h)
    for h in hs[151::2]:
        zsm.zs_free(pool, h)
    info = zsm.zs_obj_info(pool, hs[258])  # in the emptier zspage, which compaction drains
    addr = info.pfns[info.page_index] * PAGE_SIZE + info.offset
    struct.pack_into("<Q", mem.mem, addr, 0xDEAD0001)  # a stray write over the header
    with pytest.raises(zsm.PoolCorruptedError, match="0xdead0000"):
        zsm.zs_compact(pool)


# Spanning objects and map modes


def spanning(pool: ZsPool, size: int = 1096) -> tuple[int, bytes]:
    rng = random.Random(size)
    while True:
        data = rng.randbytes(size)
        h = store(pool, data)
        if zsm.zs_obj_info(pool, h).spans:
            return h, data


def test_spanning_objects_round_trip_through_the_cpu_buffer(mem: PhysMem) -> None:
    pool = zsm.zs_create_pool("span", mem=mem)
    h, data = spanning(pool)
    info = zsm.zs_obj_info(pool, h)
    first = PAGE_SIZE - info.offset - 8
    tail = info.pfns[info.page_index] * PAGE_SIZE + info.offset + 8
    head_next = info.pfns[info.page_index + 1] * PAGE_SIZE
    # Really stored across two (non-adjacent) pages.
    assert bytes(mem.mem[tail : tail + first]) == data[:first]
    assert bytes(mem.mem[head_next : head_next + len(data) - first]) == data[first:]
    v = zsm.zs_map_object(pool, h, ZS_MM_RW)
    area = zsm._zs_map_area.this_cpu()
    assert v.obj is area.buf  # a view of this CPU's buffer, not of the pages
    v[:4] = b"EDIT"
    zsm.zs_unmap_object(pool, h)
    assert load(pool, h) == b"EDIT" + data[4:]


def test_ro_skips_the_copy_back_and_wo_the_copy_in(mem: PhysMem) -> None:
    pool = zsm.zs_create_pool("modes", mem=mem)
    h, data = spanning(pool)
    area = zsm._zs_map_area.this_cpu()
    zsm.zs_map_object(pool, h, ZS_MM_RO)
    area.buf[8:12] = b"XXXX"  # scribble on the buffer behind the read-only view
    zsm.zs_unmap_object(pool, h)
    assert load(pool, h) == data  # not copied back
    area.buf[:] = bytes(PAGE_SIZE)
    v = zsm.zs_map_object(pool, h, ZS_MM_WO)
    assert bytes(v) == bytes(len(data))  # not copied in: the buffer's stale bytes
    v[:] = data[::-1]
    zsm.zs_unmap_object(pool, h)
    assert load(pool, h) == data[::-1]


def test_object_inside_a_page_is_mapped_in_place(mem: PhysMem) -> None:
    pool = zsm.zs_create_pool("inplace", mem=mem)
    h = store(pool, b"p" * 100)
    assert not zsm.zs_obj_info(pool, h).spans
    v = zsm.zs_map_object(pool, h, ZS_MM_RW)
    v[0] = ord("q")  # writes go straight to the page, before unmap
    info = zsm.zs_obj_info(pool, h)
    assert mem.mem[info.pfns[0] * PAGE_SIZE + info.offset + 8] == ord("q")
    zsm.zs_unmap_object(pool, h)


# Fullness groups


def test_allocation_takes_the_fullest_non_full_zspage(mem: PhysMem) -> None:
    pool = zsm.zs_create_pool("fg", mem=mem)
    # 1096 + 8 bytes: class 1104, 11 objects per 3-page zspage. Fill two, then empty one.
    hs = [store(pool, b"x" * 1096) for _ in range(22)]
    z1, z2 = zsm.zs_obj_info(pool, hs[0]).pfns, zsm.zs_obj_info(pool, hs[11]).pfns
    assert z1 != z2
    for h in hs[11:20]:  # z2 keeps 2 of 11: almost empty; z1 loses one: almost full
        zsm.zs_free(pool, h)
    zsm.zs_free(pool, hs[0])
    row = next(r for r in zsm.zs_class_stats(pool) if r.size == 1104)
    assert row.groups[zsm.ZS_ALMOST_FULL] == 1
    assert row.groups[zsm.ZS_ALMOST_EMPTY] == 1
    new = store(pool, b"n" * 1096)
    assert zsm.zs_obj_info(pool, new).pfns == z1


def test_ratio_groups_of_v63(mem: PhysMem) -> None:
    pool = zsm.zs_create_pool("ratio", mem=mem, chain_size=8, fullness="ratio")
    hs = [store(pool, b"r" * 1100) for _ in range(60)]
    row = next(r for r in zsm.zs_class_stats(pool) if r.index == zsm.zs_lookup_class_index(
        pool, 1100))
    per = row.objs_per_zspage
    zspages = -(-60 // per)
    assert sum(row.groups) == zspages
    used_last = 60 - (zspages - 1) * per
    group = 11 if used_last == per else 100 * used_last // per // 10 + 1
    assert row.groups[group] >= 1
    for h in hs:
        zsm.zs_free(pool, h)
    assert pool.pages_allocated == 0
    assert mem.nr_used_pages == 0


# Compaction


def fragmented(pool: ZsPool, n: int = 600, seed: int = 1) -> dict[int, bytes]:
    rng = random.Random(seed)
    live: dict[int, bytes] = {}
    for _ in range(n):
        d = rng.randbytes(rng.choice([40, 200, 1100, 2000]))
        live[store(pool, d)] = d
    for h in rng.sample(sorted(live), n // 2):
        zsm.zs_free(pool, h)
        del live[h]
    return live


def test_compaction_frees_pages_and_keeps_every_handle(mem: PhysMem) -> None:
    pool = zsm.zs_create_pool("c", mem=mem)
    live = fragmented(pool)
    freeable = sum(r.freeable for r in zsm.zs_class_stats(pool))
    before = pool.pages_allocated
    assert freeable > 0
    freed = zsm.zs_compact(pool)
    assert freed > 0
    assert pool.pages_allocated == before - freed == mem.nr_used_pages
    assert zsm.zs_pool_stats(pool).pages_compacted == freed
    assert all(load(pool, h) == d for h, d in live.items())
    assert zsm.zs_compact(pool) == 0  # nothing left to gain


def _lone_object(pool: ZsPool) -> int:
    """Two full 1-page class-32 zspages, then the first keeps one object (returned) and the
    second loses 12: compaction would move the lone object into the second."""
    hs = [store(pool, bytes([i]) * 24) for i in range(256)]
    for h in hs[:127]:
        zsm.zs_free(pool, h)
    for h in hs[128:140]:
        zsm.zs_free(pool, h)
    return hs[127]


def test_compaction_skips_a_pinned_object(mem: PhysMem) -> None:
    pool = zsm.zs_create_pool("pin", mem=mem)
    lone = _lone_object(pool)
    where = zsm.zs_obj_info(pool, lone).pfns
    v = zsm.zs_map_object(pool, lone, ZS_MM_RO)
    assert zsm.zs_compact(pool) == 0  # the only object of the emptiest zspage is pinned
    assert zsm.zs_obj_info(pool, lone).pfns == where
    assert bytes(v) == bytes([127]) * 24
    zsm.zs_unmap_object(pool, lone)
    assert zsm.zs_compact(pool) == 1
    assert zsm.zs_obj_info(pool, lone).pfns != where
    assert load(pool, lone) == bytes([127]) * 24


def test_compaction_waits_for_v615_readers(mem: PhysMem) -> None:
    pool = zsm.zs_create_pool("rd", mem=mem, sleepable_reads=True)
    lone = _lone_object(pool)
    view = zsm.zs_obj_read_begin(pool, lone, None)
    assert zsm.zs_compact(pool) == 0
    zsm.zs_obj_read_end(pool, lone, view)
    assert zsm.zs_compact(pool) == 1


# v6.15 object API


def test_obj_read_and_write_handle_spanning_objects(mem: PhysMem) -> None:
    pool = zsm.zs_create_pool("v615", mem=mem, sleepable_reads=True)
    h, data = spanning(pool)
    local = bytearray(PAGE_SIZE)
    view = zsm.zs_obj_read_begin(pool, h, local)
    assert view.readonly
    assert view.obj is local
    assert bytes(view) == data
    assert not sched.in_atomic()
    zsm.zs_obj_read_end(pool, h, view)
    with pytest.raises(ValueError, match="released"):
        bytes(view)
    new = bytes(reversed(data))
    zsm.zs_obj_write(pool, h, new, len(new))
    assert load(pool, h) == new
    zsm.zs_obj_write(pool, h, memoryview(b"abc"), 2)
    assert load(pool, h)[:3] == b"ab" + new[2:3]


def test_obj_api_errors(mem: PhysMem) -> None:
    pool = zsm.zs_create_pool("v615", mem=mem, sleepable_reads=True)
    h, _ = spanning(pool)
    with pytest.raises(ValueError, match="local_copy needed"):
        zsm.zs_obj_read_begin(pool, h, None)
    with pytest.raises(ValueError, match="class needs 1104"):
        zsm.zs_obj_read_begin(pool, h, bytearray(1000))
    with pytest.raises(TypeError):
        zsm.zs_obj_read_begin(pool, h, bytes(PAGE_SIZE))  # type: ignore[arg-type]
    with pytest.raises(zswap.NotMappedError):
        zsm.zs_obj_read_end(pool, h, memoryview(b""))
    with pytest.raises(ValueError, match="1097 bytes"):
        zsm.zs_obj_write(pool, h, bytes(1097), 1097)
    view = zsm.zs_obj_read_begin(pool, h, bytearray(PAGE_SIZE))
    with pytest.raises(zswap.HandleMappedError):
        zsm.zs_free(pool, h)
    zsm.zs_obj_read_end(pool, h, view)
    zsm.zs_free(pool, h)


# v7.0 scatterlist reads


def test_obj_read_sg_is_one_or_two_entries_over_the_pool_pages(mem: PhysMem) -> None:
    """mm/zsmalloc.c (v7.0) zs_obj_read_sg_begin: off = offset_in_page(class->size * obj_idx)
    plus ZS_HANDLE_SIZE; off + mem_len <= PAGE_SIZE is one entry (sg_set_page(page, mem_len,
    off)), else two (the rest of the page, then the start of the next page); nothing copied."""
    pool = zsm.zs_create_pool("v70", mem=mem, **zsm.pool_options((7, 0)))
    h, data = spanning(pool)
    info = zsm.zs_obj_info(pool, h)
    first = PAGE_SIZE - info.offset - zsm.ZS_HANDLE_SIZE
    sg = zsm.zs_obj_read_sg_begin(pool, h, len(data))
    assert not sched.in_atomic()  # the zspage read lock keeps preemption enabled
    assert [len(e) for e in sg] == [first, len(data) - first]
    assert all(e.readonly for e in sg)
    assert sg.tobytes() == data
    # The entries are the pool's pages themselves: a write to the second page shows through.
    pfn1 = info.pfns[info.page_index + 1]
    mem.page_view(pfn1)[0] ^= 0xFF
    assert sg[1][0] == data[first] ^ 0xFF
    mem.page_view(pfn1)[0] ^= 0xFF
    with pytest.raises(zswap.HandleMappedError):
        zsm.zs_free(pool, h)  # being read
    zsm.zs_obj_read_sg_end(pool, h)
    # A shorter read of the same object that ends inside the first page is one entry.
    sg = zsm.zs_obj_read_sg_begin(pool, h, first)
    assert [len(e) for e in sg] == [first]
    assert sg.tobytes() == data[:first]
    zsm.zs_obj_read_sg_end(pool, h)
    inside = store(pool, b"i" * 200)
    while zsm.zs_obj_info(pool, inside).spans:
        inside = store(pool, b"i" * 200)
    sg = zsm.zs_obj_read_sg_begin(pool, inside, 200)
    assert len(sg) == 1
    assert sg.tobytes() == b"i" * 200
    zsm.zs_obj_read_sg_end(pool, inside)


def test_obj_read_sg_holds_off_compaction_and_checks_its_arguments(mem: PhysMem) -> None:
    pool = zsm.zs_create_pool("rd", mem=mem, sleepable_reads=True)
    lone = _lone_object(pool)
    sg = zsm.zs_obj_read_sg_begin(pool, lone, 24)
    assert zsm.zs_compact(pool) == 0  # the zspage is read-locked
    zsm.zs_obj_read_sg_end(pool, lone)
    assert sg.tobytes() == bytes([127]) * 24
    assert zsm.zs_compact(pool) == 1
    with pytest.raises(zswap.NotMappedError):
        zsm.zs_obj_read_sg_end(pool, lone)
    with pytest.raises(ValueError, match="25 bytes of a 24-byte object"):
        zsm.zs_obj_read_sg_begin(pool, lone, 25)
    with pytest.raises(ValueError, match="0 bytes"):
        zsm.zs_obj_read_sg_begin(pool, lone, 0)
    old = zsm.zs_create_pool("v6.14", mem=mem)
    h = store(old, b"x" * 24)
    with pytest.raises(zswap.UnsupportedOperation):
        zsm.zs_obj_read_sg_begin(old, h, 24)
    zsm.zs_free(old, h)


# Stats


def test_classes_file_has_the_v5_debugfs_format(mem: PhysMem) -> None:
    pool = zsm.zs_create_pool("stats", mem=mem)
    for _ in range(3):
        store(pool, b"s" * 40)
    text = zsm.zs_stats_classes(pool)
    lines = text.split("\n")
    assert lines[0] == (" class  size almost_full almost_empty obj_allocated   obj_used"
                        " pages_used pages_per_zspage freeable")
    assert lines[1] == "     0    32           0            0             0          0"\
        "          0                1        0"
    row48 = next(ln for ln in lines if ln.startswith("     1    48"))
    assert row48 == "     1    48           0            1           256          3"\
        "          3                3        0"
    assert lines[-3] == ""
    total = (f" {'Total':>5} {'':>5} {0:>11} {1:>12} {256:>13} {3:>10} {3:>10} {'':>16} {0:>8}")
    assert lines[-2] == total
    assert lines[-1] == ""
    assert len(lines) == 1 + len(zsm.zs_class_stats(pool)) + 3


def test_classes_file_has_the_v63_debugfs_format(mem: PhysMem) -> None:
    pool = zsm.zs_create_pool("stats", mem=mem, chain_size=8, fullness="ratio")
    store(pool, b"s" * 40)
    lines = zsm.zs_stats_classes(pool).split("\n")
    assert lines[0] == (" class  size      10%      20%      30%      40%      50%      60%"
                        "      70%      80%      90%      99%     100% obj_allocated"
                        "   obj_used pages_used pages_per_zspage freeable")
    row = next(ln for ln in lines if ln.startswith("     1    48"))
    assert row.split() == ["1", "48", "1", *["0"] * 10, "256", "1", "3", "3", "0"]
    assert lines[-2].split()[:2] == ["Total", "1"]
