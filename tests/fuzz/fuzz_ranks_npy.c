/* tests/fuzz: libFuzzer target for the .npy header parser (common/npy.c) as hybridd's MPI sort
 * of .npy paths runs it, beside hybridctl's reader (client/npy.c) of the same bytes. The input
 * is a whole file, taken as daemon/ranks_files.c's read_header takes it: hy_npy_prefix over its
 * first 10 bytes (12 for versions 2 and 3), then hy_npy_dict over the header's bytes, copied
 * into a buffer of exactly their length (ASan sees a read past it). Checked:
 *   - a refusal is HY_EINVAL (HY_EDTYPE too for the dict) in one line that names the file;
 *   - the prefix accepts exactly the magic with version 1.0, 2.0 or 3.0 and a length field of
 *     1..65536: the header starts at 10 (version 1) or 12, its length is the field's, and the
 *     elements start at that sum; with 10 bytes of a version 2 or 3 file it asks for 12;
 *   - an accepted dict names one of the six dtypes, its descr (in either quote) is that
 *     dtype's text, its shape is "(" and the decimal digits of n (no wrapped or clamped
 *     count), and n times the dtype's size fits a size_t;
 *   - hybridctl's hc_npy_read of the same bytes agrees with the daemon's path: it takes the
 *     file exactly when the daemon's path does, with the same dtype and n, unless the data
 *     after the header is short, long or above its limit (its own checks); when the daemon's
 *     path refuses, hybridctl refuses with the same sentence (the same path named), its code
 *     HY_EINVAL where the daemon's is HY_EDTYPE, and only its hint on raw files added; when the
 *     file ends before its header, hybridctl says it is truncated;
 *   - the header hy_npy_header writes (the output's, ranks_files.c's create_output) for a
 *     dtype and n taken from the input is read back to the same dtype and n, its elements
 *     starting at its end; or, when n times the size overflows, refused. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "client.h"
#include "fuzz_memfd.h"

#define TRUNCATED 1 /* parse's answer for a file that ends before its header */

static void check_refusal(const char *path, int rc, const hy_error *err, bool dtype_ok)
{
    if (!(rc == HY_EINVAL || (dtype_ok && rc == HY_EDTYPE)) || err->code != rc ||
        err->msg[0] == '\0' || strchr(err->msg, '\n') || !strstr(err->msg, path)) {
        fprintf(stderr, "bad refusal (%d): %s\n", rc, err->msg);
        abort();
    }
}

/* The decimal number at s, independently of the parser: false when it overflows 64 bits or
 * there is no digit. */
static bool decimal(const char *s, uint64_t *v)
{
    uint64_t x = 0;
    if (*s < '0' || *s > '9')
        return false;
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (x > (UINT64_MAX - d) / 10)
            return false;
        x = x * 10 + d;
    }
    *v = x;
    return true;
}

/* `word` quoted either way in text, or NULL. */
static const char *quoted(const char *text, const char *word)
{
    char q[32];
    snprintf(q, sizeof q, "'%s'", word);
    const char *p = strstr(text, q);
    snprintf(q, sizeof q, "\"%s\"", word);
    return p ? p : strstr(text, q);
}

/* What an accepted dict said, checked against its text (NUL-terminated: an accepted header
 * holds no NUL) without the parser. */
