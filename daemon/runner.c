/* daemon/runner: one configuration, R timed runs, one row. */
#include "runner.h"
#include "ranks.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int run_once(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                    const hy_run_io *io, hy_run_once *o, hy_error *err)
{
    const hy_backend_ops *b = hy_backend_get(r->backend);
    HY_ASSERT(b != NULL);
    memset(o, 0, sizeof *o);
    if (s->array == HY_ARRAY_FILES) /* the keys are in a file: every run reads them again */
        return hy_ranks_sort_files(e, s, r, io, o, err);
    if (s->ranks > 1)
        return s->kind->work == HY_JOB_PI ? hy_ranks_pi(e, s, r, io, o, err)
                                          : hy_ranks_sort(e, s, r, io, o, err);
    return s->kind->work == HY_JOB_PI ? b->pi(e, s, r, io, o, err)
                                      : b->sort(e, s, r, io, o, err);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The run nearest the median: the breakdown (lock, transfers) comes from it, so it adds up
 * with the time shown rather than mixing runs. */
static const hy_run_once *nearest(const hy_run_once *timed, unsigned n, uint64_t median)
{
    const hy_run_once *m = &timed[0];
    for (unsigned i = 1; i < n; i++) {
        uint64_t d = timed[i].wall_ns > median ? timed[i].wall_ns - median
                                               : median - timed[i].wall_ns;
        uint64_t dm = m->wall_ns > median ? m->wall_ns - median : median - m->wall_ns;
        if (d < dm)
            m = &timed[i];
    }
    return m;
}

/* The quantile p of n sorted values, interpolated linearly between the two nearest (numpy's
 * default method), so that q1 and q3 of 5 runs are the 2nd and 4th. */
static uint64_t quantile(const uint64_t *sorted, unsigned n, double p)
{
    double at = p * (n - 1);
    unsigned lo = (unsigned)at;
    if (lo + 1 >= n)
        return sorted[n - 1];
    double frac = at - lo;
    return (uint64_t)llround((double)sorted[lo] + frac * (double)(sorted[lo + 1] - sorted[lo]));
}

/* How far the timed runs spread: mean, sample standard deviation, quartiles. Users judge a
 * speed-up by these; the median alone cannot say whether two rows differ. */
static void fill_spread(const uint64_t *walls, unsigned n, hy_result_row *row)
{
    double sum = 0, sq = 0;
    for (unsigned i = 0; i < n; i++)
        sum += (double)walls[i];
    double mean = sum / n;
    for (unsigned i = 0; i < n; i++)
        sq += ((double)walls[i] - mean) * ((double)walls[i] - mean);
    row->mean_ns = (uint64_t)llround(mean);
    row->stddev_ns = n > 1 ? (uint64_t)llround(sqrt(sq / (n - 1))) : 0;
    row->q1_ns = quantile(walls, n, 0.25);
    row->q3_ns = quantile(walls, n, 0.75);
}

static void fill_row(const hy_job_spec *s, const hy_row_spec *r, const hy_run_once *m,
                     const uint64_t *walls, uint64_t median, hy_result_row *row)
{
    memset(row, 0, sizeof *row);
    row->backend = (uint16_t)r->backend;
    row->mode = (uint16_t)s->mode;
    row->ranks = s->ranks > 1 ? s->ranks : 1; /* 1: this daemon alone */
    row->threads = m->threads;
    row->copies = m->copies;
    row->n = s->n;
    row->hits = m->hits;
    row->estimate = m->estimate;
    row->std_error = m->std_error;
    row->median_ns = median;
    row->min_ns = walls[0];
    row->max_ns = walls[s->repeat - 1];
    row->lock_handoffs = m->lock_handoffs;
    row->lock_wait_ns = m->lock_wait_ns;
    row->lock_hold_ns = m->lock_hold_ns;
    row->h2d_ns = m->cl.h2d_ns;
    row->kernel_ns = m->cl.kernel_ns;
    row->d2h_ns = m->cl.d2h_ns;
    row->launches = m->cl.launches;
    row->repeat = s->repeat;
    fill_spread(walls, s->repeat, row);
}

int hy_runner_run(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                  const hy_run_io *io, hy_result_row *row, uint64_t *busy_ns, hy_error *err)
{
    return hy_runner_run_times(e, s, r, io, row, busy_ns, NULL, NULL, err);
}

int hy_runner_run_times(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                        const hy_run_io *io, hy_result_row *row, uint64_t *busy_ns,
                        uint64_t *times, hy_span_ranks *span, hy_error *err)
{
    bool sort = s->kind->work == HY_JOB_SORT;
    size_t bytes = sort ? (size_t)s->n * hy_dtype_size(s->dtype) : 0;
    unsigned runs = s->warmup + s->repeat;
    const hy_backend_ops *b = hy_backend_get(r->backend);
    HY_ASSERT(b != NULL);
    HY_ASSERT(s->mode == HY_MODE_SPLIT || s->mode == HY_MODE_REPLICATE);
    if (s->repeat == 0)
        return hy_error_set(err, HY_EINVAL, "a configuration needs at least one timed run");
    if (sort && runs > 1 && !io->pristine && bytes > 0 && s->array != HY_ARRAY_FILES)
        return hy_error_set(err, HY_EINTERNAL, "a repeated sort needs its input kept");
    hy_run_once *timed = calloc(s->repeat, sizeof *timed);
    uint64_t *walls = calloc(s->repeat, sizeof *walls);
    int rc = 0;
    uint64_t startup_ns = 0, warmup_ns = 0;
    unsigned started = 0;
    *busy_ns = 0;
    if (!timed || !walls) {
        rc = hy_error_set(err, HY_ENOMEM, "no memory for %u runs", s->repeat);
        goto out;
    }
    for (unsigned i = 0; i < runs; i++) {
        hy_run_once o;
        if (sort && io->pristine && runs > 1 && bytes > 0)
            memcpy(io->array, io->pristine, bytes);
        if ((rc = run_once(e, s, r, io, &o, err)))
            goto out;
        *busy_ns += o.wall_ns;
        startup_ns += o.proc.startup_ns;
        started += o.proc.started;
        if (i >= s->warmup)
            timed[i - s->warmup] = o;
        else if (i == 0)
            warmup_ns = o.wall_ns; /* the first run: cold caches, faults, kernel builds */
    }
    for (unsigned i = 0; i < s->repeat; i++) {
        walls[i] = timed[i].wall_ns;
        if (times)
            times[i] = timed[i].wall_ns; /* before the sort below: in the order they ran */
        if (!sort && timed[i].hits != timed[0].hits) {
            rc = hy_error_set(err, HY_EINTERNAL, "pi runs disagree: %llu and %llu hits",
                              (unsigned long long)timed[0].hits,
                              (unsigned long long)timed[i].hits);
            goto out;
        }
    }
    qsort(walls, s->repeat, sizeof *walls, cmp_u64);
    uint64_t median = s->repeat % 2 ? walls[s->repeat / 2]
                                    : (walls[s->repeat / 2 - 1] + walls[s->repeat / 2]) / 2;
    /* Restarts in any run, warm-up included, are what this configuration paid. */
    hy_run_once m = *nearest(timed, s->repeat, median);
    m.proc.startup_ns = startup_ns;
    m.proc.started = started;
    fill_row(s, r, &m, walls, median, row);
    row->warmup_ns = warmup_ns;
    if (b->finish_row)
        b->finish_row(e, s, r, &m, row);
    if (span)
        *span = m.span;
out:
    free(timed);
    free(walls);
    return rc;
}
