/* tests/daemon: faults from outside — a client killed mid-job, one that sends a byte every
 * 100 ms, one that never reads, memfds with the wrong seals, an OpenCL build that fails or a
 * device that is missing at start, SIGTERM under load, and peers of another uid — each
 * followed by a check that a good client is still served. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../cl/pocl_env.h"
#include "suite.h"

TestSuite(daemon_faults, .fini = suite_stop, .timeout = 120);

/* ---- helpers ---- */

static void sleep_ms(int ms)
{
    usleep((useconds_t)ms * 1000u);
}

/* A fresh client gets a PONG and a correct pi. */
static void expect_served(const char *after)
{
    hyt_client *c = hyt_connect_hello(D.sock);
    if (!c)
        hyt_daemon_dump_log(&D);
    cr_assert_not_null(c, "no fresh client served after %s", after);
    cr_expect_eq(hyt_ping(c, 0xfa17), 0, "no PONG after %s", after);
    hy_msg_submit s = hyt_pi(HY_BACKEND_NATIVE, 2, 200000, 41);
    hyt_job j;
    suite_run_ok(c, &s, NULL, 0, &j, after);
    suite_check_pi_row(&j.rows[0], HY_BACKEND_NATIVE, 2, 41, 200000, 1, after);
    hyt_job_release(c, &j);
    suite_client_clean(c);
    hyt_close(c);
}

/* Whether the daemon's log holds `what` (the log is small: read it whole). */
static bool log_has(const char *what)
{
    FILE *f = fopen(D.log, "r");
    if (!f)
        return false;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, what) != NULL;
}

/* Asks STATUS every 20 ms until `done(st)` holds; the last reply in *st. */
static bool status_until(hyt_client *c, hy_msg_status_reply *st,
                         bool (*done)(const hy_msg_status_reply *), int ms)
{
    for (int t = 0; t <= ms; t += 20) {
        cr_assert_eq(hyt_status(c, st), 0, "STATUS: %s", c->err.msg);
        if (done(st))
            return true;
        sleep_ms(20);
    }
    return false;
}

/* The config text of *k with `extra` appended (extra groups the harness does not write). */
static void conf_with(const hyt_conf *k, const char *extra, char *buf, size_t cap)
{
    hyt_conf_text(k, buf, cap);
    size_t len = strlen(buf);
    snprintf(buf + len, cap - len, "%s", extra);
}

/* ---- a client killed mid-job ---- */

static bool one_running(const hy_msg_status_reply *st)
{
    return st->jobs_running == 1;
}

static bool one_cancelled(const hy_msg_status_reply *st)
{
    return st->jobs_running == 0 && st->jobs_queued == 0 && st->jobs_cancelled == 1;
}

Test(daemon_faults, a_client_killed_mid_job_has_its_job_cancelled)
{
    suite_start_default();
    hyt_client *watch = suite_client();
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* The child: submit a job of a few seconds, then wait to be killed. */
        hyt_client *c = hyt_connect_hello(D.sock);
        if (!c)
            _exit(2);
        hy_msg_submit s = hyt_pi(HY_BACKEND_NATIVE, 2, 5000000000ull, 3);
        hyt_job j;
        if (hyt_submit(c, &s, NULL, 0, &j) != 0)
            _exit(3);
        for (;;)
            pause();
    }
    hy_msg_status_reply st;
    bool running = status_until(watch, &st, one_running, HYT_WAIT_MS);
    int wst = 0;
    pid_t gone = waitpid(pid, &wst, WNOHANG);
    kill(pid, SIGKILL);
    if (gone == 0)
        waitpid(pid, &wst, 0);
    cr_assert_eq(gone, 0, "the child client exited on its own (status 0x%x)", wst);
    cr_assert(running, "the child's job never ran (running %llu, queued %llu)",
              (unsigned long long)st.jobs_running, (unsigned long long)st.jobs_queued);
    cr_expect_eq(st.jobs_cancelled, 0);

    bool cancelled = status_until(watch, &st, one_cancelled, HYT_WAIT_MS);
    if (!cancelled)
        hyt_daemon_dump_log(&D);
    cr_assert(cancelled, "after SIGKILL of its client: running %llu, queued %llu, cancelled "
              "%llu, done %llu (want 0, 0, 1)", (unsigned long long)st.jobs_running,
              (unsigned long long)st.jobs_queued, (unsigned long long)st.jobs_cancelled,
              (unsigned long long)st.jobs_done);
    cr_expect_eq(st.jobs_done, 0, "the killed client's job was finished, not cancelled");
    cr_expect(log_has("its client went away"), "the log does not say why the job was cancelled");
    cr_expect_eq(hyt_ping(watch, 7), 0, "the watching client was hurt");
    hyt_close(watch);
    expect_served("a client killed mid-job");
}

/* ---- a client that sends one byte every 100 ms ---- */

