/* mpi/hy_mpi: hybridd's ranks under mpirun or srun. One thread per rank makes every MPI call
 * (MPI_THREAD_FUNNELED: it is the thread that initialises MPI); the daemon's event loop and
 * executors only queue work for it and read what it hands back, through a mutex-guarded queue
 * and an eventfd. Nothing here computes: a pi or sort part that arrives from a peer is handed
 * to the daemon, which runs it on its own engines like any job. docs/mpi.md. */
#ifndef HY_MPI_H
#define HY_MPI_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "sortkey.h"

typedef struct hy_mpi hy_mpi;

/* Starts the MPI thread, which initialises MPI (asking for MPI_THREAD_FUNNELED), and waits
 * until it knows this rank and the world's size. HY_ESYS when MPI cannot start or offers
 * less than FUNNELED (the sentence says which level it gave). */
int hy_mpi_start(hy_mpi **out, hy_error *err);
/* Stops the MPI thread: unless a peer already said the job is stopping, it tells every peer
 * (whose daemons then stop too: one rank stopping stops the MPI job), then MPI_Finalize, then
 * the join. Waiters in hy_mpi_gather are woken with an error. NULL is fine. */
void hy_mpi_stop(hy_mpi *m);

/* How long a span or a question waits on a rank that gives no sign of life (no answer, no
 * reply to the MPI thread's pings) before it fails naming that rank; 0: forever. The start
 * sets HY_MPI_PEER_TIMEOUT_MS. */
#define HY_MPI_PEER_TIMEOUT_MS 30000u
void hy_mpi_set_peer_timeout(hy_mpi *m, uint64_t ms);

int hy_mpi_rank(const hy_mpi *m);
int hy_mpi_size(const hy_mpi *m);
/* An eventfd, readable when parts from peers wait in hy_mpi_take_part. The loop polls it. */
int hy_mpi_event_fd(const hy_mpi *m);

/* What a part computes (mpi/ knows no ipc/, so its own values). */
enum { HY_MPI_PI = 1, HY_MPI_SORT = 2 };

/* A part of a span. pi (kind HY_MPI_PI): samples [first, first + count) of (seed)'s stream on
 * `backend` with `threads`. sort (HY_MPI_SORT): bucket `bucket` of the origin's array, `count`
 * elements of `dtype` at `data` (malloc'd, the part's own), to sort in place and send back. */
typedef struct hy_mpi_part {
    int kind;        /* HY_MPI_PI or HY_MPI_SORT */
    int origin;      /* the rank that wants the hits, or the sorted bucket */
    uint64_t token;  /* the origin's span, echoed in the answer */
    int backend;
    unsigned threads;
    int mode, nogil;
    uint64_t seed, first, count;
    int dtype;
    unsigned bucket;
    void *data;
    /* A bucket of a files span (hy_mpi_files_scatter): its sorted keys go to out_path at
     * byte out_offset, written by this rank's MPI thread, and only the answer's header goes
     * back. out_path lies in data's allocation, after the keys (freed with them); NULL: the
     * keys go back to the origin. */
    char *out_path;
    uint64_t out_offset;
    /* Set by whoever ran it, before hy_mpi_part_done: its engine's time on the part, which
     * the answer carries to the origin's per-rank figures. */
    uint64_t compute_ns;
} hy_mpi_part;

/* One rank's figures for its part of a span (the RESULT's rank records, docs/mpi.md):
 * share is its samples or keys; exchange_ns is the part's time in the span, from the scatter
 * until its answer came, less its compute and I/O (messages, queues, waits); bytes_sent
 * counts the keys and message headers it sent to other ranks. */
typedef struct hy_mpi_rank_stat {
    int rank;
    bool answered;
    uint64_t share, compute_ns, exchange_ns, io_ns, bytes_sent;
} hy_mpi_rank_stat;

/* Longest output path a sort part carries (the protocol's, ipc.h's HY_IPC_PATH_MAX). */
#define HY_MPI_PATH_MAX 4096u

/* The next part a peer sent this rank, or false when none waits (the eventfd is reset). */
bool hy_mpi_take_part(hy_mpi *m, hy_mpi_part *out);
/* This rank's answer to a part: rc 0 and its hits (pi) or its sorted keys (sort: p->data,
 * which this call takes and frees once sent, whatever rc is), or a hy_err and the sentence. */
