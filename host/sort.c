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

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <emmintrin.h>
#endif
/* sort_radix.inc's small path finishes keys with a window of vector min and max where the
 * CPU has them (AVX2 for 32-bit keys, AVX-512 for 64-bit ones; checked at run time, as the
 * build targets baseline x86-64). */
#if defined(__x86_64__) && defined(__GNUC__)
#define HY_WINDOW_AVX2 1
#include <immintrin.h>
#endif

#define DIGIT_BITS 11u
/* Buckets of the one pass over main memory where its scatter stages keys (staged_scatter):
 * writing whole cache lines, more buckets cost it little (a probe: 2.4-2.9 ns a key into
 * 512, 2.9-3.1 into 2048, 10^7 u64) and leave each bucket fewer bits to finish in cache:
 * 10^7 f64 took 104-107 ms with 2048 buckets against 118-119 with 512 (f32: 60 against
 * 73), Intel Xeon guest. Buckets are then n / 2048 keys; larger arrays get more buckets
 * (top_bits_for), up to 2^TOP_MAX_BITS. */
#define TOP_BITS 11u
#define TOP_MAX_BITS 12u
/* The same where keys are stored one by one: the scatter keeps a line per bucket in
 * flight, and 512 lines are 32 KiB, inside a core's L1 (48 KiB here); 2048 measured 25%
 * slower on 10^7 64-bit keys and 30% on 32-bit ones, 1024 40% slower on the AMD EPYC
 * guest. Larger arrays get more, up to 2^DIGIT_BITS. */
#define TOP_BITS_PLAIN 9u
/* Arrays under 2^(TOP_BITS + this) keys get fewer top-level buckets, of about 2^this keys. */
#define TOP_SMALL_LOG 10u
/* A bucket up to this many keys is finished by LSD passes: two buffers of 128 Ki 8-byte
 * keys are 2 MiB, a core's L2 here (the rest spills to the 32 MiB L3). */
#define LSD_MAX (1u << 17)
/* Kinds of top-level bucket function (struct top in sort_radix.inc). */
enum { TOP_LINEAR, TOP_VALUE, TOP_CELLS_FN };
#define INSERTION_MAX 32u
/* sort_radix.inc's split3: a bucket past LSD_MAX is split three ways around a key that is a
 * quarter of DOM_SAMPLE spaced keys, at most SPLIT_DEPTH times down one branch (each split
 * is a frame of sort_rec's tables on the stack). */
#define DOM_SAMPLE 64u
#define SPLIT_DEPTH 4u
/* sort_radix.inc's stretch_pass (the dictionary's spill only): at least STRETCH_MIN keys,
 * whose range is past 2^STRETCH_BITS times what the middle 14 of 16 spaced keys span, at
 * most STRETCH_DEPTH passes down one branch (each a frame of counts on the stack). */
#define STRETCH_MIN 1024u
#define STRETCH_BITS 8u
#define STRETCH_DEPTH 3u
/* Radix passes in a bucket cover log2(size) + this many bits; insertion sort does the rest. */
#define LSD_SLACK_BITS 6u
/* Elements whose keys and buckets are computed in one vectorised block. */
#define KEY_BLOCK 256u
/* Keys sampled to build the top-level bucket function, and the cells it starts from. */
#define SAMPLE_KEYS 4096u
#define TOP_CELL_BITS 12u
#define TOP_CELLS (1u << TOP_CELL_BITS)
/* Arrays up to this many keys take the small path (sort_radix.inc's sort_small); its
 * buckets hold about 2^SMALL_BUCKET_LOG keys, built from SMALL_SAMPLE sampled keys. */
#define SMALL_MAX (1u << 15)
/* Up to 2^17 keys (a private buffer's LSD_MAX) where sort_radix.inc's window finishes them
 * (small_max: 32-bit keys with AVX2, 64-bit ones with AVX-512): buckets of about 2 keys
 * cost 3 ns a key at 10^5 for u32 and 3.7 for u64 (300 and 370 us against the large path's
 * 540 and 560), L2 misses and all. */
#define SMALL_MAX_WIN (1u << 17)
#define SMALL_BUCKET_LOG 1u
/* sort_radix.inc's lsd_window: buckets from LSD_WIN_MIN keys are scattered into about
 * n / 2^LSD_WIN_LOG bins and finished with the window, where the CPU has it. */
#define LSD_WIN_MIN 256u
#define LSD_WIN_LOG 2u
#define SMALL_SAMPLE 256u
/* At most 2^this buckets on the small path (n / 2 for SMALL_MAX_WIN keys; bucket numbers
 * are uint16_t there), and so in any top-level bucket function. */
#define SMALL_ND_BITS 16u
/* sort_small's arrays in a thread's private buffers (sort_radix.inc says where); SMALL_PAD
 * keys (a few cache lines) keep two of them off a 4 KiB multiple apart. */
#define SMALL_PAD 40u
_Static_assert(SMALL_MAX <= LSD_MAX && SMALL_MAX_WIN <= LSD_MAX &&
                   SMALL_MAX_WIN * 2 * 2 <= LSD_MAX * 4 &&
                   (1u << SMALL_ND_BITS) >= SMALL_MAX_WIN >> SMALL_BUCKET_LOG &&
                   (1u << SMALL_ND_BITS) * 4 + (2 * TOP_CELLS + SMALL_PAD) * 8 <= LSD_MAX * 4,
               "the small path's arrays overflow a private buffer");
