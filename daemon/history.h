/* daemon/history: the daemon's performance history — every timed run of every successful
 * row, kept per cell (job, dtype, backend, device, threads, transport, log2 n) as its last
 * HY_HISTORY_RING run times, with the median, the sample count and whether there are enough
 * samples to trust; a prediction for any size inside the measured ones; and a small versioned
 * file per host, loaded at start and saved atomically. `--backend auto` and `hybrid` will read
 * it; see docs/scheduling.md. Thread-safe: executors record while others read and save. */
#ifndef HY_DAEMON_HISTORY_H
#define HY_DAEMON_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

#define HY_HISTORY_RING 20         /* run times a cell keeps: its last ones */
/* Samples a cell needs before its median is trusted. StarPU waits for 10; hybridd's runs are
 * warm, timed back to back on an otherwise idle engine, and the first of each cell is already
 * dropped, so a median of 5 (robust to 2 outliers) is enough — and 10 would leave a cell
 * untrusted after the 10 runs within which issue 18 wants `auto` to choose well. */
#define HY_HISTORY_TRUST 5
#define HY_HISTORY_FORMAT 1        /* the file's format version */
#define HY_HISTORY_MAX_CELLS 16384 /* more are not recorded, and a file with more is corrupt */
#define HY_HISTORY_HOST_MAX 256    /* a host id, NUL included */
#define HY_HISTORY_REASON_MAX 200  /* why a file was set aside, NUL included */

/* A cell's key without its size. Fields that do not apply are 0. */
typedef struct hy_history_key {
    int work;         /* HY_JOB_PI or HY_JOB_SORT */
    int dtype;        /* HY_DT_* for sort; 0 for pi */
    int backend;      /* hy_backend */
    unsigned device;  /* the OpenCL device index for opencl; 0 otherwise */
    unsigned threads; /* threads, or process workers, as the row ran; 0 for a device */
    int transport;    /* HY_TRANSPORT_* for process; 0 otherwise */
} hy_history_key;

/* The size bucket of n: floor(log2 n), 0 for n <= 1. */
unsigned hy_history_log2(uint64_t n);

/* What opening found in the file. */
typedef enum hy_history_loaded {
    HY_HISTORY_NONE = 0,       /* no path configured: the history lives in memory only */
    HY_HISTORY_NEW = 1,        /* no file yet: starts empty */
    HY_HISTORY_LOADED = 2,     /* read and trusted */
    HY_HISTORY_CORRUPT = 3,    /* set aside as PATH.corrupt; starts empty */
    HY_HISTORY_FOREIGN = 4,    /* another host or format: set aside as PATH.foreign */
    HY_HISTORY_UNREADABLE = 5, /* could not be read (permissions, I/O): left as it is */
} hy_history_loaded;

typedef struct hy_history_report {
    hy_history_loaded loaded;
    char reason[HY_HISTORY_REASON_MAX]; /* CORRUPT/FOREIGN/UNREADABLE: why, in a sentence */
    size_t cells;                       /* LOADED: cells read */
    char writer[64];                    /* LOADED: the hybridd version that wrote it */
} hy_history_report;

typedef struct hy_history_options {
    const char *path;        /* the file; NULL or "": memory only, nothing loaded or saved */
    const char *host;        /* this host's id (hy_history_host_id) */
    const char *version;     /* this hybridd's version, written into the file */
    unsigned save_every_ms;  /* > 0: a thread saves changes at most this often; 0: only
                              * hy_history_save and hy_history_close save */
} hy_history_options;

typedef struct hy_history hy_history;

/* Opens the history: loads o->path when it names a file, setting aside (and logging as a
 * warning) a corrupt or foreign one, which is never trusted; *report (may be NULL) says what
 * happened. Fails only for lack of memory or threads (HY_ENOMEM, HY_ESYS). */
int hy_history_open(const hy_history_options *o, hy_history **out, hy_history_report *report,
                    hy_error *err);
/* Stops the saving thread, saves unsaved changes, frees. NULL is fine. */
void hy_history_close(hy_history *h);

/* Records one timed run of n elements or samples that took ns. The first run of each cell
 * after open is dropped (cold caches, kernel builds). A key with an out-of-range field is
 * ignored. Cheap: a lock, a search, a store. */
void hy_history_record(hy_history *h, const hy_history_key *k, uint64_t n, uint64_t ns);

/* One cell's state. */
typedef struct hy_history_cell {
    unsigned samples;   /* run times kept, 0..HY_HISTORY_RING */
    uint64_t median_ns; /* their median (0 without samples) */
    bool trusted;       /* samples >= HY_HISTORY_TRUST */
} hy_history_cell;
/* The cell (k, log2n) into *out; false (and *out zeroed) when the history has no samples. */
bool hy_history_get(hy_history *h, const hy_history_key *k, unsigned log2n,
                    hy_history_cell *out);

/* Calls fn for every cell with samples, in the order they were first recorded or loaded, with
 * its key, size bucket and state (for `hybridctl model` and the planned `auto`). fn runs under
 * the history's lock: it must be quick and must not call back into the history. Returns how
 * many cells there were. */
typedef void hy_history_cell_fn(void *ctx, const hy_history_key *k, unsigned log2n,
                                const hy_history_cell *c);
size_t hy_history_foreach(hy_history *h, hy_history_cell_fn *fn, void *ctx);

typedef enum hy_history_answer {
    HY_PREDICT_UNKNOWN = 0,  /* outside the trusted sizes: no extrapolation */
    HY_PREDICT_FEW = 1,      /* n's cell has samples, too few to trust (ns: their median) */
    HY_PREDICT_MEASURED = 2, /* n's cell is trusted: ns is its median */
    HY_PREDICT_INTERPOLATED = 3, /* between the nearest trusted cells below and above n's
                                  * (n's own cell empty or with too few samples) */
} hy_history_answer;

typedef struct hy_history_prediction {
    hy_history_answer answer;
    double ns;          /* the predicted time (0 when UNKNOWN) */
    unsigned samples;   /* samples in n's own cell */
    unsigned runs;      /* runs n's own cell has seen: its samples, plus the first run since
                         * open that was dropped (so 1 after that run alone, where samples
                         * is 0); any answer, UNKNOWN included */
    unsigned lo, hi;    /* INTERPOLATED: the log2 buckets it interpolated between */
} hy_history_prediction;
/* Predicts the time of a run of n under key k. */
void hy_history_predict(hy_history *h, const hy_history_key *k, uint64_t n,
                        hy_history_prediction *out);

/* Writes the file now (temporary file in the same directory, fsync, rename), whatever has
 * changed. 0, or HY_ESYS with the reason; memory-only histories return 0. */
int hy_history_save(hy_history *h, hy_error *err);

/* This host's id for the file: /etc/machine-id, else the host name, into buf; never empty. */
void hy_history_host_id(char *buf, size_t cap);

#endif
