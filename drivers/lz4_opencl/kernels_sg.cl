/*
 * LZ4 block compression and decompression, one sub-group (32 lanes) per page.
 *
 * Drop-in for kernels.cl: the same kernel names, arguments, buffer layout, results and
 * error rules (see lz4_common.cl, which both include, and the comments on each kernel in
 * kernels.cl). What differs is the shape: a work-group holds PPG pages, each page belongs
 * to one 32-lane sub-group (a warp on NVIDIA), and no work-group barrier is executed: the
 * lanes of a page cooperate through sub-group operations (ballot, match-any, shuffle,
 * scans, a sub-group sync).
 *
 * This program's own build-time parameters (-D...; device.py passes them; the shared ones
 * are in lz4_common.cl):
 *   PPG         pages (sub-groups) per work-group; the work-group has 32 * PPG lanes
 *   SG_IMPL     the sub-group operations: 2 NVIDIA inline PTX (vote.sync, match.any.sync,
 *               shfl.sync, bar.warp.sync; sm_70+), 1 cl_khr_subgroups + _ballot + _shuffle
 *               (sub-group size 32), 0 a portable fallback in local memory (PPG must be 1:
 *               the sub-group is the work-group and its sync is a work-group barrier)
 *   FIRST_LOG   log2 of the entries of the compressor's `first` table (HASH_LOG - 2)
 *
 * Every sub-group operation is called in sub-group-uniform control flow (all 32 lanes of
 * the page, the same number of times): the PTX forms use the full member mask, and the
 * fallback's barriers need it. Loops that call them have trip counts computed from values
 * every lane of the page holds (they are marked "uniform").
 */

#ifndef HASH_LOG
#define HASH_LOG 11
#endif
#include "lz4_common.cl"

#ifndef PPG
#define PPG 1
#endif
#ifndef SG_IMPL
#define SG_IMPL 0
#endif

#define SGS 32
#define WG (PPG * SGS)

#define OUT_WORDS ((OUT_BOUND + 15) / 16 * 4)
#ifndef FIRST_LOG
#define FIRST_LOG (HASH_LOG - 2) /* 2**9 with 2**11 in `last`: 18 KiB per page */
#endif
#define FIRST_SIZE (1 << FIRST_LOG)
/* segments of the speculative parse: SEG positions (a multiple of 32) per lane */
#define SEG ((((PAGE + SGS - 1) / SGS) + 31) / 32 * 32)
#define SEG_WORDS (SEG / 32)
#define SEGMAP_WORDS (SGS * SEG_WORDS)
#define NONE 0x7fffffff

#define HASH_FIRST(h) ((h) >> (HASH_LOG - FIRST_LOG))

#if SG_IMPL == 0 && PPG != 1
#error "the local-memory sub-group fallback needs PPG == 1"
#endif

/* Instrumented build (-DCOUNT, lz4_common.cl): a lane's lane-parallel trips go to local
 * memory (a private counter there made PoCL hang); the work-group barriers stay 0. */
#ifdef COUNT
#define CNT_DECL                        \
    uint c_bar = 0, c_single = 0, c_step = 0; \
    __local uint c_lane[PPG][SGS];      \
    c_lane[sg][lane] = 0u
#define CNT_LANE lane
#define CNT_LANE_TRIPS c_lane[sg][lane]
#define LANE_TRIP() (++c_lane[sg][lane])
#endif

/* ------------------------------------------------------------------------------------------ */
/* Sub-group operations on a 32-lane group. `x` is the sub-group's 32-word scratch in local   */
/* memory (only the fallback uses it).                                                        */
/* ------------------------------------------------------------------------------------------ */

