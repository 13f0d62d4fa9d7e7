"""The ``faulty(...)`` template: wrap any algorithm and inject the faults hardware shows.

Kernel counterpart: templates such as ``cryptd(...)`` (``crypto/cryptd.c``), instantiated by
the crypto manager when a lookup names ``tmpl(inner)``; the faults are those consumers of
asynchronous drivers must survive (``-EIO``/``-ENOMEM``, delays, ``-EBUSY`` storms, completions
from another thread, duplicate or missing completions, corrupted output).

``crypto_alloc_acomp("faulty(lz4)")`` builds an asynchronous algorithm named ``faulty(lz4)``
(driver ``faulty(<inner driver>)``) around the best ``lz4``. What it does to each request is
set by a `FaultPlan`, per instance name (`set_plan`), drawn from a seeded random generator so a
run can be replayed. With the default plan it injects nothing and completes from a thread.

From v6.15 ``crypto_acomp_init_tfm`` gives an asynchronous transform a synchronous fallback,
``crypto_alloc_acomp(cra_name, 0, CRYPTO_ALG_ASYNC)``: a synchronous ``faulty(lz4)``. The
template builds that one with each instance, as kernel templates make a synchronous instance
over a synchronous inner algorithm (`FaultySyncAlg`, driver ``faulty-sync(<sync inner>)``,
there from v6.15 on, registered first so that a plain lookup still finds the asynchronous
one). It runs the best synchronous inner algorithm in the caller's context and injects, from
the same plan, the faults a synchronous call can show: errors and corrupted output.
"""

from __future__ import annotations

import errno
import random
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from acomp import sched
from acomp._constants import (
    CRYPTO_ALG_ASYNC,
    CRYPTO_ALG_TYPE_ACOMPRESS,
    CRYPTO_ALG_TYPE_ACOMPRESS_MASK,
    CRYPTO_TFM_REQ_MAY_BACKLOG,
)
from acomp.acompress import (
    AcompReq,
    CryptoAcomp,
    acomp_is_async,
    acomp_request_alloc,
    acomp_request_complete,
    acomp_request_free,
    acomp_request_set_callback,
    acomp_request_set_params,
    crypto_acomp_compress,
    crypto_acomp_decompress,
    crypto_alloc_acomp,
    crypto_free_acomp,
)
from acomp.algapi import (
    AcompAlg,
    CryptoAlg,
    crypto_alg_lookup,
    crypto_alg_mod_lookup,
    crypto_register_acomp,
)
from acomp.kmod import register_template
from acomp.wait import CryptoWait, crypto_req_done, crypto_wait_req_sync

__all__ = (
    "FaultPlan",
    "FaultStats",
    "FaultyAlg",
    "FaultySyncAlg",
    "get_plan",
    "set_plan",
    "stats",
)


@dataclass(frozen=True)
class FaultPlan:
    """Probabilities (0..1) of each fault per request, and its parameters."""

    error: float = 0.0  # complete with one of `errors`
    errors: tuple[int, ...] = (-errno.EIO, -errno.ENOMEM)
    busy: float = 0.0  # return -EBUSY (with MAY_BACKLOG: backlogged, completed later)
    delay: float = 0.0  # complete after a delay in `delay_s`
    delay_s: tuple[float, float] = (0.001, 0.01)
    sync: float = 0.0  # complete synchronously (return 0) instead of from a thread
    duplicate: float = 0.0  # call the completion twice
    duplicate_after_s: float = 0.02  # ... the second time this much later
    missing: float = 0.0  # never complete
    corrupt: float = 0.0  # flip a byte of a successful output
    seed: int = 0
    #: When set, a delayed completion and the second completion of a duplicate wait for this
    #: event instead of their delay: a test decides when "later" is, whatever the machine's
    #: load (count ``released`` in `stats` once each is delivered).
    hold: threading.Event | None = None


