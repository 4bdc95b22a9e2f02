/* daemon/runner: runs one configuration of a job (backend, threads, mode, device) a number of
 * times and turns the runs into one result row: median/min/max, the pi figures, the lock
 * statistics and the OpenCL breakdown of the median run. Single jobs and every row of a
 * comparison go through here, so both measure the same way. */
#ifndef HY_DAEMON_RUNNER_H
#define HY_DAEMON_RUNNER_H

#include <stdint.h>

#include "cl.h"
#include "common.h"
#include "host.h"
#include "ipc.h"
#include "proc.h"

/* The engines a run may use; cl may be NULL (OpenCL off or absent). */
typedef struct hy_engines {
    hy_host *host;
    hy_cl *cl;
    hy_proc_pool *proc;
} hy_engines;

typedef struct hy_run_spec {
    int job;          /* HY_JOB_PI or HY_JOB_SORT */
    int backend;      /* hy_backend */
    unsigned device;  /* OpenCL device, for HY_BACKEND_OPENCL */
    unsigned threads; /* CPU backends */
    int mode;         /* hy_mode */
    int nogil;        /* hy_nogil */
    uint32_t switch_interval_us;
    uint64_t n, seed; /* samples or elements; pi's seed */
    int dtype;        /* sort */
    void *array;      /* sort: sorted in place; holds the sorted array afterwards */
    int array_fd;     /* a memfd whose shared mapping `array` is, or -1 (process/shm uses it) */
    int transport;    /* process: enum hy_transport */
    /* sort with more than one run: the input, copied into `array` before each run (untimed).
     * NULL is allowed only when warmup + repeat == 1. */
    const void *pristine;
    unsigned warmup;  /* untimed runs first (page faults, caches, the clock ramp) */
    unsigned repeat;  /* timed runs, >= 1 */
    hy_progress_fn progress; /* may be NULL; its non-zero return cancels */
    void *progress_ctx;
} hy_run_spec;

/* Runs the configuration and fills *row. *busy_ns gets the wall time of every run, warm-up
 * included (what the backend was busy with). Returns 0 or the failing run's hy_err. */
int hy_runner_run(const hy_engines *e, const hy_run_spec *s, hy_result_row *row,
                  uint64_t *busy_ns, hy_error *err);

#endif
