/* tests/proc: the process backend's pool driven directly — results identical to the thread
 * backends for pi and every sort dtype over both transports and T = 1, 2, 3; a worker killed
 * during a job or while idle; cancellation; and no leaked child, zombie or descriptor. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../children.h"
#include "host.h"
#include "proc.h"

#define WORKERS 3

static hy_proc_pool *pool;
static hy_host *host;

static void setup(void)
{
    hy_error e = {0};
    hy_proc_config pc = {.workers = WORKERS, .exe = HYBRIDD_BINARY};
    cr_assert_eq(hy_proc_pool_create(&pc, &pool, &e), 0, "pool: %s", e.msg);
    hy_host_config hc = {.threads = 2};
    cr_assert_eq(hy_host_create(&hc, &host, &e), 0, "engine: %s", e.msg);
}

static void teardown(void)
{
    hy_proc_pool_destroy(pool);
    hy_host_destroy(host);
    pool = NULL;
    host = NULL;
}

TestSuite(proc, .init = setup, .fini = teardown, .timeout = 120);

static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Random elements of the dtype; floats include NaNs of both signs with payloads, infinities,
 * signed zeros and duplicates, the cases where an order can go wrong. */
static void fill(void *a, int dtype, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        uint64_t r = mix(&s);
        unsigned pick = (unsigned)(r >> 58);
        double x = (double)(int64_t)(r >> 11) * 0x1p-40;
        if (pick == 0)
            x = NAN;
        else if (pick == 1)
            x = -NAN;
        else if (pick == 2)
            x = INFINITY;
        else if (pick == 3)
            x = -INFINITY;
        else if (pick == 4)
            x = 0.0;
        else if (pick == 5)
            x = -0.0;
        else if (pick < 12)
            x = (double)(pick - 6);
        switch (dtype) {
        case HY_DT_I32: ((int32_t *)a)[i] = (int32_t)r; break;
        case HY_DT_U32: ((uint32_t *)a)[i] = (uint32_t)(r >> 7); break;
        case HY_DT_I64: ((int64_t *)a)[i] = (int64_t)r; break;
        case HY_DT_U64: ((uint64_t *)a)[i] = pick < 8 ? pick : r; break;
        case HY_DT_F32: {
            float f = (float)x;
            if (pick == 0) { /* a NaN with a payload */
                uint32_t b = 0x7fc00000u | (uint32_t)(r & 0x3fffff);
                memcpy(&f, &b, sizeof f);
            }
            ((float *)a)[i] = f;
            break;
        }
        case HY_DT_F64:
            if (pick == 1) {
                uint64_t b = 0xfff8000000000000u | (r & 0xffffffffffu);
                memcpy(&x, &b, sizeof x);
            }
            ((double *)a)[i] = x;
            break;
        }
    }
}

/* The reference: the native backend's sort on two threads. */
static void reference_sort(int dtype, void *a, size_t n)
{
    hy_error e = {0};
    hy_run_opts ro = {.backend = HY_BACKEND_NATIVE, .threads = 2};
    hy_sort_result r;
    cr_assert_eq(hy_host_sort(host, dtype, a, n, &ro, &r, &e), 0, "native sort: %s", e.msg);
}

Test(proc, pi_hits_match_native_for_every_worker_count)
{
    const uint64_t ns[] = {1, 2, 3, 1000, 999983, 5000000};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        hy_error e = {0};
        hy_run_opts ro = {.backend = HY_BACKEND_NATIVE, .threads = 2};
        hy_pi_result ref;
        cr_assert_eq(hy_host_pi(host, 42 + k, ns[k], &ro, &ref, &e), 0, "%s", e.msg);
        for (unsigned t = 1; t <= WORKERS; t++) {
            hy_proc_opts o = {.workers = t, .transport = t == 2 ? HY_TRANSPORT_SHM : 0};
            hy_proc_stats st;
            uint64_t hits = ~0ull;
            cr_assert_eq(hy_proc_pi(pool, 42 + k, ns[k], &o, &hits, &st, &e), 0, "n %llu T %u: %s",
                         (unsigned long long)ns[k], t, e.msg);
            cr_expect_eq(hits, ref.hits, "n %llu T %u: %llu hits, native counted %llu",
                         (unsigned long long)ns[k], t, (unsigned long long)hits,
                         (unsigned long long)ref.hits);
            cr_expect_eq(st.workers, t);
        }
    }
}

