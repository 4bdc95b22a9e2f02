/* client: arrays on disk and in memory — .npy and raw files read and written (the writing
 * itself is output.c's), generated inputs, and the order check hybridctl runs on a sorted
 * result. */
#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

/* Arrays travel to the daemon in the host's byte order and .npy data is little-endian: a
 * big-endian host would need a byte swap here, and hybridd supports none. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "hybridctl reads and writes little-endian arrays and assumes a little-endian host"
#endif

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
/* The prefix before the dict: magic, two version bytes, and a u16 (1.0) or u32 (2.0, 3.0). */
#define NPY_PREFIX_MAX 12
/* numpy itself refuses headers above 10000 bytes unless told otherwise; a real header for
 * the arrays we accept is under 200. The bound keeps a hostile u32 length from becoming an
 * allocation. */
#define NPY_HEADER_MAX 65536
#define NPY_MAX_DIMS 64

static const char supported_list[] = "i32 u32 i64 u64 f32 f64";

/* ---- I/O helpers ---- */

/* Transfers up to len bytes from fd with `step` (which moves at most `chunk` bytes at offset
 * `done` of the transfer and answers as read(2) does), retrying short transfers and EINTR;
 * *got is what arrived before EOF. */
typedef ssize_t step_fn(int fd, size_t done, size_t chunk, void *ctx);

static int transfer_full(int fd, size_t len, size_t *got, step_fn *step, void *ctx)
{
    size_t done = 0;
    while (done < len) {
        size_t chunk = len - done;
        if (chunk > (size_t)1 << 30)
            chunk = (size_t)1 << 30;
        ssize_t r = step(fd, done, chunk, ctx);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            *got = done;
            return -1;
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    *got = done;
    return 0;
}

static ssize_t read_step(int fd, size_t done, size_t chunk, void *buf)
{
    return read(fd, (char *)buf + done, chunk);
}

/* Reads up to len bytes into buf; *got is what arrived before EOF. */
static int read_full(int fd, void *buf, size_t len, size_t *got)
{
    return transfer_full(fd, len, got, read_step, buf);
}

/* Opens path for reading and checks it is a regular file; *size is its length. O_NONBLOCK so
 * that a FIFO given by mistake is refused instead of waited on. */
static int open_input(const char *path, int *fd_out, size_t *size, hy_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return hy_error_set(err, HY_ESYS, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return hy_error_set(err, HY_ESYS, "cannot stat %s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return hy_error_set(err, HY_EINVAL, "%s is %s, not a regular file", path,
                            S_ISDIR(st.st_mode) ? "a directory" : "a special file");
    }
    if (st.st_size < 0 || (uintmax_t)st.st_size > SIZE_MAX) {
        close(fd);
        return hy_error_set(err, HY_ELIMIT, "%s is too large for this machine", path);
    }
    *fd_out = fd;
    *size = (size_t)st.st_size;
    return 0;
}

/* One step of moving bytes from fd into `to`: sendfile where fd is a file (page cache to page
 * cache, and a memfd's pages allocated without a fault each), splice where it is a pipe, and
 * read and write through a buffer for anything else (a socket, a character device). *how
 * starts at 0 and remembers what worked. Returns what read(2) would. */
static ssize_t move_step(int fd, int to, size_t chunk, int *how)
{
    ssize_t r;
    if (*how == 0) {
        r = sendfile(to, fd, NULL, chunk);
        if (r >= 0 || (errno != EINVAL && errno != ESPIPE))
            return r;
        *how = 1;
    }
    if (*how == 1) {
        r = splice(fd, NULL, to, NULL, chunk, SPLICE_F_MOVE);
        if (r >= 0 || errno != EINVAL)
            return r;
        *how = 2;
    }
    char bounce[1 << 16];
    r = read(fd, bounce, chunk < sizeof bounce ? chunk : sizeof bounce);
    for (ssize_t put = 0; r > 0 && put < r;) {
        ssize_t w = write(to, bounce + put, (size_t)(r - put));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        put += w;
    }
    return r;
}

struct move {
    int to, how;
};

static ssize_t send_step(int fd, size_t done, size_t chunk, void *ctx)
{
    (void)done; /* both files' offsets advance by themselves */
    struct move *m = ctx;
    return move_step(fd, m->to, chunk, &m->how);
}

/* Moves up to len bytes from fd into `to` (at its current offset); *got is what arrived
 * before EOF. */
static int send_full(int fd, int to, size_t len, size_t *got)
{
    struct move m = {to, 0};
    return transfer_full(fd, len, got, send_step, &m);
}

/* Reads the input's data — into buf, or with buf NULL into the file `to` — and checks that
 * the file ends there (it could have shrunk or grown since it was measured). */
static int copy_data(const hc_input *in, void *buf, int to, hy_error *err)
{
    size_t bytes = in->n * hy_dtype_size(in->dtype), got = 0;
    if (bytes > 0 && (buf ? read_full(in->fd, buf, bytes, &got)
                          : send_full(in->fd, to, bytes, &got)) != 0)
        return hy_error_set(err, HY_ESYS, "cannot read %s: %s", in->path, strerror(errno));
    if (got < bytes)
        return hy_error_set(err, HY_EINVAL,
                            "%s is truncated: %s, only %zu arrived after the %zu-byte "
                            "header (the file shrank while being read)",
                            in->path, in->what, got, in->header_len);
    char extra;
    size_t more = 0;
    if (read_full(in->fd, &extra, 1, &more) != 0 || more != 0) {
        int e = more ? 0 : errno;
        if (e)
            return hy_error_set(err, HY_ESYS, "cannot read %s: %s", in->path, strerror(e));
        return hy_error_set(err, HY_EINVAL, "%s is longer than its header says: %s", in->path,
                            in->what);
    }
    return 0;
}

/* ---- the .npy header dict ---- */

/* A cursor over the header dict; the parser accepts exactly Python's literal syntax for
 * the three keys numpy writes, in any order, with any spaces between tokens. */
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

/* A quoted string ('...' or "..."), no escapes (no key or descr we accept has any). */
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

/* A non-negative decimal integer (Python 2's trailing L accepted, as numpy does). Sets
 * *overflow when it does not fit in a uint64_t. */
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
    uint64_t n;      /* product of the dimensions; valid unless n_overflow */
    bool n_overflow; /* the product does not fit in 64 bits */
    unsigned ndim;
    uint64_t dims[NPY_MAX_DIMS]; /* UINT64_MAX for one above 64 bits */
} npy_header;

