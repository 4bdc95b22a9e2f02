/* mpi/mpi: the MPI thread of one rank — every MPI call of hybridd is made here — and the
 * queues between it and the daemon: parts from peers in (eventfd), answers and parts out,
 * the spans this rank waits on.
 *
 * Why point-to-point and not MPI_Reduce: a span starts on whichever rank a client chose, at any
 * time, and several may run at once; a collective needs every rank to enter it in the same
 * order, which independent clients cannot promise. A part and its answer are a few hundred
 * bytes, sent eagerly.
 *
 * A sort part carries its keys: a header on MPI_COMM_WORLD like any message, then the bytes on
 * a duplicate communicator (`data`) in chunks of at most CHUNK, which the receiving MPI thread
 * takes at once from the same source. Every send is an MPI_Isend completed by the loop, so two
 * ranks sending each other large buckets never both block in a send (rendezvous) waiting for
 * the other to receive; a receive only starts for a message already probed, whose sender is
 * in its own loop or receive, both of which progress its sends.
 *
 * Why a 1 ms poll: the thread waits for two things at once, a peer's message (MPI_Iprobe) and
 * the daemon's queue (a condition variable); MPI offers no fd to put in one poll. An idle rank
 * costs a probe per millisecond. */
#include "hy_mpi.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <mpi.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

enum { TAG_PART = 1, TAG_DONE = 2, TAG_STOP = 3, TAG_SPART = 4, TAG_SDONE = 5, TAG_DATA = 6,
       TAG_ASK = 7, TAG_ANSWER = 8, TAG_SLICE = 9, TAG_XBUCKET = 10, TAG_PING = 11,
       TAG_PONG = 12 };

/* The words of a part's answer (TAG_DONE, TAG_SDONE) after its own that carry the rank's
 * figures for the RESULT's rank records: compute, I/O, bytes sent, share. */
enum { W_COMPUTE = 4, W_IO = 5, W_SENT = 6, W_SHARE = 7 };

/* Most bytes one data message carries (MPI counts are ints). */
#define CHUNK ((size_t)1 << 24)

/* What travels between ranks: the same binary on every rank, so a plain struct as MPI_BYTE. */
struct wire {
    uint64_t w[10];
    char text[HY_ERROR_MSG_MAX];
};

struct out {
    int dest, tag;
    struct wire msg;
    /* TAG_DATA: len bytes at buf, sent on the data communicator; `owned` is freed once this
     * chunk is sent (the last chunk of a buffer owns it). */
    const char *buf;
    size_t len;
    void *owned;
    /* A sort answer whose keys go to a file: the MPI thread writes wlen bytes of `owned` at
     * woff of wpath (the part's, freed with owned) before it sends the header, and sends the
     * write's failure in its place. */
    const char *wpath;
    uint64_t woff;
    size_t wlen;
    MPI_Request req;
    struct out *next;
};

struct in {
    hy_mpi_part part;
    struct in *next;
};

struct question {
    hy_mpi_question q;
    struct question *next;
};

/* A file operation an executor waits on (hy_mpi_file). */
struct fileop {
    int op;
    const char *path;
    uint64_t offset;
    char *buf;
    size_t len;
    const uint64_t *idx; /* HY_MPI_FILE_GATHER: element indices, increasing; len / esize */
    size_t esize;
    uint64_t size;
    int rc;
    hy_error err;
    bool done;
    int rank; /* names it in the sentences: the client may be several ranks away */
    hy_mpi *m; /* answers pings between its chunks (keep_alive) */
    struct fileop *next;
};

/* A files span's slice, on the rank that reads it (the end of this file). */
struct slice {
    int origin;
    uint64_t token;
    unsigned k, ranks, threads;
    int backend, mode, nogil, dtype;
    uint64_t n, in_at, out_at;
    struct hy_skey *sp; /* ranks - 1 splitters */
    char *in_path, *out_path;
};

/* Bucket j of a files span, on its rank, until every slice's part came. */
struct collect {
    int origin;
    uint64_t token;
    unsigned j, ranks, got, threads;
    int backend, mode, nogil, dtype, rc;
    uint64_t out_at, before; /* elements of buckets below j, in the slices so far */
    char why[HY_ERROR_MSG_MAX];
    char *path;
    /* The bucket's keys land here as each slice's part comes (any order: the bucket is
     * sorted next), so that finish_collect hands it on with no copy; a part that does not
     * fit (a bucket past its room) waits in keys[k] and is copied in at the end. */
    char *buf;
    size_t cap, at;     /* buf's room for keys and what is used, in bytes */
    void **keys;        /* per slice: a part kept aside, or NULL (in buf, or empty) */
    uint64_t *count;    /* per slice */
    bool *seen;         /* per slice */
    struct collect *next;
};

struct span {
    uint64_t token;
    unsigned expect, got;
    uint64_t t0;        /* the scatter: each part's exchange time counts from here */
    uint64_t bytes_out; /* what the scatter sent other ranks */
    hy_mpi_rank_stat *st; /* per part (nb of them): its figures, and whether it answered */
    uint64_t hits;
    int rc;
    hy_error err;
    bool to_file; /* a sort span whose buckets each rank writes to a file: no keys come back */
    /* A sort span: bucket k comes back into dest + off[k] * esize, cnt[k] elements. */
    char *dest;
    size_t esize;
    unsigned nb;
    uint64_t *cnt, *off;
    struct span *next;
};

/* What this rank's slice of a files span cost (its read, the buckets it sent), kept until
 * its bucket's answer carries it to the asking rank. */
struct slicestat {
    int origin;
    uint64_t token, io_ns, bytes;
    struct slicestat *next;
};

struct hy_mpi {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;  /* the MPI thread: something to send, or stop */
    pthread_cond_t spans; /* gatherers: an answer came, or the thread ended */
    pthread_cond_t ready; /* hy_mpi_start: MPI is up (or failed) */
    int rank, size, evfd;
    MPI_Comm data;        /* the keys of sort parts and their answers (the MPI thread's) */
    struct out *inflight; /* sends under way (the MPI thread's own list, no lock) */
    bool started, stop, peer_stop, ended;
    int init_rc;
    hy_error init_err;
    struct out *out_head, *out_tail;
    struct in *in_head, *in_tail;
    struct span *span_list;
    uint64_t next_token;
    /* Spans of this rank between scatter and the end of their gather. While there is one,
     * parts from peers wait here for the gatherer to run them, not in the scheduler's queue
     * behind the very job that waits: two ranks spanning at once would wait on each other. */
    unsigned holding;
    /* Questions (RANKS): peers' for the loop to answer, never held by a span; this rank's
     * waiting for answers; and those answered, for the loop to take. */
    struct question *q_head, *q_tail;
    hy_mpi_answers *asks, *answered;
    struct fileop *files; /* file operations waiting for the MPI thread */
    struct collect *collects; /* buckets of files spans being gathered (the MPI thread's) */
    struct slicestat *slicestats; /* the MPI thread's */
    /* Liveness: when each rank was last heard from (the MPI thread writes, atomically), and
     * how long a span or question waits on a silent one (0: forever). */
    uint64_t *heard;
    uint64_t timeout_ns, last_ping;
    uint64_t test_slice_pause_ns; /* HYBRIDD_TEST_SLICE_PAUSE_MS (run_slice) */
    uint64_t test_collect_room;   /* HYBRIDD_TEST_COLLECT_ROOM: keys (collect_room); 0 unset */
};

/* ---- span memory kept between spans ----
 * A sort span's buckets, each key's bucket id and the parts peers send are tens of MB that
 * live for one span. Fresh from malloc, each 4 KiB of them faults on its first write: 3-4 ns
 * a key of the partition's 6-7 (bench/partition-bench, span/fresh against span). So blocks
 * of KEEP_MIN and up are kept when given back, up to the budget (limits.span_keep_bytes,
 * hy_mpi_buf_keep; HY_KEEP_BYTES until set), and handed to the next span. A kept block is
 * known by its address, so hy_mpi_buf_free takes any pointer from malloc too (it frees what
 * it did not hand out): the MPI thread frees every buffer it was given to send through it,
 * whoever allocated it. (Huge pages instead were tried: the
 * kernel's compaction stalled the spans, docs/scale-out.md.) */
#define KEEP_MIN ((size_t)1 << 20)
/* A span has a buffer per rank (the buckets of a slice, the parts received) and a few more,
 * all of which a span across hundreds of ranks should find kept: the table's linear scans
 * cost next to nothing beside the megabytes each slot stands for. */
#define KEEP_SLOTS 1024
static struct {
    pthread_mutex_t mu;
    size_t idle;   /* bytes kept and not handed out */
    size_t budget; /* the most idle may reach */
    struct {
        void *p; /* NULL: a free slot */
        size_t cap;
        bool out; /* handed out */
    } slot[KEEP_SLOTS];
} keep = {.mu = PTHREAD_MUTEX_INITIALIZER, .budget = HY_KEEP_BYTES};

/* Frees idle blocks until at most `limit` bytes stay kept. Caller holds keep.mu. */
static void keep_trim(size_t limit)
{
    for (int i = 0; i < KEEP_SLOTS && keep.idle > limit; i++)
        if (keep.slot[i].p && !keep.slot[i].out) {
            free(keep.slot[i].p);
            keep.idle -= keep.slot[i].cap;
            keep.slot[i].p = NULL;
        }
}

void hy_mpi_buf_keep(size_t budget)
{
    pthread_mutex_lock(&keep.mu);
    keep.budget = budget;
    keep_trim(budget);
    pthread_mutex_unlock(&keep.mu);
}

void *hy_mpi_buf_alloc(size_t bytes)
{
    if (bytes < KEEP_MIN)
        return malloc(bytes ? bytes : 1);
    pthread_mutex_lock(&keep.mu);
    int best = -1, empty = -1;
    for (int i = 0; i < KEEP_SLOTS; i++) {
        size_t cap = keep.slot[i].cap;
        if (!keep.slot[i].p)
            empty = empty < 0 ? i : empty;
        else if (!keep.slot[i].out && cap >= bytes && cap / 2 <= bytes &&
                 (best < 0 || cap < keep.slot[best].cap))
            best = i; /* the smallest kept block that fits and is not twice the need */
    }
    void *p = NULL;
    if (best >= 0) {
        keep.slot[best].out = true;
        keep.idle -= keep.slot[best].cap;
        p = keep.slot[best].p;
    } else if ((p = malloc(bytes)) != NULL && empty >= 0) {
        keep.slot[empty].p = p;
        keep.slot[empty].cap = bytes;
        keep.slot[empty].out = true;
    }
    pthread_mutex_unlock(&keep.mu);
    return p;
}

void hy_mpi_buf_free(void *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&keep.mu);
    for (int i = 0; i < KEEP_SLOTS; i++) {
        if (keep.slot[i].p != p || !keep.slot[i].out)
            continue;
        /* The usable size guards against a block freed behind this table's back whose
         * address malloc then gave to a smaller buffer: that one is freed, never kept. */
        if (keep.idle + keep.slot[i].cap <= keep.budget &&
            malloc_usable_size(p) >= keep.slot[i].cap) {
            keep.slot[i].out = false;
            keep.idle += keep.slot[i].cap;
            p = NULL;
        } else {
            keep.slot[i].p = NULL;
            keep.slot[i].out = false;
        }
        break;
    }
    pthread_mutex_unlock(&keep.mu);
    free(p);
}

