/* daemon/config: defaults, a strict libconfig loader (every key known, typed and range-checked,
 * every error naming file, line and key) and a printer whose output the loader reads back. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libconfig.h>

/* ---- defaults ---- */

void hy_config_defaults_for(hy_config *c, unsigned uid, const char *xdg_runtime_dir)
{
    memset(c, 0, sizeof *c);
    const char *sock = "hybridd.sock";
    if (uid == 0) {
        snprintf(c->socket_path, sizeof c->socket_path, "/run/hybridd/%s", sock);
    } else if (xdg_runtime_dir && xdg_runtime_dir[0] == '/' &&
               strlen(xdg_runtime_dir) + 1 + strlen(sock) < sizeof c->socket_path) {
        snprintf(c->socket_path, sizeof c->socket_path, "%s/%s", xdg_runtime_dir, sock);
    } else {
        /* A relative, empty or over-long XDG_RUNTIME_DIR is as good as none: the socket must have
         * an absolute path that fits sun_path. */
        snprintf(c->socket_path, sizeof c->socket_path, "/tmp/hybridd-%u/%s", uid, sock);
    }
    c->socket_mode = 0660;
    c->socket_group[0] = '\0';
    c->native_threads = 0;
    c->locked_threads = 0;
    c->switch_interval_us = 5000;
    c->process_workers = 0;
    c->opencl_enabled = true;
    c->opencl_all_devices = true;
    c->cache_dir[0] = '\0';
    c->max_clients = 64;
    c->max_frame_bytes = 1u << 20;
    c->max_queued_jobs = 1024;
    c->max_jobs_per_client = 64;
    c->max_samples = UINT64_C(1) << 40;
    c->max_sort_elements = UINT64_C(1) << 30;
    c->max_job_bytes = UINT64_C(8) << 30;
    c->job_timeout_s = 3600;
    c->drain_timeout_s = 30;
    c->peer_timeout_s = 30; /* under hybridctl's 60 s: the client hears which rank is silent */
    c->span_keep_bytes = HY_KEEP_BYTES;
    /* No history unless configured: the temporary daemons of tests and of a user's session
     * then leave nothing behind. */
    c->history_path[0] = '\0';
}

void hy_config_defaults(hy_config *c)
{
    hy_config_defaults_for(c, (unsigned)geteuid(), getenv("XDG_RUNTIME_DIR"));
}

/* ---- the schema: one table row per key ---- */

typedef enum key_kind {
    K_UINT,    /* an integer stored in an unsigned */
    K_U64,     /* an integer stored in a uint64_t */
    K_MODE,    /* "0660" or an integer, <= 07777 */
    K_STR,     /* a string of at most cap-1 bytes */
    K_PATH,    /* like K_STR, and absolute (or, with min == 0, empty) */
    K_BOOL,
    K_IDS,     /* an array or list of integers (uids, gids, CPUs); count at off_n */
    K_DEVICES, /* "all" or an array or list of device indices */
} key_kind;

typedef struct key {
    const char *name;
    key_kind kind;
    size_t off;   /* offset of the value in hy_config */
    size_t off_n; /* K_IDS: offset of the count */
    long long min, max; /* integers: the allowed range; K_PATH: min 1 = must not be empty */
    size_t cap;   /* strings: size of the buffer */
    hy_config_reload reload; /* what SIGHUP does with a change (0: applied at once) */
} key;

#define F(field) offsetof(hy_config, field)
#define SZ(field) sizeof(((hy_config *)0)->field)

