/* daemon-bench: what hybridd costs on top of the work it runs — a PING round trip against a
 * bare socketpair ping-pong, small pi jobs per second from several pipelining clients, and a
 * large memfd sort against the same sort in-process. Every baseline is measured in the same
 * run, so the ratios hold on whatever machine this runs on. A benchmark, not a test: it prints
 * figures and whether each target was met, and exits 0 unless something broke. */
#include "host.h"
#include "ipc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef HY_HYBRIDD_PATH
#define HY_HYBRIDD_PATH "hybridd"
#endif

#define PING_BYTES (HY_IPC_HEADER + 16u) /* a PING frame: header and its 16-byte body */
#define REPLY_TIMEOUT_MS 120000          /* a 10^8 sort on a slow machine takes seconds */
#define TARGET_PING_RATIO 1.2
#define TARGET_JOBS_PER_S 20000.0
#define TARGET_SORT_RATIO 1.05

/* ---- failure: one message, then the atexit hook stops what we started ---- */

static volatile sig_atomic_t g_failed;

static _Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static _Noreturn void die(const char *fmt, ...)
{
    /* One exit at a time: a second thread that fails meanwhile waits for the first's exit
     * (exit from two threads at once is undefined, and would run the cleanup twice). */
    static atomic_flag dying = ATOMIC_FLAG_INIT;
    if (atomic_flag_test_and_set(&dying))
        for (;;)
            pause();
    va_list ap;
    va_start(ap, fmt);
    fputs("daemon-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    g_failed = 1;
    exit(1);
}

static void *xmalloc(size_t n, const char *what)
{
    void *p = malloc(n);
    if (!p)
        die("out of memory for %s (%zu bytes)", what, n);
    return p;
}

/* ---- the daemon we start (unless --socket names one) ---- */

static struct {
    pid_t pid;
    char dir[64];
    char conf[128], sock[128], log[128];
} g_d = {.pid = -1};

static pid_t g_echo_pid = -1; /* the ping-pong baseline's child */

static void print_log_tail(void)
{
    if (!g_d.log[0])
        return;
    FILE *f = fopen(g_d.log, "r");
    if (!f)
        return;
    static char buf[4096];
    long start = 0;
    if (fseek(f, 0, SEEK_END) == 0) {
        long end = ftell(f);
        if (end > (long)sizeof buf - 1)
            start = end - (long)sizeof buf + 1;
    }
    if (fseek(f, start, SEEK_SET) != 0) {
        fclose(f);
        return;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    if (n == 0) {
        fprintf(stderr, "daemon-bench: the daemon's log (%s) is empty\n", g_d.log);
        return;
    }
    fprintf(stderr, "daemon-bench: the daemon's log (%s) ends:\n%s%s", g_d.log, buf,
            n && buf[n - 1] != '\n' ? "\n" : "");
}

/* Waits up to `ms` for pid; returns its status, or -1 when it is still running. */
static int wait_for(pid_t pid, int ms)
{
    for (int waited = 0;; waited += 10) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0 && errno != EINTR)
            return -2;
        if (waited >= ms)
            return -1;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
}

static void describe_status(int st, char *out, size_t cap)
{
    if (st >= 0 && WIFEXITED(st))
        snprintf(out, cap, "exit status %d", WEXITSTATUS(st));
    else if (st >= 0 && WIFSIGNALED(st))
        snprintf(out, cap, "signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else
        snprintf(out, cap, "unknown status");
}

/* Stops the daemon with SIGTERM (SIGKILL after 35 s, past its 30 s drain) and says how it
 * ended; returns whether it exited cleanly. */
static bool daemon_stop(void)
{
    if (g_d.pid <= 0)
        return true;
    if (kill(g_d.pid, SIGTERM) < 0 && errno != ESRCH)
        fprintf(stderr, "daemon-bench: kill(%d, SIGTERM): %s\n", (int)g_d.pid, strerror(errno));
    int st = wait_for(g_d.pid, 35000);
    if (st == -1) {
        fprintf(stderr, "daemon-bench: hybridd (pid %d) still runs 35 s after SIGTERM; "
                        "sending SIGKILL\n", (int)g_d.pid);
        kill(g_d.pid, SIGKILL);
        st = wait_for(g_d.pid, 5000);
    }
    g_d.pid = -1;
    bool clean = st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (!clean) {
        char how[96];
        describe_status(st, how, sizeof how);
        fprintf(stderr, "daemon-bench: hybridd did not exit cleanly after SIGTERM: %s\n", how);
        print_log_tail();
    }
    return clean;
}

static void cleanup(void)
{
    if (g_echo_pid > 0) {
        kill(g_echo_pid, SIGTERM);
        wait_for(g_echo_pid, 2000);
        g_echo_pid = -1;
    }
    if (g_d.pid > 0) {
        if (g_failed)
            print_log_tail();
        g_failed = 0; /* the tail is printed once */
        daemon_stop();
    }
    if (g_d.dir[0]) {
        unlink(g_d.conf);
        unlink(g_d.log);
        unlink(g_d.sock); /* the daemon removes it; this is for a daemon that could not */
        rmdir(g_d.dir);
        g_d.dir[0] = 0;
    }
}

static int try_connect(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path)
        die("socket path %s is longer than %zu bytes", path, sizeof a.sun_path - 1);
    memcpy(a.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket(AF_UNIX): %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

static void daemon_start(const char *hybridd)
{
    snprintf(g_d.dir, sizeof g_d.dir, "/tmp/daemon-bench.XXXXXX");
    if (!mkdtemp(g_d.dir)) {
        g_d.dir[0] = 0;
        die("mkdtemp(/tmp/daemon-bench.XXXXXX): %s", strerror(errno));
    }
    snprintf(g_d.conf, sizeof g_d.conf, "%s/bench.conf", g_d.dir);
    snprintf(g_d.sock, sizeof g_d.sock, "%s/bench.sock", g_d.dir);
    snprintf(g_d.log, sizeof g_d.log, "%s/hybridd.log", g_d.dir);
    FILE *f = fopen(g_d.conf, "w");
    if (!f)
        die("cannot write %s: %s", g_d.conf, strerror(errno));
    /* OpenCL off: the figures are about the daemon, and device discovery only slows the
     * start. Limits high enough for the pipelining clients and the 10^8-element sort. */
    fprintf(f, "opencl = { enabled = false; };\n"
               "limits = { jobs_per_client = 64; queued_jobs = 1024; "
               "sort_elements = 1073741824L; job_bytes = 8589934592L; };\n");
    if (fclose(f) != 0)
        die("cannot write %s: %s", g_d.conf, strerror(errno));
    int log = open(g_d.log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (log < 0)
        die("cannot create %s: %s", g_d.log, strerror(errno));
    if (access(hybridd, X_OK) < 0)
        die("cannot run %s: %s (build the hybridd target, or pass --hybridd PATH)", hybridd,
            strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        if (dup2(log, 1) < 0 || dup2(log, 2) < 0)
            _exit(126);
        char *argv[] = {(char *)hybridd, "--foreground", "-c", g_d.conf, "--socket", g_d.sock,
                        NULL};
        execv(hybridd, argv);
        dprintf(2, "daemon-bench: execv(%s): %s\n", hybridd, strerror(errno));
        _exit(127);
    }
    close(log);
    g_d.pid = pid;
    /* Ready is when the socket takes a connection: what a client sees, whatever the daemon's
     * own notion of ready. */
    for (int waited = 0;; waited += 20) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            g_d.pid = -1;
            char how[96];
            describe_status(st, how, sizeof how);
            print_log_tail();
            die("hybridd (%s) ended during start-up: %s", hybridd, how);
        }
        int fd = try_connect(g_d.sock);
        if (fd >= 0) {
            close(fd);
            return;
        }
        if (fd != -ENOENT && fd != -ECONNREFUSED)
            die("connect(%s): %s", g_d.sock, strerror(-fd));
        if (waited >= 60000)
            die("hybridd (pid %d) did not accept connections on %s within 60 s", (int)pid,
                g_d.sock);
        nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    }
}

/* ---- a client connection: ipc/'s client library, as hybridctl talks ---- */

typedef struct conn {
    hy_client *cl;
    uint32_t features, max_jobs;
    uint64_t max_sort_elements;
    char server[HY_IPC_NAME_MAX + 1];
    const char *who; /* for messages */
} conn;

static void conn_flush(conn *c)
{
    hy_error err = {0};
    if (hy_client_flush(c->cl, &err) != 0)
        die("%s: sending to hybridd: %s", c->who, err.msg);
}

static void conn_push(conn *c, const hy_msg *m, const int *fds, unsigned nfds)
{
    hy_error err = {0};
    if (hy_client_push(c->cl, m, fds, nfds, &err) != 0)
        die("%s: queueing %s: %s", c->who, hy_msg_type_name(m->type), err.msg);
}

/* The next complete frame already read, decoded; NULL when none is buffered. */
static const hy_msg *conn_buffered(conn *c)
{
    const hy_msg *m;
    hy_error err = {0};
    int rc = hy_client_recv_buffered(c->cl, &m, &err);
    if (rc == HY_CLIENT_TIMEOUT)
        return NULL;
    if (rc < 0)
        die("%s: the stream from hybridd broke: %s", c->who, err.msg);
    return m;
}

/* The next message, waiting for it in recvmsg itself (the client library bounds the wait
 * with SO_RCVTIMEO): one system call per reply, as the bare ping-pong's read is. */
static const hy_msg *conn_recv(conn *c)
{
    const hy_msg *m;
    hy_error err = {0};
    int rc = hy_client_recv(c->cl, REPLY_TIMEOUT_MS, &m, &err);
    if (rc == HY_CLIENT_TIMEOUT)
        die("%s: no reply from hybridd within %d s", c->who, REPLY_TIMEOUT_MS / 1000);
    if (rc == HY_CLIENT_EOF)
        die("%s: hybridd closed the connection", c->who);
    if (rc < 0)
        die("%s: reading from hybridd: %s", c->who, err.msg);
    return m;
}

static _Noreturn void die_unexpected(conn *c, const hy_msg *m, const char *waiting_for)
{
    if (m->type == HY_MSG_ERROR)
        die("%s: hybridd answered %s with ERROR %s (job %llu): %.*s", c->who, waiting_for,
            hy_err_name(m->u.error.code), (unsigned long long)m->u.error.job_id,
            (int)m->u.error.message.len, m->u.error.message.p);
    die("%s: waiting for %s, hybridd sent %s (request %llu)", c->who, waiting_for,
        hy_msg_type_name(m->type) ? hy_msg_type_name(m->type) : "an unknown type",
        (unsigned long long)m->request);
}

/* A failed wait of the client library's that did not end in a message. */
static _Noreturn void die_waiting(conn *c, int rc, const hy_error *err, const char *for_what)
{
    if (rc == HY_CLIENT_TIMEOUT)
        die("%s: no reply from hybridd to %s within %d s", c->who, for_what,
            REPLY_TIMEOUT_MS / 1000);
    if (rc == HY_CLIENT_EOF)
        die("%s: hybridd closed the connection", c->who);
    die("%s: %s: %s", c->who, for_what, err->msg);
}

/* A connection over a socket we already have, before any HELLO; the client owns fd. */
static void conn_wrap(conn *c, int fd, const char *who)
{
    memset(c, 0, sizeof *c);
    c->who = who;
    hy_error err = {0};
    if (hy_client_adopt(fd, &c->cl, &err) != 0)
        die("%s: %s", who, err.msg);
    hy_client_set_send_timeout(c->cl, REPLY_TIMEOUT_MS);
}

static void conn_open(conn *c, const char *path, const char *who)
{
    int fd = try_connect(path);
    if (fd < 0)
        die("%s: connect(%s): %s", who, path, strerror(-fd));
    conn_wrap(c, fd, who);
    hy_msg_hello h = {.min_version = 1, .max_version = 1, .features = HY_FEATURE_MEMFD,
                      .name = {"daemon-bench", 12}};
    const hy_msg *m;
    hy_error err = {0};
    int rc = hy_client_hello(c->cl, &h, REPLY_TIMEOUT_MS, &m, &err);
    if (rc && m)
        die_unexpected(c, m, "HELLO");
    if (rc)
        die_waiting(c, rc, &err, "HELLO");
    const hy_msg_welcome *w = hy_client_welcome(c->cl);
    c->features = w->features;
    c->max_jobs = w->max_jobs_per_client;
    c->max_sort_elements = w->max_sort_elements;
    snprintf(c->server, sizeof c->server, "%.*s", (int)w->server.len, w->server.p);
}

static void conn_close(conn *c)
{
    hy_client_close(c->cl);
    memset(c, 0, sizeof *c);
}

/* ---- small helpers ---- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t pct(const uint64_t *sorted, size_t n, unsigned p)
{
    return sorted[(n - 1) * p / 100];
}

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void write_full(int fd, const void *p, size_t n, const char *who)
{
    const char *b = p;
    while (n) {
        ssize_t k = write(fd, b, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            die("%s: write: %s", who, k < 0 ? strerror(errno) : "wrote nothing");
        b += k;
        n -= (size_t)k;
    }
}

/* false at end of stream before the first byte. */
static bool read_full(int fd, void *p, size_t n, const char *who)
{
    char *b = p;
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, b + got, n - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            die("%s: read: %s", who, strerror(errno));
        if (k == 0) {
            if (got == 0)
                return false;
            die("%s: the peer closed mid-message", who);
        }
        got += (size_t)k;
    }
    return true;
}

/* ---- (a) PING round trip ---- */

typedef struct lat {
    uint64_t p50, p90, p99, min, max;
} lat;

static lat summarize(uint64_t *ns, size_t n)
{
    qsort(ns, n, sizeof ns[0], cmp_u64);
    return (lat){pct(ns, n, 50), pct(ns, n, 90), pct(ns, n, 99), ns[0], ns[n - 1]};
}

/* The floor any daemon round trip stands on: two processes, one stream socket, 40 bytes each
 * way, blocking read and write, nothing else. Returns our end of the socket. */
static int echo_start(int child_cpu)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        die("socketpair: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        close(sv[0]);
        if (child_cpu >= 0) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(child_cpu, &set);
            if (sched_setaffinity(0, sizeof set, &set) < 0)
                _exit(3);
        }
        char b[PING_BYTES];
        for (;;) {
            size_t got = 0;
            while (got < sizeof b) {
                ssize_t k = read(sv[1], b + got, sizeof b - got);
                if (k < 0 && errno == EINTR)
                    continue;
                if (k <= 0)
                    _exit(k == 0 ? 0 : 1);
                got += (size_t)k;
            }
            for (size_t off = 0; off < sizeof b;) {
                ssize_t k = write(sv[1], b + off, sizeof b - off);
                if (k < 0 && errno == EINTR)
                    continue;
                if (k <= 0)
                    _exit(1);
                off += (size_t)k;
            }
        }
    }
    g_echo_pid = pid;
    close(sv[1]);
    return sv[0];
}

