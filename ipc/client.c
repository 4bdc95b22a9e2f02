/* ipc/client.c: one client connection to hybridd — connect, HELLO, send, receive with a
 * timeout, ask, run a job to its one final answer, cancel. The only part of ipc/ that waits
 * (in poll, and in recvmsg under SO_RCVTIMEO): hybridctl, the benchmarks and the tests use
 * it; the daemon never does. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "ipc.h"

/* The writer's bound: the largest inline array a WELCOME can allow, with room to spare. */
#define WRITER_MAX ((size_t)64 << 20)
#define SEND_TIMEOUT_MS 30000
/* A daemon that closes on us has said why within this many frames and seconds, or not at all. */
#define PARTING_FRAMES 64
#define PARTING_WAIT_MS 1000
#define SLICE_MS 100

struct hy_client {
    int fd;
    hy_frame_reader *r;
    hy_frame_writer *w;
    hy_msg *in;  /* the last message received (~56 KiB: on the heap) */
    hy_msg *out; /* the requests the client builds itself: HELLO, CANCEL */
    int fds[HY_IPC_MAX_FDS]; /* fds that came with `in`, closed at the next receive */
    unsigned nfds;
    uint32_t max_payload;
    uint64_t next_request;
    int send_timeout_ms;
    int rcvtimeo_ms; /* SO_RCVTIMEO as last set (-1: none), so it is set only on a change */
    bool welcomed, broken, ended;
    hy_msg_welcome welcome;
    char server[HY_IPC_NAME_MAX + 1];
};

static int64_t ms_left(uint64_t end_ns)
{
    uint64_t now = hy_now_ns();
    return now >= end_ns ? 0 : (int64_t)((end_ns - now + 999999u) / 1000000u);
}

static uint64_t deadline(int timeout_ms)
{
    return hy_now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
}

static void drop_fds(hy_client *c)
{
    for (unsigned i = 0; i < c->nfds; i++)
        close(c->fds[i]);
    c->nfds = 0;
}

/* An ERROR from the daemon: its code and sentence into err. */
static int daemon_error(const hy_msg *m, hy_error *err)
{
    const hy_msg_error *e = &m->u.error;
    hy_error_set(err, e->code, "%.*s", (int)e->message.len, e->message.p ? e->message.p : "");
    return HY_CLIENT_ERROR;
}

