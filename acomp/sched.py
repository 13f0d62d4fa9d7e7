"""The kernel execution model: virtual CPUs, atomic context, locks and ``might_sleep()``.

Kernel counterpart: ``include/linux/preempt.h``, ``kernel/sched/core.c`` (``__might_sleep``),
``kernel/locking/spinlock_debug.c`` and ``mutex.c``, ``include/linux/bit_spinlock.h``,
``include/linux/local_lock.h`` and ``include/linux/percpu.h``.

Every anyio task (and every thread) is a kernel task here. Its preemption count, where
preemption was first disabled and the locks it holds live in context variables, so that each
task sees its own, as the kernel keeps them per task across context switches. A task runs on a
virtual CPU (`smp_processor_id`), 0 unless `on_cpu` says otherwise; per-CPU data (`PerCpu`) is
indexed by it, so two tasks on one CPU share per-CPU buffers exactly as the kernel's do.

A sleeping primitive calls `might_sleep`. In atomic context (preemption disabled, a spin lock
held) that is the kernel's "BUG: sleeping function called from invalid context", reported
according to `config.atomic_sleep`: ``"raise"`` raises `SleepInAtomicError`, ``"warn"`` logs the
splat and carries on (so what the kernel risked can happen), ``"off"`` ignores it.

All of this bookkeeping is the kernel's debug options (``CONFIG_DEBUG_ATOMIC_SLEEP``,
``CONFIG_PROVE_LOCKING``, ``CONFIG_DEBUG_SPINLOCK``, ``CONFIG_DEBUG_MUTEXES``), and like them
it is one switch: `set_debug_checks` (or ``ACOMP_DEBUG_CHECKS=0`` in the environment). With the
checks off, the locks still exclude each other and everything else behaves the same, but the
preemption count, irq state and held-lock records are not kept, so a sleep in atomic context
and lock misuse (wrong owner, unlock of an unlocked lock) go unreported. A lock that could
never be taken (recursion, or held by another task of the same thread) is reported either way:
the alternative is a hang.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import CodeType, FrameType
from typing import Generic, Literal, TypeVar

import anyio

from acomp.eras import kernel, parse_kernel

__all__ = (
    "BugReport",
    "LocalLock",
    "LockDebugError",
    "Mutex",
    "PerCpu",
    "SleepInAtomicError",
    "SpinLock",
    "bit_spin_is_locked",
    "bit_spin_lock",
    "bit_spin_unlock",
    "config",
    "current_task_name",
    "debug_checks",
    "get_cpu",
    "in_atomic",
    "irqs_disabled",
    "local_irq_disable",
    "local_irq_enable",
    "local_lock",
    "local_unlock",
    "might_sleep",
    "mutex_lock",
    "mutex_unlock",
    "new_task",
    "nr_cpu_ids",
    "on_cpu",
    "preempt_count",
    "preempt_disable",
    "preempt_enable",
    "put_cpu",
    "reports",
    "reset",
    "set_debug_checks",
    "set_nr_cpu_ids",
    "smp_processor_id",
    "spin_lock",
    "spin_unlock",
)

log = logging.getLogger("acomp.sched")

T = TypeVar("T")

Where = tuple[CodeType, int]  # code object and instruction offset; resolved when reported


@dataclass
class _Config:
    #: What a sleep in atomic context does: "raise" (tests' default), "warn" or "off".
    atomic_sleep: Literal["raise", "warn", "off"] = "raise"
    #: What a lock-debugging bug (wrong owner, unlock of an unlocked lock) does.
    lock_debug: Literal["raise", "warn", "off"] = "raise"


config = _Config()


def _env_checks() -> bool:
    v = os.environ.get("ACOMP_DEBUG_CHECKS", "1").strip().lower()
    return v not in ("0", "off", "no", "false", "n")


#: Whether the debug checks run (read on every lock operation: a plain module global).
#: Change it with `set_debug_checks`, never while a lock is held.
checks: bool = _env_checks()


def debug_checks() -> bool:
    """Whether the atomic-context and lock debug checks are on (``ACOMP_DEBUG_CHECKS``)."""
    return checks


def set_debug_checks(on: bool) -> bool:
    """Turn the atomic-context and lock debug checks on or off; returns the previous setting.

    The kernel's ``CONFIG_DEBUG_ATOMIC_SLEEP`` and ``CONFIG_PROVE_LOCKING`` as one run-time
    switch. Off, no preemption count, irq state or held-lock record is kept: `might_sleep`
    reports nothing, `in_atomic` and `preempt_count` read 0, and a wrong-owner unlock or an
    unlock of an unlocked lock passes silently; locks still exclude each other. Switch it only
    while no task holds a lock (at start-up, between tests): the calling task's state is reset.
    """
    global checks
    old = checks
    checks = bool(on)
    _state.set(_EMPTY)
    return old


@dataclass(frozen=True)
class BugReport:
    """One splat: its title line and the full text the kernel would print."""

    kind: str
    text: str

    @property
    def title(self) -> str:
        """The report's first line, e.g. ``BUG: sleeping function called from invalid context``."""
        return self.text.splitlines()[0]


