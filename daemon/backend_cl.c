/* daemon/backend_cl: opencl — kernels on one OpenCL device (cl/), with the transfers timed
 * apart from the kernel. */
#include "backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static int need_cl(const hy_engines *e, hy_error *err)
{
    if (!e->cl)
        return hy_error_set(err, HY_EBACKEND, "OpenCL is not enabled in this daemon");
    return 0;
}

static hy_cl_opts cl_opts(const hy_job_spec *s, const hy_run_io *io)
{
    return (hy_cl_opts){.device = s->device, .progress = io->progress,
                        .progress_ctx = io->progress_ctx, .first = s->first};
}

/* The device decides how many threads: a row reports none of ours. */
static void take_timing(hy_run_once *o)
{
    o->wall_ns = o->cl.wall_ns;
    o->threads = 0;
    o->copies = 1;
}

/* A job that failed in an OpenCL call leaves its device recovering (cl.h): say so once, with
 * the cause, so an operator reading the log knows why the next job starts slower. */
static int note_failure(const hy_engines *e, unsigned dev, int rc, const hy_error *err)
{
    hy_cl_device_info info;
    if (rc && rc != HY_ECANCELED && hy_cl_describe(e->cl, dev, &info, NULL) == 0 &&
        info.recovering)
        hy_log(HY_LOG_WARNING, "OpenCL device %u (%s) failed a job (%s); its context, queue "
               "and programs are rebuilt before its next job", dev, info.name, err->msg);
    return rc;
}

/* hy_engines.dev_lock around a device's job, when there are locks (hybridd --mpi). */
static void lock_device(const hy_engines *e, unsigned dev, bool on)
{
    if (!e->dev_lock || !e->cl || dev >= hy_cl_device_count(e->cl))
        return;
    if (on)
        pthread_mutex_lock(&e->dev_lock[dev]);
    else
        pthread_mutex_unlock(&e->dev_lock[dev]);
}

static int cl_pi_locked(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                        const hy_run_io *io, hy_run_once *o, hy_error *err)
{
    (void)r;
    int rc;
    if ((rc = need_cl(e, err)))
        return rc;
    hy_cl_opts co = cl_opts(s, io);
    hy_cl_pi_result res;
    if ((rc = hy_cl_pi(e->cl, &co, s->seed, s->n, &res, err)))
        return note_failure(e, s->device, rc, err);
    o->hits = res.hits;
    o->estimate = res.estimate;
    o->std_error = res.std_error;
    o->cl = res.timing;
    take_timing(o);
    return 0;
}

/* ---- sort: in key-range parts when the array is more than the device holds ---- */

/* The most bytes of keys one device sort takes: its largest buffer, and half its memory less
 * an eighth for the sort's tables (cl/sort.c keeps the keys twice). Tests lower it
 * (hy_engines.cl_part_bytes) to reach the parts with small arrays. */
static uint64_t part_bytes(const hy_engines *e, unsigned dev)
{
    hy_cl_device_info info;
    if (hy_cl_describe(e->cl, dev, &info, NULL) != 0)
        return UINT64_MAX; /* the sort itself says what is wrong with the device */
    uint64_t cap = info.max_alloc, mem = info.global_mem / 2 - info.global_mem / 16;
    cap = mem < cap ? mem : cap;
    return e->cl_part_bytes && e->cl_part_bytes < cap ? e->cl_part_bytes : cap;
}

/* A part's progress as the whole job's: its keys' share of n, after the parts before it. */
struct part_progress {
    const hy_run_io *io;
    uint64_t before, keys, n;
};

static int on_part_progress(void *ctx, uint64_t done, uint64_t total)
{
    struct part_progress *p = ctx;
    uint64_t in = total ? (uint64_t)((double)done / (double)total * (double)p->keys) : 0;
    return p->io->progress ? p->io->progress(p->io->progress_ctx, p->before + in, p->n) : 0;
}

/* Cuts the keys into disjoint key ranges of at most `cap` bytes each (the engine's sampled
 * splitters, hy_host_sort_cut: no merge after) into a copy, sorts each range on the device
 * there, and writes the whole back: a failed or cancelled job leaves the array as it came. */
