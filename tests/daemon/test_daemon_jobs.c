/* tests/daemon: a real hybridd serving jobs — the handshake, pi and sort on every CPU
 * backend (bit-identical to the references), compares, progress, cancel, a client that goes
 * away mid-job, and the STATUS and DEVICES counters. */
#include <unistd.h>

#include "../children.h"
#include "suite.h"

TestSuite(daemon_jobs, .init = suite_start_default, .fini = suite_stop, .timeout = 60);

Test(daemon_jobs, welcome_states_the_limits_and_ping_echoes)
{
    hyt_client *c = suite_client();
    const hy_msg_welcome *w = &c->welcome;
    cr_expect_eq(w->version, 1);
    cr_expect_eq(w->features, HY_FEATURE_MEMFD | HY_FEATURE_PROGRESS, "features 0x%x",
                 w->features);
    cr_expect_eq(w->max_payload, 65536, "max_payload %u", w->max_payload);
    cr_expect_eq(w->max_jobs_per_client, 4, "max_jobs_per_client %u", w->max_jobs_per_client);
    cr_expect_eq(w->max_samples, 1000000000000ull, "max_samples %llu",
                 (unsigned long long)w->max_samples);
    cr_expect_eq(w->max_sort_elements, 1000000ull, "max_sort_elements %llu",
                 (unsigned long long)w->max_sort_elements);
    cr_expect_gt(w->max_inline_bytes, 0);
    cr_expect_leq(w->max_inline_bytes, w->max_payload);
    cr_expect_gt(strlen(c->welcome_server), 0, "WELCOME names no server");

    /* PONG echoes nonce and request id. */
    hy_msg m = {.type = HY_MSG_PING, .request = 0x1234567890ull};
    m.u.ping.nonce = 0xfeedfacecafebeefull;
    cr_assert_eq(hyt_send(c, &m, NULL, 0), 0);
    cr_assert_eq(hyt_recv(c, HYT_WAIT_MS), 0, "%s", c->err.msg);
    cr_assert_eq(c->msg->type, HY_MSG_PONG, "PING answered with type %u", c->msg->type);
    cr_expect_eq(c->msg->request, 0x1234567890ull);
    cr_expect_eq(c->msg->u.ping.nonce, 0xfeedfacecafebeefull);
    cr_expect_eq(hyt_ping(c, 7), 0);
    hyt_close(c);
}

Test(daemon_jobs, features_granted_are_the_intersection)
{
    hyt_client *c = hyt_connect(D.sock);
    cr_assert_not_null(c);
    cr_assert_eq(hyt_hello(c, HY_FEATURE_PROGRESS | 0x100u), 0, "%s", c->err.msg);
    cr_expect_eq(c->welcome.features, HY_FEATURE_PROGRESS, "features 0x%x",
                 c->welcome.features);
    hyt_close(c);
}

Test(daemon_jobs, first_message_not_hello_is_eproto_then_close)
{
    hyt_client *c = hyt_connect(D.sock);
    cr_assert_not_null(c);
    hy_msg m = {.type = HY_MSG_PING, .request = 5};
    m.u.ping.nonce = 1;
    cr_assert_eq(hyt_send(c, &m, NULL, 0), 0);
    int rc = hyt_recv(c, HYT_WAIT_MS);
    cr_assert_eq(rc, 0, "no answer to a PING before HELLO (%d %s)", rc, c->err.msg);
    cr_assert_eq(c->msg->type, HY_MSG_ERROR, "PING before HELLO answered with type %u",
                 c->msg->type);
    cr_expect_eq(c->msg->u.error.code, HY_EPROTO, "code %d", c->msg->u.error.code);
    cr_expect_eq(hyt_recv(c, HYT_WAIT_MS), HYT_EOF, "connection not closed after EPROTO");
    hyt_close(c);
}

Test(daemon_jobs, hello_without_a_common_version_is_eversion)
{
    hyt_client *c = hyt_connect(D.sock);
    cr_assert_not_null(c);
    hy_msg m = {.type = HY_MSG_HELLO, .request = 1};
    m.u.hello.min_version = 2;
    m.u.hello.max_version = 3;
    cr_assert_eq(hyt_send(c, &m, NULL, 0), 0);
    cr_assert_eq(hyt_recv(c, HYT_WAIT_MS), 0, "%s", c->err.msg);
    cr_assert_eq(c->msg->type, HY_MSG_ERROR, "type %u", c->msg->type);
    cr_expect_eq(c->msg->u.error.code, HY_EVERSION, "code %d", c->msg->u.error.code);
    cr_expect_eq(hyt_recv(c, HYT_WAIT_MS), HYT_EOF, "connection not closed after EVERSION");
    hyt_close(c);
}

Test(daemon_jobs, second_hello_is_eproto_and_the_stream_goes_on)
{
    hyt_client *c = suite_client();
    hy_msg m = {.type = HY_MSG_HELLO, .request = 77};
    m.u.hello.min_version = 1;
    m.u.hello.max_version = 1;
    cr_assert_eq(hyt_send(c, &m, NULL, 0), 0);
    cr_assert_eq(hyt_recv(c, HYT_WAIT_MS), 0, "%s", c->err.msg);
    cr_assert_eq(c->msg->type, HY_MSG_ERROR, "second HELLO answered with type %u",
                 c->msg->type);
    cr_expect_eq(c->msg->u.error.code, HY_EPROTO, "code %d", c->msg->u.error.code);
    cr_expect_eq(c->msg->request, 77);
    cr_expect_eq(hyt_ping(c, 99), 0, "no PONG after a second HELLO: the stream was closed");
    hyt_close(c);
}

