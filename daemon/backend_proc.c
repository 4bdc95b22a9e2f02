/* daemon/backend_proc: process — single-threaded worker processes (proc/), a job split
 * among them as multiprocessing.Pool.map does. */
#include "backend.h"

#include <math.h>

static int need_pool(const hy_engines *e, hy_error *err)
{
    if (!e->proc)
        return hy_error_set(err, HY_EBACKEND, "the process backend is not running in this "
                            "daemon");
    return 0;
}

/* Sending and receiving parts stand where OpenCL's transfers do, so a table shows the cost
 * of moving data the same way for both. */
static void take_stats(hy_run_once *o)
{
    o->wall_ns = o->proc.wall_ns;
    o->cl.h2d_ns = o->proc.send_ns;
    o->cl.d2h_ns = o->proc.recv_ns;
    uint64_t moved = o->proc.send_ns + o->proc.recv_ns;
    o->cl.kernel_ns = o->wall_ns > moved ? o->wall_ns - moved : 0;
    o->threads = o->proc.workers;
    o->copies = 1;
}

static hy_proc_opts proc_opts(const hy_row_spec *r, const hy_run_io *io)
{
    return (hy_proc_opts){.workers = r->threads, .transport = r->transport,
                          .progress = io->progress, .progress_ctx = io->progress_ctx};
}

static int proc_pi(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                   const hy_run_io *io, hy_run_once *o, hy_error *err)
{
    int rc;
    if ((rc = need_pool(e, err)))
        return rc;
    hy_proc_opts po = proc_opts(r, io);
    po.first = s->first; /* a part of a job across MPI ranks counts its window */
    if ((rc = hy_proc_pi(e->proc, s->seed, s->n, &po, &o->hits, &o->proc, err)))
        return rc;
    double p = (double)o->hits / (double)s->n;
    o->estimate = 4.0 * p;
    o->std_error = 4.0 * sqrt(p * (1.0 - p) / (double)s->n);
    take_stats(o);
    return 0;
}

static int proc_sort(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                     const hy_run_io *io, hy_run_once *o, hy_error *err)
{
    int rc;
    if ((rc = need_pool(e, err)))
        return rc;
    hy_proc_opts po = proc_opts(r, io);
    if ((rc = hy_proc_sort(e->proc, s->dtype, io->array, io->array_fd, (size_t)s->n, &po,
                           &o->proc, err)))
        return rc;
    take_stats(o);
    return 0;
}

static int proc_check(const hy_backend_env *env, const hy_job_spec *s, const hy_row_spec *r,
                      hy_error *err)
{
    /* A comparison plans no process rows in replicate mode; a single job is refused. */
    if (s->mode == HY_MODE_REPLICATE)
        return hy_error_set(err, HY_EINVAL, "process splits one job among its workers, as "
                            "multiprocessing.Pool.map does; replicate mode is for the thread "
                            "backends");
    unsigned size = hy_proc_pool_size(env->e.proc);
    if (r->threads > size)
        return hy_error_set(err, HY_ELIMIT, "threads %u is above the process pool's %u "
                            "workers (cpu.process_workers)", r->threads, size);
    return 0;
}

static unsigned proc_pool(const hy_backend_env *env)
{
    return hy_proc_pool_size(env->e.proc);
}

static void proc_describe(const hy_backend_env *env, hy_msg_devices_reply *r)
{
    r->process_workers = hy_proc_pool_size(env->e.proc);
}

static void proc_finish(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                        const hy_run_once *m, hy_result_row *row)
{
    (void)e;
    (void)s;
    row->transport = (uint16_t)(r->transport ? r->transport : HY_TRANSPORT_PIPE);
    row->bytes_moved = m->proc.bytes_moved;
    row->merge_ns = m->proc.merge_ns;
    row->startup_ns = m->proc.startup_ns; /* summed over every run by the runner */
    row->workers_started = m->proc.started;
}

const hy_backend_ops hy_backend_process = {
    .id = HY_BACKEND_PROCESS,
    .plan = HY_PLAN_PER_THREADS | HY_PLAN_PER_TRANSPORT | HY_PLAN_SPLIT_ONLY,
    .pool = proc_pool, .describe = proc_describe, .check = proc_check, .pi = proc_pi,
    .sort = proc_sort, .finish_row = proc_finish,
};
