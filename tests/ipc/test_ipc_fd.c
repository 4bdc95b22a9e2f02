/* tests/ipc: fd passing — memfds sent with their frame over a socketpair, the seal and size
 * checks, fds where the protocol does not allow them, and no descriptor ever leaking. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ipc.h"

/* Open descriptors of this process (the directory's own fd is counted every time alike). */
static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    cr_assert(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* The number the next open() would get: where the reader's received fd will land. */
static int next_fd_number(void)
{
    int fd = dup(0);
    cr_assert_geq(fd, 0);
    close(fd);
    return fd;
}

static bool fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0 || errno != EBADF;
}

static void pair(int sv[2])
{
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

static hy_frame_header hdr(uint16_t type, uint64_t request)
{
    return (hy_frame_header){.version = HY_IPC_VERSION, .type = type, .request = request};
}

/* A sealed memfd of `bytes` bytes whose byte i is (i * 7 + tag). */
static int sealed_memfd(size_t bytes, uint8_t tag)
{
    int fd;
    void *map;
    hy_error err = {0};
    cr_assert_eq(hy_memfd_create("test", bytes, &fd, &map, &err), 0, "%s", err.msg);
    for (size_t i = 0; i < bytes; i++)
        ((uint8_t *)map)[i] = (uint8_t)(i * 7 + tag);
    hy_memfd_unmap(map, bytes);
    cr_assert_eq(hy_memfd_seal(fd, &err), 0, "%s", err.msg);
    return fd;
}

/* Sends everything queued and reads it all back; returns the frames received (at most max). */
static int exchange(hy_frame_writer *w, hy_frame_reader *r, int sv[2], hy_frame *out, int max,
                    hy_error *err)
{
    int got = 0;
    for (int spins = 0; spins < 1000; spins++) {
        int rc = hy_frame_writer_flush(w, sv[0], err);
        cr_assert(rc == 0 || rc == HY_IPC_INCOMPLETE, "flush: %s", err->msg);
        int n = hy_frame_reader_fill(r, sv[1], err);
        if (n < 0)
            return n;
        while (got < max && (rc = hy_frame_reader_next(r, &out[got], err)) == 0)
            got++;
        if (rc < 0)
            return rc;
        if (hy_frame_writer_pending(w) == 0 && n == HY_IPC_INCOMPLETE)
            return got;
    }
    cr_assert_fail("the exchange never finished");
    return -1;
}

Test(fd, sealed_memfd_arrives_with_its_frame)
{
    int before = count_fds();
    int sv[2];
    pair(sv);
    hy_frame_writer *w;
    hy_frame_reader *r;
    hy_error err = {0};
    cr_assert_eq(hy_frame_writer_new(1 << 20, &w, &err), 0);
    cr_assert_eq(hy_frame_reader_new(HY_IPC_MAX_PAYLOAD, &r, &err), 0);
    int m1 = sealed_memfd(4096, 1), m2 = sealed_memfd(8192, 2), m3 = sealed_memfd(100, 3);
    uint8_t body[16] = {1, 2, 3};
    hy_iov part = {body, sizeof body};
    /* Frames with and without fds, back to back, so each send must stop at the next fd frame. */
    cr_assert_eq(hy_frame_writer_push(w, hdr(HY_MSG_PING, 1), &part, 1, NULL, 0, &err), 0);
    cr_assert_eq(hy_frame_writer_push(w, hdr(HY_MSG_SUBMIT, 2), &part, 1, &m1, 1, &err), 0);
    int two[2] = {m2, m3};
    cr_assert_eq(hy_frame_writer_push(w, hdr(HY_MSG_SUBMIT, 3), &part, 1, two, 2, &err), 0);
    cr_assert_eq(hy_frame_writer_push(w, hdr(HY_MSG_PING, 4), NULL, 0, NULL, 0, &err), 0);
    cr_assert_eq(hy_frame_writer_push(w, hdr(HY_MSG_SUBMIT, 5), NULL, 0, &m1, 1, &err), 0);
    /* The writer holds dups: ours can go now. */
    close(m1);
    close(m2);
    close(m3);

    hy_frame f[5];
    cr_assert_eq(exchange(w, r, sv, f, 5, &err), 5, "%s", err.msg);
    unsigned want_nfds[5] = {0, 1, 2, 0, 1};
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(f[i].h.request, (uint64_t)i + 1);
        cr_assert_eq(f[i].nfds, want_nfds[i], "frame %d", i);
        cr_assert_eq(!!(f[i].h.flags & HY_IPC_F_FDS), want_nfds[i] > 0);
    }
    size_t sizes[4] = {4096, 8192, 100, 4096};
    int *fds[4] = {&f[1].fds[0], &f[2].fds[0], &f[2].fds[1], &f[4].fds[0]};
    uint8_t tags[4] = {1, 2, 3, 1};
    for (int k = 0; k < 4; k++) {
        int fd = *fds[k];
        cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC, "received fds are close-on-exec");
        size_t size = 0;
        cr_assert_eq(hy_memfd_check(fd, sizes[k], &size, &err), 0, "%s", err.msg);
        cr_assert_eq(size, sizes[k]);
        void *map;
        cr_assert_eq(hy_memfd_map(fd, size, &map, &err), 0, "%s", err.msg);
        for (size_t i = 0; i < size; i++)
            cr_assert_eq(((uint8_t *)map)[i], (uint8_t)(i * 7 + tags[k]));
        /* The daemon writes the sorted array back in place; the client sees it. */
        ((uint8_t *)map)[0] = 0xaa;
        hy_memfd_unmap(map, size);
        uint8_t b;
        cr_assert_eq(pread(fd, &b, 1, 0), 1);
        cr_assert_eq(b, 0xaa);
        b = tags[k]; /* frames 1 and 4 carry the same memfd: put the byte back */
        cr_assert_eq(pwrite(fd, &b, 1, 0), 1);
        close(fd);
    }
    hy_frame_writer_free(w);
    hy_frame_reader_free(r);
    close(sv[0]);
    close(sv[1]);
    cr_assert_eq(count_fds(), before, "an fd leaked");
}

