/* client/hybridctl: the command line — finds the daemon, speaks the protocol through ipc/,
 * sends arrays in sealed memfds, shows progress, and prints what came back as a table, CSV
 * or JSON (report.c), with exit codes a script can rely on. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "client.h"

#ifndef HY_VERSION
#define HY_VERSION "0.0.0"
#endif

#define WAIT_SLICE_MS 100 /* how often a wait looks at Ctrl-C and the progress bar */

static const char *g_prog = "hybridctl";

/* ---- messages and exits ---- */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", g_prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void usage(FILE *f)
{
    fprintf(f,
"usage: hybridctl [-s SOCKET] [--json] [--quiet] COMMAND [OPTIONS]\n"
"\n"
"Runs pi and sort jobs on hybridd under its backends (serial, native, locked, opencl,\n"
"process) and shows what each one buys.\n"
"\n"
"Commands:\n"
"  ping                       round trip to the daemon\n"
"  status                     the daemon's version, uptime, queue and counters\n"
"  devices                    the CPU pools and the OpenCL devices\n"
"  cancel JOB                 cancel one of your jobs by its id\n"
"  pi -n N [JOB OPTIONS]      estimate pi from N samples\n"
"  sort (--input FILE | -n N --dtype D [--dist DIST] [--seed S])\n"
"       [--output FILE [--raw]] [--check] [JOB OPTIONS]\n"
"                             sort an array (.npy or raw with --dtype, or generated)\n"
"  compare pi|sort [JOB INPUT] --backends LIST --threads LIST [--replicate]\n"
"       [--transport pipe,shm] [--repeat R] [--csv] [--plot FILE.svg]\n"
"                             run the job on every backend and thread count, side by side\n"
"\n"
"Job options:\n"
"  --backend B          opencl, native (default), locked, serial or process\n"
"  --threads T          threads for a CPU backend, worker processes for process\n"
"                       (default: the whole pool)\n"
"  --transport X        process: how sort parts reach the workers, pipe (default:\n"
"                       copied through their sockets) or shm (one shared mapping,\n"
"                       only offsets travel); compare takes a list: pipe,shm\n"
"  --replicate          T copies of the job at once instead of one job split T ways\n"
"                       (not for process, which splits a job as Pool.map does)\n"
"  --seed S             pi's generator key, or the generated array's seed (default 1)\n"
"  --device D           OpenCL device index (see `hybridctl devices`)\n"
"  --nogil, --hold-lock the locked backend releases, or holds, its lock in native code\n"
"  --switch-interval US the locked runtime's switch interval in microseconds\n"
"  --repeat R           timed runs (compare: after one warm-up; default 5)\n"
"Sort input: --input FILE (.npy 1.0/2.0/3.0, little-endian, C order; raw needs --dtype),\n"
"  or -n N --dtype i32|u32|i64|u64|f32|f64 --dist uniform|normal|sorted|reversed|few-unique\n"
"\n"
"Counts accept 1000000, 1e6, 10M, 2^20 and 1Mi. The socket is -s, else $HYBRIDD_SOCKET,\n"
"else your own hybridd's ($XDG_RUNTIME_DIR/hybridd.sock, or /tmp/hybridd-UID/hybridd.sock\n"
"without XDG_RUNTIME_DIR) when it exists, else the system one, /run/hybridd/hybridd.sock.\n"
"A progress bar shows on stderr for jobs over a second when stderr is a terminal;\n"
"Ctrl-C cancels the job. --json prints one JSON document with every figure.\n"
"\n"
"Exit status: 0 success; 1 the job failed or was cancelled; 2 usage error; 3 the daemon\n"
"cannot be reached; 4 a bad input file, or an output file that cannot be written.\n");
}

static _Noreturn void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static _Noreturn void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", g_prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see %s --help)\n", g_prog);
    va_end(ap);
    exit(HC_EXIT_USAGE);
}

/* ---- parsing ---- */

/* 1000000, 1e6, 10M (k M G T: powers of 1000), 1Mi (Ki Mi Gi Ti: powers of 1024), 2^30. */
static int parse_count(const char *s, uint64_t *out)
{
    const char *caret = strchr(s, '^');
    if (caret) {
        char *e;
        errno = 0;
        unsigned long long b = strtoull(s, &e, 10);
        if (e != caret || errno)
            return -1;
        unsigned long long p = strtoull(caret + 1, &e, 10);
        if (*e || errno || caret[1] == '\0')
            return -1;
        uint64_t v = 1;
        for (unsigned long long i = 0; i < p; i++) {
            if (b != 0 && v > UINT64_MAX / b)
                return -1;
            v *= b;
        }
        *out = v;
        return 0;
    }
    char *e;
    errno = 0;
    double d = strtod(s, &e);
    if (e == s || errno || d < 0 || s[0] == '-' || s[0] == '+')
        return -1;
    static const struct {
        const char *suffix;
        double mul;
    } units[] = {{"", 1},       {"k", 1e3},   {"K", 1e3},          {"M", 1e6},
                 {"G", 1e9},    {"T", 1e12},  {"Ki", 1024.0},      {"Mi", 1048576.0},
                 {"Gi", 1073741824.0}, {"Ti", 1099511627776.0}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(e, units[i].suffix) == 0) {
            double v = d * units[i].mul;
            if (v != floor(v) || v >= 18446744073709551616.0)
                return -1;
            /* Plain digits are exact in any size; a double only up to 2^53. */
            if (!units[i].suffix[0] && !strpbrk(s, ".eE")) {
                errno = 0;
                unsigned long long u = strtoull(s, &e, 10);
                if (errno || *e)
                    return -1;
                *out = u;
                return 0;
            }
            *out = (uint64_t)v;
            return 0;
        }
    return -1;
}

