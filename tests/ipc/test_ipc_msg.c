/* tests/ipc/test_ipc_msg.c: the message codec — round trips, golden bytes written by hand from
 * the layouts in ipc.h, every truncation and single-byte change of them, and bad values. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ipc.h"

/* ---- helpers ---- */

/* Decoding a RESULT or DEVICES_REPLY fills tens of KiB: keep the messages off the stack. */
static hy_msg m1, m2;

/* Hex bytes, spaces and '|' between them ignored; "00*93" is the byte 00 written 93 times
 * (the long NUL padding of the device records). A repeat ends with a space: adjacent string
 * literals would otherwise run its count into the next byte. */
/* STATUS_REPLY's body as this build sends it: the first layout's 136 bytes and a 16-byte
 * pair for each backend past the fourth (152 with five backends). */
#define STATUS_BODY (136u + 16u * (HY_BACKEND_COUNT - 4))

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    while (*s) {
        if (*s == ' ' || *s == '\n' || *s == '|') {
            s++;
            continue;
        }
        unsigned v;
        cr_assert(sscanf(s, "%2x", &v) == 1, "bad hex at \"%s\"", s);
        s += 2;
        unsigned long times = 1;
        if (*s == '*') {
            char *end;
            times = strtoul(s + 1, &end, 10);
            cr_assert(end != s + 1 && times > 0, "bad repeat at \"%s\"", s);
            s = end;
        }
        for (unsigned long k = 0; k < times; k++) {
            cr_assert(n < cap);
            out[n++] = (uint8_t)v;
        }
    }
    return n;
}

/* Decodes the frame in bytes[0..len) as a reader would hand it over: HY_IPC_INCOMPLETE when
 * the header or the payload it announces is not all there. */
static int decode_bytes(const uint8_t *bytes, size_t len, unsigned nfds, hy_msg *m, hy_error *err)
{
    hy_frame f;
    memset(&f, 0, sizeof f);
    int rc = hy_frame_header_decode(bytes, len, HY_IPC_MAX_PAYLOAD, &f.h, err);
    if (rc)
        return rc;
    if (len - HY_IPC_HEADER < f.h.length)
        return HY_IPC_INCOMPLETE;
    f.payload = bytes + HY_IPC_HEADER;
    f.nfds = nfds;
    for (unsigned i = 0; i < nfds; i++)
        f.fds[i] = 100 + (int)i; /* never used by the codec */
    if (nfds)
        f.h.flags |= HY_IPC_F_FDS;
    return hy_msg_decode(&f, m, err);
}

/* Decodes from an exactly sized heap copy, so ASan sees any read past the end. */
static int decode_copy(const uint8_t *bytes, size_t len, unsigned nfds, hy_msg *m, hy_error *err)
{
    uint8_t *c = malloc(len ? len : 1);
    cr_assert(c);
    memcpy(c, bytes, len);
    int rc = decode_bytes(c, len, nfds, m, err);
    /* m may point into c: callers that keep m use decode_bytes on their own buffer */
    free(c);
    return rc;
}

/* Encodes into out (header, body, variable data, then the bulk appended). */
static size_t encode_all(const hy_msg *m, uint8_t *out, size_t cap)
{
    size_t len = 0;
    hy_iov bulk;
    hy_error err = {0};
    int rc = hy_msg_encode(m, out, cap, &len, &bulk, HY_IPC_MAX_PAYLOAD, &err);
    cr_assert_eq(rc, 0, "encode: %s", err.msg);
    cr_assert_leq(len + bulk.len, cap);
    if (bulk.len)
        memcpy(out + len, bulk.base, bulk.len);
    return len + bulk.len;
}

static void expect_error(int rc, int code, const hy_error *err)
{
    cr_expect_eq(rc, code, "got %d (%s), want %d (%s): %s", rc, hy_err_name(rc), code,
                 hy_err_name(code), err->msg);
    cr_expect_eq(err->code, rc);
    cr_expect_gt(strlen(err->msg), 0u, "no sentence for code %d", rc);
}

static hy_str S(const char *s)
{
    return (hy_str){s, (uint32_t)strlen(s)};
}

static void expect_str(hy_str got, const char *want, uint32_t len)
{
    cr_assert_eq(got.len, len);
    if (len)
        cr_assert(memcmp(got.p, want, len) == 0);
}

/* ---- round trips ---- */

/* Encode, decode from the same bytes; m2 holds the decoded message (pointing into buf). */
static uint8_t rt_buf[HY_IPC_HEADER + 64 * 1024 + 4096];
static size_t round_trip(const hy_msg *m, unsigned nfds)
{
    size_t len = encode_all(m, rt_buf, sizeof rt_buf);
    hy_error err = {0};
    memset(&m2, 0xA5, sizeof m2); /* stale bytes must not leak into the result */
    int rc = decode_bytes(rt_buf, len, nfds, &m2, &err);
    cr_assert_eq(rc, 0, "decode %s: %s", hy_msg_type_name(m->type), err.msg);
    cr_assert_eq(m2.type, m->type);
    cr_assert_eq(m2.request, m->request);
    return len;
}

Test(msg, type_names)
{
    cr_expect_str_eq(hy_msg_type_name(HY_MSG_HELLO), "HELLO");
    cr_expect_str_eq(hy_msg_type_name(HY_MSG_DEVICES_REPLY), "DEVICES_REPLY");
    cr_expect_str_eq(hy_msg_type_name(HY_MSG_JOBS), "JOBS");
    cr_expect_str_eq(hy_msg_type_name(HY_MSG_JOBS_REPLY), "JOBS_REPLY");
    cr_expect_null(hy_msg_type_name(0));
    cr_expect_str_eq(hy_msg_type_name(HY_MSG_MODEL_REPLY), "MODEL_REPLY");
    cr_expect_str_eq(hy_msg_type_name(HY_MSG_RANKS), "RANKS");
    cr_expect_str_eq(hy_msg_type_name(HY_MSG_RANKS_REPLY), "RANKS_REPLY");
    cr_expect_null(hy_msg_type_name(HY_MSG_RANKS_REPLY + 1));
    cr_expect_null(hy_msg_type_name(-1));
}

Test(msg, err_names)
{
    /* Every code has its own name; the wire carries them, so the table must not lag. */
    static const struct {
        int code;
        const char *name;
    } codes[] = {
        {HY_OK, "OK"},
        {HY_EINVAL, "EINVAL"},
        {HY_ENOMEM, "ENOMEM"},
        {HY_ECANCELED, "ECANCELED"},
        {HY_ELIMIT, "ELIMIT"},
        {HY_EDTYPE, "EDTYPE"},
        {HY_ESYS, "ESYS"},
        {HY_EBACKEND, "EBACKEND"},
        {HY_EINTERNAL, "EINTERNAL"},
        {HY_EPROTO, "EPROTO"},
        {HY_EVERSION, "EVERSION"},
        {HY_ETYPE, "ETYPE"},
        {HY_EBUSY, "EBUSY"},
        {HY_EPERM, "EPERM"},
        {HY_EWORKER, "EWORKER"},
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        /* appended in order, never renumbered: the index is minus the code */
        cr_assert_eq(codes[i].code, -(int)i);
        cr_expect_str_eq(hy_err_name(codes[i].code), codes[i].name);
    }
    cr_expect_eq(HY_EBUSY, -12);
    cr_expect_eq(HY_EPERM, -13);
    cr_expect_eq(HY_EWORKER, -14);
    cr_expect_str_eq(hy_err_name(HY_EBUSY), "EBUSY");
    cr_expect_str_eq(hy_err_name(HY_EPERM), "EPERM");
    cr_expect_str_eq(hy_err_name(HY_EWORKER), "EWORKER");
    cr_expect_str_eq(hy_err_name(-15), "EUNKNOWN");
    cr_expect_str_eq(hy_err_name(1), "EUNKNOWN");
}

Test(msg, backend_and_transport_names)
{
    /* The numbers travel in SUBMIT and RESULT rows; the names are what hybridctl shows and
     * parses. */
    static const char *const backends[] = {NULL, "serial", "native", "locked", "opencl",
                                           "process"};
    cr_assert_eq(HY_BACKEND_PROCESS, 5);
    for (int b = HY_BACKEND_SERIAL; b <= HY_BACKEND_PROCESS; b++) {
        cr_expect_str_eq(hy_backend_name(b), backends[b]);
        cr_expect_eq(hy_backend_parse(backends[b]), b);
    }
    cr_expect_null(hy_backend_name(0));
    cr_expect_null(hy_backend_name(HY_BACKEND_COUNT + 1));
    cr_expect_eq(hy_backend_parse("processes"), 0);
    /* The table has no gaps: every backend up to the count has a name, a line saying what it
     * is, and parses back; the mask holds exactly their bits. */
    for (int b = 1; b <= HY_BACKEND_COUNT; b++) {
        cr_expect_not_null(hy_backend_name(b), "backend %d has no name", b);
        cr_expect_not_null(hy_backend_about(b), "backend %d says not what it is", b);
        cr_expect_eq(hy_backend_parse(hy_backend_name(b)), b);
        cr_expect(HY_BACKEND_MASK_ALL >> b & 1, "backend %d is not in the mask", b);
    }
    cr_expect_eq(HY_BACKEND_MASK_ALL & 1, 0u);
    cr_expect_eq(HY_BACKEND_MASK_ALL >> (HY_BACKEND_COUNT + 1), 0u);
    char values[HY_BACKEND_VALUES_MAX];
    /* "serial (1), native (2), ... or process (5)": each backend with its number, in order */
    const char *at = hy_backend_values(values, sizeof values);
    for (int b = 1; b <= HY_BACKEND_COUNT; b++) {
        char item[48];
        const char *sep = b == 1 ? "" : b == HY_BACKEND_COUNT ? " or " : ", ";
        snprintf(item, sizeof item, "%s%s (%d)", sep, hy_backend_name(b), b);
        cr_expect(strncmp(at, item, strlen(item)) == 0, "want \"%s\" at \"%s\"", item, at);
        at += strlen(item);
    }
    cr_expect_str_eq(at, "");
    char small[12];
    cr_expect_str_eq(hy_backend_values(small, sizeof small), "serial (1)", "cut whole, ended");

    cr_assert_eq(HY_TRANSPORT_PIPE, 1);
    cr_assert_eq(HY_TRANSPORT_SHM, 2);
    for (int t = HY_TRANSPORT_PIPE; t <= HY_TRANSPORT_SHM; t++)
        cr_expect_eq(hy_transport_parse(hy_transport_name(t)), t);
    cr_expect_str_eq(hy_transport_name(HY_TRANSPORT_PIPE), "pipe");
    cr_expect_str_eq(hy_transport_name(HY_TRANSPORT_SHM), "shm");
    cr_expect_null(hy_transport_name(0)); /* "default" is the absence of a choice */
    cr_expect_null(hy_transport_name(3));
    cr_expect_null(hy_transport_name(-1));
    cr_expect_eq(hy_transport_parse("tcp"), 0);
    cr_expect_eq(hy_transport_parse("PIPE"), 0);
    cr_expect_eq(hy_transport_parse(""), 0);
    cr_expect_eq(hy_transport_parse("shm "), 0);
    cr_expect_eq(hy_transport_parse(NULL), 0);
}

Test(msg, round_trip_hello_welcome)
{
    char name[HY_IPC_NAME_MAX];
    memset(name, 'x', sizeof name);
    memcpy(name, "h\xc3\xa9", 3); /* UTF-8 é */
    memset(&m1, 0, sizeof m1);
    m1.type = HY_MSG_HELLO;
    m1.request = 0xfedcba9876543210ull;
    m1.u.hello = (hy_msg_hello){1, 3, HY_FEATURE_MEMFD | HY_FEATURE_PROGRESS | 0x100,
                                {name, HY_IPC_NAME_MAX}};
    round_trip(&m1, 0);
    cr_assert_eq(m2.u.hello.min_version, 1);
    cr_assert_eq(m2.u.hello.max_version, 3);
    cr_assert_eq(m2.u.hello.features, 0x103u);
    expect_str(m2.u.hello.name, name, HY_IPC_NAME_MAX);

    m1.type = HY_MSG_WELCOME;
    m1.u.welcome = (hy_msg_welcome){1, HY_FEATURE_MEMFD, 1u << 20, 65536, 16,
                                    10000000000ull, 1ull << 33, S("hybridd \xe2\x86\x92 \xcf\x80")};
    round_trip(&m1, 0);
    hy_msg_welcome *w = &m2.u.welcome;
    cr_assert_eq(w->version, 1);
    cr_assert_eq(w->features, HY_FEATURE_MEMFD);
    cr_assert_eq(w->max_payload, 1u << 20);
    cr_assert_eq(w->max_inline_bytes, 65536u);
    cr_assert_eq(w->max_jobs_per_client, 16u);
    cr_assert_eq(w->max_samples, 10000000000ull);
    cr_assert_eq(w->max_sort_elements, 1ull << 33);
    expect_str(w->server, m1.u.welcome.server.p, m1.u.welcome.server.len);

    m1.u.welcome.server = (hy_str){NULL, 0}; /* empty strings are fine */
    round_trip(&m1, 0);
    cr_assert_eq(m2.u.welcome.server.len, 0u);
}

Test(msg, round_trip_small_messages)
{
    memset(&m1, 0, sizeof m1);
    m1.request = 99;
    m1.type = HY_MSG_PONG;
    m1.u.ping.nonce = 0x8000000000000001ull;
    round_trip(&m1, 0);
    cr_assert_eq(m2.u.ping.nonce, 0x8000000000000001ull);

    m1.type = HY_MSG_ACCEPTED;
    m1.u.accepted = (hy_msg_accepted){.queue_position = 3, .job_id = 0x1122334455667788ull};
    round_trip(&m1, 0);
    cr_assert_eq(m2.u.accepted.queue_position, 3u);
    cr_assert_eq(m2.u.accepted.job_id, 0x1122334455667788ull);

    m1.type = HY_MSG_PROGRESS;
    m1.u.progress = (hy_msg_progress){7, 42, 500, 1000};
    round_trip(&m1, 0);
    cr_assert_eq(m2.u.progress.row, 7u);
    cr_assert_eq(m2.u.progress.job_id, 42u);
    cr_assert_eq(m2.u.progress.done, 500u);
    cr_assert_eq(m2.u.progress.total, 1000u);

    m1.type = HY_MSG_CANCEL;
    m1.u.cancel.job_id = UINT64_MAX;
    round_trip(&m1, 0);
    cr_assert_eq(m2.u.cancel.job_id, UINT64_MAX);

    m1.type = HY_MSG_STATUS;
    cr_assert_eq(round_trip(&m1, 0), HY_IPC_HEADER + 8u);
    m1.type = HY_MSG_DEVICES;
    cr_assert_eq(round_trip(&m1, 0), HY_IPC_HEADER + 8u);

    /* Every field distinct, so a field read from its neighbour's offset shows. */
    char version[HY_IPC_NAME_MAX];
    memset(version, 'v', sizeof version);
    memcpy(version, "hybridd 1.0 \xe2\x86\x92", 15); /* UTF-8 → */
    m1.type = HY_MSG_STATUS_REPLY;
    m1.u.status = (hy_msg_status_reply){
        .clients = 2, .uptime_ns = 123456789012ull, .jobs_queued = 11, .jobs_running = 12,
        .jobs_done = 13, .jobs_failed = 14, .jobs_cancelled = 15, .devices = 6,
        .devices_usable = 5,
        .backend_jobs = {21, 22, 23, 0x8000000000000024ull, 0x4000000000000025ull},
        .backend_busy_ns = {31, 32, 33, UINT64_MAX - 34, UINT64_MAX - 35},
        .version = {version, HY_IPC_NAME_MAX}};
    cr_assert_eq(round_trip(&m1, 0), HY_IPC_HEADER + STATUS_BODY + HY_IPC_NAME_MAX);
    hy_msg_status_reply *s = &m2.u.status;
    cr_assert_eq(s->clients, 2u);
    cr_assert_eq(s->uptime_ns, 123456789012ull);
    cr_assert_eq(s->jobs_queued, 11u);
    cr_assert_eq(s->jobs_running, 12u);
    cr_assert_eq(s->jobs_done, 13u);
    cr_assert_eq(s->jobs_failed, 14u);
    cr_assert_eq(s->jobs_cancelled, 15u);
    cr_assert_eq(s->devices, 6u);
    cr_assert_eq(s->devices_usable, 5u);
    cr_assert_eq(s->backend_jobs[0], 21u);
    cr_assert_eq(s->backend_jobs[1], 22u);
    cr_assert_eq(s->backend_jobs[2], 23u);
    cr_assert_eq(s->backend_jobs[3], 0x8000000000000024ull);
    cr_assert_eq(s->backend_busy_ns[0], 31u);
    cr_assert_eq(s->backend_busy_ns[1], 32u);
    cr_assert_eq(s->backend_busy_ns[2], 33u);
    cr_assert_eq(s->backend_busy_ns[3], UINT64_MAX - 34);
    /* process (index 4) travels after the first layout's body, at 136 and 144 */
    cr_assert_eq(s->backend_jobs[4], 0x4000000000000025ull);
    cr_assert_eq(s->backend_busy_ns[4], UINT64_MAX - 35);
    cr_assert_eq(rt_buf[HY_IPC_HEADER + 136], 0x25);
    cr_assert_eq(rt_buf[HY_IPC_HEADER + 143], 0x40);
    cr_assert_eq(rt_buf[HY_IPC_HEADER + 144], (uint8_t)(UINT64_MAX - 35));
    expect_str(s->version, version, HY_IPC_NAME_MAX);
    /* The version starts at align8(body_size), right after the body. */
    cr_assert_eq((const uint8_t *)s->version.p, rt_buf + HY_IPC_HEADER + STATUS_BODY);

    m1.u.status.version = (hy_str){NULL, 0}; /* no version: the payload is the body */
    cr_assert_eq(round_trip(&m1, 0), HY_IPC_HEADER + STATUS_BODY);
    cr_assert_eq(m2.u.status.version.len, 0u);
    cr_assert_eq(m2.u.status.backend_busy_ns[3], UINT64_MAX - 34);
    cr_assert_eq(m2.u.status.backend_busy_ns[4], UINT64_MAX - 35);

    m1.type = HY_MSG_ERROR;
    static char msg[HY_IPC_MESSAGE_MAX];
    memset(msg, 'e', sizeof msg);
    memcpy(msg, "\xce\xbb=", 3);
    m1.u.error = (hy_msg_error){HY_ECANCELED, 17, {msg, HY_IPC_MESSAGE_MAX}};
    round_trip(&m1, 0);
    cr_assert_eq(m2.u.error.code, HY_ECANCELED);
    cr_assert_eq(m2.u.error.job_id, 17u);
    expect_str(m2.u.error.message, msg, HY_IPC_MESSAGE_MAX);
}