Test(fd, check_refuses_unsealed_small_and_non_memfds)
{
    int before = count_fds();
    hy_error err = {0};
    int fd;
    void *map;
    cr_assert_eq(hy_memfd_create("unsealed", 4096, &fd, &map, &err), 0);
    cr_assert_eq(hy_memfd_check(fd, 4096, NULL, &err), HY_EINVAL);
    cr_assert(strstr(err.msg, "not sealed against shrinking and growing"), "%s", err.msg);
    cr_assert_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
    cr_assert_eq(hy_memfd_check(fd, 4096, NULL, &err), HY_EINVAL);
    cr_assert(strstr(err.msg, "not sealed against growing"), "%s", err.msg);
    hy_memfd_unmap(map, 4096);
    close(fd);

    fd = sealed_memfd(100, 0);
    cr_assert_eq(hy_memfd_check(fd, 4096, NULL, &err), HY_EINVAL);
    cr_assert(strstr(err.msg, "holds 100 bytes, the job needs 4096"), "%s", err.msg);
    size_t size;
    cr_assert_eq(hy_memfd_check(fd, 100, &size, &err), 0);
    cr_assert_eq(size, 100);
    /* Sealed: the sender cannot shrink it under the daemon's mapping any more. */
    cr_assert_eq(ftruncate(fd, 10), -1);
    close(fd);

    FILE *t = tmpfile();
    cr_assert(t);
    cr_assert_eq(hy_memfd_check(fileno(t), 0, NULL, &err), HY_EINVAL);
    cr_assert(strstr(err.msg, "not a memfd"), "%s", err.msg);
    fclose(t);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(hy_memfd_check(p[0], 0, NULL, &err), HY_EINVAL);
    cr_assert(strstr(err.msg, "not a memfd"), "%s", err.msg);
    close(p[0]);
    close(p[1]);
    cr_assert_eq(count_fds(), before);
}

