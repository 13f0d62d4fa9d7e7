"""Drivers declare the kernel eras they support (CryptoModule.eras, cra_eras), lookups follow
them, and the kernel's self-test vectors pass in every era.

Kernel: a module is built for one kernel (kernel/module: a module of another version does not
load), so in the model a driver's algorithms are not found in an era it does not support;
crypto/testmgr.c's test_acomp (its vectors run through each era's crypto_acomp_compress:
crypto/acompress.c of v6.14, v6.15's acomp_do_req_chain, v6.16's crypto_acomp_compress).
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from typing import Any

import pytest

import acomp
from acomp import UnsupportedKernel, kmod, testmgr
from acomp.algapi import TEST_PASSED, crypto_alg_list, crypto_alg_sem
from acomp.eras import ERAS, eras_of, kernels_of
from acomp.internal import CryptoModule, ScompAlg, crypto_register_scomp, crypto_unregister_scomp
from acomp.testing import CheckSkipped, conformance, conformance_eras, driver_eras

IN_TREE = ("lz4-scomp", "lz4hc-scomp", "lzo-scomp", "zstd-scomp", "deflate-scomp",
           "zstd-generic", "deflate-generic")
#: The kernel each in-tree driver is checked at in each era, oldest era first (None: not in
#: it): the era's newest kernel the driver is in. deflate is native acomp from 6.16, zstd from
#: 6.17; lz4, lz4hc and lzo are scomp in every era.
EVERY = ("5.11", "6.14", "6.15", "6.17", "7.0")
KERNELS: dict[str, tuple[str | None, ...]] = {
    "deflate-scomp": ("5.11", "6.14", "6.15", None, None),
    "deflate-generic": (None, None, None, "6.17", "7.0"),
    "zstd-scomp": ("5.11", "6.14", "6.15", "6.16", None),
    "zstd-generic": (None, None, None, "6.17", "7.0"),
}
PAGE = (b"vectors in every era " * 300)[: acomp.PAGE_SIZE]


def test_eras_of_reads_names_versions_and_all() -> None:
    assert [e.name for e in eras_of(("6.16", "5.12-6.14", "6.17"))] == ["5.12-6.14",
                                                                         "6.16-6.17"]
    assert eras_of("all") == ERAS
    assert [e.kernel for e in ERAS] == ["5.11", "6.14", "6.15", "6.17", "7.0"]
    with pytest.raises(UnsupportedKernel, match=r"4\.19 is not modelled"):
        eras_of(("4.19",))


class _Copy(ScompAlg):
    """A trivial codec (a copy), so that only its eras matter."""

    cra_name = "eracopy"
    cra_priority = 0

    def compress(self, tfm: Any, src: memoryview, dst: memoryview, ctx: Any) -> int:
        if len(src) > len(dst):
            return -errno.ENOSPC
        dst[: len(src)] = src
        return len(src)

    decompress = compress


class OldOnly(_Copy):
    cra_driver_name = "eracopy-old"
    cra_eras = ("5.11", "5.12-6.14")


@pytest.fixture
def old_only() -> Iterator[OldOnly]:
    alg = OldOnly()
    assert crypto_register_scomp(alg) == 0
    yield alg
    assert crypto_unregister_scomp(alg) == 0


@pytest.mark.parametrize(("version", "found"), [
    ("5.11", True), ("6.1", True), ("6.14", True), ("6.15", False), ("6.16", False),
    ("7.0", False),
])
def test_a_driver_is_found_only_in_the_eras_it_supports(old_only: OldOnly, version: str,
                                                       found: bool) -> None:
    """In an era the driver does not declare, crypto_alloc_acomp does not find it (-ENOENT),
    as a module built for another kernel does not load; the reason names its eras."""
    with acomp.using_kernel(version):
        if found:
            tfm = acomp.crypto_alloc_acomp("eracopy-old")
            assert acomp.crypto_has_acomp("eracopy")
            acomp.crypto_free_acomp(tfm)
            return
        with pytest.raises(acomp.CryptoError) as ei:
            acomp.crypto_alloc_acomp("eracopy")
        assert ei.value.err == -errno.ENOENT
        why = kmod.module_reason("eracopy-old")
        assert f"supports kernel 5.11, 5.12 - 6.14; kernel {version} is modelled" in why


def test_registration_refuses_an_era_no_kernel_has() -> None:
    class Bad(_Copy):
        cra_driver_name = "eracopy-bad"
        cra_eras = ("4.4",)

    assert crypto_register_scomp(Bad()) == -errno.EINVAL


def test_a_module_gives_its_eras_to_the_algorithms_it_registers() -> None:
    """CryptoModule(eras=...): what the module's init registers takes them, unless an
    algorithm declares its own (cra_eras); acomp list shows them."""

    class Mine(_Copy):
        cra_driver_name = "eracopy-mod"

    algs = [Mine(), OldOnly()]

    def init(mod: CryptoModule) -> int:
        for a in algs:
            assert crypto_register_scomp(a) == 0
        return 0

    def exit(mod: CryptoModule) -> None:
        for a in algs:
            crypto_unregister_scomp(a)

    mod = CryptoModule("eracopy", ("eracopy",), init, exit, eras=("6.15", "6.18"))
    assert kmod.load_module(mod) == 0
    try:
        assert [e.name for e in algs[0].eras] == ["6.15", "6.18-7.0"]
        assert [e.name for e in algs[1].eras] == ["5.11", "5.12-6.14"]  # its own
        assert kmod.module_eras(mod) == "6.15, 6.18 - 7.0"
        assert [e.name for e in driver_eras("eracopy-mod")] == ["6.15", "6.18-7.0"]
        assert driver_eras("lz4-scomp") == ERAS  # declares none: every era
        with acomp.using_kernel("6.18"):
            tfm = acomp.crypto_alloc_acomp("eracopy")
            assert acomp.crypto_acomp_driver_name(tfm) == "eracopy-mod"
            acomp.crypto_free_acomp(tfm)
        labels = [c.label for c in conformance_eras("eracopy-mod")]
        per_era = len(conformance("eracopy-mod"))
        assert len(labels) == 2 * per_era
        assert labels[0] == "eracopy-mod@6.15:selftest"
        assert labels[per_era] == "eracopy-mod@6.18-7.0:selftest"
        assert {c.kernel for c in conformance_eras("eracopy-mod")} == {"6.15", "7.0"}
    finally:
        kmod.unload_module(mod)
        # rmmod leaves it known: a later lookup of "eracopy" would load it again (and leave
        # eracopy-mod registered); the module is this test's own, so it goes with it
        kmod._modules.pop(mod.name, None)


def test_the_rle_example_declares_every_era() -> None:
    mods = kmod.all_modules()
    assert "rle" in mods, "examples/my_driver is not installed: pip install -e examples/my_driver"
    assert kmod.module_eras(mods["rle"]) == ", ".join(str(e) for e in ERAS)


def _alg(driver: str) -> Any:
    """The driver's algorithm, its module loaded (self-tested in a kernel it is in)."""
    kmod.request_module(driver)
    with crypto_alg_sem:
        alg = next((a for a in crypto_alg_list if a.cra_driver_name == driver and not a.dead),
                   None)
    if alg is None:
        pytest.skip(f"{driver}: not registered ({kmod.module_reason(driver)})")
    return alg