static void echo_stop(int fd)
{
    close(fd); /* the child reads end of stream and exits */
    int st = wait_for(g_echo_pid, 5000);
    g_echo_pid = -1;
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        die("ping-pong baseline: the echo child did not exit cleanly");
}

static uint64_t echo_once(int fd, uint64_t i)
{
    unsigned char out[PING_BYTES] = {0}, in[PING_BYTES];
    memcpy(out + HY_IPC_HEADER + 8, &i, sizeof i);
    uint64_t t0 = hy_now_ns();
    write_full(fd, out, sizeof out, "ping-pong baseline");
    if (!read_full(fd, in, sizeof in, "ping-pong baseline"))
        die("ping-pong baseline: the echo child ended early");
    uint64_t t1 = hy_now_ns();
    if (memcmp(in, out, sizeof in) != 0)
        die("ping-pong baseline: the echo differs from what was sent");
    return t1 - t0;
}

/* echo: the peer is the echo child, which sends the PING itself back. */
static uint64_t ping_once(conn *c, hy_msg *m, uint64_t i, bool echo)
{
    uint64_t req = hy_client_next_request(c->cl), nonce = 0x5eed0000ull + i;
    m->type = HY_MSG_PING;
    m->request = req;
    m->u.ping.nonce = nonce;
    uint64_t t0 = hy_now_ns();
    conn_push(c, m, NULL, 0);
    conn_flush(c);
    const hy_msg *r = conn_recv(c);
    uint64_t t1 = hy_now_ns();
    if (r->type != (echo ? HY_MSG_PING : HY_MSG_PONG))
        die_unexpected(c, r, "PING");
    if (r->request != req || r->u.ping.nonce != nonce)
        die("ping: PONG echoes request %llu nonce %#llx; sent request %llu nonce %#llx",
            (unsigned long long)r->request, (unsigned long long)r->u.ping.nonce,
            (unsigned long long)req, (unsigned long long)nonce);
    return t1 - t0;
}

