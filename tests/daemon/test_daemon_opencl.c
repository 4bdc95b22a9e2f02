/* tests/daemon: hybridd with OpenCL on (PoCL's CPU device in CI) — DEVICES, pi and sort on
 * the opencl backend bit-identical to the CPU ones, and a compare over all four backends.
 * PoCL's kernel cache is shared by the run (tests/cl/pocl_env.h), so only the first daemon
 * builds kernels. */
#include <unistd.h>

#include "../cl/pocl_env.h"
#include "suite.h"

static void start_opencl(void)
{
    pocl_cache_for_run(); /* the daemon inherits POCL_CACHE_DIR */
    hyt_conf k = hyt_conf_default();
    k.opencl = true;
    suite_start(&k);
}

TestSuite(daemon_opencl, .init = start_opencl, .fini = suite_stop, .timeout = 180);

/* The first usable device's index, or skips the test when there is none. */
static uint16_t usable_device(hyt_client *c, bool *pocl)
{
    hy_msg_devices_reply *dv = calloc(1, sizeof *dv);
    cr_assert_not_null(dv);
    cr_assert_eq(hyt_devices(c, dv), 0, "%s", c->err.msg);
    cr_expect_eq(dv->native_threads, 2);
    int found = -1;
    for (uint32_t i = 0; i < dv->ndevices; i++) {
        const hy_device_record *r = &dv->devices[i];
        cr_expect_gt(strlen(r->name), 0, "device %u has no name", i);
        cr_expect_gt(strlen(r->platform), 0, "device %u has no platform", i);
        if (r->flags & HY_DEV_POCL_CPU)
            cr_expect(strstr(r->platform, "Portable Computing Language") ||
                      strstr(r->platform, "pocl") || strstr(r->platform, "PoCL"),
                      "PoCL's device %u names platform \"%s\"", i, r->platform);
        if (r->flags & HY_DEV_USABLE) {
            cr_expect_eq(r->problem[0], '\0', "usable device %u has a problem: %s", i,
                         r->problem);
            if (found < 0) {
                found = (int)r->index;
                *pocl = (r->flags & HY_DEV_POCL_CPU) != 0;
            }
        } else {
            cr_expect_gt(strlen(r->problem), 0, "unusable device %u says no problem", i);
        }
    }
    hy_msg_status_reply st;
    cr_assert_eq(hyt_status(c, &st), 0);
    cr_expect_eq(st.devices, dv->ndevices, "STATUS devices %u, DEVICES %u", st.devices,
                 dv->ndevices);
    uint32_t usable = 0;
    for (uint32_t i = 0; i < dv->ndevices; i++)
        usable += (dv->devices[i].flags & HY_DEV_USABLE) != 0;
    cr_expect_eq(st.devices_usable, usable);
    free(dv);
    if (found < 0)
        suite_skip("no usable OpenCL device");
    return (uint16_t)found;
}

