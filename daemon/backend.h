/* daemon/backend: the backends as one table. Each backend is an object with the same
 * operations — describe its resources, check a row of a job, run pi, run sort, finish its
 * result row — registered in backends.c; the runner, the comparison plan, admission and
 * DEVICES call through it. A new backend is a new file and a row in that table. */
#ifndef HY_DAEMON_BACKEND_H
#define HY_DAEMON_BACKEND_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "cl.h"
#include "common.h"
#include "history.h"
#include "host.h"
#include "ipc.h"
#include "proc.h"
#include "spec.h"

/* The engines a run may use; cl and proc may be NULL (off or absent). history: where the
 * executors record every timed run (NULL: nowhere); the backends never touch it. */
/* Most OpenCL devices one hybrid job spreads across, beside the pool. */
#define HY_HYBRID_DEVICES_MAX 8

/* Parts peers sent that a waiting span ran itself (mpi.h's hold: daemon/ranks.c's
 * run_held_part), counted where STATUS finds them beside the jobs the loop queued; the
 * executors write, the loop reads. */
typedef struct hy_held_parts {
    _Atomic uint64_t running, done, failed;
} hy_held_parts;

typedef struct hy_engines {
    hy_host *host;
    hy_cl *cl;
    hy_proc_pool *proc;
    hy_history *history;
    struct hy_mpi *mpi; /* under mpirun (hybridd --mpi): the other ranks; NULL otherwise */
    hy_held_parts *held; /* with mpi: the parts its spans ran for peers; NULL otherwise */
    /* With mpi: one lock per OpenCL device, taken around each of its jobs (backend_cl.c),
     * since a span's gatherer may run a peer's device part beside the device's executor and
     * a device serves one thread at a time (cl.h); and the device such parts run on (the
     * first served), -1 for none. NULL and -1 otherwise. */
    pthread_mutex_t *dev_lock;
    int span_device;
    /* The devices a hybrid job runs on beside the native pool (hy_backend_hybrid_devices),
     * and whether OpenCL CPU devices were left out because they share the pool's cores. */
    unsigned hybrid_dev[HY_HYBRID_DEVICES_MAX];
    unsigned nhybrid;
    bool hybrid_skipped_cpu;
    /* Bytes of the CPU executor's buffer for arrays read from files (jobs.c), allocated and
     * faulted in when the scheduler starts; 0: at the first such job. */
    size_t file_buf_bytes;
    /* For tests only (HYBRIDD_TEST_CL_PART_BYTES): the most bytes of keys one device sort
     * takes before opencl cuts a sort into key-range parts; 0: what the device holds. */
    uint64_t cl_part_bytes;
} hy_engines;

/* What admission and DEVICES know of this daemon: the engines, the CPU pools' sizes and the
 * OpenCL devices (records as DEVICES reports them; `owned` those with an executor). */
typedef struct hy_backend_env {
    hy_engines e;
    unsigned native_threads, locked_threads;
    hy_device_record *devrec;
    unsigned ndevices;
    unsigned *owned;
    unsigned nowned;
} hy_backend_env;

/* The OpenCL backend's resources: fills env's device records from env->e.cl (none when it is
 * NULL) and the devices this daemon serves — every usable one when `all`, else the usable
 * ones `listed` — logging a line for each. Returns 0 or HY_ENOMEM or hy_cl_describe's error. */
int hy_backend_cl_devices(hy_backend_env *env, bool all, const unsigned *listed,
                          unsigned nlisted, hy_error *err);
/* The hybrid backend's participants, into env->e: every device env serves, but OpenCL CPU
 * devices only when `cpu_devices` (opencl.hybrid_cpu_devices: they run on cores of their
 * own), at most HY_HYBRID_DEVICES_MAX. Logs what it chose. */
void hy_backend_hybrid_devices(hy_backend_env *env, bool cpu_devices);

/* Hybrid's decisions, pure functions of rates (items per ns, 0 unknown) so that they can be
 * checked without a daemon or a clock (docs/scheduling.md, "Backend hybrid"). */
/* One participant of a hybrid pi job as the chunk rule sees it: slot 0 the pool, k device
 * k - 1. */
typedef struct hy_hybrid_side {
    double rate;   /* measured on its chunks in this run; 0 before its first ends */
    double prior;  /* what the last hybrid pi measured; 0 unknown */
    uint64_t last; /* its previous chunk in this run; 0 before its first */
} hy_hybrid_side;
/* The next chunk participant `me` of `nside` takes from the `left` samples not yet handed
 * out: 0 when left is 0, or when another participant is dominant (it runs the job alone). */
uint64_t hy_hybrid_pi_chunk(const hy_hybrid_side *side, unsigned nside, unsigned me,
                            uint64_t left);
/* A share (of the last hybrid pi's rates) at or above this makes a participant dominant: it
 * runs the whole job alone. */
#define HY_HYBRID_DOMINANT 0.97

/* What a hybrid sort does. */
enum { HY_HYBRID_SPLIT, HY_HYBRID_POOL, HY_HYBRID_DEVICE };
/* The plan for n keys from each slot's rate (rate[0] the pool's whole sort, rate[k] device
 * k - 1, each with its copies and transfers), the runs that measured it, and the rate of the
 * pool's first pass, after which it sheds the devices' ranges: the least predicted time of
 * the pool alone, the fastest device alone (its slot in *slot) and the split, which must win
 * by 5%. A split while any rate is unknown, to measure them; a side alone, once, while its
 * only rate is that first split's and predicts it within 2x of the plan chosen. */
