/* daemon/auto: a row's history cell and prediction, and `--backend auto`'s choice. The rule,
 * as docs/scheduling.md states it:
 *
 * The candidates are the configurations this daemon has resources for and admission would
 * take for this job: each backend with its whole pool (per transport for a process sort), each
 * served OpenCL device, serial — the "base" candidates — and, for the thread backends, the
 * smaller thread counts a comparison runs (1, 2, 4, ... below the pool).
 *
 * Explore (StarPU's calibration, made deterministic so that a test can hold it): while any
 * base candidate has no trusted prediction at this n, the job runs the one of them whose cell
 * at this n has seen the fewest runs (the dropped first run after a start counts), ties
 * broken by a fixed order, and is flagged EXPLORE. Breadth first, so every base candidate
 * gets its first runs before any gets its fifth: a slow one is learnt to be slow after one
 * kept sample, not after the six that make it trusted, where backends differ by 60x (native
 * against a GPU at 10^10 samples of pi). The order puts first what is likely fastest, so a
 * daemon that knows nothing runs native with its whole pool — auto's documented default.
 * Exploring is capped: a candidate whose few runs here took over EXPLORE_CAP times the
 * fastest time known (trusted or few) is not explored further; and serial, locked and
 * process, which native with its whole pool bounds from below, wait until native and every
 * device have a kept time, and are not explored when native's is already over the cap
 * (native_bounded).
 *
 * Exploit: once every base candidate is known, the fastest predicted of all the candidates
 * with a trusted prediction wins (ties: the first in the order). The smaller thread counts
 * are never explored for auto's sake — they are learnt from comparisons and explicit jobs —
 * but chosen when the history knows them to be faster (small arrays, where threads cost more
 * than they save). */
#include "auto.h"

#include <math.h>

#include "log.h"

/* The order that breaks auto's ties, between candidates explored as often and between equal
 * predictions: likely fastest first (native scales with the cores and pays nothing to start;
 * a device, for large jobs; workers, which pay for moving data), the baselines last. A
 * backend added to common/ must be placed here, or counted out below: hybrid is not a
 * candidate, because it holds the whole machine (every other job waits for it), which a user
 * asks for by name and the daemon does not choose on its own. */
static const int explore_order[] = {HY_BACKEND_NATIVE, HY_BACKEND_OPENCL, HY_BACKEND_PROCESS,
                                    HY_BACKEND_LOCKED, HY_BACKEND_SERIAL};
#define NOT_CANDIDATES 1 /* hybrid */
_Static_assert(sizeof explore_order / sizeof explore_order[0] + NOT_CANDIDATES ==
                   HY_BACKEND_COUNT,
               "auto's explore order names every backend but those it leaves out");

#define AUTO_MAX 128 /* candidates considered; more (huge pools, many devices) are left out */

typedef struct candidate {
    hy_row_spec r;
    unsigned device;    /* the OpenCL device; the job's own otherwise */
    bool base;          /* explored until its prediction is trusted */
    uint64_t predicted; /* hy_job_predict_row: 0 unknown */
    uint64_t few;       /* the median of its too few runs at this n; 0 none */
    unsigned runs;      /* runs its cell at this n has seen, the dropped first one too */
} candidate;

/* Exploring stops for a candidate whose few runs at this size already took more than this
 * many times the fastest time known for the job: it cannot win, and every further run to
 * learn it would cost as much (serial at 10^10 samples of pi, say). */
#define EXPLORE_CAP 4

typedef struct candidates {
    candidate c[AUTO_MAX];
    unsigned n;
} candidates;

bool hy_job_history_key(const hy_job_spec *sp, const hy_row_spec *p, unsigned threads,
                        hy_history_key *k)
{
    /* A span across MPI ranks (daemon/ranks.c) is not this daemon's time for its n. */
    if (sp->mode != HY_MODE_SPLIT || sp->ranks > 1 ||
        (p->backend == HY_BACKEND_LOCKED && sp->nogil != HY_NOGIL_DEFAULT))
        return false;
    const hy_backend_ops *b = hy_backend_get(p->backend);
    HY_ASSERT(b != NULL);
    bool device = b->device;
    *k = (hy_history_key){
        .work = sp->kind->work,
        .dtype = sp->kind->work == HY_JOB_SORT ? sp->dtype : 0,
        .backend = p->backend,
        .device = device ? sp->device : 0,
        .threads = device ? 0 : threads,
        /* A single job's row carries the spec's transport (pipe by default) on any backend;
         * it is part of the key only where the backend moves data through one. */
        .transport = b->plan & HY_PLAN_PER_TRANSPORT ? p->transport : 0,
    };
    return true;
}

