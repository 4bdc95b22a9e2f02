/* daemon/contract: what HY_ASSERT does when a condition fails. */
#include "contract.h"

#include <stdio.h>
#include <stdlib.h>

/* stderr is the journal under systemd: the line says where, then abort() leaves a core. */
_Noreturn void hy_contract_fail(const char *cond, const char *file, int line, const char *func)
{
    fprintf(stderr, "hybridd: internal error: %s:%d: %s: `%s` does not hold; stopping\n", file,
            line, func, cond);
    fflush(stderr);
    abort();
}
