/* daemon/history: cells of recent run times, their medians, predictions between measured
 * sizes, and the versioned file (see docs/scheduling.md for its format). */
#include "history.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ipc.h"
#include "log.h"

#define MAGIC "hybridd-history"
#define MAX_FILE_BYTES (16u << 20) /* HY_HISTORY_MAX_CELLS full cells fit with room to spare */
#define MAX_DEVICE 255u
#define MAX_THREADS 4096u
#define MAX_NS (UINT64_C(1) << 62) /* about 146 years: any larger time is a corrupt value */

typedef struct sample {
    uint64_t n, ns;
} sample;

typedef struct cell {
    hy_history_key key;
    unsigned log2n;
    bool warm;        /* a run of this cell has been seen (and dropped) since open */
    unsigned count;   /* samples in ring, <= HY_HISTORY_RING */
    unsigned next;    /* where the next sample goes */
    sample ring[HY_HISTORY_RING];
} cell;

struct hy_history {
    pthread_mutex_t mu; /* the cells, dirty, stop */
    cell *cells;
    size_t ncells, cap;
    bool dirty, full_logged;
    char *path, *host, *version;
    /* Saving: one at a time (save_mu), so a later snapshot never lands before an earlier. */
    pthread_mutex_t save_mu;
    unsigned every_ms;
    pthread_t saver;
    bool saver_started, stop, wake_init;
    pthread_cond_t wake; /* CLOCK_MONOTONIC */
};

/* ---- keys and cells ---- */

unsigned hy_history_log2(uint64_t n)
{
    unsigned b = 0;
    while (n > 1) {
        n >>= 1;
        b++;
    }
    return b;
}

static bool key_valid(const hy_history_key *k)
{
    if (k->work != HY_JOB_PI && k->work != HY_JOB_SORT)
        return false;
    if (k->work == HY_JOB_PI ? k->dtype != 0 : hy_dtype_size(k->dtype) == 0)
        return false;
    return hy_backend_name(k->backend) != NULL && k->device <= MAX_DEVICE &&
           k->threads <= MAX_THREADS && (k->transport == 0 || hy_transport_name(k->transport));
}

static bool key_eq(const hy_history_key *a, const hy_history_key *b)
{
    return a->work == b->work && a->dtype == b->dtype && a->backend == b->backend &&
           a->device == b->device && a->threads == b->threads && a->transport == b->transport;
}

static cell *find(hy_history *h, const hy_history_key *k, unsigned log2n)
{
    for (size_t i = 0; i < h->ncells; i++)
        if (h->cells[i].log2n == log2n && key_eq(&h->cells[i].key, k))
            return &h->cells[i];
    return NULL;
}

static cell *add_cell(hy_history *h, const hy_history_key *k, unsigned log2n)
{
    if (h->ncells == HY_HISTORY_MAX_CELLS)
        return NULL;
    if (h->ncells == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 64;
        cell *c = realloc(h->cells, cap * sizeof *c);
        if (!c)
            return NULL;
        h->cells = c;
        h->cap = cap;
    }
    cell *c = &h->cells[h->ncells++];
    memset(c, 0, sizeof *c);
    c->key = *k;
    c->log2n = log2n;
    return c;
}

