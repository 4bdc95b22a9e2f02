/* tests/daemon: backend auto's rule without a daemon — a SUBMIT for backend auto resolved
 * against a made-up daemon (its pools and devices) and a history whose run times the test
 * writes, so that every choice follows from the history and none from a clock: the default
 * with nothing known, exploring in the documented order, the fastest once all are known, and
 * what a job for auto may not name. */
#include <criterion/criterion.h>

#include <string.h>

#include "auto.h"
#include "backend.h"
#include "history.h"
#include "spec.h"

#define MS UINT64_C(1000000)

static hy_history *H;

static void setup(void)
{
    hy_history_options o = {.path = NULL, .host = "test", .version = "test"};
    hy_error err = {0};
    cr_assert_eq(hy_history_open(&o, &H, NULL, &err), 0, "%s", err.msg);
}

static void teardown(void)
{
    hy_history_close(H);
    H = NULL;
}

TestSuite(auto_rule, .init = setup, .fini = teardown);

/* `runs` runs of `ns` each into the cell (the history drops the first after open). */
static void seed_runs(int work, int dtype, int backend, unsigned threads, int transport,
                      unsigned device, uint64_t n, uint64_t ns, unsigned runs)
{
    hy_history_key k = {.work = work, .dtype = dtype, .backend = backend, .device = device,
                        .threads = threads, .transport = transport};
    for (unsigned i = 0; i < runs; i++)
        hy_history_record(H, &k, n, ns);
}

/* A trusted cell of pi: 6 runs, 5 kept. */
static void seed_pi(int backend, unsigned threads, uint64_t n, uint64_t ns)
{
    seed_runs(HY_JOB_PI, 0, backend, threads, 0, 0, n, ns, HY_HISTORY_TRUST + 1);
}

/* A daemon with a native and a locked pool of 2 threads, no workers, no OpenCL. */
static hy_backend_env cpu_env(void)
{
    return (hy_backend_env){.e = {.history = H}, .native_threads = 2, .locked_threads = 2};
}

static hy_msg_submit auto_submit(int job, uint64_t n)
{
    hy_msg_submit m;
    memset(&m, 0, sizeof m);
    m.job = (uint16_t)job;
    m.backend = HY_BACKEND_AUTO;
    m.n = n;
    m.seed = 7;
    m.dtype = HY_DT_F64;
    m.device = HY_IPC_DEVICE_DEFAULT;
    m.array = job == HY_JOB_SORT ? HY_ARRAY_INLINE : 0;
    return m;
}

/* The spec auto resolves m into on env; fails the test when it does not. */
static hy_job_spec resolve(const hy_backend_env *env, const hy_msg_submit *m)
{
    hy_job_spec s;
    hy_error err = {0};
    cr_assert_eq(hy_job_spec_make(m, 5000, &s, &err), 0, "%s", err.msg);
    cr_assert_eq(hy_job_resolve(env, m, &s, &err), 0, "%s", err.msg);
    cr_assert_eq(s.backends, 1u << s.backend, "the chosen backend's bit: 0x%x", s.backends);
    return s;
}

static void expect_choice(const hy_job_spec *s, int backend, unsigned threads, bool explore,
                          uint64_t predicted)
{
    cr_expect_eq(s->backend, backend, "chose %s, not %s", hy_backend_name(s->backend),
                 hy_backend_name(backend));
    cr_expect_eq(s->threads, threads, "threads %u, not %u", s->threads, threads);
    unsigned flags = HY_ROW_AUTO | (explore ? HY_ROW_EXPLORE : 0);
    cr_expect_eq(s->auto_flags, flags, "flags 0x%x, not 0x%x", s->auto_flags, flags);
    cr_expect_eq(s->auto_predicted_ns, predicted, "predicted %llu, not %llu",
                 (unsigned long long)s->auto_predicted_ns, (unsigned long long)predicted);
}

