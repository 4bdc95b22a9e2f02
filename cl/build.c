/* cl: building the programs once per device at open, and the binary cache on disk that makes
 * the next open fast. A cache entry is trusted only when its header, key and checksum all
 * match and the driver accepts the binary; anything else is rebuilt from source. */
#include "internal.h"
#include "le.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CACHE_MAGIC "HYCLBIN1"
#define CACHE_HEADER 32u             /* magic, key, payload length, payload checksum */
#define CACHE_MAX (256u << 20)       /* no program binary is near this; a bigger file is junk */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001B3u;
    }
    return h;
}

static uint64_t fnv1a_str(uint64_t h, const char *s)
{
    return fnv1a(h, s, strlen(s) + 1); /* the NUL separates fields */
}

/* What a binary depends on: the device, its driver, the options and the source. */
static uint64_t cache_key(const struct hy_cl_dev *d, const char *src)
{
    uint64_t h = 0xCBF29CE484222325u;
    h = fnv1a_str(h, d->info.platform);
    h = fnv1a_str(h, d->info.name);
    h = fnv1a_str(h, d->info.vendor);
    h = fnv1a_str(h, d->info.driver);
    h = fnv1a_str(h, d->info.version);
    h = fnv1a_str(h, d->options);
    return fnv1a_str(h, src);
}

static int cache_path(const hy_cl *cl, int prog, uint64_t key, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/%s-%016llx.bin", cl->cache_dir, hy_cl_source_names[prog],
                     (unsigned long long)key);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

/* Reads a whole cache file into a new buffer; NULL when absent, unreadable or malformed. */
static unsigned char *cache_read(const char *path, uint64_t key, size_t *len)
{
    unsigned char *buf = NULL, *payload = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)CACHE_HEADER ||
        st.st_size > (off_t)CACHE_MAX)
        goto out;
    size_t size = (size_t)st.st_size;
    buf = malloc(size);
    if (!buf)
        goto out;
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            goto out;
        got += (size_t)r;
    }
    if (memcmp(buf, CACHE_MAGIC, 8) != 0 || get64(buf + 8) != key ||
        get64(buf + 16) != size - CACHE_HEADER ||
        get64(buf + 24) != fnv1a(0xCBF29CE484222325u, buf + CACHE_HEADER, size - CACHE_HEADER))
        goto out;
    payload = malloc(size - CACHE_HEADER);
    if (!payload)
        goto out;
    memcpy(payload, buf + CACHE_HEADER, size - CACHE_HEADER);
    *len = size - CACHE_HEADER;
out:
    free(buf);
    close(fd);
    return payload;
}

/* Creates the directory and its parents; the cache is a convenience, so failure only means
 * no cache. */
static void make_dirs(const char *dir)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return;
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(path, 0755);
            *p = '/';
        }
    mkdir(path, 0755);
}

/* Writes the entry to a temporary file and renames it into place, so a reader never sees
 * half a file and two processes writing at once leave one whole entry. */
static void cache_write(const hy_cl *cl, const char *path, uint64_t key,
                        const unsigned char *bin, size_t len)
{
    make_dirs(cl->cache_dir);
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.XXXXXX", path) >= (int)sizeof tmp)
        return;
    int fd = mkstemp(tmp);
    if (fd < 0)
        return;
    unsigned char head[CACHE_HEADER];
    memcpy(head, CACHE_MAGIC, 8);
    put64(head + 8, key);
    put64(head + 16, len);
    put64(head + 24, fnv1a(0xCBF29CE484222325u, bin, len));
    bool ok = write(fd, head, sizeof head) == (ssize_t)sizeof head;
    for (size_t off = 0; ok && off < len;) {
        ssize_t w = write(fd, bin + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        ok = w > 0;
        off += ok ? (size_t)w : 0;
    }
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0)
        unlink(tmp);
}

