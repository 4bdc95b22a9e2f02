/* tests/host: a plain-C stress of the CPU engine (no Criterion, so it also runs under
 * ThreadSanitizer, which Criterion cannot start under): engines created and destroyed, pi and
 * sort on serial, native and locked (lock held and released), split and replicate, 1..4
 * threads, progress callbacks and cancellation mid-job, hy_host_run with barriers and native
 * sections, and several caller threads driving engines at once. Every result is checked; the
 * exit status is non-zero on any wrong one.
 *
 *     stress_engine [rounds]     (default 3; each round repeats the whole matrix) */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

#define MAX_T 4u

static atomic_uint failures;

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "stress_engine: %s:%d: check failed: %s: ", __FILE__, __LINE__, \
                    #cond);                                                                \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                           \
            atomic_fetch_add(&failures, 1);                                                \
        }                                                                                  \
    } while (0)

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t mix(uint64_t x)
{
    return splitmix(&x);
}

/* ---- the backends a job may run on ---- */

struct cfg {
    int backend, nogil, mode;
    unsigned threads;
};

static unsigned make_cfgs(struct cfg *out)
{
    unsigned n = 0;
    int modes[] = {HY_MODE_SPLIT, HY_MODE_REPLICATE};
    out[n++] = (struct cfg){HY_BACKEND_SERIAL, HY_NOGIL_DEFAULT, HY_MODE_SPLIT, 1};
    for (unsigned m = 0; m < 2; m++)
        for (unsigned t = 1; t <= MAX_T; t++) {
            out[n++] = (struct cfg){HY_BACKEND_NATIVE, HY_NOGIL_DEFAULT, modes[m], t};
            out[n++] = (struct cfg){HY_BACKEND_LOCKED, HY_NOGIL_HOLD, modes[m], t};
            out[n++] = (struct cfg){HY_BACKEND_LOCKED, HY_NOGIL_RELEASE, modes[m], t};
        }
    return n;
}

static const char *cfg_name(const struct cfg *c, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s/%s/T=%u", hy_backend_name(c->backend),
             c->nogil == HY_NOGIL_HOLD ? "held" : c->nogil == HY_NOGIL_RELEASE ? "nogil" : "-",
             hy_mode_name(c->mode), c->threads);
    return buf;
}

/* ---- progress: checks the callback's contract, cancels from its Nth call when asked ---- */

struct progress {
    unsigned calls;       /* plain: the engine promises one caller at a time */
    uint64_t last_total;
    unsigned cancel_from; /* 0: never */
    atomic_int inside;
    bool bad;
};

static int on_progress(void *ctx, uint64_t done, uint64_t total)
{
    struct progress *p = ctx;
    if (atomic_exchange(&p->inside, 1) != 0)
        p->bad = true; /* two threads in the callback at once */
    p->calls++;
    if (total == 0 || done > total)
        p->bad = true;
    p->last_total = total;
    int stop = p->cancel_from != 0 && p->calls >= p->cancel_from;
    atomic_store(&p->inside, 0);
    return stop;
}

static hy_run_opts opts(const struct cfg *c, struct progress *p)
{
    return (hy_run_opts){.backend = c->backend, .threads = c->threads, .mode = c->mode,
                         .nogil = c->nogil, .switch_interval_us = 100 + 300 * (c->threads & 1),
                         .progress = p ? on_progress : NULL, .progress_ctx = p};
}

/* ---- pi ---- */

struct pi_case {
    uint64_t seed, n, hits;
};
static struct pi_case pi_cases[] = {
    {1, 1000003, 0}, {7, 333331, 0}, {0xdeadbeefull, 2000000, 0}, {42, 65537, 0}, {3, 1, 0}};
#define NPI (sizeof pi_cases / sizeof pi_cases[0])

static void pi_refs(void)
{
    for (unsigned i = 0; i < NPI; i++)
        pi_cases[i].hits = hy_host_pi_hits_reference(pi_cases[i].seed, 0, pi_cases[i].n);
}