/* `( )`, `(a,)`, `(a, b)`, `(a, b,)`: a Python tuple literal of integers. */
static bool parse_shape(cursor *c, npy_header *h)
{
    if (!eat(c, '('))
        return false;
    uint64_t prod = 1;
    bool overflow = false, zero = false;
    unsigned dims = 0;
    bool trailing_comma = false;
    skip_ws(c);
    while (!eat(c, ')')) {
        if (dims > 0 && !trailing_comma)
            return false;
        if (dims == NPY_MAX_DIMS)
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

/* Parses the dict; on failure *why names the malformed part. */
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
            break;
        first = false;
        const char *key;
        size_t klen;
        if (!parse_string(&c, &key, &klen))
            return false;
        if (!eat(&c, ':'))
            return false;
        if (klen == 5 && memcmp(key, "descr", 5) == 0) {
            *why = "a duplicate or malformed 'descr'";
            if (h->have_descr)
                return false;
            skip_ws(&c);
            if (c.p < c.end && *c.p == '[') {
                if (!skip_list(&c))
                    return false;
                h->descr_is_list = true;
            } else if (!parse_string(&c, &h->descr, &h->descr_len)) {
                return false;
            }
            h->have_descr = true;
        } else if (klen == 13 && memcmp(key, "fortran_order", 13) == 0) {
            *why = "a duplicate or malformed 'fortran_order' (True or False)";
            if (h->have_fortran)
                return false;
            if (parse_word(&c, "True"))
                h->fortran = true;
            else if (parse_word(&c, "False"))
                h->fortran = false;
            else
                return false;
            h->have_fortran = true;
        } else if (klen == 5 && memcmp(key, "shape", 5) == 0) {
            *why = "a duplicate or malformed 'shape' (a tuple of integers)";
            if (h->have_shape || !parse_shape(&c, h))
                return false;
            h->have_shape = true;
        } else {
            *why = "an unknown key (only 'descr', 'fortran_order' and 'shape' may appear)";
            return false;
        }
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

/* Copies a descr from the file into `out` for an error sentence, or "?" if it holds
 * anything but printable ASCII. */
static void printable_descr(const char *s, size_t len, char *out, size_t cap)
{
    if (len == 0 || len >= cap) {
        snprintf(out, cap, "%s", len ? "(a long descriptor)" : "''");
        return;
    }
    for (size_t i = 0; i < len; i++)
        if (s[i] < 0x20 || s[i] > 0x7e) {
            snprintf(out, cap, "(an unprintable descriptor)");
            return;
        }
    memcpy(out, s, len);
    out[len] = '\0';
}

/* Maps a descr such as '<f8' to a dtype; 0 with the sentence written on refusal. */
static int descr_dtype(const char *path, const npy_header *h, hy_error *err)
{
    if (h->descr_is_list)
        return hy_error_set(err, HY_EINVAL,
                            "%s holds a structured dtype (a list of fields); use a plain "
                            "array of one of %s",
                            path, supported_list);
    char shown[40];
    printable_descr(h->descr, h->descr_len, shown, sizeof shown);
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
    char order = h->descr_len ? h->descr[0] : 0;
    if (dtype && order == '>')
        return hy_error_set(err, HY_EINVAL,
                            "%s is big-endian (%s); hybridctl reads little-endian arrays: "
                            "convert with a.astype('<%s')",
                            path, shown, shown + 1);
    /* '|' marks byte-order-free one-byte types: none of ours, so it lands below. '=' is
     * native order, which numpy never writes to a file. */
    if (!dtype || order != '<')
        return hy_error_set(err, HY_EINVAL, "%s: dtype %s is not supported; use one of %s",
                            path, shown, supported_list);
    return dtype;
}

/* hybridd sorts one flat array; sorting each row of a 2-D array as numpy.sort does would
 * need the daemon to know rows, so anything but 1-D is refused rather than silently
 * flattened (and written back with another shape). */
static int refuse_ndim(const char *path, const npy_header *h, hy_error *err)
{
    if (h->ndim == 0)
        return hy_error_set(err, HY_EINVAL,
                            "%s holds a 0-d array (shape (), one value); hybridctl sorts 1-D "
                            "arrays only: save it with numpy.save(f, a.reshape(-1))",
                            path);
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
    return hy_error_set(err, HY_EINVAL,
                        "%s holds a %u-D array of shape %s; hybridctl sorts 1-D arrays only: "
                        "flatten it with numpy.save(f, a.reshape(-1))",
                        path, h->ndim, shape);
}

static uint32_t le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* The fixed part of a .npy file: the magic, a version hybridctl reads, and the header's
 * length, checked against the file's size and NPY_HEADER_MAX before anything is allocated.
 * Sets *prefix_len (10 or 12 bytes) and *hlen. */
static int read_prefix(int fd, const char *path, size_t fsize, size_t *prefix_len,
                       size_t *hlen, hy_error *err)
{
    unsigned char prefix[NPY_PREFIX_MAX];
    size_t got;
    if (read_full(fd, prefix, fsize < 10 ? fsize : 10, &got) != 0)
        return hy_error_set(err, HY_ESYS, "cannot read %s: %s", path, strerror(errno));
    if (got < NPY_MAGIC_LEN || memcmp(prefix, NPY_MAGIC, NPY_MAGIC_LEN) != 0)
        return hy_error_set(err, HY_EINVAL,
                            "%s is not a .npy file: it does not start with \\x93NUMPY (a "
                            "file of raw values is read with its dtype: --input FILE --dtype D, "
                            "FILE not ending in .npy)",
                            path);
    if (got < 8)
        return hy_error_set(err, HY_EINVAL, "%s is truncated: it ends inside the .npy header",
                            path);
    unsigned major = prefix[6], minor = prefix[7];
    if (minor != 0 || major < 1 || major > 3)
        return hy_error_set(err, HY_EINVAL,
                            "%s has .npy format version %u.%u; hybridctl reads 1.0, 2.0 and 3.0",
                            path, major, minor);
    *prefix_len = major == 1 ? 10 : 12;
    if (major > 1 && got == 10 && fsize >= 12) {
        size_t more;
        if (read_full(fd, prefix + 10, 2, &more) != 0)
            return hy_error_set(err, HY_ESYS, "cannot read %s: %s", path, strerror(errno));
        got += more;
    }
    if (got < *prefix_len)
        return hy_error_set(err, HY_EINVAL, "%s is truncated: it ends inside the .npy header",
                            path);
    *hlen = major == 1 ? (size_t)(prefix[8] | prefix[9] << 8) : (size_t)le32(prefix + 8);
    if (*hlen > fsize - *prefix_len)
        return hy_error_set(err, HY_EINVAL,
                            "%s is truncated: its header length %zu runs past the end of the "
                            "file (%zu bytes)",
                            path, *hlen, fsize);
    if (*hlen > NPY_HEADER_MAX)
        return hy_error_set(err, HY_EINVAL,
                            "%s has a %zu-byte header; hybridctl reads headers up to %d bytes",
                            path, *hlen, NPY_HEADER_MAX);
    return 0;
}

/* The header's hlen bytes into *header (the caller frees it, also on failure): whole, ending
 * in a newline, with no NUL inside, so that parse_dict may treat it as text. */
static int read_header(int fd, const char *path, size_t hlen, char **header, hy_error *err)
{
    size_t got;
    *header = malloc(hlen ? hlen : 1);
    if (!*header)
        return hy_error_set(err, HY_ENOMEM, "cannot allocate %zu bytes for %s", hlen, path);
    if (read_full(fd, *header, hlen, &got) != 0)
        return hy_error_set(err, HY_ESYS, "cannot read %s: %s", path, strerror(errno));
    if (got < hlen)
        return hy_error_set(err, HY_EINVAL, "%s is truncated: it ends inside the .npy header",
                            path);
    if (hlen == 0 || (*header)[hlen - 1] != '\n')
        return hy_error_set(err, HY_EINVAL,
                            "%s has a malformed header: it does not end with a newline", path);
    if (memchr(*header, '\0', hlen))
        return hy_error_set(err, HY_EINVAL, "%s has a malformed header: it holds a NUL byte",
                            path);
    return 0;
}

/* What the header describes, if hybridctl can sort it: a one-dimensional array in C order of
 * a dtype it knows, whose byte count fits a size_t. Sets *dtype and *n. */
static int header_array(const char *path, const char *header, size_t hlen, int *dtype,
                        size_t *n, hy_error *err)
{
    npy_header h = {0};
    const char *why;
    if (!parse_dict(header, hlen, &h, &why))
        return hy_error_set(err, HY_EINVAL, "%s has a malformed header: %s", path, why);
    int dt = descr_dtype(path, &h, err);
    if (dt < 0)
        return dt;
    if (h.fortran)
        return hy_error_set(err, HY_EINVAL,
                            "%s is in Fortran order (fortran_order: True); hybridctl reads C "
                            "order: convert with numpy.ascontiguousarray(a)",
                            path);
    if (h.n_overflow || h.n > SIZE_MAX / hy_dtype_size(dt))
        return hy_error_set(err, HY_EINVAL,
                            "%s has a malformed header: the shape's element count overflows",
                            path);
    if (h.ndim != 1)
        return refuse_ndim(path, &h, err);
    *dtype = dt;
    *n = (size_t)h.n;
    return 0;
}

/* The .npy header of fd (fsize bytes long, or SIZE_MAX for a stream whose length is known
 * only at its end), checked; `in` then holds fd positioned at the data. Does not close fd. */
static int npy_open_fd(int fd, const char *path, size_t fsize, hc_input *in, size_t max_bytes,
                       hy_error *err)
{
    int rc, dtype = 0;
    size_t prefix_len = 0, hlen = 0, n = 0;
    char *header = NULL;
    if ((rc = read_prefix(fd, path, fsize, &prefix_len, &hlen, err)) != 0 ||
        (rc = read_header(fd, path, hlen, &header, err)) != 0 ||
        (rc = header_array(path, header, hlen, &dtype, &n, err)) != 0) {
        free(header);
        return rc;
    }
    free(header);
    size_t bytes = n * hy_dtype_size(dtype);
    size_t header_total = prefix_len + hlen;
    in->fd = fd;
    in->dtype = dtype;
    in->n = n;
    in->header_len = header_total;
    in->path = path;
    snprintf(in->what, sizeof in->what, "the header says %zu %s (%zu bytes)", n,
             hy_dtype_name(dtype), bytes);
    size_t have = fsize == SIZE_MAX ? bytes : fsize - header_total; /* a stream: at the end */
    if (have < bytes)
        return hy_error_set(err, HY_EINVAL,
                            "%s is truncated: %s, the file has %zu after its %zu-byte header",
                            path, in->what, have, header_total);
    if (have > bytes)
        return hy_error_set(err, HY_EINVAL,
                            "%s is longer than its header says: %s, the file has %zu after its "
                            "%zu-byte header",
                            path, in->what, have, header_total);
    if (bytes > max_bytes)
        return hy_error_set(err, HY_ELIMIT,
                            "%s holds %zu bytes of data, above the limit of %zu bytes", path,
                            bytes, max_bytes);
    return 0;
}

int hc_npy_open(const char *path, hc_input *in, size_t max_bytes, hy_error *err)
{
    int fd = -1, rc;
    size_t fsize = 0;
    *in = (hc_input){.fd = -1};
    if ((rc = open_input(path, &fd, &fsize, err)) != 0)
        return rc;
    if ((rc = npy_open_fd(fd, path, fsize, in, max_bytes, err)) != 0) {
        close(fd);
        *in = (hc_input){.fd = -1};
    }
    return rc;
}

/* Standard input as an input: a regular file (redirected) is read like one from where it
 * stands; a pipe or socket is a stream; a terminal is refused, as gzip refuses one. */
static int stdin_size(size_t *fsize, hy_error *err)
{
    if (isatty(STDIN_FILENO))
        return hy_error_set(err, HY_EINVAL, "%s is a terminal: pipe an array into hybridctl "
                            "(… | hybridctl sort --input -) or name a file", HC_STDIN_NAME);
    struct stat st;
    if (fstat(STDIN_FILENO, &st) != 0)
        return hy_error_set(err, HY_ESYS, "cannot stat %s: %s", HC_STDIN_NAME, strerror(errno));
    *fsize = SIZE_MAX;
    if (S_ISREG(st.st_mode)) {
        off_t at = lseek(STDIN_FILENO, 0, SEEK_CUR);
        if (at >= 0 && at <= st.st_size)
            *fsize = (size_t)(st.st_size - at);
    }
    return 0;
}

int hc_npy_open_stdin(hc_input *in, size_t max_bytes, hy_error *err)
{
    size_t fsize = SIZE_MAX;
    *in = (hc_input){.fd = -1};
    int rc = stdin_size(&fsize, err);
    if (rc == 0)
        rc = npy_open_fd(STDIN_FILENO, HC_STDIN_NAME, fsize, in, max_bytes, err);
    if (rc != 0)
        *in = (hc_input){.fd = -1};
    in->borrowed = true;
    return rc;
}

int hc_raw_stdin(int dtype, int to, size_t max_bytes, size_t *n, hy_error *err)
{
    size_t esize = hy_dtype_size(dtype), fsize = SIZE_MAX, got = 0;
    *n = 0;
    if (esize == 0)
        return hy_error_set(err, HY_EDTYPE, "unknown dtype %d for %s (use one of %s)", dtype,
                            HC_STDIN_NAME, supported_list);
    int rc = stdin_size(&fsize, err);
    if (rc)
        return rc;
    /* One byte past the limit tells "too much" from "exactly the limit". */
    size_t want = max_bytes < SIZE_MAX ? max_bytes + 1 : max_bytes;
    if (send_full(STDIN_FILENO, to, want, &got) != 0)
        return hy_error_set(err, HY_ESYS, "cannot read %s: %s", HC_STDIN_NAME, strerror(errno));
    if (got > max_bytes)
        return hy_error_set(err, HY_ELIMIT, "%s holds more than %zu bytes of data, the limit",
                            HC_STDIN_NAME, max_bytes);
    unsigned char magic[NPY_MAGIC_LEN];
    if (got >= NPY_MAGIC_LEN && pread(to, magic, NPY_MAGIC_LEN, 0) == NPY_MAGIC_LEN &&
        memcmp(magic, NPY_MAGIC, NPY_MAGIC_LEN) == 0)
        return hy_error_set(err, HY_EINVAL,
                            "%s is a .npy file (it starts with \\x93NUMPY), not raw values: "
                            "drop --dtype to read it as .npy", HC_STDIN_NAME);
    if (got % esize != 0)
        return hy_error_set(err, HY_EINVAL,
                            "%s has %zu bytes, not a whole number of %zu-byte %s elements",
                            HC_STDIN_NAME, got, esize, hy_dtype_name(dtype));
    *n = got / esize;
    return 0;
}

int hc_raw_open(const char *path, int dtype, hc_input *in, size_t max_bytes, hy_error *err)
{
    int fd = -1, rc;
    size_t fsize;
    *in = (hc_input){.fd = -1};
    size_t esize = hy_dtype_size(dtype);
    if (esize == 0)
        return hy_error_set(err, HY_EDTYPE, "unknown dtype %d for %s (use one of %s)", dtype,
                            path, supported_list);
    if ((rc = open_input(path, &fd, &fsize, err)) != 0)
        return rc;
    /* A .npy file read raw would have its header sorted into the data. */
    unsigned char magic[NPY_MAGIC_LEN];
    if (fsize >= NPY_MAGIC_LEN) {
        ssize_t r;
        do
            r = pread(fd, magic, NPY_MAGIC_LEN, 0);
        while (r < 0 && errno == EINTR);
        if (r < 0) {
            rc = hy_error_set(err, HY_ESYS, "cannot read %s: %s", path, strerror(errno));
            goto out;
        }
        if (r == NPY_MAGIC_LEN && memcmp(magic, NPY_MAGIC, NPY_MAGIC_LEN) == 0) {
            rc = hy_error_set(err, HY_EINVAL,
                              "%s is a .npy file (it starts with \\x93NUMPY), not raw "
                              "values: drop --dtype to read it as .npy",
                              path);
            goto out;
        }
    }
    const char *dname = hy_dtype_name(dtype);
    if (fsize % esize != 0) {
        rc = hy_error_set(err, HY_EINVAL,
                          "%s has %zu bytes, not a whole number of %zu-byte %s elements", path,
                          fsize, esize, dname);
        goto out;
    }
    if (fsize > max_bytes) {
        rc = hy_error_set(err, HY_ELIMIT,
                          "%s holds %zu bytes of data, above the limit of %zu bytes", path,
                          fsize, max_bytes);
        goto out;
    }
    *in = (hc_input){.fd = fd, .dtype = dtype, .n = fsize / esize, .path = path};
    snprintf(in->what, sizeof in->what, "its size said %zu %s (%zu bytes)", fsize / esize,
             dname, fsize);
    return 0;
out:
    close(fd);
    return rc;
}

int hc_input_send(hc_input *in, int to, hy_error *err)
{
    int rc = copy_data(in, NULL, to, err);
    hc_input_close(in);
    return rc;
}

void hc_input_close(hc_input *in)
{
    if (in && in->fd >= 0 && !in->borrowed)
        close(in->fd);
    if (in)
        in->fd = -1;
}

/* An opened input's data into a malloc'd array (NULL when empty); closes the input. */
static int read_into_array(hc_input *in, hc_array *out, hy_error *err)
{
    size_t bytes = in->n * hy_dtype_size(in->dtype);
    void *buf = NULL;
    int rc = 0;
    if (bytes > 0 && !(buf = malloc(bytes)))
        rc = hy_error_set(err, HY_ENOMEM, "cannot allocate %zu bytes for %s", bytes, in->path);
    if (rc == 0)
        rc = copy_data(in, buf, -1, err);
    if (rc == 0)
        *out = (hc_array){.dtype = in->dtype, .n = in->n, .data = buf};
    else
        free(buf);
    hc_input_close(in);
    return rc;
}

int hc_npy_read(const char *path, hc_array *out, size_t max_bytes, hy_error *err)
{
    hc_input in;
    *out = (hc_array){0};
    int rc = hc_npy_open(path, &in, max_bytes, err);
    return rc ? rc : read_into_array(&in, out, err);
}

int hc_raw_read(const char *path, int dtype, hc_array *out, size_t max_bytes, hy_error *err)
{
    hc_input in;
    *out = (hc_array){0};
    int rc = hc_raw_open(path, dtype, &in, max_bytes, err);
    return rc ? rc : read_into_array(&in, out, err);
}

/* ---- writing ---- */

int hc_npy_write_memfd(const char *path, const hc_array *a, int memfd, bool raw,
                       hy_error *err)
{
    size_t esize = hy_dtype_size(a->dtype);
    if (esize == 0)
        return hy_error_set(err, HY_EDTYPE, "cannot write %s: unknown dtype %d", path,
                            a->dtype);
    if (a->n > 0 && !a->data)
        return hy_error_set(err, HY_EINVAL, "cannot write %s: no array given for %zu elements",
                            path, a->n);
    if (a->n > SIZE_MAX / esize)
        return hy_error_set(err, HY_ELIMIT, "cannot write %s: %zu elements overflow a size",
                            path, a->n);
    char header[256];
    size_t header_len = 0;
    if (!raw) {
        header_len = hy_npy_header(a->dtype, a->n, header, sizeof header);
        if (header_len == 0)
            return hy_error_set(err, HY_EINTERNAL, "cannot write %s: the .npy header does not fit",
                                path);
    }
    hc_chunk chunks[2] = {{header, header_len, 0}, {a->data, a->n * esize, memfd}};
    return hc_output_write(path, NULL, chunks, 2, err);
}

int hc_npy_write(const char *path, const hc_array *a, bool raw, hy_error *err)
{
    return hc_npy_write_memfd(path, a, 0, raw, err);
}

void hc_array_free(hc_array *a)
{
    if (!a)
        return;
    free(a->data);
    *a = (hc_array){0};
}

/* ---- generated inputs ----
 *
 * Every value comes from splitmix64 (Steele, Lea, Flood, "Fast splittable pseudorandom
 * number generators", OOPSLA 2014; the mixer is Stafford's variant 13) used as a
 * counter-based generator: draw k of a stream is mix(key + (k + 1) * golden), where key =
 * mix(seed ^ a per-distribution salt). So element i never depends on the elements before
 * it, and the integer arrays are the same bytes on every machine. Floats are built with
 * exact double arithmetic except "normal", whose Box-Muller transform calls log, sqrt and
 * cos: different libms may differ in the last bit there.
 *
 *   uniform     integers: every value of the type equally likely; floats: [-1000, 1000)
 *   normal      floats: mean 0, sd 1; integers: round(N(0, 1e6)), clamped to the type,
 *               centred at the middle of the range for unsigned types (2^31, 2^63)
 *   sorted      ascending: element i drawn from the i-th of n equal slices of the range
 *               above (so strictly ascending while n is below the range's size)
 *   reversed    the sorted array backwards
 *   few-unique  each element one of 16 distinct values (themselves drawn as a sorted
 *               array of 16 from another stream)
 */

#define GOLDEN 0x9e3779b97f4a7c15u

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t draw(uint64_t key, uint64_t k)
{
    return mix64(key + (k + 1) * GOLDEN);
}

/* A double in [0, 1) with 53 random bits. */
static double unit(uint64_t x)
{
    return (double)(x >> 11) * 0x1.0p-53;
}

static bool is_float(int dtype)
{
    return dtype == HY_DT_F32 || dtype == HY_DT_F64;
}

/* Stores an integer given as its offset from the type's minimum (0 .. 2^bits - 1). */
static void store_offset(void *data, int dtype, size_t i, uint64_t off)
{
    switch (dtype) {
    case HY_DT_I32: {
        uint32_t u = (uint32_t)off ^ 0x80000000u;
        memcpy((char *)data + i * 4, &u, 4);
        break;
    }
    case HY_DT_U32: {
        uint32_t u = (uint32_t)off;
        memcpy((char *)data + i * 4, &u, 4);
        break;
    }
    case HY_DT_I64: {
        uint64_t u = off ^ 0x8000000000000000u;
        memcpy((char *)data + i * 8, &u, 8);
        break;
    }
    default: /* HY_DT_U64 */
        memcpy((char *)data + i * 8, &off, 8);
        break;
    }
}

/* Stores a double into a float array, keeping it below `below` when rounding to f32 would
 * reach it (the f32 nearest to 999.99999 is 1000). */
static void store_float(void *data, int dtype, size_t i, double v, double below)
{
    if (dtype == HY_DT_F64) {
        memcpy((char *)data + i * 8, &v, 8);
    } else {
        float f = (float)v;
        if ((double)f >= below)
            f = nextafterf((float)below, 0.0f);
        memcpy((char *)data + i * 4, &f, 4);
    }
}

/* Element i of an ascending array of n, as an offset from the type's minimum (integers) or
 * a value in [-1000, 1000) (floats): a random point in the i-th of n equal slices. */
static uint64_t sorted_offset(int dtype, uint64_t key, size_t i, size_t n)
{
    uint64_t span = hy_dtype_size(dtype) == 4 ? UINT32_MAX : UINT64_MAX; /* values - 1 */
    uint64_t w = span / n;
    if (w > 0)
        return (uint64_t)i * w + draw(key, i) % w;
    /* More elements than values (32-bit types, n > 2^32): i/n scaled, non-decreasing since
     * each rounding step is monotonic, and below 2^32 since i/n < 1. */
    return (uint64_t)((double)i / (double)n * 4294967296.0);
}

static double sorted_float(uint64_t key, size_t i, size_t n)
{
    /* i + u < i + 1 <= i + 1 + u', and every step below rounds monotonically, so the
     * results never descend. */
    return -1000.0 + 2000.0 * (((double)i + unit(draw(key, i))) / (double)n);
}

enum dist { D_UNIFORM, D_NORMAL, D_SORTED, D_REVERSED, D_FEW };

static void gen_uniform(void *data, int dtype, size_t n, uint64_t key)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t x = draw(key, i);
        if (is_float(dtype))
            store_float(data, dtype, i, -1000.0 + 2000.0 * unit(x), 1000.0);
        else
            store_offset(data, dtype, i, hy_dtype_size(dtype) == 4 ? x >> 32 : x);
    }
}

