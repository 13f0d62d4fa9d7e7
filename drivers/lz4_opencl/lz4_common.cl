/*
 * What the two LZ4 programs share: kernels.cl (one work-group per page) and kernels_sg.cl
 * (one 32-lane sub-group per page) each have the line
 *     #include "lz4_common.cl"
 * and the host (device.py, `kernel_source`) puts this file's text in place of that line
 * before it builds them. The compiler is given one self-contained source: every cache keyed
 * on the program text (pyopencl's, PoCL's, the NVIDIA driver's) sees a change here, and no
 * include path has to reach the installed package.
 *
 * Here: the build parameters both programs take, the LZ4 block format's constants, the match
 * cells, the instrumented build's counters, the launch's arguments and buffers, and the
 * helper functions both call. A program defines the defaults it chooses differently
 * (HASH_LOG) before the include.
 *
 * Build-time parameters (-D...; device.py passes all of them):
 *   PAGE        largest uncompressed item in bytes (multiple of 16, <= 32768)
 *   HASH_LOG    log2 of the compressor's hash-table entries (u16 positions in local memory)
 *   CAP         match lengths are measured per position up to CAP bytes (<= 255), then
 *               chained through the cells of later positions
 *   SHORT       copies up to SHORT bytes are done by one lane, longer ones by all lanes
 *   IN_LOCAL    compressed bytes the decompressor stages in local memory (multiple of 16)
 *   E_NOSPC, E_INVAL, E_BADMSG   errno values (positive; results are their negatives)
 *   COUNT       instrumented build: the kernels take an extra `__global uint *kcnt` argument
 *               and add NCNT counters per item (see C_* below; scripts/opencl-counts)
 *
 * Standard LZ4 *block* format (no frame, no size prefix) with the LZ4 end-of-block rules:
 * the last 5 bytes are literals, the last match starts at least 12 bytes before the end,
 * inputs shorter than 13 bytes are stored as literals only.
 */

#ifndef __ENDIAN_LITTLE__
#error "little-endian devices only"
#endif

#ifndef PAGE
#define PAGE 4096
#endif
#ifndef HASH_LOG
#error "the program defines its default HASH_LOG before the include"
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

#define MINMATCH 4
#define LASTLITERALS 5
#define MFLIMIT 12
#define RUN_MASK 15

#define OUT_BOUND (PAGE + PAGE / 255 + 16)
#ifndef IN_LOCAL
#define IN_LOCAL ((OUT_BOUND + 15) / 16 * 16)
#endif
#define TAB_SIZE (1 << HASH_LOG)
#define HASH(v) (((uint)(v) * 2654435761u) >> (32 - HASH_LOG))

#if (PAGE % 16) != 0 || PAGE > 32768
#error "PAGE must be a multiple of 16, at most 32768"
#endif
#if CAP > 255
#error "CAP must fit a byte"
#endif

/* A position's match (0: none): offset and length up to CAP, in 16 bits where they fit. */
#if PAGE <= 4096 && CAP <= 19
typedef ushort cell_t;
#define MKCELL(o, l) ((ushort)(((o) << 4) | ((l) - MINMATCH)))
#define CELL_OFF(c) ((int)((c) >> 4))
#define CELL_LEN(c) ((int)((c) & 15) + MINMATCH)
#elif PAGE <= 8192 && CAP <= 11
/* 8 KiB pages: 13 bits of offset, 3 of length, so the cells take 16 KiB, not 32 (the
 * classic compressor then fits 48 KiB of local memory with 2 x 4096-entry hash tables). */
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
#define C_STEP 2    /* trips of uniform (all-lane) loops and straight sub-group phases */
#define C_LANE 3    /* lane-parallel serial trips: the most any one lane of the page ran */
#define NCNT 4
#ifdef COUNT
/* Private counters, stored once at the end: a counter update in the kernel's control flow
 * (a lane-0 atomic before each barrier) changed what PoCL compiled. Each program defines
 * CNT_DECL, LANE_TRIP(), CNT_LANE (the lane's number in its page) and CNT_LANE_TRIPS (its
 * lane-parallel trips), where it keeps them. */
