"""zswap's per-kernel paths: the parts of ``mm/zswap.c`` that differ between the modelled versions.

Kernel counterpart: ``mm/zswap.c`` of each version: the decompression of ``zswap_frontswap_load``
(v5.11, v5.12), ``zswap_decompress`` (v6.9, v6.15, v6.18, v7.0), the store's copy into the pool,
and whether a load takes the entry out of the tree.

`Zswap` chooses one `ZswapPaths` subclass at construction (and again when its `version` is set)
and calls it; nothing in `Zswap` compares version strings. Each class is one kernel, read top to
bottom as that kernel's source reads; adding a version is adding a class to `PATHS`.

Large folios (``zswap_store(folio)`` storing one entry per page, v6.13) exist from the 6.15
paths on; the "proposed" paths add the compress-batching series (Kanchana Sridhar, v13 Nov 2025
/ v14 Jan 2026, not merged): a folio's pages compressed in batches of the compressor's batch
size (``zswap_store_pages``), and readahead windows decompressed in batches. The other
large-folio eras take batching as an opt-in (`Zswap.compress_batching`).
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
import numpy as np
import numpy.typing as npt

from acomp import sched
from acomp._constants import PAGE_SIZE
from acomp._errors import AcompError, UnsupportedKernel
from acomp.acompress import (
    acomp_request_set_dst_sg,
    acomp_request_set_params,
    acomp_request_set_src_folio,
    crypto_acomp_compress,
    crypto_acomp_decompress,
)
from acomp.batch import crypto_acomp_batch_compress, crypto_acomp_batch_decompress
from acomp.eras import era_of, is_proposed, parse_kernel
from acomp.scatterlist import sg_copy_to_buffer, sg_init_one, sg_init_table, sg_set_buf
from acomp.segment import acomp_request_set_unit_size, crypto_acomp_req_seg, sg_length
from acomp.wait import crypto_wait_req
from zswap.entry import ZswapEntry, same_filled_word
from zswap.page import (
    __GFP_HIGHMEM,
    __GFP_KSWAPD_RECLAIM,
    __GFP_MOVABLE,
    __GFP_NORETRY,
    __GFP_NOWARN,
    GFP_NOWAIT,
)
from zswap.zpool import (
    ZPOOL_MM_RO,
    ZPOOL_MM_WO,
    zpool_can_sleep_mapped,
    zpool_free,
    zpool_malloc_support_movable,
    zpool_map_handle,
    zpool_obj_read_begin,
    zpool_obj_read_end,
    zpool_obj_write,
    zpool_unmap_handle,
)
from zswap.zsmalloc import (
    zs_malloc,
    zs_obj_read_begin,
    zs_obj_read_end,
    zs_obj_read_sg_begin,
    zs_obj_read_sg_end,
    zs_obj_write,
)

if TYPE_CHECKING:
    from zswap.page import Folio
    from zswap.zswap import CryptoAcompCtx, Zswap, ZswapPool

__all__ = ("PATHS", "STORE_GFP", "Zswap511", "Zswap512", "Zswap609", "Zswap613", "Zswap615",
           "Zswap618", "Zswap700", "ZswapPaths", "ZswapProposed", "paths_for")

_EIO = -errno.EIO
_EINPROGRESS = -errno.EINPROGRESS
_EBUSY = -errno.EBUSY
_ENOSPC = -errno.ENOSPC
_EINVAL = -errno.EINVAL
_ENODEV = -errno.ENODEV
_ENOMEM = -errno.ENOMEM

#: The store's allocation flags (v5.11 - v6.15): no direct reclaim, so ``zpool_malloc`` never
#: sleeps; ``__GFP_HIGHMEM | __GFP_MOVABLE`` are added where the backend supports them.
STORE_GFP = __GFP_NORETRY | __GFP_NOWARN | __GFP_KSWAPD_RECLAIM
_MOVABLE_GFP = __GFP_HIGHMEM | __GFP_MOVABLE
#: The store's gfp, by ``zpool_malloc_support_movable``.
_MALLOC_GFP = {False: STORE_GFP, True: STORE_GFP | _MOVABLE_GFP}
#: v6.16+: ``GFP_NOWAIT | __GFP_NORETRY | __GFP_HIGHMEM | __GFP_MOVABLE`` (zs_malloc direct).
_GFP_618 = GFP_NOWAIT | __GFP_NORETRY | __GFP_NOWARN | _MOVABLE_GFP


def _pool_ctx(entry: ZswapEntry) -> tuple[ZswapPool, CryptoAcompCtx]:
    """The pool holding `entry` and its compressor's context on this CPU."""
    pool = entry.pool
    assert pool is not None
    return pool, pool.acomp_ctx.this_cpu()


