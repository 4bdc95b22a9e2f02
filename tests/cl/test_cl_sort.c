/* tests/cl: hy_cl_sort - every dtype, size and distribution byte for byte against the CPU
 * engine's serial sort; bad arguments, size limits, cancellation, and the timing breakdown. */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl.h"
#include "host.h"

#include "devices.h"
#include "pocl_env.h"

/* ---- fixture: one hy_cl and a small CPU engine per test ---- */

static hy_cl *cl;
static hy_host *host;
/* Devices that refuse every sort because their work-groups are smaller than the variant's
 * sort needs (the GPU variant's sizes itself to the device and refuses below 16 work-items,
 * which no PoCL cap in tests/cl/CMakeLists reaches: there this list stays empty). */
static unsigned refused[TEST_DEVICES_MAX], nrefused;

/* A refusal must be HY_EBACKEND and true: it names the kernel's largest work-group, no more
 * than the device's, and a need above it. */
static void check_refusal(const hy_cl_device_info *in, int rc, const hy_error *err)
{
    cr_assert_eq(rc, HY_EBACKEND, "device %u: sort failed: %d %s", in->index, rc, err->msg);
    const char *at = strstr(err->msg, "work-groups of at most ");
    cr_assert_not_null(at, "device %u refused the sort without naming a limit: %s", in->index,
                       err->msg);
    size_t most = 0, need = 0;
    cr_assert_eq(sscanf(at, "work-groups of at most %zu; it needs %zu", &most, &need), 2,
                 "device %u: the refusal does not say what it needs: %s", in->index, err->msg);
    cr_assert_leq(most, in->max_work_group, "device %u: %s", in->index, err->msg);
    cr_assert_gt(need, most, "device %u refused although it has what it needs: %s", in->index,
                 err->msg);
}

/* A device takes the sort tests unless it refuses the job outright, truly (check_refusal). */
static bool sorts_here(unsigned index, const hy_cl_device_info *in)
{
    uint32_t a[3] = {3, 1, 2};
    hy_cl_sort_result r;
    hy_error err = {0};
    int rc = hy_cl_sort(cl, &(hy_cl_opts){.device = index}, HY_DT_U32, a, 3, &r, &err);
    if (rc == 0) {
        cr_assert(a[0] == 1 && a[1] == 2 && a[2] == 3, "device %u: 3 elements unsorted", index);
        return true;
    }
    check_refusal(in, rc, &err);
    cr_assert(a[0] == 3 && a[1] == 1 && a[2] == 2, "device %u: a refused sort touched the array",
              index);
    refused[nrefused++] = index;
    return false;
}

static void up(void)
{
    pocl_cache_for_run(); /* one PoCL cache per run, shared by its test processes */
    hy_error err = {0};
    int rc = hy_cl_open(&(hy_cl_config){0}, &cl, &err);
    cr_assert_eq(rc, 0, "hy_cl_open: %d %s", rc, err.msg);
    nrefused = 0;
    find_devices(cl, sorts_here);
    rc = hy_host_create(&(hy_host_config){.threads = 2}, &host, &err);
    cr_assert_eq(rc, 0, "hy_host_create: %d %s", rc, err.msg);
}

static void down(void)
{
    hy_cl_close(cl);
    cl = NULL;
    hy_host_destroy(host);
    host = NULL;
}

TestSuite(cl_sort, .init = up, .fini = down, .timeout = 300);

/* ---- a deterministic generator: splitmix64 ---- */

static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

/* ---- test data ---- */

enum dist { D_RANDOM, D_SORTED, D_REVERSED, D_EQUAL, D_SPECIAL, D_NARROW, D_COUNT };
static const char *const dist_names[D_COUNT] = {"random", "sorted", "reversed",
                                                "all-equal", "specials", "narrow"};

static void put(void *buf, size_t size, size_t i, uint64_t bits)
{
    if (size == 4) {
        uint32_t v = (uint32_t)bits;
        memcpy((char *)buf + i * 4, &v, 4);
    } else {
        memcpy((char *)buf + i * 8, &bits, 8);
    }
}

