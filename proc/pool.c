/* proc: the pool of worker processes and the jobs split over them — start, watch, replace;
 * send the parts, gather them back, merge. One thread drives the pool at a time.
 *
 * Every request gets exactly one reply before the job returns, even when the job fails, so
 * each worker's stream stays in step; a worker that stops answering (killed, crashed, or
 * deaf to a cancel for CANCEL_GRACE_NS) is killed, reaped and replaced. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "host.h"
#include "proc.h"
#include "wire.h"

extern char **environ;

#define READY_TIMEOUT_MS 10000
#define POLL_MS 20
#define CANCEL_GRACE_NS 2000000000ull
/* A worker's socket that moves no byte for this long, in either direction, belongs to a worker
 * that stopped (SIGSTOP, a frozen cgroup): the parent gives up on it instead of blocking the
 * CPU executor, and with it cancels, timeouts and the drain, for good. Parts move at GB/s. */
#define IO_STALL_S 10

struct worker {
    pid_t pid; /* 0: not running */
    int sock;  /* -1: none */
    struct hy_pw_control *ctl;
    /* The current request, while one is outstanding. */
    bool pending;
    uint16_t op;       /* what was asked: the reply must say the same */
    void *dest;        /* pipe sorts: where the part's sorted bytes go; NULL otherwise */
    size_t dest_bytes;
    struct hy_pw_msg rep;
};

struct hy_proc_pool {
    unsigned n;
    char exe[4096];
    struct worker w[HY_PROC_MAX_WORKERS];
    void *scratch; /* pipe: the sorted parts, before the merge */
    size_t scratch_cap;
    int shm_fd;    /* shm: the scratch memfd (-1: none yet) */
    size_t shm_bytes;
    bool shm_replaced; /* a job replaced it: idle workers may still map the old one */
};

/* ---- starting, reaping and replacing workers ---- */

/* "exited with status 3", "killed by signal 9 (Killed)". */
static void describe_status(int st, char *buf, size_t len)
{
    if (WIFEXITED(st))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else
        snprintf(buf, len, "stopped");
}

/* Closes the worker's socket, makes sure it is gone, reaps it, and says how it ended. */
static void reap(struct worker *w, bool kill_it, char *why, size_t len)
{
    if (why && len)
        snprintf(why, len, "gone");
    if (w->sock >= 0)
        close(w->sock);
    w->sock = -1;
    w->pending = false;
    if (w->ctl)
        munmap(w->ctl, sizeof *w->ctl);
    w->ctl = NULL;
    if (w->pid <= 0)
        return;
    if (kill_it)
        kill(w->pid, SIGKILL);
    int st;
    pid_t r;
    do
        r = waitpid(w->pid, &st, 0);
    while (r < 0 && errno == EINTR);
    if (r == w->pid && why)
        describe_status(st, why, len);
    w->pid = 0;
}

/* An fd moved to 10 or above, so that the child's dup2 onto 3 and 4 cannot clobber it. */
static int high_fd(int fd)
{
    if (fd >= 10)
        return fd;
    int h = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    close(fd);
    return h;
}

/* Starts the worker binary with the channel `chan` on HY_PW_CHANNEL_FD, the control page
 * `ctl` on HY_PW_CONTROL_FD, nothing else (every other descriptor of the daemon is
 * close-on-exec, and closefrom makes sure). Its own process group keeps a terminal's Ctrl-C
 * for the daemon; its signal mask is cleared, since the daemon blocks the signals it reads
 * through a signalfd. Sets w->pid; returns 0 or the posix_spawn family's error number. */
