/* tests/daemon/harness: a real hybridd in a temporary directory, and a blocking client over
 * ipc/ with bounded waits and job tracking. See harness.h for the contracts. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "host.h"

#ifndef HY_TEST_HYBRIDD
#error "HY_TEST_HYBRIDD must name the hybridd binary"
#endif

static int64_t now_ms(void)
{
    return (int64_t)(hy_now_ns() / 1000000u);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- configuration ---- */

hyt_conf hyt_conf_default(void)
{
    hyt_conf k = {
        .opencl = false,
        .native_threads = 2,
        .locked_threads = 2,
        .switch_interval_us = 5000,
        .process_workers = 2,
        .jobs_per_client = 4,
        .queued_jobs = 8,
        .clients = 64, /* tests open and close faster than the daemon may see the closes */
        .frame_bytes = 65536,
        .samples = 1000000000000ull,
        .sort_elements = 1000000ull,
        .job_timeout_s = 120,
        .drain_timeout_s = 5,
        .access = NULL,
    };
    return k;
}

void hyt_conf_text(const hyt_conf *k, char *buf, size_t cap)
{
    snprintf(buf, cap,
             "opencl = { enabled = %s;%s };\n"
             "cpu = { native_threads = %u; locked_threads = %u; switch_interval_us = %u;\n"
             "  process_workers = %u; };\n"
             "limits = { jobs_per_client = %u; queued_jobs = %u; clients = %u;\n"
             "  samples = %lluL; sort_elements = %lluL; frame_bytes = %u;\n"
             "  job_timeout_s = %u; drain_timeout_s = %u; };\n"
             "%s%s%s",
             k->opencl ? "true" : "false",
             k->hybrid_cpu_devices ? " hybrid_cpu_devices = true;" : "", k->native_threads, k->locked_threads,
             k->switch_interval_us, k->process_workers, k->jobs_per_client, k->queued_jobs, k->clients,
             (unsigned long long)k->samples, (unsigned long long)k->sort_elements,
             k->frame_bytes, k->job_timeout_s, k->drain_timeout_s,
             k->access ? "access = { " : "", k->access ? k->access : "",
             k->access ? " };\n" : "");
}

/* ---- the daemon ---- */

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "harness: fopen %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t len = strlen(text);
    int rc = fwrite(text, 1, len, f) == len ? 0 : -1;
    if (fclose(f) != 0)
        rc = -1;
    if (rc)
        fprintf(stderr, "harness: writing %s failed\n", path);
    return rc;
}

int hyt_daemon_init(hyt_daemon *d, const char *config)
{
    memset(d, 0, sizeof *d);
    snprintf(d->dir, sizeof d->dir, "/tmp/hyt-XXXXXX");
    if (!mkdtemp(d->dir)) {
        fprintf(stderr, "harness: mkdtemp: %s\n", strerror(errno));
        d->dir[0] = '\0';
        return -1;
    }
    snprintf(d->conf, sizeof d->conf, "%s/hybridd.conf", d->dir);
    snprintf(d->sock, sizeof d->sock, "%s/s.sock", d->dir);
    snprintf(d->log, sizeof d->log, "%s/hybridd.log", d->dir);
    return hyt_daemon_write_config(d, config ? config : "");
}

