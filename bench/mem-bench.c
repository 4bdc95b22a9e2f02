/* mem-bench: what moving an array costs on this machine, the floor under any sort of an array
 * larger than the caches. A sort must read every element and write it where it goes at least
 * twice (once to spread the array out, once to put each part in order), so twice the copy
 * time below bounds the fastest possible sort from underneath.
 *
 *   mem-bench [-n ELEMENTS] [--size BYTES_PER_ELEMENT] [--threads LIST] [--repeat R]
 *
 * Each thread copies (memcpy) or reads (a sum) its contiguous share; the median and minimum
 * of R runs after a warm-up are printed, with GB/s counting the bytes read plus written. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define MAX_THREADS 64

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

int main(int argc, char **argv)
{
    size_t n = 10000000, size = 8;
    unsigned threads[8] = {1, 2}, nthreads = 2, repeat = 9;
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
        } else if (!strcmp(argv[i], "--threads") && v) {
            nthreads = 0;
            for (char *p = argv[++i], *e; *p && nthreads < 8; p = *e ? e + 1 : e) {
                threads[nthreads++] = (unsigned)strtoul(p, &e, 10);
                if (e == p)
                    break;
            }
        } else {
            fprintf(stderr, "usage: mem-bench [-n ELEMENTS] [--size BYTES] [--threads LIST] "
                            "[--repeat R]\n");
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
    /* Written first, so no run pays the page faults of fresh memory. */
    for (size_t i = 0; i < words; i++)
        src[i] = dst[i] = i * 0x9e3779b97f4a7c15u;
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
    /* The sums feed an output, so the reads cannot be optimised away. */
    fprintf(stderr, "(checksum %llx)\n", (unsigned long long)sink);
    free(src);
    free(dst);
    free(ns);
    return 0;
}
