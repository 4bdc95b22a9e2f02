/* tests/daemon: the performance history on its own — the ring and its median, the first run
 * dropped, the trust threshold, predictions inside and outside the measured sizes, the file's
 * round trip, corrupt/truncated/foreign files set aside with their reason, and writers in
 * several processes that never leave a torn file for a reader. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "history.h"
#include "ipc.h"

static char dir[64];
static char path[128];

static void mk_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/hy-history-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/history", dir);
}

static void rm_dir(void)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(dir);
}

TestSuite(history, .init = mk_dir, .fini = rm_dir);

static const hy_history_key PI_SERIAL = {.work = HY_JOB_PI, .backend = HY_BACKEND_SERIAL,
                                         .threads = 1};
static const hy_history_key SORT_NATIVE = {.work = HY_JOB_SORT, .dtype = HY_DT_F64,
                                           .backend = HY_BACKEND_NATIVE, .threads = 2};

static hy_history *open_at(const char *p, const char *host, hy_history_report *rep)
{
    hy_history_options o = {.path = p, .host = host, .version = "9.9.9"};
    hy_history *h = NULL;
    hy_error err = {0};
    cr_assert_eq(hy_history_open(&o, &h, rep, &err), 0, "%s", err.msg);
    return h;
}

static hy_history *mem(void)
{
    return open_at(NULL, "h", NULL);
}

/* Records the dropped first run, then `n` runs of the given times. */
static void fill(hy_history *h, const hy_history_key *k, uint64_t size, const uint64_t *ns,
                 unsigned n)
{
    hy_history_record(h, k, size, 999999999); /* the cold first run: dropped */
    for (unsigned i = 0; i < n; i++)
        hy_history_record(h, k, size, ns[i]);
}