/* Gives the kept blocks not handed out back to the system (hy_mpi_stop). */
static void keep_drop(void)
{
    pthread_mutex_lock(&keep.mu);
    keep_trim(0);
    pthread_mutex_unlock(&keep.mu);
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* Part k of span s answered with the figures in w (under the lock). */
static void note_answer(struct span *s, unsigned k, int from, const struct wire *w)
{
    if (!s->st || k >= s->nb)
        return;
    hy_mpi_rank_stat *r = &s->st[k];
    uint64_t took = now_ns() - s->t0, busy = w->w[W_COMPUTE] + w->w[W_IO];
    *r = (hy_mpi_rank_stat){.rank = from, .answered = true, .share = w->w[W_SHARE],
                            .compute_ns = w->w[W_COMPUTE], .io_ns = w->w[W_IO],
                            .bytes_sent = w->w[W_SENT],
                            .exchange_ns = took > busy ? took - busy : 0};
}

static void push_out(hy_mpi *m, struct out *o)
{
    o->next = NULL;
    if (m->out_tail)
        m->out_tail->next = o;
    else
        m->out_head = o;
    m->out_tail = o;
    pthread_cond_signal(&m->wake);
}

static void free_span(struct span *s)
{
    free(s->st);
    free(s->cnt);
    free(s);
}

static struct span *find_span(hy_mpi *m, uint64_t token, struct span ***link)
{
    for (struct span **l = &m->span_list; *l; l = &(*l)->next)
        if ((*l)->token == token) {
            if (link)
                *link = l;
            return *l;
        }
    return NULL;
}

/* An answer to one of our spans (under the lock); a dropped span's late answer is ignored. */
static void on_done(hy_mpi *m, int from, const struct wire *w)
{
    struct span *s = find_span(m, w->w[0], NULL);
    if (!s)
        return;
    s->got++;
    s->hits += w->w[2];
    int rc = (int)(int64_t)w->w[1];
    if (!rc && from >= 0 && from < m->size) /* part k is on rank (rank + k) % size */
        note_answer(s, (unsigned)((from - m->rank + m->size) % m->size), from, w);
    if (rc && !s->rc) {
        s->rc = rc;
        hy_error_set(&s->err, rc, "rank %d: %.*s", from, (int)sizeof w->text - 1, w->text);
    }
    pthread_cond_broadcast(&m->spans);
}

/* A part for the daemon (or a waiting gatherer), under the lock. */
static void enqueue_in(hy_mpi *m, struct in *p)
{
    p->next = NULL;
    if (m->in_tail)
        m->in_tail->next = p;
    else
        m->in_head = p;
    m->in_tail = p;
    pthread_cond_broadcast(&m->spans); /* a gatherer runs it */
    uint64_t one = 1;
    if (write(m->evfd, &one, sizeof one) != sizeof one) {
        /* Only an overflowing counter fails, and then it is readable anyway. */
    }
}

static void on_part(hy_mpi *m, int from, const struct wire *w)
{
    struct in *p = malloc(sizeof *p);
    if (!p) {
        /* No room to hold it: answer at once so the origin does not wait for nothing. */
        struct out *o = calloc(1, sizeof *o);
        if (!o)
            return; /* the origin's job timeout or cancel ends its wait */
        *o = (struct out){.dest = from, .tag = TAG_DONE};
        o->msg.w[0] = w->w[0];
        o->msg.w[1] = (uint64_t)(int64_t)HY_ENOMEM;
        snprintf(o->msg.text, sizeof o->msg.text, "no memory to queue a pi part");
        push_out(m, o);
        return;
    }
    p->part = (hy_mpi_part){.kind = HY_MPI_PI, .origin = from, .token = w->w[0],
                            .backend = (int)w->w[1],
                            .threads = (unsigned)w->w[2], .mode = (int)w->w[3],
                            .nogil = (int)w->w[4], .seed = w->w[5], .first = w->w[6],
                            .count = w->w[7]};
    enqueue_in(m, p);
}

/* The `bytes` of a data message stream from `from` into buf, chunk by chunk. */
static int recv_data(hy_mpi *m, int from, char *buf, size_t bytes)
{
    for (size_t at = 0; at < bytes; at += CHUNK) {
        size_t len = bytes - at < CHUNK ? bytes - at : CHUNK;
        int rc = MPI_Recv(buf + at, (int)len, MPI_BYTE, from, TAG_DATA, m->data, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS)
            return rc;
    }
    return MPI_SUCCESS;
}

/* Takes and drops a data stream nobody wants (a dropped span's answer, a refused part), so
 * that the next header from `from` pairs with its own bytes. */
static void drain_data(hy_mpi *m, int from, size_t bytes)
{
    if (bytes == 0)
        return;
    char one;
    char *scratch = malloc(bytes < CHUNK ? bytes : CHUNK);
    for (size_t at = 0; at < bytes; at += CHUNK) {
        size_t len = bytes - at < CHUNK ? bytes - at : CHUNK;
        /* With no scratch, a 1-byte receive still consumes the message (truncated). */
        MPI_Recv(scratch ? scratch : &one, scratch ? (int)len : 1, MPI_BYTE, from, TAG_DATA,
                 m->data, MPI_STATUS_IGNORE);
    }
    free(scratch);
}

/* A sort answer's header, no keys: a refusal or failure (under the lock). */
static void answer_sort_error(hy_mpi *m, int dest, uint64_t token, unsigned bucket, int rc,
                              const char *why, uint64_t io_ns, uint64_t sent)
{
    struct out *o = calloc(1, sizeof *o);
    if (!o)
        return; /* the origin's cancel or job timeout ends its wait */
    *o = (struct out){.dest = dest, .tag = TAG_SDONE};
    uint64_t w[8] = {token, (uint64_t)(int64_t)rc, bucket, 0, 0, io_ns, sent, 0};
    memcpy(o->msg.w, w, sizeof w);
    snprintf(o->msg.text, sizeof o->msg.text, "%s", why);
    push_out(m, o);
}

/* A sort part's header; its keys follow on the data communicator. */
static void on_sort_part(hy_mpi *m, int from, const struct wire *w)
{
    hy_mpi_part part = {.kind = HY_MPI_SORT, .origin = from, .token = w->w[0],
                        .backend = (int)w->w[1], .threads = (unsigned)w->w[2],
                        .mode = (int)w->w[3], .nogil = (int)w->w[4],
                        .dtype = (int)(uint32_t)w->w[5], .bucket = (unsigned)(w->w[5] >> 32),
                        .count = w->w[6]};
    size_t bytes = (size_t)w->w[7], size = hy_dtype_size(part.dtype);
    const char *why = NULL;
    int rc = HY_EINVAL;
    struct in *p = NULL;
    if (size == 0 || part.count == 0 || part.count > SIZE_MAX / size || part.count * size != bytes)
        why = "a sort part whose size does not match its dtype and count";
    else if (!(p = malloc(sizeof *p)) || !(part.data = hy_mpi_buf_alloc(bytes))) {
        rc = HY_ENOMEM;
        why = "no memory for a sort part's keys";
    } else if (recv_data(m, from, part.data, bytes) != MPI_SUCCESS) {
        rc = HY_ESYS;
        why = "receiving a sort part's keys failed";
        bytes = 0; /* the stream was taken, even if broken */
    } else
        bytes = 0;
    if (why) {
        drain_data(m, from, bytes);
        hy_mpi_buf_free(part.data);
        free(p);
        pthread_mutex_lock(&m->mu);
        answer_sort_error(m, from, part.token, part.bucket, rc, why, 0, 0);
        pthread_mutex_unlock(&m->mu);
        return;
    }
    p->part = part;
    pthread_mutex_lock(&m->mu);
    enqueue_in(m, p);
    pthread_mutex_unlock(&m->mu);
}

/* A sorted bucket (or a refusal) for one of our sort spans: the keys land straight in the
 * span's array, under the lock so that the gatherer cannot drop the span meanwhile. */
static void on_sort_done(hy_mpi *m, int from, const struct wire *w)
{
    int rc = (int)(int64_t)w->w[1];
    unsigned k = (unsigned)w->w[2];
    size_t bytes = (size_t)w->w[3];
    pthread_mutex_lock(&m->mu);
    struct span *s = find_span(m, w->w[0], NULL);
    bool fits = s && s->dest && !rc && k < s->nb && bytes == s->cnt[k] * s->esize;
    bool written = s && s->to_file && !rc && k < s->nb && bytes == 0; /* in the file */
    if (fits || written) {
        int mrc = written ? MPI_SUCCESS
                          : recv_data(m, from, s->dest + s->off[k] * s->esize, bytes);
        if (mrc != MPI_SUCCESS && !s->rc)
            s->rc = hy_error_set(&s->err, HY_ESYS, "rank %d: receiving its sorted keys failed "
                                 "(MPI error %d)", from, mrc);
        else if (mrc == MPI_SUCCESS)
            note_answer(s, k, from, w);
    } else {
        pthread_mutex_unlock(&m->mu);
        drain_data(m, from, bytes);
        pthread_mutex_lock(&m->mu);
        s = find_span(m, w->w[0], NULL); /* it may have gone while we drained */
    }
    if (s) {
        s->got++;
        if (!fits && !written && !s->rc) {
            if (rc && !strncmp(w->text, "rank ", 5)) /* it names the rank that failed */
                s->rc = hy_error_set(&s->err, rc, "%.*s", (int)sizeof w->text - 1, w->text);
            else if (rc)
                s->rc = hy_error_set(&s->err, rc, "rank %d: %.*s", from,
                                     (int)sizeof w->text - 1, w->text);
            else
                s->rc = hy_error_set(&s->err, HY_EINTERNAL, "rank %d sent %zu bytes for "
                                     "bucket %u, which is not what it was sent", from, bytes, k);
        }
        pthread_cond_broadcast(&m->spans);
    }
    pthread_mutex_unlock(&m->mu);
}

/* ---- questions ---- */

static void wake_loop(hy_mpi *m)
{
    uint64_t one = 1;
    if (write(m->evfd, &one, sizeof one) != sizeof one) {
        /* Only an overflowing counter fails, and then it is readable anyway. */
    }
}

static hy_mpi_answers *find_ask(hy_mpi *m, uint64_t token, hy_mpi_answers ***link)
{
    for (hy_mpi_answers **l = &m->asks; *l; l = &(*l)->next)
        if ((*l)->token == token) {
            *link = l;
            return *l;
        }
    return NULL;
}

/* One more rank of question a answered (or failed); the last hands it to the loop (under the
 * lock). */
static void ask_counted(hy_mpi *m, hy_mpi_answers *a, hy_mpi_answers **link)
{
    if (++a->got < a->expect)
        return;
    *link = a->next;
    a->next = m->answered;
    m->answered = a;
    wake_loop(m);
}

/* A peer asks this rank to describe itself: for the loop (under the lock). */
static void on_ask(hy_mpi *m, int from, const struct wire *w)
{
    struct question *q = malloc(sizeof *q);
    if (!q)
        return; /* the asking rank's client gives up waiting */
    *q = (struct question){.q = {.origin = from, .token = w->w[0]}};
    if (m->q_tail)
        m->q_tail->next = q;
    else
        m->q_head = q;
    m->q_tail = q;
    wake_loop(m);
}

/* A peer's answer to one of our questions: its bytes follow on the data communicator, and
 * are taken whether or not the question is still wanted. */
static void on_answer(hy_mpi *m, int from, const struct wire *w)
{
    int rc = (int)(int64_t)w->w[1], mrc = MPI_SUCCESS;
    size_t bytes = (size_t)w->w[2];
    void *buf = NULL;
    if (!rc && bytes <= HY_MPI_ANSWER_MAX && (buf = malloc(bytes ? bytes : 1)))
        mrc = recv_data(m, from, buf, bytes);
    else
        drain_data(m, from, bytes);
    pthread_mutex_lock(&m->mu);
    hy_mpi_answers **link, *a = find_ask(m, w->w[0], &link);
    if (a && from >= 0 && (unsigned)from < a->size && !a->blob[from] && !a->len[from]) {
        if (rc)
            hy_error_set(&a->err, rc, "rank %d: %.*s", from, (int)sizeof w->text - 1, w->text);
        else if (bytes > HY_MPI_ANSWER_MAX)
            rc = hy_error_set(&a->err, HY_EINTERNAL, "rank %d answered with %zu bytes, above "
                              "the %zu taken", from, bytes, HY_MPI_ANSWER_MAX);
        else if (!buf)
            rc = hy_error_set(&a->err, HY_ENOMEM, "no memory for rank %d's answer", from);
        else if (mrc != MPI_SUCCESS)
            rc = hy_error_set(&a->err, HY_ESYS, "rank %d: receiving its answer failed (MPI "
                              "error %d)", from, mrc);
        if (rc && !a->rc)
            a->rc = rc;
        if (!rc) {
            a->blob[from] = buf;
            a->len[from] = bytes;
            buf = NULL;
        }
        ask_counted(m, a, link);
    }
    pthread_mutex_unlock(&m->mu);
    free(buf);
}

/* A peer waiting on this rank asks whether it lives: the MPI thread answers at once
 * (under the lock), whatever the daemon is doing. */
static void on_ping(hy_mpi *m, int from)
{
    struct out *o = calloc(1, sizeof *o);
    if (!o)
        return; /* the next ping asks again */
    *o = (struct out){.dest = from, .tag = TAG_PONG};
    push_out(m, o);
}

static bool progress_sends(hy_mpi *m);

/* Whether this rank, waiting on peers, should ping them now (under the lock): about four
 * times per peer timeout, at most once a second, at least 50 ms apart. */
static bool ping_due(hy_mpi *m)
{
    uint64_t now = now_ns(), every = m->timeout_ns / 4;
    every = every > 1000000000ull ? 1000000000ull : every < 50000000ull ? 50000000ull : every;
    if (!m->timeout_ns || !(m->holding || m->asks) || now - m->last_ping < every)
        return false;
    m->last_ping = now;
    return true;
}

/* A message of only a header to dest, started at once (the MPI thread's inflight list). */
static void send_bare(hy_mpi *m, int dest, int tag)
{
    struct out *o = calloc(1, sizeof *o);
    if (!o)
        return; /* a ping or pong: the next round sends another */
    *o = (struct out){.dest = dest, .tag = tag};
    if (MPI_Isend(&o->msg, (int)sizeof o->msg, MPI_BYTE, dest, tag, MPI_COMM_WORLD,
                  &o->req) != MPI_SUCCESS) {
        free(o);
        return;
    }
    o->next = m->inflight;
    m->inflight = o;
}

/* While a span or a question waits, every peer is pinged about four times per peer
 * timeout (at most once a second): a live rank's MPI thread answers at once, even while its
 * daemon computes, so only a rank that is stopped, hung or cut off stays silent. */
static void ping_peers(hy_mpi *m)
{
    pthread_mutex_lock(&m->mu);
    bool due = ping_due(m);
    pthread_mutex_unlock(&m->mu);
    for (int r = 0; due && r < m->size; r++)
        if (r != m->rank)
            send_bare(m, r, TAG_PING);
}

/* Liveness in the middle of a long step on the MPI thread (a slice's read and partition, a
 * bucket's write, a file operation): pings that came are answered and pongs taken as signs
 * of life, and this rank pings its own peers when due, so that neither side takes a busy
 * rank for a silent one (limits.peer_timeout_s). Only pings and pongs: every other message
 * waits for the loop, in its order (MPI keeps order per source and tag). */
static void keep_alive(hy_mpi *m)
{
    int flag = 0;
    MPI_Status st;
    struct wire w;
    static const int tags[] = {TAG_PING, TAG_PONG};
    for (size_t i = 0; i < sizeof tags / sizeof *tags; i++) {
        int tag = tags[i];
        while (MPI_Iprobe(MPI_ANY_SOURCE, tag, MPI_COMM_WORLD, &flag, &st) == MPI_SUCCESS &&
               flag && MPI_Recv(&w, (int)sizeof w, MPI_BYTE, st.MPI_SOURCE, tag,
                                MPI_COMM_WORLD, MPI_STATUS_IGNORE) == MPI_SUCCESS) {
            if (st.MPI_SOURCE >= 0 && st.MPI_SOURCE < m->size)
                __atomic_store_n(&m->heard[st.MPI_SOURCE], now_ns(), __ATOMIC_RELAXED);
            if (tag == TAG_PING)
                send_bare(m, st.MPI_SOURCE, TAG_PONG);
        }
    }
    ping_peers(m);
    progress_sends(m);
}

static void on_slice(hy_mpi *m, int from, const struct wire *w);
static void on_xbucket(hy_mpi *m, int from, const struct wire *w);
static void free_collect(struct collect *c);

/* One message from a peer, if any is there. Returns true when one was handled. */
static bool receive_one(hy_mpi *m)
{
    int flag = 0;
    MPI_Status st;
    if (MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st) != MPI_SUCCESS ||
        !flag)
        return false;
    struct wire w;
    memset(&w, 0, sizeof w);
    if (MPI_Recv(&w, (int)sizeof w, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD,
                 MPI_STATUS_IGNORE) != MPI_SUCCESS)
        return false;
    w.text[sizeof w.text - 1] = '\0';
    if (st.MPI_SOURCE >= 0 && st.MPI_SOURCE < m->size) /* any message is a sign of life */
        __atomic_store_n(&m->heard[st.MPI_SOURCE], now_ns(), __ATOMIC_RELAXED);
    if (st.MPI_TAG == TAG_PONG)
        return true;
    /* These receive the bytes that follow their header first, then take the lock as needed. */
    void (*unlocked)(hy_mpi *, int, const struct wire *) =
        st.MPI_TAG == TAG_SPART     ? on_sort_part
        : st.MPI_TAG == TAG_SDONE   ? on_sort_done
        : st.MPI_TAG == TAG_ANSWER  ? on_answer
        : st.MPI_TAG == TAG_SLICE   ? on_slice
        : st.MPI_TAG == TAG_XBUCKET ? on_xbucket
                                    : NULL;
    if (unlocked) {
        unlocked(m, st.MPI_SOURCE, &w);
        return true;
    }
    pthread_mutex_lock(&m->mu);
    if (st.MPI_TAG == TAG_PART)
        on_part(m, st.MPI_SOURCE, &w);
    else if (st.MPI_TAG == TAG_DONE)
        on_done(m, st.MPI_SOURCE, &w);
    else if (st.MPI_TAG == TAG_ASK)
        on_ask(m, st.MPI_SOURCE, &w);
    else if (st.MPI_TAG == TAG_PING)
        on_ping(m, st.MPI_SOURCE);
    else if (st.MPI_TAG == TAG_STOP && !m->peer_stop) {
        /* One rank stopping stops the MPI job: the daemon's loop gets the same SIGTERM as
         * from mpirun (blocked in every thread, read from its signalfd). */
        m->peer_stop = true;
        kill(getpid(), SIGTERM);
    }
    pthread_mutex_unlock(&m->mu);
    return true;
}

