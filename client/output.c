/* client: where hybridctl's output files go (--output, --plot) — what a path may be, checked
 * before a job runs, and the one writer that honours it.
 *
 * What is at the path decides how it is written:
 *   nothing (or a dangling symlink): a new file, written atomically beside its final name
 *     (a temporary file in the same directory, fsync'd, renamed, the directory fsync'd), with
 *     the mode open(O_CREAT, 0666) would give;
 *   a regular file: replaced atomically the same way, the new file given the old one's mode
 *     and owner first. When that cannot be done faithfully (its directory is not writable,
 *     or this user cannot give a new file that owner or group), it is written in place
 *     (truncated, then written and fsync'd, as `sort -o` does): owner and mode stay, but a
 *     failure half way leaves it half written, and the sentence says so;
 *   a symlink: followed to its final target, which is written as above; the link stays;
 *   a FIFO or a character device (/dev/null, /dev/stdout, a terminal, a named pipe):
 *     written through, opened for writing as `sort -o` does; no temporary file, no rename;
 *   a directory, a socket, a block device, or a path whose directory is missing or cannot be
 *     written: refused, with a sentence, before anything is created.
 * A device that refuses the bytes (/dev/full) is only found out when writing. */
#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

/* Links followed before giving up, as the kernel's own limit (ELOOP after 40). */
#define LINK_HOPS_MAX 40
/* A temporary file's name keeps at most this much of the target's, so that it stays below
 * NAME_MAX with its "." prefix and ".XXXXXX" suffix. */
#define TMP_BASE_MAX 200

enum how {
    HOW_ATOMIC,   /* temporary file beside `target`, then rename */
    HOW_IN_PLACE, /* an existing regular file, truncated and rewritten */
    HOW_THROUGH,  /* a FIFO or character device: opened and written, nothing else */
};

typedef struct plan {
    enum how how;
    char *target;    /* the final name after links (malloc'd); the name written or replaced */
    bool exists;     /* a regular file is there: keep its mode and owner */
    struct stat st;  /* the existing file's, when exists */
    const char *why; /* HOW_IN_PLACE: why it is not replaced atomically */
} plan;

/* "the plot /x/y.svg" or "/x/y.npy": how sentences name the file. */
#define NAME_FMT "%s%s%s"
#define NAME_ARGS(what, path) (what) ? (what) : "", (what) ? " " : "", (path)

static char *dup_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    size_t len = slash == path ? 1 : (size_t)(slash - path);
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, path, len);
        d[len] = '\0';
    }
    return d;
}

/* Follows symlinks at the last component of path until a name that is not a link (or does
 * not exist). Intermediate directories are the kernel's business: the directory part of
 * the answer names the same directory whichever links it goes through. */
static int resolve_links(const char *path, char **out, int *err_no)
{
    char *cur = strdup(path);
    if (!cur) {
        *err_no = ENOMEM;
        return -1;
    }
    for (int hop = 0;; hop++) {
        struct stat st;
        if (lstat(cur, &st) != 0) {
            if (errno == ENOENT)
                break;
            *err_no = errno;
            free(cur);
            return -1;
        }
        if (!S_ISLNK(st.st_mode))
            break;
        if (hop == LINK_HOPS_MAX) {
            *err_no = ELOOP;
            free(cur);
            return -1;
        }
        char link[PATH_MAX];
        ssize_t len = readlink(cur, link, sizeof link - 1);
        if (len < 0 || (size_t)len >= sizeof link - 1) {
            *err_no = len < 0 ? errno : ENAMETOOLONG;
            free(cur);
            return -1;
        }
        link[len] = '\0';
        char *next;
        if (link[0] == '/') {
            next = strdup(link);
        } else {
            char *dir = dup_dirname(cur);
            size_t cap = (dir ? strlen(dir) : 0) + (size_t)len + 2;
            next = dir ? malloc(cap) : NULL;
            if (next)
                snprintf(next, cap, "%s/%s", dir, link);
            free(dir);
        }
        free(cur);
        if (!next) {
            *err_no = ENOMEM;
            return -1;
        }
        cur = next;
    }
    *out = cur;
    return 0;
}

