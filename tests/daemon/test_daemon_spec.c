/* tests/daemon: the job spec, the kinds' and backends' tables, the comparison plan built from
 * the table, the backends' checks, a row run through the table, and HY_ASSERT stopping the
 * program in a release build, and the .npy header parser (common/npy.c) as an MPI sort of .npy
 * paths runs it. No daemon runs: these are the daemon's own pieces. */
#include <criterion/criterion.h>

#include <signal.h>
#include <string.h>

#include "backend.h"
#include "common.h"
#include "runner.h"
#include "spec.h"

static hy_msg_submit submit(int job)
{
    hy_msg_submit m;
    memset(&m, 0, sizeof m);
    m.job = (uint16_t)job;
    m.n = 1000;
    m.seed = 7;
    m.dtype = HY_DT_F64;
    return m;
}

Test(spec, every_wire_kind_has_one_row)
{
    for (int k = HY_JOB_PI; k <= HY_JOB_COMPARE_SORT; k++) {
        const hy_kind *r = hy_kind_get(k);
        cr_assert_not_null(r, "kind %d has no row", k);
        cr_expect_eq(r->kind, k);
        cr_expect_eq(r->array, k == HY_JOB_SORT || k == HY_JOB_COMPARE_SORT);
        cr_expect_eq(r->compare, k >= HY_JOB_COMPARE_PI);
        cr_expect_eq(r->work, k == HY_JOB_PI || k == HY_JOB_COMPARE_PI ? HY_JOB_PI : HY_JOB_SORT);
        cr_expect_not_null(r->label);
        cr_expect_not_null(strstr(r->limit_key, "limits."));
    }
    cr_expect_null(hy_kind_get(0));
    cr_expect_null(hy_kind_get(5));
}

Test(spec, defaults_are_applied_once)
{
    hy_msg_submit m = submit(HY_JOB_SORT);
    m.backend = HY_BACKEND_PROCESS;
    m.threads = 2;
    m.array = HY_ARRAY_INLINE;
    hy_job_spec s;
    hy_error err = {0};
    cr_assert_eq(hy_job_spec_make(&m, 4321, &s, &err), 0, "%s", err.msg);
    cr_expect_eq(s.mode, HY_MODE_SPLIT);
    cr_expect_eq(s.repeat, 1);
    cr_expect_eq(s.warmup, 0);
    cr_expect_eq(s.switch_interval_us, 4321);
    cr_expect_eq(s.transport, HY_TRANSPORT_PIPE);
    cr_expect_eq(s.array_bytes, 8000);
    cr_expect_eq(s.array, HY_ARRAY_INLINE);

    m = submit(HY_JOB_COMPARE_PI);
    m.switch_interval_us = 250;
    m.backends = 1u << HY_BACKEND_PROCESS;
    cr_assert_eq(hy_job_spec_make(&m, 4321, &s, &err), 0, "%s", err.msg);
    cr_expect_eq(s.repeat, 5);
    cr_expect_eq(s.warmup, 1);
    cr_expect_eq(s.switch_interval_us, 250);
    cr_expect_eq(s.transports, 1u << HY_TRANSPORT_PIPE);
    cr_expect_eq(s.array_bytes, 0);
}

Test(spec, refuses_what_needs_no_daemon_to_refuse)
{
    hy_job_spec s;
    hy_error err = {0};
    hy_msg_submit m = submit(HY_JOB_PI);
    m.repeat = HY_SPEC_MAX_REPEAT + 1;
    cr_expect_eq(hy_job_spec_make(&m, 5000, &s, &err), HY_ELIMIT);
    cr_expect_not_null(strstr(err.msg, "repeat 1001"), "%s", err.msg);
    m = submit(HY_JOB_PI);
    m.switch_interval_us = 1000001;
    cr_expect_eq(hy_job_spec_make(&m, 5000, &s, &err), HY_EINVAL);
    m = submit(HY_JOB_COMPARE_PI);
    m.n = 0;
    cr_expect_eq(hy_job_spec_make(&m, 5000, &s, &err), HY_EINVAL);
    cr_expect_not_null(strstr(err.msg, "at least 1 sample"), "%s", err.msg);
}

