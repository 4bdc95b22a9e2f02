/* host/partition: cuts an array into contiguous key ranges, for backends that hand each range
 * to a different engine (hybrid: the native pool and the OpenCL devices). The ranges are
 * disjoint in sort order, so sorting each where it lies gives the whole array's sorted bytes
 * with no merge. Splitters come from a sample of the keys (the engine's order-preserving
 * keys, common/sortkey.h), taken at fixed positions so a cut is reproducible. */
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "sortkey.h"

/* Enough samples that each part's size lands within ~2% of its share on any input whose keys
 * are not mostly equal (a quantile of 4096 samples has a standard error under 1%). */
#define SAMPLES 4096u

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The key of element i of `src` as a u64 (32-bit keys widened: the order is the same). */
static inline uint64_t key_at(const void *src, size_t i, size_t size,
                              const struct hy_xform_u32 *t32, const struct hy_xform_u64 *t64)
{
    if (size == 4) {
        uint32_t x;
        memcpy(&x, (const char *)src + i * 4, 4);
        return hy_to_key_u32(x, t32);
    }
    uint64_t x;
    memcpy(&x, (const char *)src + i * 8, 8);
    return hy_to_key_u64(x, t64);
}

/* The part of key k: how many splitters lie below it (keys equal to a splitter go left). */
static inline unsigned part_of(uint64_t k, const uint64_t *split, unsigned nsplit)
{
    unsigned p = 0;
    while (p < nsplit && k > split[p])
        p++;
    return p;
}

/* Splitter i is the sample at the cumulative share of parts 0..i. */
static int choose_splitters(const void *src, size_t n, size_t size, const double *share,
                            unsigned parts, const struct hy_xform_u32 *t32,
                            const struct hy_xform_u64 *t64, uint64_t *split, hy_error *err)
{
    unsigned ns = n < SAMPLES ? (unsigned)n : SAMPLES;
    uint64_t *sample = malloc(ns * sizeof *sample);
    if (!sample)
        return hy_error_set(err, HY_ENOMEM, "no memory for %u sort samples", ns);
    size_t step = n / ns; /* >= 1: ns <= n */
    for (unsigned j = 0; j < ns; j++)
        sample[j] = key_at(src, j * step + step / 2, size, t32, t64);
    qsort(sample, ns, sizeof *sample, cmp_u64);
    double total = 0, upto = 0;
    for (unsigned p = 0; p < parts; p++)
        total += share[p];
    for (unsigned p = 0; p + 1 < parts; p++) {
        upto += share[p];
        double at = total > 0 ? upto / total * ns : 0;
        /* The key at that quantile closes part p; a share of 0 takes nothing but keys equal
         * to an earlier splitter, which tie left. */
        unsigned k = at < 1 ? 0 : at >= ns ? ns - 1 : (unsigned)at - 1;
        split[p] = share[p] > 0 ? sample[k] : p == 0 ? 0 : split[p - 1];
    }
    free(sample);
    return 0;
}

/* One cut, shared by the threads that count and scatter it: thread w takes elements
 * [w n / T, (w + 1) n / T), so the scatter keeps the input's order within a part. */
struct cut {
    const char *src;
    char *dst;
    size_t n, size;
    unsigned parts, nsplit, threads;
    uint64_t split[HY_HOST_CUT_MAX_PARTS];
    struct hy_xform_u32 t32;
    struct hy_xform_u64 t64;
    size_t (*at)[HY_HOST_CUT_MAX_PARTS]; /* [thread][part]: counts, then write positions */
};

/* Elements between progress ticks: ~0.1 ms of work, so a cancel is seen at once. */
#define TICK 65536

static void slice(const struct cut *c, unsigned w, size_t *lo, size_t *hi)
{
    *lo = c->n / c->threads * w + (w < c->n % c->threads ? w : c->n % c->threads);
    *hi = *lo + c->n / c->threads + (w < c->n % c->threads);
}

static int count_slice(const struct cut *c, unsigned w, hy_worker *wk)
{
    size_t lo, hi;
    slice(c, w, &lo, &hi);
    size_t *cnt = c->at[w];
    for (size_t i = lo; i < hi; i++) {
        cnt[part_of(key_at(c->src, i, c->size, &c->t32, &c->t64), c->split, c->nsplit)]++;
        if (wk && (i - lo + 1) % TICK == 0 && hy_worker_tick(wk, TICK) != 0)
            return HY_ECANCELED;
    }
    return 0;
}

