/* daemon/backends: the table of backends, and a job's rows planned from it. */
#include "backend.h"

#include "auto.h"

/* In the order of a comparison's rows: the serial baseline first (every speed-up is over
 * it), then the thread backends, the worker processes, the device, and all of them at once. */
static const hy_backend_ops *const table[] = {
    &hy_backend_serial, &hy_backend_native, &hy_backend_locked, &hy_backend_process,
    &hy_backend_opencl, &hy_backend_hybrid,
};
#define NTABLE (sizeof table / sizeof table[0])
_Static_assert(NTABLE == HY_BACKEND_COUNT, "an object for every backend named in common/");

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

/* The threads a row of `b` takes when the job names none. */
static unsigned pool_of(const hy_backend_env *env, const hy_backend_ops *b)
{
    return b->pool ? b->pool(env) : b->threads;
}

/* Whether this daemon has what `b` runs on: a served device, or a pool. */
static bool available(const hy_backend_env *env, const hy_backend_ops *b)
{
    return b->device ? env->nowned > 0 : pool_of(env, b) > 0;
}

/* The backends an empty mask stands for: each with resources here; a backend with rows per
 * transport also when SUBMIT names transports, so that the daemon says why it cannot run
 * them rather than leaving them out unasked. */
static uint32_t default_backends(const hy_backend_env *env, const hy_msg_submit *m,
                                 const hy_job_spec *s)
{
    uint32_t mask = 0;
    for (unsigned i = 0; i < NTABLE; i++) {
        const hy_backend_ops *b = table[i];
        if (!(s->kind->backends & (1u << b->id)) || (b->plan & HY_PLAN_NAMED_ONLY))
            continue;
        if (available(env, b) || ((b->plan & HY_PLAN_PER_TRANSPORT) && m->transports))
            mask |= 1u << b->id;
    }
    return mask;
}

/* The thread list an empty one stands for: 1, 2, 4, ... below the smallest pool among the
 * per-thread backends the comparison plans, then that pool, so every count fits every one
 * of them. */
static void default_threads(const hy_backend_env *env, hy_job_spec *s)
{
    unsigned pool = 0;
    for (unsigned i = 0; i < NTABLE; i++) {
        const hy_backend_ops *b = table[i];
        if (!(b->plan & HY_PLAN_PER_THREADS) || !(s->backends & (1u << b->id)) ||
            ((b->plan & HY_PLAN_SPLIT_ONLY) && s->mode == HY_MODE_REPLICATE))
            continue;
        unsigned p = pool_of(env, b);
        if (p > 0 && (pool == 0 || p < pool))
            pool = p;
    }
    s->nthreads = 0;
    for (unsigned t = 1; t < pool && s->nthreads < HY_IPC_THREADS_MAX - 1; t *= 2)
        s->threads_list[s->nthreads++] = t;
    s->threads_list[s->nthreads++] = pool ? pool : 1;
}

int hy_job_resolve(const hy_backend_env *env, const hy_msg_submit *m, hy_job_spec *s,
                   hy_error *err)
{
    if (m->device == HY_IPC_DEVICE_DEFAULT)
        s->device = env->nowned ? env->owned[0] : 0; /* none: device 0 says why not */
    /* A job across ranks, or a sort of .npy paths, runs in parts on the backends that run
     * them: hy_ranks_resolve chooses for it, knowing how many parts. */
    if (!s->kind->compare && s->backend == HY_BACKEND_AUTO)
        return s->ranks > 1 || s->array == HY_ARRAY_FILES ? 0 : hy_auto_choose(env, s, err);
    if (!s->kind->compare) {
        const hy_backend_ops *b = hy_backend_get(s->backend);
        HY_ASSERT(b != NULL);
        if (s->threads != 0 || b->device)
            return 0;
        s->threads = pool_of(env, b);
        if (s->threads == 0)
            return hy_error_set(err, HY_EBACKEND, "threads 0 takes the %s pool, and this "
                                "daemon runs none (see DEVICES and hybridd.conf(5))",
                                hy_backend_name(b->id));
        return 0;
    }
    if (m->backends == 0)
        s->backends = default_backends(env, m, s);
    if (s->nthreads == 0)
        default_threads(env, s);
    return 0;
}