static const key socket_keys[] = {
    {"path", K_PATH, F(socket_path), 0, 1, 0, SZ(socket_path), HY_RELOAD_RESTART},
    {"mode", K_MODE, F(socket_mode), 0, 0, 07777, 0, HY_RELOAD_APPLY},
    {"group", K_STR, F(socket_group), 0, 0, 0, SZ(socket_group), HY_RELOAD_APPLY},
};
static const key access_keys[] = {
    /* (uid_t)-1 means "no uid" to the kernel, so it can never name a peer. */
    {"uids", K_IDS, F(uids), F(n_uids), 0, 4294967294LL, HY_CONFIG_MAX_IDS,
     HY_RELOAD_NEW_CONNECTIONS},
    {"gids", K_IDS, F(gids), F(n_gids), 0, 4294967294LL, HY_CONFIG_MAX_IDS,
     HY_RELOAD_NEW_CONNECTIONS},
};
static const key cpu_keys[] = {
    {"native_threads", K_UINT, F(native_threads), 0, 0, HY_CONFIG_MAX_THREADS, 0,
     HY_RELOAD_RESTART},
    {"locked_threads", K_UINT, F(locked_threads), 0, 0, HY_CONFIG_MAX_THREADS, 0,
     HY_RELOAD_RESTART},
    {"switch_interval_us", K_UINT, F(switch_interval_us), 0, 1, 1000000, 0, HY_RELOAD_APPLY},
    {"process_workers", K_UINT, F(process_workers), 0, 0, HY_CONFIG_MAX_WORKERS, 0,
     HY_RELOAD_RESTART},
    {"cpus", K_IDS, F(cpus), F(n_cpus), 0, HY_CONFIG_MAX_CPU_INDEX, HY_CONFIG_MAX_THREADS,
     HY_RELOAD_RESTART},
};
static const key opencl_keys[] = {
    {"enabled", K_BOOL, F(opencl_enabled), 0, 0, 0, 0, HY_RELOAD_RESTART},
    {"devices", K_DEVICES, F(devices), F(n_devices), 0, HY_CONFIG_MAX_DEVICES - 1,
     HY_CONFIG_MAX_DEVICES, HY_RELOAD_RESTART},
    {"cache_dir", K_PATH, F(cache_dir), 0, 0, 0, SZ(cache_dir), HY_RELOAD_RESTART},
    {"hybrid_cpu_devices", K_BOOL, F(hybrid_cpu_devices), 0, 0, 0, 0, HY_RELOAD_RESTART},
};
static const key limits_keys[] = {
    {"clients", K_U64, F(max_clients), 0, 1, 65536, 0, HY_RELOAD_APPLY},
    {"frame_bytes", K_U64, F(max_frame_bytes), 0, 64LL << 10, 16LL << 20, 0,
     HY_RELOAD_NEW_CONNECTIONS},
    {"queued_jobs", K_U64, F(max_queued_jobs), 0, 1, 100000, 0, HY_RELOAD_APPLY},
    {"jobs_per_client", K_U64, F(max_jobs_per_client), 0, 1, 10000, 0, HY_RELOAD_APPLY},
    {"samples", K_U64, F(max_samples), 0, 1, INT64_MAX, 0, HY_RELOAD_APPLY},
    {"sort_elements", K_U64, F(max_sort_elements), 0, 1, 1LL << 40, 0, HY_RELOAD_APPLY},
    {"job_bytes", K_U64, F(max_job_bytes), 0, 1, 1LL << 48, 0, HY_RELOAD_APPLY},
    {"job_timeout_s", K_U64, F(job_timeout_s), 0, 0, INT32_MAX, 0, HY_RELOAD_APPLY},
    {"drain_timeout_s", K_U64, F(drain_timeout_s), 0, 0, 86400, 0, HY_RELOAD_APPLY},
    {"peer_timeout_s", K_U64, F(peer_timeout_s), 0, 0, 86400, 0, HY_RELOAD_APPLY},
    {"span_keep_bytes", K_U64, F(span_keep_bytes), 0, 0, 1LL << 48, 0, HY_RELOAD_APPLY},
};

static const key state_keys[] = {
    /* Opened once at start: a new path needs a restart, or two files would each hold half. */
    {"history", K_PATH, F(history_path), 0, 0, 0, SZ(history_path), HY_RELOAD_RESTART},
};

typedef struct section {
    const char *name;
    const key *keys;
    size_t n;
} section;

#define SECTION(name, keys) {name, keys, sizeof keys / sizeof keys[0]}
static const section sections[] = {
    SECTION("socket", socket_keys), SECTION("access", access_keys), SECTION("cpu", cpu_keys),
    SECTION("opencl", opencl_keys), SECTION("limits", limits_keys),
    SECTION("state", state_keys),
};
#define N_SECTIONS (sizeof sections / sizeof sections[0])

/* ---- loading ---- */

/* What one load needs to word its errors. */
typedef struct ctx {
    const char *path;
    hy_error *err;
} ctx;

static const char *type_name(int type)
{
    switch (type) {
    case CONFIG_TYPE_GROUP: return "a group";
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64: return "an integer";
    case CONFIG_TYPE_FLOAT: return "a float";
    case CONFIG_TYPE_STRING: return "a string";
    case CONFIG_TYPE_BOOL: return "a boolean";
    case CONFIG_TYPE_ARRAY: return "an array";
    case CONFIG_TYPE_LIST: return "a list";
    default: return "nothing";
    }
}

/* The file a setting came from: libconfig knows it for @include'd files; config_read on a FILE *
 * leaves it NULL, and then it is the file we opened. */
static const char *file_of(const ctx *x, const config_setting_t *s)
{
    const char *f = config_setting_source_file(s);
    return f ? f : x->path;
}

