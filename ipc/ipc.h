/* ipc: hybridd's wire format — frames, the messages inside them, the incremental frame reader
 * and writer for non-blocking sockets, and fd passing with sealed memfds for arrays. It knows
 * nothing of computing, and nothing the daemon calls from it blocks: the one part that waits,
 * the client connection at the end, is for clients only. docs/protocol.md is the normative
 * description of the wire, and the only one: this header does not restate layouts. This is
 * the module's only public header. */
#ifndef HY_IPC_H
#define HY_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* ---- frames ----
 *
 * Every frame is a HY_IPC_HEADER-byte header (magic, version, type, flags, payload length,
 * request id) and a payload. docs/protocol.md "Frames" has the layout and what a receiver
 * does with a bad header. */
#define HY_IPC_MAGIC "HYD1"
#define HY_IPC_VERSION 1u
#define HY_IPC_HEADER 24u
/* Largest payload any peer may send before HELLO/WELCOME settle a smaller one. */
#define HY_IPC_MAX_PAYLOAD (1u << 20)
/* The frame carries file descriptors (SCM_RIGHTS), sent with its first byte. */
#define HY_IPC_F_FDS 0x1u
/* Most fds one frame may carry. */
#define HY_IPC_MAX_FDS 4u

enum hy_msg_type {
    HY_MSG_HELLO = 1,          /* client -> server: versions and features it speaks */
    HY_MSG_WELCOME = 2,        /* server -> client: the chosen version, features, limits */
    HY_MSG_PING = 3,           /* either way: 8 bytes to echo */
    HY_MSG_PONG = 4,
    HY_MSG_SUBMIT = 5,         /* client -> server: a job */
    HY_MSG_ACCEPTED = 6,       /* server -> client: the job's id */
    HY_MSG_PROGRESS = 7,       /* server -> client: done of total */
    HY_MSG_RESULT = 8,         /* server -> client: a job's final answer when it succeeded */
    HY_MSG_ERROR = 9,          /* server -> client: a code and a sentence; final for a job */
    HY_MSG_CANCEL = 10,        /* client -> server: cancel a job */
    HY_MSG_STATUS = 11,        /* client -> server: ask for the daemon's state */
    HY_MSG_STATUS_REPLY = 12,
    HY_MSG_DEVICES = 13,       /* client -> server: ask for the devices and CPU pools */
    HY_MSG_DEVICES_REPLY = 14,
    HY_MSG_JOBS = 15,          /* client -> server: ask for the queued and running jobs */
    HY_MSG_JOBS_REPLY = 16,
    HY_MSG_MODEL = 17,         /* client -> server: ask for the performance history */
    HY_MSG_MODEL_REPLY = 18,
    HY_MSG_RANKS = 19,         /* client -> server: ask for this rank, or every MPI rank */
    HY_MSG_RANKS_REPLY = 20,
};

typedef struct hy_frame_header {
    uint16_t version;
    uint16_t type;
    uint32_t flags;
    uint32_t length;
    uint64_t request;
} hy_frame_header;

/* What decoders return besides 0 and a negative hy_err: more bytes are needed. */
#define HY_IPC_INCOMPLETE 1

/* Writes the 24 header bytes. */
void hy_frame_header_encode(const hy_frame_header *h, uint8_t out[HY_IPC_HEADER]);
/* Checks and reads a header from `len` bytes: HY_IPC_INCOMPLETE when len < 24; HY_EPROTO
 * for a bad magic or unknown flag bits; HY_EVERSION for a version other than
 * HY_IPC_VERSION; HY_ELIMIT when length > max_payload. The type is not checked here
 * (a reader skips frames of unknown type; hy_msg_decode refuses them). */
int hy_frame_header_decode(const uint8_t *buf, size_t len, uint32_t max_payload,
                           hy_frame_header *h, hy_error *err);

/* ---- the incremental frame reader (non-blocking sockets) ---- */

/* A complete frame. `payload` points into the reader and stays valid until the next call on
 * it; the fds are the caller's from then on (close them). */
typedef struct hy_frame {
    hy_frame_header h;
    const uint8_t *payload;
    int fds[HY_IPC_MAX_FDS];
    unsigned nfds;
} hy_frame;

typedef struct hy_frame_reader hy_frame_reader;

/* A reader that accepts payloads up to max_payload (<= HY_IPC_MAX_PAYLOAD * 16). */
int hy_frame_reader_new(uint32_t max_payload, hy_frame_reader **out, hy_error *err);
void hy_frame_reader_free(hy_frame_reader *r); /* closes fds it still holds; NULL is fine */
/* Lowers or raises the payload limit (after WELCOME); clamped to 16 * HY_IPC_MAX_PAYLOAD. */
void hy_frame_reader_set_max(hy_frame_reader *r, uint32_t max_payload);
/* Reads what the socket has now (recvmsg with MSG_DONTWAIT), keeping fds that arrive with
 * SCM_RIGHTS. Returns the bytes read (> 0), 0 at end of stream, HY_IPC_INCOMPLETE when
 * the socket has nothing now (EAGAIN), or a negative hy_err (HY_ESYS, or HY_EPROTO for
 * fds the peer should not have sent, which are closed). */