static uint64_t get(const void *buf, size_t size, size_t i)
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

/* Random bits: ints over their whole range; floats half from raw bit patterns (every
 * exponent, denormals, infinities and NaNs), half ordinary values with ties. */
static uint64_t random_bits(int dtype, uint64_t *s)
{
    uint64_t r = mix(s);
    if (dtype == HY_DT_F32 && (r & 1) == 0) {
        float f = (float)((int64_t)((r >> 8) % 2000001u) - 1000000) / 8.0f;
        uint32_t b;
        memcpy(&b, &f, 4);
        return b;
    }
    if (dtype == HY_DT_F64 && (r & 1) == 0) {
        double d = (double)((int64_t)((r >> 8) % 20000001u) - 10000000) / 64.0;
        uint64_t b;
        memcpy(&b, &d, 8);
        return b;
    }
    return mix(s);
}

static const uint64_t special_f32[] = {
    0x7FC00000u, 0x7F800001u, 0x7FFFFFFFu, 0x7FA00123u, /* +NaN: quiet, signalling, payloads */
    0xFFC00000u, 0xFF800001u, 0xFFFFFFFFu, 0xFFA00123u, /* -NaN */
    0x7F800000u, 0xFF800000u,                           /* +inf, -inf */
    0x00000000u, 0x80000000u,                           /* +0.0, -0.0 */
    0x00000001u, 0x007FFFFFu, 0x80000001u, 0x807FFFFFu, /* denormals */
    0x7F7FFFFFu, 0xFF7FFFFFu, 0x3F800000u, 0xBF800000u, /* +-FLT_MAX, +-1.0 */
};
static const uint64_t special_f64[] = {
    0x7FF8000000000000u, 0x7FF0000000000001u, 0x7FFFFFFFFFFFFFFFu, 0x7FF4000000000123u,
    0xFFF8000000000000u, 0xFFF0000000000001u, 0xFFFFFFFFFFFFFFFFu, 0xFFF4000000000123u,
    0x7FF0000000000000u, 0xFFF0000000000000u, 0x0000000000000000u, 0x8000000000000000u,
    0x0000000000000001u, 0x000FFFFFFFFFFFFFu, 0x8000000000000001u, 0x800FFFFFFFFFFFFFu,
    0x7FEFFFFFFFFFFFFFu, 0xFFEFFFFFFFFFFFFFu, 0x3FF0000000000000u, 0xBFF0000000000000u,
};
/* INT_MIN, INT_MAX, 0, -1 (UINT_MAX's bits), and their neighbours, in both widths. */
static const uint64_t special_i32[] = {0x80000000u, 0x7FFFFFFFu, 0u, 0xFFFFFFFFu,
                                       0x80000001u, 0x7FFFFFFEu, 1u};
static const uint64_t special_i64[] = {0x8000000000000000u, 0x7FFFFFFFFFFFFFFFu, 0u,
                                       0xFFFFFFFFFFFFFFFFu, 0x8000000000000001u,
                                       0x7FFFFFFFFFFFFFFEu, 1u,
                                       0xFFFFFFFF80000000u, 0x7FFFFFFFu};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* A special value; for floats sometimes a NaN with a random payload and sign. */
static uint64_t special_bits(int dtype, uint64_t *s)
{
    uint64_t r = mix(s);
    switch (dtype) {
    case HY_DT_I32:
    case HY_DT_U32: return special_i32[r % COUNT(special_i32)];
    case HY_DT_I64:
    case HY_DT_U64: return special_i64[r % COUNT(special_i64)];
    case HY_DT_F32:
        if ((r & 7) == 0)
            return 0x7F800000u | (((r >> 32) & 0x007FFFFFu) | 1u) | ((r >> 8) & 0x80000000u);
        return special_f32[(r >> 3) % COUNT(special_f32)];
    default:
        if ((r & 7) == 0)
            return 0x7FF0000000000000u | ((mix(s) & 0x000FFFFFFFFFFFFFu) | 1u) |
                   (r & 0x8000000000000000u);
        return special_f64[(r >> 3) % COUNT(special_f64)];
    }
}

