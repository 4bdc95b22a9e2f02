/* client: hybridctl's reports — a compare as a table, CSV, JSON or an SVG scaling chart, and
 * the single jobs, STATUS and DEVICES as text or JSON. It computes nothing but ratios of what
 * the daemon measured, and labels what ran honestly (PoCL's CPU device is never a GPU). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client.h"

#define POCL_FOOTNOTE "PoCL CPU is an OpenCL device running on this machine's CPU, not a GPU"
#define PROCESS_FOOTNOTE                                                                      \
    "process: h2d = sending the parts to the worker processes, d2h = receiving them back, "  \
    "kernel = the rest\n(compute and merge); pipe copies the parts through the workers' "     \
    "sockets, shm moves only offsets\n(the parts stay in one shared mapping)"

/* ---- small helpers ---- */

static const char *nz(const char *s, const char *dflt) { return s ? s : dflt; }
static const char *backend_name(int b) { return nz(hy_backend_name(b), "unknown"); }
static const char *mode_name(int m) { return nz(hy_mode_name(m), "unknown"); }

/* A process row's transport: 0 (a daemon that did not say) is the protocol's default, pipe. */
static const char *row_transport(const hy_result_row *r)
{
    if (r->backend != HY_BACKEND_PROCESS)
        return NULL;
    return nz(hy_transport_name(r->transport ? r->transport : HY_TRANSPORT_PIPE), "unknown");
}

/* Rows whose time splits into sending, running and receiving: opencl and process. */
static bool has_split(const hy_result_row *r)
{
    return r->backend == HY_BACKEND_OPENCL || r->backend == HY_BACKEND_PROCESS;
}

/* Reports are read by programs (JSON, CSV, SVG): whatever locale the caller set, numbers
 * must use '.' — so every entry point prints under the C locale and restores the caller's. */
typedef struct c_numbers {
    locale_t c, old;
} c_numbers;

static void c_numbers_begin(c_numbers *l)
{
    l->c = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    l->old = l->c ? uselocale(l->c) : (locale_t)0;
}

static void c_numbers_end(c_numbers *l)
{
    if (l->c) {
        uselocale(l->old);
        freelocale(l->c);
    }
}

/* The length of the valid UTF-8 sequence at s (1 to 4), or 0 when it is not one (overlong
 * forms, surrogates and code points past U+10FFFF included). */
static size_t utf8_len(const unsigned char *s, size_t left)
{
    unsigned c = s[0];
    size_t n;
    uint32_t cp, min;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0) {
        n = 2, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n > left)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* A copy of s safe to show on a terminal: control characters and broken UTF-8 become '?'
 * (names come from the daemon and the OpenCL driver; they must not move the cursor). */
static void clean(char *dst, size_t cap, const char *s)
{
    const unsigned char *p = (const unsigned char *)nz(s, "");
    size_t len = strlen((const char *)p), o = 0;
    for (size_t i = 0; i < len && o + 1 < cap;) {
        size_t k = p[i] < 0x20 || p[i] == 0x7f ? 0 : utf8_len(p + i, len - i);
        if (k == 0 || o + k >= cap) {
            dst[o++] = '?';
            i += k ? k : 1;
            continue;
        }
        memcpy(dst + o, p + i, k);
        o += k, i += k;
    }
    dst[o] = '\0';
}

/* Characters, not bytes, of a cleaned (valid UTF-8) string: for lining up columns. */
static size_t text_width(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

void hc_json_string(FILE *f, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    if (!p)
        len = 0;
    fputc('"', f);
    for (size_t i = 0; i < len;) {
        unsigned c = p[i];
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc((int)c, f);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\u%04x", c);
            i++;
        } else {
            size_t k = utf8_len(p + i, len - i);
            if (k == 0) { /* not UTF-8: JSON text must be, so say so with U+FFFD */
                fputs("\\ufffd", f);
                i++;
            } else {
                fwrite(p + i, 1, k, f);
                i += k;
            }
        }
    }
    fputc('"', f);
}

static void json_str(FILE *f, const char *s)
{
    if (s)
        hc_json_string(f, s, strlen(s));
    else
        fputs("null", f);
}

/* JSON has no NaN or infinity: a figure that cannot be computed is null. */
static void json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.17g", v);
    else
        fputs("null", f);
}

static void json_key(FILE *f, const char *k) { fprintf(f, ",\"%s\":", k); }
static void json_u64(FILE *f, const char *k, uint64_t v)
{
    json_key(f, k);
    fprintf(f, "%" PRIu64, v);
}
static void json_bool(FILE *f, const char *k, bool v)
{
    json_key(f, k);
    fputs(v ? "true" : "false", f);
}
static void json_dbl(FILE *f, const char *k, double v)
{
    json_key(f, k);
    json_num(f, v);
}
static void json_s(FILE *f, const char *k, const char *v)
{
    json_key(f, k);
    json_str(f, v);
}

/* 3 significant digits with an SI suffix (1.62G, 950k, 12.3), e-notation below 1. */
static void fmt_si(char *b, size_t cap, double v)
{
    static const char sfx[] = " kMGTPE";
    if (!isfinite(v)) {
        snprintf(b, cap, "-");
        return;
    }
    if (v == 0) {
        snprintf(b, cap, "0");
        return;
    }
    if (fabs(v) < 1) {
        snprintf(b, cap, "%.2e", v);
        return;
    }
    int k = 0;
    double s = v;
    while (fabs(s) >= 999.5 && k < 6)
        s /= 1000, k++;
    if (fabs(s) >= 999.5) {
        snprintf(b, cap, "%.2e", v);
        return;
    }
    int dec = fabs(s) >= 99.95 ? 0 : fabs(s) >= 9.995 ? 1 : 2;
    snprintf(b, cap, "%.*f%.*s", dec, s, k ? 1 : 0, &sfx[k]);
}

static double ms(uint64_t ns) { return (double)ns / 1e6; }

