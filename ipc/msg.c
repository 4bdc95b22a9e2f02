/* ipc/msg.c: every message's body and variable data, to and from bytes, exactly as ipc.h and
 * docs/protocol.md lay them out. Decoding checks each length before use and never allocates. */
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "le.h"

/* ---- f64 on the wire: its IEEE-754 bits, little-endian (le.h has the integers) ---- */

static void putf64(uint8_t *p, double d)
{
    uint64_t v;
    memcpy(&v, &d, sizeof v); /* the IEEE-754 bits, NaN payloads included */
    put64(p, v);
}

static double getf64(const uint8_t *p)
{
    uint64_t v = get64(p);
    double d;
    memcpy(&d, &v, sizeof d);
    return d;
}

static uint64_t align8(uint64_t n)
{
    return (n + 7) & ~(uint64_t)7;
}

/* ---- the table of types ---- */

/* Body sizes: what an encoder writes, and the least a decoder takes (version 1's first
 * layout; fields appended since then are read only when the body holds them). A decoder
 * ignores more than it knows. */
static const struct {
    const char *name;
    uint32_t body, min;
} types[] = {
    [HY_MSG_HELLO] = {"HELLO", 16, 16},
    [HY_MSG_WELCOME] = {"WELCOME", 48, 48},
    [HY_MSG_PING] = {"PING", 16, 16},
    [HY_MSG_PONG] = {"PONG", 16, 16},
    [HY_MSG_SUBMIT] = {"SUBMIT", 64, 56},
    [HY_MSG_ACCEPTED] = {"ACCEPTED", 16, 16},
    [HY_MSG_PROGRESS] = {"PROGRESS", 32, 32},
    [HY_MSG_RESULT] = {"RESULT", 24, 24},
    [HY_MSG_ERROR] = {"ERROR", 24, 24},
    [HY_MSG_CANCEL] = {"CANCEL", 16, 16},
    [HY_MSG_STATUS] = {"STATUS", 8, 8},
    [HY_MSG_STATUS_REPLY] = {"STATUS_REPLY", 152, 136},
    [HY_MSG_DEVICES] = {"DEVICES", 8, 8},
    [HY_MSG_DEVICES_REPLY] = {"DEVICES_REPLY", 32, 32},
};

const char *hy_msg_type_name(int type)
{
    if (type < 0 || (size_t)type >= sizeof types / sizeof types[0])
        return NULL;
    return types[type].name;
}

static uint32_t body_size_of(int type)
{
    return hy_msg_type_name(type) ? types[type].body : 0;
}

static uint32_t body_min_of(int type)
{
    return hy_msg_type_name(type) ? types[type].min : 0;
}

/* The device record's NUL-padded text fields: offset and width on the wire. */
#define DEV_NAME 32u
#define DEV_VENDOR 128u
#define DEV_DRIVER 192u
#define DEV_PROBLEM 224u
#define DEV_PLATFORM 352u /* appended: only in records of HY_IPC_DEVICE_SIZE bytes or more */

/* ---- encoding ---- */

static int check_str(const char *tn, const char *field, hy_str s, uint32_t max, hy_error *err)
{
    if (s.len > max)
        return hy_error_set(err, HY_EINVAL, "%s %s of %u bytes is longer than the %u allowed",
                            tn, field, s.len, max);
    if (s.len > 0 && !s.p)
        return hy_error_set(err, HY_EINVAL, "%s %s has %u bytes but no pointer", tn, field,
                            s.len);
    return 0;
}

static void put_text(uint8_t *dst, const char *src, size_t width)
{
    /* The struct's fields hold one byte more than the wire for the NUL; anything past the
     * wire width is cut, and the rest of the field stays NUL (the buffer was zeroed). */
    for (size_t i = 0; i < width && src[i]; i++)
        dst[i] = (uint8_t)src[i];
}

static void put_row(uint8_t *p, const hy_result_row *r)
{
    put16(p + 0, r->backend);
    put16(p + 2, r->device);
    put16(p + 4, r->mode);
    put16(p + 6, r->flags);
    put32(p + 8, r->threads);
    put32(p + 12, r->copies);
    put64(p + 16, r->n);
    put64(p + 24, r->hits);
    putf64(p + 32, r->estimate);
    putf64(p + 40, r->std_error);
    put64(p + 48, r->median_ns);
    put64(p + 56, r->min_ns);
    put64(p + 64, r->max_ns);
    put64(p + 72, r->lock_handoffs);
    put64(p + 80, r->lock_wait_ns);
    put64(p + 88, r->lock_hold_ns);
    put64(p + 96, r->h2d_ns);
    put64(p + 104, r->kernel_ns);
    put64(p + 112, r->d2h_ns);
    put32(p + 120, r->launches);
    put32(p + 124, r->repeat);
    put64(p + 128, r->bytes_moved);
    put64(p + 136, r->startup_ns);
    put64(p + 144, r->merge_ns);
    put16(p + 152, r->transport);
    put32(p + 156, r->workers_started);
}

