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

/* Elements with many duplicates and, for floats, NaNs, -0.0, +0.0 and infinities: one in
 * crowd + 1 among 16 small values, one in `special` of each special value. */
static void fill_as(int dt, void *data, size_t n, uint64_t seed, uint64_t crowd,
                    unsigned special)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t r = s >> 11;
        int64_t v = (r & crowd) ? (int64_t)(r >> 4) - (1ll << 47) : (int64_t)((r >> 4) % 16) - 8;
        double d = (double)v / 8.0;
        unsigned sp = (unsigned)(r >> 40) % special;
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

/* Half the elements among 16 values, a sixteenth each NaN, -0.0 and infinity. */
static void fill(int dt, void *data, size_t n, uint64_t seed)
{
    fill_as(dt, data, n, seed, 1, 16);
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

/* ---- hy_host_sort_shed: the sort's own top-level pass hands out the top of its order ---- */

/* What ready saw: its calls, the bounds, and a copy of the handed-out sections as they were
 * then (the sort is still running: they must already hold their elements). */
struct seen {
    unsigned calls, parts;
    size_t bounds[HY_HOST_CUT_MAX_PARTS + 1];
    const char *array;
    size_t size;
    char *copy;
};

static void on_ready(void *ctx, const size_t *bounds)
{
    struct seen *s = ctx;
    s->calls++;
    memcpy(s->bounds, bounds, (s->parts + 2) * sizeof *bounds);
    size_t from = bounds[1], n = bounds[s->parts + 1];
    s->copy = malloc((n - from) * s->size + 1);
    if (s->copy)
        memcpy(s->copy, s->array + from * s->size, (n - from) * s->size);
}

Test(cut, a_shed_sort_hands_out_sections_that_sorted_where_they_lie_equal_the_sort)
{
    const size_t n = (1u << 20) + 12345;
    const double share[3] = {5, 2, 1};
    for (int dt = HY_DT_I32; dt <= HY_DT_F64; dt++) {
        for (unsigned threads = 1; threads <= 2; threads++) {
            size_t size = hy_dtype_size(dt);
            char *a = malloc(n * size), *want = malloc(n * size);
            cr_assert(a && want);
            /* Crowds the one-pass top level takes: a crowded bucket over its cache budget
             * would send the sort to two reads, which hand nothing out (the next test). */
            fill_as(dt, a, n, 70 + (uint64_t)dt, 15, 32);
            /* u64's negative values wrapped to the top of its range: shifted back, the
             * keys spread over one range rather than crowding both ends. */
            for (size_t i = 0; dt == HY_DT_U64 && i < n; i++)
                ((uint64_t *)(void *)a)[i] += 1ull << 47;
            memcpy(want, a, n * size);
            hy_error err = {0};
            hy_run_opts ro = {.backend = HY_BACKEND_NATIVE, .threads = threads};
            hy_sort_result sr;
            cr_assert_eq(hy_host_sort(H, dt, want, n, &ro, &sr, &err), 0, "%s", err.msg);
            struct seen s = {.parts = 2, .array = a, .size = size};
            hy_sort_shed shed = {.parts = 2, .share = share, .ready = on_ready, .ctx = &s};
            size_t b[4];
            cr_assert_eq(hy_host_sort_shed(H, dt, a, n, &ro, &shed, b, &sr, &err), 0, "%s",
                         err.msg);
            cr_assert_eq(s.calls, 1, "ready called %u times", s.calls);
            cr_assert(memcmp(s.bounds, b, sizeof b) == 0, "ready's bounds differ from the "
                      "returned ones");
            cr_assert(b[0] == 0 && b[0] <= b[1] && b[1] <= b[2] && b[2] <= b[3] && b[3] == n);
            /* Within a top-level bucket of their shares (buckets here hold ~n / 512 keys, a
             * special value's equal keys ~n / 32). */
            for (unsigned p = 0; p < 3; p++) {
                double got = (double)(b[p + 1] - b[p]) / (double)n, want_share = share[p] / 8;
                cr_expect(fabs(got - want_share) < 0.04, "dtype %d, %u threads: section %u "
                          "holds %.3f, share %.3f", dt, threads, p, got, want_share);
            }
            /* Section 0 came back sorted: it is the sort's own. */
            cr_expect(memcmp(a, want, b[1] * size) == 0, "dtype %d, %u threads: section 0 "
                      "is not the sort's first %zu elements", dt, threads, b[1]);
            /* The others hold, unsorted, exactly the sort's elements of their places, and
             * held them already when ready was called. */
            cr_assert(s.copy);
            for (unsigned p = 1; p < 3; p++) {
                char *at = a + b[p] * size, *then = s.copy + (b[p] - b[1]) * size;
                cr_expect(memcmp(at, then, (b[p + 1] - b[p]) * size) == 0, "dtype %d: section "
                          "%u changed after ready", dt, p);
                cr_assert_eq(hy_host_sort(H, dt, at, b[p + 1] - b[p], &ro, &sr, &err), 0);
            }
            cr_expect(memcmp(a, want, n * size) == 0, "dtype %d, %u threads: the sorted "
                      "sections differ from the sort", dt, threads);
            free(s.copy);
            free(a);
            free(want);
        }
    }
}

Test(cut, a_shed_sort_of_what_its_one_pass_does_not_take_sorts_it_whole)
{
    /* Small, all equal (few distinct values), and one crowded bucket over the cache budget
     * (half the keys equal, the rest spread: the top level falls back to two reads). */
    const size_t sizes[3] = {5000, 1u << 21, 1u << 21};
    for (unsigned k = 0; k < 3; k++) {
        size_t n = sizes[k];
        uint64_t *a = malloc(n * 8), *want = malloc(n * 8);
        cr_assert(a && want);
        for (size_t i = 0; i < n; i++)
            a[i] = k == 1 ? 7 : (k == 2 && i % 2 ? 1u << 30 : (i * 2654435761u) % 1000003);
        memcpy(want, a, n * 8);
        hy_error err = {0};
        hy_run_opts ro = {.backend = HY_BACKEND_NATIVE, .threads = 2};
        hy_sort_result sr;
        cr_assert_eq(hy_host_sort(H, HY_DT_U64, want, n, &ro, &sr, &err), 0, "%s", err.msg);
        struct seen s = {.parts = 1, .array = (const char *)a, .size = 8};
        hy_sort_shed shed = {.parts = 1, .share = (double[]){1, 1}, .ready = on_ready, .ctx = &s};
        size_t b[3];
        cr_assert_eq(hy_host_sort_shed(H, HY_DT_U64, a, n, &ro, &shed, b, &sr, &err), 0, "%s",
                     err.msg);
        cr_expect_eq(s.calls, 1, "case %u: ready called %u times", k, s.calls);
        cr_expect(b[0] == 0 && b[1] == n && b[2] == n, "case %u: a section was handed out "
                  "(%zu, %zu)", k, b[1], b[2]);
        cr_expect(memcmp(a, want, n * 8) == 0, "case %u: not sorted whole", k);
        free(s.copy);
        free(a);
        free(want);
    }
}

/* Cancels once the job's progress has passed its limit (units of hy_host_sort's 3 a key). */
static int cancel_past(void *ctx, uint64_t done, uint64_t total)
{
    (void)total;
    return done >= *(const uint64_t *)ctx;
}

Test(cut, a_cancelled_shed_sort_loses_no_element)
{
    /* Progress is reported every 2 ms, so where a cancel lands is not exact: before the
     * pass, inside it, and once the pass is done (2 units a key), most often while the shed
     * sections (three quarters of the keys, 1 unit each) are being moved out. */
    const size_t n = (1u << 23) + 7;
    const uint64_t limits[3] = {0, (uint64_t)n, 2 * (uint64_t)n + 1};
    for (unsigned k = 0; k < 3; k++) {
        uint32_t *a = malloc(n * 4), *want = malloc(n * 4);
        cr_assert(a && want);
        fill_as(HY_DT_U32, a, n, 11 + k, 255, 32); /* crowds the one pass takes at 2^23 */
        memcpy(want, a, n * 4);
        hy_error err = {0};
        hy_sort_result sr;
        hy_run_opts plain = {.backend = HY_BACKEND_NATIVE, .threads = 2};
        hy_run_opts ro = {.backend = HY_BACKEND_NATIVE, .threads = 2, .progress = cancel_past,
                          .progress_ctx = (void *)&limits[k]};
        struct seen s = {.parts = 1, .array = (const char *)a, .size = 4};
        hy_sort_shed shed = {.parts = 1, .share = (double[]){1, 3}, .ready = on_ready, .ctx = &s};
        size_t b[3];
        int rc = hy_host_sort_shed(H, HY_DT_U32, a, n, &ro, &shed, b, &sr, &err);
        cr_expect(rc == HY_ECANCELED || rc == 0, "limit %u: %d %s", k, rc, err.msg);
        cr_expect_eq(s.calls, 1, "limit %u: ready called %u times", k, s.calls);
        /* Whatever was done, the array holds every input element. */
        cr_assert_eq(hy_host_sort(H, HY_DT_U32, a, n, &plain, &sr, &err), 0);
        cr_assert_eq(hy_host_sort(H, HY_DT_U32, want, n, &plain, &sr, &err), 0);
        cr_expect(memcmp(a, want, n * 4) == 0, "limit %u: an element was lost", k);
        free(s.copy);
        free(a);
        free(want);
    }
}

Test(cut, a_shed_sort_refuses_bad_arguments_without_calling_ready)
{
    uint32_t a[8] = {3, 1, 2};
    size_t b[20];
    struct seen s = {.parts = 1, .array = (const char *)a, .size = 4};
    hy_error err = {0};
    hy_sort_result sr;
    hy_run_opts ro = {.backend = HY_BACKEND_NATIVE, .threads = 2};
    hy_run_opts repl = {.backend = HY_BACKEND_NATIVE, .threads = 2, .mode = HY_MODE_REPLICATE};
    const hy_sort_shed bad[] = {
        {.parts = 0, .share = (double[]){1, 1}, .ready = on_ready, .ctx = &s},
        {.parts = HY_HOST_CUT_MAX_PARTS, .share = (double[HY_HOST_CUT_MAX_PARTS + 1]){0},
         .ready = on_ready, .ctx = &s},
        {.parts = 1, .share = NULL, .ready = on_ready, .ctx = &s},
        {.parts = 1, .share = (double[]){1, -1}, .ready = on_ready, .ctx = &s},
        {.parts = 1, .share = (double[]){1, NAN}, .ready = on_ready, .ctx = &s},
        {.parts = 1, .share = (double[]){1, 1}, .ready = NULL},
    };
    for (unsigned k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        err.msg[0] = 0;
        cr_expect_eq(hy_host_sort_shed(H, HY_DT_U32, a, 8, &ro, &bad[k], b, &sr, &err),
                     HY_EINVAL, "case %u", k);
        cr_expect(err.msg[0], "case %u: no sentence", k);
    }
    const hy_sort_shed good = {.parts = 1, .share = (double[]){1, 1}, .ready = on_ready,
                               .ctx = &s};
    cr_expect_eq(hy_host_sort_shed(H, HY_DT_U32, a, 8, &repl, &good, b, &sr, &err), HY_EINVAL);
    cr_expect_eq(hy_host_sort_shed(H, HY_DT_U32, a, 8, &ro, &good, NULL, &sr, &err), HY_EINVAL);
    cr_expect_eq(hy_host_sort_shed(H, 99, a, 8, &ro, &good, b, &sr, &err), HY_EDTYPE);
    cr_expect_eq(s.calls, 1, "ready: %u calls (only the bad dtype's sort, which tells once)",
                 s.calls);
    free(s.copy);
}