Test(daemon_jobs, pi_is_bit_identical_on_every_cpu_backend)
{
    hyt_client *c = suite_client();
    const uint64_t n = 1000003, seed = 42;
    const struct {
        uint16_t backend;
        uint32_t threads;
    } cfg[] = {{HY_BACKEND_SERIAL, 1}, {HY_BACKEND_NATIVE, 1}, {HY_BACKEND_NATIVE, 2},
               {HY_BACKEND_LOCKED, 1}, {HY_BACKEND_LOCKED, 2}};
    for (unsigned i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "pi on %s with %u threads",
                 hy_backend_name(cfg[i].backend), cfg[i].threads);
        hy_msg_submit s = hyt_pi(cfg[i].backend, cfg[i].threads, n, seed);
        hyt_job j;
        suite_run_ok(c, &s, NULL, 0, &j, what);
        cr_assert_eq(j.kind, HY_JOB_PI, "%s: RESULT job %u", what, j.kind);
        cr_assert_eq(j.nrows, 1, "%s: %u rows, want 1", what, j.nrows);
        cr_expect_eq(j.plan.nrows, 1, "%s: ACCEPTED nrows %u", what, j.plan.nrows);
        cr_expect_eq(j.plan.threads, cfg[i].threads, "%s: ACCEPTED threads %u", what,
                     j.plan.threads);
        cr_expect_eq(j.plan.repeat, 1u);
        cr_expect_eq(j.plan.warmup, 0u);
        cr_expect_eq(j.array_bytes, 0);
        suite_check_pi_row(&j.rows[0], cfg[i].backend, cfg[i].threads, seed, n, 1, what);
        hyt_job_release(c, &j);
    }
    /* Another seed, with repetitions. */
    hy_msg_submit s = hyt_pi(HY_BACKEND_NATIVE, 2, 123457, 7);
    s.repeat = 3;
    hyt_job j;
    suite_run_ok(c, &s, NULL, 0, &j, "pi repeat 3");
    cr_assert_eq(j.nrows, 1);
    suite_check_pi_row(&j.rows[0], HY_BACKEND_NATIVE, 2, 7, 123457, 3, "pi repeat 3");
    hyt_job_release(c, &j);
    suite_client_clean(c);
    hyt_close(c);
}

Test(daemon_jobs, refused_submits_get_one_error_at_once)
{
    hyt_client *c = suite_client();
    hy_msg_submit s;
    s = hyt_pi(HY_BACKEND_NATIVE, 3, 1000, 1);
    suite_run_refused(c, &s, NULL, 0, HY_EINVAL, HY_ELIMIT, "native 3 threads (pool 2)");
    s = hyt_pi(HY_BACKEND_LOCKED, 300, 1000, 1);
    suite_run_refused(c, &s, NULL, 0, HY_EINVAL, HY_ELIMIT, "locked 300 threads (pool 2)");
    s = hyt_pi(HY_BACKEND_SERIAL, 2, 1000, 1);
    suite_run_refused(c, &s, NULL, 0, HY_EINVAL, HY_ELIMIT, "serial with 2 threads");
    s = hyt_pi(HY_BACKEND_OPENCL, 0, 1000, 1);
    suite_run_refused(c, &s, NULL, 0, HY_EBACKEND, 0, "opencl while disabled");
    s = hyt_pi(HY_BACKEND_NATIVE, 2, 1000000000001ull, 1);
    suite_run_refused(c, &s, NULL, 0, HY_ELIMIT, 0, "pi n above limits.samples");
    s = hyt_pi(HY_BACKEND_NATIVE, 2, 0, 1);
    hyt_job j;
    cr_assert_eq(hyt_run(c, &s, NULL, 0, &j), 0);
    cr_expect(j.code == 0 || j.code == HY_EINVAL || j.code == HY_ELIMIT,
              "pi n 0: got %s \"%s\"", suite_code(j.code), j.message);
    hyt_job_release(c, &j);
    /* Sort above limits.sort_elements (1e6), in a memfd so the frame is small. */
    s = hyt_sort_memfd(HY_BACKEND_NATIVE, 2, HY_DT_I32, 1000001);
    int fd;
    void *map;
    hy_error err;
    cr_assert_eq(hy_memfd_create("hyt", 1000001 * 4, &fd, &map, &err), 0, "%s", err.msg);
    cr_assert_eq(hy_memfd_seal(fd, &err), 0, "%s", err.msg);
    suite_run_refused(c, &s, &fd, 1, HY_ELIMIT, 0, "sort n above limits.sort_elements");
    hy_memfd_unmap(map, 1000001 * 4);
    close(fd);
    /* The connection is still fine. */
    cr_expect_eq(hyt_ping(c, 3), 0);
    suite_client_clean(c);
    hyt_close(c);
}

static void check_sorted(int dtype, const void *got, const void *want, size_t n,
                         const char *what)
{
    size_t size = hy_dtype_size(dtype);
    if (memcmp(got, want, n * size) == 0)
        return;
    for (size_t i = 0; i < n; i++)
        if (memcmp((const char *)got + i * size, (const char *)want + i * size, size) != 0)
            cr_assert_fail("%s: sorted %s array differs from the reference first at element "
                           "%zu of %zu",
                           what, hy_dtype_name(dtype), i, n);
}

Test(daemon_jobs, inline_sort_matches_the_reference_for_every_dtype_and_backend)
{
    hyt_client *c = suite_client();
    const size_t n = 1500;
    const struct {
        uint16_t backend;
        uint32_t threads;
    } cfg[] = {{HY_BACKEND_SERIAL, 1}, {HY_BACKEND_NATIVE, 2}, {HY_BACKEND_LOCKED, 2}};
    for (int dt = HY_DT_I32; dt <= HY_DT_F64; dt++) {
        size_t bytes = n * hy_dtype_size(dt);
        void *data = malloc(bytes), *want = malloc(bytes);
        cr_assert(data && want);
        hyt_fill(dt, data, n, 1000 + (uint64_t)dt);
        memcpy(want, data, bytes);
        hyt_sort_ref(dt, want, n);
        for (unsigned b = 0; b < sizeof cfg / sizeof cfg[0]; b++) {
            char what[64];
            snprintf(what, sizeof what, "inline %s sort on %s/%u", hy_dtype_name(dt),
                     hy_backend_name(cfg[b].backend), cfg[b].threads);
            hy_msg_submit s = hyt_sort_inline(cfg[b].backend, cfg[b].threads, dt, data, n);
            hyt_job j;
            suite_run_ok(c, &s, NULL, 0, &j, what);
            cr_assert_eq(j.kind, HY_JOB_SORT, "%s: RESULT job %u", what, j.kind);
            cr_assert_eq(j.nrows, 1, "%s: %u rows", what, j.nrows);
            cr_expect_eq(j.rows[0].backend, cfg[b].backend, "%s", what);
            cr_expect_eq(j.rows[0].n, n, "%s: row n %llu", what,
                         (unsigned long long)j.rows[0].n);
            suite_check_timing(&j.rows[0], 1, what);
            cr_assert_eq(j.array_bytes, bytes, "%s: RESULT array %u bytes, want %zu", what,
                         j.array_bytes, bytes);
            check_sorted(dt, j.array, want, n, what);
            hyt_job_release(c, &j);
        }
        free(data);
        free(want);
    }
    suite_client_clean(c);
    hyt_close(c);
}