int hy_frame_reader_fill(hy_frame_reader *r, int sock, hy_error *err);
/* For a client with a blocking socket that has nothing to do but wait for the reply: the
 * same as fill, but recvmsg waits for bytes (one system call per reply, where poll and a
 * non-blocking fill take two). On a non-blocking socket it is fill. */
int hy_frame_reader_fill_wait(hy_frame_reader *r, int sock, hy_error *err);
/* For tests and fuzzers: the same as fill, from memory. The reader takes the fds. It may
 * take fewer bytes than given when its buffer is full: it returns how many it took, and the
 * caller drains hy_frame_reader_next and feeds the rest. */
int hy_frame_reader_feed(hy_frame_reader *r, const void *bytes, size_t n, const int *fds,
                         unsigned nfds, hy_error *err);
/* Call it until it returns HY_IPC_INCOMPLETE after every fill or feed: the reader keeps at
 * most 16 receives' worth of fds waiting, and refuses to read on while its buffer is full.
 * The next complete frame: 0 and *f filled, HY_IPC_INCOMPLETE when more bytes are needed,
 * or a negative hy_err when the stream is broken (bad header; a frame that announced fds
 * without any arriving; too many fds) — after which the connection must be closed. A frame
 * whose header says HY_IPC_F_FDS gets the fds that arrived with its first byte. */
int hy_frame_reader_next(hy_frame_reader *r, hy_frame *f, hy_error *err);

/* ---- the frame writer (partial writes, fds) ---- */

typedef struct hy_frame_writer hy_frame_writer;

/* A writer that buffers at most max_buffered bytes of unsent frames (a client that never
 * reads makes push fail with HY_ELIMIT instead of growing the daemon without bound). */
int hy_frame_writer_new(size_t max_buffered, hy_frame_writer **out, hy_error *err);
void hy_frame_writer_free(hy_frame_writer *w); /* closes fds not yet sent; NULL is fine */
/* Queues one frame: header, then `parts` payload segments (header.length is set from them).
 * fds are duplicated; the writer closes its copies once sent. Sets HY_IPC_F_FDS when nfds>0. */
typedef struct hy_iov {
    const void *base;
    size_t len;
} hy_iov;
int hy_frame_writer_push(hy_frame_writer *w, hy_frame_header h, const hy_iov *parts,
                         unsigned nparts, const int *fds, unsigned nfds, hy_error *err);
/* Sends what the socket takes now (sendmsg, MSG_DONTWAIT | MSG_NOSIGNAL). Returns 0 when
 * everything queued has gone, HY_IPC_INCOMPLETE when the socket is full (wait for
 * EPOLLOUT), or a negative hy_err. */
int hy_frame_writer_flush(hy_frame_writer *w, int sock, hy_error *err);
size_t hy_frame_writer_pending(const hy_frame_writer *w); /* bytes not yet sent */

/* ---- arrays in sealed memfds ---- */

/* Creates a memfd of `bytes`, mapped read-write at *map (munmap it with hy_memfd_unmap). */
int hy_memfd_create(const char *name, size_t bytes, int *fd, void **map, hy_error *err);
/* Seals it against shrinking and growing (and against further seal changes), so the daemon
 * can map it without fear of SIGBUS. */
int hy_memfd_seal(int fd, hy_error *err);
/* Checks a received fd: a memfd, sealed against shrink and grow but not against writes (the
 * sorted array goes back into it), at least `need` bytes. Sets *size. HY_EINVAL with a
 * sentence naming what is wrong. */
int hy_memfd_check(int fd, size_t need, size_t *size, hy_error *err);
/* Maps a checked memfd read-write (shared, so the sorted array reaches the client). */
int hy_memfd_map(int fd, size_t bytes, void **map, hy_error *err);
void hy_memfd_unmap(void *map, size_t bytes);

/* ---- arrays in the client's own files (array FDS) ---- */

/* The two fds of an array FDS and where the array starts in each: the fd's file position
 * when it was checked (the client leaves each at its data: past a .npy header). */
typedef struct hy_file_array {
    int in, out;
    uint64_t in_off, out_off;
} hy_file_array;
/* Checks a received pair for a `need`-byte array, without waiting on any file system (the
 * event loop calls it): both regular files on a local file system this process's mount
 * table lists (ext4, xfs, btrfs, tmpfs, ...: nothing a user's process, a network or a
 * pseudo-file system serves), not O_PATH, `in` open for reading and holding `need` bytes
 * from its position, `out` open for writing and not O_APPEND. Sets *fa (positions read, not
 * moved). HY_EINVAL with a sentence naming the file (input or output) and the problem. A
 * client calls it too, on the pair it is about to send, to know the daemon will take it. */
int hy_file_array_check(int in, int out, size_t need, hy_file_array *fa, hy_error *err);

/* ---- messages ----
 *
 * The structs below are what the codec fills and reads; they say what a field means, not
 * where it is. Every wire layout (offsets, sizes, the body size that appended a field, the
 * rules for older and newer peers) is in docs/protocol.md, "Messages: common rules" and
 * "Message layouts", and nowhere else but the one table per type in ipc/msg.c. */