/* Windows from `first` (a part of a job across MPI ranks): each equals the CPU reference for
 * its window, whatever the workers, and a window past 2^63 - 1 is refused. */
Test(proc, pi_windows_from_first_equal_the_reference)
{
    const uint64_t seed = 77, cuts[] = {0, 1, 1000, 999983, 2000003};
    for (size_t k = 0; k + 1 < sizeof cuts / sizeof cuts[0]; k++)
        for (unsigned t = 1; t <= WORKERS; t++) {
            hy_proc_opts o = {.workers = t, .first = cuts[k]};
            hy_proc_stats st;
            uint64_t hits = ~0ull;
            hy_error e = {0};
            uint64_t count = cuts[k + 1] - cuts[k];
            cr_assert_eq(hy_proc_pi(pool, seed, count, &o, &hits, &st, &e), 0, "%s", e.msg);
            cr_expect_eq(hits, hy_host_pi_hits_reference(seed, cuts[k], count),
                         "window %llu+%llu on %u workers", (unsigned long long)cuts[k],
                         (unsigned long long)count, t);
        }
    hy_proc_opts o = {.workers = 1, .first = INT64_MAX};
    hy_proc_stats st;
    uint64_t hits;
    hy_error e = {0};
    cr_expect_eq(hy_proc_pi(pool, seed, 1, &o, &hits, &st, &e), HY_ELIMIT);
    cr_expect(e.msg[0]);
}

/* Every dtype, both transports, T = 1..3, from private memory and (shm) from a memfd: the
 * same bytes as the native sort. */
Test(proc, sort_is_byte_identical_to_native)
{
    const int dtypes[] = {HY_DT_I32, HY_DT_U32, HY_DT_I64, HY_DT_U64, HY_DT_F32, HY_DT_F64};
    const size_t ns[] = {0, 1, 2, 5, 70001, 300007};
    for (size_t d = 0; d < 6; d++) {
        size_t size = hy_dtype_size(dtypes[d]);
        for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
            size_t n = ns[k], bytes = n * size;
            char *input = malloc(bytes + 1), *want = malloc(bytes + 1), *got = malloc(bytes + 1);
            cr_assert(input && want && got);
            fill(input, dtypes[d], n, 7 + k);
            memcpy(want, input, bytes);
            reference_sort(dtypes[d], want, n);
            for (int tr = HY_TRANSPORT_PIPE; tr <= HY_TRANSPORT_SHM; tr++) {
                for (unsigned t = 1; t <= WORKERS; t++) {
                    for (int use_fd = 0; use_fd <= (tr == HY_TRANSPORT_SHM); use_fd++) {
                        hy_error e = {0};
                        hy_proc_opts o = {.workers = t, .transport = tr};
                        hy_proc_stats st;
                        void *data = got;
                        int fd = -1;
                        if (use_fd && bytes) {
                            fd = memfd_create("test-proc", MFD_CLOEXEC);
                            cr_assert(fd >= 0 && ftruncate(fd, (off_t)bytes) == 0);
                            data = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                            cr_assert(data != MAP_FAILED);
                        }
                        if (bytes)
                            memcpy(data, input, bytes);
                        int rc = hy_proc_sort(pool, dtypes[d], data, fd, n, &o, &st, &e);
                        cr_assert_eq(rc, 0, "%s n %zu %s T %u fd %d: %s",
                                     hy_dtype_name(dtypes[d]), n, hy_transport_name(tr), t, fd,
                                     e.msg);
                        cr_expect(bytes == 0 || memcmp(data, want, bytes) == 0,
                                  "%s n %zu %s T %u (%s): not the native sort's bytes",
                                  hy_dtype_name(dtypes[d]), n, hy_transport_name(tr), t,
                                  fd >= 0 ? "memfd" : "private memory");
                        /* pipe moves every element out and back; shm over a memfd only
                         * offsets. */
                        if (n > 1000 && tr == HY_TRANSPORT_PIPE)
                            cr_expect_geq(st.bytes_moved, 2 * bytes);
                        if (n > 1000 && fd >= 0)
                            cr_expect_lt(st.bytes_moved, 64 * 1024, "shm over a memfd moved "
                                         "%llu bytes", (unsigned long long)st.bytes_moved);
                        if (fd >= 0) {
                            munmap(data, bytes);
                            close(fd);
                        }
                    }
                }
            }
            free(input);
            free(want);
            free(got);
        }
    }
}