Test(daemon_faults, a_client_sending_one_byte_every_100ms_holds_up_nobody)
{
    suite_start_default();
    hyt_client *slow = suite_client();
    hyt_client *busy = suite_client();
    hy_msg m = {.type = HY_MSG_PING, .request = 77};
    m.u.ping.nonce = 0x5107;
    uint8_t frame[64];
    size_t len;
    cr_assert_eq(hyt_encode(slow, &m, frame, sizeof frame, &len), 0, "%s", slow->err.msg);
    cr_assert_eq(len, 40, "a PING frame is %zu bytes, want 40", len);
    unsigned served = 0;
    for (size_t i = 0; i < len; i++) {
        cr_assert_eq(hyt_send_raw(slow, frame + i, 1), 0, "byte %zu: %s", i, slow->err.msg);
        if (i + 1 < len) {
            /* Mid-frame: nothing for the slow one yet, and the other client is served. */
            cr_expect_eq(hyt_recv(slow, 0), HYT_TIMEOUT, "an answer after %zu of %zu bytes",
                         i + 1, len);
            if (i % 5 == 2) {
                hy_msg_submit s = hyt_pi(HY_BACKEND_NATIVE, 2, 1000000, 100 + i);
                hyt_job j;
                suite_run_ok(busy, &s, NULL, 0, &j, "a job beside a slow sender");
                suite_check_pi_row(&j.rows[0], HY_BACKEND_NATIVE, 2, 100 + i, 1000000, 1,
                                   "a job beside a slow sender");
                hyt_job_release(busy, &j);
                cr_expect_eq(hyt_ping(busy, i), 0);
                served++;
            }
        }
        sleep_ms(100);
    }
    cr_expect_geq(served, 7, "%u jobs served while the slow frame came in", served);
    int rc = hyt_recv_reply(slow, HY_MSG_PONG, 77, HYT_WAIT_MS);
    cr_assert_eq(rc, 0, "no PONG for the slow frame (%d %s)", rc, slow->err.msg);
    cr_assert_eq(slow->msg->type, HY_MSG_PONG, "the slow PING got type %u", slow->msg->type);
    cr_expect_eq(slow->msg->u.ping.nonce, 0x5107);
    suite_client_clean(busy);
    hyt_close(busy);
    hyt_close(slow);
    expect_served("a slow sender");
}

/* ---- a client that never reads its results ---- */

Test(daemon_faults, a_client_that_never_reads_is_dropped_and_others_are_served)
{
    hyt_conf k = hyt_conf_default();
    k.jobs_per_client = 32;
    k.queued_jobs = 64;
    suite_start(&k);
    hyt_client *by = suite_client();
    hyt_client *deaf = suite_client();
    cr_assert_eq(deaf->welcome.max_payload, 65536);
    /* 15000 i32 = 60000 bytes: each RESULT carries almost a whole frame back. The daemon
     * keeps at most 4 frames + 64 KiB (320 KiB) queued for a client; the socket holds a few
     * hundred KiB more: 24 RESULTs (1.4 MB) are well past both. */
    enum { N = 15000, JOBS = 24 };
    int32_t *data = malloc(N * sizeof *data);
    cr_assert_not_null(data);
    hyt_fill(HY_DT_I32, data, N, 5);
    static hyt_job jobs[JOBS];
    unsigned sent = 0;
    for (; sent < JOBS; sent++) {
        hy_msg_submit s = hyt_sort_inline(HY_BACKEND_NATIVE, 2, HY_DT_I32, data, N);
        if (hyt_submit(deaf, &s, NULL, 0, &jobs[sent]) != 0)
            break; /* already dropped: the daemon closed while we were still sending */
    }
    cr_assert_geq(sent, 8, "only %u SUBMITs went out before the daemon closed", sent);
    /* The daemon drops it once its answers pile up; others are served all along. */
    bool dropped = false;
    for (int t = 0; t < HYT_WAIT_MS && !dropped; t += 50) {
        cr_assert_eq(hyt_ping(by, (uint64_t)t), 0, "a bystander was not served while another "
                     "client did not read");
        dropped = log_has("dropped");
        if (!dropped)
            sleep_ms(50);
    }
    if (!dropped)
        hyt_daemon_dump_log(&D);
    cr_assert(dropped, "the daemon did not drop a client that never reads (log has no "
              "\"dropped\")");
    /* Now the deaf client reads: what was in the socket, then the end of the stream. */
    unsigned got = 0, results = 0;
    int rc;
    while ((rc = hyt_recv(deaf, HYT_WAIT_MS)) == 0) {
        got++;
        results += deaf->msg->type == HY_MSG_RESULT;
    }
    cr_expect_eq(rc, HYT_EOF, "after %u messages the dropped client saw %d (%s), not the end "
                 "of its stream", got, rc, deaf->err.msg);
    cr_expect_gt(got, 0, "no data reached the client before it was dropped");
    cr_expect_lt(results, sent, "all %u RESULTs arrived: the client was not dropped", sent);
    suite_client_clean(deaf);
    hyt_close(deaf);
    hy_msg_status_reply st;
    cr_expect_eq(hyt_wait_idle(by, &st, HYT_WAIT_MS), 0, "jobs of the dropped client linger");
    free(data);
    hy_msg_submit s = hyt_sort_inline(HY_BACKEND_NATIVE, 2, HY_DT_I32,
                                      (int32_t[]){3, 1, 2}, 3);
    hyt_job j;
    suite_run_ok(by, &s, NULL, 0, &j, "a small sort after the drop");
    cr_expect_eq(j.array_bytes, 12);
    hyt_job_release(by, &j);
    hyt_close(by);
    expect_served("a client that never reads");
}

/* ---- memfds and their seals ---- */

