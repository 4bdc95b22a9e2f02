/* daemon/server: the epoll loop, client connections, the protocol's rules, job admission and
 * answers, progress, timeouts, SIGHUP reload and the SIGTERM drain. */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "backend.h"
#include "ipc.h"
#include "jobs.h"
#include "log.h"
#include "ranks.h"
#include "spec.h"
#include "world.h"

#ifndef HY_VERSION
#define HY_VERSION "0.0.0"
#endif

#define TICK_NS (100u * 1000u * 1000u) /* progress and timeout granularity */
#define FLUSH_GRACE_NS (2ull * 1000u * 1000u * 1000u) /* after the drain, for last answers */

enum watch_kind { W_LISTEN = 1, W_SIGNAL, W_EVENT, W_TIMER, W_MPI, W_CLIENT };
struct watch {
    int kind;
};

struct hy_client {
    int kind; /* W_CLIENT: first, so an epoll pointer tells what it is */
    uint64_t id;
    int fd;
    uid_t uid;
    gid_t gid;
    pid_t pid;
    hy_frame_reader *r;
    hy_frame_writer *w;
    bool hello;
    bool closing;   /* a final ERROR is queued: send it, then close */
    bool dead;      /* close at the end of this loop turn */
    bool want_out;  /* EPOLLOUT is armed */
    bool in_off;    /* EPOLLIN is disarmed (closing: nothing more is read) */
    bool dirty;     /* has queued output to flush this turn */
    uint32_t features, max_payload;
    char name[HY_IPC_NAME_MAX + 1];
    unsigned njobs;
    hy_job *jobs;   /* queued and running, linked by cprev/cnext */
    uint64_t *tags; /* fairness tag per executor */
    struct hy_client *prev, *next, *dirty_next;
};

struct server {
    hy_server_setup set;
    hy_config cfg;
    int epfd, sigfd, evfd, timerfd, reserve_fd;
    struct watch w_listen, w_signal, w_event, w_timer, w_mpi;
    hy_sched *sched;
    struct remote_part *remote; /* parts peers sent (hybridd --mpi), queued or running */
    struct pending_ranks *asks; /* RANKS ALL questions waiting for the peers' answers */
    uint64_t remote_tags[1];    /* the CPU executor's fairness tag for them, as one client */
    unsigned nexec;
    struct hy_client *clients, *dirty;
    unsigned nclients;
    uint64_t next_client_id, next_job_id;
    uint64_t start_ns;
    uint64_t jobs_alive; /* accepted and not yet answered */
    uint64_t jobs_done, jobs_failed, jobs_cancelled;
    hy_held_parts held; /* peers' parts this rank's spans ran (engines.held), counted too */
    bool timer_armed;
    uint64_t status_ns; /* when STATUS= last went to systemd */
    bool draining, drain_cancelled;
    uint64_t drain_deadline_ns, idle_since_ns;
    int exit_code;
    hy_msg *in, *out; /* ~56 KiB each: on the heap, reused */
    /* What the backends check jobs against and describe: the pools and the OpenCL devices
     * (env.owned: those with an executor). */
    hy_backend_env env;
};

/* ---- output ---- */

static void mark_dirty(struct server *s, struct hy_client *c)
{
    if (!c->dirty) {
        c->dirty = true;
        c->dirty_next = s->dirty;
        s->dirty = c;
    }
}

/* Queues m for c. A client whose output buffer is full has stopped reading: it is dropped
 * rather than let grow the daemon without bound. */
static void send_msg(struct server *s, struct hy_client *c, const hy_msg *m, const int *fds,
                     unsigned nfds)
{
    hy_error err = {0};
    if (c->dead)
        return;
    int rc = hy_msg_push(c->w, m, fds, nfds, c->max_payload, &err);
    if (rc) {
        hy_log(HY_LOG_WARNING, "client %" PRIu64 " (uid %u pid %d): dropped: %s", c->id,
               (unsigned)c->uid, (int)c->pid, err.msg);
        c->dead = true;
        return;
    }
    mark_dirty(s, c);
}

static void send_error(struct server *s, struct hy_client *c, uint64_t request, uint64_t job_id,
                       int code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void send_error(struct server *s, struct hy_client *c, uint64_t request, uint64_t job_id,
                       int code, const char *fmt, ...)
{
    char text[HY_IPC_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    hy_msg *m = s->out;
    memset(m, 0, sizeof *m);
    m->type = HY_MSG_ERROR;
    m->request = request;
    m->u.error.code = code;
    m->u.error.job_id = job_id;
    m->u.error.message.p = text;
    m->u.error.message.len = n < 0 ? 0 : (uint32_t)strnlen(text, sizeof text - 1);
    send_msg(s, c, m, NULL, 0);
}

/* A final error: queued, then the connection closes once it is sent. */
static void send_fatal(struct server *s, struct hy_client *c, uint64_t request, int code,
                       const char *text)
{
    send_error(s, c, request, 0, code, "%s", text);
    c->closing = true;
}

static void set_events(struct server *s, struct hy_client *c, bool want_out)
{
    uint32_t ev = (c->closing ? 0 : EPOLLIN) | (want_out ? EPOLLOUT : 0);
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &e) != 0) {
        hy_log(HY_LOG_ERR, "epoll_ctl for client %" PRIu64 ": %s", c->id, strerror(errno));
        c->dead = true;
    }
    c->want_out = want_out;
    c->in_off = c->closing;
}

static void flush_client(struct server *s, struct hy_client *c)
{
    hy_error err = {0};
    if (c->dead)
        return;
    int rc = hy_frame_writer_flush(c->w, c->fd, &err);
    if (rc < 0) {
        hy_log(HY_LOG_INFO, "client %" PRIu64 ": %s", c->id, err.msg);
        c->dead = true;
        return;
    }
    bool pending = rc == HY_IPC_INCOMPLETE;
    if (!pending && c->closing) {
        c->dead = true;
        return;
    }
    if (pending != c->want_out || (c->closing && !c->in_off))
        set_events(s, c, pending);
}

/* ---- jobs ---- */

static void detach_job(struct hy_client *c, hy_job *j)
{
    if (j->cprev)
        j->cprev->cnext = j->cnext;
    else
        c->jobs = j->cnext;
    if (j->cnext)
        j->cnext->cprev = j->cprev;
    j->cprev = j->cnext = NULL;
    j->client = NULL;
    HY_ASSERT(c->njobs > 0);
    c->njobs--;
}

static const char *cancel_sentence(const struct server *s, int reason, char *buf, size_t len)
{
    switch (reason) {
    case HY_CANCEL_CLIENT: return "cancelled by its client";
    case HY_CANCEL_TIMEOUT:
        snprintf(buf, len, "cancelled: it ran longer than the job timeout (limits.job_timeout_s"
                 " = %" PRIu64 " s)", s->cfg.job_timeout_s);
        return buf;
    case HY_CANCEL_SHUTDOWN: return "cancelled: the daemon is shutting down";
    case HY_CANCEL_DISCONNECT: return "cancelled: its client went away";
    default: return NULL;
    }
}

static const char *job_label(const hy_job *j)
{
    return j->spec.kind->label;
}

/* A pi or sort part a peer sent, run here as a job with no client; its answer goes back to
 * the peer through the MPI thread (daemon/ranks.c, docs/mpi.md). */
struct remote_part {
    uint64_t job_id;
    hy_mpi_part part;
    struct remote_part *next;
};

/* If j is a peer's part: its hits or sorted keys, or its failure, back to the peer. */
static void reply_part(struct server *s, hy_job *j)
{
    for (struct remote_part **l = &s->remote, *r; (r = *l); l = &r->next) {
        if (r->job_id != j->id)
            continue;
        const char *why = j->rc == HY_ECANCELED ? "its part was cancelled (the rank is "
                                                  "stopping, or the part ran past its timeout)"
                                                : j->err.msg;
        r->part.compute_ns = j->rc == 0 && j->nrows ? j->rows[0].median_ns : 0;
        hy_mpi_part_done(s->set.engines.mpi, &r->part, j->rc,
                         j->rc == 0 && j->nrows ? j->rows[0].hits : 0, why);
        if (r->part.data)
            j->array = NULL; /* a sort part's keys: the answer took them */
        *l = r->next;
        free(r);
        return;
    }
}

