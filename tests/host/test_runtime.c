/* tests/host: the engine's threads through hy_host_run with the tests' own tasks — the locked
 * runtime's exclusion, hand-offs, nogil overlap, barriers, cancellation, errors, ids, stats. */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "host.h"

#include "engine_fixture.h"

/* A bug here would more likely hang than fail; the timeout turns a hang into a failure. */
TestSuite(runtime, .init = engine_up, .fini = engine_down, .timeout = 120);

/* A little CPU work the compiler cannot drop. */
static void burn(unsigned iters)
{
    volatile uint64_t x = 1;
    for (unsigned i = 0; i < iters; i++)
        x = x * 6364136223846793005u + 1442695040888963407u;
}

static const char *backend_s(int b) { return hy_backend_name(b) ? hy_backend_name(b) : "?"; }
static const char *nogil_s(int n)
{
    return n == HY_NOGIL_HOLD ? "hold" : n == HY_NOGIL_RELEASE ? "release" : "default";
}

/* ---- never two threads inside the lock ---- */

struct excl_ctx {
    unsigned iters;
    atomic_uint inside;
    atomic_bool violation;
    uint64_t counted; /* plain: only ever touched under the runtime lock */
};

static int excl_task(hy_worker *w, void *arg)
{
    struct excl_ctx *c = arg;
    for (unsigned i = 0; i < c->iters; i++) {
        if (atomic_fetch_add(&c->inside, 1) != 0)
            atomic_store(&c->violation, true);
        burn(20);
        c->counted++;
        if (atomic_load(&c->inside) != 1)
            atomic_store(&c->violation, true);
        atomic_fetch_sub(&c->inside, 1);
        int rc = hy_worker_tick(w, 1);
        if (rc != 0)
            return rc;
    }
    return 0;
}

Test(runtime, locked_hold_excludes)
{
    const unsigned ts[] = {2, 3, 8};
    for (size_t k = 0; k < 3; k++) {
        unsigned t = ts[k];
        struct excl_ctx c = {.iters = 20000};
        hy_run_opts o = {.backend = HY_BACKEND_LOCKED, .threads = t, .nogil = HY_NOGIL_HOLD,
                         .switch_interval_us = 100};
        hy_run_stats st;
        hy_error err = {0};
        int rc = hy_host_run(eng, &o, 0, excl_task, &c, &st, &err);
        cr_assert_eq(rc, 0, "locked hold threads=%u: run returned %d %s", t, rc, err.msg);
        cr_assert(!atomic_load(&c.violation),
                  "locked hold threads=%u: two threads were inside the lock at once", t);
        cr_assert_eq(c.counted, (uint64_t)t * c.iters,
                     "locked hold threads=%u: %" PRIu64 " increments under the lock, want %" PRIu64,
                     t, c.counted, (uint64_t)t * c.iters);
        cr_assert_eq(st.lock_max_holders, 1, "locked hold threads=%u: lock_max_holders %u", t,
                     st.lock_max_holders);
        cr_assert_geq(st.lock_acquisitions, t, "locked hold threads=%u: acquisitions %" PRIu64, t,
                      st.lock_acquisitions);
        cr_assert_eq(st.nogil, false, "locked hold threads=%u: stats.nogil", t);
    }
}

/* ---- hand-offs with a small switch interval ---- */

struct handoff_ctx {
    unsigned cap;
    int last; /* worker id of the last thread to run an iteration; under the lock */
    bool saw_switch[HY_HOST_MAX_THREADS];
    unsigned iterations[HY_HOST_MAX_THREADS];
};

/* Each thread runs until it has seen another thread run since its own previous iteration,
 * which needs the lock to change hands; the cap makes a bug fail instead of hang. */
static int handoff_task(hy_worker *w, void *arg)
{
    struct handoff_ctx *c = arg;
    unsigned id = hy_worker_id(w);
    for (unsigned i = 0; i < c->cap && !c->saw_switch[id]; i++) {
        if (c->last >= 0 && c->last != (int)id)
            c->saw_switch[id] = true;
        c->last = (int)id;
        c->iterations[id]++;
        burn(50);
        int rc = hy_worker_tick(w, 1);
        if (rc != 0)
            return rc;
    }
    return 0;
}

Test(runtime, locked_handoffs_happen)
{
    const unsigned ts[] = {2, 3, 8};
    for (size_t k = 0; k < 3; k++) {
        unsigned t = ts[k];
        struct handoff_ctx c = {.cap = 2000000, .last = -1};
        hy_run_opts o = {.backend = HY_BACKEND_LOCKED, .threads = t, .nogil = HY_NOGIL_HOLD,
                         .switch_interval_us = 100};
        hy_run_stats st;
        hy_error err = {0};
        int rc = hy_host_run(eng, &o, 0, handoff_task, &c, &st, &err);
        cr_assert_eq(rc, 0, "handoffs threads=%u: run returned %d %s", t, rc, err.msg);
        for (unsigned i = 0; i < t; i++)
            cr_assert(c.saw_switch[i],
                      "handoffs threads=%u: thread %u never saw the lock change hands in %u "
                      "iterations",
                      t, i, c.iterations[i]);
        cr_assert_gt(st.lock_handoffs, 0, "handoffs threads=%u: lock_handoffs 0", t);
        cr_assert_gt(st.lock_drop_requests, 0, "handoffs threads=%u: lock_drop_requests 0", t);
        cr_assert_geq(st.lock_acquisitions, t, "handoffs threads=%u: acquisitions %" PRIu64, t,
                      st.lock_acquisitions);
        cr_assert_geq(st.lock_acquisitions, st.lock_handoffs,
                      "handoffs threads=%u: more hand-offs (%" PRIu64 ") than acquisitions (%" PRIu64
                      ")",
                      t, st.lock_handoffs, st.lock_acquisitions);
        cr_assert_eq(st.lock_max_holders, 1, "handoffs threads=%u: lock_max_holders %u", t,
                     st.lock_max_holders);
    }
}