static uint64_t count_arg(const char *opt, const char *s)
{
    uint64_t v;
    if (parse_count(s, &v) != 0)
        usage_error("%s %s: not a count (examples: 1000000, 1e6, 10M, 2^20)", opt, s);
    return v;
}

static unsigned small_arg(const char *opt, const char *s, unsigned lo, unsigned hi)
{
    uint64_t v;
    if (parse_count(s, &v) != 0 || v < lo || v > hi)
        usage_error("%s %s: expected a whole number from %u to %u", opt, s, lo, hi);
    return (unsigned)v;
}

static int backend_arg(const char *s)
{
    int b = hy_backend_parse(s);
    if (!b)
        usage_error("unknown backend %s: use opencl, native, locked, serial or process", s);
    return b;
}

/* ---- the connection ---- */

typedef struct conn {
    int fd;
    char path[108];
    hy_frame_reader *r;
    hy_frame_writer *w;
    hy_msg *m; /* the last message received (~56 KiB: on the heap) */
    uint32_t max_payload;
    hy_msg_welcome welcome;
    char server[HY_IPC_NAME_MAX + 1];
    uint64_t next_request;
} conn;

static volatile sig_atomic_t g_interrupted;
static void on_sigint(int sig)
{
    (void)sig;
    g_interrupted = 1;
}

/* The daemon's socket for this user: what the daemon itself would pick, and for a normal user
 * without their own daemon, the system one. */
static void default_socket(char *buf, size_t len)
{
    const char *env = getenv("HYBRIDD_SOCKET");
    if (env && env[0]) {
        snprintf(buf, len, "%s", env);
        return;
    }
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (geteuid() != 0) {
        /* The daemon's own default for this user (config.c), when one is serving there. */
        struct stat st;
        if (xdg && xdg[0] == '/' && strlen(xdg) + sizeof "/hybridd.sock" <= 108)
            snprintf(buf, len, "%s/hybridd.sock", xdg);
        else
            snprintf(buf, len, "/tmp/hybridd-%u/hybridd.sock", (unsigned)geteuid());
        if (stat(buf, &st) == 0)
            return;
    }
    snprintf(buf, len, "/run/hybridd/hybridd.sock");
}

static _Noreturn void cannot_reach(const conn *c, const char *why)
{
    say("cannot reach hybridd at %s: %s", c->path, why);
    fprintf(stderr, "%s: start it with `hybridd` (or `systemctl start hybridd.socket`), or "
            "name its socket with -s or HYBRIDD_SOCKET\n", g_prog);
    exit(HC_EXIT_CONNECT);
}

static void conn_flush(conn *c)
{
    for (;;) {
        hy_error err = {0};
        int rc = hy_frame_writer_flush(c->w, c->fd, &err);
        if (rc == 0)
            return;
        if (rc < 0)
            cannot_reach(c, err.msg);
        struct pollfd p = {.fd = c->fd, .events = POLLOUT};
        if (poll(&p, 1, 30000) == 0)
            cannot_reach(c, "the daemon stopped reading");
    }
}

static uint64_t conn_send(conn *c, hy_msg *m, const int *fds, unsigned nfds)
{
    hy_error err = {0};
    m->request = c->next_request++;
    if (hy_msg_push(c->w, m, fds, nfds, c->max_payload, &err) != 0) {
        say("cannot send %s: %s", hy_msg_type_name(m->type), err.msg);
        exit(err.code == HY_ELIMIT ? HC_EXIT_INPUT : HC_EXIT_USAGE);
    }
    conn_flush(c);
    return m->request;
}

/* The next message into c->m. Returns 0, or 1 when interrupted (Ctrl-C) or when
 * timeout_ms (> 0) passed with nothing. */
static int conn_recv(conn *c, int timeout_ms)
{
    int waited = 0;
    for (;;) {
        hy_frame f;
        hy_error err = {0};
        int rc = hy_frame_reader_next(c->r, &f, &err);
        if (rc == 0) {
            for (unsigned i = 0; i < f.nfds; i++)
                close(f.fds[i]); /* the daemon sends none; never keep what it should not */
            if (hy_msg_decode(&f, c->m, &err) != 0) {
                say("cannot read the daemon's %s: %s",
                    hy_msg_type_name(f.h.type) ? hy_msg_type_name(f.h.type) : "message",
                    err.msg);
                exit(HC_EXIT_JOB);
            }
            return 0;
        }
        if (rc < 0)
            cannot_reach(c, err.msg);
        if (g_interrupted)
            return 1;
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int n = poll(&p, 1, WAIT_SLICE_MS);
        if (n < 0 && errno != EINTR)
            cannot_reach(c, strerror(errno));
        if (n <= 0) {
            waited += WAIT_SLICE_MS;
            if (timeout_ms > 0 && waited >= timeout_ms)
                return 1;
            continue;
        }
        rc = hy_frame_reader_fill(c->r, c->fd, &err);
        if (rc == 0)
            cannot_reach(c, "the daemon closed the connection");
        if (rc < 0)
            cannot_reach(c, err.msg);
    }
}

static _Noreturn void daemon_error(const hy_msg *m, int exit_code)
{
    say("%.*s (%s)", (int)m->u.error.message.len, m->u.error.message.p,
        hy_err_name(m->u.error.code));
    exit(exit_code);
}

