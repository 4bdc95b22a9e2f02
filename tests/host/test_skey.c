/* tests/host: where a sort span puts an element (common/sortkey.h) — hy_stree_bucket, the tree
 * the span's partition searches, against the definition: the number of splitters below
 * (key, idx) in (key, index) order. Every splitter count around the tree's edges (the loop's
 * range, each power of two, its pads), keys equal to splitters on either side of their
 * index, the extremes 0 and UINT64_MAX, and all splitters equal (all-equal input). */
#include <criterion/criterion.h>

#include <math.h>
#include <stdbool.h>
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
    struct hy_stree *t = hy_stree_new(sp, nsp, HY_DT_U64);
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
    struct hy_stree *t = hy_stree_new(sp, nsp, HY_DT_U64);
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
    struct hy_stree *t = hy_stree_new(sp, ranks - 1, dtype);
    cr_assert_not_null(t);
    hy_span_count(a, N, dtype, first, t, cnt, ids);
    for (size_t i = 0; i < N; i++)
        want[reference(sp, ranks - 1, keys[i], first + i)]++;
    for (unsigned b = 0; b < ranks; b++) {
        cr_assert_eq(cnt[b], want[b], "dtype %d ranks %u bucket %u", dtype, ranks, b);
        dst[b] = b ? malloc(cnt[b] * es + 1) : a;
    }
    hy_span_scatter(a, N, es, ids, ranks, dst, pos);
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

/* The copy pass alone, at sizes where it stages (common/span.c: past 64 buckets and 65536
 * elements, where hy_stage_stores says so; the plain copy elsewhere, which must give the
 * same bytes): ids at random, bucket 0 in place at the array's front, the others at
 * destinations off any stage boundary, in two calls as mpi.c makes them (the second's parts
 * start mid-stage), with guard bytes before and after every part that must stay as they were. */
static void check_copy(size_t es, unsigned nb)
{
    enum { N = 200003, GUARD = 256 };
    uint64_t s = 11 + nb + es;
    char *a = malloc(N * es), *orig = malloc(N * es), *dst[300] = {0}, *mem[300] = {0};
    uint16_t *ids = malloc(N * sizeof *ids);
    uint64_t cnt[300] = {0}, pos[300] = {0}, seen[300] = {0};
    cr_assert(a && orig && ids && nb <= 300);
    for (size_t i = 0; i < N; i++) {
        uint64_t v = next(&s);
        memcpy(orig + i * es, &v, es);
        ids[i] = (uint16_t)(next(&s) % nb);
        cnt[ids[i]]++;
    }
    memcpy(a, orig, N * es);
    for (unsigned b = 1; b < nb; b++) {
        mem[b] = malloc(cnt[b] * es + 2 * GUARD);
        cr_assert_not_null(mem[b]);
        memset(mem[b], 0xA5, cnt[b] * es + 2 * GUARD);
        dst[b] = mem[b] + GUARD + es * (b % 7); /* 8-byte and 4-byte offsets off a stage */
    }
    dst[0] = a;
    size_t half = N / 2 + 5;
    hy_span_scatter(a, half, es, ids, nb, dst, pos);
    hy_span_scatter(a + half * es, N - half, es, ids + half, nb, dst, pos);
    for (unsigned b = 0; b < nb; b++)
        cr_assert_eq(pos[b], cnt[b], "es %zu buckets %u: bucket %u ends at %llu, not %llu", es,
                     nb, b, (unsigned long long)pos[b], (unsigned long long)cnt[b]);
    for (size_t i = 0; i < N; i++) { /* in input order within each bucket */
        unsigned b = ids[i];
        cr_assert_eq(memcmp(dst[b] + es * seen[b]++, orig + i * es, es), 0,
                     "es %zu buckets %u: element %zu in bucket %u", es, nb, i, b);
    }
    for (unsigned b = 1; b < nb; b++) {
        size_t before = (size_t)(dst[b] - mem[b]), after = GUARD - es * (b % 7);
        for (size_t k = 0; k < before; k++)
            cr_assert_eq((unsigned char)mem[b][k], 0xA5, "bucket %u: byte %zu before it", b, k);
        for (size_t k = 0; k < after; k++)
            cr_assert_eq((unsigned char)dst[b][cnt[b] * es + k], 0xA5,
                         "bucket %u: byte %zu past its end", b, k);
        free(mem[b]);
    }
    free(ids);
    free(a);
    free(orig);
}