enum hy_job_kind {
    HY_JOB_PI = 1,
    HY_JOB_SORT = 2,
    HY_JOB_COMPARE_PI = 3,   /* the same pi job on several backends and thread counts */
    HY_JOB_COMPARE_SORT = 4, /* the same sort on several backends and thread counts */
};

enum hy_array_place {
    HY_ARRAY_NONE = 0,   /* pi jobs */
    HY_ARRAY_INLINE = 1, /* the elements follow in the SUBMIT, the sorted ones in the RESULT */
    HY_ARRAY_MEMFD = 2,  /* in the frame's one fd, sealed; sorted in place */
    /* two .npy paths follow the SUBMIT (hybridd --mpi only): the daemon reads the input and
     * writes the sorted output itself, with MPI-IO (docs/mpi.md) */
    HY_ARRAY_FILES = 3,
    /* the frame's two fds, the client's input file and output file, each positioned at the
     * array: the daemon reads the elements and writes the sorted ones itself */
    HY_ARRAY_FDS = 4,
};

/* HELLO features and WELCOME features (the intersection). */
#define HY_FEATURE_MEMFD 0x1u    /* arrays may travel in memfds */
#define HY_FEATURE_PROGRESS 0x2u /* the client wants PROGRESS frames */
/* The daemon may keep a memfd's mapping after a job for the connection's next job on the same
 * memfd (docs/protocol.md, Arrays) rather than unmapping it before the answer. */
#define HY_FEATURE_KEEP_MAP 0x4u
/* Arrays may travel as an input file's and an output file's fds (HY_ARRAY_FDS). */
#define HY_FEATURE_FILE_FDS 0x8u

#define HY_IPC_NAME_MAX 64u      /* client and server names */
#define HY_IPC_MESSAGE_MAX 1024u /* ERROR sentences */
#define HY_IPC_THREADS_MAX 32u   /* thread counts in a compare */
#define HY_IPC_ROWS_MAX 256u     /* rows in a RESULT */
#define HY_IPC_DEVICES_MAX 64u
#define HY_IPC_JOBS_MAX 256u     /* job records in a JOBS_REPLY */
#define HY_IPC_WARMUP_MAX 100u   /* warm-up runs a SUBMIT may ask for, per row */
#define HY_IPC_CELLS_MAX 2048u   /* history cells in a MODEL_REPLY */
#define HY_IPC_RANKS_MAX 64u     /* rank records in a RANKS_REPLY */
#define HY_IPC_RANK_DEVICES_MAX 128u /* device records in a RANKS_REPLY, all ranks' together */
/* SUBMIT device: the daemon's first usable device (DEVICES' first record flagged USABLE) */
#define HY_IPC_DEVICE_DEFAULT 0xFFFFu
#define HY_IPC_RANKS_ALL 0xFFFFu /* SUBMIT ranks: every rank of the MPI job */
#define HY_IPC_PATH_MAX 4096u    /* SUBMIT input and output paths (array FILES) */

typedef struct hy_str {
    const char *p; /* not NUL-terminated; points into the frame on decode */
    uint32_t len;
} hy_str;

/* The client's versions (min_version..max_version), the features it wants and its name. */
typedef struct hy_msg_hello {
    uint16_t min_version, max_version;
    uint32_t features;
    hy_str name;
} hy_msg_hello;

/* The chosen version, the features granted, the daemon's limits and its name. */
typedef struct hy_msg_welcome {
    uint16_t version;
    uint32_t features;
    uint32_t max_payload;
    uint32_t max_inline_bytes;
    uint32_t max_jobs_per_client;
    uint64_t max_samples;
    uint64_t max_sort_elements;
    hy_str server;
} hy_msg_welcome;

/* PING and PONG: the PONG echoes the nonce. */
typedef struct hy_msg_ping {
    uint64_t nonce;
} hy_msg_ping;

/* A job. A compare names its backends in `backends` (bit 1 << b per hy_backend) and its
 * thread counts in threads_list; a single job names one backend and `threads`. The inline
 * elements (n * dtype size bytes) travel when array is HY_ARRAY_INLINE; the frame's one fd
 * when it is HY_ARRAY_MEMFD. threads 0, an empty mask or list, and device
 * HY_IPC_DEVICE_DEFAULT leave the choice to the daemon (ACCEPTED states it). */
typedef struct hy_msg_submit {
    uint16_t job, backend, device, mode, nogil, dtype;
    uint32_t threads, repeat, switch_interval_us, array;
    uint64_t n, seed;
    uint32_t backends;      /* compares: a bit per hy_backend, bit b = 1 << b */
    uint32_t nthreads_list; /* compares: how many of threads_list are used */
    uint16_t transport;  /* process jobs: 0 default (pipe), 1 pipe, 2 shm */
    uint16_t warmup;     /* untimed runs first, per row: 0 the daemon's default, else 1..100 */
    uint32_t transports; /* compares: bit 1 << transport for the process rows; 0 means pipe */
    uint16_t ranks;      /* MPI: 0 or 1 this daemon alone, else that many ranks; ALL: every */
    /* array FILES: the absolute paths of the input .npy and of the output the daemon writes,
     * input_len and output_len bytes (the codec takes the counts from these two; 0 for every
     * other array) */
    uint16_t input_len, output_len;
    hy_str input, output;
    uint32_t threads_list[HY_IPC_THREADS_MAX];
    const void *inline_data; /* points into the frame on decode; never copied */
    size_t inline_bytes;
} hy_msg_submit;