/* sort_net.inc's network takes arrays of up to NET_BYTES (its buffer, in L1), all of them up
 * to NET_ALL_BYTES and past that those that fill at least 3/4 of the power of two they are
 * padded to (net_takes). Against the radix small path, in a daemon's `compare sort -n N
 * --backends serial --repeat 300`, medians of 3 daemons each in turns (Intel Xeon guest):
 * f64 256 keys 1.14 against 2.45-2.82 us, 1000 5.58 against 6.04-7.50, 2048 12.85 against
 * 11.29-12.29; u32 512 1.08 against 2.83-3.43, 1000 2.31 against 3.09-4.58, 2048 5.21 against
 * 5.96-8.82. Padded sizes lose: f64 530 keys 5.52-6.02 against 4.31-5.49, 700 5.54-5.84
 * against 4.32-5.34 (the network sorts 1024). */
#define NET_BYTES 8192u
/* sort_qs.inc's quicksort takes 64-bit keys up to QS_MAX (qs_takes), in place of the
 * network and of the radix small path: in a daemon's `compare sort --input FILE --backends
 * serial --repeat 300`, medians of 3-4 rounds in turns (Intel Xeon guest), f64 uniform 300
 * keys 1.0 us against the network's 2.8, 1000 3.6 against 5.7, 2048 7.9 against 11.3, and
 * against the small path 3000 15.7 against 23.8, 6000 27.7 against 34.8, 10^4 54.3 against
 * 56.6, 16384 73.2 against 83.5. docs/engine.md has the table. */
#define QS_MAX ((size_t)16384)
/* Past QS_MAX, the quicksort takes arrays that one thread sorts (serial, and each copy of
 * a replicate job) up to QS_WHOLE_MAX, once the sample has found no few values, narrow
 * range, grid or dictionary for them (sort_radix.inc's parallel and sort_small), and it
 * finishes the large path's buckets (finish_buckets). Daemons in turns, `compare
 * sort --input FILE --backends serial`, f64 uniform, medians of 3 rounds (Intel Xeon
 * guest), ms: 10^6 11.1 against the radix path's 14.0, 4*10^6 53.1 against 58.0; with the
 * quicksort whole up to 10^7 keys, 10^7 took 123 against 106-114: there the scatter's one
 * pass over memory beats the quicksort's top levels, each of which reads and writes the
 * whole array. docs/engine.md has the table. */
#define QS_WHOLE_MAX ((size_t)1 << 22)
/* 32-bit keys, partitioned by compressing stores (sort_qs.inc's qs_whole), up to 12 * 2^20:
 * `hybrid-bench sort -n N --dtype D --backends serial --threads 1 --repeat 9`, the quicksort
 * whole against the radix path, in turns (Intel Xeon guest), medians of 4-6 rounds, ms:
 * 6*10^6 u32 47.2 against 55.3, 8*10^6 f32 67.2 against 73.3, 10^7 f32 87.4 against 93.5,
 * i32 85.3 against 91.2, u32 88.5 against 94.7; at 2*10^7 the radix path's one read leads
 * (f32 171 against 189). */
#define QS_WHOLE_MAX32 ((size_t)12 << 20)
/* 32-bit keys: past QS_MIN32 (below, sort_net.inc's network of 8 registers is the
 * faster: in a daemon's `compare sort --input FILE --backends serial --repeat 300`, 3
 * rounds in turns, f32 17-128 keys 0.39-0.61 us against the quicksort's 0.60-0.82, 200-256
 * 0.81-0.94 against 0.57-0.74) up to QS_MAX32 (3000 keys 10.6-12.5 against the small
 * path's 23.3-26.2, 16384 68.6-77.5 against 88.8-152.1), as for 64-bit keys. */
#define QS_MIN32 ((size_t)128)
#define QS_MAX32 ((size_t)16384)
_Static_assert(QS_MAX <= SMALL_MAX && QS_MAX32 <= SMALL_MAX,
               "sort_radix.inc's parallel sorts the quicksort's arrays on thread 0 alone, as "
               "the small path's");
#define NET_ALL_BYTES 2048u
/* At most this many distinct values take sort_radix.inc's few_values (compares per element). */
#define FEW_MAX 16u
/* The bins of its perfect hash (a value of 5 bits), and its ways of counting. */
#define FEW_BINS 32u
#define FEW_HASH_MIN (1u << 16)
enum { FEW_BY_VECTORS, FEW_BY_MASK, FEW_BY_HASH };
/* A sample whose keys span fewer than this many, where few_values did not take it, is
 * counted key by key (sort_radix.inc's range_values), in a histogram row of 2^TOP_MAX_BITS
 * cells whose last holds the thread's verdict. */
#define RANGE_MAX ((1u << TOP_MAX_BITS) - 1)
/* A range with a tail (sort_radix.inc's range_tail_set) spans RANGE_MAX - 1 keys, and
 * each thread's spill length takes the histogram row's cell past them. */
#define RANGE_TAIL_SLOT (RANGE_MAX - 1)
/* sort_radix.inc's dict_values: arrays of at least DICT_MIN_N keys whose sample (the top
 * level's SAMPLE_KEYS, the small path's up to SMALL_SAMPLE) shows repeating values (at most
 * DICT_MAX / 2 distinct ones estimated, and n at least DICT_PER_VALUE times that; or, where
 * more are estimated, at most a quarter of the sample seen once, at most DICT_MAX / 2
 * distinct in it and n at least DICT_PER_VALUE * DICT_MAX) are counted in hash tables of
 * their values, of DICT_SLOTS_MAX slots at the most (a private buffer of 32-bit keys and
 * 64-bit counts), at most DICT_MAX distinct values in all; what the tables cannot hold
 * goes to a spill sorted apart. Thread 0 merges the tables in one of DICT_MERGE_SLOTS
 * slots (its second private buffer), and keeps the sorted values, their counts and the
 * spill's gaps in its gather buffer. Below 2^15 keys the small path measured faster: 10^4
 * f64 of 50 values 40 us, against 51 through the dictionary. */