static void pi_check(hy_host *h, const struct cfg *c, const struct pi_case *pc, bool progress)
{
    char name[64];
    struct progress p = {0};
    hy_run_opts o = opts(c, progress ? &p : NULL);
    hy_pi_result r;
    hy_error err = {0};
    int rc = hy_host_pi(h, pc->seed, pc->n, &o, &r, &err);
    cfg_name(c, name, sizeof name);
    CHECK(rc == 0, "pi %s seed %" PRIu64 " n %" PRIu64 ": rc %d %s", name, pc->seed, pc->n, rc,
          err.msg);
    if (rc)
        return;
    CHECK(r.hits == pc->hits && r.samples == pc->n,
          "pi %s seed %" PRIu64 " n %" PRIu64 ": hits %" PRIu64 ", reference %" PRIu64, name,
          pc->seed, pc->n, r.hits, pc->hits);
    CHECK(!p.bad, "pi %s: progress callback contract broken", name);
    if (c->backend == HY_BACKEND_LOCKED)
        CHECK(r.stats.lock_max_holders <= 1, "pi %s: %u threads inside the lock", name,
              r.stats.lock_max_holders);
}

static void pi_cancel(hy_host *h, const struct cfg *c, unsigned from)
{
    char name[64];
    struct progress p = {.cancel_from = from};
    hy_run_opts o = opts(c, &p);
    hy_pi_result r;
    hy_error err = {0};
    /* Years of work: only the cancellation can end it. */
    int rc = hy_host_pi(h, 5, (uint64_t)1 << 40, &o, &r, &err);
    cfg_name(c, name, sizeof name);
    CHECK(rc == HY_ECANCELED, "cancelled pi %s: rc %d %s", name, rc, err.msg);
    CHECK(p.calls >= from && !p.bad, "cancelled pi %s: %u progress calls", name, p.calls);
}

/* ---- sort ---- */

static void fill(int dtype, void *data, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    size_t es = hy_dtype_size(dtype);
    /* Every other array: many duplicates, and one in four at most 12 values (with floats'
     * specials a few more), which every thread of a split job counts (few values). One in
     * eight: half its elements 0, a bucket past the LSD limit at the largest size, which
     * the one-read path finishes after a barrier (sort_radix.inc's finish_big). */
    uint64_t range = (seed & 1) ? ((seed & 2) ? 64 : 12) : UINT64_MAX;
    bool heavy = (seed & 7) == 6;
    for (size_t i = 0; i < n; i++) {
        uint64_t r = splitmix(&s);
        uint64_t v = heavy && (r & 1) ? 0 : range == UINT64_MAX ? r : r % range;
        unsigned special = (unsigned)(r >> 58); /* 1 in 64 floats is special */
        if (dtype == HY_DT_F64) {
            double d = (double)(int64_t)v / 4096.0;
            static const double sp[] = {0.0, -0.0, 1.0 / 0.0, -1.0 / 0.0, 0.0 / 0.0};
            if (special < 5)
                d = special == 4 ? ((r & 2) ? -sp[4] : sp[4]) : sp[special];
            memcpy((char *)data + i * 8, &d, 8);
        } else if (dtype == HY_DT_F32) {
            float f = (float)(int64_t)v / 4096.0f;
            static const float sp[] = {0.0f, -0.0f, 1.0f / 0.0f, -1.0f / 0.0f, 0.0f / 0.0f};
            if (special < 5)
                f = special == 4 ? ((r & 2) ? -sp[4] : sp[4]) : sp[special];
            memcpy((char *)data + i * 4, &f, 4);
        } else if (es == 8) {
            memcpy((char *)data + i * 8, &v, 8);
        } else {
            uint32_t w = (uint32_t)v;
            memcpy((char *)data + i * 4, &w, 4);
        }
    }
}

/* An order key for element i: unsigned comparison of keys is the sort's order (signed and
 * float values mapped onto it; every NaN last, -0.0 before +0.0). */
