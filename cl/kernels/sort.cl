/* cl/kernels: the sort job on the device - an LSD radix sort whose keys are computed on the
 * fly from each element's bits (host/sort.c's bijection), so the arrays hold raw values
 * throughout and no pass maps them in or out. cl/sort.c drives the passes.
 *
 * Per pass: sort_count_* writes each block's histogram of the pass's digit into
 * hist[digit value * nblocks + block]; sort_scan turns that digit-major table into an
 * exclusive prefix sum, which is each block's first output slot per digit value;
 * sort_scatter_* moves every element to its slot, stably within the block (blocks are
 * contiguous and in order, so the whole pass is stable, as LSD needs).
 * The digit-0 count also reduces the AND and OR of all keys, from which the host skips
 * every pass whose digit is the same in every key.
 *
 * Two variants, chosen by HY_CL_CPU (a build option from the device type):
 *  1: a work-group is one work-item walking one long block serially: the scalar loop a CPU
 *     runs well, counters in private memory, stability for free. 11-bit digits (three
 *     passes for 32-bit keys): on PoCL that measured about 20% faster than 8-bit ones.
 *  0: a work-group of SORT_LOCAL work-items per block of SORT_TILE elements: 4-bit digits
 *     (the per-item counters live in local memory), loads and stores coalesced through
 *     local memory, and stability from each work-item owning a contiguous run of the block
 *     plus a scan of the per-item counts.
 * cl/sort.c mirrors SORT_BITS, SORT_LOCAL and SORT_ITEMS; it checks the local size against
 * the kernels' reqd_work_group_size. */

#ifndef HY_CL_CPU
#define HY_CL_CPU 0
#endif

#if HY_CL_CPU
#define SORT_BITS 11
#define SORT_LOCAL 1
#else
#define SORT_BITS 4
#define SORT_LOCAL 128
#define SORT_ITEMS 16
#define SORT_TILE (SORT_LOCAL * SORT_ITEMS)
/* Local arrays get one spare word per 32, so work-items reading with a stride of 16 words
 * (a run each) fall in different banks. */
#define PAD(i) ((i) + ((i) >> 5))
#define PADDED(n) ((n) + (n) / 32)
#endif
#define SORT_RADIX (1u << SORT_BITS)
#define SORT_MASK (SORT_RADIX - 1u)

/* Exclusive prefix sum over hist[0 .. m) in place, by one work-group: each work-item sums a
 * contiguous segment, the segment sums are scanned in local memory, then each segment is
 * rewritten. The table is small (digits x blocks), so one work-group is enough. */
