/* tests/host: hy_host_sort — every dtype, size, distribution, backend, thread count and mode
 * against a qsort reference byte for byte; bad arguments, cancellation, progress and stats. */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "internal.h" /* hy_host_few_count, the few-values count alone */

#include "engine_fixture.h"

TestSuite(sort, .init = engine_up, .fini = engine_down);

/* ---- a deterministic generator: splitmix64 ---- */

static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

/* ---- the reference order, written from host/sort.c's description, not from its code ---- */

#define INT_CMP(name, T)                                                                      \
    static int name(const void *pa, const void *pb)                                           \
    {                                                                                         \
        T a, b;                                                                               \
        memcpy(&a, pa, sizeof a);                                                             \
        memcpy(&b, pb, sizeof b);                                                             \
        return (a > b) - (a < b);                                                             \
    }
INT_CMP(cmp_i32, int32_t)
INT_CMP(cmp_u32, uint32_t)
INT_CMP(cmp_i64, int64_t)
INT_CMP(cmp_u64, uint64_t)

/* Floats ascending by value; -0.0 before +0.0; every NaN after +inf; among NaNs the
 * positive-sign ones first by ascending bit pattern, then the negative-sign ones by
 * descending bit pattern. */
#define FLOAT_CMP(name, F, U)                                                                 \
    static int name(const void *pa, const void *pb)                                           \
    {                                                                                         \
        F a, b;                                                                               \
        memcpy(&a, pa, sizeof a);                                                             \
        memcpy(&b, pb, sizeof b);                                                             \
        bool na = isnan(a), nb = isnan(b);                                                    \
        if (!na && !nb) {                                                                     \
            if (a < b)                                                                        \
                return -1;                                                                    \
            if (a > b)                                                                        \
                return 1;                                                                     \
            /* Equal values differ in bits only as -0.0 and +0.0: negative first. */          \
            return (signbit(a) ? 0 : 1) - (signbit(b) ? 0 : 1);                               \
        }                                                                                     \
        if (na != nb)                                                                         \
            return na ? 1 : -1;                                                               \
        bool sa = signbit(a) != 0, sb = signbit(b) != 0;                                      \
        if (sa != sb)                                                                         \
            return sa ? 1 : -1;                                                               \
        U ua, ub;                                                                             \
        memcpy(&ua, pa, sizeof ua);                                                           \
        memcpy(&ub, pb, sizeof ub);                                                           \
        if (ua == ub)                                                                         \
            return 0;                                                                         \
        if (!sa)                                                                              \
            return ua < ub ? -1 : 1;                                                          \
        return ua > ub ? -1 : 1;                                                              \
    }
FLOAT_CMP(cmp_f32, float, uint32_t)
FLOAT_CMP(cmp_f64, double, uint64_t)

static int (*cmp_of(int dtype))(const void *, const void *)
{
    switch (dtype) {
    case HY_DT_I32: return cmp_i32;
    case HY_DT_U32: return cmp_u32;
    case HY_DT_I64: return cmp_i64;
    case HY_DT_U64: return cmp_u64;
    case HY_DT_F32: return cmp_f32;
    case HY_DT_F64: return cmp_f64;
    }
    return NULL;
}

static void reference_sort(int dtype, void *a, size_t n)
{
    if (n > 0)
        qsort(a, n, hy_dtype_size(dtype), cmp_of(dtype));
}

/* ---- test data ---- */

enum dist {
    D_RANDOM, D_SORTED, D_REVERSED, D_EQUAL, D_FEW, D_SPECIAL, D_OUTLIERS, D_CLUSTERED, D_COUNT,
    /* Floats only, in float_values_matrix: data whose top-level buckets follow the values. */
    D_UNIT = D_COUNT, D_UNIT_SPECIAL, D_NORMAL, D_NARROW, D_SUBNORMAL, D_HUGE, D_ALL,
    /* small_array_buckets only: keys at the edges of equal-width top-level buckets. */
    D_EDGES = D_ALL,
    /* misjudged_sample only: a sample that promises even buckets, and one bucket of most keys. */
    D_MISJUDGED, D_NAMED
};
static const char *const dist_names[D_NAMED] = {
    "random",   "sorted", "reversed", "all-equal", "few-unique", "specials", "outliers",
    "clustered", "unit",  "unit+specials", "normal", "narrow", "subnormal", "huge",
    "bucket-edges", "misjudged-sample"};

static void put(void *buf, size_t size, size_t i, uint64_t bits)
{
    if (size == 4) {
        uint32_t v = (uint32_t)bits;
        memcpy((char *)buf + i * 4, &v, 4);
    } else {
        memcpy((char *)buf + i * 8, &bits, 8);
    }
}

/* A random value's bits: ints over their whole range; floats finite, half of them from
 * random bit patterns (every magnitude, denormals included) and half ordinary values. */
static uint64_t random_bits(int dtype, uint64_t *s)
{
    uint64_t r = mix(s);
    switch (dtype) {
    case HY_DT_F32: {
        if (r & 1) {
            uint32_t b = (uint32_t)(r >> 32);
            if (((b >> 23) & 0xFFu) == 0xFFu)
                b ^= 1u << 23;
            return b;
        }
        float f = (float)((int64_t)((r >> 8) % 2000001u) - 1000000) / 8.0f;
        uint32_t b;
        memcpy(&b, &f, 4);
        return b;
    }
    case HY_DT_F64: {
        if (r & 1) {
            uint64_t b = mix(s);
            if (((b >> 52) & 0x7FFu) == 0x7FFu)
                b ^= (uint64_t)1 << 52;
            return b;
        }
        double d = (double)((int64_t)((r >> 8) % 20000001u) - 10000000) / 64.0;
        uint64_t b;
        memcpy(&b, &d, 8);
        return b;
    }
    default: return r;
    }
}

static const uint32_t special_f32[] = {
    0x7FC00000u, 0x7F800001u, 0x7FFFFFFFu, 0x7FA00123u, /* +NaN: quiet, signalling, payloads */
    0xFFC00000u, 0xFF800001u, 0xFFFFFFFFu, 0xFFA00123u, /* -NaN */
    0x7F800000u, 0xFF800000u,                           /* +inf, -inf */
    0x00000000u, 0x80000000u,                           /* +0.0, -0.0 */
    0x00000001u, 0x007FFFFFu, 0x00012345u,              /* positive denormals */
    0x80000001u, 0x807FFFFFu, 0x80012345u,              /* negative denormals */
    0x00800000u, 0x80800000u, 0x7F7FFFFFu, 0xFF7FFFFFu, /* +-FLT_MIN, +-FLT_MAX */
    0x3F800000u, 0xBF800000u,                           /* 1.0, -1.0 */
};
static const uint64_t special_f64[] = {
    0x7FF8000000000000u, 0x7FF0000000000001u, 0x7FFFFFFFFFFFFFFFu, 0x7FF4000000000123u,
    0xFFF8000000000000u, 0xFFF0000000000001u, 0xFFFFFFFFFFFFFFFFu, 0xFFF4000000000123u,
    0x7FF0000000000000u, 0xFFF0000000000000u,
    0x0000000000000000u, 0x8000000000000000u,
    0x0000000000000001u, 0x000FFFFFFFFFFFFFu, 0x0000000000012345u,
    0x8000000000000001u, 0x800FFFFFFFFFFFFFu, 0x8000000000012345u,
    0x0010000000000000u, 0x8010000000000000u, 0x7FEFFFFFFFFFFFFFu, 0xFFEFFFFFFFFFFFFFu,
    0x3FF0000000000000u, 0xBFF0000000000000u,
};
static const uint32_t special_i32[] = {0x80000000u, 0x7FFFFFFFu, 0x80000001u, 0x7FFFFFFEu,
                                       0u,          1u,          0xFFFFFFFFu};
static const uint32_t special_u32[] = {0u, 0xFFFFFFFFu, 1u, 0xFFFFFFFEu, 0x7FFFFFFFu,
                                       0x80000000u};
static const uint64_t special_i64[] = {0x8000000000000000u, 0x7FFFFFFFFFFFFFFFu,
                                       0x8000000000000001u, 0x7FFFFFFFFFFFFFFEu,
                                       0u,                  1u,
                                       0xFFFFFFFFFFFFFFFFu, 0xFFFFFFFF80000000u,
                                       0x7FFFFFFFu};
static const uint64_t special_u64[] = {0u, 0xFFFFFFFFFFFFFFFFu, 1u, 0xFFFFFFFFFFFFFFFEu,
                                       0x7FFFFFFFFFFFFFFFu, 0x8000000000000000u};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* A special value's bits; for floats sometimes a NaN with a random payload and sign. */
static uint64_t special_bits(int dtype, uint64_t *s)
{
    uint64_t r = mix(s);
    switch (dtype) {
    case HY_DT_I32: return special_i32[r % COUNT(special_i32)];
    case HY_DT_U32: return special_u32[r % COUNT(special_u32)];
    case HY_DT_I64: return special_i64[r % COUNT(special_i64)];
    case HY_DT_U64: return special_u64[r % COUNT(special_u64)];
    case HY_DT_F32:
        if ((r & 7) == 0) {
            uint32_t payload = (uint32_t)(r >> 32) & 0x007FFFFFu;
            return 0x7F800000u | (payload ? payload : 1u) | ((uint32_t)(r >> 8) & 0x80000000u);
        }
        return special_f32[(r >> 3) % COUNT(special_f32)];
    case HY_DT_F64:
        if ((r & 7) == 0) {
            uint64_t payload = mix(s) & 0x000FFFFFFFFFFFFFu;
            return 0x7FF0000000000000u | (payload ? payload : 1u) | (r & 0x8000000000000000u);
        }
        return special_f64[(r >> 3) % COUNT(special_f64)];
    }
    return 0;
}

/* Fills `in` with the distribution and `ref` with its reference order. `sorted_ref` is the
 * reference of the random distribution for the same (dtype, n): sorted and reversed inputs
 * are made from it, so they share it as reference without another qsort. */
static void make_case(int dtype, size_t n, int dist, uint64_t seed, void *in, void *ref,
                      const void *sorted_ref)
{
    size_t size = hy_dtype_size(dtype);
    uint64_t s = seed;
    switch (dist) {
    case D_RANDOM:
        for (size_t i = 0; i < n; i++)
            put(in, size, i, random_bits(dtype, &s));
        break;
    case D_SORTED:
        memcpy(in, sorted_ref, n * size);
        memcpy(ref, sorted_ref, n * size);
        return;
    case D_REVERSED:
        for (size_t i = 0; i < n; i++)
            memcpy((char *)in + i * size, (const char *)sorted_ref + (n - 1 - i) * size, size);
        memcpy(ref, sorted_ref, n * size);
        return;
    case D_EQUAL: {
        uint64_t v = random_bits(dtype, &s);
        for (size_t i = 0; i < n; i++)
            put(in, size, i, v);
        break;
    }
    case D_FEW: {
        uint64_t vals[5];
        for (size_t k = 0; k < 5; k++)
            vals[k] = random_bits(dtype, &s);
        for (size_t i = 0; i < n; i++)
            put(in, size, i, vals[mix(&s) % 5]);
        break;
    }
    case D_SPECIAL:
        /* A quarter special values (NaNs, infinities, zeros, denormals, extremes). */
        for (size_t i = 0; i < n; i++)
            put(in, size, i, (mix(&s) & 3) == 0 ? special_bits(dtype, &s)
                                                  : random_bits(dtype, &s));
        break;
    case D_CLUSTERED:
        /* Data as people have it: floats uniform in [0, 1) with some exact zeros and a
         * bell-shaped cluster around -1 (most keys in a few exponents); ints bell-shaped
         * around a random centre. A sort that spreads keys by equal ranges of their bits
         * puts most of these in a few buckets. */
        for (size_t i = 0; i < n; i++) {
            uint64_t r = mix(&s);
            double bell = ((double)(r & 0xFFFF) + (double)((r >> 16) & 0xFFFF) +
                           (double)((r >> 32) & 0xFFFF) - 98302.5) / 32768.0;
            double unit = (double)(mix(&s) >> 11) * 0x1p-53;
            double x = (r >> 60) == 0 ? 0.0 : (r >> 63) ? unit : -1.0 + bell;
            uint64_t bits;
            if (dtype == HY_DT_F64) {
                memcpy(&bits, &x, 8);
            } else if (dtype == HY_DT_F32) {
                float f = (float)x;
                uint32_t b32;
                memcpy(&b32, &f, 4);
                bits = b32;
            } else {
                bits = (uint64_t)(int64_t)(bell * 1e6) + (seed & 0xFFFF);
            }
            put(in, size, i, bits);
        }
        break;
    case D_OUTLIERS: {
        /* One value almost everywhere, and rare others anywhere in the range: a sort that
         * plans from a sample of the keys will mostly miss them. */
        uint64_t v = random_bits(dtype, &s);
        for (size_t i = 0; i < n; i++)
            put(in, size, i, mix(&s) % 997 == 0 ? random_bits(dtype, &s) : v);
        break;
    }
    }
    memcpy(ref, in, n * size);
    reference_sort(dtype, ref, n);
}

/* ---- running one case ---- */

struct cfg {
    int backend;
    unsigned threads;
    int mode;
    int nogil;
};

static const struct cfg split_cfgs[] = {
    {HY_BACKEND_SERIAL, 1, HY_MODE_SPLIT, 0},
    {HY_BACKEND_NATIVE, 1, HY_MODE_SPLIT, 0},
    {HY_BACKEND_NATIVE, 2, HY_MODE_SPLIT, 0},
    {HY_BACKEND_NATIVE, 3, HY_MODE_SPLIT, 0},
    {HY_BACKEND_NATIVE, 8, HY_MODE_SPLIT, 0},
    {HY_BACKEND_LOCKED, 1, HY_MODE_SPLIT, 0},
    {HY_BACKEND_LOCKED, 2, HY_MODE_SPLIT, 0},
    {HY_BACKEND_LOCKED, 3, HY_MODE_SPLIT, 0},
    {HY_BACKEND_LOCKED, 8, HY_MODE_SPLIT, 0},
    {HY_BACKEND_LOCKED, 3, HY_MODE_SPLIT, HY_NOGIL_HOLD},
};
/* Replicate multiplies the work by T, so the largest size runs only a subset. */
static const struct cfg replicate_cfgs[] = {
    {HY_BACKEND_NATIVE, 2, HY_MODE_REPLICATE, 0},
    {HY_BACKEND_LOCKED, 3, HY_MODE_REPLICATE, 0},
    {HY_BACKEND_NATIVE, 8, HY_MODE_REPLICATE, 0},
    {HY_BACKEND_LOCKED, 2, HY_MODE_REPLICATE, HY_NOGIL_HOLD},
    {HY_BACKEND_SERIAL, 1, HY_MODE_REPLICATE, 0},
};
#define LARGE_N 10000000u
#define LARGE_REPLICATE_CFGS 1

static const char *nogil_name(int nogil)
{
    return nogil == HY_NOGIL_HOLD ? "hold" : nogil == HY_NOGIL_RELEASE ? "release" : "default";
}

#define CASE_FMT "dtype=%s n=%zu dist=%s backend=%s threads=%u mode=%s nogil=%s"
#define CASE_ARGS(dtype, n, dist, c)                                                          \
    hy_dtype_name(dtype), (n), dist_names[dist], hy_backend_name((c)->backend), (c)->threads, \
        hy_mode_name((c)->mode), nogil_name((c)->nogil)

static void check_stats(const hy_run_stats *st, const struct cfg *c, int dtype, size_t n,
                        int dist)
{
    cr_assert_eq(st->threads, c->threads, "stats.threads %u, " CASE_FMT, st->threads,
                 CASE_ARGS(dtype, n, dist, c));
    unsigned copies = c->mode == HY_MODE_REPLICATE ? c->threads : 1;
    cr_assert_eq(st->copies, copies, "stats.copies %u, " CASE_FMT, st->copies,
                 CASE_ARGS(dtype, n, dist, c));
    if (c->backend == HY_BACKEND_LOCKED) {
        cr_assert_eq(st->lock_max_holders, 1, "lock_max_holders %u, " CASE_FMT,
                     st->lock_max_holders, CASE_ARGS(dtype, n, dist, c));
        cr_assert_geq(st->lock_acquisitions, c->threads,
                      "lock_acquisitions %" PRIu64 ", " CASE_FMT, st->lock_acquisitions,
                      CASE_ARGS(dtype, n, dist, c));
        /* sort releases the lock unless told to hold it (numpy.sort). */
        cr_assert_eq(st->nogil, c->nogil != HY_NOGIL_HOLD, "stats.nogil %d, " CASE_FMT,
                     st->nogil, CASE_ARGS(dtype, n, dist, c));
    } else {
        cr_assert(st->lock_acquisitions == 0 && st->lock_handoffs == 0 &&
                      st->lock_drop_requests == 0 && st->lock_wait_ns == 0 &&
                      st->lock_hold_ns == 0 && st->lock_max_holders == 0 && !st->nogil,
                  "lock stats not zero (acq %" PRIu64 " handoffs %" PRIu64 " drops %" PRIu64
                  " wait %" PRIu64 " hold %" PRIu64 " max %u nogil %d), " CASE_FMT,
                  st->lock_acquisitions, st->lock_handoffs, st->lock_drop_requests,
                  st->lock_wait_ns, st->lock_hold_ns, st->lock_max_holders, st->nogil,
                  CASE_ARGS(dtype, n, dist, c));
    }
}

