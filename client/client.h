/* client: hybridctl's internal interfaces — arrays (.npy and raw files, generated inputs,
 * order checks), reports (tables, CSV, JSON, SVG plots) and the exit codes. hybridctl links
 * ipc/ only; nothing here computes a job. */
#ifndef HY_CLIENT_H
#define HY_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common.h"
#include "ipc.h"

/* Exit codes, documented in --help and hybridctl(1). */
enum hc_exit {
    HC_EXIT_OK = 0,
    HC_EXIT_JOB = 1,     /* the job failed or was cancelled */
    HC_EXIT_USAGE = 2,   /* bad command line */
    HC_EXIT_CONNECT = 3, /* the daemon cannot be reached */
    HC_EXIT_INPUT = 4,   /* a bad input file (or an output file that cannot be written) */
};

/* ---- arrays: npy.c ---- */

/* An array in memory: n elements of dtype, `data` malloc'd (or NULL when n == 0). */
typedef struct hc_array {
    int dtype; /* hy_dtype */
    size_t n;
    void *data;
} hc_array;

/* Reads a .npy file (format 1.0, 2.0 or 3.0; little-endian or byte-order-free '|' for
 * one-byte types only; C order; one of the six dtypes; a 1-D shape (n,)). Every failure is
 * HY_EINVAL (or HY_ESYS for I/O) with a one-line sentence naming the file and the problem:
 * missing file, bad magic, unsupported version, big-endian, Fortran order, unsupported
 * dtype, malformed header, a shape whose product overflows, an array that is not 1-D (the
 * sentence gives its shape and says how to flatten it), and a
 * file shorter (or longer) than its header says (HY_ESYS for a file that cannot be opened
 * or read, HY_ELIMIT for data above max_bytes). The data is malloc'd (NULL when n == 0;
 * release it with hc_array_free); `out` need not be initialised and is all zero on failure.
 * max_bytes is checked against the header before anything is allocated. */
int hc_npy_read(const char *path, hc_array *out, size_t max_bytes, hy_error *err);
/* Reads a raw little-endian file of `dtype` elements (size must be a multiple), `out` as
 * for hc_npy_read. HY_EDTYPE for an unknown dtype; HY_EINVAL for a file that starts with
 * the .npy magic (its header would be sorted as data). */
int hc_raw_read(const char *path, int dtype, hc_array *out, size_t max_bytes, hy_error *err);
/* Writes a .npy 1.0 file (shape (n,), '<' + kind + size, C order) — or raw bytes when
 * raw — through hc_output_write: a regular file is replaced atomically (keeping its mode
 * and owner), a FIFO or character device written through, a symlink followed. */
int hc_npy_write(const char *path, const hc_array *a, bool raw, hy_error *err);
/* hc_npy_write of an array whose bytes are also the start of the file memfd (a->data its
 * mapping): the data goes from the memfd to the output file inside the kernel. */
int hc_npy_write_memfd(const char *path, const hc_array *a, int memfd, bool raw,
                       hy_error *err);
void hc_array_free(hc_array *a);

/* An input file opened and checked as hc_npy_read and hc_raw_read check it, its data not
 * read yet: the fd is positioned at the data, `what` describes it for the sentences. */
typedef struct hc_input {
    int fd;
    int dtype; /* hy_dtype */
    size_t n, header_len;
    const char *path;
    char what[96];
    bool borrowed; /* standard input: left open */
} hc_input;
/* What sentences call standard input (--input -). */
#define HC_STDIN_NAME "standard input"
/* Open and check, as hc_npy_read and hc_raw_read do (with their errors), short of reading
 * the data; `in` holds fd -1 on failure. */
int hc_npy_open(const char *path, hc_input *in, size_t max_bytes, hy_error *err);
int hc_raw_open(const char *path, int dtype, hc_input *in, size_t max_bytes, hy_error *err);
/* The same for standard input (--input -): a .npy's header read and checked (the stream's
 * end is checked when the data is sent); a terminal is refused. */
int hc_npy_open_stdin(hc_input *in, size_t max_bytes, hy_error *err);
/* Raw values of dtype from standard input, moved to `to` (a file, from its offset) up to
 * EOF: *n elements. HY_ELIMIT above max_bytes; HY_EINVAL for a .npy or a byte count that
 * is not whole elements. */
int hc_raw_stdin(int dtype, int to, size_t max_bytes, size_t *n, hy_error *err);
/* Copies the data into the file `to` from its current offset (a memfd sized for it), inside
 * the kernel (sendfile), checks that the file ends there, and closes the input. */
int hc_input_send(hc_input *in, int to, hy_error *err);
void hc_input_close(hc_input *in);

