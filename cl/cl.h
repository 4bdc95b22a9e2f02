/* cl: hybridd's OpenCL backend — owns every OpenCL device the ICD loader offers (one context
 * and one in-order profiling queue each, programs built once at open, an optional binary
 * cache on disk) and runs the pi and sort jobs on them, bit-identical to the CPU engine.
 * It knows nothing of sockets, frames or config files. This is the module's only public
 * header. After hy_cl_open, each device's state is its own: different threads may run jobs
 * on different devices at once (the daemon has an executor per device), but one device
 * serves one thread at a time, and open/close must not overlap anything. */
#ifndef HY_CL_H
#define HY_CL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

typedef struct hy_cl hy_cl;

typedef struct hy_cl_config {
    /* Directory for built program binaries; NULL or "" turns the cache off. Created if
     * missing. Entries are keyed by device, driver version, build options and a hash of
     * the source; a corrupt or stale entry is rebuilt, never trusted. */
    const char *cache_dir;
    /* Test-only: breaks the pi program's source so the build fails, to exercise that path. */
    bool test_break_build;
    /* Test-only: the k-th job on each device (1-based; 0 never) meets a broken queue, as a
     * device fault leaves one, so tests can drive recovery (below) on any device. */
    unsigned test_fault_job;
} hy_cl_config;

enum hy_cl_device_type {
    HY_CL_TYPE_OTHER = 0,
    HY_CL_TYPE_GPU = 1,
    HY_CL_TYPE_CPU = 2,
    HY_CL_TYPE_ACCELERATOR = 3,
};

typedef struct hy_cl_device_info {
    unsigned index;          /* stable: platform order, then device order, as the loader lists them */
    char name[128];
    char vendor[128];
    char platform[128];
    char driver[64];         /* CL_DRIVER_VERSION */
    char version[64];        /* CL_DEVICE_VERSION, e.g. "OpenCL 1.2 pocl ..." */
    int type;                /* enum hy_cl_device_type */
    unsigned compute_units;
    uint64_t global_mem;     /* bytes */
    uint64_t max_alloc;      /* bytes: the largest single buffer */
    size_t max_work_group;
    bool pocl_cpu;           /* PoCL's CPU device: an OpenCL CPU device, not a GPU */
    bool usable;             /* programs built; false means `problem` says why */
    char problem[HY_ERROR_MSG_MAX];
    uint64_t build_ns;       /* time to build or load this device's programs at open */
    bool from_cache;         /* every program came from the binary cache */
    bool gpu_variant;        /* runs the kernels' GPU variant (HY_CL_CPU=0), not the CPU one */
    bool variant_forced;     /* by HYBRIDD_CL_VARIANT, not chosen from the device type */
    unsigned recoveries;     /* context, queue and programs rebuilt after a failed job */
    bool recovering;         /* its last job failed in an OpenCL call: the next rebuilds first */
} hy_cl_device_info;

/* Finds every platform and device and builds the programs on each. No device at all is a
 * normal state (the count is 0); a device whose build fails stays listed, not usable, with
 * the reason and the build log's first lines in `problem`. Fails only when memory runs out,
 * or with HY_EINVAL when HYBRIDD_CL_VARIANT (a switch for tests and diagnosis that forces
 * every device onto one kernel variant: "gpu" or "cpu") has any other non-empty value. */
int hy_cl_open(const hy_cl_config *cfg, hy_cl **out, hy_error *err);
void hy_cl_close(hy_cl *cl); /* NULL is fine */

unsigned hy_cl_device_count(const hy_cl *cl);
int hy_cl_describe(const hy_cl *cl, unsigned index, hy_cl_device_info *info, hy_error *err);
/* A label that never calls a CPU device a GPU: "GPU", "PoCL CPU", "CPU", "accelerator". */
const char *hy_cl_type_label(const hy_cl_device_info *info);
/* The kernel variant a device runs, for logs and DEVICES: "CPU kernels", "GPU kernels", or
 * with the variant forced, "GPU kernels, forced by HYBRIDD_CL_VARIANT". */
const char *hy_cl_variant_label(const hy_cl_device_info *info);

/* Where a job's time went, from profiling events (sums over all launches and copies).
 * A copy may run while a kernel runs (the sort's staged transfers, docs/opencl.md): h2d_ns
 * and d2h_ns count only the copies' time outside every kernel, and overlap_ns the rest, so
 * h2d + kernel + d2h is the device's busy time, counted once, and h2d + d2h + overlap the
 * copies' whole time. */
typedef struct hy_cl_timing {
    uint64_t wall_ns;    /* CLOCK_MONOTONIC around the whole job */
    uint64_t h2d_ns;     /* host -> device copies, outside kernels */
    uint64_t kernel_ns;  /* kernel execution */
    uint64_t d2h_ns;     /* device -> host copies, outside kernels */
    uint64_t overlap_ns; /* copies (either way) while a kernel ran */
    unsigned launches;   /* kernel launches */
    unsigned passes;     /* sort: passes over the keys (histogram, digits); 0 for pi */
    uint64_t bytes_moved; /* copied between host and device, both ways */
} hy_cl_timing;

/* Adds t's times, launches, passes and bytes to *sum (wall_ns is left alone: jobs that ran
 * one after another or side by side have no common wall time), for a job made of several. */
void hy_cl_timing_add(hy_cl_timing *sum, const hy_cl_timing *t);

typedef struct hy_cl_opts {
    unsigned device;         /* index from hy_cl_describe */
    hy_progress_fn progress; /* called between launches (~100 ms apart at most); may be NULL */
    void *progress_ctx;
    uint64_t first;          /* pi: the window's first sample (0: samples 0 .. n-1) */
} hy_cl_opts;

typedef struct hy_cl_pi_result {
    uint64_t samples;
    uint64_t hits;       /* equal to the CPU engine's for the same (seed, n) */
    double estimate;
    double std_error;
    hy_cl_timing timing;
} hy_cl_pi_result;

/* Recovery, for both jobs below: a job that fails in an OpenCL call (HY_EBACKEND) may have
 * left the device's context or queue in error (a GPU driver keeps a faulted context so), so
 * the next job on that device first rebuilds its context, queue and programs (from the binary
 * cache when there is one) and then runs; `recoveries` counts the rebuilds. A rebuild that
 * fails leaves the device not usable, with the reason in `problem`, and the job after tries
 * again. An allocation the driver refuses, at creation or late at enqueue, is HY_ELIMIT.
 *
 * Monte Carlo pi over samples o->first .. o->first + n - 1 (docs/pi-mapping.md), n >= 1 and
 * first + n <= 2^63 - 1: windows that tile [0, N) add up to the hits of N, as on the CPU
 * engine. Long jobs run as a series of short launches so progress and cancellation work. */
int hy_cl_pi(hy_cl *cl, const hy_cl_opts *o, uint64_t seed, uint64_t n, hy_cl_pi_result *r,
             hy_error *err);

typedef struct hy_cl_sort_result {
    size_t n;
    hy_cl_timing timing;
} hy_cl_sort_result;

/* Sorts in place with the CPU engine's exact order and bytes (docs/engine.md). A job larger
 * than the device can hold returns HY_ELIMIT naming the limit. */
int hy_cl_sort(hy_cl *cl, const hy_cl_opts *o, int dtype, void *data, size_t n,
               hy_cl_sort_result *r, hy_error *err);

/* "CL_OUT_OF_RESOURCES" for -5, ...; "CL_UNKNOWN_ERROR" for a code not in OpenCL 1.2/2.x. */
const char *hy_cl_error_name(int code);

#endif
