/* ipc-bench: what the wire codec costs — encode and decode of small messages, and of a
 * SUBMIT with a large inline array (which the codec must not copy). A benchmark, not a test:
 * it prints nanoseconds per operation, the median of several rounds. */
#include "ipc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUNDS 7

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Decodes the frame in buf (header and payload, as a reader would hand it over). */
static int decode(const uint8_t *buf, size_t len, hy_msg *m, hy_error *err)
{
    hy_frame f = {0};
    int rc = hy_frame_header_decode(buf, len, UINT32_MAX, &f.h, err);
    if (rc != 0)
        return rc < 0 ? rc : HY_EPROTO;
    f.payload = buf + HY_IPC_HEADER;
    return hy_msg_decode(&f, m, err);
}

/* Median over ROUNDS of the ns per encode+decode of `m`, `iters` times a round. The bulk
 * part (an inline array) is never touched by the codec, so for the decode it is laid after
 * the encoded part once, outside the timing, as a reader would have it. */
static double measure(const hy_msg *m, unsigned iters, size_t bulk_max, double *enc_ns)
{
    size_t cap = 65536 + bulk_max;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return -1;
    double total[ROUNDS], enc[ROUNDS];
    hy_error err = {0};
    size_t len = 0;
    hy_iov bulk = {0};
    if (hy_msg_encode(m, buf, 65536, &len, &bulk, UINT32_MAX, &err) != 0) {
        fprintf(stderr, "ipc-bench: encode: %s\n", err.msg);
        free(buf);
        return -1;
    }
    if (bulk.len)
        memcpy(buf + len, bulk.base, bulk.len);
    static hy_msg out; /* large (fixed arrays for rows and devices): not on the stack */
    for (int r = 0; r < ROUNDS; r++) {
        uint64_t t0 = hy_now_ns();
        for (unsigned i = 0; i < iters; i++)
            hy_msg_encode(m, buf, 65536, &len, &bulk, UINT32_MAX, &err);
        uint64_t t1 = hy_now_ns();
        for (unsigned i = 0; i < iters; i++)
            if (decode(buf, len + bulk.len, &out, &err) != 0) {
                fprintf(stderr, "ipc-bench: decode: %s\n", err.msg);
                free(buf);
                return -1;
            }
        uint64_t t2 = hy_now_ns();
        enc[r] = (double)(t1 - t0) / iters;
        total[r] = (double)(t2 - t1) / iters;
    }
    qsort(enc, ROUNDS, sizeof enc[0], cmp_double);
    qsort(total, ROUNDS, sizeof total[0], cmp_double);
    *enc_ns = enc[ROUNDS / 2];
    free(buf);
    return total[ROUNDS / 2];
}

int main(void)
{
    static hy_msg ping = {.type = HY_MSG_PING, .request = 7, .u.ping.nonce = 42};
    static hy_msg submit = {.type = HY_MSG_SUBMIT, .request = 8};
    submit.u.submit = (hy_msg_submit){.job = HY_JOB_PI, .backend = HY_BACKEND_NATIVE,
                                      .threads = 2, .repeat = 1, .n = 1000000000, .seed = 42};
    static hy_msg error = {.type = HY_MSG_ERROR, .request = 9};
    error.u.error = (hy_msg_error){.code = HY_ELIMIT, .job_id = 3,
                                   .message = {"n is above the limit of 2^40 samples", 36}};
    size_t big = (size_t)8 << 20; /* 1 Mi f64 inline */
    void *array = calloc(1, big);
    static hy_msg sort = {.type = HY_MSG_SUBMIT, .request = 10};
    sort.u.submit = (hy_msg_submit){.job = HY_JOB_SORT, .backend = HY_BACKEND_NATIVE,
                                    .dtype = HY_DT_F64, .threads = 2, .repeat = 1,
                                    .array = HY_ARRAY_INLINE, .n = big / 8,
                                    .inline_data = array, .inline_bytes = big};
    if (!array)
        return 1;
    struct {
        const char *name;
        const hy_msg *m;
        unsigned iters;
        size_t bulk;
    } cases[] = {
        {"PING", &ping, 1000000, 0},
        {"SUBMIT pi", &submit, 1000000, 0},
        {"ERROR with a sentence", &error, 1000000, 0},
        {"SUBMIT sort, 8 MiB inline", &sort, 100000, big},
    };
    printf("%-28s %14s %14s\n", "message", "encode ns", "decode ns");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double enc = 0, dec = measure(cases[i].m, cases[i].iters, cases[i].bulk, &enc);
        if (dec < 0)
            return 1;
        printf("%-28s %14.1f %14.1f\n", cases[i].name, enc, dec);
    }
    free(array);
    return 0;
}