/* Sends a job's one final answer (if its client is still there), counts it, frees it. */
static void answer_job(struct server *s, hy_job *j)
{
    reply_part(s, j);
    struct hy_client *c = j->client;
    int cancel = atomic_load(&j->cancel);
    char buf[160];
    uint64_t now = hy_now_ns();
    double wait_ms = j->start_ns ? (double)(j->start_ns - j->queued_ns) / 1e6
                                 : (double)(now - j->queued_ns) / 1e6;
    double run_ms = j->start_ns ? (double)(j->end_ns - j->start_ns) / 1e6 : 0;
    if (j->rc == 0) {
        s->jobs_done++;
        hy_log(HY_LOG_INFO, "job %" PRIu64 " (%s, n %" PRIu64 ") done: %u row(s), waited %.1f ms,"
               " ran %.1f ms", j->id, job_label(j), j->spec.n, j->nrows, wait_ms, run_ms);
        if (c) {
            hy_msg *m = s->out;
            memset(m, 0, sizeof *m);
            m->type = HY_MSG_RESULT;
            m->request = j->request;
            m->u.result.job = (uint16_t)j->spec.kind->kind;
            m->u.result.job_id = j->id;
            m->u.result.nrows = (uint16_t)j->nrows;
            m->u.result.rows = j->rows;
            /* An inline single sort sends its array back; comparisons report times only. */
            if (!j->spec.kind->compare && j->spec.kind->array && j->array) {
                m->u.result.array = j->array;
                m->u.result.array_bytes = (uint32_t)j->spec.array_bytes;
            }
            /* Never beside an array: an older reader looks for it right after the rows. */
            if (!m->u.result.array_bytes) {
                m->u.result.nrank_rows = j->span.n;
                m->u.result.rank_rows = j->span.r;
            }
            send_msg(s, c, m, NULL, 0);
        }
    } else {
        const char *why = j->rc == HY_ECANCELED ? cancel_sentence(s, cancel, buf, sizeof buf)
                                                : NULL;
        if (j->rc == HY_ECANCELED)
            s->jobs_cancelled++;
        else
            s->jobs_failed++;
        hy_log(j->rc == HY_ECANCELED ? HY_LOG_INFO : HY_LOG_WARNING,
               "job %" PRIu64 " (%s) %s: %s, waited %.1f ms, ran %.1f ms", j->id, job_label(j),
               j->rc == HY_ECANCELED ? "cancelled" : "failed", why ? why : j->err.msg, wait_ms,
               run_ms);
        if (c)
            send_error(s, c, j->request, j->id, j->rc, "%s", why ? why : j->err.msg);
    }
    if (c)
        detach_job(c, j);
    HY_ASSERT(s->jobs_alive > 0); /* every job gets exactly one answer */
    s->jobs_alive--;
    hy_job_free(j);
}

static void drain_done(struct server *s)
{
    uint64_t v;
    if (read(s->evfd, &v, sizeof v) < 0 && errno != EAGAIN)
        hy_log(HY_LOG_ERR, "reading the completion eventfd: %s", strerror(errno));
    for (hy_job *j = hy_sched_take_done(s->sched), *next; j; j = next) {
        next = j->done_next;
        answer_job(s, j);
    }
    /* `systemctl status` shows this line; once a second is plenty. */
    uint64_t now = hy_now_ns();
    if (now - s->status_ns > 1000000000ull) {
        s->status_ns = now;
        sd_notifyf(0, "STATUS=serving: %u client(s), %" PRIu64 " job(s) in hand, %" PRIu64
                   " done, %" PRIu64 " failed, %" PRIu64 " cancelled", s->nclients,
                   s->jobs_alive, s->jobs_done, s->jobs_failed, s->jobs_cancelled);
    }
}

/* Cancels a job: a queued one is answered now with `reason`'s sentence; a running one is
 * asked to stop with `running_reason` (HY_CANCEL_NONE lets it run on). */
static void cancel_job(struct server *s, hy_job *j, int reason, int running_reason)
{
    if (!hy_sched_cancel(s->sched, j, running_reason))
        return; /* running: its answer comes from the executor */
    atomic_store(&j->cancel, reason);
    j->rc = hy_error_set(&j->err, HY_ECANCELED, "cancelled before it started");
    answer_job(s, j);
}

/* ---- admission ---- */

/* The largest inline array for a connection's payload limit: room for the SUBMIT's body and
 * a full thread list, and for the RESULT's body and row around the same array on the way
 * back. */
static uint32_t max_inline(uint32_t max_payload)
{
    const uint32_t submit = 72 + 4 * HY_IPC_THREADS_MAX,
                   result = HY_IPC_RESULT_BODY + HY_IPC_ROW_SIZE;
    return (max_payload - (submit > result ? submit : result)) & ~7u;
}


/* The checks that depend on this daemon: its limits, then each row against its backend (its
 * pools and devices). The codec has checked every field's own range, the spec what needs no
 * daemon state. */
static int check_submit(const struct server *s, const hy_job_spec *sp, hy_error *err)
{
    const hy_config *cfg = &s->cfg;
    const hy_kind *k = sp->kind;
    int rc;
    uint64_t limit = k->array ? cfg->max_sort_elements : cfg->max_samples;
    if (sp->n > limit)
        return hy_error_set(err, HY_ELIMIT, "n %" PRIu64 " %s is above this daemon's limit of "
                            "%" PRIu64 " (%s)", sp->n, k->unit, limit, k->limit_key);
    if (k->array) {
        uint64_t bytes = sp->n * hy_dtype_size(sp->dtype); /* n <= 2^40: limits.sort_elements */
        if (bytes > cfg->max_job_bytes)
            return hy_error_set(err, HY_ELIMIT, "the array's %" PRIu64 " bytes are above this "
                                "daemon's limit of %" PRIu64 " (limits.job_bytes)", bytes,
                                cfg->max_job_bytes);
    }
    if ((sp->backends & ~k->backends) != 0)
        return hy_error_set(err, HY_EBACKEND, "a %s job runs on none of the backends in mask "
                            "0x%x", k->label, (unsigned)(sp->backends & ~k->backends));
    hy_row_spec plan[HY_PLAN_MAX];
    unsigned nplan = hy_job_plan(sp, plan);
    for (unsigned i = 0; i < nplan; i++) {
        const hy_row_spec *r = &plan[i];
        const hy_backend_ops *b = hy_backend_get(r->backend);
        HY_ASSERT(b != NULL);
        if ((rc = b->check(&s->env, sp, r, err)))
            return rc;
        if (k->work == HY_JOB_PI && sp->mode == HY_MODE_REPLICATE && r->threads > 1 &&
            sp->n > UINT64_MAX / r->threads)
            return hy_error_set(err, HY_ELIMIT, "n %" PRIu64 " x %u copies does not fit in "
                                "64 bits", sp->n, r->threads);
    }
    return 0;
}

/* What this connection and the queue have room for: an inline array within WELCOME's
 * promise, a memfd only where HELLO asked for it, and the per-client and global job limits. */
static int check_room(const struct server *s, const struct hy_client *c,
                      const hy_job_spec *sp, hy_error *err)
{
    if (sp->array == HY_ARRAY_INLINE && sp->array_bytes > max_inline(c->max_payload))
        return hy_error_set(err, HY_ELIMIT, "an inline array of %zu bytes is above WELCOME's "
                            "max_inline_bytes (%u); send it in a memfd", sp->array_bytes,
                            max_inline(c->max_payload));
    if (sp->array == HY_ARRAY_MEMFD && !(c->features & HY_FEATURE_MEMFD))
        return hy_error_set(err, HY_EPROTO, "a memfd array needs feature MEMFD, which this "
                            "connection's HELLO did not ask for");
    if (sp->array == HY_ARRAY_FDS && !(c->features & HY_FEATURE_FILE_FDS))
        return hy_error_set(err, HY_EPROTO, "an fds array needs feature FILE_FDS, which this "
                            "connection's HELLO did not ask for");
    if (c->njobs >= s->cfg.max_jobs_per_client)
        return hy_error_set(err, HY_EBUSY, "this connection already has %u jobs queued or "
                            "running (limits.jobs_per_client); wait for one to finish",
                            c->njobs);
    if (s->jobs_alive >= s->cfg.max_queued_jobs)
        return hy_error_set(err, HY_EBUSY, "the daemon's queue is full (%" PRIu64 " jobs, "
                            "limits.queued_jobs); retry later", s->jobs_alive);
    return 0;
}

/* The job's array: a memfd, or a pair of files, is checked now (an answer at once) and mapped,
 * or read, by the executor when the job starts; an inline one is copied out of the frame,
 * which is reused. */
static int take_array(hy_job *j, const hy_frame *f, const hy_msg_submit *m, int *fds_taken,
                      hy_error *err)
{
    const hy_job_spec *sp = &j->spec;
    if (!sp->kind->array || sp->array == HY_ARRAY_FILES)
        return 0;
    if (sp->array == HY_ARRAY_MEMFD) {
        size_t size;
        int rc = hy_memfd_check(f->fds[0], sp->array_bytes, &size, err);
        if (rc)
            return rc;
        j->array_fd = f->fds[0];
        *fds_taken = 1;
        return 0;
    }
    if (sp->array == HY_ARRAY_FDS) {
        /* Taken even when refused: hy_job_free closes them with the job. */
        *fds_taken = 2;
        j->files.in = f->fds[0];
        j->files.out = f->fds[1];
        return hy_file_array_check(f->fds[0], f->fds[1], sp->array_bytes, &j->files, err);
    }
    HY_ASSERT(sp->array == HY_ARRAY_INLINE && m->inline_bytes == sp->array_bytes);
    if (sp->array_bytes == 0)
        return 0;
    j->array = malloc(sp->array_bytes);
    if (!j->array)
        return hy_error_set(err, HY_ENOMEM, "no memory for a %zu-byte array", sp->array_bytes);
    memcpy(j->array, m->inline_data, sp->array_bytes);
    return 0;
}

