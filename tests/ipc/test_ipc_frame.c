/* tests/ipc: the frame layer — header bytes (golden), header checks, the incremental reader fed
 * in every split, and the writer and reader over a non-blocking socketpair with partial writes. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ipc.h"

/* ---- a deterministic generator: splitmix64 ---- */

static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

/* ---- header ---- */

/* PING, request 0x0102030405060708, 16-byte payload; written out by hand from the table in
 * ipc.h, so that a change of field order or byte order shows here. docs/protocol.md shows the
 * same bytes. */
static const uint8_t golden_ping[24] = {
    0x48, 0x59, 0x44, 0x31, /* "HYD1" */
    0x01, 0x00,             /* version 1 */
    0x03, 0x00,             /* type 3 = PING */
    0x00, 0x00, 0x00, 0x00, /* flags */
    0x10, 0x00, 0x00, 0x00, /* length 16 */
    0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* request */
};

/* SUBMIT with fds, request 2^64-1, length 0x00012345. */
static const uint8_t golden_submit_fds[24] = {
    0x48, 0x59, 0x44, 0x31, 0x01, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x45, 0x23, 0x01, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
};

Test(frame_header, golden_encode)
{
    uint8_t out[24];
    hy_frame_header h = {.version = 1, .type = HY_MSG_PING, .length = 16,
                         .request = 0x0102030405060708u};
    hy_frame_header_encode(&h, out);
    cr_assert_arr_eq(out, golden_ping, 24);
    hy_frame_header s = {.version = 1, .type = HY_MSG_SUBMIT, .flags = HY_IPC_F_FDS,
                         .length = 0x12345, .request = UINT64_MAX};
    hy_frame_header_encode(&s, out);
    cr_assert_arr_eq(out, golden_submit_fds, 24);
}

Test(frame_header, golden_decode)
{
    hy_frame_header h;
    hy_error err = {0};
    cr_assert_eq(hy_frame_header_decode(golden_ping, 24, 16, &h, &err), 0, "%s", err.msg);
    cr_assert_eq(h.version, 1);
    cr_assert_eq(h.type, HY_MSG_PING);
    cr_assert_eq(h.flags, 0);
    cr_assert_eq(h.length, 16);
    cr_assert_eq(h.request, 0x0102030405060708u);
    cr_assert_eq(hy_frame_header_decode(golden_submit_fds, 24, HY_IPC_MAX_PAYLOAD, &h, &err), 0);
    cr_assert_eq(h.flags, HY_IPC_F_FDS);
    cr_assert_eq(h.length, 0x12345);
    cr_assert_eq(h.request, UINT64_MAX);
}

Test(frame_header, round_trip)
{
    uint64_t seed = 7;
    for (int i = 0; i < 1000; i++) {
        uint64_t a = mix(&seed), b = mix(&seed);
        hy_frame_header h = {.version = HY_IPC_VERSION, .type = (uint16_t)a,
                             .flags = (uint32_t)(a >> 16) & HY_IPC_F_FDS,
                             .length = (uint32_t)(a >> 32) % (HY_IPC_MAX_PAYLOAD + 1),
                             .request = b};
        uint8_t buf[24];
        hy_frame_header_encode(&h, buf);
        hy_frame_header d;
        cr_assert_eq(hy_frame_header_decode(buf, 24, HY_IPC_MAX_PAYLOAD, &d, NULL), 0);
        cr_assert(h.version == d.version && h.type == d.type && h.flags == d.flags &&
                  h.length == d.length && h.request == d.request);
    }
}

Test(frame_header, every_truncation_is_incomplete)
{
    hy_frame_header h;
    for (size_t n = 0; n < 24; n++) {
        cr_assert_eq(hy_frame_header_decode(golden_ping, n, 16, &h, NULL), HY_IPC_INCOMPLETE,
                     "%zu bytes", n);
        /* Even a prefix that is already wrong waits for the whole header. */
        uint8_t bad[24];
        memset(bad, 0xee, sizeof bad);
        cr_assert_eq(hy_frame_header_decode(bad, n, 16, &h, NULL), HY_IPC_INCOMPLETE);
    }
}

static int decode_modified(size_t off, uint8_t value, uint32_t max, hy_error *err)
{
    uint8_t b[24];
    memcpy(b, golden_ping, 24);
    b[off] = value;
    hy_frame_header h;
    return hy_frame_header_decode(b, 24, max, &h, err);
}

