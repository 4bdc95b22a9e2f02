/* host: the sort job — six dtypes, ascending, in place, numpy's order for floats, the same
 * bytes on every backend. The radix sort itself is in sort_radix.inc.
 *
 * Order. Each element's bits map to an unsigned key by a bijection under which unsigned
 * order is the wanted order:
 *   unsigned ints   key = x
 *   signed ints     key = x ^ SIGN                      (two's complement order)
 *   floats          key = (x ^ (negative ? ~0 : SIGN)) - ROT
 * The float map without `- ROT` is the classic IEEE total order: -NaN < -inf < ... < -0.0 <
 * +0.0 < ... < +inf < +NaN. Subtracting ROT (the key of -inf; 0x007FFFFF for f32,
 * 0x000FFFFFFFFFFFFF for f64) rotates the negative NaNs from the bottom to the top, so every
 * NaN sorts after +inf, as numpy puts them. Among NaNs: positive ones by ascending bits,
 * then negative ones by descending bits (numpy leaves that order unspecified; ours is
 * fixed, so outputs stay byte-identical). Being a bijection, the map loses no payload.
 * The map is defined once, in common/sortkey.h (hy_key_spec_of, hy_to_key_*), which merge.c
 * and cl/sort.c share. */
#include "internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <emmintrin.h>
#endif

#define DIGIT_BITS 11u
/* Buckets of the one pass over main memory. Its scatter keeps a line per bucket in flight:
 * 512 lines are 32 KiB, inside a core's L1 here (48 KiB), while 2048 measured 25% slower
 * on 10^7 64-bit keys and 30% on 32-bit ones. Buckets are then n / 512 keys; larger
 * arrays get more buckets (sort_radix.inc's parallel). */
#define TOP_BITS 9u
/* Arrays under 2^(TOP_BITS + this) keys get fewer top-level buckets, of about 2^this keys. */
#define TOP_SMALL_LOG 10u
/* A bucket up to this many keys is finished by LSD passes: two buffers of 128 Ki 8-byte
 * keys are 2 MiB, a core's L2 here (the rest spills to the 32 MiB L3). */
#define LSD_MAX (1u << 17)
/* Kinds of top-level bucket function (struct top in sort_radix.inc). */
enum { TOP_LINEAR, TOP_VALUE, TOP_CELLS_FN };
#define INSERTION_MAX 32u
/* Radix passes in a bucket cover log2(size) + this many bits; insertion sort does the rest. */
#define LSD_SLACK_BITS 6u
/* Elements whose keys and buckets are computed in one vectorised block. */
#define KEY_BLOCK 256u
/* Keys sampled to build the top-level bucket function, and the cells it starts from. */
#define SAMPLE_KEYS 4096u
#define TOP_CELL_BITS 12u
#define TOP_CELLS (1u << TOP_CELL_BITS)
/* Elements between ticks: tens of microseconds of work. */
#define TICK_ELEMS (1u << 16)

/* Hot loops that vectorise get AVX-512 and AVX2 clones, chosen once at load time by the
 * dynamic linker (an ifunc), so the default build needs no -march flag. Not under TSan: the
 * ifunc resolvers run before TSan's runtime is up and crash when instrumented. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_THREAD__)
#define HY_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define HY_SIMD_CLONES
#endif

/* The sorted-run scans use GCC vector types (sort_radix.inc says why); elsewhere a plain
 * loop does. */
#if defined(__GNUC__)
#define HY_SCAN_VEC 1
#define SCAN_LANES (64 / sizeof(K))
#endif

#define K uint32_t
#define V float
#define KBITS 32
#define FN(name) name##_u32
#include "sort_radix.inc"
#undef K
#undef V
#undef KBITS
#undef FN

#define K uint64_t
#define V double
#define KBITS 64
#define FN(name) name##_u64
#include "sort_radix.inc"
#undef K
#undef V
#undef KBITS
#undef FN

struct sort_ctx {
    size_t size;
    int mode;
    struct shared_u32 *s32; /* one per copy, for 4-byte dtypes */
    struct shared_u64 *s64; /* one per copy, for 8-byte dtypes */
};

static int sort_task(hy_worker *w, void *arg)
{
    struct sort_ctx *c = arg;
    unsigned id = hy_worker_id(w);
    /* Replicate: every thread is a job of its own on its own copy; `index` picks its
     * shared block. Split: one shared block for all. */
    unsigned index = c->mode == HY_MODE_REPLICATE ? id : 0;
    /* numpy.sort releases the GIL for the whole sort; with nogil HOLD this is a no-op. */
    hy_worker_native_begin(w);
    bool solo = c->mode == HY_MODE_REPLICATE;
    int rc = c->size == 4 ? parallel_u32(w, &c->s32[index], solo)
                          : parallel_u64(w, &c->s64[index], solo);
    hy_worker_native_end(w);
    return rc;
}

