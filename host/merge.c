/* host: merging sorted runs in the sort's order — the k-way merge a parent runs after its
 * workers each sorted a part, and the cut that lets several workers share one merge.
 *
 * Elements are compared by their keys (internal.h's bijection, the one hy_host_sort orders
 * by), never as floats: one unsigned compare orders NaNs, -0.0 and payloads exactly as the
 * sort does, and equal keys are identical bytes, so no tie rule can change the output.
 *
 * The code is written once for both widths: every hot function takes the element size as a
 * parameter, is forced inline, and is called from a thin wrapper with size 4 or 8, so each
 * wrapper compiles to loops with fixed-width loads and no size test. Keys of 4-byte dtypes
 * are held zero-extended in 64 bits, which keeps their order. */
#include "internal.h"

#include <string.h>

#if defined(__GNUC__)
#define HY_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define HY_ALWAYS_INLINE inline
#endif

/* The dtype's key map at both widths; only the one matching the element size is used. */
struct keymap {
    struct hy_xform_u32 x32;
    struct hy_xform_u64 x64;
};

static HY_ALWAYS_INLINE uint64_t key_at(const char *p, size_t i, unsigned size,
                                        const struct keymap *km)
{
    if (size == 4) {
        uint32_t x;
        memcpy(&x, p + i * 4, 4);
        return hy_to_key_u32(x, &km->x32);
    }
    uint64_t x;
    memcpy(&x, p + i * 8, 8);
    return hy_to_key_u64(x, &km->x64);
}

/* ---- the merge ---- */

static HY_ALWAYS_INLINE uint64_t load_bits(const char *p, size_t i, unsigned size)
{
    if (size == 4) {
        uint32_t x;
        memcpy(&x, p + i * 4, 4);
        return x;
    }
    uint64_t x;
    memcpy(&x, p + i * 8, 8);
    return x;
}

static HY_ALWAYS_INLINE void store_bits(char *p, size_t i, uint64_t x, unsigned size)
{
    if (size == 4) {
        uint32_t y = (uint32_t)x;
        memcpy(p + i * 4, &y, 4);
    } else {
        memcpy(p + i * 8, &x, 8);
    }
}

static HY_ALWAYS_INLINE uint64_t key_of(uint64_t x, unsigned size, const struct keymap *km)
{
    return size == 4 ? hy_to_key_u32((uint32_t)x, &km->x32) : hy_to_key_u64(x, &km->x64);
}

/* x where pick is 0, y where it is 1, by a mask: GCC turns `pick ? y : x` back into a
 * branch in these loops, and a branch mispredicts about every second element of a random
 * interleaving. */
static HY_ALWAYS_INLINE uint64_t select_bits(uint64_t pick, uint64_t x, uint64_t y)
{
    return x ^ ((x ^ y) & (0 - pick));
}

/* Steps of the two-ended loop below which the plain one finishes the merge. */
#define BOTH_ENDS_MIN 32u

/* Two runs into out; it cannot fail. The loops are branch-free but for their exit tests:
 * the heads are loaded and keyed every step and the winner picked by a mask. A branch-free
 * merge is bound by the latency of load, key, compare and index update (about 13 cycles
 * an element here), so while both runs are long the merge runs from both ends at once: the
 * front takes the smallest heads, the back the largest tails, two independent chains in
 * one loop (measured 1.9x faster on 10^7 f64). The front breaks ties to `a`, the back to
 * `b`, so both walk the same stable order from its two ends; s steps of each, with s at
 * most either run's remaining length, cannot cross on sorted runs and never read outside
 * the runs on any. */
