/* partition-bench: what a sort span's partition costs per key as the ranks grow, the c_p of
 * docs/scale-out.md's model. The asking rank of `--ranks N` (daemon/ranks.c) and every rank of
 * the MPI-IO path (mpi/mpi.c) find each key's bucket among N - 1 splitters, count the buckets,
 * then copy each key to its bucket; this program times those two passes on one thread over
 * uniform f64 keys, with the splitters at the 1/N quantiles, for each N asked, three ways:
 * `loop` searches the splitters by hy_bucket_of's branch-free loop in both passes, `tree` by
 * hy_stree_bucket's tree in both, `ids` by the tree in the count pass only, keeping each key's
 * bucket in two bytes that the copy pass reads back, and `span` by the spans' own passes
 * (common/span.c: hy_span_count, whose table in front of the tree answers most keys, and
 * hy_span_scatter), and `span/fresh` the same into new buffers each time, first touch
 * included, as a span whose buffers the MPI module has not kept yet writes them (the other
 * ways reuse one spill area and one ids array, as later spans do). `span/one` is what a
 * partition of one pass over memory would cost with the spans' own functions: both run on
 * each block of SPAN_ONE_BLOCK keys in turn, so the keys are read from memory once and the
 * ids never leave the cache; the buckets are cut at counts known beforehand (from the first
 * way), which a real one-pass partition would not have: a bound from below. `direct` is
 * the partition of one pass itself: each key's bucket found as the spans' count finds it
 * (the table, then the tree) and the key stored straight to its bucket, with no ids and no
 * count pass, the buckets again cut at counts known beforehand: what a one-pass partition
 * costs at the least, in the scatter column.
 *
 *   partition-bench [-n ELEMENTS] [--ranks LIST] [--repeat R] [--dist uniform|normal]
 *
 * The keys are f64, uniform in [0, 1) or normal (mean 0, deviation 1); the splitters are the
 * keys at the 1/N quantiles, as a span's sample would find them.
 *
 * The ways run in turns (A B C A B C ...), R times each; the median and min-max of each, in ns
 * per key, are printed per pass. All must give the same bucket counts (exit 1 if not). */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "sortkey.h"

#define MAX_RANKS 4096u
#define MAX_REPEAT 101

struct run {
    const uint64_t *src;  /* the keys' bits, never changed */
    const uint64_t *sorted; /* their keys, sorted: the splitters' source */
    uint64_t *a, *spill;  /* the array partitioned in place, and the other buckets' space */
    uint16_t *ids;        /* each key's bucket, for the `ids` way */
    size_t n;
    unsigned ranks;
    const struct hy_skey *sp;
    const struct hy_stree *tree;
    struct hy_xform_u64 t;
    uint64_t cnt[MAX_RANKS], pos[MAX_RANKS];
    uint64_t *dst[MAX_RANKS];
    const uint64_t *want; /* the buckets' sizes, for span/one */
};

static inline unsigned bucket(const struct run *r, bool tree, uint64_t x, uint64_t i)
{
    uint64_t k = hy_to_key_u64(x, &r->t);
    return tree ? hy_stree_bucket(r->tree, k, i) : hy_bucket_of(r->sp, r->ranks - 1, k, i);
}

enum { WAY_LOOP, WAY_TREE, WAY_IDS, WAY_SPAN, WAY_FRESH, WAY_ONE, WAY_DIRECT, WAYS };
#define SPAN_ONE_BLOCK 4096u

/* A key's bucket as the span's count finds it (common/span.c): the table's cell, the tree
 * for a cell that holds a splitter or where there is no table. For `direct`. */