class ZswapPaths:
    """One kernel's zswap paths, bound to the `Zswap` they serve."""

    #: The kernel version these paths follow.
    version: ClassVar[str]
    #: Whether every successful load takes the entry out of the tree (v6.9: the
    #: ``exclusive_loads`` parameter is gone and loads are always exclusive).
    always_exclusive: ClassVar[bool] = False

    #: The zpool types this kernel has, and the version that removed the others.
    zpools: ClassVar[tuple[str, ...]] = ("zsmalloc", "zbud", "z3fold")
    removed: ClassVar[dict[str, str]] = {}

    __slots__ = ("zs",)

    def __init__(self, zs: Zswap) -> None:
        self.zs = zs

    @property
    def splat_kernel(self) -> str:
        """The kernel a sleep in atomic context on these paths is reported as (`acomp.sched`'s
        splat format): the instance's version."""
        return self.zs.version

    @classmethod
    def check_zpool(cls, type: str) -> None:
        """`acomp.UnsupportedKernel` (a ValueError) for a zpool this kernel no longer has."""
        gone = cls.removed.get(type)
        if gone is not None:
            raise UnsupportedKernel(
                f"zswap: zpool {type} was removed in v{gone}; kernel {cls.version} has "
                f"{', '.join(cls.zpools)}")

    def compressed(self, ret: int, dlen: int) -> tuple[int, bool]:
        """The store's verdict on one page's compression (`ret`, `dlen`): ``(0, False)`` keeps
        the output, ``(0, True)`` keeps the page as it is (v6.18), ``(errno, False)`` rejects
        it, its counter counted (v6.9's rule: ``-ENOSPC`` is ``reject_compress_poor``). A
        success of 1 .. ``PAGE_SIZE`` - 1 bytes is kept in every kernel: the page-at-a-time
        store asks only about the others."""
        if ret:
            if ret == _ENOSPC:
                self.zs.reject_compress_poor += 1
            else:
                self.zs.reject_compress_fail += 1
        return ret, False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} v{self.version}>"

    # -- load ----------------------------------------------------------------------------------

    def load_is_exclusive(self) -> bool:
        """Whether a successful load erases the entry (``exclusive_loads`` or v6.9+)."""
        return self.always_exclusive or self.zs.exclusive_loads

    async def decompress(self, entry: ZswapEntry, dst: memoryview) -> int:
        """Decompress `entry` into the page `dst` as this kernel does: 0 or ``-EIO``."""
        raise NotImplementedError

    def _submit(self, ctx: CryptoAcompCtx, src: memoryview, slen: int, dst: memoryview) -> int:
        acomp_request_set_params(ctx.req, sg_init_one(src), sg_init_one(dst), slen, PAGE_SIZE)
        return crypto_acomp_decompress(ctx.req)

    def _done(self, ctx: CryptoAcompCtx, ret: int) -> int:
        """A decompression must give exactly a page, else ``decompress_fail`` and ``-EIO``
        (v6.15's rule, kept in every version instead of the older kernels' ``BUG_ON``)."""
        if ret or ctx.req.dlen != PAGE_SIZE:
            self.zs.decompress_fail += 1
            return _EIO
        return 0

    async def _decompress_locked(self, ctx: CryptoAcompCtx, src: memoryview, length: int,
                                 dst: memoryview) -> int:
        """Decompress under the CPU's mutex (5.11 and 5.12 take it after mapping)."""
        await ctx.mutex.lock()
        try:
            ret = self._submit(ctx, src, length, dst)
            if ret == _EINPROGRESS or ret == _EBUSY:
                ret = await crypto_wait_req(ret, ctx.wait)
            return ret
        finally:
            ctx.mutex.unlock()

    # -- store ---------------------------------------------------------------------------------

    async def compress(self, pool: ZswapPool, src: memoryview, entry: ZswapEntry) -> int:
        """The store's compression (v6.9's ``zswap_compress``): compress `src` under the CPU's
        mutex into its ``dstmem``, allocate the object, copy it in (the page itself where
        `compressed` keeps it as it is), and fill `entry`'s handle and length; 0 or the errno
        the store returns, with its reject counter."""
        ctx = pool.acomp_ctx.this_cpu()
        mutex = ctx.mutex
        if sched.checks or not mutex.trylock():  # (the trylock is mutex_lock's fast path)
            await mutex.lock()
        try:
            req = ctx.req
            buf: Any = ctx.dstmem
            # dst has 2 pages (hardware may not check dlen); the capacity asked is one.
            acomp_request_set_params(req, sg_init_one(src), ctx.dst_sg, PAGE_SIZE, PAGE_SIZE)
            ret = crypto_acomp_compress(req)
            if ret == _EINPROGRESS or ret == _EBUSY:
                ret = await crypto_wait_req(ret, ctx.wait)
            dlen = req.dlen
            as_is = False
            if ret or not 0 < dlen < PAGE_SIZE:  # (any other output is kept by every kernel)
                ret, as_is = self.compressed(ret, dlen)
                if ret:
                    return ret
            if as_is:
                buf, dlen = src, PAGE_SIZE
            ret, handle = self.malloc(pool, dlen)
            if ret:
                return ret
            self.write(pool, handle, buf, dlen)
        finally:
            mutex.unlock()
        entry.pool = pool
        entry.handle = handle
        entry.length = dlen
        entry.incompressible = as_is
        return 0

    def malloc(self, pool: ZswapPool, dlen: int) -> tuple[int, int]:
        """Allocate the object of `dlen` bytes in `pool`'s zpool (``zpool_malloc``, bound to
        the pool: `ZswapPool.malloc`): ``(0, handle)``, or the errno with its reject counter
        (``-ENOSPC`` is ``reject_compress_poor``, any other ``reject_alloc_fail``)."""
        ret, handle = pool.malloc(dlen, _MALLOC_GFP[zpool_malloc_support_movable(pool.zpool)])
        if ret:
            self._alloc_failed(ret)
        return ret, handle

    def _alloc_failed(self, ret: int) -> None:
        if ret == _ENOSPC:
            self.zs.reject_compress_poor += 1
        else:
            self.zs.reject_alloc_fail += 1

    def write(self, pool: ZswapPool, handle: int, src: Any, dlen: int) -> None:
        """Copy the compressed `src[:dlen]` into the object `handle` (``zpool_map_handle`` WO,
        copy, ``zpool_unmap_handle``, bound to the pool)."""
        buf = pool.map(handle, ZPOOL_MM_WO)
        buf[:dlen] = memoryview(src)[:dlen]
        pool.unmap(handle)

    # -- large folios (v6.13) and batches (the compress-batching series) ----------------------

    #: Whether ``zswap_store`` takes a large folio (v6.13, per page).
    large_folios: ClassVar[bool] = False
    #: Whether batching is on unless `Zswap.compress_batching` says otherwise.
    compress_batching: ClassVar[bool] = False

    async def store_folio(self, type: int, offset: int, folio: Folio) -> int:
        """``zswap_store`` of a large folio: before v6.13 rejected (``-EINVAL``: the swap layer
        writes it to the device); from v6.13 one entry per page, all or nothing, pages in
        batches of `Zswap.store_batch_size` (1: ``zswap_store_page`` page by page)."""
        zs = self.zs
        nr = folio.nr_pages
        if not self.large_folios:
            return _EINVAL
        tree = zs._trees.get(type)
        if not zs.enabled or tree is None:
            zs._erase_range(type, offset, nr)  # check_old
            return _ENODEV
        zs._stores += nr
        ret = zs._check_limits()  # once per folio, as zswap_check_limits()
        if not ret and not zs._pools:
            ret = _EINVAL
        if ret:
            zs._erase_range(type, offset, nr)
            return ret
        pool = zs._pools[0]  # zswap_pool_current_get: held for the whole folio
        pool.kref += 1
        batch = zs.store_batch_size(pool)
        ok = False
        try:
            if batch <= 1:
                for i, page in enumerate(folio.pages()):
                    ret = await zs._store_page(tree, type, offset + i, page)
                    if ret:
                        break
            else:
                rows = folio.array()
                for start in range(0, nr, batch):
                    ret = await self.store_pages(tree, type, offset, rows, start,
                                                 min(start + batch, nr), pool)
                    if ret:
                        break
            ok = not ret
        finally:
            zs._pool_put(pool)
            if not ok:
                # Free what the folio stored and any older entry at its offsets.
                zs._erase_range(type, offset, nr)
        if ret:
            return ret
        zs._folio_stored(folio)
        return 0

    async def store_pages(self, tree: dict[int, ZswapEntry], type: int, offset: int,
                          rows: npt.NDArray[np.uint8], start: int, end: int, pool: ZswapPool
                          ) -> int:
        """The series' ``zswap_store_pages``: pages `start` .. `end` - 1 of a folio (the rows of
        `rows`, at `offset` + index) as one batch. The entries first, one compression batch
        for the pages that are not same-filled, then, page by page in order, the checks and
        counters of the page-at-a-time path (the first failure fails the batch and counts
        alone), the batch's zpool allocations and writes together, and the insertions."""
        zs = self.zs
        n = end - start
        if zs.max_entries is not None and zs._nr_entries + n > zs.max_entries:
            room = zs.max_entries - zs._nr_entries  # the pages before the one that fails
            if room > 0:
                ret = await self.store_pages(tree, type, offset, rows, start, start + room, pool)
                if ret:
                    return ret
            zs.reject_kmemcache_fail += 1
            return _ENOMEM
        same: list[bytes | None] = [None] * n
        compress: list[int] = []  # batch index k of each page to compress
        limit = n  # a page past a non-same-filled page with non_same disabled is never reached
        for k in range(n):
            if zs.same_filled_pages_enabled:
                same[k] = same_filled_word(rows[start + k].data)
                if same[k] is not None:
                    continue
            if not zs.non_same_filled_pages_enabled:
                limit = k
                break
            compress.append(k)
        zpool = pool.zpool
        kept: dict[int, tuple[int, int]] = {}  # k -> (handle, dlen)
        raw: set[int] = set()  # pages kept as they are (v6.18)
        ret = 0
        ctx = pool.acomp_ctx.this_cpu()
        await ctx.mutex.lock()
        try:
            sizes: list[int] = []
            outs: Any = None
            done = _nothing
            if compress:
                src = (rows[start:end] if len(compress) == n
                       else rows[[start + k for k in compress]])
                sizes, outs, done = await self.compress_batch(ctx, src)
            where = {k: j for j, k in enumerate(compress)}
            for k in range(limit):
                j = where.get(k)
                if j is None:
                    continue  # same-filled
                dlen = sizes[j]
                ret, as_is = self.compressed(min(dlen, 0), max(dlen, 0))
                if ret:
                    break
                if as_is:
                    dlen = PAGE_SIZE
                    raw.add(k)
                ret, handle = self.malloc(pool, dlen)
                if ret:
                    break
                kept[k] = (handle, dlen)
            if not ret and limit < n:
                ret = _EINVAL  # non_same_filled_pages_enabled is off
            try:
                if ret:
                    for handle, _ in kept.values():
                        zpool_free(zpool, handle)
                    return ret
                for k, (handle, dlen) in kept.items():  # the batch's writes, together
                    self.write(pool, handle,
                               rows[start + k] if k in raw else outs[where[k]], dlen)
            finally:
                done()  # a driver's leased output rows go back to it
        finally:
            ctx.mutex.unlock()
        for k in range(n):
            entry = ZswapEntry(type, offset + start + k)
            value = same[k]
            if value is not None:
                entry.value = value
                zs.same_filled_pages += 1
            else:
                handle, dlen = kept[k]
                pool.kref += 1
                entry.pool = pool
                entry.handle = handle
                entry.length = dlen
                entry.incompressible = k in raw
            zs._insert(tree, entry)
        return 0

    async def compress_batch(self, ctx: CryptoAcompCtx, src: npt.NDArray[np.uint8]
                             ) -> tuple[list[int], Any, Callable[[], None]]:
        """Compress the pages of `src` as one batch under the CPU's mutex: each page's size or
        negative errno, the rows holding the outputs, and what to call once they are copied
        (a vectored driver's leased result goes back to it). A driver with the vectored entry
        points gets one submission (``crypto_acomp_batch_compress``); any other asynchronous
        driver gets one request per page from the context's batch, all in flight together."""
        n = len(src)
        if ctx.vectored:
            try:
                res = await crypto_acomp_batch_compress(ctx.acomp, src, capacity=PAGE_SIZE)
            except AcompError as e:  # the batch as a whole was refused
                return [e.err] * n, None, _nothing
            return [int(x) for x in res.sizes], res.out, res.release
        ctx.ensure_batch(n)
        subs = []
        for i in range(n):
            req = ctx.reqs[i]
            # dst has 2 pages (hardware may not check dlen); the capacity asked is one.
            acomp_request_set_params(req, sg_init_one(src[i]), sg_init_one(ctx.buffers[i]),
                                     PAGE_SIZE, PAGE_SIZE)
            subs.append(crypto_acomp_compress(req))
        return await self._wait_all(ctx, subs), ctx.buffers, _nothing

    async def _wait_all(self, ctx: CryptoAcompCtx, subs: list[int]) -> list[int]:
        """Wait for every submitted request of the batch: each dlen or negative errno. A
        cancelled wait still lets the rest complete (their buffers are the context's)."""
        sizes: list[int] = []
        try:
            for i, ret in enumerate(subs):
                ret = await crypto_wait_req(ret, ctx.waits[i])
                sizes.append(ctx.reqs[i].dlen if ret == 0 else ret)
        except BaseException:
            with anyio.CancelScope(shield=True):
                for i in range(len(sizes), len(subs)):
                    await crypto_wait_req(subs[i], ctx.waits[i])
            raise
        return sizes

    async def decompress_batch(self, pool: ZswapPool, entries: list[ZswapEntry],
                               dsts: list[memoryview]) -> list[int]:
        """Decompress `entries` into `dsts` as one batch under the CPU's mutex: each 0, or
        ``-EIO`` with ``decompress_fail`` (also when a page does not come out whole)."""
        zs = self.zs
        ctx = pool.acomp_ctx.this_cpu()
        await ctx.mutex.lock()
        try:
            ctx.ensure_batch(len(entries))
            srcs, release = self.batch_sources(ctx, pool, entries)
            try:
                sizes = await self.decompress_rows(ctx, srcs, dsts)
            finally:
                release()
        finally:
            ctx.mutex.unlock()
        rets = []
        for n in sizes:
            if n != PAGE_SIZE:
                zs.decompress_fail += 1
                rets.append(_EIO)
            else:
                rets.append(0)
        return rets

    def batch_sources(self, ctx: CryptoAcompCtx, pool: ZswapPool, entries: list[ZswapEntry]
                      ) -> tuple[list[memoryview], Callable[[], None]]:
        """Where the batch reads each compressed object from, and what to do after the batch.

        The batch sleeps, so no mapping may be held across it: each object is mapped, copied
        into the context's buffer of its slot and unmapped at once (v6.9's copy for an
        asynchronous compressor, done for every pool here)."""
        zpool = pool.zpool
        srcs = []
        for i, entry in enumerate(entries):
            src = zpool_map_handle(zpool, entry.handle, ZPOOL_MM_RO)
            buf = ctx.buffers[i].data[:entry.length]
            buf[:] = src
            zpool_unmap_handle(zpool, entry.handle)
            self.zs._copies += 1
            srcs.append(buf)
        return srcs, _nothing

    async def decompress_rows(self, ctx: CryptoAcompCtx, srcs: list[memoryview],
                              dsts: list[memoryview]) -> list[int]:
        """Decompress each of `srcs` into its page of `dsts` as one batch: sizes or errnos."""
        n = len(srcs)
        if ctx.vectored:
            try:
                res = await crypto_acomp_batch_decompress(ctx.acomp, srcs, capacity=PAGE_SIZE)
            except AcompError as e:
                return [e.err] * n
            try:
                sizes = [int(x) for x in res.sizes]
                for i in range(n):
                    if sizes[i] == PAGE_SIZE:
                        dsts[i][:] = res.out[i, :PAGE_SIZE].data
            finally:
                res.release()
            return sizes
        subs = []
        for i in range(n):
            req = ctx.reqs[i]
            acomp_request_set_params(req, sg_init_one(srcs[i]), sg_init_one(dsts[i]),
                                     len(srcs[i]), PAGE_SIZE)
            subs.append(crypto_acomp_decompress(req))
        return await self._wait_all(ctx, subs)