int hy_client_adopt(int fd, hy_client **out, hy_error *err)
{
    if (!out) {
        close(fd);
        return hy_error_set(err, HY_EINVAL, "no place for the client");
    }
    *out = NULL;
    /* Blocking, so that a receive can wait in recvmsg itself: one system call per reply. The
     * reader and writer pass MSG_DONTWAIT wherever they must not wait. */
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || ((fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0)) {
        int e = errno;
        close(fd);
        return hy_error_set(err, HY_ESYS, "fcntl on the client socket: %s", strerror(e));
    }
    hy_client *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return hy_error_set(err, HY_ENOMEM, "out of memory for a client");
    }
    c->fd = fd;
    c->max_payload = HY_IPC_MAX_PAYLOAD;
    c->next_request = 1;
    c->send_timeout_ms = SEND_TIMEOUT_MS;
    c->rcvtimeo_ms = -1;
    c->in = malloc(sizeof *c->in);
    c->out = malloc(sizeof *c->out);
    if (!c->in || !c->out) {
        hy_client_close(c);
        return hy_error_set(err, HY_ENOMEM, "out of memory for a client's messages");
    }
    int rc = hy_frame_reader_new(HY_IPC_MAX_PAYLOAD, &c->r, err);
    if (rc == 0)
        rc = hy_frame_writer_new(WRITER_MAX, &c->w, err);
    if (rc) {
        hy_client_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

int hy_client_connect(const char *path, hy_client **out, int *sys_errno, hy_error *err)
{
    if (sys_errno)
        *sys_errno = 0;
    if (!out)
        return hy_error_set(err, HY_EINVAL, "no place for the client");
    *out = NULL;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (!path || strlen(path) >= sizeof a.sun_path)
        return hy_error_set(err, HY_EINVAL, "socket path %s is too long: at most %zu bytes",
                            path ? path : "(none)", sizeof a.sun_path - 1);
    memcpy(a.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return hy_error_set(err, HY_ESYS, "socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = errno;
        close(fd);
        if (sys_errno)
            *sys_errno = e;
        return hy_error_set(err, HY_ESYS, "connect %s: %s", path, strerror(e));
    }
    return hy_client_adopt(fd, out, err);
}

void hy_client_close(hy_client *c)
{
    if (!c)
        return;
    drop_fds(c);
    if (c->fd >= 0)
        close(c->fd);
    hy_frame_reader_free(c->r);
    hy_frame_writer_free(c->w);
    free(c->in);
    free(c->out);
    free(c);
}

int hy_client_fd(const hy_client *c)
{
    return c->fd;
}

uint64_t hy_client_next_request(hy_client *c)
{
    return c->next_request++;
}

uint32_t hy_client_max_payload(const hy_client *c)
{
    return c->max_payload;
}

const hy_msg_welcome *hy_client_welcome(const hy_client *c)
{
    return c->welcomed ? &c->welcome : NULL;
}

void hy_client_set_send_timeout(hy_client *c, int timeout_ms)
{
    c->send_timeout_ms = timeout_ms > 0 ? timeout_ms : SEND_TIMEOUT_MS;
}

bool hy_client_usable(const hy_client *c)
{
    return !c->broken && !c->ended;
}

unsigned hy_client_fds(const hy_client *c, const int **fds)
{
    if (fds)
        *fds = c->fds;
    return c->nfds;
}

/* ---- sending ---- */

/* A send that failed because the daemon is gone reads as the end of the stream: what it
 * sent before it closed is still to be read. */
static int send_failed(int rc, int e)
{
    return rc == HY_ESYS && (e == EPIPE || e == ECONNRESET) ? HY_CLIENT_EOF : rc;
}

int hy_client_flush(hy_client *c, hy_error *err)
{
    uint64_t end = deadline(c->send_timeout_ms);
    size_t pending = hy_frame_writer_pending(c->w);
    for (;;) {
        int rc = hy_frame_writer_flush(c->w, c->fd, err);
        if (rc == 0)
            return 0;
        if (rc < 0)
            return send_failed(rc, errno);
        /* The limit is on a daemon that takes nothing, not on a large frame going slowly. */
        size_t now = hy_frame_writer_pending(c->w);
        if (now < pending) {
            pending = now;
            end = deadline(c->send_timeout_ms);
        }
        int64_t left = ms_left(end);
        if (left <= 0)
            return hy_error_set(err, HY_ESYS, "the daemon stopped reading");
        struct pollfd p = {.fd = c->fd, .events = POLLOUT};
        if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
            return hy_error_set(err, HY_ESYS, "poll: %s", strerror(errno));
    }
}

int hy_client_push(hy_client *c, const hy_msg *m, const int *fds, unsigned nfds,
                   hy_error *err)
{
    return hy_msg_push(c->w, m, fds, nfds, c->max_payload, err);
}

int hy_client_send(hy_client *c, const hy_msg *m, const int *fds, unsigned nfds,
                   hy_error *err)
{
    int rc = hy_client_push(c, m, fds, nfds, err);
    return rc ? rc : hy_client_flush(c, err);
}

int hy_client_send_frame(hy_client *c, hy_frame_header h, const hy_iov *parts,
                         unsigned nparts, const int *fds, unsigned nfds, hy_error *err)
{
    int rc = hy_frame_writer_push(c->w, h, parts, nparts, fds, nfds, err);
    return rc ? rc : hy_client_flush(c, err);
}

int hy_client_send_raw(hy_client *c, const void *bytes, size_t n, hy_error *err)
{
    int rc = hy_client_flush(c, err); /* what is queued goes first, whole */
    if (rc)
        return rc;
    const uint8_t *p = bytes;
    uint64_t end = deadline(c->send_timeout_ms);
    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            end = deadline(c->send_timeout_ms);
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            int e = errno;
            return send_failed(hy_error_set(err, HY_ESYS, "send: %s", strerror(e)), e);
        }
        int64_t left = ms_left(end);
        if (left <= 0)
            return hy_error_set(err, HY_ESYS, "the daemon stopped reading");
        struct pollfd pf = {.fd = c->fd, .events = POLLOUT};
        if (poll(&pf, 1, (int)left) < 0 && errno != EINTR)
            return hy_error_set(err, HY_ESYS, "poll: %s", strerror(errno));
    }
    return 0;
}