/* Pinning. Unpinned, the scheduler puts the two ends of a ping-pong on one CPU (a wake-up is
 * a direct switch: a few us) or on two (on a VM a wake-up is then an IPI through the
 * hypervisor: tens of us), and which it picks moves a p50 more than any daemon does. So the
 * round trips are also measured with both ends pinned, the same way for the bare ping-pong and
 * for the daemon (all of the daemon's threads), which compares like with like. */
typedef struct pinned_task {
    pid_t tid;
    cpu_set_t mask;
} pinned_task;

typedef struct pinning {
    cpu_set_t self_old;
    pinned_task *tasks;
    size_t ntasks;
} pinning;

static void pin_self(int cpu, pinning *p)
{
    cpu_set_t set;
    int rc = pthread_getaffinity_np(pthread_self(), sizeof p->self_old, &p->self_old);
    if (rc != 0)
        die("pthread_getaffinity_np: %s", strerror(rc));
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if ((rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set)) != 0)
        die("pthread_setaffinity_np(CPU %d): %s", cpu, strerror(rc));
}

/* Every thread of `pid` onto `cpu`, remembering each one's mask. */
static void pin_process(pid_t pid, int cpu, pinning *p)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    if (!d)
        die("opendir(%s): %s", dir, strerror(errno));
    size_t cap = 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        pid_t tid = (pid_t)strtol(e->d_name, NULL, 10);
        if (p->ntasks == cap) {
            cap = cap ? 2 * cap : 16;
            pinned_task *t = realloc(p->tasks, cap * sizeof *t);
            if (!t)
                die("out of memory for %zu thread masks", cap);
            p->tasks = t;
        }
        pinned_task *t = &p->tasks[p->ntasks];
        if (sched_getaffinity(tid, sizeof t->mask, &t->mask) < 0) {
            if (errno == ESRCH)
                continue; /* the thread ended meanwhile */
            die("sched_getaffinity(hybridd thread %d): %s", (int)tid, strerror(errno));
        }
        if (sched_setaffinity(tid, sizeof set, &set) < 0) {
            if (errno == ESRCH)
                continue;
            die("sched_setaffinity(hybridd thread %d, CPU %d): %s", (int)tid, cpu,
                strerror(errno));
        }
        t->tid = tid;
        p->ntasks++;
    }
    closedir(d);
}

static void unpin(pinning *p, bool self)
{
    int rc;
    if (self && (rc = pthread_setaffinity_np(pthread_self(), sizeof p->self_old,
                                             &p->self_old)) != 0)
        die("pthread_setaffinity_np: %s", strerror(rc));
    for (size_t i = 0; i < p->ntasks; i++)
        if (sched_setaffinity(p->tasks[i].tid, sizeof p->tasks[i].mask, &p->tasks[i].mask) < 0 &&
            errno != ESRCH)
            die("sched_setaffinity(hybridd thread %d): %s", (int)p->tasks[i].tid,
                strerror(errno));
    free(p->tasks);
    p->tasks = NULL;
    p->ntasks = 0;
}

/* The first two CPUs this thread may run on; false when there is only one. */
static bool two_cpus(int cpus[2])
{
    cpu_set_t set;
    int rc = pthread_getaffinity_np(pthread_self(), sizeof set, &set);
    if (rc != 0)
        die("pthread_getaffinity_np: %s", strerror(rc));
    int k = 0;
    for (int i = 0; i < CPU_SETSIZE && k < 2; i++)
        if (CPU_ISSET(i, &set))
            cpus[k++] = i;
    return k == 2;
}

/* The bare ping-pong and the daemon measured in alternating blocks, so that whatever else the
 * machine does falls on both alike. self_cpu < 0: nothing pinned; else this thread on
 * self_cpu, and the echo child and (when daemon_pid > 0) the daemon on peer_cpu. */
