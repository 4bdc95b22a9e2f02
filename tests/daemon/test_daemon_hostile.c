/* tests/daemon: bad input never hurts the daemon — broken headers close only their own
 * connection, malformed messages get an ERROR with the right code and the stream goes on,
 * and after each a fresh client is served. */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "suite.h"

TestSuite(daemon_hostile, .init = suite_start_default, .fini = suite_stop, .timeout = 60);

/* A fresh client still gets a PONG and a correct pi. */
static void expect_served(const char *after)
{
    hyt_client *c = hyt_connect_hello(D.sock);
    cr_assert_not_null(c, "no fresh client served after %s", after);
    cr_expect_eq(hyt_ping(c, 0xabc), 0, "no PONG after %s", after);
    hy_msg_submit s = hyt_pi(HY_BACKEND_NATIVE, 2, 100000, 21);
    hyt_job j;
    suite_run_ok(c, &s, NULL, 0, &j, after);
    suite_check_pi_row(&j.rows[0], HY_BACKEND_NATIVE, 2, 21, 100000, 1, after);
    hyt_job_release(c, &j);
    hyt_close(c);
}

/* Sends raw bytes on a welcomed connection; expects ERROR `want`, then the close. */
static void expect_broken(const void *bytes, size_t n, int want, const char *what)
{
    hyt_client *by = suite_client();
    hyt_client *c = suite_client();
    cr_assert_eq(hyt_send_raw(c, bytes, n), 0, "%s: send: %s", what, c->err.msg);
    int rc = hyt_recv(c, HYT_WAIT_MS);
    cr_assert_eq(rc, 0, "%s: no ERROR (%d %s)", what, rc, c->err.msg);
    cr_assert_eq(c->msg->type, HY_MSG_ERROR, "%s: answered with type %u", what, c->msg->type);
    cr_expect_eq(c->msg->u.error.code, want, "%s: code %s, want %s", what,
                 hy_err_name(c->msg->u.error.code), hy_err_name(want));
    cr_expect_eq(c->msg->u.error.job_id, 0);
    cr_expect_gt(c->msg->u.error.message.len, 0);
    rc = hyt_recv(c, HYT_WAIT_MS);
    cr_expect_eq(rc, HYT_EOF, "%s: connection not closed (got %d, type %u)", what, rc,
                 rc == 0 ? c->msg->type : 0);
    hyt_close(c);
    cr_expect_eq(hyt_ping(by, 1), 0, "%s: a bystander connection was hurt", what);
    hyt_close(by);
    expect_served(what);
}

static size_t header(uint8_t *buf, uint16_t version, uint16_t type, uint32_t flags,
                     uint32_t length, uint64_t request)
{
    hy_frame_header h = {
        .version = version, .type = type, .flags = flags, .length = length, .request = request};
    hy_frame_header_encode(&h, buf);
    return HY_IPC_HEADER;
}

Test(daemon_hostile, bad_magic_is_eproto_and_close)
{
    uint8_t buf[64];
    memset(buf, 0, sizeof buf);
    header(buf, 1, HY_MSG_PING, 0, 16, 3);
    memcpy(buf, "XYD1", 4);
    expect_broken(buf, 40, HY_EPROTO, "bad magic");
}

Test(daemon_hostile, garbage_is_eproto_and_close)
{
    uint8_t buf[4096];
    uint64_t s = 99;
    for (size_t i = 0; i < sizeof buf; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        buf[i] = (uint8_t)(s >> 56);
    }
    expect_broken(buf, sizeof buf, HY_EPROTO, "4 KiB of garbage");
}

Test(daemon_hostile, unknown_flag_bit_is_eproto_and_close)
{
    uint8_t buf[40] = {0};
    header(buf, 1, HY_MSG_PING, 0x2, 16, 3);
    buf[24] = 16;
    expect_broken(buf, sizeof buf, HY_EPROTO, "unknown flag bit");
}

Test(daemon_hostile, frame_version_2_is_eversion_and_close)
{
    uint8_t buf[40] = {0};
    header(buf, 2, HY_MSG_PING, 0, 16, 3);
    buf[24] = 16;
    expect_broken(buf, sizeof buf, HY_EVERSION, "frame version 2");
}