#if SG_IMPL == 2
/* NVIDIA: warps are 32 consecutive linear lanes of the work-group. */
uint sg_ballot(__local uint *x, int *ph, int p)
{
    uint r;
    asm volatile("{ .reg .pred q; setp.ne.s32 q, %1, 0; vote.sync.ballot.b32 %0, q, 0xffffffff; }"
                 : "=r"(r) : "r"(p));
    return r;
}
uint sg_match(__local uint *x, int *ph, uint v)
{
    uint r;
    asm volatile("match.any.sync.b32 %0, %1, 0xffffffff;" : "=r"(r) : "r"(v));
    return r;
}
uint sg_shfl(__local uint *x, int *ph, uint v, uint src)
{
    uint r;
    asm volatile("shfl.sync.idx.b32 %0, %1, %2, 0x1f, 0xffffffff;" : "=r"(r) : "r"(v), "r"(src));
    return r;
}
void sg_sync(__local uint *x, int *ph)
{
    asm volatile("bar.warp.sync 0xffffffff;" ::: "memory");
}
#elif SG_IMPL == 1
#pragma OPENCL EXTENSION cl_khr_subgroups : enable
#pragma OPENCL EXTENSION cl_khr_subgroup_ballot : enable
#pragma OPENCL EXTENSION cl_khr_subgroup_shuffle : enable
uint sg_ballot(__local uint *x, int *ph, int p) { return sub_group_ballot(p).x; }
uint sg_shfl(__local uint *x, int *ph, uint v, uint src) { return sub_group_shuffle(v, src); }
uint sg_match(__local uint *x, int *ph, uint v)
{
    /* no match-any in the khr extensions: one ballot per distinct value (uniform loop) */
    uint todo = 0xffffffffu, m = 0u;
    while (todo) {
        const uint lv = sub_group_shuffle(v, (uint)(31 - clz(todo & (0u - todo))));
        const uint b = sub_group_ballot(v == lv).x;
        if (v == lv)
            m = b;
        todo &= ~b;
    }
    return m;
}
void sg_sync(__local uint *x, int *ph) { sub_group_barrier(CLK_LOCAL_MEM_FENCE); }
#else
/* Portable fallback: the work-group is the sub-group (PPG == 1), lanes exchange values
 * through x[] (two halves used in turn) and one work-group barrier: a lane writes a half
 * only after the barrier of the exchange in between, which every lane passes only once it
 * has read that half. Same results as the forms above. */
uint sg_ballot(__local uint *x, int *ph, int p)
{
    __local uint *h = x + (*ph ^= SGS);
    h[get_local_id(0)] = p != 0;
    barrier(CLK_LOCAL_MEM_FENCE);
    uint r = 0u;
    for (int j = 0; j < SGS; ++j)
        r |= h[j] << j;
    return r;
}
uint sg_match(__local uint *x, int *ph, uint v)
{
    __local uint *h = x + (*ph ^= SGS);
    h[get_local_id(0)] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    uint r = 0u;
    for (int j = 0; j < SGS; ++j)
        r |= (uint)(h[j] == v) << j;
    return r;
}
uint sg_shfl(__local uint *x, int *ph, uint v, uint src)
{
    __local uint *h = x + (*ph ^= SGS);
    h[get_local_id(0)] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    return h[src & 31u];
}
void sg_sync(__local uint *x, int *ph) { barrier(CLK_LOCAL_MEM_FENCE); }
#endif

/* at the call sites: the sub-group's scratch and the fallback's half in use */
#define SGX x, &sgph
/* the scratch (kernel scope): only the fallback has one */
#if SG_IMPL == 0
#define SG_SCRATCH        \
    __local uint sgx_all[PPG][2 * SGS]; \
    int sgph = 0
#define SG_X(sg) (sgx_all[sg])
#else
#define SG_SCRATCH int sgph = 0
#define SG_X(sg) ((__local uint *)0)
#endif

uint sg_lane(void) { return get_local_id(0) & (SGS - 1); }

/* A kernel's page (at kernel scope, after its local arrays): the scratch, the lane, the
 * sub-group of the work-group (sg), its item and its scratch x. A sub-group past the last
 * item returns (the whole sub-group; PPG == 1: the whole work-group). */
#define SG_PAGE_ITEM                                \
    SG_SCRATCH;                                     \
    const uint lane = sg_lane();                    \
    const uint sg = get_local_id(0) / SGS;          \
    const size_t item = get_group_id(0) * PPG + sg; \
    if (item >= nitems)                             \
        return;                                     \
    __local uint *x = SG_X(sg)