/* Connects and says HELLO; exits 3 when the daemon cannot be reached. */
static void conn_open(conn *c, const char *path)
{
    memset(c, 0, sizeof *c);
    if (path)
        snprintf(c->path, sizeof c->path, "%s", path);
    else
        default_socket(c->path, sizeof c->path);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(c->path) >= sizeof a.sun_path)
        usage_error("socket path %s is too long", c->path);
    memcpy(a.sun_path, c->path, strlen(c->path) + 1);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        cannot_reach(c, strerror(errno));
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0)
        cannot_reach(c, strerror(errno));
    hy_error err = {0};
    c->m = malloc(sizeof *c->m);
    if (!c->m || hy_frame_reader_new(HY_IPC_MAX_PAYLOAD, &c->r, &err) ||
        hy_frame_writer_new((size_t)64 << 20, &c->w, &err)) {
        say("out of memory");
        exit(HC_EXIT_JOB);
    }
    c->max_payload = HY_IPC_MAX_PAYLOAD;
    c->next_request = 1;
    hy_msg *h = c->m;
    memset(h, 0, sizeof *h);
    h->type = HY_MSG_HELLO;
    h->u.hello = (hy_msg_hello){.min_version = HY_IPC_VERSION, .max_version = HY_IPC_VERSION,
                                .features = HY_FEATURE_MEMFD | HY_FEATURE_PROGRESS,
                                .name = {"hybridctl", 9}};
    conn_send(c, h, NULL, 0);
    if (conn_recv(c, 30000) != 0)
        cannot_reach(c, g_interrupted ? "interrupted" : "no WELCOME within 30 s");
    if (c->m->type == HY_MSG_ERROR) {
        say("hybridd at %s refused the connection: %.*s (%s)", c->path,
            (int)c->m->u.error.message.len, c->m->u.error.message.p,
            hy_err_name(c->m->u.error.code));
        exit(HC_EXIT_CONNECT);
    }
    if (c->m->type != HY_MSG_WELCOME)
        cannot_reach(c, "the daemon did not answer HELLO with WELCOME");
    c->welcome = c->m->u.welcome;
    snprintf(c->server, sizeof c->server, "%.*s", (int)c->welcome.server.len,
             c->welcome.server.p);
    c->welcome.server.p = c->server;
    c->max_payload = c->welcome.max_payload;
    hy_frame_reader_set_max(c->r, c->max_payload);
}

/* One request, its one reply (an ERROR ends the program with exit_code). */
static const hy_msg *conn_ask(conn *c, int type, int reply)
{
    hy_msg *m = c->m;
    memset(m, 0, sizeof *m);
    m->type = (uint16_t)type;
    uint64_t req = conn_send(c, m, NULL, 0);
    for (;;) {
        if (conn_recv(c, 30000) != 0)
            cannot_reach(c, g_interrupted ? "interrupted" : "no reply within 30 s");
        if (c->m->request != req)
            continue;
        if (c->m->type == HY_MSG_ERROR)
            daemon_error(c->m, HC_EXIT_JOB);
        if (c->m->type == reply)
            return c->m;
    }
}

/* ---- jobs: submit, progress, the answer ---- */

struct job_out {
    hy_result_row rows[HY_IPC_ROWS_MAX];
    unsigned nrows;
    uint64_t job_id;
};

static bool g_quiet;

/* A bar on stderr once a job has run a second, only for a person at a terminal. */
static void progress_bar(uint64_t job_id, const hy_msg_progress *p, unsigned nrows,
                         double elapsed_s)
{
    if (g_quiet || !isatty(STDERR_FILENO) || elapsed_s < 1.0 || p->total == 0)
        return;
    double frac = (double)p->done / (double)p->total;
    if (nrows > 1)
        frac = ((double)p->row + frac) / nrows;
    if (frac > 1)
        frac = 1;
    char bar[31];
    int full = (int)(frac * 30);
    for (int i = 0; i < 30; i++)
        bar[i] = i < full ? '#' : '.';
    bar[30] = '\0';
    fprintf(stderr, "\r[%s] %3.0f%%  job %" PRIu64, bar, 100 * frac, job_id);
    if (nrows > 1)
        fprintf(stderr, ", configuration %u of %u", p->row + 1, nrows);
    fprintf(stderr, ", %.0f s  (Ctrl-C cancels) ", elapsed_s);
    fflush(stderr);
}

static void clear_bar(bool shown)
{
    if (shown)
        fprintf(stderr, "\r%80s\r", "");
}

/* Sends the SUBMIT and waits for its one final answer. Ctrl-C sends CANCEL and waits for the
 * ECANCELED answer. Exits 1 on an ERROR. */
static void run_job(conn *c, hy_msg *sub, const int *fds, unsigned nfds, unsigned expect_rows,
                    struct job_out *out)
{
    struct sigaction sa = {.sa_handler = on_sigint};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    uint64_t t0 = hy_now_ns();
    uint64_t req = conn_send(c, sub, fds, nfds);
    bool cancel_sent = false, want_cancel = false, bar = false;
    out->job_id = 0;
    for (;;) {
        if (conn_recv(c, 0) != 0) {
            /* Ctrl-C. Before ACCEPTED the job has no id yet: cancel as soon as it has. */
            g_interrupted = 0;
            want_cancel = true;
        } else if (c->m->type == HY_MSG_ERROR && c->m->request == req) {
            clear_bar(bar);
            daemon_error(c->m, HC_EXIT_JOB);
        } else if (c->m->request == req) {
            const hy_msg *m = c->m;
            switch (m->type) {
            case HY_MSG_ACCEPTED:
                out->job_id = m->u.accepted.job_id;
                if (m->u.accepted.queue_position > 0 && !g_quiet)
                    say("job %" PRIu64 " queued behind %u job(s)", out->job_id,
                        m->u.accepted.queue_position);
                break;
            case HY_MSG_PROGRESS: {
                double el = (double)(hy_now_ns() - t0) / 1e9;
                progress_bar(out->job_id, &m->u.progress, expect_rows, el);
                bar = bar || (!g_quiet && isatty(STDERR_FILENO) && el >= 1.0);
                break;
            }
            case HY_MSG_RESULT:
                clear_bar(bar);
                out->nrows = m->u.result.nrows;
                memcpy(out->rows, m->u.result.rows_in, sizeof out->rows[0] * out->nrows);
                return;
            default: break;
            }
        }
        if (want_cancel && !cancel_sent && out->job_id) {
            hy_msg *m = c->m;
            memset(m, 0, sizeof *m);
            m->type = HY_MSG_CANCEL;
            m->u.cancel.job_id = out->job_id;
            conn_send(c, m, NULL, 0);
            cancel_sent = true;
            clear_bar(bar);
            bar = false;
            say("cancelling job %" PRIu64 "...", out->job_id);
        }
    }
}