static bool exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static void write_text(const char *p, const char *text, size_t len)
{
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(text, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

static char *read_text(const char *p, size_t *len)
{
    FILE *f = fopen(p, "r");
    cr_assert_not_null(f, "%s", p);
    static char buf[1 << 16];
    *len = fread(buf, 1, sizeof buf - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

/* ---- cells ---- */

Test(history, log2_buckets)
{
    cr_expect_eq(hy_history_log2(0), 0);
    cr_expect_eq(hy_history_log2(1), 0);
    cr_expect_eq(hy_history_log2(2), 1);
    cr_expect_eq(hy_history_log2(1023), 9);
    cr_expect_eq(hy_history_log2(1024), 10);
    cr_expect_eq(hy_history_log2(UINT64_MAX), 63);
}

Test(history, first_run_of_a_cell_is_dropped)
{
    hy_history *h = mem();
    hy_history_cell c;
    hy_history_record(h, &PI_SERIAL, 1000, 5000);
    cr_expect_not(hy_history_get(h, &PI_SERIAL, hy_history_log2(1000), &c));
    hy_history_record(h, &PI_SERIAL, 1000, 7000);
    cr_assert(hy_history_get(h, &PI_SERIAL, hy_history_log2(1000), &c));
    cr_expect_eq(c.samples, 1);
    cr_expect_eq(c.median_ns, 7000); /* the 5000 of the cold run is not in it */
    /* Another cell (another size bucket) drops its own first run. */
    hy_history_record(h, &PI_SERIAL, 100000, 1);
    cr_expect_not(hy_history_get(h, &PI_SERIAL, hy_history_log2(100000), &c));
    hy_history_close(h);
}

Test(history, ring_keeps_the_last_20_and_the_median_follows)
{
    hy_history *h = mem();
    uint64_t ns[25];
    for (unsigned i = 0; i < 25; i++)
        ns[i] = 1000 * (i + 1);
    fill(h, &SORT_NATIVE, 5000, ns, 25);
    hy_history_cell c;
    cr_assert(hy_history_get(h, &SORT_NATIVE, hy_history_log2(5000), &c));
    cr_expect_eq(c.samples, HY_HISTORY_RING);
    /* 6000..25000 are kept: the median of 20 is the mean of the 10th and 11th. */
    cr_expect_eq(c.median_ns, 15500, "median %" PRIu64, c.median_ns);
    /* One more (26000) pushes 6000 out: 7000..26000, median 16500. */
    hy_history_record(h, &SORT_NATIVE, 5000, 26000);
    hy_history_get(h, &SORT_NATIVE, hy_history_log2(5000), &c);
    cr_expect_eq(c.median_ns, 16500);
    hy_history_close(h);
}

Test(history, median_of_odd_count_ignores_outliers)
{
    hy_history *h = mem();
    uint64_t ns[] = {100, 1000000, 110, 90, 105};
    fill(h, &PI_SERIAL, 1 << 20, ns, 5);
    hy_history_cell c;
    hy_history_get(h, &PI_SERIAL, 20, &c);
    cr_expect_eq(c.median_ns, 105);
    hy_history_close(h);
}

Test(history, keys_are_kept_apart)
{
    hy_history *h = mem();
    hy_history_key other = PI_SERIAL;
    other.threads = 2;
    uint64_t a[] = {10}, b[] = {20};
    fill(h, &PI_SERIAL, 4096, a, 1);
    fill(h, &other, 4096, b, 1);
    hy_history_cell c;
    hy_history_get(h, &PI_SERIAL, 12, &c);
    cr_expect_eq(c.median_ns, 10);
    hy_history_get(h, &other, 12, &c);
    cr_expect_eq(c.median_ns, 20);
    /* A key with a field out of range is ignored, not stored under some other key. */
    hy_history_key bad = {.work = HY_JOB_PI, .backend = 99};
    hy_history_record(h, &bad, 4096, 1);
    hy_history_record(h, &bad, 4096, 1);
    cr_expect_not(hy_history_get(h, &bad, 12, &c));
    hy_history_close(h);
}

struct seen {
    unsigned n;
    hy_history_key k[4];
    unsigned log2n[4];
    hy_history_cell c[4];
};

static void see(void *ctx, const hy_history_key *k, unsigned log2n, const hy_history_cell *c)
{
    struct seen *s = ctx;
    if (s->n < 4) {
        s->k[s->n] = *k;
        s->log2n[s->n] = log2n;
        s->c[s->n] = *c;
    }
    s->n++;
}

Test(history, foreach_lists_every_cell_with_samples)
{
    hy_history *h = mem();
    uint64_t a[] = {10, 30, 20}, b[] = {5};
    fill(h, &PI_SERIAL, 1 << 20, a, 3);
    fill(h, &SORT_NATIVE, 1000, b, 1);
    hy_history_record(h, &PI_SERIAL, 1 << 10, 1); /* only a dropped run: not listed */
    struct seen s = {0};
    cr_assert_eq(hy_history_foreach(h, see, &s), 2);
    cr_assert_eq(s.n, 2);
    cr_expect_eq(s.k[0].backend, HY_BACKEND_SERIAL);
    cr_expect_eq(s.log2n[0], 20);
    cr_expect_eq(s.c[0].samples, 3);
    cr_expect_eq(s.c[0].median_ns, 20);
    cr_expect_not(s.c[0].trusted);
    cr_expect_eq(s.k[1].dtype, HY_DT_F64);
    cr_expect_eq(s.k[1].threads, 2);
    cr_expect_eq(s.log2n[1], 9);
    cr_expect_eq(s.c[1].median_ns, 5);
    hy_history_close(h);
}

/* ---- trust and prediction ---- */

Test(history, a_cell_is_trusted_from_the_threshold_on)
{
    hy_history *h = mem();
    hy_history_prediction p;
    hy_history_cell c;
    hy_history_record(h, &PI_SERIAL, 1000, 1); /* dropped */
    /* Nothing to predict from, but the run was seen: auto explores by runs, not samples. */
    hy_history_predict(h, &PI_SERIAL, 1000, &p);
    cr_expect_eq(p.answer, HY_PREDICT_UNKNOWN);
    cr_expect_eq(p.samples, 0);
    cr_expect_eq(p.runs, 1);
    hy_history_predict(h, &PI_SERIAL, 1 << 20, &p);
    cr_expect_eq(p.runs, 0, "another size's cell has seen no run");
    for (unsigned i = 1; i < HY_HISTORY_TRUST; i++) {
        hy_history_record(h, &PI_SERIAL, 1000, 500);
        hy_history_get(h, &PI_SERIAL, 9, &c);
        cr_expect_not(c.trusted, "trusted with %u samples", c.samples);
        hy_history_predict(h, &PI_SERIAL, 1000, &p);
        cr_expect_eq(p.answer, HY_PREDICT_FEW, "with %u samples", i);
        cr_expect_eq(p.samples, i);
        cr_expect_eq(p.runs, i + 1, "the dropped first run counts");
    }
    hy_history_record(h, &PI_SERIAL, 1000, 500);
    hy_history_get(h, &PI_SERIAL, 9, &c);
    cr_expect(c.trusted);
    hy_history_predict(h, &PI_SERIAL, 1000, &p);
    cr_expect_eq(p.answer, HY_PREDICT_MEASURED);
    cr_expect_eq(p.samples, HY_HISTORY_TRUST);
    cr_expect_eq(p.ns, 500.0);
    hy_history_close(h);
}

static void trusted_cell(hy_history *h, const hy_history_key *k, uint64_t n, uint64_t ns)
{
    uint64_t t[HY_HISTORY_TRUST];
    for (unsigned i = 0; i < HY_HISTORY_TRUST; i++)
        t[i] = ns;
    fill(h, k, n, t, HY_HISTORY_TRUST);
}

Test(history, interpolates_log_log_inside_and_knows_nothing_outside)
{
    hy_history *h = mem();
    trusted_cell(h, &PI_SERIAL, 1 << 10, 1000);    /* 2^10 samples: 1 us */
    trusted_cell(h, &PI_SERIAL, 1 << 20, 1000000); /* 2^20: 1 ms, linear in n */
    hy_history_prediction p;
    hy_history_predict(h, &PI_SERIAL, 1 << 15, &p);
    cr_assert_eq(p.answer, HY_PREDICT_INTERPOLATED);
    cr_expect_eq(p.lo, 10);
    cr_expect_eq(p.hi, 20);
    /* Halfway in log n is the geometric mean of the times: sqrt(1e3 * 1e6). */
    cr_expect(fabs(p.ns - sqrt(1e9)) < 1.0, "predicted %f", p.ns);
    hy_history_predict(h, &PI_SERIAL, 3 << 16, &p);
    cr_expect_eq(p.answer, HY_PREDICT_INTERPOLATED);
    double want = exp2(log2(1000.0) + (log2(3.0 * 65536) - 10) / 10 * log2(1000.0));
    cr_expect(fabs(p.ns - want) < 1e-6 * want, "predicted %f, want %f", p.ns, want);
    /* Below the smallest and above the largest measured size: never extrapolated. */
    hy_history_predict(h, &PI_SERIAL, 1 << 5, &p);
    cr_expect_eq(p.answer, HY_PREDICT_UNKNOWN);
    cr_expect_eq(p.ns, 0.0);
    hy_history_predict(h, &PI_SERIAL, 1 << 25, &p);
    cr_expect_eq(p.answer, HY_PREDICT_UNKNOWN);
    /* A key with nothing measured knows nothing. */
    hy_history_predict(h, &SORT_NATIVE, 1 << 15, &p);
    cr_expect_eq(p.answer, HY_PREDICT_UNKNOWN);
    hy_history_close(h);
}

/* A cell with too few samples between trusted neighbours is interpolated (its few runs
 * are often a new size's cold ones), and still says how many samples it has. */
Test(history, a_few_samples_between_trusted_neighbours_are_interpolated_over)
{
    hy_history *h = mem();
    trusted_cell(h, &PI_SERIAL, 1 << 10, 1000);
    trusted_cell(h, &PI_SERIAL, 1 << 20, 1000000);
    uint64_t cold[] = {90000000, 90000000};
    fill(h, &PI_SERIAL, 1 << 15, cold, 2);
    hy_history_prediction p;
    hy_history_predict(h, &PI_SERIAL, 1 << 15, &p);
    cr_expect_eq(p.answer, HY_PREDICT_INTERPOLATED);
    cr_expect_eq(p.samples, 2);
    cr_expect(fabs(p.ns - sqrt(1e9)) < 1.0, "predicted %f", p.ns);
    hy_history_close(h);
}

Test(history, untrusted_neighbours_are_not_interpolated_from)
{
    hy_history *h = mem();
    trusted_cell(h, &PI_SERIAL, 1 << 10, 1000);
    uint64_t few[] = {1000000, 1000000};
    fill(h, &PI_SERIAL, 1 << 20, few, 2);
    hy_history_prediction p;
    hy_history_predict(h, &PI_SERIAL, 1 << 15, &p);
    cr_expect_eq(p.answer, HY_PREDICT_UNKNOWN);
    hy_history_predict(h, &PI_SERIAL, 1 << 20, &p);
    cr_expect_eq(p.answer, HY_PREDICT_FEW);
    cr_expect_eq(p.samples, 2);
    hy_history_close(h);
}

Test(history, interpolation_uses_the_sizes_measured_not_the_bucket_edges)
{
    hy_history *h = mem();
    /* 1000 and 10^6 sit inside buckets 9 and 19: the line runs through them, so a size on it
     * is predicted exactly (a linear job: 1 ns per sample). */
    trusted_cell(h, &PI_SERIAL, 1000, 1000);
    trusted_cell(h, &PI_SERIAL, 1000000, 1000000);
    hy_history_prediction p;
    hy_history_predict(h, &PI_SERIAL, 30000, &p);
    cr_assert_eq(p.answer, HY_PREDICT_INTERPOLATED);
    cr_expect(fabs(p.ns - 30000) < 1e-6 * 30000, "predicted %f", p.ns);
    hy_history_close(h);
}

/* ---- the file ---- */

Test(history, save_and_load_round_trip)
{
    hy_history_report rep;
    hy_history *h = open_at(path, "host-a", &rep);
    cr_expect_eq(rep.loaded, HY_HISTORY_NEW);
    uint64_t ns[25];
    for (unsigned i = 0; i < 25; i++)
        ns[i] = 1000 * (i + 1);
    fill(h, &SORT_NATIVE, 5000, ns, 25);
    trusted_cell(h, &PI_SERIAL, 1 << 20, 777);
    hy_history_key cl = {.work = HY_JOB_SORT, .dtype = HY_DT_I32, .backend = HY_BACKEND_OPENCL,
                         .device = 3};
    hy_history_key pr = {.work = HY_JOB_SORT, .dtype = HY_DT_U64,
                         .backend = HY_BACKEND_PROCESS, .threads = 4,
                         .transport = HY_TRANSPORT_SHM};
    uint64_t one[] = {42};
    fill(h, &cl, 123, one, 1);
    fill(h, &pr, 1, one, 1);
    hy_history_record(h, &PI_SERIAL, 1 << 5, 1); /* a dropped first run: no cell in the file */
    hy_error err = {0};
    cr_assert_eq(hy_history_save(h, &err), 0, "%s", err.msg);
    hy_history_close(h);

    h = open_at(path, "host-a", &rep);
    cr_assert_eq(rep.loaded, HY_HISTORY_LOADED, "%s", rep.reason);
    cr_expect_eq(rep.cells, 4);
    cr_expect_str_eq(rep.writer, "9.9.9");
    hy_history_cell c;
    cr_assert(hy_history_get(h, &SORT_NATIVE, hy_history_log2(5000), &c));
    cr_expect_eq(c.samples, 20);
    cr_expect_eq(c.median_ns, 15500);
    cr_assert(hy_history_get(h, &PI_SERIAL, 20, &c));
    cr_expect(c.trusted);
    cr_expect_eq(c.median_ns, 777);
    cr_assert(hy_history_get(h, &cl, hy_history_log2(123), &c));
    cr_expect_eq(c.median_ns, 42);
    cr_assert(hy_history_get(h, &pr, 0, &c));
    cr_expect_not(hy_history_get(h, &PI_SERIAL, 5, &c));
    /* The ring's order survived: after the first run since this load (dropped), the oldest
     * (6000) goes first, so the median moves as it would have without the restart. */
    hy_history_record(h, &SORT_NATIVE, 5000, 1);
    hy_history_record(h, &SORT_NATIVE, 5000, 26000);
    hy_history_get(h, &SORT_NATIVE, hy_history_log2(5000), &c);
    cr_expect_eq(c.median_ns, 16500);
    hy_history_close(h); /* saves the change */

    h = open_at(path, "host-a", &rep);
    cr_assert_eq(rep.loaded, HY_HISTORY_LOADED, "%s", rep.reason);
    hy_history_get(h, &SORT_NATIVE, hy_history_log2(5000), &c);
    cr_expect_eq(c.median_ns, 16500, "close did not save the last change");
    hy_history_close(h);
}

Test(history, memory_only_writes_nothing)
{
    hy_history_report rep;
    hy_history *h = open_at("", "h", &rep);
    cr_expect_eq(rep.loaded, HY_HISTORY_NONE);
    trusted_cell(h, &PI_SERIAL, 100, 100);
    hy_error err = {0};
    cr_expect_eq(hy_history_save(h, &err), 0);
    hy_history_close(h);
    DIR *d = opendir(dir);
    struct dirent *e;
    unsigned n = 0;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    cr_expect_eq(n, 0);
}

/* A good file of two cells written by host-a, as text. */
static char *good_file(size_t *len)
{
    hy_history *h = open_at(path, "host-a", NULL);
    trusted_cell(h, &PI_SERIAL, 1 << 20, 777);
    trusted_cell(h, &SORT_NATIVE, 1 << 12, 5);
    hy_error err = {0};
    cr_assert_eq(hy_history_save(h, &err), 0, "%s", err.msg);
    hy_history_close(h);
    return read_text(path, len);
}

/* The FNV-1a checksum the end line carries, recomputed for a file edited on purpose. */
static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t x = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < n; i++)
        x = (x ^ (unsigned char)p[i]) * UINT64_C(0x100000001b3);
    return x;
}

/* Writes `body` (every line but the end line) with a correct end line: a file whose only
 * fault is in its values. */
static void write_sealed(const char *body, unsigned ncells)
{
    char text[4096];
    int n = snprintf(text, sizeof text, "%send %u %016" PRIx64 "\n", body, ncells,
                     fnv1a(body, strlen(body)));
    write_text(path, text, (size_t)n);
}

/* Opens host-a's history on the file there is and expects it set aside with `verdict`, a
 * reason containing `why`, an empty history, and the next save starting afresh. */
static void expect_set_aside(hy_history_loaded verdict, const char *why, const char *host)
{
    char aside[160];
    snprintf(aside, sizeof aside, "%s%s", path,
             verdict == HY_HISTORY_FOREIGN ? ".foreign" : ".corrupt");
    hy_history_report rep;
    hy_history *h = open_at(path, host, &rep);
    cr_expect_eq(rep.loaded, verdict, "loaded %d (%s), want %d", rep.loaded, rep.reason,
                 verdict);
    cr_expect_not_null(strstr(rep.reason, why), "reason \"%s\" lacks \"%s\"", rep.reason, why);
    cr_expect_not(exists(path), "the file was not moved away");
    cr_expect(exists(aside), "no %s", aside);
    hy_history_cell c;
    hy_history_prediction p;
    cr_expect_not(hy_history_get(h, &PI_SERIAL, 20, &c), "a set-aside file was trusted");
    hy_history_predict(h, &PI_SERIAL, 1 << 20, &p);
    cr_expect_eq(p.answer, HY_PREDICT_UNKNOWN);
    hy_history_close(h);
    unlink(aside);
}

Test(history, garbage_is_set_aside_as_corrupt)
{
    write_text(path, "hello\n", 6);
    expect_set_aside(HY_HISTORY_CORRUPT, "not a hybridd history", "host-a");
    write_text(path, "", 0);
    expect_set_aside(HY_HISTORY_CORRUPT, "not a hybridd history", "host-a");
}

Test(history, truncated_files_are_corrupt)
{
    size_t len;
    char *text = good_file(&len);
    char copy[1 << 16];
    memcpy(copy, text, len);
    /* Cut anywhere: mid-line, at a line's end (the end line gone), one byte short. */
    size_t cuts[] = {len / 2, (size_t)(strstr(copy, "\nend ") + 1 - copy), len - 1, 20};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_text(path, copy, cuts[i]);
        expect_set_aside(HY_HISTORY_CORRUPT, "truncated", "host-a");
    }
}

Test(history, an_altered_byte_fails_the_checksum)
{
    size_t len;
    char *text = good_file(&len);
    char *p = strstr(text, ":777");
    cr_assert_not_null(p);
    p[1] = '8'; /* 777 -> 877: still a valid number, but not what was written */
    write_text(path, text, len);
    expect_set_aside(HY_HISTORY_CORRUPT, "checksum", "host-a");
}

Test(history, out_of_range_values_are_corrupt_even_when_sealed)
{
    const char *head = "hybridd-history 1\nhost host-a\nhybridd 9.9.9\ncells 1\n";
    struct {
        const char *cell, *why;
    } cases[] = {
        {"cell pi - bogus 0 1 - 20 1 1048576:5\n", "not a valid cell"},
        {"cell pi - serial 0 1 - 64 1 1048576:5\n", "not a valid cell"},
        {"cell pi f64 serial 0 1 - 20 1 1048576:5\n", "not a valid cell"},
        {"cell sort - native 0 2 - 20 1 1048576:5\n", "not a valid cell"},
        {"cell pi - serial 0 1 - 20 21 1048576:5\n", "not a valid cell"},
        {"cell pi - serial 0 -1 - 20 1 1048576:5\n", "not a valid cell"},
        {"cell pi - serial 0 1 - 20 1 5:5\n", "out of range"},       /* n outside bucket 20 */
        {"cell pi - serial 0 1 - 20 1 1048576:0\n", "out of range"}, /* a time of 0 */
        {"cell pi - serial 0 1 - 20 2 1048576:5\n", "out of range"}, /* a sample missing */
        {"cell pi - serial 0 1 - 20 1 1048576:5 1048576:5\n", "more samples"},
        {"cell pi - serial 0 1 - 20 1 1048576:99999999999999999999\n", "out of range"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[512];
        snprintf(body, sizeof body, "%s%s", head, cases[i].cell);
        write_sealed(body, 1);
        cr_log_info("case %zu: %s", i, cases[i].cell);
        expect_set_aside(HY_HISTORY_CORRUPT, cases[i].why, "host-a");
    }
    char body[512];
    snprintf(body, sizeof body, "%s%s%s", head, "cell pi - serial 0 1 - 20 1 1048576:5\n",
             "cell pi - serial 0 1 - 20 1 1048576:6\n");
    body[strlen(head) - 2] = '2'; /* cells 2 */
    write_sealed(body, 2);
    expect_set_aside(HY_HISTORY_CORRUPT, "twice", "host-a");
    /* The count of cells and the cells there are must agree. */
    snprintf(body, sizeof body, "%s%s", head, "cell pi - serial 0 1 - 20 1 1048576:5\n");
    body[strlen(head) - 2] = '2';
    write_sealed(body, 2);
    expect_set_aside(HY_HISTORY_CORRUPT, "announced", "host-a");
    snprintf(body, sizeof body, "%s", head);
    body[strlen(head) - 2] = '0';
    write_sealed(body, 0);
    hy_history_report rep;
    hy_history_close(open_at(path, "host-a", &rep));
    cr_expect_eq(rep.loaded, HY_HISTORY_LOADED, "an empty history is a good one: %s",
                 rep.reason);
}

Test(history, another_hosts_file_is_foreign)
{
    size_t len;
    good_file(&len);
    expect_set_aside(HY_HISTORY_FOREIGN, "host-a", "host-b");
}

Test(history, another_format_is_foreign)
{
    write_sealed("hybridd-history 2\nsomething else entirely\n", 0);
    expect_set_aside(HY_HISTORY_FOREIGN, "format 2", "host-a");
}

Test(history, an_unreadable_path_is_left_alone)
{
    cr_assert_eq(mkdir(path, 0700), 0); /* a directory where the file should be */
    hy_history_report rep;
    hy_history *h = open_at(path, "host-a", &rep);
    cr_expect_eq(rep.loaded, HY_HISTORY_UNREADABLE, "loaded %d (%s)", rep.loaded, rep.reason);
    cr_expect_not_null(strstr(rep.reason, "not a regular file"), "%s", rep.reason);
    struct stat st;
    cr_expect(stat(path, &st) == 0 && S_ISDIR(st.st_mode), "it was moved");
    /* Saving over a directory fails with a reason; the temporary file does not stay. */
    trusted_cell(h, &PI_SERIAL, 100, 100);
    hy_error err = {0};
    cr_expect_eq(hy_history_save(h, &err), HY_ESYS);
    cr_expect_not_null(strstr(err.msg, "rename"), "%s", err.msg);
    hy_history_close(h); /* tries once more, logs, and frees */
    rmdir(path);
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d)))
        cr_expect(e->d_name[0] == '.', "left over: %s", e->d_name);
    closedir(d);
}

