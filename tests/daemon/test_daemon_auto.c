/* tests/daemon: backend auto in a running hybridd — the daemon loads a history file the test
 * wrote (through the history module itself, so the file is one a daemon writes), and its
 * choice, flags and predictions in ACCEPTED and RESULT follow from those made-up run times,
 * never from a clock; compare rows carry the prediction for their configuration; a daemon
 * that knows nothing runs the documented default and says it explores. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../cl/pocl_env.h"
#include "harness.h"
#include "history.h"

#define MS UINT64_C(1000000)
#define N 100000 /* pi samples of the seeded cells: bucket 16 */

static hyt_daemon D;
static char hist[192];

static void cleanup(void)
{
    if (hist[0])
        unlink(hist);
    hist[0] = '\0';
    hyt_daemon_cleanup(&D);
}

TestSuite(daemon_auto, .fini = cleanup, .timeout = 120);

/* A trusted pi cell: 6 runs of `ns` (the first after open is dropped, 5 kept). */
static void seed(hy_history *h, int backend, unsigned threads, int transport, uint64_t ns)
{
    hy_history_key k = {.work = HY_JOB_PI, .backend = backend, .threads = threads,
                        .transport = transport};
    for (int i = 0; i < HY_HISTORY_TRUST + 1; i++)
        hy_history_record(h, &k, N, ns);
}

/* A history (native, locked and process pools of 2; no OpenCL) in which process is the
 * fastest at N samples of pi. */
static void seed_pi_cells(hy_history *h)
{
    seed(h, HY_BACKEND_NATIVE, 2, 0, 9 * MS);
    seed(h, HY_BACKEND_PROCESS, 2, HY_TRANSPORT_PIPE, 2 * MS);
    seed(h, HY_BACKEND_LOCKED, 2, 0, 30 * MS);
    seed(h, HY_BACKEND_SERIAL, 1, 0, 18 * MS);
}

/* Writes the history file at path through the history module, with what fill records. */
static void write_history(const char *path, void (*fill)(hy_history *))
{
    char host[HY_HISTORY_HOST_MAX];
    hy_history_host_id(host, sizeof host);
    hy_history_options o = {.path = path, .host = host, .version = "test"};
    hy_history *h;
    hy_history_report rep;
    hy_error err = {0};
    cr_assert_eq(hy_history_open(&o, &h, &rep, &err), 0, "%s", err.msg);
    fill(h);
    cr_assert_eq(hy_history_save(h, &err), 0, "%s", err.msg);
    hy_history_close(h);
}

/* Starts D with configuration k and, when fill is not NULL, state.history = a file that fill
 * wrote. */
static void start_on(const hyt_conf *k, void (*fill)(hy_history *))
{
    char conf[2048], text[2560];
    hyt_conf_text(k, conf, sizeof conf);
    cr_assert_eq(hyt_daemon_init(&D, conf), 0);
    if (fill) {
        snprintf(hist, sizeof hist, "%s/history", D.dir);
        write_history(hist, fill);
        snprintf(text, sizeof text, "%sstate = {\n  history = \"%s\";\n};\n", conf, hist);
        cr_assert_eq(hyt_daemon_write_config(&D, text), 0);
    }
    cr_assert_eq(hyt_daemon_exec(&D, NULL), 0);
    if (hyt_daemon_wait_ready(&D, D.sock, HYT_WAIT_MS) != 0) {
        hyt_daemon_dump_log(&D);
        cr_assert_fail("hybridd did not start");
    }
}

/* Starts D with the test configuration, on the pi history or on none. */
static void start(bool with_history)
{
    hyt_conf k = hyt_conf_default();
    start_on(&k, with_history ? seed_pi_cells : NULL);
}

static hy_msg_submit auto_pi(uint64_t n)
{
    hy_msg_submit m = hyt_pi(HY_BACKEND_AUTO, 0, n, 7);
    m.device = HY_IPC_DEVICE_DEFAULT;
    return m;
}

static void run_ok(hyt_client *c, const hy_msg_submit *m, hyt_job *j, const char *what)
{
    memset(j, 0, sizeof *j);
    cr_assert_eq(hyt_run(c, m, NULL, 0, j), 0, "%s: no answer (%s)", what, c->err.msg);
    cr_assert_eq(j->code, 0, "%s: ERROR %d %s", what, j->code, j->message);
    cr_assert_eq(j->nrows, j->plan.nrows, "%s: rows", what);
}

