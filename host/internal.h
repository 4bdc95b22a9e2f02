/* host (private): what the engine's files share — option checks and the scratch memory that
 * sort jobs borrow. The key map that defines the sort order, which sort.c and merge.c both
 * order by, is common/sortkey.h's. Nothing here is visible outside host/. */
#ifndef HY_HOST_INTERNAL_H
#define HY_HOST_INTERNAL_H

#include "host.h"
#include "sortkey.h"

#include <stdint.h>

/* Checks backend, threads, mode and nogil against the engine; fills err on a bad value. */
int hy_host_check_opts(const hy_host *h, const hy_run_opts *o, hy_error *err);

/* Borrows at least `bytes` of scratch memory. The engine keeps the last block it handed out,
 * so repeated jobs of one size do not pay for fresh pages (page faults cost more than a
 * radix pass). Returns NULL when the allocation fails. */
void *hy_host_scratch_get(hy_host *h, size_t bytes);
/* Gives a block from hy_host_scratch_get back. */
void hy_host_scratch_put(hy_host *h, void *p, size_t bytes);

/* hy_host_run for a job whose threads past the first would find nothing to do (a sort the
 * engine finishes on one thread): thread 0's part alone, on the caller's thread, with no pool
 * thread woken. Waking them cost 20-36 us a job on this VM, 6-11x a 10^3-key sort. The
 * statistics still count o->threads threads, the others with no busy time. */
int hy_host_run_first(hy_host *h, const hy_run_opts *o, uint64_t total_work, hy_task_fn fn,
                      void *ctx, hy_run_stats *st, hy_error *err);

/* Whether the job's native sections release the runtime lock, for the task functions. */
bool hy_worker_nogil(const hy_worker *w);

/* For tests: the few-values sort's count (host/sort.c's few_count) of the n elements of
 * `size` (4 or 8) bytes at a, against nv (1 to 16) distinct elements `vals`, the hash
 * allowed or not. Fills counts[0, nv) and returns the way that counted: 0 generic vectors,
 * 1 compares under AVX-512 masks, 2 the perfect hash; -1 where an element is none of the
 * values (or the arguments are out of range). */
int hy_host_few_count(size_t size, const void *a, size_t n, const void *vals, unsigned nv,
                      bool hash, uint64_t *counts);

/* For tests: the grid that the sort of floats on a grid (host/sort.c's grid_set) would
 * count on, were the n (at most 4096) elements of dtype (f32 or f64) at vals its sample:
 * true with the scale 2^s, the least integer counted and the count of the grid's cells
 * (the quiet NaN's cell not among them); false where it would not count (a value off any
 * grid that spans few cells, -0.0, a NaN other than the quiet one, an infinity, a
 * denormal, or another dtype). */
bool hy_host_grid_plan(int dtype, const void *vals, size_t n, double *scale, int64_t *lo,
                       uint32_t *range);

#endif
