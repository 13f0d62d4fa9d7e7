"""zswap's errors, under one root (`ZswapError`): misuse of zpool handles and mappings, of
pages, and a full swap area, reported as typed exceptions.

Kernel counterpart: none as such. The kernel does not check these (a freed handle is reused
memory, a nested mapping silently shares the per-CPU buffer); the model makes each a clear error
so that a bug in a caller shows up at the call that made it, never as silent corruption.

The tree (the classes show their public module: ``zswap.DoubleFreeError``)::

    ZswapError
    ├── ZpoolError                         .handle
    │   ├── InvalidHandleError (KeyError)
    │   │   └── UseAfterFreeError
    │   │       └── DoubleFreeError
    │   ├── NotMappedError, HandleMappedError, PoolCorruptedError
    │   ├── UnsupportedOperation           .errno = -EOPNOTSUPP
    │   └── MapAreaBusyError               .report (the splat)
    ├── BadPageError (RuntimeError)        the kernel's "Bad page state"
    └── SwapFullError (OSError)            no free swap slot (errno ENOSPC)

Zpool errors are of two kinds:

- Handle misuse (`InvalidHandleError`, `UseAfterFreeError`, `DoubleFreeError`, `NotMappedError`,
  `HandleMappedError`) and corrupt in-page metadata (`PoolCorruptedError`) always raise:
  carrying on would corrupt the model's own state.
- The per-CPU mapping area in use (`MapAreaBusyError`) is what lockdep reports as a warning in
  the kernel, which then carries on. It is reported like the execution model's splats, appended
  to `sched.reports` and raised, logged or ignored according to the mode of `acomp.sched.config`
  that applies (see `report`).
"""

from __future__ import annotations

import errno
import itertools
import logging
from typing import Literal

from acomp import sched

__all__ = (
    "BadPageError",
    "DoubleFreeError",
    "HandleMappedError",
    "InvalidHandleError",
    "MapAreaBusyError",
    "NotMappedError",
    "PoolCorruptedError",
    "SwapFullError",
    "UnsupportedOperation",
    "UseAfterFreeError",
    "ZpoolError",
    "ZswapError",
    "report",
)

log = logging.getLogger("zswap.zpool")


class ZswapError(Exception):
    """Base of every error the zswap package raises on purpose."""


class BadPageError(ZswapError, RuntimeError):
    """A page was freed twice, or a pfn outside memory was used (the kernel's "Bad page state")."""


class SwapFullError(ZswapError, OSError):
    """No free slot: the swap area is full (``get_swap_page`` failed)."""

    def __init__(self, nr_pages: int) -> None:
        super().__init__(errno.ENOSPC, f"swap area full ({nr_pages} pages)")
        self.nr_pages = nr_pages

    def __reduce__(self) -> tuple[type[SwapFullError], tuple[int]]:
        return type(self), (self.nr_pages,)


class ZpoolError(ZswapError):
    """Base of the zpool layer's errors; ``.handle`` is the handle concerned (0 if none)."""

    def __init__(self, message: str, handle: int = 0) -> None:
        super().__init__(message)
        self.handle = handle


class InvalidHandleError(ZpoolError, KeyError):
    """The value was never returned by this pool's malloc (another pool's, or made up)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class UseAfterFreeError(InvalidHandleError):
    """The handle was allocated by this pool and has been freed since."""


class DoubleFreeError(UseAfterFreeError):
    """Free of a handle that was already freed."""


class NotMappedError(ZpoolError):
    """Unmap (or read end) of a handle that is not mapped (or not being read)."""


class HandleMappedError(ZpoolError):
    """The handle is mapped: it cannot be mapped again (zsmalloc) or freed until unmapped."""


class PoolCorruptedError(ZpoolError):
    """The allocator's in-page metadata (a free-list link or an object header) is corrupt: a
    stray write went where the kernel would have crashed."""


class UnsupportedOperation(ZpoolError):
    """The backend does not implement this operation (``obj_read_begin`` on zbud, ...)."""

    def __init__(self, message: str, handle: int = 0) -> None:
        super().__init__(message, handle)
        self.errno = -errno.EOPNOTSUPP


class MapAreaBusyError(ZpoolError):
    """A second object was mapped (or a foreign one unmapped) on a CPU whose zsmalloc mapping area
    is in use. ``.report`` is the splat."""

    def __init__(self, report: sched.BugReport, handle: int = 0) -> None:
        super().__init__(report.text, handle)
        self.report = report


# They print as zswap.DoubleFreeError: where users import them from.
for _cls in [c for c in list(globals().values())
             if isinstance(c, type) and issubclass(c, ZswapError)]:
    _cls.__module__ = "zswap"
del _cls


def report(
    kind: str, text: str, mode: Literal["raise", "warn", "off"], handle: int = 0
) -> None:
    """Report a kernel warning the way `acomp.sched` reports its splats.

    ``"raise"`` appends it to `sched.reports` and raises `MapAreaBusyError`; ``"warn"`` appends it
    and logs it (the caller carries on, as the kernel does after a WARN); ``"off"`` does nothing.
    """
    if mode == "off":
        return
    rep = sched.BugReport(kind, text)
    sched.reports.append(rep)
    if mode == "raise":
        raise MapAreaBusyError(rep, handle)
    log.error("%s", text)


# Handles are opaque, per pool, and never reused, so that a stale one is always recognised.
# Each pool draws a base that looks like a kernel slab address, and numbers its handles upwards
# from it in steps of 8 (the low bits stay clear, as the kernel's tag bits need).
_HANDLE_BASE = 0xFFFF_8880_0000_0000
_HANDLE_SPAN = 1 << 36
_pool_ids = itertools.count(1)


def new_handle_base() -> int:
    """The first handle of a new pool; its handles lie in ``[base, base + 2**36)``."""
    return _HANDLE_BASE + next(_pool_ids) % 4096 * _HANDLE_SPAN


def bad_handle(
    kind: str, handle: int, base: int, next_handle: int, *, free: bool = False
) -> ZpoolError:
    """The error for `handle`, not live in a pool whose handles run from `base` to `next_handle`."""
    if base <= handle < next_handle and not (handle - base) & 7:
        if free:
            return DoubleFreeError(f"{kind}: double free of handle {handle:#x}", handle)
        return UseAfterFreeError(f"{kind}: use of freed handle {handle:#x}", handle)
    return InvalidHandleError(f"{kind}: {handle:#x} is not a handle of this pool", handle)


HANDLE_STRIDE = 8