/* Whether a new file made by this process can be given st's owner and group: root can;
 * anyone else only their own uid and a group they are in. */
static bool can_keep_owner(const struct stat *st)
{
    uid_t euid = geteuid();
    if (euid == 0)
        return true;
    if (st->st_uid != euid)
        return false;
    if (st->st_gid == getegid())
        return true;
    int n = getgroups(0, NULL);
    gid_t *groups = n > 0 ? malloc((size_t)n * sizeof *groups) : NULL;
    bool member = false;
    if (groups) {
        n = getgroups(n, groups);
        for (int i = 0; i < n; i++)
            member |= groups[i] == st->st_gid;
        free(groups);
    }
    /* Unknown (no memory) counts as "cannot": writing in place still keeps the owner. */
    return member;
}

/* Checks that `dir` exists and new files can be made in it. */
static int check_dir(const char *path, const char *what, const char *dir, hy_error *err)
{
    struct stat st;
    if (stat(dir, &st) != 0) {
        if (errno == ENOENT)
            return hy_error_set(err, HY_ESYS,
                                "cannot write " NAME_FMT ": the directory %s does not exist",
                                NAME_ARGS(what, path), dir);
        return hy_error_set(err, HY_ESYS, "cannot write " NAME_FMT ": %s: %s",
                            NAME_ARGS(what, path), dir, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode))
        return hy_error_set(err, HY_ESYS, "cannot write " NAME_FMT ": %s is not a directory",
                            NAME_ARGS(what, path), dir);
    if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) != 0)
        return hy_error_set(err, HY_ESYS,
                            "cannot write " NAME_FMT ": cannot create files in %s: %s",
                            NAME_ARGS(what, path), dir, strerror(errno));
    return 0;
}

static void plan_free(plan *p)
{
    free(p->target);
    p->target = NULL;
}

/* Decides how path is written, or refuses it with a sentence. Creates nothing. */
static int make_plan(const char *path, const char *what, plan *p, hy_error *err)
{
    memset(p, 0, sizeof *p);
    if (!path || !*path)
        return hy_error_set(err, HY_EINVAL, "cannot write " NAME_FMT ": an empty file name",
                            NAME_ARGS(what, ""));
    struct stat st;
    bool there = stat(path, &st) == 0;
    if (!there && errno != ENOENT)
        return hy_error_set(err, HY_ESYS, "cannot write " NAME_FMT ": %s",
                            NAME_ARGS(what, path), strerror(errno));
    if (there) {
        const char *kind = S_ISDIR(st.st_mode)    ? "a directory"
                           : S_ISSOCK(st.st_mode) ? "a socket"
                           : S_ISBLK(st.st_mode)  ? "a block device"
                           : S_ISREG(st.st_mode) || S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)
                               ? NULL
                               : "a special file";
        if (kind)
            return hy_error_set(err, HY_EINVAL,
                                "cannot write " NAME_FMT ": it is %s; give a file name",
                                NAME_ARGS(what, path), kind);
        if (faccessat(AT_FDCWD, path, W_OK, AT_EACCESS) != 0)
            return hy_error_set(err, HY_ESYS, "cannot write " NAME_FMT ": %s",
                                NAME_ARGS(what, path), strerror(errno));
        if (!S_ISREG(st.st_mode)) {
            /* Opened by the name given: /dev/stdout's link into /proc must be opened, not
             * read. */
            p->how = HOW_THROUGH;
            if (!(p->target = strdup(path)))
                return hy_error_set(err, HY_ENOMEM, "out of memory");
            return 0;
        }
    }
    int e = 0;
    if (resolve_links(path, &p->target, &e) != 0)
        return hy_error_set(err, HY_ESYS, "cannot write " NAME_FMT ": %s",
                            NAME_ARGS(what, path), strerror(e));
    if (there) {
        struct stat fin;
        p->exists = true;
        p->st = st;
        /* A link that reading cannot follow (one in /proc/self/fd, for a regular file on
         * standard output) names the file only through the kernel: write it by the name
         * given. */
        if (lstat(p->target, &fin) != 0 || fin.st_dev != st.st_dev ||
            fin.st_ino != st.st_ino) {
            free(p->target);
            if (!(p->target = strdup(path)))
                return hy_error_set(err, HY_ENOMEM, "out of memory");
            p->how = HOW_IN_PLACE;
            p->why = "it is reached through /proc";
            return 0;
        }
    }
    char *dir = dup_dirname(p->target);
    if (!dir) {
        plan_free(p);
        return hy_error_set(err, HY_ENOMEM, "out of memory");
    }
    hy_error derr = {0};
    int rc = check_dir(path, what, dir, &derr);
    free(dir);
    if (rc && !there) {
        plan_free(p);
        if (err)
            *err = derr;
        return rc;
    }
    p->how = HOW_ATOMIC;
    if (rc) {
        p->how = HOW_IN_PLACE;
        p->why = "its directory is not writable";
    } else if (there && !can_keep_owner(&st)) {
        p->how = HOW_IN_PLACE;
        p->why = "a new file could not keep its owner";
    }
    return 0;
}