#define FAIL(x, s, ...) fail_at((x), (s), __VA_ARGS__)
__attribute__((format(printf, 3, 4))) static int fail_at(const ctx *x, const config_setting_t *s,
                                                         const char *fmt, ...)
{
    char what[HY_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return hy_error_set(x->err, HY_EINVAL, "%s:%u: %s", file_of(x, s),
                        (unsigned)config_setting_source_line(s), what);
}

/* Reads an int or int64 setting: small values parse as int, large ones (or with the L suffix) as
 * int64, and a user should not have to care which. Returns -1 for any other type. */
static int get_integer(const config_setting_t *s, long long *v)
{
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT: *v = config_setting_get_int(s); return 0;
    case CONFIG_TYPE_INT64: *v = config_setting_get_int64(s); return 0;
    default: return -1;
    }
}

/* An integer within [k->min, k->max]; `name` is the dotted key, `s` the setting holding it. */
static int check_integer(const ctx *x, const config_setting_t *s, const char *name,
                         long long min, long long max, long long *v)
{
    if (get_integer(s, v) != 0)
        return FAIL(x, s, "%s must be an integer in %lld..%lld, not %s", name, min, max,
                    type_name(config_setting_type(s)));
    if (*v < min || *v > max)
        return FAIL(x, s, "%s = %lld is out of range (%lld..%lld)", name, *v, min, max);
    return 0;
}

/* A value from the file, for an error sentence: printable ASCII as it is, every other byte as
 * \xNN (a newline or an escape sequence in a string must not reach a log or a terminal raw),
 * cut with "..." after about 60 characters. `cap` is at least 72. */
static const char *shown(const char *str, char *out, size_t cap)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
        if (n >= 60 || n + 8 > cap) {
            memcpy(out + n, "...", 3);
            n += 3;
            break;
        }
        if (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\')
            out[n++] = (char)*p;
        else
            n += (size_t)snprintf(out + n, cap - n, "\\x%02x", *p);
    }
    out[n] = '\0';
    return out;
}

static int apply_mode(const ctx *x, const config_setting_t *s, const char *name, unsigned *out)
{
    long long v;
    if (config_setting_type(s) == CONFIG_TYPE_STRING) {
        const char *str = config_setting_get_string(s);
        if (!str)
            return FAIL(x, s, "%s could not be read as a string", name);
        /* Octal digits only, as chmod takes them: "0660", "660", "2770". */
        size_t len = strlen(str);
        bool ok = len >= 1 && len <= 5;
        unsigned m = 0;
        for (size_t i = 0; ok && i < len; i++) {
            if (str[i] < '0' || str[i] > '7')
                ok = false;
            else
                m = m * 8 + (unsigned)(str[i] - '0');
        }
        if (!ok || m > 07777) {
            char buf[80];
            return FAIL(x, s, "%s = \"%s\" is not an octal mode (\"0000\"..\"07777\")", name,
                        shown(str, buf, sizeof buf));
        }
        *out = m;
        return 0;
    }
    /* An integer is taken at its value (libconfig has no octal literals: write 0x1B0 or, better,
     * the string "0660"). */
    int rc = check_integer(x, s, name, 0, 07777, &v);
    if (rc)
        return rc;
    *out = (unsigned)v;
    return 0;
}

static int apply_string(const ctx *x, const config_setting_t *s, const char *name, const key *k,
                        char *out)
{
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return FAIL(x, s, "%s must be a string, not %s", name, type_name(config_setting_type(s)));
    const char *str = config_setting_get_string(s);
    if (!str)
        return FAIL(x, s, "%s could not be read as a string", name);
    size_t len = strlen(str);
    if (len >= k->cap)
        return FAIL(x, s, "%s is %zu bytes long; at most %zu fit", name, len, k->cap - 1);
    if (k->kind == K_PATH) {
        if (k->min > 0 && len == 0)
            return FAIL(x, s, "%s must not be empty", name);
        /* The daemon changes directory to /, so a relative path would silently mean another
         * place than the one the user read it from. */
        if (len > 0 && str[0] != '/') {
            char buf[80];
            return FAIL(x, s, "%s = \"%s\" must be an absolute path", name,
                        shown(str, buf, sizeof buf));
        }
    }
    /* Zero the rest of the buffer: equal configurations then compare equal byte for byte. */
    memset(out, 0, k->cap);
    memcpy(out, str, len);
    return 0;
}