Test(history, the_saver_thread_writes_changes)
{
    hy_history_options o = {.path = path, .host = "host-a", .version = "1", .save_every_ms = 20};
    hy_history *h = NULL;
    hy_error err = {0};
    cr_assert_eq(hy_history_open(&o, &h, NULL, &err), 0, "%s", err.msg);
    trusted_cell(h, &PI_SERIAL, 1 << 20, 777);
    /* Bounded wait for the thread's save (no assertion on how long it took). */
    bool seen = false;
    for (int i = 0; i < 1000 && !seen; i++) {
        size_t len;
        seen = exists(path) && strstr(read_text(path, &len), ":777") != NULL;
        if (!seen)
            usleep(10000);
    }
    cr_expect(seen, "the saver thread never wrote the file");
    hy_history_close(h);
}

/* ---- writers in several processes ---- */

/* Writer w loads the file (whole, while the others write it) and saves it with w + 1 cells of
 * its own added, over and over. */
static void writer(unsigned w, unsigned rounds)
{
    hy_history_options o = {.path = path, .host = "host-a", .version = "1"};
    hy_history *h = NULL;
    hy_history_report rep;
    if (hy_history_open(&o, &h, &rep, NULL) != 0)
        _exit(2);
    if (rep.loaded != HY_HISTORY_LOADED)
        _exit(4);
    for (unsigned c = 0; c <= w; c++) {
        hy_history_key k = PI_SERIAL;
        k.threads = c + 1;
        for (unsigned i = 0; i < 3; i++)
            hy_history_record(h, &k, 1000, 1000 + w);
    }
    for (unsigned r = 0; r < rounds; r++)
        if (hy_history_save(h, NULL) != 0)
            _exit(3);
    hy_history_close(h);
    _exit(0);
}

