/*
 * LZ4 block compression and decompression, one sub-group (32 lanes) per page.
 *
 * Drop-in for kernels.cl: the same kernel names, arguments, buffer layout, results and
 * error rules (see kernels.cl's header and the comments on each kernel there). What differs
 * is the shape: a work-group holds PPG pages, each page belongs to one 32-lane sub-group
 * (a warp on NVIDIA), and no work-group barrier is executed: the lanes of a page cooperate
 * through sub-group operations (ballot, match-any, shuffle, scans, a sub-group sync).
 *
 * Build-time parameters (-D...; device.py passes all of them):
 *   PAGE        largest uncompressed item in bytes (multiple of 16, <= 32768)
 *   PPG         pages (sub-groups) per work-group; the work-group has 32 * PPG lanes
 *   SG_IMPL     the sub-group operations: 2 NVIDIA inline PTX (vote.sync, match.any.sync,
 *               shfl.sync, bar.warp.sync; sm_70+), 1 cl_khr_subgroups + _ballot + _shuffle
 *               (sub-group size 32), 0 a portable fallback in local memory (PPG must be 1:
 *               the sub-group is the work-group and its sync is a work-group barrier)
 *   HASH_LOG    log2 of the compressor's hash-table entries (u16 positions)
 *   CAP         a position's match is measured up to CAP bytes, then chained (as kernels.cl)
 *   SHORT       literal runs up to SHORT bytes are copied by the lane that owns them
 *   IN_LOCAL    compressed bytes the decompressor stages in local memory (multiple of 16)
 *   E_NOSPC, E_INVAL, E_BADMSG   errno values
 *   COUNT       instrumented build: the kernels take an extra `__global uint *kcnt` argument
 *               and add, per item, NCNT counters (see C_* below; scripts/opencl-counts)
 *
 * Every sub-group operation is called in sub-group-uniform control flow (all 32 lanes of
 * the page, the same number of times): the PTX forms use the full member mask, and the
 * fallback's barriers need it. Loops that call them have trip counts computed from values
 * every lane of the page holds (they are marked "uniform").
 */

#ifndef __ENDIAN_LITTLE__
#error "little-endian devices only"
#endif

#ifndef PAGE
#define PAGE 4096
#endif
#ifndef PPG
#define PPG 1
#endif
#ifndef SG_IMPL
#define SG_IMPL 0
#endif
#ifndef HASH_LOG
#define HASH_LOG 11
#endif
#ifndef CAP
#define CAP 16
#endif
#ifndef SHORT
#define SHORT 16
#endif
#ifndef E_NOSPC
#define E_NOSPC 28
#endif
#ifndef E_INVAL
#define E_INVAL 22
#endif
#ifndef E_BADMSG
#define E_BADMSG 74
#endif

#define SGS 32
#define WG (PPG * SGS)
#define MINMATCH 4
#define LASTLITERALS 5
#define MFLIMIT 12
#define RUN_MASK 15

#define OUT_BOUND (PAGE + PAGE / 255 + 16)
#define OUT_WORDS ((OUT_BOUND + 15) / 16 * 4)
#ifndef IN_LOCAL
#define IN_LOCAL ((OUT_BOUND + 15) / 16 * 16)
#endif
#ifndef FIRST_LOG
#define FIRST_LOG (HASH_LOG - 2) /* 2**9 with 2**11 in `last`: 18 KiB per page */
#endif
#define TAB_SIZE (1 << HASH_LOG)
#define FIRST_SIZE (1 << FIRST_LOG)
/* segments of the speculative parse: SEG positions (a multiple of 32) per lane */
#define SEG ((((PAGE + SGS - 1) / SGS) + 31) / 32 * 32)
#define SEG_WORDS (SEG / 32)
#define SEGMAP_WORDS (SGS * SEG_WORDS)
#define NONE 0x7fffffff

#define HASH(v) (((uint)(v) * 2654435761u) >> (32 - HASH_LOG))
#define HASH_FIRST(h) ((h) >> (HASH_LOG - FIRST_LOG))

