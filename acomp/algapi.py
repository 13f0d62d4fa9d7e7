"""The algorithm registry: registration, self-test gating and lookup by name and priority.

Kernel counterpart: ``crypto/algapi.c`` (``crypto_register_alg``, ``__crypto_register_alg``,
``crypto_unregister_alg``) and ``crypto/api.c`` (``__crypto_alg_lookup``, ``crypto_alg_lookup``,
``crypto_larval_lookup``, ``crypto_alg_mod_lookup``).

An algorithm is one static description (`CryptoAlg`), registered once. It becomes selectable
only when its self-test (`acomp.testmgr.alg_test`) has passed and ``CRYPTO_ALG_TESTED`` is set.
Lookup filters by ``(cra_flags ^ type) & mask``; an exact driver-name match wins at once,
otherwise the highest ``cra_priority`` among ``cra_name`` matches. A miss loads driver modules
on demand (`acomp.kmod.request_module`) before giving ``-ENOENT``; a name whose only matches
failed their self-test gives ``-ELIBBAD``.

The registry names no transform type and no self-test by import, as in the kernel: each type
(acomp 0xa, scomp 0xb) registers a `CryptoType` saying how a transform of it is built
(``struct crypto_type``), and the crypto manager (`acomp.cryptomgr`, the kernel's
``crypto/algboss.c``) listens on the notifier chain (``crypto_chain``): it tests each newly
registered algorithm and, on a lookup that missed, loads driver modules and probes templates.
"""

from __future__ import annotations

import contextvars
import errno
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from acomp._constants import (
    CRYPTO_ALG_REQ_SEG,
    CRYPTO_ALG_REQ_VIRT,
    CRYPTO_ALG_TESTED,
    CRYPTO_ALG_TYPE_ACOMPRESS,
    CRYPTO_ALG_TYPE_MASK,
    CRYPTO_ALG_TYPE_SCOMPRESS,
)
from acomp._errors import CryptoError, UnsupportedKernel

if TYPE_CHECKING:
    from acomp.acompress import AcompReq, CryptoAcomp
    from acomp.eras import Era, KernelRange
    from acomp.scatterlist import Scatterlist

__all__ = (
    "CRYPTO_MSG_ALG_LOOKUP",
    "CRYPTO_MSG_ALG_REGISTER",
    "CRYPTO_MSG_ALG_REQUEST",
    "NOTIFY_DONE",
    "NOTIFY_STOP",
    "AcompAlg",
    "CryptoAlg",
    "CryptoType",
    "ScompAlg",
    "crypto_alg_list",
    "crypto_alg_lookup",
    "crypto_alg_mod_lookup",
    "crypto_alg_tested",
    "crypto_module_eras",
    "crypto_module_kernels",
    "crypto_module_owner",
    "crypto_probing_notify",
    "crypto_register_acomp",
    "crypto_register_acomps",
    "crypto_register_notifier",
    "crypto_register_scomp",
    "crypto_register_scomps",
    "crypto_register_type",
    "crypto_type_of",
    "crypto_types",
    "crypto_unregister_acomp",
    "crypto_unregister_acomps",
    "crypto_unregister_notifier",
    "crypto_unregister_scomp",
    "crypto_unregister_scomps",
)

# Self-test states, as /proc/crypto words them ("failed" is ours: the kernel says "unknown").
TEST_UNTESTED = "unknown"
TEST_PASSED = "passed"
TEST_FAILED = "failed"


# --------------------------------------------------------------------------------------------
# Types (``struct crypto_type``): how a transform of each kind is built.


@dataclass(frozen=True)
class CryptoType:
    """``struct crypto_type``: what a type supplies so the core can build its transforms.

    `init_tfm` binds a new transform (its ``compress``/``decompress``, ``reqsize``) and returns
    0 or a negative errno that fails the allocation; `exit_tfm` undoes it. `extsize` is the
    bytes of per-request driver context a transform of `alg` carries. `init_request` and
    `exit_request` set up and free a request's type context (the scomp context, ≤ v6.14).
    `destroy` (``cra_type->destroy``, v6.15+) frees what the type keeps in an algorithm when
    it is unregistered (scomp's per-CPU streams). `show` gives the type's lines of
    ``/proc/crypto``. acomp (0xa) registers its type in
    `acomp.acompress`, scomp (0xb) in `acomp.scompress`.
    """

    name: str
    type: int
    init_tfm: Callable[[CryptoAcomp], int]
    exit_tfm: Callable[[CryptoAcomp], None]
    extsize: Callable[[CryptoAlg], int] = lambda alg: 0
    init_request: Callable[[AcompReq], int] = lambda req: 0
    exit_request: Callable[[AcompReq], None] = lambda req: None
    destroy: Callable[[CryptoAlg], None] = lambda alg: None

    def show(self, alg: CryptoAlg) -> list[tuple[str, object]]:
        """``crypto_acomp_show`` / ``crypto_scomp_show``: the type's ``/proc/crypto`` lines."""
        return [("type", self.name)]