Test(backend, the_table_holds_every_backend_with_every_operation)
{
    unsigned n;
    const hy_backend_ops *const *all = hy_backend_all(&n);
    cr_assert_eq(n, HY_BACKEND_COUNT, "an object for every backend of common's table");
    cr_expect_eq(all[0]->id, HY_BACKEND_SERIAL, "the baseline comes first");
    for (int id = 1; id <= HY_BACKEND_COUNT; id++) {
        const hy_backend_ops *b = hy_backend_get(id);
        cr_assert_not_null(b, "backend %d has no object", id);
        cr_expect_eq(b->id, id);
        cr_expect(b->check && b->pi && b->sort, "%s lacks an operation", hy_backend_name(id));
    }
    cr_expect_null(hy_backend_get(0));
    cr_expect_null(hy_backend_get(HY_BACKEND_COUNT + 1));
}

/* serial, native x {1, 3}, locked x {1, 3}, process x {pipe, shm} x {1, 3}, opencl */
Test(backend, a_comparison_is_planned_from_the_table)
{
    hy_msg_submit m = submit(HY_JOB_COMPARE_PI);
    m.backends = (1u << HY_BACKEND_NATIVE) | (1u << HY_BACKEND_LOCKED) |
                 (1u << HY_BACKEND_PROCESS) | (1u << HY_BACKEND_OPENCL);
    m.transports = (1u << HY_TRANSPORT_PIPE) | (1u << HY_TRANSPORT_SHM);
    m.nthreads_list = 2;
    m.threads_list[0] = 1;
    m.threads_list[1] = 3;
    hy_job_spec s;
    cr_assert_eq(hy_job_spec_make(&m, 5000, &s, NULL), 0);
    hy_row_spec plan[HY_PLAN_MAX];
    const hy_row_spec want[] = {
        {HY_BACKEND_SERIAL, 1, 0}, {HY_BACKEND_NATIVE, 1, 0}, {HY_BACKEND_NATIVE, 3, 0},
        {HY_BACKEND_LOCKED, 1, 0}, {HY_BACKEND_LOCKED, 3, 0},
        {HY_BACKEND_PROCESS, 1, HY_TRANSPORT_PIPE}, {HY_BACKEND_PROCESS, 3, HY_TRANSPORT_PIPE},
        {HY_BACKEND_PROCESS, 1, HY_TRANSPORT_SHM}, {HY_BACKEND_PROCESS, 3, HY_TRANSPORT_SHM},
        {HY_BACKEND_OPENCL, 0, 0},
    };
    unsigned k = hy_job_plan(&s, plan);
    cr_assert_eq(k, sizeof want / sizeof want[0], "%u rows", k);
    for (unsigned i = 0; i < k; i++)
        cr_expect(plan[i].backend == want[i].backend && plan[i].threads == want[i].threads &&
                      plan[i].transport == want[i].transport,
                  "row %u: %s/%u/%d", i, hy_backend_name(plan[i].backend), plan[i].threads,
                  plan[i].transport);

    /* Replicate mode: process splits only, so it has no rows. */
    m.mode = HY_MODE_REPLICATE;
    cr_assert_eq(hy_job_spec_make(&m, 5000, &s, NULL), 0);
    k = hy_job_plan(&s, plan);
    cr_expect_eq(k, 6, "%u rows", k);
    for (unsigned i = 0; i < k; i++)
        cr_expect_neq(plan[i].backend, HY_BACKEND_PROCESS);
}

Test(backend, checks_say_which_limit)
{
    hy_backend_env env = {.native_threads = 2, .locked_threads = 4};
    hy_msg_submit m = submit(HY_JOB_PI);
    m.backend = HY_BACKEND_NATIVE;
    m.threads = 3;
    hy_job_spec s;
    hy_error err = {0};
    cr_assert_eq(hy_job_spec_make(&m, 5000, &s, NULL), 0);
    hy_row_spec r = {HY_BACKEND_NATIVE, 3, 0};
    cr_expect_eq(hy_backend_get(HY_BACKEND_NATIVE)->check(&env, &s, &r, &err), HY_ELIMIT);
    cr_expect_not_null(strstr(err.msg, "cpu.native_threads"), "%s", err.msg);
    r.backend = HY_BACKEND_LOCKED;
    cr_expect_eq(hy_backend_get(HY_BACKEND_LOCKED)->check(&env, &s, &r, &err), 0);
    r.backend = HY_BACKEND_SERIAL;
    cr_expect_eq(hy_backend_get(HY_BACKEND_SERIAL)->check(&env, &s, &r, &err), HY_EINVAL);
    r.backend = HY_BACKEND_OPENCL;
    cr_expect_eq(hy_backend_get(HY_BACKEND_OPENCL)->check(&env, &s, &r, &err), HY_EBACKEND);
    cr_expect_not_null(strstr(err.msg, "opencl.enabled"), "%s", err.msg);
    r = (hy_row_spec){HY_BACKEND_PROCESS, 1, HY_TRANSPORT_PIPE};
    cr_expect_eq(hy_backend_get(HY_BACKEND_PROCESS)->check(&env, &s, &r, &err), HY_ELIMIT,
                 "no pool: no workers");
}

