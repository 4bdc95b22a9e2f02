/* hybrid-bench: runs the pi or sort job on the CPU engine under every backend, thread count
 * and mode asked for, and prints medians, spreads, throughput and speed-up over serial —
 * the side-by-side figures hybridd exists to show. A benchmark, not a test. */
#include "cl.h"
#include "host.h"
#include "runner.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_LIST 32

struct options {
    int job; /* 'p' or 's' */
    uint64_t n;
    uint64_t seed;
    int dtype;
    const char *dist;
    int backends[MAX_LIST];
    unsigned nbackends;
    unsigned threads[MAX_LIST];
    unsigned nthreads;
    int modes[2];
    unsigned nmodes;
    unsigned repeat;
    int nogil;
    uint32_t switch_us;
    int json;
    int device; /* OpenCL device index; -1: the first usable one */
    const char *input; /* sort: a .npy file's array instead of a drawn one (NULL: none) */
    bool drawn_opts;   /* -n, --dtype, --dist or --seed given (which --input leaves out) */
};

struct row {
    int backend;
    unsigned threads;
    int mode;
    bool nogil;
    uint64_t median_ns, min_ns, max_ns;
    double throughput; /* items per second, all copies together */
    double speedup;    /* throughput over serial's */
    double handoffs;   /* locked: in the median run */
    double wait_share; /* locked: lock wait over thread time */
    uint64_t hits;     /* pi */
    bool checked;      /* sort: output verified ascending */
    /* opencl: the device's label and the median run's breakdown */
    char device[32];
    uint64_t h2d_ns, kernel_ns, d2h_ns;
};

/* The engines a run may use: the CPU engine always, OpenCL when a row asks for it. */
struct engines {
    hy_host *host;
    hy_cl *cl;
    unsigned cl_device;
    char cl_label[32];
    char cl_name[128];
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hybrid-bench pi|sort [options]\n"
            "  -n N                  samples (pi) or elements (sort); accepts 1e9, 10M, 2^30\n"
            "  --seed S              seed (default 42)\n"
            "  --dtype D             sort: i32 u32 i64 u64 f32 f64 (default f64)\n"
            "  --dist D              sort: uniform normal sorted reversed few-unique\n"
            "  --input FILE          sort: the array of a .npy file (1-D, one of the six\n"
            "                        dtypes) instead of a drawn one; not with -n, --seed,\n"
            "                        --dtype or --dist\n"
            "  --backends LIST       serial,native,locked,opencl (default: all four when an\n"
            "                        OpenCL device is usable, else the three CPU ones)\n"
            "  --device D            OpenCL device index (default: the first usable one)\n"
            "  --threads LIST        default 1,2\n"
            "  --modes LIST          split,replicate (default split)\n"
            "  --repeat R            timed repetitions after one warm-up (default 5)\n"
            "  --nogil | --hold-lock override the job's lock choice on the locked backend\n"
            "  --switch-interval US  locked runtime switch interval (default 5000)\n"
            "  --json                one JSON document instead of the table\n");
}

/* Accepts 12345, 1e9, 2.5e6, 10k/10M/10G (decimal), 2^30. */
static int parse_count(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (strchr(s, '^')) {
        unsigned long long b = strtoull(s, &end, 10);
        if (*end != '^')
            return -1;
        unsigned long long e = strtoull(end + 1, &end, 10);
        if (*end || errno || b < 2 || e > 63)
            return -1;
        double v = pow((double)b, (double)e);
        if (v > 9.2e18)
            return -1;
        uint64_t r = 1;
        for (unsigned long long i = 0; i < e; i++)
            r *= b;
        *out = r;
        return 0;
    }
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return -1;
    double mult = 1;
    if (*end == 'k' || *end == 'K')
        mult = 1e3, end++;
    else if (*end == 'M')
        mult = 1e6, end++;
    else if (*end == 'G')
        mult = 1e9, end++;
    if (*end || v * mult > 9.2e18)
        return -1;
    *out = (uint64_t)llround(v * mult);
    return 0;
}

/* Splits a comma list; `one` parses an item into slot i. */
static int parse_list(const char *s, unsigned *count, int (*one)(const char *, unsigned, void *),
                      void *slots)
{
    char buf[256];
    if (strlen(s) >= sizeof buf)
        return -1;
    strcpy(buf, s);
    *count = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (*count >= MAX_LIST || one(tok, *count, slots) != 0)
            return -1;
        (*count)++;
    }
    return *count ? 0 : -1;
}

