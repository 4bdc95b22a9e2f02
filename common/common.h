/* common: what several hybridd modules share — error codes and their messages, the six
 * dtypes, and the monotonic clock. Nothing here allocates or does I/O. */
#ifndef HY_COMMON_H
#define HY_COMMON_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Every hybridd function returns 0 or one of these (negative) codes. The wire protocol maps
 * them one to one, so their values never change once released; new codes are appended. */
typedef enum hy_err {
    HY_OK = 0,
    HY_EINVAL = -1,    /* an argument is out of its documented range */
    HY_ENOMEM = -2,    /* an allocation failed */
    HY_ECANCELED = -3, /* the job was stopped by its progress callback */
    HY_ELIMIT = -4,    /* a size or count is beyond a configured or hard limit */
    HY_EDTYPE = -5,    /* unknown or unsupported dtype */
    HY_ESYS = -6,      /* a system call failed (the message names it and errno) */
    HY_EBACKEND = -7,  /* unknown backend, or the backend cannot run this job */
    HY_EINTERNAL = -8, /* an invariant broke: a bug in hybridd */
    HY_EPROTO = -9,    /* a malformed frame or message */
    HY_EVERSION = -10, /* a protocol version this peer does not speak */
    HY_ETYPE = -11,    /* an unknown message type */
    HY_EBUSY = -12,    /* busy: job queue or client limit full, or shutting down; retry later */
    HY_EPERM = -13,    /* this user is not allowed to use the daemon */
    HY_EWORKER = -14,  /* a worker process died during the job (it has been replaced) */
} hy_err;

/* A code plus the sentence that explains it to a person. Functions that can fail take a
 * `hy_error *` (may be NULL) and fill it when they return an error. */
#define HY_ERROR_MSG_MAX 240
typedef struct hy_error {
    int code;
    char msg[HY_ERROR_MSG_MAX];
} hy_error;

/* Fills `err` (when not NULL) with code and a printf-formatted message; returns `code`, so a
 * failing path can `return hy_error_set(err, HY_EINVAL, "...")`. */