int hyt_daemon_write_config(const hyt_daemon *d, const char *config)
{
    /* Write beside and rename, so a SIGHUP never reads half a file. */
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.new", d->conf);
    if (write_file(tmp, config) != 0)
        return -1;
    if (rename(tmp, d->conf) != 0) {
        fprintf(stderr, "harness: rename %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    return 0;
}

int hyt_daemon_exec_argv(hyt_daemon *d, const char *const *argv)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "harness: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null >= 0)
            dup2(null, STDIN_FILENO);
        /* Criterion's signal handling must not leak into the daemon. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "harness: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    d->pid = pid;
    d->exited = false;
    return 0;
}

const char *hyt_hybridd_binary(void)
{
    /* HYBRIDD_TEST_BINARY runs the suites against another build (ASan, TSan) of the daemon. */
    const char *bin = getenv("HYBRIDD_TEST_BINARY");
    return bin && bin[0] ? bin : HY_TEST_HYBRIDD;
}

int hyt_daemon_exec(hyt_daemon *d, const char *const *extra)
{
    const char *argv[32];
    unsigned n = 0;
    argv[n++] = hyt_hybridd_binary();
    argv[n++] = "--foreground";
    argv[n++] = "-c";
    argv[n++] = d->conf;
    argv[n++] = "--socket";
    argv[n++] = d->sock;
    for (unsigned i = 0; extra && extra[i] && n < 31; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    return hyt_daemon_exec_argv(d, argv);
}

static bool reap(hyt_daemon *d, int options)
{
    if (d->exited)
        return true;
    if (d->pid <= 0)
        return false;
    int st;
    pid_t r;
    while ((r = waitpid(d->pid, &st, options)) < 0 && errno == EINTR)
        ;
    if (r == d->pid) {
        d->exited = true;
        d->status = st;
        return true;
    }
    return false;
}

static int try_connect(const char *sock)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(sock) >= sizeof a.sun_path)
        return -1;
    strcpy(a.sun_path, sock);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int hyt_daemon_wait_ready(hyt_daemon *d, const char *sock, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    for (;;) {
        int fd = try_connect(sock);
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        if (reap(d, WNOHANG)) {
            fprintf(stderr, "harness: hybridd exited (status 0x%x) before %s was ready\n",
                    d->status, sock);
            return -1;
        }
        if (now_ms() >= end) {
            fprintf(stderr, "harness: %s not ready after %d ms\n", sock, timeout_ms);
            return -1;
        }
        sleep_ms(20);
    }
}

int hyt_daemon_start(hyt_daemon *d, const char *config, const char *const *extra)
{
    if (hyt_daemon_init(d, config) != 0 || hyt_daemon_exec(d, extra) != 0)
        return -1;
    if (hyt_daemon_wait_ready(d, d->sock, 60000) != 0) {
        hyt_daemon_dump_log(d);
        return -1;
    }
    return 0;
}

int hyt_daemon_wait_exit(hyt_daemon *d, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    for (;;) {
        if (reap(d, WNOHANG))
            return 0;
        if (d->pid <= 0 || now_ms() >= end)
            return -1;
        sleep_ms(10);
    }
}

int hyt_daemon_exit_code(const hyt_daemon *d)
{
    if (!d->exited || !WIFEXITED(d->status))
        return -1;
    return WEXITSTATUS(d->status);
}

int hyt_daemon_signal(const hyt_daemon *d, int sig)
{
    if (d->pid <= 0 || d->exited)
        return -1;
    return kill(d->pid, sig);
}

int hyt_daemon_stop(hyt_daemon *d, int timeout_ms)
{
    if (d->pid <= 0)
        return -1;
    if (!d->exited)
        kill(d->pid, SIGTERM);
    if (hyt_daemon_wait_exit(d, timeout_ms) != 0) {
        fprintf(stderr, "harness: hybridd %d did not exit %d ms after SIGTERM; killing it\n",
                (int)d->pid, timeout_ms);
        kill(d->pid, SIGKILL);
        hyt_daemon_wait_exit(d, HYT_WAIT_MS);
        hyt_daemon_dump_log(d);
        return -1;
    }
    if (!WIFEXITED(d->status)) {
        fprintf(stderr, "harness: hybridd died by signal %d\n",
                WIFSIGNALED(d->status) ? WTERMSIG(d->status) : -1);
        hyt_daemon_dump_log(d);
        return -1;
    }
    return WEXITSTATUS(d->status);
}

/* gcc's UBSan, when linked beside ASan, ignores UBSAN_OPTIONS=log_path and reports on stderr
 * only, i.e. in the daemon's log; a report as the daemon exits in a suite's .fini would then
 * fail nothing. scripts/sanitize.sh names a directory in HYBRIDD_SANITIZER_REPORTS: a log that
 * holds a sanitizer report is kept there, and the script fails on it. */
static void keep_sanitizer_log(const hyt_daemon *d)
{
    const char *dir = getenv("HYBRIDD_SANITIZER_REPORTS");
    if (!dir || !dir[0])
        return;
    FILE *f = fopen(d->log, "r");
    if (!f)
        return;
    char line[1024];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, "runtime error:") || strstr(line, "Sanitizer");
    if (found) {
        char path[512];
        snprintf(path, sizeof path, "%s/ubsan.hybridd-log.%d", dir, (int)d->pid);
        FILE *out = fopen(path, "w");
        if (out) {
            rewind(f);
            size_t n;
            char buf[4096];
            while ((n = fread(buf, 1, sizeof buf, f)) > 0)
                fwrite(buf, 1, n, out);
            fclose(out);
        }
    }
    fclose(f);
}

