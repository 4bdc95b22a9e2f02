/* common/span: a sort span's partition (sortkey.h declares it), one definition for the asking
 * rank of a client's array (daemon/ranks.c) and for every rank's slice of a .npy file
 * (mpi/mpi.c). Two passes: the count finds each key's bucket once and keeps it in a
 * two-byte id; the copy reads the ids back instead of searching again, which took 40% off
 * the pair at 16 ranks and more (bench/partition-bench). A key's bucket comes from the
 * splitter tree's table where its cell holds no splitter, from the tree otherwise
 * (sortkey.h). Each loop is written once per key width and table function, so that none
 * holds a branch on the dtype. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sortkey.h"

static void stree_fill(struct hy_stree *t, unsigned node, unsigned *next)
{
    unsigned m = 1u << t->lg;
    if (node >= m)
        return;
    stree_fill(t, 2 * node, next);
    t->key[node] = *next < t->nsp ? t->sp[*next].key : UINT64_MAX;
    (*next)++;
    stree_fill(t, 2 * node + 1, next);
}

/* The value of a float dtype's element whose key is k. */
static double key_value(int dtype, uint64_t k)
{
    struct hy_key_spec ks = hy_key_spec_of(dtype);
    if (dtype == HY_DT_F32) {
        struct hy_xform_u32 x = hy_xform_u32_of(ks);
        uint32_t e = hy_from_key_u32((uint32_t)k, &x);
        float f;
        memcpy(&f, &e, sizeof f);
        return f;
    }
    struct hy_xform_u64 x = hy_xform_u64_of(ks);
    uint64_t e = hy_from_key_u64(k, &x);
    double d;
    memcpy(&d, &e, sizeof d);
    return d;
}

/* Each splitter's cell under t's function, into c[] (non-decreasing, as the splitters are
 * sorted and the function is monotone); returns the share of keys expected in cells that
 * hold a splitter. Between splitters j and j + 1 lie about 1/(nsp + 1) of the keys, over the
 * cells c[j] .. c[j + 1], of which the two ends hold a splitter: about 2/(gap + 1) of them,
 * if the function follows the data there. */
static double front_cells(const struct hy_stree *t, int dtype, size_t *c)
{
    for (unsigned j = 0; j < t->nsp; j++)
        c[j] = t->front == HY_SFRONT_KEY ? hy_sfront_key(t, t->sp[j].key)
                                         : hy_sfront_value(t, key_value(dtype, t->sp[j].key));
    double miss = 0;
    for (unsigned j = 0; j + 1 < t->nsp; j++) {
        double gap = (double)(c[j + 1] - c[j]);
        miss += gap < 1 ? 1 : 2 / (gap + 1);
    }
    return miss / (t->nsp + 1);
}

/* Sets the value function over the splitters' finite values; false when they have no
 * usable range (one value, or a range or scale that overflows). */