static uint64_t get_bits(const void *buf, size_t size, size_t i)
{
    if (size == 4) {
        uint32_t v;
        memcpy(&v, (const char *)buf + i * 4, 4);
        return v;
    }
    uint64_t v;
    memcpy(&v, (const char *)buf + i * 8, 8);
    return v;
}

static void assert_same_bytes(const void *got, const void *want, int dtype, size_t n, int dist,
                              const struct cfg *c, const char *what)
{
    size_t size = hy_dtype_size(dtype);
    if (n == 0 || memcmp(got, want, n * size) == 0)
        return;
    size_t i = 0;
    while (get_bits(got, size, i) == get_bits(want, size, i))
        i++;
    cr_assert_fail("%s: first difference at [%zu]: got bits 0x%" PRIx64 ", want 0x%" PRIx64
                   ", " CASE_FMT,
                   what, i, get_bits(got, size, i), get_bits(want, size, i),
                   CASE_ARGS(dtype, n, dist, c));
}

static void run_case(int dtype, size_t n, int dist, const void *in, const void *ref, void *work,
                     const struct cfg *c)
{
    size_t size = hy_dtype_size(dtype);
    if (n > 0)
        memcpy(work, in, n * size);
    hy_run_opts o = {.backend = c->backend, .threads = c->threads, .mode = c->mode,
                     .nogil = c->nogil};
    hy_sort_result r;
    hy_error err = {0};
    int rc = hy_host_sort(eng, dtype, work, n, &o, &r, &err);
    cr_assert_eq(rc, 0, "hy_host_sort returned %d (%s: %s), " CASE_FMT, rc, hy_err_name(rc),
                 err.msg, CASE_ARGS(dtype, n, dist, c));
    cr_assert_eq(r.n, n, "result n %zu, " CASE_FMT, r.n, CASE_ARGS(dtype, n, dist, c));
    check_stats(&r.stats, c, dtype, n, dist);
    assert_same_bytes(work, ref, dtype, n, dist, c, "sorted output differs from the reference");
}

static bool small_only(void)
{
    const char *e = getenv("HYBRIDD_TEST_SMALL");
    return e && strcmp(e, "1") == 0;
}

static void sort_matrix(int dtype, size_t n)
{
    if (n >= LARGE_N && small_only())
        cr_skip_test("HYBRIDD_TEST_SMALL=1: skipping n = %zu", n);
    size_t size = hy_dtype_size(dtype);
    size_t bytes = n * size + 1; /* + 1: never a zero-byte malloc */
    char *in = calloc(1, bytes), *ref = calloc(1, bytes), *work = calloc(1, bytes),
         *sorted = calloc(1, bytes);
    cr_assert(in && ref && work && sorted, "out of memory for n = %zu", n);
    size_t nrep = n >= LARGE_N ? LARGE_REPLICATE_CFGS : COUNT(replicate_cfgs);
    for (int dist = 0; dist < D_COUNT; dist++) {
        uint64_t seed = ((uint64_t)dtype << 56) ^ ((uint64_t)dist << 48) ^ (uint64_t)n;
        make_case(dtype, n, dist, seed, in, ref, sorted);
        if (dist == D_RANDOM && n > 0)
            memcpy(sorted, ref, n * size);
        for (size_t k = 0; k < COUNT(split_cfgs); k++)
            run_case(dtype, n, dist, in, ref, work, &split_cfgs[k]);
        for (size_t k = 0; k < nrep; k++)
            run_case(dtype, n, dist, in, ref, work, &replicate_cfgs[k]);
    }
    free(in);
    free(ref);
    free(work);
    free(sorted);
}