static inline unsigned table_bucket(const struct hy_stree *t, uint64_t x, uint64_t k, uint64_t i)
{
    if (t->front == HY_SFRONT_NONE)
        return hy_stree_bucket(t, k, i);
    double v;
    memcpy(&v, &x, sizeof v);
    unsigned b = t->cell[t->front == HY_SFRONT_VALUE ? hy_sfront_value(t, v) : hy_sfront_key(t, k)];
    return b == HY_SFRONT_SEARCH ? hy_stree_bucket(t, k, i) : b;
}
#define LOOP_MAX_RANKS 256u

/* Bucket 0 in place at the array's front, the others in the spill area cut at `sizes`;
 * every bucket's fill at 0. */
static void cut_buckets(struct run *r, const uint64_t *sizes)
{
    r->dst[0] = r->a;
    uint64_t at = 0;
    for (unsigned b = 1; b < r->ranks; b++) {
        r->dst[b] = r->spill + at;
        at += sizes[b];
    }
    memset(r->pos, 0, sizeof r->pos);
}

/* One partition, as the span does it: count, then bucket 0 in place and the rest to their
 * buffers (here one spill area cut at the counts). Returns (count ns, scatter ns). */
static void partition(struct run *r, int way, double *count_ns, double *scatter_ns)
{
    memcpy(r->a, r->src, r->n * sizeof *r->a);
    memset(r->cnt, 0, sizeof r->cnt);
    bool tree = way != WAY_LOOP;
    uint64_t t0 = hy_now_ns();
    if (way == WAY_ONE) {
        uint16_t ids[SPAN_ONE_BLOCK];
        char *dst[MAX_RANKS] = {(char *)r->a};
        uint64_t at = 0, in_count = 0;
        for (unsigned b = 1; b < r->ranks; b++) {
            dst[b] = (char *)(r->spill + at);
            at += r->want[b];
        }
        memset(r->pos, 0, sizeof r->pos);
        for (size_t i = 0; i < r->n; i += SPAN_ONE_BLOCK) {
            size_t m = r->n - i < SPAN_ONE_BLOCK ? r->n - i : SPAN_ONE_BLOCK;
            uint64_t c0 = hy_now_ns();
            hy_span_count(r->a + i, m, HY_DT_F64, i, r->tree, r->cnt, ids);
            in_count += hy_now_ns() - c0;
            hy_span_scatter(r->a + i, m, sizeof *r->a, ids, r->ranks, dst, r->pos);
        }
        uint64_t t2 = hy_now_ns();
        *count_ns = (double)in_count / (double)r->n;
        *scatter_ns = (double)(t2 - t0 - in_count) / (double)r->n;
        return;
    }
    if (way == WAY_DIRECT) {
        cut_buckets(r, r->want);
        for (size_t i = 0; i < r->n; i++) {
            uint64_t x = r->a[i];
            unsigned b = table_bucket(r->tree, x, hy_to_key_u64(x, &r->t), i);
            r->dst[b][r->pos[b]++] = x;
        }
        uint64_t t2 = hy_now_ns();
        memcpy(r->cnt, r->pos, r->ranks * sizeof *r->cnt);
        *count_ns = 0;
        *scatter_ns = (double)(t2 - t0) / (double)r->n;
        return;
    }
    if (way == WAY_SPAN || way == WAY_FRESH) {
        /* fresh: new ids and bucket buffers each time, as a span allocates them, so their
         * first touch (a page fault per 4 KiB) is in the time */
        bool fresh = way == WAY_FRESH;
        uint16_t *ids = fresh ? malloc(r->n * sizeof *ids) : r->ids;
        char *dst[MAX_RANKS] = {0};
        if (!ids)
            abort();
        hy_span_count(r->a, r->n, HY_DT_F64, 0, r->tree, r->cnt, ids);
        uint64_t t1 = hy_now_ns();
        dst[0] = (char *)r->a;
        uint64_t at = 0;
        for (unsigned b = 1; b < r->ranks; b++) {
            dst[b] = fresh ? malloc(r->cnt[b] * sizeof *r->a + 1) : (char *)(r->spill + at);
            if (!dst[b])
                abort();
            at += r->cnt[b];
        }
        memset(r->pos, 0, sizeof r->pos);
        hy_span_scatter(r->a, r->n, sizeof *r->a, ids, r->ranks, dst, r->pos);
        uint64_t t2 = hy_now_ns();
        *count_ns = (double)(t1 - t0) / (double)r->n;
        *scatter_ns = (double)(t2 - t1) / (double)r->n;
        if (fresh) {
            for (unsigned b = 1; b < r->ranks; b++)
                free(dst[b]);
            free(ids);
        }
        return;
    }
    if (way == WAY_IDS)
        for (size_t i = 0; i < r->n; i++) {
            unsigned b = bucket(r, true, r->a[i], i);
            r->ids[i] = (uint16_t)b;
            r->cnt[b]++;
        }
    else
        for (size_t i = 0; i < r->n; i++)
            r->cnt[bucket(r, tree, r->a[i], i)]++;
    uint64_t t1 = hy_now_ns();
    cut_buckets(r, r->cnt);
    if (way == WAY_IDS)
        for (size_t i = 0; i < r->n; i++) {
            unsigned b = r->ids[i];
            r->dst[b][r->pos[b]++] = r->a[i];
        }
    else
        for (size_t i = 0; i < r->n; i++) {
            uint64_t x = r->a[i];
            unsigned b = bucket(r, tree, x, i);
            r->dst[b][r->pos[b]++] = x;
        }
    uint64_t t2 = hy_now_ns();
    *count_ns = (double)(t1 - t0) / (double)r->n;
    *scatter_ns = (double)(t2 - t1) / (double)r->n;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *way, unsigned ranks, double *count, double *scatter, int reps)
{
    qsort(count, (size_t)reps, sizeof *count, cmp_double);
    qsort(scatter, (size_t)reps, sizeof *scatter, cmp_double);
    printf("%5u  %-11s %7.2f (%5.2f-%5.2f) %8.2f (%5.2f-%5.2f) %8.2f\n", ranks, way,
           count[reps / 2], count[0], count[reps - 1], scatter[reps / 2], scatter[0],
           scatter[reps - 1], count[reps / 2] + scatter[reps / 2]);
}

