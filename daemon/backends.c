/* daemon/backends: the table of backends, and a job's rows planned from it. */
#include "backend.h"

/* In the order of a comparison's rows: the serial baseline first (every speed-up is over
 * it), then the thread backends, the worker processes, and the device. */
static const hy_backend_ops *const table[] = {
    &hy_backend_serial, &hy_backend_native, &hy_backend_locked, &hy_backend_process,
    &hy_backend_opencl,
};
#define NTABLE (sizeof table / sizeof table[0])

const hy_backend_ops *hy_backend_get(int id)
{
    for (unsigned i = 0; i < NTABLE; i++)
        if (table[i]->id == id)
            return table[i];
    return NULL;
}

const hy_backend_ops *const *hy_backend_all(unsigned *n)
{
    *n = NTABLE;
    return table;
}

/* A comparison's rows for one backend: one, or one per thread count (and per transport). */
static unsigned plan_backend(const hy_job_spec *s, const hy_backend_ops *b, hy_row_spec *out)
{
    unsigned k = 0;
    if (!(b->plan & HY_PLAN_PER_THREADS)) {
        out[k++] = (hy_row_spec){.backend = b->id, .threads = b->threads};
        return k;
    }
    int first = HY_TRANSPORT_PIPE, last = HY_TRANSPORT_PIPE;
    if (b->plan & HY_PLAN_PER_TRANSPORT)
        last = HY_TRANSPORT_SHM;
    for (int x = first; x <= last; x++) {
        if ((b->plan & HY_PLAN_PER_TRANSPORT) && !(s->transports & (1u << x)))
            continue;
        for (unsigned t = 0; t < s->nthreads; t++)
            out[k++] = (hy_row_spec){.backend = b->id, .threads = s->threads_list[t],
                                     .transport = b->plan & HY_PLAN_PER_TRANSPORT ? x : 0};
    }
    return k;
}

unsigned hy_job_plan(const hy_job_spec *s, hy_row_spec plan[HY_PLAN_MAX])
{
    if (!s->kind->compare) {
        plan[0] = (hy_row_spec){.backend = s->backend, .threads = s->threads,
                                .transport = s->transport};
        return 1;
    }
    unsigned k = 0;
    for (unsigned i = 0; i < NTABLE; i++) {
        const hy_backend_ops *b = table[i];
        uint32_t bit = 1u << b->id;
        if (!(s->kind->backends & bit))
            continue;
        if (!(b->plan & HY_PLAN_ALWAYS) && !(s->backends & bit))
            continue;
        if ((b->plan & HY_PLAN_SPLIT_ONLY) && s->mode == HY_MODE_REPLICATE)
            continue;
        k += plan_backend(s, b, plan + k);
        HY_ASSERT(k <= HY_PLAN_MAX);
    }
    return k;
}