static int sort_in_parts(const hy_engines *e, const hy_job_spec *s, const hy_run_io *io,
                         uint64_t cap, hy_cl_timing *sum, hy_error *err)
{
    size_t n = (size_t)s->n, size = hy_dtype_size(s->dtype);
    /* A quarter more parts than the bytes need: a sampled cut is near its shares, not on. */
    uint64_t want = ((uint64_t)n * size + cap - 1) / cap, parts = want + (want + 3) / 4;
    if (parts > HY_HOST_CUT_MAX_PARTS)
        return hy_error_set(err, HY_ELIMIT, "%zu bytes of keys would need %llu parts of at "
                            "most %llu bytes on OpenCL device %u; a job is cut into at most %d",
                            n * size, (unsigned long long)parts, (unsigned long long)cap,
                            s->device, HY_HOST_CUT_MAX_PARTS);
    double share[HY_HOST_CUT_MAX_PARTS];
    size_t bounds[HY_HOST_CUT_MAX_PARTS + 1];
    for (unsigned i = 0; i < parts; i++)
        share[i] = 1;
    char *cut = malloc(n * size);
    if (!cut)
        return hy_error_set(err, HY_ENOMEM, "no memory to cut %zu keys into parts", n);
    /* On this executor's thread: the CPU pool may be running another job. */
    int rc = hy_host_sort_cut(NULL, NULL, s->dtype, io->array, cut, n, share, (unsigned)parts,
                              bounds, err);
    for (unsigned i = 0; rc == 0 && i < parts; i++) {
        size_t cnt = bounds[i + 1] - bounds[i];
        if (cnt == 0)
            continue;
        struct part_progress pp = {.io = io, .before = bounds[i], .keys = cnt, .n = n};
        hy_cl_opts co = {.device = s->device, .progress = on_part_progress, .progress_ctx = &pp};
        hy_cl_sort_result res;
        rc = hy_cl_sort(e->cl, &co, s->dtype, cut + bounds[i] * size, cnt, &res, err);
        if (rc == 0)
            hy_cl_timing_add(sum, &res.timing);
    }
    if (rc == 0) {
        memcpy(io->array, cut, n * size);
        hy_log(HY_LOG_INFO, "opencl: %zu keys sorted in %u key-range parts of at most %llu "
               "bytes on device %u", n, (unsigned)parts, (unsigned long long)cap, s->device);
    }
    free(cut);
    return rc;
}

static int cl_sort_locked(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                          const hy_run_io *io, hy_run_once *o, hy_error *err)
{
    (void)r;
    int rc;
    if ((rc = need_cl(e, err)))
        return rc;
    uint64_t cap = part_bytes(e, s->device), t0 = hy_now_ns();
    if (s->n * hy_dtype_size(s->dtype) > cap) {
        o->cl = (hy_cl_timing){0};
        if ((rc = sort_in_parts(e, s, io, cap, &o->cl, err)))
            return note_failure(e, s->device, rc, err);
        o->cl.wall_ns = hy_now_ns() - t0;
        take_timing(o);
        return 0;
    }
    hy_cl_opts co = cl_opts(s, io);
    hy_cl_sort_result res;
    if ((rc = hy_cl_sort(e->cl, &co, s->dtype, io->array, (size_t)s->n, &res, err)))
        return note_failure(e, s->device, rc, err);
    o->cl = res.timing;
    take_timing(o);
    return 0;
}

static bool owns_device(const hy_backend_env *env, unsigned dev)
{
    for (unsigned i = 0; i < env->nowned; i++)
        if (env->owned[i] == dev)
            return true;
    return false;
}

typedef int cl_run_fn(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                      const hy_run_io *io, hy_run_once *o, hy_error *err);

/* fn with the job's device locked (lock_device). */
static int on_device(cl_run_fn *fn, const hy_engines *e, const hy_job_spec *s,
                     const hy_row_spec *r, const hy_run_io *io, hy_run_once *o, hy_error *err)
{
    lock_device(e, s->device, true);
    int rc = fn(e, s, r, io, o, err);
    lock_device(e, s->device, false);
    return rc;
}

static int cl_pi(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                 const hy_run_io *io, hy_run_once *o, hy_error *err)
{
    return on_device(cl_pi_locked, e, s, r, io, o, err);
}

static int cl_sort(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                   const hy_run_io *io, hy_run_once *o, hy_error *err)
{
    return on_device(cl_sort_locked, e, s, r, io, o, err);
}

static int cl_check(const hy_backend_env *env, const hy_job_spec *s, const hy_row_spec *r,
                    hy_error *err)
{
    (void)r;
    unsigned dev = s->device;
    /* A comparison's device row runs one copy whatever the CPU rows' mode. */
    if (!s->kind->compare && s->mode == HY_MODE_REPLICATE)
        return hy_error_set(err, HY_EINVAL, "opencl runs one copy of a job; replicate mode is "
                            "for the CPU backends");
    if (!env->e.cl)
        return hy_error_set(err, HY_EBACKEND, "OpenCL is off in this daemon (opencl.enabled)");
    if (owns_device(env, dev))
        return 0;
    /* The device's own problem first (a failed build says why), even when none is usable. */
    if (dev < env->ndevices && env->devrec[dev].problem[0])
        return hy_error_set(err, HY_EBACKEND, "OpenCL device %u is not usable: %s", dev,
                            env->devrec[dev].problem);
    if (dev >= env->ndevices)
        return hy_error_set(err, HY_EBACKEND, "OpenCL device %u does not exist: OpenCL found %u "
                            "device(s) (see DEVICES)", dev, env->ndevices);
    if (env->nowned == 0)
        return hy_error_set(err, HY_EBACKEND, "this daemon has no usable OpenCL device");
    return hy_error_set(err, HY_EBACKEND,
                        "OpenCL device %u is not one this daemon serves (see DEVICES)", dev);
}