#: Every splat reported so far (in all modes but "off"); tests and examples read and clear it.
reports: list[BugReport] = []


class SleepInAtomicError(RuntimeError):
    """A sleeping function was called from atomic context (the kernel's BUG splat)."""

    def __init__(self, report: BugReport) -> None:
        super().__init__(report.text)
        self.report = report


class LockDebugError(RuntimeError):
    """A lock was released by a context that does not own it, or was not held."""

    def __init__(self, report: BugReport) -> None:
        super().__init__(report.text)
        self.report = report


# --------------------------------------------------------------------------------------------
# Per-task state.  Values are immutable so that a task spawned from another starts from a
# snapshot and its changes stay its own.

_cpu: contextvars.ContextVar[int] = contextvars.ContextVar("acomp_cpu", default=0)
# One immutable record per task: (preempt count, where preemption was first disabled,
# held locks as ((name, where), ...), irqs-off depth). One variable keeps lock/unlock cheap.
_State = tuple[int, "Where | None", tuple[tuple[str, "Where"], ...], int]
_EMPTY: _State = (0, None, (), 0)
_state: contextvars.ContextVar[_State] = contextvars.ContextVar("acomp_state", default=_EMPTY)
_task_token: contextvars.ContextVar[object | None] = contextvars.ContextVar(
    "acomp_task", default=None
)
_task_ids = itertools.count(1)
_get_ident = threading.get_ident
_pid = os.getpid()

_nr_cpu_ids = max(1, os.cpu_count() or 1)
_cpu_gen = 0  # bumped by set_nr_cpu_ids so PerCpu storage follows


def nr_cpu_ids() -> int:
    """Number of virtual CPUs."""
    return _nr_cpu_ids


def set_nr_cpu_ids(n: int) -> None:
    """Set the number of virtual CPUs (per-CPU data made afterwards follows)."""
    global _nr_cpu_ids, _cpu_gen
    if n < 1:
        raise ValueError("need at least one CPU")
    _nr_cpu_ids = n
    _cpu_gen += 1


def smp_processor_id() -> int:
    """The virtual CPU the calling task runs on."""
    return _cpu.get()


@contextmanager
def on_cpu(cpu: int) -> Iterator[None]:
    """Run the enclosed code (and tasks it spawns) on virtual CPU `cpu`."""
    if not 0 <= cpu < _nr_cpu_ids:
        raise ValueError(f"CPU {cpu} out of range 0..{_nr_cpu_ids - 1}")
    tok = _cpu.set(cpu)
    try:
        yield
    finally:
        _cpu.reset(tok)


class _TaskToken:
    __slots__ = ("name", "pid")

    def __init__(self, name: str, pid: int) -> None:
        self.name = name
        self.pid = pid


