/* daemon/ranks: pi and sort across MPI ranks.
 *
 * pi: sample i of a job is counter i of Philox keyed by the seed wherever it runs, so parts
 * that tile [0, n) add up to one daemon's hits exactly: the split (hy_mpi_split) is
 * contiguous, part k on rank (origin + k) % size.
 *
 * sort: a sample sort whose keys start on the submitting rank (the client's array). It takes
 * a regular sample of (key, index) pairs, key in hybridd's order (common/sortkey.h, a
 * bijection of the bits), picks ranks - 1 splitters from it, and partitions the array into
 * buckets by (key, index): ties go by position, so all-equal or few-unique input splits as
 * evenly as any other. Bucket k goes to rank (origin + k) % size, is sorted there by its CPU
 * engine and comes back into the array at its offset. Every key in bucket k is at most every
 * key in bucket k + 1, and equal keys are equal bytes, so the result is exactly one daemon's
 * sort. docs/mpi.md says why the origin partitions rather than scattering slices first. */
#include "ranks.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auto.h"
#include "host.h"
#include "log.h"
#include "sortkey.h"

/* The backends a job of `kind` spans ranks on. A span waiting on an executor runs the parts
 * its peers send meanwhile itself (mpi.h, hy_mpi_gather), whatever their backend: the CPU
 * engine serialises its jobs, and a device takes one thread at a time under its lock
 * (hy_engines.dev_lock), so a device part run there waits for the device's own executor
 * rather than running beside it. pi: the CPU engine, the worker processes and a device, each
 * counting any window [first, first + count) of the stream. sort: the CPU engine and a
 * device, sorting a peer's bucket as a job with no client. Not hybrid, which holds every
 * executor (a waiting hybrid span would hold the whole rank). */
static bool spans(int kind, int backend)
{
    if (kind == HY_JOB_PI && backend == HY_BACKEND_PROCESS)
        return true;
    return backend == HY_BACKEND_SERIAL || backend == HY_BACKEND_NATIVE ||
           backend == HY_BACKEND_LOCKED || backend == HY_BACKEND_OPENCL;
}

/* Backend auto for a job that runs in parts across `want` ranks (or a sort of .npy paths),
 * which hy_job_resolve left: chosen among the backends a part runs on, for one part's size. */
static int resolve_auto(const hy_backend_env *env, hy_job_spec *s, unsigned want,
                        hy_error *err)
{
    unsigned size = (unsigned)hy_mpi_size(env->e.mpi), parts = want;
    parts = parts == HY_IPC_RANKS_ALL || parts > size ? size : parts < 1 ? 1 : parts;
    unsigned allowed = 0;
    for (int b = 1; b <= HY_BACKEND_COUNT; b++)
        if (spans(s->kind->kind, b))
            allowed |= 1u << b;
    return hy_auto_choose_span(env, s, (s->n + parts - 1) / parts, allowed, err);
}

