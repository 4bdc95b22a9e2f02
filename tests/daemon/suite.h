/* tests/daemon/suite: what the Criterion integration suites share on top of the harness —
 * one daemon per test (D) started from a hyt_conf, and the checks of result rows. */
#ifndef HY_TESTS_DAEMON_SUITE_H
#define HY_TESTS_DAEMON_SUITE_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* Not every suite uses every helper. */
#define SUITE_FN __attribute__((unused)) static

static hyt_daemon D;

SUITE_FN void suite_start(const hyt_conf *k)
{
    char text[2048];
    hyt_conf_text(k, text, sizeof text);
    if (hyt_daemon_start(&D, text, NULL) != 0) {
        hyt_daemon_cleanup(&D);
        cr_assert_fail("hybridd did not start with config:\n%s", text);
    }
}

SUITE_FN void suite_start_default(void)
{
    hyt_conf k = hyt_conf_default();
    suite_start(&k);
}

/* Stops D and expects a clean exit. */
SUITE_FN void suite_stop(void)
{
    if (D.pid > 0 && !D.exited) {
        int code = hyt_daemon_stop(&D, 20000);
        if (code != 0)
            hyt_daemon_dump_log(&D);
        cr_expect_eq(code, 0, "hybridd exited with %d after SIGTERM (want 0)", code);
    }
    hyt_daemon_cleanup(&D);
}

/* Skips the test after stopping D: Criterion does not run the suite's .fini after a test
 * skips itself, so a daemon its .init started would outlive the run (sanitizer runs, which
 * skip the RSS test, left one behind each time). */
#define suite_skip(...)                                                                        \
    do {                                                                                       \
        suite_stop();                                                                          \
        cr_skip_test(__VA_ARGS__);                                                             \
    } while (0)

static hyt_client *suite_client(void)
{
    hyt_client *c = hyt_connect_hello(D.sock);
    if (!c)
        hyt_daemon_dump_log(&D);
    cr_assert_not_null(c, "cannot connect and HELLO to hybridd at %s", D.sock);
    return c;
}

/* The client saw no protocol breach: one final answer per job, request ids echoed. */
SUITE_FN void suite_client_clean(const hyt_client *c)
{
    cr_expect_eq(c->dup_finals, 0, "a job got %u extra final answers", c->dup_finals);
    cr_expect_eq(c->stray_finals, 0, "%u RESULTs for jobs never accepted", c->stray_finals);
    cr_expect_eq(c->bad_echo, 0, "%u job messages did not echo their SUBMIT's request id",
                 c->bad_echo);
}

static const char *suite_code(int code)
{
    return code == 0 ? "RESULT" : hy_err_name(code);
}

/* Runs a submit to its end and asserts it ended with RESULT. */
SUITE_FN void suite_run_ok(hyt_client *c, const hy_msg_submit *s, const int *fds, unsigned nfds,
                         hyt_job *j, const char *what)
{
    int rc = hyt_run(c, s, fds, nfds, j);
    cr_assert_eq(rc, 0, "%s: no final answer (%d: %s)", what, rc, c->err.msg);
    cr_assert_eq(j->code, 0, "%s: got ERROR %s (%d) \"%s\", want RESULT", what,
                 suite_code(j->code), j->code, j->message);
    cr_assert(j->accepted, "%s: RESULT without ACCEPTED", what);
    cr_assert_neq(j->job_id, 0, "%s: ACCEPTED job_id 0", what);
}

/* Runs a submit that must be refused at once with `want` (job_id 0, no ACCEPTED); either of
 * two codes when want2 != 0. */
SUITE_FN void suite_run_refused(hyt_client *c, const hy_msg_submit *s, const int *fds,
                              unsigned nfds, int want, int want2, const char *what)
{
    hyt_job j;
    int rc = hyt_run(c, s, fds, nfds, &j);
    cr_assert_eq(rc, 0, "%s: no answer (%d: %s)", what, rc, c->err.msg);
    cr_assert(j.code == want || (want2 && j.code == want2),
              "%s: got %s (%d) \"%s\", want ERROR %s%s%s", what, suite_code(j.code), j.code,
              j.message, hy_err_name(want), want2 ? " or " : "", want2 ? hy_err_name(want2) : "");
    cr_assert(!j.accepted, "%s: refused job was ACCEPTED first (job %llu)", what,
              (unsigned long long)j.job_id);
    cr_assert_eq(j.error_job_id, 0, "%s: refusal carries job_id %llu, want 0", what,
                 (unsigned long long)j.error_job_id);
    cr_assert_gt(strlen(j.message), 0, "%s: ERROR without a sentence", what);
    hyt_job_release(c, &j);
}

SUITE_FN void suite_check_timing(const hy_result_row *r, uint32_t repeat, const char *what)
{
    if (repeat)
        cr_expect_eq(r->repeat, repeat, "%s: row repeat %u, want %u", what, r->repeat, repeat);
    else
        cr_expect_geq(r->repeat, 1, "%s: row repeat 0", what);
    cr_expect(r->min_ns <= r->median_ns && r->median_ns <= r->max_ns,
              "%s: min %llu <= median %llu <= max %llu does not hold", what,
              (unsigned long long)r->min_ns, (unsigned long long)r->median_ns,
              (unsigned long long)r->max_ns);
}

/* A pi row: the right backend and threads, n, hits equal to the reference, an estimate that
 * follows from them, and consistent timings. */
SUITE_FN void suite_check_pi_row(const hy_result_row *r, uint16_t backend, uint32_t threads,
                               uint64_t seed, uint64_t n, uint32_t repeat, const char *what)
{
    cr_expect_eq(r->backend, backend, "%s: row backend %u, want %u", what, r->backend, backend);
    cr_expect_eq(r->threads, threads, "%s: row threads %u, want %u", what, r->threads, threads);
    cr_expect_eq(r->n, n, "%s: row n %llu, want %llu", what, (unsigned long long)r->n,
                 (unsigned long long)n);
    uint64_t ref = hyt_pi_ref(seed, n);
    cr_expect_eq(r->hits, ref, "%s: hits %llu, reference %llu (seed %llu n %llu)", what,
                 (unsigned long long)r->hits, (unsigned long long)ref,
                 (unsigned long long)seed, (unsigned long long)n);
    double est = 4.0 * (double)ref / (double)n;
    cr_expect(fabs(r->estimate - est) < 1e-9, "%s: estimate %.12f, want %.12f", what,
              r->estimate, est);
    suite_check_timing(r, repeat, what);
}

#endif