@dataclass
class FaultStats:
    requests: int = 0
    injected: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str) -> None:
        with _counted:
            self.injected[kind] = self.injected.get(kind, 0) + 1
            _counted.notify_all()

    def wait_for(self, kind: str, n: int, timeout: float | None = None) -> bool:
        """Block until `kind` was injected `n` times (False after `timeout` seconds); from
        async code, through ``anyio.to_thread.run_sync``."""
        with _counted:
            return _counted.wait_for(lambda: self.injected.get(kind, 0) >= n, timeout)


_counted = threading.Condition()


_plans: dict[str, FaultPlan] = {}
_stats: dict[str, FaultStats] = {}


def set_plan(name: str, plan: FaultPlan | None = None, **kw: object) -> FaultPlan:
    """Set the plan for instance `name` (``"faulty(lz4)"``); keywords change fields of it."""
    base = plan or _plans.get(name, FaultPlan())
    new = replace(base, **kw)  # type: ignore[arg-type]
    _plans[name] = new
    for alg in (_instances.get(name), _sync_instances.get(name)):
        if alg is not None:
            alg.rng = random.Random(new.seed)
    return new


def get_plan(name: str) -> FaultPlan:
    return _plans.get(name, FaultPlan())


def stats(name: str) -> FaultStats:
    """What was injected so far in instance `name`."""
    return _stats.setdefault(name, FaultStats())


_instances: dict[str, FaultyAlg] = {}
_sync_instances: dict[str, FaultySyncAlg] = {}


