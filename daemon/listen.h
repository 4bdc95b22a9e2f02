/* daemon/listen: the listening socket — created at the configured path with its mode and
 * group (refusing to take over a path a live daemon serves), or inherited from systemd's
 * socket activation — and removed on the way out only when it is still the one we made. */
#ifndef HY_DAEMON_LISTEN_H
#define HY_DAEMON_LISTEN_H

#include <stdbool.h>
#include <sys/types.h>

#include "common.h"

typedef struct hy_listener {
    int fd;
    bool owned;      /* we created the socket file (not socket activation) */
    char path[108];
    dev_t dev;       /* the file we created, so we never unlink someone else's */
    ino_t ino;
} hy_listener;

/* Binds and listens at `path` (creating its parent directory when missing), then sets the
 * file's mode and group. A path where a daemon answers is refused (HY_EBUSY); a stale socket
 * file is replaced; anything that is not a socket is left alone (HY_EINVAL). */
int hy_listener_open(hy_listener *l, const char *path, unsigned mode, const char *group,
                     hy_error *err);
/* Takes the socket systemd passed (sd_listen_fds): 0 and l->fd = -1 when there is none. */
int hy_listener_adopt(hy_listener *l, const char *path, hy_error *err);
/* Applies mode and group to the socket file (SIGHUP); a no-op for an inherited socket. */
int hy_listener_set_access(hy_listener *l, unsigned mode, const char *group, hy_error *err);
/* Closes the socket and removes its file if we made it and it is still ours. */
void hy_listener_close(hy_listener *l);

#endif