/* ---- nogil: native sections overlap with RELEASE, never with HOLD ---- */

#define RENDEZVOUS_CAP 5000000u

struct meet_ctx {
    atomic_uint arrived;
    atomic_bool met[HY_HOST_MAX_THREADS];
    atomic_uint inside; /* threads between take and drop, checked after the section */
    atomic_bool violation;
};

/* RELEASE: every thread enters its native section and waits, without ticking, until all T
 * are in theirs: only possible if none of them holds the runtime lock. */
static int meet_task(hy_worker *w, void *arg)
{
    struct meet_ctx *c = arg;
    unsigned t = hy_worker_count(w);
    hy_worker_native_begin(w);
    atomic_fetch_add(&c->arrived, 1);
    for (unsigned i = 0; i < RENDEZVOUS_CAP; i++) {
        if (atomic_load(&c->arrived) == t) {
            atomic_store(&c->met[hy_worker_id(w)], true);
            break;
        }
        sched_yield();
    }
    hy_worker_native_end(w);
    /* Back under the lock: exclusive again. */
    for (unsigned i = 0; i < 200; i++) {
        if (atomic_fetch_add(&c->inside, 1) != 0)
            atomic_store(&c->violation, true);
        burn(20);
        atomic_fetch_sub(&c->inside, 1);
        int rc = hy_worker_tick(w, 1);
        if (rc != 0)
            return rc;
    }
    return 0;
}

Test(runtime, nogil_release_overlaps)
{
    for (unsigned t = 2; t <= 3; t++) {
        struct meet_ctx c = {0};
        hy_run_opts o = {.backend = HY_BACKEND_LOCKED, .threads = t, .nogil = HY_NOGIL_RELEASE,
                         .switch_interval_us = 100};
        hy_run_stats st;
        hy_error err = {0};
        int rc = hy_host_run(eng, &o, 0, meet_task, &c, &st, &err);
        cr_assert_eq(rc, 0, "nogil release threads=%u: run returned %d %s", t, rc, err.msg);
        for (unsigned i = 0; i < t; i++)
            cr_assert(atomic_load(&c.met[i]),
                      "nogil release threads=%u: thread %u never saw all %u threads inside their "
                      "native sections at once (%u arrived)",
                      t, i, t, atomic_load(&c.arrived));
        cr_assert(!atomic_load(&c.violation),
                  "nogil release threads=%u: two threads inside the lock after native_end", t);
        cr_assert_eq(st.nogil, true, "nogil release threads=%u: stats.nogil", t);
        cr_assert_eq(st.lock_max_holders, 1, "nogil release threads=%u: lock_max_holders %u", t,
                     st.lock_max_holders);
    }
}

#define HOLD_CHECKS 3000u
#define HOLD_CAP 1000000u

struct hold_ctx {
    atomic_uint running; /* threads running native-section code right now */
    atomic_uint most;    /* the most ever seen at once */
    int last;            /* who ran the last check; under the lock */
    bool saw_switch[HY_HOST_MAX_THREADS];
};

/* HOLD: the same attempt to meet, but a thread counts itself only while it runs, and ticks
 * between checks so the lock rotates. Only one may ever be running: the meeting of T never
 * happens, and the cap ends every thread's loop. */
static int hold_task(hy_worker *w, void *arg)
{
    struct hold_ctx *c = arg;
    unsigned id = hy_worker_id(w);
    hy_worker_native_begin(w);
    for (unsigned i = 0; i < HOLD_CAP && (i < HOLD_CHECKS || !c->saw_switch[id]); i++) {
        unsigned now = atomic_fetch_add(&c->running, 1) + 1;
        unsigned most = atomic_load(&c->most);
        while (now > most && !atomic_compare_exchange_weak(&c->most, &most, now)) {
        }
        if (c->last >= 0 && c->last != (int)id)
            c->saw_switch[id] = true;
        c->last = (int)id;
        sched_yield();
        now = atomic_load(&c->running);
        most = atomic_load(&c->most);
        while (now > most && !atomic_compare_exchange_weak(&c->most, &most, now)) {
        }
        atomic_fetch_sub(&c->running, 1);
        int rc = hy_worker_tick(w, 1);
        if (rc != 0) {
            hy_worker_native_end(w);
            return rc;
        }
    }
    hy_worker_native_end(w);
    return 0;
}

Test(runtime, nogil_hold_never_overlaps)
{
    for (unsigned t = 2; t <= 3; t++) {
        struct hold_ctx c = {.last = -1};
        hy_run_opts o = {.backend = HY_BACKEND_LOCKED, .threads = t, .nogil = HY_NOGIL_HOLD,
                         .switch_interval_us = 100};
        hy_run_stats st;
        hy_error err = {0};
        int rc = hy_host_run(eng, &o, 0, hold_task, &c, &st, &err);
        cr_assert_eq(rc, 0, "nogil hold threads=%u: run returned %d %s", t, rc, err.msg);
        cr_assert_eq(atomic_load(&c.most), 1,
                     "nogil hold threads=%u: %u threads ran native sections at once", t,
                     atomic_load(&c.most));
        /* The lock did rotate: every thread ran while the others were mid-job. */
        for (unsigned i = 0; i < t; i++)
            cr_assert(c.saw_switch[i], "nogil hold threads=%u: thread %u never saw a switch", t,
                      i);
        cr_assert_gt(st.lock_handoffs, 0, "nogil hold threads=%u: no hand-offs", t);
        cr_assert_eq(st.nogil, false, "nogil hold threads=%u: stats.nogil", t);
    }
}