/* The job's id and place, and what it will run as the daemon resolved it (its defaults
 * applied): all 0 from a daemon whose ACCEPTED predates them. */
typedef struct hy_msg_accepted {
    uint32_t queue_position; /* 0: running now; k: k jobs ahead */
    uint64_t job_id;
    uint16_t nrows;   /* rows its RESULT will have */
    uint32_t threads; /* a single job's thread (or worker) count; 0 for opencl and compares */
    uint32_t repeat;  /* timed runs of each row */
    uint32_t warmup;  /* untimed runs of each row before them */
} hy_msg_accepted;

/* `done` of `total` units of one job. */
typedef struct hy_msg_progress {
    uint32_t row; /* compares: the row being run; else 0 */
    uint64_t job_id, done, total;
} hy_msg_progress;

/* One measured configuration; a single job's RESULT has one. A row from a first-layout
 * sender decodes with the process fields 0. */
#define HY_ROW_NOGIL 0x1u    /* locked backend ran with the lock released */
#define HY_ROW_POCL_CPU 0x2u /* opencl ran on PoCL's CPU device */
#define HY_ROW_GPU 0x4u      /* opencl ran on a GPU */
#define HY_ROW_AUTO 0x8u     /* the daemon chose this backend (SUBMIT backend auto) */
#define HY_ROW_EXPLORE 0x10u /* ...to learn a configuration its history knows too little of */
#define HY_ROW_SHARED_CORES 0x20u /* hybrid left out OpenCL CPU devices (they share the pool's cores) */
#define HY_ROW_NO_GAIN 0x40u /* hybrid sort did not split: the pool or a device ran it alone */
#define HY_ROW_WHOLE 0x80u /* hybrid sort split, but the pool's one pass took no range out */
typedef struct hy_result_row {
    uint16_t backend, device, mode, flags;
    uint32_t threads, copies;
    uint64_t n, hits;
    double estimate, std_error;
    uint64_t median_ns, min_ns, max_ns;
    uint64_t lock_handoffs, lock_wait_ns, lock_hold_ns;
    uint64_t h2d_ns, kernel_ns, d2h_ns;
    uint32_t launches, repeat;
    /* process rows (h2d_ns and d2h_ns are the parent sending and receiving parts, kernel_ns
     * the rest of the run): */
    uint64_t bytes_moved;  /* through the workers' sockets, both ways */
    uint64_t startup_ns;   /* (re)starting workers that were dead when the run began */
    uint64_t merge_ns;     /* merging the sorted parts */
    uint16_t transport;    /* 1 pipe, 2 shm; 0 on other backends */
    uint32_t workers_started;
    /* the timed runs' spread, and the warm-up (appended to the 160-byte layout; 0 from an
     * older sender): */
    uint64_t mean_ns, stddev_ns; /* the sample standard deviation; 0 for one run */
    uint64_t q1_ns, q3_ns;       /* quartiles (numpy's linear interpolation) */
    uint64_t warmup_ns;          /* the first warm-up run's time; 0 when none ran */
    /* appended to the 200-byte layout (0 from an older sender): */
    uint64_t predicted_ns; /* the history's prediction for this configuration; 0 unknown */
    uint32_t ranks;        /* MPI ranks the row ran across; 1 (0 from older senders): one */
    uint32_t passes;       /* opencl sort: passes over the keys (histogram and digits) */
    /* appended to the 216-byte layout (0 elsewhere and from an older sender): hybrid rows
     * The device side's transfers are h2d/kernel/d2h_ns, launches and bytes_moved above. */
    uint64_t cpu_items;    /* samples or keys the native pool did; the devices did n - this */
    uint64_t cpu_busy_ns;  /* the pool's time on its chunks or its key range */
    uint64_t dev_busy_ns;  /* the longest device's time on its chunks or key range */
    uint32_t cpu_chunks, dev_chunks; /* pieces each side took (pi); 1 or 0 each for sort */
    uint32_t balance_ppm;  /* balance efficiency x 10^6 (docs/scheduling.md); 0 unknown */
    uint32_t devices_used; /* OpenCL devices that took part; 0: the pool alone */
    uint64_t overlap_ns;   /* opencl (and hybrid's devices): copies that ran while a kernel
                            * ran; h2d and d2h count only the copies' time outside kernels */
} hy_result_row;
#define HY_IPC_ROW_SIZE 264u     /* what this version writes */
#define HY_IPC_ROW_SIZE_MIN 128u /* the first layout: a reader takes rows this short */

/* One MPI rank's part of a row that spanned ranks (docs/protocol.md, RESULT's rank
 * records): what it did and where its time went. */
