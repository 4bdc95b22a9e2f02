/* cl: the pi job — runs kernels/pi.cl over samples 0 .. n-1 as a series of short launches
 * sized from the device's measured speed, sums the per-work-group partials on the host. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* kernels/pi.cl's reduction scratch: no work-group may be larger. */
#define PI_WG_MAX 256u
/* Partials per launch (one ulong per work-group): a launch that would need more gives each
 * work-item more blocks instead, so the buffer and the readback stay small. */
#define MAX_GROUPS 8192u
/* Largest job: n travels as a signed 64-bit count, and the sample stream ends at 2^63. */
#define PI_MAX_SAMPLES (UINT64_MAX >> 1)

/* Launch sizing: the first launch is small enough to be short on any device (a few ms even
 * on a slow CPU device, and the first launch on PoCL may also pay for compiling the
 * work-group function); later ones aim at TARGET_NS of kernel time from the rate measured on
 * the previous launch, growing at most GROWTH-fold per launch so one noisy measurement
 * cannot make a launch run for seconds. ~50 ms keeps progress and cancellation prompt while
 * the host's turnaround between launches stays well under 1% of device time. */
#define FIRST_SAMPLES (UINT64_C(1) << 22)
#define TARGET_NS UINT64_C(50000000)
#define GROWTH 8u

/* Work-item shapes for the kernel's two variants (see kernels/pi.cl). CPU: a work-item's
 * blocks must be a multiple of the kernel's vector step (PI_VW * PI_G = 32 blocks) so that
 * only the launch's last work-item runs the scalar tail; 1024 blocks and groups of 16 keep
 * PoCL's per-work-group cost negligible while a launch still has dozens of groups for the
 * threads to share (1024/16 measured within noise of 256..4096 and 4..64). GPU: a few blocks
 * per work-item and full groups; the parallelism comes from the work-items. */
#define CPU_BPI_MIN 1024u
#define CPU_LOCAL 16u
#define GPU_BPI_MIN 16u
#define GPU_LOCAL 256u
_Static_assert(CPU_LOCAL <= PI_WG_MAX && GPU_LOCAL <= PI_WG_MAX, "groups beyond the scratch");

struct pi_shape {
    size_t local;     /* work-group size */
    uint64_t bpi_min; /* blocks per work-item at least, and a multiple of it */
};

/* Launch geometry for samples [first, first + count): blocks per work-item and global size. */
static void pi_geometry(const struct pi_shape *s, uint64_t first, uint64_t count, uint64_t *bpi,
                        size_t *global)
{
    uint64_t nb = ((first + count + 1) >> 1) - (first >> 1);
    uint64_t per_group_max = (uint64_t)MAX_GROUPS * s->local;
    uint64_t b = (nb + per_group_max - 1) / per_group_max;
    b = (b + s->bpi_min - 1) / s->bpi_min * s->bpi_min;
    if (b < s->bpi_min)
        b = s->bpi_min;
    uint64_t items = (nb + b - 1) / b;
    uint64_t groups = (items + s->local - 1) / s->local; /* <= MAX_GROUPS by the choice of b */
    *bpi = b;
    *global = (size_t)(groups * s->local);
}

/* Samples for the next launch: the measured rate times TARGET_NS, within GROWTH of the last
 * launch, even (so every launch starts on a block boundary), and no more than what is left. */
static uint64_t next_chunk(uint64_t last, uint64_t last_ns, uint64_t left)
{
    /* In double: last * GROWTH may not fit in 64 bits near the top of the range. */
    double want = (double)last * GROWTH;
    if (last_ns > 0) {
        double w = (double)last * (double)TARGET_NS / (double)last_ns;
        if (w < want)
            want = w;
    }
    if (want < (double)(FIRST_SAMPLES / 4)) /* a floor: one stalled launch must not starve us */
        want = (double)(FIRST_SAMPLES / 4);
    if (want >= (double)left)
        return left;
    uint64_t c = (uint64_t)want;
    c += c & 1;
    return c < left ? c : left;
}

static void pi_fill(hy_cl_pi_result *r, uint64_t samples, uint64_t hits)
{
    r->samples = samples;
    r->hits = hits;
    if (samples == 0) {
        r->estimate = 0.0;
        r->std_error = 0.0;
        return;
    }
    double p = (double)hits / (double)samples;
    r->estimate = 4.0 * p;
    r->std_error = 4.0 * sqrt(p * (1.0 - p) / (double)samples);
}

/* The job's kernel with its fixed arguments (the seed, the partials buffer), the work-group
 * shape of the variant the program was built as (capped at the kernel's limit), and the
 * partials on both sides. What it made is the caller's to release, also on failure. */