Test(daemon_jobs, memfd_sort_sorts_in_place)
{
    hyt_client *c = suite_client();
    const size_t n = 300000;
    const int dts[] = {HY_DT_I64, HY_DT_F64, HY_DT_U32};
    for (unsigned k = 0; k < 3; k++) {
        int dt = dts[k];
        size_t bytes = n * hy_dtype_size(dt);
        int fd;
        void *map;
        hy_error err;
        cr_assert_eq(hy_memfd_create("hyt-sort", bytes, &fd, &map, &err), 0, "%s", err.msg);
        hyt_fill(dt, map, n, 77 + k);
        void *want = malloc(bytes);
        cr_assert_not_null(want);
        memcpy(want, map, bytes);
        hyt_sort_ref(dt, want, n);
        cr_assert_eq(hy_memfd_seal(fd, &err), 0, "%s", err.msg);
        char what[64];
        snprintf(what, sizeof what, "memfd %s sort on native/2", hy_dtype_name(dt));
        hy_msg_submit s = hyt_sort_memfd(k == 2 ? HY_BACKEND_LOCKED : HY_BACKEND_NATIVE, 2, dt,
                                         n);
        hyt_job j;
        suite_run_ok(c, &s, &fd, 1, &j, what);
        cr_expect_eq(j.array_bytes, 0, "%s: memfd RESULT carries %u array bytes", what,
                     j.array_bytes);
        cr_assert_eq(j.nrows, 1);
        cr_expect_eq(j.rows[0].n, n);
        check_sorted(dt, map, want, n, what);
        hyt_job_release(c, &j);
        hy_memfd_unmap(map, bytes);
        close(fd);
        free(want);
    }
    suite_client_clean(c);
    hyt_close(c);
}

static bool row_is(const hy_result_row *r, uint16_t backend, uint32_t threads)
{
    return r->backend == backend && r->threads == threads;
}

/* Every row says how its timed runs spread: the quartiles around the median inside min..max,
 * the mean inside them too, a standard deviation no wider than the range (0 for one run),
 * and the warm-up's time where a warm-up ran (compares), 0 where none did. */
static void expect_spread(const hy_result_row *r, bool warmup, const char *what)
{
    cr_expect(r->min_ns <= r->q1_ns && r->q1_ns <= r->median_ns && r->median_ns <= r->q3_ns &&
                  r->q3_ns <= r->max_ns,
              "%s: min %llu q1 %llu median %llu q3 %llu max %llu", what,
              (unsigned long long)r->min_ns, (unsigned long long)r->q1_ns,
              (unsigned long long)r->median_ns, (unsigned long long)r->q3_ns,
              (unsigned long long)r->max_ns);
    cr_expect(r->min_ns <= r->mean_ns && r->mean_ns <= r->max_ns, "%s: mean %llu", what,
              (unsigned long long)r->mean_ns);
    cr_expect_leq(r->stddev_ns, r->max_ns - r->min_ns, "%s: stddev", what);
    if (r->repeat == 1)
        cr_expect_eq(r->stddev_ns, 0u, "%s: one run has no deviation", what);
    if (warmup)
        cr_expect_gt(r->warmup_ns, 0u, "%s: the warm-up's time", what);
    else
        cr_expect_eq(r->warmup_ns, 0u, "%s: no warm-up ran", what);
}

Test(daemon_jobs, rows_state_their_spread_and_warmup)
{
    hyt_client *c = suite_client();
    hy_msg_submit s = {0};
    s.job = HY_JOB_COMPARE_PI;
    s.repeat = 5;
    s.n = 200000;
    s.seed = 3;
    s.backends = (1u << HY_BACKEND_SERIAL) | (1u << HY_BACKEND_NATIVE);
    s.nthreads_list = 1;
    s.threads_list[0] = 2;
    hyt_job j;
    suite_run_ok(c, &s, NULL, 0, &j, "compare pi, 5 runs");
    for (unsigned r = 0; r < j.nrows; r++)
        expect_spread(&j.rows[r], true, hy_backend_name(j.rows[r].backend));
    hyt_job_release(c, &j);
    hy_msg_submit one = hyt_pi(HY_BACKEND_NATIVE, 2, 100000, 1);
    suite_run_ok(c, &one, NULL, 0, &j, "pi, one run");
    expect_spread(&j.rows[0], false, "a single job");
    cr_expect_eq(j.rows[0].q1_ns, j.rows[0].median_ns);
    cr_expect_eq(j.rows[0].mean_ns, j.rows[0].median_ns);
    cr_expect_eq(j.plan.warmup, 0u, "a single job warms up only when asked");
    hyt_job_release(c, &j);
    one.warmup = 2; /* asked: ACCEPTED says so and the row times its first */
    one.repeat = 3;
    suite_run_ok(c, &one, NULL, 0, &j, "pi, 2 warm-ups and 3 runs");
    cr_expect_eq(j.plan.warmup, 2u);
    cr_expect_eq(j.rows[0].repeat, 3u);
    expect_spread(&j.rows[0], true, "a single job with warm-ups");
    hyt_job_release(c, &j);
    suite_client_clean(c);
    hyt_close(c);
}

