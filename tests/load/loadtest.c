/* tests/load/loadtest: many concurrent clients against one hybridd over its Unix socket — pi
 * and sort jobs on every backend, cancellations, malformed requests and garbage in between —
 * checking that every job gets exactly one right answer, that nothing hangs, and that the
 * daemon's fds and memory come back to where they were. Bounded in time (--seconds: past it
 * the program kills the daemon and fails) and in count (--clients x --jobs). */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "../cl/pocl_env.h"
#include "harness.h"
#include "host.h"
#include "le.h"

#define MAX_INFLIGHT 8 /* jobs_per_client is 8: never more in flight than the daemon allows */
#define MAX_BADS 16    /* malformed requests awaiting their ERROR, per client */
#define CANCEL_RING 64 /* recent CANCEL request ids, per client */
#define SORT_N_MAX 50000
#define RSS_BOUND_MIB 64

/* ---- options ---- */

static struct {
    unsigned clients, jobs, inflight, seconds, rss_bound_mib;
    int opencl; /* -1: when the daemon has a usable device; 0 off; 1 required */
    bool json;
    uint64_t seed;
} opt = {64, 200, 4, 600, RSS_BOUND_MIB, -1, false, 20261125};

/* ---- failures, the deadline ---- */

static atomic_uint failures;
static atomic_bool aborting; /* the watchdog fired: client threads stop */
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
    unsigned n = atomic_fetch_add(&failures, 1);
    if (n >= 40) {
        if (n == 40)
            fprintf(stderr, "loadtest: FAIL: (further failures not shown)\n");
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&out_mu);
    fprintf(stderr, "loadtest: FAIL: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    pthread_mutex_unlock(&out_mu);
    va_end(ap);
}

static hyt_daemon D;
static uint64_t t_start_ns, deadline_ns;
static pthread_mutex_t wd_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cv; /* on CLOCK_MONOTONIC: see main */
static bool wd_done;

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void print_log_tail(unsigned lines)
{
    FILE *f = fopen(D.log, "r");
    if (!f)
        return;
    /* Keep the last `lines` lines in a ring of fixed-size lines. */
    static char ring[64][512];
    unsigned n = 0;
    while (fgets(ring[n % 64], sizeof ring[0], f))
        n++;
    fclose(f);
    if (lines > 64)
        lines = 64;
    unsigned first = n > lines ? n - lines : 0;
    fprintf(stderr, "---- last %u lines of hybridd's log (%s) ----\n", n - first, D.log);
    for (unsigned i = first; i < n; i++)
        fputs(ring[i % 64], stderr);
    fprintf(stderr, "---- end of log ----\n");
}

struct client;
static struct client *clients;
static void print_progress(void);

/* Past the deadline the test fails, whatever is stuck: it kills the daemon (so every client
 * wait ends), reports where each client was, and exits. */
static void *watchdog(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t left = deadline_ns - hy_now_ns();
    ts.tv_sec += (time_t)(left / 1000000000u);
    ts.tv_nsec += (long)(left % 1000000000u);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&wd_mu);
    while (!wd_done)
        if (pthread_cond_timedwait(&wd_cv, &wd_mu, &ts) == ETIMEDOUT)
            break;
    bool done = wd_done;
    pthread_mutex_unlock(&wd_mu);
    if (done)
        return NULL;
    atomic_store(&aborting, true);
    fail("the deadline of %u s passed: something hangs (killing hybridd %d)", opt.seconds,
         (int)D.pid);
    pthread_mutex_lock(&out_mu);
    print_progress();
    print_log_tail(40);
    pthread_mutex_unlock(&out_mu);
    fflush(NULL);
    if (D.pid > 0)
        kill(D.pid, SIGKILL);
    sleep_ms(200);
    hyt_daemon_cleanup(&D);
    _exit(1);
}

/* ---- the daemon's fds and memory ---- */

