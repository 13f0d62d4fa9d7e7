"""The bench: throughput, latency and framework cost of acomp drivers, verified round trips.

Sits above the users' API (`acomp`, `acomp.batch`, `acomp.api`); no kernel counterpart (it
plays the part of lzbench and DPDK's compress-perf). ``python -m acomp.bench`` runs every
available driver on the built-in corpus; ``--help`` lists the modes:

- ``throughput`` (default): every page as its own request through ``crypto_acomp_compress``
  and ``crypto_wait_req``, best of ``--repeat`` passes; GB/s, pages/s, ratio, p50/p99 latency
  per request, and each throughput as a ratio to the baseline (lz4-scomp) of the same run.
- ``batch``: a batch-size sweep through ``crypto_acomp_batch_compress``.
- ``concurrency``: an in-flight sweep through ``Compressor.compress_many(limit=k)``.
- ``latency``: p50, p90, p99 and p99.9 per request.
- ``overhead``: lz4, lzo and zstd through acomp as zswap calls it vs their library directly.
- plug-ins: modes published by packages above this layer under the ``acomp.bench_modes``
  entry points (`acomp.bench.modes`); zswap's bench is one (``python -m acomp.bench zswap``,
  `zswap.bench.mode`). The crypto layer's bench imports none of its consumers.

Each mode is a subcommand with its own flags (``python -m acomp.bench MODE --help``);
``--mode MODE`` is the same. The modules: `cli` (the command line), `modes` (the plug-in
interface), `measure` (the timed, verified passes), `cpucores` (lz4 on every core at once),
`drivers` (which drivers run), `report` (header, tables, plots). The pages come from
`acomp.corpus`. Nothing here is imported by ``import acomp``.
"""

from __future__ import annotations

from acomp.bench.cli import main

__all__ = ("main",)