void hy_mpi_part_done(hy_mpi *m, const hy_mpi_part *p, int rc, uint64_t hits, const char *msg);

/* The part k of `parts` that tile [0, n): contiguous, in order, sizes differing by at most 1
 * (the first n % parts get one more). Some are empty when n < parts. */
void hy_mpi_split(uint64_t n, unsigned parts, unsigned k, uint64_t *first, uint64_t *count);

/* Memory for a span's large buffers (buckets, bucket ids, parts), kept between spans so that
 * the next span does not fault it in again (mpi.c says why). hy_mpi_buf_alloc: at least
 * `bytes`, NULL when out of memory. hy_mpi_buf_free takes it back, and any other pointer from
 * malloc too (freed); the buffers a span hands this module are given back this way. */
void *hy_mpi_buf_alloc(size_t bytes);
void hy_mpi_buf_free(void *p);
/* The most bytes of given-back buffers kept at once (limits.span_keep_bytes; HY_KEEP_BYTES
 * until called; 0 keeps none). Kept buffers beyond a lowered budget are freed at once;
 * buffers handed out count only once given back. One budget for the process. */
void hy_mpi_buf_keep(size_t budget);

/* A span: part 0 stays with the caller, part k goes to rank (rank + k) % size. `proto` gives
 * everything but origin, token, first and count. Sends the parts (through the MPI thread) and
 * returns the span's token; the caller runs its own part, then gathers. */
int hy_mpi_pi_scatter(hy_mpi *m, const hy_mpi_part *proto, uint64_t n, unsigned ranks,
                      uint64_t *token, hy_error *err);
/* A sort span: bucket k (1 <= k < ranks) of `count[k]` elements at data[k] goes to rank
 * (rank + k) % size, and comes back sorted into dest + offset[k] elements (written by the MPI
 * thread while the span lives). data[1..ranks-1] are taken (freed once sent), even on error;
 * empty buckets are not sent. The caller sorts bucket 0 itself, then gathers. */
int hy_mpi_sort_scatter(hy_mpi *m, const hy_mpi_part *proto, unsigned ranks, void *const *data,
                        const uint64_t *count, const uint64_t *offset, void *dest,
                        uint64_t *token, hy_error *err);
/* A sort span of files (docs/mpi.md, "sort of .npy paths"): rank (rank + k) % size reads
 * slice k of the `n` elements of in_path that start at byte in_at (hy_mpi_split's tiling),
 * partitions it by the ranks - 1 splitters `sp` (key, global index), and sends bucket j to
 * rank (rank + j) % size, which sorts what every slice sent it (as a sort part its daemon
 * runs) and writes it to out_path at byte out_at + the elements of the buckets below j.
 * `proto` gives the backend, threads, mode, nogil and dtype of those sorts. All of it is the
 * MPI threads' and the parts' work: the caller only gathers (hy_mpi_gather) the ranks' answers,
 * one per bucket, running the parts held meanwhile (its own bucket's among them). */
int hy_mpi_files_scatter(hy_mpi *m, const hy_mpi_part *proto, unsigned ranks, uint64_t n,
                         uint64_t in_at, uint64_t out_at, const struct hy_skey *sp,
                         const char *in_path, const char *out_path, uint64_t *token,
                         hy_error *err);

/* Runs one part on the caller's thread: 0 and *hits, or a hy_err with the sentence. */
typedef int (*hy_mpi_run_part_fn)(void *ctx, const hy_mpi_part *p, uint64_t *hits,
                                  hy_error *err);
/* (A sort part is sorted in place at p->data.) */

/* Waits for every peer's part of span `token` (pi or sort) and adds their hits to *hits. Calls
 * cancelled(ctx) about every 50 ms; when it returns true the span is dropped (late answers are
 * ignored) and HY_ECANCELED returned. A peer's failure comes back as its code and sentence,
 * naming the rank; the MPI thread stopping is HY_EBUSY, and so is a rank silent for the peer
 * timeout (hy_mpi_set_peer_timeout: the span is dropped, the sentence names the rank).
 * st (NULL, or one entry per part of the span) gets each answered part's figures: st[k] for
 * the part on rank (rank + k) % size; st[0].bytes_sent gets what the scatter sent added.
 * From scatter until its gather ends, a span holds the parts peers send this rank
 * (hy_mpi_take_part gives none): the gather runs them itself through run_part(part_ctx, ...),
 * so two ranks spanning at once each count the other's part instead of waiting for it behind
 * their own job. Every scatter that succeeded needs its gather. */
