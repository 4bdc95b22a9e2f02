/* tests/client: arrays — .npy and raw files written and read back, reference files built
 * byte by byte here (not by the writer under test), every refusal with its sentence, atomic
 * writes that leave nothing behind, the generator and the order check. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client.h"

static const int all_dtypes[] = {HY_DT_I32, HY_DT_U32, HY_DT_I64,
                                 HY_DT_U64, HY_DT_F32, HY_DT_F64};
#define NDTYPES (sizeof all_dtypes / sizeof all_dtypes[0])

/* ---- a scratch directory per test ---- */

static char dir[64];

static void make_dir(void)
{
    strcpy(dir, "/tmp/test_npy.XXXXXX");
    cr_assert(mkdtemp(dir));
}

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(path);
}

static void drop_dir(void)
{
    remove_tree(dir);
}

TestSuite(npy, .init = make_dir, .fini = drop_dir);
TestSuite(output, .init = make_dir, .fini = drop_dir);

static const char *in_dir(const char *name)
{
    static char bufs[4][512];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, 512, "%s/%s", dir, name);
    return b;
}

static int count_entries(const char *path)
{
    DIR *d = opendir(path);
    cr_assert(d, "opendir %s", path);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void write_file(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f, "fopen %s", path);
    cr_assert_eq(fwrite(buf, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

static size_t read_file(const char *path, void *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "fopen %s", path);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

/* A .npy file made by hand: magic, version, the header length in the version's width, the
 * dict padded with spaces so data starts at a multiple of 64 (when pad), a newline, data. */
static void write_npy_raw(const char *path, int major, int minor, const char *dict, bool pad,
                          bool newline, const void *data, size_t len)
{
    static unsigned char buf[1 << 16];
    size_t prefix = major == 1 ? 10 : 12;
    size_t dlen = strlen(dict);
    size_t hlen = dlen + (newline ? 1 : 0);
    size_t spaces = pad ? (64 - (prefix + hlen) % 64) % 64 : 0;
    hlen += spaces;
    cr_assert_lt(prefix + hlen + len, sizeof buf);
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = (unsigned char)minor;
    if (prefix == 10) {
        buf[8] = (unsigned char)(hlen & 0xff);
        buf[9] = (unsigned char)(hlen >> 8);
    } else {
        for (int i = 0; i < 4; i++)
            buf[8 + i] = (unsigned char)(hlen >> (8 * i));
    }
    memcpy(buf + prefix, dict, dlen);
    memset(buf + prefix + dlen, ' ', spaces);
    if (newline)
        buf[prefix + hlen - 1] = '\n';
    memcpy(buf + prefix + hlen, data, len);
    write_file(path, buf, prefix + hlen + len);
}

static void write_npy(const char *path, const char *dict, const void *data, size_t len)
{
    write_npy_raw(path, 1, 0, dict, true, true, data, len);
}

/* Reads `path` expecting failure `code` and a message naming the file and holding each
 * of the given keywords. */
static void expect_refusal(const char *path, int code, const char *kw1, const char *kw2)
{
    hc_array a = {0};
    hy_error err = {0};
    int rc = hc_npy_read(path, &a, 1 << 20, &err);
    cr_assert_eq(rc, code, "want %s, got %s (%s)", hy_err_name(code), hy_err_name(rc), err.msg);
    cr_assert_eq(err.code, code);
    cr_assert(strstr(err.msg, path), "message does not name the file: %s", err.msg);
    cr_assert(strstr(err.msg, kw1), "message lacks '%s': %s", kw1, err.msg);
    if (kw2)
        cr_assert(strstr(err.msg, kw2), "message lacks '%s': %s", kw2, err.msg);
    cr_assert_null(a.data);
    cr_assert_eq(a.n, 0);
}

/* ---- round trips ---- */

Test(npy, round_trip_every_dtype)
{
    for (size_t d = 0; d < NDTYPES; d++) {
        int dt = all_dtypes[d];
        size_t n = 1000, es = hy_dtype_size(dt);
        void *src = malloc(n * es);
        cr_assert(src);
        hy_error err = {0};
        cr_assert_eq(hc_generate(src, dt, n, "uniform", 7 + d, &err), 0, "%s", err.msg);
        for (int raw = 0; raw < 2; raw++) {
            const char *p = in_dir(raw ? "a.bin" : "a.npy");
            hc_array w = {.dtype = dt, .n = n, .data = src};
            cr_assert_eq(hc_npy_write(p, &w, raw, &err), 0, "%s", err.msg);
            hc_array r = {0};
            int rc = raw ? hc_raw_read(p, dt, &r, n * es, &err)
                         : hc_npy_read(p, &r, n * es, &err);
            cr_assert_eq(rc, 0, "%s: %s", hy_dtype_name(dt), err.msg);
            cr_assert_eq(r.dtype, dt);
            cr_assert_eq(r.n, n);
            cr_assert_eq(memcmp(r.data, src, n * es), 0, "%s raw=%d", hy_dtype_name(dt), raw);
            hc_array_free(&r);
            cr_assert_null(r.data);
            struct stat st;
            cr_assert_eq(stat(p, &st), 0);
            cr_assert_eq((size_t)st.st_size, n * es + (raw ? 0 : 128));
        }
        free(src);
        cr_assert_eq(count_entries(dir), 2, "temporary files left behind");
    }
}

Test(npy, header_is_numpys)
{
    double v[10];
    for (int i = 0; i < 10; i++)
        v[i] = i * 0.5;
    hc_array a = {.dtype = HY_DT_F64, .n = 10, .data = v};
    hy_error err = {0};
    cr_assert_eq(hc_npy_write(in_dir("h.npy"), &a, false, &err), 0, "%s", err.msg);
    unsigned char buf[512];
    size_t got = read_file(in_dir("h.npy"), buf, sizeof buf);
    cr_assert_eq(got, 128 + 80);
    /* What numpy 1.24+ / 2.x writes for np.arange(10) * 0.5: the dict, 19 spaces of growth
     * room for the first axis, padding to 128 bytes, a newline. */
    char want[129];
    const char *dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (10,), }";
    memcpy(want, "\x93NUMPY\x01\x00\x76\x00", 10);
    memset(want + 10, ' ', 118);
    memcpy(want + 10, dict, strlen(dict));
    want[127] = '\n';
    cr_assert_eq(memcmp(buf, want, 128), 0, "header: %.128s", (const char *)buf);
    cr_assert_eq(memcmp(buf + 128, v, 80), 0);

    /* Other sizes and kinds: the data always starts at a multiple of 64. */
    const struct {
        int dt;
        size_t n;
        const char *descr;
    } cases[] = {{HY_DT_I32, 0, "'<i4'"},   {HY_DT_U32, 1, "'<u4'"},
                 {HY_DT_I64, 3, "'<i8'"},   {HY_DT_U64, 100000, "'<u8'"},
                 {HY_DT_F32, 12345, "'<f4'"}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t es = hy_dtype_size(cases[c].dt);
        void *data = calloc(cases[c].n ? cases[c].n : 1, es);
        cr_assert(data);
        hc_array b = {.dtype = cases[c].dt, .n = cases[c].n, .data = cases[c].n ? data : NULL};
        cr_assert_eq(hc_npy_write(in_dir("k.npy"), &b, false, &err), 0, "%s", err.msg);
        got = read_file(in_dir("k.npy"), buf, sizeof buf);
        size_t hl = (size_t)buf[8] | (size_t)buf[9] << 8;
        cr_assert_eq((10 + hl) % 64, 0);
        cr_assert_eq(buf[10 + hl - 1], '\n');
        char shape[64];
        snprintf(shape, sizeof shape, "'shape': (%zu,), }", cases[c].n);
        cr_assert(memmem(buf, 10 + hl, shape, strlen(shape)), "%zu", cases[c].n);
        cr_assert(memmem(buf, 10 + hl, cases[c].descr, strlen(cases[c].descr)));
        free(data);
    }
}

Test(npy, empty_array)
{
    hc_array a = {.dtype = HY_DT_I64, .n = 0, .data = NULL};
    hy_error err = {0};
    cr_assert_eq(hc_npy_write(in_dir("e.npy"), &a, false, &err), 0, "%s", err.msg);
    hc_array r = {0};
    cr_assert_eq(hc_npy_read(in_dir("e.npy"), &r, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(r.n, 0);
    cr_assert_eq(r.dtype, HY_DT_I64);
    cr_assert_null(r.data);
    cr_assert_eq(hc_npy_write(in_dir("e.bin"), &a, true, &err), 0, "%s", err.msg);
    cr_assert_eq(hc_raw_read(in_dir("e.bin"), HY_DT_I64, &r, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(r.n, 0);
}

/* ---- reference files ---- */

Test(npy, reads_numpy_1_0)
{
    double v[3] = {1.5, -2.0, 3.25};
    write_npy(in_dir("r.npy"), "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", v,
              sizeof v);
    hc_array a = {0};
    hy_error err = {0};
    cr_assert_eq(hc_npy_read(in_dir("r.npy"), &a, sizeof v, &err), 0, "%s", err.msg);
    cr_assert_eq(a.dtype, HY_DT_F64);
    cr_assert_eq(a.n, 3);
    cr_assert_eq(memcmp(a.data, v, sizeof v), 0);
    hc_array_free(&a);
}

Test(npy, reads_2_0_and_3_0)
{
    int32_t v[4] = {-1, 2, -3, 4};
    for (int major = 2; major <= 3; major++) {
        write_npy_raw(in_dir("v.npy"), major, 0,
                      "{'descr': '<i4', 'fortran_order': False, 'shape': (4,), }", true, true, v,
                      sizeof v);
        hc_array a = {0};
        hy_error err = {0};
        cr_assert_eq(hc_npy_read(in_dir("v.npy"), &a, 1 << 20, &err), 0, "%d: %s", major,
                     err.msg);
        cr_assert_eq(a.dtype, HY_DT_I32);
        cr_assert_eq(a.n, 4);
        cr_assert_eq(memcmp(a.data, v, sizeof v), 0);
        hc_array_free(&a);
    }
}

Test(npy, shapes_and_spacing)
{
    uint32_t v[6] = {1, 2, 3, 4, 5, 6};
    const struct {
        const char *dict;
        size_t n;
    } cases[] = {
        {"{'descr': '<u4', 'fortran_order': False, 'shape': (0,), }", 0},
        {"{'descr': '<u4', 'fortran_order': False, 'shape': (6L,), }", 6},
        {"{  'shape' :( 6 , ) ,'fortran_order':False,\t'descr' : '<u4'  }", 6},
        {"{\"descr\": \"<u4\", \"fortran_order\": False, \"shape\": (6,)}", 6},
        {"{'fortran_order': False, 'shape': (6 ,), 'descr': '<u4'}", 6},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        write_npy(in_dir("s.npy"), cases[c].dict, v, cases[c].n * 4);
        hc_array a = {0};
        hy_error err = {0};
        cr_assert_eq(hc_npy_read(in_dir("s.npy"), &a, 1 << 20, &err), 0, "%s: %s",
                     cases[c].dict, err.msg);
        cr_assert_eq(a.n, cases[c].n, "%s", cases[c].dict);
        cr_assert_eq(a.dtype, HY_DT_U32);
        if (a.n)
            cr_assert_eq(memcmp(a.data, v, a.n * 4), 0);
        hc_array_free(&a);
    }
    /* Unpadded: the header need not be aligned, only end in a newline. */
    write_npy_raw(in_dir("u.npy"), 1, 0, "{'descr': '<u4', 'fortran_order': False, 'shape': (6,)}",
                  false, true, v, sizeof v);
    hc_array a = {0};
    hy_error err = {0};
    cr_assert_eq(hc_npy_read(in_dir("u.npy"), &a, 1 << 20, &err), 0, "%s", err.msg);
    cr_assert_eq(a.n, 6);
    hc_array_free(&a);
}

Test(npy, refuses_arrays_that_are_not_1d)
{
    /* Read flat, a (3, 4) array would be sorted as 12 values and written back as (12,). */
    uint32_t v[12] = {0};
    const struct {
        const char *dict;
        size_t n;
        const char *shape;
    } cases[] = {
        {"{'descr': '<u4', 'fortran_order': False, 'shape': (3, 4), }", 12, "2-D array of shape (3, 4)"},
        {"{'descr': '<u4', 'fortran_order': False, 'shape': (3, 2,), }", 6, "2-D array of shape (3, 2)"},
        {"{'descr': '<u4', 'fortran_order': False, 'shape': (1, 2, 1, 3), }", 6,
         "4-D array of shape (1, 2, 1, 3)"},
        {"{'descr': '<u4', 'fortran_order': False, 'shape': (12, 1), }", 12, "(12, 1)"},
        {"{'descr': '<u4', 'fortran_order': False, 'shape': (5, 0), }", 0, "(5, 0)"},
        {"{'descr': '<u4', 'fortran_order': False, 'shape': (), }", 1, "0-d array"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        write_npy(in_dir("nd.npy"), cases[c].dict, v, cases[c].n * 4);
        expect_refusal(in_dir("nd.npy"), HY_EINVAL, cases[c].shape, "a.reshape(-1)");
    }
    /* Many dimensions: the shape is cut short with "...", the sentence still whole. */
    char dict[512];
    int len = snprintf(dict, sizeof dict, "{'descr': '<u4', 'fortran_order': False, 'shape': (");
    for (int d = 0; d < 40; d++)
        len += snprintf(dict + len, sizeof dict - (size_t)len, "1, ");
    snprintf(dict + len, sizeof dict - (size_t)len, "), }");
    write_npy(in_dir("nd.npy"), dict, v, 4);
    expect_refusal(in_dir("nd.npy"), HY_EINVAL, "40-D array of shape (1, 1, ", ", ...)");
    expect_refusal(in_dir("nd.npy"), HY_EINVAL, "reshape(-1)", NULL);
}

Test(npy, raw_read_refuses_a_npy_file)
{
    /* Read raw, the 128 header bytes would be sorted into the data. */
    double v[14] = {3, 1, 2};
    write_npy(in_dir("data.bin"), "{'descr': '<f8', 'fortran_order': False, 'shape': (14,), }",
              v, sizeof v);
    hc_array a = {0};
    hy_error err = {0};
    cr_assert_eq(hc_raw_read(in_dir("data.bin"), HY_DT_F64, &a, 1 << 20, &err), HY_EINVAL);
    cr_assert(strstr(err.msg, in_dir("data.bin")), "%s", err.msg);
    cr_assert(strstr(err.msg, "is a .npy file"), "%s", err.msg);
    cr_assert(strstr(err.msg, "drop --dtype"), "%s", err.msg);
    cr_assert_null(a.data);
    /* Five bytes of the magic are not the magic. */
    write_file(in_dir("five.bin"), "\x93NUMP\0\0", 8);
    cr_assert_eq(hc_raw_read(in_dir("five.bin"), HY_DT_F64, &a, 1 << 20, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(a.n, 1);
    hc_array_free(&a);
}

Test(npy, out_need_not_be_initialised)
{
    int64_t v[5] = {5, 4, 3, 2, 1};
    write_npy(in_dir("i.npy"), "{'descr': '<i8', 'fortran_order': False, 'shape': (5,), }", v,
              sizeof v);
    hc_array a;
    memset(&a, 0xa5, sizeof a); /* garbage, as an uninitialised local would hold */
    hy_error err = {0};
    cr_assert_eq(hc_npy_read(in_dir("i.npy"), &a, sizeof v, &err), 0, "%s", err.msg);
    cr_assert_eq(a.n, 5);
    cr_assert_eq(memcmp(a.data, v, sizeof v), 0);
    hc_array_free(&a);

    memset(&a, 0xa5, sizeof a);
    cr_assert_eq(hc_npy_read(in_dir("missing.npy"), &a, sizeof v, &err), HY_ESYS);
    cr_assert_null(a.data);
    cr_assert_eq(a.n, 0);
    hc_array_free(&a); /* harmless on a failed read */

    write_file(in_dir("i.bin"), v, sizeof v);
    memset(&a, 0xa5, sizeof a);
    cr_assert_eq(hc_raw_read(in_dir("i.bin"), HY_DT_I64, &a, sizeof v, &err), 0, "%s", err.msg);
    cr_assert_eq(a.n, 5);
    cr_assert_eq(memcmp(a.data, v, sizeof v), 0);
    hc_array_free(&a);
    memset(&a, 0xa5, sizeof a);
    cr_assert_eq(hc_raw_read(in_dir("i.bin"), HY_DT_I64, &a, sizeof v - 1, &err), HY_ELIMIT);
    cr_assert_null(a.data);
}

/* ---- refusals ---- */

Test(npy, refuses_big_endian)
{
    double v[2] = {1, 2};
    write_npy(in_dir("be.npy"), "{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }", v,
              sizeof v);
    expect_refusal(in_dir("be.npy"), HY_EINVAL, "big-endian (>f8)", "astype('<f8')");
}

Test(npy, refuses_fortran_order)
{
    double v[6] = {0};
    write_npy(in_dir("f.npy"), "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", v,
              sizeof v);
    expect_refusal(in_dir("f.npy"), HY_EINVAL, "Fortran", NULL);
}

Test(npy, refuses_other_dtypes)
{
    char v[64] = {0};
    const struct {
        const char *descr;
        size_t size;
    } cases[] = {{"<c16", 16}, {"<f2", 2}, {"|u1", 1}, {"|b1", 1}, {"<i2", 2},
                 {"|S8", 8},   {"|O", 8},  {"=f8", 8}, {"|f8", 8}, {"<M8[ns]", 8}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char dict[128], kw[64];
        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (2,), }",
                 cases[c].descr);
        write_npy(in_dir("d.npy"), dict, v, 2 * cases[c].size);
        snprintf(kw, sizeof kw, "dtype %s is not supported", cases[c].descr);
        expect_refusal(in_dir("d.npy"), HY_EINVAL, kw, "i32 u32 i64 u64 f32 f64");
    }
}

Test(npy, refuses_structured_dtype)
{
    char v[24] = {0};
    write_npy(in_dir("st.npy"),
              "{'descr': [('x', '<i4'), ('y', '<f8')], 'fortran_order': False, 'shape': (2,), }",
              v, sizeof v);
    expect_refusal(in_dir("st.npy"), HY_EINVAL, "structured", NULL);
}

Test(npy, refuses_other_versions)
{
    double v[1] = {1};
    const int versions[][2] = {{1, 1}, {4, 0}, {0, 0}, {2, 1}};
    for (size_t c = 0; c < sizeof versions / sizeof versions[0]; c++) {
        write_npy_raw(in_dir("ver.npy"), versions[c][0], versions[c][1],
                      "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", true, true, v,
                      sizeof v);
        char kw[32];
        snprintf(kw, sizeof kw, "version %d.%d", versions[c][0], versions[c][1]);
        expect_refusal(in_dir("ver.npy"), HY_EINVAL, kw, NULL);
    }
}

Test(npy, refuses_header_without_newline)
{
    double v[1] = {1};
    write_npy_raw(in_dir("nl.npy"), 1, 0,
                  "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", true, false, v,
                  sizeof v);
    expect_refusal(in_dir("nl.npy"), HY_EINVAL, "newline", NULL);
}

Test(npy, refuses_header_past_the_end)
{
    unsigned char b[40] = "\x93NUMPY\x01\x00\xff\x7f{'descr': '<f8'";
    write_file(in_dir("hl.npy"), b, sizeof b);
    expect_refusal(in_dir("hl.npy"), HY_EINVAL, "header length 32767", "truncated");
    /* 2.0: a u32 length of 4 GiB in a tiny file. */
    unsigned char c[40] = "\x93NUMPY\x02\x00\xff\xff\xff\xff{'descr'";
    write_file(in_dir("hl2.npy"), c, sizeof c);
    expect_refusal(in_dir("hl2.npy"), HY_EINVAL, "header length 4294967295", NULL);
    /* Ends inside the prefix. */
    write_file(in_dir("short.npy"), "\x93NUMPY\x01", 7);
    expect_refusal(in_dir("short.npy"), HY_EINVAL, "truncated", NULL);
    write_file(in_dir("short2.npy"), "\x93NUMPY\x02\x00\x10\x00", 10);
    expect_refusal(in_dir("short2.npy"), HY_EINVAL, "truncated", NULL);
}

Test(npy, refuses_truncated_and_long_data)
{
    static double v[1001];
    write_npy(in_dir("t.npy"), "{'descr': '<f8', 'fortran_order': False, 'shape': (1000,), }", v,
              7992);
    expect_refusal(in_dir("t.npy"), HY_EINVAL, "truncated: the header says 1000 f64 (8000 bytes)",
                   "the file has 7992");
    write_npy(in_dir("l.npy"), "{'descr': '<f8', 'fortran_order': False, 'shape': (1000,), }", v,
              8008);
    expect_refusal(in_dir("l.npy"), HY_EINVAL, "longer", "8000 bytes");
    /* A header claiming far more than the file, and more than the limit: still "truncated",
     * and nothing is allocated for it. */
    write_npy(in_dir("huge.npy"),
              "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,), }", v, 8);
    expect_refusal(in_dir("huge.npy"), HY_EINVAL, "truncated", NULL);
}

/* hybridctl's path: the file opened and checked, then its data sent into a memfd inside the
 * kernel. The memfd gets exactly the data bytes; a file that shrinks or grows between the
 * check and the copy is refused with the sentences hc_npy_read gives. */
Test(npy, open_then_send_into_a_memfd)
{
    double v[1000];
    for (int i = 0; i < 1000; i++)
        v[i] = 1000.5 - i;
    const char *p = in_dir("s.npy");
    write_npy(p, "{'descr': '<f8', 'fortran_order': False, 'shape': (1000,), }", v, sizeof v);
    hc_input in;
    hy_error err = {0};
    cr_assert_eq(hc_npy_open(p, &in, 1 << 20, &err), 0, "%s", err.msg);
    cr_assert_eq(in.dtype, HY_DT_F64);
    cr_assert_eq(in.n, 1000u);
    int m = memfd_create("test", MFD_CLOEXEC);
    cr_assert_geq(m, 0);
    cr_assert_eq(hc_input_send(&in, m, &err), 0, "%s", err.msg);
    cr_assert_eq(in.fd, -1, "the input is closed after the copy");
    struct stat st;
    cr_assert_eq(fstat(m, &st), 0);
    cr_assert_eq(st.st_size, (off_t)sizeof v, "only the data, no header");
    double back[1000];
    cr_assert_eq(pread(m, back, sizeof back, 0), (ssize_t)sizeof back);
    cr_assert(memcmp(back, v, sizeof v) == 0);
    close(m);

    /* raw: the whole file is data */
    const char *r = in_dir("s.bin");
    write_file(r, v, sizeof v);
    cr_assert_eq(hc_raw_open(r, HY_DT_I64, &in, 1 << 20, &err), 0, "%s", err.msg);
    cr_assert_eq(in.n, 1000u);
    m = memfd_create("test", MFD_CLOEXEC);
    cr_assert_eq(hc_input_send(&in, m, &err), 0, "%s", err.msg);
    cr_assert_eq(pread(m, back, sizeof back, 0), (ssize_t)sizeof back);
    cr_assert(memcmp(back, v, sizeof v) == 0);
    close(m);

    /* shrinks after the check */
    cr_assert_eq(hc_npy_open(p, &in, 1 << 20, &err), 0, "%s", err.msg);
    cr_assert_eq(truncate(p, 128 + 400 * 8), 0);
    m = memfd_create("test", MFD_CLOEXEC);
    cr_assert_eq(hc_input_send(&in, m, &err), HY_EINVAL);
    cr_assert(strstr(err.msg, "truncated") && strstr(err.msg, "shrank"), "%s", err.msg);
    close(m);

    /* grows after the check */
    write_npy(p, "{'descr': '<f8', 'fortran_order': False, 'shape': (1000,), }", v, sizeof v);
    cr_assert_eq(hc_npy_open(p, &in, 1 << 20, &err), 0, "%s", err.msg);
    int fd = open(p, O_WRONLY | O_APPEND);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "x", 1), 1);
    close(fd);
    m = memfd_create("test", MFD_CLOEXEC);
    cr_assert_eq(hc_input_send(&in, m, &err), HY_EINVAL);
    cr_assert(strstr(err.msg, "longer than its header says"), "%s", err.msg);
    close(m);

    /* a refused open leaves nothing open */
    cr_assert_eq(hc_npy_open(p, &in, 100, &err), HY_EINVAL, "%s", err.msg); /* the extra byte */
    cr_assert_eq(in.fd, -1);
    cr_assert_eq(hc_raw_open(r, HY_DT_F64, &in, 100, &err), HY_ELIMIT);
    cr_assert_eq(in.fd, -1);
}

Test(npy, refuses_shape_overflow)
{
    double v[1] = {0};
    write_npy(in_dir("o.npy"),
              "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", v,
              8);
    expect_refusal(in_dir("o.npy"), HY_EINVAL, "overflow", NULL);
    write_npy(in_dir("o2.npy"),
              "{'descr': '<f8', 'fortran_order': False, 'shape': (2305843009213693952,), }", v,
              8);
    expect_refusal(in_dir("o2.npy"), HY_EINVAL, "overflow", NULL);
    write_npy(in_dir("o3.npy"),
              "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999999,), }",
              v, 8);
    expect_refusal(in_dir("o3.npy"), HY_EINVAL, "overflow", NULL);
}

Test(npy, refuses_malformed_headers)
{
    double v[2] = {0};
    const char *bad[] = {
        "{'descr': '<f8', 'fortran_order': False}",
        "{'descr': '<f8', 'shape': (2,)}",
        "{'fortran_order': False, 'shape': (2,)}",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'extra': 1}",
        "{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (2,)}",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (2)}",
        "{'descr': '<f8', 'fortran_order': False, 'shape': [2]}",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (-2,)}",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (2.0,)}",
        "{'descr': '<f8', 'fortran_order': false, 'shape': (2,)}",
        "{'descr': '<f8', 'fortran_order': 0, 'shape': (2,)}",
        "{'descr': '<f8' 'fortran_order': False, 'shape': (2,)}",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }}",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (2,),, }",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (2,)",
        "{'descr: '<f8', 'fortran_order': False, 'shape': (2,)}",
        "['descr', '<f8']",
        "",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1 2,)}",
        "{'descr': '<f8', 'fortran_order': Falsey, 'shape': (2,)}",
    };
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        write_npy(in_dir("m.npy"), bad[c], v, sizeof v);
        hc_array a = {0};
        hy_error err = {0};
        int rc = hc_npy_read(in_dir("m.npy"), &a, 1 << 20, &err);
        cr_assert_eq(rc, HY_EINVAL, "accepted: %s", bad[c]);
        cr_assert(strstr(err.msg, in_dir("m.npy")), "%s", err.msg);
        cr_assert(strstr(err.msg, "malformed header"), "%s: %s", bad[c], err.msg);
        cr_assert_null(a.data);
    }
    /* A NUL inside the header. */
    char withnul[] = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,)}";
    write_npy(in_dir("z.npy"), withnul, v, sizeof v);
    unsigned char buf[256];
    size_t len = read_file(in_dir("z.npy"), buf, sizeof buf);
    buf[20] = '\0';
    write_file(in_dir("z.npy"), buf, len);
    expect_refusal(in_dir("z.npy"), HY_EINVAL, "malformed header", NULL);
}

