"""Lookup and registration rules, as crypto/api.c and crypto/algapi.c apply them."""

from __future__ import annotations

import errno

import pytest
from algs import ThreadAcomp, ZScomp, registered

import acomp
from acomp import CRYPTO_ALG_ASYNC
from acomp.internal import (
    crypto_register_acomp,
    crypto_register_scomp,
    crypto_register_scomps,
    crypto_unregister_scomp,
)


def _algs() -> list[acomp.internal.CryptoAlg]:
    return [
        ZScomp("tzip", "tzip-generic", 0),
        ZScomp("tzip", "tzip-fast", 100),
        ThreadAcomp("tzip", "tzip-hw", 300),
        ZScomp("tzip", "tzip-low", 50),
        ZScomp("tother", "tother-generic", 0),
    ]


# (name, type, mask, expected driver or negative errno)
LOOKUPS = [
    ("tzip", 0, 0, "tzip-hw"),  # highest priority among cra_name matches
    ("tzip-generic", 0, 0, "tzip-generic"),  # an exact driver name wins over priority
    ("tzip-low", 0, 0, "tzip-low"),
    ("tzip", 0, CRYPTO_ALG_ASYNC, "tzip-fast"),  # mask=ASYNC, type=0: synchronous only
    ("tzip-hw", 0, CRYPTO_ALG_ASYNC, -errno.ENOENT),  # exact name, but filtered by type/mask
    ("tzip", CRYPTO_ALG_ASYNC, CRYPTO_ALG_ASYNC, "tzip-hw"),  # asynchronous only
    ("tother", 0, 0, "tother-generic"),
    ("tnothing", 0, 0, -errno.ENOENT),
]


@pytest.mark.parametrize(("name", "type_", "mask", "expect"), LOOKUPS)
def test_lookup_table(name: str, type_: int, mask: int, expect: str | int) -> None:
    with registered(*_algs()):
        if isinstance(expect, str):
            tfm = acomp.crypto_alloc_acomp(name, type_, mask)
            try:
                assert acomp.crypto_acomp_driver_name(tfm) == expect
            finally:
                acomp.crypto_free_acomp(tfm)
            assert acomp.crypto_has_acomp(name, type_, mask)
        else:
            with pytest.raises(acomp.CryptoError) as ei:
                acomp.crypto_alloc_acomp(name, type_, mask)
            assert ei.value.err == expect
            assert not acomp.crypto_has_acomp(name, type_, mask)


def test_cra_name_alone_never_matches_a_driver_name_of_another_alg() -> None:
    with registered(ZScomp("tq", "tq-generic")):
        with pytest.raises(acomp.CryptoError):
            acomp.crypto_alloc_acomp("tq-gen")


def test_builtin_lz4_resolves_to_scomp_when_async_excluded() -> None:
    tfm = acomp.crypto_alloc_acomp("lz4", 0, CRYPTO_ALG_ASYNC)
    try:
        assert acomp.crypto_acomp_driver_name(tfm) == "lz4-scomp"
        assert not acomp.acomp_is_async(tfm)
    finally:
        acomp.crypto_free_acomp(tfm)


def test_legacy_compress_type_is_not_acomp() -> None:
    # type 0x2 (crypto_comp) is filtered out by the acomp mask even if asked for by name.
    with pytest.raises(acomp.CryptoError) as ei:
        acomp.crypto_alloc_acomp("zstd", acomp.CRYPTO_ALG_TYPE_COMPRESS, acomp.CRYPTO_ALG_TYPE_MASK)
    assert ei.value.err == -errno.ENOENT


@pytest.mark.parametrize(
    ("name", "driver", "prio"),
    [("", "x-drv", 0), ("xname", "", 0), ("xname", "x-drv", -1)],
)
def test_register_refuses_bad_names_and_priority(name: str, driver: str, prio: int) -> None:
    alg = ZScomp(name, driver, prio)
    assert crypto_register_scomp(alg) == -errno.EINVAL
    assert not alg.registered


@pytest.mark.parametrize(
    ("second_name", "second_driver"),
    [
        ("tdup", "tdup-drv"),  # same driver name
        ("tdup-drv", "tdup-other"),  # its cra_name is an existing driver name
        ("tdupx", "tdup"),  # its driver name is an existing cra_name
    ],
)
def test_register_refuses_ambiguous_names(second_name: str, second_driver: str) -> None:
    with registered(ZScomp("tdup", "tdup-drv")):
        assert crypto_register_scomp(ZScomp(second_name, second_driver)) == -errno.EEXIST


def test_register_twice_is_eexist() -> None:
    a = ZScomp("tonce", "tonce-drv")
    with registered(a):
        assert crypto_register_scomp(a) == -errno.EEXIST


def test_plural_registration_rolls_back() -> None:
    a, b = ZScomp("troll", "troll-a"), ZScomp("troll", "troll-a")  # b collides with a
    assert crypto_register_scomps([a, b]) == -errno.EEXIST
    assert not a.registered
    assert not b.registered
    with pytest.raises(acomp.CryptoError):
        acomp.crypto_alloc_acomp("troll")


def test_unregister_in_use_is_refused_and_tfm_keeps_working() -> None:
    a = ZScomp("tbusy", "tbusy-drv")
    with registered(a):
        tfm = acomp.crypto_alloc_acomp("tbusy")
        assert a.cra_refcnt == 3  # the lookup's and the inner scomp tfm's (scompress.c)
        assert crypto_unregister_scomp(a) == -errno.EBUSY
        assert acomp.crypto_has_acomp("tbusy")
        acomp.crypto_free_acomp(tfm)
        assert a.cra_refcnt == 1
    assert not acomp.crypto_has_acomp("tbusy")


def test_wrong_registration_function_for_type() -> None:
    assert crypto_register_acomp(ZScomp("twrong", "twrong-drv")) == -errno.EINVAL  # type: ignore[arg-type]
