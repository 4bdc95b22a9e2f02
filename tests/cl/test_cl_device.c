/* tests: OpenCL device ownership — discovery and honest labels, named errors, a program
 * that fails to build, and the binary cache (first build, reuse, corrupt entries rebuilt). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h" /* hy_cl_fail, what every checked call answers with */
#include "pocl_env.h"

static void setup(void) { pocl_cache_for_run(); }

TestSuite(cl_device, .init = setup, .timeout = 300);

static hy_cl *open_cl(const hy_cl_config *cfg)
{
    hy_cl *cl = NULL;
    hy_error err = {0};
    int rc = hy_cl_open(cfg, &cl, &err);
    cr_assert_eq(rc, 0, "hy_cl_open: %d %s", rc, err.msg);
    cr_assert_not_null(cl);
    /* scripts/install-deps.sh installs PoCL, so every machine that runs the tests has at
     * least its CPU device. */
    cr_assert_geq(hy_cl_device_count(cl), 1u, "no OpenCL device found (is PoCL installed?)");
    return cl;
}

Test(cl_device, discovery_and_labels)
{
    hy_cl *cl = open_cl(NULL);
    bool any_usable = false;
    for (unsigned i = 0; i < hy_cl_device_count(cl); i++) {
        hy_cl_device_info in;
        hy_error err = {0};
        cr_assert_eq(hy_cl_describe(cl, i, &in, &err), 0, "describe %u: %s", i, err.msg);
        cr_assert_eq(in.index, i);
        cr_assert(in.name[0], "device %u has no name", i);
        cr_assert(in.platform[0], "device %u has no platform name", i);
        cr_assert_geq(in.compute_units, 1u);
        cr_assert_gt(in.max_alloc, 0u);
        cr_assert_geq(in.global_mem, in.max_alloc);
        cr_assert_geq(in.max_work_group, 1u);
        const char *label = hy_cl_type_label(&in);
        if (in.type != HY_CL_TYPE_GPU)
            cr_assert_neq(strcmp(label, "GPU"), 0, "a non-GPU device labelled GPU");
        if (in.pocl_cpu) {
            cr_assert_eq(in.type, HY_CL_TYPE_CPU);
            cr_assert_str_eq(label, "PoCL CPU");
        }
        if (in.usable)
            any_usable = true;
        else
            cr_assert(in.problem[0], "device %u is not usable and says nothing", i);
    }
    cr_assert(any_usable, "no usable OpenCL device");
    hy_cl_close(cl);
}

Test(cl_device, bad_index)
{
    hy_cl *cl = open_cl(NULL);
    hy_cl_device_info in;
    hy_error err = {0};
    unsigned n = hy_cl_device_count(cl);
    cr_assert_eq(hy_cl_describe(cl, n, &in, &err), HY_EINVAL);
    cr_assert(strstr(err.msg, "no OpenCL device"), "message: %s", err.msg);
    hy_cl_pi_result pr;
    err.msg[0] = 0;
    cr_assert_eq(hy_cl_pi(cl, &(hy_cl_opts){.device = 999}, 1, 1000, &pr, &err), HY_EINVAL);
    cr_assert(strstr(err.msg, "999"), "message names the index: %s", err.msg);
    /* The same handle still serves a good request, on every usable device. */
    for (unsigned i = 0; i < n; i++) {
        if (hy_cl_describe(cl, i, &in, &err) != 0 || !in.usable)
            continue;
        cr_assert_eq(hy_cl_pi(cl, &(hy_cl_opts){.device = i}, 0, 1000, &pr, &err), 0,
                     "device %u: %s", i, err.msg);
        cr_assert_eq(pr.hits, 783u, "device %u: %" PRIu64 " hits for seed 0, n 1000", i,
                     pr.hits); /* docs/pi-mapping.md */
    }
    hy_cl_close(cl);
}

