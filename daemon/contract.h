/* daemon/contract: HY_ASSERT, for states the daemon's own code rules out. It stays in release
 * builds (the build defines NDEBUG, which would silence <assert.h>): a broken invariant in a
 * long-lived service that owns other people's jobs is better stopped with a line saying where
 * than left to corrupt answers. Keep the conditions cheap. */
#ifndef HY_DAEMON_CONTRACT_H
#define HY_DAEMON_CONTRACT_H

_Noreturn void hy_contract_fail(const char *cond, const char *file, int line, const char *func);

#define HY_ASSERT(cond) \
    ((cond) ? (void)0 : hy_contract_fail(#cond, __FILE__, __LINE__, __func__))

#endif
