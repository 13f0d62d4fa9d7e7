"""zswap's per-kernel paths: the parts of ``mm/zswap.c`` that differ between the modelled versions.

Kernel counterpart: ``mm/zswap.c`` of each version: the decompression of ``zswap_frontswap_load``
(v5.11, v5.12), ``zswap_decompress`` (v6.9, v6.15), the store's copy into the pool, and whether a
load takes the entry out of the tree.

`Zswap` chooses one `ZswapPaths` subclass at construction (and again when its `version` is set)
and calls it; nothing in `Zswap` compares version strings. Each class is one kernel, read top to
bottom as that kernel's source reads; adding a version is adding a class to `PATHS`.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, ClassVar

from acomp._constants import PAGE_SIZE
from acomp.acompress import (
    acomp_request_set_params,
    crypto_acomp_compress,
    crypto_acomp_decompress,
)
from acomp.scatterlist import sg_init_one
from acomp.wait import crypto_wait_req
from zswap.page import (
    __GFP_HIGHMEM,
    __GFP_KSWAPD_RECLAIM,
    __GFP_MOVABLE,
    __GFP_NORETRY,
    __GFP_NOWARN,
)
from zswap.zpool import (
    ZPOOL_MM_RO,
    ZPOOL_MM_WO,
    Zpool,
    zpool_can_sleep_mapped,
    zpool_malloc,
    zpool_malloc_support_movable,
    zpool_map_handle,
    zpool_obj_read_begin,
    zpool_obj_read_end,
    zpool_obj_write,
    zpool_unmap_handle,
)

if TYPE_CHECKING:
    from zswap.zswap import CryptoAcompCtx, Zswap, ZswapEntry, ZswapPool

__all__ = ("PATHS", "STORE_GFP", "Zswap511", "Zswap512", "Zswap609", "Zswap615", "ZswapPaths")

_EIO = -errno.EIO
_ENOSPC = -errno.ENOSPC

#: The store's allocation flags (v5.11 - v6.15): no direct reclaim, so ``zpool_malloc`` never
#: sleeps; ``__GFP_HIGHMEM | __GFP_MOVABLE`` are added where the backend supports them.
STORE_GFP = __GFP_NORETRY | __GFP_NOWARN | __GFP_KSWAPD_RECLAIM
_MOVABLE_GFP = __GFP_HIGHMEM | __GFP_MOVABLE
#: The store's gfp, by ``zpool_malloc_support_movable``.
_MALLOC_GFP = {False: STORE_GFP, True: STORE_GFP | _MOVABLE_GFP}


class ZswapPaths:
    """One kernel's zswap paths, bound to the `Zswap` they serve."""

    #: The kernel version these paths follow.
    version: ClassVar[str]
    #: Whether every successful load takes the entry out of the tree (v6.9: the
    #: ``exclusive_loads`` parameter is gone and loads are always exclusive).
    always_exclusive: ClassVar[bool] = False

    __slots__ = ("zs",)

    def __init__(self, zs: Zswap) -> None:
        self.zs = zs

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
            return await crypto_wait_req(self._submit(ctx, src, length, dst), ctx.wait)
        finally:
            ctx.mutex.unlock()

    # -- store ---------------------------------------------------------------------------------

    async def compress(self, pool: ZswapPool, src: memoryview, entry: ZswapEntry) -> int:
        """The store's compression (v6.9's ``zswap_compress``): compress `src` under the CPU's
        mutex into its ``dstmem``, allocate the object, copy it in, and fill `entry`'s handle
        and length; 0 or the errno the store returns, with its reject counter."""
        zs = self.zs
        ctx = pool.acomp_ctx.this_cpu()
        await ctx.mutex.lock()
        try:
            req = ctx.req
            dst = ctx.dstmem
            # dst has 2 pages (hardware may not check dlen); the capacity asked is one.
            acomp_request_set_params(req, sg_init_one(src), sg_init_one(dst), PAGE_SIZE,
                                     PAGE_SIZE)
            ret = await crypto_wait_req(crypto_acomp_compress(req), ctx.wait)
            dlen = req.dlen
            if ret:
                if ret == _ENOSPC:
                    zs.reject_compress_poor += 1
                else:
                    zs.reject_compress_fail += 1
                return ret
            zpool = pool.zpool
            ret, handle = zpool_malloc(zpool, dlen,
                                       _MALLOC_GFP[zpool_malloc_support_movable(zpool)])
            if ret:
                if ret == _ENOSPC:
                    zs.reject_compress_poor += 1
                else:
                    zs.reject_alloc_fail += 1
                return ret
            self.write(zpool, handle, dst, dlen)
        finally:
            ctx.mutex.unlock()
        entry.pool = pool
        entry.handle = handle
        entry.length = dlen
        return 0

    def write(self, zpool: Zpool, handle: int, src: bytearray, dlen: int) -> None:
        """Copy the compressed `src[:dlen]` into the object `handle` (map WO, copy, unmap)."""
        buf = zpool_map_handle(zpool, handle, ZPOOL_MM_WO)
        buf[:dlen] = memoryview(src)[:dlen]
        zpool_unmap_handle(zpool, handle)