uint64_t hy_job_predict_row(hy_history *h, const hy_job_spec *s, const hy_row_spec *r)
{
    hy_history_key k;
    hy_history_prediction p;
    if (!h || !hy_job_history_key(s, r, r->threads, &k))
        return 0;
    hy_history_predict(h, &k, s->n, &p);
    if (p.answer != HY_PREDICT_MEASURED && p.answer != HY_PREDICT_INTERPOLATED)
        return 0;
    return p.ns < 1 ? 1 : (uint64_t)llround(p.ns); /* known, however fast: never 0 */
}

/* The job as it would run on candidate c. */
static hy_job_spec as_candidate(const hy_job_spec *s, const candidate *c)
{
    hy_job_spec t = *s;
    t.backend = c->r.backend;
    t.threads = c->r.threads;
    t.transport = c->r.transport ? c->r.transport : HY_TRANSPORT_PIPE;
    t.device = c->device;
    t.backends = 1u << c->r.backend;
    return t;
}

/* Adds the candidate when admission would take it (the backend's own check; a device's
 * largest allocation for a sort's array) and the history keeps its cell, with its
 * prediction. */
static void add(const hy_backend_env *env, const hy_job_spec *s, candidates *cs, candidate c)
{
    if (cs->n == AUTO_MAX)
        return;
    const hy_backend_ops *b = hy_backend_get(c.r.backend);
    hy_job_spec t = as_candidate(s, &c);
    hy_history_key k;
    hy_error err = {0};
    if (b->check(env, &t, &c.r, &err) != 0 || !hy_job_history_key(&t, &c.r, c.r.threads, &k))
        return;
    if (b->device && c.device < env->ndevices && env->devrec[c.device].max_alloc > 0 &&
        s->array_bytes > env->devrec[c.device].max_alloc)
        return;
    c.predicted = hy_job_predict_row(env->e.history, &t, &c.r);
    hy_history_prediction p;
    if (env->e.history) {
        hy_history_predict(env->e.history, &k, s->n, &p);
        c.runs = p.runs;
        if (!c.predicted)
            c.few = p.answer == HY_PREDICT_FEW && p.ns >= 1 ? (uint64_t)llround(p.ns) : 0;
    }
    cs->c[cs->n++] = c;
}

/* One backend's candidates: per served device, or its pool (per transport), then the smaller
 * thread counts. */
static void add_backend(const hy_backend_env *env, const hy_job_spec *s, const hy_backend_ops *b,
                        candidates *cs)
{
    if (b->device) {
        for (unsigned i = 0; i < env->nowned; i++)
            add(env, s, cs, (candidate){.r = {.backend = b->id}, .device = env->owned[i],
                                        .base = true});
        return;
    }
    unsigned pool = b->pool ? b->pool(env) : b->threads;
    if (pool == 0)
        return;
    /* Pi moves no data to its workers: the transport makes no difference worth learning. */
    bool per_transport = (b->plan & HY_PLAN_PER_TRANSPORT) && s->kind->work == HY_JOB_SORT;
    int last = per_transport ? HY_TRANSPORT_SHM : HY_TRANSPORT_PIPE;
    for (int x = HY_TRANSPORT_PIPE; x <= last; x++) {
        int transport = b->plan & HY_PLAN_PER_TRANSPORT ? x : 0;
        add(env, s, cs, (candidate){.r = {b->id, pool, transport}, .device = s->device,
                                    .base = true});
        for (unsigned t = 1; (b->plan & HY_PLAN_PER_THREADS) && t < pool; t *= 2)
            add(env, s, cs, (candidate){.r = {b->id, t, transport}, .device = s->device});
    }
}

/* serial, locked and process run the CPU engine's own code on at most native's threads,
 * with something added (one thread, a lock, worker processes and their transport): on a job
 * large enough for exploring to cost anything, none is faster than native with its whole
 * pool. So native's kept time here bounds theirs from below: they wait until native and the
 * devices each have a kept time, and are not explored at all when native's is already over
 * EXPLORE_CAP times the fastest known. On a GPU
 * machine at 10^10 samples of pi (serial 10 s, native 1.2 s, the device 19 ms) that saves a
 * first run of 10 s each for serial and locked. */
static bool native_bounded(int backend)
{
    return backend == HY_BACKEND_SERIAL || backend == HY_BACKEND_LOCKED ||
           backend == HY_BACKEND_PROCESS;
}

