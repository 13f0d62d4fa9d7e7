"""Errors: one root, `AcompError`; under it the kernel's ``ERR_PTR`` as `CryptoError`, and
the Python layer's typed exceptions.

Kernel-style functions that return ``int`` return ``0`` or a negative errno (no exception);
those that return a pointer raise `CryptoError` where the kernel returns ``ERR_PTR(-E...)``. The
Python layer (`acomp.open`) turns errnos into the exceptions below, keeping "output too small"
and "corrupt input" apart. Every one carries ``.err``, the kernel's negative errno behind it::

    AcompError                          .err (negative errno)
    ├── CryptoError (OSError)           kernel-style: .errno positive, as OSError's
    ├── AlgorithmNotFound (LookupError) -ENOENT, -ELIBBAD
    ├── OutputTooSmall                  -ENOSPC
    ├── BadData (ValueError)            -EINVAL, -EBADMSG on decompress
    ├── Busy                            -EBUSY
    ├── UnsupportedKernel (ValueError)  a kernel version no era models
    └── DeviceError                     -EIO, -ENOMEM, a timeout, ...

Bug reports of the execution model (`acomp.sched.SleepInAtomicError`, `LockDebugError`) are
not under the root: they report a bug in the caller, which ordinary error handling must not
swallow. The classes show their public module: ``acomp.BadData``.
"""

from __future__ import annotations

import errno as _errno
import os

__all__ = (
    "AcompError",
    "AlgorithmNotFound",
    "BadData",
    "Busy",
    "CryptoError",
    "DeviceError",
    "OutputTooSmall",
    "UnsupportedKernel",
    "errno_name",
    "error_from_errno",
)


def errno_name(err: int) -> str:
    """``-ENOSPC`` for -28, ``0`` for 0."""
    if err == 0:
        return "0"
    name = _errno.errorcode.get(abs(err), str(abs(err)))
    return f"-{name}" if err < 0 else name


class AcompError(Exception):
    """Base of every error acomp raises; ``.err`` is the kernel's negative errno behind it.

    On the Python layer's errors ``.errno`` is that negative errno too.
    """

    err: int

    def __init__(self, message: str, err: int = -_errno.EIO) -> None:
        super().__init__(message)
        self.errno = err
        self.err = err


class CryptoError(AcompError, OSError):  # type: ignore[misc]  # errno: OSError's, positive
    """A kernel function that returns a pointer failed: ``ERR_PTR(-errno)``.

    ``.errno`` is the positive errno (as `OSError`'s, so ``except OSError`` catches it);
    ``.err`` the kernel's negative value.
    """

    def __init__(self, err: int, what: str = "") -> None:
        code = abs(err)
        msg = os.strerror(code)
        OSError.__init__(self, code, f"{what}: {msg}" if what else msg)
        self.err = -code
        self.what = what

    def __reduce__(self) -> tuple[type[CryptoError], tuple[int, str]]:
        return type(self), (self.err, self.what)  # OSError's would repeat the message


class AlgorithmNotFound(AcompError, LookupError):
    """No registered, self-tested algorithm or driver has that name (``-ENOENT``)."""


class OutputTooSmall(AcompError):
    """The output did not fit the capacity given (``-ENOSPC``); the input may be fine."""


class BadData(AcompError, ValueError):
    """The compressed input is corrupt or truncated (``-EINVAL``/``-EBADMSG`` on decompress)."""


class Busy(AcompError):
    """The driver's queue is full and the request was not backlogged (``-EBUSY``/``-ENOSPC``)."""


class UnsupportedKernel(AcompError, ValueError):
    """The kernel version asked for is not one the model has (``ACOMP_KERNEL``, `set_kernel`,
    ``Zswap(version=...)``); the message names the modelled eras."""

    def __init__(self, message: str) -> None:
        super().__init__(message, -_errno.EINVAL)


class DeviceError(AcompError):
    """The driver or device failed (``-EIO``, ``-ENOMEM``, a timeout, ...)."""


def error_from_errno(err: int, op: str, name: str) -> AcompError:
    """The typed exception for negative errno `err` returned by `op` on algorithm `name`."""
    what = f"{op} with {name} failed: {errno_name(err)}"
    if err == -_errno.ENOSPC:
        return OutputTooSmall(what, err)
    if op == "decompress" and err in (-_errno.EINVAL, -_errno.EBADMSG):
        return BadData(what, err)
    if err == -_errno.EBUSY:
        return Busy(what, err)
    if err in (-_errno.ENOENT, -_errno.ELIBBAD):
        return AlgorithmNotFound(what, err)
    return DeviceError(what, err)


# They print as acomp.BadData: where users import them from.
for _cls in [c for c in list(globals().values())
             if isinstance(c, type) and issubclass(c, AcompError)]:
    _cls.__module__ = "acomp"
del _cls