Test(daemon_jobs, compare_pi_has_a_serial_baseline_and_one_row_per_configuration)
{
    hyt_client *c = suite_client();
    const uint64_t n = 2000000, seed = 2024;
    hy_msg_submit s = {0};
    s.job = HY_JOB_COMPARE_PI;
    s.repeat = 2;
    s.n = n;
    s.seed = seed;
    s.backends = (1u << HY_BACKEND_SERIAL) | (1u << HY_BACKEND_NATIVE) | (1u << HY_BACKEND_LOCKED);
    s.nthreads_list = 2;
    s.threads_list[0] = 1;
    s.threads_list[1] = 2;
    hyt_job j;
    suite_run_ok(c, &s, NULL, 0, &j, "compare pi");
    cr_assert_eq(j.kind, HY_JOB_COMPARE_PI, "RESULT job %u", j.kind);
    cr_assert_eq(j.nrows, 5, "compare pi serial+native+locked x {1,2}: %u rows, want 5",
                 j.nrows);
    /* ACCEPTED said so before the job ran: its rows and runs, no single thread count. */
    cr_expect_eq(j.plan.nrows, 5, "ACCEPTED nrows %u, want 5", j.plan.nrows);
    cr_expect_eq(j.plan.threads, 0u);
    cr_expect_eq(j.plan.repeat, 2u);
    cr_expect_eq(j.plan.warmup, 1u);
    cr_expect(row_is(&j.rows[0], HY_BACKEND_SERIAL, 1), "row 0 is %s/%u, want serial/1",
              hy_backend_name(j.rows[0].backend), j.rows[0].threads);
    const struct {
        uint16_t b;
        uint32_t t;
    } want[] = {{HY_BACKEND_SERIAL, 1}, {HY_BACKEND_NATIVE, 1}, {HY_BACKEND_NATIVE, 2},
                {HY_BACKEND_LOCKED, 1}, {HY_BACKEND_LOCKED, 2}};
    for (unsigned w = 0; w < 5; w++) {
        unsigned found = 0;
        for (unsigned r = 0; r < j.nrows; r++)
            if (row_is(&j.rows[r], want[w].b, want[w].t)) {
                found++;
                char what[64];
                snprintf(what, sizeof what, "compare pi row %u (%s/%u)", r,
                         hy_backend_name(want[w].b), want[w].t);
                suite_check_pi_row(&j.rows[r], want[w].b, want[w].t, seed, n, 2, what);
            }
        cr_expect_eq(found, 1, "compare pi: %u rows for %s/%u, want 1", found,
                     hy_backend_name(want[w].b), want[w].t);
    }
    hyt_job_release(c, &j);

    /* Serial not asked for: the baseline comes anyway, first. */
    s.backends = 1u << HY_BACKEND_NATIVE;
    s.nthreads_list = 1;
    s.threads_list[0] = 2;
    s.repeat = 1;
    suite_run_ok(c, &s, NULL, 0, &j, "compare pi native/2 only");
    cr_assert_eq(j.nrows, 2, "compare native/2: %u rows, want serial baseline + 1", j.nrows);
    cr_expect_eq(j.plan.nrows, 2, "ACCEPTED nrows %u, want 2", j.plan.nrows);
    suite_check_pi_row(&j.rows[0], HY_BACKEND_SERIAL, 1, seed, n, 1, "baseline row");
    suite_check_pi_row(&j.rows[1], HY_BACKEND_NATIVE, 2, seed, n, 1, "native/2 row");
    hyt_job_release(c, &j);

    /* A compare naming opencl while it is disabled cannot run. */
    s.backends = (1u << HY_BACKEND_NATIVE) | (1u << HY_BACKEND_OPENCL);
    suite_run_refused(c, &s, NULL, 0, HY_EBACKEND, 0, "compare with opencl disabled");
    suite_client_clean(c);
    hyt_close(c);
}

Test(daemon_jobs, compare_sort_rows_and_array)
{
    hyt_client *c = suite_client();
    const size_t n = 4000;
    double *data = malloc(n * 8), *want = malloc(n * 8);
    cr_assert(data && want);
    hyt_fill(HY_DT_F64, data, n, 5);
    memcpy(want, data, n * 8);
    hyt_sort_ref(HY_DT_F64, want, n);
    hy_msg_submit s = hyt_sort_inline(0, 0, HY_DT_F64, data, n);
    s.job = HY_JOB_COMPARE_SORT;
    s.repeat = 2;
    s.backends = (1u << HY_BACKEND_NATIVE) | (1u << HY_BACKEND_LOCKED);
    s.nthreads_list = 2;
    s.threads_list[0] = 1;
    s.threads_list[1] = 2;
    hyt_job j;
    suite_run_ok(c, &s, NULL, 0, &j, "compare sort");
    cr_assert_eq(j.kind, HY_JOB_COMPARE_SORT);
    cr_assert_eq(j.nrows, 5, "compare sort: %u rows, want serial + 4", j.nrows);
    cr_expect(row_is(&j.rows[0], HY_BACKEND_SERIAL, 1), "row 0 is %s/%u",
              hy_backend_name(j.rows[0].backend), j.rows[0].threads);
    for (unsigned r = 0; r < j.nrows; r++) {
        char what[48];
        snprintf(what, sizeof what, "compare sort row %u", r);
        cr_expect_eq(j.rows[r].n, n, "%s: n %llu", what, (unsigned long long)j.rows[r].n);
        suite_check_timing(&j.rows[r], 2, what);
    }
    /* The sorted array, when it comes back, is the reference's. */
    if (j.array_bytes) {
        cr_assert_eq(j.array_bytes, n * 8);
        check_sorted(HY_DT_F64, j.array, want, n, "compare sort array");
    }
    hyt_job_release(c, &j);
    free(data);
    free(want);
    hyt_close(c);
}

Test(daemon_jobs, progress_only_when_asked)
{
    /* 2e9 samples on 2 native threads runs for about a second here: long enough for the
     * 100 ms progress reports. */
    const uint64_t n = 2000000000ull;
    hyt_client *c = suite_client();
    hy_msg_submit s = hyt_pi(HY_BACKEND_NATIVE, 2, n, 11);
    hyt_job j;
    suite_run_ok(c, &s, NULL, 0, &j, "long pi with PROGRESS");
    cr_expect_gt(j.progress, 0, "no PROGRESS for a %llu-sample job",
                 (unsigned long long)n);
    cr_expect(!j.progress_bad, "a PROGRESS had done > total or total 0");
    cr_expect_eq(j.rows[0].n, n);
    uint64_t hits1 = j.rows[0].hits;
    hyt_job_release(c, &j);
    suite_client_clean(c);
    hyt_close(c);

    c = hyt_connect(D.sock);
    cr_assert_not_null(c);
    cr_assert_eq(hyt_hello(c, HY_FEATURE_MEMFD), 0);
    cr_expect_eq(c->welcome.features, HY_FEATURE_MEMFD);
    s = hyt_pi(HY_BACKEND_LOCKED, 2, n / 2, 11);
    suite_run_ok(c, &s, NULL, 0, &j, "long pi without PROGRESS");
    cr_expect_eq(j.progress, 0, "%u PROGRESS frames though the feature was not asked for",
                 j.progress);
    cr_expect_lt(j.rows[0].hits, hits1);
    hyt_job_release(c, &j);
    hyt_close(c);
}

