/* daemon/ranks_npy: the .npy header parser of a sort of .npy paths (ranks_npy.h). The daemon
 * may not use the client's parser (client/ is hybridctl's); this one takes what numpy writes for
 * a 1-D little-endian array of the six dtypes and refuses the rest with a sentence. */
#include "ranks_npy.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define NPY_MAGIC "\x93NUMPY"

int hy_ranks_npy_prefix(const char *path, const unsigned char *pre, size_t have, uint64_t *at,
                        uint64_t *hlen, hy_error *err)
{
    if (have < 10 || memcmp(pre, NPY_MAGIC, 6) != 0 || pre[6] < 1 || pre[6] > 3)
        return hy_error_set(err, HY_EINVAL, "%s is not a .npy file (version 1 to 3)", path);
    *at = pre[6] == 1 ? 10 : 12;
    *hlen = 0;
    if (have < *at)
        return 0;
    uint64_t len = pre[8] | (uint64_t)pre[9] << 8;
    if (pre[6] > 1)
        len |= (uint64_t)pre[10] << 16 | (uint64_t)pre[11] << 24;
    if (len == 0 || len > HY_RANKS_NPY_HEADER_MAX)
        return hy_error_set(err, HY_EINVAL, "%s: a .npy header of %" PRIu64 " bytes", path,
                            len);
    *hlen = len;
    return 0;
}

/* Up to `max` bytes of a header's text for a sentence, one line: a byte that is not printable
 * ASCII (a newline, a terminal escape) shown as \xNN. `out` holds 4 * max + 1 bytes. */
static const char *shown(const char *text, size_t max, char *out)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p && max; p++, max--) {
        if (*p >= 0x20 && *p < 0x7f && *p != '\\')
            out[n++] = (char)*p;
        else
            n += (size_t)sprintf(out + n, "\\x%02x", *p);
    }
    out[n] = '\0';
    return out;
}

/* The value after `key` in a header dict: NULL when the key is not there. */
static const char *npy_value(const char *h, const char *key)
{
    const char *p = strstr(h, key);
    if (!p)
        return NULL;
    p += strlen(key);
    while (*p == ' ')
        p++;
    if (*p++ != ':')
        return NULL;
    while (*p == ' ')
        p++;
    return p;
}

/* The dtype a descr names ('<f8' and friends; '|' or '=' are not what numpy writes for
 * these), or 0. */
static int npy_dtype(const char *v)
{
    static const char *const names[] = {"<i4", "<u4", "<i8", "<u8", "<f4", "<f8"};
    if (*v != '\'' && *v != '"')
        return 0;
    for (int d = 0; d < 6; d++)
        if (!strncmp(v + 1, names[d], 3) && v[4] == v[0])
            return d + 1; /* HY_DT_I32 .. HY_DT_F64, in common.h's order */
    return 0;
}

int hy_ranks_npy_dict(const char *path, const char *h, int *dtype, uint64_t *n, hy_error *err)
{
    const char *d = npy_value(h, "'descr'"), *f = npy_value(h, "'fortran_order'"),
               *s = npy_value(h, "'shape'");
    if (!d || !f || !s || *s != '(')
        return hy_error_set(err, HY_EINVAL, "%s: its .npy header is not a dict with descr, "
                            "fortran_order and shape", path);
    char text[4 * 24 + 1];
    if (!(*dtype = npy_dtype(d)))
        return hy_error_set(err, HY_EDTYPE, "%s: dtype %s is not one of <i4 <u4 <i8 <u8 "
                            "<f4 <f8", path, shown(d, 8, text));
    if (strncmp(f, "False", 5) != 0)
        return hy_error_set(err, HY_EINVAL, "%s: a Fortran-order array (sort takes a 1-D "
                            "one)", path);
    const char *end = ++s;
    if (*s < '0' || *s > '9')
        return hy_error_set(err, HY_EINVAL, "%s: shape %s is not 1-D", path,
                            shown(s - 1, 24, text));
    /* Digit by digit, never strtoull: it would return a count past 2^64 as 2^64 - 1. The
     * bytes must fit a size_t, as the job's do. */
    uint64_t count = 0, most = SIZE_MAX / hy_dtype_size(*dtype);
    for (; *end >= '0' && *end <= '9'; end++) {
        unsigned digit = (unsigned)(*end - '0');
        if (count > (most - digit) / 10)
            return hy_error_set(err, HY_EINVAL, "%s: shape %s holds more %s than a size_t "
                                "counts bytes", path, shown(s - 1, 24, text),
                                hy_dtype_name(*dtype));
        count = count * 10 + digit;
    }
    *n = count;
    while (*end == ' ' || *end == 'L')
        end++;
    if (*end++ != ',')
        return hy_error_set(err, HY_EINVAL, "%s: shape %s is not 1-D", path,
                            shown(s - 1, 24, text));
    while (*end == ' ')
        end++;
    if (*end != ')')
        return hy_error_set(err, HY_EINVAL, "%s: shape %s is not 1-D", path,
                            shown(s - 1, 24, text));
    return 0;
}