#if SG_IMPL == 0 && PPG != 1
#error "the local-memory sub-group fallback needs PPG == 1"
#endif
#if (PAGE % 16) != 0 || PAGE > 32768
#error "PAGE must be a multiple of 16, at most 32768"
#endif

/* match cells as kernels.cl */
#if PAGE <= 4096 && CAP <= 19
typedef ushort cell_t;
#define MKCELL(o, l) ((ushort)(((o) << 4) | ((l) - MINMATCH)))
#define CELL_OFF(c) ((int)((c) >> 4))
#define CELL_LEN(c) ((int)((c) & 15) + MINMATCH)
#elif PAGE <= 8192 && CAP <= 11
typedef ushort cell_t;
#define MKCELL(o, l) ((ushort)(((o) << 3) | ((l) - MINMATCH)))
#define CELL_OFF(c) ((int)((c) >> 3))
#define CELL_LEN(c) ((int)((c) & 7) + MINMATCH)
#else
typedef uint cell_t;
#define MKCELL(o, l) (((uint)(o) << 8) | (uint)(l))
#define CELL_OFF(c) ((int)((c) >> 8))
#define CELL_LEN(c) ((int)((c) & 255))
#endif

/* ------------------------------------------------------------------------------------------ */
/* Instrumentation (-DCOUNT)                                                                  */
/* ------------------------------------------------------------------------------------------ */

#define C_BARRIER 0 /* work-group barriers executed (written as such in the kernel) */
#define C_SINGLE 1  /* trips of loops one lane runs while the rest of its page waits */
#define C_STEP 2    /* trips of sub-group-uniform loops and straight sub-group phases */
#define C_LANE 3    /* lane-parallel serial trips: the most any one lane of the page ran */
#define NCNT 4
#ifdef COUNT
/* private counters, stored once at the end: a counter update in the kernel's control flow
 * (a lane-0 atomic before each barrier) changed what PoCL compiled */
#define CNT_ARG , __global uint *kcnt
/* (the lane-parallel trips go to local memory: a private counter there made PoCL hang) */
#define CNT_DECL                        \
    uint c_bar = 0, c_single = 0, c_step = 0; \
    __local uint c_lane[PPG][SGS];      \
    c_lane[sg][lane] = 0u
#define SINGLE_TRIP() (++c_single)
#define STEP() (++c_step)
#define LANE_TRIP() (++c_lane[sg][lane])
#define CNT_FLUSH()                                                     \
    do {                                                                \
        if (lane == 0) {                                                \
            kcnt[item * NCNT + C_BARRIER] = c_bar;                      \
            kcnt[item * NCNT + C_STEP] = c_step;                        \
        }                                                               \
        atomic_add(&kcnt[item * NCNT + C_SINGLE], c_single);            \
        atomic_max(&kcnt[item * NCNT + C_LANE], c_lane[sg][lane]);      \
    } while (0)
#else
#define CNT_ARG
#define CNT_DECL
#define SINGLE_TRIP() do { } while (0)
#define STEP() do { } while (0)
#define LANE_TRIP() do { } while (0)
#define CNT_FLUSH() do { } while (0)
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

uint ctz32(uint x) { return 31u - clz(x & (0u - x)); }

/* Unaligned little-endian 32-bit read at byte i of a local word array. */
uint rd32(__local const uint *w, int i)
{
    const int k = i >> 2;
    const ulong v = ((ulong)w[k + 1] << 32) | (ulong)w[k];
    return (uint)(v >> ((i & 3) * 8));
}

int ext_len(int v) { return v >= RUN_MASK ? (v - RUN_MASK) / 255 + 1 : 0; }