#: The registered types by their ``cra_flags`` type bits.
crypto_types: dict[int, CryptoType] = {}


def crypto_register_type(t: CryptoType) -> None:
    """Make type `t` known; algorithms with its type bits can then be registered and used."""
    crypto_types[t.type] = t


def crypto_type_of(alg: CryptoAlg) -> CryptoType:
    """The type of `alg`; ``CryptoError(-EINVAL)`` when it is no registered type."""
    t = crypto_types.get(alg.cra_type_bits)
    if t is None:
        raise CryptoError(-errno.EINVAL, "not a compression algorithm")
    return t


# --------------------------------------------------------------------------------------------
# The notifier chain (``crypto_chain``): the crypto manager listens on it.

#: A lookup is about to run (ours: the hardware drivers are coldplugged before the first one).
CRYPTO_MSG_ALG_LOOKUP = 0x0
#: A lookup missed: load the modules that serve the name, probe a template (``crypto-%s``).
CRYPTO_MSG_ALG_REQUEST = 0x1
#: An algorithm was registered: test it, then call `crypto_alg_tested`.
CRYPTO_MSG_ALG_REGISTER = 0x2
#: A notifier's answer: not mine, or nothing done (the chain goes on).
NOTIFY_DONE = 0x0
#: A notifier's answer: handled (the chain stops).
NOTIFY_STOP = 0x8001

Notifier = Callable[[int, Any], int]
_crypto_chain: list[Notifier] = []


def crypto_register_notifier(nb: Notifier) -> None:
    """``crypto_register_notifier``: `nb(msg, data)` is called for each ``CRYPTO_MSG_*``."""
    if nb not in _crypto_chain:
        _crypto_chain.append(nb)


def crypto_unregister_notifier(nb: Notifier) -> None:
    if nb in _crypto_chain:
        _crypto_chain.remove(nb)


def crypto_probing_notify(msg: int, data: Any) -> int:
    """Call the notifiers in order until one answers `NOTIFY_STOP`; returns the last answer."""
    ret = NOTIFY_DONE
    for nb in list(_crypto_chain):
        ret = nb(msg, data)
        if ret == NOTIFY_STOP:
            break
    return ret


#: The module whose init is running (set by `acomp.kmod`): algorithms registered meanwhile
#: carry its name as ``cra_module``, as a driver's ``THIS_MODULE`` does.
crypto_module_owner: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "acomp_mod", default=None
)
#: The eras the module whose init is running supports (`acomp.kmod.CryptoModule.eras`):
#: algorithms registered meanwhile without eras of their own take them.
crypto_module_eras: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "acomp_mod_eras", default=())
#: The same for the kernel versions it declares (`acomp.kmod.CryptoModule.kernels`).
crypto_module_kernels: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "acomp_mod_kernels", default=())

#: Beyond the kernel (a module is built for one kernel): how a declaration of eras is read
#: (`UnsupportedKernel` for a bad one) and whether an algorithm with eras is there in the
#: kernel modelled now. The registry knows no eras: `acomp.kmod` installs both, from
#: `acomp.eras`, when it is imported (with the crypto manager, before any lookup).
def _no_eras(declared: tuple[str, ...]) -> tuple[Era, ...]:
    return ()


def _no_kernels(declared: tuple[str, ...]) -> tuple[KernelRange, ...]:
    return ()


def _always(alg: CryptoAlg) -> bool:
    return True


crypto_eras_of: Callable[[tuple[str, ...]], tuple[Era, ...]] = _no_eras
crypto_kernels_of: Callable[[tuple[str, ...]], tuple[KernelRange, ...]] = _no_kernels
crypto_alg_present: Callable[[CryptoAlg], bool] = _always