Test(frame_header, bad_fields)
{
    hy_error err = {0};
    cr_assert_eq(decode_modified(0, 'h', 16, &err), HY_EPROTO);
    cr_assert(strstr(err.msg, "magic"), "%s", err.msg);
    cr_assert_eq(decode_modified(3, '2', 16, &err), HY_EPROTO);
    cr_assert_eq(decode_modified(4, 2, 16, &err), HY_EVERSION);
    cr_assert(strstr(err.msg, "version 2"), "%s", err.msg);
    cr_assert_eq(decode_modified(5, 1, 16, &err), HY_EVERSION); /* version 257 */
    cr_assert_eq(decode_modified(4, 0, 16, &err), HY_EVERSION);
    cr_assert_eq(decode_modified(8, 0x2, 16, &err), HY_EPROTO);
    cr_assert(strstr(err.msg, "flags 0x2"), "%s", err.msg);
    cr_assert_eq(decode_modified(11, 0x80, 16, &err), HY_EPROTO);
    cr_assert_eq(decode_modified(8, 0x1, 16, &err), 0); /* HY_IPC_F_FDS is known */
    cr_assert_eq(decode_modified(12, 17, 16, &err), HY_ELIMIT);
    cr_assert(strstr(err.msg, "length 17"), "%s", err.msg);
    cr_assert_eq(decode_modified(15, 0xff, HY_IPC_MAX_PAYLOAD * 16, &err), HY_ELIMIT);
    cr_assert_eq(decode_modified(12, 16, 16, &err), 0); /* exactly the maximum */
    /* The type is not the frame layer's business. */
    cr_assert_eq(decode_modified(6, 0xee, 16, &err), 0);
    /* Order: the magic is named before anything else, the version before flags and length. */
    uint8_t b[24];
    memcpy(b, golden_ping, 24);
    b[0] = 0;
    b[4] = 9;
    b[8] = 0xf0;
    b[12] = 0xff;
    hy_frame_header h;
    cr_assert_eq(hy_frame_header_decode(b, 24, 16, &h, &err), HY_EPROTO);
    cr_assert(strstr(err.msg, "magic"));
    b[0] = 'H';
    cr_assert_eq(hy_frame_header_decode(b, 24, 16, &h, &err), HY_EVERSION);
    b[4] = 1;
    cr_assert_eq(hy_frame_header_decode(b, 24, 16, &h, &err), HY_EPROTO);
    cr_assert(strstr(err.msg, "flags"));
    b[8] = 0;
    cr_assert_eq(hy_frame_header_decode(b, 24, 16, &h, &err), HY_ELIMIT);
}

/* Every single-byte corruption of the header is refused or decodes to what the bytes say. */
Test(frame_header, every_byte_corruption)
{
    for (size_t off = 0; off < 24; off++)
        for (int v = 0; v < 256; v++) {
            uint8_t b[24];
            memcpy(b, golden_ping, 24);
            b[off] = (uint8_t)v;
            hy_frame_header h;
            hy_error err = {0};
            int rc = hy_frame_header_decode(b, 24, HY_IPC_MAX_PAYLOAD, &h, &err);
            if (rc == 0) {
                uint8_t again[24];
                hy_frame_header_encode(&h, again);
                cr_assert_arr_eq(again, b, 24);
            } else {
                cr_assert(rc == HY_EPROTO || rc == HY_EVERSION || rc == HY_ELIMIT);
                cr_assert_eq(err.code, rc);
                cr_assert(err.msg[0]);
            }
        }
}

/* ---- a stream of frames ---- */

typedef struct {
    hy_frame_header h;
    uint8_t *payload;
} want_frame;

typedef struct {
    want_frame *f;
    size_t nf;
    uint8_t *bytes;
    size_t len;
} stream;

static void stream_build(stream *s, const uint32_t *sizes, size_t n, uint64_t seed)
{
    s->f = calloc(n, sizeof *s->f);
    s->nf = n;
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += HY_IPC_HEADER + sizes[i];
    s->bytes = malloc(total);
    s->len = total;
    cr_assert(s->f && s->bytes);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        want_frame *w = &s->f[i];
        w->h = (hy_frame_header){.version = HY_IPC_VERSION, .type = (uint16_t)(1 + i % 14),
                                 .length = sizes[i], .request = mix(&seed)};
        w->payload = malloc(sizes[i] ? sizes[i] : 1);
        for (uint32_t k = 0; k < sizes[i]; k++)
            w->payload[k] = (uint8_t)mix(&seed);
        hy_frame_header_encode(&w->h, s->bytes + at);
        memcpy(s->bytes + at + HY_IPC_HEADER, w->payload, sizes[i]);
        at += HY_IPC_HEADER + sizes[i];
    }
}

