/* tests: the OpenCL pi job — hit counts equal to the CPU engine's reference for every n
 * (tiny, odd, ragged, several launches), the pinned known answers, the kernel's counter high
 * word and ragged windows (through the private API), limits, cancellation, progress, timing. */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "host.h"
#include "internal.h"
#include "devices.h"
#include "pocl_env.h"

static hy_cl *cl;

static void cl_up(void)
{
    pocl_cache_for_run();
    hy_error err = {0};
    int rc = hy_cl_open(&(hy_cl_config){0}, &cl, &err);
    cr_assert_eq(rc, 0, "hy_cl_open: %d %s", rc, err.msg);
    find_devices(cl, NULL);
}

static void cl_down(void)
{
    hy_cl_close(cl);
    cl = NULL;
}

TestSuite(cl_pi, .init = cl_up, .fini = cl_down, .timeout = 300);

static hy_cl_pi_result run_pi(uint64_t seed, uint64_t n)
{
    hy_cl_pi_result r;
    hy_error err = {0};
    int rc = hy_cl_pi(cl, &(hy_cl_opts){.device = dev}, seed, n, &r, &err);
    cr_assert_eq(rc, 0, "hy_cl_pi(seed %" PRIu64 ", n %" PRIu64 "): %d %s", seed, n, rc, err.msg);
    cr_assert_eq(r.samples, n);
    cr_assert_geq(r.timing.launches, 1u);
    return r;
}

DEVICE_TEST(cl_pi, known_answers)
{
    /* docs/pi-mapping.md, "Hit counts"; pinned for the CPU engine by tests/host. */
    static const struct {
        uint64_t seed, n, hits;
    } kat[] = {
        {0, 10, 7},
        {0, 1000, 783},
        {0, 1000000, 784445},
        {42, 100000, 78463},
        {42, 1000000, 785856},
        {UINT64_C(0x0123456789abcdef), 1000000, 785999},
    };
    for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
        hy_cl_pi_result r = run_pi(kat[i].seed, kat[i].n);
        cr_assert_eq(r.hits, kat[i].hits, "seed %" PRIu64 " n %" PRIu64 ": %" PRIu64 " hits, not %" PRIu64,
                     kat[i].seed, kat[i].n, r.hits, kat[i].hits);
    }
}

DEVICE_TEST(cl_pi, equals_cpu_engine)
{
    /* Tiny, odd, prime and ragged counts (none a multiple of any work size), and counts that
     * take several launches (the first launch is 2^22 samples). */
    static const uint64_t ns[] = {1,         2,       3,       5,           7,
                                  31,        64,      65,      999,         4097,
                                  65537,     1000003, 4194304, 4194305,     (1u << 24) + 7,
                                  33554467};
    static const uint64_t seeds[] = {0, 1, UINT64_C(0xfedcba9876543210)};
    for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++)
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
            hy_cl_pi_result r = run_pi(seeds[s], ns[i]);
            uint64_t want = hy_host_pi_hits_reference(seeds[s], 0, ns[i]);
            cr_assert_eq(r.hits, want, "seed %" PRIx64 " n %" PRIu64 ": %" PRIu64 " != %" PRIu64,
                         seeds[s], ns[i], r.hits, want);
        }
}

DEVICE_TEST(cl_pi, estimate_and_timing)
{
    const uint64_t n = 30000001; /* several launches */
    hy_cl_pi_result r = run_pi(7, n);
    cr_assert_eq(r.hits, hy_host_pi_hits_reference(7, 0, n));
    cr_assert_float_eq(r.estimate, 4.0 * (double)r.hits / (double)n, 1e-12);
    double p = (double)r.hits / (double)n;
    cr_assert_float_eq(r.std_error, 4.0 * sqrt(p * (1.0 - p) / (double)n), 1e-12);
    cr_assert_lt(fabs(r.estimate - M_PI), 6 * r.std_error, "estimate %.6f", r.estimate);
    cr_assert_gt(r.timing.kernel_ns, 0u, "no kernel time from profiling");
    cr_assert_gt(r.timing.wall_ns, 0u);
    cr_assert_geq(r.timing.launches, 2u, "a 3*10^7-sample job in one launch");
    cr_assert_eq(r.timing.h2d_ns, 0u, "pi uploads nothing");
}

/* ---- the kernel itself, on windows hy_cl_pi never starts at (it always counts from 0) ---- */