static void gen_normal(void *data, int dtype, size_t n, uint64_t key)
{
    for (size_t i = 0; i < n; i++) {
        /* u1 in (0, 1] so log(u1) is finite. */
        double u1 = ((double)(draw(key, 2 * (uint64_t)i) >> 11) + 1.0) * 0x1.0p-53;
        double u2 = unit(draw(key, 2 * (uint64_t)i + 1));
        double z = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
        if (is_float(dtype)) {
            store_float(data, dtype, i, z, INFINITY);
            continue;
        }
        double v = round(z * 1e6);
        switch (dtype) {
        case HY_DT_I32: {
            int32_t x = v < INT32_MIN ? INT32_MIN : v > INT32_MAX ? INT32_MAX : (int32_t)v;
            memcpy((char *)data + i * 4, &x, 4);
            break;
        }
        case HY_DT_U32: {
            v += 2147483648.0;
            uint32_t x = v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
            memcpy((char *)data + i * 4, &x, 4);
            break;
        }
        case HY_DT_I64: {
            /* |z| <= sqrt(-2 ln 2^-53) < 8.6 (u1 >= 2^-53), so |v| < 1e7: no clamp needed. */
            int64_t x = (int64_t)v;
            memcpy((char *)data + i * 8, &x, 8);
            break;
        }
        default: {
            uint64_t x = (uint64_t)(int64_t)v + 0x8000000000000000u;
            memcpy((char *)data + i * 8, &x, 8);
            break;
        }
        }
    }
}