static void stream_free(stream *s)
{
    for (size_t i = 0; i < s->nf; i++)
        free(s->f[i].payload);
    free(s->f);
    free(s->bytes);
}

static void check_frame(const stream *s, size_t i, const hy_frame *f)
{
    cr_assert_lt(i, s->nf, "more frames than were sent");
    const want_frame *w = &s->f[i];
    cr_assert_eq(f->h.type, w->h.type, "frame %zu", i);
    cr_assert_eq(f->h.request, w->h.request, "frame %zu", i);
    cr_assert_eq(f->h.length, w->h.length, "frame %zu", i);
    cr_assert_eq(f->h.flags, 0);
    cr_assert_eq(f->nfds, 0);
    cr_assert(w->h.length == 0 || memcmp(f->payload, w->payload, w->h.length) == 0,
              "frame %zu payload", i);
}

/* Feeds `chunk` bytes, then drains next(); returns the count of frames checked so far. */
static size_t feed_and_drain(hy_frame_reader *r, const stream *s, const uint8_t *p, size_t n,
                             size_t got)
{
    hy_error err = {0};
    while (n > 0) {
        int rc = hy_frame_reader_feed(r, p, n, NULL, 0, &err);
        cr_assert_gt(rc, 0, "feed: %d %s", rc, err.msg);
        p += rc;
        n -= (size_t)rc;
        hy_frame f;
        while ((rc = hy_frame_reader_next(r, &f, &err)) == 0)
            check_frame(s, got++, &f);
        cr_assert_eq(rc, HY_IPC_INCOMPLETE, "next: %d %s", rc, err.msg);
    }
    return got;
}

static const uint32_t big_sizes[] = {0, 1, 7, 4096, 100000, 0, 16, 3, 100000, 8, 0};
static const uint32_t small_sizes[] = {0, 1, 7, 40, 0};

Test(frame_reader, one_byte_at_a_time)
{
    stream s;
    stream_build(&s, big_sizes, sizeof big_sizes / sizeof *big_sizes, 1);
    hy_frame_reader *r;
    cr_assert_eq(hy_frame_reader_new(HY_IPC_MAX_PAYLOAD, &r, NULL), 0);
    size_t got = 0;
    for (size_t i = 0; i < s.len; i++)
        got = feed_and_drain(r, &s, s.bytes + i, 1, got);
    cr_assert_eq(got, s.nf);
    hy_frame_reader_free(r);
    stream_free(&s);
}

Test(frame_reader, every_two_way_split)
{
    stream s;
    stream_build(&s, small_sizes, sizeof small_sizes / sizeof *small_sizes, 2);
    for (size_t cut = 0; cut <= s.len; cut++) {
        hy_frame_reader *r;
        cr_assert_eq(hy_frame_reader_new(64, &r, NULL), 0);
        size_t got = feed_and_drain(r, &s, s.bytes, cut, 0);
        got = feed_and_drain(r, &s, s.bytes + cut, s.len - cut, got);
        cr_assert_eq(got, s.nf, "cut at %zu", cut);
        hy_frame_reader_free(r);
    }
    stream_free(&s);
}

Test(frame_reader, random_chunks)
{
    stream s;
    stream_build(&s, big_sizes, sizeof big_sizes / sizeof *big_sizes, 3);
    uint64_t seed = 42;
    for (int round = 0; round < 50; round++) {
        hy_frame_reader *r;
        cr_assert_eq(hy_frame_reader_new(HY_IPC_MAX_PAYLOAD, &r, NULL), 0);
        size_t got = 0;
        /* Chunks from 1 byte to about a frame and a half, mostly small. */
        size_t limit = round % 3 == 0 ? 64 : round % 3 == 1 ? 5000 : 150000;
        for (size_t at = 0; at < s.len;) {
            size_t c = 1 + (size_t)(mix(&seed) % limit);
            if (c > s.len - at)
                c = s.len - at;
            got = feed_and_drain(r, &s, s.bytes + at, c, got);
            at += c;
        }
        cr_assert_eq(got, s.nf, "round %d", round);
        hy_frame_reader_free(r);
    }
    stream_free(&s);
}

Test(frame_reader, whole_stream_at_once_and_unknown_types)
{
    stream s;
    stream_build(&s, big_sizes, sizeof big_sizes / sizeof *big_sizes, 4);
    /* Types the protocol does not know yet still frame: hy_msg_decode refuses them. */
    s.f[2].h.type = 0xbeef;
    hy_frame_header_encode(&s.f[2].h, s.bytes + 2 * HY_IPC_HEADER + 1);
    hy_frame_reader *r;
    cr_assert_eq(hy_frame_reader_new(HY_IPC_MAX_PAYLOAD, &r, NULL), 0);
    cr_assert_eq(feed_and_drain(r, &s, s.bytes, s.len, 0), s.nf);
    hy_frame_reader_free(r);
    stream_free(&s);
}

