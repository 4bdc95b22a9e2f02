/* tests/daemon: the process backend through a real daemon — pi and memfd/inline sorts over
 * both transports match the reference, a comparison carries its rows, a worker SIGKILLed
 * mid-job gives EWORKER and is replaced (no zombie), bad requests are refused, and SIGTERM
 * stops the workers with the daemon. */
#include <signal.h>
#include <unistd.h>

#include "../children.h"
#include "suite.h"

TestSuite(daemon_process, .fini = suite_stop, .timeout = 120);

#define WORKERS 3

static void start(void)
{
    hyt_conf k = hyt_conf_default();
    k.process_workers = WORKERS;
    suite_start(&k);
}

static hy_msg_submit with_transport(hy_msg_submit s, int transport)
{
    s.transport = (uint16_t)transport;
    return s;
}

Test(daemon_process, pi_matches_the_reference_for_every_worker_count)
{
    start();
    hyt_client *c = suite_client();
    for (uint32_t t = 1; t <= WORKERS; t++) {
        char what[64];
        snprintf(what, sizeof what, "process pi T=%u", t);
        hy_msg_submit s = with_transport(hyt_pi(HY_BACKEND_PROCESS, t, 2000003, 17),
                                         t == 2 ? HY_TRANSPORT_SHM : HY_TRANSPORT_PIPE);
        hyt_job j;
        suite_run_ok(c, &s, NULL, 0, &j, what);
        suite_check_pi_row(&j.rows[0], HY_BACKEND_PROCESS, t, 17, 2000003, 1, what);
        cr_expect_eq(j.rows[0].transport, t == 2 ? HY_TRANSPORT_SHM : HY_TRANSPORT_PIPE,
                     "%s: row transport %u", what, j.rows[0].transport);
        hyt_job_release(c, &j);
    }
    suite_client_clean(c);
    hyt_close(c);
}

Test(daemon_process, memfd_and_inline_sorts_match_the_reference_on_both_transports)
{
    start();
    hyt_client *c = suite_client();
    const int dtypes[] = {HY_DT_F64, HY_DT_I32, HY_DT_U64, HY_DT_F32};
    for (unsigned k = 0; k < 4; k++) {
        int dt = dtypes[k];
        size_t n = 300001, size = hy_dtype_size(dt), bytes = n * size;
        char *want = malloc(bytes);
        cr_assert(want);
        hyt_fill(dt, want, n, 100 + k);
        char *input = malloc(bytes);
        cr_assert(input);
        memcpy(input, want, bytes);
        hyt_sort_ref(dt, want, n);
        for (int tr = HY_TRANSPORT_PIPE; tr <= HY_TRANSPORT_SHM; tr++) {
            uint32_t t = tr == HY_TRANSPORT_PIPE ? 3 : 2;
            char what[96];
            /* memfd: sorted in place in the client's pages (shm hands them to the workers). */
            snprintf(what, sizeof what, "memfd %s process/%s T=%u", hy_dtype_name(dt),
                     hy_transport_name(tr), t);
            int fd;
            void *map;
            hy_error err = {0};
            cr_assert_eq(hy_memfd_create("hyt-proc", bytes, &fd, &map, &err), 0, "%s", err.msg);
            memcpy(map, input, bytes);
            cr_assert_eq(hy_memfd_seal(fd, &err), 0, "%s", err.msg);
            hy_msg_submit s = with_transport(hyt_sort_memfd(HY_BACKEND_PROCESS, t, dt, n), tr);
            hyt_job j;
            suite_run_ok(c, &s, &fd, 1, &j, what);
            cr_expect(memcmp(map, want, bytes) == 0, "%s: not sorted like the reference", what);
            cr_expect_eq(j.rows[0].transport, tr, "%s: transport %u", what, j.rows[0].transport);
            if (tr == HY_TRANSPORT_PIPE)
                cr_expect_geq(j.rows[0].bytes_moved, 2 * bytes, "%s: moved %llu bytes", what,
                              (unsigned long long)j.rows[0].bytes_moved);
            else
                cr_expect_lt(j.rows[0].bytes_moved, 65536, "%s: shm moved %llu bytes", what,
                             (unsigned long long)j.rows[0].bytes_moved);
            hyt_job_release(c, &j);
            hy_memfd_unmap(map, bytes);
            close(fd);
        }
        /* Inline: the daemon's private copy, which shm must carry through a memfd. */
        size_t small = 5000;
        hy_msg_submit s = with_transport(
            hyt_sort_inline(HY_BACKEND_PROCESS, 2, dt, input, small), HY_TRANSPORT_SHM);
        hyt_job j;
        suite_run_ok(c, &s, NULL, 0, &j, "inline process/shm");
        char *ref = malloc(small * size);
        cr_assert(ref);
        memcpy(ref, input, small * size);
        hyt_sort_ref(dt, ref, small);
        cr_assert_eq(j.array_bytes, small * size);
        cr_expect(memcmp(j.array, ref, small * size) == 0, "inline %s process/shm: wrong bytes",
                  hy_dtype_name(dt));
        hyt_job_release(c, &j);
        free(ref);
        free(want);
        free(input);
    }
    suite_client_clean(c);
    hyt_close(c);
}