static void gen_sorted(void *data, int dtype, size_t n, uint64_t key, bool reversed)
{
    for (size_t i = 0; i < n; i++) {
        size_t at = reversed ? n - 1 - i : i;
        if (is_float(dtype))
            store_float(data, dtype, at, sorted_float(key, i, n), 1000.0);
        else
            store_offset(data, dtype, at, sorted_offset(dtype, key, i, n));
    }
}

static void gen_few(void *data, int dtype, size_t n, uint64_t key)
{
    enum { FEW = 16 };
    /* The 16 values, one per slice of the range, so they are distinct; f32 fits them all
     * (slices 125 wide). */
    unsigned char vals[FEW * 8];
    uint64_t vkey = mix64(key ^ 0x6a09e667f3bcc909u);
    gen_sorted(vals, dtype, FEW, vkey, false);
    size_t esize = hy_dtype_size(dtype);
    for (size_t i = 0; i < n; i++)
        memcpy((char *)data + i * esize, vals + (draw(key, i) >> 60) * esize, esize);
}

/* The distributions: the one list hybridctl's --dist check, its messages and its --list
 * (the bash completion's words) are read from, through hc_dist_name. */
static const struct {
    const char *name;
    enum dist d;
    uint64_t salt; /* so the distributions of one seed are unrelated */
} dists[] = {
    {"uniform", D_UNIFORM, 0x243f6a8885a308d3u},  {"normal", D_NORMAL, 0x13198a2e03707344u},
    {"sorted", D_SORTED, 0xa4093822299f31d0u},    {"reversed", D_REVERSED, 0xa4093822299f31d0u},
    {"few-unique", D_FEW, 0x082efa98ec4e6c89u},
};

