/* tests/daemon: the hybrid backend in a running hybridd — one job across the native pool and
 * the OpenCL device (PoCL's CPU device here, let in with opencl.hybrid_cpu_devices): pi hits
 * bit-identical to the reference, sorts byte-identical for every dtype (NaNs, -0.0, many
 * equal keys), the row's breakdown adding up, a comparison with a hybrid row, refusals that
 * leave the daemon serving, a device that fails mid-job failing the job with a sentence
 * naming it (and the next job right), and the default daemon leaving CPU devices out. */
#include <math.h>
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
    /* A split that shed nothing (an array the pool's one pass does not take) is the pool's
     * alone, and the row says so and that no device took part. */
    if (r->flags & HY_ROW_WHOLE) {
        cr_expect(!(r->flags & HY_ROW_NO_GAIN) && r->cpu_items == n && r->devices_used == 0,
                  "%s: WHOLE with flags 0x%x, %llu of %llu keys the pool's, %u devices", what,
                  r->flags, (unsigned long long)r->cpu_items, (unsigned long long)n,
                  r->devices_used);
        check_breakdown(r, n, 0, what);
        return;
    }
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

/* Elements of uniform random bits (for floats every order of magnitude) and, one in 16 each, -0.0, +0.0, NaN and infinity. hyt_fill's crowd of 64
 * values holds half the keys: at 2^20 they crowd one bucket past the pool's cache budget,
 * and the pool then sorts the whole array itself (test_cut covers that case). */
static void fill_spread(int dt, void *data, size_t n, uint64_t seed)
{
    size_t size = hy_dtype_size(dt);
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t r = s ^ (s >> 29);
        unsigned special = (unsigned)(s >> 59);
        double d = special == 0 ? -0.0 : special == 1 ? 0.0 : special == 2 ? NAN : INFINITY;
        if (special <= 3 && dt == HY_DT_F32) {
            float f = (float)d;
            memcpy((char *)data + i * 4, &f, 4);
        } else if (special <= 3 && dt == HY_DT_F64) {
            memcpy((char *)data + i * 8, &d, 8);
        } else {
            memcpy((char *)data + i * size, &r, size); /* little-endian: the low bytes */
        }
        /* One NaN: hyt_sort_ref's compare leaves the order of NaN payloads open. */
        if (dt == HY_DT_F32 && isnan(((float *)data)[i]))
            ((float *)data)[i] = NAN;
        else if (dt == HY_DT_F64 && isnan(((double *)data)[i]))
            ((double *)data)[i] = NAN;
    }
}

/* A sealed memfd of n elements of dt (spread: fill_spread, else hyt_fill) at *map, and
 * their reference sort in *want (malloc'd). */
static void sealed_array(int dt, size_t n, uint64_t seed, bool spread, int *fd, void **map,
                         void **want)
{
    size_t bytes = n * hy_dtype_size(dt);
    hy_error err;
    cr_assert_eq(hy_memfd_create("hyt-hybrid", bytes, fd, map, &err), 0, "%s", err.msg);
    if (spread)
        fill_spread(dt, *map, n, seed);
    else
        hyt_fill(dt, *map, n, seed);
    *want = malloc(bytes);
    cr_assert_not_null(*want);
    memcpy(*want, *map, bytes);
    hyt_sort_ref(dt, *want, n);
    cr_assert_eq(hy_memfd_seal(*fd, &err), 0, "%s", err.msg);
}

/* Whether the n elements at map are those of the sorted reference want, in any order. */
static bool same_elements(int dt, const void *map, const void *want, size_t n)
{
    size_t bytes = n * hy_dtype_size(dt);
    void *got = malloc(bytes);
    cr_assert_not_null(got);
    memcpy(got, map, bytes);
    hyt_sort_ref(dt, got, n);
    bool same = memcmp(got, want, bytes) == 0;
    free(got);
    return same;
}

/* A hybrid sort of n elements of dtype by memfd (spread: fill_spread, else hyt_fill):
 * byte-identical to the reference; the row checked; returns whether it ran as a split that
 * shed the devices some keys (cpu_items below n). */
