/* tests/fuzz: libFuzzer target for the frame reader and the message codec — the input is a byte
 * stream fed in chunks whose sizes come from the stream itself; every frame is decoded, and
 * whatever decodes is encoded again and must decode again. */
#include <fcntl.h>
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
    return 0;
}