Test(daemon_hostile, fds_flag_without_fds_breaks_the_stream)
{
    uint8_t buf[40] = {0};
    header(buf, 1, HY_MSG_PING, HY_IPC_F_FDS, 16, 3);
    buf[24] = 16;
    hyt_client *c = suite_client();
    cr_assert_eq(hyt_send_raw(c, buf, sizeof buf), 0);
    /* An ERROR is welcome but optional here; the close is not. */
    int rc = hyt_recv(c, HYT_WAIT_MS);
    if (rc == 0) {
        cr_expect_eq(c->msg->type, HY_MSG_ERROR, "F_FDS without fds answered with type %u",
                     c->msg->type);
        rc = hyt_recv(c, HYT_WAIT_MS);
    }
    cr_expect_eq(rc, HYT_EOF, "F_FDS without fds: connection not closed (%d)", rc);
    hyt_close(c);
    expect_served("F_FDS without fds");
}

Test(daemon_hostile, half_a_frame_then_close_leaves_the_daemon_fine)
{
    uint8_t buf[40] = {0};
    header(buf, 1, HY_MSG_PING, 0, 16, 3);
    buf[24] = 16;
    /* Half a header before HELLO, half a payload after it, half a HELLO. */
    hyt_client *c = hyt_connect(D.sock);
    cr_assert_not_null(c);
    cr_assert_eq(hyt_send_raw(c, buf, 10), 0);
    hyt_close(c);
    c = suite_client();
    cr_assert_eq(hyt_send_raw(c, buf, 30), 0);
    hyt_close(c);
    c = hyt_connect(D.sock);
    cr_assert_not_null(c);
    hy_msg m = {.type = HY_MSG_HELLO, .request = 1};
    m.u.hello.min_version = 1;
    m.u.hello.max_version = 1;
    uint8_t hello[128];
    size_t len;
    cr_assert_eq(hyt_encode(c, &m, hello, sizeof hello, &len), 0);
    cr_assert_eq(hyt_send_raw(c, hello, len - 3), 0);
    hyt_close(c);
    /* Connect and close without a byte. */
    c = hyt_connect(D.sock);
    cr_assert_not_null(c);
    hyt_close(c);
    expect_served("half frames");
}

Test(daemon_hostile, unknown_type_is_etype_and_the_stream_goes_on)
{
    hyt_client *c = suite_client();
    uint8_t buf[24 + 16] = {0};
    header(buf, 1, 99, 0, 16, 4242);
    buf[24] = 16;
    cr_assert_eq(hyt_send_raw(c, buf, sizeof buf), 0);
    cr_assert_eq(hyt_recv(c, HYT_WAIT_MS), 0, "%s", c->err.msg);
    cr_assert_eq(c->msg->type, HY_MSG_ERROR, "type 99 answered with type %u", c->msg->type);
    cr_expect_eq(c->msg->u.error.code, HY_ETYPE, "code %s", hy_err_name(c->msg->u.error.code));
    cr_expect_eq(c->msg->request, 4242, "ERROR request %llu, want 4242",
                 (unsigned long long)c->msg->request);
    cr_expect_eq(hyt_ping(c, 12), 0, "no PONG after an unknown type: stream not kept");
    /* A server-only type sent by a client is known but not a request. */
    header(buf, 1, HY_MSG_WELCOME, 0, 16, 4243);
    cr_assert_eq(hyt_send_raw(c, buf, sizeof buf), 0);
    cr_assert_eq(hyt_recv_reply(c, HY_MSG_ERROR, 4243, HYT_WAIT_MS), 0,
                 "no ERROR for a WELCOME sent to the daemon: %s", c->err.msg);
    cr_assert_eq(c->msg->type, HY_MSG_ERROR);
    cr_expect_lt(c->msg->u.error.code, 0);
    /* Wherever that left the stream, the daemon answers others. */
    hyt_close(c);
    expect_served("an unknown type");
}