Test(backend, a_row_runs_through_its_backend)
{
    hy_host *h;
    hy_host_config hc = {.threads = 2};
    hy_error err = {0};
    cr_assert_eq(hy_host_create(&hc, &h, &err), 0, "%s", err.msg);
    hy_engines e = {.host = h};
    hy_msg_submit m = submit(HY_JOB_PI);
    m.n = 20000;
    m.repeat = 3;
    hy_job_spec s;
    cr_assert_eq(hy_job_spec_make(&m, 5000, &s, NULL), 0);
    hy_row_spec r = {HY_BACKEND_LOCKED, 2, 0};
    hy_run_io io = {.array_fd = -1};
    hy_result_row row;
    uint64_t busy = 0;
    cr_assert_eq(hy_runner_run(&e, &s, &r, &io, &row, &busy, &err), 0, "%s", err.msg);
    cr_expect_eq(row.backend, HY_BACKEND_LOCKED);
    cr_expect_eq(row.threads, 2);
    cr_expect_eq(row.repeat, 3);
    cr_expect_eq(row.mode, HY_MODE_SPLIT);
    cr_expect_eq(row.hits, hy_host_pi_hits_reference(7, 0, 20000));
    cr_expect(row.min_ns <= row.median_ns && row.median_ns <= row.max_ns);
    /* A backend whose engine is absent answers with a sentence, not a crash. */
    r = (hy_row_spec){HY_BACKEND_PROCESS, 1, HY_TRANSPORT_PIPE};
    cr_expect_eq(hy_runner_run(&e, &s, &r, &io, &row, &busy, &err), HY_EBACKEND);
    cr_expect_not_null(strstr(err.msg, "process backend is not running"), "%s", err.msg);
    hy_host_destroy(h);
}

/* A .npy file as hybridd's MPI sort of .npy paths reads it (daemon/ranks_files.c's
 * read_header, without MPI): hy_npy_prefix over the first 10 bytes (12 when it asks for
 * them), then hy_npy_dict over exactly the header's bytes. `dict` is the header without its
 * newline; version 1 or 2 decides the length field's width. */
static int daemon_reads(const char *dict, int version, int *dtype, uint64_t *n, hy_error *err)
{
    unsigned char f[1024];
    size_t dlen = strlen(dict), pre = version == 1 ? 10 : 12;
    cr_assert(pre + dlen + 1 <= sizeof f);
    memcpy(f, "\x93NUMPY", 6);
    f[6] = (unsigned char)version;
    f[7] = 0;
    memset(f + 8, 0, 4);
    f[8] = (unsigned char)((dlen + 1) & 0xff);
    f[9] = (unsigned char)((dlen + 1) >> 8);
    memcpy(f + pre, dict, dlen);
    f[pre + dlen] = '\n';
    uint64_t at = 0, hlen = 0;
    *dtype = 0;
    *n = 0;
    int rc = hy_npy_prefix("in.npy", f, 10, &at, &hlen, err);
    if (rc == 0 && hlen == 0) {
        cr_assert_eq(at, 12u, "only a version 2 or 3 file asks for 12 bytes");
        rc = hy_npy_prefix("in.npy", f, HY_NPY_PREFIX_MAX, &at, &hlen, err);
    }
    if (rc != 0)
        return rc;
    cr_assert_eq(at, pre);
    cr_assert_eq(hlen, dlen + 1);
    return hy_npy_dict("in.npy", (const char *)f + at, hlen, dtype, n, err);
}

Test(ranks_npy, takes_what_numpy_writes)
{
    char h[256];
    size_t total = hy_npy_header(HY_DT_U32, 50021, h, sizeof h);
    cr_assert(total > 10);
    uint64_t at = 0, hlen = 0, n = 0;
    hy_error err = {0};
    cr_assert_eq(hy_npy_prefix("in.npy", (unsigned char *)h, 10, &at, &hlen, &err), 0);
    cr_expect_eq(at + hlen, total);
    int dtype = 0;
    cr_assert_eq(hy_npy_dict("in.npy", h + at, hlen, &dtype, &n, &err), 0, "%s", err.msg);
    cr_expect_eq(dtype, HY_DT_U32);
    cr_expect_eq(n, 50021);
}

