/* ipc/msg.c: every message as data — one table of fields and variable items per type, as
 * docs/protocol.md lays them out — and the one encoder and one decoder that walk those tables.
 * The rules of "Messages: common rules" live in the walkers, once; a type adds only its table
 * and, where the protocol restricts values, a check. Decoding checks each length before use
 * and never allocates. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "le.h"

static uint64_t align8(uint64_t n)
{
    return (n + 7) & ~(uint64_t)7;
}

/* ---- descriptions ---- */

/* A fixed field's wire form. Integers and f64 (its IEEE-754 bits, NaN payloads kept) are
 * copied to and from a struct member of the same width; F_TEXT is a NUL-padded char field of
 * `n` bytes whose member holds one byte more for the NUL; F_STRIDE is the size of each record
 * of one of the message's record lists (row_size, record_size), held by no member: `n` says
 * which list (0 the first, 1 the second; only RANKS_REPLY has two). */
enum { F_U16, F_U32, F_U64, F_F64, F_TEXT, F_STRIDE };
#define WIDTH(k) ((k) == F_U16 ? 2u : (k) == F_U32 ? 4u : 8u)

typedef struct field {
    const char *name;
    uint32_t wire;  /* offset in the body or record */
    uint8_t kind;
    uint16_t n;     /* F_TEXT: width on the wire */
    uint32_t mem;   /* offsetof the struct member */
    uint32_t since; /* the body or record size that appended it; 0: the first layout */
    /* An array member's run of elements: `count` values (0 means 1), each `step` bytes
     * after the last on the wire and, when `since` is set, appended `step` bytes later. */
    uint16_t count, step;
} field;

/* The walkers copy WIDTH(kind) bytes per value to and from the member: a member of another
 * size is a compile error here (a negative array size), not a silent misread. */