void hyt_daemon_cleanup(hyt_daemon *d)
{
    if (getenv("HYT_SHOW_LOG"))
        hyt_daemon_dump_log(d);
    if (d->pid > 0 && !d->exited) {
        kill(d->pid, SIGKILL);
        hyt_daemon_wait_exit(d, HYT_WAIT_MS);
    }
    if (d->dir[0]) {
        char path[160];
        keep_sanitizer_log(d);
        unlink(d->conf);
        unlink(d->sock);
        unlink(d->log);
        snprintf(path, sizeof path, "%s.new", d->conf);
        unlink(path);
        snprintf(path, sizeof path, "%s/act.sock", d->dir);
        unlink(path);
        snprintf(path, sizeof path, "%s/other.conf", d->dir);
        unlink(path);
        rmdir(d->dir);
        d->dir[0] = '\0';
    }
}

void hyt_daemon_dump_log(const hyt_daemon *d)
{
    FILE *f = fopen(d->log, "r");
    if (!f)
        return;
    char buf[4096];
    size_t n;
    fprintf(stderr, "---- hybridd log (%s) ----\n", d->log);
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, stderr);
    fprintf(stderr, "---- end of log ----\n");
    fclose(f);
}

/* ---- the client ---- */

hyt_client *hyt_connect(const char *sock)
{
    hyt_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (hy_client_connect(sock, &c->cl, NULL, &c->err) != 0) {
        free(c);
        return NULL;
    }
    c->fd = hy_client_fd(c->cl);
    return c;
}

void hyt_close(hyt_client *c)
{
    if (!c)
        return;
    for (unsigned i = 0; i < c->njobs; i++) {
        free(c->jobs[i]->rows);
        free(c->jobs[i]->array);
        c->jobs[i]->rows = NULL;
        c->jobs[i]->array = NULL;
    }
    hy_client_close(c->cl);
    free(c);
}

uint64_t hyt_next_request(hyt_client *c)
{
    return hy_client_next_request(c->cl);
}

/* The tests check return values against 0 and negative codes: a daemon that closed while
 * we sent reads as the failed send it is (what it left is for hyt_recv). */
static int sent(hyt_client *c, int rc)
{
    return rc == HY_CLIENT_EOF ? (c->err.code = HY_ESYS) : rc;
}

int hyt_send(hyt_client *c, const hy_msg *m, const int *fds, unsigned nfds)
{
    return sent(c, hy_client_send(c->cl, m, fds, nfds, &c->err));
}

int hyt_send_raw(hyt_client *c, const void *bytes, size_t n)
{
    return sent(c, hy_client_send_raw(c->cl, bytes, n, &c->err));
}

int hyt_send_frame(hyt_client *c, const void *frame, size_t n, const int *fds, unsigned nfds)
{
    hy_frame_header h;
    int rc = hy_frame_header_decode(frame, n, UINT32_MAX, &h, &c->err);
    if (rc)
        return rc < 0 ? rc : HY_EINVAL;
    hy_iov part = {(const uint8_t *)frame + HY_IPC_HEADER, n - HY_IPC_HEADER};
    return sent(c, hy_client_send_frame(c->cl, h, &part, 1, fds, nfds, &c->err));
}