def _task() -> _TaskToken:
    """The calling task's identity (one per thread and per context that asked)."""
    tok = _task_token.get()
    if tok is None:
        tok = _TaskToken(threading.current_thread().name, next(_task_ids))
        _task_token.set(tok)
    assert isinstance(tok, _TaskToken)
    return tok


def new_task(name: str | None = None) -> str:
    """Give the calling task an identity of its own (and a clean atomic state).

    Context variables are inherited: a task spawned by another shares its identity until it
    calls this (the wrong-owner checks then tell the two apart). Returns the new name.
    """
    tok = _TaskToken(name or threading.current_thread().name, next(_task_ids))
    _task_token.set(tok)
    _state.set(_EMPTY)
    return f"{tok.name}/{tok.pid}"


def current_task_name() -> str:
    """The running task as ``name/pid``, as the kernel's reports print it."""
    t = _task()
    return f"{t.name}/{t.pid}"


def _owner() -> tuple[int, _TaskToken]:
    return (threading.get_ident(), _task())


def _where(depth: int) -> Where:
    f = sys._getframe(depth + 1)
    return (f.f_code, f.f_lasti)


def _resolve(where: Where) -> tuple[str, int, str]:
    """(file, line, function) of a recorded place."""
    code, lasti = where
    line = code.co_firstlineno
    for start, _end, ln in code.co_lines():
        if start <= lasti and ln is not None:
            line = ln
    return (code.co_filename, line, code.co_name)


def _short(path: str) -> str:
    parts = path.replace("\\", "/").split("/")
    return "/".join(parts[-2:])


# --------------------------------------------------------------------------------------------
# Preemption and interrupts


def preempt_count() -> int:
    """The task's preemption nesting depth; non-zero means atomic context."""
    return _state.get()[0]


def in_atomic() -> bool:
    """True with preemption disabled (a spin lock held, a per-CPU area in use) or irqs off."""
    st = _state.get()
    return st[0] > 0 or st[3] > 0


def irqs_disabled() -> bool:
    """Whether interrupts are disabled on this task's CPU (``local_irq_disable`` nesting)."""
    return _state.get()[3] > 0


def preempt_disable(_depth: int = 0) -> None:
    """Disable preemption (one more level): sleeping is now a bug until `preempt_enable`."""
    if not checks:
        return
    count, where, held, irqs = _state.get()
    _state.set((count + 1, where if count else _where(1 + _depth), held, irqs))


def preempt_enable() -> None:
    """Enable preemption (one level less); an unbalanced call is reported."""
    if not checks:
        return
    count, where, held, irqs = _state.get()
    if count <= 0:
        _bug("lock", "BUG: preempt_enable() with preemption enabled (unbalanced)")
        return
    _state.set((count - 1, where if count > 1 else None, held, irqs))


def local_irq_disable() -> None:
    """Disable interrupts: atomic context until `local_irq_enable`."""
    if not checks:
        return
    count, where, held, irqs = _state.get()
    _state.set((count, where, held, irqs + 1))


def local_irq_enable() -> None:
    """Enable interrupts again (one level of `local_irq_disable`)."""
    if not checks:
        return
    count, where, held, irqs = _state.get()
    _state.set((count, where, held, max(0, irqs - 1)))


def get_cpu() -> int:
    """Disable preemption and return the current CPU (pair with `put_cpu`)."""
    preempt_disable(1)
    return _cpu.get()


def put_cpu() -> None:
    """Release the CPU `get_cpu` pinned (``put_cpu``: preemption enabled again)."""
    preempt_enable()


# --------------------------------------------------------------------------------------------
# Reporting


def _emit(kind: str, text: str, mode: str, exc: type[RuntimeError]) -> None:
    if mode == "off":
        return
    report = BugReport(kind, text)
    reports.append(report)
    if mode == "raise":
        raise exc(report)  # type: ignore[call-arg]
    log.error("%s", text)


