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

/* The .npy magic, for telling a .npy file from raw values (the header's parser is
 * common/npy.c). */
#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6

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

/* ---- the .npy header: read here, parsed by common/npy.c (hy_npy_prefix, hy_npy_dict), the
 * parser hybridd's MPI sort of .npy paths uses too ---- */

/* The fixed part of a .npy file: the magic, a version taken, and the header's length, checked
 * against the file's size before anything is allocated. Sets *prefix_len (10 or 12 bytes)
 * and *hlen. */
static int read_prefix(int fd, const char *path, size_t fsize, size_t *prefix_len,
                       size_t *hlen, hy_error *err)
{
    unsigned char prefix[HY_NPY_PREFIX_MAX];
    size_t got;
    if (read_full(fd, prefix, fsize < 10 ? fsize : 10, &got) != 0)
        return hy_error_set(err, HY_ESYS, "cannot read %s: %s", path, strerror(errno));
    /* Not .npy at all: perhaps raw values, which hybridctl reads when told their dtype, so
     * its sentence says how (hy_npy_prefix would refuse the magic without the hint). */
    if (got < NPY_MAGIC_LEN || memcmp(prefix, NPY_MAGIC, NPY_MAGIC_LEN) != 0)
        return hy_error_set(err, HY_EINVAL,
                            "%s is not a .npy file: it does not start with \\x93NUMPY (a "
                            "file of raw values is read with its dtype: --input FILE --dtype D, "
                            "FILE not ending in .npy)",
                            path);
    uint64_t at = 0, len = 0;
    int rc = hy_npy_prefix(path, prefix, got, &at, &len, err);
    if (rc == 0 && len == 0 && got == 10 && fsize >= 12) { /* versions 2 and 3: a u32 length */
        size_t more;
        if (read_full(fd, prefix + 10, 2, &more) != 0)
            return hy_error_set(err, HY_ESYS, "cannot read %s: %s", path, strerror(errno));
        got += more;
        rc = hy_npy_prefix(path, prefix, got, &at, &len, err);
    }
    if (rc != 0)
        return rc;
    if (len == 0) /* the file ended before the length field */
        return hy_error_set(err, HY_EINVAL, "%s is truncated: it ends inside the .npy header",
                            path);
    if (len > fsize - at)
        return hy_error_set(err, HY_EINVAL,
                            "%s is truncated: its header length %" PRIu64 " runs past the end "
                            "of the file (%zu bytes)",
                            path, len, fsize);
    *prefix_len = (size_t)at;
    *hlen = (size_t)len;
    return 0;
}

/* The header's hlen bytes into *header (the caller frees it, also on failure). */
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
    return 0;
}

/* What the header describes, if hybridd can sort it (hy_npy_dict). A dtype that is not one of
 * the six is HY_EINVAL here, as every other refusal of an input file is (hc_npy_read's
 * contract, and the EINVAL that hybridctl's --json reports for a bad file); the daemon's MPI
 * path keeps the parser's HY_EDTYPE. */
static int header_array(const char *path, const char *header, size_t hlen, int *dtype,
                        size_t *n, hy_error *err)
{
    uint64_t count = 0;
    int rc = hy_npy_dict(path, header, hlen, dtype, &count, err);
    if (rc == HY_EDTYPE) {
        rc = HY_EINVAL;
        if (err)
            err->code = rc;
    }
    *n = (size_t)count; /* its bytes fit a size_t, so it does */
    return rc;
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
