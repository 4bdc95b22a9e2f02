/* proc: a worker process — one thread, the CPU engine's serial kernels, requests from the
 * parent on fd 3, progress and cancellation through the control page on fd 4. It holds no
 * other descriptor: no client socket, no listening socket, no device. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host.h"
#include "proc.h"
#include "wire.h"

/* Memory an idle worker keeps for the next job (its pipe buffer, the engine's scratch): a
 * part of 10^7 f64 split two ways fits. */
#define WORKER_KEEP ((size_t)64 << 20)

/* Exit statuses the parent names when a worker goes away. */
enum { W_EXIT_OK = 0, W_EXIT_SETUP = 3, W_EXIT_PROTOCOL = 4, W_EXIT_IO = 5 };

struct wstate {
    hy_host *host;
    struct hy_pw_control *ctl;
    /* The current shm job's array and scratch, mapped from the fds the parent sent (the
     * scratch is absent when one worker sorts the whole array in place). */
    void *map, *scratch;
    size_t map_bytes;
    /* The pool's scratch stays mapped between jobs (its pages then need no new page-table
     * entries): which memfd it is, and how much of it is mapped. */
    dev_t scratch_dev;
    ino_t scratch_ino;
    size_t scratch_bytes;
    /* The worker's own memory for a pipe part. Kept between jobs. */
    void *buf;
    size_t buf_cap;
};

/* Reads one header; fds sent with it land in fds[] (-1 where none). 1 at a clean EOF. */
static int read_msg(struct hy_pw_msg *m, int fds[HY_PW_MAX_FDS])
{
    for (unsigned i = 0; i < HY_PW_MAX_FDS; i++)
        fds[i] = -1;
    union {
        char buf[CMSG_SPACE(HY_PW_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = {.iov_base = m, .iov_len = sizeof *m};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                        .msg_controllen = sizeof u.buf};
    ssize_t r;
    do
        r = recvmsg(HY_PW_CHANNEL_FD, &mh, MSG_CMSG_CLOEXEC);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return 1;
    if (r < 0)
        return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (i < HY_PW_MAX_FDS)
                fds[i] = fd;
            else
                close(fd);
        }
    }
    if (mh.msg_flags & MSG_CTRUNC)
        return -1;
    if ((size_t)r < sizeof *m &&
        hy_pw_read_full(HY_PW_CHANNEL_FD, (char *)m + r, sizeof *m - (size_t)r))
        return -1;
    return m->magic == HY_PW_MAGIC ? 0 : -1;
}

static int reply(struct hy_pw_msg *q, int rc, const hy_error *err, uint64_t ns,
                 const void *payload, size_t bytes)
{
    struct hy_pw_msg m = {.magic = HY_PW_MAGIC, .op = q->op, .dtype = q->dtype, .rc = rc,
                          .a = q->a, .b = q->b, .c = q->c, .d = q->d, .ns = ns,
                          .bytes = rc == 0 ? bytes : 0};
    if (rc != 0 && err)
        memcpy(m.text, err->msg, sizeof m.text);
    m.text[sizeof m.text - 1] = '\0';
    if (hy_pw_write_full(HY_PW_CHANNEL_FD, &m, sizeof m))
        return -1;
    return rc == 0 && bytes ? hy_pw_write_full(HY_PW_CHANNEL_FD, payload, bytes) : 0;
}

static int progress(void *ctx, uint64_t done, uint64_t total)
{
    (void)total;
    struct hy_pw_control *c = ctx;
    atomic_store_explicit(&c->done, done, memory_order_relaxed);
    return atomic_load_explicit(&c->cancel, memory_order_relaxed) != 0;
}

static int grow(struct wstate *s, size_t bytes, hy_error *err)
{
    if (bytes <= s->buf_cap)
        return 0;
    free(s->buf);
    s->buf = malloc(bytes);
    s->buf_cap = s->buf ? bytes : 0;
    return s->buf ? 0 : hy_error_set(err, HY_ENOMEM, "worker: no memory for %zu bytes", bytes);
}