Test(daemon_jobs, cancel_queued_and_running_jobs)
{
    hyt_client *c = suite_client();
    hyt_client *other = suite_client();
    hy_msg_status_reply st0, st1;
    cr_assert_eq(hyt_status(c, &st0), 0);

    /* 1e11 samples would run for about a minute: both are surely unfinished when cancelled. */
    hy_msg_submit s = hyt_pi(HY_BACKEND_NATIVE, 2, 100000000000ull, 1);
    hyt_job a, b;
    cr_assert_eq(hyt_submit(c, &s, NULL, 0, &a), 0);
    cr_assert_eq(hyt_wait_accepted(c, &a, HYT_WAIT_MS), 0);
    cr_assert(a.accepted, "first long job refused: %s \"%s\"", suite_code(a.code), a.message);
    cr_assert_eq(hyt_submit(c, &s, NULL, 0, &b), 0);
    cr_assert_eq(hyt_wait_accepted(c, &b, HYT_WAIT_MS), 0);
    cr_assert(b.accepted, "second long job refused: %s \"%s\"", suite_code(b.code), b.message);
    cr_expect_neq(a.job_id, b.job_id);
    cr_expect_eq(a.queue_position, 0, "the first job on an idle daemon is at position %u",
                 a.queue_position);
    cr_expect_geq(b.queue_position, 1, "second CPU-wide job at position %u, want queued",
                  b.queue_position);

    uint64_t req;
    /* An unknown id. */
    cr_assert_eq(hyt_cancel(c, 987654321ull, &req), 0);
    cr_assert_eq(hyt_recv_reply(c, HY_MSG_ERROR, req, HYT_WAIT_MS), 0, "%s", c->err.msg);
    cr_expect_eq(c->msg->u.error.code, HY_EINVAL, "CANCEL unknown: code %d",
                 c->msg->u.error.code);
    cr_expect_eq(c->msg->u.error.job_id, 987654321ull, "CANCEL unknown: job_id %llu",
                 (unsigned long long)c->msg->u.error.job_id);

    /* The queued one from another connection of the same user (what `hybridctl cancel`
     * does from another terminal), then the running one from its own connection. */
    cr_assert_eq(hyt_cancel(other, b.job_id, NULL), 0);
    cr_assert_eq(hyt_wait_final(c, &b, HYT_WAIT_MS), 0, "queued job: no final answer");
    cr_expect_eq(b.code, HY_ECANCELED, "cancelled queued job ended with %s \"%s\"",
                 suite_code(b.code), b.message);
    cr_expect_eq(b.error_job_id, b.job_id);
    cr_assert_eq(hyt_cancel(c, a.job_id, NULL), 0);
    cr_assert_eq(hyt_wait_final(c, &a, HYT_WAIT_MS), 0, "running job: no final answer");
    cr_expect_eq(a.code, HY_ECANCELED, "cancelled running job ended with %s \"%s\"",
                 suite_code(a.code), a.message);

    cr_assert_eq(hyt_wait_idle(c, &st1, HYT_WAIT_MS), 0, "jobs still running after cancel");
    cr_expect_eq(st1.jobs_cancelled, st0.jobs_cancelled + 2, "jobs_cancelled %llu -> %llu",
                 (unsigned long long)st0.jobs_cancelled,
                 (unsigned long long)st1.jobs_cancelled);
    /* A late CANCEL of a finished job brings no second final answer. */
    cr_assert_eq(hyt_cancel(c, a.job_id, NULL), 0);
    cr_expect_eq(hyt_ping(c, 1), 0);
    /* The daemon serves on. */
    hy_msg_submit small = hyt_pi(HY_BACKEND_NATIVE, 2, 100000, 3);
    hyt_job j;
    suite_run_ok(c, &small, NULL, 0, &j, "small pi after cancels");
    suite_check_pi_row(&j.rows[0], HY_BACKEND_NATIVE, 2, 3, 100000, 1, "small pi");
    cr_expect_eq(j.rows[0].ranks, 1u, "a job on one daemon: ranks %u", j.rows[0].ranks);
    hyt_job_release(c, &j);
    suite_client_clean(c);
    hyt_close(other);
    hyt_close(c);
}

Test(daemon_jobs, a_client_that_goes_away_has_its_jobs_cancelled)
{
    hyt_client *watch = suite_client();
    hy_msg_status_reply st0, st1;
    cr_assert_eq(hyt_status(watch, &st0), 0);

    hyt_client *c = suite_client();
    hy_msg_submit s = hyt_pi(HY_BACKEND_NATIVE, 2, 100000000000ull, 9);
    hyt_job a, b;
    cr_assert_eq(hyt_submit(c, &s, NULL, 0, &a), 0);
    cr_assert_eq(hyt_wait_accepted(c, &a, HYT_WAIT_MS), 0);
    cr_assert(a.accepted);
    cr_assert_eq(hyt_submit(c, &s, NULL, 0, &b), 0);
    cr_assert_eq(hyt_wait_accepted(c, &b, HYT_WAIT_MS), 0);
    cr_assert(b.accepted);
    hyt_close(c); /* both jobs outlive their client */

    /* Without the cancels the first job alone would run for about a minute, past the wait. */
    int rc = hyt_wait_idle(watch, &st1, HYT_WAIT_MS);
    cr_assert_eq(rc, 0, "jobs of a closed client still queued/running: queued %llu running "
                        "%llu",
                 (unsigned long long)st1.jobs_queued, (unsigned long long)st1.jobs_running);
    cr_expect_eq(st1.jobs_cancelled, st0.jobs_cancelled + 2, "jobs_cancelled %llu -> %llu",
                 (unsigned long long)st0.jobs_cancelled,
                 (unsigned long long)st1.jobs_cancelled);
    cr_expect_eq(st1.jobs_done, st0.jobs_done);

    hy_msg_submit small = hyt_pi(HY_BACKEND_NATIVE, 2, 100000, 4);
    hyt_job j;
    suite_run_ok(watch, &small, NULL, 0, &j, "pi after the other client left");
    suite_check_pi_row(&j.rows[0], HY_BACKEND_NATIVE, 2, 4, 100000, 1, "pi after leave");
    hyt_job_release(watch, &j);
    hyt_close(watch);
}