#define CNT_ARG , __global uint *kcnt
#define SINGLE_TRIP() (++c_single)
#define STEP() (++c_step)
#define CNT_FLUSH()                                                     \
    do {                                                                \
        if (CNT_LANE == 0) {                                            \
            kcnt[item * NCNT + C_BARRIER] = c_bar;                      \
            kcnt[item * NCNT + C_STEP] = c_step;                        \
        }                                                               \
        atomic_add(&kcnt[item * NCNT + C_SINGLE], c_single);            \
        atomic_max(&kcnt[item * NCNT + C_LANE], CNT_LANE_TRIPS);        \
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
/* A launch: one upload and one download. The input buffer starts with lengths[nitems] and    */
/* caps[nitems] (int32), its rows (src_pitch bytes each, a multiple of 16) at src_off; the    */
/* output buffer starts with sizes[nitems], its rows at dst_off. A kernel writes only the     */
/* [0, capacity) part of its own output row. device.py's `set_page_args` is the host side.    */
/* ------------------------------------------------------------------------------------------ */

#define LAUNCH_ARGS                                                                        \
    __global const uchar *src_buf, uint src_off, uint src_pitch, __global uchar *dst_buf,  \
        uint dst_off, uint dst_pitch, uint nitems
#define LAUNCH_BUFFERS                                                  \
    __global const int *lengths = (__global const int *)src_buf;        \
    __global const int *caps = lengths + nitems;                        \
    __global int *sizes = (__global int *)dst_buf;                      \
    __global const uchar *src = src_buf + src_off;                      \
    __global uchar *dst = dst_buf + dst_off

/* An item's arguments out of range (-EINVAL): a compress input of n bytes (1 to the row's
 * pitch and PAGE) into cap bytes (>= 0), a decompress input of len bytes (0 to the pitch)
 * into cap bytes (>= 0, then at most PAGE). */
int compress_args_bad(int n, int cap, uint pitch)
{
    return n <= 0 || n > (int)pitch || n > PAGE || cap < 0;
}

int decompress_args_bad(int len, int cap, uint pitch)
{
    return len < 0 || len > (int)pitch || cap < 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Helpers of both programs                                                                   */
/* ------------------------------------------------------------------------------------------ */

uint ctz32(uint x) { return 31u - clz(x & (0u - x)); }

/* Unaligned little-endian 32-bit read at byte i of a local word array. */
uint rd32(__local const uint *w, int i)
{
    const int k = i >> 2;
    const ulong v = ((ulong)w[k + 1] << 32) | (ulong)w[k];
    return (uint)(v >> ((i & 3) * 8));
}

/* The first set bit at or after bit p of a bitmap, looking no further than word wl; -1 if
 * none. */
int next_bit(__local const uint *bits, int p, int wl)
{
    int wi = p >> 5;
    uint m = bits[wi] & (0xffffffffu << (p & 31));
    while (m == 0u && wi < wl)
        m = bits[++wi];
    return m ? wi * 32 + (int)ctz32(m) : -1;
}

/* Bytes p + L, p + L + 1, ... of a local page equal c + L, ...: the first L' >= L where they
 * differ, compared 4 bytes a step, at most lim (c may be p minus the offset). */
int match_len(__local const uint *pw, int p, int c, int L, int lim)
{
    while (L < lim) {
        const uint x = rd32(pw, p + L) ^ rd32(pw, c + L);
        if (x) {
            L += (int)(ctz32(x) >> 3);
            break;
        }
        L += 4;
    }
    return min(L, lim);
}

/* The cell of position p: the longer match of its candidates c1 (the nearer) and c2 (-1:
 * none, not both), measured up to lim bytes; ties keep c1. */
cell_t best_cell(__local const uint *pw, int p, int c1, int c2, int lim)
{
    int best = 0, o = 0;
    for (int k = 0; k < 2; ++k) {
        const int c = k ? c2 : c1;
        if (c < 0 || best == lim) /* c2 cannot beat a c1 that reached the cap */
            continue;
        const int L = match_len(pw, p, c, MINMATCH, lim);
        if (L > best) {
            best = L;
            o = p - c;
        }
    }
    return MKCELL(o, best);
}

/* End of the greedy match at valid position q: its cell's length, chained through the cells
 * of later positions with the same offset while they reach CAP, then compared 4 bytes at a
 * time, never past `limit`. Depends on q only (not on where the parse came from). */
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
            e = match_len(pw, 0, -d, e, limit);
            break;
        }
    }
    return e;
}