Test(daemon_opencl, pi_and_sort_on_the_device_match_the_cpu)
{
    hyt_client *c = suite_client();
    bool pocl = false;
    uint16_t dev = usable_device(c, &pocl);

    const uint64_t n = 3000017, seed = 5;
    hy_msg_submit s = hyt_pi(HY_BACKEND_OPENCL, 0, n, seed);
    s.device = dev;
    hyt_job j;
    suite_run_ok(c, &s, NULL, 0, &j, "pi on opencl");
    cr_assert_eq(j.nrows, 1);
    suite_check_pi_row(&j.rows[0], HY_BACKEND_OPENCL, j.rows[0].threads, seed, n, 1,
                       "pi on opencl");
    cr_expect_eq(j.rows[0].device, dev);
    if (pocl)
        cr_expect(j.rows[0].flags & HY_ROW_POCL_CPU, "row flags 0x%x lack POCL_CPU",
                  j.rows[0].flags);
    cr_expect(!(pocl && (j.rows[0].flags & HY_ROW_GPU)), "PoCL's CPU device labelled GPU");
    cr_expect_geq(j.rows[0].launches, 1);
    /* Each launch reads back one ulong per work-group; pi makes no passes over keys. */
    cr_expect_gt(j.rows[0].bytes_moved, 0u);
    cr_expect_eq(j.rows[0].bytes_moved % 8, 0u, "bytes moved %llu",
                 (unsigned long long)j.rows[0].bytes_moved);
    cr_expect_eq(j.rows[0].passes, 0u);
    hyt_job_release(c, &j);

    /* A device index that does not exist. */
    s.device = 63;
    hyt_job bad;
    cr_assert_eq(hyt_run(c, &s, NULL, 0, &bad), 0);
    cr_expect(bad.code == HY_EINVAL || bad.code == HY_EBACKEND,
              "opencl device 63: got %s \"%s\"", suite_code(bad.code), bad.message);
    cr_expect(!bad.accepted);
    hyt_job_release(c, &bad);

    for (int dt = HY_DT_I32; dt <= HY_DT_F64; dt += 1) {
        const size_t cnt = 5000;
        size_t bytes = cnt * hy_dtype_size(dt);
        void *data = malloc(bytes), *want = malloc(bytes);
        cr_assert(data && want);
        hyt_fill(dt, data, cnt, 300 + (uint64_t)dt);
        memcpy(want, data, bytes);
        hyt_sort_ref(dt, want, cnt);
        hy_msg_submit so = hyt_sort_inline(HY_BACKEND_OPENCL, 0, dt, data, cnt);
        so.device = dev;
        char what[48];
        snprintf(what, sizeof what, "inline %s sort on opencl", hy_dtype_name(dt));
        suite_run_ok(c, &so, NULL, 0, &j, what);
        cr_assert_eq(j.array_bytes, bytes, "%s: %u bytes back", what, j.array_bytes);
        cr_expect_eq(memcmp(j.array, want, bytes), 0, "%s: differs from the reference", what);
        hyt_job_release(c, &j);
        free(data);
        free(want);
    }

    /* A memfd sort. */
    const size_t cnt = 200000;
    int fd;
    void *map;
    hy_error err;
    cr_assert_eq(hy_memfd_create("hyt-cl", cnt * 4, &fd, &map, &err), 0, "%s", err.msg);
    hyt_fill(HY_DT_F32, map, cnt, 8);
    float *want = malloc(cnt * 4);
    cr_assert_not_null(want);
    memcpy(want, map, cnt * 4);
    hyt_sort_ref(HY_DT_F32, want, cnt);
    cr_assert_eq(hy_memfd_seal(fd, &err), 0);
    hy_msg_submit sm = hyt_sort_memfd(HY_BACKEND_OPENCL, 0, HY_DT_F32, cnt);
    sm.device = dev;
    suite_run_ok(c, &sm, &fd, 1, &j, "memfd f32 sort on opencl");
    cr_expect_eq(memcmp(map, want, cnt * 4), 0, "memfd f32 opencl sort differs");
    hyt_job_release(c, &j);
    hy_memfd_unmap(map, cnt * 4);
    close(fd);
    free(want);
    suite_client_clean(c);
    hyt_close(c);
}

Test(daemon_opencl, compare_over_all_backends)
{
    hyt_client *c = suite_client();
    bool pocl = false;
    uint16_t dev = usable_device(c, &pocl);
    const uint64_t n = 1000000, seed = 77;
    hy_msg_submit s = {0};
    s.job = HY_JOB_COMPARE_PI;
    s.device = dev;
    s.repeat = 2;
    s.n = n;
    s.seed = seed;
    s.backends = (1u << HY_BACKEND_SERIAL) | (1u << HY_BACKEND_NATIVE) |
                 (1u << HY_BACKEND_LOCKED) | (1u << HY_BACKEND_OPENCL);
    s.nthreads_list = 2;
    s.threads_list[0] = 1;
    s.threads_list[1] = 2;
    hyt_job j;
    suite_run_ok(c, &s, NULL, 0, &j, "compare pi on all backends");
    cr_assert_eq(j.nrows, 6, "compare: %u rows, want serial + 2 native + 2 locked + opencl",
                 j.nrows);
    cr_expect_eq(j.rows[0].backend, HY_BACKEND_SERIAL, "row 0 is %s",
                 hy_backend_name(j.rows[0].backend));
    unsigned opencl = 0;
    for (unsigned r = 0; r < j.nrows; r++) {
        char what[48];
        snprintf(what, sizeof what, "compare row %u (%s)", r,
                 hy_backend_name(j.rows[r].backend));
        suite_check_pi_row(&j.rows[r], j.rows[r].backend, j.rows[r].threads, seed, n, 2, what);
        if (j.rows[r].backend == HY_BACKEND_OPENCL) {
            opencl++;
            cr_expect_eq(j.rows[r].threads, 0, "opencl row threads %u, want 0",
                         j.rows[r].threads);
        }
    }
    cr_expect_eq(opencl, 1, "%u opencl rows, want 1", opencl);
    hyt_job_release(c, &j);

    hy_msg_status_reply st;
    cr_assert_eq(hyt_wait_idle(c, &st, HYT_WAIT_MS), 0);
    cr_expect_geq(st.backend_jobs[HY_BACKEND_OPENCL - 1], 1, "backend_jobs[opencl] %llu",
                  (unsigned long long)st.backend_jobs[HY_BACKEND_OPENCL - 1]);
    hyt_close(c);
}

