/* tests/fuzz: writes fuzz_npy's seed corpus into the directory given — valid .npy files of
 * every dtype, format versions 1.0, 2.0 and 3.0, 1-D, 2-D and 0-D shapes, and files broken in
 * each way the reader names. Self-contained (it writes the headers itself, as numpy does, so it
 * can also write the wrong ones). Run once by hand; the files are committed (see CMakeLists.txt). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const char *dir;
static int bad;

/* Writes magic, version, the header length (u16 for 1.0, u32 for 2.0 and 3.0), the dict padded
 * with spaces to a 64-byte boundary and a newline, then `data_len` bytes of `data`.
 * `trim` bytes are cut off the end; `newline` 0 leaves the final '\n' out. */
static void npy(const char *name, unsigned major, const char *dict, const void *data,
                size_t data_len, size_t trim, int newline)
{
    unsigned char buf[4096];
    size_t prefix = major == 1 ? 10 : 12;
    size_t dlen = strlen(dict);
    size_t total = prefix + dlen + 1;
    size_t pad = (64 - total % 64) % 64;
    size_t hlen = dlen + pad + 1;
    if (prefix + hlen + data_len > sizeof buf) {
        fprintf(stderr, "%s: too large\n", name);
        bad = 1;
        return;
    }
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    for (size_t i = 0; i < prefix - 8; i++)
        buf[8 + i] = (unsigned char)(hlen >> (8 * i));
    memcpy(buf + prefix, dict, dlen);
    memset(buf + prefix + dlen, ' ', pad);
    buf[prefix + hlen - 1] = newline ? '\n' : ' ';
    if (data_len)
        memcpy(buf + prefix + hlen, data, data_len);
    size_t len = prefix + hlen + data_len - trim;

    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        bad = 1;
    }
}

/* Raw bytes, for files that are not .npy at all. */
static void raw(const char *name, const void *bytes, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(bytes, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        bad = 1;
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_npy_corpus DIR\n");
        return 2;
    }
    dir = argv[1];

    static const int32_t i32[6] = {5, -1, 3, 2147483647, -2147483647 - 1, 0};
    static const uint32_t u32[6] = {0, 1, 4294967295u, 7, 7, 2};
    static const int64_t i64[4] = {-1, 0, INT64_MAX, INT64_MIN};
    static const uint64_t u64[4] = {0, 1, UINT64_MAX, 42};
    static const float f32[6] = {1.5f, -0.0f, 0.0f, __builtin_nanf(""), -1e30f, 3.0f};
    static const double f64[6] = {-1.0, 0.0, 2.5, __builtin_inf(), __builtin_nan(""), -0.0};
    static const int32_t sorted[8] = {-3, -1, 0, 0, 2, 9, 100, 1000};

    /* Valid: each dtype, shape (n,), format 1.0 as numpy writes it. */
    npy("i32", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (6,), }", i32, sizeof i32,
        0, 1);
    npy("u32", 1, "{'descr': '<u4', 'fortran_order': False, 'shape': (6,), }", u32, sizeof u32,
        0, 1);
    npy("i64", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }", i64, sizeof i64,
        0, 1);
    npy("u64", 1, "{'descr': '<u8', 'fortran_order': False, 'shape': (4,), }", u64, sizeof u64,
        0, 1);
    npy("f32", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", f32, sizeof f32,
        0, 1);
    npy("f64", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (6,), }", f64, sizeof f64,
        0, 1);
    npy("i32_sorted", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (8,), }", sorted,
        sizeof sorted, 0, 1);
    /* Format 2.0 and 3.0 (u32 header length), keys in another order, double quotes. */
    npy("f64_v2", 2, "{'shape': (6,), 'fortran_order': False, 'descr': '<f8'}", f64,
        sizeof f64, 0, 1);
    npy("u64_v3", 3, "{\"descr\": \"<u8\", \"fortran_order\": False, \"shape\": (4,)}", u64,
        sizeof u64, 0, 1);
    /* 2-D and 0-D shapes, Python 2's long suffix, an empty array. */
    npy("i32_2d", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }", i32,
        sizeof i32, 0, 1);
    npy("f32_2d_trailing", 1, "{'descr':'<f4','fortran_order':False,'shape':(3,2,)}", f32,
        sizeof f32, 0, 1);
    npy("i64_scalar", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (), }", i64, 8, 0,
        1);
    npy("u32_long", 1, "{'descr': '<u4', 'fortran_order': False, 'shape': (2L, 3L), }", u32,
        sizeof u32, 0, 1);
    npy("f64_empty", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (0,), }", NULL, 0,
        0, 1);
    npy("f64_zero_dim", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4, 0, 9), }",
        NULL, 0, 0, 1);

    /* Refused: each reason the reader names. */
    npy("big_endian", 1, "{'descr': '>i4', 'fortran_order': False, 'shape': (6,), }", i32,
        sizeof i32, 0, 1);
    npy("fortran", 1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", f64,
        sizeof f64, 0, 1);
    npy("u1", 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (4,), }", "abcd", 4, 0, 1);
    npy("structured", 1,
        "{'descr': [('x', '<i4'), ('y', '<f8')], 'fortran_order': False, 'shape': (1,), }",
        i32, 12, 0, 1);
    npy("truncated", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }", i64,
        sizeof i64, 5, 1);
    npy("longer", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (5,), }", i32,
        sizeof i32, 0, 1);
    npy("no_newline", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (6,), }", i32,
        sizeof i32, 0, 0);
    npy("shape_overflow", 1,
        "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", NULL,
        0, 0, 1);
    npy("shape_int", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (6), }", i32,
        sizeof i32, 0, 1);
    npy("unknown_key", 1,
        "{'descr': '<i4', 'fortran_order': False, 'shape': (6,), 'x': 1}", i32, sizeof i32, 0,
        1);
    npy("duplicate_key", 1,
        "{'descr': '<i4', 'descr': '<i4', 'fortran_order': False, 'shape': (6,)}", i32,
        sizeof i32, 0, 1);
    npy("missing_shape", 1, "{'descr': '<i4', 'fortran_order': False}", i32, sizeof i32, 0, 1);
    npy("over_limit", 2, "{'descr': '<u8', 'fortran_order': False, 'shape': (131073,), }", NULL,
        0, 0, 1);
    npy("version_4", 4, "{'descr': '<i4', 'fortran_order': False, 'shape': (6,), }", i32,
        sizeof i32, 0, 1);
    raw("not_npy", "PK\x03\x04 a zip file", 17);
    raw("magic_only", "\x93NUMPY\x01", 7);
    raw("header_len_u32_max", "\x93NUMPY\x02\x00\xff\xff\xff\xff{}", 14);
    return bad;
}