#define DICT_MIN_N ((size_t)1 << 15)
#define DICT_MAX 16384u
/* The merge's cost (a sort of the distinct keys) is small beside 64 elements a value: 2^18
 * f64 of 2000 values took 1.7 ms against 4.0 by the radix way (docs/engine.md). */
#define DICT_PER_VALUE 64u
#define DICT_SLOTS_MAX (1u << 15)
#define DICT_MERGE_SLOTS (1u << 15)
_Static_assert(DICT_MERGE_SLOTS >= 2 * DICT_MAX && DICT_SLOTS_MAX * 16u <= LSD_MAX * 4u &&
                   DICT_MERGE_SLOTS * 16u <= LSD_MAX * 4u &&
                   DICT_MAX * (3u * 4u + 16u) + 16u <= LSD_MAX * 4u,
               "a dictionary overflows a private buffer");
/* dict_find's result for an element not found at its home slot: one of DICT_SINK_LANES
 * counters past the table's slots, in turn, so that every element adds to a counter with
 * no branch and neighbouring misses do not wait on each other's stores. */
#define DICT_SINK_LANES 16u
_Static_assert(DICT_SLOTS_MAX * (4u + 8u) + DICT_SINK_LANES * 8u <= LSD_MAX * 4u &&
                   DICT_MERGE_SLOTS * (4u + 8u) + DICT_SINK_LANES * 8u <= LSD_MAX * 4u,
               "a dictionary's miss counters overflow a private buffer");
/* Elements between ticks: tens of microseconds of work. */
#define TICK_ELEMS (1u << 16)
/* Private buffers per thread: two for the LSD passes, one to gather a chunked bucket in. */
#define LOCAL_BUFS 3u
/* The chunked scatter (sort_radix.inc's one_read): chunks of this many bytes of tmp. A
 * thread may leave one part-filled chunk per bucket, so tmp grows by at most threads x
 * buckets x CHUNK_BYTES (4 MiB for 512 buckets and one thread; address space mostly, as a
 * part-filled chunk is touched only as far as it is filled). 8 KiB measured faster than
 * 2 KiB (10^7 u64: 59 against 80 ms, on a busy machine): gathering a bucket restarts the
 * hardware prefetcher at every chunk. */
#define CHUNK_BYTES 8192u
/* The top-level scatters write keys a stage of this many bytes at a time (sort_radix.inc's
 * scatter_chunks): two cache lines, written back to back, measured faster than one (a
 * probe: 10^7 u64 into 2048 buckets, 30.5-30.9 ms against 35.3-38.4 ms, 3 runs each in
 * turns; four lines, 29.7-30.5 ms, would need 1 MiB of buffer for 4096 buckets). Chunks
 * and the tmps that hold them start at multiples of it. */
#define STAGE_BYTES 128u
_Static_assert(CHUNK_BYTES % STAGE_BYTES == 0, "a chunk is not whole stages");
_Static_assert(STAGE_BYTES << TOP_MAX_BITS <= LSD_MAX * 4,
               "the scatter's stages overflow the gather buffer");
/* Arrays from 2^this keys up use it where the scatters stage keys (staged_scatter): just
 * past the small path there, as it measured faster than two reads from 2^17 keys on (u32
 * 1.4*10^5: 0.63 against 0.75 ms, 10^6: 4.86 against 5.99 ms; f64 the same within 4%, one
 * thread, medians of 7 runs in turns, Intel Xeon guest). Below, the part-filled chunks (one
 * per bucket, as far as filled) would be a large fraction of the array. */
#define CHUNK_MIN_LOG 17u
/* The same for keys stored one by one (the AMD plan), as measured before the staging. */
#define CHUNK_MIN_LOG_PLAIN 20u
/* Where the scatters stage keys (staged_scatter), a sort whose arrays hold at most this
 * many bytes of keys (every copy's) writes its final places and its top-level stages with
 * plain stores, past it with non-temporal ones. Its three arrays (input, tmp, output) then
 * stay in the L3 cache for the next pass, where non-temporal stores would send them to
 * memory: plain stores measured faster up to 12 MB (f64 2*10^5: 1.64 against 1.96 ms, 10^6
 * 9.3 against 9.7, 1.5*10^6 12.3 against 14.1; u32 2*10^6: 10.9 against 12.1), even at 16 MB
 * (f64 2*10^6, u32 4*10^6), and slower from 20 (f64 2.5*10^6: 27.2 against 24.9 ms; 10^7
 * 126 against 95), one thread, medians of 5-7 runs in turns, Intel Xeon guest. */
#define STREAM_MIN_BYTES ((size_t)12 << 20)

/* For tests only: HYBRIDD_TEST_SORT_BIG_BUCKETS=1 keeps the top level at 8 buckets, so that
 * an array of a million keys has the buckets past LSD_MAX that arrays of 2.7*10^8 keys and
 * more have with 4096 (finish_big's quicksort; two reads where the quicksort is left out). */
static bool test_big_buckets(void)
{
    static atomic_int big = -1;
    return hy_env_flag("HYBRIDD_TEST_SORT_BIG_BUCKETS", &big);
}