/* Sends `bytes` (one frame) on a welcomed connection, expects ERROR `want` for request
 * `request` (job_id 0), then a PONG on the same stream. */
static void expect_refused_frame(hyt_client *c, const void *bytes, size_t n, const int *fds,
                                 unsigned nfds, uint64_t request, int want, int want2,
                                 const char *what)
{
    if (nfds) {
        /* fds go with the first byte: a raw frame through the client's writer. */
        cr_assert_eq(hyt_send_frame(c, bytes, n, fds, nfds), 0, "%s", c->err.msg);
    } else {
        cr_assert_eq(hyt_send_raw(c, bytes, n), 0);
    }
    int rc = hyt_recv_reply(c, HY_MSG_ERROR, request, HYT_WAIT_MS);
    cr_assert_eq(rc, 0, "%s: no answer (%d %s)", what, rc, c->err.msg);
    cr_assert_eq(c->msg->type, HY_MSG_ERROR, "%s: answered with %s", what,
                 hy_msg_type_name(c->msg->type) ? hy_msg_type_name(c->msg->type) : "?");
    int got = c->msg->u.error.code;
    cr_expect(got == want || (want2 && got == want2),
              "%s: code %s (%d) \"%.*s\", want %s%s%s", what, hy_err_name(got), got,
              (int)c->msg->u.error.message.len,
              c->msg->u.error.message.p ? c->msg->u.error.message.p : "", hy_err_name(want),
              want2 ? " or " : "", want2 ? hy_err_name(want2) : "");
    cr_expect_eq(c->msg->u.error.job_id, 0, "%s: job_id %llu", what,
                 (unsigned long long)c->msg->u.error.job_id);
    cr_expect_eq(hyt_ping(c, request), 0, "%s: no PONG after: the stream was not kept", what);
}

/* Byte offsets in a SUBMIT frame (header + body). */
#define SUB(off) (HY_IPC_HEADER + (off))