/* ---- job options shared by pi, sort and compare ---- */

struct jobopts {
    int backend;
    unsigned threads;
    bool replicate;
    uint64_t seed;
    int device;
    int nogil;
    unsigned switch_us;
    unsigned repeat;
    uint64_t n;
    bool have_n;
    /* sort */
    const char *input, *output, *dist;
    int dtype;
    bool raw, check;
    /* process */
    int transport;       /* a single job's: 0 (the daemon's default, pipe) or an hc_transport */
    uint32_t transports; /* a compare's: a bit per transport, 1 << hc_transport; 0 if not given */
    /* compare */
    uint32_t backends;
    uint32_t threads_list[HY_IPC_THREADS_MAX];
    unsigned nthreads;
    bool csv;
    const char *plot;
};

static unsigned parse_threads(const char *s, uint32_t *list)
{
    unsigned k = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (k == HY_IPC_THREADS_MAX)
            usage_error("--threads lists more than %u counts", HY_IPC_THREADS_MAX);
        list[k++] = small_arg("--threads", t, 1, 256);
    }
    if (!k)
        usage_error("--threads needs at least one count");
    return k;
}

static int transport_arg(const char *s)
{
    if (!strcmp(s, "pipe"))
        return HC_TRANSPORT_PIPE;
    if (!strcmp(s, "shm"))
        return HC_TRANSPORT_SHM;
    usage_error("unknown transport %s: use pipe or shm", s);
}

static uint32_t parse_transports(const char *s)
{
    uint32_t mask = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        mask |= 1u << transport_arg(t);
    if (!mask)
        usage_error("--transport needs pipe, shm or pipe,shm");
    return mask;
}

static uint32_t parse_backends(const char *s)
{
    uint32_t mask = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        mask |= 1u << backend_arg(t);
    if (!mask)
        usage_error("--backends needs at least one backend");
    return mask;
}

/* Parses argv[i..] for a job. Options that do not fit the command are refused. */
static void parse_job(int argc, char **argv, int i, const char *cmd, bool sort, bool compare,
                      struct jobopts *o)
{
    memset(o, 0, sizeof *o);
    o->backend = HY_BACKEND_NATIVE;
    o->seed = 1;
    o->device = -1;
    o->dist = "uniform";
    for (; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE()                                                                    \
    do {                                                                                \
        if (!v)                                                                         \
            usage_error("%s %s needs a value", cmd, a);                                 \
        i++;                                                                            \
    } while (0)
        if (!strcmp(a, "-n")) {
            NEED_VALUE();
            o->n = count_arg("-n", v);
            o->have_n = true;
        } else if (!strcmp(a, "--backend") && !compare) {
            NEED_VALUE();
            o->backend = backend_arg(v);
        } else if (!strcmp(a, "--threads")) {
            NEED_VALUE();
            if (compare)
                o->nthreads = parse_threads(v, o->threads_list);
            else
                o->threads = small_arg("--threads", v, 1, 256);
        } else if (!strcmp(a, "--backends") && compare) {
            NEED_VALUE();
            o->backends = parse_backends(v);
        } else if (!strcmp(a, "--transport")) {
            NEED_VALUE();
            if (compare)
                o->transports = parse_transports(v);
            else
                o->transport = transport_arg(v);
        } else if (!strcmp(a, "--replicate")) {
            o->replicate = true;
        } else if (!strcmp(a, "--seed")) {
            NEED_VALUE();
            o->seed = count_arg("--seed", v);
        } else if (!strcmp(a, "--device")) {
            NEED_VALUE();
            o->device = (int)small_arg("--device", v, 0, 63);
        } else if (!strcmp(a, "--nogil")) {
            o->nogil = HY_NOGIL_RELEASE;
        } else if (!strcmp(a, "--hold-lock")) {
            o->nogil = HY_NOGIL_HOLD;
        } else if (!strcmp(a, "--switch-interval")) {
            NEED_VALUE();
            o->switch_us = small_arg("--switch-interval", v, 1, 1000000);
        } else if (!strcmp(a, "--repeat")) {
            NEED_VALUE();
            o->repeat = small_arg("--repeat", v, 1, 1000);
        } else if (sort && !strcmp(a, "--input")) {
            NEED_VALUE();
            o->input = v;
        } else if (sort && !strcmp(a, "--output") && !compare) {
            NEED_VALUE();
            o->output = v;
        } else if (sort && !strcmp(a, "--raw") && !compare) {
            o->raw = true;
        } else if (sort && !strcmp(a, "--check") && !compare) {
            o->check = true;
        } else if (sort && !strcmp(a, "--dtype")) {
            NEED_VALUE();
            if (!(o->dtype = hy_dtype_parse(v)))
                usage_error("unknown dtype %s: use i32, u32, i64, u64, f32 or f64", v);
        } else if (sort && !strcmp(a, "--dist")) {
            NEED_VALUE();
            o->dist = v;
            static const char *dists[] = {"uniform", "normal", "sorted", "reversed",
                                          "few-unique"};
            bool ok = false;
            for (size_t k = 0; k < sizeof dists / sizeof dists[0]; k++)
                ok |= !strcmp(v, dists[k]);
            if (!ok)
                usage_error("unknown --dist %s: use uniform, normal, sorted, reversed or "
                            "few-unique", v);
        } else if (compare && !strcmp(a, "--csv")) {
            o->csv = true;
        } else if (compare && !strcmp(a, "--plot")) {
            NEED_VALUE();
            o->plot = v;
        } else {
            usage_error("%s: unknown option %s", cmd, a);
        }
#undef NEED_VALUE
    }
    if (o->nogil && !compare && o->backend != HY_BACKEND_LOCKED)
        usage_error("--nogil and --hold-lock are for the locked backend");
    bool process = compare ? (o->backends >> HY_BACKEND_PROCESS & 1)
                           : o->backend == HY_BACKEND_PROCESS;
    if (!compare && o->transport && !process)
        usage_error("--transport is for the process backend (--backend process)");
    if (o->replicate && process)
        usage_error("process runs split only: it splits one job among its worker processes, "
                    "as multiprocessing.Pool.map does; --replicate is for the thread backends");
    if (compare && o->transports && o->replicate)
        usage_error("--transport is for the process rows, and a --replicate comparison has "
                    "none (process runs split only)");
    if (compare && o->transports && o->backends && !process)
        usage_error("--transport is for the process rows: add process to --backends");
    if (!sort && !o->have_n)
        usage_error("%s needs -n N (samples)", cmd);
    if (!sort && o->n == 0)
        usage_error("-n must be at least 1");
    if (sort) {
        if (o->input && o->have_n)
            usage_error("%s takes --input FILE or -n N, not both", cmd);
        if (!o->input && !o->have_n)
            usage_error("%s needs --input FILE or -n N --dtype D", cmd);
        if (!o->input && !o->dtype)
            usage_error("a generated array needs --dtype");
        if (o->raw && !o->output)
            usage_error("--raw is for --output");
    }
    /* Before the job runs: a long job must never end with nowhere to put its result. */
    hy_error oerr = {0};
    if ((o->output && hc_output_check(o->output, NULL, &oerr)) ||
        (o->plot && hc_output_check(o->plot, "the plot", &oerr))) {
        say("%s", oerr.msg);
        exit(HC_EXIT_INPUT);
    }
}