static int one_backend(const char *t, unsigned i, void *slots)
{
    int b = hy_backend_parse(t);
    if (b == 0)
        return -1;
    ((int *)slots)[i] = b;
    return 0;
}

static int one_thread(const char *t, unsigned i, void *slots)
{
    uint64_t v;
    if (parse_count(t, &v) != 0 || v == 0 || v > HY_HOST_MAX_THREADS)
        return -1;
    ((unsigned *)slots)[i] = (unsigned)v;
    return 0;
}

static int one_mode(const char *t, unsigned i, void *slots)
{
    int m = strcmp(t, "split") == 0 ? HY_MODE_SPLIT
            : strcmp(t, "replicate") == 0 ? HY_MODE_REPLICATE : 0;
    if (!m || i >= 2)
        return -1;
    ((int *)slots)[i] = m;
    return 0;
}

/* One option with a value: 0, or -1 for a name or value it does not take. */
static int parse_value(const char *a, const char *v, struct options *o)
{
    uint64_t x;
    if (strcmp(a, "--input") == 0) {
        o->input = v;
        return 0;
    }
    o->drawn_opts |= strcmp(a, "-n") == 0 || strcmp(a, "--seed") == 0 ||
                     strcmp(a, "--dtype") == 0 || strcmp(a, "--dist") == 0;
    if (strcmp(a, "-n") == 0)
        return parse_count(v, &o->n) != 0 || o->n == 0 ? -1 : 0;
    if (strcmp(a, "--device") == 0) {
        if (parse_count(v, &x) != 0 || x > 1000)
            return -1;
        o->device = (int)x;
        return 0;
    }
    if (strcmp(a, "--seed") == 0)
        return parse_count(v, &o->seed);
    if (strcmp(a, "--dtype") == 0)
        return (o->dtype = hy_dtype_parse(v)) == 0 ? -1 : 0;
    if (strcmp(a, "--dist") == 0) {
        o->dist = v;
        return 0;
    }
    if (strcmp(a, "--backends") == 0)
        return parse_list(v, &o->nbackends, one_backend, o->backends);
    if (strcmp(a, "--threads") == 0)
        return parse_list(v, &o->nthreads, one_thread, o->threads);
    if (strcmp(a, "--modes") == 0)
        return parse_list(v, &o->nmodes, one_mode, o->modes);
    if (strcmp(a, "--repeat") == 0) {
        if (parse_count(v, &x) != 0 || x == 0 || x > 1000)
            return -1;
        o->repeat = (unsigned)x;
        return 0;
    }
    if (strcmp(a, "--switch-interval") == 0) {
        if (parse_count(v, &x) != 0 || x == 0 || x > 10000000)
            return -1;
        o->switch_us = (uint32_t)x;
        return 0;
    }
    return -1;
}

static void set_defaults(struct options *o)
{
    o->n = o->job == 'p' ? 1000000000u : 10000000u;
    o->seed = 42;
    o->dtype = HY_DT_F64;
    o->dist = "uniform";
    o->backends[0] = HY_BACKEND_SERIAL;
    o->backends[1] = HY_BACKEND_NATIVE;
    o->backends[2] = HY_BACKEND_LOCKED;
    o->backends[3] = HY_BACKEND_OPENCL;
    o->nbackends = 0; /* filled after parsing: opencl only when a device is usable */
    o->device = -1;
    o->threads[0] = 1;
    o->threads[1] = 2;
    o->nthreads = 2;
    o->modes[0] = HY_MODE_SPLIT;
    o->nmodes = 1;
    o->repeat = 5;
}

static int parse_args(int argc, char **argv, struct options *o)
{
    if (argc < 2)
        return -1;
    if (strcmp(argv[1], "pi") == 0)
        o->job = 'p';
    else if (strcmp(argv[1], "sort") == 0)
        o->job = 's';
    else
        return -1;
    set_defaults(o);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0)
            o->json = 1;
        else if (strcmp(a, "--nogil") == 0)
            o->nogil = HY_NOGIL_RELEASE;
        else if (strcmp(a, "--hold-lock") == 0)
            o->nogil = HY_NOGIL_HOLD;
        else if (i + 1 >= argc || parse_value(a, argv[i + 1], o) != 0)
            return -1;
        else
            i++;
    }
    if (o->input)
        return o->job == 's' && !o->drawn_opts ? 0 : -1;
    const char *dists[] = {"uniform", "normal", "sorted", "reversed", "few-unique"};
    for (size_t i = 0; i < sizeof dists / sizeof dists[0]; i++)
        if (strcmp(o->dist, dists[i]) == 0)
            return 0;
    return -1;
}

