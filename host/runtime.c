/* host: the engine's threads — the persistent native pool, the locked runtime (a model of
 * CPython's GIL) and the worker API (ticks, native sections, barriers) that jobs run on.
 *
 * The locked runtime follows CPython's Python/ceval_gil.c ("new GIL", 3.2+):
 *
 * - One runtime lock (`gil.locked`, guarded by `gil.mutex`). A thread runs job code only
 *   while it holds it.
 * - The holder never gives the lock up on its own in the middle of work. At each tick
 *   boundary (a fixed chunk of work: the analogue of a bytecode boundary) it checks the
 *   "eval breaker", here the atomic `drop_request`.
 * - A thread that wants the lock waits on `gil.cond` for up to the switch interval. If the
 *   interval passes and the lock has not changed hands meanwhile (`switch_number` is the
 *   same), it sets `drop_request` and keeps waiting.
 * - The holder sees the request at its next tick and drops the lock. With forced switching
 *   it then waits on `switch_cond` until some other thread has taken the lock, so that the
 *   requester really runs next instead of the dropper winning the race to retake it (the
 *   convoy problem of the old GIL).
 * - A native section (numpy.sort, numba nogil=True) may release the lock for its duration;
 *   a blocking wait (our barrier, like a join in Python) always does.
 *
 * Each job gets the lock statistics of its own run: acquisitions, hand-offs between
 * threads, drop requests, time spent waiting and time spent holding, and the most threads
 * ever seen inside the lock at once (an invariant counter: anything but 1 is a bug).
 */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Progress is reported at most this often; ticks in between only add to a counter. */
#define PROGRESS_PERIOD_NS 2000000u

struct gil {
    pthread_mutex_t mutex;
    pthread_cond_t cond; /* signalled when the lock is dropped */
    bool locked;
    int last_holder;         /* worker id of the last thread to take it, -1 before any */
    uint64_t switch_number;  /* incremented on every take; waiters compare it */
    uint64_t interval_ns;
    pthread_mutex_t switch_mutex; /* forced switching: the dropper waits here for a taker */
    pthread_cond_t switch_cond;
    atomic_bool drop_request;
    atomic_uint inside;      /* threads between take and drop: must never exceed 1 */
    atomic_uint max_inside;
    /* Per-job counters, guarded by `mutex`, reset when a job starts. */
    uint64_t acquisitions, handoffs, drop_requests;
};

struct barrier {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    unsigned expected; /* threads still in the job; a finished task leaves the barrier */
    unsigned arrived;
    uint64_t generation;
    int result; /* what the last generation's threads return: 0 or HY_ECANCELED */
};

struct job {
    hy_task_fn fn;
    void *ctx;
    int backend;
    unsigned nthreads;
    bool nogil;
    hy_progress_fn progress;
    void *progress_ctx;
    uint64_t total_work;
    atomic_uint_fast64_t done_work;
    atomic_uint_fast64_t last_report_ns;
    atomic_bool cancelled;
    pthread_mutex_t progress_mutex; /* the callback is never run by two threads at once */
    struct barrier barrier;
    int first_error;                /* guarded by the pool mutex */
    uint64_t busy_ns[HY_HOST_MAX_THREADS];
    uint64_t lock_wait_ns, lock_hold_ns; /* guarded by the pool mutex */
};

struct hy_worker {
    struct job *job;
    struct gil *gil;
    unsigned id;
    bool holds_lock;
    uint64_t hold_since_ns;
    uint64_t wait_ns, hold_ns;
};

struct hy_host {
    unsigned nthreads;
    pthread_t *threads;
    unsigned started;
    pthread_mutex_t pool_mutex;
    pthread_cond_t pool_cond; /* new job or shutdown */
    pthread_cond_t done_cond; /* a job's last thread finished */
    uint64_t generation;
    struct job *job;
    unsigned running; /* threads of the current job not yet finished */
    bool stopping;
    pthread_mutex_t job_mutex; /* one job at a time per engine */
    uint32_t default_interval_us;
    struct gil gil;
    pthread_mutex_t scratch_mutex;
    void *scratch;
    size_t scratch_bytes;
};

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the locked runtime ---- */

static void gil_reset_stats(struct gil *g, uint32_t interval_us)
{
    pthread_mutex_lock(&g->mutex);
    g->interval_ns = (uint64_t)(interval_us ? interval_us : 1) * 1000u;
    g->acquisitions = g->handoffs = g->drop_requests = 0;
    g->last_holder = -1;
    atomic_store(&g->max_inside, 0);
    atomic_store(&g->drop_request, false);
    pthread_mutex_unlock(&g->mutex);
}