/* What the daemon has: pools and devices, for defaults and labels. */
struct daemon_info {
    hy_msg_devices_reply *dev;
    int first_usable;
};

static void get_info(conn *c, struct daemon_info *info)
{
    const hy_msg *m = conn_ask(c, HY_MSG_DEVICES, HY_MSG_DEVICES_REPLY);
    info->dev = malloc(sizeof *info->dev);
    if (!info->dev) {
        say("out of memory");
        exit(HC_EXIT_JOB);
    }
    *info->dev = m->u.devices;
    info->dev->devices = info->dev->devices_in;
    info->first_usable = -1;
    for (unsigned i = 0; i < info->dev->ndevices; i++)
        if (info->dev->devices_in[i].flags & HY_DEV_USABLE) {
            info->first_usable = (int)info->dev->devices_in[i].index;
            break;
        }
}

static const char *device_name(const struct daemon_info *info, unsigned index)
{
    for (unsigned i = 0; i < info->dev->ndevices; i++)
        if (info->dev->devices_in[i].index == index)
            return info->dev->devices_in[i].name;
    return NULL;
}

/* Fills the SUBMIT fields every job kind shares. */
static void fill_submit(hy_msg_submit *s, const struct jobopts *o, const struct daemon_info *in)
{
    s->backend = (uint16_t)o->backend;
    s->mode = o->replicate ? HY_MODE_REPLICATE : HY_MODE_SPLIT;
    s->nogil = (uint16_t)o->nogil;
    s->repeat = o->repeat;
    s->switch_interval_us = o->switch_us;
    s->n = o->n;
    s->seed = o->seed;
    s->device = (uint16_t)(o->device >= 0 ? o->device : in->first_usable >= 0 ? in->first_usable
                                                                              : 0);
    unsigned pool = o->backend == HY_BACKEND_LOCKED    ? in->dev->locked_threads
                    : o->backend == HY_BACKEND_PROCESS ? in->dev->process_workers
                                                       : in->dev->native_threads;
    s->threads = o->backend == HY_BACKEND_SERIAL ? 1 : o->threads ? o->threads : pool;
    s->transport = (uint16_t)o->transport;
}

/* A process job with no --threads takes the whole pool: there must be one. */
static void need_process_pool(const struct jobopts *o, const struct daemon_info *in)
{
    if (o->backend == HY_BACKEND_PROCESS && !o->threads && !in->dev->process_workers) {
        say("this hybridd runs no process pool (its DEVICES reports 0 workers): see "
            "cpu.process_workers in hybridd.conf(5)");
        exit(HC_EXIT_JOB);
    }
}

/* ---- commands ---- */

static enum hc_format g_fmt = HC_TEXT;

static int finish_output(int rc)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        say("cannot write to standard output: %s", strerror(errno));
        return HC_EXIT_JOB;
    }
    return rc;
}