int hy_error_set(hy_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A short constant name for a code: "EINVAL", "ECANCELED", ... ("EUNKNOWN" otherwise). */
const char *hy_err_name(int code);

/* The element types a sort job may hold. Values are part of the wire format. */
typedef enum hy_dtype {
    HY_DT_I32 = 1,
    HY_DT_U32 = 2,
    HY_DT_I64 = 3,
    HY_DT_U64 = 4,
    HY_DT_F32 = 5,
    HY_DT_F64 = 6,
} hy_dtype;

/* Size in bytes of one element, or 0 for a value that is not a dtype. */
size_t hy_dtype_size(int dtype);
/* "i32", "u32", ... or NULL for a value that is not a dtype. */
const char *hy_dtype_name(int dtype);
/* The .npy 1.0 header numpy writes for a 1-D C-order little-endian array of n elements of
 * dtype, into buf: its length, or 0 if it does not fit in cap (or dtype is not one). Shared by
 * hybridctl's --output and the MPI ranks' .npy sort, so both write numpy's bytes. */
size_t hy_npy_header(int dtype, uint64_t n, char *buf, size_t cap);

/* Reading one back (common/npy.c): the one .npy header parser, for hybridctl's input files
 * and hybridd's MPI sort of .npy paths, so that the two never disagree on what a file holds.
 * No I/O: the caller reads the bytes. Every refusal is a one-line sentence naming path, the
 * header's own bytes in it escaped. */
#define HY_NPY_PREFIX_MAX 12       /* magic, version, and the longest length field */
#define HY_NPY_HEADER_MAX 65536u   /* the longest header dict taken */
/* A .npy file's prefix: the first `have` bytes of the file at pre. Magic, version 1.0, 2.0
 * or 3.0 checked, *at set to where the header dict starts (10, or 12 for versions 2 and 3).
 * When have < *at, *hlen is 0: read the first *at bytes and call again. Otherwise *hlen is the
 * dict's length, 1..HY_NPY_HEADER_MAX, and the elements start at *at + *hlen. 0, or HY_EINVAL
 * (not the magic, fewer than 8 bytes, another version, a length out of range). */
int hy_npy_prefix(const char *path, const unsigned char *pre, size_t have, uint64_t *at,
                  uint64_t *hlen, hy_error *err);
/* The header dict: its hlen bytes at h (not NUL-terminated; a NUL inside is refused), ending
 * in a newline. Taken: a Python dict literal with exactly the keys descr, fortran_order and
 * shape, in any order and either quote, naming a 1-D C-order array of one of the six dtypes
 * little-endian, whose bytes (n times the dtype's size) fit a size_t: a larger count is
 * refused, never wrapped or clamped. Sets *dtype and *n; 0, or HY_EDTYPE for a descr that is
 * not one of the six ('>f8', '<i2', a structured list), HY_EINVAL for the rest. */
int hy_npy_dict(const char *path, const char *h, size_t hlen, int *dtype, uint64_t *n,
                hy_error *err);

/* The checks every sort takes first, whatever runs it: a known dtype (HY_EDTYPE otherwise)
 * and an array when n > 0 (HY_EINVAL otherwise). Sets *size to the element size. */
int hy_check_sort_args(int dtype, const void *data, size_t n, size_t *size, hy_error *err);
/* Parses "i32" ... "f64" (also numpy's "int32", "float64", ...); returns the dtype or 0. */
int hy_dtype_parse(const char *s);

/* Where a job runs. Values are part of the wire format. */
typedef enum hy_backend {
    HY_BACKEND_SERIAL = 1, /* one thread, the caller's: the baseline */
    HY_BACKEND_NATIVE = 2, /* threads with no global lock (numba nogil=True, C extensions) */
    HY_BACKEND_LOCKED = 3, /* threads under one runtime-wide lock, modelled on CPython's GIL */
    HY_BACKEND_OPENCL = 4, /* kernels on an OpenCL device */
    HY_BACKEND_PROCESS = 5, /* single-threaded worker processes (Python's multiprocessing) */
    HY_BACKEND_HYBRID = 6, /* one job across the CPU pool and the OpenCL devices at once */
} hy_backend;
/* A single job's SUBMIT may name no backend but ask the daemon to choose one from its
 * performance history. It is a request, never a backend a job runs on: no row, counter or
 * mask carries it, so it sits outside 1..HY_BACKEND_COUNT and does not move as backends are
 * appended. Value part of the wire format. */
#define HY_BACKEND_AUTO 0xFF
/* How many backends there are: they are numbered 1..HY_BACKEND_COUNT, with no gaps. The wire
 * (SUBMIT's range check and mask, STATUS's per-backend counters), the daemon's tables and
 * every client list follow this count and the names table behind hy_backend_name. */
#define HY_BACKEND_COUNT 6
/* Every backend's bit in a compare's `backends` mask (bit b for backend b). */
#define HY_BACKEND_MASK_ALL (((1u << (HY_BACKEND_COUNT + 1)) - 1) & ~1u)

/* How the process backend moves a sort's parts. Values are part of the wire format. */
typedef enum hy_transport {
    HY_TRANSPORT_PIPE = 1, /* copied through the worker's socket and back (pickling) */
    HY_TRANSPORT_SHM = 2,  /* left in one shared mapping; only offsets travel */
} hy_transport;

/* How T threads share a job. */
typedef enum hy_mode {
    HY_MODE_SPLIT = 1,     /* one job divided among T threads (strong scaling) */
    HY_MODE_REPLICATE = 2, /* T independent copies of the job at once (the lesson's two threads) */
} hy_mode;

/* Whether a locked-runtime job releases the lock in its native section. */
typedef enum hy_nogil {
    HY_NOGIL_DEFAULT = 0, /* the job's own default: pi holds the lock, sort releases it */
    HY_NOGIL_RELEASE = 1, /* like numpy.sort or numba nogil=True */
    HY_NOGIL_HOLD = 2,    /* like pure-Python code */
} hy_nogil;

const char *hy_backend_name(int backend); /* "serial", ... or NULL */
const char *hy_backend_about(int backend); /* what it is, in one line, or NULL */
int hy_backend_parse(const char *s);      /* the backend, or 0 */
/* Writes "serial (1), native (2), ... or process (5)" into buf, for sentences naming the
 * valid values; returns buf. HY_BACKEND_VALUES_MAX bytes always hold it. */
#define HY_BACKEND_VALUES_MAX (HY_BACKEND_COUNT * 24)
const char *hy_backend_values(char *buf, size_t len);
const char *hy_mode_name(int mode);       /* "split", "replicate" or NULL */
const char *hy_transport_name(int transport); /* "pipe", "shm" or NULL */
int hy_transport_parse(const char *s);         /* the transport, or 0 */

/* A job's progress report: `done` of `total` units of work. Return non-zero to cancel the
 * job. Each compute module says when it calls it. */
typedef int (*hy_progress_fn)(void *ctx, uint64_t done, uint64_t total);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t hy_now_ns(void);

/* The most a sort's buffers may hold between jobs, each: the CPU engine's scratch, the
 * process pool's pipe buffer and shared mapping, an OpenCL device's array pair. Keeping them
 * spares the next job its allocation and page faults; 256 MiB covers a 3 x 10^7-element f64
 * sort, and bounds what an idle daemon, running for months, holds for good after one huge
 * job (a shared machine's memory is its users', not the daemon's). */
#define HY_KEEP_BYTES ((size_t)256 << 20)

/* A block of at least `bytes` for a large array, 2 MiB aligned and rounded up to 2 MiB
 * (*rounded gets its size), advised to transparent huge pages: where they are given on
 * request (`enabled` is madvise), a scatter over it misses the TLB far less than over 4 KiB
 * pages. free() releases it. NULL when out of memory. */
void *hy_huge_alloc(size_t bytes, size_t *rounded);

/* Whether a scatter to many places in memory should stage each destination's elements and
 * write them a few cache lines at a time with non-temporal stores: on x86-64 CPUs but AMD's.
 * On the Intel Xeon guest a plain store to a line not in cache first read it from memory,
 * which made a radix sort's scatter 2.5-3x as slow (bench/mem-bench --scatter); on the AMD
 * EPYC (Zen 4) guest the staging measured slower. */
bool hy_stage_stores(void);

/* Whether the environment variable `name` is "1", read once per process into *cache (-1
 * until read; threads that race store one value): the switches tests set
 * (HYBRIDD_TEST_SORT_PORTABLE, ...). */
bool hy_env_flag(const char *name, atomic_int *cache);

#endif
