/* tests/daemon: the performance history in a running hybridd — with state.history set, the
 * timed runs of the jobs it ran are in the file after it stops (the first of each cell after
 * start dropped, warm-ups left out), a restart loads them and adds to them, and a corrupt file
 * is set aside while the daemon serves on. */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static hyt_daemon D;
static char hist[192];

/* Starts D with the small test configuration and state.history = D.dir/history. */
static void start(bool fresh)
{
    hyt_conf k = hyt_conf_default();
    char text[2560], conf[2048];
    hyt_conf_text(&k, conf, sizeof conf);
    if (fresh) {
        cr_assert_eq(hyt_daemon_init(&D, conf), 0);
        snprintf(hist, sizeof hist, "%s/history", D.dir);
    }
    snprintf(text, sizeof text, "%sstate = {\n  history = \"%s\";\n};\n", conf, hist);
    cr_assert_eq(hyt_daemon_write_config(&D, text), 0);
    D.exited = false;
    cr_assert_eq(hyt_daemon_exec(&D, NULL), 0);
    if (hyt_daemon_wait_ready(&D, D.sock, HYT_WAIT_MS) != 0) {
        hyt_daemon_dump_log(&D);
        cr_assert_fail("hybridd did not start with state.history = %s", hist);
    }
}

static void stop(void)
{
    int code = hyt_daemon_stop(&D, 20000);
    if (code != 0)
        hyt_daemon_dump_log(&D);
    cr_assert_eq(code, 0, "hybridd exited with %d after SIGTERM", code);
}

static void cleanup(void)
{
    char p[256];
    const char *suffix[] = {"", ".corrupt", ".foreign"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", hist, suffix[i]);
        unlink(p);
    }
    hyt_daemon_cleanup(&D);
}

TestSuite(daemon_history, .fini = cleanup, .timeout = 120);

static void run_ok(hyt_client *c, hy_msg_submit s, const char *what)
{
    hyt_job j = {0};
    int rc = hyt_run(c, &s, NULL, 0, &j);
    cr_assert_eq(rc, 0, "%s: no answer (%s)", what, c->err.msg);
    cr_assert_eq(j.code, 0, "%s: ERROR %d %s", what, j.code, j.message);
    hyt_job_release(c, &j);
}

