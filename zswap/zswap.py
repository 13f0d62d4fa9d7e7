"""The zswap layer: a compressed cache of swapped-out pages, in front of the swap device.

Kernel counterpart: ``mm/zswap.c`` with the frontswap interface of v5.11 - v6.5 (``init``,
``store``, ``load``, ``invalidate_page``, ``invalidate_area``), its module parameters and debugfs
counters, the v5.11 per-CPU ``crypto_acomp_ctx``, v6.5's own LRU and shrink worker, and the
load paths of each modelled kernel, chosen by `Zswap.version` (each one class of `zswap.versions`,
chosen once at construction and again when `version` is set, never compared per call). The
version defaults to the kernel being modelled (`acomp.kernel()`: ``ACOMP_KERNEL``, else 6.14,
whose paths are v6.13's: v6.9's load, large-folio stores); any version of a modelled era gets
the newest modelled change at or before it:

- ``"5.11"`` (commit 1ec3b5fe6eec, the seed): map the object read-only, take the per-CPU mutex
  and decompress while mapped. With zsmalloc, whose mapping disables preemption, that is the
  "BUG: sleeping function called from invalid context" Mike Galbraith reported; with an
  asynchronous compressor the task really sleeps, and another task on the same CPU that maps an
  object overwrites the per-CPU mapping area the first one is decompressing from.
- ``"5.12"`` ("mm/zswap: add the flag can_sleep_mapped"): if the pool cannot sleep mapped,
  copy the object into a buffer and unmap before decompressing.
- ``"6.9"``: the mutex first, then the copy only when the compressor is asynchronous
  (``acomp_is_async``) and the pool cannot sleep mapped; a synchronous scomp decompresses in
  place, since it never sleeps.
- ``"6.15"``: zsmalloc's sleepable reads (``zpool_obj_read_begin``/``_end``)
  and ``zpool_obj_write`` for stores. zbud and z3fold were removed in v6.15 (an error).
- ``"6.18"``: no zpool layer: ``zs_malloc``/``zs_obj_write``/``zs_obj_read_begin`` directly;
  a page that does not compress is stored as it is (``stored_incompressible_pages``).
- ``"7.0"``: ``zs_obj_read_sg_begin``: the compressor reads the pool's pages through a one- or
  two-entry scatterlist, nothing copied.

In every version a failed decompression counts ``decompress_fail`` and returns ``-EIO`` (the
v6.15 behaviour) instead of the older kernels' ``BUG_ON``; loads are exclusive from 6.9 on
(``exclusive_loads`` before). Counters follow v6.9's rules (``-ENOSPC`` from the compressor is
``reject_compress_poor``), and ``duplicate_entry`` is kept in every version.

Everything runs on one event loop; a completion may come from a device thread but only wakes a
waiter. The sections the kernel guards with ``tree->lock`` and ``lru_lock`` contain no
``await`` here, so they are atomic on the loop and need no lock object. Entries are reference
counted as in v5.11 - v6.8: the tree holds one reference, each load or writeback in progress
another, and the entry (its zpool handle, its pool reference) is freed with the last one.

Writeback goes through a `SwapBackend` (`zswap.swap.SwapArea`): the swap cache decides the
race with a concurrent swap-in (``-EEXIST``) and the page is written to the device.
"""

from __future__ import annotations

import errno
import itertools
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import anyio
import anyio.lowlevel
import numpy as np
import numpy.typing as npt

from acomp import sched
from acomp._constants import CRYPTO_TFM_REQ_MAY_BACKLOG, PAGE_SIZE
from acomp._errors import CryptoError
from acomp.acompress import (
    AcompReq,
    CryptoAcomp,
    acomp_is_async,
    acomp_request_alloc,
    acomp_request_free,
    acomp_request_set_callback,
    crypto_acomp_driver_name,
    crypto_alloc_acomp_node,
    crypto_free_acomp,
    crypto_has_acomp,
)
from acomp.batch import crypto_acomp_batch_size
from acomp.eras import DEFAULT_KERNEL, kernel, parse_kernel
from acomp.scatterlist import sg_init_one
from acomp.wait import CryptoWait, crypto_req_done
from zswap.entry import ZswapEntry, same_filled_word
from zswap.page import (
    HPAGE_PMD_ORDER,
    Folio,
    PhysMem,
    default_memory,
)
from zswap.versions import PATHS, STORE_GFP, ZswapPaths, paths_for
from zswap.zpool import (
    Zpool,
    zpool_create_pool,
    zpool_destroy_pool,
    zpool_get_type,
    zpool_has_pool,
)
from zswap.zsmalloc import pool_options as zsmalloc_pool_options

__all__ = (
    "COUNTERS",
    "DEFAULT_COMPRESSOR",
    "DEFAULT_VERSION",
    "DEFAULT_ZPOOL",
    "FRONTSWAP_LOAD_MISS",
    "MAX_RECLAIM_RETRIES",
    "MAX_SWAPFILES",
    "PARAMETERS",
    "VERSIONS",
    "ZSWAP_MAX_BATCH_SIZE",
    "CryptoAcompCtx",
    "SwapBackend",
    "Version",
    "Zswap",
    "ZswapEntry",
    "ZswapPool",
    "ZswapStatistics",
    "same_filled_word",
)

#: A kernel version, ``MAJOR.MINOR`` (``"6.14"``); any version of a modelled era
#: (`acomp.eras.ERAS`) is accepted and gets the paths of the newest modelled change before it.
Version = str
#: The kernels whose zswap changed in a way the model follows (each a class of
#: `zswap.versions`), oldest first.
VERSIONS: tuple[Version, ...] = tuple(PATHS)
#: The kernel a `Zswap` models when no version is given and none was chosen with
#: ``ACOMP_KERNEL`` or `acomp.set_kernel` (then `acomp.kernel()` is the default).
DEFAULT_VERSION: Version = DEFAULT_KERNEL

#: ``CONFIG_ZSWAP_COMPRESSOR_DEFAULT`` (Kconfig's default choice); "lz4" where lzo is missing.
DEFAULT_COMPRESSOR = "lzo"
#: ``CONFIG_ZSWAP_ZPOOL_DEFAULT`` since v6.7 (zbud before).
DEFAULT_ZPOOL = "zsmalloc"
#: ``MAX_SWAPFILES``: swap types are 0 .. MAX_SWAPFILES - 1.
MAX_SWAPFILES = 32
#: The shrink worker gives up after this many failed reclaims (v6.5).
MAX_RECLAIM_RETRIES = 16