class Zswap511(ZswapPaths):
    """v5.11 (commit 1ec3b5fe6eec, the seed): ``zswap_frontswap_load`` maps the object, then
    takes the per-CPU mutex and decompresses while mapped. On zsmalloc, whose mapping disables
    preemption, that sleeps in atomic context."""

    version = "5.11"
    __slots__ = ()

    async def decompress(self, entry: ZswapEntry, dst: memoryview) -> int:
        pool, ctx = _pool_ctx(entry)
        zpool, handle = pool.zpool, entry.handle
        src = zpool_map_handle(zpool, handle, ZPOOL_MM_RO)
        try:
            ret = await self._decompress_locked(ctx, src, entry.length, dst)
        finally:
            zpool_unmap_handle(zpool, handle)
        return self._done(ctx, ret)


class Zswap512(ZswapPaths):
    """v5.12 ("mm/zswap: add the flag can_sleep_mapped"): when the pool cannot sleep mapped,
    ``zswap_frontswap_load`` copies the object into a ``kmalloc`` buffer and unmaps before
    taking the mutex."""

    version = "5.12"
    __slots__ = ()

    async def decompress(self, entry: ZswapEntry, dst: memoryview) -> int:
        pool, ctx = _pool_ctx(entry)
        zpool, handle, length = pool.zpool, entry.handle, entry.length
        sleep_mapped = zpool_can_sleep_mapped(zpool)
        if not sleep_mapped:
            tmp = bytearray(length)  # kmalloc(entry->length, GFP_ATOMIC), before mapping
            src = zpool_map_handle(zpool, handle, ZPOOL_MM_RO)
            tmp[:] = src
            zpool_unmap_handle(zpool, handle)
            self.zs._copies += 1
            src = memoryview(tmp)
        else:
            src = zpool_map_handle(zpool, handle, ZPOOL_MM_RO)
        try:
            ret = await self._decompress_locked(ctx, src, length, dst)
        finally:
            if sleep_mapped:
                zpool_unmap_handle(zpool, handle)
        return self._done(ctx, ret)


