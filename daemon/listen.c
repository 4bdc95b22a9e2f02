/* daemon/listen: the listening socket, standalone or socket-activated. */
#include "listen.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#define SUN_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)

static int make_addr(const char *path, struct sockaddr_un *a, hy_error *err)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    if (path[0] != '/')
        return hy_error_set(err, HY_EINVAL, "socket path %s is not absolute", path);
    if (strlen(path) >= sizeof a->sun_path)
        return hy_error_set(err, HY_EINVAL, "socket path %s is longer than %zu bytes", path,
                            sizeof a->sun_path - 1);
    memcpy(a->sun_path, path, strlen(path) + 1);
    return 0;
}

/* Whether a daemon answers at `a`: a connect that succeeds means the path is live. */
static bool someone_listens(const struct sockaddr_un *a)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool live = connect(fd, (const struct sockaddr *)a, sizeof *a) == 0;
    close(fd);
    return live;
}

/* socket.group by name: start-up, SIGHUP and --check-config all look it up here. */
static int lookup_group(const char *group, gid_t *gid, hy_error *err)
{
    struct group gr, *res = NULL;
    char buf[16384]; /* a group with many members has a long member list */
    int e = getgrnam_r(group, &gr, buf, sizeof buf, &res);
    if (!res)
        return hy_error_set(err, HY_EINVAL, "socket group %s: %s", group,
                            e ? strerror(e) : "no such group");
    *gid = gr.gr_gid;
    return 0;
}

/* Private to the user, except root's, which others must be able to search to reach the
 * socket (/run/hybridd). Every level a socket path needs is made with it. */
static mode_t dir_mode(void)
{
    return geteuid() == 0 ? 0755 : 0700;
}

/* The directory part of `path` (which make_addr has checked is absolute and fits). */
static void socket_dir(const char *path, char *dir, size_t cap)
{
    snprintf(dir, cap, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0'; /* "/x.sock" lives in "/" */
    else if (slash)
        *slash = '\0';
}

/* Like mkdir -p: every missing level of `dir`, each with dir_mode(). */
static int make_dirs(const char *dir, hy_error *err)
{
    char p[SUN_PATH_MAX];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (s[-1] != '/' && mkdir(p, dir_mode()) != 0) {
            int e = errno;
            struct stat st;
            if (e != EEXIST)
                return hy_error_set(err, HY_ESYS, "cannot create the socket's directory %s: %s",
                                    p, strerror(e));
            if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
                return hy_error_set(err, HY_EINVAL, "the socket's directory %s: %s is not a "
                                    "directory", dir, p);
        }
        *s = c;
        if (!c)
            return 0;
    }
}

int hy_listener_check(const char *path, const char *group, hy_listener_warn_fn *warn,
                      void *ctx, hy_error *err)
{
    struct sockaddr_un a;
    char dir[SUN_PATH_MAX], p[SUN_PATH_MAX], last[SUN_PATH_MAX] = "/", msg[HY_ERROR_MSG_MAX];
    struct stat st;
    int rc;
    unsigned uid = (unsigned)geteuid();
    if ((rc = make_addr(path, &a, err)))
        return rc;
    gid_t gid = (gid_t)-1;
    if (group && group[0] && (rc = lookup_group(group, &gid, err)))
        return rc;
    /* chown to a group needs root or membership (start-up's chown would fail). */
    if (gid != (gid_t)-1 && uid != 0 && gid != getegid()) {
        int n = getgroups(0, NULL);
        gid_t *mine = n > 0 ? calloc((size_t)n, sizeof *mine) : NULL;
        bool member = false;
        if (mine && (n = getgroups(n, mine)) > 0)
            for (int i = 0; i < n; i++)
                member |= mine[i] == gid;
        free(mine);
        if (!member) {
            snprintf(msg, sizeof msg, "uid %u is not in the socket's group %s: hybridd started "
                     "by this user could not give the socket that group", uid, group);
            warn(ctx, msg);
        }
    }

    /* Walk the socket's directory from the root: an existing level must be a directory (for
     * anyone); the deepest one that exists must let this user create in it. */
    socket_dir(path, dir, sizeof dir);
    snprintf(p, sizeof p, "%s", dir);
    bool missing = false;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (s[-1] != '/') {
            if (stat(p, &st) != 0) {
                if (errno != ENOENT) {
                    snprintf(msg, sizeof msg, "cannot look into %s as uid %u: %s", p, uid,
                             strerror(errno));
                    warn(ctx, msg);
                    return 0;
                }
                missing = true;
                break;
            }
            if (!S_ISDIR(st.st_mode))
                return hy_error_set(err, HY_EINVAL, "socket.path %s: %s is not a directory",
                                    path, p);
            snprintf(last, sizeof last, "%s", p);
        }
        *s = c;
        if (!c)
            break;
    }
    /* Only the deepest level that exists: what is missing below it is created from there. */
    if (access(last, W_OK | X_OK) != 0) {
        snprintf(msg, sizeof msg, "uid %u cannot create %s in %s (%s): hybridd started by this "
                 "user could not listen on %s", uid, missing ? "the socket's directory" :
                 "the socket", last, strerror(errno), path);
        warn(ctx, msg);
    }
    if (!missing && lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
        return hy_error_set(err, HY_EINVAL, "socket.path %s exists and is not a socket; "
                            "hybridd will not touch it", path);
    return 0;
}