#define PING_BLOCKS 10
static void ping_measure(const char *path, size_t rounds, size_t warm, int self_cpu,
                         int peer_cpu, pid_t daemon_pid, lat *base, lat *client, lat *dmn)
{
    uint64_t *bn = xmalloc(rounds * sizeof *bn, "ping timings");
    uint64_t *cn = xmalloc(rounds * sizeof *cn, "ping timings");
    uint64_t *dn = xmalloc(rounds * sizeof *dn, "ping timings");
    pinning pin = {0};
    if (self_cpu >= 0)
        pin_self(self_cpu, &pin);
    if (self_cpu >= 0 && daemon_pid > 0)
        pin_process(daemon_pid, peer_cpu, &pin);
    int efd = echo_start(self_cpu >= 0 ? peer_cpu : -1);
    conn c, e;
    conn_open(&c, path, "ping");
    /* Our own client path (push, sendmsg, poll, recvmsg, decode) against the echo child: what
     * the client adds to the floor, so that the rest of the difference is the daemon's. Every
     * round trip completes, so raw and framed use of the one socket never mix. */
    int efd2 = fcntl(efd, F_DUPFD_CLOEXEC, 0); /* the client's own: echo_stop closes efd */
    if (efd2 < 0)
        die("ping-pong baseline: fcntl(F_DUPFD_CLOEXEC): %s", strerror(errno));
    conn_wrap(&e, efd2, "ping-pong baseline");
    hy_msg *m = xmalloc(sizeof *m, "a message");
    memset(m, 0, sizeof *m);
    uint64_t k = 0;
    for (size_t i = 0; i < warm; i++) {
        echo_once(efd, k);
        ping_once(&e, m, k, true);
        ping_once(&c, m, k++, false);
    }
    for (size_t blk = 0; blk < PING_BLOCKS; blk++) {
        size_t from = rounds * blk / PING_BLOCKS, to = rounds * (blk + 1) / PING_BLOCKS;
        for (size_t i = from; i < to; i++)
            bn[i] = echo_once(efd, k++);
        for (size_t i = from; i < to; i++)
            cn[i] = ping_once(&e, m, k++, true);
        for (size_t i = from; i < to; i++)
            dn[i] = ping_once(&c, m, k++, false);
    }
    free(m);
    conn_close(&c);
    conn_close(&e);
    echo_stop(efd);
    unpin(&pin, self_cpu >= 0);
    *base = summarize(bn, rounds);
    *client = summarize(cn, rounds);
    *dmn = summarize(dn, rounds);
    free(bn);
    free(cn);
    free(dn);
}

/* ---- (b) small pi jobs from pipelining clients ---- */

typedef struct jobs_run {
    /* the run's settings */
    const char *path;
    int backend;
    uint64_t n;
    unsigned clients, window;
    double seconds, warm_s;
    /* set by main between the two barriers */
    uint64_t t_count, t_end;
    pthread_barrier_t connected, go;
    /* results */
    uint64_t counted, completed, checked;
    double jobs_per_s;
} jobs_run;

typedef struct jobs_client {
    jobs_run *run;
    unsigned index;
    pthread_t tid;
    uint64_t counted, completed, checked;
    char who[32];
} jobs_client;

static uint64_t job_seed(unsigned client, uint64_t request)
{
    return ((uint64_t)(client + 1) << 48) ^ (request * 0x9e3779b97f4a7c15ull);
}

static void *jobs_client_main(void *arg)
{
    jobs_client *jc = arg;
    jobs_run *run = jc->run;
    conn c;
    conn_open(&c, run->path, jc->who);
    unsigned window = run->window;
    if (c.max_jobs && window > c.max_jobs)
        window = c.max_jobs;
    hy_msg *s = xmalloc(sizeof *s, "a message");
    memset(s, 0, sizeof *s);
    s->type = HY_MSG_SUBMIT;
    s->u.submit = (hy_msg_submit){.job = HY_JOB_PI, .backend = (uint16_t)run->backend,
                                  .threads = 1, .repeat = 1, .array = HY_ARRAY_NONE,
                                  .n = run->n};
    int rc = pthread_barrier_wait(&run->connected);
    if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD)
        die("%s: pthread_barrier_wait: %s", jc->who, strerror(rc));
    rc = pthread_barrier_wait(&run->go);
    if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD)
        die("%s: pthread_barrier_wait: %s", jc->who, strerror(rc));

    unsigned inflight = 0;
    uint64_t now = hy_now_ns();
    while (inflight > 0 || now < run->t_end) {
        if (now < run->t_end && inflight < window) {
            while (inflight < window) {
                s->request = hy_client_next_request(c.cl);
                s->u.submit.seed = job_seed(jc->index, s->request);
                conn_push(&c, s, NULL, 0);
                inflight++;
            }
            conn_flush(&c);
        }
        /* Wait for one message, then take every one already read: the window refills in
         * one batch, as a client that pipelines would. */
        const hy_msg *m = conn_recv(&c);
        do {
            if (m->type == HY_MSG_ACCEPTED)
                continue;
            if (m->type != HY_MSG_RESULT)
                die_unexpected(&c, m, "a pi SUBMIT");
            const hy_msg_result *r = &m->u.result;
            if (r->job != HY_JOB_PI || r->nrows != 1)
                die("%s: RESULT of job %llu has kind %u and %u rows; expected pi, 1 row",
                    jc->who, (unsigned long long)r->job_id, r->job, r->nrows);
            if (inflight == 0)
                die("%s: a RESULT for request %llu arrived with no job in flight", jc->who,
                    (unsigned long long)m->request);
            inflight--;
            jc->completed++;
            uint64_t t = hy_now_ns();
            if (t >= run->t_count && t < run->t_end)
                jc->counted++;
            /* A few checked against the reference: the first of each client, then 1 in 1024. */
            if (jc->checked < 4 || (m->request & 1023) == 0) {
                uint64_t seed = job_seed(jc->index, m->request);
                uint64_t want = hy_host_pi_hits_reference(seed, 0, run->n);
                if (r->rows_in[0].hits != want || r->rows_in[0].n != run->n)
                    die("%s: pi seed %#llx n %llu: hybridd says %llu hits of n %llu, the "
                        "reference %llu", jc->who, (unsigned long long)seed,
                        (unsigned long long)run->n, (unsigned long long)r->rows_in[0].hits,
                        (unsigned long long)r->rows_in[0].n, (unsigned long long)want);
                jc->checked++;
            }
        } while ((m = conn_buffered(&c)) != NULL);
        now = hy_now_ns();
    }
    free(s);
    conn_close(&c);
    return NULL;
}