/* Processes whose parent is this test. */
static unsigned children(pid_t parent, unsigned *zombies)
{
    unsigned n = hyt_children(parent, NULL, 0, zombies);
    cr_assert_neq(n, UINT32_MAX, "cannot read /proc");
    return n;
}

/* SIGKILLs an idle worker and returns once it has exited, without reaping it (the pool reaps
 * its own children). The kill is not done when kill() returns: until the worker has exited,
 * its channel shows no end of file, the pool takes it for alive, and the next job's request
 * goes to a worker about to die. */
static void kill_idle_worker(pid_t victim)
{
    cr_assert_gt(victim, 0);
    cr_assert_eq(kill(victim, SIGKILL), 0, "kill %d: %s", (int)victim, strerror(errno));
    siginfo_t si;
    int r;
    while ((r = waitid(P_PID, (id_t)victim, &si, WEXITED | WNOWAIT)) != 0 && errno == EINTR)
        ;
    cr_assert_eq(r, 0, "waitid %d: %s", (int)victim, strerror(errno));
}

struct killer {
    pid_t victim;
    int calls;
    bool killed;
};

static int kill_on_progress(void *ctx, uint64_t done, uint64_t total)
{
    (void)total;
    struct killer *k = ctx;
    k->calls++;
    if (!k->killed && done > 0) {
        kill(k->victim, SIGKILL);
        k->killed = true;
    }
    return 0;
}

static void expect_full_pool(const char *when)
{
    unsigned zombies, kids = children(getpid(), &zombies);
    cr_expect_eq(hy_proc_pool_live(pool), WORKERS, "%s: %u of %u workers live", when,
                 hy_proc_pool_live(pool), WORKERS);
    cr_expect_eq(kids, WORKERS, "%s: %u child processes, want %u", when, kids, WORKERS);
    cr_expect_eq(zombies, 0, "%s: %u zombies", when, zombies);
}

Test(proc, worker_killed_during_pi_fails_the_job_and_is_replaced)
{
    expect_full_pool("at start");
    struct killer k = {.victim = hy_proc_worker_pid(pool, 1)};
    cr_assert(k.victim > 0);
    /* Long enough (seconds) that progress arrives while every worker computes. */
    hy_proc_opts o = {.workers = WORKERS, .progress = kill_on_progress, .progress_ctx = &k};
    hy_proc_stats st;
    hy_error e = {0};
    uint64_t hits;
    int rc = hy_proc_pi(pool, 1, 6000000000ull, &o, &hits, &st, &e);
    cr_assert(k.killed, "progress never came");
    cr_expect_eq(rc, HY_EWORKER, "rc %d (%s), want EWORKER", rc, e.msg);
    cr_expect(strstr(e.msg, "killed by signal 9") != NULL, "message: %s", e.msg);
    cr_expect(strstr(e.msg, "worker 1") != NULL, "message: %s", e.msg);
    cr_expect_neq(hy_proc_worker_pid(pool, 1), k.victim, "the dead worker was not replaced");
    expect_full_pool("after the kill");
    /* The next job runs on the full pool and is right. */
    hy_proc_opts o2 = {.workers = WORKERS, .transport = HY_TRANSPORT_PIPE};
    cr_assert_eq(hy_proc_pi(pool, 5, 100000, &o2, &hits, &st, &e), 0, "%s", e.msg);
    cr_expect_eq(hits, hy_host_pi_hits_reference(5, 0, 100000));
    cr_expect_eq(st.started, 0, "no restart should be needed");
}