/* A duration for people: 45s, 2m05s, 1h02m, 3d04h. */
static void fmt_uptime(char *b, size_t cap, uint64_t ns)
{
    uint64_t s = ns / 1000000000u;
    if (s < 60)
        snprintf(b, cap, "%" PRIu64 "s", s);
    else if (s < 3600)
        snprintf(b, cap, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
    else if (s < 86400)
        snprintf(b, cap, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, s / 60 % 60);
    else
        snprintf(b, cap, "%" PRIu64 "d%02" PRIu64 "h", s / 86400, s / 3600 % 24);
}

static void fmt_busy(char *b, size_t cap, uint64_t ns)
{
    if (ns >= 1000000000u)
        snprintf(b, cap, "%.1f s", (double)ns / 1e9);
    else
        snprintf(b, cap, "%.1f ms", ms(ns));
}

static int finish(FILE *f) { return ferror(f) ? HY_ESYS : 0; }

/* ---- derived figures ---- */

/* What ran the row, honestly: an OpenCL device on PoCL's CPU is "PoCL CPU" even if some
 * other flag claims otherwise. */
static const char *row_device(const hy_result_row *r)
{
    if (r->backend != HY_BACKEND_OPENCL)
        return "CPU";
    if (r->flags & HY_ROW_POCL_CPU)
        return "PoCL CPU";
    if (r->flags & HY_ROW_GPU)
        return "GPU";
    return "OpenCL device";
}

static double row_throughput(const hy_result_row *r)
{
    if (r->median_ns == 0)
        return NAN;
    double copies = r->copies ? r->copies : 1;
    /* n * 1e9 / ns rather than n / (ns * 1e-9): exact for round figures. */
    return (double)r->n * copies * 1e9 / (double)r->median_ns;
}

static void derive_row(const hy_result_row *r, double base_throughput, hc_derived *d)
{
    memset(d, 0, sizeof *d);
    d->device = row_device(r);
    d->throughput = row_throughput(r);
    d->speedup = base_throughput > 0 ? d->throughput / base_throughput : NAN;
    /* A hybrid row's speed-up comes from its devices as well as its threads, so per thread
     * it means nothing (an H200 beside 16 cores made it 3087%): its efficiency is the
     * balance the daemon measured, achieved over the sum of the sides' own throughputs. */
    if (r->backend == HY_BACKEND_HYBRID)
        d->efficiency = r->balance_ppm ? r->balance_ppm / 1e6 : NAN;
    else if (r->backend != HY_BACKEND_OPENCL)
        d->efficiency = r->threads ? d->speedup / r->threads : NAN;
    if (r->backend == HY_BACKEND_LOCKED) {
        double t = (double)r->median_ns * (r->threads ? r->threads : 1);
        d->wait_share = t > 0 ? (double)r->lock_wait_ns / t : NAN;
    }
    if (has_split(r)) {
        double sum = (double)r->h2d_ns + (double)r->kernel_ns + (double)r->d2h_ns;
        d->transfer_share = sum > 0 ? ((double)r->h2d_ns + (double)r->d2h_ns) / sum : NAN;
    }
}

void hc_derive(const hc_compare *c, unsigned i, hc_derived *d)
{
    double base = c->nrows ? row_throughput(&c->rows[0]) : NAN;
    derive_row(&c->rows[i], base, d);
}

static bool is_pi(const hc_compare *c) { return c->job == HY_JOB_COMPARE_PI; }

static bool has_pocl(const hc_compare *c)
{
    for (unsigned i = 0; i < c->nrows; i++)
        if (c->rows[i].backend == HY_BACKEND_OPENCL && (c->rows[i].flags & HY_ROW_POCL_CPU))
            return true;
    return false;
}

static bool has_backend(const hc_compare *c, int b)
{
    for (unsigned i = 0; i < c->nrows; i++)
        if (c->rows[i].backend == b)
            return true;
    return false;
}

/* ---- the compare as a table ---- */

enum {
    COL_BACKEND, COL_DEVICE, COL_THREADS, COL_MODE, COL_TRANSPORT, COL_LOCK, COL_MEDIAN,
    COL_PRED, COL_MIN, COL_MAX, COL_SD,
    COL_THROUGHPUT, COL_SPEEDUP, COL_EFFICIENCY, COL_HANDOFFS, COL_WAIT, COL_SPLIT,
    COL_TRANSFER, NCOLS
};
#define CELL 64

static const char *const col_title[NCOLS] = {
    "backend", "device", "threads", "mode", "transport", "lock", "median ms", "predicted ms",
    "min ms", "max ms", "sd", NULL /* samples/s or elements/s */, "speed-up", "efficiency", "hand-offs", "lock wait",
    "h2d/kernel/d2h ms", "transfer",
};
/* Text columns are left-aligned, figures right-aligned. */
static const bool col_left[NCOLS] = {[COL_BACKEND] = true, [COL_DEVICE] = true,
                                     [COL_MODE] = true, [COL_TRANSPORT] = true,
                                     [COL_LOCK] = true};

static void table_row(const hc_compare *c, unsigned i, char (*cell)[CELL])
{
    const hy_result_row *r = &c->rows[i];
    hc_derived d;
    hc_derive(c, i, &d);
    bool cl = r->backend == HY_BACKEND_OPENCL, locked = r->backend == HY_BACKEND_LOCKED;
    for (int k = 0; k < NCOLS; k++)
        snprintf(cell[k], CELL, "-");
    snprintf(cell[COL_BACKEND], CELL, "%s", backend_name(r->backend));
    snprintf(cell[COL_DEVICE], CELL, "%s", d.device);
    if (!cl)
        snprintf(cell[COL_THREADS], CELL, "%u", r->threads);
    snprintf(cell[COL_MODE], CELL, "%s", mode_name(r->mode));
    if (r->backend == HY_BACKEND_PROCESS)
        snprintf(cell[COL_TRANSPORT], CELL, "%s", row_transport(r));
    if (locked)
        snprintf(cell[COL_LOCK], CELL, "%s", r->flags & HY_ROW_NOGIL ? "nogil" : "held");
    snprintf(cell[COL_MEDIAN], CELL, "%.3f", ms(r->median_ns));
    if (r->predicted_ns) /* the daemon's history, before the row ran: beside what it took */
        snprintf(cell[COL_PRED], CELL, "%.3f", ms(r->predicted_ns));
    snprintf(cell[COL_MIN], CELL, "%.3f", ms(r->min_ns));
    snprintf(cell[COL_MAX], CELL, "%.3f", ms(r->max_ns));
    if (r->repeat > 1 && r->mean_ns > 0) /* the standard deviation, as a share of the mean */
        snprintf(cell[COL_SD], CELL, "%.1f%%", 100.0 * (double)r->stddev_ns / (double)r->mean_ns);
    fmt_si(cell[COL_THROUGHPUT], CELL, d.throughput);
    if (isfinite(d.speedup))
        snprintf(cell[COL_SPEEDUP], CELL, "%.2fx", d.speedup);
    if (!cl && isfinite(d.efficiency))
        snprintf(cell[COL_EFFICIENCY], CELL, "%.0f%%", 100 * d.efficiency);
    if (locked) {
        snprintf(cell[COL_HANDOFFS], CELL, "%" PRIu64, r->lock_handoffs);
        if (isfinite(d.wait_share))
            snprintf(cell[COL_WAIT], CELL, "%.1f%%", 100 * d.wait_share);
    }
    if (has_split(r)) {
        snprintf(cell[COL_SPLIT], CELL, "%.3f/%.3f/%.3f", ms(r->h2d_ns), ms(r->kernel_ns),
                 ms(r->d2h_ns));
        if (isfinite(d.transfer_share))
            snprintf(cell[COL_TRANSFER], CELL, "%.1f%%", 100 * d.transfer_share);
    }
}

static void compare_heading(FILE *f, const hc_compare *c)
{
    char dist[128], server[128], dev[160];
    clean(dist, sizeof dist, c->dist);
    clean(server, sizeof server, nz(c->server, "an unnamed server"));
    if (is_pi(c))
        fprintf(f, "compare pi: n=%" PRIu64 " samples, seed %" PRIu64 "\n", c->n, c->seed);
    else
        fprintf(f, "compare sort: n=%" PRIu64 " %s %s, seed %" PRIu64 "\n", c->n,
                nz(hy_dtype_name(c->dtype), "?"), dist, c->seed);
    fprintf(f, "server %s, %s mode, repeat %u: median, min and max of the timed runs after a "
               "warm-up\n",
            server, mode_name(c->mode), c->repeat);
    if (c->mode == HY_MODE_REPLICATE)
        fprintf(f, "replicate: each thread runs its own copy of n; throughput counts every "
                   "copy\n");
    if (c->device_name && has_backend(c, HY_BACKEND_OPENCL)) {
        clean(dev, sizeof dev, c->device_name);
        for (unsigned i = 0; i < c->nrows; i++)
            if (c->rows[i].backend == HY_BACKEND_OPENCL) {
                fprintf(f, "opencl device %u: %s (%s)\n", c->rows[i].device, dev,
                        row_device(&c->rows[i]));
                break;
            }
    }
    fputc('\n', f);
}

/* ---- what the figures cannot say ---- */

#define NOISY_SHARE 0.10 /* a standard deviation above this share of the mean is noise to say */
#define SLOW_WARMUP 2.0  /* a warm-up this many times the median says the first run paid */
#define MAX_WARNINGS 8
#define WARNING_LEN 240

#define BUSY_SHARE 0.5 /* a load average above this share of the CPUs before a run: busy */

bool hc_machine_load(double *load1, unsigned *cpus)
{
    double l[1];
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (getloadavg(l, 1) != 1 || n <= 0)
        return false;
    *load1 = l[0];
    *cpus = (unsigned)n;
    return true;
}

/* "native 2T", "locked 1T nogil", "process/shm 2T", "opencl": a row, in a sentence. */
static void row_name(char *b, size_t cap, const hy_result_row *r)
{
    if (r->backend == HY_BACKEND_OPENCL)
        snprintf(b, cap, "opencl");
    else
        snprintf(b, cap, "%s%s%s %uT%s", backend_name(r->backend),
                 r->backend == HY_BACKEND_PROCESS ? "/" : "",
                 r->backend == HY_BACKEND_PROCESS ? row_transport(r) : "", r->threads,
                 r->backend != HY_BACKEND_LOCKED ? ""
                 : r->flags & HY_ROW_NOGIL      ? " nogil"
                                                : " held");
}

/* The middle half of a row's runs as throughputs, lo..hi; false without the spread. */
static bool middle_half(const hy_result_row *r, double *lo, double *hi)
{
    if (r->repeat < 2 || r->q1_ns == 0 || r->q3_ns == 0)
        return false;
    double work = (double)r->n * (r->copies ? r->copies : 1) * 1e9;
    *lo = work / (double)r->q3_ns;
    *hi = work / (double)r->q1_ns;
    return true;
}

/* Appends "name" to a list sentence in b, comma-separated. */
static void list_add(char *b, size_t cap, const char *name)
{
    size_t at = strlen(b);
    snprintf(b + at, cap - at, "%s%s", at ? ", " : "", name);
}

/* The warnings a comparison's figures call for: rows whose runs spread too much, rows whose
 * speed-up over serial the runs cannot tell from none (their middle halves overlap
 * serial's), and warm-ups far slower than the timed runs. Returns how many. */
static unsigned compare_warnings(const hc_compare *c, char (*w)[WARNING_LEN])
{
    char noisy[160] = "", same[160] = "", slow[160] = "", name[48];
    double slo = 0, shi = 0;
    bool have_serial = c->nrows > 0 && c->rows[0].backend == HY_BACKEND_SERIAL &&
                       middle_half(&c->rows[0], &slo, &shi);
    for (unsigned i = 0; i < c->nrows; i++) {
        const hy_result_row *r = &c->rows[i];
        double lo, hi;
        row_name(name, sizeof name, r);
        if (r->repeat > 1 && r->mean_ns > 0 &&
            (double)r->stddev_ns > NOISY_SHARE * (double)r->mean_ns)
            list_add(noisy, sizeof noisy, name);
        if (i > 0 && have_serial && middle_half(r, &lo, &hi) && lo <= shi && hi >= slo)
            list_add(same, sizeof same, name);
        if (r->warmup_ns > 0 && (double)r->warmup_ns > SLOW_WARMUP * (double)r->median_ns)
            list_add(slow, sizeof slow, name);
    }
    unsigned k = 0;
    if (noisy[0])
        snprintf(w[k++], WARNING_LEN, "noisy: %s (standard deviation above %.0f%% of the "
                 "mean): more --repeat, or a quieter machine", noisy, 100 * NOISY_SHARE);
    if (same[0])
        snprintf(w[k++], WARNING_LEN, "cannot be told from serial: %s (the middle halves of "
                 "their runs overlap serial's)", same);
    if (slow[0])
        snprintf(w[k++], WARNING_LEN, "slow first run: %s (the warm-up took over %.0fx the "
                 "median: page faults, caches, kernel builds; it is not counted)", slow,
                 SLOW_WARMUP);
    /* Something else was running: every row may have shared the cores with it. */
    if (c->cpus > 0 && c->load_before > BUSY_SHARE * c->cpus)
        snprintf(w[k++], WARNING_LEN, "busy machine: load average %.2f on %u CPUs before the "
                 "comparison (%.2f after): other work shared the cores; run it again when the "
                 "machine is quieter", c->load_before, c->cpus, c->load_after);
    return k;
}

/* The notes under the table: pi's estimate, and what the lock, PoCL and process columns mean. */
static void table_footnotes(FILE *f, const hc_compare *c, bool locked, bool proc)
{
    unsigned n = c->nrows;
    bool pi = is_pi(c) && n > 0, pocl = has_pocl(c);
    if (pi || locked || pocl || proc)
        fputc('\n', f);
    if (pi) {
        const hy_result_row *r = &c->rows[0];
        fprintf(f, "hits %" PRIu64 " of %" PRIu64 ", estimate %.9f, |estimate - pi| %.2g "
                   "(identical on every row)\n",
                r->hits, r->n, r->estimate, fabs(r->estimate - M_PI));
    }
    if (locked)
        fputs("lock wait: the share of the threads' time spent waiting for the lock\n", f);
    if (pocl)
        fputs(POCL_FOOTNOTE "\n", f);
    if (proc) {
        fputs(PROCESS_FOOTNOTE "\n", f);
        uint64_t started = 0, startup = 0;
        for (unsigned i = 0; i < n; i++)
            if (c->rows[i].backend == HY_BACKEND_PROCESS) {
                started += c->rows[i].workers_started;
                startup += c->rows[i].startup_ns;
            }
        /* A worker that died is restarted by the next run, which pays for it: say so. */
        if (started)
            fprintf(f, "process: %" PRIu64 " worker%s restarted (%.3f ms of startup, "
                       "warm-ups included)\n",
                    started, started == 1 ? " was" : "s were", ms(startup));
    }
}

/* Writes rows 0..n of cells (the titles, then the rows), the shown columns only, each padded
 * to its width; the last shown column left-aligned is not padded. */
static void table_cells(FILE *f, char (*cells)[NCOLS][CELL], unsigned n, const bool *show,
                        const size_t *width)
{
    int last = 0;
    for (int k = 0; k < NCOLS; k++)
        if (show[k])
            last = k;
    for (unsigned i = 0; i <= n; i++) {
        bool first = true;
        for (int k = 0; k < NCOLS; k++) {
            if (!show[k])
                continue;
            if (!first)
                fputs("  ", f);
            first = false;
            if (col_left[k])
                fprintf(f, "%-*s", k == last ? 0 : (int)width[k], cells[i][k]);
            else
                fprintf(f, "%*s", (int)width[k], cells[i][k]);
        }
        fputc('\n', f);
    }
}

static int print_table(FILE *f, const hc_compare *c)
{
    unsigned n = c->nrows;
    char (*cells)[NCOLS][CELL] = calloc((size_t)n + 1, sizeof *cells);
    if (!cells)
        return HY_ENOMEM;
    for (int k = 0; k < NCOLS; k++)
        snprintf(cells[0][k], CELL, "%s", col_title[k] ? col_title[k]
                                          : is_pi(c)   ? "samples/s"
                                                       : "elements/s");
    for (unsigned i = 0; i < n; i++)
        table_row(c, i, cells[i + 1]);

    /* Columns no row has a figure in (no locked row, no opencl or process row) are left out. */
    bool show[NCOLS];
    size_t width[NCOLS];
    bool locked = has_backend(c, HY_BACKEND_LOCKED), cl = has_backend(c, HY_BACKEND_OPENCL);
    bool proc = has_backend(c, HY_BACKEND_PROCESS);
    for (int k = 0; k < NCOLS; k++) {
        show[k] = true;
        width[k] = 0;
        for (unsigned i = 0; i <= n; i++) {
            size_t w = strlen(cells[i][k]);
            width[k] = w > width[k] ? w : width[k];
        }
    }
    show[COL_LOCK] = show[COL_HANDOFFS] = show[COL_WAIT] = locked;
    show[COL_SPLIT] = show[COL_TRANSFER] = cl || proc;
    show[COL_TRANSPORT] = proc;
    show[COL_SD] = false; /* only from a daemon that sends the spread */
    show[COL_PRED] = false; /* only where the daemon's history predicted a row */
    for (unsigned i = 0; i < n; i++) {
        show[COL_SD] = show[COL_SD] || (c->rows[i].repeat > 1 && c->rows[i].mean_ns > 0);
        show[COL_PRED] = show[COL_PRED] || c->rows[i].predicted_ns > 0;
    }

    compare_heading(f, c);
    table_cells(f, cells, n, show, width);
    free(cells);
    table_footnotes(f, c, locked, proc);
    char w[MAX_WARNINGS][WARNING_LEN];
    unsigned nw = compare_warnings(c, w);
    for (unsigned k = 0; k < nw; k++)
        fprintf(f, "%snote: %s\n", k ? "" : "\n", w[k]);
    return finish(f);
}

/* ---- CSV ---- */

/* RFC 4180: a field with a comma, quote or line break is quoted, its quotes doubled. */
static void csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void csv_num(FILE *f, double v)
{
    fputc(',', f);
    if (isfinite(v))
        fprintf(f, "%.17g", v);
}

static int print_csv(FILE *f, const hc_compare *c)
{
    fputs("backend,device,threads,mode,nogil,n,copies,median_ns,min_ns,max_ns,throughput,"
          "speedup,efficiency,lock_handoffs,lock_wait_ns,lock_hold_ns,wait_share,h2d_ns,"
          "kernel_ns,d2h_ns,transfer_share,hits,estimate,repeat,transport,bytes_moved,"
          "startup_ns,merge_ns,workers_started,mean_ns,stddev_ns,q1_ns,q3_ns,warmup_ns,"
          "predicted_ns,cpu_items,cpu_busy_ns,dev_busy_ns,cpu_chunks,dev_chunks,devices_used,"
          "balance,overlap_ns\n",
          f);
    for (unsigned i = 0; i < c->nrows; i++) {
        const hy_result_row *r = &c->rows[i];
        hc_derived d;
        hc_derive(c, i, &d);
        bool cl = r->backend == HY_BACKEND_OPENCL, locked = r->backend == HY_BACKEND_LOCKED;
        bool proc = r->backend == HY_BACKEND_PROCESS;
        csv_field(f, backend_name(r->backend));
        fputc(',', f);
        csv_field(f, d.device);
        fprintf(f, ",%u,", r->threads);
        csv_field(f, mode_name(r->mode));
        fputc(',', f);
        if (locked)
            fputc(r->flags & HY_ROW_NOGIL ? '1' : '0', f);
        fprintf(f, ",%" PRIu64 ",%u,%" PRIu64 ",%" PRIu64 ",%" PRIu64, r->n, r->copies,
                r->median_ns, r->min_ns, r->max_ns);
        csv_num(f, d.throughput);
        csv_num(f, d.speedup);
        csv_num(f, cl ? NAN : d.efficiency);
        fprintf(f, ",%" PRIu64 ",%" PRIu64 ",%" PRIu64, r->lock_handoffs, r->lock_wait_ns,
                r->lock_hold_ns);
        csv_num(f, locked ? d.wait_share : NAN);
        fprintf(f, ",%" PRIu64 ",%" PRIu64 ",%" PRIu64, r->h2d_ns, r->kernel_ns, r->d2h_ns);
        csv_num(f, has_split(r) ? d.transfer_share : NAN);
        if (is_pi(c)) {
            fprintf(f, ",%" PRIu64, r->hits);
            csv_num(f, r->estimate);
        } else {
            fputs(",,", f);
        }
        fprintf(f, ",%u,", r->repeat);
        /* Columns added after the first layout go last, so old readers keep their indices. */
        if (proc) {
            csv_field(f, row_transport(r));
            fprintf(f, ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%u", r->bytes_moved,
                    r->startup_ns, r->merge_ns, r->workers_started);
        } else {
            fputs(",,,,", f);
        }
        fprintf(f, ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",", r->mean_ns,
                r->stddev_ns, r->q1_ns, r->q3_ns, r->warmup_ns);
        if (r->predicted_ns) /* empty: the history could not predict the row */
            fprintf(f, "%" PRIu64, r->predicted_ns);
        if (r->backend == HY_BACKEND_HYBRID) {
            fprintf(f, ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%u,%u,%u", r->cpu_items,
                    r->cpu_busy_ns, r->dev_busy_ns, r->cpu_chunks, r->dev_chunks,
                    r->devices_used);
            csv_num(f, r->balance_ppm ? r->balance_ppm / 1e6 : NAN);
        } else {
            fputs(",,,,,,,", f);
        }
        fprintf(f, ",%" PRIu64 "\n", r->overlap_ns);
    }
    return finish(f);
}

/* ---- JSON ---- */

/* Every field of a row (the first key has no leading comma), then the honest label. */
static void json_row_fields(FILE *f, const hy_result_row *r)
{
    fputs("\"backend\":", f);
    json_str(f, backend_name(r->backend));
    json_s(f, "device", row_device(r));
    json_u64(f, "device_index", r->device);
    json_u64(f, "threads", r->threads);
    json_s(f, "mode", mode_name(r->mode));
    json_u64(f, "flags", r->flags);
    json_key(f, "nogil");
    fputs(r->backend != HY_BACKEND_LOCKED ? "null" : r->flags & HY_ROW_NOGIL ? "true" : "false",
          f);
    json_u64(f, "copies", r->copies);
    json_u64(f, "n", r->n);
    json_u64(f, "hits", r->hits);
    json_dbl(f, "estimate", r->estimate);
    json_dbl(f, "std_error", r->std_error);
    json_u64(f, "median_ns", r->median_ns);
    json_u64(f, "min_ns", r->min_ns);
    json_u64(f, "max_ns", r->max_ns);
    json_u64(f, "repeat", r->repeat);
    json_u64(f, "lock_handoffs", r->lock_handoffs);
    json_u64(f, "lock_wait_ns", r->lock_wait_ns);
    json_u64(f, "lock_hold_ns", r->lock_hold_ns);
    json_u64(f, "h2d_ns", r->h2d_ns);
    json_u64(f, "kernel_ns", r->kernel_ns);
    json_u64(f, "d2h_ns", r->d2h_ns);
    json_u64(f, "launches", r->launches);
    json_u64(f, "passes", r->passes); /* opencl sort: passes over the keys */
    json_u64(f, "overlap_ns", r->overlap_ns); /* opencl: copies that ran under kernels */
    /* the process backend's figures: null or 0 on the other backends (bytes_moved: also
     * opencl's copies between host and device) */
    json_s(f, "transport", row_transport(r));
    json_u64(f, "bytes_moved", r->bytes_moved);
    json_u64(f, "startup_ns", r->startup_ns);
    json_u64(f, "merge_ns", r->merge_ns);
    json_u64(f, "workers_started", r->workers_started);
    /* the timed runs' spread and the warm-up: 0 from a daemon that does not send them */
    json_u64(f, "mean_ns", r->mean_ns);
    json_u64(f, "stddev_ns", r->stddev_ns);
    json_u64(f, "q1_ns", r->q1_ns);
    json_u64(f, "q3_ns", r->q3_ns);
    json_u64(f, "warmup_ns", r->warmup_ns);
    /* the history's prediction made before the row ran (null: it could not say), and
     * whether backend auto chose the row (to explore: to learn a configuration) */
    json_key(f, "predicted_ns");
    if (r->predicted_ns)
        fprintf(f, "%" PRIu64, r->predicted_ns);
    else
        fputs("null", f);
    json_bool(f, "auto", r->flags & HY_ROW_AUTO);
    json_bool(f, "explore", r->flags & HY_ROW_EXPLORE);
    /* hybrid's participants: 0 on the other backends; balance null when not known */
    json_u64(f, "cpu_items", r->cpu_items);
    json_u64(f, "cpu_busy_ns", r->cpu_busy_ns);
    json_u64(f, "dev_busy_ns", r->dev_busy_ns);
    json_u64(f, "cpu_chunks", r->cpu_chunks);
    json_u64(f, "dev_chunks", r->dev_chunks);
    json_u64(f, "devices_used", r->devices_used);
    json_dbl(f, "balance", r->balance_ppm ? r->balance_ppm / 1e6 : NAN);
    json_bool(f, "shared_cores", r->flags & HY_ROW_SHARED_CORES);
    json_bool(f, "no_gain", r->flags & HY_ROW_NO_GAIN);
    json_bool(f, "whole", r->flags & HY_ROW_WHOLE);
}

static int print_json(FILE *f, const hc_compare *c)
{
    fputs("{\"job\":", f);
    json_str(f, is_pi(c) ? "compare pi" : "compare sort");
    json_u64(f, "n", c->n);
    json_u64(f, "seed", c->seed);
    if (!is_pi(c)) {
        json_s(f, "dtype", hy_dtype_name(c->dtype));
        json_s(f, "dist", c->dist);
    }
    json_s(f, "mode", mode_name(c->mode));
    json_u64(f, "repeat", c->repeat);
    json_s(f, "server", c->server);
    json_s(f, "device_name", c->device_name);
    if (c->cpus > 0) {
        fprintf(f, ",\"machine\":{\"cpus\":%u", c->cpus);
        json_dbl(f, "load_before", c->load_before);
        json_dbl(f, "load_after", c->load_after);
        fputc('}', f);
    }
    if (is_pi(c) && c->nrows > 0) {
        json_u64(f, "hits", c->rows[0].hits);
        json_dbl(f, "estimate", c->rows[0].estimate);
        json_dbl(f, "error", fabs(c->rows[0].estimate - M_PI));
    }
    json_key(f, "rows");
    fputc('[', f);
    for (unsigned i = 0; i < c->nrows; i++) {
        const hy_result_row *r = &c->rows[i];
        hc_derived d;
        hc_derive(c, i, &d);
        fputs(i ? ",{" : "{", f);
        json_row_fields(f, r);
        json_dbl(f, "throughput", d.throughput);
        json_dbl(f, "speedup", d.speedup);
        json_dbl(f, "efficiency", r->backend == HY_BACKEND_OPENCL ? NAN : d.efficiency);
        json_dbl(f, "wait_share", r->backend == HY_BACKEND_LOCKED ? d.wait_share : NAN);
        json_dbl(f, "transfer_share", has_split(r) ? d.transfer_share : NAN);
        fputc('}', f);
    }
    fputs("],\"warnings\":[", f);
    char w[MAX_WARNINGS][WARNING_LEN];
    unsigned nw = compare_warnings(c, w);
    for (unsigned k = 0; k < nw; k++) {
        if (k)
            fputc(',', f);
        json_str(f, w[k]);
    }
    fputs("]}\n", f);
    return finish(f);
}

int hc_print_compare(FILE *f, const hc_compare *c, enum hc_format fmt)
{
    c_numbers l;
    c_numbers_begin(&l);
    int rc = fmt == HC_JSON ? print_json(f, c) : fmt == HC_CSV ? print_csv(f, c)
                                                               : print_table(f, c);
    c_numbers_end(&l);
    return rc;
}

/* ---- the SVG chart ---- */

#define SVG_W 720
#define SVG_H 450
#define PX0 70.0  /* plot area */
#define PX1 520.0
#define PY0 62.0
#define PY1 390.0
#define LEGEND_X 535.0

/* XML text and attribute values: the five specials escaped; characters XML 1.0 forbids
 * (controls) and broken UTF-8 replaced, so the document stays well-formed. */
static void xml_text(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)nz(s, "");
    size_t len = strlen((const char *)p);
    for (size_t i = 0; i < len;) {
        unsigned c = p[i];
        size_t k = 1;
        switch (c) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default:
            if (c < 0x20 || c == 0x7f) {
                fputc('?', f);
            } else if ((k = utf8_len(p + i, len - i)) == 0) {
                fputs("\xef\xbf\xbd", f); /* U+FFFD */
                k = 1;
            } else {
                fwrite(p + i, 1, k, f);
            }
        }
        i += k;
    }
}

