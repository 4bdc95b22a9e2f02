/* daemon/jobs: jobs and the executors that run them — one thread for the CPU engine and one
 * per usable OpenCL device — with fair queues across clients, and a gate that gives a timed
 * comparison the machine to itself. The server thread creates jobs and reads their answers;
 * executors only run them. Nothing here touches a socket. */
#ifndef HY_DAEMON_JOBS_H
#define HY_DAEMON_JOBS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "auto.h"
#include "runner.h"
#include "spec.h"

enum hy_job_state { HY_JOB_QUEUED = 1, HY_JOB_RUNNING = 2, HY_JOB_FINISHED = 3 };

/* Why a job was asked to stop; decides the sentence of its ECANCELED answer. */
enum hy_cancel_reason {
    HY_CANCEL_NONE = 0,
    HY_CANCEL_CLIENT = 1,     /* CANCEL from its client */
    HY_CANCEL_DISCONNECT = 2, /* its client went away */
    HY_CANCEL_TIMEOUT = 3,    /* limits.job_timeout_s */
    HY_CANCEL_SHUTDOWN = 4,   /* the daemon is stopping */
};

/* Per-backend counters are indexed hy_backend - 1, HY_BACKEND_COUNT of them. */

struct hy_client;

/* A memfd's mapping, and whose memfd it is. An executor keeps one after a job whose client
 * allows it (HY_FEATURE_KEEP_MAP) for that client's next job on the same memfd: mapping
 * 10^7 f64 costs 7-8 ms and unmapping 3-8 ms on every job, a fifth of the sort. The memfd is
 * known by its inode, which cannot be reused while a mapping keeps the file alive. */
typedef struct hy_mapping {
    uint64_t owner; /* the client's id; 0: not to be kept */
    dev_t dev;
    ino_t ino;
    void *addr;     /* NULL: none */
    size_t bytes;   /* the mapping's length: at least the job's array */
} hy_mapping;

typedef struct hy_job {
    /* Set by the server before hy_sched_submit; read-only afterwards. */
    uint64_t id, request;
    hy_job_spec spec;         /* what to run: made once from its SUBMIT */
    void *array;              /* sort: the elements (an inline copy, or the memfd mapped) */
    char *paths;              /* array FILES: spec.input and spec.output point into it */
    /* A memfd array: the executor maps it when the job starts and unmaps it when it ends,
     * so neither mapping gigabytes nor tearing them down ever stalls the event loop. */
    int array_fd;             /* -1: none; kept open while mapped (process/shm shares it) */
    bool array_mapped;        /* array is the memfd's mapping: munmap rather than free */
    /* An fds array (HY_ARRAY_FDS): the client's files, read into the executor's own buffer
     * when the job starts (array then borrows it) and written from it when it ends. */
    hy_file_array files;
    bool array_borrowed;      /* array is the executor's buffer: neither freed nor unmapped */
    /* The memfd's identity (owner, dev, ino), set by the server when the client allows its
     * mapping to be kept (hy_job_allow_keep); addr and bytes are the executor's. */
    hy_mapping map;
    unsigned exec;            /* the executor that runs it */
    uint64_t queued_ns;

    /* The server thread's own. */
    struct hy_client *client; /* NULL once the client has gone */
    struct hy_job *cprev, *cnext;
    uint64_t progress_done;   /* what the last PROGRESS said */
    uint32_t progress_row;
    uint64_t predicted_ns;    /* its run time as the history predicted it at accept; 0 unknown */

    /* Under the scheduler's lock. */
    int state;
    size_t heap_i;
    uint64_t tag, seq;
    uint64_t start_ns, end_ns;
    struct hy_job *done_next;

    /* Written by the executor while it runs, read by the server. */
    _Atomic int cancel;       /* enum hy_cancel_reason; non-zero stops the job */
    _Atomic uint64_t done, total;
    _Atomic uint32_t row;

    /* The answer, written by the executor before it hands the job back. */
    int rc;
    hy_error err;
    hy_result_row *rows;
    unsigned nrows;
    hy_span_ranks span; /* a row across MPI ranks: each rank's part (RESULT rank records) */
    uint64_t busy_ns[HY_BACKEND_COUNT];
    uint64_t configs[HY_BACKEND_COUNT];
} hy_job;

typedef struct hy_sched hy_sched;

/* Starts the CPU executor and one executor per entry of `devices` (OpenCL device indices).
 * `notify_fd` is an eventfd written whenever a job finishes. Every timed run of every row that
 * succeeds is recorded in e->history when there is one (it must outlive the scheduler). */
int hy_sched_create(const hy_engines *e, const unsigned *devices, unsigned ndevices,
                    int notify_fd, hy_sched **out, hy_error *err);
/* Stops and joins every executor after asking running jobs to stop. Queued jobs must have
 * been taken out (hy_sched_cancel) first. NULL is fine. */
void hy_sched_destroy(hy_sched *s);

/* The executor for an OpenCL device index, or -1 when no executor owns it. */
int hy_sched_device_exec(const hy_sched *s, unsigned device);

/* Queues a job on job->exec. *client_tag is the client's fairness tag on that executor
 * (one per executor, kept by the caller, starting at 0). *ahead gets how many jobs are ahead
 * of it (0: it starts now). Returns 0, or HY_ENOMEM when the queue cannot grow. */
int hy_sched_submit(hy_sched *s, hy_job *job, uint64_t *client_tag, unsigned *ahead,
                    hy_error *err);

/* Stops a job: a queued one is taken out of its queue and true is returned (the caller
 * answers it and frees it); a running one is asked to stop with `reason` and false is
 * returned (its answer comes through hy_sched_take_done). */
bool hy_sched_cancel(hy_sched *s, hy_job *job, int reason);

/* The finished jobs, oldest first, linked by done_next; NULL when there is none. */
hy_job *hy_sched_take_done(hy_sched *s);

/* Marks a memfd job's mapping as one the executor may keep after it for `owner` (a client id,
 * not 0): the memfd's identity is taken now. The server calls it before hy_sched_submit, for
 * a client that asked for HY_FEATURE_KEEP_MAP. */
void hy_job_allow_keep(hy_job *job, uint64_t owner);

/* The client `owner` has gone: the mappings kept for it are unmapped (by the executors, not the
 * caller), and none is kept after its running jobs. */
void hy_sched_forget(hy_sched *s, uint64_t owner);

/* Calls fn for every running job, under the scheduler's lock (fn must be quick and must not
 * call back into the scheduler). */
void hy_sched_foreach_running(hy_sched *s, void (*fn)(hy_job *job, void *ctx), void *ctx);

typedef struct hy_sched_stats {
    uint64_t queued;
    uint64_t running; /* started and not yet taken back by hy_sched_take_done */
    uint64_t configs[HY_BACKEND_COUNT]; /* configurations run, per backend */
    uint64_t busy_ns[HY_BACKEND_COUNT]; /* wall time spent running, per backend */
} hy_sched_stats;
void hy_sched_get_stats(hy_sched *s, hy_sched_stats *st);

/* A new job, all zero but its fds, which are -1 (none): hy_job_free closes what is >= 0,
 * and 0 is the daemon's standard input. NULL when out of memory. */
hy_job *hy_job_new(void);
/* Frees a job that no executor holds (its array too). NULL is fine. */
void hy_job_free(hy_job *job);

#endif
