/* host (private): the Monte Carlo pi kernel — Philox4x32-10 and the exact integer inside
 * test, with a portable C path and AVX2/AVX-512 paths chosen once at run time.
 * docs/pi-mapping.md is the normative description of the sample stream. */
#ifndef HY_HOST_PI_KERNEL_H
#define HY_HOST_PI_KERNEL_H

#include <stdint.h>

/* One Philox4x32-10 block: ctr[4] and key[2] in, out[4] out (Random123's philox4x32). */
void hy_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* Hits among samples [first, first + count) for `seed`, on the fastest path this CPU has.
 * Any first/count (odd starts, tiny counts) as long as first + count <= 2^63. */
uint64_t hy_pi_kernel_hits(uint64_t seed, uint64_t first, uint64_t count);

/* The same on one named path, for tests and benchmarks. Every path returns the same count;
 * a path this CPU lacks (or an unknown number) runs the portable one instead of faulting. */
enum hy_pi_path { HY_PI_PATH_PORTABLE = 0, HY_PI_PATH_AVX2 = 1, HY_PI_PATH_AVX512 = 2 };
int hy_pi_kernel_path_available(int path);
uint64_t hy_pi_kernel_hits_path(int path, uint64_t seed, uint64_t first, uint64_t count);
/* "portable", "avx2" or "avx512": the path hy_pi_kernel_hits uses on this CPU. It is chosen
 * once per process, at the first call into this kernel's dispatching functions: the fastest
 * available path, unless the environment variable HYBRIDD_PI_PATH names another available
 * one (other values are ignored). */
const char *hy_pi_kernel_path_name(void);

#endif
