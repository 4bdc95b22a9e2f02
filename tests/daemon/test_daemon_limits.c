/* tests/daemon: a real hybridd holding its limits — jobs per client, the whole queue, the
 * number of clients, frame size, the job timeout — and its access list. */
#include <unistd.h>

#include "suite.h"

static void stop_only(void)
{
    suite_stop();
}

TestSuite(daemon_limits, .fini = stop_only, .timeout = 60);

/* A pi job that would run for about a minute on this machine. */
static hy_msg_submit long_pi(void)
{
    return hyt_pi(HY_BACKEND_NATIVE, 2, 100000000000ull, 1);
}

static void accept_long(hyt_client *c, hyt_job *j, const char *what)
{
    hy_msg_submit s = long_pi();
    cr_assert_eq(hyt_submit(c, &s, NULL, 0, j), 0, "%s: %s", what, c->err.msg);
    cr_assert_eq(hyt_wait_accepted(c, j, HYT_WAIT_MS), 0, "%s: no answer", what);
    cr_assert(j->accepted, "%s: refused with %s \"%s\"", what, suite_code(j->code), j->message);
}

static void cancel_and_wait(hyt_client *c, hyt_job *j)
{
    cr_assert_eq(hyt_cancel(c, j->job_id, NULL), 0);
    cr_assert_eq(hyt_wait_final(c, j, HYT_WAIT_MS), 0, "job %llu: no final answer to CANCEL",
                 (unsigned long long)j->job_id);
    cr_expect_eq(j->code, HY_ECANCELED, "job %llu ended with %s", (unsigned long long)j->job_id,
                 suite_code(j->code));
    hyt_job_release(c, j);
}

Test(daemon_limits, jobs_per_client_beyond_the_limit_is_ebusy)
{
    hyt_conf k = hyt_conf_default();
    k.jobs_per_client = 2;
    suite_start(&k);
    hyt_client *c = suite_client();
    cr_expect_eq(c->welcome.max_jobs_per_client, 2);
    hyt_job a, b;
    accept_long(c, &a, "job 1 of 2");
    accept_long(c, &b, "job 2 of 2");
    hy_msg_submit s = long_pi();
    suite_run_refused(c, &s, NULL, 0, HY_EBUSY, 0, "job 3 with jobs_per_client 2");
    /* Another client is not held by this one's limit. */
    hyt_client *d = suite_client();
    hyt_job x;
    accept_long(d, &x, "other client's job");
    cancel_and_wait(d, &x);
    cancel_and_wait(c, &b);
    cancel_and_wait(c, &a);
    /* With room again, a job runs. */
    hy_msg_submit small = hyt_pi(HY_BACKEND_SERIAL, 1, 10000, 5);
    hyt_job j;
    suite_run_ok(c, &small, NULL, 0, &j, "small pi once there is room");
    hyt_job_release(c, &j);
    suite_client_clean(c);
    hyt_close(d);
    hyt_close(c);
}

Test(daemon_limits, a_full_queue_is_ebusy)
{
    hyt_conf k = hyt_conf_default();
    k.queued_jobs = 2;
    suite_start(&k);
    hyt_client *c = suite_client(), *d = suite_client();
    hyt_job a, b;
    accept_long(c, &a, "queue slot 1");
    accept_long(c, &b, "queue slot 2");
    hy_msg_submit s = hyt_pi(HY_BACKEND_SERIAL, 1, 1000, 1);
    suite_run_refused(d, &s, NULL, 0, HY_EBUSY, 0, "a third job with queued_jobs 2");
    cancel_and_wait(c, &b);
    hyt_job j;
    cr_assert_eq(hyt_submit(d, &s, NULL, 0, &j), 0);
    cr_assert_eq(hyt_wait_accepted(d, &j, HYT_WAIT_MS), 0);
    cr_expect(j.accepted, "job refused with a free queue slot: %s \"%s\"", suite_code(j.code),
              j.message);
    cancel_and_wait(c, &a);
    cr_assert_eq(hyt_wait_final(d, &j, HYT_WAIT_MS), 0);
    cr_expect_eq(j.code, 0, "small job: %s \"%s\"", suite_code(j.code), j.message);
    hyt_job_release(d, &j);
    hyt_close(d);
    hyt_close(c);
}

/* Connects one more client than allowed: it gets ERROR EBUSY and then the end of stream. */
static void expect_refused_connection(const char *sock, int want, const char *what)
{
    hyt_client *c = hyt_connect(sock);
    cr_assert_not_null(c, "%s: connect failed outright", what);
    /* The daemon may refuse before or after HELLO; a failed send is fine. */
    hy_msg m = {.type = HY_MSG_HELLO, .request = 1};
    m.u.hello.min_version = 1;
    m.u.hello.max_version = 1;
    (void)hyt_send(c, &m, NULL, 0);
    int rc = hyt_recv(c, HYT_WAIT_MS);
    cr_assert_eq(rc, 0, "%s: no ERROR before the close (%d %s)", what, rc, c->err.msg);
    cr_assert_eq(c->msg->type, HY_MSG_ERROR, "%s: got %s, want ERROR %s", what,
                 hy_msg_type_name(c->msg->type) ? hy_msg_type_name(c->msg->type) : "?",
                 hy_err_name(want));
    cr_expect_eq(c->msg->u.error.code, want, "%s: code %s (%d), want %s", what,
                 hy_err_name(c->msg->u.error.code), c->msg->u.error.code, hy_err_name(want));
    cr_expect_gt(c->msg->u.error.message.len, 0);
    rc = hyt_recv(c, HYT_WAIT_MS);
    cr_expect_eq(rc, HYT_EOF, "%s: connection not closed after the ERROR (got %d, type %u)",
                 what, rc, rc == 0 ? c->msg->type : 0);
    hyt_close(c);
}

