/* proc: the `process` backend — a pool of single-threaded worker processes that run the CPU
 * engine's kernels, as Python's multiprocessing.Pool does for code the GIL would serialise.
 * A job split over T workers sends each its part and gathers the parts back. Sort parts
 * travel one of two ways: through the worker's socket (`pipe`: the bytes are copied out and
 * back, the analogue of pickling), or in one shared memfd mapping (`shm`: only offsets
 * travel, the analogue of multiprocessing.shared_memory). Results are the same bytes as every
 * other backend's. This is the module's only public header; it knows no client sockets,
 * frames or config files. */
#ifndef HY_PROC_H
#define HY_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common.h"

#define HY_PROC_MAX_WORKERS 64

typedef struct hy_proc_pool hy_proc_pool;

typedef struct hy_proc_config {
    unsigned workers; /* 1 .. HY_PROC_MAX_WORKERS */
    /* The program run as a worker, with the single argument "--process-worker"; it must call
     * hy_proc_worker_main. NULL means "/proc/self/exe" (this very binary). */
    const char *exe;
} hy_proc_config;

/* Starts the workers and waits until each has said it is ready. The pool is then driven by
 * one thread at a time (the daemon's CPU executor). */
int hy_proc_pool_create(const hy_proc_config *cfg, hy_proc_pool **out, hy_error *err);
/* Closes every worker's socket (a worker exits when it reads EOF), waits briefly, kills what
 * is left, and reaps them all. NULL is fine. */
void hy_proc_pool_destroy(hy_proc_pool *p);
unsigned hy_proc_pool_size(const hy_proc_pool *p);
/* Workers alive now (a dead one is reaped and replaced when the next job starts, or at once
 * when it dies during a job). */
unsigned hy_proc_pool_live(hy_proc_pool *p);
/* Worker i's process id, or 0 while it is not running (for status and tests). */
pid_t hy_proc_worker_pid(const hy_proc_pool *p, unsigned i);

typedef struct hy_proc_opts {
    unsigned workers;   /* T: 1 .. hy_proc_pool_size() */
    int transport;      /* enum hy_transport; 0 means pipe */
    hy_progress_fn progress; /* may be NULL; non-zero return cancels (HY_ECANCELED) */
    void *progress_ctx;
    uint64_t first;     /* pi: the window's first sample (0: samples 0 .. n-1) */
} hy_proc_opts;

typedef struct hy_proc_stats {
    uint64_t wall_ns;     /* the whole job, restarts included */
    uint64_t send_ns;     /* the parent sending parts (encoding and moving data out) */
    uint64_t recv_ns;     /* the parent reading parts back (moving data in, decoding) */
    uint64_t merge_ns;    /* merging the sorted parts (the parent for pipe, the workers for shm) */
    uint64_t bytes_moved; /* bytes written to and read from worker sockets, both ways */
    uint64_t startup_ns;  /* (re)starting workers that were dead when the job began */
    unsigned started;     /* workers (re)started for this job */
    unsigned workers;     /* T */
} hy_proc_stats;

/* Hits among samples [o->first, o->first + n) of pi's stream for `seed` (docs/pi-mapping.md):
 * identical to hy_host_pi_part's, so windows that tile [0, N) add up to hy_host_pi's hits of
 * N. Both transports send only counts and seeds. */
int hy_proc_pi(hy_proc_pool *p, uint64_t seed, uint64_t n, const hy_proc_opts *o,
               uint64_t *hits, hy_proc_stats *st, hy_error *err);

/* Sorts n elements of dtype at `data` in place, the same bytes hy_host_sort gives. For shm,
 * `fd` is a memfd whose bytes [0, n * size) are the array and `data` its shared mapping;
 * fd -1 means `data` is private memory, and the pool copies it through a memfd of its own
 * (counted in bytes_moved and send/recv time). pipe ignores fd. */
int hy_proc_sort(hy_proc_pool *p, int dtype, void *data, int fd, size_t n,
                 const hy_proc_opts *o, hy_proc_stats *st, hy_error *err);

/* The worker's side: serves requests on fd 3 until EOF, then returns the exit status. Called
 * by the worker program's main when given "--process-worker". */
int hy_proc_worker_main(void);

#endif
