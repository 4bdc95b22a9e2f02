/* tests/host: hy_host_merge and hy_host_merge_cut — runs sorted by hy_host_sort merge into
 * exactly the bytes hy_host_sort gives for the whole array, for every dtype (floats with
 * NaNs of both signs and payloads, infinities, signed zeros, duplicates), uneven and empty
 * runs; cuts keep their invariants and let several workers share one merge; bad arguments. */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

#include "engine_fixture.h"

TestSuite(merge, .init = engine_up, .fini = engine_down);

static const int dtypes[] = {HY_DT_I32, HY_DT_U32, HY_DT_I64, HY_DT_U64, HY_DT_F32, HY_DT_F64};
#define NDTYPES (sizeof dtypes / sizeof dtypes[0])

/* ---- data ---- */

static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

static const uint32_t special_f32[] = {
    0x7FC00000u, 0x7F800001u, 0x7FFFFFFFu, 0x7FA00123u, /* +NaN: quiet, signalling, payloads */
    0xFFC00000u, 0xFF800001u, 0xFFFFFFFFu, 0xFFA00123u, /* -NaN */
    0x7F800000u, 0xFF800000u,                           /* +inf, -inf */
    0x00000000u, 0x80000000u,                           /* +0.0, -0.0 */
    0x00000001u, 0x80000001u, 0x3F800000u, 0xBF800000u, /* denormals, +-1.0 */
};
static const uint64_t special_f64[] = {
    0x7FF8000000000000u, 0x7FF0000000000001u, 0x7FFFFFFFFFFFFFFFu, 0x7FF4000000ABCDEFu,
    0xFFF8000000000000u, 0xFFF0000000000001u, 0xFFFFFFFFFFFFFFFFu, 0xFFF4000000ABCDEFu,
    0x7FF0000000000000u, 0xFFF0000000000000u, /* +inf, -inf */
    0x0000000000000000u, 0x8000000000000000u, /* +0.0, -0.0 */
    0x0000000000000001u, 0x8000000000000001u, 0x3FF0000000000000u, 0xBFF0000000000000u,
};
/* Integers at the ends of every range, where a wrong key map shows first. */
static const uint64_t special_int[] = {
    0, 1, 0x7FFFFFFFu, 0x80000000u, 0xFFFFFFFFu, 0x7FFFFFFFFFFFFFFFu, 0x8000000000000000u,
    UINT64_MAX,
};

static void put(void *buf, size_t size, size_t i, uint64_t bits)
{
    if (size == 4) {
        uint32_t v = (uint32_t)bits;
        memcpy((char *)buf + i * 4, &v, 4);
    } else {
        memcpy((char *)buf + i * 8, &bits, 8);
    }
}

/* n elements: a third specials, a third from a small pool (duplicates), the rest random bit
 * patterns (for floats every class, NaNs included). */
static void *make_data(int dtype, size_t n, uint64_t seed)
{
    size_t size = hy_dtype_size(dtype);
    void *a = malloc(n * size + 1);
    cr_assert_not_null(a);
    uint64_t s = seed, pool[7];
    for (int i = 0; i < 7; i++)
        pool[i] = mix(&s);
    for (size_t i = 0; i < n; i++) {
        uint64_t r = mix(&s), bits;
        switch (r % 3) {
        case 0:
            if (dtype == HY_DT_F32)
                bits = special_f32[(r >> 8) % (sizeof special_f32 / sizeof special_f32[0])];
            else if (dtype == HY_DT_F64)
                bits = special_f64[(r >> 8) % (sizeof special_f64 / sizeof special_f64[0])];
            else
                bits = special_int[(r >> 8) % (sizeof special_int / sizeof special_int[0])];
            break;
        case 1: bits = pool[(r >> 8) % 7]; break;
        default: bits = mix(&s); break;
        }
        put(a, size, i, bits);
    }
    return a;
}

static void serial_sort(int dtype, void *a, size_t n)
{
    hy_run_opts o = {.backend = HY_BACKEND_SERIAL, .threads = 1};
    hy_sort_result r;
    hy_error err = {0};
    int rc = hy_host_sort(eng, dtype, a, n, &o, &r, &err);
    cr_assert_eq(rc, 0, "hy_host_sort %s n=%zu: %d %s", hy_dtype_name(dtype), n, rc, err.msg);
}

