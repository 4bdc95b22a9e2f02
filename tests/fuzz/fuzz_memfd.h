/* tests/fuzz: the fuzz input as a file that hybridctl's readers can open by path. */
#ifndef HY_FUZZ_MEMFD_H
#define HY_FUZZ_MEMFD_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

/* Writes the bytes into a new memfd and names it in `path` (/proc/self/fd/N); returns the
 * fd, for the caller to close. Aborts where the kernel refuses: that is no finding. */
static inline int fuzz_memfd(const char *name, const uint8_t *data, size_t size,
                             char path[static 32])
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0)
        abort();
    for (size_t at = 0; at < size;) {
        ssize_t w = write(fd, data + at, size - at);
        if (w <= 0)
            abort();
        at += (size_t)w;
    }
    snprintf(path, 32, "/proc/self/fd/%d", fd);
    return fd;
}

#endif
