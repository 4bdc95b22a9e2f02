/* tests: the pi kernel — Philox4x32-10 against Random123's known answers, every SIMD path
 * against the portable one, additivity, and hit counts against a naive re-implementation. */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pi_kernel.h"

#define TOP (UINT64_C(1) << 63) /* one past the last valid sample index */

/* ---- An independent, deliberately naive model of docs/pi-mapping.md. ----
 * Written apart from host/pi_kernel.c on purpose (a bug copied into both would pass every
 * cross-check): the key schedule is computed per round from the round number, the
 * multiply's halves are taken by division, and every sample recomputes its whole block. */
static void naive_philox(const uint32_t in[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t x[4];
    memcpy(x, in, sizeof x);
    for (uint32_t round = 0; round < 10; round++) {
        uint32_t ka = key[0] + round * 0x9E3779B9u;
        uint32_t kb = key[1] + round * 0xBB67AE85u;
        uint64_t prod_a = (uint64_t)x[0] * 0xD2511F53u;
        uint64_t prod_b = (uint64_t)x[2] * 0xCD9E8D57u;
        uint32_t hi_a = (uint32_t)(prod_a / 4294967296u), lo_a = (uint32_t)(prod_a % 4294967296u);
        uint32_t hi_b = (uint32_t)(prod_b / 4294967296u), lo_b = (uint32_t)(prod_b % 4294967296u);
        uint32_t y[4] = {hi_b ^ x[1] ^ ka, lo_b, hi_a ^ x[3] ^ kb, lo_a};
        memcpy(x, y, sizeof x);
    }
    memcpy(out, x, sizeof x);
}

static int naive_inside(uint64_t seed, uint64_t i)
{
    uint64_t block = i / 2;
    uint32_t ctr[4] = {(uint32_t)(block % 4294967296u), (uint32_t)(block / 4294967296u), 0, 0};
    uint32_t key[2] = {(uint32_t)(seed % 4294967296u), (uint32_t)(seed / 4294967296u)};
    uint32_t w[4];
    naive_philox(ctr, key, w);
    uint64_t x = (i % 2 == 0 ? w[0] : w[2]) / 2;
    uint64_t y = (i % 2 == 0 ? w[1] : w[3]) / 2;
    return x * x + y * y < UINT64_C(4611686018427387904); /* 2^62 */
}

static uint64_t naive_hits(uint64_t seed, uint64_t first, uint64_t count)
{
    uint64_t hits = 0;
    for (uint64_t k = 0; k < count; k++)
        hits += (uint64_t)naive_inside(seed, first + k);
    return hits;
}

/* ---- Philox4x32-10 known answers: Random123's tests/kat_vectors, "philox4x32 10" lines
 * (columns: ctr[4] key[2] -> out[4]). ---- */
struct kat {
    uint32_t ctr[4], key[2], out[4];
};

static const struct kat kats[] = {
    {{0x00000000, 0x00000000, 0x00000000, 0x00000000},
     {0x00000000, 0x00000000},
     {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
     {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
     {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};

Test(pi_kernel, philox_known_answers)
{
    for (size_t t = 0; t < sizeof kats / sizeof kats[0]; t++) {
        uint32_t out[4], naive[4];
        hy_philox4x32_10(kats[t].ctr, kats[t].key, out);
        naive_philox(kats[t].ctr, kats[t].key, naive);
        for (int w = 0; w < 4; w++) {
            cr_expect_eq(out[w], kats[t].out[w], "kat %zu word %d: got %08x want %08x", t, w,
                         out[w], kats[t].out[w]);
            cr_expect_eq(naive[w], kats[t].out[w], "naive model, kat %zu word %d", t, w);
        }
    }
}

/* The worked example of docs/pi-mapping.md: if this changes, the document is wrong. */
Test(pi_kernel, mapping_worked_example)
{
    static const struct {
        uint64_t seed, block;
        uint32_t out[4];
    } ex[] = {
        {0, 0, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {0, 1, {0xf8e4cca4, 0x5cb200db, 0xb1a574eb, 0x097eff67}},
        {UINT64_C(0x0123456789abcdef), 0, {0xb850222e, 0xc58cb04b, 0x14a7a020, 0x7a84fff9}},
        {UINT64_C(0x0123456789abcdef), 1, {0xadca1466, 0x523e0d85, 0x65401425, 0xb299da3f}},
        {UINT64_C(0x0123456789abcdef), (UINT64_C(1) << 62) - 1,
         {0x02c86e8c, 0x35fbb187, 0xd39830cb, 0xef9ceea3}},
    };
    for (size_t t = 0; t < sizeof ex / sizeof ex[0]; t++) {
        const uint32_t ctr[4] = {(uint32_t)ex[t].block, (uint32_t)(ex[t].block >> 32), 0, 0};
        const uint32_t key[2] = {(uint32_t)ex[t].seed, (uint32_t)(ex[t].seed >> 32)};
        uint32_t r[4];
        hy_philox4x32_10(ctr, key, r);
        for (int w = 0; w < 4; w++)
            cr_expect_eq(r[w], ex[t].out[w], "example %zu word %d: %08x", t, w, r[w]);
    }
    /* Seed 0, samples 0..3: inside, inside, outside, inside. */
    static const uint64_t in0[4] = {1, 1, 0, 1};
    for (uint64_t i = 0; i < 4; i++)
        cr_expect_eq(hy_pi_kernel_hits(0, i, 1), in0[i], "seed 0 sample %llu",
                     (unsigned long long)i);
    /* The last two samples of the range, seed 0x0123456789abcdef: inside, outside. */
    cr_expect_eq(hy_pi_kernel_hits(UINT64_C(0x0123456789abcdef), TOP - 2, 1), 1);
    cr_expect_eq(hy_pi_kernel_hits(UINT64_C(0x0123456789abcdef), TOP - 1, 1), 0);
    /* The hit counts the document quotes. */
    cr_expect_eq(hy_pi_kernel_hits(0, 0, 10), 7);
    cr_expect_eq(hy_pi_kernel_hits(0, 0, 1000), 783);
    cr_expect_eq(hy_pi_kernel_hits(0, 0, 1000000), 784445);
    cr_expect_eq(hy_pi_kernel_hits(42, 0, 1000000), 785856);
    cr_expect_eq(hy_pi_kernel_hits(UINT64_C(0x0123456789abcdef), 0, 1000000), 785999);
    cr_expect_eq(hy_pi_kernel_hits(UINT64_C(0x0123456789abcdef), TOP - 1000, 1000), 784);
    cr_expect_eq(hy_pi_kernel_hits(42, (UINT64_C(1) << 33) - 501, 1001), 786);
}

/* Seed 42, n = 100000: the value is what the naive model above computes; the literal pins it
 * so that a change to both the kernel and the model still shows. */
Test(pi_kernel, hits_known_answer_seed42)
{
    const uint64_t want = 78463;
    cr_assert_eq(naive_hits(42, 0, 100000), want);
    for (int p = HY_PI_PATH_PORTABLE; p <= HY_PI_PATH_AVX512; p++) {
        if (!hy_pi_kernel_path_available(p))
            continue;
        cr_expect_eq(hy_pi_kernel_hits_path(p, 42, 0, 100000), want, "path %d", p);
    }
    cr_expect_eq(hy_pi_kernel_hits(42, 0, 100000), want);
}

/* Ragged starts and ends, short counts, and the 2^32-block boundary, against the model. */
Test(pi_kernel, hits_match_naive_model)
{
    static const uint64_t seeds[] = {0, 1, 42, UINT64_C(0x0123456789abcdef), UINT64_MAX};
    static const uint64_t firsts[] = {0, 1, 2, 3, 1001, (UINT64_C(1) << 33) - 37,
                                      UINT64_C(0x123456789ab), TOP - 300, TOP - 1};
    for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++)
        for (size_t f = 0; f < sizeof firsts / sizeof firsts[0]; f++)
            for (uint64_t count = 0; count <= 300 && firsts[f] + count <= TOP; count += 7) {
                uint64_t want = naive_hits(seeds[s], firsts[f], count);
                for (int p = HY_PI_PATH_PORTABLE; p <= HY_PI_PATH_AVX512; p++)
                    if (hy_pi_kernel_path_available(p))
                        cr_assert_eq(hy_pi_kernel_hits_path(p, seeds[s], firsts[f], count), want,
                                     "path %d seed %llx first %llu count %llu", p,
                                     (unsigned long long)seeds[s], (unsigned long long)firsts[f],
                                     (unsigned long long)count);
            }
}

static void expect_paths_agree(uint64_t seed, uint64_t first, uint64_t count)
{
    uint64_t want = hy_pi_kernel_hits_path(HY_PI_PATH_PORTABLE, seed, first, count);
    cr_assert_leq(want, count);
    for (int p = HY_PI_PATH_AVX2; p <= HY_PI_PATH_AVX512; p++) {
        if (!hy_pi_kernel_path_available(p))
            continue;
        uint64_t got = hy_pi_kernel_hits_path(p, seed, first, count);
        cr_assert_eq(got, want, "path %d seed %llx first %llu count %llu: %llu, portable %llu",
                     p, (unsigned long long)seed, (unsigned long long)first,
                     (unsigned long long)count, (unsigned long long)got,
                     (unsigned long long)want);
    }
    cr_assert_eq(hy_pi_kernel_hits(seed, first, count), want);
}

Test(pi_kernel, paths_agree_small_counts)
{
    static const uint64_t seeds[] = {0, 7, UINT64_C(0xdeadbeefcafef00d)};
    for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++)
        for (uint64_t first = 0; first < 20; first++)
            for (uint64_t count = 0; count <= 70; count++)
                expect_paths_agree(seeds[s], first, count);
}

/* Counts around the vector steps: the AVX2 path takes 16 blocks (32 samples) a step, the
 * AVX-512 path 48 blocks (96 samples); a multiple, plus or minus a little, from odd and even
 * starts exercises the step loop and the scalar leftovers on both sides. */
Test(pi_kernel, paths_agree_around_step_sizes)
{
    static const uint64_t steps[] = {8, 16, 32, 48, 64, 96, 128, 192, 288, 960};
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++)
        for (uint64_t mult = 1; mult <= 3; mult++)
            for (int d = -3; d <= 3; d++)
                for (uint64_t first = 0; first < 4; first++) {
                    uint64_t count = steps[k] * mult + (uint64_t)(int64_t)d;
                    expect_paths_agree(99, first, count);
                    expect_paths_agree(99, first + 1000003, count);
                }
}

/* Near the top of the range the counter's high word is large; and runs that straddle a
 * 2^32-block boundary (samples 2^33 k) split the SIMD loop in two. */
Test(pi_kernel, paths_agree_high_counters)
{
    for (uint64_t count = 0; count <= 70; count++)
        expect_paths_agree(5, TOP - count, count);
    expect_paths_agree(5, TOP - 100000, 100000);
    expect_paths_agree(5, TOP - 100001, 100000);
    for (uint64_t k = 1; k <= 3; k++) {
        uint64_t edge = k << 33;
        for (uint64_t back = 0; back < 200; back += 13)
            expect_paths_agree(k, edge - back, 500);
        expect_paths_agree(k, edge - 50001, 100000);
    }
    expect_paths_agree(11, (UINT64_C(1) << 62) + 12345, 20000);
}

Test(pi_kernel, paths_agree_millions)
{
    expect_paths_agree(42, 0, 3000000);
    expect_paths_agree(UINT64_C(0x0123456789abcdef), 123456789, 2000001);
    expect_paths_agree(3, (UINT64_C(1) << 33) - 1000001, 2000000);
}

Test(pi_kernel, additivity)
{
    uint64_t rng = 0x9e3779b97f4a7c15u;
    for (int t = 0; t < 300; t++) {
        /* xorshift64 for the test's own choices; the kernel's stream is not involved. */
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        uint64_t a = rng % 700, b = (rng >> 20) % 700, seed = rng >> 40;
        uint64_t first = t % 3 == 0 ? (rng >> 10) % 100000 : TOP - a - b - (rng >> 50);
        cr_assert_eq(hy_pi_kernel_hits(seed, first, a + b),
                     hy_pi_kernel_hits(seed, first, a) + hy_pi_kernel_hits(seed, first + a, b),
                     "seed %llu first %llu a %llu b %llu", (unsigned long long)seed,
                     (unsigned long long)first, (unsigned long long)a, (unsigned long long)b);
    }
    uint64_t whole = hy_pi_kernel_hits(1, 17, 1000000);
    cr_assert_eq(whole, hy_pi_kernel_hits(1, 17, 333333) + hy_pi_kernel_hits(1, 333350, 666667));
}

Test(pi_kernel, estimate_is_near_pi)
{
    uint64_t n = UINT64_C(1) << 22;
    double pi = 4.0 * (double)hy_pi_kernel_hits(2024, 0, n) / (double)n;
    /* The standard error at n = 2^22 is about 0.0008; 0.005 is six of them. */
    cr_expect(pi > 3.1366 && pi < 3.1466, "pi estimate %f", pi);
}

Test(pi_kernel, unavailable_path_falls_back)
{
    uint64_t want = hy_pi_kernel_hits_path(HY_PI_PATH_PORTABLE, 8, 3, 1000);
    cr_expect_eq(hy_pi_kernel_path_available(-1), 0);
    cr_expect_eq(hy_pi_kernel_path_available(3), 0);
    cr_expect_eq(hy_pi_kernel_hits_path(-1, 8, 3, 1000), want);
    cr_expect_eq(hy_pi_kernel_hits_path(99, 8, 3, 1000), want);
}

/* These two rely on Criterion running each test in its own process (its default): the path
 * is chosen once per process, at the first call. */
Test(pi_kernel, env_forces_portable)
{
    setenv("HYBRIDD_PI_PATH", "portable", 1);
    cr_expect_str_eq(hy_pi_kernel_path_name(), "portable");
}

Test(pi_kernel, env_unknown_value_is_ignored)
{
    setenv("HYBRIDD_PI_PATH", "sse9000", 1);
    const char *name = hy_pi_kernel_path_name();
    int best = hy_pi_kernel_path_available(HY_PI_PATH_AVX512) ? HY_PI_PATH_AVX512
               : hy_pi_kernel_path_available(HY_PI_PATH_AVX2) ? HY_PI_PATH_AVX2
                                                               : HY_PI_PATH_PORTABLE;
    static const char *const names[] = {"portable", "avx2", "avx512"};
    cr_expect_str_eq(name, names[best]);
}