Test(cl_device, error_names)
{
    cr_assert_str_eq(hy_cl_error_name(0), "CL_SUCCESS");
    cr_assert_str_eq(hy_cl_error_name(-5), "CL_OUT_OF_RESOURCES");
    cr_assert_str_eq(hy_cl_error_name(-11), "CL_BUILD_PROGRAM_FAILURE");
    cr_assert_str_eq(hy_cl_error_name(-61), "CL_INVALID_BUFFER_SIZE");
    cr_assert_str_eq(hy_cl_error_name(-1001), "CL_PLATFORM_NOT_FOUND_KHR");
    cr_assert_str_eq(hy_cl_error_name(12345), "CL_UNKNOWN_ERROR");
}

/* Memory the driver refuses is the job's size against the device (ELIMIT, said so), at
 * creation or late at an enqueue; any other failed call is the backend's (EBACKEND), the
 * kind after which a device is rebuilt. */
Test(cl_device, failed_calls_map_to_codes_and_sentences)
{
    hy_error err = {0};
    cr_assert_eq(hy_cl_fail(CL_SUCCESS, "clFinish(q)", &err), 0);
    cr_assert_eq(hy_cl_fail(CL_MEM_OBJECT_ALLOCATION_FAILURE,
                            "clEnqueueNDRangeKernel(q, k, 1, NULL, &g, &l, 0, NULL, &ev)", &err),
                 HY_ELIMIT);
    cr_expect(strstr(err.msg, "clEnqueueNDRangeKernel failed: CL_MEM_OBJECT_ALLOCATION_FAILURE "
                              "(-4): the device has no memory left"),
              "%s", err.msg);
    cr_assert_eq(hy_cl_fail(CL_OUT_OF_RESOURCES, "clCreateBuffer(ctx, 0, n, NULL, &rc)", &err),
                 HY_ELIMIT, "%s", err.msg);
    /* At a wait, out-of-resources is how some GPU drivers report a kernel's fault. */
    cr_assert_eq(hy_cl_fail(CL_OUT_OF_RESOURCES, "clFinish(q)", &err), HY_EBACKEND);
    cr_expect_str_eq(err.msg, "clFinish failed: CL_OUT_OF_RESOURCES (-5)");
}

Test(cl_device, close_null_is_safe) { hy_cl_close(NULL); }

/* A program that fails to build leaves the device listed but unusable, says why with the
 * build log, and a job on it gets an error instead of a crash. */
Test(cl_device, build_failure)
{
    hy_cl *cl = open_cl(&(hy_cl_config){.test_break_build = true});
    for (unsigned i = 0; i < hy_cl_device_count(cl); i++) {
        hy_cl_device_info in;
        hy_error err = {0};
        cr_assert_eq(hy_cl_describe(cl, i, &in, &err), 0);
        cr_assert_not(in.usable, "device %u usable although its pi program cannot build", i);
        cr_assert(strstr(in.problem, "pi.cl"), "problem names the program: %s", in.problem);
        cr_assert(strstr(in.problem, "CL_BUILD_PROGRAM_FAILURE"),
                  "problem names the error: %s", in.problem);
        cr_assert(strstr(in.problem, "on purpose"), "problem quotes the build log: %s",
                  in.problem);
        hy_cl_pi_result pr;
        cr_assert_eq(hy_cl_pi(cl, &(hy_cl_opts){.device = i}, 1, 1000, &pr, &err),
                     HY_EBACKEND);
        cr_assert(strstr(err.msg, "not usable"), "message: %s", err.msg);
    }
    hy_cl_close(cl);
}

/* Files in dir ending in .bin, up to 16 names. */
static unsigned cache_files(const char *dir, char names[16][512])
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "cache directory %s missing", dir);
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 16) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".bin") == 0)
            snprintf(names[n++], 512, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    return n;
}

/* Opens with the cache in dir; true when every device's programs came from it. Whatever the
 * cache did, every device must be usable and count pi right. */
static bool from_cache(const char *dir)
{
    hy_cl *cl = open_cl(&(hy_cl_config){.cache_dir = dir});
    bool all = true;
    for (unsigned i = 0; i < hy_cl_device_count(cl); i++) {
        hy_cl_device_info in;
        hy_error err = {0};
        cr_assert_eq(hy_cl_describe(cl, i, &in, &err), 0);
        cr_assert(in.usable, "device %u not usable: %s", i, in.problem);
        hy_cl_pi_result pr;
        cr_assert_eq(hy_cl_pi(cl, &(hy_cl_opts){.device = i}, 42, 100000, &pr, &err), 0,
                     "device %u: %s", i, err.msg);
        cr_assert_eq(pr.hits, 78463u, "device %u: %" PRIu64 " hits for seed 42, n 100000", i,
                     pr.hits); /* docs/pi-mapping.md */
        all = all && in.from_cache;
    }
    hy_cl_close(cl);
    return all;
}