int hyt_encode(hyt_client *c, const hy_msg *m, uint8_t *buf, size_t cap, size_t *len)
{
    hy_iov bulk;
    size_t small;
    if (cap < HY_IPC_HEADER)
        return HY_ELIMIT;
    int rc = hy_msg_encode(m, buf, cap, &small, &bulk, hy_client_max_payload(c->cl), &c->err);
    if (rc)
        return rc;
    if (bulk.len) {
        if (small + bulk.len > cap)
            return HY_ELIMIT;
        memcpy(buf + small, bulk.base, bulk.len);
    }
    *len = small + bulk.len;
    return 0;
}

/* ---- job tracking ---- */

static hyt_job *job_by_id(hyt_client *c, uint64_t id)
{
    for (unsigned i = 0; i < c->njobs; i++)
        if (c->jobs[i]->accepted && c->jobs[i]->job_id == id)
            return c->jobs[i];
    return NULL;
}

static hyt_job *job_by_request(hyt_client *c, uint64_t request, bool unaccepted_only)
{
    for (unsigned i = 0; i < c->njobs; i++)
        if (c->jobs[i]->request == request && !c->jobs[i]->done &&
            (!unaccepted_only || !c->jobs[i]->accepted))
            return c->jobs[i];
    return NULL;
}

static bool was_finished(const hyt_client *c, uint64_t id)
{
    unsigned n = c->nfinished < 256 ? c->nfinished : 256;
    for (unsigned i = 0; i < n; i++)
        if (c->finished_ids[i] == id)
            return true;
    return false;
}

static void untrack(hyt_client *c, hyt_job *j)
{
    for (unsigned i = 0; i < c->njobs; i++)
        if (c->jobs[i] == j) {
            c->jobs[i] = c->jobs[--c->njobs];
            return;
        }
}

static void finish(hyt_client *c, hyt_job *j)
{
    j->done = true;
    if (j->job_id)
        c->finished_ids[c->nfinished++ % 256] = j->job_id;
    untrack(c, j);
}

static void track(hyt_client *c, const hy_msg *m)
{
    hyt_job *j;
    switch (m->type) {
    case HY_MSG_ACCEPTED:
        j = job_by_request(c, m->request, true);
        if (j) {
            j->accepted = true;
            j->job_id = m->u.accepted.job_id;
            j->queue_position = m->u.accepted.queue_position;
            j->plan = m->u.accepted;
        }
        break;
    case HY_MSG_PROGRESS:
        j = job_by_id(c, m->u.progress.job_id);
        if (j) {
            j->progress++;
            if (m->u.progress.total == 0 || m->u.progress.done > m->u.progress.total)
                j->progress_bad = true;
            if (m->request != j->request)
                c->bad_echo++;
        }
        break;
    case HY_MSG_RESULT: {
        const hy_msg_result *r = &m->u.result;
        j = job_by_id(c, r->job_id);
        if (!j) {
            if (was_finished(c, r->job_id))
                c->dup_finals++;
            else
                c->stray_finals++;
            break;
        }
        if (m->request != j->request)
            c->bad_echo++;
        j->code = 0;
        j->kind = r->job;
        j->nrows = r->nrows;
        j->rows = malloc(sizeof(hy_result_row) * (r->nrows ? r->nrows : 1));
        if (j->rows)
            memcpy(j->rows, r->rows_in, sizeof(hy_result_row) * r->nrows);
        j->array_bytes = r->array_bytes;
        if (r->array_bytes) {
            j->array = malloc(r->array_bytes);
            if (j->array)
                memcpy(j->array, r->array, r->array_bytes);
        }
        finish(c, j);
        break;
    }
    case HY_MSG_ERROR: {
        const hy_msg_error *e = &m->u.error;
        if (e->job_id != 0) {
            j = job_by_id(c, e->job_id);
            if (!j) {
                /* An ERROR about a job that is not ours to track: CANCEL of an unknown id
                 * answers with the id asked about, and a request id of the CANCEL. */
                if (was_finished(c, e->job_id) && e->code != HY_EINVAL)
                    c->dup_finals++;
                break;
            }
            if (m->request != j->request) {
                /* The answer to something else about this job (a CANCEL's EINVAL). */
                break;
            }
        } else {
            j = job_by_request(c, m->request, true);
            if (!j)
                break;
        }
        j->code = e->code;
        j->error_job_id = e->job_id;
        snprintf(j->message, sizeof j->message, "%.*s", (int)e->message.len,
                 e->message.p ? e->message.p : "");
        finish(c, j);
        break;
    }
    default:
        break;
    }
}