/* Splits a copy of data[0, n) into k runs of uneven lengths (some empty) and sorts each. */
struct runs {
    unsigned k;
    const void *run[HY_HOST_MERGE_MAX_RUNS];
    size_t len[HY_HOST_MERGE_MAX_RUNS];
    char *copy;
};

static void make_runs(struct runs *r, int dtype, const void *data, size_t n, unsigned k,
                      uint64_t seed)
{
    size_t size = hy_dtype_size(dtype);
    r->k = k;
    r->copy = malloc(n * size + 1);
    cr_assert_not_null(r->copy);
    memcpy(r->copy, data, n * size);
    /* Cut points: random, sorted; run 1 is forced empty when k > 2. */
    size_t cuts[HY_HOST_MERGE_MAX_RUNS + 1];
    uint64_t s = seed;
    cuts[0] = 0;
    cuts[k] = n;
    for (unsigned i = 1; i < k; i++)
        cuts[i] = n ? (size_t)(mix(&s) % (n + 1)) : 0;
    for (unsigned i = 1; i < k; i++) /* insertion sort of the cuts */
        for (unsigned j = i; j > 1 && cuts[j - 1] > cuts[j]; j--) {
            size_t t = cuts[j];
            cuts[j] = cuts[j - 1];
            cuts[j - 1] = t;
        }
    if (k > 2)
        cuts[2] = cuts[1];
    for (unsigned i = 0; i < k; i++) {
        r->len[i] = cuts[i + 1] - cuts[i];
        /* An empty run may come as NULL: only a run with elements needs an array. */
        r->run[i] = r->len[i] == 0 && (i & 1) ? NULL : r->copy + cuts[i] * size;
        if (r->len[i] > 0)
            serial_sort(dtype, r->copy + cuts[i] * size, r->len[i]);
    }
}

#define CASE "%s n=%zu k=%u"
#define CARGS(dt, n, k) hy_dtype_name(dt), (size_t)(n), (unsigned)(k)

/* ---- merge ---- */

static void check_merge(int dtype, size_t n, unsigned k, uint64_t seed)
{
    size_t size = hy_dtype_size(dtype);
    char *data = make_data(dtype, n, seed);
    struct runs r;
    make_runs(&r, dtype, data, n, k, seed ^ 0xABCDu);
    serial_sort(dtype, data, n); /* the expected bytes */
    char *out = malloc(n * size + 1);
    cr_assert_not_null(out);
    memset(out, 0xA5, n * size);
    hy_error err = {0};
    int rc = hy_host_merge(dtype, r.run, r.len, k, out, &err);
    cr_assert_eq(rc, 0, "hy_host_merge " CASE ": %d %s", CARGS(dtype, n, k), rc, err.msg);
    for (size_t i = 0; i < n; i++)
        if (memcmp(out + i * size, data + i * size, size) != 0)
            cr_assert_fail("hy_host_merge " CASE ": element %zu differs from hy_host_sort's",
                           CARGS(dtype, n, k), i);
    free(out);
    free(r.copy);
    free(data);
}

Test(merge, equals_sort_every_dtype)
{
    static const size_t ns[] = {0, 1, 2, 5, 33, 100, 1000, 4099, 40000};
    static const unsigned ks[] = {1, 2, 3, 5};
    for (size_t d = 0; d < NDTYPES; d++)
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
            for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++)
                check_merge(dtypes[d], ns[i], ks[j], 1000 * d + 10 * i + j);
}

/* Many runs: the tournament, its rebuilds as runs run out, and the most runs allowed. */
Test(merge, many_runs)
{
    static const unsigned ks[] = {4, 8, 17, 63, HY_HOST_MERGE_MAX_RUNS};
    for (size_t d = 0; d < NDTYPES; d++)
        for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++) {
            check_merge(dtypes[d], 20000, ks[j], 77 + d * 31 + j);
            check_merge(dtypes[d], 50, ks[j], 99 + d * 31 + j);
        }
}

/* Two runs of very different shapes: one tiny against one long, one wholly below the
 * other, interleaved equal values; the two-ended loop and its hand-over to the plain one. */
