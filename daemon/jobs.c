/* daemon/jobs: the executors, their fair queues and the comparison gate. */
#include "jobs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/* One executor: a thread, its queue (a heap on the fairness tag), the job it runs. */
/* Kept memfd mappings per executor: a client's array and its staging buffer, for two or three
 * clients, within a bound on the memory they can keep alive after their clients let go. */
#define KEPT_MAX 4
#define KEPT_BYTES_MAX ((size_t)1 << 30)

struct exec {
    struct hy_sched *s;
    unsigned index;
    int device; /* -1: the CPU engine */
    pthread_t thread;
    bool started;
    pthread_cond_t cond;
    hy_job **heap;
    size_t n, cap;
    uint64_t vclock; /* the tag of the job it started last: fairness's virtual time */
    hy_job *current;
    /* Mappings kept for their clients' next jobs (hy_mapping), the least recently used given
     * up first. Changed under mu; unmapped outside it, by the executor only, so the event
     * loop never waits for a munmap. A slot whose client has gone has owner 0 until then. */
    hy_mapping kept[KEPT_MAX];
    uint64_t kept_used[KEPT_MAX], uses;
    bool drop_kept;      /* a slot's client has gone: unmap it */
    /* An fds array's elements, read from the client's file: kept between jobs (up to
     * HY_KEEP_BYTES) so that the next one reads into pages already in memory rather than
     * fresh ones, which cost a fault each and on this VM sometimes twenty times that. */
    void *buf;
    size_t buf_bytes;
    bool current_gone;   /* the running job's client has gone: keep nothing after it */
};

struct hy_sched {
    pthread_mutex_t mu;
    hy_engines e; /* e.history is thread-safe on its own: recorded into without mu */
    unsigned nexec;
    struct exec *ex;
    bool stop;
    /* The gate: device executors run while no comparison holds the machine; a comparison
     * waits for running device jobs to end and keeps new ones from starting. */
    pthread_cond_t gate;
    unsigned device_jobs;
    bool excl_wanted, excl_active;
    hy_job *done_head, *done_tail;
    int notify_fd;
    uint64_t seq;
    hy_sched_stats stats;
};

/* ---- the queue: a binary heap on (tag, seq) ---- */

static bool before(const hy_job *a, const hy_job *b)
{
    return a->tag != b->tag ? a->tag < b->tag : a->seq < b->seq;
}

static void heap_set(struct exec *x, size_t i, hy_job *j)
{
    x->heap[i] = j;
    j->heap_i = i;
}

static void sift_up(struct exec *x, size_t i)
{
    hy_job *j = x->heap[i];
    while (i > 0 && before(j, x->heap[(i - 1) / 2])) {
        heap_set(x, i, x->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(x, i, j);
}

static void sift_down(struct exec *x, size_t i)
{
    hy_job *j = x->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= x->n)
            break;
        if (c + 1 < x->n && before(x->heap[c + 1], x->heap[c]))
            c++;
        if (!before(x->heap[c], j))
            break;
        heap_set(x, i, x->heap[c]);
        i = c;
    }
    heap_set(x, i, j);
}

static void heap_remove(struct exec *x, size_t i)
{
    HY_ASSERT(i < x->n && x->heap[i]->heap_i == i);
    x->n--;
    if (i == x->n)
        return;
    heap_set(x, i, x->heap[x->n]);
    sift_down(x, i);
    sift_up(x, x->heap[i]->heap_i);
}

/* ---- running one job ---- */

static int progress(void *ctx, uint64_t done, uint64_t total)
{
    hy_job *j = ctx;
    atomic_store_explicit(&j->done, done, memory_order_relaxed);
    atomic_store_explicit(&j->total, total, memory_order_relaxed);
    return atomic_load_explicit(&j->cancel, memory_order_relaxed) != HY_CANCEL_NONE;
}

/* A successful row's timed runs (warm-ups are not passed in) into the history, in its cell
 * (hy_job_history_key, auto.h: some rows keep none). */