int hc_output_check(const char *path, const char *what, hy_error *err)
{
    if (strcmp(path, HC_STDOUT_PATH) == 0) /* standard output: nothing to decide */
        return 0;
    plan p;
    int rc = make_plan(path, what, &p, err);
    if (rc == 0)
        plan_free(&p);
    return rc;
}

/* Writes are issued in steps of this size when the file will be fsync'd, each step's
 * writeback started at once (sync_file_range), so that the disk takes the file while later
 * steps are still being copied and the closing fsync waits for the last step only: for
 * 80 MB here it cut the fsync from 35-56 ms to 2-5 ms. */
#define FLUSH_STEP ((size_t)8 << 20)

/* One step of chunk c from byte `done`: sendfile from its src_fd while that works (*no_sf
 * once the output refuses it: an O_APPEND file, some devices), write from data otherwise.
 * Returns what write(2) would. */
static ssize_t put_step(int fd, const hc_chunk *c, size_t done, size_t step, bool *no_sf)
{
    if (c->src_fd > 0 && !*no_sf) {
        off_t off = (off_t)done;
        ssize_t r = sendfile(fd, c->src_fd, &off, step);
        if (r >= 0 || (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP))
            return r;
        *no_sf = true;
    }
    return write(fd, (const char *)c->data + done, step);
}

/* flush: the file is fsync'd after this, so its writeback is started step by step. */
static int write_chunks(int fd, const hc_chunk *chunks, size_t nchunks, bool flush)
{
    bool no_sf = false;
    off_t at = 0; /* where this write began in the file, for sync_file_range */
    size_t max_step = flush ? FLUSH_STEP : (size_t)1 << 30;
    for (size_t c = 0; c < nchunks; c++) {
        for (size_t done = 0; done < chunks[c].len;) {
            size_t left = chunks[c].len - done;
            ssize_t w = put_step(fd, &chunks[c], done, left > max_step ? max_step : left,
                                 &no_sf);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                return -1;
            }
            if (w == 0) {
                errno = EIO;
                return -1;
            }
            /* Only a hint: a file system without it is flushed by the fsync all the same. */
            if (flush)
                (void)sync_file_range(fd, at, w, SYNC_FILE_RANGE_WRITE);
            at += w;
            done += (size_t)w;
        }
    }
    return 0;
}

/* The permissions a plain open(O_CREAT, 0666) would give: mkstemp makes 0600. Reading the
 * umask means setting it; hybridctl does this from its main thread only. */
static mode_t default_file_mode(void)
{
    mode_t mask = umask(0);
    umask(mask);
    return 0666 & ~mask;
}

/* Makes a rename durable; a failure here does not undo a complete write, so it is
 * ignored. */
static void sync_dir(const char *dir)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
}

/* A temporary file beside p's target, given the mode and owner the final file is to have:
 * the first half of an atomic write (hc_output_begin). */
