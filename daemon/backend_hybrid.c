/* daemon/backend_hybrid: hybrid — one job across the native pool and the OpenCL devices at
 * once (docs/scheduling.md, "Backend hybrid").
 *
 * pi: the sample stream [0, n) is handed out in guided chunks to whichever participant is
 * free: each takes half of its share of what is left (its share from its own rate so far),
 * never less than about 1 ms of its work, so the chunks shrink towards the end and a side
 * that ran cold at first is not given a split computed from that run; a side far faster than
 * the rest runs the job alone (hy_hybrid_pi_chunk). Sample i is counter i
 * of Philox wherever it is counted, so the hits are the same integer as on every backend.
 *
 * sort: the pool's own sort makes its one pass over memory, putting every key in one of its
 * buckets, then hands its highest buckets to the devices (hy_host_sort_shed): one key range
 * each, in proportion to the rates earlier hybrid sorts of this element size measured (even
 * at first), while it finishes its own buckets. Each sorts its range where it lies, with no
 * merge, so the bytes are every backend's, and the pool's keys cross memory no more often
 * than in its sort alone. Once the rates are known, the plan with the least predicted time
 * runs: the pool alone, the fastest device alone, or a split when it beats both by 5% (the
 * first two flagged NO_GAIN; hy_hybrid_sort_plan).
 *
 * The job holds the whole machine, as a comparison does: its participants are the CPU pool
 * and every device this daemon serves. OpenCL CPU devices (PoCL) run on the cores the pool
 * uses, so they take part only when the configuration says they have cores of their own
 * (opencl.hybrid_cpu_devices); otherwise the row says they were left out. */
#include "backend.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "auto.h"
#include "log.h"

/* The least chunk a participant takes, in its own time: short enough to end together, long
 * enough that a chunk's fixed cost (an OpenCL launch, waking the pool) stays small. */
#define CHUNK_FLOOR_NS 1000000.0
/* A participant's first chunk, before it has a rate: small, so a cold start costs little. */
#define FIRST_CHUNK (UINT64_C(1) << 20)

struct hyb;

/* One participant: the pool (dev -1) or one OpenCL device. */
struct side {
    struct hyb *h;
    int dev;
    uint64_t items, busy_ns, hits, reported;
    double learn; /* the rate to remember when not items / busy_ns (a shed sort's pool) */
    uint64_t span; /* the items of its current chunk or range: its progress is scaled to it */
    double prior; /* items per ns in the last hybrid run of the same work; 0 unknown */
    uint64_t last; /* pi: its previous chunk */
    unsigned chunks;
    hy_cl_timing cl;
    int rc;
    hy_error err;
};

/* A run shared by its participants. `mu` guards next, done and the progress callback. */
struct hyb {
    pthread_mutex_t mu;
    const hy_engines *e;
    const hy_job_spec *s;
    const hy_row_spec *r;
    const hy_run_io *io;
    uint64_t next, n, done;
    unsigned threads; /* the pool's: the row's, or the whole pool when it names none */
    void *array;  /* sort: the sections' place */
    size_t bounds[HY_HOST_CUT_MAX_PARTS + 1];
    bool split;      /* sort: the pool and the devices at once, not one of them alone */
    double fin_rate; /* sort: the pool's finishing rate a split plans its shares with */
    /* sort: set once the pool has handed the devices their sections (bounds), under mu */
    pthread_cond_t shed_cv;
    bool shed;
    uint64_t t0, shed_ns; /* the pool's start, and when it shed (from t0) */
    atomic_int stop; /* a participant failed or the job was cancelled */
    unsigned nside;
    struct side side[1 + HY_HYBRID_DEVICES_MAX];
};

/* Every participant's progress goes through here, one at a time, as the runner expects;
 * a cancel (or another participant's failure) stops them all at their next boundary. */
static int side_progress(void *ctx, uint64_t done, uint64_t total)
{
    struct side *sd = ctx;
    struct hyb *h = sd->h;
    if (atomic_load(&h->stop))
        return 1;
    /* Engines count in their own units (a sort: passes over its keys): in items here. */
    uint64_t items = total ? (uint64_t)((double)done / (double)total * (double)sd->span) : 0;
    pthread_mutex_lock(&h->mu);
    h->done += items > sd->reported ? items - sd->reported : 0;
    sd->reported = items;
    int c = h->io->progress ? h->io->progress(h->io->progress_ctx, h->done, h->n) : 0;
    pthread_mutex_unlock(&h->mu);
    if (c)
        atomic_store(&h->stop, 1);
    return c;
}

