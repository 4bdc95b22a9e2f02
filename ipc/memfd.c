/* ipc/memfd.c: arrays in sealed memfds — created and sealed by the client, checked and mapped
 * by the daemon. The seals are what make mapping a peer's fd safe: without SHRINK the peer
 * could truncate it under us and turn our next access into SIGBUS. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ipc.h"

int hy_memfd_create(const char *name, size_t bytes, int *fd, void **map, hy_error *err)
{
    if (!fd || !map || bytes == 0)
        return hy_error_set(err, HY_EINVAL, "a memfd needs a size above 0 and places for "
                                            "the fd and the mapping");
    if ((uint64_t)bytes > (uint64_t)INT64_MAX)
        return hy_error_set(err, HY_ELIMIT, "a memfd of %zu bytes is too large", bytes);
    int f = memfd_create(name ? name : "hybridd", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (f < 0)
        return hy_error_set(err, HY_ESYS, "memfd_create: %s", strerror(errno));
    if (ftruncate(f, (off_t)bytes) < 0) {
        int e = errno;
        close(f);
        return hy_error_set(err, HY_ESYS, "ftruncate of a memfd to %zu bytes: %s", bytes,
                            strerror(e));
    }
    void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
    if (m == MAP_FAILED) {
        int e = errno;
        close(f);
        return hy_error_set(err, HY_ESYS, "mmap of a %zu-byte memfd: %s", bytes, strerror(e));
    }
    /* Mapping an array's pages costs about a microsecond per 4 KiB page each time it is
     * mapped and unmapped (14-21 ms and 6-18 ms for 80 MB here): the daemon pays it on every
     * job, outside the timed sort. Where the kernel lets shmem use huge pages on request
     * (transparent_hugepage/shmem_enabled = advise), the pages this client writes become
     * 2 MiB ones, and every mapping of them 512 times cheaper; elsewhere this is a no-op. */
#ifdef MADV_HUGEPAGE
    (void)madvise(m, bytes, MADV_HUGEPAGE);
#endif
    *fd = f;
    *map = m;
    return 0;
}

int hy_memfd_seal(int fd, hy_error *err)
{
    /* SEAL_SEAL too: seals cannot be lifted anyway, but without it the client could still add
     * F_SEAL_WRITE after the check and break the daemon's in-place write of the result. */
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
        return hy_error_set(err, HY_ESYS, "fcntl(F_ADD_SEALS) on fd %d: %s", fd,
                            strerror(errno));
    return 0;
}

int hy_memfd_check(int fd, size_t need, size_t *size, hy_error *err)
{
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0) {
        /* EINVAL is what a file that is not a memfd (or shmem) answers; name that case
         * plainly, any other errno as the failed call. */
        if (errno == EINVAL)
            return hy_error_set(err, HY_EINVAL, "fd %d is not a memfd", fd);
        return hy_error_set(err, HY_EINVAL, "fd %d is not a memfd: fcntl(F_GET_SEALS): %s", fd,
                            strerror(errno));
    }
    if (!(seals & F_SEAL_SHRINK) || !(seals & F_SEAL_GROW))
        return hy_error_set(err, HY_EINVAL, "memfd %d is not sealed against %s", fd,
                            !(seals & F_SEAL_SHRINK) && !(seals & F_SEAL_GROW)
                                ? "shrinking and growing"
                            : !(seals & F_SEAL_SHRINK) ? "shrinking"
                                                       : "growing");
    if (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE))
        return hy_error_set(err, HY_EINVAL,
                            "memfd %d is sealed against writing; the sorted array goes back "
                            "into it", fd);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return hy_error_set(err, HY_ESYS, "fstat of memfd %d: %s", fd, strerror(errno));
    if (st.st_size < 0 || (uint64_t)st.st_size < (uint64_t)need)
        return hy_error_set(err, HY_EINVAL, "memfd %d holds %lld bytes, the job needs %zu", fd,
                            (long long)st.st_size, need);
    if ((uint64_t)st.st_size > SIZE_MAX)
        return hy_error_set(err, HY_ELIMIT, "memfd %d of %lld bytes cannot be mapped here", fd,
                            (long long)st.st_size);
    if (size)
        *size = (size_t)st.st_size;
    return 0;
}

int hy_memfd_map(int fd, size_t bytes, void **map, hy_error *err)
{
    if (!map || bytes == 0)
        return hy_error_set(err, HY_EINVAL, "a memfd mapping needs a size above 0");
    /* MAP_POPULATE: the array's pages are in memory already (the client wrote them); taking
     * their page-table entries in one call costs far less than a fault per page in the
     * sort's first pass (measured on 10^8 f32 in docs/daemon.md). */
    void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (m == MAP_FAILED)
        return hy_error_set(err, HY_ESYS, "mmap of %zu bytes of memfd %d: %s", bytes, fd,
                            strerror(errno));
    *map = m;
    return 0;
}

void hy_memfd_unmap(void *map, size_t bytes)
{
    /* munmap fails only for a range that was never mapped: nothing to report to anyone. */
    if (map && bytes)
        (void)munmap(map, bytes);
}