typedef struct hy_rank_row {
    uint32_t rank;        /* the MPI rank */
    uint32_t row;         /* the row it is a part of (0 for a single job) */
    uint64_t share;       /* samples (pi) or keys (sort) it counted or sorted */
    uint64_t compute_ns;  /* its engine on its part */
    uint64_t exchange_ns; /* the rest of its part's time in the span: messages, queues, waits */
    uint64_t io_ns;       /* MPI-IO: reading its slice and writing its run (a .npy sort) */
    uint64_t bytes_sent;  /* keys and message headers it sent to other ranks */
} hy_rank_row;
#define HY_IPC_RANK_ROW_SIZE 48u  /* what this version writes, and the least a reader takes */
#define HY_IPC_RANK_ROWS_MAX 64u  /* rank records in a RESULT */
#define HY_IPC_RESULT_BODY 32u    /* RESULT's fixed part, as this version writes it */

/* A job's final answer when it succeeded: its rows, each spanning row's per-rank records, and
 * the sorted elements of an inline sort (a memfd sort's are in the client's memfd). */
typedef struct hy_msg_result {
    uint16_t job;
    uint16_t nrows;
    uint32_t nrank_rows;
    uint64_t job_id;
    const hy_result_row *rows; /* encode: the caller's array */
    hy_result_row rows_in[HY_IPC_ROWS_MAX]; /* decode: the rows, converted */
    const hy_rank_row *rank_rows; /* encode: the caller's array; decode: rank_rows_in */
    hy_rank_row rank_rows_in[HY_IPC_RANK_ROWS_MAX];
    const void *array;         /* points into the frame on decode; never copied */
    uint32_t array_bytes;
} hy_msg_result;

typedef struct hy_msg_error {
    int32_t code;    /* a negative hy_err */
    uint64_t job_id; /* the job this ends; 0: about a frame, not a job */
    hy_str message;  /* one sentence, <= HY_IPC_MESSAGE_MAX bytes */
} hy_msg_error;

typedef struct hy_msg_cancel {
    uint64_t job_id;
} hy_msg_cancel;

/* STATUS and DEVICES requests carry nothing but their body_size. */

/* The daemon's state. The per-backend arrays are indexed by hy_backend - 1 and count every
 * configuration run: a compare counts on each backend it used. On the wire the first four
 * backends' counters sit in the first layout; each later one appends its pair (docs/protocol.md),
 * so an older peer's reply decodes with the later counters 0. */
typedef struct hy_msg_status_reply {
    uint32_t clients;
    uint64_t uptime_ns, jobs_queued, jobs_running, jobs_done, jobs_failed, jobs_cancelled;
    uint32_t devices, devices_usable;
    uint64_t backend_jobs[HY_BACKEND_COUNT];    /* configurations finished on each backend */
    uint64_t backend_busy_ns[HY_BACKEND_COUNT]; /* wall time spent running on each backend */
    hy_str version; /* <= HY_IPC_NAME_MAX bytes */
} hy_msg_status_reply;

/* One OpenCL device. Its text fields are NUL-padded on the wire and NUL-terminated here;
 * a record from a first-layout sender decodes with an empty platform. */
#define HY_DEV_USABLE 0x1u
#define HY_DEV_POCL_CPU 0x2u
typedef struct hy_device_record {
    uint32_t index;
    uint16_t type, flags;
    uint32_t compute_units;
    uint64_t global_mem, max_alloc;
    char name[97], vendor[65], driver[33], problem[129]; /* NUL-terminated on decode */
    char platform[65]; /* the OpenCL platform's name; "" from a first-layout record */
} hy_device_record;
#define HY_IPC_DEVICE_SIZE 416u    /* what this version writes */
#define HY_IPC_DEVICE_SIZE_V1 352u /* the first layout: the least a reader takes */

/* The OpenCL devices, and the CPU pools the other backends run on. */
typedef struct hy_msg_devices_reply {
    uint32_t ndevices;
    uint32_t cpu_online;         /* online CPUs */
    uint32_t native_threads;     /* the native pool's size */
    uint32_t locked_threads;     /* the locked runtime's threads */
    uint32_t switch_interval_us; /* the locked runtime's default switch interval */
    uint32_t process_workers;    /* the process backend's pool; 0 when it is off */
    const hy_device_record *devices; /* encode: the caller's array */
    hy_device_record devices_in[HY_IPC_DEVICES_MAX]; /* decode */
} hy_msg_devices_reply;

/* JOBS: which jobs to list. */
#define HY_JOBS_ALL 0x1u /* every user's (root and the daemon's user); else the caller's own */
typedef struct hy_msg_jobs {
    uint32_t flags;
} hy_msg_jobs;

