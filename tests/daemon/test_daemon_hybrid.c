/* tests/daemon: the hybrid backend in a running hybridd — one job across the native pool and
 * the OpenCL device (PoCL's CPU device here, let in with opencl.hybrid_cpu_devices): pi hits
 * bit-identical to the reference, sorts byte-identical for every dtype (NaNs, -0.0, many
 * equal keys), the row's breakdown adding up, a comparison with a hybrid row, refusals that
 * leave the daemon serving, a device that fails mid-job failing the job with a sentence
 * naming it (and the next job right), and the default daemon leaving CPU devices out. */
#include <unistd.h>

#include "../cl/pocl_env.h"
#include "suite.h"

static void start_hybrid(bool cpu_devices)
{
    pocl_cache_for_run(); /* the daemon inherits POCL_CACHE_DIR */
    hyt_conf k = hyt_conf_default();
    k.opencl = true;
    k.hybrid_cpu_devices = cpu_devices;
    k.sort_elements = 4000000;
    k.frame_bytes = 1 << 20;
    suite_start(&k);
}

static void start_with_devices(void)
{
    start_hybrid(true);
}

TestSuite(daemon_hybrid, .fini = suite_stop, .timeout = 240);

/* Whether the daemon serves a usable OpenCL device 0 (else the hybrid job is the pool's),
 * and whether it is PoCL's CPU device. */
static bool has_device_pocl(hyt_client *c, bool *pocl)
{
    hy_msg_devices_reply *dv = calloc(1, sizeof *dv);
    cr_assert_not_null(dv);
    cr_assert_eq(hyt_devices(c, dv), 0, "%s", c->err.msg);
    bool usable = dv->ndevices > 0 && (dv->devices[0].flags & HY_DEV_USABLE);
    *pocl = usable && (dv->devices[0].flags & HY_DEV_POCL_CPU);
    free(dv);
    return usable;
}

static bool has_device(hyt_client *c)
{
    bool pocl;
    return has_device_pocl(c, &pocl);
}

/* A hybrid row's breakdown: the pool's share within n, and the devices' when they ran. */
static void check_breakdown(const hy_result_row *r, uint64_t n, unsigned devices,
                            const char *what)
{
    cr_expect_eq(r->backend, HY_BACKEND_HYBRID, "%s: backend %u", what, r->backend);
    cr_expect_eq(r->threads, 2, "%s: threads %u (the whole pool)", what, r->threads);
    cr_expect_eq(r->devices_used, devices, "%s: devices_used %u, want %u", what,
                 r->devices_used, devices);
    cr_expect_leq(r->cpu_items, n, "%s: the pool did %llu of %llu", what,
                  (unsigned long long)r->cpu_items, (unsigned long long)n);
    if (devices == 0) {
        cr_expect_eq(r->cpu_items, n, "%s: the pool alone did %llu of %llu", what,
                     (unsigned long long)r->cpu_items, (unsigned long long)n);
        cr_expect_eq(r->dev_chunks, 0, "%s: %u device chunks with no device", what,
                     r->dev_chunks);
        cr_expect_eq(r->balance_ppm, 0, "%s: a balance with one participant", what);
    } else {
        cr_expect_geq(r->cpu_chunks + r->dev_chunks, 1, "%s: no chunks", what);
        cr_expect(r->dev_chunks > 0 || r->cpu_items == n, "%s: %llu items went to no one",
                  what, (unsigned long long)(n - r->cpu_items));
        cr_expect(r->cpu_chunks > 0 || r->cpu_items == 0, "%s: pool items without chunks",
                  what);
    }
}

/* A sort's row: a split across every participant, or NO_GAIN with one side alone — the pool
 * (no device used, every key its own) or one device (devices_used 1, none of the keys the
 * pool's, one range). */
static void check_sort_breakdown(const hy_result_row *r, uint64_t n, unsigned devices,
                                 const char *what)
{
    if (!(r->flags & HY_ROW_NO_GAIN) || r->devices_used == 0) {
        check_breakdown(r, n, r->flags & HY_ROW_NO_GAIN ? 0 : devices, what);
        return;
    }
    cr_expect(devices > 0 && r->devices_used == 1, "%s: a device alone with %u devices used "
              "of %u", what, r->devices_used, devices);
    cr_expect_eq(r->cpu_items, 0, "%s: the device alone, yet the pool sorted %llu", what,
                 (unsigned long long)r->cpu_items);
    cr_expect(r->cpu_chunks == 0 && r->dev_chunks == 1, "%s: %u pool and %u device ranges",
              what, r->cpu_chunks, r->dev_chunks);
    cr_expect_eq(r->balance_ppm, 0, "%s: a balance with one participant", what);
}