/* Times both ways for one rank count; 1 if their counts differ. */
static int bench_ranks(struct run *r, unsigned ranks, int reps)
{
    struct hy_skey *sp = malloc(ranks * sizeof *sp);
    if (!sp)
        return 1;
    for (unsigned b = 1; b < ranks; b++) { /* the keys at the 1/ranks quantiles */
        size_t at = (size_t)b * r->n / ranks;
        sp[b - 1] = (struct hy_skey){r->sorted[at], at};
    }
    struct hy_stree *tree = hy_stree_new(sp, ranks - 1, HY_DT_F64);
    if (!tree) {
        free(sp);
        return 1;
    }
    r->ranks = ranks;
    r->sp = sp;
    r->tree = tree;
    double c[WAYS][MAX_REPEAT], s[WAYS][MAX_REPEAT];
    uint64_t first[MAX_RANKS];
    int bad = 0;
    /* The loop's cost grows with the ranks (1.2 us a key at 512): past LOOP_MAX_RANKS a run
     * would take minutes to say what the smaller counts already say. */
    int from = ranks <= LOOP_MAX_RANKS ? WAY_LOOP : WAY_TREE;
    r->want = first; /* set by the first way, before span/one runs */
    for (int i = 0; i < reps; i++)
        for (int way = from; way < WAYS; way++) {
            partition(r, way, &c[way][i], &s[way][i]);
            if (i == 0 && way == from)
                memcpy(first, r->cnt, ranks * sizeof *first);
            else
                bad |= memcmp(first, r->cnt, ranks * sizeof *first) != 0;
        }
    if (from == WAY_LOOP)
        report("loop", ranks, c[WAY_LOOP], s[WAY_LOOP], reps);
    report("tree", ranks, c[WAY_TREE], s[WAY_TREE], reps);
    report("ids", ranks, c[WAY_IDS], s[WAY_IDS], reps);
    static const char *const fronts[] = {"none", "key", "value"};
    char name[16];
    snprintf(name, sizeof name, "span/%s", fronts[tree->front]);
    report(name, ranks, c[WAY_SPAN], s[WAY_SPAN], reps);
    report("span/fresh", ranks, c[WAY_FRESH], s[WAY_FRESH], reps);
    report("span/one", ranks, c[WAY_ONE], s[WAY_ONE], reps);
    report("direct", ranks, c[WAY_DIRECT], s[WAY_DIRECT], reps);
    free(tree);
    free(sp);
    return bad;
}