class Zswap609(ZswapPaths):
    """v6.9 ``zswap_decompress``: the mutex first, then map; the copy into ``acomp_ctx->buffer``
    only when the compressor is asynchronous (``acomp_ctx->is_sleepable``) and the pool cannot
    sleep mapped: a synchronous scomp decompresses in place, since it never sleeps. Loads are
    always exclusive."""

    version = "6.9"
    always_exclusive = True
    __slots__ = ()

    async def decompress(self, entry: ZswapEntry, dst: memoryview) -> int:
        pool, ctx = _pool_ctx(entry)
        zpool, handle, length = pool.zpool, entry.handle, entry.length
        mutex = ctx.mutex
        if sched.checks or not mutex.trylock():
            await mutex.lock()
        try:
            src = pool.map(handle, ZPOOL_MM_RO)  # zpool_map_handle
            mapped = True
            try:
                if ctx.is_sleepable and not zpool_can_sleep_mapped(zpool):
                    buf = memoryview(ctx.dstmem)[:length]
                    buf[:] = src
                    pool.unmap(handle)  # zpool_unmap_handle
                    mapped = False
                    self.zs._copies += 1
                    src = buf
                ret = self._submit(ctx, src, length, dst)
                if ret == _EINPROGRESS or ret == _EBUSY:
                    ret = await crypto_wait_req(ret, ctx.wait)
            finally:
                if mapped:
                    pool.unmap(handle)
            return self._done(ctx, ret)
        finally:
            mutex.unlock()