static void free_out(struct out *o)
{
    hy_mpi_buf_free(o->owned);
    free(o);
}

static void file_run(struct fileop *f);

/* Adds what this rank's slice of span (origin, token) cost to *io and *sent, and forgets it
 * (the MPI thread's: no lock). */
static void take_slicestat(hy_mpi *m, int origin, uint64_t token, uint64_t *io, uint64_t *sent)
{
    for (struct slicestat **l = &m->slicestats, *x; (x = *l); l = &x->next)
        if (x->origin == origin && x->token == token) {
            *io += x->io_ns;
            *sent += x->bytes;
            *l = x->next;
            free(x);
            return;
        }
}

/* A sorted run a span sent this rank, written where it goes in the output file before its
 * answer's header is sent; a failed write is the answer instead (without the "rank K: "
 * the origin adds itself). */
static void write_run(hy_mpi *m, struct out *o)
{
    struct fileop f = {.op = HY_MPI_FILE_WRITE, .path = o->wpath, .offset = o->woff,
                       .buf = o->owned, .len = o->wlen, .rank = m->rank, .m = m};
    uint64_t t0 = now_ns();
    file_run(&f);
    uint64_t io = now_ns() - t0, sent = 0;
    take_slicestat(m, o->dest, o->msg.w[0], &io, &sent);
    o->msg.w[W_IO] = io;
    o->msg.w[W_SENT] = sent + (o->dest != m->rank ? sizeof o->msg : 0);
    if (f.rc) {
        const char *why = strstr(f.err.msg, ": ");
        o->msg.w[1] = (uint64_t)(int64_t)f.rc;
        snprintf(o->msg.text, sizeof o->msg.text, "%s", why ? why + 2 : f.err.msg);
    }
    hy_mpi_buf_free(o->owned); /* the keys, and the path after them */
    o->owned = NULL;
    o->wpath = NULL;
}

/* Starts the sends the daemon queued (MPI_Isend: the loop completes them). A part that
 * cannot be sent fails its span at once, and its keys are not sent after it. */
static void send_queued(hy_mpi *m, struct out *o)
{
    int skip = -1; /* a destination whose header failed: drop the data that follows it */
    while (o) {
        struct out *next = o->next;
        int rc;
        if (o->wpath)
            write_run(m, o);
        if (o->tag == TAG_DATA) {
            rc = o->dest == skip ? MPI_ERR_OTHER
                                 : MPI_Isend(o->buf, (int)o->len, MPI_BYTE, o->dest, TAG_DATA,
                                             m->data, &o->req);
        } else {
            skip = -1;
            rc = MPI_Isend(&o->msg, (int)sizeof o->msg, MPI_BYTE, o->dest, o->tag,
                           MPI_COMM_WORLD, &o->req);
        }
        if (rc == MPI_SUCCESS) {
            o->next = m->inflight;
            m->inflight = o;
        } else {
            if (o->tag == TAG_ASK) {
                pthread_mutex_lock(&m->mu);
                hy_mpi_answers **link, *a = find_ask(m, o->msg.w[0], &link);
                if (a) {
                    if (!a->rc)
                        a->rc = hy_error_set(&a->err, HY_ESYS, "MPI_Isend of a question to "
                                             "rank %d failed (MPI error %d)", o->dest, rc);
                    ask_counted(m, a, link);
                }
                pthread_mutex_unlock(&m->mu);
            }
            if (o->tag == TAG_PART || o->tag == TAG_SPART) {
                struct wire w = {.w = {o->msg.w[0], (uint64_t)(int64_t)HY_ESYS, 0}};
                snprintf(w.text, sizeof w.text, "MPI_Isend of its part failed (MPI error %d)", rc);
                pthread_mutex_lock(&m->mu);
                on_done(m, o->dest, &w);
                pthread_mutex_unlock(&m->mu);
            }
            if (o->tag != TAG_DATA)
                skip = o->dest;
            free_out(o);
        }
        o = next;
    }
}