static int begin_atomic(const char *path, const char *what, const plan *p, hc_pending *o,
                        hy_error *err)
{
    *o = (hc_pending){.fd = -1, .path = path, .what = what};
    char *dir = dup_dirname(p->target);
    const char *base = strrchr(p->target, '/');
    base = base ? base + 1 : p->target;
    size_t cap = (dir ? strlen(dir) : 0) + TMP_BASE_MAX + 16;
    char *tmp = dir ? malloc(cap) : NULL;
    char *target = tmp ? strdup(p->target) : NULL;
    if (!target) {
        free(tmp);
        free(dir);
        return hy_error_set(err, HY_ENOMEM, "cannot write " NAME_FMT ": out of memory",
                            NAME_ARGS(what, path));
    }
    /* Hidden, beside the target: the rename stays in one file system and directory. */
    snprintf(tmp, cap, "%s/.%.*s.XXXXXX", dir, TMP_BASE_MAX, base);
    /* Nameless until committed where the file system allows it: a job can run for minutes
     * while the daemon writes this file (array fds), and a hybridctl killed meanwhile then
     * leaves nothing behind. Read-write either way. */
    bool unnamed = access("/proc/self/fd", X_OK) == 0; /* commit links it through /proc */
    int fd = unnamed ? open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600) : -1;
    if (fd < 0) {
        unnamed = false;
        fd = mkostemp(tmp, O_CLOEXEC);
    }
    if (fd < 0) {
        int rc = hy_error_set(err, HY_ESYS, "cannot write " NAME_FMT ": creating a temporary "
                              "file in %s: %s", NAME_ARGS(what, path), dir, strerror(errno));
        free(target);
        free(tmp);
        free(dir);
        return rc;
    }
    *o = (hc_pending){.fd = fd, .path = path, .what = what, .tmp = tmp, .dir = dir,
                      .target = target, .unnamed = unnamed};
    const char *step = NULL;
    /* chown first: it clears set-id bits that fchmod then puts back. */
    if (p->exists && fchown(fd, p->st.st_uid, p->st.st_gid) != 0)
        step = "giving the new file the old one's owner";
    else if (fchmod(fd, p->exists ? p->st.st_mode & 07777 : default_file_mode()) != 0)
        step = "fchmod";
    if (!step)
        return 0;
    int rc = hy_error_set(err, HY_ESYS, "cannot write " NAME_FMT ": %s: %s",
                          NAME_ARGS(what, path), step, strerror(errno));
    hc_output_abandon(o);
    return rc;
}

/* An unnamed file gets the temporary name now, to be renamed over the target: linkat cannot
 * replace a name. Through /proc, as AT_EMPTY_PATH needs a capability; where /proc is not
 * mounted the link fails and so does the write, with its sentence. */
static int name_unnamed(hc_pending *o)
{
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", o->fd);
    for (int tries = 0; tries < 100; tries++) {
        char *x = o->tmp + strlen(o->tmp) - 6; /* the XXXXXX, made unique by hand */
        static const char set[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        uint64_t r = hy_now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)tries * 0x9e3779b97f4a7c15u;
        for (int i = 0; i < 6; i++, r /= 62)
            x[i] = set[r % 62];
        if (linkat(AT_FDCWD, proc, AT_FDCWD, o->tmp, AT_SYMLINK_FOLLOW) == 0) {
            o->unnamed = false;
            return 0;
        }
        if (errno != EEXIST)
            return -1;
    }
    return -1;
}

int hc_output_commit(hc_pending *o, hy_error *err)
{
    const char *step = NULL;
    if (fsync(o->fd) != 0)
        step = "fsync";
    else if (o->unnamed && name_unnamed(o) != 0)
        step = "linking the new file into its directory";
    int cfd = o->fd;
    o->fd = -1;
    if (close(cfd) != 0 && !step)
        step = "close";
    if (!step && rename(o->tmp, o->target) != 0)
        step = "rename";
    if (step) {
        int rc = hy_error_set(err, HY_ESYS, "cannot write " NAME_FMT ": %s: %s",
                              NAME_ARGS(o->what, o->path), step, strerror(errno));
        hc_output_abandon(o);
        return rc;
    }
    sync_dir(o->dir);
    free(o->tmp);
    free(o->dir);
    free(o->target);
    *o = (hc_pending){.fd = -1};
    return 0;
}