static void memfd_refused(hyt_client *c, int fd, size_t n, const char *what)
{
    hy_msg_submit s = hyt_sort_memfd(HY_BACKEND_NATIVE, 2, HY_DT_U32, n);
    suite_run_refused(c, &s, &fd, 1, HY_EINVAL, 0, what);
}

/* Whether the daemon has a memfd called `name` mapped now: its line in /proc/PID/maps reads
 * "/memfd:NAME (deleted)". */
static bool daemon_maps(const char *name)
{
    char path[64], line[512], want[96];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)D.pid);
    snprintf(want, sizeof want, "/memfd:%s ", name);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, want) != NULL;
    fclose(f);
    return found;
}

/* Waits (bounded) until the daemon no longer maps any of names[0..n): a mapping given up for
 * room, or its client gone, is unmapped by its executor after the answer that went out. */
static bool unmapped_soon(const char *const *names, int n)
{
    for (int t = 0; t < HYT_WAIT_MS; t += 20) {
        bool gone = true;
        for (int i = 0; i < n; i++)
            gone = gone && !daemon_maps(names[i]);
        if (gone)
            return true;
        sleep_ms(20);
    }
    return false;
}

/* A memfd sort on `c`, filled from `seed`; checks the array comes back sorted. */
static void memfd_sort_ok(hyt_client *c, const char *name, uint64_t seed, int *fd_out,
                          void **map_out)
{
    const size_t n = 50000, bytes = n * 8;
    hy_error err = {0};
    int fd = *fd_out;
    void *map = *map_out;
    if (fd < 0) {
        cr_assert_eq(hy_memfd_create(name, bytes, &fd, &map, &err), 0, "%s", err.msg);
        cr_assert_eq(hy_memfd_seal(fd, &err), 0, "%s", err.msg);
    }
    hyt_fill(HY_DT_F64, map, n, seed);
    double *want = malloc(bytes);
    cr_assert_not_null(want);
    memcpy(want, map, bytes);
    hyt_sort_ref(HY_DT_F64, want, n);
    hy_msg_submit s = hyt_sort_memfd(HY_BACKEND_NATIVE, 2, HY_DT_F64, n);
    hyt_job j;
    suite_run_ok(c, &s, &fd, 1, &j, name);
    cr_expect_eq(memcmp(map, want, bytes), 0, "%s (seed %llu) did not come back sorted", name,
                 (unsigned long long)seed);
    hyt_job_release(c, &j);
    free(want);
    *fd_out = fd;
    *map_out = map;
}

/* The protocol's promise, and the one feature that relaxes it: a memfd is unmapped before its
 * answer, unless the client asked for KEEP_MAP; then the daemon keeps it for that client's
 * next job on it (which must see the client's new contents, and a job on another memfd must
 * never get it), keeps four at most (the least recently used goes first), and lets them go
 * when the client goes away. */
Test(daemon_faults, memfd_mappings_are_kept_only_for_clients_that_ask)
{
    suite_start_default();
    hyt_client *plain = suite_client(); /* MEMFD | PROGRESS */
    int fd0 = -1, fd[5] = {-1, -1, -1, -1, -1};
    void *m0 = NULL, *m[5] = {NULL};
    const char *names[5] = {"hyt-keep-a", "hyt-keep-b", "hyt-keep-c", "hyt-keep-d",
                            "hyt-keep-e"};
    memfd_sort_ok(plain, "hyt-nokeep", 1, &fd0, &m0);
    cr_expect(!daemon_maps("hyt-nokeep"), "a memfd still mapped after its answer");

    hyt_client *k = hyt_connect(D.sock);
    cr_assert_not_null(k);
    cr_assert_eq(hyt_hello(k, HY_FEATURE_MEMFD | HY_FEATURE_KEEP_MAP), 0, "%s", k->err.msg);
    cr_assert(k->welcome.features & HY_FEATURE_KEEP_MAP, "KEEP_MAP not granted: 0x%x",
              k->welcome.features);
    memfd_sort_ok(k, names[0], 2, &fd[0], &m[0]);
    cr_expect(daemon_maps(names[0]), "the mapping was not kept");
    memfd_sort_ok(k, names[1], 3, &fd[1], &m[1]);
    memfd_sort_ok(k, names[0], 4, &fd[0], &m[0]); /* new contents, through the kept mapping */
    memfd_sort_ok(k, names[1], 5, &fd[1], &m[1]);
    memfd_sort_ok(plain, "hyt-nokeep", 6, &fd0, &m0); /* another client's, same executor */
    cr_expect(!daemon_maps("hyt-nokeep"));
    cr_expect(daemon_maps(names[0]) && daemon_maps(names[1]), "two kept mappings expected");
    /* Three more memfds: five in all, so the least recently used one (a) is given up. */
    for (int i = 2; i < 5; i++)
        memfd_sort_ok(k, names[i], 7 + (uint64_t)i, &fd[i], &m[i]);
    cr_expect(unmapped_soon(names, 1), "a fifth kept mapping: the oldest one stays mapped");
    for (int i = 1; i < 5; i++)
        cr_expect(daemon_maps(names[i]), "%s was not kept", names[i]);
    memfd_sort_ok(k, names[0], 20, &fd[0], &m[0]); /* mapped again from its fd: still right */
    hyt_close(k);
    cr_expect(unmapped_soon(names, 5), "kept mappings outlived their client");
    hy_memfd_unmap(m0, 50000 * 8);
    close(fd0);
    for (int i = 0; i < 5; i++) {
        hy_memfd_unmap(m[i], 50000 * 8);
        close(fd[i]);
    }
    hyt_close(plain);
    expect_served("kept memfd mappings");
}

