/* host: the Monte Carlo pi job — divides a window of the sample stream (all of [0, n) for
 * hy_host_pi, [first, first + count) for a part) among the threads (split) or gives every
 * thread the whole window (replicate), and runs the kernel in ticks. */
#include "internal.h"
#include "pi_kernel.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Samples per tick: about 65 us of work at 10^9 samples/s, so the eval breaker, progress
 * and cancellation are checked far more often than the 5 ms switch interval. */
#define PI_TICK (1u << 16)
/* A split native job up to this many samples runs on the caller's thread alone
 * (hy_host_run_first): 87 us of work here, while waking and joining the pool cost 60-90 us
 * a job on this VM (10^5 samples took 84-126 us on 2 threads, 66 us serial). */
#define PI_ONE_THREAD_MAX (1u << 17)

struct pi_ctx {
    uint64_t seed;
    uint64_t first, n; /* the window [first, first + n) of the sample stream */
    int mode;
    bool whole; /* thread 0 counts the whole window (a small split job) */
    /* Split mode: the next tick of the window no thread has claimed, from first. */
    atomic_uint_fast64_t next;
    uint64_t hits[HY_HOST_MAX_THREADS];
    uint64_t counted[HY_HOST_MAX_THREADS];
};

/* Split mode: the threads claim the window a tick at a time rather than in fixed shares,
 * so a thread that starts late or is preempted (on this VM a pool thread's start was seen
 * 0.2-2 ms late, in one job of three or so at 4*10^6 samples) leaves its ticks to the
 * others instead of holding the job up by that much. The hits are a sum of integers, the
 * same however the ticks fall. Replicate mode and a small job's thread count the whole
 * window. */
static int pi_task(hy_worker *w, void *arg)
{
    struct pi_ctx *c = arg;
    unsigned id = hy_worker_id(w);
    bool claim = c->mode == HY_MODE_SPLIT && !c->whole;
    uint64_t hits = 0, counted = 0, end = c->first + c->n;
    int rc = 0;
    /* The whole loop is the job's native section: with nogil it runs without the runtime
     * lock (numba nogil=True); otherwise the lock is held and only ticks let it go. */
    hy_worker_native_begin(w);
    for (uint64_t pos = c->first; rc == 0;) {
        if (claim)
            pos = c->first + atomic_fetch_add_explicit(&c->next, PI_TICK, memory_order_relaxed);
        if (pos >= end)
            break;
        uint64_t step = end - pos < PI_TICK ? end - pos : PI_TICK;
        hits += hy_pi_kernel_hits(c->seed, pos, step);
        counted += step;
        pos += step;
        rc = hy_worker_tick(w, step);
    }
    hy_worker_native_end(w);
    c->hits[id] = hits;
    c->counted[id] = counted;
    return rc;
}

int hy_host_pi(hy_host *h, uint64_t seed, uint64_t n, const hy_run_opts *o, hy_pi_result *r,
               hy_error *err)
{
    /* The whole job is the part that starts at sample 0. */
    return hy_host_pi_part(h, seed, 0, n, o, r, err);
}

int hy_host_pi_part(hy_host *h, uint64_t seed, uint64_t first, uint64_t count,
                    const hy_run_opts *o, hy_pi_result *r, hy_error *err)
{
    if (!h || !r)
        return hy_error_set(err, HY_EINVAL, "no engine or no result given");
    memset(r, 0, sizeof *r);
    const uint64_t max = (uint64_t)HY_HOST_PI_MAX_SAMPLES;
    if (count == 0)
        return hy_error_set(err, HY_EINVAL, "n (or a part's count) must be at least 1 sample");
    /* The sentence names what the caller passed: n for a whole job, the window for a part. */
    if (count > max || first > max - count) {
        if (first == 0)
            return hy_error_set(err, HY_ELIMIT, "n = %llu is above the limit of 2^63 - 1 "
                                "samples", (unsigned long long)count);
        return hy_error_set(err, HY_ELIMIT, "a pi part of %llu samples from sample %llu ends "
                            "past the limit of 2^63 - 1 samples", (unsigned long long)count,
                            (unsigned long long)first);
    }
    int rc = hy_host_check_opts(h, o, err);
    if (rc)
        return rc;

    hy_run_opts ro = *o;
    int mode = o->mode ? o->mode : HY_MODE_SPLIT;
    /* pi is pure-Python calc_pi in the lesson: it holds the lock unless told otherwise. */
    ro.nogil = o->nogil == HY_NOGIL_DEFAULT ? HY_NOGIL_HOLD : o->nogil;
    unsigned copies = mode == HY_MODE_REPLICATE ? o->threads : 1;
    if (copies > 1 && count > UINT64_MAX / copies)
        return hy_error_set(err, HY_ELIMIT, "%u copies of %llu samples overflow the work count",
                            copies, (unsigned long long)count);

    struct pi_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return hy_error_set(err, HY_ENOMEM, "out of memory for a pi job");
    c->seed = seed;
    c->first = first;
    c->n = count;
    c->mode = mode;
    /* The locked backend still starts every thread, each taking the lock, as the CPython
     * threads it models do. */
    c->whole = mode == HY_MODE_SPLIT && o->backend == HY_BACKEND_NATIVE &&
               count <= PI_ONE_THREAD_MAX;
    atomic_init(&c->next, 0);
    rc = c->whole ? hy_host_run_first(h, &ro, count, pi_task, c, &r->stats, err)
                  : hy_host_run(h, &ro, count * copies, pi_task, c, &r->stats, err);
    r->stats.copies = copies;

    uint64_t hits = 0, counted = 0;
    if (mode == HY_MODE_SPLIT) {
        for (unsigned i = 0; i < o->threads; i++) {
            hits += c->hits[i];
            counted += c->counted[i];
        }
    } else {
        hits = c->hits[0];
        counted = c->counted[0];
        /* Every copy computed the same samples; a difference would be a kernel bug. */
        for (unsigned i = 1; rc == 0 && i < o->threads; i++)
            if (c->hits[i] != hits)
                rc = hy_error_set(err, HY_EINTERNAL,
                                  "replicate copies disagree: copy 0 has %llu hits, copy %u "
                                  "has %llu",
                                  (unsigned long long)hits, i, (unsigned long long)c->hits[i]);
    }
    free(c);
    r->samples = counted;
    r->hits = hits;
    if (counted > 0) {
        double p = (double)hits / (double)counted;
        r->estimate = 4.0 * p;
        r->std_error = 4.0 * sqrt(p * (1.0 - p) / (double)counted);
    }
    return rc;
}

uint64_t hy_host_pi_hits_reference(uint64_t seed, uint64_t first, uint64_t count)
{
    return hy_pi_kernel_hits_path(HY_PI_PATH_PORTABLE, seed, first, count);
}

const char *hy_host_pi_kernel(void) { return hy_pi_kernel_path_name(); }
