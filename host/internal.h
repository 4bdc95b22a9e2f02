/* host (private): what the engine's files share — option checks, the scratch memory that
 * sort jobs borrow, and the key map that defines the sort order (sort.c and merge.c both
 * order by it). Nothing here is visible outside host/. */
#ifndef HY_HOST_INTERNAL_H
#define HY_HOST_INTERNAL_H

#include "host.h"

#include <stdint.h>

/* Checks backend, threads, mode and nogil against the engine; fills err on a bad value. */
int hy_host_check_opts(const hy_host *h, const hy_run_opts *o, hy_error *err);

/* Borrows at least `bytes` of scratch memory. The engine keeps the last block it handed out,
 * so repeated jobs of one size do not pay for fresh pages (page faults cost more than a
 * radix pass). Returns NULL when the allocation fails. */
void *hy_host_scratch_get(hy_host *h, size_t bytes);
/* Gives a block from hy_host_scratch_get back. */
void hy_host_scratch_put(hy_host *h, void *p, size_t bytes);

/* Whether the job's native sections release the runtime lock, for the task functions. */
bool hy_worker_nogil(const hy_worker *w);

/* ---- the sort order: a bijection from an element's bits to an unsigned key whose unsigned
 * order is the engine's order (sort.c's opening comment derives it). One definition, so the
 * sort and the merge can never disagree on where an element goes. ---- */

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

#endif
