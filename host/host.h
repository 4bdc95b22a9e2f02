/* host: hybridd's CPU compute engine — a persistent native thread pool, a locked runtime
 * modelled on CPython's GIL, the serial baseline, and the pi and sort jobs that run on them.
 * It knows nothing of sockets, frames, config files or OpenCL: plain arguments in, plain
 * results out. This is the module's only public header. */
#ifndef HY_HOST_H
#define HY_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* Most threads one job may use, whatever the engine was configured with. */
#define HY_HOST_MAX_THREADS 256
/* Largest pi job: n is a signed 64-bit count on the wire, so 2^63 - 1. */
#define HY_HOST_PI_MAX_SAMPLES INT64_MAX
/* Default switch interval of the locked runtime, as CPython's sys.getswitchinterval(). */
#define HY_HOST_DEFAULT_SWITCH_US 5000u

typedef struct hy_host hy_host;

typedef struct hy_host_config {
    /* Worker threads in the native pool and in the locked runtime; a job may use at most
     * this many. 0 means the number of online CPUs. At most HY_HOST_MAX_THREADS. */
    unsigned threads;
    /* The locked runtime's switch interval in microseconds; 0 means the default (5000). */
    uint32_t switch_interval_us;
    /* CPUs the threads are pinned to, thread i to cpus[i % ncpus] (to give the pool cores an
     * OpenCL CPU device does not use); ncpus 0: not pinned. A CPU that cannot be used fails
     * hy_host_create with HY_ESYS naming it. */
    const uint32_t *cpus;
    unsigned ncpus;
} hy_host_config;

/* Starts the engine's threads. On success *out owns them until hy_host_destroy. */
int hy_host_create(const hy_host_config *cfg, hy_host **out, hy_error *err);
/* Stops and joins every thread. Must not be called while a job runs. NULL is fine. */
void hy_host_destroy(hy_host *h);
/* How many threads one job may use on this engine. */
unsigned hy_host_threads(const hy_host *h);
/* The engine keeps its largest sort scratch between jobs; this returns it to the system when
 * it is above `keep` bytes (for a long-lived process that ran one huge job). Not while a job
 * runs on this engine. */
void hy_host_trim(hy_host *h, size_t keep);
/* Takes `bytes` of sort scratch now and writes every page of it, and keeps it as the block the
 * next sort borrows: a first sort otherwise spends its time having fresh pages zeroed (52% of
 * a first 10^7 f64 sort's samples here). A hint: does nothing if the memory is not there. Not
 * while a job runs on this engine. */
void hy_host_prefault(hy_host *h, size_t bytes);

/* Progress and cancellation (hy_progress_fn, in common.h) are called at tick boundaries, at
 * most every ~2 ms, never by two threads at once. `done` and `total` are in the job's own
 * units (samples for pi; element passes for sort). Returning non-zero cancels: the job stops
 * at its next tick boundary and its run returns HY_ECANCELED. */

typedef struct hy_run_opts {
    int backend;                 /* HY_BACKEND_SERIAL, _NATIVE or _LOCKED */
    unsigned threads;            /* 1 .. hy_host_threads(); serial takes exactly 1 */
    int mode;                    /* HY_MODE_SPLIT or HY_MODE_REPLICATE; 0 means split */
    int nogil;                   /* hy_nogil; matters for the locked backend only */
    uint32_t switch_interval_us; /* locked only; 0 keeps the engine's interval */
    hy_progress_fn progress;     /* may be NULL */
    void *progress_ctx;
} hy_run_opts;

typedef struct hy_run_stats {
    uint64_t wall_ns;  /* from the job's start to its last thread's end, CLOCK_MONOTONIC */
    unsigned threads;  /* threads that ran it */
    unsigned copies;   /* 1, or T in replicate mode */
    /* CPU time each thread spent on the job (CLOCK_THREAD_CPUTIME_ID); waiting for the
     * runtime lock or at a barrier sleeps, so it does not count. */
    uint64_t busy_ns[HY_HOST_MAX_THREADS];
    /* Locked backend only (zero elsewhere). */
    uint64_t lock_acquisitions;   /* times any thread took the runtime lock */
    uint64_t lock_handoffs;       /* acquisitions by a thread other than the previous holder */
    uint64_t lock_drop_requests;  /* times a waiter asked the holder to drop the lock */
    uint64_t lock_wait_ns;        /* summed over threads: time spent waiting for the lock */
    uint64_t lock_hold_ns;        /* summed over threads: time spent holding it */
    unsigned lock_max_holders;    /* most threads ever inside the lock at once: 1, or a bug */
    bool nogil;                   /* whether the job's native sections released the lock */
} hy_run_stats;

/* ---- pi: Monte Carlo over n samples; docs/pi-mapping.md gives the exact sample stream ---- */

typedef struct hy_pi_result {
    uint64_t samples;  /* n: samples per copy */
    uint64_t hits;     /* samples inside the quarter circle; identical on every backend */
    double estimate;   /* 4 * hits / samples */
    double std_error;  /* standard error of the estimate */
    hy_run_stats stats;
} hy_pi_result;