Test(msg, round_trip_submit)
{
    memset(&m1, 0, sizeof m1);
    m1.type = HY_MSG_SUBMIT;
    m1.request = 5;
    hy_msg_submit *s = &m1.u.submit;
    s->job = HY_JOB_COMPARE_PI;
    s->mode = HY_MODE_REPLICATE;
    s->nogil = HY_NOGIL_HOLD;
    s->repeat = 5;
    s->switch_interval_us = 5000;
    s->n = 1ull << 40;
    s->seed = 0xdeadbeefcafef00dull;
    s->backends = 1u << HY_BACKEND_SERIAL | 1u << HY_BACKEND_NATIVE | 1u << HY_BACKEND_LOCKED |
                  1u << HY_BACKEND_OPENCL | 1u << HY_BACKEND_PROCESS;
    s->transports = 1u << HY_TRANSPORT_PIPE | 1u << HY_TRANSPORT_SHM;
    s->ranks = 0x0304;
    s->nthreads_list = 5; /* odd: the list ends 4 bytes short of an 8-byte boundary */
    uint32_t tl[] = {1, 2, 4, 8, 16};
    memcpy(s->threads_list, tl, sizeof tl);
    round_trip(&m1, 0);
    /* The empty paths after the list take no bytes, not even padding: the payload ends with
     * the list, as before the paths existed (the Python client's SUBMITs end so too). */
    uint8_t frame[512];
    cr_assert_eq(encode_all(&m1, frame, sizeof frame), (size_t)HY_IPC_HEADER + 72 + 5 * 4);
    hy_msg_submit *d = &m2.u.submit;
    cr_assert_eq(d->job, HY_JOB_COMPARE_PI);
    cr_assert_eq(d->mode, HY_MODE_REPLICATE);
    cr_assert_eq(d->nogil, HY_NOGIL_HOLD);
    cr_assert_eq(d->repeat, 5u);
    cr_assert_eq(d->switch_interval_us, 5000u);
    cr_assert_eq(d->n, 1ull << 40);
    cr_assert_eq(d->seed, 0xdeadbeefcafef00dull);
    cr_assert_eq(d->backends, 0x3eu);
    cr_assert_eq(d->transports, 0x6u);
    cr_assert_eq(d->transport, 0);
    cr_assert_eq(d->ranks, 0x0304);
    cr_assert_eq(d->nthreads_list, 5u);
    cr_assert_arr_eq(d->threads_list, tl, sizeof tl);
    cr_assert_null(d->inline_data);
    /* transport at 56, warmup at 58, transports at 60, ranks at 64, rsv to 72; the list at
     * align8(72) = 72 */
    cr_assert_eq(rt_buf[HY_IPC_HEADER + 60], 0x6);
    cr_assert_eq(rt_buf[HY_IPC_HEADER + 64], 0x04);
    cr_assert_eq(rt_buf[HY_IPC_HEADER + 65], 0x03);
    cr_assert_eq(rt_buf[HY_IPC_HEADER + 66], 0);
    cr_assert_eq(rt_buf[HY_IPC_HEADER + 72], 1);
    cr_assert_eq(rt_buf[HY_IPC_HEADER + 76], 2);

    /* Each transport on its own, and none (the daemon's default, pipe). */
    for (uint32_t t = 0; t <= 0x6; t += 2) {
        s->transports = t;
        round_trip(&m1, 0);
        cr_assert_eq(d->transports, t);
    }

    /* A compare sort with an inline f64 array: the array starts 8-aligned after the list. */
    double arr[7] = {3.5, -0.0, NAN, 1e300, -INFINITY, 0.0, 2.0};
    s->job = HY_JOB_COMPARE_SORT;
    s->dtype = HY_DT_F64;
    s->array = HY_ARRAY_INLINE;
    s->n = 7;
    s->inline_data = arr;
    s->inline_bytes = sizeof arr;
    size_t len = round_trip(&m1, 0);
    cr_assert_eq(len, HY_IPC_HEADER + 72 + 20 + 4 + sizeof arr);
    cr_assert_eq(d->inline_bytes, sizeof arr);
    cr_assert_eq((const uint8_t *)d->inline_data, rt_buf + HY_IPC_HEADER + 96);
    cr_assert(memcmp(d->inline_data, arr, sizeof arr) == 0);

    /* A single sort whose array is in a memfd: the frame carries exactly one fd. */
    memset(s, 0, sizeof *s);
    s->job = HY_JOB_SORT;
    s->backend = HY_BACKEND_OPENCL;
    s->device = 2;
    s->dtype = HY_DT_U32;
    s->array = HY_ARRAY_MEMFD;
    s->n = 1ull << 30;
    round_trip(&m1, 1);
    cr_assert_eq(d->backend, HY_BACKEND_OPENCL);
    cr_assert_eq(d->device, 2);
    cr_assert_eq(d->array, (uint32_t)HY_ARRAY_MEMFD);
    cr_assert_eq(d->n, 1ull << 30);

    /* A single sort on the process backend, each transport in turn (0: the default, pipe). */
    s->backend = HY_BACKEND_PROCESS;
    s->threads = 4;
    for (uint16_t t = 0; t <= HY_TRANSPORT_SHM; t++) {
        s->transport = t;
        round_trip(&m1, 1);
        cr_assert_eq(d->backend, HY_BACKEND_PROCESS);
        cr_assert_eq(d->threads, 4u);
        cr_assert_eq(d->transport, t);
        cr_assert_eq(d->transports, 0u);
        cr_assert_eq(rt_buf[HY_IPC_HEADER + 56], t);
    }
    s->transport = 0;

    /* An empty inline array still pads to its 8-aligned start. */
    s->array = HY_ARRAY_INLINE;
    s->n = 0;
    s->threads = 1;
    s->backend = HY_BACKEND_SERIAL;
    cr_assert_eq(round_trip(&m1, 0), HY_IPC_HEADER + 72u);
    cr_assert_eq(d->inline_bytes, 0u);

    /* auto: the daemon chooses the backend; every rank of an MPI job. */
    s->backend = HY_BACKEND_AUTO;
    s->ranks = HY_IPC_RANKS_ALL;
    round_trip(&m1, 0);
    cr_assert_eq(d->backend, HY_BACKEND_AUTO);
    cr_assert_eq(d->ranks, HY_IPC_RANKS_ALL);
    cr_assert_eq(rt_buf[HY_IPC_HEADER + 6], 0xFF);
    cr_assert_eq(rt_buf[HY_IPC_HEADER + 64], 0xFF);
    cr_assert_eq(rt_buf[HY_IPC_HEADER + 65], 0xFF);
}

/* A sort of .npy paths (array files): the two lengths in the 72-byte body's words at 66 and
 * 68, the paths after it, each 8-aligned, and nothing after the output path. */
static void submit_files(const char *in, const char *out)
{
    memset(&m1, 0, sizeof m1);
    m1.type = HY_MSG_SUBMIT;
    m1.u.submit = (hy_msg_submit){.job = HY_JOB_SORT, .backend = HY_BACKEND_NATIVE,
                                  .dtype = HY_DT_F64, .array = HY_ARRAY_FILES, .n = 1000,
                                  .ranks = HY_IPC_RANKS_ALL,
                                  .input_len = (uint16_t)strlen(in),
                                  .output_len = (uint16_t)strlen(out),
                                  .input = {in, (uint32_t)strlen(in)},
                                  .output = {out, (uint32_t)strlen(out)}};
}

Test(msg, round_trip_submit_files)
{
    submit_files("/data/in.npy", "/data/sorted.npy");
    size_t len = round_trip(&m1, 0);
    const hy_msg_submit *d = &m2.u.submit;
    cr_assert_eq(d->array, (uint32_t)HY_ARRAY_FILES);
    cr_assert_eq(d->input_len, 12);
    cr_assert_eq(d->output_len, 16);
    cr_assert_eq(d->input.len, 12u);
    cr_assert(memcmp(d->input.p, "/data/in.npy", 12) == 0);
    cr_assert(memcmp(d->output.p, "/data/sorted.npy", 16) == 0);
    cr_assert_eq((const uint8_t *)d->input.p, rt_buf + HY_IPC_HEADER + 72);
    cr_assert_eq((const uint8_t *)d->output.p, rt_buf + HY_IPC_HEADER + 88);
    cr_assert_eq(len, HY_IPC_HEADER + 88u + 16u);
    cr_assert_eq(rt_buf[HY_IPC_HEADER + 66], 12);
    cr_assert_eq(rt_buf[HY_IPC_HEADER + 68], 16);
    cr_assert_null(d->inline_data);
}


/* Field by field: the row struct has padding (after transport), which memcmp would read. */
static void expect_row_eq(const hy_result_row *g, const hy_result_row *w, unsigned i)
{
    cr_assert_eq(g->backend, w->backend, "row %u backend", i);
    cr_assert_eq(g->device, w->device, "row %u device", i);
    cr_assert_eq(g->mode, w->mode, "row %u mode", i);
    cr_assert_eq(g->flags, w->flags, "row %u flags", i);
    cr_assert_eq(g->threads, w->threads, "row %u threads", i);
    cr_assert_eq(g->copies, w->copies, "row %u copies", i);
    cr_assert_eq(g->n, w->n, "row %u n", i);
    cr_assert_eq(g->hits, w->hits, "row %u hits", i);
    /* the bits of the doubles (NaN != NaN as a value) */
    cr_assert(memcmp(&g->estimate, &w->estimate, sizeof g->estimate) == 0, "row %u estimate", i);
    cr_assert(memcmp(&g->std_error, &w->std_error, sizeof g->std_error) == 0,
              "row %u std_error", i);
    cr_assert_eq(g->median_ns, w->median_ns, "row %u median_ns", i);
    cr_assert_eq(g->min_ns, w->min_ns, "row %u min_ns", i);
    cr_assert_eq(g->max_ns, w->max_ns, "row %u max_ns", i);
    cr_assert_eq(g->lock_handoffs, w->lock_handoffs, "row %u lock_handoffs", i);
    cr_assert_eq(g->lock_wait_ns, w->lock_wait_ns, "row %u lock_wait_ns", i);
    cr_assert_eq(g->lock_hold_ns, w->lock_hold_ns, "row %u lock_hold_ns", i);
    cr_assert_eq(g->h2d_ns, w->h2d_ns, "row %u h2d_ns", i);
    cr_assert_eq(g->kernel_ns, w->kernel_ns, "row %u kernel_ns", i);
    cr_assert_eq(g->d2h_ns, w->d2h_ns, "row %u d2h_ns", i);
    cr_assert_eq(g->launches, w->launches, "row %u launches", i);
    cr_assert_eq(g->repeat, w->repeat, "row %u repeat", i);
    cr_assert_eq(g->bytes_moved, w->bytes_moved, "row %u bytes_moved", i);
    cr_assert_eq(g->startup_ns, w->startup_ns, "row %u startup_ns", i);
    cr_assert_eq(g->merge_ns, w->merge_ns, "row %u merge_ns", i);
    cr_assert_eq(g->transport, w->transport, "row %u transport", i);
    cr_assert_eq(g->workers_started, w->workers_started, "row %u workers_started", i);
    cr_assert_eq(g->mean_ns, w->mean_ns, "row %u mean_ns", i);
    cr_assert_eq(g->predicted_ns, w->predicted_ns, "row %u predicted_ns", i);
    cr_assert_eq(g->ranks, w->ranks, "row %u ranks", i);
    cr_assert_eq(g->passes, w->passes, "row %u passes", i);
    cr_assert_eq(g->cpu_items, w->cpu_items, "row %u cpu_items", i);
    cr_assert_eq(g->cpu_busy_ns, w->cpu_busy_ns, "row %u cpu_busy_ns", i);
    cr_assert_eq(g->dev_busy_ns, w->dev_busy_ns, "row %u dev_busy_ns", i);
    cr_assert_eq(g->cpu_chunks, w->cpu_chunks, "row %u cpu_chunks", i);
    cr_assert_eq(g->dev_chunks, w->dev_chunks, "row %u dev_chunks", i);
    cr_assert_eq(g->balance_ppm, w->balance_ppm, "row %u balance_ppm", i);
    cr_assert_eq(g->devices_used, w->devices_used, "row %u devices_used", i);
    cr_assert_eq(g->overlap_ns, w->overlap_ns, "row %u overlap_ns", i);
    cr_assert_eq(g->stddev_ns, w->stddev_ns, "row %u stddev_ns", i);
    cr_assert_eq(g->q1_ns, w->q1_ns, "row %u q1_ns", i);
    cr_assert_eq(g->q3_ns, w->q3_ns, "row %u q3_ns", i);
    cr_assert_eq(g->warmup_ns, w->warmup_ns, "row %u warmup_ns", i);
}

/* Rows whose every field differs from its neighbours', new fields included. */
static void fill_rows(hy_result_row *rows, unsigned nrows, double std_error_last)
{
    for (unsigned i = 0; i < nrows; i++) {
        rows[i] = (hy_result_row){.backend = (uint16_t)(1 + i % HY_BACKEND_COUNT), .device = (uint16_t)i,
                                  .mode = 1, .flags = HY_ROW_NOGIL | HY_ROW_POCL_CPU,
                                  .threads = 1u << (i % 32), .copies = 2, .n = 1000000 + i,
                                  .hits = 785398 + i, .estimate = 3.141592653589793,
                                  .std_error = i == nrows - 1 ? std_error_last : 1.6e-3,
                                  .median_ns = 10 + i, .min_ns = 9, .max_ns = 11,
                                  .lock_handoffs = 1234, .lock_wait_ns = 5, .lock_hold_ns = 6,
                                  .h2d_ns = 7, .kernel_ns = 8, .d2h_ns = UINT64_MAX,
                                  .launches = 3, .repeat = 5,
                                  .bytes_moved = 0x0102030405060708ull + i,
                                  .startup_ns = 0x1112131415161718ull + i,
                                  .merge_ns = 0x2122232425262728ull + i,
                                  .transport = (uint16_t)(i % 3),
                                  .workers_started = 0x31323334u + i,
                                  .mean_ns = 0x4142434445464748ull + i,
                                  .stddev_ns = 0x5152535455565758ull + i,
                                  .q1_ns = 0x6162636465666768ull + i,
                                  .q3_ns = 0x7172737475767778ull + i,
                                  .warmup_ns = 0x0182838485868788ull + i,
                                  .predicted_ns = 0x9192939495969798ull + i,
                                  .ranks = 0xa1a2a3a4u + i,
                                  .passes = 0xb1b2b3b4u + i,
                                  .cpu_items = 0xc1c2c3c4c5c6c7c8ull + i,
                                  .cpu_busy_ns = 0xd1d2d3d4d5d6d7d8ull + i,
                                  .dev_busy_ns = 0xe1e2e3e4e5e6e7e8ull + i,
                                  .cpu_chunks = 0xf1f2f3f4u + i,
                                  .dev_chunks = 0x02030405u + i,
                                  .balance_ppm = 0x12131415u + i,
                                  .devices_used = 0x22232425u + i,
                                  .overlap_ns = 0x3132333435363738ull + i};
    }
}