static void put_device(uint8_t *p, const hy_device_record *d)
{
    put32(p + 0, d->index);
    put16(p + 4, d->type);
    put16(p + 6, d->flags);
    put32(p + 8, d->compute_units);
    put64(p + 16, d->global_mem);
    put64(p + 24, d->max_alloc);
    put_text(p + DEV_NAME, d->name, 96);
    put_text(p + DEV_VENDOR, d->vendor, 64);
    put_text(p + DEV_DRIVER, d->driver, 32);
    put_text(p + DEV_PROBLEM, d->problem, 128);
    put_text(p + DEV_PLATFORM, d->platform, 64);
}

/* How many payload bytes go to the buffer (body and small variable data, padding included)
 * and which bytes travel as bulk; checks what the layout depends on. */
static int measure(const hy_msg *m, uint64_t *small, hy_iov *bulk, hy_error *err)
{
    const char *tn = hy_msg_type_name(m->type);
    uint64_t body = body_size_of(m->type);
    int rc;

    bulk->base = NULL;
    bulk->len = 0;
    if (!tn || body == 0)
        return hy_error_set(err, HY_EINVAL, "cannot encode message type %d: unknown",
                            (int)m->type);
    *small = body;
    switch (m->type) {
    case HY_MSG_HELLO:
        if ((rc = check_str(tn, "name", m->u.hello.name, HY_IPC_NAME_MAX, err)))
            return rc;
        *small += m->u.hello.name.len;
        break;
    case HY_MSG_WELCOME:
        if ((rc = check_str(tn, "server", m->u.welcome.server, HY_IPC_NAME_MAX, err)))
            return rc;
        *small += m->u.welcome.server.len;
        break;
    case HY_MSG_SUBMIT: {
        const hy_msg_submit *s = &m->u.submit;
        if (s->nthreads_list > HY_IPC_THREADS_MAX)
            return hy_error_set(err, HY_EINVAL, "SUBMIT nthreads_list %u is above %u",
                                s->nthreads_list, HY_IPC_THREADS_MAX);
        *small += 4u * s->nthreads_list;
        if (s->array == HY_ARRAY_INLINE) {
            size_t size = hy_dtype_size(s->dtype);
            if (size == 0)
                return hy_error_set(err, HY_EDTYPE, "SUBMIT dtype %u is unknown", s->dtype);
            if (s->n > UINT32_MAX / size || s->inline_bytes != s->n * size)
                return hy_error_set(err, HY_EINVAL,
                                    "SUBMIT inline_bytes %zu is not n %llu times %zu bytes",
                                    s->inline_bytes, (unsigned long long)s->n, size);
            if (s->inline_bytes > 0 && !s->inline_data)
                return hy_error_set(err, HY_EINVAL, "SUBMIT inline array has no pointer");
            *small = align8(*small); /* the array starts 8-aligned, even when empty */
            bulk->base = s->inline_data;
            bulk->len = s->inline_bytes;
        } else if (s->inline_bytes != 0) {
            return hy_error_set(err, HY_EINVAL,
                                "SUBMIT has inline_bytes %zu but array %u is not inline",
                                s->inline_bytes, s->array);
        }
        break;
    }
    case HY_MSG_RESULT: {
        const hy_msg_result *r = &m->u.result;
        if (r->nrows > HY_IPC_ROWS_MAX)
            return hy_error_set(err, HY_EINVAL, "RESULT nrows %u is above %u", r->nrows,
                                HY_IPC_ROWS_MAX);
        if (r->nrows > 0 && !r->rows)
            return hy_error_set(err, HY_EINVAL, "RESULT has %u rows but no pointer", r->nrows);
        if (r->array_bytes > 0 && !r->array)
            return hy_error_set(err, HY_EINVAL, "RESULT has %u array bytes but no pointer",
                                r->array_bytes);
        *small += (uint64_t)HY_IPC_ROW_SIZE * r->nrows; /* rows are 8-aligned by size */
        bulk->base = r->array;
        bulk->len = r->array_bytes;
        break;
    }
    case HY_MSG_ERROR:
        if ((rc = check_str(tn, "message", m->u.error.message, HY_IPC_MESSAGE_MAX, err)))
            return rc;
        *small += m->u.error.message.len;
        break;
    case HY_MSG_STATUS_REPLY:
        if ((rc = check_str(tn, "version", m->u.status.version, HY_IPC_NAME_MAX, err)))
            return rc;
        *small += m->u.status.version.len;
        break;
    case HY_MSG_DEVICES_REPLY: {
        const hy_msg_devices_reply *d = &m->u.devices;
        if (d->ndevices > HY_IPC_DEVICES_MAX)
            return hy_error_set(err, HY_EINVAL, "DEVICES_REPLY ndevices %u is above %u",
                                d->ndevices, HY_IPC_DEVICES_MAX);
        if (d->ndevices > 0 && !d->devices)
            return hy_error_set(err, HY_EINVAL, "DEVICES_REPLY has %u devices but no pointer",
                                d->ndevices);
        *small += (uint64_t)HY_IPC_DEVICE_SIZE * d->ndevices;
        break;
    }
    default:
        break;
    }
    return 0;
}

