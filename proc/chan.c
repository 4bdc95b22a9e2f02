/* proc (private): moving whole messages over a worker's channel, for both ends. */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wire.h"

int hy_pw_read_full(int fd, void *p, size_t len)
{
    char *c = p;
    while (len > 0) {
        ssize_t r = read(fd, c, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        c += r;
        len -= (size_t)r;
    }
    return 0;
}

int hy_pw_write_full(int fd, const void *p, size_t len)
{
    const char *c = p;
    while (len > 0) {
        ssize_t r = send(fd, c, len, MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        c += r;
        len -= (size_t)r;
    }
    return 0;
}
