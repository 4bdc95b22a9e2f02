/* cl: device discovery and ownership — every platform and device the ICD loader lists, one
 * context and two in-order profiling queues each (compute, and the sort's staged copies),
 * created at open and kept until a job fails in an OpenCL call; then rebuilt before the
 * device's next job (recovery). */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Far more than any machine has; bounds every allocation sized by a driver's answer. */
#define MAX_PLATFORMS 16u
#define MAX_DEVICES 64u

#define VARIANT_ENV "HYBRIDD_CL_VARIANT"
enum { VARIANT_CPU = 1, VARIANT_GPU = 2 };

static void get_string(cl_device_id d, cl_device_info what, char *buf, size_t len)
{
    /* A driver that cannot answer leaves the field empty rather than failing the device. */
    if (clGetDeviceInfo(d, what, len, buf, NULL) != CL_SUCCESS)
        buf[0] = 0;
    buf[len - 1] = 0;
}

static int type_of(cl_device_type t)
{
    if (t & CL_DEVICE_TYPE_GPU)
        return HY_CL_TYPE_GPU;
    if (t & CL_DEVICE_TYPE_CPU)
        return HY_CL_TYPE_CPU;
    if (t & CL_DEVICE_TYPE_ACCELERATOR)
        return HY_CL_TYPE_ACCELERATOR;
    return HY_CL_TYPE_OTHER;
}

static void describe(struct hy_cl_dev *d, unsigned index)
{
    hy_cl_device_info *in = &d->info;
    in->index = index;
    get_string(d->id, CL_DEVICE_NAME, in->name, sizeof in->name);
    get_string(d->id, CL_DEVICE_VENDOR, in->vendor, sizeof in->vendor);
    get_string(d->id, CL_DRIVER_VERSION, in->driver, sizeof in->driver);
    get_string(d->id, CL_DEVICE_VERSION, in->version, sizeof in->version);
    if (clGetPlatformInfo(d->platform, CL_PLATFORM_NAME, sizeof in->platform, in->platform,
                          NULL) != CL_SUCCESS)
        in->platform[0] = 0;
    in->platform[sizeof in->platform - 1] = 0;

    cl_device_type type = 0;
    cl_uint cus = 0;
    cl_ulong gmem = 0, maxalloc = 0;
    size_t wg = 0;
    clGetDeviceInfo(d->id, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    clGetDeviceInfo(d->id, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cus, &cus, NULL);
    clGetDeviceInfo(d->id, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof gmem, &gmem, NULL);
    clGetDeviceInfo(d->id, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof maxalloc, &maxalloc, NULL);
    clGetDeviceInfo(d->id, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
    in->type = type_of(type);
    in->compute_units = cus;
    in->global_mem = gmem;
    in->max_alloc = maxalloc;
    in->max_work_group = wg;
    /* Only for labelling it honestly ("PoCL CPU", never "GPU"); no code path depends on it. */
    in->pocl_cpu = in->type == HY_CL_TYPE_CPU &&
                   strstr(in->platform, "Portable Computing Language") != NULL;
}

/* The kernel variant: the device type's unless HYBRIDD_CL_VARIANT forces one (`forced`:
 * 0 none, else VARIANT_CPU or VARIANT_GPU). The host side (pi.c, sort.c) reads cpu_variant
 * too, so it always matches the kernels it launches. */
static void choose_variant(struct hy_cl_dev *d, int forced)
{
    hy_cl_device_info *in = &d->info;
    d->cpu_variant = forced ? forced == VARIANT_CPU : in->type == HY_CL_TYPE_CPU;
    in->gpu_variant = !d->cpu_variant;
    in->variant_forced = forced != 0;
    snprintf(d->options, sizeof d->options, "-cl-std=CL1.2 -DHY_CL_CPU=%d",
             d->cpu_variant ? 1 : 0);
}

/* HYBRIDD_CL_VARIANT (tests and diagnosis, docs/opencl.md): unset or empty leaves the choice
 * to each device's type; "gpu" or "cpu" forces that variant on every device. Any other value
 * is refused rather than ignored: a typo must not quietly test the variant it meant to avoid. */
static int variant_from_env(int *forced, hy_error *err)
{
    const char *v = getenv(VARIANT_ENV);
    *forced = 0;
    if (!v || !v[0])
        return 0;
    if (strcmp(v, "gpu") == 0)
        *forced = VARIANT_GPU;
    else if (strcmp(v, "cpu") == 0)
        *forced = VARIANT_CPU;
    else
        return hy_error_set(err, HY_EINVAL, "%s=%.64s: expected gpu or cpu, or unset", VARIANT_ENV,
                            v);
    return 0;
}

static void set_problem(struct hy_cl_dev *d, const hy_error *e)
{
    d->info.usable = false;
    snprintf(d->info.problem, sizeof d->info.problem, "%s", e->msg);
}

/* Context and queue; a device where either fails stays listed, marked not usable. */
static void own(hy_cl *cl, struct hy_cl_dev *d)
{
    hy_error e = {0};
    cl_int rc;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)d->platform,
                                     0};
    d->ctx = clCreateContext(props, 1, &d->id, NULL, NULL, &rc);
    if (CL_TRY(rc, &e)) {
        set_problem(d, &e);
        return;
    }
    d->queue = clCreateCommandQueue(d->ctx, d->id, CL_QUEUE_PROFILING_ENABLE, &rc);
    if (CL_TRY(rc, &e)) {
        set_problem(d, &e);
        return;
    }
    d->xfer = clCreateCommandQueue(d->ctx, d->id, CL_QUEUE_PROFILING_ENABLE, &rc);
    if (CL_TRY(rc, &e)) {
        set_problem(d, &e);
        return;
    }
    uint64_t t0 = hy_now_ns();
    d->info.usable = hy_cl_build_programs(cl, d) == 0;
    d->info.build_ns = hy_now_ns() - t0;
}

