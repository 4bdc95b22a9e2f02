/* ipc/reader.c: the incremental frame reader — bytes from a non-blocking socket (or memory) in
 * any split, fds from SCM_RIGHTS matched to the frame whose first byte they came with.
 *
 * How fds are matched. The writer sends a frame's fds with a sendmsg that starts at the frame's
 * first byte, so on the wire they ride on the kernel buffer that begins there. A recvmsg may
 * glue bytes that came before that buffer onto it (Linux only refuses to glue across different
 * credentials), but it stops right after a buffer that carries fds. So what we can know is: the
 * fds arrived with some byte of the range [from, to) that one recvmsg returned, and that range
 * holds at most one fd set. The owner is the frame with HY_IPC_F_FDS whose first byte lies in
 * that range; a set whose range passes without such a frame was sent where it should not be. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ipc.h"

/* The most the reader asks the kernel for when it does not yet know the frame's size. */
#define READ_CHUNK (64u * 1024u)
/* Fd sets waiting for their frame. A caller that drains next() after each fill holds at most
 * two (one for the partial frame at the tail, one just received); the bound keeps a peer that
 * sprays fds from holding the daemon's descriptor table. */
#define MAX_SETS 16u

struct fd_set_in {
    uint64_t from, to; /* stream offsets [from, to) of the bytes they arrived with */
    int fds[HY_IPC_MAX_FDS];
    unsigned n;
};

struct hy_frame_reader {
    uint32_t max_payload;
    uint8_t *buf;
    size_t cap;
    size_t start;  /* first byte not yet returned by next() */
    size_t end;    /* one past the last byte received */
    uint64_t base; /* stream offset of buf[0] */
    struct fd_set_in sets[MAX_SETS];
    unsigned nsets; /* sets[0] is the oldest */
    int broken;     /* the error that broke the stream; every later call repeats it */
    hy_error broken_err;
};

static void close_fds(const int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        close(fds[i]);
}

static void drop_front_set(hy_frame_reader *r)
{
    r->nsets--;
    memmove(&r->sets[0], &r->sets[1], r->nsets * sizeof r->sets[0]);
}

/* Records the first error: the stream is out of step after it, so the caller must close the
 * connection, and repeating the same sentence keeps later calls honest. */
static int fail(hy_frame_reader *r, hy_error *err, int code, const char *why)
{
    r->broken = code;
    hy_error_set(&r->broken_err, code, "%s", why);
    return hy_error_set(err, code, "%s", why);
}

static int fail_with(hy_frame_reader *r, hy_error *err, const hy_error *e)
{
    r->broken = e->code;
    r->broken_err = *e;
    if (err)
        *err = *e;
    return e->code;
}

static int repeat_broken(const hy_frame_reader *r, hy_error *err)
{
    if (err)
        *err = r->broken_err;
    return r->broken;
}

int hy_frame_reader_new(uint32_t max_payload, hy_frame_reader **out, hy_error *err)
{
    if (!out)
        return hy_error_set(err, HY_EINVAL, "no place for the reader");
    if (max_payload > HY_IPC_MAX_PAYLOAD * 16u)
        return hy_error_set(err, HY_EINVAL, "maximum payload %u is above the hard limit %u",
                            (unsigned)max_payload, HY_IPC_MAX_PAYLOAD * 16u);
    hy_frame_reader *r = calloc(1, sizeof *r);
    if (!r)
        return hy_error_set(err, HY_ENOMEM, "out of memory for a frame reader");
    r->max_payload = max_payload;
    *out = r;
    return 0;
}

void hy_frame_reader_free(hy_frame_reader *r)
{
    if (!r)
        return;
    for (unsigned i = 0; i < r->nsets; i++)
        close_fds(r->sets[i].fds, r->sets[i].n);
    free(r->buf);
    free(r);
}

void hy_frame_reader_set_max(hy_frame_reader *r, uint32_t max_payload)
{
    /* Clamped rather than refused: the function cannot fail, and the hard limit is what the
     * buffer's growth is bounded by. */
    r->max_payload = max_payload > HY_IPC_MAX_PAYLOAD * 16u ? HY_IPC_MAX_PAYLOAD * 16u
                                                             : max_payload;
}