int hy_mpi_gather(hy_mpi *m, uint64_t token, bool (*cancelled)(void *), void *ctx,
                  hy_mpi_run_part_fn run_part, void *part_ctx, uint64_t *hits,
                  hy_mpi_rank_stat *st, hy_error *err);

/* ---- files: MPI-IO for a sort whose input and output are .npy paths (docs/mpi.md) ----
 * Only the MPI thread calls MPI, so the caller (an executor) queues the operation and waits
 * for it. Each opens the file on MPI_COMM_SELF — a collective of this rank alone, so no other
 * rank has to enter it in the same order — does one thing and closes it. The MPI thread does
 * nothing else meanwhile (a large read holds the rank's messages until it ends). */
enum {
    HY_MPI_FILE_READ = 1,   /* read len bytes at offset into buf: all of them, or an error */
    HY_MPI_FILE_CREATE = 2, /* create (or open) for writing, and set its size to offset */
    HY_MPI_FILE_WRITE = 3,  /* write len bytes from buf at offset of a file that exists */
    HY_MPI_FILE_GATHER = 4, /* read the elements idx[i] (esize bytes each) after offset */
};
/* One of the above on `path`; *size (may be NULL) gets the file's size after it. HY_ESYS with a
 * sentence naming the path and MPI's own words when MPI-IO fails; HY_EBUSY when the MPI
 * thread is stopping. */
int hy_mpi_file(hy_mpi *m, int op, const char *path, uint64_t offset, void *buf, size_t len,
                uint64_t *size, hy_error *err);
/* The same, with GATHER's element indices (len / esize of them, increasing): one read. */
int hy_mpi_file_gather(hy_mpi *m, int op, const char *path, uint64_t offset, void *buf,
                       size_t len, const uint64_t *idx, size_t esize, uint64_t *size,
                       hy_error *err);

/* ---- questions: a rank asks every peer to describe itself (RANKS, docs/mpi.md) ----
 * The bytes of an answer are the daemon's own (mpi/ knows no ipc/): it sends what the asking
 * rank's daemon reads back, which is the same binary. The loop never waits for them: the
 * questions and the finished answers come through the same eventfd as parts. */

/* A peer's question, for this rank's loop to answer with hy_mpi_answer. */
typedef struct hy_mpi_question {
    int origin;
    uint64_t token;
} hy_mpi_question;

/* Every rank's answer to one question, once all came (or one failed: rc, err). blob[r] and
 * len[r] are rank r's bytes (NULL, 0 for the asking rank itself). */
typedef struct hy_mpi_answers {
    uint64_t token;
    int rc;
    hy_error err;
    unsigned size, expect, got;
    uint64_t asked_ns; /* when it was asked: the peer timeout counts from here */
    void **blob;
    size_t *len;
    struct hy_mpi_answers *next;
} hy_mpi_answers;

/* Largest answer a rank takes from a peer: more is refused as a broken answer. */
#define HY_MPI_ANSWER_MAX ((size_t)1 << 20)

/* Sends a question to every other rank; *token names it in hy_mpi_take_answers. HY_EBUSY
 * when the MPI thread is stopping, HY_ENOMEM. (One rank alone: answered at once, empty.)
 * A question some rank has not answered within the peer timeout is handed back failed
 * (HY_EBUSY, naming the ranks); their late answers are dropped. */
int hy_mpi_ask(hy_mpi *m, uint64_t *token, hy_error *err);
/* The next question a peer sent, or false. Never held by a waiting span. */
bool hy_mpi_take_question(hy_mpi *m, hy_mpi_question *q);
/* This rank's answer: `len` bytes at `blob` (copied), or rc (a hy_err) and a sentence. */
void hy_mpi_answer(hy_mpi *m, const hy_mpi_question *q, int rc, const void *blob, size_t len,
                   const char *msg);
/* A question all of whose answers came, or that failed; NULL when none. Free it with
 * hy_mpi_answers_free. */
hy_mpi_answers *hy_mpi_take_answers(hy_mpi *m);
void hy_mpi_answers_free(hy_mpi_answers *a);

#endif
