/*
 * Compaction of compress results on the device (the host path's, not the LZ4 kernels'):
 * lz4_scan_sizes turns the sizes the compressor wrote into byte offsets (exclusive prefix sum
 * of the positive sizes; offsets[n] is the total), lz4_gather copies each block from its
 * padded row to its offset in one packed buffer, so the download carries the compressed bytes
 * only. Failed items (negative sizes) take no bytes.
 */

__kernel void lz4_scan_sizes(__global const int *sizes, __global uint *offsets, uint n)
{
    /* one work-group: each lane sums a contiguous chunk, lane 0 scans the chunk sums in
     * local memory, then each lane writes its chunk's offsets */
    __local uint part[SCAN_LANES];
    const uint lid = (uint)get_local_id(0);
    const uint per = (n + SCAN_LANES - 1) / SCAN_LANES;
    const uint a = min(lid * per, n), b = min(a + per, n);
    uint s = 0;
    for (uint i = a; i < b; i++) {
        const int v = sizes[i];
        s += v > 0 ? (uint)v : 0u;
    }
    part[lid] = s;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid == 0) {
        uint acc = 0;
        for (uint k = 0; k < SCAN_LANES; k++) {
            const uint t = part[k];
            part[k] = acc;
            acc += t;
        }
        offsets[n] = acc;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    uint o = part[lid];
    for (uint i = a; i < b; i++) {
        offsets[i] = o;
        const int v = sizes[i];
        o += v > 0 ? (uint)v : 0u;
    }
}

__kernel void lz4_gather(__global const uchar *rows, uint rows_off, uint pitch,
                         __global const int *sizes, __global const uint *offsets,
                         __global uchar *packed)
{
    /* one work-group per item, its lanes copy the block's bytes */
    const size_t item = get_group_id(0);
    const int len = sizes[item];
    if (len <= 0)
        return;
    __global const uchar *src = rows + rows_off + item * (size_t)pitch;
    __global uchar *dst = packed + offsets[item];
    for (int i = (int)get_local_id(0); i < len; i += (int)get_local_size(0))
        dst[i] = src[i];
}

__kernel void lz4_scatter(__global const uchar *src, uint packed_off, uint nitems,
                          __global uchar *rows, uint rows_off, uint pitch)
{
    /* Decompress from packed blocks: the upload carried the header (lengths[n], caps[n],
     * rel[n]: each block's offset in the packed bytes) and the packed bytes; one work-group
     * per item copies its block into its padded row of the kernel's input buffer. */
    const size_t item = get_group_id(0);
    __global const int *lengths = (__global const int *)src;
    __global const uint *rel = (__global const uint *)src + 2 * (size_t)nitems;
    const int len = lengths[item];
    if (len <= 0 || len > (int)pitch)
        return;
    __global const uchar *from = src + packed_off + rel[item];
    __global uchar *to = rows + rows_off + item * (size_t)pitch;
    for (int i = (int)get_local_id(0); i < len; i += (int)get_local_size(0))
        to[i] = from[i];
}
