/* cl: the sort job - uploads the array, runs kernels/sort.cl's LSD radix passes (skipping
 * digits that every key shares), and downloads the result into the caller's array, which
 * is written only at the very end (so a cancelled job, or one that fails before that last
 * copy, leaves it untouched). A pass's launches are enqueued back to back on the in-order
 * queue; the host waits once per pass, for its times, progress and cancellation. The GPU
 * variant moves the array through pinned staging buffers in chunks on a second queue, the
 * upload overlapped with the histogram pass and the download chained to the last pass by
 * events (docs/opencl.md, "Transfers"). */
#include "internal.h"
#include "sortkey.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Mirrors of kernels/sort.cl's constants for its two variants (HY_CL_CPU 1 and 0). */
#define CPU_BITS 11u
#define CPU_LOCAL 1u
#define GPU_BITS 8u
#define GPU_RADIX (1u << GPU_BITS)
#define GPU_ITEMS 8u        /* SORT_ITEMS: a block is local size x GPU_ITEMS elements */
#define GPU_SPLIT_RADIX 16u /* SPLIT_RADIX */
#define PADDED(n) ((n) + (n) / 32u) /* an array indexed through the kernels' PAD */
/* LB_MASK: the largest count a look-back word holds (2 flag bits, 30 of count). */
#define GPU_LOOK_MAX ((1u << 30) - 1u)
/* GPU variant's work-groups: the largest power of two up to GPU_LOCAL_MAX that the device,
 * every sort kernel and the local memory allow. Below GPU_LOCAL_MIN a block (local size x
 * GPU_ITEMS) is too small for its 256 per-block counters to be worth scanning: refused. */
#define GPU_LOCAL_MAX 256u
#define GPU_LOCAL_MIN 16u
/* sort_hist_*: groups per compute unit, each striding over the whole array. */
#define GPU_HIST_GROUPS_PER_CU 8u

/* CPU variant: a block is one work-item's serial run. Several blocks per compute unit
 * balance the load; blocks much larger than this only make the launches coarser. */
#define CPU_BLOCKS_PER_CU 4u
#define CPU_BLOCK_MIN (1u << 14)
#define CPU_BLOCK_MAX (1u << 20)
/* CPU variant: elements one launch covers. Launches are not waited for one by one (the
 * host waits once per pass), so this only bounds how many blocks one launch holds; arrays
 * up to 2^26 elements take one launch per kernel per pass. */
#define CPU_LAUNCH_ELEMS (1u << 26)
/* Events between two waits: a pass enqueues a count, a scan and a scatter (the CPU
 * variant's may take several launches each; over_blocks waits when this fills). */
#define MAX_PENDING 32

/* GPU variant: bytes per staged chunk. Large enough that a chunk's copy dwarfs a launch's
 * cost, small enough that the histogram of chunk c runs while chunk c+1 travels and that
 * the kept pinned pair (two chunks) stays small. */
#define STAGE_CHUNK_BYTES ((size_t)16 << 20)
/* Test-only: elements per staged chunk, so that small arrays cross chunk boundaries. */
#define CHUNK_ENV "HYBRIDD_CL_CHUNK"
/* Chunks stay below 2^31 elements: sort_hist_*'s per-group counters are 32-bit. */
#define CHUNK_MAX ((size_t)1 << 30)

enum ev_kind { EV_KERNEL, EV_H2D, EV_D2H };

/* A finished command's profiled interval, kept while the job stages its copies so the
 * copies' time under kernels can be told apart (overlap_ns) at the end. */
struct span {
    cl_ulong start, end;
    enum ev_kind kind;
};

struct job {
    struct hy_cl_dev *d;
    hy_error *err;
    size_t size;                /* bytes per element: 4 or 8 */
    cl_ulong n;                 /* elements: 64-bit in the kernels too (2^32 or more fit) */
    cl_uint bsize, nblocks;     /* elements per block, blocks */
    unsigned bits, local;       /* the variant's digit width and work-group size */
    cl_uint blocks_per_launch;
    unsigned digits;            /* digit positions in a key */
    cl_ulong pos, negx, rot;    /* the key map (kernels/sort.cl's SORT_KEY) */
    cl_kernel count, scan, scatter, ghist_k; /* GPU variant: sort_hist_* and, as scatter,
                                              * sort_onesweep_* */
    cl_mem buf[2], hist, andor, ghist;       /* ghist: the GPU variant's all-digit counts */
    cl_mem starts;                           /* GPU variant: each digit value's 64-bit start */
    cl_mem next;        /* GPU variant: the next pass's look-back table (hist: this pass's) */
    cl_uint *ghost;     /* the host's copy of ghist */
    cl_ulong *hstarts;  /* the host's copy of starts, for every digit */
    cl_event pending[MAX_PENDING];  /* in enqueue order, across both queues */
    enum ev_kind kinds[MAX_PENDING];
    unsigned npending;
    uint64_t tracked, accounted;    /* events ever tracked / accounted: event number q is
                                     * pending[q - accounted] while it is pending */
    /* GPU variant: staged copies (the device's kept pinned pair at d->stage_ptr). */
    bool staged;
    size_t chunk;                   /* elements per staged chunk */
    cl_event tail;                  /* the last pass's scatter, which the download waits on */
    struct span *spans;
    size_t nspans, capspans;
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
    j->tracked++;
}

