/* tests/ipc: the client library against a scripted daemon on the other end of a socketpair
 * (a child process) — connect errors keep their errno, a refusal is read even when the send
 * finds the daemon gone, receive waits and ends, asks, and a job's answers and cancel. */
#include <criterion/criterion.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ipc.h"

static void pair(int sv[2])
{
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

/* The scripted daemon's side: whole frames, blocking. */
static void peer_send(int fd, const hy_msg *m)
{
    static uint8_t buf[4096];
    size_t len;
    hy_iov bulk;
    hy_error err = {0};
    if (hy_msg_encode(m, buf, sizeof buf, &len, &bulk, HY_IPC_MAX_PAYLOAD, &err) != 0 ||
        bulk.len || write(fd, buf, len) != (ssize_t)len)
        _exit(90);
}

static void peer_error(int fd, uint64_t request, int code, uint64_t job_id, const char *text)
{
    hy_msg m = {.type = HY_MSG_ERROR, .request = request};
    m.u.error = (hy_msg_error){.code = code, .job_id = job_id,
                               .message = {text, (uint32_t)strlen(text)}};
    peer_send(fd, &m);
}

/* The next message the client sent, into *m; the process exits 91 when there is none. */
static void peer_recv(int fd, hy_frame_reader *r, hy_msg *m)
{
    for (;;) {
        hy_frame f;
        hy_error err = {0};
        int rc = hy_frame_reader_next(r, &f, &err);
        if (rc == 0) {
            if (hy_msg_decode(&f, m, &err) != 0)
                _exit(92);
            return;
        }
        if (rc < 0 || hy_frame_reader_fill_wait(r, fd, &err) <= 0)
            _exit(91);
    }
}

static void peer_welcome(int fd, hy_frame_reader *r, hy_msg *m)
{
    peer_recv(fd, r, m);
    if (m->type != HY_MSG_HELLO)
        _exit(93);
    hy_msg w = {.type = HY_MSG_WELCOME, .request = m->request};
    w.u.welcome = (hy_msg_welcome){.version = 1, .features = m->u.hello.features,
                                   .max_payload = 65536, .max_inline_bytes = 4096,
                                   .max_jobs_per_client = 4, .max_samples = 1000,
                                   .max_sort_elements = 1000, .server = {"scripted", 8}};
    peer_send(fd, &w);
}

typedef void (*script_fn)(int fd, hy_frame_reader *r, hy_msg *m);

/* Runs `script` as the daemon in a child over a socketpair; returns the client's end. */
static int start_peer(script_fn script, pid_t *pid)
{
    int sv[2];
    pair(sv);
    *pid = fork();
    cr_assert_geq(*pid, 0);
    if (*pid == 0) {
        close(sv[0]);
        hy_frame_reader *r;
        static hy_msg m;
        if (hy_frame_reader_new(HY_IPC_MAX_PAYLOAD, &r, NULL) != 0)
            _exit(94);
        script(sv[1], r, &m);
        _exit(0);
    }
    close(sv[1]);
    return sv[0];
}

static void expect_peer_ok(pid_t pid)
{
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the scripted daemon ended with %d", st);
}

static const hy_msg_hello hello = {.min_version = 1, .max_version = 1,
                                   .features = HY_FEATURE_PROGRESS, .name = {"test", 4}};

Test(ipc_client, a_failed_connect_keeps_its_errno)
{
    hy_client *c = (hy_client *)1;
    int e = -1;
    hy_error err = {0};
    int rc = hy_client_connect("/nonexistent/hybridd-test.sock", &c, &e, &err);
    cr_expect_eq(rc, HY_ESYS);
    cr_expect_eq(e, ENOENT, "errno %d, want ENOENT", e);
    cr_expect_null(c);
    cr_expect(strstr(err.msg, "/nonexistent/hybridd-test.sock"), "%s", err.msg);
}

/* A daemon that refuses sends its ERROR and closes before it reads anything: the HELLO's
 * send fails (EPIPE), and the refusal must still reach the user. */
Test(ipc_client, a_refusal_is_read_although_the_send_finds_the_daemon_gone)
{
    int sv[2];
    pair(sv);
    signal(SIGPIPE, SIG_IGN);
    peer_error(sv[1], 0, HY_EPERM, 0, "uid 1000 is not let in: see access.uids");
    close(sv[1]);
    hy_client *c;
    hy_error err = {0};
    cr_assert_eq(hy_client_adopt(sv[0], &c, &err), 0, "%s", err.msg);
    const hy_msg *reply;
    int rc = hy_client_hello(c, &hello, 5000, &reply, &err);
    cr_assert_eq(rc, HY_CLIENT_ERROR, "rc %d: %s", rc, err.msg);
    cr_assert_not_null(reply);
    cr_expect_eq(reply->u.error.code, HY_EPERM);
    cr_expect_eq(err.code, HY_EPERM);
    cr_expect_str_eq(err.msg, "uid 1000 is not let in: see access.uids");
    cr_expect_null(hy_client_welcome(c));
    hy_client_close(c);
}

Test(ipc_client, a_send_to_a_closed_daemon_leaves_what_it_said_to_read)
{
    int sv[2];
    pair(sv);
    signal(SIGPIPE, SIG_IGN);
    peer_error(sv[1], 0, HY_EBUSY, 0, "too many clients");
    close(sv[1]);
    hy_client *c;
    hy_error err = {0};
    cr_assert_eq(hy_client_adopt(sv[0], &c, &err), 0, "%s", err.msg);
    hy_msg ping = {.type = HY_MSG_PING, .request = hy_client_next_request(c)};
    cr_assert_eq(hy_client_send(c, &ping, NULL, 0, &err), HY_CLIENT_EOF, "%s", err.msg);
    const hy_msg *m;
    cr_assert_eq(hy_client_recv(c, 5000, &m, &err), 0, "%s", err.msg);
    cr_expect_eq(m->type, HY_MSG_ERROR);
    cr_expect_eq(m->u.error.code, HY_EBUSY);
    cr_expect_eq(hy_client_recv(c, 5000, &m, &err), HY_CLIENT_EOF);
    cr_expect_not(hy_client_usable(c));
    hy_client_close(c);
}

Test(ipc_client, receive_waits_its_timeout_then_sees_the_end)
{
    int sv[2];
    pair(sv);
    hy_client *c;
    hy_error err = {0};
    cr_assert_eq(hy_client_adopt(sv[0], &c, &err), 0, "%s", err.msg);
    const hy_msg *m;
    cr_expect_eq(hy_client_recv(c, 0, &m, &err), HY_CLIENT_TIMEOUT);
    cr_expect_eq(hy_client_recv(c, 30, &m, &err), HY_CLIENT_TIMEOUT);
    cr_expect(hy_client_usable(c));
    /* Half a frame, then the end: no message, the end of the stream. */
    uint8_t half[12] = "HYD1";
    cr_assert_eq(write(sv[1], half, sizeof half), (ssize_t)sizeof half);
    cr_expect_eq(hy_client_recv(c, 30, &m, &err), HY_CLIENT_TIMEOUT);
    close(sv[1]);
    cr_expect_eq(hy_client_recv(c, 5000, &m, &err), HY_CLIENT_EOF);
    hy_client_close(c);
}

static void script_ask(int fd, hy_frame_reader *r, hy_msg *m)
{
    peer_welcome(fd, r, m);
    peer_recv(fd, r, m); /* STATUS: answered after a stray PONG for another request */
    if (m->type != HY_MSG_STATUS)
        _exit(95);
    hy_msg pong = {.type = HY_MSG_PONG, .request = m->request + 100};
    peer_send(fd, &pong);
    hy_msg st = {.type = HY_MSG_STATUS_REPLY, .request = m->request};
    st.u.status.clients = 7;
    st.u.status.version = (hy_str){"1.0", 3};
    peer_send(fd, &st);
    peer_recv(fd, r, m); /* DEVICES: refused */
    peer_error(fd, m->request, HY_EINVAL, 0, "no devices today");
}

Test(ipc_client, hello_and_ask_match_replies_and_return_an_error_as_such)
{
    pid_t pid;
    int fd = start_peer(script_ask, &pid);
    hy_client *c;
    hy_error err = {0};
    cr_assert_eq(hy_client_adopt(fd, &c, &err), 0, "%s", err.msg);
    const hy_msg *r;
    cr_assert_eq(hy_client_hello(c, &hello, 5000, &r, &err), 0, "%s", err.msg);
    const hy_msg_welcome *w = hy_client_welcome(c);
    cr_assert_not_null(w);
    cr_expect_eq(w->max_payload, 65536);
    cr_expect_eq(hy_client_max_payload(c), 65536);
    cr_expect_eq(w->server.len, 8);
    cr_expect_eq(memcmp(w->server.p, "scripted", 8), 0);
    hy_msg q = {.type = HY_MSG_STATUS};
    cr_assert_eq(hy_client_ask(c, &q, HY_MSG_STATUS_REPLY, 5000, &r, &err), 0, "%s", err.msg);
    cr_expect_eq(r->type, HY_MSG_STATUS_REPLY);
    cr_expect_eq(r->u.status.clients, 7);
    q = (hy_msg){.type = HY_MSG_DEVICES};
    cr_assert_eq(hy_client_ask(c, &q, HY_MSG_DEVICES_REPLY, 5000, &r, &err), HY_CLIENT_ERROR);
    cr_expect_eq(r->type, HY_MSG_ERROR);
    cr_expect_eq(err.code, HY_EINVAL);
    cr_expect_str_eq(err.msg, "no devices today");
    hy_client_close(c);
    expect_peer_ok(pid);
}

/* ACCEPTED, two PROGRESS frames, then the RESULT; a message for another request between. */
static void script_job(int fd, hy_frame_reader *r, hy_msg *m)
{
    peer_welcome(fd, r, m);
    peer_recv(fd, r, m);
    if (m->type != HY_MSG_SUBMIT)
        _exit(96);
    uint64_t req = m->request;
    hy_msg a = {.type = HY_MSG_ACCEPTED, .request = req};
    a.u.accepted = (hy_msg_accepted){.queue_position = 2, .job_id = 42, .nrows = 1,
                                     .threads = 2, .repeat = 3, .warmup = 1};
    peer_send(fd, &a);
    for (uint64_t done = 5; done <= 10; done += 5) {
        hy_msg p = {.type = HY_MSG_PROGRESS, .request = req};
        p.u.progress = (hy_msg_progress){.job_id = 42, .done = done, .total = 10};
        peer_send(fd, &p);
    }
    peer_error(fd, req + 1, HY_EINVAL, 42, "about another request");
    static hy_msg res;
    static hy_result_row row = {.backend = HY_BACKEND_NATIVE, .threads = 2, .n = 1000,
                                .hits = 785};
    res.type = HY_MSG_RESULT;
    res.request = req;
    res.u.result.job = HY_JOB_PI;
    res.u.result.nrows = 1;
    res.u.result.job_id = 42;
    res.u.result.rows = &row;
    peer_send(fd, &res);
}

struct seen {
    unsigned accepted, progress;
    uint64_t last_done;
    bool cancel_now;
    unsigned cancelling;
};

static void on_accepted(void *ctx, const hy_client_job *j)
{
    struct seen *s = ctx;
    s->accepted++;
    cr_expect_eq(j->job_id, 42);
    cr_expect_eq(j->queue_position, 2);
    /* the job as the daemon resolved it, known before any PROGRESS */
    cr_expect_eq(j->nrows, 1);
    cr_expect_eq(j->threads, 2);
    cr_expect_eq(j->repeat, 3);
    cr_expect_eq(j->warmup, 1);
}

static void on_progress(void *ctx, const hy_client_job *j, const hy_msg_progress *p)
{
    struct seen *s = ctx;
    s->progress++;
    s->last_done = p->done;
    cr_expect_eq(j->job_id, 42);
}

Test(ipc_client, a_job_reports_its_answers_and_ends_with_its_result)
{
    pid_t pid;
    int fd = start_peer(script_job, &pid);
    hy_client *c;
    hy_error err = {0};
    cr_assert_eq(hy_client_adopt(fd, &c, &err), 0, "%s", err.msg);
    const hy_msg *r;
    cr_assert_eq(hy_client_hello(c, &hello, 5000, &r, &err), 0, "%s", err.msg);
    static hy_msg s;
    s.type = HY_MSG_SUBMIT;
    s.u.submit = (hy_msg_submit){.job = HY_JOB_PI, .backend = HY_BACKEND_NATIVE,
                                 .threads = 2, .repeat = 1, .n = 1000, .seed = 1};
    struct seen seen = {0};
    hy_client_job_events ev = {.ctx = &seen, .accepted = on_accepted, .progress = on_progress};
    hy_client_job j;
    cr_assert_eq(hy_client_run(c, &s, NULL, 0, &ev, 5000, &j, &r, &err), 0, "%s", err.msg);
    cr_expect_eq(r->type, HY_MSG_RESULT);
    cr_expect_eq(r->u.result.rows_in[0].hits, 785);
    cr_expect_eq(j.request, s.request);
    cr_expect_eq(j.job_id, 42);
    cr_expect_eq(seen.accepted, 1);
    cr_expect_eq(seen.progress, 2);
    cr_expect_eq(seen.last_done, 10);
    hy_client_close(c);
    expect_peer_ok(pid);
}

/* Accepts the job, waits for its CANCEL, answers ECANCELED. */
static void script_cancel(int fd, hy_frame_reader *r, hy_msg *m)
{
    peer_welcome(fd, r, m);
    peer_recv(fd, r, m);
    if (m->type != HY_MSG_SUBMIT)
        _exit(96);
    uint64_t req = m->request;
    hy_msg a = {.type = HY_MSG_ACCEPTED, .request = req};
    a.u.accepted = (hy_msg_accepted){.job_id = 42};
    peer_send(fd, &a);
    peer_recv(fd, r, m);
    if (m->type != HY_MSG_CANCEL || m->u.cancel.job_id != 42)
        _exit(97);
    peer_error(fd, req, HY_ECANCELED, 42, "cancelled by its client");
}

static bool want_cancel(void *ctx)
{
    return ((struct seen *)ctx)->cancel_now;
}

static void on_accepted_cancel(void *ctx, const hy_client_job *j)
{
    (void)j;
    ((struct seen *)ctx)->cancel_now = true;
}

static void on_cancelling(void *ctx, const hy_client_job *j)
{
    cr_expect_eq(j->job_id, 42);
    ((struct seen *)ctx)->cancelling++;
}

Test(ipc_client, a_cancel_goes_once_the_job_has_its_id_and_the_job_ends_cancelled)
{
    pid_t pid;
    int fd = start_peer(script_cancel, &pid);
    hy_client *c;
    hy_error err = {0};
    cr_assert_eq(hy_client_adopt(fd, &c, &err), 0, "%s", err.msg);
    const hy_msg *r;
    cr_assert_eq(hy_client_hello(c, &hello, 5000, &r, &err), 0, "%s", err.msg);
    static hy_msg s;
    s.type = HY_MSG_SUBMIT;
    s.u.submit = (hy_msg_submit){.job = HY_JOB_PI, .backend = HY_BACKEND_NATIVE,
                                 .threads = 2, .repeat = 1, .n = 1000, .seed = 1};
    struct seen seen = {0};
    hy_client_job_events ev = {.ctx = &seen, .accepted = on_accepted_cancel,
                               .want_cancel = want_cancel, .cancelling = on_cancelling,
                               .slice_ms = 10};
    hy_client_job j;
    int rc = hy_client_run(c, &s, NULL, 0, &ev, 5000, &j, &r, &err);
    cr_assert_eq(rc, HY_CLIENT_ERROR, "rc %d: %s", rc, err.msg);
    cr_expect_eq(r->u.error.code, HY_ECANCELED);
    cr_expect(j.cancel_sent);
    cr_expect_eq(seen.cancelling, 1);
    hy_client_close(c);
    expect_peer_ok(pid);
}