/* Writes the header and payload (without the bulk) to buf, which holds header + small. */
static void fill(const hy_msg *m, uint8_t *buf, uint64_t small, const hy_iov *bulk,
                 hy_frame_header *h)
{
    uint8_t *p = buf + HY_IPC_HEADER;
    uint32_t body = body_size_of(m->type);

    /* Zero first: reserved fields, padding and the tails of text fields are 0 on the wire. */
    memset(p, 0, (size_t)small);
    put32(p, body);
    switch (m->type) {
    case HY_MSG_HELLO: {
        const hy_msg_hello *x = &m->u.hello;
        put16(p + 4, x->min_version);
        put16(p + 6, x->max_version);
        put32(p + 8, x->features);
        put32(p + 12, x->name.len);
        if (x->name.len)
            memcpy(p + 16, x->name.p, x->name.len);
        break;
    }
    case HY_MSG_WELCOME: {
        const hy_msg_welcome *x = &m->u.welcome;
        put16(p + 4, x->version);
        put32(p + 8, x->features);
        put32(p + 12, x->max_payload);
        put32(p + 16, x->max_inline_bytes);
        put32(p + 20, x->max_jobs_per_client);
        put64(p + 24, x->max_samples);
        put64(p + 32, x->max_sort_elements);
        put32(p + 40, x->server.len);
        if (x->server.len)
            memcpy(p + 48, x->server.p, x->server.len);
        break;
    }
    case HY_MSG_PING:
    case HY_MSG_PONG:
        put64(p + 8, m->u.ping.nonce);
        break;
    case HY_MSG_SUBMIT: {
        const hy_msg_submit *x = &m->u.submit;
        put16(p + 4, x->job);
        put16(p + 6, x->backend);
        put16(p + 8, x->device);
        put16(p + 10, x->mode);
        put16(p + 12, x->nogil);
        put16(p + 14, x->dtype);
        put32(p + 16, x->threads);
        put32(p + 20, x->repeat);
        put32(p + 24, x->switch_interval_us);
        put32(p + 28, x->array);
        put64(p + 32, x->n);
        put64(p + 40, x->seed);
        put32(p + 48, x->backends);
        put32(p + 52, x->nthreads_list);
        put16(p + 56, x->transport);
        put32(p + 60, x->transports);
        for (uint32_t i = 0; i < x->nthreads_list; i++)
            put32(p + 64 + 4 * i, x->threads_list[i]);
        break;
    }
    case HY_MSG_ACCEPTED:
        put32(p + 4, m->u.accepted.queue_position);
        put64(p + 8, m->u.accepted.job_id);
        break;
    case HY_MSG_PROGRESS:
        put32(p + 4, m->u.progress.row);
        put64(p + 8, m->u.progress.job_id);
        put64(p + 16, m->u.progress.done);
        put64(p + 24, m->u.progress.total);
        break;
    case HY_MSG_RESULT: {
        const hy_msg_result *x = &m->u.result;
        put16(p + 4, x->job);
        put16(p + 6, x->nrows);
        put32(p + 8, HY_IPC_ROW_SIZE);
        put32(p + 12, x->array_bytes);
        put64(p + 16, x->job_id);
        for (uint32_t i = 0; i < x->nrows; i++)
            put_row(p + 24 + HY_IPC_ROW_SIZE * i, &x->rows[i]);
        break;
    }
    case HY_MSG_ERROR: {
        const hy_msg_error *x = &m->u.error;
        put32(p + 4, (uint32_t)x->code);
        put64(p + 8, x->job_id);
        put32(p + 16, x->message.len);
        if (x->message.len)
            memcpy(p + 24, x->message.p, x->message.len);
        break;
    }
    case HY_MSG_CANCEL:
        put64(p + 8, m->u.cancel.job_id);
        break;
    case HY_MSG_STATUS_REPLY: {
        const hy_msg_status_reply *x = &m->u.status;
        put32(p + 4, x->clients);
        put64(p + 8, x->uptime_ns);
        put64(p + 16, x->jobs_queued);
        put64(p + 24, x->jobs_running);
        put64(p + 32, x->jobs_done);
        put64(p + 40, x->jobs_failed);
        put64(p + 48, x->jobs_cancelled);
        put32(p + 56, x->devices);
        put32(p + 60, x->devices_usable);
        for (unsigned i = 0; i < 4; i++) {
            put64(p + 64 + 8 * i, x->backend_jobs[i]);
            put64(p + 96 + 8 * i, x->backend_busy_ns[i]);
        }
        put32(p + 128, x->version.len);
        /* The fifth backend (process) came later: its counters follow the first layout. */
        put64(p + 136, x->backend_jobs[4]);
        put64(p + 144, x->backend_busy_ns[4]);
        if (x->version.len)
            memcpy(p + body, x->version.p, x->version.len);
        break;
    }
    case HY_MSG_DEVICES_REPLY: {
        const hy_msg_devices_reply *x = &m->u.devices;
        put32(p + 4, x->ndevices);
        put32(p + 8, HY_IPC_DEVICE_SIZE);
        put32(p + 12, x->cpu_online);
        put32(p + 16, x->native_threads);
        put32(p + 20, x->locked_threads);
        put32(p + 24, x->switch_interval_us);
        put32(p + 28, x->process_workers);
        for (uint32_t i = 0; i < x->ndevices; i++)
            put_device(p + 32 + HY_IPC_DEVICE_SIZE * i, &x->devices[i]);
        break;
    }
    default: /* STATUS and DEVICES: body_size and a reserved word */
        break;
    }
    h->version = HY_IPC_VERSION;
    h->type = m->type;
    h->flags = 0; /* the writer sets HY_IPC_F_FDS when fds go with the frame */
    h->length = (uint32_t)(small + bulk->len);
    h->request = m->request;
    hy_frame_header_encode(h, buf);
}