/* Everything own() and the jobs made on `d`, released; `d` keeps its identity and info. */
static void disown(struct hy_cl_dev *d)
{
    for (int b = 1; b >= 0; b--)
        if (d->sort_buf[b])
            clReleaseMemObject(d->sort_buf[b]);
    d->sort_buf[0] = d->sort_buf[1] = NULL;
    d->sort_bytes = 0;
    for (int b = 1; b >= 0; b--) {
        /* An unmap on a faulted queue may fail; the release below frees the buffer anyway. */
        if (d->stage[b] && d->stage_ptr[b] && d->xfer &&
            clEnqueueUnmapMemObject(d->xfer, d->stage[b], d->stage_ptr[b], 0, NULL, NULL) ==
                CL_SUCCESS)
            clFinish(d->xfer);
        if (d->stage[b])
            clReleaseMemObject(d->stage[b]);
        d->stage[b] = NULL;
        d->stage_ptr[b] = NULL;
    }
    d->stage_bytes = 0;
    hy_cl_copier_stop(d->copier);
    d->copier = NULL;
    for (int p = HY_CL_NPROG - 1; p >= 0; p--)
        if (d->prog[p])
            clReleaseProgram(d->prog[p]);
    memset(d->prog, 0, sizeof d->prog);
    if (d->parked) {
        d->queue = d->parked;
        d->parked = NULL;
    }
    if (d->queue) {
        /* A faulted queue may answer with an error; what matters is that it is let go. */
        clFinish(d->queue);
        clReleaseCommandQueue(d->queue);
        d->queue = NULL;
    }
    if (d->xfer) {
        clFinish(d->xfer);
        clReleaseCommandQueue(d->xfer);
        d->xfer = NULL;
    }
    if (d->ctx)
        clReleaseContext(d->ctx);
    d->ctx = NULL;
}

/* A new context, queue and programs for a device whose last job failed in an OpenCL call.
 * The programs come from the binary cache when there is one, so this costs milliseconds;
 * without it, a full build. On failure the device is not usable (own() says why) and the
 * next job tries again. */
static void rebuild(hy_cl *cl, struct hy_cl_dev *d)
{
    disown(d);
    d->info.problem[0] = 0;
    own(cl, d);
    d->info.recoveries++;
    d->needs_rebuild = d->info.recovering = !d->info.usable;
}

