/* host (private): the Monte Carlo pi kernel — Philox4x32-10 plus the exact integer inside
 * test, as a portable C path and AVX2/AVX-512 paths picked once at run time. */
#include "pi_kernel.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* Random123's Philox4x32 constants (Salmon et al., SC'11). docs/pi-mapping.md is normative
 * for how sample i maps to a block and words; every path below must agree with it bit for bit. */
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u
#define PHILOX_ROUNDS 10

/* x*x + y*y < 2^62 with x, y < 2^31: the sum is below 2^63, so it never overflows uint64. */
#define PI_RADIUS2 (UINT64_C(1) << 62)

/* ---------------------------------------------------------------------------------------
 * Portable path: the reference every other path is tested against. Kept plain on purpose.
 * ------------------------------------------------------------------------------------- */

static inline void philox_round(uint32_t c[4], uint32_t k0, uint32_t k1)
{
    uint64_t p0 = (uint64_t)PHILOX_M0 * c[0];
    uint64_t p1 = (uint64_t)PHILOX_M1 * c[2];
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k0;
    uint32_t n2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k1;
    c[0] = n0;
    c[1] = (uint32_t)p1;
    c[2] = n2;
    c[3] = (uint32_t)p0;
}

void hy_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < PHILOX_ROUNDS; r++) {
        /* Random123 bumps the key between rounds, not before the first nor after the last. */
        if (r > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        philox_round(c, k0, k1);
    }
    memcpy(out, c, sizeof c);
}

/* The block that holds samples 2b and 2b+1. */
static inline void pi_block(uint64_t seed, uint64_t b, uint32_t r[4])
{
    const uint32_t ctr[4] = {(uint32_t)b, (uint32_t)(b >> 32), 0, 0};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    hy_philox4x32_10(ctr, key, r);
}

static inline unsigned pi_inside(uint32_t wx, uint32_t wy)
{
    uint64_t x = wx >> 1, y = wy >> 1;
    return x * x + y * y < PI_RADIUS2;
}

/* Hits among the 2*nb samples of blocks [b, b + nb). The SIMD paths use it for the blocks
 * that do not fill a whole vector step. Batching blocks as independent lanes did not help it
 * (measured): scalar Philox is bound by the 20 64-bit multiplies per block on x86's one
 * scalar multiplier port, not by latency. */
static uint64_t blocks_portable(uint64_t seed, uint64_t b, uint64_t nb)
{
    uint64_t hits = 0;
    for (uint64_t i = 0; i < nb; i++) {
        uint32_t r[4];
        pi_block(seed, b + i, r);
        hits += pi_inside(r[0], r[1]) + pi_inside(r[2], r[3]);
    }
    return hits;
}

/* ---------------------------------------------------------------------------------------
 * SIMD paths (x86-64 only). Layout: one block per 64-bit lane, each Philox word in the lane's
 * low half. vpmuludq reads only the low 32 bits of each lane, so the high halves may hold
 * garbage between rounds: the full 64-bit product is kept as "lo" (its low half is lo, and
 * nothing reads the rest), and only "hi" costs an extra shift (or half swap). That makes one
 * Philox round two multiplies, two shifts and two 3-way XORs per vector — as few instructions as the
 * 16-blocks-as-32-bit-lanes layout, with no even/odd recombination.
 *
 * The counter's high word (b >> 32) is held constant over a run of blocks (runs are cut at
 * 2^32-block boundaries), and the counter's words 2 and 3 are zero; so round 1 needs only
 * one multiply and round 2's other multiply is a scalar constant. The key schedule is the
 * same for every lane, so the round keys are broadcast constants.
 *
 * The inside test: x = w >> 1 in the low half (vpsrld shifts each 32-bit half alone),
 * x*x + y*y by vpmuludq and a 64-bit add, and since that sum is below 2^63, sum >> 62 is 1
 * exactly for a sample outside. Counting outside samples avoids a compare and a mask.
 * ------------------------------------------------------------------------------------- */
#if defined(__x86_64__)

/* The group and round loops must be unrolled completely so that the per-group arrays below
 * live in registers; -O3 does that unasked, but -O2 (Debug builds) does not and ran at half
 * speed without this. */
#define PI_UNROLL _Pragma("GCC unroll 16")

