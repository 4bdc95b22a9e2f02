/* ipc/filefd.c: arrays in the client's own files (array FDS) — the client opens its input
 * file and its output's temporary file with its own rights and passes the two fds; the
 * daemon checks them, reads the elements from the input's position into memory of its own
 * and writes the sorted ones at the output's position. No memfd is filled, mapped or freed,
 * and the daemon opens no path: the system service's rule holds. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "ipc.h"

/* Each step is one pread or pwrite, with a cancel check between: 8 MiB is 1-3 ms of copying
 * here, short enough for a cancel and long enough that the calls cost nothing. */
#define STEP ((size_t)8 << 20)

/* One fd: a regular file the daemon can read (input) or write (output) without waiting on
 * another process. A FIFO, socket or device could block an executor for good, and so could a
 * file on FUSE, whose server is any user's own process. */
static int check_one(int fd, bool out, uint64_t *off, struct stat *st, hy_error *err)
{
    const char *what = out ? "output" : "input";
    if (fstat(fd, st) < 0)
        return hy_error_set(err, HY_EINVAL, "the %s fd %d: fstat: %s", what, fd,
                            strerror(errno));
    if (!S_ISREG(st->st_mode))
        return hy_error_set(err, HY_EINVAL, "the %s fd %d is not a regular file (array fds "
                            "takes files; a pipe or device travels in a memfd)", what, fd);
    struct statfs fs;
    if (fstatfs(fd, &fs) == 0 && fs.f_type == FUSE_SUPER_MAGIC)
        return hy_error_set(err, HY_EINVAL, "the %s fd %d is on a FUSE file system, which "
                            "could stall the daemon; send the array in a memfd", what, fd);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return hy_error_set(err, HY_EINVAL, "the %s fd %d: fcntl(F_GETFL): %s", what, fd,
                            strerror(errno));
    int acc = fl & O_ACCMODE;
    if (out ? acc == O_RDONLY : acc == O_WRONLY)
        return hy_error_set(err, HY_EINVAL, "the %s fd %d is not open for %s", what, fd,
                            out ? "writing" : "reading");
    /* pwrite on an O_APPEND file appends wherever it is told to write. */
    if (out && (fl & O_APPEND))
        return hy_error_set(err, HY_EINVAL, "the output fd %d is open with O_APPEND, so the "
                            "array could not go at its position", fd);
    off_t at = lseek(fd, 0, SEEK_CUR);
    if (at < 0)
        return hy_error_set(err, HY_EINVAL, "the %s fd %d has no position: %s", what, fd,
                            strerror(errno));
    *off = (uint64_t)at;
    return 0;
}

int hy_file_array_check(int in, int out, size_t need, hy_file_array *fa, hy_error *err)
{
    struct stat ist, ost;
    hy_file_array a = {.in = in, .out = out};
    int rc;
    if ((rc = check_one(in, false, &a.in_off, &ist, err)) ||
        (rc = check_one(out, true, &a.out_off, &ost, err)))
        return rc;
    if (a.in_off > (uint64_t)INT64_MAX - need || a.out_off > (uint64_t)INT64_MAX - need)
        return hy_error_set(err, HY_EINVAL, "an array of %zu bytes at positions %" PRIu64
                            " and %" PRIu64 " runs past the largest file offset", need,
                            a.in_off, a.out_off);
    if ((uint64_t)ist.st_size < a.in_off + need)
        return hy_error_set(err, HY_EINVAL, "the input file holds %lld bytes; the job needs "
                            "%zu from its position %" PRIu64, (long long)ist.st_size, need,
                            a.in_off);
    *fa = a;
    return 0;
}

static int stopped(int (*stop)(void *), void *ctx, hy_error *err)
{
    if (stop && stop(ctx))
        return hy_error_set(err, HY_ECANCELED, "cancelled");
    return 0;
}

int hy_file_array_read(const hy_file_array *fa, void *buf, size_t bytes,
                       int (*stop)(void *), void *ctx, hy_error *err)
{
    for (size_t done = 0; done < bytes;) {
        int rc = stopped(stop, ctx, err);
        if (rc)
            return rc;
        size_t step = bytes - done < STEP ? bytes - done : STEP;
        ssize_t r = pread(fa->in, (char *)buf + done, step, (off_t)(fa->in_off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return hy_error_set(err, HY_ESYS, "reading the input file at byte %" PRIu64 ": %s",
                                fa->in_off + done, strerror(errno));
        if (r == 0) /* checked long enough at SUBMIT: someone has truncated it since */
            return hy_error_set(err, HY_EINVAL, "the input file ended %zu bytes into the "
                                "array's %zu; was it truncated?", done, bytes);
        done += (size_t)r;
    }
    return 0;
}

int hy_file_array_write(const hy_file_array *fa, const void *buf, size_t bytes,
                        int (*stop)(void *), void *ctx, hy_error *err)
{
    for (size_t done = 0; done < bytes;) {
        int rc = stopped(stop, ctx, err);
        if (rc)
            return rc;
        size_t step = bytes - done < STEP ? bytes - done : STEP;
        off_t at = (off_t)(fa->out_off + done);
        ssize_t w = pwrite(fa->out, (const char *)buf + done, step, at);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return hy_error_set(err, HY_ESYS, "writing the output file at byte %lld: %s",
                                (long long)at, strerror(errno));
        if (w == 0)
            return hy_error_set(err, HY_ESYS, "writing the output file at byte %lld: nothing "
                                "was written", (long long)at);
        /* Start this step's writeback now: a client that makes the file durable (hybridctl
         * fsyncs before its rename) then waits for the last step only, not for all of it
         * (80 MB: 35-56 ms of fsync cut to 2-5 ms, client/output.c). Only a hint. */
        (void)sync_file_range(fa->out, at, w, SYNC_FILE_RANGE_WRITE);
        done += (size_t)w;
    }
    return 0;
}