static char *slurp(const char *p)
{
    static char buf[1 << 16];
    FILE *f = fopen(p, "r");
    cr_assert_not_null(f, "no file %s", p);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* The cell line that starts with `prefix`, or NULL. */
static const char *cell(const char *text, const char *prefix)
{
    const char *p = strstr(text, prefix);
    return p && (p == text || p[-1] == '\n') ? p : NULL;
}

Test(daemon_history, jobs_leave_their_cells_in_the_file_and_a_restart_adds_to_them)
{
    start(true);
    hyt_client *c = hyt_connect_hello(D.sock);
    cr_assert_not_null(c);
    hy_msg_submit pi = hyt_pi(HY_BACKEND_SERIAL, 1, 100000, 7);
    pi.repeat = 6; /* 6 timed runs, the first since start dropped: 5 samples */
    run_ok(c, pi, "pi serial");
    int32_t data[5000];
    hyt_fill(HY_DT_I32, data, 5000, 3);
    hy_msg_submit so = hyt_sort_inline(HY_BACKEND_NATIVE, 2, HY_DT_I32, data, 5000);
    so.repeat = 3;
    run_ok(c, so, "sort native");
    /* A comparison's warm-up is not recorded: serial's row, 2 timed runs, keeps 1. */
    hy_msg_submit cmp = hyt_pi(0, 0, 3000, 7);
    cmp.job = HY_JOB_COMPARE_PI;
    cmp.backends = 1u << HY_BACKEND_SERIAL;
    cmp.repeat = 2;
    run_ok(c, cmp, "compare pi");
    hyt_close(c);
    stop();

    const char *text = slurp(hist);
    cr_expect_not_null(strstr(text, "hybridd-history 1\nhost "), "%s", text);
    /* 100000 samples: bucket 16; 5000 elements: bucket 12; 3000: bucket 11. */
    cr_expect_not_null(cell(text, "cell pi - serial 0 1 - 16 5 100000:"), "%s", text);
    cr_expect_not_null(cell(text, "cell sort i32 native 0 2 - 12 2 5000:"), "%s", text);
    cr_expect_not_null(cell(text, "cell pi - serial 0 1 - 11 1 3000:"), "%s", text);

    /* A restart loads the cells; its first run of the cell is dropped, the next one added. */
    start(false);
    c = hyt_connect_hello(D.sock);
    cr_assert_not_null(c);
    pi.repeat = 2;
    run_ok(c, pi, "pi serial again");
    hyt_close(c);
    stop();
    text = slurp(hist);
    cr_expect_not_null(cell(text, "cell pi - serial 0 1 - 16 6 100000:"), "%s", text);
    cr_expect_not_null(cell(text, "cell sort i32 native 0 2 - 12 2 5000:"), "%s", text);
}

Test(daemon_history, a_corrupt_file_is_set_aside_and_the_daemon_serves)
{
    hyt_conf k = hyt_conf_default();
    char conf[2048];
    hyt_conf_text(&k, conf, sizeof conf);
    cr_assert_eq(hyt_daemon_init(&D, conf), 0);
    snprintf(hist, sizeof hist, "%s/history", D.dir);
    FILE *f = fopen(hist, "w");
    cr_assert_not_null(f);
    fputs("hybridd-history 1\nhost x\ncells 3\ncell pi", f); /* cut short */
    fclose(f);
    start(false);
    hyt_client *c = hyt_connect_hello(D.sock);
    cr_assert_not_null(c);
    hy_msg_submit pi = hyt_pi(HY_BACKEND_SERIAL, 1, 1000, 7);
    pi.repeat = 3;
    run_ok(c, pi, "pi serial");
    hyt_close(c);
    stop();
    char aside[256];
    snprintf(aside, sizeof aside, "%s.corrupt", hist);
    struct stat st;
    cr_expect_eq(stat(aside, &st), 0, "the corrupt file was not set aside as %s", aside);
    const char *log = slurp(D.log);
    cr_expect_not_null(strstr(log, "is corrupt (truncated"), "%s", log);
    /* The new file holds only what this daemon measured. */
    const char *text = slurp(hist);
    cr_expect_not_null(cell(text, "cell pi - serial 0 1 - 9 2 1000:"), "%s", text);
    cr_expect_null(strstr(text, "host x"));
}

Test(daemon_history, a_cancelled_row_records_nothing)
{
    start(true);
    hyt_client *c = hyt_connect_hello(D.sock);
    cr_assert_not_null(c);
    hy_msg_submit ok = hyt_pi(HY_BACKEND_SERIAL, 1, 1000, 7);
    ok.repeat = 3;
    run_ok(c, ok, "pi serial");
    /* 1000 runs of 2^24 samples (tens of ms each): some runs finish before the cancel comes,
     * then the row fails, and none of its runs may be recorded. */
    hy_msg_submit big = hyt_pi(HY_BACKEND_SERIAL, 1, UINT64_C(1) << 24, 7);
    big.repeat = 1000;
    hyt_job j = {0};
    cr_assert_eq(hyt_submit(c, &big, NULL, 0, &j), 0);
    cr_assert_eq(hyt_wait_accepted(c, &j, HYT_WAIT_MS), 0);
    cr_assert(j.accepted, "%s", j.message);
    usleep(500000); /* lets runs finish first: the test holds whether or not any did */
    cr_assert_eq(hyt_cancel(c, j.job_id, NULL), 0);
    cr_assert_eq(hyt_wait_final(c, &j, HYT_WAIT_MS), 0);
    cr_expect_eq(j.code, HY_ECANCELED, "ended with %d %s", j.code, j.message);
    hyt_job_release(c, &j);
    hyt_close(c);
    stop();
    const char *text = slurp(hist);
    cr_expect_not_null(cell(text, "cell pi - serial 0 1 - 9 2 1000:"), "%s", text);
    cr_expect_null(strstr(text, " 24 "), "the cancelled row left a cell:\n%s", text);
    cr_expect_not_null(strstr(text, "\ncells 1\n"), "%s", text);
}