static int check_total(const hy_msg *m, uint64_t small, const hy_iov *bulk,
                       uint32_t max_payload, hy_error *err)
{
    uint64_t total = small + bulk->len;
    if (total > max_payload)
        return hy_error_set(err, HY_ELIMIT, "%s payload of %llu bytes is above the %u allowed",
                            hy_msg_type_name(m->type), (unsigned long long)total, max_payload);
    return 0;
}

int hy_msg_encode(const hy_msg *m, uint8_t *buf, size_t cap, size_t *len, hy_iov *bulk,
                  uint32_t max_payload, hy_error *err)
{
    uint64_t small;
    hy_frame_header h;
    int rc;

    if (!m || !buf || !len || !bulk)
        return hy_error_set(err, HY_EINVAL, "hy_msg_encode: NULL argument");
    if ((rc = measure(m, &small, bulk, err)) || (rc = check_total(m, small, bulk, max_payload, err)))
        return rc;
    if (HY_IPC_HEADER + small > cap)
        return hy_error_set(err, HY_ELIMIT, "%s needs %llu bytes of buffer, %zu given",
                            hy_msg_type_name(m->type),
                            (unsigned long long)(HY_IPC_HEADER + small), cap);
    fill(m, buf, small, bulk, &h);
    *len = (size_t)(HY_IPC_HEADER + small);
    return 0;
}

/* Every message but RESULT and DEVICES_REPLY fits here: an ERROR, the largest, needs
 * 24 + 24 + 1024 bytes. Those two are sized exactly and allocated. */
#define PUSH_STACK 1152u

int hy_msg_push(hy_frame_writer *w, const hy_msg *m, const int *fds, unsigned nfds,
                uint32_t max_payload, hy_error *err)
{
    uint8_t stack[PUSH_STACK];
    uint8_t *buf = stack;
    uint64_t small;
    hy_iov bulk, parts[2];
    hy_frame_header h;
    int rc;

    if (!w || !m)
        return hy_error_set(err, HY_EINVAL, "hy_msg_push: NULL argument");
    if ((rc = measure(m, &small, &bulk, err)) || (rc = check_total(m, small, &bulk, max_payload, err)))
        return rc;
    /* small <= max_payload <= UINT32_MAX here, so the size is representable. */
    if (HY_IPC_HEADER + small > sizeof stack) {
        buf = malloc((size_t)(HY_IPC_HEADER + small));
        if (!buf)
            return hy_error_set(err, HY_ENOMEM, "no memory for a %s frame of %llu bytes",
                                hy_msg_type_name(m->type),
                                (unsigned long long)(HY_IPC_HEADER + small));
    }
    fill(m, buf, small, &bulk, &h);
    parts[0].base = buf + HY_IPC_HEADER;
    parts[0].len = (size_t)small;
    parts[1] = bulk;
    rc = hy_frame_writer_push(w, h, parts, bulk.len ? 2u : 1u, fds, nfds, err);
    if (buf != stack)
        free(buf);
    return rc;
}

/* ---- decoding ---- */

/* A cursor over one payload: `off` is where the last item ended. */
typedef struct dec {
    const uint8_t *p;
    uint32_t plen;
    uint32_t body;  /* the body_size the frame announced */
    uint32_t known; /* this version's body size for the type */
    uint64_t off;
    const char *tn;
    hy_error *err;
} dec;