def _bug(kind: str, title: str) -> None:
    text = f"{title}\n{_held_text()}"
    _emit(kind, text, config.lock_debug, LockDebugError)


def _held_text() -> str:
    held = _state.get()[2]
    if not held:
        return "no locks held by " + current_task_name() + "."
    n = len(held)
    lines = [f"{n} lock{'s' if n > 1 else ''} held by {current_task_name()}:"]
    for i, (name, where) in enumerate(held):
        file, line, func = _resolve(where)
        lines.append(f" #{i}: ({name}), at: {func}+0x0/0x0 [{_short(file)}:{line}]")
    return "\n".join(lines)


def _splat_kernel(frame: FrameType | None) -> tuple[int, int]:
    """The kernel whose code is sleeping, which the splat's format follows: the innermost
    caller on the stack whose object says so (a ``splat_kernel`` attribute of its class: a
    `zswap.Zswap`'s paths give their instance's version, so ``Zswap(version="5.11")`` prints
    v5.11's lines whatever is modelled globally), else `acomp.kernel()`. Read on the report's
    path only, as the call trace is."""
    for _ in range(64):
        if frame is None:
            break
        obj = frame.f_locals.get("self")
        if obj is not None and hasattr(type(obj), "splat_kernel"):
            return parse_kernel(obj.splat_kernel)
        frame = frame.f_back
    return parse_kernel(kernel())


def might_sleep() -> None:
    """Report a sleep in atomic context the way the kernel's ``__might_sleep`` does."""
    if not checks:
        return
    count, where, _, irqs = _state.get()
    if not count and not irqs:
        return
    if config.atomic_sleep == "off":
        return
    file, line, _ = _resolve(_where(1))
    t = _task()
    ver = _splat_kernel(sys._getframe(1))
    # kernel/sched/core.c __might_resched (___might_sleep before v5.16), in its order.
    lines = [
        f"BUG: sleeping function called from invalid context at {_short(file)}:{line}",
        f"in_atomic(): {1 if count else 0}, irqs_disabled(): {1 if irqs else 0}, "
        f"non_block: 0, pid: {t.pid}, name: {t.name}",
    ]
    if ver >= (5, 16):  # "sched: Make might_sleep() output less confusing"
        lines.append(f"preempt_count: {count:x}, expected: 0")
    lines.append(_held_text())  # debug_show_held_locks: lockdep's locks only
    if where is not None:
        wfile, wline, wfunc = _resolve(where)
        lines.append("Preemption disabled at:")
        lines.append(f"[<{id(where[0]) & 0xFFFFFFFFFFFF:016x}>] {wfunc}+0x0/0x0 "
                     f"[{_short(wfile)}:{wline}]")
    # dump_stack: lib/dump_stack.c dump_stack_print_info (UID from v6.11), then the trace.
    uid = " UID: 0" if ver >= (6, 11) else ""
    lines.append(f"CPU: {smp_processor_id()}{uid} PID: {t.pid} Comm: {t.name[:20]}")
    lines.append("Call Trace:")
    frame: FrameType | None = sys._getframe(1)
    for _ in range(8):
        if frame is None:
            break
        lines.append(
            f" {frame.f_code.co_name}+0x0/0x0 [{_short(frame.f_code.co_filename)}:{frame.f_lineno}]"
        )
        frame = frame.f_back
    _emit("sleep_in_atomic", "\n".join(lines), config.atomic_sleep, SleepInAtomicError)


# --------------------------------------------------------------------------------------------
# Locks


def _push_held(name: str, where: Where) -> None:
    if not checks:
        return
    count, pwhere, held, irqs = _state.get()
    _state.set((count, pwhere, (*held, (name, where)), irqs))


def _drop(held: tuple[tuple[str, Where], ...], name: str) -> tuple[tuple[str, Where], ...]:
    if held and held[-1][0] == name:
        return held[:-1]
    for i in range(len(held) - 1, -1, -1):
        if held[i][0] == name:
            return held[:i] + held[i + 1 :]
    return held