static void record_row(hy_history *h, const hy_job_spec *sp, const hy_row_spec *p,
                       const hy_result_row *row, const uint64_t *times)
{
    hy_history_key k;
    /* A sort of files: its time includes the reading and writing, not the sort's alone. */
    if (!h || sp->array == HY_ARRAY_FILES || !hy_job_history_key(sp, p, row->threads, &k))
        return;
    for (unsigned i = 0; i < sp->repeat; i++)
        hy_history_record(h, &k, sp->n, times[i]);
}

/* Runs every row of the job's plan, one after the other, into j->rows. */
static void execute(struct hy_sched *s, hy_job *j)
{
    const hy_job_spec *sp = &j->spec;
    bool sort = sp->kind->work == HY_JOB_SORT;
    hy_row_spec plan[HY_PLAN_MAX];
    unsigned nplan = hy_job_plan(sp, plan);
    HY_ASSERT(nplan >= 1 && nplan <= HY_PLAN_MAX);
    void *pristine = NULL;
    j->rows = calloc(nplan, sizeof *j->rows);
    if (!j->rows) {
        j->rc = hy_error_set(&j->err, HY_ENOMEM, "no memory for %u result rows", nplan);
        return;
    }
    /* Every run of a sort but the first starts again from the input, kept aside here. */
    if (sort && sp->array_bytes > 0 && sp->array != HY_ARRAY_FILES &&
        (nplan > 1 || sp->warmup + sp->repeat > 1)) {
        pristine = malloc(sp->array_bytes);
        if (!pristine) {
            j->rc = hy_error_set(&j->err, HY_ENOMEM,
                                 "no memory to keep a %zu-byte input for repeated runs",
                                 sp->array_bytes);
            return;
        }
        memcpy(pristine, j->array, sp->array_bytes);
    }
    hy_run_io io = {.array = j->array, .array_fd = j->array_mapped ? j->array_fd : -1,
                    .pristine = pristine, .progress = progress, .progress_ctx = j};
    j->rc = 0;
    uint64_t times[HY_SPEC_MAX_REPEAT]; /* each timed run of a row, for the history */
    for (unsigned r = 0; r < nplan && j->rc == 0; r++) {
        const hy_row_spec *p = &plan[r];
        HY_ASSERT(p->backend >= 1 && p->backend <= HY_BACKEND_COUNT);
        atomic_store(&j->row, r);
        uint64_t busy = 0;
        /* Predicted before it runs, so that the row compares a prediction with what
         * followed; auto's own is the one it chose by. */
        uint64_t predicted = sp->auto_flags ? sp->auto_predicted_ns
                                            : hy_job_predict_row(s->e.history, sp, p);
        j->rc = hy_runner_run_times(&s->e, sp, p, &io, &j->rows[r], &busy, times, &j->span,
                                    &j->err);
        j->busy_ns[p->backend - 1] += busy;
        if (j->rc == 0) {
            j->rows[r].predicted_ns = predicted;
            j->rows[r].flags |= (uint16_t)sp->auto_flags;
            j->configs[p->backend - 1]++;
            j->nrows = r + 1;
            /* The invariant a comparison leans on: every backend counts the same hits. */
            if (r > 0 && !sort && j->rows[r].hits != j->rows[0].hits)
                j->rc = hy_error_set(&j->err, HY_EINTERNAL,
                                     "%s counted %llu hits where serial counted %llu",
                                     hy_backend_name(p->backend),
                                     (unsigned long long)j->rows[r].hits,
                                     (unsigned long long)j->rows[0].hits);
            if (j->rc == 0)
                record_row(s->e.history, sp, p, &j->rows[r], times);
        }
    }
    free(pristine);
}

/* A memfd array is mapped here, on the executor, populated in one call (the client wrote
 * the pages: taking them in one go costs far less than a fault per page in the sort). The
 * fd stays open while mapped: the process backend's shm transport hands it to its workers. */
static void release_map(hy_mapping *m)
{
    if (m->addr)
        hy_memfd_unmap(m->addr, m->bytes);
    *m = (hy_mapping){0};
}

static bool same_memfd(const hy_mapping *a, const hy_mapping *b)
{
    return a->owner && a->owner == b->owner && a->dev == b->dev && a->ino == b->ino;
}

