"""Algorithm and device drivers, each a module loaded through the ``acomp.drivers`` entry points.

Installed as ``acomp_drivers`` (the folder is drivers/): a top-level ``drivers`` would clash with
other distributions' (docs/design.md).

CPU drivers (scomp, priority 0, the kernel's names): `lz4`, `lz4hc`, `lzo`, `zstd`, `deflate`.
Device driver (acomp, ``CRYPTO_ALG_ASYNC``, priority 300 on a GPU, 0 on a CPU): `lz4_opencl`.
"""