Test(daemon_hybrid, pi_across_the_pool_and_the_device_is_bit_identical,
     .init = start_with_devices)
{
    hyt_client *c = suite_client();
    unsigned devices = has_device(c) ? 1 : 0;
    /* A small job, one chunk or two; and one long enough that both sides take chunks. */
    const uint64_t ns[] = {1, 3000017, 60000001};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        hy_msg_submit s = hyt_pi(HY_BACKEND_HYBRID, 0, ns[i], 21 + i);
        s.repeat = 2;
        hyt_job j;
        char what[64];
        snprintf(what, sizeof what, "hybrid pi n %llu", (unsigned long long)ns[i]);
        suite_run_ok(c, &s, NULL, 0, &j, what);
        cr_assert_eq(j.nrows, 1);
        suite_check_pi_row(&j.rows[0], HY_BACKEND_HYBRID, 2, 21 + i, ns[i], 2, what);
        check_breakdown(&j.rows[0], ns[i], devices, what);
        if (devices && ns[i] > 1000000) {
            cr_expect_geq(j.rows[0].launches, j.rows[0].dev_chunks, "%s: fewer launches than "
                          "device chunks", what);
            cr_expect_eq(j.rows[0].flags & HY_ROW_SHARED_CORES, 0, "%s: CPU devices were let "
                         "in, yet the row says they were left out", what);
        }
        hyt_job_release(c, &j);
    }
    suite_client_clean(c);
    hyt_close(c);
}

Test(daemon_hybrid, sort_in_key_ranges_is_byte_identical_for_every_dtype,
     .init = start_with_devices)
{
    hyt_client *c = suite_client();
    unsigned devices = has_device(c) ? 1 : 0;
    const size_t cnt = 60001;
    for (int dt = HY_DT_I32; dt <= HY_DT_F64; dt++) {
        size_t bytes = cnt * hy_dtype_size(dt);
        void *data = malloc(bytes), *want = malloc(bytes);
        cr_assert(data && want);
        hyt_fill(dt, data, cnt, 700 + (uint64_t)dt);
        memcpy(want, data, bytes);
        hyt_sort_ref(dt, want, cnt);
        hy_msg_submit s = hyt_sort_inline(HY_BACKEND_HYBRID, 0, dt, data, cnt);
        hyt_job j;
        char what[48];
        snprintf(what, sizeof what, "hybrid %s sort", hy_dtype_name(dt));
        suite_run_ok(c, &s, NULL, 0, &j, what);
        cr_assert_eq(j.array_bytes, bytes, "%s: %u bytes back", what, j.array_bytes);
        cr_expect_eq(memcmp(j.array, want, bytes), 0, "%s: differs from the reference", what);
        /* The first sort of each key width splits (no rates are known yet); later ones may
         * run on one side alone when the rates measured predict no gain, and say so. */
        bool first_of_width = dt == HY_DT_I32 || dt == HY_DT_I64;
        bool alone = (j.rows[0].flags & HY_ROW_NO_GAIN) != 0;
        cr_expect(!(alone && first_of_width), "%s: no split before any rate was known", what);
        check_sort_breakdown(&j.rows[0], cnt, devices, what);
        if (devices && !alone) /* half the keys are spread wide: both ranges hold some */
            cr_expect(j.rows[0].cpu_items > 0 && j.rows[0].cpu_items < cnt,
                      "%s: the pool sorted %llu of %zu keys", what,
                      (unsigned long long)j.rows[0].cpu_items, cnt);
        hyt_job_release(c, &j);
        free(data);
        free(want);
    }

    /* A memfd sort, sorted where the client's array lies. */
    const size_t mcnt = 1500000;
    int fd;
    void *map;
    hy_error err;
    cr_assert_eq(hy_memfd_create("hyt-hybrid", mcnt * 8, &fd, &map, &err), 0, "%s", err.msg);
    hyt_fill(HY_DT_F64, map, mcnt, 9);
    double *want = malloc(mcnt * 8);
    cr_assert_not_null(want);
    memcpy(want, map, mcnt * 8);
    hyt_sort_ref(HY_DT_F64, want, mcnt);
    cr_assert_eq(hy_memfd_seal(fd, &err), 0);
    hy_msg_submit sm = hyt_sort_memfd(HY_BACKEND_HYBRID, 0, HY_DT_F64, mcnt);
    hyt_job j;
    sm.repeat = 3; /* each run from the input again */
    suite_run_ok(c, &sm, &fd, 1, &j, "memfd f64 hybrid sort");
    cr_expect_eq(memcmp(map, want, mcnt * 8), 0, "memfd f64 hybrid sort differs");
    check_sort_breakdown(&j.rows[0], mcnt, devices, "memfd f64 hybrid sort");
    hyt_job_release(c, &j);
    hy_memfd_unmap(map, mcnt * 8);
    close(fd);
    free(want);
    suite_client_clean(c);
    hyt_close(c);
}

