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

/* Receives one sentence about what would stop hybridd, started by the calling user, from
 * listening (the configuration itself is fine). */
typedef void hy_listener_warn_fn(void *ctx, const char *sentence);

/* What hy_listener_open would check, without creating or binding anything (--check-config):
 * an absolute path that fits, that socket.group exists, that no level of the socket's
 * directory is something else than a directory, that the path is a socket if it exists
 * (HY_EINVAL for each). What depends on who runs it (creating in the directory, membership
 * of the group) goes to warn(ctx, ...) instead. */
int hy_listener_check(const char *path, const char *group, hy_listener_warn_fn *warn,
                      void *ctx, hy_error *err);
/* Binds and listens at `path` (creating every missing level of its directory), then sets the
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