class Zswap613(Zswap609):
    """v6.13: ``zswap_store`` takes a large (mTHP) folio, one entry per page with
    ``zswap_store_page``, all or nothing; loads and decompression are v6.9's."""

    version = "6.13"
    large_folios = True
    __slots__ = ()


class Zswap615(Zswap613):
    """v6.15 ``zswap_decompress``: zsmalloc's sleepable reads (``zpool_obj_read_begin`` /
    ``_end``, copying into ``acomp_ctx->buffer`` only an object that spans two pages) under the
    mutex, and ``zpool_obj_write`` for stores. zbud and z3fold were removed in v6.15: asking for
    them is an error naming the version (`check_zpool`)."""

    version = "6.15"
    zpools = ("zsmalloc",)
    removed: ClassVar[dict[str, str]] = {"zbud": "6.15", "z3fold": "6.15"}
    __slots__ = ()

    async def decompress(self, entry: ZswapEntry, dst: memoryview) -> int:
        pool, ctx = _pool_ctx(entry)
        zpool, handle = pool.zpool, entry.handle
        mutex = ctx.mutex
        if sched.checks or not mutex.trylock():
            await mutex.lock()
        try:
            obj = zpool_obj_read_begin(zpool, handle, ctx.dstmem)
            try:
                ret = self._submit(ctx, obj, entry.length, dst)
                if ret == _EINPROGRESS or ret == _EBUSY:
                    ret = await crypto_wait_req(ret, ctx.wait)
            finally:
                zpool_obj_read_end(zpool, handle, obj)
            return self._done(ctx, ret)
        finally:
            mutex.unlock()

    def write(self, pool: ZswapPool, handle: int, src: Any, dlen: int) -> None:
        zpool_obj_write(pool.zpool, handle, src, dlen)

    def batch_sources(self, ctx: CryptoAcompCtx, pool: ZswapPool, entries: list[ZswapEntry]
                      ) -> tuple[list[memoryview], Callable[[], None]]:
        """zsmalloc's sleepable reads for the whole batch: each object viewed in place (or
        copied into its slot's buffer when it spans two pages) until the batch is done."""
        zpool = pool.zpool
        begun: list[tuple[int, memoryview]] = []

        def release() -> None:
            for handle, obj in begun:
                zpool_obj_read_end(zpool, handle, obj)

        try:
            for i, entry in enumerate(entries):
                obj = zpool_obj_read_begin(zpool, entry.handle, ctx.buffers[i].data)
                begun.append((entry.handle, obj))
        except BaseException:
            release()
            raise
        return [obj[:entry.length] for (_, obj), entry in zip(begun, entries, strict=True)], \
            release