/* Array FILES: the daemon opens the paths the client names, so only a client of its own uid
 * (or root) may name them. hybridd --mpi serves no one else anyway (docs/mpi.md), and a
 * daemon not under MPI has refused FILES at admission (hy_ranks_resolve): the system
 * service opens no path a client names. The paths are copied into the job, NUL-terminated. */
static int take_paths(const struct hy_client *c, hy_job *j, const hy_msg_submit *m,
                      hy_error *err)
{
    if (j->spec.array != HY_ARRAY_FILES)
        return 0;
    if (c->uid != 0 && c->uid != geteuid())
        return hy_error_set(err, HY_EPERM, "uid %u may not name files to uid %u's daemon",
                            (unsigned)c->uid, (unsigned)geteuid());
    const hy_str *p[2] = {&m->input, &m->output};
    for (int i = 0; i < 2; i++)
        if (p[i]->p[0] != '/' || memchr(p[i]->p, '\0', p[i]->len))
            return hy_error_set(err, HY_EINVAL, "the %s path must be absolute and hold no NUL "
                                "byte (hybridctl resolves it)", i ? "output" : "input");
    if (!(j->paths = malloc((size_t)p[0]->len + p[1]->len + 2)))
        return hy_error_set(err, HY_ENOMEM, "no memory for the job's paths");
    memcpy(j->paths, p[0]->p, p[0]->len);
    j->paths[p[0]->len] = '\0';
    memcpy(j->paths + p[0]->len + 1, p[1]->p, p[1]->len);
    j->paths[p[0]->len + 1 + p[1]->len] = '\0';
    j->spec.input = j->paths;
    j->spec.output = j->paths + p[0]->len + 1;
    return 0;
}

static uint64_t predict_job(const struct server *s, const hy_job *j);

static void on_submit(struct server *s, struct hy_client *c, const hy_frame *f, hy_msg *msg,
                      int *fds_taken)
{
    const hy_msg_submit *m = &msg->u.submit;
    hy_error err = {0};
    int rc;
    uint64_t req = msg->request;
    hy_job_spec spec;
    if (s->draining) {
        send_error(s, c, req, 0, HY_EBUSY, "the daemon is shutting down; no new jobs");
        return;
    }
    if ((rc = hy_job_spec_make(m, s->cfg.switch_interval_us, &spec, &err)) ||
        (rc = hy_job_resolve(&s->env, m, &spec, &err)) ||
        (rc = hy_ranks_resolve(&s->env, &spec, &err)) || (rc = check_submit(s, &spec, &err)) ||
        (rc = check_room(s, c, &spec, &err))) {
        send_error(s, c, req, 0, rc, "%s", err.msg);
        return;
    }
    hy_job *j = hy_job_new();
    if (!j) {
        send_error(s, c, req, 0, HY_ENOMEM, "no memory for a new job");
        return;
    }
    j->request = req;
    j->spec = spec;
    const hy_job_spec *sp = &j->spec;
    if (!sp->kind->compare && hy_backend_get(sp->backend)->device) {
        int x = hy_sched_device_exec(s->sched, sp->device);
        HY_ASSERT(x > 0); /* admission took only a device with an executor */
        j->exec = (unsigned)x;
    }
    if ((rc = take_array(j, f, m, fds_taken, &err)) || (rc = take_paths(c, j, m, &err))) {
        send_error(s, c, req, 0, rc, "%s", err.msg);
        hy_job_free(j);
        return;
    }
    if (c->features & HY_FEATURE_KEEP_MAP)
        hy_job_allow_keep(j, c->id);
    j->id = ++s->next_job_id;
    j->queued_ns = hy_now_ns();
    j->predicted_ns = predict_job(s, j); /* once: JOBS replies read it for every job */
    unsigned ahead = 0;
    if ((rc = hy_sched_submit(s->sched, j, &c->tags[j->exec], &ahead, &err))) {
        send_error(s, c, req, 0, rc, "%s", err.msg);
        hy_job_free(j);
        return;
    }
    j->client = c;
    j->cnext = c->jobs;
    if (c->jobs)
        c->jobs->cprev = j;
    c->jobs = j;
    c->njobs++;
    s->jobs_alive++;
    hy_log(HY_LOG_DEBUG, "job %" PRIu64 " accepted from client %" PRIu64 ": %s n %" PRIu64
           ", %u ahead", j->id, c->id, job_label(j), sp->n, ahead);
    hy_msg *out = s->out;
    memset(out, 0, sizeof *out);
    out->type = HY_MSG_ACCEPTED;
    out->request = req;
    out->u.accepted.job_id = j->id;
    out->u.accepted.queue_position = ahead;
    /* What it will run, defaults resolved, so that no client has to rebuild the plan. */
    hy_row_spec plan[HY_PLAN_MAX];
    out->u.accepted.nrows = (uint16_t)hy_job_plan(sp, plan);
    out->u.accepted.threads =
        sp->kind->compare || hy_backend_get(sp->backend)->device ? 0 : plan[0].threads;
    out->u.accepted.repeat = sp->repeat;
    out->u.accepted.warmup = sp->warmup;
    send_msg(s, c, out, NULL, 0);
}

/* One part a peer sent: queued on the CPU executor as a job with no client, or answered at
 * once with why not. */
static void take_part(struct server *s, const hy_mpi_part *p)
{
    hy_error err = {0};
    int rc = 0;
    hy_job *j = NULL;
    struct remote_part *r = NULL;
    hy_job_spec spec;
    unsigned ahead = 0;
    if (s->draining)
        rc = hy_error_set(&err, HY_EBUSY, "rank %d is shutting down", hy_mpi_rank(s->set.engines.mpi));
    else if (!(rc = hy_ranks_part_spec(&s->env, p, s->cfg.switch_interval_us, &spec, &err)) &&
             (!(j = hy_job_new()) || !(r = calloc(1, sizeof *r))))
        rc = hy_error_set(&err, HY_ENOMEM, "no memory for a peer's part");
    if (!rc) {
        j->array = p->data; /* a sort part's keys, sorted in place */
        j->spec = spec;
        j->id = ++s->next_job_id;
        j->queued_ns = hy_now_ns();
        rc = hy_sched_submit(s->sched, j, &s->remote_tags[0], &ahead, &err);
    }
    if (rc) {
        hy_log(HY_LOG_WARNING, "rank %d's %s part refused: %s", p->origin,
               p->kind == HY_MPI_SORT ? "sort" : "pi", err.msg);
        if (j)
            j->array = NULL; /* the answer below frees a sort part's keys */
        hy_mpi_part_done(s->set.engines.mpi, p, rc, 0, err.msg);
        hy_job_free(j);
        free(r);
        return;
    }
    *r = (struct remote_part){.job_id = j->id, .part = *p, .next = s->remote};
    s->remote = r;
    s->jobs_alive++;
    hy_log(HY_LOG_DEBUG, "job %" PRIu64 ": rank %d's pi part [%" PRIu64 ", +%" PRIu64 ")",
           j->id, p->origin, p->first, p->count);
}

static void take_parts(struct server *s)
{
    hy_mpi_part p;
    while (hy_mpi_take_part(s->set.engines.mpi, &p))
        take_part(s, &p);
}

/* ---- replies ---- */

/* The job counters STATUS and a RANKS record report: the scheduler's and the loop's, and the
 * peers' parts this rank's spans ran themselves (s->held). */
static uint64_t jobs_running(struct server *s, const hy_sched_stats *st)
{
    return st->running + atomic_load(&s->held.running);
}

static uint64_t jobs_done(struct server *s) { return s->jobs_done + atomic_load(&s->held.done); }

static uint64_t jobs_failed(struct server *s)
{
    return s->jobs_failed + atomic_load(&s->held.failed);
}

static void on_status(struct server *s, struct hy_client *c, uint64_t req)
{
    hy_sched_stats st;
    hy_sched_get_stats(s->sched, &st);
    hy_msg *m = s->out;
    memset(m, 0, sizeof *m);
    m->type = HY_MSG_STATUS_REPLY;
    m->request = req;
    hy_msg_status_reply *r = &m->u.status;
    r->clients = s->nclients;
    r->uptime_ns = hy_now_ns() - s->start_ns;
    r->jobs_queued = st.queued;
    r->jobs_running = jobs_running(s, &st);
    r->jobs_done = jobs_done(s);
    r->jobs_failed = jobs_failed(s);
    r->jobs_cancelled = s->jobs_cancelled;
    r->devices = s->env.ndevices;
    r->devices_usable = s->env.nowned;
    for (unsigned b = 0; b < HY_BACKEND_COUNT; b++) {
        r->backend_jobs[b] = st.configs[b];
        r->backend_busy_ns[b] = st.busy_ns[b];
    }
    static const char version[] = "hybridd " HY_VERSION;
    r->version.p = version;
    r->version.len = (uint32_t)strlen(version);
    send_msg(s, c, m, NULL, 0);
}