/* Values that differ only in a few middle bits: the sort's lowest and highest digits are
 * the same in every key, so those passes are skipped (and the first pass that runs is not
 * the first digit's). */
static uint64_t narrow_bits(int dtype, uint64_t *s)
{
    uint64_t r = mix(s) % 1000;
    if (dtype == HY_DT_F32) {
        float f = (float)r - 500.0f; /* small integers: the low mantissa bits are zero */
        uint32_t b;
        memcpy(&b, &f, 4);
        return b;
    }
    if (dtype == HY_DT_F64) {
        double d = (double)r * 0.25 - 100.0;
        uint64_t b;
        memcpy(&b, &d, 8);
        return b;
    }
    return (r << 12) - (dtype == HY_DT_I32 || dtype == HY_DT_I64 ? (500u << 12) : 0);
}

/* Fills `in` with the distribution; `ref` gets the CPU engine's serial sort of it. */
static void make_case(int dtype, size_t n, int dist, uint64_t seed, void *in, void *ref)
{
    size_t size = hy_dtype_size(dtype);
    uint64_t s = seed;
    uint64_t v = random_bits(dtype, &s);
    for (size_t i = 0; i < n; i++) {
        switch (dist) {
        case D_EQUAL: put(in, size, i, v); break;
        case D_SPECIAL:
            put(in, size, i, (mix(&s) & 3) ? special_bits(dtype, &s) : random_bits(dtype, &s));
            break;
        case D_NARROW: put(in, size, i, narrow_bits(dtype, &s)); break;
        default: put(in, size, i, random_bits(dtype, &s)); break;
        }
    }
    if (n > 0)
        memcpy(ref, in, n * size);
    hy_run_opts o = {.backend = HY_BACKEND_SERIAL, .threads = 1};
    hy_sort_result hr;
    hy_error err = {0};
    int rc = hy_host_sort(host, dtype, ref, n, &o, &hr, &err);
    cr_assert_eq(rc, 0, "reference hy_host_sort: %d %s", rc, err.msg);
    if (dist == D_SORTED && n > 0) {
        memcpy(in, ref, n * size);
    } else if (dist == D_REVERSED) {
        for (size_t i = 0; i < n; i++)
            memcpy((char *)in + i * size, (const char *)ref + (n - 1 - i) * size, size);
    }
}

static int sort_on_device(int dtype, void *a, size_t n, hy_cl_sort_result *r, hy_error *err)
{
    hy_cl_opts o = {.device = dev};
    return hy_cl_sort(cl, &o, dtype, a, n, r, err);
}

static void check_case(int dtype, size_t n, int dist, void *in, void *ref)
{
    size_t size = hy_dtype_size(dtype);
    make_case(dtype, n, dist, 0x5EED0000u + n * 31u + (uint64_t)dist * 7u + (uint64_t)dtype, in,
              ref);
    hy_cl_sort_result r;
    hy_error err = {0};
    int rc = sort_on_device(dtype, in, n, &r, &err);
    cr_assert_eq(rc, 0, "hy_cl_sort %s n=%zu %s: %d %s", hy_dtype_name(dtype), n,
                 dist_names[dist], rc, err.msg);
    cr_assert_eq(r.n, n, "result n %zu for %zu", r.n, n);
    if (n == 0 || memcmp(in, ref, n * size) == 0)
        return;
    size_t i = 0;
    while (get(in, size, i) == get(ref, size, i))
        i++;
    cr_assert_fail("%s n=%zu %s: first difference at [%zu]: got 0x%" PRIx64 ", want 0x%" PRIx64,
                   hy_dtype_name(dtype), n, dist_names[dist], i, get(in, size, i),
                   get(ref, size, i));
}

static const size_t sizes[] = {0, 1, 3, 1009, (1u << 20) + 3, 1000000};

static void sweep(int dtype)
{
    size_t size = hy_dtype_size(dtype);
    size_t most = (1u << 20) + 3;
    char *in = malloc(most * size), *ref = malloc(most * size);
    cr_assert(in && ref, "out of memory");
    for (size_t k = 0; k < COUNT(sizes); k++)
        for (int dist = 0; dist < D_COUNT; dist++)
            check_case(dtype, sizes[k], dist, in, ref);
    free(in);
    free(ref);
}

