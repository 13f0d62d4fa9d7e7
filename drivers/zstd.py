"""zstd-scomp: Zstandard level 3, the kernel's default (``crypto/zstd.c``), via zstandard.

Each request context holds its own compressor and decompressor, as the kernel's workspace.
"""

from __future__ import annotations

from typing import Any

from ._scomp import LibScomp, scomp_module

ZSTD_DEF_LEVEL = 3


def _make() -> list[Any]:
    import zstandard

    def alloc() -> Any:
        return (zstandard.ZstdCompressor(level=ZSTD_DEF_LEVEL), zstandard.ZstdDecompressor())

    def compress(ctx: Any, src: memoryview) -> bytes:
        return ctx[0].compress(src)  # type: ignore[no-any-return]

    def decompress(ctx: Any, src: memoryview, cap: int) -> bytes:
        # A frame header may claim any content size, and python-zstandard allocates what it
        # claims (MemoryError past what the machine can map): refuse it first.
        if zstandard.frame_content_size(src) > cap:
            raise zstandard.ZstdError("content size larger than capacity")
        try:
            # zstd_decompress_dctx decodes the whole input or fails: no bytes left over.
            out = ctx[1].decompress(src, max_output_size=cap, allow_extra_data=False)
        except zstandard.ZstdError as e:
            if "unused data" not in str(e):
                raise
            out = _frames(ctx[1], src, cap)  # several frames, or junk after the first
        if len(out) > cap:
            raise zstandard.ZstdError("output larger than capacity")
        return out  # type: ignore[no-any-return]

    def _frames(dctx: Any, src: memoryview, cap: int) -> bytes:
        """The kernel's ZSTD_decompressMultiFrame: every frame in turn until the input is
        consumed; anything that is not a whole frame is an error. Input is fed in small
        pieces so a frame that expands enormously stops at `cap`, not at the machine's end."""
        out = bytearray()
        rest = bytes(src)
        while rest:
            obj = dctx.decompressobj()
            pos = 0
            while not obj.eof:
                if pos >= len(rest):
                    raise zstandard.ZstdError("truncated frame")
                out += obj.decompress(rest[pos : pos + 256])
                pos += 256
                if len(out) > cap:
                    raise zstandard.ZstdError("output larger than capacity")
            rest = obj.unused_data + rest[pos:]
        return bytes(out)

    class ZstdScomp(LibScomp):
        cra_name = "zstd"
        cra_driver_name = "zstd-scomp"
        cra_module = "zstd"
        lib_errors = (zstandard.ZstdError,)
        batch_parallel = "threads"

    return [ZstdScomp(compress, decompress, alloc)]


MODULE = scomp_module("zstd", ("zstd", "zstd-scomp"), _make, "zstandard")
