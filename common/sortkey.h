/* common: the sort order - a bijection from an element's bits to an unsigned key whose
 * unsigned order is hybridd's order (host/sort.c's opening comment derives it). One C
 * definition for host/ (the sort and the merge) and cl/ (the arguments of kernels/sort.cl,
 * whose SORT_KEY is the same map in OpenCL C), so no two backends can disagree on where an
 * element goes. Here, not in host/, because cl/ must not include host/'s private headers. */
#ifndef HY_COMMON_SORTKEY_H
#define HY_COMMON_SORTKEY_H

#include <stdint.h>
#include <stdlib.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "common.h"

/* The map of one dtype, in the shape both widths use: to_key is x ^ (negative ? neg : pos)
 * - rot; from_key undoes it with set/clr chosen by the top bit of key + rot. */
struct hy_key_spec {
    uint64_t pos, neg, rot, set, clr;
};

/* The spec of `dtype`; unsigned dtypes (and unknown values) get the identity. */
static inline struct hy_key_spec hy_key_spec_of(int dtype)
{
    const uint64_t s32 = 0x80000000u, s64 = 0x8000000000000000u;
    switch (dtype) {
    case HY_DT_I32: return (struct hy_key_spec){s32, s32, 0, s32, s32};
    case HY_DT_I64: return (struct hy_key_spec){s64, s64, 0, s64, s64};
    case HY_DT_F32:
        return (struct hy_key_spec){s32, 0xFFFFFFFFu, 0x007FFFFFu, s32, 0xFFFFFFFFu};
    case HY_DT_F64:
        return (struct hy_key_spec){s64, UINT64_MAX, 0x000FFFFFFFFFFFFFu, s64, UINT64_MAX};
    default: return (struct hy_key_spec){0, 0, 0, 0, 0};
    }
}

/* A spec narrowed to one key width, with the xors precomputed for the hot loops. */
struct hy_xform_u32 {
    uint32_t pos, neg_xor_pos, rot; /* to_key: x ^ (negative ? neg : pos) - rot */
    uint32_t clr, set_xor_clr;      /* from_key: y ^ (top bit of y ? set : clr) */
};
struct hy_xform_u64 {
    uint64_t pos, neg_xor_pos, rot;
    uint64_t clr, set_xor_clr;
};

static inline struct hy_xform_u32 hy_xform_u32_of(struct hy_key_spec s)
{
    return (struct hy_xform_u32){(uint32_t)s.pos, (uint32_t)(s.neg ^ s.pos), (uint32_t)s.rot,
                                 (uint32_t)s.clr, (uint32_t)(s.set ^ s.clr)};
}

static inline struct hy_xform_u64 hy_xform_u64_of(struct hy_key_spec s)
{
    return (struct hy_xform_u64){s.pos, s.neg ^ s.pos, s.rot, s.clr, s.set ^ s.clr};
}

/* The sign mask is built by an arithmetic shift (implementation-defined in C, arithmetic on
 * every compiler hybridd supports) so that the map is branch-free and vectorises. */
static inline uint32_t hy_to_key_u32(uint32_t x, const struct hy_xform_u32 *t)
{
    uint32_t m = ((uint32_t)((int32_t)x >> 31) & t->neg_xor_pos) ^ t->pos;
    return (x ^ m) - t->rot;
}

static inline uint32_t hy_from_key_u32(uint32_t k, const struct hy_xform_u32 *t)
{
    uint32_t y = k + t->rot;
    uint32_t m = ((uint32_t)((int32_t)y >> 31) & t->set_xor_clr) ^ t->clr;
    return y ^ m;
}

static inline uint64_t hy_to_key_u64(uint64_t x, const struct hy_xform_u64 *t)
{
    uint64_t m = ((uint64_t)((int64_t)x >> 63) & t->neg_xor_pos) ^ t->pos;
    return (x ^ m) - t->rot;
}