def _pop_held(name: str) -> None:
    if not checks:
        return
    count, pwhere, held, irqs = _state.get()
    _state.set((count, pwhere, _drop(held, name), irqs))


class SpinLock:
    """``spinlock_t``: disables preemption while held; debug checks as CONFIG_DEBUG_SPINLOCK.

    The model is single-threaded per event loop, so a lock that is already held is a deadlock
    in the kernel's terms (recursion or a sleeping holder): it is reported, not spun on.
    A thread other than the event loop (a device's completion thread) really spins.
    """

    __slots__ = ("_lock", "lockdep", "name", "owner", "owner_cpu", "owner_tid")

    def __init__(self, name: str = "spinlock", *, lockdep: bool = True) -> None:
        self.name = name
        #: Whether lockdep tracks it (a held-lock entry in reports): a ``spinlock_t`` has a
        #: ``dep_map``, a ``bit_spin_lock`` bit has none (only the preemption count shows it).
        self.lockdep = lockdep
        self._lock = threading.Lock()
        self.owner: _TaskToken | None = None
        self.owner_tid = 0
        self.owner_cpu = -1

    def is_locked(self) -> bool:
        """Whether a task holds the lock (``spin_is_locked``)."""
        return self.owner is not None

    def lock(self, _depth: int = 0) -> None:
        """``spin_lock``: take the lock with preemption disabled; a recursion or a lockup is
        reported."""
        tok = _task_token.get()
        if tok is None:
            tok = _task()
        if not self._lock.acquire(False):
            self._contended(tok)
            if self.owner is not None:  # reported as a lockup: not taken
                return
        if not checks:
            self.owner = tok  # type: ignore[assignment]
            self.owner_tid = _get_ident()
            return
        f = sys._getframe(1 + _depth)
        where = (f.f_code, f.f_lasti)
        count, pwhere, held, irqs = _state.get()
        if self.lockdep:
            held = (*held, (self.name, where))
        _state.set((count + 1, pwhere if count else where, held, irqs))
        self.owner = tok  # type: ignore[assignment]
        self.owner_tid = _get_ident()
        self.owner_cpu = _cpu.get()

    def _contended(self, tok: object) -> None:
        owner, tid = self.owner, _get_ident()
        if owner is not None and owner is tok and self.owner_tid == tid:
            _bug("lock", f"BUG: spinlock recursion on CPU#{_cpu.get()}, {current_task_name()}")
            return
        if owner is not None and self.owner_tid == tid:
            # Held by another task of this thread: it would spin forever on one CPU.
            _bug(
                "lock",
                f"BUG: spinlock lockup suspected on CPU#{_cpu.get()}, "
                f"{current_task_name()} ({self.name} held by {owner.name}/{owner.pid})",
            )
            return
        self._lock.acquire()  # another thread holds it: really spin (block)
        self.owner = None

    def unlock(self) -> None:
        """``spin_unlock``: release the lock and enable preemption; unlocking a free lock is
        reported."""
        owner = self.owner
        if not checks:
            if owner is not None:
                self.owner = None
                self._lock.release()
            return
        if owner is None:
            _bug("lock", f"BUG: spinlock already unlocked on CPU#{_cpu.get()}, "
                         f"{current_task_name()} ({self.name})")
            return
        if owner is not _task_token.get() or self.owner_tid != _get_ident():
            _bug(
                "lock",
                f"BUG: spinlock wrong owner on CPU#{_cpu.get()}, {current_task_name()} "
                f"({self.name}: .owner: {owner.name}/{owner.pid}, .owner_cpu: {self.owner_cpu})",
            )
            # The kernel carries on after the report: release it so the system can go on.
        self.owner = None
        self._lock.release()
        # The releasing context's preemption count drops, as the unlocking CPU's would.
        count, pwhere, held, irqs = _state.get()
        if count > 0:
            if self.lockdep:
                name = self.name
                held = held[:-1] if held and held[-1][0] == name else _drop(held, name)
            _state.set((count - 1, pwhere if count > 1 else None, held, irqs))

    def __enter__(self) -> SpinLock:
        self.lock(1)
        return self

    def __exit__(self, *exc: object) -> None:
        self.unlock()