struct pi_consts {
    uint32_t k0[PHILOX_ROUNDS], k1[PHILOX_ROUNDS];
    uint32_t a;         /* round 1's new c0: (b >> 32) ^ k0[0], the same for every lane */
    uint32_t hip, lop;  /* round 2's M0 * a, a constant: its high and low words */
};

static void pi_consts_init(struct pi_consts *pc, uint64_t seed, uint32_t bhi)
{
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < PHILOX_ROUNDS; r++) {
        pc->k0[r] = k0;
        pc->k1[r] = k1;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    pc->a = bhi ^ pc->k0[0];
    uint64_t p = (uint64_t)PHILOX_M0 * pc->a;
    pc->hip = (uint32_t)(p >> 32);
    pc->lop = (uint32_t)p;
}

/* A SIMD loop: the number of samples OUTSIDE among `steps` whole steps of blocks starting
 * at counter low word `blo`, all sharing the counter high word that `pc` was made for. */
typedef uint64_t (*pi_run_fn)(const struct pi_consts *pc, uint32_t blo, uint64_t steps);

/* Hits over blocks [b, b + nb): cut at 2^32-block boundaries (so the counter's high word is
 * constant within a run and its low word never wraps inside a vector), whole steps of `step`
 * blocks to `fn`, and what is left at a cut or at the end to the portable code. */

static uint64_t blocks_simd(uint64_t seed, uint64_t b, uint64_t nb, pi_run_fn fn,
                            uint64_t step)
{
    uint64_t hits = 0;
    while (nb > 0) {
        uint32_t blo = (uint32_t)b;
        uint64_t seg = (UINT64_C(1) << 32) - blo;
        if (seg > nb)
            seg = nb;
        uint64_t steps = seg / step;
        if (steps > 0) {
            struct pi_consts pc;
            pi_consts_init(&pc, seed, (uint32_t)(b >> 32));
            hits += 2 * steps * step - fn(&pc, blo, steps);
        }
        uint64_t done = steps * step;
        hits += blocks_portable(seed, b + done, seg - done);
        b += seg;
        nb -= seg;
    }
    return hits;
}

/* ---- AVX-512: 8 blocks per zmm, PI512_GROUPS independent vectors per step for ILP. ---- */
/* 6 groups of 8 blocks: a round's chain (multiply, shift, xor) is ~7 cycles long, so a few
 * independent vectors keep both 512-bit ports busy; 4, 5 and 6 measured within noise of each
 * other, 6 a little ahead. More state than registers is fine: the spills are the round keys,
 * which ternlog reads as memory operands at no port cost. */
#ifndef PI512_GROUPS
#define PI512_GROUPS 6
#endif
#define PI512_STEP (8 * PI512_GROUPS)

#define T512 __attribute__((target("avx512f")))

/* The high word of each lane's product, in the low half. Two ways on purpose: vpsrlq and
 * vpshufd issue on different ports, and using one for each of a round's two products measured
 * ~5% faster than either alone (docs/pi-mapping.md, "Performance"). */
T512 static inline __m512i hi512_shift(__m512i p)
{
    return _mm512_srli_epi64(p, 32);
}

T512 static inline __m512i hi512_swap(__m512i p)
{
    return _mm512_shuffle_epi32(p, _MM_PERM_CDAB);
}

T512 static inline __m512i xor3_512(__m512i a, __m512i b, __m512i c)
{
    return _mm512_ternarylogic_epi64(a, b, c, 0x96); /* a ^ b ^ c */
}