#define NDISTS (sizeof dists / sizeof dists[0])

const char *hc_dist_name(size_t i)
{
    return i < NDISTS ? dists[i].name : NULL;
}

/* "uniform, normal, ... or few-unique", for the sentence that names the valid values. */
static const char *dist_names(char *buf, size_t len)
{
    size_t at = 0;
    if (len == 0)
        return buf;
    buf[0] = '\0';
    for (size_t i = 0; i < NDISTS; i++) {
        const char *sep = i == 0 ? "" : i + 1 == NDISTS ? " or " : ", ";
        int w = snprintf(buf + at, len - at, "%s%s", sep, dists[i].name);
        if (w < 0 || (size_t)w >= len - at)
            break; /* cut short; snprintf left it NUL-terminated */
        at += (size_t)w;
    }
    return buf;
}

int hc_generate(void *data, int dtype, size_t n, const char *dist, uint64_t seed,
                hy_error *err)
{
    size_t esize;
    int rc = hy_check_sort_args(dtype, data, n, &esize, err);
    if (rc)
        return rc;
    size_t which = NDISTS;
    for (size_t i = 0; dist && i < NDISTS; i++)
        if (strcmp(dist, dists[i].name) == 0)
            which = i;
    if (which == NDISTS) {
        char names[128];
        return hy_error_set(err, HY_EINVAL, "unknown distribution '%.40s' (%s)",
                            dist ? dist : "", dist_names(names, sizeof names));
    }
    if (n > SIZE_MAX / esize)
        return hy_error_set(err, HY_ELIMIT, "%zu elements overflow a size", n);
    uint64_t key = mix64(seed ^ dists[which].salt);
    switch (dists[which].d) {
    case D_UNIFORM: gen_uniform(data, dtype, n, key); break;
    case D_NORMAL: gen_normal(data, dtype, n, key); break;
    case D_SORTED: gen_sorted(data, dtype, n, key, false); break;
    case D_REVERSED: gen_sorted(data, dtype, n, key, true); break;
    case D_FEW: gen_few(data, dtype, n, key); break;
    }
    return 0;
}