/* ---- barriers ---- */

#define PHASES 8u

struct phase_ctx {
    atomic_uint done[PHASES];
    atomic_bool early; /* a thread passed a barrier before every thread did the phase */
    int barrier_rc[HY_HOST_MAX_THREADS];
};

static int phase_task(hy_worker *w, void *arg)
{
    struct phase_ctx *c = arg;
    unsigned id = hy_worker_id(w), t = hy_worker_count(w);
    for (unsigned p = 0; p < PHASES; p++) {
        burn(1000 * (id + 1)); /* uneven work, so threads reach the barrier at different times */
        atomic_fetch_add(&c->done[p], 1);
        int rc = hy_worker_barrier(w);
        if (rc != 0) {
            c->barrier_rc[id] = rc;
            return rc;
        }
        if (atomic_load(&c->done[p]) != t)
            atomic_store(&c->early, true);
    }
    return 0;
}

Test(runtime, barrier_phases)
{
    const struct {
        int backend;
        unsigned threads;
        int nogil;
    } cfgs[] = {
        {HY_BACKEND_LOCKED, 3, HY_NOGIL_HOLD},    {HY_BACKEND_LOCKED, 8, HY_NOGIL_HOLD},
        {HY_BACKEND_LOCKED, 3, HY_NOGIL_RELEASE}, {HY_BACKEND_NATIVE, 3, 0},
        {HY_BACKEND_NATIVE, 8, 0},                {HY_BACKEND_SERIAL, 1, 0},
        {HY_BACKEND_LOCKED, 1, HY_NOGIL_HOLD},
    };
    for (size_t k = 0; k < sizeof cfgs / sizeof cfgs[0]; k++) {
        struct phase_ctx c = {0};
        hy_run_opts o = {.backend = cfgs[k].backend, .threads = cfgs[k].threads,
                         .nogil = cfgs[k].nogil};
        hy_run_stats st;
        hy_error err = {0};
        int rc = hy_host_run(eng, &o, 0, phase_task, &c, &st, &err);
        cr_assert_eq(rc, 0, "barrier backend=%s threads=%u nogil=%s: run returned %d %s",
                     backend_s(cfgs[k].backend), cfgs[k].threads, nogil_s(cfgs[k].nogil), rc,
                     err.msg);
        cr_assert(!atomic_load(&c.early),
                  "barrier backend=%s threads=%u nogil=%s: a thread passed a barrier before "
                  "all threads had done the phase",
                  backend_s(cfgs[k].backend), cfgs[k].threads, nogil_s(cfgs[k].nogil));
        for (unsigned p = 0; p < PHASES; p++)
            cr_assert_eq(atomic_load(&c.done[p]), cfgs[k].threads,
                         "barrier backend=%s threads=%u: phase %u done by %u threads",
                         backend_s(cfgs[k].backend), cfgs[k].threads, p,
                         atomic_load(&c.done[p]));
        if (cfgs[k].backend == HY_BACKEND_LOCKED)
            cr_assert_eq(st.lock_max_holders, 1, "barrier locked threads=%u: max holders %u",
                         cfgs[k].threads, st.lock_max_holders);
    }
}

/* ---- cancellation ---- */

struct cancel_log {
    atomic_uint calls;
    uint64_t last_done, total;
    bool bad_order, over_total, total_changed;
    unsigned cancel_from; /* 0: never */
};

static int on_progress(void *ctx, uint64_t done, uint64_t total)
{
    struct cancel_log *p = ctx;
    unsigned n = atomic_fetch_add(&p->calls, 1) + 1;
    if (n == 1)
        p->total = total;
    else if (total != p->total)
        p->total_changed = true;
    if (done < p->last_done)
        p->bad_order = true;
    if (done > total)
        p->over_total = true;
    p->last_done = done;
    return p->cancel_from != 0 && n >= p->cancel_from;
}

#define TICK_CAP 400000000u

struct tick_ctx {
    int rc[HY_HOST_MAX_THREADS];
    uint64_t ticks[HY_HOST_MAX_THREADS];
};

/* Ticks until the job is cancelled; the cap makes a cancellation that never comes fail. */
static int tick_until_cancel(hy_worker *w, void *arg)
{
    struct tick_ctx *c = arg;
    unsigned id = hy_worker_id(w);
    int rc = 0;
    for (uint64_t i = 0; i < TICK_CAP && rc == 0; i++) {
        burn(10);
        rc = hy_worker_tick(w, 1);
        c->ticks[id]++;
    }
    c->rc[id] = rc;
    return rc;
}

static const struct {
    int backend;
    unsigned threads;
    int nogil;
} cancel_cfgs[] = {
    {HY_BACKEND_SERIAL, 1, 0},
    {HY_BACKEND_NATIVE, 1, 0},
    {HY_BACKEND_NATIVE, 2, 0},
    {HY_BACKEND_NATIVE, 3, 0},
    {HY_BACKEND_NATIVE, 8, 0},
    {HY_BACKEND_LOCKED, 1, HY_NOGIL_HOLD},
    {HY_BACKEND_LOCKED, 2, HY_NOGIL_HOLD},
    {HY_BACKEND_LOCKED, 3, HY_NOGIL_HOLD},
    {HY_BACKEND_LOCKED, 8, HY_NOGIL_HOLD},
    {HY_BACKEND_LOCKED, 3, HY_NOGIL_RELEASE},
};
#define NCANCEL (sizeof cancel_cfgs / sizeof cancel_cfgs[0])