/* The device whose job the calling thread is running, between begin_job and end_job, so
 * that hy_cl_fail can note a failed call on it without every caller passing the device.
 * Scoped to the wrapper: it never outlives the job, so it never points at a closed device. */
static _Thread_local struct hy_cl_dev *job_dev;

void hy_cl_note_failed_call(void)
{
    if (job_dev)
        job_dev->call_failed = true;
}

/* Before a job: rebuilds a device left in doubt, counts the job, and plants a test's fault.
 * Returns the device when it was usable as the job began (NULL otherwise, or for an index
 * the job itself will refuse). */
static struct hy_cl_dev *begin_job(hy_cl *cl, const hy_cl_opts *o)
{
    if (!cl || !o || o->device >= cl->ndev)
        return NULL;
    struct hy_cl_dev *d = &cl->dev[o->device];
    if (d->needs_rebuild)
        rebuild(cl, d);
    if (!d->info.usable)
        return NULL;
    d->jobs++;
    d->call_failed = false;
    job_dev = d;
    if (cl->test_fault_job && d->jobs == cl->test_fault_job) {
        d->parked = d->queue; /* enqueues on a NULL queue fail: CL_INVALID_COMMAND_QUEUE */
        d->queue = NULL;
    }
    return d;
}

/* After a job: a job that failed in an OpenCL call may have left the context or queue in
 * error, and no portable query tells a transient failure from a broken context, so the next
 * job rebuilds. Refusals (a device too small, ELIMIT) and cancellations leave it as it is. */
static void end_job(struct hy_cl_dev *d, int rc)
{
    job_dev = NULL;
    if (!d)
        return;
    if (rc != 0 && d->call_failed)
        d->needs_rebuild = d->info.recovering = true;
    else if (d->parked) { /* a planted fault the job never met (it made no call) */
        d->queue = d->parked;
        d->parked = NULL;
    }
}

int hy_cl_pi(hy_cl *cl, const hy_cl_opts *o, uint64_t seed, uint64_t n, hy_cl_pi_result *r,
             hy_error *err)
{
    struct hy_cl_dev *d = begin_job(cl, o);
    int rc = hy_cl_pi_job(cl, o, seed, n, r, err);
    end_job(d, rc);
    return rc;
}

int hy_cl_sort(hy_cl *cl, const hy_cl_opts *o, int dtype, void *data, size_t n,
               hy_cl_sort_result *r, hy_error *err)
{
    struct hy_cl_dev *d = begin_job(cl, o);
    int rc = hy_cl_sort_job(cl, o, dtype, data, n, r, err);
    end_job(d, rc);
    return rc;
}

int hy_cl_open(const hy_cl_config *cfg, hy_cl **out, hy_error *err)
{
    if (!out)
        return hy_error_set(err, HY_EINVAL, "no place for the OpenCL state given");
    *out = NULL;
    int forced;
    int rc = variant_from_env(&forced, err);
    if (rc)
        return rc;
    hy_cl *cl = calloc(1, sizeof *cl);
    if (!cl)
        return hy_error_set(err, HY_ENOMEM, "out of memory for the OpenCL state");
    if (cfg && cfg->cache_dir && cfg->cache_dir[0]) {
        cl->cache_dir = strdup(cfg->cache_dir);
        if (!cl->cache_dir) {
            free(cl);
            return hy_error_set(err, HY_ENOMEM, "out of memory for the cache path");
        }
    }
    cl->test_break_build = cfg && cfg->test_break_build;
    cl->test_fault_job = cfg ? cfg->test_fault_job : 0;

    /* No platform, or a platform without devices, is a normal state: zero devices. */
    cl_platform_id plats[MAX_PLATFORMS];
    cl_uint np = 0;
    if (clGetPlatformIDs(MAX_PLATFORMS, plats, &np) != CL_SUCCESS)
        np = 0;
    np = np < MAX_PLATFORMS ? np : MAX_PLATFORMS;

    cl_device_id ids[MAX_DEVICES];
    cl_platform_id owner[MAX_DEVICES];
    unsigned total = 0;
    for (cl_uint p = 0; p < np && total < MAX_DEVICES; p++) {
        cl_uint nd = 0;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, MAX_DEVICES - total, ids + total,
                           &nd) != CL_SUCCESS)
            continue;
        nd = nd < MAX_DEVICES - total ? nd : MAX_DEVICES - total;
        for (cl_uint i = 0; i < nd; i++)
            owner[total + i] = plats[p];
        total += nd;
    }
    if (total > 0) {
        cl->dev = calloc(total, sizeof *cl->dev);
        if (!cl->dev) {
            hy_cl_close(cl);
            return hy_error_set(err, HY_ENOMEM, "out of memory for %u devices", total);
        }
    }
    cl->ndev = total;
    for (unsigned i = 0; i < total; i++) {
        cl->dev[i].id = ids[i];
        cl->dev[i].platform = owner[i];
        describe(&cl->dev[i], i);
        choose_variant(&cl->dev[i], forced);
        own(cl, &cl->dev[i]);
    }
    *out = cl;
    return 0;
}

