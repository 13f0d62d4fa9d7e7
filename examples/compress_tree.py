#!/usr/bin/env python3
"""Compress a directory tree into standard LZ4 frames through the acomp API, and back.

An example of the users' layer (`acomp`, the kernel-style API): the blocks of each file are
compressed as LZ4 blocks by whichever driver ``crypto_alloc_acomp("lz4")`` picks (the GPU's
``lz4-opencl`` where one is present and passed its self-test, else ``lz4-scomp``), many
requests in flight, and put into standard LZ4 frames (lz4_Frame_format.md). The well-kept
libraries do what they do: python-lz4's `lz4.frame` writes and reads the frame header (magic,
FLG/BD, content size, header checksum) and `xxhash` computes the checksums; this script writes
only what the driver's blocks need around them: each block's size word (a block that does not
shrink is stored uncompressed, the size's high bit set), the end mark and the optional content
checksum. The ``lz4`` command-line tool reads the result (``lz4 -d -c file.lz4``).

    python examples/compress_tree.py SRC_DIR OUT_DIR               # SRC/a/b -> OUT/a/b.lz4
    python examples/compress_tree.py --decompress OUT_DIR BACK_DIR  # OUT/a/b.lz4 -> BACK/a/b

Decompression reads frames with independent blocks (this script's, ``lz4 -BI``'s), checks
every checksum present, and needs a driver that takes the frame's block size: the scomp
drivers handle blocks up to 128 KiB (``SCOMP_SCRATCH_SIZE``), so use ``lz4 -B4`` (64 KiB)
for frames meant for them.
"""

from __future__ import annotations

import argparse
import errno
import struct
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
import lz4.frame
import xxhash

import acomp

__all__ = ("FrameError", "compress_file", "decompress_file", "frame_header", "main")

MAGIC = 0x184D2204
SKIPPABLE_MASK = 0xFFFFFFF0
SKIPPABLE_MAGIC = 0x184D2A50
#: The block sizes a frame may declare, as python-lz4 names them.
BLOCK_SIZES = {64 << 10: lz4.frame.BLOCKSIZE_MAX64KB, 256 << 10: lz4.frame.BLOCKSIZE_MAX256KB,
               1 << 20: lz4.frame.BLOCKSIZE_MAX1MB, 4 << 20: lz4.frame.BLOCKSIZE_MAX4MB}
UNCOMPRESSED = 0x80000000
_FLG_CONTENT_SIZE, _FLG_DICT_ID = 1 << 3, 1


class FrameError(Exception):
    """Not an LZ4 frame, or one this script cannot read (linked blocks, a dictionary, ...)."""


def frame_header(content_size: int, block_size: int, content_checksum: bool) -> bytes:
    """The frame header (magic, FLG/BD, the content size, the header checksum) for independent
    blocks, written by python-lz4 (`lz4.frame.compress_begin`); only the header is used: the
    blocks come from the acomp driver."""
    ctx = lz4.frame.create_compression_context()
    return bytes(lz4.frame.compress_begin(
        ctx, source_size=content_size, block_size=BLOCK_SIZES[block_size], block_linked=False,
        content_checksum=content_checksum))


# --------------------------------------------------------------------------------------------
# Requests in flight


@dataclass
class _Job:
    req: acomp.AcompReq
    wait: acomp.CryptoWait
    ret: int
    src: bytes
    out: bytearray


