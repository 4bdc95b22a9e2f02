/* tests/daemon: hybridd's life — command line and exit codes, SIGHUP reloads, the SIGTERM
 * drain, a second daemon on a busy socket path, a stale socket file, socket activation. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "suite.h"

TestSuite(daemon_lifecycle, .fini = suite_stop, .timeout = 60);

static bool file_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Runs hybridd with `args` (NULL-ended, after the binary) and returns its exit code. */
static int run_hybridd(const char *config, const char *const *args)
{
    const char *argv[16];
    unsigned n = 0;
    argv[n++] = hyt_hybridd_binary();
    for (unsigned i = 0; args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    if (!D.dir[0])
        cr_assert_eq(hyt_daemon_init(&D, config), 0);
    else
        cr_assert_eq(hyt_daemon_write_config(&D, config), 0);
    cr_assert_eq(hyt_daemon_exec_argv(&D, argv), 0);
    if (hyt_daemon_wait_exit(&D, 20000) != 0) {
        hyt_daemon_signal(&D, SIGKILL);
        hyt_daemon_wait_exit(&D, 5000);
        hyt_daemon_dump_log(&D);
        cr_assert_fail("hybridd %s did not exit", args[0]);
    }
    int code = hyt_daemon_exit_code(&D);
    D.pid = 0;
    return code;
}

Test(daemon_lifecycle, command_line_exit_codes)
{
    char good[2048];
    hyt_conf k = hyt_conf_default();
    hyt_conf_text(&k, good, sizeof good);
    int code;

    code = run_hybridd(good, (const char *const[]){"--version", NULL});
    cr_expect_eq(code, 0, "--version exits %d", code);
    code = run_hybridd(good, (const char *const[]){"--help", NULL});
    cr_expect_eq(code, 0, "--help exits %d", code);
    code = run_hybridd(good, (const char *const[]){"--check-config", "-c", D.conf, NULL});
    cr_expect_eq(code, 0, "--check-config on a good file exits %d", code);
    code = run_hybridd("limits = { clients = 0; };\n",
                       (const char *const[]){"--check-config", "-c", D.conf, NULL});
    cr_expect_eq(code, 2, "--check-config on an out-of-range value exits %d", code);
    code = run_hybridd("this is not libconfig {\n",
                       (const char *const[]){"--foreground", "-c", D.conf, "--socket", D.sock,
                                             NULL});
    cr_expect_eq(code, 2, "starting with a broken config exits %d", code);
    cr_expect(!file_exists(D.sock), "a daemon that refused its config left %s", D.sock);
    code = run_hybridd(good, (const char *const[]){"--no-such-option", NULL});
    cr_expect_eq(code, 2, "an unknown option exits %d", code);
    code = run_hybridd(good, (const char *const[]){"-c", "/nonexistent/hybridd.conf",
                                                   "--foreground", NULL});
    cr_expect_eq(code, 2, "a missing config file exits %d", code);
}

Test(daemon_lifecycle, sigterm_and_sigint_exit_0_and_remove_the_socket)
{
    suite_start_default();
    hyt_client *c = suite_client();
    cr_expect_eq(hyt_ping(c, 1), 0);
    cr_assert_eq(hyt_daemon_signal(&D, SIGTERM), 0);
    /* An idle client is told goodbye by the end of its stream. */
    int rc;
    do
        rc = hyt_recv(c, HYT_WAIT_MS);
    while (rc == 0);
    cr_expect_eq(rc, HYT_EOF, "idle client: %d instead of the end of stream", rc);
    hyt_close(c);
    cr_assert_eq(hyt_daemon_wait_exit(&D, HYT_WAIT_MS), 0, "no exit after SIGTERM");
    cr_expect_eq(hyt_daemon_exit_code(&D), 0, "SIGTERM: exit status 0x%x", D.status);
    cr_expect(!file_exists(D.sock), "socket file left after SIGTERM");
    hyt_daemon_cleanup(&D);

    suite_start_default();
    cr_assert_eq(hyt_daemon_signal(&D, SIGINT), 0);
    cr_assert_eq(hyt_daemon_wait_exit(&D, HYT_WAIT_MS), 0, "no exit after SIGINT");
    cr_expect_eq(hyt_daemon_exit_code(&D), 0, "SIGINT: exit status 0x%x", D.status);
    cr_expect(!file_exists(D.sock), "socket file left after SIGINT");
}

/* Connects until WELCOME's max_jobs_per_client is `want`, for up to `ms`. */
static bool welcome_says(uint32_t want, int ms)
{
    for (int t = 0; t < ms; t += 20) {
        hyt_client *c = hyt_connect_hello(D.sock);
        cr_assert_not_null(c, "the daemon stopped serving during a reload");
        uint32_t got = c->welcome.max_jobs_per_client;
        hyt_close(c);
        if (got == want)
            return true;
        usleep(20000);
    }
    return false;
}

Test(daemon_lifecycle, sighup_reloads_the_limits)
{
    hyt_conf k = hyt_conf_default();
    suite_start(&k);
    hyt_client *old = suite_client();
    cr_assert_eq(old->welcome.max_jobs_per_client, 4);

    char text[2048];
    k.jobs_per_client = 1;
    hyt_conf_text(&k, text, sizeof text);
    cr_assert_eq(hyt_daemon_write_config(&D, text), 0);
    cr_assert_eq(hyt_daemon_signal(&D, SIGHUP), 0);
    cr_assert(welcome_says(1, 10000), "WELCOME still says %u jobs per client after SIGHUP",
              4u);
    /* The new limit holds for a new connection. */
    hyt_client *c = suite_client();
    hyt_job a;
    hy_msg_submit s = hyt_pi(HY_BACKEND_NATIVE, 2, 100000000000ull, 1);
    cr_assert_eq(hyt_submit(c, &s, NULL, 0, &a), 0);
    cr_assert_eq(hyt_wait_accepted(c, &a, HYT_WAIT_MS), 0);
    cr_assert(a.accepted);
    suite_run_refused(c, &s, NULL, 0, HY_EBUSY, 0, "second job with jobs_per_client 1");
    cr_assert_eq(hyt_cancel(c, a.job_id, NULL), 0);
    cr_assert_eq(hyt_wait_final(c, &a, HYT_WAIT_MS), 0);
    cr_expect_eq(a.code, HY_ECANCELED);
    hyt_job_release(c, &a);
    cr_expect_eq(hyt_ping(old, 2), 0, "a connection from before the reload was dropped");
    hyt_close(c);
    hyt_close(old);

    /* A broken file: the old settings stay, the daemon serves on. */
    cr_assert_eq(hyt_daemon_write_config(&D, "limits = { jobs_per_client = ; \n"), 0);
    cr_assert_eq(hyt_daemon_signal(&D, SIGHUP), 0);
    /* There is no reply to a reload; ask a few times over half a second. */
    for (int i = 0; i < 10; i++) {
        hyt_client *x = hyt_connect_hello(D.sock);
        cr_assert_not_null(x, "not serving after a SIGHUP with a broken config");
        cr_expect_eq(x->welcome.max_jobs_per_client, 1, "a broken reload changed the limit");
        cr_expect_eq(hyt_ping(x, (uint64_t)i), 0);
        hyt_close(x);
        usleep(50000);
    }
    cr_assert_eq(hyt_daemon_wait_exit(&D, 0), -1, "hybridd exited after a broken reload");
    /* An out-of-range value is refused the same way. */
    k.jobs_per_client = 3;
    k.clients = 0;
    hyt_conf_text(&k, text, sizeof text);
    cr_assert_eq(hyt_daemon_write_config(&D, text), 0);
    cr_assert_eq(hyt_daemon_signal(&D, SIGHUP), 0);
    usleep(200000);
    c = suite_client();
    cr_expect_eq(c->welcome.max_jobs_per_client, 1, "a refused reload changed the limit");
    hy_msg_submit small = hyt_pi(HY_BACKEND_NATIVE, 2, 100000, 2);
    hyt_job j;
    suite_run_ok(c, &small, NULL, 0, &j, "pi after broken reloads");
    hyt_job_release(c, &j);
    hyt_close(c);
}

Test(daemon_lifecycle, sigterm_drains_running_jobs_and_cancels_queued_ones)
{
    hyt_conf k = hyt_conf_default();
    k.drain_timeout_s = 20;
    suite_start(&k);
    hyt_client *c = suite_client();
    /* About two seconds of work: running when SIGTERM comes, done well within the drain.
     * How fast pi runs depends on the build (ASan slows it up to 20 times, TSan hardly at
     * all) and the machine, so the job is sized from a measured one, not guessed. */
    const uint64_t probe = 100000000ull;
    hy_msg_submit ps = hyt_pi(HY_BACKEND_NATIVE, 2, probe, 31);
    hyt_job p;
    suite_run_ok(c, &ps, NULL, 0, &p, "the sizing job");
    cr_assert(p.nrows == 1 && p.rows[0].median_ns > 0);
    double per_sample_ns = (double)p.rows[0].median_ns / (double)probe;
    hyt_job_release(c, &p);
    uint64_t n = (uint64_t)(2e9 / per_sample_ns);
    n = n < probe ? probe : n > 40000000000ull ? 40000000000ull : n;
    hy_msg_submit s = hyt_pi(HY_BACKEND_NATIVE, 2, n, 31);
    hyt_job a, b;
    cr_assert_eq(hyt_submit(c, &s, NULL, 0, &a), 0);
    cr_assert_eq(hyt_wait_accepted(c, &a, HYT_WAIT_MS), 0);
    cr_assert(a.accepted);
    cr_assert_eq(hyt_submit(c, &s, NULL, 0, &b), 0);
    cr_assert_eq(hyt_wait_accepted(c, &b, HYT_WAIT_MS), 0);
    cr_assert(b.accepted);
    /* Wait for the first to be running (a PROGRESS says so), then stop the daemon. */
    for (int i = 0; i < 100 && a.progress == 0 && !a.done; i++)
        hyt_recv(c, 300);
    cr_assert_eq(hyt_daemon_signal(&D, SIGTERM), 0);

    cr_assert_eq(hyt_wait_final(c, &b, HYT_WAIT_MS), 0, "queued job: no final answer on drain");
    cr_expect(b.code == HY_ECANCELED || b.code == HY_EBUSY,
              "queued job at SIGTERM ended with %s \"%s\", want ECANCELED or EBUSY",
              suite_code(b.code), b.message);
    /* While it drains, no new client is served. */
    hyt_client *late = hyt_connect(D.sock);
    if (late) {
        int rc = hyt_hello(late, 0);
        cr_expect_neq(rc, 0, "a new client got WELCOME while the daemon drains");
        hyt_close(late);
    }
    cr_assert_eq(hyt_wait_final(c, &a, HYT_WAIT_MS), 0, "running job: no final answer on drain");
    cr_expect_eq(a.code, 0, "running job at SIGTERM ended with %s \"%s\", want RESULT",
                 suite_code(a.code), a.message);
    if (a.code == 0) {
        cr_expect_eq(a.rows[0].n, n);
        cr_expect(fabs(a.rows[0].estimate - 3.14159) < 0.001, "estimate %f",
                  a.rows[0].estimate);
    }
    int rc;
    do
        rc = hyt_recv(c, HYT_WAIT_MS);
    while (rc == 0);
    cr_expect_eq(rc, HYT_EOF, "client not closed at the end of the drain (%d)", rc);
    hyt_job_release(c, &a);
    hyt_job_release(c, &b);
    suite_client_clean(c);
    hyt_close(c);
    cr_assert_eq(hyt_daemon_wait_exit(&D, HYT_WAIT_MS), 0, "no exit after the drain");
    cr_expect_eq(hyt_daemon_exit_code(&D), 0, "drain: exit status 0x%x", D.status);
    cr_expect(!file_exists(D.sock), "socket file left after the drain");
}

Test(daemon_lifecycle, a_drain_past_drain_timeout_cancels_the_running_job)
{
    hyt_conf k = hyt_conf_default();
    k.drain_timeout_s = 1;
    suite_start(&k);
    hyt_client *c = suite_client();
    hy_msg_submit s = hyt_pi(HY_BACKEND_NATIVE, 2, 200000000000ull, 1);
    hyt_job a;
    cr_assert_eq(hyt_submit(c, &s, NULL, 0, &a), 0);
    cr_assert_eq(hyt_wait_accepted(c, &a, HYT_WAIT_MS), 0);
    cr_assert(a.accepted);
    cr_assert_eq(hyt_daemon_signal(&D, SIGTERM), 0);
    cr_assert_eq(hyt_wait_final(c, &a, HYT_WAIT_MS), 0, "long job: no final answer on drain");
    cr_expect_eq(a.code, HY_ECANCELED, "long job past the drain ended with %s \"%s\"",
                 suite_code(a.code), a.message);
    hyt_job_release(c, &a);
    hyt_close(c);
    cr_assert_eq(hyt_daemon_wait_exit(&D, HYT_WAIT_MS), 0, "no exit after the drain timeout");
    cr_expect_eq(hyt_daemon_exit_code(&D), 0, "exit status 0x%x", D.status);
    cr_expect(!file_exists(D.sock), "socket file left");
}

Test(daemon_lifecycle, a_second_daemon_on_a_live_socket_exits_1)
{
    suite_start_default();
    hyt_daemon second;
    char text[2048];
    hyt_conf k = hyt_conf_default();
    hyt_conf_text(&k, text, sizeof text);
    cr_assert_eq(hyt_daemon_init(&second, text), 0);
    snprintf(second.sock, sizeof second.sock, "%s", D.sock);
    cr_assert_eq(hyt_daemon_exec(&second, NULL), 0);
    if (hyt_daemon_wait_exit(&second, 20000) != 0) {
        hyt_daemon_dump_log(&second);
        second.sock[0] = '\0';
        hyt_daemon_cleanup(&second);
        cr_assert_fail("a second daemon on a live socket path did not exit");
    }
    int code = hyt_daemon_exit_code(&second);
    if (code != 1)
        hyt_daemon_dump_log(&second);
    snprintf(second.sock, sizeof second.sock, "%s/none", second.dir); /* not D's */
    hyt_daemon_cleanup(&second);
    cr_expect_eq(code, 1, "second daemon on a live socket exited %d, want 1", code);
    cr_expect(file_exists(D.sock), "the second daemon removed the first one's socket file");
    hyt_client *c = hyt_connect_hello(D.sock);
    cr_assert_not_null(c, "the first daemon no longer serves");
    cr_expect_eq(hyt_ping(c, 1), 0);
    hyt_close(c);
}

Test(daemon_lifecycle, a_stale_socket_file_is_replaced)
{
    suite_start_default();
    hyt_daemon_signal(&D, SIGKILL);
    hyt_daemon_wait_exit(&D, HYT_WAIT_MS);
    cr_assert(file_exists(D.sock), "no socket file left by a killed daemon");
    /* Start again in the same directory, on the same path. */
    D.exited = false;
    D.pid = 0;
    cr_assert_eq(hyt_daemon_exec(&D, NULL), 0);
    if (hyt_daemon_wait_ready(&D, D.sock, 60000) != 0) {
        hyt_daemon_dump_log(&D);
        cr_assert_fail("hybridd did not start over a stale socket file");
    }
    hyt_client *c = suite_client();
    cr_expect_eq(hyt_ping(c, 1), 0);
    hyt_close(c);
}

Test(daemon_lifecycle, socket_activation)
{
    const char *tool = "/usr/bin/systemd-socket-activate";
    if (access(tool, X_OK) != 0)
        suite_skip("%s is missing", tool);
    char text[2048];
    hyt_conf k = hyt_conf_default();
    hyt_conf_text(&k, text, sizeof text);
    cr_assert_eq(hyt_daemon_init(&D, text), 0);
    char act[160];
    snprintf(act, sizeof act, "%s/act.sock", D.dir);
    const char *argv[] = {tool, "-l", act, hyt_hybridd_binary(), "--foreground", "-c", D.conf, NULL};
    cr_assert_eq(hyt_daemon_exec_argv(&D, argv), 0);
    cr_assert_eq(hyt_daemon_wait_ready(&D, act, 20000), 0, "%s not listening", act);
    hyt_client *c = hyt_connect_hello(act);
    if (!c)
        hyt_daemon_dump_log(&D);
    cr_assert_not_null(c, "no WELCOME on the activated socket");
    hy_msg_submit s = hyt_pi(HY_BACKEND_NATIVE, 2, 1000000, 17);
    hyt_job j;
    suite_run_ok(c, &s, NULL, 0, &j, "pi over an activated socket");
    suite_check_pi_row(&j.rows[0], HY_BACKEND_NATIVE, 2, 17, 1000000, 1, "activated pi");
    hyt_job_release(c, &j);
    hyt_close(c);
    /* systemd-socket-activate execs hybridd in its own pid: SIGTERM reaches the daemon. */
    int code = hyt_daemon_stop(&D, 20000);
    cr_expect_eq(code, 0, "socket-activated hybridd exited %d after SIGTERM", code);
}

/* ---- issue 14: the reload log, --help, --check-config, the socket's directory ---- */

/* The daemon's log (stdout and stderr), read whole into a static buffer. */
static const char *log_text(void)
{
    static char buf[1 << 18];
    FILE *f = fopen(D.log, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    return buf;
}

/* Polls the log for `what` every 20 ms, up to `ms`. */
static bool log_shows(const char *what, int ms)
{
    for (int t = 0; t <= ms; t += 20) {
        if (strstr(log_text(), what))
            return true;
        usleep(20000);
    }
    return false;
}

Test(daemon_lifecycle, sighup_logs_each_changed_key_with_its_old_and_new_value)
{
    hyt_conf k = hyt_conf_default();
    suite_start(&k);
    char text[2048];
    k.jobs_per_client = 16;
    k.frame_bytes = 131072;
    k.process_workers = 3; /* needs a restart */
    k.native_threads = 1;  /* needs a restart */
    k.access = "uids = [ 4242 ];";
    hyt_conf_text(&k, text, sizeof text);
    size_t len = strlen(text);
    snprintf(text + len, sizeof text - len, "socket = { mode = \"0600\"; };\n");
    cr_assert_eq(hyt_daemon_write_config(&D, text), 0);
    cr_assert_eq(hyt_daemon_signal(&D, SIGHUP), 0);
    cr_assert(log_shows("setting(s) applied", HYT_WAIT_MS), "no reload in the log:\n%s",
              log_text());
    const char *want[] = {
        "reload: limits.jobs_per_client 4 -> 16\n",
        "reload: limits.frame_bytes 65536 -> 131072 (for new connections)\n",
        "reload: access.uids [ ] -> [ 4242 ] (for new connections)\n",
        "reload: socket.mode \"0660\" -> \"0600\"\n",
        "reload: cpu.native_threads 2 -> 1 takes effect on restart; 2 until then\n",
        "reload: cpu.process_workers 2 -> 3 takes effect on restart; 2 until then\n",
        "reloaded ",
    };
    const char *log = log_text();
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_expect(strstr(log, want[i]), "the log lacks \"%s\":\n%s", want[i], log);
    cr_expect(strstr(log, ": 4 setting(s) applied"), "4 keys applied, 2 waiting:\n%s", log);
    cr_expect(!strstr(log, "limits.queued_jobs"), "an unchanged key was logged:\n%s", log);
    /* What waits for a restart still runs as it was. */
    hyt_client *c = suite_client();
    cr_expect_eq(c->welcome.max_jobs_per_client, 16);
    hy_msg_devices_reply *dv = calloc(1, sizeof *dv);
    cr_assert_not_null(dv);
    cr_assert_eq(hyt_devices(c, dv), 0, "%s", c->err.msg);
    cr_expect_eq(dv->native_threads, 2);
    cr_expect_eq(dv->process_workers, 2);
    free(dv);
    hyt_close(c);
}

Test(daemon_lifecycle, help_lists_every_backend)
{
    char good[2048];
    hyt_conf k = hyt_conf_default();
    hyt_conf_text(&k, good, sizeof good);
    int code = run_hybridd(good, (const char *const[]){"--help", NULL});
    cr_assert_eq(code, 0, "--help exits %d", code);
    const char *out = log_text();
    unsigned n = 0;
    for (int b = 1; hy_backend_name(b); b++, n++) {
        char line[32];
        snprintf(line, sizeof line, "\n  %s ", hy_backend_name(b));
        cr_expect(strstr(out, line), "--help does not list the %s backend:\n%s",
                  hy_backend_name(b), out);
    }
    cr_expect_geq(n, 5u, "the backend table lost a backend");
}

/* Runs --check-config on `config` (with the harness's own keys before it) and returns the
 * exit status; the output is in log_text(). */
static int check_config(const char *config)
{
    char text[2048];
    hyt_conf k = hyt_conf_default();
    hyt_conf_text(&k, text, sizeof text);
    size_t len = strlen(text);
    snprintf(text + len, sizeof text - len, "%s", config);
    if (D.dir[0])
        cr_assert_eq(truncate(D.log, 0) == 0 || errno == ENOENT, true);
    return run_hybridd(text, (const char *const[]){"--check-config", "-c", D.conf, NULL});
}

Test(daemon_lifecycle, check_config_checks_what_start_up_checks)
{
    char conf[512], path[160], deep[160];
    int code;
    /* A good file with a socket three missing levels deep: OK, and nothing is created. */
    code = check_config("");
    cr_assert_eq(code, 0, "--check-config on the harness's file: %d\n%s", code, log_text());
    snprintf(deep, sizeof deep, "%s/x/y/z/s.sock", D.dir);
    snprintf(conf, sizeof conf, "socket = { path = \"%s\"; };\n", deep);
    code = check_config(conf);
    cr_expect_eq(code, 0, "a socket 3 missing levels deep: exit %d\n%s", code, log_text());
    cr_expect(strstr(log_text(), "configuration OK"), "%s", log_text());
    snprintf(path, sizeof path, "%s/x", D.dir);
    cr_expect(!file_exists(path), "--check-config created %s", path);

    /* A socket group that does not exist: start-up would fail, so the check does. */
    code = check_config("socket = { group = \"hybridd-no-such-group\"; };\n");
    cr_expect_eq(code, 2, "a missing socket group: exit %d\n%s", code, log_text());
    cr_expect(strstr(log_text(), "hybridd-no-such-group: no such group"), "%s", log_text());
    cr_expect(!strstr(log_text(), "configuration OK"), "%s", log_text());

    /* A level of the socket's directory that is a file, and a path that is not a socket. */
    snprintf(path, sizeof path, "%s/plain", D.dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fclose(f);
    snprintf(conf, sizeof conf, "socket = { path = \"%s/sub/s.sock\"; };\n", path);
    code = check_config(conf);
    cr_expect_eq(code, 2, "a file as the socket's directory: exit %d\n%s", code, log_text());
    cr_expect(strstr(log_text(), "is not a directory"), "%s", log_text());
    snprintf(conf, sizeof conf, "socket = { path = \"%s\"; };\n", path);
    code = check_config(conf);
    cr_expect_eq(code, 2, "a regular file as the socket: exit %d\n%s", code, log_text());
    cr_expect(strstr(log_text(), "is not a socket"), "%s", log_text());
    unlink(path);
}

Test(daemon_lifecycle, every_missing_level_of_the_sockets_directory_is_created)
{
    hyt_conf k = hyt_conf_default();
    char text[2048], deep[160], level[160];
    hyt_conf_text(&k, text, sizeof text);
    cr_assert_eq(hyt_daemon_init(&D, text), 0);
    snprintf(deep, sizeof deep, "%s/x/y/z/s.sock", D.dir);
    cr_assert_lt(strlen(deep), sizeof D.sock);
    snprintf(D.sock, sizeof D.sock, "%s", deep);
    cr_assert_eq(hyt_daemon_exec(&D, NULL), 0);
    if (hyt_daemon_wait_ready(&D, D.sock, HYT_WAIT_MS) != 0) {
        hyt_daemon_dump_log(&D);
        cr_assert_fail("hybridd did not serve on %s (3 missing levels)", deep);
    }
    mode_t want = geteuid() == 0 ? 0755 : 0700;
    static const char *const levels[] = {"x", "x/y", "x/y/z"};
    for (size_t i = 0; i < 3; i++) {
        struct stat st;
        snprintf(level, sizeof level, "%s/%s", D.dir, levels[i]);
        cr_assert_eq(stat(level, &st), 0, "%s: %s", level, strerror(errno));
        cr_expect(S_ISDIR(st.st_mode), "%s is not a directory", level);
        cr_expect_eq(st.st_mode & 07777, want, "%s has mode %04o, want %04o", level,
                     (unsigned)(st.st_mode & 07777), (unsigned)want);
    }
    hyt_client *c = suite_client();
    cr_expect_eq(hyt_ping(c, 14), 0);
    hyt_close(c);
    cr_expect_eq(hyt_daemon_stop(&D, 20000), 0);
    /* The harness removes its own files; the levels made here are this test's. */
    for (size_t i = 3; i-- > 0;) {
        snprintf(level, sizeof level, "%s/%s", D.dir, levels[i]);
        rmdir(level);
    }
}
