/* daemon/auto: the performance history as the daemon's scheduling reads it — the history cell
 * a row of a job fills, the history's prediction for a row, and `--backend auto`: a single
 * job's backend, threads, transport and device chosen from those predictions before the job
 * is accepted (docs/scheduling.md, "Backend auto"). Nothing here runs a job. */
#ifndef HY_DAEMON_AUTO_H
#define HY_DAEMON_AUTO_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "history.h"
#include "spec.h"

/* The history cell (docs/scheduling.md) a row of the job fills, with the row's threads (as it
 * ran, or as planned for a prediction); false for rows the history does not keep: replicate
 * mode (T copies of the job), a locked row whose lock choice is not the job's default, and a
 * job across MPI ranks (its time is the span's, not this daemon's). */
bool hy_job_history_key(const hy_job_spec *sp, const hy_row_spec *p, unsigned threads,
                        hy_history_key *k);

/* The history's prediction of one timed run of row r of the job, in ns, when it is one to go
 * by (the cell of n's size trusted, or trusted cells on both sides of it); 0 when the history
 * does not know (h NULL, too few samples, outside the measured sizes, a row it does not keep). */
uint64_t hy_job_predict_row(hy_history *h, const hy_job_spec *s, const hy_row_spec *r);

/* Resolves a single job whose backend is HY_BACKEND_AUTO into the configuration this daemon
 * runs that env->e.history predicts fastest for (work, dtype, n) — or, while any of the
 * configurations it must know is not yet trusted at this size, into the first of those, to
 * learn it. Sets s->backend, threads, transport, device, backends, auto_flags (HY_ROW_AUTO,
 * with HY_ROW_EXPLORE for a configuration run to learn it) and auto_predicted_ns (0 when it
 * explores). 0, or HY_EBACKEND when this daemon can run the job on nothing. */
int hy_auto_choose(const hy_backend_env *env, hy_job_spec *s, hy_error *err);

/* hy_auto_choose for a job that runs as parts of share_n samples or keys, one per rank (a
 * span across MPI ranks, or a sort of .npy paths): only the backends in `allowed` (a bit per
 * backend id) are candidates, and the choice is the one for one daemon's job of share_n,
 * this rank's history standing for every rank's (the ranks of one MPI job are taken to be
 * alike, as a cluster's nodes usually are). Sets the fields hy_auto_choose sets, the
 * prediction being one rank's part's (the span adds its exchange); s->n stays. */
int hy_auto_choose_span(const hy_backend_env *env, hy_job_spec *s, uint64_t share_n,
                        unsigned allowed, hy_error *err);

#endif
