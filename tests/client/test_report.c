/* tests/client: hybridctl's reports — the derived figures of a compare checked exactly, the
 * honest device labels, the table, CSV and JSON shapes, the SVG chart's well-formedness and
 * its atomic write, and the single-job, STATUS and DEVICES reports. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client.h"

/* ---- fixtures ---- */

static hy_result_row row(int backend, unsigned threads, uint64_t median_ns)
{
    hy_result_row r = {0};
    r.backend = (uint16_t)backend;
    r.mode = HY_MODE_SPLIT;
    r.threads = threads;
    r.copies = 1;
    r.n = 1000000;
    r.hits = 785398;
    r.estimate = 3.141592;
    r.std_error = 1.6e-3;
    r.median_ns = median_ns;
    r.min_ns = median_ns - 1000;
    r.max_ns = median_ns + 2000;
    r.repeat = 5;
    return r;
}

/* serial, native 1/2, locked 1 (nogil) / 2 (held), opencl on PoCL's CPU device. Medians
 * chosen so every derived figure is exact in binary floating point. */
static hy_result_row rows[6];

static hc_compare make_compare(void)
{
    rows[0] = row(HY_BACKEND_SERIAL, 1, 100000000);
    rows[1] = row(HY_BACKEND_NATIVE, 1, 100000000);
    rows[2] = row(HY_BACKEND_NATIVE, 2, 50000000);
    rows[3] = row(HY_BACKEND_LOCKED, 1, 100000000);
    rows[3].flags = HY_ROW_NOGIL;
    rows[3].lock_handoffs = 3;
    rows[4] = row(HY_BACKEND_LOCKED, 2, 80000000);
    rows[4].lock_handoffs = 1234;
    rows[4].lock_wait_ns = 40000000;
    rows[4].lock_hold_ns = 75000000;
    rows[5] = row(HY_BACKEND_OPENCL, 0, 25000000);
    rows[5].flags = HY_ROW_POCL_CPU;
    rows[5].h2d_ns = 1000000;
    rows[5].kernel_ns = 2000000;
    rows[5].d2h_ns = 1000000;
    rows[5].launches = 4;
    return (hc_compare){
        .job = HY_JOB_COMPARE_PI,
        .n = 1000000,
        .seed = 42,
        .mode = HY_MODE_SPLIT,
        .repeat = 5,
        .nrows = 6,
        .rows = rows,
        .device_name = "pthread-haswell-AMD EPYC, \"64-Core\"",
        .server = "hybridd 0.1.0",
    };
}

/* serial, native 2, then process on 2 workers over each transport. pipe: 1 ms sending, 6 ms
 * running, 1 ms receiving (a quarter moving data); shm: a sixteenth, and one worker that had
 * to be restarted. */
static hy_result_row prows[4];

static hc_compare make_process_compare(void)
{
    prows[0] = row(HY_BACKEND_SERIAL, 1, 100000000);
    prows[1] = row(HY_BACKEND_NATIVE, 2, 50000000);
    prows[2] = row(HY_BACKEND_PROCESS, 2, 62500000);
    prows[2].transport = HY_TRANSPORT_PIPE;
    prows[2].h2d_ns = 1000000;
    prows[2].kernel_ns = 6000000;
    prows[2].d2h_ns = 1000000;
    prows[2].bytes_moved = 16000000;
    prows[2].merge_ns = 500000;
    prows[3] = row(HY_BACKEND_PROCESS, 2, 50000000);
    prows[3].transport = HY_TRANSPORT_SHM;
    prows[3].h2d_ns = 250000;
    prows[3].kernel_ns = 7500000;
    prows[3].d2h_ns = 250000;
    prows[3].bytes_moved = 64;
    prows[3].merge_ns = 400000;
    prows[3].startup_ns = 3000000;
    prows[3].workers_started = 1;
    return (hc_compare){
        .job = HY_JOB_COMPARE_SORT,
        .n = 1000000,
        .seed = 1,
        .dtype = HY_DT_F64,
        .dist = "uniform",
        .mode = HY_MODE_SPLIT,
        .repeat = 5,
        .nrows = 4,
        .rows = prows,
        .server = "hybridd 0.1.0",
    };
}

/* The first line of `out` that starts with `prefix` and holds `needle`, copied into line. */
static void line_with(const char *out, const char *prefix, const char *needle, char *line,
                      size_t cap)
{
    for (const char *l = out; *l;) {
        size_t len = strcspn(l, "\n");
        if (len < cap && strncmp(l, prefix, strlen(prefix)) == 0) {
            memcpy(line, l, len);
            line[len] = '\0';
            if (strstr(line, needle))
                return;
        }
        l += len + (l[len] == '\n');
    }
    cr_assert_fail("no line starting with \"%s\" and holding \"%s\" in:\n%s", prefix, needle,
                   out);
}

/* What a report printed, as one NUL-terminated string (free it). */
#define CAPTURE(out, call)                                                                    \
    do {                                                                                      \
        size_t len_;                                                                          \
        FILE *f_ = open_memstream(&(out), &len_);                                             \
        cr_assert(f_);                                                                        \
        cr_assert_eq((call), 0);                                                              \
        cr_assert_eq(fclose(f_), 0);                                                          \
    } while (0)
#define F f_

/* Whether the len bytes at p hold the string literal lit. */
#define SPAN_HAS(p, len, lit) (memmem((p), (len), (lit), sizeof(lit) - 1) != NULL)

static unsigned count_lines(const char *s)
{
    unsigned n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* ---- a tiny JSON validator: recursive descent over RFC 8259 ---- */

struct js {
    const char *p;
    int depth;
};

static void js_ws(struct js *j)
{
    while (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')
        j->p++;
}

static bool js_value(struct js *j);

static bool js_string(struct js *j)
{
    if (*j->p != '"')
        return false;
    j->p++;
    for (;;) {
        unsigned char c = (unsigned char)*j->p;
        if (c == '"') {
            j->p++;
            return true;
        }
        if (c < 0x20) /* NUL (the end) and raw controls */
            return false;
        if (c == '\\') {
            j->p++;
            if (strchr("\"\\/bfnrt", *j->p) && *j->p) {
                j->p++;
            } else if (*j->p == 'u') {
                j->p++;
                for (int k = 0; k < 4; k++, j->p++)
                    if (!strchr("0123456789abcdefABCDEF", *j->p) || !*j->p)
                        return false;
            } else {
                return false;
            }
            continue;
        }
        j->p++;
    }
}

static bool js_digits(struct js *j)
{
    if (*j->p < '0' || *j->p > '9')
        return false;
    while (*j->p >= '0' && *j->p <= '9')
        j->p++;
    return true;
}

static bool js_number(struct js *j)
{
    if (*j->p == '-')
        j->p++;
    if (*j->p == '0')
        j->p++;
    else if (!js_digits(j))
        return false;
    if (*j->p == '.') {
        j->p++;
        if (!js_digits(j))
            return false;
    }
    if (*j->p == 'e' || *j->p == 'E') {
        j->p++;
        if (*j->p == '+' || *j->p == '-')
            j->p++;
        if (!js_digits(j))
            return false;
    }
    return true;
}

static bool js_word(struct js *j, const char *w)
{
    size_t n = strlen(w);
    if (strncmp(j->p, w, n) != 0)
        return false;
    j->p += n;
    return true;
}

static bool js_value(struct js *j)
{
    if (++j->depth > 64)
        return false;
    js_ws(j);
    bool ok;
    char c = *j->p;
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->p++;
        js_ws(j);
        ok = true;
        if (*j->p == close) {
            j->p++;
        } else {
            for (;;) {
                if (c == '{') {
                    js_ws(j);
                    if (!js_string(j))
                        return false;
                    js_ws(j);
                    if (*j->p++ != ':')
                        return false;
                }
                if (!js_value(j))
                    return false;
                js_ws(j);
                if (*j->p == ',') {
                    j->p++;
                    continue;
                }
                if (*j->p++ != close)
                    return false;
                break;
            }
        }
    } else if (c == '"') {
        ok = js_string(j);
    } else if (c == 't') {
        ok = js_word(j, "true");
    } else if (c == 'f') {
        ok = js_word(j, "false");
    } else if (c == 'n') {
        ok = js_word(j, "null");
    } else {
        ok = js_number(j);
    }
    js_ws(j);
    j->depth--;
    return ok;
}

static bool json_ok(const char *s)
{
    struct js j = {s, 0};
    return js_value(&j) && *j.p == '\0';
}

Test(json_validator, sanity)
{
    cr_assert(json_ok("{\"a\":[1,-2.5e+3,true,false,null,\"x\\u00e9\\n\"],\"b\":{}}\n"));
    cr_assert(!json_ok("{\"a\":NaN}"));
    cr_assert(!json_ok("{\"a\":inf}"));
    cr_assert(!json_ok("{\"a\":1,}"));
    cr_assert(!json_ok("[1 2]"));
    cr_assert(!json_ok("\"a\nb\""));
    cr_assert(!json_ok("{\"a\":1}{"));
    cr_assert(!json_ok("01"));
}

/* ---- a tiny XML well-formedness checker (what the SVG needs: a prolog, elements with
 * quoted attributes, escaped text, no comments or CDATA) ---- */

static bool xml_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == ':' || c == '.';
}