static void jobs_measure(jobs_run *run)
{
    jobs_client *jc = calloc(run->clients, sizeof *jc);
    if (!jc)
        die("out of memory for %u clients", run->clients);
    int rc;
    if ((rc = pthread_barrier_init(&run->connected, NULL, run->clients + 1)) != 0 ||
        (rc = pthread_barrier_init(&run->go, NULL, run->clients + 1)) != 0)
        die("pthread_barrier_init: %s", strerror(rc));
    for (unsigned i = 0; i < run->clients; i++) {
        jc[i].run = run;
        jc[i].index = i;
        snprintf(jc[i].who, sizeof jc[i].who, "pi client %u", i);
        if ((rc = pthread_create(&jc[i].tid, NULL, jobs_client_main, &jc[i])) != 0)
            die("pthread_create: %s", strerror(rc));
    }
    rc = pthread_barrier_wait(&run->connected);
    if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD)
        die("pthread_barrier_wait: %s", strerror(rc));
    uint64_t t0 = hy_now_ns();
    run->t_count = t0 + (uint64_t)(run->warm_s * 1e9);
    run->t_end = run->t_count + (uint64_t)(run->seconds * 1e9);
    rc = pthread_barrier_wait(&run->go);
    if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD)
        die("pthread_barrier_wait: %s", strerror(rc));
    run->counted = run->completed = run->checked = 0;
    for (unsigned i = 0; i < run->clients; i++) {
        if ((rc = pthread_join(jc[i].tid, NULL)) != 0)
            die("pthread_join: %s", strerror(rc));
        run->counted += jc[i].counted;
        run->completed += jc[i].completed;
        run->checked += jc[i].checked;
    }
    pthread_barrier_destroy(&run->connected);
    pthread_barrier_destroy(&run->go);
    free(jc);
    run->jobs_per_s = (double)run->counted / run->seconds;
}

/* ---- (c) a large memfd sort against the same sort in-process ---- */

typedef struct sort_out {
    size_t n;
    unsigned threads, runs;
    uint64_t local_med, local_min, local_max;
    uint64_t daemon_med, daemon_min, daemon_max;
    uint64_t row_med, row_min, row_max; /* the daemon's own measurement (row median_ns) */
    double ratio;
} sort_out;

static unsigned query_native_threads(conn *c)
{
    hy_msg *q = xmalloc(sizeof *q, "a message");
    memset(q, 0, sizeof *q);
    q->type = HY_MSG_DEVICES;
    const hy_msg *m;
    hy_error err = {0};
    int rc = hy_client_ask(c->cl, q, HY_MSG_DEVICES_REPLY, REPLY_TIMEOUT_MS, &m, &err);
    free(q);
    if (rc && m)
        die_unexpected(c, m, "DEVICES");
    if (rc)
        die_waiting(c, rc, &err, "DEVICES");
    return m->u.devices.native_threads;
}

/* One sort through the daemon; returns the client's wall time, sets *row_ns. */
static uint64_t sort_once_daemon(conn *c, int memfd, size_t n, unsigned threads,
                                 uint64_t *row_ns)
{
    hy_msg *s = xmalloc(sizeof *s, "a message");
    memset(s, 0, sizeof *s);
    s->type = HY_MSG_SUBMIT;
    /* repeat 1: the array is sorted in place, so a second repetition would sort sorted data. */
    s->u.submit = (hy_msg_submit){.job = HY_JOB_SORT, .backend = HY_BACKEND_NATIVE,
                                  .mode = HY_MODE_SPLIT, .dtype = HY_DT_F32,
                                  .threads = threads, .repeat = 1,
                                  .array = HY_ARRAY_MEMFD, .n = n};
    hy_client_job j;
    const hy_msg *m;
    hy_error err = {0};
    uint64_t t0 = hy_now_ns();
    int rc = hy_client_run(c->cl, s, &memfd, 1, NULL, REPLY_TIMEOUT_MS, &j, &m, &err);
    uint64_t t1 = hy_now_ns();
    free(s);
    if (rc && m)
        die_unexpected(c, m, "the sort SUBMIT");
    if (rc)
        die_waiting(c, rc, &err, "the sort SUBMIT");
    if (m->u.result.nrows != 1 || m->u.result.rows_in[0].n != n)
        die("sort: RESULT for request %llu with %u rows of n %llu; expected 1 row of n %zu",
            (unsigned long long)m->request, m->u.result.nrows,
            (unsigned long long)m->u.result.rows_in[0].n, n);
    *row_ns = m->u.result.rows_in[0].median_ns;
    return t1 - t0;
}

static void sort_measure(const char *path, size_t n, unsigned runs, sort_out *o)
{
    conn c;
    conn_open(&c, path, "sort");
    if (!(c.features & HY_FEATURE_MEMFD))
        die("sort: hybridd did not grant feature MEMFD");
    if (c.max_sort_elements < n)
        die("sort: hybridd's limit is %llu elements, the run needs %zu (--sort-n)",
            (unsigned long long)c.max_sort_elements, n);
    unsigned threads = query_native_threads(&c);
    if (threads == 0)
        threads = 2;
    size_t bytes = n * sizeof(float);
    float *pristine = xmalloc(bytes, "the pristine input");
    float *local = xmalloc(bytes, "the in-process copy");
    uint64_t st = 42;
    for (size_t i = 0; i < n; i++)
        pristine[i] = (float)(int32_t)(uint32_t)splitmix64(&st) * (1.0f / 65536.0f);
    int fd;
    void *map;
    hy_error err = {0};
    if (hy_memfd_create("daemon-bench", bytes, &fd, &map, &err) != 0 ||
        hy_memfd_seal(fd, &err) != 0)
        die("sort: %s", err.msg);
    hy_host *h;
    if (hy_host_create(&(hy_host_config){.threads = threads}, &h, &err) != 0)
        die("sort: hy_host_create with %u threads: %s", threads, err.msg);
    hy_run_opts opts = {.backend = HY_BACKEND_NATIVE, .threads = threads,
                        .mode = HY_MODE_SPLIT};
    static hy_sort_result sr; /* large (per-thread busy times): not on the stack */

    uint64_t *dw = xmalloc(runs * sizeof *dw, "timings"), *dr = xmalloc(runs * sizeof *dr,
                                                                          "timings"),
             *lw = xmalloc(runs * sizeof *lw, "timings");
    /* Run 0 is the warm-up; then daemon and in-process alternate, so drift in the machine
     * (another build, the page cache) falls on both alike. */
    for (unsigned i = 0; i <= runs; i++) {
        memcpy(map, pristine, bytes);
        uint64_t row = 0, d = sort_once_daemon(&c, fd, n, threads, &row);

        memcpy(local, pristine, bytes);
        uint64_t t0 = hy_now_ns();
        if (hy_host_sort(h, HY_DT_F32, local, n, &opts, &sr, &err) != 0)
            die("sort: in-process hy_host_sort: %s", err.msg);
        uint64_t l = hy_now_ns() - t0;

        if (i == 0) {
            for (size_t k = 1; k < n; k++)
                if (local[k - 1] > local[k])
                    die("sort: the in-process sort is out of order at element %zu", k);
            if (memcmp(map, local, bytes) != 0)
                die("sort: the daemon's sorted array differs from the in-process one");
            fprintf(stderr, "daemon-bench: sort warm-up: hybridd %.1f ms, in-process %.1f ms; "
                            "outputs identical\n", (double)d / 1e6, (double)l / 1e6);
            continue;
        }
        dw[i - 1] = d;
        dr[i - 1] = row;
        lw[i - 1] = l;
    }
    qsort(dw, runs, sizeof *dw, cmp_u64);
    qsort(dr, runs, sizeof *dr, cmp_u64);
    qsort(lw, runs, sizeof *lw, cmp_u64);
    *o = (sort_out){.n = n, .threads = threads, .runs = runs,
                    .local_med = lw[runs / 2], .local_min = lw[0], .local_max = lw[runs - 1],
                    .daemon_med = dw[runs / 2], .daemon_min = dw[0], .daemon_max = dw[runs - 1],
                    .row_med = dr[runs / 2], .row_min = dr[0], .row_max = dr[runs - 1]};
    o->ratio = (double)o->daemon_med / (double)o->local_med;
    free(dw);
    free(dr);
    free(lw);
    hy_host_destroy(h);
    hy_memfd_unmap(map, bytes);
    close(fd);
    free(local);
    free(pristine);
    conn_close(&c);
}