Test(proc, worker_killed_during_shm_sort_fails_the_job_and_is_replaced)
{
    size_t n = 4000000;
    double *a = malloc(n * sizeof *a), *want = malloc(n * sizeof *want);
    cr_assert(a && want);
    fill(a, HY_DT_F64, n, 3);
    memcpy(want, a, n * sizeof *a);
    reference_sort(HY_DT_F64, want, n);
    struct killer k = {.victim = hy_proc_worker_pid(pool, 0)};
    hy_proc_opts o = {.workers = 2, .transport = HY_TRANSPORT_SHM, .progress = kill_on_progress,
                      .progress_ctx = &k};
    hy_proc_stats st;
    hy_error e = {0};
    int rc = hy_proc_sort(pool, HY_DT_F64, a, -1, n, &o, &st, &e);
    if (k.killed) { /* the sort may finish before progress reports it running */
        cr_expect_eq(rc, HY_EWORKER, "rc %d (%s)", rc, e.msg);
        expect_full_pool("after the kill");
    }
    fill(a, HY_DT_F64, n, 3);
    o.progress = NULL;
    cr_assert_eq(hy_proc_sort(pool, HY_DT_F64, a, -1, n, &o, &st, &e), 0, "%s", e.msg);
    cr_expect(memcmp(a, want, n * sizeof *a) == 0);
    free(a);
    free(want);
}

Test(proc, worker_killed_while_idle_is_restarted_by_the_next_job)
{
    pid_t victim = hy_proc_worker_pid(pool, 2);
    kill_idle_worker(victim);
    hy_proc_opts o = {.workers = WORKERS};
    hy_proc_stats st;
    hy_error e = {0};
    uint64_t hits;
    cr_assert_eq(hy_proc_pi(pool, 9, 300000, &o, &hits, &st, &e), 0, "%s", e.msg);
    cr_expect_eq(hits, hy_host_pi_hits_reference(9, 0, 300000));
    cr_expect_eq(st.started, 1, "workers started: %u, want 1", st.started);
    cr_expect_gt(st.startup_ns, 0);
    cr_expect_neq(hy_proc_worker_pid(pool, 2), victim);
    expect_full_pool("after the restart");
}

static int cancel_soon(void *ctx, uint64_t done, uint64_t total)
{
    (void)total;
    (void)ctx;
    return done > 0;
}

Test(proc, cancel_stops_every_worker_and_the_pool_goes_on)
{
    hy_proc_opts o = {.workers = WORKERS, .progress = cancel_soon};
    hy_proc_stats st;
    hy_error e = {0};
    uint64_t hits = 1;
    int rc = hy_proc_pi(pool, 1, 20000000000ull, &o, &hits, &st, &e);
    cr_expect_eq(rc, HY_ECANCELED, "rc %d (%s)", rc, e.msg);
    cr_expect_eq(hits, 0);
    /* Cancelled in the workers, not by killing them. */
    cr_expect_eq(st.started, 0);
    expect_full_pool("after the cancel");
    size_t n = 200000;
    int32_t *a = malloc(n * sizeof *a), *want = malloc(n * sizeof *a);
    cr_assert(a && want);
    fill(a, HY_DT_I32, n, 11);
    memcpy(want, a, n * sizeof *a);
    reference_sort(HY_DT_I32, want, n);
    hy_proc_opts o2 = {.workers = WORKERS, .transport = HY_TRANSPORT_SHM};
    cr_assert_eq(hy_proc_sort(pool, HY_DT_I32, a, -1, n, &o2, &st, &e), 0, "%s", e.msg);
    cr_expect(memcmp(a, want, n * sizeof *a) == 0);
    free(a);
    free(want);
}