int hyt_recv(hyt_client *c, int timeout_ms)
{
    int rc = hy_client_recv(c->cl, timeout_ms, &c->msg, &c->err);
    if (rc == 0)
        track(c, c->msg);
    return rc;
}

int hyt_recv_reply(hyt_client *c, uint16_t type, uint64_t request, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    for (;;) {
        int left = (int)(end - now_ms());
        if (left < 0)
            left = 0;
        int rc = hyt_recv(c, left);
        if (rc)
            return rc;
        if (c->msg->request == request &&
            (c->msg->type == type || c->msg->type == HY_MSG_ERROR))
            return 0;
        if (left == 0)
            return HYT_TIMEOUT;
    }
}

int hyt_hello(hyt_client *c, uint32_t features)
{
    hy_msg_hello h = {.min_version = 1, .max_version = 1, .features = features,
                      .name = {"hybridd-tests", 13}};
    const hy_msg *r;
    int rc = hy_client_hello(c->cl, &h, HYT_WAIT_MS, &r, &c->err);
    if (r)
        c->msg = r;
    if (rc == HY_CLIENT_ERROR)
        return r->u.error.code < 0 ? r->u.error.code : HY_EINTERNAL;
    if (rc)
        return rc;
    c->welcome = *hy_client_welcome(c->cl);
    snprintf(c->welcome_server, sizeof c->welcome_server, "%.*s",
             (int)c->welcome.server.len, c->welcome.server.p ? c->welcome.server.p : "");
    c->welcome.server.p = c->welcome_server;
    c->welcomed = true;
    return 0;
}

hyt_client *hyt_connect_hello(const char *sock)
{
    hyt_client *c = hyt_connect(sock);
    if (!c) {
        fprintf(stderr, "harness: cannot connect to %s\n", sock);
        return NULL;
    }
    int rc = hyt_hello(c, HY_FEATURE_MEMFD | HY_FEATURE_PROGRESS);
    if (rc) {
        fprintf(stderr, "harness: HELLO on %s failed: %d %s\n", sock, rc, c->err.msg);
        hyt_close(c);
        return NULL;
    }
    return c;
}

int hyt_ping(hyt_client *c, uint64_t nonce)
{
    hy_msg m = {.type = HY_MSG_PING, .request = hyt_next_request(c)};
    m.u.ping.nonce = nonce;
    int rc = hyt_send(c, &m, NULL, 0);
    if (rc)
        return rc;
    rc = hyt_recv_reply(c, HY_MSG_PONG, m.request, HYT_WAIT_MS);
    if (rc)
        return rc;
    if (c->msg->type != HY_MSG_PONG)
        return c->msg->type == HY_MSG_ERROR ? c->msg->u.error.code : HY_EPROTO;
    return c->msg->u.ping.nonce == nonce ? 0 : HY_EPROTO;
}

int hyt_status(hyt_client *c, hy_msg_status_reply *out)
{
    hy_msg m = {.type = HY_MSG_STATUS, .request = hyt_next_request(c)};
    int rc = hyt_send(c, &m, NULL, 0);
    if (rc)
        return rc;
    rc = hyt_recv_reply(c, HY_MSG_STATUS_REPLY, m.request, HYT_WAIT_MS);
    if (rc)
        return rc;
    if (c->msg->type != HY_MSG_STATUS_REPLY)
        return c->msg->type == HY_MSG_ERROR ? c->msg->u.error.code : HY_EPROTO;
    *out = c->msg->u.status;
    out->version.p = NULL; /* points into the reader: not kept */
    return 0;
}