DEVICE_TEST(cl_sort, matches_engine_i32) { sweep(HY_DT_I32); }
DEVICE_TEST(cl_sort, matches_engine_u32) { sweep(HY_DT_U32); }
DEVICE_TEST(cl_sort, matches_engine_i64) { sweep(HY_DT_I64); }
DEVICE_TEST(cl_sort, matches_engine_u64) { sweep(HY_DT_U64); }
DEVICE_TEST(cl_sort, matches_engine_f32) { sweep(HY_DT_F32); }
DEVICE_TEST(cl_sort, matches_engine_f64) { sweep(HY_DT_F64); }

/* Every size from 2 to 300, so block and launch edges fall everywhere. */
DEVICE_TEST(cl_sort, small_sizes)
{
    char in[300 * 8], ref[300 * 8];
    for (size_t n = 2; n <= 300; n += 1 + n / 40) {
        check_case(HY_DT_F32, n, D_SPECIAL, in, ref);
        check_case(HY_DT_I64, n, D_RANDOM, in, ref);
    }
}

/* Large, with many blocks in either variant and a short last block. */
DEVICE_TEST(cl_sort, large_array)
{
    size_t n = (size_t)9 << 20 | 12345;
    char *in = malloc(n * 8), *ref = malloc(n * 8);
    cr_assert(in && ref, "out of memory");
    check_case(HY_DT_F32, n, D_RANDOM, in, ref);
    check_case(HY_DT_U64, n, D_SPECIAL, in, ref);
    free(in);
    free(ref);
}

/* ---- errors; after each, a good sort still works ---- */

static void good_sort_works(void)
{
    char in[1009 * 8], ref[1009 * 8];
    check_case(HY_DT_F64, 1009, D_SPECIAL, in, ref);
}

DEVICE_TEST(cl_sort, bad_dtype)
{
    float a[4] = {3, 2, 1, 0};
    hy_cl_sort_result r;
    hy_error err = {0};
    int rc = sort_on_device(99, a, 4, &r, &err);
    cr_assert_eq(rc, HY_EDTYPE, "dtype 99: %d %s", rc, err.msg);
    cr_assert(err.msg[0], "no message");
    rc = sort_on_device(0, a, 4, &r, &err);
    cr_assert_eq(rc, HY_EDTYPE, "dtype 0: %d %s", rc, err.msg);
    cr_assert(a[0] == 3 && a[3] == 0, "array touched");
    good_sort_works();
}

DEVICE_TEST(cl_sort, null_data)
{
    hy_cl_sort_result r;
    hy_error err = {0};
    int rc = sort_on_device(HY_DT_I32, NULL, 5, &r, &err);
    cr_assert_eq(rc, HY_EINVAL, "NULL data: %d %s", rc, err.msg);
    cr_assert(err.msg[0], "no message");
    /* Nothing to sort needs no array. */
    rc = sort_on_device(HY_DT_I32, NULL, 0, &r, &err);
    cr_assert_eq(rc, 0, "NULL data, n = 0: %d %s", rc, err.msg);
    good_sort_works();
}

DEVICE_TEST(cl_sort, no_such_device)
{
    uint32_t a[3] = {3, 1, 2};
    hy_cl_sort_result r;
    hy_error err = {0};
    int rc = hy_cl_sort(cl, &(hy_cl_opts){.device = 999}, HY_DT_U32, a, 3, &r, &err);
    cr_assert_lt(rc, 0, "device 999 accepted");
    cr_assert(err.msg[0], "no message for device 999");
    cr_assert(a[0] == 3 && a[1] == 1 && a[2] == 2, "array touched");
    good_sort_works();
}

/* Beyond the device's largest buffer: refused by arithmetic alone, before any memory is
 * touched (the pointer is to a few elements only), with the limit in the message. */