/* Unmaps the job's array; the scratch too when `drop` (the pool is letting it go). */
static void release_job(struct wstate *s, bool drop)
{
    if (s->map)
        munmap(s->map, s->map_bytes);
    s->map = NULL;
    s->map_bytes = 0;
    if (drop && s->scratch) {
        munmap(s->scratch, s->scratch_bytes);
        s->scratch = NULL;
        s->scratch_bytes = 0;
    }
    /* Big buffers go back to the system, the engine's sort scratch too: an idle worker
     * holds at most WORKER_KEEP of each, whatever the largest job it ran. */
    if (s->buf_cap > WORKER_KEEP) {
        free(s->buf);
        s->buf = NULL;
        s->buf_cap = 0;
    }
    hy_host_trim(s->host, WORKER_KEEP);
}

static void release(struct wstate *s)
{
    release_job(s, false);
}

/* Whether [first, first + count) lies inside `total` elements. */
static bool in_range(uint64_t first, uint64_t count, uint64_t total)
{
    return first <= total && count <= total - first;
}

/* Maps a memfd of `bytes` shared, populating [from, from + len) for writing: the part this
 * worker sorts or writes is taken in one call; the rest faults in as the merge reads it. */
static void *map_part(int fd, size_t bytes, size_t from, size_t len, hy_error *err)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        hy_error_set(err, HY_ESYS, "worker: mmap of %zu bytes: %s", bytes, strerror(errno));
        return NULL;
    }
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), lo = from / pg * pg;
    if (len > 0) /* older kernels lack MADV_POPULATE_WRITE: then the pages fault in */
        (void)madvise((char *)p + lo, from + len - lo, MADV_POPULATE_WRITE);
    return p;
}

/* A sort part that travels through the channel: read it into the worker's buffer, sort
 * it there, send it back. A part that cannot be held is read and dropped, so the stream
 * stays in step, and answered with the error. */
static int serve_sort_pipe(struct wstate *s, struct hy_pw_msg *q, const hy_run_opts *ro,
                           size_t size)
{
    hy_error err = {0};
    uint64_t t0;
    int rc;
    if (size == 0 || q->c > SIZE_MAX / size || q->bytes != q->c * size)
        return -2;
    if ((rc = grow(s, (size_t)q->bytes, &err)) != 0) {
        /* The part is on its way: consume it so the stream stays in step. */
        char sink[4096];
        for (uint64_t left = q->bytes; left > 0;) {
            size_t k = left < sizeof sink ? (size_t)left : sizeof sink;
            if (hy_pw_read_full(HY_PW_CHANNEL_FD, sink, k))
                return -1;
            left -= k;
        }
        return reply(q, rc, &err, 0, NULL, 0);
    }
    if (hy_pw_read_full(HY_PW_CHANNEL_FD, s->buf, (size_t)q->bytes))
        return -1;
    t0 = hy_now_ns();
    hy_sort_result r;
    rc = hy_host_sort(s->host, q->dtype, s->buf, (size_t)q->c, ro, &r, &err);
    uint64_t ns = hy_now_ns() - t0;
    int w = reply(q, rc, &err, ns, s->buf, (size_t)q->bytes);
    release(s);
    return w;
}

/* A sort part that stays in the shared mapping (fds[0]): the worker maps the array, and the
 * scratch (fds[1]) when the parent merges from it, keeping both mapped for the next job while
 * they are the same files; only offsets travel. */
