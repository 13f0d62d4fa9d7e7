"""examples/compress_tree.py: LZ4 frames through acomp that the lz4 tool reads, and back."""

from __future__ import annotations

import importlib.util
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import lz4.frame
import numpy as np
import pytest
import xxhash

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
LZ4_TOOL = shutil.which("lz4")


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compress_tree", EXAMPLES / "compress_tree.py")
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["compress_tree"] = mod
    spec.loader.exec_module(mod)
    return mod


ct = _load()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    src = tmp_path / "src"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "text.txt").write_bytes(b"kernel memory page swap compress " * 7000)  # 4 blocks
    (src / "sub" / "random.bin").write_bytes(rng.integers(0, 256, 150_000, np.uint8).tobytes())
    (src / "sub" / "deeper" / "zeros").write_bytes(bytes(65536 * 2 + 5))
    (src / "sub" / "tiny").write_bytes(b"abc")
    (src / "empty").write_bytes(b"")
    mixed = rng.integers(0, 4, 70_000, np.uint8).tobytes() + rng.integers(0, 256, 70_000,
                                                                           np.uint8).tobytes()
    (src / "mixed.bin").write_bytes(mixed)
    return src


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_the_frame_header_is_python_lz4s_with_the_content_size_and_checksum_flag() -> None:
    h = ct.frame_header(150_000, 64 << 10, True)
    assert h[:4] == struct.pack("<I", 0x184D2204)
    assert h[4] == 0b0110_1100  # version 01, independent blocks, content size, content checksum
    assert struct.unpack_from("<Q", h, 6)[0] == 150_000
    assert h[14] == (xxhash.xxh32_intdigest(h[4:14]) >> 8) & 0xFF
    info = lz4.frame.get_frame_info(h)
    assert (info["block_size"], info["block_linked"], info["content_checksum"]) == (
        64 << 10, False, True)


@pytest.mark.parametrize("checksum", [False, True])
def test_round_trip_and_the_lz4_tool_reads_it(tree: Path, tmp_path: Path,
                                              checksum: bool) -> None:
    out, back = tmp_path / "out", tmp_path / "back"
    argv = [str(tree), str(out)] + (["--content-checksum"] if checksum else [])
    assert ct.main(argv) == 0
    originals = _files(tree)
    frames = _files(out)
    assert set(frames) == {k + ".lz4" for k in originals}
    for name, data in originals.items():
        frame = frames[name + ".lz4"]
        assert frame[:4] == struct.pack("<I", 0x184D2204)
        assert lz4.frame.decompress(frame) == data  # the reference library agrees
        if LZ4_TOOL:
            r = subprocess.run([LZ4_TOOL, "-d", "-c", str(out / (name + ".lz4"))],
                               capture_output=True, timeout=60)
            assert r.returncode == 0, r.stderr
            assert r.stdout == data, name
    assert len(frames["text.txt.lz4"]) < len(originals["text.txt"]) // 10
    assert ct.main(["--decompress", str(out), str(back)]) == 0
    assert _files(back) == originals