/* Hits among samples [first, first + count) from one launch of kernels/pi.cl's pi_hits. */
static uint64_t kernel_window(uint64_t seed, uint64_t first, uint64_t count, uint64_t bpi,
                              size_t local)
{
    struct hy_cl_dev *d;
    hy_error err = {0};
    cl_int st;
    cl_kernel k = NULL;
    cr_assert_eq(hy_cl_device(cl, dev, &d, &err), 0, "%s", err.msg);
    cr_assert_eq(hy_cl_kernel(d, HY_CL_PROG_PI, "pi_hits", &k, &err), 0, "%s", err.msg);
    uint64_t nb = ((first + count + 1) >> 1) - (first >> 1);
    size_t groups = (size_t)(((nb + bpi - 1) / bpi + local - 1) / local), global = groups * local;
    cr_assert_leq(groups, 4096u, "test window too large for its buffer");
    cl_mem part = clCreateBuffer(d->ctx, CL_MEM_WRITE_ONLY, 4096 * sizeof(cl_ulong), NULL, &st);
    cr_assert_eq(st, CL_SUCCESS);
    cl_ulong a[4] = {seed, first, count, bpi};
    for (cl_uint i = 0; i < 4; i++)
        cr_assert_eq(clSetKernelArg(k, i, sizeof a[i], &a[i]), CL_SUCCESS);
    cr_assert_eq(clSetKernelArg(k, 4, sizeof part, &part), CL_SUCCESS);
    cr_assert_eq(clEnqueueNDRangeKernel(d->queue, k, 1, NULL, &global, &local, 0, NULL, NULL),
                 CL_SUCCESS);
    static cl_ulong sums[4096];
    cr_assert_eq(clEnqueueReadBuffer(d->queue, part, CL_TRUE, 0, groups * sizeof sums[0], sums,
                                     0, NULL, NULL),
                 CL_SUCCESS);
    uint64_t hits = 0;
    for (size_t g = 0; g < groups; g++)
        hits += sums[g];
    clReleaseMemObject(part);
    clReleaseKernel(k);
    return hits;
}

DEVICE_TEST(cl_pi, kernel_windows_known_answers)
{
    /* docs/pi-mapping.md: a window across sample 2^33 (the counter's high word turns 0 -> 1)
     * and the very top of the stream; a 32-bit counter gets these wrong. */
    cr_assert_eq(kernel_window(42, (UINT64_C(1) << 33) - 501, 1001, 1024, 16), 786u);
    cr_assert_eq(kernel_window(UINT64_C(0x0123456789abcdef), (UINT64_C(1) << 63) - 1000, 1000,
                               1024, 16),
                 784u);
}

DEVICE_TEST(cl_pi, kernel_windows_equal_cpu_engine)
{
    /* Odd and even starts and ends; windows straddling a 2^32-block boundary at an offset
     * that also straddles one vector step of the CPU variant; blocks per work-item that are
     * and are not a multiple of that step; group sizes 1, 4, 7 (not a power of two)
     * and 16. */
    static const struct {
        uint64_t first, count;
    } w[] = {
        {0, 1},
        {1, 1},
        {3, 2},
        {5, 3},
        {12345, 777777},
        {(UINT64_C(1) << 33) - 12345, 1000001},
        {(UINT64_C(1) << 33) - 12346, 1000000},
        {(UINT64_C(1) << 34) - 99, 200001},          /* high word 1 -> 2 */
        {(UINT64_C(1) << 62) + 1, 333333},
        {(UINT64_C(1) << 63) - 123457, 123457},      /* ends at 2^63 exactly */
    };
    static const struct {
        uint64_t bpi;
        size_t local;
    } shapes[] = {{1024, 16}, {32, 7}, {37, 4}, {256, 1}, {1, 16}};
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
        uint64_t want = hy_host_pi_hits_reference(9, w[i].first, w[i].count);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            if (shapes[s].bpi == 1 && w[i].count > 100000)
                continue; /* one block per work-item: more groups than the test's buffer */
            uint64_t got = kernel_window(9, w[i].first, w[i].count, shapes[s].bpi, shapes[s].local);
            cr_assert_eq(got, want,
                         "first %" PRIu64 " count %" PRIu64 " bpi %" PRIu64 " local %zu: %" PRIu64
                         " != %" PRIu64,
                         w[i].first, w[i].count, shapes[s].bpi, shapes[s].local, got, want);
        }
    }
}

/* Windows from `first`, as the hybrid backend and MPI ranks count them: each equals the CPU
 * reference for its window, and windows that tile [0, N) add up to the hits of N. */