static int start_child(const hy_proc_pool *p, struct worker *w, int chan, int ctl)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int rc;
    w->pid = 0;
    if ((rc = posix_spawn_file_actions_init(&fa)) != 0)
        return rc;
    if ((rc = posix_spawnattr_init(&at)) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return rc;
    }
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    char *argv[] = {"hybridd-worker", "--process-worker", NULL};
    if ((rc = posix_spawn_file_actions_adddup2(&fa, chan, HY_PW_CHANNEL_FD)) != 0 ||
        (rc = posix_spawn_file_actions_adddup2(&fa, ctl, HY_PW_CONTROL_FD)) != 0 ||
        (rc = posix_spawn_file_actions_addclosefrom_np(&fa, HY_PW_CONTROL_FD + 1)) != 0 ||
        (rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                POSIX_SPAWN_SETSIGDEF)) != 0 ||
        (rc = posix_spawnattr_setpgroup(&at, 0)) != 0 ||
        (rc = posix_spawnattr_setsigmask(&at, &none)) != 0 ||
        (rc = posix_spawnattr_setsigdefault(&at, &all)) != 0 ||
        (rc = posix_spawn(&w->pid, p->exe, &fa, &at, argv, environ)) != 0)
        w->pid = 0;
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

/* Waits up to READY_TIMEOUT_MS for the worker's READY (its engine is up). A worker that says
 * why it cannot start, or says nothing, is reaped, and the error says why. */
static int await_ready(hy_proc_pool *p, struct worker *w, unsigned i, hy_error *err)
{
    struct pollfd pf = {.fd = w->sock, .events = POLLIN};
    int pr;
    do
        pr = poll(&pf, 1, READY_TIMEOUT_MS);
    while (pr < 0 && errno == EINTR);
    struct hy_pw_msg m;
    if (pr <= 0 || hy_pw_read_full(w->sock, &m, sizeof m) || m.magic != HY_PW_MAGIC ||
        m.op != HY_PW_READY || m.rc != 0) {
        char why[96];
        bool said = pr > 0 && m.magic == HY_PW_MAGIC && m.rc != 0;
        if (said)
            m.text[sizeof m.text - 1] = '\0';
        reap(w, true, why, sizeof why);
        return hy_error_set(err, HY_ESYS, "process worker %u (%s) did not start: %s", i,
                            p->exe, said ? m.text : pr == 0 ? "no answer within 10 s" : why);
    }
    return 0;
}

static int spawn(hy_proc_pool *p, unsigned i, hy_error *err)
{
    struct worker *w = &p->w[i];
    int sv[2] = {-1, -1}, cfd = -1, rc = 0;
    w->sock = -1;
    w->pid = 0;
    w->ctl = NULL;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        rc = hy_error_set(err, HY_ESYS, "socketpair for process worker %u: %s", i,
                          strerror(errno));
        goto out;
    }
    cfd = memfd_create("hybridd-worker-control", MFD_CLOEXEC);
    if (cfd < 0 || ftruncate(cfd, sizeof *w->ctl) != 0) {
        rc = hy_error_set(err, HY_ESYS, "control page for process worker %u: %s", i,
                          strerror(errno));
        goto out;
    }
    sv[1] = high_fd(sv[1]);
    cfd = high_fd(cfd);
    if (sv[1] < 0 || cfd < 0) {
        rc = hy_error_set(err, HY_ESYS, "fcntl(F_DUPFD) for process worker %u: %s", i,
                          strerror(errno));
        goto out;
    }
    w->ctl = mmap(NULL, sizeof *w->ctl, PROT_READ | PROT_WRITE, MAP_SHARED, cfd, 0);
    if (w->ctl == MAP_FAILED) {
        w->ctl = NULL;
        rc = hy_error_set(err, HY_ESYS, "mmap of a control page: %s", strerror(errno));
        goto out;
    }
    if ((rc = start_child(p, w, sv[1], cfd)) != 0) {
        rc = hy_error_set(err, HY_ESYS, "posix_spawn of process worker %u (%s): %s", i, p->exe,
                          strerror(rc));
        goto out;
    }
    w->sock = sv[0];
    sv[0] = -1;
    /* The child's ends are the child's now: held here too, a worker that dies before READY
     * would leave its socket open and be found out only by the READY timeout, not its EOF. */
    close(sv[1]);
    sv[1] = -1;
    close(cfd);
    cfd = -1;
    struct timeval stall = {.tv_sec = IO_STALL_S};
    if (setsockopt(w->sock, SOL_SOCKET, SO_SNDTIMEO, &stall, sizeof stall) != 0 ||
        setsockopt(w->sock, SOL_SOCKET, SO_RCVTIMEO, &stall, sizeof stall) != 0) {
        reap(w, true, NULL, 0);
        rc = hy_error_set(err, HY_ESYS, "socket timeouts for process worker %u: %s", i,
                          strerror(errno));
        goto out;
    }
    rc = await_ready(p, w, i, err);