/* ---- sort inputs ---- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

static double unit(uint64_t *s) { return (double)(splitmix(s) >> 11) * 0x1p-53; }

enum dist { D_UNIFORM, D_NORMAL, D_SORTED, D_REVERSED, D_FEW };

/* One value of the distribution as a double, before conversion to the dtype. The name is
 * looked up once a fill: four string compares an element were seconds of set-up at 10^8 and
 * 3-9% of a profile's samples. */
static double draw(enum dist d, uint64_t *s, size_t i, size_t n)
{
    switch (d) {
    case D_NORMAL: {
        double u = unit(s), v = unit(s);
        return sqrt(-2.0 * log(u > 0 ? u : 0x1p-53)) * cos(2 * M_PI * v);
    }
    case D_SORTED: return (double)i / (double)n;
    case D_REVERSED: return (double)(n - i) / (double)n;
    case D_FEW: return (double)(splitmix(s) % 16) / 16.0;
    case D_UNIFORM: break;
    }
    return unit(s);
}

/* Fills an array like numpy.random.random (floats in [0, 1)) or, for ints, the whole range
 * scaled from the same draw (uniform i64: random bits); normal ints are scaled by 2^20. */
static void fill(void *a, int dtype, size_t n, const char *dist, uint64_t seed)
{
    uint64_t s = seed;
    bool full_range = strcmp(dist, "normal") != 0, uniform = strcmp(dist, "uniform") == 0;
    enum dist d = uniform                           ? D_UNIFORM
                  : !full_range                     ? D_NORMAL
                  : strcmp(dist, "sorted") == 0     ? D_SORTED
                  : strcmp(dist, "reversed") == 0   ? D_REVERSED
                  : strcmp(dist, "few-unique") == 0 ? D_FEW
                                                    : D_UNIFORM;
    for (size_t i = 0; i < n; i++) {
        double x = draw(d, &s, i, n);
        double scaled32 = full_range ? x * 4294967295.0 : x * 1048576.0;
        double scaled64 = full_range ? x * 18446744073709549568.0 : x * 1048576.0;
        switch (dtype) {
        case HY_DT_F64: ((double *)a)[i] = x; break;
        case HY_DT_F32: ((float *)a)[i] = (float)x; break;
        case HY_DT_U32: ((uint32_t *)a)[i] = (uint32_t)fabs(scaled32); break;
        case HY_DT_I32: ((int32_t *)a)[i] = (int32_t)(int64_t)(scaled32 - (full_range ? 2147483648.0 : 0)); break;
        case HY_DT_U64: ((uint64_t *)a)[i] = (uint64_t)fabs(scaled64); break;
        case HY_DT_I64: /* uniform: all 64 bits random (a double's 53 would leave the low
                         * bits zero); the other orders map x onto the range monotonically */
            ((int64_t *)a)[i] =
                uniform ? (int64_t)(splitmix(&s) ^ (uint64_t)(x * 1e6))
                : full_range ? (int64_t)((uint64_t)fabs(scaled64) ^ ((uint64_t)1 << 63))
                             : (int64_t)scaled64;
            break;
        }
    }
}

/* Whether a sorted float array is ascending with NaNs last; ints by value. */
static bool ascending(const void *a, int dtype, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        switch (dtype) {
        case HY_DT_F64: {
            double x = ((const double *)a)[i - 1], y = ((const double *)a)[i];
            if (isnan(y))
                continue;
            if (isnan(x) || x > y)
                return false;
            break;
        }
        case HY_DT_F32: {
            float x = ((const float *)a)[i - 1], y = ((const float *)a)[i];
            if (isnan(y))
                continue;
            if (isnan(x) || x > y)
                return false;
            break;
        }
        case HY_DT_I32: if (((const int32_t *)a)[i - 1] > ((const int32_t *)a)[i]) return false; break;
        case HY_DT_U32: if (((const uint32_t *)a)[i - 1] > ((const uint32_t *)a)[i]) return false; break;
        case HY_DT_I64: if (((const int64_t *)a)[i - 1] > ((const int64_t *)a)[i]) return false; break;
        case HY_DT_U64: if (((const uint64_t *)a)[i - 1] > ((const uint64_t *)a)[i]) return false; break;
        }
    }
    return true;
}