Test(frame_reader, length_above_max)
{
    uint32_t sizes[] = {10, 1001, 5};
    stream s;
    stream_build(&s, sizes, 3, 5);
    hy_frame_reader *r;
    hy_error err = {0};
    cr_assert_eq(hy_frame_reader_new(1000, &r, NULL), 0);
    /* Only the header of the big frame: the error must not wait for (or allocate) its body. */
    cr_assert_eq(hy_frame_reader_feed(r, s.bytes, 34 + 24, NULL, 0, &err), 58);
    hy_frame f;
    cr_assert_eq(hy_frame_reader_next(r, &f, &err), 0);
    cr_assert_eq(hy_frame_reader_next(r, &f, &err), HY_ELIMIT);
    cr_assert(strstr(err.msg, "1001"), "%s", err.msg);
    /* The stream is broken for good. */
    memset(&err, 0, sizeof err);
    cr_assert_eq(hy_frame_reader_next(r, &f, &err), HY_ELIMIT);
    cr_assert(strstr(err.msg, "1001"), "%s", err.msg);
    cr_assert_eq(hy_frame_reader_feed(r, s.bytes, 4, NULL, 0, &err), HY_ELIMIT);
    hy_frame_reader_free(r);

    /* Raising the limit (after WELCOME) lets it through. */
    cr_assert_eq(hy_frame_reader_new(1000, &r, NULL), 0);
    hy_frame_reader_set_max(r, 2000);
    cr_assert_eq(feed_and_drain(r, &s, s.bytes, s.len, 0), 3);
    hy_frame_reader_free(r);
    stream_free(&s);
}

Test(frame_reader, bad_magic_mid_stream)
{
    uint32_t sizes[] = {3, 3};
    stream s;
    stream_build(&s, sizes, 2, 6);
    s.bytes[27] = 'X';
    hy_frame_reader *r;
    hy_error err = {0};
    cr_assert_eq(hy_frame_reader_new(1000, &r, NULL), 0);
    cr_assert_eq(hy_frame_reader_feed(r, s.bytes, s.len, NULL, 0, &err), (int)s.len);
    hy_frame f;
    cr_assert_eq(hy_frame_reader_next(r, &f, &err), 0);
    cr_assert_eq(hy_frame_reader_next(r, &f, &err), HY_EPROTO);
    cr_assert(strstr(err.msg, "magic"), "%s", err.msg);
    hy_frame_reader_free(r);
    stream_free(&s);
    cr_assert_eq(hy_frame_reader_new(HY_IPC_MAX_PAYLOAD * 16 + 1, &r, &err), HY_EINVAL);
}

Test(frame_reader, payload_pointer_is_8_aligned)
{
    uint32_t sizes[] = {8, 16, 0, 24};
    stream s;
    stream_build(&s, sizes, 4, 7);
    hy_frame_reader *r;
    cr_assert_eq(hy_frame_reader_new(1000, &r, NULL), 0);
    cr_assert_eq(hy_frame_reader_feed(r, s.bytes, s.len, NULL, 0, NULL), (int)s.len);
    hy_frame f;
    while (hy_frame_reader_next(r, &f, NULL) == 0)
        cr_assert_eq((uintptr_t)f.payload % 8, 0);
    hy_frame_reader_free(r);
    stream_free(&s);
}

/* ---- writer and reader over a socketpair ---- */

static void nonblocking_pair(int sv[2], int sndbuf)
{
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    /* A small send buffer so that flush meets a full socket many times. */
    cr_assert_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf), 0);
}