Test(daemon_faults, memfd_seals_decide_what_is_mapped)
{
    suite_start_default();
    hyt_client *c = suite_client();
    const size_t n = 100000, bytes = n * 4;
    hy_error err = {0};
    int fd;
    void *map;

    /* Unsealed: refused at SUBMIT; the client may shrink it, the daemon never mapped it. */
    cr_assert_eq(hy_memfd_create("flt-unsealed", bytes, &fd, &map, &err), 0, "%s", err.msg);
    hyt_fill(HY_DT_U32, map, n, 1);
    memfd_refused(c, fd, n, "an unsealed memfd");
    hy_memfd_unmap(map, bytes);
    cr_expect_eq(ftruncate(fd, 4), 0, "shrinking my own unsealed memfd: %s", strerror(errno));
    close(fd);

    /* Sealed (shrink, grow, seal): the client cannot shrink it under the daemon, the job
     * runs and the array comes back sorted. */
    cr_assert_eq(hy_memfd_create("flt-sealed", bytes, &fd, &map, &err), 0, "%s", err.msg);
    hyt_fill(HY_DT_U32, map, n, 2);
    uint32_t *want = malloc(bytes);
    cr_assert_not_null(want);
    memcpy(want, map, bytes);
    hyt_sort_ref(HY_DT_U32, want, n);
    cr_assert_eq(hy_memfd_seal(fd, &err), 0, "%s", err.msg);
    hy_msg_submit s = hyt_sort_memfd(HY_BACKEND_NATIVE, 2, HY_DT_U32, n);
    hyt_job j;
    cr_assert_eq(hyt_submit(c, &s, &fd, 1, &j), 0, "%s", c->err.msg);
    errno = 0;
    cr_expect_eq(ftruncate(fd, 4), -1, "a sealed memfd shrank");
    cr_expect_eq(errno, EPERM, "ftruncate of a sealed memfd: %s, want EPERM", strerror(errno));
    cr_expect_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), -1, "F_SEAL_WRITE added after "
                 "F_SEAL_SEAL");
    cr_assert_eq(hyt_wait_final(c, &j, HYT_WAIT_MS), 0, "sealed memfd: %s", c->err.msg);
    cr_expect_eq(j.code, 0, "sealed memfd sort: %s \"%s\"", suite_code(j.code), j.message);
    cr_expect_eq(memcmp(map, want, bytes), 0, "the sealed memfd did not come back sorted");
    hyt_job_release(c, &j);
    hy_memfd_unmap(map, bytes);
    close(fd);
    free(want);

    /* Sealed, but smaller than n elements. */
    cr_assert_eq(hy_memfd_create("flt-small", bytes - 4, &fd, &map, &err), 0, "%s", err.msg);
    cr_assert_eq(hy_memfd_seal(fd, &err), 0, "%s", err.msg);
    memfd_refused(c, fd, n, "a sealed memfd one element short");
    hy_memfd_unmap(map, bytes - 4);
    close(fd);

    /* Sealed against writing: the sorted array could not go back into it. F_SEAL_WRITE
     * needs no writable mapping left; F_SEAL_FUTURE_WRITE does not. */
    cr_assert_eq(hy_memfd_create("flt-ro", bytes, &fd, &map, &err), 0, "%s", err.msg);
    hy_memfd_unmap(map, bytes);
    cr_assert_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE), 0,
                 "F_SEAL_WRITE: %s", strerror(errno));
    memfd_refused(c, fd, n, "a memfd sealed against writes");
    close(fd);
    cr_assert_eq(hy_memfd_create("flt-fw", bytes, &fd, &map, &err), 0, "%s", err.msg);
    cr_assert_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE), 0,
                 "F_SEAL_FUTURE_WRITE: %s", strerror(errno));
    memfd_refused(c, fd, n, "a memfd sealed against future writes");
    hy_memfd_unmap(map, bytes);
    close(fd);

    suite_client_clean(c);
    hyt_close(c);
    expect_served("memfds with the wrong seals");
}

/* ---- OpenCL broken at start ---- */

/* DEVICES and STATUS agree that no device is usable, and each says why. Returns the count. */
static uint32_t expect_no_usable_device(hyt_client *c, const char *problem_has)
{
    hy_msg_devices_reply *dv = calloc(1, sizeof *dv);
    cr_assert_not_null(dv);
    cr_assert_eq(hyt_devices(c, dv), 0, "DEVICES: %s", c->err.msg);
    for (uint32_t i = 0; i < dv->ndevices; i++) {
        const hy_device_record *r = &dv->devices[i];
        cr_expect(!(r->flags & HY_DEV_USABLE), "device %u is usable", i);
        cr_expect_gt(strlen(r->problem), 0, "unusable device %u says no problem", i);
        cr_expect(strstr(r->problem, problem_has) != NULL,
                  "device %u's problem \"%s\" does not mention \"%s\"", i, r->problem,
                  problem_has);
    }
    hy_msg_status_reply st;
    cr_assert_eq(hyt_status(c, &st), 0);
    cr_expect_eq(st.devices, dv->ndevices);
    cr_expect_eq(st.devices_usable, 0, "STATUS devices_usable %u, want 0", st.devices_usable);
    uint32_t n = dv->ndevices;
    free(dv);
    return n;
}

