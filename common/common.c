/* common: error formatting, dtype tables and the clock shared by every module. */
#include "common.h"

#include <inttypes.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int hy_error_set(hy_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *hy_err_name(int code)
{
    switch (code) {
    case HY_OK: return "OK";
    case HY_EINVAL: return "EINVAL";
    case HY_ENOMEM: return "ENOMEM";
    case HY_ECANCELED: return "ECANCELED";
    case HY_ELIMIT: return "ELIMIT";
    case HY_EDTYPE: return "EDTYPE";
    case HY_ESYS: return "ESYS";
    case HY_EBACKEND: return "EBACKEND";
    case HY_EINTERNAL: return "EINTERNAL";
    case HY_EPROTO: return "EPROTO";
    case HY_EVERSION: return "EVERSION";
    case HY_ETYPE: return "ETYPE";
    case HY_EBUSY: return "EBUSY";
    case HY_EPERM: return "EPERM";
    case HY_EWORKER: return "EWORKER";
    }
    return "EUNKNOWN";
}

static const struct {
    int dtype;
    size_t size;
    const char *name;
    const char *numpy;
} dtypes[] = {
    {HY_DT_I32, 4, "i32", "int32"},   {HY_DT_U32, 4, "u32", "uint32"},
    {HY_DT_I64, 8, "i64", "int64"},   {HY_DT_U64, 8, "u64", "uint64"},
    {HY_DT_F32, 4, "f32", "float32"}, {HY_DT_F64, 8, "f64", "float64"},
};

size_t hy_dtype_size(int dtype)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (dtypes[i].dtype == dtype)
            return dtypes[i].size;
    return 0;
}

const char *hy_dtype_name(int dtype)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (dtypes[i].dtype == dtype)
            return dtypes[i].name;
    return NULL;
}

int hy_check_sort_args(int dtype, const void *data, size_t n, size_t *size, hy_error *err)
{
    *size = hy_dtype_size(dtype);
    if (*size == 0)
        return hy_error_set(err, HY_EDTYPE,
                            "unknown dtype %d (i32, u32, i64, u64, f32 or f64)", dtype);
    if (!data && n > 0)
        return hy_error_set(err, HY_EINVAL, "no array given for %zu elements", n);
    return 0;
}

int hy_dtype_parse(const char *s)
{
    if (!s)
        return 0;
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(s, dtypes[i].name) == 0 || strcmp(s, dtypes[i].numpy) == 0)
            return dtypes[i].dtype;
    return 0;
}

