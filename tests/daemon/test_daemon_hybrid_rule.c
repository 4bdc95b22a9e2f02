/* tests/daemon: backend hybrid's rules without a daemon or a clock — the sort's three plans
 * (pool alone, device alone, split) chosen from made-up rates, and the pi chunk rule driven
 * through a simulated run in which each participant's chunks take the time its made-up rate
 * and per-chunk cost say: a dominant side runs the job alone in one chunk, comparable sides
 * share in guided chunks, a side with no rate starts small, and every sample is handed out
 * once. */
#include <criterion/criterion.h>

#include "backend.h"

/* ---- sort: the three plans ---- */

/* Each slot measured by more than one run: the plan follows the rates alone. */
static const unsigned settled[] = {3, 3, 3};

Test(hybrid_rule, sort_runs_on_the_device_alone_when_it_is_fastest)
{
    /* The H200 machine's 10^8 u32 figures: pool 206 ms, device 145 ms with its transfers;
     * the pool's first pass, before it can shed the device's keys, half its sort: a split
     * (100 + 61 ms) cannot beat the device alone. */
    double n = 1e8, rate[] = {n / 206e6, n / 145e6}, cut = n / 100e6;
    unsigned slot = 99;
    cr_expect_eq(hy_hybrid_sort_plan(n, rate, settled, 2, cut, &slot), HY_HYBRID_DEVICE);
    cr_expect_eq(slot, 1, "the device's slot, got %u", slot);
    /* Of two devices, the faster one. */
    double three[] = {n / 206e6, n / 145e6, n / 120e6};
    cr_expect_eq(hy_hybrid_sort_plan(n, three, settled, 3, cut, &slot), HY_HYBRID_DEVICE);
    cr_expect_eq(slot, 2, "the faster device's slot, got %u", slot);
}

Test(hybrid_rule, sort_runs_on_the_pool_alone_when_it_is_fastest)
{
    /* PoCL on the pool's cores: a quarter of the pool's rate, and a first pass measured as
     * long as the whole sort (so the pool's finishing is taken at its whole rate). */
    double n = 1e7, rate[] = {1.0, 0.25}, cut = 1.0;
    unsigned slot = 99;
    cr_expect_eq(hy_hybrid_sort_plan(n, rate, settled, 2, cut, &slot), HY_HYBRID_POOL);
    cr_expect_eq(slot, 0, "the pool's slot, got %u", slot);
}

Test(hybrid_rule, sort_splits_when_the_sides_are_comparable_and_the_pass_is_short)
{
    /* A pass of 0.1 n, then the pool finishing at 1 / 0.9 beside the device at 1: the split
     * takes 0.1 n + n / 2.11 = 0.57 n against n. */
    double n = 1e8, rate[] = {1.0, 1.0}, cut = 10.0;
    unsigned slot = 99;
    cr_expect_eq(hy_hybrid_sort_plan(n, rate, settled, 2, cut, &slot), HY_HYBRID_SPLIT);
    /* A split must win by 5%: two equal sides and a pass of 0.76 n put the split at
     * 0.76 + 0.24 / 1.24 = 0.954 of either alone, not enough; a pass of 0.74 n at 0.946. */
    double equal[] = {1.0, 1.0};
    cr_expect_eq(hy_hybrid_sort_plan(n, equal, settled, 2, 1.0 / 0.76, &slot), HY_HYBRID_POOL);
    cr_expect_eq(hy_hybrid_sort_plan(n, equal, settled, 2, 1.0 / 0.74, &slot), HY_HYBRID_SPLIT);
}

Test(hybrid_rule, sort_splits_on_separate_cores_where_the_pool_sheds_after_its_pass)
{
    /* This machine's separate cores, 10^7 f64: the pool alone 54.5 ms, its first pass
     * ~21 ms, PoCL on the other core 245 ms. Shedding after the pass, the split takes
     * 21 + 1 / (1 / 33.5 + 1 / 245) = 50.5 ms: a gain of 7%. A separate cut pass before two
     * whole sorts would have taken 21 + 44.6 ms and lost. */
    double n = 1e7, rate[] = {n / 54.5e6, n / 245e6}, pass = n / 21e6;
    unsigned slot = 99;
    cr_expect_eq(hy_hybrid_sort_plan(n, rate, settled, 2, pass, &slot), HY_HYBRID_SPLIT);
    cr_expect_float_eq(hy_hybrid_finish_rate(rate[0], pass), n / 33.5e6, 1e-9);
    /* A pass measured no faster than the whole sort leaves the pool's rate as it is. */
    cr_expect_float_eq(hy_hybrid_finish_rate(2.0, 2.0), 2.0, 1e-12);
    cr_expect_float_eq(hy_hybrid_finish_rate(2.0, 1.0), 2.0, 1e-12);
}