Test(runtime, cancel_from_progress)
{
    for (size_t k = 0; k < NCANCEL; k++) {
        unsigned t = cancel_cfgs[k].threads;
        struct tick_ctx c = {0};
        struct cancel_log log = {.cancel_from = 1};
        hy_run_opts o = {.backend = cancel_cfgs[k].backend, .threads = t,
                         .nogil = cancel_cfgs[k].nogil, .switch_interval_us = 200,
                         .progress = on_progress, .progress_ctx = &log};
        hy_run_stats st;
        hy_error err = {0};
        const uint64_t total = UINT64_C(1) << 40;
        int rc = hy_host_run(eng, &o, total, tick_until_cancel, &c, &st, &err);
        cr_assert_eq(rc, HY_ECANCELED, "cancel backend=%s threads=%u nogil=%s: run returned %d %s",
                     backend_s(cancel_cfgs[k].backend), t, nogil_s(cancel_cfgs[k].nogil), rc,
                     err.msg);
        cr_assert_eq(err.code, HY_ECANCELED, "cancel: err.code %d", err.code);
        cr_assert(err.msg[0] != '\0', "cancel backend=%s threads=%u: empty message",
                  backend_s(cancel_cfgs[k].backend), t);
        for (unsigned i = 0; i < t; i++)
            cr_assert_eq(c.rc[i], HY_ECANCELED,
                         "cancel backend=%s threads=%u: thread %u's ticks ended with %d after %" PRIu64
                         " ticks",
                         backend_s(cancel_cfgs[k].backend), t, i, c.rc[i], c.ticks[i]);
        cr_assert_geq(atomic_load(&log.calls), 1, "progress never called");
        cr_assert_eq(log.total, total, "progress total %" PRIu64 ", want %" PRIu64, log.total,
                     total);
        cr_assert(!log.bad_order && !log.over_total && !log.total_changed,
                  "progress: decreasing %d, done > total %d, total changed %d", log.bad_order,
                  log.over_total, log.total_changed);
    }
}

struct cancel_barrier_ctx {
    int first_rc[HY_HOST_MAX_THREADS];
    int second_rc[HY_HOST_MAX_THREADS];
    int tick_rc;
};

/* Everyone passes a first barrier (0); then thread 0 ticks until the progress callback
 * cancels while the others already wait at the second barrier: all must get ECANCELED. */
static int cancel_barrier_task(hy_worker *w, void *arg)
{
    struct cancel_barrier_ctx *c = arg;
    unsigned id = hy_worker_id(w);
    c->first_rc[id] = hy_worker_barrier(w);
    if (id == 0) {
        int rc = 0;
        for (uint64_t i = 0; i < TICK_CAP && rc == 0; i++) {
            burn(10);
            rc = hy_worker_tick(w, 1);
        }
        c->tick_rc = rc;
    }
    c->second_rc[id] = hy_worker_barrier(w);
    return c->second_rc[id];
}

Test(runtime, cancel_seen_at_barrier)
{
    for (size_t k = 0; k < NCANCEL; k++) {
        unsigned t = cancel_cfgs[k].threads;
        struct cancel_barrier_ctx c;
        memset(&c, 0x55, sizeof c); /* nothing set by accident */
        struct cancel_log log = {.cancel_from = 1};
        hy_run_opts o = {.backend = cancel_cfgs[k].backend, .threads = t,
                         .nogil = cancel_cfgs[k].nogil, .progress = on_progress,
                         .progress_ctx = &log};
        hy_run_stats st;
        hy_error err = {0};
        int rc = hy_host_run(eng, &o, 1000, cancel_barrier_task, &c, &st, &err);
        cr_assert_eq(rc, HY_ECANCELED, "barrier cancel backend=%s threads=%u: run returned %d %s",
                     backend_s(cancel_cfgs[k].backend), t, rc, err.msg);
        cr_assert_eq(c.tick_rc, HY_ECANCELED, "barrier cancel: thread 0's ticks ended with %d",
                     c.tick_rc);
        for (unsigned i = 0; i < t; i++) {
            cr_assert_eq(c.first_rc[i], 0,
                         "barrier cancel backend=%s threads=%u: thread %u's first barrier %d",
                         backend_s(cancel_cfgs[k].backend), t, i, c.first_rc[i]);
            cr_assert_eq(c.second_rc[i], HY_ECANCELED,
                         "barrier cancel backend=%s threads=%u: thread %u's barrier after the "
                         "cancel returned %d",
                         backend_s(cancel_cfgs[k].backend), t, i, c.second_rc[i]);
        }
    }
}

/* ---- a task's error ---- */

struct fail_ctx {
    unsigned failing;  /* the thread that fails */
    int code;          /* with this */
    atomic_uint at_barrier;
    atomic_bool released[HY_HOST_MAX_THREADS];
    int barrier_rc[HY_HOST_MAX_THREADS];
};

/* The others wait at a barrier; the failing thread returns once they are all there. */
static int fail_task(hy_worker *w, void *arg)
{
    struct fail_ctx *c = arg;
    unsigned id = hy_worker_id(w), t = hy_worker_count(w);
    if (id == c->failing) {
        /* Bounded: if the others cannot get there, fail anyway. */
        /* Ticking lets a locked runtime's lock go to the others on their way. */
        for (unsigned i = 0; i < RENDEZVOUS_CAP && atomic_load(&c->at_barrier) < t - 1; i++) {
            sched_yield();
            hy_worker_tick(w, 1);
        }
        for (unsigned i = 0; i < 1000; i++) { /* let them settle into the wait */
            sched_yield();
            hy_worker_tick(w, 1);
        }
        return c->code;
    }
    atomic_fetch_add(&c->at_barrier, 1);
    c->barrier_rc[id] = hy_worker_barrier(w);
    atomic_store(&c->released[id], true);
    return 0;
}

