/* hybrid-bench: runs the pi or sort job on the CPU engine under every backend, thread count
 * and mode asked for, and prints medians, spreads, throughput and speed-up over serial —
 * the side-by-side figures hybridd exists to show. A benchmark, not a test. */
#include "host.h"

#include <errno.h>
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
};

struct row {
    int backend;
    unsigned threads;
    int mode;
    bool nogil;
    uint64_t median_ns, min_ns, max_ns;
    double throughput; /* items per second, all copies together */
    double speedup;    /* throughput over serial's */
    double handoffs;   /* locked: mean per run */
    double wait_share; /* locked: lock wait over thread time */
    uint64_t hits;     /* pi */
    bool checked;      /* sort: output verified ascending */
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hybrid-bench pi|sort [options]\n"
            "  -n N                  samples (pi) or elements (sort); accepts 1e9, 10M, 2^30\n"
            "  --seed S              seed (default 42)\n"
            "  --dtype D             sort: i32 u32 i64 u64 f32 f64 (default f64)\n"
            "  --dist D              sort: uniform normal sorted reversed few-unique\n"
            "  --backends LIST       default serial,native,locked\n"
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
    if (b == 0 || b == HY_BACKEND_OPENCL)
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
    o->n = o->job == 'p' ? 1000000000u : 10000000u;
    o->seed = 42;
    o->dtype = HY_DT_F64;
    o->dist = "uniform";
    o->backends[0] = HY_BACKEND_SERIAL;
    o->backends[1] = HY_BACKEND_NATIVE;
    o->backends[2] = HY_BACKEND_LOCKED;
    o->nbackends = 3;
    o->threads[0] = 1;
    o->threads[1] = 2;
    o->nthreads = 2;
    o->modes[0] = HY_MODE_SPLIT;
    o->nmodes = 1;
    o->repeat = 5;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int used = 1;
        if (strcmp(a, "--json") == 0)
            o->json = 1, used = 0;
        else if (strcmp(a, "--nogil") == 0)
            o->nogil = HY_NOGIL_RELEASE, used = 0;
        else if (strcmp(a, "--hold-lock") == 0)
            o->nogil = HY_NOGIL_HOLD, used = 0;
        else if (!v)
            return -1;
        else if (strcmp(a, "-n") == 0) {
            if (parse_count(v, &o->n) != 0 || o->n == 0)
                return -1;
        } else if (strcmp(a, "--seed") == 0) {
            if (parse_count(v, &o->seed) != 0)
                return -1;
        } else if (strcmp(a, "--dtype") == 0) {
            if ((o->dtype = hy_dtype_parse(v)) == 0)
                return -1;
        } else if (strcmp(a, "--dist") == 0) {
            o->dist = v;
        } else if (strcmp(a, "--backends") == 0) {
            if (parse_list(v, &o->nbackends, one_backend, o->backends) != 0)
                return -1;
        } else if (strcmp(a, "--threads") == 0) {
            if (parse_list(v, &o->nthreads, one_thread, o->threads) != 0)
                return -1;
        } else if (strcmp(a, "--modes") == 0) {
            if (parse_list(v, &o->nmodes, one_mode, o->modes) != 0)
                return -1;
        } else if (strcmp(a, "--repeat") == 0) {
            uint64_t r;
            if (parse_count(v, &r) != 0 || r == 0 || r > 1000)
                return -1;
            o->repeat = (unsigned)r;
        } else if (strcmp(a, "--switch-interval") == 0) {
            uint64_t us;
            if (parse_count(v, &us) != 0 || us == 0 || us > 10000000)
                return -1;
            o->switch_us = (uint32_t)us;
        } else
            return -1;
        i += used;
    }
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

/* One value of the distribution as a double, before conversion to the dtype. */
static double draw(const char *dist, uint64_t *s, size_t i, size_t n)
{
    if (strcmp(dist, "normal") == 0) {
        double u = unit(s), v = unit(s);
        return sqrt(-2.0 * log(u > 0 ? u : 0x1p-53)) * cos(2 * M_PI * v);
    }
    if (strcmp(dist, "sorted") == 0)
        return (double)i / (double)n;
    if (strcmp(dist, "reversed") == 0)
        return (double)(n - i) / (double)n;
    if (strcmp(dist, "few-unique") == 0)
        return (double)(splitmix(s) % 16) / 16.0;
    return unit(s);
}

/* Fills an array like numpy.random.random (floats in [0, 1)) or, for ints, the whole range
 * scaled from the same draw; normal ints are scaled by 2^20. */