Test(daemon_process, compare_has_a_row_per_transport_and_worker_count)
{
    start();
    hyt_client *c = suite_client();
    hy_msg_submit s = hyt_pi(HY_BACKEND_NATIVE, 1, 1000000, 3);
    s.job = HY_JOB_COMPARE_PI;
    s.backends = 1u << HY_BACKEND_NATIVE | 1u << HY_BACKEND_PROCESS;
    s.transports = 1u << HY_TRANSPORT_PIPE | 1u << HY_TRANSPORT_SHM;
    s.threads = 0;
    s.nthreads_list = 2;
    s.threads_list[0] = 1;
    s.threads_list[1] = 2;
    s.repeat = 2;
    hyt_job j;
    suite_run_ok(c, &s, NULL, 0, &j, "compare pi with process");
    /* serial, native 1 and 2, process pipe 1 and 2, process shm 1 and 2. */
    cr_assert_eq(j.nrows, 7, "rows: %u", j.nrows);
    for (unsigned r = 3; r < 7; r++) {
        int tr = r < 5 ? HY_TRANSPORT_PIPE : HY_TRANSPORT_SHM;
        char what[64];
        snprintf(what, sizeof what, "row %u", r);
        suite_check_pi_row(&j.rows[r], HY_BACKEND_PROCESS, (r - 3) % 2 + 1, 3, 1000000, 2, what);
        cr_expect_eq(j.rows[r].transport, tr, "%s: transport %u", what, j.rows[r].transport);
    }
    hyt_job_release(c, &j);
    /* Replicate mode is not for processes; the refusal says why. */
    hy_msg_submit r = hyt_pi(HY_BACKEND_PROCESS, 2, 1000, 1);
    r.mode = HY_MODE_REPLICATE;
    suite_run_refused(c, &r, NULL, 0, HY_EINVAL, 0, "process in replicate mode");
    hy_msg_submit big = hyt_pi(HY_BACKEND_PROCESS, WORKERS + 1, 1000, 1);
    suite_run_refused(c, &big, NULL, 0, HY_ELIMIT, 0, "more workers than the pool");
    hy_msg_submit bad = with_transport(hyt_pi(HY_BACKEND_PROCESS, 1, 1000, 1), 7);
    suite_run_refused(c, &bad, NULL, 0, HY_EINVAL, HY_EPROTO, "transport 7");
    /* And the next good request still works. */
    hy_msg_submit ok = hyt_pi(HY_BACKEND_PROCESS, 2, 1000, 1);
    suite_run_ok(c, &ok, NULL, 0, &j, "process pi after refusals");
    hyt_job_release(c, &j);
    suite_client_clean(c);
    hyt_close(c);
}