/* Elements of an array or list: each an integer in range. For devices, also no repeats. */
static int apply_int_list(const ctx *x, const config_setting_t *s, const char *name, const key *k,
                          hy_config *c)
{
    int type = config_setting_type(s);
    if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST) {
        if (k->kind == K_DEVICES)
            return FAIL(x, s, "%s must be \"all\" or a list of device indices (0..%lld), not %s",
                        name, k->max, type_name(type));
        return FAIL(x, s, "%s must be a list of ids (0..%lld), not %s", name, k->max,
                    type_name(type));
    }
    int n = config_setting_length(s);
    if (n < 0 || (size_t)n > k->cap)
        return FAIL(x, s, "%s has %d entries; at most %zu are allowed", name, n, k->cap);
    /* Clear the whole array first: entries past the count stay zero, so two configurations that
     * say the same compare equal byte for byte. (Both element types are 4 bytes wide.) */
    memset((char *)c + k->off, 0, k->cap * sizeof(uint32_t));
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        if (!e)
            return FAIL(x, s, "%s: entry %d could not be read", name, i);
        char ename[96];
        snprintf(ename, sizeof ename, "%s[%d]", name, i);
        long long v;
        int rc = check_integer(x, e, ename, k->min, k->max, &v);
        if (rc)
            return rc;
        if (k->kind == K_DEVICES) {
            unsigned *dev = (unsigned *)((char *)c + k->off);
            for (int j = 0; j < i; j++)
                if (dev[j] == (unsigned)v)
                    return FAIL(x, e, "%s = %lld is listed twice", ename, v);
            dev[i] = (unsigned)v;
        } else {
            ((uint32_t *)((char *)c + k->off))[i] = (uint32_t)v;
        }
    }
    *(unsigned *)((char *)c + k->off_n) = (unsigned)n;
    return 0;
}

static int apply_key(const ctx *x, const config_setting_t *s, const char *name, const key *k,
                     hy_config *c)
{
    void *field = (char *)c + k->off;
    long long v;
    int rc = 0;
    switch (k->kind) {
    case K_UINT:
        rc = check_integer(x, s, name, k->min, k->max, &v);
        if (!rc)
            *(unsigned *)field = (unsigned)v;
        break;
    case K_U64:
        rc = check_integer(x, s, name, k->min, k->max, &v);
        if (!rc)
            *(uint64_t *)field = (uint64_t)v;
        break;
    case K_MODE: rc = apply_mode(x, s, name, (unsigned *)field); break;
    case K_STR:
    case K_PATH: rc = apply_string(x, s, name, k, (char *)field); break;
    case K_BOOL:
        if (config_setting_type(s) != CONFIG_TYPE_BOOL)
            return FAIL(x, s, "%s must be true or false, not %s", name,
                        type_name(config_setting_type(s)));
        *(bool *)field = config_setting_get_bool(s) != 0;
        break;
    case K_DEVICES:
        if (config_setting_type(s) == CONFIG_TYPE_STRING) {
            const char *str = config_setting_get_string(s);
            if (!str || strcmp(str, "all") != 0) {
                char buf[80];
                return FAIL(x, s, "%s = \"%s\": the only string allowed is \"all\"", name,
                            shown(str ? str : "", buf, sizeof buf));
            }
            c->opencl_all_devices = true;
            c->n_devices = 0;
            memset(c->devices, 0, sizeof c->devices);
            break;
        }
        rc = apply_int_list(x, s, name, k, c);
        if (!rc)
            c->opencl_all_devices = false;
        break;
    case K_IDS: rc = apply_int_list(x, s, name, k, c); break;
    }
    return rc;
}

static int apply_section(const ctx *x, const config_setting_t *g, const section *sec,
                         hy_config *c)
{
    if (config_setting_type(g) != CONFIG_TYPE_GROUP)
        return FAIL(x, g, "%s must be a group ({ ... }), not %s", sec->name,
                    type_name(config_setting_type(g)));
    int n = config_setting_length(g);
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        if (!s)
            return FAIL(x, g, "%s: entry %d could not be read", sec->name, i);
        const char *nm = config_setting_name(s);
        const key *k = NULL;
        for (size_t j = 0; nm && j < sec->n; j++)
            if (strcmp(nm, sec->keys[j].name) == 0)
                k = &sec->keys[j];
        if (!k) {
            /* Name the keys that do exist: the usual cause is a typo. */
            char known[160] = "";
            size_t used = 0;
            for (size_t j = 0; j < sec->n && used < sizeof known; j++)
                used += (size_t)snprintf(known + used, sizeof known - used, "%s%s",
                                         j ? ", " : "", sec->keys[j].name);
            return FAIL(x, s, "unknown key '%s.%s' (%s takes: %s)", sec->name, nm ? nm : "?",
                        sec->name, known);
        }
        char name[64];
        snprintf(name, sizeof name, "%s.%s", sec->name, k->name);
        int rc = apply_key(x, s, name, k, c);
        if (rc)
            return rc;
    }
    return 0;
}