DEVICE_TEST(cl_pi, windows_from_first_tile_the_stream)
{
    const uint64_t seed = 99, N = 3000017;
    const uint64_t cuts[] = {0, 1, 2, 1000, 1000001, 2999999, N};
    uint64_t sum = 0;
    for (size_t i = 0; i + 1 < sizeof cuts / sizeof cuts[0]; i++) {
        uint64_t first = cuts[i], count = cuts[i + 1] - cuts[i];
        hy_cl_pi_result r;
        hy_error err = {0};
        int rc = hy_cl_pi(cl, &(hy_cl_opts){.device = dev, .first = first}, seed, count, &r,
                          &err);
        cr_assert_eq(rc, 0, "window %" PRIu64 "+%" PRIu64 ": %d %s", first, count, rc, err.msg);
        cr_assert_eq(r.samples, count);
        cr_assert_eq(r.hits, hy_host_pi_hits_reference(seed, first, count),
                     "window %" PRIu64 "+%" PRIu64, first, count);
        sum += r.hits;
    }
    cr_assert_eq(sum, run_pi(seed, N).hits);
    /* A window that would pass 2^63 - 1 is refused with a sentence. */
    hy_cl_pi_result r;
    hy_error err = {0};
    cr_assert_eq(hy_cl_pi(cl, &(hy_cl_opts){.device = dev, .first = INT64_MAX}, seed, 1, &r,
                          &err), HY_ELIMIT);
    cr_assert(err.msg[0]);
}

/* ---- limits and errors ---- */

DEVICE_TEST(cl_pi, limits)
{
    hy_cl_pi_result r;
    hy_error err = {0};
    cr_assert_eq(hy_cl_pi(cl, &(hy_cl_opts){.device = dev}, 1, 0, &r, &err), HY_EINVAL);
    cr_assert(err.msg[0], "no message for n = 0");
    err = (hy_error){0};
    cr_assert_eq(hy_cl_pi(cl, &(hy_cl_opts){.device = dev}, 1, UINT64_C(1) << 63, &r, &err),
                 HY_ELIMIT);
    cr_assert(err.msg[0], "no message for n = 2^63");
    err = (hy_error){0};
    cr_assert_eq(hy_cl_pi(cl, &(hy_cl_opts){.device = dev}, 1, UINT64_MAX, &r, &err), HY_ELIMIT);
    err = (hy_error){0};
    cr_assert_eq(hy_cl_pi(cl, &(hy_cl_opts){.device = dev}, 1, 10, NULL, &err), HY_EINVAL);
    cr_assert_eq(hy_cl_pi(cl, NULL, 1, 10, &r, &err), HY_EINVAL);
    cr_assert_eq(hy_cl_pi(NULL, &(hy_cl_opts){.device = dev}, 1, 10, &r, &err), HY_EINVAL);
    /* A NULL error pointer is allowed. */
    cr_assert_eq(hy_cl_pi(cl, &(hy_cl_opts){.device = dev}, 1, 0, &r, NULL), HY_EINVAL);
}

Test(cl_pi, bad_device)
{
    hy_cl_pi_result r;
    hy_error err = {0};
    int rc = hy_cl_pi(cl, &(hy_cl_opts){.device = 999}, 1, 10, &r, &err);
    cr_assert_lt(rc, 0, "device 999 accepted");
    cr_assert_eq(err.code, rc);
    cr_assert(err.msg[0], "no message for device 999");
}

/* ---- progress and cancellation ---- */

struct prog {
    unsigned calls;
    uint64_t last, total;
    bool bad;
    unsigned cancel_at; /* cancel on this call (1-based); 0 never */
};

static int on_progress(void *ctx, uint64_t done, uint64_t total)
{
    struct prog *p = ctx;
    p->calls++;
    if (done < p->last || done > total || (p->total && total != p->total))
        p->bad = true;
    p->last = done;
    p->total = total;
    return p->cancel_at && p->calls >= p->cancel_at;
}

DEVICE_TEST(cl_pi, progress)
{
    const uint64_t n = (UINT64_C(1) << 26) + 3;
    struct prog p = {0};
    hy_cl_pi_result r;
    hy_error err = {0};
    int rc = hy_cl_pi(cl, &(hy_cl_opts){.device = dev, .progress = on_progress, .progress_ctx = &p},
                      3, n, &r, &err);
    cr_assert_eq(rc, 0, "%d %s", rc, err.msg);
    cr_assert_eq(r.hits, hy_host_pi_hits_reference(3, 0, n));
    cr_assert_geq(r.timing.launches, 2u);
    /* Called between launches: once fewer than there were launches. */
    cr_assert_eq(p.calls, r.timing.launches - 1);
    cr_assert_not(p.bad, "progress went backwards or above the total");
    cr_assert_eq(p.total, n);
    cr_assert_lt(p.last, n);
}