static const struct {
    int backend;
    unsigned threads;
    int nogil;
} fail_cfgs[] = {
    {HY_BACKEND_NATIVE, 2, 0},
    {HY_BACKEND_NATIVE, 3, 0},
    {HY_BACKEND_NATIVE, 8, 0},
    {HY_BACKEND_LOCKED, 3, HY_NOGIL_RELEASE},
    {HY_BACKEND_LOCKED, 3, HY_NOGIL_HOLD},
};

Test(runtime, task_error_returned_and_barrier_released)
{
    const int codes[] = {HY_EINVAL, HY_ENOMEM, HY_EINTERNAL};
    for (size_t k = 0; k < sizeof fail_cfgs / sizeof fail_cfgs[0]; k++)
        for (size_t e = 0; e < 3; e++) {
            unsigned t = fail_cfgs[k].threads;
            struct fail_ctx c = {.failing = 1, .code = codes[e]};
            hy_run_opts o = {.backend = fail_cfgs[k].backend, .threads = t,
                             .nogil = fail_cfgs[k].nogil};
            hy_run_stats st;
            hy_error err = {0};
            int rc = hy_host_run(eng, &o, 0, fail_task, &c, &st, &err);
            cr_assert_eq(rc, codes[e], "failing task backend=%s threads=%u: run returned %d (%s), "
                         "want %d (%s)",
                         backend_s(fail_cfgs[k].backend), t, rc, hy_err_name(rc), codes[e],
                         hy_err_name(codes[e]));
            cr_assert(err.msg[0] != '\0', "failing task: empty message");
            for (unsigned i = 0; i < t; i++)
                if (i != c.failing)
                    cr_assert(atomic_load(&c.released[i]),
                              "failing task backend=%s threads=%u: thread %u not released from "
                              "the barrier",
                              backend_s(fail_cfgs[k].backend), t, i);
        }
}

/* After a thread has failed, the job is stopped ("one failed thread stops the others"), so a
 * barrier it leaves must not tell the waiting threads that everyone got there. */
Test(runtime, barrier_after_failure_reports_cancel)
{
    for (size_t k = 0; k < sizeof fail_cfgs / sizeof fail_cfgs[0]; k++) {
        unsigned t = fail_cfgs[k].threads;
        struct fail_ctx c = {.failing = 1, .code = HY_EINVAL};
        hy_run_opts o = {.backend = fail_cfgs[k].backend, .threads = t,
                         .nogil = fail_cfgs[k].nogil};
        hy_error err = {0};
        int rc = hy_host_run(eng, &o, 0, fail_task, &c, NULL, &err);
        cr_assert_eq(rc, HY_EINVAL, "run returned %d", rc);
        for (unsigned i = 0; i < t; i++)
            if (i != c.failing)
                cr_assert_eq(c.barrier_rc[i], HY_ECANCELED,
                             "backend=%s threads=%u: thread %u's barrier returned %d after thread "
                             "%u failed with EINVAL; want ECANCELED",
                             backend_s(fail_cfgs[k].backend), t, i, c.barrier_rc[i], c.failing);
    }
}

/* A real error wins over the cancellations it causes. */
struct fail_late_ctx {
    atomic_uint ticking;
};

static int fail_late_task(hy_worker *w, void *arg)
{
    struct fail_late_ctx *c = arg;
    unsigned id = hy_worker_id(w), t = hy_worker_count(w);
    if (id == t - 1) {
        for (unsigned i = 0; i < RENDEZVOUS_CAP && atomic_load(&c->ticking) < t - 1; i++)
            sched_yield();
        return HY_EINVAL;
    }
    atomic_fetch_add(&c->ticking, 1);
    int rc = 0;
    for (uint64_t i = 0; i < TICK_CAP && rc == 0; i++) {
        burn(10);
        rc = hy_worker_tick(w, 1);
    }
    return rc;
}

Test(runtime, error_beats_cancel)
{
    const unsigned ts[] = {2, 3, 8};
    for (size_t k = 0; k < 3; k++) {
        struct fail_late_ctx c = {0};
        hy_run_opts o = {.backend = HY_BACKEND_NATIVE, .threads = ts[k]};
        hy_error err = {0};
        int rc = hy_host_run(eng, &o, 0, fail_late_task, &c, NULL, &err);
        cr_assert_eq(rc, HY_EINVAL, "native threads=%u: a failing thread's EINVAL became %d (%s)",
                     ts[k], rc, hy_err_name(rc));
    }
}

/* ---- ids and threads ---- */

struct id_ctx {
    atomic_uint seen[HY_HOST_MAX_THREADS];
    unsigned count[HY_HOST_MAX_THREADS];
    pid_t tid[HY_HOST_MAX_THREADS];
};

static int id_task(hy_worker *w, void *arg)
{
    struct id_ctx *c = arg;
    unsigned id = hy_worker_id(w);
    if (id < HY_HOST_MAX_THREADS) {
        atomic_fetch_add(&c->seen[id], 1);
        c->count[id] = hy_worker_count(w);
        c->tid[id] = (pid_t)syscall(SYS_gettid);
    }
    return 0;
}