/* Reads the .npy file at path whole, through common's header parser (the one hybridctl
 * and the MPI ranks use): *dtype, *n and a malloc'd copy of its elements in *data. */
static int read_npy(const char *path, int *dtype, uint64_t *n, void **data, hy_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return hy_error_set(err, HY_EINVAL, "cannot open %s: %s", path, strerror(errno));
    unsigned char pre[HY_NPY_PREFIX_MAX];
    size_t have = fread(pre, 1, sizeof pre, f);
    uint64_t at = 0, hlen = 0;
    char *h = NULL;
    int rc = hy_npy_prefix(path, pre, have, &at, &hlen, err);
    if (!rc && (h = malloc(hlen)) == NULL)
        rc = hy_error_set(err, HY_ENOMEM, "no memory for %s's header", path);
    if (!rc && (fseek(f, (long)at, SEEK_SET) != 0 || fread(h, 1, hlen, f) != hlen))
        rc = hy_error_set(err, HY_EINVAL, "%s ends inside its header", path);
    if (!rc)
        rc = hy_npy_dict(path, h, hlen, dtype, n, err);
    free(h);
    size_t bytes = rc ? 0 : (size_t)*n * hy_dtype_size(*dtype);
    if (!rc && *n == 0)
        rc = hy_error_set(err, HY_EINVAL, "%s holds no elements", path);
    if (!rc && (*data = malloc(bytes)) == NULL)
        rc = hy_error_set(err, HY_ENOMEM, "no memory for %s's %zu bytes", path, bytes);
    if (!rc && fread(*data, 1, bytes, f) != bytes) {
        free(*data);
        *data = NULL;
        rc = hy_error_set(err, HY_EINVAL, "%s ends short of its %" PRIu64 " elements", path, *n);
    }
    fclose(f);
    return rc;
}

/* ---- running ---- */

/* Runs one configuration through the daemon's runner (a warm-up, then o->repeat timed
 * runs), so the bench and the daemon measure exactly the same way. */
static int run_config(struct engines *e, const struct options *o, const hy_run_opts *ro,
                      void *input, void *work, struct row *r)
{
    hy_engines eng = {.host = e->host, .cl = e->cl};
    const hy_job_spec spec = {.kind = hy_kind_get(o->job == 'p' ? HY_JOB_PI : HY_JOB_SORT),
                              .n = o->n, .seed = o->seed, .dtype = o->dtype,
                              .mode = ro->mode, .nogil = ro->nogil,
                              .switch_interval_us = ro->switch_interval_us,
                              .repeat = o->repeat, .warmup = 1, .device = e->cl_device};
    const hy_row_spec rs = {.backend = ro->backend, .threads = ro->threads};
    const hy_run_io io = {.array = work, .array_fd = -1, .pristine = input};
    hy_result_row row;
    uint64_t busy;
    hy_error err = {0};
    int rc = hy_runner_run(&eng, &spec, &rs, &io, &row, &busy, &err);
    if (rc != 0) {
        fprintf(stderr, "hybrid-bench: %s on %u thread(s): %s (%s)\n",
                hy_backend_name(ro->backend), ro->threads, err.msg, hy_err_name(rc));
        return rc;
    }
    memset(r, 0, sizeof *r);
    r->backend = ro->backend;
    r->threads = ro->threads;
    r->mode = ro->mode;
    r->nogil = row.flags & HY_ROW_NOGIL;
    r->median_ns = row.median_ns;
    r->min_ns = row.min_ns;
    r->max_ns = row.max_ns;
    r->hits = row.hits;
    r->checked = o->job == 's' && ascending(work, o->dtype, (size_t)o->n);
    r->h2d_ns = row.h2d_ns;
    r->kernel_ns = row.kernel_ns;
    r->d2h_ns = row.d2h_ns;
    /* Lock figures are the median run's: they add up with the time shown. */
    r->handoffs = (double)row.lock_handoffs;
    r->wait_share = row.threads && row.median_ns
                        ? (double)row.lock_wait_ns / ((double)row.median_ns * row.threads)
                        : 0;
    snprintf(r->device, sizeof r->device, "%s",
             ro->backend == HY_BACKEND_OPENCL ? e->cl_label : "CPU");
    r->throughput = (double)o->n * row.copies / ((double)r->median_ns * 1e-9);
    return 0;
}