T512 static uint64_t run_avx512(const struct pi_consts *pc, uint32_t blo, uint64_t steps)
{
    const int G = PI512_GROUPS;
    const __m512i m0 = _mm512_set1_epi64(PHILOX_M0), m1 = _mm512_set1_epi64(PHILOX_M1);
    __m512i k0[PHILOX_ROUNDS], k1[PHILOX_ROUNDS];
    PI_UNROLL
    for (int r = 0; r < PHILOX_ROUNDS; r++) {
        k0[r] = _mm512_set1_epi64(pc->k0[r]);
        k1[r] = _mm512_set1_epi64(pc->k1[r]);
    }
    /* Constants that fold rounds 1-3's zero and lane-invariant words. */
    const __m512i r2c2 = _mm512_set1_epi64(pc->hip ^ pc->k1[1]);
    const __m512i r3c2 = _mm512_set1_epi64(pc->lop ^ pc->k1[2]);

    __m512i ctr = _mm512_add_epi64(_mm512_set1_epi64(blo),
                                   _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0));
    const __m512i stepv = _mm512_set1_epi64(PI512_STEP);
    __m512i acc[PI512_GROUPS];
    PI_UNROLL
    for (int g = 0; g < G; g++)
        acc[g] = _mm512_setzero_si512();

    for (uint64_t s = 0; s < steps; s++) {
        __m512i c0[PI512_GROUPS], c1[PI512_GROUPS], c2[PI512_GROUPS], c3[PI512_GROUPS];
        __m512i p0[PI512_GROUPS], p1[PI512_GROUPS];
        /* Round 1: c = {blo, bhi, 0, 0}; M1 * 0 = 0, so c0 becomes a and c1 becomes 0. */
        PI_UNROLL
        for (int g = 0; g < G; g++) {
            __m512i cg = g == 0 ? ctr : _mm512_add_epi64(ctr, _mm512_set1_epi64(8 * g));
            p0[g] = _mm512_mul_epu32(cg, m0);
            c2[g] = _mm512_xor_si512(hi512_shift(p0[g]), k1[0]);
            c3[g] = p0[g];
        }
        /* Round 2: c = {a, 0, c2, c3}; M0 * a is the constant (hip, lop). */
        PI_UNROLL
        for (int g = 0; g < G; g++) {
            p1[g] = _mm512_mul_epu32(c2[g], m1);
            c0[g] = _mm512_xor_si512(hi512_swap(p1[g]), k0[1]);
            c1[g] = p1[g];
            c2[g] = _mm512_xor_si512(c3[g], r2c2);
        }
        /* Round 3: c3 is the constant lop. */
        PI_UNROLL
        for (int g = 0; g < G; g++) {
            p0[g] = _mm512_mul_epu32(c0[g], m0);
            p1[g] = _mm512_mul_epu32(c2[g], m1);
            c0[g] = xor3_512(hi512_swap(p1[g]), c1[g], k0[2]);
            c1[g] = p1[g];
            c2[g] = _mm512_xor_si512(hi512_shift(p0[g]), r3c2);
            c3[g] = p0[g];
        }
        PI_UNROLL
        for (int r = 3; r < PHILOX_ROUNDS; r++) {
            PI_UNROLL
            for (int g = 0; g < G; g++) {
                p0[g] = _mm512_mul_epu32(c0[g], m0);
                p1[g] = _mm512_mul_epu32(c2[g], m1);
                c0[g] = xor3_512(hi512_swap(p1[g]), c1[g], k0[r]);
                c1[g] = p1[g];
                c2[g] = xor3_512(hi512_shift(p0[g]), c3[g], k1[r]);
                c3[g] = p0[g];
            }
        }
        PI_UNROLL
        for (int g = 0; g < G; g++) {
            __m512i x0 = _mm512_srli_epi32(c0[g], 1), y0 = _mm512_srli_epi32(c1[g], 1);
            __m512i x1 = _mm512_srli_epi32(c2[g], 1), y1 = _mm512_srli_epi32(c3[g], 1);
            __m512i s0 = _mm512_add_epi64(_mm512_mul_epu32(x0, x0), _mm512_mul_epu32(y0, y0));
            __m512i s1 = _mm512_add_epi64(_mm512_mul_epu32(x1, x1), _mm512_mul_epu32(y1, y1));
            acc[g] = _mm512_add_epi64(acc[g], _mm512_srli_epi64(s0, 62));
            acc[g] = _mm512_add_epi64(acc[g], _mm512_srli_epi64(s1, 62));
        }
        ctr = _mm512_add_epi64(ctr, stepv);
    }
    __m512i t = acc[0];
    PI_UNROLL
    for (int g = 1; g < G; g++)
        t = _mm512_add_epi64(t, acc[g]);
    return (uint64_t)_mm512_reduce_add_epi64(t);
}

static uint64_t blocks_avx512(uint64_t seed, uint64_t b, uint64_t nb)
{
    return blocks_simd(seed, b, nb, run_avx512, PI512_STEP);
}

/* ---- AVX2: 4 blocks per ymm; the same scheme without ternary logic. ---- */
/* 4 groups: 3 to 6 measured within noise; vpshufd for hi was slower here than vpsrlq. */
#ifndef PI256_GROUPS
#define PI256_GROUPS 4
#endif
#define PI256_STEP (4 * PI256_GROUPS)