Test(runtime, worker_ids)
{
    const struct {
        int backend;
        unsigned threads;
    } cfgs[] = {
        {HY_BACKEND_NATIVE, 8}, {HY_BACKEND_NATIVE, 1}, {HY_BACKEND_NATIVE, 3},
        {HY_BACKEND_LOCKED, 8}, {HY_BACKEND_LOCKED, 2}, {HY_BACKEND_SERIAL, 1},
    };
    pid_t me = (pid_t)syscall(SYS_gettid);
    for (int rep = 0; rep < 20; rep++) /* repeated: pool threads are reused across jobs */
        for (size_t k = 0; k < sizeof cfgs / sizeof cfgs[0]; k++) {
            unsigned t = cfgs[k].threads;
            struct id_ctx c = {0};
            hy_run_opts o = {.backend = cfgs[k].backend, .threads = t};
            hy_run_stats st;
            hy_error err = {0};
            int rc = hy_host_run(eng, &o, 0, id_task, &c, &st, &err);
            cr_assert_eq(rc, 0, "ids backend=%s threads=%u: %d %s", backend_s(cfgs[k].backend), t,
                         rc, err.msg);
            for (unsigned i = 0; i < HY_HOST_MAX_THREADS; i++)
                cr_assert_eq(atomic_load(&c.seen[i]), i < t ? 1u : 0u,
                             "ids backend=%s threads=%u: id %u seen %u times",
                             backend_s(cfgs[k].backend), t, i, atomic_load(&c.seen[i]));
            for (unsigned i = 0; i < t; i++) {
                cr_assert_eq(c.count[i], t, "ids backend=%s: hy_worker_count %u, want %u",
                             backend_s(cfgs[k].backend), c.count[i], t);
                for (unsigned j = 0; j < i; j++)
                    cr_assert_neq(c.tid[i], c.tid[j],
                                  "ids backend=%s threads=%u: ids %u and %u on one OS thread",
                                  backend_s(cfgs[k].backend), t, i, j);
                if (cfgs[k].backend == HY_BACKEND_SERIAL)
                    cr_assert_eq(c.tid[i], me, "serial did not run on the calling thread");
                else
                    cr_assert_neq(c.tid[i], me, "backend=%s ran on the calling thread",
                                  backend_s(cfgs[k].backend));
            }
            cr_assert_eq(st.threads, t, "stats.threads %u, want %u", st.threads, t);
            cr_assert_eq(st.copies, 1, "stats.copies %u", st.copies);
        }
}

/* ---- stats ---- */

struct work_ctx {
    unsigned ticks;
};

static int work_task(hy_worker *w, void *arg)
{
    struct work_ctx *c = arg;
    for (unsigned i = 0; i < c->ticks; i++) {
        burn(2000);
        int rc = hy_worker_tick(w, 1);
        if (rc != 0)
            return rc;
    }
    return 0;
}

Test(runtime, stats)
{
    const struct {
        int backend;
        unsigned threads;
        int nogil;
    } cfgs[] = {
        {HY_BACKEND_SERIAL, 1, 0},
        {HY_BACKEND_NATIVE, 1, 0},
        {HY_BACKEND_NATIVE, 3, 0},
        {HY_BACKEND_NATIVE, 8, 0},
        {HY_BACKEND_LOCKED, 2, HY_NOGIL_HOLD},
        {HY_BACKEND_LOCKED, 3, HY_NOGIL_HOLD},
        {HY_BACKEND_LOCKED, 8, HY_NOGIL_HOLD},
        {HY_BACKEND_LOCKED, 2, 0}, /* hy_host_run's default is HOLD */
    };
    for (size_t k = 0; k < sizeof cfgs / sizeof cfgs[0]; k++) {
        unsigned t = cfgs[k].threads;
        int b = cfgs[k].backend;
        struct work_ctx c = {.ticks = 200};
        hy_run_opts o = {.backend = b, .threads = t, .nogil = cfgs[k].nogil,
                         .switch_interval_us = 200};
        hy_run_stats st;
        memset(&st, 0xAB, sizeof st); /* every field must be written */
        hy_error err = {0};
        int rc = hy_host_run(eng, &o, 0, work_task, &c, &st, &err);
        cr_assert_eq(rc, 0, "stats backend=%s threads=%u: %d %s", backend_s(b), t, rc, err.msg);
        cr_assert_eq(st.threads, t, "stats.threads %u", st.threads);
        cr_assert_eq(st.copies, 1, "stats.copies %u", st.copies);
        cr_assert_gt(st.wall_ns, 0, "wall_ns 0");
        for (unsigned i = 0; i < HY_HOST_MAX_THREADS; i++) {
            if (i < t)
                cr_assert_gt(st.busy_ns[i], 0, "stats backend=%s threads=%u: busy_ns[%u] is 0",
                             backend_s(b), t, i);
            else
                cr_assert_eq(st.busy_ns[i], 0,
                             "stats backend=%s threads=%u: busy_ns[%u] = %" PRIu64
                             " for a thread not in the job",
                             backend_s(b), t, i, st.busy_ns[i]);
        }
        if (b == HY_BACKEND_LOCKED) {
            cr_assert_gt(st.lock_wait_ns, 0, "locked threads=%u: lock_wait_ns 0", t);
            cr_assert_gt(st.lock_hold_ns, 0, "locked threads=%u: lock_hold_ns 0", t);
            cr_assert_geq(st.lock_acquisitions, t, "locked threads=%u: acquisitions %" PRIu64, t,
                          st.lock_acquisitions);
            cr_assert_eq(st.lock_max_holders, 1, "locked threads=%u: max holders %u", t,
                         st.lock_max_holders);
            cr_assert_eq(st.nogil, false, "locked threads=%u: stats.nogil", t);
            /* Holding plus waiting cannot exceed what the threads had: T x wall. */
            cr_assert_leq(st.lock_hold_ns, (uint64_t)t * st.wall_ns,
                          "locked threads=%u: hold %" PRIu64 " > T x wall %" PRIu64, t,
                          st.lock_hold_ns, (uint64_t)t * st.wall_ns);
        } else {
            cr_assert(st.lock_acquisitions == 0 && st.lock_handoffs == 0 &&
                          st.lock_drop_requests == 0 && st.lock_wait_ns == 0 &&
                          st.lock_hold_ns == 0 && st.lock_max_holders == 0 && !st.nogil,
                      "backend=%s threads=%u: lock stats not zero (acq %" PRIu64 " wait %" PRIu64
                      " hold %" PRIu64 ")",
                      backend_s(b), t, st.lock_acquisitions, st.lock_wait_ns, st.lock_hold_ns);
        }
    }
}