Test(merge, two_runs_shapes)
{
    for (size_t d = 0; d < NDTYPES; d++) {
        int dt = dtypes[d];
        size_t size = hy_dtype_size(dt);
        static const size_t shapes[][2] = {{1, 5000}, {5000, 1}, {31, 32}, {32, 32},
                                           {33, 1000}, {2000, 2000}, {0, 100}, {100, 0}};
        for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
            size_t na = shapes[sh][0], nb = shapes[sh][1], n = na + nb;
            char *data = make_data(dt, n, 5 + sh + 100 * d);
            char *a = malloc(na * size + 1), *b = malloc(nb * size + 1);
            char *out = malloc(n * size + 1);
            cr_assert(a && b && out);
            memcpy(a, data, na * size);
            memcpy(b, data + na * size, nb * size);
            serial_sort(dt, a, na);
            serial_sort(dt, b, nb);
            serial_sort(dt, data, n);
            /* Disjoint ranges too: all of b after all of a, then the other way round. */
            for (int order = 0; order < 3; order++) {
                const void *runs[2] = {a, b};
                size_t lens[2] = {na, nb};
                char *whole = data;
                char *sorted_split = NULL;
                if (order > 0) {
                    /* Runs holding the sorted array's lower and upper parts. */
                    sorted_split = malloc(n * size + 1);
                    cr_assert_not_null(sorted_split);
                    memcpy(sorted_split, data, n * size);
                    runs[order == 1 ? 0 : 1] = sorted_split;
                    runs[order == 1 ? 1 : 0] = sorted_split + na * size;
                    lens[order == 1 ? 0 : 1] = na;
                    lens[order == 1 ? 1 : 0] = nb;
                }
                hy_error err = {0};
                int rc = hy_host_merge(dt, runs, lens, 2, out, &err);
                cr_assert_eq(rc, 0, "merge %s %zu+%zu order %d: %d %s", hy_dtype_name(dt), na,
                             nb, order, rc, err.msg);
                cr_assert(n == 0 || memcmp(out, whole, n * size) == 0,
                          "merge %s %zu+%zu order %d differs from the sort", hy_dtype_name(dt),
                          na, nb, order);
                free(sorted_split);
            }
            free(a);
            free(b);
            free(out);
            free(data);
        }
    }
}

/* All elements equal, and only two distinct values: ties everywhere. */
Test(merge, ties)
{
    for (size_t d = 0; d < NDTYPES; d++) {
        int dt = dtypes[d];
        size_t size = hy_dtype_size(dt), n = 3000;
        char *data = malloc(n * size);
        cr_assert_not_null(data);
        uint64_t s = 3;
        for (int variant = 0; variant < 2; variant++) {
            for (size_t i = 0; i < n; i++)
                put(data, size, i, variant == 0 ? 0x7FC00000u : (mix(&s) & 1) ? 5 : 0);
            for (unsigned k = 1; k <= 5; k++) {
                struct runs r;
                make_runs(&r, dt, data, n, k, k + 10u * variant);
                char *want = malloc(n * size), *out = malloc(n * size);
                cr_assert(want && out);
                memcpy(want, data, n * size);
                serial_sort(dt, want, n);
                int rc = hy_host_merge(dt, r.run, r.len, k, out, NULL);
                cr_assert_eq(rc, 0, "ties merge %s k=%u", hy_dtype_name(dt), k);
                cr_assert(memcmp(out, want, n * size) == 0, "ties merge %s k=%u differs",
                          hy_dtype_name(dt), k);
                free(want);
                free(out);
                free(r.copy);
            }
        }
        free(data);
    }
}

/* ---- cut ---- */

/* The cut's contract at `rank`, against the sorted whole: within bounds, adding up to rank,
 * and the elements before the cut are, as a multiset, the `rank` smallest (so every one is
 * <= every element after the cut). */
static void check_cut(int dtype, const struct runs *r, const char *sorted, size_t rank,
                      const size_t *cut)
{
    size_t size = hy_dtype_size(dtype), sum = 0;
    for (unsigned i = 0; i < r->k; i++) {
        cr_assert_leq(cut[i], r->len[i], "cut %s rank %zu: cut[%u] = %zu > len %zu",
                      hy_dtype_name(dtype), rank, i, cut[i], r->len[i]);
        sum += cut[i];
    }
    cr_assert_eq(sum, rank, "cut %s rank %zu: cuts add up to %zu", hy_dtype_name(dtype), rank,
                 sum);
    char *before = malloc(rank * size + 1);
    cr_assert_not_null(before);
    size_t at = 0;
    for (unsigned i = 0; i < r->k; i++) {
        if (cut[i] > 0)
            memcpy(before + at * size, r->run[i], cut[i] * size);
        at += cut[i];
    }
    serial_sort(dtype, before, rank);
    cr_assert(rank == 0 || memcmp(before, sorted, rank * size) == 0,
              "cut %s k=%u rank %zu: the elements before the cut are not the %zu smallest",
              hy_dtype_name(dtype), r->k, rank, rank);
    free(before);
}