/* ---- order check ---- */

/* a[i] > a[i+1] in hybridd's order: NaN above everything else, NaNs equal to each other,
 * -0.0 == +0.0 (the plain comparison already says so). */
#define FLOAT_OUT_OF_ORDER(x, y) (isnan(y) ? false : isnan(x) ? true : (x) > (y))

#define CHECK_LOOP(T, BAD)                                                                     \
    do {                                                                                       \
        const T *p = data;                                                                     \
        for (size_t i = 0; i + 1 < n; i++) {                                                   \
            T x = p[i], y = p[i + 1];                                                          \
            if (BAD) {                                                                         \
                if (first_bad)                                                                 \
                    *first_bad = i;                                                            \
                return false;                                                                  \
            }                                                                                  \
        }                                                                                      \
        return true;                                                                           \
    } while (0)

bool hc_is_sorted(const void *data, int dtype, size_t n, size_t *first_bad)
{
    if (n < 2)
        return true;
    if (!data || hy_dtype_size(dtype) == 0) {
        if (first_bad)
            *first_bad = 0;
        return false;
    }
    switch (dtype) {
    case HY_DT_I32: CHECK_LOOP(int32_t, x > y);
    case HY_DT_U32: CHECK_LOOP(uint32_t, x > y);
    case HY_DT_I64: CHECK_LOOP(int64_t, x > y);
    case HY_DT_U64: CHECK_LOOP(uint64_t, x > y);
    case HY_DT_F32: CHECK_LOOP(float, FLOAT_OUT_OF_ORDER(x, y));
    default: CHECK_LOOP(double, FLOAT_OUT_OF_ORDER(x, y));
    }
}