/* Makes room at the end of the buffer and returns how many bytes may be received now (0 when
 * complete frames fill it and next() must run first). The buffer only grows to the size of
 * the frame at its start, and only after that frame's header passed its checks. */
static int make_room(hy_frame_reader *r, size_t *room, hy_error *err)
{
    size_t buffered = r->end - r->start;
    size_t want = READ_CHUNK;
    hy_frame_header h;
    if (buffered >= HY_IPC_HEADER &&
        hy_frame_header_decode(r->buf + r->start, buffered, r->max_payload, &h, NULL) == 0 &&
        buffered < HY_IPC_HEADER + (size_t)h.length)
        want = HY_IPC_HEADER + (size_t)h.length - buffered;
    /* Compacting is a memmove of what is buffered: do it when the consumed prefix is at least
     * as large as what must move, or when it is the only way to find the room. */
    if (r->start > 0 && (r->cap - r->end < want || r->start >= buffered)) {
        memmove(r->buf, r->buf + r->start, buffered);
        r->base += r->start;
        r->start = 0;
        r->end = buffered;
    }
    if (r->cap - r->end < want) {
        /* Bounded: one frame plus one read chunk beyond whatever is buffered, and buffered
         * data beyond a frame only exists while next() has complete frames to return. */
        size_t limit = HY_IPC_HEADER + (size_t)r->max_payload + READ_CHUNK;
        size_t cap = r->end + want;
        if (cap < r->cap * 2)
            cap = r->cap * 2; /* geometric, so a large frame costs O(log) reallocations */
        if (cap > limit)
            cap = limit;
        if (cap > r->cap) {
            uint8_t *nb = realloc(r->buf, cap);
            if (!nb)
                return hy_error_set(err, HY_ENOMEM, "out of memory for a %zu-byte frame buffer",
                                    cap);
            r->buf = nb;
            r->cap = cap;
        }
    }
    *room = r->cap - r->end;
    if (*room > INT_MAX)
        *room = INT_MAX; /* the return value of fill is an int */
    return 0;
}

/* Queues fds that arrived with the bytes [from, from + n). */
static int add_set(hy_frame_reader *r, uint64_t from, size_t n, const int *fds,
                   unsigned nfds, hy_error *err)
{
    if (nfds == 0)
        return 0;
    if (nfds > HY_IPC_MAX_FDS) {
        close_fds(fds, nfds);
        char why[96];
        snprintf(why, sizeof why, "%u fds arrived at once; a frame carries at most %u", nfds,
                 HY_IPC_MAX_FDS);
        return fail(r, err, HY_EPROTO, why);
    }
    if (n == 0) {
        close_fds(fds, nfds);
        return fail(r, err, HY_EPROTO, "fds arrived without any byte of a frame");
    }
    if (r->nsets == MAX_SETS) {
        close_fds(fds, nfds);
        return fail(r, err, HY_EPROTO, "fds arrived for too many frames not yet read");
    }
    struct fd_set_in *s = &r->sets[r->nsets++];
    s->from = from;
    s->to = from + n;
    memcpy(s->fds, fds, nfds * sizeof *fds);
    s->n = nfds;
    return 0;
}

static int fill(hy_frame_reader *r, int sock, int flags, hy_error *err)
{
    if (r->broken)
        return repeat_broken(r, err);
    size_t room;
    int rc = make_room(r, &room, err);
    if (rc < 0)
        return rc;
    if (room == 0)
        return hy_error_set(err, HY_EINVAL, "the reader is full of complete frames: call "
                                            "hy_frame_reader_next before filling again");
    /* Room for exactly HY_IPC_MAX_FDS: a peer that sends more gets MSG_CTRUNC (the kernel
     * closes the excess), which we treat as a protocol error. */
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * HY_IPC_MAX_FDS)];
    } cbuf;
    struct iovec iov = {.iov_base = r->buf + r->end, .iov_len = room};
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = cbuf.buf,
        .msg_controllen = sizeof cbuf.buf,
    };
    ssize_t n;
    do
        n = recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return HY_IPC_INCOMPLETE;
        return hy_error_set(err, HY_ESYS, "recvmsg: %s", strerror(errno));
    }
    int fds[HY_IPC_MAX_FDS];
    unsigned nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k && nfds < HY_IPC_MAX_FDS; i++)
            memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
    if (msg.msg_flags & MSG_CTRUNC) {
        close_fds(fds, nfds);
        char why[96];
        snprintf(why, sizeof why, "more than %u fds arrived at once (the excess was lost)",
                 HY_IPC_MAX_FDS);
        return fail(r, err, HY_EPROTO, why);
    }
    uint64_t from = r->base + r->end;
    r->end += (size_t)n;
    rc = add_set(r, from, (size_t)n, fds, nfds, err);
    if (rc < 0)
        return rc;
    return (int)n;
}