class Zswap618(Zswap615):
    """v6.18: the zpool layer is gone ("mm: zswap: interact directly with zsmalloc", "mm:
    remove unused zpool layer"): zswap calls ``zs_malloc``, ``zs_obj_write`` and
    ``zs_obj_read_begin``/``_end`` on its zsmalloc pool, and the ``zpool`` parameter is gone.
    ``zswap_compress`` ("mm/zswap: store <PAGE_SIZE compression failed page as-is") keeps a
    page whose compression failed, gave nothing or gave ``PAGE_SIZE`` or more, as it is
    (``length == PAGE_SIZE``, ``stored_incompressible_pages``), where the cgroup's
    ``memory.zswap.writeback`` is on; otherwise it is rejected (``-EINVAL`` when the compressor
    itself succeeded). ``zswap_decompress`` copies such a page back instead of decompressing."""

    version = "6.18"
    __slots__ = ()

    def compressed(self, ret: int, dlen: int) -> tuple[int, bool]:
        if ret or not dlen or dlen >= PAGE_SIZE:
            if not self.zs.writeback_enabled:
                return super().compressed(ret or _EINVAL, dlen)
            return 0, True
        return 0, False

    def malloc(self, pool: ZswapPool, dlen: int) -> tuple[int, int]:
        handle = zs_malloc(pool.zpool.pool, dlen, _GFP_618)  # pool->zs_pool
        if handle < 0:
            self._alloc_failed(handle)
            return handle, 0
        return 0, handle

    async def decompress(self, entry: ZswapEntry, dst: memoryview) -> int:
        pool, ctx = _pool_ctx(entry)
        zs_pool, handle = pool.zpool.pool, entry.handle
        await ctx.mutex.lock()
        try:
            obj = zs_obj_read_begin(zs_pool, handle, ctx.dstmem)
            try:
                if entry.length == PAGE_SIZE:  # kept as it was: copied back
                    dst[:] = obj[:PAGE_SIZE]
                    return 0
                ret = await crypto_wait_req(self._submit(ctx, obj, entry.length, dst), ctx.wait)
            finally:
                zs_obj_read_end(zs_pool, handle, obj)
            return self._done(ctx, ret)
        finally:
            ctx.mutex.unlock()

    def write(self, pool: ZswapPool, handle: int, src: Any, dlen: int) -> None:
        zs_obj_write(pool.zpool.pool, handle, src, dlen)