out:
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    if (cfd >= 0)
        close(cfd);
    if (rc != 0 && w->ctl) {
        munmap(w->ctl, sizeof *w->ctl);
        w->ctl = NULL;
    }
    return rc;
}

/* Whether an idle worker is still there: its socket shows neither EOF nor stray bytes. */
static bool idle_alive(const struct worker *w)
{
    if (w->pid <= 0 || w->sock < 0)
        return false;
    struct pollfd pf = {.fd = w->sock, .events = POLLIN};
    return poll(&pf, 1, 0) == 0;
}

/* Makes workers 0..t-1 ready for a job, restarting any that died since the last one. */
static int ensure(hy_proc_pool *p, unsigned t, hy_proc_stats *st, hy_error *err)
{
    for (unsigned i = 0; i < t; i++) {
        if (idle_alive(&p->w[i]))
            continue;
        reap(&p->w[i], true, NULL, 0);
        uint64_t t0 = hy_now_ns();
        int rc = spawn(p, i, err);
        if (rc)
            return rc;
        st->startup_ns += hy_now_ns() - t0;
        st->started++;
    }
    return 0;
}

int hy_proc_pool_create(const hy_proc_config *cfg, hy_proc_pool **out, hy_error *err)
{
    *out = NULL;
    if (!cfg || cfg->workers < 1 || cfg->workers > HY_PROC_MAX_WORKERS)
        return hy_error_set(err, HY_EINVAL, "a process pool has 1 to %d workers, not %u",
                            HY_PROC_MAX_WORKERS, cfg ? cfg->workers : 0);
    hy_proc_pool *p = calloc(1, sizeof *p);
    if (!p)
        return hy_error_set(err, HY_ENOMEM, "no memory for the process pool");
    const char *exe = cfg->exe ? cfg->exe : "/proc/self/exe";
    if (strlen(exe) >= sizeof p->exe) {
        free(p);
        return hy_error_set(err, HY_EINVAL, "the worker program's path is too long");
    }
    strcpy(p->exe, exe);
    p->n = cfg->workers;
    for (unsigned i = 0; i < HY_PROC_MAX_WORKERS; i++)
        p->w[i].sock = -1;
    p->shm_fd = -1;
    for (unsigned i = 0; i < p->n; i++) {
        int rc = spawn(p, i, err);
        if (rc) {
            hy_proc_pool_destroy(p);
            return rc;
        }
    }
    *out = p;
    return 0;
}

void hy_proc_pool_destroy(hy_proc_pool *p)
{
    if (!p)
        return;
    /* EOF first: an idle worker exits on it at once. */
    for (unsigned i = 0; i < p->n; i++)
        if (p->w[i].sock >= 0) {
            close(p->w[i].sock);
            p->w[i].sock = -1;
        }
    uint64_t deadline = hy_now_ns() + 1000000000ull;
    for (unsigned i = 0; i < p->n; i++) {
        struct worker *w = &p->w[i];
        while (w->pid > 0 && hy_now_ns() < deadline) {
            int st;
            pid_t r = waitpid(w->pid, &st, WNOHANG);
            if (r == w->pid || (r < 0 && errno != EINTR))
                w->pid = 0;
            else
                usleep(1000);
        }
        reap(w, true, NULL, 0); /* still there after a second: killed */
    }
    free(p->scratch);
    if (p->shm_fd >= 0)
        close(p->shm_fd);
    free(p);
}

unsigned hy_proc_pool_size(const hy_proc_pool *p) { return p ? p->n : 0; }

unsigned hy_proc_pool_live(hy_proc_pool *p)
{
    unsigned live = 0;
    for (unsigned i = 0; p && i < p->n; i++)
        live += idle_alive(&p->w[i]) || p->w[i].pending;
    return live;
}

pid_t hy_proc_worker_pid(const hy_proc_pool *p, unsigned i)
{
    return p && i < p->n ? p->w[i].pid : 0;
}

/* ---- one step of a job: requests out, one reply from each back ---- */