/* An opencl job on `dev` is refused with EBACKEND whose sentence contains `has`. */
static void expect_opencl_refused(hyt_client *c, uint16_t dev, const char *has)
{
    hy_msg_submit s = hyt_pi(HY_BACKEND_OPENCL, 0, 100000, 1);
    s.device = dev;
    hyt_job j;
    cr_assert_eq(hyt_run(c, &s, NULL, 0, &j), 0, "%s", c->err.msg);
    cr_expect_eq(j.code, HY_EBACKEND, "opencl job on device %u: %s \"%s\", want EBACKEND", dev,
                 suite_code(j.code), j.message);
    cr_expect(!j.accepted);
    cr_expect(strstr(j.message, has) != NULL, "the EBACKEND sentence \"%s\" lacks \"%s\"",
              j.message, has);
    hyt_job_release(c, &j);
}

Test(daemon_faults, an_opencl_build_failure_at_start_leaves_the_cpu_serving)
{
    pocl_cache_for_run();
    cr_assert_eq(setenv("HYBRIDD_TEST_BREAK_OPENCL", "1", 1), 0);
    hyt_conf k = hyt_conf_default();
    k.opencl = true;
    suite_start(&k);
    unsetenv("HYBRIDD_TEST_BREAK_OPENCL");
    hyt_client *c = suite_client(); /* served: the daemon's start is logged */
    uint32_t n = expect_no_usable_device(c, "pi.cl");
    if (n == 0) {
        hyt_close(c);
        suite_skip("no OpenCL device: nothing to fail to build");
    }
    expect_opencl_refused(c, 0, "pi.cl");
    cr_expect(log_has("building pi.cl"), "the log does not report the failed build");
    hyt_close(c);
    expect_served("a failed OpenCL build");
}

/* A device fault in the middle of serving (planted: the daemon's second OpenCL job meets a
 * broken queue) fails that job with a sentence naming the OpenCL error, is logged, and the
 * next job on the same device runs on a rebuilt context with the right answer. */
Test(daemon_faults, an_opencl_fault_fails_one_job_and_the_device_recovers)
{
    pocl_cache_for_run();
    cr_assert_eq(setenv("HYBRIDD_TEST_CL_FAULT", "2", 1), 0);
    hyt_conf k = hyt_conf_default();
    k.opencl = true;
    suite_start(&k);
    unsetenv("HYBRIDD_TEST_CL_FAULT");
    hyt_client *c = suite_client();
    hy_msg_devices_reply *dv = calloc(1, sizeof *dv);
    cr_assert_not_null(dv);
    cr_assert_eq(hyt_devices(c, dv), 0, "DEVICES: %s", c->err.msg);
    bool usable = dv->ndevices > 0 && (dv->devices[0].flags & HY_DEV_USABLE);
    free(dv);
    if (!usable) {
        hyt_close(c);
        suite_skip("no usable OpenCL device 0");
    }
    hy_msg_submit s = hyt_pi(HY_BACKEND_OPENCL, 0, 100000, 8);
    s.device = 0;
    hyt_job j;
    suite_run_ok(c, &s, NULL, 0, &j, "opencl job 1");
    hyt_job_release(c, &j);
    cr_assert_eq(hyt_run(c, &s, NULL, 0, &j), 0, "%s", c->err.msg);
    cr_expect_eq(j.code, HY_EBACKEND, "faulted job ended %s \"%s\"", suite_code(j.code),
                 j.message);
    cr_expect(strstr(j.message, "CL_INVALID_COMMAND_QUEUE"), "sentence: %s", j.message);
    hyt_job_release(c, &j);
    for (int k3 = 0; k3 < 2; k3++) {
        suite_run_ok(c, &s, NULL, 0, &j, "opencl job after the fault");
        suite_check_pi_row(&j.rows[0], HY_BACKEND_OPENCL, 0, 8, 100000, 1, "after the fault");
        hyt_job_release(c, &j);
    }
    cr_expect(log_has("are rebuilt before its next job"), "the log does not report the fault");
    hyt_close(c);
    expect_served("an OpenCL fault");
}

Test(daemon_faults, a_missing_opencl_device_at_start_leaves_the_cpu_serving)
{
    pocl_cache_for_run();
    hyt_conf k = hyt_conf_default();
    char text[2048];
    hyt_conf_text(&k, text, sizeof text); /* opencl = { enabled = false; }: replace it */
    const char *off = "opencl = { enabled = false; };";
    char *at = strstr(text, off);
    cr_assert_not_null(at);
    char rest[2048];
    snprintf(rest, sizeof rest, "%s", at + strlen(off));
    snprintf(at, sizeof text - (size_t)(at - text), "opencl = { enabled = true; devices = [ 5 ]; "
             "};%s", rest);
    if (hyt_daemon_start(&D, text, NULL) != 0)
        cr_assert_fail("hybridd did not start with config:\n%s", text);
    hyt_client *c = suite_client(); /* served: the daemon's start is logged */
    cr_expect(log_has("lists device 5, which does not exist"),
              "the log does not warn about the missing device 5");
    uint32_t n = expect_no_usable_device(c, "not served");
    expect_opencl_refused(c, 5, "device 5 does not exist");
    if (n)
        expect_opencl_refused(c, 0, "not served");
    hyt_close(c);
    expect_served("a missing OpenCL device");
}