Test(merge, cut_invariants)
{
    static const size_t ns[] = {1, 7, 100, 5000};
    static const unsigned ks[] = {1, 2, 3, 5, 9};
    for (size_t d = 0; d < NDTYPES; d++)
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
            for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++) {
                int dt = dtypes[d];
                size_t n = ns[i];
                unsigned k = ks[j];
                char *data = make_data(dt, n, 7 * d + 3 * i + j);
                struct runs r;
                make_runs(&r, dt, data, n, k, 11 * d + i + 5 * j);
                serial_sort(dt, data, n);
                uint64_t s = n + k;
                size_t prev[HY_HOST_MERGE_MAX_RUNS] = {0};
                /* 0, the total, random ranks, and every rank of small inputs in order (the
                 * cut never moves back as rank grows). */
                size_t nranks = n <= 100 ? n + 1 : 40;
                for (size_t q = 0; q < nranks + 2; q++) {
                    size_t rank = q == nranks ? 0 : q == nranks + 1 ? n
                                  : n <= 100                      ? q
                                                                  : (size_t)(mix(&s) % (n + 1));
                    size_t cut[HY_HOST_MERGE_MAX_RUNS], again[HY_HOST_MERGE_MAX_RUNS];
                    hy_error err = {0};
                    int rc = hy_host_merge_cut(dt, r.run, r.len, k, rank, cut, &err);
                    cr_assert_eq(rc, 0, "cut " CASE " rank %zu: %d %s", CARGS(dt, n, k), rank,
                                 rc, err.msg);
                    check_cut(dt, &r, data, rank, cut);
                    rc = hy_host_merge_cut(dt, r.run, r.len, k, rank, again, NULL);
                    cr_assert(rc == 0 && memcmp(cut, again, k * sizeof *cut) == 0,
                              "cut " CASE " rank %zu is not deterministic", CARGS(dt, n, k),
                              rank);
                    if (n <= 100 && q < nranks) {
                        for (unsigned w = 0; w < k; w++)
                            cr_assert_geq(cut[w], prev[w],
                                          "cut " CASE ": cut[%u] fell from %zu to %zu at rank %zu",
                                          CARGS(dt, n, k), w, prev[w], cut[w], rank);
                        memcpy(prev, cut, sizeof prev);
                    }
                }
                free(r.copy);
                free(data);
            }
}

/* Three workers share one merge: worker w merges the pieces between its cuts into its own
 * range of out, and the result is the sorted whole. */
Test(merge, cut_workers)
{
    static const size_t ns[] = {2, 10, 999, 30000};
    static const unsigned ks[] = {1, 2, 3, 5};
    const unsigned workers = 3;
    for (size_t d = 0; d < NDTYPES; d++)
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
            for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++) {
                int dt = dtypes[d];
                size_t n = ns[i], size = hy_dtype_size(dt);
                unsigned k = ks[j];
                char *data = make_data(dt, n, 1234 + 7 * d + 3 * i + j);
                struct runs r;
                make_runs(&r, dt, data, n, k, 99 * d + i + 5 * j);
                serial_sort(dt, data, n);
                char *out = malloc(n * size);
                cr_assert_not_null(out);
                memset(out, 0x5A, n * size);
                size_t cuts[4][HY_HOST_MERGE_MAX_RUNS], ranks[4];
                for (unsigned w = 0; w <= workers; w++) {
                    ranks[w] = n * w / workers;
                    int rc = hy_host_merge_cut(dt, r.run, r.len, k, ranks[w], cuts[w], NULL);
                    cr_assert_eq(rc, 0, "cut " CASE " rank %zu: %d", CARGS(dt, n, k), ranks[w],
                                 rc);
                }
                for (unsigned w = 0; w < workers; w++) {
                    const void *piece[HY_HOST_MERGE_MAX_RUNS];
                    size_t plen[HY_HOST_MERGE_MAX_RUNS];
                    for (unsigned q = 0; q < k; q++) {
                        cr_assert_leq(cuts[w][q], cuts[w + 1][q], "cut " CASE " not monotone",
                                      CARGS(dt, n, k));
                        plen[q] = cuts[w + 1][q] - cuts[w][q];
                        piece[q] = plen[q] ? (const char *)r.run[q] + cuts[w][q] * size : NULL;
                    }
                    hy_error err = {0};
                    int rc = hy_host_merge(dt, piece, plen, k, out + ranks[w] * size, &err);
                    cr_assert_eq(rc, 0, "worker %u merge " CASE ": %d %s", w, CARGS(dt, n, k),
                                 rc, err.msg);
                }
                cr_assert(memcmp(out, data, n * size) == 0,
                          "3 workers' merge " CASE " differs from the sort", CARGS(dt, n, k));
                free(out);
                free(r.copy);
                free(data);
            }
}