static bool sort_memfd_ok(hyt_client *c, int dt, size_t n, uint64_t seed, bool spread,
                          unsigned devices, unsigned repeat, const char *what)
{
    size_t bytes = n * hy_dtype_size(dt);
    int fd;
    void *map, *want;
    sealed_array(dt, n, seed, spread, &fd, &map, &want);
    hy_msg_submit sm = hyt_sort_memfd(HY_BACKEND_HYBRID, 0, dt, n);
    sm.repeat = repeat; /* each run from the input again */
    hyt_job j;
    suite_run_ok(c, &sm, &fd, 1, &j, what);
    cr_expect_eq(memcmp(map, want, bytes), 0, "%s: differs from the reference", what);
    check_sort_breakdown(&j.rows[0], n, devices, what);
    bool shed = !(j.rows[0].flags & HY_ROW_NO_GAIN) && j.rows[0].cpu_items < n;
    hyt_job_release(c, &j);
    hy_memfd_unmap(map, bytes);
    close(fd);
    free(want);
    return shed;
}

Test(daemon_hybrid, sort_in_key_ranges_is_byte_identical_for_every_dtype,
     .init = start_with_devices)
{
    hyt_client *c = suite_client();
    unsigned devices = has_device(c) ? 1 : 0;
    /* Arrays the pool's one pass does not take (up to 2^17 keys here) are sorted whole by
     * the pool, inline. */
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
        snprintf(what, sizeof what, "hybrid %s sort of %zu", hy_dtype_name(dt), cnt);
        suite_run_ok(c, &s, NULL, 0, &j, what);
        cr_assert_eq(j.array_bytes, bytes, "%s: %u bytes back", what, j.array_bytes);
        cr_expect_eq(memcmp(j.array, want, bytes), 0, "%s: differs from the reference", what);
        check_sort_breakdown(&j.rows[0], cnt, devices, what);
        cr_expect_eq(j.rows[0].cpu_items, cnt, "%s: the pool sorted %llu of %zu keys", what,
                     (unsigned long long)j.rows[0].cpu_items, cnt);
        if (devices && !(j.rows[0].flags & HY_ROW_NO_GAIN))
            cr_expect(j.rows[0].flags & HY_ROW_WHOLE, "%s: a split the pool sorted whole, "
                      "flags 0x%x without WHOLE", what, j.rows[0].flags);
        hyt_job_release(c, &j);
        free(data);
        free(want);
    }
    /* Large enough for the one pass: the first sort of each key width splits (no rates are
     * known yet, and the small sorts above measured none), so the device's range holds
     * some. Later ones may run on one side alone when the rates
     * measured predict no gain, and say so. */
    const size_t big = (1u << 20) + 1001;
    for (int dt = HY_DT_I32; dt <= HY_DT_F64; dt++) {
        char what[48];
        snprintf(what, sizeof what, "hybrid %s sort of %zu", hy_dtype_name(dt), big);
        bool first_of_width = dt == HY_DT_I32 || dt == HY_DT_I64;
        bool shed = sort_memfd_ok(c, dt, big, 800 + (uint64_t)dt, true, devices, 1, what);
        if (devices && first_of_width)
            cr_expect(shed, "%s: the first split of its width shed nothing", what);
    }
    /* Repeated runs, each from the input again; and crowded keys the pool sorts whole. */
    sort_memfd_ok(c, HY_DT_F64, 1500000, 9, true, devices, 3, "memfd f64 hybrid sort, 3 runs");
    sort_memfd_ok(c, HY_DT_U64, big, 10, false, devices, 1, "crowded u64 hybrid sort");
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
    void *map, *want;
    /* Spread keys: the pool's one pass takes them, and the first run sheds the device a
     * range. */
    sealed_array(HY_DT_F64, n, 77, true, &fd, &map, &want);
    hy_msg_submit sm = hyt_sort_memfd(HY_BACKEND_HYBRID, 0, HY_DT_F64, n);
    sm.repeat = 200; /* seconds: surely running when cancelled */
    hyt_job j;
    cr_assert_eq(hyt_submit(c, &sm, &fd, 1, &j), 0);
    cr_assert_eq(hyt_wait_accepted(c, &j, HYT_WAIT_MS), 0);
    cr_assert(j.accepted, "refused: %s \"%s\"", suite_code(j.code), j.message);
    usleep(100000); /* in one of its runs: split or alone, as the rates measured say */
    cr_assert_eq(hyt_cancel(c, j.job_id, NULL), 0);
    cr_assert_eq(hyt_wait_final(c, &j, HYT_WAIT_MS), 0, "no final answer after the cancel");
    cr_expect_eq(j.code, HY_ECANCELED, "ended %s \"%s\"", suite_code(j.code), j.message);
    cr_expect(same_elements(HY_DT_F64, map, want, n), "the cancelled sort lost or changed "
              "elements");
    hyt_job_release(c, &j);
    hy_memfd_unmap(map, n * 8);
    close(fd);
    free(want);
    /* The daemon serves the next job. */
    hy_msg_submit s = hyt_pi(HY_BACKEND_HYBRID, 0, 1000003, 2);
    suite_run_ok(c, &s, NULL, 0, &j, "hybrid pi after the cancel");
    suite_check_pi_row(&j.rows[0], HY_BACKEND_HYBRID, 2, 2, 1000003, 1, "after the cancel");
    hyt_job_release(c, &j);
    suite_client_clean(c);
    hyt_close(c);
}