@pytest.mark.parametrize("driver", IN_TREE)
def test_each_driver_is_checked_in_each_era_at_the_kernel_it_has(driver: str) -> None:
    """kmod.alg_kernel_in / conformance_eras: the table above, from the drivers' cra_kernels."""
    alg = _alg(driver)
    want = KERNELS.get(driver, EVERY)
    assert tuple(kmod.alg_kernel_in(alg, e) for e in ERAS) == want
    assert [e.name for e in driver_eras(driver)] == [e.name for e, k in zip(ERAS, want,
                                                                             strict=True) if k]
    assert sorted({c.kernel or "" for c in conformance_eras(driver)}) == sorted(
        k for k in want if k)


@pytest.mark.parametrize(("driver", "version"), [
    (d, k) for d in IN_TREE for k in KERNELS.get(d, EVERY) if k])
def test_the_testmgr_vectors_pass_in_every_era(driver: str, version: str) -> None:
    """crypto/testmgr.c test_acomp with each era's submission path (and, for deflate-generic
    and zstd-generic, the native drivers' walks): the vectors (compression by round trip,
    decompression byte for byte, the short-dst extras) pass in every era the driver is in."""
    alg = _alg(driver)
    assert alg.selftest == TEST_PASSED
    with acomp.using_kernel(version):
        ok, log = testmgr.alg_test(alg)
        assert ok, log
        tfm = acomp.crypto_alloc_acomp(driver)
        assert tfm.kernel == acomp.eras.parse_kernel(version)  # the kernel really was used
        acomp.crypto_free_acomp(tfm)