static void deadline_after(struct timespec *ts, uint64_t ns)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    uint64_t nsec = (uint64_t)ts->tv_nsec + ns;
    ts->tv_sec += (time_t)(nsec / 1000000000u);
    ts->tv_nsec = (long)(nsec % 1000000000u);
}

static void note_inside(struct gil *g)
{
    unsigned now = atomic_fetch_add(&g->inside, 1) + 1;
    unsigned max = atomic_load(&g->max_inside);
    while (now > max && !atomic_compare_exchange_weak(&g->max_inside, &max, now)) {
    }
}

static void take_gil(hy_worker *w)
{
    struct gil *g = w->gil;
    uint64_t t0 = hy_now_ns();
    pthread_mutex_lock(&g->mutex);
    while (g->locked) {
        uint64_t saved = g->switch_number;
        struct timespec deadline;
        deadline_after(&deadline, g->interval_ns);
        int rc = pthread_cond_timedwait(&g->cond, &g->mutex, &deadline);
        /* Only ask for a drop when a whole interval passed without any switch: a waiter
         * woken by a hand-off to someone else must give that thread its interval too. */
        if (rc == ETIMEDOUT && g->locked && g->switch_number == saved &&
            !atomic_load(&g->drop_request)) {
            atomic_store(&g->drop_request, true);
            g->drop_requests++;
        }
    }
    pthread_mutex_lock(&g->switch_mutex);
    g->locked = true;
    if (g->last_holder >= 0 && g->last_holder != (int)w->id)
        g->handoffs++;
    g->last_holder = (int)w->id;
    g->switch_number++;
    g->acquisitions++;
    pthread_cond_signal(&g->switch_cond);
    pthread_mutex_unlock(&g->switch_mutex);
    /* The request was for a switch, and this take is one (or nobody else is left). */
    atomic_store(&g->drop_request, false);
    pthread_mutex_unlock(&g->mutex);

    note_inside(g);
    w->holds_lock = true;
    w->hold_since_ns = hy_now_ns();
    w->wait_ns += w->hold_since_ns - t0;
}

/* `forced`: the drop answers a drop request, so wait until another thread has the lock. */
static void drop_gil(hy_worker *w, bool forced)
{
    struct gil *g = w->gil;
    w->hold_ns += hy_now_ns() - w->hold_since_ns;
    w->holds_lock = false;
    atomic_fetch_sub(&g->inside, 1);

    pthread_mutex_lock(&g->mutex);
    g->locked = false;
    pthread_cond_signal(&g->cond);
    pthread_mutex_unlock(&g->mutex);

    if (forced) {
        pthread_mutex_lock(&g->switch_mutex);
        uint64_t sn = g->switch_number;
        /* The requester is waiting in take_gil and only leaves by taking the lock, so
         * this wait ends. switch_number is read under switch_mutex, as take_gil writes
         * it under both mutexes. */
        while (g->last_holder == (int)w->id && g->switch_number == sn)
            pthread_cond_wait(&g->switch_cond, &g->switch_mutex);
        pthread_mutex_unlock(&g->switch_mutex);
    }
}

/* ---- the worker API ---- */

unsigned hy_worker_id(const hy_worker *w) { return w->id; }
unsigned hy_worker_count(const hy_worker *w) { return w->job->nthreads; }
bool hy_worker_nogil(const hy_worker *w) { return w->job->nogil; }

static void report_progress(struct job *j)
{
    uint64_t now = hy_now_ns();
    uint64_t last = atomic_load_explicit(&j->last_report_ns, memory_order_relaxed);
    if (now - last < PROGRESS_PERIOD_NS)
        return;
    /* One reporter at a time; a thread that finds the callback busy just goes on. */
    if (pthread_mutex_trylock(&j->progress_mutex) != 0)
        return;
    atomic_store_explicit(&j->last_report_ns, now, memory_order_relaxed);
    uint64_t done = atomic_load_explicit(&j->done_work, memory_order_relaxed);
    if (done > j->total_work)
        done = j->total_work;
    if (j->progress(j->progress_ctx, done, j->total_work) != 0)
        atomic_store(&j->cancelled, true);
    pthread_mutex_unlock(&j->progress_mutex);
}

