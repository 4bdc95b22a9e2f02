/* daemon/ranks_npy: the .npy header parser of hybridd's sort of .npy paths (ranks_files.c), in
 * a file of its own so that tests/fuzz/fuzz_ranks_npy.c can build it without MPI. Private to
 * daemon/; no I/O: the caller reads the bytes. */
#ifndef HY_DAEMON_RANKS_NPY_H
#define HY_DAEMON_RANKS_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

#define HY_RANKS_NPY_PREFIX 12         /* magic, version, and the longest length field */
#define HY_RANKS_NPY_HEADER_MAX 65536u /* the longest header dict taken */

/* A .npy file's prefix: `have` (10 or 12) of its first bytes at pre. Magic and version 1 to 3
 * checked, *at set to where the header dict starts (10, or 12 for versions 2 and 3). When
 * have < *at, *hlen is 0: read the first *at bytes and call again. Otherwise *hlen is the
 * dict's length, 1..HY_RANKS_NPY_HEADER_MAX, and the elements start at *at + *hlen. 0, or
 * HY_EINVAL with a sentence naming path. */
int hy_ranks_npy_prefix(const char *path, const unsigned char *pre, size_t have, uint64_t *at,
                        uint64_t *hlen, hy_error *err);

/* A header dict (NUL-terminated text): what numpy writes for a 1-D C-order little-endian array
 * of the six dtypes. Sets *dtype (HY_DT_I32..HY_DT_F64) and *n, the one dimension, whose bytes
 * (n times the dtype's size) fit a size_t: a larger count is refused, never wrapped or clamped.
 * 0, or a one-line sentence naming path (the header's own bytes in it escaped): HY_EDTYPE for
 * a dtype that is not one of the six, HY_EINVAL for the rest. */
int hy_ranks_npy_dict(const char *path, const char *h, int *dtype, uint64_t *n, hy_error *err);

#endif