int main(int argc, char **argv)
{
    size_t n = 10000000;
    const char *list = "2,3,4,8,16,64,256";
    int reps = 7;
    bool normal = false;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-n"))
            n = (size_t)strtod(argv[i + 1], NULL);
        else if (!strcmp(argv[i], "--ranks"))
            list = argv[i + 1];
        else if (!strcmp(argv[i], "--repeat"))
            reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dist"))
            normal = !strcmp(argv[i + 1], "normal");
    }
    if (n == 0 || reps < 1 || reps > MAX_REPEAT) {
        fprintf(stderr, "usage: partition-bench [-n ELEMENTS] [--ranks LIST] [--repeat 1..%d]\n",
                MAX_REPEAT);
        return 2;
    }
    struct run *r = calloc(1, sizeof *r);
    uint64_t *src = r ? malloc(n * sizeof *src) : NULL, *a = malloc(n * sizeof *a),
             *spill = malloc(n * sizeof *spill);
    uint16_t *ids = malloc(n * sizeof *ids);
    if (!r || !src || !a || !spill || !ids) {
        fprintf(stderr, "partition-bench: out of memory for %zu keys\n", n);
        return 1;
    }
    uint64_t seed = 42;
    for (size_t i = 0; i < n; i++) { /* doubles from a 64-bit LCG's top bits */
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        double v = (double)(seed >> 11) * 0x1p-53;
        if (normal) { /* Box-Muller, one of the pair */
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            double u = ((double)(seed >> 11) + 1) * 0x1p-53;
            v = sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
        }
        memcpy(&src[i], &v, sizeof v);
    }
    uint64_t *sorted = malloc(n * sizeof *sorted);
    if (!sorted) {
        fprintf(stderr, "partition-bench: out of memory for %zu keys\n", n);
        return 1;
    }
    struct hy_xform_u64 t = hy_xform_u64_of(hy_key_spec_of(HY_DT_F64));
    for (size_t i = 0; i < n; i++)
        sorted[i] = hy_to_key_u64(src[i], &t);
    qsort(sorted, n, sizeof *sorted, cmp_u64);
    *r = (struct run){.src = src, .sorted = sorted, .a = a, .spill = spill, .ids = ids, .n = n,
                      .t = hy_xform_u64_of(hy_key_spec_of(HY_DT_F64))};
    printf("%zu %s f64 keys, one thread, ns per key: median (min-max) of %d\n", n,
           normal ? "normal" : "uniform", reps);
    printf("ranks  way           count               scatter             total\n");
    int bad = 0;
    for (const char *p = list; *p;) {
        unsigned ranks = (unsigned)strtoul(p, (char **)&p, 10);
        if (ranks >= 2 && ranks <= MAX_RANKS)
            bad |= bench_ranks(r, ranks, reps);
        p += *p == ',';
        if (*p && (*p < '0' || *p > '9'))
            break;
    }
    free(src);
    free(sorted);
    free(a);
    free(spill);
    free(ids);
    free(r);
    if (bad)
        fprintf(stderr, "partition-bench: the ways counted different buckets\n");
    return bad;
}