DEVICE_TEST(cl_sort, beyond_device_memory)
{
    uint64_t dummy[4] = {0};
    char limit[32];
    snprintf(limit, sizeof limit, "%" PRIu64, dev_info.max_alloc);
    struct {
        int dtype;
        size_t n;
    } cases[] = {
        {HY_DT_F64, SIZE_MAX / 16},
        {HY_DT_U32, SIZE_MAX},
        {HY_DT_F32, (size_t)(dev_info.max_alloc / 4 + 1)},
        {HY_DT_I64, (size_t)(dev_info.max_alloc / 8 + 1)},
    };
    for (size_t k = 0; k < COUNT(cases); k++) {
        hy_cl_sort_result r;
        hy_error err = {0};
        int rc = sort_on_device(cases[k].dtype, dummy, cases[k].n, &r, &err);
        cr_assert_eq(rc, HY_ELIMIT, "%s n=%zu: %d %s", hy_dtype_name(cases[k].dtype),
                     cases[k].n, rc, err.msg);
        cr_assert(strstr(err.msg, limit), "message does not name the limit %s: %s", limit,
                  err.msg);
    }
    good_sort_works();
}

/* ---- progress and cancellation ---- */

struct watch {
    unsigned calls, cancel_at;
    uint64_t last_done, total;
    bool backwards;
};

static int watch_progress(void *ctx, uint64_t done, uint64_t total)
{
    struct watch *w = ctx;
    if (done < w->last_done || done > total || (w->calls && total != w->total))
        w->backwards = true;
    w->last_done = done;
    w->total = total;
    return ++w->calls == w->cancel_at;
}

DEVICE_TEST(cl_sort, cancel_leaves_array_untouched)
{
    size_t n = 1u << 20;
    float *a = malloc(n * sizeof *a), *copy = malloc(n * sizeof *copy);
    cr_assert(a && copy, "out of memory");
    uint64_t s = 7;
    for (size_t i = 0; i < n; i++)
        a[i] = (float)(mix(&s) >> 40);
    memcpy(copy, a, n * sizeof *a);
    /* Cancel at the first report, and again at a later one, mid-way through the passes. */
    unsigned at[] = {1, 3};
    for (size_t k = 0; k < COUNT(at); k++) {
        struct watch w = {.cancel_at = at[k]};
        hy_cl_opts o = {.device = dev, .progress = watch_progress, .progress_ctx = &w};
        hy_cl_sort_result r;
        hy_error err = {0};
        int rc = hy_cl_sort(cl, &o, HY_DT_F32, a, n, &r, &err);
        cr_assert_eq(rc, HY_ECANCELED, "cancel at report %u: %d %s", at[k], rc, err.msg);
        cr_assert(err.msg[0], "no message");
        cr_assert_eq(w.calls, at[k], "progress called %u times after cancelling at %u", w.calls,
                     at[k]);
        cr_assert(memcmp(a, copy, n * sizeof *a) == 0, "array changed by a cancelled sort");
    }
    free(a);
    free(copy);
    good_sort_works();
}

DEVICE_TEST(cl_sort, progress_and_timing)
{
    size_t n = 1000000;
    double *a = malloc(n * sizeof *a), *ref = malloc(n * sizeof *ref);
    cr_assert(a && ref, "out of memory");
    make_case(HY_DT_F64, n, D_RANDOM, 11, a, ref);
    struct watch w = {0};
    hy_cl_opts o = {.device = dev, .progress = watch_progress, .progress_ctx = &w};
    hy_cl_sort_result r;
    hy_error err = {0};
    int rc = hy_cl_sort(cl, &o, HY_DT_F64, a, n, &r, &err);
    cr_assert_eq(rc, 0, "%d %s", rc, err.msg);
    cr_assert(memcmp(a, ref, n * sizeof *a) == 0, "output differs from the engine's");
    cr_assert_gt(w.calls, 0, "progress never called");
    cr_assert(!w.backwards, "progress went backwards, past its total or changed total");
    const hy_cl_timing *t = &r.timing;
    cr_assert_geq(t->launches, 1, "launches %u", t->launches);
    cr_assert(t->h2d_ns > 0 && t->kernel_ns > 0 && t->d2h_ns > 0,
              "h2d %" PRIu64 " kernel %" PRIu64 " d2h %" PRIu64 " ns", t->h2d_ns, t->kernel_ns,
              t->d2h_ns);
    cr_assert_geq(t->wall_ns, t->kernel_ns, "wall %" PRIu64 " < kernel %" PRIu64 " ns",
                  t->wall_ns, t->kernel_ns);
    free(a);
    free(ref);
}