/* Completes the sends under way; true while some remain. */
static bool progress_sends(hy_mpi *m)
{
    for (struct out **l = &m->inflight, *o; (o = *l);) {
        int done = 0;
        if (MPI_Test(&o->req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS || done) {
            *l = o->next;
            free_out(o);
        } else
            l = &o->next;
    }
    return m->inflight != NULL;
}

/* ---- files ---- */

/* Most bytes one MPI-IO call moves: its count is an int, and the MPI thread answers pings
 * between calls (keep_alive), about every 30 ms at 2 GB/s. */
#define FILE_CHUNK ((size_t)1 << 26)

/* MPI's own words for mrc (errno is not reliable after MPI-IO: Open MPI leaves it stale). */
static int file_fail(struct fileop *f, int mrc, const char *what)
{
    char words[MPI_MAX_ERROR_STRING] = "";
    int wl = 0;
    MPI_Error_string(mrc, words, &wl);
    return f->rc = hy_error_set(&f->err, HY_ESYS, "rank %d: %s %s: %s", f->rank, what, f->path,
                                words);
}

/* Moves f->len bytes at f->offset, chunk by chunk; a read that ends early is an error. */
static int file_move(MPI_File fh, struct fileop *f)
{
    for (size_t at = 0; at < f->len; at += FILE_CHUNK) {
        if (at)
            keep_alive(f->m);
        int len = (int)(f->len - at < FILE_CHUNK ? f->len - at : FILE_CHUNK), got = 0;
        MPI_Status st;
        MPI_Offset off = (MPI_Offset)(f->offset + at);
        int mrc = f->op == HY_MPI_FILE_READ
                      ? MPI_File_read_at(fh, off, f->buf + at, len, MPI_BYTE, &st)
                      : MPI_File_write_at(fh, off, f->buf + at, len, MPI_BYTE, &st);
        if (mrc != MPI_SUCCESS)
            return file_fail(f, mrc, f->op == HY_MPI_FILE_READ ? "reading" : "writing");
        MPI_Get_count(&st, MPI_BYTE, &got);
        if (got != len)
            return f->rc = hy_error_set(&f->err, HY_ESYS, "rank %d: %s %s: %zu bytes at %"
                                        PRIu64 " were %s, %d of them done", f->rank,
                                        f->op == HY_MPI_FILE_READ
                                        ? "reading" : "writing", f->path, (size_t)len,
                                        f->offset + at, f->op == HY_MPI_FILE_READ
                                        ? "past its end" : "not all written", got);
    }
    return 0;
}

/* The elements at f->idx (after f->offset), through a file view of just those bytes: one
 * read instead of one per element. */
static int file_gather(MPI_File fh, struct fileop *f)
{
    size_t count = f->len / f->esize;
    MPI_Aint *at = malloc((count ? count : 1) * sizeof *at);
    if (!at)
        return f->rc = hy_error_set(&f->err, HY_ENOMEM, "no memory to sample %s", f->path);
    for (size_t i = 0; i < count; i++)
        at[i] = (MPI_Aint)(f->idx[i] * f->esize);
    MPI_Datatype view;
    MPI_Status st;
    int mrc = MPI_Type_create_hindexed_block((int)count, (int)f->esize, at, MPI_BYTE, &view);
    if (mrc == MPI_SUCCESS && (mrc = MPI_Type_commit(&view)) == MPI_SUCCESS) {
        mrc = MPI_File_set_view(fh, (MPI_Offset)f->offset, MPI_BYTE, view, "native",
                                MPI_INFO_NULL);
        if (mrc == MPI_SUCCESS)
            mrc = MPI_File_read_at(fh, 0, f->buf, (int)f->len, MPI_BYTE, &st);
        MPI_Type_free(&view);
    }
    free(at);
    return mrc == MPI_SUCCESS ? 0 : file_fail(f, mrc, "sampling");
}

/* One file operation, on the MPI thread: open on MPI_COMM_SELF, do it, close. */
static void file_run(struct fileop *f)
{
    MPI_File fh;
    int amode = f->op == HY_MPI_FILE_READ || f->op == HY_MPI_FILE_GATHER ? MPI_MODE_RDONLY
                : f->op == HY_MPI_FILE_CREATE ? MPI_MODE_WRONLY | MPI_MODE_CREATE
                                              : MPI_MODE_WRONLY;
    int mrc = MPI_File_open(MPI_COMM_SELF, f->path, amode, MPI_INFO_NULL, &fh);
    if (mrc != MPI_SUCCESS) {
        file_fail(f, mrc, "cannot open");
        return;
    }
    MPI_Offset size = 0;
    if (f->op == HY_MPI_FILE_CREATE) {
        if ((mrc = MPI_File_set_size(fh, (MPI_Offset)f->offset)) != MPI_SUCCESS)
            file_fail(f, mrc, "cannot size");
    } else if (f->op == HY_MPI_FILE_GATHER) {
        file_gather(fh, f);
    } else {
        file_move(fh, f);
    }
    if (MPI_File_get_size(fh, &size) == MPI_SUCCESS)
        f->size = (uint64_t)size;
    if ((mrc = MPI_File_close(&fh)) != MPI_SUCCESS && !f->rc)
        file_fail(f, mrc, "closing");
}

/* Runs the file operations queued so far and wakes their waiters. */
static void run_files(hy_mpi *m)
{
    pthread_mutex_lock(&m->mu);
    struct fileop *f = m->files;
    m->files = NULL;
    pthread_mutex_unlock(&m->mu);
    while (f) {
        struct fileop *next = f->next;
        file_run(f);
        pthread_mutex_lock(&m->mu);
        f->done = true;
        pthread_cond_broadcast(&m->spans);
        pthread_mutex_unlock(&m->mu);
        f = next;
    }
}

int hy_mpi_file(hy_mpi *m, int op, const char *path, uint64_t offset, void *buf, size_t len,
                uint64_t *size, hy_error *err)
{
    return hy_mpi_file_gather(m, op, path, offset, buf, len, NULL, 0, size, err);
}

int hy_mpi_file_gather(hy_mpi *m, int op, const char *path, uint64_t offset, void *buf,
                       size_t len, const uint64_t *idx, size_t esize, uint64_t *size,
                       hy_error *err)
{
    struct fileop f = {.op = op, .path = path, .offset = offset, .buf = buf, .len = len,
                       .idx = idx, .esize = esize, .rank = m->rank, .m = m};
    pthread_mutex_lock(&m->mu);
    if (m->ended || m->stop) {
        pthread_mutex_unlock(&m->mu);
        return hy_error_set(err, HY_EBUSY, "the MPI job is stopping");
    }
    f.next = m->files;
    m->files = &f;
    pthread_cond_signal(&m->wake);
    while (!f.done && !m->ended)
        pthread_cond_wait(&m->spans, &m->mu);
    if (!f.done) { /* the thread ended before it ran: take it back off the list */
        for (struct fileop **l = &m->files; *l; l = &(*l)->next)
            if (*l == &f) {
                *l = f.next;
                break;
            }
        f.rc = hy_error_set(&f.err, HY_EBUSY, "the MPI job stopped before %s was %s", path,
                            op == HY_MPI_FILE_READ ? "read" : "written");
    }
    pthread_mutex_unlock(&m->mu);
    if (size)
        *size = f.size;
    if (f.rc)
        *err = f.err;
    return f.rc;
}

static void tell_peers_stop(hy_mpi *m)
{
    struct wire w;
    memset(&w, 0, sizeof w);
    for (int r = 0; r < m->size; r++)
        if (r != m->rank)
            MPI_Send(&w, (int)sizeof w, MPI_BYTE, r, TAG_STOP, MPI_COMM_WORLD);
}

static int init_mpi(hy_mpi *m)
{
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return hy_error_set(&m->init_err, HY_ESYS, "MPI_Init_thread failed");
    if (provided < MPI_THREAD_FUNNELED) {
        MPI_Finalize();
        return hy_error_set(&m->init_err, HY_ESYS, "this MPI library offers thread level %d "
                            "(MPI_THREAD_SINGLE); hybridd's MPI thread needs at least "
                            "MPI_THREAD_FUNNELED", provided);
    }
    /* A failed send comes back as a code (the part's span fails) instead of aborting. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &m->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &m->size);
    if (!(m->heard = calloc((size_t)m->size, sizeof *m->heard))) {
        MPI_Finalize();
        return hy_error_set(&m->init_err, HY_ENOMEM, "no memory for %d ranks", m->size);
    }
    if (MPI_Comm_dup(MPI_COMM_WORLD, &m->data) != MPI_SUCCESS) {
        free(m->heard);
        m->heard = NULL;
        MPI_Finalize();
        return hy_error_set(&m->init_err, HY_ESYS, "MPI_Comm_dup failed");
    }
    return 0;
}

/* Questions some rank has not answered within the peer timeout go back to the loop failed,
 * naming the ranks (under the lock); their late answers find no question and are dropped. */
static void expire_asks(hy_mpi *m)
{
    uint64_t now = now_ns();
    for (hy_mpi_answers **l = &m->asks, *a; (a = *l);) {
        if (!m->timeout_ns || now - a->asked_ns <= m->timeout_ns) {
            l = &a->next;
            continue;
        }
        char who[96] = "";
        size_t at = 0;
        for (unsigned r = 0; r < a->size && at < sizeof who - 16; r++)
            if ((int)r != m->rank && !a->blob[r] && !a->len[r])
                at += (size_t)snprintf(who + at, sizeof who - at, "%s%u", at ? ", " : "", r);
        if (!a->rc)
            a->rc = hy_error_set(&a->err, HY_EBUSY, "rank %s did not answer within %.0f s "
                                 "(stopped, hung or cut off; limits.peer_timeout_s)", who,
                                 (double)m->timeout_ns / 1e9);
        a->got = a->expect;
        *l = a->next;
        a->next = m->answered;
        m->answered = a;
        wake_loop(m);
    }
}

static void *mpi_main(void *arg)
{
    hy_mpi *m = arg;
    int rc = init_mpi(m);
    pthread_mutex_lock(&m->mu);
    m->init_rc = rc;
    m->started = true;
    pthread_cond_broadcast(&m->ready);
    pthread_mutex_unlock(&m->mu);
    if (rc)
        return NULL;
    for (;;) {
        pthread_mutex_lock(&m->mu);
        struct out *o = m->out_head;
        m->out_head = m->out_tail = NULL;
        bool stop = m->stop;
        pthread_mutex_unlock(&m->mu);
        send_queued(m, o);
        run_files(m);
        ping_peers(m);
        pthread_mutex_lock(&m->mu);
        expire_asks(m);
        pthread_mutex_unlock(&m->mu);
        bool sending = progress_sends(m);
        if (stop)
            break;
        if (receive_one(m))
            continue;
        if (sending) { /* a transfer under way: keep progressing it, but let others run */
            sched_yield();
            continue;
        }
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_nsec += 1000000;
        if (t.tv_nsec >= 1000000000) {
            t.tv_sec++;
            t.tv_nsec -= 1000000000;
        }
        pthread_mutex_lock(&m->mu);
        if (!m->out_head && !m->files && !m->stop)
            pthread_cond_timedwait(&m->wake, &m->mu, &t);
        pthread_mutex_unlock(&m->mu);
    }
    pthread_mutex_lock(&m->mu);
    bool peer = m->peer_stop;
    m->ended = true;
    pthread_cond_broadcast(&m->spans);
    pthread_mutex_unlock(&m->mu);
    /* Sends under way finish first (bounded: a peer that no longer receives is left). */
    for (int i = 0; i < 2000 && progress_sends(m); i++)
        usleep(1000);
    if (!peer)
        tell_peers_stop(m);
    /* No MPI_Comm_free of `data`: it is collective, and the peers may be stopping at their
     * own pace; MPI_Finalize releases it. */
    MPI_Finalize();
    return NULL;
}

int hy_mpi_start(hy_mpi **out, hy_error *err)
{
    hy_mpi *m = calloc(1, sizeof *m);
    if (!m)
        return hy_error_set(err, HY_ENOMEM, "no memory for the MPI state");
    m->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (m->evfd < 0) {
        int e = errno;
        free(m);
        return hy_error_set(err, HY_ESYS, "eventfd: %s", strerror(e));
    }
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->wake, NULL);
    pthread_cond_init(&m->spans, NULL);
    pthread_cond_init(&m->ready, NULL);
    m->next_token = 1;
    m->timeout_ns = HY_MPI_PEER_TIMEOUT_MS * 1000000ull;
    const char *pause = getenv("HYBRIDD_TEST_SLICE_PAUSE_MS"); /* tests/mpi only */
    m->test_slice_pause_ns = pause ? strtoull(pause, NULL, 10) * 1000000ull : 0;
    const char *room = getenv("HYBRIDD_TEST_COLLECT_ROOM"); /* tests/mpi only */
    m->test_collect_room = room ? strtoull(room, NULL, 10) : 0;
    int rc = pthread_create(&m->thread, NULL, mpi_main, m);
    if (rc) {
        close(m->evfd);
        free(m);
        return hy_error_set(err, HY_ESYS, "the MPI thread: pthread_create: %s", strerror(rc));
    }
    pthread_mutex_lock(&m->mu);
    while (!m->started)
        pthread_cond_wait(&m->ready, &m->mu);
    pthread_mutex_unlock(&m->mu);
    if (m->init_rc) {
        pthread_join(m->thread, NULL);
        *err = m->init_err;
        close(m->evfd);
        free(m);
        return err->code;
    }
    *out = m;
    return 0;
}

void hy_mpi_stop(hy_mpi *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->stop = true;
    pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->thread, NULL);
    for (struct in *p = m->in_head, *n; p; p = n) {
        n = p->next;
        hy_mpi_buf_free(p->part.data);
        free(p);
    }
    for (struct out *o = m->out_head, *n; o; o = n) {
        n = o->next;
        free_out(o);
    }
    /* Sends still under way at MPI_Finalize are left to the process's end: the library may
     * still read their buffers. */
    for (struct span *s = m->span_list, *n; s; s = n) {
        n = s->next;
        free_span(s);
    }
    for (struct question *q = m->q_head, *n; q; q = n) {
        n = q->next;
        free(q);
    }
    for (struct collect *c = m->collects, *n; c; c = n) {
        n = c->next;
        free_collect(c);
    }
    for (struct slicestat *x = m->slicestats, *n; x; x = n) {
        n = x->next;
        free(x);
    }
    free(m->heard);
    hy_mpi_answers *lists[2] = {m->asks, m->answered};
    for (int i = 0; i < 2; i++)
        for (hy_mpi_answers *a = lists[i], *n; a; a = n) {
            n = a->next;
            hy_mpi_answers_free(a);
        }
    close(m->evfd);
    free(m);
    keep_drop();
}

