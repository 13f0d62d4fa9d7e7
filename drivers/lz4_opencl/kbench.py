"""The kernel-variant comparison of scripts/opencl-kernel-bench --variants (one prepared run on
a lent GPU; tried on PoCL with small sizes).

It prints the device's extensions, checks the sub-group operations with the self-test kernel
(every implementation the device offers), then, for the classic and the subgroup kernels:
kernel GB/s per page kind and on the corpus mix, both directions (median of `repeat` runs,
OpenCL profiling events), an occupancy sweep of the subgroup kernels (pages per work-group,
hash-table size: local memory per page, the H100 model's pages per SM and the measured GB/s),
and a copy-only kernel of the subgroup launch shape (16-byte loads into local memory and
16-byte stores, nothing else) as the ceiling. Every variant's blocks are checked against
python-lz4 on a sample.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import lz4.block
import numpy as np
import numpy.typing as npt
import pyopencl as cl

from acomp import corpus

from .counts import DirectLaunch, h100_occupancy
from .device import KERNEL_SOURCE_SG, SG_IMPLS, Lz4Device, _build, lz4_bound

__all__ = ("expected_selftest", "run_variants", "selftest")

U8 = npt.NDArray[np.uint8]
U32 = npt.NDArray[np.uint32]
PAGE = corpus.PAGE_SIZE


def sg_impls(dev: cl.Device) -> list[str]:
    """The sub-group implementations a device can build (always 'local')."""
    found = ["local"]
    ext = set(dev.extensions.split())
    if {"cl_khr_subgroups", "cl_khr_subgroup_ballot", "cl_khr_subgroup_shuffle"} <= ext:
        found.append("khr")
    if "nvidia" in dev.platform.vendor.lower():
        found.append("ptx")
    return found


def expected_selftest(v: U32, idx: U32) -> U32:
    """What sg_selftest writes for every lane of each 32-lane group (see kernels_sg.cl)."""
    out = np.zeros((len(v), 8), np.uint64)
    lanes = np.arange(32, dtype=np.uint64)
    bits = np.uint64(1) << lanes
    for g in range(len(v) // 32):
        gv = v[32 * g : 32 * g + 32].astype(np.uint64)
        ballot = int(np.sum(bits[(gv & 1) == 1]))
        for i in range(32):
            row = out[32 * g + i]
            row[0] = ballot
            row[1] = int(np.sum(bits[gv == gv[i]]))
            row[2] = gv[int(idx[32 * g + i]) & 31]
            row[3] = int(np.sum(gv[: i + 1])) & 0xFFFFFFFF
            row[4] = int(np.sum(gv[:i])) & 0xFFFFFFFF
            row[5] = int(np.max(gv[: i + 1]))
            row[6] = g
            row[7] = i
    return out.astype(np.uint32).ravel()


SELFTEST_NAMES = ("ballot", "match", "shuffle", "scan", "xscan", "maxscan", "group", "lane")


def selftest(dev: cl.Device, impl: str, ppg: int | None = None) -> list[str]:
    """Run sg_selftest built for `impl` on inputs with many equal values, uniform groups,
    reversals; returns the mismatches ([] when every operation matches numpy)."""
    if ppg is None:
        ppg = 1 if impl == "local" else 2
    ctx = cl.Context([dev])
    opts = [f"-DPPG={ppg}", f"-DSG_IMPL={SG_IMPLS[::-1].index(impl)}"]
    if impl == "khr":
        opts.append("-cl-std=CL3.0" if "3." in dev.opencl_c_version else "-cl-std=CL2.0")
    prog = _build(ctx, KERNEL_SOURCE_SG, opts)
    q = cl.CommandQueue(ctx)
    rng = np.random.default_rng(7)
    n = 32 * 6 * ppg
    v = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    v[32:64] = rng.integers(0, 4, 32)  # match-any groups of several lanes
    v[64:96] = 5  # one value in every lane
    v[96:128] = np.arange(32)[::-1]  # a descending max-scan, alternating ballot
    v[128:160] = rng.integers(0, 2**20, 32)  # sums that do not wrap
    v[160:192] = 0
    idx = rng.integers(0, 32, n).astype(np.uint32)
    idx[64:96] = 31 - np.arange(32)  # a reversal
    mf = cl.mem_flags
    bv = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=v)
    bi = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=idx)
    out = np.zeros(8 * n, np.uint32)
    bo = cl.Buffer(ctx, mf.WRITE_ONLY, out.nbytes)
    prog.sg_selftest(q, (n,), (32 * ppg,), bv, bi, bo)
    cl.enqueue_copy(q, out, bo)
    q.finish()
    want = expected_selftest(v, idx)
    errors = []
    for k, name in enumerate(SELFTEST_NAMES):
        got, exp = out[k::8], want[k::8]
        bad = np.nonzero(got != exp)[0]
        if bad.size:
            i = int(bad[0])
            errors.append(f"{impl} {name}: lane {i} got {got[i]:#x}, want {exp[i]:#x}")
    return errors


def _median_gbs(launch: DirectLaunch, kernel: cl.Kernel, dev: Lz4Device, repeat: int,
                nbytes: int) -> float:
    launch.run(kernel, dev.lanes, dev.groups(launch.n))  # warm-up (lazy compilation)
    ns = [launch.run(kernel, dev.lanes, dev.groups(launch.n)) for _ in range(repeat)]
    return nbytes / max(1, int(statistics.median(ns)))


def _kind_pages(kind: str, n: int, base: U8, kinds: list[str]) -> U8:
    """n pages of one corpus kind ("mix": all kinds) from `base`, repeated as needed."""
    if kind == "mix":
        sel = base
    else:
        idx = [i for i, k in enumerate(kinds) if k == kind]
        sel = base[idx] if idx else base[:1]
    reps = -(-n // len(sel))
    return np.ascontiguousarray(np.tile(sel, (reps, 1))[:n])


def measure(dev: Lz4Device, pages: U8, repeat: int) -> dict[str, float]:
    """Kernel GB/s of both directions on `pages` (median of `repeat`), checked: sizes match
    the driver's, a sample decodes with python-lz4, the decoder restores the pages."""
    n = len(pages)
    nbytes = pages.nbytes
    bound = lz4_bound(PAGE)
    out, sizes = dev.compress(pages)
    assert (sizes > 0).all()
    for i in range(0, n, max(1, n // 32)):
        blk = out[i, : sizes[i]].tobytes()
        assert lz4.block.decompress(blk, uncompressed_size=PAGE) == pages[i].tobytes(), i
    kc = cl.Kernel(dev.program, "lz4_compress")
    kd = cl.Kernel(dev.program, "lz4_decompress")
    lc = DirectLaunch(dev, pages, np.full(n, PAGE, np.int32), bound, bound)
    c_gbs = _median_gbs(lc, kc, dev, repeat, nbytes)
    assert np.array_equal(lc.sizes(), sizes)
    ld = DirectLaunch(dev, out, sizes, PAGE, PAGE)
    d_gbs = _median_gbs(ld, kd, dev, repeat, nbytes)
    assert (ld.sizes() == PAGE).all()
    ref = sum(len(lz4.block.compress(p.tobytes(), store_size=False)) for p in pages[:2048])
    return {
        "compress_gbs": c_gbs,
        "decompress_gbs": d_gbs,
        "size_vs_lz4": int(sizes[:2048].sum()) / ref,
    }


def copy_ceiling(dev: Lz4Device, pages: U8, repeat: int) -> float:
    """GB/s (bytes in) of page_copy, the subgroup launch shape doing only the page's
    16-byte loads into local memory and 16-byte stores out."""
    assert dev.kernels == "subgroup"
    prog = _build(dev.ctx, KERNEL_SOURCE_SG, dev.build_options)
    k = cl.Kernel(prog, "page_copy")
    n = len(pages)
    lc = DirectLaunch(dev, pages, np.full(n, PAGE, np.int32), PAGE, PAGE)
    gbs = _median_gbs(lc, k, dev, repeat, pages.nbytes)
    assert (lc.sizes() == PAGE).all()
    return gbs


def run_variants(
    device: Any = None,
    *,
    pages: int = 65536,
    kind_pages: int = 16384,
    repeat: int = 5,
    seed: int = 0,
    sweep: bool = True,
    out: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The whole comparison; prints as it goes and returns the figures."""
    res: dict[str, Any] = {}
    probe = Lz4Device(device, kernels="subgroup", max_batch=16, slots=1)
    cdev = probe.device
    out(f"device: {probe.info.platform} / {probe.info.device} ({probe.info.kind}, "
        f"{probe.info.compute_units} CUs, local memory {probe.info.local_mem} B)")
    out(f"opencl c {cdev.opencl_c_version}; extensions: {cdev.extensions.strip()}")
    out(f"subgroup build: sg_impl {probe.sg_impl}, pages per work-group {probe.pages_per_group}"
        + (f"; failed first: {probe.sg_build_errors}" if probe.sg_build_errors else ""))
    probe.close()
    res["selftest"] = {}
    for impl in sg_impls(cdev):
        try:
            errs = selftest(cdev, impl)
        except Exception as e:  # a build failure is a finding, not the end of the run
            errs = [f"{impl}: {type(e).__name__}: {str(e).strip().splitlines()[0]}"]
        res["selftest"][impl] = errs or "ok"
        out(f"sub-group self-test {impl}: {'ok' if not errs else '; '.join(errs)}")
    # corpus pages are slow to make (seconds per thousand): one sample, repeated
    nbase = min(8192, max(pages, kind_pages))
    base = corpus.pages(nbase, seed)
    base_kinds = corpus.page_kinds(nbase, seed)
    sets = {
        k: _kind_pages(k, pages if k == "mix" else kind_pages, base, base_kinds)
        for k in ["mix", *corpus.KINDS]
    }
    res["kernels"] = {}
    hdr = f"{'pages':>16} {'n':>6} | " + " | ".join(
        f"{v + ' comp':>14} {'dec':>7}" for v in ("classic", "subgroup")
    ) + " | sg/classic comp  dec"
    out("")
    out(f"kernel GB/s (uncompressed bytes / kernel time, median of {repeat})")
    out(hdr)
    out("-" * len(hdr))
    devs = {
        "classic": Lz4Device(device, kernels="classic", max_batch=8192, slots=1),
        "subgroup": Lz4Device(device, kernels="subgroup", max_batch=8192, slots=1),
    }
    try:
        for kind, pg in sets.items():
            row = {v: measure(d, pg, repeat) for v, d in devs.items()}
            res["kernels"][kind] = row
            c, s = row["classic"], row["subgroup"]
            out(
                f"{kind:>16} {len(pg):>6} | {c['compress_gbs']:>14.3f} {c['decompress_gbs']:>7.3f}"
                f" | {s['compress_gbs']:>14.3f} {s['decompress_gbs']:>7.3f} | "
                f"{s['compress_gbs'] / c['compress_gbs']:>15.2f} "
                f"{s['decompress_gbs'] / c['decompress_gbs']:>4.2f}"
            )
        mix = res["kernels"]["mix"]
        out(f"size vs lz4 on the mix: classic {mix['classic']['size_vs_lz4']:.4f}, "
            f"subgroup {mix['subgroup']['size_vs_lz4']:.4f}")
        ceiling = copy_ceiling(devs["subgroup"], sets["mix"], repeat)
        res["copy_ceiling_gbs"] = ceiling
        out(f"copy-only kernel, subgroup launch shape ({devs['subgroup'].lanes} lanes, "
            f"{devs['subgroup'].pages_per_group} pages per work-group): {ceiling:.3f} GB/s")
    finally:
        for d in devs.values():
            d.close()
    if sweep:
        out("")
        out("occupancy sweep (subgroup kernels, the first 16384 pages of the mix)")
        out(f"{'lanes':>6} {'hash_log':>8} | {'local B/page c/d':>17} | "
            f"{'H100 pages/SM c/d':>18} | {'comp GB/s':>9} {'dec GB/s':>9}")
        res["sweep"] = []
        impl_lanes = [32, 64, 128] if sg_impls(cdev) != ["local"] else [32]
        for lanes in impl_lanes:
            for hl in (10, 11, 12):
                try:
                    d = Lz4Device(device, kernels="subgroup", lanes=lanes, hash_log=hl,
                                  max_batch=8192, slots=1)
                except (ValueError, RuntimeError) as e:
                    out(f"{lanes:>6} {hl:>8} | does not build: {e}")
                    continue
                try:
                    ppg = d.pages_per_group
                    lm = {k: v // ppg for k, v in d.local_mem.items()}
                    occ = {k: h100_occupancy(v, d.lanes, ppg).pages_per_sm
                           for k, v in d.local_mem.items()}
                    m = measure(d, sets["mix"][: min(len(sets["mix"]), 16384)], repeat)
                finally:
                    d.close()
                res["sweep"].append({"lanes": d.lanes, "hash_log": hl, "local_per_page": lm,
                                     "h100_pages_per_sm": occ, **m})
                out(f"{d.lanes:>6} {hl:>8} | {lm['lz4_compress']:>8}/{lm['lz4_decompress']:<8} | "
                    f"{occ['lz4_compress']:>9}/{occ['lz4_decompress']:<8} | "
                    f"{m['compress_gbs']:>9.3f} {m['decompress_gbs']:>9.3f}")
    return res
