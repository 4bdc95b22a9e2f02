/* daemon/runner: one configuration, R timed runs, one row. */
#include "runner.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* What one run measured. */
struct one_run {
    uint64_t wall_ns;
    uint64_t hits;
    double estimate, std_error;
    uint64_t lock_handoffs, lock_wait_ns, lock_hold_ns;
    bool nogil;
    unsigned threads, copies;
    hy_cl_timing cl;
    hy_proc_stats proc;
};

/* A process run: its parts' sending and receiving stand where OpenCL's transfers do, so a
 * table shows the cost of moving data the same way for both. */
static int run_process(const hy_engines *e, const hy_run_spec *s, struct one_run *o,
                       hy_error *err)
{
    if (!e->proc)
        return hy_error_set(err, HY_EBACKEND, "the process backend is not running in this "
                            "daemon");
    hy_proc_opts po = {.workers = s->threads, .transport = s->transport,
                       .progress = s->progress, .progress_ctx = s->progress_ctx};
    int rc;
    if (s->job == HY_JOB_PI) {
        if ((rc = hy_proc_pi(e->proc, s->seed, s->n, &po, &o->hits, &o->proc, err)))
            return rc;
        double p = (double)o->hits / (double)s->n;
        o->estimate = 4.0 * p;
        o->std_error = 4.0 * sqrt(p * (1.0 - p) / (double)s->n);
    } else if ((rc = hy_proc_sort(e->proc, s->dtype, s->array, s->array_fd, (size_t)s->n, &po,
                                  &o->proc, err))) {
        return rc;
    }
    o->wall_ns = o->proc.wall_ns;
    o->cl.h2d_ns = o->proc.send_ns;
    o->cl.d2h_ns = o->proc.recv_ns;
    uint64_t moved = o->proc.send_ns + o->proc.recv_ns;
    o->cl.kernel_ns = o->wall_ns > moved ? o->wall_ns - moved : 0;
    o->threads = o->proc.workers;
    o->copies = 1;
    return 0;
}