/* Points copy i's shared block at its array, its tmp and its histogram rows. */
#define SETUP_SHARED(blk, K, xform, arr, outv, tmpv, hist_rows, bucket_row, local_rows,       \
                     top_rows)                                                                \
    do {                                                                                      \
        (blk)->data = (K *)(arr);                                                             \
        (blk)->out = (K *)(outv);                                                             \
        (blk)->tmp = (K *)(tmpv);                                                             \
        (blk)->n = n;                                                                         \
        (blk)->xf = (xform);                                                                  \
        (blk)->is_float = dtype == HY_DT_F32 || dtype == HY_DT_F64;                           \
        (blk)->hist = (hist_rows);                                                            \
        (blk)->bucket = (bucket_row);                                                         \
        (blk)->local = (K *)(local_rows);                                                     \
        (blk)->top = (void *)(top_rows);                                                      \
        atomic_init(&(blk)->next_bucket, 0);                                                  \
        atomic_init(&(blk)->changed, false);                                                  \
    } while (0)

/* The buffers one sort needs beyond its array, for `copies` copies on `threads` threads. */
struct sort_bufs {
    char *scratch;              /* copies 1..T-1, then a tmp per copy */
    size_t scratch_bytes;
    size_t (*hist)[1u << DIGIT_BITS];
    size_t *bucket;
    void *shared;               /* a shared block per copy */
    void *local;                /* two private LSD buffers per thread, cache-line aligned */
    size_t local_bytes;
    char *top;                  /* each thread's copy of the top-level bucket function */
    size_t top_bytes;
};

static void sort_bufs_put(hy_host *h, struct sort_bufs *b)
{
    free(b->top);
    free(b->local);
    free(b->shared);
    free(b->bucket);
    free(b->hist);
    hy_host_scratch_put(h, b->scratch, b->scratch_bytes);
}

static int sort_bufs_get(hy_host *h, size_t size, size_t n, unsigned copies, unsigned threads,
                         struct sort_bufs *b, hy_error *err)
{
    size_t nd = (size_t)1 << DIGIT_BITS;
    *b = (struct sort_bufs){.scratch_bytes = n * size * (2 * (size_t)copies - 1),
                            .local_bytes = (size_t)2 * LSD_MAX * size,
                            .top_bytes = sizeof(struct top_u64)};
    b->scratch = hy_host_scratch_get(h, b->scratch_bytes);
    b->hist = calloc(threads, sizeof *b->hist);
    b->bucket = calloc(copies * (nd + 1), sizeof *b->bucket);
    b->shared = calloc(copies,
                       size == 4 ? sizeof(struct shared_u32) : sizeof(struct shared_u64));
    if (posix_memalign(&b->local, 64, b->local_bytes * threads) != 0)
        b->local = NULL;
    b->top = calloc(threads, b->top_bytes);
    if (!b->scratch || !b->hist || !b->bucket || !b->shared || !b->local || !b->top) {
        sort_bufs_put(h, b);
        return hy_error_set(err, HY_ENOMEM, "out of memory for sorting %zu elements (%zu bytes "
                            "of scratch)", n, b->scratch_bytes);
    }
    /* The LSD buffers may be recycled heap that held another job's keys; an input that
     * changes under the sort can leave slots unwritten, so they must hold nothing foreign.
     * Only the part a bucket of this job can reach is cleared. */
    size_t reach = (n < LSD_MAX ? n : LSD_MAX) * size;
    for (unsigned i = 0; i < 2 * threads; i++)
        memset((char *)b->local + (size_t)i * LSD_MAX * size, 0, reach);
    return 0;
}

/* Points each copy's shared block at its array, tmp and rows. Copy 0 reads src and writes
 * data; the other copies (replicate mode) are copies of src in scratch, sorted in place. */