int hyt_devices(hyt_client *c, hy_msg_devices_reply *out)
{
    hy_msg m = {.type = HY_MSG_DEVICES, .request = hyt_next_request(c)};
    int rc = hyt_send(c, &m, NULL, 0);
    if (rc)
        return rc;
    rc = hyt_recv_reply(c, HY_MSG_DEVICES_REPLY, m.request, HYT_WAIT_MS);
    if (rc)
        return rc;
    if (c->msg->type != HY_MSG_DEVICES_REPLY)
        return c->msg->type == HY_MSG_ERROR ? c->msg->u.error.code : HY_EPROTO;
    *out = c->msg->u.devices;
    out->devices = out->devices_in;
    return 0;
}

/* ---- jobs ---- */

int hyt_submit(hyt_client *c, const hy_msg_submit *s, const int *fds, unsigned nfds,
               hyt_job *j)
{
    memset(j, 0, sizeof *j);
    hy_msg *m = calloc(1, sizeof *m);
    if (!m)
        return HY_ENOMEM;
    m->type = HY_MSG_SUBMIT;
    m->request = hyt_next_request(c);
    m->u.submit = *s;
    j->request = m->request;
    if (c->njobs >= sizeof c->jobs / sizeof c->jobs[0]) {
        free(m);
        return hy_error_set(&c->err, HY_ELIMIT, "harness: too many jobs tracked");
    }
    c->jobs[c->njobs++] = j;
    int rc = hyt_send(c, m, fds, nfds);
    free(m);
    if (rc)
        untrack(c, j);
    return rc;
}

int hyt_wait_accepted(hyt_client *c, hyt_job *j, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    while (!j->accepted && !j->done) {
        int left = (int)(end - now_ms());
        if (left <= 0)
            return HYT_TIMEOUT;
        int rc = hyt_recv(c, left);
        if (rc)
            return rc;
    }
    return 0;
}

int hyt_wait_final(hyt_client *c, hyt_job *j, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    while (!j->done) {
        int left = (int)(end - now_ms());
        if (left <= 0)
            return HYT_TIMEOUT;
        int rc = hyt_recv(c, left);
        if (rc)
            return rc;
    }
    return 0;
}

int hyt_run(hyt_client *c, const hy_msg_submit *s, const int *fds, unsigned nfds, hyt_job *j)
{
    int rc = hyt_submit(c, s, fds, nfds, j);
    if (rc)
        return rc;
    return hyt_wait_final(c, j, HYT_WAIT_MS);
}

int hyt_cancel(hyt_client *c, uint64_t job_id, uint64_t *request)
{
    hy_msg m = {.type = HY_MSG_CANCEL, .request = hyt_next_request(c)};
    m.u.cancel.job_id = job_id;
    if (request)
        *request = m.request;
    return hyt_send(c, &m, NULL, 0);
}

void hyt_job_release(hyt_client *c, hyt_job *j)
{
    if (c)
        untrack(c, j);
    free(j->rows);
    free(j->array);
    j->rows = NULL;
    j->array = NULL;
}

/* ---- submits ---- */

hy_msg_submit hyt_pi(uint16_t backend, uint32_t threads, uint64_t n, uint64_t seed)
{
    hy_msg_submit s = {0};
    s.job = HY_JOB_PI;
    s.backend = backend;
    s.threads = threads;
    s.repeat = 1;
    s.array = HY_ARRAY_NONE;
    s.n = n;
    s.seed = seed;
    return s;
}

hy_msg_submit hyt_sort_inline(uint16_t backend, uint32_t threads, int dtype, const void *data,
                              uint64_t n)
{
    hy_msg_submit s = {0};
    s.job = HY_JOB_SORT;
    s.backend = backend;
    s.threads = threads;
    s.repeat = 1;
    s.dtype = (uint16_t)dtype;
    s.array = HY_ARRAY_INLINE;
    s.n = n;
    s.inline_data = data;
    s.inline_bytes = (size_t)n * hy_dtype_size(dtype);
    return s;
}

hy_msg_submit hyt_sort_memfd(uint16_t backend, uint32_t threads, int dtype, uint64_t n)
{
    hy_msg_submit s = {0};
    s.job = HY_JOB_SORT;
    s.backend = backend;
    s.threads = threads;
    s.repeat = 1;
    s.dtype = (uint16_t)dtype;
    s.array = HY_ARRAY_MEMFD;
    s.n = n;
    return s;
}