/* ---- the machine ---- */

static void cpu_model(char *out, size_t cap)
{
    snprintf(out, cap, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        char *v = strchr(line, ':');
        if (!v)
            continue;
        v++;
        while (*v == ' ' || *v == '\t')
            v++;
        v[strcspn(v, "\n")] = 0;
        snprintf(out, cap, "%s", v);
        break;
    }
    fclose(f);
}

static void load_average(char *out, size_t cap)
{
    snprintf(out, cap, "unknown");
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f)
        return;
    double a, b, c;
    if (fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3)
        snprintf(out, cap, "%.2f %.2f %.2f", a, b, c);
    fclose(f);
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

/* ---- main ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: daemon-bench [options]\n"
            "Measures hybridd's overheads against baselines measured in the same run:\n"
            "  ping  PING round trip p50 <= %.1fx a bare socketpair ping-pong's (40 bytes)\n"
            "  jobs  >= %.0f pi jobs/s (n = 1000, serial, 1 thread) from pipelining clients\n"
            "  sort  a memfd sort of f32 through hybridd <= %.2fx the same sort in-process\n"
            "options:\n"
            "  --socket PATH    use a running hybridd at PATH (default: start one)\n"
            "  --hybridd PATH   the daemon to start (default %s)\n"
            "  --only WHAT      ping, jobs or sort (default: all three)\n"
            "  --clients N      pi clients, one connection (thread) each (default 4)\n"
            "  --window W       pi jobs in flight per client, at most WELCOME's limit (default 8)\n"
            "  --seconds S      counted seconds per pi run, after a 0.5 s warm-up (default 3)\n"
            "  --pings N        round trips per ping measurement (default 20000)\n"
            "  --sort-n N       elements to sort (default 100000000: 400 MB, and the run\n"
            "                   needs ~1.2 GB of RAM plus the sort's scratch)\n"
            "  --sort-runs R    timed sorts each way, after one warm-up (default 5)\n"
            "  --json           print a JSON document instead of the table\n"
            "  --help\n",
            TARGET_PING_RATIO, TARGET_JOBS_PER_S, TARGET_SORT_RATIO, HY_HYBRIDD_PATH);
}

static unsigned long long parse_count(const char *opt, const char *s, unsigned long long min,
                                      unsigned long long max)
{
    char *end;
    errno = 0;
    double d = strtod(s, &end); /* so that 1e8 works too */
    if (errno || end == s || *end || d < (double)min || d > (double)max || d != (double)(unsigned long long)d)
        die("%s wants a whole number in %llu..%llu, not '%s'", opt, min, max, s);
    return (unsigned long long)d;
}

/* The command line. */
struct bench_opts {
    const char *socket_path, *hybridd, *only; /* socket_path NULL: start a daemon */
    unsigned clients, window, sort_runs;
    double seconds;
    size_t pings, sort_n;
    bool json;
};

/* Parses the command line into *o (dies on a bad value). Returns -1 to go on, or the exit
 * code of a run that ends here (--help, an unknown option). */
static int parse_args(int argc, char **argv, struct bench_opts *o)
{
    enum { O_SOCKET = 256, O_HYBRIDD, O_ONLY, O_CLIENTS, O_WINDOW, O_SECONDS, O_PINGS, O_SORTN,
           O_SORTRUNS, O_JSON, O_HELP };
    static const struct option longopts[] = {
        {"socket", required_argument, NULL, O_SOCKET},
        {"hybridd", required_argument, NULL, O_HYBRIDD},
        {"only", required_argument, NULL, O_ONLY},
        {"clients", required_argument, NULL, O_CLIENTS},
        {"window", required_argument, NULL, O_WINDOW},
        {"seconds", required_argument, NULL, O_SECONDS},
        {"pings", required_argument, NULL, O_PINGS},
        {"sort-n", required_argument, NULL, O_SORTN},
        {"sort-runs", required_argument, NULL, O_SORTRUNS},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, O_HELP},
        {0, 0, 0, 0},
    };
    *o = (struct bench_opts){.hybridd = HY_HYBRIDD_PATH, .clients = 4, .window = 8,
                             .sort_runs = 5, .seconds = 3.0, .pings = 20000,
                             .sort_n = 100000000};
    int opt;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case O_SOCKET: o->socket_path = optarg; break;
        case O_HYBRIDD: o->hybridd = optarg; break;
        case O_ONLY:
            if (strcmp(optarg, "ping") && strcmp(optarg, "jobs") && strcmp(optarg, "sort"))
                die("--only wants ping, jobs or sort, not '%s'", optarg);
            o->only = optarg;
            break;
        case O_CLIENTS: o->clients = (unsigned)parse_count("--clients", optarg, 1, 256); break;
        case O_WINDOW: o->window = (unsigned)parse_count("--window", optarg, 1, 10000); break;
        case O_SECONDS: {
            char *end;
            errno = 0;
            o->seconds = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(o->seconds >= 0.1 && o->seconds <= 3600))
                die("--seconds wants a number of seconds in 0.1..3600, not '%s'", optarg);
            break;
        }
        case O_PINGS: o->pings = parse_count("--pings", optarg, 100, 100000000); break;
        case O_SORTN: o->sort_n = parse_count("--sort-n", optarg, 2, (1ull << 40)); break;
        case O_SORTRUNS:
            o->sort_runs = (unsigned)parse_count("--sort-runs", optarg, 1, 1000);
            break;
        case O_JSON: o->json = true; break;
        case O_HELP: usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc)
        die("unexpected argument '%s' (see --help)", argv[optind]);
    if (o->sort_n > SIZE_MAX / sizeof(float))
        die("--sort-n %zu is too large for this machine", o->sort_n);
    return -1;
}

/* The ping measurement in one placement of the two ends. */
struct ping_run {
    const char *name, *key;
    bool ran;
    lat base, client, dmn;
    double ratio;
};

/* The pi job runs: the target is judged on the first. */
static const struct {
    int backend;
    uint64_t n;
} jobs_cfg[] = {{HY_BACKEND_SERIAL, 1000}, {HY_BACKEND_NATIVE, 1000},
                {HY_BACKEND_SERIAL, 100000}, {HY_BACKEND_NATIVE, 100000}};