Test(daemon_jobs, status_and_devices_follow_the_jobs)
{
    hyt_client *c = suite_client();
    hy_msg_status_reply st0, st1;
    cr_assert_eq(hyt_status(c, &st0), 0);
    cr_expect_geq(st0.clients, 1, "clients %u", st0.clients);
    cr_expect_gt(st0.uptime_ns, 0);
    cr_expect_eq(st0.jobs_running, 0);
    cr_expect_eq(st0.jobs_queued, 0);
    cr_expect_eq(st0.devices, 0, "devices %u with opencl disabled", st0.devices);
    cr_expect_eq(st0.devices_usable, 0);
    cr_expect_gt(st0.version.len, 0, "STATUS_REPLY without a version");

    const struct {
        uint16_t backend;
        uint32_t threads;
    } cfg[] = {{HY_BACKEND_SERIAL, 1}, {HY_BACKEND_NATIVE, 2}, {HY_BACKEND_NATIVE, 1},
               {HY_BACKEND_LOCKED, 2}};
    for (unsigned i = 0; i < 4; i++) {
        hy_msg_submit s = hyt_pi(cfg[i].backend, cfg[i].threads, 2000000, i);
        hyt_job j;
        suite_run_ok(c, &s, NULL, 0, &j, "status pi");
        hyt_job_release(c, &j);
    }
    /* A refused submit is not a job. */
    hy_msg_submit bad = hyt_pi(HY_BACKEND_OPENCL, 0, 10, 1);
    suite_run_refused(c, &bad, NULL, 0, HY_EBACKEND, 0, "opencl disabled");

    cr_assert_eq(hyt_wait_idle(c, &st1, HYT_WAIT_MS), 0);
    cr_expect_eq(st1.jobs_done, st0.jobs_done + 4, "jobs_done %llu -> %llu after 4 jobs",
                 (unsigned long long)st0.jobs_done, (unsigned long long)st1.jobs_done);
    cr_expect_eq(st1.jobs_failed, st0.jobs_failed, "jobs_failed %llu -> %llu",
                 (unsigned long long)st0.jobs_failed, (unsigned long long)st1.jobs_failed);
    cr_expect_eq(st1.jobs_cancelled, st0.jobs_cancelled);
    cr_expect_gt(st1.uptime_ns, st0.uptime_ns);
    const uint64_t want_jobs[4] = {1, 2, 1, 0};
    for (unsigned b = 0; b < 4; b++) {
        cr_expect_eq(st1.backend_jobs[b], st0.backend_jobs[b] + want_jobs[b],
                     "backend_jobs[%s] %llu -> %llu, want +%llu", hy_backend_name((int)b + 1),
                     (unsigned long long)st0.backend_jobs[b],
                     (unsigned long long)st1.backend_jobs[b],
                     (unsigned long long)want_jobs[b]);
        if (want_jobs[b])
            cr_expect_gt(st1.backend_busy_ns[b], st0.backend_busy_ns[b],
                         "backend_busy_ns[%s] did not grow", hy_backend_name((int)b + 1));
        else
            cr_expect_eq(st1.backend_busy_ns[b], st0.backend_busy_ns[b]);
    }

    hy_msg_devices_reply *dv = calloc(1, sizeof *dv);
    cr_assert_not_null(dv);
    cr_assert_eq(hyt_devices(c, dv), 0, "%s", c->err.msg);
    cr_expect_eq(dv->ndevices, 0, "%u devices with opencl disabled", dv->ndevices);
    cr_expect_eq(dv->cpu_online, (uint32_t)sysconf(_SC_NPROCESSORS_ONLN), "cpu_online %u",
                 dv->cpu_online);
    cr_expect_eq(dv->native_threads, 2, "native_threads %u", dv->native_threads);
    cr_expect_eq(dv->locked_threads, 2, "locked_threads %u", dv->locked_threads);
    cr_expect_eq(dv->switch_interval_us, 5000, "switch_interval_us %u",
                 dv->switch_interval_us);
    free(dv);
    suite_client_clean(c);
    hyt_close(c);
}

Test(daemon_jobs, the_largest_inline_sort_comes_back_whole)
{
    hyt_client *c = suite_client();
    uint32_t inl = c->welcome.max_inline_bytes;
    /* The largest i32 array that the inline limit and one SUBMIT frame both allow. */
    size_t cap = c->welcome.max_payload - 64;
    size_t bytes = (inl < cap ? inl : cap) / 4 * 4;
    size_t n = bytes / 4;
    int32_t *data = malloc(bytes), *want = malloc(bytes);
    cr_assert(data && want);
    hyt_fill(HY_DT_I32, data, n, 123);
    memcpy(want, data, bytes);
    hyt_sort_ref(HY_DT_I32, want, n);
    hy_msg_submit s = hyt_sort_inline(HY_BACKEND_NATIVE, 2, HY_DT_I32, data, n);
    hyt_job j;
    int rc = hyt_run(c, &s, NULL, 0, &j);
    cr_assert_eq(rc, 0, "inline sort of %zu bytes (max_inline_bytes %u, max_payload %u): no "
                        "final answer (%d: %s)",
                 bytes, inl, c->welcome.max_payload, rc, c->err.msg);
    cr_assert_eq(j.code, 0, "inline sort of %zu bytes (max_inline_bytes %u): %s \"%s\"", bytes,
                 inl, suite_code(j.code), j.message);
    cr_assert_eq(j.array_bytes, bytes);
    check_sorted(HY_DT_I32, j.array, want, n, "largest inline sort");
    hyt_job_release(c, &j);
    /* One byte's worth more than max_inline_bytes is ELIMIT (when a frame can carry it). */
    if ((size_t)inl + 4 <= cap) {
        size_t n2 = inl / 4 + 1;
        int32_t *big = calloc(n2, 4);
        cr_assert_not_null(big);
        s = hyt_sort_inline(HY_BACKEND_NATIVE, 2, HY_DT_I32, big, n2);
        {
            char what[96];
            snprintf(what, sizeof what, "inline array of %zu bytes, max_inline_bytes %u", n2 * 4, inl);
            suite_run_refused(c, &s, NULL, 0, HY_ELIMIT, 0, what);
        }
        free(big);
    }
    free(data);
    free(want);
    suite_client_clean(c);
    hyt_close(c);
}