/* Counts the hits of samples 0 .. n-1 for `seed`. In replicate mode each of the T copies
 * computes the same (seed, n) and the engine checks that they agree. 1 <= n <= 2^63 - 1,
 * and in replicate mode n * T must also fit in 64 bits (the job's total work); beyond either
 * the call returns HY_ELIMIT. */
int hy_host_pi(hy_host *h, uint64_t seed, uint64_t n, const hy_run_opts *o, hy_pi_result *r,
               hy_error *err);

/* hy_host_pi over the window [first, first + count) of the same sample stream, for backends
 * that give each worker process a part of one job: parts that tile [0, n) add up to exactly
 * hy_host_pi's hits for n. r->samples is the samples counted (count, unless cancelled);
 * replicate mode computes the same part T times. count >= 1 (HY_EINVAL otherwise) and
 * first + count <= 2^63 - 1 (HY_ELIMIT otherwise). hy_host_pi(n) is the part (0, n). */
int hy_host_pi_part(hy_host *h, uint64_t seed, uint64_t first, uint64_t count,
                    const hy_run_opts *o, hy_pi_result *r, hy_error *err);

/* Reference for tests and for other backends: hits among samples [first, first + count),
 * computed by a portable scalar loop on the calling thread. */
uint64_t hy_host_pi_hits_reference(uint64_t seed, uint64_t first, uint64_t count);

/* The pi kernel's code path on this CPU: "avx512", "avx2" or "portable" (chosen at run
 * time; HYBRIDD_PI_PATH in the environment may force a slower one). */
const char *hy_host_pi_kernel(void);

/* ---- sort: in place, ascending, numpy's order for floats (NaNs last, -0.0 before +0.0) ---- */

typedef struct hy_sort_result {
    size_t n;
    hy_run_stats stats;
} hy_sort_result;

/* Sorts `n` elements of `dtype` at `data` in place. In replicate mode the T threads sort T
 * copies of the array at once and the engine checks the copies agree. On HY_ECANCELED the
 * array still holds every input element (in some order): nothing is lost. */
int hy_host_sort(hy_host *h, int dtype, void *data, size_t n, const hy_run_opts *o,
                 hy_sort_result *r, hy_error *err);
/* The same sort, from `src` (left as it is) into `dst` (the same array, or one that does not
 * overlap it); split mode only. Saves a copy where the sorted array must land elsewhere (the
 * process backend's workers sort their parts into the scratch they merge from). src is never
 * written; after an error dst's contents are unspecified. */
int hy_host_sort_to(hy_host *h, int dtype, const void *src, void *dst, size_t n,
                    const hy_run_opts *o, hy_sort_result *r, hy_error *err);

/* ---- merge: sorted runs into one, in hy_host_sort's order (for backends whose workers each
 * sort a part and a parent merges). Runs are arrays of one dtype, each already in that order
 * (hy_host_sort's output); equal elements are identical bytes, so a merge's bytes do not
 * depend on how ties are broken. Both calls run on the calling thread and allocate nothing. */

/* Most runs one merge or cut takes. */
#define HY_HOST_MERGE_MAX_RUNS 64

/* Merges the k runs (runs[i] holds lens[i] elements of `dtype`) into `out`, which holds
 * their sum and overlaps none of them: out is then the bytes hy_host_sort gives for the
 * runs' concatenation. Runs not in order give some permutation of their elements, never a
 * read or write out of bounds. Errors: HY_EDTYPE for an unknown dtype; HY_EINVAL for k
 * outside 1..HY_HOST_MERGE_MAX_RUNS, a NULL run (or out) with a nonzero length, lengths
 * whose sum overflows, or out overlapping a run. */
int hy_host_merge(int dtype, const void *const runs[], const size_t lens[], unsigned k,
                  void *out, hy_error *err);

/* Where the first `rank` elements of the runs' merge come from: fills cut[0..k) so that
 * sum cut[i] == rank, 0 <= cut[i] <= lens[i], and every element of every runs[i][0, cut[i])
 * is <= (in sort order) every element of every runs[j][cut[j], lens[j]). Ties among equal
 * elements go to the lower-numbered run, so the cut depends only on the runs and rank, and
 * it never decreases as rank grows. So W workers can share one merge: with ranks
 * 0 = r_0 <= r_1 <= ... <= r_W = total, worker w merges runs[i][cut_w[i], cut_{w+1}[i])
 * into out[r_w, r_{w+1}). 0 <= rank <= sum lens[i]. Costs O(k * key bits * log n) element
 * reads. Errors as hy_host_merge (there is no out), plus HY_EINVAL for a rank past the total
 * or for runs that the search finds out of order. */
int hy_host_merge_cut(int dtype, const void *const runs[], const size_t lens[], unsigned k,
                      size_t rank, size_t cut[], hy_error *err);