/* An entity reference at p ('&'): one of the five, or a character reference. */
static const char *xml_entity(const char *p)
{
    static const char *const ents[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
    for (size_t i = 0; i < 5; i++)
        if (strncmp(p, ents[i], strlen(ents[i])) == 0)
            return p + strlen(ents[i]);
    if (p[1] == '#') {
        const char *q = p + 2;
        if (*q == 'x')
            q++;
        const char *d = q;
        while (strchr("0123456789abcdefABCDEF", *q) && *q)
            q++;
        if (q > d && *q == ';')
            return q + 1;
    }
    return NULL;
}

static bool xml_ok(const char *s)
{
    const char *p = s;
    if (strncmp(p, "<?xml ", 6) == 0) {
        p = strstr(p, "?>");
        if (!p)
            return false;
        p += 2;
    }
    char stack[64][32];
    int depth = 0;
    bool root_done = false;
    while (*p) {
        if (*p == '<') {
            p++;
            bool closing = *p == '/';
            if (closing)
                p++;
            const char *n = p;
            while (xml_name_char(*p))
                p++;
            size_t nlen = (size_t)(p - n);
            if (nlen == 0 || nlen >= 32)
                return false;
            if (closing) {
                if (depth == 0 || strlen(stack[depth - 1]) != nlen ||
                    strncmp(stack[depth - 1], n, nlen) != 0)
                    return false;
                while (*p == ' ' || *p == '\n')
                    p++;
                if (*p++ != '>')
                    return false;
                if (--depth == 0)
                    root_done = true;
                continue;
            }
            if (root_done || depth == 64)
                return false;
            memcpy(stack[depth], n, nlen);
            stack[depth][nlen] = '\0';
            /* attributes: name="value" with no '<' and only proper entities */
            char seen[32][32];
            int nseen = 0;
            for (;;) {
                bool space = false;
                while (*p == ' ' || *p == '\n' || *p == '\t')
                    p++, space = true;
                if (*p == '>' || (p[0] == '/' && p[1] == '>'))
                    break;
                if (!space)
                    return false;
                const char *a = p;
                while (xml_name_char(*p))
                    p++;
                size_t alen = (size_t)(p - a);
                if (alen == 0 || alen >= 32 || nseen == 32)
                    return false;
                for (int k = 0; k < nseen; k++)
                    if (strlen(seen[k]) == alen && strncmp(seen[k], a, alen) == 0)
                        return false; /* duplicate attribute */
                memcpy(seen[nseen], a, alen);
                seen[nseen++][alen] = '\0';
                if (*p++ != '=')
                    return false;
                char q = *p++;
                if (q != '"' && q != '\'')
                    return false;
                while (*p && *p != q) {
                    if (*p == '<')
                        return false;
                    if (*p == '&') {
                        p = xml_entity(p);
                        if (!p)
                            return false;
                    } else {
                        p++;
                    }
                }
                if (*p++ != q)
                    return false;
            }
            if (*p == '/') {
                p += 2;
                if (depth == 0)
                    root_done = true;
            } else {
                p++;
                depth++;
            }
        } else if (*p == '&') {
            p = xml_entity(p);
            if (!p)
                return false;
        } else {
            if (*p == '>' || ((unsigned char)*p < 0x20 && !strchr("\t\n\r", *p)))
                return false;
            if (depth == 0 && !strchr(" \t\n\r", *p))
                return false; /* text outside the root */
            p++;
        }
    }
    return depth == 0 && root_done;
}

Test(xml_checker, sanity)
{
    cr_assert(xml_ok("<?xml version=\"1.0\"?>\n<a x=\"1\"><b y='2'/>t &amp; &#x41;</a>\n"));
    cr_assert(!xml_ok("<a><b></a></b>"));
    cr_assert(!xml_ok("<a x=1></a>"));
    cr_assert(!xml_ok("<a>x & y</a>"));
    cr_assert(!xml_ok("<a>x > y</a>"));
    cr_assert(!xml_ok("<a x=\"<\"></a>"));
    cr_assert(!xml_ok("<a></a><b></b>"));
    cr_assert(!xml_ok("<a x=\"1\" x=\"2\"/>"));
    cr_assert(!xml_ok("<a>"));
}

/* ---- derived figures ---- */

Test(derive, exact_figures_and_labels)
{
    hc_compare c = make_compare();
    hc_derived d;

    hc_derive(&c, 0, &d);
    cr_assert_eq(d.throughput, 1e7);
    cr_assert_eq(d.speedup, 1.0);
    cr_assert_eq(d.efficiency, 1.0);
    cr_assert_str_eq(d.device, "CPU");

    hc_derive(&c, 2, &d); /* native, 2 threads, half the time */
    cr_assert_eq(d.throughput, 2e7);
    cr_assert_eq(d.speedup, 2.0);
    cr_assert_eq(d.efficiency, 1.0);
    cr_assert_eq(d.wait_share, 0.0);
    cr_assert_eq(d.transfer_share, 0.0);
    cr_assert_str_eq(d.device, "CPU");

    hc_derive(&c, 3, &d); /* locked nogil, 1 thread, no waiting */
    cr_assert_eq(d.speedup, 1.0);
    cr_assert_eq(d.wait_share, 0.0);

    hc_derive(&c, 4, &d); /* locked, 2 threads: 40 ms waited of 2 x 80 ms */
    cr_assert_eq(d.throughput, 1.25e7);
    cr_assert_eq(d.speedup, 1.25);
    cr_assert_eq(d.efficiency, 0.625);
    cr_assert_eq(d.wait_share, 0.25);
    cr_assert_str_eq(d.device, "CPU");

    hc_derive(&c, 5, &d); /* opencl: 2 ms of transfers in 4 */
    cr_assert_eq(d.throughput, 4e7);
    cr_assert_eq(d.speedup, 4.0);
    cr_assert_eq(d.efficiency, 0.0);
    cr_assert_eq(d.transfer_share, 0.5);
    cr_assert_str_eq(d.device, "PoCL CPU");
}

Test(derive, device_labels_are_honest)
{
    hc_compare c = make_compare();
    hc_derived d;
    rows[5].flags = HY_ROW_GPU;
    hc_derive(&c, 5, &d);
    cr_assert_str_eq(d.device, "GPU");
    rows[5].flags = 0;
    hc_derive(&c, 5, &d);
    cr_assert_str_eq(d.device, "OpenCL device");
    rows[5].flags = HY_ROW_POCL_CPU | HY_ROW_GPU; /* contradictory: PoCL's CPU wins */
    hc_derive(&c, 5, &d);
    cr_assert_str_eq(d.device, "PoCL CPU");
    rows[1].flags = HY_ROW_GPU; /* a CPU backend is the CPU, whatever its flags */
    hc_derive(&c, 1, &d);
    cr_assert_str_eq(d.device, "CPU");
}

Test(derive, replicate_counts_every_copy)
{
    hc_compare c = make_compare();
    c.mode = HY_MODE_REPLICATE;
    rows[2].mode = HY_MODE_REPLICATE;
    rows[2].copies = 2;
    rows[2].median_ns = 100000000; /* two copies in the serial time: twice the throughput */
    hc_derived d;
    hc_derive(&c, 2, &d);
    cr_assert_eq(d.throughput, 2e7);
    cr_assert_eq(d.speedup, 2.0);
    cr_assert_eq(d.efficiency, 1.0);
}

Test(derive, zero_median_is_not_a_number)
{
    hc_compare c = make_compare();
    rows[0].median_ns = 0;
    hc_derived d;
    hc_derive(&c, 2, &d);
    cr_assert(!isfinite(d.speedup));
    char *out = NULL;
    CAPTURE(out, hc_print_compare(F, &c, HC_JSON));
    cr_assert(json_ok(out), "%s", out);
    free(out);
}

Test(derive, process_transfer_share_and_efficiency)
{
    hc_compare c = make_process_compare();
    hc_derived d;
    hc_derive(&c, 2, &d); /* pipe: 2 ms of 8 spent moving parts */
    cr_assert_eq(d.throughput, 1.6e7);
    cr_assert_eq(d.speedup, 1.6);
    cr_assert_eq(d.efficiency, 0.8);
    cr_assert_eq(d.transfer_share, 0.25);
    cr_assert_eq(d.wait_share, 0.0);
    cr_assert_str_eq(d.device, "CPU");
    hc_derive(&c, 3, &d); /* shm: 0.5 ms of 8 */
    cr_assert_eq(d.speedup, 2.0);
    cr_assert_eq(d.efficiency, 1.0);
    cr_assert_eq(d.transfer_share, 0.0625);
    prows[3].h2d_ns = prows[3].kernel_ns = prows[3].d2h_ns = 0;
    hc_derive(&c, 3, &d);
    cr_assert(!isfinite(d.transfer_share));
}

/* A hybrid row's efficiency is the balance the daemon measured, never speed-up per thread:
 * its devices add to the speed-up (an H200 beside 16 threads made that 3087%). */
Test(derive, hybrid_efficiency_is_its_balance)
{
    hc_compare c = make_process_compare();
    prows[1] = row(HY_BACKEND_HYBRID, 2, 2000000); /* 50x serial on 2 threads */
    prows[1].balance_ppm = 870000;
    hc_derived d;
    hc_derive(&c, 1, &d);
    cr_assert_eq(d.speedup, 50.0);
    cr_assert_eq(d.efficiency, 0.87);
    prows[1].balance_ppm = 0; /* the pool ran alone: no balance to show */
    hc_derive(&c, 1, &d);
    cr_assert(!isfinite(d.efficiency));
}

/* ---- the table ---- */

Test(table, columns_labels_footnote)
{
    hc_compare c = make_compare();
    char *out = NULL;
    CAPTURE(out, hc_print_compare(F, &c, HC_TEXT));
    cr_assert(strstr(out, "compare pi"), "%s", out);
    cr_assert(strstr(out, "n=1000000"));
    cr_assert(strstr(out, "seed 42"));
    cr_assert(strstr(out, "hybridd 0.1.0"));
    cr_assert(strstr(out, "split"));
    cr_assert(strstr(out, "repeat 5"));
    cr_assert(strstr(out, "samples/s"));
    cr_assert(strstr(out, "2.00x"));
    cr_assert(strstr(out, "1.25x"));
    cr_assert(strstr(out, "4.00x"));
    cr_assert(strstr(out, "62%")); /* locked 2's efficiency, 62.5 rounded to even */
    cr_assert(strstr(out, "25.0%")); /* its wait share */
    cr_assert(strstr(out, "50.0%")); /* opencl's transfer share */
    cr_assert(strstr(out, "20.0M")); /* native 2's throughput */
    cr_assert(strstr(out, "1.000/2.000/1.000"));
    cr_assert(strstr(out, "nogil"));
    cr_assert(strstr(out, "held"));
    cr_assert(strstr(out, "hits 785398 of 1000000"));
    cr_assert(strstr(out, "PoCL CPU is an OpenCL device running on this machine's CPU, not a GPU"));

    /* The header line and the opencl row: aligned, PoCL CPU, never GPU. */
    const char *hdr = strstr(out, "\nbackend");
    cr_assert(hdr);
    hdr++;
    const char *cl = strstr(out, "\nopencl ");
    cr_assert(cl);
    cl++;
    size_t cllen = strcspn(cl, "\n");
    char line[512];
    cr_assert_lt(cllen, sizeof line);
    memcpy(line, cl, cllen);
    line[cllen] = '\0';
    cr_assert(strstr(line, "PoCL CPU"), "%s", line);
    cr_assert(!strstr(line, "GPU"), "%s", line);
    /* every table line ends its speed-up column where the header's ends */
    size_t sp = (size_t)(strstr(hdr, "speed-up") - hdr) + strlen("speed-up");
    const char *l = hdr;
    for (unsigned k = 0; k <= c.nrows; k++) {
        size_t len = strcspn(l, "\n");
        cr_assert_gt(len, sp);
        cr_assert(strchr("xp-", l[sp - 1]) && l[sp] == ' ', "misaligned: %.*s", (int)len, l);
        l += len + 1;
    }
    free(out);
}

Test(table, no_footnote_without_pocl_and_sort_heading)
{
    hc_compare c = make_compare();
    c.job = HY_JOB_COMPARE_SORT;
    c.dtype = HY_DT_F32;
    c.dist = "uniform";
    c.nrows = 3; /* serial and native only: no lock or opencl columns */
    char *out = NULL;
    CAPTURE(out, hc_print_compare(F, &c, HC_TEXT));
    cr_assert(strstr(out, "compare sort: n=1000000 f32 uniform"), "%s", out);
    cr_assert(strstr(out, "elements/s"));
    cr_assert(!strstr(out, "PoCL"));
    cr_assert(!strstr(out, "GPU"));
    cr_assert(!strstr(out, "hits"));
    cr_assert(!strstr(out, "hand-offs"));
    cr_assert(!strstr(out, "transfer"));
    free(out);
}

Test(table, process_rows_transport_split_footnote)
{
    hc_compare c = make_process_compare();
    char *out = NULL;
    CAPTURE(out, hc_print_compare(F, &c, HC_TEXT));
    char hdr[512], pipe[512], shm[512], native[512];
    line_with(out, "backend ", "", hdr, sizeof hdr);
    line_with(out, "process ", " pipe ", pipe, sizeof pipe);
    line_with(out, "process ", " shm ", shm, sizeof shm);
    line_with(out, "native ", "", native, sizeof native);
    cr_assert(strstr(pipe, " CPU ") && strstr(shm, " CPU "), "%s", out); /* honest: the CPU */
    cr_assert(strstr(hdr, "transport"), "%s", out);
    cr_assert(strstr(hdr, "h2d/kernel/d2h ms"), "%s", out);
    cr_assert(strstr(hdr, "transfer"), "%s", out);
    cr_assert(!strstr(hdr, "lock"), "%s", out); /* no locked row */
    cr_assert(strstr(pipe, " 1.000/6.000/1.000 "), "%s", pipe);
    cr_assert(strstr(pipe, " 25.0%"), "%s", pipe);
    cr_assert(strstr(pipe, " 1.60x "), "%s", pipe);
    cr_assert(strstr(pipe, " 80% "), "%s", pipe); /* efficiency over the 2 workers */
    cr_assert(strstr(shm, " 0.250/7.500/0.250 "), "%s", shm);
    cr_assert(strstr(shm, " 6.2%"), "%s", shm); /* 6.25 rounded to even */
    cr_assert(strstr(shm, " 2.00x "), "%s", shm);
    /* the other rows have no transport and no split */
    cr_assert(strstr(native, " split  -  "), "%s", native);
    cr_assert(!strstr(native, "/"), "%s", native);
    /* the columns line up: the transport column starts, and the speed-up column ends, at the
     * same place on every line */
    size_t tp = (size_t)(strstr(hdr, "transport") - hdr);
    cr_assert_eq(strncmp(pipe + tp, "pipe ", 5), 0, "%s\n%s", hdr, pipe);
    cr_assert_eq(strncmp(shm + tp, "shm ", 4), 0, "%s\n%s", hdr, shm);
    cr_assert_eq(native[tp], '-', "%s\n%s", hdr, native);
    size_t sp = (size_t)(strstr(hdr, "speed-up") - hdr) + strlen("speed-up");
    const char *lines[] = {pipe, shm, native};
    for (int k = 0; k < 3; k++)
        cr_assert(lines[k][sp - 1] == 'x' && lines[k][sp] == ' ', "misaligned:\n%s\n%s", hdr,
                  lines[k]);
    /* the footnote says what h2d and d2h mean for process rows, and what shm moves */
    cr_assert(strstr(out, "process: h2d = sending the parts to the worker processes, d2h = "
                          "receiving them back"), "%s", out);
    cr_assert(strstr(out, "shm moves only offsets"), "%s", out);
    cr_assert(strstr(out, "process: 1 worker was restarted (3.000 ms of startup"), "%s", out);
    free(out);

    /* without restarts, no restart line; without process rows, no process footnote */
    prows[3].workers_started = 0;
    prows[3].startup_ns = 0;
    CAPTURE(out, hc_print_compare(F, &c, HC_TEXT));
    cr_assert(!strstr(out, "restarted"), "%s", out);
    free(out);
    c.nrows = 2;
    CAPTURE(out, hc_print_compare(F, &c, HC_TEXT));
    cr_assert(!strstr(out, "process"), "%s", out);
    cr_assert(!strstr(out, "transport"), "%s", out);
    cr_assert(!strstr(out, "h2d"), "%s", out);
    free(out);
}

Test(table, gpu_row_is_called_gpu_without_footnote)
{
    hc_compare c = make_compare();
    rows[5].flags = HY_ROW_GPU;
    char *out = NULL;
    CAPTURE(out, hc_print_compare(F, &c, HC_TEXT));
    cr_assert(strstr(out, "GPU"));
    cr_assert(!strstr(out, "PoCL"));
    free(out);
}

/* ---- CSV ---- */

/* Fields of one CSV line under RFC 4180 quoting. */
static unsigned csv_fields(const char *l, size_t len)
{
    unsigned n = 1;
    bool q = false;
    for (size_t i = 0; i < len; i++) {
        if (l[i] == '"')
            q = !q;
        else if (l[i] == ',' && !q)
            n++;
    }
    cr_assert(!q, "unbalanced quotes: %.*s", (int)len, l);
    return n;
}

Test(csv, header_and_rows)
{
    hc_compare c = make_compare();
    char *out = NULL;
    CAPTURE(out, hc_print_compare(F, &c, HC_CSV));
    const char *hdr = "backend,device,threads,mode,nogil,n,copies,median_ns,min_ns,max_ns,"
                      "throughput,speedup,efficiency,lock_handoffs,lock_wait_ns,lock_hold_ns,"
                      "wait_share,h2d_ns,kernel_ns,d2h_ns,transfer_share,hits,estimate,repeat,"
                      "transport,bytes_moved,startup_ns,merge_ns,workers_started,mean_ns,"
                      "stddev_ns,q1_ns,q3_ns,warmup_ns,predicted_ns,cpu_items,cpu_busy_ns,"
                      "dev_busy_ns,cpu_chunks,dev_chunks,devices_used,balance,overlap_ns\n";
    cr_assert_eq(strncmp(out, hdr, strlen(hdr)), 0, "%s", out);
    cr_assert_eq(count_lines(out), 1 + c.nrows);
    for (const char *l = out; *l;) {
        size_t len = strcspn(l, "\n");
        cr_assert_eq(csv_fields(l, len), 43, "%.*s", (int)len, l);
        l += len + (l[len] == '\n');
    }
    cr_assert(strstr(out, "\nlocked,CPU,2,split,0,1000000,1,80000000,79999000,80002000,"
                          "12500000,1.25,0.625,1234,40000000,75000000,0.25,0,0,0,,785398,"),
              "%s", out);
    cr_assert(strstr(out, "\nopencl,PoCL CPU,0,split,,1000000,1,25000000,"), "%s", out);
    /* the process columns are empty on the other backends */
    cr_assert(strstr(out, ",0.5,785398,3.1415920000000002,5,,,,,,0,0,0,0,0,,,,,,,,,0\n"), "%s", out);
    free(out);
}

Test(csv, sort_has_no_pi_figures)
{
    hc_compare c = make_compare();
    c.job = HY_JOB_COMPARE_SORT;
    c.dtype = HY_DT_I32;
    c.dist = "sorted";
    char *out = NULL;
    CAPTURE(out, hc_print_compare(F, &c, HC_CSV));
    cr_assert_eq(count_lines(out), 1 + c.nrows);
    cr_assert(strstr(out, ",,,5,,,,,,0,0,0,0,0,,,,,,,,,0\n"), "%s", out);
    free(out);
}

Test(csv, process_columns_at_the_end)
{
    hc_compare c = make_process_compare();
    char *out = NULL;
    CAPTURE(out, hc_print_compare(F, &c, HC_CSV));
    cr_assert_eq(count_lines(out), 1 + c.nrows);
    for (const char *l = out; *l;) {
        size_t len = strcspn(l, "\n");
        cr_assert_eq(csv_fields(l, len), 43, "%.*s", (int)len, l);
        l += len + (l[len] == '\n');
    }
    /* ... h2d,kernel,d2h,transfer_share,hits,estimate,repeat,transport,bytes_moved,
     * startup_ns,merge_ns,workers_started */
    cr_assert(strstr(out, "\nprocess,CPU,2,split,,1000000,1,62500000,62499000,62502000,16000000,"
                          "1.6000000000000001,0.80000000000000004,0,0,0,,1000000,6000000,1000000,"
                          "0.25,,,5,pipe,16000000,0,500000,0,0,0,0,0,0,,,,,,,,,0\n"),
              "%s", out);
    cr_assert(strstr(out, ",250000,7500000,250000,0.0625,,,5,shm,64,3000000,400000,1,0,0,0,0,0,,,,,,,,,0\n"),
              "%s", out);
    cr_assert(strstr(out, "\nnative,CPU,2,split,"), "%s", out);
    cr_assert(strstr(out, ",,,5,,,,,,0,0,0,0,0,,,,,,,,,0\n"), "%s", out); /* serial and native: empty */
    free(out);
}

/* The spread: an sd column, and notes for what the figures cannot say: a noisy row, a row
 * whose runs overlap serial's, a warm-up far slower than the timed runs. */
Test(table, spread_and_warnings)
{
    hc_compare c = make_compare();
    c.nrows = 3; /* serial, native 1, native 2 */
    for (unsigned i = 0; i < 3; i++) {
        hy_result_row *r = &rows[i];
        r->mean_ns = r->median_ns;
        r->stddev_ns = r->median_ns / 50; /* 2% */
        r->q1_ns = r->median_ns - r->median_ns / 100;
        r->q3_ns = r->median_ns + r->median_ns / 100;
    }
    rows[1].median_ns = rows[1].mean_ns = 99000000; /* native 1: inside serial's spread */
    rows[1].q1_ns = 98500000;
    rows[1].q3_ns = 99500000;
    rows[2].stddev_ns = rows[2].mean_ns / 4; /* native 2: 25%, noisy */
    rows[2].warmup_ns = 3 * rows[2].median_ns;
    char *out = NULL;
    CAPTURE(out, hc_print_compare(F, &c, HC_TEXT));
    cr_assert(strstr(out, " sd "), "%s", out);
    cr_assert(strstr(out, "2.0%"), "%s", out);
    cr_assert(strstr(out, "25.0%"), "%s", out);
    cr_assert(strstr(out, "note: noisy: native 2T (standard deviation above 10% of the mean)"),
              "%s", out);
    cr_assert(strstr(out, "note: cannot be told from serial: native 1T (the middle halves"),
              "%s", out);
    cr_assert(!strstr(out, "from serial: native 1T, native 2T"), "native 2 is twice as fast");
    cr_assert(strstr(out, "note: slow first run: native 2T (the warm-up took over 2x"), "%s",
              out);
    free(out);
    CAPTURE(out, hc_print_compare(F, &c, HC_JSON));
    cr_assert(json_ok(out), "%s", out);
    cr_assert(strstr(out, "\"stddev_ns\":12500000"), "%s", out);
    cr_assert(strstr(out, "\"warmup_ns\":150000000"), "%s", out);
    cr_assert(strstr(out, "\"warnings\":[\"noisy: native 2T"), "%s", out);
    free(out);
    /* a busy machine before the comparison is said; a quiet one is not */
    c.cpus = 2;
    c.load_before = 1.8;
    c.load_after = 2.5;
    CAPTURE(out, hc_print_compare(F, &c, HC_TEXT));
    cr_assert(strstr(out, "note: busy machine: load average 1.80 on 2 CPUs before the "
                          "comparison (2.50 after)"), "%s", out);
    free(out);
    CAPTURE(out, hc_print_compare(F, &c, HC_JSON));
    cr_assert(json_ok(out), "%s", out);
    cr_assert(strstr(out, "\"machine\":{\"cpus\":2,\"load_before\":1.8,\"load_after\":2.5}"),
              "%s", out);
    free(out);
    c.load_before = 0.4;
    CAPTURE(out, hc_print_compare(F, &c, HC_TEXT));
    cr_assert(!strstr(out, "busy machine"), "%s", out);
    free(out);
    c.cpus = 0;
    /* without the spread (an older daemon): no column, no notes */
    for (unsigned i = 0; i < 3; i++) {
        hy_result_row *r = &rows[i];
        r->mean_ns = r->stddev_ns = r->q1_ns = r->q3_ns = r->warmup_ns = 0;
    }
    CAPTURE(out, hc_print_compare(F, &c, HC_TEXT));
    cr_assert(!strstr(out, " sd ") && !strstr(out, "note:"), "%s", out);
    free(out);
}

/* ---- JSON ---- */

Test(json, compare_document)
{
    hc_compare c = make_compare();
    char *out = NULL;
    CAPTURE(out, hc_print_compare(F, &c, HC_JSON));
    cr_assert(json_ok(out), "%s", out);
    cr_assert_eq(strncmp(out, "{\"job\":\"compare pi\",\"n\":1000000,\"seed\":42,", 42), 0,
                 "%s", out);
    cr_assert(strstr(out, "\"mode\":\"split\",\"repeat\":5,\"server\":\"hybridd 0.1.0\""));
    cr_assert(strstr(out, "\"device_name\":\"pthread-haswell-AMD EPYC, \\\"64-Core\\\"\""));
    cr_assert(strstr(out, "\"device\":\"PoCL CPU\""));
    cr_assert(strstr(out, "\"speedup\":1.25"));
    cr_assert(strstr(out, "\"wait_share\":0.25"));
    cr_assert(strstr(out, "\"transfer_share\":0.5"));
    cr_assert(strstr(out, "\"efficiency\":null")); /* opencl */
    cr_assert(strstr(out, "\"nogil\":true"));
    cr_assert(strstr(out, "\"nogil\":false"));
    cr_assert(!strstr(out, "GPU"));
    free(out);

    c.job = HY_JOB_COMPARE_SORT;
    c.dtype = HY_DT_U64;
    c.dist = "in\"put\\\x01.npy";
    c.device_name = NULL;
    CAPTURE(out, hc_print_compare(F, &c, HC_JSON));
    cr_assert(json_ok(out), "%s", out);
    cr_assert(strstr(out, "\"dtype\":\"u64\",\"dist\":\"in\\\"put\\\\\\u0001.npy\""), "%s", out);
    cr_assert(strstr(out, "\"device_name\":null"));
    free(out);
}

Test(json, process_rows)
{
    hc_compare c = make_process_compare();
    char *out = NULL;
    CAPTURE(out, hc_print_compare(F, &c, HC_JSON));
    cr_assert(json_ok(out), "%s", out);
    /* a process row has its transport, its figures and its transfer share */
    const char *p = strstr(out, "{\"backend\":\"process\"");
    cr_assert(p, "%s", out);
    const char *end = strchr(p, '}');
    cr_assert(end);
    size_t len = (size_t)(end - p);
    cr_assert(SPAN_HAS(p, len, "\"device\":\"CPU\""), "%.*s", (int)len, p);
    cr_assert(SPAN_HAS(p, len, "\"threads\":2"), "%.*s", (int)len, p);
    cr_assert(SPAN_HAS(p, len, "\"h2d_ns\":1000000,\"kernel_ns\":6000000,\"d2h_ns\":1000000"),
              "%.*s", (int)len, p);
    cr_assert(SPAN_HAS(p, len, "\"transport\":\"pipe\",\"bytes_moved\":16000000,"
                             "\"startup_ns\":0,\"merge_ns\":500000,\"workers_started\":0"),
              "%.*s", (int)len, p);
    cr_assert(SPAN_HAS(p, len, "\"transfer_share\":0.25"), "%.*s", (int)len, p);
    cr_assert(SPAN_HAS(p, len, "\"efficiency\":0.8"), "%.*s", (int)len, p);
    p = strstr(end, "{\"backend\":\"process\"");
    cr_assert(p, "%s", out);
    end = strchr(p, '}');
    len = (size_t)(end - p);
    cr_assert(SPAN_HAS(p, len, "\"transport\":\"shm\",\"bytes_moved\":64,\"startup_ns\":3000000,"
                             "\"merge_ns\":400000,\"workers_started\":1"),
              "%.*s", (int)len, p);
    cr_assert(SPAN_HAS(p, len, "\"transfer_share\":0.0625"), "%.*s", (int)len, p);
    /* the other backends: no transport, no transfer share */
    cr_assert(strstr(out, "{\"backend\":\"serial\""));
    const char *s = strstr(out, "{\"backend\":\"native\"");
    cr_assert(s);
    end = strchr(s, '}');
    len = (size_t)(end - s);
    cr_assert(SPAN_HAS(s, len, "\"transport\":null"), "%.*s", (int)len, s);
    cr_assert(SPAN_HAS(s, len, "\"transfer_share\":null"), "%.*s", (int)len, s);
    free(out);
}

Test(json, string_escapes)
{
    char *out = NULL;
    size_t len;
    FILE *f = open_memstream(&out, &len);
    cr_assert(f);
    const char s[] = "a\"b\\c\n\t\x01\x1f\x7f é π \xff z";
    hc_json_string(f, s, sizeof s - 1);
    fputc(' ', f);
    hc_json_string(f, "with\0nul", 8); /* a length, not a C string */
    fputc(' ', f);
    hc_json_string(f, NULL, 0);
    cr_assert_eq(fclose(f), 0);
    cr_assert_str_eq(out, "\"a\\\"b\\\\c\\u000a\\u0009\\u0001\\u001f\\u007f é π \\ufffd z\" "
                          "\"with\\u0000nul\" \"\"");
    free(out);
}

/* ---- the SVG chart ---- */

static char tmpdir[64];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_report.XXXXXX");
    cr_assert(mkdtemp(tmpdir));
}