int hy_frame_reader_fill(hy_frame_reader *r, int sock, hy_error *err)
{
    return fill(r, sock, MSG_DONTWAIT, err);
}

int hy_frame_reader_fill_wait(hy_frame_reader *r, int sock, hy_error *err)
{
    return fill(r, sock, 0, err);
}

int hy_frame_reader_feed(hy_frame_reader *r, const void *bytes, size_t n, const int *fds,
                         unsigned nfds, hy_error *err)
{
    if (r->broken) {
        close_fds(fds, nfds); /* the reader takes the fds whatever happens */
        return repeat_broken(r, err);
    }
    size_t room;
    int rc = make_room(r, &room, err);
    if (rc < 0) {
        close_fds(fds, nfds);
        return rc;
    }
    if (n == 0 && nfds == 0)
        return 0; /* like fill at end of stream */
    if (room == 0) {
        close_fds(fds, nfds);
        return hy_error_set(err, HY_EINVAL, "the reader is full of complete frames: call "
                                            "hy_frame_reader_next before feeding again");
    }
    size_t take = n < room ? n : room;
    uint64_t from = r->base + r->end;
    if (take)
        memcpy(r->buf + r->end, bytes, take);
    r->end += take;
    rc = add_set(r, from, take, fds, nfds, err);
    if (rc < 0)
        return rc;
    return (int)take;
}

/* Breaks the stream for a set of fds that no frame can own any more. */
static int stale_set(hy_frame_reader *r, hy_error *err)
{
    char why[160];
    snprintf(why, sizeof why,
             "%u fd(s) arrived with stream bytes %llu..%llu, where no frame announced fds",
             r->sets[0].n, (unsigned long long)r->sets[0].from,
             (unsigned long long)r->sets[0].to - 1);
    close_fds(r->sets[0].fds, r->sets[0].n);
    drop_front_set(r);
    return fail(r, err, HY_EPROTO, why);
}

int hy_frame_reader_next(hy_frame_reader *r, hy_frame *f, hy_error *err)
{
    if (r->broken)
        return repeat_broken(r, err);
    uint64_t at = r->base + r->start; /* stream offset of this frame's first byte */
    if (r->nsets && r->sets[0].to <= at)
        return stale_set(r, err);
    size_t buffered = r->end - r->start;
    if (buffered < HY_IPC_HEADER)
        return HY_IPC_INCOMPLETE; /* also keeps a NULL buffer out of pointer arithmetic */
    hy_frame_header h;
    hy_error e = {0};
    int rc = hy_frame_header_decode(r->buf + r->start, buffered, r->max_payload, &h, &e);
    if (rc == HY_IPC_INCOMPLETE)
        return HY_IPC_INCOMPLETE;
    if (rc < 0)
        return fail_with(r, err, &e);
    size_t total = HY_IPC_HEADER + (size_t)h.length;
    if (buffered < total)
        return HY_IPC_INCOMPLETE;

    f->h = h;
    f->nfds = 0;
    if (h.flags & HY_IPC_F_FDS) {
        if (r->nsets == 0 || r->sets[0].from > at)
            return fail(r, err, HY_EPROTO, "frame announced fds but none arrived");
        f->nfds = r->sets[0].n;
        memcpy(f->fds, r->sets[0].fds, f->nfds * sizeof(int));
        drop_front_set(r);
    }
    /* Every frame start up to this frame's has now had its chance: a set whose bytes all lie
     * before the next frame belongs to nobody. */
    if (r->nsets && r->sets[0].to <= at + total) {
        close_fds(f->fds, f->nfds);
        f->nfds = 0;
        return stale_set(r, err);
    }
    f->payload = r->buf + r->start + HY_IPC_HEADER;
    r->start += total;
    return 0;
}