struct series {
    const char *name, *color;
    int backend, nogil; /* nogil: -1 any, 0 held, 1 released */
    bool square;
    int transport;      /* process: the transport's rows only */
    const char *dash;   /* stroke-dasharray, or NULL for a solid line */
    bool ring;          /* hollow, larger: a point others sit on stays visible */
};

static const struct series cpu_series[] = {
    /* serial's one point, at 1 thread and 1.00x, is where native's first point lands too */
    {"serial", "#333333", HY_BACKEND_SERIAL, -1, false, 0, NULL, true},
    {"native", "#1f77b4", HY_BACKEND_NATIVE, -1, false, 0, NULL, false},
    {"locked (lock held)", "#d62728", HY_BACKEND_LOCKED, 0, true, 0, NULL, false},
    {"locked (nogil)", "#ff7f0e", HY_BACKEND_LOCKED, 1, true, 0, NULL, false},
    /* the names say which transport: the two lines are the same backend */
    {"process/pipe", "#9467bd", HY_BACKEND_PROCESS, -1, false, HY_TRANSPORT_PIPE, NULL, false},
    {"process/shm", "#8c564b", HY_BACKEND_PROCESS, -1, true, HY_TRANSPORT_SHM, "2,3", false},
};
#define OPENCL_COLOR "#2ca02c"
#define IDEAL_COLOR "#999999"