Test(proc, bad_options_are_refused_with_a_sentence)
{
    hy_proc_stats st;
    hy_error e = {0};
    uint64_t hits;
    hy_proc_opts o = {.workers = WORKERS + 1};
    cr_expect_eq(hy_proc_pi(pool, 1, 100, &o, &hits, &st, &e), HY_EINVAL);
    cr_expect(strstr(e.msg, "workers") != NULL, "%s", e.msg);
    o.workers = 0;
    cr_expect_eq(hy_proc_pi(pool, 1, 100, &o, &hits, &st, &e), HY_EINVAL);
    o = (hy_proc_opts){.workers = 1, .transport = 9};
    cr_expect_eq(hy_proc_pi(pool, 1, 100, &o, &hits, &st, &e), HY_EINVAL);
    cr_expect(strstr(e.msg, "transport") != NULL, "%s", e.msg);
    o.transport = HY_TRANSPORT_PIPE;
    cr_expect_eq(hy_proc_pi(pool, 1, 0, &o, &hits, &st, &e), HY_EINVAL);
    double x[4] = {3, 2, 1, 0};
    cr_expect_eq(hy_proc_sort(pool, 77, x, -1, 4, &o, &st, &e), HY_EDTYPE);
    /* The pool still works. */
    cr_expect_eq(hy_proc_sort(pool, HY_DT_F64, x, -1, 4, &o, &st, &e), 0, "%s", e.msg);
    cr_expect(x[0] == 0 && x[3] == 3);
}

static unsigned open_fds(pid_t pid, char *list, size_t len)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    cr_assert(d, "%s: %s", path, strerror(errno));
    unsigned n = 0;
    size_t at = 0;
    list[0] = '\0';
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.' && (int)strtol(de->d_name, NULL, 10) != dirfd(d)) {
            n++;
            at += (size_t)snprintf(list + at, at < len ? len - at : 0, "%s ", de->d_name);
        }
    closedir(d);
    return n;
}

/* A worker holds its channel and the standard streams only: no socket of the daemon's,
 * no client's fd. And a pool leaves no descriptor or child behind. */
Test(proc, workers_hold_only_their_channel_and_nothing_leaks)
{
    char list[512];
    for (unsigned i = 0; i < WORKERS; i++) {
        unsigned n = open_fds(hy_proc_worker_pid(pool, i), list, sizeof list);
        /* 0, 1, 2 and the channel 3; the control page's fd 4 is closed once mapped. */
        cr_expect_leq(n, 4, "worker %u holds %u fds: %s", i, n, list);
        cr_expect(strstr(list, "3 ") != NULL, "worker %u has no channel: %s", i, list);
    }
    char before[512], after[512];
    unsigned fds0 = open_fds(getpid(), before, sizeof before);
    hy_proc_pool *p2;
    hy_error e = {0};
    hy_proc_config pc = {.workers = 2, .exe = HYBRIDD_BINARY};
    cr_assert_eq(hy_proc_pool_create(&pc, &p2, &e), 0, "%s", e.msg);
    size_t n = 100000;
    double *a = malloc(n * sizeof *a);
    cr_assert(a);
    fill(a, HY_DT_F64, n, 1);
    hy_proc_opts o = {.workers = 2, .transport = HY_TRANSPORT_SHM};
    hy_proc_stats st;
    cr_assert_eq(hy_proc_sort(p2, HY_DT_F64, a, -1, n, &o, &st, &e), 0, "%s", e.msg);
    hy_proc_pool_destroy(p2);
    free(a);
    unsigned fds1 = open_fds(getpid(), after, sizeof after);
    cr_expect_eq(fds0, fds1, "fds before: %s; after: %s", before, after);
    unsigned zombies, kids = children(getpid(), &zombies);
    cr_expect_eq(kids, WORKERS, "children after destroying a second pool: %u", kids);
    cr_expect_eq(zombies, 0);
}

