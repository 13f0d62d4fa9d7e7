/*
 * LZ4 block compression and decompression, one work-group per page.
 *
 * The format, the parameters shared with kernels_sg.cl and the helpers both call are in
 * lz4_common.cl. This program's own build-time parameters (-D...; device.py passes them):
 *   LANES       work-group size (multiple of 32)
 *   PARSE       compressor parse: 1 parallel (speculative segment walks, stitched), 0 the
 *               serial one-lane walk (both give byte-identical blocks)
 *   DPARSE      decompressor header parse: 1 parallel (falls back to 0 for anything but a
 *               well-formed block that fits), 0 the serial one-lane parse
 *
 * Only OpenCL C 1.2 core features: local atomics on 32-bit words, barriers in uniform control
 * flow (every loop around a barrier has a trip count that is the same for the whole group).
 */

#ifndef HASH_LOG
#define HASH_LOG 12
#endif
#include "lz4_common.cl"

#ifndef LANES
#define LANES 64
#endif
#ifndef PARSE
#define PARSE 1
#endif
#ifndef DPARSE
#define DPARSE 1
#endif

#define OUT_WORDS ((OUT_BOUND + 3) / 4)
#define IN_WORDS (IN_LOCAL / 4)

#define PAGE_WORDS (PAGE / 4 + 4)
#define BUCKET_LOG 7
#define NBUCKETS (1 << BUCKET_LOG)
#define MASK_WORDS (LANES / 32)
/* Every sequence but the last has a match of >= 4 bytes: at most PAGE/4 + 1 sequences. */
#define SEQ_MAX (PAGE / 4 + 2)
#define LONG_OPS (PAGE / SHORT + 2)
/* Parallel parse: segments of SEG positions (a multiple of 32), one per lane. */
#define SEG ((((PAGE + LANES - 1) / LANES) + 31) / 32 * 32)
#define SEG_WORDS (SEG / 32)
#define NSEG ((PAGE + SEG - 1) / SEG)
#define SEGMAP_WORDS (NSEG * SEG_WORDS + 1)

/* Instrumented build (-DCOUNT, lz4_common.cl): here also the work-group barriers; a lane's
 * lane-parallel trips are a private counter. */
#ifdef COUNT
#define CNT_DECL uint c_bar = 0, c_single = 0, c_step = 0, lane_trips = 0
#define CNT_LANE lid
#define CNT_LANE_TRIPS lane_trips
#define BARRIER() do { ++c_bar; barrier(CLK_LOCAL_MEM_FENCE); } while (0)
#define LANE_TRIP() (++lane_trips)
#else
#define BARRIER() barrier(CLK_LOCAL_MEM_FENCE)
#endif

#if (LANES % 32) != 0
#error "LANES must be a multiple of 32"
#endif
#if HASH_LOG < BUCKET_LOG
#error "HASH_LOG must be >= 7"
#endif

/* Copy `total` bytes of a local buffer to a global row (16-byte aligned) as words. */
void store_row(__global uchar *row, __local const uint *w, __local const uchar *b,
               int total, int lid)
{
    __global uint *roww = (__global uint *)row;
    int nw = total >> 2;
    for (int i = lid; i < nw; i += LANES)
        roww[i] = w[i];
    if (lid < (total & 3))
        row[nw * 4 + lid] = b[nw * 4 + lid];
}

/* ------------------------------------------------------------------------------------------ */
/* Compression                                                                                */
/* ------------------------------------------------------------------------------------------ */

/*
 * Phase 0: the page goes to local memory, tables are cleared.
 * Phase 1 (all lanes, windows of LANES positions): lane i hashes position base+i. A local
 *   atomic_or builds bucket -> lane bitmasks, so a lane finds the other lanes of the window
 *   with its hash in a few steps. Every position gets two candidates: c1, the latest earlier
 *   position with the same 4 bytes (an earlier lane of the window, else the `last` table entry
 *   from before the window), and c2, the oldest one known (the `first` table entry, else the
 *   earliest lane of the window); table entries count only when their 4 bytes are equal.
 *   The last lane of each hash in the window updates `last`, the first one fills an empty
 *   `first`. Every position is inserted (LZ4 inserts only the ones it visits); the oldest
 *   candidate gives the long matches the latest one misses (a zero run after a short non-zero
 *   word: the latest zeros are just before the word, the oldest ones start a long run).
 *   Each lane measures both matches up to CAP bytes (4 bytes per compare), keeps the longer
 *   (c1 on ties) in its cell and sets its bit in the `valid` bitmap.
 * Phase 2 (lane 0): the greedy parse: next valid position (bitmap scan), match length chained
 *   through later positions with the same offset (CAP bytes a step), backward extension,
 *   sequence records and output offsets. Sizes are known here, so -ENOSPC costs no output.
 * Phase 3 (all lanes): lane k writes sequence k (token, lengths, short literals, offset) into
 *   a local output buffer, long literal runs are copied by all lanes, then a coalesced copy
 *   of the block to the item's global output row.
 *
 * PARSE=1 (the default) does phases 2-3 in parallel, with the same result. The match taken
 * after position p depends on p only (next valid position q >= p, its chained end e(q); the
 * backward extension moves the start, not the end), so the parse is a walk p -> e(q).
 * 2a: lane s walks its segment [s*SEG, (s+1)*SEG) speculatively from the segment's first
 *   position, marking the starts it takes (tk) and storing e(q) in endp[q].
 * 2b: lane 0 walks the true parse: at a start q that segment's walk also took, the two walks
 *   coincide up to where the speculative walk left the segment, so it jumps there (and notes
 *   q in sconv); other starts (usually a few where a match ran over a segment boundary) it
 *   walks itself (tb). A few bitmap scans per segment instead of a walk over every match.
 * 2c-2d: lane s takes its segment's true starts (tb, plus tk from sconv on), the end of the
 *   last match before its segment (a max over the lanes below), does the backward
 *   extensions and sums its sequence sizes; a prefix sum gives every lane its output
 *   offset and the block size (-ENOSPC before any output).
 * 3: lane s writes its sequences; long literal runs are listed and copied by all lanes.
 */
