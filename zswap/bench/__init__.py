"""The zswap layer's benches and workloads, above `zswap` (and the crypto layer's bench).

No kernel counterpart. The modules:

- `zswap.bench.mode`: the bench's ``zswap`` mode (``python -m acomp.bench zswap``): zswap under
  memory pressure, its store+load cycle against bare lz4, concurrent stores. It registers
  itself in the ``acomp.bench_modes`` entry-point group; ``acomp.bench`` never imports zswap.
- `zswap.bench.workload`: a process whose working set is larger than RAM, swapping through
  zswap (used by the mode and by ``examples/zswap_pressure.py``).
- `zswap.bench.zpool`: density and cost of the zpool backends (``python -m zswap.bench.zpool``).
- `zswap.bench.folio`: large-folio swap-outs, batched or page at a time (pages/s, per-folio
  store latency, the compressor's share; ``scripts/zswap-folios`` runs the issue-13 goals).
- `zswap.bench.stores`: concurrent stores per number of virtual CPUs, plain text for the GPU
  machine (``scripts/zswap-stores`` runs it).
"""