static bool value_fit(struct hy_stree *t, int dtype)
{
    double lo = INFINITY, hi = -INFINITY;
    for (unsigned j = 0; j < t->nsp; j++) {
        double v = key_value(dtype, t->sp[j].key);
        if (isfinite(v)) {
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
    }
    double range = hi - lo, scale = (HY_SFRONT_CELLS - 1) / range;
    if (!(range > 0) || !isfinite(range) || !isfinite(scale) || !(scale > 0))
        return false;
    t->vlo = lo;
    t->vscale = scale;
    return true;
}

/* Whether a tree over nsp splitters may have a table. One splitter: hy_bucket_of's one
 * compare beat the table's load (1.6 ns a key against 1.9, bench/partition-bench); and
 * bucket numbers must stay below the table's mark. */
static bool front_possible(unsigned nsp)
{
    return nsp >= 2 && nsp < HY_SFRONT_SEARCH;
}

/* Builds the table: of the key function and, for floats, the value function, the one whose
 * cells separate the splitters better; none when even that one would send over half of the
 * keys to the tree (few distinct keys: the table would only add its load). */
static void front_build(struct hy_stree *t, int dtype)
{
    t->front = HY_SFRONT_NONE;
    if (!front_possible(t->nsp))
        return;
    size_t *c = malloc(t->nsp * sizeof *c);
    if (!c)
        return; /* the tree alone answers every key */
    uint64_t span = t->sp[t->nsp - 1].key - t->sp[0].key;
    t->lo = t->sp[0].key;
    t->shift = 0;
    while ((span >> t->shift) > HY_SFRONT_CELLS - 1)
        t->shift++;
    t->front = HY_SFRONT_KEY;
    double miss = front_cells(t, dtype, c);
    if ((dtype == HY_DT_F32 || dtype == HY_DT_F64) && value_fit(t, dtype)) {
        t->front = HY_SFRONT_VALUE;
        double vmiss = front_cells(t, dtype, c);
        if (vmiss >= miss) { /* the key function it is: its cells again */
            t->front = HY_SFRONT_KEY;
            front_cells(t, dtype, c);
        } else {
            miss = vmiss;
        }
    }
    if (miss > 0.5) {
        t->front = HY_SFRONT_NONE;
        free(c);
        return;
    }
    unsigned j = 0;
    for (size_t e = 0; e < HY_SFRONT_CELLS + 2; e++) {
        unsigned below = j;
        while (j < t->nsp && c[j] == e)
            j++;
        t->cell[e] = (uint16_t)(j > below ? HY_SFRONT_SEARCH : below);
    }
    free(c);
}

struct hy_stree *hy_stree_new(const struct hy_skey *sp, unsigned nsp, int dtype)
{
    unsigned lg = 0;
    while (((size_t)1 << lg) < (size_t)nsp + 1)
        lg++;
    size_t keys = nsp >= HY_STREE_LINEAR ? (size_t)1 << lg : 0;
    size_t cells = front_possible(nsp) ? HY_SFRONT_CELLS + 2 : 0;
    struct hy_stree *t =
        malloc(sizeof *t + keys * sizeof(uint64_t) + cells * sizeof(uint16_t));
    if (!t)
        return NULL;
    *t = (struct hy_stree){.sp = sp, .nsp = nsp, .lg = lg};
    t->cell = (uint16_t *)(void *)(t->key + keys);
    unsigned next = 0;
    if (keys)
        stree_fill(t, 1, &next);
    front_build(t, dtype);
    return t;
}

static inline double f32_value(uint32_t e)
{
    float f;
    memcpy(&f, &e, sizeof f);
    return f;
}

static inline double f64_value(uint64_t e)
{
    double d;
    memcpy(&d, &e, sizeof d);
    return d;
}

/* The count by the tree alone, and by the table (CELL names a key's cell) then the tree. */
#define SPAN_COUNT(W, T, XFORM_OF, TO_KEY)                                                    \
    static void count_##W(const void *av, uint64_t n, struct hy_key_spec ks, uint64_t first, \
                          const struct hy_stree *t, uint64_t *cnt, uint16_t *ids)            \
    {                                                                                          \
        const T *a = av;                                                                       \
        const struct hy_xform_##W x = XFORM_OF(ks);                                           \
        for (uint64_t i = 0; i < n; i++) {                                                     \
            unsigned b = hy_stree_bucket(t, TO_KEY(a[i], &x), first + i);                     \
            ids[i] = (uint16_t)b;                                                              \
            cnt[b]++;                                                                          \
        }                                                                                      \
    }
#define SPAN_COUNT_FRONT(NAME, W, T, XFORM_OF, TO_KEY, CELL)                                  \
    static void NAME(const void *av, uint64_t n, struct hy_key_spec ks, uint64_t first,      \
                     const struct hy_stree *t, uint64_t *cnt, uint16_t *ids)                 \
    {                                                                                          \
        const T *a = av;                                                                       \
        const struct hy_xform_##W x = XFORM_OF(ks);                                           \
        const uint16_t *cell = t->cell;                                                        \
        for (uint64_t i = 0; i < n; i++) {                                                     \
            T e = a[i];                                                                        \
            uint64_t k = TO_KEY(e, &x);                                                        \
            unsigned b = cell[CELL];                                                           \
            if (b == HY_SFRONT_SEARCH)                                                         \
                b = hy_stree_bucket(t, k, first + i);                                          \
            ids[i] = (uint16_t)b;                                                              \
            cnt[b]++;                                                                          \
        }                                                                                      \
    }