int put_ext(__local uchar *out, int o, int v)
{
    if (v >= RUN_MASK) {
        int r = v - RUN_MASK;
        while (r >= 255) {
            out[o++] = 255;
            r -= 255;
        }
        out[o++] = (uchar)r;
    }
    return o;
}

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
void page_copy(__global const uchar *src_buf, uint src_off, uint src_pitch,
               __global uchar *dst_buf, uint dst_off, uint dst_pitch, uint nitems)
{
    __global const int *lengths = (__global const int *)src_buf;
    __global int *sizes = (__global int *)dst_buf;
    __local uint4 pages[PPG][PAGE / 16];
    SG_SCRATCH;
    const uint lane = sg_lane();
    const uint sg = get_local_id(0) / SGS;
    const size_t item = get_group_id(0) * PPG + sg;
    if (item >= nitems)
        return;
    __local uint *x = SG_X(sg);
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
    int wi = p >> 5;
    if (wi > wl)
        return -1;
    uint m = valid[wi] & (0xffffffffu << (p & 31));
    while (m == 0u && wi < wl)
        m = valid[++wi];
    return m ? wi * 32 + (int)ctz32(m) : -1;
}

int match_end(__local const cell_t *cell, __local const uint *pw, int q, int last, int limit)
{
    const int d = CELL_OFF(cell[q]);
    const int L = CELL_LEN(cell[q]);
    int e = q + L;
    if (L < CAP)
        return e;
    for (;;) {
        const cell_t ce = e <= last ? cell[e] : 0;
        if (ce != 0 && CELL_OFF(ce) == d) {
            const int l2 = CELL_LEN(ce);
            e += l2;
            if (l2 < CAP)
                break;
        } else {
            while (e < limit) {
                const uint v = rd32(pw, e) ^ rd32(pw, e - d);
                if (v) {
                    e += (int)(ctz32(v) >> 3);
                    break;
                }
                e += 4;
            }
            e = min(e, limit);
            break;
        }
    }
    return e;
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void lz4_compress(__global const uchar *src_buf, uint src_off, uint src_pitch,
                  __global uchar *dst_buf, uint dst_off, uint dst_pitch, uint nitems CNT_ARG)
{
    __global const int *lengths = (__global const int *)src_buf;
    __global const int *caps = lengths + nitems;
    __global int *sizes = (__global int *)dst_buf;
    __global const uchar *src = src_buf + src_off;
    __global uchar *dst = dst_buf + dst_off;
    __local cpage_t cps[PPG];
    SG_SCRATCH;

    const uint lane = sg_lane();
    const uint sg = get_local_id(0) / SGS;
    const size_t item = get_group_id(0) * PPG + sg;
    if (item >= nitems)
        return; /* the whole sub-group (PPG == 1: the whole work-group) */
    __local cpage_t *P = &cps[sg];
    __local uint *x = SG_X(sg);
    __local uint *pw = (__local uint *)P->pg4;
    __local uchar *pb = (__local uchar *)P->pg4;
    __local cell_t *cell = P->cell;
    __local uint *valid = P->valid;
    CNT_DECL;

    const int n = lengths[item];
    const int cap = caps[item];
    if (n <= 0 || n > (int)src_pitch || n > PAGE || cap < 0) {
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
        if (c1 >= 0 || c2 >= 0) {
            const int lim = min(limit - p, CAP);
            int best = 0, o = 0;
            for (int k = 0; k < 2; ++k) {
                const int c = k ? c2 : c1;
                if (c < 0 || best == lim) /* c2 cannot beat a c1 that reached the cap */
                    continue;
                int L = MINMATCH;
                while (L < lim) {
                    const uint d = rd32(pw, p + L) ^ rd32(pw, c + L);
                    if (d) {
                        L += (int)(ctz32(d) >> 3);
                        break;
                    }
                    L += 4;
                }
                L = min(L, lim);
                if (L > best) { /* ties keep c1, the nearer one */
                    best = L;
                    o = p - c;
                }
            }
            ce = MKCELL(o, best);
        }
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
                const int d = CELL_OFF(cell[q]);
                int qq = q;
                while (qq > a && qq > d && pb[qq - 1] == pb[qq - 1 - d])
                    --qq;
                const int l = qq - a;
                seg_size += (uint)(1 + ext_len(l) + l + 2 + ext_len(e - qq - MINMATCH));
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
                ob[o++] = (uchar)((min(l, RUN_MASK) << 4) | min(mc, RUN_MASK));
                o = put_ext(ob, o, l);
                if (l <= SHORT) {
                    for (int i = 0; i < l; ++i)
                        ob[o + i] = pb[a + i];
                } else {
                    tk[k] |= 1u << (q & 31);
                    cell[q + 1] = (cell_t)o; /* destination; source [a, qq) */
                    cell[q + 3] = (cell_t)a;
                }
                o += l;
                ob[o++] = (uchar)(d & 255);
                ob[o++] = (uchar)(d >> 8);
                o = put_ext(ob, o, mc);
                a = e;
            }
        }
    }
    int fin_o = sum; /* the last literals: token by lane 0, bytes by all below */
    if (lane == 0) {
        ob[fin_o] = (uchar)(min(lf, RUN_MASK) << 4);
        put_ext(ob, fin_o + 1, lf);
    }
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
 * uniform loop over the sequences: every lane parses the same header (long length runs are
 * read 32 bytes a step: a ballot finds the byte that ends them), checks it, and while the
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