int hy_worker_tick(hy_worker *w, uint64_t work)
{
    struct job *j = w->job;
    atomic_fetch_add_explicit(&j->done_work, work, memory_order_relaxed);
    if (w->holds_lock && atomic_load_explicit(&w->gil->drop_request, memory_order_relaxed)) {
        drop_gil(w, true);
        take_gil(w);
    }
    if (j->progress)
        report_progress(j);
    return atomic_load_explicit(&j->cancelled, memory_order_relaxed) ? HY_ECANCELED : 0;
}

void hy_worker_native_begin(hy_worker *w)
{
    if (w->holds_lock && w->job->nogil)
        drop_gil(w, false);
}

void hy_worker_native_end(hy_worker *w)
{
    if (w->job->backend == HY_BACKEND_LOCKED && w->job->nogil && !w->holds_lock)
        take_gil(w);
}

int hy_worker_barrier(hy_worker *w)
{
    struct job *j = w->job;
    struct barrier *b = &j->barrier;
    bool had_lock = w->holds_lock;
    if (had_lock)
        drop_gil(w, false);
    pthread_mutex_lock(&b->mutex);
    int result;
    if (++b->arrived == b->expected) {
        b->arrived = 0;
        b->generation++;
        b->result = atomic_load(&j->cancelled) ? HY_ECANCELED : 0;
        result = b->result;
        pthread_cond_broadcast(&b->cond);
    } else {
        uint64_t gen = b->generation;
        while (gen == b->generation)
            pthread_cond_wait(&b->cond, &b->mutex);
        /* The next generation cannot complete before this thread arrives again, so the
         * result is still this generation's. */
        result = b->result;
    }
    pthread_mutex_unlock(&b->mutex);
    if (had_lock)
        take_gil(w);
    return result;
}

/* A finished task leaves the barrier so that the others never wait for it. */
static void barrier_leave(struct job *j)
{
    struct barrier *b = &j->barrier;
    pthread_mutex_lock(&b->mutex);
    b->expected--;
    if (b->arrived > 0 && b->arrived == b->expected) {
        b->arrived = 0;
        b->generation++;
        b->result = atomic_load(&j->cancelled) ? HY_ECANCELED : 0;
        pthread_cond_broadcast(&b->cond);
    }
    pthread_mutex_unlock(&b->mutex);
}

/* Runs one thread's part of a job; used by pool threads and by the serial backend. */
/* Runs thread `id`'s part of j. Its CPU time goes to j->busy_ns[id] unless `own_clock` is
 * false: the serial backend runs on the caller's thread, which reads that clock outside the
 * timed span instead, as each read is a system call here (1.1 us on this VM: two of them were
 * most of a 10^3-element sort's fixed cost). */
static int run_part(hy_host *h, struct job *j, unsigned id, bool own_clock)
{
    hy_worker w = {.job = j, .gil = &h->gil, .id = id};
    uint64_t cpu0 = own_clock ? thread_cpu_ns() : 0;
    if (j->backend == HY_BACKEND_LOCKED)
        take_gil(&w);
    int rc = j->fn(&w, j->ctx);
    if (w.holds_lock)
        drop_gil(&w, false);
    /* One failed thread stops the others; it must say so before it leaves the barrier, or
     * the threads waiting there would be told everyone arrived. */
    if (rc != 0 && rc != HY_ECANCELED)
        atomic_store(&j->cancelled, true);
    barrier_leave(j);
    if (own_clock)
        j->busy_ns[id] = thread_cpu_ns() - cpu0;
    pthread_mutex_lock(&h->pool_mutex);
    j->lock_wait_ns += w.wait_ns;
    j->lock_hold_ns += w.hold_ns;
    if (rc != 0 && (j->first_error == 0 || j->first_error == HY_ECANCELED))
        j->first_error = rc;
    pthread_mutex_unlock(&h->pool_mutex);
    return rc;
}

static void *pool_main(void *arg);

/* Pins thread t to one CPU: 0 or an errno (EINVAL for a CPU that is not there). */
static int pin(pthread_t t, unsigned cpu)
{
    if (cpu >= CPU_SETSIZE)
        return EINVAL;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(t, sizeof set, &set);
}

struct thread_arg {
    hy_host *h;
    unsigned id;
};