static void push(cell *c, uint64_t n, uint64_t ns)
{
    c->ring[c->next] = (sample){n, ns};
    c->next = (c->next + 1) % HY_HISTORY_RING;
    if (c->count < HY_HISTORY_RING)
        c->count++;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t median(const cell *c)
{
    uint64_t t[HY_HISTORY_RING];
    if (c->count == 0)
        return 0;
    for (unsigned i = 0; i < c->count; i++)
        t[i] = c->ring[i].ns;
    qsort(t, c->count, sizeof t[0], cmp_u64);
    unsigned m = c->count / 2;
    return c->count % 2 ? t[m] : t[m - 1] / 2 + t[m] / 2 + (t[m - 1] % 2 + t[m] % 2) / 2;
}

/* Where a cell sits on the size axis: the mean log2 of its samples' sizes (their geometric
 * mean), so a bucket measured only at 10^6 interpolates from 10^6, not from 2^19. */
static double where(const cell *c)
{
    double s = 0;
    for (unsigned i = 0; i < c->count; i++)
        s += log2((double)c->ring[i].n);
    return s / c->count;
}

void hy_history_record(hy_history *h, const hy_history_key *k, uint64_t n, uint64_t ns)
{
    if (!h || !key_valid(k) || n == 0 || ns == 0 || ns > MAX_NS)
        return;
    unsigned b = hy_history_log2(n);
    pthread_mutex_lock(&h->mu);
    cell *c = find(h, k, b);
    if (!c && !(c = add_cell(h, k, b)) && !h->full_logged) {
        h->full_logged = true;
        hy_log(HY_LOG_WARNING, "history: no room for another cell (%u kept, or no memory); "
               "new configurations are not recorded", HY_HISTORY_MAX_CELLS);
    }
    if (c && !c->warm) {
        c->warm = true; /* the first run since start paid for cold caches and builds */
    } else if (c) {
        push(c, n, ns);
        h->dirty = true;
        pthread_cond_signal(&h->wake);
    }
    pthread_mutex_unlock(&h->mu);
}

bool hy_history_get(hy_history *h, const hy_history_key *k, unsigned log2n,
                    hy_history_cell *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&h->mu);
    const cell *c = find(h, k, log2n);
    if (c && c->count > 0) {
        out->samples = c->count;
        out->median_ns = median(c);
        out->trusted = c->count >= HY_HISTORY_TRUST;
    }
    pthread_mutex_unlock(&h->mu);
    return out->samples > 0;
}

size_t hy_history_foreach(hy_history *h, hy_history_cell_fn *fn, void *ctx)
{
    size_t n = 0;
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < h->ncells; i++) {
        const cell *c = &h->cells[i];
        if (c->count == 0)
            continue; /* only its dropped first run so far */
        hy_history_cell info = {.samples = c->count, .median_ns = median(c),
                                .trusted = c->count >= HY_HISTORY_TRUST};
        fn(ctx, &c->key, c->log2n, &info);
        n++;
    }
    pthread_mutex_unlock(&h->mu);
    return n;
}

void hy_history_predict(hy_history *h, const hy_history_key *k, uint64_t n,
                        hy_history_prediction *out)
{
    memset(out, 0, sizeof *out);
    if (n == 0)
        return;
    unsigned b = hy_history_log2(n);
    const cell *lo = NULL, *hi = NULL;
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < h->ncells; i++) {
        const cell *c = &h->cells[i];
        if (key_eq(&c->key, k) && c->log2n == b)
            out->runs = c->count + c->warm; /* its dropped first run too: auto explores by it */
        if (!key_eq(&c->key, k) || c->count == 0)
            continue;
        if (c->log2n == b) {
            out->samples = c->count;
            out->ns = (double)median(c);
            out->answer = c->count >= HY_HISTORY_TRUST ? HY_PREDICT_MEASURED : HY_PREDICT_FEW;
        } else if (c->count >= HY_HISTORY_TRUST && c->log2n < b) {
            if (!lo || c->log2n > lo->log2n)
                lo = c;
        } else if (c->count >= HY_HISTORY_TRUST && (!hi || c->log2n < hi->log2n)) {
            hi = c;
        }
    }
    /* n's own cell, while it has too few samples, says less than its trusted neighbours:
     * its first runs at a new size pay for cold caches and a scratch that grows, so they
     * would have auto explore every configuration there again. */
    if (out->answer != HY_PREDICT_MEASURED && lo && hi) {
        /* A straight line in log-log between the neighbours' medians: a power law between
         * two sizes, which is what pi (linear) and sort (n log n) look like locally. */
        double x0 = where(lo), x1 = where(hi), x = log2((double)n);
        double y0 = log2((double)median(lo)), y1 = log2((double)median(hi));
        out->answer = HY_PREDICT_INTERPOLATED;
        out->ns = exp2(y0 + (y1 - y0) * (x - x0) / (x1 - x0));
        out->lo = lo->log2n;
        out->hi = hi->log2n;
    }
    pthread_mutex_unlock(&h->mu);
}

/* ---- the file: writing ---- */