@pytest.mark.anyio
@pytest.mark.parametrize("check", [pytest.param(c, id=c.label) for d in (
    "deflate-generic", "zstd-generic") for c in conformance_eras(d)])
async def test_the_native_drivers_pass_the_conformance_suite_in_their_eras(check: Any) -> None:
    """The driver kit's checks on deflate-generic and zstd-generic, each era at its kernel;
    the interoperability checks with <name>-scomp skip there (no scomp driver of the name in
    those kernels: tests/core/test_native_drivers.py checks it across kernels)."""
    try:
        await check.arun()
    except CheckSkipped as e:
        assert "no generic driver" in str(e)  # noqa: PT017 - the only allowed skip here
        pytest.skip(str(e))


@pytest.mark.anyio
@pytest.mark.parametrize("version", ["6.14", "6.15", "6.16", "7.0"])
async def test_the_python_layer_gives_the_output_buffer_from_6_15(version: str) -> None:
    """v6.15 removed CRYPTO_ACOMP_ALLOC_OUTPUT: Compressor.compress passes a buffer of its own
    there (the driver allocated it before); the results are the same in every era."""
    with acomp.using_kernel(version):
        async with acomp.open("lz4") as c:
            assert c._alloc_output is (version == "6.14")
            blob = await c.compress(PAGE)
            assert await c.decompress(blob, len(PAGE)) == PAGE
            with pytest.raises(acomp.BadData):
                await c.decompress(b"\xff" * 40, len(PAGE))
            with pytest.raises(acomp.OutputTooSmall):
                await c.decompress(blob, len(PAGE) - 1)


# --------------------------------------------------------------------------------------------
# Versions, finer than eras (cra_kernels, CryptoModule.kernels): zstd is scomp up to 6.16 and
# native acomp from 6.17, inside the 6.16 - 6.17 era.


def test_kernels_of_reads_versions_and_ranges() -> None:
    assert kernels_of("6.17") == (((6, 17), (6, 17)),)
    assert kernels_of("6.17-") == (((6, 17), (7, 0)),)
    assert kernels_of("-6.16") == (((5, 11), (6, 16)),)
    assert kernels_of(("6.16 - 6.17", "5.11")) == (((5, 11), (5, 11)), ((6, 16), (6, 17)))
    assert kernels_of("all") == (((5, 11), (7, 0)),)
    assert kernels_of("4.19-5.12") == (((5, 11), (5, 12)),)  # clipped to what is modelled
    for bad, why in (("4.4", "none is modelled"), ("6.17-6.16", "ends before it starts"),
                     ("6.99", "there is no kernel 6.99"), ("6.1-6.2-6.3", "FIRST-LAST")):
        with pytest.raises(UnsupportedKernel, match=why):
            kernels_of(bad)


class Since617(_Copy):
    cra_driver_name = "eracopy-new"
    cra_kernels = ("6.17-",)


class Until615(_Copy):
    cra_driver_name = "eracopy-old"
    cra_kernels = ("-6.15",)