/* ---- data ---- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void hyt_fill(int dtype, void *data, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        uint64_t r = splitmix(&s);
        /* A small range half of the time, so duplicates are many. */
        int64_t v = (r & 1) ? (int64_t)(r >> 8) - (int64_t)(1ull << 55)
                            : (int64_t)((r >> 8) % 64) - 32;
        unsigned special = (unsigned)((r >> 1) % 32);
        switch (dtype) {
        case HY_DT_I32: ((int32_t *)data)[i] = (int32_t)v; break;
        case HY_DT_U32: ((uint32_t *)data)[i] = (uint32_t)v; break;
        case HY_DT_I64: ((int64_t *)data)[i] = v; break;
        case HY_DT_U64: ((uint64_t *)data)[i] = (uint64_t)v; break;
        case HY_DT_F32:
        case HY_DT_F64: {
            double d = (r & 1) ? (double)v / 1e6 : (double)v / 4.0;
            if (special == 0)
                d = NAN;
            else if (special == 1)
                d = -0.0;
            else if (special == 2)
                d = 0.0;
            else if (special == 3)
                d = (r & 4) ? INFINITY : -INFINITY;
            if (dtype == HY_DT_F32)
                ((float *)data)[i] = (float)d;
            else
                ((double *)data)[i] = d;
            break;
        }
        default: break;
        }
    }
}

/* numpy's order: NaNs last; and -0.0 before +0.0 (by the sign bit). */
static int cmp_f64(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    bool nx = isnan(x), ny = isnan(y);
    if (nx || ny)
        return (int)nx - (int)ny;
    if (x < y)
        return -1;
    if (x > y)
        return 1;
    return (int)(signbit(y) != 0) - (int)(signbit(x) != 0);
}

static int cmp_f32(const void *a, const void *b)
{
    double x = *(const float *)a, y = *(const float *)b;
    return cmp_f64(&x, &y);
}

#define CMP_INT(name, T)                                                                    \
    static int name(const void *a, const void *b)                                           \
    {                                                                                       \
        T x = *(const T *)a, y = *(const T *)b;                                             \
        return (x > y) - (x < y);                                                           \
    }
CMP_INT(cmp_i32, int32_t)
CMP_INT(cmp_u32, uint32_t)
CMP_INT(cmp_i64, int64_t)
CMP_INT(cmp_u64, uint64_t)

void hyt_sort_ref(int dtype, void *data, size_t n)
{
    int (*cmp)(const void *, const void *) = NULL;
    switch (dtype) {
    case HY_DT_I32: cmp = cmp_i32; break;
    case HY_DT_U32: cmp = cmp_u32; break;
    case HY_DT_I64: cmp = cmp_i64; break;
    case HY_DT_U64: cmp = cmp_u64; break;
    case HY_DT_F32: cmp = cmp_f32; break;
    case HY_DT_F64: cmp = cmp_f64; break;
    default: return;
    }
    qsort(data, n, hy_dtype_size(dtype), cmp);
}

uint64_t hyt_pi_ref(uint64_t seed, uint64_t n)
{
    static struct {
        uint64_t seed, n, hits;
        bool have;
    } cache[8];
    static unsigned next;
    for (unsigned i = 0; i < 8; i++)
        if (cache[i].have && cache[i].seed == seed && cache[i].n == n)
            return cache[i].hits;
    uint64_t hits = hy_host_pi_hits_reference(seed, 0, n);
    cache[next % 8].seed = seed;
    cache[next % 8].n = n;
    cache[next % 8].hits = hits;
    cache[next % 8].have = true;
    next++;
    return hits;
}

int hyt_wait_idle(hyt_client *c, hy_msg_status_reply *out, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    for (;;) {
        int rc = hyt_status(c, out);
        if (rc)
            return rc;
        if (out->jobs_running == 0 && out->jobs_queued == 0)
            return 0;
        if (now_ms() >= end)
            return -1;
        sleep_ms(20);
    }
}