static inline uint64_t hy_from_key_u64(uint64_t k, const struct hy_xform_u64 *t)
{
    uint64_t y = k + t->rot;
    uint64_t m = ((uint64_t)((int64_t)y >> 63) & t->set_xor_clr) ^ t->clr;
    return y ^ m;
}

/* ---- a sort across MPI ranks: where an element goes (daemon/ranks.c, mpi/mpi.c) ----
 * An element's place in the order of a span is its key, ties broken by its index in the
 * whole array, so that equal keys split by position and every bucket boundary is exact. */
struct hy_skey {
    uint64_t key, idx;
};

/* Its bucket: how many of the nsp splitters (sorted) are below (key, idx), counted without
 * branches. Fast for a few splitters; its cost grows with nsp (15 ns a key at 15 splitters,
 * bench/partition-bench), so hy_stree_bucket takes a tree from HY_STREE_LINEAR up. */
static inline unsigned hy_bucket_of(const struct hy_skey *sp, unsigned nsp, uint64_t key,
                                    uint64_t idx)
{
    unsigned b = 0;
    for (unsigned j = 0; j < nsp; j++)
        b += (unsigned)((sp[j].key < key) | ((sp[j].key == key) & (sp[j].idx < idx)));
    return b;
}

/* Splitters as an implicit search tree over their keys (Eytzinger order: node j's children
 * are 2j and 2j + 1), so that finding a key's bucket is lg fixed steps with no branch on the
 * data: a binary search's branches go each way at random for random keys and mispredict
 * about every other step. With 63 splitters a key took 25 ns by binary search, 75 ns by the
 * loop above and 6.6 ns by the tree; with 3 the loop's 2.8 ns beat the tree's 6.5
 * (bench/partition-bench, 10^7 f64).
 *
 * In front of the tree, a table of HY_SFRONT_CELLS cells answers most keys with one load: a
 * monotone function of the element (linear in the key, or in a float's value) names a cell,
 * and a cell that holds no splitter holds one bucket, the number of splitters in the cells
 * below it. Only keys whose cell holds a splitter search the tree. Splitters are quantiles
 * of the data, so about 1/HY_SFRONT_CELLS of the keys per splitter land in such a cell on
 * the data the function follows. The count pass took 5.1 ns a key at 15 splitters and 6.5
 * at 63 by the tree alone, 1.7-2.0 at any count from 2 to 255 with the table. */
#define HY_STREE_LINEAR 6u /* fewer splitters than this: hy_bucket_of's loop is faster */
#define HY_SFRONT_CELLS 32768u   /* 64 KiB of cells: they stay in L2 beside the keys' stream */
#define HY_SFRONT_SEARCH 0xFFFFu /* a cell that holds a splitter: search the tree */
enum { HY_SFRONT_NONE, HY_SFRONT_KEY, HY_SFRONT_VALUE };
struct hy_stree {
    const struct hy_skey *sp;
    unsigned nsp, lg;
    int front;          /* HY_SFRONT_*: which function names a key's cell; NONE: no table */
    unsigned shift;     /* KEY: cell 1 + ((key - lo) >> shift), capped; keys below lo: 0 */
    uint64_t lo;
    double vlo, vscale; /* VALUE: cell 1 + (value - vlo) * vscale; below: 0; above, NaN: last */
    uint16_t *cell;     /* [HY_SFRONT_CELLS + 2]: a bucket, or HY_SFRONT_SEARCH */
    uint64_t key[];     /* key[1 .. 2^lg - 1], when nsp >= HY_STREE_LINEAR; pads are UINT64_MAX */
};

/* The tree over nsp sorted splitters (nsp < 2^31) of a span of `dtype` (which decides the
 * table's function), with the table when it pays (common/span.c). NULL when out of memory;
 * free() it; the caller keeps sp alive while it is used. */
struct hy_stree *hy_stree_new(const struct hy_skey *sp, unsigned nsp, int dtype);