def spin_lock(lock: SpinLock) -> None:
    """Take `lock` (``spin_lock``)."""
    lock.lock(1)


def spin_unlock(lock: SpinLock) -> None:
    """Release `lock` (``spin_unlock``)."""
    lock.unlock()


class _BitLocks:
    """The bits of ``bit_spin_lock``: a lock per (word, bit), kept out of the data itself."""

    def __init__(self) -> None:
        self._locks: dict[tuple[int, int], SpinLock] = {}
        self._guard = threading.Lock()

    def get(self, word: object, bitnum: int) -> SpinLock:
        key = (id(word), bitnum)
        with self._guard:
            lk = self._locks.get(key)
            if lk is None:
                lk = self._locks[key] = SpinLock(f"bit_spin_lock#{bitnum}", lockdep=False)
            return lk


_bitlocks = _BitLocks()


def bit_spin_lock(bitnum: int, word: object) -> None:
    """Lock bit `bitnum` of `word` (any object standing for the word); disables preemption."""
    _bitlocks.get(word, bitnum).lock(1)


def bit_spin_unlock(bitnum: int, word: object) -> None:
    """Release bit `bitnum` of `word` (``bit_spin_unlock``) and enable preemption."""
    _bitlocks.get(word, bitnum).unlock()


def bit_spin_is_locked(bitnum: int, word: object) -> bool:
    """Whether bit `bitnum` of `word` is held as a bit spin lock."""
    return _bitlocks.get(word, bitnum).is_locked()


class LocalLock:
    """``local_lock_t`` (non-RT): no lock at all, just preemption disabled while "held".

    Two tasks on one CPU are kept apart only because neither can be preempted; a holder that
    sleeps (a bug the splat reports) lets the other in, as in the kernel.
    """

    __slots__ = ("name",)

    def __init__(self, name: str = "local_lock") -> None:
        self.name = name

    def lock(self, _depth: int = 0) -> None:
        """``local_lock``: disable preemption on this CPU and hold the lock (no sleeping until
        `unlock`)."""
        if checks:
            preempt_disable(1 + _depth)
            _push_held(self.name, _where(1 + _depth))

    def unlock(self) -> None:
        """``local_unlock``: release the lock and enable preemption again."""
        if checks:
            _pop_held(self.name)
            preempt_enable()


def local_lock(lock: LocalLock) -> None:
    """Take `lock` (``local_lock``): preemption disabled until `local_unlock`."""
    lock.lock(1)


def local_unlock(lock: LocalLock) -> None:
    """Release `lock` (``local_unlock``)."""
    lock.unlock()


# --------------------------------------------------------------------------------------------
# Sleeping locks


