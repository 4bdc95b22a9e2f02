/* mem-bench: what moving an array costs on this machine, the floor under any sort of an array
 * larger than the caches. A sort must read every element and write it where it goes at least
 * twice (once to spread the array out, once to put each part in order), so twice the copy
 * time below bounds the fastest possible sort from underneath.
 *
 *   mem-bench [-n ELEMENTS] [--size BYTES_PER_ELEMENT] [--threads LIST] [--repeat R]
 *             [--scatter BITS] [--vector]
 *
 * Each thread copies (memcpy) or reads (a sum) its contiguous share; the median and minimum
 * of R runs after a warm-up are printed, with GB/s counting the bytes read plus written.
 *
 * --scatter BITS adds the first pass of a radix sort alone, on one thread: every 8-byte word
 * to its bucket (its top BITS bits) at offsets a count gave, once with one store a word
 * ("scatter") and once with each bucket's words gathered into two cache lines that are then
 * written whole and non-temporally ("staged", as host/sort.c's staged scatter does), in
 * turns, R runs each.
 *
 * --vector adds what the vector instructions of a sorting network cost on this CPU (x86-64
 * with AVX-512 only): 12 independent chains of one instruction kind (or two kinds in turns),
 * ns per instruction; host/sort_net.inc's compare-exchanges are made of these. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#if defined(__x86_64__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include <time.h>
#define HAVE_VECTOR_PROBE 1
#endif

#define MAX_THREADS 64
/* --scatter's stage: two cache lines of words a bucket. */
#define STAGE_WORDS 16u

struct share {
    const uint64_t *src;
    uint64_t *dst; /* NULL: read only */
    size_t words;
    uint64_t sum;
};

