/* cl/copy: the host's half of a staged transfer (sort.c), spread over a few threads.
 *
 * The GPU variant's sort moves the caller's array through a pinned staging pair: the host
 * copies a chunk into pinned memory while the link carries the one before. One thread's
 * memcpy is the slower half by far: on an NVIDIA H200 machine (PCIe 5 x16, 16 Xeon cores) the
 * link moved 800 MB in 14.6 ms, and a 10^8-element f64 sort spent about 215 of its 262 ms in
 * the two single-threaded copies, in and out. A copy split over several threads runs at
 * several times one thread's speed, until the memory system saturates. */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* Past this many threads one copy gains little (memory bandwidth, not cores, limits it),
 * and the threads would only compete with the CPU pools for cores. */
#define COPY_THREADS_MAX 8
/* Test-only and for the benchmark: threads per copy, 1 to 64, overriding the default. */
#define COPY_THREADS_ENV "HYBRIDD_CL_COPY_THREADS"
/* Below this many bytes a copy stays on the calling thread: waking the others would cost
 * more than they save. */
#define COPY_SPLIT_MIN ((size_t)1 << 20)

struct hy_cl_copier {
    pthread_mutex_t mu;
    pthread_cond_t go;   /* a new copy (gen moved) or stop */
    pthread_cond_t done; /* pending reached 0 */
    unsigned nthreads;   /* the caller and nthreads - 1 workers */
    pthread_t *th;
    uint64_t gen;
    unsigned pending; /* workers still copying this generation's slices */
    bool stop;
    char *dst;
    const char *src;
    size_t bytes, part;
};

struct worker {
    struct hy_cl_copier *c;
    unsigned index; /* its slice: 1 .. nthreads - 1; the caller copies slice 0 */
};

static void slice(const struct hy_cl_copier *c, unsigned i)
{
    size_t from = (size_t)i * c->part;
    if (from >= c->bytes)
        return;
    size_t len = c->bytes - from < c->part ? c->bytes - from : c->part;
    memcpy(c->dst + from, c->src + from, len);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct hy_cl_copier *c = w->c;
    uint64_t seen = 0;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->stop && c->gen == seen)
            pthread_cond_wait(&c->go, &c->mu);
        if (c->stop)
            break;
        seen = c->gen;
        pthread_mutex_unlock(&c->mu);
        slice(c, w->index);
        pthread_mutex_lock(&c->mu);
        if (--c->pending == 0)
            pthread_cond_signal(&c->done);
    }
    pthread_mutex_unlock(&c->mu);
    free(w);
    return NULL;
}

unsigned hy_cl_copy_threads(void)
{
    const char *s = getenv(COPY_THREADS_ENV);
    if (s && s[0]) {
        char *end = NULL;
        unsigned long v = strtoul(s, &end, 10);
        if (!*end && v >= 1 && v <= 64 && s[0] != '-')
            return (unsigned)v;
    }
    /* The CPUs this process may run on (a service's CPUAffinity=, taskset), not all online. */
    cpu_set_t set;
    long cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set)
                                                           : sysconf(_SC_NPROCESSORS_ONLN);
    /* Half the cores: the other half stays with the pools, whose jobs run beside this one. */
    unsigned t = cpus > 1 ? (unsigned)(cpus / 2) : 1;
    return t < COPY_THREADS_MAX ? t : COPY_THREADS_MAX;
}

void hy_cl_copier_stop(struct hy_cl_copier *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_cond_broadcast(&c->go);
    pthread_mutex_unlock(&c->mu);
    for (unsigned i = 1; i < c->nthreads; i++)
        pthread_join(c->th[i], NULL);
    pthread_cond_destroy(&c->done);
    pthread_cond_destroy(&c->go);
    pthread_mutex_destroy(&c->mu);
    free(c->th);
    free(c);
}

struct hy_cl_copier *hy_cl_copier_start(unsigned threads)
{
    if (threads < 2)
        return NULL;
    struct hy_cl_copier *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->th = calloc(threads, sizeof *c->th);
    if (!c->th || pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c->th);
        free(c);
        return NULL;
    }
    pthread_cond_init(&c->go, NULL);
    pthread_cond_init(&c->done, NULL);
    /* Workers that cannot start are done without: fewer slices, the same bytes. */
    c->nthreads = 1;
    for (unsigned i = 1; i < threads; i++) {
        struct worker *w = malloc(sizeof *w);
        if (!w)
            break;
        *w = (struct worker){c, i};
        if (pthread_create(&c->th[i], NULL, worker_main, w) != 0) {
            free(w);
            break;
        }
        c->nthreads++;
    }
    if (c->nthreads < 2) {
        hy_cl_copier_stop(c);
        return NULL;
    }
    return c;
}

void hy_cl_copy(struct hy_cl_copier *c, void *dst, const void *src, size_t bytes)
{
    if (!c || bytes < COPY_SPLIT_MIN) {
        memcpy(dst, src, bytes);
        return;
    }
    pthread_mutex_lock(&c->mu);
    c->dst = dst;
    c->src = src;
    c->bytes = bytes;
    /* Slices of whole cache lines, so no two threads write one line. */
    c->part = (bytes / c->nthreads + 63) & ~(size_t)63;
    c->pending = c->nthreads - 1;
    c->gen++;
    pthread_cond_broadcast(&c->go);
    pthread_mutex_unlock(&c->mu);
    slice(c, 0);
    pthread_mutex_lock(&c->mu);
    while (c->pending > 0)
        pthread_cond_wait(&c->done, &c->mu);
    pthread_mutex_unlock(&c->mu);
}