uint64_t hy_now_ns(void)
{
    struct timespec ts;
    /* CLOCK_MONOTONIC cannot fail with a valid pointer on Linux; a zero would only make a
     * timing wrong, never a result. */
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The backends: the one list every module and client names them from. A row left out is
 * caught by tests/ipc's backend_and_transport_names (every backend to the count is named). */
static const struct {
    const char *name, *about;
} backends[HY_BACKEND_COUNT + 1] = {
    [HY_BACKEND_SERIAL] = {"serial",
                           "one thread: the baseline every speed-up is measured against"},
    [HY_BACKEND_NATIVE] = {"native",
                           "threads with no global lock (numba nogil=True, C extensions)"},
    [HY_BACKEND_LOCKED] = {"locked",
                           "threads under one runtime-wide lock, a model of CPython's GIL"},
    [HY_BACKEND_OPENCL] = {"opencl",
                           "kernels on an OpenCL device, a GPU or the CPU through PoCL"},
    [HY_BACKEND_PROCESS] = {"process",
                            "single-threaded worker processes, like multiprocessing.Pool"},
    [HY_BACKEND_HYBRID] = {"hybrid",
                           "one job across the native pool and the OpenCL devices at once"},
};

const char *hy_backend_name(int backend)
{
    if (backend < 1 || backend > HY_BACKEND_COUNT)
        return NULL;
    return backends[backend].name;
}

const char *hy_backend_about(int backend)
{
    if (backend < 1 || backend > HY_BACKEND_COUNT)
        return NULL;
    return backends[backend].about;
}

int hy_backend_parse(const char *s)
{
    if (!s)
        return 0;
    for (int b = 1; b <= HY_BACKEND_COUNT; b++)
        if (strcmp(s, backends[b].name) == 0)
            return b;
    return 0;
}

const char *hy_backend_values(char *buf, size_t len)
{
    size_t at = 0;
    if (len == 0)
        return buf;
    buf[0] = '\0';
    for (int b = 1; b <= HY_BACKEND_COUNT; b++) {
        const char *sep = b == 1 ? "" : b == HY_BACKEND_COUNT ? " or " : ", ";
        int w = snprintf(buf + at, len - at, "%s%s (%d)", sep, backends[b].name, b);
        if (w < 0 || (size_t)w >= len - at) {
            buf[at] = '\0'; /* too small: whole entries only, never half a name */
            break;
        }
        at += (size_t)w;
    }
    return buf;
}

const char *hy_mode_name(int mode)
{
    switch (mode) {
    case HY_MODE_SPLIT: return "split";
    case HY_MODE_REPLICATE: return "replicate";
    }
    return NULL;
}

const char *hy_transport_name(int transport)
{
    switch (transport) {
    case HY_TRANSPORT_PIPE: return "pipe";
    case HY_TRANSPORT_SHM: return "shm";
    }
    return NULL;
}

int hy_transport_parse(const char *s)
{
    if (s && strcmp(s, "pipe") == 0)
        return HY_TRANSPORT_PIPE;
    if (s && strcmp(s, "shm") == 0)
        return HY_TRANSPORT_SHM;
    return 0;
}

/* numpy's format.py (_write_array_header, _wrap_header): the dict with its keys sorted,
 * spaces so the first axis can grow to 21 digits, then spaces and a newline up to the next
 * multiple of 64 (a full 64 when already aligned, as numpy does). */
size_t hy_npy_header(int dtype, uint64_t n, char *buf, size_t cap)
{
    /* numpy aligns the data at 64 bytes and leaves room for the first axis to grow to 21
     * digits (format.py: ARRAY_ALIGN, GROWTH_AXIS_MAX_DIGITS). */
    enum { NPY_ALIGN = 64, NPY_GROWTH_DIGITS = 21 };
    if (hy_dtype_size(dtype) == 0)
        return 0;
    const char *kind = dtype == HY_DT_F32 || dtype == HY_DT_F64   ? "f"
                       : dtype == HY_DT_U32 || dtype == HY_DT_U64 ? "u"
                                                                  : "i";
    char dict[160];
    int dlen = snprintf(dict, sizeof dict,
                        "{'descr': '<%s%zu', 'fortran_order': False, 'shape': (%" PRIu64 ",), }", kind,
                        hy_dtype_size(dtype), n);
    if (dlen < 0 || (size_t)dlen >= sizeof dict)
        return 0;
    char digits[24];
    int ndig = snprintf(digits, sizeof digits, "%" PRIu64, n);
    size_t growth = ndig < NPY_GROWTH_DIGITS ? (size_t)(NPY_GROWTH_DIGITS - ndig) : 0;
    size_t hlen = (size_t)dlen + growth + 1; /* + the newline */
    size_t pad = NPY_ALIGN - (10 + hlen) % NPY_ALIGN;
    size_t total = 10 + hlen + pad;
    if (total > cap || hlen + pad > 0xffff)
        return 0;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = 1;
    buf[7] = 0;
    buf[8] = (char)((hlen + pad) & 0xff);
    buf[9] = (char)((hlen + pad) >> 8);
    memcpy(buf + 10, dict, (size_t)dlen);
    memset(buf + 10 + dlen, ' ', growth + pad);
    buf[total - 1] = '\n';
    return total;
}


bool hy_env_flag(const char *name, atomic_int *cache)
{
    int p = atomic_load_explicit(cache, memory_order_relaxed);
    if (p < 0) {
        const char *e = getenv(name);
        p = e && strcmp(e, "1") == 0;
        atomic_store_explicit(cache, p, memory_order_relaxed);
    }
    return p != 0;
}

bool hy_stage_stores(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    return !__builtin_cpu_is("amd");
#else
    return false;
#endif
}

void *hy_huge_alloc(size_t bytes, size_t *rounded)
{
    size_t align = (size_t)2 << 20;
    size_t r = (bytes + align - 1) / align * align;
    void *p = NULL;
    if (r < bytes || posix_memalign(&p, align, r ? r : align) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, r ? r : align, MADV_HUGEPAGE); /* a hint: failure only costs speed */
#endif
    if (rounded)
        *rounded = r ? r : align;
    return p;
}
