/* tests/fuzz: libFuzzer target for hybridd's own .npy header parser (daemon/ranks_npy.c), which
 * an MPI sort of .npy paths runs over the input file's first bytes. The input is a whole file,
 * taken as daemon/ranks_files.c's read_header takes it: hy_ranks_npy_prefix over its first 10
 * bytes (12 for versions 2 and 3), then hy_ranks_npy_dict over the header's bytes, copied into a
 * buffer of exactly that length plus the NUL. Checked:
 *   - a refusal is HY_EINVAL (HY_EDTYPE too for the dict) in one line that names the file;
 *   - the prefix accepts exactly the magic with version 1 to 3 and a length field of 1..65536:
 *     the header starts at 10 (version 1) or 12, its length is the field's, and the elements
 *     start at that sum; with 10 bytes of a version 2 or 3 file it asks for 12;
 *   - an accepted dict names one of the six dtypes, its descr's text is that dtype's, its shape
 *     is "(" and the decimal digits of n (no wrapped or clamped count), and n times the dtype's
 *     size fits a size_t;
 *   - when hybridctl's reader (client/npy.c, hc_npy_read) also accepts the file, the two agree
 *     on dtype and n: the daemon compares the header with what hybridctl read from it;
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
#include "ranks_npy.h"

#define PATH "in.npy"

static void check_refusal(int rc, const hy_error *err, bool dtype_ok)
{
    if (!(rc == HY_EINVAL || (dtype_ok && rc == HY_EDTYPE)) || err->code != rc ||
        err->msg[0] == '\0' || strchr(err->msg, '\n') || !strstr(err->msg, PATH)) {
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

/* The dict's checks over NUL-terminated text h (hlen bytes); returns the parser's code. */
static int check_dict(const char *h, int *dtype, uint64_t *n)
{
    static const char *const descr[] = {"", "<i4", "<u4", "<i8", "<u8", "<f4", "<f8"};
    hy_error err = {0};
    int rc = hy_ranks_npy_dict(PATH, h, dtype, n, &err);
    if (rc != 0) {
        check_refusal(rc, &err, true);
        return rc;
    }
    if (*dtype < HY_DT_I32 || *dtype > HY_DT_F64)
        abort();
    const char *d = strstr(h, "'descr'"), *s = strstr(h, "'shape'");
    const char *named = d ? strstr(d, descr[*dtype]) : NULL;
    if (!named || !s)
        abort();
    for (const char *p = d + 7; p < named; p++) /* only the colon, spaces and a quote between */
        if (!strchr(" :'\"", *p))
            abort();
    s = strchr(s, '(');
    uint64_t v;
    if (!s || !decimal(s + 1, &v) || v != *n) {
        fprintf(stderr, "shape %.32s read as n = %llu\n", s ? s : "?", (unsigned long long)*n);
        abort();
    }
    if (*n > SIZE_MAX / hy_dtype_size(*dtype)) {
        fprintf(stderr, "n = %llu of %s: its bytes overflow\n", (unsigned long long)*n,
                hy_dtype_name(*dtype));
        abort();
    }
    return 0;
}

/* The whole parse, as read_header does it. 0 with dtype, n and the elements' offset, or the
 * code of a refusal (1 when the file ends before its header, which MPI's read refuses). */
static int parse(const uint8_t *data, size_t size, int *dtype, uint64_t *n, uint64_t *elems)
{
    hy_error err = {0};
    uint64_t at = 99, hlen = 99;
    size_t have = size < 10 ? size : 10;
    int rc = hy_ranks_npy_prefix(PATH, data, have, &at, &hlen, &err);
    bool magic = have == 10 && memcmp(data, "\x93NUMPY", 6) == 0 && data[6] >= 1 && data[6] <= 3;
    if (rc != 0) {
        check_refusal(rc, &err, false);
        if (magic && data[6] == 1 && ((data[8] | data[9] << 8) != 0))
            abort(); /* a version 1 length of 1..65535 is always taken */
        return rc;
    }
    if (!magic || at != (data[6] == 1 ? 10u : 12u))
        abort();
    if (at == 12) {
        if (hlen != 0)
            abort(); /* it cannot have read the length's high bytes */
        if (size < 12)
            return 1;
        rc = hy_ranks_npy_prefix(PATH, data, 12, &at, &hlen, &err);
        uint64_t field = data[8] | (uint64_t)data[9] << 8 | (uint64_t)data[10] << 16 |
                         (uint64_t)data[11] << 24;
        if ((rc == 0) != (field >= 1 && field <= HY_RANKS_NPY_HEADER_MAX))
            abort();
        if (rc != 0) {
            check_refusal(rc, &err, false);
            return rc;
        }
        if (at != 12 || hlen != field)
            abort();
    } else {
        if (hlen != (uint64_t)(data[8] | data[9] << 8) || hlen == 0)
            abort();
        /* 12 bytes of a version 1 file: the same answer */
        uint64_t at2 = 0, hlen2 = 0;
        if (size >= 12 && (hy_ranks_npy_prefix(PATH, data, 12, &at2, &hlen2, &err) != 0 ||
                           at2 != at || hlen2 != hlen))
            abort();
    }
    if (size < at + hlen)
        return 1;
    char *h = malloc(hlen + 1); /* exactly the header: ASan sees a read past it */
    if (!h)
        abort();
    memcpy(h, data + at, hlen);
    h[hlen] = '\0';
    rc = check_dict(h, dtype, n);
    free(h);
    *elems = at + hlen;
    if (rc == 0 && *elems > size)
        abort();
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
    int rc = parse((const uint8_t *)h, total, &dt, &got, &elems);
    bool fits = n <= SIZE_MAX / hy_dtype_size(dtype);
    if (fits && (rc != 0 || dt != dtype || got != n || elems != total))
        abort();
    if (!fits && rc != HY_EINVAL)
        abort();
}

/* hybridctl's reader of the same bytes, through a memfd as in fuzz_npy.c. */
static int client_read(const uint8_t *data, size_t size, hc_array *a)
{
    char path[32];
    int fd = fuzz_memfd("fuzz_ranks_npy", data, size, path);
    hy_error err = {0};
    int rc = hc_npy_read(path, a, (size_t)1 << 20, &err);
    close(fd);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int dtype = 0;
    uint64_t n = 0, elems = 0;
    int rc = parse(data, size, &dtype, &n, &elems);
    if (rc == 0) {
        hc_array a;
        if (client_read(data, size, &a) == 0) {
            if (a.dtype != dtype || a.n != n) {
                fprintf(stderr, "hybridctl reads %s x %zu, hybridd %s x %llu\n",
                        hy_dtype_name(a.dtype), a.n, hy_dtype_name(dtype),
                        (unsigned long long)n);
                abort();
            }
            hc_array_free(&a);
        }
    }
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
