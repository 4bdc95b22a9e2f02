/* tests/host: the engine's threads pinned to CPUs (hy_host_config.cpus, the daemon's
 * cpu.cpus): every thread of a job runs on the CPU it was given, and a CPU that is not there
 * stops hy_host_create with a sentence naming it. */
#include <criterion/criterion.h>

#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "host.h"

static atomic_int seen[2];

static int where(hy_worker *w, void *ctx)
{
    (void)ctx;
    atomic_store(&seen[hy_worker_id(w)], sched_getcpu());
    return 0;
}

Test(pin, threads_run_on_the_cpus_given)
{
    cpu_set_t allowed;
    cr_assert_eq(sched_getaffinity(0, sizeof allowed, &allowed), 0);
    uint32_t cpu = 0;
    while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &allowed))
        cpu++;
    cr_assert_lt(cpu, CPU_SETSIZE, "no CPU this process may run on");
    uint32_t cpus[1] = {cpu};
    hy_host *h;
    hy_error err = {0};
    cr_assert_eq(hy_host_create(&(hy_host_config){.threads = 2, .cpus = cpus, .ncpus = 1}, &h,
                                &err), 0, "%s", err.msg);
    hy_run_opts o = {.backend = HY_BACKEND_NATIVE, .threads = 2};
    hy_run_stats st;
    for (int k = 0; k < 3; k++) {
        atomic_store(&seen[0], -1);
        atomic_store(&seen[1], -1);
        cr_assert_eq(hy_host_run(h, &o, 1, where, NULL, &st, &err), 0, "%s", err.msg);
        cr_expect_eq(atomic_load(&seen[0]), (int)cpu, "thread 0 ran on CPU %d, not %u",
                     atomic_load(&seen[0]), cpu);
        cr_expect_eq(atomic_load(&seen[1]), (int)cpu, "thread 1 ran on CPU %d, not %u",
                     atomic_load(&seen[1]), cpu);
    }
    hy_host_destroy(h);
}

Test(pin, a_cpu_that_is_not_there_is_refused)
{
    uint32_t cpus[1] = {CPU_SETSIZE - 1}; /* no machine this runs on has 1024 CPUs online */
    cpu_set_t allowed;
    cr_assert_eq(sched_getaffinity(0, sizeof allowed, &allowed), 0);
    if (CPU_ISSET(CPU_SETSIZE - 1, &allowed))
        cr_skip_test("CPU %d is there", CPU_SETSIZE - 1);
    hy_host *h = NULL;
    hy_error err = {0};
    cr_expect_eq(hy_host_create(&(hy_host_config){.threads = 2, .cpus = cpus, .ncpus = 1}, &h,
                                &err), HY_ESYS);
    cr_expect(strstr(err.msg, "CPU 1023"), "the sentence does not name the CPU: %s", err.msg);
}