void hc_output_abandon(hc_pending *o)
{
    if (o->fd >= 0)
        close(o->fd);
    if (o->tmp && !o->unnamed)
        unlink(o->tmp);
    free(o->tmp);
    free(o->dir);
    free(o->target);
    *o = (hc_pending){.fd = -1};
}

static int write_atomic(const char *path, const char *what, const plan *p,
                        const hc_chunk *chunks, size_t nchunks, hy_error *err)
{
    hc_pending o;
    int rc = begin_atomic(path, what, p, &o, err);
    if (rc)
        return rc;
    if (write_chunks(o.fd, chunks, nchunks, true) != 0) {
        rc = hy_error_set(err, HY_ESYS, "cannot write " NAME_FMT ": write: %s",
                          NAME_ARGS(what, path), strerror(errno));
        hc_output_abandon(&o);
        return rc;
    }
    return hc_output_commit(&o, err);
}

/* In place and through: open the existing thing and write. */
static int write_open(const char *path, const char *what, const plan *p,
                      const hc_chunk *chunks, size_t nchunks, hy_error *err)
{
    bool regular = p->how == HOW_IN_PLACE;
    /* No O_CREAT: the thing was there when planned; if it went away, say so. */
    int fd = open(p->target, O_WRONLY | O_CLOEXEC | O_NOCTTY | (regular ? O_TRUNC : 0));
    if (fd < 0)
        return hy_error_set(err, HY_ESYS, "cannot write " NAME_FMT ": %s",
                            NAME_ARGS(what, path), strerror(errno));
    const char *step = NULL;
    if (write_chunks(fd, chunks, nchunks, regular) != 0)
        step = "write";
    else if (regular && fsync(fd) != 0)
        step = "fsync";
    int e = errno;
    if (close(fd) != 0 && !step) {
        step = "close";
        e = errno;
    }
    if (!step)
        return 0;
    if (regular)
        return hy_error_set(err, HY_ESYS,
                            "cannot write " NAME_FMT ": %s: %s (written in place because %s: "
                            "it is now incomplete)",
                            NAME_ARGS(what, path), step, strerror(e), p->why);
    return hy_error_set(err, HY_ESYS, "cannot write " NAME_FMT ": %s: %s",
                        NAME_ARGS(what, path), step, strerror(e));
}

int hc_output_write(const char *path, const char *what, const hc_chunk *chunks,
                    size_t nchunks, hy_error *err)
{
    if (strcmp(path, HC_STDOUT_PATH) == 0) {
        /* Whatever stdio holds goes first, so the bytes keep their order. */
        if (fflush(stdout) != 0 || write_chunks(STDOUT_FILENO, chunks, nchunks, false) != 0)
            return hy_error_set(err, HY_ESYS, "cannot write %s to standard output: %s",
                                what ? what : "the array", strerror(errno));
        return 0;
    }
    plan p;
    int rc = make_plan(path, what, &p, err);
    if (rc)
        return rc;
    rc = p.how == HOW_ATOMIC ? write_atomic(path, what, &p, chunks, nchunks, err)
                             : write_open(path, what, &p, chunks, nchunks, err);
    plan_free(&p);
    return rc;
}

int hc_output_begin(const char *path, const char *what, hc_pending *o, hy_error *err)
{
    *o = (hc_pending){.fd = -1};
    if (strcmp(path, HC_STDOUT_PATH) == 0)
        return 0;
    plan p;
    int rc = make_plan(path, what, &p, err);
    if (rc)
        return rc;
    if (p.how == HOW_ATOMIC)
        rc = begin_atomic(path, what, &p, o, err);
    plan_free(&p);
    return rc;
}