static HY_ALWAYS_INLINE void merge2(unsigned size, const struct keymap *km,
                                    const char *restrict a, size_t na, const char *restrict b,
                                    size_t nb, char *restrict out)
{
    /* Pointers rather than indices: the two-ended loop then keeps all its state in
     * registers (with indices GCC spilled one to the stack, on the loop's critical path). */
    const char *pa = a, *pb = b, *ea = a + na * size, *eb = b + nb * size;
    char *lo = out, *hi = out + (na + nb) * size;
    for (;;) {
        size_t ra = (size_t)(ea - pa) / size, rb = (size_t)(eb - pb) / size;
        size_t s = ra < rb ? ra : rb;
        if (s < BOTH_ENDS_MIN)
            break;
        for (char *stop = lo + s * size; lo != stop;) {
            uint64_t va = load_bits(pa, 0, size), vb = load_bits(pb, 0, size);
            uint64_t wa = load_bits(ea - size, 0, size), wb = load_bits(eb - size, 0, size);
            uint64_t front_b = key_of(vb, size, km) < key_of(va, size, km);
            uint64_t back_a = key_of(wb, size, km) < key_of(wa, size, km);
            store_bits(lo, 0, select_bits(front_b, va, vb), size);
            hi -= size;
            store_bits(hi, 0, select_bits(back_a, wb, wa), size);
            lo += size;
            pa += (1 - front_b) * size;
            pb += front_b * size;
            ea -= back_a * size;
            eb -= (1 - back_a) * size;
        }
        /* Ends that crossed mean runs out of order: some elements went out twice. The
         * one-ended loop alone takes every element once whatever the order, so it starts
         * over; reads stayed inside the runs (each end moved at most s). */
        if (pa > ea || pb > eb) {
            pa = a;
            pb = b;
            ea = a + na * size;
            eb = b + nb * size;
            lo = out;
            break;
        }
    }
    while (pa != ea && pb != eb) {
        uint64_t va = load_bits(pa, 0, size), vb = load_bits(pb, 0, size);
        uint64_t take_b = key_of(vb, size, km) < key_of(va, size, km);
        store_bits(lo, 0, select_bits(take_b, va, vb), size);
        lo += size;
        pa += (1 - take_b) * size;
        pb += take_b * size;
    }
    /* One run is used up: what is left of the other is in order already. */
    if (pa != ea)
        memcpy(lo, pa, (size_t)(ea - pa));
    else if (pb != eb)
        memcpy(lo, pb, (size_t)(eb - pb));
}

/* Where output rank h falls in two runs: i elements of a and h - i of b come first, with ties
 * going to a (the order merge2's front loop takes). Binary search over i; on runs that are
 * not sorted it still returns some i in range, and each half is then merged safely. */
static HY_ALWAYS_INLINE size_t corank2(unsigned size, const struct keymap *km, const char *a,
                                       size_t na, const char *b, size_t nb, size_t h)
{
    size_t lo = h > nb ? h - nb : 0, hi = h < na ? h : na;
    while (lo < hi) {
        size_t i = lo + (hi - lo) / 2, j = h - i;
        /* Too few from a while a[i] <= b[j - 1]: a's next element belongs before b's last. */
        if (j > 0 && key_at(a, i, size, km) <= key_at(b, j - 1, size, km))
            lo = i + 1;
        else
            hi = i;
    }
    return lo;
}

/* Output ranks of at least this many split a two-way merge in half, both halves' two-ended
 * loops running in one loop. */
#define SPLIT_MIN 4096u

/* Two runs into out, as merge2, but as two independent halves cut at the middle rank and
 * walked together: four dependency chains instead of two, which the core overlaps (the
 * two-ended loop is latency-bound): 2 x 5e6 f64 into 10^7 measured 29.5 -> 20.6 ms. */
