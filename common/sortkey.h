/* common: the sort order - a bijection from an element's bits to an unsigned key whose
 * unsigned order is hybridd's order (host/sort.c's opening comment derives it). One C
 * definition for host/ (the sort and the merge) and cl/ (the arguments of kernels/sort.cl,
 * whose SORT_KEY is the same map in OpenCL C), so no two backends can disagree on where an
 * element goes. Here, not in host/, because cl/ must not include host/'s private headers. */
#ifndef HY_COMMON_SORTKEY_H
#define HY_COMMON_SORTKEY_H

#include <stdint.h>

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

/* Its bucket: how many of the nsp splitters (sorted) are below (key, idx). A few splitters
 * are counted without branches (the common case: a rank per node of a small cluster), more
 * are searched. */
static inline unsigned hy_bucket_of(const struct hy_skey *sp, unsigned nsp, uint64_t key,
                                    uint64_t idx)
{
    if (nsp < 16) {
        unsigned b = 0;
        for (unsigned j = 0; j < nsp; j++)
            b += (unsigned)((sp[j].key < key) | ((sp[j].key == key) & (sp[j].idx < idx)));
        return b;
    }
    unsigned lo = 0, hi = nsp;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (sp[mid].key < key || (sp[mid].key == key && sp[mid].idx < idx))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

#endif