Test(daemon_hybrid, a_comparison_names_hybrid_and_its_row_counts_the_same_hits,
     .init = start_with_devices)
{
    hyt_client *c = suite_client();
    hy_msg_submit s = hyt_pi(0, 0, 2000003, 4);
    s.job = HY_JOB_COMPARE_PI;
    s.backends = (1u << HY_BACKEND_NATIVE) | (1u << HY_BACKEND_HYBRID);
    s.repeat = 1;
    hyt_job j;
    suite_run_ok(c, &s, NULL, 0, &j, "compare pi with hybrid");
    bool seen = false;
    for (unsigned i = 0; i < j.nrows; i++) {
        cr_expect_eq(j.rows[i].hits, hyt_pi_ref(4, 2000003), "row %u (%s) hits differ", i,
                     hy_backend_name(j.rows[i].backend));
        seen = seen || j.rows[i].backend == HY_BACKEND_HYBRID;
    }
    cr_expect(seen, "the comparison has no hybrid row");
    cr_expect_eq(j.rows[j.nrows - 1].backend, HY_BACKEND_HYBRID, "hybrid is not the last row");
    hyt_job_release(c, &j);
    /* Not named: a default comparison leaves hybrid out (it holds the machine). */
    s.backends = 0;
    suite_run_ok(c, &s, NULL, 0, &j, "default compare pi");
    for (unsigned i = 0; i < j.nrows; i++)
        cr_expect_neq(j.rows[i].backend, HY_BACKEND_HYBRID, "a default comparison ran hybrid");
    hyt_job_release(c, &j);
    suite_client_clean(c);
    hyt_close(c);
}

Test(daemon_hybrid, bad_hybrid_jobs_are_refused_and_the_next_one_runs,
     .init = start_with_devices)
{
    hyt_client *c = suite_client();
    hy_msg_submit s = hyt_pi(HY_BACKEND_HYBRID, 0, 100000, 3);
    s.mode = HY_MODE_REPLICATE;
    suite_run_refused(c, &s, NULL, 0, HY_EINVAL, 0, "hybrid in replicate mode");
    s = hyt_pi(HY_BACKEND_HYBRID, 3, 100000, 3);
    suite_run_refused(c, &s, NULL, 0, HY_ELIMIT, 0, "hybrid with more threads than the pool");
    s = hyt_pi(HY_BACKEND_HYBRID, 1, 100000, 3);
    hyt_job j;
    suite_run_ok(c, &s, NULL, 0, &j, "hybrid on 1 pool thread after the refusals");
    suite_check_pi_row(&j.rows[0], HY_BACKEND_HYBRID, 1, 3, 100000, 1, "after the refusals");
    hyt_job_release(c, &j);
    suite_client_clean(c);
    hyt_close(c);
}

/* A hybrid sort cancelled while it runs ends ECANCELED, and the client's array still holds
 * every element it sent (in some order): a range stopped part-way is not left half-written. */