static int serve_sort_shm(struct wstate *s, struct hy_pw_msg *q, const int fds[HY_PW_MAX_FDS],
                          const hy_run_opts *ro, size_t size, uint64_t t0)
{
    hy_error err = {0};
    int rc;
    release(s);
    if (fds[0] < 0 || size == 0 || q->a == 0 || q->a > SIZE_MAX / size ||
        !in_range(q->b, q->c, q->a))
        return -2;
    s->map_bytes = (size_t)q->a * size;
    size_t from = (size_t)q->b * size, len = (size_t)q->c * size;
    s->map = map_part(fds[0], s->map_bytes, from, len, &err);
    bool use_scratch = fds[1] >= 0;
    if (s->map && use_scratch) {
        struct stat st;
        if (fstat(fds[1], &st) != 0 || (size_t)st.st_size < s->map_bytes) {
            release(s);
            return -2; /* the parent sends a scratch as large as the array */
        }
        if (!s->scratch || st.st_dev != s->scratch_dev || st.st_ino != s->scratch_ino ||
            s->scratch_bytes != (size_t)st.st_size) {
            size_t bytes = s->map_bytes;
            release_job(s, true);
            s->map_bytes = bytes;
            s->map = map_part(fds[0], s->map_bytes, from, len, &err);
            s->scratch_bytes = (size_t)st.st_size;
            s->scratch = s->map ? map_part(fds[1], s->scratch_bytes, from, len, &err) : NULL;
            s->scratch_dev = st.st_dev;
            s->scratch_ino = st.st_ino;
            if (!s->scratch) {
                s->scratch_bytes = 0;
                release(s);
            }
        }
    }
    if (!s->map)
        return reply(q, err.code, &err, 0, NULL, 0);
    hy_sort_result r;
    if (use_scratch)
        rc = hy_host_sort_to(s->host, q->dtype, (char *)s->map + from,
                             (char *)s->scratch + from, (size_t)q->c, ro, &r, &err);
    else
        rc = hy_host_sort(s->host, q->dtype, (char *)s->map + from, (size_t)q->c, ro, &r,
                          &err);
    return reply(q, rc, &err, hy_now_ns() - t0, NULL, 0);
}

/* This worker's slice of the final merge: the runs' bounds come through the channel; it reads
 * them from the scratch and writes its slice of the array. */
static int serve_merge_shm(struct wstate *s, struct hy_pw_msg *q, size_t size, uint64_t t0)
{
    hy_error err = {0};
    int rc;
    uint64_t k = q->d;
    uint64_t total = s->map_bytes / (size ? size : 1);
    if (size == 0 || !s->map || !s->scratch || s->scratch_bytes < s->map_bytes || k == 0 ||
        k > HY_HOST_MERGE_MAX_RUNS ||
        q->bytes != k * 2 * sizeof(uint64_t) || !in_range(q->a, q->c, total))
        return -2;
    uint64_t pairs[2 * HY_HOST_MERGE_MAX_RUNS];
    if (hy_pw_read_full(HY_PW_CHANNEL_FD, pairs, (size_t)q->bytes))
        return -1;
    const void *runs[HY_HOST_MERGE_MAX_RUNS];
    size_t lens[HY_HOST_MERGE_MAX_RUNS], sum = 0;
    for (uint64_t i = 0; i < k; i++) {
        if (pairs[2 * i] > pairs[2 * i + 1] || pairs[2 * i + 1] > total)
            return -2;
        runs[i] = (char *)s->scratch + pairs[2 * i] * size;
        lens[i] = (size_t)(pairs[2 * i + 1] - pairs[2 * i]);
        sum += lens[i];
    }
    if (sum != q->c)
        return -2;
    /* Every worker writes its own slice of the array; all read only the scratch. */
    rc = hy_host_merge(q->dtype, runs, lens, (unsigned)k, (char *)s->map + q->a * size,
                       &err);
    release(s);
    return reply(q, rc, &err, hy_now_ns() - t0, NULL, 0);
}

/* One request, answered: 0; -1 when the channel broke (reading the request or writing the
 * reply); -2 for a request that breaks the protocol (the worker then exits). */