/* The CPU pools and the OpenCL devices, as each backend describes its own. */
static void describe(const struct server *s, hy_msg_devices_reply *r)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    r->cpu_online = cpus > 0 ? (uint32_t)cpus : 1;
    r->switch_interval_us = s->cfg.switch_interval_us;
    unsigned nb;
    const hy_backend_ops *const *all = hy_backend_all(&nb);
    for (unsigned i = 0; i < nb; i++)
        if (all[i]->describe)
            all[i]->describe(&s->env, r);
}

static void on_devices(struct server *s, struct hy_client *c, uint64_t req)
{
    hy_msg *m = s->out;
    memset(m, 0, sizeof *m);
    m->type = HY_MSG_DEVICES_REPLY;
    m->request = req;
    describe(s, &m->u.devices);
    send_msg(s, c, m, NULL, 0);
}

/* ---- RANKS: every rank's node, pools, devices and counters (docs/mpi.md) ---- */

/* A RANKS ALL whose answer waits for the peers'; c is NULL once its client has gone. */
struct pending_ranks {
    uint64_t token, request;
    struct hy_client *c;
    struct pending_ranks *next;
};

/* This daemon as RANKS lists it; returns its device records (rec->ndevices of them). Uses
 * s->out as scratch: call it before building a reply there. */
static const hy_device_record *self_record(struct server *s, hy_rank_record *rec)
{
    hy_sched_stats st;
    hy_sched_get_stats(s->sched, &st);
    hy_msg_devices_reply *d = &s->out->u.devices;
    d->ndevices = d->native_threads = d->locked_threads = d->process_workers = 0;
    d->devices = NULL;
    describe(s, d);
    *rec = (hy_rank_record){
        .rank = s->set.engines.mpi ? (uint32_t)hy_mpi_rank(s->set.engines.mpi) : 0,
        .ndevices = d->ndevices, .cpu_online = d->cpu_online,
        .native_threads = d->native_threads, .locked_threads = d->locked_threads,
        .process_workers = d->process_workers, .devices_usable = s->env.nowned,
        .clients = s->nclients, .uptime_ns = hy_now_ns() - s->start_ns,
        .jobs_queued = st.queued, .jobs_running = jobs_running(s, &st),
        .jobs_done = jobs_done(s), .jobs_failed = jobs_failed(s),
        .jobs_cancelled = s->jobs_cancelled};
    if (gethostname(rec->host, sizeof rec->host - 1) != 0)
        snprintf(rec->host, sizeof rec->host, "(gethostname: %s)", strerror(errno));
    return d->devices;
}

static void send_ranks(struct server *s, struct hy_client *c, uint64_t req, unsigned nranks,
                       const hy_rank_record *ranks, unsigned ndevices,
                       const hy_device_record *devices)
{
    hy_mpi *mpi = s->set.engines.mpi;
    unsigned size = mpi ? (unsigned)hy_mpi_size(mpi) : 1;
    hy_msg *m = s->out;
    memset(m, 0, sizeof *m);
    m->type = HY_MSG_RANKS_REPLY;
    m->request = req;
    m->u.ranks_reply = (hy_msg_ranks_reply){
        .nranks = nranks, .rank = mpi ? (uint32_t)hy_mpi_rank(mpi) : 0, .size = size,
        .flags = (mpi ? HY_RANKS_MPI : 0) | (nranks == size ? HY_RANKS_REPLY_ALL : 0),
        .ndevices = ndevices, .ranks = ranks, .devices = devices};
    send_msg(s, c, m, NULL, 0);
}

/* RANKS: this daemon's record at once; with ALL under MPI, a question to every peer whose
 * answers come back through the MPI thread (take_answers): the loop does not wait. */
static void on_ranks(struct server *s, struct hy_client *c, const hy_msg *m)
{
    hy_mpi *mpi = s->set.engines.mpi;
    uint32_t flags = m->u.ranks.flags;
    uint64_t req = m->request;
    hy_error err = {0};
    if (flags & ~HY_RANKS_ALL) {
        send_error(s, c, req, 0, HY_EINVAL, "RANKS flags 0x%x: only ALL (0x1) is defined",
                   flags);
        return;
    }
    if (!(flags & HY_RANKS_ALL) || !mpi || hy_mpi_size(mpi) == 1) {
        hy_rank_record own;
        const hy_device_record *devs = self_record(s, &own);
        send_ranks(s, c, req, 1, &own, own.ndevices, devs);
        return;
    }
    if ((unsigned)hy_mpi_size(mpi) > HY_IPC_RANKS_MAX) {
        send_error(s, c, req, 0, HY_ELIMIT, "the MPI job has %d ranks; RANKS lists at most %u",
                   hy_mpi_size(mpi), HY_IPC_RANKS_MAX);
        return;
    }
    struct pending_ranks *p = calloc(1, sizeof *p);
    int rc = p ? hy_mpi_ask(mpi, &p->token, &err)
               : hy_error_set(&err, HY_ENOMEM, "no memory for a RANKS question");
    if (rc) {
        free(p);
        send_error(s, c, req, 0, rc, "%s", err.msg);
        return;
    }
    *p = (struct pending_ranks){.token = p->token, .request = req, .c = c, .next = s->asks};
    s->asks = p;
}

/* Every peer answered question a (or one failed): the reply, if its client is still here. */
static void answer_ranks(struct server *s, const struct pending_ranks *p,
                         const hy_mpi_answers *a)
{
    hy_error err = {0};
    if (a->rc) {
        send_error(s, p->c, p->request, 0, a->rc, "%s", a->err.msg);
        return;
    }
    hy_rank_record own;
    const hy_device_record *devs = self_record(s, &own);
    hy_world w;
    int rc = hy_world_gather(&w, a, hy_mpi_rank(s->set.engines.mpi), &own, devs, &err);
    if (rc) {
        send_error(s, p->c, p->request, 0, rc, "%s", err.msg);
        return;
    }
    send_ranks(s, p->c, p->request, w.nranks, w.ranks, w.ndevices, w.devices);
    hy_world_free(&w);
}

static void take_answers(struct server *s)
{
    hy_mpi_answers *a;
    while ((a = hy_mpi_take_answers(s->set.engines.mpi))) {
        for (struct pending_ranks **l = &s->asks, *p; (p = *l); l = &p->next)
            if (p->token == a->token) {
                *l = p->next;
                if (p->c)
                    answer_ranks(s, p, a);
                free(p);
                break;
            }
        hy_mpi_answers_free(a);
    }
}

/* Peers asking this rank to describe itself: answered at once, whatever runs. */
static void take_questions(struct server *s)
{
    hy_mpi *mpi = s->set.engines.mpi;
    hy_mpi_question q;
    while (hy_mpi_take_question(mpi, &q)) {
        hy_rank_record rec;
        const hy_device_record *devs = self_record(s, &rec);
        void *blob = NULL;
        size_t len = 0;
        hy_error err = {0};
        int rc = hy_world_pack(&rec, devs, &blob, &len, &err);
        hy_mpi_answer(mpi, &q, rc, blob, len, err.msg);
        free(blob);
    }
}

/* The MPI thread's eventfd: parts (which also resets it), questions, answers. */
static void on_mpi(struct server *s)
{
    take_parts(s);
    take_questions(s);
    take_answers(s);
}

/* Root and the daemon's own user see and cancel every job; everyone else, their own. */
static bool privileged(const struct hy_client *c)
{
    return c->uid == 0 || c->uid == geteuid();
}

struct running {
    uint64_t ids[HY_IPC_JOBS_MAX], start_ns[HY_IPC_JOBS_MAX];
    unsigned n;
};

static void note_running(hy_job *j, void *ctx)
{
    struct running *r = ctx;
    if (r->n < HY_IPC_JOBS_MAX) {
        r->ids[r->n] = j->id;
        r->start_ns[r->n++] = j->start_ns;
    }
}

/* The job's whole run time as the performance history predicts it (each row's prediction
 * times its warm-ups and timed runs), or 0 when a row has no trusted prediction. */
static uint64_t predict_job(const struct server *s, const hy_job *j)
{
    const hy_job_spec *sp = &j->spec;
    hy_row_spec plan[HY_PLAN_MAX];
    unsigned nrows = hy_job_plan(sp, plan);
    uint64_t total = 0;
    for (unsigned r = 0; r < nrows; r++) {
        /* The same prediction the row will carry (0: unknown, so the job's is too). */
        uint64_t one = hy_job_predict_row(s->set.engines.history, sp, &plan[r]);
        if (one == 0)
            return 0;
        total += one * (sp->warmup + sp->repeat);
    }
    return total;
}