static int cmd_ping(conn *c)
{
    hy_msg *m = c->m;
    memset(m, 0, sizeof *m);
    m->type = HY_MSG_PING;
    m->u.ping.nonce = (uint64_t)getpid() << 20 ^ hy_now_ns();
    uint64_t nonce = m->u.ping.nonce;
    uint64_t t0 = hy_now_ns();
    uint64_t req = conn_send(c, m, NULL, 0);
    do
        if (conn_recv(c, 30000) != 0)
            cannot_reach(c, "no PONG within 30 s");
    while (c->m->request != req);
    uint64_t rtt = hy_now_ns() - t0;
    if (c->m->type != HY_MSG_PONG || c->m->u.ping.nonce != nonce) {
        say("the daemon answered PING with something else than its PONG");
        return HC_EXIT_JOB;
    }
    if (g_fmt == HC_JSON) {
        printf("{\"socket\":");
        hc_json_string(stdout, c->path, strlen(c->path));
        printf(",\"server\":");
        hc_json_string(stdout, c->server, strlen(c->server));
        printf(",\"rtt_ns\":%" PRIu64 "}\n", rtt);
    } else {
        printf("PONG from %s at %s: %.1f us\n", c->server, c->path, (double)rtt / 1e3);
    }
    return finish_output(0);
}

static int cmd_status(conn *c)
{
    const hy_msg *m = conn_ask(c, HY_MSG_STATUS, HY_MSG_STATUS_REPLY);
    return finish_output(hc_print_status(stdout, &m->u.status, g_fmt) ? HC_EXIT_JOB : 0);
}

static int cmd_devices(conn *c)
{
    const hy_msg *m = conn_ask(c, HY_MSG_DEVICES, HY_MSG_DEVICES_REPLY);
    hy_msg_devices_reply *d = malloc(sizeof *d);
    if (!d)
        return HC_EXIT_JOB;
    *d = m->u.devices;
    d->devices = d->devices_in;
    int rc = hc_print_devices(stdout, d, g_fmt);
    free(d);
    return finish_output(rc ? HC_EXIT_JOB : 0);
}

static int cmd_cancel(conn *c, int argc, char **argv, int i)
{
    if (i + 1 != argc)
        usage_error("cancel takes one job id");
    uint64_t id = count_arg("cancel", argv[i]);
    hy_msg *m = c->m;
    memset(m, 0, sizeof *m);
    m->type = HY_MSG_CANCEL;
    m->u.cancel.job_id = id;
    uint64_t req = conn_send(c, m, NULL, 0);
    /* CANCEL has no reply of its own; a PING behind it tells that it was taken (an ERROR
     * for the CANCEL would come first). */
    memset(m, 0, sizeof *m);
    m->type = HY_MSG_PING;
    uint64_t ping = conn_send(c, m, NULL, 0);
    for (;;) {
        if (conn_recv(c, 30000) != 0)
            cannot_reach(c, "no answer within 30 s");
        if (c->m->type == HY_MSG_ERROR && c->m->request == req)
            daemon_error(c->m, HC_EXIT_JOB);
        if (c->m->type == HY_MSG_PONG && c->m->request == ping)
            break;
    }
    if (g_fmt == HC_JSON)
        printf("{\"cancelled\":%" PRIu64 "}\n", id);
    else if (!g_quiet)
        printf("job %" PRIu64 " is being cancelled\n", id);
    return finish_output(0);
}

static int cmd_pi(conn *c, int argc, char **argv, int i)
{
    struct jobopts o;
    struct daemon_info info;
    parse_job(argc, argv, i, "pi", false, false, &o);
    get_info(c, &info);
    need_process_pool(&o, &info);
    hy_msg *m = c->m;
    memset(m, 0, sizeof *m);
    m->type = HY_MSG_SUBMIT;
    m->u.submit.job = HY_JOB_PI;
    fill_submit(&m->u.submit, &o, &info);
    struct job_out *out = malloc(sizeof *out);
    if (!out)
        return HC_EXIT_JOB;
    run_job(c, m, NULL, 0, 1, out);
    hc_pi_report r = {.seed = o.seed, .row = &out->rows[0],
                      .device_name = o.backend == HY_BACKEND_OPENCL
                                         ? device_name(&info, out->rows[0].device) : NULL};
    int rc = hc_print_pi(stdout, &r, g_fmt);
    free(out);
    free(info.dev);
    return finish_output(rc ? HC_EXIT_JOB : 0);
}

/* The sort's array, in a sealed memfd: read from the input file or generated in place. */
struct memfd_array {
    int fd;
    void *map;
    size_t bytes;
    hc_array a; /* points at the mapping */
};

static int load_array(const struct jobopts *o, uint64_t max_elems, struct memfd_array *ma)
{
    hy_error err = {0};
    memset(ma, 0, sizeof *ma);
    ma->fd = -1;
    if (o->input) {
        hc_array in;
        size_t max_bytes = (size_t)max_elems * 8;
        const char *ext = strrchr(o->input, '.');
        bool npy = !o->dtype || (ext && !strcmp(ext, ".npy"));
        int rc = npy ? hc_npy_read(o->input, &in, max_bytes, &err)
                     : hc_raw_read(o->input, o->dtype, &in, max_bytes, &err);
        if (rc) {
            say("%s", err.msg);
            return HC_EXIT_INPUT;
        }
        if (o->dtype && npy && o->dtype != in.dtype) {
            say("%s holds %s, not the %s that --dtype names", o->input,
                hy_dtype_name(in.dtype), hy_dtype_name(o->dtype));
            hc_array_free(&in);
            return HC_EXIT_INPUT;
        }
        ma->a = in;
        ma->bytes = in.n * hy_dtype_size(in.dtype);
    } else {
        ma->a.dtype = o->dtype;
        ma->a.n = (size_t)o->n;
        ma->bytes = (size_t)o->n * hy_dtype_size(o->dtype);
    }
    if (ma->a.n > max_elems) {
        say("%zu elements are above the daemon's limit of %" PRIu64, ma->a.n, max_elems);
        if (o->input)
            hc_array_free(&ma->a);
        return HC_EXIT_JOB;
    }
    /* A memfd of size 0 cannot be mapped: an empty array travels as one byte it ignores. */
    size_t alloc = ma->bytes ? ma->bytes : 1;
    if (hy_memfd_create("hybridctl-array", alloc, &ma->fd, &ma->map, &err)) {
        say("%s", err.msg);
        if (o->input)
            hc_array_free(&ma->a);
        return HC_EXIT_JOB;
    }
    if (o->input) {
        if (ma->bytes)
            memcpy(ma->map, ma->a.data, ma->bytes);
        hc_array in = ma->a; /* hc_array_free clears dtype and n as well */
        hc_array_free(&in);
    } else if (hc_generate(ma->map, o->dtype, (size_t)o->n, o->dist, o->seed, &err)) {
        say("%s", err.msg);
        return HC_EXIT_USAGE;
    }
    ma->a.data = ma->map;
    if (hy_memfd_seal(ma->fd, &err)) {
        say("%s", err.msg);
        return HC_EXIT_JOB;
    }
    return 0;
}