class Pipeline:
    """Submit blocks to one transform with up to `inflight` requests queued; results in order.

    Each block is its own request (``sg_init_one`` over the block and over its output) with
    ``CRYPTO_TFM_REQ_MAY_BACKLOG``; `crypto_wait_req` waits for the oldest when the window
    is full, so an asynchronous driver sees many requests at once.
    """

    def __init__(self, tfm: acomp.CryptoAcomp, compress: bool, inflight: int) -> None:
        self.tfm = tfm
        self.compress = compress
        self.inflight = max(1, inflight)
        self.jobs: deque[_Job] = deque()

    def submit(self, src: bytes, cap: int) -> None:
        req = acomp.acomp_request_alloc(self.tfm)
        if req is None:
            raise MemoryError("acomp_request_alloc failed")
        wait = acomp.CryptoWait()
        out = bytearray(cap)
        acomp.acomp_request_set_params(req, acomp.sg_init_one(src), acomp.sg_init_one(out),
                                       len(src), cap)
        acomp.acomp_request_set_callback(req, acomp.CRYPTO_TFM_REQ_MAY_BACKLOG,
                                         acomp.crypto_req_done, wait)
        op = acomp.crypto_acomp_compress if self.compress else acomp.crypto_acomp_decompress
        self.jobs.append(_Job(req, wait, op(req), src, out))

    @property
    def full(self) -> bool:
        return len(self.jobs) >= self.inflight

    async def next(self) -> tuple[int, bytes, bytes]:
        """(status, output, input) of the oldest request, waiting for it if needed."""
        job = self.jobs.popleft()
        ret = await acomp.crypto_wait_req(job.ret, job.wait)
        out = bytes(job.out[: job.req.dlen]) if ret == 0 else b""
        if not job.req.in_flight:
            acomp.acomp_request_free(job.req)
        return ret, out, job.src


# --------------------------------------------------------------------------------------------
# Compression


async def _blocks(path: Path, size: int) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as f:
        while True:
            block = await f.read(size)
            if not block:
                return
            yield block


def _stored(block: bytes) -> bytes:
    return struct.pack("<I", len(block) | UNCOMPRESSED) + block


async def compress_file(tfm: acomp.CryptoAcomp, src: Path, dst: Path, *, block_size: int = 64 << 10,
                        inflight: int = 64, content_checksum: bool = False) -> int:
    """Write `src` as one LZ4 frame to `dst`; the bytes written."""
    size = (await anyio.Path(src).stat()).st_size
    pipe = Pipeline(tfm, True, inflight)
    written = 0
    content = xxhash.xxh32() if content_checksum else None
    async with await anyio.open_file(dst, "wb") as f:

        async def emit() -> None:
            nonlocal written
            ret, out, block = await pipe.next()
            # It would not shrink: store it. -ENOSPC from lzo and most devices; the kernel's
            # lz4 says -EINVAL for an output that does not fit, which for a valid block within
            # scomp's limit means exactly that.
            if ret == -errno.ENOSPC or (ret == -errno.EINVAL
                                        and 0 < len(block) <= acomp.SCOMP_SCRATCH_SIZE):
                chunk = _stored(block)
            elif ret:
                if ret == -errno.EINVAL and len(block) > acomp.SCOMP_SCRATCH_SIZE:
                    raise SystemExit(f"{acomp.crypto_acomp_driver_name(tfm)} refuses blocks of "
                                     f"{len(block)} bytes (scomp takes at most "
                                     f"{acomp.SCOMP_SCRATCH_SIZE}): use --block-size 64K")
                raise OSError(-ret, f"compressing a block of {src}: {acomp.errno_name(ret)}")
            else:
                chunk = struct.pack("<I", len(out)) + out
            await f.write(chunk)
            written += len(chunk)

        header = frame_header(size, block_size, content_checksum)
        await f.write(header)
        written += len(header)
        async for block in _blocks(src, block_size):
            if content is not None:
                content.update(block)
            if len(block) < 16:  # nothing to gain, and a 0-byte dst is invalid
                await _drain(pipe, emit)
                chunk = _stored(block)
                await f.write(chunk)
                written += len(chunk)
                continue
            if pipe.full:
                await emit()
            pipe.submit(block, len(block) - 1)  # compressed must be smaller, else stored
        await _drain(pipe, emit)
        tail = struct.pack("<I", 0)
        if content is not None:
            tail += struct.pack("<I", content.intdigest())
        await f.write(tail)
        written += len(tail)
    return written


async def _drain(pipe: Pipeline, emit: Callable[[], Awaitable[None]]) -> None:
    while pipe.jobs:
        await emit()


