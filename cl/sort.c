/* cl: the sort job - uploads the array, runs kernels/sort.cl's LSD radix passes (skipping
 * digits that every key shares), and downloads the result into the caller's array, which
 * is written only at the very end (so a cancelled or failed job leaves it untouched). */
#include "internal.h"
#include "sortkey.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Mirrors of kernels/sort.cl's constants for its two variants (HY_CL_CPU 1 and 0). */
#define CPU_BITS 11u
#define CPU_LOCAL 1u
#define GPU_BITS 4u
#define GPU_LOCAL 128u
#define GPU_TILE (GPU_LOCAL * 16u)

/* CPU variant: a block is one work-item's serial run. Several blocks per compute unit
 * balance the load; blocks much larger than this only make the launches coarser. */
#define CPU_BLOCKS_PER_CU 4u
#define CPU_BLOCK_MIN (1u << 14)
#define CPU_BLOCK_MAX (1u << 20)
/* Elements one launch covers. Progress and cancellation come between launches, so this
 * bounds a launch to about 10 ms on a two-core CPU device; a GPU moves that many in well
 * under a millisecond, so it takes larger launches and fewer waits. */
#define CPU_LAUNCH_ELEMS (1u << 22)
#define GPU_LAUNCH_ELEMS (1u << 26)
/* Events between two waits: a pass enqueues at most a count, a scan and a scatter launch
 * plus a copy before it waits. */
#define MAX_PENDING 8

enum ev_kind { EV_KERNEL, EV_H2D, EV_D2H };

struct job {
    struct hy_cl_dev *d;
    hy_error *err;
    size_t size;                /* bytes per element: 4 or 8 */
    cl_uint n, bsize, nblocks;  /* elements, elements per block, blocks */
    unsigned bits, local;       /* the variant's digit width and work-group size */
    cl_uint blocks_per_launch;
    cl_ulong pos, negx, rot;    /* the key map (kernels/sort.cl's SORT_KEY) */
    cl_kernel count, scan, scatter;
    cl_mem buf[2], hist, andor;
    cl_event pending[MAX_PENDING];
    enum ev_kind kinds[MAX_PENDING];
    unsigned npending;
    hy_cl_timing *t;
    const hy_cl_opts *o;
    uint64_t done, total;       /* progress, in elements moved or counted */
};

/* The key map's arguments: common/sortkey.h's map of the dtype, as SORT_KEY takes it. */
static void key_map(int dtype, struct job *j)
{
    struct hy_key_spec s = hy_key_spec_of(dtype);
    j->pos = s.pos;
    j->negx = s.neg ^ s.pos;
    j->rot = s.rot;
}

/* Remembers an enqueued command's event so its time is counted once it has finished. */
static void track(struct job *j, cl_event ev, enum ev_kind kind)
{
    j->kinds[j->npending] = kind;
    j->pending[j->npending++] = ev;
}

/* Waits for everything enqueued, adds the finished commands' times, and reports progress;
 * a non-zero answer from the callback cancels the job. */
static int settle(struct job *j, uint64_t add)
{
    int rc = CL_TRY(clFinish(j->d->queue), j->err);
    for (unsigned i = 0; i < j->npending; i++) {
        uint64_t ns = rc ? 0 : hy_cl_event_ns(j->pending[i]);
        if (j->kinds[i] == EV_KERNEL)
            j->t->kernel_ns += ns;
        else if (j->kinds[i] == EV_H2D)
            j->t->h2d_ns += ns;
        else
            j->t->d2h_ns += ns;
        clReleaseEvent(j->pending[i]);
    }
    j->npending = 0;
    if (rc)
        return rc;
    j->done += add;
    if (j->o->progress && j->o->progress(j->o->progress_ctx, j->done, j->total))
        return hy_error_set(j->err, HY_ECANCELED, "the job was cancelled");
    return 0;
}

/* A scalar argument in the key's width. */
static int set_key_arg(struct job *j, cl_kernel k, cl_uint idx, cl_ulong v)
{
    if (j->size == 4) {
        cl_uint v32 = (cl_uint)v;
        return CL_TRY(clSetKernelArg(k, idx, sizeof v32, &v32), j->err);
    }
    return CL_TRY(clSetKernelArg(k, idx, sizeof v, &v), j->err);
}