/* log2 of the top-level bucket count for n keys (`staged`: staged_scatter's answer):
 * TOP_BITS (TOP_BITS_PLAIN), unless the buckets would be past LSD_MAX / 8 keys (LSD_MAX):
 * then more, up to 2^TOP_MAX_BITS (2^DIGIT_BITS), as the finish's cost per key grows with
 * its bucket (staged, 10^8 f64: 1.12 s with 4096 buckets, 1.15 s with 2048) and a second
 * pass over a bucket larger than the cache costs more than a scatter's L1 misses. Fewer
 * for a small array, so that buckets keep about 2^TOP_SMALL_LOG keys: a bucket's passes
 * have a fixed cost (histograms, prefix sums) that 512 buckets of 200 keys paid 512 times
 * (10^5 u32: 0.50 ms with 512 buckets, 0.34 ms with 64). 10^6 keys keep 512: fewer
 * measured no faster there. */
static unsigned top_bits_for(size_t n, bool staged)
{
    if (test_big_buckets())
        return 3;
    unsigned lg_n = n ? 63u - (unsigned)__builtin_clzll((unsigned long long)n) : 0;
    unsigned base = staged ? TOP_BITS : TOP_BITS_PLAIN;
    unsigned most = staged ? TOP_MAX_BITS : DIGIT_BITS;
    size_t big = staged ? LSD_MAX / 8 : LSD_MAX;
    unsigned top_bits = lg_n > TOP_SMALL_LOG + base ? base
                        : lg_n > TOP_SMALL_LOG + 2 ? lg_n - TOP_SMALL_LOG
                                                   : 2;
    while (top_bits < most && (n >> top_bits) > big)
        top_bits++;
    return top_bits;
}

#ifdef HY_WINDOW_AVX2
static bool qs_cpu(void);
#endif

/* Whether n keys in 2^top_bits buckets take the one-read (chunked) top level. Where the
 * scatter stages keys and the quicksort runs, always: a bucket past the gather buffer goes
 * to its place whole and finish_big quicksorts it from there, which beat two reads and the
 * radix finishing from 2.7*10^8 keys, where buckets outgrow the buffer (one thread, 5*10^8
 * f64 8.2-9.1 s against 10.7-11.2, f32 5.8-6.6 against 8.6-8.7; docs/engine.md, "Past
 * 2.7*10^8 keys"). Elsewhere only when a bucket's expected size leaves a private buffer
 * room for twice that (staged; four times with keys stored one by one, as measured before
 * the staging), so that uneven buckets seldom force the two-read fallback. */
static bool chunked_for(size_t n, unsigned top_bits, bool staged)
{
#ifdef HY_WINDOW_AVX2
    bool qs = staged && qs_cpu();
#else
    bool qs = false;
#endif
    return n >= ((size_t)1 << (staged ? CHUNK_MIN_LOG : CHUNK_MIN_LOG_PLAIN)) &&
           (qs || (n >> top_bits) <= (staged ? LSD_MAX / 2 : LSD_MAX / 4));
}

/* For tests only: HYBRIDD_TEST_SORT_PORTABLE=1 takes the paths of a CPU without AVX2 and
 * AVX-512 and of one that stores the scatter's keys one by one (test_sort runs it on a
 * machine that takes the others). */
static bool test_portable(void)
{
    static atomic_int portable = -1;
    return hy_env_flag("HYBRIDD_TEST_SORT_PORTABLE", &portable);
}

/* Whether the top-level scatters stage each bucket's keys and write them a STAGE_BYTES at
 * a time (sort_radix.inc's scatter_chunks), into TOP_BITS buckets: where hy_stage_stores
 * says so. On the AMD EPYC (Zen 4) guest the staging measured slower (10^7 u32: 44.1
 * against 47.9 ms, one line a bucket, 512 buckets); there, and on other architectures, keys
 * are stored one by one into TOP_BITS_PLAIN buckets, the plan measured fastest there. */
static bool staged_scatter(void)
{
    return !test_portable() && hy_stage_stores();
}

/* Whether the small path scatters by rank (sort_radix.inc's small_keys): the counting read
 * keeps each key's rank in its bucket, so that the scatter then stores only the key, not
 * also the bucket's count. Where a store that misses L1 holds back the stores behind it
 * (hy_stage_stores), the count's store waited behind the key's: a probe of 10^5 random u64
 * into 2^16 buckets took 1.2 ns a key to count and 3.9 to scatter with counts, against 1.3
 * and 2.0 by rank (Intel Xeon guest). */
static bool ranked_scatter(void)
{
    return staged_scatter();
}

/* Whether sort_radix.inc's small path can finish keys of `size` bytes with its window:
 * 32-bit ones with AVX2, 64-bit ones with AVX-512 (not with test_portable). */
static bool window_ok(size_t size)
{
#ifdef HY_WINDOW_AVX2
    if (test_portable())
        return false;
    return size == 4 ? __builtin_cpu_supports("avx2") : __builtin_cpu_supports("avx512f");
#else
    (void)size;
    return false;
#endif
}

#ifdef HY_WINDOW_AVX2
/* Whether sort_radix.inc's few_values counts with AVX-512's mask registers
 * (count_values_mask). */
static bool few_mask_ok(void)
{
    return !test_portable() && __builtin_cpu_supports("avx512f");
}

/* Whether sort_radix.inc's dict_find looks its elements up with AVX-512's gathers
 * (dict_find_gather; 64-bit keys' hash needs AVX-512DQ's 64-bit multiply) and dict_add
 * probes for the misses eight slots at a time (dict_put_vec; AVX-512VL for 32-bit keys). */
static bool dict_gather_ok(void)
{
    static atomic_int ok = -1;
    int v = atomic_load_explicit(&ok, memory_order_relaxed);
    if (v < 0) {
        v = !test_portable() && __builtin_cpu_supports("avx512f") &&
            __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
        atomic_store_explicit(&ok, v, memory_order_relaxed);
    }
    return v != 0;
}
#endif

