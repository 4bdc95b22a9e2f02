/* host/partition: cuts an array into contiguous key ranges, for backends that hand each range
 * to a different engine (hybrid: the native pool and the OpenCL devices). The ranges are
 * disjoint in sort order, so sorting each where it lies gives the whole array's sorted bytes
 * with no merge. Splitters come from a sample of the keys (the engine's order-preserving
 * keys, common/sortkey.h), taken at fixed positions so a cut is reproducible. */
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "sortkey.h"

/* Enough samples that each part's size lands within ~2% of its share on any input whose keys
 * are not mostly equal (a quantile of 4096 samples has a standard error under 1%). */
#define SAMPLES 4096u

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The key of element i of `src` as a u64 (32-bit keys widened: the order is the same). */
static inline uint64_t key_at(const void *src, size_t i, size_t size,
                              const struct hy_xform_u32 *t32, const struct hy_xform_u64 *t64)
{
    if (size == 4) {
        uint32_t x;
        memcpy(&x, (const char *)src + i * 4, 4);
        return hy_to_key_u32(x, t32);
    }
    uint64_t x;
    memcpy(&x, (const char *)src + i * 8, 8);
    return hy_to_key_u64(x, t64);
}

/* The part of key k: how many splitters lie below it (keys equal to a splitter go left). */
static inline unsigned part_of(uint64_t k, const uint64_t *split, unsigned nsplit)
{
    unsigned p = 0;
    while (p < nsplit && k > split[p])
        p++;
    return p;
}

/* Splitter i is the sample at the cumulative share of parts 0..i. */
static int choose_splitters(const void *src, size_t n, size_t size, const double *share,
                            unsigned parts, const struct hy_xform_u32 *t32,
                            const struct hy_xform_u64 *t64, uint64_t *split, hy_error *err)
{
    unsigned ns = n < SAMPLES ? (unsigned)n : SAMPLES;
    uint64_t *sample = malloc(ns * sizeof *sample);
    if (!sample)
        return hy_error_set(err, HY_ENOMEM, "no memory for %u sort samples", ns);
    size_t step = n / ns; /* >= 1: ns <= n */
    for (unsigned j = 0; j < ns; j++)
        sample[j] = key_at(src, j * step + step / 2, size, t32, t64);
    qsort(sample, ns, sizeof *sample, cmp_u64);
    double total = 0, upto = 0;
    for (unsigned p = 0; p < parts; p++)
        total += share[p];
    for (unsigned p = 0; p + 1 < parts; p++) {
        upto += share[p];
        double at = total > 0 ? upto / total * ns : 0;
        /* The key at that quantile closes part p; a share of 0 takes nothing but keys equal
         * to an earlier splitter, which tie left. */
        unsigned k = at < 1 ? 0 : at >= ns ? ns - 1 : (unsigned)at - 1;
        split[p] = share[p] > 0 ? sample[k] : p == 0 ? 0 : split[p - 1];
    }
    free(sample);
    return 0;
}

int hy_host_sort_cut(int dtype, const void *src, void *dst, size_t n, const double *share,
                     unsigned parts, size_t *bounds, hy_error *err)
{
    size_t size;
    int rc = hy_check_sort_args(dtype, src, n, &size, err);
    if (rc)
        return rc;
    if (parts < 1 || parts > HY_HOST_CUT_MAX_PARTS || !share || !bounds || !dst ||
        ((const char *)dst < (const char *)src + n * size &&
         (const char *)src < (const char *)dst + n * size))
        return hy_error_set(err, HY_EINVAL, "a cut needs 1..%d parts, their shares, bounds "
                            "and a destination apart from the source", HY_HOST_CUT_MAX_PARTS);
    for (unsigned p = 0; p < parts; p++)
        if (!(share[p] >= 0))
            return hy_error_set(err, HY_EINVAL, "part %u's share is negative or not a number",
                                p);
    struct hy_key_spec ks = hy_key_spec_of(dtype);
    struct hy_xform_u32 t32 = hy_xform_u32_of(ks);
    struct hy_xform_u64 t64 = hy_xform_u64_of(ks);
    uint64_t split[HY_HOST_CUT_MAX_PARTS];
    if (parts > 1 && (rc = choose_splitters(src, n, size, share, parts, &t32, &t64, split, err)))
        return rc;

    size_t count[HY_HOST_CUT_MAX_PARTS] = {0};
    for (size_t i = 0; i < n; i++)
        count[part_of(key_at(src, i, size, &t32, &t64), split, parts - 1)]++;
    size_t at[HY_HOST_CUT_MAX_PARTS];
    bounds[0] = 0;
    for (unsigned p = 0; p < parts; p++) {
        at[p] = bounds[p];
        bounds[p + 1] = bounds[p] + count[p];
    }
    /* A stable scatter: equal keys are equal bytes, so order within a part does not matter
     * to the result, but a stable cut makes the bytes before the sort reproducible too. */
    for (size_t i = 0; i < n; i++) {
        unsigned p = part_of(key_at(src, i, size, &t32, &t64), split, parts - 1);
        memcpy((char *)dst + at[p]++ * size, (const char *)src + i * size, size);
    }
    return 0;
}