/* Passes and launches (docs/opencl.md, issue 17's targets): random u32 keys differ in
 * every digit, so every digit pass runs. The GPU variant makes one histogram pass, then 4
 * (u32) or 8 (f64) digit passes of one launch each (Onesweep); the CPU variant's
 * 11-bit digits take 3 (u32) or 6 (f64) passes of 3 launches, the first count doubling as
 * the bounds pass. */
DEVICE_TEST(cl_sort, passes_and_launches)
{
    size_t n = 300000;
    char *in = malloc(n * 8), *ref = malloc(n * 8);
    cr_assert(in && ref, "out of memory");
    static const int dtypes[] = {HY_DT_U32, HY_DT_F64};
    for (size_t k = 0; k < COUNT(dtypes); k++) {
        make_case(dtypes[k], n, D_RANDOM, 7 + k, in, ref);
        hy_cl_sort_result r;
        hy_error err = {0};
        int rc = hy_cl_sort(cl, &(hy_cl_opts){.device = dev}, dtypes[k], in, n, &r, &err);
        cr_assert_eq(rc, 0, "%d %s", rc, err.msg);
        cr_assert(memcmp(in, ref, n * hy_dtype_size(dtypes[k])) == 0,
                  "%s output differs from the engine's", hy_dtype_name(dtypes[k]));
        unsigned bits = hy_dtype_size(dtypes[k]) * 8;
        unsigned digits = dev_info.gpu_variant ? bits / 8 : (bits + 10) / 11;
        unsigned passes = dev_info.gpu_variant ? digits + 1 : digits;
        cr_assert_eq(r.timing.passes, passes, "%s: %u passes, expected %u",
                     hy_dtype_name(dtypes[k]), r.timing.passes, passes);
        unsigned launches = dev_info.gpu_variant ? 1 + digits : 3 * digits;
        cr_assert_eq(r.timing.launches, launches, "%s: %u launches, expected %u",
                     hy_dtype_name(dtypes[k]), r.timing.launches, launches);
        /* The array in and back, and the small tables beside it: at least twice the array,
         * and not a third time. */
        uint64_t bytes = (uint64_t)n * hy_dtype_size(dtypes[k]);
        cr_expect_geq(r.timing.bytes_moved, 2 * bytes, "%s: %llu bytes copied",
                      hy_dtype_name(dtypes[k]), (unsigned long long)r.timing.bytes_moved);
        cr_expect_lt(r.timing.bytes_moved, 3 * bytes, "%s: %llu bytes copied",
                     hy_dtype_name(dtypes[k]), (unsigned long long)r.timing.bytes_moved);
    }
    free(in);
    free(ref);
}

/* ---- staged transfers (GPU variant, docs/opencl.md "Transfers") ---- */

/* Sorts every dtype in chunks of `chunk` elements (HYBRIDD_CL_CHUNK, read per job) at sizes
 * on either side of one, two and several chunk boundaries, against the engine. In the GPU
 * variant each chunk gets its own histogram launch, so the launches prove that the copies
 * really went in chunks; the CPU variant takes no staging and must sort the same. */
