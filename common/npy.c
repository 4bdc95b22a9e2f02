/* common/npy: the one .npy header parser of hybridd, for hybridctl's input files
 * (client/npy.c) and for the daemon's MPI sort of .npy paths (daemon/ranks_files.c), so that
 * the two can never disagree on what a file holds. No I/O and no allocation: the callers read
 * the bytes. Taken: what numpy writes (numpy/lib/format.py) for a 1-D C-order little-endian
 * array of the six dtypes, with the dict in Python's literal syntax as numpy reads it (keys in
 * any order, either quote, any spaces). Refused: everything else, in one line naming the file
 * (the header's own bytes escaped, so that a newline or a terminal escape in a file cannot
 * break or paint a log line). */
#include "common.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_MAX_DIMS 64 /* numpy's NPY_MAXDIMS: more is not a numpy array */

static const char supported_list[] = "i32 u32 i64 u64 f32 f64";

int hy_npy_prefix(const char *path, const unsigned char *pre, size_t have, uint64_t *at,
                  uint64_t *hlen, hy_error *err)
{
    *at = 0;
    *hlen = 0;
    if (have < NPY_MAGIC_LEN || memcmp(pre, NPY_MAGIC, NPY_MAGIC_LEN) != 0)
        return hy_error_set(err, HY_EINVAL, "%s is not a .npy file: it does not start with "
                            "\\x93NUMPY", path);
    if (have < 8)
        return hy_error_set(err, HY_EINVAL, "%s is truncated: it ends inside the .npy header",
                            path);
    unsigned major = pre[6], minor = pre[7];
    if (minor != 0 || major < 1 || major > 3)
        return hy_error_set(err, HY_EINVAL, "%s has .npy format version %u.%u; hybridd reads "
                            "1.0, 2.0 and 3.0", path, major, minor);
    *at = major == 1 ? 10 : 12;
    if (have < *at)
        return 0; /* the caller reads *at bytes and asks again */
    uint64_t len = pre[8] | (uint64_t)pre[9] << 8;
    if (major > 1)
        len |= (uint64_t)pre[10] << 16 | (uint64_t)pre[11] << 24;
    /* numpy itself refuses headers above 10000 bytes unless told otherwise, and a real one for
     * the arrays taken is under 200: the bound keeps a hostile u32 from becoming an
     * allocation. */
    if (len == 0 || len > HY_NPY_HEADER_MAX)
        return hy_error_set(err, HY_EINVAL, "%s has a .npy header length %" PRIu64 " outside "
                            "1..%u", path, len, HY_NPY_HEADER_MAX);
    *hlen = len;
    return 0;
}

/* Up to `max` of the len bytes at s, for a sentence, on one line: a byte that is not printable
 * ASCII (a newline, a terminal escape) or a backslash is shown as \xNN, and "..." marks a cut.
 * `out` holds 4 * max + 4 bytes. */
static const char *shown(const char *s, size_t len, size_t max, char *out)
{
    size_t o = 0, i;
    for (i = 0; i < len && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, 5, "\\x%02x", c);
    }
    if (i < len)
        memcpy(out + o, "...", 3), o += 3;
    out[o] = '\0';
    return out;
}

/* ---- the header dict ---- */

/* A cursor over the dict: Python's literal syntax for the three keys numpy writes, in any
 * order, with any spaces between tokens. */
typedef struct cursor {
    const char *p, *end;
} cursor;

static void skip_ws(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static bool eat(cursor *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

/* A quoted string ('...' or "..."), no escapes (no key or descr taken has any). */
static bool parse_string(cursor *c, const char **s, size_t *len)
{
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return false;
    char q = *c->p++;
    const char *start = c->p;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || *c->p == '\n')
            return false;
        c->p++;
    }
    if (c->p >= c->end)
        return false;
    *s = start;
    *len = (size_t)(c->p - start);
    c->p++;
    return true;
}

/* `word` as a whole Python name (so False is not the start of Falsey). */
static bool parse_word(cursor *c, const char *word)
{
    skip_ws(c);
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
        return false;
    const char *after = c->p + n;
    if (after < c->end && (*after == '_' || (*after >= 'a' && *after <= 'z') ||
                           (*after >= 'A' && *after <= 'Z') || (*after >= '0' && *after <= '9')))
        return false;
    c->p = after;
    return true;
}

/* A non-negative decimal integer (Python 2's trailing L taken, as numpy takes it), digit by
 * digit, never strtoull: that would return a count past 2^64 as 2^64 - 1. Sets *overflow
 * when it does not fit a uint64_t. */
static bool parse_uint(cursor *c, uint64_t *v, bool *overflow)
{
    skip_ws(c);
    if (c->p >= c->end || *c->p < '0' || *c->p > '9')
        return false;
    uint64_t x = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        unsigned d = (unsigned)(*c->p - '0');
        if (x > (UINT64_MAX - d) / 10)
            *overflow = true;
        else
            x = x * 10 + d;
        c->p++;
    }
    if (c->p < c->end && (*c->p == 'L' || *c->p == 'l'))
        c->p++;
    *v = x;
    return true;
}

