/* tests/host: hy_host_sort_cut — the key ranges the hybrid backend hands to its participants:
 * a permutation of the input, sections in order (every key of one at most every key of the
 * next, in numpy's order with NaNs and -0.0), sizes near their shares, all-equal input in one
 * section, the same cut every time, and sorting the sections where they lie giving
 * hy_host_sort's bytes; bad arguments refused with a sentence. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "sortkey.h"

static hy_host *H;

static void up(void)
{
    hy_error err = {0};
    cr_assert_eq(hy_host_create(&(hy_host_config){.threads = 2}, &H, &err), 0, "%s", err.msg);
}

static void down(void)
{
    hy_host_destroy(H);
}

TestSuite(cut, .init = up, .fini = down, .timeout = 60);

/* Elements with many duplicates and, for floats, NaNs, -0.0, +0.0 and infinities. */
static void fill(int dt, void *data, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t r = s >> 11;
        int64_t v = (r & 1) ? (int64_t)(r >> 4) - (1ll << 47) : (int64_t)((r >> 4) % 16) - 8;
        double d = (double)v / 8.0;
        unsigned sp = (unsigned)(r >> 40) % 16;
        if (sp == 0)
            d = NAN;
        else if (sp == 1)
            d = -0.0;
        else if (sp == 2)
            d = INFINITY;
        switch (dt) {
        case HY_DT_I32: ((int32_t *)data)[i] = (int32_t)v; break;
        case HY_DT_U32: ((uint32_t *)data)[i] = (uint32_t)v; break;
        case HY_DT_I64: ((int64_t *)data)[i] = v; break;
        case HY_DT_U64: ((uint64_t *)data)[i] = (uint64_t)v; break;
        case HY_DT_F32: ((float *)data)[i] = (float)d; break;
        default: ((double *)data)[i] = d; break;
        }
    }
}

static uint64_t key(int dt, const void *data, size_t i)
{
    struct hy_key_spec ks = hy_key_spec_of(dt);
    if (hy_dtype_size(dt) == 4) {
        struct hy_xform_u32 t = hy_xform_u32_of(ks);
        uint32_t x;
        memcpy(&x, (const char *)data + 4 * i, 4);
        return hy_to_key_u32(x, &t);
    }
    struct hy_xform_u64 t = hy_xform_u64_of(ks);
    uint64_t x;
    memcpy(&x, (const char *)data + 8 * i, 8);
    return hy_to_key_u64(x, &t);
}

Test(cut, sections_in_order_near_their_shares_and_sorted_in_place_equal_the_sort)
{
    const size_t n = 200003;
    const double share[3] = {1, 2, 1};
    for (int dt = HY_DT_I32; dt <= HY_DT_F64; dt++) {
        size_t size = hy_dtype_size(dt);
        char *src = malloc(n * size), *dst = malloc(n * size), *want = malloc(n * size);
        char *again = malloc(n * size);
        cr_assert(src && dst && want && again);
        fill(dt, src, n, 40 + (uint64_t)dt);
        memcpy(want, src, n * size);
        hy_error err = {0};
        hy_run_opts ro = {.backend = HY_BACKEND_SERIAL, .threads = 1};
        hy_run_opts pool = {.backend = HY_BACKEND_NATIVE, .threads = 2};
        hy_sort_result sr;
        cr_assert_eq(hy_host_sort(H, dt, want, n, &ro, &sr, &err), 0, "%s", err.msg);
        size_t b[4], b2[4];
        cr_assert_eq(hy_host_sort_cut(NULL, NULL, dt, src, dst, n, share, 3, b, &err), 0, "%s", err.msg);
        cr_assert_eq(b[0], 0);
        cr_assert_eq(b[3], n);
        /* Half the keys are among 16 values, so a quantile may fall on a run of equals: the
         * sizes are near their shares, not exact. */
        for (unsigned p = 0; p < 3; p++) {
            double got = (double)(b[p + 1] - b[p]) / (double)n, want_share = share[p] / 4;
            cr_expect(fabs(got - want_share) < 0.1, "dtype %d part %u holds %.3f, share %.3f",
                      dt, p, got, want_share);
        }
        for (unsigned p = 0; p + 1 < 3; p++) { /* the largest of p <= the smallest of p+1 */
            uint64_t hi = 0, lo = UINT64_MAX;
            for (size_t i = b[p]; i < b[p + 1]; i++)
                hi = key(dt, dst, i) > hi ? key(dt, dst, i) : hi;
            for (size_t i = b[p + 1]; i < b[p + 2]; i++)
                lo = key(dt, dst, i) < lo ? key(dt, dst, i) : lo;
            cr_expect_leq(hi, lo, "dtype %d: part %u overlaps part %u", dt, p, p + 1);
        }
        cr_assert_eq(hy_host_sort_cut(H, &pool, dt, src, again, n, share, 3, b2, &err), 0);
        /* On the pool's two threads: the same bounds and the same bytes (the cut keeps the
         * input's order within a part, whoever scatters it). */
        cr_expect(memcmp(b, b2, sizeof b) == 0 && memcmp(dst, again, n * size) == 0,
                  "dtype %d: the pool cut the same input differently", dt);
        for (unsigned p = 0; p < 3; p++)
            cr_assert_eq(hy_host_sort(H, dt, dst + b[p] * size, b[p + 1] - b[p], &ro, &sr,
                                      &err), 0, "%s", err.msg);
        cr_expect(memcmp(dst, want, n * size) == 0, "dtype %d: sorted sections differ from "
                  "the sort", dt);
        free(src);
        free(dst);
        free(want);
        free(again);
    }
}

