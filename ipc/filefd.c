/* ipc/filefd.c: arrays in the client's own files (array FDS) — the client opens its input
 * file and its output's temporary file with its own rights and passes the two fds; the
 * daemon reads the elements from the input's position and writes the sorted ones at the
 * output's (daemon/jobs.c). Here: whether a pair of fds is safe to take, decided on the
 * event loop without waiting on anything. No memfd is filled, mapped or freed, and the
 * daemon opens no path: the system service's rule holds. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ipc.h"

/* The file systems whose reads and writes the kernel serves itself, from local storage or
 * memory. Not FUSE, nor an overlay or bind mount over it (a user's own process answers those
 * and can keep a reader waiting for good: a daemon executor, its queue behind it); not NFS,
 * CIFS or 9p (a network); not proc, sysfs or cgroupfs (pseudo-files whose handlers a root
 * daemon's write would reach with its own rights); not a memfd (no mount this process sees:
 * a memfd travels as array 2). */
static const char *const LOCAL_FS[] = {"ext2", "ext3",  "ext4", "xfs",      "btrfs",
                                       "f2fs", "tmpfs", "zfs",  "bcachefs", "jfs"};

/* The type of mount `id` in this process's mount table (its mount namespace), or false when
 * the table does not list it. Reading /proc asks no file system anything. */
static bool mount_type(uint64_t id, char *type, size_t cap)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned long long mid;
        const char *sep = strstr(line, " - ");
        if (sscanf(line, "%llu", &mid) != 1 || mid != id || !sep)
            continue;
        char fmt[16];
        snprintf(fmt, sizeof fmt, "%%%zus", cap - 1);
        found = sscanf(sep + 3, fmt, type) == 1;
    }
    fclose(f);
    return found;
}

static bool local_fs(const char *type)
{
    for (size_t i = 0; i < sizeof LOCAL_FS / sizeof LOCAL_FS[0]; i++)
        if (strcmp(type, LOCAL_FS[i]) == 0)
            return true;
    return false;
}

/* One fd: a regular file on a local file system, open the way its role needs. Nothing here
 * waits on a file system: the flags and the position are the fd's own, and statx with
 * AT_STATX_DONT_SYNC answers from what the kernel has cached, even for a remote or FUSE
 * file; the type is checked before anything else touches the file. */
static int check_one(int fd, bool out, uint64_t *off, uint64_t *size, hy_error *err)
{
    const char *what = out ? "output" : "input";
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return hy_error_set(err, HY_EINVAL, "the %s file's fd: fcntl(F_GETFL): %s", what,
                            strerror(errno));
    if (fl & O_PATH)
        return hy_error_set(err, HY_EINVAL, "the %s file was opened with O_PATH, for neither "
                            "reading nor writing", what);
    struct statx st;
    if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_TYPE | STATX_SIZE | STATX_MNT_ID,
              &st) < 0)
        return hy_error_set(err, HY_EINVAL, "the %s file: statx: %s", what, strerror(errno));
    if (!S_ISREG(st.stx_mode))
        return hy_error_set(err, HY_EINVAL, "the %s is not a regular file (file descriptors "
                            "take files; a pipe or a device travels in a memfd)", what);
    char type[64] = "";
    if (!(st.stx_mask & STATX_MNT_ID) || !mount_type(st.stx_mnt_id, type, sizeof type))
        return hy_error_set(err, HY_EINVAL, "the %s file is on a mount the daemon cannot see "
                            "(another mount namespace, or a memfd); send the array in a memfd",
                            what);
    if (!local_fs(type))
        return hy_error_set(err, HY_EINVAL, "the %s file is on %s, not a local file system "
                            "the daemon reads without waiting on another process (ext4, xfs, "
                            "btrfs, tmpfs, ...); send the array in a memfd", what, type);
    int acc = fl & O_ACCMODE;
    if (out ? acc == O_RDONLY : acc == O_WRONLY)
        return hy_error_set(err, HY_EINVAL, "the %s file is not open for %s", what,
                            out ? "writing" : "reading");
    /* pwrite on an O_APPEND file appends wherever it is told to write. */
    if (out && (fl & O_APPEND))
        return hy_error_set(err, HY_EINVAL, "the output file is open with O_APPEND, so the "
                            "array could not go at its position");
    off_t at = lseek(fd, 0, SEEK_CUR);
    if (at < 0)
        return hy_error_set(err, HY_EINVAL, "the %s file has no position: %s", what,
                            strerror(errno));
    *off = (uint64_t)at;
    *size = st.stx_size;
    return 0;
}

int hy_file_array_check(int in, int out, size_t need, hy_file_array *fa, hy_error *err)
{
    hy_file_array a = {.in = in, .out = out};
    uint64_t isize = 0, osize = 0;
    int rc;
    if ((rc = check_one(in, false, &a.in_off, &isize, err)) ||
        (rc = check_one(out, true, &a.out_off, &osize, err)))
        return rc;
    if (a.in_off > (uint64_t)INT64_MAX - need || a.out_off > (uint64_t)INT64_MAX - need)
        return hy_error_set(err, HY_EINVAL, "an array of %zu bytes at positions %" PRIu64
                            " and %" PRIu64 " runs past the largest file offset", need,
                            a.in_off, a.out_off);
    if (isize < a.in_off + need)
        return hy_error_set(err, HY_EINVAL, "the input file holds %" PRIu64 " bytes; the job "
                            "needs %zu from its position %" PRIu64, isize, need, a.in_off);
    *fa = a;
    return 0;
}