Test(daemon_auto, it_runs_what_its_history_predicts_fastest_and_says_so)
{
    start(true);
    hyt_client *c = hyt_connect_hello(D.sock);
    cr_assert_not_null(c);
    hyt_job j;
    hy_msg_submit m = auto_pi(N);
    run_ok(c, &m, &j, "auto pi");
    const hy_result_row *r = &j.rows[0];
    cr_expect_eq(j.plan.threads, 2, "ACCEPTED threads %u", j.plan.threads);
    cr_expect_eq(r->backend, HY_BACKEND_PROCESS, "chose %s", hy_backend_name(r->backend));
    cr_expect_eq(r->threads, 2);
    cr_expect_eq(r->transport, HY_TRANSPORT_PIPE);
    cr_expect_eq(r->flags & (HY_ROW_AUTO | HY_ROW_EXPLORE), HY_ROW_AUTO, "flags 0x%x", r->flags);
    cr_expect_eq(r->predicted_ns, 2 * MS, "predicted %llu", (unsigned long long)r->predicted_ns);
    cr_expect_eq(r->hits, hyt_pi_ref(7, N), "the hits of every backend");
    hyt_job_release(c, &j);

    /* Above every measured size the history cannot say: native with its pool, to learn. */
    m = auto_pi(UINT64_C(1) << 20);
    run_ok(c, &m, &j, "auto pi 2^20");
    r = &j.rows[0];
    cr_expect_eq(r->backend, HY_BACKEND_NATIVE, "chose %s", hy_backend_name(r->backend));
    cr_expect_eq(r->threads, 2);
    cr_expect_eq(r->flags & (HY_ROW_AUTO | HY_ROW_EXPLORE), HY_ROW_AUTO | HY_ROW_EXPLORE,
                 "flags 0x%x", r->flags);
    cr_expect_eq(r->predicted_ns, 0);
    hyt_job_release(c, &j);

    /* A job for auto names no threads: refused with a sentence, the daemon serves on. */
    m = auto_pi(N);
    m.threads = 2;
    memset(&j, 0, sizeof j);
    cr_assert_eq(hyt_run(c, &m, NULL, 0, &j), 0);
    cr_expect_eq(j.code, HY_EINVAL, "auto with threads: %d %s", j.code, j.message);
    hyt_job_release(c, &j);
    hyt_close(c);
}

Test(daemon_auto, every_row_carries_the_prediction_for_its_configuration)
{
    start(true);
    hyt_client *c = hyt_connect_hello(D.sock);
    cr_assert_not_null(c);
    hy_msg_submit m = hyt_pi(0, 0, N, 7);
    m.job = HY_JOB_COMPARE_PI;
    m.backends = 1u << HY_BACKEND_SERIAL | 1u << HY_BACKEND_NATIVE;
    m.repeat = 1;
    hyt_job j;
    run_ok(c, &m, &j, "compare pi");
    /* serial, native 1 (never measured), native 2 */
    cr_assert_eq(j.nrows, 3);
    cr_expect_eq(j.rows[0].backend, HY_BACKEND_SERIAL);
    cr_expect_eq(j.rows[0].predicted_ns, 18 * MS);
    cr_expect_eq(j.rows[1].threads, 1);
    cr_expect_eq(j.rows[1].predicted_ns, 0, "native 1 is not in the history");
    cr_expect_eq(j.rows[2].threads, 2);
    cr_expect_eq(j.rows[2].predicted_ns, 9 * MS);
    for (unsigned i = 0; i < 3; i++)
        cr_expect_eq(j.rows[i].flags & (HY_ROW_AUTO | HY_ROW_EXPLORE), 0, "row %u", i);
    hyt_job_release(c, &j);

    /* A job that names its backend carries the prediction too, unflagged. */
    m = hyt_pi(HY_BACKEND_LOCKED, 2, N, 7);
    run_ok(c, &m, &j, "pi locked");
    cr_expect_eq(j.rows[0].predicted_ns, 30 * MS);
    cr_expect_eq(j.rows[0].flags & HY_ROW_AUTO, 0);
    hyt_job_release(c, &j);
    hyt_close(c);
}

Test(daemon_auto, a_daemon_without_history_runs_the_default_and_says_it_explores)
{
    start(false);
    hyt_client *c = hyt_connect_hello(D.sock);
    cr_assert_not_null(c);
    enum { NS = 3000 };
    double data[NS], want[NS];
    hyt_fill(HY_DT_F64, data, NS, 5);
    memcpy(want, data, sizeof want);
    hyt_sort_ref(HY_DT_F64, want, NS);
    hy_msg_submit m = hyt_sort_inline(HY_BACKEND_AUTO, 0, HY_DT_F64, data, NS);
    m.device = HY_IPC_DEVICE_DEFAULT;
    hyt_job j;
    run_ok(c, &m, &j, "auto sort");
    const hy_result_row *r = &j.rows[0];
    cr_expect_eq(j.plan.threads, 2);
    cr_expect_eq(r->backend, HY_BACKEND_NATIVE, "chose %s", hy_backend_name(r->backend));
    cr_expect_eq(r->threads, 2);
    cr_expect_eq(r->flags & (HY_ROW_AUTO | HY_ROW_EXPLORE), HY_ROW_AUTO | HY_ROW_EXPLORE);
    cr_expect_eq(r->predicted_ns, 0);
    cr_assert_eq(j.array_bytes, sizeof want);
    cr_expect_eq(memcmp(j.array, want, sizeof want), 0, "auto's sort is every backend's sort");
    hyt_job_release(c, &j);
    hyt_close(c);
}

