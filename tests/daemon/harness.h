/* tests/daemon/harness: starts a real hybridd in a private temporary directory and drives it
 * through ipc/ as a client would — blocking helpers with bounded waits, and job tracking
 * that matches ACCEPTED, PROGRESS and the one final answer of each job. Shared by the
 * integration suites and the load test; it uses no Criterion, so every helper reports
 * failure by its return value and a line on stderr. */
#ifndef HY_TESTS_DAEMON_HARNESS_H
#define HY_TESTS_DAEMON_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ipc.h"

/* The longest any single wait in the harness lasts. */
#define HYT_WAIT_MS 30000

/* Besides 0 and negative hy_err codes, what the receive helpers return (ipc/'s own). */
#define HYT_EOF HY_CLIENT_EOF         /* the daemon closed the connection */
#define HYT_TIMEOUT HY_CLIENT_TIMEOUT /* nothing came within the timeout */

/* ---- configuration ---- */

/* The knobs the suites turn; hyt_conf_default() gives a small daemon: no OpenCL, 2 native
 * and 2 locked threads, 4 jobs per client, 8 queued, 4 clients, 64 KiB frames. */
typedef struct hyt_conf {
    bool opencl;
    bool hybrid_cpu_devices; /* opencl.hybrid_cpu_devices */
    unsigned native_threads, locked_threads, switch_interval_us;
    unsigned process_workers;
    unsigned jobs_per_client, queued_jobs, clients, frame_bytes;
    uint64_t samples, sort_elements;
    unsigned job_timeout_s, drain_timeout_s;
    const char *access; /* the body of `access = { ... };`, or NULL for none */
} hyt_conf;

hyt_conf hyt_conf_default(void);
/* The libconfig text for *k into buf. */
void hyt_conf_text(const hyt_conf *k, char *buf, size_t cap);

/* ---- the daemon ---- */

typedef struct hyt_daemon {
    pid_t pid;       /* 0 when not running */
    bool exited;     /* reaped: status holds the wait status */
    int status;
    char dir[64];    /* mkdtemp: holds the config, the socket and the log */
    char conf[128];  /* dir/hybridd.conf */
    char sock[128];  /* dir/s.sock unless the caller changes it before hyt_daemon_exec */
    char log[128];   /* dir/hybridd.log: the daemon's stderr */
} hyt_daemon;

/* The hybridd the suites run: HYBRIDD_TEST_BINARY from the environment when set (a sanitizer
 * build), else the build tree's HY_TEST_HYBRIDD. */
const char *hyt_hybridd_binary(void);
/* Makes the temporary directory and writes `config` to d->conf. Returns 0 or -1. */
int hyt_daemon_init(hyt_daemon *d, const char *config);
/* Rewrites d->conf (for SIGHUP tests). */
int hyt_daemon_write_config(const hyt_daemon *d, const char *config);
/* Starts `hyt_hybridd_binary() --foreground -c CONF --socket SOCK [extra...]` (extra ends with
 * NULL; may be NULL) with stderr and stdout going to d->log. Does not wait. */
int hyt_daemon_exec(hyt_daemon *d, const char *const *extra);
/* Starts an arbitrary argv (argv[0] is looked up in PATH) the same way. */
int hyt_daemon_exec_argv(hyt_daemon *d, const char *const *argv);
/* Waits until connect() on `sock` succeeds (polling every 20 ms), failing early if the child
 * exits. Returns 0, or -1 after timeout_ms or when the child died. */
int hyt_daemon_wait_ready(hyt_daemon *d, const char *sock, int timeout_ms);
/* init + exec + wait_ready on d->sock; prints the log on failure. */
int hyt_daemon_start(hyt_daemon *d, const char *config, const char *const *extra);
/* Waits up to timeout_ms for the child to exit. 0 when it has (d->status set), -1 if not. */
int hyt_daemon_wait_exit(hyt_daemon *d, int timeout_ms);
/* The exit code (0..255) of a child that exited, or -1 (killed by a signal, not exited). */
int hyt_daemon_exit_code(const hyt_daemon *d);
/* Sends `sig` to the running daemon. */
int hyt_daemon_signal(const hyt_daemon *d, int sig);
/* SIGTERM, then waits up to timeout_ms; SIGKILL when it does not exit in time. Returns the
 * exit code, or -1 when it had to be killed or died by a signal. */