Test(frame_writer, socketpair_partial_writes)
{
    enum { NFRAMES = 60 };
    uint32_t sizes[NFRAMES];
    uint64_t seed = 9;
    size_t total = 0;
    for (int i = 0; i < NFRAMES; i++) {
        sizes[i] = i % 7 == 0 ? 0 : (uint32_t)(mix(&seed) % 200000);
        total += sizes[i];
    }
    cr_assert_gt(total, 4u << 20);
    stream s;
    stream_build(&s, sizes, NFRAMES, 10);
    int sv[2];
    nonblocking_pair(sv, 16384);
    hy_frame_writer *w;
    hy_frame_reader *r;
    hy_error err = {0};
    cr_assert_eq(hy_frame_writer_new(64u << 20, &w, &err), 0);
    cr_assert_eq(hy_frame_reader_new(HY_IPC_MAX_PAYLOAD, &r, &err), 0);
    for (int i = 0; i < NFRAMES; i++) {
        /* Two parts, split unevenly, as hy_msg_push does with a body and an inline array. */
        uint32_t cut = sizes[i] / 3;
        hy_iov parts[2] = {{s.f[i].payload, cut}, {s.f[i].payload + cut, sizes[i] - cut}};
        hy_frame_header h = s.f[i].h;
        h.length = 12345; /* push sets it from the parts */
        cr_assert_eq(hy_frame_writer_push(w, h, parts, 2, NULL, 0, &err), 0, "%s", err.msg);
    }
    cr_assert_eq(hy_frame_writer_pending(w), s.len);
    size_t got = 0;
    int fulls = 0;
    while (got < s.nf) {
        int rc = hy_frame_writer_flush(w, sv[0], &err);
        cr_assert(rc == 0 || rc == HY_IPC_INCOMPLETE, "flush: %d %s", rc, err.msg);
        fulls += rc == HY_IPC_INCOMPLETE;
        int n = hy_frame_reader_fill(r, sv[1], &err);
        cr_assert(n > 0 || n == HY_IPC_INCOMPLETE, "fill: %d %s", n, err.msg);
        hy_frame f;
        while ((rc = hy_frame_reader_next(r, &f, &err)) == 0)
            check_frame(&s, got++, &f);
        cr_assert_eq(rc, HY_IPC_INCOMPLETE, "%s", err.msg);
    }
    cr_assert_eq(hy_frame_writer_pending(w), 0);
    cr_assert_gt(fulls, 10, "the socket was never full: partial writes went untested");
    cr_assert_eq(hy_frame_writer_flush(w, sv[0], &err), 0);
    /* End of stream reads as 0. */
    close(sv[0]);
    cr_assert_eq(hy_frame_reader_fill(r, sv[1], &err), 0);
    close(sv[1]);
    hy_frame_writer_free(w);
    hy_frame_reader_free(r);
    stream_free(&s);
}

Test(frame_writer, limit)
{
    hy_frame_writer *w;
    hy_error err = {0};
    cr_assert_eq(hy_frame_writer_new(1000, &w, &err), 0);
    uint8_t junk[500] = {0};
    hy_iov part = {junk, sizeof junk};
    hy_frame_header h = {.version = HY_IPC_VERSION, .type = HY_MSG_RESULT};
    cr_assert_eq(hy_frame_writer_push(w, h, &part, 1, NULL, 0, &err), 0);
    cr_assert_eq(hy_frame_writer_push(w, h, &part, 1, NULL, 0, &err), HY_ELIMIT);
    cr_assert(strstr(err.msg, "not reading: 524 bytes already queued"), "%s", err.msg);
    cr_assert_eq(hy_frame_writer_pending(w), 524);
    /* A frame that fits the room left still goes. */
    part.len = 1000 - 524 - 24;
    cr_assert_eq(hy_frame_writer_push(w, h, &part, 1, NULL, 0, &err), 0);
    cr_assert_eq(hy_frame_writer_pending(w), 1000);
    hy_frame_writer_free(w);

    cr_assert_eq(hy_frame_writer_new(100, &w, &err), 0);
    part.len = 200;
    cr_assert_eq(hy_frame_writer_push(w, h, &part, 1, NULL, 0, &err), HY_ELIMIT);
    cr_assert(strstr(err.msg, "exceeds the writer's limit"), "%s", err.msg);
    int fds[5] = {0, 0, 0, 0, 0};
    cr_assert_eq(hy_frame_writer_push(w, h, NULL, 0, fds, 5, &err), HY_EINVAL);
    hy_frame_writer_free(w);
}

Test(frame_writer, broken_pipe)
{
    int sv[2];
    nonblocking_pair(sv, 16384);
    close(sv[1]);
    hy_frame_writer *w;
    hy_error err = {0};
    cr_assert_eq(hy_frame_writer_new(1000, &w, &err), 0);
    hy_frame_header h = {.version = HY_IPC_VERSION, .type = HY_MSG_PING};
    cr_assert_eq(hy_frame_writer_push(w, h, NULL, 0, NULL, 0, &err), 0);
    /* MSG_NOSIGNAL: an error, not a SIGPIPE that would kill the daemon. */
    cr_assert_eq(hy_frame_writer_flush(w, sv[0], &err), HY_ESYS);
    cr_assert(strstr(err.msg, "sendmsg"), "%s", err.msg);
    close(sv[0]);
    hy_frame_writer_free(w);
}