/* A job as JOBS_REPLY lists it; start_ns 0 while it is queued. */
static void job_record(const struct server *s, const hy_job *j, uint64_t start_ns,
                       uint64_t now, hy_job_record *r)
{
    const hy_job_spec *sp = &j->spec;
    hy_row_spec plan[HY_PLAN_MAX];
    bool on_device = hy_sched_device_exec(s->sched, sp->device) == (int)j->exec;
    *r = (hy_job_record){
        .job_id = j->id, .uid = j->client ? (uint32_t)j->client->uid : 0,
        .job = (uint16_t)sp->kind->kind, .state = start_ns ? HY_JOB_RUNNING : HY_JOB_QUEUED,
        .backend = sp->kind->compare ? 0 : (uint16_t)sp->backend,
        .device = on_device ? (uint16_t)sp->device : HY_JOB_DEVICE_NONE,
        .dtype = sp->kind->array ? (uint16_t)sp->dtype : 0,
        .nrows = (uint16_t)hy_job_plan(sp, plan), .n = sp->n,
        .queued_ns = now > j->queued_ns ? now - j->queued_ns : 0,
        .running_ns = start_ns && now > start_ns ? now - start_ns : 0};
    r->threads = sp->kind->compare || on_device ? 0 : plan[0].threads;
    r->predicted_ns = j->predicted_ns;
    if (start_ns) {
        r->row = atomic_load(&j->row);
        r->done = atomic_load(&j->done);
        r->total = atomic_load(&j->total);
    }
}

/* Above this many jobs alive a JOBS reply estimates no waits: each costs a walk over them all,
 * and the event loop must stay quick for everyone. */
#define WAIT_ESTIMATE_MAX_JOBS 4096

/* How long queued job `id` will wait: what is left of the job running on its executor, and
 * the predicted run of every job queued there before it (every user's: the wait is the
 * submitter's to know, even where the jobs ahead are not). Queues are fair between clients,
 * so "before it" (accepted earlier) is an estimate. 0 when any of them cannot be predicted. */
static uint64_t predict_wait(const struct server *s, uint64_t id, const struct running *run,
                             uint64_t now)
{
    if (s->jobs_alive > WAIT_ESTIMATE_MAX_JOBS)
        return 0;
    const hy_job *me = NULL;
    for (const struct hy_client *o = s->clients; o && !me; o = o->next)
        for (const hy_job *j = o->jobs; j && !me; j = j->cnext)
            if (j->id == id)
                me = j;
    if (!me)
        return 0;
    uint64_t wait = 0;
    for (const struct hy_client *o = s->clients; o; o = o->next)
        for (const hy_job *j = o->jobs; j; j = j->cnext) {
            if (j == me || j->exec != me->exec)
                continue;
            uint64_t start = 0;
            for (unsigned k = 0; k < run->n && !start; k++)
                if (run->ids[k] == j->id)
                    start = run->start_ns[k] ? run->start_ns[k] : now;
            if (!start && j->id > id)
                continue; /* queued after it */
            uint64_t pred = j->predicted_ns;
            if (pred == 0)
                return 0;
            uint64_t ran = start && now > start ? now - start : 0;
            wait += start ? (pred > ran ? pred - ran : 0) : pred;
        }
    return wait ? wait : 1; /* something is ahead of a queued job: never 0 when known */
}

/* JOBS: the caller's queued and running jobs (every user's for a privileged caller who asks
 * for all), running ones first, and how many others there are. */
static void on_jobs(struct server *s, struct hy_client *c, const hy_msg *m)
{
    static struct running run; /* the event loop is one thread: reused, off the stack */
    static hy_job_record recs[HY_IPC_JOBS_MAX];
    run.n = 0;
    hy_sched_foreach_running(s->sched, note_running, &run);
    bool all = (m->u.jobs.flags & HY_JOBS_ALL) && privileged(c);
    uint64_t now = hy_now_ns();
    uint32_t nrec = 0, others_queued = 0, others_running = 0;
    for (int pass = 0; pass < 2; pass++) /* running, then queued */
        for (struct hy_client *o = s->clients; o; o = o->next)
            for (hy_job *j = o->jobs; j; j = j->cnext) {
                uint64_t start = 0;
                for (unsigned k = 0; k < run.n && !start; k++)
                    if (run.ids[k] == j->id)
                        start = run.start_ns[k] ? run.start_ns[k] : 1;
                if ((pass == 0) != (start != 0))
                    continue;
                if ((all || o->uid == c->uid) && nrec < HY_IPC_JOBS_MAX)
                    job_record(s, j, start, now, &recs[nrec++]);
                else if (start)
                    others_running++;
                else
                    others_queued++;
            }
    for (uint32_t i = 0; i < nrec; i++)
        if (recs[i].state == HY_JOB_QUEUED)
            recs[i].wait_ns = predict_wait(s, recs[i].job_id, &run, now);
    hy_msg *out = s->out;
    memset(out, 0, sizeof *out);
    out->type = HY_MSG_JOBS_REPLY;
    out->request = m->request;
    out->u.jobs_reply = (hy_msg_jobs_reply){.njobs = nrec, .flags = all ? HY_JOBS_ALL : 0,
                                            .others_queued = others_queued,
                                            .others_running = others_running, .jobs = recs};
    send_msg(s, c, out, NULL, 0);
}

struct cells {
    hy_cell_record *rec;
    uint32_t n, cap, total;
};

static void note_cell(void *ctx, const hy_history_key *k, unsigned log2n,
                      const hy_history_cell *cell)
{
    struct cells *cs = ctx;
    cs->total++;
    if (cs->n < cs->cap)
        cs->rec[cs->n++] = (hy_cell_record){
            .work = (uint16_t)k->work, .dtype = (uint16_t)k->dtype,
            .backend = (uint16_t)k->backend, .transport = (uint16_t)k->transport,
            .device = k->device, .threads = k->threads, .log2n = log2n,
            .samples = cell->samples, .median_ns = cell->median_ns,
            .flags = cell->trusted ? HY_CELL_TRUSTED : 0};
}

/* MODEL: the performance history's cells, as many as the client's frames hold. What a
 * configuration costs on this machine is no one's secret: every user may ask. */
static void on_model(struct server *s, struct hy_client *c, uint64_t req)
{
    static hy_cell_record recs[HY_IPC_CELLS_MAX]; /* the event loop is one thread */
    uint32_t fit = (c->max_payload - 64) / HY_IPC_CELL_SIZE;
    struct cells cs = {recs, 0, fit < HY_IPC_CELLS_MAX ? fit : HY_IPC_CELLS_MAX, 0};
    if (s->set.engines.history)
        hy_history_foreach(s->set.engines.history, note_cell, &cs);
    hy_msg *out = s->out;
    memset(out, 0, sizeof *out);
    out->type = HY_MSG_MODEL_REPLY;
    out->request = req;
    out->u.model = (hy_msg_model_reply){.ncells = cs.n, .total = cs.total,
                                        .trust = HY_HISTORY_TRUST, .ring = HY_HISTORY_RING,
                                        .cells = recs};
    send_msg(s, c, out, NULL, 0);
}

static void on_hello(struct server *s, struct hy_client *c, const hy_msg *m)
{
    const hy_msg_hello *h = &m->u.hello;
    if (h->min_version > HY_IPC_VERSION || h->max_version < HY_IPC_VERSION) {
        char t[160];
        snprintf(t, sizeof t, "this daemon speaks protocol version %u only; the client speaks "
                 "%u..%u", HY_IPC_VERSION, h->min_version, h->max_version);
        send_fatal(s, c, m->request, HY_EVERSION, t);
        return;
    }
    c->hello = true;
    c->features = h->features & (HY_FEATURE_MEMFD | HY_FEATURE_PROGRESS | HY_FEATURE_KEEP_MAP |
                                 HY_FEATURE_FILE_FDS);
    snprintf(c->name, sizeof c->name, "%.*s", (int)h->name.len, h->name.p);
    for (char *p = c->name; *p; p++) /* a name is for the log: keep it one printable line */
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    uint32_t max_payload = (uint32_t)s->cfg.max_frame_bytes;
    hy_msg *w = s->out;
    memset(w, 0, sizeof *w);
    w->type = HY_MSG_WELCOME;
    w->request = m->request;
    w->u.welcome.version = HY_IPC_VERSION;
    w->u.welcome.features = c->features;
    w->u.welcome.max_payload = max_payload;
    w->u.welcome.max_inline_bytes = max_inline(max_payload);
    w->u.welcome.max_jobs_per_client = (uint32_t)s->cfg.max_jobs_per_client;
    w->u.welcome.max_samples = s->cfg.max_samples;
    w->u.welcome.max_sort_elements = s->cfg.max_sort_elements;
    static const char server[] = "hybridd " HY_VERSION;
    w->u.welcome.server.p = server;
    w->u.welcome.server.len = (uint32_t)strlen(server);
    send_msg(s, c, w, NULL, 0);
    c->max_payload = max_payload;
    hy_frame_reader_set_max(c->r, max_payload);
    hy_log(HY_LOG_INFO, "client %" PRIu64 " connected: uid %u gid %u pid %d, \"%s\"", c->id,
           (unsigned)c->uid, (unsigned)c->gid, (int)c->pid, c->name);
}