/* Items per ns a side has done so far in this run, else what the last run of the same work
 * measured (sd->prior), else 0. */
static double rate_of(const struct side *sd)
{
    return sd->busy_ns ? (double)sd->items / (double)sd->busy_ns : sd->prior;
}

static double side_rate(const hy_hybrid_side *s)
{
    return s->rate > 0 ? s->rate : s->prior;
}

/* The side holding a dominant share by the rates the last hybrid pi measured, or nside (a
 * rate from this run's first chunks may be a cold one: not trusted to give away the job). */
static unsigned dominant(const hy_hybrid_side *side, unsigned nside)
{
    double sum = 0;
    unsigned top = 0;
    for (unsigned i = 0; i < nside; i++) {
        if (side[i].prior <= 0)
            return nside;
        sum += side[i].prior;
        top = side[i].prior > side[top].prior ? i : top;
    }
    return side[top].prior / sum >= HY_HYBRID_DOMINANT ? top : nside;
}

/* The chunk rule (docs/scheduling.md, "pi: guided chunks"), in order:
 * - a dominant side (HY_HYBRID_DOMINANT of the last run's rates) runs the job alone: the
 *   others could save it at most 3%, and on an NVIDIA H200 machine beside 16 busy cores the
 *   GPU lost that much (19.3 ms against 18.75 alone for pi 10^10 with its share 98.4%);
 * - a side with no rate takes a small first chunk, at most ~1 ms of the fastest known side's
 *   work, so a slow side that has not measured itself cannot take a large part;
 * - while another side has no rate, a side takes its floor: a share computed against a guess
 *   gave a 16-core pool 770M samples beside an unmeasured GPU 60 times as fast;
 * - otherwise guided: half its share of what is left, at least its floor; until every side has
 *   a rate from an earlier run, at most twice its previous chunk, so one side's cold first
 *   chunk does not hand the other a large share. */
uint64_t hy_hybrid_pi_chunk(const hy_hybrid_side *side, unsigned nside, unsigned me,
                            uint64_t left)
{
    if (left == 0)
        return 0;
    if (nside <= 1)
        return left; /* the pool alone: one call, as the native backend makes */
    unsigned top = dominant(side, nside);
    if (top < nside)
        return me == top ? left : 0;
    double mine = side_rate(&side[me]), all = 0, fastest = 0, c;
    bool unknown = false, priors = true;
    for (unsigned i = 0; i < nside; i++) {
        double r = side_rate(&side[i]);
        unknown = unknown || r <= 0;
        priors = priors && side[i].prior > 0;
        all += r;
        fastest = r > fastest ? r : fastest;
    }
    if (mine <= 0) {
        c = (double)FIRST_CHUNK;
        if (fastest > 0 && fastest * CHUNK_FLOOR_NS < c)
            c = fastest * CHUNK_FLOOR_NS;
    } else if (unknown) {
        c = mine * CHUNK_FLOOR_NS;
    } else {
        double guided = (double)left * mine / all / 2, floor = mine * CHUNK_FLOOR_NS;
        c = guided > floor ? guided : floor;
        if (!priors && side[me].last && c > 2.0 * (double)side[me].last)
            c = 2.0 * (double)side[me].last;
    }
    return c < 1 ? 1 : c >= (double)left ? left : (uint64_t)c;
}

/* The next chunk for `sd` by hy_hybrid_pi_chunk, from every side's rates under mu; 0 when
 * the stream is all handed out. */
static uint64_t take_chunk(struct hyb *h, struct side *sd, uint64_t *first)
{
    hy_hybrid_side in[1 + HY_HYBRID_DEVICES_MAX];
    pthread_mutex_lock(&h->mu);
    for (unsigned i = 0; i < h->nside; i++) {
        const struct side *o = &h->side[i];
        in[i] = (hy_hybrid_side){.prior = o->prior, .last = o->last,
                                 .rate = o->busy_ns ? (double)o->items / (double)o->busy_ns
                                                    : 0};
    }
    uint64_t c = hy_hybrid_pi_chunk(in, h->nside, (unsigned)(sd - h->side), h->n - h->next);
    *first = h->next;
    h->next += c;
    sd->last = c ? c : sd->last;
    pthread_mutex_unlock(&h->mu);
    return c;
}