static void *pool_main(void *arg)
{
    struct thread_arg ta = *(struct thread_arg *)arg;
    free(arg);
    hy_host *h = ta.h;
    uint64_t seen = 0;
    pthread_mutex_lock(&h->pool_mutex);
    for (;;) {
        while (!h->stopping && h->generation == seen)
            pthread_cond_wait(&h->pool_cond, &h->pool_mutex);
        if (h->stopping)
            break;
        seen = h->generation;
        struct job *j = h->job;
        /* A thread that wakes late may find the job finished (NULL) or one that does not
         * need it; either way it only waits for the next one. */
        if (!j || ta.id >= j->nthreads)
            continue;
        pthread_mutex_unlock(&h->pool_mutex);
        run_part(h, j, ta.id, true);
        pthread_mutex_lock(&h->pool_mutex);
        if (--h->running == 0)
            pthread_cond_signal(&h->done_cond);
    }
    pthread_mutex_unlock(&h->pool_mutex);
    return NULL;
}

/* ---- the engine ---- */

int hy_host_check_opts(const hy_host *h, const hy_run_opts *o, hy_error *err)
{
    if (!o)
        return hy_error_set(err, HY_EINVAL, "no run options given");
    if (o->backend == HY_BACKEND_OPENCL)
        return hy_error_set(err, HY_EBACKEND,
                            "the CPU engine does not run the opencl backend; use cl/");
    if (o->backend != HY_BACKEND_SERIAL && o->backend != HY_BACKEND_NATIVE &&
        o->backend != HY_BACKEND_LOCKED)
        return hy_error_set(err, HY_EBACKEND, "unknown backend %d (serial, native or locked)",
                            o->backend);
    if (o->threads == 0)
        return hy_error_set(err, HY_EINVAL, "threads must be at least 1");
    if (o->backend == HY_BACKEND_SERIAL && o->threads != 1)
        return hy_error_set(err, HY_EINVAL,
                            "the serial backend runs on exactly 1 thread, not %u", o->threads);
    if (o->threads > h->nthreads)
        return hy_error_set(err, HY_ELIMIT,
                            "%u threads requested but this engine has %u (at most %d)",
                            o->threads, h->nthreads, HY_HOST_MAX_THREADS);
    if (o->mode != 0 && o->mode != HY_MODE_SPLIT && o->mode != HY_MODE_REPLICATE)
        return hy_error_set(err, HY_EINVAL, "unknown mode %d (split or replicate)", o->mode);
    if (o->nogil != HY_NOGIL_DEFAULT && o->nogil != HY_NOGIL_RELEASE &&
        o->nogil != HY_NOGIL_HOLD)
        return hy_error_set(err, HY_EINVAL, "unknown nogil choice %d", o->nogil);
    return 0;
}

/* A finished job's statistics; the engine's job mutex is held (the lock's counters are the
 * job's until the next one starts). */
static void fill_stats(hy_host *h, const struct job *j, const hy_run_opts *o, uint64_t wall_ns,
                       hy_run_stats *st)
{
    memset(st, 0, sizeof *st);
    st->wall_ns = wall_ns;
    st->threads = o->threads;
    st->copies = 1;
    memcpy(st->busy_ns, j->busy_ns, sizeof(uint64_t) * o->threads);
    if (o->backend != HY_BACKEND_LOCKED)
        return;
    struct gil *g = &h->gil;
    pthread_mutex_lock(&g->mutex);
    st->lock_acquisitions = g->acquisitions;
    st->lock_handoffs = g->handoffs;
    st->lock_drop_requests = g->drop_requests;
    pthread_mutex_unlock(&g->mutex);
    st->lock_wait_ns = j->lock_wait_ns;
    st->lock_hold_ns = j->lock_hold_ns;
    st->lock_max_holders = atomic_load(&g->max_inside);
    st->nogil = j->nogil;
}

/* hy_host_run and hy_host_run_first: `first_only` runs thread 0's part alone, on the caller's
 * thread, as the serial backend runs its one. */