int hy_hybrid_sort_plan(double n, const double *rate, const unsigned *runs, unsigned nside,
                        double pass_rate, unsigned *slot);
/* The pool's rate finishing its buckets after a first pass at pass_rate, when its whole sort
 * runs at pool_rate: 1 / (1 / pool_rate - 1 / pass_rate); pool_rate when the pass measured no
 * faster than the whole sort. */
double hy_hybrid_finish_rate(double pool_rate, double pass_rate);

/* Frees what hy_backend_cl_devices allocated. */
void hy_backend_env_free(hy_backend_env *env);

/* What a run reads besides the spec: the array (sorted in place), its memfd or -1, the input
 * kept for repeated sorts (NULL when one run is all), and progress (non-zero cancels). */
typedef struct hy_run_io {
    void *array;
    int array_fd;
    const void *pristine;
    hy_progress_fn progress;
    void *progress_ctx;
} hy_run_io;

/* What one run measured. h2d/kernel/d2h are the transfers and the rest for the backends
 * that move data (OpenCL's profiling events, process's parts). */
/* What a hybrid run's participants did (the row's fields of the same names). */
typedef struct hy_hybrid_stats {
    uint64_t cpu_items, cpu_busy_ns, dev_busy_ns;
    unsigned cpu_chunks, dev_chunks, devices_used;
    uint32_t balance_ppm;
    bool shared_cores;
    bool no_gain; /* sort: no split; the pool or one device ran it alone (the rates said so) */
    bool whole;   /* sort: a split whose array the pool's first pass took no range out of */
} hy_hybrid_stats;

/* A run that spanned MPI ranks: each rank's part, as the RESULT's rank records carry them
 * (row 0 here; none when the span had more ranks than a RESULT lists). */
typedef struct hy_span_ranks {
    unsigned n;
    hy_rank_row r[HY_IPC_RANK_ROWS_MAX];
} hy_span_ranks;

typedef struct hy_run_once {
    uint64_t wall_ns;
    uint64_t hits;
    double estimate, std_error;
    uint64_t lock_handoffs, lock_wait_ns, lock_hold_ns;
    bool nogil;
    unsigned threads, copies;
    hy_cl_timing cl;
    hy_proc_stats proc;
    hy_hybrid_stats hyb;
    hy_span_ranks span;
} hy_run_once;

/* How a comparison plans a backend's rows. */
enum {
    HY_PLAN_ALWAYS = 0x1,     /* a row whether asked for or not: the baseline */
    HY_PLAN_PER_THREADS = 0x2, /* a row per thread count of the comparison */
    HY_PLAN_PER_TRANSPORT = 0x4, /* ... and per transport */
    HY_PLAN_SPLIT_ONLY = 0x8, /* no rows in replicate mode */
    HY_PLAN_NAMED_ONLY = 0x10, /* in a comparison only when its mask names it */
};

typedef int (*hy_backend_run_fn)(const hy_engines *e, const hy_job_spec *s,
                                 const hy_row_spec *r, const hy_run_io *io, hy_run_once *o,
                                 hy_error *err);

typedef struct hy_backend_ops {
    int id;            /* hy_backend */
    unsigned plan;     /* HY_PLAN_* */
    unsigned threads;  /* a row's thread count when not per thread count (0: device-wide) */
    bool device;       /* a single job runs on its OpenCL device's executor */
    bool machine;      /* a single job holds the whole machine, as a comparison does */
    /* The threads a row takes when the job names none: its whole pool, 0 when this daemon
     * runs none (a comparison's default backends leave it out). NULL: `threads`, and for a
     * device backend, whether any device is served. */
    unsigned (*pool)(const hy_backend_env *env);
    /* Its part of DEVICES: pool sizes, devices. May be NULL. */
    void (*describe)(const hy_backend_env *env, hy_msg_devices_reply *r);
    /* Whether this daemon can run the row: 0 or an hy_err with a sentence. */
    int (*check)(const hy_backend_env *env, const hy_job_spec *s, const hy_row_spec *r,
                 hy_error *err);
    hy_backend_run_fn pi, sort;
    /* Its own fields of a result row, from the median run `m` (whose startup figures are
     * summed over every run). May be NULL. */
    void (*finish_row)(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                       const hy_run_once *m, hy_result_row *row);
    /* Cancelling needs no operation of its own today: every engine polls the progress
     * callback, whose non-zero return stops the run. */
} hy_backend_ops;

/* The backend's object, or NULL for a value that is not a backend. */
const hy_backend_ops *hy_backend_get(int id);
/* The table, in the order a comparison's rows come in; *n gets its length. */
const hy_backend_ops *const *hy_backend_all(unsigned *n);

/* SUBMIT's defaults that depend on this daemon, applied to the spec `m` was made into:
 * backend auto the configuration hy_auto_choose (auto.h) picks from the performance history;
 * device HY_IPC_DEVICE_DEFAULT is the first device served; a single job's threads 0 its
 * backend's pool; a comparison's empty backend mask every backend with resources here (and
 * process when `transports` asks for it), its empty thread list 1, 2, 4, ... up to the
 * smallest pool of its per-thread backends, and that pool. 0, or HY_EBACKEND for threads 0 on
 * a backend whose pool is off. */
int hy_job_resolve(const hy_backend_env *env, const hy_msg_submit *m, hy_job_spec *s,
                   hy_error *err);

/* The backends, one file each over its engine (backend_host.c, backend_cl.c, ...). */
extern const hy_backend_ops hy_backend_serial, hy_backend_native, hy_backend_locked,
    hy_backend_process, hy_backend_opencl, hy_backend_hybrid;

#endif