Test(history, concurrent_writers_never_leave_a_torn_file, .timeout = 120)
{
    enum { WRITERS = 3, ROUNDS = 300 };
    size_t len;
    good_file(&len); /* something to load from the start */
    pid_t pids[WRITERS];
    for (unsigned w = 0; w < WRITERS; w++) {
        pids[w] = fork();
        cr_assert_geq(pids[w], 0);
        if (pids[w] == 0)
            writer(w, ROUNDS);
    }
    unsigned loads = 0, running = WRITERS;
    while (running > 0) {
        hy_history_report rep;
        hy_history *h = open_at(path, "host-a", &rep);
        /* Every load sees one whole file: the first one (2 cells), or one writer's. */
        cr_assert_eq(rep.loaded, HY_HISTORY_LOADED, "load %u: %d (%s)", loads, rep.loaded,
                     rep.reason);
        cr_assert(rep.cells >= 2 && rep.cells <= 2 + WRITERS, "load %u: %zu cells", loads,
                  rep.cells);
        hy_history_close(h); /* nothing recorded: it does not write */
        loads++;
        running = 0;
        for (unsigned w = 0; w < WRITERS; w++) {
            int st;
            if (pids[w] > 0 && waitpid(pids[w], &st, WNOHANG) == pids[w]) {
                cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer %u failed: %d", w, st);
                pids[w] = 0;
            }
            running += pids[w] > 0;
        }
    }
    cr_log_info("%u loads while %d writers saved %d times each", loads, WRITERS, ROUNDS);
    cr_expect_gt(loads, 1);
    /* No temporary file is left behind, and nothing was set aside. */
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d)))
        cr_expect(e->d_name[0] == '.' || strcmp(e->d_name, "history") == 0, "left over: %s",
                  e->d_name);
    closedir(d);
}