/* Adds a finished command's time to its kind and, for a staged job, keeps its interval;
 * releases the event either way. */
static int account(struct job *j, cl_event ev, enum ev_kind kind)
{
    cl_ulong s = 0, e = 0;
    int rc = 0;
    if (clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_START, sizeof s, &s, NULL) ==
            CL_SUCCESS &&
        clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof e, &e, NULL) ==
            CL_SUCCESS &&
        e > s) {
        uint64_t *to = kind == EV_KERNEL ? &j->t->kernel_ns
                       : kind == EV_H2D  ? &j->t->h2d_ns
                                         : &j->t->d2h_ns;
        *to += e - s;
        if (j->staged && j->nspans == j->capspans) {
            size_t cap = j->capspans ? 2 * j->capspans : 64;
            struct span *m = realloc(j->spans, cap * sizeof *m);
            if (!m)
                rc = hy_error_set(j->err, HY_ENOMEM, "out of memory for the job's timings");
            else {
                j->spans = m;
                j->capspans = cap;
            }
        }
        if (j->staged && !rc)
            j->spans[j->nspans++] = (struct span){s, e, kind};
    }
    clReleaseEvent(ev);
    return rc;
}

/* Waits for the first k pending events (not for the whole queue) and accounts them. */
static int drain(struct job *j, unsigned k)
{
    int rc = k ? CL_TRY(clWaitForEvents(k, j->pending), j->err) : 0;
    if (rc)
        return rc; /* still pending: release_job lets them go */
    for (unsigned i = 0; i < k; i++) {
        int r = account(j, j->pending[i], j->kinds[i]);
        rc = rc ? rc : r;
    }
    memmove(j->pending, j->pending + k, (j->npending - k) * sizeof *j->pending);
    memmove(j->kinds, j->kinds + k, (j->npending - k) * sizeof *j->kinds);
    j->npending -= k;
    j->accounted += k;
    return rc;
}

/* Waits until event number q (j->tracked before it was tracked) has finished. */
static int drain_through(struct job *j, uint64_t q)
{
    return q < j->accounted ? 0 : drain(j, (unsigned)(q - j->accounted + 1));
}

/* Waits for everything enqueued, adds the finished commands' times, and reports progress;
 * a non-zero answer from the callback cancels the job. */
static int settle(struct job *j, uint64_t add)
{
    int rc = CL_TRY(clFinish(j->d->queue), j->err);
    if (!rc && j->staged)
        rc = CL_TRY(clFinish(j->d->xfer), j->err);
    if (!rc)
        rc = drain(j, j->npending);
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

/* Enqueues kernel k over every block, blocks_per_launch blocks at a time (CPU variant). */
static int over_blocks(struct job *j, cl_kernel k)
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
        /* Only arrays of over 2^30 elements get here: a wait mid-pass costs them little. */
        if (j->npending + 2 > MAX_PENDING && (rc = settle(j, 0)))
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
    return over_blocks(j, j->count);
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
    return over_blocks(j, j->scatter);
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

/* Bytes per entry of the per-block table: see plan. */
static size_t table_entry(const struct job *j)
{
    return j->d->cpu_variant ? sizeof(cl_ulong) : sizeof(cl_uint);
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
    /* Element offsets in the kernels are 64-bit: a large GPU's single buffer holds 2^32
     * keys and more. Blocks and the per-block table stay 32-bit-indexed (below). */
    j->n = n;
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
        j->bsize = j->local * GPU_ITEMS;
        j->blocks_per_launch = 0; /* unused: one launch per kernel per pass */
    }
    uint64_t nblocks = (n + j->bsize - 1) / j->bsize;
    /* The kernels count blocks and index the per-block table in 32 bits (a GPU's blocks of
     * 2048 reach that at 2^35 elements, far above any device's buffer today). */
    if ((nblocks << j->bits) > UINT32_MAX)
        return hy_error_set(j->err, HY_ELIMIT,
                            "%zu elements in blocks of %u need %llu per-block counters; the "
                            "device sort takes at most %lu",
                            n, j->bsize, (unsigned long long)(nblocks << j->bits),
                            (unsigned long)UINT32_MAX);
    j->nblocks = (cl_uint)nblocks;
    /* The CPU variant's table (a few thousand blocks at most) holds 64-bit output offsets;
     * the GPU variant has two look-back tables (this pass's and the next's) of 32-bit
     * words, beside 64-bit starts and all-digit counts (64-bit in two words each) and a
     * ticket per digit. */
    uint64_t table = (nblocks << j->bits) * table_entry(j);
    uint64_t andor = j->d->cpu_variant ? nblocks * 2 * j->size
                                       : (uint64_t)j->digits * GPU_RADIX * 2 * sizeof(cl_uint) +
                                             j->digits * sizeof(cl_uint) +
                                             (uint64_t)j->digits * GPU_RADIX * sizeof(cl_ulong);
    uint64_t total = 2 * (uint64_t)n * j->size + (j->d->cpu_variant ? 1 : 2) * table + andor;
    if (table > in->max_alloc || total > in->global_mem)
        return hy_error_set(j->err, HY_ELIMIT,
                            "needs 2 x %zu bytes plus %llu for histograms; device '%s' has %llu "
                            "bytes of global memory",
                            n * j->size, (unsigned long long)(table + andor), in->name,
                            (unsigned long long)in->global_mem);
    return 0;
}