struct job {
    hy_proc_pool *p;
    const hy_proc_opts *o;
    hy_proc_stats *st;
    uint64_t total;     /* progress units of the whole job */
    bool cancelled;     /* the job's progress callback asked to stop, or the job failed */
    int rc;             /* the first failure */
    hy_error *err;
};

/* Notes the first failure; later ones only matter for the log. */
static void fail(struct job *j, int rc, const char *msg)
{
    if (j->rc == 0) {
        j->rc = rc;
        hy_error_set(j->err, rc, "%s", msg);
    }
}

/* A worker that broke its stream: killed, reaped, replaced. The job fails with EWORKER. */
static void lost(struct job *j, unsigned i)
{
    struct worker *w = &j->p->w[i];
    pid_t pid = w->pid;
    char why[96], msg[HY_ERROR_MSG_MAX];
    reap(w, true, why, sizeof why);
    hy_error ignored;
    bool back = spawn(j->p, i, &ignored) == 0;
    snprintf(msg, sizeof msg, "process worker %u (pid %d) %s during the job; %s", i, (int)pid,
             why, back ? "a new worker replaces it" : "it could not be replaced yet");
    fail(j, HY_EWORKER, msg);
}

static int send_req(struct job *j, unsigned i, struct hy_pw_msg *m, const void *payload,
                    const int *fds, unsigned nfds)
{
    struct worker *w = &j->p->w[i];
    m->magic = HY_PW_MAGIC;
    union {
        char buf[CMSG_SPACE(HY_PW_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = {.iov_base = m, .iov_len = sizeof *m};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 0) {
        memset(&u, 0, sizeof u);
        mh.msg_control = u.buf;
        mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
    }
    atomic_store(&w->ctl->done, 0);
    memset(&w->rep, 0, sizeof w->rep);
    w->op = m->op;
    if (m->op != HY_PW_SORT_PIPE) { /* only a pipe part comes back with bytes */
        w->dest = NULL;
        w->dest_bytes = 0;
    }
    uint64_t t0 = hy_now_ns();
    ssize_t r;
    do
        r = sendmsg(w->sock, &mh, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    bool ok = r >= 0 &&
              (r == (ssize_t)sizeof *m ||
               hy_pw_write_full(w->sock, (char *)m + r, sizeof *m - (size_t)r) == 0);
    if (ok && m->bytes)
        ok = hy_pw_write_full(w->sock, payload, (size_t)m->bytes) == 0;
    j->st->send_ns += hy_now_ns() - t0;
    j->st->bytes_moved += sizeof *m + m->bytes;
    if (!ok) {
        lost(j, i);
        return -1;
    }
    w->pending = true;
    return 0;
}

static void report_progress(struct job *j, unsigned t)
{
    if (j->cancelled || !j->o->progress)
        return;
    uint64_t done = 0;
    for (unsigned i = 0; i < t; i++)
        if (j->p->w[i].ctl)
            done += atomic_load_explicit(&j->p->w[i].ctl->done, memory_order_relaxed);
    if (j->o->progress(j->o->progress_ctx, done < j->total ? done : j->total, j->total)) {
        j->cancelled = true;
        for (unsigned i = 0; i < t; i++)
            if (j->p->w[i].pending && j->p->w[i].ctl)
                atomic_store(&j->p->w[i].ctl->cancel, 1);
    }
}

/* Reads worker i's reply (and a pipe part's bytes into its dest). */
static void take_reply(struct job *j, unsigned i)
{
    struct worker *w = &j->p->w[i];
    struct hy_pw_msg *m = &w->rep;
    if (hy_pw_read_full(w->sock, m, sizeof *m) || m->magic != HY_PW_MAGIC ||
        m->op != w->op) {
        lost(j, i);
        return;
    }
    j->st->bytes_moved += sizeof *m + m->bytes;
    /* A pipe part that succeeded comes back whole; nothing else carries bytes. Any other
     * shape is a stream out of step: the worker is replaced, nothing is written anywhere. */
    bool part_back = w->op == HY_PW_SORT_PIPE && m->rc == 0;
    if (part_back ? m->bytes != w->dest_bytes || !w->dest : m->bytes != 0) {
        lost(j, i);
        return;
    }
    if (m->bytes) {
        uint64_t t0 = hy_now_ns();
        int r = hy_pw_read_full(w->sock, w->dest, w->dest_bytes);
        j->st->recv_ns += hy_now_ns() - t0;
        if (r) {
            lost(j, i);
            return;
        }
    }
    w->pending = false;
    m->text[sizeof m->text - 1] = '\0';
    if (m->rc != 0)
        fail(j, m->rc, m->text);
}

/* Waits for a reply from every worker with a request out, reporting progress meanwhile. */
static void gather(struct job *j, unsigned t)
{
    /* The grace for workers deaf to a cancel counts from the cancel, or from this gather's
     * start when the job was cancelled before: requests sent since have had no time yet. */
    uint64_t grace_from = j->cancelled ? hy_now_ns() : 0;
    for (;;) {
        struct pollfd pf[HY_PROC_MAX_WORKERS];
        unsigned idx[HY_PROC_MAX_WORKERS], k = 0;
        for (unsigned i = 0; i < t; i++)
            if (j->p->w[i].pending) {
                pf[k] = (struct pollfd){.fd = j->p->w[i].sock, .events = POLLIN};
                idx[k++] = i;
            }
        if (k == 0)
            break;
        int r = poll(pf, k, POLL_MS);
        if (r < 0 && errno != EINTR) {
            for (unsigned x = 0; x < k; x++)
                lost(j, idx[x]);
            break;
        }
        for (unsigned x = 0; r > 0 && x < k; x++)
            if (pf[x].revents)
                take_reply(j, idx[x]);
        bool was = j->cancelled;
        report_progress(j, t);
        if (!was && j->cancelled)
            grace_from = hy_now_ns();
        /* Once the job has failed (a worker lost, one refusing its part), the others'
         * work is wasted: stop them as a cancel would, so the error goes out soon. */
        if (j->rc != 0 && !j->cancelled) {
            j->cancelled = true;
            grace_from = hy_now_ns();
            for (unsigned i = 0; i < t; i++)
                if (j->p->w[i].pending && j->p->w[i].ctl)
                    atomic_store(&j->p->w[i].ctl->cancel, 1);
        }
        /* A worker deaf to the cancel flag (stopped, or stuck) is not waited for forever. */
        if (j->cancelled && hy_now_ns() - grace_from > CANCEL_GRACE_NS)
            for (unsigned i = 0; i < t; i++)
                if (j->p->w[i].pending)
                    lost(j, i);
    }
    for (unsigned i = 0; i < t; i++)
        if (j->p->w[i].ctl)
            atomic_store(&j->p->w[i].ctl->cancel, 0);
}

/* Contiguous parts that differ by at most one element. */
static void part(uint64_t n, unsigned i, unsigned t, uint64_t *first, uint64_t *count)
{
    uint64_t base = n / t, extra = n % t;
    *first = base * i + (i < extra ? i : extra);
    *count = base + (i < extra ? 1 : 0);
}

static int start(struct job *j, hy_proc_pool *p, const hy_proc_opts *o, hy_proc_stats *st,
                 uint64_t total, hy_error *err)
{
    memset(st, 0, sizeof *st);
    *j = (struct job){.p = p, .o = o, .st = st, .total = total, .err = err};
    if (!p || !o)
        return hy_error_set(err, HY_EINVAL, "no process pool or no options given");
    if (o->workers < 1 || o->workers > p->n)
        return hy_error_set(err, HY_EINVAL, "the process pool has %u workers; a job may use 1 "
                            "to %u, not %u", p->n, p->n, o->workers);
    if (o->transport != 0 && !hy_transport_name(o->transport))
        return hy_error_set(err, HY_EINVAL, "unknown transport %d (1 pipe, 2 shm)",
                            o->transport);
    st->workers = o->workers;
    for (unsigned i = 0; i < p->n; i++)
        memset(&p->w[i].rep, 0, sizeof p->w[i].rep);
    return ensure(p, o->workers, st, err);
}

/* The job's answer: a lost worker or a failure first, then a cancel. */
static int finish(struct job *j, uint64_t t0)
{
    j->st->wall_ns = hy_now_ns() - t0;
    if (j->rc == 0 && j->cancelled)
        return hy_error_set(j->err, HY_ECANCELED, "cancelled");
    return j->rc;
}

int hy_proc_pi(hy_proc_pool *p, uint64_t seed, uint64_t n, const hy_proc_opts *o,
               uint64_t *hits, hy_proc_stats *st, hy_error *err)
{
    struct job j;
    uint64_t t0 = hy_now_ns();
    *hits = 0;
    if (n == 0)
        return hy_error_set(err, HY_EINVAL, "n must be at least 1 sample");
    if (n > (uint64_t)HY_HOST_PI_MAX_SAMPLES || o->first > HY_HOST_PI_MAX_SAMPLES - n)
        return hy_error_set(err, HY_ELIMIT, "samples %llu + %llu pass the limit of 2^63 - 1",
                            (unsigned long long)o->first, (unsigned long long)n);
    int rc = start(&j, p, o, st, n, err);
    if (rc)
        return rc;
    unsigned t = o->workers;
    for (unsigned i = 0; i < t && j.rc == 0; i++) {
        struct hy_pw_msg m = {.op = HY_PW_PI, .a = seed};
        part(n, i, t, &m.b, &m.c);
        if (m.c == 0)
            continue;
        m.b += o->first; /* the worker counts [b, b + c) of the stream */
        send_req(&j, i, &m, NULL, NULL, 0);
    }
    gather(&j, t);
    uint64_t sum = 0;
    for (unsigned i = 0; i < t; i++)
        sum += p->w[i].rep.a;
    if (j.rc == 0 && !j.cancelled)
        *hits = sum;
    return finish(&j, t0);
}

static int sort_pipe(struct job *j, int dtype, void *data, size_t n, size_t size)
{
    hy_proc_pool *p = j->p;
    unsigned t = j->o->workers;
    size_t bytes = n * size;
    /* One part comes straight back into place; several come back into scratch, to merge. */
    char *into = data;
    if (t > 1) {
        if (p->scratch_cap < bytes) {
            free(p->scratch);
            p->scratch = malloc(bytes);
            p->scratch_cap = p->scratch ? bytes : 0;
            if (!p->scratch)
                return hy_error_set(j->err, HY_ENOMEM, "no memory to gather %zu bytes of "
                                    "sorted parts", bytes);
        }
        into = p->scratch;
    }
    const void *runs[HY_PROC_MAX_WORKERS];
    size_t lens[HY_PROC_MAX_WORKERS];
    for (unsigned i = 0; i < t && j->rc == 0; i++) {
        struct hy_pw_msg m = {.op = HY_PW_SORT_PIPE, .dtype = (uint16_t)dtype};
        uint64_t first;
        part(n, i, t, &first, &m.c);
        m.bytes = m.c * size;
        p->w[i].dest = into + first * size;
        p->w[i].dest_bytes = (size_t)m.bytes;
        runs[i] = into + first * size;
        lens[i] = (size_t)m.c;
        send_req(j, i, &m, (char *)data + first * size, NULL, 0);
    }
    gather(j, t);
    if (j->rc == 0 && !j->cancelled && t > 1) {
        /* multiprocessing's parent merges what Pool.map returned: one thread. */
        uint64_t t0 = hy_now_ns();
        int rc = hy_host_merge(dtype, runs, lens, t, data, j->err);
        j->st->merge_ns = hy_now_ns() - t0;
        if (rc && j->rc == 0)
            j->rc = rc;
    }
    if (p->scratch_cap > HY_KEEP_BYTES) {
        free(p->scratch);
        p->scratch = NULL;
        p->scratch_cap = 0;
    }
    return 0;
}

/* Tells workers 0..t-1 to unmap the array, and waits until each has. Workers keep the
 * pool's scratch mapped between jobs; `drop_used` makes 0..t-1 let it go too, and
 * `drop_rest` the workers this job did not use (they may map a scratch the pool replaced). */
static void release_all(struct job *j, unsigned t, bool drop_used, bool drop_rest)
{
    unsigned upto = drop_rest ? j->p->n : t;
    for (unsigned i = 0; i < upto; i++) {
        struct worker *w = &j->p->w[i];
        /* A worker this job did not use may have died idle: that is not the job's failure.
         * It is reaped here and started again by the next job that needs it. */
        if (i >= t && !idle_alive(w)) {
            reap(w, true, NULL, 0);
            continue;
        }
        struct hy_pw_msg m = {.op = HY_PW_RELEASE, .a = i < t ? drop_used : drop_rest};
        if (w->pid > 0 && !w->pending)
            send_req(j, i, &m, NULL, NULL, 0);
    }
    gather(j, upto);
}

/* The shared scratch the workers sort their parts into and merge from: a memfd of the
 * pool's, kept between jobs (its pages stay allocated) up to HY_KEEP_BYTES. */
static int shm_scratch(hy_proc_pool *p, size_t bytes, hy_error *err)
{
    if (p->shm_fd >= 0 && p->shm_bytes >= bytes)
        return 0;
    if (p->shm_fd >= 0) {
        close(p->shm_fd);
        p->shm_replaced = true;
    }
    p->shm_bytes = 0;
    p->shm_fd = memfd_create("hybridd-process-scratch", MFD_CLOEXEC);
    if (p->shm_fd < 0 || ftruncate(p->shm_fd, (off_t)bytes) != 0) {
        int e = errno;
        if (p->shm_fd >= 0)
            close(p->shm_fd);
        p->shm_fd = -1;
        return hy_error_set(err, HY_ESYS, "a %zu-byte scratch memfd for a shm sort: %s", bytes,
                            strerror(e));
    }
    p->shm_bytes = bytes;
    return 0;
}

/* Private memory cannot be shared after the fact: a memfd of our own (*own, mapped at *map)
 * carries it, and copying in and out is this transport's moving of data. */
static int share_array(struct job *j, const void *data, size_t bytes, int *own, void **map)
{
    uint64_t t0 = hy_now_ns();
    *own = memfd_create("hybridd-process-shm", MFD_CLOEXEC);
    if (*own < 0 || ftruncate(*own, (off_t)bytes) != 0) {
        int e = errno;
        if (*own >= 0)
            close(*own);
        *own = -1;
        return hy_error_set(j->err, HY_ESYS, "memfd of %zu bytes for a shm sort: %s",
                            bytes, strerror(e));
    }
    void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, *own, 0);
    if (m == MAP_FAILED) {
        int e = errno;
        close(*own);
        *own = -1;
        return hy_error_set(j->err, HY_ESYS, "mmap of %zu bytes for a shm sort: %s",
                            bytes, strerror(e));
    }
    memcpy(m, data, bytes);
    *map = m;
    j->st->send_ns += hy_now_ns() - t0;
    j->st->bytes_moved += bytes;
    return 0;
}

/* The merge of a shm sort on several workers: each merges one slice of the output from the
 * sorted runs in the scratch straight back into the array. A failure is left in j->rc. */
static void shm_merge(struct job *j, int dtype, size_t n, unsigned t, const void *const *runs,
                      const size_t *lens, const uint64_t *firsts)
{
    /* Each worker's slice of the output starts where the ranks fall in the runs. */
    uint64_t t0 = hy_now_ns();
    size_t cut[HY_PROC_MAX_WORKERS + 1][HY_PROC_MAX_WORKERS];
    for (unsigned w = 0; w <= t && j->rc == 0; w++) {
        uint64_t rank = n, cnt;
        if (w < t)
            part(n, w, t, &rank, &cnt);
        int r = hy_host_merge_cut(dtype, runs, lens, t, (size_t)rank, cut[w], j->err);
        if (r)
            j->rc = r;
    }
    for (unsigned w = 0; w < t && j->rc == 0; w++) {
        struct hy_pw_msg m = {.op = HY_PW_MERGE_SHM, .dtype = (uint16_t)dtype, .d = t};
        uint64_t cnt;
        part(n, w, t, &m.a, &cnt);
        uint64_t pairs[2 * HY_PROC_MAX_WORKERS];
        m.c = 0;
        for (unsigned i = 0; i < t; i++) {
            pairs[2 * i] = firsts[i] + cut[w][i];
            pairs[2 * i + 1] = firsts[i] + cut[w + 1][i];
            m.c += cut[w + 1][i] - cut[w][i];
        }
        m.bytes = 2 * (uint64_t)t * sizeof(uint64_t);
        send_req(j, w, &m, pairs, NULL, 0);
    }
    gather(j, t);
    j->st->merge_ns = hy_now_ns() - t0;
}

static int sort_shm(struct job *j, int dtype, void *data, int fd, size_t n, size_t size)
{
    hy_proc_pool *p = j->p;
    unsigned t = j->o->workers;
    size_t bytes = n * size;
    int own = -1, rc = 0;
    void *map = data, *scratch = NULL;
    if (fd < 0) {
        if ((rc = share_array(j, data, bytes, &own, &map)) != 0)
            return rc;
        fd = own;
    }
    /* One worker sorts the array in place; several sort their parts into the scratch, each
     * then merges one slice of the output from there straight back into the array. */
    if (t > 1) {
        if ((rc = shm_scratch(p, bytes, j->err)) != 0)
            goto out;
        scratch = mmap(NULL, bytes, PROT_READ, MAP_SHARED, p->shm_fd, 0);
        if (scratch == MAP_FAILED) {
            scratch = NULL;
            rc = hy_error_set(j->err, HY_ESYS, "mmap of the shm scratch: %s", strerror(errno));
            goto out;
        }
    }
    const void *runs[HY_PROC_MAX_WORKERS];
    size_t lens[HY_PROC_MAX_WORKERS];
    uint64_t firsts[HY_PROC_MAX_WORKERS];
    int fds[2] = {fd, p->shm_fd};
    for (unsigned i = 0; i < t && j->rc == 0; i++) {
        struct hy_pw_msg m = {.op = HY_PW_SORT_SHM, .dtype = (uint16_t)dtype, .a = n};
        part(n, i, t, &m.b, &m.c);
        firsts[i] = m.b;
        runs[i] = scratch ? (char *)scratch + m.b * size : NULL;
        lens[i] = (size_t)m.c;
        send_req(j, i, &m, NULL, fds, t > 1 ? 2 : 1);
    }
    gather(j, t);
    if (j->rc == 0 && !j->cancelled && t > 1)
        shm_merge(j, dtype, n, t, runs, lens, firsts);
out:
    /* Whatever happened, no worker keeps the array mapped, nor a scratch the pool lets go. */
    bool drop = p->shm_bytes > HY_KEEP_BYTES;
    release_all(j, t, drop, drop || p->shm_replaced);
    p->shm_replaced = false;
    if (scratch)
        munmap(scratch, bytes);
    if (p->shm_fd >= 0 && drop) {
        close(p->shm_fd);
        p->shm_fd = -1;
        p->shm_bytes = 0;
    }
    if (own >= 0) {
        uint64_t t0 = hy_now_ns();
        if (rc == 0 && j->rc == 0 && !j->cancelled)
            memcpy(data, map, bytes);
        j->st->recv_ns += hy_now_ns() - t0;
        j->st->bytes_moved += bytes;
        munmap(map, bytes);
        close(own);
    }
    return rc;
}

int hy_proc_sort(hy_proc_pool *p, int dtype, void *data, int fd, size_t n,
                 const hy_proc_opts *o, hy_proc_stats *st, hy_error *err)
{
    struct job j;
    uint64_t t0 = hy_now_ns();
    size_t size;
    int rc = hy_check_sort_args(dtype, data, n, &size, err);
    if (rc)
        return rc;
    if (n > SIZE_MAX / size / 2)
        return hy_error_set(err, HY_ELIMIT, "%zu elements are too many to sort", n);
    if ((rc = start(&j, p, o, st, (uint64_t)n * 3u, err)) != 0)
        return rc;
    if (n < 2)
        return finish(&j, t0);
    /* Fewer elements than workers: the surplus workers would get empty parts. */
    hy_proc_opts fewer = *o;
    if (n < fewer.workers) {
        fewer.workers = (unsigned)n;
        j.o = &fewer;
    }
    if (o->transport == HY_TRANSPORT_SHM)
        rc = sort_shm(&j, dtype, data, fd, n, size);
    else
        rc = sort_pipe(&j, dtype, data, n, size);
    if (rc && j.rc == 0)
        j.rc = rc;
    return finish(&j, t0);
}