static int pi_chunk(struct side *sd, uint64_t first, uint64_t count, uint64_t *hits)
{
    struct hyb *h = sd->h;
    first += h->s->first; /* a part of a job across MPI ranks counts its window */
    if (sd->dev < 0) {
        hy_run_opts ro = {.backend = HY_BACKEND_NATIVE, .threads = h->threads,
                          .mode = HY_MODE_SPLIT, .progress = side_progress, .progress_ctx = sd};
        hy_pi_result pr;
        int rc = hy_host_pi_part(h->e->host, h->s->seed, first, count, &ro, &pr, &sd->err);
        *hits = pr.hits;
        return rc;
    }
    hy_cl_opts co = {.device = (unsigned)sd->dev, .first = first, .progress = side_progress,
                     .progress_ctx = sd};
    hy_cl_pi_result cr;
    int rc = hy_cl_pi(h->e->cl, &co, h->s->seed, count, &cr, &sd->err);
    if (rc == 0)
        hy_cl_timing_add(&sd->cl, &cr.timing);
    *hits = cr.hits;
    return rc;
}

static void *pi_side(void *arg)
{
    struct side *sd = arg;
    struct hyb *h = sd->h;
    uint64_t first, count;
    while (!atomic_load(&h->stop) && (count = take_chunk(h, sd, &first)) > 0) {
        uint64_t t0 = hy_now_ns(), hits = 0;
        sd->reported = 0;
        sd->span = count;
        sd->rc = pi_chunk(sd, first, count, &hits);
        if (sd->rc) {
            atomic_store(&h->stop, 1);
            break;
        }
        /* The chunk's end is its last progress report's: count it all now. */
        side_progress(sd, count, count);
        uint64_t took = hy_now_ns() - t0;
        pthread_mutex_lock(&h->mu); /* take_chunk reads every side's rate under mu */
        sd->busy_ns += took;
        sd->items += count;
        sd->hits += hits;
        sd->chunks++;
        pthread_mutex_unlock(&h->mu);
    }
    return NULL;
}

static void *sort_side(void *arg);

/* Runs every participant but the pool on a thread of its own and the pool on this one. */
static void run_sides(struct hyb *h, void *(*fn)(void *))
{
    pthread_t tid[HY_HYBRID_DEVICES_MAX];
    bool started[HY_HYBRID_DEVICES_MAX] = {false};
    for (unsigned i = 1; i < h->nside; i++) {
        int prc = pthread_create(&tid[i - 1], NULL, fn, &h->side[i]);
        if (prc != 0) {
            /* The pool does that device's part of a pi job; a sort needs every range done. */
            hy_log(HY_LOG_WARNING, "hybrid: cannot start a thread for OpenCL device %d: %s",
                   h->side[i].dev, strerror(prc));
            if (fn == sort_side) {
                h->side[i].rc = hy_error_set(&h->side[i].err, HY_ESYS, "cannot start its "
                                             "thread: %s", strerror(prc));
                atomic_store(&h->stop, 1);
            }
            /* Unknown, it cannot be dominant: no side leaves the job to it. */
            pthread_mutex_lock(&h->mu);
            h->side[i].prior = 0;
            pthread_mutex_unlock(&h->mu);
            continue;
        }
        started[i - 1] = true;
    }
    fn(&h->side[0]);
    for (unsigned i = 1; i < h->nside; i++)
        if (started[i - 1])
            pthread_join(tid[i - 1], NULL);
}

/* The job's answer from its participants: the first failure, named, or a cancel. */
static int outcome(struct hyb *h, hy_error *err)
{
    for (unsigned i = 0; i < h->nside; i++) {
        const struct side *sd = &h->side[i];
        if (sd->rc && sd->rc != HY_ECANCELED) {
            if (sd->dev < 0)
                return hy_error_set(err, sd->rc, "hybrid: the native pool failed (%s); the "
                                    "devices were stopped", sd->err.msg);
            return hy_error_set(err, sd->rc, "hybrid: OpenCL device %d failed (%s); the other "
                                "participants were stopped", sd->dev, sd->err.msg);
        }
    }
    if (atomic_load(&h->stop))
        return hy_error_set(err, HY_ECANCELED, "hybrid job cancelled after %llu of %llu",
                            (unsigned long long)h->done, (unsigned long long)h->n);
    return 0;
}

/* The figures of a run: each side's share and time, the devices' transfers summed, and the
 * balance efficiency: the throughput achieved over the sum of the participants' own. */