static int apply_root(const ctx *x, const config_setting_t *root, hy_config *c)
{
    int n = config_setting_length(root);
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
        if (!s)
            return hy_error_set(x->err, HY_EINVAL, "%s: entry %d could not be read", x->path, i);
        const char *nm = config_setting_name(s);
        const section *sec = NULL;
        for (size_t j = 0; nm && j < N_SECTIONS; j++)
            if (strcmp(nm, sections[j].name) == 0)
                sec = &sections[j];
        if (!sec)
            return FAIL(x, s, "unknown key '%s' (the file takes: socket, access, cpu, opencl, "
                        "limits, state)", nm ? nm : "?");
        int rc = apply_section(x, s, sec, c);
        if (rc)
            return rc;
    }
    return 0;
}

static bool is_letter(int ch)
{
    return (ch | 0x20) >= 'a' && (ch | 0x20) <= 'z';
}

/* Skips a string after its opening quote, over escapes, to the closing quote. */
static void skip_string(FILE *f, int *line)
{
    int ch;
    while ((ch = getc(f)) != EOF && ch != '"') {
        if (ch == '\\')
            ch = getc(f);
        if (ch == '\n')
            (*line)++;
    }
}

/* Skips a block comment after its opening slash-star, to the closing star-slash. */
static void skip_block_comment(FILE *f, int *line)
{
    int ch, last = 0;
    while ((ch = getc(f)) != EOF && !(last == '*' && ch == '/')) {
        if (ch == '\n')
            (*line)++;
        last = ch;
    }
}

/* Reads a numeric literal whose first digit is `ch` into tok (cut at cap - 1 bytes, never
 * empty), leaving f after it. Returns its length. */
static size_t read_literal(FILE *f, int ch, char *tok, size_t cap)
{
    size_t n = 0;
    do {
        if (n < cap - 1)
            tok[n++] = (char)ch;
        ch = getc(f);
        /* A float's exponent sign belongs to it (1e-5). */
        if ((ch == '-' || ch == '+') && (tok[n - 1] | 0x20) == 'e' &&
            !(n > 1 && (tok[1] | 0x20) == 'x')) {
            if (n < cap - 1)
                tok[n++] = (char)ch;
            ch = getc(f);
        }
    } while (ch != EOF && ((ch >= '0' && ch <= '9') || is_letter(ch) || ch == '.'));
    tok[n] = '\0';
    if (ch != EOF)
        ungetc(ch, f);
    return n;
}

/* Refuses an integer literal (tok, n bytes, negative when `neg`) that libconfig would have
 * wrapped or saturated; floats are left to libconfig. */
static int judge_literal(const ctx *x, const char *tok, size_t n, bool neg, int line)
{
    bool hex = n > 2 && tok[0] == '0' && (tok[1] | 0x20) == 'x';
    if (strchr(tok, '.') || (!hex && (strchr(tok, 'e') || strchr(tok, 'E'))))
        return 0;
    bool wide = false; /* the L suffix (libconfig takes L and LL) */
    size_t digits = n;
    while (digits > 0 && (tok[digits - 1] | 0x20) == 'l') {
        digits--;
        wide = true;
    }
    char num[64];
    if (digits >= sizeof num)
        digits = sizeof num - 1;
    memcpy(num, tok, digits);
    num[digits] = '\0';
    errno = 0;
    unsigned long long v = strtoull(num, NULL, hex ? 16 : 10);
    bool range = errno == ERANGE;
    if (wide && (range || v > (neg ? (unsigned long long)INT64_MAX + 1 : INT64_MAX)))
        return hy_error_set(x->err, HY_EINVAL, "%s:%d: the integer %s%s is beyond the 64-bit range",
                            x->path, line, neg ? "-" : "", tok);
    if (!wide && (range || v > (neg ? (unsigned long long)INT32_MAX + 1 : INT32_MAX)))
        return hy_error_set(x->err, HY_EINVAL,
                            "%s:%d: the integer %s%s is too large for libconfig's int: "
                            "write it with the L suffix (%s%sL)", x->path, line,
                            neg ? "-" : "", tok, neg ? "-" : "", tok);
    return 0;
}

/* libconfig 1.5 reads an integer literal without the L suffix into an int and silently wraps it
 * (4294967297 becomes 1, and so does -4294967295), and one with the suffix into a long long that
 * saturates (99999999999999999999L becomes 2^63-1). So after a good parse, scan the text once,
 * skipping strings, comments and names, for a decimal or hex literal (with its sign) beyond the
 * int range that lacks the L suffix, or beyond the int64 range with it. */