static void fill(void *a, int dtype, size_t n, const char *dist, uint64_t seed)
{
    uint64_t s = seed;
    bool full_range = strcmp(dist, "normal") != 0;
    for (size_t i = 0; i < n; i++) {
        double x = draw(dist, &s, i, n);
        double scaled32 = full_range ? x * 4294967295.0 : x * 1048576.0;
        double scaled64 = full_range ? x * 18446744073709549568.0 : x * 1048576.0;
        switch (dtype) {
        case HY_DT_F64: ((double *)a)[i] = x; break;
        case HY_DT_F32: ((float *)a)[i] = (float)x; break;
        case HY_DT_U32: ((uint32_t *)a)[i] = (uint32_t)fabs(scaled32); break;
        case HY_DT_I32: ((int32_t *)a)[i] = (int32_t)(int64_t)(scaled32 - (full_range ? 2147483648.0 : 0)); break;
        case HY_DT_U64: ((uint64_t *)a)[i] = (uint64_t)fabs(scaled64); break;
        case HY_DT_I64:
            ((int64_t *)a)[i] = full_range ? (int64_t)(splitmix(&s) ^ (uint64_t)(x * 1e6))
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

/* ---- running ---- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Runs one configuration: a warm-up, then o->repeat timed runs. */
static int run_config(hy_host *h, const struct options *o, const hy_run_opts *ro, void *input,
                      void *work, struct row *r)
{
    uint64_t times[1000];
    double handoffs = 0, wait = 0;
    size_t bytes = o->job == 's' ? (size_t)o->n * hy_dtype_size(o->dtype) : 0;
    hy_error err = {0};
    for (unsigned rep = 0; rep <= o->repeat; rep++) {
        hy_run_stats st;
        int rc;
        if (o->job == 'p') {
            hy_pi_result pr;
            rc = hy_host_pi(h, o->seed, o->n, ro, &pr, &err);
            st = pr.stats;
            r->hits = pr.hits;
        } else {
            memcpy(work, input, bytes);
            hy_sort_result sr;
            rc = hy_host_sort(h, o->dtype, work, (size_t)o->n, ro, &sr, &err);
            st = sr.stats;
            r->checked = rc == 0 && ascending(work, o->dtype, (size_t)o->n);
        }
        if (rc != 0) {
            fprintf(stderr, "hybrid-bench: %s on %u thread(s): %s (%s)\n",
                    hy_backend_name(ro->backend), ro->threads, err.msg, hy_err_name(rc));
            return rc;
        }
        if (rep == 0)
            continue; /* the warm-up: page faults, caches, the CPU's clock ramp */
        times[rep - 1] = st.wall_ns;
        r->nogil = st.nogil;
        handoffs += (double)st.lock_handoffs;
        if (st.wall_ns)
            wait += (double)st.lock_wait_ns / ((double)st.wall_ns * st.threads);
    }
    qsort(times, o->repeat, sizeof times[0], cmp_u64);
    r->backend = ro->backend;
    r->threads = ro->threads;
    r->mode = ro->mode;
    r->min_ns = times[0];
    r->max_ns = times[o->repeat - 1];
    r->median_ns = o->repeat % 2 ? times[o->repeat / 2]
                                 : (times[o->repeat / 2 - 1] + times[o->repeat / 2]) / 2;
    unsigned copies = ro->mode == HY_MODE_REPLICATE ? ro->threads : 1;
    r->throughput = (double)o->n * copies / ((double)r->median_ns * 1e-9);
    r->handoffs = handoffs / o->repeat;
    r->wait_share = wait / o->repeat;
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

static void print_table(const struct options *o, const struct row *rows, unsigned nrows,
                        const char *cpu)
{
    const char *unit = o->job == 'p' ? "samples/s" : "elements/s";
    if (o->job == 'p')
        printf("pi: n = %llu samples per copy, seed %llu, kernel %s\n",
               (unsigned long long)o->n, (unsigned long long)o->seed, hy_host_pi_kernel());
    else
        printf("sort: n = %llu %s, %s\n", (unsigned long long)o->n, hy_dtype_name(o->dtype),
               o->dist);
    printf("machine: %s, %ld CPUs online; median of %u runs after a warm-up\n\n", cpu,
           sysconf(_SC_NPROCESSORS_ONLN), o->repeat);
    printf("%-7s %7s %-9s %-5s %10s %10s %10s %12s %8s %6s %9s %6s\n", "backend", "threads",
           "mode", "lock", "median ms", "min ms", "max ms", unit, "speedup", "eff", "handoffs",
           "wait");
    for (unsigned i = 0; i < nrows; i++) {
        const struct row *r = &rows[i];
        const char *lock = r->backend != HY_BACKEND_LOCKED ? "-" : r->nogil ? "nogil" : "held";
        char hand[32] = "-", wait[32] = "-";
        if (r->backend == HY_BACKEND_LOCKED) {
            snprintf(hand, sizeof hand, "%.0f", r->handoffs);
            snprintf(wait, sizeof wait, "%.0f%%", 100 * r->wait_share);
        }
        printf("%-7s %7u %-9s %-5s %10.2f %10.2f %10.2f %12.3e %7.2fx %5.0f%% %9s %6s\n",
               hy_backend_name(r->backend), r->threads, hy_mode_name(r->mode), lock,
               r->median_ns / 1e6, r->min_ns / 1e6, r->max_ns / 1e6, r->throughput,
               r->speedup, 100 * r->speedup / r->threads, hand, wait);
    }
    if (o->job == 'p' && nrows)
        printf("\nhits %llu, estimate %.9f (identical on every row)\n",
               (unsigned long long)rows[0].hits, 4.0 * (double)rows[0].hits / (double)o->n);
}

static void print_json(const struct options *o, const struct row *rows, unsigned nrows,
                       const char *cpu)
{
    printf("{\"job\":\"%s\",\"n\":%llu,\"seed\":%llu,", o->job == 'p' ? "pi" : "sort",
           (unsigned long long)o->n, (unsigned long long)o->seed);
    if (o->job == 'p')
        printf("\"pi_kernel\":\"%s\",", hy_host_pi_kernel());
    else
        printf("\"dtype\":\"%s\",\"dist\":\"%s\",", hy_dtype_name(o->dtype), o->dist);
    printf("\"machine\":{\"cpu\":\"%s\",\"cpus\":%ld},\"repeat\":%u,\"rows\":[", cpu,
           sysconf(_SC_NPROCESSORS_ONLN), o->repeat);
    for (unsigned i = 0; i < nrows; i++) {
        const struct row *r = &rows[i];
        printf("%s{\"backend\":\"%s\",\"threads\":%u,\"mode\":\"%s\",", i ? "," : "",
               hy_backend_name(r->backend), r->threads, hy_mode_name(r->mode));
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

    hy_host *h = NULL;
    hy_error err = {0};
    int rc = hy_host_create(&(hy_host_config){.threads = max_t, .switch_interval_us = o.switch_us},
                            &h, &err);
    if (rc) {
        fprintf(stderr, "hybrid-bench: %s\n", err.msg);
        return 1;
    }

    void *input = NULL, *work = NULL;
    if (o.job == 's') {
        size_t bytes = (size_t)o.n * hy_dtype_size(o.dtype);
        input = malloc(bytes);
        work = malloc(bytes);
        if (!input || !work) {
            fprintf(stderr, "hybrid-bench: out of memory for %zu bytes\n", bytes);
            rc = 1;
            goto out;
        }
        fill(input, o.dtype, (size_t)o.n, o.dist, o.seed);
    }

    struct row rows[3 * MAX_LIST * 2 + 1];
    unsigned nrows = 0;
    double serial = 0;
    /* Serial first: every speed-up is measured against it. */
    hy_run_opts base = {.backend = HY_BACKEND_SERIAL, .threads = 1, .mode = HY_MODE_SPLIT};
    if ((rc = run_config(h, &o, &base, input, work, &rows[nrows])) != 0)
        goto out;
    serial = rows[nrows].throughput;
    bool serial_listed = false;
    for (unsigned b = 0; b < o.nbackends; b++)
        serial_listed |= o.backends[b] == HY_BACKEND_SERIAL;
    if (serial_listed)
        nrows++;
    for (unsigned b = 0; b < o.nbackends; b++) {
        if (o.backends[b] == HY_BACKEND_SERIAL)
            continue;
        for (unsigned m = 0; m < o.nmodes; m++)
            for (unsigned t = 0; t < o.nthreads; t++) {
                hy_run_opts ro = {.backend = o.backends[b], .threads = o.threads[t],
                                  .mode = o.modes[m], .nogil = o.nogil,
                                  .switch_interval_us = o.switch_us};
                if ((rc = run_config(h, &o, &ro, input, work, &rows[nrows])) != 0)
                    goto out;
                nrows++;
            }
    }
    for (unsigned i = 0; i < nrows; i++)
        rows[i].speedup = rows[i].throughput / serial;

    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    if (o.json)
        print_json(&o, rows, nrows, cpu);
    else
        print_table(&o, rows, nrows, cpu);
    for (unsigned i = 1; o.job == 'p' && i < nrows; i++)
        if (rows[i].hits != rows[0].hits) {
            fprintf(stderr, "hybrid-bench: %s on %u thread(s) counted %llu hits, not %llu\n",
                    hy_backend_name(rows[i].backend), rows[i].threads,
                    (unsigned long long)rows[i].hits, (unsigned long long)rows[0].hits);
            rc = 1;
        }
    for (unsigned i = 0; o.job == 's' && i < nrows; i++)
        if (!rows[i].checked) {
            fprintf(stderr, "hybrid-bench: %s on %u thread(s) returned an unsorted array\n",
                    hy_backend_name(rows[i].backend), rows[i].threads);
            rc = 1;
        }
out:
    free(input);
    free(work);
    hy_host_destroy(h);
    return rc ? 1 : 0;
}