static HY_ALWAYS_INLINE void merge2_split(unsigned size, const struct keymap *km,
                                          const char *restrict a, size_t na,
                                          const char *restrict b, size_t nb, char *restrict out)
{
    size_t n = na + nb;
    if (n < SPLIT_MIN || na < BOTH_ENDS_MIN || nb < BOTH_ENDS_MIN) {
        merge2(size, km, a, na, b, nb, out);
        return;
    }
    size_t h = n / 2, i = corank2(size, km, a, na, b, nb, h), j = h - i;
    /* Half 0: a[0, i) and b[0, j) into out[0, h); half 1: the rest into out[h, n). */
    const char *pa0 = a, *pb0 = b, *ea0 = a + i * size, *eb0 = b + j * size;
    const char *pa1 = ea0, *pb1 = eb0, *ea1 = a + na * size, *eb1 = b + nb * size;
    char *lo0 = out, *hi0 = out + h * size, *lo1 = hi0, *hi1 = out + n * size;
    for (;;) {
        size_t s0a = (size_t)(ea0 - pa0) / size, s0b = (size_t)(eb0 - pb0) / size;
        size_t s1a = (size_t)(ea1 - pa1) / size, s1b = (size_t)(eb1 - pb1) / size;
        size_t s = s0a < s0b ? s0a : s0b;
        s = s1a < s ? s1a : s;
        s = s1b < s ? s1b : s;
        if (s < BOTH_ENDS_MIN || pa0 > ea0 || pb0 > eb0 || pa1 > ea1 || pb1 > eb1)
            break;
        for (size_t k = 0; k < s; k++) {
            uint64_t va0 = load_bits(pa0, 0, size), vb0 = load_bits(pb0, 0, size);
            uint64_t wa0 = load_bits(ea0 - size, 0, size), wb0 = load_bits(eb0 - size, 0, size);
            uint64_t va1 = load_bits(pa1, 0, size), vb1 = load_bits(pb1, 0, size);
            uint64_t wa1 = load_bits(ea1 - size, 0, size), wb1 = load_bits(eb1 - size, 0, size);
            uint64_t f0 = key_of(vb0, size, km) < key_of(va0, size, km);
            uint64_t g0 = key_of(wb0, size, km) < key_of(wa0, size, km);
            uint64_t f1 = key_of(vb1, size, km) < key_of(va1, size, km);
            uint64_t g1 = key_of(wb1, size, km) < key_of(wa1, size, km);
            store_bits(lo0, 0, select_bits(f0, va0, vb0), size);
            store_bits(lo1, 0, select_bits(f1, va1, vb1), size);
            hi0 -= size;
            hi1 -= size;
            store_bits(hi0, 0, select_bits(g0, wb0, wa0), size);
            store_bits(hi1, 0, select_bits(g1, wb1, wa1), size);
            lo0 += size;
            lo1 += size;
            pa0 += (1 - f0) * size;
            pb0 += f0 * size;
            pa1 += (1 - f1) * size;
            pb1 += f1 * size;
            ea0 -= g0 * size;
            eb0 -= (1 - g0) * size;
            ea1 -= g1 * size;
            eb1 -= (1 - g1) * size;
        }
    }
    /* Each half is finished (or, if its ends crossed on runs out of order, redone from its
     * start) by merge2, which writes every element of the half exactly once. */
    if (pa0 > ea0 || pb0 > eb0)
        merge2(size, km, a, i, b, j, out);
    else
        merge2(size, km, pa0, (size_t)(ea0 - pa0) / size, pb0, (size_t)(eb0 - pb0) / size,
               lo0);
    if (pa1 > ea1 || pb1 > eb1)
        merge2(size, km, a + i * size, na - i, b + j * size, nb - j, out + h * size);
    else
        merge2(size, km, pa1, (size_t)(ea1 - pa1) / size, pb1, (size_t)(eb1 - pb1) / size,
               lo1);
}

/* Three or more runs: a loser tree (Knuth's tournament, vol. 3, 5.4.1) over the live runs.
 * Each output element costs one key computation and ceil(log2 m) compares on one
 * leaf-to-root path, in a single pass over memory. Repeated pairwise merging would use the
 * fast two-way loop but make log2(k) passes and need a buffer of the whole output, which
 * this call has no engine to borrow from; k is a worker count, so the tree stays in L1.
 * A used-up run leaves the tree (a rebuild, O(m), at most k times), so no sentinel key is
 * needed, which matters because every key value, all ones included, is a real element. At
 * two live runs the rest goes to the two-way loop. */
struct tree {
    const char *base[HY_HOST_MERGE_MAX_RUNS];
    size_t at[HY_HOST_MERGE_MAX_RUNS], end[HY_HOST_MERGE_MAX_RUNS];
    uint64_t key[HY_HOST_MERGE_MAX_RUNS];      /* key of base[r][at[r]] */
    unsigned loser[HY_HOST_MERGE_MAX_RUNS];    /* [1, m): the loser of each match */
    unsigned m;                                /* live runs, each with at < end */
};

/* Plays every match again from the leaves; returns the overall winner. Leaf r is node m + r
 * and node x's parent is x / 2, which makes a complete tree for any m >= 2. */
static unsigned tree_build(struct tree *t)
{
    unsigned win[2 * HY_HOST_MERGE_MAX_RUNS];
    unsigned m = t->m;
    for (unsigned r = 0; r < m; r++)
        win[m + r] = r;
    for (unsigned x = m - 1; x >= 1; x--) {
        unsigned l = win[2 * x], r = win[2 * x + 1];
        bool rw = t->key[r] < t->key[l];
        win[x] = rw ? r : l;
        t->loser[x] = rw ? l : r;
    }
    return win[1];
}

/* Drops used-up run r, keeping the others in order. */
static void tree_remove(struct tree *t, unsigned r)
{
    for (unsigned i = r + 1; i < t->m; i++) {
        t->base[i - 1] = t->base[i];
        t->at[i - 1] = t->at[i];
        t->end[i - 1] = t->end[i];
        t->key[i - 1] = t->key[i];
    }
    t->m--;
}