/* The start of a match at q with offset d, extended backwards over equal bytes down to a. */
int extend_back(__local const uchar *pb, int q, int a, int d)
{
    while (q > a && q > d && pb[q - 1] == pb[q - 1 - d])
        --q;
    return q;
}

/* Number of extra length bytes for a length field value (after the 4-bit nibble). */
int ext_len(int v) { return v >= RUN_MASK ? (v - RUN_MASK) / 255 + 1 : 0; }

/* Bytes of a sequence: l literals and a match of mc + MINMATCH bytes. */
int seq_bytes(int l, int mc) { return 1 + ext_len(l) + l + 2 + ext_len(mc); }

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

/* A sequence's token and literal length at o (l literals, match code mc); returns where its
 * literals go. */
int put_token(__local uchar *out, int o, int l, int mc)
{
    out[o++] = (uchar)((min(l, RUN_MASK) << 4) | min(mc, RUN_MASK));
    return put_ext(out, o, l);
}

/* A sequence's offset d and match length (code mc) at o; returns the end. */
int put_match(__local uchar *out, int o, int d, int mc)
{
    out[o++] = (uchar)(d & 255);
    out[o++] = (uchar)(d >> 8);
    return put_ext(out, o, mc);
}

/* Byte i of a compressed block: the first IN_LOCAL bytes from local memory, the rest (only
 * in blocks that are malformed or too large) from the input row. */
uint in_byte(__local const uchar *ib, __global const uchar *row, int i)
{
    return i < IN_LOCAL ? (uint)ib[i] : (uint)row[i];
}

/* The extension bytes of a length field at *ip (a run of 255s and the byte that ends it).
 * Returns their sum, or -1 when the run reaches the end of the input. */
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

/*
 * The sequence header at *ip of a len-byte block with op bytes decoded before it: literals
 * [*ls, *ls + *l) of the input, match offset *off and length *m (both 0 for the last
 * sequence, whose literals end the block), *ip moved past it. Returns 1 when it is
 * malformed (a field or the literals run past the input; an offset of 0 or before the
 * output's start), else 0.
 */
int seq_header(__local const uchar *ib, __global const uchar *row, int len, int op, int *ip,
               int *l, int *ls, int *off, int *m)
{
    if (*ip >= len)
        return 1;
    const uint tok = in_byte(ib, row, (*ip)++);
    int ll = (int)(tok >> 4);
    if (ll == RUN_MASK) {
        const int a = ext_sum(ib, row, len, ip);
        if (a < 0)
            return 1;
        ll += a;
    }
    if (ll > len - *ip)
        return 1;
    *l = ll;
    *ls = *ip;
    *ip += ll;
    *off = 0;
    *m = 0;
    if (*ip == len)
        return 0;
    if (len - *ip < 2)
        return 1;
    const int d = (int)(in_byte(ib, row, *ip) | (in_byte(ib, row, *ip + 1) << 8));
    *ip += 2;
    if (d == 0 || d > op + ll)
        return 1;
    int mm = (int)(tok & RUN_MASK);
    if (mm == RUN_MASK) {
        const int a = ext_sum(ib, row, len, ip);
        if (a < 0)
            return 1;
        mm += a;
    }
    *off = d;
    *m = mm + MINMATCH;
    return 0;
}

/* The end-of-block rules against the block's own decoded size n, its last match [ms, me)
 * (ms < 0: none): 1 when they are broken. */
int end_rules_broken(int ms, int me, int n)
{
    return ms >= 0 && (ms > n - MFLIMIT || me > n - LASTLITERALS);
}