static int pi_setup(struct hy_cl_dev *d, uint64_t seed, cl_kernel *k, struct pi_shape *shape,
                    cl_mem *part, uint64_t **host_part, hy_error *err)
{
    cl_int st;
    int rc;
    if ((rc = hy_cl_kernel(d, HY_CL_PROG_PI, "pi_hits", k, err)))
        return rc;
    const bool cpu = d->cpu_variant;
    *shape = (struct pi_shape){cpu ? CPU_LOCAL : GPU_LOCAL, cpu ? CPU_BPI_MIN : GPU_BPI_MIN};
    size_t kmax = 0;
    if ((rc = CL_TRY(clGetKernelWorkGroupInfo(*k, d->id, CL_KERNEL_WORK_GROUP_SIZE, sizeof kmax,
                                              &kmax, NULL),
                     err)))
        return rc;
    if (kmax > 0 && shape->local > kmax)
        shape->local = kmax;

    *part = clCreateBuffer(d->ctx, CL_MEM_WRITE_ONLY, MAX_GROUPS * sizeof(cl_ulong), NULL, &st);
    if ((rc = hy_cl_fail(st, "clCreateBuffer", err)))
        return rc;
    *host_part = malloc(MAX_GROUPS * sizeof **host_part);
    if (!*host_part)
        return hy_error_set(err, HY_ENOMEM, "no memory for %u pi partial sums", MAX_GROUPS);
    cl_ulong aseed = seed;
    if ((rc = CL_TRY(clSetKernelArg(*k, 0, sizeof aseed, &aseed), err)) ||
        (rc = CL_TRY(clSetKernelArg(*k, 4, sizeof *part, part), err)))
        return rc;
    return 0;
}

/* One launch over samples first .. first + count - 1, waited for: adds its hits to *hits and
 * its times to r->timing; *l0 is when it was enqueued and *kns its kernel time (0 without
 * profiling). */
static int pi_launch(struct hy_cl_dev *d, cl_kernel k, cl_mem part, uint64_t *host_part,
                     const struct pi_shape *shape, uint64_t first, uint64_t count,
                     hy_cl_pi_result *r, uint64_t *hits, uint64_t *l0, uint64_t *kns,
                     hy_error *err)
{
    cl_event kev = NULL, rev = NULL;
    uint64_t bpi;
    size_t global, local = shape->local;
    int rc;
    pi_geometry(shape, first, count, &bpi, &global);
    cl_ulong afirst = first, acount = count, abpi = bpi;
    if ((rc = CL_TRY(clSetKernelArg(k, 1, sizeof afirst, &afirst), err)) ||
        (rc = CL_TRY(clSetKernelArg(k, 2, sizeof acount, &acount), err)) ||
        (rc = CL_TRY(clSetKernelArg(k, 3, sizeof abpi, &abpi), err)))
        return rc;
    *l0 = hy_now_ns();
    if ((rc = CL_TRY(clEnqueueNDRangeKernel(d->queue, k, 1, NULL, &global, &local, 0, NULL,
                                            &kev),
                     err)))
        goto out;
    size_t groups = global / local;
    if ((rc = CL_TRY(clEnqueueReadBuffer(d->queue, part, CL_TRUE, 0, groups * sizeof(cl_ulong),
                                         host_part, 0, NULL, &rev),
                     err)))
        goto out;
    *kns = hy_cl_event_ns(kev);
    r->timing.kernel_ns += *kns;
    r->timing.d2h_ns += hy_cl_event_ns(rev);
    r->timing.launches++;
    r->timing.bytes_moved += groups * sizeof(cl_ulong);
    for (size_t g = 0; g < groups; g++)
        *hits += host_part[g];
out:
    if (kev)
        clReleaseEvent(kev);
    if (rev)
        clReleaseEvent(rev);
    return rc;
}

int hy_cl_pi_job(hy_cl *cl, const hy_cl_opts *o, uint64_t seed, uint64_t n,
                 hy_cl_pi_result *r, hy_error *err)
{
    int rc = 0;
    struct hy_cl_dev *d;
    cl_kernel k = NULL;
    cl_mem part = NULL;
    uint64_t *host_part = NULL;
    uint64_t done = 0, hits = 0;

    if (!cl || !o || !r)
        return hy_error_set(err, HY_EINVAL, "hy_cl_pi needs OpenCL state, options and a result");
    memset(r, 0, sizeof *r);
    if (n == 0)
        return hy_error_set(err, HY_EINVAL, "a pi job needs at least 1 sample");
    if (n > PI_MAX_SAMPLES || o->first > PI_MAX_SAMPLES - n)
        return hy_error_set(err, HY_ELIMIT,
                            "a pi job counts samples below 2^63 - 1, not %llu from %llu",
                            (unsigned long long)n, (unsigned long long)o->first);
    if ((rc = hy_cl_device(cl, o->device, &d, err)))
        return rc;

    const uint64_t t0 = hy_now_ns();
    struct pi_shape shape;
    if ((rc = pi_setup(d, seed, &k, &shape, &part, &host_part, err)))
        goto out;

    uint64_t chunk = FIRST_SAMPLES < n ? FIRST_SAMPLES : n;
    while (done < n) {
        uint64_t l0 = 0, kns = 0;
        if ((rc = pi_launch(d, k, part, host_part, &shape, o->first + done, chunk, r, &hits,
                            &l0, &kns, err)))
            goto out;
        done += chunk;
        if (done < n) {
            if (o->progress && o->progress(o->progress_ctx, done, n) != 0) {
                rc = hy_error_set(err, HY_ECANCELED,
                                  "pi job cancelled after %llu of %llu samples",
                                  (unsigned long long)done, (unsigned long long)n);
                goto out;
            }
            /* Without profiling times, the launch's wall time (an overestimate) sizes the next. */
            chunk = next_chunk(chunk, kns ? kns : hy_now_ns() - l0, n - done);
        }
    }

out:
    /* A cancelled job reports what it counted; a failed one too, for what that is worth. */
    pi_fill(r, done, hits);
    free(host_part);
    if (part)
        clReleaseMemObject(part);
    if (k)
        clReleaseKernel(k);
    r->timing.wall_ns = hy_now_ns() - t0;
    return rc;
}