static void setup_copies(struct sort_ctx *c, const struct sort_bufs *b, int dtype,
                         const void *src, void *data, size_t n, unsigned copies)
{
    size_t nd = (size_t)1 << DIGIT_BITS, bytes = n * c->size;
    bool repl = c->mode == HY_MODE_REPLICATE;
    struct hy_key_spec spec = hy_key_spec_of(dtype);
    for (unsigned i = 0; i < copies; i++) {
        char *arr = i == 0 ? (char *)src : b->scratch + (size_t)(i - 1) * bytes;
        char *outv = i == 0 ? data : arr;
        char *tmpv = b->scratch + (size_t)(copies - 1 + i) * bytes;
        if (i > 0 && bytes > 0) /* data may be NULL when n is 0 */
            memcpy(arr, data, bytes);
        size_t(*rows)[1u << DIGIT_BITS] = repl ? b->hist + i : b->hist;
        /* Split: thread id finds its rows at id; replicate: copy i is thread i, alone. */
        char *lrow = (char *)b->local + (repl ? i * b->local_bytes : 0);
        char *trow = b->top + (repl ? i * b->top_bytes : 0);
        if (c->size == 4) {
            c->s32 = b->shared;
            SETUP_SHARED(&c->s32[i], uint32_t, hy_xform_u32_of(spec), arr, outv, tmpv, rows,
                         b->bucket + i * (nd + 1), lrow, trow);
        } else {
            c->s64 = b->shared;
            SETUP_SHARED(&c->s64[i], uint64_t, hy_xform_u64_of(spec), arr, outv, tmpv, rows,
                         b->bucket + i * (nd + 1), lrow, trow);
        }
    }
}

/* Sorts src into dst (the same array for an in-place sort). */
static int sort_impl(hy_host *h, int dtype, const void *src, void *dst, size_t n,
                     const hy_run_opts *o, hy_sort_result *r, hy_error *err)
{
    if (!h || !r)
        return hy_error_set(err, HY_EINVAL, "no engine or no result given");
    memset(r, 0, sizeof *r);
    size_t size;
    void *data = dst;
    int rc = hy_check_sort_args(dtype, data, n, &size, err);
    if (rc == 0)
        rc = hy_check_sort_args(dtype, src, n, &size, err);
    if (rc)
        return rc;
    rc = hy_host_check_opts(h, o, err);
    if (rc)
        return rc;
    int mode = o->mode ? o->mode : HY_MODE_SPLIT;
    unsigned copies = mode == HY_MODE_REPLICATE ? o->threads : 1;
    /* Replicate holds 2T arrays' worth (T - 1 copies and T tmps); split holds 2. */
    if (n > SIZE_MAX / size / (2 * (size_t)copies) / 4)
        return hy_error_set(err, HY_ELIMIT, "%zu elements of %zu bytes are too many to sort", n,
                            size);
    size_t bytes = n * size;
    hy_run_opts ro = *o;
    /* sort is numpy.sort in the lesson: it releases the lock unless told otherwise. */
    ro.nogil = o->nogil == HY_NOGIL_DEFAULT ? HY_NOGIL_RELEASE : o->nogil;

    struct sort_ctx c = {.size = size, .mode = mode};
    struct sort_bufs b;
    if ((rc = sort_bufs_get(h, size, n, copies, o->threads, &b, err)))
        return rc;
    setup_copies(&c, &b, dtype, src, data, n, copies);
    rc = hy_host_run(h, &ro, (uint64_t)n * 3u * copies, sort_task, &c, &r->stats, err);
    if (rc == HY_EINVAL)
        hy_error_set(err, rc, "the array changed while it was being sorted (was its memfd "
                     "written during the job?); it holds what was written, unsorted");
    r->stats.copies = copies;
    r->n = n;
    /* Every copy sorted the same input; any difference would be a bug in the sort. */
    for (unsigned i = 1; rc == 0 && bytes > 0 && i < copies; i++)
        if (memcmp(data, b.scratch + (size_t)(i - 1) * bytes, bytes) != 0)
            rc = hy_error_set(err, HY_EINTERNAL, "replicate copy %u sorted differently from "
                              "copy 0", i);
    sort_bufs_put(h, &b);
    return rc;
}

int hy_host_sort(hy_host *h, int dtype, void *data, size_t n, const hy_run_opts *o,
                 hy_sort_result *r, hy_error *err)
{
    return sort_impl(h, dtype, data, data, n, o, r, err);
}

int hy_host_sort_to(hy_host *h, int dtype, const void *src, void *dst, size_t n,
                    const hy_run_opts *o, hy_sort_result *r, hy_error *err)
{
    if (o && o->mode == HY_MODE_REPLICATE)
        return hy_error_set(err, HY_EINVAL, "a sort into another array runs in split mode");
    size_t size = hy_dtype_size(dtype);
    if (size && n && src != dst && src && dst &&
        (const char *)src < (const char *)dst + n * size &&
        (const char *)dst < (const char *)src + n * size)
        return hy_error_set(err, HY_EINVAL, "a sort's source and destination overlap without "
                            "being the same array");
    return sort_impl(h, dtype, src, dst, n, o, r, err);
}