/* An array more than the device takes in one sort (the cap lowered for the test to 256 KiB
 * of keys) is sorted in disjoint key-range parts, each on the device, with no merge: the
 * bytes are the CPU engine's for every dtype, with NaNs, -0.0 and many equal keys. */
static void start_opencl_small_parts(void)
{
    cr_assert_eq(setenv("HYBRIDD_TEST_CL_PART_BYTES", "262144", 1), 0);
    start_opencl();
    unsetenv("HYBRIDD_TEST_CL_PART_BYTES");
}

/* A suite of its own: a test's .init runs after its suite's, so under daemon_opencl it would
 * start a second daemon over the suite's (which then outlived the run). */
TestSuite(daemon_opencl_parts, .init = start_opencl_small_parts, .fini = suite_stop,
          .timeout = 180);

Test(daemon_opencl_parts, an_array_larger_than_the_device_takes_is_sorted_in_key_range_parts)
{
    hyt_client *c = suite_client();
    bool pocl = false;
    uint16_t dev = usable_device(c, &pocl);
    const size_t cnt = 100003; /* 400 KB of 4-byte keys, 800 KB of 8-byte: 3 to 5 parts */
    for (int dt = HY_DT_I32; dt <= HY_DT_F64; dt++) {
        size_t bytes = cnt * hy_dtype_size(dt);
        int fd;
        void *map, *want = malloc(bytes);
        hy_error err;
        cr_assert_not_null(want);
        cr_assert_eq(hy_memfd_create("hyt-parts", bytes, &fd, &map, &err), 0, "%s", err.msg);
        hyt_fill(dt, map, cnt, 900 + (uint64_t)dt);
        memcpy(want, map, bytes);
        hyt_sort_ref(dt, want, cnt);
        cr_assert_eq(hy_memfd_seal(fd, &err), 0);
        hy_msg_submit so = hyt_sort_memfd(HY_BACKEND_OPENCL, 0, dt, cnt);
        so.device = dev;
        hyt_job j;
        char what[48];
        snprintf(what, sizeof what, "%s sort in parts", hy_dtype_name(dt));
        suite_run_ok(c, &so, &fd, 1, &j, what);
        cr_expect_eq(memcmp(map, want, bytes), 0, "%s: differs from the reference", what);
        hyt_job_release(c, &j);
        hy_memfd_unmap(map, bytes);
        close(fd);
        free(want);
    }
    /* The daemon says it cut them: 4-byte keys in 3 parts, 8-byte in 5. */
    FILE *f = fopen(D.log, "r");
    cr_assert_not_null(f);
    static char text[1 << 16];
    text[fread(text, 1, sizeof text - 1, f)] = '\0';
    fclose(f);
    cr_expect(strstr(text, "100003 keys sorted in 3 key-range parts of at most 262144 bytes"),
              "the log does not show 4-byte keys cut in 3 parts:\n%s", text);
    cr_expect(strstr(text, "100003 keys sorted in 5 key-range parts"),
              "the log does not show 8-byte keys cut in 5 parts:\n%s", text);
    suite_client_clean(c);
    hyt_close(c);
}