typedef union {
    struct {
        ushort last[TAB_SIZE];  /* phase 1: hash -> latest position + 1 (0: empty) */
        ushort first[TAB_SIZE]; /* phase 1: hash -> first position + 1 (0: empty) */
    } t;
    uint tabw[TAB_SIZE];
    ushort seq[SEQ_MAX * 4]; /* phase 2-3: match start, match length, offset, output offset */
#if PARSE
    /* parallel parse: for a match start q, endp[q] its end; endp[q + 1..3] (inside the match,
     * never another match's start) offset or literal start, extended start, literal output */
    ushort endp[PAGE];
#endif
} comp_a;

typedef union {
    cell_t cell[PAGE];      /* phase 1-2: offset and capped length of each position's match */
    uint outw[OUT_WORDS];   /* phase 3: the compressed block */
    uchar out[OUT_WORDS * 4];
} comp_b;

typedef union {
    uint w[PAGE_WORDS];
    uchar b[PAGE_WORDS * 4];
} page_t;

typedef union {
    uint bmask[2][NBUCKETS * MASK_WORDS]; /* phase 1 */
#if PARSE
    struct {
        uint tk[SEGMAP_WORDS]; /* match starts of each segment's speculative walk */
        uint tb[SEGMAP_WORDS]; /* match starts of the true parse */
        int sexit[LANES], sconv[LANES], slast[LANES];
    } p; /* phase 2-3 of the parallel parse */
#endif
} comp_c;