int hy_ranks_resolve(const hy_backend_env *env, hy_job_spec *s, hy_error *err)
{
    unsigned want = s->ranks;
    s->ranks = 1;
    if (s->array == HY_ARRAY_FILES && !env->e.mpi)
        return hy_error_set(err, HY_EINVAL, "a sort of .npy paths (array files: hybridctl sort "
                            "--input --output --ranks) runs only on hybridd --mpi, a per-user "
                            "service; this daemon opens no path a client names");
    int rc;
    if (s->backend == HY_BACKEND_AUTO && env->e.mpi && (rc = resolve_auto(env, s, want, err)))
        return rc;
    if (s->array == HY_ARRAY_FILES && !spans(HY_JOB_SORT, s->backend))
        return hy_error_set(err, HY_EBACKEND, "a sort of .npy paths runs on serial, native, "
                            "locked or opencl, not %s", hy_backend_name(s->backend));
    if (want <= 1)
        return 0;
    if (s->array == HY_ARRAY_FDS)
        return hy_error_set(err, HY_EINVAL, "ranks %u: a sort of the client's file fds runs "
                            "on this daemon alone; across ranks, name the .npy paths (array "
                            "files) or send a memfd", want);
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
    if (s->kind->kind != HY_JOB_PI && s->kind->kind != HY_JOB_SORT)
        return hy_error_set(err, HY_EINVAL, "only a single pi or sort job spans ranks for now, "
                            "not a %s job", s->kind->label);
    if (s->kind->kind == HY_JOB_SORT && want > HY_SPAN_MAX_RANKS)
        return hy_error_set(err, HY_ELIMIT, "a sort spans at most %u ranks, not %u",
                            HY_SPAN_MAX_RANKS, want);
    if (!spans(s->kind->kind, s->backend))
        return hy_error_set(err, HY_EBACKEND, "a %s job spans ranks on serial, native, "
                            "locked%s or opencl, not %s", s->kind->label,
                            s->kind->kind == HY_JOB_PI ? ", process" : "",
                            hy_backend_name(s->backend));
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

/* A part a peer sent, run on this rank's executor while its own span waits (mpi/'s hold: the
 * scheduler's queue is behind the waiting job). Checked as the loop checks a part: against
 * the CPU engine's own thread limit, or run on this rank's span device (under its lock, in
 * backend_cl.c, as the device's executor may be running a job of its own). */
static int run_part_here(const hy_engines *e, const hy_mpi_part *p, uint64_t *hits,
                         hy_error *err)
{
    hy_job_spec s;
    int rc = hy_ranks_part_spec(NULL, p, 0, &s, err);
    if (rc)
        return rc;
    const hy_backend_ops *b = hy_backend_get(p->backend);
    if (b->device) { /* this rank's own device for spans, which the part does not name */
        if (!e->cl || e->span_device < 0)
            return hy_error_set(err, HY_EBACKEND, "this rank serves no OpenCL device");
        s.device = (unsigned)e->span_device;
    } else if (p->threads < 1 || p->threads > hy_host_threads(e->host)) {
        return hy_error_set(err, HY_ELIMIT, "threads %u: this rank's CPU engine runs 1..%u",
                            p->threads, hy_host_threads(e->host));
    }
    hy_row_spec row = {.backend = p->backend, .threads = p->threads};
    hy_run_io io = {.array = p->data, .array_fd = -1};
    hy_run_once o = {0};
    if ((rc = p->kind == HY_MPI_SORT ? b->sort(e, &s, &row, &io, &o, err)
                                     : b->pi(e, &s, &row, &io, &o, err)))
        return rc;
    *hits = o.hits;
    return 0;
}

/* run_part_here, counted in e->held for STATUS: a part run inside a span is no job of the
 * scheduler's, but the rank ran it all the same. */
static int run_held_part(void *ctx, const hy_mpi_part *p, uint64_t *hits, hy_error *err)
{
    const hy_engines *e = ctx;
    if (e->held)
        atomic_fetch_add(&e->held->running, 1);
    int rc = run_part_here(e, p, hits, err);
    if (e->held) {
        atomic_fetch_add(rc ? &e->held->failed : &e->held->done, 1);
        atomic_fetch_sub(&e->held->running, 1);
    }
    return rc;
}

static int cmp_rank(const void *a, const void *b)
{
    const hy_rank_row *x = a, *y = b;
    return (x->rank > y->rank) - (x->rank < y->rank);
}

/* The run's per-rank records from the gather's figures (st[k]: part k's), in rank order.
 * This rank's own part of a pi or memfd sort (k 0) is what it ran here: `own` samples or
 * keys in own_ns of its engine; its exchange is the rest of the span's wall time (for a sort,
 * sampling and partitioning too). A span wider than a RESULT lists gets none. */
static void span_rows(const hy_engines *e, const hy_job_spec *s, hy_mpi_rank_stat *st,
                      bool own_part, uint64_t own, uint64_t own_ns, uint64_t wall,
                      hy_run_once *o)
{
    o->span.n = 0;
    if (s->ranks > HY_IPC_RANK_ROWS_MAX)
        return;
    if (own_part) {
        st[0].rank = hy_mpi_rank(e->mpi);
        st[0].share = own;
        st[0].compute_ns = own_ns;
        st[0].exchange_ns = wall > own_ns + st[0].io_ns ? wall - own_ns - st[0].io_ns : 0;
    }
    for (unsigned k = 0; k < s->ranks; k++)
        o->span.r[k] = (hy_rank_row){.rank = (uint32_t)st[k].rank, .share = st[k].share,
                                     .compute_ns = st[k].compute_ns,
                                     .exchange_ns = st[k].exchange_ns, .io_ns = st[k].io_ns,
                                     .bytes_sent = st[k].bytes_sent};
    o->span.n = s->ranks;
    qsort(o->span.r, o->span.n, sizeof *o->span.r, cmp_rank);
}

int hy_ranks_pi(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                const hy_run_io *io, hy_run_once *o, hy_error *err)
{
    const hy_backend_ops *b = hy_backend_get(r->backend);
    HY_ASSERT(b != NULL && e->mpi != NULL && s->ranks > 1 && s->first == 0);
    hy_mpi_part proto = {.kind = HY_MPI_PI, .backend = r->backend, .threads = r->threads,
                         .mode = s->mode,
                         .nogil = s->nogil, .seed = s->seed};
    uint64_t t0 = hy_now_ns(), token, first, count;
    hy_mpi_rank_stat *st = calloc(s->ranks, sizeof *st);
    if (!st)
        return hy_error_set(err, HY_ENOMEM, "no memory for %u ranks' figures", s->ranks);
    int rc = hy_mpi_pi_scatter(e->mpi, &proto, s->n, s->ranks, &token, err);
    if (rc) {
        free(st);
        return rc;
    }
    hy_mpi_split(s->n, s->ranks, 0, &first, &count); /* part 0: [0, count), never empty */
    hy_job_spec own = *s;
    own.n = count;
    own.ranks = 1;
    rc = b->pi(e, &own, r, io, o, err);
    uint64_t hits = o->hits, own_ns = hy_now_ns() - t0;
    hy_error gerr = {0};
    /* A failed own part still collects the span (dropping it), so no answer lingers. */
    int grc = hy_mpi_gather(e->mpi, token, rc ? drop : io_cancelled, (void *)io,
                            run_held_part, (void *)e, &hits, st, &gerr);
    if (!rc && !grc)
        span_rows(e, s, st, true, count, own_ns, hy_now_ns() - t0, o);
    free(st);
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

/* A part checked against this daemon's backend (env NULL: nothing to check it against). */
/* A part on a device runs on this rank's first served one (the part names none: the ranks'
 * devices are their own). Then the backend's own check, when env is given. */
static int check_part(const hy_backend_env *env, const hy_mpi_part *p, hy_job_spec *s,
                      hy_error *err)
{
    if (!env)
        return 0;
    if (hy_backend_get(p->backend)->device && env->nowned)
        s->device = env->owned[0];
    hy_row_spec row = {.backend = p->backend, .threads = p->threads};
    return hy_backend_get(p->backend)->check(env, s, &row, err);
}

int hy_ranks_part_spec(const hy_backend_env *env, const hy_mpi_part *p,
                       uint32_t switch_interval_us, hy_job_spec *s, hy_error *err)
{
    if (!spans(p->kind == HY_MPI_SORT ? HY_JOB_SORT : HY_JOB_PI, p->backend))
        return hy_error_set(err, HY_EBACKEND, "backend %d does not run a part of a span",
                            p->backend);
    if (p->mode != HY_MODE_SPLIT && p->mode != HY_MODE_REPLICATE)
        return hy_error_set(err, HY_EINVAL, "mode %d is not split or replicate", p->mode);
    if (p->kind == HY_MPI_SORT) {
        size_t size = hy_dtype_size(p->dtype);
        if (size == 0 || p->count == 0 || p->count > SIZE_MAX / size)
            return hy_error_set(err, HY_EINVAL, "a sort part of %" PRIu64 " elements of dtype "
                                "%d", p->count, p->dtype);
        *s = (hy_job_spec){.kind = hy_kind_get(HY_JOB_SORT), .n = p->count, .dtype = p->dtype,
                           .mode = p->mode, .nogil = p->nogil,
                           .switch_interval_us = switch_interval_us, .repeat = 1, .warmup = 0,
                           .backend = p->backend, .threads = p->threads,
                           .transport = HY_TRANSPORT_PIPE, .backends = 1u << p->backend,
                           .transports = 1u << HY_TRANSPORT_PIPE, .array = HY_ARRAY_INLINE,
                           .ranks = 1, .array_bytes = (size_t)p->count * size};
        return check_part(env, p, s, err);
    }
    if (p->kind != HY_MPI_PI)
        return hy_error_set(err, HY_EINVAL, "a part of kind %d", p->kind);
    if (p->count == 0 || p->first > HY_HOST_PI_MAX_SAMPLES - p->count)
        return hy_error_set(err, HY_EINVAL, "part [%llu, +%llu) is outside pi's stream",
                            (unsigned long long)p->first, (unsigned long long)p->count);
    *s = (hy_job_spec){.kind = hy_kind_get(HY_JOB_PI), .n = p->count, .first = p->first,
                       .seed = p->seed, .mode = p->mode, .nogil = p->nogil,
                       .switch_interval_us = switch_interval_us, .repeat = 1, .warmup = 0,
                       .backend = p->backend, .threads = p->threads,
                       .transport = HY_TRANSPORT_PIPE, .backends = 1u << p->backend,
                       .transports = 1u << HY_TRANSPORT_PIPE, .ranks = 1};
    return check_part(env, p, s, err);
}

/* ---- sort across ranks ---- */

/* Samples per rank of the regular sample the splitters come from: a bucket's share then
 * strays from n / ranks by about sqrt(ranks / samples) of it (under 2% here), well inside the
 * 1.1x bound docs/mpi.md promises. */
#define SAMPLES_PER_RANK 4096u

static int cmp_skey(const void *a, const void *b)
{
    const struct hy_skey *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* The key of element i in hybridd's order, widened to 64 bits. */
struct keyer {
    const char *a;
    size_t size;
    struct hy_xform_u32 t32;
    struct hy_xform_u64 t64;
};

static inline uint64_t key_at(const struct keyer *k, uint64_t i)
{
    if (k->size == 4) {
        uint32_t x;
        memcpy(&x, k->a + 4 * i, 4);
        return hy_to_key_u32(x, &k->t32);
    }
    uint64_t x;
    memcpy(&x, k->a + 8 * i, 8);
    return hy_to_key_u64(x, &k->t64);
}

/* ranks - 1 splitters from a regular sample: S evenly spaced elements, sorted by (key, index),
 * every S / ranks-th of them. */
static int choose_splitters(const struct keyer *k, uint64_t n, unsigned ranks, struct hy_skey *sp,
                            hy_error *err)
{
    uint64_t S = n < (uint64_t)SAMPLES_PER_RANK * ranks ? n : (uint64_t)SAMPLES_PER_RANK * ranks;
    struct hy_skey *smp = malloc(S * sizeof *smp);
    if (!smp)
        return hy_error_set(err, HY_ENOMEM, "no memory for a sample of %" PRIu64 " keys", S);
    uint64_t q = n / S, r = n % S;
    for (uint64_t i = 0; i < S; i++) {
        uint64_t idx = i * q + i * r / S + q / 2; /* < n: the middle of the i-th stride */
        smp[i] = (struct hy_skey){key_at(k, idx), idx};
    }
    qsort(smp, S, sizeof *smp, cmp_skey);
    for (unsigned b = 1; b < ranks; b++)
        sp[b - 1] = smp[(uint64_t)b * S / ranks];
    free(smp);
    return 0;
}

/* What a sort span keeps per bucket (one allocation). */
struct buckets {
    uint64_t *cnt, *off, *pos;
    char **buf;
    struct hy_skey *sp;
};

static int buckets_alloc(struct buckets *bk, unsigned ranks, hy_error *err)
{
    size_t per = 3 * sizeof(uint64_t) + sizeof(char *) + sizeof(struct hy_skey);
    char *m = calloc(ranks, per);
    if (!m)
        return hy_error_set(err, HY_ENOMEM, "no memory for %u buckets", ranks);
    bk->sp = (struct hy_skey *)m;
    bk->cnt = (uint64_t *)(m + ranks * sizeof(struct hy_skey));
    bk->off = bk->cnt + ranks;
    bk->pos = bk->off + ranks;
    bk->buf = (char **)(bk->pos + ranks);
    return 0;
}

/* The buckets of s's array: their sizes, offsets and (k >= 1) buffers. */
static int split_array(const hy_job_spec *s, char *a, struct buckets *bk, hy_error *err)
{
    unsigned ranks = s->ranks;
    uint64_t *cnt = bk->cnt, *off = bk->off;
    char **buf = bk->buf;
    struct hy_skey *sp = bk->sp;
    struct keyer k = {.a = a, .size = hy_dtype_size(s->dtype),
                      .t32 = hy_xform_u32_of(hy_key_spec_of(s->dtype)),
                      .t64 = hy_xform_u64_of(hy_key_spec_of(s->dtype))};
    if (s->n == 0)
        return 0; /* nothing to split: every bucket empty */
    int rc = choose_splitters(&k, s->n, ranks, sp, err);
    if (rc)
        return rc;
    /* The count and the copy (common/span.c): bucket 0 stays at the array's front, as
     * buf[0]; the span takes buffers 1.. only. */
    struct hy_stree *tr = hy_stree_new(sp, ranks - 1, s->dtype);
    uint16_t *ids = hy_mpi_buf_alloc(s->n * sizeof *ids);
    if (!tr || !ids) {
        free(tr);
        hy_mpi_buf_free(ids);
        return hy_error_set(err, HY_ENOMEM, "no memory to partition %" PRIu64 " keys", s->n);
    }
    hy_span_count(a, s->n, s->dtype, 0, tr, cnt, ids);
    free(tr);
    for (unsigned b = 0; b < ranks; b++) {
        off[b] = b ? off[b - 1] + cnt[b - 1] : 0;
        if (b && cnt[b] && !(buf[b] = hy_mpi_buf_alloc(cnt[b] * k.size))) {
            for (unsigned j = 1; j < b; j++)
                hy_mpi_buf_free(buf[j]);
            hy_mpi_buf_free(ids);
            return hy_error_set(err, HY_ENOMEM, "no memory for bucket %u (%" PRIu64 " keys)", b,
                                cnt[b]);
        }
    }
    buf[0] = a;
    hy_span_scatter(a, s->n, k.size, ids, ranks, buf, bk->pos);
    buf[0] = NULL;
    hy_mpi_buf_free(ids);
    return 0;
}

/* The span's figures, for the log (docs/scale-out.md reads them): each rank's share, each
 * phase, and the bytes that crossed between ranks (each bucket out and back). */
static void log_sort_span(const hy_job_spec *s, const uint64_t *cnt, uint64_t t0, uint64_t t1,
                          uint64_t t2, uint64_t t3)
{
    char shares[256];
    size_t at = 0;
    uint64_t moved = 0;
    for (unsigned b = 0; b < s->ranks && at < sizeof shares - 24; b++) {
        at += (size_t)snprintf(shares + at, sizeof shares - at, "%s%" PRIu64, b ? "," : "",
                               cnt[b]);
        moved += b ? 2 * cnt[b] * hy_dtype_size(s->dtype) : 0;
    }
    hy_log(HY_LOG_INFO, "sort across %u ranks: n %" PRIu64 ", shares %s; sample+partition "
           "%.3f ms, own bucket %.3f ms, the others' after it %.3f ms; %" PRIu64 " bytes "
           "between ranks (%.2f per key)", s->ranks, s->n, shares, (double)(t1 - t0) / 1e6,
           (double)(t2 - t1) / 1e6, (double)(t3 - t2) / 1e6, moved,
           s->n ? (double)moved / (double)s->n : 0.0);
}

int hy_ranks_sort(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                  const hy_run_io *io, hy_run_once *o, hy_error *err)
{
    const hy_backend_ops *b = hy_backend_get(r->backend);
    HY_ASSERT(b != NULL && e->mpi != NULL && s->ranks > 1);
    uint64_t t0 = hy_now_ns(), token;
    struct buckets bk = {0};
    int rc = buckets_alloc(&bk, s->ranks, err);
    if (rc)
        return rc;
    hy_mpi_rank_stat *st = calloc(s->ranks, sizeof *st);
    if (!st) {
        free(bk.sp);
        return hy_error_set(err, HY_ENOMEM, "no memory for %u ranks' figures", s->ranks);
    }
    if ((rc = split_array(s, io->array, &bk, err))) {
        free(bk.sp);
        free(st);
        return rc;
    }
    uint64_t t1 = hy_now_ns(), *cnt = bk.cnt;
    hy_mpi_part proto = {.kind = HY_MPI_SORT, .backend = r->backend, .threads = r->threads,
                         .mode = s->mode, .nogil = s->nogil, .dtype = s->dtype};
    rc = hy_mpi_sort_scatter(e->mpi, &proto, s->ranks, (void *const *)bk.buf, cnt, bk.off,
                             io->array, &token, err); /* takes the buffers */
    if (rc) {
        free(bk.sp);
        free(st);
        return rc;
    }
    hy_job_spec own = *s;
    own.n = cnt[0];
    own.ranks = 1;
    own.array_bytes = (size_t)cnt[0] * hy_dtype_size(s->dtype);
    hy_run_io oio = *io;
    oio.array_fd = -1; /* the bucket, not the client's memfd, is what it sorts */
    oio.pristine = NULL;
    rc = cnt[0] ? b->sort(e, &own, r, &oio, o, err) : 0;
    uint64_t t2 = hy_now_ns(), hits = 0;
    hy_error gerr = {0};
    /* A failed own bucket still collects the span (dropping it), so no answer lingers. */
    int grc = hy_mpi_gather(e->mpi, token, rc ? drop : io_cancelled, (void *)io, run_held_part,
                            (void *)e, &hits, st, &gerr);
    uint64_t t3 = hy_now_ns();
    if (!rc && !grc) {
        log_sort_span(s, cnt, t0, t1, t2, t3);
        span_rows(e, s, st, true, cnt[0], t2 - t1, t3 - t0, o);
    }
    free(st);
    free(bk.sp);
    if (rc)
        return rc;
    if (grc) {
        *err = gerr;
        return grc;
    }
    o->wall_ns = t3 - t0;
    return 0;
}

/* ---- sort of .npy paths, each rank reading its slice (mpi.h, hy_mpi_files_scatter) ---- */

/* The splitters from a regular sample of the file: the elements choose_splitters would take
 * from the array (the middle of each of S strides), read in one MPI-IO call. */
static int file_splitters(const hy_engines *e, const hy_job_spec *s, uint64_t in_at,
                          struct hy_skey *sp, hy_error *err)
{
    uint64_t n = s->n, S = n < (uint64_t)SAMPLES_PER_RANK * s->ranks
                               ? n : (uint64_t)SAMPLES_PER_RANK * s->ranks;
    size_t esize = hy_dtype_size(s->dtype);
    uint64_t *idx = malloc(S * sizeof *idx);
    char *raw = malloc(S * esize);
    struct hy_skey *smp = malloc(S * sizeof *smp);
    int rc = 0;
    if (!idx || !raw || !smp) {
        rc = hy_error_set(err, HY_ENOMEM, "no memory for a sample of %" PRIu64 " keys", S);
        goto out;
    }
    uint64_t q = n / S, r = n % S;
    for (uint64_t i = 0; i < S; i++)
        idx[i] = i * q + i * r / S + q / 2;
    if ((rc = hy_mpi_file_gather(e->mpi, HY_MPI_FILE_GATHER, s->input, in_at, raw, S * esize,
                                 idx, esize, NULL, err)))
        goto out;
    struct keyer k = {.a = raw, .size = esize,
                      .t32 = hy_xform_u32_of(hy_key_spec_of(s->dtype)),
                      .t64 = hy_xform_u64_of(hy_key_spec_of(s->dtype))};
    for (uint64_t i = 0; i < S; i++)
        smp[i] = (struct hy_skey){key_at(&k, i), idx[i]};
    qsort(smp, S, sizeof *smp, cmp_skey);
    for (unsigned b = 1; b < s->ranks; b++)
        sp[b - 1] = smp[(uint64_t)b * S / s->ranks];
out:
    free(idx);
    free(raw);
    free(smp);
    return rc;
}

int hy_ranks_sort_slices(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                         const hy_run_io *io, uint64_t in_at, uint64_t out_at, hy_run_once *o,
                         hy_error *err)
{
    HY_ASSERT(e->mpi != NULL && s->ranks > 1 && s->n > 0);
    uint64_t t0 = hy_now_ns(), token, hits = 0;
    struct hy_skey *sp = calloc(s->ranks, sizeof *sp);
    hy_mpi_rank_stat *st = calloc(s->ranks, sizeof *st);
    if (!sp || !st) {
        free(sp);
        free(st);
        return hy_error_set(err, HY_ENOMEM, "no memory for %u splitters", s->ranks);
    }
    int rc = file_splitters(e, s, in_at, sp, err);
    uint64_t sample_ns = hy_now_ns() - t0;
    hy_mpi_part proto = {.kind = HY_MPI_SORT, .backend = r->backend, .threads = r->threads,
                         .mode = s->mode, .nogil = s->nogil, .dtype = s->dtype};
    if (!rc)
        rc = hy_mpi_files_scatter(e->mpi, &proto, s->ranks, s->n, in_at, out_at, sp, s->input,
                                  s->output, &token, err);
    free(sp);
    if (rc) {
        free(st);
        return rc;
    }
    /* Every rank's bucket, this one's included, comes back as a part this gather runs or
     * as a peer's answer: the span ends when every run is written. */
    rc = hy_mpi_gather(e->mpi, token, io_cancelled, (void *)io, run_held_part, (void *)e,
                       &hits, st, err);
    if (!rc) { /* every part answered, this rank's too; its sample was I/O before them */
        st[0].io_ns += sample_ns;
        span_rows(e, s, st, false, 0, 0, 0, o);
    }
    free(st);
    if (rc)
        return rc;
    hy_log(HY_LOG_INFO, "sort across %u ranks from their slices of %s: n %" PRIu64 ", %.3f "
           "ms", s->ranks, s->input, s->n, (double)(hy_now_ns() - t0) / 1e6);
    o->wall_ns = hy_now_ns() - t0;
    /* What each rank's bucket ran as: the row's own configuration (sort releases the lock
     * unless told to hold it). */
    o->threads = r->threads;
    o->copies = 1;
    o->nogil = r->backend == HY_BACKEND_LOCKED && s->nogil != HY_NOGIL_HOLD;
    return 0;
}