static int run_job(hy_host *h, const hy_run_opts *o, uint64_t total_work, hy_task_fn fn,
                   void *ctx, hy_run_stats *st, hy_error *err, bool first_only)
{
    if (!h || !fn)
        return hy_error_set(err, HY_EINVAL, "no engine or no task given");
    int rc = hy_host_check_opts(h, o, err);
    if (rc)
        return rc;

    struct job *j = calloc(1, sizeof *j);
    if (!j)
        return hy_error_set(err, HY_ENOMEM, "out of memory for a job");
    j->fn = fn;
    j->ctx = ctx;
    j->backend = o->backend;
    j->nthreads = o->threads;
    j->nogil = o->nogil == HY_NOGIL_RELEASE;
    j->progress = o->progress;
    j->progress_ctx = o->progress_ctx;
    j->total_work = total_work;
    pthread_mutex_init(&j->progress_mutex, NULL);
    pthread_mutex_init(&j->barrier.mutex, NULL);
    pthread_cond_init(&j->barrier.cond, NULL);
    j->barrier.expected = o->threads;

    pthread_mutex_lock(&h->job_mutex);
    if (o->backend == HY_BACKEND_LOCKED)
        gil_reset_stats(&h->gil, o->switch_interval_us ? o->switch_interval_us
                                                        : h->default_interval_us);
    bool on_caller = o->backend == HY_BACKEND_SERIAL || first_only;
    if (first_only) /* the other threads neither run nor wait at a barrier */
        j->barrier.expected = 1;
    uint64_t cpu0 = on_caller ? thread_cpu_ns() : 0;
    uint64_t t0 = hy_now_ns();
    atomic_store(&j->last_report_ns, t0);
    if (on_caller) {
        run_part(h, j, 0, false);
    } else {
        pthread_mutex_lock(&h->pool_mutex);
        h->job = j;
        h->running = o->threads;
        h->generation++;
        pthread_cond_broadcast(&h->pool_cond);
        while (h->running > 0)
            pthread_cond_wait(&h->done_cond, &h->pool_mutex);
        h->job = NULL;
        pthread_mutex_unlock(&h->pool_mutex);
    }
    uint64_t t1 = hy_now_ns();
    if (on_caller)
        j->busy_ns[0] = thread_cpu_ns() - cpu0;

    if (st)
        fill_stats(h, j, o, t1 - t0, st);
    pthread_mutex_unlock(&h->job_mutex);

    rc = j->first_error;
    if (rc == 0 && atomic_load(&j->cancelled))
        rc = HY_ECANCELED;
    if (rc == HY_ECANCELED)
        hy_error_set(err, rc, "the job was cancelled");
    else if (rc)
        hy_error_set(err, rc, "a worker thread failed: %s", hy_err_name(rc));
    pthread_mutex_destroy(&j->progress_mutex);
    pthread_mutex_destroy(&j->barrier.mutex);
    pthread_cond_destroy(&j->barrier.cond);
    free(j);
    return rc;
}

int hy_host_run(hy_host *h, const hy_run_opts *o, uint64_t total_work, hy_task_fn fn,
                void *ctx, hy_run_stats *st, hy_error *err)
{
    return run_job(h, o, total_work, fn, ctx, st, err, false);
}

int hy_host_run_first(hy_host *h, const hy_run_opts *o, uint64_t total_work, hy_task_fn fn,
                      void *ctx, hy_run_stats *st, hy_error *err)
{
    return run_job(h, o, total_work, fn, ctx, st, err, true);
}

unsigned hy_host_threads(const hy_host *h) { return h->nthreads; }

static int init_sync(hy_host *h)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return -1;
    /* The GIL's timed wait measures the switch interval on the monotonic clock. */
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int bad = pthread_mutex_init(&h->pool_mutex, NULL) | pthread_cond_init(&h->pool_cond, NULL) |
              pthread_cond_init(&h->done_cond, NULL) | pthread_mutex_init(&h->job_mutex, NULL) |
              pthread_mutex_init(&h->gil.mutex, NULL) | pthread_cond_init(&h->gil.cond, &ca) |
              pthread_mutex_init(&h->gil.switch_mutex, NULL) |
              pthread_cond_init(&h->gil.switch_cond, NULL) |
              pthread_mutex_init(&h->scratch_mutex, NULL);
    pthread_condattr_destroy(&ca);
    return bad ? -1 : 0;
}