static void sort_in_chunks(size_t chunk, char *in, char *ref)
{
    static const int dtypes[] = {HY_DT_I32, HY_DT_U32, HY_DT_I64,
                                 HY_DT_U64, HY_DT_F32, HY_DT_F64};
    const size_t ns[] = {chunk - 1, chunk, chunk + 1, 2 * chunk, 3 * chunk + 5};
    char value[32];
    snprintf(value, sizeof value, "%zu", chunk);
    cr_assert_eq(setenv("HYBRIDD_CL_CHUNK", value, 1), 0, "setenv");
    for (size_t t = 0; t < COUNT(dtypes); t++)
        for (size_t k = 0; k < COUNT(ns); k++) {
            size_t n = ns[k], size = hy_dtype_size(dtypes[t]);
            if (n < 2)
                continue;
            int dist = (t + k) % 2 ? D_SPECIAL : D_RANDOM;
            make_case(dtypes[t], n, dist, 0xC4u + n + t, in, ref);
            hy_cl_sort_result r;
            hy_error err = {0};
            int rc = sort_on_device(dtypes[t], in, n, &r, &err);
            cr_assert_eq(rc, 0, "%s n=%zu chunk %zu: %d %s", hy_dtype_name(dtypes[t]), n,
                         chunk, rc, err.msg);
            cr_assert(memcmp(in, ref, n * size) == 0, "%s n=%zu chunk %zu: output differs",
                      hy_dtype_name(dtypes[t]), n, chunk);
            const hy_cl_timing *tm = &r.timing;
            if (dev_info.gpu_variant && tm->passes > 1) {
                unsigned chunks = (unsigned)((n + chunk - 1) / chunk);
                cr_assert_eq(tm->launches, chunks + (tm->passes - 1),
                             "%s n=%zu chunk %zu: %u launches in %u passes",
                             hy_dtype_name(dtypes[t]), n, chunk, tm->launches, tm->passes);
            }
            /* Overlap is moved out of the copies, not added: the profiled time, counted
             * once, fits inside the wall time around it. */
            cr_assert_leq(tm->h2d_ns + tm->kernel_ns + tm->d2h_ns, tm->wall_ns,
                          "%s n=%zu: h2d %" PRIu64 " + kernel %" PRIu64 " + d2h %" PRIu64
                          " > wall %" PRIu64 " ns",
                          hy_dtype_name(dtypes[t]), n, tm->h2d_ns, tm->kernel_ns, tm->d2h_ns,
                          tm->wall_ns);
            cr_assert_geq(tm->bytes_moved, 2 * (uint64_t)n * size, "%s n=%zu: %" PRIu64 " bytes",
                          hy_dtype_name(dtypes[t]), n, tm->bytes_moved);
        }
    cr_assert_eq(unsetenv("HYBRIDD_CL_CHUNK"), 0, "unsetenv");
}

/* Chunks of one element, a few, an odd size and more than a block: the kept pinned pair
 * grows from job to job, and every boundary falls inside a block somewhere. */
DEVICE_TEST(cl_sort, chunked_transfers)
{
    static const size_t chunks[] = {1, 7, 1000, 4099};
    size_t most = 3 * 4099 + 5;
    char *in = malloc(most * 8), *ref = malloc(most * 8);
    cr_assert(in && ref, "out of memory");
    for (size_t c = 0; c < COUNT(chunks); c++)
        sort_in_chunks(chunks[c], in, ref);
    free(in);
    free(ref);
    good_sort_works(); /* back to the default chunk: the pinned pair grows again */
}

/* A chunk setting that is not a whole number of 1 or more is refused, naming it, in either
 * variant, before the array is touched. */
DEVICE_TEST(cl_sort, bad_chunk_setting)
{
    static const char *const bad[] = {"0", "-4", "12x", "lots", "99999999999999999999999"};
    for (size_t k = 0; k < COUNT(bad); k++) {
        uint32_t a[3] = {3, 1, 2};
        hy_cl_sort_result r;
        hy_error err = {0};
        cr_assert_eq(setenv("HYBRIDD_CL_CHUNK", bad[k], 1), 0, "setenv");
        int rc = sort_on_device(HY_DT_U32, a, 3, &r, &err);
        cr_assert_eq(unsetenv("HYBRIDD_CL_CHUNK"), 0, "unsetenv");
        cr_assert_eq(rc, HY_EINVAL, "HYBRIDD_CL_CHUNK=%s: %d %s", bad[k], rc, err.msg);
        cr_assert(strstr(err.msg, "HYBRIDD_CL_CHUNK") && strstr(err.msg, bad[k]),
                  "the refusal does not name the setting: %s", err.msg);
        cr_assert(a[0] == 3 && a[1] == 1 && a[2] == 2, "a refused sort touched the array");
    }
    good_sort_works();
}