/* The arguments count and scatter share (kernels/sort.cl lists them). */
static int set_common_args(struct job *j, cl_kernel k, cl_mem src, cl_uint shift)
{
    int rc;
    if ((rc = CL_TRY(clSetKernelArg(k, 0, sizeof src, &src), j->err)) ||
        (rc = CL_TRY(clSetKernelArg(k, 1, sizeof j->n, &j->n), j->err)) ||
        (rc = CL_TRY(clSetKernelArg(k, 2, sizeof j->bsize, &j->bsize), j->err)) ||
        (rc = CL_TRY(clSetKernelArg(k, 4, sizeof j->nblocks, &j->nblocks), j->err)) ||
        (rc = CL_TRY(clSetKernelArg(k, 5, sizeof shift, &shift), j->err)) ||
        (rc = set_key_arg(j, k, 6, j->pos)) || (rc = set_key_arg(j, k, 7, j->negx)) ||
        (rc = set_key_arg(j, k, 8, j->rot)))
        return rc;
    return 0;
}

/* Runs kernel k over every block, blocks_per_launch blocks at a time,
 * settling (and so reporting progress) after each launch. `weight` says whether the
 * launch's elements count as progress. */
static int over_blocks(struct job *j, cl_kernel k, int weight)
{
    for (cl_uint b0 = 0; b0 < j->nblocks; b0 += j->blocks_per_launch) {
        cl_uint nb = j->nblocks - b0 < j->blocks_per_launch ? j->nblocks - b0
                                                            : j->blocks_per_launch;
        size_t global = (size_t)nb * j->local, local = j->local;
        cl_event ev = NULL;
        int rc;
        if ((rc = CL_TRY(clSetKernelArg(k, 3, sizeof b0, &b0), j->err)) ||
            (rc = CL_TRY(clEnqueueNDRangeKernel(j->d->queue, k, 1, NULL, &global, &local, 0,
                                                NULL, &ev),
                         j->err)))
            return rc;
        track(j, ev, EV_KERNEL);
        j->t->launches++;
        uint64_t lo = (uint64_t)b0 * j->bsize;
        uint64_t hi = (uint64_t)(b0 + nb) * j->bsize;
        if (hi > j->n)
            hi = j->n;
        if ((rc = settle(j, weight ? hi - lo : 0)))
            return rc;
    }
    return 0;
}

/* Counts the digit at `shift` in buf[from], per block; with `reduce`, also each block's
 * AND and OR of keys. */
static int count_pass(struct job *j, int from, cl_uint shift, int reduce)
{
    int rc;
    if ((rc = set_common_args(j, j->count, j->buf[from], shift)) ||
        (rc = CL_TRY(clSetKernelArg(j->count, 9, sizeof j->hist, &j->hist), j->err)) ||
        (rc = CL_TRY(clSetKernelArg(j->count, 10, sizeof j->andor, &j->andor), j->err)) ||
        (rc = CL_TRY(clSetKernelArg(j->count, 11, sizeof reduce, &reduce), j->err)))
        return rc;
    return over_blocks(j, j->count, reduce);
}

/* Scans the histogram table, then moves buf[from] into buf[1 - from] by the digit. */
static int move_pass(struct job *j, int from, cl_uint shift)
{
    int rc;
    cl_uint m = j->nblocks << j->bits;
    size_t one = j->local;
    cl_event ev = NULL;
    if ((rc = CL_TRY(clSetKernelArg(j->scan, 0, sizeof j->hist, &j->hist), j->err)) ||
        (rc = CL_TRY(clSetKernelArg(j->scan, 1, sizeof m, &m), j->err)) ||
        (rc = CL_TRY(clEnqueueNDRangeKernel(j->d->queue, j->scan, 1, NULL, &one, &one, 0, NULL,
                                            &ev),
                     j->err)))
        return rc;
    track(j, ev, EV_KERNEL);
    j->t->launches++;
    if ((rc = set_common_args(j, j->scatter, j->buf[from], shift)) ||
        (rc = CL_TRY(clSetKernelArg(j->scatter, 9, sizeof j->hist, &j->hist), j->err)) ||
        (rc = CL_TRY(clSetKernelArg(j->scatter, 10, sizeof j->buf[1 - from],
                                    &j->buf[1 - from]),
                     j->err)))
        return rc;
    return over_blocks(j, j->scatter, 1);
}