/* ---- SIGTERM under load ---- */

/* Client 0's two short jobs are done and its third runs; seven more clients have three jobs
 * each queued behind it (short, short, long). SIGTERM: the queued ones are answered ECANCELED
 * (or EBUSY) at once, the running one is cancelled at the drain timeout, and each job has
 * exactly one answer. The running job is far too long to end before that timeout: one that
 * could end while the other clients still submit (a second of pi did, on a fast or busy
 * machine) would let a job that must stay queued start. */
static hy_msg_submit load_job(int client, int p, const int32_t *arr)
{
    if (p == 0)
        return hyt_pi(HY_BACKEND_SERIAL, 1, 100000, (uint64_t)client);
    if (p == 1)
        return hyt_sort_inline(HY_BACKEND_LOCKED, 2, HY_DT_I32, arr, 64);
    if (client == 0)
        return hyt_pi(HY_BACKEND_NATIVE, 2, 100000000000ull, 11);
    return hyt_pi(client % 2 ? HY_BACKEND_NATIVE : HY_BACKEND_LOCKED, 2, 100000000000ull,
                  (uint64_t)client);
}

static bool running_after_two(const hy_msg_status_reply *st)
{
    return st->jobs_running == 1 && st->jobs_done >= 2;
}

Test(daemon_faults, sigterm_under_load_answers_every_job_once)
{
    hyt_conf k = hyt_conf_default();
    k.queued_jobs = 32;
    k.drain_timeout_s = 3;
    suite_start(&k);
    enum { CLIENTS = 8, PER = 3 };
    hyt_client *cl[CLIENTS];
    static hyt_job jobs[CLIENTS][PER];
    int32_t arr[64];
    hyt_fill(HY_DT_I32, arr, 64, 9);
    for (int i = 0; i < CLIENTS; i++) {
        cl[i] = suite_client();
        for (int p = 0; p < PER; p++) {
            hy_msg_submit s = load_job(i, p, arr);
            cr_assert_eq(hyt_submit(cl[i], &s, NULL, 0, &jobs[i][p]), 0, "client %d job %d: %s",
                         i, p, cl[i]->err.msg);
            cr_assert_eq(hyt_wait_accepted(cl[i], &jobs[i][p], HYT_WAIT_MS), 0);
            cr_assert(jobs[i][p].accepted, "client %d job %d refused: %s \"%s\"", i, p,
                      suite_code(jobs[i][p].code), jobs[i][p].message);
        }
        if (i == 0) {
            hy_msg_status_reply st;
            cr_assert(status_until(cl[0], &st, running_after_two, HYT_WAIT_MS),
                      "client 0's third job is not running after its first two (running %llu, "
                      "done %llu)", (unsigned long long)st.jobs_running,
                      (unsigned long long)st.jobs_done);
        }
    }
    cr_assert_eq(hyt_daemon_signal(&D, SIGTERM), 0);

    unsigned results = 0, cancelled = 0;
    for (int i = 0; i < CLIENTS; i++) {
        for (int p = 0; p < PER; p++) {
            hyt_job *j = &jobs[i][p];
            int rc = hyt_wait_final(cl[i], j, HYT_WAIT_MS);
            cr_assert_eq(rc, 0, "client %d job %d: no final answer after SIGTERM (%d %s)", i, p,
                         rc, cl[i]->err.msg);
            cr_expect(j->code == 0 || j->code == HY_ECANCELED || j->code == HY_EBUSY,
                      "client %d job %d ended with %s \"%s\"", i, p, suite_code(j->code),
                      j->message);
            if (i == 0 && p < 2)
                cr_expect_eq(j->code, 0, "client 0 job %d, done before SIGTERM: %s", p,
                             suite_code(j->code));
            if (i == 0 && p == 2)
                cr_expect_eq(j->code, HY_ECANCELED, "client 0's running job ended %s \"%s\", "
                             "want ECANCELED at the drain timeout", suite_code(j->code),
                             j->message);
            if (i > 0)
                cr_expect_neq(j->code, 0, "client %d job %d, queued at SIGTERM, ran", i, p);
            results += j->code == 0;
            cancelled += j->code != 0;
        }
    }
    for (int i = 0; i < CLIENTS; i++) {
        /* After the answers, the end of the stream, and no second answer on the way. */
        int rc;
        while ((rc = hyt_recv(cl[i], HYT_WAIT_MS)) == 0)
            ;
        cr_expect_eq(rc, HYT_EOF, "client %d: %d instead of the end of its stream", i, rc);
        suite_client_clean(cl[i]);
        for (int p = 0; p < PER; p++)
            hyt_job_release(cl[i], &jobs[i][p]);
        hyt_close(cl[i]);
    }
    cr_expect_eq(results + cancelled, CLIENTS * PER);
    /* drain_timeout_s + a wide margin; this bounds a wait, it measures nothing. */
    cr_assert_eq(hyt_daemon_wait_exit(&D, HYT_WAIT_MS), 0, "no exit after the drain");
    cr_expect_eq(hyt_daemon_exit_code(&D), 0, "drain under load: exit status 0x%x", D.status);
    struct stat sb;
    cr_expect_neq(lstat(D.sock, &sb), 0, "socket file left after SIGTERM");
}