static int check_wide_literals(const ctx *x, FILE *f)
{
    int line = 1, ch, prev = '\n';
    char tok[64];
    if (fseek(f, 0, SEEK_SET) != 0)
        return hy_error_set(x->err, HY_ESYS, "cannot rewind %s: %s", x->path, strerror(errno));
    while ((ch = getc(f)) != EOF) {
        if (ch == '\n') {
            line++;
        } else if (ch == '"') {
            skip_string(f, &line);
        } else if (ch == '/' && (ch = getc(f)) != '/' && ch != '*') {
            if (ch != EOF) /* a lone '/': not ours to judge, libconfig has parsed it */
                ungetc(ch, f);
            ch = '/';
        } else if (ch == '#' || ch == '/') { /* '#' or '//': to the end of the line */
            while ((ch = getc(f)) != EOF && ch != '\n') {}
            line++;
        } else if (ch == '*') { /* after '/' */
            skip_block_comment(f, &line);
        } else if (is_letter(ch)) {
            /* A name ([A-Za-z*][-A-Za-z0-9_*]*) or a boolean, whole: the digits and dashes in
             * it are not numbers, so a '-' seen outside one is a literal's sign. */
            while ((ch = getc(f)) != EOF &&
                   (is_letter(ch) || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
                    ch == '*')) {}
            if (ch != EOF)
                ungetc(ch, f);
            ch = 'a';
        } else if (ch >= '0' && ch <= '9' && !(prev == '_' || prev == '.' ||
                                                (prev >= '0' && prev <= '9') || is_letter(prev))) {
            size_t n = read_literal(f, ch, tok, sizeof tok);
            int rc = judge_literal(x, tok, n, prev == '-', line);
            if (rc)
                return rc;
            ch = tok[n - 1];
        }
        prev = ch;
    }
    if (ferror(f))
        return hy_error_set(x->err, HY_ESYS, "cannot read %s", x->path);
    return 0;
}

/* libconfig 1.5 takes a NUL byte inside a string as its end ("ab\0cd" loads as "ab", silently),
 * and leaks its string buffer when a NUL leads to a syntax error. A configuration is text: refuse
 * the byte before libconfig sees it. Leaves f at its start. */
static int check_no_nul(const ctx *x, FILE *f)
{
    int line = 1, ch;
    while ((ch = getc(f)) != EOF) {
        if (ch == '\0')
            return hy_error_set(x->err, HY_EINVAL,
                                "%s:%d: a NUL byte: a configuration file is text", x->path,
                                line);
        if (ch == '\n')
            line++;
    }
    if (ferror(f))
        return hy_error_set(x->err, HY_ESYS, "cannot read config file %s", x->path);
    if (fseek(f, 0, SEEK_SET) != 0)
        return hy_error_set(x->err, HY_ESYS, "cannot rewind %s: %s", x->path, strerror(errno));
    return 0;
}