/* Of the base candidates the history cannot predict, the one with the fewest runs at this n
 * (ties: the first in the explore order), leaving out those whose few runs here were already
 * over EXPLORE_CAP times the fastest time known (a trusted prediction or another's few runs);
 * else the fastest predicted. NULL only when there is no candidate (a capped one implies a
 * faster one that is known or still explored). */
static const candidate *pick(const candidates *cs, bool *explore)
{
    const candidate *best = NULL;
    uint64_t fastest = 0;
    bool native = false;   /* native with its whole pool is a candidate */
    uint64_t floor_ns = 0;  /* its kept time here (trusted or few); 0 none yet */
    bool pending = false;   /* a base candidate native does not bound has no kept time */
    for (unsigned i = 0; i < cs->n; i++) {
        const candidate *c = &cs->c[i];
        uint64_t t = c->predicted ? c->predicted : c->few;
        if (t && (!fastest || t < fastest))
            fastest = t;
        if (c->base && c->r.backend == HY_BACKEND_NATIVE) {
            native = true;
            floor_ns = t;
        }
        pending |= c->base && !t && !native_bounded(c->r.backend);
    }
    /* The bound is a premise, and a measurement beats it: once serial, locked or process has
     * been seen faster than native here (a job too small for threads), it holds no more. */
    for (unsigned i = 0; i < cs->n && floor_ns; i++) {
        const candidate *c = &cs->c[i];
        uint64_t t = c->predicted ? c->predicted : c->few;
        if (native_bounded(c->r.backend) && t && t < floor_ns)
            native = false;
    }
    for (unsigned i = 0; i < cs->n; i++) {
        const candidate *c = &cs->c[i];
        if (!c->base || c->predicted != 0 || (c->few && c->few / EXPLORE_CAP > fastest))
            continue;
        if (native && native_bounded(c->r.backend) && !c->few &&
            (pending || floor_ns / EXPLORE_CAP > fastest))
            continue;
        if (!best || c->runs < best->runs)
            best = c;
    }
    if (best) {
        *explore = true;
        return best;
    }
    *explore = false;
    for (unsigned i = 0; i < cs->n; i++)
        if (cs->c[i].predicted && (!best || cs->c[i].predicted < best->predicted))
            best = &cs->c[i];
    return best;
}

/* hy_auto_choose among the backends in `allowed` (a bit per backend). */
static int choose(const hy_backend_env *env, hy_job_spec *s, unsigned allowed, hy_error *err)
{
    HY_ASSERT(!s->kind->compare && s->backend == HY_BACKEND_AUTO);
    candidates cs = {.n = 0};
    for (size_t i = 0; i < sizeof explore_order / sizeof explore_order[0]; i++)
        if (allowed & 1u << explore_order[i])
            add_backend(env, s, hy_backend_get(explore_order[i]), &cs);
    bool explore;
    const candidate *c = pick(&cs, &explore);
    if (!c)
        return hy_error_set(err, HY_EBACKEND, "backend auto found no backend this daemon can "
                            "run this %s job on (see DEVICES)", s->kind->label);
    *s = as_candidate(s, c);
    s->auto_flags = HY_ROW_AUTO | (explore ? HY_ROW_EXPLORE : 0);
    s->auto_predicted_ns = explore ? 0 : c->predicted;
    hy_log(HY_LOG_DEBUG, "auto: %s n %llu -> %s, %u threads, transport %d, device %u (%s, "
           "%u candidates, predicted %llu ns)", s->kind->label, (unsigned long long)s->n,
           hy_backend_name(s->backend), s->threads, s->transport, s->device,
           explore ? "explore" : "fastest", cs.n, (unsigned long long)s->auto_predicted_ns);
    return 0;
}

int hy_auto_choose(const hy_backend_env *env, hy_job_spec *s, hy_error *err)
{
    return choose(env, s, ~0u, err);
}

int hy_auto_choose_span(const hy_backend_env *env, hy_job_spec *s, uint64_t share_n,
                        unsigned allowed, hy_error *err)
{
    /* Chosen as for one daemon's job of the share: that is what each rank runs, and the
     * history keeps no span's time (hy_job_history_key). */
    hy_job_spec t = *s;
    t.ranks = 1;
    t.n = share_n;
    if (t.array_bytes)
        t.array_bytes = (size_t)share_n * hy_dtype_size(t.dtype);
    int rc = choose(env, &t, allowed, err);
    if (rc)
        return rc;
    s->backend = t.backend;
    s->threads = t.threads;
    s->transport = t.transport;
    s->device = t.device;
    s->backends = t.backends;
    s->auto_flags = t.auto_flags;
    s->auto_predicted_ns = t.auto_predicted_ns; /* one rank's part's, as RESULT says */
    return 0;
}
