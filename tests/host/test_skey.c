/* tests/host: where a sort span puts an element (common/sortkey.h) — hy_stree_bucket, the tree
 * the span's partition searches, against the definition: the number of splitters below
 * (key, idx) in (key, index) order. Every splitter count around the tree's edges (the loop's
 * range, each power of two, its pads), keys equal to splitters on either side of their
 * index, the extremes 0 and UINT64_MAX, and all splitters equal (all-equal input). */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "sortkey.h"

/* The definition, by hand: a plain count with branches, independent of both searches. */
static unsigned reference(const struct hy_skey *sp, unsigned nsp, uint64_t key, uint64_t idx)
{
    unsigned b = 0;
    for (unsigned j = 0; j < nsp; j++)
        if (sp[j].key < key || (sp[j].key == key && sp[j].idx < idx))
            b++;
    return b;
}

static uint64_t next(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 11;
}

static int cmp_skey(const void *a, const void *b)
{
    const struct hy_skey *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* nsp sorted splitters from few distinct keys (so that runs of equal keys occur), with the
 * extremes among them when `edges`. */
static struct hy_skey *splitters(unsigned nsp, unsigned distinct, bool edges, uint64_t *s)
{
    struct hy_skey *sp = malloc((nsp ? nsp : 1) * sizeof *sp);
    cr_assert_not_null(sp);
    for (unsigned j = 0; j < nsp; j++) {
        uint64_t k = (next(s) % distinct) * 1000;
        if (edges && j == 0)
            k = 0;
        if (edges && j == 1)
            k = UINT64_MAX;
        sp[j] = (struct hy_skey){k, next(s) % 10000};
    }
    qsort(sp, nsp, sizeof *sp, cmp_skey);
    return sp;
}

/* Every probe: each splitter's key with an index below, equal to and above its own, the keys
 * beside it, the extremes, and random keys. */
static void check_all(const struct hy_skey *sp, unsigned nsp, uint64_t *s)
{
    struct hy_stree *t = hy_stree_new(sp, nsp);
    cr_assert_not_null(t);
    uint64_t probes[] = {0, 1, UINT64_MAX - 1, UINT64_MAX};
    for (unsigned p = 0; p < 4; p++)
        for (uint64_t idx = 0; idx < 3; idx++)
            cr_assert_eq(hy_stree_bucket(t, probes[p], idx * 5000),
                         reference(sp, nsp, probes[p], idx * 5000), "nsp %u key %llu", nsp,
                         (unsigned long long)probes[p]);
    for (unsigned j = 0; j < nsp; j++)
        for (int dk = -1; dk <= 1; dk++)
            for (int di = -1; di <= 1; di++) {
                uint64_t k = sp[j].key + (uint64_t)(int64_t)dk, i = sp[j].idx + (uint64_t)di;
                cr_assert_eq(hy_stree_bucket(t, k, i), reference(sp, nsp, k, i),
                             "nsp %u splitter %u dk %d di %d", nsp, j, dk, di);
            }
    for (unsigned r = 0; r < 2000; r++) {
        uint64_t k = (next(s) % 70) * 500, i = next(s) % 10000;
        cr_assert_eq(hy_stree_bucket(t, k, i), reference(sp, nsp, k, i), "nsp %u", nsp);
    }
    free(t);
}

TestSuite(skey, .timeout = 60);

Test(skey, every_splitter_count_to_past_the_tree_edges)
{
    uint64_t s = 7;
    for (unsigned nsp = 0; nsp <= 70; nsp++)
        for (unsigned distinct = 1; distinct <= 64; distinct *= 4) {
            struct hy_skey *sp = splitters(nsp, distinct, false, &s);
            check_all(sp, nsp, &s);
            free(sp);
        }
}

Test(skey, extreme_keys_and_large_counts)
{
    uint64_t s = 11;
    unsigned counts[] = {6, 7, 8, 15, 16, 17, 63, 64, 127, 255, 256, 1023, 4095};
    for (unsigned c = 0; c < sizeof counts / sizeof *counts; c++) {
        struct hy_skey *sp = splitters(counts[c], 1000, true, &s);
        check_all(sp, counts[c], &s);
        free(sp);
    }
}

/* All-equal input: every splitter has the same key, and the index alone decides. */
Test(skey, all_equal_keys_split_by_index)
{
    unsigned nsp = 63;
    struct hy_skey sp[63];
    for (unsigned j = 0; j < nsp; j++)
        sp[j] = (struct hy_skey){42, (j + 1) * 100};
    struct hy_stree *t = hy_stree_new(sp, nsp);
    cr_assert_not_null(t);
    for (uint64_t i = 0; i < 6500; i += 7) {
        /* splitters (42, 100), (42, 200), ... (42, 6300): those below (42, i) */
        unsigned want = i <= 100 ? 0 : (unsigned)((i - 1) / 100 < 63 ? (i - 1) / 100 : 63);
        cr_assert_eq(hy_stree_bucket(t, 42, i), want, "index %llu", (unsigned long long)i);
        cr_assert_eq(hy_stree_bucket(t, 41, i), 0);
        cr_assert_eq(hy_stree_bucket(t, 43, i), 63);
    }
    free(t);
}

/* The span's two passes (common/span.c) over both widths: every element lands in its bucket
 * by the definition, in input order within a bucket, with bucket 0 written in place at the
 * array's front as the asking rank does; global indices start at `first`. */
static void check_span(int dtype, unsigned ranks, uint64_t first)
{
    enum { N = 5000 };
    size_t es = hy_dtype_size(dtype);
    uint64_t s = 3 + ranks, cnt[70] = {0}, pos[70] = {0}, want[70] = {0};
    char *a = malloc(N * es), *orig = malloc(N * es), *dst[70] = {0};
    uint16_t *ids = malloc(N * sizeof *ids);
    cr_assert(a && orig && ids);
    struct hy_key_spec ks = hy_key_spec_of(dtype);
    struct hy_xform_u32 t32 = hy_xform_u32_of(ks);
    struct hy_xform_u64 t64 = hy_xform_u64_of(ks);
    uint64_t keys[N];
    for (size_t i = 0; i < N; i++) {
        uint64_t v = next(&s) % 40; /* few values: equal keys straddle the splitters */
        memcpy(orig + i * es, &v, es); /* little-endian: the low bytes */
        keys[i] = es == 4 ? hy_to_key_u32((uint32_t)v, &t32) : hy_to_key_u64(v, &t64);
    }
    memcpy(a, orig, N * es);
    struct hy_skey sp[69];
    for (unsigned j = 0; j + 1 < ranks; j++) {
        size_t at = (size_t)(j + 1) * N / ranks;
        sp[j] = (struct hy_skey){keys[at], first + at};
    }
    qsort(sp, ranks - 1, sizeof *sp, cmp_skey);
    struct hy_stree *t = hy_stree_new(sp, ranks - 1);
    cr_assert_not_null(t);
    hy_span_count(a, N, dtype, first, t, cnt, ids);
    for (size_t i = 0; i < N; i++)
        want[reference(sp, ranks - 1, keys[i], first + i)]++;
    for (unsigned b = 0; b < ranks; b++) {
        cr_assert_eq(cnt[b], want[b], "dtype %d ranks %u bucket %u", dtype, ranks, b);
        dst[b] = b ? malloc(cnt[b] * es + 1) : a;
    }
    hy_span_scatter(a, N, es, ids, dst, pos);
    uint64_t seen[70] = {0};
    for (size_t i = 0; i < N; i++) { /* in input order within each bucket */
        unsigned b = reference(sp, ranks - 1, keys[i], first + i);
        cr_assert_eq(memcmp(dst[b] + es * seen[b]++, orig + i * es, es), 0,
                     "dtype %d ranks %u element %zu", dtype, ranks, i);
    }
    for (unsigned b = 1; b < ranks; b++)
        free(dst[b]);
    free(t);
    free(ids);
    free(a);
    free(orig);
}

Test(skey, span_partition_both_widths_in_place)
{
    unsigned ranks[] = {2, 3, 6, 7, 16, 70};
    for (unsigned r = 0; r < sizeof ranks / sizeof *ranks; r++) {
        check_span(HY_DT_U32, ranks[r], 0);
        check_span(HY_DT_I64, ranks[r], 123456);
        check_span(HY_DT_F32, ranks[r], 7);
    }
}
