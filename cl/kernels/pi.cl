/* cl: the Monte Carlo pi kernel - Philox4x32-10 and the exact integer inside test of
 * docs/pi-mapping.md (normative), so every device counts the CPU engine's hits bit for bit.
 *
 * One launch counts samples [first, first + count) (first + count <= 2^63). Work-item g
 * takes the whole blocks [b0 + g*bpi, b0 + (g+1)*bpi) of the launch's block range; work-item
 * 0 also takes back the half blocks that the range's ragged ends do not own. Each work-group
 * sums its work-items' hits in local memory and writes one ulong to partials[group]; the
 * host sums those. Any local size up to PI_WG_MAX works, power of two or not.
 *
 * Two variants, chosen by the build option HY_CL_CPU (never by the device's name):
 *  - HY_CL_CPU=1, CPU devices (PoCL): explicit vectors, one block per 64-bit lane, several
 *    independent vectors per step. PoCL's work-item-loop vectoriser does not turn the scalar
 *    form into SIMD, and its mul_hi is far slower than a 64-bit product (FACTS.md).
 *  - HY_CL_CPU=0, GPUs: one block at a time per work-item with mul_hi, the native idiom;
 *    the GPU's parallelism comes from the work-items. */

#ifndef HY_CL_CPU
#define HY_CL_CPU 0
#endif

/* The largest work-group the host may launch: the size of the reduction's scratch. */
#define PI_WG_MAX 256

/* Random123's Philox4x32 constants (Salmon et al., SC'11). */
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

/* One scalar block. The CPU variant takes hi/lo from one 64-bit product; a GPU uses mul_hi.
 * Both give the same bits. */