/* Whether sort_radix.inc's lsd_window finishes buckets of `size`-byte keys: wherever the
 * window runs for 32-bit keys; for 64-bit ones (AVX-512 permutes of 8 lanes, where 32-bit
 * keys' are AVX2 ones) not on AMD's CPUs, on whose Zen 4 they measured slower (10^7 f64:
 * 70.5 against 67.1 ms with the radix passes), while on the Intel Xeon guest they measured
 * faster (95 against 106-114 ms, three runs each in turns). */
static bool lsd_window_ok(size_t size)
{
    if (!window_ok(size))
        return false;
#ifdef HY_WINDOW_AVX2
    return size == 4 || !__builtin_cpu_is("amd");
#else
    return true;
#endif
}

/* log2 of sort_radix.inc's lsd_window bins for n keys (n >= LSD_WIN_MIN) that differ in
 * their low `need` bits: about n / 2^LSD_WIN_LOG bins, and no more than the keys' values. */
static unsigned win_bits(size_t n, unsigned need)
{
    unsigned lg = 64u - (unsigned)__builtin_clzll((unsigned long long)n); /* log2(n) + 1 */
    return lg - LSD_WIN_LOG < need ? lg - LSD_WIN_LOG : need;
}

#ifdef HY_WINDOW_AVX2
/* Bins that scan_bins lists by number; past this many, it lists none. */
#define SCAN_OVER_MAX 64u

/* Turns nb bins' counts into where each bin starts (an exclusive prefix sum), or with `ends`
 * where each ends (inclusive), and returns the largest count, eight bins a step: as one add
 * per bin, each waiting on the last, it was 4.5% of a 10^7 u32 sort (2^13 bins for every
 * 2^15 keys). Lists the bins of more than
 * `limit` keys in over[] (*nover of them; not listed past SCAN_OVER_MAX), which spares
 * small_window a visit to every bin (3% of that sort). lsd_window and small_finish call it
 * only where window_ok has found the window's vector instructions (and so AVX2). */
__attribute__((target("avx2"))) static uint32_t scan_bins(uint32_t *cnt, size_t nb,
                                                          uint32_t limit, uint32_t *over,
                                                          size_t *nover, bool ends)
{
    const __m256i zero = _mm256_setzero_si256();
    const __m256i lane3 = _mm256_set1_epi32(3), lane7 = _mm256_set1_epi32(7);
    const __m256i lim = _mm256_set1_epi32((int)limit);
    __m256i carry = zero, most = zero;
    size_t d = 0, no = 0;
    for (; d + 8 <= nb; d += 8) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(cnt + d));
        most = _mm256_max_epu32(most, v);
        /* Counts are at most LSD_MAX: a signed compare serves. */
        __m256i big = _mm256_cmpgt_epi32(v, lim);
        unsigned mask = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(big));
        for (; mask != 0; mask &= mask - 1, no++)
            if (no < SCAN_OVER_MAX)
                over[no] = (uint32_t)d + (uint32_t)__builtin_ctz(mask);
        /* Sums within each 128-bit half, then the low half's total added to the high one. */
        __m256i x = _mm256_add_epi32(v, _mm256_slli_si256(v, 4));
        x = _mm256_add_epi32(x, _mm256_slli_si256(x, 8));
        __m256i low = _mm256_permutevar8x32_epi32(x, lane3);
        x = _mm256_add_epi32(x, _mm256_blend_epi32(zero, low, 0xF0));
        __m256i at = ends ? x : _mm256_sub_epi32(x, v);
        _mm256_storeu_si256((__m256i *)(void *)(cnt + d), _mm256_add_epi32(at, carry));
        carry = _mm256_add_epi32(carry, _mm256_permutevar8x32_epi32(x, lane7));
    }
    uint32_t lanes[8], big = 0;
    _mm256_storeu_si256((__m256i *)(void *)lanes, most);
    for (unsigned i = 0; i < 8; i++)
        big = lanes[i] > big ? lanes[i] : big;
    uint32_t sum = (uint32_t)_mm256_cvtsi256_si32(carry);
    for (; d < nb; d++) { /* fewer than eight bins */
        uint32_t c = cnt[d];
        sum += c;
        cnt[d] = ends ? sum : sum - c;
        big = c > big ? c : big;
        if (c > limit && no++ < SCAN_OVER_MAX)
            over[no - 1] = (uint32_t)d;
    }
    *nover = no;
    return big;
}
#endif

#ifdef HY_WINDOW_AVX2
/* For tests only: HYBRIDD_TEST_SORT_NO_NET=1 leaves sort_net.inc's network and sort_qs.inc's
 * quicksort out, so that the radix small path runs on the sizes they would take. */
static bool test_no_net(void)
{
    static atomic_int no_net = -1;
    return hy_env_flag("HYBRIDD_TEST_SORT_NO_NET", &no_net);
}

/* Whether sort_net.inc's network sorts n keys of `size` bytes (NET_BYTES says when): never
 * without AVX-512 (nor under test_portable or test_no_net). */
static bool net_takes(size_t n, size_t size)
{
    if (n > NET_BYTES / size || test_portable() || test_no_net() ||
        !__builtin_cpu_supports("avx512f"))
        return false;
    size_t padded = 1;
    while (padded < n)
        padded *= 2;
    return n <= NET_ALL_BYTES / size || 4 * n >= 3 * padded;
}

/* For tests only: HYBRIDD_TEST_SORT_QS_HEAP=1 gives sort_qs.inc's quicksort one level
 * before its heap sort takes over, so that the heap sort, which only inputs built against
 * the pivots' sample reach, is tested. */