/* A job may be cancelled from any connection of the user who submitted it (so `hybridctl
 * cancel JOB` works from another terminal), or by root and the daemon's own user (logged);
 * anyone else is told it does not exist, which leaks nothing about other users' jobs. */
static void on_cancel(struct server *s, struct hy_client *c, const hy_msg *m)
{
    uint64_t id = m->u.cancel.job_id;
    for (struct hy_client *o = s->clients; o; o = o->next) {
        if (o != c && o->uid != c->uid && !privileged(c))
            continue;
        for (hy_job *j = o->jobs; j; j = j->cnext)
            if (j->id == id) {
                if (o != c)
                    hy_log(HY_LOG_INFO, "job %" PRIu64 " cancelled from client %" PRIu64
                           " (uid %u)", id, c->id, (unsigned)c->uid);
                cancel_job(s, j, HY_CANCEL_CLIENT, HY_CANCEL_CLIENT);
                return;
            }
    }
    send_error(s, c, m->request, id, HY_EINVAL,
               "no job %" PRIu64 " of yours is queued or running", id);
}

static void on_frame(struct server *s, struct hy_client *c, hy_frame *f)
{
    hy_msg *m = s->in;
    hy_error err = {0};
    int fds_taken = 0;
    int rc = hy_msg_decode(f, m, &err);
    const char *tname = hy_msg_type_name(f->h.type);
    if (!c->hello) {
        if (f->h.type != HY_MSG_HELLO) {
            char t[128];
            snprintf(t, sizeof t, "the first message must be HELLO, not %s",
                     tname ? tname : "an unknown type");
            send_fatal(s, c, f->h.request, HY_EPROTO, t);
        } else if (rc) {
            send_fatal(s, c, f->h.request, rc, err.msg);
        } else {
            on_hello(s, c, m);
        }
        goto out;
    }
    if (rc) {
        send_error(s, c, f->h.request, 0, rc, "%s", err.msg);
        goto out;
    }
    switch (m->type) {
    case HY_MSG_HELLO:
        send_error(s, c, m->request, 0, HY_EPROTO, "HELLO was already sent on this connection");
        break;
    case HY_MSG_PING: {
        uint64_t nonce = m->u.ping.nonce;
        hy_msg *o = s->out;
        memset(o, 0, sizeof *o);
        o->type = HY_MSG_PONG;
        o->request = m->request;
        o->u.ping.nonce = nonce;
        send_msg(s, c, o, NULL, 0);
        break;
    }
    case HY_MSG_SUBMIT: on_submit(s, c, f, m, &fds_taken); break;
    case HY_MSG_CANCEL: on_cancel(s, c, m); break;
    case HY_MSG_STATUS: on_status(s, c, m->request); break;
    case HY_MSG_DEVICES: on_devices(s, c, m->request); break;
    case HY_MSG_JOBS: on_jobs(s, c, m); break;
    case HY_MSG_MODEL: on_model(s, c, m->request); break;
    case HY_MSG_RANKS: on_ranks(s, c, m); break;
    default:
        send_error(s, c, m->request, 0, HY_EPROTO, "%s is sent by the daemon, not to it",
                   tname ? tname : "this message");
        break;
    }
out:
    for (unsigned i = (unsigned)fds_taken; i < f->nfds; i++)
        close(f->fds[i]);
}

/* ---- connections ---- */

/* The second gate; the first is the kernel's, on the socket file's owner, group and mode.
 * Empty lists add nothing to it: whoever can open the socket may submit (so adding a user to
 * the socket's group is enough). A list that names anything narrows it to the uids listed,
 * the members of the gids listed (supplementary groups count), root, and the daemon's own
 * uid (which owns the socket and could reach every job anyway). */
static bool peer_allowed(const struct server *s, uid_t uid, const gid_t *gids, unsigned ngids)
{
    const hy_config *cfg = &s->cfg;
    if (cfg->n_uids == 0 && cfg->n_gids == 0)
        return true;
    if (uid == 0 || uid == geteuid())
        return true;
    for (unsigned i = 0; i < cfg->n_uids; i++)
        if (cfg->uids[i] == uid)
            return true;
    for (unsigned i = 0; i < cfg->n_gids; i++)
        for (unsigned k = 0; k < ngids; k++)
            if (cfg->gids[i] == gids[k])
                return true;
    return false;
}

/* peer_allowed for a connection: membership in a listed group counts through the peer's
 * supplementary groups too (SO_PEERGROUPS, asked again with room for all of them when a
 * user is in more groups than the first try holds). *ngids: the groups seen, for the log. */
static bool peer_check(const struct server *s, int fd, const struct ucred *cr, unsigned *ngids)
{
    gid_t small[65], *gids = small;
    socklen_t glen = sizeof small - sizeof small[0];
    gids[0] = cr->gid;
    *ngids = 1;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, gids + 1, &glen) == 0) {
        *ngids += glen / sizeof gids[0];
    } else if (errno == ERANGE && glen > 0) {
        gid_t *big = malloc(glen + sizeof *big);
        if (big) {
            big[0] = cr->gid;
            if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, big + 1, &glen) == 0) {
                gids = big;
                *ngids += glen / sizeof gids[0];
            }
        }
        if (gids != big)
            free(big);
    }
    bool ok = peer_allowed(s, cr->uid, gids, *ngids);
    if (gids != small)
        free(gids);
    return ok;
}

static void close_client(struct server *s, struct hy_client *c)
{
    unsigned cancelled = 0, stopping = 0;
    if (c->features & HY_FEATURE_KEEP_MAP)
        hy_sched_forget(s->sched, c->id); /* before its running jobs end, so none is kept */
    while (c->jobs) {
        hy_job *j = c->jobs;
        detach_job(c, j);
        if (hy_sched_cancel(s->sched, j, HY_CANCEL_DISCONNECT)) {
            cancelled++;
            s->jobs_cancelled++;
            s->jobs_alive--;
            hy_job_free(j);
        } else {
            stopping++; /* running: its own line says how it ended */
        }
    }
    if (c->hello || cancelled || stopping)
        hy_log(HY_LOG_INFO, "client %" PRIu64 " disconnected; %u queued job(s) cancelled, %u "
               "running job(s) told to stop", c->id, cancelled, stopping);
    for (struct pending_ranks *p = s->asks; p; p = p->next)
        if (p->c == c)
            p->c = NULL; /* its answer, when it comes, is dropped */
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    hy_frame_reader_free(c->r);
    hy_frame_writer_free(c->w);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nclients--;
    free(c->tags);
    free(c);
}

static void add_client(struct server *s, int fd)
{
    hy_error err = {0};
    struct hy_client *c = calloc(1, sizeof *c);
    if (!c || !(c->tags = calloc(s->nexec, sizeof *c->tags))) {
        hy_log(HY_LOG_ERR, "no memory for a new client");
        goto err;
    }
    c->kind = W_CLIENT;
    c->fd = fd;
    c->id = ++s->next_client_id;
    c->max_payload = HY_IPC_MAX_PAYLOAD;
    struct ucred cr;
    socklen_t len = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) {
        hy_log(HY_LOG_ERR, "SO_PEERCRED: %s", strerror(errno));
        goto err;
    }
    c->uid = cr.uid;
    c->gid = cr.gid;
    c->pid = cr.pid;
    unsigned ngids = 0;
    bool allowed = peer_check(s, fd, &cr, &ngids);
    size_t wbuf = 4 * (size_t)s->cfg.max_frame_bytes + 65536;
    if (hy_frame_reader_new(HY_IPC_MAX_PAYLOAD, &c->r, &err) ||
        hy_frame_writer_new(wbuf, &c->w, &err)) {
        hy_log(HY_LOG_ERR, "new client: %s", err.msg);
        goto err;
    }
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &e) != 0) {
        hy_log(HY_LOG_ERR, "epoll_ctl: %s", strerror(errno));
        goto err;
    }
    c->next = s->clients;
    if (s->clients)
        s->clients->prev = c;
    s->clients = c;
    s->nclients++;
    if (!allowed) {
        char t[256];
        hy_log(HY_LOG_NOTICE, "refused a connection from uid %u gid %u pid %d: neither it "
               "nor any of its %u group(s) is in access.uids or access.gids", (unsigned)cr.uid,
               (unsigned)cr.gid, (int)cr.pid, ngids);
        snprintf(t, sizeof t, "uid %u (gid %u) is not allowed to use this daemon: its "
                 "access lists name neither this uid nor any of its groups; ask its "
                 "administrator to add one to access.uids or access.gids", (unsigned)cr.uid,
                 (unsigned)cr.gid);
        send_fatal(s, c, 0, HY_EPERM, t);
        set_events(s, c, true);
    } else if (s->nclients > s->cfg.max_clients) {
        hy_log(HY_LOG_WARNING, "refused a connection from uid %u pid %d: %" PRIu64
               " clients already (limits.clients)", (unsigned)cr.uid, (int)cr.pid,
               s->cfg.max_clients);
        send_fatal(s, c, 0, HY_EBUSY, "the daemon is serving as many clients as it may "
                   "(limits.clients); retry later");
        set_events(s, c, true);
    }
    return;