Test(auto_rule, with_nothing_known_it_runs_native_with_its_pool_and_says_it_explores)
{
    hy_backend_env env = cpu_env();
    hy_msg_submit m = auto_submit(HY_JOB_PI, 100000);
    hy_job_spec s = resolve(&env, &m);
    expect_choice(&s, HY_BACKEND_NATIVE, 2, true, 0);
    /* A daemon with no history at all chooses the same way. */
    env.e.history = NULL;
    s = resolve(&env, &m);
    expect_choice(&s, HY_BACKEND_NATIVE, 2, true, 0);
    /* Without a native pool, the next in the order: locked, then serial. */
    env.native_threads = 0;
    s = resolve(&env, &m);
    expect_choice(&s, HY_BACKEND_LOCKED, 2, true, 0);
    env.locked_threads = 0;
    s = resolve(&env, &m);
    expect_choice(&s, HY_BACKEND_SERIAL, 1, true, 0);
}

Test(auto_rule, it_explores_the_base_configuration_it_cannot_predict_with_the_fewest_runs)
{
    hy_backend_env env = cpu_env();
    hy_msg_submit m = auto_submit(HY_JOB_PI, 100000);
    seed_pi(HY_BACKEND_NATIVE, 2, 100000, 9 * MS);
    hy_job_spec s = resolve(&env, &m);
    expect_choice(&s, HY_BACKEND_LOCKED, 2, true, 0);
    /* locked has run 4 times, serial never: serial first. locked's 1 ms, under native's 9,
     * breaks the premise that native bounds it: serial is explored although native's time
     * is over 4 x the fastest known. */
    seed_runs(HY_JOB_PI, 0, HY_BACKEND_LOCKED, 2, 0, 0, 100000, 1 * MS, 4);
    s = resolve(&env, &m);
    expect_choice(&s, HY_BACKEND_SERIAL, 1, true, 0);
    /* Too few samples is not known: with as many runs of each (4, 3 kept), locked, the first
     * in the order, is explored again. */
    seed_runs(HY_JOB_PI, 0, HY_BACKEND_SERIAL, 1, 0, 0, 100000, 2 * MS, 4);
    s = resolve(&env, &m);
    expect_choice(&s, HY_BACKEND_LOCKED, 2, true, 0);
    seed_runs(HY_JOB_PI, 0, HY_BACKEND_LOCKED, 2, 0, 0, 100000, 1 * MS, 2);
    s = resolve(&env, &m);
    expect_choice(&s, HY_BACKEND_SERIAL, 1, true, 0);
    /* A smaller thread count is never explored for auto's sake: with the base known, the
     * fastest wins although native 1 is unknown. */
    seed_runs(HY_JOB_PI, 0, HY_BACKEND_SERIAL, 1, 0, 0, 100000, 20 * MS, 4);
    s = resolve(&env, &m);
    expect_choice(&s, HY_BACKEND_LOCKED, 2, false, 1 * MS);
}

/* Exploring is capped: a base configuration whose few runs at this size took over 4x the
 * fastest known is not run again to learn it, and the fastest known wins. */
Test(auto_rule, a_configuration_already_seen_far_slower_is_not_explored_again)
{
    hy_backend_env env = cpu_env();
    hy_msg_submit m = auto_submit(HY_JOB_PI, 100000);
    seed_pi(HY_BACKEND_NATIVE, 2, 100000, 9 * MS);
    /* locked: 2 runs (1 kept) of 40 ms, over 4 x 9 ms: capped; serial is next. */
    seed_runs(HY_JOB_PI, 0, HY_BACKEND_LOCKED, 2, 0, 0, 100000, 40 * MS, 2);
    hy_job_spec s = resolve(&env, &m);
    expect_choice(&s, HY_BACKEND_SERIAL, 1, true, 0);
    /* serial: 35 ms, under 4 x 9: explored again until it is trusted. */
    seed_runs(HY_JOB_PI, 0, HY_BACKEND_SERIAL, 1, 0, 0, 100000, 35 * MS, 2);
    s = resolve(&env, &m);
    expect_choice(&s, HY_BACKEND_SERIAL, 1, true, 0);
    seed_runs(HY_JOB_PI, 0, HY_BACKEND_SERIAL, 1, 0, 0, 100000, 35 * MS, 4);
    /* Every base candidate trusted or capped: native, the fastest trusted, wins. */
    s = resolve(&env, &m);
    expect_choice(&s, HY_BACKEND_NATIVE, 2, false, 9 * MS);
}

