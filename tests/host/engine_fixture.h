/* tests: the engine the host suites run on — 8 threads (more than this machine's cores, so
 * oversubscription is exercised too), created before and destroyed after every test. */
#ifndef HY_TESTS_ENGINE_FIXTURE_H
#define HY_TESTS_ENGINE_FIXTURE_H

#include <criterion/criterion.h>

#include "host.h"

#define ENGINE_THREADS 8u

static hy_host *eng;

static void engine_up(void)
{
    hy_error err = {0};
    int rc = hy_host_create(&(hy_host_config){.threads = ENGINE_THREADS}, &eng, &err);
    cr_assert_eq(rc, 0, "hy_host_create(threads = %u): %d %s", ENGINE_THREADS, rc, err.msg);
    cr_assert_eq(hy_host_threads(eng), ENGINE_THREADS, "engine threads");
}

static void engine_down(void)
{
    hy_host_destroy(eng);
    eng = NULL;
}

#endif