/* ---- cut: key ranges for engines that sort side by side (the hybrid backend) ---- */
#define HY_HOST_CUT_MAX_PARTS 16
/* Copies the n elements of `src` into `dst` (the same size, overlapping nothing) as `parts`
 * contiguous sections, section p at dst[bounds[p], bounds[p + 1]) (bounds[0] = 0,
 * bounds[parts] = n), such that every element of section p comes before or equals, in
 * hy_host_sort's order, every element of the sections after it. Section p's size is near
 * share[p] / (sum of shares) of n: the splitters are quantiles of 4096 keys sampled at fixed
 * positions, so the same input always cuts the same way, and many equal keys all land in
 * one section; within a section the input's order is kept. Sorting each section where it
 * lies then gives hy_host_sort's bytes for the whole array, with no merge.
 * With h and o, it counts and scatters on o->threads threads of the native pool (o's
 * progress and cancel apply; HY_ECANCELED leaves dst unspecified); with h NULL, on the
 * calling thread. Errors: those of hy_check_sort_args; HY_EINVAL for parts outside
 * 1..HY_HOST_CUT_MAX_PARTS, a negative share, NULL share, bounds or dst, or dst overlapping
 * src; HY_ENOMEM; those of hy_host_run. */
int hy_host_sort_cut(hy_host *h, const hy_run_opts *o, int dtype, const void *src, void *dst,
                     size_t n, const double *share, unsigned parts, size_t *bounds,
                     hy_error *err);

/* ---- shed: the sort's own one pass over memory hands the top of its order to others ---- */
/* Called once per hy_host_sort_shed with its bounds (parts + 2 entries): section 0,
 * [0, bounds[1]), is the sort's own; section i of 1..parts, [bounds[i], bounds[i + 1]), is
 * handed out. */
typedef void (*hy_sort_shed_fn)(void *ctx, const size_t *bounds);
typedef struct hy_sort_shed {
    unsigned parts;       /* sections handed out: 1 .. HY_HOST_CUT_MAX_PARTS - 1 */
    const double *share;  /* [parts + 1]: the sections' relative sizes, section 0 first */
    hy_sort_shed_fn ready;
    void *ctx;
} hy_sort_shed;
/* Sorts `data` in place as hy_host_sort does in split mode, except that sections 1..parts
 * are left to others: after its one pass over memory (the top level that puts each key in
 * one of its buckets) the sort moves its highest buckets' elements into those sections, in
 * no order, calls shed->ready from one of its threads, then sorts section 0 and returns;
 * whoever ready started sorts each other section where it lies. Every element of a section
 * comes before or equals, in hy_host_sort's order, every element of the sections after
 * it, so the sorted sections are hy_host_sort's bytes, with no merge. A section's size is
 * its share of n to within a top-level bucket (equal keys share a bucket: never split).
 * Arrays the one-pass top level does not take (small ones, few distinct values, a bucket
 * over the cache budget) are sorted whole, and ready gets sections 1..parts empty, at the
 * latest just before return: it is called exactly once, on errors too. On HY_ECANCELED
 * every section holds its own elements, unsorted. Errors: those of hy_host_sort; HY_EINVAL
 * for parts outside 1..HY_HOST_CUT_MAX_PARTS - 1, NULL shed, share, ready or bounds, a
 * negative share, or replicate mode (ready is not called then). */
int hy_host_sort_shed(hy_host *h, int dtype, void *data, size_t n, const hy_run_opts *o,
                      const hy_sort_shed *shed, size_t *bounds, hy_sort_result *r,
                      hy_error *err);

/* ---- running your own code on the pools (the tests use it; pi and sort are built on it) ---- */

/* A thread's handle inside a running job. */
typedef struct hy_worker hy_worker;
/* Runs on each of the job's threads; returns 0 or a negative hy_err. */
typedef int (*hy_task_fn)(hy_worker *w, void *ctx);

/* Runs `fn` on o->threads threads of the chosen backend (mode is ignored: every thread runs
 * `fn`; the task divides the work by hy_worker_id). On the locked backend each thread holds
 * the runtime lock while in `fn`, except between hy_worker_native_begin and _end when the
 * job's nogil is RELEASE (the default here is HOLD). `total_work` is passed to progress. */
int hy_host_run(hy_host *h, const hy_run_opts *o, uint64_t total_work, hy_task_fn fn,
                void *ctx, hy_run_stats *st, hy_error *err);

unsigned hy_worker_id(const hy_worker *w);    /* 0 .. hy_worker_count() - 1 */
unsigned hy_worker_count(const hy_worker *w);
/* A tick boundary: adds `work` to the job's progress, reports progress when due, and on the
 * locked backend lets the lock go if another thread asked for it (CPython's eval breaker).
 * Returns HY_ECANCELED once the job is cancelled; the task should then return it. */
int hy_worker_tick(hy_worker *w, uint64_t work);
/* Brackets a native section: on the locked backend with nogil RELEASE the lock is released
 * at _begin and taken back at _end. No effect elsewhere. */
void hy_worker_native_begin(hy_worker *w);
void hy_worker_native_end(hy_worker *w);
/* Waits until every thread of the job reaches the barrier. A thread holding the runtime
 * lock releases it while it waits, as a blocking call does in CPython. Returns
 * HY_ECANCELED when the job was cancelled (every thread gets the same answer). */
int hy_worker_barrier(hy_worker *w);

#endif
