/* cl/kernels: the sort job on the device - an LSD radix sort whose keys are computed on the
 * fly from each element's bits (host/sort.c's bijection), so the arrays hold raw values
 * throughout and no pass maps them in or out. cl/sort.c drives the passes.
 *
 * Two variants, chosen by HY_CL_CPU (a build option from the device type):
 *  1: a work-group is one work-item walking one long block serially: the scalar loop a CPU
 *     runs well, counters in private memory, stability for free. 11-bit digits (three
 *     passes for 32-bit keys): on PoCL that measured about 20% faster than 8-bit ones.
 *     Per pass: sort_count_* writes each block's histogram of the pass's digit into
 *     hist[digit value * nblocks + block]; sort_scan turns that digit-major table into an
 *     exclusive prefix sum (each block's first output slot per digit value); sort_scatter_*
 *     moves every element to its slot. The digit-0 count also reduces the AND and OR of all
 *     keys, from which the host skips every pass whose digit is the same in every key.
 *  0: 8-bit digits, work-groups of whatever size the host picks from what the device and
 *     kernel report (get_local_size; local arrays are kernel arguments the host sizes and
 *     checks against the device's local memory). One sort_hist_* pass first counts every
 *     digit of every key into ghist[digit * 256 + value], so before any digit pass the host
 *     knows which digits all keys share (skipped) and every digit value's global start.
 *     Then a digit pass is one launch of sort_onesweep_* (Onesweep, Adinets & Merrill
 *     2022): each work-group takes a block number from an atomic ticket, reads its block
 *     once into local memory, counts it, finds its slots within each digit value's run by
 *     decoupled look-back over the blocks before it, sorts the block by the digit locally
 *     (two stable 4-bit splits) and writes it once, each value's run of the block at
 *     consecutive addresses.
 * cl/sort.c mirrors SORT_BITS, SORT_ITEMS and the local arrays' sizes. */

#ifndef HY_CL_CPU
#define HY_CL_CPU 0
#endif

#if HY_CL_CPU
#define SORT_BITS 11
#define SORT_LOCAL 1
#else
#define SORT_BITS 8
#define SORT_ITEMS 8 /* elements per work-item in sort_scatter_*'s block */
#define SPLIT_BITS 4 /* bits per local split in sort_scatter_* */
#define SPLIT_RADIX (1u << SPLIT_BITS)
#endif
#define SORT_RADIX (1u << SORT_BITS)
#define SORT_MASK (SORT_RADIX - 1u)

#if HY_CL_CPU
/* Exclusive prefix sum over hist[0 .. m) in place, by one work-group: each work-item sums a
 * contiguous segment, the segment sums are scanned in local memory, then each segment is
 * rewritten. The table is small (digits x blocks), so one work-group is enough. */