/* Elements per staged chunk: STAGE_CHUNK_BYTES' worth, or what CHUNK_ENV says (tests), at
 * most the array. A value that is not a whole number of 1 or more is refused, naming it: a
 * typo must not quietly test the default. */
static int chunk_elems(struct job *j)
{
    const char *s = getenv(CHUNK_ENV);
    size_t c = STAGE_CHUNK_BYTES / j->size;
    if (s && s[0]) {
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || *end || v < 1 || v > CHUNK_MAX || s[0] == '-')
            return hy_error_set(j->err, HY_EINVAL,
                                "%s=%s: expected a number of elements per chunk, 1 to %lu",
                                CHUNK_ENV, s, (unsigned long)CHUNK_MAX);
        c = (size_t)v;
    }
    j->chunk = c < j->n ? c : j->n;
    return 0;
}

/* The pinned staging pair: the device's kept pair when it is large enough, else a new pair,
 * mapped once for as long as it is kept (in d->stage_ptr), that replaces it. Pinned memory
 * comes from the driver's CL_MEM_ALLOC_HOST_PTR; copies from it run at the bus's speed
 * where copies from the caller's pageable mapping go through the driver's own bounce. */
static int stage_buffers(struct job *j)
{
    struct hy_cl_dev *d = j->d;
    size_t bytes = j->chunk * j->size;
    cl_int cr;
    int rc;
    if (d->stage[0] && d->stage[1] && d->stage_bytes >= bytes)
        return 0;
    for (int i = 1; i >= 0; i--) {
        if (d->stage[i] && d->stage_ptr[i] &&
            (rc = CL_TRY(clEnqueueUnmapMemObject(d->xfer, d->stage[i], d->stage_ptr[i], 0,
                                                 NULL, NULL),
                         j->err)))
            return rc;
        if (d->stage[i])
            clReleaseMemObject(d->stage[i]);
        d->stage[i] = NULL;
        d->stage_ptr[i] = NULL;
    }
    d->stage_bytes = 0;
    if ((rc = CL_TRY(clFinish(d->xfer), j->err)))
        return rc;
    for (int i = 0; i < 2; i++) {
        d->stage[i] = clCreateBuffer(d->ctx, CL_MEM_READ_WRITE | CL_MEM_ALLOC_HOST_PTR, bytes,
                                     NULL, &cr);
        if ((rc = CL_TRY(cr, j->err)))
            return rc;
        d->stage_ptr[i] = clEnqueueMapBuffer(d->xfer, d->stage[i], CL_TRUE,
                                             CL_MAP_READ | CL_MAP_WRITE, 0, bytes, 0, NULL,
                                             NULL, &cr);
        if ((rc = CL_TRY(cr, j->err)))
            return rc;
    }
    d->stage_bytes = bytes;
    if (!d->copier)
        d->copier = hy_cl_copier_start(hy_cl_copy_threads());
    return 0;
}

/* The GPU variant's buffers (its kernels came with gpu_shape): the array pair, the pinned
 * staging pair, the two look-back tables, every digit value's start (on the device and in
 * j->hstarts) and the all-digit histograms with the passes' tickets after them (on the
 * device and in j->ghost). */