SPAN_COUNT(u32, uint32_t, hy_xform_u32_of, hy_to_key_u32)
SPAN_COUNT(u64, uint64_t, hy_xform_u64_of, hy_to_key_u64)
SPAN_COUNT_FRONT(count_key_u32, u32, uint32_t, hy_xform_u32_of, hy_to_key_u32, hy_sfront_key(t, k))
SPAN_COUNT_FRONT(count_key_u64, u64, uint64_t, hy_xform_u64_of, hy_to_key_u64, hy_sfront_key(t, k))
SPAN_COUNT_FRONT(count_value_f32, u32, uint32_t, hy_xform_u32_of, hy_to_key_u32,
                 hy_sfront_value(t, f32_value(e)))
SPAN_COUNT_FRONT(count_value_f64, u64, uint64_t, hy_xform_u64_of, hy_to_key_u64,
                 hy_sfront_value(t, f64_value(e)))

/* The count by a few splitters (t->nsp < HY_STREE_LINEAR: two to six ranks), with the
 * splitter count a constant so that the compares unroll. No key's count is
 * stored: above[j] counts the keys past splitter j in a register, and a bucket's count is
 * the difference of two of them. With a count stored per key, at 2 ranks each increment
 * waited for the last one to the same counter: 1.9 ns a key against 1.45 this way (10^7
 * normal f64, `partition-bench --ranks 2`, in turns). */
#define SPAN_COUNT_FEW(W, T, XFORM_OF, TO_KEY)                                                \
    static inline __attribute__((always_inline)) void few_##W##_body(                        \
        const T *a, uint64_t n, const struct hy_xform_##W *x, uint64_t first,                \
        const struct hy_skey *sp, const unsigned nsp, uint64_t *cnt, uint16_t *ids)          \
    {                                                                                          \
        uint64_t above[HY_STREE_LINEAR] = {0};                                                 \
        for (uint64_t i = 0; i < n; i++) {                                                     \
            uint64_t k = TO_KEY(a[i], x), idx = first + i;                                     \
            unsigned b = 0;                                                                    \
            for (unsigned j = 0; j < nsp; j++) {                                               \
                unsigned past =                                                                \
                    (unsigned)((sp[j].key < k) | ((sp[j].key == k) & (sp[j].idx < idx)));      \
                above[j] += past;                                                              \
                b += past;                                                                     \
            }                                                                                  \
            ids[i] = (uint16_t)b;                                                              \
        }                                                                                      \
        cnt[0] += n - above[0];                                                                \
        for (unsigned j = 1; j < nsp; j++)                                                     \
            cnt[j] += above[j - 1] - above[j];                                                 \
        cnt[nsp] += above[nsp - 1];                                                            \
    }                                                                                          \
    static void few_##W(const void *av, uint64_t n, struct hy_key_spec ks, uint64_t first,   \
                        const struct hy_stree *t, uint64_t *cnt, uint16_t *ids)              \
    {                                                                                          \
        const struct hy_xform_##W x = XFORM_OF(ks);                                           \
        switch (t->nsp) {                                                                      \
        case 1: few_##W##_body(av, n, &x, first, t->sp, 1, cnt, ids); break;                  \
        case 2: few_##W##_body(av, n, &x, first, t->sp, 2, cnt, ids); break;                  \
        case 3: few_##W##_body(av, n, &x, first, t->sp, 3, cnt, ids); break;                  \
        case 4: few_##W##_body(av, n, &x, first, t->sp, 4, cnt, ids); break;                  \
        default: few_##W##_body(av, n, &x, first, t->sp, 5, cnt, ids); break;                \
        }                                                                                      \
    }
SPAN_COUNT_FEW(u32, uint32_t, hy_xform_u32_of, hy_to_key_u32)
SPAN_COUNT_FEW(u64, uint64_t, hy_xform_u64_of, hy_to_key_u64)
_Static_assert(HY_STREE_LINEAR == 6, "few_*'s switch covers one to five splitters");

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define T512 __attribute__((target("avx512f")))