static void cpu_model(char *buf, size_t len)
{
    snprintf(buf, len, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && colon) {
            colon += 2;
            colon[strcspn(colon, "\n")] = 0;
            snprintf(buf, len, "%s", colon);
            break;
        }
    }
    fclose(f);
}

static void print_table(const struct options *o, const struct engines *e,
                        const struct row *rows, unsigned nrows, const char *cpu)
{
    const char *unit = o->job == 'p' ? "samples/s" : "elements/s";
    if (o->job == 'p')
        printf("pi: n = %llu samples per copy, seed %llu, CPU kernel %s\n",
               (unsigned long long)o->n, (unsigned long long)o->seed, hy_host_pi_kernel());
    else
        printf("sort: n = %llu %s, %s\n", (unsigned long long)o->n, hy_dtype_name(o->dtype),
               o->dist);
    printf("machine: %s, %ld CPUs online; median of %u runs after a warm-up\n", cpu,
           sysconf(_SC_NPROCESSORS_ONLN), o->repeat);
    if (e->cl)
        printf("opencl: device %u, %s (%s)\n", e->cl_device, e->cl_name, e->cl_label);
    printf("\n%-7s %-8s %7s %-9s %-5s %10s %10s %10s %12s %8s %6s %9s %6s  %s\n", "backend",
           "device", "threads", "mode", "lock", "median ms", "min ms", "max ms", unit,
           "speedup", "eff", "handoffs", "wait", "h2d/kernel/d2h ms");
    for (unsigned i = 0; i < nrows; i++) {
        const struct row *r = &rows[i];
        const char *lock = r->backend != HY_BACKEND_LOCKED ? "-" : r->nogil ? "nogil" : "held";
        char hand[32] = "-", wait[32] = "-", split[64] = "-", threads[16] = "-",
             mode[16] = "-", eff[16] = "-";
        if (r->backend == HY_BACKEND_LOCKED) {
            snprintf(hand, sizeof hand, "%.0f", r->handoffs);
            snprintf(wait, sizeof wait, "%.0f%%", 100 * r->wait_share);
        }
        if (r->backend == HY_BACKEND_OPENCL) {
            snprintf(split, sizeof split, "%.1f/%.1f/%.1f", r->h2d_ns / 1e6, r->kernel_ns / 1e6,
                     r->d2h_ns / 1e6);
        } else {
            snprintf(threads, sizeof threads, "%u", r->threads);
            snprintf(mode, sizeof mode, "%s", hy_mode_name(r->mode));
            snprintf(eff, sizeof eff, "%.0f%%", 100 * r->speedup / r->threads);
        }
        printf("%-7s %-8s %7s %-9s %-5s %10.2f %10.2f %10.2f %12.3e %7.2fx %6s %9s %6s  %s\n",
               hy_backend_name(r->backend), r->device, threads, mode, lock, r->median_ns / 1e6,
               r->min_ns / 1e6, r->max_ns / 1e6, r->throughput, r->speedup, eff, hand, wait,
               split);
    }
    if (o->job == 'p' && nrows)
        printf("\nhits %llu, estimate %.9f (identical on every row)\n",
               (unsigned long long)rows[0].hits, 4.0 * (double)rows[0].hits / (double)o->n);
}