__kernel __attribute__((reqd_work_group_size(LANES, 1, 1)))
void lz4_compress(LAUNCH_ARGS CNT_ARG)
{
    LAUNCH_BUFFERS; /* lz4_common.cl: the launch's buffers */
    __local page_t pg;
    __local comp_a ua;
    __local comp_b ub;
    __local uint valid[PAGE / 32 + 1];
    __local comp_c uc;
    __local uint wv[LANES];
    __local ushort longl[LONG_OPS];
    __local int s_nseq, s_total, s_nlong;
#if PARSE
    __local int s_anchor, s_finlong;
#endif

    const int lid = (int)get_local_id(0);
    const size_t item = get_group_id(0);
    CNT_DECL;
    const int n = lengths[item];
    const int cap = caps[item];

    if (compress_args_bad(n, cap, src_pitch)) {
        if (lid == 0)
            sizes[item] = -E_INVAL;
        return;
    }

    /* Phase 0 */
    {
        __global const uint *row = (__global const uint *)(src + item * (size_t)src_pitch);
        const int nw = (n + 3) >> 2;
        /* bytes past n in the last word are cleared: the parse never looks at them, but the
         * match-length compares read them (and clip), so the output stays deterministic */
        const uint tail = (n & 3) ? (1u << ((n & 3) * 8)) - 1u : 0xffffffffu;
        for (int i = lid; i < PAGE_WORDS; i += LANES)
            pg.w[i] = i < nw ? (i == nw - 1 ? row[i] & tail : row[i]) : 0u;
        for (int i = lid; i < TAB_SIZE; i += LANES)
            ua.tabw[i] = 0u;
        for (int i = lid; i < 2 * NBUCKETS * MASK_WORDS; i += LANES)
            uc.bmask[i / (NBUCKETS * MASK_WORDS)][i % (NBUCKETS * MASK_WORDS)] = 0u;
        for (int i = lid; i < PAGE / 32 + 1; i += LANES)
            valid[i] = 0u;
    }
    BARRIER();

    const int last = n - MFLIMIT;         /* last position that may start a match */
    const int limit = n - LASTLITERALS;   /* a match ends at or before this position */
    const int nwin = last >= 1 ? last / LANES + 1 : 0;

    /* Phase 1 */
    for (int win = 0; win < nwin; ++win) {
        STEP();
        __local uint *bm = uc.bmask[win & 1];
        const int base = win * LANES;
        const int p = base + lid;
        const bool act = p <= last;
        const int mw = lid >> 5;
        uint v = 0u, h = 0u, bk = 0u;
        /* No barrier needed here: the previous window read wv and this window's mask buffer
         * before its second barrier; its table writes are ordered by the barrier below. */
        if (act) {
            v = rd32(pg.w, p);
            h = HASH(v);
            bk = h >> (HASH_LOG - BUCKET_LOG);
            atomic_or(&bm[bk * MASK_WORDS + mw], 1u << (lid & 31));
            wv[lid] = v;
        }
        BARRIER();
        int c1 = -1, c2 = -1;
        bool last_h = true, first_h = true;
        if (act) {
            /* lower lanes from the bottom: earliest lane with this value, first of this hash? */
            int early = -1;
            for (int wd = 0; wd <= mw && early < 0; ++wd) {
                uint m = bm[bk * MASK_WORDS + wd];
                if (wd == mw)
                    m &= (1u << (lid & 31)) - 1u;
                while (m) {
                    const int j = (int)ctz32(m);
                    const uint x = wv[wd * 32 + j];
                    if (x == v) {
                        early = wd * 32 + j;
                        first_h = false;
                        break;
                    }
                    if (HASH(x) == h)
                        first_h = false;
                    m &= m - 1u;
                }
            }
            /* lower lanes from the top: latest lane with this value */
            int late = -1;
            for (int wd = mw; wd >= 0 && early >= 0 && late < 0; --wd) {
                uint m = bm[bk * MASK_WORDS + wd];
                if (wd == mw)
                    m &= (1u << (lid & 31)) - 1u;
                while (m) {
                    const int j = 31 - (int)clz(m);
                    if (wv[wd * 32 + j] == v) {
                        late = wd * 32 + j;
                        break;
                    }
                    m &= ~(1u << j);
                }
            }
            /* upper lanes: is this the last lane of the window with this hash? */
            for (int wd = mw; wd < MASK_WORDS && last_h; ++wd) {
                uint m = bm[bk * MASK_WORDS + wd];
                if (wd == mw)
                    m &= ~((2u << (lid & 31)) - 1u);
                while (m) {
                    const int j = (int)ctz32(m);
                    if (HASH(wv[wd * 32 + j]) == h) {
                        last_h = false;
                        break;
                    }
                    m &= m - 1u;
                }
            }
            /* c1: the latest earlier position with this value; c2: the oldest one we know */
            if (late >= 0) {
                c1 = base + late;
            } else {
                const int t = (int)ua.t.last[h];
                if (t != 0 && rd32(pg.w, t - 1) == v)
                    c1 = t - 1;
            }
            {
                const int t = (int)ua.t.first[h];
                if (t != 0 && rd32(pg.w, t - 1) == v)
                    c2 = t - 1;
                else if (early >= 0)
                    c2 = base + early;
            }
            if (c2 == c1)
                c2 = -1;
        }
        BARRIER();
        if (act) {
            if (last_h)
                ua.t.last[h] = (ushort)(p + 1);
            if (first_h && ua.t.first[h] == 0)
                ua.t.first[h] = (ushort)(p + 1);
            bm[bk * MASK_WORDS + mw] = 0u;
            cell_t cell = 0;
            if (c1 >= 0 || c2 >= 0) {
                cell = best_cell(pg.w, p, c1, c2, min(limit - p, CAP));
                atomic_or(&valid[p >> 5], 1u << (p & 31));
            }
            ub.cell[p] = cell;
        }
    }
    BARRIER();

#if PARSE
    /* Phase 2a (lanes < NSEG): segment lid's speculative greedy walk from its first position;
     * the match starts it takes go to tk, their ends to endp, where it stops to sexit. */
    if (lid < NSEG) {
        const int s0 = lid * SEG;
        for (int w = 0; w < SEG_WORDS; ++w) {
            uc.p.tk[lid * SEG_WORDS + w] = 0u;
            uc.p.tb[lid * SEG_WORDS + w] = 0u;
        }
        uc.p.sconv[lid] = PAGE + SEG; /* none */
        const int wl = min(s0 + SEG - 1, last) >> 5;
        int p = s0;
        while (p < s0 + SEG && p <= last) {
            LANE_TRIP();
            const int q = next_bit(valid, p, wl);
            if (q < 0)
                break;
            uc.p.tk[q >> 5] |= 1u << (q & 31);
            p = match_end(ub.cell, pg.w, q, last, limit);
            ua.endp[q] = (ushort)p;
        }
        uc.p.sexit[lid] = p;
    }
    BARRIER();

    /* Phase 2b (lane 0): the true walk. Greedy parse from a position is deterministic, so
     * once the true walk takes a match start that the segment's speculative walk took, it
     * follows that walk to its stop (sconv records where); other starts are walked here. */
    if (lid == 0) {
        int p = 0;
        const int wl = last >> 5;
        while (p <= last) {
            SINGLE_TRIP();
            const int q = next_bit(valid, p, wl);
            if (q < 0)
                break;
            const int sg = q / SEG;
            if (uc.p.tk[q >> 5] & (1u << (q & 31))) {
                uc.p.sconv[sg] = q;
                p = uc.p.sexit[sg];
            } else {
                uc.p.tb[q >> 5] |= 1u << (q & 31);
                p = match_end(ub.cell, pg.w, q, last, limit);
                ua.endp[q] = (ushort)p;
            }
        }
        s_anchor = p;
        s_nlong = 0;
    }
    BARRIER();

    /* Phase 2c: the true match starts of each segment, and the end of its last match */
    if (lid < NSEG) {
        const int c = uc.p.sconv[lid];
        int lastq = -1;
        for (int w = 0; w < SEG_WORDS; ++w) {
            const int i = lid * SEG_WORDS + w;
            const int b = i * 32;
            const uint ge = c <= b ? 0xffffffffu : (c < b + 32 ? 0xffffffffu << (c - b) : 0u);
            const uint t = uc.p.tb[i] | (uc.p.tk[i] & ge);
            uc.p.tb[i] = t;
            if (t)
                lastq = b + 31 - (int)clz(t);
        }
        uc.p.slast[lid] = lastq >= 0 ? (int)ua.endp[lastq] : 0;
    }
    BARRIER();

    /* Phase 2d: backward extension (from the previous match's end) and sequence sizes */
    int pe = 0;
    uint seg_size = 0u;
    if (lid < NSEG) {
        for (int j = 0; j < lid; ++j)
            pe = max(pe, uc.p.slast[j]);
        int a = pe;
        for (int w = 0; w < SEG_WORDS; ++w) {
            const int i = lid * SEG_WORDS + w;
            uint t = uc.p.tb[i];
            while (t) {
                LANE_TRIP();
                const int q = i * 32 + (int)ctz32(t);
                t &= t - 1u;
                const int e = ua.endp[q];
                const int d = CELL_OFF(ub.cell[q]);
                const int qq = extend_back(pg.b, q, a, d);
                seg_size += (uint)seq_bytes(qq - a, e - qq - MINMATCH);
                ua.endp[q + 1] = (ushort)d;
                ua.endp[q + 2] = (ushort)qq;
                a = e;
            }
        }
    }
    wv[lid] = seg_size;
    BARRIER();

    uint before = 0u, sum = 0u;
    for (int j = 0; j < LANES; ++j) {
        const uint x = wv[j];
        before += j < lid ? x : 0u;
        sum += x;
    }
    const int anchor = s_anchor;
    const int lf = n - anchor;
    const int total = (int)sum + 1 + ext_len(lf) + lf;
    if (total > cap || total > OUT_WORDS * 4) { /* the second never happens: total <= bound */
        if (lid == 0)
            sizes[item] = -E_NOSPC;
        return;
    }

    /* Phase 3: lane lid writes the sequences of its segment's matches (long literal runs are
     * listed for all lanes), lane 0 also the last literals */
    if (lid < NSEG) {
        int a = pe, o = (int)before;
        for (int w = 0; w < SEG_WORDS; ++w) {
            const int i = lid * SEG_WORDS + w;
            uint t = uc.p.tb[i];
            while (t) {
                LANE_TRIP();
                const int q = i * 32 + (int)ctz32(t);
                t &= t - 1u;
                const int e = ua.endp[q];
                const int d = ua.endp[q + 1];
                const int qq = ua.endp[q + 2];
                const int l = qq - a;
                const int mc = e - qq - MINMATCH;
                o = put_token(ub.out, o, l, mc);
                if (l <= SHORT) {
                    for (int k = 0; k < l; ++k)
                        ub.out[o + k] = pg.b[a + k];
                } else {
                    longl[atomic_inc(&s_nlong)] = (ushort)q;
                    ua.endp[q + 1] = (ushort)a;
                    ua.endp[q + 3] = (ushort)o;
                }
                o = put_match(ub.out, o + l, d, mc);
                a = e;
            }
        }
    }
    if (lid == 0) {
        const int o = put_token(ub.out, (int)sum, lf, 0);
        if (lf <= SHORT) {
            for (int k = 0; k < lf; ++k)
                ub.out[o + k] = pg.b[anchor + k];
        }
        s_finlong = lf > SHORT ? o : -1;
    }
    BARRIER();
    {
        const int nlong = s_nlong;
        for (int e = 0; e < nlong; ++e) {
            STEP();
            const int q = longl[e];
            const int ls = ua.endp[q + 1];
            const int l = ua.endp[q + 2] - ls;
            const int o = ua.endp[q + 3];
            for (int i = lid; i < l; i += LANES)
                ub.out[o + i] = pg.b[ls + i];
        }
        const int of = s_finlong;
        if (of >= 0) {
            for (int i = lid; i < lf; i += LANES)
                ub.out[of + i] = pg.b[anchor + i];
        }
    }
    BARRIER();
#else
    /* Phase 2 */
    if (lid == 0) {
        int anchor = 0, p = 0, k = 0, opos = 0, nlong = 0;
        while (p <= last) {
            SINGLE_TRIP();
            const int q0 = next_bit(valid, p, last >> 5);
            if (q0 < 0)
                break;
            const int d = CELL_OFF(ub.cell[q0]);
            const int e = match_end(ub.cell, pg.w, q0, last, limit);
            const int q = extend_back(pg.b, q0, anchor, d);
            const int L = e - q;
            const int l = q - anchor;
            ua.seq[4 * k + 0] = (ushort)q;
            ua.seq[4 * k + 1] = (ushort)L;
            ua.seq[4 * k + 2] = (ushort)d;
            ua.seq[4 * k + 3] = (ushort)opos;
            if (l > SHORT)
                longl[nlong++] = (ushort)k;
            opos += seq_bytes(l, L - MINMATCH);
            ++k;
            anchor = e;
            p = anchor;
        }
        const int l = n - anchor;
        ua.seq[4 * k + 0] = (ushort)n; /* n == PAGE wraps to 0: only read as ms - ls below */
        ua.seq[4 * k + 1] = 0;
        ua.seq[4 * k + 2] = 0;
        ua.seq[4 * k + 3] = (ushort)opos;
        if (l > SHORT)
            longl[nlong++] = (ushort)k;
        opos += 1 + ext_len(l) + l;
        s_nseq = k + 1;
        s_total = opos;
        s_nlong = nlong;
    }
    BARRIER();

    const int nseq = s_nseq, total = s_total, nlong = s_nlong;
    if (total > cap || total > OUT_WORDS * 4) { /* the second never happens: total <= bound */
        if (lid == 0)
            sizes[item] = -E_NOSPC;
        return;
    }

    /* Phase 3 */
    for (int k = lid; k < nseq; k += LANES) {
        const bool fin = k == nseq - 1;
        const int ms = fin ? n : ua.seq[4 * k + 0];
        const int ml = ua.seq[4 * k + 1];
        const int of = ua.seq[4 * k + 2];
        int o = ua.seq[4 * k + 3];
        const int ls = k ? ua.seq[4 * (k - 1)] + ua.seq[4 * (k - 1) + 1] : 0;
        const int l = ms - ls;
        const int mc = fin ? 0 : ml - MINMATCH;
        o = put_token(ub.out, o, l, mc);
        if (l <= SHORT) {
            for (int i = 0; i < l; ++i)
                ub.out[o + i] = pg.b[ls + i];
        }
        if (!fin)
            put_match(ub.out, o + l, of, mc);
    }
    for (int e = 0; e < nlong; ++e) {
        STEP();
        const int k = longl[e];
        const bool fin = k == nseq - 1;
        const int ms = fin ? n : ua.seq[4 * k + 0];
        const int ls = k ? ua.seq[4 * (k - 1)] + ua.seq[4 * (k - 1) + 1] : 0;
        const int l = ms - ls;
        const int o = ua.seq[4 * k + 3] + 1 + ext_len(l);
        for (int i = lid; i < l; i += LANES)
            ub.out[o + i] = pg.b[ls + i];
    }
    BARRIER();

#endif

    CNT_FLUSH();
    store_row(dst + item * (size_t)dst_pitch, ub.outw, ub.out, total, lid);
    if (lid == 0)
        sizes[item] = total;
}

