/* tests/fuzz: libFuzzer target for the frame reader and the message codec. The input is a byte
 * stream, read three times:
 *   1. fed in chunks whose sizes come from the stream itself, a chunk that starts with 'H'
 *      carrying an fd (so fd matching and its errors run); every frame is decoded with
 *      hy_msg_decode, and whatever decodes is encoded again and must decode again;
 *   2. fed whole, with no fds: the reference sequence of frames and the final outcome;
 *   3. fed in chunks of pseudo-random sizes (1..48 bytes, seeded by the input), with no fds:
 *      the frames and the outcome must be exactly those of 2 — a split never changes what the
 *      reader returns. */
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipc.h"

/* Big enough for the largest frame the reader passes (header + HY_IPC_MAX_PAYLOAD). */
static uint8_t out[HY_IPC_HEADER + HY_IPC_MAX_PAYLOAD];
static hy_msg m, again; /* large (rows and devices are arrays): keep them off the stack */

static void close_frame_fds(const hy_frame *f)
{
    for (unsigned i = 0; i < f->nfds; i++)
        close(f->fds[i]);
}

/* Anything hy_msg_decode accepts, hy_msg_encode must write back as a frame that decodes. */
static void round_trip(const hy_frame *f)
{
    hy_error err;
    if (hy_msg_decode(f, &m, &err) != 0)
        return;
    size_t len;
    hy_iov bulk;
    if (hy_msg_encode(&m, out, sizeof out, &len, &bulk, HY_IPC_MAX_PAYLOAD, &err) != 0)
        return;
    if (bulk.len > sizeof out - len)
        abort(); /* encode counted more than any frame may hold */
    if (bulk.len)
        memmove(out + len, bulk.base, bulk.len);
    hy_frame g = *f; /* the same fds: SUBMIT's array place checks them */
    if (hy_frame_header_decode(out, len + bulk.len, HY_IPC_MAX_PAYLOAD, &g.h, &err) != 0)
        abort();
    g.h.flags = f->h.flags;
    if (g.h.type != f->h.type || g.h.request != f->h.request ||
        HY_IPC_HEADER + (size_t)g.h.length != len + bulk.len)
        abort();
    g.payload = out + HY_IPC_HEADER;
    if (hy_msg_decode(&g, &again, &err) != 0)
        abort();
    if (again.type != m.type || again.request != m.request)
        abort();
}

/* What a pass over the stream saw: each frame's header and a hash of its payload (the
 * payload pointer is only valid until the next call on the reader), and how it ended. */
#define MAX_SEEN 512
typedef struct seen {
    unsigned n;
    hy_frame_header h[MAX_SEEN];
    uint64_t payload_hash[MAX_SEEN];
    int end_rc; /* HY_IPC_INCOMPLETE (stream ended between or inside frames) or an error */
    size_t taken;
} seen;
static seen whole, split;

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3u;
    return h;
}

/* Drains complete frames; returns what next() returned last (HY_IPC_INCOMPLETE or < 0). */
static int drain(hy_frame_reader *r, seen *s, bool decode)
{
    hy_frame f;
    int rc;
    while ((rc = hy_frame_reader_next(r, &f, NULL)) == 0) {
        if (f.nfds != 0)
            abort(); /* no fd was ever fed */
        if (f.h.length > HY_IPC_MAX_PAYLOAD)
            abort(); /* the reader's limit */
        if (s->n < MAX_SEEN) {
            s->h[s->n] = f.h;
            s->payload_hash[s->n] = fnv1a(f.payload, f.h.length);
        }
        s->n++;
        if (decode)
            round_trip(&f);
    }
    return rc;
}

/* Feeds the stream with no fds: whole when seed is 0, else in chunks of 1..48 bytes from a
 * xorshift generator seeded with it. Frames are recorded in *s (and decoded when asked). */
static void feed_no_fds(const uint8_t *data, size_t size, seen *s, uint64_t seed, bool decode)
{
    memset(s, 0, offsetof(seen, h));
    s->end_rc = HY_IPC_INCOMPLETE;
    hy_frame_reader *r;
    if (hy_frame_reader_new(HY_IPC_MAX_PAYLOAD, &r, NULL) != 0)
        abort();
    size_t at = 0;
    uint64_t x = seed | 1;
    while (at < size) {
        size_t chunk = size - at;
        if (seed) {
            x ^= x << 13; /* xorshift64 */
            x ^= x >> 7;
            x ^= x << 17;
            chunk = 1 + (size_t)(x % 48);
            if (chunk > size - at)
                chunk = size - at;
        }
        int n = hy_frame_reader_feed(r, data + at, chunk, NULL, 0, NULL);
        if (n < 0) {
            s->end_rc = n;
            break;
        }
        if (n == 0)
            abort(); /* a drained reader always has room */
        at += (size_t)n;
        int rc = drain(r, s, decode);
        if (rc < 0) {
            s->end_rc = rc;
            break;
        }
    }
    s->taken = at;
    hy_frame_reader_free(r);
}

static bool same_header(const hy_frame_header *a, const hy_frame_header *b)
{
    return a->version == b->version && a->type == b->type && a->flags == b->flags &&
           a->length == b->length && a->request == b->request;
}

static void compare_splits(const uint8_t *data, size_t size)
{
    feed_no_fds(data, size, &whole, 0, true);
    feed_no_fds(data, size, &split, fnv1a(data, size), false);
    if (whole.n != split.n || whole.end_rc != split.end_rc)
        abort();
    unsigned n = whole.n < MAX_SEEN ? whole.n : MAX_SEEN;
    for (unsigned i = 0; i < n; i++)
        if (!same_header(&whole.h[i], &split.h[i]) ||
            whole.payload_hash[i] != split.payload_hash[i])
            abort();
    /* A stream that ended cleanly was read to its last byte both ways. */
    if (whole.end_rc == HY_IPC_INCOMPLETE && (whole.taken != size || split.taken != size))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hy_frame_reader *r;
    if (hy_frame_reader_new(HY_IPC_MAX_PAYLOAD, &r, NULL) != 0)
        return 0;
    size_t at = 0;
    int rc = 0;
    while (at < size && rc >= 0) {
        /* Chunk sizes from the data, so the fuzzer explores splits as it mutates bytes. */
        size_t chunk = 1 + (size_t)data[at] * 37 % 257;
        if (chunk > size - at)
            chunk = size - at;
        /* A chunk that starts with what looks like a frame's first byte carries an fd, so the
         * fd matching (and its errors) gets exercised too. */
        int fd = -1;
        if (data[at] == 'H')
            fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        int n = hy_frame_reader_feed(r, data + at, chunk, fd >= 0 ? &fd : NULL, fd >= 0, NULL);
        if (n <= 0)
            break; /* the reader took (and closed) the fd either way */
        at += (size_t)n;
        hy_frame f;
        while ((rc = hy_frame_reader_next(r, &f, NULL)) == 0) {
            round_trip(&f);
            close_frame_fds(&f);
        }
    }
    hy_frame_reader_free(r);
    compare_splits(data, size);
    return 0;
}