uint in_byte(__local const uchar *ib, __global const uchar *row, int i)
{
    return i < IN_LOCAL ? (uint)ib[i] : (uint)row[i];
}

/* The extension bytes of a length field at *ip (a run of 255s and the byte that ends it);
 * every lane reads the same bytes (no exchange needed: a page's lanes run it in step).
 * Returns the sum, or -1 when the run reaches the end of the input. */
int ext_sum(__local const uchar *ib, __global const uchar *row, int len, int *ip)
{
    int add = 0, p = *ip;
    uint b;
    do {
        if (p >= len)
            return -1;
        b = in_byte(ib, row, p++);
        add += (int)b;
    } while (b == 255u);
    *ip = p;
    return add;
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void lz4_decompress(__global const uchar *src_buf, uint src_off, uint src_pitch,
                    __global uchar *dst_buf, uint dst_off, uint dst_pitch, uint nitems CNT_ARG)
{
    __global const int *lengths = (__global const int *)src_buf;
    __global const int *caps = lengths + nitems;
    __global int *sizes = (__global int *)dst_buf;
    __global const uchar *src = src_buf + src_off;
    __global uchar *dst = dst_buf + dst_off;
    __local dpage_t dps[PPG];
    SG_SCRATCH;

    const uint lane = sg_lane();
    const uint sg = get_local_id(0) / SGS;
    const size_t item = get_group_id(0) * PPG + sg;
    if (item >= nitems)
        return;
    __local dpage_t *D = &dps[sg];
    __local uint *x = SG_X(sg);
    __local const uint *iw = (__local const uint *)D->in4;
    __local const uchar *ib = (__local const uchar *)D->in4;
    __local uint *ow = (__local uint *)D->out4;
    __local uchar *ob = (__local uchar *)D->out4;
    CNT_DECL;

    const int len = lengths[item];
    const int cap = min(caps[item], PAGE);
    __global const uchar *row = src + item * (size_t)src_pitch;
    if (len < 0 || len > (int)src_pitch || cap < 0) {
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
        if (ip >= len) {
            bad = 1;
            break;
        }
        const uint tok = in_byte(ib, row, ip++);
        int l = (int)(tok >> 4);
        if (l == RUN_MASK) {
            const int a = ext_sum(ib, row, len, &ip);
            if (a < 0) {
                bad = 1;
                break;
            }
            l += a;
        }
        if (l > len - ip) {
            bad = 1;
            break;
        }
        const int ls = ip;
        ip += l;
        const bool fin = ip == len;
        int off = 0, m = 0;
        if (!fin) {
            if (len - ip < 2) {
                bad = 1;
                break;
            }
            off = (int)(in_byte(ib, row, ip) | (in_byte(ib, row, ip + 1) << 8));
            ip += 2;
            if (off == 0 || off > op + l) {
                bad = 1;
                break;
            }
            m = (int)(tok & RUN_MASK);
            if (m == RUN_MASK) {
                const int a = ext_sum(ib, row, len, &ip);
                if (a < 0) {
                    bad = 1;
                    break;
                }
                m += a;
            }
            m += MINMATCH;
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
        if (fin)
            break;
    }
    if (!bad && ms_last >= 0 && (ms_last > op - MFLIMIT || me_last > op - LASTLITERALS))
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