static void free_array(struct memfd_array *ma)
{
    if (ma->map)
        hy_memfd_unmap(ma->map, ma->bytes ? ma->bytes : 1);
    if (ma->fd >= 0)
        close(ma->fd);
}

static int cmd_sort(conn *c, int argc, char **argv, int i)
{
    struct jobopts o;
    struct daemon_info info;
    struct memfd_array ma;
    parse_job(argc, argv, i, "sort", true, false, &o);
    int rc = load_array(&o, c->welcome.max_sort_elements, &ma);
    if (rc)
        return rc;
    get_info(c, &info);
    need_process_pool(&o, &info);
    hy_msg *m = c->m;
    memset(m, 0, sizeof *m);
    m->type = HY_MSG_SUBMIT;
    m->u.submit.job = HY_JOB_SORT;
    fill_submit(&m->u.submit, &o, &info);
    m->u.submit.n = ma.a.n;
    m->u.submit.dtype = (uint16_t)ma.a.dtype;
    m->u.submit.array = HY_ARRAY_MEMFD;
    struct job_out *out = malloc(sizeof *out);
    if (!out)
        return HC_EXIT_JOB;
    run_job(c, m, &ma.fd, 1, 1, out);
    int checked = -1;
    size_t bad = 0;
    if (o.check)
        checked = hc_is_sorted(ma.map, ma.a.dtype, ma.a.n, &bad);
    rc = 0;
    if (o.output) {
        hy_error err = {0};
        if (hc_npy_write(o.output, &ma.a, o.raw, &err)) {
            say("%s", err.msg);
            rc = HC_EXIT_INPUT;
        }
    }
    hc_sort_report r = {.dtype = ma.a.dtype, .source = o.input ? o.input : o.dist,
                        .output = rc ? NULL : o.output, .checked = checked,
                        .row = &out->rows[0],
                        .device_name = o.backend == HY_BACKEND_OPENCL
                                           ? device_name(&info, out->rows[0].device) : NULL};
    if (hc_print_sort(stdout, &r, g_fmt))
        rc = rc ? rc : HC_EXIT_JOB;
    if (checked == 0) {
        say("the array came back out of order at index %zu", bad);
        rc = rc ? rc : HC_EXIT_JOB;
    }
    free(out);
    free(info.dev);
    free_array(&ma);
    return finish_output(rc);
}