#define T256 __attribute__((target("avx2")))

T256 static inline __m256i hi256(__m256i p)
{
    return _mm256_srli_epi64(p, 32);
}

T256 static uint64_t run_avx2(const struct pi_consts *pc, uint32_t blo, uint64_t steps)
{
    const int G = PI256_GROUPS;
    const __m256i m0 = _mm256_set1_epi64x(PHILOX_M0), m1 = _mm256_set1_epi64x(PHILOX_M1);
    __m256i k0[PHILOX_ROUNDS], k1[PHILOX_ROUNDS];
    PI_UNROLL
    for (int r = 0; r < PHILOX_ROUNDS; r++) {
        k0[r] = _mm256_set1_epi64x(pc->k0[r]);
        k1[r] = _mm256_set1_epi64x(pc->k1[r]);
    }
    const __m256i r2c2 = _mm256_set1_epi64x(pc->hip ^ pc->k1[1]);
    const __m256i r3c2 = _mm256_set1_epi64x(pc->lop ^ pc->k1[2]);

    __m256i ctr = _mm256_add_epi64(_mm256_set1_epi64x(blo), _mm256_set_epi64x(3, 2, 1, 0));
    const __m256i stepv = _mm256_set1_epi64x(PI256_STEP);
    __m256i acc[PI256_GROUPS];
    PI_UNROLL
    for (int g = 0; g < G; g++)
        acc[g] = _mm256_setzero_si256();

    for (uint64_t s = 0; s < steps; s++) {
        __m256i c0[PI256_GROUPS], c1[PI256_GROUPS], c2[PI256_GROUPS], c3[PI256_GROUPS];
        __m256i p0[PI256_GROUPS], p1[PI256_GROUPS];
        PI_UNROLL
        for (int g = 0; g < G; g++) {
            __m256i cg = g == 0 ? ctr : _mm256_add_epi64(ctr, _mm256_set1_epi64x(4 * g));
            p0[g] = _mm256_mul_epu32(cg, m0);
            c2[g] = _mm256_xor_si256(hi256(p0[g]), k1[0]);
            c3[g] = p0[g];
        }
        PI_UNROLL
        for (int g = 0; g < G; g++) {
            p1[g] = _mm256_mul_epu32(c2[g], m1);
            c0[g] = _mm256_xor_si256(hi256(p1[g]), k0[1]);
            c1[g] = p1[g];
            c2[g] = _mm256_xor_si256(c3[g], r2c2);
        }
        PI_UNROLL
        for (int g = 0; g < G; g++) {
            p0[g] = _mm256_mul_epu32(c0[g], m0);
            p1[g] = _mm256_mul_epu32(c2[g], m1);
            c0[g] = _mm256_xor_si256(_mm256_xor_si256(hi256(p1[g]), c1[g]), k0[2]);
            c1[g] = p1[g];
            c2[g] = _mm256_xor_si256(hi256(p0[g]), r3c2);
            c3[g] = p0[g];
        }
        PI_UNROLL
        for (int r = 3; r < PHILOX_ROUNDS; r++) {
            PI_UNROLL
            for (int g = 0; g < G; g++) {
                p0[g] = _mm256_mul_epu32(c0[g], m0);
                p1[g] = _mm256_mul_epu32(c2[g], m1);
                c0[g] = _mm256_xor_si256(_mm256_xor_si256(hi256(p1[g]), c1[g]), k0[r]);
                c1[g] = p1[g];
                c2[g] = _mm256_xor_si256(_mm256_xor_si256(hi256(p0[g]), c3[g]), k1[r]);
                c3[g] = p0[g];
            }
        }
        PI_UNROLL
        for (int g = 0; g < G; g++) {
            __m256i x0 = _mm256_srli_epi32(c0[g], 1), y0 = _mm256_srli_epi32(c1[g], 1);
            __m256i x1 = _mm256_srli_epi32(c2[g], 1), y1 = _mm256_srli_epi32(c3[g], 1);
            __m256i s0 = _mm256_add_epi64(_mm256_mul_epu32(x0, x0), _mm256_mul_epu32(y0, y0));
            __m256i s1 = _mm256_add_epi64(_mm256_mul_epu32(x1, x1), _mm256_mul_epu32(y1, y1));
            acc[g] = _mm256_add_epi64(acc[g], _mm256_srli_epi64(s0, 62));
            acc[g] = _mm256_add_epi64(acc[g], _mm256_srli_epi64(s1, 62));
        }
        ctr = _mm256_add_epi64(ctr, stepv);
    }
    __m256i t = acc[0];
    PI_UNROLL
    for (int g = 1; g < G; g++)
        t = _mm256_add_epi64(t, acc[g]);
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, t);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