/* FNV-1a over the bytes: whether a refused job left a large array as it was. */
static uint64_t bytes_hash(const void *p, size_t len)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ b[i]) * 0x100000001b3u;
    return h;
}

/* Real arrays at the device's largest buffer (PoCL under POCL_MEMORY_LIMIT=1: 256 MiB, the
 * *_memlimit runs in tests/cl/CMakeLists.txt): one that fills it exactly is sorted, in many
 * staged chunks in the GPU variant, byte-identical to the engine; one more element is
 * refused naming the limit, the array left as it was. Skipped where the largest buffer is
 * larger (the arrays would be too): there beyond_device_memory checks the arithmetic. */
DEVICE_TEST(cl_sort, real_arrays_at_the_allocation_limit)
{
    if (dev_info.max_alloc > ((uint64_t)256 << 20))
        cr_skip_test("largest buffer %" PRIu64 " bytes: run under POCL_MEMORY_LIMIT=1",
                     dev_info.max_alloc);
    size_t n = (size_t)(dev_info.max_alloc / 4);
    char *in = malloc((n + 1) * 4), *ref = malloc(n * 4);
    cr_assert(in && ref, "out of memory");
    check_case(HY_DT_U32, n, D_RANDOM, in, ref);
    put(in, 4, n, 7);
    uint64_t before = bytes_hash(in, (n + 1) * 4);
    char limit[32];
    snprintf(limit, sizeof limit, "%" PRIu64, dev_info.max_alloc);
    hy_cl_sort_result r;
    hy_error err = {0};
    int rc = sort_on_device(HY_DT_U32, in, n + 1, &r, &err);
    cr_assert_eq(rc, HY_ELIMIT, "n=%zu: %d %s", n + 1, rc, err.msg);
    cr_assert(strstr(err.msg, limit), "message does not name the limit %s: %s", limit, err.msg);
    cr_assert_eq(bytes_hash(in, (n + 1) * 4), before, "a refused sort touched the array");
    free(in);
    free(ref);
    good_sort_works();
}

/* The same hy_cl sorts again and again, all dtypes interleaved: nothing leaks between jobs. */
DEVICE_TEST(cl_sort, repeated_jobs)
{
    char in[5000 * 8], ref[5000 * 8];
    static const int dtypes[] = {HY_DT_I32, HY_DT_U32, HY_DT_I64,
                                 HY_DT_U64, HY_DT_F32, HY_DT_F64};
    for (int round = 0; round < 3; round++)
        for (size_t k = 0; k < COUNT(dtypes); k++)
            check_case(dtypes[k], 4000 + (size_t)round * 333, D_SPECIAL, in, ref);
}

/* A device that refused in the fixture refuses every dtype and size the same way, leaving
 * the array as it was; a run where no device refuses has nothing to check here. */
Test(cl_sort, refusal_is_clear)
{
    if (nrefused == 0)
        cr_skip_test("no device refuses the sort");
    char in[1009 * 8], ref[1009 * 8];
    static const int dtypes[] = {HY_DT_I32, HY_DT_U32, HY_DT_I64,
                                 HY_DT_U64, HY_DT_F32, HY_DT_F64};
    for (unsigned k = 0; k < nrefused; k++) {
        hy_cl_device_info info;
        hy_error err = {0};
        cr_assert_eq(hy_cl_describe(cl, refused[k], &info, &err), 0, "%s", err.msg);
        for (size_t t = 0; t < COUNT(dtypes); t++) {
            size_t bytes = 1009 * hy_dtype_size(dtypes[t]);
            make_case(dtypes[t], 1009, D_RANDOM, 99, in, ref);
            memcpy(ref, in, bytes);
            hy_cl_sort_result r;
            int rc = hy_cl_sort(cl, &(hy_cl_opts){.device = refused[k]}, dtypes[t], in, 1009,
                                &r, &err);
            check_refusal(&info, rc, &err);
            cr_assert(memcmp(in, ref, bytes) == 0,
                      "device %u: a refused %s sort touched the array", refused[k],
                      hy_dtype_name(dtypes[t]));
        }
    }
}
