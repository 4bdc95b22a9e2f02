/* tests/cl: every usable device of an open hy_cl, so a suite runs each case on each device
 * (on a GPU machine the first device is whatever the drivers list first), and the check
 * that HYBRIDD_CL_VARIANT, which the *_gpu_variant registrations in tests/cl/CMakeLists.txt
 * set, really put every device on the variant it names. Include after criterion.h and cl.h. */
#ifndef HY_TESTS_CL_DEVICES_H
#define HY_TESTS_CL_DEVICES_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_DEVICES_MAX 64u

static unsigned dev;               /* the device the running case is on */
static hy_cl_device_info dev_info; /* what it reports */
static unsigned devs[TEST_DEVICES_MAX], ndevs;

/* Says whether a usable device takes part (NULL: all do); a suite may refuse one, e.g. a
 * device that refuses the job itself, after checking that refusal. */
typedef bool (*device_filter)(unsigned index, const hy_cl_device_info *in);

/* Fills devs with the usable devices `take` accepts; fails the test if a device's variant is
 * not the one HYBRIDD_CL_VARIANT forces. */
static void find_devices(hy_cl *cl, device_filter take)
{
    const char *want = getenv("HYBRIDD_CL_VARIANT");
    bool forced = want && want[0];
    ndevs = 0;
    for (unsigned i = 0; i < hy_cl_device_count(cl) && ndevs < TEST_DEVICES_MAX; i++) {
        hy_cl_device_info in;
        hy_error err = {0};
        cr_assert_eq(hy_cl_describe(cl, i, &in, &err), 0, "describe %u: %s", i, err.msg);
        cr_assert_eq(in.variant_forced, forced, "device %u: variant forced %d, expected %d", i,
                     in.variant_forced, forced);
        if (forced)
            cr_assert_eq(in.gpu_variant, strcmp(want, "gpu") == 0,
                         "device %u runs the %s variant under HYBRIDD_CL_VARIANT=%s", i,
                         in.gpu_variant ? "GPU" : "CPU", want);
        if (in.usable && (!take || take(i, &in)))
            devs[ndevs++] = i;
    }
}

/* Runs body once per device in devs, with dev and dev_info set; skips the test when there
 * is none (no OpenCL device at all is a normal state for hybridd; CI has PoCL). */
static void on_every_device(hy_cl *cl, void (*body)(void))
{
    if (ndevs == 0)
        cr_skip_test("no usable OpenCL device on this machine takes this test");
    for (unsigned k = 0; k < ndevs; k++) {
        hy_error err = {0};
        dev = devs[k];
        cr_assert_eq(hy_cl_describe(cl, dev, &dev_info, &err), 0, "%s", err.msg);
        /* Criterion's message names the assertion, not the device: say which one runs. */
        if (ndevs > 1)
            fprintf(stderr, "  on device %u: %s (%s)\n", dev, dev_info.name,
                    hy_cl_variant_label(&dev_info));
        body();
    }
}

/* A Criterion test of `suite` whose body runs once per usable device; the suite's hy_cl is
 * the static `cl`. */
#define DEVICE_TEST(suite, name)                                                            \
    static void name##_on_device(void);                                                     \
    Test(suite, name) { on_every_device(cl, name##_on_device); }                            \
    static void name##_on_device(void)

#endif