/* Merges the tree's runs into out until two are left; returns how many elements it wrote. */
static HY_ALWAYS_INLINE size_t tree_merge(unsigned size, const struct keymap *km, struct tree *t,
                                          char *out)
{
    char *o = out;
    unsigned w = tree_build(t);
    for (;;) {
        memcpy(o, t->base[w] + t->at[w] * size, size);
        o += size;
        if (++t->at[w] == t->end[w]) {
            tree_remove(t, w);
            if (t->m <= 2)
                break;
            w = tree_build(t);
            continue;
        }
        uint64_t kw = t->key[w] = key_at(t->base[w], t->at[w], size, km);
        /* The new head of run w replays w's path; at each node the smaller key goes on. */
        for (unsigned x = (t->m + w) >> 1; x >= 1; x >>= 1) {
            unsigned l = t->loser[x];
            uint64_t kl = t->key[l];
            bool lw = kl < kw;
            t->loser[x] = lw ? w : l;
            w = lw ? l : w;
            kw = lw ? kl : kw;
        }
    }
    return (size_t)(o - out) / size;
}

/* Merges k runs, none empty, into out. */
static HY_ALWAYS_INLINE void merge_live(unsigned size, const struct keymap *km,
                                        const char *const runs[], const size_t lens[],
                                        unsigned k, char *out)
{
    if (k == 1) {
        memcpy(out, runs[0], lens[0] * size);
        return;
    }
    if (k == 2) {
        merge2_split(size, km, runs[0], lens[0], runs[1], lens[1], out);
        return;
    }
    struct tree t;
    t.m = k;
    for (unsigned r = 0; r < k; r++) {
        t.base[r] = runs[r];
        t.at[r] = 0;
        t.end[r] = lens[r];
        t.key[r] = key_at(runs[r], 0, size, km);
    }
    out += tree_merge(size, km, &t, out) * size;
    /* Two runs left (tree_merge stops there), each with at < end. */
    merge2(size, km, t.base[0] + t.at[0] * size, t.end[0] - t.at[0],
           t.base[1] + t.at[1] * size, t.end[1] - t.at[1], out);
}

static void merge_live_4(const struct keymap *km, const char *const runs[], const size_t lens[],
                         unsigned k, char *out)
{
    merge_live(4, km, runs, lens, k, out);
}

static void merge_live_8(const struct keymap *km, const char *const runs[], const size_t lens[],
                         unsigned k, char *out)
{
    merge_live(8, km, runs, lens, k, out);
}

/* ---- the checks both calls take ---- */

/* Checks dtype, k and the runs; sets the element size, the key map and the total length. */
static int check_runs(int dtype, const void *const runs[], const size_t lens[], unsigned k,
                      size_t *size, struct keymap *km, size_t *total, hy_error *err)
{
    *size = hy_dtype_size(dtype);
    if (*size == 0)
        return hy_error_set(err, HY_EDTYPE, "dtype %d is not one hybridd can merge", dtype);
    if (k < 1 || k > HY_HOST_MERGE_MAX_RUNS)
        return hy_error_set(err, HY_EINVAL, "a merge takes 1 to %d runs, not %u",
                            HY_HOST_MERGE_MAX_RUNS, k);
    if (!runs || !lens)
        return hy_error_set(err, HY_EINVAL, "no runs or no run lengths given");
    size_t sum = 0;
    for (unsigned i = 0; i < k; i++) {
        if (lens[i] > 0 && !runs[i])
            return hy_error_set(err, HY_EINVAL, "run %u has %zu elements but no array", i,
                                lens[i]);
        /* The byte count of the whole output must fit too, or out's size would wrap. */
        if (lens[i] > SIZE_MAX / *size - sum)
            return hy_error_set(err, HY_EINVAL, "the runs' lengths add up to more bytes "
                                "than an address space holds");
        sum += lens[i];
    }
    struct hy_key_spec spec = hy_key_spec_of(dtype);
    km->x32 = hy_xform_u32_of(spec);
    km->x64 = hy_xform_u64_of(spec);
    *total = sum;
    return 0;
}