Test(npy, refuses_non_npy_files)
{
    expect_refusal(in_dir("missing.npy"), HY_ESYS, "cannot open", "No such file");
    write_file(in_dir("empty.npy"), "", 0);
    expect_refusal(in_dir("empty.npy"), HY_EINVAL, "not a .npy file", NULL);
    write_file(in_dir("text.npy"), "hello, world\n", 13);
    expect_refusal(in_dir("text.npy"), HY_EINVAL, "not a .npy file", NULL);
    /* The hint names how raw input is read (--raw is an output option). */
    expect_refusal(in_dir("text.npy"), HY_EINVAL, "--input FILE --dtype", NULL);
    hy_error e = {0};
    hc_array a = {0};
    hc_npy_read(in_dir("text.npy"), &a, 1 << 20, &e);
    cr_assert_null(strstr(e.msg, "--raw"), "%s", e.msg);
    cr_assert_eq(mkdir(in_dir("sub.npy"), 0755), 0);
    expect_refusal(in_dir("sub.npy"), HY_EINVAL, "directory", NULL);
    cr_assert_eq(mkfifo(in_dir("fifo.npy"), 0600), 0);
    expect_refusal(in_dir("fifo.npy"), HY_EINVAL, "not a regular file", NULL);
}

Test(npy, max_bytes_limit)
{
    static double v[100];
    const char *dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (100,), }";
    write_npy(in_dir("m.npy"), dict, v, sizeof v);
    hc_array a = {0};
    hy_error err = {0};
    cr_assert_eq(hc_npy_read(in_dir("m.npy"), &a, 799, &err), HY_ELIMIT);
    cr_assert(strstr(err.msg, in_dir("m.npy")) && strstr(err.msg, "limit"), "%s", err.msg);
    cr_assert_null(a.data);
    cr_assert_eq(hc_npy_read(in_dir("m.npy"), &a, 800, &err), 0, "%s", err.msg);
    hc_array_free(&a);

    write_file(in_dir("m.bin"), v, sizeof v);
    cr_assert_eq(hc_raw_read(in_dir("m.bin"), HY_DT_F64, &a, 799, &err), HY_ELIMIT);
    cr_assert(strstr(err.msg, in_dir("m.bin")) && strstr(err.msg, "limit"), "%s", err.msg);
    cr_assert_eq(hc_raw_read(in_dir("m.bin"), HY_DT_F64, &a, 800, &err), 0, "%s", err.msg);
    cr_assert_eq(a.n, 100);
    hc_array_free(&a);
}