@pytest.fixture
def since_617() -> Iterator[Since617]:
    alg = Since617()
    assert crypto_register_scomp(alg) == 0
    yield alg
    assert crypto_unregister_scomp(alg) == 0


@pytest.mark.parametrize(("version", "found"), [
    ("6.14", False), ("6.16", False), ("6.17", True), ("6.18", True), ("7.0", True)])
def test_a_lookup_follows_the_version_not_only_the_era(since_617: Since617, version: str,
                                                       found: bool) -> None:
    """6.16 and 6.17 are one era, yet a driver in 6.17 and later is not found in 6.16."""
    with acomp.using_kernel(version):
        assert acomp.crypto_has_acomp("eracopy") is found
        if not found:
            why = kmod.module_reason("eracopy-new")
            assert f"eracopy-new: supports kernel 6.17 - 7.0; kernel {version} is modelled" in why


def test_conformance_runs_in_each_era_at_the_newest_version_the_driver_is_in() -> None:
    """An scomp driver up to 6.15 is checked at 5.11, 6.14 and 6.15, never in 6.16 - 6.17
    or 6.18 - 7.0; one from 6.17 at 6.17 (the 6.16 - 6.17 era's newest) and 7.0."""
    old, new = Until615(), Since617()
    for alg in (old, new):
        assert crypto_register_scomp(alg) == 0
    try:
        assert [c.kernel for c in conformance_eras("eracopy-old")][::len(conformance("x"))] == [
            "5.11", "6.14", "6.15"]
        assert [e.name for e in driver_eras("eracopy-new")] == ["6.16-6.17", "6.18-7.0"]
        assert {c.kernel for c in conformance_eras("eracopy-new")} == {"6.17", "7.0"}
        # /proc/crypto lists what the kernel modelled has (crypto/proc.c walks one kernel's
        # crypto_alg_list): the old one in 6.15, the new one in 6.17, never both
        for version, shown, hidden in (("6.15", "eracopy-old", "eracopy-new"),
                                       ("6.17", "eracopy-new", "eracopy-old")):
            with acomp.using_kernel(version):
                text = acomp.proc_crypto()
            assert f"driver       : {shown}\n" in text
            assert f"driver       : {hidden}\n" not in text
    finally:
        for alg in (old, new):
            assert crypto_unregister_scomp(alg) == 0


def test_a_module_gives_its_kernels_and_the_crypto_manager_tests_in_one_of_them() -> None:
    """CryptoModule(kernels=...) as CryptoModule(eras=...); an algorithm registered while a
    kernel it is not in is modelled is self-tested in the newest kernel it is in
    (kmod.tested_in_supported_kernel), as a module is tested on the kernel it was built for."""
    seen: list[str] = []

    class Mine(_Copy):
        cra_driver_name = "eracopy-mod"

    alg = Mine()

    def init(mod: CryptoModule) -> int:
        assert crypto_register_scomp(alg) == 0
        with kmod.tested_in_supported_kernel(alg):
            seen.append(acomp.kernel())
        return 0

    mod = CryptoModule("eracopy", ("eracopy",), init,
                       lambda m: crypto_unregister_scomp(alg), kernels=("-6.16",))
    with acomp.using_kernel("7.0"):
        assert kmod.load_module(mod) == 0
    try:
        assert alg.kernels == (((5, 11), (6, 16)),)
        assert seen == ["6.16"]
        assert kmod.module_eras(mod) == "all; kernels 5.11 - 6.16"
        assert acomp.kernel() == "6.14"
        with kmod.tested_in_supported_kernel(alg):
            assert acomp.kernel() == "6.14"  # it is in the kernel modelled: nothing changes
    finally:
        kmod.unload_module(mod)
        kmod._modules.pop(mod.name, None)


def test_registration_refuses_versions_no_kernel_has() -> None:
    class Bad(_Copy):
        cra_driver_name = "eracopy-bad"
        cra_kernels = ("-4.4",)

    assert crypto_register_scomp(Bad()) == -errno.EINVAL