class Zswap700(Zswap618):
    """v7.0: ``zswap_decompress`` reads the object through zsmalloc's scatterlist API
    ("zsmalloc: introduce SG-list based object read API", "mm: zswap: decompress straight from
    the zsmalloc scatterlist"): ``zs_obj_read_sg_begin`` gives one entry, or two when the
    object spans pages, over the pool's own pages, and the compressor reads them in place: no
    copy into ``acomp_ctx->buffer`` even for a spanning object. A page kept as it was
    (``length == PAGE_SIZE``) is copied out of the scatterlist (``memcpy_from_sglist``)."""

    version = "7.0"
    __slots__ = ()

    async def decompress(self, entry: ZswapEntry, dst: memoryview) -> int:
        pool, ctx = _pool_ctx(entry)
        zs_pool, handle = pool.zpool.pool, entry.handle
        await ctx.mutex.lock()
        try:
            sg = zs_obj_read_sg_begin(zs_pool, handle, entry.length)
            try:
                if entry.length == PAGE_SIZE:  # not compressed
                    sg_copy_to_buffer(sg, dst, PAGE_SIZE)
                    return 0
                acomp_request_set_params(ctx.req, sg, sg_init_one(dst), entry.length,
                                         PAGE_SIZE)
                ret = await crypto_wait_req(crypto_acomp_decompress(ctx.req), ctx.wait)
            finally:
                zs_obj_read_sg_end(zs_pool, handle)
            return self._done(ctx, ret)
        finally:
            ctx.mutex.unlock()