Test(hybrid_rule, sort_splits_to_measure_while_any_rate_is_unknown)
{
    double n = 1e8, rate[] = {1.0, 0.0}, known[] = {1.0, 4.0};
    unsigned slot;
    cr_expect_eq(hy_hybrid_sort_plan(n, rate, settled, 2, 1.0, &slot), HY_HYBRID_SPLIT);
    cr_expect_eq(hy_hybrid_sort_plan(n, known, settled, 2, 0.0, &slot), HY_HYBRID_SPLIT);
    cr_expect_eq(hy_hybrid_sort_plan(n, known, settled, 1, 1.0, &slot), HY_HYBRID_POOL,
                 "the pool with no device is the pool alone");
}

Test(hybrid_rule, sort_measures_a_side_alone_once_when_its_split_rate_may_be_a_cold_one)
{
    /* The H200 machine's first f64 split: the pool 50.6M keys in 182 ms, the GPU 49.4M in
     * 180 ms (its first buffers and kernels, beside the pool), after a first pass of ~300
     * ms (the run took 496); it sorts 10^8 alone in 72 ms. */
    double n = 1e8, rate[] = {50.6e6 / 182e6, 49.4e6 / 180e6}, cut = n / 300e6;
    unsigned slot = 99, first[] = {1, 1}, pool_alone[] = {2, 1}, both[] = {2, 2};
    /* The chosen side first: the pool, on its split rate. */
    cr_expect_eq(hy_hybrid_sort_plan(n, rate, first, 2, cut, &slot), HY_HYBRID_POOL);
    /* Then the device, whose only rate is the split's and within 2x of the pool's. */
    cr_expect_eq(hy_hybrid_sort_plan(n, rate, pool_alone, 2, cut, &slot), HY_HYBRID_DEVICE);
    cr_expect_eq(slot, 1);
    /* Measured alone, it stands on its own rate: slower, the pool stays. */
    cr_expect_eq(hy_hybrid_sort_plan(n, rate, both, 2, cut, &slot), HY_HYBRID_POOL);
    /* A side more than 2x slower than the plan chosen is not run to re-measure it. */
    double slow[] = {1.0, 0.4};
    cr_expect_eq(hy_hybrid_sort_plan(n, slow, pool_alone, 2, 1.0, &slot), HY_HYBRID_POOL);
}

/* ---- pi: the chunk rule in a simulated run ---- */

/* A participant in the simulation: its true rate (items per ns) and what each chunk costs
 * besides its items (a launch and a sync, waking the pool). */
typedef struct {
    double prior, truth, cost_ns;
    double busy, free_at;
    uint64_t items, chunks, first;
    bool done;
    hy_hybrid_side in;
} sim_side;

/* Runs n samples across the sides: the side free first takes the next chunk, as the
 * daemon's threads do, and a side given nothing stops. Checks that every sample is handed
 * out exactly once, so that no side stops while samples are left to no one. */
static void simulate(sim_side *s, unsigned nside, uint64_t n)
{
    uint64_t left = n, handed = 0;
    for (unsigned i = 0; i < nside; i++)
        s[i].in = (hy_hybrid_side){.prior = s[i].prior};
    for (unsigned steps = 0; steps < 100000; steps++) {
        unsigned me = nside;
        for (unsigned i = 0; i < nside; i++)
            if (!s[i].done && (me == nside || s[i].free_at < s[me].free_at))
                me = i;
        if (me == nside)
            break;
        hy_hybrid_side in[8];
        for (unsigned i = 0; i < nside; i++)
            in[i] = s[i].in;
        uint64_t c = hy_hybrid_pi_chunk(in, nside, me, left);
        cr_assert_leq(c, left, "side %u took %llu of %llu left", me, (unsigned long long)c,
                      (unsigned long long)left);
        if (c == 0) { /* all handed out, or another side runs the job alone */
            s[me].done = true;
            continue;
        }
        left -= c;
        handed += c;
        double took = s[me].cost_ns + (double)c / s[me].truth;
        s[me].free_at += took;
        s[me].busy += took;
        s[me].items += c;
        s[me].first = s[me].chunks++ ? s[me].first : c;
        s[me].in.rate = (double)s[me].items / s[me].busy;
        s[me].in.last = c;
    }
    cr_assert_eq(handed, n, "handed out %llu of %llu", (unsigned long long)handed,
                 (unsigned long long)n);
}