static void print_json(const struct options *o, const struct engines *e,
                       const struct row *rows, unsigned nrows, const char *cpu)
{
    printf("{\"job\":\"%s\",\"n\":%llu,\"seed\":%llu,", o->job == 'p' ? "pi" : "sort",
           (unsigned long long)o->n, (unsigned long long)o->seed);
    if (o->job == 'p')
        printf("\"pi_kernel\":\"%s\",", hy_host_pi_kernel());
    else
        printf("\"dtype\":\"%s\",\"dist\":\"%s\",", hy_dtype_name(o->dtype), o->dist);
    printf("\"machine\":{\"cpu\":\"%s\",\"cpus\":%ld},\"repeat\":%u,", cpu,
           sysconf(_SC_NPROCESSORS_ONLN), o->repeat);
    if (e->cl)
        printf("\"opencl_device\":{\"index\":%u,\"name\":\"%s\",\"label\":\"%s\"},",
               e->cl_device, e->cl_name, e->cl_label);
    printf("\"rows\":[");
    for (unsigned i = 0; i < nrows; i++) {
        const struct row *r = &rows[i];
        printf("%s{\"backend\":\"%s\",\"device\":\"%s\",", i ? "," : "",
               hy_backend_name(r->backend), r->device);
        if (r->backend == HY_BACKEND_OPENCL)
            printf("\"h2d_ns\":%llu,\"kernel_ns\":%llu,\"d2h_ns\":%llu,",
                   (unsigned long long)r->h2d_ns, (unsigned long long)r->kernel_ns,
                   (unsigned long long)r->d2h_ns);
        else
            printf("\"threads\":%u,\"mode\":\"%s\",", r->threads, hy_mode_name(r->mode));
        if (r->backend == HY_BACKEND_LOCKED)
            printf("\"nogil\":%s,\"handoffs\":%.1f,\"wait_share\":%.4f,",
                   r->nogil ? "true" : "false", r->handoffs, r->wait_share);
        printf("\"median_ns\":%llu,\"min_ns\":%llu,\"max_ns\":%llu,\"throughput\":%.6e,"
               "\"speedup\":%.4f",
               (unsigned long long)r->median_ns, (unsigned long long)r->min_ns,
               (unsigned long long)r->max_ns, r->throughput, r->speedup);
        if (o->job == 'p')
            printf(",\"hits\":%llu", (unsigned long long)r->hits);
        else
            printf(",\"checked\":%s", r->checked ? "true" : "false");
        printf("}");
    }
    printf("]}\n");
}

/* Opens OpenCL and picks the device: the one asked for, or the first usable one. Returns
 * 0 with e->cl NULL when there is none and none was asked for. */
static int open_opencl(struct engines *e, const struct options *o, bool required)
{
    hy_error err = {0};
    if (hy_cl_open(NULL, &e->cl, &err) != 0) {
        fprintf(stderr, "hybrid-bench: %s\n", err.msg);
        return -1;
    }
    unsigned n = hy_cl_device_count(e->cl);
    for (unsigned i = 0; i < n; i++) {
        hy_cl_device_info in;
        if (hy_cl_describe(e->cl, i, &in, &err) != 0)
            continue;
        if (o->device >= 0 && (unsigned)o->device != i)
            continue;
        if (!in.usable) {
            if (o->device >= 0) {
                fprintf(stderr, "hybrid-bench: OpenCL device %u (%s) is not usable: %s\n", i,
                        in.name, in.problem);
                return -1;
            }
            continue;
        }
        e->cl_device = i;
        snprintf(e->cl_label, sizeof e->cl_label, "%s", hy_cl_type_label(&in));
        snprintf(e->cl_name, sizeof e->cl_name, "%s", in.name);
        return 0;
    }
    hy_cl_close(e->cl);
    e->cl = NULL;
    if (required || o->device >= 0) {
        fprintf(stderr, "hybrid-bench: no usable OpenCL device%s (this machine has %u)\n",
                o->device >= 0 ? " with that index" : "", n);
        return -1;
    }
    return 0;
}

/* Runs every configuration into rows: serial first (every speed-up is measured against it,
 * and it is a row only when listed), then each listed backend per mode and thread count. */