static bool in_series(const struct series *s, const hy_result_row *r)
{
    if (r->backend != s->backend)
        return false;
    if (s->backend == HY_BACKEND_PROCESS)
        return (r->transport ? r->transport : HY_TRANSPORT_PIPE) == s->transport;
    return s->nogil < 0 || (s->nogil == 1) == !!(r->flags & HY_ROW_NOGIL);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

struct axes {
    uint32_t *xs; /* distinct thread counts, ascending: the categorical x ticks */
    unsigned nx;
    double ymax;
};

static double ax_x(const struct axes *a, uint32_t threads)
{
    unsigned i = 0;
    while (i + 1 < a->nx && a->xs[i] != threads)
        i++;
    if (a->nx <= 1)
        return (PX0 + PX1) / 2;
    double pad = 30;
    return PX0 + pad + i * (PX1 - PX0 - 2 * pad) / (a->nx - 1);
}

static double ax_y(const struct axes *a, double v) { return PY1 - v / a->ymax * (PY1 - PY0); }

static double nice_step(double range)
{
    double raw = range / 5, mag = pow(10, floor(log10(raw))), norm = raw / mag;
    return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10) * mag;
}

/* A point; with a name, it carries a tooltip: "process/pipe T=2: 1.85x". */
enum { SHAPE_CIRCLE, SHAPE_SQUARE, SHAPE_RING };

static int shape_of(const struct series *se)
{
    return se->ring ? SHAPE_RING : se->square ? SHAPE_SQUARE : SHAPE_CIRCLE;
}

static void svg_marker(FILE *f, double x, double y, const char *color, int shape,
                       const char *name, unsigned threads, double speedup)
{
    bool square = shape == SHAPE_SQUARE;
    if (shape == SHAPE_RING)
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"6.5\" fill=\"none\" stroke=\"%s\" "
                   "stroke-width=\"2\"", x, y, color);
    else if (square)
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"7\" height=\"7\" fill=\"%s\"",
                x - 3.5, y - 3.5, color);
    else
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"", x, y, color);
    if (!name) {
        fputs("/>\n", f);
        return;
    }
    fputs("><title>", f);
    xml_text(f, name);
    fprintf(f, " T=%u: %.2fx</title></%s>\n", threads, speedup, square ? "rect" : "circle");
}

static void svg_title(FILE *f, const hc_compare *c)
{
    if (is_pi(c)) {
        fprintf(f, "compare pi, n=%" PRIu64 ", %s mode", c->n, mode_name(c->mode));
    } else {
        fprintf(f, "compare sort, n=%" PRIu64 " %s ", c->n, nz(hy_dtype_name(c->dtype), "?"));
        xml_text(f, c->dist);
        fprintf(f, ", %s mode", mode_name(c->mode));
    }
}

/* The rows' speed-ups into d, and the axes: the thread counts measured (x) and a y range
 * that holds every point and the ideal line's top. */
static void svg_axes(const hc_compare *c, hc_derived *d, struct axes *a)
{
    double ymax = 1;
    for (unsigned i = 0; i < c->nrows; i++) {
        const hy_result_row *r = &c->rows[i];
        hc_derive(c, i, &d[i]);
        if (isfinite(d[i].speedup) && d[i].speedup > ymax)
            ymax = d[i].speedup;
        if (r->backend == HY_BACKEND_OPENCL || r->threads == 0)
            continue;
        bool seen = false;
        for (unsigned k = 0; k < a->nx; k++)
            seen |= a->xs[k] == r->threads;
        if (!seen)
            a->xs[a->nx++] = r->threads;
    }
    if (a->nx == 0)
        a->xs[a->nx++] = 1;
    qsort(a->xs, a->nx, sizeof *a->xs, cmp_u32);
    if (a->xs[a->nx - 1] > ymax) /* the ideal line's top */
        ymax = a->xs[a->nx - 1];
    a->ymax = ymax * 1.1;
}

/* The document's head: its title, a white page, the heading and what was measured. */
static void svg_head(FILE *f, const hc_compare *c)
{
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" "
               "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" "
               "font-size=\"12\">\n",
            SVG_W, SVG_H, SVG_W, SVG_H);
    fputs("<title>", f);
    svg_title(f, c);
    fputs("</title>\n", f);
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n", SVG_W,
            SVG_H);
    fprintf(f, "<text x=\"%.1f\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">",
            (double)SVG_W / 2);
    svg_title(f, c);
    fputs("</text>\n", f);
    fprintf(f, "<text x=\"%.1f\" y=\"42\" text-anchor=\"middle\" fill=\"#555555\">"
               "median of %u timed runs per point; ",
            (double)SVG_W / 2, c->repeat);
    xml_text(f, nz(c->server, "hybridd"));
    fputs("</text>\n", f);
}

/* The grid, both axes with their ticks and labels, and the ideal line with its legend entry
 * at *ly. */
static void svg_frame(FILE *f, const struct axes *a, double *ly)
{
    /* y grid and ticks */
    double step = nice_step(a->ymax);
    for (unsigned k = 0; k * step <= a->ymax + 1e-9; k++) {
        double v = k * step, y = ax_y(a, v);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>\n",
                PX0, y, PX1, y);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", PX0 - 6,
                y + 4, v);
    }
    /* x ticks: the thread counts measured */
    for (unsigned k = 0; k < a->nx; k++) {
        double x = ax_x(a, a->xs[k]);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n",
                x, PY1, x, PY1 + 5);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%u</text>\n", x,
                PY1 + 18, a->xs[k]);
    }
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", PX0,
            PY1, PX1, PY1);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", PX0,
            PY0, PX0, PY1);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">threads</text>\n",
            (PX0 + PX1) / 2, PY1 + 40);
    fprintf(f, "<text x=\"18\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 18 %.1f)"
               "\">speed-up over serial</text>\n",
            (PY0 + PY1) / 2, (PY0 + PY1) / 2);

    /* the ideal: speed-up == threads */
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" "
               "stroke-dasharray=\"6,4\" points=\"",
            IDEAL_COLOR);
    for (unsigned k = 0; k < a->nx; k++)
        fprintf(f, "%s%.1f,%.1f", k ? " " : "", ax_x(a, a->xs[k]), ax_y(a, a->xs[k]));
    fputs("\"/>\n", f);

    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
               "stroke-width=\"1.5\" stroke-dasharray=\"6,4\"/>\n"
               "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">ideal (speed-up = threads)</text>\n",
            LEGEND_X, *ly, LEGEND_X + 20, *ly, IDEAL_COLOR, LEGEND_X + 26, *ly + 4);
}

/* One CPU backend's line, its points in thread order, and its legend entry below *ly. `order`
 * has room for every row. Draws nothing for a backend with no finite point. */
/* An error bar through a point: the speed-ups of the middle half of its runs (quartile to
 * quartile), where the row carries its spread; clipped to the plot. */
static void svg_spread(FILE *f, const hy_result_row *r, const hc_derived *dr,
                       const struct axes *a, const char *color)
{
    double lo, hi;
    if (!isfinite(dr->speedup) || dr->speedup <= 0 || !middle_half(r, &lo, &hi))
        return;
    double base = row_throughput(r) / dr->speedup; /* serial's throughput */
    double s_lo = lo / base, s_hi = hi / base;
    s_hi = s_hi > a->ymax ? a->ymax : s_hi;
    double x = ax_x(a, r->threads), y0 = ax_y(a, s_lo), y1 = ax_y(a, s_hi);
    fprintf(f, "<path class=\"spread\" d=\"M%.1f,%.1fV%.1fM%.1f,%.1fH%.1fM%.1f,%.1fH%.1f\" "
               "stroke=\"%s\" stroke-width=\"1.2\" fill=\"none\"/>\n",
            x, y0, y1, x - 3, y0, x + 3, x - 3, y1, x + 3, color);
}

static void svg_series(FILE *f, const hc_compare *c, const hc_derived *d, const struct axes *a,
                       const struct series *se, unsigned *order, double *ly)
{
    unsigned m = 0;
    for (unsigned i = 0; i < c->nrows; i++)
        if (in_series(se, &c->rows[i]) && c->rows[i].threads > 0 && isfinite(d[i].speedup))
            order[m++] = i;
    if (m == 0)
        return;
    for (unsigned i = 1; i < m; i++) /* insertion sort by threads: stable, few rows */
        for (unsigned j = i; j > 0 && c->rows[order[j - 1]].threads > c->rows[order[j]].threads;
             j--) {
            unsigned t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    char dash[48] = "";
    if (se->dash)
        snprintf(dash, sizeof dash, " stroke-dasharray=\"%s\"", se->dash);
    if (m > 1) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"",
                se->color, dash);
        for (unsigned i = 0; i < m; i++)
            fprintf(f, "%s%.1f,%.1f", i ? " " : "", ax_x(a, c->rows[order[i]].threads),
                    ax_y(a, d[order[i]].speedup));
        fputs("\"/>\n", f);
    }
    for (unsigned i = 0; i < m; i++) {
        svg_spread(f, &c->rows[order[i]], &d[order[i]], a, se->color);
        svg_marker(f, ax_x(a, c->rows[order[i]].threads), ax_y(a, d[order[i]].speedup),
                   se->color, shape_of(se), se->name, c->rows[order[i]].threads,
                   d[order[i]].speedup);
    }
    *ly += 20;
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
               "stroke-width=\"2\"%s/>\n",
            LEGEND_X, *ly, LEGEND_X + 20, *ly, se->color, dash);
    svg_marker(f, LEGEND_X + 10, *ly, se->color, shape_of(se), NULL, 0, 0);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">%s</text>\n", LEGEND_X + 26,
            *ly + 4, se->name);
}

static bool has_style(int backend)
{
    if (backend == HY_BACKEND_OPENCL) /* its own horizontal line, svg_opencl */
        return true;
    for (size_t s = 0; s < sizeof cpu_series / sizeof *cpu_series; s++)
        if (cpu_series[s].backend == backend)
            return true;
    return false;
}

/* Rows of a backend with no style in cpu_series (one added to the table after this chart
 * was drawn up, or one a newer daemon runs) still get a line and a legend entry, named from
 * the backend table, in a spare colour: one series per such backend, in order of first row. */
static void svg_other_series(FILE *f, const hc_compare *c, const hc_derived *d,
                             const struct axes *a, unsigned *order, double *ly)
{
    static const char *const spare[] = {"#e377c2", "#17becf", "#bcbd22", "#7f7f7f"};
    unsigned used = 0;
    for (unsigned i = 0; i < c->nrows; i++) {
        int b = c->rows[i].backend;
        bool seen = has_style(b);
        for (unsigned j = 0; j < i && !seen; j++)
            seen = c->rows[j].backend == b;
        if (seen)
            continue;
        char name[32];
        snprintf(name, sizeof name, "%s", hy_backend_name(b) ? hy_backend_name(b) : "");
        if (!name[0])
            snprintf(name, sizeof name, "backend %d", b);
        struct series se = {name, spare[used++ % (sizeof spare / sizeof *spare)], b, -1, false,
                            0, NULL, false};
        svg_series(f, c, d, a, &se, order, ly);
    }
}

