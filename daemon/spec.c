/* daemon/spec: the job kinds, and a SUBMIT made into a spec (a job's rows are planned from
 * the backend table, in backends.c). */
#include "spec.h"

static const hy_kind kinds[] = {
    {HY_JOB_PI, "pi", HY_JOB_PI, false, false, "samples", "limits.samples", HY_BACKEND_MASK_ALL, 1},
    {HY_JOB_SORT, "sort", HY_JOB_SORT, false, true, "elements", "limits.sort_elements",
     HY_BACKEND_MASK_ALL, 1},
    {HY_JOB_COMPARE_PI, "compare pi", HY_JOB_PI, true, false, "samples", "limits.samples",
     HY_BACKEND_MASK_ALL, 5},
    {HY_JOB_COMPARE_SORT, "compare sort", HY_JOB_SORT, true, true, "elements",
     "limits.sort_elements", HY_BACKEND_MASK_ALL, 5},
};

const hy_kind *hy_kind_get(int kind)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (kinds[i].kind == kind)
            return &kinds[i];
    return NULL;
}

/* What backend auto chooses is not the client's to name too: refused rather than ignored.
 * Replicate mode is refused because there the threads are the copies of the job, so the
 * choice would change the work itself. */
static int check_auto(const hy_msg_submit *m, hy_error *err)
{
    const char *named = m->threads ? "threads" : m->transport ? "transport"
                        : m->device != HY_IPC_DEVICE_DEFAULT ? "device"
                        : m->nogil ? "lock choice (nogil)" : NULL;
    if (named)
        return hy_error_set(err, HY_EINVAL, "backend auto chooses the configuration itself, so "
                            "its job names no %s; name a backend to choose it yourself", named);
    if (m->mode == HY_MODE_REPLICATE)
        return hy_error_set(err, HY_EINVAL, "backend auto chooses among split-mode runs: in "
                            "replicate mode the threads are copies of the job, so choosing them "
                            "would change the work");
    return 0;
}

int hy_job_spec_make(const hy_msg_submit *m, uint32_t switch_interval_us, hy_job_spec *out,
                     hy_error *err)
{
    const hy_kind *k = hy_kind_get(m->job);
    if (!k)
        return hy_error_set(err, HY_EINVAL, "job %u is not pi (1), sort (2), compare pi (3) or "
                            "compare sort (4)", m->job);
    if (m->repeat > HY_SPEC_MAX_REPEAT)
        return hy_error_set(err, HY_ELIMIT, "repeat %u is above %u", m->repeat,
                            HY_SPEC_MAX_REPEAT);
    if (m->switch_interval_us > 1000000)
        return hy_error_set(err, HY_EINVAL, "switch_interval_us %u is above 1000000 (1 s)",
                            m->switch_interval_us);
    if (k->work == HY_JOB_PI && m->n == 0)
        return hy_error_set(err, HY_EINVAL, "a pi job needs at least 1 sample");
    bool chooses = !k->compare && m->backend == HY_BACKEND_AUTO;
    int rc;
    if (chooses && (rc = check_auto(m, err)))
        return rc;
    HY_ASSERT(!k->array || hy_dtype_size(m->dtype) > 0);
    HY_ASSERT(m->nthreads_list <= HY_IPC_THREADS_MAX);
    *out = (hy_job_spec){
        .kind = k,
        .n = m->n,
        .seed = m->seed,
        .dtype = m->dtype,
        .mode = m->mode ? m->mode : HY_MODE_SPLIT,
        .nogil = m->nogil,
        .switch_interval_us = m->switch_interval_us ? m->switch_interval_us
                                                    : switch_interval_us,
        .repeat = m->repeat ? m->repeat : k->repeat,
        .warmup = m->warmup ? m->warmup : k->compare ? 1 : 0,
        .device = m->device,
        .backend = k->compare ? 0 : m->backend,
        .threads = k->compare ? 0 : m->threads,
        .transport = m->transport ? m->transport : HY_TRANSPORT_PIPE,
        /* auto: hy_job_resolve chooses the backend, and sets its bit */
        .backends = k->compare ? m->backends : chooses ? 0 : 1u << m->backend,
        .transports = m->transports ? m->transports : 1u << HY_TRANSPORT_PIPE,
        .nthreads = m->nthreads_list,
        .ranks = m->ranks, /* checked by admission (hy_ranks_resolve): it needs the MPI world */
        .array = (int)m->array,
        /* n is bounded by the codec for an inline array and by admission for a memfd
         * before anything is allocated on the strength of it. */
        .array_bytes = k->array ? (size_t)m->n * hy_dtype_size(m->dtype) : 0,
    };
    for (unsigned i = 0; i < out->nthreads; i++)
        out->threads_list[i] = m->threads_list[i];
    return 0;
}