static int count_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* A "Key:   123 kB" line of /proc/PID/status, in KiB; -1 when missing. */
static long status_kib(pid_t pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long v = -1;
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            v = strtol(line + klen + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* Waits until the daemon's fd count has not changed for 300 ms (closes it has yet to see
 * take a moment), at most timeout_ms; returns the count. */
static int settled_fds(int timeout_ms)
{
    uint64_t end = hy_now_ns() + (uint64_t)timeout_ms * 1000000u;
    int last = count_fds(D.pid);
    uint64_t since = hy_now_ns();
    while (hy_now_ns() < end) {
        sleep_ms(20);
        int n = count_fds(D.pid);
        if (n != last) {
            last = n;
            since = hy_now_ns();
        } else if (hy_now_ns() - since >= 300000000u) {
            break;
        }
    }
    return last;
}

static struct {
    atomic_bool stop;
    int fds_peak;
    long rss_peak;
    unsigned samples;
} mon;

static void *monitor(void *arg)
{
    (void)arg;
    while (!atomic_load(&mon.stop)) {
        int n = count_fds(D.pid);
        long rss = status_kib(D.pid, "VmRSS");
        if (n > mon.fds_peak)
            mon.fds_peak = n;
        if (rss > mon.rss_peak)
            mon.rss_peak = rss;
        mon.samples++;
        sleep_ms(20);
    }
    return NULL;
}

/* ---- what every job is checked against ---- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *s)
{
    return (double)(splitmix(s) >> 11) * 0x1.0p-53;
}

static unsigned below(uint64_t *s, unsigned n)
{
    return (unsigned)(splitmix(s) % n);
}

/* Pi jobs draw (seed, n) from a table so the test computes each reference once: small ones
 * for the mix, big ones for jobs that will be cancelled (whose reference is computed only if
 * one finishes before its cancel). */
#define NPI_SMALL 24
#define NPI_BIG 4
static struct pi_cfg {
    uint64_t seed, n, hits;
    bool have;
    pthread_mutex_t mu;
} pis[NPI_SMALL + NPI_BIG];

static void pi_table_init(void)
{
    uint64_t s = opt.seed ^ 0x5049u;
    for (unsigned i = 0; i < NPI_SMALL + NPI_BIG; i++) {
        pis[i].seed = 1000 + i;
        /* small: log-uniform in 1e3..3e5; big: 2e7 (tens of ms on one thread) */
        pis[i].n = i < NPI_SMALL ? (uint64_t)exp(log(1e3) + uniform(&s) * (log(3e5) - log(1e3)))
                                 : 20000000u + i;
        pthread_mutex_init(&pis[i].mu, NULL);
    }
}

static uint64_t pi_hits(unsigned i)
{
    pthread_mutex_lock(&pis[i].mu);
    if (!pis[i].have) {
        pis[i].hits = hy_host_pi_hits_reference(pis[i].seed, 0, pis[i].n);
        pis[i].have = true;
    }
    uint64_t h = pis[i].hits;
    pthread_mutex_unlock(&pis[i].mu);
    return h;
}

/* Per job id (the daemon's ids are 1, 2, ...): written by the thread of the connection that
 * submitted the job, which is also the one that receives its answers. */
static uint64_t id_cap;
static atomic_uchar *id_accepted, *id_finals, *id_abandoned;
static uint64_t *id_request;
static atomic_uint_fast64_t id_max;
static uint64_t id_warm; /* ids up to this one were the warm-up's */

/* ---- clients ---- */

enum { K_PI, K_SORT };

typedef struct slot {
    bool used;
    hyt_job j;
    int kind;
    unsigned pi;
    uint16_t backend;
    uint32_t threads;
    uint16_t nogil;
    int dtype;
    uint64_t n;
    bool memfd;
    void *ref; /* the sorted reference */
    size_t bytes;
    int fd;
    void *map;
    int cancel; /* 0 none; 1 CANCEL once ACCEPTED arrives; 2 a little later */
    unsigned cancel_delay_us;
    uint64_t cancel_at_ns;
    bool cancel_sent, seen_accept;
    uint64_t t0_ns;
} slot;

typedef struct bad {
    uint64_t request;
    int want, want2;
    const char *what;
} bad;

typedef struct client {
    unsigned idx;
    pthread_t thread;
    uint64_t rng;
    hyt_client *c;
    slot slots[MAX_INFLIGHT];
    unsigned inflight, submitted;
    bad bads[MAX_BADS];
    unsigned nbads;
    uint64_t cancel_reqs[CANCEL_RING];
    unsigned ncancel_reqs;
    bool garbage_client;
    unsigned garbage_done;
    const char *phase;
    /* counts */
    unsigned results, cancelled, cancel_results, cancels_sent, cancel_einval;
    unsigned bad_sent, bad_answered, abandoned, reconnects, accepted, after_fatal;
    unsigned by_backend[HY_BACKEND_COUNT + 1], pi_jobs, sort_jobs, memfd_jobs;
    uint64_t *lat_ns;
    unsigned nlat;
} client;

static void print_progress(void)
{
    if (!clients)
        return;
    for (unsigned i = 0; i < opt.clients; i++) {
        const client *cl = &clients[i];
        if (cl->submitted < opt.jobs || cl->inflight)
            fprintf(stderr, "  client %u: %u/%u submitted, %u in flight, %u bad requests "
                    "unanswered, in %s\n", i, cl->submitted, opt.jobs, cl->inflight, cl->nbads,
                    cl->phase ? cl->phase : "?");
    }
}

static void describe(const slot *s, char *buf, size_t cap)
{
    if (s->kind == K_PI)
        snprintf(buf, cap, "pi n %" PRIu64 " on %s/%u%s", s->n, hy_backend_name(s->backend),
                 s->threads, s->cancel ? " (cancelled)" : "");
    else
        snprintf(buf, cap, "sort %s n %" PRIu64 " %s on %s/%u%s", hy_dtype_name(s->dtype), s->n,
                 s->memfd ? "memfd" : "inline", hy_backend_name(s->backend), s->threads,
                 s->cancel ? " (cancelled)" : "");
}

static bool use_cl;
static uint16_t cl_device;
static char cl_name[100];
static bool cl_pocl;

static void free_slot(client *cl, slot *s)
{
    hyt_job_release(cl->c, &s->j);
    free(s->ref);
    if (s->map)
        hy_memfd_unmap(s->map, s->bytes);
    if (s->fd >= 0)
        close(s->fd);
    memset(s, 0, sizeof *s);
    s->fd = -1;
    cl->inflight--;
}

static uint16_t pick_backend(client *cl)
{
    /* serial 15%, native 25%, locked 25%, process 15%, opencl 20% (its share goes to the
     * CPU backends when off) */
    unsigned r = below(&cl->rng, 100);
    if (r < 15)
        return HY_BACKEND_SERIAL;
    if (r < 40)
        return HY_BACKEND_NATIVE;
    if (r < 65)
        return HY_BACKEND_LOCKED;
    if (r < 80)
        return HY_BACKEND_PROCESS;
    if (!use_cl)
        return r % 2 ? HY_BACKEND_LOCKED : HY_BACKEND_NATIVE;
    return HY_BACKEND_OPENCL;
}

/* Builds and sends the client's next job in a free slot. 0, or -1 after a failure. */
static int submit_next(client *cl)
{
    slot *s = NULL;
    for (unsigned i = 0; i < MAX_INFLIGHT && !s; i++)
        if (!cl->slots[i].used)
            s = &cl->slots[i];
    if (!s) {
        fail("client %u: no free slot with %u in flight", cl->idx, cl->inflight);
        return -1;
    }
    memset(s, 0, sizeof *s);
    s->fd = -1;
    s->used = true;
    cl->inflight++;
    uint64_t *rng = &cl->rng;
    if (below(rng, 100) < 10) {
        s->cancel = 1 + (int)below(rng, 2);
        s->cancel_delay_us = below(rng, 20000);
    }
    s->backend = pick_backend(cl);
    s->threads = s->backend == HY_BACKEND_SERIAL   ? 1
                 : s->backend == HY_BACKEND_OPENCL ? 0
                                                    : 1 + below(rng, 2);
    s->nogil = s->backend == HY_BACKEND_LOCKED ? (uint16_t)below(rng, 3) : 0;
    s->kind = below(rng, 100) < 40 ? K_PI : K_SORT;
    cl->by_backend[s->backend]++;
    hy_msg_submit m;
    int rc;
    if (s->kind == K_PI) {
        /* Half the jobs that will be cancelled are big enough to be caught queued or
         * running; the other half are small and often finish first. */
        s->pi = s->cancel && below(rng, 2) ? NPI_SMALL + below(rng, NPI_BIG)
                                           : below(rng, NPI_SMALL);
        s->n = pis[s->pi].n;
        m = hyt_pi(s->backend, s->threads, s->n, pis[s->pi].seed);
        cl->pi_jobs++;
    } else {
        s->dtype = 1 + (int)below(rng, 6);
        s->n = (uint64_t)exp(uniform(rng) * log((double)SORT_N_MAX));
        if (s->n < 1)
            s->n = 1;
        if (s->n > SORT_N_MAX)
            s->n = SORT_N_MAX;
        s->memfd = below(rng, 100) < 40;
        s->bytes = (size_t)s->n * hy_dtype_size(s->dtype);
        uint64_t fill_seed = splitmix(rng);
        s->ref = malloc(s->bytes);
        if (!s->ref) {
            fail("client %u: out of memory", cl->idx);
            return -1;
        }
        hyt_fill(s->dtype, s->ref, s->n, fill_seed);
        if (s->memfd) {
            hy_error err = {0};
            if (hy_memfd_create("hyt-load", s->bytes, &s->fd, &s->map, &err) != 0) {
                fail("client %u: memfd: %s", cl->idx, err.msg);
                return -1;
            }
            memcpy(s->map, s->ref, s->bytes);
            if (hy_memfd_seal(s->fd, &err) != 0) {
                fail("client %u: seal: %s", cl->idx, err.msg);
                return -1;
            }
            m = hyt_sort_memfd(s->backend, s->threads, s->dtype, s->n);
            cl->memfd_jobs++;
        } else {
            m = hyt_sort_inline(s->backend, s->threads, s->dtype, s->ref, s->n);
        }
        cl->sort_jobs++;
    }
    m.nogil = s->nogil;
    /* Both of the process backend's transports, pipe and shm, half each. */
    if (s->backend == HY_BACKEND_PROCESS)
        m.transport = (uint16_t)(1 + below(rng, 2));
    if (s->backend == HY_BACKEND_OPENCL)
        m.device = cl_device;
    s->t0_ns = hy_now_ns();
    rc = s->memfd ? hyt_submit(cl->c, &m, &s->fd, 1, &s->j) : hyt_submit(cl->c, &m, NULL, 0, &s->j);
    /* The writer copied the inline array: the reference can be sorted now. */
    if (s->kind == K_SORT)
        hyt_sort_ref(s->dtype, s->ref, s->n);
    cl->submitted++;
    if (rc) {
        fail("client %u: SUBMIT not sent: %d %s", cl->idx, rc, cl->c->err.msg);
        return -1;
    }
    return 0;
}

/* ---- malformed requests: each gets an ERROR with its code, and the stream goes on ---- */

#define SUB(off) (HY_IPC_HEADER + (off))

static int send_bad(client *cl)
{
    uint8_t buf[512];
    size_t n = 0;
    int32_t data[8] = {5, -1, 3, 3, 0, -7, 2, 1};
    uint64_t req = hyt_next_request(cl->c);
    hy_msg *m = calloc(1, sizeof *m);
    if (!m)
        return -1;
    m->type = HY_MSG_SUBMIT;
    m->request = req;
    m->u.submit = hyt_pi(HY_BACKEND_NATIVE, 2, 1000, 1);
    bad b = {.request = req};
    unsigned what = below(&cl->rng, 14);
    if (what == 0 || what == 6 || what == 7)
        m->u.submit = hyt_sort_inline(HY_BACKEND_NATIVE, 2, HY_DT_I32, data, 8);
    if (what == 7)
        m->u.submit = hyt_sort_memfd(HY_BACKEND_NATIVE, 2, HY_DT_I32, 8);
    if (what == 9)
        m->u.submit.threads = 3; /* above the pool of 2: the daemon's check, not the codec's */
    if (what == 10) {
        m->u.submit.backend = HY_BACKEND_SERIAL;
        m->u.submit.threads = 2;
    }
    if (what == 12)
        m->u.submit.n = 0;
    if (what == 13) {
        m->u.submit.backend = HY_BACKEND_OPENCL;
        m->u.submit.device = 63;
    }
    if (what == 11) {
        m->type = HY_MSG_CANCEL;
        m->u.cancel.job_id = (1ull << 62) + splitmix(&cl->rng) % 1000000; /* never issued */
    }
    int rc = hyt_encode(cl->c, m, buf, sizeof buf, &n);
    free(m);
    if (rc) {
        fail("client %u: encoding a bad request: %d %s", cl->idx, rc, cl->c->err.msg);
        return -1;
    }
    switch (what) {
    case 0: put16(buf + SUB(14), 9); b.want = HY_EDTYPE; b.what = "sort dtype 9"; break;
    case 1: put16(buf + SUB(4), 9); b.want = HY_EINVAL; b.what = "job kind 9"; break;
    case 2: put16(buf + SUB(6), 9); b.want = HY_EBACKEND; b.what = "backend 9"; break;
    case 3: put16(buf + SUB(10), 5); b.want = HY_EINVAL; b.what = "mode 5"; break;
    case 4: /* threads 0 is the daemon's default; a list is a compare's only */
        put32(buf + SUB(52), 1);
        b.want = HY_EINVAL;
        b.what = "a thread list on a single job";
        break;
    case 5: put32(buf + SUB(0), 20); b.want = HY_EPROTO; b.what = "SUBMIT body_size 20"; break;
    case 6: put64(buf + SUB(32), 9); b.want = HY_EPROTO; b.what = "inline n 9, 8 sent"; break;
    case 7: b.want = HY_EPROTO; b.what = "memfd array without an fd"; break;
    case 8:
        put16(buf + 6, 99); /* a type nobody knows, with a PING-sized payload */
        b.want = HY_ETYPE;
        b.what = "unknown type 99";
        break;
    case 9: b.want = HY_ELIMIT; b.what = "native threads 3 above the pool"; break;
    case 10: b.want = HY_EINVAL; b.what = "serial on 2 threads"; break;
    case 11: b.want = HY_EINVAL; b.what = "CANCEL of a job never issued"; break;
    case 12: b.want = HY_EINVAL; b.what = "pi with 0 samples"; break;
    default: b.want = HY_EBACKEND; b.what = "opencl device 63"; break;
    }
    if (what == 8) {
        /* Keep the frame PING-shaped: header + 16 bytes. */
        hy_msg ping = {.type = HY_MSG_PING, .request = req};
        if (hyt_encode(cl->c, &ping, buf, sizeof buf, &n) != 0)
            return -1;
        put16(buf + 6, 99);
    }
    rc = hyt_send_raw(cl->c, buf, n);
    if (rc) {
        fail("client %u: sending %s: %d %s", cl->idx, b.what, rc, cl->c->err.msg);
        return -1;
    }
    cl->bads[cl->nbads++] = b;
    cl->bad_sent++;
    return 0;
}

/* ---- answers ---- */

static bool id_ok(client *cl, uint64_t id, const char *what)
{
    if (id == 0 || id >= id_cap) {
        fail("client %u: %s for job id %" PRIu64 ", outside 1..%" PRIu64, cl->idx, what, id,
             id_cap - 1);
        return false;
    }
    return true;
}

static slot *slot_by_request(client *cl, uint64_t request)
{
    for (unsigned i = 0; i < MAX_INFLIGHT; i++)
        if (cl->slots[i].used && cl->slots[i].j.request == request)
            return &cl->slots[i];
    return NULL;
}

static void final_answer(client *cl, uint64_t id, uint64_t request, const char *what)
{
    if (!id_ok(cl, id, what))
        return;
    if (!atomic_load(&id_accepted[id])) {
        fail("client %u: %s for job %" PRIu64 ", never ACCEPTED here", cl->idx, what, id);
        return;
    }
    if (id_request[id] != request)
        fail("client %u: %s for job %" PRIu64 " echoes request %" PRIu64 ", its SUBMIT's was %"
             PRIu64, cl->idx, what, id, request, id_request[id]);
    if (atomic_fetch_add(&id_finals[id], 1) != 0)
        fail("client %u: job %" PRIu64 " got a second final answer (%s)", cl->idx, id, what);
}

/* Checks every message as it comes: each ACCEPTED answers one SUBMIT of ours, each final
 * answer is the first for its job, each ERROR answers something we sent. */
static void on_msg(client *cl)
{
    const hy_msg *m = cl->c->msg;
    switch (m->type) {
    case HY_MSG_ACCEPTED: {
        uint64_t id = m->u.accepted.job_id;
        slot *s = slot_by_request(cl, m->request);
        if (!s || s->j.job_id != id) {
            fail("client %u: ACCEPTED (job %" PRIu64 ") for request %" PRIu64
                 ", no SUBMIT of ours waits for it", cl->idx, id, m->request);
            return;
        }
        if (!id_ok(cl, id, "ACCEPTED"))
            return;
        if (atomic_fetch_add(&id_accepted[id], 1) != 0)
            fail("client %u: job id %" PRIu64 " ACCEPTED twice", cl->idx, id);
        id_request[id] = m->request;
        uint64_t prev = atomic_load(&id_max);
        while (id > prev && !atomic_compare_exchange_weak(&id_max, &prev, id))
            ;
        cl->accepted++;
        break;
    }
    case HY_MSG_RESULT: final_answer(cl, m->u.result.job_id, m->request, "RESULT"); break;
    case HY_MSG_ERROR: {
        const hy_msg_error *e = &m->u.error;
        for (unsigned i = 0; i < cl->nbads; i++)
            if (cl->bads[i].request == m->request) {
                bad *b = &cl->bads[i];
                if (e->code != b->want && (!b->want2 || e->code != b->want2))
                    fail("client %u: %s answered %s \"%.*s\", want %s", cl->idx, b->what,
                         hy_err_name(e->code), (int)e->message.len,
                         e->message.p ? e->message.p : "", hy_err_name(b->want));
                cl->bads[i] = cl->bads[--cl->nbads];
                cl->bad_answered++;
                return;
            }
        if (e->job_id == 0) {
            slot *s = slot_by_request(cl, m->request);
            if (s)
                return; /* a refused SUBMIT: complete() reports it */
            fail("client %u: ERROR %s \"%.*s\" for request %" PRIu64 ", which we never sent",
                 cl->idx, hy_err_name(e->code), (int)e->message.len,
                 e->message.p ? e->message.p : "", m->request);
            return;
        }
        for (unsigned i = 0; i < CANCEL_RING && i < cl->ncancel_reqs; i++)
            if (cl->cancel_reqs[i] == m->request) {
                /* A CANCEL that came too late: the job's own answer must have come first. */
                cl->cancel_einval++;
                if (e->code != HY_EINVAL)
                    fail("client %u: CANCEL of job %" PRIu64 " answered %s", cl->idx, e->job_id,
                         hy_err_name(e->code));
                else if (id_ok(cl, e->job_id, "CANCEL's ERROR") &&
                         atomic_load(&id_finals[e->job_id]) == 0)
                    fail("client %u: CANCEL of job %" PRIu64 " answered EINVAL (unknown job) "
                         "before the job's final answer", cl->idx, e->job_id);
                return;
            }
        final_answer(cl, e->job_id, m->request, "ERROR");
        break;
    }
    case HY_MSG_PROGRESS: break;
    default:
        fail("client %u: unexpected %s", cl->idx,
             hy_msg_type_name(m->type) ? hy_msg_type_name(m->type) : "message type");
        break;
    }
}

static bool check_result(client *cl, slot *s, char *why, size_t cap)
{
    const hyt_job *j = &s->j;
    if (j->nrows != 1 || !j->rows) {
        snprintf(why, cap, "%u rows", j->nrows);
        return false;
    }
    if (j->rows[0].backend != s->backend) {
        snprintf(why, cap, "row backend %u", j->rows[0].backend);
        return false;
    }
    if (s->kind == K_PI) {
        uint64_t want = pi_hits(s->pi);
        if (j->rows[0].hits != want || j->rows[0].n != s->n) {
            snprintf(why, cap, "hits %" PRIu64 " of %" PRIu64 ", want %" PRIu64 " of %" PRIu64,
                     j->rows[0].hits, j->rows[0].n, want, s->n);
            return false;
        }
        return true;
    }
    const void *got = s->memfd ? s->map : j->array;
    size_t got_bytes = s->memfd ? s->bytes : j->array_bytes;
    if (s->memfd && j->array_bytes != 0) {
        snprintf(why, cap, "a memfd sort's RESULT carries %u array bytes", j->array_bytes);
        return false;
    }
    if (!got || got_bytes != s->bytes) {
        snprintf(why, cap, "%zu array bytes, want %zu", got_bytes, s->bytes);
        return false;
    }
    if (memcmp(got, s->ref, s->bytes) != 0) {
        size_t size = hy_dtype_size(s->dtype), i = 0;
        while (i < s->n && memcmp((const char *)got + i * size, (const char *)s->ref + i * size,
                                  size) == 0)
            i++;
        snprintf(why, cap, "element %zu differs from the reference", i);
        return false;
    }
    (void)cl;
    return true;
}

static void complete(client *cl, slot *s)
{
    char what[128], why[160];
    describe(s, what, sizeof what);
    uint64_t lat = hy_now_ns() - s->t0_ns;
    const hyt_job *j = &s->j;
    if (!j->accepted) {
        fail("client %u: %s refused: %s \"%s\"", cl->idx, what, hy_err_name(j->code), j->message);
    } else if (j->code == 0) {
        if (!check_result(cl, s, why, sizeof why))
            fail("client %u: job %" PRIu64 " (%s): wrong result: %s", cl->idx, j->job_id, what,
                 why);
        else if (s->cancel)
            cl->cancel_results++;
        else
            cl->results++;
        if (!s->cancel)
            cl->lat_ns[cl->nlat++] = lat;
    } else if (j->code == HY_ECANCELED && s->cancel) {
        if (j->error_job_id != j->job_id)
            fail("client %u: ECANCELED for job %" PRIu64 " names job %" PRIu64, cl->idx,
                 j->job_id, j->error_job_id);
        cl->cancelled++;
    } else {
        fail("client %u: job %" PRIu64 " (%s) failed: %s \"%s\"", cl->idx, j->job_id, what,
             hy_err_name(j->code), j->message);
    }
    free_slot(cl, s);
}

/* Completes finished jobs and sends the CANCELs that are due. 0, or -1 after a failure. */
static int scan(client *cl, bool may_send)
{
    uint64_t now = hy_now_ns();
    for (unsigned i = 0; i < MAX_INFLIGHT; i++) {
        slot *s = &cl->slots[i];
        if (!s->used)
            continue;
        if (s->j.done) {
            complete(cl, s);
            continue;
        }
        if (!s->j.accepted)
            continue;
        if (!s->seen_accept) {
            s->seen_accept = true;
            s->cancel_at_ns = now + (s->cancel == 2 ? s->cancel_delay_us * 1000ull : 0);
        }
        if (s->cancel && !s->cancel_sent && may_send && now >= s->cancel_at_ns) {
            uint64_t req;
            int rc = hyt_cancel(cl->c, s->j.job_id, &req);
            if (rc) {
                fail("client %u: CANCEL not sent: %d %s", cl->idx, rc, cl->c->err.msg);
                return -1;
            }
            s->cancel_sent = true;
            cl->cancels_sent++;
            cl->cancel_reqs[cl->ncancel_reqs++ % CANCEL_RING] = req;
        }
    }
    return 0;
}

/* How long to wait for the next message: until the next CANCEL is due, else a hang's worth. */
static int wait_ms(const client *cl)
{
    uint64_t now = hy_now_ns(), next = UINT64_MAX;
    for (unsigned i = 0; i < MAX_INFLIGHT; i++) {
        const slot *s = &cl->slots[i];
        if (s->used && s->seen_accept && s->cancel && !s->cancel_sent && s->cancel_at_ns < next)
            next = s->cancel_at_ns;
    }
    if (next == UINT64_MAX)
        return HYT_WAIT_MS;
    return next <= now ? 0 : (int)((next - now) / 1000000u) + 1;
}

/* Jobs left on a connection the daemon closed: it cancelled them, and answers no one. */
static void abandon_all(client *cl)
{
    for (unsigned i = 0; i < MAX_INFLIGHT; i++) {
        slot *s = &cl->slots[i];
        if (!s->used)
            continue;
        if (s->j.done) {
            complete(cl, s);
            continue;
        }
        if (!s->j.accepted)
            fail("client %u: a SUBMIT sent before the garbage was never answered", cl->idx);
        else if (id_ok(cl, s->j.job_id, "abandoned job"))
            atomic_store(&id_abandoned[s->j.job_id], 1);
        cl->abandoned++;
        free_slot(cl, s);
    }
}

/* Garbage (a frame with a bad magic) on a connection with jobs in flight: the daemon answers
 * ERROR EPROTO and closes it, cancelling what was in flight; the client reconnects. */
static int garbage(client *cl)
{
    uint8_t buf[40] = {0};
    hy_frame_header h = {.version = 1, .type = HY_MSG_PING, .length = 16, .request = 3};
    hy_frame_header_encode(&h, buf);
    memcpy(buf, "XYD1", 4);
    buf[24] = 16;
    cl->phase = "garbage";
    if (hyt_send_raw(cl->c, buf, sizeof buf) != 0) {
        fail("client %u: sending garbage: %s", cl->idx, cl->c->err.msg);
        return -1;
    }
    bool fatal = false;
    for (;;) {
        int rc = hyt_recv(cl->c, HYT_WAIT_MS);
        if (rc == HYT_EOF)
            break;
        if (rc != 0) {
            fail("client %u: after garbage: no close (%d %s)", cl->idx, rc, cl->c->err.msg);
            return -1;
        }
        const hy_msg *m = cl->c->msg;
        if (m->type == HY_MSG_ERROR && m->u.error.job_id == 0 && m->request == 0) {
            if (m->u.error.code != HY_EPROTO)
                fail("client %u: garbage answered %s, want EPROTO", cl->idx,
                     hy_err_name(m->u.error.code));
            if (fatal)
                fail("client %u: garbage answered twice", cl->idx);
            fatal = true;
            continue;
        }
        /* A job that finishes between the fatal ERROR and the close still has its answer
         * sent (the daemon flushes before it closes): one final answer all the same. */
        if (fatal && m->type != HY_MSG_RESULT && m->type != HY_MSG_ERROR &&
            m->type != HY_MSG_PROGRESS)
            fail("client %u: %s after the fatal ERROR", cl->idx,
                 hy_msg_type_name(m->type) ? hy_msg_type_name(m->type) : "a message");
        if (fatal)
            cl->after_fatal++;
        on_msg(cl);
        scan(cl, false);
    }
    if (!fatal)
        fail("client %u: garbage: the connection closed without ERROR EPROTO", cl->idx);
    if (cl->nbads)
        fail("client %u: %u bad requests sent before the garbage were never answered",
             cl->idx, cl->nbads);
    cl->nbads = 0;
    abandon_all(cl);
    hyt_close(cl->c);
    cl->c = hyt_connect_hello(D.sock);
    cl->garbage_done++;
    cl->reconnects++;
    cl->ncancel_reqs = 0;
    if (!cl->c) {
        fail("client %u: cannot reconnect after garbage", cl->idx);
        return -1;
    }
    return 0;
}

static void *client_main(void *arg)
{
    client *cl = arg;
    const unsigned M = opt.jobs;
    cl->phase = "connect";
    cl->c = hyt_connect_hello(D.sock);
    if (!cl->c) {
        fail("client %u: cannot connect", cl->idx);
        return NULL;
    }
    while ((cl->submitted < M || cl->inflight || cl->nbads) && !atomic_load(&aborting)) {
        if (cl->garbage_client && cl->garbage_done < 2 &&
            cl->submitted >= (cl->garbage_done + 1) * M / 3 && cl->inflight > 0) {
            if (garbage(cl) != 0)
                break;
            continue;
        }
        cl->phase = "submit";
        while (cl->inflight < opt.inflight && cl->submitted < M) {
            if (below(&cl->rng, 100) < 5 && cl->nbads < MAX_BADS && send_bad(cl) != 0)
                goto out;
            if (submit_next(cl) != 0)
                goto out;
        }
        cl->phase = "receive";
        int rc = hyt_recv(cl->c, wait_ms(cl));
        if (rc == 0) {
            on_msg(cl);
        } else if (rc != HYT_TIMEOUT || wait_ms(cl) == HYT_WAIT_MS) {
            fail("client %u: waiting for answers (%u in flight, %u bad requests): %s (%d) %s",
                 cl->idx, cl->inflight, cl->nbads,
                 rc == HYT_TIMEOUT ? "nothing came" : rc == HYT_EOF ? "the daemon closed" : "error",
                 rc, cl->c->err.msg);
            break;
        }
        if (scan(cl, true) != 0)
            break;
    }
out:
    cl->phase = "done";
    for (unsigned i = 0; i < MAX_INFLIGHT; i++)
        if (cl->slots[i].used)
            free_slot(cl, &cl->slots[i]);
    if (cl->c && (cl->c->dup_finals || cl->c->stray_finals || cl->c->bad_echo))
        fail("client %u: harness counted %u duplicate and %u stray final answers, %u bad "
             "echoes", cl->idx, cl->c->dup_finals, cl->c->stray_finals, cl->c->bad_echo);
    hyt_close(cl->c);
    cl->c = NULL;
    return NULL;
}

/* ---- warm-up: every backend and dtype once, so kernels are built and pools started ---- */

static unsigned warm_jobs;

static int warm_one(hyt_client *c, const hy_msg_submit *s, const int *fds, unsigned nfds,
                    const void *want, size_t bytes, uint64_t want_hits, const char *what)
{
    hyt_job j;
    int rc = hyt_run(c, s, fds, nfds, &j);
    if (rc || !j.done || j.code != 0) {
        fail("warm-up %s: %d %s %s", what, rc, hy_err_name(j.code), rc ? c->err.msg : j.message);
        hyt_job_release(c, &j);
        return -1;
    }
    warm_jobs++;
    if (j.job_id > id_warm)
        id_warm = j.job_id;
    bool ok = j.nrows == 1 && j.rows;
    if (ok && s->job == HY_JOB_PI)
        ok = j.rows[0].hits == want_hits;
    if (ok && s->job == HY_JOB_SORT && want)
        ok = j.array_bytes == bytes && j.array && memcmp(j.array, want, bytes) == 0;
    if (!ok)
        fail("warm-up %s: wrong result", what);
    hyt_job_release(c, &j);
    return ok ? 0 : -1;
}

static int warm_up(hyt_client *c)
{
    const uint16_t backends[] = {HY_BACKEND_SERIAL, HY_BACKEND_NATIVE, HY_BACKEND_LOCKED,
                                 HY_BACKEND_OPENCL, HY_BACKEND_PROCESS};
    const size_t n = 1000;
    uint8_t *data = malloc(n * 8), *ref = malloc(n * 8);
    int rc = -1;
    if (!data || !ref)
        goto out;
    for (unsigned b = 0; b < sizeof backends / sizeof backends[0]; b++) {
        uint16_t be = backends[b];
        if (be == HY_BACKEND_OPENCL && !use_cl)
            continue;
        uint32_t t = be == HY_BACKEND_SERIAL ? 1 : be == HY_BACKEND_OPENCL ? 0 : 2;
        char what[64];
        hy_msg_submit s = hyt_pi(be, t, pis[0].n, pis[0].seed);
        s.device = be == HY_BACKEND_OPENCL ? cl_device : 0;
        snprintf(what, sizeof what, "pi on %s", hy_backend_name(be));
        if (warm_one(c, &s, NULL, 0, NULL, 0, pi_hits(0), what) != 0)
            goto out;
        for (int dt = HY_DT_I32; dt <= HY_DT_F64; dt++) {
            size_t bytes = n * hy_dtype_size(dt);
            hyt_fill(dt, data, n, 77 + (uint64_t)dt);
            memcpy(ref, data, bytes);
            hyt_sort_ref(dt, ref, n);
            s = hyt_sort_inline(be, t, dt, data, n);
            /* shm once before the idle count: its scratch memfd is one fd the daemon keeps. */
            s.transport = be == HY_BACKEND_PROCESS && dt % 2 ? HY_TRANSPORT_SHM : 0;
            s.device = be == HY_BACKEND_OPENCL ? cl_device : 0;
            snprintf(what, sizeof what, "sort %s on %s", hy_dtype_name(dt), hy_backend_name(be));
            if (warm_one(c, &s, NULL, 0, ref, bytes, 0, what) != 0)
                goto out;
        }
        /* A memfd too, so the mapping path has run once. */
        int fd;
        void *map;
        hy_error err = {0};
        if (hy_memfd_create("hyt-warm", n * 4, &fd, &map, &err) != 0 ||
            hy_memfd_seal(fd, &err) != 0) {
            fail("warm-up memfd: %s", err.msg);
            goto out;
        }
        hyt_fill(HY_DT_U32, map, n, 5);
        s = hyt_sort_memfd(be, t, HY_DT_U32, n);
        s.device = be == HY_BACKEND_OPENCL ? cl_device : 0;
        snprintf(what, sizeof what, "memfd sort on %s", hy_backend_name(be));
        int wrc = warm_one(c, &s, &fd, 1, NULL, 0, 0, what);
        hy_memfd_unmap(map, n * 4);
        close(fd);
        if (wrc)
            goto out;
    }
    rc = 0;
out:
    free(data);
    free(ref);
    return rc;
}

/* ---- main ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: loadtest [--clients N] [--jobs M] [--inflight K] [--opencl|--no-opencl]\n"
            "                [--hybridd PATH] [--seconds S] [--seed X] [--rss-bound-mib B]\n"
            "                [--json]\n"
            "Starts one hybridd and runs N concurrent clients of M jobs each (default 64 x 200,\n"
            "K = 4 in flight per client): pi and sort on every backend, ~10%% cancelled, ~5%%\n"
            "malformed requests in between, a few clients that send garbage and reconnect.\n"
            "Fails (never hangs) after S seconds (default 600). Exit 0 when every check held.\n");
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static unsigned parse_uint(const char *s, const char *name, unsigned lo, unsigned hi)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "loadtest: %s must be an integer in %u..%u, not '%s'\n", name, lo, hi, s);
        exit(2);
    }
    return (unsigned)v;
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"clients", required_argument, NULL, 'c'}, {"jobs", required_argument, NULL, 'j'},
        {"inflight", required_argument, NULL, 'k'}, {"opencl", no_argument, NULL, 'o'},
        {"no-opencl", no_argument, NULL, 'O'},      {"hybridd", required_argument, NULL, 'H'},
        {"seconds", required_argument, NULL, 's'},  {"seed", required_argument, NULL, 'S'},
        {"rss-bound-mib", required_argument, NULL, 'r'}, {"json", no_argument, NULL, 'J'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    int ch;
    /* A sanitizer build of the daemon keeps freed memory in quarantine (ASan: 256 MiB by
     * default): the bound is about our allocations, so it widens by that much there. */
    if (getenv("HYBRIDD_SANITIZER"))
        opt.rss_bound_mib = RSS_BOUND_MIB + 512;
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (ch) {
        case 'c': opt.clients = parse_uint(optarg, "--clients", 1, 120); break;
        case 'j': opt.jobs = parse_uint(optarg, "--jobs", 1, 100000); break;
        case 'k': opt.inflight = parse_uint(optarg, "--inflight", 1, MAX_INFLIGHT); break;
        case 'o': opt.opencl = 1; break;
        case 'O': opt.opencl = 0; break;
        case 'H':
            if (setenv("HYBRIDD_TEST_BINARY", optarg, 1) != 0)
                return 2;
            break;
        case 's': opt.seconds = parse_uint(optarg, "--seconds", 1, 86400); break;
        case 'S': opt.seed = strtoull(optarg, NULL, 0); break;
        case 'r': opt.rss_bound_mib = parse_uint(optarg, "--rss-bound-mib", 1, 1u << 20); break;
        case 'J': opt.json = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    t_start_ns = hy_now_ns();
    deadline_ns = t_start_ns + (uint64_t)opt.seconds * 1000000000u;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&wd_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_t wd;
    if (pthread_create(&wd, NULL, watchdog, NULL) != 0) {
        fprintf(stderr, "loadtest: pthread_create failed\n");
        return 1;
    }

    /* One job id per job and warm-up job, plus room for ids the daemon might skip. */
    id_cap = (uint64_t)opt.clients * opt.jobs + 4096;
    id_accepted = calloc(id_cap, 1);
    id_finals = calloc(id_cap, 1);
    id_abandoned = calloc(id_cap, 1);
    id_request = calloc(id_cap, sizeof *id_request);
    clients = calloc(opt.clients, sizeof *clients);
    uint64_t *lat_all = calloc((size_t)opt.clients * opt.jobs + 1, sizeof *lat_all);
    if (!id_accepted || !id_finals || !id_abandoned || !id_request || !clients || !lat_all) {
        fprintf(stderr, "loadtest: out of memory\n");
        return 1;
    }
    pi_table_init();
    for (unsigned i = 0; i < NPI_SMALL; i++)
        (void)pi_hits(i);

    if (opt.opencl != 0)
        pocl_cache_for_run(); /* the daemon inherits POCL_CACHE_DIR */
    hyt_conf k = hyt_conf_default();
    k.opencl = opt.opencl != 0;
    k.native_threads = 2;
    k.locked_threads = 2;
    k.clients = 128;
    k.jobs_per_client = 8;
    k.queued_jobs = 1024;
    k.frame_bytes = 1u << 20;
    k.job_timeout_s = 300;
    k.drain_timeout_s = 10;
    char conf[2048];
    hyt_conf_text(&k, conf, sizeof conf);
    if (hyt_daemon_start(&D, conf, NULL) != 0) {
        fail("hybridd did not start with config:\n%s", conf);
        hyt_daemon_cleanup(&D);
        return 1;
    }

    hyt_client *ctl = hyt_connect_hello(D.sock);
    hy_msg_devices_reply *dv = calloc(1, sizeof *dv);
    if (!ctl || !dv || hyt_devices(ctl, dv) != 0) {
        fail("no DEVICES from hybridd");
        goto stop;
    }
    for (uint32_t i = 0; i < dv->ndevices && !use_cl; i++)
        if (dv->devices[i].flags & HY_DEV_USABLE) {
            use_cl = opt.opencl != 0;
            cl_device = (uint16_t)dv->devices[i].index;
            cl_pocl = (dv->devices[i].flags & HY_DEV_POCL_CPU) != 0;
            snprintf(cl_name, sizeof cl_name, "%s", dv->devices[i].name);
        }
    if (opt.opencl == 1 && !use_cl) {
        fail("--opencl: hybridd has no usable OpenCL device");
        goto stop;
    }
    free(dv);
    dv = NULL;
    if (warm_up(ctl) != 0)
        goto stop;
    hyt_close(ctl);
    ctl = NULL;
    int fds_idle = settled_fds(5000);
    long rss_idle = status_kib(D.pid, "VmRSS");
    mon.fds_peak = fds_idle;
    mon.rss_peak = rss_idle;

    /* The load. */
    pthread_t mt;
    if (pthread_create(&mt, NULL, monitor, NULL) != 0) {
        fail("pthread_create");
        goto stop;
    }
    unsigned ngarbage = (opt.clients + 99) / 100;
    uint64_t t0 = hy_now_ns();
    unsigned started = 0;
    for (unsigned i = 0; i < opt.clients; i++) {
        client *cl = &clients[i];
        cl->idx = i;
        /* Streams that no other seed or client shares (seed + 1 is not seed shifted). */
        uint64_t a = opt.seed, b = ((uint64_t)i + 1) * 0xd1b54a32d192ed03ull;
        cl->rng = splitmix(&a) ^ splitmix(&b);
        /* ~1% of clients send garbage twice, spread over the range. */
        cl->garbage_client = (i % (opt.clients / ngarbage)) == (opt.clients / ngarbage) / 2 &&
                             i / (opt.clients / ngarbage) < ngarbage;
        for (unsigned s = 0; s < MAX_INFLIGHT; s++)
            cl->slots[s].fd = -1;
        cl->lat_ns = lat_all + (size_t)i * opt.jobs;
        if (pthread_create(&cl->thread, NULL, client_main, cl) != 0) {
            fail("pthread_create for client %u", i);
            break;
        }
        started++;
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(clients[i].thread, NULL);
    uint64_t t1 = hy_now_ns();
    atomic_store(&mon.stop, true);
    pthread_join(mt, NULL);

    /* Totals. */
    unsigned results = 0, cancelled = 0, cancel_results = 0, cancels_sent = 0, cancel_einval = 0;
    unsigned bad_sent = 0, bad_answered = 0, abandoned = 0, reconnects = 0, accepted = 0;
    unsigned after_fatal = 0;
    unsigned submitted = 0, by_backend[HY_BACKEND_COUNT + 1] = {0}, pi_jobs = 0, sort_jobs = 0,
             memfd_jobs = 0;
    size_t nlat = 0;
    for (unsigned i = 0; i < opt.clients; i++) {
        const client *cl = &clients[i];
        results += cl->results;
        cancelled += cl->cancelled;
        cancel_results += cl->cancel_results;
        cancels_sent += cl->cancels_sent;
        cancel_einval += cl->cancel_einval;
        bad_sent += cl->bad_sent;
        bad_answered += cl->bad_answered;
        abandoned += cl->abandoned;
        reconnects += cl->reconnects;
        after_fatal += cl->after_fatal;
        accepted += cl->accepted;
        submitted += cl->submitted;
        pi_jobs += cl->pi_jobs;
        sort_jobs += cl->sort_jobs;
        memfd_jobs += cl->memfd_jobs;
        for (int b = 1; b <= 5; b++)
            by_backend[b] += cl->by_backend[b];
        memmove(lat_all + nlat, cl->lat_ns, cl->nlat * sizeof *lat_all);
        nlat += cl->nlat;
    }
    if (submitted != opt.clients * opt.jobs)
        fail("%u jobs submitted, want %u", submitted, opt.clients * opt.jobs);
    if (bad_answered != bad_sent)
        fail("%u of %u malformed requests answered", bad_answered, bad_sent);
    qsort(lat_all, nlat, sizeof *lat_all, cmp_u64);
    double p50 = nlat ? (double)lat_all[(nlat - 1) * 50 / 100] / 1e6 : 0;
    double p99 = nlat ? (double)lat_all[(nlat - 1) * 99 / 100] / 1e6 : 0;
    double pmax = nlat ? (double)lat_all[nlat - 1] / 1e6 : 0;

    /* Every job id: accepted once, one final answer (none owed for a garbage client's
     * abandoned jobs, which the daemon cancelled without a word). */
    uint64_t idmax = atomic_load(&id_max);
    unsigned ids = 0;
    for (uint64_t id = id_warm + 1; id <= idmax; id++) {
        unsigned a = atomic_load(&id_accepted[id]), f = atomic_load(&id_finals[id]);
        bool ab = atomic_load(&id_abandoned[id]);
        ids++;
        if (a != 1)
            fail("job %" PRIu64 " ACCEPTED %u times", id, a);
        else if (ab ? f > 1 : f != 1)
            fail("job %" PRIu64 " got %u final answers%s", id, f, ab ? " (abandoned)" : "");
    }
    if (ids != accepted)
        fail("job ids %" PRIu64 "..%" PRIu64 " (%u) but %u ACCEPTED", id_warm + 1, idmax, ids,
             accepted);

    /* The daemon's own count agrees, nothing is left queued or running, and its fds and
     * memory come back. */
    hy_msg_status_reply st = {0};
    ctl = hyt_connect_hello(D.sock);
    if (!ctl || hyt_wait_idle(ctl, &st, 30000) != 0) {
        fail("hybridd not idle 30 s after the load: %" PRIu64 " queued, %" PRIu64 " running",
             st.jobs_queued, st.jobs_running);
    } else {
        for (int i = 0; i < 250 && st.clients != 1; i++) {
            sleep_ms(20);
            if (hyt_status(ctl, &st) != 0)
                break;
        }
        if (st.clients != 1)
            fail("STATUS shows %u clients after the load, want 1 (this one)", st.clients);
        uint64_t total = st.jobs_done + st.jobs_failed + st.jobs_cancelled;
        uint64_t want = (uint64_t)warm_jobs + accepted;
        if (total != want)
            fail("STATUS: done %" PRIu64 " + failed %" PRIu64 " + cancelled %" PRIu64 " = %"
                 PRIu64 ", but %" PRIu64 " jobs were accepted", st.jobs_done, st.jobs_failed,
                 st.jobs_cancelled, total, want);
        uint64_t done_lo = (uint64_t)warm_jobs + results + cancel_results;
        if (st.jobs_done < done_lo || st.jobs_done > done_lo + abandoned)
            fail("STATUS: %" PRIu64 " done, the clients saw %" PRIu64 " results (+%u abandoned)",
                 st.jobs_done, done_lo, abandoned);
        if (st.jobs_cancelled < cancelled || st.jobs_cancelled > (uint64_t)cancelled + abandoned)
            fail("STATUS: %" PRIu64 " cancelled, the clients saw %u (+%u abandoned)",
                 st.jobs_cancelled, cancelled, abandoned);
        if (st.jobs_failed != 0)
            fail("STATUS: %" PRIu64 " jobs failed", st.jobs_failed);
    }
    hyt_close(ctl);
    ctl = NULL;
    int fds_after = settled_fds(5000);
    for (int i = 0; i < 100 && fds_after != fds_idle; i++) {
        sleep_ms(50);
        fds_after = count_fds(D.pid);
    }
    if (fds_after != fds_idle)
        fail("hybridd has %d fds after the load, %d when idle before it", fds_after, fds_idle);
    long rss_after = status_kib(D.pid, "VmRSS");
    long rss_hwm = status_kib(D.pid, "VmHWM");
    if (rss_after > rss_idle + (long)opt.rss_bound_mib * 1024)
        fail("hybridd's RSS %ld KiB after the load is above idle %ld KiB + %u MiB", rss_after,
             rss_idle, opt.rss_bound_mib);

    int code = hyt_daemon_stop(&D, 20000);
    if (code != 0)
        fail("hybridd exited %d after SIGTERM, want 0", code);

    double wall = (double)(t1 - t0) / 1e9;
    unsigned jobs = opt.clients * opt.jobs;
    bool ok = atomic_load(&failures) == 0;
    if (opt.json) {
        printf("{\"ok\":%s,\"clients\":%u,\"jobs_per_client\":%u,\"inflight\":%u,\"seed\":%" PRIu64
               ",\"opencl\":%s,\"device\":\"%s\",\"device_pocl_cpu\":%s,"
               "\"jobs\":%u,\"accepted\":%u,\"results\":%u,\"cancels_sent\":%u,"
               "\"cancelled\":%u,\"finished_before_cancel\":%u,\"cancel_einval\":%u,"
               "\"bad_requests\":%u,\"garbage_disconnects\":%u,\"abandoned\":%u,\"after_fatal\":%u,"
               "\"pi\":%u,\"sort\":%u,\"memfd\":%u,"
               "\"by_backend\":{\"serial\":%u,\"native\":%u,\"locked\":%u,\"opencl\":%u,"
               "\"process\":%u},"
               "\"wall_s\":%.3f,\"jobs_per_s\":%.1f,"
               "\"latency_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f},"
               "\"fds\":{\"idle\":%d,\"peak\":%d,\"after\":%d},"
               "\"rss_kib\":{\"idle\":%ld,\"peak\":%ld,\"after\":%ld,\"hwm\":%ld},"
               "\"status\":{\"done\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"cancelled\":%" PRIu64
               "},\"failures\":%u}\n",
               ok ? "true" : "false", opt.clients, opt.jobs, opt.inflight, opt.seed,
               use_cl ? "true" : "false", use_cl ? cl_name : "", cl_pocl ? "true" : "false", jobs,
               accepted, results, cancels_sent, cancelled, cancel_results, cancel_einval, bad_sent,
               reconnects, abandoned, after_fatal, pi_jobs, sort_jobs, memfd_jobs, by_backend[1],
               by_backend[2], by_backend[3], by_backend[4], by_backend[5], wall, jobs / wall, p50,
               p99, pmax,
               fds_idle, mon.fds_peak, fds_after, rss_idle, mon.rss_peak, rss_after, rss_hwm,
               st.jobs_done, st.jobs_failed, st.jobs_cancelled, atomic_load(&failures));
    } else {
        printf("loadtest: %u clients x %u jobs, %u in flight each; OpenCL %s%s%s%s\n",
               opt.clients, opt.jobs, opt.inflight, use_cl ? "on \"" : "off", use_cl ? cl_name : "",
               use_cl ? "\"" : "", use_cl && cl_pocl ? " (PoCL CPU)" : "");
        printf("  jobs: %u (pi %u, sort %u of which %u in memfds; serial %u, native %u, "
               "locked %u, opencl %u, process %u)\n", jobs, pi_jobs, sort_jobs, memfd_jobs,
               by_backend[1], by_backend[2], by_backend[3], by_backend[4], by_backend[5]);
        printf("  answers: %u results; %u cancels sent: %u cancelled, %u finished first (%u of "
               "those CANCELs answered EINVAL); %u malformed requests, each its ERROR; "
               "%u garbage disconnects, %u jobs abandoned with them (%u answers came after "
               "the fatal ERROR)\n",
               results, cancels_sent, cancelled, cancel_results, cancel_einval, bad_sent,
               reconnects, abandoned, after_fatal);
        printf("  wall %.2f s, %.0f jobs/s; latency (jobs not cancelled) p50 %.2f ms, p99 %.2f "
               "ms, max %.2f ms\n", wall, jobs / wall, p50, p99, pmax);
        printf("  hybridd fds: idle %d, peak %d, after %d\n", fds_idle, mon.fds_peak, fds_after);
        printf("  hybridd RSS: idle %.1f MiB, peak %.1f MiB, after %.1f MiB (bound: idle + %u "
               "MiB; high-water mark %.1f MiB)\n", rss_idle / 1024.0, mon.rss_peak / 1024.0,
               rss_after / 1024.0, opt.rss_bound_mib, rss_hwm / 1024.0);
        printf("  STATUS: done %" PRIu64 ", failed %" PRIu64 ", cancelled %" PRIu64
               " (warm-up %u); exit %d after SIGTERM\n", st.jobs_done, st.jobs_failed,
               st.jobs_cancelled, warm_jobs, code);
        printf("loadtest: %s\n", ok ? "PASS" : "FAIL");
    }
    goto end;

stop:
    hyt_close(ctl);
    free(dv);
    hyt_daemon_dump_log(&D);
    hyt_daemon_stop(&D, 20000);
end:
    pthread_mutex_lock(&wd_mu);
    wd_done = true;
    pthread_cond_signal(&wd_cv);
    pthread_mutex_unlock(&wd_mu);
    pthread_join(wd, NULL);
    if (atomic_load(&failures))
        print_log_tail(20);
    hyt_daemon_cleanup(&D);
    free(lat_all);
    free(clients);
    return atomic_load(&failures) ? 1 : 0;
}