int hyt_daemon_stop(hyt_daemon *d, int timeout_ms);
/* Kills a daemon still running (SIGKILL), removes the files it knows and the directory. */
void hyt_daemon_cleanup(hyt_daemon *d);
/* Copies the daemon's log to stderr (for a failing test; cleanup does it too when
 * HYT_SHOW_LOG is set in the environment). */
void hyt_daemon_dump_log(const hyt_daemon *d);

/* ---- the client ---- */

typedef struct hyt_job hyt_job;

typedef struct hyt_client {
    hy_client *cl; /* ipc/'s client: the connection, its reader and writer */
    int fd;        /* its socket */
    bool welcomed;
    hy_msg_welcome welcome; /* valid once welcomed; server name in welcome_server */
    char welcome_server[HY_IPC_NAME_MAX + 1];
    const hy_msg *msg; /* the last message hyt_recv returned (the client's until the next) */
    /* Jobs being tracked: hyt_recv matches their messages whatever the caller waits for. */
    hyt_job *jobs[64];
    unsigned njobs;
    /* Protocol checks made on every message: counted here, asserted by the tests. */
    uint64_t finished_ids[256]; /* ring of job ids that had their final answer */
    unsigned nfinished;
    unsigned dup_finals;   /* a second final answer for a job */
    unsigned stray_finals; /* a RESULT or job ERROR for a job this client never saw */
    unsigned bad_echo;     /* a job message whose request id is not its SUBMIT's */
    hy_error err;          /* why the last helper failed */
} hyt_client;

/* Connects to `sock`. NULL on failure. */
hyt_client *hyt_connect(const char *sock);
/* Sends HELLO with `features` and waits for the answer: 0 after WELCOME (the reader's
 * limit then follows WELCOME's max_payload), a negative code for an ERROR, HYT_EOF or
 * HYT_TIMEOUT. */
int hyt_hello(hyt_client *c, uint32_t features);
/* hyt_connect + hyt_hello(MEMFD | PROGRESS); NULL (and a line on stderr) on failure. */
hyt_client *hyt_connect_hello(const char *sock);
void hyt_close(hyt_client *c); /* NULL is fine */

uint64_t hyt_next_request(hyt_client *c);
/* Encodes `m` and sends it, flushing with poll (bounded). 0 or a negative code. */
int hyt_send(hyt_client *c, const hy_msg *m, const int *fds, unsigned nfds);
/* Sends raw bytes (hostile input), bounded. 0 or a negative code (HY_ESYS when the daemon
 * already closed). */
int hyt_send_raw(hyt_client *c, const void *bytes, size_t n);
/* Sends one encoded frame (header included) as it is, its fds riding on its first byte.
 * 0 or a negative code. */
int hyt_send_frame(hyt_client *c, const void *frame, size_t n, const int *fds, unsigned nfds);
/* Encodes `m` into buf (header included) without sending it, for tests that corrupt it. */
int hyt_encode(hyt_client *c, const hy_msg *m, uint8_t *buf, size_t cap, size_t *len);
/* Receives the next message within timeout_ms into c->msg (valid until the next receive):
 * 0, HYT_EOF, HYT_TIMEOUT, or a negative code (broken stream, undecodable message).
 * Tracked jobs are updated on the way. */
int hyt_recv(hyt_client *c, int timeout_ms);
/* Receives until a message of `type` with request id `request` arrives (other messages are
 * passed over after job tracking saw them). 0 with c->msg set, or as hyt_recv. An ERROR
 * with that request id also ends the wait: 0 is returned and c->msg is the ERROR. */