/* inclusive scans by shuffles (log2(32) steps) */
uint sg_scan_add(__local uint *x, int *ph, uint v)
{
    const uint lane = sg_lane();
    for (uint d = 1; d < SGS; d <<= 1) {
        const uint y = sg_shfl(x, ph, v, lane - d);
        if (lane >= d)
            v += y;
    }
    return v;
}
uint sg_scan_max(__local uint *x, int *ph, uint v)
{
    const uint lane = sg_lane();
    for (uint d = 1; d < SGS; d <<= 1) {
        const uint y = sg_shfl(x, ph, v, lane - d);
        if (lane >= d)
            v = max(v, y);
    }
    return v;
}
uint sg_xscan_add(__local uint *x, int *ph, uint v) { return sg_scan_add(x, ph, v) - v; }

/* Uniform: dst[d, d+len) = src[s, s+len) (local byte buffers that do not overlap), lanes
 * taking 4-byte words of the destination: whole words are stored as words, the two partial
 * ones byte by byte (their other bytes belong to someone else). */
void sg_copy(__local uchar *dst, __local uint *dstw, int d, __local const uint *srcw, int s,
             int len, uint lane)
{
    if (len <= 0)
        return;
    __local const uchar *src = (__local const uchar *)srcw;
    const int w0 = d >> 2, w1 = (d + len - 1) >> 2;
    for (int k = w0 + (int)lane; k <= w1; k += SGS) {
        const int j = k * 4;
        if (j >= d && j + 4 <= d + len) {
            dstw[k] = rd32(srcw, s + (j - d));
        } else {
            for (int b = 0; b < 4; ++b)
                if (j + b >= d && j + b < d + len)
                    dst[j + b] = src[s + (j + b - d)];
        }
    }
}

/* Uniform: store `total` bytes of a local buffer (16-byte aligned) to a global row (16-byte
 * aligned) with 16-byte stores, the tail byte by byte. */
void sg_store_row(__global uchar *row, __local const uint4 *src, int total, uint lane)
{
    __global uint4 *r4 = (__global uint4 *)row;
    const int n4 = total >> 4;
    for (int i = (int)lane; i < n4; i += SGS)
        r4[i] = src[i];
    const int t = total & 15;
    if ((int)lane < t)
        row[n4 * 16 + lane] = ((__local const uchar *)src)[n4 * 16 + lane];
}

/* ------------------------------------------------------------------------------------------ */
/* Self-test of the sub-group operations (tests/opencl): for every sub-group of the launch,  */
/* out[8 * i + k] for lane i: k=0 ballot(v & 1), 1 match(v), 2 shuffle(v, idx), 3 inclusive */
/* add scan, 4 exclusive add scan, 5 inclusive max scan, 6 the lane's sub-group number.       */
/* ------------------------------------------------------------------------------------------ */

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void sg_selftest(__global const uint *v_in, __global const uint *idx_in, __global uint *out)
{
    SG_SCRATCH;
    const uint lid = get_local_id(0);
    const uint sg = lid / SGS;
    __local uint *x = SG_X(sg);
    const size_t i = get_global_id(0);
    const uint v = v_in[i];
    out[8 * i + 0] = sg_ballot(SGX, (int)(v & 1u));
    out[8 * i + 1] = sg_match(SGX, v);
    out[8 * i + 2] = sg_shfl(SGX, v, idx_in[i]);
    out[8 * i + 3] = sg_scan_add(SGX, v);
    out[8 * i + 4] = sg_xscan_add(SGX, v);
    out[8 * i + 5] = sg_scan_max(SGX, v);
    out[8 * i + 6] = (uint)(get_group_id(0) * PPG + sg);
    out[8 * i + 7] = sg_lane();
}