void hy_mpi_set_peer_timeout(hy_mpi *m, uint64_t ms)
{
    pthread_mutex_lock(&m->mu);
    m->timeout_ns = ms * 1000000ull;
    pthread_mutex_unlock(&m->mu);
}

int hy_mpi_rank(const hy_mpi *m) { return m->rank; }
int hy_mpi_size(const hy_mpi *m) { return m->size; }
int hy_mpi_event_fd(const hy_mpi *m) { return m->evfd; }

bool hy_mpi_take_part(hy_mpi *m, hy_mpi_part *out)
{
    uint64_t v;
    if (read(m->evfd, &v, sizeof v) < 0) {
        /* EAGAIN: already reset; the queue below is the truth either way. */
    }
    pthread_mutex_lock(&m->mu);
    struct in *p = m->holding ? NULL : m->in_head; /* held: the gatherer runs them */
    if (p) {
        m->in_head = p->next;
        if (!m->in_head)
            m->in_tail = NULL;
        *out = p->part;
    }
    pthread_mutex_unlock(&m->mu);
    free(p);
    return p != NULL;
}

/* The chunks of `bytes` at buf for dest, allocated at once so that a header is never followed
 * by half its keys; the last chunk owns `owned`. NULL when out of memory (nothing taken). */
static struct out *data_chunks(int dest, const void *buf, size_t bytes, void *owned)
{
    struct out *head = NULL, **tail = &head, *last = NULL;
    for (size_t at = 0; at < bytes; at += CHUNK) {
        struct out *o = calloc(1, sizeof *o);
        if (!o) {
            for (struct out *n; head; head = n) {
                n = head->next;
                free(head);
            }
            return NULL;
        }
        *o = (struct out){.dest = dest, .tag = TAG_DATA, .buf = (const char *)buf + at,
                          .len = bytes - at < CHUNK ? bytes - at : CHUNK};
        *tail = last = o;
        tail = &o->next;
    }
    if (last)
        last->owned = owned;
    return head;
}

/* Queues a chain of messages in order (under the lock). */
static void push_chain(hy_mpi *m, struct out *o)
{
    for (struct out *n; o; o = n) {
        n = o->next;
        push_out(m, o);
    }
}

/* A sort part's answer: the header, then its sorted keys (p->data, freed once sent). */
static void sort_done(hy_mpi *m, const hy_mpi_part *p, int rc, const char *msg)
{
    size_t bytes = rc ? 0 : (size_t)p->count * hy_dtype_size(p->dtype);
    struct out *data = NULL;
    if (bytes && p->out_path) { /* the MPI thread writes the run, then answers */
        struct out *o = calloc(1, sizeof *o);
        if (!o) {
            hy_mpi_buf_free(p->data);
            return; /* the origin's cancel or job timeout ends its wait */
        }
        *o = (struct out){.dest = p->origin, .tag = TAG_SDONE, .owned = p->data,
                          .wpath = p->out_path, .woff = p->out_offset, .wlen = bytes};
        /* write_run adds the run's write and the slice's figures */
        uint64_t w[8] = {p->token, 0, p->bucket, 0, p->compute_ns, 0, 0, p->count};
        memcpy(o->msg.w, w, sizeof w);
        pthread_mutex_lock(&m->mu);
        push_out(m, o);
        pthread_mutex_unlock(&m->mu);
        return;
    }
    if (bytes && !(data = data_chunks(p->origin, p->data, bytes, p->data))) {
        rc = HY_ENOMEM;
        msg = "no memory to send its sorted keys";
        bytes = 0;
    }
    if (!data)
        hy_mpi_buf_free(p->data);
    struct out *o = calloc(1, sizeof *o);
    if (!o) {
        for (struct out *n; data; data = n) {
            n = data->next;
            free_out(data);
        }
        return; /* the origin's cancel or job timeout ends its wait */
    }
    *o = (struct out){.dest = p->origin, .tag = TAG_SDONE};
    uint64_t w[8] = {p->token, (uint64_t)(int64_t)rc, p->bucket, bytes, p->compute_ns, 0,
                     sizeof o->msg + bytes, p->count};
    memcpy(o->msg.w, w, sizeof w);
    snprintf(o->msg.text, sizeof o->msg.text, "%s", msg ? msg : "");
    pthread_mutex_lock(&m->mu);
    push_out(m, o);
    push_chain(m, data);
    pthread_mutex_unlock(&m->mu);
}

void hy_mpi_part_done(hy_mpi *m, const hy_mpi_part *p, int rc, uint64_t hits, const char *msg)
{
    if (p->kind == HY_MPI_SORT) {
        sort_done(m, p, rc, msg);
        return;
    }
    struct out *o = calloc(1, sizeof *o);
    if (!o)
        return; /* the origin's cancel or job timeout ends its wait */
    o->dest = p->origin;
    o->tag = TAG_DONE;
    o->msg.w[0] = p->token;
    o->msg.w[1] = (uint64_t)(int64_t)rc;
    o->msg.w[2] = rc ? 0 : hits;
    o->msg.w[W_COMPUTE] = p->compute_ns;
    o->msg.w[W_SENT] = sizeof o->msg;
    o->msg.w[W_SHARE] = p->count;
    snprintf(o->msg.text, sizeof o->msg.text, "%s", msg ? msg : "");
    pthread_mutex_lock(&m->mu);
    push_out(m, o);
    pthread_mutex_unlock(&m->mu);
}

void hy_mpi_split(uint64_t n, unsigned parts, unsigned k, uint64_t *first, uint64_t *count)
{
    uint64_t q = n / parts, r = n % parts;
    *first = k * q + (k < r ? k : r);
    *count = q + (k < r ? 1 : 0);
}

/* A new span's figures: one entry per part, those on no other rank or with nothing to do
 * marked answered as they are sent (span_sent). False when out of memory. */
static bool span_figures(hy_mpi *m, struct span *s, unsigned ranks)
{
    s->nb = ranks;
    s->t0 = now_ns();
    if (!(s->st = calloc(ranks, sizeof *s->st)))
        return false;
    for (unsigned k = 0; k < ranks; k++)
        s->st[k] = (hy_mpi_rank_stat){.rank = (int)((m->rank + k) % (unsigned)m->size),
                                      .answered = true};
    return true;
}

/* Part k of span s is sent (`bytes` of it to another rank): the span waits for its answer. */
static void span_sent(struct span *s, unsigned k, uint64_t bytes)
{
    s->expect++;
    s->bytes_out += bytes;
    if (s->st && k < s->nb)
        s->st[k].answered = false;
}

/* Queues part k of the span for its rank; false when out of memory. */
static bool queue_part(hy_mpi *m, const hy_mpi_part *proto, uint64_t token, int dest,
                       uint64_t first, uint64_t count)
{
    struct out *o = calloc(1, sizeof *o);
    if (!o)
        return false;
    o->dest = dest;
    o->tag = TAG_PART;
    uint64_t w[8] = {token, (uint64_t)proto->backend, proto->threads, (uint64_t)proto->mode,
                     (uint64_t)proto->nogil, proto->seed, first, count};
    memcpy(o->msg.w, w, sizeof w);
    push_out(m, o);
    return true;
}

int hy_mpi_pi_scatter(hy_mpi *m, const hy_mpi_part *proto, uint64_t n, unsigned ranks,
                      uint64_t *token, hy_error *err)
{
    if (ranks < 1 || ranks > (unsigned)m->size)
        return hy_error_set(err, HY_EINVAL, "ranks %u: the MPI job has %d", ranks, m->size);
    struct span *s = calloc(1, sizeof *s);
    if (!s || !span_figures(m, s, ranks)) {
        free(s);
        return hy_error_set(err, HY_ENOMEM, "no memory for a span");
    }
    int rc = 0;
    pthread_mutex_lock(&m->mu);
    if (m->ended) {
        rc = hy_error_set(err, HY_EBUSY, "the MPI job is stopping");
        free_span(s);
        goto out;
    }
    s->token = m->next_token++;
    for (unsigned k = 1; k < ranks; k++) {
        uint64_t first, count;
        hy_mpi_split(n, ranks, k, &first, &count);
        if (count == 0)
            continue; /* n < ranks: that rank has nothing to count */
        if (!queue_part(m, proto, s->token, (int)((m->rank + k) % (unsigned)m->size), first,
                        count)) {
            s->rc = hy_error_set(&s->err, HY_ENOMEM, "no memory to queue a part");
            break;
        }
        span_sent(s, k, sizeof(struct wire));
    }
    s->next = m->span_list;
    m->span_list = s;
    *token = s->token;
    m->holding++;
out:
    pthread_mutex_unlock(&m->mu);
    return rc;
}

/* Queues bucket k of a sort span for its rank (under the lock); false when out of memory
 * (data then freed). */
static bool queue_bucket(hy_mpi *m, const hy_mpi_part *proto, const struct span *s, unsigned k,
                         void *data)
{
    size_t bytes = (size_t)s->cnt[k] * s->esize;
    int dest = (int)((m->rank + k) % (unsigned)m->size);
    struct out *o = calloc(1, sizeof *o), *chunks = o ? data_chunks(dest, data, bytes, data) : NULL;
    if (!chunks) {
        free(o);
        hy_mpi_buf_free(data);
        return false;
    }
    *o = (struct out){.dest = dest, .tag = TAG_SPART};
    uint64_t w[8] = {s->token, (uint64_t)proto->backend, proto->threads, (uint64_t)proto->mode,
                     (uint64_t)proto->nogil, (uint64_t)(uint32_t)proto->dtype | (uint64_t)k << 32,
                     s->cnt[k], bytes};
    memcpy(o->msg.w, w, sizeof w);
    push_out(m, o);
    push_chain(m, chunks);
    return true;
}

int hy_mpi_sort_scatter(hy_mpi *m, const hy_mpi_part *proto, unsigned ranks, void *const *data,
                        const uint64_t *count, const uint64_t *offset, void *dest,
                        uint64_t *token, hy_error *err)
{
    struct span *s = NULL;
    int rc = 0;
    if (ranks < 1 || ranks > (unsigned)m->size)
        rc = hy_error_set(err, HY_EINVAL, "ranks %u: the MPI job has %d", ranks, m->size);
    else if (!(s = calloc(1, sizeof *s)) || !(s->cnt = malloc(2 * ranks * sizeof *s->cnt)) ||
             !span_figures(m, s, ranks))
        rc = hy_error_set(err, HY_ENOMEM, "no memory for a span");
    pthread_mutex_lock(&m->mu);
    if (!rc && m->ended)
        rc = hy_error_set(err, HY_EBUSY, "the MPI job is stopping");
    if (rc) {
        pthread_mutex_unlock(&m->mu);
        for (unsigned k = 1; k < ranks; k++)
            hy_mpi_buf_free(data[k]);
        if (s)
            free_span(s);
        return rc;
    }
    s->off = s->cnt + ranks;
    memcpy(s->cnt, count, ranks * sizeof *count);
    memcpy(s->off, offset, ranks * sizeof *offset);
    s->dest = dest;
    s->esize = hy_dtype_size(proto->dtype);
    s->nb = ranks;
    s->token = m->next_token++;
    for (unsigned k = 1; k < ranks; k++) {
        if (count[k] == 0 || s->rc) { /* an empty bucket is not sent */
            hy_mpi_buf_free(data[k]);
            continue;
        }
        if (!queue_bucket(m, proto, s, k, data[k]))
            s->rc = hy_error_set(&s->err, HY_ENOMEM, "no memory to queue a bucket");
        else
            span_sent(s, k, sizeof(struct wire) + count[k] * s->esize);
    }
    s->next = m->span_list;
    m->span_list = s;
    *token = s->token;
    m->holding++;
    pthread_mutex_unlock(&m->mu);
    return 0;
}

/* A part a peer sent, popped under the lock for the gatherer; NULL when none waits. */
static struct in *pop_part(hy_mpi *m)
{
    struct in *p = m->in_head;
    if (p) {
        m->in_head = p->next;
        if (!m->in_head)
            m->in_tail = NULL;
    }
    return p;
}