Test(auto_rule, once_all_are_known_the_fastest_predicted_wins)
{
    hy_backend_env env = cpu_env();
    seed_pi(HY_BACKEND_NATIVE, 2, 100000, 9 * MS);
    seed_pi(HY_BACKEND_LOCKED, 2, 100000, 30 * MS);
    seed_pi(HY_BACKEND_SERIAL, 1, 100000, 18 * MS);
    hy_msg_submit m = auto_submit(HY_JOB_PI, 100000);
    hy_job_spec s = resolve(&env, &m);
    expect_choice(&s, HY_BACKEND_NATIVE, 2, false, 9 * MS);
    /* A smaller thread count the history knows to be faster is chosen. */
    seed_pi(HY_BACKEND_NATIVE, 1, 100000, 7 * MS);
    s = resolve(&env, &m);
    expect_choice(&s, HY_BACKEND_NATIVE, 1, false, 7 * MS);
    /* The serial baseline when it is the fastest (a tiny job). */
    seed_pi(HY_BACKEND_SERIAL, 1, 100000, 2 * MS); /* 6 of 2 ms, 5 of 18: the median is 2 */
    s = resolve(&env, &m);
    expect_choice(&s, HY_BACKEND_SERIAL, 1, false, 2 * MS);
}

Test(auto_rule, it_predicts_between_measured_sizes_and_explores_outside_them)
{
    hy_backend_env env = cpu_env();
    const int b[] = {HY_BACKEND_NATIVE, HY_BACKEND_LOCKED, HY_BACKEND_SERIAL};
    const unsigned t[] = {2, 2, 1};
    for (int i = 0; i < 3; i++) {
        seed_pi(b[i], t[i], UINT64_C(1) << 16, (uint64_t)(i + 1) * MS);
        seed_pi(b[i], t[i], UINT64_C(1) << 20, (uint64_t)(i + 1) * 16 * MS);
    }
    hy_msg_submit m = auto_submit(HY_JOB_PI, UINT64_C(1) << 18);
    hy_job_spec s = resolve(&env, &m);
    /* Linear in log-log between 1 ms at 2^16 and 16 ms at 2^20: 4 ms at 2^18. */
    expect_choice(&s, HY_BACKEND_NATIVE, 2, false, 4 * MS);
    m.n = UINT64_C(1) << 22; /* above every measured size: no extrapolation */
    s = resolve(&env, &m);
    expect_choice(&s, HY_BACKEND_NATIVE, 2, true, 0);
}

Test(auto_rule, a_sort_is_known_per_dtype)
{
    hy_backend_env env = cpu_env();
    const int b[] = {HY_BACKEND_NATIVE, HY_BACKEND_LOCKED, HY_BACKEND_SERIAL};
    const unsigned t[] = {2, 2, 1};
    const uint64_t ms[] = {5, 3, 8};
    for (int i = 0; i < 3; i++)
        seed_runs(HY_JOB_SORT, HY_DT_F64, b[i], t[i], 0, 0, 5000, ms[i] * MS, 6);
    hy_msg_submit m = auto_submit(HY_JOB_SORT, 5000);
    hy_job_spec s = resolve(&env, &m);
    expect_choice(&s, HY_BACKEND_LOCKED, 2, false, 3 * MS);
    m.dtype = HY_DT_I32; /* nothing known of i32 */
    s = resolve(&env, &m);
    expect_choice(&s, HY_BACKEND_NATIVE, 2, true, 0);
}

/* OpenCL on: the check asks only whether there is an engine, never calls it. */
static hy_device_record devrec[2];
static unsigned owned[2] = {0, 1};