/* An opencl row has no thread count of ours: a horizontal line at its speed-up, labelled with
 * its device, and a legend entry below *ly. */
static void svg_opencl(FILE *f, const hc_derived *dr, const struct axes *a, double *ly)
{
    double y = ax_y(a, dr->speedup);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
               "stroke-width=\"2\" stroke-dasharray=\"10,4,2,4\"/>\n",
            PX0, y, PX1, y, OPENCL_COLOR);
    *ly += 20;
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
               "stroke-width=\"2\" stroke-dasharray=\"10,4,2,4\"/>\n",
            LEGEND_X, *ly, LEGEND_X + 20, *ly, OPENCL_COLOR);
    /* The label sits in the legend: on the plot it would cross the CPU lines. */
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">opencl (", LEGEND_X + 26,
            *ly + 4);
    xml_text(f, dr->device);
    fprintf(f, ") %.2fx</text>\n", dr->speedup);
}

static int svg_write(FILE *f, const hc_compare *c)
{
    struct axes a = {0};
    a.xs = malloc(((size_t)c->nrows + 1) * sizeof *a.xs);
    hc_derived *d = malloc(((size_t)c->nrows + 1) * sizeof *d);
    unsigned *order = malloc(((size_t)c->nrows + 1) * sizeof *order);
    if (!a.xs || !d || !order) {
        free(a.xs), free(d), free(order);
        return HY_ENOMEM;
    }
    svg_axes(c, d, &a);
    svg_head(f, c);
    double ly = PY0 + 8; /* the legend's current entry */
    svg_frame(f, &a, &ly);
    for (size_t s = 0; s < sizeof cpu_series / sizeof *cpu_series; s++)
        svg_series(f, c, d, &a, &cpu_series[s], order, &ly);
    svg_other_series(f, c, d, &a, order, &ly);
    for (unsigned i = 0; i < c->nrows; i++)
        if (c->rows[i].backend == HY_BACKEND_OPENCL && isfinite(d[i].speedup))
            svg_opencl(f, &d[i], &a, &ly);
    if (has_pocl(c)) {
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-size=\"10\" "
                   "fill=\"#555555\">%s</text>\n",
                (double)SVG_W / 2, SVG_H - 8, POCL_FOOTNOTE);
    }
    fputs("</svg>\n", f);
    free(a.xs), free(d), free(order);
    return finish(f);
}

int hc_write_plot(const char *path, const hc_compare *c, hy_error *err)
{
    /* Drawn in memory first (a chart is a few kB), so that what is at the path is touched
     * only by hc_output_write, all at once. */
    char *svg = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&svg, &len);
    if (!f)
        return hy_error_set(err, HY_ENOMEM, "out of memory drawing the plot %s", path);
    c_numbers l;
    c_numbers_begin(&l);
    int rc = svg_write(f, c);
    c_numbers_end(&l);
    if (fclose(f) != 0 && rc == 0)
        rc = HY_ENOMEM;
    if (rc != 0) {
        free(svg);
        return hy_error_set(err, rc == HY_ENOMEM ? HY_ENOMEM : HY_ESYS,
                            "cannot draw the plot %s: %s", path,
                            rc == HY_ENOMEM ? "out of memory" : "the chart could not be built");
    }
    hc_chunk chunk = {svg, len, 0};
    rc = hc_output_write(path, "the plot", &chunk, 1, err);
    free(svg);
    return rc;
}

/* ---- single jobs ---- */

/* "native, 8 threads, CPU" / "locked, 4 threads, lock held, CPU" / "opencl, PoCL CPU
 * (pthread-…)" / "process, 4 workers, pipe transport, CPU" — what ran the job. */
static void describe_where(char *b, size_t cap, const hy_result_row *r, const char *device_name)
{
    char dev[160];
    if (r->backend == HY_BACKEND_OPENCL) {
        clean(dev, sizeof dev, device_name);
        snprintf(b, cap, "opencl, %s%s%s%s", row_device(r), device_name ? " (" : "", dev,
                 device_name ? ")" : "");
    } else if (r->backend == HY_BACKEND_PROCESS) {
        snprintf(b, cap, "process, %u worker process%s, %s transport, CPU", r->threads,
                 r->threads == 1 ? "" : "es", row_transport(r));
    } else if (r->backend == HY_BACKEND_LOCKED) {
        snprintf(b, cap, "locked, %u thread%s, lock %s, CPU", r->threads,
                 r->threads == 1 ? "" : "s", r->flags & HY_ROW_NOGIL ? "released" : "held");
    } else {
        snprintf(b, cap, "%s, %u thread%s, CPU", backend_name(r->backend), r->threads,
                 r->threads == 1 ? "" : "s");
    }
}

/* A byte count for people: 512 B, 1.5 KiB, 76.3 MiB. */
static void fmt_bytes(char *b, size_t cap, uint64_t v)
{
    static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB"};
    if (v < 1024) {
        snprintf(b, cap, "%" PRIu64 " B", v);
        return;
    }
    double x = (double)v / 1024;
    int k = 0;
    while (x >= 1024 && k < 3)
        x /= 1024, k++;
    snprintf(b, cap, "%.1f %s", x, unit[k]);
}

/* The time line shared by pi and sort, and the breakdown of a locked, opencl or process
 * run. */
/* Who did what in a hybrid run: each side's share of the work and its time, the devices'
 * transfers, and how well the split kept everyone busy. */
static void print_hybrid(FILE *f, const hy_result_row *r)
{
    double cpu = r->n ? 100.0 * (double)r->cpu_items / (double)r->n : 0;
    if (r->devices_used == 0) {
        fprintf(f, "hybrid: the native pool ran it alone%s\n",
                r->flags & HY_ROW_NO_GAIN
                    ? " (the rates earlier hybrid sorts measured predict it faster than a "
                      "device alone or a split)"
                : r->flags & HY_ROW_WHOLE
                    ? " (the array is too small, or its keys too crowded, for the pool's "
                      "first pass to hand a device a range)"
                : r->flags & HY_ROW_SHARED_CORES
                    ? " (the OpenCL devices here are CPU devices on the pool's own cores; "
                      "opencl.hybrid_cpu_devices in hybridd.conf(5) adds them)"
                    : " (no OpenCL device is served)");
        return;
    }
    if (r->flags & HY_ROW_NO_GAIN)
        fprintf(f, "hybrid: one OpenCL device ran it alone (the rates earlier hybrid sorts "
                   "measured predict it faster than the pool alone or a split)\n");
    fprintf(f, "hybrid: native pool %.1f%% (%u chunk%s, busy %.3f ms), %u OpenCL device%s "
               "%.1f%% (%u chunk%s, busy %.3f ms)",
            cpu, r->cpu_chunks, r->cpu_chunks == 1 ? "" : "s", ms(r->cpu_busy_ns),
            r->devices_used, r->devices_used == 1 ? "" : "s", 100.0 - cpu, r->dev_chunks,
            r->dev_chunks == 1 ? "" : "s", ms(r->dev_busy_ns));
    if (r->balance_ppm)
        fprintf(f, ", balance efficiency %.2f", r->balance_ppm / 1e6);
    fputc('\n', f);
    fprintf(f, "hybrid devices: h2d %.3f ms, kernel %.3f ms, d2h %.3f ms, %u launches\n",
            ms(r->h2d_ns), ms(r->kernel_ns), ms(r->d2h_ns), r->launches);
    if (r->flags & HY_ROW_SHARED_CORES)
        fprintf(f, "hybrid: OpenCL CPU devices were left out: they share the pool's cores\n");
}

static void print_time(FILE *f, const hy_result_row *r, const char *unit)
{
    char thr[32];
    fmt_si(thr, sizeof thr, row_throughput(r));
    if (r->repeat > 1 && r->mean_ns > 0)
        fprintf(f, "time %.3f ms (median of %u runs; min %.3f, max %.3f; mean %.3f \xc2\xb1 "
                   "%.3f), %s %s/s\n",
                ms(r->median_ns), r->repeat, ms(r->min_ns), ms(r->max_ns), ms(r->mean_ns),
                ms(r->stddev_ns), thr, unit);
    else if (r->repeat > 1)
        fprintf(f, "time %.3f ms (median of %u runs; min %.3f, max %.3f), %s %s/s\n",
                ms(r->median_ns), r->repeat, ms(r->min_ns), ms(r->max_ns), thr, unit);
    else
        fprintf(f, "time %.3f ms, %s %s/s\n", ms(r->median_ns), thr, unit);
    if (r->warmup_ns > 0)
        fprintf(f, "first run (warm-up, not counted) %.3f ms\n", ms(r->warmup_ns));
    hc_derived d;
    derive_row(r, NAN, &d);
    if (r->backend == HY_BACKEND_LOCKED) {
        fprintf(f, "lock: %" PRIu64 " hand-offs, waited %.3f ms, held %.3f ms", r->lock_handoffs,
                ms(r->lock_wait_ns), ms(r->lock_hold_ns));
        if (isfinite(d.wait_share))
            fprintf(f, " (%.1f%% of the threads' time waiting)", 100 * d.wait_share);
        fputc('\n', f);
    }
    if (r->backend == HY_BACKEND_OPENCL) {
        fprintf(f, "opencl: h2d %.3f ms, kernel %.3f ms, d2h %.3f ms", ms(r->h2d_ns),
                ms(r->kernel_ns), ms(r->d2h_ns));
        if (r->overlap_ns) /* copies under kernels: counted once, in neither h2d nor d2h */
            fprintf(f, " (and %.3f ms of copies under the kernels)", ms(r->overlap_ns));
        if (isfinite(d.transfer_share))
            fprintf(f, " (transfer %.1f%%)", 100 * d.transfer_share);
        fprintf(f, ", %u launches", r->launches);
        if (r->passes)
            fprintf(f, ", %u passes over the keys", r->passes);
        if (r->bytes_moved) {
            char moved[32];
            fmt_bytes(moved, sizeof moved, r->bytes_moved);
            fprintf(f, ", %s copied", moved);
        }
        fputc('\n', f);
        if (r->flags & HY_ROW_POCL_CPU)
            fprintf(f, "%s\n", POCL_FOOTNOTE);
    }
    if (r->backend == HY_BACKEND_HYBRID)
        print_hybrid(f, r);
    if (r->backend == HY_BACKEND_PROCESS) {
        char moved[32];
        fmt_bytes(moved, sizeof moved, r->bytes_moved);
        fprintf(f, "process: sending parts %.3f ms, running %.3f ms (merge %.3f ms), receiving "
                   "%.3f ms",
                ms(r->h2d_ns), ms(r->kernel_ns), ms(r->merge_ns), ms(r->d2h_ns));
        if (isfinite(d.transfer_share))
            fprintf(f, " (moving data %.1f%%)", 100 * d.transfer_share);
        fprintf(f, ", %s moved through the workers' sockets%s\n", moved,
                r->transport == HY_TRANSPORT_SHM ? " (shm: offsets only)" : "");
        if (r->workers_started)
            fprintf(f, "process: %u worker%s restarted first (%.3f ms)\n", r->workers_started,
                    r->workers_started == 1 ? " was" : "s were", ms(r->startup_ns));
    }
}

/* What the daemon's history said of a single job: the configuration backend auto chose, and
 * why (predicted fastest, or run to learn it), or the prediction for the one named. */