/* Fills n elements of dtype at `data` from `dist` ("uniform", "normal", "sorted",
 * "reversed", "few-unique") with a seeded generator (same seed, same array, everywhere;
 * only "normal" floats, which go through libm's log and cos, may differ in the last bit
 * between libms). npy.c documents the generator and each distribution's range.
 * HY_EINVAL for an unknown dist, HY_EDTYPE for an unknown dtype. */
int hc_generate(void *data, int dtype, size_t n, const char *dist, uint64_t seed,
                hy_error *err);
/* The distributions hc_generate knows, by index from 0: the name, or NULL past the last
 * (hybridctl's --dist check, its messages and its --list walk this). */
const char *hc_dist_name(size_t i);
/* Whether the array is in hybridd's order (ascending; for floats numpy's: -0.0 before +0.0
 * is not required (they compare equal), NaNs last). Sets *first_bad (when first_bad is not
 * NULL) to the first index i with a[i] > a[i+1] when it is not, and leaves it alone when it
 * is. An unknown dtype, or NULL data with n >= 2, is "not sorted" at index 0. */
bool hc_is_sorted(const void *data, int dtype, size_t n, size_t *first_bad);

/* ---- output files: output.c ---- */

/* A piece of a file's contents; a file is written from a list of them. With src_fd > 0 the
 * same len bytes are also the start of that file (the sort's memfd): they are moved from it
 * file to file with sendfile, never touching data's pages (a fault each, 4 KiB at a time,
 * where the client never read them), and data is the fallback where the output refuses
 * sendfile. */
typedef struct hc_chunk {
    const void *data;
    size_t len;
    int src_fd;
} hc_chunk;

/* Whether hybridctl may write `path`, decided the way hc_output_write decides it, and
 * creating nothing: called before a job runs, so that a long job never ends with nowhere
 * to put its result. HY_EINVAL for a directory, a socket or a block device; HY_ESYS for a
 * path the system refuses (a missing or unwritable directory, an existing file this user
 * cannot write); a sentence either way, naming `what` and the path ("cannot write the plot
 * x.svg: ..."; `what` may be NULL). */
int hc_output_check(const char *path, const char *what, hy_error *err);
/* The path that means standard output for hc_output_check and hc_output_write (--output -):
 * written straight through, never refused here (the caller decides about terminals). */
#define HC_STDOUT_PATH "-"
/* Writes the chunks to `path`, by what is there: nothing, or a regular file: atomically (a
 * temporary file in the same directory, fsync'd, renamed over the name), an existing file's
 * mode and owner kept; when the new file could not get them (the directory is not
 * writable, or the owner is someone else and this is not root), the existing file is
 * truncated and rewritten in place instead. A symlink is followed to its final target (the
 * link stays). A FIFO or a character device is opened and written through. What
 * hc_output_check refuses is refused here too. A failure leaves no temporary file behind,
 * and a sentence: HY_ESYS for the system's refusals (ENOSPC from /dev/full, EPIPE), as
 * above otherwise. output.c's opening comment is the full contract. */
int hc_output_write(const char *path, const char *what, const hc_chunk *chunks,
                    size_t nchunks, hy_error *err);
/* An atomic write's two halves, for bytes that someone else writes through the fd (the
 * daemon, for a sort whose array travels as the files' fds). hc_output_begin decides as
 * hc_output_write does; where that would replace the path atomically, it creates the
 * temporary file (mode and owner as hc_output_write gives them, open read-write) and sets
 * o->fd; where the path is written some other way (standard output, a FIFO, a device, in
 * place), o->fd is -1 and the caller writes with hc_output_write. Refusals as there.
 * hc_output_commit fsyncs, closes and renames it over the target (a failure: the sentence,
 * and the temporary file removed); hc_output_abandon closes and removes it. */
typedef struct hc_pending {
    int fd; /* the temporary file; -1: none */
    const char *path, *what;
    char *tmp, *dir, *target;
    bool unnamed; /* O_TMPFILE: no name until committed, nothing to remove */
} hc_pending;
int hc_output_begin(const char *path, const char *what, hc_pending *o, hy_error *err);
int hc_output_commit(hc_pending *o, hy_error *err);
void hc_output_abandon(hc_pending *o);

/* ---- reports: report.c ---- */

enum hc_format { HC_TEXT = 0, HC_JSON = 1, HC_CSV = 2 };

/* A finished compare, as the daemon returned it, plus what the client knows. */
typedef struct hc_compare {
    int job;             /* HY_JOB_COMPARE_PI or HY_JOB_COMPARE_SORT */
    uint64_t n, seed;
    int dtype;           /* sort */
    const char *dist;    /* sort: the generated distribution, or the input file's name */
    int mode;            /* hy_mode */
    unsigned repeat;
    unsigned nrows;
    const hy_result_row *rows; /* rows[0] is the serial baseline */
    const char *device_name;   /* the OpenCL device's name from DEVICES, or NULL */
    const char *server;        /* WELCOME's server name */
    /* How busy the machine was (the 1-minute load average, which the comparison's own
     * threads raise too) just before the job and right after it; cpus 0: not known. */
    double load_before, load_after;
    unsigned cpus;
} hc_compare;