/* Progress on hy_host_run: total_work is passed through; done sums the ticks' work. */
struct count_ctx {
    unsigned ticks;
};

static int count_task(hy_worker *w, void *arg)
{
    struct count_ctx *c = arg;
    for (unsigned i = 0; i < c->ticks; i++) {
        burn(3000);
        int rc = hy_worker_tick(w, 3);
        if (rc != 0)
            return rc;
    }
    return 0;
}

Test(runtime, progress_values)
{
    for (size_t k = 0; k < NCANCEL; k++) {
        unsigned t = cancel_cfgs[k].threads;
        struct count_ctx c = {.ticks = 2000};
        struct cancel_log log = {0};
        const uint64_t total = (uint64_t)t * c.ticks * 3;
        hy_run_opts o = {.backend = cancel_cfgs[k].backend, .threads = t,
                         .nogil = cancel_cfgs[k].nogil, .switch_interval_us = 200,
                         .progress = on_progress, .progress_ctx = &log};
        hy_error err = {0};
        int rc = hy_host_run(eng, &o, total, count_task, &c, NULL, &err);
        cr_assert_eq(rc, 0, "progress backend=%s threads=%u: %d %s",
                     backend_s(cancel_cfgs[k].backend), t, rc, err.msg);
        cr_assert(!log.bad_order && !log.over_total && !log.total_changed,
                  "progress backend=%s threads=%u: decreasing %d, done > total %d, total "
                  "changed %d",
                  backend_s(cancel_cfgs[k].backend), t, log.bad_order, log.over_total,
                  log.total_changed);
        if (atomic_load(&log.calls) > 0)
            cr_assert_eq(log.total, total, "progress total %" PRIu64 ", want %" PRIu64, log.total,
                         total);
    }
}

/* ---- engines and bad arguments ---- */

static int noop_task(hy_worker *w, void *arg)
{
    (void)w;
    (void)arg;
    return 0;
}