static bool test_qs_heap(void)
{
    static atomic_int heap = -1;
    return hy_env_flag("HYBRIDD_TEST_SORT_QS_HEAP", &heap);
}

/* Levels of sort_qs.inc's quicksort before the heap sort: twice the depth of even splits. */
static unsigned qs_depth(size_t n)
{
    unsigned lg = 0;
    while (((size_t)2 << lg) <= n)
        lg++;
    return test_qs_heap() ? 1 : 2 * lg + 8;
}

/* For tests only: HYBRIDD_TEST_SORT_NO_QS=1 leaves sort_qs.inc's quicksort out (the
 * network stays), so that the network and the radix paths it takes over on a CPU with
 * AVX-512 keep being tested there. */
static bool test_no_qs(void)
{
    static atomic_int no_qs = -1;
    return hy_env_flag("HYBRIDD_TEST_SORT_NO_QS", &no_qs);
}

/* For tests only: HYBRIDD_TEST_SORT_QS_REGS=1 makes the 32-bit partition of sort_qs.inc's
 * quicksort compress into registers, as it does on AMD's CPUs, so that this way keeps being
 * tested on Intel's, where it compresses straight to memory (qs_whole). */
static bool test_qs_regs(void)
{
    static atomic_int regs = -1;
    return hy_env_flag("HYBRIDD_TEST_SORT_QS_REGS", &regs);
}

/* Whether sort_qs.inc's quicksort runs at all: on a CPU with AVX-512 (F, DQ, BW, VL) and
 * popcnt, not under test_portable, test_no_net or test_no_qs. */
static bool qs_cpu(void)
{
    if (test_portable() || test_no_net() || test_no_qs())
        return false;
    static atomic_int cpu = -1;
    int v = atomic_load_explicit(&cpu, memory_order_relaxed);
    if (v < 0) {
        v = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
            __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
            __builtin_cpu_supports("popcnt");
        atomic_store_explicit(&cpu, v, memory_order_relaxed);
    }
    return v != 0;
}

/* Whether sort_qs.inc's quicksort sorts n keys of `size` bytes with no look at them first
 * (sort_radix.inc's qs_path, on thread 0): 64-bit keys past one register's worth (where
 * sort_net.inc's one-register sort is the faster) up to QS_MAX, 32-bit keys past QS_MIN32
 * up to QS_MAX32. */
static bool qs_takes(size_t n, size_t size)
{
    return n > (size == 8 ? 8 : QS_MIN32) && n <= (size == 8 ? QS_MAX : QS_MAX32) && qs_cpu();
}
#endif

/* The small path's limit for keys of `size` bytes: SMALL_MAX_WIN where the window finishes
 * them, SMALL_MAX otherwise. */
static size_t small_max(size_t size)
{
    return window_ok(size) ? SMALL_MAX_WIN : SMALL_MAX;
}

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

/* hy_host_sort_shed's sections and whether ready has been called (thread 0 and the caller
 * after the run touch `told`, never at once: hy_host_run joins the threads in between). */
struct hy_shed {
    const hy_sort_shed *spec;
    size_t *bounds; /* [spec->parts + 2] */
    bool told;
};

static void hy_shed_tell(struct hy_shed *sh)
{
    if (sh && !sh->told) {
        sh->told = true;
        sh->spec->ready(sh->spec->ctx, sh->bounds);
    }
}

#define K uint32_t
#define V float
#define KBITS 32
#define FN(name) name##_u32
#ifdef HY_WINDOW_AVX2
#include "sort_net.inc"
#include "sort_qs.inc"
#endif
#include "sort_radix.inc"
#undef K
#undef V
#undef KBITS
#undef FN

#define K uint64_t
#define V double
#define KBITS 64
#define FN(name) name##_u64
#ifdef HY_WINDOW_AVX2
#include "sort_net.inc"
#include "sort_qs.inc"
#endif
#include "sort_radix.inc"
#undef K
#undef V
#undef KBITS
#undef FN

int hy_host_few_count(size_t size, const void *a, size_t n, const void *vals, unsigned nv,
                      bool hash, uint64_t *counts)
{
    if (nv == 0 || nv > FEW_MAX || (size != 4 && size != 8))
        return -1;
    return size == 4 ? few_count_all_u32(a, n, vals, nv, hash, counts)
                     : few_count_all_u64(a, n, vals, nv, hash, counts);
}

bool hy_host_grid_plan(int dtype, const void *vals, size_t n, double *scale, int64_t *lo,
                       uint32_t *range)
{
    if ((dtype != HY_DT_F32 && dtype != HY_DT_F64) || n == 0 || n > SAMPLE_KEYS)
        return false;
    struct hy_key_spec spec = hy_key_spec_of(dtype);
    if (dtype == HY_DT_F32) {
        struct hy_xform_u32 xf = hy_xform_u32_of(spec);
        return grid_plan_u32(vals, n, &xf, scale, lo, range);
    }
    struct hy_xform_u64 xf = hy_xform_u64_of(spec);
    return grid_plan_u64(vals, n, &xf, scale, lo, range);
}

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
        (blk)->staged = b->staged;                                                            \
        (blk)->stream = b->stream;                                                            \
        (blk)->hist = (hist_rows);                                                            \
        (blk)->bucket = (bucket_row);                                                         \
        (blk)->local = (K *)(local_rows);                                                     \
        (blk)->top = (void *)(top_rows);                                                      \
        atomic_init(&(blk)->next_bucket, 0);                                                  \
        atomic_init(&(blk)->next_chunk, 0);                                                   \
        atomic_init(&(blk)->next_in, 0);                                                      \
        atomic_init(&(blk)->changed, false);                                                  \
    } while (0)