#: The most pages one compression or decompression batch carries (the series' 8, here a whole
#: 2 MiB folio, for devices whose batches can be hundreds of pages).
ZSWAP_MAX_BATCH_SIZE = 1 << HPAGE_PMD_ORDER

class _Counters:
    """zswap's debugfs counters (``/sys/kernel/debug/zswap/``), each 0 until counted, in the
    order zswap creates their files."""

    pool_limit_hit: int = 0
    reject_reclaim_fail: int = 0
    reject_alloc_fail: int = 0
    reject_kmemcache_fail: int = 0
    reject_compress_fail: int = 0
    reject_compress_poor: int = 0
    decompress_fail: int = 0
    written_back_pages: int = 0
    duplicate_entry: int = 0
    pool_total_size: int = 0
    stored_pages: int = 0
    same_filled_pages: int = 0
    stored_incompressible_pages: int = 0


#: Every counter the model keeps (`Zswap.counters`), in the order zswap creates their debugfs
#: files; a version has the files of `FILES` that were there (`Zswap.debugfs_files`).
COUNTERS: tuple[str, ...] = tuple(_Counters.__annotations__)

#: Every module parameter of ``/sys/module/zswap/parameters`` the model has; a version has
#: those that were there (`Zswap.parameter_files`).
PARAMETERS: tuple[str, ...] = (
    "enabled",
    "compressor",
    "zpool",
    "max_pool_percent",
    "accept_threshold_percent",
    "same_filled_pages_enabled",
    "non_same_filled_pages_enabled",
    "exclusive_loads",
    "shrinker_enabled",
)

#: The debugfs files and parameters that were not there in every modelled version: (the first
#: version with it, the first without it), None for open-ended (mm/zswap.c of each version).
FILES: dict[str, tuple[tuple[int, int] | None, tuple[int, int] | None]] = {
    "reject_compress_fail": ((6, 7), None),  # "zswap: export compression failure stats"
    "decompress_fail": ((6, 15), None),  # "mm/zswap: do not crash kernel on decompression failure"
    "duplicate_entry": (None, (6, 9)),  # loads became exclusive, stores replace
    "same_filled_pages": (None, (6, 12)),  # "mm: remove code to handle same filled pages"
    "stored_incompressible_pages": ((6, 18), None),  # "store <PAGE_SIZE compression failed page"
    "zpool": (None, (6, 18)),  # "mm: remove unused zpool layer"
    "same_filled_pages_enabled": (None, (6, 10)),
    "non_same_filled_pages_enabled": ((5, 18), (6, 10)),
    "exclusive_loads": ((6, 5), (6, 9)),
    "shrinker_enabled": ((6, 8), None),
}


#: ``zswap_frontswap_load``'s return for an entry it does not have (v5.11 - v6.4).
FRONTSWAP_LOAD_MISS = -1


def _kernel_of(version: str) -> tuple[int, int]:
    """`version` as ``(major, minor)``; ``"proposed"`` is newer than every release."""
    return (99, 0) if version == "proposed" else parse_kernel(version)


def _load_miss(version: str) -> int:
    """`Zswap.load_miss` of `version`: frontswap (removed in v6.5, "mm: kill frontswap") -1."""
    return FRONTSWAP_LOAD_MISS if _kernel_of(version) < (6, 5) else _ENOENT