Test(skey, span_copy_staged_and_plain_both_widths)
{
    unsigned counts[] = {3, 64, 65, 200, 300};
    for (unsigned c = 0; c < sizeof counts / sizeof *counts; c++) {
        check_copy(4, counts[c]);
        check_copy(8, counts[c]);
    }
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

/* ---- the table in front of the tree (hy_span_count) ----
 * Every element's bucket from the count, against the definition, over data the table's
 * functions follow (so most keys take the table) and data they do not (so the tree answers),
 * for the six dtypes, with splitters at the quantiles of (key, index) as a span takes them. */

enum { FILL_BITS, FILL_NARROW, FILL_UNIT, FILL_NORMAL, FILL_SPECIAL, FILL_FEW, FILLS };

/* Element i of a fill, as bits of the dtype's width. */
static uint64_t fill_elem(int dtype, int fill, uint64_t *s)
{
    bool f32 = dtype == HY_DT_F32, f64 = dtype == HY_DT_F64;
    double v;
    switch (fill) {
    case FILL_BITS: return next(s) ^ (next(s) << 53); /* every bit random */
    case FILL_NARROW: return 1000 + next(s) % 5000;   /* a narrow range: ints; tiny floats */
    case FILL_FEW: return (next(s) % 3) * 77;         /* three values */
    case FILL_UNIT: v = (double)next(s) * 0x1p-53; break;
    case FILL_NORMAL: { /* a sum of uniforms, centred: near normal, both signs */
        v = -6;
        for (int j = 0; j < 12; j++)
            v += (double)next(s) * 0x1p-53;
        break;
    }
    default: { /* the floats' edge values among ordinary ones */
        static const double edge[] = {0.0, -0.0, 1e308, -1e308, 5e-324, -5e-324, 1.5, -2.5};
        uint64_t r = next(s) % 12;
        if (r == 8 || r == 9) { /* NaNs of both signs and other payloads */
            uint64_t nan64 = 0x7FF8000000000001ull | (r == 9 ? 1ull << 63 : 0);
            uint32_t nan32 = 0x7FC00001u | (r == 9 ? 1u << 31 : 0);
            return f32 ? nan32 : f64 ? nan64 : nan64;
        }
        v = r < 8 ? edge[r] : r == 10 ? INFINITY : -INFINITY;
    }
    }
    if (f32) {
        float f = (float)v;
        uint32_t b;
        memcpy(&b, &f, sizeof b);
        return b;
    }
    if (f64) {
        uint64_t b;
        memcpy(&b, &v, sizeof b);
        return b;
    }
    int64_t iv = (int64_t)(v * 1e6); /* integers: the same shapes, scaled */
    return (uint64_t)iv;
}

/* Checks one dtype, fill and rank count over N elements; returns the table's function.
 * no_table drops the table after it is built, so that the count takes the paths of a tree
 * without one (few_* and vfew below six ranks). */
static int check_front_n(int dtype, int fill, unsigned ranks, size_t N, bool no_table)
{
    size_t es = hy_dtype_size(dtype);
    /* global indices past 2^32, as a slice of a large file has them */
    uint64_t s = 1000u * (unsigned)fill + ranks + 17u * (unsigned)dtype,
             first = ((uint64_t)1 << 33) + 99;
    char *a = malloc(N * es);
    uint16_t *ids = malloc(N * sizeof *ids);
    struct hy_skey *all = malloc(N * sizeof *all), *sp = malloc(ranks * sizeof *sp);
    uint64_t *cnt = calloc(ranks, sizeof *cnt), *want = calloc(ranks, sizeof *want);
    cr_assert(a && ids && all && sp && cnt && want);
    struct hy_key_spec ks = hy_key_spec_of(dtype);
    struct hy_xform_u32 t32 = hy_xform_u32_of(ks);
    struct hy_xform_u64 t64 = hy_xform_u64_of(ks);
    for (size_t i = 0; i < N; i++) {
        uint64_t e = fill_elem(dtype, fill, &s);
        memcpy(a + i * es, &e, es); /* little-endian: the low bytes */
        uint64_t k = es == 4 ? hy_to_key_u32((uint32_t)e, &t32) : hy_to_key_u64(e, &t64);
        all[i] = (struct hy_skey){k, first + i};
    }
    struct hy_skey *sorted = malloc(N * sizeof *sorted);
    cr_assert_not_null(sorted);
    memcpy(sorted, all, N * sizeof *all);
    qsort(sorted, N, sizeof *sorted, cmp_skey);
    for (unsigned j = 0; j + 1 < ranks; j++)
        sp[j] = sorted[(size_t)(j + 1) * N / ranks];
    struct hy_stree *t = hy_stree_new(sp, ranks - 1, dtype);
    cr_assert_not_null(t);
    if (no_table)
        t->front = HY_SFRONT_NONE;
    /* in two calls cut off a step's multiple, as a span counts its slice in blocks: the
     * second call's counts add to the first's */
    size_t cut = N / 3 + (N > 5 ? 5 : 0);
    hy_span_count(a, cut, dtype, first, t, cnt, ids);
    hy_span_count(a + cut * es, N - cut, dtype, first + cut, t, cnt, ids + cut);
    for (size_t i = 0; i < N; i++) {
        unsigned b = reference(sp, ranks - 1, all[i].key, all[i].idx);
        cr_assert_eq(ids[i], b, "dtype %d fill %d ranks %u element %zu", dtype, fill, ranks, i);
        want[b]++;
    }
    for (unsigned b = 0; b < ranks; b++)
        cr_assert_eq(cnt[b], want[b], "dtype %d fill %d ranks %u bucket %u", dtype, fill,
                     ranks, b);
    /* Quantile splitters of distinct keys: every bucket gets its share exactly. */
    if (fill != FILL_FEW && fill != FILL_SPECIAL)
        for (unsigned b = 0; b < ranks; b++)
            cr_assert_leq(cnt[b], N / ranks + 2, "dtype %d fill %d bucket %u", dtype, fill, b);
    int front = t->front;
    free(t);
    free(sorted);
    free(a);
    free(ids);
    free(all);
    free(sp);
    free(cnt);
    free(want);
    return front;
}

static int check_front(int dtype, int fill, unsigned ranks)
{
    return check_front_n(dtype, fill, ranks, 20000, false);
}

/* Two to seven ranks without a table: every element's bucket and every count against the
 * definition, for the six dtypes and every fill (ties on the splitters' keys, broken by
 * index, in FILL_FEW), over lengths that leave the vector loop a tail of every size. */
static void check_few(void)
{
    int dtypes[] = {HY_DT_I32, HY_DT_U32, HY_DT_I64, HY_DT_U64, HY_DT_F32, HY_DT_F64};
    size_t lengths[] = {1, 7, 8, 9, 4003, 20005};
    for (unsigned ranks = 2; ranks <= 7; ranks++)
        for (size_t d = 0; d < sizeof dtypes / sizeof *dtypes; d++)
            for (int fill = 0; fill < FILLS; fill++)
                for (size_t l = 0; l < sizeof lengths / sizeof *lengths; l++)
                    check_front_n(dtypes[d], fill, ranks, lengths[l], true);
}

Test(skey, span_count_few_splitters_against_the_definition)
{
    check_few();
}

/* The same by the scalar loops, which CPUs without AVX-512 take (this process only: each
 * Criterion test runs in its own). */
Test(skey, span_count_few_splitters_portable)
{
    cr_assert_eq(setenv("HYBRIDD_TEST_SORT_PORTABLE", "1", 1), 0);
    check_few();
    /* and below six ranks with a table, which only such CPUs search */
    int dtypes[] = {HY_DT_I32, HY_DT_U64, HY_DT_F32, HY_DT_F64};
    for (size_t d = 0; d < sizeof dtypes / sizeof *dtypes; d++)
        for (unsigned ranks = 3; ranks <= 6; ranks++)
            cr_assert_neq(check_front(dtypes[d], FILL_UNIT, ranks), HY_SFRONT_NONE);
}

Test(skey, span_count_table_against_the_definition)
{
    int dtypes[] = {HY_DT_I32, HY_DT_U32, HY_DT_I64, HY_DT_U64, HY_DT_F32, HY_DT_F64};
    unsigned ranks[] = {2, 3, 5, 16, 64, 300};
    for (unsigned d = 0; d < 6; d++)
        for (int fill = 0; fill < FILLS; fill++)
            for (unsigned r = 0; r < sizeof ranks / sizeof *ranks; r++) {
                int front = check_front(dtypes[d], fill, ranks[r]);
                bool fp = dtypes[d] == HY_DT_F32 || dtypes[d] == HY_DT_F64;
                /* The data the table is for takes it, so the loop above checked its
                 * answers, not only the tree's: floats of [0, 1) and near-normal ones by
                 * value, random bits and narrow integers by key. */
                if (ranks[r] >= 3 && fp && (fill == FILL_UNIT || fill == FILL_NORMAL))
                    cr_assert_eq(front, HY_SFRONT_VALUE, "dtype %d fill %d ranks %u",
                                 dtypes[d], fill, ranks[r]);
                if (ranks[r] >= 3 && (fill == FILL_BITS || (!fp && fill == FILL_NARROW)))
                    cr_assert_neq(front, HY_SFRONT_NONE, "dtype %d fill %d ranks %u",
                                  dtypes[d], fill, ranks[r]);
            }
}

/* A cell that holds a splitter sends its keys to the tree, which splits equal keys by index:
 * keys equal to a splitter's, at indices on both sides of its, under the table. */
Test(skey, span_count_table_sends_splitter_cells_to_the_tree)
{
    enum { N = 4096 };
    double v[N];
    for (size_t i = 0; i < N; i++)
        v[i] = (double)(i % 1024) / 1024; /* each value four times, at i, i+1024, ... */
    struct hy_xform_u64 x = hy_xform_u64_of(hy_key_spec_of(HY_DT_F64));
    struct hy_skey sp[7];
    for (unsigned j = 0; j < 7; j++) { /* value (j+1)/8, splitting its 4 copies 2 and 2 */
        uint64_t b;
        double sv = (double)(j + 1) / 8;
        memcpy(&b, &sv, sizeof b);
        sp[j] = (struct hy_skey){hy_to_key_u64(b, &x), (size_t)((j + 1) * 128) + 1024};
    }
    struct hy_stree *t = hy_stree_new(sp, 7, HY_DT_F64);
    cr_assert_not_null(t);
    cr_assert_eq(t->front, HY_SFRONT_VALUE);
    uint64_t cnt[8] = {0};
    uint16_t ids[N];
    hy_span_count(v, N, HY_DT_F64, 0, t, cnt, ids);
    for (size_t i = 0; i < N; i++) {
        uint64_t b;
        memcpy(&b, &v[i], sizeof b);
        cr_assert_eq(ids[i], reference(sp, 7, hy_to_key_u64(b, &x), i), "element %zu", i);
    }
    /* Bucket j: value (j+1)/8's first two copies close it, its last two open bucket j+1. */
    for (unsigned j = 0; j < 8; j++)
        cr_assert_eq(cnt[j], 512u + (j == 0 ? 2 : 0) - (j == 7 ? 2 : 0),
                     "bucket %u", j);
    free(t);
}