Test(msg, round_trip_result)
{
    static hy_result_row rows[HY_IPC_ROWS_MAX];
    static const uint8_t sorted[12] = {1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0};
    uint64_t nan_bits = 0x7ff8000000000abcull;
    double nan_payload;
    memcpy(&nan_payload, &nan_bits, sizeof nan_payload);
    /* Five rows of different backends, the last with a NaN carrying a payload. */
    fill_rows(rows, 5, nan_payload);
    memset(&m1, 0, sizeof m1);
    m1.type = HY_MSG_RESULT;
    m1.request = 8;
    m1.u.result.job = HY_JOB_COMPARE_SORT;
    m1.u.result.nrows = 5;
    m1.u.result.job_id = 77;
    m1.u.result.rows = rows;
    m1.u.result.array = sorted;
    m1.u.result.array_bytes = sizeof sorted;
    size_t len = round_trip(&m1, 0);
    /* a 32-byte body, rows of HY_IPC_ROW_SIZE = 264 bytes, no rank records, then the array */
    cr_assert_eq(HY_IPC_ROW_SIZE, 264u);
    cr_assert_eq(len, HY_IPC_HEADER + 32u + 5 * 264u + sizeof sorted);
    cr_assert_eq(rt_buf[HY_IPC_HEADER + 8], 8);
    cr_assert_eq(rt_buf[HY_IPC_HEADER + 9], 1);
    hy_msg_result *r = &m2.u.result;
    cr_assert_eq(r->job, HY_JOB_COMPARE_SORT);
    cr_assert_eq(r->nrows, 5);
    cr_assert_eq(r->job_id, 77u);
    cr_assert_eq(r->rows, r->rows_in);
    for (unsigned i = 0; i < 5; i++)
        expect_row_eq(&r->rows_in[i], &rows[i], i);
    uint64_t got_bits;
    memcpy(&got_bits, &r->rows_in[4].std_error, sizeof got_bits);
    cr_assert_eq(got_bits, nan_bits);
    /* The new fields sit where the layout says, in the second row (i = 1, at 32 + 264). */
    const uint8_t *row1 = rt_buf + HY_IPC_HEADER + 32 + 264;
    cr_assert_eq(row1[128], 0x09); /* bytes_moved 0x...0708 + 1 */
    cr_assert_eq(row1[136], 0x19); /* startup_ns */
    cr_assert_eq(row1[144], 0x29); /* merge_ns */
    cr_assert_eq(row1[152], 1);    /* transport */
    cr_assert_eq(row1[154], 0);    /* rsv */
    cr_assert_eq(row1[155], 0);
    cr_assert_eq(row1[156], 0x35); /* workers_started */
    cr_assert_eq(row1[160], 0x49); /* mean_ns 0x...48 + 1 */
    cr_assert_eq(row1[167], 0x41);
    cr_assert_eq(row1[168], 0x59); /* stddev_ns */
    cr_assert_eq(row1[176], 0x69); /* q1_ns */
    cr_assert_eq(row1[184], 0x79); /* q3_ns */
    cr_assert_eq(row1[192], 0x89); /* warmup_ns */
    cr_assert_eq(row1[199], 0x01);
    cr_assert_eq(row1[200], 0x99); /* predicted_ns 0x...98 + 1 */
    cr_assert_eq(row1[207], 0x91);
    cr_assert_eq(row1[208], 0xa5); /* ranks 0x...a4 + 1 */
    cr_assert_eq(row1[211], 0xa1);
    cr_assert_eq(row1[212], 0xb5); /* passes 0x...b4 + 1 */
    cr_assert_eq(row1[215], 0xb1);
    cr_assert_eq(row1[216], 0xc9); /* cpu_items 0x...c8 + 1 */
    cr_assert_eq(row1[223], 0xc1);
    cr_assert_eq(row1[224], 0xd9); /* cpu_busy_ns */
    cr_assert_eq(row1[232], 0xe9); /* dev_busy_ns */
    cr_assert_eq(row1[239], 0xe1);
    cr_assert_eq(row1[240], 0xf5); /* cpu_chunks */
    cr_assert_eq(row1[244], 0x06); /* dev_chunks */
    cr_assert_eq(row1[248], 0x16); /* balance_ppm */
    cr_assert_eq(row1[252], 0x26); /* devices_used */
    cr_assert_eq(row1[255], 0x22);
    cr_assert_eq(row1[256], 0x39); /* overlap_ns 0x...38 + 1 */
    cr_assert_eq(row1[263], 0x31);
    cr_assert_eq(r->array_bytes, sizeof sorted);
    cr_assert(memcmp(r->array, sorted, sizeof sorted) == 0);

    /* The most rows there may be: 66 KiB of them. */
    m1.u.result.nrows = HY_IPC_ROWS_MAX;
    m1.u.result.array_bytes = 0;
    m1.u.result.array = NULL;
    fill_rows(rows, HY_IPC_ROWS_MAX, 0.5);
    cr_assert_eq(round_trip(&m1, 0), HY_IPC_HEADER + 32u + HY_IPC_ROWS_MAX * 264u);
    cr_assert_eq(m2.u.result.nrows, HY_IPC_ROWS_MAX);
    cr_assert_null(m2.u.result.array);
    for (unsigned i = 0; i < HY_IPC_ROWS_MAX; i++)
        expect_row_eq(&m2.u.result.rows_in[i], &rows[i], i);
}

Test(msg, round_trip_devices)
{
    static hy_device_record devs[3];
    memset(devs, 0, sizeof devs);
    devs[0] = (hy_device_record){.index = 0, .type = 4, .flags = HY_DEV_USABLE | HY_DEV_POCL_CPU,
                                 .compute_units = 16, .global_mem = 128ull << 30,
                                 .max_alloc = 32ull << 30};
    strcpy(devs[0].name, "cpu-haswell-Intel(R) Xeon(R) \xe2\x84\xa2");
    strcpy(devs[0].vendor, "GenuineIntel");
    strcpy(devs[0].driver, "6.0+debian");
    devs[1] = (hy_device_record){.index = 1, .type = 2, .flags = HY_DEV_USABLE,
                                 .compute_units = 132, .global_mem = 80ull << 30};
    memset(devs[1].name, 'N', 96); /* the longest name the wire holds */
    memset(devs[1].vendor, 'V', 64);
    memset(devs[1].driver, 'D', 32);
    memset(devs[1].problem, 'P', 128);
    devs[2] = (hy_device_record){.index = 2, .type = 2};
    strcpy(devs[2].name, "broken");
    strcpy(devs[2].problem, "clCreateContext failed: CL_OUT_OF_RESOURCES (-5)");
    memset(&m1, 0, sizeof m1);
    m1.type = HY_MSG_DEVICES_REPLY;
    m1.u.devices.ndevices = 3;
    m1.u.devices.cpu_online = 64;
    m1.u.devices.native_threads = 48;
    m1.u.devices.locked_threads = 8;
    m1.u.devices.switch_interval_us = 5000;
    m1.u.devices.process_workers = 0x0a0b0c0d;
    m1.u.devices.devices = devs;
    strcpy(devs[0].platform, "Portable Computing Language");
    memset(devs[1].platform, 'L', 64); /* the longest platform the wire holds */
    cr_assert_eq(round_trip(&m1, 0), HY_IPC_HEADER + 32u + 3 * 416u);
    hy_msg_devices_reply *d = &m2.u.devices;
    cr_assert_eq(d->ndevices, 3u);
    cr_assert_eq(d->cpu_online, 64u);
    cr_assert_eq(d->native_threads, 48u);
    cr_assert_eq(d->locked_threads, 8u);
    cr_assert_eq(d->switch_interval_us, 5000u);
    cr_assert_eq(d->process_workers, 0x0a0b0c0du);
    cr_assert_eq(rt_buf[HY_IPC_HEADER + 28], 0x0d); /* the word that was reserved */
    for (unsigned i = 0; i < 3; i++) {
        hy_device_record *g = &d->devices_in[i], *w = &devs[i];
        cr_assert_eq(g->index, w->index);
        cr_assert_eq(g->type, w->type);
        cr_assert_eq(g->flags, w->flags);
        cr_assert_eq(g->compute_units, w->compute_units);
        cr_assert_eq(g->global_mem, w->global_mem);
        cr_assert_eq(g->max_alloc, w->max_alloc);
        cr_assert_str_eq(g->name, w->name);
        cr_assert_str_eq(g->vendor, w->vendor);
        cr_assert_str_eq(g->driver, w->driver);
        cr_assert_str_eq(g->problem, w->problem);
        cr_assert_str_eq(g->platform, w->platform);
    }
    cr_assert_eq(strlen(d->devices_in[1].name), 96u);
    cr_assert_eq(strlen(d->devices_in[1].platform), 64u);
    cr_assert_str_eq(d->devices_in[2].platform, "");

    /* No OpenCL device at all: the CPU pools still travel, and no record follows. */
    m1.u.devices.ndevices = 0;
    m1.u.devices.devices = NULL;
    cr_assert_eq(round_trip(&m1, 0), HY_IPC_HEADER + 32u);
    cr_assert_eq(d->ndevices, 0u);
    cr_assert_eq(d->cpu_online, 64u);
    cr_assert_eq(d->native_threads, 48u);
    cr_assert_eq(d->locked_threads, 8u);
    cr_assert_eq(d->switch_interval_us, 5000u);
    cr_assert_eq(d->process_workers, 0x0a0b0c0du);

    /* The process pool off: 0. */
    m1.u.devices.process_workers = 0;
    round_trip(&m1, 0);
    cr_assert_eq(d->process_workers, 0u);
}

/* ---- golden vectors: written by hand from the layouts, never by the encoder ---- */

typedef struct golden {
    const char *what;
    const char *hex;
    /* body bytes a receiver ignores (reserved): a change there re-encodes as 0 */
    unsigned rsv_from[2], rsv_to[2];
} golden;

static const golden goldens[] = {
    {"PING request 7 nonce 0x0102030405060708",
     "48 59 44 31 01 00 03 00 00 00 00 00 10 00 00 00 07 00 00 00 00 00 00 00"
     "10 00 00 00 | 00 00 00 00 | 08 07 06 05 04 03 02 01",
     {4, 0}, {8, 0}},
    {"HELLO request 1 versions 1..1 features memfd|progress name hybridctl",
     "48 59 44 31 01 00 01 00 00 00 00 00 19 00 00 00 01 00 00 00 00 00 00 00"
     "10 00 00 00 | 01 00 | 01 00 | 03 00 00 00 | 09 00 00 00"
     "68 79 62 72 69 64 63 74 6c",
     {0, 0}, {0, 0}},
    {"SUBMIT request 2: pi, n 1000000, seed 42, native, 2 threads, split, 1 repeat",
     "48 59 44 31 01 00 05 00 00 00 00 00 48 00 00 00 02 00 00 00 00 00 00 00"
     "48 00 00 00 | 01 00 | 02 00 | 00 00 | 01 00 | 00 00 | 00 00"
     "02 00 00 00 | 01 00 00 00 | 00 00 00 00 | 00 00 00 00"
     "40 42 0f 00 00 00 00 00 | 2a 00 00 00 00 00 00 00 | 00 00 00 00 | 00 00 00 00"
     "00 00 | 00 00 | 00 00 00 00 | 00 00 | 00 00 | 00 00 00 00",
     {70, 0}, {72, 0}},
    {"ERROR request 2 job 5 code ELIMIT (-4) \"n too large\"",
     "48 59 44 31 01 00 09 00 00 00 00 00 23 00 00 00 02 00 00 00 00 00 00 00"
     "18 00 00 00 | fc ff ff ff | 05 00 00 00 00 00 00 00 | 0b 00 00 00 | 00 00 00 00"
     "6e 20 74 6f 6f 20 6c 61 72 67 65",
     {20, 0}, {24, 0}},
    {"WELCOME request 1 version 1 features memfd|progress, 1 MiB, 64 KiB inline, 8 jobs, "
     "1e10 samples, 2^28 elements, server hybridd",
     "48 59 44 31 01 00 02 00 00 00 00 00 37 00 00 00 01 00 00 00 00 00 00 00"
     "30 00 00 00 | 01 00 | 00 00 | 03 00 00 00 | 00 00 10 00 | 00 00 01 00 | 08 00 00 00"
     "00 e4 0b 54 02 00 00 00 | 00 00 00 10 00 00 00 00 | 07 00 00 00 | 00 00 00 00"
     "68 79 62 72 69 64 64",
     {6, 44}, {8, 48}},
    {"ACCEPTED request 2 job 5, 1 job ahead: 3 rows, 4 threads, 5 repeats, 1 warm-up",
     "48 59 44 31 01 00 06 00 00 00 00 00 20 00 00 00 02 00 00 00 00 00 00 00"
     "20 00 00 00 | 01 00 00 00 | 05 00 00 00 00 00 00 00"
     "03 00 | 00 00 | 04 00 00 00 | 05 00 00 00 | 01 00 00 00",
     {18, 0}, {20, 0}},
    {"JOBS request 9, every user's",
     "48 59 44 31 01 00 0f 00 00 00 00 00 10 00 00 00 09 00 00 00 00 00 00 00"
     "10 00 00 00 | 01 00 00 00 | 00 00 00 00 00 00 00 00",
     {8, 0}, {16, 0}},
    {"JOBS_REPLY request 9: job 7 of uid 1000, sort 10^6 f64 on native with 2 threads, "
     "running 1.5 s of 2 s, 500 of 1000 done, predicted 3 s; 3 others queued, 1 running",
     "48 59 44 31 01 00 10 00 00 00 00 00 78 00 00 00 09 00 00 00 00 00 00 00"
     "20 00 00 00 | 01 00 00 00 | 58 00 00 00 | 00 00 00 00 | 03 00 00 00 | 01 00 00 00"
     "00 00 00 00 00 00 00 00"
     "07 00 00 00 00 00 00 00 | e8 03 00 00 | 02 00 | 02 00 | 02 00 | ff ff | 06 00 | 01 00"
     "02 00 00 00 | 00 00 00 00 | 40 42 0f 00 00 00 00 00 | 00 94 35 77 00 00 00 00"
     "00 2f 68 59 00 00 00 00 | f4 01 00 00 00 00 00 00 | e8 03 00 00 00 00 00 00"
     "00 5e d0 b2 00 00 00 00 | 00 00 00 00 00 00 00 00",
     {24, 0}, {32, 0}},
    {"MODEL request 10",
     "48 59 44 31 01 00 11 00 00 00 00 00 08 00 00 00 0a 00 00 00 00 00 00 00"
     "08 00 00 00 | 00 00 00 00",
     {4, 0}, {8, 0}},
    {"MODEL_REPLY request 10: pi on serial, 1 thread, 2^20 samples: 6 runs, median 1 ms, "
     "trusted; 1 cell, trusted from 5, 20 kept",
     "48 59 44 31 01 00 12 00 00 00 00 00 48 00 00 00 0a 00 00 00 00 00 00 00"
     "20 00 00 00 | 01 00 00 00 | 28 00 00 00 | 01 00 00 00 | 05 00 00 00 | 14 00 00 00"
     "00 00 00 00 00 00 00 00"
     "01 00 | 00 00 | 01 00 | 00 00 | 00 00 00 00 | 01 00 00 00 | 14 00 00 00 | 06 00 00 00"
     "40 42 0f 00 00 00 00 00 | 01 00 00 00 | 00 00 00 00",
     {24, 68}, {32, 72}},
};
#define NGOLDEN (sizeof goldens / sizeof goldens[0])

/* The messages the goldens hold, built field by field. */
static void golden_msg(unsigned i, hy_msg *m)
{
    memset(m, 0, sizeof *m);
    switch (i) {
    case 0:
        m->type = HY_MSG_PING;
        m->request = 7;
        m->u.ping.nonce = 0x0102030405060708ull;
        break;
    case 1:
        m->type = HY_MSG_HELLO;
        m->request = 1;
        m->u.hello = (hy_msg_hello){1, 1, HY_FEATURE_MEMFD | HY_FEATURE_PROGRESS, S("hybridctl")};
        break;
    case 2:
        m->type = HY_MSG_SUBMIT;
        m->request = 2;
        m->u.submit.job = HY_JOB_PI;
        m->u.submit.backend = HY_BACKEND_NATIVE;
        m->u.submit.mode = HY_MODE_SPLIT;
        m->u.submit.threads = 2;
        m->u.submit.repeat = 1;
        m->u.submit.n = 1000000;
        m->u.submit.seed = 42;
        break;
    case 3:
        m->type = HY_MSG_ERROR;
        m->request = 2;
        m->u.error = (hy_msg_error){HY_ELIMIT, 5, S("n too large")};
        break;
    case 4:
        m->type = HY_MSG_WELCOME;
        m->request = 1;
        m->u.welcome = (hy_msg_welcome){1, 3, 1u << 20, 65536, 8, 10000000000ull, 1ull << 28,
                                        S("hybridd")};
        break;
    case 5:
        m->type = HY_MSG_ACCEPTED;
        m->request = 2;
        m->u.accepted = (hy_msg_accepted){.queue_position = 1, .job_id = 5, .nrows = 3,
                                          .threads = 4, .repeat = 5, .warmup = 1};
        break;
    case 6:
        m->type = HY_MSG_JOBS;
        m->request = 9;
        m->u.jobs.flags = HY_JOBS_ALL;
        break;
    case 8:
        m->type = HY_MSG_MODEL;
        m->request = 10;
        break;
    case 9: {
        static const hy_cell_record cell = {.work = HY_JOB_PI, .backend = HY_BACKEND_SERIAL,
                                            .threads = 1, .log2n = 20, .samples = 6,
                                            .median_ns = 1000000, .flags = HY_CELL_TRUSTED};
        m->type = HY_MSG_MODEL_REPLY;
        m->request = 10;
        m->u.model = (hy_msg_model_reply){.ncells = 1, .total = 1, .trust = 5, .ring = 20,
                                          .cells = &cell};
        break;
    }
    case 7: {
        static const hy_job_record job = {
            .job_id = 7, .uid = 1000, .job = HY_JOB_SORT, .state = 2,
            .backend = HY_BACKEND_NATIVE, .device = HY_JOB_DEVICE_NONE, .dtype = HY_DT_F64,
            .nrows = 1, .threads = 2, .n = 1000000, .queued_ns = 2000000000ull,
            .running_ns = 1500000000ull, .done = 500, .total = 1000,
            .predicted_ns = 3000000000ull};
        m->type = HY_MSG_JOBS_REPLY;
        m->request = 9;
        m->u.jobs_reply = (hy_msg_jobs_reply){.njobs = 1, .others_queued = 3,
                                              .others_running = 1, .jobs = &job};
        break;
    }
    }
}