/* ------------------------------------------------------------------------------------------ */
/* Decompression                                                                              */
/* ------------------------------------------------------------------------------------------ */

/*
 * Phase 0: the first IN_LOCAL bytes of the block go to local memory (the rest, only possible
 *   in blocks that are malformed or too large, is read from global memory).
 * Phase 1 (lane 0): parse and validate every sequence header of the whole block (bounded by
 *   the input length: every step consumes a byte). A block is well formed when every literal
 *   run lies inside the input, every offset is in [1, bytes decoded so far], the block ends
 *   right after the literals of a sequence, and it keeps the end-of-block rules for its own
 *   decoded size n: the last match starts at or before n - 12 and ends at or before n - 5.
 *   These are the blocks LZ4_decompress_safe() accepts with an n-byte output buffer, less
 *   the ones with offset 0 (which it decodes from uninitialised output). A well-formed block
 *   larger than `cap` is -ENOSPC, anything else -EBADMSG, whatever `cap` is (so every block
 *   accepted here is accepted by LZ4_decompress_safe() with `cap` bytes of output too, and
 *   decoded the same way). While the output fits `cap` the sequences are
 *   recorded; the copy operations (literal run, match) are split into groups so that every
 *   match of a group reads only bytes written before the group started.
 *   DPARSE=1 first tries a parallel parse (see the kernel) for blocks held in local memory:
 *   every lane computes, for each byte of its segment of the block, where a chain of headers
 *   starting there leaves the segment; lane 0 follows the true chain in one step per
 *   segment; the lanes walk and record their segments' headers (prefix sums give sequence
 *   numbers and output offsets) and check the offsets; lane 0 checks the end-of-block rules
 *   and groups the copies. Only a well-formed block that fits `cap` is taken from it: every
 *   other block (malformed, -ENOSPC, longer than IN_LOCAL) goes through the serial parse, so
 *   the errors are decided by the same code either way.
 * Phase 2 (all lanes, one barrier per group): lane j copies the short operations j, j+LANES..
 *   of the group itself, then all lanes copy the long ones together (a match with offset <
 *   length reads out[start - off + i % off]). Nothing is written before the whole block is
 *   known to be valid and to fit, so a bad item writes nothing to its output row.
 * Phase 3: coalesced copy of the decoded bytes to the item's output row.
 */