/* The next variable item of `len` bytes, 8-aligned, checked against the payload before use. */
static int take(dec *d, const char *what, uint64_t len, const uint8_t **out)
{
    uint64_t at = align8(d->off);
    if (at > d->plen || len > d->plen - at)
        return hy_error_set(d->err, HY_EPROTO,
                            "%s %s of %llu bytes at offset %llu runs past the payload of %u "
                            "bytes",
                            d->tn, what, (unsigned long long)len, (unsigned long long)at,
                            d->plen);
    *out = d->p + at;
    d->off = at + len;
    return 0;
}

static int take_str(dec *d, const char *what, uint32_t len, uint32_t max, hy_str *s)
{
    const uint8_t *q = NULL;
    int rc;
    if (len > max)
        return hy_error_set(d->err, HY_ELIMIT, "%s %s length %u is above the limit of %u",
                            d->tn, what, len, max);
    if ((rc = take(d, what, len, &q)))
        return rc;
    s->p = len ? (const char *)q : NULL;
    s->len = len;
    return 0;
}

/* A peer of this version ends the payload at its last item; a peer with a longer body is
 * newer and may have appended variable data we do not know, which is ignored. */
static int finish(dec *d)
{
    if (d->body == d->known && d->off != d->plen)
        return hy_error_set(d->err, HY_EPROTO,
                            "%s payload has %llu bytes after its last item",
                            d->tn, (unsigned long long)(d->plen - d->off));
    return 0;
}

static int dec_hello(dec *d, hy_msg_hello *x)
{
    const uint8_t *p = d->p;
    x->min_version = get16(p + 4);
    x->max_version = get16(p + 6);
    x->features = get32(p + 8);
    if (x->min_version == 0 || x->min_version > x->max_version)
        return hy_error_set(d->err, HY_EPROTO,
                            "HELLO version range %u..%u is empty or starts at 0",
                            x->min_version, x->max_version);
    return take_str(d, "name", get32(p + 12), HY_IPC_NAME_MAX, &x->name);
}

static int dec_welcome(dec *d, hy_msg_welcome *x)
{
    const uint8_t *p = d->p;
    x->version = get16(p + 4);
    x->features = get32(p + 8);
    x->max_payload = get32(p + 12);
    x->max_inline_bytes = get32(p + 16);
    x->max_jobs_per_client = get32(p + 20);
    x->max_samples = get64(p + 24);
    x->max_sort_elements = get64(p + 32);
    return take_str(d, "server", get32(p + 40), HY_IPC_NAME_MAX, &x->server);
}