def _files_of(version: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """The names of `names` that `version` has (``"proposed"``: the newest kernel's)."""
    ver = _kernel_of(version)
    out = []
    for n in names:
        first, gone = FILES.get(n, (None, None))
        if (first is None or ver >= first) and (gone is None or ver < gone):
            out.append(n)
    return tuple(out)


_ENOENT = -errno.ENOENT
_ENOSPC = -errno.ENOSPC
_ENOMEM = -errno.ENOMEM
_EINVAL = -errno.EINVAL
_EIO = -errno.EIO
_EEXIST = -errno.EEXIST
_EAGAIN = -errno.EAGAIN
_ENODEV = -errno.ENODEV

Buffer = bytes | bytearray | memoryview
WritableBuffer = bytearray | memoryview


class SwapBackend(Protocol):
    """What writeback needs from the swap layer (``__read_swap_cache_async`` and
    ``__swap_writepage``); `zswap.swap.SwapArea` implements it."""

    def swapcache_prepare(self, offset: int) -> memoryview | None:
        """Add a new, locked page for `offset` to the swap cache and return its buffer; None
        when the offset already has one (a swap-in or swap-out in progress: ``-EEXIST``)."""
        ...

    def swapcache_abort(self, offset: int) -> None:
        """Drop the page `swapcache_prepare` added, unwritten (``delete_from_swap_cache``)."""
        ...

    async def swap_writepage(self, offset: int) -> int:
        """The page is uptodate: unlock it, write it to the device, drop it from the cache."""
        ...


# --------------------------------------------------------------------------------------------
# Structures


class CryptoAcompCtx:
    """``struct crypto_acomp_ctx`` (v5.11): one CPU's transform, request and wait, and that
    CPU's ``dstmem`` (2 pages) and mutex, shared by every pool as in v5.11."""

    __slots__ = ("acomp", "buffers", "dst_sg", "dstmem", "is_sleepable", "mutex", "req", "reqs",
                 "vectored", "wait", "waits")

    def __init__(self, acomp: CryptoAcomp, req: AcompReq, wait: CryptoWait, dstmem: bytearray,
                 mutex: sched.Mutex) -> None:
        self.acomp = acomp
        self.req = req
        self.wait = wait
        self.dstmem = dstmem
        #: The store's output scatterlist over ``dstmem`` (``sg_init_one(&output, dst,
        #: PAGE_SIZE * 2)``), made once: it describes the same two pages at every store.
        self.dst_sg = sg_init_one(dstmem)
        self.mutex = mutex
        #: v6.9's ``acomp_ctx->is_sleepable = acomp_is_async(acomp)``.
        self.is_sleepable = acomp_is_async(acomp)
        #: The compress-batching series' per-CPU batch: ``buffers[i]`` (2 pages each) and,
        #: for a driver without the vectored entry points, ``reqs[i]``/``waits[i]``; grown by
        #: `ensure_batch` to the pool's batch size.
        self.buffers: npt.NDArray[np.uint8] = np.zeros((0, 2 * PAGE_SIZE), np.uint8)
        self.reqs: list[AcompReq] = []
        self.waits: list[CryptoWait] = []
        #: The driver takes a whole batch in one submission (``batch_compress``).
        self.vectored = getattr(acomp.alg, "batch_compress", None) is not None

    def ensure_batch(self, n: int) -> None:
        """Own `n` batch buffers (and requests, where the driver needs one per page)."""
        if len(self.buffers) < n:
            self.buffers = np.zeros((n, 2 * PAGE_SIZE), np.uint8)
        if self.vectored:
            return
        while len(self.reqs) < n:
            req = acomp_request_alloc(self.acomp)
            if req is None:
                raise CryptoError(_ENOMEM, "acomp_request_alloc")
            wait = CryptoWait()
            acomp_request_set_callback(req, CRYPTO_TFM_REQ_MAY_BACKLOG, crypto_req_done, wait)
            self.reqs.append(req)
            self.waits.append(wait)

    def free(self) -> None:
        for req in (self.req, *self.reqs):
            acomp_request_free(req)
        self.reqs.clear()
        self.waits.clear()
        crypto_free_acomp(self.acomp)


class ZswapPool:
    """``struct zswap_pool``: a zpool, a compressor's per-CPU contexts, a refcount, an LRU."""

    __slots__ = ("acomp_ctx", "dead", "free", "kref", "lru", "malloc", "map", "name",
                 "shrink_queued", "tfm_name", "total_size", "unmap", "zpool")

    def __init__(self, zpool: Zpool, tfm_name: str, acomp_ctx: sched.PerCpu[CryptoAcompCtx]
                 ) -> None:
        self.zpool = zpool
        #: ``zpool_malloc(zpool, size, gfp)``, ``zpool_map_handle(zpool, handle, mm)``,
        #: ``zpool_unmap_handle``, ``zpool_free`` and ``zpool_get_total_size``: the driver's
        #: calls bound to its pool once (the zpool layer only passes them through, and every
        #: store and load makes them).
        drv, zp = zpool.driver, zpool.pool
        self.malloc: Callable[[int, int], tuple[int, int]] = partial(drv.malloc, zp)
        self.map: Callable[[int, int], memoryview] = partial(drv.map, zp)
        self.unmap: Callable[[int], None] = partial(drv.unmap, zp)
        self.free: Callable[[int], None] = partial(drv.free, zp)
        self.total_size: Callable[[], int] = partial(drv.total_size, zp)
        self.name = zpool.name
        self.tfm_name = tfm_name
        self.acomp_ctx = acomp_ctx
        #: ``kref``: 1 while current, plus one per entry and per queued shrink work.
        self.kref = 1
        #: v6.5's per-pool LRU: oldest first (the kernel's list tail).
        self.lru: OrderedDict[ZswapEntry, None] = OrderedDict()
        self.shrink_queued = False
        self.dead = False

    @property
    def type(self) -> str:
        """The pool's zpool type, e.g. ``zsmalloc``."""
        return zpool_get_type(self.zpool)

    def __repr__(self) -> str:
        return (f"<ZswapPool {self.name} {self.type}/{self.tfm_name} kref={self.kref} "
                f"lru={len(self.lru)}>")


@dataclass(frozen=True)
class ZswapStatistics:
    """Model-side figures the kernel has no file for."""

    stores: int
    loads: int
    load_copies: int
    invalidates: int
    writeback_attempts: int
    entries: int
    pools: int


def _page_view(page: Any) -> memoryview:
    t = type(page)
    if t is bytes or t is bytearray:  # bytes of one dimension already: nothing to check
        return memoryview(page)
    mv = page if t is memoryview else memoryview(page)
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
    return mv


# --------------------------------------------------------------------------------------------
# zswap


class Zswap(_Counters):
    """The zswap module: parameters, pools, one tree per swap type, counters, shrink work.

    ``async with Zswap(...) as zs`` starts the shrink worker (the ``zswap-shrink`` workqueue);
    without it, stores and loads work and shrink work stays queued. `mem` is the memory the
    pools allocate from and whose size ``max_pool_percent`` refers to (default: the default
    memory). `max_entries` bounds the entry cache (``reject_kmemcache_fail`` beyond it).
    """

    def __init__(
        self,
        *,
        mem: PhysMem | None = None,
        compressor: str | None = None,
        zpool: str = DEFAULT_ZPOOL,
        version: Version | None = None,
        enabled: bool = True,
        max_pool_percent: int = 20,
        accept_threshold_percent: int = 90,
        same_filled_pages_enabled: bool = True,
        non_same_filled_pages_enabled: bool = True,
        exclusive_loads: bool = False,
        shrinker_enabled: bool = False,
        max_entries: int | None = None,
        writeback_enabled: bool = True,
        compress_batching: bool | None = None,
        batch_size: int | None = None,
    ) -> None:
        if batch_size is not None and not 1 <= batch_size <= ZSWAP_MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be 1..{ZSWAP_MAX_BATCH_SIZE}")
        #: Batched compression of large folios and batched readahead decompression: None
        #: follows the version (on in "proposed"; an opt-in in the other large-folio eras).
        self._compress_batching = compress_batching
        #: Pages per batch; None: the compressor's ``crypto_acomp_batch_size``.
        self.batch_size = batch_size
        version, paths = paths_for(kernel() if version is None else version)
        paths.check_zpool(zpool)
        self.mem = mem if mem is not None else default_memory()
        self._version: Version = version
        self._paths: ZswapPaths = paths(self)
        #: Whether `_decompress` is this class's (a load then calls the paths directly, one
        #: coroutine less) or a subclass's hook, which every load must go through.
        self._own_decompress = type(self)._decompress is Zswap._decompress
        self._files = _files_of(version, COUNTERS)
        self._params = _files_of(version, PARAMETERS)
        self._miss = _load_miss(version)
        #: v6.11+ computes pool_total_size when read (``zswap_total_pages``); older kernels
        #: keep the counter `_total_size`, set after every store and free.
        self._size_on_read = _kernel_of(version) >= (6, 11)
        self._total_size = 0
        self.enabled = enabled
        self.max_pool_percent = max_pool_percent
        self.accept_threshold_percent = accept_threshold_percent
        self.same_filled_pages_enabled = same_filled_pages_enabled
        self.non_same_filled_pages_enabled = non_same_filled_pages_enabled
        self.exclusive_loads = exclusive_loads
        self.shrinker_enabled = shrinker_enabled
        self.max_entries = max_entries
        #: The cgroup's ``memory.zswap.writeback`` (v6.8+): v6.18 stores an incompressible
        #: page as it is only where writeback is enabled, and rejects it otherwise.
        self.writeback_enabled = writeback_enabled
        self.pool_reached_full = False
        #: ``MTHP_STAT_ZSWPOUT``: folios stored, by order (0: single pages).
        self.mthp_zswpout = [0] * (HPAGE_PMD_ORDER + 1)
        #: vmstat ``zswpout`` / ``zswpin``: pages stored, pages loaded.
        self.zswpout = self.zswpin = 0
        # model statistics
        self._stores = self._loads = self._copies = self._invalidates = self._wb_attempts = 0
        self._nr_entries = 0
        # state
        self._pools: list[ZswapPool] = []  # the current pool first (zswap_pools)
        self._trees: dict[int, dict[int, ZswapEntry]] = {}
        self._backends: dict[int, SwapBackend] = {}
        self._percpu: sched.PerCpu[tuple[bytearray, sched.Mutex]] = sched.PerCpu(
            lambda cpu: (bytearray(2 * PAGE_SIZE), sched.Mutex("acomp_ctx->mutex")))
        self._pool_ids = itertools.count()
        self._shrink_queue: deque[ZswapPool] = deque()
        self._wake: anyio.Event | None = None
        self._idle: anyio.Event | None = None
        self._worker_busy = False
        self._worker_running = False
        self._stack: AsyncExitStack | None = None
        # zswap_setup: the default pool, falling back as the kernel does.
        comp = compressor if compressor is not None else DEFAULT_COMPRESSOR
        if compressor is None and not crypto_has_acomp(comp):
            comp = "lz4"
        if not crypto_has_acomp(comp):
            raise ValueError(f"zswap: compressor {comp} not available")
        if not zpool_has_pool(zpool):
            raise ValueError(f"zswap: zpool {zpool} not available")
        pool = self._pool_create(zpool, comp)
        if pool is None:
            raise ValueError(f"zswap: pool creation failed ({zpool}/{comp})")
        self._pools.append(pool)
        self._compressor = comp
        self._zpool_type = zpool

    def __repr__(self) -> str:
        return (f"<Zswap {self._version} {self._zpool_type}/{self._compressor} "
                f"stored={self.stored_pages} size={self.pool_total_size}>")

    # -- the shrink workqueue --------------------------------------------------------------

    async def __aenter__(self) -> Zswap:
        stack = AsyncExitStack()
        await stack.enter_async_context(self.running())
        self._stack = stack
        return self

    async def __aexit__(self, *exc: object) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Zswap]:
        """Run the shrink worker (an anyio task) for the duration of the block."""
        if self._worker_running:
            raise RuntimeError("zswap: the shrink worker is already running")
        async with anyio.create_task_group() as tg:
            self._worker_running = True
            self._wake = anyio.Event()
            tg.start_soon(self._shrink_wq)
            try:
                yield self
            finally:
                self._worker_running = False
                self._wake.set()

    async def _shrink_wq(self) -> None:
        sched.new_task("kworker/u:zswap-shrink")
        while True:
            while self._shrink_queue:
                pool = self._shrink_queue.popleft()
                pool.shrink_queued = False
                self._worker_busy = True
                try:
                    await self._shrink_worker(pool)
                finally:
                    self._worker_busy = False
            if self._idle is not None:
                self._idle.set()
                self._idle = None
            if not self._worker_running:
                return
            self._wake = anyio.Event()
            await self._wake.wait()

    def _queue_shrink(self) -> None:
        """``queue_work(shrink_wq, &pool->shrink_work)`` on the oldest pool, with a reference."""
        if not self._pools:
            return
        pool = self._pools[-1]  # zswap_pool_last_get
        if pool.shrink_queued:
            return  # already queued: queue_work() is false and the reference is put back
        pool.kref += 1
        pool.shrink_queued = True
        self._shrink_queue.append(pool)
        if self._wake is not None:
            self._wake.set()

    async def flush_shrink_work(self) -> None:
        """Wait until queued shrink work is done (``flush_workqueue``); needs the worker."""
        if not self._worker_running:
            raise RuntimeError("zswap: the shrink worker is not running")
        while self._shrink_queue or self._worker_busy:
            if self._idle is None:
                self._idle = anyio.Event()
            await self._idle.wait()

    # -- parameters ----------------------------------------------------------------------------

    @property
    def version(self) -> Version:
        """The kernel whose load, writeback and store copy paths are used."""
        return self._version

    @version.setter
    def version(self, value: Version) -> None:
        version, paths = paths_for(value)
        for pool in self._pools:
            paths.check_zpool(pool.type)
        self._version = version
        self._paths = paths(self)
        self._files = _files_of(version, COUNTERS)
        self._params = _files_of(version, PARAMETERS)
        self._miss = _load_miss(version)
        self._size_on_read = _kernel_of(version) >= (6, 11)
        self._update_total_size()

    @property
    def load_miss(self) -> int:
        """What `load` returns for a page zswap does not hold: ``-1`` up to v6.4 (mm/zswap.c
        ``zswap_frontswap_load``: "entry was written back", ``return -1``; frontswap then reads
        the device), ``-ENOENT`` from v6.5, where ``zswap_load`` answers false (a bool until
        the int ``zswap_load``, whose miss is ``-ENOENT``)."""
        return self._miss

    def debugfs_files(self) -> tuple[str, ...]:
        """The files of ``/sys/kernel/debug/zswap`` in `version`, in creation order."""
        return self._files

    def parameter_files(self) -> tuple[str, ...]:
        """The files of ``/sys/module/zswap/parameters`` in `version`."""
        return self._params

    @property
    def paths(self) -> ZswapPaths:
        """The chosen kernel's paths (`zswap.versions`): decompression, the store's compression
        and copy, and whether loads are exclusive."""
        return self._paths

    @property
    def compress_batching(self) -> bool:
        """Whether large folios are compressed, and readahead windows decompressed, in
        batches of `store_batch_size` (the series' ``vm.compress-batching``)."""
        if self._compress_batching is None:
            return self._paths.compress_batching
        return self._compress_batching and self._paths.large_folios

    @compress_batching.setter
    def compress_batching(self, value: bool | None) -> None:
        self._compress_batching = value

    def store_batch_size(self, pool: ZswapPool | None = None) -> int:
        """Pages per compression batch with `pool` (the current one by default): 1 without
        batching or with a synchronous compressor (the page-at-a-time path), else `batch_size`
        or the compressor's ``crypto_acomp_batch_size``, at most `ZSWAP_MAX_BATCH_SIZE`."""
        if not self.compress_batching:
            return 1
        if pool is None:
            if not self._pools:
                return 1
            pool = self._pools[0]
        ctx = pool.acomp_ctx.this_cpu()
        if not ctx.is_sleepable:
            return 1
        n = self.batch_size if self.batch_size is not None else crypto_acomp_batch_size(ctx.acomp)
        return max(1, min(n, ZSWAP_MAX_BATCH_SIZE))

    @property
    def compressor(self) -> str:
        """The ``compressor`` parameter: the acomp name new pools use."""
        return self._compressor

    @compressor.setter
    def compressor(self, name: str) -> None:
        self._raise_if(self.set_param("compressor", name), "compressor", name)

    @property
    def zpool(self) -> str:
        """The ``zpool`` parameter: the allocator type new pools use."""
        return self._zpool_type

    @zpool.setter
    def zpool(self, type: str) -> None:
        self._raise_if(self.set_param("zpool", type), "zpool", type)

    @staticmethod
    def _raise_if(ret: int, name: str, value: object) -> None:
        if ret:
            raise OSError(-ret, f"zswap: cannot set {name} to {value!r}: {errno.errorcode[-ret]}")

    def set_param(self, name: str, value: str | int | bool) -> int:
        """Write ``/sys/module/zswap/parameters/<name>``: 0 or a negative errno (``-ENOENT``
        for a file `version` does not have)."""
        if name not in self._params:
            return _ENOENT
        if name in ("compressor", "zpool"):
            return self._param_set_pool(name, str(value).strip())
        if name in ("max_pool_percent", "accept_threshold_percent"):
            n = _parse_uint(value)
            if n is None:
                return _EINVAL
            if n < 0 or (name == "accept_threshold_percent" and not 0 < n <= 100):
                return _EINVAL
            setattr(self, name, n)
            return 0
        flag = _parse_bool(value)
        if flag is None:
            return _EINVAL
        if name == "enabled" and flag and not self._pools:
            return _ENODEV
        setattr(self, name, flag)
        return 0

    def get_param(self, name: str) -> str:
        """Read ``/sys/module/zswap/parameters/<name>`` (the file's text, with its newline)."""
        if name not in self._params:
            raise KeyError(name)
        val = getattr(self, "_compressor" if name == "compressor" else
                      "_zpool_type" if name == "zpool" else name)
        if isinstance(val, bool):
            return "Y\n" if val else "N\n"
        return f"{val}\n"

    def params(self) -> dict[str, str]:
        """Every parameter of `version`, as its file shows it (without the newline)."""
        return {p: self.get_param(p).rstrip("\n") for p in self._params}

    def _param_set_pool(self, name: str, value: str) -> int:
        """``__zswap_param_set``: a new compressor or zpool makes (or revives) a pool at the head
        of the list; the old current pool loses its "current" reference and goes away with its
        last entry."""
        if name == "zpool":
            type_, comp = value, self._compressor
            if not zpool_has_pool(type_) or type_ in self._paths.removed:
                return _ENOENT  # "zpool %s not available"
        else:
            type_, comp = self._zpool_type, value
            if not crypto_has_acomp(comp):
                return _ENOENT
        cur = self._pools[0] if self._pools else None
        if cur is not None and cur.type == type_ and cur.tfm_name == comp:
            return 0
        pool = next((p for p in self._pools if p.type == type_ and p.tfm_name == comp
                     and p.kref > 0), None)
        if pool is not None:
            pool.kref += 1  # zswap_pool_find_get
            self._pools.remove(pool)
        else:
            pool = self._pool_create(type_, comp)
            if pool is None:
                return _EINVAL
        self._pools.insert(0, pool)
        if name == "zpool":
            self._zpool_type = type_
        else:
            self._compressor = comp
        if cur is not None:
            self._pool_put(cur)
        return 0

    # -- pools ---------------------------------------------------------------------------------

    def _pool_create(self, type: str, compressor: str) -> ZswapPool | None:
        """``zswap_pool_create``: the zpool and every CPU's acomp context."""
        name = f"zswap{next(self._pool_ids):x}"
        opts: dict[str, Any] = {}
        if type == "zsmalloc":
            # The kernel's geometry (v6.3's chains of 8, calculate_zspage_chain_size); the
            # sleepable reads always, so that setting `version` later finds them.
            opts = zsmalloc_pool_options(_kernel_of(self._version))
            opts["sleepable_reads"] = True
        zpool = zpool_create_pool(type, name, STORE_GFP, mem=self.mem, **opts)
        if zpool is None:
            return None
        percpu = self._percpu

        def ctx_prepare(cpu: int) -> CryptoAcompCtx:  # zswap_cpu_comp_prepare
            acomp = crypto_alloc_acomp_node(compressor, 0, 0, cpu)
            req = acomp_request_alloc(acomp)
            if req is None:
                crypto_free_acomp(acomp)
                raise CryptoError(_ENOMEM, f"{compressor}: acomp_request_alloc")
            wait = CryptoWait()
            acomp_request_set_callback(req, CRYPTO_TFM_REQ_MAY_BACKLOG, crypto_req_done, wait)
            dstmem, mutex = percpu.per_cpu(cpu)
            return CryptoAcompCtx(acomp, req, wait, dstmem, mutex)

        pool = ZswapPool(zpool, compressor, sched.PerCpu(ctx_prepare))
        try:
            for cpu in range(sched.nr_cpu_ids()):
                pool.acomp_ctx.per_cpu(cpu)
        except CryptoError:
            self._pool_destroy(pool)
            return None
        return pool

    def _pool_destroy(self, pool: ZswapPool) -> None:
        pool.dead = True
        for _cpu, ctx in pool.acomp_ctx.items():
            ctx.free()
        pool.acomp_ctx.clear()
        zpool_destroy_pool(pool.zpool)

    def _pool_put(self, pool: ZswapPool) -> None:
        """``zswap_pool_put``; the last reference takes the pool off the list and frees it."""
        pool.kref -= 1
        if pool.kref == 0 and not pool.dead:
            if self._pools and pool is self._pools[0]:
                raise RuntimeError(f"zswap: the current pool {pool.name} lost its reference")
            if pool in self._pools:
                self._pools.remove(pool)
            self._pool_destroy(pool)

    @property
    def pools(self) -> tuple[ZswapPool, ...]:
        """The pools, the current one first."""
        return tuple(self._pools)

    @property  # (_Counters declares it for COUNTERS' order; here it is read-only)
    def pool_total_size(self) -> int:  # type: ignore[override]
        """debugfs ``pool_total_size``: the bytes of every pool's zpool, computed when read from
        v6.11 (``zswap_total_pages()``); before, the counter ``zswap_update_total_size`` sets
        after every store and free (a zsmalloc compaction shows at the next one)."""
        if not self._size_on_read:
            return self._total_size
        pools = self._pools
        if len(pools) == 1:
            return pools[0].total_size()
        return sum(p.total_size() for p in pools)

    def _update_total_size(self) -> None:
        """``zswap_update_total_size`` (before v6.11): the counter `pool_total_size` reads."""
        pools = self._pools
        self._total_size = (pools[0].total_size() if len(pools) == 1
                            else sum(p.total_size() for p in pools))

    def _max_pages(self) -> int:
        return self.mem.totalram_pages * self.max_pool_percent // 100

    def _pool_pages(self) -> int:
        return -(-self.pool_total_size // PAGE_SIZE)

    def _can_accept(self) -> bool:
        total = self.mem.totalram_pages
        return (total * self.accept_threshold_percent // 100 * self.max_pool_percent // 100
                > self._pool_pages())

    # -- frontswap ops -------------------------------------------------------------------------

    def init(self, type: int) -> None:
        """``zswap_frontswap_init``: a tree for swap `type` (swapon)."""
        if not 0 <= type < MAX_SWAPFILES:
            raise ValueError(f"swap type {type} out of range")
        self._trees.setdefault(type, {})

    def register_backend(self, type: int, backend: SwapBackend | None) -> None:
        """Tell writeback where the pages of swap `type` go (the swap layer calls it)."""
        if backend is None:
            self._backends.pop(type, None)
        else:
            self._backends[type] = backend

    async def store(self, type: int, offset: int, page: Buffer) -> int:
        """``zswap_frontswap_store``: 0 when the page is kept, else a negative errno (the caller
        writes the page to the swap device)."""
        tree = self._trees.get(type)
        if not self.enabled or tree is None:
            return _ENODEV
        src = _page_view(page)
        if len(src) != PAGE_SIZE:
            return _EINVAL  # PageTransHuge
        self._stores += 1
        ret = self._check_limits()
        if ret:
            return ret
        ret = await self._store_page(tree, type, offset, src)
        if ret == 0:
            self.mthp_zswpout[0] += 1
            self.zswpout += 1
        return ret

    def _check_limits(self) -> int:
        """``zswap_is_full`` and the accept threshold: 0, or ``-ENOMEM`` (shrink queued)."""
        # reclaim space if needed (zswap_is_full)
        total = self.mem.totalram_pages
        pool_pages = -(-self.pool_total_size // PAGE_SIZE)
        if total * self.max_pool_percent // 100 < pool_pages:
            self.pool_limit_hit += 1
            self.pool_reached_full = True
            self._queue_shrink()
            return _ENOMEM
        if self.pool_reached_full:
            if not self._can_accept():
                return _ENOMEM
            self.pool_reached_full = False
        return 0

    async def _store_page(self, tree: dict[int, ZswapEntry], type: int, offset: int,
                          src: memoryview) -> int:
        """One page of a store (``zswap_store_page``): entry, same-filled check, compression
        into the current pool, insertion; 0 or the errno, with its counter."""
        # allocate entry
        if self.max_entries is not None and self._nr_entries >= self.max_entries:
            self.reject_kmemcache_fail += 1
            return _ENOMEM
        entry = ZswapEntry(type, offset)
        if self.same_filled_pages_enabled:
            value = same_filled_word(src)
            if value is not None:
                entry.value = value
                self.same_filled_pages += 1
                self._insert(tree, entry)
                return 0
        if not self.non_same_filled_pages_enabled:
            return _EINVAL
        if not self._pools:
            return _EINVAL
        pool = self._pools[0]  # zswap_pool_current_get
        pool.kref += 1
        kept = False
        try:
            ret = await self._paths.compress(pool, src, entry)
            if ret:
                return ret
            kept = True
        finally:
            if not kept:
                self._pool_put(pool)
        self._insert(tree, entry)
        return 0

    def _insert(self, tree: dict[int, ZswapEntry], entry: ZswapEntry) -> None:
        """``zswap_rb_insert``; an entry already at the offset is a duplicate: erased and put."""
        dup = tree.get(entry.offset)
        if dup is not None:
            self.duplicate_entry += 1
            self._erase(tree, dup)
            self._entry_put(dup)
        tree[entry.offset] = entry
        entry.in_tree = True
        self._nr_entries += 1
        if entry.length:
            assert entry.pool is not None
            entry.pool.lru[entry] = None
        self.stored_pages += 1
        if entry.incompressible:
            self.stored_incompressible_pages += 1
        if not self._size_on_read:
            self._update_total_size()

    async def store_folio(self, type: int, offset: int, folio: Folio | Buffer) -> int:
        """``zswap_store(folio)`` (v6.13+): keep the 2^order pages of `folio`, which the swap
        layer put at offsets `offset` .. `offset` + nr - 1, one entry per page, all or nothing:
        0, or the errno of the first failure, after which no page of the folio is in zswap
        (what it stored is freed, and older entries at those offsets too) and the caller
        writes the whole folio to the device. Kernels before the large-folio store (the 5.x
        and 6.9 paths here) reject a large folio with ``-EINVAL``."""
        if not isinstance(folio, Folio):
            folio = Folio(folio)
        if folio.nr_pages == 1:
            return await self.store(type, offset, folio.data)
        return await self._paths.store_folio(type, offset, folio)

    def _folio_stored(self, folio: Folio) -> None:
        self.mthp_zswpout[folio.order] += 1
        self.zswpout += folio.nr_pages

    def _erase_range(self, type: int, offset: int, nr: int) -> None:
        """``zswap_store``'s ``check_old``: no entry may stay at a folio's offsets after a
        failed store (writeback would overwrite the newer data on the device)."""
        tree = self._trees.get(type)
        if tree is None:
            return
        for off in range(offset, offset + nr):
            entry = tree.get(off)
            if entry is not None:
                self._erase(tree, entry)
                self._entry_put(entry)

    def mthp_stats(self) -> dict[int, dict[str, int]]:
        """``/sys/kernel/mm/transparent_hugepage/hugepages-<size>kB/stats``, by order: the
        folios zswap stored (``zswpout``)."""
        return {order: {"zswpout": n} for order, n in enumerate(self.mthp_zswpout)}

    async def load_batch(self, type: int, offsets: list[int], pages: list[WritableBuffer]
                         ) -> list[int]:
        """Load a readahead window: each page's status as `load` gives it. With
        `compress_batching` and a batching compressor, the compressed entries are decompressed
        in batches of `store_batch_size` (the series' decompress batching); else page by
        page."""
        if len(offsets) != len(pages):
            raise ValueError("load_batch: one page per offset")
        tree = self._trees.get(type)
        if tree is None:
            return [self._miss] * len(offsets)
        if not self.compress_batching or self.store_batch_size() <= 1:
            return [await self.load(type, off, page) for off, page in zip(offsets, pages,
                                                                          strict=True)]
        rets: list[int] = [self._miss] * len(offsets)
        held: list[tuple[int, ZswapEntry]] = []
        todo: dict[ZswapPool, list[tuple[int, ZswapEntry, memoryview]]] = {}
        done: dict[int, int] = {}
        try:
            for i, off in enumerate(offsets):
                entry = tree.get(off)
                if entry is None:
                    continue
                dst = _page_view(pages[i])
                if len(dst) != PAGE_SIZE or dst.readonly:
                    rets[i] = _EINVAL
                    continue
                self._loads += 1
                entry.refcount += 1  # zswap_entry_find_get
                held.append((i, entry))
                if not entry.length:
                    dst[:] = entry.value * (PAGE_SIZE // 8)
                    done[i] = 0
                else:
                    assert entry.pool is not None
                    todo.setdefault(entry.pool, []).append((i, entry, dst))
            for pool, items in todo.items():
                n = self.store_batch_size(pool)
                for k in range(0, len(items), n):
                    chunk = items[k:k + n]
                    got = await self._decompress_batch(pool, [e for _, e, _ in chunk],
                                                       [d for _, _, d in chunk])
                    for (i, _, _), r in zip(chunk, got, strict=True):
                        done[i] = r
        finally:
            exclusive = self._paths.load_is_exclusive()
            for i, entry in held:
                ret = done.get(i)
                if ret is not None:
                    rets[i] = ret
                if ret == 0 and exclusive:
                    if entry.in_tree:
                        self._erase(tree, entry)
                        self._entry_put(entry)
                elif entry.length and entry.in_tree and entry.pool is not None:
                    entry.pool.lru.move_to_end(entry)
                self._entry_put(entry)
        self.zswpin += sum(1 for r in rets if r == 0)
        return rets

    async def _decompress_batch(self, pool: ZswapPool, entries: list[ZswapEntry],
                                dsts: list[memoryview]) -> list[int]:
        """Decompress `entries` (all in `pool`) into `dsts` as one batch: each 0 or ``-EIO``."""
        return await self._paths.decompress_batch(pool, entries, dsts)

    async def load(self, type: int, offset: int, page: WritableBuffer) -> int:
        """``zswap_frontswap_load``: fill `page`; 0, `load_miss` (not here: read the device) or
        ``-EIO`` (decompression failed, v6.15; the entry stays)."""
        tree = self._trees.get(type)
        if tree is None:
            return self._miss
        entry = tree.get(offset)
        if entry is None:
            return self._miss
        dst = _page_view(page)
        if len(dst) != PAGE_SIZE or dst.readonly:
            return _EINVAL
        self._loads += 1
        entry.refcount += 1  # zswap_entry_find_get
        ret: int | None = None
        paths = self._paths
        try:
            if not entry.length:
                dst[:] = entry.value * (PAGE_SIZE // 8)
                ret = 0
            elif self._own_decompress:
                ret = await paths.decompress(entry, dst)  # (what _decompress calls)
            else:
                ret = await self._decompress(entry, dst)  # a subclass's (ChecksumZswap)
            if ret == 0:
                self.zswpin += 1
        finally:
            # freeentry: also on errors and cancellation, so the reference is never lost.
            if ret == 0 and self._paths.load_is_exclusive():  # (the version may change)
                if entry.in_tree:
                    self._erase(tree, entry)
                    entry.refcount -= 1  # the tree's reference (ours is still held)
            elif entry.length and entry.in_tree and entry.pool is not None:
                entry.pool.lru.move_to_end(entry)
            self._entry_put(entry)
        return ret

    def invalidate_page(self, type: int, offset: int) -> None:
        """``zswap_frontswap_invalidate_page``: forget the page at `offset` (its slot is free)."""
        tree = self._trees.get(type)
        if tree is None:
            return
        entry = tree.get(offset)
        if entry is None:
            return
        self._invalidates += 1
        self._erase(tree, entry)
        self._entry_put(entry)

    def invalidate_area(self, type: int) -> None:
        """``zswap_frontswap_invalidate_area``: forget every page of `type` and the tree
        (swapoff). Entries a load or writeback still holds are freed when it lets go."""
        tree = self._trees.pop(type, None)
        if tree is None:
            return
        for entry in list(tree.values()):
            entry.in_tree = False
            self._entry_put(entry)
        tree.clear()

    def close(self) -> None:
        """Module unload: forget every area and free every pool (their transforms too, so a
        driver can be unregistered). Entries still held by a load in progress must not exist."""
        for type in list(self._trees):
            self.invalidate_area(type)
        self._backends.clear()
        self._shrink_queue.clear()
        self.enabled = False
        pools, self._pools = self._pools, []
        for pool in pools:
            if not pool.dead:
                self._pool_destroy(pool)
        self._update_total_size()

    # -- entries -------------------------------------------------------------------------------

    def entry(self, type: int, offset: int) -> ZswapEntry | None:
        """The entry stored for (`type`, `offset`), for inspection."""
        tree = self._trees.get(type)
        return tree.get(offset) if tree is not None else None

    def offsets(self, type: int) -> list[int]:
        """The offsets of swap `type` zswap holds, sorted."""
        return sorted(self._trees.get(type, {}))

    @staticmethod
    def _erase(tree: dict[int, ZswapEntry], entry: ZswapEntry) -> None:
        if entry.in_tree and tree.get(entry.offset) is entry:
            del tree[entry.offset]
        entry.in_tree = False

    def _entry_put(self, entry: ZswapEntry) -> None:
        n = entry.refcount - 1
        entry.refcount = n
        if n <= 0:
            if n < 0:
                raise RuntimeError(f"zswap: {entry!r}: refcount below zero")
            self._free_entry(entry)

    def _free_entry(self, entry: ZswapEntry) -> None:
        """``zswap_free_entry``: release the handle and the pool reference."""
        if not entry.length:
            self.same_filled_pages -= 1
        else:
            pool = entry.pool
            assert pool is not None
            pool.lru.pop(entry, None)
            if not pool.dead:
                pool.free(entry.handle)  # zpool_free
            entry.handle = 0
            if pool.kref > 1:  # zswap_pool_put, not the last reference
                pool.kref -= 1
            else:
                self._pool_put(pool)
        self._nr_entries -= 1
        self.stored_pages -= 1
        if entry.incompressible:
            self.stored_incompressible_pages -= 1
        if not self._size_on_read:
            self._update_total_size()

    # -- decompression, per version ------------------------------------------------------------

    async def _decompress(self, entry: ZswapEntry, dst: memoryview) -> int:
        """Decompress `entry` into `dst` the way `version`'s kernel does: 0 or ``-EIO``."""
        return await self._paths.decompress(entry, dst)

    # -- writeback -----------------------------------------------------------------------------

    async def _writeback_entry(self, entry: ZswapEntry, tree: dict[int, ZswapEntry]) -> int:
        """``zswap_writeback_entry``: decompress into a new swap-cache page and write it out."""
        backend = self._backends.get(entry.type)
        if backend is None:
            return _ENODEV
        offset = entry.offset
        page = backend.swapcache_prepare(offset)
        if page is None:
            return _EEXIST  # ZSWAP_SWAPCACHE_EXIST: a swap-in or swap-out has the page
        # The slot may have been invalidated and reused meanwhile: recheck once the swap cache
        # is secured against concurrent swapping to and from it.
        if tree.get(offset) is not entry:
            backend.swapcache_abort(offset)
            return _ENOMEM
        try:
            ret = await self._decompress(entry, page)
        except BaseException:
            backend.swapcache_abort(offset)
            raise
        if ret:
            backend.swapcache_abort(offset)
            return ret
        ret = await backend.swap_writepage(offset)
        if ret:
            return ret
        self.written_back_pages += 1
        return 0

    async def _reclaim_entry(self, pool: ZswapPool) -> int:
        """``zswap_reclaim_entry`` (v6.5): write back the pool's oldest entry."""
        if not pool.lru:
            return _EINVAL
        entry, _ = pool.lru.popitem(last=False)
        tree = self._trees.get(entry.type)
        # Check for invalidate() race
        if tree is None or tree.get(entry.offset) is not entry:
            return _EAGAIN
        entry.refcount += 1  # hold a reference to prevent a free during writeback
        self._wb_attempts += 1
        ret: int | None = None
        try:
            ret = await self._writeback_entry(entry, tree)
        finally:
            if ret == 0:
                # The page now belongs to the swap device: drop the entry, unless invalidate
                # (or a newer store at the offset) already took it out of the tree.
                if entry.in_tree:
                    self._erase(tree, entry)
                    self._entry_put(entry)
            elif entry.in_tree and entry.pool is pool and not pool.dead:
                pool.lru[entry] = None  # writeback failed: back on the LRU (as the newest)
            self._entry_put(entry)
        return _EAGAIN if ret else 0

    async def _shrink_worker(self, pool: ZswapPool) -> None:
        """``shrink_worker`` (v6.5): reclaim until the pool accepts again."""
        failures = 0
        try:
            while True:
                ret = await self._reclaim_entry(pool)
                if ret:
                    self.reject_reclaim_fail += 1
                    if ret != _EAGAIN:
                        break
                    failures += 1
                    if failures == MAX_RECLAIM_RETRIES:
                        break
                await anyio.lowlevel.checkpoint()  # cond_resched()
                if self._can_accept():
                    break
        finally:
            self._pool_put(pool)

    def shrinker_count(self) -> int:
        """``zswap_shrinker_count`` (v6.8, without memcg or protection): the freeable entries
        scaled by the compression ratio; 0 when ``shrinker_enabled`` is off."""
        if not self.shrinker_enabled:
            return 0
        nr_freeable = sum(len(p.lru) for p in self._pools)
        nr_stored = self.stored_pages - self.same_filled_pages
        if not nr_freeable or nr_stored <= 0:
            return 0
        return nr_freeable * self._pool_pages() // nr_stored

    async def shrinker_scan(self, nr_to_scan: int) -> int:
        """``zswap_shrinker_scan`` (v6.8, simplified): write back up to `nr_to_scan` of the
        oldest entries, oldest pool first; the number written back."""
        if not self.shrinker_enabled:
            return 0
        done = 0
        for pool in reversed(list(self._pools)):
            pool.kref += 1
            try:
                while done < nr_to_scan and pool.lru:
                    ret = await self._reclaim_entry(pool)
                    if ret:
                        self.reject_reclaim_fail += 1
                        break
                    done += 1
            finally:
                self._pool_put(pool)
            if done >= nr_to_scan:
                break
        return done

    # -- debugfs -------------------------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        """Every counter the model keeps (`COUNTERS`, in every version), by its file name; the
        files `version` has are `debugfs_files`."""
        return {name: getattr(self, name) for name in COUNTERS}

    def debugfs_read(self, name: str) -> str:
        """The text of ``/sys/kernel/debug/zswap/<name>`` (``%llu\\n``), for a file of
        `version`."""
        if name not in self._files:
            raise FileNotFoundError(f"/sys/kernel/debug/zswap/{name}")
        return f"{getattr(self, name)}\n"

    def debugfs_text(self) -> str:
        """What ``grep -H . /sys/kernel/debug/zswap/*`` prints (files in name order)."""
        return "".join(f"/sys/kernel/debug/zswap/{n}:{getattr(self, n)}\n"
                       for n in sorted(self._files))

    def statistics(self) -> ZswapStatistics:
        """A snapshot of the operations so far (the debugfs counters are `counters`)."""
        return ZswapStatistics(
            stores=self._stores,
            loads=self._loads,
            load_copies=self._copies,
            invalidates=self._invalidates,
            writeback_attempts=self._wb_attempts,
            entries=self._nr_entries,
            pools=len(self._pools),
        )

    def compression_ratio(self) -> float:
        """Uncompressed bytes stored over the pool's bytes (same-filled pages count, as they do
        for a user reading ``stored_pages`` and ``pool_total_size``); 0 when empty."""
        if not self.pool_total_size:
            return 0.0
        return self.stored_pages * PAGE_SIZE / self.pool_total_size

    def describe(self) -> Mapping[str, object]:
        """One line's worth of facts: version, pool, compressor driver, counters."""
        cur = self._pools[0] if self._pools else None
        driver = ""
        if cur is not None:
            ctx = cur.acomp_ctx.per_cpu(0)
            driver = crypto_acomp_driver_name(ctx.acomp)
        return {"version": self._version, "zpool": self._zpool_type,
                "compressor": self._compressor, "driver": driver, **self.counters()}


def _parse_uint(value: object) -> int | None:
    """``param_set_uint`` (``kstrtouint``): an int, or a string of decimal digits with an
    optional trailing newline; anything else (None, 3.7, "3.7", True) is None (``-EINVAL``)."""
    if type(value) is int:
        return value
    if isinstance(value, str):
        text = value[:-1] if value.endswith("\n") else value
        if text.isascii() and text.isdigit():
            return int(text)
    return None


def _parse_bool(value: str | int | bool) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return bool(value)
    if not isinstance(value, str):
        return None
    v = value.strip().lower()
    if v in ("y", "yes", "1", "on", "true"):
        return True
    if v in ("n", "no", "0", "off", "false"):
        return False
    return None