typedef union {
    uint w[IN_WORDS];
    uchar b[IN_LOCAL];
} din_t;

typedef union {
    uint w[PAGE / 4 + 1];
    uchar b[PAGE + 4];
} dout_t;

/* Phase 1 of the parallel parse keeps, per input position, where a header chain from it
 * leaves its segment (F); the arrays of the copy phase are written only after that. */
typedef union {
#if DPARSE
    ushort F[IN_LOCAL];
#endif
    struct {
        ushort g_start[SEQ_MAX + 2], g_lend[SEQ_MAX + 2];
        ushort longl[LONG_OPS];
        dout_t out;
    } c;
} dmix_t;

#if DPARSE
#define D_BAD 0xffff
/* Where the next sequence header starts if one starts at byte i of a len-byte block held in
 * local memory: len if the sequence is the last one (its literals end the block), -1 if the
 * header does not parse (or a match length field is longer than any page needs: the serial
 * parse then decides). Never reads at or past len. */
int hdr_next(__local const uchar *b, int i, int len)
{
    int ip = i;
    const uint tok = b[ip++];
    int l = (int)(tok >> 4);
    if (l == RUN_MASK) {
        uint x;
        do {
            if (ip >= len || l > len)
                return -1;
            x = b[ip++];
            l += (int)x;
        } while (x == 255);
    }
    if (l > len - ip)
        return -1;
    ip += l;
    if (ip == len)
        return len;
    if (len - ip < 2)
        return -1;
    ip += 2;
    if ((tok & RUN_MASK) == RUN_MASK) {
        uint x;
        int c = 0;
        do {
            if (ip >= len || ++c > PAGE / 255 + 2)
                return -1;
            x = b[ip++];
        } while (x == 255);
    }
    return ip < len ? ip : -1;
}