Test(daemon_hybrid, a_cancelled_sort_loses_no_element, .init = start_with_devices)
{
    hyt_client *c = suite_client();
    const size_t n = 3000000;
    int fd;
    void *map;
    hy_error err;
    cr_assert_eq(hy_memfd_create("hyt-hybrid-cancel", n * 8, &fd, &map, &err), 0, "%s",
                 err.msg);
    hyt_fill(HY_DT_F64, map, n, 77);
    double *want = malloc(n * 8), *got = malloc(n * 8);
    cr_assert(want && got);
    memcpy(want, map, n * 8);
    hyt_sort_ref(HY_DT_F64, want, n);
    cr_assert_eq(hy_memfd_seal(fd, &err), 0);
    hy_msg_submit sm = hyt_sort_memfd(HY_BACKEND_HYBRID, 0, HY_DT_F64, n);
    sm.repeat = 200; /* tens of seconds: surely running when cancelled */
    hyt_job j;
    cr_assert_eq(hyt_submit(c, &sm, &fd, 1, &j), 0);
    cr_assert_eq(hyt_wait_accepted(c, &j, HYT_WAIT_MS), 0);
    cr_assert(j.accepted, "refused: %s \"%s\"", suite_code(j.code), j.message);
    usleep(100000); /* in the first run, which splits (no rates known yet) */
    cr_assert_eq(hyt_cancel(c, j.job_id, NULL), 0);
    cr_assert_eq(hyt_wait_final(c, &j, HYT_WAIT_MS), 0, "no final answer after the cancel");
    cr_expect_eq(j.code, HY_ECANCELED, "ended %s \"%s\"", suite_code(j.code), j.message);
    memcpy(got, map, n * 8);
    hyt_sort_ref(HY_DT_F64, got, n);
    cr_expect_eq(memcmp(got, want, n * 8), 0, "the cancelled sort lost or changed elements");
    hyt_job_release(c, &j);
    hy_memfd_unmap(map, n * 8);
    close(fd);
    free(want);
    free(got);
    /* The daemon serves the next job. */
    hy_msg_submit s = hyt_pi(HY_BACKEND_HYBRID, 0, 1000003, 2);
    suite_run_ok(c, &s, NULL, 0, &j, "hybrid pi after the cancel");
    suite_check_pi_row(&j.rows[0], HY_BACKEND_HYBRID, 2, 2, 1000003, 1, "after the cancel");
    hyt_job_release(c, &j);
    suite_client_clean(c);
    hyt_close(c);
}

/* The device's first OpenCL job meets a broken queue (planted): the hybrid job that ran it
 * fails with a sentence naming the device, the pool is stopped, and the next hybrid job
 * (the device rebuilt) counts the right hits. */
Test(daemon_hybrid, a_device_failing_mid_job_fails_the_job_naming_it)
{
    cr_assert_eq(setenv("HYBRIDD_TEST_CL_FAULT", "1", 1), 0);
    start_hybrid(true);
    unsetenv("HYBRIDD_TEST_CL_FAULT");
    hyt_client *c = suite_client();
    if (!has_device(c)) {
        hyt_close(c);
        suite_skip("no usable OpenCL device");
    }
    hy_msg_submit s = hyt_pi(HY_BACKEND_HYBRID, 0, 60000001, 6);
    hyt_job j;
    cr_assert_eq(hyt_run(c, &s, NULL, 0, &j), 0, "%s", c->err.msg);
    cr_expect_eq(j.code, HY_EBACKEND, "the job ended %s \"%s\"", suite_code(j.code), j.message);
    cr_expect(strstr(j.message, "OpenCL device 0") && strstr(j.message, "hybrid"),
              "the sentence does not name the device: %s", j.message);
    hyt_job_release(c, &j);
    suite_run_ok(c, &s, NULL, 0, &j, "hybrid after the device failed");
    suite_check_pi_row(&j.rows[0], HY_BACKEND_HYBRID, 2, 6, 60000001, 1, "after the failure");
    hyt_job_release(c, &j);
    suite_client_clean(c);
    hyt_close(c);
}

/* The default configuration: PoCL's device runs on the pool's cores, so hybrid leaves it
 * out, says so in the row, and the pool alone counts the job. */
Test(daemon_hybrid, cpu_devices_are_left_out_by_default)
{
    start_hybrid(false);
    hyt_client *c = suite_client();
    bool pocl, dev = has_device_pocl(c, &pocl);
    hy_msg_submit s = hyt_pi(HY_BACKEND_HYBRID, 0, 3000017, 8);
    hyt_job j;
    suite_run_ok(c, &s, NULL, 0, &j, "hybrid pi, default configuration");
    suite_check_pi_row(&j.rows[0], HY_BACKEND_HYBRID, 2, 8, 3000017, 1, "default hybrid pi");
    if (dev && !pocl) {
        hyt_job_release(c, &j);
        hyt_close(c);
        suite_skip("device 0 is not PoCL's CPU device: hybrid uses it by default");
    }
    check_breakdown(&j.rows[0], 3000017, 0, "default hybrid pi");
    if (dev) /* PoCL: a CPU device, left out and said so */
        cr_expect(j.rows[0].flags & HY_ROW_SHARED_CORES, "flags 0x%x lack SHARED_CORES",
                  j.rows[0].flags);
    hyt_job_release(c, &j);
    suite_client_clean(c);
    hyt_close(c);
}