static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t x = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < n; i++)
        x = (x ^ (unsigned char)p[i]) * UINT64_C(0x100000001b3);
    return x;
}

/* The file's text for the cells as they are now; called under h->mu. NULL without memory. */
static char *snapshot(hy_history *h, size_t *len)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < h->ncells; i++)
        n += h->cells[i].count > 0;
    fprintf(f, "%s %d\nhost %s\nhybridd %s\ncells %zu\n", MAGIC, HY_HISTORY_FORMAT, h->host,
            h->version, n);
    for (size_t i = 0; i < h->ncells; i++) {
        const cell *c = &h->cells[i];
        if (c->count == 0)
            continue;
        fprintf(f, "cell %s %s %s %u %u %s %u %u", c->key.work == HY_JOB_PI ? "pi" : "sort",
                c->key.dtype ? hy_dtype_name(c->key.dtype) : "-", hy_backend_name(c->key.backend),
                c->key.device, c->key.threads,
                c->key.transport ? hy_transport_name(c->key.transport) : "-", c->log2n, c->count);
        /* Oldest first, so a reload keeps the ring's order. */
        unsigned first = c->count < HY_HISTORY_RING ? 0 : c->next;
        for (unsigned j = 0; j < c->count; j++) {
            const sample *s = &c->ring[(first + j) % HY_HISTORY_RING];
            fprintf(f, " %" PRIu64 ":%" PRIu64, s->n, s->ns);
        }
        fputc('\n', f);
    }
    if (fflush(f) != 0) {
        fclose(f);
        free(buf);
        return NULL;
    }
    /* The end line closes the file: its checksum covers every byte before it, so a truncated
     * or altered file never passes for a whole one. */
    fprintf(f, "end %zu %016" PRIx64 "\n", n, fnv1a(buf, size));
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    *len = size;
    return buf;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* A temporary file beside the target, made whole and durable, then renamed over it: a reader
 * (or another daemon's load) sees the old file or the new one, never a mix. */
static int write_file(const char *path, const char *text, size_t len, hy_error *err)
{
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16);
    if (!tmp)
        return hy_error_set(err, HY_ENOMEM, "no memory to save the history");
    snprintf(tmp, pl + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int rc = hy_error_set(err, HY_ESYS, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    int rc = 0;
    /* mkstemp makes it 0600; the daemon's group may read its timings, nobody else needs to. */
    if (fchmod(fd, 0640) != 0 || write_all(fd, text, len) != 0 || fsync(fd) != 0)
        rc = hy_error_set(err, HY_ESYS, "cannot write %s: %s", tmp, strerror(errno));
    if (close(fd) != 0 && rc == 0)
        rc = hy_error_set(err, HY_ESYS, "cannot write %s: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = hy_error_set(err, HY_ESYS, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (rc != 0) {
        unlink(tmp);
    } else {
        /* The rename itself is durable once the directory is synced. */
        char *dir = dirname(tmp);
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    free(tmp);
    return rc;
}

int hy_history_save(hy_history *h, hy_error *err)
{
    if (!h->path)
        return 0;
    pthread_mutex_lock(&h->save_mu);
    pthread_mutex_lock(&h->mu);
    size_t len = 0;
    char *text = snapshot(h, &len);
    bool was_dirty = h->dirty;
    h->dirty = false;
    pthread_mutex_unlock(&h->mu);
    int rc = text ? write_file(h->path, text, len, err)
                  : hy_error_set(err, HY_ENOMEM, "no memory to save the history");
    free(text);
    if (rc != 0) {
        pthread_mutex_lock(&h->mu);
        h->dirty = h->dirty || was_dirty; /* try again at the next turn */
        pthread_mutex_unlock(&h->mu);
    }
    pthread_mutex_unlock(&h->save_mu);
    return rc;
}

/* ---- the file: reading ---- */

typedef struct parse {
    hy_history_report *rep;
    hy_history_loaded verdict; /* CORRUPT or FOREIGN once something is wrong */
} parse;

__attribute__((format(printf, 3, 4))) static int reject(parse *p, hy_history_loaded verdict,
                                                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->rep->reason, sizeof p->rep->reason, fmt, ap);
    va_end(ap);
    p->verdict = verdict;
    return -1;
}

/* A decimal number, digits only (no sign, no spaces), within [min, max]. */
static bool number(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (!s || !*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return v >= min && v <= max;
}

/* The next line of [*pos, end) (without its newline), NUL-terminated in place; NULL at the end
 * or when the last line has no newline. */
static char *next_line(char **pos, char *end)
{
    char *s = *pos, *nl = s < end ? memchr(s, '\n', (size_t)(end - s)) : NULL;
    if (!nl)
        return NULL;
    *nl = '\0';
    *pos = nl + 1;
    return s;
}

/* One sample "n:ns", its n inside the cell's bucket. */
static bool parse_sample(char *tok, unsigned log2n, sample *s)
{
    char *colon = strchr(tok, ':');
    if (!colon)
        return false;
    *colon = '\0';
    uint64_t lo = UINT64_C(1) << log2n, hi = log2n == 63 ? UINT64_MAX : (lo << 1) - 1;
    return number(tok, log2n == 0 ? 1 : lo, hi, &s->n) && number(colon + 1, 1, MAX_NS, &s->ns);
}

/* "cell WORK DTYPE BACKEND DEVICE THREADS TRANSPORT LOG2N COUNT n:ns..." into a new cell. */
static int parse_cell(parse *p, hy_history *h, char *line, unsigned lineno)
{
    char *save = NULL, *tok[9];
    for (unsigned i = 0; i < 9; i++)
        tok[i] = strtok_r(i ? NULL : line, " ", &save);
    hy_history_key k = {0};
    uint64_t dev, thr, b, count;
    bool ok = tok[0] && strcmp(tok[0], "cell") == 0 && tok[8];
    if (ok) {
        k.work = strcmp(tok[1], "pi") == 0     ? HY_JOB_PI
                 : strcmp(tok[1], "sort") == 0 ? HY_JOB_SORT
                                               : 0;
        k.dtype = strcmp(tok[2], "-") == 0 ? 0 : hy_dtype_parse(tok[2]);
        k.backend = hy_backend_parse(tok[3]);
        k.transport = strcmp(tok[6], "-") == 0 ? 0 : hy_transport_parse(tok[6]);
        ok = (k.transport != 0 || strcmp(tok[6], "-") == 0) &&
             number(tok[4], 0, MAX_DEVICE, &dev) && number(tok[5], 0, MAX_THREADS, &thr) &&
             number(tok[7], 0, 63, &b) && number(tok[8], 1, HY_HISTORY_RING, &count);
    }
    if (ok) {
        k.device = (unsigned)dev;
        k.threads = (unsigned)thr;
        ok = key_valid(&k);
    }
    if (!ok)
        return reject(p, HY_HISTORY_CORRUPT, "line %u: not a valid cell", lineno);
    if (find(h, &k, (unsigned)b))
        return reject(p, HY_HISTORY_CORRUPT, "line %u: the cell is listed twice", lineno);
    cell *c = add_cell(h, &k, (unsigned)b);
    if (!c)
        return reject(p, HY_HISTORY_CORRUPT, "line %u: more than %u cells", lineno,
                      HY_HISTORY_MAX_CELLS);
    for (unsigned i = 0; i < count; i++) {
        char *t = strtok_r(NULL, " ", &save);
        sample s;
        if (!t || !parse_sample(t, (unsigned)b, &s))
            return reject(p, HY_HISTORY_CORRUPT, "line %u: sample %u is missing or out of range",
                          lineno, i + 1);
        push(c, s.n, s.ns);
    }
    if (strtok_r(NULL, " ", &save))
        return reject(p, HY_HISTORY_CORRUPT, "line %u: more samples than its count", lineno);
    return 0;
}

/* The header: magic and format (foreign when another format), then the end line and its
 * checksum (a truncated or altered file is corrupt), then the host (foreign when another). */
/* Finds the end line, the last one: *ncells and whether its checksum covers the bytes before
 * it. NULL when there is none (or the file does not end with a newline): truncated. */
static char *find_end(char *text, size_t len, uint64_t *ncells, bool *sum_ok)
{
    char hex[17] = {0};
    if (len < 2 || text[len - 1] != '\n')
        return NULL;
    char *last = memrchr(text, '\n', len - 1);
    if (!last || sscanf(last + 1, "end %" SCNu64 " %16[0-9a-f]", ncells, hex) != 2 ||
        strlen(hex) != 16)
        return NULL;
    *sum_ok = strtoull(hex, NULL, 16) == fnv1a(text, (size_t)(last + 1 - text));
    return last + 1;
}

/* The header: magic and format (foreign when another format), then the end line and its
 * checksum (a truncated or altered file is corrupt), then the host (foreign when another). */
static int parse_header(parse *p, hy_history *h, char *text, size_t len, char **pos,
                        uint64_t *ncells, char **end_line)
{
    bool sum_ok = false;
    /* Before any line is cut out of the text in place: the checksum covers it as written. */
    *end_line = find_end(text, len, ncells, &sum_ok);
    char *end = text + len, *line = next_line(pos, end);
    uint64_t v;
    size_t ml = strlen(MAGIC);
    if (!line || strncmp(line, MAGIC " ", ml + 1) != 0)
        return reject(p, HY_HISTORY_CORRUPT, "not a hybridd history file");
    if (!number(line + ml + 1, 0, UINT32_MAX, &v))
        return reject(p, HY_HISTORY_CORRUPT, "line 1: the format version is not a number");
    if (v != HY_HISTORY_FORMAT)
        return reject(p, HY_HISTORY_FOREIGN, "format %" PRIu64 "; this hybridd reads format %d",
                      v, HY_HISTORY_FORMAT);
    if (!*end_line)
        return reject(p, HY_HISTORY_CORRUPT, "truncated: no end line");
    if (!sum_ok)
        return reject(p, HY_HISTORY_CORRUPT, "its checksum does not match its contents");
    line = next_line(pos, end);
    if (!line || strncmp(line, "host ", 5) != 0)
        return reject(p, HY_HISTORY_CORRUPT, "line 2: no host");
    if (strcmp(line + 5, h->host) != 0)
        return reject(p, HY_HISTORY_FOREIGN, "written on host %.64s, this is %.64s", line + 5,
                      h->host);
    line = next_line(pos, end);
    if (!line || strncmp(line, "hybridd ", 8) != 0 || strlen(line + 8) >= sizeof p->rep->writer)
        return reject(p, HY_HISTORY_CORRUPT, "line 3: no hybridd version");
    snprintf(p->rep->writer, sizeof p->rep->writer, "%s", line + 8);
    line = next_line(pos, end);
    if (!line || strncmp(line, "cells ", 6) != 0 ||
        !number(line + 6, 0, HY_HISTORY_MAX_CELLS, &v) || v != *ncells)
        return reject(p, HY_HISTORY_CORRUPT, "line 4: the cell count is missing or wrong");
    return 0;
}

static int parse_file(parse *p, hy_history *h, char *text, size_t len)
{
    char *pos = text, *end_line = NULL;
    uint64_t ncells = 0;
    if (parse_header(p, h, text, len, &pos, &ncells, &end_line) != 0)
        return -1;
    for (uint64_t i = 0; i < ncells; i++) {
        char *line = pos < end_line ? next_line(&pos, end_line) : NULL;
        if (!line)
            return reject(p, HY_HISTORY_CORRUPT, "%" PRIu64 " cells where %" PRIu64
                          " were announced", i, ncells);
        if (parse_cell(p, h, line, (unsigned)(5 + i)) != 0)
            return -1;
    }
    if (pos != end_line)
        return reject(p, HY_HISTORY_CORRUPT, "more lines than the %" PRIu64 " cells announced",
                      ncells);
    return 0;
}

/* Reads the whole file (at most MAX_FILE_BYTES) into a NUL-terminated buffer. */
static int read_file(const char *path, char **text, size_t *len, hy_history_report *rep)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return HY_HISTORY_NEW;
        snprintf(rep->reason, sizeof rep->reason, "cannot open it: %s", strerror(errno));
        return HY_HISTORY_UNREADABLE;
    }
    struct stat st;
    int verdict = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(rep->reason, sizeof rep->reason, "not a regular file");
        verdict = HY_HISTORY_UNREADABLE;
    } else if (st.st_size > MAX_FILE_BYTES) {
        snprintf(rep->reason, sizeof rep->reason, "%lld bytes, more than %u",
                 (long long)st.st_size, MAX_FILE_BYTES);
        verdict = HY_HISTORY_CORRUPT;
    } else if (!(*text = malloc((size_t)st.st_size + 1))) {
        snprintf(rep->reason, sizeof rep->reason, "no memory for %lld bytes",
                 (long long)st.st_size);
        verdict = HY_HISTORY_UNREADABLE;
    } else {
        *len = 0;
        while (*len < (size_t)st.st_size) {
            ssize_t r = read(fd, *text + *len, (size_t)st.st_size - *len);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                snprintf(rep->reason, sizeof rep->reason, "cannot read it: %s", strerror(errno));
                verdict = HY_HISTORY_UNREADABLE;
            }
            if (r <= 0)
                break;
            *len += (size_t)r;
        }
        (*text)[*len] = '\0';
    }
    close(fd);
    return verdict;
}

