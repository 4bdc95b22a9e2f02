/* tests/cl: a few small pi and sort jobs on every usable OpenCL device, each checked against
 * the CPU engine, in plain C and small enough for a tool that interprets every work-item
 * (tests/cl/oclgrind.sh runs it under Oclgrind). Prints one line per device and one per
 * wrong answer; exits 0 when all are right, 1 when one is not, 77 when there is no usable
 * device.
 *
 * Each job runs in an OpenCL state of its own (hy_cl_open ... hy_cl_close): Oclgrind 21.10's
 * --uninitialized reports reads of a fresh buffer that the kernels wrote in full whenever the
 * buffer lands at the address of one an earlier job released (the same job reports nothing
 * in a fresh context, or with other buffers allocated in between). A job per context keeps
 * its reports to the kernels' own faults. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl.h"
#include "host.h"

#define SKIP 77
#define MAX_N 2500u

static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

/* A new OpenCL state for one job; NULL (and a line on stderr) if it cannot be had. */
static hy_cl *fresh(void)
{
    hy_cl *cl = NULL;
    hy_error err = {0};
    if (hy_cl_open(NULL, &cl, &err) != 0) {
        fprintf(stderr, "cl_cases: %s\n", err.msg);
        return NULL;
    }
    return cl;
}

/* Pi: tiny, odd and ragged counts, two pinned by docs/pi-mapping.md. */
static int pi_cases(unsigned dev)
{
    static const struct {
        uint64_t seed, n;
    } c[] = {{0, 10}, {0, 1000}, {1, 3}, {9, 4097}, {UINT64_C(0xfedcba9876543210), 65}};
    int bad = 0;
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        hy_cl *cl = fresh();
        if (!cl)
            return 1;
        hy_cl_pi_result r;
        hy_error err = {0};
        int rc = hy_cl_pi(cl, &(hy_cl_opts){.device = dev}, c[i].seed, c[i].n, &r, &err);
        hy_cl_close(cl);
        uint64_t want = hy_host_pi_hits_reference(c[i].seed, 0, c[i].n);
        if (rc != 0 || r.hits != want) {
            printf("  WRONG pi seed %" PRIx64 " n %" PRIu64 ": rc %d %s, %" PRIu64
                   " hits, want %" PRIu64 "\n",
                   c[i].seed, c[i].n, rc, err.msg, r.hits, want);
            bad = 1;
        }
    }
    return bad;
}

/* One sort of n elements of `dtype` from raw random bits (NaNs, infinities and -0.0 among
 * the floats) with runs of equal values, against the CPU engine's serial sort. */
static int sort_case(hy_host *host, unsigned dev, int dtype, size_t n, uint64_t seed,
                     unsigned char *in, unsigned char *ref)
{
    size_t size = hy_dtype_size(dtype);
    uint64_t s = seed, v = 0;
    for (size_t i = 0; i < n; i++) {
        if (i % 7 != 0) /* a value repeats up to seven times */
            v = mix(&s);
        memcpy(in + i * size, &v, size); /* little-endian: the low bytes */
    }
    memcpy(ref, in, n * size);
    hy_sort_result hr;
    hy_cl_sort_result r;
    hy_error err = {0};
    hy_run_opts o = {.backend = HY_BACKEND_SERIAL, .threads = 1};
    if (hy_host_sort(host, dtype, ref, n, &o, &hr, &err) != 0) {
        printf("  reference sort failed: %s\n", err.msg);
        return 1;
    }
    hy_cl *cl = fresh();
    if (!cl)
        return 1;
    int rc = hy_cl_sort(cl, &(hy_cl_opts){.device = dev}, dtype, in, n, &r, &err);
    hy_cl_close(cl);
    if (rc != 0 || memcmp(in, ref, n * size) != 0) {
        printf("  WRONG sort %s n %zu: rc %d %s\n", hy_dtype_name(dtype), n, rc,
               rc ? err.msg : "(bytes differ from the CPU engine's)");
        return 1;
    }
    return 0;
}

/* Sort: every dtype with 3 elements; 32- and 64-bit keys with MAX_N (a GPU-variant block is
 * 2048 elements, so the second block is short). */
static int sort_cases(hy_host *host, unsigned dev, unsigned char *in, unsigned char *ref)
{
    static const int dtypes[] = {HY_DT_I32, HY_DT_U32, HY_DT_I64,
                                 HY_DT_U64, HY_DT_F32, HY_DT_F64};
    int bad = 0;
    for (size_t t = 0; t < sizeof dtypes / sizeof dtypes[0]; t++)
        bad |= sort_case(host, dev, dtypes[t], 3, 0x5EED + t, in, ref);
    bad |= sort_case(host, dev, HY_DT_F32, MAX_N, 0xF32, in, ref);
    bad |= sort_case(host, dev, HY_DT_I64, MAX_N, 0x164, in, ref);
    return bad;
}

int main(void)
{
    hy_cl *cl = NULL;
    hy_host *host = NULL;
    hy_error err = {0};
    unsigned char *in = malloc(MAX_N * 8), *ref = malloc(MAX_N * 8);
    int status = 1;
    if (!in || !ref) {
        fprintf(stderr, "cl_cases: out of memory\n");
        goto out;
    }
    if (hy_host_create(&(hy_host_config){.threads = 1}, &host, &err) != 0) {
        fprintf(stderr, "cl_cases: %s\n", err.msg);
        goto out;
    }
    if (!(cl = fresh())) /* for the list of devices */
        goto out;
    unsigned ran = 0;
    int bad = 0;
    for (unsigned d = 0; d < hy_cl_device_count(cl); d++) {
        hy_cl_device_info info;
        if (hy_cl_describe(cl, d, &info, &err) != 0) {
            fprintf(stderr, "cl_cases: %s\n", err.msg);
            goto out;
        }
        printf("device %u: %s (%s, %s): %s\n", d, info.name, info.platform,
               hy_cl_variant_label(&info), info.usable ? "runs" : info.problem);
        fflush(stdout);
        if (!info.usable)
            continue;
        bad |= pi_cases(d);
        bad |= sort_cases(host, d, in, ref);
        ran++;
    }
    status = ran == 0 ? SKIP : bad;
out:
    hy_cl_close(cl);
    hy_host_destroy(host);
    free(in);
    free(ref);
    return status;
}