#define SORT_SIZES(name, dtype)                                                               \
    Test(sort, name##_n0) { sort_matrix(dtype, 0); }                                          \
    Test(sort, name##_n1) { sort_matrix(dtype, 1); }                                          \
    Test(sort, name##_n2) { sort_matrix(dtype, 2); }                                          \
    Test(sort, name##_n3) { sort_matrix(dtype, 3); }                                          \
    Test(sort, name##_n1009) { sort_matrix(dtype, 1009); }                                    \
    Test(sort, name##_n2p20p3) { sort_matrix(dtype, ((size_t)1 << 20) + 3); }                 \
    Test(sort, name##_n1e7) { sort_matrix(dtype, LARGE_N); }

SORT_SIZES(i32, HY_DT_I32)
SORT_SIZES(u32, HY_DT_U32)
SORT_SIZES(i64, HY_DT_I64)
SORT_SIZES(u64, HY_DT_U64)
SORT_SIZES(f32, HY_DT_F32)
SORT_SIZES(f64, HY_DT_F64)

/* ---- floats bucketed by value ----
 * Floats whose finite values span a usable range are spread over the top-level buckets by
 * value, not by key bits. These cases hold that function to numpy's order: values the
 * sample misses (specials, outliers far outside its range), NaNs of both signs, -0.0 and
 * +0.0, ranges too small to scale (subnormal) or whose differences overflow. */

/* `big` is near the dtype's largest finite value. */
static double value_of(int dist, uint64_t *s, size_t i, double big)
{
    double u = (double)(mix(s) >> 11) * 0x1p-53;
    switch (dist) {
    case D_NORMAL: {
        double v = (double)(mix(s) >> 11) * 0x1p-53;
        return sqrt(-2.0 * log(u > 0 ? u : 0x1p-53)) * cos(6.283185307179586 * v);
    }
    case D_NARROW: return 1e6 + u * 1e-3;             /* many equal exponents, tiny range */
    case D_SUBNORMAL: return u * (big > 1e300 ? 0x1p-1060 : 0x1p-140); /* subnormal range */
    case D_HUGE: return (u - 0.5) * 1.9 * big * ((i & 1) ? 1 : 0x1p-100); /* x - lo overflows */
    default: return (i % 4099 == 7) ? 0.0 : u;        /* unit: [0, 1) and some +0.0 */
    }
}

static uint64_t bits_of(int dtype, double x)
{
    uint64_t bits;
    if (dtype == HY_DT_F32) {
        float f = (float)x;
        uint32_t b32;
        memcpy(&b32, &f, 4);
        bits = b32;
    } else {
        memcpy(&bits, &x, 8);
    }
    return bits;
}

static double double_of(int dtype, uint64_t bits)
{
    if (dtype == HY_DT_F32) {
        uint32_t b32 = (uint32_t)bits;
        float f;
        memcpy(&f, &b32, 4);
        return f;
    }
    double d;
    memcpy(&d, &bits, 8);
    return d;
}

static void make_value_case(int dtype, size_t n, int dist, uint64_t seed, void *in, void *ref)
{
    size_t size = hy_dtype_size(dtype);
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        double big = dtype == HY_DT_F32 ? 3.4e38 : 1.7e308;
        uint64_t bits = bits_of(dtype, value_of(dist, &s, i, big));
        /* About one in 500 a special (NaN, inf, -0.0, denormal) or an outlier up to 1e30,
         * which an evenly spaced sample mostly misses. Not +-MAX: with those in the sample
         * the range overflows and the values are not followed at all. */
        if (dist == D_UNIT_SPECIAL && mix(&s) % 500 == 0) {
            bits = special_bits(dtype, &s);
            double x = double_of(dtype, bits);
            if (isfinite(x) && fabs(x) > 2)
                bits = bits_of(dtype, copysign(1e30 * (double)(mix(&s) >> 11) * 0x1p-53, x));
        }
        put(in, size, i, bits);
    }
    memcpy(ref, in, n * size);
    reference_sort(dtype, ref, n);
}

static const struct cfg value_cfgs[] = {
    {HY_BACKEND_SERIAL, 1, HY_MODE_SPLIT, 0},
    {HY_BACKEND_NATIVE, 2, HY_MODE_SPLIT, 0},
    {HY_BACKEND_NATIVE, 3, HY_MODE_SPLIT, 0},
    {HY_BACKEND_NATIVE, 2, HY_MODE_REPLICATE, 0},
};

static void float_values_matrix(int dtype)
{
    /* Around the sample size (4096), an LSD bucket's limit (2^17 keys), and large enough
     * that the top level's buckets each go to the LSD passes. */
    const size_t sizes[] = {63, 64, 1009, 4095, 4097, ((size_t)1 << 17) - 1,
                            ((size_t)1 << 17) + 1, ((size_t)1 << 20) + 3, 3000017};
    size_t size = hy_dtype_size(dtype), most = sizes[COUNT(sizes) - 1];
    char *in = malloc(most * size), *ref = malloc(most * size), *work = malloc(most * size);
    cr_assert(in && ref && work, "out of memory for n = %zu", most);
    for (size_t k = 0; k < COUNT(sizes); k++)
        for (int dist = D_UNIT; dist < D_ALL; dist++) {
            uint64_t seed = ((uint64_t)dtype << 56) ^ ((uint64_t)dist << 48) ^ sizes[k];
            make_value_case(dtype, sizes[k], dist, seed, in, ref);
            for (size_t c = 0; c < COUNT(value_cfgs); c++)
                run_case(dtype, sizes[k], dist, in, ref, work, &value_cfgs[c]);
        }
    free(in);
    free(ref);
    free(work);
}

Test(sort, float_values_f32) { float_values_matrix(HY_DT_F32); }
Test(sort, float_values_f64) { float_values_matrix(HY_DT_F64); }

/* Buckets already in order (either way) skip the radix passes. Inputs that are almost so
 * must not: sorted with rare swaps, sorted but for a last small key, and non-increasing
 * with long runs of equal keys (which reverse into place). */
static void presorted_matrix(int dtype)
{
    const size_t n = 1000003;
    size_t size = hy_dtype_size(dtype);
    char *in = malloc(n * size), *ref = malloc(n * size), *work = malloc(n * size);
    cr_assert(in && ref && work, "out of memory");
    const struct cfg cfgs[] = {{HY_BACKEND_SERIAL, 1, HY_MODE_SPLIT, 0},
                               {HY_BACKEND_NATIVE, 2, HY_MODE_SPLIT, 0}};
    for (int shape = 0; shape < 3; shape++) {
        uint64_t seed = (uint64_t)dtype * 77 + (uint64_t)shape;
        make_case(dtype, n, D_RANDOM, seed, in, ref, NULL); /* ref: sorted random keys */
        if (shape == 0) { /* sorted, one adjacent swap every ~40000 keys */
            memcpy(in, ref, n * size);
            for (size_t i = 1; i < n; i += 40009) {
                char t[8];
                memcpy(t, in + i * size, size);
                memcpy(in + i * size, in + (i - 1) * size, size);
                memcpy(in + (i - 1) * size, t, size);
            }
        } else if (shape == 1) { /* sorted, then the smallest key moved to the end */
            memcpy(in, ref + size, (n - 1) * size);
            memcpy(in + (n - 1) * size, ref, size);
        } else { /* non-increasing, each key repeated 7 times */
            for (size_t i = 0; i < n; i++)
                memcpy(in + i * size, ref + (n - 1 - i / 7 * 7) * size, size);
        }
        memcpy(ref, in, n * size);
        reference_sort(dtype, ref, n);
        for (size_t c = 0; c < COUNT(cfgs); c++)
            run_case(dtype, n, shape == 2 ? D_REVERSED : D_SORTED, in, ref, work, &cfgs[c]);
    }
    free(in);
    free(ref);
    free(work);
}

Test(sort, presorted_i32) { presorted_matrix(HY_DT_I32); }
Test(sort, presorted_u64) { presorted_matrix(HY_DT_U64); }
Test(sort, presorted_f32) { presorted_matrix(HY_DT_F32); }
Test(sort, presorted_f64) { presorted_matrix(HY_DT_F64); }

/* Past 2^26 keys the top level uses more than 512 buckets, so that each stays within an LSD
 * bucket's limit. A permutation of 0..n-1 (i -> (a i + b) mod n, a prime to n) has a known
 * sorted order, so no reference sort of 2^26 keys is needed. */
Test(sort, many_top_buckets_u32, .timeout = 120)
{
    if (small_only())
        cr_skip_test("HYBRIDD_TEST_SMALL=1: skipping n = 2^26 + 2^17 + 1");
    const size_t n = ((size_t)1 << 26) + ((size_t)1 << 17) + 1;
    uint32_t *a = malloc(n * sizeof *a);
    cr_assert(a, "out of memory for n = %zu", n);
    const uint64_t mul = 2654435761u; /* prime, and larger than n: prime to it */
    const struct cfg cfgs[] = {{HY_BACKEND_SERIAL, 1, HY_MODE_SPLIT, 0},
                               {HY_BACKEND_NATIVE, 2, HY_MODE_SPLIT, 0}};
    for (size_t c = 0; c < COUNT(cfgs); c++) {
        for (size_t i = 0; i < n; i++)
            a[i] = (uint32_t)((mul * i + 12345) % n);
        hy_run_opts o = {.backend = cfgs[c].backend, .threads = cfgs[c].threads,
                         .mode = cfgs[c].mode};
        hy_sort_result r;
        hy_error err = {0};
        int rc = hy_host_sort(eng, HY_DT_U32, a, n, &o, &r, &err);
        cr_assert_eq(rc, 0, "hy_host_sort returned %d (%s), threads %u", rc, err.msg,
                     cfgs[c].threads);
        for (size_t i = 0; i < n; i++)
            if (a[i] != (uint32_t)i)
                cr_assert_fail("a[%zu] = %" PRIu32 ", want %zu, threads %u", i, a[i], i,
                               cfgs[c].threads);
    }
    free(a);
}

/* Arrays under 2^19 keys get fewer top-level buckets (2^2 up to 2^9, by size). Sizes at
 * and next to each change of count, with random keys and with keys packed at the edges of
 * equal-width buckets: a few high patterns, each with the low bits just below, at and just
 * above a multiple of a power of two (so that a bucket function off by one at an edge, or a
 * bucket's radix passes that miss a bit, misorder them). */
static void make_edges(int dtype, size_t n, uint64_t seed, void *in, void *ref)
{
    size_t size = hy_dtype_size(dtype);
    unsigned bits = 8 * (unsigned)size;
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        uint64_t r = mix(&s);
        unsigned at = 2 + (unsigned)(r % 10); /* edge spacing 2^(bits - 12) .. 2^(bits - 3) */
        uint64_t high = ((r >> 8) % 7 + 1) << (bits - at);
        uint64_t v = high + ((r >> 16) % 5) - 2; /* edge - 2 .. edge + 2 */
        put(in, size, i, bits == 32 ? (uint32_t)v : v);
    }
    memcpy(ref, in, n * size);
    reference_sort(dtype, ref, n);
}

Test(sort, small_array_buckets, .timeout = 120)
{
    cr_assert_eq(setenv("HYBRIDD_TEST_SORT_NO_QS", "1", 1), 0); /* the radix paths */
    const size_t sizes[] = {4095, 4096, 4097, 8191, 8193, 16385, 65541, 262143, 524287, 524289};
    const struct cfg cfgs[] = {{HY_BACKEND_SERIAL, 1, HY_MODE_SPLIT, 0},
                               {HY_BACKEND_NATIVE, 3, HY_MODE_SPLIT, 0}};
    const int dtypes[] = {HY_DT_I32, HY_DT_U32, HY_DT_I64, HY_DT_U64, HY_DT_F32, HY_DT_F64};
    size_t most = sizes[COUNT(sizes) - 1] * 8;
    char *in = malloc(most), *ref = malloc(most), *work = malloc(most);
    cr_assert(in && ref && work, "out of memory");
    for (size_t d = 0; d < COUNT(dtypes); d++)
        for (size_t k = 0; k < COUNT(sizes); k++)
            for (int dist = 0; dist < 2; dist++) {
                uint64_t seed = ((uint64_t)dtypes[d] << 40) ^ sizes[k];
                if (dist == 0)
                    make_case(dtypes[d], sizes[k], D_RANDOM, seed, in, ref, NULL);
                else
                    make_edges(dtypes[d], sizes[k], seed, in, ref);
                for (size_t c = 0; c < COUNT(cfgs); c++)
                    run_case(dtypes[d], sizes[k], dist ? D_EDGES : D_RANDOM, in, ref, work,
                             &cfgs[c]);
            }
    free(in);
    free(ref);
    free(work);
}

/* From 2^20 keys (2^17 where the scatter is staged) the sort reads its input once,
 * appending each bucket's keys to chunks (sort_radix.inc's one_read); a bucket that comes
 * out larger than a thread's private buffer makes it start over with a counting read and a scattering read. Keys at the sampled
 * positions (every (n / 4096 + 1)-th, as sort_radix.inc's parallel draws them) spread over
 * the whole range and all the others lie in a narrow one, so the sample promises even
 * buckets and one bucket gets nearly every key. */
static void make_misjudged_step(int dtype, size_t n, size_t step, void *in, void *ref)
{
    size_t size = hy_dtype_size(dtype);
    uint64_t s = 99;
    for (size_t i = 0; i < n; i++) {
        uint64_t r = mix(&s);
        uint64_t v = i % step == 0 ? r : r % 5000000 + 7;
        put(in, size, i, size == 4 ? (uint32_t)v : v);
    }
    memcpy(ref, in, n * size);
    reference_sort(dtype, ref, n);
}

static void make_misjudged(int dtype, size_t n, void *in, void *ref)
{
    make_misjudged_step(dtype, n, n / 4096 + 1, in, ref);
}

Test(sort, misjudged_sample, .timeout = 120)
{
    cr_assert_eq(setenv("HYBRIDD_TEST_SORT_NO_QS", "1", 1), 0); /* the radix paths */
    const size_t n = ((size_t)1 << 21) + 5;
    const struct cfg cfgs[] = {{HY_BACKEND_SERIAL, 1, HY_MODE_SPLIT, 0},
                               {HY_BACKEND_NATIVE, 2, HY_MODE_SPLIT, 0},
                               {HY_BACKEND_NATIVE, 2, HY_MODE_REPLICATE, 0}};
    const int dtypes[] = {HY_DT_U32, HY_DT_I64};
    char *in = malloc(n * 8), *ref = malloc(n * 8), *work = malloc(n * 8);
    cr_assert(in && ref && work, "out of memory");
    for (size_t d = 0; d < COUNT(dtypes); d++) {
        make_misjudged(dtypes[d], n, in, ref);
        for (size_t c = 0; c < COUNT(cfgs); c++)
            run_case(dtypes[d], n, D_MISJUDGED, in, ref, work, &cfgs[c]);
    }
    free(in);
    free(ref);
    free(work);
}

/* Arrays up to 2^15 keys take the small path (sort_radix.inc's sort_small): one thread,
 * about n/2 buckets from a sample of n/8 keys (64 to 256), one insertion sort, and the radix
 * sort per bucket when the sample misjudged the data. Sizes next to each of its thresholds
 * (4 buckets below 16 keys, the sample's 64 and 256, 4096 judged buckets from 8192 keys and
 * widened ones from 16384, the path's end), every dtype and distribution (NaNs of both
 * signs, -0.0 and +0.0, few values, all equal), on one thread, on three (two of which have
 * nothing to do) and replicated. */
static void small_path_case(int dtype, size_t n, char *in, char *ref, char *work, char *sorted)
{
    const struct cfg cfgs[] = {{HY_BACKEND_SERIAL, 1, HY_MODE_SPLIT, 0},
                               {HY_BACKEND_NATIVE, 3, HY_MODE_SPLIT, 0},
                               {HY_BACKEND_NATIVE, 2, HY_MODE_REPLICATE, 0}};
    for (int dist = 0; dist <= D_COUNT; dist++) {
        uint64_t seed = ((uint64_t)dtype << 48) ^ ((uint64_t)dist << 40) ^ n;
        if (dist == D_COUNT) { /* sampled keys spread, the others in one bucket */
            size_t want = n / 8 < 64 ? 64 : n / 8 > 256 ? 256 : n / 8;
            make_misjudged_step(dtype, n, n / want ? n / want : 1, in, ref);
        }
        else
            make_case(dtype, n, dist, seed, in, ref, sorted);
        for (size_t c = 0; c < COUNT(cfgs); c++)
            run_case(dtype, n, dist == D_COUNT ? D_MISJUDGED : dist, in, ref, work, &cfgs[c]);
        if (dist == D_RANDOM) /* sorted and reversed are made from it */
            memcpy(sorted, ref, n * hy_dtype_size(dtype));
    }
}

Test(sort, small_path_sizes, .timeout = 120)
{
    const size_t sizes[] = {4,     5,     15,    16,    17,    511,   512,   513,
                            2047,  2048,  2049,  8191,  8192,  8193,  16383, 16384,
                            16385, 32767, 32768, 32769, 32770};
    const int dtypes[] = {HY_DT_I32, HY_DT_U32, HY_DT_I64, HY_DT_U64, HY_DT_F32, HY_DT_F64};
    size_t most = sizes[COUNT(sizes) - 1] * 8;
    char *in = malloc(most), *ref = malloc(most), *work = malloc(most),
         *sorted = malloc(most);
    cr_assert(in && ref && work && sorted, "out of memory");
    for (size_t d = 0; d < COUNT(dtypes); d++)
        for (size_t k = 0; k < COUNT(sizes); k++)
            small_path_case(dtypes[d], sizes[k], in, ref, work, sorted);
    free(sorted);
    free(in);
    free(ref);
    free(work);
}

/* Where the CPU has AVX2 (32-bit keys) or AVX-512 (64-bit ones), the small path runs up to
 * 2^17 keys and finishes with sorted windows of 8 keys (sort_radix.inc's small_window)
 * from n = 32, in four segments cut at bucket boundaries, or two where a quarter would be
 * under 8 keys. Sizes next to those thresholds and past 2^15 buckets, every dtype, with
 * every distribution of small_path_case; elsewhere the same sizes take the insertion sort
 * or the large path. */
/* small_path_case over every size and dtype given, with buffers for the largest size. */
static void small_path_sizes_dtypes(const size_t *sizes, size_t nsizes, const int *dtypes,
                                    size_t ndtypes)
{
    size_t most = sizes[nsizes - 1] * 8;
    char *in = malloc(most), *ref = malloc(most), *work = malloc(most),
         *sorted = malloc(most);
    cr_assert(in && ref && work && sorted, "out of memory");
    for (size_t d = 0; d < ndtypes; d++)
        for (size_t k = 0; k < nsizes; k++)
            small_path_case(dtypes[d], sizes[k], in, ref, work, sorted);
    free(sorted);
    free(in);
    free(ref);
    free(work);
}

/* Where the CPU has AVX-512 but not all that sort_qs.inc's quicksort needs (sort.c's
 * qs_cpu; the quicksort is left out here, HYBRIDD_TEST_SORT_NO_QS), arrays of up to 8 KiB
 * of keys may take host/sort_net.inc's bitonic network: one register's keys or fewer sorted
 * in that register, more padded to a power of two of at least 8 registers, groups of 8
 * registers sorted in registers, longer merges in memory. Sizes next to every power of two
 * it pads to and next to the 3/4 marks where sort.c's net_takes switches between it and the
 * radix small path, every dtype and distribution; then the same sizes with the network left
 * out (HYBRIDD_TEST_SORT_NO_NET), so that the small path's other ways keep being tested on
 * such a CPU. Elsewhere both run the small path twice. */
static const size_t net_sizes[] = {2,   3,   7,   8,   9,    15,   16,   17,   63,   64,
                                   65,  127, 128, 129, 255,  256,  257,  383,  384,  385,
                                   511, 512, 513, 767, 768,  769,  1000, 1023, 1024, 1025,
                                   1535, 1536, 1537, 2047, 2048, 2049};
static const int all_dtypes[] = {HY_DT_I32, HY_DT_U32, HY_DT_I64, HY_DT_U64, HY_DT_F32,
                                 HY_DT_F64};

Test(sort, network_sizes, .timeout = 120)
{
    /* sort_qs.inc's quicksort, which takes these sizes on such a CPU, left out */
    cr_assert_eq(setenv("HYBRIDD_TEST_SORT_NO_QS", "1", 1), 0);
    small_path_sizes_dtypes(net_sizes, COUNT(net_sizes), all_dtypes, COUNT(all_dtypes));
}

Test(sort, network_sizes_with_the_network_left_out, .timeout = 120)
{
    cr_assert_eq(setenv("HYBRIDD_TEST_SORT_NO_NET", "1", 1), 0);
    small_path_sizes_dtypes(net_sizes, COUNT(net_sizes), all_dtypes, COUNT(all_dtypes));
}

Test(sort, small_window_sizes, .timeout = 240)
{
    cr_assert_eq(setenv("HYBRIDD_TEST_SORT_NO_QS", "1", 1), 0); /* the radix paths */
    const size_t sizes[] = {31, 32, 33, 40, 63, 64, 65, 65535, 65536, 65537, 100000, 131071,
                            131072, 131073};
    const int dtypes[] = {HY_DT_I32, HY_DT_U32, HY_DT_F32, HY_DT_I64, HY_DT_U64, HY_DT_F64};
    small_path_sizes_dtypes(sizes, COUNT(sizes), dtypes, COUNT(dtypes));
}

/* The same sizes on the path of a CPU without AVX2 or AVX-512 (host/sort.c's window_ok
 * honours HYBRIDD_TEST_SORT_PORTABLE; each Criterion test runs in a process of its own). */
Test(sort, small_window_sizes_on_the_portable_path, .timeout = 240)
{
    cr_assert_eq(setenv("HYBRIDD_TEST_SORT_PORTABLE", "1", 1), 0);
    const size_t sizes[] = {31, 32, 33, 65535, 65536, 65537, 131073};
    const int dtypes[] = {HY_DT_I32, HY_DT_F32, HY_DT_U64, HY_DT_F64};
    small_path_sizes_dtypes(sizes, COUNT(sizes), dtypes, COUNT(dtypes));
}

/* The top level's other plan, keys stored one by one into fewer buckets (host/sort.c's
 * staged_scatter, which a CPU of AMD's takes and test_portable forces), through both of
 * its scatters: two reads (under 2^20 keys) and the chunked one. */
Test(sort, large_sizes_on_the_portable_path, .timeout = 240)
{
    cr_assert_eq(setenv("HYBRIDD_TEST_SORT_PORTABLE", "1", 1), 0);
    const size_t sizes[] = {300007, ((size_t)1 << 20) + 3, ((size_t)1 << 21) + 5};
    const int dtypes[] = {HY_DT_U32, HY_DT_F32, HY_DT_I64, HY_DT_F64};
    size_t most = sizes[COUNT(sizes) - 1] * 8;
    char *in = malloc(most), *ref = malloc(most), *work = malloc(most);
    cr_assert(in && ref && work, "out of memory");
    for (size_t d = 0; d < COUNT(dtypes); d++)
        for (size_t k = 0; k < COUNT(sizes); k++) {
            make_case(dtypes[d], sizes[k], D_RANDOM, 0x9e37u * (d + 1) + k, in, ref, NULL);
            for (size_t c = 0; c < COUNT(value_cfgs); c++)
                run_case(dtypes[d], sizes[k], D_RANDOM, in, ref, work, &value_cfgs[c]);
        }
    free(in);
    free(ref);
    free(work);
}

/* The large path's radix paths that sort_qs.inc's quicksort takes over on a CPU with
 * AVX-512 (one thread's arrays up to QS_WHOLE_MAX, the buckets' finishing), which a CPU
 * without it still takes, with the quicksort left out (HYBRIDD_TEST_SORT_NO_QS; the small
 * path's are small_window_sizes'). */
Test(sort, radix_paths_without_the_quicksort, .timeout = 240)
{
    cr_assert_eq(setenv("HYBRIDD_TEST_SORT_NO_QS", "1", 1), 0);
    const int dtypes[] = {HY_DT_I32, HY_DT_U32, HY_DT_F32, HY_DT_I64, HY_DT_U64, HY_DT_F64};
    const size_t sizes[] = {300007, ((size_t)1 << 21) + 5};
    const int dists[] = {D_RANDOM, D_SPECIAL, D_CLUSTERED, D_OUTLIERS};
    size_t most = sizes[COUNT(sizes) - 1] * 8;
    char *in = malloc(most), *ref = malloc(most), *work = malloc(most);
    cr_assert(in && ref && work, "out of memory");
    for (size_t d = 0; d < COUNT(dtypes); d++)
        for (size_t k = 0; k < COUNT(sizes); k++)
            for (size_t j = 0; j < COUNT(dists); j++) {
                make_case(dtypes[d], sizes[k], dists[j], 0x51u * (d + 1) + 7 * k + j, in, ref,
                          NULL);
                for (size_t c = 0; c < COUNT(value_cfgs); c++)
                    run_case(dtypes[d], sizes[k], dists[j], in, ref, work, &value_cfgs[c]);
            }
    free(in);
    free(ref);
    free(work);
}

/* Values repeated 1 to `most` times each, shuffled: with most = 12, buckets of more keys
 * than the window reaches (9), which the small path insertion-sorts first, next to buckets
 * it does not; with 40, so many that those insertion sorts run past their budget and the
 * radix sort finishes the buckets. A third of the values special (NaNs of both signs, -0.0
 * and +0.0, infinities). */
static void make_repeats(int dtype, size_t n, size_t most, uint64_t seed, void *in, void *ref)
{
    size_t size = hy_dtype_size(dtype);
    uint64_t s = seed;
    for (size_t i = 0; i < n;) {
        uint64_t v = mix(&s) % 3 ? random_bits(dtype, &s) : special_bits(dtype, &s);
        for (size_t r = 1 + mix(&s) % most; r > 0 && i < n; r--)
            put(in, size, i++, v);
    }
    for (size_t i = n - 1; i > 0; i--) { /* Fisher-Yates, through ref as scratch */
        size_t j = mix(&s) % (i + 1);
        memcpy(ref, (char *)in + i * size, size);
        memcpy((char *)in + i * size, (char *)in + j * size, size);
        memcpy((char *)in + j * size, ref, size);
    }
    memcpy(ref, in, n * size);
    reference_sort(dtype, ref, n);
}

Test(sort, small_window_repeats, .timeout = 120)
{
    cr_assert_eq(setenv("HYBRIDD_TEST_SORT_NO_QS", "1", 1), 0); /* the radix paths */
    const size_t sizes[] = {100, 1000, 10007, 100003};
    const int dtypes[] = {HY_DT_I32, HY_DT_U32, HY_DT_I64, HY_DT_U64, HY_DT_F32, HY_DT_F64};
    const struct cfg cfgs[] = {{HY_BACKEND_SERIAL, 1, HY_MODE_SPLIT, 0},
                               {HY_BACKEND_NATIVE, 2, HY_MODE_REPLICATE, 0}};
    char *in = malloc(100003 * 8), *ref = malloc(100003 * 8), *work = malloc(100003 * 8);
    cr_assert(in && ref && work, "out of memory");
    for (size_t d = 0; d < COUNT(dtypes); d++)
        for (size_t k = 0; k < COUNT(sizes); k++)
            for (size_t most = 12; most <= 40; most += 28) {
                make_repeats(dtypes[d], sizes[k], most, (uint64_t)dtypes[d] << 40 ^ sizes[k],
                             in, ref);
                for (size_t c = 0; c < COUNT(cfgs); c++)
                    run_case(dtypes[d], sizes[k], D_SPECIAL, in, ref, work, &cfgs[c]);
            }
    free(in);
    free(ref);
    free(work);
}

/* Arrays whose sample holds at most 16 distinct values are counted by value, on one thread
 * (sort_radix.inc's few_values). 1, 16 and 17 values (specials among them: NaNs of both
 * signs, -0.0 and +0.0), and 16 values with a 17th at one element the sample skips, first
 * or last: that array must go the ordinary way. On the small path and past it. */
static void make_values(int dtype, size_t n, unsigned nv, size_t odd_at, uint64_t seed,
                        void *in, void *ref)
{
    size_t size = hy_dtype_size(dtype);
    uint64_t s = seed, vals[17];
    for (unsigned k = 0; k < 17; k++)
        vals[k] = k % 3 ? random_bits(dtype, &s) : special_bits(dtype, &s);
    if (nv == 16 && odd_at < n) /* the 17th only at odd_at: make sure it differs */
        for (unsigned k = 0; k < 16; k++)
            if (vals[k] == vals[16])
                vals[16] ^= 1;
    for (size_t i = 0; i < n; i++)
        put(in, size, i, i == odd_at ? vals[16] : vals[mix(&s) % nv]);
    memcpy(ref, in, n * size);
    reference_sort(dtype, ref, n);
}

Test(sort, few_values_counted, .timeout = 120)
{
    /* Sample steps 8, 9, 25; 300007 is past the small path, where two or three threads
     * count their shares and meet at a barrier. */
    const size_t sizes[] = {1000, 32769, 100003, 300007};
    const int dtypes[] = {HY_DT_I32, HY_DT_U32, HY_DT_I64, HY_DT_U64, HY_DT_F32, HY_DT_F64};
    const struct cfg cfgs[] = {{HY_BACKEND_SERIAL, 1, HY_MODE_SPLIT, 0},
                               {HY_BACKEND_NATIVE, 2, HY_MODE_SPLIT, 0},
                               {HY_BACKEND_LOCKED, 3, HY_MODE_SPLIT, 0},
                               {HY_BACKEND_NATIVE, 2, HY_MODE_REPLICATE, 0}};
    char *in = malloc(300007 * 8), *ref = malloc(300007 * 8), *work = malloc(300007 * 8);
    cr_assert(in && ref && work, "out of memory");
    for (size_t d = 0; d < COUNT(dtypes); d++)
        for (size_t k = 0; k < COUNT(sizes); k++)
            for (int c = 0; c < 5; c++) {
                size_t n = sizes[k];
                unsigned nv = c == 0 ? 1 : c == 2 ? 17 : 16;
                size_t odd_at = c == 3 ? 1 : c == 4 ? n - 1 : SIZE_MAX;
                make_values(dtypes[d], n, nv, odd_at, (uint64_t)c << 32 ^ n, in, ref);
                for (size_t i = 0; i < COUNT(cfgs); i++)
                    run_case(dtypes[d], n, D_FEW, in, ref, work, &cfgs[i]);
            }
    free(in);
    free(ref);
    free(work);
}

/* Keys that span fewer than 4095 (sort_radix.inc's range_values, a counting sort): ints
 * crossing zero or at either end of their range, floats a run of adjacent bit patterns
 * (around 1.5, across -0.0 and +0.0 through the denormals, among the NaNs), 16 to 4095 keys
 * wide and 4097 (too wide: the radix path), with and without one element far outside the
 * sample's range, first or last, or one just past it (the 17th of 16 values, which the few
 * values' count refuses and the range, widened past the sample's, takes). Past the small
 * path, on one thread and on two and three that count their shares and meet at a
 * barrier. */
static void make_range(int dtype, size_t n, uint64_t width, unsigned shape, size_t odd_at,
                       bool odd_near, uint64_t seed, void *in, void *ref)
{
    size_t size = hy_dtype_size(dtype);
    bool wide = size == 8, flt = dtype == HY_DT_F32 || dtype == HY_DT_F64;
    uint64_t s = seed, sign = wide ? (uint64_t)1 << 63 : (uint64_t)1 << 31;
    uint64_t one_half = wide ? 0x3FF8000000000000u : 0x3FC00000u; /* 1.5 */
    uint64_t nan = wide ? 0x7FF0000000000001u : 0x7F800001u;
    for (size_t i = 0; i < n; i++) {
        uint64_t r = i == odd_at && odd_near ? width : mix(&s) % width, v;
        if (!flt) /* unsigned: at the top of their range, or (shape 1) at the bottom */
            v = dtype == HY_DT_U32 ? (shape == 1 ? r : 0xFFFFFFFFu - r)
                : dtype == HY_DT_U64 ? (shape == 1 ? r : ~(uint64_t)0 - r)
                : (uint64_t)((int64_t)r - (int64_t)(width / 2)); /* crossing zero */
        else if (shape == 0)
            v = one_half + r;
        else if (shape == 1) /* -denormals, -0.0, +0.0, +denormals: adjacent keys */
            v = r < width / 2 ? sign | (width / 2 - 1 - r) : r - width / 2;
        else
            v = nan + r;
        put(in, size, i,
            i == odd_at && !odd_near ? (flt ? one_half ^ sign : v ^ (sign >> 1)) : v);
    }
    memcpy(ref, in, n * size);
    reference_sort(dtype, ref, n);
}

/* The counts' tests (range, grid, heavy keys): one thread, two and three that meet at
 * barriers, and replicate mode. */
static const struct cfg meet_cfgs[] = {{HY_BACKEND_SERIAL, 1, HY_MODE_SPLIT, 0},
                                       {HY_BACKEND_NATIVE, 2, HY_MODE_SPLIT, 0},
                                       {HY_BACKEND_LOCKED, 3, HY_MODE_SPLIT, 0},
                                       {HY_BACKEND_NATIVE, 2, HY_MODE_REPLICATE, 0}};

/* The reference sort of `in` into ref, then every meet_cfgs configuration's sort of it. */
static void meet_all(int dtype, size_t n, int dist, const void *in, void *ref, void *work)
{
    memcpy(ref, in, n * hy_dtype_size(dtype));
    reference_sort(dtype, ref, n);
    for (size_t c = 0; c < COUNT(meet_cfgs); c++)
        run_case(dtype, n, dist, in, ref, work, &meet_cfgs[c]);
}

/* sort_qs.inc's quicksort (64-bit keys from 9 to 16384 on a CPU with AVX-512; elsewhere the
 * network and the small path) where its pivots meet equal keys and ordered runs: most keys
 * the greatest key value (a pivot of it leaves only its copies), or the least (a pivot with
 * nothing below it is taken again as "at most the pivot", which peels its copies off), the
 * two alternating, organ pipes and saw teeth against its sampled pivots, two values; sizes
 * about its partition's least (64), its leaves (64 and 128 keys) and its limit (16384). */
static const size_t qs_sizes[] = {9,   63,   64,   65,   127,   128,   129,  130,
                                  200, 256,  257,  1000, 2048,  2049,  8191, 16383,
                                  16384, 16385};

/* The bits of the small whole number x as an element of dtype. */
static uint64_t qs_rank_bits(int dtype, uint64_t x)
{
    if (dtype == HY_DT_F32) {
        float f = (float)x;
        uint32_t b;
        memcpy(&b, &f, 4);
        return b;
    }
    if (dtype != HY_DT_F64)
        return x;
    double d = (double)x;
    uint64_t b;
    memcpy(&b, &d, 8);
    return b;
}

/* The shapes below, as bits of `shapes` (bit 6: random keys), at each of the sizes. */
static void qs_cases_at(unsigned shapes, const size_t *sizes, size_t count)
{
    static const int dtypes[] = {HY_DT_I64, HY_DT_U64, HY_DT_F64,
                                 HY_DT_I32, HY_DT_U32, HY_DT_F32};
    /* The least and greatest key of each: the type's bounds; -inf, and the negative NaN of
     * payload 1, which numpy's order (common/sortkey.h) puts last. */
    static const uint64_t least[] = {(uint64_t)1 << 63, 0, 0xFFF0000000000000u,
                                     (uint64_t)1 << 31, 0, 0xFF800000u};
    static const uint64_t most[] = {~((uint64_t)1 << 63), ~(uint64_t)0, 0xFFF0000000000001u,
                                    0x7FFFFFFFu, 0xFFFFFFFFu, 0xFF800001u};
    size_t top = 0;
    for (size_t k = 0; k < count; k++)
        top = sizes[k] > top ? sizes[k] : top;
    char *in = malloc(top * 8), *ref = malloc(top * 8), *work = malloc(top * 8);
    cr_assert(in && ref && work, "out of memory");
    for (size_t d = 0; d < COUNT(dtypes); d++)
        for (size_t k = 0; k < count; k++)
            for (unsigned shape = 0; shape < 7; shape++) {
                if (!(shapes >> shape & 1))
                    continue;
                int dtype = dtypes[d];
                size_t n = sizes[k];
                uint64_t s = (uint64_t)d << 16 ^ (uint64_t)k << 8 ^ shape ^ 0x9507;
                uint64_t two[2] = {random_bits(dtype, &s), random_bits(dtype, &s)};
                for (size_t i = 0; i < n; i++) {
                    uint64_t r = random_bits(dtype, &s), v = r;
                    switch (shape) {
                    case 0: v = mix(&s) % 8 ? most[d] : r; break;
                    case 1: v = mix(&s) % 8 ? least[d] : r; break;
                    case 2: v = i & 1 ? most[d] : least[d]; break;
                    case 3: v = qs_rank_bits(dtype, i < n - 1 - i ? i : n - 1 - i); break;
                    case 4: v = qs_rank_bits(dtype, i % 17); break;
                    case 5: v = two[mix(&s) & 1]; break;
                    default: break; /* random */
                    }
                    put(in, hy_dtype_size(dtype), i, v);
                }
                meet_all(dtype, n, shape == 6 ? D_RANDOM : D_FEW, in, ref, work);
            }
    free(in);
    free(ref);
    free(work);
}

static void qs_cases(unsigned shapes)
{
    qs_cases_at(shapes, qs_sizes, COUNT(qs_sizes));
}

#define QS_SHAPES(n) ((1u << (n)) - 1) /* the first n shapes */
#define QS_RANDOM (1u << 6)

Test(sort, quicksort_equal_keys_and_runs, .timeout = 120)
{
    qs_cases(QS_SHAPES(6));
}

/* Past QS_MAX the quicksort takes what one thread sorts (serial, and each copy of a
 * replicate job) once the sample finds no few values, range, grid or dictionary: on the
 * small path (up to 2^17 keys) and on the large one (up to QS_WHOLE_MAX); and it finishes
 * the large path's buckets, which split jobs (native on 2 threads, locked on 3) take. The
 * same shapes and random keys, then the same without the quicksort (the radix paths it
 * takes over from, HYBRIDD_TEST_SORT_NO_QS). */
static const size_t qs_whole_sizes[] = {24000, 40000, 131073, 300000};

Test(sort, quicksort_whole_arrays_and_buckets, .timeout = 240)
{
    qs_cases_at(QS_SHAPES(7), qs_whole_sizes, COUNT(qs_whole_sizes));
}

Test(sort, quicksort_left_out, .timeout = 240)
{
    cr_assert_eq(setenv("HYBRIDD_TEST_SORT_NO_QS", "1", 1), 0);
    qs_cases_at(QS_SHAPES(7), qs_whole_sizes, COUNT(qs_whole_sizes));
}

/* The 32-bit partition the other way: compressing into registers, as on AMD's CPUs, where
 * Intel's compress straight to memory (HYBRIDD_TEST_SORT_QS_REGS; the same on a CPU that
 * already takes it or runs no quicksort). */
Test(sort, quicksort_compressing_into_registers, .timeout = 240)
{
    cr_assert_eq(setenv("HYBRIDD_TEST_SORT_QS_REGS", "1", 1), 0);
    qs_cases(QS_SHAPES(7));
    qs_cases_at(QS_SHAPES(7), qs_whole_sizes, COUNT(qs_whole_sizes));
}

/* Arrays whose buckets all outgrow the gather buffer, as 4096 buckets do from about 2.7*10^8
 * keys: a million keys in 8 buckets (HYBRIDD_TEST_SORT_BIG_BUCKETS), random and organ
 * pipes. The one read takes them and finish_big quicksorts each bucket from its place;
 * without the quicksort, two reads and sort_rec. */
static const size_t big_bucket_sizes[] = {1200007};

Test(sort, big_buckets, .timeout = 240)
{
    cr_assert_eq(setenv("HYBRIDD_TEST_SORT_BIG_BUCKETS", "1", 1), 0);
    qs_cases_at(QS_RANDOM | 1u << 3, big_bucket_sizes, COUNT(big_bucket_sizes));
}

Test(sort, big_buckets_without_the_quicksort, .timeout = 240)
{
    cr_assert_eq(setenv("HYBRIDD_TEST_SORT_BIG_BUCKETS", "1", 1), 0);
    cr_assert_eq(setenv("HYBRIDD_TEST_SORT_NO_QS", "1", 1), 0);
    qs_cases_at(QS_RANDOM | 1u << 3, big_bucket_sizes, COUNT(big_bucket_sizes));
}

/* The same and random keys with the quicksort's heap sort taking over after one level
 * (HYBRIDD_TEST_SORT_QS_HEAP; past twice the depth of even splits otherwise, which only
 * inputs built against its pivots' sample reach). */
Test(sort, quicksort_heap_sort, .timeout = 120)
{
    cr_assert_eq(setenv("HYBRIDD_TEST_SORT_QS_HEAP", "1", 1), 0);
    qs_cases(QS_SHAPES(7));
}

Test(sort, range_values_counted, .timeout = 240)
{
    const size_t n = 300007;
    const uint64_t widths[] = {16, 17, 256, 4095, 4097};
    char *in = malloc(n * 8), *ref = malloc(n * 8), *work = malloc(n * 8);
    cr_assert(in && ref && work, "out of memory");
    for (size_t d = 0; d < COUNT(all_dtypes); d++)
        for (size_t k = 0; k < COUNT(widths); k++)
            for (unsigned c = 0; c < 4; c++) {
                size_t odd_at = c == 0 ? SIZE_MAX : c == 2 ? n - 1 : 1;
                unsigned shape = (unsigned)(k + c) % 3;
                make_range(all_dtypes[d], n, widths[k], shape, odd_at, c == 3,
                           (uint64_t)k << 32 ^ c ^ d, in, ref);
                for (size_t i = 0; i < COUNT(meet_cfgs); i++)
                    run_case(all_dtypes[d], n, D_FEW, in, ref, work, &meet_cfgs[i]);
            }
    free(in);
    free(ref);
    free(work);
}

/* Floats on a grid (sort_radix.inc's grid_set and count_grid): small integers, k / 8 across
 * zero, multiples of 1024, and values near the largest the grid takes, each counted as the
 * integer x 2^s, with and without numpy's NaN (the quiet one, which has a cell of its own)
 * among them; with an element that is not on the grid (-0.0, another NaN, an infinity, a
 * denormal, a value between two of the grid's, one far outside), first, in the middle or
 * last, which must end the count with nothing written; and with a rare value of the grid
 * that the sample missed, just past its greatest. Past the small path, on one thread and on
 * two and three that meet at a barrier, and in replicate mode. */
static double grid_value(unsigned shape, uint64_t r, bool wide)
{
    switch (shape) {
    case 0: return (double)r;                        /* 0, 1, 2, ... (counts stored as floats) */
    case 1: return ((double)r - 400) / 8;            /* -50 .. 50 by 1/8, +0.0 among them */
    case 2: return (double)r * 1024;                 /* a grid coarser than 1 */
    default: return (wide ? 0x1p51 : 0x1p22) - (double)r; /* near the largest exact ones */
    }
}

static void put_float(void *buf, bool wide, size_t i, double x)
{
    if (wide) {
        memcpy((double *)buf + i, &x, 8);
    } else {
        float f = (float)x;
        memcpy((float *)buf + i, &f, 4);
    }
}

Test(sort, grid_plan)
{
    for (int w = 0; w < 2; w++) {
        bool wide = w == 1;
        int dtype = wide ? HY_DT_F64 : HY_DT_F32;
        const double scales[] = {1, 8, 1.0 / 1024, 1};
        for (unsigned shape = 0; shape < 4; shape++) {
            double vals[800], scale;
            float fv[800];
            int64_t lo;
            uint32_t range;
            uint64_t s = shape + 16u * (unsigned)w;
            for (size_t i = 0; i < 800; i++) { /* the first one 0 (shape 3: the largest) */
                vals[i] = grid_value(shape, i == 0 ? 0 : mix(&s) % 801, wide);
                fv[i] = (float)vals[i];
            }
            const void *v = wide ? (const void *)vals : (const void *)fv;
            cr_assert(hy_host_grid_plan(dtype, v, 800, &scale, &lo, &range),
                      "dtype %d shape %u: no grid", dtype, shape);
            cr_assert_eq(scale, scales[shape], "dtype %d shape %u: scale %g", dtype, shape,
                         scale);
            cr_assert(range >= 801 && range <= 4095, "dtype %d shape %u: %u cells", dtype,
                      shape, range);
            for (size_t i = 0; i < 800; i++) {
                double q = vals[i] * scale;
                cr_assert(q >= (double)lo && q < (double)lo + range,
                          "dtype %d shape %u: %g (cell %g) outside [%lld, + %u)", dtype, shape,
                          vals[i], q, (long long)lo, range);
            }
            /* numpy's NaN has a cell of its own */
            vals[7] = NAN;
            fv[7] = NAN;
            cr_assert(hy_host_grid_plan(dtype, v, 800, &scale, &lo, &range) &&
                          scale == scales[shape] && range <= 4094,
                      "dtype %d shape %u: no grid with a NaN, or a wrong one", dtype, shape);
            /* one element off the grid, or that no grid of few cells holds, rules it out */
            const double bad[] = {-0.0, -(double)NAN, INFINITY, wide ? 0x1p-1060 : 0x1p-140,
                                  0.1, 1e9, wide ? 0x1p53 : 0x1p24};
            for (size_t b = 0; b < COUNT(bad); b++) {
                size_t at = 1 + b * 113 % 799;
                double keep = vals[at];
                vals[at] = bad[b];
                fv[at] = (float)bad[b];
                cr_assert(!hy_host_grid_plan(dtype, v, 800, &scale, &lo, &range),
                          "dtype %d shape %u: a grid taken with %g in the sample", dtype,
                          shape, bad[b]);
                vals[at] = keep;
                fv[at] = (float)keep;
            }
            uint64_t payload = wide ? 0x7FF8000000000001u : 0x7FC00001u; /* a NaN, not numpy's */
            put(wide ? (void *)vals : (void *)fv, wide ? 8 : 4, 9, payload);
            cr_assert(!hy_host_grid_plan(dtype, v, 800, &scale, &lo, &range),
                      "dtype %d shape %u: a grid taken with a NaN of a payload", dtype, shape);
        }
    }
    double ints[2] = {1, 2};
    int64_t lo;
    uint32_t range;
    double scale;
    cr_assert(!hy_host_grid_plan(HY_DT_I64, ints, 2, &scale, &lo, &range),
              "a grid for integers, which the range of keys serves");
}

Test(sort, grid_values_counted, .timeout = 240)
{
    const size_t n = 300007;
    /* how many values of the shape: past the few values' 16, up to the most cells */
    const uint64_t widths[] = {17, 801, 2700};
    char *in = malloc(n * 8), *ref = malloc(n * 8), *work = malloc(n * 8);
    cr_assert(in && ref && work, "out of memory");
    for (int w = 0; w < 2; w++)
        for (unsigned shape = 0; shape < 4; shape++)
            for (unsigned odd = 0; odd < 9; odd++) {
                bool wide = w == 1;
                int dtype = wide ? HY_DT_F64 : HY_DT_F32;
                uint64_t s = (uint64_t)odd << 8 ^ shape << 4 ^ (unsigned)w,
                         width = widths[(shape + odd) % 3];
                bool nans = (odd + shape) % 2 == 1; /* numpy's NaN in one element of 7 */
                for (size_t i = 0; i < n; i++)
                    put_float(in, wide, i,
                              nans && i % 7 == 3 ? NAN : grid_value(shape, mix(&s) % width, wide));
                /* 0: none; 1-6 and 8: one element off the grid; 7: a rare value past the
                 * sample's */
                const double offs[] = {0,
                                       -0.0,
                                       -(double)NAN,
                                       -INFINITY,
                                       wide ? 0x1p-1070 : 0x1p-148,
                                       grid_value(shape, 3, wide) +
                                           (shape == 2 ? 512 : shape == 3 ? 0.5 : 0.0625),
                                       grid_value(shape, width + 5000, wide),
                                       grid_value(shape, width, wide)};
                size_t at = odd % 3 == 0 ? 0 : odd % 3 == 1 ? n / 2 : n - 1;
                if (odd == 8) /* a NaN with a payload: not numpy's */
                    put(in, wide ? 8 : 4, at, wide ? 0x7FF8000000000001u : 0x7FC00001u);
                else if (odd > 0)
                    put_float(in, wide, at, offs[odd]);
                meet_all(dtype, n, D_FEW, in, ref, work);
            }
    free(in);
    free(ref);
    free(work);
}

/* The few-values count alone (host/sort.c's few_count), against a plain count: every way
 * it has (generic vectors, AVX-512 compares, the perfect hash), on value sets of the shapes
 * users sort (small integers as ints and as floats, k/16 or 100 k, -8..7, specials, random
 * bits, one value, one value in 99 of 100 elements), over 2^21 + 37 elements in two calls
 * (each past a drain of the hash's 16-bit words, whose bound one value reaches, and a tail),
 * and with one element that is none of the values, which every way must refuse wherever it
 * sits. */
static unsigned few_set(int dtype, unsigned shape, uint64_t *s, uint64_t *vals)
{
    unsigned nv = shape == 5 ? 1 + (unsigned)(mix(s) % 16) : shape == 6 ? 1 : 16;
    for (unsigned v = 0; v < nv; v++) {
        int k = shape == 2 ? (int)v - 8 : (int)v; /* -8..7 */
        double d = shape == 1 ? (double)v / 16 : (double)k;
        float f = (float)d;
        uint32_t fb;
        memcpy(&fb, &f, 4);
        switch (shape) {
        case 0: /* 0..15, or -8..7 (shape 2), as the dtype holds them */
        case 1: /* k/16 */
        case 2:
            if (dtype == HY_DT_F64)
                memcpy(&vals[v], &d, 8);
            else if (dtype == HY_DT_F32)
                vals[v] = fb;
            else if (dtype == HY_DT_I32 || dtype == HY_DT_U32)
                vals[v] = (uint32_t)(int32_t)(shape == 1 ? (int)v * 100 : k);
            else
                vals[v] = (uint64_t)(int64_t)(shape == 1 ? (int)v * 100 : k);
            break;
        case 6: /* one value: every element in one bin, the most its fields can take */
        case 7: /* 16 random values, one of them nearly every element (below) */
            vals[v] = random_bits(dtype, s);
            break;
        case 3: /* five specials (every table holds six or more), then random bits */
            vals[v] = v < 5 ? special_bits(dtype, s) : random_bits(dtype, s);
            break;
        default: vals[v] = random_bits(dtype, s); break;
        }
        for (unsigned u = 0; u < v; u++) /* distinct */
            if (vals[u] == vals[v]) {
                v--;
                break;
            }
    }
    return nv;
}

static void few_count_every_way(bool portable)
{
    const int dtypes[] = {HY_DT_I32, HY_DT_U32, HY_DT_F32, HY_DT_I64, HY_DT_U64, HY_DT_F64};
    const size_t n = ((size_t)1 << 21) + 37;
#if defined(__x86_64__)
    bool avx512 = !portable && __builtin_cpu_supports("avx512f");
#else
    bool avx512 = false;
#endif
    char *a = malloc(n * 8);
    cr_assert(a, "out of memory");
    for (size_t d = 0; d < COUNT(dtypes); d++)
        for (unsigned shape = 0; shape < 8; shape++) {
            size_t size = hy_dtype_size(dtypes[d]);
            uint64_t s = (uint64_t)shape << 20 ^ d, vals[16], want[16] = {0};
            unsigned nv = few_set(dtypes[d], shape, &s, vals);
            unsigned char vbuf[16 * 8];
            for (unsigned v = 0; v < nv; v++)
                put(vbuf, size, v, vals[v]);
            for (size_t i = 0; i < n; i++) {
                uint64_t r = mix(&s);
                unsigned v = shape == 7 && r % 100 != 0 ? 3 : (unsigned)(r % nv);
                put(a, size, i, vals[v]);
                want[v]++;
            }
            for (int hash = 0; hash < 2; hash++) {
                uint64_t got[16] = {0};
                int way = hy_host_few_count(size, a, n, vbuf, nv, hash, got);
                cr_assert_geq(way, 0, "dtype %s, set %u, hash %d: refused its own values",
                              hy_dtype_name(dtypes[d]), shape, hash);
                /* The hash must serve the sets of small ints and floats where it can run;
                 * random sets are allowed the compares. */
                int expect = !avx512 ? 0 : hash && shape < 3 ? 2 : -1;
                cr_assert(expect < 0 || way == expect || (hash && shape >= 3 && way >= 1),
                          "dtype %s, set %u, hash %d: counted by way %d, not %d",
                          hy_dtype_name(dtypes[d]), shape, hash, way, expect);
                if (avx512 && !hash)
                    cr_assert_eq(way, 1, "dtype %s: without the hash, not the compares",
                                 hy_dtype_name(dtypes[d]));
                for (unsigned v = 0; v < nv; v++)
                    cr_assert_eq(got[v], want[v],
                                 "dtype %s, set %u, way %d: value %u counted %" PRIu64
                                 ", present %" PRIu64,
                                 hy_dtype_name(dtypes[d]), shape, way, v, got[v], want[v]);
            }
            /* One outsider: a value's bits with one bit flipped (into an empty bin of the
             * hash or a taken one), at the start, inside the vectors, just past the hash's
             * first drain of its fields (256 x 255 vectors: 1044480 32-bit elements, 522240
             * 64-bit ones) and last, in the tail the vectors leave. */
            const size_t at[] = {0, 1000, 1044480 + 3, 522240 + 5, n - 1};
            for (size_t k = 0; k < COUNT(at); k++) {
                uint64_t keep = 0, odd = vals[k % nv] ^ ((uint64_t)1 << (mix(&s) % (8 * size)));
                for (unsigned v = 0; v < nv; v++)
                    if (odd == vals[v])
                        odd ^= (uint64_t)1 << (8 * size - 1);
                memcpy(&keep, a + at[k] * size, size);
                put(a, size, at[k], odd);
                for (int hash = 0; hash < 2; hash++) {
                    uint64_t got[16] = {0};
                    int way = hy_host_few_count(size, a, n, vbuf, nv, hash, got);
                    cr_assert_eq(way, -1,
                                 "dtype %s, set %u, hash %d: an outsider at %zu counted",
                                 hy_dtype_name(dtypes[d]), shape, hash, at[k]);
                }
                memcpy(a + at[k] * size, &keep, size);
            }
        }
    free(a);
}

Test(sort, few_values_count_every_way, .timeout = 120)
{
    few_count_every_way(false);
}

/* The generic vectors, which a CPU without AVX-512 counts with (host/sort.c's few_mask_ok
 * honours HYBRIDD_TEST_SORT_PORTABLE; each Criterion test runs in a process of its own). */
Test(sort, few_values_count_portable, .timeout = 120)
{
    cr_assert_eq(setenv("HYBRIDD_TEST_SORT_PORTABLE", "1", 1), 0);
    few_count_every_way(true);
}

/* The comparator itself, on values whose order the spec spells out. */
Test(sort, reference_order_f64)
{
    const uint64_t want[] = {
        0xFFF0000000000000u, /* -inf */
        0xBFF0000000000000u, /* -1.0 */
        0x8000000000000001u, /* -denormal */
        0x8000000000000000u, /* -0.0 */
        0x0000000000000000u, /* +0.0 */
        0x0000000000000001u, /* +denormal */
        0x7FF0000000000000u, /* +inf */
        0x7FF0000000000001u, /* +NaN, ascending bits */
        0x7FF8000000000000u,
        0x7FFFFFFFFFFFFFFFu,
        0xFFFFFFFFFFFFFFFFu, /* -NaN, descending bits */
        0xFFF8000000000000u,
        0xFFF0000000000001u,
    };
    size_t n = COUNT(want);
    uint64_t a[COUNT(want)];
    for (size_t i = 0; i < n; i++)
        a[i] = want[(i * 5 + 3) % n]; /* a permutation: 5 is coprime with 13 */
    reference_sort(HY_DT_F64, a, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(a[i], want[i], "reference order f64 [%zu]: 0x%" PRIx64 " != 0x%" PRIx64, i,
                     a[i], want[i]);
    /* And the engine agrees. */
    for (size_t i = 0; i < n; i++)
        a[i] = want[(i * 5 + 3) % n];
    hy_sort_result r;
    hy_error err = {0};
    hy_run_opts o = {.backend = HY_BACKEND_NATIVE, .threads = 2};
    cr_assert_eq(hy_host_sort(eng, HY_DT_F64, a, n, &o, &r, &err), 0, "sort: %s", err.msg);
    cr_assert_arr_eq(a, want, sizeof want, "engine order of the f64 specials");
}

Test(sort, reference_order_f32)
{
    const uint32_t want[] = {
        0xFF800000u, 0xBF800000u, 0x80000001u, 0x80000000u, 0x00000000u,
        0x00000001u, 0x7F800000u, 0x7F800001u, 0x7FC00000u, 0x7FFFFFFFu,
        0xFFFFFFFFu, 0xFFC00000u, 0xFF800001u,
    };
    size_t n = COUNT(want);
    uint32_t a[COUNT(want)];
    for (size_t i = 0; i < n; i++)
        a[i] = want[(i * 5 + 3) % n];
    reference_sort(HY_DT_F32, a, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(a[i], want[i], "reference order f32 [%zu]: 0x%" PRIx32 " != 0x%" PRIx32, i,
                     a[i], want[i]);
    for (size_t i = 0; i < n; i++)
        a[i] = want[(i * 5 + 3) % n];
    hy_sort_result r;
    hy_error err = {0};
    hy_run_opts o = {.backend = HY_BACKEND_SERIAL, .threads = 1};
    cr_assert_eq(hy_host_sort(eng, HY_DT_F32, a, n, &o, &r, &err), 0, "sort: %s", err.msg);
    cr_assert_arr_eq(a, want, sizeof want, "engine order of the f32 specials");
}

/* ---- bad arguments ---- */

/* A good call after a bad one: the engine must still sort. */
static void good_call_still_works(const char *after)
{
    enum { N = 1009 };
    int32_t a[N], want[N];
    uint64_t s = 42;
    for (size_t i = 0; i < N; i++)
        a[i] = want[i] = (int32_t)(uint32_t)mix(&s);
    reference_sort(HY_DT_I32, want, N);
    hy_run_opts o = {.backend = HY_BACKEND_NATIVE, .threads = ENGINE_THREADS};
    hy_sort_result r;
    hy_error err = {0};
    int rc = hy_host_sort(eng, HY_DT_I32, a, N, &o, &r, &err);
    cr_assert_eq(rc, 0, "good sort after %s returned %d: %s", after, rc, err.msg);
    cr_assert_arr_eq(a, want, sizeof a, "good sort after %s: wrong order", after);
}

static void expect_error(int dtype, void *data, size_t n, const hy_run_opts *o, int want,
                         const char *what)
{
    hy_sort_result r;
    hy_error err = {0};
    int rc = hy_host_sort(eng, dtype, data, n, o, &r, &err);
    cr_assert_eq(rc, want, "%s: got %d (%s), want %d (%s)", what, rc, hy_err_name(rc), want,
                 hy_err_name(want));
    cr_assert_eq(err.code, want, "%s: err.code %d, want %d", what, err.code, want);
    cr_assert(err.msg[0] != '\0', "%s: empty error message", what);
    cr_assert(memchr(err.msg, '\0', sizeof err.msg) != NULL, "%s: message not terminated", what);
    /* err may be NULL: same code, no crash. */
    rc = hy_host_sort(eng, dtype, data, n, o, &r, NULL);
    cr_assert_eq(rc, want, "%s (err = NULL): got %d, want %d", what, rc, want);
    good_call_still_works(what);
}

Test(sort, bad_arguments)
{
    int32_t buf[16] = {3, 1, 2};
    hy_run_opts ok = {.backend = HY_BACKEND_NATIVE, .threads = 2};
    const int bad_dtypes[] = {0, 7, -1, 100};
    for (size_t i = 0; i < COUNT(bad_dtypes); i++) {
        char what[64];
        snprintf(what, sizeof what, "dtype %d", bad_dtypes[i]);
        expect_error(bad_dtypes[i], buf, 3, &ok, HY_EDTYPE, what);
    }
    expect_error(HY_DT_I32, NULL, 3, &ok, HY_EINVAL, "NULL data with n = 3");
    expect_error(HY_DT_F64, NULL, 1, &ok, HY_EINVAL, "NULL data with n = 1 (f64)");
    expect_error(HY_DT_I32, buf, 3, NULL, HY_EINVAL, "NULL options");

    struct {
        hy_run_opts o;
        int want;
        const char *what;
    } cases[] = {
        {{.backend = HY_BACKEND_NATIVE, .threads = 0}, HY_EINVAL, "native threads = 0"},
        {{.backend = HY_BACKEND_LOCKED, .threads = 0}, HY_EINVAL, "locked threads = 0"},
        {{.backend = HY_BACKEND_SERIAL, .threads = 0}, HY_EINVAL, "serial threads = 0"},
        {{.backend = HY_BACKEND_NATIVE, .threads = ENGINE_THREADS + 1}, HY_ELIMIT,
         "native threads above the engine's"},
        {{.backend = HY_BACKEND_LOCKED, .threads = ENGINE_THREADS + 1}, HY_ELIMIT,
         "locked threads above the engine's"},
        {{.backend = HY_BACKEND_NATIVE, .threads = HY_HOST_MAX_THREADS + 1}, HY_ELIMIT,
         "threads above HY_HOST_MAX_THREADS"},
        {{.backend = HY_BACKEND_NATIVE, .threads = UINT32_MAX}, HY_ELIMIT,
         "threads = UINT32_MAX"},
        {{.backend = HY_BACKEND_SERIAL, .threads = 2}, HY_EINVAL, "serial with 2 threads"},
        {{.backend = HY_BACKEND_OPENCL, .threads = 1}, HY_EBACKEND, "backend opencl"},
        {{.backend = 99, .threads = 1}, HY_EBACKEND, "backend 99"},
        {{.backend = 0, .threads = 1}, HY_EBACKEND, "backend 0"},
        {{.backend = -1, .threads = 1}, HY_EBACKEND, "backend -1"},
        {{.backend = HY_BACKEND_NATIVE, .threads = 2, .mode = 3}, HY_EINVAL, "mode 3"},
        {{.backend = HY_BACKEND_NATIVE, .threads = 2, .mode = -1}, HY_EINVAL, "mode -1"},
        {{.backend = HY_BACKEND_LOCKED, .threads = 2, .nogil = 3}, HY_EINVAL, "nogil 3"},
        {{.backend = HY_BACKEND_LOCKED, .threads = 2, .nogil = -1}, HY_EINVAL, "nogil -1"},
    };
    for (size_t i = 0; i < COUNT(cases); i++)
        expect_error(HY_DT_I32, buf, 3, &cases[i].o, cases[i].want, cases[i].what);
    /* The bad calls left the buffer alone. */
    cr_assert(buf[0] == 3 && buf[1] == 1 && buf[2] == 2, "a failed call touched the data");
}

/* Counts no memory could hold are refused before anything is touched or allocated. */
Test(sort, absurd_sizes)
{
    double buf[4] = {0};
    const size_t ns[] = {SIZE_MAX, SIZE_MAX / 2, SIZE_MAX / 8 + 1};
    const struct cfg cfgs[] = {
        {HY_BACKEND_SERIAL, 1, HY_MODE_SPLIT, 0},
        {HY_BACKEND_NATIVE, 8, HY_MODE_SPLIT, 0},
        {HY_BACKEND_LOCKED, 8, HY_MODE_REPLICATE, 0},
    };
    for (size_t i = 0; i < COUNT(ns); i++)
        for (size_t k = 0; k < COUNT(cfgs); k++) {
            hy_run_opts o = {.backend = cfgs[k].backend, .threads = cfgs[k].threads,
                             .mode = cfgs[k].mode};
            hy_sort_result r;
            hy_error err = {0};
            int rc = hy_host_sort(eng, HY_DT_F64, buf, ns[i], &o, &r, &err);
            cr_assert(rc == HY_ELIMIT || rc == HY_ENOMEM,
                      "absurd n: got %d (%s), want ELIMIT or ENOMEM, " CASE_FMT, rc,
                      hy_err_name(rc), CASE_ARGS(HY_DT_F64, ns[i], D_RANDOM, &cfgs[k]));
            cr_assert(err.msg[0] != '\0', "absurd n: empty message, " CASE_FMT,
                      CASE_ARGS(HY_DT_F64, ns[i], D_RANDOM, &cfgs[k]));
        }
    good_call_still_works("absurd sizes");
}

Test(sort, null_data_with_zero_elements)
{
    const struct cfg cfgs[] = {
        {HY_BACKEND_SERIAL, 1, HY_MODE_SPLIT, 0},
        {HY_BACKEND_NATIVE, 8, HY_MODE_SPLIT, 0},
        {HY_BACKEND_LOCKED, 3, HY_MODE_REPLICATE, 0},
    };
    for (int dtype = HY_DT_I32; dtype <= HY_DT_F64; dtype++)
        for (size_t k = 0; k < COUNT(cfgs); k++) {
            hy_run_opts o = {.backend = cfgs[k].backend, .threads = cfgs[k].threads,
                             .mode = cfgs[k].mode};
            hy_sort_result r;
            hy_error err = {0};
            int rc = hy_host_sort(eng, dtype, NULL, 0, &o, &r, &err);
            cr_assert_eq(rc, 0, "NULL data, n = 0: %d %s, " CASE_FMT, rc, err.msg,
                         CASE_ARGS(dtype, (size_t)0, D_RANDOM, &cfgs[k]));
            cr_assert_eq(r.n, 0, "NULL data, n = 0: result n %zu", r.n);
        }
    good_call_still_works("NULL data with n = 0");
}

/* ---- progress and cancellation ---- */

struct progress_log {
    unsigned calls;
    unsigned cancel_from; /* return non-zero from this call on (1-based); 0 = never */
    uint64_t cancel_past; /* or from the first call with done above this; 0 = never */
    uint64_t last_done, total;
    bool bad_order, over_total, total_changed;
};

static int on_progress(void *ctx, uint64_t done, uint64_t total)
{
    struct progress_log *p = ctx;
    p->calls++;
    if (p->calls == 1)
        p->total = total;
    else if (total != p->total)
        p->total_changed = true;
    if (done < p->last_done)
        p->bad_order = true;
    if (done > total)
        p->over_total = true;
    p->last_done = done;
    return (p->cancel_from && p->calls >= p->cancel_from) ||
           (p->cancel_past && done > p->cancel_past);
}

#define CANCEL_N ((size_t)1 << 22)

static const struct cfg all_cfgs[] = {
    {HY_BACKEND_SERIAL, 1, HY_MODE_SPLIT, 0},
    {HY_BACKEND_NATIVE, 1, HY_MODE_SPLIT, 0},
    {HY_BACKEND_NATIVE, 2, HY_MODE_SPLIT, 0},
    {HY_BACKEND_NATIVE, 3, HY_MODE_SPLIT, 0},
    {HY_BACKEND_NATIVE, 8, HY_MODE_SPLIT, 0},
    {HY_BACKEND_LOCKED, 1, HY_MODE_SPLIT, 0},
    {HY_BACKEND_LOCKED, 2, HY_MODE_SPLIT, 0},
    {HY_BACKEND_LOCKED, 3, HY_MODE_SPLIT, 0},
    {HY_BACKEND_LOCKED, 8, HY_MODE_SPLIT, 0},
    {HY_BACKEND_LOCKED, 3, HY_MODE_SPLIT, HY_NOGIL_HOLD},
    {HY_BACKEND_NATIVE, 2, HY_MODE_REPLICATE, 0},
    {HY_BACKEND_LOCKED, 3, HY_MODE_REPLICATE, 0},
};

/* After a sort that returned rc (0 or cancelled): nothing lost. A cancelled sort's array is
 * sorted again, serially; either way it must then hold the reference's bytes. */
static void assert_whole(int rc, int dtype, void *work, const void *ref, size_t n, int dist,
                         const struct cfg *c, const char *what)
{
    if (rc == HY_ECANCELED) {
        hy_run_opts so = {.backend = HY_BACKEND_SERIAL, .threads = 1};
        hy_sort_result r;
        hy_error err = {0};
        rc = hy_host_sort(eng, dtype, work, n, &so, &r, &err);
        cr_assert_eq(rc, 0, "re-sort after cancel: %d %s", rc, err.msg);
    }
    assert_same_bytes(work, ref, dtype, n, dist, c, what);
}

/* Cancels from the progress callback's first call, which comes ~2 ms into the job: 2^22
 * elements take far longer than that on every backend. */
static void cancel_case(int dtype, unsigned cancel_from)
{
    size_t size = hy_dtype_size(dtype), n = CANCEL_N;
    char *in = calloc(n, size), *ref = calloc(n, size), *work = calloc(n, size);
    cr_assert(in && ref && work, "out of memory");
    make_case(dtype, n, D_SPECIAL, 7, in, ref, NULL);
    for (size_t k = 0; k < COUNT(all_cfgs); k++) {
        const struct cfg *c = &all_cfgs[k];
        memcpy(work, in, n * size);
        struct progress_log log = {.cancel_from = cancel_from};
        hy_run_opts o = {.backend = c->backend, .threads = c->threads, .mode = c->mode,
                         .nogil = c->nogil, .progress = on_progress, .progress_ctx = &log};
        hy_sort_result r;
        hy_error err = {0};
        int rc = hy_host_sort(eng, dtype, work, n, &o, &r, &err);
        cr_assert_geq(log.calls, cancel_from, "progress called %u times, " CASE_FMT, log.calls,
                      CASE_ARGS(dtype, n, D_SPECIAL, c));
        cr_assert_eq(rc, HY_ECANCELED, "cancelled sort returned %d (%s: %s), " CASE_FMT, rc,
                     hy_err_name(rc), err.msg, CASE_ARGS(dtype, n, D_SPECIAL, c));
        cr_assert(err.msg[0] != '\0', "cancelled sort: empty message, " CASE_FMT,
                  CASE_ARGS(dtype, n, D_SPECIAL, c));
        cr_assert(!log.bad_order && !log.over_total && !log.total_changed,
                  "progress: decreasing %d, done > total %d, total changed %d, " CASE_FMT,
                  log.bad_order, log.over_total, log.total_changed,
                  CASE_ARGS(dtype, n, D_SPECIAL, c));
        assert_whole(rc, dtype, work, ref, n, D_SPECIAL, c,
                     "after a cancelled sort the array is not a permutation of the input");
    }
    free(in);
    free(ref);
    free(work);
}

/* Few distinct values: every bucket holds one value, and the output is written from the
 * counts over the input array itself. A cancel after the counting pass (done > n) must
 * still leave every element there. The cancel lands only if a progress call falls in the
 * writing (the runtime calls at most every ~2 ms), so a finished sort is accepted too;
 * either way the array must hold the input's elements. */
Test(sort, cancel_few_values_fill)
{
    const int dtypes[] = {HY_DT_U32, HY_DT_F64};
    size_t n = (size_t)1 << 23;
    for (size_t d = 0; d < COUNT(dtypes); d++) {
        size_t size = hy_dtype_size(dtypes[d]);
        char *in = calloc(n, size), *ref = calloc(n, size), *work = calloc(n, size);
        cr_assert(in && ref && work, "out of memory");
        make_case(dtypes[d], n, D_FEW, 11, in, ref, NULL);
        for (size_t k = 0; k < COUNT(all_cfgs); k++) {
            const struct cfg *c = &all_cfgs[k];
            memcpy(work, in, n * size);
            struct progress_log log = {.cancel_past = n};
            hy_run_opts o = {.backend = c->backend, .threads = c->threads, .mode = c->mode,
                             .nogil = c->nogil, .progress = on_progress, .progress_ctx = &log};
            hy_sort_result r;
            hy_error err = {0};
            int rc = hy_host_sort(eng, dtypes[d], work, n, &o, &r, &err);
            cr_assert(rc == 0 || rc == HY_ECANCELED, "sort returned %d (%s), " CASE_FMT, rc,
                      err.msg, CASE_ARGS(dtypes[d], n, D_FEW, c));
            assert_whole(rc, dtypes[d], work, ref, n, D_FEW, c,
                         "after a sort cancelled while writing, the array is not a "
                         "permutation of the input");
        }
        free(in);
        free(ref);
        free(work);
    }
}

/* The counts' paths (range_values, dict_values) write nothing until every thread's counts
 * meet, and their writing is not stopped by a cancel: on every backend and thread count, a
 * cancel from the first progress call leaves `in`'s copy untouched or sorted; one past n
 * (in the writing, when a progress call falls there) leaves every element in it. Progress
 * never goes past its total or backwards. */
static void cancel_counted(int dtype, const void *in, const void *ref, void *work, size_t n,
                           const char *what)
{
    size_t size = hy_dtype_size(dtype);
    for (size_t k = 0; k < COUNT(all_cfgs); k++)
        for (int when = 0; when < 2; when++) {
            const struct cfg *c = &all_cfgs[k];
            memcpy(work, in, n * size);
            struct progress_log log = {.cancel_from = when == 0 ? 1 : 0,
                                       .cancel_past = when == 1 ? n : 0};
            hy_run_opts o = {.backend = c->backend, .threads = c->threads, .mode = c->mode,
                             .nogil = c->nogil, .progress = on_progress, .progress_ctx = &log};
            hy_sort_result r;
            hy_error err = {0};
            int rc = hy_host_sort(eng, dtype, work, n, &o, &r, &err);
            cr_assert(rc == 0 || rc == HY_ECANCELED, "sort returned %d (%s), " CASE_FMT, rc,
                      err.msg, CASE_ARGS(dtype, n, D_FEW, c));
            cr_assert(!log.over_total && !log.bad_order,
                      "progress past its total or backwards, " CASE_FMT,
                      CASE_ARGS(dtype, n, D_FEW, c));
            if (rc == HY_ECANCELED && memcmp(work, in, n * size) == 0)
                continue; /* cancelled while counting: untouched */
            char msg[128];
            snprintf(msg, sizeof msg,
                     "after a cancelled sort of %s, the array is not a permutation of the input",
                     what);
            assert_whole(rc, dtype, work, ref, n, D_FEW, c, msg);
        }
}

/* Keys of a narrow range (sort_radix.inc's range_values), cancelled (cancel_counted). */
Test(sort, cancel_range_values)
{
    size_t n = (size_t)1 << 23;
    uint32_t *in = calloc(n, 4), *ref = calloc(n, 4), *work = calloc(n, 4);
    cr_assert(in && ref && work, "out of memory");
    make_range(HY_DT_U32, n, 256, 0, SIZE_MAX, false, 17, in, ref);
    cancel_counted(HY_DT_U32, in, ref, work, n, "a narrow range");
    free(in);
    free(ref);
    free(work);
}

/* Arrays of a hundred to several thousand distinct values, repeated (sort_radix.inc's
 * dict_values: each element counted in a hash table of the values; 6000 of them fill a
 * table's largest size to more than one value in eight slots), every dtype, on one
 * thread, two and three and in replicate mode. For floats the values include -0.0 and
 * +0.0, infinities and NaNs of both signs with payloads, which must come out in the
 * engine's order like any other key. */
#define DICT_N (((size_t)1 << 21) + 5)

static void draw_values(int dtype, uint64_t *vals, size_t nv, uint64_t *s)
{
    size_t size = hy_dtype_size(dtype);
    for (size_t v = 0; v < nv; v++)
        vals[v] = random_bits(dtype, s);
    if (dtype == HY_DT_F32 || dtype == HY_DT_F64) {
        const uint64_t special[2][6] = {
            {0x80000000u, 0, 0x7F800000u, 0xFF800000u, 0x7FC00123u, 0xFFA00001u},
            {(uint64_t)1 << 63, 0, 0x7FF0000000000000u, 0xFFF0000000000000u,
             0x7FF8000000000123u, 0xFFF4000000000001u}};
        for (size_t v = 0; v < 6 && v < nv; v++)
            vals[v * (nv / 6)] = special[size == 8][v];
    }
}

Test(sort, dict_values_counted, .timeout = 240)
{
    const size_t n = DICT_N, nvs[] = {100, 1000, 1900, 6000};
    char *in = malloc(n * 8), *ref = malloc(n * 8), *work = malloc(n * 8);
    uint64_t vals[6000];
    cr_assert(in && ref && work, "out of memory");
    for (size_t d = 0; d < COUNT(all_dtypes); d++)
        for (size_t k = 0; k < COUNT(nvs); k++) {
            size_t size = hy_dtype_size(all_dtypes[d]);
            uint64_t s = (uint64_t)d << 8 ^ k ^ 0xD1C7;
            draw_values(all_dtypes[d], vals, nvs[k], &s);
            for (size_t i = 0; i < n; i++)
                put(in, size, i, vals[mix(&s) % nvs[k]]);
            meet_all(all_dtypes[d], n, D_FEW, in, ref, work);
        }
    free(in);
    free(ref);
    free(work);
}

/* Repeats with a long tail: 1000 values make up 90% of the array and the rest is unique
 * (prices with outliers, word counts), or the values follow Zipf's law (half the elements
 * in the 3 commonest of 2^15 values, by an inverse-square draw), or are that draw itself
 * (numbers from 0 to past 10^12, most of them small: the spill's range is stretched, and
 * sort_radix.inc's stretch_pass sorts it). The sample meets the tail, so the values are too
 * many for a table, but repeats cover most of the array (few keys sampled once):
 * dict_values counts what its tables hold and sorts the spill apart. Every dtype, the four
 * configurations of meet_all. */
Test(sort, dict_values_spill, .timeout = 240)
{
    const size_t n = DICT_N;
    char *in = malloc(n * 8), *ref = malloc(n * 8), *work = malloc(n * 8);
    static uint64_t vals[1u << 15];
    cr_assert(in && ref && work, "out of memory");
    for (size_t d = 0; d < COUNT(all_dtypes); d++)
        for (unsigned shape = 0; shape < 3; shape++) {
            int dtype = all_dtypes[d];
            size_t size = hy_dtype_size(dtype), nv = shape == 0 ? 1000 : COUNT(vals);
            uint64_t s = (uint64_t)d << 8 ^ shape ^ 0x5B11;
            draw_values(dtype, vals, nv, &s);
            for (size_t i = 0; i < n; i++) {
                uint64_t r = mix(&s), v;
                if (shape == 0) {
                    v = (r >> 32) % 10 == 0 ? random_bits(dtype, &s) : vals[r % nv];
                } else { /* u in (0, 1], value 1/u^2 - 1: P(value >= k) = 1/sqrt(k + 1) */
                    double u = (double)((r >> 11) + 1) / 9007199254740992.0;
                    double k = 1.0 / (u * u) - 1.0;
                    if (shape == 2) {
                        if (dtype == HY_DT_F32 || dtype == HY_DT_F64) {
                            put_float(in, size == 8, i, floor(k));
                            continue;
                        }
                        double most = size == 4 ? 2147483647.0 : 9.2e18;
                        v = (uint64_t)(k < most ? k : most);
                    } else {
                        v = vals[k < (double)(nv - 1) ? (size_t)k : nv - 1];
                    }
                }
                put(in, size, i, v);
            }
            meet_all(dtype, n, D_FEW, in, ref, work);
        }
    free(in);
    free(ref);
    free(work);
}

/* Two tests of one set of cases: NAME on the paths this CPU takes, NAME_portable on those
 * of a CPU without AVX2 or AVX-512 (host/sort.c's test_portable honours
 * HYBRIDD_TEST_SORT_PORTABLE; each Criterion test runs in a process of its own). */
#define TEST_BOTH_PATHS(name, cases)                                                       \
    Test(sort, name, .timeout = 240)                                                       \
    {                                                                                      \
        cases();                                                                           \
    }                                                                                      \
    Test(sort, name##_portable, .timeout = 240)                                            \
    {                                                                                      \
        cr_assert_eq(setenv("HYBRIDD_TEST_SORT_PORTABLE", "1", 1), 0);                     \
        cases();                                                                           \
    }

/* Skewed repeats: two values take 40% and 15% of the first half, and only the second is
 * in the second half (a thread's table then lacks the first); the rest are 2000 values.
 * For floats the two are -0.0 and +0.0, then two NaNs of different payloads; for integers,
 * any. The small path (40009 keys) and the top level, each on the path this CPU takes
 * (sort_radix.inc's dict_find_gather where it has AVX-512) and on the portable one. */
static void dict_skewed_cases(void)
{
    const size_t sizes[] = {40009, DICT_N}, nv = 2000;
    char *in = malloc(DICT_N * 8), *ref = malloc(DICT_N * 8), *work = malloc(DICT_N * 8);
    static uint64_t vals[2000];
    cr_assert(in && ref && work, "out of memory");
    for (size_t d = 0; d < COUNT(all_dtypes); d++)
        for (size_t k = 0; k < COUNT(sizes); k++)
            for (unsigned pair = 0; pair < 2; pair++) {
                int dtype = all_dtypes[d];
                size_t size = hy_dtype_size(dtype), n = sizes[k];
                uint64_t s = (uint64_t)d << 8 ^ k << 4 ^ pair ^ 0x4EAD;
                draw_values(dtype, vals, nv, &s);
                uint64_t h0 = vals[pair * 4 * (nv / 6)], h1 = vals[(pair * 4 + 1) * (nv / 6)];
                for (size_t i = 0; i < n; i++) {
                    uint64_t r = mix(&s) % 100;
                    bool first = i < n / 2;
                    put(in, size, i,
                        first && r < 40 ? h0 : r < 15 || (first && r < 55) ? h1 : vals[mix(&s) % nv]);
                }
                meet_all(dtype, n, D_FEW, in, ref, work);
            }
    free(in);
    free(ref);
    free(work);
}

TEST_BOTH_PATHS(dict_values_skewed, dict_skewed_cases)

/* A slot that is free may hold a stale key (the buffers are zeroed, or keep an earlier
 * table), and the key may equal an element whose home slot it is; another value may take
 * the slot earlier in the same block of lookups. Here a value whose hash is 1 (home slot 0
 * in any table) comes first and 0, whose home is slot 0 too, second: 0 must be counted as
 * itself. The multiplier is sort_radix.inc's dict_hash's; its inverse mod 2^64 by Newton's
 * iteration. */
Test(sort, dict_values_stale_key, .timeout = 240)
{
    const size_t n = DICT_N;
    const uint64_t g = 0x9E3779B97F4A7C15u;
    uint64_t inv = g;
    for (int i = 0; i < 6; i++)
        inv *= 2 - g * inv;
    cr_assert(inv * g == 1, "no inverse of the hash's multiplier");
    uint64_t *in = malloc(n * 8), *ref = malloc(n * 8), *work = malloc(n * 8), vals[300];
    cr_assert(in && ref && work, "out of memory");
    uint64_t s = 0x57A1E;
    draw_values(HY_DT_U64, vals, COUNT(vals), &s);
    vals[0] = inv;
    vals[1] = 0;
    for (size_t i = 0; i < n; i++)
        in[i] = i < 2 ? vals[i] : vals[mix(&s) % COUNT(vals)];
    meet_all(HY_DT_U64, n, D_FEW, in, ref, work);
    free(in);
    free(ref);
    free(work);
}

/* Repeated values in arrays the small path takes (at most 2^17 keys; sort_radix.inc's
 * sort_small tries the dictionary on its own sample of at most 256 keys): 60 values, and
 * 60 values beside 2% unique elements, which fill a table of 1024 slots and spill. */
Test(sort, dict_values_small, .timeout = 240)
{
    const size_t sizes[] = {40000, 100003};
    char *in = malloc(100003 * 8), *ref = malloc(100003 * 8), *work = malloc(100003 * 8);
    uint64_t vals[60];
    cr_assert(in && ref && work, "out of memory");
    for (size_t d = 0; d < COUNT(all_dtypes); d++)
        for (size_t k = 0; k < COUNT(sizes); k++)
            for (unsigned tail = 0; tail < 2; tail++) {
                int dtype = all_dtypes[d];
                size_t size = hy_dtype_size(dtype), n = sizes[k];
                uint64_t s = (uint64_t)d << 8 ^ k << 4 ^ tail ^ 0x5A11;
                draw_values(dtype, vals, COUNT(vals), &s);
                for (size_t i = 0; i < n; i++) {
                    uint64_t r = mix(&s);
                    put(in, size, i,
                        tail && (r >> 32) % 50 == 0 ? random_bits(dtype, &s)
                                                    : vals[r % COUNT(vals)]);
                }
                meet_all(dtype, n, D_FEW, in, ref, work);
            }
    free(in);
    free(ref);
    free(work);
}

/* The sample sees few values, the array holds more, where the sample does not look (every
 * (n / 4096 + 1)-th element, as sort_radix.inc's parallel draws it). Values a full table
 * cannot take go to its spill, sorted apart and merged into the output: 4096 values the
 * sample never meets, beside 200 it does; the halves of the array each holding 6000 values
 * of their own beside 5000 shared ones, more than the tables take (16384 in all, shared
 * among the threads). Past half a thread's share the spill ends the count, and the sort
 * goes on by its other paths: 60% of the elements unique, beside 200 values. Every
 * output must be the reference's. */
Test(sort, dict_values_overflow, .timeout = 240)
{
    const size_t n = DICT_N, step = n / 4096 + 1;
    const int dtypes[] = {HY_DT_U64, HY_DT_F32};
    char *in = malloc(n * 8), *ref = malloc(n * 8), *work = malloc(n * 8);
    static uint64_t shared[5000], own[2][6000];
    cr_assert(in && ref && work, "out of memory");
    for (size_t d = 0; d < COUNT(dtypes); d++)
        for (unsigned shape = 0; shape < 3; shape++) {
            int dtype = dtypes[d];
            size_t size = hy_dtype_size(dtype);
            uint64_t s = (uint64_t)d << 8 ^ shape ^ 0x0F10;
            size_t nshared = shape == 1 ? 5000 : 200;
            draw_values(dtype, shared, nshared, &s);
            draw_values(dtype, own[0], 6000, &s);
            draw_values(dtype, own[1], 6000, &s);
            for (size_t i = 0; i < n; i++) {
                uint64_t r = mix(&s);
                uint64_t v = shared[r % nshared];
                if (shape == 0 && i % step == 1)
                    v = random_bits(dtype, &s);
                else if (shape == 1 && i % step != 0 && (r >> 32) % 2 == 0)
                    v = own[i >= n / 2][(r >> 33) % 6000];
                else if (shape == 2 && i % step != 0 && (r >> 32) % 10 < 6)
                    v = random_bits(dtype, &s);
                put(in, size, i, v);
            }
            meet_all(dtype, n, D_FEW, in, ref, work);
        }
    free(in);
    free(ref);
    free(work);
}

/* Integers with a narrow head and a long tail (sort_radix.inc's range_tail_set and
 * range_values): an inverse-square draw from the type's least value or from a base past
 * zero (P(value >= base + k) = 1/sqrt(k + 1): 1.6% of the elements past the range of
 * 4094 keys the head is counted in), with a few elements far below the head and at the
 * type's greatest value, which the spill takes on either side of the range; and a tail
 * where the top level's sample does not look (it takes every (n / 4096 + 1)-th element,
 * as sort_radix.inc's parallel draws it), 3% of the elements (spilled and merged) and 70%
 * (past half a thread's share the spill ends the count, and the sort goes on by its other
 * paths). The
 * small path (40009 keys) and the top level, on the path this CPU takes (count_tail_vec
 * where it has AVX-512) and on the portable one (count_tail), in the four configurations
 * of meet_all. */
static uint64_t tail_value(int dtype, uint64_t base, uint64_t r)
{
    double u = (double)((r >> 11) + 1) / 9007199254740992.0, k = 1.0 / (u * u) - 1.0;
    uint64_t top = hy_dtype_size(dtype) == 4 ? 0xFFFFFFFFu : ~(uint64_t)0;
    uint64_t room = top - base; /* as unsigned: how far base may go up */
    return base + (k < (double)room / 2 ? (uint64_t)k : room / 2);
}

static uint64_t float_bits(int dtype, double x)
{
    if (dtype == HY_DT_F64) {
        uint64_t b;
        memcpy(&b, &x, 8);
        return b;
    }
    float f = (float)x;
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

/* Element i of n of a tail case's `shape` (range_tail_counted's for integers,
 * grid_tail_counted's for floats), from the generator s. */
static uint64_t tail_element(int dtype, unsigned shape, size_t i, size_t n, uint64_t *s)
{
    size_t step = n / 4096 + 1;
    uint64_t r = mix(s);
    /* shapes 2 and 3: values past the head where the top level's sample does not look */
    bool far = shape >= 2 && i % step != 0 && (r & 0xFF) < (shape == 2 ? 8 : 179);
    if (dtype == HY_DT_F32 || dtype == HY_DT_F64) {
        bool wide = dtype == HY_DT_F64;
        uint64_t nan = wide ? 0x7FF8000000000000u : 0x7FC00000u; /* numpy's */
        const uint64_t odd[] = {float_bits(dtype, 0.3), float_bits(dtype, -0.0), nan | 5,
                                float_bits(dtype, INFINITY), float_bits(dtype, -INFINITY)};
        double u = (double)((r >> 11) + 1) / 9007199254740992.0, x = floor(1.0 / (u * u) - 1.0);
        if (far)
            return float_bits(dtype, 5000.0 + (double)((mix(s) >> 16) % 100000));
        /* numpy's NaN anywhere; the others where neither the top level's sample nor the
         * small path's (every (n / 256)-th) looks: a sampled one would rule the grid out */
        if (shape == 1 && (r & 0xFF) < 3)
            return (r >> 8) % 4 == 0 ? nan
                   : i % step != 0 && i % (n / 256) != 0 ? odd[(r >> 10) % COUNT(odd)]
                                                          : float_bits(dtype, x / 4 - 100);
        return float_bits(dtype, shape == 1 ? x / 4 - 100 : x);
    }
    bool wide = hy_dtype_size(dtype) == 8, sgn = dtype == HY_DT_I32 || dtype == HY_DT_I64;
    uint64_t sign = wide ? (uint64_t)1 << 63 : (uint64_t)1 << 31;
    uint64_t least = sgn ? sign : 0, top = wide ? ~(uint64_t)0 : 0xFFFFFFFFu;
    uint64_t base = shape == 0 ? least : 1000; /* shape 0: from the type's least value */
    if (far)
        return base + 5000 + (mix(s) >> 16) % 100000;
    if (shape == 1 && (r & 0xFF) == 0) /* below the head, and the greatest */
        return (r >> 8) & 1 ? (sgn ? sign - 1 : top) : least + (r >> 40) % 999;
    return tail_value(dtype, base, r);
}

/* Every shape of tail_element for these dtypes, at 40009 keys (the small path) and DICT_N,
 * in the four configurations of meet_all. */
static void tail_cases(const int *dtypes, size_t nd)
{
    const size_t sizes[] = {40009, DICT_N};
    char *in = malloc(DICT_N * 8), *ref = malloc(DICT_N * 8), *work = malloc(DICT_N * 8);
    cr_assert(in && ref && work, "out of memory");
    for (size_t d = 0; d < nd; d++)
        for (size_t k = 0; k < COUNT(sizes); k++)
            for (unsigned shape = 0; shape < 4; shape++) {
                int dtype = dtypes[d];
                size_t size = hy_dtype_size(dtype), n = sizes[k];
                uint64_t s = (uint64_t)dtype << 8 ^ k << 4 ^ shape;
                for (size_t i = 0; i < n; i++)
                    put(in, size, i, tail_element(dtype, shape, i, n, &s));
                meet_all(dtype, n, D_FEW, in, ref, work);
            }
    free(in);
    free(ref);
    free(work);
}

static void range_tail_cases(void)
{
    static const int dtypes[] = {HY_DT_I32, HY_DT_U32, HY_DT_I64, HY_DT_U64};
    tail_cases(dtypes, COUNT(dtypes));
}

TEST_BOTH_PATHS(range_tail_counted, range_tail_cases)


/* The same for floats on a grid with a tail (sort_radix.inc's grid_tail_set): the
 * inverse-square draw as integers (counts stored as floats) and as quarters of them (a
 * grid of 1/4, across zero from -100); with numpy's NaN among them (counted in its cell)
 * and, beside the tail past the grid's cells, elements the grid cannot hold in the middle
 * of its range (0.3, -0.0, another NaN, the infinities) where the samples do not look,
 * which the spill takes between the range's values; and a tail where the top level's
 * sample does not look (3% and 70%).
 * Small path and top level, both paths, every meet config. */
static void grid_tail_cases(void)
{
    static const int dtypes[] = {HY_DT_F32, HY_DT_F64};
    tail_cases(dtypes, COUNT(dtypes));
}

TEST_BOTH_PATHS(grid_tail_counted, grid_tail_cases)

/* Repeated values counted in a dictionary (dict_values), cancelled (cancel_counted): 300
 * values, then with 3% of the elements unique where the sample does not look, which go to
 * the tables' spill and are written between the values' runs. */
Test(sort, cancel_dict_values)
{
    size_t n = (size_t)1 << 20, step = n / 4096 + 1;
    uint64_t *in = calloc(n, 8), *ref = calloc(n, 8), *work = calloc(n, 8), vals[300];
    cr_assert(in && ref && work, "out of memory");
    uint64_t s = 0xCA;
    draw_values(HY_DT_F64, vals, 300, &s);
    for (int tail = 0; tail < 2; tail++) {
        for (size_t i = 0; i < n; i++) {
            uint64_t r = mix(&s);
            in[i] = tail && i % step != 0 && (r >> 32) % 100 < 3 ? random_bits(HY_DT_F64, &s)
                                                                 : vals[r % 300];
        }
        memcpy(ref, in, n * 8);
        reference_sort(HY_DT_F64, ref, n);
        cancel_counted(HY_DT_F64, in, ref, work, n, tail ? "values and a spill" : "few values");
    }
    free(in);
    free(ref);
    free(work);
}

/* One value that is a large share of the input (numpy's NaN for missing values, zeros, a
 * sentinel such as -1) makes its top-level bucket larger than a thread's private buffer:
 * one of that key alone is copied out as it is, one shared with other keys is sorted after
 * the other buckets, in its place in the output with tmp as scratch (sort_radix.inc's
 * finish_buckets and finish_big), split three ways around the heavy key (split3; the two
 * adjacent keys can take a split inside a split). Past the one-read path's least size on
 * every CPU, every dtype, four shapes (a fifth one value among random bits; 30% zeros among
 * small values; two adjacent values of 15% each; a fifth one value with a tenth just above
 * it), on one thread, two and three, and in replicate mode; then cancelled at points
 * through the sort, after which the array must still hold every element. */
static uint64_t heavy_bits(int dtype, unsigned shape, uint64_t *s)
{
    size_t size = hy_dtype_size(dtype);
    bool flt = dtype == HY_DT_F32 || dtype == HY_DT_F64;
    uint64_t r = mix(s) % 100, base = flt ? (size == 8 ? 0x3FF0000000000000u : 0x3F800000u)
                                          : (dtype == HY_DT_U32 || dtype == HY_DT_U64 ? 0 : ~(uint64_t)0);
    uint64_t nan = size == 8 ? 0x7FF8000000000000u : 0x7FC00000u;
    switch (shape) {
    case 0: /* a fifth NaN (floats) or -1 / 0 (integers) */
        return r < 20 ? (flt ? nan : base) : random_bits(dtype, s);
    case 1: { /* 30% zeros, the rest small values near them */
        if (r < 30)
            return 0;
        uint64_t v = mix(s) % 1000000;
        if (!flt)
            return v;
        double d = (double)v / 1000000;
        float f = (float)d;
        uint64_t b = 0;
        if (size == 8)
            memcpy(&b, &d, 8);
        else
            memcpy(&b, &f, 4);
        return b;
    }
    case 2: /* two adjacent keys (1.0 and the next float up; -1 and 0, or 0 and 1) */
        return r < 15 ? base : r < 30 ? base + 1 : random_bits(dtype, s);
    default: /* a fifth one key, a tenth spread over the 64 keys just above it */
        return r < 20 ? base + (flt ? 0 : 1000) : r < 30 ? base + 1000 * !flt + 1 + mix(s) % 64
                                                        : random_bits(dtype, s);
    }
}

Test(sort, heavy_keys, .timeout = 240)
{
    const size_t n = ((size_t)1 << 21) + 3;
    char *in = malloc(n * 8), *ref = malloc(n * 8), *work = malloc(n * 8);
    cr_assert(in && ref && work, "out of memory");
    for (size_t d = 0; d < COUNT(all_dtypes); d++)
        for (unsigned shape = 0; shape < 4; shape++) {
            size_t size = hy_dtype_size(all_dtypes[d]);
            uint64_t s = (uint64_t)d << 8 ^ shape;
            for (size_t i = 0; i < n; i++)
                put(in, size, i, heavy_bits(all_dtypes[d], shape, &s));
            meet_all(all_dtypes[d], n, D_RANDOM, in, ref, work);
        }
    free(in);
    free(ref);
    free(work);
}

Test(sort, cancel_heavy_keys, .timeout = 240)
{
    const size_t n = (size_t)1 << 22;
    const int dtypes[] = {HY_DT_I32, HY_DT_F64};
    char *in = malloc(n * 8), *ref = malloc(n * 8), *work = malloc(n * 8);
    cr_assert(in && ref && work, "out of memory");
    for (size_t d = 0; d < COUNT(dtypes); d++)
        for (unsigned shape = 0; shape < 4; shape += 3) {
            int dtype = dtypes[d];
            size_t size = hy_dtype_size(dtype);
            uint64_t s = (uint64_t)d << 8 ^ shape ^ 0x5A;
            for (size_t i = 0; i < n; i++)
                put(in, size, i, heavy_bits(dtype, shape, &s));
            memcpy(ref, in, n * size);
            reference_sort(dtype, ref, n);
            for (size_t k = 0; k < COUNT(all_cfgs); k++)
                for (unsigned when = 1; when <= 6; when++) {
                    const struct cfg *c = &all_cfgs[k];
                    memcpy(work, in, n * size);
                    struct progress_log log = {.cancel_past = (uint64_t)when * n / 2};
                    hy_run_opts o = {.backend = c->backend, .threads = c->threads,
                                     .mode = c->mode, .nogil = c->nogil,
                                     .progress = on_progress, .progress_ctx = &log};
                    hy_sort_result r;
                    hy_error err = {0};
                    int rc = hy_host_sort(eng, dtype, work, n, &o, &r, &err);
                    cr_assert(rc == 0 || rc == HY_ECANCELED, "sort returned %d (%s), " CASE_FMT,
                              rc, err.msg, CASE_ARGS(dtype, n, D_RANDOM, c));
                    cr_assert(!log.over_total && !log.bad_order,
                              "progress past its total or backwards, " CASE_FMT,
                              CASE_ARGS(dtype, n, D_RANDOM, c));
                    assert_whole(rc, dtype, work, ref, n, D_RANDOM, c,
                                 "after a cancelled sort with a heavy key, the array is not a "
                                 "permutation of the input");
                }
        }
    free(in);
    free(ref);
    free(work);
}

/* The engine's scratch outlives jobs: whatever a client does to its array during a sort,
 * no key of an earlier job may reach the output. A first job fills the scratch with keys of
 * [0xF0000000, 2^32); a second sorts in place an array with a heavy key (a bucket past the
 * LSD limit, which finish_big sorts) while a thread of the "client" keeps rewriting half of
 * it with keys below 2^20. Until the fix in finish_big (sorting from a private copy), the
 * unwritten tails of part-filled chunks reached the output in 1 try of 1 to 14. */
struct rewriter {
    uint32_t *a;
    size_t n;
    atomic_bool stop;
};

static void *rewrite(void *p)
{
    struct rewriter *wr = p;
    uint64_t s = 99;
    while (!atomic_load_explicit(&wr->stop, memory_order_relaxed))
        for (size_t i = 0; i < wr->n / 2; i++)
            __atomic_store_n(&wr->a[i], (uint32_t)(mix(&s) & 0xFFFFF), __ATOMIC_RELAXED);
    return NULL;
}

Test(sort, rewritten_input_takes_no_foreign_keys, .timeout = 240)
{
    const size_t n = ((size_t)1 << 21) + 3;
    uint32_t *work = malloc(n * 4);
    cr_assert(work, "out of memory");
    uint64_t s = 5;
    for (unsigned tries = 0; tries < 40; tries++) {
        for (size_t i = 0; i < n; i++)
            work[i] = 0xF0000000u | (uint32_t)(mix(&s) & 0x0FFFFFFF);
        hy_run_opts o = {.backend = HY_BACKEND_SERIAL, .threads = 1};
        hy_sort_result r;
        hy_error err = {0};
        cr_assert_eq(hy_host_sort(eng, HY_DT_U32, work, n, &o, &r, &err), 0, "%s", err.msg);
        for (size_t i = 0; i < n; i++) { /* a fifth 1000, a tenth 1001..1064 */
            uint64_t q = mix(&s) % 100;
            work[i] = q < 20 ? 1000u : q < 30 ? 1001u + (uint32_t)(mix(&s) % 64)
                                              : (uint32_t)(mix(&s) & 0x0FFFFFFF);
        }
        struct rewriter wr = {.a = work, .n = n};
        atomic_init(&wr.stop, false);
        pthread_t th;
        cr_assert_eq(pthread_create(&th, NULL, rewrite, &wr), 0, "pthread_create");
        int rc = hy_host_sort(eng, HY_DT_U32, work, n, &o, &r, &err);
        atomic_store(&wr.stop, true);
        pthread_join(th, NULL);
        size_t foreign = 0;
        for (size_t i = 0; i < n; i++)
            foreign += work[i] >= 0xF0000000u;
        cr_assert_eq(foreign, 0, "try %u: %zu keys of an earlier job in the output (rc %d)",
                     tries, foreign, rc);
    }
    free(work);
}

/* Few values are counted before anything is written (sort_radix.inc's few_values): a cancel
 * during the count leaves the array exactly as it was; a later one, sorted whole. On one
 * thread, and on two and three that count their shares and meet at a barrier. */
Test(sort, cancel_few_values_count)
{
    size_t n = (size_t)1 << 23;
    uint32_t *in = calloc(n, 4), *ref = calloc(n, 4), *work = calloc(n, 4);
    cr_assert(in && ref && work, "out of memory");
    make_case(HY_DT_U32, n, D_FEW, 5, in, ref, NULL);
    const struct cfg cfgs[] = {{HY_BACKEND_SERIAL, 1, HY_MODE_SPLIT, 0},
                               {HY_BACKEND_NATIVE, 2, HY_MODE_SPLIT, 0},
                               {HY_BACKEND_LOCKED, 3, HY_MODE_SPLIT, HY_NOGIL_HOLD}};
    for (unsigned from = 1; from <= 9; from++) {
        const struct cfg c = cfgs[from % COUNT(cfgs)];
        memcpy(work, in, n * 4);
        struct progress_log log = {.cancel_from = (from + 2) / 3};
        hy_run_opts o = {.backend = c.backend, .threads = c.threads, .mode = c.mode,
                         .nogil = c.nogil, .progress = on_progress, .progress_ctx = &log};
        hy_sort_result r;
        hy_error err = {0};
        int rc = hy_host_sort(eng, HY_DT_U32, work, n, &o, &r, &err);
        cr_assert(rc == 0 || rc == HY_ECANCELED, "sort returned %d (%s)", rc, err.msg);
        cr_assert(!log.bad_order && !log.over_total, "progress out of order or past total");
        if (rc == HY_ECANCELED && memcmp(work, in, n * 4) == 0)
            continue; /* cancelled while counting: untouched */
        assert_same_bytes(work, ref, HY_DT_U32, n, D_FEW, &c,
                          "a few-values sort cancelled after its count is not sorted whole");
    }
    free(in);
    free(ref);
    free(work);
}

Test(sort, cancel_f64) { cancel_case(HY_DT_F64, 1); }
Test(sort, cancel_i32) { cancel_case(HY_DT_I32, 1); }

Test(sort, progress_without_cancel)
{
    int dtype = HY_DT_I64;
    size_t size = hy_dtype_size(dtype), n = CANCEL_N;
    char *in = calloc(n, size), *ref = calloc(n, size), *work = calloc(n, size);
    cr_assert(in && ref && work, "out of memory");
    make_case(dtype, n, D_RANDOM, 11, in, ref, NULL);
    for (size_t k = 0; k < COUNT(all_cfgs); k++) {
        const struct cfg *c = &all_cfgs[k];
        memcpy(work, in, n * size);
        struct progress_log log = {0};
        hy_run_opts o = {.backend = c->backend, .threads = c->threads, .mode = c->mode,
                         .nogil = c->nogil, .progress = on_progress, .progress_ctx = &log};
        hy_sort_result r;
        hy_error err = {0};
        int rc = hy_host_sort(eng, dtype, work, n, &o, &r, &err);
        cr_assert_eq(rc, 0, "sort with progress returned %d (%s), " CASE_FMT, rc, err.msg,
                     CASE_ARGS(dtype, n, D_RANDOM, c));
        cr_assert(!log.bad_order && !log.over_total && !log.total_changed,
                  "progress: decreasing %d, done > total %d, total changed %d, " CASE_FMT,
                  log.bad_order, log.over_total, log.total_changed,
                  CASE_ARGS(dtype, n, D_RANDOM, c));
        assert_same_bytes(work, ref, dtype, n, D_RANDOM, c, "sort with a progress callback");
        check_stats(&r.stats, c, dtype, n, D_RANDOM);
    }
    free(in);
    free(ref);
    free(work);
}

/* ---- stats ---- */

Test(sort, stats)
{
    enum { N = 100003 };
    static double a[N];
    for (size_t k = 0; k < COUNT(all_cfgs); k++) {
        const struct cfg *c = &all_cfgs[k];
        uint64_t s = 5;
        for (size_t i = 0; i < N; i++)
            a[i] = (double)(mix(&s) >> 11);
        hy_run_opts o = {.backend = c->backend, .threads = c->threads, .mode = c->mode,
                         .nogil = c->nogil};
        hy_sort_result r;
        hy_error err = {0};
        int rc = hy_host_sort(eng, HY_DT_F64, a, N, &o, &r, &err);
        cr_assert_eq(rc, 0, "sort: %d %s", rc, err.msg);
        check_stats(&r.stats, c, HY_DT_F64, N, D_RANDOM);
        cr_assert_gt(r.stats.wall_ns, 0, "wall_ns is 0, " CASE_FMT,
                     CASE_ARGS(HY_DT_F64, (size_t)N, D_RANDOM, c));
        for (unsigned t = c->threads; t < HY_HOST_MAX_THREADS; t++)
            cr_assert_eq(r.stats.busy_ns[t], 0, "busy_ns[%u] of an unused thread, " CASE_FMT,
                         t, CASE_ARGS(HY_DT_F64, (size_t)N, D_RANDOM, c));
    }
}

/* Sorts the n 32-bit keys at orig on 1 thread (serial) and 2 (native, split) and asserts
 * each result equals qsort's; `what` names the case in a failure. */
static void assert_u32_sorts(const uint32_t *orig, size_t n, const char *what)
{
    uint32_t *a = malloc(n * sizeof *a), *ref = malloc(n * sizeof *ref);
    cr_assert(a && ref, "out of memory for %zu keys", n);
    memcpy(ref, orig, n * sizeof *ref);
    qsort(ref, n, sizeof *ref, cmp_u32);
    for (unsigned t = 1; t <= 2; t++) {
        memcpy(a, orig, n * sizeof *a);
        hy_run_opts o = {.backend = t == 1 ? HY_BACKEND_SERIAL : HY_BACKEND_NATIVE,
                         .threads = t, .mode = HY_MODE_SPLIT};
        hy_sort_result r;
        hy_error err = {0};
        int rc = hy_host_sort(eng, HY_DT_U32, a, n, &o, &r, &err);
        cr_assert_eq(rc, 0, "sort: %d %s", rc, err.msg);
        cr_assert(memcmp(a, ref, n * sizeof *a) == 0, "%s keys out of order on %u thread(s)",
                  what, t);
    }
    free(a);
    free(ref);
}

/* The large path's buckets finished with the window (32-bit keys, sort_radix.inc's
 * lsd_window): in each bucket most keys sit in a 2^12-wide cluster and every 997th key far
 * above it, so the bucket's span puts the cluster into a few of the window's bins, whose
 * insertion sorts run out of budget and hand the bucket back to the radix passes. Spread
 * keys take the window itself. Both must match qsort on every thread count. */
Test(sort, bucket_window_and_its_fallback, .timeout = 120)
{
    cr_assert_eq(setenv("HYBRIDD_TEST_SORT_NO_QS", "1", 1), 0); /* the radix paths */
    enum { N = 1 << 20 };
    static uint32_t orig[N];
    for (int crowded = 0; crowded <= 1; crowded++) {
        uint64_t s = 21 + (uint64_t)crowded;
        for (size_t i = 0; i < N; i++) {
            uint32_t high = (uint32_t)(mix(&s) >> 55) << 22; /* 512 clusters */
            uint32_t low = crowded ? (i % 997 == 0 ? 0x3FFFFFu : (uint32_t)mix(&s) & 0xFFFu)
                                   : (uint32_t)mix(&s) & 0x3FFFFFu;
            orig[i] = high | low;
        }
        assert_u32_sorts(orig, N, crowded ? "crowded" : "spread");
    }
}

/* The large path's 32-bit buckets, whose window bins the gather counts from the bucket
 * function's bounds of each bucket (sort_radix.inc's bins_plan): keys that fill only the
 * low half of each bucket's range need a bit fewer than the bounds say, so the counts are
 * set aside and counted again; keys in only the high half start above the bounds' base,
 * and the counts serve. Each bucket here is 2^23 keys wide (512 of them over 2^32). */
Test(sort, bucket_bins_counted_while_gathering, .timeout = 120)
{
    cr_assert_eq(setenv("HYBRIDD_TEST_SORT_NO_QS", "1", 1), 0); /* the radix paths */
    enum { N = 1 << 20 };
    static uint32_t orig[N];
    for (int high = 0; high <= 1; high++) {
        uint64_t s = 31 + (uint64_t)high;
        for (size_t i = 0; i < N; i++) {
            uint32_t bucket = (uint32_t)(i % 512) << 23;
            orig[i] = bucket | (high ? 0x400000u : 0) | ((uint32_t)mix(&s) & 0x3FFFFFu);
        }
        for (size_t i = N - 1; i > 0; i--) { /* shuffled, so no bucket is a sorted run */
            size_t j = (size_t)(mix(&s) % (i + 1));
            uint32_t x = orig[i];
            orig[i] = orig[j];
            orig[j] = x;
        }
        orig[0] = 0; /* sampled: the bucket function's least key, so buckets start at 0 */
        assert_u32_sorts(orig, N, high ? "high-half" : "low-half");
    }
}

/* A native sort the engine finishes on one thread (up to 2^15 keys on every CPU) runs on the
 * calling thread with the pool left asleep: thread 0 has all the busy time and thread 1
 * none, where a woken thread 1 would have spent some returning. A larger one still runs on
 * both threads. Both come out in order. */
Test(sort, small_native_sort_wakes_no_pool_thread)
{
    static const size_t sizes[] = {20000, (size_t)1 << 20};
    for (size_t k = 0; k < COUNT(sizes); k++) {
        size_t n = sizes[k];
        double *a = malloc(n * sizeof *a), *ref = malloc(n * sizeof *ref);
        cr_assert(a && ref);
        uint64_t s = 11;
        for (size_t i = 0; i < n; i++)
            a[i] = (double)(mix(&s) >> 11) - 0x1p52;
        memcpy(ref, a, n * sizeof *a);
        qsort(ref, n, sizeof *ref, cmp_f64);
        hy_run_opts o = {.backend = HY_BACKEND_NATIVE, .threads = 2, .mode = HY_MODE_SPLIT};
        hy_sort_result r;
        hy_error err = {0};
        int rc = hy_host_sort(eng, HY_DT_F64, a, n, &o, &r, &err);
        cr_assert_eq(rc, 0, "sort of %zu: %d %s", n, rc, err.msg);
        cr_assert(memcmp(a, ref, n * sizeof *a) == 0, "%zu keys out of order", n);
        cr_assert_eq(r.stats.threads, 2);
        cr_assert_gt(r.stats.busy_ns[0], 0, "thread 0 idle on %zu keys", n);
        if (n <= 20000)
            cr_assert_eq(r.stats.busy_ns[1], 0, "a pool thread woke for %zu keys", n);
        else
            cr_assert_gt(r.stats.busy_ns[1], 0, "thread 1 idle on %zu keys", n);
        free(a);
        free(ref);
    }
}

/* hy_host_sort_to: the same bytes as the in-place sort, the source left as it was, on every
 * dtype and both thread counts; overlapping arrays and replicate mode refused. */
Test(sort, sort_to_another_array)
{
    const int dtypes[] = {HY_DT_I32, HY_DT_U32, HY_DT_I64, HY_DT_U64, HY_DT_F32, HY_DT_F64};
    /* 300007: past the small path, where the quicksort's first level reads the source
     * and partitions its keys straight into the output (sort_qs.inc's qs_sort_from). */
    const size_t ns[] = {0, 1, 2, 1000, 100003, 300007};
    for (size_t d = 0; d < 6; d++) {
        size_t size = hy_dtype_size(dtypes[d]);
        for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
            size_t n = ns[k], bytes = n * size;
            char *in = malloc(bytes + 8), *keep = malloc(bytes + 8), *want = malloc(bytes + 8),
                 *got = malloc(bytes + 8);
            cr_assert(in && keep && want && got);
            make_case(dtypes[d], n, D_SPECIAL, 77 + k, in, want, NULL);
            memcpy(keep, in, bytes);
            memcpy(want, in, bytes);
            for (unsigned t = 1; t <= 2; t++) {
                hy_run_opts o = {.backend = t == 1 ? HY_BACKEND_SERIAL : HY_BACKEND_NATIVE,
                                 .threads = t};
                hy_sort_result r;
                hy_error e = {0};
                if (t == 1)
                    cr_assert_eq(hy_host_sort(eng, dtypes[d], want, n, &o, &r, &e), 0, "%s",
                                 e.msg);
                memset(got, 0xA5, bytes);
                cr_assert_eq(hy_host_sort_to(eng, dtypes[d], in, got, n, &o, &r, &e), 0,
                             "%s n %zu T %u: %s", hy_dtype_name(dtypes[d]), n, t, e.msg);
                cr_expect(bytes == 0 || memcmp(got, want, bytes) == 0,
                          "%s n %zu T %u: not the in-place sort's bytes",
                          hy_dtype_name(dtypes[d]), n, t);
                cr_expect(bytes == 0 || memcmp(in, keep, bytes) == 0,
                          "%s n %zu T %u: the source was written", hy_dtype_name(dtypes[d]),
                          n, t);
            }
            /* Sorted and reversed sources are copied or reversed, not sorted: the same
             * bytes (equal keys are equal bytes). */
            if (n >= 2) {
                char *rev = keep;
                for (size_t i = 0; i < n; i++)
                    memcpy(rev + i * size, want + (n - 1 - i) * size, size);
                hy_run_opts o = {.backend = HY_BACKEND_SERIAL, .threads = 1};
                hy_sort_result r;
                hy_error e = {0};
                for (int pass = 0; pass < 2; pass++) {
                    memset(got, 0xA5, bytes);
                    cr_assert_eq(hy_host_sort_to(eng, dtypes[d], pass ? rev : want, got, n, &o,
                                                 &r, &e),
                                 0, "%s", e.msg);
                    cr_expect(memcmp(got, want, bytes) == 0, "%s n %zu: the %s source sorted",
                              hy_dtype_name(dtypes[d]), n, pass ? "reversed" : "sorted");
                }
            }
            free(in);
            free(keep);
            free(want);
            free(got);
        }
    }
    double a[64] = {0};
    hy_run_opts o = {.backend = HY_BACKEND_NATIVE, .threads = 2};
    hy_sort_result r;
    hy_error e = {0};
    cr_expect_eq(hy_host_sort_to(eng, HY_DT_F64, a, a + 8, 32, &o, &r, &e), HY_EINVAL);
    cr_expect(strstr(e.msg, "overlap") != NULL, "%s", e.msg);
    o.mode = HY_MODE_REPLICATE;
    cr_expect_eq(hy_host_sort_to(eng, HY_DT_F64, a, a + 32, 32, &o, &r, &e), HY_EINVAL);
    /* The same array is an in-place sort. */
    o.mode = HY_MODE_SPLIT;
    for (int i = 0; i < 32; i++)
        a[i] = 31 - i;
    cr_expect_eq(hy_host_sort_to(eng, HY_DT_F64, a, a, 32, &o, &r, &e), 0, "%s", e.msg);
    cr_expect(a[0] == 0 && a[31] == 31);
}