/* The table's cell of a key (HY_SFRONT_KEY), and of a float's value (HY_SFRONT_VALUE), both
 * non-decreasing in hybridd's order and written without branches on the data. */
static inline size_t hy_sfront_key(const struct hy_stree *t, uint64_t key)
{
    uint64_t d = (key - t->lo) >> t->shift;
    d = d < HY_SFRONT_CELLS - 1 ? d : HY_SFRONT_CELLS - 1;
    return (size_t)((1 + d) & (uint64_t)-(int64_t)(key >= t->lo)); /* below lo: cell 0 */
}

/* Clamped to [-1, CELLS], a NaN to CELLS (the last cell, as NaN keys are above all others),
 * then moved up by one and truncated: below vlo is cell 0. On x86 by maxsd and minsd, whose
 * NaN rule is the one wanted: written as compares, the clamps became branches, which
 * mispredicted on random keys (8.8 ns a key at 2 splitters against 2.3 at 63). */
static inline size_t hy_sfront_value(const struct hy_stree *t, double v)
{
    double x = (v - t->vlo) * t->vscale;
#if defined(__SSE2__)
    __m128d r = _mm_max_sd(_mm_set_sd(-1.0), _mm_set_sd(x)); /* -1 > x ? -1 : x */
    r = _mm_min_sd(r, _mm_set_sd((double)HY_SFRONT_CELLS));  /* r < CELLS ? r : CELLS */
    x = _mm_cvtsd_f64(r);
#else
    x = x < -1.0 ? -1.0 : x;
    x = x < (double)HY_SFRONT_CELLS ? x : (double)HY_SFRONT_CELLS;
#endif
    return (size_t)(int64_t)(x + 1.0);
}

/* hy_bucket_of(t->sp, t->nsp, key, idx), by the tree. The descent counts the splitters whose
 * key is below this key (a pad is UINT64_MAX, never below; a key of UINT64_MAX passes no
 * pad either, as the count is capped at nsp); the splitters with an equal key follow in
 * index order, and those with a smaller index count too. */
static inline unsigned hy_stree_bucket(const struct hy_stree *t, uint64_t key, uint64_t idx)
{
    if (t->nsp < HY_STREE_LINEAR)
        return hy_bucket_of(t->sp, t->nsp, key, idx);
    unsigned node = 1;
    for (unsigned l = 0; l < t->lg; l++)
        node = 2 * node + (unsigned)(t->key[node] < key);
    unsigned b = node - (1u << t->lg);
    b = b < t->nsp ? b : t->nsp;
    while (b < t->nsp && t->sp[b].key == key && t->sp[b].idx < idx)
        b++;
    return b;
}

/* ---- a sort span's partition (common/span.c) ---- */

/* Spans over at most this many ranks: a key's bucket is kept in two bytes between the passes. */
#define HY_SPAN_MAX_RANKS 65536u

/* The count pass over the n elements at a, of the dtype's width, whose global indices are
 * first, first + 1, ...: each one's bucket among t's splitters (t->nsp < HY_SPAN_MAX_RANKS)
 * is added to cnt[] and kept in ids[i]. */
void hy_span_count(const void *a, uint64_t n, int dtype, uint64_t first,
                   const struct hy_stree *t, uint64_t *cnt, uint16_t *ids);

/* The copy pass: element i goes to dst[ids[i]], at element pos[ids[i]]++, in order of i
 * (ids below nb; dst[b] may be NULL for a bucket no id names). A bucket's destination may
 * be a itself when its pos starts at 0: its writes then never pass the reads (the asking
 * rank keeps bucket 0 at the array's front this way). Where hy_stage_stores says so, the
 * writes go a few cache lines at a time; everything is written when it returns. */
void hy_span_scatter(const void *a, uint64_t n, size_t esize, const uint16_t *ids, unsigned nb,
                     char *const *dst, uint64_t *pos);

#endif