static int dec_submit(dec *d, const hy_frame *f, hy_msg_submit *x)
{
    const uint8_t *p = d->p, *q = NULL;
    hy_error *err = d->err;
    int rc;

    x->job = get16(p + 4);
    x->backend = get16(p + 6);
    x->device = get16(p + 8);
    x->mode = get16(p + 10);
    x->nogil = get16(p + 12);
    x->dtype = get16(p + 14);
    x->threads = get32(p + 16);
    x->repeat = get32(p + 20);
    x->switch_interval_us = get32(p + 24);
    x->array = get32(p + 28);
    x->n = get64(p + 32);
    x->seed = get64(p + 40);
    x->backends = get32(p + 48);
    x->nthreads_list = get32(p + 52);
    x->transport = d->body >= 64 ? get16(p + 56) : 0;
    x->transports = d->body >= 64 ? get32(p + 60) : 0;
    x->inline_data = NULL;
    x->inline_bytes = 0;

    if (x->job < HY_JOB_PI || x->job > HY_JOB_COMPARE_SORT)
        return hy_error_set(err, HY_EINVAL, "SUBMIT job %u is not pi (1), sort (2), "
                            "compare pi (3) or compare sort (4)", x->job);
    bool compare = x->job == HY_JOB_COMPARE_PI || x->job == HY_JOB_COMPARE_SORT;
    bool sort = x->job == HY_JOB_SORT || x->job == HY_JOB_COMPARE_SORT;
    /* A compare names its backends in the mask and its thread counts in the list; a single
     * job names one backend and one thread count. The other fields are ignored, not
     * checked, so a sender may leave them 0. */
    if (!compare && (x->backend < HY_BACKEND_SERIAL || x->backend > HY_BACKEND_PROCESS))
        return hy_error_set(err, HY_EBACKEND, "SUBMIT backend %u is not serial (1), native "
                            "(2), locked (3), opencl (4) or process (5)", x->backend);
    if (compare && (x->backends == 0 || (x->backends & ~0x3Eu)))
        return hy_error_set(err, HY_EBACKEND, "SUBMIT compare backends mask 0x%x is empty or "
                            "has bits other than 1..5", x->backends);
    if (!compare && x->transport > 2)
        return hy_error_set(err, HY_EINVAL, "SUBMIT transport %u is not default (0), pipe (1) "
                            "or shm (2)", x->transport);
    if (compare && (x->transports & ~0x6u))
        return hy_error_set(err, HY_EINVAL, "SUBMIT compare transports mask 0x%x has bits "
                            "other than 1 (pipe) and 2 (shm)", x->transports);
    if (sort && hy_dtype_size(x->dtype) == 0)
        return hy_error_set(err, HY_EDTYPE, "SUBMIT dtype %u is not i32 (1), u32, i64, u64, "
                            "f32 or f64 (6)", x->dtype);
    if (x->mode > HY_MODE_REPLICATE)
        return hy_error_set(err, HY_EINVAL, "SUBMIT mode %u is not default (0), split (1) or "
                            "replicate (2)", x->mode);
    if (x->nogil > HY_NOGIL_HOLD)
        return hy_error_set(err, HY_EINVAL, "SUBMIT nogil %u is not default (0), release (1) "
                            "or hold (2)", x->nogil);
    if (!compare && x->backend != HY_BACKEND_OPENCL && x->threads == 0)
        return hy_error_set(err, HY_EINVAL, "SUBMIT threads 0: a CPU job needs at least one");
    if (!compare && x->nthreads_list != 0)
        return hy_error_set(err, HY_EINVAL, "SUBMIT nthreads_list %u on a single job (only a "
                            "compare takes a list)", x->nthreads_list);
    if (compare && x->nthreads_list > HY_IPC_THREADS_MAX)
        return hy_error_set(err, HY_ELIMIT, "SUBMIT nthreads_list %u is above the limit of %u",
                            x->nthreads_list, HY_IPC_THREADS_MAX);
    if (compare && x->nthreads_list == 0)
        return hy_error_set(err, HY_EINVAL, "SUBMIT nthreads_list 0: a compare needs at "
                            "least one thread count");
    if ((rc = take(d, "thread list", 4ull * x->nthreads_list, &q)))
        return rc;
    for (uint32_t i = 0; i < x->nthreads_list; i++) {
        x->threads_list[i] = get32(q + 4 * i);
        if (x->threads_list[i] == 0)
            return hy_error_set(err, HY_EINVAL, "SUBMIT threads_list[%u] is 0", i);
    }

    /* Where the array is must fit the job, and fds must match it: the reader hands over
     * whatever fds arrived, and the daemon must never map one it did not ask for. */
    if (!sort && x->array != HY_ARRAY_NONE)
        return hy_error_set(err, HY_EINVAL, "SUBMIT array %u on a pi job (it takes none, 0)",
                            x->array);
    if (sort && x->array != HY_ARRAY_INLINE && x->array != HY_ARRAY_MEMFD)
        return hy_error_set(err, HY_EINVAL, "SUBMIT array %u on a sort job is not inline (1) "
                            "or memfd (2)", x->array);
    if (x->array == HY_ARRAY_MEMFD && f->nfds != 1)
        return hy_error_set(err, HY_EPROTO, "SUBMIT array memfd came with %u fds instead of 1",
                            f->nfds);
    if (x->array != HY_ARRAY_MEMFD && f->nfds != 0)
        return hy_error_set(err, HY_EPROTO, "SUBMIT array %u came with %u fds; only a memfd "
                            "array takes one", x->array, f->nfds);
    if (x->array == HY_ARRAY_INLINE) {
        size_t size = hy_dtype_size(x->dtype);
        /* Bounded before multiplying: no payload holds more than UINT32_MAX bytes. */
        if (x->n > UINT32_MAX / size)
            return hy_error_set(err, HY_ELIMIT, "SUBMIT inline n %llu of %zu-byte elements is "
                                "more than a frame can carry", (unsigned long long)x->n, size);
        uint64_t bytes = x->n * size;
        uint64_t at = align8(d->off);
        if (at > d->plen || (d->body == d->known && d->plen - at != bytes))
            return hy_error_set(err, HY_EPROTO, "SUBMIT inline array needs n %llu x %zu = "
                                "%llu bytes but %lld follow", (unsigned long long)x->n, size,
                                (unsigned long long)bytes, (long long)d->plen - (long long)at);
        if ((rc = take(d, "inline array", bytes, &q)))
            return rc;
        x->inline_data = q;
        x->inline_bytes = (size_t)bytes;
    }
    return 0;
}

static void get_row(const uint8_t *p, hy_result_row *r)
{
    r->backend = get16(p + 0);
    r->device = get16(p + 2);
    r->mode = get16(p + 4);
    r->flags = get16(p + 6);
    r->threads = get32(p + 8);
    r->copies = get32(p + 12);
    r->n = get64(p + 16);
    r->hits = get64(p + 24);
    r->estimate = getf64(p + 32);
    r->std_error = getf64(p + 40);
    r->median_ns = get64(p + 48);
    r->min_ns = get64(p + 56);
    r->max_ns = get64(p + 64);
    r->lock_handoffs = get64(p + 72);
    r->lock_wait_ns = get64(p + 80);
    r->lock_hold_ns = get64(p + 88);
    r->h2d_ns = get64(p + 96);
    r->kernel_ns = get64(p + 104);
    r->d2h_ns = get64(p + 112);
    r->launches = get32(p + 120);
    r->repeat = get32(p + 124);
}