Test(fd, frame_announcing_fds_without_any)
{
    int sv[2];
    pair(sv);
    uint8_t h[24];
    hy_frame_header fh = hdr(HY_MSG_SUBMIT, 1);
    fh.flags = HY_IPC_F_FDS;
    hy_frame_header_encode(&fh, h);
    cr_assert_eq(write(sv[0], h, sizeof h), 24);
    hy_frame_reader *r;
    hy_error err = {0};
    cr_assert_eq(hy_frame_reader_new(1000, &r, &err), 0);
    cr_assert_eq(hy_frame_reader_fill(r, sv[1], &err), 24);
    hy_frame f;
    cr_assert_eq(hy_frame_reader_next(r, &f, &err), HY_EPROTO);
    cr_assert(strstr(err.msg, "frame announced fds but none arrived"), "%s", err.msg);
    hy_frame_reader_free(r);
    close(sv[0]);
    close(sv[1]);
}

/* Sends `len` bytes with the fds attached, as a peer that ignores the protocol would. */
static void send_with_fds(int sock, const void *p, size_t len, const int *fds, unsigned n)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * 8)];
    } c;
    memset(&c, 0, sizeof c);
    struct iovec iov = {.iov_base = (void *)p, .iov_len = len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf,
                         .msg_controllen = CMSG_SPACE(sizeof(int) * n)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
    cr_assert_eq(sendmsg(sock, &msg, 0), (ssize_t)len);
}

Test(fd, fd_with_a_frame_that_did_not_announce_it)
{
    int before = count_fds();
    int sv[2];
    pair(sv);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    uint8_t frame[24 + 8] = {0};
    hy_frame_header fh = hdr(HY_MSG_PING, 1);
    fh.length = 8;
    hy_frame_header_encode(&fh, frame);
    send_with_fds(sv[0], frame, sizeof frame, &p[0], 1);
    close(p[0]);
    close(p[1]);
    hy_frame_reader *r;
    hy_error err = {0};
    cr_assert_eq(hy_frame_reader_new(1000, &r, &err), 0);
    int landing = next_fd_number();
    cr_assert_eq(hy_frame_reader_fill(r, sv[1], &err), (int)sizeof frame);
    cr_assert(fd_is_open(landing), "the received fd is where we expect it");
    hy_frame f;
    cr_assert_eq(hy_frame_reader_next(r, &f, &err), HY_EPROTO);
    cr_assert(strstr(err.msg, "no frame announced fds"), "%s", err.msg);
    cr_assert(!fd_is_open(landing), "the stray fd was closed");
    hy_frame_reader_free(r);
    close(sv[0]);
    close(sv[1]);
    cr_assert_eq(count_fds(), before);
}

Test(fd, fd_in_the_middle_of_a_frame)
{
    int before = count_fds();
    int p[2];
    cr_assert_eq(pipe(p), 0);
    uint8_t frame[24 + 40] = {0};
    hy_frame_header fh = hdr(HY_MSG_SUBMIT, 1);
    fh.flags = HY_IPC_F_FDS;
    fh.length = 40;
    hy_frame_header_encode(&fh, frame);
    hy_frame_reader *r;
    hy_error err = {0};
    cr_assert_eq(hy_frame_reader_new(1000, &r, &err), 0);
    /* The frame announced fds, but they came with its 30th byte, not its first. */
    cr_assert_eq(hy_frame_reader_feed(r, frame, 30, NULL, 0, &err), 30);
    cr_assert_eq(hy_frame_reader_feed(r, frame + 30, 34, &p[0], 1, &err), 34);
    hy_frame f;
    cr_assert_eq(hy_frame_reader_next(r, &f, &err), HY_EPROTO);
    cr_assert(strstr(err.msg, "none arrived"), "%s", err.msg);
    hy_frame_reader_free(r);
    close(p[1]);
    cr_assert_eq(count_fds(), before, "the reader closes the fds it was fed");
}