int hy_listener_set_access(hy_listener *l, unsigned mode, const char *group, hy_error *err)
{
    if (!l->owned)
        return 0; /* systemd's SocketMode= and SocketGroup= decide */
    if (group && group[0]) {
        gid_t gid;
        int rc = lookup_group(group, &gid, err);
        if (rc)
            return rc;
        if (chown(l->path, (uid_t)-1, gid) != 0)
            return hy_error_set(err, HY_ESYS, "chown %s to group %s: %s", l->path, group,
                                strerror(errno));
    }
    if (chmod(l->path, (mode_t)mode) != 0)
        return hy_error_set(err, HY_ESYS, "chmod %04o %s: %s", mode, l->path, strerror(errno));
    return 0;
}

int hy_listener_open(hy_listener *l, const char *path, unsigned mode, const char *group,
                     hy_error *err)
{
    struct sockaddr_un a;
    int rc;
    memset(l, 0, sizeof *l);
    l->fd = -1;
    if ((rc = make_addr(path, &a, err)))
        return rc;
    snprintf(l->path, sizeof l->path, "%s", path);

    /* The parent directory: the default /tmp/hybridd-UID, a fresh $XDG_RUNTIME_DIR child or a
     * configured path may not exist yet; every missing level is created. */
    char dir[sizeof a.sun_path];
    socket_dir(path, dir, sizeof dir);
    if ((rc = make_dirs(dir, err)))
        return rc;

    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return hy_error_set(err, HY_EINVAL,
                                "%s exists and is not a socket; not touching it", path);
        if (someone_listens(&a))
            return hy_error_set(err, HY_EBUSY,
                                "%s is in use: another hybridd is serving there", path);
        if (unlink(path) != 0)
            return hy_error_set(err, HY_ESYS, "cannot remove the stale socket %s: %s", path,
                                strerror(errno));
    }

    l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l->fd < 0)
        return hy_error_set(err, HY_ESYS, "socket: %s", strerror(errno));
    /* Born private; the configured mode is applied once the group is right, so there is no
     * moment at which the wrong group could connect. */
    mode_t old = umask(0177);
    int b = bind(l->fd, (const struct sockaddr *)&a, sizeof a);
    int e = errno;
    umask(old);
    if (b != 0) {
        rc = hy_error_set(err, e == EADDRINUSE ? HY_EBUSY : HY_ESYS, "bind %s: %s", path,
                          strerror(e));
        goto fail;
    }
    l->owned = true;
    if (stat(path, &st) == 0) {
        l->dev = st.st_dev;
        l->ino = st.st_ino;
    }
    if ((rc = hy_listener_set_access(l, mode, group, err)))
        goto fail;
    if (listen(l->fd, SOMAXCONN) != 0) {
        rc = hy_error_set(err, HY_ESYS, "listen %s: %s", path, strerror(errno));
        goto fail;
    }
    return 0;
fail:
    hy_listener_close(l);
    return rc;
}

int hy_listener_adopt(hy_listener *l, const char *path, hy_error *err)
{
    memset(l, 0, sizeof *l);
    l->fd = -1;
    snprintf(l->path, sizeof l->path, "%s", path);
    int n = sd_listen_fds(1);
    if (n < 0)
        return hy_error_set(err, HY_ESYS, "sd_listen_fds: %s", strerror(-n));
    if (n == 0)
        return 0;
    if (n > 1)
        return hy_error_set(err, HY_EINVAL,
                            "systemd passed %d sockets; hybridd listens on exactly one", n);
    int fd = SD_LISTEN_FDS_START;
    if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0)
        return hy_error_set(err, HY_EINVAL,
                            "the socket systemd passed is not a listening Unix stream socket");
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
        return hy_error_set(err, HY_ESYS, "fcntl on the inherited socket: %s", strerror(errno));
    struct sockaddr_un a;
    socklen_t alen = sizeof a;
    if (getsockname(fd, (struct sockaddr *)&a, &alen) == 0 && alen > sizeof(sa_family_t) &&
        a.sun_path[0] == '/')
        snprintf(l->path, sizeof l->path, "%.*s", (int)sizeof a.sun_path, a.sun_path);
    l->fd = fd;
    return 0;
}

void hy_listener_close(hy_listener *l)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    struct stat st;
    /* Only our own file: if it was replaced (by an admin, or a daemon started after we were
     * told to stop), it is not ours to delete. */
    if (l->owned && lstat(l->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino)
        unlink(l->path);
    l->owned = false;
}