Test(cut, all_equal_keys_land_in_one_section_and_one_part_is_a_copy)
{
    const size_t n = 10000;
    uint64_t *src = malloc(n * 8), *dst = malloc(n * 8);
    cr_assert(src && dst);
    for (size_t i = 0; i < n; i++)
        src[i] = 7;
    size_t b[3];
    hy_error err = {0};
    cr_assert_eq(hy_host_sort_cut(NULL, NULL, HY_DT_U64, src, dst, n, (double[]){1, 1}, 2, b, &err), 0);
    cr_expect(b[1] == 0 || b[1] == n, "equal keys split %zu / %zu", b[1], n - b[1]);
    cr_expect(memcmp(src, dst, n * 8) == 0);
    for (size_t i = 0; i < n; i++)
        src[i] = n - i;
    cr_assert_eq(hy_host_sort_cut(NULL, NULL, HY_DT_U64, src, dst, n, (double[]){1}, 1, b, &err), 0);
    cr_expect(b[0] == 0 && b[1] == n && memcmp(src, dst, n * 8) == 0);
    free(src);
    free(dst);
}

static int cancel_at_once(void *ctx, uint64_t done, uint64_t total)
{
    (void)ctx;
    (void)done;
    (void)total;
    return 1;
}

Test(cut, a_cut_on_the_pool_can_be_cancelled)
{
    const size_t n = 1 << 20;
    uint32_t *src = malloc(n * 4), *dst = malloc(n * 4);
    cr_assert(src && dst);
    fill(HY_DT_U32, src, n, 5);
    size_t b[3];
    hy_error err = {0};
    hy_run_opts o = {.backend = HY_BACKEND_NATIVE, .threads = 2, .progress = cancel_at_once};
    cr_expect_eq(hy_host_sort_cut(H, &o, HY_DT_U32, src, dst, n, (double[]){1, 1}, 2, b, &err),
                 HY_ECANCELED);
    cr_expect(err.msg[0]);
    free(src);
    free(dst);
}

Test(cut, bad_arguments_are_refused_with_a_sentence)
{
    uint32_t a[8] = {3, 1, 2}, d[8];
    size_t b[20];
    const double two[2] = {1, 1}, neg[2] = {1, -1};
    hy_error err = {0};
    cr_expect_eq(hy_host_sort_cut(NULL, NULL, HY_DT_U32, a, d, 8, two, 0, b, &err), HY_EINVAL);
    cr_expect(err.msg[0]);
    cr_expect_eq(hy_host_sort_cut(NULL, NULL, HY_DT_U32, a, d, 8, two, HY_HOST_CUT_MAX_PARTS + 1, b, &err),
                 HY_EINVAL);
    cr_expect_eq(hy_host_sort_cut(NULL, NULL, HY_DT_U32, a, a + 1, 4, two, 2, b, &err), HY_EINVAL);
    cr_expect_eq(hy_host_sort_cut(NULL, NULL, HY_DT_U32, a, d, 8, neg, 2, b, &err), HY_EINVAL);
    cr_expect_eq(hy_host_sort_cut(NULL, NULL, HY_DT_U32, a, d, 8, NULL, 2, b, &err), HY_EINVAL);
    cr_expect_eq(hy_host_sort_cut(NULL, NULL, 99, a, d, 8, two, 2, b, &err), HY_EDTYPE);
}