static void cl_describe(const hy_backend_env *env, hy_msg_devices_reply *r)
{
    r->ndevices = env->ndevices;
    r->devices = env->devrec;
}

/* Label what ran: PoCL's CPU device is never called a GPU. */
static void cl_finish(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                      const hy_run_once *m, hy_result_row *row)
{
    (void)r;
    row->device = (uint16_t)s->device;
    row->passes = m->cl.passes;
    row->bytes_moved = m->cl.bytes_moved;
    row->overlap_ns = m->cl.overlap_ns;
    hy_cl_device_info info;
    if (e->cl && hy_cl_describe(e->cl, s->device, &info, NULL) == 0)
        row->flags |= info.pocl_cpu ? HY_ROW_POCL_CPU
                       : info.type == HY_CL_TYPE_GPU ? HY_ROW_GPU : 0;
}

const hy_backend_ops hy_backend_opencl = {
    .id = HY_BACKEND_OPENCL, .plan = 0, .threads = 0, .device = true,
    .describe = cl_describe, .check = cl_check, .pi = cl_pi, .sort = cl_sort,
    .finish_row = cl_finish,
};

/* One device's record as DEVICES reports it. */
static void fill_record(unsigned i, const hy_cl_device_info *info, hy_device_record *r)
{
    r->index = i;
    r->type = (uint16_t)info->type;
    r->compute_units = info->compute_units;
    r->global_mem = info->global_mem;
    r->max_alloc = info->max_alloc;
    snprintf(r->name, sizeof r->name, "%.*s", (int)sizeof r->name - 1, info->name);
    snprintf(r->vendor, sizeof r->vendor, "%.*s", (int)sizeof r->vendor - 1, info->vendor);
    snprintf(r->driver, sizeof r->driver, "%.*s", (int)sizeof r->driver - 1, info->driver);
    snprintf(r->platform, sizeof r->platform, "%.*s", (int)sizeof r->platform - 1,
             info->platform);
    if (info->pocl_cpu)
        r->flags |= HY_DEV_POCL_CPU;
}

int hy_backend_cl_devices(hy_backend_env *env, bool all, const unsigned *listed,
                          unsigned nlisted, hy_error *err)
{
    hy_cl *cl = env->e.cl;
    unsigned n = cl ? hy_cl_device_count(cl) : 0;
    if (n > HY_IPC_DEVICES_MAX)
        n = HY_IPC_DEVICES_MAX;
    env->ndevices = n;
    env->nowned = 0;
    env->devrec = calloc(n ? n : 1, sizeof *env->devrec);
    env->owned = calloc(n ? n : 1, sizeof *env->owned);
    if (!env->devrec || !env->owned)
        return hy_error_set(err, HY_ENOMEM, "no memory for the device table");
    for (unsigned i = 0; i < n; i++) {
        hy_cl_device_info info;
        hy_device_record *r = &env->devrec[i];
        int rc = hy_cl_describe(cl, i, &info, err);
        if (rc)
            return rc;
        bool served = all;
        for (unsigned k = 0; k < nlisted; k++)
            served |= listed[k] == i;
        fill_record(i, &info, r);
        if (!info.usable)
            snprintf(r->problem, sizeof r->problem, "%.*s", (int)sizeof r->problem - 1,
                     info.problem);
        else if (!served)
            snprintf(r->problem, sizeof r->problem, "not served: opencl.devices does not list it");
        else {
            r->flags |= HY_DEV_USABLE;
            env->owned[env->nowned++] = i;
        }
        /* A forced kernel variant (HYBRIDD_CL_VARIANT, for tests) is said where it shows. */
        hy_log(info.usable && served ? HY_LOG_INFO : HY_LOG_WARNING,
               "OpenCL device %u: %s (%s, %s), %u compute units, %.1f GiB, %s: %s", i,
               info.name, hy_cl_type_label(&info), info.platform, info.compute_units,
               (double)info.global_mem / (1u << 30), hy_cl_variant_label(&info),
               r->problem[0] ? r->problem : info.from_cache ? "programs from the cache"
                                                            : "programs built");
    }
    for (unsigned k = 0; k < nlisted; k++)
        if (listed[k] >= n)
            hy_log(HY_LOG_WARNING, "opencl.devices lists device %u, which does not exist",
                   listed[k]);
    return 0;
}

void hy_backend_env_free(hy_backend_env *env)
{
    free(env->devrec);
    free(env->owned);
    env->devrec = NULL;
    env->owned = NULL;
    env->ndevices = env->nowned = 0;
}