Test(msg, golden_encode_and_decode)
{
    uint8_t want[256], got[256];
    for (unsigned i = 0; i < NGOLDEN; i++) {
        size_t n = unhex(goldens[i].hex, want, sizeof want);
        golden_msg(i, &m1);
        size_t len = encode_all(&m1, got, sizeof got);
        cr_assert_eq(len, n, "%s: %zu bytes, want %zu", goldens[i].what, len, n);
        cr_assert(memcmp(got, want, n) == 0, "%s: bytes differ", goldens[i].what);

        hy_error err = {0};
        cr_assert_eq(decode_bytes(want, n, 0, &m2, &err), 0, "%s: %s", goldens[i].what, err.msg);
        cr_assert_eq(m2.type, m1.type);
        cr_assert_eq(m2.request, m1.request);
        /* Re-encoding the decoded message gives the golden bytes back. */
        len = encode_all(&m2, got, sizeof got);
        cr_assert_eq(len, n);
        cr_assert(memcmp(got, want, n) == 0, "%s: re-encoding differs", goldens[i].what);
    }
    /* A few fields checked by value, not only by re-encoding. */
    size_t n = unhex(goldens[2].hex, want, sizeof want);
    cr_assert_eq(decode_bytes(want, n, 0, &m2, NULL), 0);
    cr_assert_eq(m2.u.submit.n, 1000000u);
    cr_assert_eq(m2.u.submit.seed, 42u);
    cr_assert_eq(m2.u.submit.backend, HY_BACKEND_NATIVE);
    cr_assert_eq(m2.u.submit.threads, 2u);
    n = unhex(goldens[3].hex, want, sizeof want);
    cr_assert_eq(decode_bytes(want, n, 0, &m2, NULL), 0);
    cr_assert_eq(m2.u.error.code, HY_ELIMIT);
    expect_str(m2.u.error.message, "n too large", 11);
    n = unhex(goldens[5].hex, want, sizeof want);
    cr_assert_eq(decode_bytes(want, n, 0, &m2, NULL), 0);
    cr_assert_eq(m2.u.accepted.queue_position, 1u);
    cr_assert_eq(m2.u.accepted.job_id, 5u);
    cr_assert_eq(m2.u.accepted.nrows, 3);
    cr_assert_eq(m2.u.accepted.threads, 4u);
    cr_assert_eq(m2.u.accepted.repeat, 5u);
    cr_assert_eq(m2.u.accepted.warmup, 1u);
}

static void check_truncations(const golden *gd)
{
    uint8_t g[512], t[512];
    hy_error err;
    size_t n = unhex(gd->hex, g, sizeof g);
    for (size_t cut = 0; cut < n; cut++) {
        memcpy(t, g, cut);
        /* As the bytes arrive: the header's length says more is to come. */
        memset(&err, 0, sizeof err);
        int rc = decode_copy(t, cut, 0, &m2, &err);
        cr_assert_eq(rc, HY_IPC_INCOMPLETE, "%s cut at %zu: rc %d %s", gd->what, cut, rc,
                     err.msg);
        if (cut < HY_IPC_HEADER)
            continue;
        /* A complete frame whose payload was cut short: refused, never another message. */
        uint32_t pl = (uint32_t)(cut - HY_IPC_HEADER);
        for (int b = 0; b < 4; b++)
            t[12 + b] = (uint8_t)(pl >> (8 * b));
        memset(&err, 0, sizeof err);
        rc = decode_copy(t, cut, 0, &m2, &err);
        cr_assert_lt(rc, 0, "%s cut at %zu with its length fixed decoded", gd->what, cut);
        cr_assert_eq(err.code, rc);
        cr_assert_gt(strlen(err.msg), 0u);
    }
}

Test(msg, golden_truncations)
{
    for (unsigned i = 0; i < NGOLDEN; i++)
        check_truncations(&goldens[i]);
}

static bool reserved(const golden *g, size_t at)
{
    for (int r = 0; r < 2; r++)
        if (at >= HY_IPC_HEADER + g->rsv_from[r] && at < HY_IPC_HEADER + g->rsv_to[r])
            return true;
    return false;
}

Test(msg, golden_single_byte_changes)
{
    static uint8_t g[256], t[256], out[64 * 1024], out2[64 * 1024];
    unsigned refused = 0, accepted = 0, incomplete = 0;
    for (unsigned i = 0; i < NGOLDEN; i++) {
        const golden *gd = &goldens[i];
        size_t n = unhex(gd->hex, g, sizeof g);
        for (size_t at = 0; at < n; at++) {
            for (unsigned v = 0; v < 256; v++) {
                if (v == g[at])
                    continue;
                memcpy(t, g, n);
                t[at] = (uint8_t)v;
                hy_error err = {0};
                uint8_t *c = malloc(n); /* exact size: ASan catches any read past it */
                cr_assert(c);
                memcpy(c, t, n);
                int rc = decode_bytes(c, n, 0, &m2, &err);
                if (rc == HY_IPC_INCOMPLETE) {
                    /* only a length that grew can ask for more */
                    cr_assert(at >= 12 && at < 16, "%s byte %zu = %u: incomplete", gd->what, at,
                              v);
                    incomplete++;
                } else if (rc < 0) {
                    cr_assert_eq(err.code, rc);
                    cr_assert_gt(strlen(err.msg), 0u);
                    refused++;
                } else {
                    cr_assert_eq(rc, 0);
                    size_t len = encode_all(&m2, out, sizeof out);
                    if (at == 6 || at == 7) {
                        /* Another type read from the same bytes: it need not give these
                         * bytes back, but it must be a fixed point of decode and encode. */
                        hy_error e2 = {0};
                        cr_assert_eq(decode_bytes(out, len, 0, &m1, &e2), 0, "%s", e2.msg);
                        size_t len2 = encode_all(&m1, out2, sizeof out2);
                        cr_assert_eq(len2, len);
                        cr_assert(memcmp(out, out2, len) == 0);
                    } else {
                        /* A body_size between a type's first layout and its current one
                         * (SUBMIT's 57..63) is read as the fields it holds, and re-encoded at
                         * the current size: only body_size itself may differ. */
                        bool body = at >= HY_IPC_HEADER && at < HY_IPC_HEADER + 4;
                        /* ... and a field appended since the first layout comes back as 0
                         * when that body_size falls short of it (ACCEPTED's 17..31 drop
                         * everything after the first layout's 16 bytes). */
                        size_t first = HY_IPC_HEADER + 16;
                        cr_assert_eq(len, n, "%s byte %zu = %u: re-encoded to %zu bytes",
                                     gd->what, at, v, len);
                        for (size_t j = 0; j < n; j++)
                            cr_assert(out[j] == t[j] || (reserved(gd, j) && out[j] == 0) ||
                                          (body && j >= HY_IPC_HEADER && j < HY_IPC_HEADER + 4) ||
                                          (body && j >= first && out[j] == 0),
                                      "%s byte %zu = %u: re-encoded byte %zu is %u, not %u",
                                      gd->what, at, v, j, out[j], t[j]);
                    }
                    accepted++;
                }
                free(c);
            }
        }
    }
    cr_assert_gt(refused, 0u);
    cr_assert_gt(accepted, 0u);
    cr_assert_gt(incomplete, 0u);
}

/* ---- bad values ---- */

static uint8_t bad[HY_IPC_HEADER + 4096];
static size_t bad_len;

/* Encodes m into `bad` for patching. */
static void prepare(const hy_msg *m)
{
    bad_len = encode_all(m, bad, sizeof bad);
}

static void patch32(size_t payload_off, uint32_t v)
{
    for (int b = 0; b < 4; b++)
        bad[HY_IPC_HEADER + payload_off + b] = (uint8_t)(v >> (8 * b));
}

static void patch16(size_t payload_off, uint16_t v)
{
    bad[HY_IPC_HEADER + payload_off] = (uint8_t)v;
    bad[HY_IPC_HEADER + payload_off + 1] = (uint8_t)(v >> 8);
}

static void patch64(size_t payload_off, uint64_t v)
{
    patch32(payload_off, (uint32_t)v);
    patch32(payload_off + 4, (uint32_t)(v >> 32));
}

/* Sets the header's length (and bad_len) to a payload of `pl` bytes. */
static void set_payload_len(uint32_t pl)
{
    for (int b = 0; b < 4; b++)
        bad[12 + b] = (uint8_t)(pl >> (8 * b));
    bad_len = HY_IPC_HEADER + pl;
}

static void expect_bad(int code, unsigned nfds)
{
    hy_error err = {0};
    int rc = decode_copy(bad, bad_len, nfds, &m2, &err);
    expect_error(rc, code, &err);
}

static void submit_pi(void)
{
    golden_msg(2, &m1);
    prepare(&m1);
}

static void submit_sort_inline(uint16_t dtype, uint64_t n, const void *data, size_t bytes)
{
    memset(&m1, 0, sizeof m1);
    m1.type = HY_MSG_SUBMIT;
    m1.u.submit = (hy_msg_submit){.job = HY_JOB_SORT, .backend = HY_BACKEND_SERIAL,
                                  .dtype = dtype, .threads = 1, .array = HY_ARRAY_INLINE,
                                  .n = n, .inline_data = data, .inline_bytes = bytes};
    prepare(&m1);
}

Test(msg, bad_type_and_body_size)
{
    submit_pi();
    bad[6] = 99; /* type */
    expect_bad(HY_ETYPE, 0);
    bad[6] = 0;
    expect_bad(HY_ETYPE, 0);

    submit_pi();
    patch32(0, 55); /* body_size below SUBMIT's first layout, 56 */
    expect_bad(HY_EPROTO, 0);
    patch32(0, 0);
    expect_bad(HY_EPROTO, 0);
    patch32(0, 80); /* past the 72-byte payload */
    expect_bad(HY_EPROTO, 0);
    /* The second layout's 64 bytes, exact: the 8 bytes after them are left over; without
     * them, a second-layout pi job, read with ranks 0. */
    patch32(0, 64);
    expect_bad(HY_EPROTO, 0);
    set_payload_len(64);
    {
        hy_error e64 = {0};
        cr_assert_eq(decode_copy(bad, bad_len, 0, &m2, &e64), 0, "%s", e64.msg);
        cr_assert_eq(m2.u.submit.ranks, 0);
    }
    submit_pi();
    /* The first layout's 56 bytes, exact: the 16 bytes after them are left over. */
    patch32(0, 56);
    expect_bad(HY_EPROTO, 0);
    set_payload_len(56); /* and without them, a first-layout pi job */
    hy_error err = {0};
    cr_assert_eq(decode_copy(bad, bad_len, 0, &m2, &err), 0, "%s", err.msg);
    cr_assert_eq(m2.u.submit.transport, 0);

    submit_pi();
    patch32(0, UINT32_MAX);
    expect_bad(HY_EPROTO, 0);

    set_payload_len(2); /* no room for body_size itself */
    expect_bad(HY_EPROTO, 0);
    set_payload_len(0);
    expect_bad(HY_EPROTO, 0);

    /* Bytes after the last item from a peer of this version. */
    golden_msg(0, &m1);
    prepare(&m1);
    set_payload_len(24);
    expect_bad(HY_EPROTO, 0);
}

Test(msg, body_size_larger_is_a_newer_peer)
{
    /* A newer PING with 8 more body bytes and some variable data after: read what we know. */
    golden_msg(0, &m1);
    prepare(&m1);
    patch32(0, 24);
    set_payload_len(40);
    patch64(16, 0xffffffffffffffffull);
    patch64(24, 0x1111111111111111ull);
    patch64(32, 0x2222222222222222ull);
    hy_error err = {0};
    cr_assert_eq(decode_copy(bad, bad_len, 0, &m2, &err), 0, "%s", err.msg);
    cr_assert_eq(m2.u.ping.nonce, 0x0102030405060708ull);

    /* A newer HELLO: the name starts at align8(body_size) = 24. */
    golden_msg(1, &m1);
    prepare(&m1);
    memmove(bad + HY_IPC_HEADER + 24, bad + HY_IPC_HEADER + 16, 9);
    memset(bad + HY_IPC_HEADER + 16, 0xee, 8);
    patch32(0, 20);
    set_payload_len(33);
    cr_assert_eq(decode_copy(bad, bad_len, 0, &m2, &err), 0, "%s", err.msg);
    /* decode_copy freed the bytes the name pointed at: check the length only */
    cr_assert_eq(m2.u.hello.name.len, 9u);
}

Test(msg, bad_strings)
{
    golden_msg(1, &m1); /* HELLO "hybridctl" */
    prepare(&m1);
    patch32(12, 10); /* one byte past the payload */
    expect_bad(HY_EPROTO, 0);
    patch32(12, HY_IPC_NAME_MAX + 1); /* above the limit */
    expect_bad(HY_ELIMIT, 0);
    patch32(12, UINT32_MAX);
    expect_bad(HY_ELIMIT, 0);
    patch32(12, 8); /* a byte left over after the name */
    expect_bad(HY_EPROTO, 0);

    golden_msg(3, &m1); /* ERROR "n too large" */
    prepare(&m1);
    patch32(16, HY_IPC_MESSAGE_MAX + 1);
    expect_bad(HY_ELIMIT, 0);
    patch32(16, 12);
    expect_bad(HY_EPROTO, 0);
    patch32(16, 11);
    patch32(4, 0); /* code 0 is not an error */
    expect_bad(HY_EPROTO, 0);

    golden_msg(4, &m1); /* WELCOME "hybridd" */
    prepare(&m1);
    patch32(40, 65);
    expect_bad(HY_ELIMIT, 0);
    patch32(40, 8);
    expect_bad(HY_EPROTO, 0);

    golden_msg(1, &m1); /* HELLO with an empty version range */
    prepare(&m1);
    patch16(4, 2);
    patch16(6, 1);
    expect_bad(HY_EPROTO, 0);
}

Test(msg, bad_submit_enums)
{
    submit_pi();
    patch16(4, 0);
    expect_bad(HY_EINVAL, 0); /* job */
    patch16(4, 5);
    expect_bad(HY_EINVAL, 0);

    submit_pi();
    patch16(6, 0);
    expect_bad(HY_EBACKEND, 0);
    patch16(6, HY_BACKEND_COUNT + 1);
    expect_bad(HY_EBACKEND, 0);
    hy_error err = {0};
    cr_assert_eq(decode_copy(bad, bad_len, 0, &m2, &err), HY_EBACKEND);
    for (int b = 1; b <= HY_BACKEND_COUNT; b++) /* the sentence lists what is valid */
        cr_expect(strstr(err.msg, hy_backend_name(b)), "no %s in: %s", hy_backend_name(b),
                  err.msg);
    for (uint16_t b = 1; b <= HY_BACKEND_COUNT; b++) { /* every backend runs single jobs */
        patch16(6, b);
        cr_assert_eq(decode_copy(bad, bad_len, 0, &m2, &err), 0, "%s", err.msg);
        cr_assert_eq(m2.u.submit.backend, b);
    }
    patch16(6, HY_BACKEND_AUTO); /* the daemon's choice */
    cr_assert_eq(decode_copy(bad, bad_len, 0, &m2, &err), 0, "%s", err.msg);
    patch16(6, HY_BACKEND_AUTO - 1);
    expect_bad(HY_EBACKEND, 0);
    patch16(6, HY_BACKEND_AUTO + 1);
    expect_bad(HY_EBACKEND, 0);

    submit_pi();
    patch16(4, HY_JOB_COMPARE_PI);
    /* An empty backends mask and an empty thread list ask for the daemon's defaults. */
    cr_assert_eq(decode_copy(bad, bad_len, 0, &m2, &err), 0, "%s", err.msg);
    cr_assert_eq(m2.u.submit.backends, 0u);
    cr_assert_eq(m2.u.submit.nthreads_list, 0u);
    patch32(48, 1u << 0); /* bit 0 is no backend */
    expect_bad(HY_EBACKEND, 0);
    patch32(48, 1u << (HY_BACKEND_COUNT + 1));
    expect_bad(HY_EBACKEND, 0);
    patch32(48, 1u << HY_BACKEND_COUNT | 1u << (HY_BACKEND_COUNT + 1));
    expect_bad(HY_EBACKEND, 0);
    patch32(48, HY_BACKEND_MASK_ALL); /* every backend there is */
    cr_assert_eq(decode_copy(bad, bad_len, 0, &m2, &err), 0, "%s", err.msg);
    cr_assert_eq(m2.u.submit.backends, HY_BACKEND_MASK_ALL);

    /* A single job's transport: 0 (default), 1 pipe, 2 shm; nothing else. */
    submit_pi();
    patch16(6, HY_BACKEND_PROCESS);
    for (uint16_t t = 0; t <= HY_TRANSPORT_SHM; t++) {
        patch16(56, t);
        cr_assert_eq(decode_copy(bad, bad_len, 0, &m2, &err), 0, "%s", err.msg);
        cr_assert_eq(m2.u.submit.transport, t);
    }
    patch16(58, HY_IPC_WARMUP_MAX); /* warm-ups: up to the limit */
    cr_assert_eq(decode_copy(bad, bad_len, 0, &m2, &err), 0, "%s", err.msg);
    cr_assert_eq(m2.u.submit.warmup, HY_IPC_WARMUP_MAX);
    patch16(58, HY_IPC_WARMUP_MAX + 1);
    expect_bad(HY_ELIMIT, 0);
    patch16(58, 0);
    patch16(56, 3);
    expect_bad(HY_EINVAL, 0);
    memset(&err, 0, sizeof err);
    cr_assert_eq(decode_copy(bad, bad_len, 0, &m2, &err), HY_EINVAL);
    cr_assert(strstr(err.msg, "transport 3"), "the sentence names the field: %s", err.msg);
    patch16(56, UINT16_MAX);
    expect_bad(HY_EINVAL, 0);
    patch16(56, 0);
    patch32(60, 0x8); /* a single job ignores the compare's mask */
    cr_assert_eq(decode_copy(bad, bad_len, 0, &m2, &err), 0, "%s", err.msg);
    patch16(58, 0xffff); /* warmup, reserved before: far above the limit */
    expect_bad(HY_ELIMIT, 0);
    patch16(58, 0);

    /* A compare's transports: bits 1 (pipe) and 2 (shm); 0 means pipe alone. */
    static hy_msg_submit cmp = {.job = HY_JOB_COMPARE_SORT, .backends = 1u << HY_BACKEND_PROCESS,
                                .dtype = HY_DT_F32, .array = HY_ARRAY_MEMFD, .n = 100,
                                .nthreads_list = 1, .threads_list = {2}};
    memset(&m1, 0, sizeof m1);
    m1.type = HY_MSG_SUBMIT;
    m1.u.submit = cmp;
    prepare(&m1);
    for (uint32_t t = 0; t <= 0x6; t += 2) {
        patch32(60, t);
        cr_assert_eq(decode_copy(bad, bad_len, 1, &m2, &err), 0, "%s", err.msg);
        cr_assert_eq(m2.u.submit.transports, t);
    }
    patch32(60, 0x8);
    expect_bad(HY_EINVAL, 1);
    memset(&err, 0, sizeof err);
    cr_assert_eq(decode_copy(bad, bad_len, 1, &m2, &err), HY_EINVAL);
    cr_assert(strstr(err.msg, "transports mask 0x8"), "the sentence names the field: %s",
              err.msg);
    patch32(60, 0x1); /* bit 0 is no transport */
    expect_bad(HY_EINVAL, 1);
    patch32(60, 0x6 | 1u << 31);
    expect_bad(HY_EINVAL, 1);
    patch32(60, 0x2);
    patch16(56, 9); /* a compare ignores the single job's transport */
    cr_assert_eq(decode_copy(bad, bad_len, 1, &m2, &err), 0, "%s", err.msg);
    patch32(28, HY_ARRAY_FDS); /* a compare writes no output: no fds array */
    expect_bad(HY_EINVAL, 2);
    patch32(28, HY_ARRAY_MEMFD);

    submit_pi();
    patch16(4, HY_JOB_SORT);
    patch32(28, HY_ARRAY_MEMFD);
    expect_bad(HY_EDTYPE, 1); /* dtype 0 */
    patch16(14, 7);
    expect_bad(HY_EDTYPE, 1);
    patch16(14, HY_DT_I64);
    cr_assert_eq(decode_copy(bad, bad_len, 1, &m2, &err), 0, "%s", err.msg);

    submit_pi();
    patch16(10, 3);
    expect_bad(HY_EINVAL, 0); /* mode */
    submit_pi();
    patch16(12, 3);
    expect_bad(HY_EINVAL, 0); /* nogil */
    submit_pi();
    patch32(16, 0); /* threads 0 asks for the backend's pool, the daemon's default */
    cr_assert_eq(decode_copy(bad, bad_len, 0, &m2, &err), 0, "%s", err.msg);
    cr_assert_eq(m2.u.submit.threads, 0u);
    patch16(6, HY_BACKEND_OPENCL);
    cr_assert_eq(decode_copy(bad, bad_len, 0, &m2, &err), 0, "%s", err.msg);
    submit_pi();
    patch32(52, 1);
    expect_bad(HY_EINVAL, 0); /* a thread list on a single job */
    submit_pi();
    patch32(28, HY_ARRAY_INLINE);
    expect_bad(HY_EINVAL, 0); /* pi takes no array */
}