/* The buffers one sort needs beyond its array, for `copies` copies on `threads` threads. */
struct sort_bufs {
    char *scratch;              /* a tmp per copy, copies 1..T-1, then `local` */
    size_t scratch_bytes;
    bool staged;                /* staged_scatter(), asked once for the whole sort */
    bool stream;                /* final places and stages written with non-temporal stores */
    size_t (*hist)[1u << TOP_MAX_BITS];
    size_t *bucket;
    void *shared;               /* a shared block per copy */
    void *local;                /* LOCAL_BUFS private buffers per thread, inside scratch */
    size_t local_bytes;
    char *top;                  /* each thread's copy of the top-level bucket function */
    size_t top_bytes;
    size_t tmp_bytes;           /* a copy's tmp: n keys, or chunk_cap chunks */
    uint32_t chunk_cap;         /* chunks in a tmp; 0 when the one-read top level is off */
    size_t nd;                  /* top-level buckets */
    char *chunks;               /* a copy's chunk tables (chunk_bytes each) */
    size_t chunk_bytes;
};

/* Scratch holds the copies' tmps first, so that each starts at a multiple of a chunk (the
 * block is 2 MiB aligned) as the top-level scatters' stage writes need; then copies 1..T-1. */
static char *copy_array(const struct sort_bufs *b, unsigned copies, size_t bytes, unsigned i)
{
    return b->scratch + copies * b->tmp_bytes + (size_t)(i - 1) * bytes;
}

static void sort_bufs_put(hy_host *h, struct sort_bufs *b)
{
    free(b->chunks);
    free(b->top);
    free(b->shared);
    free(b->bucket);
    free(b->hist);
    hy_host_scratch_put(h, b->scratch, b->scratch_bytes);
}

static int sort_bufs_get(hy_host *h, size_t size, size_t n, unsigned copies, unsigned threads,
                         struct sort_bufs *b, hy_error *err)
{
    size_t nd = (size_t)1 << TOP_MAX_BITS;
    *b = (struct sort_bufs){.local_bytes = (size_t)LOCAL_BUFS * LSD_MAX * size,
                            .top_bytes = sizeof(struct top_u64),
                            /* whole stages, so that every copy's tmp starts at one */
                            .tmp_bytes = (n * size + STAGE_BYTES - 1) / STAGE_BYTES *
                                         STAGE_BYTES,
                            .staged = staged_scatter()};
    b->stream = !b->staged || copies * n * size > STREAM_MIN_BYTES;
    /* The one-read top level's tmp: n keys in full chunks plus one part-filled chunk per
     * thread of a copy and bucket (sort_radix.inc's scatter_chunks relies on it). */
    unsigned top_bits = top_bits_for(n, b->staged);
    size_t ck = CHUNK_BYTES / size, per_copy = copies > 1 ? 1 : threads;
    size_t cap = (n + ck - 1) / ck + per_copy * ((size_t)1 << top_bits);
    if (chunked_for(n, top_bits, b->staged) && cap <= UINT32_MAX) {
        b->chunk_cap = (uint32_t)cap;
        b->nd = (size_t)1 << top_bits;
        b->tmp_bytes = cap * CHUNK_BYTES;
        /* order, fill (uint32_t each), first (nd + 1 uint32_t), bucket (uint16_t); rounded
         * up to 8 bytes, so that every copy's tables (replicate mode) start aligned. */
        b->chunk_bytes = (cap * 10 + (b->nd + 1) * 4 + 7) / 8 * 8;
        b->chunks = malloc(copies * b->chunk_bytes);
        if (!b->chunks)
            return hy_error_set(err, HY_ENOMEM, "out of memory for sorting %zu elements", n);
    }
    /* The private buffers live in the scratch block too, after the tmps: the engine keeps
     * that block between jobs, so a job's first touch of them is no longer a page fault each
     * (a fresh 2-3 MiB allocation per job was). */
    size_t arrays = n * size * ((size_t)copies - 1) + b->tmp_bytes * copies;
    size_t local_at = (arrays + 63) / 64 * 64;
    b->scratch_bytes = local_at + b->local_bytes * threads;
    b->scratch = hy_host_scratch_get(h, b->scratch_bytes);
    b->local = b->scratch ? b->scratch + local_at : NULL;
    /* The small path (n <= small_max) uses neither the histograms nor the bucket bounds,
     * and never reads a slot of its buffers it has not written: for 32-bit keys they are
     * left unzeroed (10^4 u32: 25 against 28.5 us, sorted 7.7 against 9.8). 64-bit keys
     * measured the other way on the AMD EPYC guest (10^4 u64 sorted: 12.4 against 10.3 us
     * zeroed; why, we have not found), so theirs still are there; where the scatter is
     * staged they are not (Intel Xeon guest, f64, medians of 9 runs in turns: 1-4% faster
     * unzeroed from 10^3 to 5*10^4, uniform and sorted). */
    bool small = (size == 4 || b->staged) && n <= small_max(size);
    b->hist = small ? malloc(threads * sizeof *b->hist) : calloc(threads, sizeof *b->hist);
    b->bucket = small ? malloc(copies * (nd + 1) * sizeof *b->bucket)
                      : calloc(copies * (nd + 1), sizeof *b->bucket);
    b->shared = calloc(copies,
                       size == 4 ? sizeof(struct shared_u32) : sizeof(struct shared_u64));
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
    /* The small path reads the input once into these buffers (its radix fallback sorts
     * its own private copy, which cannot change). */
    if (small)
        return 0;
    for (unsigned i = 0; i < threads; i++)
        for (unsigned j = 0; j < 2; j++) /* the gather buffer is written before it is read */
            memset((char *)b->local + ((size_t)i * LOCAL_BUFS + j) * LSD_MAX * size, 0, reach);
    return 0;
}