int hy_host_create(const hy_host_config *cfg, hy_host **out, hy_error *err)
{
    if (!out)
        return hy_error_set(err, HY_EINVAL, "no place for the engine given");
    *out = NULL;
    unsigned n = cfg ? cfg->threads : 0;
    if (n == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (unsigned)cpus : 1;
        if (n > HY_HOST_MAX_THREADS)
            n = HY_HOST_MAX_THREADS;
    }
    if (n > HY_HOST_MAX_THREADS)
        return hy_error_set(err, HY_ELIMIT, "%u threads requested; the engine allows at most %d",
                            n, HY_HOST_MAX_THREADS);
    uint32_t interval = cfg && cfg->switch_interval_us ? cfg->switch_interval_us
                                                       : HY_HOST_DEFAULT_SWITCH_US;

    hy_host *h = calloc(1, sizeof *h);
    if (!h)
        return hy_error_set(err, HY_ENOMEM, "out of memory for the engine");
    h->nthreads = n;
    h->default_interval_us = interval;
    h->gil.last_holder = -1;
    h->gil.interval_ns = (uint64_t)interval * 1000u;
    if (init_sync(h) != 0) {
        free(h);
        return hy_error_set(err, HY_ESYS, "could not initialise the engine's locks");
    }
    h->threads = calloc(n, sizeof *h->threads);
    if (!h->threads) {
        hy_host_destroy(h);
        return hy_error_set(err, HY_ENOMEM, "out of memory for %u threads", n);
    }
    for (unsigned i = 0; i < n; i++) {
        struct thread_arg *ta = malloc(sizeof *ta);
        if (!ta) {
            hy_host_destroy(h);
            return hy_error_set(err, HY_ENOMEM, "out of memory for thread %u", i);
        }
        ta->h = h;
        ta->id = i;
        int rc = pthread_create(&h->threads[i], NULL, pool_main, ta);
        if (rc != 0) {
            free(ta);
            hy_host_destroy(h);
            return hy_error_set(err, HY_ESYS, "pthread_create for worker %u: %s", i,
                                strerror(rc));
        }
        h->started++;
        if (cfg && cfg->ncpus && (rc = pin(h->threads[i], cfg->cpus[i % cfg->ncpus])) != 0) {
            hy_host_destroy(h);
            return hy_error_set(err, HY_ESYS, "pinning worker %u to CPU %u: %s", i,
                                cfg->cpus[i % cfg->ncpus], strerror(rc));
        }
    }
    *out = h;
    return 0;
}

void hy_host_destroy(hy_host *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->pool_mutex);
    h->stopping = true;
    pthread_cond_broadcast(&h->pool_cond);
    pthread_mutex_unlock(&h->pool_mutex);
    for (unsigned i = 0; i < h->started; i++)
        pthread_join(h->threads[i], NULL);
    free(h->threads);
    free(h->scratch);
    pthread_mutex_destroy(&h->pool_mutex);
    pthread_cond_destroy(&h->pool_cond);
    pthread_cond_destroy(&h->done_cond);
    pthread_mutex_destroy(&h->job_mutex);
    pthread_mutex_destroy(&h->gil.mutex);
    pthread_cond_destroy(&h->gil.cond);
    pthread_mutex_destroy(&h->gil.switch_mutex);
    pthread_cond_destroy(&h->gil.switch_cond);
    pthread_mutex_destroy(&h->scratch_mutex);
    free(h);
}

/* ---- scratch memory ---- */

void *hy_host_scratch_get(hy_host *h, size_t bytes)
{
    void *p = NULL;
    pthread_mutex_lock(&h->scratch_mutex);
    if (h->scratch && h->scratch_bytes >= bytes) {
        p = h->scratch;
        h->scratch = NULL;
        h->scratch_bytes = 0;
    }
    pthread_mutex_unlock(&h->scratch_mutex);
    if (p)
        return p;
    /* Huge pages (madvise mode) cut the TLB misses of a radix scatter. */
    return hy_huge_alloc(bytes, NULL);
}

void hy_host_scratch_put(hy_host *h, void *p, size_t bytes)
{
    if (!p)
        return;
    pthread_mutex_lock(&h->scratch_mutex);
    /* Keep the larger block; the other goes back to the system. */
    if (bytes >= h->scratch_bytes) {
        void *old = h->scratch;
        h->scratch = p;
        h->scratch_bytes = bytes;
        p = old;
    }
    pthread_mutex_unlock(&h->scratch_mutex);
    free(p);
}

void hy_host_prefault(hy_host *h, size_t bytes)
{
    if (!h || bytes == 0)
        return;
    volatile char *p = hy_host_scratch_get(h, bytes);
    if (!p)
        return;
    long page = sysconf(_SC_PAGESIZE);
    size_t step = page > 0 ? (size_t)page : 4096;
    for (size_t at = 0; at < bytes; at += step)
        p[at] = 0;
    hy_host_scratch_put(h, (void *)p, bytes);
}

void hy_host_trim(hy_host *h, size_t keep)
{
    if (!h)
        return;
    void *p = NULL;
    pthread_mutex_lock(&h->scratch_mutex);
    if (h->scratch && h->scratch_bytes > keep) {
        p = h->scratch;
        h->scratch = NULL;
        h->scratch_bytes = 0;
    }
    pthread_mutex_unlock(&h->scratch_mutex);
    free(p);
}