static int gpu_resources(struct job *j, size_t bytes)
{
    size_t table = (size_t)j->nblocks << GPU_BITS, gn = (size_t)j->digits * GPU_RADIX;
    cl_mem *made[4] = {&j->hist, &j->next, &j->starts, &j->ghist};
    size_t sizes[4] = {table * table_entry(j), table * table_entry(j), gn * sizeof(cl_ulong),
                       (2 * gn + j->digits) * sizeof(cl_uint)};
    cl_int cr;
    int rc;
    j->staged = true;
    if ((rc = array_buffers(j, bytes)) || (rc = stage_buffers(j)))
        return rc;
    for (int i = 0; i < 4; i++) {
        *made[i] = clCreateBuffer(j->d->ctx, CL_MEM_READ_WRITE, sizes[i], NULL, &cr);
        if ((rc = CL_TRY(cr, j->err)))
            return rc;
    }
    j->ghost = malloc(sizes[3]);
    j->hstarts = malloc(sizes[2]);
    if (!j->ghost || !j->hstarts)
        return hy_error_set(j->err, HY_ENOMEM, "out of memory for the digit histograms");
    return 0;
}

/* The CPU variant's kernels (each checked against the device's work-group limit), its
 * array pair, the histogram table, and the per-block key bounds on the device and, in
 * *andor (the caller frees it), on the host. */
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
    j->hist = clCreateBuffer(ctx, CL_MEM_READ_WRITE, table * table_entry(j), NULL, &cr);
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
    j->t->bytes_moved += (uint64_t)j->nblocks * 2 * j->size;
    if ((rc = settle(j, j->n)))
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

/* CPU variant: one count and one move per digit that differs, waited for once per digit;
 * *from ends as the buffer holding the sorted keys, and *moved says whether any pass ran.
 * The first count (with the bounds) is the first pass over the keys, and digit 0's count. */
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
        if ((rc = move_pass(j, *from, shift)) || (rc = settle(j, j->n)))
            return rc;
        if (dg > 0)
            j->t->passes++;
        *from = 1 - *from;
        *moved = true;
    }
    return 0;
}

/* ---- GPU variant ---- */

/* Local bytes sort_onesweep_* takes with work-groups of `local`: the block, the split's
 * per-item counters, their segment sums, the digit values' bases, and the block's counts
 * (then slots) per digit value with its block number. */
static size_t scatter_local_bytes(size_t key, size_t local)
{
    return PADDED(local * GPU_ITEMS) * key + PADDED(local * GPU_SPLIT_RADIX) * sizeof(cl_uint) +
           local * sizeof(cl_uint) + GPU_RADIX * sizeof(cl_ulong) +
           (GPU_RADIX + 1) * sizeof(cl_uint);
}

/* The largest work-group `k` runs on this device, and the local memory it uses by itself. */
static int kernel_limits(struct job *j, cl_kernel k, size_t *most, cl_ulong *own)
{
    int rc = CL_TRY(clGetKernelWorkGroupInfo(k, j->d->id, CL_KERNEL_WORK_GROUP_SIZE,
                                             sizeof *most, most, NULL),
                    j->err);
    if (rc)
        return rc;
    return CL_TRY(clGetKernelWorkGroupInfo(k, j->d->id, CL_KERNEL_LOCAL_MEM_SIZE, sizeof *own,
                                           own, NULL),
                  j->err);
}

/* Makes the GPU variant's kernels and picks its work-group size from what the device and
 * each kernel report: a power of two, at most GPU_LOCAL_MAX, whose local arrays fit the
 * device's local memory; refused, saying which limit, below GPU_LOCAL_MIN. */
static int gpu_shape(struct job *j)
{
    const char *names[2][2] = {{"sort_hist_u32", "sort_hist_u64"},
                               {"sort_onesweep_u32", "sort_onesweep_u64"}};
    cl_kernel *ks[2] = {&j->ghist_k, &j->scatter};
    int w = j->size == 8;
    size_t local = j->d->info.max_work_group < GPU_LOCAL_MAX ? j->d->info.max_work_group
                                                             : GPU_LOCAL_MAX;
    cl_ulong lmem = 0, own = 0;
    const char *tightest = names[0][w];
    int rc;
    for (int i = 0; i < 2; i++) {
        size_t most = 0;
        cl_ulong o = 0;
        if ((rc = hy_cl_kernel(j->d, HY_CL_PROG_SORT, names[i][w], ks[i], j->err)) ||
            (rc = kernel_limits(j, *ks[i], &most, &o)))
            return rc;
        if (most < local) {
            local = most;
            tightest = names[i][w];
        }
        own = o > own ? o : own;
    }
    if ((rc = CL_TRY(clGetDeviceInfo(j->d->id, CL_DEVICE_LOCAL_MEM_SIZE, sizeof lmem, &lmem,
                                     NULL),
                     j->err)))
        return rc;
    size_t p = 1;
    while (p * 2 <= local)
        p *= 2;
    if (p < GPU_LOCAL_MIN)
        return hy_error_set(j->err, HY_EBACKEND,
                            "device '%s' runs sort kernel %s in work-groups of at most %zu; it "
                            "needs %u",
                            j->d->info.name, tightest, local, GPU_LOCAL_MIN);
    size_t hist_bytes = (size_t)j->digits * GPU_RADIX * sizeof(cl_uint);
    while (p >= GPU_LOCAL_MIN && own + scatter_local_bytes(j->size, p) > lmem)
        p /= 2;
    size_t least = scatter_local_bytes(j->size, GPU_LOCAL_MIN);
    if (p < GPU_LOCAL_MIN || own + hist_bytes > lmem)
        return hy_error_set(j->err, HY_EBACKEND,
                            "device '%s' has %llu bytes of local memory per work-group; the "
                            "sort needs %llu",
                            j->d->info.name, (unsigned long long)lmem,
                            (unsigned long long)own + (least > hist_bytes ? least : hist_bytes));
    j->local = (unsigned)p;
    return 0;
}