/* One queued or running job, as JOBS_REPLY lists it. */
#define HY_JOB_DEVICE_NONE 0xFFFFu
typedef struct hy_job_record {
    uint64_t job_id;
    uint32_t uid;        /* who submitted it */
    uint16_t job;        /* hy_job_kind */
    uint16_t state;      /* 1 queued, 2 running */
    uint16_t backend;    /* a single job's; 0 for a compare */
    uint16_t device;     /* the OpenCL device it runs on; HY_JOB_DEVICE_NONE for the CPU */
    uint16_t dtype;      /* a sort's; 0 for pi */
    uint16_t nrows;      /* rows it will have */
    uint32_t threads;    /* a single job's resolved threads or workers; 0 for a compare */
    uint32_t row;        /* the row running now */
    uint64_t n;
    uint64_t queued_ns;  /* since it was accepted */
    uint64_t running_ns; /* since it started; 0 while queued */
    uint64_t done, total; /* the last progress: units of work */
    /* From the performance history (docs/scheduling.md), 0 where it cannot say: */
    uint64_t predicted_ns; /* the whole job's run time, warm-ups included */
    uint64_t wait_ns;      /* queued: until it starts (the jobs ahead on its executor) */
} hy_job_record;
#define HY_IPC_JOB_SIZE 88u

/* The jobs a caller may see, and how many of the rest are queued and running (counts only:
 * who runs what is the submitter's business; how busy the machine is, everyone's). */
typedef struct hy_msg_jobs_reply {
    uint32_t njobs;
    uint32_t flags;          /* HY_JOBS_ALL when the records cover every user */
    uint32_t others_queued;  /* jobs not listed */
    uint32_t others_running;
    const hy_job_record *jobs;               /* encode: the caller's array */
    hy_job_record jobs_in[HY_IPC_JOBS_MAX];  /* decode */
} hy_msg_jobs_reply;

/* One cell of the daemon's performance history (docs/scheduling.md). */
#define HY_CELL_TRUSTED 0x1u
typedef struct hy_cell_record {
    uint16_t work;      /* HY_JOB_PI or HY_JOB_SORT */
    uint16_t dtype;     /* sort's; 0 for pi */
    uint16_t backend;
    uint16_t transport; /* process's; 0 elsewhere */
    uint32_t device;    /* opencl's device index; 0 elsewhere */
    uint32_t threads;   /* threads or workers; 0 for a device */
    uint32_t log2n;     /* the size bucket: floor(log2 n) */
    uint32_t samples;   /* run times kept */
    uint64_t median_ns;
    uint32_t flags;     /* HY_CELL_TRUSTED: enough samples to predict from */
} hy_cell_record;
#define HY_IPC_CELL_SIZE 40u

/* The performance history: its cells (as many as fit; `total` says how many there are), and
 * the rules they follow. */
typedef struct hy_msg_model_reply {
    uint32_t ncells, total;
    uint32_t trust;  /* samples a cell needs to be trusted */
    uint32_t ring;   /* run times a cell keeps */
    const hy_cell_record *cells;              /* encode: the caller's array */
    hy_cell_record cells_in[HY_IPC_CELLS_MAX]; /* decode */
} hy_msg_model_reply;

/* RANKS: whose records to send. */
#define HY_RANKS_ALL 0x1u /* every rank of the MPI job; else the answering rank's alone */
typedef struct hy_msg_ranks {
    uint32_t flags;
} hy_msg_ranks;

/* One rank (one daemon) as RANKS_REPLY lists it: its node, its pools, how many of the
 * reply's device records are its own, and its STATUS counters. */
typedef struct hy_rank_record {
    uint32_t rank;
    uint32_t ndevices;       /* its device records: the next ndevices of the reply's list */
    uint32_t cpu_online, native_threads, locked_threads, process_workers;
    uint32_t devices_usable; /* of its ndevices */
    uint32_t clients;
    uint64_t uptime_ns, jobs_queued, jobs_running, jobs_done, jobs_failed, jobs_cancelled;
    char host[65]; /* gethostname(); NUL-terminated on decode */
} hy_rank_record;
#define HY_IPC_RANK_SIZE 144u

/* RANKS_REPLY flags */
#define HY_RANKS_MPI 0x1u       /* the daemon runs under MPI (hybridd --mpi) */
#define HY_RANKS_REPLY_ALL 0x2u /* the records cover every rank of the MPI job */

/* The answering rank and its world, and one record per rank listed, in rank order; the
 * device records follow in the same order, each rank's `ndevices` of them. */
typedef struct hy_msg_ranks_reply {
    uint32_t nranks;
    uint32_t rank, size; /* the answering daemon's rank and the MPI job's size (0, 1 alone) */
    uint32_t flags;      /* HY_RANKS_MPI, HY_RANKS_REPLY_ALL */
    uint32_t ndevices;   /* device records, every listed rank's together */
    const hy_rank_record *ranks;     /* encode: the caller's arrays */
    const hy_device_record *devices;
    hy_rank_record ranks_in[HY_IPC_RANKS_MAX];            /* decode */
    hy_device_record devices_in[HY_IPC_RANK_DEVICES_MAX]; /* decode */
} hy_msg_ranks_reply;

typedef struct hy_msg {
    uint16_t type;    /* enum hy_msg_type */
    uint64_t request; /* the header's request id */
    union {
        hy_msg_hello hello;
        hy_msg_welcome welcome;
        hy_msg_ping ping; /* PING and PONG */
        hy_msg_submit submit;
        hy_msg_accepted accepted;
        hy_msg_progress progress;
        hy_msg_result result;
        hy_msg_error error;
        hy_msg_cancel cancel;
        hy_msg_status_reply status;
        hy_msg_devices_reply devices;
        hy_msg_jobs jobs;
        hy_msg_jobs_reply jobs_reply;
        hy_msg_model_reply model;
        hy_msg_ranks ranks;
        hy_msg_ranks_reply ranks_reply;
    } u;
} hy_msg;