__kernel __attribute__((reqd_work_group_size(SORT_LOCAL, 1, 1)))
void sort_scan(__global ulong *hist, uint m)
{
    __local ulong sums[SORT_LOCAL];
    uint t = get_local_id(0);
    uint seg = m / SORT_LOCAL + 1;
    uint lo = min(t * seg, m), hi = min(lo + seg, m);
    ulong s = 0;
    for (uint i = lo; i < hi; i++)
        s += hist[i];
    sums[t] = s;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (t == 0) {
        ulong acc = 0;
        for (uint j = 0; j < SORT_LOCAL; j++) {
            ulong v = sums[j];
            sums[j] = acc;
            acc += v;
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    ulong acc = sums[t];
    for (uint i = lo; i < hi; i++) {
        ulong v = hist[i];
        hist[i] = acc;
        acc += v;
    }
}

#endif

#if !HY_CL_CPU
/* Inclusive scan of s[0 .. L) by the work-group of L work-items (Hillis-Steele); every
 * work-item must call it, after a barrier that follows its write of s[t]. */
#define WG_INCLUSIVE_SCAN(T, NAME)                                                          \
    static void NAME(__local T *s, uint t, uint L)                                          \
    {                                                                                       \
        for (uint off = 1; off < L; off <<= 1) {                                            \
            T v = t >= off ? s[t - off] : (T)0;                                             \
            barrier(CLK_LOCAL_MEM_FENCE);                                                   \
            s[t] += v;                                                                      \
            barrier(CLK_LOCAL_MEM_FENCE);                                                   \
        }                                                                                   \
    }
WG_INCLUSIVE_SCAN(uint, wg_inclusive_scan)
#endif

/* The key of x: (x ^ (top bit of x ? neg : pos)) - rot, with negx = neg ^ pos. Unsigned
 * dtypes pass 0, 0, 0; signed pass SIGN, 0, 0; floats SIGN, ~0 ^ SIGN, ROT. */
#define SORT_KEY(K, W, x, pos, negx, rot)                                                   \
    ((((x) ^ (pos) ^ (((K)0 - ((x) >> ((W) - 1))) & (negx)))) - (rot))

/* Arguments every kernel of one key width shares:
 *   src       the array this pass reads
 *   n         elements in it (64-bit: arrays may hold 2^32 or more)
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
    void sort_count_##SUF(__global const K *src, ulong n, uint bsize, uint block0,          \
                          uint nblocks, uint shift, K pos, K negx, K rot,                   \
                          __global ulong *hist, __global K *andor, int reduce)              \
    {                                                                                       \
        uint b = block0 + (uint)get_global_id(0);                                           \
        if (b >= nblocks)                                                                   \
            return;                                                                         \
        ulong lo = (ulong)b * bsize, hi = lo + min((ulong)bsize, n - lo);                   \
        uint cnt[SORT_RADIX];                                                               \
        for (uint d = 0; d < SORT_RADIX; d++)                                               \
            cnt[d] = 0;                                                                     \
        if (reduce) {                                                                       \
            K a = ~(K)0, o = 0;                                                             \
            for (ulong i = lo; i < hi; i++) {                                               \
                K x = src[i];                                                               \
                K k = SORT_KEY(K, W, x, pos, negx, rot);                                    \
                a &= k;                                                                     \
                o |= k;                                                                     \
                cnt[(uint)(k >> shift) & SORT_MASK]++;                                      \
            }                                                                               \
            andor[2 * b] = a;                                                               \
            andor[2 * b + 1] = o;                                                           \
        } else {                                                                            \
            for (ulong i = lo; i < hi; i++) {                                               \
                K x = src[i];                                                               \
                cnt[(uint)(SORT_KEY(K, W, x, pos, negx, rot) >> shift) & SORT_MASK]++;      \
            }                                                                               \
        }                                                                                   \
        for (uint d = 0; d < SORT_RADIX; d++)                                               \
            hist[(size_t)d * nblocks + b] = cnt[d];                                         \
    }                                                                                       \
                                                                                            \
    /* Moves the block's elements to their slots in order: the serial walk is what makes   \
     * the pass stable. */                                                                  \
    __kernel __attribute__((reqd_work_group_size(1, 1, 1)))                                 \
    void sort_scatter_##SUF(__global const K *src, ulong n, uint bsize, uint block0,        \
                            uint nblocks, uint shift, K pos, K negx, K rot,                 \
                            __global const ulong *hist, __global K *dst)                    \
    {                                                                                       \
        uint b = block0 + (uint)get_global_id(0);                                           \
        if (b >= nblocks)                                                                   \
            return;                                                                         \
        ulong lo = (ulong)b * bsize, hi = lo + min((ulong)bsize, n - lo);                   \
        ulong off[SORT_RADIX];                                                              \
        for (uint d = 0; d < SORT_RADIX; d++)                                               \
            off[d] = hist[(size_t)d * nblocks + b];                                         \
        for (ulong i = lo; i < hi; i++) {                                                   \
            K x = src[i];                                                                   \
            dst[off[(uint)(SORT_KEY(K, W, x, pos, negx, rot) >> shift) & SORT_MASK]++] = x; \
        }                                                                                   \
    }

#else

/* Local arrays get one spare word per 32, so work-items reading with a stride of a run
 * each fall in different banks. */
#define PAD(i) ((i) + ((i) >> 5))

/* Decoupled look-back (Merrill & Garland 2016; Adinets & Merrill 2022's Onesweep): the
 * per-pass table holds, for each (block, digit value), one 32-bit word: a flag in the top two
 * bits and a count in the rest, so flag and count are published and read in one atomic
 * access and no fence has to order two words. 0 means nothing yet; LB_AGG, the block's own
 * count of the value; LB_INC, that count plus every earlier block's (an inclusive prefix
 * within the value's run). The host refuses a pass one of whose values has LB_MASK + 1 keys
 * or more (cl/sort.c's runs_fit), so a prefix always fits. */
#define LB_AGG (1u << 30)
#define LB_INC (2u << 30)
#define LB_MASK (LB_AGG - 1u)

/* Block b's first slot for digit value d within d's run: the sum of the counts of blocks
 * b-1, b-2, ... back to the first that has published its inclusive prefix (whose prefix
 * ends the walk). A block only waits on blocks with smaller numbers, which took their
 * numbers earlier (sort_onesweep_*'s ticket) and so have started: they progress, on a GPU
 * whose started work-groups stay resident as on a device that runs work-groups one after
 * another (PoCL's CPU device, Oclgrind). */
static uint look_back(__global volatile uint *look, uint b, uint d)
{
    uint excl = 0;
    while (b > 0) {
        b--;
        uint w;
        do
            w = atomic_add(&look[(size_t)b * SORT_RADIX + d], 0u); /* an atomic load */
        while (!(w & (LB_AGG | LB_INC)));
        excl += w & LB_MASK;
        if (w & LB_INC)
            break;
    }
    return excl;
}

#define SORT_KERNELS(K, W, SUF)                                                             \
    /* Histograms of every digit of the keys at once: work-group-local counters (atomics in \
     * local memory), added into ghist[digit * 256 + value] at the end. The host zeroes ghist\
     * and picks a few groups per compute unit; each strides over src[first .. n): one      \
     * chunk of the staged upload (cl/sort.c), counted as soon as that chunk has landed.    \
     * A count is 64-bit in two words, ghist[2i] low and ghist[2i + 1] high (64-bit atomics \
     * are optional in OpenCL 1.2): the add that wraps the low word carries one.            \
     * A group's local counters stay 32-bit: the host keeps chunks below 2^31 elements.    \
     * It also zeroes zero[0 .. nzero), which costs no launch of its own. */                \
    __kernel void sort_hist_##SUF(__global const K *src, ulong n, K pos, K negx, K rot,     \
                                  __global uint *ghist, __local uint *lh, ulong first,      \
                                  __global uint *zero, ulong nzero)                         \
    {                                                                                       \
        uint t = get_local_id(0), L = get_local_size(0);                                    \
        /* The first digit pass's look-back table, zeroed by the first chunk's launch (the  \
         * host passes nzero = 0 to the others): later passes' tables are zeroed by the     \
         * pass before them. */                                                             \
        for (ulong i = get_global_id(0); i < nzero; i += get_global_size(0))                \
            zero[i] = 0;                                                                    \
        for (uint i = t; i < (W / SORT_BITS) * SORT_RADIX; i += L)                          \
            lh[i] = 0;                                                                      \
        barrier(CLK_LOCAL_MEM_FENCE);                                                       \
        for (ulong i = first + get_global_id(0); i < n; i += get_global_size(0)) {          \
            K x = src[i];                                                                   \
            K k = SORT_KEY(K, W, x, pos, negx, rot);                                        \
            for (uint dg = 0; dg < W / SORT_BITS; dg++)                                     \
                atomic_inc(&lh[dg * SORT_RADIX + ((uint)(k >> (dg * SORT_BITS)) & SORT_MASK)]);\
        }                                                                                   \
        barrier(CLK_LOCAL_MEM_FENCE);                                                       \
        for (uint i = t; i < (W / SORT_BITS) * SORT_RADIX; i += L) {                        \
            uint c = lh[i];                                                                 \
            if (c && atomic_add(&ghist[2 * i], c) + c < c)                                  \
                atomic_inc(&ghist[2 * i + 1]);                                              \
        }                                                                                   \
    }                                                                                       \
                                                                                            \
    /* One stable split of the block in tile[0 .. len) by the SPLIT_BITS at `shift`: work-item t\
     * owns the run [t * SORT_ITEMS, + SORT_ITEMS); its per-value counts (column t of cnt), \
     * scanned value-major over all work-items, give each element its new place. */         \
    static void split_##SUF(__local K *tile, __local uint *cnt, __local uint *sums, uint len,\
                            uint shift, K pos, K negx, K rot)                               \
    {                                                                                       \
        uint t = get_local_id(0), L = get_local_size(0);                                    \
        for (uint e = 0; e < SPLIT_RADIX; e++)                                              \
            cnt[PAD(e * L + t)] = 0;                                                        \
        barrier(CLK_LOCAL_MEM_FENCE);                                                       \
        K v[SORT_ITEMS];                                                                    \
        uint first = t * SORT_ITEMS;                                                        \
        for (uint j = 0; j < SORT_ITEMS; j++) {                                             \
            if (first + j < len) {                                                          \
                v[j] = tile[PAD(first + j)];                                                \
                uint d = (uint)(SORT_KEY(K, W, v[j], pos, negx, rot) >> shift) & (SPLIT_RADIX - 1u);\
                cnt[PAD(d * L + t)]++;                                                      \
            }                                                                               \
        }                                                                                   \
        barrier(CLK_LOCAL_MEM_FENCE);                                                       \
        /* Exclusive scan of cnt in value-major order: work-item t takes the contiguous entries\
         * [t * SPLIT_RADIX, + SPLIT_RADIX), the segment sums are scanned, then each segment. */\
        uint s = 0;                                                                         \
        for (uint e = 0; e < SPLIT_RADIX; e++)                                              \
            s += cnt[PAD(t * SPLIT_RADIX + e)];                                             \
        sums[t] = s;                                                                        \
        barrier(CLK_LOCAL_MEM_FENCE);                                                       \
        wg_inclusive_scan(sums, t, L);                                                      \
        uint acc = sums[t] - s;                                                             \
        for (uint e = 0; e < SPLIT_RADIX; e++) {                                            \
            uint c = cnt[PAD(t * SPLIT_RADIX + e)];                                         \
            cnt[PAD(t * SPLIT_RADIX + e)] = acc;                                            \
            acc += c;                                                                       \
        }                                                                                   \
        barrier(CLK_LOCAL_MEM_FENCE);                                                       \
        for (uint j = 0; j < SORT_ITEMS; j++) {                                             \
            if (first + j < len) {                                                          \
                uint d = (uint)(SORT_KEY(K, W, v[j], pos, negx, rot) >> shift) & (SPLIT_RADIX - 1u);\
                uint rank = cnt[PAD(d * L + t)]++;                                          \
                tile[PAD(rank)] = v[j];                                                     \
            }                                                                               \
        }                                                                                   \
        barrier(CLK_LOCAL_MEM_FENCE);                                                       \
    }                                                                                       \
                                                                                            \
    /* One digit pass that reads the keys once and writes them once (Onesweep). The group   \
     * takes the next block number b from its pass's ticket (so blocks start in number      \
     * order, which look_back's waits rely on), loads block b into local memory counting    \
     * its digit values, publishes the counts in row b of `look`, looks back for its first  \
     * slot within each value's run and publishes the inclusive prefix, sorts the block by  \
     * the digit (two stable 4-bit splits, low half first) and writes each element at place \
     * j of a run of value d to starts[d] + its slot + j - (the run's first place). It also \
     * zeroes row b of `next`, the table of the pass after (none reads it in this one).     \
     * Tickets: after ghist's counts in the same buffer, one per digit, zeroed with them. */\
    __kernel void sort_onesweep_##SUF(__global const K *src, ulong n, uint shift, K pos,    \
                                      K negx, K rot, __global volatile uint *look,          \
                                      __global uint *next, __global const ulong *starts,    \
                                      __global volatile uint *ghist, __global K *dst,       \
                                      __local K *tile, __local uint *cnt, __local uint *sums,\
                                      __local ulong *base, __local uint *lc)                \
    {                                                                                       \
        uint t = get_local_id(0), L = get_local_size(0), dg = shift / SORT_BITS;            \
        if (t == 0)                                                                         \
            lc[SORT_RADIX] = atomic_inc(&ghist[2 * (W / SORT_BITS) * SORT_RADIX + dg]);     \
        for (uint d = t; d < SORT_RADIX; d += L)                                            \
            lc[d] = 0;                                                                      \
        barrier(CLK_LOCAL_MEM_FENCE);                                                       \
        uint b = lc[SORT_RADIX];                                                            \
        ulong lo = (ulong)b * L * SORT_ITEMS;                                               \
        uint len = (uint)min((ulong)(L * SORT_ITEMS), n - lo);                              \
        for (uint j = t; j < len; j += L) {                                                 \
            K x = src[lo + j];                                                              \
            tile[PAD(j)] = x;                                                               \
            atomic_inc(&lc[(uint)(SORT_KEY(K, W, x, pos, negx, rot) >> shift) & SORT_MASK]);\
        }                                                                                   \
        barrier(CLK_LOCAL_MEM_FENCE);                                                       \
        __global volatile uint *row = look + (size_t)b * SORT_RADIX;                        \
        /* Block 0's counts are already its inclusive prefixes. */                          \
        for (uint d = t; d < SORT_RADIX; d += L) {                                          \
            next[(size_t)b * SORT_RADIX + d] = 0;                                           \
            atomic_xchg(&row[d], (b ? LB_AGG : LB_INC) | lc[d]);                            \
        }                                                                                   \
        /* The local sort before the look-back gives the blocks before this one time to   \
         * publish their prefixes, so the walk is short and rarely waits. */                \
        for (uint sub = 0; sub < SORT_BITS; sub += SPLIT_BITS)                              \
            split_##SUF(tile, cnt, sums, len, shift + sub, pos, negx, rot);                 \
        for (uint d = t; d < SORT_RADIX && b; d += L) {                                     \
            uint excl = look_back(look, b, d);                                              \
            atomic_xchg(&row[d], LB_INC | (excl + lc[d]));                                  \
            lc[d] = excl;                                                                   \
        }                                                                                   \
        if (!b)                                                                             \
            for (uint d = t; d < SORT_RADIX; d += L)                                        \
                lc[d] = 0;                                                                  \
        barrier(CLK_LOCAL_MEM_FENCE);                                                       \
        /* Each run's first place j: base = slot - j (modulo 2^64, undone by the add below). */\
        for (uint j = t; j < len; j += L) {                                                 \
            uint d = (uint)(SORT_KEY(K, W, tile[PAD(j)], pos, negx, rot) >> shift) & SORT_MASK;\
            uint p = j ? (uint)(SORT_KEY(K, W, tile[PAD(j - 1)], pos, negx, rot) >> shift) &\
                             SORT_MASK                                                      \
                       : SORT_RADIX;                                                        \
            if (d != p)                                                                     \
                base[d] = starts[dg * SORT_RADIX + d] + lc[d] - j;                          \
        }                                                                                   \
        barrier(CLK_LOCAL_MEM_FENCE);                                                       \
        for (uint j = t; j < len; j += L) {                                                 \
            K x = tile[PAD(j)];                                                             \
            uint d = (uint)(SORT_KEY(K, W, x, pos, negx, rot) >> shift) & SORT_MASK;        \
            dst[base[d] + j] = x;                                                           \
        }                                                                                   \
    }                                                                                       \

#endif

SORT_KERNELS(uint, 32, u32)
SORT_KERNELS(ulong, 64, u64)