enum { NJOBS = sizeof jobs_cfg / sizeof jobs_cfg[0] };

/* Everything a report shows. */
struct results {
    bool do_ping, do_jobs, do_sort;
    char cpu[256], load[64];
    long nproc;
    char server[HY_IPC_NAME_MAX + 1];
    const char *socket_path;
    int pid; /* the daemon this run started, or 0 */
    bool clean; /* it exited cleanly after SIGTERM */
    struct ping_run pm[3]; /* unpinned, both ends on one CPU, on two */
    bool ping_ok, ping_judged_pinned;
    jobs_run jobs[NJOBS];
    bool jobs_ok;
    sort_out so;
    bool sort_ok;
};

/* Ping on its own and pinned (when we started the daemon and have two CPUs): both ends on
 * one CPU and on two. The target is judged on the pinned pairs, which compare like with
 * like. */
static void ping_all(const struct bench_opts *o, struct results *r)
{
    r->pm[0] = (struct ping_run){.name = "unpinned", .key = "unpinned"};
    r->pm[1] = (struct ping_run){.name = "pinned, one CPU", .key = "one_cpu"};
    r->pm[2] = (struct ping_run){.name = "pinned, two CPUs", .key = "two_cpus"};
    r->ping_ok = true;
    r->ping_judged_pinned = false;
    if (!r->do_ping)
        return;
    size_t warm = o->pings / 20 > 1000 ? 1000 : o->pings / 20;
    int cpus[2];
    bool can_pin = g_d.pid > 0 && two_cpus(cpus);
    for (int i = 0; i < (can_pin ? 3 : 1); i++) {
        fprintf(stderr, "daemon-bench: ping, %s: %zu round trips each way after %zu "
                        "warm-up\n", r->pm[i].name, o->pings, warm);
        ping_measure(r->socket_path, o->pings, warm, i ? cpus[0] : -1,
                     i == 2 ? cpus[1] : cpus[0], g_d.pid, &r->pm[i].base, &r->pm[i].client,
                     &r->pm[i].dmn);
        r->pm[i].ran = true;
        r->pm[i].ratio = (double)r->pm[i].dmn.p50 / (double)r->pm[i].base.p50;
    }
    r->ping_judged_pinned = can_pin;
    for (int i = can_pin ? 1 : 0; i < (can_pin ? 3 : 1); i++)
        r->ping_ok = r->ping_ok && r->pm[i].ratio <= TARGET_PING_RATIO;
}

static void print_json(const struct bench_opts *o, const struct results *r)
{
    printf("{\n  \"machine\": {\"cpu\": ");
    json_str(r->cpu);
    printf(", \"nproc\": %ld, \"loadavg_at_start\": \"%s\"},\n", r->nproc, r->load);
    printf("  \"daemon\": {\"server\": ");
    json_str(r->server);
    printf(", \"started\": %s, \"pid\": %d, \"clean_exit\": %s},\n",
           r->pid > 0 ? "true" : "false", r->pid, r->clean ? "true" : "false");
    printf("  \"pi_kernel\": \"%s\"", hy_host_pi_kernel());
    if (r->do_ping) {
        printf(",\n  \"ping\": {\"round_trips\": %zu, \"target_ratio_p50\": %.2f, "
               "\"judged_on\": \"%s\", \"pass\": %s",
               o->pings, TARGET_PING_RATIO, r->ping_judged_pinned ? "pinned" : "unpinned",
               r->ping_ok ? "true" : "false");
        for (int i = 0; i < 3; i++) {
            if (!r->pm[i].ran)
                continue;
            const lat *b = &r->pm[i].base, *d = &r->pm[i].dmn, *cl = &r->pm[i].client;
            printf(",\n    \"%s\": {\"socketpair_ns\": {\"p50\": %llu, \"p90\": %llu, "
                   "\"p99\": %llu, \"min\": %llu, \"max\": %llu},\n"
                   "      \"ipc_client_vs_echo_ns\": {\"p50\": %llu, \"p90\": %llu, "
                   "\"p99\": %llu},\n      \"daemon_ns\": "
                   "{\"p50\": %llu, \"p90\": %llu, \"p99\": %llu, \"min\": %llu, "
                   "\"max\": %llu}, \"ratio_p50\": %.3f}",
                   r->pm[i].key, (unsigned long long)b->p50, (unsigned long long)b->p90,
                   (unsigned long long)b->p99, (unsigned long long)b->min,
                   (unsigned long long)b->max, (unsigned long long)cl->p50,
                   (unsigned long long)cl->p90, (unsigned long long)cl->p99,
                   (unsigned long long)d->p50,
                   (unsigned long long)d->p90, (unsigned long long)d->p99,
                   (unsigned long long)d->min, (unsigned long long)d->max, r->pm[i].ratio);
        }
        printf("}");
    }
    if (r->do_jobs) {
        printf(",\n  \"jobs\": {\"clients\": %u, \"window\": %u, \"seconds\": %.2f, "
               "\"target_jobs_per_s\": %.0f, \"pass\": %s, \"runs\": [",
               o->clients, o->window, o->seconds, TARGET_JOBS_PER_S, r->jobs_ok ? "true" : "false");
        for (unsigned i = 0; i < NJOBS; i++)
            printf("%s\n    {\"backend\": \"%s\", \"threads\": 1, \"n\": %llu, "
                   "\"jobs_per_s\": %.0f, \"counted\": %llu, \"completed\": %llu, "
                   "\"checked\": %llu}",
                   i ? "," : "", hy_backend_name(r->jobs[i].backend),
                   (unsigned long long)r->jobs[i].n, r->jobs[i].jobs_per_s,
                   (unsigned long long)r->jobs[i].counted,
                   (unsigned long long)r->jobs[i].completed,
                   (unsigned long long)r->jobs[i].checked);
        printf("]}");
    }
    if (r->do_sort)
        printf(",\n  \"sort\": {\"n\": %zu, \"dtype\": \"f32\", \"backend\": \"native\", "
               "\"threads\": %u, \"runs\": %u,\n"
               "    \"in_process_ns\": {\"median\": %llu, \"min\": %llu, \"max\": %llu},\n"
               "    \"daemon_wall_ns\": {\"median\": %llu, \"min\": %llu, \"max\": %llu},\n"
               "    \"daemon_row_median_ns\": {\"median\": %llu, \"min\": %llu, "
               "\"max\": %llu},\n"
               "    \"ratio\": %.4f, \"target\": %.2f, \"pass\": %s}",
               r->so.n, r->so.threads, r->so.runs, (unsigned long long)r->so.local_med,
               (unsigned long long)r->so.local_min, (unsigned long long)r->so.local_max,
               (unsigned long long)r->so.daemon_med, (unsigned long long)r->so.daemon_min,
               (unsigned long long)r->so.daemon_max, (unsigned long long)r->so.row_med,
               (unsigned long long)r->so.row_min, (unsigned long long)r->so.row_max, r->so.ratio,
               TARGET_SORT_RATIO, r->sort_ok ? "true" : "false");
    printf("\n}\n");
}