class Mutex:
    """``struct mutex``: a sleeping lock, with ``might_sleep()`` and owner checks.

    As the kernel's, an uncontended lock is taken without scheduling; a contended one sleeps
    in FIFO order and is handed over by `unlock` to the first sleeper. A sleeper cancelled
    after the hand-off passes the lock on, so cancellation never leaves it held. One event
    loop's tasks use a mutex (the kernel's tasks of one machine); it is not for threads.
    """

    __slots__ = ("_waiters", "name", "owner")

    def __init__(self, name: str = "mutex") -> None:
        self.name = name
        #: The holder: (thread id, task identity), or None.
        self.owner: tuple[int, _TaskToken] | None = None
        self._waiters: deque[tuple[anyio.Event, list[bool]]] = deque()

    def is_locked(self) -> bool:
        """Whether a task holds the mutex (``mutex_is_locked``)."""
        return self.owner is not None

    def _take(self, depth: int) -> None:
        tok = _task_token.get() or _task()
        self.owner = (_get_ident(), tok)  # type: ignore[assignment]
        if not checks:
            return
        f = sys._getframe(depth + 1)
        count, pwhere, held, irqs = _state.get()
        _state.set((count, pwhere, (*held, (self.name, (f.f_code, f.f_lasti))), irqs))

    async def lock(self) -> None:
        """``mutex_lock``: may sleep (a sleep in atomic context is reported); waiters get it in
        order."""
        if checks:
            might_sleep()
        if self.owner is None and not self._waiters:
            self._take(1)
            return
        event = anyio.Event()
        handed = [False]
        entry = (event, handed)
        self._waiters.append(entry)
        try:
            await event.wait()
        except BaseException:
            if handed[0]:
                self.owner = None
                self._hand_over()  # it was ours already: pass it on
            else:
                self._waiters.remove(entry)
            raise
        self._take(1)

    def trylock(self) -> bool:
        """``mutex_trylock``: take it if free and nobody waits; whether it was taken."""
        if self.owner is not None or self._waiters:
            return False
        self._take(1)
        return True

    def _hand_over(self) -> None:
        if self._waiters:
            event, handed = self._waiters.popleft()
            handed[0] = True
            self.owner = _HANDED  # taken by the sleeper when it runs
            event.set()

    def unlock(self) -> None:
        """``mutex_unlock``: release it, handing it to the first waiter; unlocking a free mutex is
        reported."""
        owner = self.owner
        if owner is None or owner is _HANDED:
            if checks:
                _bug("lock", f"DEBUG_LOCKS_WARN_ON(!mutex_is_locked): {self.name}")
            return
        if not checks:
            self.owner = None
            if self._waiters:
                self._hand_over()
            return
        if owner[1] is not _task_token.get() or owner[0] != _get_ident():
            _bug("lock", f"DEBUG_LOCKS_WARN_ON(__owner_task(owner) != current): {self.name}")
        self.owner = None
        _pop_held(self.name)
        self._hand_over()

    async def __aenter__(self) -> Mutex:
        await self.lock()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.unlock()


#: The owner of a mutex between `unlock` handing it over and the sleeper taking it.
_HANDED: tuple[int, _TaskToken] = (0, _TaskToken("handed-over", 0))


async def mutex_lock(m: Mutex) -> None:
    """Take `m`, sleeping if it is held (``mutex_lock``)."""
    await m.lock()


def mutex_unlock(m: Mutex) -> None:
    """Release `m` (``mutex_unlock``)."""
    m.unlock()


# --------------------------------------------------------------------------------------------
# Per-CPU data


@dataclass
class PerCpu(Generic[T]):
    """A per-CPU variable: one `factory()` value per virtual CPU, made on first use."""

    factory: Callable[[int], T]
    _items: dict[int, T] = field(default_factory=dict)
    _gen: int = -1

    def this_cpu(self) -> T:
        """``this_cpu_ptr``: the value of the calling task's CPU."""
        cpu = _cpu.get()
        item = self._items.get(cpu)  # made once per CPU: this is every request's path
        return item if item is not None else self.per_cpu(cpu)

    def per_cpu(self, cpu: int) -> T:
        """CPU `cpu`'s instance, made by the factory on first use (``per_cpu_ptr``)."""
        item = self._items.get(cpu)
        if item is None:
            item = self._items[cpu] = self.factory(cpu)
        return item

    def items(self) -> list[tuple[int, T]]:
        """The (cpu, instance) pairs made so far, by CPU."""
        return sorted(self._items.items())

    def clear(self) -> None:
        """Forget every CPU's instance."""
        self._items.clear()


def reset() -> None:
    """Forget all reports and reset the calling context's atomic state (tests call this)."""
    reports.clear()
    _state.set(_EMPTY)