Test(hybrid_rule, pi_a_dominant_side_runs_the_job_alone)
{
    /* The H200 machine: pi 10^10 on the GPU in 18.9 ms, on 16 cores in 1194 ms; each device
     * chunk pays ~0.5 ms. With the true rate as last measured, 20% faster and 20% slower. */
    const double drift[] = {1.0, 1.2, 0.8};
    for (unsigned d = 0; d < 3; d++) {
        uint64_t n = 10000000000u;
        sim_side s[2] = {{.prior = 1e10 / 1194e6, .truth = 1e10 / 1194e6, .cost_ns = 5e4},
                         {.prior = 1e10 / 18.9e6, .truth = 1e10 / 18.9e6 * drift[d],
                          .cost_ns = 5e5}};
        simulate(s, 2, n);
        cr_expect_eq(s[1].chunks, 1, "drift %.1f: the device took %llu chunks", drift[d],
                     (unsigned long long)s[1].chunks);
        cr_expect_eq(s[0].items, 0, "drift %.1f: the pool did %llu", drift[d],
                     (unsigned long long)s[0].items);
    }
    /* The other way round: a device far slower than the pool is left out. */
    sim_side p[2] = {{.prior = 8.0, .truth = 8.0, .cost_ns = 5e4},
                     {.prior = 0.1, .truth = 0.1, .cost_ns = 5e5}};
    simulate(p, 2, 1000000000);
    cr_expect(p[0].chunks == 1 && p[1].items == 0, "the pool took %llu chunks, the device "
              "%llu samples", (unsigned long long)p[0].chunks, (unsigned long long)p[1].items);
    /* Just under the threshold (a 95% share) both take part. */
    sim_side q[2] = {{.prior = 1.0, .truth = 1.0, .cost_ns = 5e4},
                     {.prior = 19.0, .truth = 19.0, .cost_ns = 5e5}};
    simulate(q, 2, 1000000000);
    cr_expect(q[0].items > 0 && q[1].items > 0, "a 95%% share: the pool did %llu, the "
              "device %llu", (unsigned long long)q[0].items, (unsigned long long)q[1].items);
}

/* Until its rate is known again, a side whose rate is gone (its thread did not start) cannot
 * be dominant: no one leaves the job to it. */
Test(hybrid_rule, pi_a_side_with_no_prior_is_never_dominant)
{
    hy_hybrid_side in[2] = {{.prior = 8.0, .rate = 8.0, .last = 8000000}, {.prior = 0}};
    cr_expect_gt(hy_hybrid_pi_chunk(in, 2, 0, 1000000000), 0);
}

Test(hybrid_rule, pi_comparable_sides_share_in_guided_chunks)
{
    uint64_t n = 1000000000;
    sim_side s[2] = {{.prior = 3.0, .truth = 3.0, .cost_ns = 5e4},
                     {.prior = 2.3, .truth = 2.3, .cost_ns = 1e5}};
    simulate(s, 2, n);
    for (unsigned i = 0; i < 2; i++) {
        double share = s[i].prior / (s[0].prior + s[1].prior);
        cr_expect_geq(s[i].chunks, 3, "side %u took %llu chunks", i,
                      (unsigned long long)s[i].chunks);
        cr_expect_leq((double)s[i].first, share * (double)n / 2 + 1,
                      "side %u's first chunk %llu is over half its share", i,
                      (unsigned long long)s[i].first);
    }
    /* Both end within a floor (1 ms of work) of each other. */
    double gap = s[0].free_at - s[1].free_at;
    cr_expect_leq(gap < 0 ? -gap : gap, 2e6, "the sides ended %.0f ns apart", gap);
}

Test(hybrid_rule, pi_a_side_with_no_rate_starts_small)
{
    uint64_t n = 10000000000u;
    double gpu = 1e10 / 18.9e6, pool = 1e10 / 1194e6;
    /* The pool, never measured, beside a GPU whose rate is known: at most 1 ms of the GPU's
     * work, and no more than the fixed first chunk. */
    hy_hybrid_side in[2] = {{.prior = 0}, {.prior = gpu}};
    uint64_t c = hy_hybrid_pi_chunk(in, 2, 0, n);
    cr_expect_leq(c, UINT64_C(1) << 20, "the unknown pool's first chunk %llu",
                  (unsigned long long)c);
    cr_expect_leq((double)c, gpu * 1e6 + 1);
    /* A slow known side bounds an unknown side's first chunk by its own 1 ms. */
    hy_hybrid_side slow[2] = {{.prior = 0.1}, {.prior = 0}};
    c = hy_hybrid_pi_chunk(slow, 2, 1, n);
    cr_expect_leq((double)c, 0.1 * 1e6 + 1, "the unknown device's first chunk %llu",
                  (unsigned long long)c);
    /* The first hybrid pi: the pool has measured its first chunk, the GPU is still in its
     * first launch. The pool takes its floor, not a share against a guess (it took 770M
     * samples, 107 ms, when the GPU was counted as the pool's equal). */
    hy_hybrid_side first[2] = {{.rate = pool, .last = 1 << 20}, {.last = 1 << 20}};
    c = hy_hybrid_pi_chunk(first, 2, 0, n);
    cr_expect_leq((double)c, pool * 1e6 + 1, "the pool took %llu beside an unmeasured GPU",
                  (unsigned long long)c);
    /* Then the GPU's cold first launch makes the pool look dominant: with no earlier rates,
     * its chunk grows at most twofold. */
    first[1].rate = (double)(1 << 20) / 50e6;
    first[0].last = 8000000;
    c = hy_hybrid_pi_chunk(first, 2, 0, n);
    cr_expect_leq(c, 16000000, "the pool took %llu after a cold GPU chunk",
                  (unsigned long long)c);
}

Test(hybrid_rule, pi_the_pool_alone_takes_the_whole_job_in_one_chunk)
{
    hy_hybrid_side in[1] = {{.prior = 2.0}};
    cr_expect_eq(hy_hybrid_pi_chunk(in, 1, 0, 12345), 12345);
    cr_expect_eq(hy_hybrid_pi_chunk(in, 1, 0, 0), 0);
}