/* The daemon's parser used to find 'descr' and friends by their single-quoted text, so it
 * refused a header hybridctl took from the same file: double quotes, as json-minded writers
 * and numpy's own literal syntax allow. Now both read with common/npy.c. */
Test(ranks_npy, takes_double_quoted_keys_in_any_order)
{
    static const struct {
        const char *dict;
        int version, dtype;
        uint64_t n;
    } cases[] = {
        {"{\"descr\": \"<f8\", \"fortran_order\": False, \"shape\": (7,)}", 1, HY_DT_F64, 7},
        {"{'shape': (9,), 'fortran_order': False, 'descr': '<i8'}", 1, HY_DT_I64, 9},
        {"{\"shape\":(5L,),'descr':\"<u4\" , \"fortran_order\":False,}", 1, HY_DT_U32, 5},
        {"{'fortran_order': False, \"descr\": '<f4', 'shape': (0,), }", 2, HY_DT_F32, 0},
        {"{ \"descr\" :\t'<i4' ,\n \"shape\" : ( 3 , ) , \"fortran_order\" : False }", 2,
         HY_DT_I32, 3},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int dtype;
        uint64_t n;
        hy_error err = {0};
        cr_assert_eq(daemon_reads(cases[c].dict, cases[c].version, &dtype, &n, &err), 0,
                     "%s: %s", cases[c].dict, err.msg);
        cr_expect_eq(dtype, cases[c].dtype, "%s", cases[c].dict);
        cr_expect_eq(n, cases[c].n, "%s", cases[c].dict);
    }
}

/* What the daemon refused it still refuses, with the same codes, however the keys are
 * quoted or ordered. */
Test(ranks_npy, still_refuses_what_it_refused)
{
    static const struct {
        const char *dict;
        int code;
        const char *words;
    } cases[] = {
        {"{'descr': '<f8', 'fortran_order': True, 'shape': (6,), }", HY_EINVAL, "Fortran"},
        {"{\"shape\": (6,), \"fortran_order\": True, \"descr\": \"<f8\"}", HY_EINVAL,
         "Fortran"},
        {"{'descr': '<u4', 'fortran_order': False, 'shape': (3, 2), }", HY_EINVAL,
         "2-D array of shape (3, 2)"},
        {"{\"shape\": (3, 2,), \"descr\": \"<u4\", \"fortran_order\": False}", HY_EINVAL,
         "2-D array of shape (3, 2)"},
        {"{'descr': '<u4', 'fortran_order': False, 'shape': (), }", HY_EINVAL, "0-d array"},
        {"{'descr': '<i2', 'fortran_order': False, 'shape': (6,), }", HY_EDTYPE,
         "dtype <i2 is not supported"},
        {"{'descr': '', 'fortran_order': False, 'shape': (6,), }", HY_EDTYPE,
         "dtype '' is not supported"},
        {"{\"descr\": \">f8\", \"fortran_order\": False, \"shape\": (6,)}", HY_EDTYPE,
         "big-endian (>f8)"},
        {"{'descr': [('x', '<i4')], 'fortran_order': False, 'shape': (6,), }", HY_EDTYPE,
         "structured"},
        {"{\"descr\": \"<i4\", \"fortran_order\": False, \"shape\": (4611686018427387904,)}",
         HY_EINVAL, "overflows: it holds more i32 than a size_t counts bytes"},
        {"{'descr': '<f8', 'fortran_order': False}", HY_EINVAL, "no 'shape' key"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (6)}", HY_EINVAL,
         "malformed 'shape'"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int dtype;
        uint64_t n;
        hy_error err = {0};
        cr_expect_eq(daemon_reads(cases[c].dict, 1, &dtype, &n, &err), cases[c].code,
                     "%s: %s", cases[c].dict, err.msg);
        cr_expect_eq(err.code, cases[c].code);
        cr_expect_not_null(strstr(err.msg, "in.npy"), "%s", err.msg);
        cr_expect_not_null(strstr(err.msg, cases[c].words), "%s: %s", cases[c].dict, err.msg);
    }
}