static void *work(void *arg)
{
    struct share *s = arg;
    if (s->dst) {
        memcpy(s->dst, s->src, s->words * sizeof *s->src);
    } else {
        uint64_t sum = 0;
        for (size_t i = 0; i < s->words; i++)
            sum += s->src[i];
        s->sum = sum;
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* One run over `words` words on t threads; its wall time in ns, or 0 on failure. */
static uint64_t run(const uint64_t *src, uint64_t *dst, size_t words, unsigned t, uint64_t *sink)
{
    pthread_t th[MAX_THREADS];
    struct share sh[MAX_THREADS];
    uint64_t t0 = hy_now_ns();
    for (unsigned i = 0; i < t; i++) {
        size_t lo = words * i / t, hi = words * (i + 1) / t;
        sh[i] = (struct share){src + lo, dst ? dst + lo : NULL, hi - lo, 0};
        if (pthread_create(&th[i], NULL, work, &sh[i]) != 0)
            return 0;
    }
    for (unsigned i = 0; i < t; i++) {
        pthread_join(th[i], NULL);
        *sink += sh[i].sum;
    }
    return hy_now_ns() - t0;
}

/* One scatter of `words` words into 2^bits buckets whose first slots are start[] (stage
 * multiples when staged); its wall time in ns. */
static uint64_t scatter(const uint64_t *src, uint64_t *dst, size_t words, unsigned bits,
                        bool staged, const size_t *start, size_t *cur, uint64_t *stage,
                        unsigned *fill)
{
    size_t nb = (size_t)1 << bits;
    unsigned shift = 64u - bits;
    uint64_t t0 = hy_now_ns();
    memcpy(cur, start, nb * sizeof *cur);
    if (!staged) {
        for (size_t i = 0; i < words; i++)
            dst[cur[src[i] >> shift]++] = src[i];
        return hy_now_ns() - t0;
    }
    memset(fill, 0, nb * sizeof *fill);
    for (size_t i = 0; i < words; i++) {
        size_t b = src[i] >> shift;
        uint64_t *st = stage + b * STAGE_WORDS;
        st[fill[b]] = src[i];
        if (++fill[b] < STAGE_WORDS)
            continue;
#if defined(__x86_64__)
        for (unsigned q = 0; q < STAGE_WORDS; q += 2)
            _mm_stream_si128((__m128i *)(void *)(dst + cur[b] + q),
                             _mm_load_si128((const __m128i *)(const void *)(st + q)));
#else
        memcpy(dst + cur[b], st, STAGE_WORDS * sizeof *st);
#endif
        cur[b] += STAGE_WORDS;
        fill[b] = 0;
    }
    for (size_t b = 0; b < nb; b++) /* the part-filled stages */
        memcpy(dst + cur[b], stage + b * STAGE_WORDS, fill[b] * sizeof *stage);
#if defined(__x86_64__)
    _mm_sfence();
#endif
    return hy_now_ns() - t0;
}

/* --scatter's two ways in turns, R runs each after a warm-up of each. */
static int scatter_bench(const uint64_t *src, size_t words, unsigned bits, unsigned repeat)
{
    size_t nb = (size_t)1 << bits;
    size_t *cnt = calloc(nb, sizeof *cnt), *start = malloc(nb * sizeof *start);
    size_t *cur = malloc(nb * sizeof *cur);
    unsigned *fill = malloc(nb * sizeof *fill);
    uint64_t *stage = aligned_alloc(64, nb * STAGE_WORDS * sizeof *stage);
    uint64_t *dst = aligned_alloc(64, (words + nb * STAGE_WORDS) * sizeof *dst);
    uint64_t *ns[2] = {calloc(repeat, 8), calloc(repeat, 8)};
    int rc = 1;
    if (!cnt || !start || !cur || !fill || !stage || !dst || !ns[0] || !ns[1]) {
        fprintf(stderr, "mem-bench: out of memory for the scatter\n");
        goto out;
    }
    for (size_t i = 0; i < words; i++)
        cnt[src[i] >> (64u - bits)]++;
    /* Each bucket starts at a stage multiple, for both ways alike. */
    for (size_t b = 0, at = 0; b < nb; b++) {
        start[b] = at;
        at += (cnt[b] + STAGE_WORDS - 1) / STAGE_WORDS * STAGE_WORDS;
    }
    memset(dst, 0, (words + nb * STAGE_WORDS) * sizeof *dst); /* no page faults when timed */
    for (int way = 0; way < 2; way++)
        scatter(src, dst, words, bits, way, start, cur, stage, fill);
    for (unsigned r = 0; r < repeat; r++)
        for (int way = 0; way < 2; way++)
            ns[way][r] = scatter(src, dst, words, bits, way, start, cur, stage, fill);
    for (int way = 0; way < 2; way++) {
        qsort(ns[way], repeat, sizeof *ns[way], cmp_u64);
        printf("%-7s %6u %10.2f %10.2f %10.2f\n", way ? "staged" : "scatter", bits,
               (double)ns[way][repeat / 2] / 1e6, (double)ns[way][0] / 1e6,
               (double)ns[way][repeat / 2] / (double)words);
    }
    rc = 0;
out:
    free(cnt);
    free(start);
    free(cur);
    free(fill);
    free(stage);
    free(dst);
    free(ns[0]);
    free(ns[1]);
    return rc;
}

#ifdef HAVE_VECTOR_PROBE
#define PROBE_ITERS 50000000L
/* 12 chains of OP1, OP2 in turns on registers of type T, each chain waiting only on itself;
 * the asm keeps b unknown, so no step can be folded. ns per instruction. */
#define PROBE(name, isa, T, SET, OP1, OP2)                                                   \
    __attribute__((target(isa), noinline)) static double name(void)                         \
    {                                                                                          \
        T a[12], b = SET(13);                                                                  \
        for (int k = 0; k < 12; k++)                                                           \
            a[k] = SET(k + 1);                                                                 \
        uint64_t t0 = hy_now_ns();                                                             \
        for (long i = 0; i < PROBE_ITERS; i++) {                                               \
            __asm__ volatile("" : "+v"(b));                                                    \
            for (int k = 0; k < 12; k += 2) {                                                  \
                a[k] = OP1(a[k], b);                                                           \
                a[k + 1] = OP2(a[k + 1], b);                                                   \
            }                                                                                  \
        }                                                                                      \
        uint64_t t1 = hy_now_ns();                                                             \
        for (int k = 0; k < 12; k++)                                                           \
            __asm__ volatile("" : : "v"(a[k]));                                                \
        return (double)(t1 - t0) / (PROBE_ITERS * 12.0);                                       \
    }
#define ZPERM(a, b) _mm512_permutexvar_epi64((b), (a))
#define YPERM(a, b) _mm256_permutevar8x32_epi32((a), (b))
PROBE(z_add, "avx512f", __m512i, _mm512_set1_epi64, _mm512_add_epi64, _mm512_add_epi64)
PROBE(z_min64, "avx512f", __m512i, _mm512_set1_epi64, _mm512_min_epu64, _mm512_min_epu64)
PROBE(z_min32, "avx512f", __m512i, _mm512_set1_epi64, _mm512_min_epu32, _mm512_min_epu32)
PROBE(z_perm, "avx512f", __m512i, _mm512_set1_epi64, ZPERM, ZPERM)
PROBE(z_mix, "avx512f", __m512i, _mm512_set1_epi64, ZPERM, _mm512_min_epu64)
#define ZPERMPD(a, b) _mm512_permutexvar_pd(_mm512_castpd_si512(b), (a))
PROBE(z_minpd, "avx512f", __m512d, _mm512_set1_pd, _mm512_min_pd, _mm512_min_pd)
PROBE(z_minps, "avx512f", __m512, _mm512_set1_ps, _mm512_min_ps, _mm512_min_ps)
PROBE(z_mixpd, "avx512f", __m512d, _mm512_set1_pd, ZPERMPD, _mm512_min_pd)
PROBE(y_min32, "avx2", __m256i, _mm256_set1_epi32, _mm256_min_epu32, _mm256_min_epu32)
PROBE(y_min64, "avx512f,avx512vl", __m256i, _mm256_set1_epi64x, _mm256_min_epu64,
      _mm256_min_epu64)
PROBE(y_mix, "avx2", __m256i, _mm256_set1_epi32, YPERM, _mm256_min_epu32)

static int vector_probe(void)
{
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512vl")) {
        fprintf(stderr, "mem-bench: --vector needs AVX-512 (F and VL)\n");
        return 1;
    }
    printf("\n%-30s %10s\n", "instructions, 12 chains", "ns each");
    const struct {
        const char *name;
        double (*fn)(void);
    } probes[] = {{"zmm add", z_add},
                  {"zmm min u64", z_min64},
                  {"zmm min u32", z_min32},
                  {"zmm permute", z_perm},
                  {"zmm permute and min u64", z_mix},
                  {"zmm min f64", z_minpd},
                  {"zmm min f32", z_minps},
                  {"zmm permute and min f64", z_mixpd},
                  {"ymm min u32", y_min32},
                  {"ymm min u64", y_min64},
                  {"ymm permute and min u32", y_mix}};
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++)
        printf("%-30s %10.3f\n", probes[i].name, probes[i].fn());
    return 0;
}
#else
static int vector_probe(void)
{
    fprintf(stderr, "mem-bench: --vector is for x86-64 only\n");
    return 1;
}
#endif