Test(npy, raw_size_must_be_a_multiple)
{
    write_file(in_dir("r.bin"), "1234567", 7);
    hc_array a = {0};
    hy_error err = {0};
    cr_assert_eq(hc_raw_read(in_dir("r.bin"), HY_DT_F64, &a, 1 << 20, &err), HY_EINVAL);
    cr_assert(strstr(err.msg, in_dir("r.bin")) && strstr(err.msg, "whole number"), "%s",
              err.msg);
    cr_assert_null(a.data);
    cr_assert_eq(hc_raw_read(in_dir("r.bin"), HY_DT_I32, &a, 1 << 20, &err), HY_EINVAL);
    write_file(in_dir("r4.bin"), "12345678", 8);
    cr_assert_eq(hc_raw_read(in_dir("r4.bin"), HY_DT_U32, &a, 1 << 20, &err), 0, "%s", err.msg);
    cr_assert_eq(a.n, 2);
    hc_array_free(&a);
    cr_assert_eq(hc_raw_read(in_dir("r4.bin"), 99, &a, 1 << 20, &err), HY_EDTYPE);
    cr_assert_eq(hc_raw_read(in_dir("nope.bin"), HY_DT_U32, &a, 1 << 20, &err), HY_ESYS);
    cr_assert(strstr(err.msg, in_dir("nope.bin")), "%s", err.msg);
}