/* Runs a held part on the gatherer's thread (the lock dropped) and queues its answer. */
static void run_held(hy_mpi *m, struct in *p, hy_mpi_run_part_fn run_part, void *ctx)
{
    pthread_mutex_unlock(&m->mu);
    uint64_t hits = 0, t0 = now_ns();
    hy_error e = {0};
    int rc = run_part(ctx, &p->part, &hits, &e);
    p->part.compute_ns = now_ns() - t0;
    hy_mpi_part_done(m, &p->part, rc, hits, e.msg);
    free(p);
    pthread_mutex_lock(&m->mu);
}

/* A rank span s still waits on that has been silent (no answer, no pong) for longer than
 * the peer timeout, or -1 (under the lock). Silence counts from the scatter at the earliest. */
static int silent_rank(hy_mpi *m, const struct span *s, uint64_t now, uint64_t *quiet)
{
    if (!m->timeout_ns || !s->st)
        return -1;
    for (unsigned k = 0; k < s->nb; k++) {
        int r = (int)((m->rank + k) % (unsigned)m->size);
        if (s->st[k].answered || r == m->rank)
            continue;
        uint64_t heard = __atomic_load_n(&m->heard[r], __ATOMIC_RELAXED);
        uint64_t since = heard > s->t0 ? heard : s->t0;
        if (now > since && now - since > m->timeout_ns) {
            *quiet = now - since;
            return r;
        }
    }
    return -1;
}

/* The span's outcome once its wait ended (under the lock): its error, the MPI job stopping,
 * or its hits and per-part figures. */
static int span_outcome(hy_mpi *m, struct span *s, uint64_t *hits, hy_mpi_rank_stat *st,
                        hy_error *err)
{
    if (s->rc) {
        *err = s->err;
        return s->rc;
    }
    if (s->got < s->expect)
        return hy_error_set(err, HY_EBUSY, "the MPI job stopped before %u of %u ranks "
                            "answered", s->expect - s->got, s->expect);
    *hits += s->hits;
    if (st && s->st) {
        for (unsigned k = 0; k < s->nb; k++)
            if (s->st[k].answered)
                st[k] = s->st[k];
        st[0].bytes_sent += s->bytes_out;
    }
    (void)m;
    return 0;
}

/* Waits a little for the span's answers, or runs a held part; an error ends the wait. */
static int gather_step(hy_mpi *m, struct span *s, bool (*cancelled)(void *), void *ctx,
                       hy_mpi_run_part_fn run_part, void *part_ctx, hy_error *err)
{
    struct in *p = pop_part(m);
    if (p) {
        run_held(m, p, run_part, part_ctx);
        return 0;
    }
    pthread_mutex_unlock(&m->mu);
    bool stop = cancelled && cancelled(ctx);
    pthread_mutex_lock(&m->mu);
    if (stop)
        return hy_error_set(err, HY_ECANCELED, "cancelled while waiting for the other ranks");
    uint64_t quiet = 0;
    int r = silent_rank(m, s, now_ns(), &quiet);
    if (r >= 0)
        return hy_error_set(err, HY_EBUSY, "rank %d has not answered for %.1f s (stopped, "
                            "hung or cut off; limits.peer_timeout_s is %.0f s): the span "
                            "across %u ranks is dropped", r, (double)quiet / 1e9,
                            (double)m->timeout_ns / 1e9, s->nb);
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_nsec += 50000000;
    if (t.tv_nsec >= 1000000000) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&m->spans, &m->mu, &t);
    return 0;
}