/* The work-group size the kernel was compiled for must be the one this file assumes for
 * the device's variant; a mismatch means the two files disagree (a bug, said plainly). */
static int check_local(struct job *j, cl_kernel k, const char *name)
{
    size_t req[3] = {0, 0, 0}, most = 0;
    int rc;
    if ((rc = CL_TRY(clGetKernelWorkGroupInfo(k, j->d->id, CL_KERNEL_COMPILE_WORK_GROUP_SIZE,
                                              sizeof req, req, NULL),
                     j->err)) ||
        (rc = CL_TRY(clGetKernelWorkGroupInfo(k, j->d->id, CL_KERNEL_WORK_GROUP_SIZE,
                                              sizeof most, &most, NULL),
                     j->err)))
        return rc;
    if (req[0] != j->local)
        return hy_error_set(j->err, HY_EINTERNAL,
                            "sort kernel %s was built for work-groups of %zu, expected %u", name,
                            req[0], j->local);
    if (most < j->local)
        return hy_error_set(j->err, HY_EBACKEND,
                            "device '%s' runs sort kernel %s in work-groups of at most %zu; it "
                            "needs %u",
                            j->d->info.name, name, most, j->local);
    return 0;
}

/* The two array buffers: the device's kept pair when it is large enough, else a new pair
 * that replaces it. Pages a buffer has once touched stay mapped, so a CPU device pays its
 * page faults once rather than on every job. A pair larger than HY_KEEP_BYTES each is not
 * kept: a shared device should not hold that much for sort alone. */
static int array_buffers(struct job *j, size_t bytes)
{
    struct hy_cl_dev *d = j->d;
    cl_int cr;
    if (d->sort_buf[0] && d->sort_buf[1] && d->sort_bytes >= bytes) {
        j->buf[0] = d->sort_buf[0];
        j->buf[1] = d->sort_buf[1];
        return 0;
    }
    for (int i = 0; i < 2; i++) {
        j->buf[i] = clCreateBuffer(d->ctx, CL_MEM_READ_WRITE, bytes, NULL, &cr);
        int rc = CL_TRY(cr, j->err);
        if (rc)
            return rc;
    }
    if (bytes <= HY_KEEP_BYTES) {
        for (int i = 0; i < 2; i++) {
            if (d->sort_buf[i])
                clReleaseMemObject(d->sort_buf[i]);
            d->sort_buf[i] = j->buf[i];
        }
        d->sort_bytes = bytes;
    }
    return 0;
}

/* Checks the job fits the device before anything is allocated; fills the block layout. */
static int plan(struct job *j, size_t n)
{
    const hy_cl_device_info *in = &j->d->info;
    if (n > SIZE_MAX / j->size || n * j->size > in->max_alloc) {
        if (n > SIZE_MAX / j->size)
            return hy_error_set(j->err, HY_ELIMIT,
                                "needs 2 x %zu x %zu bytes; device '%s' allows %llu per buffer",
                                n, j->size, in->name, (unsigned long long)in->max_alloc);
        return hy_error_set(j->err, HY_ELIMIT,
                            "needs 2 x %zu bytes; device '%s' allows %llu per buffer",
                            n * j->size, in->name, (unsigned long long)in->max_alloc);
    }
    /* Offsets in the kernels are 32-bit: cheaper on every device, and 2^32 elements of 4
     * bytes are more than most devices' single buffer anyway. */
    if (n > UINT32_MAX)
        return hy_error_set(j->err, HY_ELIMIT,
                            "%zu elements: the device sort takes at most %lu", n,
                            (unsigned long)UINT32_MAX);
    j->n = (cl_uint)n;
    unsigned cus = in->compute_units ? in->compute_units : 1;
    if (j->local == 1) {
        uint64_t want = (uint64_t)cus * CPU_BLOCKS_PER_CU;
        uint64_t bs = (n + want - 1) / want;
        bs = bs < CPU_BLOCK_MIN ? CPU_BLOCK_MIN : bs > CPU_BLOCK_MAX ? CPU_BLOCK_MAX : bs;
        j->bsize = (cl_uint)bs;
        /* Whole rounds of blocks per launch, so no compute unit idles through a launch's
         * last round. */
        cl_uint per = CPU_LAUNCH_ELEMS / j->bsize;
        j->blocks_per_launch = per < cus ? cus : per / cus * cus;
    } else {
        j->bsize = GPU_TILE;
        j->blocks_per_launch = GPU_LAUNCH_ELEMS / GPU_TILE;
    }
    j->nblocks = (cl_uint)((n + j->bsize - 1) / j->bsize);
    uint64_t table = ((uint64_t)j->nblocks << j->bits) * sizeof(cl_uint);
    uint64_t andor = (uint64_t)j->nblocks * 2 * j->size;
    uint64_t total = 2 * (uint64_t)n * j->size + table + andor;
    if (table > in->max_alloc || total > in->global_mem)
        return hy_error_set(j->err, HY_ELIMIT,
                            "needs 2 x %zu bytes plus %llu for histograms; device '%s' has %llu "
                            "bytes of global memory",
                            n * j->size, (unsigned long long)(table + andor), in->name,
                            (unsigned long long)in->global_mem);
    return 0;
}

