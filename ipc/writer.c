/* ipc/writer.c: the frame writer — one bounded queue of outgoing bytes for a non-blocking
 * socket, with each frame's fds sent (SCM_RIGHTS) together with that frame's first byte. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ipc.h"

struct fd_set_out {
    uint64_t at; /* stream offset of the first byte of the frame that carries them */
    int fds[HY_IPC_MAX_FDS];
    unsigned n;
};

struct hy_frame_writer {
    size_t max_buffered;
    uint8_t *buf;
    size_t cap;
    size_t start;  /* first byte not yet sent */
    size_t end;    /* one past the last byte queued */
    uint64_t base; /* stream offset of buf[0] */
    struct fd_set_out *sets;
    size_t sets_head, sets_end, sets_cap; /* queue sets[sets_head .. sets_end) */
};

int hy_frame_writer_new(size_t max_buffered, hy_frame_writer **out, hy_error *err)
{
    if (!out || max_buffered < HY_IPC_HEADER)
        return hy_error_set(err, HY_EINVAL, "a writer needs room for at least one header, "
                                            "not %zu bytes", max_buffered);
    hy_frame_writer *w = calloc(1, sizeof *w);
    if (!w)
        return hy_error_set(err, HY_ENOMEM, "out of memory for a frame writer");
    w->max_buffered = max_buffered;
    *out = w;
    return 0;
}

void hy_frame_writer_free(hy_frame_writer *w)
{
    if (!w)
        return;
    for (size_t i = w->sets_head; i < w->sets_end; i++)
        for (unsigned k = 0; k < w->sets[i].n; k++)
            close(w->sets[i].fds[k]);
    free(w->sets);
    free(w->buf);
    free(w);
}

size_t hy_frame_writer_pending(const hy_frame_writer *w)
{
    return w->end - w->start;
}

/* Room for `need` more bytes at the end of the buffer: slide the unsent bytes to the front
 * first (cheap next to a socket write), grow only when that is not enough. */
static int reserve_bytes(hy_frame_writer *w, size_t need, hy_error *err)
{
    if (w->cap - w->end >= need)
        return 0;
    size_t pending = w->end - w->start;
    if (w->start > 0) {
        memmove(w->buf, w->buf + w->start, pending);
        w->base += w->start;
        w->start = 0;
        w->end = pending;
        if (w->cap - w->end >= need)
            return 0;
    }
    size_t cap = w->cap ? w->cap : 4096;
    while (cap - w->end < need)
        cap *= 2; /* need <= max_buffered (checked by the caller), so this ends */
    uint8_t *nb = realloc(w->buf, cap);
    if (!nb)
        return hy_error_set(err, HY_ENOMEM, "out of memory for %zu queued bytes", cap);
    w->buf = nb;
    w->cap = cap;
    return 0;
}

static int reserve_set(hy_frame_writer *w, hy_error *err)
{
    if (w->sets_head > 0 && w->sets_end == w->sets_cap) {
        memmove(w->sets, w->sets + w->sets_head,
                (w->sets_end - w->sets_head) * sizeof *w->sets);
        w->sets_end -= w->sets_head;
        w->sets_head = 0;
    }
    if (w->sets_end < w->sets_cap)
        return 0;
    size_t cap = w->sets_cap ? w->sets_cap * 2 : 4;
    struct fd_set_out *ns = realloc(w->sets, cap * sizeof *ns);
    if (!ns)
        return hy_error_set(err, HY_ENOMEM, "out of memory for queued fds");
    w->sets = ns;
    w->sets_cap = cap;
    return 0;
}