static uint64_t blocks_avx2(uint64_t seed, uint64_t b, uint64_t nb)
{
    return blocks_simd(seed, b, nb, run_avx2, PI256_STEP);
}

#endif /* __x86_64__ */

/* ---------------------------------------------------------------------------------------
 * Ragged ends and dispatch.
 * ------------------------------------------------------------------------------------- */

typedef uint64_t (*pi_blocks_fn)(uint64_t seed, uint64_t b, uint64_t nb);

/* Samples [first, first + count): an odd first sample uses the second half of its block, an
 * odd end the first half of its block; whole blocks in between go to `blocks`. */
static uint64_t hits_with(pi_blocks_fn blocks, uint64_t seed, uint64_t first, uint64_t count)
{
    uint64_t hits = 0, i = first, end = first + count;
    uint32_t r[4];
    if (count == 0)
        return 0;
    if (i & 1) {
        pi_block(seed, i >> 1, r);
        hits += pi_inside(r[2], r[3]);
        i++;
    }
    if (end - i >= 2)
        hits += blocks(seed, i >> 1, (end - i) >> 1);
    if ((end - i) & 1) {
        pi_block(seed, end >> 1, r);
        hits += pi_inside(r[0], r[1]);
    }
    return hits;
}

static const char *const path_names[] = {"portable", "avx2", "avx512"};
#define PI_NPATHS 3

/* CPU features and the chosen path, found once: __builtin_cpu_init writes libgcc's globals,
 * so it runs under pthread_once rather than on every call from any thread. */
static pthread_once_t detect_once = PTHREAD_ONCE_INIT;
static int path_avail[PI_NPATHS];
static int chosen_path = HY_PI_PATH_PORTABLE;

/* The fastest available path, unless HYBRIDD_PI_PATH names another available one (a value it
 * does not know, or a path this CPU lacks, is ignored: forcing is for tests and benchmarks). */
static void detect(void)
{
    path_avail[HY_PI_PATH_PORTABLE] = 1;
#if defined(__x86_64__)
    /* __builtin_cpu_supports also checks that the OS saves the wider registers (XCR0). */
    __builtin_cpu_init();
    path_avail[HY_PI_PATH_AVX2] = __builtin_cpu_supports("avx2") != 0;
    path_avail[HY_PI_PATH_AVX512] = __builtin_cpu_supports("avx512f") != 0;
#endif
    int best = HY_PI_PATH_PORTABLE;
    for (int p = 0; p < PI_NPATHS; p++)
        if (path_avail[p])
            best = p;
    const char *env = getenv("HYBRIDD_PI_PATH");
    if (env != NULL)
        for (int p = 0; p < PI_NPATHS; p++)
            if (strcmp(env, path_names[p]) == 0 && path_avail[p])
                best = p;
    chosen_path = best;
}

int hy_pi_kernel_path_available(int path)
{
    pthread_once(&detect_once, detect);
    return path >= 0 && path < PI_NPATHS && path_avail[path];
}

static pi_blocks_fn path_fn(int path)
{
    switch (path) {
#if defined(__x86_64__)
    case HY_PI_PATH_AVX2:
        return blocks_avx2;
    case HY_PI_PATH_AVX512:
        return blocks_avx512;
#endif
    default:
        return blocks_portable;
    }
}

static int current_path(void)
{
    pthread_once(&detect_once, detect);
    return chosen_path;
}

uint64_t hy_pi_kernel_hits(uint64_t seed, uint64_t first, uint64_t count)
{
    return hits_with(path_fn(current_path()), seed, first, count);
}

uint64_t hy_pi_kernel_hits_path(int path, uint64_t seed, uint64_t first, uint64_t count)
{
    /* An unavailable path would fault on an illegal instruction; the portable one answers
     * the same number, so use it rather than crash. */
    if (!hy_pi_kernel_path_available(path))
        path = HY_PI_PATH_PORTABLE;
    return hits_with(path_fn(path), seed, first, count);
}

const char *hy_pi_kernel_path_name(void)
{
    return path_names[current_path()];
}