void hy_job_allow_keep(hy_job *j, uint64_t owner)
{
    struct stat st;
    if (owner && j->array_fd >= 0 && fstat(j->array_fd, &st) == 0)
        j->map = (hy_mapping){.owner = owner, .dev = st.st_dev, .ino = st.st_ino};
}

/* Maps the job's memfd, unless j->map already holds this client's mapping of it (the
 * executor's kept one, handed over). */
static int map_array(hy_job *j)
{
    size_t bytes = j->spec.array_bytes;
    if (j->array_fd < 0 || bytes == 0)
        return 0;
    if (j->map.addr && j->map.bytes >= bytes) {
        j->array = j->map.addr;
        j->array_mapped = true;
        return 0;
    }
    if (j->map.addr) { /* kept, but shorter than this job's array: map it again */
        hy_memfd_unmap(j->map.addr, j->map.bytes);
        j->map.addr = NULL;
    }
    j->rc = hy_memfd_map(j->array_fd, bytes, &j->array, &j->err);
    j->array_mapped = j->rc == 0;
    if (j->array_mapped && j->map.owner) {
        j->map.addr = j->array;
        j->map.bytes = bytes;
    }
    return j->rc;
}

/* An fds array's reads and writes go in steps with a cancel check between them: 8 MiB is
 * 1-3 ms of copying here, short enough for a cancel, long enough that the calls cost
 * nothing. The files are on a local file system (hy_file_array_check), so no step waits on
 * another process. */
#define FILE_STEP ((size_t)8 << 20)

static int stop_asked(hy_job *j)
{
    if (atomic_load_explicit(&j->cancel, memory_order_relaxed) != HY_CANCEL_NONE)
        return hy_error_set(&j->err, HY_ECANCELED, "cancelled");
    return 0;
}