/* Sets kernel k's arguments from `first` on: n (size, value) pairs; a NULL value with a
 * size is a local array of that many bytes. */
static int set_args(struct job *j, cl_kernel k, cl_uint first, unsigned n, const size_t *sizes,
                    const void *const *vals)
{
    int rc;
    for (unsigned i = 0; i < n; i++)
        if ((rc = CL_TRY(clSetKernelArg(k, first + i, sizes[i], vals[i]), j->err)))
            return rc;
    return 0;
}

/* The arguments sort_hist_*, sort_count_* and sort_scatter_* begin with: src, n, then the
 * digit's shift unless `hist`, then the key map. */
static int set_src_args(struct job *j, cl_kernel k, cl_mem src, cl_uint shift, bool hist)
{
    int rc;
    cl_uint a = hist ? 2 : 3;
    if ((rc = CL_TRY(clSetKernelArg(k, 0, sizeof src, &src), j->err)) ||
        (rc = CL_TRY(clSetKernelArg(k, 1, sizeof j->n, &j->n), j->err)) ||
        (!hist && (rc = CL_TRY(clSetKernelArg(k, 2, sizeof shift, &shift), j->err))) ||
        (rc = set_key_arg(j, k, a, j->pos)) || (rc = set_key_arg(j, k, a + 1, j->negx)) ||
        (rc = set_key_arg(j, k, a + 2, j->rot)))
        return rc;
    return 0;
}

/* Enqueues `groups` work-groups of `local` work-items of kernel k, tracked; after `wait`
 * when it is not NULL (an event of the other queue). */
static int launch_after(struct job *j, cl_kernel k, size_t groups, size_t local,
                        const cl_event *wait)
{
    size_t global = groups * local;
    cl_event ev = NULL;
    int rc = CL_TRY(clEnqueueNDRangeKernel(j->d->queue, k, 1, NULL, &global, &local,
                                           wait ? 1 : 0, wait, &ev),
                    j->err);
    if (rc)
        return rc;
    track(j, ev, EV_KERNEL);
    j->t->launches++;
    return 0;
}

static int launch(struct job *j, cl_kernel k, size_t groups, size_t local)
{
    return launch_after(j, k, groups, local, NULL);
}

/* sort_hist_* over elements [first, end) of buf[0], once `wait` (that chunk's copy) is done:
 * a few groups per compute unit, no more than the range has blocks. The first chunk's
 * launch also zeroes the first digit pass's look-back table (j->hist). */
static int hist_chunk(struct job *j, size_t first, size_t end, const cl_event *wait)
{
    unsigned cus = j->d->info.compute_units ? j->d->info.compute_units : 1;
    size_t groups = (size_t)cus * GPU_HIST_GROUPS_PER_CU, bsize = (size_t)j->local * GPU_ITEMS;
    size_t blocks = (end - first + bsize - 1) / bsize;
    cl_ulong f = first, e = end, nzero = first ? 0 : (cl_ulong)j->nblocks << GPU_BITS;
    int rc;
    if (groups > blocks)
        groups = blocks;
    if ((rc = CL_TRY(clSetKernelArg(j->ghist_k, 1, sizeof e, &e), j->err)) ||
        (rc = CL_TRY(clSetKernelArg(j->ghist_k, 7, sizeof f, &f), j->err)) ||
        (rc = CL_TRY(clSetKernelArg(j->ghist_k, 9, sizeof nzero, &nzero), j->err)))
        return rc;
    return launch_after(j, j->ghist_k, groups, j->local, wait);
}

/* The upload, chunk by chunk through the pinned pair, each chunk's histogram launched on
 * the compute queue as soon as its copy (on the transfer queue) is done: the host fills
 * chunk c's staging buffer while chunk c-1 is copied and chunk c-2 counted. A staging
 * buffer is refilled only once its previous copy has finished (drain_through). */