/* The job's kernels (each checked against the device's work-group limit), its array pair,
 * the histogram table, and the per-block key bounds on the device and, in *andor (the
 * caller frees it), on the host. */
static int job_resources(struct job *j, size_t bytes, cl_ulong **andor)
{
    cl_context ctx = j->d->ctx;
    const char *count_name = j->size == 4 ? "sort_count_u32" : "sort_count_u64";
    const char *scatter_name = j->size == 4 ? "sort_scatter_u32" : "sort_scatter_u64";
    size_t table = (size_t)j->nblocks << j->bits;
    cl_int cr;
    int rc;
    if ((rc = hy_cl_kernel(j->d, HY_CL_PROG_SORT, count_name, &j->count, j->err)) ||
        (rc = hy_cl_kernel(j->d, HY_CL_PROG_SORT, "sort_scan", &j->scan, j->err)) ||
        (rc = hy_cl_kernel(j->d, HY_CL_PROG_SORT, scatter_name, &j->scatter, j->err)) ||
        (rc = check_local(j, j->count, count_name)) ||
        (rc = check_local(j, j->scan, "sort_scan")) ||
        (rc = check_local(j, j->scatter, scatter_name)))
        return rc;
    if ((rc = array_buffers(j, bytes)))
        return rc;
    j->hist = clCreateBuffer(ctx, CL_MEM_READ_WRITE, table * sizeof(cl_uint), NULL, &cr);
    if ((rc = CL_TRY(cr, j->err)))
        return rc;
    j->andor = clCreateBuffer(ctx, CL_MEM_READ_WRITE, (size_t)j->nblocks * 2 * j->size, NULL,
                              &cr);
    if ((rc = CL_TRY(cr, j->err)))
        return rc;
    *andor = malloc((size_t)j->nblocks * 2 * sizeof **andor);
    if (!*andor)
        return hy_error_set(j->err, HY_ENOMEM, "out of memory for %u blocks' key bounds",
                            j->nblocks);
    return 0;
}

/* The key bits that differ between some two keys, from the blocks' AND and OR that the first
 * count left in j->andor (read into `andor`). A digit where the AND and the OR of all keys
 * agree is the same in every key: its pass would move nothing. */
static int differing_bits(struct job *j, cl_ulong *andor, cl_ulong *differ)
{
    cl_event ev = NULL;
    int rc;
    if ((rc = CL_TRY(clEnqueueReadBuffer(j->d->queue, j->andor, CL_FALSE, 0,
                                         (size_t)j->nblocks * 2 * j->size, andor, 0, NULL, &ev),
                     j->err)))
        return rc;
    track(j, ev, EV_D2H);
    if ((rc = settle(j, 0)))
        return rc;
    cl_ulong all_and = ~(cl_ulong)0, all_or = 0;
    for (cl_uint b = 0; b < j->nblocks; b++) {
        cl_ulong a, v;
        if (j->size == 4) {
            const cl_uint *w = (const cl_uint *)andor;
            a = w[2 * b];
            v = w[2 * b + 1];
        } else {
            a = andor[2 * b];
            v = andor[2 * b + 1];
        }
        all_and &= a;
        all_or |= v;
    }
    *differ = all_and ^ all_or;
    return 0;
}

/* One count and one move per digit that differs; *from ends as the buffer holding the sorted
 * keys, and *moved says whether any pass ran. */