class FaultyAlg(AcompAlg):
    """An instance of the template around one inner algorithm."""

    cra_flags = CRYPTO_ALG_ASYNC

    def __init__(self, inner_name: str, inner_driver: str, priority: int) -> None:
        super().__init__()
        self.cra_name = f"faulty({inner_name})"  # type: ignore[misc]
        self.cra_driver_name = f"faulty({inner_driver})"  # type: ignore[misc]
        self.cra_priority = priority  # type: ignore[misc]
        self.cra_module = "faulty"  # type: ignore[misc]
        self.inner_driver = inner_driver
        self.rng = random.Random(get_plan(self.cra_name).seed)
        self.lock = threading.Lock()
        self._inners: weakref.WeakKeyDictionary[CryptoAcomp, CryptoAcomp] = (
            weakref.WeakKeyDictionary())

    def init(self, tfm: CryptoAcomp) -> int:
        # The inner transform is the template's spawn, kept apart from tfm.fb (the core's
        # synchronous fallback from v6.15, which a NONDMA request runs on).
        try:
            self._inners[tfm] = crypto_alloc_acomp(self.inner_driver)
        except OSError as e:
            return -(e.errno or errno.ENOENT)
        return 0

    def exit(self, tfm: CryptoAcomp) -> None:
        crypto_free_acomp(self._inners.pop(tfm, None))

    def _draw(self, p: float) -> bool:
        return p > 0 and self.rng.random() < p

    def _plan_stats(self) -> tuple[FaultPlan, FaultStats]:
        """The instance's current plan and its statistics."""
        return get_plan(self.cra_name), stats(self.cra_name)

    def _draw_error(self, plan: FaultPlan, st: FaultStats) -> tuple[bool, int]:
        """Under `lock`, a request's first draws (both instances): count it, then whether it
        fails and with which of the plan's errnos (0 when it does not)."""
        st.requests += 1
        error = self._draw(plan.error)
        return error, self.rng.choice(plan.errors) if error else 0

    def _corrupt(self, req: AcompReq, st: FaultStats) -> None:
        """The plan's corruption: flip one byte of the output's first `req.dlen` bytes."""
        assert req.dst is not None
        st.count("corrupt")
        e = req.dst[0]
        e[self.rng.randrange(min(len(e), req.dlen))] ^= 0x5A

    def _inner(self, req: AcompReq, compress: bool) -> int:
        """Run the request on the inner algorithm into the caller's buffers; an asynchronous
        inner (``faulty(lz4)`` wraps lz4-opencl where it exists) is waited for, so this
        blocks: it runs on the template's completion thread (`_inner_is_async` keeps the
        synchronous fault off such an inner)."""
        fb = self._inners.get(req.tfm)
        assert fb is not None
        inner = acomp_request_alloc(fb)
        if inner is None:
            return -errno.ENOMEM
        try:
            acomp_request_set_params(inner, req.src, req.dst, req.slen, req.dlen)
            wait = CryptoWait()
            acomp_request_set_callback(inner, CRYPTO_TFM_REQ_MAY_BACKLOG, crypto_req_done, wait)
            op = crypto_acomp_compress if compress else crypto_acomp_decompress
            ret = crypto_wait_req_sync(op(inner), wait, _INNER_TIMEOUT)
            if inner.in_flight:  # the inner driver lost it: leave it to the driver, unfreed
                inner = None
                return -errno.EIO
            req.reason = inner.reason
            if ret == 0:
                if req.dst is None:
                    req.dst = inner.dst
                    inner.dst = None
                    inner.flags = 0
                req.dlen = inner.dlen
            return ret
        finally:
            acomp_request_free(inner)

    def _run(self, req: AcompReq, compress: bool) -> int:
        plan, st = self._plan_stats()
        with self.lock:
            error, err = self._draw_error(plan, st)
            busy = self._draw(plan.busy)
            delay = self.rng.uniform(*plan.delay_s) if self._draw(plan.delay) else 0.0
            sync = self._draw(plan.sync)
            duplicate = self._draw(plan.duplicate)
            missing = self._draw(plan.missing)
            corrupt = self._draw(plan.corrupt)
        if busy and not req.base_flags & CRYPTO_TFM_REQ_MAY_BACKLOG:
            st.count("busy_rejected")
            return -errno.EBUSY  # refused: a consumer that waits on it waits forever

        def finish() -> None:
            if missing:
                st.count("missing")
                return
            try:
                ret = err if error else self._inner(req, compress)
            except ValueError as released:  # a buffer was released under the device
                st.count("use_after_free")
                _report_use_after_free(req, released)
                ret = -errno.EIO
            except BaseException:  # a bug below (a report in raise mode): still complete
                acomp_request_complete(req, -errno.EIO)
                raise
            if error:
                st.count("error")
            elif ret == 0 and corrupt and req.dst is not None and req.dlen:
                self._corrupt(req, st)
            if busy:
                st.count("busy_backlogged")
                acomp_request_complete(req, -errno.EINPROGRESS)  # left the backlog
            acomp_request_complete(req, ret)
            if duplicate:
                # A late second completion, after the waiter has consumed the first: the one
                # the kernel's reinit_completion() cannot absorb.
                st.count("duplicate")
                _later(plan, plan.duplicate_after_s, st,
                       lambda: acomp_request_complete(req, ret))

        if sync and not (busy or delay or duplicate or missing or _inner_is_async(req)):
            st.count("sync")
            return err if error else self._inner(req, compress)
        if delay:
            st.count("delay")
            _later(plan, delay, st, finish)
        else:
            threading.Thread(target=finish, name="faulty-complete", daemon=True).start()
        return -errno.EBUSY if busy else -errno.EINPROGRESS

    def compress(self, req: AcompReq) -> int:
        return self._run(req, True)

    def decompress(self, req: AcompReq) -> int:
        return self._run(req, False)


def _later(plan: FaultPlan, delay: float, st: FaultStats, fn: Callable[[], None]) -> None:
    """Run `fn` on a thread after `delay` seconds, or once `plan.hold` is set."""
    hold = plan.hold
    if hold is None:
        threading.Timer(delay, fn).start()
        return

    def held() -> None:
        hold.wait(_INNER_TIMEOUT)
        try:
            fn()
        finally:
            st.count("released")

    threading.Thread(target=held, name="faulty-held", daemon=True).start()