/* ---- receiving ---- */

int hy_client_recv_buffered(hy_client *c, const hy_msg **m, hy_error *err)
{
    hy_frame f;
    drop_fds(c);
    int rc = hy_frame_reader_next(c->r, &f, err);
    if (rc == HY_IPC_INCOMPLETE)
        return HY_CLIENT_TIMEOUT;
    if (rc < 0) {
        c->broken = true;
        return rc;
    }
    memcpy(c->fds, f.fds, f.nfds * sizeof f.fds[0]);
    c->nfds = f.nfds;
    hy_error e = {0};
    rc = hy_msg_decode(&f, c->in, &e);
    if (rc) {
        const char *tn = hy_msg_type_name(f.h.type);
        return hy_error_set(err, rc, "cannot read the daemon's %s: %s", tn ? tn : "message",
                            e.msg);
    }
    *m = c->in;
    return 0;
}

/* SO_RCVTIMEO bounds the wait in recvmsg; ms < 0 lifts it. */
static int set_rcvtimeo(hy_client *c, int ms, hy_error *err)
{
    if (ms == c->rcvtimeo_ms)
        return 0;
    struct timeval tv = {0};
    if (ms > 0) {
        tv.tv_sec = ms / 1000;
        tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    }
    if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0)
        return hy_error_set(err, HY_ESYS, "setsockopt(SO_RCVTIMEO): %s", strerror(errno));
    c->rcvtimeo_ms = ms;
    return 0;
}

int hy_client_recv(hy_client *c, int timeout_ms, const hy_msg **m, hy_error *err)
{
    uint64_t end = deadline(timeout_ms);
    for (;;) {
        int rc = hy_client_recv_buffered(c, m, err);
        if (rc != HY_CLIENT_TIMEOUT)
            return rc;
        if (timeout_ms == 0) {
            rc = hy_frame_reader_fill(c->r, c->fd, err);
        } else {
            int64_t left = timeout_ms < 0 ? -1 : ms_left(end);
            if (left == 0)
                rc = HY_IPC_INCOMPLETE;
            else if ((rc = set_rcvtimeo(c, (int)left, err)) == 0)
                rc = hy_frame_reader_fill_wait(c->r, c->fd, err);
        }
        if (rc > 0 && rc != HY_IPC_INCOMPLETE)
            continue; /* bytes came: a frame may be complete */
        if (rc == HY_IPC_INCOMPLETE) {
            if (timeout_ms == 0 || (timeout_ms > 0 && ms_left(end) == 0)) {
                hy_error_set(err, HY_OK, "nothing from the daemon in %d ms", timeout_ms);
                return HY_CLIENT_TIMEOUT;
            }
            continue;
        }
        /* A reset connection is a daemon that went away: the end of its stream. */
        if (rc == 0 || (rc == HY_ESYS && errno == ECONNRESET)) {
            c->ended = true;
            hy_error_set(err, HY_OK, "the daemon closed the connection");
            return HY_CLIENT_EOF;
        }
        c->broken = true;
        return rc;
    }
}