int hy_host_merge(int dtype, const void *const runs[], const size_t lens[], unsigned k,
                  void *out, hy_error *err)
{
    size_t size, total;
    struct keymap km;
    int rc = check_runs(dtype, runs, lens, k, &size, &km, &total, err);
    if (rc)
        return rc;
    if (total == 0)
        return 0;
    if (!out)
        return hy_error_set(err, HY_EINVAL, "no output array for %zu merged elements", total);
    /* A merge reads each run while it writes out: an overlap would overwrite elements not yet
     * read. Compared as integers, since the arrays are separate objects to C. */
    uintptr_t o0 = (uintptr_t)out, o1 = o0 + total * size;
    const char *live[HY_HOST_MERGE_MAX_RUNS];
    size_t live_len[HY_HOST_MERGE_MAX_RUNS];
    unsigned m = 0;
    for (unsigned i = 0; i < k; i++) {
        if (lens[i] == 0)
            continue;
        uintptr_t r0 = (uintptr_t)runs[i], r1 = r0 + lens[i] * size;
        if (r0 < o1 && o0 < r1)
            return hy_error_set(err, HY_EINVAL, "the output array overlaps run %u", i);
        live[m] = runs[i];
        live_len[m++] = lens[i];
    }
    if (size == 4)
        merge_live_4(&km, live, live_len, m, out);
    else
        merge_live_8(&km, live, live_len, m, out);
    return 0;
}

/* ---- the cut ---- */

/* How many of the run's n elements have keys <= v: the run is sorted, so a binary search. */
static HY_ALWAYS_INLINE size_t count_le(unsigned size, const struct keymap *km, const char *p,
                                        size_t n, uint64_t v)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (key_at(p, mid, size, km) <= v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int cut_at(unsigned size, const struct keymap *km, const char *const runs[],
                  const size_t lens[], unsigned k, size_t rank, size_t cut[], hy_error *err)
{
    /* The smallest key v with at least `rank` elements <= v, by bisecting the key space:
     * count(<= v) is monotone in v, and it is total at the largest key. */
    uint64_t lo = 0, hi = size == 4 ? UINT32_MAX : UINT64_MAX;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        size_t c = 0;
        for (unsigned i = 0; i < k && c < rank; i++)
            c += count_le(size, km, runs[i], lens[i], mid);
        if (c >= rank)
            hi = mid;
        else
            lo = mid + 1;
    }
    uint64_t v = lo;
    /* Everything below v comes first; `need` more are taken from the elements equal to v,
     * from the lower-numbered runs first. Runs out of order can break the counts' sums;
     * that is reported rather than handed on as a cut that tiles nothing. */
    size_t below = 0, upto = 0, le[HY_HOST_MERGE_MAX_RUNS];
    for (unsigned i = 0; i < k; i++) {
        le[i] = count_le(size, km, runs[i], lens[i], v);
        size_t lt = v == 0 ? 0 : count_le(size, km, runs[i], lens[i], v - 1);
        if (lt > le[i])
            goto unsorted;
        cut[i] = lt;
        below += lt;
        upto += le[i];
    }
    if (below > rank || upto < rank)
        goto unsorted;
    size_t need = rank - below;
    for (unsigned i = 0; i < k && need > 0; i++) {
        size_t eq = le[i] - cut[i];
        size_t take = eq < need ? eq : need;
        cut[i] += take;
        need -= take;
    }
    return 0;
unsorted:
    return hy_error_set(err, HY_EINVAL, "the runs are not each in the engine's sort order, "
                        "so no cut at rank %zu exists", rank);
}

int hy_host_merge_cut(int dtype, const void *const runs[], const size_t lens[], unsigned k,
                      size_t rank, size_t cut[], hy_error *err)
{
    size_t size, total;
    struct keymap km;
    int rc = check_runs(dtype, runs, lens, k, &size, &km, &total, err);
    if (rc)
        return rc;
    if (!cut)
        return hy_error_set(err, HY_EINVAL, "no array for the cut given");
    if (rank > total)
        return hy_error_set(err, HY_EINVAL, "rank %zu is past the runs' %zu elements", rank,
                            total);
    /* The two ends need no search, and taking whole runs there is what any search would. */
    if (rank == 0 || rank == total) {
        for (unsigned i = 0; i < k; i++)
            cut[i] = rank == 0 ? 0 : lens[i];
        return 0;
    }
    const char *r[HY_HOST_MERGE_MAX_RUNS];
    for (unsigned i = 0; i < k; i++)
        r[i] = runs[i];
    return size == 4 ? cut_at(4, &km, r, lens, k, rank, cut, err)
                     : cut_at(8, &km, r, lens, k, rank, cut, err);
}