/* The same count in 512-bit vectors (AVX-512F), 8 keys a step (32-bit keys widened to 64):
 * each splitter's compare gives a mask of the keys past it, whose population is added to
 * above[j] and which adds one to those keys' buckets. The elements are read 32 or 64 bytes
 * at a time, and this guest streams memory to vector loads at twice the rate of scalar
 * ones (12.9 against 6.3 GB/s, a plain sum over 80 MB). At 2 ranks 0.85 ns a key against
 * few_u64's 1.45. Returns how many elements it counted, a multiple of 8; few_* counts the
 * rest. */
struct vfew {
    unsigned nsp;
    __m512i spk[HY_STREE_LINEAR], spi[HY_STREE_LINEAR];
    uint64_t above[HY_STREE_LINEAR];
};

T512 static inline void vfew_step(struct vfew *v, __m512i k, __m512i idx, uint16_t *ids)
{
    const __m512i one = _mm512_set1_epi64(1);
    __m512i b = _mm512_setzero_si512();
    for (unsigned j = 0; j < v->nsp; j++) {
        __mmask8 past = _mm512_cmpgt_epu64_mask(k, v->spk[j]) |
                        (_mm512_cmpeq_epu64_mask(k, v->spk[j]) &
                         _mm512_cmpgt_epu64_mask(idx, v->spi[j]));
        v->above[j] += (unsigned)__builtin_popcount(past);
        b = _mm512_mask_add_epi64(b, past, b, one);
    }
    _mm_storeu_si128((__m128i *)(void *)ids, _mm512_cvtepi64_epi16(b));
}

T512 static uint64_t vfew(const void *av, uint64_t n, int dtype, uint64_t first,
                          const struct hy_stree *t, uint64_t *cnt, uint16_t *ids)
{
    struct vfew v = {.nsp = t->nsp};
    for (unsigned j = 0; j < v.nsp; j++) {
        v.spk[j] = _mm512_set1_epi64((long long)t->sp[j].key);
        v.spi[j] = _mm512_set1_epi64((long long)t->sp[j].idx);
    }
    struct hy_key_spec ks = hy_key_spec_of(dtype);
    __m512i idx = _mm512_add_epi64(_mm512_set1_epi64((long long)first),
                                   _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0));
    const __m512i eight = _mm512_set1_epi64(8);
    uint64_t i = 0;
    if (hy_dtype_size(dtype) == 4) {
        const struct hy_xform_u32 x = hy_xform_u32_of(ks);
        const __m256i pos = _mm256_set1_epi32((int)x.pos);
        const __m256i nxp = _mm256_set1_epi32((int)x.neg_xor_pos);
        const __m256i rot = _mm256_set1_epi32((int)x.rot);
        const uint32_t *a = av;
        for (; i + 8 <= n; i += 8, idx = _mm512_add_epi64(idx, eight)) {
            __m256i e = _mm256_loadu_si256((const __m256i *)(const void *)(a + i));
            __m256i m = _mm256_xor_si256(_mm256_and_si256(_mm256_srai_epi32(e, 31), nxp), pos);
            __m256i k = _mm256_sub_epi32(_mm256_xor_si256(e, m), rot);
            vfew_step(&v, _mm512_cvtepu32_epi64(k), idx, ids + i);
        }
    } else {
        const struct hy_xform_u64 x = hy_xform_u64_of(ks);
        const __m512i pos = _mm512_set1_epi64((long long)x.pos);
        const __m512i nxp = _mm512_set1_epi64((long long)x.neg_xor_pos);
        const __m512i rot = _mm512_set1_epi64((long long)x.rot);
        const uint64_t *a = av;
        for (; i + 8 <= n; i += 8, idx = _mm512_add_epi64(idx, eight)) {
            __m512i e = _mm512_loadu_si512(a + i);
            __m512i m = _mm512_xor_si512(_mm512_and_si512(_mm512_srai_epi64(e, 63), nxp), pos);
            vfew_step(&v, _mm512_sub_epi64(_mm512_xor_si512(e, m), rot), idx, ids + i);
        }
    }
    cnt[0] += i - v.above[0];
    for (unsigned j = 1; j < v.nsp; j++)
        cnt[j] += v.above[j - 1] - v.above[j];
    cnt[v.nsp] += v.above[v.nsp - 1];
    return i;
}