Test(cl_device, binary_cache)
{
    char dir[] = "/tmp/hybridd-clcache-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char sub[600];
    snprintf(sub, sizeof sub, "%s/nested/cache", dir); /* created with its parents */

    cr_assert_not(from_cache(sub), "first open cannot come from an empty cache");
    char names[16][512];
    unsigned n = cache_files(sub, names);
    /* One entry per program and device (identical devices share theirs). */
    cr_assert(n >= 2 && n % 2 == 0, "one cache entry per program and device, found %u", n);
    cr_assert(from_cache(sub), "second open did not use the cache");

    /* Corrupt both entries: one truncated, one with a flipped byte in the binary. */
    FILE *f = fopen(names[0], "r+b");
    cr_assert_not_null(f);
    cr_assert_eq(ftruncate(fileno(f), 20), 0);
    fclose(f);
    f = fopen(names[1], "r+b");
    cr_assert_not_null(f);
    cr_assert_eq(fseek(f, 40, SEEK_SET), 0);
    int c = fgetc(f);
    cr_assert_eq(fseek(f, 40, SEEK_SET), 0);
    fputc(c ^ 0x5A, f);
    fclose(f);
    cr_assert_not(from_cache(sub), "a corrupt cache entry was trusted");
    cr_assert(from_cache(sub), "the rebuilt entries were not written back");
    cr_assert_eq(cache_files(sub, names), n);

    /* No cache configured: never from cache. */
    cr_assert_not(from_cache(NULL));
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

/* A machine without any OpenCL driver: the loader finds no platform. That is a normal
 * state — zero devices, clear errors for any job — not a failure to open. Each Criterion
 * test runs in its own process, so pointing the loader at an empty vendor directory here
 * touches no other test. */
Test(cl_device, no_device_at_all)
{
    char dir[] = "/tmp/hybridd-novendors-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(setenv("OCL_ICD_VENDORS", dir, 1), 0);
    hy_cl *cl = NULL;
    hy_error err = {0};
    cr_assert_eq(hy_cl_open(NULL, &cl, &err), 0, "open without devices failed: %s", err.msg);
    cr_assert_eq(hy_cl_device_count(cl), 0u);
    hy_cl_device_info in;
    cr_assert_eq(hy_cl_describe(cl, 0, &in, &err), HY_EINVAL);
    cr_assert(strstr(err.msg, "has 0"), "message: %s", err.msg);
    hy_cl_pi_result pr;
    cr_assert_eq(hy_cl_pi(cl, &(hy_cl_opts){.device = 0}, 1, 100, &pr, &err), HY_EINVAL);
    float v[2] = {2, 1};
    hy_cl_sort_result sr;
    cr_assert_eq(hy_cl_sort(cl, &(hy_cl_opts){.device = 0}, HY_DT_F32, v, 2, &sr, &err),
                 HY_EINVAL);
    cr_assert(v[0] == 2 && v[1] == 1, "a failed job touched the array");
    hy_cl_close(cl);
    rmdir(dir);
}

/* ---- the kernel variant: from the device type, or forced by HYBRIDD_CL_VARIANT ---- */

/* Each Criterion test runs in its own process, so setting the variable here touches no
 * other test; NULL unsets it. */
static void set_variant(const char *value)
{
    if (value)
        cr_assert_eq(setenv("HYBRIDD_CL_VARIANT", value, 1), 0);
    else
        cr_assert_eq(unsetenv("HYBRIDD_CL_VARIANT"), 0);
}

Test(cl_device, variant_from_type)
{
    set_variant(NULL);
    hy_cl *cl = open_cl(NULL);
    for (unsigned i = 0; i < hy_cl_device_count(cl); i++) {
        hy_cl_device_info in;
        hy_error err = {0};
        cr_assert_eq(hy_cl_describe(cl, i, &in, &err), 0);
        cr_assert_not(in.variant_forced, "device %u: variant forced with the switch unset", i);
        cr_assert_eq(in.gpu_variant, in.type != HY_CL_TYPE_CPU,
                     "device %u (%s): the %s variant", i, hy_cl_type_label(&in),
                     in.gpu_variant ? "GPU" : "CPU");
        cr_assert_str_eq(hy_cl_variant_label(&in), in.gpu_variant ? "GPU kernels" : "CPU kernels");
    }
    hy_cl_close(cl);
}

/* Either variant builds and counts exactly on every device, and says it was forced. */
Test(cl_device, variant_forced)
{
    static const char *const values[] = {"gpu", "cpu"};
    for (size_t v = 0; v < 2; v++) {
        set_variant(values[v]);
        bool gpu = v == 0;
        hy_cl *cl = open_cl(NULL);
        for (unsigned i = 0; i < hy_cl_device_count(cl); i++) {
            hy_cl_device_info in;
            hy_error err = {0};
            cr_assert_eq(hy_cl_describe(cl, i, &in, &err), 0);
            cr_assert(in.variant_forced, "device %u: HYBRIDD_CL_VARIANT=%s not reported", i,
                      values[v]);
            cr_assert_eq(in.gpu_variant, gpu, "device %u ignored HYBRIDD_CL_VARIANT=%s", i,
                         values[v]);
            const char *label = hy_cl_variant_label(&in);
            cr_assert(strncmp(label, gpu ? "GPU kernels" : "CPU kernels", 11) == 0 &&
                          strstr(label, "forced by HYBRIDD_CL_VARIANT"),
                      "label: %s", label);
            cr_assert(in.usable, "device %u, %s variant: %s", i, values[v], in.problem);
            hy_cl_pi_result pr;
            cr_assert_eq(hy_cl_pi(cl, &(hy_cl_opts){.device = i}, 0, 1000, &pr, &err), 0,
                         "device %u: %s", i, err.msg);
            cr_assert_eq(pr.hits, 783u, "device %u, %s variant: %" PRIu64 " hits", i,
                         values[v], pr.hits);
        }
        hy_cl_close(cl);
    }
}

/* A value that is neither gpu nor cpu is refused, naming the variable and the value: a typo
 * must not quietly test the other variant. Empty means unset. */
Test(cl_device, variant_bad_value)
{
    static const char *const bad[] = {"GPU", "fast", "gpu ", "1"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        set_variant(bad[k]);
        hy_cl *cl = (hy_cl *)1;
        hy_error err = {0};
        cr_assert_eq(hy_cl_open(NULL, &cl, &err), HY_EINVAL, "'%s' accepted", bad[k]);
        cr_assert_null(cl, "no state may come back from a refused open");
        cr_assert(strstr(err.msg, "HYBRIDD_CL_VARIANT=") && strstr(err.msg, bad[k]),
                  "message: %s", err.msg);
    }
    set_variant("");
    hy_cl *cl = open_cl(NULL);
    hy_cl_device_info in;
    hy_error err = {0};
    cr_assert_eq(hy_cl_describe(cl, 0, &in, &err), 0);
    cr_assert_not(in.variant_forced, "an empty HYBRIDD_CL_VARIANT forced a variant");
    hy_cl_close(cl);
}

/* The variant is part of the binary cache's key: a binary built for one variant never serves
 * the other, and each is reused for its own. */
Test(cl_device, variant_cache_entries)
{
    char dir[] = "/tmp/hybridd-clvariant-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char names[16][512];
    set_variant("cpu");
    cr_assert_not(from_cache(dir), "first open cannot come from an empty cache");
    unsigned n = cache_files(dir, names);
    set_variant("gpu");
    cr_assert_not(from_cache(dir), "the GPU variant came from the CPU variant's binaries");
    cr_assert_eq(cache_files(dir, names), 2 * n, "each variant keeps its own entries");
    cr_assert(from_cache(dir), "the GPU variant's entries were not reused");
    set_variant("cpu");
    cr_assert(from_cache(dir), "the CPU variant's entries were not reused");
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}