@pytest.mark.skipif(LZ4_TOOL is None, reason="the lz4 command-line tool is not installed")
def test_lz4_tool_test_mode_accepts_every_frame(tree: Path, tmp_path: Path) -> None:
    assert ct.main([str(tree), str(tmp_path / "o"), "--content-checksum"]) == 0
    frames = sorted(str(p) for p in (tmp_path / "o").rglob("*.lz4"))
    r = subprocess.run([LZ4_TOOL, "-t", "-m", *frames], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_incompressible_blocks_are_stored(tree: Path, tmp_path: Path) -> None:
    assert ct.main([str(tree), str(tmp_path / "o")]) == 0
    frame = (tmp_path / "o" / "sub" / "random.bin.lz4").read_bytes()
    flg, bd = frame[4], frame[5]
    assert flg == 0b0110_1000  # version 01, independent blocks, content size
    assert bd == 4 << 4  # 64 KiB blocks
    assert struct.unpack_from("<Q", frame, 6)[0] == 150_000
    assert frame[14] == (xxhash.xxh32_intdigest(frame[4:14]) >> 8) & 0xFF
    pos, stored = 15, []
    while (word := struct.unpack_from("<I", frame, pos)[0]) != 0:
        stored.append(bool(word & 0x80000000))
        pos += 4 + (word & 0x7FFFFFFF)
    assert stored == [True, True, True]
    assert pos + 4 == len(frame)
    mixed = (tmp_path / "o" / "mixed.bin.lz4").read_bytes()
    assert 0 < len(mixed) < 140_000


def test_reads_frames_the_lz4_tool_wrote(tree: Path, tmp_path: Path) -> None:
    if LZ4_TOOL is None:
        pytest.skip("the lz4 command-line tool is not installed")
    cli = tmp_path / "cli"
    cli.mkdir()
    for name, opts in (("text.txt", ["-B4", "-BX"]), ("sub/random.bin", ["-B4"]),
                       ("mixed.bin", ["-B4", "--content-size"])):
        target = cli / (Path(name).name + ".lz4")
        subprocess.run([LZ4_TOOL, "-q", "-f", *opts, str(tree / name), str(target)],
                       check=True, timeout=60)
    assert ct.main(["-d", str(cli), str(tmp_path / "back")]) == 0
    for name in ("text.txt", "sub/random.bin", "mixed.bin"):
        assert (tmp_path / "back" / Path(name).name).read_bytes() == (tree / name).read_bytes()


def test_refuses_what_it_cannot_read(tree: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "linked.lz4").write_bytes(lz4.frame.compress(b"x" * 200_000,
                                                        block_linked=True,
                                                        block_size=lz4.frame.BLOCKSIZE_MAX64KB))
    assert ct.main(["-d", str(bad), str(tmp_path / "b1")]) == 1
    assert "linked blocks" in capsys.readouterr().err
    (bad / "linked.lz4").write_bytes(b"not a frame at all")
    assert ct.main(["-d", str(bad), str(tmp_path / "b2")]) == 1
    assert "not an LZ4 frame" in capsys.readouterr().err
    good = bytearray(lz4.frame.compress(b"y" * 1000, block_linked=False, content_checksum=True))
    good[-9] ^= 0xFF  # the last byte of the block: bad data or a checksum mismatch
    (bad / "linked.lz4").write_bytes(bytes(good))
    assert ct.main(["-d", str(bad), str(tmp_path / "b3")]) == 1
    assert ct.main([str(tmp_path / "nope"), str(tmp_path / "b4")]) == 2


def test_checksums_are_checked(tree: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    assert ct.main([str(tree), str(tmp_path / "o"), "--content-checksum"]) == 0
    frame = (tmp_path / "o" / "text.txt.lz4").read_bytes()
    data = (tree / "text.txt").read_bytes()
    assert struct.unpack("<I", frame[-4:])[0] == xxhash.xxh32_intdigest(data)
    bad = tmp_path / "bad"
    bad.mkdir()
    for n, (pos, what) in enumerate(((14, "header"), (-1, "content"))):
        broken = bytearray(frame)
        broken[pos] ^= 0x5A
        (bad / "text.txt.lz4").write_bytes(bytes(broken))
        assert ct.main(["-d", str(bad), str(tmp_path / f"b{n}")]) == 1
        assert f"{what} checksum mismatch" in capsys.readouterr().err
    blocks = lz4.frame.compress(data, block_linked=False, block_checksum=True,
                                block_size=lz4.frame.BLOCKSIZE_MAX64KB)
    (bad / "text.txt.lz4").write_bytes(blocks)
    assert ct.main(["-d", str(bad), str(tmp_path / "b3")]) == 0
    assert (tmp_path / "b3" / "text.txt").read_bytes() == data
    broken = bytearray(blocks)
    broken[-9] ^= 0x5A  # the last block's checksum (an end mark follows, no content checksum)
    (bad / "text.txt.lz4").write_bytes(bytes(broken))
    assert ct.main(["-d", str(bad), str(tmp_path / "b4")]) == 1
    assert "block checksum mismatch" in capsys.readouterr().err


def test_every_flag_has_help() -> None:
    for action in ct.build_parser()._actions:
        assert action.help, action.option_strings or action.dest


def test_runs_as_a_script(tree: Path, tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, str(EXAMPLES / "compress_tree.py"), str(tree),
                        str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "compressed 6 files with lz4-" in r.stdout