DEVICE_TEST(cl_pi, cancel)
{
    /* Hours of work on any device: only cancellation ends it in time. */
    const uint64_t n = UINT64_C(1) << 50;
    for (unsigned at = 1; at <= 3; at++) {
        struct prog p = {.cancel_at = at};
        hy_cl_pi_result r;
        hy_error err = {0};
        int rc = hy_cl_pi(
            cl, &(hy_cl_opts){.device = dev, .progress = on_progress, .progress_ctx = &p}, 11, n,
            &r, &err);
        cr_assert_eq(rc, HY_ECANCELED, "cancel at call %u: %d %s", at, rc, err.msg);
        cr_assert(err.msg[0]);
        cr_assert_eq(p.calls, at);
        cr_assert_not(p.bad);
        cr_assert_eq(r.timing.launches, at);
        /* What was counted before the stop is reported, and it is exact. */
        cr_assert_eq(r.samples, p.last);
        cr_assert(r.samples > 0 && r.samples < n);
        if (r.samples <= (UINT64_C(1) << 27))
            cr_assert_eq(r.hits, hy_host_pi_hits_reference(11, 0, r.samples));
    }
}

/* Recovery: a job that meets a broken queue (what a device fault leaves; planted by the
 * test-only test_fault_job) fails with a sentence naming the OpenCL error, and the next job
 * on that device rebuilds context, queue and programs and gets the right answer, pi and sort
 * alike. Without the rebuild, every job after the fault would fail the same way. */
Test(cl_pi, a_device_recovers_after_a_failed_job)
{
    hy_cl *fcl = NULL;
    hy_error err = {0};
    cr_assert_eq(hy_cl_open(&(hy_cl_config){.test_fault_job = 2}, &fcl, &err), 0, "%s",
                 err.msg);
    unsigned tried = 0;
    for (unsigned i = 0; i < hy_cl_device_count(fcl); i++) {
        hy_cl_device_info in;
        cr_assert_eq(hy_cl_describe(fcl, i, &in, &err), 0, "%s", err.msg);
        if (!in.usable)
            continue;
        tried++;
        hy_cl_opts o = {.device = i};
        hy_cl_pi_result r;
        cr_assert_eq(hy_cl_pi(fcl, &o, 5, 100000, &r, &err), 0, "job 1: %s", err.msg);
        int rc = hy_cl_pi(fcl, &o, 5, 100000, &r, &err);
        cr_assert_eq(rc, HY_EBACKEND, "job 2 (faulted) returned %d: %s", rc, err.msg);
        cr_expect(strstr(err.msg, "CL_INVALID_COMMAND_QUEUE"), "no OpenCL error named: %s",
                  err.msg);
        cr_assert_eq(hy_cl_describe(fcl, i, &in, &err), 0, "%s", err.msg);
        cr_expect_eq(in.recoveries, 0u, "rebuilt before the next job asked");

        rc = hy_cl_pi(fcl, &o, 5, 100000, &r, &err);
        cr_assert_eq(rc, 0, "job 3 after the fault: %d %s", rc, err.msg);
        cr_expect_eq(r.hits, hy_host_pi_hits_reference(5, 0, 100000));
        cr_assert_eq(hy_cl_describe(fcl, i, &in, &err), 0, "%s", err.msg);
        cr_expect_eq(in.recoveries, 1u, "device %u: %u rebuilds", i, in.recoveries);
        cr_expect(in.usable, "device %u not usable after the rebuild: %s", i, in.problem);

        int32_t a[1000];
        for (int k = 0; k < 1000; k++)
            a[k] = (int32_t)((k * 7919) % 1000) - 500;
        hy_cl_sort_result sr;
        rc = hy_cl_sort(fcl, &o, HY_DT_I32, a, 1000, &sr, &err);
        if (rc == HY_EBACKEND && strstr(err.msg, "work-groups of at most")) {
            /* The GPU variant under a work-group cap refuses to sort (test_cl_sort): a
             * refusal, not a fault, so it must not rebuild the device again. */
        } else {
            cr_assert_eq(rc, 0, "sort after the rebuild: %d %s", rc, err.msg);
            for (int k = 0; k < 1000; k++)
                cr_assert_eq(a[k], k - 500, "sorted[%d] = %d", k, a[k]);
        }
        cr_assert_eq(hy_cl_describe(fcl, i, &in, &err), 0, "%s", err.msg);
        cr_expect_eq(in.recoveries, 1u, "a good job (or a refusal) rebuilt again");
        rc = hy_cl_pi(fcl, &o, 6, 1000, &r, &err);
        cr_assert_eq(rc, 0, "job 5: %d %s", rc, err.msg);
        cr_assert_eq(hy_cl_describe(fcl, i, &in, &err), 0, "%s", err.msg);
        cr_expect_eq(in.recoveries, 1u, "a good job (or a refusal) rebuilt again");
    }
    hy_cl_close(fcl);
    if (!tried)
        cr_skip_test("no usable OpenCL device");
}