int hy_mpi_gather(hy_mpi *m, uint64_t token, bool (*cancelled)(void *), void *ctx,
                  hy_mpi_run_part_fn run_part, void *part_ctx, uint64_t *hits,
                  hy_mpi_rank_stat *st, hy_error *err)
{
    int rc = 0;
    pthread_mutex_lock(&m->mu);
    struct span **link = NULL, *s = find_span(m, token, &link);
    if (!s) {
        pthread_mutex_unlock(&m->mu);
        return hy_error_set(err, HY_EINTERNAL, "span %llu is not known",
                            (unsigned long long)token);
    }
    while (s->got < s->expect && !s->rc && !m->ended && !rc)
        rc = gather_step(m, s, cancelled, ctx, run_part, part_ctx, err);
    if (!rc)
        rc = span_outcome(m, s, hits, st, err);
    find_span(m, token, &link); /* others may have added spans while we waited */
    *link = s->next;
    free_span(s);
    /* Parts that came after the last one this gather ran go to the loop again. */
    if (--m->holding == 0 && m->in_head) {
        uint64_t one = 1;
        if (write(m->evfd, &one, sizeof one) != sizeof one) {
            /* Only an overflowing counter fails, and then it is readable anyway. */
        }
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int hy_mpi_ask(hy_mpi *m, uint64_t *token, hy_error *err)
{
    unsigned size = (unsigned)m->size;
    hy_mpi_answers *a = calloc(1, sizeof *a);
    if (!a || !(a->blob = calloc(size, sizeof *a->blob)) ||
        !(a->len = calloc(size, sizeof *a->len))) {
        hy_mpi_answers_free(a);
        return hy_error_set(err, HY_ENOMEM, "no memory for a question to %u ranks", size);
    }
    a->size = size;
    a->asked_ns = now_ns();
    int rc = 0;
    pthread_mutex_lock(&m->mu);
    if (m->ended)
        rc = hy_error_set(err, HY_EBUSY, "the MPI job is stopping");
    for (unsigned r = 0; r < size && !rc; r++) {
        if ((int)r == m->rank)
            continue;
        struct out *o = calloc(1, sizeof *o);
        if (!o) {
            /* Those already queued are answered to a question nobody waits for: dropped. */
            rc = hy_error_set(err, HY_ENOMEM, "no memory to ask rank %u", r);
            break;
        }
        *o = (struct out){.dest = (int)r, .tag = TAG_ASK};
        o->msg.w[0] = m->next_token;
        push_out(m, o);
        a->expect++;
    }
    if (!rc) {
        a->token = *token = m->next_token++;
        if (a->expect == 0) { /* one rank alone: nothing to wait for */
            a->next = m->answered;
            m->answered = a;
            wake_loop(m);
        } else {
            a->next = m->asks;
            m->asks = a;
        }
    }
    pthread_mutex_unlock(&m->mu);
    if (rc)
        hy_mpi_answers_free(a);
    return rc;
}

bool hy_mpi_take_question(hy_mpi *m, hy_mpi_question *q)
{
    pthread_mutex_lock(&m->mu);
    struct question *n = m->q_head;
    if (n) {
        m->q_head = n->next;
        if (!m->q_head)
            m->q_tail = NULL;
        *q = n->q;
    }
    pthread_mutex_unlock(&m->mu);
    free(n);
    return n != NULL;
}

void hy_mpi_answer(hy_mpi *m, const hy_mpi_question *q, int rc, const void *blob, size_t len,
                   const char *msg)
{
    void *copy = NULL;
    struct out *data = NULL;
    if (!rc && len > 0) {
        if (len > HY_MPI_ANSWER_MAX) {
            rc = HY_EINTERNAL;
            msg = "its answer is larger than a rank takes";
        } else if (!(copy = malloc(len)) || !(data = data_chunks(q->origin, copy, len, copy))) {
            free(copy);
            rc = HY_ENOMEM;
            msg = "no memory to send its answer";
        } else
            memcpy(copy, blob, len);
    }
    struct out *o = calloc(1, sizeof *o);
    if (!o) {
        for (struct out *n; data; data = n) {
            n = data->next;
            free_out(data);
        }
        return; /* the asking rank's client gives up waiting */
    }
    *o = (struct out){.dest = q->origin, .tag = TAG_ANSWER};
    uint64_t w[3] = {q->token, (uint64_t)(int64_t)rc, rc ? 0 : (uint64_t)len};
    memcpy(o->msg.w, w, sizeof w);
    snprintf(o->msg.text, sizeof o->msg.text, "%s", msg ? msg : "");
    pthread_mutex_lock(&m->mu);
    push_out(m, o);
    push_chain(m, data);
    pthread_mutex_unlock(&m->mu);
}

hy_mpi_answers *hy_mpi_take_answers(hy_mpi *m)
{
    pthread_mutex_lock(&m->mu);
    hy_mpi_answers *a = m->answered;
    if (a)
        m->answered = a->next;
    pthread_mutex_unlock(&m->mu);
    return a;
}

void hy_mpi_answers_free(hy_mpi_answers *a)
{
    if (!a)
        return;
    for (unsigned r = 0; a->blob && r < a->size; r++)
        free(a->blob[r]);
    free(a->blob);
    free(a->len);
    free(a);
}

/* ---- files spans: each rank reads its slice, the ranks exchange buckets ----
 *
 * A sort of .npy paths across N ranks (docs/mpi.md): the asking rank has read the input's
 * header, created the output and chosen N - 1 splitters from a sample of the file; it sends
 * every rank of the span (itself included: a message to oneself is an ordinary one) a SLICE:
 * which slice k of [0, n) to read, the splitters, the two paths and where the elements and
 * the sorted ones start. Each rank's MPI thread reads its slice with MPI-IO, puts each element
 * in the bucket of its (key, global index) — the order of the memfd span, so the same buckets
 * — and sends bucket j to rank (origin + j) % size as an XBUCKET, with the slice's count of
 * every bucket. The rank of bucket j collects one XBUCKET from every slice; with all of them
 * it knows how many elements of buckets below j there are, so where its run goes, and hands
 * the keys to its daemon as a sort part whose run it writes itself (sort_done, write_run).
 * The answers go to the asking rank's span as for any span to a file. A slice that fails
 * (its read, its memory) still sends every bucket's rank an XBUCKET, carrying the failure,
 * so that no collection waits for it; the bucket's rank passes the failure to the span.
 * No executor waits on another rank here: reading and partitioning a slice is the MPI
 * thread's (it does nothing else meanwhile), sorting a bucket a job like any part. */

/* A header and its streams (each buf/len pair a data stream, owned[i] freed once sent) to
 * dest, all allocated before any is queued (under the lock). On false (no memory) the owned
 * buffers are freed. */
static bool send_streams(hy_mpi *m, int dest, int tag, const struct wire *hdr,
                         const void *const *buf, const size_t *len, void *const *owned,
                         unsigned n)
{
    struct out *o = calloc(1, sizeof *o), *chains[4] = {NULL};
    bool ok = o != NULL && n <= 4;
    for (unsigned i = 0; ok && i < n; i++)
        if (len[i] && !(chains[i] = data_chunks(dest, buf[i], len[i], owned[i])))
            ok = false;
    if (!ok) {
        for (unsigned i = 0; i < n && i < 4; i++) {
            for (struct out *c = chains[i], *nx; c; c = nx) {
                nx = c->next;
                free(c);
            }
            hy_mpi_buf_free(owned[i]);
        }
        free(o);
        return false;
    }
    for (unsigned i = 0; i < n; i++)
        if (!len[i])
            hy_mpi_buf_free(owned[i]); /* nothing to send: nobody else frees it */
    *o = (struct out){.dest = dest, .tag = tag, .msg = *hdr};
    push_out(m, o);
    for (unsigned i = 0; i < n; i++)
        push_chain(m, chains[i]);
    return true;
}

static char *copy_text(const char *s)
{
    return s ? strdup(s) : NULL;
}

int hy_mpi_files_scatter(hy_mpi *m, const hy_mpi_part *proto, unsigned ranks, uint64_t n,
                         uint64_t in_at, uint64_t out_at, const struct hy_skey *sp,
                         const char *in_path, const char *out_path, uint64_t *token,
                         hy_error *err)
{
    struct span *s = NULL;
    if (ranks < 1 || ranks > (unsigned)m->size)
        return hy_error_set(err, HY_EINVAL, "ranks %u: the MPI job has %d", ranks, m->size);
    if (!(s = calloc(1, sizeof *s)) || !span_figures(m, s, ranks)) {
        free(s);
        return hy_error_set(err, HY_ENOMEM, "no memory for a span");
    }
    pthread_mutex_lock(&m->mu);
    if (m->ended) {
        pthread_mutex_unlock(&m->mu);
        free_span(s);
        return hy_error_set(err, HY_EBUSY, "the MPI job is stopping");
    }
    s->token = m->next_token++;
    s->to_file = true;
    s->esize = hy_dtype_size(proto->dtype);
    size_t splen = (size_t)(ranks - 1) * sizeof *sp;
    for (unsigned k = 0; k < ranks && !s->rc; k++) {
        struct wire h = {.w = {s->token, k | (uint64_t)ranks << 32,
                               (uint64_t)proto->backend | (uint64_t)proto->threads << 32,
                               (uint64_t)proto->mode | (uint64_t)proto->nogil << 32,
                               (uint64_t)proto->dtype, n, in_at, out_at, strlen(in_path),
                               strlen(out_path)}};
        void *own[3] = {splen ? malloc(splen) : NULL, copy_text(in_path), copy_text(out_path)};
        if (own[0])
            memcpy(own[0], sp, splen);
        const void *bufs[3] = {own[0], own[1], own[2]};
        size_t lens[3] = {splen, h.w[8], h.w[9]};
        if ((splen && !own[0]) || !own[1] || !own[2] ||
            !send_streams(m, (int)((m->rank + k) % (unsigned)m->size), TAG_SLICE, &h, bufs,
                          lens, own, 3)) {
            if ((splen && !own[0]) || !own[1] || !own[2])
                for (int i = 0; i < 3; i++)
                    free(own[i]);
            s->rc = hy_error_set(&s->err, HY_ENOMEM, "no memory to send slice %u", k);
        } else /* slice 0 is this rank's own: a message to itself crosses no rank */
            span_sent(s, k, k ? sizeof h + splen + lens[1] + lens[2] : 0);
    }
    s->next = m->span_list;
    m->span_list = s;
    *token = s->token;
    m->holding++;
    pthread_mutex_unlock(&m->mu);
    return 0;
}

/* The XBUCKET header of slice sl's bucket j: `count` keys, or the slice's failure rc. */
static struct wire xbucket_header(const struct slice *sl, unsigned j, uint64_t count, int rc,
                                  const char *why)
{
    size_t esize = hy_dtype_size(sl->dtype);
    struct wire h = {.w = {sl->token, (uint64_t)(uint32_t)sl->origin | (uint64_t)sl->ranks << 32,
                           (uint64_t)sl->backend | (uint64_t)sl->threads << 32,
                           (uint64_t)sl->mode | (uint64_t)sl->nogil << 32,
                           (uint64_t)sl->dtype | (uint64_t)j << 32,
                           sl->k | (uint64_t)(uint32_t)rc << 32, count, count * esize,
                           sl->out_at, rc ? 0 : strlen(sl->out_path)}};
    snprintf(h.text, sizeof h.text, "%s", why ? why : "");
    return h;
}

/* Every bucket's rank is told that this slice failed, so that none waits for it. */
static void fail_slice(hy_mpi *m, const struct slice *sl, int rc, const char *why)
{
    pthread_mutex_lock(&m->mu);
    for (unsigned j = 0; j < sl->ranks; j++) {
        struct wire h = xbucket_header(sl, j, 0, rc, why);
        send_streams(m, (int)((sl->origin + (int)j) % m->size), TAG_XBUCKET, &h, NULL, NULL,
                     NULL, 0);
    }
    pthread_mutex_unlock(&m->mu);
}

/* Keys a slice's partition handles between two keep_alive calls: about 20 ms of work. */
#define SPAN_STEP ((uint64_t)1 << 22)

/* The `count` elements at a (global indices first..) into one buffer per bucket: cnt[j]
 * keys at b[j] (NULL when empty). Step by step, answering pings between steps. */
static int partition(hy_mpi *m, const struct slice *sl, char *a, uint64_t first,
                     uint64_t count, uint64_t *cnt, char **b)
{
    size_t esize = hy_dtype_size(sl->dtype);
    struct hy_stree *t = hy_stree_new(sl->sp, sl->ranks - 1, sl->dtype);
    uint16_t *ids = hy_mpi_buf_alloc(count * sizeof *ids);
    uint64_t *pos = calloc(sl->ranks, sizeof *pos);
    int rc = t && ids && pos ? 0 : HY_ENOMEM;
    for (uint64_t i = 0; !rc && i < count; i += SPAN_STEP) {
        keep_alive(m);
        hy_span_count(a + i * esize, count - i < SPAN_STEP ? count - i : SPAN_STEP, sl->dtype,
                      first + i, t, cnt, ids + i);
    }
    for (unsigned j = 0; !rc && j < sl->ranks; j++)
        if (j != sl->k && cnt[j] && !(b[j] = hy_mpi_buf_alloc(cnt[j] * esize)))
            rc = HY_ENOMEM;
    /* The slice's own bucket (this rank's) stays at the front of a, written behind the
     * reads (hy_span_scatter): no buffer and no copy for it. */
    b[sl->k] = a;
    for (uint64_t i = 0; !rc && i < count; i += SPAN_STEP) {
        keep_alive(m);
        hy_span_scatter(a + i * esize, count - i < SPAN_STEP ? count - i : SPAN_STEP, esize,
                        ids + i, sl->ranks, b, pos);
    }
    b[sl->k] = NULL;
    free(t);
    hy_mpi_buf_free(ids);
    free(pos);
    return rc;
}

/* The bytes of the block a files span's rank reads its slice of `slice` keys into, and then
 * (collect_room) gathers its bucket in, with the output's path after it: room for a slice
 * and a tenth and 64 Ki keys more, as splitters from the sample make each bucket a slice's
 * size within about 2% (docs/mpi.md). Rounded up to 64 Ki keys, so that slices a key apart
 * ask for the same size: the slice's block, kept when it is given back, is then the one
 * the bucket takes, already faulted in (a block of another size would be faulted in afresh
 * for every span once the kept memory is full). SIZE_MAX where it cannot be had. */
static size_t slice_block(uint64_t slice, size_t esize)
{
    const uint64_t round = (uint64_t)1 << 16;
    uint64_t keys = slice + slice / 10 + round;
    keys = (keys + round - 1) / round * round;
    if (keys > (SIZE_MAX - HY_MPI_PATH_MAX - 1) / esize)
        return SIZE_MAX;
    return (size_t)keys * esize + HY_MPI_PATH_MAX + 1;
}

static struct collect *find_collect(hy_mpi *m, int origin, uint64_t token, unsigned j,
                                    unsigned ranks, const struct wire *w);
static void take_part(hy_mpi *m, struct collect *c, unsigned k, const uint64_t *cnt,
                      uint64_t count, void *keys, char **path);

/* Hands slice sl's own bucket, at the front of *a (a block of `block` bytes), to this rank's
 * collection of that bucket, with no message: *a becomes the collection's buffer, its part
 * already in place, or (when another part came first and made one) a part kept aside.
 * *a is then NULL. False, with *a untouched, when no collection could be made. Under the
 * lock. */
static bool collect_own(hy_mpi *m, const struct slice *sl, const struct wire *h, char **a,
                        size_t block, const uint64_t *cnt)
{
    struct collect *c = find_collect(m, sl->origin, sl->token, sl->k, sl->ranks, h);
    char *path = copy_text(sl->out_path);
    if (!c || !path) {
        free(path);
        return false;
    }
    if (c->seen[sl->k]) { /* not from this binary's slices: drop it as on_xbucket would */
        free(path);
        hy_mpi_buf_free(*a);
        *a = NULL;
        return true;
    }
    size_t esize = hy_dtype_size(sl->dtype), bytes = (size_t)cnt[sl->k] * esize;
    void *aside = *a;
    if (!c->buf && !c->rc) {
        c->buf = *a;
        c->at = bytes;
        c->cap = block - HY_MPI_PATH_MAX - 1;
        if (m->test_collect_room && m->test_collect_room < c->cap / esize)
            c->cap = (size_t)m->test_collect_room * esize;
        c->cap = c->cap < c->at ? c->at : c->cap;
        aside = NULL;
    }
    *a = NULL;
    take_part(m, c, sl->k, cnt, cnt[sl->k], aside, &path);
    free(path);
    return true;
}

/* Reads slice sl->k, partitions it and sends each bucket's rank its part. */
static int run_slice(hy_mpi *m, const struct slice *sl, hy_error *err)
{
    size_t esize = hy_dtype_size(sl->dtype);
    uint64_t first, count;
    hy_mpi_split(sl->n, sl->ranks, sl->k, &first, &count);
    size_t block = slice_block(count, esize);
    char *a = block < SIZE_MAX ? hy_mpi_buf_alloc(block) : NULL;
    char **b = calloc(sl->ranks, sizeof *b);
    uint64_t *cnt = calloc(sl->ranks, sizeof *cnt);
    int rc = 0;
    if (!a || !b || !cnt) {
        rc = hy_error_set(err, HY_ENOMEM, "rank %d: no memory for its slice of %s", m->rank,
                          sl->in_path);
        goto out;
    }
    struct fileop f = {.op = HY_MPI_FILE_READ, .path = sl->in_path,
                       .offset = sl->in_at + first * esize, .buf = a, .len = count * esize,
                       .rank = m->rank, .m = m};
    uint64_t t0 = now_ns();
    /* For tests only (tests/mpi): the slice's read takes this much longer, answering pings
     * meanwhile as a long read does between its chunks. */
    while (now_ns() - t0 < m->test_slice_pause_ns) {
        usleep(10000);
        keep_alive(m);
    }
    if (count)
        file_run(&f);
    struct slicestat *st = calloc(1, sizeof *st); /* without it, the figures are 0 */
    if (st) {
        *st = (struct slicestat){.origin = sl->origin, .token = sl->token,
                                 .io_ns = now_ns() - t0, .next = m->slicestats};
        m->slicestats = st;
    }
    if (f.rc) {
        *err = f.err;
        rc = f.rc;
        goto out;
    }
    if (partition(m, sl, a, first, count, cnt, b)) {
        rc = hy_error_set(err, HY_ENOMEM, "rank %d: no memory for its slice's buckets",
                          m->rank);
        goto out;
    }
    pthread_mutex_lock(&m->mu);
    for (unsigned j = 0; j < sl->ranks; j++) {
        struct wire h = xbucket_header(sl, j, cnt[j], 0, NULL);
        if (j == sl->k) {
            if (collect_own(m, sl, &h, &a, block, cnt))
                continue;
            b[j] = a; /* no collection to take it: it goes to this rank as a peer's would */
            a = NULL;
        }
        void *own[3] = {malloc(sl->ranks * sizeof *cnt), b[j], copy_text(sl->out_path)};
        if (own[0])
            memcpy(own[0], cnt, sl->ranks * sizeof *cnt);
        const void *bufs[3] = {own[0], own[1], own[2]};
        size_t lens[3] = {own[0] ? sl->ranks * sizeof *cnt : 0, cnt[j] * esize, h.w[9]};
        b[j] = NULL; /* taken, sent or not */
        bool made = own[0] && own[2];
        if (st && made && (sl->origin + (int)j) % m->size != m->rank)
            st->bytes += sizeof h + lens[0] + lens[1] + lens[2];
        if (!made)
            for (int i = 0; i < 3; i++)
                hy_mpi_buf_free(own[i]);
        if (!made ||
            !send_streams(m, (int)((sl->origin + (int)j) % m->size), TAG_XBUCKET, &h, bufs,
                          lens, own, 3)) {
            /* The collection of bucket j waits for this slice: tell it the slice failed. */
            struct wire e = xbucket_header(sl, j, 0, HY_ENOMEM, "no memory to send a bucket");
            send_streams(m, (int)((sl->origin + (int)j) % m->size), TAG_XBUCKET, &e, NULL,
                         NULL, NULL, 0);
        }
    }
    pthread_mutex_unlock(&m->mu);
out:
    for (unsigned j = 0; b && j < sl->ranks; j++)
        hy_mpi_buf_free(b[j]);
    free(b);
    free(cnt);
    hy_mpi_buf_free(a);
    return rc;
}

/* A SLICE from the asking rank `from`: its three streams taken, then the slice run here. */
static void on_slice(hy_mpi *m, int from, const struct wire *w)
{
    struct slice sl = {.origin = from, .token = w->w[0], .k = (unsigned)w->w[1],
                       .ranks = (unsigned)(w->w[1] >> 32), .backend = (int)(uint32_t)w->w[2],
                       .threads = (unsigned)(w->w[2] >> 32), .mode = (int)(uint32_t)w->w[3],
                       .nogil = (int)(w->w[3] >> 32), .dtype = (int)w->w[4], .n = w->w[5],
                       .in_at = w->w[6], .out_at = w->w[7]};
    size_t inlen = (size_t)w->w[8], outlen = (size_t)w->w[9];
    bool sane = sl.ranks >= 1 && sl.ranks <= (unsigned)m->size && sl.k < sl.ranks &&
                hy_dtype_size(sl.dtype) && inlen && outlen && inlen <= HY_MPI_PATH_MAX &&
                outlen <= HY_MPI_PATH_MAX;
    size_t splen = sane ? (size_t)(sl.ranks - 1) * sizeof *sl.sp : 0;
    if (!sane) { /* nothing here can be trusted to say where its buckets go */
        drain_data(m, from, inlen <= HY_MPI_PATH_MAX ? inlen : 0);
        pthread_mutex_lock(&m->mu);
        answer_sort_error(m, from, sl.token, 0, HY_EINVAL, "a broken slice of a files span", 0,
                          0);
        pthread_mutex_unlock(&m->mu);
        return;
    }
    sl.sp = malloc(splen ? splen : 1);
    sl.in_path = calloc(1, inlen + 1);
    sl.out_path = calloc(1, outlen + 1);
    hy_error err = {0};
    int rc = 0;
    if (!sl.sp || !sl.in_path || !sl.out_path) {
        drain_data(m, from, splen);
        drain_data(m, from, inlen);
        drain_data(m, from, outlen);
        rc = hy_error_set(&err, HY_ENOMEM, "rank %d: no memory for a slice", m->rank);
    } else if (recv_data(m, from, (char *)sl.sp, splen) != MPI_SUCCESS ||
               recv_data(m, from, sl.in_path, inlen) != MPI_SUCCESS ||
               recv_data(m, from, sl.out_path, outlen) != MPI_SUCCESS) {
        rc = hy_error_set(&err, HY_ESYS, "rank %d: receiving a slice failed", m->rank);
    } else {
        rc = run_slice(m, &sl, &err);
    }
    if (rc)
        fail_slice(m, &sl, rc, err.msg);
    free(sl.sp);
    free(sl.in_path);
    free(sl.out_path);
}

/* The collection of bucket j of span (origin, token), made when its first part comes. */
static struct collect *find_collect(hy_mpi *m, int origin, uint64_t token, unsigned j,
                                    unsigned ranks, const struct wire *w)
{
    for (struct collect *c = m->collects; c; c = c->next)
        if (c->origin == origin && c->token == token && c->j == j)
            return c->ranks == ranks ? c : NULL;
    struct collect *c = calloc(1, sizeof *c);
    char *arrays = calloc(ranks, sizeof(void *) + sizeof(uint64_t) + sizeof(bool));
    if (!c || !arrays) {
        free(c);
        free(arrays);
        return NULL;
    }
    *c = (struct collect){.origin = origin, .token = token, .j = j, .ranks = ranks,
                          .backend = (int)(uint32_t)w->w[2], .threads = (unsigned)(w->w[2] >> 32),
                          .mode = (int)(uint32_t)w->w[3], .nogil = (int)(w->w[3] >> 32),
                          .dtype = (int)(uint32_t)w->w[4], .out_at = w->w[8],
                          .keys = (void **)(void *)arrays, .next = m->collects};
    c->count = (uint64_t *)(void *)(arrays + ranks * sizeof(void *));
    c->seen = (bool *)(arrays + ranks * (sizeof(void *) + sizeof(uint64_t)));
    m->collects = c;
    return c;
}

static void free_collect(struct collect *c)
{
    for (unsigned k = 0; k < c->ranks; k++)
        hy_mpi_buf_free(c->keys[k]);
    hy_mpi_buf_free(c->buf);
    free(c->keys); /* the one allocation of keys, count and seen */
    free(c->path);
    free(c);
}

/* Every slice's part of bucket c->j came: the keys to this rank's daemon as a sort part
 * whose run it writes at its place (sort_done), or the failure (or an empty bucket's
 * success) straight to the asking rank's span. Under the lock. */
static void finish_collect(hy_mpi *m, struct collect *c)
{
    size_t esize = hy_dtype_size(c->dtype), plen = c->path ? strlen(c->path) : 0;
    uint64_t total = 0;
    bool aside = false;
    for (unsigned k = 0; k < c->ranks; k++) {
        total += c->count[k];
        aside |= c->keys[k] != NULL;
    }
    struct in *p = NULL;
    char *data = NULL;
    /* Every part in buf (the rule): buf is the sort part's array as it stands, with room
     * for the path after the keys (collect_room). */
    bool whole = !aside && c->buf && c->at == total * esize;
    if (!c->rc && total && c->path && (p = malloc(sizeof *p)) != NULL) {
        if (whole) {
            data = c->buf;
            c->buf = NULL;
        } else if ((data = hy_mpi_buf_alloc(total * esize + plen + 1)) != NULL) {
            size_t at = c->at;
            if (at)
                memcpy(data, c->buf, at);
            for (unsigned k = 0; k < c->ranks; k++)
                if (c->keys[k]) {
                    memcpy(data + at, c->keys[k], c->count[k] * esize);
                    at += c->count[k] * esize;
                }
        }
    }
    if (!c->rc && total && !data) {
        free(p);
        p = NULL;
        c->rc = HY_ENOMEM;
        snprintf(c->why, sizeof c->why, "no memory to gather bucket %u", c->j);
    }
    if (c->rc || !total) {
        free(p);
        hy_mpi_buf_free(data);
        uint64_t io = 0, sent = 0;
        take_slicestat(m, c->origin, c->token, &io, &sent);
        sent += c->origin != m->rank ? sizeof(struct wire) : 0;
        answer_sort_error(m, c->origin, c->token, c->j, c->rc, c->why, io,
                          sent); /* rc 0: written */
        return;
    }
    memcpy(data + total * esize, c->path, plen + 1);
    p->part = (hy_mpi_part){.kind = HY_MPI_SORT, .origin = c->origin, .token = c->token,
                            .backend = c->backend, .threads = c->threads, .mode = c->mode,
                            .nogil = c->nogil, .dtype = c->dtype, .bucket = c->j,
                            .count = total, .data = data, .out_path = data + total * esize,
                            .out_offset = c->out_at + c->before * esize};
    enqueue_in(m, p);
}

/* Records slice k's part of c's bucket: with its counts cnt, `count` keys (in c's buffer
 * already, or `keys`, kept aside, which c then owns) and the output's path (*path, taken
 * when c has none); without them, a failure (c->rc says it). The last part finishes c and
 * frees it. Under the lock. */
static void take_part(hy_mpi *m, struct collect *c, unsigned k, const uint64_t *cnt,
                      uint64_t count, void *keys, char **path)
{
    c->seen[k] = true;
    c->got++;
    if (cnt) {
        for (unsigned b = 0; b < c->j; b++)
            c->before += cnt[b];
        c->keys[k] = keys;
        c->count[k] = count;
        if (!c->path) {
            c->path = *path;
            *path = NULL;
        }
    }
    if (c->got == c->ranks) {
        finish_collect(m, c);
        for (struct collect **l = &m->collects; *l; l = &(*l)->next)
            if (*l == c) {
                *l = c->next;
                break;
            }
        free_collect(c);
    }
}

/* Where in c's buffer the `bytes` of slice part k go, or NULL: they are kept aside then. The
 * buffer is made at the first part with keys, a slice_block for the sending slice's size
 * (its counts add up to it; slices differ by at most one key), so a part falls outside
 * only for a bucket far past its share. Under the lock. */
static char *collect_room(hy_mpi *m, struct collect *c, const uint64_t *cnt, unsigned ranks,
                          size_t bytes)
{
    if (!bytes || c->rc)
        return NULL;
    if (!c->buf) {
        uint64_t slice = 0;
        for (unsigned b = 0; b < ranks; b++)
            slice += cnt[b];
        size_t esize = hy_dtype_size(c->dtype), block = slice_block(slice, esize);
        if (block == SIZE_MAX || !(c->buf = hy_mpi_buf_alloc(block)))
            return NULL; /* every part aside, as if the room were full */
        c->cap = block - HY_MPI_PATH_MAX - 1;
        if (m->test_collect_room && m->test_collect_room < c->cap / esize)
            c->cap = (size_t)m->test_collect_room * esize;
    }
    if (c->at > c->cap || bytes > c->cap - c->at)
        return NULL;
    char *at = c->buf + c->at;
    c->at += bytes;
    return at;
}

/* A slice's part of bucket j (or its failure), for this rank's collection of it: its three
 * streams are the slice's bucket counts, its keys for bucket j (into the collection's
 * buffer where they fit) and the output's path. */
static void on_xbucket(hy_mpi *m, int from, const struct wire *w)
{
    int origin = (int)(uint32_t)w->w[1], rc = (int)(int32_t)(w->w[5] >> 32);
    unsigned ranks = (unsigned)(w->w[1] >> 32), j = (unsigned)(w->w[4] >> 32),
             k = (unsigned)(uint32_t)w->w[5];
    size_t esize = hy_dtype_size((int)(uint32_t)w->w[4]);
    if (ranks < 1 || ranks > (unsigned)m->size || j >= ranks || k >= ranks || origin < 0 ||
        origin >= m->size || !esize || w->w[7] != w->w[6] * esize)
        return; /* not from this binary: its span's timeout ends the wait */
    size_t bytes = (size_t)w->w[7], plen = (size_t)w->w[9];
    uint64_t *cnt = NULL;
    char *keys = NULL, *path = NULL, *place = NULL;
    const char *why = w->text;
    if (!rc) {
        cnt = malloc(ranks * sizeof *cnt);
        path = plen <= HY_MPI_PATH_MAX ? calloc(1, plen + 1) : NULL;
        if (!cnt || !path) {
            drain_data(m, from, ranks * sizeof *cnt);
            drain_data(m, from, bytes);
            drain_data(m, from, plen <= HY_MPI_PATH_MAX ? plen : 0);
            rc = HY_ENOMEM;
        } else if (recv_data(m, from, (char *)cnt, ranks * sizeof *cnt) != MPI_SUCCESS) {
            rc = HY_ESYS;
        }
        why = ""; /* the sentence below says it */
    }
    pthread_mutex_lock(&m->mu);
    struct collect *c = find_collect(m, origin, w->w[0], j, ranks, w);
    bool fresh = c && !c->seen[k];
    if (!rc && fresh && cnt[j] == w->w[6])
        place = collect_room(m, c, cnt, ranks, bytes);
    pthread_mutex_unlock(&m->mu);
    /* Only this thread adds to or finishes collections: place stays c's until it is
     * recorded below. */
    if (!rc && bytes && !place && !(keys = hy_mpi_buf_alloc(bytes))) {
        drain_data(m, from, bytes);
        drain_data(m, from, plen);
        rc = HY_ENOMEM;
    } else if (!rc && (recv_data(m, from, place ? place : keys, bytes) != MPI_SUCCESS ||
                       recv_data(m, from, path, plen) != MPI_SUCCESS)) {
        rc = HY_ESYS;
    }
    pthread_mutex_lock(&m->mu);
    if (fresh) {
        bool good = !rc && cnt[j] == w->w[6];
        if (rc && !c->rc) {
            c->rc = rc;
            snprintf(c->why, sizeof c->why, "%s",
                     why[0] ? why : "receiving a bucket from another rank failed");
        } else if (!rc && !good && !c->rc) {
            c->rc = HY_EINTERNAL;
            snprintf(c->why, sizeof c->why, "rank %d sent a bucket its counts disown", from);
        }
        take_part(m, c, k, good ? cnt : NULL, w->w[6], good ? keys : NULL, &path);
        keys = good ? NULL : keys;
    }
    pthread_mutex_unlock(&m->mu);
    free(cnt);
    hy_mpi_buf_free(keys);
    free(path);
}