static void check_accepted(const char *text, int dtype, uint64_t n)
{
    static const char *const descr[] = {"", "<i4", "<u4", "<i8", "<u8", "<f4", "<f8"};
    if (dtype < HY_DT_I32 || dtype > HY_DT_F64 || !quoted(text, "descr") ||
        !quoted(text, descr[dtype]))
        abort();
    const char *s = quoted(text, "shape");
    s = s ? strchr(s, '(') : NULL;
    if (s)
        for (s++; *s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'; s++)
            ;
    uint64_t v;
    if (!s || !decimal(s, &v) || v != n) {
        fprintf(stderr, "shape %.32s read as n = %llu\n", s ? s : "?", (unsigned long long)n);
        abort();
    }
    if (n > SIZE_MAX / hy_dtype_size(dtype)) {
        fprintf(stderr, "n = %llu of %s: its bytes overflow\n", (unsigned long long)n,
                hy_dtype_name(dtype));
        abort();
    }
}

/* The dict's checks over its hlen bytes at data; returns the parser's code. */
static int check_dict(const char *path, const uint8_t *data, size_t hlen, int *dtype,
                      uint64_t *n, hy_error *err)
{
    char *h = malloc(hlen + 1); /* the parser gets exactly hlen; the checks a NUL after */
    if (!h)
        abort();
    memcpy(h, data, hlen);
    int rc = hy_npy_dict(path, h, hlen, dtype, n, err);
    h[hlen] = '\0';
    if (rc != 0)
        check_refusal(path, rc, err, true);
    else
        check_accepted(h, *dtype, *n);
    free(h);
    return rc;
}

/* The prefix's checks over the first min(size, 12) bytes: 0 with *at and *hlen, or a code. */
static int check_prefix(const char *path, const uint8_t *data, size_t size, uint64_t *at,
                        uint64_t *hlen, hy_error *err)
{
    size_t have = size < 10 ? size : 10;
    int rc = hy_npy_prefix(path, data, have, at, hlen, err);
    bool magic = have >= 8 && memcmp(data, "\x93NUMPY", 6) == 0 && data[6] >= 1 &&
                 data[6] <= 3 && data[7] == 0;
    if (rc != 0 && !magic) {
        check_refusal(path, rc, err, false);
        return rc;
    }
    if (!magic || *at != (data[6] == 1 ? 10u : 12u))
        abort();
    if (rc == 0 && have < *at) { /* it asks for the whole prefix */
        if (*hlen != 0)
            abort(); /* it cannot have read the length's high bytes */
        if (size < *at)
            return TRUNCATED;
        rc = hy_npy_prefix(path, data, (size_t)*at, at, hlen, err);
    }
    uint64_t field = data[8] | (uint64_t)data[9] << 8;
    if (data[6] > 1)
        field |= (uint64_t)data[10] << 16 | (uint64_t)data[11] << 24;
    if ((rc == 0) != (field >= 1 && field <= HY_NPY_HEADER_MAX))
        abort(); /* exactly the lengths 1..65536 are taken */
    if (rc != 0) {
        check_refusal(path, rc, err, false);
        return rc;
    }
    if (*at != (data[6] == 1 ? 10u : 12u) || *hlen != field)
        abort();
    uint64_t at2 = 0, hlen2 = 0; /* 12 bytes of a version 1 file: the same answer */
    if (*at == 10 && size >= 12 && (hy_npy_prefix(path, data, 12, &at2, &hlen2, err) != 0 ||
                                    at2 != *at || hlen2 != *hlen))
        abort();
    return 0;
}

/* The whole parse, as read_header does it. 0 with dtype, n and the elements' offset, or the
 * code of a refusal (TRUNCATED when the file ends before its header, which MPI's read
 * refuses), its sentence in *err. */
static int parse(const char *path, const uint8_t *data, size_t size, int *dtype, uint64_t *n,
                 uint64_t *elems, hy_error *err)
{
    uint64_t at = 99, hlen = 99;
    int rc = check_prefix(path, data, size, &at, &hlen, err);
    if (rc != 0)
        return rc;
    if (size < at + hlen)
        return TRUNCATED;
    rc = check_dict(path, data + at, hlen, dtype, n, err);
    *elems = at + hlen;
    return rc;
}

/* The output's header for (dtype, n), read back. */
static void round_trip(int dtype, uint64_t n)
{
    char h[256];
    size_t total = hy_npy_header(dtype, n, h, sizeof h);
    if (total == 0)
        abort(); /* 20 digits fit */
    int dt = 0;
    uint64_t got = 0, elems = 0;
    hy_error err = {0};
    int rc = parse("out.npy", (const uint8_t *)h, total, &dt, &got, &elems, &err);
    bool fits = n <= SIZE_MAX / hy_dtype_size(dtype);
    if (fits && (rc != 0 || dt != dtype || got != n || elems != total))
        abort();
    if (!fits && rc != HY_EINVAL)
        abort();
}

/* hybridctl's answer against the daemon's path (rc, dtype, n, err) on the same bytes. */
static void agree(int rc, int dtype, uint64_t n, const hy_error *err, int crc,
                  const hc_array *a, const hy_error *cerr)
{
    bool same = false;
    if (rc == 0 && crc == 0)
        same = a->dtype == dtype && a->n == n;
    else if (rc == 0) /* only the data after the header may differ */
        same = crc == HY_ELIMIT || (crc == HY_EINVAL && strstr(cerr->msg, "the header says"));
    else if (rc == TRUNCATED)
        same = crc == HY_EINVAL && strstr(cerr->msg, "is truncated");
    else /* the same sentence; hybridctl may only add its hint on raw files */
        same = crc == HY_EINVAL && strncmp(cerr->msg, err->msg, strlen(err->msg)) == 0;
    if (!same) {
        fprintf(stderr, "hybridd: %d %s x %llu: %s\nhybridctl: %d %s x %zu: %s\n", rc,
                rc ? "-" : hy_dtype_name(dtype), (unsigned long long)n, rc ? err->msg : "",
                crc, crc ? "-" : hy_dtype_name(a->dtype), a->n, crc ? cerr->msg : "");
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[32];
    int fd = fuzz_memfd("fuzz_ranks_npy", data, size, path);
    hc_array a = {0};
    hy_error cerr = {0};
    int crc = hc_npy_read(path, &a, (size_t)1 << 20, &cerr);
    close(fd);

    int dtype = 0;
    uint64_t n = 0, elems = 0;
    hy_error err = {0};
    int rc = parse(path, data, size, &dtype, &n, &elems, &err);
    if (rc == 0 && elems > size)
        abort();
    agree(rc, dtype, n, &err, crc, &a, &cerr);
    hc_array_free(&a);

    /* A dtype and n from the input's last 9 bytes: small and huge counts alike. */
    if (size >= 9) {
        const uint8_t *t = data + size - 9;
        uint64_t v = 0;
        for (int i = 0; i < 8; i++)
            v |= (uint64_t)t[1 + i] << (8 * i);
        round_trip(t[0] % 6 + 1, t[0] & 0x80 ? v : v >> (t[0] & 0x3f));
    }
    return 0;
}