static int staged_upload(struct job *j, const char *data)
{
    uint64_t copy_no[2] = {0, 0};
    size_t es = j->size;
    int rc;
    for (size_t first = 0, c = 0; first < j->n; first += j->chunk, c++) {
        size_t len = j->n - first < j->chunk ? j->n - first : j->chunk;
        unsigned slot = c & 1;
        cl_event ev = NULL;
        if (c >= 2 && (rc = drain_through(j, copy_no[slot])))
            return rc;
        hy_cl_copy(j->d->copier, j->d->stage_ptr[slot], data + first * es, len * es);
        if ((rc = CL_TRY(clEnqueueWriteBuffer(j->d->xfer, j->buf[0], CL_FALSE, first * es,
                                              len * es, j->d->stage_ptr[slot], 0, NULL, &ev),
                         j->err)))
            return rc;
        copy_no[slot] = j->tracked;
        track(j, ev, EV_H2D);
        if ((rc = hist_chunk(j, first, first + len, &ev)))
            return rc;
    }
    j->t->bytes_moved += (uint64_t)j->n * es;
    return 0;
}

/* The first pass: the upload into buf[0] with every digit's histogram of it, read back into
 * j->ghost. */
static int gpu_hist(struct job *j, const char *data)
{
    /* Counts: 64-bit in two words each, on the device; each group's local counters: 32-bit.
     * The digit passes' tickets follow the counts and are zeroed with them. */
    size_t gsize = (size_t)j->digits * GPU_RADIX * 2 * sizeof(cl_uint);
    size_t zsize = gsize + j->digits * sizeof(cl_uint);
    size_t lsize = (size_t)j->digits * GPU_RADIX * sizeof(cl_uint);
    cl_event ev = NULL;
    int rc;
    /* Zeroed by a copy rather than clEnqueueFillBuffer, which Oclgrind does not count as
     * initialising the buffer. The histograms and the read below land after it on the
     * in-order queue. */
    memset(j->ghost, 0, zsize);
    if ((rc = CL_TRY(clEnqueueWriteBuffer(j->d->queue, j->ghist, CL_FALSE, 0, zsize, j->ghost,
                                          0, NULL, NULL),
                     j->err)) ||
        (rc = set_src_args(j, j->ghist_k, j->buf[0], 0, true)) ||
        (rc = set_args(j, j->ghist_k, 5, 2, (size_t[]){sizeof(cl_mem), lsize},
                       (const void *[]){&j->ghist, NULL})) ||
        (rc = CL_TRY(clSetKernelArg(j->ghist_k, 8, sizeof j->hist, &j->hist), j->err)) ||
        (rc = staged_upload(j, data)) ||
        (rc = CL_TRY(clEnqueueReadBuffer(j->d->queue, j->ghist, CL_FALSE, 0, gsize, j->ghost,
                                         0, NULL, &ev),
                     j->err)))
        return rc;
    track(j, ev, EV_D2H);
    j->t->bytes_moved += zsize + (uint64_t)gsize; /* zeroed on the way in, counts out */
    j->t->passes++;
    return settle(j, j->n);
}

/* One digit pass from buf[from] into buf[1 - from]: one launch of sort_onesweep_*, whose
 * work-groups read their block once, rank it in local memory, and write it once, the block's
 * slots within each digit value's run coming from decoupled look-back over the blocks before
 * it (in j->hist, while it zeroes j->next for the pass after). Then one wait, except after
 * the last pass, which the download waits on by its event (j->tail). */
static int gpu_pass(struct job *j, int from, cl_uint dg, bool last)
{
    cl_uint shift = dg * GPU_BITS;
    size_t L = j->local, u = sizeof(cl_uint), m = sizeof(cl_mem), ul = sizeof(cl_ulong);
    cl_mem swap;
    int rc;
    if ((rc = set_src_args(j, j->scatter, j->buf[from], shift, false)) ||
        (rc = set_args(j, j->scatter, 6, 10,
                       (size_t[]){m, m, m, m, m, PADDED(L * GPU_ITEMS) * j->size,
                                  PADDED(L * GPU_SPLIT_RADIX) * u, L * u, GPU_RADIX * ul,
                                  (GPU_RADIX + 1) * u},
                       (const void *[]){&j->hist, &j->next, &j->starts, &j->ghist,
                                        &j->buf[1 - from], NULL, NULL, NULL, NULL, NULL})) ||
        (rc = launch(j, j->scatter, j->nblocks, L)))
        return rc;
    j->t->passes++;
    swap = j->hist;
    j->hist = j->next;
    j->next = swap;
    if (last)
        return CL_TRY(clRetainEvent(j->tail = j->pending[j->npending - 1]), j->err);
    return settle(j, j->n);
}

/* Digit dg's count of value v, from the two words sort_hist_* keeps it in. */
static uint64_t digit_count(const struct job *j, cl_uint dg, unsigned v)
{
    const cl_uint *w = &j->ghost[2 * (dg * GPU_RADIX + v)];
    return (uint64_t)w[1] << 32 | w[0];
}

/* Whether digit dg is the same in every key (one value has all n): its pass would move
 * nothing. */