Test(runtime, run_bad_arguments)
{
    hy_error err = {0};
    hy_run_opts ok = {.backend = HY_BACKEND_NATIVE, .threads = 2};
    int rc = hy_host_run(eng, &ok, 0, NULL, NULL, NULL, &err);
    cr_assert_eq(rc, HY_EINVAL, "NULL task: %d", rc);
    cr_assert(err.msg[0] != '\0', "NULL task: empty message");
    rc = hy_host_run(eng, NULL, 0, noop_task, NULL, NULL, &err);
    cr_assert_eq(rc, HY_EINVAL, "NULL options: %d", rc);
    const struct {
        hy_run_opts o;
        int want;
    } bad[] = {
        {{.backend = HY_BACKEND_NATIVE, .threads = 0}, HY_EINVAL},
        {{.backend = HY_BACKEND_NATIVE, .threads = ENGINE_THREADS + 1}, HY_ELIMIT},
        {{.backend = HY_BACKEND_SERIAL, .threads = 2}, HY_EINVAL},
        {{.backend = HY_BACKEND_OPENCL, .threads = 1}, HY_EBACKEND},
        {{.backend = 42, .threads = 1}, HY_EBACKEND},
        {{.backend = HY_BACKEND_LOCKED, .threads = 1, .nogil = 5}, HY_EINVAL},
        {{.backend = HY_BACKEND_NATIVE, .threads = 1, .mode = 5}, HY_EINVAL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        rc = hy_host_run(eng, &bad[i].o, 0, noop_task, NULL, NULL, &err);
        cr_assert_eq(rc, bad[i].want, "bad run options #%zu: %d, want %d", i, rc, bad[i].want);
        cr_assert(err.msg[0] != '\0', "bad run options #%zu: empty message", i);
    }
    rc = hy_host_run(eng, &ok, 0, noop_task, NULL, NULL, NULL);
    cr_assert_eq(rc, 0, "a good run after bad ones: %d", rc);
}

Test(runtime, create_limits)
{
    hy_host *h = eng; /* not NULL, so the test sees a failed create clear it */
    hy_error err = {0};
    int rc = hy_host_create(&(hy_host_config){.threads = HY_HOST_MAX_THREADS + 1}, &h, &err);
    cr_assert_eq(rc, HY_ELIMIT, "threads = MAX + 1: %d", rc);
    cr_assert_eq(err.code, HY_ELIMIT, "err.code %d", err.code);
    cr_assert(err.msg[0] != '\0', "threads = MAX + 1: empty message");
    cr_assert_null(h, "a failed create left *out set");
    rc = hy_host_create(&(hy_host_config){.threads = UINT32_MAX}, &h, NULL);
    cr_assert_eq(rc, HY_ELIMIT, "threads = UINT32_MAX: %d", rc);

    rc = hy_host_create(&(hy_host_config){.threads = 0}, &h, &err);
    cr_assert_eq(rc, 0, "threads = 0: %d %s", rc, err.msg);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned want = cpus < 1 ? 1 : cpus > HY_HOST_MAX_THREADS ? HY_HOST_MAX_THREADS : (unsigned)cpus;
    cr_assert_geq(hy_host_threads(h), 1, "threads = 0 gave %u threads", hy_host_threads(h));
    cr_assert_eq(hy_host_threads(h), want, "threads = 0 gave %u threads, %u CPUs online",
                 hy_host_threads(h), want);
    struct id_ctx c = {0};
    hy_run_opts o = {.backend = HY_BACKEND_NATIVE, .threads = hy_host_threads(h)};
    rc = hy_host_run(h, &o, 0, id_task, &c, NULL, &err);
    cr_assert_eq(rc, 0, "run on a default engine: %d %s", rc, err.msg);
    hy_host_destroy(h);

    rc = hy_host_create(&(hy_host_config){.threads = 1}, NULL, &err);
    cr_assert_eq(rc, HY_EINVAL, "NULL out: %d", rc);
    hy_host_destroy(NULL);
}

Test(runtime, create_destroy_loop)
{
    for (unsigned i = 0; i < 200; i++) {
        hy_host *h = NULL;
        hy_error err = {0};
        unsigned t = 1 + i % 5;
        int rc = hy_host_create(
            &(hy_host_config){.threads = t, .switch_interval_us = 50 + i}, &h, &err);
        cr_assert_eq(rc, 0, "create #%u (threads %u): %d %s", i, t, rc, err.msg);
        cr_assert_eq(hy_host_threads(h), t, "create #%u: %u threads", i, hy_host_threads(h));
        if (i % 3 == 0) { /* some engines run a job before they go, some never do */
            struct id_ctx c = {0};
            hy_run_opts o = {.backend = i % 2 ? HY_BACKEND_LOCKED : HY_BACKEND_NATIVE,
                             .threads = t};
            rc = hy_host_run(h, &o, 0, id_task, &c, NULL, &err);
            cr_assert_eq(rc, 0, "run on engine #%u: %d %s", i, rc, err.msg);
            for (unsigned j = 0; j < t; j++)
                cr_assert_eq(atomic_load(&c.seen[j]), 1, "engine #%u: id %u seen %u times", i, j,
                             atomic_load(&c.seen[j]));
        }
        hy_host_destroy(h);
    }
}

/* Jobs back to back on one engine with thread counts that go up and down: threads that sat
 * out one job must not stumble over the next (or over the gap between jobs). */
Test(runtime, back_to_back_jobs)
{
    const unsigned ts[] = {1, 8, 2, 1, 3, 8, 1, 5, 1, 2};
    for (unsigned rep = 0; rep < 300; rep++)
        for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++) {
            struct id_ctx c = {0};
            hy_run_opts o = {.backend = (rep + k) % 2 ? HY_BACKEND_LOCKED : HY_BACKEND_NATIVE,
                             .threads = ts[k]};
            hy_error err = {0};
            int rc = hy_host_run(eng, &o, 0, id_task, &c, NULL, &err);
            cr_assert_eq(rc, 0, "job %u.%zu (threads %u): %d %s", rep, k, ts[k], rc, err.msg);
            for (unsigned j = 0; j < ts[k]; j++)
                cr_assert_eq(atomic_load(&c.seen[j]), 1, "job %u.%zu: id %u seen %u times", rep, k,
                             j, atomic_load(&c.seen[j]));
        }
}

/* ---- hy_host_prefault: the first sort's scratch, ready before it ---- */

/* A line of /proc/self/status in KiB (VmRSS: now, VmHWM: the peak so far); -1 if unread. */
static long status_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ':')
            v = strtol(line + kl + 1, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

/* The block is resident as soon as the call returns, and a sort that fits in it borrows it
 * rather than faulting in scratch of its own (10^6 f64 on 8 threads wants ~33 MB of it): the
 * process's peak RSS does not move during the sort. */
Test(runtime, prefault_makes_scratch_resident_and_the_next_sort_reuses_it)
{
    if (getenv("HYBRIDD_SANITIZER")) /* sanitizers keep their own shadow and quarantine */
        cr_skip_test("RSS is not meaningful under a sanitizer");
    const size_t n = 1000000, block = (size_t)64 << 20;
    double *a = malloc(n * sizeof *a);
    cr_assert_not_null(a);
    for (size_t i = 0; i < n; i++)
        a[i] = (double)((i * 2654435761u) % 1000003u);
    long r0 = status_kib("VmRSS");
    hy_host_prefault(eng, block);
    long r1 = status_kib("VmRSS"), peak1 = status_kib("VmHWM");
    cr_assert(r0 > 0 && r1 > 0 && peak1 > 0, "cannot read /proc/self/status");
    cr_assert_geq(r1 - r0, (long)(block >> 10) - 1024, "RSS %ld KiB before, %ld after", r0, r1);
    hy_error err = {0};
    hy_run_opts o = {.backend = HY_BACKEND_NATIVE, .threads = ENGINE_THREADS};
    hy_sort_result res;
    cr_assert_eq(hy_host_sort(eng, HY_DT_F64, a, n, &o, &res, &err), 0, "%s", err.msg);
    long peak2 = status_kib("VmHWM");
    cr_assert_lt(peak2 - peak1, 4 * 1024, "peak RSS %ld KiB after the prefault, %ld after the "
                 "sort", peak1, peak2);
    for (size_t i = 1; i < n; i++)
        cr_assert_leq(a[i - 1], a[i], "not sorted at %zu", i);
    free(a);
}