/* Whether the vector loop may run: AVX-512F, and not a test of the portable paths
 * (HYBRIDD_TEST_SORT_PORTABLE, as for the sort's). */
static bool span_avx512(void)
{
    static atomic_int portable = -1;
    return __builtin_cpu_supports("avx512f") &&
           !hy_env_flag("HYBRIDD_TEST_SORT_PORTABLE", &portable);
}
#else
static bool span_avx512(void)
{
    return false;
}

static uint64_t vfew(const void *a, uint64_t n, int dtype, uint64_t first,
                     const struct hy_stree *t, uint64_t *cnt, uint16_t *ids)
{
    (void)a, (void)n, (void)dtype, (void)first, (void)t, (void)cnt, (void)ids;
    return 0;
}
#endif

typedef void count_fn(const void *a, uint64_t n, struct hy_key_spec ks, uint64_t first,
                      const struct hy_stree *t, uint64_t *cnt, uint16_t *ids);

void hy_span_count(const void *a, uint64_t n, int dtype, uint64_t first,
                   const struct hy_stree *t, uint64_t *cnt, uint16_t *ids)
{
    /* [front][narrow]: the count loop of each table function and key width */
    static count_fn *const counts[3][2] = {
        [HY_SFRONT_NONE] = {count_u64, count_u32},
        [HY_SFRONT_KEY] = {count_key_u64, count_key_u32},
        [HY_SFRONT_VALUE] = {count_value_f64, count_value_f32},
    };
    static count_fn *const few[2] = {few_u64, few_u32};
    bool narrow = hy_dtype_size(dtype) == 4, vec = span_avx512();
    /* Up to five splitters the vector compares beat the table (ns a key, 10^7 normal f64,
     * `partition-bench --ranks 3,4,6`, in turns: 1.15 against 1.97 at 3 ranks, 1.29
     * against 2.01 at 4, 1.56 against 2.10 at 6); the scalar ones only where there is none. */
    if (t->nsp >= 1 && t->nsp < HY_STREE_LINEAR && (vec || t->front == HY_SFRONT_NONE)) {
        uint64_t done = vec ? vfew(a, n, dtype, first, t, cnt, ids) : 0;
        few[narrow]((const char *)a + done * hy_dtype_size(dtype), n - done,
                    hy_key_spec_of(dtype), first + done, t, cnt, ids + done);
    } else {
        counts[t->front][narrow](a, n, hy_key_spec_of(dtype), first, t, cnt, ids);
    }
}

#define SPAN_SCATTER(W, T)                                                                     \
    static void scatter_##W(const T *a, uint64_t n, const uint16_t *ids, char *const *dst,   \
                            uint64_t *pos)                                                     \
    {                                                                                          \
        for (uint64_t i = 0; i < n; i++) {                                                     \
            unsigned b = ids[i];                                                               \
            T x = a[i];                                                                        \
            memcpy(dst[b] + sizeof(T) * pos[b]++, &x, sizeof(T));                              \
        }                                                                                      \
    }
SPAN_SCATTER(u32, uint32_t)
SPAN_SCATTER(u64, uint64_t)

#if defined(__x86_64__) && defined(__GNUC__)
#include <emmintrin.h>

/* The staged copy (hy_stage_stores): each bucket's elements wait in a stage of SPAN_STAGE
 * bytes, slot = the destination address mod SPAN_STAGE, and a stage whose every slot this
 * call wrote goes out whole in non-temporal stores; the stage a bucket's part starts or
 * ends in goes element by element. On the Intel Xeon guest (`partition-bench --ranks ...
 * --repeat 5`, 10^7 f64 into warm memory, ns a key, plain against staged) the plain copy
 * jumps past 64 buckets: 3: 1.5-1.7 against 2.4, 16: 1.8 against 2.3, 64: 2.1 against 2.2-2.4,
 * 72: 7.0 against 2.3, 128: 7.5-7.7 against 2.3-2.4, 256: 8.1 against 2.3-2.4. So the
 * copy stages from SPAN_STAGE_BUCKETS buckets up. */
#define SPAN_STAGE 128u
#define SPAN_STAGE_BUCKETS 65u
/* Below this many elements the stages' allocation and flush cost more than they save. */
#define SPAN_STAGE_MIN 65536u