static void take_figures(const struct hyb *h, uint64_t wall_ns, hy_run_once *o)
{
    double sum_rates = 0;
    unsigned worked = 0;
    o->wall_ns = wall_ns;
    o->threads = h->threads;
    o->copies = 1;
    o->hyb = (hy_hybrid_stats){.shared_cores = h->e->hybrid_skipped_cpu,
                               .devices_used = h->nside - 1};
    for (unsigned i = 0; i < h->nside; i++) {
        const struct side *sd = &h->side[i];
        if (sd->busy_ns) { /* a side that did nothing has no throughput in this run */
            sum_rates += rate_of(sd);
            worked++;
        }
        if (sd->dev < 0) {
            o->hyb.cpu_items = sd->items;
            o->hyb.cpu_busy_ns = sd->busy_ns;
            o->hyb.cpu_chunks = sd->chunks;
            continue;
        }
        if (sd->busy_ns > o->hyb.dev_busy_ns)
            o->hyb.dev_busy_ns = sd->busy_ns;
        o->hyb.dev_chunks += sd->chunks;
        hy_cl_timing_add(&o->cl, &sd->cl);
    }
    double achieved = wall_ns ? (double)h->n / (double)wall_ns : 0;
    if (worked > 1 && sum_rates > 0) {
        double eff = achieved / sum_rates;
        o->hyb.balance_ppm = (uint32_t)(eff > 4 ? 4e6 : eff * 1e6);
    }
}

static void hyb_init(struct hyb *h, const hy_engines *e, const hy_job_spec *s,
                     const hy_row_spec *r, const hy_run_io *io)
{
    *h = (struct hyb){.e = e, .s = s, .r = r, .io = io, .n = s->n,
                      .threads = r->threads ? r->threads : hy_host_threads(e->host)};
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->shed_cv, NULL);
    h->side[0] = (struct side){.h = h, .dev = -1};
    h->nside = 1;
    for (unsigned i = 0; i < e->nhybrid && e->cl; i++)
        h->side[h->nside++] = (struct side){.h = h, .dev = (int)e->hybrid_dev[i]};
}

/* ---- what earlier hybrid runs measured ---- */

/* Items per ns each participant slot (0 the pool, k device k - 1 of the hybrid list) did in
 * the last hybrid run of each kind of work, and the rate of a split sort's first pass (keys
 * over the time until the pool shed): a run starts from them,
 * so a split is right from the second run on. 0 until measured. */
enum { WORK_PI, WORK_SORT32, WORK_SORT64, WORK_KINDS };
static pthread_mutex_t learned_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    double side[1 + HY_HYBRID_DEVICES_MAX];
    unsigned runs[1 + HY_HYBRID_DEVICES_MAX]; /* the runs that measured each slot */
    double pass;
} learned[WORK_KINDS];

static int work_of(const hy_job_spec *s)
{
    if (s->kind->work == HY_JOB_PI)
        return WORK_PI;
    return hy_dtype_size(s->dtype) == 8 ? WORK_SORT64 : WORK_SORT32;
}

/* Gives each side its last measured rate (and runs the runs that measured it, when not
 * NULL); returns the last pass rate. */
static double recall(struct hyb *h, int work, unsigned *runs)
{
    pthread_mutex_lock(&learned_mu);
    for (unsigned i = 0; i < h->nside; i++) {
        h->side[i].prior = learned[work].side[i];
        if (runs)
            runs[i] = learned[work].runs[i];
    }
    double pass = learned[work].pass;
    pthread_mutex_unlock(&learned_mu);
    return pass;
}

/* Keeps the rates this run measured (a side that did nothing keeps its old one). */
static void remember(const struct hyb *h, int work, double pass_rate)
{
    pthread_mutex_lock(&learned_mu);
    for (unsigned i = 0; i < h->nside; i++)
        if (h->side[i].items > 0 && h->side[i].busy_ns > 0) {
            learned[work].side[i] = h->side[i].learn > 0 ? h->side[i].learn
                                    : (double)h->side[i].items / (double)h->side[i].busy_ns;
            learned[work].runs[i]++;
        }
    if (pass_rate > 0)
        learned[work].pass = pass_rate;
    pthread_mutex_unlock(&learned_mu);
}