/* The 1-minute load average and the online CPUs, for hc_compare's load fields; false when
 * the system does not say (then the comparison says nothing about it). */
bool hc_machine_load(double *load1, unsigned *cpus);

/* Derived figures of one row against the baseline rows[0]. */
typedef struct hc_derived {
    double throughput;  /* items per second, all copies: n * copies / median */
    double speedup;     /* throughput / the serial row's */
    double efficiency;  /* speedup / threads (CPU backends); 0 for opencl */
    double wait_share;  /* locked: lock_wait_ns / (median_ns * threads) */
    double transfer_share; /* opencl and process: (h2d + d2h) / (h2d + kernel + d2h); for
                            * process, the share spent moving parts to and from the workers */
    const char *device; /* honest label: "CPU", "PoCL CPU", "GPU", "OpenCL device" */
} hc_derived;
/* A figure that does not apply to the row's backend is 0; one that cannot be computed (a
 * zero median or a zero total) is NaN, printed as "-", an empty CSV field or JSON null. */
void hc_derive(const hc_compare *c, unsigned i, hc_derived *d);

/* The compare as a table (text), CSV (a header line, then one line per row, '\n'-ended) or
 * one JSON document with every figure. Returns 0, HY_ESYS when writing fails, or HY_ENOMEM
 * (the table's cells). Every report prints numbers under the C locale, whatever the
 * caller's setlocale. */
int hc_print_compare(FILE *f, const hc_compare *c, enum hc_format fmt);
/* An SVG scaling chart: speed-up over serial against threads, one line per CPU backend
 * (native, locked, and process per transport: "process/pipe", "process/shm"; every point
 * has a tooltip such as "process/pipe T=2: 1.85x"), opencl as a horizontal line at its
 * speed-up, the ideal (speed-up ==
 * threads) dashed; axes, ticks, a legend and a title naming the job and n. Written
 * through hc_output_write (what = "the plot"). Well-formed XML. */
int hc_write_plot(const char *path, const hc_compare *c, hy_error *err);

/* Single jobs. */
/* A job across MPI ranks gets, under its row, each rank's part (`nranks` of `ranks`, in rank
 * order; 0 when it ran on one daemon, or the daemon is older): text a table, JSON "per_rank"
 * and "per_rank_all", CSV one line per rank and an "all" line (HC_CSV). */
typedef struct hc_pi_report {
    uint64_t seed;
    const hy_result_row *row;
    const char *device_name; /* opencl */
    const hy_rank_row *ranks;
    unsigned nranks;
} hc_pi_report;
int hc_print_pi(FILE *f, const hc_pi_report *r, enum hc_format fmt);

typedef struct hc_sort_report {
    int dtype;
    const char *source;      /* "uniform" ... or the input file */
    const char *output;      /* the written file, or NULL */
    int checked;             /* -1 not checked, 0 out of order, 1 in order */
    const hy_result_row *row;
    const char *device_name;
    const hy_rank_row *ranks;
    unsigned nranks;
} hc_sort_report;
int hc_print_sort(FILE *f, const hc_sort_report *r, enum hc_format fmt);

int hc_print_status(FILE *f, const hy_msg_status_reply *s, enum hc_format fmt);
int hc_print_devices(FILE *f, const hy_msg_devices_reply *d, enum hc_format fmt);
/* STATUS with the MPI world of a RANKS_REPLY w (NULL: the daemon did not say): a line (a JSON
 * "world" member) when the daemon runs under MPI, or always with `every`, and then one per
 * rank listed with its counters. */
int hc_print_status_world(FILE *f, const hy_msg_status_reply *s, const hy_msg_ranks_reply *w,
                          bool every, enum hc_format fmt);
/* RANKS ALL for `devices --ranks`: a section per rank (its node, pools and devices), or one
 * JSON document {"mpi", "rank", "size", "complete", "ranks": [...]}. */
int hc_print_ranks(FILE *f, const hy_msg_ranks_reply *r, enum hc_format fmt);
/* The daemon's performance history (MODEL_REPLY): a table of cells sorted by configuration
 * and size, with each cell's error when its neighbours predict it, or one JSON document. */
int hc_print_model(FILE *f, const hy_msg_model_reply *m, enum hc_format fmt);

/* The queued and running jobs of a JOBS_REPLY: a table, or one JSON document. owners[i]
 * names the user of record i (NULL: unknown, shown as "?" and null). */
int hc_print_jobs(FILE *f, const hy_msg_jobs_reply *r, const char *const *owners,
                  enum hc_format fmt);

/* A JSON string literal for s (len bytes), escaped, quotes included. */
void hc_json_string(FILE *f, const char *s, size_t len);

#endif