err:
    if (c) {
        hy_frame_reader_free(c->r);
        hy_frame_writer_free(c->w);
        free(c->tags);
    }
    free(c);
    close(fd);
}

static void on_listen(struct server *s)
{
    /* A bounded batch per turn, so a flood of connects cannot starve the clients. */
    for (int i = 0; i < 64; i++) {
        int fd = accept4(s->set.listener->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            add_client(s, fd);
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
            errno == ECONNABORTED)
            return;
        if ((errno == EMFILE || errno == ENFILE) && s->reserve_fd >= 0) {
            /* Out of fds: free the reserve to accept and close the connection at once, so
             * the listening socket does not stay readable and spin the loop. */
            hy_log(HY_LOG_WARNING, "out of file descriptors: refusing a connection");
            close(s->reserve_fd);
            int x = accept4(s->set.listener->fd, NULL, NULL, SOCK_CLOEXEC);
            if (x >= 0)
                close(x);
            s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
            return;
        }
        hy_log(HY_LOG_ERR, "accept: %s", strerror(errno));
        return;
    }
}

static void on_client_io(struct server *s, struct hy_client *c, uint32_t events)
{
    hy_error err = {0};
    if (events & EPOLLOUT)
        mark_dirty(s, c);
    if (c->closing && (events & (EPOLLHUP | EPOLLERR))) {
        c->dead = true; /* the peer is gone: its final ERROR cannot reach it */
        return;
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)) || c->closing)
        return;
    int rc = hy_frame_reader_fill(c->r, c->fd, &err);
    if (rc == 0) {
        c->dead = true; /* the client closed its end */
        return;
    }
    if (rc < 0) {
        hy_log(HY_LOG_INFO, "client %" PRIu64 ": %s", c->id, err.msg);
        if (rc == HY_EPROTO)
            send_fatal(s, c, 0, rc, err.msg);
        else
            c->dead = true;
        return;
    }
    while (!c->closing && !c->dead) {
        hy_frame f;
        rc = hy_frame_reader_next(c->r, &f, &err);
        if (rc == HY_IPC_INCOMPLETE)
            break;
        if (rc < 0) {
            hy_log(HY_LOG_INFO, "client %" PRIu64 ": broken stream: %s", c->id, err.msg);
            send_fatal(s, c, 0, rc, err.msg);
            break;
        }
        on_frame(s, c, &f);
    }
}

/* ---- the timer: progress, timeouts, the drain's deadline ---- */

struct tick_ctx {
    struct server *s;
    uint64_t now;
    bool cancel_all;
};

static void tick_job(hy_job *j, void *ctx)
{
    struct tick_ctx *t = ctx;
    struct server *s = t->s;
    if (t->cancel_all) {
        int none = HY_CANCEL_NONE;
        atomic_compare_exchange_strong(&j->cancel, &none, HY_CANCEL_SHUTDOWN);
    }
    /* t->now was read before the scheduler's lock was taken, so a job an executor started
     * in between has start_ns > now: it has run 0 ns, not 2^64 (which read as a timeout). */
    uint64_t ran = j->start_ns && t->now > j->start_ns ? t->now - j->start_ns : 0;
    if (s->cfg.job_timeout_s && ran > s->cfg.job_timeout_s * 1000000000ull) {
        int none = HY_CANCEL_NONE;
        atomic_compare_exchange_strong(&j->cancel, &none, HY_CANCEL_TIMEOUT);
    }
    struct hy_client *c = j->client;
    if (!c || c->dead || !(c->features & HY_FEATURE_PROGRESS) || ran < TICK_NS)
        return;
    uint64_t done = atomic_load_explicit(&j->done, memory_order_relaxed);
    uint64_t total = atomic_load_explicit(&j->total, memory_order_relaxed);
    uint32_t row = atomic_load_explicit(&j->row, memory_order_relaxed);
    if (total == 0 || (done == j->progress_done && row == j->progress_row))
        return;
    j->progress_done = done;
    j->progress_row = row;
    hy_msg *m = s->out;
    memset(m, 0, sizeof *m);
    m->type = HY_MSG_PROGRESS;
    m->request = j->request;
    m->u.progress.job_id = j->id;
    m->u.progress.row = row;
    m->u.progress.done = done;
    m->u.progress.total = total;
    send_msg(s, c, m, NULL, 0);
}

static void on_timer(struct server *s)
{
    uint64_t v;
    if (read(s->timerfd, &v, sizeof v) < 0 && errno != EAGAIN)
        hy_log(HY_LOG_ERR, "reading the timer: %s", strerror(errno));
    struct tick_ctx t = {.s = s, .now = hy_now_ns()};
    if (s->draining && !s->drain_cancelled && t.now >= s->drain_deadline_ns) {
        hy_log(HY_LOG_NOTICE, "drain timeout (%" PRIu64 " s) reached: cancelling running jobs",
               s->cfg.drain_timeout_s);
        s->drain_cancelled = true;
        t.cancel_all = true;
    }
    hy_sched_foreach_running(s->sched, tick_job, &t);
}

static void arm_timer(struct server *s, bool on)
{
    if (on == s->timer_armed)
        return;
    struct itimerspec it = {0};
    if (on) {
        it.it_interval.tv_nsec = TICK_NS;
        it.it_value.tv_nsec = TICK_NS;
    }
    if (timerfd_settime(s->timerfd, 0, &it, NULL) != 0)
        hy_log(HY_LOG_ERR, "timerfd_settime: %s", strerror(errno));
    else
        s->timer_armed = on;
}

/* ---- signals: reload and drain ---- */

/* One log line per changed key, old and new value, saying when it takes effect. */
static void log_change(void *ctx, const char *key, const char *old_value, const char *new_value,
                       hy_config_reload reload)
{
    unsigned *applied = ctx;
    switch (reload) {
    case HY_RELOAD_RESTART:
        hy_log(HY_LOG_WARNING, "reload: %s %s -> %s takes effect on restart; %s until then",
               key, old_value, new_value, old_value);
        return;
    case HY_RELOAD_NEW_CONNECTIONS:
        hy_log(HY_LOG_NOTICE, "reload: %s %s -> %s (for new connections)", key, old_value,
               new_value);
        break;
    case HY_RELOAD_APPLY:
        hy_log(HY_LOG_NOTICE, "reload: %s %s -> %s", key, old_value, new_value);
        break;
    }
    (*applied)++;
}

static void reload(struct server *s)
{
    hy_config loaded, *nc = &loaded;
    hy_error err = {0};
    const hy_config *old = &s->cfg;
    sd_notify(0, "RELOADING=1");
    hy_config_defaults(nc);
    if (s->set.config_path && hy_config_load(nc, s->set.config_path, &err) != 0) {
        hy_log(HY_LOG_ERR, "reload failed, keeping the running configuration: %s", err.msg);
        sd_notify(0, "READY=1\nSTATUS=reload failed; running configuration kept");
        return;
    }
    if (s->set.socket_override)
        snprintf(nc->socket_path, sizeof nc->socket_path, "%s", s->set.socket_override);
    if (old->socket_mode != nc->socket_mode || strcmp(old->socket_group, nc->socket_group)) {
        if (hy_listener_set_access(s->set.listener, nc->socket_mode, nc->socket_group, &err)) {
            hy_log(HY_LOG_ERR, "reload: socket.mode \"%04o\" and socket.group \"%s\" not "
                   "applied, \"%04o\" and \"%s\" kept: %s", nc->socket_mode, nc->socket_group,
                   old->socket_mode, old->socket_group, err.msg);
            nc->socket_mode = old->socket_mode;
            snprintf(nc->socket_group, sizeof nc->socket_group, "%s", old->socket_group);
        }
    }
    /* Every change is named with both values; what needs a restart is named, not silently
     * ignored, and kept as it runs, so STATUS and later reloads stay truthful. */
    unsigned applied = 0;
    hy_config_diff(old, nc, log_change, &applied);
    hy_config_keep_restart_keys(nc, old);
    s->cfg = *nc;
    if (s->set.engines.mpi) {
        hy_mpi_set_peer_timeout(s->set.engines.mpi, s->cfg.peer_timeout_s * 1000);
        hy_mpi_buf_keep((size_t)s->cfg.span_keep_bytes);
    }
    hy_log(HY_LOG_NOTICE, "reloaded %s: %u setting(s) applied",
           s->set.config_path ? s->set.config_path : "the built-in defaults", applied);
    sd_notify(0, "READY=1\nSTATUS=serving (configuration reloaded)");
}