/* Moves a file that must not be trusted out of the way, so the next save starts afresh and a
 * person can still look at what was wrong. */
static void set_aside(hy_history *h, hy_history_report *rep)
{
    const char *suffix = rep->loaded == HY_HISTORY_FOREIGN ? ".foreign" : ".corrupt";
    size_t n = strlen(h->path) + strlen(suffix) + 1;
    char *to = malloc(n);
    if (to) {
        snprintf(to, n, "%s%s", h->path, suffix);
        if (rename(h->path, to) == 0)
            hy_log(HY_LOG_WARNING, "history %s is %s (%s): set aside as %s, starting empty",
                   h->path, rep->loaded == HY_HISTORY_FOREIGN ? "foreign" : "corrupt",
                   rep->reason, to);
        else
            hy_log(HY_LOG_WARNING, "history %s is %s (%s) and cannot be set aside (%s): "
                   "starting empty, it will be replaced", h->path,
                   rep->loaded == HY_HISTORY_FOREIGN ? "foreign" : "corrupt", rep->reason,
                   strerror(errno));
    }
    free(to);
}

static void load(hy_history *h, hy_history_report *rep)
{
    char *text = NULL;
    size_t len = 0;
    int verdict = read_file(h->path, &text, &len, rep);
    if (verdict == 0) {
        parse p = {rep, 0};
        if (memchr(text, '\0', len))
            reject(&p, HY_HISTORY_CORRUPT, "a NUL byte: a history file is text");
        else
            parse_file(&p, h, text, len);
        verdict = p.verdict ? (int)p.verdict : HY_HISTORY_LOADED;
    }
    free(text);
    rep->loaded = (hy_history_loaded)verdict;
    if (verdict == HY_HISTORY_LOADED) {
        rep->cells = h->ncells;
        hy_log(HY_LOG_INFO, "history %s: %zu cell(s), written by hybridd %s", h->path, h->ncells,
               rep->writer);
        return;
    }
    h->ncells = 0; /* nothing of a file that is not trusted whole is kept */
    if (verdict == HY_HISTORY_NEW)
        hy_log(HY_LOG_INFO, "history %s: no file yet, starting empty", h->path);
    else if (verdict == HY_HISTORY_UNREADABLE)
        hy_log(HY_LOG_WARNING, "history %s: %s; starting empty", h->path, rep->reason);
    else
        set_aside(h, rep);
}