int hy_client_parting_error(hy_client *c, const hy_msg **reply, hy_error *err)
{
    for (int turns = 0; turns < PARTING_FRAMES; turns++) {
        const hy_msg *m;
        hy_error e = {0};
        int rc = hy_client_recv(c, PARTING_WAIT_MS, &m, &e);
        if (rc == 0 && m->type == HY_MSG_ERROR) {
            if (reply)
                *reply = m;
            return daemon_error(m, err);
        }
        if (rc != 0 && (rc > 0 || !hy_client_usable(c)))
            break;
    }
    return HY_CLIENT_EOF; /* err keeps the failed send's sentence */
}

/* ---- requests ---- */

int hy_client_hello(hy_client *c, const hy_msg_hello *hello, int timeout_ms,
                    const hy_msg **reply, hy_error *err)
{
    const hy_msg *r = NULL;
    if (reply)
        *reply = NULL;
    hy_msg *m = c->out;
    memset(m, 0, sizeof *m);
    m->type = HY_MSG_HELLO;
    m->request = hy_client_next_request(c);
    m->u.hello = *hello;
    int rc = hy_client_send(c, m, NULL, 0, err);
    if (rc == HY_CLIENT_EOF)
        return hy_client_parting_error(c, reply, err);
    if (rc == 0)
        rc = hy_client_recv(c, timeout_ms, &r, err);
    if (rc)
        return rc;
    if (reply)
        *reply = r;
    if (r->type == HY_MSG_ERROR)
        return daemon_error(r, err);
    if (r->type != HY_MSG_WELCOME)
        return hy_error_set(err, HY_EPROTO, "the daemon did not answer HELLO with WELCOME");
    c->welcome = r->u.welcome;
    size_t n = c->welcome.server.len < HY_IPC_NAME_MAX ? c->welcome.server.len : HY_IPC_NAME_MAX;
    if (n)
        memcpy(c->server, c->welcome.server.p, n);
    c->server[n] = '\0';
    c->welcome.server.p = c->server;
    c->welcome.server.len = (uint32_t)n;
    c->welcomed = true;
    c->max_payload = c->welcome.max_payload;
    hy_frame_reader_set_max(c->r, c->max_payload);
    return 0;
}

int hy_client_ask(hy_client *c, hy_msg *m, uint16_t reply_type, int timeout_ms,
                  const hy_msg **reply, hy_error *err)
{
    const hy_msg *r = NULL;
    if (reply)
        *reply = NULL;
    m->request = hy_client_next_request(c);
    int rc = hy_client_send(c, m, NULL, 0, err);
    if (rc == HY_CLIENT_EOF)
        return hy_client_parting_error(c, reply, err);
    if (rc)
        return rc;
    uint64_t end = deadline(timeout_ms);
    for (;;) {
        int64_t left = timeout_ms < 0 ? -1 : ms_left(end);
        if (left == 0) {
            hy_error_set(err, HY_OK, "no reply in %d ms", timeout_ms);
            return HY_CLIENT_TIMEOUT;
        }
        rc = hy_client_recv(c, (int)left, &r, err);
        if (rc)
            return rc;
        if (r->request != m->request)
            continue;
        if (reply)
            *reply = r;
        if (r->type == HY_MSG_ERROR)
            return daemon_error(r, err);
        if (r->type == reply_type)
            return 0;
    }
}

int hy_client_cancel(hy_client *c, uint64_t job_id, uint64_t *request, hy_error *err)
{
    hy_msg *m = c->out;
    memset(m, 0, sizeof *m);
    m->type = HY_MSG_CANCEL;
    m->request = hy_client_next_request(c);
    m->u.cancel.job_id = job_id;
    if (request)
        *request = m->request;
    return hy_client_send(c, m, NULL, 0, err);
}

/* ---- jobs ---- */

/* Sends the CANCEL a caller asked for, once the job has an id to cancel. */
static int cancel_due(hy_client *c, bool want, hy_client_job *j,
                      const hy_client_job_events *ev, hy_error *err)
{
    if (!want || j->cancel_sent || !j->accepted)
        return 0;
    int rc = hy_client_cancel(c, j->job_id, NULL, err);
    if (rc)
        return rc;
    j->cancel_sent = true;
    if (ev->cancelling)
        ev->cancelling(ev->ctx, j);
    return 0;
}