static bool shared_digit(const struct job *j, cl_uint dg)
{
    for (unsigned v = 0; v < GPU_RADIX; v++)
        if (digit_count(j, dg, v) == j->n)
            return true;
    return false;
}

/* A look-back word holds a count within a digit value's run in 30 bits (kernels/sort.cl's
 * LB_MASK): a digit pass in which one value has 2^30 keys or more is refused, before any pass
 * has moved a key. Only arrays of over 2^30 keys can meet this. */
static int runs_fit(struct job *j)
{
    for (cl_uint dg = 0; dg < j->digits; dg++)
        for (unsigned v = 0; v < GPU_RADIX && j->n > GPU_LOOK_MAX && !shared_digit(j, dg); v++)
            if (digit_count(j, dg, v) > GPU_LOOK_MAX)
                return hy_error_set(j->err, HY_ELIMIT,
                                    "%llu keys share value %u of digit %u; the device sort "
                                    "takes at most %lu keys of one digit value",
                                    (unsigned long long)digit_count(j, dg, v), v, dg,
                                    (unsigned long)GPU_LOOK_MAX);
    return 0;
}

/* Every digit value's first slot in the output, for every digit, from the all-digit counts,
 * written to the device once (the passes read their digit's row). */
static int digit_starts(struct job *j)
{
    size_t bytes = (size_t)j->digits * GPU_RADIX * sizeof(cl_ulong);
    cl_event ev = NULL;
    int rc;
    for (cl_uint dg = 0; dg < j->digits; dg++) {
        cl_ulong at = 0;
        for (unsigned v = 0; v < GPU_RADIX; v++) {
            j->hstarts[dg * GPU_RADIX + v] = at;
            at += digit_count(j, dg, v);
        }
    }
    if ((rc = CL_TRY(clEnqueueWriteBuffer(j->d->queue, j->starts, CL_FALSE, 0, bytes,
                                          j->hstarts, 0, NULL, &ev),
                     j->err)))
        return rc;
    track(j, ev, EV_H2D);
    j->t->bytes_moved += bytes;
    return 0;
}

/* The upload with the histogram pass, then a digit pass for every digit that some two keys
 * differ in; the last one is left running for the download to wait on. */
static int gpu_passes(struct job *j, const char *data, int *from, bool *moved)
{
    int rc = gpu_hist(j, data);
    if (rc || (rc = runs_fit(j)) || (rc = digit_starts(j)))
        return rc;
    cl_uint last = j->digits;
    for (cl_uint dg = 0; dg < j->digits; dg++)
        if (!shared_digit(j, dg))
            last = dg;
    for (cl_uint dg = 0; dg < j->digits; dg++) {
        if (shared_digit(j, dg)) {
            j->done += j->n;
            continue;
        }
        if ((rc = gpu_pass(j, *from, dg, dg == last)))
            return rc;
        *from = 1 - *from;
        *moved = true;
    }
    return 0;
}

/* The download of buf[src] into the caller's array through the pinned pair, chunk by chunk
 * on the transfer queue, the first after the last pass's scatter (j->tail): while chunk c is
 * copied off the device the host moves chunk c-1 from its staging buffer into `data`. */
static int staged_download(struct job *j, char *data, cl_mem src)
{
    size_t es = j->size, nch = (j->n + j->chunk - 1) / j->chunk;
    uint64_t copy_no[2] = {0, 0};
    int rc;
    for (size_t c = 0; c <= nch; c++) {
        if (c < nch) {
            size_t first = c * j->chunk, len = j->n - first < j->chunk ? j->n - first : j->chunk;
            cl_event ev = NULL;
            if ((rc = CL_TRY(clEnqueueReadBuffer(j->d->xfer, src, CL_FALSE, first * es, len * es,
                                                 j->d->stage_ptr[c & 1], c == 0 ? 1 : 0,
                                                 c == 0 ? &j->tail : NULL, &ev),
                             j->err)))
                return rc;
            copy_no[c & 1] = j->tracked;
            track(j, ev, EV_D2H);
        }
        if (c == 0)
            continue;
        size_t p = c - 1, first = p * j->chunk;
        size_t len = j->n - first < j->chunk ? j->n - first : j->chunk;
        if ((rc = drain_through(j, copy_no[p & 1])))
            return rc;
        hy_cl_copy(j->d->copier, data + first * es, j->d->stage_ptr[p & 1], len * es);
    }
    j->t->bytes_moved += (uint64_t)j->n * es;
    return 0;
}

/* The copies' time under kernels: each copy's intersection with the kernels' intervals
 * (those of one in-order queue, so disjoint), moved from its kind into overlap_ns. A copy
 * on the compute queue never meets a kernel, so it keeps all its time. */