Test(msg, bad_submit_lists_and_arrays)
{
    /* A compare pi with 2 thread counts, then broken in turn. */
    memset(&m1, 0, sizeof m1);
    m1.type = HY_MSG_SUBMIT;
    m1.u.submit = (hy_msg_submit){.job = HY_JOB_COMPARE_PI, .backends = 0x6, .n = 10,
                                  .nthreads_list = 2, .threads_list = {1, 2}};
    prepare(&m1);
    patch32(52, HY_IPC_THREADS_MAX + 1);
    expect_bad(HY_ELIMIT, 0);
    patch32(52, 0); /* the daemon's default list, but the given one's bytes are left over */
    expect_bad(HY_EPROTO, 0);
    patch32(52, 3); /* past the payload */
    expect_bad(HY_EPROTO, 0);
    patch32(52, 2);
    patch32(76, 0); /* a thread count of 0: the list starts at 72 */
    expect_bad(HY_EINVAL, 0);

    static const int32_t a[5] = {5, -1, 3, 0, 2};
    submit_sort_inline(HY_DT_I32, 5, a, sizeof a);
    hy_error err = {0};
    cr_assert_eq(decode_copy(bad, bad_len, 0, &m2, &err), 0, "%s", err.msg);
    patch64(32, 6); /* n says 24 bytes, 20 follow */
    expect_bad(HY_EPROTO, 0);
    patch64(32, 4); /* n says 16 bytes, 20 follow */
    expect_bad(HY_EPROTO, 0);
    patch64(32, 1ull << 62); /* n * 4 overflows 64 bits */
    expect_bad(HY_ELIMIT, 0);
    patch64(32, UINT64_MAX / 8 + 1);
    patch16(14, HY_DT_F64); /* n * 8 wraps to 0 */
    expect_bad(HY_ELIMIT, 0);
    patch64(32, 5);
    patch16(14, HY_DT_I32);
    expect_bad(HY_EPROTO, 1); /* an inline array with an fd */

    submit_sort_inline(HY_DT_I32, 5, a, sizeof a);
    patch32(28, HY_ARRAY_MEMFD);
    set_payload_len(72);
    expect_bad(HY_EPROTO, 0); /* a memfd array without its fd */
    expect_bad(HY_EPROTO, 2); /* or with two */
    cr_assert_eq(decode_copy(bad, bad_len, 1, &m2, &err), 0, "%s", err.msg);
    patch32(28, 3);
    expect_bad(HY_EINVAL, 1);
    /* An fds array: exactly two fds, the input and the output. */
    patch32(28, HY_ARRAY_FDS);
    cr_assert_eq(decode_copy(bad, bad_len, 2, &m2, &err), 0, "%s", err.msg);
    cr_assert_eq(m2.u.submit.array, (uint32_t)HY_ARRAY_FDS);
    expect_bad(HY_EPROTO, 0);
    expect_bad(HY_EPROTO, 1);
    expect_bad(HY_EPROTO, 3);
    patch32(28, 5); /* past the last kind */
    expect_bad(HY_EINVAL, 2);
    patch32(28, HY_ARRAY_NONE);
    expect_bad(HY_EINVAL, 0); /* a sort needs an array */

    /* fds on a message that takes none, and flags that disagree with the fds */
    golden_msg(0, &m1);
    prepare(&m1);
    expect_bad(HY_EPROTO, 1);
    bad[8] = HY_IPC_F_FDS;
    expect_bad(HY_EPROTO, 0);
}

Test(msg, bad_submit_files)
{
    hy_error err = {0};
    /* Paths with another array, an array files without both paths or on a compare, an fd
     * with it, a path above the limit. */
    submit_files("/in.npy", "/out.npy");
    prepare(&m1);
    patch32(28, HY_ARRAY_MEMFD);
    expect_bad(HY_EINVAL, 0);
    patch32(28, HY_ARRAY_INLINE);
    expect_bad(HY_EINVAL, 0);
    patch32(28, HY_ARRAY_FILES);
    patch16(4, HY_JOB_COMPARE_SORT);
    expect_bad(HY_EINVAL, 0);
    patch16(4, HY_JOB_PI);
    expect_bad(HY_EINVAL, 0);
    patch16(4, HY_JOB_SORT);
    patch16(68, 0);
    expect_bad(HY_EINVAL, 0);
    patch16(68, 8);
    expect_bad(HY_EPROTO, 1);
    patch16(68, 4097);
    expect_bad(HY_ELIMIT, 0);
    patch16(68, 9); /* one byte more than the payload holds */
    expect_bad(HY_EPROTO, 0);
    patch16(68, 8);
    cr_assert_eq(decode_copy(bad, bad_len, 0, &m2, &err), 0, "%s", err.msg);
}

Test(msg, bad_result_and_devices)
{
    static hy_result_row rows[2];
    memset(&m1, 0, sizeof m1);
    m1.type = HY_MSG_RESULT;
    m1.u.result = (hy_msg_result){.job = HY_JOB_PI, .nrows = 2, .job_id = 1, .rows = rows};
    prepare(&m1);
    patch16(6, HY_IPC_ROWS_MAX + 1);
    expect_bad(HY_ELIMIT, 0);
    patch16(6, UINT16_MAX);
    expect_bad(HY_ELIMIT, 0);
    patch16(6, 3); /* past the payload */
    expect_bad(HY_EPROTO, 0);
    patch16(6, 2);
    patch32(8, 64); /* row_size */
    expect_bad(HY_EPROTO, 0);
    patch32(8, 0);
    expect_bad(HY_EPROTO, 0);
    patch32(8, UINT32_MAX); /* 2 x 4 GiB: past the payload, without overflow */
    expect_bad(HY_EPROTO, 0);
    patch32(8, 127); /* below the first layout's 128 */
    expect_bad(HY_EPROTO, 0);
    patch32(8, 128); /* the first layout's rows: 64 bytes left over */
    expect_bad(HY_EPROTO, 0);
    patch32(8, HY_IPC_ROW_SIZE + 1); /* past the payload */
    expect_bad(HY_EPROTO, 0);
    patch32(8, HY_IPC_ROW_SIZE);
    patch32(12, 1); /* an array byte that is not there */
    expect_bad(HY_EPROTO, 0);
    patch32(12, 0);
    patch16(4, 9);
    expect_bad(HY_EINVAL, 0); /* job */

    static hy_device_record devs[1];
    memset(&m1, 0, sizeof m1);
    m1.type = HY_MSG_DEVICES_REPLY;
    m1.u.devices.ndevices = 1;
    m1.u.devices.devices = devs;
    prepare(&m1);
    patch32(4, HY_IPC_DEVICES_MAX + 1);
    expect_bad(HY_ELIMIT, 0);
    patch32(4, 2);
    expect_bad(HY_EPROTO, 0);
    patch32(4, 1);
    patch32(8, 351);
    expect_bad(HY_EPROTO, 0);

    /* The 16-byte body of the layout before the CPU pools were added: below the minimum. */
    m1.u.devices.ndevices = 0;
    prepare(&m1);
    patch32(0, 16);
    expect_bad(HY_EPROTO, 0);
    set_payload_len(16); /* an old sender's whole frame, no records */
    expect_bad(HY_EPROTO, 0);
}

/* JOBS_REPLY's golden, read back field by field; its limits refused. */
Test(msg, jobs_reply_fields_and_limits)
{
    uint8_t want[256];
    unsigned gi = NGOLDEN - 3;
    cr_assert(strstr(goldens[gi].what, "JOBS_REPLY"));
    size_t n = unhex(goldens[gi].hex, want, sizeof want);
    hy_error err = {0};
    cr_assert_eq(decode_bytes(want, n, 0, &m2, &err), 0, "%s", err.msg);
    const hy_msg_jobs_reply *r = &m2.u.jobs_reply;
    cr_assert_eq(r->njobs, 1u);
    cr_assert_eq(r->others_queued, 3u);
    cr_assert_eq(r->others_running, 1u);
    const hy_job_record *j = &r->jobs[0];
    cr_assert_eq(j->job_id, 7u);
    cr_assert_eq(j->uid, 1000u);
    cr_assert_eq(j->state, 2);
    cr_assert_eq(j->device, HY_JOB_DEVICE_NONE);
    cr_assert_eq(j->dtype, HY_DT_F64);
    cr_assert_eq(j->threads, 2u);
    cr_assert_eq(j->n, 1000000u);
    cr_assert_eq(j->queued_ns, 2000000000u);
    cr_assert_eq(j->running_ns, 1500000000u);
    cr_assert_eq(j->done, 500u);
    cr_assert_eq(j->total, 1000u);
    cr_assert_eq(j->predicted_ns, 3000000000u);
    cr_assert_eq(j->wait_ns, 0u);

    memcpy(bad, want, n);
    bad_len = n;
    patch32(4, HY_IPC_JOBS_MAX + 1); /* more records than the protocol allows */
    expect_bad(HY_ELIMIT, 0);
    patch32(4, 2); /* two records, one present */
    expect_bad(HY_EPROTO, 0);
    patch32(4, 1);
    patch32(8, HY_IPC_JOB_SIZE - 8); /* records shorter than the layout */
    expect_bad(HY_EPROTO, 0);
    patch32(8, HY_IPC_JOB_SIZE);
    hy_msg_jobs_reply big = {.njobs = HY_IPC_JOBS_MAX + 1, .jobs = j};
    memset(&m1, 0, sizeof m1);
    m1.type = HY_MSG_JOBS_REPLY;
    m1.u.jobs_reply = big;
    size_t len;
    hy_iov bulk;
    static uint8_t buf[1 << 16];
    cr_assert_neq(hy_msg_encode(&m1, buf, sizeof buf, &len, &bulk, HY_IPC_MAX_PAYLOAD, &err), 0,
                  "a reply above the record limit is not encoded");
}

Test(msg, bad_status_reply)
{
    memset(&m1, 0, sizeof m1);
    m1.type = HY_MSG_STATUS_REPLY;
    m1.u.status = (hy_msg_status_reply){.clients = 1, .version = S("hybridd 1.0")};
    prepare(&m1);
    /* 136 bytes with the first four backends' counters, and 16 more for each later one */
    cr_assert_eq(bad_len, HY_IPC_HEADER + STATUS_BODY + 11);
    hy_error err = {0};
    cr_assert_eq(decode_copy(bad, bad_len, 0, &m2, &err), 0, "%s", err.msg);
    patch32(128, HY_IPC_NAME_MAX + 1); /* above the limit, whatever the payload holds */
    expect_bad(HY_ELIMIT, 0);
    patch32(128, UINT32_MAX);
    expect_bad(HY_ELIMIT, 0);
    patch32(128, 12); /* one byte past the payload */
    expect_bad(HY_EPROTO, 0);
    patch32(128, 10); /* a byte left over after the version */
    expect_bad(HY_EPROTO, 0);

    /* A version of the longest allowed length that the payload does not hold. */
    patch32(128, HY_IPC_NAME_MAX);
    expect_bad(HY_EPROTO, 0);

    /* The old 64-byte body is below the minimum. */
    patch32(128, 11);
    patch32(0, 64);
    expect_bad(HY_EPROTO, 0);
    patch32(0, 135);
    expect_bad(HY_EPROTO, 0);
    /* 136, the first layout, exact: the version read at 136 leaves 16 bytes over. */
    patch32(0, 136);
    expect_bad(HY_EPROTO, 0);
    patch32(0, STATUS_BODY + 8); /* a newer body: the version 8 bytes on, past the payload */
    expect_bad(HY_EPROTO, 0);
}

/* ---- first layouts: what a peer built before the process backend sent ---- */

/* Written by hand from the first layouts (SUBMIT body 56, rows of 128 bytes, STATUS_REPLY
 * body 136). A decoder of this version must read them; each is built so that a decoder that
 * looked for a newer field where the first layout has something else would fail. */
static const golden first_layouts[] = {
    {"SUBMIT body 56, request 3: compare pi, backends locked|process, threads 2 and 8, "
     "n 10^8, seed 7, 3 repeats",
     "48 59 44 31 01 00 05 00 00 00 00 00 40 00 00 00 03 00 00 00 00 00 00 00"
     "38 00 00 00 | 03 00 | 00 00 | 00 00 | 00 00 | 00 00 | 00 00"
     "00 00 00 00 | 03 00 00 00 | 00 00 00 00 | 00 00 00 00"
     "00 e1 f5 05 00 00 00 00 | 07 00 00 00 00 00 00 00 | 28 00 00 00 | 02 00 00 00"
     "02 00 00 00 | 08 00 00 00", /* threads_list at 56: read as transports, 8 is refused */
     {0, 0}, {0, 0}},
    {"SUBMIT body 56, request 4: sort, process, 4 threads, i32, inline [3, 1, 2]",
     "48 59 44 31 01 00 05 00 00 00 00 00 44 00 00 00 04 00 00 00 00 00 00 00"
     "38 00 00 00 | 02 00 | 05 00 | 00 00 | 01 00 | 00 00 | 01 00"
     "04 00 00 00 | 01 00 00 00 | 00 00 00 00 | 01 00 00 00"
     "03 00 00 00 00 00 00 00 | 00 00 00 00 00 00 00 00 | 00 00 00 00 | 00 00 00 00"
     "03 00 00 00 | 01 00 00 00 | 02 00 00 00", /* the array at 56: read as transport, 3 */
     {0, 0}, {0, 0}},
    {"RESULT rows of 128, request 5: pi, job 9, one native row",
     "48 59 44 31 01 00 08 00 00 00 00 00 98 00 00 00 05 00 00 00 00 00 00 00"
     "18 00 00 00 | 01 00 | 01 00 | 80 00 00 00 | 00 00 00 00 | 09 00 00 00 00 00 00 00"
     /* row: backend, device, mode, flags, threads, copies, n, hits */
     "02 00 | 00 00 | 01 00 | 00 00 | 04 00 00 00 | 01 00 00 00"
     "40 42 0f 00 00 00 00 00 | 8a fc 0b 00 00 00 00 00"
     /* estimate 3.125, std_error 0.5, median, min, max */
     "00 00 00 00 00 00 09 40 | 00 00 00 00 00 00 e0 3f"
     "64 00 00 00 00 00 00 00 | 5a 00 00 00 00 00 00 00 | 6e 00 00 00 00 00 00 00"
     /* lock_handoffs, lock_wait_ns, lock_hold_ns, h2d_ns, kernel_ns, d2h_ns */
     "00 00 00 00 00 00 00 00 | 00 00 00 00 00 00 00 00 | 00 00 00 00 00 00 00 00"
     "00 00 00 00 00 00 00 00 | 00 00 00 00 00 00 00 00 | 00 00 00 00 00 00 00 00"
     /* launches, repeat */
     "00 00 00 00 | 05 00 00 00",
     {0, 0}, {0, 0}},
    {"STATUS_REPLY body 136, request 6: 1 client, version hybridd 0.9",
     "48 59 44 31 01 00 0c 00 00 00 00 00 93 00 00 00 06 00 00 00 00 00 00 00"
     "88 00 00 00 | 01 00 00 00 | 00 ca 9a 3b 00 00 00 00"
     "01 00 00 00 00 00 00 00 | 02 00 00 00 00 00 00 00 | 03 00 00 00 00 00 00 00"
     "04 00 00 00 00 00 00 00 | 05 00 00 00 00 00 00 00 | 01 00 00 00 | 01 00 00 00"
     "0b 00 00 00 00 00 00 00 | 0c 00 00 00 00 00 00 00 | 0d 00 00 00 00 00 00 00"
     "0e 00 00 00 00 00 00 00"
     "15 00 00 00 00 00 00 00 | 16 00 00 00 00 00 00 00 | 17 00 00 00 00 00 00 00"
     "18 00 00 00 00 00 00 00"
     "0b 00 00 00 | 00 00 00 00"
     "68 79 62 72 69 64 64 20 30 2e 39", /* the version at 136: read as process's counters */
     {0, 0}, {0, 0}},
    {"ACCEPTED body 16, request 9: job 7, 2 jobs ahead",
     "48 59 44 31 01 00 06 00 00 00 00 00 10 00 00 00 09 00 00 00 00 00 00 00"
     "10 00 00 00 | 02 00 00 00 | 07 00 00 00 00 00 00 00",
     {0, 0}, {0, 0}},
    {"SUBMIT body 64, request 5: compare pi, serial|native, n 10^6, seed 1, warm-up 2, "
     "threads 1 and 2",
     "48 59 44 31 01 00 05 00 00 00 00 00 48 00 00 00 05 00 00 00 00 00 00 00"
     "40 00 00 00 | 03 00 | 00 00 | 00 00 | 00 00 | 00 00 | 00 00"
     "00 00 00 00 | 00 00 00 00 | 00 00 00 00 | 00 00 00 00"
     "40 42 0f 00 00 00 00 00 | 01 00 00 00 00 00 00 00 | 06 00 00 00 | 02 00 00 00"
     "00 00 | 02 00 | 00 00 00 00"
     "01 00 00 00 | 02 00 00 00", /* threads_list at 64: read as ranks 1, then past the end */
     {0, 0}, {0, 0}},
};
#define NFIRST (sizeof first_layouts / sizeof first_layouts[0])