/* Runs that are not sorted: the cut may refuse them, and must never go out of bounds; the
 * merge still writes a permutation of the input. */
Test(merge, unsorted_runs_are_safe)
{
    for (size_t d = 0; d < NDTYPES; d++) {
        int dt = dtypes[d];
        size_t size = hy_dtype_size(dt), n = 600;
        char *data = make_data(dt, n, 4242 + d);
        const void *runs[3] = {data, data + 100 * size, data + 350 * size};
        size_t lens[3] = {100, 250, 250};
        uint64_t s = 9;
        for (int q = 0; q < 50; q++) {
            size_t rank = (size_t)(mix(&s) % (n + 1)), cut[3] = {999, 999, 999};
            hy_error err = {0};
            int rc = hy_host_merge_cut(dt, runs, lens, 3, rank, cut, &err);
            cr_assert(rc == 0 || rc == HY_EINVAL, "unsorted cut %s: %d", hy_dtype_name(dt), rc);
            if (rc == 0) {
                cr_assert(cut[0] <= 100 && cut[1] <= 250 && cut[2] <= 250 &&
                              cut[0] + cut[1] + cut[2] == rank,
                          "unsorted cut %s rank %zu out of bounds", hy_dtype_name(dt), rank);
            } else {
                cr_assert(err.msg[0] != '\0', "unsorted cut: empty message");
            }
        }
        char *out = malloc(n * size), *a = malloc(n * size);
        cr_assert(out && a);
        cr_assert_eq(hy_host_merge(dt, runs, lens, 3, out, NULL), 0, "unsorted merge");
        memcpy(a, data, n * size);
        serial_sort(dt, a, n);
        serial_sort(dt, out, n);
        cr_assert(memcmp(a, out, n * size) == 0, "unsorted merge %s lost elements",
                  hy_dtype_name(dt));
        free(a);
        free(out);
        free(data);
    }
}

/* ---- bad arguments ---- */

static void expect_merge_error(int dtype, const void *const runs[], const size_t lens[],
                               unsigned k, void *out, int want, const char *what)
{
    hy_error err = {0};
    int rc = hy_host_merge(dtype, runs, lens, k, out, &err);
    cr_assert_eq(rc, want, "merge %s: %d (%s), want %d (%s)", what, rc, hy_err_name(rc), want,
                 hy_err_name(want));
    cr_assert_eq(err.code, want, "merge %s: err.code %d", what, err.code);
    cr_assert(err.msg[0] != '\0', "merge %s: empty message", what);
    cr_assert_eq(hy_host_merge(dtype, runs, lens, k, out, NULL), want, "merge %s, err NULL",
                 what);
}

static void expect_cut_error(int dtype, const void *const runs[], const size_t lens[],
                             unsigned k, size_t rank, int want, const char *what)
{
    size_t cut[HY_HOST_MERGE_MAX_RUNS + 1];
    hy_error err = {0};
    int rc = hy_host_merge_cut(dtype, runs, lens, k, rank, cut, &err);
    cr_assert_eq(rc, want, "cut %s: %d (%s), want %d (%s)", what, rc, hy_err_name(rc), want,
                 hy_err_name(want));
    cr_assert_eq(err.code, want, "cut %s: err.code %d", what, err.code);
    cr_assert(err.msg[0] != '\0', "cut %s: empty message", what);
    cr_assert_eq(hy_host_merge_cut(dtype, runs, lens, k, rank, cut, NULL), want,
                 "cut %s, err NULL", what);
}