static void print_text(const struct bench_opts *o, const struct results *r)
{
    printf("daemon-bench: hybridd's overheads against baselines measured in the same run\n");
    printf("machine: %s, %ld CPUs online; load average at start %s\n", r->cpu, r->nproc, r->load);
    printf("daemon:  %s%s%s; pi kernel %s\n", r->server[0] ? r->server : "(no name)",
           r->pid > 0 ? ", started by this run" : ", at ", r->pid > 0 ? "" : r->socket_path,
           hy_host_pi_kernel());
    if (r->do_ping) {
        char title[64];
        snprintf(title, sizeof title, "(a) PING round trip, %zu each way", o->pings);
        printf("\n%-42s%10s%10s%10s%11s\n", title, "p50 us", "p90 us", "p99 us",
               "p50 ratio");
        for (int i = 0; i < 3; i++) {
            if (!r->pm[i].ran)
                continue;
            const lat *b = &r->pm[i].base, *d = &r->pm[i].dmn;
            printf("    %s\n", r->pm[i].name);
            printf("      %-36s%10.1f%10.1f%10.1f\n", "socketpair ping-pong, 40 bytes",
                   b->p50 / 1e3, b->p90 / 1e3, b->p99 / 1e3);
            printf("      %-36s%10.1f%10.1f%10.1f%11.2f\n", "  the same, through our ipc client",
                   r->pm[i].client.p50 / 1e3, r->pm[i].client.p90 / 1e3, r->pm[i].client.p99 / 1e3,
                   (double)r->pm[i].client.p50 / (double)b->p50);
            printf("      %-36s%10.1f%10.1f%10.1f%11.2f\n", "PING -> PONG through hybridd",
                   d->p50 / 1e3, d->p90 / 1e3, d->p99 / 1e3, r->pm[i].ratio);
        }
        printf("    target: p50 ratio <= %.2f%s: %s\n", TARGET_PING_RATIO,
               r->ping_judged_pinned ? " in both pinned placements" : "",
               r->ping_ok ? "PASS" : "MISS");
        printf("    the daemon's own share, p50 over the ipc client against the echo child:");
        for (int i = 0; i < 3; i++)
            if (r->pm[i].ran)
                printf(" %s %.2f%s", r->pm[i].key,
                       (double)r->pm[i].dmn.p50 / (double)r->pm[i].client.p50,
                       i < 2 && r->pm[i + 1].ran ? "," : "");
        printf("\n");
    }
    if (r->do_jobs) {
        printf("\n(b) pi jobs, %u clients x %u in flight, %.1f s counted after 0.5 s\n",
               o->clients, o->window, o->seconds);
        printf("    backend  threads          n     jobs/s   checked\n");
        for (unsigned i = 0; i < NJOBS; i++)
            printf("    %-7s  %7u  %9llu  %9.0f  %8llu%s\n", hy_backend_name(r->jobs[i].backend),
                   1u, (unsigned long long)r->jobs[i].n, r->jobs[i].jobs_per_s,
                   (unsigned long long)r->jobs[i].checked,
                   i == 0 ? (r->jobs_ok ? "   target >= 20000: PASS"
                                     : "   target >= 20000: MISS")
                          : "");
    }
    if (r->do_sort) {
        printf("\n(c) sort %zu f32 in a memfd, native, %u threads, %u runs each after a "
               "warm-up\n", r->so.n, r->so.threads, r->so.runs);
        printf("%-42s%10s%10s%10s\n", "", "median ms", "min ms", "max ms");
        printf("    %-38s%10.1f%10.1f%10.1f\n", "in-process hy_host_sort",
               r->so.local_med / 1e6, r->so.local_min / 1e6, r->so.local_max / 1e6);
        printf("    %-38s%10.1f%10.1f%10.1f\n", "through hybridd, client wall",
               r->so.daemon_med / 1e6, r->so.daemon_min / 1e6, r->so.daemon_max / 1e6);
        printf("    %-38s%10.1f%10.1f%10.1f\n", "hybridd's own measurement (median_ns)",
               r->so.row_med / 1e6, r->so.row_min / 1e6, r->so.row_max / 1e6);
        printf("    ratio of medians %.3f, target <= %.2f: %s\n", r->so.ratio,
               TARGET_SORT_RATIO, r->sort_ok ? "PASS" : "MISS");
    }
    if (!r->clean)
        printf("\nhybridd did not exit cleanly after SIGTERM (see stderr)\n");
}

int main(int argc, char **argv)
{
    struct bench_opts o;
    int code = parse_args(argc, argv, &o);
    if (code >= 0)
        return code;
    static struct results r; /* zeroed: a part that does not run reports zeros */
    r.do_ping = !o.only || !strcmp(o.only, "ping");
    r.do_jobs = !o.only || !strcmp(o.only, "jobs");
    r.do_sort = !o.only || !strcmp(o.only, "sort");

    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        die("signal(SIGPIPE): %s", strerror(errno));
    if (atexit(cleanup) != 0)
        die("atexit failed");

    cpu_model(r.cpu, sizeof r.cpu);
    load_average(r.load, sizeof r.load);
    r.nproc = sysconf(_SC_NPROCESSORS_ONLN);
    r.socket_path = o.socket_path;
    if (!r.socket_path) {
        daemon_start(o.hybridd);
        r.socket_path = g_d.sock;
        fprintf(stderr, "daemon-bench: started %s (pid %d) on %s\n", o.hybridd, (int)g_d.pid,
                r.socket_path);
    }
    {
        conn c;
        conn_open(&c, r.socket_path, "hello");
        memcpy(r.server, c.server, sizeof r.server);
        conn_close(&c);
    }

    ping_all(&o, &r);
    if (r.do_jobs) {
        for (unsigned i = 0; i < NJOBS; i++) {
            r.jobs[i] = (jobs_run){.path = r.socket_path, .backend = jobs_cfg[i].backend,
                                   .n = jobs_cfg[i].n, .clients = o.clients,
                                   .window = o.window, .seconds = o.seconds, .warm_s = 0.5};
            fprintf(stderr, "daemon-bench: pi jobs: %s, n %llu, %u clients x %u in flight\n",
                    hy_backend_name(r.jobs[i].backend), (unsigned long long)r.jobs[i].n,
                    o.clients, o.window);
            jobs_measure(&r.jobs[i]);
        }
    }
    if (r.do_sort) {
        fprintf(stderr, "daemon-bench: sort: %zu f32 (%.0f MB), %u runs each way\n", o.sort_n,
                (double)o.sort_n * 4 / 1e6, o.sort_runs);
        sort_measure(r.socket_path, o.sort_n, o.sort_runs, &r.so);
    }

    r.jobs_ok = r.jobs[0].jobs_per_s >= TARGET_JOBS_PER_S;
    r.sort_ok = r.so.ratio <= TARGET_SORT_RATIO;
    r.pid = (int)g_d.pid;
    r.clean = daemon_stop();
    if (o.json)
        print_json(&o, &r);
    else
        print_text(&o, &r);
    return r.clean ? 0 : 1;
}