/* Decodes first_layouts[i] into m2 from `keep`, which must outlive m2's pointers. */
static size_t decode_first(unsigned i, uint8_t *keep, size_t cap)
{
    size_t n = unhex(first_layouts[i].hex, keep, cap);
    hy_error err = {0};
    memset(&m2, 0xA5, sizeof m2); /* a field left unset shows as 0xA5... */
    int rc = decode_bytes(keep, n, 0, &m2, &err);
    cr_assert_eq(rc, 0, "%s: %s", first_layouts[i].what, err.msg);
    return n;
}

/* The current layout, written by encoding what a first layout decoded to, decodes to the
 * same fields: an upgrade, never a change. */
static void reencode_first(hy_msg *m, uint8_t *out, size_t cap, size_t want_len)
{
    size_t len = encode_all(m, out, cap);
    cr_assert_eq(len, want_len, "%s re-encoded to %zu bytes, want %zu",
                 hy_msg_type_name(m->type), len, want_len);
    hy_error err = {0};
    cr_assert_eq(decode_bytes(out, len, 0, &m1, &err), 0, "%s", err.msg);
}

Test(msg, first_layout_submit)
{
    static uint8_t g[512], out[512];

    size_t n = decode_first(0, g, sizeof g);
    const hy_msg_submit *s = &m2.u.submit;
    cr_assert_eq(m2.request, 3u);
    cr_assert_eq(s->job, HY_JOB_COMPARE_PI);
    cr_assert_eq(s->backends, 1u << HY_BACKEND_LOCKED | 1u << HY_BACKEND_PROCESS);
    cr_assert_eq(s->repeat, 3u);
    cr_assert_eq(s->n, 100000000u);
    cr_assert_eq(s->seed, 7u);
    cr_assert_eq(s->transport, 0); /* not in a 56-byte body: the default */
    cr_assert_eq(s->transports, 0u);
    cr_assert_eq(s->nthreads_list, 2u);
    cr_assert_eq(s->threads_list[0], 2u);
    cr_assert_eq(s->threads_list[1], 8u);
    /* Re-encoded: body 72, the list moved to 72. */
    reencode_first(&m2, out, sizeof out, n + 16);
    cr_assert_eq(out[HY_IPC_HEADER], 72);
    cr_assert_eq(out[HY_IPC_HEADER + 72], 2);
    cr_assert_eq(m1.u.submit.transports, 0u);
    cr_assert_eq(m1.u.submit.threads_list[1], 8u);

    n = decode_first(1, g, sizeof g);
    cr_assert_eq(m2.request, 4u);
    cr_assert_eq(s->job, HY_JOB_SORT);
    cr_assert_eq(s->backend, HY_BACKEND_PROCESS);
    cr_assert_eq(s->threads, 4u);
    cr_assert_eq(s->dtype, HY_DT_I32);
    cr_assert_eq(s->array, (uint32_t)HY_ARRAY_INLINE);
    cr_assert_eq(s->transport, 0);
    cr_assert_eq(s->transports, 0u);
    cr_assert_eq(s->inline_bytes, 12u);
    /* the array at align8(56) = 56 */
    cr_assert_eq((const uint8_t *)s->inline_data, g + HY_IPC_HEADER + 56);
    static const int32_t arr[3] = {3, 1, 2};
    cr_assert(memcmp(s->inline_data, arr, sizeof arr) == 0);
    reencode_first(&m2, out, sizeof out, n + 16);
    cr_assert(memcmp(out + HY_IPC_HEADER + 72, arr, sizeof arr) == 0);
    cr_assert_eq(m1.u.submit.transport, 0);

    /* A 56-byte body is held to the same exactness as a 72-byte one. */
    memcpy(bad, g, n);
    bad_len = n;
    set_payload_len((uint32_t)(n - HY_IPC_HEADER + 4)); /* 4 bytes after the array */
    expect_bad(HY_EPROTO, 0);
    n = unhex(first_layouts[0].hex, bad, sizeof bad);
    bad_len = n;
    set_payload_len((uint32_t)(n - HY_IPC_HEADER + 8)); /* 8 bytes after the list */
    expect_bad(HY_EPROTO, 0);
    /* The same bytes read as the second layout (body 64): the list where transport and
     * transports are, and no list after them. */
    n = unhex(first_layouts[0].hex, bad, sizeof bad);
    bad_len = n;
    patch32(0, 64);
    expect_bad(HY_EINVAL, 0); /* transports 0x8 */

    /* The second layout (body 64): ranks 0, the list at 64; re-encoded, at 72. */
    n = decode_first(5, g, sizeof g);
    cr_assert_eq(m2.request, 5u);
    cr_assert_eq(s->job, HY_JOB_COMPARE_PI);
    cr_assert_eq(s->warmup, 2);
    cr_assert_eq(s->ranks, 0);
    cr_assert_eq(s->nthreads_list, 2u);
    cr_assert_eq(s->threads_list[1], 2u);
    reencode_first(&m2, out, sizeof out, n + 8);
    cr_assert_eq(out[HY_IPC_HEADER + 72], 1);
    /* Read as the current layout (body 72), ranks is the list's first count and the second
     * count is output_len, a path without array files. */
    n = unhex(first_layouts[5].hex, bad, sizeof bad);
    bad_len = n;
    patch32(0, 72);
    expect_bad(HY_EINVAL, 0);
}

Test(msg, first_layout_result)
{
    static uint8_t g[512], out[512];
    size_t n = decode_first(2, g, sizeof g);
    const hy_msg_result *r = &m2.u.result;
    cr_assert_eq(r->job, HY_JOB_PI);
    cr_assert_eq(r->nrows, 1);
    cr_assert_eq(r->job_id, 9u);
    cr_assert_eq(r->array_bytes, 0u);
    const hy_result_row *w = &r->rows_in[0];
    cr_assert_eq(w->backend, HY_BACKEND_NATIVE);
    cr_assert_eq(w->mode, HY_MODE_SPLIT);
    cr_assert_eq(w->threads, 4u);
    cr_assert_eq(w->copies, 1u);
    cr_assert_eq(w->n, 1000000u);
    cr_assert_eq(w->hits, 785546u);
    cr_assert_eq(w->estimate, 3.125);
    cr_assert_eq(w->std_error, 0.5);
    cr_assert_eq(w->median_ns, 100u);
    cr_assert_eq(w->min_ns, 90u);
    cr_assert_eq(w->max_ns, 110u);
    cr_assert_eq(w->repeat, 5u);
    /* none of the newer fields: zero, never stale bytes */
    cr_assert_eq(w->bytes_moved, 0u);
    cr_assert_eq(w->startup_ns, 0u);
    cr_assert_eq(w->merge_ns, 0u);
    cr_assert_eq(w->transport, 0);
    cr_assert_eq(w->workers_started, 0u);
    cr_assert_eq(w->mean_ns | w->stddev_ns | w->q1_ns | w->q3_ns | w->warmup_ns, 0u);
    reencode_first(&m2, out, sizeof out, n + 8 + HY_IPC_ROW_SIZE - 128); /* body 32 */
    cr_assert_eq(m1.u.result.nrank_rows, 0u);
    cr_assert_eq(out[HY_IPC_HEADER + 8] | out[HY_IPC_HEADER + 9] << 8,
                 HY_IPC_ROW_SIZE); /* row_size */
    expect_row_eq(&m1.u.result.rows_in[0], w, 0);
}

/* A row across MPI ranks: its rank records sit between the rows and the (absent) array, at
 * the stride the body's rank_row_size says; a first-layout body has none; their count and
 * size are checked like any record list's. */
Test(msg, result_rank_records)
{
    static hy_result_row rows[1];
    static const hy_rank_row ranks[2] = {
        {.rank = 0, .row = 0, .share = 500001, .compute_ns = 0x1112131415161718ull,
         .exchange_ns = 0x2122232425262728ull, .io_ns = 0x3132333435363738ull,
         .bytes_sent = 0x4142434445464748ull},
        {.rank = 1, .row = 0, .share = 499999, .compute_ns = 5, .exchange_ns = 6, .io_ns = 7,
         .bytes_sent = 8}};
    fill_rows(rows, 1, 0.5);
    memset(&m1, 0, sizeof m1);
    m1.type = HY_MSG_RESULT;
    m1.u.result = (hy_msg_result){.job = HY_JOB_PI, .nrows = 1, .job_id = 3, .rows = rows,
                                  .nrank_rows = 2, .rank_rows = ranks};
    size_t len = round_trip(&m1, 0);
    cr_assert_eq(len, HY_IPC_HEADER + 32u + 264u + 2 * 48u);
    const uint8_t *p = rt_buf + HY_IPC_HEADER;
    cr_assert_eq(p[0], 32);  /* body_size */
    cr_assert_eq(p[24], 2);  /* nrank_rows */
    cr_assert_eq(p[28], 48); /* rank_row_size */
    const uint8_t *rec1 = p + 32 + 264 + 48;
    cr_assert_eq(rec1[0], 1);                    /* rank */
    cr_assert_eq(rec1[8] | rec1[9] << 8 | rec1[10] << 16, 499999); /* share */
    cr_assert_eq(rec1[40], 8);                   /* bytes_sent */
    const hy_msg_result *r = &m2.u.result;
    cr_assert_eq(r->nrank_rows, 2u);
    cr_assert_eq(r->rank_rows, r->rank_rows_in);
    for (unsigned i = 0; i < 2; i++)
        cr_assert(memcmp(&r->rank_rows_in[i], &ranks[i], sizeof ranks[i]) == 0, "record %u", i);

    /* A newer sender's longer records: the first 48 bytes of each, the rest skipped. */
    static uint8_t f[2048];
    memcpy(f, rt_buf, HY_IPC_HEADER + 32 + 264);
    uint8_t *q = f + HY_IPC_HEADER;
    q[28] = 56;
    for (unsigned i = 0; i < 2; i++) {
        memcpy(q + 32 + 264 + 56 * i, p + 32 + 264 + 48 * i, 48);
        memset(q + 32 + 264 + 56 * i + 48, 0xEE, 8);
    }
    uint32_t pl = 32 + 264 + 2 * 56;
    memcpy(f + 12, &pl, 4); /* the header's length, little-endian here as on the wire */
    hy_error err = {0};
    memset(&m2, 0xA5, sizeof m2);
    cr_assert_eq(decode_bytes(f, HY_IPC_HEADER + pl, 0, &m2, &err), 0, "%s", err.msg);
    cr_assert(memcmp(&m2.u.result.rank_rows_in[1], &ranks[1], sizeof ranks[1]) == 0);

    /* Records shorter than 48 bytes, or more than 64 of them, are refused. */
    memcpy(f, rt_buf, len);
    f[HY_IPC_HEADER + 28] = 40;
    expect_error(decode_bytes(f, len, 0, &m2, &err), HY_EPROTO, &err);
    memcpy(f, rt_buf, len);
    f[HY_IPC_HEADER + 24] = HY_IPC_RANK_ROWS_MAX + 1;
    expect_error(decode_bytes(f, len, 0, &m2, &err), HY_ELIMIT, &err);
    m1.u.result.nrank_rows = HY_IPC_RANK_ROWS_MAX + 1;
    cr_assert_neq(hy_msg_encode(&m1, f, sizeof f, &len, &(hy_iov){0}, 1u << 20, &err), 0);
}

/* docs/protocol.md's golden RESULT with rank records, byte for byte both ways. */
static const char result_ranks_golden[] =
    "48 59 44 31 01 00 08 00 00 00 00 00 88 01 00 00 06 00 00 00 00 00 00 00"
    "20 00 00 00 | 01 00 | 01 00 | 08 01 00 00 | 00 00 00 00 | 03 00 00 00 00 00 00 00"
    "02 00 00 00 | 30 00 00 00"
    "02 00 00 00 01 00 00 00 02 00 00 00 01 00 00 00 40 42 0f 00 00 00 00 00"
    "f6 fb 0b 00 00 00 00 00 7a 00 8b fc fa 21 09 40 2d 43 1c eb e2 36 5a 3f"
    "80 84 1e 00 00 00 00 00 80 84 1e 00 00 00 00 00 80 84 1e 00 00 00 00 00"
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
    "00 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 02 00 00 00 00 00 00 00"
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
    "00 00 00 00 | 00 00 00 00 | 20 a1 07 00 00 00 00 00 | 60 e3 16 00 00 00 00 00"
    "20 a1 07 00 00 00 00 00 | 00 00 00 00 00 00 00 00 | 40 01 00 00 00 00 00 00"
    "01 00 00 00 | 00 00 00 00 | 20 a1 07 00 00 00 00 00 | c0 5c 15 00 00 00 00 00"
    "c0 27 09 00 00 00 00 00 | 00 00 00 00 00 00 00 00 | 40 01 00 00 00 00 00 00";

Test(msg, golden_result_rank_records)
{
    static uint8_t want[1024], got[1024];
    static hy_result_row row = {.backend = HY_BACKEND_NATIVE, .mode = HY_MODE_SPLIT,
                                .threads = 2, .copies = 1, .n = 1000000, .hits = 785398,
                                .estimate = 3.141592, .std_error = 0.0016,
                                .median_ns = 2000000, .min_ns = 2000000, .max_ns = 2000000,
                                .repeat = 1, .ranks = 2};
    static const hy_rank_row ranks[2] = {
        {.rank = 0, .share = 500000, .compute_ns = 1500000, .exchange_ns = 500000,
         .bytes_sent = 320},
        {.rank = 1, .share = 500000, .compute_ns = 1400000, .exchange_ns = 600000,
         .bytes_sent = 320}};
    size_t n = unhex(result_ranks_golden, want, sizeof want);
    memset(&m1, 0, sizeof m1);
    m1.type = HY_MSG_RESULT;
    m1.request = 6;
    m1.u.result = (hy_msg_result){.job = HY_JOB_PI, .nrows = 1, .job_id = 3, .rows = &row,
                                  .nrank_rows = 2, .rank_rows = ranks};
    size_t len = encode_all(&m1, got, sizeof got);
    cr_assert_eq(len, n);
    cr_assert(memcmp(got, want, n) == 0, "the encoder's bytes differ from the golden ones");
    hy_error err = {0};
    memset(&m2, 0xA5, sizeof m2);
    cr_assert_eq(decode_bytes(want, n, 0, &m2, &err), 0, "%s", err.msg);
    expect_row_eq(&m2.u.result.rows_in[0], &row, 0);
    cr_assert_eq(m2.u.result.nrank_rows, 2u);
    for (unsigned i = 0; i < 2; i++)
        cr_assert(memcmp(&m2.u.result.rank_rows_in[i], &ranks[i], sizeof ranks[i]) == 0);
}

/* Rows of any size from 128 up: the first 128 bytes always, the process fields (160), the
 * spread (200), the prediction, ranks and passes (216) and hybrid's participants and the
 * device's overlapped copies (264) only when the rows hold them, bytes past 264 skipped. The rows' stride and the array after
 * them follow row_size. */