Test(ranks_npy, the_prefix_takes_versions_1_to_3_and_lengths_1_to_65536)
{
    uint64_t at, hlen;
    hy_error err = {0};
    unsigned char p[12] = "\x93NUMPY\x03\x00\x00\x00\x01\x00"; /* 3.0, 65536 bytes */
    cr_assert_eq(hy_npy_prefix("in.npy", p, 12, &at, &hlen, &err), 0, "%s", err.msg);
    cr_expect_eq(at, 12u);
    cr_expect_eq(hlen, 65536u);
    p[8] = 1; /* 65537 */
    cr_expect_eq(hy_npy_prefix("in.npy", p, 12, &at, &hlen, &err), HY_EINVAL);
    cr_expect_not_null(strstr(err.msg, "header length 65537"), "%s", err.msg);
    unsigned char z[10] = "\x93NUMPY\x01\x00\x00\x00"; /* a header of 0 bytes */
    cr_expect_eq(hy_npy_prefix("in.npy", z, 10, &at, &hlen, &err), HY_EINVAL);
    unsigned char v[10] = "\x93NUMPY\x01\x01\x10\x00"; /* 1.1: numpy reads x.0 only */
    cr_expect_eq(hy_npy_prefix("in.npy", v, 10, &at, &hlen, &err), HY_EINVAL);
    cr_expect_not_null(strstr(err.msg, "version 1.1"), "%s", err.msg);
    cr_expect_eq(hy_npy_prefix("in.npy", (const unsigned char *)"not an array", 10, &at, &hlen,
                               &err), HY_EINVAL);
    cr_expect_not_null(strstr(err.msg, "in.npy is not a .npy file"), "%s", err.msg);
}

/* fuzz_ranks_npy found these (tests/fuzz/regressions/fuzz_ranks_npy/): a count past 2^64 was
 * read by strtoull as 2^64 - 1, one whose bytes pass 2^64 was taken, and a refusal quoted the
 * header's newline into its one-line sentence. */
Test(ranks_npy, a_count_past_2_64_is_refused_not_clamped)
{
    int dtype;
    uint64_t n;
    hy_error err = {0};
    cr_expect_eq(daemon_reads("{'descr': '<i4', 'fortran_order': False, 'shape': "
                              "(18446744073709551616,), }", 1, &dtype, &n, &err), HY_EINVAL);
    cr_expect_not_null(strstr(err.msg, "in.npy: shape (18446744073709551616,"), "%s", err.msg);
    cr_expect_not_null(strstr(err.msg, "holds more i32 than a size_t counts bytes"), "%s",
                       err.msg);
}

Test(ranks_npy, a_count_whose_bytes_overflow_is_refused)
{
    int dtype;
    uint64_t n;
    hy_error err = {0};
    cr_expect_eq(daemon_reads("{'descr': '<u8', 'fortran_order': False, 'shape': "
                              "(2305843009213693952,), }", 1, &dtype, &n, &err), HY_EINVAL,
                 "%s", err.msg);
    /* the largest count that fits is taken */
    cr_expect_eq(daemon_reads("{'descr': '<u8', 'fortran_order': False, 'shape': "
                              "(2305843009213693951,), }", 1, &dtype, &n, &err), 0, "%s",
                 err.msg);
    cr_expect_eq(n, 2305843009213693951u);
    cr_expect_eq(daemon_reads("{'descr': '<i4', 'fortran_order': False, 'shape': "
                              "(4611686018427387904,), }", 1, &dtype, &n, &err), HY_EINVAL);
}

Test(ranks_npy, a_refusal_is_one_line)
{
    int dtype;
    uint64_t n;
    hy_error err = {0};
    /* the shape's own text, newline and all, quoted escaped */
    cr_expect_eq(daemon_reads("{'descr':'<f4','fortran_order':False,'shape':"
                              "(99999999999999999999\n,)}", 1, &dtype, &n, &err), HY_EINVAL);
    cr_expect_null(strchr(err.msg, '\n'), "%s", err.msg);
    cr_expect_not_null(strstr(err.msg, "shape (99999999999999999999\\x0a,) overflows"), "%s",
                       err.msg);
    cr_expect_eq(daemon_reads("{'descr': '\x1b[2J', 'fortran_order': False, 'shape': (3,), }",
                              1, &dtype, &n, &err), HY_EDTYPE);
    cr_expect_null(strchr(err.msg, '\x1b'), "%s", err.msg);
    cr_expect_not_null(strstr(err.msg, "dtype \\x1b[2J is not supported"), "%s", err.msg);
    /* a header whose bytes end without the newline numpy writes */
    cr_expect_eq(hy_npy_dict("in.npy", "{}", 2, &dtype, &n, &err), HY_EINVAL);
    cr_expect_not_null(strstr(err.msg, "newline"), "%s", err.msg);
}

/* The build defines NDEBUG; HY_ASSERT must stop the program all the same. */
Test(contract, a_broken_invariant_stops_the_program, .signal = SIGABRT)
{
    volatile int rows = 0;
    HY_ASSERT(rows > 0);
}