int hyt_recv_reply(hyt_client *c, uint16_t type, uint64_t request, int timeout_ms);
/* PING with `nonce`; 0 when the PONG echoes it. */
int hyt_ping(hyt_client *c, uint64_t nonce);
/* STATUS / DEVICES round trips into *out (strings and records copied). */
int hyt_status(hyt_client *c, hy_msg_status_reply *out);
int hyt_devices(hyt_client *c, hy_msg_devices_reply *out); /* out is large: heap it */

/* ---- jobs ---- */

struct hyt_job {
    uint64_t request;
    bool accepted;
    uint64_t job_id; /* from ACCEPTED; 0 when refused */
    uint32_t queue_position;
    hy_msg_accepted plan; /* the whole ACCEPTED: rows, threads and runs as resolved */
    bool done;
    int code;        /* 0: RESULT; else the final ERROR's code */
    uint64_t error_job_id;
    char message[HY_IPC_MESSAGE_MAX + 1];
    unsigned progress;    /* PROGRESS frames seen */
    bool progress_bad;    /* one had done > total or a total of 0 */
    uint16_t kind, nrows;
    hy_result_row *rows;  /* malloc'd copy */
    void *array;          /* the inline sorted array, malloc'd copy */
    uint32_t array_bytes;
};

/* Sends the SUBMIT (request id filled in) and starts tracking *j. 0 or a negative code. */
int hyt_submit(hyt_client *c, const hy_msg_submit *s, const int *fds, unsigned nfds,
               hyt_job *j);
/* Waits until the job is accepted or refused. 0 then (check j->accepted), or as hyt_recv. */
int hyt_wait_accepted(hyt_client *c, hyt_job *j, int timeout_ms);
/* Waits for the job's final answer. 0 then (j->done, j->code), or as hyt_recv. */
int hyt_wait_final(hyt_client *c, hyt_job *j, int timeout_ms);
/* submit + wait_final. */
int hyt_run(hyt_client *c, const hy_msg_submit *s, const int *fds, unsigned nfds,
            hyt_job *j);
/* Sends CANCEL for job_id; returns its request id through *request when not NULL. */
int hyt_cancel(hyt_client *c, uint64_t job_id, uint64_t *request);
/* Stops tracking *j and frees what it holds. */
void hyt_job_release(hyt_client *c, hyt_job *j);

/* ---- submits ---- */

/* A pi job: backend, threads, n, seed (repeat 1). */
hy_msg_submit hyt_pi(uint16_t backend, uint32_t threads, uint64_t n, uint64_t seed);
/* A sort job on `data` inline (array 1). */
hy_msg_submit hyt_sort_inline(uint16_t backend, uint32_t threads, int dtype, const void *data,
                              uint64_t n);
/* A sort job whose array travels in a memfd (array 2): the caller sends the fd. */
hy_msg_submit hyt_sort_memfd(uint16_t backend, uint32_t threads, int dtype, uint64_t n);

/* ---- data ---- */

/* Fills n elements of dtype from a seeded generator: duplicates and negatives; for floats
 * also NaNs, infinities, -0.0 and +0.0. */
void hyt_fill(int dtype, void *data, size_t n, uint64_t seed);
/* Sorts in numpy's order (NaNs last, -0.0 before +0.0): the reference. */
void hyt_sort_ref(int dtype, void *data, size_t n);
/* Pi hits for (seed, n), cached by the process for the last few arguments. */
uint64_t hyt_pi_ref(uint64_t seed, uint64_t n);

/* ---- waiting on the daemon's counters ---- */

/* Asks STATUS every 20 ms until jobs_running and jobs_queued are both 0; 0, or -1 after
 * timeout_ms. *out is the last reply. */
int hyt_wait_idle(hyt_client *c, hy_msg_status_reply *out, int timeout_ms);

#endif
