/* tests: PoCL compiles kernels slowly the first time and caches them in POCL_CACHE_DIR.
 * `make test` gives each run its own, shared by every suite of the run; a suite started by
 * hand uses one kept in the build directory (HY_TEST_POCL_CACHE, set by tests/CMakeLists),
 * so its tests, each in its own process, still share compiled kernels. Call before the
 * first OpenCL call. */
#ifndef HY_TESTS_POCL_ENV_H
#define HY_TESTS_POCL_ENV_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static void pocl_cache_for_run(void)
{
    const char *have = getenv("POCL_CACHE_DIR");
    if (have && have[0])
        return;
    mkdir(HY_TEST_POCL_CACHE, 0755); /* it may exist; PoCL reports a real problem itself */
    if (setenv("POCL_CACHE_DIR", HY_TEST_POCL_CACHE, 1) != 0)
        fprintf(stderr, "warning: could not set POCL_CACHE_DIR; PoCL uses its default\n");
}

#endif
