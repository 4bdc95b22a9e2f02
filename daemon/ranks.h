/* daemon/ranks: jobs across MPI ranks (hybridd --mpi, docs/mpi.md) — the checks a SUBMIT's
 * `ranks` gets, a pi or sort run that spans ranks, and a part a peer sent made into a job spec. The
 * MPI calls themselves are mpi/'s thread's; this file only queues and waits. */
#ifndef HY_DAEMON_RANKS_H
#define HY_DAEMON_RANKS_H

#include "backend.h"
#include "hy_mpi.h"
#include "spec.h"

/* Admission of s->ranks: 0/1 stays 1; a daemon not under MPI refuses more (HY_EINVAL); ALL
 * becomes the world's size and a count above it is HY_ELIMIT; only a single pi or sort job on
 * serial, native or locked spans ranks (HY_EINVAL / HY_EBACKEND otherwise). */
int hy_ranks_resolve(const hy_backend_env *env, hy_job_spec *s, hy_error *err);

/* One run of a pi row across s->ranks ranks: the other ranks' parts sent, this rank's part
 * 0 run through the row's backend, their hits gathered and added. o's wall time is the
 * whole span's; the estimate is made from the total. */
int hy_ranks_pi(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                const hy_run_io *io, hy_run_once *o, hy_error *err);

/* One run of a sort row across s->ranks ranks (daemon/ranks.c's opening comment): the array
 * at io->array partitioned into buckets by sampled splitters, bucket k sorted on rank
 * (rank + k) % size and written back at its offset, bucket 0 sorted here through the row's
 * backend. The bytes are one daemon's sort; o's wall time is the whole span's. */
int hy_ranks_sort(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                  const hy_run_io *io, hy_run_once *o, hy_error *err);

/* One run of a sort whose keys are in s->input and go to s->output (SUBMIT array FILES):
 * the input's .npy header checked against the job's dtype and n, the output created at its
 * final size and its header written, the keys read, sorted across s->ranks ranks (or by the
 * row's backend when 1), and written. Every file operation is MPI-IO through the MPI thread
 * (hy_mpi_file). o's wall time is the whole of it, reading and writing included. */
int hy_ranks_sort_files(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                        const hy_run_io *io, hy_run_once *o, hy_error *err);

/* One run of a sort of .npy paths across s->ranks ranks, each reading its own slice:
 * splitters from a regular sample of s->input (elements from byte in_at), then
 * hy_mpi_files_scatter — every rank reads, partitions and exchanges its slice, and writes its
 * sorted bucket into s->output (elements from byte out_at) — and the gather of their
 * answers, running this rank's own bucket's sort meanwhile. o's wall time is the span's. */
int hy_ranks_sort_slices(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                         const hy_run_io *io, uint64_t in_at, uint64_t out_at, hy_run_once *o,
                         hy_error *err);

/* The spec of a part a peer sent (one timed run, no warm-up; the locked runtime with this
 * daemon's switch interval, or the engine's default for 0), checked against this daemon's
 * backends (env NULL: only the part's own fields). Returns 0 or the code (and sentence) to
 * answer the peer with. */
int hy_ranks_part_spec(const hy_backend_env *env, const hy_mpi_part *p,
                       uint32_t switch_interval_us, hy_job_spec *s, hy_error *err);

#endif