typedef struct npy_header {
    bool have_descr, have_fortran, have_shape;
    bool descr_is_list;
    const char *descr;
    size_t descr_len;
    bool fortran;
    const char *shape; /* the shape's text, for the sentences that quote it */
    size_t shape_len;
    uint64_t n;      /* product of the dimensions; valid unless n_overflow */
    bool n_overflow; /* the product does not fit in 64 bits */
    unsigned ndim;
    uint64_t dims[NPY_MAX_DIMS]; /* UINT64_MAX for one above 64 bits */
} npy_header;

/* `()`, `(a,)`, `(a, b)`, `(a, b,)`: a Python tuple literal of integers. */
static bool parse_shape(cursor *c, npy_header *h)
{
    skip_ws(c);
    const char *start = c->p;
    if (!eat(c, '('))
        return false;
    uint64_t prod = 1;
    bool overflow = false, zero = false, trailing_comma = false;
    unsigned dims = 0;
    while (!eat(c, ')')) {
        if ((dims > 0 && !trailing_comma) || dims == NPY_MAX_DIMS)
            return false;
        uint64_t d;
        bool big = false;
        if (!parse_uint(c, &d, &big))
            return false;
        h->dims[dims++] = big ? UINT64_MAX : d;
        if (big)
            overflow = true;
        else if (d == 0)
            zero = true;
        else if (prod > UINT64_MAX / d)
            overflow = true;
        else
            prod *= d;
        trailing_comma = eat(c, ',');
    }
    /* (5) is an int in Python, not a tuple: numpy refuses it, so do we. */
    if (dims == 1 && !trailing_comma)
        return false;
    h->n = zero ? 0 : prod;
    h->n_overflow = !zero && overflow;
    h->ndim = dims;
    h->shape = start;
    h->shape_len = (size_t)(c->p - start);
    return true;
}

/* Skips a descr list ([('x', '<i4'), ...]) well enough to report it as structured. */
static bool skip_list(cursor *c)
{
    int depth = 0;
    skip_ws(c);
    while (c->p < c->end) {
        char ch = *c->p++;
        if (ch == '[' || ch == '(')
            depth++;
        else if (ch == ']' || ch == ')') {
            if (--depth == 0)
                return true;
        } else if (ch == '\'' || ch == '"') {
            while (c->p < c->end && *c->p != ch)
                c->p++;
            if (c->p >= c->end)
                return false;
            c->p++;
        }
    }
    return false;
}

/* The value of one key (klen bytes at key), the cursor after its colon; on failure *why names
 * the malformed part. numpy refuses a dict whose keys are not exactly these three, so an
 * unknown key is refused too rather than skipped. */
static bool parse_value(cursor *c, const char *key, size_t klen, npy_header *h,
                        const char **why)
{
    if (klen == 5 && memcmp(key, "descr", 5) == 0) {
        *why = "a duplicate or malformed 'descr'";
        if (h->have_descr)
            return false;
        skip_ws(c);
        if (c->p < c->end && *c->p == '[') {
            if (!skip_list(c))
                return false;
            h->descr_is_list = true;
        } else if (!parse_string(c, &h->descr, &h->descr_len)) {
            return false;
        }
        return h->have_descr = true;
    }
    if (klen == 13 && memcmp(key, "fortran_order", 13) == 0) {
        *why = "a duplicate or malformed 'fortran_order' (True or False)";
        if (h->have_fortran)
            return false;
        if (parse_word(c, "True"))
            h->fortran = true;
        else if (!parse_word(c, "False"))
            return false;
        return h->have_fortran = true;
    }
    if (klen == 5 && memcmp(key, "shape", 5) == 0) {
        *why = "a duplicate or malformed 'shape' (a tuple of integers)";
        if (h->have_shape || !parse_shape(c, h))
            return false;
        return h->have_shape = true;
    }
    *why = "an unknown key (only 'descr', 'fortran_order' and 'shape' may appear)";
    return false;
}

/* The dict; on failure *why names the malformed part. */
static bool parse_dict(const char *s, size_t len, npy_header *h, const char **why)
{
    cursor c = {s, s + len};
    *why = "it is not a Python dict literal";
    if (!eat(&c, '{'))
        return false;
    bool first = true;
    for (;;) {
        if (eat(&c, '}'))
            break;
        if (!first && !eat(&c, ','))
            return false;
        if (!first && eat(&c, '}'))
            break; /* a trailing comma, as numpy writes */
        first = false;
        const char *key;
        size_t klen;
        if (!parse_string(&c, &key, &klen) || !eat(&c, ':'))
            return false;
        if (!parse_value(&c, key, klen, h, why))
            return false;
        *why = "it is not a Python dict literal";
    }
    skip_ws(&c);
    if (c.p != c.end) {
        *why = "text after the dict";
        return false;
    }
    if (!h->have_descr || !h->have_fortran || !h->have_shape) {
        *why = !h->have_descr     ? "no 'descr' key"
               : !h->have_fortran ? "no 'fortran_order' key"
                                  : "no 'shape' key";
        return false;
    }
    return true;
}