static int cmd_compare(conn *c, int argc, char **argv, int i)
{
    if (i >= argc || (strcmp(argv[i], "pi") && strcmp(argv[i], "sort")))
        usage_error("compare needs pi or sort");
    bool sort = !strcmp(argv[i], "sort");
    struct jobopts o;
    struct daemon_info info;
    struct memfd_array ma = {.fd = -1};
    parse_job(argc, argv, i + 1, sort ? "compare sort" : "compare pi", sort, true, &o);
    get_info(c, &info);
    if (!o.backends) {
        o.backends = 1u << HY_BACKEND_SERIAL | 1u << HY_BACKEND_NATIVE | 1u << HY_BACKEND_LOCKED;
        if (info.first_usable >= 0)
            o.backends |= 1u << HY_BACKEND_OPENCL;
        /* process splits only; --transport asks for its rows even where DEVICES says the
         * pool is off (the daemon then says why it cannot run them). */
        if (!o.replicate && (info.dev->process_workers > 0 || o.transports))
            o.backends |= 1u << HY_BACKEND_PROCESS;
    }
    bool process = o.backends >> HY_BACKEND_PROCESS & 1;
    if (!o.nthreads) {
        /* 1, 2, 4, ... up to the smallest pool the comparison uses, and that pool itself. */
        unsigned pool = info.dev->native_threads < info.dev->locked_threads
                            ? info.dev->native_threads : info.dev->locked_threads;
        if (process && info.dev->process_workers && info.dev->process_workers < pool)
            pool = info.dev->process_workers;
        for (unsigned t = 1; t < pool && o.nthreads < HY_IPC_THREADS_MAX - 1; t *= 2)
            o.threads_list[o.nthreads++] = t;
        o.threads_list[o.nthreads++] = pool ? pool : 1;
    }
    if (o.repeat == 0)
        o.repeat = 5;
    hy_msg *m = c->m;
    memset(m, 0, sizeof *m);
    m->type = HY_MSG_SUBMIT;
    o.backend = HY_BACKEND_NATIVE; /* ignored by compares; keeps fill_submit's checks happy */
    fill_submit(&m->u.submit, &o, &info);
    m->u.submit.job = sort ? HY_JOB_COMPARE_SORT : HY_JOB_COMPARE_PI;
    m->u.submit.backends = o.backends;
    m->u.submit.transports = o.transports;
    m->u.submit.nthreads_list = o.nthreads;
    memcpy(m->u.submit.threads_list, o.threads_list, sizeof o.threads_list);
    unsigned nrows = 1;
    for (int b = HY_BACKEND_NATIVE; b <= HY_BACKEND_LOCKED; b++)
        nrows += (o.backends >> b & 1) * o.nthreads;
    nrows += o.backends >> HY_BACKEND_OPENCL & 1;
    if (process && !o.replicate) /* a row per transport and worker count; 0 means pipe */
        nrows += ((o.transports >> HC_TRANSPORT_SHM & 1) +
                  (!o.transports || (o.transports >> HC_TRANSPORT_PIPE & 1))) *
                 o.nthreads;
    int rc;
    if (sort) {
        if ((rc = load_array(&o, c->welcome.max_sort_elements, &ma))) {
            free(info.dev);
            return rc;
        }
        m = c->m; /* load_array does not touch it, but keep the message fresh */
        m->u.submit.n = ma.a.n;
        m->u.submit.dtype = (uint16_t)ma.a.dtype;
        m->u.submit.array = HY_ARRAY_MEMFD;
    }
    struct job_out *out = malloc(sizeof *out);
    if (!out) {
        free(info.dev);
        return HC_EXIT_JOB;
    }
    run_job(c, m, sort ? &ma.fd : NULL, sort ? 1 : 0, nrows, out);
    const char *dname = NULL;
    for (unsigned r = 0; r < out->nrows; r++)
        if (out->rows[r].backend == HY_BACKEND_OPENCL)
            dname = device_name(&info, out->rows[r].device);
    hc_compare cmp = {.job = sort ? HY_JOB_COMPARE_SORT : HY_JOB_COMPARE_PI,
                      .n = sort ? ma.a.n : o.n, .seed = o.seed, .dtype = ma.a.dtype,
                      .dist = o.input ? o.input : o.dist,
                      .mode = o.replicate ? HY_MODE_REPLICATE : HY_MODE_SPLIT,
                      .repeat = o.repeat, .nrows = out->nrows, .rows = out->rows,
                      .device_name = dname, .server = c->server};
    rc = hc_print_compare(stdout, &cmp, o.csv && g_fmt != HC_JSON ? HC_CSV : g_fmt)
             ? HC_EXIT_JOB : 0;
    if (o.plot) {
        hy_error err = {0};
        if (hc_write_plot(o.plot, &cmp, &err)) {
            say("%s", err.msg);
            rc = rc ? rc : HC_EXIT_INPUT;
        } else if (!g_quiet && g_fmt == HC_TEXT && !o.csv) {
            printf("plot: %s\n", o.plot);
        }
    }
    free(out);
    free(info.dev);
    if (sort)
        free_array(&ma);
    return finish_output(rc);
}

int main(int argc, char **argv)
{
    const char *sock = NULL;
    int i = 1;
    signal(SIGPIPE, SIG_IGN);
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-s") || !strcmp(a, "--socket")) {
            if (i + 1 >= argc)
                usage_error("%s needs a path", a);
            sock = argv[++i];
        } else if (!strcmp(a, "--json")) {
            g_fmt = HC_JSON;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            g_quiet = true;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--version")) {
            printf("hybridctl %s\n", HY_VERSION);
            return 0;
        } else {
            usage_error("unknown option %s", a);
        }
    }
    if (i >= argc)
        usage_error("which command? ping, status, devices, cancel, pi, sort or compare");
    const char *cmd = argv[i++];
    static const char *known[] = {"ping", "status", "devices", "cancel", "pi", "sort",
                                  "compare"};
    bool ok = false;
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
        ok |= !strcmp(cmd, known[k]);
    if (!ok)
        usage_error("unknown command %s", cmd);
    if ((!strcmp(cmd, "ping") || !strcmp(cmd, "status") || !strcmp(cmd, "devices")) &&
        i < argc)
        usage_error("%s takes no arguments", cmd);
    /* Usage is checked before connecting, so a typo never waits on a daemon. */
    struct jobopts check;
    if (!strcmp(cmd, "pi"))
        parse_job(argc, argv, i, "pi", false, false, &check);
    else if (!strcmp(cmd, "sort"))
        parse_job(argc, argv, i, "sort", true, false, &check);
    else if (!strcmp(cmd, "compare")) {
        if (i >= argc || (strcmp(argv[i], "pi") && strcmp(argv[i], "sort")))
            usage_error("compare needs pi or sort");
        parse_job(argc, argv, i + 1, "compare", !strcmp(argv[i], "sort"), true, &check);
    } else if (!strcmp(cmd, "cancel") && i + 1 != argc)
        usage_error("cancel takes one job id");
    conn c;
    conn_open(&c, sock);
    int rc;
    if (!strcmp(cmd, "ping"))
        rc = cmd_ping(&c);
    else if (!strcmp(cmd, "status"))
        rc = cmd_status(&c);
    else if (!strcmp(cmd, "devices"))
        rc = cmd_devices(&c);
    else if (!strcmp(cmd, "cancel"))
        rc = cmd_cancel(&c, argc, argv, i);
    else if (!strcmp(cmd, "pi"))
        rc = cmd_pi(&c, argc, argv, i);
    else if (!strcmp(cmd, "sort"))
        rc = cmd_sort(&c, argc, argv, i);
    else
        rc = cmd_compare(&c, argc, argv, i);
    close(c.fd);
    hy_frame_reader_free(c.r);
    hy_frame_writer_free(c.w);
    free(c.m);
    return rc;
}
