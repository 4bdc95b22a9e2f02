/* daemon/runner: runs one row of a job (its spec plus the row's backend, threads and
 * transport) a number of times and turns the runs into one result row: median/min/max, the
 * pi figures, the lock statistics and the OpenCL breakdown of the median run. Single jobs and
 * every row of a comparison go through here, so both measure the same way. */
#ifndef HY_DAEMON_RUNNER_H
#define HY_DAEMON_RUNNER_H

#include <stdint.h>

#include "backend.h"
#include "common.h"
#include "ipc.h"
#include "spec.h"

/* Runs s->warmup untimed and s->repeat timed runs of row r through its backend and fills
 * *row. A sort with more than one run starts each from io->pristine (required then). *busy_ns
 * gets the wall time of every run, warm-up included (what the backend was busy with).
 * Returns 0 or the failing run's hy_err. */
int hy_runner_run(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                  const hy_run_io *io, hy_result_row *row, uint64_t *busy_ns, hy_error *err);
/* The same, and times[0 .. s->repeat) gets each timed run's wall time in the order they ran
 * (for the performance history; only meaningful when it returns 0); span (may be NULL) gets
 * the per-rank records of the run the row's breakdown comes from, when it spanned ranks
 * (span->n 0 otherwise). */
int hy_runner_run_times(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                        const hy_run_io *io, hy_result_row *row, uint64_t *busy_ns,
                        uint64_t *times, hy_span_ranks *span, hy_error *err);

#endif