static void print_prediction(FILE *f, const hy_result_row *r, const char *where)
{
    if (r->flags & HY_ROW_EXPLORE)
        fprintf(f, "auto explored %s (the daemon's history has too few runs of it at this "
                   "size; took %.3f ms)\n", where, ms(r->median_ns));
    else if ((r->flags & HY_ROW_AUTO) && r->ranks > 1) /* chosen for one rank's part */
        fprintf(f, "auto chose %s (predicted fastest for each rank's part, %.3f ms on one "
                   "daemon; the span took %.3f ms)\n", where, ms(r->predicted_ns),
                ms(r->median_ns));
    else if (r->flags & HY_ROW_AUTO)
        fprintf(f, "auto chose %s (predicted fastest, %.3f ms; took %.3f ms)\n", where,
                ms(r->predicted_ns), ms(r->median_ns));
    else if (r->predicted_ns)
        fprintf(f, "the daemon's history predicted %.3f ms\n", ms(r->predicted_ns));
}

static void json_single_tail(FILE *f, const hy_result_row *r, const char *device_name)
{
    hc_derived d;
    derive_row(r, NAN, &d);
    json_s(f, "device_name", r->backend == HY_BACKEND_OPENCL ? device_name : NULL);
    fputc(',', f);
    json_row_fields(f, r);
    json_dbl(f, "throughput", d.throughput);
    json_dbl(f, "wait_share", r->backend == HY_BACKEND_LOCKED ? d.wait_share : NAN);
    json_dbl(f, "transfer_share", has_split(r) ? d.transfer_share : NAN);
}

/* ---- a span's per-rank records (RESULT rank records) ---- */

/* The whole span: the shares, times and bytes of every rank added up. */
static hy_rank_row ranks_total(const hy_rank_row *rr, unsigned n)
{
    hy_rank_row all = {0};
    for (unsigned i = 0; i < n; i++) {
        all.share += rr[i].share;
        all.compute_ns += rr[i].compute_ns;
        all.exchange_ns += rr[i].exchange_ns;
        all.io_ns += rr[i].io_ns;
        all.bytes_sent += rr[i].bytes_sent;
    }
    return all;
}

static void rank_line(FILE *f, const char *who, const hy_rank_row *x, uint64_t n)
{
    char sent[32];
    fmt_bytes(sent, sizeof sent, x->bytes_sent);
    fprintf(f, "  %-6s %14" PRIu64 " %6.1f%% %12.3f %12.3f %12.3f %12s\n", who, x->share,
            n ? 100.0 * (double)x->share / (double)n : 0.0, ms(x->compute_ns),
            ms(x->exchange_ns), ms(x->io_ns), sent);
}

/* Under the row: who did which share and where its time went (the run nearest the median). */
static void ranks_text(FILE *f, const hy_rank_row *rr, unsigned n, const char *unit)
{
    if (n == 0)
        return;
    hy_rank_row all = ranks_total(rr, n);
    fprintf(f, "per rank (ms; exchange: messages, queues and waits in the span):\n");
    fprintf(f, "  %-6s %14s %7s %12s %12s %12s %12s\n", "rank", unit, "share", "compute",
            "exchange", "I/O", "sent");
    for (unsigned i = 0; i < n; i++) {
        char who[16];
        snprintf(who, sizeof who, "%u", rr[i].rank);
        rank_line(f, who, &rr[i], all.share);
    }
    rank_line(f, "all", &all, all.share);
}

static void rank_json(FILE *f, const hy_rank_row *x, bool with_rank)
{
    fputc('{', f);
    if (with_rank)
        fprintf(f, "\"rank\":%u,", x->rank);
    fprintf(f, "\"share\":%" PRIu64, x->share);
    json_u64(f, "compute_ns", x->compute_ns);
    json_u64(f, "exchange_ns", x->exchange_ns);
    json_u64(f, "io_ns", x->io_ns);
    json_u64(f, "bytes_sent", x->bytes_sent);
    fputc('}', f);
}

static void ranks_json(FILE *f, const hy_rank_row *rr, unsigned n)
{
    if (n == 0)
        return;
    json_key(f, "per_rank");
    fputc('[', f);
    for (unsigned i = 0; i < n; i++) {
        if (i)
            fputc(',', f);
        rank_json(f, &rr[i], true);
    }
    fputc(']', f);
    json_key(f, "per_rank_all");
    hy_rank_row all = ranks_total(rr, n);
    rank_json(f, &all, false);
}

/* CSV of a single job: one line per rank, then the whole ("all", with the row's median
 * time); a job on one daemon has the "all" line alone. */
static int ranks_csv(FILE *f, const hy_result_row *r, const hy_rank_row *rr, unsigned n)
{
    fputs("rank,share,compute_ns,exchange_ns,io_ns,bytes_sent,median_ns\n", f);
    for (unsigned i = 0; i < n; i++)
        fprintf(f, "%u,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",\n",
                rr[i].rank, rr[i].share, rr[i].compute_ns, rr[i].exchange_ns, rr[i].io_ns,
                rr[i].bytes_sent);
    hy_rank_row all = n ? ranks_total(rr, n) : (hy_rank_row){.share = r->n};
    fprintf(f, "all,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 "\n",
            all.share, all.compute_ns, all.exchange_ns, all.io_ns, all.bytes_sent,
            r->median_ns);
    return finish(f);
}

int hc_print_pi(FILE *f, const hc_pi_report *rep, enum hc_format fmt)
{
    const hy_result_row *r = rep->row;
    c_numbers l;
    c_numbers_begin(&l);
    double error = fabs(r->estimate - M_PI);
    if (fmt == HC_CSV) {
        int rc = ranks_csv(f, r, rep->ranks, rep->nranks);
        c_numbers_end(&l);
        return rc;
    }
    if (fmt == HC_JSON) {
        fputs("{\"job\":\"pi\"", f);
        json_u64(f, "seed", rep->seed);
        json_u64(f, "ranks", r->ranks ? r->ranks : 1); /* MPI ranks it spanned (1: one daemon) */
        json_dbl(f, "error", error);
        json_single_tail(f, r, rep->device_name);
        ranks_json(f, rep->ranks, rep->nranks);
        fputs("}\n", f);
    } else {
        char where[320];
        describe_where(where, sizeof where, r, rep->device_name);
        fprintf(f, "pi ≈ %.9f (error %.2g against π, standard error %.2g)\n", r->estimate,
                error, r->std_error);
        fprintf(f, "hits %" PRIu64 " of %" PRIu64 " samples%s, seed %" PRIu64 "\n", r->hits,
                r->n, r->copies > 1 ? " in each copy" : "", rep->seed);
        fprintf(f, "ran on %s, %s mode", where, mode_name(r->mode));
        if (r->copies > 1)
            fprintf(f, ", %u copies at once", r->copies);
        if (r->ranks > 1)
            fprintf(f, ", across %u MPI ranks", r->ranks);
        fputc('\n', f);
        print_time(f, r, "samples");
        ranks_text(f, rep->ranks, rep->nranks, "samples");
        print_prediction(f, r, where);
    }
    int rc = finish(f);
    c_numbers_end(&l);
    return rc;
}

int hc_print_sort(FILE *f, const hc_sort_report *rep, enum hc_format fmt)
{
    const hy_result_row *r = rep->row;
    c_numbers l;
    c_numbers_begin(&l);
    if (fmt == HC_CSV) {
        int rc = ranks_csv(f, r, rep->ranks, rep->nranks);
        c_numbers_end(&l);
        return rc;
    }
    if (fmt == HC_JSON) {
        fputs("{\"job\":\"sort\"", f);
        json_s(f, "dtype", hy_dtype_name(rep->dtype));
        json_s(f, "source", rep->source);
        json_s(f, "output", rep->output);
        json_key(f, "checked");
        fputs(rep->checked < 0 ? "null" : rep->checked ? "true" : "false", f);
        json_u64(f, "ranks", r->ranks ? r->ranks : 1); /* MPI ranks it spanned (1: one daemon) */
        json_single_tail(f, r, rep->device_name);
        ranks_json(f, rep->ranks, rep->nranks);
        fputs("}\n", f);
    } else {
        char where[320], source[256], output[256];
        describe_where(where, sizeof where, r, rep->device_name);
        clean(source, sizeof source, rep->source);
        fprintf(f, "sort: %" PRIu64 " %s from %s%s\n", r->n, nz(hy_dtype_name(rep->dtype), "?"),
                source, r->copies > 1 ? " (each copy)" : "");
        fprintf(f, "sorted on %s, %s mode", where, mode_name(r->mode));
        if (r->copies > 1)
            fprintf(f, ", %u copies at once", r->copies);
        if (r->ranks > 1)
            fprintf(f, ", across %u MPI ranks", r->ranks);
        fputc('\n', f);
        print_time(f, r, "elements");
        ranks_text(f, rep->ranks, rep->nranks, "elements");
        print_prediction(f, r, where);
        fprintf(f, "order: %s\n", rep->checked < 0   ? "not checked"
                                  : rep->checked > 0 ? "checked, ascending"
                                                     : "checked: NOT in order");
        if (rep->output) {
            clean(output, sizeof output, rep->output);
            fprintf(f, "output: %s\n", output);
        }
    }
    int rc = finish(f);
    c_numbers_end(&l);
    return rc;
}

/* ---- STATUS and DEVICES ---- */

static void world_json(FILE *f, const hy_msg_ranks_reply *r, bool devices);
static void world_text(FILE *f, const hy_msg_ranks_reply *r, bool devices);

int hc_print_status(FILE *f, const hy_msg_status_reply *s, enum hc_format fmt)
{
    return hc_print_status_world(f, s, NULL, false, fmt);
}

int hc_print_status_world(FILE *f, const hy_msg_status_reply *s, const hy_msg_ranks_reply *w,
                          bool every, enum hc_format fmt)
{
    c_numbers l;
    c_numbers_begin(&l);
    char version[HY_IPC_NAME_MAX + 1];
    size_t vlen = s->version.p ? s->version.len : 0;
    if (vlen > HY_IPC_NAME_MAX)
        vlen = HY_IPC_NAME_MAX;
    memcpy(version, s->version.p ? s->version.p : "", vlen);
    version[vlen] = '\0';
    if (fmt == HC_JSON) {
        fputs("{\"version\":", f);
        hc_json_string(f, s->version.p, vlen);
        json_u64(f, "uptime_ns", s->uptime_ns);
        json_u64(f, "clients", s->clients);
        fprintf(f, ",\"jobs\":{\"queued\":%" PRIu64 ",\"running\":%" PRIu64 ",\"done\":%" PRIu64
                   ",\"failed\":%" PRIu64 ",\"cancelled\":%" PRIu64 "}",
                s->jobs_queued, s->jobs_running, s->jobs_done, s->jobs_failed,
                s->jobs_cancelled);
        fputs(",\"backends\":{", f);
        /* STATUS's per-backend arrays are indexed by hy_backend - 1. */
        for (int b = 0; b < HY_BACKEND_COUNT; b++)
            fprintf(f, "%s\"%s\":{\"jobs\":%" PRIu64 ",\"busy_ns\":%" PRIu64 "}", b ? "," : "",
                    hy_backend_name(b + 1), s->backend_jobs[b], s->backend_busy_ns[b]);
        fputc('}', f);
        json_u64(f, "devices", s->devices);
        json_u64(f, "devices_usable", s->devices_usable);
        if (w && (every || (w->flags & HY_RANKS_MPI))) {
            json_key(f, "world");
            world_json(f, w, false);
        }
        fputs("}\n", f);
    } else {
        char v[4 * HY_IPC_NAME_MAX], up[32], busy[32];
        clean(v, sizeof v, version);
        fmt_uptime(up, sizeof up, s->uptime_ns);
        fprintf(f, "%s, up %s, %u client%s connected\n", v[0] ? v : "hybridd (no version)", up,
                s->clients, s->clients == 1 ? "" : "s");
        fprintf(f, "jobs: %" PRIu64 " queued, %" PRIu64 " running, %" PRIu64 " done, %" PRIu64
                   " failed, %" PRIu64 " cancelled\n",
                s->jobs_queued, s->jobs_running, s->jobs_done, s->jobs_failed,
                s->jobs_cancelled);
        for (int b = 0; b < HY_BACKEND_COUNT; b++) {
            fmt_busy(busy, sizeof busy, s->backend_busy_ns[b]);
            fprintf(f, "  %-7s %8" PRIu64 " run%s  busy %s\n", hy_backend_name(b + 1),
                    s->backend_jobs[b], s->backend_jobs[b] == 1 ? " " : "s", busy);
        }
        fprintf(f, "OpenCL devices: %u usable of %u found\n", s->devices_usable, s->devices);
        if (w && (every || (w->flags & HY_RANKS_MPI)))
            world_text(f, w, false);
    }
    int rc = finish(f);
    c_numbers_end(&l);
    return rc;
}