/* ------------------------------------------------------------------------------------------ */
/* The ceiling of the launch shape (scripts/opencl-kernel-bench --variants): the buffers and  */
/* shape of lz4_compress, only the page's 16-byte loads into local memory and 16-byte stores. */
/* ------------------------------------------------------------------------------------------ */

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void page_copy(LAUNCH_ARGS)
{
    __global const int *lengths = (__global const int *)src_buf;
    __global int *sizes = (__global int *)dst_buf;
    __local uint4 pages[PPG][PAGE / 16];
    SG_PAGE_ITEM;
    const int n = min(lengths[item], PAGE);
    if (n <= 0 || n > (int)src_pitch || n > (int)dst_pitch) {
        if (lane == 0)
            sizes[item] = -E_INVAL;
        return;
    }
    __global const uint4 *row4 = (__global const uint4 *)(src_buf + src_off + item * (size_t)src_pitch);
    for (int i = (int)lane; i < (n + 15) >> 4; i += SGS)
        pages[sg][i] = row4[i];
    sg_sync(SGX);
    sg_store_row(dst_buf + dst_off + item * (size_t)dst_pitch, pages[sg], n, lane);
    if (lane == 0)
        sizes[item] = n;
}

/* ------------------------------------------------------------------------------------------ */
/* Compression                                                                                */
/* ------------------------------------------------------------------------------------------ */

/*
 * Phase 0: the page goes to local memory with 16-byte loads (bytes past n cleared), the
 *   hash table is cleared.
 * Phase 1 (uniform, 32 positions a step): lane i takes position p = 32w + i. match-any on
 *   the 4-byte value gives each lane the lanes with the same bytes: the nearest earlier one
 *   is its candidate, else the table's entry for its hash (counted when its bytes are
 *   equal). match-any on the hash picks the last lane of each hash to update the table (one
 *   writer: the output is deterministic). Every lane measures its candidate up to CAP bytes
 *   into its cell; a ballot gives the window's word of the `valid` bitmap.
 * Phase 2a (lanes in parallel): lane s walks the greedy parse over its segment
 *   [s*SEG, (s+1)*SEG) from its first position (next valid q, match end e(q) chained through
 *   the cells as in kernels.cl), marking the starts it takes (tk).
 * Phase 2b (uniform rounds): lane s's entry is the previous lane's exit (a shuffle). A lane
 *   whose entry changed walks again from it until it meets a start its speculative walk also
 *   took (from there the two coincide: it takes the speculative exit) or leaves the segment;
 *   the starts it takes before that go to tb. A ballot ends the rounds when no entry changed
 *   (segment 0's entry is always right, so round r fixes segment r at the latest; usually
 *   two rounds).
 * Phase 2c (lanes): lane s takes its true starts (tb, and tk from the meeting point on),
 *   measures their ends, extends them backwards and sums its sequence sizes; an exclusive
 *   scan gives each lane its output offset, a shuffle the block size (-ENOSPC before any
 *   output).
 * Phase 3: each lane writes its own sequences (short literal runs too) into the local
 *   output; the long runs go through a uniform loop (ballot: whose next, shuffles: where)
 *   in which all lanes copy 4-byte words. Then the block goes out with 16-byte stores.
 */
typedef union {
    struct {
        ushort last[TAB_SIZE];    /* hash -> latest position + 1 (0: none) */
        ushort first[FIRST_SIZE]; /* hash >> (HASH_LOG - FIRST_LOG) -> first position + 1 */
    } t;                          /* phase 0-1 */
    struct {
        uint4 out4[OUT_WORDS / 4];
        uint tk[SEGMAP_WORDS]; /* speculative starts, then (phase 3) long literal runs */
        uint tb[SEGMAP_WORDS]; /* starts of the true walk not on the speculative one */
    } o;                       /* phase 2-3 */
} cshare_t;

typedef struct {
    uint4 pg4[PAGE / 16 + 1]; /* the page, 16 zero bytes past it */
    cshare_t u;
    cell_t cell[PAGE];         /* a position's match; for starts later also end etc. */
    uint valid[(PAGE + 31) / 32]; /* positions with a match */
} cpage_t;

