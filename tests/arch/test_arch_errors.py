"""One exception root per layer: acomp's `AcompError` and zswap's `ZswapError`.

Every class shows the module users import it from, every acomp error carries the kernel's
negative errno as ``.err``, and ``except OSError`` still catches the kernel-style `CryptoError`.
"""

from __future__ import annotations

import errno
import pickle

import pytest

import acomp
import zswap
from acomp import sched


def _exceptions(mod: object) -> list[type[BaseException]]:
    """Every exception class a surface exports."""
    out = [getattr(mod, n) for n in mod.__all__]  # type: ignore[attr-defined]
    return [c for c in out if isinstance(c, type) and issubclass(c, BaseException)]


ACOMP_ERRORS = _exceptions(acomp)
ZSWAP_ERRORS = _exceptions(zswap)


def test_the_surfaces_export_their_errors() -> None:
    assert {acomp.BadData, acomp.CryptoError, acomp.AlgorithmNotFound} <= set(ACOMP_ERRORS)
    assert {zswap.ZpoolError, zswap.SwapFullError, zswap.BadPageError} <= set(ZSWAP_ERRORS)


@pytest.mark.parametrize("cls", ACOMP_ERRORS)
def test_acomp_errors_share_one_root_and_print_as_acomp(cls: type[Exception]) -> None:
    assert issubclass(cls, acomp.AcompError)
    assert cls.__module__ == "acomp"
    assert getattr(acomp, cls.__name__) is cls
    assert repr(cls) == f"<class 'acomp.{cls.__name__}'>"


@pytest.mark.parametrize("cls", ZSWAP_ERRORS)
def test_zswap_errors_share_one_root_and_print_as_zswap(cls: type[Exception]) -> None:
    assert issubclass(cls, zswap.ZswapError)
    assert not issubclass(cls, acomp.AcompError)  # one root per layer
    assert cls.__module__ == "zswap"
    assert getattr(zswap, cls.__name__) is cls


def test_crypto_error_is_the_kernel_layer_and_still_an_oserror() -> None:
    with pytest.raises(OSError) as ei:  # noqa: PT011 - OSError is the point
        acomp.crypto_alloc_acomp("no-such-algorithm")
    e = ei.value
    assert isinstance(e, acomp.CryptoError)
    assert isinstance(e, acomp.AcompError)
    assert e.errno == errno.ENOENT  # OSError's: positive
    assert e.err == -errno.ENOENT  # the kernel's: negative
    back = pickle.loads(pickle.dumps(e))
    assert (type(back), back.err, str(back)) == (acomp.CryptoError, e.err, str(e))


def test_python_layer_errors_carry_the_negative_errno() -> None:
    e = acomp.BadData("decompress with lz4-scomp failed: -EINVAL", -errno.EINVAL)
    assert e.err == e.errno == -errno.EINVAL
    assert isinstance(e, ValueError)
    assert isinstance(acomp.AlgorithmNotFound("x", -errno.ENOENT), LookupError)
    back = pickle.loads(pickle.dumps(e))
    assert (type(back), back.err, str(back)) == (acomp.BadData, e.err, str(e))


@pytest.mark.anyio
async def test_one_except_catches_both_layers(anyio_backend: str) -> None:
    """A caller that catches `AcompError` catches the lookup miss and a corrupt input alike."""
    caught: list[tuple[type[BaseException], int]] = []
    for name, blob in (("no-such-algorithm", b""), ("lz4", b"\xf0\x00garbage")):
        try:
            async with acomp.open(name) as c:
                await c.decompress(blob, 4096)
        except acomp.AcompError as e:
            caught.append((type(e), e.err))
    assert caught == [(acomp.AlgorithmNotFound, -errno.ENOENT), (acomp.BadData, -errno.EINVAL)]


def test_bug_reports_stay_outside_the_root() -> None:
    """A sleep in atomic context is the caller's bug: `except AcompError` must not swallow it."""
    for cls in (sched.SleepInAtomicError, sched.LockDebugError):
        assert not issubclass(cls, acomp.AcompError)


def test_swap_full_is_a_zswap_error_and_an_oserror() -> None:
    e = zswap.SwapFullError(8)
    assert isinstance(e, OSError)
    assert e.errno == errno.ENOSPC
    back = pickle.loads(pickle.dumps(e))
    assert (type(back), str(back)) == (zswap.SwapFullError, str(e))