Test(merge, bad_arguments)
{
    int64_t a[4] = {1, 2, 3, 4}, b[4] = {0, 2, 5, 9}, out[8];
    const void *runs[HY_HOST_MERGE_MAX_RUNS + 1];
    size_t lens[HY_HOST_MERGE_MAX_RUNS + 1];
    for (unsigned i = 0; i <= HY_HOST_MERGE_MAX_RUNS; i++) {
        runs[i] = i & 1 ? b : a;
        lens[i] = i < 2 ? 4 : 0;
    }
    expect_merge_error(0, runs, lens, 2, out, HY_EDTYPE, "dtype 0");
    expect_merge_error(7, runs, lens, 2, out, HY_EDTYPE, "dtype 7");
    expect_merge_error(-1, runs, lens, 2, out, HY_EDTYPE, "dtype -1");
    expect_merge_error(HY_DT_I64, runs, lens, 0, out, HY_EINVAL, "k = 0");
    expect_merge_error(HY_DT_I64, runs, lens, HY_HOST_MERGE_MAX_RUNS + 1, out, HY_EINVAL,
                       "k = MAX + 1");
    expect_merge_error(HY_DT_I64, runs, lens, 2, NULL, HY_EINVAL, "out NULL");
    expect_merge_error(HY_DT_I64, NULL, lens, 2, out, HY_EINVAL, "runs NULL");
    expect_merge_error(HY_DT_I64, runs, NULL, 2, out, HY_EINVAL, "lens NULL");
    /* The output over a run. */
    expect_merge_error(HY_DT_I64, runs, lens, 2, a, HY_EINVAL, "out overlapping run 0");
    expect_merge_error(HY_DT_I64, runs, lens, 2, b + 3, HY_EINVAL, "out overlapping run 1");
    const void *with_null[2] = {a, NULL};
    expect_merge_error(HY_DT_I64, with_null, lens, 2, out, HY_EINVAL, "NULL run of 4");
    size_t huge[2] = {SIZE_MAX / 8, SIZE_MAX / 8};
    expect_merge_error(HY_DT_I64, runs, huge, 2, out, HY_EINVAL, "lengths that overflow");

    expect_cut_error(0, runs, lens, 2, 1, HY_EDTYPE, "dtype 0");
    expect_cut_error(9, runs, lens, 2, 1, HY_EDTYPE, "dtype 9");
    expect_cut_error(HY_DT_I64, runs, lens, 0, 0, HY_EINVAL, "k = 0");
    expect_cut_error(HY_DT_I64, runs, lens, HY_HOST_MERGE_MAX_RUNS + 1, 0, HY_EINVAL,
                     "k = MAX + 1");
    expect_cut_error(HY_DT_I64, runs, lens, 2, 9, HY_EINVAL, "rank past the total");
    expect_cut_error(HY_DT_I64, with_null, lens, 2, 1, HY_EINVAL, "NULL run of 4");
    size_t cut[3];
    cr_assert_eq(hy_host_merge_cut(HY_DT_I64, runs, lens, 2, 1, NULL, NULL), HY_EINVAL,
                 "cut NULL");

    /* The largest k is accepted, empty runs and NULL empty runs too. */
    cr_assert_eq(hy_host_merge(HY_DT_I64, runs, lens, HY_HOST_MERGE_MAX_RUNS, out, NULL), 0,
                 "k = MAX");
    static const int64_t want[8] = {0, 1, 2, 2, 3, 4, 5, 9};
    cr_assert(memcmp(out, want, sizeof want) == 0, "k = MAX merge");
    cr_assert_eq(hy_host_merge_cut(HY_DT_I64, runs, lens, 2, 3, cut, NULL), 0, "cut rank 3");
    /* 0, 1, 2 and a tie on 2: it goes to the lower-numbered run. */
    cr_assert(cut[0] == 2 && cut[1] == 1, "cut rank 3: %zu %zu, want 2 1", cut[0], cut[1]);
    const void *nulls[3] = {NULL, NULL, NULL};
    size_t zeros[3] = {0, 0, 0};
    cr_assert_eq(hy_host_merge(HY_DT_F32, nulls, zeros, 3, NULL, NULL), 0, "all empty");
    cr_assert_eq(hy_host_merge_cut(HY_DT_F32, nulls, zeros, 3, 0, cut, NULL), 0,
                 "all empty cut");
}