static hy_backend_env gpu_env(void)
{
    hy_backend_env env = cpu_env();
    memset(devrec, 0, sizeof devrec);
    devrec[0].max_alloc = devrec[1].max_alloc = UINT64_C(1) << 30;
    env.e.cl = (hy_cl *)devrec; /* never dereferenced by a check */
    env.devrec = devrec;
    env.ndevices = env.nowned = 2;
    env.owned = owned;
    return env;
}

Test(auto_rule, each_served_device_is_a_candidate_of_its_own)
{
    hy_backend_env env = gpu_env();
    hy_msg_submit m = auto_submit(HY_JOB_SORT, 5000);
    seed_runs(HY_JOB_SORT, HY_DT_F64, HY_BACKEND_NATIVE, 2, 0, 0, 5000, 5 * MS, 6);
    /* After native, the devices in the order served. */
    hy_job_spec s = resolve(&env, &m);
    expect_choice(&s, HY_BACKEND_OPENCL, 0, true, 0);
    cr_expect_eq(s.device, 0);
    seed_runs(HY_JOB_SORT, HY_DT_F64, HY_BACKEND_OPENCL, 0, 0, 0, 5000, 4 * MS, 6);
    s = resolve(&env, &m);
    expect_choice(&s, HY_BACKEND_OPENCL, 0, true, 0);
    cr_expect_eq(s.device, 1);
    seed_runs(HY_JOB_SORT, HY_DT_F64, HY_BACKEND_OPENCL, 0, 0, 1, 5000, 1 * MS, 6);
    seed_runs(HY_JOB_SORT, HY_DT_F64, HY_BACKEND_LOCKED, 2, 0, 0, 5000, 3 * MS, 6);
    seed_runs(HY_JOB_SORT, HY_DT_F64, HY_BACKEND_SERIAL, 1, 0, 0, 5000, 8 * MS, 6);
    s = resolve(&env, &m);
    expect_choice(&s, HY_BACKEND_OPENCL, 0, false, 1 * MS);
    cr_expect_eq(s.device, 1);
    /* A device whose largest allocation cannot hold the array is no candidate. */
    devrec[1].max_alloc = 4096;
    s = resolve(&env, &m);
    expect_choice(&s, HY_BACKEND_LOCKED, 2, false, 3 * MS);
}

/* Resolves m on env `count` times, recording each chosen run into the history as an executor
 * would, with the time ns_of gives its backend; into seq, one letter a choice (N native, O
 * opencl, L locked, S serial; lower case when it exploited rather than explored). */
static void run_auto(const hy_backend_env *env, const hy_msg_submit *m, uint64_t (*ns_of)(int),
                     unsigned count, char *seq)
{
    for (unsigned i = 0; i < count; i++) {
        hy_job_spec s = resolve(env, m);
        hy_row_spec r = {.backend = s.backend, .threads = s.threads, .transport = s.transport};
        hy_history_key k;
        cr_assert(hy_job_history_key(&s, &r, s.threads, &k));
        hy_history_record(H, &k, m->n, ns_of(s.backend));
        char c = s.backend == HY_BACKEND_NATIVE   ? 'N'
                 : s.backend == HY_BACKEND_OPENCL ? 'O'
                 : s.backend == HY_BACKEND_LOCKED ? 'L'
                 : s.backend == HY_BACKEND_SERIAL ? 'S'
                                                  : '?';
        seq[i] = s.auto_flags & HY_ROW_EXPLORE ? c : (char)(c - 'A' + 'a');
    }
    seq[count] = '\0';
}

/* pi at 10^10 samples on a GPU machine: native 1 s, the device 20 ms, serial 16 s. */
static uint64_t gpu_pi_ns(int backend)
{
    return backend == HY_BACKEND_OPENCL ? 20 * MS
           : backend == HY_BACKEND_NATIVE ? 1000 * MS
                                          : 16000 * MS;
}

/* Breadth first: every base configuration gets its first runs before any is trusted, so a
 * configuration 50x slower is known to be after its first kept sample and not run again. */