/* ---- MODEL ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static bool same_config(const hy_cell_record *a, const hy_cell_record *b)
{
    return a->work == b->work && a->dtype == b->dtype && a->backend == b->backend &&
           a->transport == b->transport && a->device == b->device && a->threads == b->threads;
}

static int cmp_cells(const void *pa, const void *pb)
{
    const hy_cell_record *a = pa, *b = pb;
    const uint32_t ka[] = {a->work, a->dtype, a->backend, a->threads, a->transport, a->device,
                           a->log2n};
    const uint32_t kb[] = {b->work, b->dtype, b->backend, b->threads, b->transport, b->device,
                           b->log2n};
    for (size_t i = 0; i < sizeof ka / sizeof ka[0]; i++)
        if (ka[i] != kb[i])
            return ka[i] < kb[i] ? -1 : 1;
    return 0;
}

/* How well the sizes around a trusted cell predict it: log-log interpolation between its
 * trusted neighbours one size bucket below and above (at the buckets' middles), against
 * its own median, as a signed share of it; NAN without both neighbours. The same kind of
 * prediction the daemon makes for sizes it has not measured. */
static double fit_error(const hy_cell_record *c, size_t i, size_t n)
{
    if (!(c[i].flags & HY_CELL_TRUSTED) || i == 0 || i + 1 >= n)
        return NAN;
    const hy_cell_record *lo = &c[i - 1], *hi = &c[i + 1];
    if (!same_config(lo, &c[i]) || !same_config(hi, &c[i]) || lo->log2n + 1 != c[i].log2n ||
        hi->log2n != c[i].log2n + 1 || !(lo->flags & HY_CELL_TRUSTED) ||
        !(hi->flags & HY_CELL_TRUSTED) || !lo->median_ns || !hi->median_ns || !c[i].median_ns)
        return NAN;
    /* buckets one apart on both sides: the middle one's log time is their mean */
    double predicted = sqrt((double)lo->median_ns * (double)hi->median_ns);
    return (predicted - (double)c[i].median_ns) / (double)c[i].median_ns;
}

static void cell_name(char *b, size_t cap, const hy_cell_record *c)
{
    char where[48];
    if (c->backend == HY_BACKEND_OPENCL)
        snprintf(where, sizeof where, "dev %u", c->device);
    else if (c->backend == HY_BACKEND_PROCESS)
        snprintf(where, sizeof where, "%uT %s", c->threads,
                 nz(hy_transport_name(c->transport), "?"));
    else
        snprintf(where, sizeof where, "%uT", c->threads);
    snprintf(b, cap, "%s%s%s %s %s", c->work == HY_JOB_PI ? "pi" : "sort", c->dtype ? " " : "",
             c->dtype ? nz(hy_dtype_name(c->dtype), "?") : "", backend_name(c->backend), where);
}

int hc_print_model(FILE *f, const hy_msg_model_reply *m, enum hc_format fmt)
{
    c_numbers l;
    c_numbers_begin(&l);
    size_t n = m->ncells;
    hy_cell_record *c = malloc((n ? n : 1) * sizeof *c);
    if (!c) {
        c_numbers_end(&l);
        return HY_ENOMEM;
    }
    memcpy(c, m->cells ? m->cells : m->cells_in, n * sizeof *c);
    qsort(c, n, sizeof *c, cmp_cells);
    double *errs = malloc((n ? n : 1) * sizeof *errs);
    unsigned nerr = 0;
    for (size_t i = 0; errs && i < n; i++) {
        double e = fit_error(c, i, n);
        if (isfinite(e))
            errs[nerr++] = fabs(e);
    }
    double med = NAN;
    if (nerr) {
        qsort(errs, nerr, sizeof *errs, cmp_double);
        med = nerr % 2 ? errs[nerr / 2] : (errs[nerr / 2 - 1] + errs[nerr / 2]) / 2;
    }
    if (fmt == HC_JSON) {
        fprintf(f, "{\"cells\":[");
        for (size_t i = 0; i < n; i++) {
            fprintf(f, "%s{\"job\":\"%s\"", i ? "," : "",
                    c[i].work == HY_JOB_PI ? "pi" : "sort");
            json_s(f, "dtype", c[i].dtype ? hy_dtype_name(c[i].dtype) : NULL);
            json_s(f, "backend", backend_name(c[i].backend));
            json_u64(f, "threads", c[i].threads);
            json_s(f, "transport", hy_transport_name(c[i].transport));
            json_u64(f, "device", c[i].device);
            json_u64(f, "log2n", c[i].log2n);
            json_u64(f, "samples", c[i].samples);
            json_u64(f, "median_ns", c[i].median_ns);
            json_bool(f, "trusted", c[i].flags & HY_CELL_TRUSTED);
            json_dbl(f, "fit_error", fit_error(c, i, n));
            fputc('}', f);
        }
        fprintf(f, "],\"total\":%u,\"trust\":%u,\"ring\":%u", m->total, m->trust, m->ring);
        json_dbl(f, "median_fit_error", med);
        fputs("}\n", f);
    } else if (n == 0) {
        fputs("the daemon has measured nothing yet\n", f);
    } else {
        fprintf(f, "%-30s %8s %8s %12s  %-7s %s\n", "CONFIGURATION", "N", "SAMPLES",
                "MEDIAN MS", "TRUSTED", "FIT");
        for (size_t i = 0; i < n; i++) {
            char name[96], fit[32] = "-";
            cell_name(name, sizeof name, &c[i]);
            double e = fit_error(c, i, n);
            if (isfinite(e))
                snprintf(fit, sizeof fit, "%+.1f%%", 100 * e);
            fprintf(f, "%-30s %6s%-2u %8u %12.3f  %-7s %s\n", name, "2^", c[i].log2n,
                    c[i].samples, ms(c[i].median_ns),
                    c[i].flags & HY_CELL_TRUSTED ? "yes" : "no", fit);
        }
        fprintf(f, "\n%u cell%s", m->total, m->total == 1 ? "" : "s");
        if (m->total > n)
            fprintf(f, " (the first %zu shown)", n);
        fprintf(f, "; a cell keeps its last %u runs and is trusted from %u", m->ring, m->trust);
        if (nerr)
            fprintf(f, "; neighbours predict a trusted cell within %.1f%% (median of %u)",
                    100 * med, nerr);
        fputs("\n", f);
    }
    free(errs);
    free(c);
    int rc = finish(f);
    c_numbers_end(&l);
    return rc;
}

/* ---- JOBS ---- */

static const char *job_kind_name(int job)
{
    switch (job) {
    case HY_JOB_PI: return "pi";
    case HY_JOB_SORT: return "sort";
    case HY_JOB_COMPARE_PI: return "compare pi";
    case HY_JOB_COMPARE_SORT: return "compare sort";
    default: return "?";
    }
}

/* "native 2T", "opencl dev 0", "5 rows": where a job runs. */
static void job_where(char *b, size_t cap, const hy_job_record *j)
{
    if (j->backend == 0)
        snprintf(b, cap, "%u row%s%s", j->nrows, j->nrows == 1 ? "" : "s",
                 j->device != HY_JOB_DEVICE_NONE ? " (with opencl)" : "");
    else if (j->device != HY_JOB_DEVICE_NONE)
        snprintf(b, cap, "%s dev %u", backend_name(j->backend), j->device);
    else
        snprintf(b, cap, "%s %uT", backend_name(j->backend), j->threads);
}

/* From the daemon's performance history: "about 3s left", "starts in about 5s", or "-". */
static void job_estimate(char *b, size_t cap, const hy_job_record *j)
{
    char t[32];
    if (j->state == 2 && j->predicted_ns > 0) {
        uint64_t left = j->predicted_ns > j->running_ns ? j->predicted_ns - j->running_ns : 0;
        fmt_uptime(t, sizeof t, left);
        snprintf(b, cap, "about %s left", t);
    } else if (j->state != 2 && j->wait_ns > 0) {
        fmt_uptime(t, sizeof t, j->wait_ns);
        snprintf(b, cap, "starts in about %s", t);
    } else {
        snprintf(b, cap, "-");
    }
}

static void jobs_json(FILE *f, const hy_msg_jobs_reply *r, const hy_job_record *jobs,
                      const char *const *owners)
{
    fputs("{\"jobs\":[", f);
    for (unsigned i = 0; i < r->njobs; i++) {
        const hy_job_record *j = &jobs[i];
        fprintf(f, "%s{\"id\":%" PRIu64, i ? "," : "", j->job_id);
        json_u64(f, "uid", j->uid);
        json_s(f, "user", owners && owners[i] ? owners[i] : NULL);
        json_s(f, "state", j->state == 2 ? "running" : "queued");
        json_s(f, "job", job_kind_name(j->job));
        json_u64(f, "n", j->n);
        json_s(f, "dtype", j->dtype ? hy_dtype_name(j->dtype) : NULL);
        json_s(f, "backend", j->backend ? backend_name(j->backend) : NULL);
        json_key(f, "device");
        if (j->device == HY_JOB_DEVICE_NONE)
            fputs("null", f);
        else
            fprintf(f, "%u", j->device);
        json_u64(f, "threads", j->threads);
        json_u64(f, "rows", j->nrows);
        json_u64(f, "row", j->row);
        json_u64(f, "queued_ns", j->queued_ns);
        json_u64(f, "running_ns", j->running_ns);
        json_u64(f, "done", j->done);
        json_u64(f, "total", j->total);
        json_u64(f, "predicted_ns", j->predicted_ns);
        json_u64(f, "wait_ns", j->wait_ns);
        fputc('}', f);
    }
    fprintf(f, "],\"all_users\":%s,\"others\":{\"queued\":%u,\"running\":%u}}\n",
            r->flags & HY_JOBS_ALL ? "true" : "false", r->others_queued, r->others_running);
}

static void jobs_lines(FILE *f, const hy_msg_jobs_reply *r, const hy_job_record *jobs,
                       const char *const *owners)
{
    if (r->njobs == 0)
        fprintf(f, "no job of %s is queued or running\n",
                r->flags & HY_JOBS_ALL ? "anyone's" : "yours");
    else
        fprintf(f, "%6s  %-10s %-8s %8s  %-12s %8s  %-16s %-18s %s\n", "JOB", "USER", "STATE",
                "TIME", "KIND", "N", "ON", "PROGRESS", "ESTIMATE");
    for (unsigned i = 0; i < r->njobs; i++) {
        const hy_job_record *j = &jobs[i];
        char user[4 * 32 + 1], when[32], n[32], kind[32], where[48], prog[48], est[48];
        clean(user, sizeof user, owners && owners[i] ? owners[i] : "?");
        fmt_uptime(when, sizeof when, j->state == 2 ? j->running_ns : j->queued_ns);
        fmt_si(n, sizeof n, (double)j->n);
        snprintf(kind, sizeof kind, "%s%s%s", job_kind_name(j->job), j->dtype ? " " : "",
                 j->dtype ? hy_dtype_name(j->dtype) : "");
        job_where(where, sizeof where, j);
        if (j->state != 2 || j->total == 0)
            snprintf(prog, sizeof prog, "-");
        else
            snprintf(prog, sizeof prog, "%.0f%% (row %u of %u)", 100.0 * (double)j->done /
                     (double)j->total, j->row + 1, j->nrows);
        job_estimate(est, sizeof est, j);
        fprintf(f, "%6" PRIu64 "  %-10s %-8s %8s  %-12s %8s  %-16s %-18s %s\n", j->job_id, user,
                j->state == 2 ? "running" : "queued", when, kind, n, where, prog, est);
    }
    if (r->others_queued || r->others_running)
        fprintf(f, "other users: %u queued, %u running%s\n", r->others_queued,
                r->others_running, r->flags & HY_JOBS_ALL ? "" : " (--all lists them, for root)");
}