static size_t encode_submit(hyt_client *c, const hy_msg_submit *s, uint64_t request,
                            uint8_t *buf, size_t cap)
{
    hy_msg *m = calloc(1, sizeof *m);
    cr_assert_not_null(m);
    m->type = HY_MSG_SUBMIT;
    m->request = request;
    m->u.submit = *s;
    size_t len;
    cr_assert_eq(hyt_encode(c, m, buf, cap, &len), 0, "%s", c->err.msg);
    free(m);
    return len;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

Test(daemon_hostile, malformed_submits_get_their_code_and_the_stream_goes_on)
{
    hyt_client *c = suite_client();
    uint8_t buf[512];
    int32_t data[8] = {5, -1, 3, 3, 0, -7, 2, 1};
    hy_msg_submit sort = hyt_sort_inline(HY_BACKEND_NATIVE, 2, HY_DT_I32, data, 8);
    hy_msg_submit pi = hyt_pi(HY_BACKEND_NATIVE, 2, 1000, 1);
    size_t n;

    n = encode_submit(c, &sort, 100, buf, sizeof buf);
    put16(buf + SUB(14), 9);
    expect_refused_frame(c, buf, n, NULL, 0, 100, HY_EDTYPE, 0, "sort dtype 9");

    n = encode_submit(c, &pi, 101, buf, sizeof buf);
    put16(buf + SUB(4), 9);
    expect_refused_frame(c, buf, n, NULL, 0, 101, HY_EINVAL, 0, "job kind 9");

    n = encode_submit(c, &pi, 102, buf, sizeof buf);
    put16(buf + SUB(6), 9);
    expect_refused_frame(c, buf, n, NULL, 0, 102, HY_EBACKEND, 0, "backend 9");

    n = encode_submit(c, &pi, 103, buf, sizeof buf);
    put16(buf + SUB(10), 5);
    expect_refused_frame(c, buf, n, NULL, 0, 103, HY_EINVAL, 0, "mode 5");

    n = encode_submit(c, &pi, 104, buf, sizeof buf);
    put32(buf + SUB(52), 1); /* threads 0 is the pool; a list is a compare's only */
    expect_refused_frame(c, buf, n, NULL, 0, 104, HY_EINVAL, 0, "a thread list on pi");

    n = encode_submit(c, &pi, 105, buf, sizeof buf);
    put32(buf + SUB(0), 20); /* body_size below 56 */
    expect_refused_frame(c, buf, n, NULL, 0, 105, HY_EPROTO, 0, "SUBMIT body_size 20");

    n = encode_submit(c, &sort, 106, buf, sizeof buf);
    put32(buf + SUB(32), 9); /* n 9 but 8 elements follow */
    expect_refused_frame(c, buf, n, NULL, 0, 106, HY_EPROTO, 0, "inline n above the bytes sent");

    hy_msg_submit mem = hyt_sort_memfd(HY_BACKEND_NATIVE, 2, HY_DT_I32, 8);
    n = encode_submit(c, &mem, 107, buf, sizeof buf);
    expect_refused_frame(c, buf, n, NULL, 0, 107, HY_EPROTO, 0, "memfd array without an fd");

    n = encode_submit(c, &pi, 108, buf, sizeof buf);
    put32(buf + SUB(28), HY_ARRAY_INLINE); /* pi with an array */
    expect_refused_frame(c, buf, n, NULL, 0, 108, HY_EINVAL, HY_EPROTO, "pi with array 1");

    /* A memfd without the seals: the daemon must not map it. */
    int fd;
    void *map;
    hy_error err;
    cr_assert_eq(hy_memfd_create("hyt-unsealed", 32, &fd, &map, &err), 0, "%s", err.msg);
    memcpy(map, data, 32);
    n = encode_submit(c, &mem, 109, buf, sizeof buf);
    expect_refused_frame(c, buf, n, &fd, 1, 109, HY_EINVAL, 0, "unsealed memfd");
    hy_memfd_unmap(map, 32);
    close(fd);

    /* A sealed memfd smaller than n elements. */
    cr_assert_eq(hy_memfd_create("hyt-small", 16, &fd, &map, &err), 0, "%s", err.msg);
    cr_assert_eq(hy_memfd_seal(fd, &err), 0, "%s", err.msg);
    n = encode_submit(c, &mem, 110, buf, sizeof buf);
    expect_refused_frame(c, buf, n, &fd, 1, 110, HY_EINVAL, 0, "memfd smaller than n elements");
    hy_memfd_unmap(map, 16);
    close(fd);

    /* A pipe is not a memfd. */
    int p[2];
    cr_assert_eq(pipe(p), 0);
    n = encode_submit(c, &mem, 111, buf, sizeof buf);
    expect_refused_frame(c, buf, n, &p[0], 1, 111, HY_EINVAL, 0, "a pipe as the array");
    close(p[0]);
    close(p[1]);

    /* An fd with a pi job. */
    cr_assert_eq(pipe(p), 0);
    n = encode_submit(c, &pi, 112, buf, sizeof buf);
    expect_refused_frame(c, buf, n, &p[0], 1, 112, HY_EPROTO, 0, "an fd with a pi job");
    close(p[0]);
    close(p[1]);

    /* A compare with a backend bit that names none, and with a thread count of 0 (an empty
     * set or list is the daemon's default, daemon_jobs' defaults test). */
    hy_msg_submit cmp = {0};
    cmp.job = HY_JOB_COMPARE_PI;
    cmp.n = 1000;
    cmp.backends = 1u << HY_BACKEND_NATIVE;
    cmp.nthreads_list = 2;
    cmp.threads_list[0] = 1;
    cmp.threads_list[1] = 2;
    n = encode_submit(c, &cmp, 113, buf, sizeof buf);
    put32(buf + SUB(48), 1u << (HY_BACKEND_COUNT + 1)); /* the bit after the last backend's */
    expect_refused_frame(c, buf, n, NULL, 0, 113, HY_EBACKEND, 0,
                         "compare backend bit past the last");
    n = encode_submit(c, &cmp, 114, buf, sizeof buf);
    /* threads_list starts at align8(body_size) = 72: the second count is at 76. */
    put32(buf + SUB(76), 0);
    expect_refused_frame(c, buf, n, NULL, 0, 114, HY_EINVAL, 0, "compare thread count 0");

    /* Ranks beyond this daemon, on a daemon not started under MPI. */
    n = encode_submit(c, &pi, 116, buf, sizeof buf);
    put16(buf + SUB(64), 2);
    expect_refused_frame(c, buf, n, NULL, 0, 116, HY_EINVAL, 0, "ranks 2 without MPI");
    n = encode_submit(c, &pi, 117, buf, sizeof buf);
    put16(buf + SUB(64), HY_IPC_RANKS_ALL);
    expect_refused_frame(c, buf, n, NULL, 0, 117, HY_EINVAL, 0, "every rank without MPI");

    /* Malformed PING and CANCEL bodies. */
    hy_msg ping = {.type = HY_MSG_PING, .request = 115};
    n = 0;
    cr_assert_eq(hyt_encode(c, &ping, buf, sizeof buf, &n), 0);
    put32(buf + SUB(0), 4);
    expect_refused_frame(c, buf, n, NULL, 0, 115, HY_EPROTO, 0, "PING body_size 4");

    /* Still a working connection for jobs. */
    hyt_job j;
    suite_run_ok(c, &sort, NULL, 0, &j, "inline sort after the bad ones");
    cr_assert_eq(j.array_bytes, 32);
    const int32_t want[8] = {-7, -1, 0, 1, 2, 3, 3, 5};
    cr_expect_eq(memcmp(j.array, want, 32), 0, "8-element sort wrong");
    hyt_job_release(c, &j);
    suite_client_clean(c);
    hyt_close(c);
    expect_served("malformed SUBMITs");
}

/* A client that keeps rewriting its memfd while the daemon sorts it in place (the protocol
 * forbids it; nothing can stop it) gets a wrong order at worst: the daemon must not write
 * outside its buffers, must answer every job, and must go on serving. The sort reads its
 * input twice (counting, then scattering), which is exactly where changed data could push
 * a store past the end. */
struct flipper {
    volatile uint32_t *a;
    size_t n;
    atomic_int stop;
};

static void *flip(void *p)
{
    struct flipper *f = p;
    /* Spread-out keys, then all one value, then spread, then the other extreme: whatever
     * a pass counted, the next read of the same memory sees something else. */
    for (unsigned round = 0; !atomic_load(&f->stop); round++)
        for (size_t i = 0; i < f->n; i++)
            f->a[i] = round % 2 ? (uint32_t)i * 2654435761u : round % 4 ? 0u : ~0u;
    return NULL;
}

Test(daemon_hostile, a_memfd_rewritten_during_the_sort_hurts_only_its_own_order)
{
    const size_t n = 1000000;
    hyt_client *c = suite_client();
    int fd;
    void *map;
    hy_error err = {0};
    cr_assert_eq(hy_memfd_create("flip", n * 4, &fd, &map, &err), 0, "%s", err.msg);
    cr_assert_eq(hy_memfd_seal(fd, &err), 0, "%s", err.msg);
    struct flipper f = {.a = map, .n = n};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, flip, &f), 0);
    const int backends[] = {HY_BACKEND_SERIAL, HY_BACKEND_NATIVE, HY_BACKEND_LOCKED};
    for (int i = 0; i < 12; i++) {
        int b = backends[i % 3];
        hy_msg_submit s = hyt_sort_memfd(b, b == HY_BACKEND_SERIAL ? 1 : 2, HY_DT_U32, n);
        hyt_job j;
        int rc = hyt_run(c, &s, &fd, 1, &j);
        cr_assert_eq(rc, 0, "job %d on %s: no final answer (%s)", i, hy_backend_name(b),
                     c->err.msg);
        hyt_job_release(c, &j);
    }
    atomic_store(&f.stop, 1);
    pthread_join(t, NULL);
    suite_client_clean(c);
    hyt_close(c);
    hy_memfd_unmap(map, n * 4);
    close(fd);
    expect_served("a memfd rewritten during its sort");
    suite_stop(); /* here, not only in .fini: a crash on the way out must fail the test */
}