Test(daemon_jobs, pipelined_jobs_from_several_clients_all_get_their_answer)
{
    enum { CLIENTS = 2, JOBS = 4 }; /* 8 = limits.queued_jobs */
    hyt_client *c[CLIENTS];
    hyt_job j[CLIENTS][JOBS];
    for (int k = 0; k < CLIENTS; k++)
        c[k] = suite_client();
    /* Everything sent before anything is read. */
    for (int k = 0; k < CLIENTS; k++)
        for (int i = 0; i < JOBS; i++) {
            hy_msg_submit s = hyt_pi((uint16_t)(1 + (i % 3)), i % 3 ? 2 : 1, 300000 + 1000u * i,
                                     (uint64_t)(k * 10 + i));
            cr_assert_eq(hyt_submit(c[k], &s, NULL, 0, &j[k][i]), 0);
        }
    for (int k = 0; k < CLIENTS; k++)
        for (int i = 0; i < JOBS; i++) {
            hyt_job *x = &j[k][i];
            cr_assert_eq(hyt_wait_final(c[k], x, HYT_WAIT_MS), 0, "client %d job %d", k, i);
            cr_assert_eq(x->code, 0, "client %d job %d: %s \"%s\"", k, i, suite_code(x->code),
                         x->message);
            char what[48];
            snprintf(what, sizeof what, "pipelined client %d job %d", k, i);
            suite_check_pi_row(&x->rows[0], (uint16_t)(1 + (i % 3)), i % 3 ? 2 : 1,
                               (uint64_t)(k * 10 + i), 300000 + 1000u * i, 1, what);
            hyt_job_release(c[k], x);
        }
    for (int k = 0; k < CLIENTS; k++) {
        cr_expect_eq(hyt_ping(c[k], (uint64_t)k), 0);
        suite_client_clean(c[k]);
        hyt_close(c[k]);
    }
}

Test(daemon_jobs, a_compare_sort_of_the_largest_inline_array_gets_its_answer)
{
    hyt_client *c = suite_client();
    size_t bytes = c->welcome.max_inline_bytes / 8 * 8;
    /* SUBMIT's 72-byte body, then the two thread counts, then the array */
    if (bytes + 72 + 4 * 2 > c->welcome.max_payload)
        bytes = (c->welcome.max_payload - 80) / 8 * 8;
    size_t n = bytes / 8;
    double *data = malloc(bytes), *want = malloc(bytes);
    cr_assert(data && want);
    hyt_fill(HY_DT_F64, data, n, 31);
    memcpy(want, data, bytes);
    hyt_sort_ref(HY_DT_F64, want, n);
    hy_msg_submit s = hyt_sort_inline(0, 0, HY_DT_F64, data, n);
    s.job = HY_JOB_COMPARE_SORT;
    s.backends = (1u << HY_BACKEND_NATIVE) | (1u << HY_BACKEND_LOCKED);
    s.nthreads_list = 2;
    s.threads_list[0] = 1;
    s.threads_list[1] = 2;
    hyt_job j;
    int rc = hyt_run(c, &s, NULL, 0, &j);
    cr_assert_eq(rc, 0, "compare sort of %zu inline bytes (max_inline_bytes %u): no final "
                        "answer (%d: %s)",
                 bytes, c->welcome.max_inline_bytes, rc, c->err.msg);
    /* Either the whole answer within max_payload, or a refusal with a code — never a frame
     * the client must not accept. */
    if (j.code == 0) {
        cr_expect_eq(j.nrows, 5);
        if (j.array_bytes) {
            cr_assert_eq(j.array_bytes, bytes);
            check_sorted(HY_DT_F64, j.array, want, n, "compare sort at the inline limit");
        }
    }
    hyt_job_release(c, &j);
    cr_expect_eq(hyt_ping(c, 1), 0, "connection broken after a compare sort at the limit");
    free(data);
    free(want);
    hyt_close(c);
}

static void start_big(void)
{
    hyt_conf k = hyt_conf_default();
    k.sort_elements = 100000000ull;
    suite_start(&k);
}

TestSuite(daemon_memory, .init = start_big, .fini = suite_stop, .timeout = 120);

/* A huge sort's scratch (as large as its array) goes back to the system when the job ends:
 * the daemon keeps at most 256 MiB of it for the next job. */
Test(daemon_memory, a_huge_sort_leaves_no_scratch_behind)
{
    if (getenv("HYBRIDD_SANITIZER")) /* sanitizers keep freed memory in quarantine */
        suite_skip("RSS is not meaningful under a sanitizer");
    hyt_client *c = suite_client();
    hy_msg_submit p = hyt_pi(HY_BACKEND_NATIVE, 2, 100000, 1);
    hyt_job j;
    suite_run_ok(c, &p, NULL, 0, &j, "a small job first");
    hyt_job_release(c, &j);
    long before = hyt_rss_kib(D.pid);
    cr_assert_gt(before, 0, "cannot read the daemon's VmRSS");
    const size_t n = 48000000; /* 384 MB of u64: above what the daemon keeps */
    int fd;
    void *map;
    hy_error err;
    cr_assert_eq(hy_memfd_create("hyt-big", n * 8, &fd, &map, &err), 0, "%s", err.msg);
    uint64_t *a = map;
    for (size_t i = 0; i < n; i++)
        a[i] = (n - i) * 0x9e3779b97f4a7c15u;
    cr_assert_eq(hy_memfd_seal(fd, &err), 0, "%s", err.msg);
    hy_msg_submit s = hyt_sort_memfd(HY_BACKEND_NATIVE, 2, HY_DT_U64, n);
    suite_run_ok(c, &s, &fd, 1, &j, "a 384 MB sort");
    hyt_job_release(c, &j);
    for (size_t i = 1; i < n; i += 4099)
        cr_assert_leq(a[i - 1], a[i], "not sorted at %zu", i);
    long after = hyt_rss_kib(D.pid);
    cr_assert_gt(after, 0, "cannot read the daemon's VmRSS");
    /* It held 384 MB of scratch during the job. */
    cr_expect_lt(after - before, 128 * 1024, "daemon RSS %ld KiB before, %ld KiB after", before,
                 after);
    hy_memfd_unmap(map, n * 8);
    close(fd);
    suite_client_clean(c);
    hyt_close(c);
}