Test(auto_rule, it_explores_breadth_first_and_drops_the_far_slower_after_one_sample)
{
    hy_backend_env env = gpu_env();
    env.locked_threads = 0;
    env.nowned = 1; /* native 2 (and 1), opencl on device 0, serial */
    hy_msg_submit m = auto_submit(HY_JOB_PI, UINT64_C(10000000000));
    char seq[16];
    run_auto(&env, &m, gpu_pi_ns, 11, seq);
    /* native and the device run once (dropped), then once kept. serial, which native bounds
     * from below, waits for those, and by then native (1 s) is over 4 x 20 ms: serial never
     * runs at all, nor does native again; opencl runs until trusted (6 runs), then is
     * chosen. Depth first ran native 6 times before the device's first; breadth first
     * without the bound ran serial's 16 s twice. */
    cr_expect_str_eq(seq, "NONOOOOOooo");
}

/* 5 ms each: none is ever capped, so each is explored until trusted, taking turns. */
static uint64_t equal_ns(int backend)
{
    (void)backend;
    return 5 * MS;
}

Test(auto_rule, equally_fast_configurations_are_all_explored_in_turn_until_trusted)
{
    hy_backend_env env = cpu_env(); /* native 2 (and 1), locked 2, serial */
    hy_msg_submit m = auto_submit(HY_JOB_PI, 100000);
    char seq[32];
    run_auto(&env, &m, equal_ns, 6 * 3 + 1, seq);
    /* 6 runs of each (5 kept), in turns, except that locked and serial wait for native's
     * first kept run; then the first in the order wins the tie. */
    cr_expect_str_eq(seq, "NNLSLSNLSNLSNLSNLSn");
    hy_job_spec s = resolve(&env, &m);
    expect_choice(&s, HY_BACKEND_NATIVE, 2, false, 5 * MS);
}

Test(auto_rule, a_row_is_predicted_only_from_a_trusted_history)
{
    hy_backend_env env = cpu_env();
    hy_msg_submit m = auto_submit(HY_JOB_PI, 100000);
    m.backend = HY_BACKEND_NATIVE;
    m.threads = 2;
    hy_job_spec s = resolve(&env, &m);
    hy_row_spec r = {.backend = HY_BACKEND_NATIVE, .threads = 2};
    cr_expect_eq(hy_job_predict_row(H, &s, &r), 0);
    cr_expect_eq(hy_job_predict_row(NULL, &s, &r), 0);
    seed_runs(HY_JOB_PI, 0, HY_BACKEND_NATIVE, 2, 0, 0, 100000, 3 * MS, HY_HISTORY_TRUST);
    cr_expect_eq(hy_job_predict_row(H, &s, &r), 0, "4 samples are too few");
    seed_runs(HY_JOB_PI, 0, HY_BACKEND_NATIVE, 2, 0, 0, 100000, 3 * MS, 1);
    cr_expect_eq(hy_job_predict_row(H, &s, &r), 3 * MS);
    /* Replicate mode keeps no cell: nothing to predict from. */
    s.mode = HY_MODE_REPLICATE;
    cr_expect_eq(hy_job_predict_row(H, &s, &r), 0);
}

Test(auto_rule, a_job_for_auto_names_nothing_auto_chooses)
{
    struct {
        const char *what, *says;
    } cases[] = {
        {"threads", "names no threads"},
        {"transport", "names no transport"},
        {"device", "names no device"},
        {"nogil", "names no lock choice"},
        {"replicate", "replicate mode"},
    };
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hy_msg_submit m = auto_submit(HY_JOB_PI, 1000);
        switch (i) {
        case 0: m.threads = 2; break;
        case 1: m.transport = HY_TRANSPORT_SHM; break;
        case 2: m.device = 0; break;
        case 3: m.nogil = HY_NOGIL_RELEASE; break;
        default: m.mode = HY_MODE_REPLICATE; break;
        }
        hy_job_spec s;
        hy_error err = {0};
        cr_expect_eq(hy_job_spec_make(&m, 5000, &s, &err), HY_EINVAL, "%s", cases[i].what);
        cr_expect_not_null(strstr(err.msg, cases[i].says), "%s: %s", cases[i].what, err.msg);
    }
}