Test(msg, result_row_sizes)
{
    static hy_result_row rows[3];
    static uint8_t enc[2048], frame[2048];
    _Static_assert(HY_IPC_HEADER + 24 + 3 * 300 + 16 <= 2048, "room for the largest rows");
    static const uint8_t arr[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    fill_rows(rows, 3, 0.25);
    memset(&m1, 0, sizeof m1);
    m1.type = HY_MSG_RESULT;
    m1.u.result = (hy_msg_result){.job = HY_JOB_COMPARE_SORT, .nrows = 3, .job_id = 11,
                                  .rows = rows, .array = arr, .array_bytes = sizeof arr};
    encode_all(&m1, enc, sizeof enc);
    const uint32_t sizes[] = {128, 136, 159, 160, 168, 199, 200, 208, 215, 216, 256, 263, 264, 300};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        uint32_t rs = sizes[k];
        /* Rebuild the frame with rows of rs bytes: each row's first min(rs, 264) bytes, then
         * 0xEE filler a reader must skip; the array at the next multiple of 8. */
        memcpy(frame, enc, HY_IPC_HEADER + 24);
        uint8_t *p = frame + HY_IPC_HEADER;
        p[0] = 24; /* the first layout's body: its rows start at 24 */
        for (int b = 0; b < 4; b++)
            p[8 + b] = (uint8_t)(rs >> (8 * b));
        for (unsigned i = 0; i < 3; i++) {
            uint32_t keep = rs < HY_IPC_ROW_SIZE ? rs : HY_IPC_ROW_SIZE;
            memcpy(p + 24 + rs * i, enc + HY_IPC_HEADER + 32 + HY_IPC_ROW_SIZE * i, keep);
            memset(p + 24 + rs * i + keep, 0xEE, rs - keep);
        }
        uint32_t at = (24 + 3 * rs + 7) & ~7u;
        memset(p + 24 + 3 * rs, 0, at - (24 + 3 * rs));
        memcpy(p + at, arr, sizeof arr);
        uint32_t pl = at + (uint32_t)sizeof arr;
        for (int b = 0; b < 4; b++)
            frame[12 + b] = (uint8_t)(pl >> (8 * b));

        hy_error err = {0};
        memset(&m2, 0xA5, sizeof m2);
        cr_assert_eq(decode_bytes(frame, HY_IPC_HEADER + pl, 0, &m2, &err), 0,
                     "row_size %u: %s", rs, err.msg);
        cr_assert_eq(m2.u.result.nrows, 3);
        cr_assert(memcmp(m2.u.result.array, arr, sizeof arr) == 0, "row_size %u array", rs);
        for (unsigned i = 0; i < 3; i++) {
            hy_result_row want = rows[i];
            if (rs < 160) {
                want.bytes_moved = want.startup_ns = want.merge_ns = 0;
                want.transport = 0;
                want.workers_started = 0;
            }
            if (rs < 200)
                want.mean_ns = want.stddev_ns = want.q1_ns = want.q3_ns = want.warmup_ns = 0;
            if (rs < 216) {
                want.predicted_ns = 0;
                want.ranks = want.passes = 0;
            }
            if (rs < 264) {
                want.cpu_items = want.cpu_busy_ns = want.dev_busy_ns = want.overlap_ns = 0;
                want.cpu_chunks = want.dev_chunks = want.balance_ppm = want.devices_used = 0;
            }
            expect_row_eq(&m2.u.result.rows_in[i], &want, i);
        }
    }
}

Test(msg, first_layout_status_reply)
{
    static uint8_t g[512], out[512];
    size_t n = decode_first(3, g, sizeof g);
    const hy_msg_status_reply *s = &m2.u.status;
    cr_assert_eq(s->clients, 1u);
    cr_assert_eq(s->uptime_ns, 1000000000u);
    cr_assert_eq(s->jobs_queued, 1u);
    cr_assert_eq(s->jobs_cancelled, 5u);
    cr_assert_eq(s->devices, 1u);
    cr_assert_eq(s->devices_usable, 1u);
    for (unsigned i = 0; i < 4; i++) {
        cr_assert_eq(s->backend_jobs[i], 11u + i);
        cr_assert_eq(s->backend_busy_ns[i], 21u + i);
    }
    cr_assert_eq(s->backend_jobs[4], 0u); /* no process counters in a 136-byte body */
    cr_assert_eq(s->backend_busy_ns[4], 0u);
    expect_str(s->version, "hybridd 0.9", 11);
    cr_assert_eq((const uint8_t *)s->version.p, g + HY_IPC_HEADER + 136);
    reencode_first(&m2, out, sizeof out, n + STATUS_BODY - 136);
    cr_assert_eq(out[HY_IPC_HEADER], STATUS_BODY);
    cr_assert(memcmp(out + HY_IPC_HEADER + STATUS_BODY, "hybridd 0.9", 11) == 0);
    cr_assert_eq(m1.u.status.backend_jobs[4], 0u);
    cr_assert_eq(m1.u.status.backend_busy_ns[3], 24u);

    /* A 136-byte body is held to the same exactness: a byte after the version is refused. */
    memcpy(bad, g, n);
    bad_len = n;
    set_payload_len((uint32_t)(n - HY_IPC_HEADER + 1));
    expect_bad(HY_EPROTO, 0);
}

/* A daemon that states no plan: the job's id and place, and the plan read as 0 (unknown);
 * re-encoded as the current layout; a byte after its 16-byte body refused. A reader of the
 * first layout skips the current layout's appended 16 bytes by body_size, as
 * body_size_larger_is_a_newer_peer shows for every type. */
/* Each backend past the first four appends its (jobs, busy_ns) pair to STATUS_REPLY's body,
 * in backend order; a reply whose body stops after some pairs decodes the rest as 0. */
Test(msg, status_reply_appends_a_pair_per_backend)
{
    memset(&m1, 0, sizeof m1);
    m1.type = HY_MSG_STATUS_REPLY;
    for (unsigned b = 0; b < HY_BACKEND_COUNT; b++) {
        m1.u.status.backend_jobs[b] = 1000 + b;
        m1.u.status.backend_busy_ns[b] = 2000 + b;
    }
    prepare(&m1);
    const uint8_t *p = bad + HY_IPC_HEADER;
    uint32_t body = STATUS_BODY;
    cr_assert_eq(p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24, body);
    for (unsigned b = 0; b < HY_BACKEND_COUNT; b++) {
        size_t jobs = b < 4 ? 64 + 8 * b : 136 + 16 * (b - 4), busy = b < 4 ? 96 + 8 * b : jobs + 8;
        cr_expect_eq(p[jobs], (uint8_t)(1000 + b), "backend %u's jobs not at %zu", b + 1, jobs);
        cr_expect_eq(p[jobs + 1], (uint8_t)((1000 + b) >> 8));
        cr_expect_eq(p[busy], (uint8_t)(2000 + b), "backend %u's busy not at %zu", b + 1, busy);
    }
    for (unsigned extra = 0; extra <= HY_BACKEND_COUNT - 4; extra++) {
        prepare(&m1);
        patch32(0, 136 + 16 * extra);
        set_payload_len(136 + 16 * extra);
        hy_error err = {0};
        cr_assert_eq(decode_copy(bad, bad_len, 0, &m2, &err), 0, "%s", err.msg);
        for (unsigned b = 0; b < HY_BACKEND_COUNT; b++) {
            bool sent = b < 4 + extra;
            cr_expect_eq(m2.u.status.backend_jobs[b], sent ? 1000 + b : 0u,
                         "body %u: backend %u", 136 + 16 * extra, b + 1);
            cr_expect_eq(m2.u.status.backend_busy_ns[b], sent ? 2000 + b : 0u);
        }
    }
}

Test(msg, first_layout_accepted)
{
    static uint8_t g[512], out[512];
    size_t n = decode_first(4, g, sizeof g);
    const hy_msg_accepted *a = &m2.u.accepted;
    cr_assert_eq(m2.request, 9u);
    cr_assert_eq(a->queue_position, 2u);
    cr_assert_eq(a->job_id, 7u);
    cr_assert_eq(a->nrows, 0);
    cr_assert_eq(a->threads, 0u);
    cr_assert_eq(a->repeat, 0u);
    cr_assert_eq(a->warmup, 0u);
    reencode_first(&m2, out, sizeof out, n + 16);
    cr_assert_eq(out[HY_IPC_HEADER], 32);
    cr_assert_eq(m1.u.accepted.job_id, 7u);
    cr_assert_eq(m1.u.accepted.nrows, 0);

    memcpy(bad, g, n);
    bad_len = n;
    set_payload_len((uint32_t)(n - HY_IPC_HEADER + 8));
    expect_bad(HY_EPROTO, 0);
}

/* DEVICES_REPLY, written by hand: a record of the current layout (416 bytes, the platform
 * appended at 352) and the same device in a first-layout record of 352 bytes. */
static const golden device_goldens[] = {
    {"DEVICES_REPLY request 8, records of 416: PoCL's CPU device, platform Portable Computing "
     "Language; 16 CPUs, pools 8 and 4, 5 ms, 6 workers",
     "48 59 44 31 01 00 0e 00 00 00 00 00 c0 01 00 00 08 00 00 00 00 00 00 00"
     "20 00 00 00 | 01 00 00 00 | a0 01 00 00 | 10 00 00 00 | 08 00 00 00 | 04 00 00 00"
     "88 13 00 00 | 06 00 00 00"
     /* record: index 0, type 2 (CPU), flags USABLE|POCL_CPU, 16 compute units, rsv,
      * global_mem 32 GiB, max_alloc 8 GiB */
     "00 00 00 00 | 02 00 | 03 00 | 10 00 00 00 | 00 00 00 00"
     "00 00 00 00 08 00 00 00 | 00 00 00 00 02 00 00 00"
     "63 70 75 00*93 "             /* name[96] "cpu" */
     "70 6f 63 6c 00*60 "          /* vendor[64] "pocl" */
     "36 2e 30 00*29 "             /* driver[32] "6.0" */
     "00*128 "                     /* problem[128]: none */
     "50 6f 72 74 61 62 6c 65 20 43 6f 6d 70 75 74 69 6e 67 20 4c 61 6e 67 75 61 67 65"
     "00*37",                     /* platform[64] */
     {0, 0}, {0, 0}},
    {"DEVICES_REPLY request 8, a first-layout record of 352: the same device, no platform",
     "48 59 44 31 01 00 0e 00 00 00 00 00 80 01 00 00 08 00 00 00 00 00 00 00"
     "20 00 00 00 | 01 00 00 00 | 60 01 00 00 | 10 00 00 00 | 08 00 00 00 | 04 00 00 00"
     "88 13 00 00 | 06 00 00 00"
     "00 00 00 00 | 02 00 | 03 00 | 10 00 00 00 | 00 00 00 00"
     "00 00 00 00 08 00 00 00 | 00 00 00 00 02 00 00 00"
     "63 70 75 00*93 | 70 6f 63 6c 00*60 | 36 2e 30 00*29 | 00*128",
     {0, 0}, {0, 0}},
};

static void devices_golden_msg(hy_msg *m, hy_device_record *rec)
{
    memset(rec, 0, sizeof *rec);
    *rec = (hy_device_record){.index = 0, .type = 2, .flags = HY_DEV_USABLE | HY_DEV_POCL_CPU,
                              .compute_units = 16, .global_mem = 32ull << 30,
                              .max_alloc = 8ull << 30};
    strcpy(rec->name, "cpu");
    strcpy(rec->vendor, "pocl");
    strcpy(rec->driver, "6.0");
    strcpy(rec->platform, "Portable Computing Language");
    memset(m, 0, sizeof *m);
    m->type = HY_MSG_DEVICES_REPLY;
    m->request = 8;
    m->u.devices = (hy_msg_devices_reply){.ndevices = 1, .cpu_online = 16, .native_threads = 8,
                                          .locked_threads = 4, .switch_interval_us = 5000,
                                          .process_workers = 6, .devices = rec};
}

static void expect_golden_device(const hy_msg_devices_reply *d, const char *platform)
{
    cr_assert_eq(d->ndevices, 1u);
    cr_assert_eq(d->cpu_online, 16u);
    cr_assert_eq(d->native_threads, 8u);
    cr_assert_eq(d->locked_threads, 4u);
    cr_assert_eq(d->switch_interval_us, 5000u);
    cr_assert_eq(d->process_workers, 6u);
    const hy_device_record *r = &d->devices_in[0];
    cr_assert_eq(r->index, 0u);
    cr_assert_eq(r->type, 2);
    cr_assert_eq(r->flags, HY_DEV_USABLE | HY_DEV_POCL_CPU);
    cr_assert_eq(r->compute_units, 16u);
    cr_assert_eq(r->global_mem, 32ull << 30);
    cr_assert_eq(r->max_alloc, 8ull << 30);
    cr_assert_str_eq(r->name, "cpu");
    cr_assert_str_eq(r->vendor, "pocl");
    cr_assert_str_eq(r->driver, "6.0");
    cr_assert_str_eq(r->problem, "");
    cr_assert_str_eq(r->platform, platform);
}

Test(msg, devices_reply_record_layouts)
{
    static uint8_t want[1024], got[1024], frame[1024];
    static hy_device_record rec;
    hy_error err = {0};

    /* This version writes the 416-byte record, byte for byte. */
    size_t n = unhex(device_goldens[0].hex, want, sizeof want);
    cr_assert_eq(n, HY_IPC_HEADER + 32u + 416u);
    devices_golden_msg(&m1, &rec);
    size_t len = encode_all(&m1, got, sizeof got);
    cr_assert_eq(len, n, "%zu bytes, want %zu", len, n);
    cr_assert(memcmp(got, want, n) == 0, "the encoded DEVICES_REPLY differs from the golden");
    memset(&m2, 0xA5, sizeof m2);
    cr_assert_eq(decode_bytes(want, n, 0, &m2, &err), 0, "%s", err.msg);
    expect_golden_device(&m2.u.devices, "Portable Computing Language");

    /* A first-layout sender's 352-byte record: every old field, an empty platform; the
     * re-encoded message is the current layout with the platform left empty. */
    n = unhex(device_goldens[1].hex, want, sizeof want);
    cr_assert_eq(n, HY_IPC_HEADER + 32u + 352u);
    memset(&m2, 0xA5, sizeof m2);
    cr_assert_eq(decode_bytes(want, n, 0, &m2, &err), 0, "%s", err.msg);
    expect_golden_device(&m2.u.devices, "");
    len = encode_all(&m2, got, sizeof got);
    cr_assert_eq(len, n + 64);
    cr_assert_eq(got[HY_IPC_HEADER + 8], 0xa0); /* record_size 416 */
    cr_assert_eq(got[HY_IPC_HEADER + 9], 0x01);
    cr_assert(memcmp(got + HY_IPC_HEADER + 12, want + HY_IPC_HEADER + 12, 20 + 352) == 0);
    for (size_t j = HY_IPC_HEADER + 32 + 352; j < len; j++)
        cr_assert_eq(got[j], 0, "platform byte %zu of an old record is %u", j, got[j]);

    /* A reader of the first layout, which takes the first 352 bytes of each record and steps
     * by record_size, finds every old field of the new record where it was. */
    cr_assert_eq(unhex(device_goldens[0].hex, got, sizeof got), HY_IPC_HEADER + 32u + 416u);
    cr_assert(memcmp(got + HY_IPC_HEADER + 32, want + HY_IPC_HEADER + 32, 352) == 0);

    /* Records of other sizes: 384 (between the layouts) has no platform; 448 (a newer
     * sender) has it, and its 32 bytes of filler are skipped. */
    n = unhex(device_goldens[0].hex, want, sizeof want);
    const uint32_t sizes[] = {384, 448};
    for (size_t k = 0; k < 2; k++) {
        uint32_t rs = sizes[k];
        memcpy(frame, want, HY_IPC_HEADER + 32);
        uint8_t *p = frame + HY_IPC_HEADER;
        for (int b = 0; b < 4; b++)
            p[8 + b] = (uint8_t)(rs >> (8 * b));
        uint32_t keep = rs < 416 ? rs : 416;
        memcpy(p + 32, want + HY_IPC_HEADER + 32, keep);
        memset(p + 32 + keep, 0xEE, rs - keep);
        uint32_t pl = 32 + rs;
        for (int b = 0; b < 4; b++)
            frame[12 + b] = (uint8_t)(pl >> (8 * b));
        memset(&m2, 0xA5, sizeof m2);
        cr_assert_eq(decode_bytes(frame, HY_IPC_HEADER + pl, 0, &m2, &err), 0,
                     "record_size %u: %s", rs, err.msg);
        expect_golden_device(&m2.u.devices, rs >= 416 ? "Portable Computing Language" : "");
    }
}

Test(msg, devices_reply_truncations_and_byte_changes)
{
    static uint8_t g[1024], t[1024], out[64 * 1024], out2[64 * 1024];
    for (unsigned i = 0; i < sizeof device_goldens / sizeof device_goldens[0]; i++) {
        const golden *gd = &device_goldens[i];
        check_truncations(gd);
        size_t n = unhex(gd->hex, g, sizeof g);
        for (size_t at = 0; at < n; at++) {
            for (unsigned v = 0; v < 256; v += 7) {
                if (v == g[at])
                    continue;
                memcpy(t, g, n);
                t[at] = (uint8_t)v;
                uint8_t *c = malloc(n); /* exact size: ASan catches any read past it */
                cr_assert(c);
                memcpy(c, t, n);
                hy_error err = {0};
                int rc = decode_bytes(c, n, 0, &m2, &err);
                if (rc == HY_IPC_INCOMPLETE) {
                    cr_assert(at >= 12 && at < 16, "%s byte %zu = %u: incomplete", gd->what, at,
                              v);
                } else if (rc < 0) {
                    cr_assert_eq(err.code, rc);
                    cr_assert_gt(strlen(err.msg), 0u);
                } else {
                    size_t len = encode_all(&m2, out, sizeof out);
                    hy_error e2 = {0};
                    cr_assert_eq(decode_bytes(out, len, 0, &m1, &e2), 0, "%s byte %zu = %u: %s",
                                 gd->what, at, v, e2.msg);
                    cr_assert_eq(encode_all(&m1, out2, sizeof out2), len);
                    cr_assert(memcmp(out, out2, len) == 0);
                }
                free(c);
            }
        }
    }
}

Test(msg, first_layout_truncations_and_byte_changes)
{
    static uint8_t g[512], t[512], out[1024], out2[1024];
    for (unsigned i = 0; i < NFIRST; i++) {
        const golden *gd = &first_layouts[i];
        check_truncations(gd);
        /* Every single-byte change is refused with a sentence, asks for more (a length), or
         * decodes to a message whose encoding is a fixed point of decode and encode. */
        size_t n = unhex(gd->hex, g, sizeof g);
        for (size_t at = 0; at < n; at++) {
            for (unsigned v = 0; v < 256; v += 7) {
                if (v == g[at])
                    continue;
                memcpy(t, g, n);
                t[at] = (uint8_t)v;
                uint8_t *c = malloc(n); /* exact size: ASan catches any read past it */
                cr_assert(c);
                memcpy(c, t, n);
                hy_error err = {0};
                int rc = decode_bytes(c, n, 0, &m2, &err);
                if (rc == HY_IPC_INCOMPLETE) {
                    cr_assert(at >= 12 && at < 16, "%s byte %zu = %u: incomplete", gd->what, at,
                              v);
                } else if (rc < 0) {
                    cr_assert_eq(err.code, rc);
                    cr_assert_gt(strlen(err.msg), 0u);
                } else {
                    size_t len = encode_all(&m2, out, sizeof out);
                    hy_error e2 = {0};
                    cr_assert_eq(decode_bytes(out, len, 0, &m1, &e2), 0, "%s byte %zu = %u: %s",
                                 gd->what, at, v, e2.msg);
                    cr_assert_eq(encode_all(&m1, out2, sizeof out2), len);
                    cr_assert(memcmp(out, out2, len) == 0);
                }
                free(c);
            }
        }
    }
}