int hy_config_load(hy_config *c, const char *path, hy_error *err)
{
    config_t cfg;
    FILE *f = NULL;
    int rc = 0;
    /* Work on a copy so that a file with an error changes nothing (a SIGHUP reload with a typo
     * must leave the running configuration as it was). */
    hy_config next = *c;
    ctx x = {path, err};

    config_init(&cfg);
    /* Opening the file ourselves keeps errno: libconfig reports a missing file and a parse
     * error alike. */
    f = fopen(path, "r");
    if (!f) {
        rc = hy_error_set(err, HY_ESYS, "cannot open config file %s: %s", path, strerror(errno));
        goto out;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        rc = hy_error_set(err, HY_ESYS, "cannot stat config file %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = hy_error_set(err, HY_EINVAL, "config file %s is not a regular file", path);
        goto out;
    }
    rc = check_no_nul(&x, f);
    if (rc)
        goto out;
    if (config_read(&cfg, f) != CONFIG_TRUE) {
        const char *ef = config_error_file(&cfg);
        const char *et = config_error_text(&cfg);
        if (config_error_type(&cfg) == CONFIG_ERR_FILE_IO)
            rc = hy_error_set(err, HY_ESYS, "cannot read config file %s: %s", ef ? ef : path,
                              et ? et : "I/O error");
        else
            rc = hy_error_set(err, HY_EINVAL, "%s:%d: %s", ef ? ef : path,
                              config_error_line(&cfg), et ? et : "parse error");
        goto out;
    }
    const config_setting_t *root = config_root_setting(&cfg);
    if (!root) {
        rc = hy_error_set(err, HY_EINTERNAL, "%s: libconfig returned no root setting", path);
        goto out;
    }
    rc = check_wide_literals(&x, f);
    if (rc)
        goto out;
    rc = apply_root(&x, root, &next);
    if (rc)
        goto out;
    *c = next;
out:
    if (f)
        fclose(f);
    config_destroy(&cfg);
    return rc;
}

/* ---- printing ---- */

/* A libconfig string literal: quotes and backslashes escaped, control bytes as \xNN. */
static void put_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\x%02x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* Values above INT32_MAX need libconfig's L suffix; giving it to every element of a list once
 * one needs it keeps the array's elements of one type, which libconfig requires. */
static void put_ids(FILE *f, const char *name, const uint32_t *ids, unsigned n)
{
    bool big = false;
    for (unsigned i = 0; i < n; i++)
        big = big || ids[i] > INT32_MAX;
    fprintf(f, "  %s = [", name);
    for (unsigned i = 0; i < n; i++)
        fprintf(f, "%s %" PRIu32 "%s", i ? "," : "", ids[i], big ? "L" : "");
    fprintf(f, " ];\n");
}

int hy_config_print(const hy_config *c, FILE *f)
{
    fprintf(f, "# hybridd configuration (libconfig syntax); see hybridd.conf for every key.\n");
    fprintf(f, "socket = {\n  path = ");
    put_string(f, c->socket_path);
    fprintf(f, ";\n  mode = \"%04o\";\n  group = ", c->socket_mode);
    put_string(f, c->socket_group);
    fprintf(f, ";\n};\n");

    fprintf(f, "access = {\n");
    put_ids(f, "uids", c->uids, c->n_uids);
    put_ids(f, "gids", c->gids, c->n_gids);
    fprintf(f, "};\n");

    fprintf(f,
            "cpu = {\n  native_threads = %u;\n  locked_threads = %u;\n"
            "  switch_interval_us = %u;\n  process_workers = %u;\n",
            c->native_threads, c->locked_threads, c->switch_interval_us, c->process_workers);
    put_ids(f, "cpus", c->cpus, c->n_cpus);
    fprintf(f, "};\n");

    fprintf(f, "opencl = {\n  enabled = %s;\n  devices = ", c->opencl_enabled ? "true" : "false");
    if (c->opencl_all_devices) {
        fprintf(f, "\"all\"");
    } else {
        fprintf(f, "[");
        for (unsigned i = 0; i < c->n_devices; i++)
            fprintf(f, "%s %u", i ? "," : "", c->devices[i]);
        fprintf(f, " ]");
    }
    fprintf(f, ";\n  cache_dir = ");
    put_string(f, c->cache_dir);
    fprintf(f, ";\n  hybrid_cpu_devices = %s;\n};\n", c->hybrid_cpu_devices ? "true" : "false");

    /* Every limit with the L suffix: the same text then parses as int64 whatever its size. */
    fprintf(f,
            "limits = {\n  clients = %" PRIu64 "L;\n  frame_bytes = %" PRIu64 "L;\n"
            "  queued_jobs = %" PRIu64 "L;\n  jobs_per_client = %" PRIu64 "L;\n"
            "  samples = %" PRIu64 "L;\n  sort_elements = %" PRIu64 "L;\n"
            "  job_bytes = %" PRIu64 "L;\n  job_timeout_s = %" PRIu64 "L;\n"
            "  drain_timeout_s = %" PRIu64 "L;\n  peer_timeout_s = %" PRIu64 "L;\n"
            "  span_keep_bytes = %" PRIu64 "L;\n};\n",
            c->max_clients, c->max_frame_bytes, c->max_queued_jobs, c->max_jobs_per_client,
            c->max_samples, c->max_sort_elements, c->max_job_bytes, c->job_timeout_s,
            c->drain_timeout_s, c->peer_timeout_s, c->span_keep_bytes);
    fprintf(f, "state = {\n  history = ");
    put_string(f, c->history_path);
    fprintf(f, ";\n};\n");
    if (fflush(f) != 0 || ferror(f))
        return HY_ESYS;
    return 0;
}

/* ---- reloading: what changed, and what must wait for a restart ---- */

/* A key's value as the configuration file writes it, for the reload log. */
static void format_value(const key *k, const hy_config *c, char *buf, size_t cap)
{
    const char *field = (const char *)c + k->off;
    size_t n = 0;
    switch (k->kind) {
    case K_UINT: snprintf(buf, cap, "%u", *(const unsigned *)field); return;
    case K_U64: snprintf(buf, cap, "%" PRIu64, *(const uint64_t *)field); return;
    case K_MODE: snprintf(buf, cap, "\"%04o\"", *(const unsigned *)field); return;
    case K_BOOL: snprintf(buf, cap, "%s", *(const bool *)field ? "true" : "false"); return;
    case K_STR:
    case K_PATH:
        /* Whole, as shown() would write it but without its cut at 60: two long paths that
         * differ near their ends must read differently. Printable ASCII as it is. */
        buf[n++] = '"';
        for (const unsigned char *p = (const unsigned char *)field; *p && n + 8 < cap; p++) {
            if (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\')
                buf[n++] = (char)*p;
            else
                n += (size_t)snprintf(buf + n, cap - n, "\\x%02x", *p);
        }
        snprintf(buf + n, cap - n, "\"");
        return;
    case K_DEVICES:
    case K_IDS: {
        if (k->kind == K_DEVICES && c->opencl_all_devices) {
            snprintf(buf, cap, "\"all\"");
            return;
        }
        unsigned count = *(const unsigned *)((const char *)c + k->off_n);
        n += (size_t)snprintf(buf + n, cap - n, "[");
        for (unsigned i = 0; i < count && n < cap; i++)
            n += (size_t)snprintf(buf + n, cap - n, "%s %" PRIu32, i ? "," : "",
                                  ((const uint32_t *)field)[i]);
        if (n < cap)
            snprintf(buf + n, cap - n, " ]");
        return;
    }
    }
}

/* The bytes of a key's value in hy_config (a list's whole array: unused entries are 0). */
static size_t value_size(const key *k)
{
    switch (k->kind) {
    case K_UINT:
    case K_MODE: return sizeof(unsigned);
    case K_U64: return sizeof(uint64_t);
    case K_BOOL: return sizeof(bool);
    case K_STR:
    case K_PATH: return k->cap;
    case K_DEVICES:
    case K_IDS: return k->cap * sizeof(uint32_t);
    }
    return 0;
}

/* Whether a key has the same value in a and b: compared whole, not as the log shows it (a
 * long path is cut there). Strings, lists' unused entries included, are zero-padded. */
static bool same_value(const key *k, const hy_config *a, const hy_config *b)
{
    if (k->kind == K_STR || k->kind == K_PATH)
        return strcmp((const char *)a + k->off, (const char *)b + k->off) == 0;
    if (k->kind == K_DEVICES && a->opencl_all_devices != b->opencl_all_devices)
        return false;
    if ((k->kind == K_IDS || k->kind == K_DEVICES) &&
        *(const unsigned *)((const char *)a + k->off_n) !=
            *(const unsigned *)((const char *)b + k->off_n))
        return false;
    return memcmp((const char *)a + k->off, (const char *)b + k->off, value_size(k)) == 0;
}

/* Copies one key's value (and, for lists, its count) from src to dst. */
static void copy_value(const key *k, hy_config *dst, const hy_config *src)
{
    if (k->kind == K_IDS || k->kind == K_DEVICES)
        memcpy((char *)dst + k->off_n, (const char *)src + k->off_n, sizeof(unsigned));
    if (k->kind == K_DEVICES)
        dst->opencl_all_devices = src->opencl_all_devices;
    memcpy((char *)dst + k->off, (const char *)src + k->off, value_size(k));
}

void hy_config_diff(const hy_config *old, const hy_config *now, hy_config_diff_fn *fn, void *ctx)
{
    char a[HY_CONFIG_VALUE_MAX], b[HY_CONFIG_VALUE_MAX], name[64];
    for (size_t i = 0; i < N_SECTIONS; i++)
        for (size_t j = 0; j < sections[i].n; j++) {
            const key *k = &sections[i].keys[j];
            if (same_value(k, old, now))
                continue;
            format_value(k, old, a, sizeof a);
            format_value(k, now, b, sizeof b);
            snprintf(name, sizeof name, "%s.%s", sections[i].name, k->name);
            fn(ctx, name, a, b, k->reload);
        }
}

void hy_config_keep_restart_keys(hy_config *now, const hy_config *running)
{
    for (size_t i = 0; i < N_SECTIONS; i++)
        for (size_t j = 0; j < sections[i].n; j++)
            if (sections[i].keys[j].reload == HY_RELOAD_RESTART)
                copy_value(&sections[i].keys[j], now, running);
}

size_t hy_config_keys(hy_config_key_info *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < N_SECTIONS; i++)
        for (size_t j = 0; j < sections[i].n; j++, n++)
            if (n < cap) {
                snprintf(out[n].name, sizeof out[n].name, "%s.%s", sections[i].name,
                         sections[i].keys[j].name);
                out[n].reload = sections[i].keys[j].reload;
            }
    return n;
}