# --------------------------------------------------------------------------------------------
# Decompression


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise FrameError(f"truncated frame: {what} missing")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def u32(self, what: str) -> int:
        return int(struct.unpack("<I", self.take(4, what))[0])

    @property
    def left(self) -> int:
        return len(self.data) - self.pos


async def decompress_file(tfm: acomp.CryptoAcomp, src: Path, dst: Path, *,
                          inflight: int = 64) -> int:
    """Decode every frame in `src` (skippable frames skipped) into `dst`; bytes written."""
    r = _Reader(await anyio.Path(src).read_bytes())
    written = 0
    async with await anyio.open_file(dst, "wb") as f:
        while r.left:
            magic = r.u32("magic")
            if magic & SKIPPABLE_MASK == SKIPPABLE_MAGIC:
                r.take(r.u32("skippable size"), "skippable frame")
                continue
            if magic != MAGIC:
                raise FrameError(f"{src}: not an LZ4 frame (magic {magic:#010x})")
            written += await _frame(tfm, r, f, src, inflight)
    return written


async def _frame(tfm: acomp.CryptoAcomp, r: _Reader, f: anyio.AsyncFile[bytes], src: Path,
                 inflight: int) -> int:
    start = r.pos - 4  # the magic, already read
    try:  # python-lz4 reads the header and checks its version, block size and checksum
        info = lz4.frame.get_frame_info(memoryview(r.data)[start:])
    except RuntimeError as e:
        why = "header checksum mismatch" if "headerChecksum" in str(e) else f"bad header ({e})"
        raise FrameError(f"{src}: {why}") from None
    flg = r.data[r.pos] if r.left else 0
    if info["block_linked"]:
        raise FrameError(f"{src}: linked blocks (lz4 -BD) are not supported: each block must "
                         "decompress on its own")
    if flg & _FLG_DICT_ID:
        raise FrameError(f"{src}: frames with a dictionary are not supported")
    has_size = bool(flg & _FLG_CONTENT_SIZE)
    r.take(3 + (8 if has_size else 0), "frame header")  # FLG, BD[, size], header checksum
    block_checksum = bool(info["block_checksum"])
    block_max = int(info["block_size"])
    content_size = int(info["content_size"]) if has_size else None

    pipe = Pipeline(tfm, False, inflight)
    hasher = xxhash.xxh32() if info["content_checksum"] else None
    total = 0

    async def emit() -> None:
        ret, out, _ = await pipe.next()
        if ret:
            extra = ""
            if block_max > acomp.SCOMP_SCRATCH_SIZE and not acomp.acomp_is_async(tfm):
                extra = (f" (blocks of up to {block_max >> 10} KiB; "
                         f"{acomp.crypto_acomp_driver_name(tfm)} takes at most "
                         f"{acomp.SCOMP_SCRATCH_SIZE >> 10} KiB: compress with lz4 -B4)")
            raise FrameError(f"{src}: a block does not decompress: {acomp.errno_name(ret)}{extra}")
        await _out(out)

    async def _out(data: bytes) -> None:
        nonlocal total
        await f.write(data)
        total += len(data)
        if hasher is not None:
            hasher.update(data)

    while True:
        word = r.u32("block size")
        if word == 0:
            break
        n = word & ~UNCOMPRESSED
        if n > block_max:
            raise FrameError(f"{src}: block of {n} bytes exceeds the frame's maximum {block_max}")
        data = r.take(n, "block data")
        if block_checksum and r.u32("block checksum") != xxhash.xxh32_intdigest(data):
            raise FrameError(f"{src}: block checksum mismatch")
        if word & UNCOMPRESSED:
            while pipe.jobs:
                await emit()
            await _out(data)
            continue
        if pipe.full:
            await emit()
        pipe.submit(data, block_max)
    while pipe.jobs:
        await emit()
    if hasher is not None:
        if r.u32("content checksum") != hasher.intdigest():
            raise FrameError(f"{src}: content checksum mismatch")
    if content_size is not None and content_size != total:
        raise FrameError(f"{src}: content size {content_size} in the header, {total} decoded")
    return total