static void start_drain(struct server *s, int sig)
{
    if (s->draining)
        return;
    s->draining = true;
    hy_log(HY_LOG_NOTICE, "%s: stopping: no new connections or jobs; %" PRIu64 " job(s) to "
           "finish within %" PRIu64 " s", strsignal(sig), s->jobs_alive, s->cfg.drain_timeout_s);
    sd_notify(0, "STOPPING=1\nSTATUS=draining");
    if (s->set.listener->fd >= 0)
        epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->set.listener->fd, NULL);
    hy_listener_close(s->set.listener);
    /* Queued jobs will not start: each gets its final answer now. Running ones go on. */
    for (struct hy_client *c = s->clients; c; c = c->next)
        for (hy_job *j = c->jobs, *next; j; j = next) {
            next = j->cnext;
            cancel_job(s, j, HY_CANCEL_SHUTDOWN, HY_CANCEL_NONE);
        }
    s->drain_deadline_ns = hy_now_ns() + s->cfg.drain_timeout_s * 1000000000ull;
    if (s->cfg.drain_timeout_s == 0) {
        struct tick_ctx t = {.s = s, .now = hy_now_ns(), .cancel_all = true};
        s->drain_cancelled = true;
        hy_sched_foreach_running(s->sched, tick_job, &t);
    }
}

static void on_signal(struct server *s)
{
    struct signalfd_siginfo si;
    while (read(s->sigfd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGHUP)
            reload(s);
        else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
            start_drain(s, (int)si.ssi_signo);
    }
}

/* ---- setup and the loop ---- */

/* Under MPI, the device a peer's part runs on (the first served) and a lock per device
 * (hy_engines.dev_lock): a span's gatherer may run such a part beside the device's
 * executor. */
static int span_devices(struct server *s, hy_error *err)
{
    hy_engines *e = &s->env.e;
    e->span_device = -1;
    if (!e->mpi || !e->cl || s->env.ndevices == 0)
        return 0;
    e->span_device = s->env.nowned ? (int)s->env.owned[0] : -1;
    if (!(e->dev_lock = calloc(s->env.ndevices, sizeof *e->dev_lock)))
        return hy_error_set(err, HY_ENOMEM, "no memory for the devices' locks");
    for (unsigned d = 0; d < s->env.ndevices; d++)
        pthread_mutex_init(&e->dev_lock[d], NULL);
    return 0;
}

static int setup(struct server *s, hy_error *err)
{
    s->epfd = s->sigfd = s->evfd = s->timerfd = s->reserve_fd = -1;
    s->start_ns = hy_now_ns();
    s->in = malloc(sizeof *s->in);
    s->out = malloc(sizeof *s->out);
    if (!s->in || !s->out)
        return hy_error_set(err, HY_ENOMEM, "no memory for the message buffers");
    s->env = (hy_backend_env){.e = s->set.engines, .native_threads = s->set.native_threads,
                              .locked_threads = s->set.locked_threads};
    int rc = hy_backend_cl_devices(&s->env, s->cfg.opencl_all_devices, s->cfg.devices,
                                   s->cfg.n_devices, err);
    if (rc)
        return rc;
    /* The executors read the engines from set, admission from env: both see the same. */
    hy_backend_hybrid_devices(&s->env, s->cfg.hybrid_cpu_devices);
    s->env.e.held = s->env.e.mpi ? &s->held : NULL;
    if ((rc = span_devices(s, err)))
        return rc;
    s->set.engines = s->env.e;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    s->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    s->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (s->epfd < 0 || s->evfd < 0 || s->timerfd < 0 || s->sigfd < 0)
        return hy_error_set(err, HY_ESYS, "creating the event loop's fds: %s", strerror(errno));
    rc = hy_sched_create(&s->set.engines, s->env.owned, s->env.nowned, s->evfd, &s->sched, err);
    if (rc)
        return rc;
    s->nexec = 1 + s->env.nowned;
    struct {
        int fd;
        struct watch *w;
        int kind;
    } fixed[] = {{s->set.listener->fd, &s->w_listen, W_LISTEN},
                 {s->sigfd, &s->w_signal, W_SIGNAL},
                 {s->evfd, &s->w_event, W_EVENT},
                 {s->timerfd, &s->w_timer, W_TIMER}};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        fixed[i].w->kind = fixed[i].kind;
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = fixed[i].w};
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fixed[i].fd, &e) != 0)
            return hy_error_set(err, HY_ESYS, "epoll_ctl: %s", strerror(errno));
    }
    if (s->set.engines.mpi) {
        s->w_mpi.kind = W_MPI;
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = &s->w_mpi};
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, hy_mpi_event_fd(s->set.engines.mpi), &e) != 0)
            return hy_error_set(err, HY_ESYS, "epoll_ctl (MPI): %s", strerror(errno));
    }
    return 0;
}

static void teardown(struct server *s)
{
    while (s->clients)
        close_client(s, s->clients);
    hy_sched_destroy(s->sched);
    /* Parts whose jobs never came back (the drain ran out): no peer waits for them now. */
    for (struct remote_part *r = s->remote, *next; r; r = next) {
        next = r->next;
        free(r);
    }
    for (struct pending_ranks *p = s->asks, *next; p; p = next) {
        next = p->next;
        free(p);
    }
    hy_listener_close(s->set.listener);
    int fds[] = {s->epfd, s->sigfd, s->evfd, s->timerfd, s->reserve_fd};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    for (unsigned d = 0; s->env.e.dev_lock && d < s->env.ndevices; d++)
        pthread_mutex_destroy(&s->env.e.dev_lock[d]);
    free(s->env.e.dev_lock);
    hy_backend_env_free(&s->env);
    free(s->in);
    free(s->out);
}

/* Flushes what this turn queued and closes the connections that ended. */
static void end_of_turn(struct server *s)
{
    for (struct hy_client *c = s->dirty, *next; c; c = next) {
        next = c->dirty_next;
        c->dirty = false;
        c->dirty_next = NULL;
        flush_client(s, c);
    }
    s->dirty = NULL;
    for (struct hy_client *c = s->clients, *next; c; c = next) {
        next = c->next;
        if (c->dead)
            close_client(s, c);
    }
}

static bool drained(struct server *s)
{
    if (!s->draining || s->jobs_alive > 0)
        return false;
    uint64_t now = hy_now_ns();
    if (!s->idle_since_ns)
        s->idle_since_ns = now;
    bool pending = false;
    for (struct hy_client *c = s->clients; c; c = c->next)
        pending |= hy_frame_writer_pending(c->w) > 0;
    /* The last answers get a moment to reach clients that read slowly, no more. */
    return !pending || now - s->idle_since_ns > FLUSH_GRACE_NS;
}

int hy_server_run(const hy_server_setup *setup_in)
{
    struct server *s = calloc(1, sizeof *s);
    hy_error err = {0};
    if (!s) {
        hy_log(HY_LOG_ERR, "no memory for the server");
        return 1;
    }
    s->set = *setup_in;
    s->cfg = setup_in->cfg;
    int code = 0;
    if (setup(s, &err)) {
        hy_log(HY_LOG_ERR, "%s", err.msg);
        code = 1;
        goto out;
    }
    hy_log(HY_LOG_INFO, "ready: serving on %s (%s), native pool %u, locked runtime %u, "
           "%u OpenCL device(s)", s->set.listener->path,
           s->set.listener->owned ? "created" : "socket activation", s->set.native_threads,
           s->set.locked_threads, s->env.nowned);
    sd_notifyf(0, "READY=1\nSTATUS=serving on %s", s->set.listener->path);
    while (!drained(s)) {
        struct epoll_event ev[64];
        arm_timer(s, s->jobs_alive > 0 || s->draining);
        int n = epoll_wait(s->epfd, ev, 64, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            hy_log(HY_LOG_ERR, "epoll_wait: %s", strerror(errno));
            code = 1;
            break;
        }
        for (int i = 0; i < n; i++) {
            struct watch *w = ev[i].data.ptr;
            switch (w->kind) {
            case W_LISTEN:
                if (!s->draining)
                    on_listen(s);
                break;
            case W_SIGNAL: on_signal(s); break;
            case W_EVENT: drain_done(s); break;
            case W_MPI: on_mpi(s); break;
            case W_TIMER: on_timer(s); break;
            default: {
                struct hy_client *c = (struct hy_client *)w;
                if (!c->dead)
                    on_client_io(s, c, ev[i].events);
            }
            }
        }
        end_of_turn(s);
    }
    hy_log(HY_LOG_NOTICE, "stopped: %" PRIu64 " job(s) done, %" PRIu64 " failed, %" PRIu64
           " cancelled", s->jobs_done, s->jobs_failed, s->jobs_cancelled);
out:
    teardown(s);
    free(s);
    return code;
}