static int run_once(const hy_engines *e, const hy_run_spec *s, struct one_run *o, hy_error *err)
{
    int rc;
    memset(o, 0, sizeof *o);
    if (s->backend == HY_BACKEND_PROCESS)
        return run_process(e, s, o, err);
    if (s->backend == HY_BACKEND_OPENCL) {
        if (!e->cl)
            return hy_error_set(err, HY_EBACKEND, "OpenCL is not enabled in this daemon");
        hy_cl_opts co = {.device = s->device, .progress = s->progress,
                         .progress_ctx = s->progress_ctx};
        if (s->job == HY_JOB_PI) {
            hy_cl_pi_result r;
            if ((rc = hy_cl_pi(e->cl, &co, s->seed, s->n, &r, err)))
                return rc;
            o->hits = r.hits;
            o->estimate = r.estimate;
            o->std_error = r.std_error;
            o->cl = r.timing;
        } else {
            hy_cl_sort_result r;
            if ((rc = hy_cl_sort(e->cl, &co, s->dtype, s->array, (size_t)s->n, &r, err)))
                return rc;
            o->cl = r.timing;
        }
        o->wall_ns = o->cl.wall_ns;
        o->threads = 0; /* device-wide: the device decides */
        o->copies = 1;
        return 0;
    }
    hy_run_opts ro = {.backend = s->backend, .threads = s->threads, .mode = s->mode,
                      .nogil = s->nogil, .switch_interval_us = s->switch_interval_us,
                      .progress = s->progress, .progress_ctx = s->progress_ctx};
    const hy_run_stats *st;
    hy_pi_result pr;
    hy_sort_result sr;
    if (s->job == HY_JOB_PI) {
        if ((rc = hy_host_pi(e->host, s->seed, s->n, &ro, &pr, err)))
            return rc;
        o->hits = pr.hits;
        o->estimate = pr.estimate;
        o->std_error = pr.std_error;
        st = &pr.stats;
    } else {
        if ((rc = hy_host_sort(e->host, s->dtype, s->array, (size_t)s->n, &ro, &sr, err)))
            return rc;
        st = &sr.stats;
    }
    o->wall_ns = st->wall_ns;
    o->lock_handoffs = st->lock_handoffs;
    o->lock_wait_ns = st->lock_wait_ns;
    o->lock_hold_ns = st->lock_hold_ns;
    o->nogil = st->nogil;
    o->threads = st->threads;
    o->copies = st->copies;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int hy_runner_run(const hy_engines *e, const hy_run_spec *s, hy_result_row *row,
                  uint64_t *busy_ns, hy_error *err)
{
    size_t bytes = s->job == HY_JOB_SORT ? (size_t)s->n * hy_dtype_size(s->dtype) : 0;
    unsigned runs = s->warmup + s->repeat;
    if (s->repeat == 0)
        return hy_error_set(err, HY_EINVAL, "a configuration needs at least one timed run");
    if (s->job == HY_JOB_SORT && runs > 1 && !s->pristine && bytes > 0)
        return hy_error_set(err, HY_EINTERNAL, "a repeated sort needs its input kept");
    struct one_run *timed = calloc(s->repeat, sizeof *timed);
    uint64_t *walls = calloc(s->repeat, sizeof *walls);
    int rc = 0;
    uint64_t startup_ns = 0;
    unsigned started = 0;
    *busy_ns = 0;
    if (!timed || !walls) {
        rc = hy_error_set(err, HY_ENOMEM, "no memory for %u runs", s->repeat);
        goto out;
    }
    for (unsigned i = 0; i < runs; i++) {
        struct one_run o;
        if (s->job == HY_JOB_SORT && s->pristine && runs > 1 && bytes > 0)
            memcpy(s->array, s->pristine, bytes);
        if ((rc = run_once(e, s, &o, err)))
            goto out;
        *busy_ns += o.wall_ns;
        startup_ns += o.proc.startup_ns;
        started += o.proc.started;
        if (i >= s->warmup)
            timed[i - s->warmup] = o;
    }
    for (unsigned i = 0; i < s->repeat; i++) {
        walls[i] = timed[i].wall_ns;
        if (s->job == HY_JOB_PI && timed[i].hits != timed[0].hits) {
            rc = hy_error_set(err, HY_EINTERNAL, "pi runs disagree: %llu and %llu hits",
                              (unsigned long long)timed[0].hits,
                              (unsigned long long)timed[i].hits);
            goto out;
        }
    }
    qsort(walls, s->repeat, sizeof *walls, cmp_u64);
    uint64_t median = s->repeat % 2 ? walls[s->repeat / 2]
                                    : (walls[s->repeat / 2 - 1] + walls[s->repeat / 2]) / 2;
    /* The breakdown (lock, transfers) comes from the run nearest the median, so it adds up
     * with the time shown rather than mixing runs. */
    const struct one_run *m = &timed[0];
    for (unsigned i = 1; i < s->repeat; i++) {
        uint64_t d = timed[i].wall_ns > median ? timed[i].wall_ns - median
                                               : median - timed[i].wall_ns;
        uint64_t dm = m->wall_ns > median ? m->wall_ns - median : median - m->wall_ns;
        if (d < dm)
            m = &timed[i];
    }
    memset(row, 0, sizeof *row);
    row->backend = (uint16_t)s->backend;
    row->device = s->backend == HY_BACKEND_OPENCL ? (uint16_t)s->device : 0;
    row->mode = (uint16_t)(s->mode ? s->mode : HY_MODE_SPLIT);
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
    if (s->backend == HY_BACKEND_PROCESS) {
        row->transport = (uint16_t)(s->transport ? s->transport : HY_TRANSPORT_PIPE);
        row->bytes_moved = m->proc.bytes_moved;
        row->merge_ns = m->proc.merge_ns;
        /* Restarts in any run, warm-up included, are what this configuration paid. */
        row->startup_ns = startup_ns;
        row->workers_started = started;
    }
    if (s->backend == HY_BACKEND_LOCKED && m->nogil)
        row->flags |= HY_ROW_NOGIL;
    if (s->backend == HY_BACKEND_OPENCL && e->cl) {
        hy_cl_device_info info;
        if (hy_cl_describe(e->cl, s->device, &info, NULL) == 0)
            row->flags |= info.pocl_cpu ? HY_ROW_POCL_CPU
                           : info.type == HY_CL_TYPE_GPU ? HY_ROW_GPU : 0;
    }
out:
    free(timed);
    free(walls);
    return rc;
}