/* ---- atomic writes ---- */

Test(npy, write_into_missing_directory)
{
    double v[4] = {1, 2, 3, 4};
    hc_array a = {.dtype = HY_DT_F64, .n = 4, .data = v};
    hy_error err = {0};
    const char *p = in_dir("no/such/dir/out.npy");
    cr_assert_eq(hc_npy_write(p, &a, false, &err), HY_ESYS);
    cr_assert(strstr(err.msg, p), "%s", err.msg);
    cr_assert_eq(count_entries(dir), 0);
}

Test(npy, failed_write_leaves_existing_file_untouched)
{
    /* A file-size limit makes write() fail half way, after the temporary file exists: what
     * a full disk would do. Root ignores permission bits, so this is the portable way. */
    signal(SIGXFSZ, SIG_IGN);
    const char *p = in_dir("out.npy");
    write_file(p, "precious", 8);
    struct rlimit rl = {.rlim_cur = 4096, .rlim_max = RLIM_INFINITY};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    static double v[10000];
    for (int raw = 0; raw < 2; raw++) {
        hc_array a = {.dtype = HY_DT_F64, .n = 10000, .data = v};
        hy_error err = {0};
        cr_assert_eq(hc_npy_write(p, &a, raw, &err), HY_ESYS);
        cr_assert(strstr(err.msg, p), "%s", err.msg);
        cr_assert(strstr(err.msg, "write"), "%s", err.msg);
        char buf[64];
        cr_assert_eq(read_file(p, buf, sizeof buf), 8);
        cr_assert_eq(memcmp(buf, "precious", 8), 0);
        cr_assert_eq(count_entries(dir), 1, "a temporary file was left behind");
    }
}