class Zswap511(ZswapPaths):
    """v5.11 (commit 1ec3b5fe6eec, the seed): ``zswap_frontswap_load`` maps the object, then
    takes the per-CPU mutex and decompresses while mapped. On zsmalloc, whose mapping disables
    preemption, that sleeps in atomic context."""

    version = "5.11"
    __slots__ = ()

    async def decompress(self, entry: ZswapEntry, dst: memoryview) -> int:
        pool = entry.pool
        assert pool is not None
        zpool, handle = pool.zpool, entry.handle
        ctx = pool.acomp_ctx.this_cpu()
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
        pool = entry.pool
        assert pool is not None
        zpool, handle, length = pool.zpool, entry.handle, entry.length
        ctx = pool.acomp_ctx.this_cpu()
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
        pool = entry.pool
        assert pool is not None
        zpool, handle, length = pool.zpool, entry.handle, entry.length
        ctx = pool.acomp_ctx.this_cpu()
        await ctx.mutex.lock()
        try:
            src = zpool_map_handle(zpool, handle, ZPOOL_MM_RO)
            mapped = True
            try:
                if ctx.is_sleepable and not zpool_can_sleep_mapped(zpool):
                    buf = memoryview(ctx.dstmem)[:length]
                    buf[:] = src
                    zpool_unmap_handle(zpool, handle)
                    mapped = False
                    self.zs._copies += 1
                    src = buf
                ret = await crypto_wait_req(self._submit(ctx, src, length, dst), ctx.wait)
            finally:
                if mapped:
                    zpool_unmap_handle(zpool, handle)
            return self._done(ctx, ret)
        finally:
            ctx.mutex.unlock()


class Zswap615(Zswap609):
    """v6.15 ``zswap_decompress``: zsmalloc's sleepable reads (``zpool_obj_read_begin`` /
    ``_end``, copying into ``acomp_ctx->buffer`` only an object that spans two pages) under the
    mutex, and ``zpool_obj_write`` for stores. zbud and z3fold, removed in v6.15, have no
    ``obj_*`` operations and take the v6.9 path."""

    version = "6.15"
    __slots__ = ()

    async def decompress(self, entry: ZswapEntry, dst: memoryview) -> int:
        pool = entry.pool
        assert pool is not None
        zpool = pool.zpool
        if zpool.driver.obj_read_begin is None:
            return await super().decompress(entry, dst)
        handle = entry.handle
        ctx = pool.acomp_ctx.this_cpu()
        await ctx.mutex.lock()
        try:
            obj = zpool_obj_read_begin(zpool, handle, ctx.dstmem)
            try:
                ret = await crypto_wait_req(self._submit(ctx, obj, entry.length, dst), ctx.wait)
            finally:
                zpool_obj_read_end(zpool, handle, obj)
            return self._done(ctx, ret)
        finally:
            ctx.mutex.unlock()

    def write(self, zpool: Zpool, handle: int, src: bytearray, dlen: int) -> None:
        if zpool.driver.obj_write is None:
            super().write(zpool, handle, src, dlen)
        else:
            zpool_obj_write(zpool, handle, src, dlen)


#: The modelled kernels' paths, by version, oldest first.
PATHS: dict[str, type[ZswapPaths]] = {
    cls.version: cls for cls in (Zswap511, Zswap512, Zswap609, Zswap615)
}
