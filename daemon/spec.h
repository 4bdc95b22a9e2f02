/* daemon/spec: a job as the daemon knows it — one immutable description, made once from a
 * decoded SUBMIT and read by pointer everywhere after (admission, the executor, the runner,
 * the answer) — the table of job kinds, and the rows a job runs. */
#ifndef HY_DAEMON_SPEC_H
#define HY_DAEMON_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "contract.h"
#include "ipc.h"

/* Most timed repetitions of one configuration. */
#define HY_SPEC_MAX_REPEAT 1000u

/* One row per job kind of the wire (HY_JOB_*). */
typedef struct hy_kind {
    int kind;              /* HY_JOB_* */
    const char *label;     /* for the log: "pi", "compare sort" */
    int work;              /* HY_JOB_PI or HY_JOB_SORT: what each of its rows computes */
    bool compare;          /* rows on several backends, a warm-up each, the machine alone */
    bool array;            /* takes an array (sorted in place) */
    const char *unit;      /* what n counts, for limit messages */
    const char *limit_key; /* the configuration key that bounds n */
    uint32_t backends;     /* bit 1 << hy_backend: the backends that run it */
    uint32_t repeat;       /* timed runs per row when SUBMIT says 0 */
} hy_kind;

/* The kind's row, or NULL for a value that is not a kind. */
const hy_kind *hy_kind_get(int kind);

typedef struct hy_job_spec {
    const hy_kind *kind;
    uint64_t n;                  /* samples (pi) or elements (sort) */
    uint64_t seed;
    int dtype;                   /* sort */
    int mode;                    /* split or replicate, never 0 */
    int nogil;                   /* hy_nogil: the locked runtime's lock choice */
    uint32_t switch_interval_us; /* the daemon's own when SUBMIT says 0 */
    uint32_t repeat;             /* timed runs per row, >= 1 */
    unsigned warmup;             /* untimed runs first, per row */
    unsigned device;             /* OpenCL device index */
    /* A single job: its one configuration. */
    int backend;
    unsigned threads;
    int transport;               /* pipe when SUBMIT says 0 */
    /* A comparison: bit 1 << hy_backend, bit 1 << hy_transport (pipe when SUBMIT says 0),
     * and its thread counts. */
    uint32_t backends, transports;
    unsigned nthreads;
    uint32_t threads_list[HY_IPC_THREADS_MAX];
    /* Backend auto (HY_BACKEND_AUTO until hy_job_resolve chooses): why the daemon chose the
     * backend above — HY_ROW_AUTO, with HY_ROW_EXPLORE when it runs to learn it — and the
     * history's prediction of one run it chose by (0: it explores). 0 for a named backend. */
    unsigned auto_flags;
    uint64_t auto_predicted_ns;
    int array;                   /* HY_ARRAY_*: how the array came */
    /* MPI (daemon/ranks.c): the ranks the job spans (1: this daemon alone; SUBMIT's ALL until
     * admission resolves it), and a pi part's first sample (0 but in a part a peer sent). */
    unsigned ranks;
    uint64_t first;
    size_t array_bytes;          /* n * the dtype's size for a sort, else 0 */
    /* array FILES: the input and output .npy paths, NUL-terminated, in the job's own copy
     * (hy_job.paths); NULL for every other array */
    const char *input, *output;
} hy_job_spec;

/* What one row of a job overrides of its spec (a single job has one row: its own). */
typedef struct hy_row_spec {
    int backend;
    unsigned threads;  /* 0 where the backend decides (a device) */
    int transport;     /* process rows; 0 elsewhere */
} hy_row_spec;

/* Most rows a job can have: serial, native and locked per thread count, process per thread
 * count and transport, and the OpenCL device. */
#define HY_PLAN_MAX (2 + 4 * HY_IPC_THREADS_MAX)

/* Makes the spec of a decoded SUBMIT (whose fields the codec has range-checked), applying
 * the defaults; `switch_interval_us` is the daemon's configured one. Checks what needs no
 * daemon state (repeat, switch interval, an empty pi job): 0 or HY_EINVAL/HY_ELIMIT. */
int hy_job_spec_make(const hy_msg_submit *m, uint32_t switch_interval_us, hy_job_spec *out,
                     hy_error *err);

/* The rows of a job, in the order of its RESULT; returns how many (1 .. HY_PLAN_MAX). A
 * comparison's come from the backend table (backends.c): each backend's rows, in its order. */
unsigned hy_job_plan(const hy_job_spec *s, hy_row_spec plan[HY_PLAN_MAX]);

#endif
