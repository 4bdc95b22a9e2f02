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
     * Sanitizer builds (scripts/sanitize.sh sets HYBRIDD_SANITIZER) compute pi 4 to 20 times
     * slower: a tenth of the samples keeps the same seconds. */
    const uint64_t n = getenv("HYBRIDD_SANITIZER") ? 400000000ull : 4000000000ull;
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
        cr_skip_test("%s is missing", tool);
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