static uint64_t key_at(int dtype, const void *data, size_t i)
{
    uint64_t u = 0;
    uint32_t w;
    switch (dtype) {
    case HY_DT_I32:
        memcpy(&w, (const char *)data + i * 4, 4);
        return (uint64_t)(w ^ 0x80000000u);
    case HY_DT_U32:
        memcpy(&w, (const char *)data + i * 4, 4);
        return w;
    case HY_DT_I64:
        memcpy(&u, (const char *)data + i * 8, 8);
        return u ^ (1ull << 63);
    case HY_DT_U64:
        memcpy(&u, (const char *)data + i * 8, 8);
        return u;
    case HY_DT_F32:
        memcpy(&w, (const char *)data + i * 4, 4);
        if ((w & 0x7fffffffu) > 0x7f800000u)
            return UINT64_MAX;
        return (w >> 31) ? (uint64_t)(uint32_t)~w : (uint64_t)(w | 0x80000000u);
    default: /* F64 */
        memcpy(&u, (const char *)data + i * 8, 8);
        if ((u & 0x7fffffffffffffffull) > 0x7ff0000000000000ull)
            return UINT64_MAX;
        return (u >> 63) ? ~u : (u | (1ull << 63));
    }
}

/* An order-independent fingerprint of the multiset of elements (raw bits). */
struct sum {
    uint64_t a, b;
};
static struct sum fingerprint(int dtype, const void *data, size_t n)
{
    size_t es = hy_dtype_size(dtype);
    struct sum s = {0, 0};
    for (size_t i = 0; i < n; i++) {
        uint64_t u = 0;
        memcpy(&u, (const char *)data + i * es, es);
        uint64_t h = mix(u);
        s.a += h;
        s.b += h * h + (h >> 17);
    }
    return s;
}

static bool sorted(int dtype, const void *data, size_t n, size_t *bad)
{
    for (size_t i = 1; i < n; i++)
        if (key_at(dtype, data, i - 1) > key_at(dtype, data, i)) {
            *bad = i;
            return false;
        }
    return true;
}

static const int dtypes[] = {HY_DT_I32, HY_DT_U32, HY_DT_I64, HY_DT_U64, HY_DT_F32, HY_DT_F64};
static const size_t sizes[] = {0, 1, 2, 17, 1000, 4099, 65537, 300007};

/* Sorts n elements; cancel_from > 0 cancels from that progress call. Returns the rc. */
static int sort_check(hy_host *h, const struct cfg *c, int dtype, size_t n, uint64_t seed,
                      unsigned cancel_from)
{
    char name[64];
    cfg_name(c, name, sizeof name);
    size_t es = hy_dtype_size(dtype);
    void *data = malloc(n ? n * es : 1);
    if (!data) {
        CHECK(data, "out of memory for %zu elements", n);
        return HY_ENOMEM;
    }
    fill(dtype, data, n, seed);
    struct sum before = fingerprint(dtype, data, n);
    struct progress p = {.cancel_from = cancel_from};
    hy_run_opts o = opts(c, &p);
    hy_sort_result r;
    hy_error err = {0};
    int rc = hy_host_sort(h, dtype, data, n, &o, &r, &err);
    struct sum after = fingerprint(dtype, data, n);
    CHECK(rc == 0 || (cancel_from && rc == HY_ECANCELED), "sort %s %s n=%zu: rc %d %s", name,
          hy_dtype_name(dtype), n, rc, err.msg);
    CHECK(before.a == after.a && before.b == after.b,
          "sort %s %s n=%zu rc %d: the output is not a permutation of the input", name,
          hy_dtype_name(dtype), n, rc);
    size_t bad = 0;
    if (rc == 0)
        CHECK(sorted(dtype, data, n, &bad), "sort %s %s n=%zu: out of order at %zu", name,
              hy_dtype_name(dtype), n, bad);
    CHECK(!p.bad, "sort %s %s n=%zu: progress callback contract broken", name,
          hy_dtype_name(dtype), n);
    if (rc == 0 && c->backend == HY_BACKEND_LOCKED)
        CHECK(r.stats.lock_max_holders <= 1, "sort %s: %u threads inside the lock", name,
              r.stats.lock_max_holders);
    free(data);
    return rc;
}

/* ---- hy_host_run: phases separated by barriers, writes in native sections ---- */

#define ROW 512u