static unsigned dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert(d);
    unsigned n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "%s", path);
    char *buf = malloc(1 << 20);
    cr_assert(buf);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void rm_tmpdir(void)
{
    DIR *d = opendir(tmpdir);
    if (!d)
        return;
    char p[512];
    for (struct dirent *e; (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        if (unlink(p) != 0)
            rmdir(p);
    }
    closedir(d);
    rmdir(tmpdir);
}

Test(plot, well_formed_with_every_series, .init = make_tmpdir, .fini = rm_tmpdir)
{
    hc_compare c = make_compare();
    char path[128];
    snprintf(path, sizeof path, "%s/scaling.svg", tmpdir);
    hy_error err = {0};
    cr_assert_eq(hc_write_plot(path, &c, &err), 0, "%s", err.msg);
    cr_assert_eq(dir_entries(tmpdir), 1); /* no temporary file left */
    char *svg = slurp(path);
    cr_assert(xml_ok(svg), "%s", svg);
    cr_assert(strstr(svg, "xmlns=\"http://www.w3.org/2000/svg\""));
    cr_assert(strstr(svg, "compare pi, n=1000000, split mode"));
    cr_assert(strstr(svg, "opencl (PoCL CPU)"));
    cr_assert(strstr(svg, ">native<"));
    cr_assert(strstr(svg, "locked (lock held)"));
    cr_assert(strstr(svg, "locked (nogil)"));
    cr_assert(strstr(svg, "ideal"));
    cr_assert(strstr(svg, "speed-up over serial"));
    cr_assert(strstr(svg, ">threads<"));
    cr_assert(strstr(svg, "stroke-dasharray=\"6,4\""));
    cr_assert(strstr(svg, "stroke-dasharray=\"10,4,2,4\""));
    cr_assert(strstr(svg, "<polyline"));
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_neq(st.st_mode & 0044, 0, "a plot is readable like any file the user writes");
    free(svg);

    /* replaced atomically: a second write over the first */
    c.nrows = 1;
    cr_assert_eq(hc_write_plot(path, &c, &err), 0, "%s", err.msg);
    cr_assert_eq(dir_entries(tmpdir), 1);
    svg = slurp(path);
    cr_assert(xml_ok(svg), "%s", svg);
    free(svg);
}

Test(plot, process_transports_are_labelled, .init = make_tmpdir, .fini = rm_tmpdir)
{
    hc_compare c = make_process_compare();
    prows[1] = row(HY_BACKEND_PROCESS, 1, 100000000); /* a second pipe point, at 1 worker */
    prows[1].transport = HY_TRANSPORT_PIPE;
    char path[128];
    snprintf(path, sizeof path, "%s/process.svg", tmpdir);
    hy_error err = {0};
    cr_assert_eq(hc_write_plot(path, &c, &err), 0, "%s", err.msg);
    char *svg = slurp(path);
    cr_assert(xml_ok(svg), "%s", svg);
    /* two legend entries, one per transport, and every point says which it is */
    cr_assert(strstr(svg, ">process/pipe</text>"), "%s", svg);
    cr_assert(strstr(svg, ">process/shm</text>"), "%s", svg);
    cr_assert(strstr(svg, "<title>process/pipe T=1: 1.00x</title>"), "%s", svg);
    cr_assert(strstr(svg, "<title>process/pipe T=2: 1.60x</title>"), "%s", svg);
    cr_assert(strstr(svg, "<title>process/shm T=2: 2.00x</title>"), "%s", svg);
    cr_assert(strstr(svg, "<title>serial T=1: 1.00x</title>"), "%s", svg);
    /* the pipe line joins its two points; shm has one point and no line */
    cr_assert(strstr(svg, "<polyline fill=\"none\" stroke=\"#9467bd\""), "%s", svg);
    cr_assert(!strstr(svg, "<polyline fill=\"none\" stroke=\"#8c564b\""), "%s", svg);
    free(svg);
}

Test(plot, serial_only_and_escaped_text, .init = make_tmpdir, .fini = rm_tmpdir)
{
    hc_compare c = make_compare();
    c.job = HY_JOB_COMPARE_SORT;
    c.dtype = HY_DT_F64;
    c.dist = "a&b<c>\"d'e\x02.npy";
    c.server = "hy<bridd> & co";
    c.nrows = 1;
    char path[128];
    snprintf(path, sizeof path, "%s/serial.svg", tmpdir);
    hy_error err = {0};
    cr_assert_eq(hc_write_plot(path, &c, &err), 0, "%s", err.msg);
    char *svg = slurp(path);
    cr_assert(xml_ok(svg), "%s", svg);
    cr_assert(strstr(svg, "compare sort, n=1000000 f64 a&amp;b&lt;c&gt;&quot;d&apos;e?.npy"),
              "%s", svg);
    cr_assert(strstr(svg, "hy&lt;bridd&gt; &amp; co"));
    cr_assert(strstr(svg, "<circle")); /* the serial point */
    cr_assert(!strstr(svg, "opencl"));
    free(svg);
}

/* A row of a backend the chart has no style for (a newer daemon's, or one added to the
 * backend table later) is still drawn: its own line and legend entry, named from the table
 * where this client knows the backend and by number where it does not. */
Test(plot, unstyled_backend_gets_a_line, .init = make_tmpdir, .fini = rm_tmpdir)
{
    static hy_result_row r[5];
    r[0] = row(HY_BACKEND_SERIAL, 1, 100000000);
    r[1] = row(HY_BACKEND_COUNT + 1, 1, 50000000);
    r[2] = row(HY_BACKEND_COUNT + 1, 2, 25000000);
    r[3] = row(HY_BACKEND_COUNT + 2, 2, 40000000);
    r[4] = row(HY_BACKEND_NATIVE, 2, 50000000);
    hc_compare c = make_compare();
    c.rows = r;
    c.nrows = 5;
    char path[128], want[128];
    snprintf(path, sizeof path, "%s/other.svg", tmpdir);
    hy_error err = {0};
    cr_assert_eq(hc_write_plot(path, &c, &err), 0, "%s", err.msg);
    char *svg = slurp(path);
    cr_assert(xml_ok(svg), "%s", svg);
    snprintf(want, sizeof want, ">backend %d</text>", HY_BACKEND_COUNT + 1);
    cr_assert(strstr(svg, want), "no legend entry %s: %s", want, svg);
    snprintf(want, sizeof want, "<title>backend %d T=2: 4.00x</title>", HY_BACKEND_COUNT + 1);
    cr_assert(strstr(svg, want), "no point %s: %s", want, svg);
    snprintf(want, sizeof want, "<title>backend %d T=2: 2.50x</title>", HY_BACKEND_COUNT + 2);
    cr_assert(strstr(svg, want), "no point %s: %s", want, svg);
    /* the first has two points, joined in the first spare colour; styled backends keep theirs */
    cr_assert(strstr(svg, "<polyline fill=\"none\" stroke=\"#e377c2\""), "%s", svg);
    cr_assert(strstr(svg, ">native</text>"), "%s", svg);
    free(svg);
}

/* The chart shows each point's spread as a bar (where the rows carry it), keeps serial's
 * point visible under native's (a ring), and puts opencl's speed-up in the legend rather
 * than across the CPU lines. */
Test(plot, spread_bars_ring_and_legend_label, .init = make_tmpdir, .fini = rm_tmpdir)
{
    hc_compare c = make_compare();
    for (unsigned i = 0; i < c.nrows; i++) {
        rows[i].q1_ns = rows[i].median_ns - rows[i].median_ns / 10;
        rows[i].q3_ns = rows[i].median_ns + rows[i].median_ns / 10;
    }
    char path[128];
    snprintf(path, sizeof path, "%s/spread.svg", tmpdir);
    hy_error err = {0};
    cr_assert_eq(hc_write_plot(path, &c, &err), 0, "%s", err.msg);
    char *svg = slurp(path);
    cr_assert(xml_ok(svg), "%s", svg);
    unsigned bars = 0;
    for (const char *p = svg; (p = strstr(p, "class=\"spread\"")); p++)
        bars++;
    cr_assert_eq(bars, 5, "a bar per CPU point (serial, native 1 and 2, locked 1 and 2): %u",
                 bars);
    cr_assert(strstr(svg, "r=\"6.5\" fill=\"none\" stroke=\"#333333\""), "serial's ring: %s",
              svg);
    cr_assert(strstr(svg, ">opencl (PoCL CPU) 4.00x</text>"), "%s", svg);
    cr_assert(!strstr(svg, "text-anchor=\"end\" fill=\"#2ca02c\""), "no label over the lines");
    free(svg);
    /* rows without the spread (an older daemon): no bars */
    for (unsigned i = 0; i < c.nrows; i++)
        rows[i].q1_ns = rows[i].q3_ns = 0;
    cr_assert_eq(hc_write_plot(path, &c, &err), 0, "%s", err.msg);
    svg = slurp(path);
    cr_assert(!strstr(svg, "class=\"spread\""), "%s", svg);
    free(svg);
}

Test(plot, failed_write_leaves_nothing, .init = make_tmpdir, .fini = rm_tmpdir)
{
    hc_compare c = make_compare();
    char path[160];
    hy_error err = {0};

    snprintf(path, sizeof path, "%s/missing/plot.svg", tmpdir);
    cr_assert_eq(hc_write_plot(path, &c, &err), HY_ESYS);
    cr_assert(strstr(err.msg, path), "%s", err.msg);
    cr_assert_eq(dir_entries(tmpdir), 0);

    /* the target is a directory: refused before a temporary file is made */
    snprintf(path, sizeof path, "%s/adir", tmpdir);
    cr_assert_eq(mkdir(path, 0700), 0);
    memset(&err, 0, sizeof err);
    cr_assert_eq(hc_write_plot(path, &c, &err), HY_EINVAL);
    cr_assert(strstr(err.msg, path), "%s", err.msg);
    cr_assert(strstr(err.msg, "the plot") && strstr(err.msg, "is a directory"), "%s", err.msg);
    cr_assert_eq(dir_entries(tmpdir), 1, "the temporary file was left behind");
    cr_assert_eq(dir_entries(path), 0);
}

Test(plot, existing_file_keeps_its_mode, .init = make_tmpdir, .fini = rm_tmpdir)
{
    /* Written through client/output.c: a plot replacing a private file stays private, a
     * link to it stays a link. */
    hc_compare c = make_compare();
    char path[160], link[160];
    hy_error err = {0};
    snprintf(path, sizeof path, "%s/private.svg", tmpdir);
    snprintf(link, sizeof link, "%s/link.svg", tmpdir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fclose(f);
    cr_assert_eq(chmod(path, 0600), 0);
    cr_assert_eq(symlink("private.svg", link), 0);
    cr_assert_eq(hc_write_plot(link, &c, &err), 0, "%s", err.msg);
    struct stat st;
    cr_assert_eq(lstat(link, &st), 0);
    cr_assert(S_ISLNK(st.st_mode), "the link was replaced");
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
    char *svg = slurp(path);
    cr_assert(xml_ok(svg), "%s", svg);
    free(svg);
    cr_assert_eq(dir_entries(tmpdir), 2);
}

/* ---- single jobs ---- */

Test(single, pi_text_and_json)
{
    hy_result_row r = row(HY_BACKEND_NATIVE, 8, 12500000);
    r.estimate = 3.1416;
    hc_pi_report rep = {.seed = 7, .row = &r};
    char *out = NULL;
    CAPTURE(out, hc_print_pi(F, &rep, HC_TEXT));
    cr_assert(strstr(out, "pi ≈ 3.141600000 (error 7.3e-06 against π, standard error 0.0016)"),
              "%s", out);
    cr_assert(strstr(out, "hits 785398 of 1000000 samples"));
    cr_assert(strstr(out, "native, 8 threads, CPU"));
    cr_assert(strstr(out, "80.0M samples/s"), "%s", out);
    free(out);
    CAPTURE(out, hc_print_pi(F, &rep, HC_JSON));
    cr_assert(json_ok(out), "%s", out);
    cr_assert(strstr(out, "\"seed\":7"));
    cr_assert(strstr(out, "\"throughput\":80000000"));
    free(out);

    r = row(HY_BACKEND_OPENCL, 0, 1000000);
    r.flags = HY_ROW_POCL_CPU;
    rep.device_name = "cpu-\x1b[31mred";
    CAPTURE(out, hc_print_pi(F, &rep, HC_TEXT));
    cr_assert(strstr(out, "opencl, PoCL CPU (cpu-?[31mred)"), "%s", out);
    cr_assert(strstr(out, "not a GPU"));
    cr_assert(!strchr(out, '\x1b'));
    free(out);
    CAPTURE(out, hc_print_pi(F, &rep, HC_JSON));
    cr_assert(json_ok(out), "%s", out);
    cr_assert(strstr(out, "\"device_name\":\"cpu-\\u001b[31mred\""), "%s", out);
    cr_assert(strstr(out, "\"overlap_ns\":0"), "%s", out);
    free(out);

    /* A device that overlapped its copies with kernels: said apart from h2d and d2h. */
    r.h2d_ns = 2000000;
    r.kernel_ns = 9000000;
    r.d2h_ns = 1000000;
    r.overlap_ns = 3500000;
    CAPTURE(out, hc_print_pi(F, &rep, HC_TEXT));
    cr_assert(strstr(out, "opencl: h2d 2.000 ms, kernel 9.000 ms, d2h 1.000 ms (and 3.500 ms of "
                          "copies under the kernels)"), "%s", out);
    free(out);
    CAPTURE(out, hc_print_pi(F, &rep, HC_JSON));
    cr_assert(strstr(out, "\"overlap_ns\":3500000"), "%s", out);
    free(out);
}

/* Backend auto: what it chose and why, the prediction beside the time; a named backend's
 * prediction said plainly. */
Test(single, auto_says_what_it_chose_and_why)
{
    hy_result_row r = row(HY_BACKEND_PROCESS, 2, 43000000);
    r.transport = HY_TRANSPORT_PIPE;
    r.flags = HY_ROW_AUTO;
    r.predicted_ns = 41000000;
    hc_pi_report rep = {.seed = 7, .row = &r};
    char *out = NULL;
    CAPTURE(out, hc_print_pi(F, &rep, HC_TEXT));
    cr_assert(strstr(out, "\nauto chose process, 2 worker processes, pipe transport, CPU "
                          "(predicted fastest, 41.000 ms; took 43.000 ms)\n"), "%s", out);
    free(out);
    CAPTURE(out, hc_print_pi(F, &rep, HC_JSON));
    cr_assert(json_ok(out), "%s", out);
    cr_assert(strstr(out, "\"predicted_ns\":41000000,\"auto\":true,\"explore\":false"), "%s",
              out);
    cr_assert(strstr(out, "\"backend\":\"process\""), "%s", out);
    free(out);

    r = row(HY_BACKEND_NATIVE, 2, 5000000);
    r.flags = HY_ROW_AUTO | HY_ROW_EXPLORE;
    CAPTURE(out, hc_print_pi(F, &rep, HC_TEXT));
    cr_assert(strstr(out, "\nauto explored native, 2 threads, CPU (the daemon's history has "
                          "too few runs of it at this size; took 5.000 ms)\n"), "%s", out);
    cr_assert(!strstr(out, "predicted"), "%s", out);
    free(out);
    CAPTURE(out, hc_print_pi(F, &rep, HC_JSON));
    cr_assert(strstr(out, "\"predicted_ns\":null,\"auto\":true,\"explore\":true"), "%s", out);
    free(out);

    r = row(HY_BACKEND_SERIAL, 1, 5000000);
    r.predicted_ns = 4500000;
    CAPTURE(out, hc_print_pi(F, &rep, HC_TEXT));
    cr_assert(strstr(out, "\nthe daemon's history predicted 4.500 ms\n"), "%s", out);
    cr_assert(!strstr(out, "auto"), "%s", out);
    free(out);
    r.predicted_ns = 0;
    CAPTURE(out, hc_print_pi(F, &rep, HC_TEXT));
    cr_assert(!strstr(out, "predicted"), "%s", out);
    free(out);
}

/* compare: a "predicted ms" column beside the median when any row has a prediction ("-"
 * where a row has none), predicted_ns in CSV and JSON; no column when none has one. */
Test(table, predictions_beside_the_measurements)
{
    hc_compare c = make_compare();
    char *out = NULL;
    CAPTURE(out, hc_print_compare(F, &c, HC_TEXT));
    cr_assert(!strstr(out, "predicted"), "%s", out);
    free(out);
    rows[0].predicted_ns = 98000000;
    rows[2].predicted_ns = 52500000;
    CAPTURE(out, hc_print_compare(F, &c, HC_TEXT));
    cr_assert(strstr(out, "median ms  predicted ms  min ms"), "%s", out);
    cr_assert(strstr(out, "100.000        98.000"), "%s", out);
    cr_assert(strstr(out, " 50.000        52.500"), "%s", out);
    cr_assert(strstr(out, "100.000             -"), "%s", out); /* native 1: none */
    free(out);
    CAPTURE(out, hc_print_compare(F, &c, HC_CSV));
    cr_assert(strstr(out, "\nserial,"), "%s", out);
    cr_assert(strstr(out, ",98000000,,,,,,,,0\n"), "%s", out);
    cr_assert(strstr(out, ",52500000,,,,,,,,0\n"), "%s", out);
    free(out);
    CAPTURE(out, hc_print_compare(F, &c, HC_JSON));
    cr_assert(json_ok(out), "%s", out);
    cr_assert(strstr(out, "\"predicted_ns\":98000000,\"auto\":false,\"explore\":false"), "%s",
              out);
    cr_assert(strstr(out, "\"predicted_ns\":null"), "%s", out);
    free(out);
}

Test(single, process_text_and_json)
{
    hy_result_row r = row(HY_BACKEND_PROCESS, 3, 40000000);
    r.transport = HY_TRANSPORT_SHM;
    r.h2d_ns = 1000000;
    r.kernel_ns = 2000000;
    r.d2h_ns = 1000000;
    r.bytes_moved = 1536;
    r.merge_ns = 250000;
    r.workers_started = 2;
    r.startup_ns = 4000000;
    hc_sort_report rep = {.dtype = HY_DT_I32, .source = "uniform", .checked = 1, .row = &r};
    char *out = NULL;
    CAPTURE(out, hc_print_sort(F, &rep, HC_TEXT));
    cr_assert(strstr(out, "sorted on process, 3 worker processes, shm transport, CPU"), "%s", out);
    cr_assert(strstr(out, "process: sending parts 1.000 ms, running 2.000 ms (merge 0.250 ms), "
                          "receiving 1.000 ms (moving data 50.0%), 1.5 KiB moved"),
              "%s", out);
    cr_assert(strstr(out, "offsets only"), "%s", out);
    cr_assert(strstr(out, "2 workers were restarted first (4.000 ms)"), "%s", out);
    free(out);
    CAPTURE(out, hc_print_sort(F, &rep, HC_JSON));
    cr_assert(json_ok(out), "%s", out);
    cr_assert(strstr(out, "\"backend\":\"process\""), "%s", out);
    cr_assert(strstr(out, "\"transport\":\"shm\",\"bytes_moved\":1536"), "%s", out);
    cr_assert(strstr(out, "\"workers_started\":2"), "%s", out);
    cr_assert(strstr(out, "\"transfer_share\":0.5"), "%s", out);
    free(out);

    /* pipe, one worker; a row with transport 0 is pipe, the protocol's default */
    hy_result_row p = row(HY_BACKEND_PROCESS, 1, 10000000);
    hc_pi_report pr = {.seed = 3, .row = &p};
    CAPTURE(out, hc_print_pi(F, &pr, HC_TEXT));
    cr_assert(strstr(out, "ran on process, 1 worker process, pipe transport, CPU"), "%s", out);
    cr_assert(!strstr(out, "offsets only"), "%s", out);
    cr_assert(!strstr(out, "restarted"), "%s", out);
    free(out);
    CAPTURE(out, hc_print_pi(F, &pr, HC_JSON));
    cr_assert(json_ok(out), "%s", out);
    cr_assert(strstr(out, "\"transport\":\"pipe\""), "%s", out);
    free(out);
}

/* A hybrid row: each side's share and busy time, the balance, the devices' transfers; and
 * a row where the pool ran alone says why. */
Test(single, hybrid_text_json_and_csv)
{
    hy_result_row r = row(HY_BACKEND_HYBRID, 2, 40000000);
    r.n = 1000000;
    r.cpu_items = 600000;
    r.cpu_busy_ns = 38000000;
    r.dev_busy_ns = 39000000;
    r.cpu_chunks = 7;
    r.dev_chunks = 9;
    r.devices_used = 1;
    r.balance_ppm = 910000;
    r.kernel_ns = 30000000;
    r.launches = 12;
    hc_pi_report pr = {.seed = 3, .row = &r};
    char *out = NULL;
    CAPTURE(out, hc_print_pi(F, &pr, HC_TEXT));
    cr_assert(strstr(out, "hybrid: native pool 60.0% (7 chunks, busy 38.000 ms), 1 OpenCL device "
                          "40.0% (9 chunks, busy 39.000 ms), balance efficiency 0.91"),
              "%s", out);
    cr_assert(strstr(out, "kernel 30.000 ms, d2h 0.000 ms, 12 launches"), "%s", out);
    free(out);
    CAPTURE(out, hc_print_pi(F, &pr, HC_JSON));
    cr_assert(json_ok(out), "%s", out);
    cr_assert(strstr(out, "\"cpu_items\":600000,\"cpu_busy_ns\":38000000,"
                          "\"dev_busy_ns\":39000000,\"cpu_chunks\":7,\"dev_chunks\":9,"
                          "\"devices_used\":1,\"balance\":0.91"),
              "%s", out);
    free(out);
    hy_result_row rows[2] = {row(HY_BACKEND_SERIAL, 1, 80000000), r};
    hc_compare c = make_compare();
    c.rows = rows;
    c.nrows = 2;
    CAPTURE(out, hc_print_compare(F, &c, HC_CSV));
    cr_assert(strstr(out, ",600000,38000000,39000000,7,9,1,0.91000000000000003,0\n"), "%s",
              out);
    free(out);

    hy_result_row alone = row(HY_BACKEND_HYBRID, 2, 40000000);
    alone.cpu_items = alone.n;
    alone.flags = HY_ROW_SHARED_CORES;
    pr.row = &alone;
    CAPTURE(out, hc_print_pi(F, &pr, HC_TEXT));
    cr_assert(strstr(out, "hybrid: the native pool ran it alone (the OpenCL devices here are CPU "
                          "devices on the pool's own cores"), "%s", out);
    free(out);
    CAPTURE(out, hc_print_pi(F, &pr, HC_JSON));
    cr_assert(strstr(out, "\"balance\":null,\"shared_cores\":true"), "%s", out);
    free(out);
    alone.flags = HY_ROW_WHOLE;
    CAPTURE(out, hc_print_pi(F, &pr, HC_TEXT));
    cr_assert(strstr(out, "hybrid: the native pool ran it alone (the array is too small, or "
                          "its keys too crowded, for the pool's first pass to hand a device a "
                          "range)"), "%s", out);
    free(out);

    /* A hybrid sort whose rates predict the device alone fastest: NO_GAIN, one device, none
     * of the keys the pool's. */
    hy_result_row dev = row(HY_BACKEND_HYBRID, 2, 40000000);
    dev.flags = HY_ROW_NO_GAIN;
    dev.devices_used = 1;
    dev.dev_chunks = 1;
    dev.dev_busy_ns = 39000000;
    pr.row = &dev;
    CAPTURE(out, hc_print_pi(F, &pr, HC_TEXT));
    cr_assert(strstr(out, "hybrid: one OpenCL device ran it alone"), "%s", out);
    cr_assert(strstr(out, "native pool 0.0% (0 chunks"), "%s", out);
    free(out);
}

Test(single, sort_text_and_json)
{
    hy_result_row r = row(HY_BACKEND_LOCKED, 4, 40000000);
    r.flags = HY_ROW_NOGIL;
    r.lock_handoffs = 9;
    hc_sort_report rep = {.dtype = HY_DT_I64, .source = "normal", .output = "out.npy",
                          .checked = 1, .row = &r};
    char *out = NULL;
    CAPTURE(out, hc_print_sort(F, &rep, HC_TEXT));
    cr_assert(strstr(out, "1000000 i64 from normal"), "%s", out);
    cr_assert(strstr(out, "locked, 4 threads, lock released, CPU"));
    cr_assert(strstr(out, "40.000 ms"));
    cr_assert(strstr(out, "25.0M elements/s"));
    cr_assert(strstr(out, "checked, ascending"));
    cr_assert(strstr(out, "out.npy"));
    free(out);
    rep.checked = 0;
    CAPTURE(out, hc_print_sort(F, &rep, HC_TEXT));
    cr_assert(strstr(out, "NOT in order"));
    free(out);
    rep.checked = -1;
    rep.output = NULL;
    CAPTURE(out, hc_print_sort(F, &rep, HC_JSON));
    cr_assert(json_ok(out), "%s", out);
    cr_assert(strstr(out, "\"checked\":null"));
    cr_assert(strstr(out, "\"output\":null"));
    cr_assert(strstr(out, "\"nogil\":true"));
    free(out);
}

/* ---- STATUS and DEVICES ---- */

Test(status, text_and_json)
{
    hy_msg_status_reply s = {0};
    s.clients = 2;
    s.uptime_ns = 3720ull * 1000000000ull;
    s.jobs_done = 120;
    s.jobs_failed = 2;
    s.jobs_cancelled = 1;
    s.jobs_running = 1;
    s.devices = 1;
    s.devices_usable = 1;
    s.backend_jobs[1] = 7;
    s.backend_busy_ns[1] = 2500000000ull;
    s.backend_jobs[4] = 3; /* process */
    s.backend_busy_ns[4] = 12500000ull;
    s.version = (hy_str){"hybridd 0.1.0", 13}; /* what the daemon sends: name and version */
    char *out = NULL;
    CAPTURE(out, hc_print_status(F, &s, HC_TEXT));
    cr_assert(strstr(out, "hybridd 0.1.0, up 1h02m, 2 clients"), "%s", out);
    cr_assert(strstr(out, "1 running, 120 done, 2 failed, 1 cancelled"));
    cr_assert(strstr(out, "busy 2.5 s"));
    cr_assert(strstr(out, "  process        3 runs  busy 12.5 ms\n"), "%s", out);
    cr_assert(strstr(out, "1 usable of 1 found"));
    free(out);
    CAPTURE(out, hc_print_status(F, &s, HC_JSON));
    cr_assert(json_ok(out), "%s", out);
    cr_assert(strstr(out, "\"native\":{\"jobs\":7,\"busy_ns\":2500000000}"), "%s", out);
    cr_assert(strstr(out, ",\"process\":{\"jobs\":3,\"busy_ns\":12500000}"), "%s", out);
    for (int b = 1; b <= HY_BACKEND_COUNT; b++) { /* every backend of the table, once */
        char key[32];
        snprintf(key, sizeof key, "\"%s\":{\"jobs\":", hy_backend_name(b));
        const char *at = strstr(out, key);
        cr_assert(at && !strstr(at + 1, key), "%s not there once: %s", key, out);
    }
    free(out);
}

Test(jobs, text_and_json)
{
    hy_job_record j[2] = {
        {.job_id = 12, .uid = 1000, .job = HY_JOB_SORT, .state = 2,
         .backend = HY_BACKEND_NATIVE, .device = HY_JOB_DEVICE_NONE, .dtype = HY_DT_F64,
         .nrows = 1, .threads = 2, .n = 10000000, .queued_ns = 3500000000ull,
         .running_ns = 3200000000ull, .done = 45, .total = 100,
         .predicted_ns = 10000000000ull},
        {.job_id = 13, .uid = 1001, .job = HY_JOB_COMPARE_PI, .state = 1,
         .device = 0, .nrows = 5, .n = 1000000000, .queued_ns = 61000000000ull,
         .wait_ns = 7000000000ull},
    };
    const char *owners[2] = {"alice", NULL};
    hy_msg_jobs_reply r = {.njobs = 2, .flags = HY_JOBS_ALL, .jobs = j};
    char *out = NULL;
    CAPTURE(out, hc_print_jobs(F, &r, owners, HC_TEXT));
    cr_assert(strstr(out, "    12  alice      running        3s  sort f64"), "%s", out);
    cr_assert(strstr(out, "native 2T"), "%s", out);
    cr_assert(strstr(out, "45% (row 1 of 1)"), "%s", out);
    cr_assert(strstr(out, "    13  ?          queued      1m01s  compare pi"), "%s", out);
    cr_assert(strstr(out, "5 rows (with opencl)"), "%s", out);
    cr_assert(strstr(out, "about 6s left"), "%s", out);
    cr_assert(strstr(out, "starts in about 7s"), "%s", out);
    cr_assert(!strstr(out, "other users"), "%s", out);
    free(out);
    CAPTURE(out, hc_print_jobs(F, &r, owners, HC_JSON));
    cr_assert(json_ok(out), "%s", out);
    cr_assert(strstr(out, "{\"id\":12,\"uid\":1000,\"user\":\"alice\",\"state\":\"running\","
                          "\"job\":\"sort\",\"n\":10000000,\"dtype\":\"f64\","
                          "\"backend\":\"native\",\"device\":null,\"threads\":2"),
              "%s", out);
    cr_assert(strstr(out, "\"user\":null"), "%s", out);
    cr_assert(strstr(out, "\"device\":0"), "%s", out);
    cr_assert(strstr(out, "\"all_users\":true,\"others\":{\"queued\":0,\"running\":0}}"), "%s",
              out);
    free(out);
    /* a user's view: nothing of theirs, the rest counted */
    r = (hy_msg_jobs_reply){.others_queued = 2, .others_running = 1};
    CAPTURE(out, hc_print_jobs(F, &r, NULL, HC_TEXT));
    cr_assert_str_eq(out, "no job of yours is queued or running\n"
                          "other users: 2 queued, 1 running (--all lists them, for root)\n");
    free(out);
}

Test(model, cells_sorted_with_their_fit)
{
    /* given out of order: serial's 2^10..2^12 (the middle one predicted by its neighbours:
     * sqrt(100 * 400) = 200 against 250, -20%), and an untrusted native cell */
    hy_cell_record c[4] = {
        {.work = HY_JOB_PI, .backend = HY_BACKEND_SERIAL, .threads = 1, .log2n = 12,
         .samples = 6, .median_ns = 400, .flags = HY_CELL_TRUSTED},
        {.work = HY_JOB_SORT, .dtype = HY_DT_F64, .backend = HY_BACKEND_NATIVE, .threads = 2,
         .log2n = 20, .samples = 2, .median_ns = 5000000},
        {.work = HY_JOB_PI, .backend = HY_BACKEND_SERIAL, .threads = 1, .log2n = 10,
         .samples = 6, .median_ns = 100, .flags = HY_CELL_TRUSTED},
        {.work = HY_JOB_PI, .backend = HY_BACKEND_SERIAL, .threads = 1, .log2n = 11,
         .samples = 7, .median_ns = 250, .flags = HY_CELL_TRUSTED},
    };
    hy_msg_model_reply m = {.ncells = 4, .total = 5, .trust = 5, .ring = 20, .cells = c};
    char *out = NULL;
    CAPTURE(out, hc_print_model(F, &m, HC_TEXT));
    const char *a = strstr(out, "2^10"), *b = strstr(out, "2^11"), *d = strstr(out, "2^12"),
               *e = strstr(out, "sort f64 native 2T");
    cr_assert(a && b && d && e && a < b && b < d && d < e, "sorted by configuration, size: %s",
              out);
    cr_assert(strstr(out, "-20.0%"), "%s", out);
    cr_assert(strstr(out, "5 cells (the first 4 shown)"), "%s", out);
    cr_assert(strstr(out, "within 20.0% (median of 1)"), "%s", out);
    free(out);
    CAPTURE(out, hc_print_model(F, &m, HC_JSON));
    cr_assert(json_ok(out), "%s", out);
    cr_assert(strstr(out, "\"log2n\":11,\"samples\":7,\"median_ns\":250,\"trusted\":true,"
                          "\"fit_error\":-0.2"), "%s", out);
    cr_assert(strstr(out, "\"trusted\":false,\"fit_error\":null"), "%s", out);
    free(out);
    m = (hy_msg_model_reply){.trust = 5, .ring = 20};
    CAPTURE(out, hc_print_model(F, &m, HC_TEXT));
    cr_assert_str_eq(out, "the daemon has measured nothing yet\n");
    free(out);
}

Test(devices, text_and_json)
{
    hy_msg_devices_reply d = {0};
    hy_device_record recs[3] = {0};
    recs[0].index = 0;
    recs[0].type = 2;
    recs[0].flags = HY_DEV_USABLE | HY_DEV_POCL_CPU;
    recs[0].compute_units = 16;
    recs[0].global_mem = 32ull << 30;
    snprintf(recs[0].name, sizeof recs[0].name, "cpu-haswell-AMD EPYC");
    snprintf(recs[0].platform, sizeof recs[0].platform, "Portable Computing Language");
    recs[1].index = 1;
    recs[1].type = 1;
    recs[1].compute_units = 80;
    recs[1].global_mem = 16ull << 30;
    snprintf(recs[1].name, sizeof recs[1].name, "Gé \"Force\"");
    snprintf(recs[1].problem, sizeof recs[1].problem, "no fp64");
    snprintf(recs[1].platform, sizeof recs[1].platform, "NVIDIA CUDA");
    recs[2].index = 2; /* no platform: a daemon that sends 352-byte records */
    recs[2].type = 3;
    recs[2].flags = HY_DEV_USABLE;
    snprintf(recs[2].name, sizeof recs[2].name, "fpga");
    d.ndevices = 3;
    d.devices = recs;
    d.cpu_online = 16;
    d.native_threads = 16;
    d.locked_threads = 8;
    d.switch_interval_us = 5000;
    d.process_workers = 6;
    char *out = NULL;
    CAPTURE(out, hc_print_devices(F, &d, HC_TEXT));
    cr_assert(strstr(out, "16 online"), "%s", out);
    cr_assert(strstr(out, "process pool: 6 single-threaded worker processes\n"), "%s", out);
    cr_assert(strstr(out, "switch interval 5000 us"));
    const char *l0 = strstr(out, "cpu-haswell");
    cr_assert(l0);
    size_t len0 = strcspn(l0, "\n");
    cr_assert(memmem(l0, len0, "PoCL CPU", 8) && !memmem(l0, len0, "GPU", 3), "%s", out);
    cr_assert(memmem(l0, len0, "Portable Computing Language", 27), "no platform: %s", out);
    const char *l1 = strstr(out, "Force");
    cr_assert(l1 && memmem(l1, strcspn(l1, "\n"), "NVIDIA CUDA", 11), "%s", out);
    const char *l2 = strstr(out, "fpga");
    cr_assert(l2 && memmem(l2, strcspn(l2, "\n"), "  -  ", 5), "unknown platform: %s", out);
    cr_assert(strstr(out, "32.0 GiB  usable"));
    cr_assert(strstr(out, "not usable: no fp64"));
    cr_assert(strstr(out, "accelerator"));
    free(out);
    CAPTURE(out, hc_print_devices(F, &d, HC_JSON));
    cr_assert(json_ok(out), "%s", out);
    cr_assert(strstr(out, "\"label\":\"PoCL CPU\""));
    cr_assert(strstr(out, "\"switch_interval_us\":5000,\"process_workers\":6}"), "%s", out);
    cr_assert(strstr(out, "\"label\":\"GPU\""));
    cr_assert(strstr(out, "\"name\":\"Gé \\\"Force\\\"\""));
    cr_assert(strstr(out, "\"problem\":null"));
    /* Named, never bare numbers: the type as a word, each flag as a boolean. */
    cr_assert(strstr(out, "\"platform\":\"Portable Computing Language\""), "%s", out);
    cr_assert(strstr(out, "\"platform\":null"), "%s", out);
    cr_assert(strstr(out, "\"type\":\"cpu\""), "%s", out);
    cr_assert(strstr(out, "\"type\":\"gpu\""), "%s", out);
    cr_assert(strstr(out, "\"type\":\"accelerator\""), "%s", out);
    cr_assert(strstr(out, "\"usable\":true,\"pocl_cpu\":true"), "%s", out);
    cr_assert(strstr(out, "\"usable\":false,\"pocl_cpu\":false"), "%s", out);
    cr_assert_null(strstr(out, "\"flags\""), "%s", out);
    cr_assert_null(strstr(out, "\"type\":2"), "%s", out);
    free(out);

    d.ndevices = 0;
    d.process_workers = 0;
    CAPTURE(out, hc_print_devices(F, &d, HC_TEXT));
    cr_assert(strstr(out, "OpenCL devices: none"));
    cr_assert(strstr(out, "process pool: off"), "%s", out);
    free(out);
}

/* RANKS: a section per rank with its own devices (the list is shared, in rank order), the
 * world's line, and a broken device count cut to the records that are there. */
Test(report, ranks_sections)
{
    static hy_rank_record rk[2];
    static hy_device_record dv[1];
    memset(rk, 0, sizeof rk);
    memset(dv, 0, sizeof dv);
    rk[0] = (hy_rank_record){.rank = 0, .ndevices = 0, .cpu_online = 4, .native_threads = 4,
                             .locked_threads = 2, .process_workers = 3, .jobs_done = 7};
    snprintf(rk[0].host, sizeof rk[0].host, "node-a");
    rk[1] = (hy_rank_record){.rank = 1, .ndevices = 1, .cpu_online = 8, .native_threads = 8,
                             .locked_threads = 1, .devices_usable = 1, .clients = 2};
    snprintf(rk[1].host, sizeof rk[1].host, "node-b\x1b[2J");
    dv[0] = (hy_device_record){.index = 0, .type = 1, .flags = HY_DEV_USABLE,
                               .compute_units = 80};
    snprintf(dv[0].name, sizeof dv[0].name, "gpu-on-b");
    hy_msg_ranks_reply r = {.nranks = 2, .rank = 1, .size = 2,
                            .flags = HY_RANKS_MPI | HY_RANKS_REPLY_ALL, .ndevices = 1,
                            .ranks = rk, .devices = dv};
    char *out = NULL;
    CAPTURE(out, hc_print_ranks(F, &r, HC_TEXT));
    cr_assert(strstr(out, "MPI: rank 1 of 2"), "%s", out);
    const char *a = strstr(out, "rank 0 on node-a: CPU 4 online"), *b = strstr(out, "rank 1 on ");
    cr_assert(a && b && a < b, "%s", out);
    cr_assert(strstr(a, "process pool 3 worker processes\n  OpenCL devices: none\n"), "%s", out);
    cr_assert(strstr(b, "node-b?[2J"), "the host is cleaned: %s", out);
    cr_assert(strstr(b, "process pool off"), "%s", out);
    cr_assert(strstr(b, "gpu-on-b"), "rank 1's device under rank 1: %s", out);
    cr_assert_null(memmem(a, (size_t)(b - a), "gpu-on-b", 8), "%s", out);
    free(out);
    CAPTURE(out, hc_print_ranks(F, &r, HC_JSON));
    cr_assert(json_ok(out), "%s", out);
    cr_assert(strstr(out, "{\"mpi\":true,\"rank\":1,\"size\":2,\"complete\":true,"), "%s", out);
    cr_assert(strstr(out, "\"rank\":0,\"host\":\"node-a\""), "%s", out);
    cr_assert(strstr(out, "\"devices_usable\":0,\"devices\":[]}"), "%s", out);
    cr_assert(strstr(out, "\"name\":\"gpu-on-b\""), "%s", out);
    free(out);

    /* Rank 0 claims 5 devices; the list holds 1: it is shown that one, rank 1 none. */
    rk[0].ndevices = 5;
    CAPTURE(out, hc_print_ranks(F, &r, HC_JSON));
    cr_assert(json_ok(out), "%s", out);
    cr_assert(strstr(out, "\"rank\":1,\"host\"") && strstr(out, "\"devices\":[]}]}"), "%s",
              out);
    free(out);

    /* STATUS: the world line under MPI, every rank's counters with --ranks. */
    hy_msg_status_reply st = {.clients = 1};
    rk[0].ndevices = 0;
    CAPTURE(out, hc_print_status_world(F, &st, &r, true, HC_TEXT));
    cr_assert(strstr(out, "MPI: rank 1 of 2"), "%s", out);
    cr_assert(strstr(out, "rank 0 on node-a: up 0s, 0 clients; jobs 0 queued, 0 running, 7 done"),
              "%s", out);
    cr_assert(strstr(out, "rank 1 on node-b?[2J: up 0s, 2 clients"), "%s", out);
    free(out);
    CAPTURE(out, hc_print_status_world(F, &st, &r, true, HC_JSON));
    cr_assert(json_ok(out), "%s", out);
    cr_assert(strstr(out, ",\"world\":{\"mpi\":true,\"rank\":1,"), "%s", out);
    free(out);
    /* Not under MPI and not asked: STATUS as it always was. */
    r.flags = HY_RANKS_REPLY_ALL;
    r.nranks = 1;
    char *plain = NULL;
    CAPTURE(out, hc_print_status_world(F, &st, &r, false, HC_TEXT));
    CAPTURE(plain, hc_print_status(F, &st, HC_TEXT));
    cr_assert_str_eq(out, plain);
    free(out);
    free(plain);
}

/* A write error is reported, not swallowed. */
Test(errors, write_failure_is_esys)
{
    FILE *f = fopen("/dev/full", "w");
    if (!f)
        cr_skip_test("no /dev/full");
    setvbuf(f, NULL, _IONBF, 0);
    hc_compare c = make_compare();
    cr_assert_eq(hc_print_compare(f, &c, HC_TEXT), HY_ESYS);
    fclose(f);
}