int hy_client_submit(hy_client *c, hy_msg *m, const int *fds, unsigned nfds, hy_client_job *j,
                     hy_error *err)
{
    memset(j, 0, sizeof *j);
    if (m->type != HY_MSG_SUBMIT)
        return hy_error_set(err, HY_EINVAL, "a job is sent as a SUBMIT, not as %s",
                            hy_msg_type_name(m->type) ? hy_msg_type_name(m->type) : "this");
    m->request = hy_client_next_request(c);
    j->request = m->request;
    return hy_client_send(c, m, fds, nfds, err);
}

int hy_client_job_wait(hy_client *c, hy_client_job *j, const hy_client_job_events *ev,
                       int timeout_ms, const hy_msg **reply, hy_error *err)
{
    static const hy_client_job_events none;
    if (!ev)
        ev = &none;
    if (reply)
        *reply = NULL;
    uint64_t end = deadline(timeout_ms);
    int slice = ev->slice_ms > 0 ? ev->slice_ms : SLICE_MS;
    bool want = false;
    int rc = 0;
    while (rc == 0) {
        const hy_msg *r;
        rc = hy_client_recv_buffered(c, &r, err);
        if (rc == HY_CLIENT_TIMEOUT) {
            if (!want && ev->want_cancel && ev->want_cancel(ev->ctx))
                want = true;
            if ((rc = cancel_due(c, want, j, ev, err)) != 0)
                break;
            int64_t left = timeout_ms < 0 ? -1 : ms_left(end);
            if (left == 0) {
                hy_error_set(err, HY_OK, "no final answer in %d ms", timeout_ms);
                return HY_CLIENT_TIMEOUT;
            }
            if (ev->want_cancel && (left < 0 || left > slice))
                left = slice;
            rc = hy_client_recv(c, (int)left, &r, err);
            if (rc == HY_CLIENT_TIMEOUT) {
                rc = 0;
                continue;
            }
        }
        if (rc)
            break;
        if (r->request != j->request)
            continue; /* another request's answer, or a CANCEL's ERROR */
        switch (r->type) {
        case HY_MSG_ACCEPTED:
            j->accepted = true;
            j->job_id = r->u.accepted.job_id;
            j->queue_position = r->u.accepted.queue_position;
            j->nrows = r->u.accepted.nrows;
            j->threads = r->u.accepted.threads;
            j->repeat = r->u.accepted.repeat;
            j->warmup = r->u.accepted.warmup;
            if (ev->accepted)
                ev->accepted(ev->ctx, j);
            rc = cancel_due(c, want, j, ev, err);
            break;
        case HY_MSG_PROGRESS:
            if (ev->progress)
                ev->progress(ev->ctx, j, &r->u.progress);
            break;
        case HY_MSG_RESULT:
            if (reply)
                *reply = r;
            return 0;
        case HY_MSG_ERROR:
            if (reply)
                *reply = r;
            return daemon_error(r, err);
        default:
            break;
        }
    }
    /* A CANCEL that found the daemon gone: what it left may say why. */
    if (rc == HY_CLIENT_EOF && hy_client_usable(c))
        return hy_client_parting_error(c, reply, err);
    return rc;
}

int hy_client_run(hy_client *c, hy_msg *m, const int *fds, unsigned nfds,
                  const hy_client_job_events *ev, int timeout_ms, hy_client_job *j,
                  const hy_msg **reply, hy_error *err)
{
    if (reply)
        *reply = NULL;
    int rc = hy_client_submit(c, m, fds, nfds, j, err);
    if (rc == HY_CLIENT_EOF)
        return hy_client_parting_error(c, reply, err);
    if (rc)
        return rc;
    return hy_client_job_wait(c, j, ev, timeout_ms, reply, err);
}