Test(npy, write_refuses_a_directory)
{
    /* A non-empty directory under the name: refused before a temporary file exists (the
     * old writer got as far as rename()). */
    const char *p = in_dir("target");
    cr_assert_eq(mkdir(p, 0755), 0);
    write_file(in_dir("target/keep"), "x", 1);
    int32_t v[3] = {1, 2, 3};
    hc_array a = {.dtype = HY_DT_I32, .n = 3, .data = v};
    hy_error err = {0};
    cr_assert_eq(hc_output_check(p, NULL, &err), HY_EINVAL);
    cr_assert_eq(hc_npy_write(p, &a, false, &err), HY_EINVAL);
    cr_assert(strstr(err.msg, p) && strstr(err.msg, "is a directory"), "%s", err.msg);
    cr_assert_eq(count_entries(dir), 1);
    cr_assert_eq(count_entries(p), 1);
    /* An empty one too: rename() would have replaced it. */
    cr_assert_eq(mkdir(in_dir("empty"), 0755), 0);
    cr_assert_eq(hc_npy_write(in_dir("empty"), &a, true, &err), HY_EINVAL);
    struct stat st;
    cr_assert_eq(lstat(in_dir("empty"), &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    cr_assert_eq(count_entries(dir), 2, "a temporary file was left behind");
}

Test(npy, write_replaces_and_respects_umask)
{
    const char *p = in_dir("w.npy");
    write_file(p, "old contents", 12);
    umask(022);
    uint64_t v[2] = {1, 2};
    hc_array a = {.dtype = HY_DT_U64, .n = 2, .data = v};
    hy_error err = {0};
    cr_assert_eq(hc_npy_write(p, &a, false, &err), 0, "%s", err.msg);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(st.st_size, 128 + 16);
    cr_assert_eq(st.st_mode & 0777, 0644);
    cr_assert_eq(count_entries(dir), 1);
}

Test(npy, write_refuses_bad_arrays)
{
    hy_error err = {0};
    hc_array a = {.dtype = 42, .n = 1, .data = &err};
    cr_assert_eq(hc_npy_write(in_dir("x.npy"), &a, false, &err), HY_EDTYPE);
    hc_array b = {.dtype = HY_DT_F32, .n = 3, .data = NULL};
    cr_assert_eq(hc_npy_write(in_dir("x.npy"), &b, false, &err), HY_EINVAL);
    cr_assert(strstr(err.msg, in_dir("x.npy")), "%s", err.msg);
    cr_assert_eq(count_entries(dir), 0);
}

/* ---- what is at the output path ---- */

/* The bytes hc_npy_write gives a regular file, for comparing with what went elsewhere. */
static size_t reference_npy(const hc_array *a, void *buf, size_t cap)
{
    hy_error err = {0};
    cr_assert_eq(hc_npy_write(in_dir("ref.npy"), a, false, &err), 0, "%s", err.msg);
    size_t n = read_file(in_dir("ref.npy"), buf, cap);
    cr_assert_eq(unlink(in_dir("ref.npy")), 0);
    return n;
}

Test(output, fifo_is_written_through)
{
    /* `--output fifo` feeds a reader, as `sort -o fifo` does; the old writer renamed a
     * regular file over the FIFO and the reader never saw a byte. */
    signal(SIGPIPE, SIG_IGN);
    double v[300];
    for (int i = 0; i < 300; i++)
        v[i] = i * 0.5;
    hc_array a = {.dtype = HY_DT_F64, .n = 300, .data = v};
    static unsigned char want[4096], got[4096];
    size_t wlen = reference_npy(&a, want, sizeof want);
    const char *fifo = in_dir("pipe");
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    hy_error err = {0};
    cr_assert_eq(hc_output_check(fifo, NULL, &err), 0, "%s", err.msg);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        /* The reader: copies what arrives into a file, then ends. */
        int in = open(fifo, O_RDONLY);
        int out = open(in_dir("got"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || out < 0)
            _exit(2);
        char buf[512];
        ssize_t r;
        while ((r = read(in, buf, sizeof buf)) > 0)
            if (write(out, buf, (size_t)r) != r)
                _exit(3);
        _exit(r == 0 && close(out) == 0 ? 0 : 4);
    }
    int rc = hc_npy_write(fifo, &a, false, &err);
    struct stat st;
    bool still_fifo = lstat(fifo, &st) == 0 && S_ISFIFO(st.st_mode);
    if (!still_fifo || rc != 0)
        kill(pid, SIGKILL); /* its FIFO is gone or never opened: it would wait forever */
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(still_fifo, "the FIFO was replaced");
    cr_assert_eq(rc, 0, "%s", err.msg);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the reader failed: %d", status);
    cr_assert_eq(read_file(in_dir("got"), got, sizeof got), wlen);
    cr_assert_eq(memcmp(got, want, wlen), 0);
    cr_assert_eq(count_entries(dir), 2, "a temporary file was left behind");
}

Test(output, symlink_is_followed)
{
    uint32_t v[3] = {7, 8, 9};
    hc_array a = {.dtype = HY_DT_U32, .n = 3, .data = v};
    static unsigned char want[512], got[512];
    size_t wlen = reference_npy(&a, want, sizeof want);
    cr_assert_eq(mkdir(in_dir("sub"), 0755), 0);
    write_file(in_dir("sub/real.npy"), "old", 3);
    /* A relative link, through a second link: link -> hop -> sub/real.npy. */
    cr_assert_eq(symlink("sub/real.npy", in_dir("hop")), 0);
    cr_assert_eq(symlink("hop", in_dir("link.npy")), 0);
    hy_error err = {0};
    cr_assert_eq(hc_npy_write(in_dir("link.npy"), &a, false, &err), 0, "%s", err.msg);
    struct stat st;
    cr_assert_eq(lstat(in_dir("link.npy"), &st), 0);
    cr_assert(S_ISLNK(st.st_mode), "the link was replaced by a file");
    cr_assert_eq(lstat(in_dir("hop"), &st), 0);
    cr_assert(S_ISLNK(st.st_mode), "the second link was replaced by a file");
    cr_assert_eq(read_file(in_dir("sub/real.npy"), got, sizeof got), wlen);
    cr_assert_eq(memcmp(got, want, wlen), 0);
    /* The temporary file was made beside the target, and is gone. */
    cr_assert_eq(count_entries(dir), 3);
    cr_assert_eq(count_entries(in_dir("sub")), 1);

    /* A dangling link: the file it names is created, the link stays. */
    cr_assert_eq(symlink("sub/new.npy", in_dir("dangling.npy")), 0);
    cr_assert_eq(hc_output_check(in_dir("dangling.npy"), NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(hc_npy_write(in_dir("dangling.npy"), &a, false, &err), 0, "%s", err.msg);
    cr_assert_eq(lstat(in_dir("dangling.npy"), &st), 0);
    cr_assert(S_ISLNK(st.st_mode));
    cr_assert_eq(read_file(in_dir("sub/new.npy"), got, sizeof got), wlen);
    /* An absolute link into a missing directory: refused, nothing made. */
    cr_assert_eq(symlink(in_dir("nowhere/x.npy"), in_dir("lost.npy")), 0);
    cr_assert_eq(hc_output_check(in_dir("lost.npy"), NULL, &err), HY_ESYS);
    cr_assert(strstr(err.msg, "does not exist"), "%s", err.msg);
    cr_assert_eq(hc_npy_write(in_dir("lost.npy"), &a, false, &err), HY_ESYS);
    cr_assert_eq(count_entries(dir), 5);
    /* A loop. */
    cr_assert_eq(symlink("loop2", in_dir("loop1")), 0);
    cr_assert_eq(symlink("loop1", in_dir("loop2")), 0);
    cr_assert_eq(hc_npy_write(in_dir("loop1"), &a, false, &err), HY_ESYS);
    cr_assert(strstr(err.msg, in_dir("loop1")), "%s", err.msg);
}

Test(output, existing_file_keeps_mode_and_owner)
{
    umask(022);
    int64_t v[2] = {1, 2};
    hc_array a = {.dtype = HY_DT_I64, .n = 2, .data = v};
    const char *p = in_dir("secret.npy");
    write_file(p, "old", 3);
    cr_assert_eq(chmod(p, 0600), 0);
    hy_error err = {0};
    cr_assert_eq(hc_npy_write(p, &a, false, &err), 0, "%s", err.msg);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0600, "mode %o", st.st_mode & 07777);
    cr_assert_eq(st.st_size, 128 + 16);
    cr_assert_eq(chmod(p, 0640), 0);
    cr_assert_eq(hc_npy_write(p, &a, true, &err), 0, "%s", err.msg);
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0640, "mode %o", st.st_mode & 07777);
    cr_assert_eq(st.st_size, 16);
    /* A new file gets what open(O_CREAT, 0666) would. */
    cr_assert_eq(hc_npy_write(in_dir("new.npy"), &a, false, &err), 0, "%s", err.msg);
    cr_assert_eq(stat(in_dir("new.npy"), &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0644);
    if (geteuid() != 0)
        return; /* only root can make a file someone else owns */
    /* Root writing a user's file leaves it the user's. */
    cr_assert_eq(chown(p, 65534, 65534), 0);
    cr_assert_eq(hc_npy_write(p, &a, false, &err), 0, "%s", err.msg);
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(st.st_uid, 65534);
    cr_assert_eq(st.st_gid, 65534);
    cr_assert_eq(st.st_mode & 07777, 0640);
    cr_assert_eq(count_entries(dir), 2);
}

/* Runs fn as an ordinary user: directly when not root, else in a child that becomes nobody
 * (permission checks do not apply to root). Returns fn's result. */
static int as_user(int (*fn)(void))
{
    if (geteuid() != 0)
        return fn();
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
            _exit(99);
        _exit(fn());
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "status %d", status);
    return WEXITSTATUS(status);
}

static int write_in_locked_dir(void)
{
    int64_t v[2] = {5, 6};
    hc_array a = {.dtype = HY_DT_I64, .n = 2, .data = v};
    hy_error err = {0};
    if (hc_npy_write(in_dir("locked/f.npy"), &a, true, &err) != 0)
        return 1;
    /* But nothing new can be made there. */
    if (hc_output_check(in_dir("locked/new.npy"), NULL, &err) != HY_ESYS ||
        !strstr(err.msg, "cannot create files in"))
        return 2;
    if (hc_npy_write(in_dir("locked/new.npy"), &a, true, &err) != HY_ESYS)
        return 3;
    /* Nor can a file this user may not write. */
    if (hc_output_check(in_dir("locked/ro.npy"), NULL, &err) != HY_ESYS ||
        !strstr(err.msg, "Permission denied"))
        return 4;
    return 0;
}

Test(output, unwritable_directory_writes_in_place)
{
    /* A writable file in a directory this user cannot write: it cannot be replaced, so it
     * is rewritten in place (same inode), and a new name there is refused. */
    cr_assert_eq(chmod(dir, 0755), 0);
    cr_assert_eq(mkdir(in_dir("locked"), 0755), 0);
    write_file(in_dir("locked/f.npy"), "0123456789abcdefXYZ", 19);
    write_file(in_dir("locked/ro.npy"), "x", 1);
    cr_assert_eq(chmod(in_dir("locked/f.npy"), 0666), 0);
    cr_assert_eq(chmod(in_dir("locked/ro.npy"), 0444), 0);
    cr_assert_eq(chmod(in_dir("locked"), 0555), 0);
    struct stat before, after;
    cr_assert_eq(stat(in_dir("locked/f.npy"), &before), 0);
    int step = as_user(write_in_locked_dir);
    cr_assert_eq(step, 0, "step %d failed", step);
    cr_assert_eq(stat(in_dir("locked/f.npy"), &after), 0);
    cr_assert_eq(after.st_ino, before.st_ino);
    cr_assert_eq(after.st_size, 16, "not truncated: %lld", (long long)after.st_size);
    cr_assert_eq(chmod(in_dir("locked"), 0755), 0);
    cr_assert_eq(count_entries(in_dir("locked")), 2);
}

static int write_others_file(void)
{
    int64_t v[2] = {5, 6};
    hc_array a = {.dtype = HY_DT_I64, .n = 2, .data = v};
    hy_error err = {0};
    return hc_npy_write(in_dir("shared/theirs.npy"), &a, true, &err) == 0 ? 0 : 1;
}

Test(output, someone_elses_file_keeps_its_owner)
{
    /* A group-writable file owned by another user, in a directory anyone may write: a
     * replacement could not be given that owner, so the file is rewritten in place. */
    if (geteuid() != 0)
        return; /* an ordinary user cannot set this up */
    cr_assert_eq(chmod(dir, 0755), 0);
    cr_assert_eq(mkdir(in_dir("shared"), 0777), 0);
    cr_assert_eq(chmod(in_dir("shared"), 0777), 0);
    write_file(in_dir("shared/theirs.npy"), "old", 3);
    cr_assert_eq(chmod(in_dir("shared/theirs.npy"), 0666), 0);
    cr_assert_eq(chown(in_dir("shared/theirs.npy"), 0, 0), 0);
    cr_assert_eq(as_user(write_others_file), 0);
    struct stat st;
    cr_assert_eq(stat(in_dir("shared/theirs.npy"), &st), 0);
    cr_assert_eq(st.st_uid, 0);
    cr_assert_eq(st.st_mode & 07777, 0666);
    cr_assert_eq(st.st_size, 16);
    cr_assert_eq(count_entries(in_dir("shared")), 1);
}

Test(output, character_devices)
{
    int32_t v[4] = {1, 2, 3, 4};
    hc_array a = {.dtype = HY_DT_I32, .n = 4, .data = v};
    hy_error err = {0};
    struct stat st;
    /* /dev/null takes the bytes and stays a device (the old writer, as root, renamed a
     * regular file over it; as anyone else it failed to make a temporary file in /dev). */
    cr_assert_eq(hc_output_check("/dev/null", NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(hc_npy_write("/dev/null", &a, false, &err), 0, "%s", err.msg);
    cr_assert_eq(lstat("/dev/null", &st), 0);
    cr_assert(S_ISCHR(st.st_mode), "/dev/null is no longer a character device");
    /* /dev/full can only be found out by writing: ENOSPC, with a sentence. */
    if (stat("/dev/full", &st) == 0 && S_ISCHR(st.st_mode)) {
        cr_assert_eq(hc_output_check("/dev/full", NULL, &err), 0, "%s", err.msg);
        cr_assert_eq(hc_npy_write("/dev/full", &a, false, &err), HY_ESYS);
        cr_assert(strstr(err.msg, "cannot write /dev/full"), "%s", err.msg);
        cr_assert(strstr(err.msg, strerror(ENOSPC)), "%s", err.msg);
        cr_assert_eq(lstat("/dev/full", &st), 0);
        cr_assert(S_ISCHR(st.st_mode), "/dev/full is no longer a character device");
    }
    /* A symlink to a device is written through too. */
    cr_assert_eq(symlink("/dev/null", in_dir("null-link")), 0);
    cr_assert_eq(hc_npy_write(in_dir("null-link"), &a, false, &err), 0, "%s", err.msg);
    cr_assert_eq(lstat(in_dir("null-link"), &st), 0);
    cr_assert(S_ISLNK(st.st_mode));
    cr_assert_eq(count_entries(dir), 1);
}

Test(output, refusals_create_nothing)
{
    int32_t v[1] = {1};
    hc_array a = {.dtype = HY_DT_I32, .n = 1, .data = v};
    hy_error err = {0};
    /* A socket. */
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    cr_assert_geq(s, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", in_dir("sock"));
    cr_assert_eq(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(hc_output_check(in_dir("sock"), "the plot", &err), HY_EINVAL);
    cr_assert(strstr(err.msg, "cannot write the plot ") && strstr(err.msg, "is a socket"),
              "%s", err.msg);
    cr_assert_eq(hc_npy_write(in_dir("sock"), &a, false, &err), HY_EINVAL);
    close(s);
    /* A block device, where this system lets us make one. */
    if (mknod(in_dir("blk"), S_IFBLK | 0600, makedev(7, 0)) == 0) {
        cr_assert_eq(hc_output_check(in_dir("blk"), NULL, &err), HY_EINVAL);
        cr_assert(strstr(err.msg, "a block device"), "%s", err.msg);
        cr_assert_eq(hc_npy_write(in_dir("blk"), &a, false, &err), HY_EINVAL);
        unlink(in_dir("blk"));
    }
    /* A missing directory, and a file where a directory should be. */
    cr_assert_eq(hc_output_check(in_dir("no/x.npy"), NULL, &err), HY_ESYS);
    cr_assert(strstr(err.msg, in_dir("no")) && strstr(err.msg, "does not exist"), "%s",
              err.msg);
    write_file(in_dir("plain"), "x", 1);
    cr_assert_eq(hc_output_check(in_dir("plain/x.npy"), NULL, &err), HY_ESYS);
    cr_assert(strstr(err.msg, in_dir("plain/x.npy")), "%s", err.msg);
    cr_assert_eq(hc_output_check("", NULL, &err), HY_EINVAL);
    cr_assert_eq(count_entries(dir), 2);
}

/* ---- generated inputs ---- */

static const char *const dists[] = {"uniform", "normal", "sorted", "reversed", "few-unique"};
#define NDISTS (sizeof dists / sizeof dists[0])

Test(generate, deterministic_per_seed)
{
    size_t n = 4096;
    for (size_t d = 0; d < NDTYPES; d++) {
        size_t es = hy_dtype_size(all_dtypes[d]);
        unsigned char *a = malloc(n * es), *b = malloc(n * es), *c = malloc(n * es);
        cr_assert(a && b && c);
        for (size_t k = 0; k < NDISTS; k++) {
            hy_error err = {0};
            cr_assert_eq(hc_generate(a, all_dtypes[d], n, dists[k], 1234, &err), 0, "%s",
                         err.msg);
            cr_assert_eq(hc_generate(b, all_dtypes[d], n, dists[k], 1234, &err), 0);
            cr_assert_eq(hc_generate(c, all_dtypes[d], n, dists[k], 1235, &err), 0);
            cr_assert_eq(memcmp(a, b, n * es), 0, "%s %s", hy_dtype_name(all_dtypes[d]),
                         dists[k]);
            cr_assert_neq(memcmp(a, c, n * es), 0, "%s %s", hy_dtype_name(all_dtypes[d]),
                          dists[k]);
            /* A prefix of a longer array is not required to match, but the same n is. */
        }
        free(a);
        free(b);
        free(c);
    }
}

/* Pins the generator: these are splitmix64 outputs for the documented key, computed
 * independently (key = mix(42 ^ 0x243f6a8885a308d3), draw k = mix(key + (k+1) * golden)). */
Test(generate, known_values)
{
    uint64_t u[3];
    hy_error err = {0};
    cr_assert_eq(hc_generate(u, HY_DT_U64, 3, "uniform", 42, &err), 0);
    cr_assert_eq(u[0], 0xac575302cac2bc29u);
    cr_assert_eq(u[1], 0xee4c2199d21dd66eu);
    cr_assert_eq(u[2], 0xd79dfa8d16737da1u);
    uint32_t w[3];
    cr_assert_eq(hc_generate(w, HY_DT_U32, 3, "uniform", 42, &err), 0);
    cr_assert_eq(w[0], 0xac575302u);
    cr_assert_eq(w[1], 0xee4c2199u);
    cr_assert_eq(w[2], 0xd79dfa8du);
    int64_t s[3];
    cr_assert_eq(hc_generate(s, HY_DT_I64, 3, "uniform", 42, &err), 0);
    cr_assert_eq(s[0], 3195113732099456041);
    cr_assert_eq(s[1], 7947764386940966510);
}

static size_t distinct(const void *data, int dtype, size_t n)
{
    size_t es = hy_dtype_size(dtype), count = 0;
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < i && memcmp(p + j * es, p + i * es, es) != 0)
            j++;
        count += j == i;
        if (count > 1000)
            break;
    }
    return count;
}

static double as_double(const void *data, int dtype, size_t i)
{
    switch (dtype) {
    case HY_DT_I32: return ((const int32_t *)data)[i];
    case HY_DT_U32: return ((const uint32_t *)data)[i];
    case HY_DT_I64: return (double)((const int64_t *)data)[i];
    case HY_DT_U64: return (double)((const uint64_t *)data)[i];
    case HY_DT_F32: return ((const float *)data)[i];
    default: return ((const double *)data)[i];
    }
}

Test(generate, distribution_properties)
{
    size_t n = 20000;
    for (size_t d = 0; d < NDTYPES; d++) {
        int dt = all_dtypes[d];
        size_t es = hy_dtype_size(dt);
        unsigned char *a = malloc(n * es), *r = malloc(n * es);
        cr_assert(a && r);
        hy_error err = {0};
        size_t bad = 0;
        const char *name = hy_dtype_name(dt);

        cr_assert_eq(hc_generate(a, dt, n, "sorted", 9, &err), 0);
        cr_assert(hc_is_sorted(a, dt, n, &bad), "%s sorted: bad at %zu", name, bad);
        cr_assert_gt(distinct(a, dt, 200), 150, "%s sorted is nearly constant", name);

        cr_assert_eq(hc_generate(r, dt, n, "reversed", 9, &err), 0);
        cr_assert_not(hc_is_sorted(r, dt, n, &bad), "%s reversed", name);
        cr_assert_eq(bad, 0);
        for (size_t i = 0; i < n; i++) /* reversed is sorted, backwards */
            cr_assert_eq(memcmp(r + i * es, a + (n - 1 - i) * es, es), 0, "%s %zu", name, i);

        cr_assert_eq(hc_generate(a, dt, n, "few-unique", 9, &err), 0);
        size_t k = distinct(a, dt, n);
        cr_assert(k <= 16 && k >= 8, "%s few-unique has %zu values", name, k);

        cr_assert_eq(hc_generate(a, dt, n, "uniform", 9, &err), 0);
        cr_assert_not(hc_is_sorted(a, dt, n, NULL));
        double lo = INFINITY, hi = -INFINITY;
        for (size_t i = 0; i < n; i++) {
            double x = as_double(a, dt, i);
            lo = x < lo ? x : lo;
            hi = x > hi ? x : hi;
        }
        if (dt == HY_DT_F32 || dt == HY_DT_F64) {
            cr_assert(lo >= -1000.0 && hi < 1000.0 && lo < -990 && hi > 990, "%s [%g, %g]",
                      name, lo, hi);
        } else {
            /* Full range: the extremes reach near both ends of the type. */
            double tmin = dt == HY_DT_I32 ? INT32_MIN : dt == HY_DT_I64 ? (double)INT64_MIN : 0;
            double tmax = dt == HY_DT_I32   ? INT32_MAX
                          : dt == HY_DT_U32 ? UINT32_MAX
                          : dt == HY_DT_I64 ? (double)INT64_MAX
                                            : (double)UINT64_MAX;
            double span = tmax - tmin;
            cr_assert(lo < tmin + span * 0.01 && hi > tmax - span * 0.01, "%s [%g, %g]", name,
                      lo, hi);
        }

        cr_assert_eq(hc_generate(a, dt, n, "normal", 9, &err), 0);
        double sum = 0, sq = 0;
        double centre = dt == HY_DT_U32 ? 2147483648.0 : dt == HY_DT_U64 ? 9223372036854775808.0 : 0;
        double scale = dt == HY_DT_F32 || dt == HY_DT_F64 ? 1.0 : 1e6;
        for (size_t i = 0; i < n; i++) {
            double x = (as_double(a, dt, i) - centre) / scale;
            sum += x;
            sq += x * x;
        }
        double mean = sum / n, sd = sqrt(sq / n - mean * mean);
        /* U64's centre is 2^63 and its values are ~1e6 apart: the double conversion keeps
         * them to within 2^11, far inside these bounds. */
        cr_assert(fabs(mean) < 0.05 && fabs(sd - 1) < 0.05, "%s normal: mean %g sd %g", name,
                  mean, sd);
        free(a);
        free(r);
    }
}

Test(generate, refusals_and_edges)
{
    double v[4];
    hy_error err = {0};
    cr_assert_eq(hc_generate(v, HY_DT_F64, 4, "gaussian", 1, &err), HY_EINVAL);
    cr_assert(strstr(err.msg, "gaussian") && strstr(err.msg, "few-unique"), "%s", err.msg);
    cr_assert_eq(hc_generate(v, HY_DT_F64, 4, NULL, 1, &err), HY_EINVAL);
    cr_assert_eq(hc_generate(v, 0, 4, "uniform", 1, &err), HY_EDTYPE);
    cr_assert_eq(hc_generate(NULL, HY_DT_F64, 4, "uniform", 1, &err), HY_EINVAL);
    cr_assert_eq(hc_generate(NULL, HY_DT_F64, 0, "sorted", 1, &err), 0);
    cr_assert_eq(hc_generate(v, HY_DT_F64, 1, "sorted", 1, &err), 0);
    cr_assert(v[0] >= -1000 && v[0] < 1000);
}

/* ---- the order check ---- */

Test(is_sorted, integers)
{
    int32_t a[] = {-5, -1, 0, 0, 3, 2, 7};
    size_t bad = 99;
    cr_assert_not(hc_is_sorted(a, HY_DT_I32, 7, &bad));
    cr_assert_eq(bad, 4);
    cr_assert(hc_is_sorted(a, HY_DT_I32, 5, &bad));
    /* The same bits as u32: -1 is 0xffffffff, above 0. */
    cr_assert_not(hc_is_sorted(a, HY_DT_U32, 7, &bad));
    cr_assert_eq(bad, 1);
    uint64_t u[] = {0, 1, UINT64_MAX};
    cr_assert(hc_is_sorted(u, HY_DT_U64, 3, NULL));
    cr_assert_not(hc_is_sorted(u, HY_DT_I64, 3, &bad));
    cr_assert_eq(bad, 1);
    cr_assert(hc_is_sorted(NULL, HY_DT_I64, 0, NULL));
    cr_assert(hc_is_sorted(u, HY_DT_I64, 1, NULL));
}

Test(is_sorted, floats_nan_last)
{
    size_t bad = 99;
    double a[] = {-INFINITY, -1.0, 0.0, 2.5, INFINITY, NAN, -NAN, NAN};
    cr_assert(hc_is_sorted(a, HY_DT_F64, 8, &bad));
    cr_assert_eq(bad, 99, "first_bad written for a sorted array");
    double b[] = {1.0, NAN, 2.0};
    cr_assert_not(hc_is_sorted(b, HY_DT_F64, 3, &bad));
    cr_assert_eq(bad, 1);
    double c[] = {NAN, 1.0};
    cr_assert_not(hc_is_sorted(c, HY_DT_F64, 2, &bad));
    cr_assert_eq(bad, 0);
    double z[] = {-0.0, 0.0, -0.0, 0.0, 1.0};
    cr_assert(hc_is_sorted(z, HY_DT_F64, 5, &bad));
    double y[] = {0.0, -0.0};
    cr_assert(hc_is_sorted(y, HY_DT_F64, 2, &bad));
    double x[] = {0.0, -1e-300};
    cr_assert_not(hc_is_sorted(x, HY_DT_F64, 2, &bad));
    cr_assert_eq(bad, 0);

    float f[] = {-1.0f, -0.0f, 0.0f, -0.0f, INFINITY, NAN, NAN};
    cr_assert(hc_is_sorted(f, HY_DT_F32, 7, &bad));
    float g[] = {-1.0f, 0.0f, NAN, 3.0f, NAN};
    cr_assert_not(hc_is_sorted(g, HY_DT_F32, 5, &bad));
    cr_assert_eq(bad, 2);
    float h[] = {1.0f, 0.5f};
    cr_assert_not(hc_is_sorted(h, HY_DT_F32, 2, &bad));
    cr_assert_eq(bad, 0);
}