Test(daemon_limits, clients_beyond_the_limit_are_refused_with_ebusy)
{
    hyt_conf k = hyt_conf_default();
    k.clients = 2;
    suite_start(&k);
    hyt_client *a = suite_client(), *b = suite_client();
    expect_refused_connection(D.sock, HY_EBUSY, "third client with clients = 2");
    cr_expect_eq(hyt_ping(a, 1), 0);
    cr_expect_eq(hyt_ping(b, 2), 0);
    hyt_close(b);
    /* The daemon sees b go at its own pace: try for a while. */
    hyt_client *c = NULL;
    for (int i = 0; i < 250 && !c; i++) {
        c = hyt_connect(D.sock);
        if (c && hyt_hello(c, 0) != 0) {
            hyt_close(c);
            c = NULL;
            usleep(20000);
        }
    }
    cr_assert_not_null(c, "no room for a client after one of two left");
    cr_expect_eq(hyt_ping(c, 3), 0);
    hyt_close(c);
    hyt_close(a);
}

Test(daemon_limits, a_frame_above_frame_bytes_is_elimit_and_close)
{
    suite_start_default();
    hyt_client *by = suite_client();
    hyt_client *c = suite_client();
    cr_assert_eq(c->welcome.max_payload, 65536);
    hy_frame_header h = {.version = 1, .type = HY_MSG_PING, .length = 65537, .request = 8};
    uint8_t buf[HY_IPC_HEADER + 64] = {0};
    hy_frame_header_encode(&h, buf);
    cr_assert_eq(hyt_send_raw(c, buf, sizeof buf), 0);
    int rc = hyt_recv(c, HYT_WAIT_MS);
    cr_assert_eq(rc, 0, "no ERROR for a 65537-byte frame (%d %s)", rc, c->err.msg);
    cr_assert_eq(c->msg->type, HY_MSG_ERROR, "type %u", c->msg->type);
    cr_expect_eq(c->msg->u.error.code, HY_ELIMIT, "code %s", hy_err_name(c->msg->u.error.code));
    cr_expect_eq(hyt_recv(c, HYT_WAIT_MS), HYT_EOF, "connection not closed after ELIMIT");
    hyt_close(c);
    cr_expect_eq(hyt_ping(by, 5), 0, "bystander not served after another's ELIMIT");
    hyt_close(by);
}

Test(daemon_limits, a_job_past_job_timeout_is_cancelled)
{
    hyt_conf k = hyt_conf_default();
    k.job_timeout_s = 1;
    suite_start(&k);
    hyt_client *c = suite_client();
    hy_msg_submit s = long_pi();
    hyt_job j;
    cr_assert_eq(hyt_run(c, &s, NULL, 0, &j), 0, "no final answer within %d ms",
                 HYT_WAIT_MS);
    cr_expect(j.accepted);
    cr_expect_eq(j.code, HY_ECANCELED, "timed-out job ended with %s \"%s\"", suite_code(j.code),
                 j.message);
    cr_expect(strcasestr(j.message, "time") != NULL,
              "the ECANCELED sentence does not mention the timeout: \"%s\"", j.message);
    hyt_job_release(c, &j);
    hy_msg_submit small = hyt_pi(HY_BACKEND_NATIVE, 2, 100000, 5);
    suite_run_ok(c, &small, NULL, 0, &j, "small pi after a timeout");
    hyt_job_release(c, &j);
    hyt_close(c);
}

/* Access lists narrow who may connect, but never below root and the daemon's own uid, which
 * owns the socket anyway: lists that name neither this uid nor its group still serve it. A
 * refusal needs a second, real user: test_daemon_faults.c runs those as root. */
Test(daemon_limits, access_lists_always_let_in_the_daemons_own_uid)
{
    hyt_conf k = hyt_conf_default();
    char access[128];
    uid_t me = getuid();
    gid_t mg = getgid();
    snprintf(access, sizeof access, "uids = [ %u ]; gids = [ %u ];", (unsigned)(me + 12345),
             (unsigned)(mg + 54321));
    k.access = access;
    suite_start(&k);
    hyt_client *c = suite_client();
    hy_msg_submit s = hyt_pi(HY_BACKEND_NATIVE, 1, 100000, 6);
    hyt_job j;
    suite_run_ok(c, &s, NULL, 0, &j, "pi from the daemon's own uid, not listed");
    suite_check_pi_row(&j.rows[0], HY_BACKEND_NATIVE, 1, 6, 100000, 1, "pi allowed");
    hyt_job_release(c, &j);
    hyt_close(c);
}