int hy_frame_writer_push(hy_frame_writer *w, hy_frame_header h, const hy_iov *parts,
                         unsigned nparts, const int *fds, unsigned nfds, hy_error *err)
{
    if (nfds > HY_IPC_MAX_FDS)
        return hy_error_set(err, HY_EINVAL, "%u fds for one frame; at most %u", nfds,
                            HY_IPC_MAX_FDS);
    if ((nparts && !parts) || (nfds && !fds))
        return hy_error_set(err, HY_EINVAL, "payload parts or fds missing");
    size_t length = 0;
    for (unsigned i = 0; i < nparts; i++) {
        if (parts[i].len && !parts[i].base)
            return hy_error_set(err, HY_EINVAL, "payload part %u has no bytes", i);
        if (parts[i].len > UINT32_MAX - length)
            return hy_error_set(err, HY_ELIMIT, "a payload over %u bytes does not fit a frame",
                                (unsigned)UINT32_MAX);
        length += parts[i].len;
    }
    size_t total = HY_IPC_HEADER + length;
    size_t pending = w->end - w->start;
    if (total > w->max_buffered - pending) {
        if (pending)
            return hy_error_set(err, HY_ELIMIT,
                                "the peer is not reading: %zu bytes already queued", pending);
        return hy_error_set(err, HY_ELIMIT, "a %zu-byte frame exceeds the writer's limit of %zu",
                            total, w->max_buffered);
    }
    /* Reserve everything before dup()ing, so that no failure path has fds to undo but the
     * dups themselves. */
    int rc = reserve_bytes(w, total, err);
    if (rc == 0 && nfds)
        rc = reserve_set(w, err);
    if (rc < 0)
        return rc;
    struct fd_set_out *s = nfds ? &w->sets[w->sets_end] : NULL;
    for (unsigned i = 0; i < nfds; i++) {
        int d = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
        if (d < 0) {
            int e = errno;
            for (unsigned k = 0; k < i; k++)
                close(s->fds[k]);
            return hy_error_set(err, HY_ESYS, "fcntl(F_DUPFD_CLOEXEC) of fd %d: %s", fds[i],
                                strerror(e));
        }
        s->fds[i] = d;
    }
    if (nfds) {
        s->at = w->base + w->end;
        s->n = nfds;
        w->sets_end++;
        h.flags |= HY_IPC_F_FDS;
    }
    h.length = (uint32_t)length;
    hy_frame_header_encode(&h, w->buf + w->end);
    w->end += HY_IPC_HEADER;
    for (unsigned i = 0; i < nparts; i++) {
        if (parts[i].len)
            memcpy(w->buf + w->end, parts[i].base, parts[i].len);
        w->end += parts[i].len;
    }
    return 0;
}

int hy_frame_writer_flush(hy_frame_writer *w, int sock, hy_error *err)
{
    while (w->start < w->end) {
        uint64_t at = w->base + w->start;
        size_t len = w->end - w->start;
        struct fd_set_out *s = w->sets_head < w->sets_end ? &w->sets[w->sets_head] : NULL;
        bool with_fds = s && s->at == at;
        /* A send stops short of the next frame with fds: its fds must ride with its first
         * byte, and the receiver matches them to at most one frame start per recvmsg. */
        const struct fd_set_out *next = with_fds ? (w->sets_head + 1 < w->sets_end
                                                        ? &w->sets[w->sets_head + 1]
                                                        : NULL)
                                                 : s;
        if (next && next->at - at < len)
            len = (size_t)(next->at - at);
        union {
            struct cmsghdr align;
            char buf[CMSG_SPACE(sizeof(int) * HY_IPC_MAX_FDS)];
        } cbuf;
        struct iovec iov = {.iov_base = w->buf + w->start, .iov_len = len};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
        if (with_fds) {
            memset(&cbuf, 0, sizeof cbuf);
            msg.msg_control = cbuf.buf;
            msg.msg_controllen = CMSG_SPACE(sizeof(int) * s->n);
            struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int) * s->n);
            memcpy(CMSG_DATA(c), s->fds, sizeof(int) * s->n);
        }
        ssize_t n;
        do
            n = sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return HY_IPC_INCOMPLETE;
            return hy_error_set(err, HY_ESYS, "sendmsg: %s", strerror(errno));
        }
        if (with_fds && n > 0) {
            /* The kernel holds its own references now: ours can go. */
            for (unsigned k = 0; k < s->n; k++)
                close(s->fds[k]);
            w->sets_head++;
        }
        w->start += (size_t)n;
    }
    /* Everything went: start over at the front so the buffer never needs a memmove. */
    w->base += w->start;
    w->start = w->end = 0;
    if (w->sets_head == w->sets_end)
        w->sets_head = w->sets_end = 0;
    return 0;
}