Test(auto_rule, serial_is_always_there_to_choose)
{
    hy_backend_env env = {.e = {.history = H}};
    hy_msg_submit m = auto_submit(HY_JOB_PI, 1000);
    hy_job_spec s;
    hy_error err = {0};
    cr_assert_eq(hy_job_spec_make(&m, 5000, &s, &err), 0, "%s", err.msg);
    /* serial needs no pool: it is always there */
    cr_expect_eq(hy_job_resolve(&env, &m, &s, &err), 0, "%s", err.msg);
    cr_expect_eq(s.backend, HY_BACKEND_SERIAL);
}

/* A job across ranks runs in parts on the backends that span (hy_ranks_resolve passes those,
 * and one part's size): the choice is the one for a job of the part's size, among the
 * backends allowed only, and the job keeps its own n. Here the devices are fastest for the
 * part; with only the CPU backends allowed, the fastest of those wins. */
Test(auto_rule, a_span_chooses_for_one_part_among_the_backends_that_span)
{
    hy_backend_env env = gpu_env();
    const unsigned cpu = 1u << HY_BACKEND_SERIAL | 1u << HY_BACKEND_NATIVE |
                         1u << HY_BACKEND_LOCKED;
    seed_runs(HY_JOB_SORT, HY_DT_F64, HY_BACKEND_OPENCL, 0, 0, 0, 5000, 1 * MS, 6);
    seed_runs(HY_JOB_SORT, HY_DT_F64, HY_BACKEND_OPENCL, 0, 0, 1, 5000, 1 * MS, 6);
    seed_runs(HY_JOB_SORT, HY_DT_F64, HY_BACKEND_NATIVE, 2, 0, 0, 5000, 5 * MS, 6);
    seed_runs(HY_JOB_SORT, HY_DT_F64, HY_BACKEND_LOCKED, 2, 0, 0, 5000, 3 * MS, 6);
    seed_runs(HY_JOB_SORT, HY_DT_F64, HY_BACKEND_SERIAL, 1, 0, 0, 5000, 8 * MS, 6);
    /* 15000 keys over 3 ranks: each part is 5000, the size the history knows. */
    hy_msg_submit m = auto_submit(HY_JOB_SORT, 15000);
    m.ranks = 3;
    hy_job_spec s;
    hy_error err = {0};
    cr_assert_eq(hy_job_spec_make(&m, 5000, &s, &err), 0, "%s", err.msg);
    cr_assert_eq(hy_job_resolve(&env, &m, &s, &err), 0, "%s", err.msg);
    cr_expect_eq(s.backend, HY_BACKEND_AUTO, "a span's auto is left for hy_ranks_resolve");
    cr_assert_eq(hy_auto_choose_span(&env, &s, 5000, cpu, &err), 0, "%s", err.msg);
    expect_choice(&s, HY_BACKEND_LOCKED, 2, false, 3 * MS);
    cr_expect_eq(s.n, 15000);
    cr_expect_eq(s.backends, 1u << HY_BACKEND_LOCKED);
    /* All backends allowed, the device wins: the part's size is what is predicted. */
    s.backend = HY_BACKEND_AUTO;
    cr_assert_eq(hy_auto_choose_span(&env, &s, 5000, ~0u, &err), 0, "%s", err.msg);
    expect_choice(&s, HY_BACKEND_OPENCL, 0, false, 1 * MS);
    /* At the whole job's size nothing is known: auto would explore. */
    s.backend = HY_BACKEND_AUTO;
    cr_assert_eq(hy_auto_choose_span(&env, &s, 15000, cpu, &err), 0, "%s", err.msg);
    cr_expect(s.auto_flags & HY_ROW_EXPLORE, "explores at a size the history has not seen");
}