def _report_use_after_free(req: AcompReq, e: ValueError) -> None:
    """The consumer released (unmapped) a buffer while its request was still on the device:
    the kernel's use-after-free, which KASAN reports. Reported through `acomp.sched` (raise
    mode becomes warn here: raising on the completion thread would only end that thread)."""
    mode = "warn" if sched.config.lock_debug == "raise" else sched.config.lock_debug
    sched._emit("lock", f"BUG: KASAN: use-after-free: {req!r} still on the device read or "
                f"wrote a released buffer ({e})", mode, sched.LockDebugError)


#: How long the template waits for an asynchronous inner driver before giving up (-EIO).
_INNER_TIMEOUT = 30.0


def _inner_is_async(req: AcompReq) -> bool:
    alg = req.tfm.alg
    fb = alg._inners.get(req.tfm) if isinstance(alg, FaultyAlg) else None
    return fb is not None and acomp_is_async(fb)


class FaultySyncAlg(FaultyAlg):
    """The synchronous instance (v6.15+: the fallback of the asynchronous one): the inner
    algorithm run in the caller's context, with the plan's errors and corruption."""

    cra_flags = 0
    cra_eras = ("6.15", "6.16-6.17", "6.18-7.0")

    def __init__(self, inner_name: str, inner_driver: str, priority: int) -> None:
        super().__init__(inner_name, inner_driver, priority)
        self.cra_driver_name = f"faulty-sync({inner_driver})"  # type: ignore[misc]

    def _run(self, req: AcompReq, compress: bool) -> int:
        plan, st = self._plan_stats()
        with self.lock:
            error, err = self._draw_error(plan, st)
            corrupt = self._draw(plan.corrupt)
        if error:
            st.count("error")
            return err
        ret = self._inner(req, compress)
        if ret == 0 and corrupt and req.dst is not None and req.dlen:
            self._corrupt(req, st)
        return ret


def _build_sync(name: str) -> None:
    """The synchronous instance over the best synchronous `name` (none when there is none,
    or it exists)."""
    try:
        alg = crypto_alg_mod_lookup(name, CRYPTO_ALG_TYPE_ACOMPRESS,
                                    CRYPTO_ALG_TYPE_ACOMPRESS_MASK | CRYPTO_ALG_ASYNC)
    except OSError:
        return
    inst = FaultySyncAlg(alg.cra_name, alg.cra_driver_name, alg.cra_priority)
    if crypto_register_acomp(inst) == 0:
        _follow(inst, alg)
        _sync_instances[inst.cra_name] = inst
        _sync_instances[inst.cra_driver_name] = inst


def _follow(inst: FaultyAlg, inner: CryptoAlg) -> None:
    """An instance is there in the kernels its inner algorithm is in (beyond the kernel, where
    both are built for one): in another, a lookup misses it and the template builds one around
    that kernel's algorithm (``faulty(zstd)``: zstd-scomp to 6.16, zstd-generic from 6.17)."""
    inst.kernels = inner.kernels
    if not inst.eras:
        inst.eras = inner.eras
    elif inner.eras:
        inst.eras = tuple(e for e in inst.eras if e in inner.eras)


def _build(tmpl: str, inner: str) -> FaultyAlg | None:
    try:
        alg = crypto_alg_mod_lookup(
            inner, CRYPTO_ALG_TYPE_ACOMPRESS, CRYPTO_ALG_TYPE_ACOMPRESS_MASK
        )
    except OSError:
        return None
    _build_sync(alg.cra_name)  # first: of equal priority, the newer (asynchronous) one wins
    inst = FaultyAlg(alg.cra_name, alg.cra_driver_name, alg.cra_priority)
    if crypto_register_acomp(inst) == 0:
        _follow(inst, alg)
    else:
        # Another lookup built it first: the registered one serves.
        try:
            found = crypto_alg_lookup(inst.cra_driver_name, 0, 0)
        except OSError:
            return None
        return found if isinstance(found, FaultyAlg) else None
    _instances[inst.cra_name] = inst
    _instances[inst.cra_driver_name] = inst
    return inst


register_template("faulty", _build)