static int run_rows(struct engines *e, const struct options *o, void *input, void *work,
                    struct row *rows, unsigned *nrows)
{
    unsigned n = 0;
    int rc;
    hy_run_opts base = {.backend = HY_BACKEND_SERIAL, .threads = 1, .mode = HY_MODE_SPLIT};
    if ((rc = run_config(e, o, &base, input, work, &rows[n])) != 0)
        return rc;
    double serial = rows[n].throughput;
    bool serial_listed = false;
    for (unsigned b = 0; b < o->nbackends; b++)
        serial_listed |= o->backends[b] == HY_BACKEND_SERIAL;
    if (serial_listed)
        n++;
    for (unsigned b = 0; b < o->nbackends; b++) {
        if (o->backends[b] == HY_BACKEND_SERIAL)
            continue;
        /* A device has no thread count or mode of ours: one row. */
        bool device = o->backends[b] == HY_BACKEND_OPENCL;
        for (unsigned m = 0; m < (device ? 1 : o->nmodes); m++)
            for (unsigned t = 0; t < (device ? 1 : o->nthreads); t++) {
                hy_run_opts ro = {.backend = o->backends[b], .threads = o->threads[t],
                                  .mode = o->modes[m], .nogil = o->nogil,
                                  .switch_interval_us = o->switch_us};
                if ((rc = run_config(e, o, &ro, input, work, &rows[n])) != 0)
                    return rc;
                n++;
            }
    }
    for (unsigned i = 0; i < n; i++)
        rows[i].speedup = rows[i].throughput / serial;
    *nrows = n;
    return 0;
}

/* Every pi row counted the same hits, every sort row's array came back sorted: 1 if not. */
static int check_rows(const struct options *o, const struct row *rows, unsigned nrows)
{
    int rc = 0;
    for (unsigned i = 1; o->job == 'p' && i < nrows; i++)
        if (rows[i].hits != rows[0].hits) {
            fprintf(stderr, "hybrid-bench: %s on %u thread(s) counted %llu hits, not %llu\n",
                    hy_backend_name(rows[i].backend), rows[i].threads,
                    (unsigned long long)rows[i].hits, (unsigned long long)rows[0].hits);
            rc = 1;
        }
    for (unsigned i = 0; o->job == 's' && i < nrows; i++)
        if (!rows[i].checked) {
            fprintf(stderr, "hybrid-bench: %s on %u thread(s) returned an unsorted array\n",
                    hy_backend_name(rows[i].backend), rows[i].threads);
            rc = 1;
        }
    return rc;
}

int main(int argc, char **argv)
{
    struct options o = {0};
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (parse_args(argc, argv, &o) != 0) {
        usage(stderr);
        return 2;
    }
    unsigned max_t = 1;
    for (unsigned i = 0; i < o.nthreads; i++)
        max_t = o.threads[i] > max_t ? o.threads[i] : max_t;

    struct engines e = {0};
    hy_error err = {0};
    void *input = NULL, *work = NULL;
    int rc = hy_host_create(&(hy_host_config){.threads = max_t, .switch_interval_us = o.switch_us},
                            &e.host, &err);
    if (rc) {
        fprintf(stderr, "hybrid-bench: %s\n", err.msg);
        return 1;
    }
    bool asked = o.nbackends > 0, want_cl = !asked;
    for (unsigned b = 0; b < o.nbackends; b++)
        want_cl |= o.backends[b] == HY_BACKEND_OPENCL;
    if (want_cl && (rc = open_opencl(&e, &o, asked)) != 0)
        goto out;
    if (!asked) /* the default: every backend this machine can run */
        o.nbackends = e.cl ? 4 : 3;

    if (o.job == 's') {
        if (o.input) {
            if ((rc = read_npy(o.input, &o.dtype, &o.n, &input, &err)) != 0) {
                fprintf(stderr, "hybrid-bench: %s\n", err.msg);
                goto out;
            }
            o.dist = o.input;
        }
        size_t bytes = (size_t)o.n * hy_dtype_size(o.dtype);
        if (!input)
            input = malloc(bytes);
        work = malloc(bytes);
        if (!input || !work) {
            fprintf(stderr, "hybrid-bench: out of memory for %zu bytes\n", bytes);
            rc = 1;
            goto out;
        }
        if (!o.input)
            fill(input, o.dtype, (size_t)o.n, o.dist, o.seed);
    }

    struct row rows[4 * MAX_LIST * 2 + 1];
    unsigned nrows = 0;
    if ((rc = run_rows(&e, &o, input, work, rows, &nrows)) != 0)
        goto out;
    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    if (o.json)
        print_json(&o, &e, rows, nrows, cpu);
    else
        print_table(&o, &e, rows, nrows, cpu);
    rc = check_rows(&o, rows, nrows);
out:
    free(input);
    free(work);
    hy_cl_close(e.cl);
    hy_host_destroy(e.host);
    return rc ? 1 : 0;
}