/* ---- the encoder's own checks ---- */

Test(msg, encode_refuses)
{
    uint8_t buf[2048];
    size_t len;
    hy_iov bulk;
    hy_error err = {0};
    static char big[HY_IPC_MESSAGE_MAX + 1];

    memset(&m1, 0, sizeof m1);
    m1.type = 0;
    expect_error(hy_msg_encode(&m1, buf, sizeof buf, &len, &bulk, HY_IPC_MAX_PAYLOAD, &err),
                 HY_EINVAL, &err);
    m1.type = HY_MSG_HELLO;
    m1.u.hello = (hy_msg_hello){1, 1, 0, {big, HY_IPC_NAME_MAX + 1}};
    expect_error(hy_msg_encode(&m1, buf, sizeof buf, &len, &bulk, HY_IPC_MAX_PAYLOAD, &err),
                 HY_EINVAL, &err);
    m1.type = HY_MSG_STATUS_REPLY;
    m1.u.status = (hy_msg_status_reply){.version = {big, HY_IPC_NAME_MAX + 1}};
    expect_error(hy_msg_encode(&m1, buf, sizeof buf, &len, &bulk, HY_IPC_MAX_PAYLOAD, &err),
                 HY_EINVAL, &err);
    m1.u.status.version = (hy_str){NULL, 3}; /* a length without bytes */
    expect_error(hy_msg_encode(&m1, buf, sizeof buf, &len, &bulk, HY_IPC_MAX_PAYLOAD, &err),
                 HY_EINVAL, &err);
    m1.u.status.version = (hy_str){big, HY_IPC_NAME_MAX}; /* the longest is fine */
    cr_assert_eq(hy_msg_encode(&m1, buf, sizeof buf, &len, &bulk, HY_IPC_MAX_PAYLOAD, &err), 0,
                 "%s", err.msg);
    cr_assert_eq(len, HY_IPC_HEADER + STATUS_BODY + HY_IPC_NAME_MAX);
    m1.type = HY_MSG_ERROR;
    m1.u.error = (hy_msg_error){HY_EINVAL, 0, {big, HY_IPC_MESSAGE_MAX + 1}};
    expect_error(hy_msg_encode(&m1, buf, sizeof buf, &len, &bulk, HY_IPC_MAX_PAYLOAD, &err),
                 HY_EINVAL, &err);
    m1.u.error.message.len = HY_IPC_MESSAGE_MAX;
    expect_error(hy_msg_encode(&m1, buf, 100, &len, &bulk, HY_IPC_MAX_PAYLOAD, &err),
                 HY_ELIMIT, &err); /* buffer too small */
    expect_error(hy_msg_encode(&m1, buf, sizeof buf, &len, &bulk, 100, &err), HY_ELIMIT,
                 &err); /* above max_payload */

    m1.type = HY_MSG_RESULT;
    m1.u.result = (hy_msg_result){.job = 1, .nrows = HY_IPC_ROWS_MAX + 1};
    expect_error(hy_msg_encode(&m1, buf, sizeof buf, &len, &bulk, HY_IPC_MAX_PAYLOAD, &err),
                 HY_EINVAL, &err);

    m1.type = HY_MSG_SUBMIT;
    m1.u.submit = (hy_msg_submit){.job = HY_JOB_COMPARE_PI, .nthreads_list = 33};
    expect_error(hy_msg_encode(&m1, buf, sizeof buf, &len, &bulk, HY_IPC_MAX_PAYLOAD, &err),
                 HY_EINVAL, &err);
    m1.u.submit = (hy_msg_submit){.job = HY_JOB_SORT, .dtype = HY_DT_I64,
                                  .array = HY_ARRAY_INLINE, .n = 3, .inline_data = big,
                                  .inline_bytes = 23};
    expect_error(hy_msg_encode(&m1, buf, sizeof buf, &len, &bulk, HY_IPC_MAX_PAYLOAD, &err),
                 HY_EINVAL, &err);
    m1.u.submit.inline_bytes = 24; /* the bulk counts towards max_payload */
    expect_error(hy_msg_encode(&m1, buf, sizeof buf, &len, &bulk, 72 + 23, &err), HY_ELIMIT,
                 &err);
    cr_assert_eq(hy_msg_encode(&m1, buf, sizeof buf, &len, &bulk, 72 + 24, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(len, HY_IPC_HEADER + 72u);
    cr_assert_eq(bulk.base, (const void *)big); /* uncopied */
    cr_assert_eq(bulk.len, 24u);
}

/* ---- hy_msg_push: the same bytes as hy_msg_encode, through a writer and a socket ---- */


static size_t push_and_read(const hy_msg *m, uint8_t *out, size_t cap)
{
    int sv[2];
    hy_frame_writer *w = NULL;
    hy_error err = {0};
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cr_assert_eq(hy_frame_writer_new(1u << 20, &w, &err), 0, "%s", err.msg);
    cr_assert_eq(hy_msg_push(w, m, NULL, 0, HY_IPC_MAX_PAYLOAD, &err), 0, "%s", err.msg);
    size_t got = 0;
    /* The socket buffer may take less than a frame: alternate flushing and reading. */
    for (int i = 0; i < 1000; i++) {
        int rc = hy_frame_writer_flush(w, sv[0], &err);
        cr_assert_geq(rc, 0, "%s", err.msg);
        ssize_t r = recv(sv[1], out + got, cap - got, MSG_DONTWAIT);
        if (r > 0)
            got += (size_t)r;
        if (rc == 0 && hy_frame_writer_pending(w) == 0 && r <= 0)
            break;
    }
    hy_frame_writer_free(w);
    close(sv[0]);
    close(sv[1]);
    return got;
}

Test(msg, push_matches_encode)
{
    static uint8_t want[80 * 1024], got[80 * 1024];
    static hy_result_row rows[HY_IPC_ROWS_MAX];
    static const int64_t arr[3] = {3, -2, 1};
    for (unsigned i = 0; i < HY_IPC_ROWS_MAX; i++)
        rows[i] = (hy_result_row){.backend = 2, .threads = i, .estimate = 3.14};

    for (unsigned i = 0; i < NGOLDEN; i++) {
        size_t n = unhex(goldens[i].hex, want, sizeof want);
        golden_msg(i, &m1);
        cr_assert_eq(push_and_read(&m1, got, sizeof got), n);
        cr_assert(memcmp(got, want, n) == 0, "%s: pushed bytes differ", goldens[i].what);
    }
    /* The large-buffer path (a full RESULT, 66 KiB of rows) and a bulk part. */
    memset(&m1, 0, sizeof m1);
    m1.type = HY_MSG_RESULT;
    m1.u.result = (hy_msg_result){.job = HY_JOB_SORT, .nrows = HY_IPC_ROWS_MAX, .rows = rows,
                                  .array = arr, .array_bytes = sizeof arr};
    size_t n = encode_all(&m1, want, sizeof want);
    cr_assert_eq(push_and_read(&m1, got, sizeof got), n);
    cr_assert(memcmp(got, want, n) == 0);
    hy_error err = {0};
    cr_assert_eq(decode_bytes(got, n, 0, &m2, &err), 0, "%s", err.msg);
    cr_assert_eq(m2.u.result.nrows, HY_IPC_ROWS_MAX);
    cr_assert_eq(m2.u.result.rows_in[255].threads, 255u);
    cr_assert(memcmp(m2.u.result.array, arr, sizeof arr) == 0);

    /* A refused message queues nothing. */
    m1.u.result.nrows = HY_IPC_ROWS_MAX + 1;
    hy_frame_writer *w = NULL;
    cr_assert_eq(hy_frame_writer_new(1u << 20, &w, &err), 0);
    expect_error(hy_msg_push(w, &m1, NULL, 0, HY_IPC_MAX_PAYLOAD, &err), HY_EINVAL, &err);
    cr_assert_eq(hy_frame_writer_pending(w), 0u);
    hy_frame_writer_free(w);
}

/* ---- RANKS and RANKS_REPLY (hybridd --mpi: every rank's node, pools, devices, counters) ---- */

/* RANKS_REPLY request 4 from rank 1 of 2 (under MPI, every rank listed): one rank record
 * of host "n0" with no device, written by hand from docs/protocol.md. */
static const char ranks_golden[] =
    "48 59 44 31 01 00 14 00 00 00 00 00 b0 00 00 00 04 00 00 00 00 00 00 00"
    "20 00 00 00 | 01 00 00 00 | 90 00 00 00 | a0 01 00 00 | 01 00 00 00 | 02 00 00 00"
    "03 00 00 00 | 00 00 00 00"
    /* the rank record: rank 0, 0 devices, 8 cpus, 8 native, 4 locked, 2 workers, 0 usable,
     * 1 client, uptime 5e9 ns, 1 queued, 2 running, 3 done, 4 failed, 5 cancelled, "n0" */
    "00 00 00 00 | 00 00 00 00 | 08 00 00 00 | 08 00 00 00 | 04 00 00 00 | 02 00 00 00"
    "00 00 00 00 | 01 00 00 00 | 00 f2 05 2a 01 00 00 00 | 01 00 00 00 00 00 00 00"
    "02 00 00 00 00 00 00 00 | 03 00 00 00 00 00 00 00 | 04 00 00 00 00 00 00 00"
    "05 00 00 00 00 00 00 00 | 6e 30 00*62";

static void ranks_golden_msg(hy_msg *m, hy_rank_record *r)
{
    memset(r, 0, sizeof *r);
    *r = (hy_rank_record){.rank = 0, .cpu_online = 8, .native_threads = 8, .locked_threads = 4,
                          .process_workers = 2, .clients = 1, .uptime_ns = 5000000000ull,
                          .jobs_queued = 1, .jobs_running = 2, .jobs_done = 3,
                          .jobs_failed = 4, .jobs_cancelled = 5};
    strcpy(r->host, "n0");
    memset(m, 0, sizeof *m);
    m->type = HY_MSG_RANKS_REPLY;
    m->request = 4;
    m->u.ranks_reply = (hy_msg_ranks_reply){.nranks = 1, .rank = 1, .size = 2,
                                            .flags = HY_RANKS_MPI | HY_RANKS_REPLY_ALL,
                                            .ranks = r};
}

Test(msg, ranks_golden)
{
    static uint8_t want[512], got[512];
    static hy_rank_record rec;
    hy_error err = {0};
    size_t n = unhex(ranks_golden, want, sizeof want);
    cr_assert_eq(n, HY_IPC_HEADER + 32u + 144u);
    ranks_golden_msg(&m1, &rec);
    size_t len = encode_all(&m1, got, sizeof got);
    cr_assert_eq(len, n, "%zu bytes, want %zu", len, n);
    cr_assert(memcmp(got, want, n) == 0, "the encoded RANKS_REPLY differs from the golden");
    memset(&m2, 0xA5, sizeof m2);
    cr_assert_eq(decode_bytes(want, n, 0, &m2, &err), 0, "%s", err.msg);
    const hy_msg_ranks_reply *r = &m2.u.ranks_reply;
    cr_assert_eq(r->nranks, 1u);
    cr_assert_eq(r->rank, 1u);
    cr_assert_eq(r->size, 2u);
    cr_assert_eq(r->flags, HY_RANKS_MPI | HY_RANKS_REPLY_ALL);
    cr_assert_eq(r->ndevices, 0u);
    const hy_rank_record *g = &r->ranks_in[0];
    cr_assert_eq(g->cpu_online, 8u);
    cr_assert_eq(g->locked_threads, 4u);
    cr_assert_eq(g->process_workers, 2u);
    cr_assert_eq(g->uptime_ns, 5000000000ull);
    cr_assert_eq(g->jobs_cancelled, 5u);
    cr_assert_str_eq(g->host, "n0");
    check_truncations(&(golden){"RANKS_REPLY", ranks_golden, {0, 0}, {0, 0}});

    /* RANKS: its flags word, ALL. */
    static const char ask[] = "48 59 44 31 01 00 13 00 00 00 00 00 08 00 00 00 05 00 00 00 "
                              "00 00 00 00 | 08 00 00 00 | 01 00 00 00";
    n = unhex(ask, want, sizeof want);
    memset(&m1, 0, sizeof m1);
    m1 = (hy_msg){.type = HY_MSG_RANKS, .request = 5, .u.ranks = {.flags = HY_RANKS_ALL}};
    len = encode_all(&m1, got, sizeof got);
    cr_assert(len == n && memcmp(got, want, n) == 0, "the encoded RANKS differs");
    cr_assert_eq(decode_bytes(want, n, 0, &m2, &err), 0, "%s", err.msg);
    cr_assert_eq(m2.u.ranks.flags, HY_RANKS_ALL);
}

/* Three ranks, their devices in one list after the rank records (2, 0 and 1 of them): two
 * record lists, each sized by its own word. */
Test(msg, ranks_reply_round_trip)
{
    static hy_rank_record rk[3];
    static hy_device_record dv[3];
    memset(rk, 0, sizeof rk);
    memset(dv, 0, sizeof dv);
    for (unsigned i = 0; i < 3; i++) {
        rk[i] = (hy_rank_record){.rank = i, .ndevices = i == 0 ? 2 : i == 2 ? 1 : 0,
                                 .cpu_online = 2 + i, .native_threads = 10 + i,
                                 .locked_threads = 20 + i, .process_workers = 30 + i,
                                 .devices_usable = i == 0, .clients = i,
                                 .uptime_ns = 1000 + i, .jobs_done = 40 + i};
        snprintf(rk[i].host, sizeof rk[i].host, "node-%u", i);
        dv[i] = (hy_device_record){.index = i == 2 ? 0 : i, .type = 2, .compute_units = 4 + i};
        snprintf(dv[i].name, sizeof dv[i].name, "dev-%u", i);
        strcpy(dv[i].platform, "Portable Computing Language");
    }
    memset(rk[1].host, 'h', 64); /* the longest host name the wire holds */
    memset(&m1, 0, sizeof m1);
    m1.type = HY_MSG_RANKS_REPLY;
    m1.u.ranks_reply = (hy_msg_ranks_reply){.nranks = 3, .rank = 2, .size = 3,
                                            .flags = HY_RANKS_MPI | HY_RANKS_REPLY_ALL,
                                            .ndevices = 3, .ranks = rk, .devices = dv};
    cr_assert_eq(round_trip(&m1, 0), HY_IPC_HEADER + 32u + 3 * 144u + 3 * 416u);
    const hy_msg_ranks_reply *r = &m2.u.ranks_reply;
    cr_assert_eq(r->nranks, 3u);
    cr_assert_eq(r->ndevices, 3u);
    cr_assert_eq(r->rank, 2u);
    for (unsigned i = 0; i < 3; i++) {
        const hy_rank_record *g = &r->ranks_in[i];
        cr_assert_eq(g->rank, i);
        cr_assert_eq(g->ndevices, rk[i].ndevices);
        cr_assert_eq(g->native_threads, 10 + i);
        cr_assert_eq(g->process_workers, 30 + i);
        cr_assert_eq(g->jobs_done, 40u + i);
        cr_assert_str_eq(g->host, rk[i].host);
        cr_assert_str_eq(r->devices_in[i].name, dv[i].name);
        cr_assert_eq(r->devices_in[i].compute_units, 4 + i);
        cr_assert_str_eq(r->devices_in[i].platform, "Portable Computing Language");
    }
    cr_assert_eq(strlen(r->ranks_in[1].host), 64u);
    /* the two size words: rank_size 144 at 8, device_size 416 at 12 */
    cr_assert_eq(rt_buf[HY_IPC_HEADER + 8], 144);
    cr_assert_eq(rt_buf[HY_IPC_HEADER + 12], 0xa0);
    cr_assert_eq(rt_buf[HY_IPC_HEADER + 13], 0x01);
}

Test(msg, bad_ranks_reply)
{
    static hy_rank_record rk[1];
    static hy_device_record dv[1];
    memset(&m1, 0, sizeof m1);
    m1.type = HY_MSG_RANKS_REPLY;
    m1.u.ranks_reply = (hy_msg_ranks_reply){.nranks = 1, .size = 1, .ndevices = 1, .ranks = rk,
                                            .devices = dv};
    prepare(&m1);
    patch32(4, HY_IPC_RANKS_MAX + 1);
    expect_bad(HY_ELIMIT, 0);
    patch32(4, 2); /* past the payload */
    expect_bad(HY_EPROTO, 0);
    patch32(4, 1);
    patch32(8, 143); /* a rank record shorter than its layout */
    expect_bad(HY_EPROTO, 0);
    patch32(8, 144);
    patch32(12, 351); /* a device record shorter than the first layout's */
    expect_bad(HY_EPROTO, 0);
    patch32(12, 416);
    patch32(28, HY_IPC_RANK_DEVICES_MAX + 1);
    expect_bad(HY_ELIMIT, 0);
    patch32(28, 1);
    hy_error err = {0};
    cr_assert_eq(decode_copy(bad, bad_len, 0, &m2, &err), 0, "%s", err.msg);
    /* Too many records to encode: refused before a byte is written. */
    m1.u.ranks_reply.nranks = HY_IPC_RANKS_MAX + 1;
    uint8_t out[64];
    size_t len;
    hy_iov bulk;
    cr_assert_eq(hy_msg_encode(&m1, out, sizeof out, &len, &bulk, HY_IPC_MAX_PAYLOAD, &err),
                 HY_EINVAL);
}