# --------------------------------------------------------------------------------------------
# The tree


def _size(text: str) -> int:
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 1 << 10, "M": 1 << 20}.get(t[-1:], 1)
    value = int(t[:-1] if t[-1:] in "KM" else t) * mult
    if value not in BLOCK_SIZES:
        raise argparse.ArgumentTypeError("block size must be 64K, 256K, 1M or 4M")
    return value


def _files(root: Path, suffix: str = "") -> list[Path]:
    return sorted(p for p in root.rglob("*")
                  if p.is_file() and not p.is_symlink() and p.name.endswith(suffix))


def plan(args: argparse.Namespace) -> list[tuple[Path, Path, int]]:
    """(source, target, source size) for every file, creating the target directories."""
    src, out = Path(args.src), Path(args.dst)
    jobs = []
    for path in _files(src, ".lz4" if args.decompress else ""):
        rel = path.relative_to(src)
        if args.decompress:
            target = out / rel.with_name(rel.name.removesuffix(".lz4"))
        else:
            target = out / rel.with_name(rel.name + ".lz4")
        target.parent.mkdir(parents=True, exist_ok=True)
        jobs.append((path, target, path.stat().st_size))
    return jobs


async def run(args: argparse.Namespace, jobs: list[tuple[Path, Path, int]]) -> int:
    try:
        tfm = acomp.crypto_alloc_acomp(args.driver)
    except acomp.CryptoError as e:
        print(f"compress_tree: no driver for {args.driver!r}: {e.strerror}", file=sys.stderr)
        return 2
    driver = acomp.crypto_acomp_driver_name(tfm)
    t0 = time.perf_counter()
    n_in = n_out = 0
    try:
        for path, target, size in jobs:
            if args.decompress:
                produced = await decompress_file(tfm, path, target, inflight=args.inflight)
            else:
                produced = await compress_file(tfm, path, target, block_size=args.block_size,
                                               inflight=args.inflight,
                                               content_checksum=args.content_checksum)
            n_in, n_out = n_in + size, n_out + produced
            if args.verbose:
                print(f"{path} -> {target} ({size} -> {produced} bytes)")
    except FrameError as e:
        print(f"compress_tree: {e}", file=sys.stderr)
        return 1
    finally:
        acomp.crypto_free_acomp(tfm)
    dt = time.perf_counter() - t0
    plain, packed = (n_out, n_in) if args.decompress else (n_in, n_out)
    verb = "decompressed" if args.decompress else "compressed"
    print(f"{verb} {len(jobs)} files with {driver}: {n_in} -> {n_out} bytes "
          f"(ratio {plain / packed if packed else 0.0:.2f}) in {dt:.2f}s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Compress a directory into LZ4 frames through acomp "
                                            "(or decompress them).")
    p.add_argument("src", help="directory to read")
    p.add_argument("dst", help="directory to write (mirrors src)")
    p.add_argument("-d", "--decompress", action="store_true", help="decompress .lz4 files")
    p.add_argument("--driver", default="lz4",
                   help="algorithm or driver (default lz4: the highest-priority driver)")
    p.add_argument("--block-size", type=_size, default=64 << 10, metavar="SIZE",
                   help="64K (default), 256K, 1M or 4M (the scomp drivers take at most 128K)")
    p.add_argument("--inflight", type=int, default=64, help="requests in flight (default 64)")
    p.add_argument("--content-checksum", action="store_true",
                   help="append the frame's content checksum (xxh32 of the whole file)")
    p.add_argument("-v", "--verbose", action="store_true", help="print one line per file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not Path(args.src).is_dir():
        print(f"compress_tree: {args.src} is not a directory", file=sys.stderr)
        return 2
    return anyio.run(run, args, plan(args))


if __name__ == "__main__":
    sys.exit(main())