void hy_cl_close(hy_cl *cl)
{
    if (!cl)
        return;
    for (unsigned i = 0; i < cl->ndev; i++)
        disown(&cl->dev[i]);
    free(cl->dev);
    free(cl->cache_dir);
    free(cl);
}

unsigned hy_cl_device_count(const hy_cl *cl) { return cl ? cl->ndev : 0; }

int hy_cl_describe(const hy_cl *cl, unsigned index, hy_cl_device_info *info, hy_error *err)
{
    if (!cl || !info)
        return hy_error_set(err, HY_EINVAL, "no OpenCL state or no place for the answer");
    if (index >= cl->ndev)
        return hy_error_set(err, HY_EINVAL, "no OpenCL device %u: this machine has %u", index,
                            cl->ndev);
    *info = cl->dev[index].info;
    return 0;
}

const char *hy_cl_type_label(const hy_cl_device_info *info)
{
    switch (info->type) {
    case HY_CL_TYPE_GPU: return "GPU";
    case HY_CL_TYPE_CPU: return info->pocl_cpu ? "PoCL CPU" : "CPU";
    case HY_CL_TYPE_ACCELERATOR: return "accelerator";
    }
    return "other";
}

const char *hy_cl_variant_label(const hy_cl_device_info *info)
{
    if (info->variant_forced)
        return info->gpu_variant ? "GPU kernels, forced by " VARIANT_ENV
                                 : "CPU kernels, forced by " VARIANT_ENV;
    return info->gpu_variant ? "GPU kernels" : "CPU kernels";
}

int hy_cl_device(hy_cl *cl, unsigned index, struct hy_cl_dev **out, hy_error *err)
{
    if (!cl)
        return hy_error_set(err, HY_EINVAL, "no OpenCL state given");
    if (index >= cl->ndev)
        return hy_error_set(err, HY_EINVAL, "no OpenCL device %u: this machine has %u", index,
                            cl->ndev);
    struct hy_cl_dev *d = &cl->dev[index];
    if (!d->info.usable)
        return hy_error_set(err, HY_EBACKEND, "OpenCL device %u (%s) is not usable: %s", index,
                            d->info.name, d->info.problem);
    *out = d;
    return 0;
}

int hy_cl_kernel(struct hy_cl_dev *d, int prog, const char *name, cl_kernel *out,
                 hy_error *err)
{
    cl_int rc;
    *out = clCreateKernel(d->prog[prog], name, &rc);
    return hy_cl_fail(rc, "clCreateKernel", err);
}

uint64_t hy_cl_event_ns(cl_event ev)
{
    cl_ulong start = 0, end = 0;
    if (!ev ||
        clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_START, sizeof start, &start, NULL) !=
            CL_SUCCESS ||
        clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof end, &end, NULL) !=
            CL_SUCCESS)
        return 0;
    return end > start ? end - start : 0;
}

void hy_cl_timing_add(hy_cl_timing *sum, const hy_cl_timing *t)
{
    sum->h2d_ns += t->h2d_ns;
    sum->kernel_ns += t->kernel_ns;
    sum->d2h_ns += t->d2h_ns;
    sum->overlap_ns += t->overlap_ns;
    sum->launches += t->launches;
    sum->passes += t->passes;
    sum->bytes_moved += t->bytes_moved;
}