/* Tries the cached binary; returns the built program or NULL. */
static cl_program from_cache(struct hy_cl_dev *d, const char *path, uint64_t key)
{
    size_t len = 0;
    unsigned char *bin = cache_read(path, key, &len);
    if (!bin)
        return NULL;
    cl_int rc, status = CL_SUCCESS;
    const unsigned char *bins[1] = {bin};
    cl_program p = clCreateProgramWithBinary(d->ctx, 1, &d->id, &len, bins, &status, &rc);
    free(bin);
    if (rc != CL_SUCCESS || status != CL_SUCCESS) {
        if (p)
            clReleaseProgram(p);
        return NULL;
    }
    if (clBuildProgram(p, 1, &d->id, d->options, NULL, NULL) != CL_SUCCESS) {
        clReleaseProgram(p);
        return NULL;
    }
    return p;
}

/* Sets the device's problem text; a long one is cut, which is what the fixed field wants. */
static void problem(struct hy_cl_dev *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct hy_cl_dev *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->info.problem, sizeof d->info.problem, fmt, ap);
    va_end(ap);
}

/* Keeps the first lines of a failed build's log in the device's problem text. */
static void build_failure(struct hy_cl_dev *d, cl_program p, int prog, const hy_error *e)
{
    char log[HY_ERROR_MSG_MAX] = "";
    size_t need = 0;
    if (clGetProgramBuildInfo(p, d->id, CL_PROGRAM_BUILD_LOG, 0, NULL, &need) == CL_SUCCESS &&
        need > 0) {
        char *full = malloc(need);
        if (full && clGetProgramBuildInfo(p, d->id, CL_PROGRAM_BUILD_LOG, need, full, NULL) ==
                        CL_SUCCESS) {
            full[need - 1] = 0;
            /* One line for a log line: the problem text is shown on one line. */
            for (char *c = full; *c; c++)
                if (*c == '\n' || *c == '\r' || *c == '\t')
                    *c = ' ';
            snprintf(log, sizeof log, "%s", full);
        }
        free(full);
    }
    problem(d, "building %s.cl: %s; build log: %s", hy_cl_source_names[prog], e->msg,
            log[0] ? log : "(empty)");
}

static const char broken_tail[] = "\n#error hybridd test hook: this build fails on purpose\n";

int hy_cl_build_programs(hy_cl *cl, struct hy_cl_dev *d)
{
    bool all_cached = cl->cache_dir != NULL;
    for (int prog = 0; prog < HY_CL_NPROG; prog++) {
        const char *src = hy_cl_sources[prog];
        char *broken = NULL;
        if (cl->test_break_build && prog == HY_CL_PROG_PI) {
            size_t n = strlen(src);
            broken = malloc(n + sizeof broken_tail);
            if (!broken) {
                problem(d, "out of memory for the program source");
                return HY_ENOMEM;
            }
            memcpy(broken, src, n);
            memcpy(broken + n, broken_tail, sizeof broken_tail);
            src = broken;
        }
        uint64_t key = cache_key(d, src);
        char path[4096];
        bool cache = cl->cache_dir && cache_path(cl, prog, key, path, sizeof path) == 0;
        cl_program p = cache ? from_cache(d, path, key) : NULL;
        if (!p) {
            all_cached = false;
            hy_error e = {0};
            cl_int rc;
            p = clCreateProgramWithSource(d->ctx, 1, &src, NULL, &rc);
            if (CL_TRY(rc, &e)) {
                problem(d, "building %s.cl: %s", hy_cl_source_names[prog], e.msg);
                free(broken);
                return HY_EBACKEND;
            }
            if (CL_TRY(clBuildProgram(p, 1, &d->id, d->options, NULL, NULL), &e)) {
                build_failure(d, p, prog, &e);
                clReleaseProgram(p);
                free(broken);
                return HY_EBACKEND;
            }
            size_t len = 0;
            if (cache && clGetProgramInfo(p, CL_PROGRAM_BINARY_SIZES, sizeof len, &len, NULL) ==
                             CL_SUCCESS &&
                len > 0 && len <= CACHE_MAX) {
                unsigned char *bin = malloc(len);
                unsigned char *bins[1] = {bin};
                if (bin && clGetProgramInfo(p, CL_PROGRAM_BINARIES, sizeof bins, bins, NULL) ==
                               CL_SUCCESS)
                    cache_write(cl, path, key, bin, len);
                free(bin);
            }
        }
        free(broken);
        d->prog[prog] = p;
    }
    d->info.from_cache = all_cached;
    return 0;
}
