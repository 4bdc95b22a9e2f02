/* ipc/frame.c: the 24-byte frame header — encoding and the checked decoding every reader and
 * the fuzzer go through. Byte order is written out by hand so the host's endianness never leaks. */
#include <string.h>

#include "ipc.h"
#include "le.h"

void hy_frame_header_encode(const hy_frame_header *h, uint8_t out[HY_IPC_HEADER])
{
    memcpy(out, HY_IPC_MAGIC, 4);
    put16(out + 4, h->version);
    put16(out + 6, h->type);
    put32(out + 8, h->flags);
    put32(out + 12, h->length);
    put64(out + 16, h->request);
}

int hy_frame_header_decode(const uint8_t *buf, size_t len, uint32_t max_payload,
                           hy_frame_header *h, hy_error *err)
{
    /* The order matters: a reader calls this on every partial buffer, so "incomplete" must
     * come first, and the magic before anything else so that a stream that is not ours at
     * all is named as such rather than as a bad version. */
    if (len < HY_IPC_HEADER)
        return HY_IPC_INCOMPLETE;
    if (memcmp(buf, HY_IPC_MAGIC, 4) != 0)
        return hy_error_set(err, HY_EPROTO,
                            "bad frame magic 0x%02x%02x%02x%02x (expected \"HYD1\")", buf[0],
                            buf[1], buf[2], buf[3]);
    hy_frame_header v = {
        .version = get16(buf + 4),
        .type = get16(buf + 6),
        .flags = get32(buf + 8),
        .length = get32(buf + 12),
        .request = get64(buf + 16),
    };
    if (v.version != HY_IPC_VERSION)
        return hy_error_set(err, HY_EVERSION, "frame version %u is not spoken here (only %u)",
                            (unsigned)v.version, HY_IPC_VERSION);
    if (v.flags & ~HY_IPC_F_FDS)
        return hy_error_set(err, HY_EPROTO, "frame flags 0x%x hold unknown bits 0x%x",
                            (unsigned)v.flags, (unsigned)(v.flags & ~HY_IPC_F_FDS));
    if (v.length > max_payload)
        return hy_error_set(err, HY_ELIMIT,
                            "frame length %u exceeds the maximum payload of %u bytes",
                            (unsigned)v.length, (unsigned)max_payload);
    *h = v;
    return 0;
}
