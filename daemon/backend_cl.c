/* daemon/backend_cl: opencl — kernels on one OpenCL device (cl/), with the transfers timed
 * apart from the kernel. */
#include "backend.h"

static int need_cl(const hy_engines *e, hy_error *err)
{
    if (!e->cl)
        return hy_error_set(err, HY_EBACKEND, "OpenCL is not enabled in this daemon");
    return 0;
}

static hy_cl_opts cl_opts(const hy_job_spec *s, const hy_run_io *io)
{
    return (hy_cl_opts){.device = s->device, .progress = io->progress,
                        .progress_ctx = io->progress_ctx};
}

/* The device decides how many threads: a row reports none of ours. */
static void take_timing(hy_run_once *o)
{
    o->wall_ns = o->cl.wall_ns;
    o->threads = 0;
    o->copies = 1;
}

static int cl_pi(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                 const hy_run_io *io, hy_run_once *o, hy_error *err)
{
    (void)r;
    int rc;
    if ((rc = need_cl(e, err)))
        return rc;
    hy_cl_opts co = cl_opts(s, io);
    hy_cl_pi_result res;
    if ((rc = hy_cl_pi(e->cl, &co, s->seed, s->n, &res, err)))
        return rc;
    o->hits = res.hits;
    o->estimate = res.estimate;
    o->std_error = res.std_error;
    o->cl = res.timing;
    take_timing(o);
    return 0;
}

static int cl_sort(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                   const hy_run_io *io, hy_run_once *o, hy_error *err)
{
    (void)r;
    int rc;
    if ((rc = need_cl(e, err)))
        return rc;
    hy_cl_opts co = cl_opts(s, io);
    hy_cl_sort_result res;
    if ((rc = hy_cl_sort(e->cl, &co, s->dtype, io->array, (size_t)s->n, &res, err)))
        return rc;
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
    (void)m;
    row->device = (uint16_t)s->device;
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
