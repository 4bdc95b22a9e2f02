/* common/span: a sort span's partition (sortkey.h declares it), one definition for the asking
 * rank of a client's array (daemon/ranks.c) and for every rank's slice of a .npy file
 * (mpi/mpi.c). Two passes: the count searches each key's bucket once and keeps it in a
 * two-byte id; the copy reads the ids back instead of searching again, which took 40% off
 * the pair at 16 ranks and more (bench/partition-bench). Each loop is written once per key
 * width, so that neither holds a branch on the dtype. */
#include <string.h>

#include "sortkey.h"

#define SPAN_COUNT(W, T, XFORM_OF, TO_KEY)                                                    \
    static void count_##W(const T *a, uint64_t n, struct hy_key_spec ks, uint64_t first,     \
                          const struct hy_stree *t, uint64_t *cnt, uint16_t *ids)            \
    {                                                                                          \
        const struct hy_xform_##W x = XFORM_OF(ks);                                           \
        for (uint64_t i = 0; i < n; i++) {                                                     \
            unsigned b = hy_stree_bucket(t, TO_KEY(a[i], &x), first + i);                     \
            ids[i] = (uint16_t)b;                                                              \
            cnt[b]++;                                                                          \
        }                                                                                      \
    }
SPAN_COUNT(u32, uint32_t, hy_xform_u32_of, hy_to_key_u32)
SPAN_COUNT(u64, uint64_t, hy_xform_u64_of, hy_to_key_u64)

void hy_span_count(const void *a, uint64_t n, int dtype, uint64_t first,
                   const struct hy_stree *t, uint64_t *cnt, uint16_t *ids)
{
    if (hy_dtype_size(dtype) == 4)
        count_u32(a, n, hy_key_spec_of(dtype), first, t, cnt, ids);
    else
        count_u64(a, n, hy_key_spec_of(dtype), first, t, cnt, ids);
}

#define SPAN_SCATTER(W, T)                                                                     \
    static void scatter_##W(const T *a, uint64_t n, const uint16_t *ids, char *const *dst,   \
                            uint64_t *pos)                                                     \
    {                                                                                          \
        for (uint64_t i = 0; i < n; i++) {                                                     \
            unsigned b = ids[i];                                                               \
            T x = a[i];                                                                        \
            memcpy(dst[b] + sizeof(T) * pos[b]++, &x, sizeof(T));                              \
        }                                                                                      \
    }
SPAN_SCATTER(u32, uint32_t)
SPAN_SCATTER(u64, uint64_t)

void hy_span_scatter(const void *a, uint64_t n, size_t esize, const uint16_t *ids,
                     char *const *dst, uint64_t *pos)
{
    if (esize == 4)
        scatter_u32(a, n, ids, dst, pos);
    else
        scatter_u64(a, n, ids, dst, pos);
}