class CryptoAlg:
    """``struct crypto_alg``: the static description every algorithm carries.

    Subclass `AcompAlg` or `ScompAlg`, set the ``cra_*`` class attributes, and register an
    instance. ``cra_flags`` holds the flags you set (e.g. ``CRYPTO_ALG_ASYNC``); registration
    adds the type bits and, once the self-test passed, ``CRYPTO_ALG_TESTED``.
    """

    cra_name: ClassVar[str] = ""
    cra_driver_name: ClassVar[str] = ""
    cra_priority: ClassVar[int] = 0
    cra_module: ClassVar[str] = "kernel"
    cra_type_bits: ClassVar[int] = 0
    type_name: ClassVar[str] = ""
    #: Beyond the kernel (a module is built for one kernel): the kernel eras the algorithm
    #: supports, as `acomp.eras.eras_of` reads them (``("5.12-6.14", "6.15")``, versions, or
    #: ``()``: every era, or its module's `acomp.kmod.CryptoModule.eras`). In another era a
    #: lookup does not find it, as a module built for another kernel does not load.
    cra_eras: ClassVar[tuple[str, ...]] = ()
    #: Beyond the kernel, finer than eras: the kernel versions the algorithm is in
    #: (`acomp.eras.kernels_of`: ``"6.17-"``, ``"-6.16"``, ``"6.16-6.17"``, ``"6.16"``; ``()``:
    #: every version, or its module's `acomp.kmod.CryptoModule.kernels`), for a driver that
    #: changed inside an era (zstd: scomp to 6.16, native acomp from 6.17). With eras too, it
    #: is there where both say so.
    cra_kernels: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self.cra_flags: int = type(self).__dict__.get("cra_flags", getattr(self, "cra_flags", 0))
        self.cra_refcnt = 0
        self.selftest = TEST_UNTESTED
        self.selftest_log: list[str] = []
        self.registered = False
        self.dead = False
        #: The eras resolved at registration (``()``: every era).
        self.eras: tuple[Era, ...] = ()
        #: The kernel versions resolved at registration (``()``: every version).
        self.kernels: tuple[KernelRange, ...] = ()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.cra_name}/{self.cra_driver_name} "
            f"prio={self.cra_priority} flags={self.cra_flags:#x} {self.selftest}>"
        )


class AcompAlg(CryptoAlg):
    """``struct acomp_alg``: a natively asynchronous algorithm (hardware, an engine, ...).

    `compress` and `decompress` take the request and return ``0`` when done synchronously,
    ``-EINPROGRESS`` (or ``-EBUSY`` when backlogged) when `acomp_request_complete` will be
    called later, possibly from another thread, or a negative errno.
    """

    cra_type_bits = CRYPTO_ALG_TYPE_ACOMPRESS
    type_name = "acomp"
    #: Bytes of per-request driver context (``req.ctx`` is a bytearray of this size), as
    #: ``struct acomp_alg``'s ``reqsize`` (v4.10 - v6.15).
    reqsize: ClassVar[int] = 0
    #: The same, as v6.16+ declares it (``base.cra_reqsize``; ``acomp_alg.reqsize`` removed): a
    #: transform of the v6.16+ API takes this one. A driver for both eras sets both.
    cra_reqsize: ClassVar[int] = 0

    def init(self, tfm: CryptoAcomp) -> int:
        """Per-tfm set-up; a negative errno fails the allocation."""
        return 0

    def exit(self, tfm: CryptoAcomp) -> None:
        """Per-tfm tear-down."""

    def compress(self, req: AcompReq) -> int:
        """Start compressing `req`: ``0`` when done, ``-EINPROGRESS``/``-EBUSY`` when
        `acomp_request_complete` follows, or a negative errno."""
        raise NotImplementedError

    def decompress(self, req: AcompReq) -> int:
        """Start decompressing `req`; the same return convention as `compress`."""
        raise NotImplementedError

    def dst_free(self, dst: Scatterlist) -> None:
        """Free a dst this driver allocated for a request with ``dst=None`` (v4.10 - v6.14)."""


class ScompAlg(CryptoAlg):
    """``struct scomp_alg``: a synchronous algorithm on linear buffers, used through acomp.

    `compress`/`decompress` get the source bytes and an output view whose length is the
    capacity; they return the number of bytes written, or a negative errno: ``-ENOSPC`` when
    the output does not fit the capacity, ``-EINVAL`` for corrupt input. They run in atomic
    context (under the per-CPU scratch spin lock; from v6.15 also the stream's) and must not
    sleep.
    """

    cra_type_bits = CRYPTO_ALG_TYPE_SCOMPRESS
    type_name = "scomp"

    def alloc_ctx(self, tfm: Any = None) -> Any:
        """A context; raise MemoryError to fail. ≤ v6.14: ``alloc_ctx(tfm)``, one per request;
        v6.15+: ``alloc_ctx()`` (no transform), one per CPU, kept in the algorithm's
        ``streams`` (`acomp.streams`). A driver for both eras takes ``tfm=None``."""
        return None

    def free_ctx(self, *args: Any) -> None:
        """Free a context `alloc_ctx` made: ≤ v6.14 ``free_ctx(tfm, ctx)``, v6.15+
        ``free_ctx(ctx)``; the context is the last argument."""

    def compress(self, tfm: Any, src: memoryview, dst: memoryview, ctx: Any) -> int:
        """Compress `src` into `dst` (its length is the capacity): bytes written or a negative
        errno; must not sleep."""
        raise NotImplementedError

    def decompress(self, tfm: Any, src: memoryview, dst: memoryview, ctx: Any) -> int:
        """Decompress `src` into `dst`: bytes written, ``-ENOSPC`` when it does not fit, ``-EINVAL``
        for corrupt input; must not sleep."""
        raise NotImplementedError


