/* daemon/ranks: pi across MPI ranks. Sample i of a job is counter i of Philox keyed by the
 * seed wherever it runs, so parts that tile [0, n) add up to one daemon's hits exactly: the
 * split (hy_mpi_split) is contiguous, part k on rank (origin + k) % size. */
#include "ranks.h"

#include <math.h>
#include <string.h>

#include "host.h"

/* Backends that can count a window [first, first + count) of the stream: the CPU engine's. */
static bool spans(int backend)
{
    return backend == HY_BACKEND_SERIAL || backend == HY_BACKEND_NATIVE ||
           backend == HY_BACKEND_LOCKED;
}

int hy_ranks_resolve(const hy_backend_env *env, hy_job_spec *s, hy_error *err)
{
    unsigned want = s->ranks;
    s->ranks = 1;
    if (want <= 1)
        return 0;
    if (!env->e.mpi)
        return hy_error_set(err, HY_EINVAL, "ranks %u: this daemon is not running under MPI "
                            "(hybridd --mpi under mpirun), so a job runs on it alone (ranks 0 "
                            "or 1)", want);
    unsigned size = (unsigned)hy_mpi_size(env->e.mpi);
    if (want == HY_IPC_RANKS_ALL)
        want = size;
    else if (want > size)
        return hy_error_set(err, HY_ELIMIT, "ranks %u is above this MPI job's %u rank(s)",
                            want, size);
    if (s->kind->kind != HY_JOB_PI)
        return hy_error_set(err, HY_EINVAL, "only a single pi job spans ranks for now, not a "
                            "%s job", s->kind->label);
    if (!spans(s->backend))
        return hy_error_set(err, HY_EBACKEND, "a pi job spans ranks on serial, native or "
                            "locked, not %s", hy_backend_name(s->backend));
    s->ranks = want;
    return 0;
}

static bool io_cancelled(void *ctx)
{
    const hy_run_io *io = ctx;
    return io->progress && io->progress(io->progress_ctx, 0, 0) != 0;
}

static bool drop(void *ctx)
{
    (void)ctx;
    return true;
}

/* A part a peer sent, counted on this rank's executor while its own span waits (mpi/'s
 * hold: the scheduler's queue is behind the waiting job). Checked as the loop checks a part,
 * against the CPU engine's own thread limit. */
static int run_held_part(void *ctx, const hy_mpi_part *p, uint64_t *hits, hy_error *err)
{
    const hy_engines *e = ctx;
    hy_job_spec s;
    int rc = hy_ranks_part_spec(NULL, p, 0, &s, err);
    if (rc)
        return rc;
    unsigned most = hy_host_threads(e->host);
    if (p->threads < 1 || p->threads > most)
        return hy_error_set(err, HY_ELIMIT, "threads %u: this rank's CPU engine runs 1..%u",
                            p->threads, most);
    hy_row_spec row = {.backend = p->backend, .threads = p->threads};
    hy_run_io io = {.array_fd = -1};
    hy_run_once o = {0};
    if ((rc = hy_backend_get(p->backend)->pi(e, &s, &row, &io, &o, err)))
        return rc;
    *hits = o.hits;
    return 0;
}

int hy_ranks_pi(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                const hy_run_io *io, hy_run_once *o, hy_error *err)
{
    const hy_backend_ops *b = hy_backend_get(r->backend);
    HY_ASSERT(b != NULL && e->mpi != NULL && s->ranks > 1 && s->first == 0);
    hy_mpi_part proto = {.backend = r->backend, .threads = r->threads, .mode = s->mode,
                         .nogil = s->nogil, .seed = s->seed};
    uint64_t t0 = hy_now_ns(), token, first, count;
    int rc = hy_mpi_pi_scatter(e->mpi, &proto, s->n, s->ranks, &token, err);
    if (rc)
        return rc;
    hy_mpi_split(s->n, s->ranks, 0, &first, &count); /* part 0: [0, count), never empty */
    hy_job_spec own = *s;
    own.n = count;
    own.ranks = 1;
    rc = b->pi(e, &own, r, io, o, err);
    uint64_t hits = o->hits;
    hy_error gerr = {0};
    /* A failed own part still collects the span (dropping it), so no answer lingers. */
    int grc = hy_mpi_pi_gather(e->mpi, token, rc ? drop : io_cancelled, (void *)io,
                               run_held_part, (void *)e, &hits, &gerr);
    if (rc)
        return rc;
    if (grc) {
        *err = gerr;
        return grc;
    }
    double p = (double)hits / (double)s->n;
    o->hits = hits;
    o->estimate = 4.0 * p;
    o->std_error = 4.0 * sqrt(p * (1.0 - p) / (double)s->n);
    o->wall_ns = hy_now_ns() - t0;
    return 0;
}

int hy_ranks_part_spec(const hy_backend_env *env, const hy_mpi_part *p,
                       uint32_t switch_interval_us, hy_job_spec *s, hy_error *err)
{
    if (!spans(p->backend))
        return hy_error_set(err, HY_EBACKEND, "backend %d does not count a part of pi",
                            p->backend);
    if (p->mode != HY_MODE_SPLIT && p->mode != HY_MODE_REPLICATE)
        return hy_error_set(err, HY_EINVAL, "mode %d is not split or replicate", p->mode);
    if (p->count == 0 || p->first > HY_HOST_PI_MAX_SAMPLES - p->count)
        return hy_error_set(err, HY_EINVAL, "part [%llu, +%llu) is outside pi's stream",
                            (unsigned long long)p->first, (unsigned long long)p->count);
    *s = (hy_job_spec){.kind = hy_kind_get(HY_JOB_PI), .n = p->count, .first = p->first,
                       .seed = p->seed, .mode = p->mode, .nogil = p->nogil,
                       .switch_interval_us = switch_interval_us, .repeat = 1, .warmup = 0,
                       .backend = p->backend, .threads = p->threads,
                       .transport = HY_TRANSPORT_PIPE, .backends = 1u << p->backend,
                       .transports = 1u << HY_TRANSPORT_PIPE, .ranks = 1};
    if (!env)
        return 0;
    hy_row_spec row = {.backend = p->backend, .threads = p->threads};
    return hy_backend_get(p->backend)->check(env, s, &row, err);
}