/* ---- saving in the background, opening, closing ---- */

static void deadline_after(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Saves at most once every h->every_ms, and only after a change: the executors never wait
 * for a disk, and a daemon running jobs back to back writes its file once a second, not once
 * a run. A save that fails is logged once and retried at the next turn. */
static void *saver_main(void *arg)
{
    hy_history *h = arg;
    bool failing = false; /* the last save failed: logged once, not on every retry */
    pthread_mutex_lock(&h->mu);
    while (!h->stop) {
        if (!h->dirty) {
            pthread_cond_wait(&h->wake, &h->mu);
            continue;
        }
        pthread_mutex_unlock(&h->mu);
        hy_error err = {0};
        bool ok = hy_history_save(h, &err) == 0;
        if (!ok && !failing)
            hy_log(HY_LOG_WARNING, "history: %s (retrying every %u ms)", err.msg, h->every_ms);
        else if (ok && failing)
            hy_log(HY_LOG_NOTICE, "history: saved %s again", h->path);
        failing = !ok;
        pthread_mutex_lock(&h->mu);
        struct timespec until;
        deadline_after(&until, h->every_ms);
        while (!h->stop && pthread_cond_timedwait(&h->wake, &h->mu, &until) != ETIMEDOUT) {}
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

static int start_saver(hy_history *h, hy_error *err)
{
    pthread_condattr_t ca;
    int e = pthread_condattr_init(&ca);
    if (!e)
        e = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (!e)
        e = pthread_cond_init(&h->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (e)
        return hy_error_set(err, HY_ESYS, "history: condition variable: %s", strerror(e));
    h->wake_init = true;
    if (h->every_ms == 0)
        return 0;
    e = pthread_create(&h->saver, NULL, saver_main, h);
    if (e)
        return hy_error_set(err, HY_ESYS, "history: pthread_create: %s", strerror(e));
    h->saver_started = true;
    return 0;
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

int hy_history_open(const hy_history_options *o, hy_history **out, hy_history_report *report,
                    hy_error *err)
{
    hy_history_report dummy;
    hy_history_report *rep = report ? report : &dummy;
    memset(rep, 0, sizeof *rep);
    hy_history *h = calloc(1, sizeof *h);
    if (!h)
        return hy_error_set(err, HY_ENOMEM, "no memory for the history");
    pthread_mutex_init(&h->mu, NULL);
    pthread_mutex_init(&h->save_mu, NULL);
    h->host = dup_or_empty(o->host);
    h->version = dup_or_empty(o->version);
    h->path = o->path && o->path[0] ? strdup(o->path) : NULL;
    h->every_ms = h->path ? o->save_every_ms : 0;
    /* The host and version go on lines of their own: a space or newline would break them. */
    for (char *s = h->host; s && *s; s++)
        *s = (*s > ' ' && *s < 0x7f) ? *s : '_';
    for (char *s = h->version; s && *s; s++)
        *s = (*s > ' ' && *s < 0x7f) ? *s : '_';
    if (!h->host || !h->version || (o->path && o->path[0] && !h->path)) {
        hy_history_close(h);
        return hy_error_set(err, HY_ENOMEM, "no memory for the history");
    }
    if (h->path)
        load(h, rep);
    int rc = start_saver(h, err);
    if (rc) {
        hy_history_close(h);
        return rc;
    }
    *out = h;
    return 0;
}

void hy_history_close(hy_history *h)
{
    if (!h)
        return;
    if (h->saver_started) {
        pthread_mutex_lock(&h->mu);
        h->stop = true;
        pthread_cond_signal(&h->wake);
        pthread_mutex_unlock(&h->mu);
        pthread_join(h->saver, NULL);
    }
    /* Whoever recorded has stopped (the executors are joined before this). */
    pthread_mutex_lock(&h->mu);
    bool dirty = h->dirty;
    pthread_mutex_unlock(&h->mu);
    hy_error err = {0};
    if (h->path && dirty && hy_history_save(h, &err) != 0)
        hy_log(HY_LOG_WARNING, "history: %s: the last runs are not saved", err.msg);
    if (h->wake_init)
        pthread_cond_destroy(&h->wake);
    free(h->cells);
    free(h->path);
    free(h->host);
    free(h->version);
    pthread_mutex_destroy(&h->mu);
    pthread_mutex_destroy(&h->save_mu);
    free(h);
}

void hy_history_host_id(char *buf, size_t cap)
{
    buf[0] = '\0';
    FILE *f = fopen("/etc/machine-id", "re");
    if (f) {
        if (!fgets(buf, (int)cap, f))
            buf[0] = '\0';
        fclose(f);
        buf[strcspn(buf, " \t\r\n")] = '\0';
    }
    if (!buf[0] && gethostname(buf, cap) != 0)
        buf[0] = '\0';
    if (cap > 0)
        buf[cap - 1] = '\0';
    if (!buf[0])
        snprintf(buf, cap, "unknown-host");
}
