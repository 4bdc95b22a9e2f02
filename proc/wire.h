/* proc (private): what the parent and a worker say to each other on the worker's socket, and
 * the shared control page each worker has. Both ends are the same binary on the same machine,
 * so fields are native-endian; the magic still catches a stream out of step. */
#ifndef HY_PROC_WIRE_H
#define HY_PROC_WIRE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

#define HY_PW_MAGIC 0x4b524f57u /* "WORK" */
#define HY_PW_CHANNEL_FD 3      /* the worker's socket */
#define HY_PW_CONTROL_FD 4      /* the worker's control page (a memfd) */
#define HY_PW_MAX_FDS 2         /* fds one message may carry */

enum hy_pw_op {
    HY_PW_READY = 1,     /* worker → parent, once, when its engine runs */
    HY_PW_PI = 2,        /* a = seed, b = first, c = count → reply a = hits */
    HY_PW_SORT_PIPE = 3, /* dtype, c = count, then c elements → reply: c sorted elements */
    HY_PW_SORT_SHM = 4,  /* fds: the array memfd, and a scratch memfd of the same size or none;
                          * a = elements each holds, b = first, c = count: sort [b, b + c) of
                          * the array into the same range of the scratch (in place without
                          * one) → reply */
    HY_PW_MERGE_SHM = 5, /* a = output rank, c = output count, d = runs k, then k pairs
                          * (begin, end) in elements of the scratch: merge them into
                          * [a, a + c) of the array, then unmap both → reply */
    HY_PW_RELEASE = 6,   /* unmap what is mapped (after an error or a cancel) → reply */
};

/* Every message, both ways, starts with this; `bytes` of payload follow. */
struct hy_pw_msg {
    uint32_t magic;
    uint16_t op;
    uint16_t dtype;
    int32_t rc;        /* replies: 0 or a negative hy_err */
    uint32_t rsv;
    uint64_t a, b, c, d;
    uint64_t bytes;    /* payload after the header */
    uint64_t ns;       /* replies: the worker's compute time */
    char text[HY_ERROR_MSG_MAX]; /* replies with rc != 0: the sentence */
};

/* One page shared by the parent and a worker: progress out, cancellation in. */
struct hy_pw_control {
    _Atomic uint64_t done;   /* the current request's units done (samples, element passes) */
    _Atomic uint32_t cancel; /* non-zero: stop the current request with HY_ECANCELED */
};

/* Reads or writes exactly len bytes on a worker channel, retrying after signals; 0, or -1
 * at an error or an early end of stream (the peer is gone). Writes never raise SIGPIPE. */
int hy_pw_read_full(int fd, void *p, size_t len);
int hy_pw_write_full(int fd, const void *p, size_t len);

#endif
