"""acomp.testing.FakeAsyncDriver does what its script says, and the pytest plugin works."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import lz4.block
import pytest

import acomp
from acomp.eras import ERAS
from acomp.testing import FakeAsyncDriver, Step, conformance, conformance_eras, run_conformance

pytestmark = pytest.mark.anyio

DATA = b"the quick brown fox jumps over the lazy dog " * 90
EINPROGRESS, EBUSY, ENOSPC, EIO = -errno.EINPROGRESS, -errno.EBUSY, -errno.ENOSPC, -errno.EIO


@pytest.fixture
def fake_factory() -> Iterator[Callable[..., FakeAsyncDriver]]:
    made: list[FakeAsyncDriver] = []

    def make(*args: Any, **kwargs: Any) -> FakeAsyncDriver:
        kwargs.setdefault("name", "fake")
        kwargs.setdefault("driver", f"fake-async-{len(made)}")
        f = FakeAsyncDriver(*args, **kwargs)
        f.register()
        made.append(f)
        return f

    yield make
    for f in reversed(made):
        f.unregister()


class Submitted:
    """One request over the kernel API with a recording callback."""

    def __init__(self, tfm: acomp.CryptoAcomp, flags: int = acomp.CRYPTO_TFM_REQ_MAY_BACKLOG,
                 data: bytes = DATA, cap: int = 8192, compress: bool = True) -> None:
        self.calls: list[int] = []
        self.threads: list[int] = []
        self.wait = acomp.CryptoWait()
        self.out = bytearray(cap)
        self.req = acomp.acomp_request_alloc(tfm)
        assert self.req is not None
        acomp.acomp_request_set_params(self.req, acomp.sg_init_one(data),
                                       acomp.sg_init_one(self.out), len(data), cap)
        acomp.acomp_request_set_callback(self.req, flags, self._done, None)
        op = acomp.crypto_acomp_compress if compress else acomp.crypto_acomp_decompress
        self.ret = op(self.req)

    def _done(self, data: Any, err: int) -> None:
        self.calls.append(err)
        self.threads.append(threading.get_ident())
        acomp.crypto_req_done(self.wait, err)

    async def result(self, limit: float = 5.0) -> int:
        return await acomp.crypto_wait_req(self.ret, self.wait, limit)

    def output(self) -> bytes:
        assert self.req is not None
        return bytes(self.out[: self.req.dlen])


async def test_registers_as_an_async_acomp_alg(
        fake_factory: Callable[..., FakeAsyncDriver]) -> None:
    fake = fake_factory(driver="fake-reg")
    tfm = acomp.crypto_alloc_acomp("fake-reg")
    try:
        assert acomp.acomp_is_async(tfm)
        assert acomp.crypto_acomp_driver_name(tfm) == "fake-reg"
        assert fake.selftest == "passed"
        assert "fake-reg" in acomp.proc_crypto()
    finally:
        acomp.crypto_free_acomp(tfm)


async def test_completes_from_another_thread_after_the_latency(
        fake_factory: Callable[..., FakeAsyncDriver]) -> None:
    fake = fake_factory([Step(latency=0.05)])
    tfm = acomp.crypto_alloc_acomp(fake.cra_driver_name)
    try:
        t = time.monotonic()
        s = Submitted(tfm)
        assert s.ret == EINPROGRESS
        assert await s.result() == 0
        assert time.monotonic() - t >= 0.045
        assert s.threads[0] != threading.get_ident()
        assert lz4.block.decompress(s.output(), uncompressed_size=len(DATA)) == DATA
        assert fake.statistics().completed == 1
    finally:
        acomp.crypto_free_acomp(tfm)


async def test_latencies_order_completions(fake_factory: Callable[..., FakeAsyncDriver]) -> None:
    fake = fake_factory([Step(latency=0.06), Step(latency=0.0), Step(latency=0.03)])
    tfm = acomp.crypto_alloc_acomp(fake.cra_driver_name)
    try:
        subs = [Submitted(tfm) for _ in range(3)]
        for s in subs:
            assert await s.result() == 0
        done = [n for what, n, _ in fake.events if what == "complete"]
        assert done == [1, 2, 0]
    finally:
        acomp.crypto_free_acomp(tfm)


async def test_backlogged_request_gets_the_notice_first(
        fake_factory: Callable[..., FakeAsyncDriver]) -> None:
    fake = fake_factory([Step(submit=EBUSY, backlog_delay=0.01, latency=0.01)])
    tfm = acomp.crypto_alloc_acomp(fake.cra_driver_name)
    try:
        s = Submitted(tfm)
        assert s.ret == EBUSY
        assert await s.result() == 0
        assert s.calls == [EINPROGRESS, 0]
        assert [e[0] for e in fake.events] == ["submit", "notice", "complete"]
        assert fake.statistics().backlogged == 1
    finally:
        acomp.crypto_free_acomp(tfm)


async def test_busy_without_backlog_flag_is_a_refusal(
        fake_factory: Callable[..., FakeAsyncDriver]) -> None:
    fake = fake_factory([Step(submit=EBUSY)])
    tfm = acomp.crypto_alloc_acomp(fake.cra_driver_name)
    try:
        s = Submitted(tfm, flags=0)
        assert s.ret == EBUSY
        await anyio.sleep(0.05)
        assert s.calls == []
        assert fake.statistics().rejected == 1
    finally:
        acomp.crypto_free_acomp(tfm)


async def test_scripted_failures(fake_factory: Callable[..., FakeAsyncDriver]) -> None:
    fake = fake_factory([Step(status=EIO), Step(submit=-errno.EINVAL), Step(submit=0)])
    tfm = acomp.crypto_alloc_acomp(fake.cra_driver_name)
    try:
        failed = Submitted(tfm)
        assert failed.ret == EINPROGRESS
        assert await failed.result() == EIO
        refused = Submitted(tfm)
        assert refused.ret == -errno.EINVAL
        sync = Submitted(tfm)
        assert sync.ret == 0
        await anyio.sleep(0.02)
        assert sync.calls == []  # a synchronous return calls no callback
        assert lz4.block.decompress(sync.output(), uncompressed_size=len(DATA)) == DATA
    finally:
        acomp.crypto_free_acomp(tfm)


async def test_failures_through_the_python_layer(
        fake_factory: Callable[..., FakeAsyncDriver]) -> None:
    fake = fake_factory([Step(status=EIO), Step(completions=0)])
    async with acomp.open(fake.cra_driver_name, timeout=0.1) as c:
        with pytest.raises(acomp.DeviceError, match="EIO"):
            await c.compress(DATA)
        with pytest.raises(acomp.DeviceError, match="no completion"):
            await c.compress(DATA)
        assert await c.decompress(await c.compress(DATA), len(DATA)) == DATA
        with pytest.raises(acomp.OutputTooSmall):
            await c.decompress(await c.compress(DATA), len(DATA) - 1)
        with pytest.raises(acomp.BadData):
            await c.decompress(b"\xff" * 40, len(DATA))
    assert fake.statistics().dropped == 1
    fake.release()


async def test_dropped_completion_times_out_and_stays_in_flight(
        fake_factory: Callable[..., FakeAsyncDriver]) -> None:
    fake = fake_factory([Step(completions=0)])
    tfm = acomp.crypto_alloc_acomp(fake.cra_driver_name)
    try:
        s = Submitted(tfm)
        assert await s.result(limit=0.05) == -errno.ETIMEDOUT
        assert s.req is not None
        assert s.req.in_flight  # the driver still owns it: the caller must not free it
        assert [e[0] for e in fake.events] == ["submit", "dropped"]
    finally:
        acomp.crypto_free_acomp(tfm)


async def test_duplicate_completion_calls_back_twice(
        fake_factory: Callable[..., FakeAsyncDriver]) -> None:
    fake = fake_factory([Step(completions=2)])
    tfm = acomp.crypto_alloc_acomp(fake.cra_driver_name)
    try:
        s = Submitted(tfm)
        assert await s.result() == 0
        assert fake.wait_idle()
        assert s.calls == [0, 0]  # the callback really ran twice
        # (whether crypto_wait_req's reinit_completion absorbed the second one depends on
        # whether it came before the waiter woke: tests/core/test_wait.py covers both cases)
        assert fake.statistics().duplicated == 1
    finally:
        acomp.crypto_free_acomp(tfm)


async def test_held_requests_wait_for_release_even_when_cancelled(
        fake_factory: Callable[..., FakeAsyncDriver]) -> None:
    fake = fake_factory([Step(latency=None)])
    tfm = acomp.crypto_alloc_acomp(fake.cra_driver_name)
    try:
        s = Submitted(tfm)
        assert fake.statistics().held == 1
        finished = anyio.Event()

        async def waiter() -> None:
            try:
                await s.result(limit=10)
            finally:
                finished.set()

        released = threading.Event()

        def release() -> None:
            released.set()
            fake.release()

        threading.Timer(0.1, release).start()
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(waiter)
                await anyio.sleep(0.01)
                scope.cancel()
        # The cancellation waited for the release: the request is complete, not abandoned
        # (a cancellation that did not wait leaves the scope long before the timer fires).
        assert released.is_set()
        assert finished.is_set()
        assert s.req is not None
        assert not s.req.in_flight
        assert s.calls == [0]
    finally:
        acomp.crypto_free_acomp(tfm)


async def test_queue_limit_backlogs_or_refuses(
        fake_factory: Callable[..., FakeAsyncDriver]) -> None:
    fake = fake_factory(default=Step(latency=None), max_queue=2)
    tfm = acomp.crypto_alloc_acomp(fake.cra_driver_name)
    try:
        a, b = Submitted(tfm), Submitted(tfm)
        c = Submitted(tfm)  # MAY_BACKLOG: backlogged
        d = Submitted(tfm, flags=0)  # refused
        assert [a.ret, b.ret, c.ret, d.ret] == [EINPROGRESS, EINPROGRESS, EBUSY, ENOSPC]
        assert fake.statistics().queued == 3
        assert fake.release(1) == 1
        assert await a.result() == 0
        assert fake.wait_idle()
        assert c.calls == [EINPROGRESS]  # it left the backlog when a slot freed
        fake.release()
        assert await b.result() == 0
        assert fake.wait_idle()
        fake.release()  # c was held after it left the backlog
        assert await c.result() == 0
        assert c.calls == [EINPROGRESS, 0]
        assert d.calls == []
        assert fake.statistics().queued == 0
    finally:
        acomp.crypto_free_acomp(tfm)


async def test_callable_script(fake_factory: Callable[..., FakeAsyncDriver]) -> None:
    def script(n: int, req: acomp.AcompReq, op: str) -> Step:
        return Step(status=EIO) if op == "decompress" else Step()

    fake = fake_factory(script)
    async with acomp.open(fake.cra_driver_name) as c:
        blob = await c.compress(DATA)
        with pytest.raises(acomp.DeviceError):
            await c.decompress(blob, len(DATA))


async def test_many_in_flight_through_compress_many(
        fake_factory: Callable[..., FakeAsyncDriver]) -> None:
    fake = fake_factory(default=Step(latency=0.002), max_queue=8)
    pages = [DATA[i:] + DATA[:i] for i in range(64)]
    async with acomp.open(fake.cra_driver_name) as c:
        blobs = await c.compress_many(pages, limit=32)
        assert await c.decompress_many(blobs, len(DATA), limit=32) == pages
    s = fake.statistics()
    assert s.backlogged > 0  # 32 in flight against a queue of 8
    assert s.completed == 128


def test_conformance_passes_for_a_well_behaved_fake(
        fake_factory: Callable[..., FakeAsyncDriver]) -> None:
    fake = fake_factory(name="lz4", driver="lz4-fake-good", default=Step(latency=0.0002),
                        max_queue=64)
    results = {r.check: r for r in run_conformance(fake.cra_driver_name)}
    assert {k: v.outcome for k, v in results.items()} == dict.fromkeys(results, "passed")
    assert "interop-to-generic" in results  # compared with lz4-scomp, both ways


@pytest.mark.parametrize(("step", "check", "words"), [
    (Step(completions=2), "backlog", "completed 2 times"),
    (Step(submit=EBUSY), "backlog", "every request was rejected"),
    (Step(latency=None), "roundtrip", "no completion"),
])
def test_conformance_catches_a_misbehaving_fake(
        fake_factory: Callable[..., FakeAsyncDriver], monkeypatch: pytest.MonkeyPatch,
        step: Step, check: str, words: str) -> None:
    from acomp.testing import checks

    monkeypatch.setattr(checks, "TIMEOUT", 0.2)
    fake = fake_factory(name="lz4", driver="lz4-fake-bad", default=step)
    c = next(c for c in conformance(fake.cra_driver_name) if c.name == check)
    r = c.result()
    assert r.outcome == "failed"
    assert words in r.message
    fake.release()


def test_plugin_fixture_makes_and_removes_fakes(
        acomp_fake_driver: Callable[..., FakeAsyncDriver]) -> None:
    fake = acomp_fake_driver(driver="fake-from-plugin")
    assert acomp.crypto_has_acomp("fake-from-plugin")
    assert fake.registered


def test_plugin_option_generates_a_test_per_check(tmp_path: Path) -> None:
    (tmp_path / "test_mine.py").write_text(
        "def test_named(acomp_driver):\n    assert acomp_driver == 'lz4-scomp'\n")
    env = {**os.environ, "ACOMP_NO_HW": "1"}
    # Every era the driver supports (lz4-scomp declares none: all of them), one item each.
    r = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p",
                        "no:cacheprovider", "--acomp-driver", "lz4-scomp", str(tmp_path)],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    for c in conformance_eras("lz4-scomp"):
        assert f"acomp-conformance[{c.label}]" in r.stdout
    assert len(conformance_eras("lz4-scomp")) == len(ERAS) * len(conformance("lz4-scomp"))
    # --acomp-kernel: one kernel only; run them (a v6.16 transform's API).
    r = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider",
                        "--acomp-driver", "lz4-scomp", "--acomp-kernel", "6.16", str(tmp_path)],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    for c in conformance("lz4-scomp"):
        assert f"acomp-conformance[lz4-scomp@6.16-6.17:{c.name}]" in r.stdout  # passed or skipped
    assert "test_mine.py::test_named[lz4-scomp] PASSED" in r.stdout
    # Without the option nothing is added and the fixture's tests are skipped.
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-rA", str(tmp_path)], capture_output=True, text=True, cwd=tmp_path,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "acomp-conformance" not in r.stdout
    assert "1 skipped" in r.stdout


def test_plugin_an_unknown_driver_is_one_usage_error(tmp_path: Path) -> None:
    env = {**os.environ, "ACOMP_NO_HW": "1"}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "--acomp-driver", "nosuch-scomp", str(tmp_path)],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert r.returncode == pytest.ExitCode.USAGE_ERROR, r.stdout + r.stderr
    err = r.stderr.strip().splitlines()
    assert err[-1].startswith("ERROR: --acomp-driver nosuch-scomp: no such driver or algorithm")
    assert "lz4-scomp" in err[-1]  # the drivers there are
    assert "failed" not in r.stdout  # no test ran, nothing failed one by one


@pytest.mark.parametrize(("name", "driver"), [("rle", "rle-scomp"), ("rle-scomp", "rle-scomp"),
                                              ("lz4", "lz4-scomp")])
def test_plugin_takes_the_bench_names(tmp_path: Path, name: str, driver: str) -> None:
    """A cra_name means the driver crypto_alloc_acomp picks, as in the bench."""
    (tmp_path / "test_mine.py").write_text(
        f"def test_named(acomp_driver):\n    assert acomp_driver == {driver!r}\n")
    env = {**os.environ, "ACOMP_NO_HW": "1"}
    r = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider",
                        "--acomp-driver", name, "--acomp-driver", driver,
                        "-k", "selftest or named", str(tmp_path)],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"acomp-conformance[{driver}@6.18-7.0:selftest] PASSED" in r.stdout  # every era
    assert f"test_mine.py::test_named[{driver}] PASSED" in r.stdout
    assert r.stdout.count("test_named[") == 1  # both names are one driver: run once