Test(fd, too_many_fds)
{
    int before = count_fds();
    int sv[2];
    pair(sv);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    int five[5] = {p[0], p[0], p[1], p[1], p[0]};
    uint8_t frame[24];
    hy_frame_header fh = hdr(HY_MSG_SUBMIT, 1);
    fh.flags = HY_IPC_F_FDS;
    hy_frame_header_encode(&fh, frame);
    send_with_fds(sv[0], frame, sizeof frame, five, 5);
    hy_frame_reader *r;
    hy_error err = {0};
    cr_assert_eq(hy_frame_reader_new(1000, &r, &err), 0);
    cr_assert_eq(hy_frame_reader_fill(r, sv[1], &err), HY_EPROTO);
    cr_assert(strstr(err.msg, "more than 4 fds"), "%s", err.msg);
    hy_frame f;
    cr_assert_eq(hy_frame_reader_next(r, &f, &err), HY_EPROTO);
    hy_frame_reader_free(r);

    /* The same through feed. */
    cr_assert_eq(hy_frame_reader_new(1000, &r, &err), 0);
    int dups[5];
    for (int i = 0; i < 5; i++)
        dups[i] = dup(p[0]);
    cr_assert_eq(hy_frame_reader_feed(r, frame, 24, dups, 5, &err), HY_EPROTO);
    hy_frame_reader_free(r);
    close(p[0]);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
    cr_assert_eq(count_fds(), before);
}

Test(fd, free_closes_held_fds)
{
    int before = count_fds();
    int sv[2];
    pair(sv);
    hy_frame_writer *w;
    hy_frame_reader *r;
    hy_error err = {0};
    cr_assert_eq(hy_frame_writer_new(1 << 20, &w, &err), 0);
    cr_assert_eq(hy_frame_reader_new(HY_IPC_MAX_PAYLOAD, &r, &err), 0);
    int m = sealed_memfd(64, 0);
    static uint8_t body[100000];
    hy_iov part = {body, sizeof body};
    cr_assert_eq(hy_frame_writer_push(w, hdr(HY_MSG_SUBMIT, 1), &part, 1, &m, 1, &err), 0);
    close(m);
    /* Send part of the frame: the reader holds the fd for a frame not yet complete. */
    int rc = hy_frame_writer_flush(w, sv[0], &err);
    cr_assert(rc == 0 || rc == HY_IPC_INCOMPLETE);
    cr_assert_gt(hy_frame_reader_fill(r, sv[1], &err), 0, "%s", err.msg);
    hy_frame f;
    cr_assert_eq(hy_frame_reader_next(r, &f, &err), HY_IPC_INCOMPLETE);
    hy_frame_reader_free(r);

    /* A writer freed before sending closes its dups. */
    m = sealed_memfd(64, 0);
    cr_assert_eq(hy_frame_writer_push(w, hdr(HY_MSG_SUBMIT, 2), NULL, 0, &m, 1, &err), 0);
    close(m);
    hy_frame_writer_free(w);
    close(sv[0]);
    close(sv[1]);
    cr_assert_eq(count_fds(), before);
}

Test(fd, memfd_create_and_map_errors)
{
    hy_error err = {0};
    int fd;
    void *map;
    cr_assert_eq(hy_memfd_create("x", 0, &fd, &map, &err), HY_EINVAL);
    cr_assert_eq(hy_memfd_seal(-1, &err), HY_ESYS);
    cr_assert(strstr(err.msg, "F_ADD_SEALS"), "%s", err.msg);
    cr_assert_eq(hy_memfd_map(-1, 10, &map, &err), HY_ESYS);
    cr_assert(strstr(err.msg, "mmap"), "%s", err.msg);
    cr_assert_eq(hy_memfd_check(-1, 0, NULL, &err), HY_EINVAL);
    cr_assert(strstr(err.msg, "not a memfd"), "%s", err.msg);
}