/* The dtype a descr such as '<f8' names, or the refusal (HY_EDTYPE) with its sentence. */
static int descr_dtype(const char *path, const npy_header *h, hy_error *err)
{
    if (h->descr_is_list)
        return hy_error_set(err, HY_EDTYPE, "%s holds a structured dtype (a list of fields); "
                            "use a plain array of one of %s", path, supported_list);
    static const struct {
        const char *code; /* without the byte-order character */
        int dtype;
    } codes[] = {{"i4", HY_DT_I32}, {"u4", HY_DT_U32}, {"i8", HY_DT_I64},
                 {"u8", HY_DT_U64}, {"f4", HY_DT_F32}, {"f8", HY_DT_F64}};
    int dtype = 0;
    if (h->descr_len == 3)
        for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
            if (memcmp(h->descr + 1, codes[i].code, 2) == 0)
                dtype = codes[i].dtype;
    char text[4 * 16 + 4];
    if (h->descr_len == 0)
        snprintf(text, sizeof text, "''"); /* so that the sentence still names it */
    else
        shown(h->descr, h->descr_len, 16, text);
    char order = h->descr_len ? h->descr[0] : 0;
    if (dtype && order == '>')
        return hy_error_set(err, HY_EDTYPE, "%s is big-endian (%s); hybridd sorts "
                            "little-endian arrays: convert with a.astype('<%s')", path, text,
                            text + 1);
    /* '|' marks byte-order-free one-byte types: none of ours, so it lands here. '=' is
     * native order, which numpy never writes to a file. */
    if (!dtype || order != '<')
        return hy_error_set(err, HY_EDTYPE, "%s: dtype %s is not supported; use one of %s",
                            path, text, supported_list);
    return dtype;
}

/* hybridd sorts one flat array; sorting each row of a 2-D array as numpy.sort does would need
 * it to know rows, so anything but 1-D is refused rather than silently flattened (and written
 * back with another shape). */
static int refuse_ndim(const char *path, const npy_header *h, hy_error *err)
{
    if (h->ndim == 0)
        return hy_error_set(err, HY_EINVAL, "%s holds a 0-d array (shape (), one value); "
                            "hybridd sorts 1-D arrays only: save it with numpy.save(f, "
                            "a.reshape(-1))", path);
    char shape[96] = "(";
    size_t len = 1;
    unsigned i;
    for (i = 0; i < h->ndim; i++) {
        char dim[32];
        if (h->dims[i] == UINT64_MAX)
            snprintf(dim, sizeof dim, "%s>2^64", i ? ", " : "");
        else
            snprintf(dim, sizeof dim, "%s%" PRIu64, i ? ", " : "", h->dims[i]);
        size_t dl = strlen(dim);
        if (len + dl + sizeof ", ...)" > sizeof shape)
            break;
        memcpy(shape + len, dim, dl);
        len += dl;
    }
    snprintf(shape + len, sizeof shape - len, "%s)", i < h->ndim ? ", ..." : "");
    return hy_error_set(err, HY_EINVAL, "%s holds a %u-D array of shape %s; hybridd sorts "
                        "1-D arrays only: flatten it with numpy.save(f, a.reshape(-1))", path,
                        h->ndim, shape);
}

int hy_npy_dict(const char *path, const char *h, size_t hlen, int *dtype, uint64_t *n,
                hy_error *err)
{
    if (hlen == 0 || h[hlen - 1] != '\n')
        return hy_error_set(err, HY_EINVAL, "%s has a malformed header: it does not end with "
                            "a newline", path);
    if (memchr(h, '\0', hlen))
        return hy_error_set(err, HY_EINVAL, "%s has a malformed header: it holds a NUL byte",
                            path);
    npy_header d = {0};
    const char *why;
    if (!parse_dict(h, hlen, &d, &why))
        return hy_error_set(err, HY_EINVAL, "%s has a malformed header: %s", path, why);
    int dt = descr_dtype(path, &d, err);
    if (dt < 0)
        return dt;
    if (d.fortran)
        return hy_error_set(err, HY_EINVAL, "%s is in Fortran order (fortran_order: True); "
                            "hybridd sorts C order: convert with numpy.ascontiguousarray(a)",
                            path);
    /* Never wrapped or clamped: the bytes must fit a size_t, as a job's do. */
    if (d.n_overflow || d.n > SIZE_MAX / hy_dtype_size(dt)) {
        char text[4 * 48 + 4];
        return hy_error_set(err, HY_EINVAL, "%s: shape %s overflows: it holds more %s than a "
                            "size_t counts bytes", path, shown(d.shape, d.shape_len, 48, text),
                            hy_dtype_name(dt));
    }
    if (d.ndim != 1)
        return refuse_ndim(path, &d, err);
    *dtype = dt;
    *n = d.n;
    return 0;
}