static void split_overlap(struct job *j)
{
    for (size_t a = 0; a < j->nspans; a++) {
        const struct span *c = &j->spans[a];
        if (c->kind == EV_KERNEL)
            continue;
        uint64_t under = 0;
        for (size_t b = 0; b < j->nspans; b++) {
            const struct span *k = &j->spans[b];
            cl_ulong lo = c->start > k->start ? c->start : k->start;
            cl_ulong hi = c->end < k->end ? c->end : k->end;
            if (k->kind == EV_KERNEL && hi > lo)
                under += hi - lo;
        }
        uint64_t *from = c->kind == EV_H2D ? &j->t->h2d_ns : &j->t->d2h_ns;
        under = under < *from ? under : *from;
        *from -= under;
        j->t->overlap_ns += under;
    }
}

/* Releases what job_resources made, in reverse order, keeping the device's kept pair. */
static void release_job(struct job *j)
{
    for (unsigned i = 0; i < j->npending; i++)
        clReleaseEvent(j->pending[i]);
    if (j->tail)
        clReleaseEvent(j->tail);
    free(j->spans);
    free(j->ghost);
    free(j->hstarts);
    if (j->next)
        clReleaseMemObject(j->next);
    if (j->starts)
        clReleaseMemObject(j->starts);
    if (j->ghist)
        clReleaseMemObject(j->ghist);
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
    if (j->ghist_k)
        clReleaseKernel(j->ghist_k);
}

/* Uploads data into buf[0] and runs the variant's passes; *from ends as the buffer holding
 * the sorted keys, and *moved says whether any digit pass ran. */
static int run_passes(struct job *j, void *data, size_t bytes, int *from, bool *moved)
{
    cl_ulong *andor = NULL, differ = 0;
    cl_event ev = NULL;
    int rc;
    if (j->d->cpu_variant)
        rc = job_resources(j, bytes, &andor);
    else
        rc = gpu_resources(j, bytes);
    if (rc)
        goto out;
    /* Units: the first count, then one scatter per digit (a skipped digit counts at once). */
    j->total = (uint64_t)j->n * (1 + j->digits);
    if (!j->d->cpu_variant) {
        rc = gpu_passes(j, data, from, moved);
        goto out;
    }
    /* The CPU variant's device is the host's memory (PoCL): one plain copy is the cheapest
     * upload there, and staging would add a second (docs/opencl.md, "Transfers"). */
    if ((rc = CL_TRY(clEnqueueWriteBuffer(j->d->queue, j->buf[0], CL_FALSE, 0, bytes, data, 0,
                                          NULL, &ev),
                     j->err)))
        goto out;
    track(j, ev, EV_H2D);
    j->t->bytes_moved += bytes;
    j->t->passes = 1;
    if ((rc = count_pass(j, 0, 0, 1)) || (rc = differing_bits(j, andor, &differ)))
        goto out;
    rc = radix_passes(j, differ, j->digits, from, moved);
out:
    free(andor);
    return rc;
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
    j.local = CPU_LOCAL;
    j.digits = ((unsigned)size * 8 + j.bits - 1) / j.bits;
    key_map(dtype, &j);
    cl_command_queue q = j.d->queue;
    int from = 0;
    bool enqueued = false, moved = false;
    cl_event ev = NULL;
    /* The chunk size is checked in either variant, so that a mistyped test setting fails
     * wherever it is set. */
    if ((!j.d->cpu_variant && (rc = gpu_shape(&j))) || (rc = plan(&j, n)) ||
        (rc = chunk_elems(&j)))
        goto out;

    enqueued = true;
    if ((rc = run_passes(&j, data, n * size, &from, &moved)))
        goto out;
    /* Equal keys are equal bytes: with every digit skipped the array is already sorted. */
    if (!moved)
        goto out;
    /* Only now is the caller's array written: the sorted bytes. */
    if (j.staged) {
        rc = staged_download(&j, data, j.buf[from]);
    } else if (!(rc = CL_TRY(clEnqueueReadBuffer(q, j.buf[from], CL_FALSE, 0, n * size, data,
                                                 0, NULL, &ev),
                             err))) {
        track(&j, ev, EV_D2H);
        r->timing.bytes_moved += (uint64_t)n * size;
    }
    /* The staged job's last pass was not waited for on its own: its progress comes now. */
    if (!rc)
        rc = settle(&j, j.staged ? n : 0);
    /* Cancelling after the last copy changes nothing: the array is already sorted. */
    if (rc == HY_ECANCELED)
        rc = 0;
    if (!rc && j.staged)
        split_overlap(&j);

out:
    /* Nothing may still read or write the caller's array, or the staging pair, once we
     * return. */
    if (enqueued) {
        clFinish(q);
        if (j.staged)
            clFinish(j.d->xfer);
    }
    release_job(&j);
    r->timing.wall_ns = hy_now_ns() - t0;
    return rc;
}