/* Points copy i's chunk tables into b->chunks (none when the one-read top level is off). */
#define SET_CHUNKS(blk, b, i)                                                                  \
    do {                                                                                       \
        (blk)->chunk_cap = (b)->chunk_cap;                                                     \
        if ((b)->chunks) {                                                                     \
            uint32_t *order_ = (uint32_t *)(void *)((b)->chunks + (i) * (b)->chunk_bytes);     \
            (blk)->chunk_order = order_;                                                       \
            (blk)->chunk_fill = order_ + (b)->chunk_cap;                                       \
            (blk)->chunk_first = order_ + 2 * (size_t)(b)->chunk_cap;                          \
            (blk)->chunk_bucket = (uint16_t *)(void *)((blk)->chunk_first + (b)->nd + 1);      \
        }                                                                                      \
    } while (0)

/* Points each copy's shared block at its array, tmp and rows. Copy 0 reads src and writes
 * data; the other copies (replicate mode) are copies of src in scratch, sorted in place. */
static void setup_copies(struct sort_ctx *c, const struct sort_bufs *b, int dtype,
                         const void *src, void *data, size_t n, unsigned copies)
{
    size_t nd = (size_t)1 << TOP_MAX_BITS, bytes = n * c->size;
    bool repl = c->mode == HY_MODE_REPLICATE;
    struct hy_key_spec spec = hy_key_spec_of(dtype);
    for (unsigned i = 0; i < copies; i++) {
        char *arr = i == 0 ? (char *)src : copy_array(b, copies, bytes, i);
        char *outv = i == 0 ? data : arr;
        char *tmpv = b->scratch + i * b->tmp_bytes;
        if (i > 0 && bytes > 0) /* data may be NULL when n is 0 */
            memcpy(arr, data, bytes);
        size_t(*rows)[1u << TOP_MAX_BITS] = repl ? b->hist + i : b->hist;
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
        if (c->size == 4)
            SET_CHUNKS(&c->s32[i], b, i);
        else
            SET_CHUNKS(&c->s64[i], b, i);
    }
}

/* Sorts src into dst (the same array for an in-place sort); with shed, in place, leaving
 * its sections to others (hy_host_sort_shed). */
static int sort_impl(hy_host *h, int dtype, const void *src, void *dst, size_t n,
                     const hy_run_opts *o, struct hy_shed *shed, hy_sort_result *r,
                     hy_error *err)
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
    if (c.size == 4)
        c.s32[0].shed = shed;
    else
        c.s64[0].shed = shed;
    /* Split arrays up to small_max are sorted by thread 0 alone (sort_radix.inc's
     * sort_small): on the native backend the others are not woken for them. The locked one
     * still starts every thread, each taking the lock, as the CPython threads it models do. */
    rc = mode == HY_MODE_SPLIT && o->backend == HY_BACKEND_NATIVE && n <= small_max(size)
             ? hy_host_run_first(h, &ro, (uint64_t)n * 3u, sort_task, &c, &r->stats, err)
             : hy_host_run(h, &ro, (uint64_t)n * 3u * copies, sort_task, &c, &r->stats, err);
    if (rc == HY_EINVAL)
        hy_error_set(err, rc, "the array changed while it was being sorted (was its memfd "
                     "written during the job?); it holds what was written, unsorted");
    r->stats.copies = copies;
    r->n = n;
    /* Every copy sorted the same input; any difference would be a bug in the sort. */
    for (unsigned i = 1; rc == 0 && bytes > 0 && i < copies; i++)
        if (memcmp(data, copy_array(&b, copies, bytes, i), bytes) != 0)
            rc = hy_error_set(err, HY_EINTERNAL, "replicate copy %u sorted differently from "
                              "copy 0", i);
    sort_bufs_put(h, &b);
    return rc;
}

int hy_host_sort(hy_host *h, int dtype, void *data, size_t n, const hy_run_opts *o,
                 hy_sort_result *r, hy_error *err)
{
    return sort_impl(h, dtype, data, data, n, o, NULL, r, err);
}

int hy_host_sort_shed(hy_host *h, int dtype, void *data, size_t n, const hy_run_opts *o,
                      const hy_sort_shed *shed, size_t *bounds, hy_sort_result *r,
                      hy_error *err)
{
    if (!shed || !bounds || !shed->ready || !shed->share || shed->parts == 0 ||
        shed->parts >= HY_HOST_CUT_MAX_PARTS)
        return hy_error_set(err, HY_EINVAL, "a shed sort needs 1 to %d sections to hand out, "
                            "their shares, bounds and a ready callback",
                            HY_HOST_CUT_MAX_PARTS - 1);
    for (unsigned i = 0; i <= shed->parts; i++)
        if (!(shed->share[i] >= 0))
            return hy_error_set(err, HY_EINVAL, "section %u's share is negative or not a "
                                "number", i);
    if (o && o->mode == HY_MODE_REPLICATE)
        return hy_error_set(err, HY_EINVAL, "a shed sort runs in split mode");
    /* Until the sort sheds, every section but its own is empty. */
    bounds[0] = 0;
    for (unsigned i = 1; i <= shed->parts + 1; i++)
        bounds[i] = n;
    struct hy_shed sh = {.spec = shed, .bounds = bounds};
    int rc = sort_impl(h, dtype, data, data, n, o, &sh, r, err);
    hy_shed_tell(&sh); /* once, on every path: whoever waits on it must not wait forever */
    return rc;
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
    return sort_impl(h, dtype, src, dst, n, o, NULL, r, err);
}