/* ---- access control with a real other uid ---- */

#define NOBODY 65534u

static bool root(void)
{
    return geteuid() == 0;
}

/* Runs fn() as uid/gid with the supplementary groups `groups` (n of them) in a forked
 * child; its exit code, or -1. */
static int as_user_in(uid_t uid, gid_t gid, const gid_t *groups, size_t n, int (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        if (setgroups(n, groups) != 0 || setresgid(gid, gid, gid) != 0 ||
            setresuid(uid, uid, uid) != 0)
            _exit(100);
        if (getuid() != uid || geteuid() != uid || getgid() != gid)
            _exit(101);
        _exit(fn());
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The same with no supplementary groups. */
static int as_user(uid_t uid, gid_t gid, int (*fn)(void))
{
    return as_user_in(uid, gid, NULL, 0, fn);
}

/* Child bodies: 0 when the expectation holds, another code saying what happened. */
static int child_connect_eacces(void)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(D.sock) >= sizeof a.sun_path)
        return 10;
    memcpy(a.sun_path, D.sock, strlen(D.sock) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        return 10;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
        return 11; /* it got in */
    return errno == EACCES ? 0 : 12;
}

static int child_refused_eperm(void)
{
    hyt_client *c = hyt_connect(D.sock);
    if (!c)
        return 20; /* could not connect at the file level */
    hy_msg m = {.type = HY_MSG_HELLO, .request = 1};
    m.u.hello.min_version = 1;
    m.u.hello.max_version = 1;
    (void)hyt_send(c, &m, NULL, 0); /* the refusal may come first */
    if (hyt_recv(c, HYT_WAIT_MS) != 0)
        return 21;
    if (c->msg->type != HY_MSG_ERROR)
        return 22; /* WELCOME: let in */
    if (c->msg->u.error.code != HY_EPERM)
        return 23;
    /* The sentence names the uid and what would let it in. */
    char text[HY_IPC_MESSAGE_MAX + 1];
    snprintf(text, sizeof text, "%.*s", (int)c->msg->u.error.message.len,
             c->msg->u.error.message.p ? c->msg->u.error.message.p : "");
    char uid[32];
    snprintf(uid, sizeof uid, "uid %u ", (unsigned)getuid());
    if (!strstr(text, uid) || !strstr(text, "access.uids") || !strstr(text, "access.gids"))
        return 25;
    if (hyt_recv(c, HYT_WAIT_MS) != HYT_EOF)
        return 24;
    hyt_close(c);
    return 0;
}

static int child_served(void)
{
    hyt_client *c = hyt_connect(D.sock);
    if (!c)
        return 30;
    int rc = hyt_hello(c, HY_FEATURE_MEMFD);
    if (rc != 0)
        return rc < 0 ? 31 : 32;
    if (hyt_ping(c, 65534) != 0)
        return 33;
    hyt_close(c);
    return 0;
}

static const char *child_says(int code)
{
    switch (code) {
    case 0: return "as expected";
    case 100: return "could not drop to the other uid";
    case 101: return "the ids did not change";
    case 10: return "socket() failed";
    case 11: return "connect() succeeded";
    case 12: return "connect() failed, but not with EACCES";
    case 20: return "could not connect";
    case 21: return "no message before the end of the stream";
    case 22: return "the daemon answered with something else than ERROR";
    case 23: return "an ERROR that is not EPERM";
    case 24: return "the connection stayed open after EPERM";
    case 25: return "the EPERM sentence does not name the uid and access.uids/access.gids";
    case 30: return "could not connect";
    case 31: return "HELLO refused with an ERROR";
    case 32: return "no answer to HELLO";
    case 33: return "no PONG";
    default: return "the child died";
    }
}

/* Starts D with a socket group and access group besides the harness's config; the socket's
 * directory is opened for others to search, so the file's own bits decide who connects. */
static void start_with(const char *extra)
{
    hyt_conf k = hyt_conf_default();
    char text[2048];
    conf_with(&k, extra, text, sizeof text);
    if (hyt_daemon_start(&D, text, NULL) != 0)
        cr_assert_fail("hybridd did not start with config:\n%s", text);
    cr_assert_eq(chmod(D.dir, 0711), 0, "chmod %s: %s", D.dir, strerror(errno));
}

static void restart_with(const char *extra)
{
    cr_expect_eq(hyt_daemon_stop(&D, 20000), 0);
    hyt_daemon_cleanup(&D);
    start_with(extra);
}

static gid_t group_id(const char *name)
{
    struct group *g = getgrnam(name);
    cr_assert_not_null(g, "no group %s in /etc/group", name);
    return g->gr_gid;
}

static void expect_socket_file(unsigned mode, gid_t gid, const char *what)
{
    struct stat st;
    cr_assert_eq(lstat(D.sock, &st), 0, "%s: stat %s: %s", what, D.sock, strerror(errno));
    cr_expect(S_ISSOCK(st.st_mode), "%s: not a socket", what);
    cr_expect_eq(st.st_mode & 07777, mode, "%s: socket mode %04o, want %04o", what,
                 (unsigned)(st.st_mode & 07777), mode);
    cr_expect_eq(st.st_gid, gid, "%s: socket group %u, want %u", what, (unsigned)st.st_gid,
                 (unsigned)gid);
}

Test(daemon_faults, the_socket_file_has_the_configured_mode_and_group)
{
    if (!root())
        suite_skip("needs root to connect as another uid");
    gid_t nogroup = group_id("nogroup"), daemon_gid = group_id("daemon");
    int rc;

    start_with("socket = { mode = \"0600\"; group = \"nogroup\"; };\n");
    expect_socket_file(0600, nogroup, "mode 0600 group nogroup");
    rc = as_user(NOBODY, nogroup, child_connect_eacces);
    cr_expect_eq(rc, 0, "mode 0600: uid 65534 connecting: %s", child_says(rc));

    restart_with("socket = { mode = \"0660\"; group = \"nogroup\"; };\n");
    expect_socket_file(0660, nogroup, "mode 0660 group nogroup");
    rc = as_user(NOBODY, nogroup, child_served);
    cr_expect_eq(rc, 0, "mode 0660: uid 65534 in the socket's group: %s", child_says(rc));
    rc = as_user(NOBODY, daemon_gid, child_connect_eacces);
    cr_expect_eq(rc, 0, "mode 0660: uid 65534 outside the socket's group: %s", child_says(rc));

    restart_with("socket = { mode = \"0666\"; group = \"daemon\"; };\n");
    expect_socket_file(0666, daemon_gid, "mode 0666 group daemon");
    rc = as_user(NOBODY, nogroup, child_served);
    cr_expect_eq(rc, 0, "mode 0666: uid 65534: %s", child_says(rc));
    expect_served("peers of another uid");
}

Test(daemon_faults, a_peer_of_another_uid_not_in_access_gets_eperm)
{
    if (!root())
        suite_skip("needs root to connect as another uid");
    gid_t nogroup = group_id("nogroup");
    int rc;

    start_with("socket = { mode = \"0666\"; };\naccess = { uids = [ 0 ]; };\n");
    rc = as_user(NOBODY, nogroup, child_refused_eperm);
    cr_expect_eq(rc, 0, "access.uids [0]: uid 65534: %s", child_says(rc));
    cr_expect(log_has("refused a connection from uid 65534"),
              "the log does not name the refused uid");
    expect_served("a refused peer (uids)"); /* root is listed */

    restart_with("socket = { mode = \"0666\"; };\naccess = { gids = [ 65534 ]; };\n");
    rc = as_user(NOBODY, nogroup, child_served);
    cr_expect_eq(rc, 0, "access.gids [65534]: uid 65534 gid 65534: %s", child_says(rc));
    rc = as_user(NOBODY, group_id("daemon"), child_refused_eperm);
    cr_expect_eq(rc, 0, "access.gids [65534]: uid 65534 gid 1: %s", child_says(rc));
}

/* The rule (hybridd.conf(5), ACCESS): the socket file's owner, group and mode are the first
 * gate; empty access lists add nothing to it; lists that name anything narrow it to the uids
 * listed, the members of the gids listed (supplementary groups count), root and the daemon's
 * own uid. */
Test(daemon_faults, access_lists_narrow_what_the_socket_file_allows)
{
    if (!root())
        suite_skip("needs root to connect as another uid");
    gid_t nogroup = group_id("nogroup"), daemon_gid = group_id("daemon");
    int rc;

    /* No lists, the socket's group: a member is served, by its primary or a supplementary
     * group (the README's "add the users who may submit jobs to that group"). */
    start_with("socket = { mode = \"0660\"; group = \"nogroup\"; };\n");
    rc = as_user(NOBODY, nogroup, child_served);
    cr_expect_eq(rc, 0, "no lists: uid 65534 with primary group nogroup: %s", child_says(rc));
    rc = as_user_in(NOBODY, daemon_gid, &nogroup, 1, child_served);
    cr_expect_eq(rc, 0, "no lists: uid 65534 with nogroup as a supplementary group: %s",
                 child_says(rc));

    /* The lists the example configuration once shipped (uid 1000, gid 100): a member of the
     * socket's group that they do not name is refused with a sentence saying why; root is
     * still served although no list names it. */
    restart_with("socket = { mode = \"0660\"; group = \"nogroup\"; };\n"
                 "access = { uids = [ 1000 ]; gids = [ 100 ]; };\n");
    rc = as_user(NOBODY, nogroup, child_refused_eperm);
    cr_expect_eq(rc, 0, "lists naming neither: uid 65534 in the socket's group: %s",
                 child_says(rc));
    cr_expect(log_has("refused a connection from uid 65534"),
              "the log does not name the refused uid");
    expect_served("a refusal, as root, whom no list names");

    /* A listed gid held as a supplementary group lets its member in; the same user without
     * it is refused. */
    char conf[256];
    snprintf(conf, sizeof conf, "socket = { mode = \"0666\"; };\n"
             "access = { uids = [ 1000 ]; gids = [ %u ]; };\n", (unsigned)daemon_gid);
    restart_with(conf);
    rc = as_user_in(NOBODY, nogroup, &daemon_gid, 1, child_served);
    cr_expect_eq(rc, 0, "gids [daemon]: uid 65534 with daemon as a supplementary group: %s",
                 child_says(rc));
    rc = as_user(NOBODY, nogroup, child_refused_eperm);
    cr_expect_eq(rc, 0, "gids [daemon]: uid 65534 without the group: %s", child_says(rc));
}