/* Encodes `m` as one frame: header, body and the small variable data go to `buf` (cap
 * bytes; *len set); the bulk data (an inline array) is returned in `*bulk`, uncopied, to be
 * sent right after `buf` (its length is already counted in the header). HY_ELIMIT when the
 * frame would exceed max_payload or cap; HY_EINVAL for a field out of range (unknown type,
 * too long a string, too many rows). hy_msg_push does encode and queue in one call. */
int hy_msg_encode(const hy_msg *m, uint8_t *buf, size_t cap, size_t *len, hy_iov *bulk,
                  uint32_t max_payload, hy_error *err);
/* Encodes and queues `m` on the writer, with fds (a memfd array). */
int hy_msg_push(hy_frame_writer *w, const hy_msg *m, const int *fds, unsigned nfds,
                uint32_t max_payload, hy_error *err);
/* Decodes a frame's payload into `m`: strings and arrays point into the frame. Checks every
 * length against the payload and the limits before using it; HY_EPROTO for a malformed
 * payload, HY_ETYPE for an unknown type, HY_EDTYPE / HY_EBACKEND for an unknown dtype or
 * backend, HY_ELIMIT for a count above the limits. */
int hy_msg_decode(const hy_frame *f, hy_msg *m, hy_error *err);

const char *hy_msg_type_name(int type); /* "SUBMIT", ... or NULL */

/* ---- the client connection (blocking: for clients only) ----
 *
 * One connection to hybridd as a client sees it: connect, HELLO and WELCOME, send, receive
 * with a timeout, ask and wait for the reply, run a job to its one final answer, cancel.
 * Unlike the rest of this module it waits — in poll, and in recvmsg with SO_RCVTIMEO, as
 * hy_frame_reader_fill_wait does — so the daemon never uses it. One thread per connection.
 *
 * Besides 0 and a negative hy_err, the waiting calls return: */
#define HY_CLIENT_TIMEOUT 2 /* nothing came within the timeout */
#define HY_CLIENT_EOF 3     /* the daemon closed the connection */
#define HY_CLIENT_ERROR 4   /* the daemon answered with an ERROR: *reply is it, and err holds
                             * its code and sentence (cut to HY_ERROR_MSG_MAX) */

typedef struct hy_client hy_client;

/* Connects to the Unix socket at `path`. When connect() fails, *sys_errno (may be NULL)
 * keeps its errno, so a caller can explain EACCES or ENOENT; it is 0 for other failures. */
int hy_client_connect(const char *path, hy_client **out, int *sys_errno, hy_error *err);
/* A client over a stream socket already connected (a socketpair's end, say). The fd becomes
 * the client's: hy_client_close closes it. */
int hy_client_adopt(int fd, hy_client **out, hy_error *err);
/* Closes the socket and frees what the client holds; NULL is fine. */
void hy_client_close(hy_client *c);

int hy_client_fd(const hy_client *c);
/* The request id for the next message this side sends (1, 2, ...; 0 is the daemon's for
 * errors about the connection itself). */
uint64_t hy_client_next_request(hy_client *c);
/* What this side may send: HY_IPC_MAX_PAYLOAD until WELCOME, then WELCOME's max_payload. */
uint32_t hy_client_max_payload(const hy_client *c);
/* WELCOME as received (the server name copied into the client), or NULL before it. */
const hy_msg_welcome *hy_client_welcome(const hy_client *c);
/* The most a send waits for the daemon to take its bytes; 30 s unless set. */
void hy_client_set_send_timeout(hy_client *c, int timeout_ms);

/* Sends HELLO (`hello` gives versions, features and the client's name) and waits up to
 * timeout_ms for the answer: 0 after WELCOME (the limits then follow WELCOME's), or
 * HY_CLIENT_ERROR when the daemon refused the connection (EPERM: not let in; EBUSY: too
 * many clients or draining), HY_CLIENT_EOF, HY_CLIENT_TIMEOUT, a negative hy_err. */
int hy_client_hello(hy_client *c, const hy_msg_hello *hello, int timeout_ms,
                    const hy_msg **reply, hy_error *err);

/* Encodes `m` as it is (request id included) and sends it with `fds`, waiting while the
 * socket is full. 0; HY_CLIENT_EOF when the daemon has closed its end (EPIPE, ECONNRESET:
 * err names the failed send) — what it sent before closing, often an ERROR that says why,
 * is still there to read (hy_client_parting_error); or a negative hy_err. */
int hy_client_send(hy_client *c, const hy_msg *m, const int *fds, unsigned nfds,
                   hy_error *err);
/* Queues `m` without sending it (pipelining); hy_client_flush sends what is queued, with
 * the same returns as hy_client_send. */
int hy_client_push(hy_client *c, const hy_msg *m, const int *fds, unsigned nfds,
                   hy_error *err);