int main(int argc, char **argv)
{
    size_t n = 10000000, size = 8;
    unsigned threads[8] = {1, 2}, nthreads = 2, repeat = 9, scatter_bits = 0;
    bool vector = false;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "-n") && v) {
            n = (size_t)strtod(v, NULL);
            i++;
        } else if (!strcmp(argv[i], "--size") && v) {
            size = (size_t)strtoul(v, NULL, 10);
            i++;
        } else if (!strcmp(argv[i], "--repeat") && v) {
            repeat = (unsigned)strtoul(v, NULL, 10);
            i++;
        } else if (!strcmp(argv[i], "--scatter") && v) {
            scatter_bits = (unsigned)strtoul(v, NULL, 10);
            i++;
            if (scatter_bits < 1 || scatter_bits > 16) {
                fprintf(stderr, "mem-bench: --scatter takes 1..16 bits\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "--vector")) {
            vector = true;
        } else if (!strcmp(argv[i], "--threads") && v) {
            nthreads = 0;
            for (char *p = argv[++i], *e; *p && nthreads < 8; p = *e ? e + 1 : e) {
                threads[nthreads++] = (unsigned)strtoul(p, &e, 10);
                if (e == p)
                    break;
            }
        } else {
            fprintf(stderr, "usage: mem-bench [-n ELEMENTS] [--size BYTES] [--threads LIST] "
                            "[--repeat R] [--scatter BITS] [--vector]\n");
            return 2;
        }
    }
    size_t bytes = n * size, words = (bytes + 7) / 8;
    if (n == 0 || size == 0 || repeat == 0 || repeat > 1000 || words > SIZE_MAX / 8) {
        fprintf(stderr, "mem-bench: n, size and repeat (<= 1000) must be positive\n");
        return 2;
    }
    for (unsigned i = 0; i < nthreads; i++)
        if (threads[i] < 1 || threads[i] > MAX_THREADS) {
            fprintf(stderr, "mem-bench: threads must be 1..%d\n", MAX_THREADS);
            return 2;
        }
    uint64_t *src = malloc(words * 8), *dst = malloc(words * 8), *ns = calloc(repeat, 8);
    if (!src || !dst || !ns) {
        fprintf(stderr, "mem-bench: out of memory for 2 x %zu bytes\n", bytes);
        return 1;
    }
    /* Written first, so no run pays the page faults of fresh memory; random (splitmix64),
     * so that --scatter's buckets come in no pattern. */
    for (size_t i = 0; i < words; i++) {
        uint64_t z = (i + 1) * 0x9e3779b97f4a7c15u;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
        src[i] = dst[i] = z ^ (z >> 31);
    }
    uint64_t sink = 0;
    printf("mem-bench: %zu elements of %zu bytes (%.1f MB), median and min of %u runs after a "
           "warm-up\n", n, size, (double)bytes / 1e6, repeat);
    printf("%-6s %7s %10s %10s %10s\n", "op", "threads", "median ms", "min ms", "GB/s");
    for (int op = 0; op < 2; op++)
        for (unsigned k = 0; k < nthreads; k++) {
            unsigned t = threads[k];
            run(src, op ? NULL : dst, words, t, &sink);
            for (unsigned r = 0; r < repeat; r++)
                if ((ns[r] = run(src, op ? NULL : dst, words, t, &sink)) == 0) {
                    fprintf(stderr, "mem-bench: pthread_create failed\n");
                    return 1;
                }
            qsort(ns, repeat, sizeof *ns, cmp_u64);
            double moved = (double)bytes * (op ? 1 : 2);
            printf("%-6s %7u %10.2f %10.2f %10.1f\n", op ? "read" : "copy", t,
                   (double)ns[repeat / 2] / 1e6, (double)ns[0] / 1e6,
                   moved / (double)ns[repeat / 2]);
        }
    if (scatter_bits) {
        printf("\n%-7s %6s %10s %10s %10s\n", "op", "bits", "median ms", "min ms", "ns/word");
        if (scatter_bench(src, words, scatter_bits, repeat) != 0)
            return 1;
    }
    if (vector && vector_probe() != 0)
        return 1;
    /* The sums feed an output, so the reads cannot be optimised away. */
    fprintf(stderr, "(checksum %llx)\n", (unsigned long long)sink);
    free(src);
    free(dst);
    free(ns);
    return 0;
}