/* The header at p (known to parse): literal length, start, offset and match length (0 for
 * the last sequence); returns where the next header starts (len after the last). */
int hdr_full(__local const uchar *b, int p, int len, int *l, int *ls, int *off, int *m)
{
    int ip = p;
    const uint tok = b[ip++];
    int ll = (int)(tok >> 4);
    if (ll == RUN_MASK) {
        uint x;
        do {
            x = b[ip++];
            ll += (int)x;
        } while (x == 255);
    }
    *l = ll;
    *ls = ip;
    ip += ll;
    if (ip == len) {
        *off = 0;
        *m = 0;
        return len;
    }
    *off = (int)((uint)b[ip] | ((uint)b[ip + 1] << 8));
    ip += 2;
    int mm = (int)(tok & RUN_MASK);
    if (mm == RUN_MASK) {
        uint x;
        do {
            x = b[ip++];
            mm += (int)x;
        } while (x == 255);
    }
    *m = mm + MINMATCH;
    return ip;
}
#endif

__kernel __attribute__((reqd_work_group_size(LANES, 1, 1)))
void lz4_decompress(LAUNCH_ARGS CNT_ARG)
{
    LAUNCH_BUFFERS;
    __local din_t in;
    __local ushort s_o[SEQ_MAX], s_ls[SEQ_MAX], s_l[SEQ_MAX], s_off[SEQ_MAX], s_m[SEQ_MAX];
    __local dmix_t dm;
#if DPARSE
    __local int dentry[LANES], dcnt[LANES], dosum[LANES];
    __local int s_fallback, s_bad;
#endif
    __local int s_status, s_ng, s_total;

    const int lid = (int)get_local_id(0);
    const size_t item = get_group_id(0);
    CNT_DECL;
    const int len = lengths[item];
    const int cap = min(caps[item], PAGE);
    __global const uchar *row = src + item * (size_t)src_pitch;

    if (decompress_args_bad(len, cap, src_pitch)) {
        if (lid == 0)
            sizes[item] = -E_INVAL;
        return;
    }

    /* Phase 0 */
    {
        __global const uint *roww = (__global const uint *)row;
        const int nw = min((len + 3) >> 2, IN_WORDS);
        for (int i = lid; i < nw; i += LANES)
            in.w[i] = roww[i];
    }
    BARRIER();

    /* Phase 1 */
    int fallback = 1;
#if DPARSE
    /* Parallel: lane s takes input bytes [s*sd, s*sd + sd). 1a: for every byte i of its segment
     * (from the top), F[i] = where the chain of headers starting at i leaves the segment (len
     * after the last sequence, D_BAD if a header on it does not parse). 1b: lane 0 follows the
     * true chain from 0 with F, one step per segment, noting where it enters each one. 1c-1d:
     * lanes walk their segment's true headers, count sequences and output bytes, prefix
     * sums, records and offset checks. 1e: lane 0 checks the end-of-block rules and splits
     * the copies into groups. Anything but a well-formed block that fits (or a block longer
     * than IN_LOCAL) is left to the serial parse below, so errors are decided as before. */
    {
        /* every barrier below is reached by all lanes; the work is guarded instead */
        const bool try_par = len > 0 && len <= IN_LOCAL;
        const int sd = max((len + LANES - 1) / LANES, 1);
        if (try_par) {
            for (int j = 0; j < sd; ++j) {
                LANE_TRIP();
                const int e = min(lid * sd + sd, len);
                const int i = e - 1 - j;
                if (i >= lid * sd) {
                    const int nx = hdr_next(in.b, i, len);
                    const int f = nx < 0 ? D_BAD : (nx >= e ? nx : (int)dm.F[nx]);
                    dm.F[i] = (ushort)f;
                }
            }
        }
        dentry[lid] = -1;
        if (lid == 0) {
            s_bad = 0;
            s_fallback = 1;
        }
        BARRIER();
        if (lid == 0 && try_par) {
            int p = 0, fb = 0;
            while (p < len) {
                SINGLE_TRIP();
                dentry[p / sd] = p;
                const int f = dm.F[p];
                if (f == D_BAD) {
                    fb = 1;
                    break;
                }
                p = f;
            }
            s_fallback = fb;
        }
        BARRIER();
        const bool chain_ok = s_fallback == 0;
        const int e0 = chain_ok ? dentry[lid] : -1;
        const int s1 = min(lid * sd + sd, len);
        int cnt = 0, osum = 0;
        if (e0 >= 0) {
            int p = e0;
            do {
                LANE_TRIP();
                int l, ls, off, m;
                p = hdr_full(in.b, p, len, &l, &ls, &off, &m);
                ++cnt;
                osum += l + m;
            } while (p < s1);
        }
        dcnt[lid] = cnt;
        dosum[lid] = osum;
        BARRIER();
        int k = 0, op = 0, nk = 0, tot = 0;
        for (int j = 0; j < LANES; ++j) {
            const int c = dcnt[j], o = dosum[j];
            k += j < lid ? c : 0;
            op += j < lid ? o : 0;
            nk += c;
            tot += o;
        }
        /* a block larger than cap: -ENOSPC or -EBADMSG, the serial parse says which */
        const bool go = chain_ok && tot <= cap;
        if (go && e0 >= 0) {
            int p = e0;
            do {
                LANE_TRIP();
                int l, ls, off, m;
                p = hdr_full(in.b, p, len, &l, &ls, &off, &m);
                if (m && (off == 0 || off > op + l))
                    atomic_or(&s_bad, 1);
                s_o[k] = (ushort)op;
                s_ls[k] = (ushort)ls;
                s_l[k] = (ushort)l;
                s_off[k] = (ushort)off;
                s_m[k] = (ushort)m;
                ++k;
                op += l + m;
            } while (p < s1);
        }
        BARRIER();
        if (lid == 0) {
            int fb = !go || s_bad;
            if (!fb && nk >= 2) {
                const int ms = s_o[nk - 2] + s_l[nk - 2], me = ms + s_m[nk - 2];
                fb = end_rules_broken(ms, me, tot);
            }
            if (!fb) {
                int gs = 0, ng = 1, nl = 0;
                dm.c.g_start[0] = 0;
                for (int q = 0; q < nk; ++q) {
                    SINGLE_TRIP();
                    const int l = s_l[q], m = s_m[q];
                    if (l > SHORT)
                        dm.c.longl[nl++] = (ushort)(2 * q);
                    if (m) {
                        const int st = s_o[q] + l, off = s_off[q];
                        if (st - off + min(m, off) > gs) {
                            dm.c.g_lend[ng - 1] = (ushort)nl;
                            dm.c.g_start[ng++] = (ushort)(2 * q + 1);
                            gs = st;
                        }
                        if (m > SHORT)
                            dm.c.longl[nl++] = (ushort)(2 * q + 1);
                    }
                }
                dm.c.g_lend[ng - 1] = (ushort)nl;
                dm.c.g_start[ng] = (ushort)(2 * nk);
                s_status = 0;
                s_ng = ng;
                s_total = tot;
            }
            s_fallback = fb;
        }
        BARRIER();
        fallback = s_fallback;
    }
#endif
    if (fallback) {
        if (lid == 0) {
            int ip = 0, op = 0, k = 0, gs = 0, ng = 1, nl = 0;
            int ms_last = -1, me_last = 0; /* output start and end of the last match */
            int status = 0;                /* 0 ok, 1 malformed */
            bool fits = true;
            dm.c.g_start[0] = 0;
            for (;;) {
                SINGLE_TRIP();
                int l, ls, off, m; /* m == 0: the last sequence */
                if (seq_header(in.b, row, len, op, &ip, &l, &ls, &off, &m)) {
                    status = 1;
                    break;
                }
                if (m) {
                    ms_last = op + l;
                    me_last = op + l + m;
                }
                if (fits && op + l + m > cap)
                    fits = false;
                if (fits) {
                    s_o[k] = (ushort)op;
                    s_ls[k] = (ushort)ls;
                    s_l[k] = (ushort)l;
                    s_off[k] = (ushort)off;
                    s_m[k] = (ushort)m;
                    if (l > SHORT)
                        dm.c.longl[nl++] = (ushort)(2 * k);
                    if (m) {
                        const int s = op + l;
                        if (s - off + min(m, off) > gs) {
                            dm.c.g_lend[ng - 1] = (ushort)nl;
                            dm.c.g_start[ng++] = (ushort)(2 * k + 1);
                            gs = s;
                        }
                        if (m > SHORT)
                            dm.c.longl[nl++] = (ushort)(2 * k + 1);
                    }
                    ++k;
                }
                op += l + m;
                if (!m)
                    break;
            }
            if (!status && end_rules_broken(ms_last, me_last, op))
                status = 1;
            dm.c.g_lend[ng - 1] = (ushort)nl;
            dm.c.g_start[ng] = (ushort)(2 * k);
            s_status = status ? -E_BADMSG : (fits ? 0 : -E_NOSPC);
            s_ng = ng;
            s_total = op;
        }
        BARRIER();
    }

    const int status = s_status;
    if (status) {
        if (lid == 0)
            sizes[item] = status;
        return;
    }
    const int ng = s_ng, total = s_total;

    /* Phase 2 */
    for (int g = 0; g < ng; ++g) {
        STEP();
        const int a = dm.c.g_start[g], z = dm.c.g_start[g + 1];
        for (int opi = a + lid; opi < z; opi += LANES) {
            LANE_TRIP();
            const int k = opi >> 1;
            if (opi & 1) {
                const int m = s_m[k];
                if (m <= SHORT) {
                    const int s = s_o[k] + s_l[k];
                    const int from = s - s_off[k];
                    for (int i = 0; i < m; ++i)
                        dm.c.out.b[s + i] = dm.c.out.b[from + i];
                }
            } else {
                const int l = s_l[k];
                if (l <= SHORT) {
                    const int o = s_o[k], ls = s_ls[k];
                    for (int i = 0; i < l; ++i)
                        dm.c.out.b[o + i] = (uchar)in_byte(in.b, row, ls + i);
                }
            }
        }
        const int la = g ? dm.c.g_lend[g - 1] : 0, lz = dm.c.g_lend[g];
        for (int e = la; e < lz; ++e) {
            STEP();
            const int opi = dm.c.longl[e];
            const int k = opi >> 1;
            if (opi & 1) {
                const int m = s_m[k], off = s_off[k];
                const int s = s_o[k] + s_l[k];
                const int from = s - off;
                if (off >= m) {
                    for (int i = lid; i < m; i += LANES)
                        dm.c.out.b[s + i] = dm.c.out.b[from + i];
                } else {
                    for (int i = lid; i < m; i += LANES)
                        dm.c.out.b[s + i] = dm.c.out.b[from + i % off];
                }
            } else {
                const int l = s_l[k], o = s_o[k], ls = s_ls[k];
                for (int i = lid; i < l; i += LANES)
                    dm.c.out.b[o + i] = (uchar)in_byte(in.b, row, ls + i);
            }
        }
        BARRIER();
    }

    /* Phase 3 */
    CNT_FLUSH();
    store_row(dst + item * (size_t)dst_pitch, dm.c.out.w, dm.c.out.b, total, lid);
    if (lid == 0)
        sizes[item] = total;
}