#define SPAN_STAGED(W, T)                                                                      \
    static void staged_##W(const T *a, uint64_t n, const uint16_t *ids, char *const *dst,    \
                           uint64_t *pos, unsigned nb, T *stages, char **from)                 \
    {                                                                                          \
        const size_t lk = SPAN_STAGE / sizeof(T);                                              \
        for (unsigned b = 0; b < nb; b++)                                                      \
            from[b] = dst[b] ? dst[b] + sizeof(T) * pos[b] : NULL;                             \
        for (uint64_t i = 0; i < n; i++) {                                                     \
            unsigned b = ids[i];                                                               \
            char *at = dst[b] + sizeof(T) * pos[b]++;                                          \
            size_t slot = ((uintptr_t)at % SPAN_STAGE) / sizeof(T);                            \
            T *st = stages + (size_t)b * lk;                                                   \
            st[slot] = a[i];                                                                   \
            if (slot != lk - 1)                                                                \
                continue;                                                                      \
            char *s0 = at - (SPAN_STAGE - sizeof(T));                                          \
            if (s0 >= from[b]) {                                                               \
                for (unsigned q = 0; q < SPAN_STAGE / 16; q++)                                 \
                    _mm_stream_si128((__m128i *)(void *)(s0 + 16 * q),                         \
                                     _mm_load_si128((const __m128i *)(const void *)st + q));   \
                continue;                                                                      \
            }                                                                                  \
            for (char *p = from[b]; p <= at; p += sizeof(T)) /* the stage it started in */    \
                memcpy(p, &st[((uintptr_t)p % SPAN_STAGE) / sizeof(T)], sizeof(T));            \
        }                                                                                      \
        for (unsigned b = 0; b < nb; b++) { /* each part's last, unfinished stage */           \
            if (!dst[b])                                                                       \
                continue;                                                                      \
            char *end = dst[b] + sizeof(T) * pos[b];                                           \
            char *s0 = end - (uintptr_t)end % SPAN_STAGE;                                      \
            const T *st = stages + (size_t)b * lk;                                             \
            for (char *p = s0 > from[b] ? s0 : from[b]; p < end; p += sizeof(T))                \
                memcpy(p, &st[((uintptr_t)p % SPAN_STAGE) / sizeof(T)], sizeof(T));            \
        }                                                                                      \
        _mm_sfence(); /* the streamed stages, in order before anyone reads the buckets */     \
    }
SPAN_STAGED(u32, uint32_t)
SPAN_STAGED(u64, uint64_t)

/* Whether the staged copy serves: enough elements and buckets, and every destination
 * aligned to an element (its slots are found from addresses). Allocates the stages and the
 * parts' starts. */
static bool staged_ok(uint64_t n, size_t esize, unsigned nb, char *const *dst, void **stages,
                      char ***from)
{
    if (n < SPAN_STAGE_MIN || nb < SPAN_STAGE_BUCKETS || !hy_stage_stores())
        return false;
    for (unsigned b = 0; b < nb; b++)
        if ((uintptr_t)dst[b] % esize != 0)
            return false;
    *stages = aligned_alloc(SPAN_STAGE, (size_t)nb * SPAN_STAGE);
    *from = malloc((size_t)nb * sizeof **from);
    if (*stages && *from)
        return true;
    free(*stages);
    free(*from);
    return false;
}
#endif

void hy_span_scatter(const void *a, uint64_t n, size_t esize, const uint16_t *ids, unsigned nb,
                     char *const *dst, uint64_t *pos)
{
#if defined(__x86_64__) && defined(__GNUC__)
    void *stages = NULL;
    char **from = NULL;
    if (staged_ok(n, esize, nb, dst, &stages, &from)) {
        if (esize == 4)
            staged_u32(a, n, ids, dst, pos, nb, stages, from);
        else
            staged_u64(a, n, ids, dst, pos, nb, stages, from);
        free(stages);
        free(from);
        return;
    }
#else
    (void)nb;
#endif
    if (esize == 4)
        scatter_u32(a, n, ids, dst, pos);
    else
        scatter_u64(a, n, ids, dst, pos);
}
