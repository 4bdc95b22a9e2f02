/* daemon/backend_host: serial, native and locked — the CPU engine's three ways to run a job
 * (host/), one object each over the same two runs. */
#include "backend.h"

static hy_run_opts host_opts(const hy_job_spec *s, const hy_row_spec *r, const hy_run_io *io)
{
    return (hy_run_opts){.backend = r->backend, .threads = r->threads, .mode = s->mode,
                         .nogil = s->nogil, .switch_interval_us = s->switch_interval_us,
                         .progress = io->progress, .progress_ctx = io->progress_ctx};
}

static void take_stats(const hy_run_stats *st, hy_run_once *o)
{
    o->wall_ns = st->wall_ns;
    o->lock_handoffs = st->lock_handoffs;
    o->lock_wait_ns = st->lock_wait_ns;
    o->lock_hold_ns = st->lock_hold_ns;
    o->nogil = st->nogil;
    o->threads = st->threads;
    o->copies = st->copies;
}

static int host_pi(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                   const hy_run_io *io, hy_run_once *o, hy_error *err)
{
    hy_run_opts ro = host_opts(s, r, io);
    hy_pi_result pr;
    /* A part of a job across MPI ranks counts its window of the same stream. */
    int rc = s->first ? hy_host_pi_part(e->host, s->seed, s->first, s->n, &ro, &pr, err)
                      : hy_host_pi(e->host, s->seed, s->n, &ro, &pr, err);
    if (rc)
        return rc;
    o->hits = pr.hits;
    o->estimate = pr.estimate;
    o->std_error = pr.std_error;
    take_stats(&pr.stats, o);
    return 0;
}

static int host_sort(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                     const hy_run_io *io, hy_run_once *o, hy_error *err)
{
    hy_run_opts ro = host_opts(s, r, io);
    hy_sort_result sr;
    int rc = hy_host_sort(e->host, s->dtype, io->array, (size_t)s->n, &ro, &sr, err);
    if (rc)
        return rc;
    take_stats(&sr.stats, o);
    return 0;
}

static int serial_check(const hy_backend_env *env, const hy_job_spec *s, const hy_row_spec *r,
                        hy_error *err)
{
    (void)env;
    (void)s;
    if (r->threads != 1)
        return hy_error_set(err, HY_EINVAL, "serial runs on exactly 1 thread, not %u",
                            r->threads);
    return 0;
}

static int native_check(const hy_backend_env *env, const hy_job_spec *s, const hy_row_spec *r,
                        hy_error *err)
{
    (void)s;
    if (r->threads > env->native_threads)
        return hy_error_set(err, HY_ELIMIT,
                            "threads %u is above the native pool's %u (cpu.native_threads)",
                            r->threads, env->native_threads);
    return 0;
}

static int locked_check(const hy_backend_env *env, const hy_job_spec *s, const hy_row_spec *r,
                        hy_error *err)
{
    (void)s;
    if (r->threads > env->locked_threads)
        return hy_error_set(err, HY_ELIMIT,
                            "threads %u is above the locked runtime's %u (cpu.locked_threads)",
                            r->threads, env->locked_threads);
    return 0;
}

static unsigned native_pool(const hy_backend_env *env)
{
    return env->native_threads;
}

static unsigned locked_pool(const hy_backend_env *env)
{
    return env->locked_threads;
}

static void native_describe(const hy_backend_env *env, hy_msg_devices_reply *r)
{
    r->native_threads = env->native_threads;
}

static void locked_describe(const hy_backend_env *env, hy_msg_devices_reply *r)
{
    r->locked_threads = env->locked_threads;
}

/* A locked row says whether the job's native sections ran with the lock released. */
static void locked_finish(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                          const hy_run_once *m, hy_result_row *row)
{
    (void)e;
    (void)s;
    (void)r;
    if (m->nogil)
        row->flags |= HY_ROW_NOGIL;
}

const hy_backend_ops hy_backend_serial = {
    .id = HY_BACKEND_SERIAL, .plan = HY_PLAN_ALWAYS, .threads = 1,
    .check = serial_check, .pi = host_pi, .sort = host_sort,
};

const hy_backend_ops hy_backend_native = {
    .id = HY_BACKEND_NATIVE, .plan = HY_PLAN_PER_THREADS, .pool = native_pool,
    .describe = native_describe, .check = native_check, .pi = host_pi, .sort = host_sort,
};

const hy_backend_ops hy_backend_locked = {
    .id = HY_BACKEND_LOCKED, .plan = HY_PLAN_PER_THREADS, .pool = locked_pool,
    .describe = locked_describe, .check = locked_check, .pi = host_pi, .sort = host_sort,
    .finish_row = locked_finish,
};