int hc_print_jobs(FILE *f, const hy_msg_jobs_reply *r, const char *const *owners,
                  enum hc_format fmt)
{
    c_numbers l;
    c_numbers_begin(&l);
    const hy_job_record *jobs = r->jobs ? r->jobs : r->jobs_in;
    if (fmt == HC_JSON)
        jobs_json(f, r, jobs, owners);
    else
        jobs_lines(f, r, jobs, owners);
    int rc = finish(f);
    c_numbers_end(&l);
    return rc;
}

static const char *device_label(const hy_device_record *r)
{
    if (r->flags & HY_DEV_POCL_CPU)
        return "PoCL CPU";
    switch (r->type) {
    case 1: return "GPU";
    case 2: return "CPU";
    case 3: return "accelerator";
    }
    return "other";
}

/* The record's type as a word for JSON (protocol.md: 0 other, 1 GPU, 2 CPU, 3 accelerator). */
static const char *device_type_key(const hy_device_record *r)
{
    switch (r->type) {
    case 1: return "gpu";
    case 2: return "cpu";
    case 3: return "accelerator";
    }
    return "other";
}

/* The JSON list of n device records. */
static void device_list_json(FILE *f, const hy_device_record *dev, unsigned n)
{
    fputc('[', f);
    for (unsigned i = 0; i < n; i++) {
        const hy_device_record *r = &dev[i];
        fprintf(f, "%s{\"index\":%u", i ? "," : "", r->index);
        json_s(f, "name", r->name);
        /* null from a daemon whose records have no platform (protocol.md, 352 bytes) */
        json_s(f, "platform", r->platform[0] ? r->platform : NULL);
        json_s(f, "vendor", r->vendor);
        json_s(f, "driver", r->driver);
        json_s(f, "type", device_type_key(r));
        json_s(f, "label", device_label(r));
        json_bool(f, "usable", r->flags & HY_DEV_USABLE);
        json_bool(f, "pocl_cpu", r->flags & HY_DEV_POCL_CPU);
        json_u64(f, "compute_units", r->compute_units);
        json_u64(f, "global_mem", r->global_mem);
        json_u64(f, "max_alloc", r->max_alloc);
        json_s(f, "problem", r->problem[0] ? r->problem : NULL);
        fputc('}', f);
    }
    fputc(']', f);
}

static void devices_json(FILE *f, const hy_msg_devices_reply *d, const hy_device_record *dev,
                         unsigned n)
{
    fprintf(f, "{\"cpu\":{\"online\":%u,\"native_threads\":%u,\"locked_threads\":%u,"
               "\"switch_interval_us\":%u,\"process_workers\":%u},\"devices\":",
            d->cpu_online, d->native_threads, d->locked_threads, d->switch_interval_us,
            d->process_workers);
    device_list_json(f, dev, n);
    fputs("}\n", f);
}

/* One line per device, its name, label and platform columns lined up. */
static void devices_lines(FILE *f, const hy_device_record *dev, unsigned n)
{
    int wname = 0, wlabel = 0, wplat = 0;
    char name[4 * 96 + 1], plat[4 * 64 + 1];
    for (unsigned i = 0; i < n; i++) {
        clean(name, sizeof name, dev[i].name);
        clean(plat, sizeof plat, dev[i].platform[0] ? dev[i].platform : "-");
        int w = (int)text_width(name), wl = (int)strlen(device_label(&dev[i]));
        int wp = (int)text_width(plat);
        wname = w > wname ? w : wname;
        wlabel = wl > wlabel ? wl : wlabel;
        wplat = wp > wplat ? wp : wplat;
    }
    for (unsigned i = 0; i < n; i++) {
        const hy_device_record *r = &dev[i];
        char problem[4 * 128 + 1];
        clean(name, sizeof name, r->name);
        /* "-": a daemon that does not send the platform (a 352-byte record) */
        clean(plat, sizeof plat, r->platform[0] ? r->platform : "-");
        clean(problem, sizeof problem, r->problem);
        /* printf pads by bytes: pad by hand so UTF-8 names still line up */
        int chars = (int)text_width(name), pchars = (int)text_width(plat);
        fprintf(f, "  %2u  %s%*s  %-*s  %s%*s  %3u compute units  %6.1f GiB  ", r->index,
                name, wname - chars > 0 ? wname - chars : 0, "", wlabel, device_label(r),
                plat, wplat - pchars > 0 ? wplat - pchars : 0, "", r->compute_units,
                (double)r->global_mem / 1073741824.0);
        if (r->flags & HY_DEV_USABLE)
            fputs("usable\n", f);
        else
            fprintf(f, "not usable: %s\n", problem[0] ? problem : "(no reason given)");
    }
}

int hc_print_devices(FILE *f, const hy_msg_devices_reply *d, enum hc_format fmt)
{
    c_numbers l;
    c_numbers_begin(&l);
    const hy_device_record *dev = d->devices ? d->devices : d->devices_in;
    unsigned n = d->ndevices;
    if (!d->devices && n > HY_IPC_DEVICES_MAX)
        n = HY_IPC_DEVICES_MAX;
    if (fmt == HC_JSON) {
        devices_json(f, d, dev, n);
    } else {
        fprintf(f, "CPU: %u online; native pool %u threads; locked runtime %u threads, switch "
                   "interval %u us\n",
                d->cpu_online, d->native_threads, d->locked_threads, d->switch_interval_us);
        if (d->process_workers)
            fprintf(f, "process pool: %u single-threaded worker process%s\n",
                    d->process_workers, d->process_workers == 1 ? "" : "es");
        else
            fputs("process pool: off\n", f);
        if (n == 0)
            fputs("OpenCL devices: none\n", f);
        else
            fprintf(f, "OpenCL devices: %u\n", n);
        devices_lines(f, dev, n);
    }
    int rc = finish(f);
    c_numbers_end(&l);
    return rc;
}

/* ---- RANKS: every rank of an MPI job (devices --ranks, status) ---- */

static const hy_rank_record *rank_at(const hy_msg_ranks_reply *r, unsigned i)
{
    return &(r->ranks ? r->ranks : r->ranks_in)[i];
}

/* Rank i's device records: they follow one another in rank order from *at. A count that runs
 * past the list (a broken reply) is cut to what is there. */
static const hy_device_record *rank_devices(const hy_msg_ranks_reply *r, unsigned i,
                                            unsigned *at, unsigned *n)
{
    const hy_device_record *all = r->devices ? r->devices : r->devices_in;
    unsigned from = *at < r->ndevices ? *at : r->ndevices, want = rank_at(r, i)->ndevices;
    *n = want < r->ndevices - from ? want : r->ndevices - from;
    *at = from + *n;
    return all + from;
}

/* The records a reply holds, within what the decoder could have filled. */
static unsigned nranks_of(const hy_msg_ranks_reply *r)
{
    return r->ranks || r->nranks <= HY_IPC_RANKS_MAX ? r->nranks : HY_IPC_RANKS_MAX;
}

/* {"mpi":..,"rank":..,"size":..,"complete":..,"ranks":[...]}: each rank's node and pools and
 * devices (devices), or its counters. */
static void world_json(FILE *f, const hy_msg_ranks_reply *r, bool devices)
{
    fprintf(f, "{\"mpi\":%s,\"rank\":%u,\"size\":%u,\"complete\":%s,\"ranks\":[",
            r->flags & HY_RANKS_MPI ? "true" : "false", r->rank, r->size,
            r->flags & HY_RANKS_REPLY_ALL ? "true" : "false");
    unsigned at = 0, n;
    for (unsigned i = 0; i < nranks_of(r); i++) {
        const hy_rank_record *k = rank_at(r, i);
        const hy_device_record *dev = rank_devices(r, i, &at, &n);
        fprintf(f, "%s{\"rank\":%u", i ? "," : "", k->rank);
        json_s(f, "host", k->host);
        if (devices) {
            fprintf(f, ",\"cpu\":{\"online\":%u,\"native_threads\":%u,\"locked_threads\":%u,"
                       "\"process_workers\":%u}",
                    k->cpu_online, k->native_threads, k->locked_threads, k->process_workers);
            json_u64(f, "devices_usable", k->devices_usable);
            json_key(f, "devices");
            device_list_json(f, dev, n);
        } else {
            json_u64(f, "uptime_ns", k->uptime_ns);
            json_u64(f, "clients", k->clients);
            fprintf(f, ",\"jobs\":{\"queued\":%" PRIu64 ",\"running\":%" PRIu64 ",\"done\":%"
                       PRIu64 ",\"failed\":%" PRIu64 ",\"cancelled\":%" PRIu64 "}",
                    k->jobs_queued, k->jobs_running, k->jobs_done, k->jobs_failed,
                    k->jobs_cancelled);
        }
        fputc('}', f);
    }
    fputs("]}", f);
}

/* A line on the world, then one section per rank listed. */
static void world_text(FILE *f, const hy_msg_ranks_reply *r, bool devices)
{
    if (r->flags & HY_RANKS_MPI)
        fprintf(f, "MPI: rank %u of %u (hybridd --mpi)%s\n", r->rank, r->size,
                r->flags & HY_RANKS_REPLY_ALL ? "" : "; --ranks lists every rank");
    else
        fputs("MPI: not under MPI (hybridd --mpi); this daemon alone\n", f);
    unsigned at = 0, n;
    for (unsigned i = 0; i < nranks_of(r) && r->nranks > 0; i++) {
        const hy_rank_record *k = rank_at(r, i);
        const hy_device_record *dev = rank_devices(r, i, &at, &n);
        if (nranks_of(r) == 1 && !(r->flags & HY_RANKS_REPLY_ALL))
            break; /* the line above said it all */
        char host[4 * 64 + 1], up[32];
        clean(host, sizeof host, k->host);
        if (!devices) {
            fmt_uptime(up, sizeof up, k->uptime_ns);
            fprintf(f, "rank %u on %s: up %s, %u client%s; jobs %" PRIu64 " queued, %" PRIu64
                       " running, %" PRIu64 " done, %" PRIu64 " failed, %" PRIu64 " cancelled\n",
                    k->rank, host[0] ? host : "?", up, k->clients, k->clients == 1 ? "" : "s",
                    k->jobs_queued, k->jobs_running, k->jobs_done, k->jobs_failed,
                    k->jobs_cancelled);
            continue;
        }
        fprintf(f, "rank %u on %s: CPU %u online; native pool %u threads; locked runtime %u "
                   "threads; ", k->rank, host[0] ? host : "?", k->cpu_online, k->native_threads,
                k->locked_threads);
        if (k->process_workers)
            fprintf(f, "process pool %u worker process%s\n", k->process_workers,
                    k->process_workers == 1 ? "" : "es");
        else
            fputs("process pool off\n", f);
        if (n == 0)
            fputs("  OpenCL devices: none\n", f);
        else
            fprintf(f, "  OpenCL devices: %u, %u usable\n", n, k->devices_usable);
        devices_lines(f, dev, n);
    }
}

int hc_print_ranks(FILE *f, const hy_msg_ranks_reply *r, enum hc_format fmt)
{
    c_numbers l;
    c_numbers_begin(&l);
    if (fmt == HC_JSON) {
        world_json(f, r, true);
        fputc('\n', f);
    } else {
        world_text(f, r, true);
    }
    int rc = finish(f);
    c_numbers_end(&l);
    return rc;
}