# --------------------------------------------------------------------------------------------
# The list (newest first, as the kernel's list_add) and its semaphore.

crypto_alg_list: list[CryptoAlg] = []
crypto_alg_sem = threading.RLock()


def _check_alg(alg: CryptoAlg) -> int:
    if not alg.cra_name or not alg.cra_driver_name:
        return -errno.EINVAL
    if not isinstance(alg.cra_priority, int) or alg.cra_priority < 0:
        return -errno.EINVAL
    if alg.cra_type_bits not in crypto_types:
        return -errno.EINVAL
    return 0


def _register(alg: CryptoAlg) -> int:
    err = _check_alg(alg)
    if err:
        return err
    declared = type(alg).cra_eras or crypto_module_eras.get()
    versions = type(alg).cra_kernels or crypto_module_kernels.get()
    try:
        eras = crypto_eras_of(declared) if declared else ()
        kernels = crypto_kernels_of(versions) if versions else ()
    except UnsupportedKernel:
        return -errno.EINVAL  # an era or a version no kernel has
    with crypto_alg_sem:
        for q in crypto_alg_list:
            if q is alg:
                return -errno.EEXIST
            if q.dead:
                continue
            if alg.cra_driver_name in (q.cra_driver_name, q.cra_name) or (
                q.cra_driver_name == alg.cra_name
            ):
                return -errno.EEXIST
        alg.cra_flags = (alg.cra_flags & ~(CRYPTO_ALG_TYPE_MASK | CRYPTO_ALG_TESTED)) | (
            alg.cra_type_bits
        )
        owner = crypto_module_owner.get()
        if type(alg).cra_module == "kernel" and owner is not None:
            alg.cra_module = owner  # type: ignore[misc]
        alg.cra_refcnt = 1
        alg.eras = eras
        alg.kernels = kernels
        alg.registered = True
        alg.dead = False
        alg.selftest = TEST_UNTESTED
        crypto_alg_list.insert(0, alg)
    # The crypto manager tests it (the kernel runs this in a kthread and lookups wait); with
    # no crypto manager listening the algorithm counts as tested, as without CRYPTO_MANAGER.
    if crypto_probing_notify(CRYPTO_MSG_ALG_REGISTER, alg) != NOTIFY_STOP:
        crypto_alg_tested(alg, True, [])
    return 0


def crypto_alg_tested(alg: CryptoAlg, ok: bool, log: list[str]) -> None:
    """``crypto_alg_tested``: the crypto manager's verdict; a pass makes `alg` selectable."""
    with crypto_alg_sem:
        alg.selftest_log = log
        if ok:
            alg.cra_flags |= CRYPTO_ALG_TESTED
            alg.selftest = TEST_PASSED
        else:
            alg.selftest = TEST_FAILED


def _unregister(alg: CryptoAlg) -> int:
    with crypto_alg_sem:
        if alg not in crypto_alg_list:
            return -errno.ENOENT
        if alg.cra_refcnt > 1:
            # A tfm still uses it: the kernel pins the module; we refuse rather than dangle.
            return -errno.EBUSY
        crypto_alg_list.remove(alg)
        alg.dead = True
        alg.registered = False
        alg.cra_refcnt = 0
        alg.cra_flags &= ~CRYPTO_ALG_TESTED
    t = crypto_types.get(alg.cra_type_bits)
    if t is not None:
        t.destroy(alg)  # crypto_alg_put -> crypto_destroy_alg -> cra_type->destroy
    return 0


def _register_many(algs: list[Any], register: Any, unregister: Any) -> int:
    done: list[Any] = []
    for alg in algs:
        err = register(alg)
        if err:
            for a in reversed(done):
                unregister(a)
            return int(err)
        done.append(alg)
    return 0