Test(daemon_process, a_worker_killed_mid_job_gives_eworker_and_is_replaced)
{
    start();
    /* A WELCOME comes from the event loop, which runs only once the pool has started. */
    hyt_client *c = suite_client();
    pid_t kids[16];
    unsigned zombies;
    cr_assert_eq(hyt_children(D.pid, kids, 16, &zombies), WORKERS, "workers at start");
    /* Seconds of work on every worker, so the kill lands while they compute. */
    hy_msg_submit s = hyt_pi(HY_BACKEND_PROCESS, WORKERS, 30000000000ull, 5);
    hyt_job j;
    cr_assert_eq(hyt_submit(c, &s, NULL, 0, &j), 0);
    cr_assert_eq(hyt_wait_accepted(c, &j, HYT_WAIT_MS), 0);
    cr_assert(j.accepted, "not accepted: %s", j.message);
    /* The kill must land while the workers hold their parts: one killed before the job
     * reached it is restarted by the job, which then succeeds. ACCEPTED comes before that;
     * a PROGRESS comes only once the workers count (done > 0), however slow the daemon. */
    while (j.progress == 0 && !j.done)
        cr_assert_eq(hyt_recv(c, HYT_WAIT_MS), 0, "no PROGRESS: %s", c->err.msg);
    cr_assert(!j.done, "the job ended before it was seen computing: %s", j.message);
    cr_assert_eq(kill(kids[1], SIGKILL), 0);
    cr_assert_eq(hyt_wait_final(c, &j, HYT_WAIT_MS), 0);
    cr_expect_eq(j.code, HY_EWORKER, "final answer %s (%d) \"%s\", want EWORKER",
                 j.code ? hy_err_name(j.code) : "RESULT", j.code, j.message);
    cr_expect(strstr(j.message, "killed by signal 9") != NULL, "message: %s", j.message);
    hyt_job_release(c, &j);
    /* The pool is whole again, the dead worker reaped, and the next job is right. */
    pid_t now[16];
    cr_expect_eq(hyt_children(D.pid, now, 16, &zombies), WORKERS, "workers after the kill");
    cr_expect_eq(zombies, 0, "zombies after the kill");
    for (unsigned i = 0; i < WORKERS; i++)
        cr_expect_neq(now[i], kids[1], "the killed worker %d is still a child", (int)kids[1]);
    hy_msg_submit ok = hyt_pi(HY_BACKEND_PROCESS, WORKERS, 3000001, 8);
    suite_run_ok(c, &ok, NULL, 0, &j, "process pi after a worker was killed");
    suite_check_pi_row(&j.rows[0], HY_BACKEND_PROCESS, WORKERS, 8, 3000001, 1, "after kill");
    hyt_job_release(c, &j);
    suite_client_clean(c);
    hyt_close(c);
}

Test(daemon_process, sigterm_stops_the_workers_with_the_daemon)
{
    start();
    hyt_client *c = suite_client(); /* served: the pool is up */
    pid_t kids[16];
    unsigned zombies;
    unsigned n = hyt_children(D.pid, kids, 16, &zombies);
    cr_assert_eq(n, WORKERS);
    hy_msg_devices_reply *dev = malloc(sizeof *dev);
    cr_assert(dev);
    cr_assert_eq(hyt_devices(c, dev), 0);
    cr_expect_eq(dev->process_workers, WORKERS, "DEVICES_REPLY process_workers %u",
                 dev->process_workers);
    free(dev);
    hyt_close(c);
    cr_assert_eq(hyt_daemon_signal(&D, SIGTERM), 0);
    cr_assert_eq(hyt_daemon_wait_exit(&D, HYT_WAIT_MS), 0, "no exit after SIGTERM");
    cr_expect_eq(hyt_daemon_exit_code(&D), 0);
    for (unsigned i = 0; i < n; i++)
        cr_expect(kill(kids[i], 0) != 0, "worker %d outlived the daemon", (int)kids[i]);
}