class ZswapProposed(Zswap615):
    """The newest paths with the compress-batching series on (Kanchana Sridhar, "zswap
    compression batching with optimized iaa_crypto driver", v13 Nov 2025 / v14 Jan 2026, not
    merged): ``zswap_store`` stores a large folio in batches of ``pool->compr_batch_size``
    (``crypto_acomp_batch_size``, capped at `ZSWAP_MAX_BATCH_SIZE` pages instead of the series'
    8), each batch compressed as one submission, and readahead decompresses in batches."""

    version = "proposed"
    compress_batching = True
    __slots__ = ()

    async def compress_batch(self, ctx: CryptoAcompCtx, src: npt.NDArray[np.uint8]
                             ) -> tuple[list[int], Any, Callable[[], None]]:
        """On a transform of the acomp "proposed" mode, v14's batched ``zswap_compress``:
        the batch's pages as one segmented request on the CPU's request
        (``acomp_request_set_src_folio``, a dst table of one page per page,
        ``acomp_request_set_unit_size(req, PAGE_SIZE)``), each page's size or errno read from
        its dst entry's length; an algorithm without ``CRYPTO_ALG_REQ_SEG`` gets one page per
        request, in turn (its batch size is 1 there: the trivial segmentation takes one).
        Any other transform: the project's batch (`ZswapPaths.compress_batch`)."""
        tfm = ctx.acomp
        if not is_proposed(tfm.kernel):
            return await super().compress_batch(ctx, src)
        n = len(src)
        ctx.ensure_batch(n)
        per = n if crypto_acomp_req_seg(tfm) else 1  # nr_batch_pages
        flat = src.reshape(-1)
        req = ctx.req
        sizes: list[int] = []
        try:
            for start in range(0, n, per):
                k = min(per, n - start)
                dst = sg_init_table(k)  # the per-CPU sg_table over the dst buffers
                for i in range(k):
                    sg_set_buf(dst, i, ctx.buffers[start + i], PAGE_SIZE)
                acomp_request_set_src_folio(req, flat, start * PAGE_SIZE, k * PAGE_SIZE)
                acomp_request_set_dst_sg(req, dst, k * PAGE_SIZE)
                acomp_request_set_unit_size(req, PAGE_SIZE)
                err = await crypto_wait_req(crypto_acomp_compress(req), ctx.wait)
                # A request refused before any segment ran wrote no length: its status.
                sizes += [sg_length(dst, i, err or _EIO) for i in range(k)]
        finally:
            acomp_request_set_unit_size(req, 0)  # the page-at-a-time paths use it too
        return sizes, ctx.buffers, _nothing


#: The modelled kernels' paths, by version, oldest first.
PATHS: dict[str, type[ZswapPaths]] = {
    cls.version: cls for cls in (Zswap511, Zswap512, Zswap609, Zswap613, Zswap615, Zswap618,
                                 Zswap700, ZswapProposed)
}


def _nothing() -> None:
    pass


def paths_for(version: str) -> tuple[str, type[ZswapPaths]]:
    """`version` as ``MAJOR.MINOR`` and the paths of the newest modelled change at or before it
    (``"6.12"`` gets v6.9's); `acomp.UnsupportedKernel` (a ValueError) for a version no era
    models. ``"proposed"`` is the newest paths with the compress-batching series."""
    if version == ZswapProposed.version:
        return version, ZswapProposed
    era_of(version)
    ver = parse_kernel(version)
    best: type[ZswapPaths] = Zswap511
    for v, cls in PATHS.items():
        if cls is not ZswapProposed and parse_kernel(v) <= ver:
            best = cls
    return f"{ver[0]}.{ver[1]}", best