static int scatter_slice(const struct cut *c, unsigned w, hy_worker *wk)
{
    size_t lo, hi;
    slice(c, w, &lo, &hi);
    size_t *at = c->at[w];
    for (size_t i = lo; i < hi; i++) {
        unsigned p = part_of(key_at(c->src, i, c->size, &c->t32, &c->t64), c->split, c->nsplit);
        memcpy(c->dst + at[p]++ * c->size, c->src + i * c->size, c->size);
        if (wk && (i - lo + 1) % TICK == 0 && hy_worker_tick(wk, TICK) != 0)
            return HY_ECANCELED;
    }
    return 0;
}

static int count_task(hy_worker *w, void *ctx)
{
    return count_slice(ctx, hy_worker_id(w), w);
}

static int scatter_task(hy_worker *w, void *ctx)
{
    return scatter_slice(ctx, hy_worker_id(w), w);
}

/* Runs one phase on the pool, or on the calling thread when there is none. */
static int phase(hy_host *h, const hy_run_opts *o, struct cut *c, hy_task_fn fn,
                 int (*one)(const struct cut *, unsigned, hy_worker *), hy_error *err)
{
    if (!h)
        return one(c, 0, NULL);
    hy_run_opts ro = *o;
    ro.backend = HY_BACKEND_NATIVE;
    ro.mode = HY_MODE_SPLIT;
    ro.threads = c->threads;
    hy_run_stats st;
    return hy_host_run(h, &ro, c->n, fn, c, &st, err);
}

static int check_cut_args(int dtype, const void *src, const void *dst, size_t n,
                          const double *share, unsigned parts, const size_t *bounds,
                          size_t *size, hy_error *err)
{
    int rc = hy_check_sort_args(dtype, src, n, size, err);
    if (rc)
        return rc;
    if (parts < 1 || parts > HY_HOST_CUT_MAX_PARTS || !share || !bounds || !dst ||
        ((const char *)dst < (const char *)src + n * *size &&
         (const char *)src < (const char *)dst + n * *size))
        return hy_error_set(err, HY_EINVAL, "a cut needs 1..%d parts, their shares, bounds "
                            "and a destination apart from the source", HY_HOST_CUT_MAX_PARTS);
    for (unsigned p = 0; p < parts; p++)
        if (!(share[p] >= 0))
            return hy_error_set(err, HY_EINVAL, "part %u's share is negative or not a number",
                                p);
    return 0;
}

int hy_host_sort_cut(hy_host *h, const hy_run_opts *o, int dtype, const void *src, void *dst,
                     size_t n, const double *share, unsigned parts, size_t *bounds,
                     hy_error *err)
{
    size_t size;
    int rc = check_cut_args(dtype, src, dst, n, share, parts, bounds, &size, err);
    if (rc)
        return rc;
    struct hy_key_spec ks = hy_key_spec_of(dtype);
    struct cut c = {.src = src, .dst = dst, .n = n, .size = size, .parts = parts,
                    .nsplit = parts - 1, .threads = 1, .t32 = hy_xform_u32_of(ks),
                    .t64 = hy_xform_u64_of(ks)};
    if (h && o && o->threads > 1)
        c.threads = o->threads > n ? (unsigned)n : o->threads;
    if (!h || !o)
        h = NULL;
    if (parts > 1 && (rc = choose_splitters(src, n, size, share, parts, &c.t32, &c.t64, c.split,
                                            err)))
        return rc;
    c.at = calloc(c.threads, sizeof *c.at);
    if (!c.at)
        return hy_error_set(err, HY_ENOMEM, "no memory for a cut's counts");
    if ((rc = phase(h, o, &c, count_task, count_slice, err)) == 0) {
        /* Thread w writes part p after every earlier thread's keys of p. */
        size_t next = 0;
        for (unsigned p = 0; p < parts; p++) {
            bounds[p] = next;
            for (unsigned w = 0; w < c.threads; w++) {
                size_t k = c.at[w][p];
                c.at[w][p] = next;
                next += k;
            }
        }
        bounds[parts] = next;
        rc = phase(h, o, &c, scatter_task, scatter_slice, err);
    }
    if (rc == HY_ECANCELED && err && !err->msg[0])
        hy_error_set(err, rc, "the cut was cancelled");
    free(c.at);
    return rc;
}