static int hybrid_pi(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                     const hy_run_io *io, hy_run_once *o, hy_error *err)
{
    struct hyb *h = malloc(sizeof *h);
    if (!h)
        return hy_error_set(err, HY_ENOMEM, "no memory for a hybrid job");
    hyb_init(h, e, s, r, io);
    recall(h, WORK_PI, NULL);
    uint64_t t0 = hy_now_ns();
    run_sides(h, pi_side);
    uint64_t wall = hy_now_ns() - t0;
    int rc = outcome(h, err);
    if (rc == 0) {
        uint64_t hits = 0;
        for (unsigned i = 0; i < h->nside; i++)
            hits += h->side[i].hits;
        /* The same arithmetic as the engines', so the estimate's bits match theirs too. */
        double p = (double)hits / (double)s->n;
        o->hits = hits;
        o->estimate = 4.0 * p;
        o->std_error = 4.0 * sqrt(p * (1.0 - p) / (double)s->n);
        take_figures(h, wall, o);
        remember(h, WORK_PI, 0);
    }
    pthread_cond_destroy(&h->shed_cv);
    pthread_mutex_destroy(&h->mu);
    free(h);
    return rc;
}

/* ---- sort: key ranges in proportion to measured rates ---- */

/* The pool's shed (hy_host_sort_shed's ready, on one of its threads): the devices' sections
 * now hold their elements. */
static void on_shed(void *ctx, const size_t *bounds)
{
    struct hyb *h = ctx;
    pthread_mutex_lock(&h->mu);
    memcpy(h->bounds, bounds, (h->nside + 1) * sizeof *bounds);
    h->shed_ns = hy_now_ns() - h->t0;
    h->shed = true;
    pthread_cond_broadcast(&h->shed_cv);
    pthread_mutex_unlock(&h->mu);
}

/* The pool's part of a split: its own sort of the whole array, which sheds the devices'
 * sections after its first pass and finishes the rest. Its rate to remember is the one it
 * would sort all n keys at alone: the pass's time per key for n keys plus its finishing
 * time per key of its own. */
static void pool_shed(struct hyb *h, struct side *sd)
{
    double share[1 + HY_HYBRID_DEVICES_MAX];
    bool known = true;
    for (unsigned i = 0; i < h->nside; i++)
        known = known && rate_of(&h->side[i]) > 0;
    for (unsigned i = 0; i < h->nside; i++)
        share[i] = known ? (i == 0 ? h->fin_rate : rate_of(&h->side[i])) : 1.0;
    hy_sort_shed shed = {.parts = h->nside - 1, .share = share, .ready = on_shed, .ctx = h};
    hy_run_opts ro = {.backend = HY_BACKEND_NATIVE, .threads = h->threads,
                      .mode = HY_MODE_SPLIT, .progress = side_progress, .progress_ctx = sd};
    size_t bounds[HY_HOST_CUT_MAX_PARTS + 1];
    for (unsigned i = 0; i <= h->nside; i++)
        bounds[i] = i == 0 ? 0 : (size_t)h->n;
    hy_sort_result sr;
    /* The job's progress is the pool's: its engine counts a shed key done once moved out
     * (the devices report none, so the sum never passes n). */
    sd->span = h->n;
    h->t0 = hy_now_ns();
    sd->rc = hy_host_sort_shed(h->e->host, h->s->dtype, h->array, (size_t)h->n, &ro, &shed,
                               bounds, &sr, &sd->err);
    pthread_mutex_lock(&h->mu);
    bool told = h->shed;
    pthread_mutex_unlock(&h->mu);
    if (!told) /* refused before it ran: the devices must not wait on it */
        on_shed(h, bounds);
    if (sd->rc) {
        atomic_store(&h->stop, 1);
        return;
    }
    sd->busy_ns = hy_now_ns() - h->t0;
    sd->items = h->bounds[1];
    sd->chunks = 1;
    uint64_t fin_ns = sd->busy_ns > h->shed_ns ? sd->busy_ns - h->shed_ns : 0;
    if (sd->items < h->n && sd->items > 0 && fin_ns > 0)
        sd->learn = 1.0 / ((double)h->shed_ns / (double)h->n +
                           (double)fin_ns / (double)sd->items);
}

/* Sorts participant sd's key range where it lies: the pool sheds the devices' ranges from
 * its own sort (pool_shed); a device waits for that, then sorts its range. Alone (sort_alone)
 * the one participant's range is the whole array. */