static uint4 philox_block(ulong seed, ulong b)
{
    uint c0 = (uint)b, c1 = (uint)(b >> 32), c2 = 0, c3 = 0;
    uint k0 = (uint)seed, k1 = (uint)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        /* The key is bumped between rounds, never before the first. */
        if (r > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
#if HY_CL_CPU
        ulong p0 = (ulong)PHILOX_M0 * c0, p1 = (ulong)PHILOX_M1 * c2;
        uint hi0 = (uint)(p0 >> 32), lo0 = (uint)p0, hi1 = (uint)(p1 >> 32), lo1 = (uint)p1;
#else
        uint hi0 = mul_hi(PHILOX_M0, c0), lo0 = PHILOX_M0 * c0;
        uint hi1 = mul_hi(PHILOX_M1, c2), lo1 = PHILOX_M1 * c2;
#endif
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    return (uint4)(c0, c1, c2, c3);
}

/* Exact: x, y < 2^31, so x*x + y*y < 2^63 never overflows; no floating point anywhere. */
static uint inside(uint wx, uint wy)
{
    ulong x = wx >> 1, y = wy >> 1;
    return x * x + y * y < ((ulong)1 << 62);
}

static ulong block_hits(ulong seed, ulong b)
{
    uint4 r = philox_block(seed, b);
    return inside(r.s0, r.s1) + inside(r.s2, r.s3);
}

#if HY_CL_CPU
/* ---- CPU: PI_VW blocks per vector (one per 64-bit lane), PI_G vectors per step. ----
 * Each Philox word sits in its lane's low half. A 64-bit multiply of two values masked to
 * 32 bits compiles to one vpmuludq, which reads only the low halves - so the high halves may
 * carry garbage between rounds: the whole product serves as "lo", and only "hi" costs a
 * shift. A round is then 2 multiplies, 2 shifts and 2 three-way xors per vector. */
/* 8 lanes x 4 vectors measured best on PoCL 3.1 (2 vCPU AVX-512 Xeon, 2^32 samples):
 * 2.6e9 samples/s; 2 vectors 2.2e9, 6 or 8 vectors 2.4-2.5e9, ulong16 x 2..4 2.3-2.6e9. The
 * host keeps blocks per work-item a multiple of PI_VW * PI_G (cl/pi.c) so that only the
 * launch's last work-item runs the scalar tail; any value is still exact. */
#ifndef PI_VW
#define PI_VW 8
#endif
#ifndef PI_G
#define PI_G 4
#endif
#if PI_VW == 8
typedef ulong8 vlong;
typedef long8 vmask;
#define LANE_IDS ((vlong)(0, 1, 2, 3, 4, 5, 6, 7))
#elif PI_VW == 16
typedef ulong16 vlong;
typedef long16 vmask;
#define LANE_IDS ((vlong)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
#else
#error "PI_VW must be 8 or 16"
#endif
#define PI_STEP (PI_VW * PI_G)
#define LO32 0xffffffffUL

/* Samples OUTSIDE the circle among the PI_STEP blocks [b, b + PI_STEP), per lane. The
 * counter's high word is taken per lane, so a step may straddle a 2^32-block boundary. */
static vlong step_outside(ulong b, uint k0, uint k1)
{
    vlong c0[PI_G], c1[PI_G], c2[PI_G], c3[PI_G];
    /* Round 1: words 2 and 3 of the counter are zero, so M1 * c2 = 0 and c1 becomes 0. */
#pragma unroll
    for (int g = 0; g < PI_G; g++) {
        vlong ctr = (vlong)(b + (ulong)(g * PI_VW)) + LANE_IDS;
        vlong p0 = (ctr & LO32) * (ulong)PHILOX_M0;
        c0[g] = (ctr >> 32) ^ (ulong)k0;
        c1[g] = 0;
        c2[g] = (p0 >> 32) ^ (ulong)k1;
        c3[g] = p0;
    }
#pragma unroll
    for (int r = 1; r < 10; r++) {
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
#pragma unroll
        for (int g = 0; g < PI_G; g++) {
            vlong p0 = (c0[g] & LO32) * (ulong)PHILOX_M0;
            vlong p1 = (c2[g] & LO32) * (ulong)PHILOX_M1;
            c0[g] = (p1 >> 32) ^ c1[g] ^ (ulong)k0;
            c1[g] = p1;
            c2[g] = (p0 >> 32) ^ c3[g] ^ (ulong)k1;
            c3[g] = p0;
        }
    }
    /* x*x + y*y < 2^63, so (x*x + y*y) >> 62 is 1 exactly for a sample outside. */
    vlong out = 0;
#pragma unroll
    for (int g = 0; g < PI_G; g++) {
        vlong x0 = (c0[g] & LO32) >> 1, y0 = (c1[g] & LO32) >> 1;
        vlong x1 = (c2[g] & LO32) >> 1, y1 = (c3[g] & LO32) >> 1;
        out += (x0 * x0 + y0 * y0) >> 62;
        out += (x1 * x1 + y1 * y1) >> 62;
    }
    return out;
}

/* Hits among the whole blocks [b, end). */
static ulong range_hits(ulong seed, ulong b, ulong end)
{
    const ulong start = b;
    vlong acc = 0;
    for (; end - b >= PI_STEP; b += PI_STEP)
        acc += step_outside(b, (uint)seed, (uint)(seed >> 32));
#if PI_VW == 16
    ulong8 a8 = acc.lo + acc.hi;
#else
    ulong8 a8 = acc;
#endif
    ulong4 a4 = a8.lo + a8.hi;
    ulong2 a2 = a4.lo + a4.hi;
    ulong hits = 2 * (b - start) - (a2.s0 + a2.s1);
    /* Fewer blocks than a step: only the launch's last work-item gets here with any. */
    for (; b < end; b++)
        hits += block_hits(seed, b);
    return hits;
}

#else /* GPU */

/* One block with the ten round keys made beforehand: a work-item runs many blocks under one
 * seed, and a compiler that does not hoist the key schedule out of the block loop (amdgcn
 * did not, for philox_block) would redo 18 additions per block. The rounds are unrolled so
 * every key is a register and the first round's zero words fold away. */
static uint4 philox_keyed(const uint *k0, const uint *k1, ulong b)
{
    uint c0 = (uint)b, c1 = (uint)(b >> 32), c2 = 0, c3 = 0;
#pragma unroll
    for (int r = 0; r < 10; r++) {
        uint hi0 = mul_hi(PHILOX_M0, c0), lo0 = PHILOX_M0 * c0;
        uint hi1 = mul_hi(PHILOX_M1, c2), lo1 = PHILOX_M1 * c2;
        c0 = hi1 ^ c1 ^ k0[r];
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1[r];
        c3 = lo0;
    }
    return (uint4)(c0, c1, c2, c3);
}

static ulong range_hits(ulong seed, ulong b, ulong end)
{
    uint k0[10], k1[10];
    k0[0] = (uint)seed;
    k1[0] = (uint)(seed >> 32);
#pragma unroll
    for (int r = 1; r < 10; r++) {
        k0[r] = k0[r - 1] + PHILOX_W0;
        k1[r] = k1[r - 1] + PHILOX_W1;
    }
    ulong hits = 0;
    for (; b < end; b++) {
        uint4 x = philox_keyed(k0, k1, b);
        hits += inside(x.s0, x.s1) + inside(x.s2, x.s3);
    }
    return hits;
}

#endif

__kernel void pi_hits(ulong seed, ulong first, ulong count, ulong bpi,
                      __global ulong *partials)
{
    __local ulong scratch[PI_WG_MAX];
    const uint lid = get_local_id(0), lsz = get_local_size(0);
    const ulong gid = get_global_id(0);
    /* Blocks [b0, b1) hold every sample of the range; first + count <= 2^63, no overflow. */
    const ulong end = first + count;
    const ulong b0 = first >> 1, b1 = (end + 1) >> 1;

    ulong hits = 0;
    if (gid < (b1 - b0 + bpi - 1) / bpi) {
        ulong b = b0 + gid * bpi;
        ulong e = b1 - b > bpi ? b + bpi : b1;
        hits = range_hits(seed, b, e);
    }
    /* Whole blocks counted a sample outside the range at each odd end: take it back. */
    if (gid == 0) {
        if (first & 1) {
            uint4 r = philox_block(seed, b0);
            hits -= inside(r.s0, r.s1);
        }
        if (end & 1) {
            uint4 r = philox_block(seed, b1 - 1);
            hits -= inside(r.s2, r.s3);
        }
    }

    scratch[lid] = hits;
    barrier(CLK_LOCAL_MEM_FENCE);
    /* Pairwise sums at strides 1, 2, 4, ...: correct for any group size. */
    for (uint s = 1; s < lsz; s <<= 1) {
        if ((lid & (2 * s - 1)) == 0 && lid + s < lsz)
            scratch[lid] += scratch[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0)
        partials[get_group_id(0)] = scratch[0];
}