/* next position >= p of segment `seg` with a match, or -1 */
int next_valid(__local const uint *valid, int p, int seg)
{
    const int wl = seg * SEG_WORDS + SEG_WORDS - 1;
    return (p >> 5) > wl ? -1 : next_bit(valid, p, wl);
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void lz4_compress(LAUNCH_ARGS CNT_ARG)
{
    LAUNCH_BUFFERS; /* lz4_common.cl: the launch's buffers */
    __local cpage_t cps[PPG];
    SG_PAGE_ITEM;
    __local cpage_t *P = &cps[sg];
    __local uint *pw = (__local uint *)P->pg4;
    __local uchar *pb = (__local uchar *)P->pg4;
    __local cell_t *cell = P->cell;
    __local uint *valid = P->valid;
    CNT_DECL;

    const int n = lengths[item];
    const int cap = caps[item];
    if (compress_args_bad(n, cap, src_pitch)) {
        if (lane == 0)
            sizes[item] = -E_INVAL;
        return;
    }

    /* Phase 0 */
    STEP();
    {
        __global const uint4 *row4 = (__global const uint4 *)(src + item * (size_t)src_pitch);
        const int n16 = (n + 15) >> 4;
        for (int i = (int)lane; i < PAGE / 16 + 1; i += SGS) {
            uint4 v = (uint4)(0u);
            if (i < n16) {
                v = row4[i];
                const int t = n - i * 16; /* bytes of this chunk inside the item */
                if (t < 16) {
                    uint m[4];
                    for (int k = 0; k < 4; ++k) {
                        const int b = t - 4 * k;
                        m[k] = b >= 4 ? 0xffffffffu : (b <= 0 ? 0u : (1u << (8 * b)) - 1u);
                    }
                    v &= (uint4)(m[0], m[1], m[2], m[3]);
                }
            }
            P->pg4[i] = v;
        }
        __local uint *tw = (__local uint *)&P->u.t;
        for (int i = (int)lane; i < (TAB_SIZE + FIRST_SIZE) / 2; i += SGS)
            tw[i] = 0u;
        for (int i = (int)lane; i < (PAGE + 31) / 32; i += SGS)
            valid[i] = 0u;
    }
    sg_sync(SGX);

    const int last = n - MFLIMIT;       /* last position that may start a match */
    const int limit = n - LASTLITERALS; /* a match ends at or before this position */
    const int nwin = last >= 1 ? last / SGS + 1 : 0;

    /* Phase 1 (uniform: nwin) */
    for (int w = 0; w < nwin; ++w) {
        STEP();
        const int p = w * SGS + (int)lane;
        const bool act = p <= last;
        const uint v = act ? rd32(pw, p) : 0u;
        const uint h = HASH(v);
        const uint mv = sg_match(SGX, v);
        const uint mh = sg_match(SGX, act ? h : 0xffffffffu); /* > any hash: no act lane */
        const uint below = (1u << lane) - 1u;
        const uint eq = mv & below; /* lanes below are all active */
        const uint hf = HASH_FIRST(h);
        /* c1: the latest earlier position with these bytes (the nearest lane below, else the
         * `last` entry); c2: the oldest one known (the `first` entry, else the lowest lane
         * below). The oldest gives the long matches the latest misses (a zero run after a
         * short non-zero word: the latest zeros are just before the word). */
        int c1 = -1, c2 = -1;
        if (act) {
            if (eq) {
                c1 = w * SGS + (31 - (int)clz(eq));
            } else {
                const int t = (int)P->u.t.last[h];
                if (t != 0 && rd32(pw, t - 1) == v)
                    c1 = t - 1;
            }
            const int t = (int)P->u.t.first[hf];
            if (t != 0 && rd32(pw, t - 1) == v)
                c2 = t - 1;
            else if (eq)
                c2 = w * SGS + (int)ctz32(eq);
            if (c2 == c1)
                c2 = -1;
        }
        const uint mf = sg_match(SGX, act ? hf : 0xffffffffu);
        sg_sync(SGX); /* every table read of the window before its writes */
        if (act && (mh & ~below & ~(1u << lane)) == 0u)
            P->u.t.last[h] = (ushort)(p + 1); /* the last lane of its hash */
        if (act && (mf & below) == 0u && P->u.t.first[hf] == 0)
            P->u.t.first[hf] = (ushort)(p + 1); /* the first lane of its hash */
        cell_t ce = 0;
        if (c1 >= 0 || c2 >= 0)
            ce = best_cell(pw, p, c1, c2, min(limit - p, CAP));
        if (act)
            cell[p] = ce;
        const uint vb = sg_ballot(SGX, c1 >= 0 || c2 >= 0);
        if (lane == 0)
            valid[w] = vb;
        sg_sync(SGX); /* table writes before the next window's reads */
    }

    /* Phase 2a: the speculative walk of segment `lane` */
    STEP();
    const int s0 = (int)lane * SEG;
    const int s1 = min(s0 + SEG, last + 1); /* empty when s0 > last */
    __local uint *tk = P->u.o.tk + lane * SEG_WORDS;
    __local uint *tb = P->u.o.tb + lane * SEG_WORDS;
    for (int k = 0; k < SEG_WORDS; ++k) {
        tk[k] = 0u;
        tb[k] = 0u;
    }
    int spec_end = s0; /* end of the speculative walk's last match */
    {
        int p = s0;
        while (p < s1) {
            LANE_TRIP();
            const int q = next_valid(valid, p, (int)lane);
            if (q < 0 || q >= s1)
                break;
            tk[(q - s0) >> 5] |= 1u << (q & 31);
            p = match_end(cell, pw, q, last, limit);
            spec_end = p;
        }
    }
    /* Phase 2b (uniform rounds) */
    int entry = s0, meet = s0, exitp = spec_end;
    for (;;) {
        STEP();
        const uint prev = sg_shfl(SGX, (uint)exitp, lane - 1u);
        const int ne = lane == 0 ? 0 : (int)prev;
        const bool changed = ne != entry;
        if (sg_ballot(SGX, changed) == 0u)
            break;
        if (changed) {
            entry = ne;
            for (int k = 0; k < SEG_WORDS; ++k)
                tb[k] = 0u;
            meet = NONE;
            int p = entry;
            while (max(p, s0) < s1) {
                LANE_TRIP();
                const int q = next_valid(valid, max(p, s0), (int)lane);
                if (q < 0 || q >= s1)
                    break;
                if (tk[(q - s0) >> 5] & (1u << (q & 31))) {
                    meet = q;
                    p = spec_end;
                    break;
                }
                tb[(q - s0) >> 5] |= 1u << (q & 31);
                p = match_end(cell, pw, q, last, limit);
            }
            exitp = p;
        }
    }
    sg_sync(SGX); /* every walk done before cells of starts are overwritten */

    /* Phase 2c: true starts, ends, backward extensions, sizes */
    STEP();
    uint seg_size = 0u;
    {
        int a = entry;
        for (int k = 0; k < SEG_WORDS; ++k) {
            const int b = s0 + 32 * k;
            const uint ge = meet <= b ? 0xffffffffu : (meet < b + 32 ? 0xffffffffu << (meet - b) : 0u);
            uint t = tb[k] | (tk[k] & ge);
            tb[k] = t;
            while (t) {
                LANE_TRIP();
                const int q = b + (int)ctz32(t);
                t &= t - 1u;
                const int e = match_end(cell, pw, q, last, limit);
                const int qq = extend_back(pb, q, a, CELL_OFF(cell[q]));
                seg_size += (uint)seq_bytes(qq - a, e - qq - MINMATCH);
                /* inside the match (>= 4 bytes): no other walk reads these cells now */
                cell[q + 1] = (cell_t)e;
                cell[q + 2] = (cell_t)qq;
                a = e;
            }
        }
    }
    const uint before = sg_xscan_add(SGX, seg_size);
    const int sum = (int)sg_shfl(SGX, before + seg_size, SGS - 1);
    const int anchor = (int)sg_shfl(SGX, (uint)exitp, SGS - 1);
    const int lf = n - anchor;
    const int total = sum + 1 + ext_len(lf) + lf;
    if (total > cap) {
        if (lane == 0)
            sizes[item] = -E_NOSPC;
        return;
    }

    /* Phase 3: lane s writes its sequences; long literal runs are marked in tk */
    STEP();
    __local uint4 *out4 = P->u.o.out4;
    __local uint *outw = (__local uint *)out4;
    __local uchar *ob = (__local uchar *)out4;
    {
        int a = entry, o = (int)before;
        for (int k = 0; k < SEG_WORDS; ++k) {
            const int b = s0 + 32 * k;
            uint t = tb[k];
            tk[k] = 0u;
            while (t) {
                LANE_TRIP();
                const int q = b + (int)ctz32(t);
                t &= t - 1u;
                const int e = (int)cell[q + 1];
                const int qq = (int)cell[q + 2];
                const int d = CELL_OFF(cell[q]);
                const int l = qq - a;
                const int mc = e - qq - MINMATCH;
                o = put_token(ob, o, l, mc);
                if (l <= SHORT) {
                    for (int i = 0; i < l; ++i)
                        ob[o + i] = pb[a + i];
                } else {
                    tk[k] |= 1u << (q & 31);
                    cell[q + 1] = (cell_t)o; /* destination; source [a, qq) */
                    cell[q + 3] = (cell_t)a;
                }
                o = put_match(ob, o + l, d, mc);
                a = e;
            }
        }
    }
    int fin_o = sum; /* the last literals: token by lane 0, bytes by all below */
    if (lane == 0)
        put_token(ob, fin_o, lf, 0);
    fin_o += 1 + ext_len(lf);
    /* long runs (uniform: ballot until none is left), lanes in order of their segments */
    {
        int k = 0;
        uint t = SEG_WORDS > 0 ? tk[0] : 0u;
        for (;;) {
            while (t == 0u && k < SEG_WORDS - 1)
                t = tk[++k];
            const uint who = sg_ballot(SGX, t != 0u);
            if (who == 0u)
                break;
            STEP();
            const uint ld = ctz32(who);
            uint mine_d = 0u, mine_s = 0u, mine_e = 0u;
            if (lane == ld) {
                const int q = s0 + 32 * k + (int)ctz32(t);
                t &= t - 1u;
                mine_d = (uint)cell[q + 1];
                mine_s = (uint)cell[q + 3];
                mine_e = (uint)cell[q + 2];
            }
            const int cd = (int)sg_shfl(SGX, mine_d, ld);
            const int cs = (int)sg_shfl(SGX, mine_s, ld);
            const int ceo = (int)sg_shfl(SGX, mine_e, ld);
            sg_copy(ob, outw, cd, pw, cs, ceo - cs, lane);
        }
    }
    if (lf <= SHORT) {
        if ((int)lane < lf)
            ob[fin_o + lane] = pb[anchor + lane];
    } else {
        STEP();
        sg_copy(ob, outw, fin_o, pw, anchor, lf, lane);
    }
    CNT_FLUSH();
    sg_sync(SGX);
    STEP();
    sg_store_row(dst + item * (size_t)dst_pitch, out4, total, lane);
    if (lane == 0)
        sizes[item] = total;
}

/* ------------------------------------------------------------------------------------------ */
/* Decompression                                                                              */
/* ------------------------------------------------------------------------------------------ */

/*
 * The block goes to local memory with 16-byte loads (the first IN_LOCAL bytes; beyond that,
 * only in blocks that are malformed or too large, bytes are read from global memory). One
 * uniform loop over the sequences: every lane parses and checks the same header
 * (`seq_header`, reading the same bytes: no exchange needed), and while the
 * output fits `cap` the lanes copy the literal run and the match together, 4-byte words of
 * the destination each (a match that overlaps its source reads src[i % offset]; offset 1
 * is a fill). The rules are those of kernels.cl (same results, same errors): a block is
 * decoded into local memory and stored only when it is well formed and fits, so a bad
 * block writes nothing of the caller's.
 */
typedef struct {
    uint4 in4[IN_LOCAL / 16 + 1]; /* + 1: rd32 reads a word ahead */
    uint4 out4[PAGE / 16 + 1];
} dpage_t;

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void lz4_decompress(LAUNCH_ARGS CNT_ARG)
{
    LAUNCH_BUFFERS;
    __local dpage_t dps[PPG];
    SG_PAGE_ITEM;
    __local dpage_t *D = &dps[sg];
    __local const uint *iw = (__local const uint *)D->in4;
    __local const uchar *ib = (__local const uchar *)D->in4;
    __local uint *ow = (__local uint *)D->out4;
    __local uchar *ob = (__local uchar *)D->out4;
    CNT_DECL;

    const int len = lengths[item];
    const int cap = min(caps[item], PAGE);
    __global const uchar *row = src + item * (size_t)src_pitch;
    if (decompress_args_bad(len, cap, src_pitch)) {
        if (lane == 0)
            sizes[item] = -E_INVAL;
        return;
    }

    STEP();
    {
        __global const uint4 *r4 = (__global const uint4 *)row;
        const int n16 = min((len + 15) >> 4, IN_LOCAL / 16);
        for (int i = (int)lane; i < n16; i += SGS)
            D->in4[i] = r4[i];
    }
    sg_sync(SGX);

    /* The loop body has two sub-group syncs, both unconditional: where a sync sits in
     * divergent-looking code (even if uniform), PoCL's barrier handling replicates code
     * and the build takes minutes. */
    int ip = 0, op = 0, bad = 0, fits = 1, ms_last = -1, me_last = 0;
    for (;;) { /* uniform: every lane holds the same ip, op */
        STEP();
        int l, ls, off, m; /* every lane parses the same header; m == 0: the last sequence */
        if (seq_header(ib, row, len, op, &ip, &l, &ls, &off, &m)) {
            bad = 1;
            break;
        }
        if (m) {
            ms_last = op + l;
            me_last = op + l + m;
        }
        if (fits && (long)op + l + m > cap)
            fits = 0;
        /* literals */
        if (fits) {
            if (ls + l <= IN_LOCAL) {
                sg_copy(ob, ow, op, iw, ls, l, lane);
            } else {
                for (int i = (int)lane; i < l; i += SGS)
                    ob[op + i] = (uchar)in_byte(ib, row, ls + i);
            }
        }
        sg_sync(SGX); /* the match may read these literals */
        /* the match: reads only bytes before s */
        const int s = op + l;
        if (fits && m) {
            const int from = s - off;
            if (off >= m) {
                sg_copy(ob, ow, s, ow, from, m, lane);
            } else if (off == 1) { /* a fill */
                const uint bv = ob[from];
                const uint fw = bv * 0x01010101u;
                const int w0 = s >> 2, w1 = (s + m - 1) >> 2;
                for (int k = w0 + (int)lane; k <= w1; k += SGS) {
                    const int j = k * 4;
                    if (j >= s && j + 4 <= s + m) {
                        ow[k] = fw;
                    } else {
                        for (int b = 0; b < 4; ++b)
                            if (j + b >= s && j + b < s + m)
                                ob[j + b] = (uchar)bv;
                    }
                }
            } else { /* overlapping: src[i % offset] */
                const int w0 = s >> 2, w1 = (s + m - 1) >> 2;
                for (int k = w0 + (int)lane; k <= w1; k += SGS) {
                    const int j = k * 4;
                    uint wv = 0u;
                    const bool whole = j >= s && j + 4 <= s + m;
                    for (int b = 0; b < 4; ++b) {
                        const int jj = j + b;
                        if (jj >= s && jj < s + m) {
                            const uint c = ob[from + (jj - s) % off];
                            if (whole)
                                wv |= c << (8 * b);
                            else
                                ob[jj] = (uchar)c;
                        }
                    }
                    if (whole)
                        ow[k] = wv;
                }
            }
        }
        sg_sync(SGX); /* the next sequence may read this match */
        op += l + m;
        if (!m)
            break;
    }
    if (!bad && end_rules_broken(ms_last, me_last, op))
        bad = 1;
    if (bad || !fits) {
        if (lane == 0)
            sizes[item] = bad ? -E_BADMSG : -E_NOSPC;
        return;
    }
    STEP();
    CNT_FLUSH();
    sg_store_row(dst + item * (size_t)dst_pitch, D->out4, op, lane);
    if (lane == 0)
        sizes[item] = op;
}