/* A daemon whose device's first OpenCL job meets a broken queue (planted), and a client;
 * skips without a usable device. */
static hyt_client *start_faulty(void)
{
    cr_assert_eq(setenv("HYBRIDD_TEST_CL_FAULT", "1", 1), 0);
    start_hybrid(true);
    unsetenv("HYBRIDD_TEST_CL_FAULT");
    hyt_client *c = suite_client();
    if (!has_device(c)) {
        hyt_close(c);
        suite_skip("no usable OpenCL device");
    }
    return c;
}

/* Runs s, which must fail with a sentence naming the device. */
static void expect_device_failure(hyt_client *c, const hy_msg_submit *s, const int *fds,
                                  unsigned nfds)
{
    hyt_job j;
    cr_assert_eq(hyt_run(c, s, fds, nfds, &j), 0, "%s", c->err.msg);
    cr_expect_eq(j.code, HY_EBACKEND, "the job ended %s \"%s\"", suite_code(j.code), j.message);
    cr_expect(strstr(j.message, "OpenCL device 0") && strstr(j.message, "hybrid"),
              "the sentence does not name the device: %s", j.message);
    hyt_job_release(c, &j);
}

/* The device's first OpenCL job meets a broken queue (planted): the hybrid job that ran it
 * fails with a sentence naming the device, the pool is stopped, and the next hybrid job
 * (the device rebuilt) counts the right hits. */
Test(daemon_hybrid, a_device_failing_mid_job_fails_the_job_naming_it)
{
    hyt_client *c = start_faulty();
    hy_msg_submit s = hyt_pi(HY_BACKEND_HYBRID, 0, 60000001, 6);
    hyt_job j;
    expect_device_failure(c, &s, NULL, 0);
    suite_run_ok(c, &s, NULL, 0, &j, "hybrid after the device failed");
    suite_check_pi_row(&j.rows[0], HY_BACKEND_HYBRID, 2, 6, 60000001, 1, "after the failure");
    hyt_job_release(c, &j);
    suite_client_clean(c);
    hyt_close(c);
}

/* The same planted fault met by a split sort: the device fails on the range the pool shed
 * it, the job fails naming it, the client's array still holds every element, and the next
 * sort (the device rebuilt) is right. */
Test(daemon_hybrid, a_device_failing_in_a_split_sort_loses_no_element)
{
    hyt_client *c = start_faulty();
    const size_t n = (1u << 20) + 3;
    int fd;
    void *map, *want;
    sealed_array(HY_DT_F64, n, 31, true, &fd, &map, &want);
    hy_msg_submit sm = hyt_sort_memfd(HY_BACKEND_HYBRID, 0, HY_DT_F64, n);
    expect_device_failure(c, &sm, &fd, 1);
    cr_expect(same_elements(HY_DT_F64, map, want, n), "the failed sort lost or changed "
              "elements");
    hy_memfd_unmap(map, n * 8);
    close(fd);
    free(want);
    sort_memfd_ok(c, HY_DT_F64, n, 32, true, 1, 1, "hybrid sort after the failure");
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