static int radix_passes(struct job *j, cl_ulong differ, unsigned digits, int *from,
                        bool *moved)
{
    int rc;
    for (unsigned dg = 0; dg < digits; dg++) {
        cl_uint shift = dg * j->bits;
        if (((differ >> shift) & ((1u << j->bits) - 1u)) == 0) {
            j->done += j->n;
            continue;
        }
        /* Digit 0's histogram came with the bounds, from the same unmoved array. */
        if (dg > 0 && (rc = count_pass(j, *from, shift, 0)))
            return rc;
        if ((rc = move_pass(j, *from, shift)))
            return rc;
        *from = 1 - *from;
        *moved = true;
    }
    return 0;
}

/* Releases what job_resources made, in reverse order, keeping the device's kept pair. */
static void release_job(struct job *j)
{
    for (unsigned i = 0; i < j->npending; i++)
        clReleaseEvent(j->pending[i]);
    if (j->andor)
        clReleaseMemObject(j->andor);
    if (j->hist)
        clReleaseMemObject(j->hist);
    for (int i = 1; i >= 0; i--)
        if (j->buf[i] && j->buf[i] != j->d->sort_buf[i])
            clReleaseMemObject(j->buf[i]);
    if (j->scatter)
        clReleaseKernel(j->scatter);
    if (j->scan)
        clReleaseKernel(j->scan);
    if (j->count)
        clReleaseKernel(j->count);
}

int hy_cl_sort_job(hy_cl *cl, const hy_cl_opts *o, int dtype, void *data, size_t n,
                   hy_cl_sort_result *r, hy_error *err)
{
    if (!cl || !o || !r)
        return hy_error_set(err, HY_EINVAL, "no OpenCL state, options or result given");
    memset(r, 0, sizeof *r);
    uint64_t t0 = hy_now_ns();
    size_t size;
    int rc = hy_check_sort_args(dtype, data, n, &size, err);
    if (rc)
        return rc;
    struct job j = {.err = err, .size = size, .t = &r->timing, .o = o};
    rc = hy_cl_device(cl, o->device, &j.d, err);
    if (rc)
        return rc;
    r->n = n;
    if (n < 2) {
        r->timing.wall_ns = hy_now_ns() - t0;
        return 0;
    }
    j.bits = j.d->cpu_variant ? CPU_BITS : GPU_BITS;
    j.local = j.d->cpu_variant ? CPU_LOCAL : GPU_LOCAL;
    key_map(dtype, &j);
    if ((rc = plan(&j, n)))
        return rc;

    cl_command_queue q = j.d->queue;
    size_t bytes = n * size;
    unsigned digits = ((unsigned)size * 8 + j.bits - 1) / j.bits;
    cl_ulong *andor = NULL, differ;
    int from = 0;
    bool enqueued = false, moved = false;
    cl_event ev = NULL;

    if ((rc = job_resources(&j, bytes, &andor)))
        goto out;
    /* Units: the first count, then one scatter per digit (a skipped digit counts at once). */
    j.total = (uint64_t)n * (1 + digits);

    enqueued = true;
    if ((rc = CL_TRY(clEnqueueWriteBuffer(q, j.buf[0], CL_FALSE, 0, bytes, data, 0, NULL, &ev),
                     err)))
        goto out;
    track(&j, ev, EV_H2D);
    if ((rc = count_pass(&j, 0, 0, 1)) || (rc = differing_bits(&j, andor, &differ)) ||
        (rc = radix_passes(&j, differ, digits, &from, &moved)))
        goto out;

    /* Equal keys are equal bytes: with every digit skipped the array is already sorted. */
    if (!moved)
        goto out;
    /* Only now is the caller's array written: the sorted bytes, all at once. */
    ev = NULL;
    if ((rc = CL_TRY(clEnqueueReadBuffer(q, j.buf[from], CL_FALSE, 0, bytes, data, 0, NULL,
                                         &ev),
                     err)))
        goto out;
    track(&j, ev, EV_D2H);
    rc = settle(&j, 0);
    /* Cancelling after the last copy changes nothing: the array is already sorted. */
    if (rc == HY_ECANCELED)
        rc = 0;

out:
    /* Nothing may still read or write the caller's array once we return. */
    if (enqueued)
        clFinish(q);
    free(andor);
    release_job(&j);
    r->timing.wall_ns = hy_now_ns() - t0;
    return rc;
}