/* The process backend's fields, appended to the first 128-byte row. */
static void get_row_ext(const uint8_t *p, hy_result_row *r)
{
    if (!p) { /* a first-layout row: none of these */
        r->bytes_moved = r->startup_ns = r->merge_ns = 0;
        r->transport = 0;
        r->workers_started = 0;
        return;
    }
    r->bytes_moved = get64(p + 128);
    r->startup_ns = get64(p + 136);
    r->merge_ns = get64(p + 144);
    r->transport = get16(p + 152);
    r->workers_started = get32(p + 156);
}

static int dec_result(dec *d, hy_msg_result *x)
{
    const uint8_t *p = d->p, *q = NULL;
    uint32_t row_size = get32(p + 8);
    int rc;

    x->job = get16(p + 4);
    x->nrows = get16(p + 6);
    x->array_bytes = get32(p + 12);
    x->job_id = get64(p + 16);
    x->rows = x->rows_in;
    x->array = NULL;
    if (x->job < HY_JOB_PI || x->job > HY_JOB_COMPARE_SORT)
        return hy_error_set(d->err, HY_EINVAL, "RESULT job %u is not a job kind (1..4)", x->job);
    if (x->nrows > HY_IPC_ROWS_MAX)
        return hy_error_set(d->err, HY_ELIMIT, "RESULT nrows %u is above the limit of %u",
                            x->nrows, HY_IPC_ROWS_MAX);
    if (row_size < HY_IPC_ROW_SIZE_MIN)
        return hy_error_set(d->err, HY_EPROTO, "RESULT row_size %u is below %u", row_size,
                            HY_IPC_ROW_SIZE_MIN);
    if ((rc = take(d, "rows", (uint64_t)row_size * x->nrows, &q)))
        return rc;
    for (uint32_t i = 0; i < x->nrows; i++) {
        get_row(q + (uint64_t)row_size * i, &x->rows_in[i]);
        if (row_size >= HY_IPC_ROW_SIZE)
            get_row_ext(q + (uint64_t)row_size * i, &x->rows_in[i]);
        else
            get_row_ext(NULL, &x->rows_in[i]);
    }
    if ((rc = take(d, "array", x->array_bytes, &q)))
        return rc;
    if (x->array_bytes)
        x->array = q;
    return 0;
}