__kernel __attribute__((reqd_work_group_size(SORT_LOCAL, 1, 1)))
void sort_scan(__global uint *hist, uint m)
{
    __local uint sums[SORT_LOCAL];
    uint t = get_local_id(0);
    uint seg = m / SORT_LOCAL + 1;
    uint lo = min(t * seg, m), hi = min(lo + seg, m);
    uint s = 0;
    for (uint i = lo; i < hi; i++)
        s += hist[i];
    sums[t] = s;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (t == 0) {
        uint acc = 0;
        for (uint j = 0; j < SORT_LOCAL; j++) {
            uint v = sums[j];
            sums[j] = acc;
            acc += v;
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    uint acc = sums[t];
    for (uint i = lo; i < hi; i++) {
        uint v = hist[i];
        hist[i] = acc;
        acc += v;
    }
}

#if !HY_CL_CPU
/* Inclusive scan of s[0 .. SORT_LOCAL) by the work-group (Hillis-Steele); every work-item
 * must call it. */
static void wg_inclusive_scan(__local uint *s, uint t)
{
    for (uint off = 1; off < SORT_LOCAL; off <<= 1) {
        uint v = t >= off ? s[t - off] : 0u;
        barrier(CLK_LOCAL_MEM_FENCE);
        s[t] += v;
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}
#endif

/* The key of x: (x ^ (top bit of x ? neg : pos)) - rot, with negx = neg ^ pos. Unsigned
 * dtypes pass 0, 0, 0; signed pass SIGN, 0, 0; floats SIGN, ~0 ^ SIGN, ROT. */
#define SORT_KEY(K, W, x, pos, negx, rot)                                                   \
    ((((x) ^ (pos) ^ (((K)0 - ((x) >> ((W) - 1))) & (negx)))) - (rot))

/* Arguments every kernel of one key width shares:
 *   src       the array this pass reads
 *   n         elements in it (< 2^32)
 *   bsize     elements per block (the last block may be short)
 *   block0    first block of this launch (a pass may take several launches)
 *   nblocks   blocks in the whole array: the row length of hist
 *   shift     the digit's lowest bit
 *   pos, negx, rot   the key map (SORT_KEY)
 */
#if HY_CL_CPU

#define SORT_KERNELS(K, W, SUF)                                                             \
    /* One block's histogram for the digit at `shift`; with `reduce`, also the AND and OR   \
     * of the block's keys, into andor[2 * block] and andor[2 * block + 1]. */              \
    __kernel __attribute__((reqd_work_group_size(1, 1, 1)))                                 \
    void sort_count_##SUF(__global const K *src, uint n, uint bsize, uint block0,           \
                          uint nblocks, uint shift, K pos, K negx, K rot,                   \
                          __global uint *hist, __global K *andor, int reduce)               \
    {                                                                                       \
        uint b = block0 + (uint)get_global_id(0);                                           \
        if (b >= nblocks)                                                                   \
            return;                                                                         \
        uint lo = b * bsize, hi = lo + min(bsize, n - lo);                                  \
        uint cnt[SORT_RADIX];                                                               \
        for (uint d = 0; d < SORT_RADIX; d++)                                               \
            cnt[d] = 0;                                                                     \
        if (reduce) {                                                                       \
            K a = ~(K)0, o = 0;                                                             \
            for (uint i = lo; i < hi; i++) {                                                \
                K x = src[i];                                                               \
                K k = SORT_KEY(K, W, x, pos, negx, rot);                                    \
                a &= k;                                                                     \
                o |= k;                                                                     \
                cnt[(uint)(k >> shift) & SORT_MASK]++;                                      \
            }                                                                               \
            andor[2 * b] = a;                                                               \
            andor[2 * b + 1] = o;                                                           \
        } else {                                                                            \
            for (uint i = lo; i < hi; i++) {                                                \
                K x = src[i];                                                               \
                cnt[(uint)(SORT_KEY(K, W, x, pos, negx, rot) >> shift) & SORT_MASK]++;      \
            }                                                                               \
        }                                                                                   \
        for (uint d = 0; d < SORT_RADIX; d++)                                               \
            hist[d * nblocks + b] = cnt[d];                                                 \
    }                                                                                       \
                                                                                            \
    /* Moves the block's elements to their slots in order: the serial walk is what makes   \
     * the pass stable. */                                                                  \
    __kernel __attribute__((reqd_work_group_size(1, 1, 1)))                                 \
    void sort_scatter_##SUF(__global const K *src, uint n, uint bsize, uint block0,         \
                            uint nblocks, uint shift, K pos, K negx, K rot,                 \
                            __global const uint *hist, __global K *dst)                     \
    {                                                                                       \
        uint b = block0 + (uint)get_global_id(0);                                           \
        if (b >= nblocks)                                                                   \
            return;                                                                         \
        uint lo = b * bsize, hi = lo + min(bsize, n - lo);                                  \
        uint off[SORT_RADIX];                                                               \
        for (uint d = 0; d < SORT_RADIX; d++)                                               \
            off[d] = hist[d * nblocks + b];                                                 \
        for (uint i = lo; i < hi; i++) {                                                    \
            K x = src[i];                                                                   \
            dst[off[(uint)(SORT_KEY(K, W, x, pos, negx, rot) >> shift) & SORT_MASK]++] = x; \
        }                                                                                   \
    }

#else

#define SORT_KERNELS(K, W, SUF)                                                             \
    /* One block's histogram: each work-item counts into its own column of cnt (no atomics, \
     * which contend badly on 16 counters), then the columns are summed per digit; with     \
     * `reduce`, also the AND and OR of the block's keys. */                                \
    __kernel __attribute__((reqd_work_group_size(SORT_LOCAL, 1, 1)))                        \
    void sort_count_##SUF(__global const K *src, uint n, uint bsize, uint block0,           \
                          uint nblocks, uint shift, K pos, K negx, K rot,                   \
                          __global uint *hist, __global K *andor, int reduce)               \
    {                                                                                       \
        __local uint cnt[PADDED(SORT_RADIX * SORT_LOCAL)];                                  \
        __local K ra[SORT_LOCAL], ro[SORT_LOCAL];                                           \
        uint t = get_local_id(0);                                                           \
        uint b = block0 + (uint)get_group_id(0);                                            \
        if (b >= nblocks)                                                                   \
            return; /* the whole work-group leaves together */                              \
        for (uint d = 0; d < SORT_RADIX; d++)                                               \
            cnt[PAD(d * SORT_LOCAL + t)] = 0;                                               \
        uint lo = b * bsize, len = min(bsize, n - lo);                                      \
        K a = ~(K)0, o = 0;                                                                 \
        for (uint j = t; j < len; j += SORT_LOCAL) {                                        \
            K x = src[lo + j];                                                              \
            K k = SORT_KEY(K, W, x, pos, negx, rot);                                        \
            a &= k;                                                                         \
            o |= k;                                                                         \
            cnt[PAD(((uint)(k >> shift) & SORT_MASK) * SORT_LOCAL + t)]++;                  \
        }                                                                                   \
        if (reduce) {                                                                       \
            ra[t] = a;                                                                      \
            ro[t] = o;                                                                      \
            for (uint h = SORT_LOCAL / 2; h > 0; h >>= 1) {                                 \
                barrier(CLK_LOCAL_MEM_FENCE);                                               \
                if (t < h) {                                                                \
                    ra[t] &= ra[t + h];                                                     \
                    ro[t] |= ro[t + h];                                                     \
                }                                                                           \
            }                                                                               \
            if (t == 0) {                                                                   \
                andor[2 * b] = ra[0];                                                       \
                andor[2 * b + 1] = ro[0];                                                   \
            }                                                                               \
        }                                                                                   \
        barrier(CLK_LOCAL_MEM_FENCE);                                                       \
        for (uint d = t; d < SORT_RADIX; d += SORT_LOCAL) {                                 \
            uint s = 0;                                                                     \
            for (uint c = 0; c < SORT_LOCAL; c++)                                           \
                s += cnt[PAD(d * SORT_LOCAL + c)];                                          \
            hist[d * nblocks + b] = s;                                                      \
        }                                                                                   \
    }                                                                                       \
                                                                                            \
    /* Stable within the block: work-item t owns the contiguous run [t * SORT_ITEMS, +      \
     * SORT_ITEMS) of the block; its per-digit counts (column t of cnt), scanned            \
     * digit-major over all work-items, give every element its rank in the block sorted by  \
     * digit. The block is reordered in local memory, then written out in rank order, so    \
     * consecutive work-items store to consecutive addresses within a digit. */             \
    __kernel __attribute__((reqd_work_group_size(SORT_LOCAL, 1, 1)))                        \
    void sort_scatter_##SUF(__global const K *src, uint n, uint bsize, uint block0,         \
                            uint nblocks, uint shift, K pos, K negx, K rot,                 \
                            __global const uint *hist, __global K *dst)                     \
    {                                                                                       \
        __local K tile[PADDED(SORT_TILE)];                                                  \
        __local uint cnt[PADDED(SORT_RADIX * SORT_LOCAL)];                                  \
        __local uint sums[SORT_LOCAL];                                                      \
        __local uint base[SORT_RADIX];                                                      \
        uint t = get_local_id(0);                                                           \
        uint b = block0 + (uint)get_group_id(0);                                            \
        if (b >= nblocks)                                                                   \
            return; /* the whole work-group leaves together */                              \
        uint lo = b * bsize, len = min(bsize, n - lo);                                      \
        for (uint j = t; j < len; j += SORT_LOCAL)                                          \
            tile[PAD(j)] = src[lo + j];                                                     \
        for (uint d = 0; d < SORT_RADIX; d++)                                               \
            cnt[PAD(d * SORT_LOCAL + t)] = 0;                                               \
        barrier(CLK_LOCAL_MEM_FENCE);                                                       \
        K v[SORT_ITEMS];                                                                    \
        uint first = t * SORT_ITEMS;                                                        \
        for (uint j = 0; j < SORT_ITEMS; j++) {                                             \
            if (first + j < len) {                                                          \
                v[j] = tile[PAD(first + j)];                                                \
                uint d = (uint)(SORT_KEY(K, W, v[j], pos, negx, rot) >> shift) & SORT_MASK; \
                cnt[PAD(d * SORT_LOCAL + t)]++;                                             \
            }                                                                               \
        }                                                                                   \
        barrier(CLK_LOCAL_MEM_FENCE);                                                       \
        /* Exclusive scan of cnt in digit-major order: work-item t takes the contiguous     \
         * entries [t * R, t * R + R), the segment sums are scanned, then each segment. */  \
        uint s = 0;                                                                         \
        for (uint e = 0; e < SORT_RADIX; e++)                                               \
            s += cnt[PAD(t * SORT_RADIX + e)];                                              \
        sums[t] = s;                                                                        \
        barrier(CLK_LOCAL_MEM_FENCE);                                                       \
        wg_inclusive_scan(sums, t);                                                         \
        uint acc = sums[t] - s;                                                             \
        for (uint e = 0; e < SORT_RADIX; e++) {                                             \
            uint c = cnt[PAD(t * SORT_RADIX + e)];                                          \
            cnt[PAD(t * SORT_RADIX + e)] = acc;                                             \
            acc += c;                                                                       \
        }                                                                                   \
        barrier(CLK_LOCAL_MEM_FENCE);                                                       \
        /* Digit d's elements hold ranks from cnt[d][0] on in the block, and slots from     \
         * hist[d][b] on in dst. */                                                         \
        for (uint d = t; d < SORT_RADIX; d += SORT_LOCAL)                                   \
            base[d] = hist[d * nblocks + b] - cnt[PAD(d * SORT_LOCAL)];                     \
        barrier(CLK_LOCAL_MEM_FENCE); /* before work-item 0 moves its counters on */        \
        for (uint j = 0; j < SORT_ITEMS; j++) {                                             \
            if (first + j < len) {                                                          \
                uint d = (uint)(SORT_KEY(K, W, v[j], pos, negx, rot) >> shift) & SORT_MASK; \
                uint rank = cnt[PAD(d * SORT_LOCAL + t)]++; /* PAD reads i twice */         \
                tile[PAD(rank)] = v[j];                                                     \
            }                                                                               \
        }                                                                                   \
        barrier(CLK_LOCAL_MEM_FENCE);                                                       \
        for (uint j = t; j < len; j += SORT_LOCAL) {                                        \
            K x = tile[PAD(j)];                                                             \
            uint d = (uint)(SORT_KEY(K, W, x, pos, negx, rot) >> shift) & SORT_MASK;        \
            dst[base[d] + j] = x;                                                           \
        }                                                                                   \
    }                                                                                       \

#endif

SORT_KERNELS(uint, 32, u32)
SORT_KERNELS(ulong, 64, u64)