struct phased {
    unsigned phases;          /* stop after this many (when not cancelled first) */
    uint32_t rows[MAX_T][ROW]; /* row i written by thread i only, read by its neighbour */
    uint64_t under_lock;      /* plain: touched only while holding the runtime lock */
    atomic_uint_fast64_t atomic_count;
    int end_rc[MAX_T];
    unsigned end_phase[MAX_T];
    bool locked;
    atomic_bool wrong;        /* a thread read a row that was not the phase's */
    unsigned fail_thread;     /* a thread that returns HY_EINVAL at phase 2; MAX_T: none */
};

static void spin(unsigned n)
{
    volatile uint64_t x = 0;
    for (unsigned i = 0; i < n; i++)
        x += i;
}

static int phased_task(hy_worker *w, void *arg)
{
    struct phased *c = arg;
    unsigned id = hy_worker_id(w), t = hy_worker_count(w);
    int rc = 0;
    unsigned ph;
    for (ph = 0; ph < c->phases; ph++) {
        if (id == c->fail_thread && ph == 2) {
            rc = HY_EINVAL;
            break;
        }
        hy_worker_native_begin(w);
        for (unsigned k = 0; k < ROW; k++)
            c->rows[id][k] = ph * 1000003u + id * 7919u + k;
        spin(2000 * (id + 1));
        hy_worker_native_end(w);
        if (c->locked)
            c->under_lock++;
        else
            atomic_fetch_add(&c->atomic_count, 1);
        if ((rc = hy_worker_tick(w, 1)) != 0)
            break;
        if ((rc = hy_worker_barrier(w)) != 0)
            break;
        unsigned nb = (id + 1) % t;
        for (unsigned k = 0; k < ROW; k++)
            if (c->rows[nb][k] != ph * 1000003u + nb * 7919u + k)
                atomic_store(&c->wrong, true);
        if ((rc = hy_worker_barrier(w)) != 0)
            break;
    }
    c->end_rc[id] = rc;
    c->end_phase[id] = ph;
    return rc;
}

static void run_phased(hy_host *h, const struct cfg *c, unsigned cancel_from, bool fail)
{
    char name[64];
    cfg_name(c, name, sizeof name);
    struct phased *ph = calloc(1, sizeof *ph);
    if (!ph) {
        CHECK(ph, "out of memory");
        return;
    }
    ph->phases = cancel_from ? 1000000 : 40;
    ph->locked = c->backend == HY_BACKEND_LOCKED;
    ph->fail_thread = fail ? c->threads - 1 : MAX_T;
    struct progress p = {.cancel_from = cancel_from};
    hy_run_opts o = opts(c, &p);
    hy_run_stats st;
    hy_error err = {0};
    int rc = hy_host_run(h, &o, ph->phases, phased_task, ph, &st, &err);
    CHECK(!atomic_load(&ph->wrong), "run %s: a barrier let a thread read a row before it was written", name);
    CHECK(!p.bad, "run %s: progress callback contract broken", name);
    if (fail) {
        CHECK(rc == HY_EINVAL, "run %s with a failing thread: rc %d %s", name, rc, err.msg);
    } else if (cancel_from) {
        CHECK(rc == HY_ECANCELED, "run %s cancelled: rc %d %s", name, rc, err.msg);
        /* Every thread is told, and in the same phase: the barriers keep them in step. */
        for (unsigned i = 0; i < c->threads; i++)
            CHECK(ph->end_rc[i] == HY_ECANCELED && ph->end_phase[i] == ph->end_phase[0],
                  "run %s cancelled: thread %u ended with %d at phase %u, thread 0 at %u", name,
                  i, ph->end_rc[i], ph->end_phase[i], ph->end_phase[0]);
    } else {
        CHECK(rc == 0, "run %s: rc %d %s", name, rc, err.msg);
        uint64_t want = (uint64_t)ph->phases * c->threads;
        uint64_t got = ph->locked ? ph->under_lock : atomic_load(&ph->atomic_count);
        CHECK(got == want, "run %s: %" PRIu64 " increments, expected %" PRIu64, name, got, want);
        if (ph->locked)
            CHECK(st.lock_max_holders == 1, "run %s: %u threads inside the lock", name,
                  st.lock_max_holders);
    }
    free(ph);
}