/* Pools of different sizes, so each default shows which pool it took. */
static void start_uneven(void)
{
    hyt_conf k = hyt_conf_default();
    k.native_threads = 4;
    k.locked_threads = 3;
    k.process_workers = 2;
    suite_start(&k);
}

TestSuite(daemon_defaults, .init = start_uneven, .fini = suite_stop, .timeout = 60);

/* A SUBMIT that leaves threads, the device, the backends or the thread list to the daemon
 * gets the daemon's defaults, and ACCEPTED says which, before the RESULT does. */
Test(daemon_defaults, threads_0_takes_the_pool_and_accepted_says_so)
{
    hyt_client *c = suite_client();
    const struct {
        uint16_t backend;
        uint32_t want;
    } cfg[] = {{HY_BACKEND_SERIAL, 1}, {HY_BACKEND_NATIVE, 4}, {HY_BACKEND_LOCKED, 3},
               {HY_BACKEND_PROCESS, 2}};
    for (unsigned i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "pi on %s with threads 0", hy_backend_name(cfg[i].backend));
        hy_msg_submit s = hyt_pi(cfg[i].backend, 0, 100003, 5);
        s.device = HY_IPC_DEVICE_DEFAULT; /* no device here: ignored by CPU backends */
        hyt_job j;
        suite_run_ok(c, &s, NULL, 0, &j, what);
        cr_expect_eq(j.plan.nrows, 1, "%s: ACCEPTED nrows %u", what, j.plan.nrows);
        cr_expect_eq(j.plan.threads, cfg[i].want, "%s: ACCEPTED threads %u, want %u", what,
                     j.plan.threads, cfg[i].want);
        suite_check_pi_row(&j.rows[0], cfg[i].backend, cfg[i].want, 5, 100003, 1, what);
        hyt_job_release(c, &j);
    }
    /* The OpenCL device left to the daemon, which has none: it says so. */
    hy_msg_submit p = hyt_pi(HY_BACKEND_OPENCL, 0, 1000, 1);
    p.device = HY_IPC_DEVICE_DEFAULT;
    suite_run_refused(c, &p, NULL, 0, HY_EBACKEND, 0, "opencl on the default device");
    suite_client_clean(c);
    hyt_close(c);
}

Test(daemon_defaults, an_empty_compare_gets_the_daemons_backends_and_thread_list)
{
    hyt_client *c = suite_client();
    hy_msg_submit s = {.job = HY_JOB_COMPARE_PI, .n = 100003, .seed = 9, .repeat = 1,
                       .device = HY_IPC_DEVICE_DEFAULT};
    hyt_job j;
    /* Every backend with resources here (no device: no opencl); 1 and the smallest pool, 2:
     * the process pool's. */
    suite_run_ok(c, &s, NULL, 0, &j, "compare with no backends and no threads");
    const struct {
        uint16_t b;
        uint32_t t;
    } want[] = {{HY_BACKEND_SERIAL, 1},  {HY_BACKEND_NATIVE, 1},  {HY_BACKEND_NATIVE, 2},
                {HY_BACKEND_LOCKED, 1},  {HY_BACKEND_LOCKED, 2},  {HY_BACKEND_PROCESS, 1},
                {HY_BACKEND_PROCESS, 2}};
    cr_assert_eq(j.nrows, 7, "%u rows, want 7", j.nrows);
    cr_expect_eq(j.plan.nrows, j.nrows, "ACCEPTED nrows %u, RESULT %u", j.plan.nrows, j.nrows);
    cr_expect_eq(j.plan.threads, 0u);
    cr_expect_eq(j.plan.repeat, 1u);
    cr_expect_eq(j.plan.warmup, 1u);
    for (unsigned r = 0; r < 7; r++)
        cr_expect(row_is(&j.rows[r], want[r].b, want[r].t), "row %u is %s/%u, want %s/%u", r,
                  hy_backend_name(j.rows[r].backend), j.rows[r].threads,
                  hy_backend_name(want[r].b), want[r].t);
    hyt_job_release(c, &j);

    /* Replicate mode plans no process rows, so the list runs up to the locked pool, 3. */
    s.mode = HY_MODE_REPLICATE;
    suite_run_ok(c, &s, NULL, 0, &j, "replicate compare with no backends and no threads");
    cr_assert_eq(j.nrows, 7, "%u rows, want serial + native and locked 1, 2, 3", j.nrows);
    cr_expect_eq(j.plan.nrows, 7);
    cr_expect(row_is(&j.rows[6], HY_BACKEND_LOCKED, 3), "last row %s/%u, want locked/3",
              hy_backend_name(j.rows[6].backend), j.rows[6].threads);
    hyt_job_release(c, &j);
    s.mode = 0;

    /* Native alone: the list runs up to its own pool; repeat 0 is a compare's 5. */
    s.backends = 1u << HY_BACKEND_NATIVE;
    s.repeat = 0;
    s.n = 1000;
    suite_run_ok(c, &s, NULL, 0, &j, "compare native with no threads");
    cr_assert_eq(j.nrows, 4, "%u rows, want serial + native 1, 2, 4", j.nrows);
    cr_expect_eq(j.plan.nrows, 4);
    cr_expect_eq(j.plan.repeat, 5u);
    cr_expect(row_is(&j.rows[3], HY_BACKEND_NATIVE, 4), "last row %s/%u, want native/4",
              hy_backend_name(j.rows[3].backend), j.rows[3].threads);
    hyt_job_release(c, &j);

    /* Both transports with the default backends: process rows for each. */
    s.backends = 0;
    s.transports = 1u << HY_TRANSPORT_PIPE | 1u << HY_TRANSPORT_SHM;
    s.repeat = 1;
    suite_run_ok(c, &s, NULL, 0, &j, "default backends, pipe and shm");
    cr_expect_eq(j.nrows, 9, "%u rows, want 7 + process 1, 2 on shm", j.nrows);
    cr_expect_eq(j.plan.nrows, j.nrows);
    hyt_job_release(c, &j);
    suite_client_clean(c);
    hyt_close(c);
}