/* ---- backend hybrid's first sort, planned from the history ---- */

#define HN 60001 /* keys of the hybrid sorts: bucket 15 */

/* A history in which native (2 threads) sorts HN f64 keys in sort_ns[0] and OpenCL device 0
 * in sort_ns[1], each trusted; a daemon with the device let into hybrid starts on it. */
static uint64_t sort_ns[2];

static void seed_sort_cells(hy_history *h)
{
    hy_history_key nk = {.work = HY_JOB_SORT, .dtype = HY_DT_F64, .backend = HY_BACKEND_NATIVE,
                         .threads = 2};
    hy_history_key dk = {.work = HY_JOB_SORT, .dtype = HY_DT_F64, .backend = HY_BACKEND_OPENCL};
    for (int i = 0; i < HY_HISTORY_TRUST + 1; i++) {
        hy_history_record(h, &nk, HN, sort_ns[0]);
        hy_history_record(h, &dk, HN, sort_ns[1]);
    }
}

static void start_hybrid_on(uint64_t native_ns, uint64_t device_ns)
{
    pocl_cache_for_run(); /* the daemon inherits POCL_CACHE_DIR */
    hyt_conf k = hyt_conf_default();
    k.opencl = true;
    k.hybrid_cpu_devices = true;
    k.frame_bytes = 1 << 20; /* the keys travel inline */
    sort_ns[0] = native_ns;
    sort_ns[1] = device_ns;
    start_on(&k, seed_sort_cells);
}

/* One hybrid f64 sort of HN keys: the bytes right, and the row back in *row. Returns false
 * when the daemon serves no usable device (nothing to plan between). */
static bool hybrid_sort_once(hy_result_row *row)
{
    hyt_client *c = hyt_connect_hello(D.sock);
    cr_assert_not_null(c);
    hy_msg_devices_reply *dv = calloc(1, sizeof *dv);
    cr_assert_not_null(dv);
    cr_assert_eq(hyt_devices(c, dv), 0, "%s", c->err.msg);
    bool usable = dv->ndevices > 0 && (dv->devices[0].flags & HY_DEV_USABLE);
    free(dv);
    if (usable) {
        double *data = malloc(HN * 8), *want = malloc(HN * 8);
        cr_assert(data && want);
        hyt_fill(HY_DT_F64, data, HN, 11);
        memcpy(want, data, HN * 8);
        hyt_sort_ref(HY_DT_F64, want, HN);
        hy_msg_submit m = hyt_sort_inline(HY_BACKEND_HYBRID, 0, HY_DT_F64, data, HN);
        hyt_job j;
        run_ok(c, &m, &j, "hybrid sort");
        cr_assert_eq(j.array_bytes, HN * 8);
        cr_expect_eq(memcmp(j.array, want, HN * 8), 0, "the hybrid sort differs");
        *row = j.rows[0];
        hyt_job_release(c, &j);
        free(data);
        free(want);
    }
    hyt_close(c);
    return usable;
}

/* With no hybrid sort measured yet, the history's trusted times of each side alone plan the
 * first one: the side 50x faster sorts alone (devices_used says which), no even split to
 * measure. */
static void expect_first_sort_alone(uint64_t native_ns, uint64_t device_ns, unsigned devices)
{
    start_hybrid_on(native_ns, device_ns);
    hy_result_row r;
    if (!hybrid_sort_once(&r))
        cr_skip_test("no usable OpenCL device: hybrid has nothing to plan between");
    cr_expect(r.flags & HY_ROW_NO_GAIN, "flags 0x%x: the first sort split", r.flags);
    cr_expect_eq(r.devices_used, devices, "devices_used %u", r.devices_used);
    cr_expect_eq(r.cpu_items, devices ? 0 : HN, "the pool sorted %llu of %d",
                 (unsigned long long)r.cpu_items, HN);
}

Test(daemon_auto, a_first_hybrid_sort_plans_from_the_history_pool_alone)
{
    expect_first_sort_alone(1 * MS, 50 * MS, 0);
}

Test(daemon_auto, a_first_hybrid_sort_plans_from_the_history_device_alone)
{
    expect_first_sort_alone(50 * MS, 1 * MS, 1);
}