#define CHECKED(ok) (0 * sizeof(char[(ok) ? 1 : -1]))
#define MSIZE(T, m) sizeof(((T *)0)->m)
#define FX(T, m, off, k, n, ok, since) \
    {#m, off, k, n, (uint32_t)(offsetof(T, m) + CHECKED(ok)), since, 0, 0}
#define F(T, m, off, k) FX(T, m, off, k, 1, MSIZE(T, m) == WIDTH(k), 0)
#define FSINCE(T, m, off, k, since) FX(T, m, off, k, 1, MSIZE(T, m) == WIDTH(k), since)
#define TEXT(T, m, off, n, since) FX(T, m, off, F_TEXT, n, MSIZE(T, m) == (n) + 1u, since)
#define STRIDE(name, off) {name, off, F_STRIDE, 0, 0, 0, 0, 0}
#define STRIDE2(name, off) {name, off, F_STRIDE, 1, 0, 0, 0, 0}
/* A record size appended to the body at `since`: from an earlier layout it reads as absent. */
#define STRIDE_SINCE(name, off, n, since) {name, off, F_STRIDE, n, 0, since, 0, 0}
#define NSTRIDES 2
/* Elements first .. first + count - 1 of array member m, the first at `off`. */
#define FARRAY(T, m, first, cnt, off, stp, k, since)                                        \
    {#m, off, k, 1,                                                                         \
     (uint32_t)(offsetof(T, m[first]) +                                                     \
                CHECKED(MSIZE(T, m[0]) == WIDTH(k) &&                                       \
                        (first) + (cnt) <= MSIZE(T, m) / MSIZE(T, m[0]))),                  \
     since, cnt, stp}
#define NF(a) (unsigned)(sizeof a / sizeof a[0])
/* Parts of an item's initializer: its count member (with its width); the u16 dtype member
 * that sizes its elements; the u32 member and value it is present for. */
#define COUNT(T, m) .cmem = offsetof(T, m), .cw = MSIZE(T, m)
#define DTYPE(T, m) .dtype = (uint32_t)(offsetof(T, m) + CHECKED(MSIZE(T, m) == 2))
#define WHEN(T, m, v) \
    .when = #m, .when_mem = (uint32_t)(offsetof(T, m) + CHECKED(MSIZE(T, m) == 4)), .when_val = v

/* A list of fixed-size records (RESULT rows, device records): `size` written, `min` the
 * least a reader takes; each record is `ssize` bytes apart in the struct array. */
typedef struct rec {
    const field *f;
    unsigned nf;
    uint32_t size, min;
    size_t ssize;
} rec;

/* Variable data after the body, in order. Each kind has its own limit check, made before
 * anything is taken or looped over. */
enum {
    I_STR,   /* hy_str at `mem`; its length is the count */
    I_U32S,  /* count u32s into the uint32_t array at `mem`, each >= `elem_min` */
    I_RECS,  /* count records of `rec`, stride from the body's F_STRIDE number `sidx`; encode
                reads the pointer at `mem`, decode fills the array at `store` and points `mem`
                at it */
    I_BYTES, /* count elements of `elem` bytes (0: the size of the dtype at `dtype`), the
                pointer at `mem`, their byte length at `store` (`sw` wide); sent as bulk,
                uncopied, so it must be the last item */
};

typedef struct item {
    const char *name;  /* the item, in sentences */
    const char *count; /* the field that counts it, in sentences */
    uint8_t kind;
    uint8_t cw;        /* width of the count member */
    uint32_t cmem;     /* offsetof the count member */
    uint32_t max;      /* the protocol's limit on the count; 0: what a frame can carry */
    uint32_t mem, store;
    uint8_t sw;
    uint32_t elem_min, elem, dtype;
    const rec *rec;
    uint8_t sidx;      /* I_RECS: which F_STRIDE sizes its records */
    const char *when;  /* present only when the u32 at when_mem is when_val; NULL: always */
    uint32_t when_mem, when_val;
} item;

/* One message type. `body` is the encoder size, `min` the decoder minimum (the first
 * layout). `check` refuses values the protocol rules out, once the fixed fields are read and
 * before any variable item is taken. */
typedef struct mdesc {
    const char *name;
    uint32_t body, min;
    const field *f;
    unsigned nf;
    const item *it;
    unsigned ni;
    int (*check)(const void *x, const hy_frame *fr, hy_error *err);
    bool fds; /* the type may come with fds */
} mdesc;

/* ---- the tables: docs/protocol.md "Message layouts", field by field ---- */

#define T hy_msg_hello
static const field hello_f[] = {
    F(T, min_version, 4, F_U16), F(T, max_version, 6, F_U16), F(T, features, 8, F_U32),
    F(T, name.len, 12, F_U32),
};
static const item hello_i[] = {
    {.name = "name", .count = "name length", .kind = I_STR, COUNT(T, name.len),
     .max = HY_IPC_NAME_MAX, .mem = offsetof(T, name)},
};
#undef T

#define T hy_msg_welcome
static const field welcome_f[] = {
    F(T, version, 4, F_U16),           F(T, features, 8, F_U32),
    F(T, max_payload, 12, F_U32),      F(T, max_inline_bytes, 16, F_U32),
    F(T, max_jobs_per_client, 20, F_U32), F(T, max_samples, 24, F_U64),
    F(T, max_sort_elements, 32, F_U64), F(T, server.len, 40, F_U32),
};
static const item welcome_i[] = {
    {.name = "server", .count = "server length", .kind = I_STR, COUNT(T, server.len),
     .max = HY_IPC_NAME_MAX, .mem = offsetof(T, server)},
};
#undef T

static const field ping_f[] = {F(hy_msg_ping, nonce, 8, F_U64)};

#define T hy_msg_submit
static const field submit_f[] = {
    F(T, job, 4, F_U16),       F(T, backend, 6, F_U16),    F(T, device, 8, F_U16),
    F(T, mode, 10, F_U16),     F(T, nogil, 12, F_U16),     F(T, dtype, 14, F_U16),
    F(T, threads, 16, F_U32),  F(T, repeat, 20, F_U32),    F(T, switch_interval_us, 24, F_U32),
    F(T, array, 28, F_U32),    F(T, n, 32, F_U64),         F(T, seed, 40, F_U64),
    F(T, backends, 48, F_U32), F(T, nthreads_list, 52, F_U32),
    FSINCE(T, transport, 56, F_U16, 64), FSINCE(T, warmup, 58, F_U16, 64),
    FSINCE(T, transports, 60, F_U32, 64),
    FSINCE(T, ranks, 64, F_U16, 72),
    /* words of the 72-byte body that were reserved (0) until array FILES used them */
    FSINCE(T, input_len, 66, F_U16, 72), FSINCE(T, output_len, 68, F_U16, 72),
};
/* The paths come before the inline array, which must stay last (it is sent as bulk): they
 * are never both there (array FILES or INLINE), and empty items take no bytes, so every
 * SUBMIT without paths lays out as before. */
static const item submit_i[] = {
    {.name = "thread list", .count = "nthreads_list", .kind = I_U32S,
     COUNT(T, nthreads_list), .max = HY_IPC_THREADS_MAX, .mem = offsetof(T, threads_list),
     .elem_min = 1},
    {.name = "input path", .count = "input_len", .kind = I_STR, COUNT(T, input_len),
     .max = HY_IPC_PATH_MAX, .mem = offsetof(T, input)},
    {.name = "output path", .count = "output_len", .kind = I_STR, COUNT(T, output_len),
     .max = HY_IPC_PATH_MAX, .mem = offsetof(T, output)},
    {.name = "inline array", .count = "inline n", .kind = I_BYTES, COUNT(T, n),
     .mem = offsetof(T, inline_data), .store = offsetof(T, inline_bytes),
     .sw = MSIZE(T, inline_bytes), DTYPE(T, dtype), WHEN(T, array, HY_ARRAY_INLINE)},
};
#undef T

#define T hy_msg_accepted
static const field accepted_f[] = {
    F(T, queue_position, 4, F_U32), F(T, job_id, 8, F_U64),
    /* the job as the daemon resolved it, appended to the first layout's 16 bytes */
    FSINCE(T, nrows, 16, F_U16, 32), FSINCE(T, threads, 20, F_U32, 32),
    FSINCE(T, repeat, 24, F_U32, 32), FSINCE(T, warmup, 28, F_U32, 32),
};
#undef T

static const field progress_f[] = {
    F(hy_msg_progress, row, 4, F_U32),   F(hy_msg_progress, job_id, 8, F_U64),
    F(hy_msg_progress, done, 16, F_U64), F(hy_msg_progress, total, 24, F_U64),
};

#define T hy_result_row
static const field row_f[] = {
    F(T, backend, 0, F_U16),         F(T, device, 2, F_U16),       F(T, mode, 4, F_U16),
    F(T, flags, 6, F_U16),           F(T, threads, 8, F_U32),      F(T, copies, 12, F_U32),
    F(T, n, 16, F_U64),              F(T, hits, 24, F_U64),        F(T, estimate, 32, F_F64),
    F(T, std_error, 40, F_F64),      F(T, median_ns, 48, F_U64),   F(T, min_ns, 56, F_U64),
    F(T, max_ns, 64, F_U64),         F(T, lock_handoffs, 72, F_U64),
    F(T, lock_wait_ns, 80, F_U64),   F(T, lock_hold_ns, 88, F_U64), F(T, h2d_ns, 96, F_U64),
    F(T, kernel_ns, 104, F_U64),     F(T, d2h_ns, 112, F_U64),     F(T, launches, 120, F_U32),
    F(T, repeat, 124, F_U32),
    /* the process backend's, appended to the first layout's 128 bytes */
    FSINCE(T, bytes_moved, 128, F_U64, 160), FSINCE(T, startup_ns, 136, F_U64, 160),
    FSINCE(T, merge_ns, 144, F_U64, 160),    FSINCE(T, transport, 152, F_U16, 160),
    FSINCE(T, workers_started, 156, F_U32, 160),
    /* the timed runs' spread and the warm-up, appended to the 160-byte layout */
    FSINCE(T, mean_ns, 160, F_U64, 200),     FSINCE(T, stddev_ns, 168, F_U64, 200),
    FSINCE(T, q1_ns, 176, F_U64, 200),       FSINCE(T, q3_ns, 184, F_U64, 200),
    FSINCE(T, warmup_ns, 192, F_U64, 200),
    /* the history's prediction, the MPI ranks and the device's passes, appended to the
     * 200-byte layout */
    FSINCE(T, predicted_ns, 200, F_U64, 216), FSINCE(T, ranks, 208, F_U32, 216),
    FSINCE(T, passes, 212, F_U32, 216),
    /* the hybrid backend's participants and the device's overlapped copies, appended to
     * the 216-byte layout */
    FSINCE(T, cpu_items, 216, F_U64, 264),   FSINCE(T, cpu_busy_ns, 224, F_U64, 264),
    FSINCE(T, dev_busy_ns, 232, F_U64, 264), FSINCE(T, cpu_chunks, 240, F_U32, 264),
    FSINCE(T, dev_chunks, 244, F_U32, 264),  FSINCE(T, balance_ppm, 248, F_U32, 264),
    FSINCE(T, devices_used, 252, F_U32, 264), FSINCE(T, overlap_ns, 256, F_U64, 264),
};
#undef T
static const rec row_rec = {row_f, NF(row_f), HY_IPC_ROW_SIZE, HY_IPC_ROW_SIZE_MIN,
                            sizeof(hy_result_row)};

#define T hy_rank_row
static const field rank_row_f[] = {
    F(T, rank, 0, F_U32),         F(T, row, 4, F_U32),          F(T, share, 8, F_U64),
    F(T, compute_ns, 16, F_U64),  F(T, exchange_ns, 24, F_U64), F(T, io_ns, 32, F_U64),
    F(T, bytes_sent, 40, F_U64),
};
#undef T
static const rec rank_row_rec = {rank_row_f, NF(rank_row_f), HY_IPC_RANK_ROW_SIZE,
                                 HY_IPC_RANK_ROW_SIZE, sizeof(hy_rank_row)};

#define T hy_msg_result
static const field result_f[] = {
    F(T, job, 4, F_U16), F(T, nrows, 6, F_U16), STRIDE("row_size", 8),
    F(T, array_bytes, 12, F_U32), F(T, job_id, 16, F_U64),
    /* the rows' per-rank records, appended to the first layout's 24 bytes */
    FSINCE(T, nrank_rows, 24, F_U32, 32), STRIDE_SINCE("rank_row_size", 28, 1, 32),
};
/* The rank records sit between the rows and the array: the array is bulk and must stay
 * last, and a sender never sends both (an older reader looks for the array after the rows). */
static const item result_i[] = {
    {.name = "rows", .count = "nrows", .kind = I_RECS, COUNT(T, nrows),
     .max = HY_IPC_ROWS_MAX, .mem = offsetof(T, rows), .store = offsetof(T, rows_in),
     .rec = &row_rec},
    {.name = "rank records", .count = "nrank_rows", .kind = I_RECS, COUNT(T, nrank_rows),
     .max = HY_IPC_RANK_ROWS_MAX, .mem = offsetof(T, rank_rows),
     .store = offsetof(T, rank_rows_in), .rec = &rank_row_rec, .sidx = 1},
    {.name = "array", .count = "array_bytes", .kind = I_BYTES, COUNT(T, array_bytes),
     .mem = offsetof(T, array), .store = offsetof(T, array_bytes),
     .sw = MSIZE(T, array_bytes), .elem = 1},
};
#undef T

#define T hy_msg_error
static const field error_f[] = {
    F(T, code, 4, F_U32), F(T, job_id, 8, F_U64), F(T, message.len, 16, F_U32),
};
static const item error_i[] = {
    {.name = "message", .count = "message length", .kind = I_STR, COUNT(T, message.len),
     .max = HY_IPC_MESSAGE_MAX, .mem = offsetof(T, message)},
};
#undef T

static const field cancel_f[] = {F(hy_msg_cancel, job_id, 8, F_U64)};

#define T hy_msg_status_reply
static const field status_f[] = {
    F(T, clients, 4, F_U32),         F(T, uptime_ns, 8, F_U64),
    F(T, jobs_queued, 16, F_U64),    F(T, jobs_running, 24, F_U64),
    F(T, jobs_done, 32, F_U64),      F(T, jobs_failed, 40, F_U64),
    F(T, jobs_cancelled, 48, F_U64), F(T, devices, 56, F_U32),
    F(T, devices_usable, 60, F_U32),
    /* The first four backends' counters (serial, native, locked, opencl); each later
     * backend appended its pair after version.len, so the body grows by 16 with each. */
    FARRAY(T, backend_jobs, 0, 4, 64, 8, F_U64, 0),
    FARRAY(T, backend_busy_ns, 0, 4, 96, 8, F_U64, 0),
    F(T, version.len, 128, F_U32),
    FARRAY(T, backend_jobs, 4, HY_BACKEND_COUNT - 4, 136, 16, F_U64, 152),
    FARRAY(T, backend_busy_ns, 4, HY_BACKEND_COUNT - 4, 144, 16, F_U64, 152),
};
#define STATUS_BODY (136 + 16 * (HY_BACKEND_COUNT - 4))
static const item status_i[] = {
    {.name = "version", .count = "version length", .kind = I_STR, COUNT(T, version.len),
     .max = HY_IPC_NAME_MAX, .mem = offsetof(T, version)},
};
#undef T

#define T hy_device_record
static const field device_f[] = {
    F(T, index, 0, F_U32),          F(T, type, 4, F_U16),        F(T, flags, 6, F_U16),
    F(T, compute_units, 8, F_U32),  F(T, global_mem, 16, F_U64), F(T, max_alloc, 24, F_U64),
    TEXT(T, name, 32, 96, 0),       TEXT(T, vendor, 128, 64, 0), TEXT(T, driver, 192, 32, 0),
    TEXT(T, problem, 224, 128, 0),  TEXT(T, platform, 352, 64, 416),
};
#undef T
static const rec device_rec = {device_f, NF(device_f), HY_IPC_DEVICE_SIZE,
                               HY_IPC_DEVICE_SIZE_V1, sizeof(hy_device_record)};

#define T hy_msg_devices_reply
static const field devices_f[] = {
    F(T, ndevices, 4, F_U32),         STRIDE("record_size", 8),
    F(T, cpu_online, 12, F_U32),      F(T, native_threads, 16, F_U32),
    F(T, locked_threads, 20, F_U32),  F(T, switch_interval_us, 24, F_U32),
    F(T, process_workers, 28, F_U32),
};
static const item devices_i[] = {
    {.name = "records", .count = "ndevices", .kind = I_RECS, COUNT(T, ndevices),
     .max = HY_IPC_DEVICES_MAX, .mem = offsetof(T, devices), .store = offsetof(T, devices_in),
     .rec = &device_rec},
};
#undef T

static const field jobs_f[] = {F(hy_msg_jobs, flags, 4, F_U32)};

#define T hy_job_record
static const field job_f[] = {
    F(T, job_id, 0, F_U64),   F(T, uid, 8, F_U32),       F(T, job, 12, F_U16),
    F(T, state, 14, F_U16),   F(T, backend, 16, F_U16),  F(T, device, 18, F_U16),
    F(T, dtype, 20, F_U16),   F(T, nrows, 22, F_U16),    F(T, threads, 24, F_U32),
    F(T, row, 28, F_U32),     F(T, n, 32, F_U64),        F(T, queued_ns, 40, F_U64),
    F(T, running_ns, 48, F_U64), F(T, done, 56, F_U64),  F(T, total, 64, F_U64),
    F(T, predicted_ns, 72, F_U64), F(T, wait_ns, 80, F_U64),
};
#undef T
static const rec job_rec = {job_f, NF(job_f), HY_IPC_JOB_SIZE, HY_IPC_JOB_SIZE,
                            sizeof(hy_job_record)};

#define T hy_msg_jobs_reply
static const field jobs_reply_f[] = {
    F(T, njobs, 4, F_U32),          STRIDE("record_size", 8),
    F(T, flags, 12, F_U32),         F(T, others_queued, 16, F_U32),
    F(T, others_running, 20, F_U32),
};
static const item jobs_reply_i[] = {
    {.name = "records", .count = "njobs", .kind = I_RECS, COUNT(T, njobs),
     .max = HY_IPC_JOBS_MAX, .mem = offsetof(T, jobs), .store = offsetof(T, jobs_in),
     .rec = &job_rec},
};
#undef T

#define T hy_cell_record
static const field cell_f[] = {
    F(T, work, 0, F_U16),     F(T, dtype, 2, F_U16),    F(T, backend, 4, F_U16),
    F(T, transport, 6, F_U16), F(T, device, 8, F_U32),  F(T, threads, 12, F_U32),
    F(T, log2n, 16, F_U32),   F(T, samples, 20, F_U32), F(T, median_ns, 24, F_U64),
    F(T, flags, 32, F_U32),
};
#undef T
static const rec cell_rec = {cell_f, NF(cell_f), HY_IPC_CELL_SIZE, HY_IPC_CELL_SIZE,
                             sizeof(hy_cell_record)};

#define T hy_msg_model_reply
static const field model_f[] = {
    F(T, ncells, 4, F_U32), STRIDE("record_size", 8), F(T, total, 12, F_U32),
    F(T, trust, 16, F_U32), F(T, ring, 20, F_U32),
};
static const item model_i[] = {
    {.name = "cells", .count = "ncells", .kind = I_RECS, COUNT(T, ncells),
     .max = HY_IPC_CELLS_MAX, .mem = offsetof(T, cells), .store = offsetof(T, cells_in),
     .rec = &cell_rec},
};
#undef T

static const field ranks_f[] = {F(hy_msg_ranks, flags, 4, F_U32)};

#define T hy_rank_record
static const field rank_f[] = {
    F(T, rank, 0, F_U32),            F(T, ndevices, 4, F_U32),
    F(T, cpu_online, 8, F_U32),      F(T, native_threads, 12, F_U32),
    F(T, locked_threads, 16, F_U32), F(T, process_workers, 20, F_U32),
    F(T, devices_usable, 24, F_U32), F(T, clients, 28, F_U32),
    F(T, uptime_ns, 32, F_U64),      F(T, jobs_queued, 40, F_U64),
    F(T, jobs_running, 48, F_U64),   F(T, jobs_done, 56, F_U64),
    F(T, jobs_failed, 64, F_U64),    F(T, jobs_cancelled, 72, F_U64),
    TEXT(T, host, 80, 64, 0),
};
#undef T
static const rec rank_rec = {rank_f, NF(rank_f), HY_IPC_RANK_SIZE, HY_IPC_RANK_SIZE,
                             sizeof(hy_rank_record)};

#define T hy_msg_ranks_reply
static const field ranks_reply_f[] = {
    F(T, nranks, 4, F_U32),   STRIDE("rank_size", 8), STRIDE2("device_size", 12),
    F(T, rank, 16, F_U32),    F(T, size, 20, F_U32),  F(T, flags, 24, F_U32),
    F(T, ndevices, 28, F_U32),
};
/* Two record lists, each with its own size: the ranks, then all their devices. */
static const item ranks_reply_i[] = {
    {.name = "rank records", .count = "nranks", .kind = I_RECS, COUNT(T, nranks),
     .max = HY_IPC_RANKS_MAX, .mem = offsetof(T, ranks), .store = offsetof(T, ranks_in),
     .rec = &rank_rec, .sidx = 0},
    {.name = "device records", .count = "ndevices", .kind = I_RECS, COUNT(T, ndevices),
     .max = HY_IPC_RANK_DEVICES_MAX, .mem = offsetof(T, devices),
     .store = offsetof(T, devices_in), .rec = &device_rec, .sidx = 1},
};
#undef T

static int check_hello(const void *x, const hy_frame *fr, hy_error *err);
static int check_submit(const void *x, const hy_frame *fr, hy_error *err);
static int check_result(const void *x, const hy_frame *fr, hy_error *err);
static int check_error(const void *x, const hy_frame *fr, hy_error *err);

#define FIELDS(a) a, NF(a)
static const mdesc types[] = {
    [HY_MSG_HELLO] = {"HELLO", 16, 16, FIELDS(hello_f), FIELDS(hello_i), check_hello, false},
    [HY_MSG_WELCOME] = {"WELCOME", 48, 48, FIELDS(welcome_f), FIELDS(welcome_i), NULL, false},
    [HY_MSG_PING] = {"PING", 16, 16, FIELDS(ping_f), NULL, 0, NULL, false},
    [HY_MSG_PONG] = {"PONG", 16, 16, FIELDS(ping_f), NULL, 0, NULL, false},
    [HY_MSG_SUBMIT] = {"SUBMIT", 72, 56, FIELDS(submit_f), FIELDS(submit_i), check_submit, true},
    [HY_MSG_ACCEPTED] = {"ACCEPTED", 32, 16, FIELDS(accepted_f), NULL, 0, NULL, false},
    [HY_MSG_PROGRESS] = {"PROGRESS", 32, 32, FIELDS(progress_f), NULL, 0, NULL, false},
    [HY_MSG_RESULT] = {"RESULT", 32, 24, FIELDS(result_f), FIELDS(result_i), check_result,
                       false},
    [HY_MSG_ERROR] = {"ERROR", 24, 24, FIELDS(error_f), FIELDS(error_i), check_error, false},
    [HY_MSG_CANCEL] = {"CANCEL", 16, 16, FIELDS(cancel_f), NULL, 0, NULL, false},
    [HY_MSG_STATUS] = {"STATUS", 8, 8, NULL, 0, NULL, 0, NULL, false},
    [HY_MSG_STATUS_REPLY] = {"STATUS_REPLY", STATUS_BODY, 136, FIELDS(status_f), FIELDS(status_i),
                             NULL, false},
    [HY_MSG_DEVICES] = {"DEVICES", 8, 8, NULL, 0, NULL, 0, NULL, false},
    [HY_MSG_DEVICES_REPLY] = {"DEVICES_REPLY", 32, 32, FIELDS(devices_f), FIELDS(devices_i),
                              NULL, false},
    [HY_MSG_JOBS] = {"JOBS", 16, 16, FIELDS(jobs_f), NULL, 0, NULL, false},
    [HY_MSG_JOBS_REPLY] = {"JOBS_REPLY", 32, 32, FIELDS(jobs_reply_f), FIELDS(jobs_reply_i),
                           NULL, false},
    [HY_MSG_MODEL] = {"MODEL", 8, 8, NULL, 0, NULL, 0, NULL, false},
    [HY_MSG_MODEL_REPLY] = {"MODEL_REPLY", 32, 32, FIELDS(model_f), FIELDS(model_i), NULL,
                            false},
    [HY_MSG_RANKS] = {"RANKS", 8, 8, FIELDS(ranks_f), NULL, 0, NULL, false},
    [HY_MSG_RANKS_REPLY] = {"RANKS_REPLY", 32, 32, FIELDS(ranks_reply_f),
                            FIELDS(ranks_reply_i), NULL, false},
};

static const mdesc *desc_of(int type)
{
    if (type < 0 || (size_t)type >= sizeof types / sizeof types[0] || !types[type].name)
        return NULL;
    return &types[type];
}

const char *hy_msg_type_name(int type)
{
    const mdesc *md = desc_of(type);
    return md ? md->name : NULL;
}

/* ---- struct members and wire values by width ---- */

static uint64_t mget(const uint8_t *x, size_t off, unsigned w)
{
    uint16_t v16;
    uint32_t v32;
    uint64_t v64;
    switch (w) {
    case 2: memcpy(&v16, x + off, 2); return v16;
    case 4: memcpy(&v32, x + off, 4); return v32;
    default: memcpy(&v64, x + off, 8); return v64;
    }
}

static void mset(uint8_t *x, size_t off, unsigned w, uint64_t v)
{
    uint16_t v16 = (uint16_t)v;
    uint32_t v32 = (uint32_t)v;
    switch (w) {
    case 2: memcpy(x + off, &v16, 2); break;
    case 4: memcpy(x + off, &v32, 4); break;
    default: memcpy(x + off, &v, 8); break;
    }
}

static const void *pget(const uint8_t *x, size_t off)
{
    const void *p;
    memcpy(&p, x + off, sizeof p);
    return p;
}

static void pset(uint8_t *x, size_t off, const void *p)
{
    memcpy(x + off, &p, sizeof p);
}

/* Writes one value of field f from member m to wire w. */
static void put_value(const field *f, const uint8_t *m, uint8_t *w, const uint32_t *stride)
{
    uint16_t v16;
    uint32_t v32;
    uint64_t v64;
    switch (f->kind) {
    case F_U16: memcpy(&v16, m, 2); put16(w, v16); break;
    case F_U32: memcpy(&v32, m, 4); put32(w, v32); break;
    case F_U64:
    case F_F64: memcpy(&v64, m, 8); put64(w, v64); break; /* an f64 as its bits */
    case F_STRIDE: put32(w, stride[f->n]); break;
    case F_TEXT:
        /* The member holds one byte more than the wire for the NUL; longer is cut. */
        for (size_t j = 0; j < f->n && m[j]; j++)
            w[j] = m[j];
        break;
    }
}

/* Writes fixed fields from struct x to wire p (zeroed: reserved words, padding and the
 * tails of text fields stay 0). `stride` is what the F_STRIDE fields say. */
static void put_fields(const field *f, unsigned nf, const uint8_t *x, uint8_t *p,
                       const uint32_t *stride)
{
    for (unsigned i = 0; i < nf; i++) {
        unsigned reps = f[i].count ? f[i].count : 1;
        for (unsigned k = 0; k < reps; k++)
            put_value(&f[i], x + f[i].mem + k * WIDTH(f[i].kind), p + f[i].wire + k * f[i].step,
                      stride);
    }
}

/* Reads one value of field f from wire w into member m; `in` says whether the sender's
 * layout has it (else it reads as 0, or as empty text). */
static void get_value(const field *f, const uint8_t *w, bool in, uint8_t *m, uint32_t *stride,
                      const char **stride_name)
{
    uint16_t v16;
    uint32_t v32;
    uint64_t v64;
    size_t n = 0;
    switch (f->kind) {
    case F_U16: v16 = in ? get16(w) : 0; memcpy(m, &v16, 2); break;
    case F_U32: v32 = in ? get32(w) : 0; memcpy(m, &v32, 4); break;
    case F_U64:
    case F_F64: v64 = in ? get64(w) : 0; memcpy(m, &v64, 8); break;
    case F_STRIDE: /* absent (an earlier layout): 0, named NULL, its list empty */
        stride[f->n] = in ? get32(w) : 0;
        stride_name[f->n] = in ? f->name : NULL;
        break;
    case F_TEXT:
        /* Stops at the first NUL: bytes after it are padding, whatever they hold. */
        while (in && n < f->n && w[n])
            n++;
        memcpy(m, w, n);
        m[n] = 0;
        break;
    }
}

/* Reads fixed fields from wire p into struct x. A field appended after the first layout is
 * read only when `have` (body_size, or the record stride) reaches the size that added it,
 * and is 0 otherwise. Sets stride[n] from the F_STRIDE fields. */
static void get_fields(const field *f, unsigned nf, const uint8_t *p, uint32_t have,
                       uint8_t *x, uint32_t *stride, const char **stride_name)
{
    for (unsigned i = 0; i < nf; i++) {
        unsigned reps = f[i].count ? f[i].count : 1;
        for (unsigned k = 0; k < reps; k++) {
            uint32_t since = f[i].since ? f[i].since + k * f[i].step : 0;
            get_value(&f[i], p + f[i].wire + k * f[i].step, have >= since,
                      x + f[i].mem + k * WIDTH(f[i].kind), stride, stride_name);
        }
    }
}

/* ---- encoding ---- */

/* Element size of an I_BYTES item: fixed, or its dtype's (0 for an unknown dtype). */
static size_t elem_of(const item *it, const uint8_t *x)
{
    return it->elem ? it->elem : hy_dtype_size((int)mget(x, it->dtype, 2));
}

static bool present(const item *it, const uint8_t *x)
{
    return !it->when || mget(x, it->when_mem, 4) == it->when_val;
}

/* Lays out the variable items of struct x after the body: checks what the layout depends
 * on, sets *small (the payload bytes that go to the buffer, padding included) and *bulk;
 * with p (the zeroed payload), writes the items too. */
static int enc_items(const mdesc *md, const uint8_t *x, uint8_t *p, uint64_t *small,
                     hy_iov *bulk, hy_error *err)
{
    uint64_t off = md->body;
    const char *tn = md->name;

    bulk->base = NULL;
    bulk->len = 0;
    for (unsigned i = 0; i < md->ni; i++) {
        const item *it = &md->it[i];
        uint64_t count = mget(x, it->cmem, it->cw), at = align8(off), bytes = 0;
        const void *src = NULL;
        if (!present(it, x)) {
            uint64_t len = mget(x, it->store, it->sw);
            if (it->kind == I_BYTES && len != 0)
                return hy_error_set(err, HY_EINVAL, "%s has %s of %llu bytes but %s %u is "
                                    "not %u", tn, it->name, (unsigned long long)len, it->when,
                                    (unsigned)mget(x, it->when_mem, 4), it->when_val);
            continue;
        }
        if (it->max && count > it->max)
            return hy_error_set(err, HY_EINVAL, "%s %s %llu is above the %u allowed", tn,
                                it->count, (unsigned long long)count, it->max);
        switch (it->kind) {
        case I_STR: {
            hy_str str;
            memcpy(&str, x + it->mem, sizeof str);
            src = str.p;
            bytes = count;
            break;
        }
        case I_U32S:
            src = x + it->mem;
            bytes = 4 * count;
            break;
        case I_RECS:
            src = pget(x, it->mem);
            bytes = (uint64_t)it->rec->size * count;
            break;
        case I_BYTES: {
            size_t size = elem_of(it, x);
            uint64_t len = mget(x, it->store, it->sw);
            if (size == 0)
                return hy_error_set(err, HY_EDTYPE, "%s dtype %u of the %s is unknown", tn,
                                    (unsigned)mget(x, it->dtype, 2), it->name);
            if (count > UINT32_MAX / size || len != count * size)
                return hy_error_set(err, HY_EINVAL, "%s %s of %llu bytes is not %s %llu "
                                    "times %zu bytes", tn, it->name, (unsigned long long)len,
                                    it->count, (unsigned long long)count, size);
            src = pget(x, it->mem);
            bytes = len;
            break;
        }
        }
        if (bytes > 0 && !src)
            return hy_error_set(err, HY_EINVAL, "%s has %llu bytes of %s but no pointer", tn,
                                (unsigned long long)bytes, it->name);
        /* An empty item takes no bytes, not even its alignment, so a message whose new items
         * are empty lays out as before them (the decoder's take() reads it so). */
        if (bytes == 0)
            continue;
        if (it->kind == I_BYTES) { /* the bulk, never copied here */
            assert(i + 1 == md->ni);
            bulk->base = src;
            bulk->len = (size_t)bytes;
            off = at;
            break;
        }
        if (p && it->kind == I_RECS) {
            static const uint32_t none[NSTRIDES]; /* records hold no stride of their own */
            for (uint64_t k = 0; k < count; k++)
                put_fields(it->rec->f, it->rec->nf, (const uint8_t *)src + it->rec->ssize * k,
                           p + at + it->rec->size * k, none);
        } else if (p && it->kind == I_U32S) {
            for (uint64_t k = 0; k < count; k++)
                put32(p + at + 4 * k, ((const uint32_t *)src)[k]);
        } else if (p && bytes) {
            memcpy(p + at, src, (size_t)bytes);
        }
        off = at + bytes;
    }
    *small = off;
    return 0;
}

/* The record sizes the F_STRIDE fields write: those of the message's record lists. */
static void strides_of(const mdesc *md, uint32_t *stride)
{
    for (unsigned i = 0; i < md->ni; i++)
        if (md->it[i].kind == I_RECS)
            stride[md->it[i].sidx] = md->it[i].rec->size;
}

/* How many payload bytes go to the buffer (body and small variable data, padding included)
 * and which bytes travel as bulk; checks what the layout depends on, and the limits. */
static int measure(const hy_msg *m, uint32_t max_payload, uint64_t *small, hy_iov *bulk,
                   hy_error *err)
{
    const mdesc *md = desc_of(m->type);
    int rc;

    bulk->base = NULL;
    bulk->len = 0;
    if (!md)
        return hy_error_set(err, HY_EINVAL, "cannot encode message type %d: unknown",
                            (int)m->type);
    if ((rc = enc_items(md, (const uint8_t *)&m->u, NULL, small, bulk, err)))
        return rc;
    uint64_t total = *small + bulk->len;
    if (total > max_payload)
        return hy_error_set(err, HY_ELIMIT, "%s payload of %llu bytes is above the %u allowed",
                            md->name, (unsigned long long)total, max_payload);
    return 0;
}

/* Writes the header and payload (without the bulk) to buf, which holds header + small. */
static void fill(const hy_msg *m, uint8_t *buf, uint64_t small, hy_frame_header *h)
{
    const mdesc *md = desc_of(m->type);
    const uint8_t *x = (const uint8_t *)&m->u;
    uint8_t *p = buf + HY_IPC_HEADER;
    uint64_t again;
    hy_iov bulk;

    memset(p, 0, (size_t)small);
    uint32_t stride[NSTRIDES] = {0};
    strides_of(md, stride);
    put32(p, md->body);
    put_fields(md->f, md->nf, x, p, stride);
    (void)enc_items(md, x, p, &again, &bulk, NULL); /* measure has checked it */
    h->version = HY_IPC_VERSION;
    h->type = m->type;
    h->flags = 0; /* the writer sets HY_IPC_F_FDS when fds go with the frame */
    h->length = (uint32_t)(small + bulk.len);
    h->request = m->request;
    hy_frame_header_encode(h, buf);
}

int hy_msg_encode(const hy_msg *m, uint8_t *buf, size_t cap, size_t *len, hy_iov *bulk,
                  uint32_t max_payload, hy_error *err)
{
    uint64_t small;
    hy_frame_header h;
    int rc;

    if (!m || !buf || !len || !bulk)
        return hy_error_set(err, HY_EINVAL, "hy_msg_encode: NULL argument");
    if ((rc = measure(m, max_payload, &small, bulk, err)))
        return rc;
    if (HY_IPC_HEADER + small > cap)
        return hy_error_set(err, HY_ELIMIT, "%s needs %llu bytes of buffer, %zu given",
                            hy_msg_type_name(m->type),
                            (unsigned long long)(HY_IPC_HEADER + small), cap);
    fill(m, buf, small, &h);
    *len = (size_t)(HY_IPC_HEADER + small);
    return 0;
}

/* Every message but RESULT, DEVICES_REPLY and RANKS_REPLY fits here: an ERROR, the largest, needs
 * 24 + 24 + 1024 bytes. Those two are sized exactly and allocated. */
#define PUSH_STACK 1152u

int hy_msg_push(hy_frame_writer *w, const hy_msg *m, const int *fds, unsigned nfds,
                uint32_t max_payload, hy_error *err)
{
    uint8_t stack[PUSH_STACK];
    uint8_t *buf = stack;
    uint64_t small;
    hy_iov bulk, parts[2];
    hy_frame_header h;
    int rc;

    if (!w || !m)
        return hy_error_set(err, HY_EINVAL, "hy_msg_push: NULL argument");
    if ((rc = measure(m, max_payload, &small, &bulk, err)))
        return rc;
    /* small <= max_payload <= UINT32_MAX here, so the size is representable. */
    if (HY_IPC_HEADER + small > sizeof stack) {
        buf = malloc((size_t)(HY_IPC_HEADER + small));
        if (!buf)
            return hy_error_set(err, HY_ENOMEM, "no memory for a %s frame of %llu bytes",
                                hy_msg_type_name(m->type),
                                (unsigned long long)(HY_IPC_HEADER + small));
    }
    fill(m, buf, small, &h);
    parts[0].base = buf + HY_IPC_HEADER;
    parts[0].len = (size_t)small;
    parts[1] = bulk;
    rc = hy_frame_writer_push(w, h, parts, bulk.len ? 2u : 1u, fds, nfds, err);
    if (buf != stack)
        free(buf);
    return rc;
}

/* ---- decoding ---- */

/* A cursor over one payload: `off` is where the last item ended. */
typedef struct dec {
    const uint8_t *p;
    uint32_t plen;
    uint32_t body;  /* the body_size the frame announced */
    uint32_t known; /* this version's body size for the type */
    uint32_t stride[NSTRIDES]; /* the body's record sizes, if it has record lists */
    const char *stride_name[NSTRIDES];
    uint64_t off;
    const char *tn;
    hy_error *err;
} dec;

/* The next variable item of `len` bytes, 8-aligned, checked against the payload before use. */
static int take(dec *d, const char *what, uint64_t len, const uint8_t **out)
{
    /* An empty item takes no bytes, not even its alignment: a payload may end unpadded
     * before it (a compare's thread list, then the SUBMIT's empty paths). */
    if (len == 0) {
        *out = d->p + d->plen;
        return 0;
    }
    uint64_t at = align8(d->off);
    if (at > d->plen || len > d->plen - at)
        return hy_error_set(d->err, HY_EPROTO,
                            "%s %s of %llu bytes at offset %llu runs past the payload of %u "
                            "bytes",
                            d->tn, what, (unsigned long long)len, (unsigned long long)at,
                            d->plen);
    *out = d->p + at;
    d->off = at + len;
    return 0;
}

/* Takes one variable item into struct x: its count against the limit first (ELIMIT), then
 * its bytes against the payload (EPROTO), then its elements. */
static int dec_item(dec *d, const item *it, uint8_t *x)
{
    uint64_t count = mget(x, it->cmem, it->cw), size = 1;
    const uint8_t *q = NULL;
    int rc;

    if (!present(it, x)) {
        pset(x, it->mem, NULL);
        mset(x, it->store, it->sw, 0);
        return 0;
    }
    if (it->max && count > it->max)
        return hy_error_set(d->err, HY_ELIMIT, "%s %s %llu is above the limit of %u", d->tn,
                            it->count, (unsigned long long)count, it->max);
    if (it->kind == I_U32S)
        size = 4;
    if (it->kind == I_RECS) {
        /* A list whose size an earlier layout lacks has no records (its count is absent too). */
        if (d->stride[it->sidx] < it->rec->min && (count || d->stride_name[it->sidx]))
            return hy_error_set(d->err, HY_EPROTO, "%s %s %u is below %u", d->tn,
                                d->stride_name[it->sidx], d->stride[it->sidx], it->rec->min);
        size = d->stride[it->sidx];
    }
    if (it->kind == I_BYTES) {
        size = elem_of(it, x);
        if (size == 0)
            return hy_error_set(d->err, HY_EDTYPE, "%s dtype %u of the %s is unknown", d->tn,
                                (unsigned)mget(x, it->dtype, 2), it->name);
        /* Bounded before multiplying: no payload holds more than UINT32_MAX bytes. */
        if (count > UINT32_MAX / size)
            return hy_error_set(d->err, HY_ELIMIT, "%s %s %llu of %llu-byte elements is more "
                                "than a frame can carry", d->tn, it->count,
                                (unsigned long long)count, (unsigned long long)size);
    }
    if ((rc = take(d, it->name, count * size, &q)))
        return rc;
    switch (it->kind) {
    case I_STR: {
        hy_str s = {count ? (const char *)q : NULL, (uint32_t)count};
        memcpy(x + it->mem, &s, sizeof s);
        break;
    }
    case I_U32S:
        for (uint64_t i = 0; i < count; i++) {
            uint32_t v = get32(q + 4 * i);
            if (v < it->elem_min)
                return hy_error_set(d->err, HY_EINVAL, "%s %s[%llu] is %u, below %u", d->tn,
                                    it->name, (unsigned long long)i, v, it->elem_min);
            mset(x, it->mem + 4 * i, 4, v);
        }
        break;
    case I_RECS: {
        uint8_t *out = x + it->store;
        uint32_t none[NSTRIDES]; /* records hold no stride of their own */
        const char *no_name[NSTRIDES];
        for (uint64_t i = 0; i < count; i++)
            get_fields(it->rec->f, it->rec->nf, q + size * i, (uint32_t)size,
                       out + it->rec->ssize * i, none, no_name);
        pset(x, it->mem, out);
        break;
    }
    case I_BYTES:
        pset(x, it->mem, count ? q : NULL);
        mset(x, it->store, it->sw, count * size);
        break;
    }
    return 0;
}

int hy_msg_decode(const hy_frame *f, hy_msg *m, hy_error *err)
{
    const mdesc *md;
    dec d;
    int rc;

    if (!f || !m)
        return hy_error_set(err, HY_EINVAL, "hy_msg_decode: NULL argument");
    if (!(md = desc_of(f->h.type)))
        return hy_error_set(err, HY_ETYPE, "unknown message type %u", f->h.type);
    d.tn = md->name;
    d.known = md->body;
    d.p = f->payload;
    d.plen = f->h.length;
    for (unsigned i = 0; i < NSTRIDES; i++) {
        d.stride[i] = 0;
        d.stride_name[i] = "record size";
    }
    d.err = err;
    if (d.plen > 0 && !d.p)
        return hy_error_set(err, HY_EINVAL, "%s frame of %u bytes has no payload pointer",
                            d.tn, d.plen);
    /* The reader guarantees flag and fds agree; a hand-built frame may not. */
    if (f->nfds > HY_IPC_MAX_FDS || !(f->h.flags & HY_IPC_F_FDS) != (f->nfds == 0))
        return hy_error_set(err, HY_EPROTO, "%s frame flags 0x%x disagree with its %u fds",
                            d.tn, f->h.flags, f->nfds);
    if (f->nfds && !md->fds)
        return hy_error_set(err, HY_EPROTO, "%s came with %u fds but takes none", d.tn,
                            f->nfds);
    if (d.plen < 4)
        return hy_error_set(err, HY_EPROTO, "%s payload of %u bytes has no body_size", d.tn,
                            d.plen);
    d.body = get32(d.p);
    if (d.body < md->min)
        return hy_error_set(err, HY_EPROTO, "%s body_size %u is below the %u bytes of version %u",
                            d.tn, d.body, md->min, HY_IPC_VERSION);
    /* An earlier layout of this version (the first, or one that a later field's `since`
     * names) is held to the same exactness as the current one. */
    if (d.body == md->min)
        d.known = md->min;
    for (unsigned i = 0; i < md->nf; i++)
        if (md->f[i].since == d.body)
            d.known = d.body;
    if (d.body > d.plen)
        return hy_error_set(err, HY_EPROTO, "%s body_size %u is past the payload of %u bytes",
                            d.tn, d.body, d.plen);
    d.off = d.body; /* the first variable item starts at align8(body_size) */

    m->type = f->h.type;
    m->request = f->h.request;
    uint8_t *x = (uint8_t *)&m->u;
    get_fields(md->f, md->nf, d.p, d.body, x, d.stride, d.stride_name);
    if (md->check && (rc = md->check(x, f, err)))
        return rc;
    for (unsigned i = 0; i < md->ni; i++)
        if ((rc = dec_item(&d, &md->it[i], x)))
            return rc;
    /* A peer of this version ends the payload at its last item; a peer with a longer body is
     * newer and may have appended variable data we do not know, which is ignored. */
    if (d.body == d.known && d.off != d.plen)
        return hy_error_set(err, HY_EPROTO, "%s payload has %llu bytes after its last item",
                            d.tn, (unsigned long long)(d.plen - d.off));
    return 0;
}

/* ---- what the protocol rules out, type by type ---- */

static int check_hello(const void *v, const hy_frame *fr, hy_error *err)
{
    const hy_msg_hello *x = v;
    (void)fr;
    if (x->min_version == 0 || x->min_version > x->max_version)
        return hy_error_set(err, HY_EPROTO, "HELLO version range %u..%u is empty or starts at 0",
                            x->min_version, x->max_version);
    return 0;
}

static int check_result(const void *v, const hy_frame *fr, hy_error *err)
{
    const hy_msg_result *x = v;
    (void)fr;
    if (x->job < HY_JOB_PI || x->job > HY_JOB_COMPARE_SORT)
        return hy_error_set(err, HY_EINVAL, "RESULT job %u is not a job kind (1..4)", x->job);
    return 0;
}

static int check_error(const void *v, const hy_frame *fr, hy_error *err)
{
    const hy_msg_error *x = v;
    (void)fr;
    /* Codes are negative hy_err values; a newer peer's new codes are still negative. */
    if (x->code >= 0)
        return hy_error_set(err, HY_EPROTO, "ERROR code %d is not negative", (int)x->code);
    return 0;
}

static int check_submit(const void *v, const hy_frame *f, hy_error *err)
{
    const hy_msg_submit *x = v;

    if (x->job < HY_JOB_PI || x->job > HY_JOB_COMPARE_SORT)
        return hy_error_set(err, HY_EINVAL, "SUBMIT job %u is not pi (1), sort (2), "
                            "compare pi (3) or compare sort (4)", x->job);
    bool compare = x->job == HY_JOB_COMPARE_PI || x->job == HY_JOB_COMPARE_SORT;
    bool sort = x->job == HY_JOB_SORT || x->job == HY_JOB_COMPARE_SORT;
    /* A compare names its backends in the mask and its thread counts in the list; a single
     * job names one backend and one thread count. The other fields are ignored, not
     * checked, so a sender may leave them 0. A thread count of 0, an empty mask or an empty
     * list asks for the daemon's default, which the daemon resolves (ACCEPTED states it). */
    if (!compare && x->backend != HY_BACKEND_AUTO &&
        (x->backend < 1 || x->backend > HY_BACKEND_COUNT)) {
        char values[HY_BACKEND_VALUES_MAX];
        return hy_error_set(err, HY_EBACKEND, "SUBMIT backend %u is not %s, or auto (%u)",
                            x->backend, hy_backend_values(values, sizeof values),
                            HY_BACKEND_AUTO);
    }
    if (compare && (x->backends & ~HY_BACKEND_MASK_ALL))
        return hy_error_set(err, HY_EBACKEND, "SUBMIT compare backends mask 0x%x has bits "
                            "other than 1..%d", x->backends, HY_BACKEND_COUNT);
    if (x->warmup > HY_IPC_WARMUP_MAX)
        return hy_error_set(err, HY_ELIMIT, "SUBMIT warmup %u is above %u", x->warmup,
                            HY_IPC_WARMUP_MAX);
    if (!compare && x->transport > 2)
        return hy_error_set(err, HY_EINVAL, "SUBMIT transport %u is not default (0), pipe (1) "
                            "or shm (2)", x->transport);
    if (compare && (x->transports & ~0x6u))
        return hy_error_set(err, HY_EINVAL, "SUBMIT compare transports mask 0x%x has bits "
                            "other than 1 (pipe) and 2 (shm)", x->transports);
    if (sort && hy_dtype_size(x->dtype) == 0)
        return hy_error_set(err, HY_EDTYPE, "SUBMIT dtype %u is not i32 (1), u32, i64, u64, "
                            "f32 or f64 (6)", x->dtype);
    if (x->mode > HY_MODE_REPLICATE)
        return hy_error_set(err, HY_EINVAL, "SUBMIT mode %u is not default (0), split (1) or "
                            "replicate (2)", x->mode);
    if (x->nogil > HY_NOGIL_HOLD)
        return hy_error_set(err, HY_EINVAL, "SUBMIT nogil %u is not default (0), release (1) "
                            "or hold (2)", x->nogil);
    if (!compare && x->nthreads_list != 0)
        return hy_error_set(err, HY_EINVAL, "SUBMIT nthreads_list %u on a single job (only a "
                            "compare takes a list)", x->nthreads_list);
    /* Where the array is must fit the job, and fds must match it: the reader hands over
     * whatever fds arrived, and the daemon must never map one it did not ask for. */
    if (!sort && x->array != HY_ARRAY_NONE)
        return hy_error_set(err, HY_EINVAL, "SUBMIT array %u on a pi job (it takes none, 0)",
                            x->array);
    if (sort && (x->array < HY_ARRAY_INLINE || x->array > HY_ARRAY_FDS))
        return hy_error_set(err, HY_EINVAL, "SUBMIT array %u on a sort job is not inline (1), "
                            "memfd (2), files (3) or fds (4)", x->array);
    if (x->array == HY_ARRAY_FILES && (compare || x->input_len == 0 || x->output_len == 0))
        return hy_error_set(err, HY_EINVAL, "SUBMIT array files takes a single sort (job 2) "
                            "with an input and an output path (input_len %u, output_len %u)",
                            x->input_len, x->output_len);
    if (x->array != HY_ARRAY_FILES && (x->input_len || x->output_len))
        return hy_error_set(err, HY_EINVAL, "SUBMIT input_len %u, output_len %u: paths go "
                            "only with array files (3)", x->input_len, x->output_len);
    if (x->array == HY_ARRAY_FDS && compare)
        return hy_error_set(err, HY_EINVAL, "SUBMIT array fds takes a single sort (job 2): a "
                            "compare writes no output");
    unsigned want = x->array == HY_ARRAY_MEMFD ? 1 : x->array == HY_ARRAY_FDS ? 2 : 0;
    if (f->nfds != want)
        return hy_error_set(err, HY_EPROTO, "SUBMIT array %u came with %u fds; it takes %u "
                            "(a memfd array one, an fds array two: input, output)", x->array,
                            f->nfds, want);
    return 0;
}