def crypto_register_acomp(alg: AcompAlg) -> int:
    """Register an acomp algorithm; ``0``, ``-EINVAL`` (bad names/priority) or ``-EEXIST``."""
    if not isinstance(alg, AcompAlg):
        return -errno.EINVAL
    return _register(alg)


def crypto_unregister_acomp(alg: AcompAlg) -> int:
    """Unregister; ``-EBUSY`` (and nothing changes) while a tfm still uses it."""
    return _unregister(alg)


def crypto_register_acomps(algs: list[AcompAlg]) -> int:
    """Register all or none: a failure unregisters those already registered."""
    return _register_many(algs, crypto_register_acomp, crypto_unregister_acomp)


def crypto_unregister_acomps(algs: list[AcompAlg]) -> int:
    """Unregister each, newest first; the last error, or ``0`` when all went."""
    err = 0
    for alg in reversed(algs):
        err = crypto_unregister_acomp(alg) or err
    return err


def crypto_register_scomp(alg: ScompAlg) -> int:
    """Register an scomp algorithm; ``0``, ``-EINVAL`` (bad names/priority) or ``-EEXIST``."""
    if not isinstance(alg, ScompAlg):
        return -errno.EINVAL
    alg.cra_flags |= CRYPTO_ALG_REQ_VIRT  # scomp_prepare_alg (v6.15: CRYPTO_ALG_REQ_CHAIN)
    # Proposed, beyond the series: the CPU batch path segments a request itself
    # (acomp.segment); only the "proposed" submission reads the bit.
    alg.cra_flags |= CRYPTO_ALG_REQ_SEG
    return _register(alg)


def crypto_unregister_scomp(alg: ScompAlg) -> int:
    """Unregister; ``-EBUSY`` (and nothing changes) while a tfm still uses it."""
    return _unregister(alg)


def crypto_register_scomps(algs: list[ScompAlg]) -> int:
    """Register all or none: a failure unregisters those already registered."""
    return _register_many(algs, crypto_register_scomp, crypto_unregister_scomp)


def crypto_unregister_scomps(algs: list[ScompAlg]) -> int:
    """Unregister each, newest first; the last error, or ``0`` when all went."""
    err = 0
    for alg in reversed(algs):
        err = crypto_unregister_scomp(alg) or err
    return err


# --------------------------------------------------------------------------------------------
# Lookup


def __crypto_alg_lookup(name: str, type: int, mask: int) -> CryptoAlg | None:
    best: CryptoAlg | None = None
    best_prio = -2
    for q in crypto_alg_list:
        if q.dead or (q.cra_flags ^ type) & mask:
            continue
        if (q.eras or q.kernels) and not crypto_alg_present(q):
            continue  # built for other kernels (cra_eras, cra_kernels): not there in this one
        exact = q.cra_driver_name == name
        fuzzy = q.cra_name == name
        if not exact and not (fuzzy and q.cra_priority > best_prio):
            continue
        best = q
        best_prio = q.cra_priority
        if exact:
            break
    return best


def crypto_alg_lookup(name: str, type: int, mask: int) -> CryptoAlg:
    """Find a tested algorithm; ``CryptoError(-ENOENT)``, or ``-ELIBBAD`` if only failed ones."""
    with crypto_alg_sem:
        test = CRYPTO_ALG_TESTED
        alg = __crypto_alg_lookup(name, type | test, mask | test)
        if alg is None:
            untested = __crypto_alg_lookup(name, type, mask)
            if untested is not None and untested.selftest == TEST_FAILED:
                raise CryptoError(-errno.ELIBBAD, f"{name}: self-test failed")
            raise CryptoError(-errno.ENOENT, name)
        return alg


def crypto_alg_mod_lookup(name: str, type: int, mask: int) -> CryptoAlg:
    """``crypto_alg_mod_lookup``: look up, loading driver modules on a miss.

    The crypto manager answers the miss (`CRYPTO_MSG_ALG_REQUEST`): it loads the modules that
    serve `name` and builds templates (``faulty(lz4)``), as ``request_module`` and cryptomgr's
    probe do.
    """
    crypto_probing_notify(CRYPTO_MSG_ALG_LOOKUP, name)
    try:
        return crypto_alg_lookup(name, type, mask)
    except CryptoError as e:
        if e.err != -errno.ENOENT:
            raise
    if crypto_probing_notify(CRYPTO_MSG_ALG_REQUEST, name) == NOTIFY_STOP:
        return crypto_alg_lookup(name, type, mask)
    raise CryptoError(-errno.ENOENT, name)