static void fill_sorted_check(int dtype, void *a, void *want, size_t n, uint64_t seed)
{
    fill(a, dtype, n, seed);
    memcpy(want, a, n * hy_dtype_size(dtype));
    reference_sort(dtype, want, n);
}

/* A worker the job does not use may have died idle; a job that replaces the shm scratch
 * tells every worker to drop the old one, and that dead one must not fail the job. */
Test(proc, an_unused_dead_worker_does_not_fail_a_shm_sort)
{
    size_t n = 200000;
    uint64_t *a = malloc(n * 8), *want = malloc(n * 8);
    cr_assert(a && want);
    hy_proc_opts o = {.workers = 2, .transport = HY_TRANSPORT_SHM};
    hy_proc_stats st;
    hy_error e = {0};
    fill_sorted_check(HY_DT_U64, a, want, 1000, 1);
    cr_assert_eq(hy_proc_sort(pool, HY_DT_U64, a, -1, 1000, &o, &st, &e), 0, "%s", e.msg);
    kill_idle_worker(hy_proc_worker_pid(pool, 2));
    fill_sorted_check(HY_DT_U64, a, want, n, 2); /* a larger scratch replaces the first */
    cr_assert_eq(hy_proc_sort(pool, HY_DT_U64, a, -1, n, &o, &st, &e), 0, "%s", e.msg);
    cr_expect(memcmp(a, want, n * 8) == 0, "not sorted");
    /* The next job that needs worker 2 starts it again. */
    hy_proc_opts all = {.workers = WORKERS, .transport = HY_TRANSPORT_SHM};
    fill_sorted_check(HY_DT_U64, a, want, n, 3);
    cr_assert_eq(hy_proc_sort(pool, HY_DT_U64, a, -1, n, &all, &st, &e), 0, "%s", e.msg);
    cr_expect(memcmp(a, want, n * 8) == 0, "not sorted on 3 workers");
    cr_expect_eq(st.started, 1, "workers started: %u", st.started);
    expect_full_pool("after the restart");
    free(a);
    free(want);
}

static int always_cancel(void *ctx, uint64_t done, uint64_t total)
{
    (void)ctx;
    (void)done;
    (void)total;
    return 1;
}

/* A stopped worker ignores a cancel: after the grace it is replaced, and the worker that did
 * stop is left alone, also through the RELEASE round that follows. */
Test(proc, a_worker_deaf_to_cancel_is_replaced_and_the_others_kept)
{
    size_t n = 4000000;
    uint64_t *a = malloc(n * 8);
    cr_assert(a);
    fill(a, HY_DT_U64, n, 5);
    pid_t w0 = hy_proc_worker_pid(pool, 0), w1 = hy_proc_worker_pid(pool, 1);
    cr_assert_eq(kill(w1, SIGSTOP), 0);
    hy_proc_opts o = {.workers = 2, .transport = HY_TRANSPORT_SHM, .progress = always_cancel};
    hy_proc_stats st;
    hy_error e = {0};
    int rc = hy_proc_sort(pool, HY_DT_U64, a, -1, n, &o, &st, &e);
    cr_expect(rc == HY_ECANCELED || rc == HY_EWORKER, "rc %d (%s)", rc, e.msg);
    cr_expect_eq(hy_proc_worker_pid(pool, 0), w0, "the worker that obeyed was replaced too");
    cr_expect_neq(hy_proc_worker_pid(pool, 1), w1, "the stopped worker is still in the pool");
    expect_full_pool("after the grace");
    free(a);
}