/* The array from the input at its position; the fds' positions do not move. */
static int file_read(hy_job *j, void *buf, size_t bytes)
{
    const hy_file_array *fa = &j->files;
    for (size_t done = 0; done < bytes;) {
        if (stop_asked(j))
            return HY_ECANCELED;
        size_t step = bytes - done < FILE_STEP ? bytes - done : FILE_STEP;
        ssize_t r = pread(fa->in, (char *)buf + done, step, (off_t)(fa->in_off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return hy_error_set(&j->err, HY_ESYS, "reading the input file at byte %" PRIu64
                                ": %s", fa->in_off + done, strerror(errno));
        if (r == 0) /* checked long enough at SUBMIT: someone has truncated it since */
            return hy_error_set(&j->err, HY_EINVAL, "the input file ended %zu bytes into the "
                                "array's %zu; was it truncated?", done, bytes);
        done += (size_t)r;
    }
    return 0;
}

/* The sorted array at the output's position. Each step's writeback starts at once: a client
 * that makes the file durable (hybridctl fsyncs before its rename) then waits for the last
 * step only (80 MB: 35-56 ms of fsync cut to 2-16 ms, docs/benchmarks.md). */
static int file_write(hy_job *j, const void *buf, size_t bytes)
{
    const hy_file_array *fa = &j->files;
    for (size_t done = 0; done < bytes;) {
        if (stop_asked(j))
            return HY_ECANCELED;
        size_t step = bytes - done < FILE_STEP ? bytes - done : FILE_STEP;
        off_t at = (off_t)(fa->out_off + done);
        ssize_t w = pwrite(fa->out, (const char *)buf + done, step, at);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return hy_error_set(&j->err, HY_ESYS, "writing the output file at byte %lld: %s",
                                (long long)at, w < 0 ? strerror(errno) : "nothing written");
        (void)sync_file_range(fa->out, at, w, SYNC_FILE_RANGE_WRITE); /* only a hint */
        done += (size_t)w;
    }
    return 0;
}

/* An fds array: its elements read from the client's input file into the executor's buffer,
 * grown when too small (on huge pages where the kernel gives them, as the engine's scratch:
 * the sort's passes then miss the TLB far less than on a memfd's 4 KiB pages). */
static int read_files(struct exec *x, hy_job *j)
{
    size_t bytes = j->spec.array_bytes;
    if (j->spec.array != HY_ARRAY_FDS || bytes == 0)
        return 0;
    if (x->buf_bytes < bytes) {
        free(x->buf);
        x->buf_bytes = 0;
        if (!(x->buf = hy_huge_alloc(bytes, &x->buf_bytes)))
            return j->rc = hy_error_set(&j->err, HY_ENOMEM, "no memory for a %zu-byte array",
                                        bytes);
    }
    j->array = x->buf;
    j->array_borrowed = true;
    return j->rc = file_read(j, j->array, bytes);
}

/* A sorted fds array goes into the client's output file before the answer. */
static void write_files(hy_job *j)
{
    size_t bytes = j->spec.array_bytes;
    if (j->rc == 0 && j->spec.array == HY_ARRAY_FDS && bytes > 0)
        j->rc = file_write(j, j->array, bytes);
}

/* The protocol promises the memfd is closed, and unless its client allows the mapping to be
 * kept (then *keep gets it, for the executor to keep or drop) unmapped, before the answer. */
static void unmap_array(hy_job *j, hy_mapping *keep)
{
    if (j->files.in >= 0) /* an fds array's files likewise */
        close(j->files.in);
    if (j->files.out >= 0)
        close(j->files.out);
    j->files.in = j->files.out = -1;
    if (j->array_borrowed) {
        j->array = NULL;
        j->array_borrowed = false;
    }
    if (j->array_fd >= 0) {
        close(j->array_fd);
        j->array_fd = -1;
    }
    if (j->map.addr)
        *keep = j->map; /* a kept mapping handed over, used by the job or not */
    else if (j->array_mapped)
        hy_memfd_unmap(j->array, j->spec.array_bytes);
    j->map.addr = NULL;
    if (j->array_mapped) {
        j->array = NULL;
        j->array_mapped = false;
    }
}

/* Under mu, at a job's start: hands the job a kept mapping that is this client's mapping of
 * this memfd. */
static void take_kept(struct exec *x, hy_job *j)
{
    for (unsigned i = 0; j->map.owner && i < KEPT_MAX; i++)
        if (x->kept[i].addr && same_memfd(&x->kept[i], &j->map)) {
            j->map = x->kept[i];
            x->kept[i] = (hy_mapping){0};
            return;
        }
}

/* Under mu, at a job's end: keeps its mapping for the client's next job unless the client has
 * gone, giving up the least recently used ones for room; moves what is to be unmapped,
 * outside mu, to out[] (this mapping, or those given up) and returns how many. */
static unsigned keep_after(struct exec *x, hy_mapping m, hy_mapping out[KEPT_MAX + 1])
{
    unsigned n = 0;
    bool keep = m.addr && !x->current_gone && m.bytes <= KEPT_BYTES_MAX;
    x->current_gone = false;
    if (!keep) {
        if (m.addr)
            out[n++] = m;
        return n;
    }
    for (;;) {
        size_t held = 0;
        unsigned lru = KEPT_MAX, free_slot = KEPT_MAX;
        for (unsigned i = 0; i < KEPT_MAX; i++) {
            if (!x->kept[i].addr) {
                free_slot = i;
                continue;
            }
            held += x->kept[i].bytes;
            if (lru == KEPT_MAX || x->kept_used[i] < x->kept_used[lru])
                lru = i;
        }
        if (free_slot < KEPT_MAX && held + m.bytes <= KEPT_BYTES_MAX) {
            x->kept[free_slot] = m;
            x->kept_used[free_slot] = ++x->uses;
            return n;
        }
        out[n++] = x->kept[lru];
        x->kept[lru] = (hy_mapping){0};
    }
}

void hy_sched_forget(hy_sched *s, uint64_t owner)
{
    pthread_mutex_lock(&s->mu);
    for (unsigned i = 0; i < s->nexec; i++) {
        struct exec *x = &s->ex[i];
        for (unsigned k = 0; k < KEPT_MAX; k++)
            if (x->kept[k].addr && x->kept[k].owner == owner) {
                x->kept[k].owner = 0; /* matches no job from now on */
                x->drop_kept = true;
                pthread_cond_signal(&x->cond);
            }
        if (x->current && x->current->map.owner == owner)
            x->current_gone = true;
    }
    pthread_mutex_unlock(&s->mu);
}

/* Under mu: unmaps, with mu let go, the kept mappings whose clients have gone. */
static void drop_gone(struct exec *x)
{
    hy_mapping gone[KEPT_MAX];
    unsigned n = 0;
    for (unsigned k = 0; k < KEPT_MAX; k++)
        if (x->kept[k].addr && x->kept[k].owner == 0) {
            gone[n++] = x->kept[k];
            x->kept[k] = (hy_mapping){0};
        }
    x->drop_kept = false;
    pthread_mutex_unlock(&x->s->mu);
    for (unsigned k = 0; k < n; k++)
        release_map(&gone[k]);
    pthread_mutex_lock(&x->s->mu);
}

/* A comparison, and a job on a backend that spans the machine (hybrid), hold every engine
 * while they run: device executors wait for them, and they for running device jobs. */
static bool takes_machine(const hy_job *j)
{
    return j->spec.kind->compare || hy_backend_get(j->spec.backend)->machine;
}

/* Under mu: the job is the executor's now; one that takes the machine first waits for it. */
static void start_job(struct exec *x, hy_job *j)
{
    struct hy_sched *s = x->s;
    heap_remove(x, 0);
    x->vclock = j->tag;
    j->state = HY_JOB_RUNNING;
    x->current = j;
    take_kept(x, j);
    if (takes_machine(j)) {
        s->excl_wanted = true;
        while (s->device_jobs > 0)
            pthread_cond_wait(&s->gate, &s->mu);
        s->excl_wanted = false;
        s->excl_active = true;
    } else if (x->device >= 0) {
        s->device_jobs++;
    }
    j->start_ns = hy_now_ns();
    s->stats.running++;
    s->stats.queued--;
}

/* Under mu: the job ends and goes on the done list for the server; what is to be unmapped
 * (outside mu) goes to drop[], and its count is returned. */
static unsigned end_job(struct exec *x, hy_job *j, hy_mapping keep, hy_mapping *drop)
{
    struct hy_sched *s = x->s;
    j->end_ns = hy_now_ns();
    j->state = HY_JOB_FINISHED;
    x->current = NULL;
    unsigned ndrop = keep_after(x, keep, drop);
    /* stats.running drops when the server takes the job off the done list, not here: a
     * STATUS must never show a job as neither running nor answered (counted done, failed
     * or cancelled), or a client waiting for "idle" reads counters that are still moving. */
    for (unsigned b = 0; b < HY_BACKEND_COUNT; b++) {
        s->stats.busy_ns[b] += j->busy_ns[b];
        s->stats.configs[b] += j->configs[b];
    }
    if (takes_machine(j)) {
        s->excl_active = false;
        for (unsigned i = 0; i < s->nexec; i++)
            pthread_cond_signal(&s->ex[i].cond);
    } else if (x->device >= 0 && --s->device_jobs == 0) {
        pthread_cond_broadcast(&s->gate);
    }
    j->done_next = NULL;
    bool was_empty = s->done_head == NULL;
    if (s->done_tail)
        s->done_tail->done_next = j;
    else
        s->done_head = j;
    s->done_tail = j;
    /* One wake-up per batch: the server drains the whole list when it reads the fd. */
    if (was_empty) {
        uint64_t one = 1;
        if (write(s->notify_fd, &one, sizeof one) != sizeof one)
            hy_log(HY_LOG_ERR, "cannot wake the event loop: %s", strerror(errno));
    }
    return ndrop;
}

static void *exec_main(void *arg)
{
    struct exec *x = arg;
    struct hy_sched *s = x->s;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        /* A device executor stays off while a comparison holds or wants the machine. */
        bool gated = x->device >= 0 && (s->excl_active || s->excl_wanted);
        if (s->stop)
            break;
        if (x->drop_kept) {
            drop_gone(x);
            continue;
        }
        if (x->n == 0 || gated) {
            pthread_cond_wait(&x->cond, &s->mu);
            continue;
        }
        hy_job *j = x->heap[0];
        HY_ASSERT(j->state == HY_JOB_QUEUED && j->exec == x->index);
        start_job(x, j);
        pthread_mutex_unlock(&s->mu);

        if (atomic_load(&j->cancel) != HY_CANCEL_NONE)
            j->rc = hy_error_set(&j->err, HY_ECANCELED, "cancelled before it started");
        else if (map_array(j) == 0 && read_files(x, j) == 0) {
            execute(s, j);
            write_files(j);
        }
        hy_mapping keep = {0}, drop[KEPT_MAX + 1];
        unmap_array(j, &keep);
        /* The engine keeps its largest sort scratch for the next job; after a huge one, that
         * would hold gigabytes for good in a service that runs for months. */
        if (x->device < 0)
            hy_host_trim(s->e.host, HY_KEEP_BYTES);
        if (x->buf_bytes > HY_KEEP_BYTES) {
            free(x->buf);
            x->buf = NULL;
            x->buf_bytes = 0;
        }

        pthread_mutex_lock(&s->mu);
        unsigned ndrop = end_job(x, j, keep, drop); /* j is the server's from here on */
        if (ndrop) {
            pthread_mutex_unlock(&s->mu);
            for (unsigned k = 0; k < ndrop; k++)
                release_map(&drop[k]);
            pthread_mutex_lock(&s->mu);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* The CPU executor's file buffer (read_files), allocated and touched page by page before
 * its thread starts (hy_engines.file_buf_bytes says why). A hint: on failure the first job
 * allocates it. */
static void prefault_file_buf(struct exec *x, size_t bytes)
{
    if (bytes == 0 || !(x->buf = hy_huge_alloc(bytes, &x->buf_bytes)))
        return;
    for (size_t at = 0; at < x->buf_bytes; at += 4096)
        ((volatile char *)x->buf)[at] = 0;
}

/* ---- the interface ---- */

int hy_sched_create(const hy_engines *e, const unsigned *devices, unsigned ndevices,
                    int notify_fd, hy_sched **out, hy_error *err)
{
    struct hy_sched *s = calloc(1, sizeof *s);
    if (!s)
        return hy_error_set(err, HY_ENOMEM, "no memory for the scheduler");
    s->e = *e;
    s->notify_fd = notify_fd;
    s->nexec = 1 + ndevices;
    s->ex = calloc(s->nexec, sizeof *s->ex);
    if (!s->ex) {
        free(s);
        return hy_error_set(err, HY_ENOMEM, "no memory for %u executors", 1 + ndevices);
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->gate, NULL);
    prefault_file_buf(&s->ex[0], e->file_buf_bytes);
    int rc = 0;
    for (unsigned i = 0; i < s->nexec; i++) {
        struct exec *x = &s->ex[i];
        x->s = s;
        x->index = i;
        x->device = i == 0 ? -1 : (int)devices[i - 1];
        pthread_cond_init(&x->cond, NULL);
    }
    for (unsigned i = 0; i < s->nexec; i++) {
        int e2 = pthread_create(&s->ex[i].thread, NULL, exec_main, &s->ex[i]);
        if (e2) {
            rc = hy_error_set(err, HY_ESYS, "pthread_create for executor %u: %s", i,
                              strerror(e2));
            break;
        }
        s->ex[i].started = true;
    }
    if (rc) {
        hy_sched_destroy(s);
        return rc;
    }
    *out = s;
    return 0;
}

void hy_sched_destroy(hy_sched *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    for (unsigned i = 0; i < s->nexec; i++) {
        if (s->ex[i].current)
            atomic_store(&s->ex[i].current->cancel, HY_CANCEL_SHUTDOWN);
        pthread_cond_signal(&s->ex[i].cond);
    }
    pthread_mutex_unlock(&s->mu);
    for (unsigned i = 0; i < s->nexec; i++)
        if (s->ex[i].started)
            pthread_join(s->ex[i].thread, NULL);
    /* What the executors finished on the way out, and anything still queued. */
    for (hy_job *j = s->done_head, *next; j; j = next) {
        next = j->done_next;
        hy_job_free(j);
    }
    for (unsigned i = 0; i < s->nexec; i++) {
        for (unsigned k = 0; k < KEPT_MAX; k++)
            release_map(&s->ex[i].kept[k]);
        for (size_t k = 0; k < s->ex[i].n; k++)
            hy_job_free(s->ex[i].heap[k]);
        free(s->ex[i].heap);
        free(s->ex[i].buf);
        pthread_cond_destroy(&s->ex[i].cond);
    }
    pthread_cond_destroy(&s->gate);
    pthread_mutex_destroy(&s->mu);
    free(s->ex);
    free(s);
}

int hy_sched_device_exec(const hy_sched *s, unsigned device)
{
    for (unsigned i = 1; i < s->nexec; i++)
        if (s->ex[i].device == (int)device)
            return (int)i;
    return -1;
}

int hy_sched_submit(hy_sched *s, hy_job *job, uint64_t *client_tag, unsigned *ahead,
                    hy_error *err)
{
    HY_ASSERT(job->exec < s->nexec);
    struct exec *x = &s->ex[job->exec];
    pthread_mutex_lock(&s->mu);
    if (x->n == x->cap) {
        size_t cap = x->cap ? 2 * x->cap : 64;
        hy_job **h = realloc(x->heap, cap * sizeof *h);
        if (!h) {
            pthread_mutex_unlock(&s->mu);
            return hy_error_set(err, HY_ENOMEM, "no memory to queue the job");
        }
        x->heap = h;
        x->cap = cap;
    }
    /* Start-time fair queueing: a client's next job is tagged one past the later of its own
     * previous job and the executor's virtual time, so clients with backlogs alternate and
     * a newcomer does not wait behind someone else's hundred jobs. */
    uint64_t base = *client_tag > x->vclock ? *client_tag : x->vclock;
    job->tag = base + 1;
    *client_tag = job->tag;
    job->seq = ++s->seq;
    job->state = HY_JOB_QUEUED;
    unsigned n_ahead = x->current ? 1 : 0;
    for (size_t i = 0; i < x->n; i++)
        n_ahead += before(x->heap[i], job);
    x->heap[x->n] = job;
    job->heap_i = x->n++;
    sift_up(x, job->heap_i);
    s->stats.queued++;
    pthread_cond_signal(&x->cond);
    pthread_mutex_unlock(&s->mu);
    *ahead = n_ahead;
    return 0;
}

bool hy_sched_cancel(hy_sched *s, hy_job *job, int reason)
{
    bool taken = false;
    pthread_mutex_lock(&s->mu);
    if (job->state == HY_JOB_QUEUED) {
        heap_remove(&s->ex[job->exec], job->heap_i);
        job->state = HY_JOB_FINISHED;
        s->stats.queued--;
        taken = true;
    } else if (job->state == HY_JOB_RUNNING) {
        int none = HY_CANCEL_NONE;
        atomic_compare_exchange_strong(&job->cancel, &none, reason);
    } else {
        /* Finished: its answer waits on the done list; there is nothing left to stop. */
        HY_ASSERT(job->state == HY_JOB_FINISHED);
    }
    pthread_mutex_unlock(&s->mu);
    return taken;
}

hy_job *hy_sched_take_done(hy_sched *s)
{
    pthread_mutex_lock(&s->mu);
    hy_job *j = s->done_head;
    s->done_head = s->done_tail = NULL;
    for (hy_job *k = j; k; k = k->done_next)
        s->stats.running--;
    pthread_mutex_unlock(&s->mu);
    return j;
}

void hy_sched_foreach_running(hy_sched *s, void (*fn)(hy_job *job, void *ctx), void *ctx)
{
    pthread_mutex_lock(&s->mu);
    for (unsigned i = 0; i < s->nexec; i++)
        if (s->ex[i].current)
            fn(s->ex[i].current, ctx);
    pthread_mutex_unlock(&s->mu);
}

void hy_sched_get_stats(hy_sched *s, hy_sched_stats *st)
{
    pthread_mutex_lock(&s->mu);
    *st = s->stats;
    pthread_mutex_unlock(&s->mu);
}

hy_job *hy_job_new(void)
{
    hy_job *j = calloc(1, sizeof *j);
    if (j)
        j->array_fd = j->files.in = j->files.out = -1;
    return j;
}

void hy_job_free(hy_job *job)
{
    if (!job)
        return;
    hy_mapping m = {0};
    unmap_array(job, &m);
    release_map(&m);
    free(job->array);
    free(job->paths);
    free(job->rows);
    free(job);
}