static int serve(struct wstate *s, struct hy_pw_msg *q, const int fds[HY_PW_MAX_FDS])
{
    hy_error err = {0};
    hy_run_opts ro = {.backend = HY_BACKEND_SERIAL, .threads = 1, .mode = HY_MODE_SPLIT,
                      .progress = progress, .progress_ctx = s->ctl};
    size_t size = hy_dtype_size(q->dtype);
    uint64_t t0 = hy_now_ns();
    int rc;
    atomic_store(&s->ctl->done, 0);
    switch (q->op) {
    case HY_PW_PI: {
        hy_pi_result r;
        rc = hy_host_pi_part(s->host, q->a, q->b, q->c, &ro, &r, &err);
        q->a = rc == 0 ? r.hits : 0;
        return reply(q, rc, &err, hy_now_ns() - t0, NULL, 0);
    }
    case HY_PW_SORT_PIPE: return serve_sort_pipe(s, q, &ro, size);
    case HY_PW_SORT_SHM: return serve_sort_shm(s, q, fds, &ro, size, t0);
    case HY_PW_MERGE_SHM: return serve_merge_shm(s, q, size, t0);
    case HY_PW_RELEASE:
        release_job(s, q->a != 0);
        return reply(q, 0, NULL, 0, NULL, 0);
    }
    return -2;
}

int hy_proc_worker_main(void)
{
    /* The daemon owns this process: die with it, gain nothing by exec, and leave the
     * terminal's and the service manager's signals to the daemon, which ends its workers by
     * closing their sockets once running jobs are done. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() == 1)
        return W_EXIT_SETUP;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return W_EXIT_SETUP;
    /* One step below the daemon: a worker woken by the parent's request then does not
     * preempt the parent while it still has requests to send (that cost ~4 ms, a tick). */
    errno = 0;
    int nice_now = getpriority(PRIO_PROCESS, 0);
    if (errno == 0 && nice_now < 19)
        (void)setpriority(PRIO_PROCESS, 0, nice_now + 1);
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    struct stat st;
    if (fstat(HY_PW_CHANNEL_FD, &st) != 0 || !S_ISSOCK(st.st_mode))
        return W_EXIT_SETUP;
    /* Only the channel and the control page: nothing a client could reach. */
    if (close_range(HY_PW_CONTROL_FD + 1, ~0u, 0) != 0)
        return W_EXIT_SETUP;

    struct wstate s = {0};
    s.ctl = mmap(NULL, sizeof *s.ctl, PROT_READ | PROT_WRITE, MAP_SHARED, HY_PW_CONTROL_FD, 0);
    close(HY_PW_CONTROL_FD);
    if (s.ctl == MAP_FAILED)
        return W_EXIT_SETUP;
    hy_host_config hc = {.threads = 1};
    hy_error err;
    int rc = hy_host_create(&hc, &s.host, &err);
    struct hy_pw_msg ready = {.magic = HY_PW_MAGIC, .op = HY_PW_READY};
    if (reply(&ready, rc, &err, 0, NULL, 0) != 0 || rc != 0)
        return W_EXIT_SETUP;

    int status = W_EXIT_OK;
    for (;;) {
        struct hy_pw_msg q;
        int fds[HY_PW_MAX_FDS];
        int r = read_msg(&q, fds);
        if (r == 1)
            break;
        if (r < 0) {
            status = W_EXIT_IO;
            break;
        }
        /* fds come only with SORT_SHM; the worker keeps none past its mappings. */
        bool stray = fds[0] >= 0 && q.op != HY_PW_SORT_SHM;
        r = stray ? -2 : serve(&s, &q, fds);
        for (unsigned i = 0; i < HY_PW_MAX_FDS; i++)
            if (fds[i] >= 0)
                close(fds[i]);
        if (r == -2) {
            status = W_EXIT_PROTOCOL;
            break;
        }
        if (r < 0) {
            status = W_EXIT_IO;
            break;
        }
    }
    release_job(&s, true);
    free(s.buf);
    hy_host_destroy(s.host);
    return status;
}