/* A stopped worker never drains its socket: the parent gives up on it after IO_STALL_S rather
 * than blocking (and with it every cancel) for good. */
Test(proc, a_stopped_worker_cannot_hang_a_pipe_sort, .timeout = 60)
{
    size_t n = 8000000; /* 32 MB per part: far more than a socket buffer holds */
    uint64_t *a = malloc(n * 8);
    cr_assert(a);
    fill(a, HY_DT_U64, n, 6);
    pid_t w0 = hy_proc_worker_pid(pool, 0);
    cr_assert_eq(kill(w0, SIGSTOP), 0);
    hy_proc_opts o = {.workers = 2, .transport = HY_TRANSPORT_PIPE};
    hy_proc_stats st;
    hy_error e = {0};
    int rc = hy_proc_sort(pool, HY_DT_U64, a, -1, n, &o, &st, &e);
    cr_expect_eq(rc, HY_EWORKER, "rc %d (%s)", rc, e.msg);
    cr_expect_neq(hy_proc_worker_pid(pool, 0), w0);
    expect_full_pool("after the stall");
    free(a);
}

/* An idle worker gives back what a big job made it allocate (its part, the engine's sort
 * scratch): at most 64 MiB of each is kept. */
Test(proc, an_idle_worker_keeps_little_memory_after_a_big_job)
{
    if (getenv("HYBRIDD_SANITIZER")) /* sanitizers keep freed memory in quarantine */
        cr_skip_test("RSS is not meaningful under a sanitizer");
    size_t n = 12000000; /* 96 MB: above what a worker keeps */
    uint64_t *a = malloc(n * 8), *want = malloc(n * 8);
    cr_assert(a && want);
    fill_sorted_check(HY_DT_U64, a, want, n, 8);
    hy_proc_opts o = {.workers = 1, .transport = HY_TRANSPORT_PIPE};
    hy_proc_stats st;
    hy_error e = {0};
    cr_assert_eq(hy_proc_sort(pool, HY_DT_U64, a, -1, n, &o, &st, &e), 0, "%s", e.msg);
    cr_expect(memcmp(a, want, n * 8) == 0);
    /* The worker lets go after its reply is on the way: one more (tiny) job through the same
     * worker is answered only once it has, so the reading below sees the idle state. */
    uint64_t tiny[4] = {3, 1, 2, 0};
    cr_assert_eq(hy_proc_sort(pool, HY_DT_U64, tiny, -1, 4, &o, &st, &e), 0, "%s", e.msg);
    long rss = hyt_rss_kib(hy_proc_worker_pid(pool, 0));
    /* It held the 96 MB part and 96 MB of scratch during the job. */
    cr_expect(rss > 0 && rss < 64 * 1024, "idle worker RSS %ld KiB after a 96 MB part", rss);
    free(a);
    free(want);
}

/* A worker that exits before it says READY (here a program that is no worker at all) fails
 * the pool's start at once with a sentence, from its socket's end of file: the parent holds
 * no copy of the child's end, so it never waits out the READY timeout instead. No child or
 * zombie is left. */
Test(proc, a_worker_that_dies_at_start_is_reported_from_its_eof)
{
    unsigned zombies, kids0 = children(getpid(), &zombies);
    hy_proc_pool *p2 = NULL;
    hy_error e = {0};
    hy_proc_config pc = {.workers = 1, .exe = "/bin/true"};
    int rc = hy_proc_pool_create(&pc, &p2, &e);
    cr_assert_neq(rc, 0, "a pool of /bin/true started");
    cr_assert_null(p2);
    cr_expect(strstr(e.msg, "did not start"), "%s", e.msg);
    cr_expect(!strstr(e.msg, "no answer within"), "waited out the READY timeout: %s", e.msg);
    unsigned kids1 = children(getpid(), &zombies);
    cr_expect_eq(kids1, kids0, "children before %u, after %u", kids0, kids1);
    cr_expect_eq(zombies, 0);
}