int hy_client_flush(hy_client *c, hy_error *err);
/* Sends bytes as they are (a test's malformed frames). Returns as hy_client_send. */
int hy_client_send_raw(hy_client *c, const void *bytes, size_t n, hy_error *err);
/* Sends one frame as it is, with fds riding on its first byte. Returns as hy_client_send. */
int hy_client_send_frame(hy_client *c, hy_frame_header h, const hy_iov *parts,
                         unsigned nparts, const int *fds, unsigned nfds, hy_error *err);

/* The next message, waiting up to timeout_ms (< 0: no limit; 0: only what has arrived, with
 * one non-blocking read). 0 with *m set: it and the fds that came with it (*fds, *nfds; may
 * be NULL) stay valid until the next receive, which closes those fds. HY_CLIENT_TIMEOUT,
 * HY_CLIENT_EOF, or a negative hy_err: a broken stream (the connection is of no more use) or
 * a message that cannot be decoded ("cannot read the daemon's ...": the stream goes on). */
int hy_client_recv(hy_client *c, int timeout_ms, const hy_msg **m, hy_error *err);
/* The next message already read, with no system call: 0, or HY_CLIENT_TIMEOUT when none is
 * complete; errors as hy_client_recv. */
int hy_client_recv_buffered(hy_client *c, const hy_msg **m, hy_error *err);
/* Fds that came with the message the last receive returned. */
unsigned hy_client_fds(const hy_client *c, const int **fds);
/* Whether the stream can still be read: false after it broke or ended. */
bool hy_client_usable(const hy_client *c);
/* After a send returned HY_CLIENT_EOF: reads what the daemon sent before it closed, passing
 * over everything up to its ERROR. HY_CLIENT_ERROR with *reply the ERROR, or HY_CLIENT_EOF
 * when it closed without one. */
int hy_client_parting_error(hy_client *c, const hy_msg **reply, hy_error *err);

/* Sends `m` with the next request id (m->request is set) and waits up to timeout_ms for the
 * reply of type reply_type with that id, passing over other messages: 0 with *reply set,
 * HY_CLIENT_ERROR when an ERROR answered it (or the daemon closed the connection saying
 * why), HY_CLIENT_TIMEOUT, HY_CLIENT_EOF, or a negative hy_err. */
int hy_client_ask(hy_client *c, hy_msg *m, uint16_t reply_type, int timeout_ms,
                  const hy_msg **reply, hy_error *err);

/* CANCEL for job_id (it has no reply of its own: an ERROR answers a CANCEL that found no
 * such job). Sets *request to its id when not NULL. Returns as hy_client_send. */
int hy_client_cancel(hy_client *c, uint64_t job_id, uint64_t *request, hy_error *err);

/* A job run by hy_client_run, as its answers tell it. */
typedef struct hy_client_job {
    uint64_t request;        /* the SUBMIT's */
    uint64_t job_id;         /* from ACCEPTED; 0 until then */
    uint32_t queue_position; /* from ACCEPTED */
    /* From ACCEPTED: the job as the daemon resolved it (0 from a daemon that does not say) */
    uint32_t nrows, threads, repeat, warmup;
    bool accepted, cancel_sent;
} hy_client_job;

/* What a caller hears while a job runs; every member may be NULL or 0. */
typedef struct hy_client_job_events {
    void *ctx;
    void (*accepted)(void *ctx, const hy_client_job *j);
    void (*progress)(void *ctx, const hy_client_job *j, const hy_msg_progress *p);
    /* Asked whenever the wait finds nothing to read, at least every slice_ms (100 unless
     * set): true to cancel the job. The CANCEL goes once the job has its id, and
     * cancelling() is told when it went; the job still ends with its one final answer. */
    bool (*want_cancel)(void *ctx);
    void (*cancelling)(void *ctx, const hy_client_job *j);
    int slice_ms;
} hy_client_job_events;

/* Sends the SUBMIT `m` with the next request id (m->request is set) and `fds`, and starts
 * *j for it. Returns as hy_client_send. */
int hy_client_submit(hy_client *c, hy_msg *m, const int *fds, unsigned nfds, hy_client_job *j,
                     hy_error *err);
/* Waits up to timeout_ms (< 0: no limit) for the job's one final answer, passing over
 * messages about anything else; *j comes from hy_client_submit (or is zeroed with its
 * request set). 0 with *reply the RESULT; HY_CLIENT_ERROR with *reply the ERROR (refused,
 * failed, or HY_ECANCELED after a cancel); HY_CLIENT_TIMEOUT, HY_CLIENT_EOF, or a negative
 * hy_err. */
int hy_client_job_wait(hy_client *c, hy_client_job *j, const hy_client_job_events *ev,
                       int timeout_ms, const hy_msg **reply, hy_error *err);
/* hy_client_submit, then hy_client_job_wait; when the daemon closed before taking the
 * SUBMIT, the ERROR it left saying why (HY_CLIENT_ERROR), else HY_CLIENT_EOF. */
int hy_client_run(hy_client *c, hy_msg *m, const int *fds, unsigned nfds,
                  const hy_client_job_events *ev, int timeout_ms, hy_client_job *j,
                  const hy_msg **reply, hy_error *err);

#endif