static void *sort_side(void *arg)
{
    struct side *sd = arg;
    struct hyb *h = sd->h;
    unsigned k = (unsigned)(sd - h->side);
    if (sd->dev < 0 && h->split) {
        pool_shed(h, sd);
        return NULL;
    }
    pthread_mutex_lock(&h->mu);
    while (!h->shed)
        pthread_cond_wait(&h->shed_cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
    size_t size = hy_dtype_size(h->s->dtype), lo = h->bounds[k], cnt = h->bounds[k + 1] - lo;
    if (cnt == 0 || atomic_load(&h->stop))
        return NULL;
    uint64_t t0 = hy_now_ns();
    sd->span = h->split ? 0 : cnt; /* beside the pool, the pool's progress is the job's */
    char *at = (char *)h->array + lo * size;
    if (sd->dev < 0) {
        hy_run_opts ro = {.backend = HY_BACKEND_NATIVE, .threads = h->threads,
                          .mode = HY_MODE_SPLIT, .progress = side_progress, .progress_ctx = sd};
        hy_sort_result sr;
        sd->rc = hy_host_sort(h->e->host, h->s->dtype, at, cnt, &ro, &sr, &sd->err);
    } else {
        /* The device writes the array only with its last copy back (cl.h), so a device
         * that fails or is stopped leaves its section's elements where the pool put them. */
        hy_cl_opts co = {.device = (unsigned)sd->dev, .progress = side_progress,
                         .progress_ctx = sd};
        hy_cl_sort_result cr;
        sd->rc = hy_cl_sort(h->e->cl, &co, h->s->dtype, at, cnt, &cr, &sd->err);
        if (sd->rc == 0)
            sd->cl = cr.timing;
    }
    if (sd->rc) {
        atomic_store(&h->stop, 1);
        return NULL;
    }
    sd->busy_ns = hy_now_ns() - t0;
    sd->items = cnt;
    sd->chunks = 1;
    return NULL;
}

/* A side whose only rate is the first split's: measured cold (a device's first buffers and
 * kernels for the width) and beside the others (sharing memory bandwidth), it may be far
 * slower than alone — on an NVIDIA H200 machine the first f64 split measured the GPU at 180
 * ms for half of 10^8 keys, which it sorts whole in 72 ms alone. So once the side chosen has
 * been measured alone too, such a side runs alone once when that rate predicts it within 2x
 * of the chosen. Returns its slot, or nside. */
static unsigned remeasure(double n, const double *rate, const unsigned *runs, unsigned nside,
                          unsigned chosen, double best)
{
    unsigned pick = nside;
    if (runs[chosen] < 2)
        return pick; /* the chosen side first: it may be slower alone than the split said */
    for (unsigned i = 0; i < nside; i++)
        if (i != chosen && runs[i] == 1 && n / rate[i] < 2 * best &&
            (pick == nside || rate[i] > rate[pick]))
            pick = i;
    return pick;
}

/* The three plans' predicted times, with every rate known: the pool alone n / r_pool, the
 * fastest device alone n / r_dev (its rate measured over its copy, transfers and kernels),
 * and a split: the pool's first pass over the n keys, n / r_pass, then the pool finishing
 * its buckets beside the devices sorting theirs, n / (r_fin + the devices' rates), where
 * 1 / r_fin = 1 / r_pool - 1 / r_pass is the pool's finishing time per key (r_pool when the
 * pass measured no faster than the whole sort). A split is tried until the rates are known
 * (the first hybrid sort of a key width measures them), then only when the model predicts it
 * at least 5% faster than the better of the two alone. */
int hy_hybrid_sort_plan(double n, const double *rate, const unsigned *runs, unsigned nside,
                        double pass_rate, unsigned *slot)
{
    *slot = 0;
    if (nside <= 1)
        return HY_HYBRID_POOL;
    double sum = 0;
    unsigned best = 1;
    for (unsigned i = 0; i < nside; i++) {
        if (rate[i] <= 0)
            return HY_HYBRID_SPLIT;
        sum += i > 0 ? rate[i] : 0;
        if (i > 0 && rate[i] > rate[best])
            best = i;
    }
    if (pass_rate <= 0)
        return HY_HYBRID_SPLIT;
    sum += hy_hybrid_finish_rate(rate[0], pass_rate);
    double pool = n / rate[0], dev = n / rate[best], split = n / pass_rate + n / sum;
    double alone = pool < dev ? pool : dev;
    if (split < 0.95 * alone)
        return HY_HYBRID_SPLIT;
    unsigned chosen = dev < pool ? best : 0, again = remeasure(n, rate, runs, nside, chosen,
                                                               alone);
    *slot = again < nside ? again : chosen;
    return *slot ? HY_HYBRID_DEVICE : HY_HYBRID_POOL;
}

double hy_hybrid_finish_rate(double pool_rate, double pass_rate)
{
    return pass_rate > pool_rate ? 1.0 / (1.0 / pool_rate - 1.0 / pass_rate) : pool_rate;
}

/* One participant alone (slot 0 the pool, else a device): no shed, no copy; the whole array
 * sorted where it lies, as the native or opencl backend does. */
static void sort_alone(struct hyb *h, unsigned slot)
{
    for (unsigned i = 0; i <= h->nside; i++)
        h->bounds[i] = i <= slot ? 0 : h->n;
    h->shed = true;
    if (slot == 0)
        h->nside = 1;
    sort_side(&h->side[slot]);
}

/* A side no hybrid sort has measured yet takes its rate from the performance history, when
 * that trusts a prediction of the same sort on the side alone (native with the row's threads,
 * or opencl on the device) at this n: a daemon that has run a comparison, or has restarted
 * with its history file, then plans its first hybrid sort from that instead of an even split
 * (431-496 ms for 10^8 keys on an H200 machine, where the device alone took 33-72 ms). Such
 * a rate was measured alone, so it counts as well measured (runs 2: not run alone again).
 * A split's first pass has no history of its own: while none is measured it is guessed at
 * a quarter of the pool's own sort, so that a split is still tried where the sides are
 * comparable and it might pay. Returns whether any rate came from the history. */
static bool rates_from_history(struct hyb *h, double *rate, unsigned *runs,
                               double *pass_rate)
{
    bool seeded = false;
    for (unsigned i = 0; i < h->nside && h->e->history; i++) {
        if (rate[i] > 0)
            continue;
        hy_job_spec t = *h->s;
        hy_row_spec row = {.backend = h->side[i].dev < 0 ? HY_BACKEND_NATIVE : HY_BACKEND_OPENCL,
                           .threads = h->side[i].dev < 0 ? h->threads : 0};
        t.backend = row.backend;
        t.threads = row.threads;
        t.device = h->side[i].dev < 0 ? t.device : (unsigned)h->side[i].dev;
        uint64_t ns = hy_job_predict_row(h->e->history, &t, &row);
        if (ns) {
            rate[i] = h->side[i].prior = (double)h->n / (double)ns; /* a split's shares too */
            runs[i] = 2;
            seeded = true;
        }
    }
    if (seeded && *pass_rate <= 0 && rate[0] > 0)
        *pass_rate = 4 * rate[0];
    return seeded;
}

static int hybrid_sort(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                       const hy_run_io *io, hy_run_once *o, hy_error *err)
{
    struct hyb *h = malloc(sizeof *h);
    if (!h)
        return hy_error_set(err, HY_ENOMEM, "no memory for a hybrid job");
    hyb_init(h, e, s, r, io);
    h->array = io->array;
    int work = work_of(s);
    unsigned runs[1 + HY_HYBRID_DEVICES_MAX] = {0}, slot;
    double rate[1 + HY_HYBRID_DEVICES_MAX] = {0}, pass_rate = recall(h, work, runs);
    for (unsigned i = 0; i < h->nside; i++)
        rate[i] = rate_of(&h->side[i]);
    if (rates_from_history(h, rate, runs, &pass_rate))
        hy_log(HY_LOG_DEBUG, "hybrid sort: rates no hybrid sort measured taken from the "
               "history (pool %.3g keys/ns)", rate[0]);
    int plan = hy_hybrid_sort_plan((double)h->n, rate, runs, h->nside, pass_rate, &slot);
    h->fin_rate = pass_rate > 0 && rate[0] > 0 ? hy_hybrid_finish_rate(rate[0], pass_rate)
                                               : rate[0];
    /* NO_GAIN: no split. Who ran it the row's other fields say: the pool alone has no
     * device in devices_used; a device alone is devices_used 1 with cpu_items 0. */
    bool no_gain = h->nside > 1 && plan != HY_HYBRID_SPLIT;
    uint64_t t0 = hy_now_ns();
    h->split = plan == HY_HYBRID_SPLIT;
    if (h->split)
        run_sides(h, sort_side);
    else
        sort_alone(h, slot);
    uint64_t wall = hy_now_ns() - t0;
    /* A split whose pool sorted everything itself (arrays its one pass does not take) shed
     * nothing: no pass rate, and the pool's rate is its whole sort's. */
    bool shed = plan == HY_HYBRID_SPLIT && h->bounds[1] < h->n;
    int rc = outcome(h, err);
    if (rc == 0) {
        take_figures(h, wall, o);
        o->hyb.no_gain = no_gain;
        if (plan == HY_HYBRID_DEVICE)
            o->hyb.devices_used = 1;
        else if (plan == HY_HYBRID_SPLIT && !shed) {
            o->hyb.devices_used = 0;
            o->hyb.whole = true;
        }
        remember(h, work, shed && h->shed_ns ? (double)h->n / (double)h->shed_ns : 0);
    }
    pthread_cond_destroy(&h->shed_cv);
    pthread_mutex_destroy(&h->mu);
    free(h);
    return rc;
}

/* ---- the participants, chosen at start ---- */

void hy_backend_hybrid_devices(hy_backend_env *env, bool cpu_devices)
{
    hy_engines *e = &env->e;
    e->nhybrid = 0;
    e->hybrid_skipped_cpu = false;
    for (unsigned i = 0; i < env->nowned && e->cl; i++) {
        hy_cl_device_info info;
        if (hy_cl_describe(e->cl, env->owned[i], &info, NULL) != 0 || !info.usable)
            continue;
        if (info.type == HY_CL_TYPE_CPU && !cpu_devices) {
            e->hybrid_skipped_cpu = true;
            hy_log(HY_LOG_INFO, "hybrid: OpenCL device %u (%s, %s) runs on the cores the "
                   "native pool uses, so hybrid jobs leave it out (opencl.hybrid_cpu_devices)",
                   info.index, info.name, hy_cl_type_label(&info));
            continue;
        }
        if (e->nhybrid == HY_HYBRID_DEVICES_MAX) {
            hy_log(HY_LOG_WARNING, "hybrid: OpenCL device %u left out: a hybrid job spreads "
                   "across at most %d devices", info.index, HY_HYBRID_DEVICES_MAX);
            continue;
        }
        e->hybrid_dev[e->nhybrid++] = info.index;
        hy_log(HY_LOG_INFO, "hybrid: OpenCL device %u (%s, %s) runs beside the native pool",
               info.index, info.name, hy_cl_type_label(&info));
    }
}

/* ---- the backend object ---- */

static unsigned hybrid_pool(const hy_backend_env *env)
{
    return env->native_threads;
}

static int hybrid_check(const hy_backend_env *env, const hy_job_spec *s, const hy_row_spec *r,
                        hy_error *err)
{
    if (s->mode == HY_MODE_REPLICATE && !s->kind->compare)
        return hy_error_set(err, HY_EINVAL, "hybrid runs one copy of a job across the pool "
                            "and the devices; replicate mode is for the CPU backends");
    if (env->native_threads == 0)
        return hy_error_set(err, HY_EBACKEND, "hybrid needs the native pool, and this daemon "
                            "runs none (cpu.native_threads)");
    if (r->threads > env->native_threads)
        return hy_error_set(err, HY_ELIMIT, "threads %u is above the native pool's %u "
                            "(cpu.native_threads)", r->threads, env->native_threads);
    return 0;
}

static void hybrid_finish(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                          const hy_run_once *m, hy_result_row *row)
{
    (void)e;
    (void)s;
    (void)r;
    row->cpu_items = m->hyb.cpu_items;
    row->cpu_busy_ns = m->hyb.cpu_busy_ns;
    row->dev_busy_ns = m->hyb.dev_busy_ns;
    row->cpu_chunks = m->hyb.cpu_chunks;
    row->dev_chunks = m->hyb.dev_chunks;
    row->balance_ppm = m->hyb.balance_ppm;
    row->devices_used = m->hyb.devices_used;
    row->passes = m->cl.passes;
    row->bytes_moved = m->cl.bytes_moved;
    row->overlap_ns = m->cl.overlap_ns;
    if (m->hyb.shared_cores)
        row->flags |= HY_ROW_SHARED_CORES;
    if (m->hyb.no_gain)
        row->flags |= HY_ROW_NO_GAIN;
    if (m->hyb.whole)
        row->flags |= HY_ROW_WHOLE;
}

const hy_backend_ops hy_backend_hybrid = {
    .id = HY_BACKEND_HYBRID, .plan = HY_PLAN_NAMED_ONLY, .pool = hybrid_pool,
    .machine = true, .check = hybrid_check, .pi = hybrid_pi, .sort = hybrid_sort,
    .finish_row = hybrid_finish,
};