static void get_text(char *dst, const uint8_t *src, size_t width)
{
    /* Stops at the first NUL: bytes after it are padding, whatever they hold. */
    size_t n = 0;
    while (n < width && src[n])
        n++;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static int dec_devices(dec *d, hy_msg_devices_reply *x)
{
    const uint8_t *p = d->p, *q = NULL;
    uint32_t rs = get32(p + 8);
    int rc;

    x->ndevices = get32(p + 4);
    x->cpu_online = get32(p + 12);
    x->native_threads = get32(p + 16);
    x->locked_threads = get32(p + 20);
    x->switch_interval_us = get32(p + 24);
    x->process_workers = get32(p + 28);
    x->devices = x->devices_in;
    if (x->ndevices > HY_IPC_DEVICES_MAX)
        return hy_error_set(d->err, HY_ELIMIT, "DEVICES_REPLY ndevices %u is above the limit "
                            "of %u", x->ndevices, HY_IPC_DEVICES_MAX);
    if (rs < HY_IPC_DEVICE_SIZE_V1)
        return hy_error_set(d->err, HY_EPROTO, "DEVICES_REPLY record_size %u is below %u", rs,
                            HY_IPC_DEVICE_SIZE_V1);
    if ((rc = take(d, "records", (uint64_t)rs * x->ndevices, &q)))
        return rc;
    for (uint32_t i = 0; i < x->ndevices; i++) {
        const uint8_t *r = q + (uint64_t)rs * i;
        hy_device_record *o = &x->devices_in[i];
        o->index = get32(r + 0);
        o->type = get16(r + 4);
        o->flags = get16(r + 6);
        o->compute_units = get32(r + 8);
        o->global_mem = get64(r + 16);
        o->max_alloc = get64(r + 24);
        get_text(o->name, r + DEV_NAME, 96);
        get_text(o->vendor, r + DEV_VENDOR, 64);
        get_text(o->driver, r + DEV_DRIVER, 32);
        get_text(o->problem, r + DEV_PROBLEM, 128);
        /* A first-layout sender's record (352..415 bytes) has no platform. */
        if (rs >= HY_IPC_DEVICE_SIZE)
            get_text(o->platform, r + DEV_PLATFORM, 64);
        else
            o->platform[0] = '\0';
    }
    return 0;
}

int hy_msg_decode(const hy_frame *f, hy_msg *m, hy_error *err)
{
    dec d;
    int rc = 0;

    if (!f || !m)
        return hy_error_set(err, HY_EINVAL, "hy_msg_decode: NULL argument");
    d.tn = hy_msg_type_name(f->h.type);
    d.known = body_size_of(f->h.type);
    uint32_t min = body_min_of(f->h.type);
    if (!d.tn || d.known == 0)
        return hy_error_set(err, HY_ETYPE, "unknown message type %u", f->h.type);
    d.p = f->payload;
    d.plen = f->h.length;
    d.err = err;
    if (d.plen > 0 && !d.p)
        return hy_error_set(err, HY_EINVAL, "%s frame of %u bytes has no payload pointer",
                            d.tn, d.plen);
    /* The reader guarantees flag and fds agree; a hand-built frame may not. */
    if (f->nfds > HY_IPC_MAX_FDS || !(f->h.flags & HY_IPC_F_FDS) != (f->nfds == 0))
        return hy_error_set(err, HY_EPROTO, "%s frame flags 0x%x disagree with its %u fds",
                            d.tn, f->h.flags, f->nfds);
    if (f->nfds && f->h.type != HY_MSG_SUBMIT)
        return hy_error_set(err, HY_EPROTO, "%s came with %u fds but takes none", d.tn,
                            f->nfds);
    if (d.plen < 4)
        return hy_error_set(err, HY_EPROTO, "%s payload of %u bytes has no body_size", d.tn,
                            d.plen);
    d.body = get32(d.p);
    if (d.body < min)
        return hy_error_set(err, HY_EPROTO, "%s body_size %u is below the %u bytes of version %u",
                            d.tn, d.body, min, HY_IPC_VERSION);
    /* An earlier layout of this version is held to the same exactness as the current one. */
    if (d.body == min)
        d.known = min;
    if (d.body > d.plen)
        return hy_error_set(err, HY_EPROTO, "%s body_size %u is past the payload of %u bytes",
                            d.tn, d.body, d.plen);
    d.off = d.body; /* the first variable item starts at align8(body_size) */

    m->type = f->h.type;
    m->request = f->h.request;
    const uint8_t *p = d.p;
    switch (f->h.type) {
    case HY_MSG_HELLO:
        rc = dec_hello(&d, &m->u.hello);
        break;
    case HY_MSG_WELCOME:
        rc = dec_welcome(&d, &m->u.welcome);
        break;
    case HY_MSG_PING:
    case HY_MSG_PONG:
        m->u.ping.nonce = get64(p + 8);
        break;
    case HY_MSG_SUBMIT:
        rc = dec_submit(&d, f, &m->u.submit);
        break;
    case HY_MSG_ACCEPTED:
        m->u.accepted.queue_position = get32(p + 4);
        m->u.accepted.job_id = get64(p + 8);
        break;
    case HY_MSG_PROGRESS:
        m->u.progress.row = get32(p + 4);
        m->u.progress.job_id = get64(p + 8);
        m->u.progress.done = get64(p + 16);
        m->u.progress.total = get64(p + 24);
        break;
    case HY_MSG_RESULT:
        rc = dec_result(&d, &m->u.result);
        break;
    case HY_MSG_ERROR: {
        hy_msg_error *x = &m->u.error;
        x->code = (int32_t)get32(p + 4);
        x->job_id = get64(p + 8);
        /* Codes are negative hy_err values; a newer peer's new codes are still negative. */
        if (x->code >= 0)
            return hy_error_set(err, HY_EPROTO, "ERROR code %d is not negative", (int)x->code);
        rc = take_str(&d, "message", get32(p + 16), HY_IPC_MESSAGE_MAX, &x->message);
        break;
    }
    case HY_MSG_CANCEL:
        m->u.cancel.job_id = get64(p + 8);
        break;
    case HY_MSG_STATUS_REPLY: {
        hy_msg_status_reply *x = &m->u.status;
        x->clients = get32(p + 4);
        x->uptime_ns = get64(p + 8);
        x->jobs_queued = get64(p + 16);
        x->jobs_running = get64(p + 24);
        x->jobs_done = get64(p + 32);
        x->jobs_failed = get64(p + 40);
        x->jobs_cancelled = get64(p + 48);
        x->devices = get32(p + 56);
        x->devices_usable = get32(p + 60);
        for (unsigned i = 0; i < 4; i++) {
            x->backend_jobs[i] = get64(p + 64 + 8 * i);
            x->backend_busy_ns[i] = get64(p + 96 + 8 * i);
        }
        x->backend_jobs[4] = d.body >= 152 ? get64(p + 136) : 0;
        x->backend_busy_ns[4] = d.body >= 152 ? get64(p + 144) : 0;
        rc = take_str(&d, "version", get32(p + 128), HY_IPC_NAME_MAX, &x->version);
        break;
    }
    case HY_MSG_DEVICES_REPLY:
        rc = dec_devices(&d, &m->u.devices);
        break;
    default: /* STATUS, DEVICES: nothing but the body_size */
        break;
    }
    if (rc)
        return rc;
    return finish(&d);
}