/* ---- one caller's share of the work ---- */

struct caller {
    hy_host *h;
    unsigned index;
    unsigned rounds;
};

static void matrix(hy_host *h, unsigned who, unsigned round)
{
    struct cfg cfgs[32];
    unsigned ncfg = make_cfgs(cfgs);
    unsigned sortcancels = 0, sortcancel_tries = 0;
    for (unsigned i = 0; i < ncfg; i++) {
        const struct cfg *c = &cfgs[i];
        unsigned salt = i + 31 * who + 97 * round;
        pi_check(h, c, &pi_cases[salt % NPI], salt & 1);
        for (unsigned d = 0; d < 6; d++) {
            size_t n = sizes[(salt + d) % (sizeof sizes / sizeof sizes[0])];
            sort_check(h, c, dtypes[d], n, mix(salt * 6u + d), 0);
        }
        run_phased(h, c, 0, false);
        if ((salt & 3) == 0) {
            pi_cancel(h, c, 1 + salt % 3);
            run_phased(h, c, 1 + salt % 3, false);
            sortcancel_tries++;
            if (sort_check(h, c, dtypes[salt % 6], 1u << 20, salt, 1) == HY_ECANCELED)
                sortcancels++;
        }
        if ((salt & 7) == 5 && c->threads > 1)
            run_phased(h, c, 0, true);
    }
    /* A cancel from the first progress call of a 1M-element sort should always land. */
    CHECK(sortcancel_tries == 0 || sortcancels > 0, "no sort was ever cancelled (%u tries)",
          sortcancel_tries);
}

static void *caller_main(void *arg)
{
    struct caller *c = arg;
    for (unsigned r = 0; r < c->rounds; r++)
        matrix(c->h, c->index, r);
    return NULL;
}

/* Engines made and destroyed, each with a short job (and some with none). */
static void churn(unsigned times)
{
    for (unsigned i = 0; i < times; i++) {
        hy_host *h = NULL;
        hy_error err = {0};
        unsigned t = 1 + i % MAX_T;
        int rc = hy_host_create(&(hy_host_config){.threads = t, .switch_interval_us = 50}, &h,
                                &err);
        CHECK(rc == 0, "hy_host_create(%u): %d %s", t, rc, err.msg);
        if (rc)
            continue;
        if (i % 3 != 2) {
            struct cfg c = {i % 2 ? HY_BACKEND_LOCKED : HY_BACKEND_NATIVE, HY_NOGIL_HOLD,
                            HY_MODE_SPLIT, t};
            pi_check(h, &c, &pi_cases[3], true);
        }
        hy_host_destroy(h);
    }
}

int main(int argc, char **argv)
{
    unsigned rounds = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 3;
    if (rounds == 0)
        rounds = 1;
    uint64_t t0 = hy_now_ns();
    pi_refs();
    churn(12);

    /* Two callers share engine A (jobs queue on it, one at a time), a third has engine B. */
    hy_host *a = NULL, *b = NULL;
    hy_error err = {0};
    if (hy_host_create(&(hy_host_config){.threads = MAX_T}, &a, &err) != 0 ||
        hy_host_create(&(hy_host_config){.threads = MAX_T, .switch_interval_us = 200}, &b,
                       &err) != 0) {
        fprintf(stderr, "stress_engine: hy_host_create: %s\n", err.msg);
        return 1;
    }
    struct caller callers[3] = {{a, 0, rounds}, {a, 1, rounds}, {b, 2, rounds}};
    pthread_t th[3];
    unsigned started = 0;
    for (; started < 3; started++)
        if (pthread_create(&th[started], NULL, caller_main, &callers[started]) != 0) {
            CHECK(0, "pthread_create for caller %u failed", started);
            break;
        }
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    hy_host_destroy(a);
    hy_host_destroy(b);

    unsigned f = atomic_load(&failures);
    printf("stress_engine: %u round(s), %s in %.1f s\n", rounds,
           f ? "FAILED" : "every result right", (double)(hy_now_ns() - t0) / 1e9);
    if (f)
        fprintf(stderr, "stress_engine: %u wrong result(s)\n", f);
    return f ? 1 : 0;
}
