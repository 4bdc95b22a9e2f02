/* tests/fuzz: libFuzzer target for hybridd's strict configuration loader. The input becomes the
 * text of a libconfig file, in one of two ways chosen by its first byte:
 *   - 0x00..0x08 (never the start of a config someone wrote): structured mode — the rest of
 *     the input is a stream of choices that builds a syntactically plausible file from the
 *     schema: sections, keys (known, misplaced, unknown) and values of every kind (integers at
 *     and around each key's range, wide integers with and without L, signs, hex, strings,
 *     octal modes, paths, floats, booleans, arrays, lists, groups), so that most inputs pass
 *     libconfig's parser and reach the validation;
 *   - anything else: the bytes are the text itself (libconfig's parser and the wide-literal
 *     scan see arbitrary text).
 * The text goes into a memfd, loaded with hy_config_load("/proc/self/fd/N") over the defaults
 * (of a fixed uid and XDG_RUNTIME_DIR, so a run does not depend on its environment). Checked:
 *   - a refusal leaves the struct byte for byte as it was, with HY_EINVAL and a non-empty
 *     one-line sentence;
 *   - an accepted file gives a struct whose every field is within its documented range (and
 *     whose unused string and list bytes are zero), and hy_config_print of it, loaded again,
 *     gives the identical struct (memcmp);
 *   - structured mode knows what it wrote: when the file is accepted, every key it set holds
 *     exactly the value written (so nothing was wrapped, clamped or truncated on the way), and
 *     no key took a float, a group or a value of the wrong kind.
 * Inputs that mention @include are skipped: libconfig would read other files. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"

static hy_config defaults;
static bool show;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    hy_config_defaults_for(&defaults, 1000, "/run/user/1000");
    show = getenv("FUZZ_CONFIG_SHOW") != NULL;
    return 0;
}

/* ---- the schema, as the fuzzer knows it (daemon/config.c and hybridd.conf) ---- */

enum kind { UINT, U64, MODE, STR, PATH, BOOL, IDS, DEVICES };

typedef struct fkey {
    const char *name;
    enum kind kind;
    size_t off, off_n;
    long long min, max;
    size_t cap;
} fkey;

#define F(field) offsetof(hy_config, field)
#define SZ(field) sizeof(((hy_config *)0)->field)

static const fkey socket_keys[] = {
    {"path", PATH, F(socket_path), 0, 1, 0, SZ(socket_path)},
    {"mode", MODE, F(socket_mode), 0, 0, 07777, 0},
    {"group", STR, F(socket_group), 0, 0, 0, SZ(socket_group)},
};
static const fkey access_keys[] = {
    {"uids", IDS, F(uids), F(n_uids), 0, 4294967294LL, HY_CONFIG_MAX_IDS},
    {"gids", IDS, F(gids), F(n_gids), 0, 4294967294LL, HY_CONFIG_MAX_IDS},
};
static const fkey cpu_keys[] = {
    {"native_threads", UINT, F(native_threads), 0, 0, HY_CONFIG_MAX_THREADS, 0},
    {"locked_threads", UINT, F(locked_threads), 0, 0, HY_CONFIG_MAX_THREADS, 0},
    {"switch_interval_us", UINT, F(switch_interval_us), 0, 1, 1000000, 0},
    {"process_workers", UINT, F(process_workers), 0, 0, HY_CONFIG_MAX_WORKERS, 0},
};
static const fkey opencl_keys[] = {
    {"enabled", BOOL, F(opencl_enabled), 0, 0, 0, 0},
    {"devices", DEVICES, F(devices), F(n_devices), 0, HY_CONFIG_MAX_DEVICES - 1,
     HY_CONFIG_MAX_DEVICES},
    {"cache_dir", PATH, F(cache_dir), 0, 0, 0, SZ(cache_dir)},
};
static const fkey limits_keys[] = {
    {"clients", U64, F(max_clients), 0, 1, 65536, 0},
    {"frame_bytes", U64, F(max_frame_bytes), 0, 64LL << 10, 16LL << 20, 0},
    {"queued_jobs", U64, F(max_queued_jobs), 0, 1, 100000, 0},
    {"jobs_per_client", U64, F(max_jobs_per_client), 0, 1, 10000, 0},
    {"samples", U64, F(max_samples), 0, 1, INT64_MAX, 0},
    {"sort_elements", U64, F(max_sort_elements), 0, 1, 1LL << 40, 0},
    {"job_bytes", U64, F(max_job_bytes), 0, 1, 1LL << 48, 0},
    {"job_timeout_s", U64, F(job_timeout_s), 0, 0, INT32_MAX, 0},
    {"drain_timeout_s", U64, F(drain_timeout_s), 0, 0, 86400, 0},
};

typedef struct fsection {
    const char *name;
    const fkey *keys;
    unsigned n;
} fsection;

#define SECTION(name, keys) {name, keys, sizeof keys / sizeof keys[0]}
static const fsection sections[] = {
    SECTION("socket", socket_keys), SECTION("access", access_keys), SECTION("cpu", cpu_keys),
    SECTION("opencl", opencl_keys), SECTION("limits", limits_keys),
};
#define N_SECTIONS 5u
#define MAX_KEYS 9u

/* ---- checks on an accepted configuration ---- */

static bool zero_after(const void *p, size_t from, size_t cap)
{
    for (size_t i = from; i < cap; i++)
        if (((const unsigned char *)p)[i])
            return false;
    return true;
}

static bool good_string(const char *s, size_t cap)
{
    const char *nul = memchr(s, '\0', cap);
    return nul && zero_after(s, (size_t)(nul - s), cap);
}

#define REQUIRE(cond)                                                                          \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "fuzz_config: %s:%d: %s\n", __FILE__, __LINE__, #cond);            \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

static void check_ranges(const hy_config *c)
{
    REQUIRE(good_string(c->socket_path, sizeof c->socket_path));
    REQUIRE(c->socket_path[0] == '/');
    REQUIRE(c->socket_mode <= 07777);
    REQUIRE(good_string(c->socket_group, sizeof c->socket_group));
    REQUIRE(c->n_uids <= HY_CONFIG_MAX_IDS && c->n_gids <= HY_CONFIG_MAX_IDS);
    for (unsigned i = 0; i < c->n_uids; i++)
        REQUIRE(c->uids[i] != UINT32_MAX);
    for (unsigned i = 0; i < c->n_gids; i++)
        REQUIRE(c->gids[i] != UINT32_MAX);
    REQUIRE(zero_after(c->uids, c->n_uids * sizeof c->uids[0], sizeof c->uids));
    REQUIRE(zero_after(c->gids, c->n_gids * sizeof c->gids[0], sizeof c->gids));
    REQUIRE(c->native_threads <= HY_CONFIG_MAX_THREADS);
    REQUIRE(c->locked_threads <= HY_CONFIG_MAX_THREADS);
    REQUIRE(c->switch_interval_us >= 1 && c->switch_interval_us <= 1000000);
    REQUIRE(c->process_workers <= HY_CONFIG_MAX_WORKERS);
    REQUIRE(c->n_devices <= HY_CONFIG_MAX_DEVICES);
    REQUIRE(!c->opencl_all_devices || c->n_devices == 0);
    bool used[HY_CONFIG_MAX_DEVICES] = {false};
    for (unsigned i = 0; i < c->n_devices; i++) {
        REQUIRE(c->devices[i] < HY_CONFIG_MAX_DEVICES);
        REQUIRE(!used[c->devices[i]]); /* no device listed twice */
        used[c->devices[i]] = true;
    }
    REQUIRE(zero_after(c->devices, c->n_devices * sizeof c->devices[0], sizeof c->devices));
    REQUIRE(good_string(c->cache_dir, sizeof c->cache_dir));
    REQUIRE(c->cache_dir[0] == '\0' || c->cache_dir[0] == '/');
    REQUIRE(c->max_clients >= 1 && c->max_clients <= 65536);
    REQUIRE(c->max_frame_bytes >= 64u << 10 && c->max_frame_bytes <= 16u << 20);
    REQUIRE(c->max_queued_jobs >= 1 && c->max_queued_jobs <= 100000);
    REQUIRE(c->max_jobs_per_client >= 1 && c->max_jobs_per_client <= 10000);
    REQUIRE(c->max_samples >= 1 && c->max_samples <= INT64_MAX);
    REQUIRE(c->max_sort_elements >= 1 && c->max_sort_elements <= UINT64_C(1) << 40);
    REQUIRE(c->max_job_bytes >= 1 && c->max_job_bytes <= UINT64_C(1) << 48);
    REQUIRE(c->job_timeout_s <= INT32_MAX);
    REQUIRE(c->drain_timeout_s <= 86400);
}

/* ---- structured mode: text built from choices, and what it should load as ---- */

enum vkind { V_NONE, V_INT, V_STR, V_BOOL, V_LIST, V_OTHER };

#define MAX_LIST 72
#define MAX_STR 4200
typedef struct expect {
    bool set;
    enum vkind kind;
    __int128 ival;      /* V_INT: the literal's value, exactly */
    bool bval;          /* V_BOOL */
    size_t slen;        /* V_STR: the string after escapes */
    char str[MAX_STR];
    unsigned n;         /* V_LIST: integers only (list_ok) */
    __int128 list[MAX_LIST];
    bool list_ok;
} expect;

static expect want[N_SECTIONS][MAX_KEYS];

#define TEXT_MAX (128u * 1024u)
static char text[TEXT_MAX];
static size_t tlen;
static bool full;

static void emit(const char *s, size_t n)
{
    if (tlen + n >= TEXT_MAX - 16) {
        full = true;
        return;
    }
    memcpy(text + tlen, s, n);
    tlen += n;
}
static void puts_(const char *s) { emit(s, strlen(s)); }

/* The choice stream. Exhausted, it answers 0. */
typedef struct choices {
    const uint8_t *p;
    size_t n;
} choices;

static unsigned pick(choices *c)
{
    if (c->n == 0)
        return 0;
    c->n--;
    return *c->p++;
}

static unsigned pick16(choices *c)
{
    unsigned a = pick(c);
    return a | pick(c) << 8;
}

/* A decimal or hex literal for v (which may be beyond 64 bits), with or without L. */
static void emit_int(__int128 v, bool hex, bool l_suffix)
{
    char buf[64];
    char *e = buf + sizeof buf;
    *--e = '\0';
    if (l_suffix)
        *--e = 'L';
    unsigned __int128 m = v < 0 ? -(unsigned __int128)v : (unsigned __int128)v;
    unsigned base = hex ? 16 : 10;
    do {
        *--e = "0123456789abcdef"[m % base];
        m /= base;
    } while (m);
    if (hex) {
        *--e = 'x';
        *--e = '0';
    }
    if (v < 0)
        *--e = '-';
    puts_(e);
}

static __int128 interesting_int(choices *c, const fkey *k)
{
    static const __int128 fixed[] = {
        0, 1, 2, 7, 255, 256, 257, 0660, 07777, 010000, 65535, 65536, 65537, 86400, 86401,
        100000, 100001, 1000000, 1000001, 2147483647, 2147483648, 4294967294, 4294967295,
        4294967296, 4294967297, -1, -2147483648LL, -2147483649LL, -4294967295LL, -4294967296LL,
        (__int128)1 << 40, ((__int128)1 << 40) + 1, (__int128)1 << 48, ((__int128)1 << 48) + 1,
        INT64_MAX, (__int128)INT64_MAX + 1, INT64_MIN, (__int128)INT64_MIN - 1,
        (__int128)UINT64_MAX, (__int128)UINT64_MAX + 2, (__int128)UINT64_MAX * 10,
    };
    unsigned w = pick(c);
    if (k && (k->kind == UINT || k->kind == U64 || k->kind == MODE || k->kind == IDS ||
              k->kind == DEVICES) && w < 160) {
        long long lo = k->kind == MODE ? 0 : k->min, hi = k->kind == MODE ? 07777 : k->max;
        switch (w % 6) {
        case 0: return (__int128)lo - 1;
        case 1: return lo;
        case 2: return hi;
        case 3: return (__int128)hi + 1;
        default: return lo + (__int128)pick16(c) % ((__int128)hi - lo + 1);
        }
    }
    return fixed[w % (sizeof fixed / sizeof fixed[0])];
}

/* An integer literal; sets *v to its value. Small literals may omit L; large ones sometimes
 * do too (the loader must refuse those). */
static void gen_int(choices *c, const fkey *k, __int128 *v)
{
    *v = interesting_int(c, k);
    unsigned form = pick(c);
    bool hex = form & 1 && *v >= 0;
    bool wide = *v < INT32_MIN || *v > INT32_MAX;
    bool l_suffix = wide ? (form & 6) != 0 : (form & 6) == 6;
    emit_int(*v, hex, l_suffix);
}

/* A string literal; records the string it stands for. */
static void gen_string(choices *c, const fkey *k, expect *e)
{
    char s[MAX_STR];
    size_t n = 0;
    unsigned how = pick(c) % 12;
    static const char *const fixed[] = {"all", "", "0660", "660", "2770", "07777", "7777",
                                        "10000", "8", "066O", "-1", "0x1B0", "000000", "all "};
    switch (how) {
    case 0:
    case 1:
    case 2: { /* an absolute path of a chosen length: around 107 and 4095 */
        static const size_t lens[] = {1, 2, 20, 106, 107, 108, 200, 4094, 4095, 4096, 4100};
        size_t len = lens[pick(c) % (sizeof lens / sizeof lens[0])];
        s[n++] = '/';
        for (; n < len && n < MAX_STR - 1; n++)
            s[n] = "abcdefgh/_-."[n % 12];
        break;
    }
    case 3: /* a relative path */
        memcpy(s, "run/hybridd.sock", 16);
        n = 16;
        break;
    case 4:
    case 5:
    case 6: {
        const char *f = fixed[pick(c) % (sizeof fixed / sizeof fixed[0])];
        n = strlen(f);
        memcpy(s, f, n);
        break;
    }
    case 7: /* an octal mode of any digits */
        n = 1 + pick(c) % 6;
        for (size_t i = 0; i < n; i++)
            s[i] = (char)('0' + pick(c) % 10);
        break;
    default: { /* bytes from the input, printable or escaped below */
        size_t len = pick(c) % 80;
        if (k && k->kind == PATH && how == 8)
            s[n++] = '/';
        for (size_t i = 0; i < len && c->n; i++) {
            unsigned b = pick(c);
            if (b == 0)
                b = 1; /* libconfig strings end at a NUL */
            s[n++] = (char)b;
        }
        break;
    }
    }
    s[n] = '\0';
    emit("\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        char esc[8];
        if (b == '"' || b == '\\')
            snprintf(esc, sizeof esc, "\\%c", b);
        else if (b < 0x20 || b == 0x7f)
            snprintf(esc, sizeof esc, "\\x%02x", b);
        else {
            esc[0] = (char)b;
            esc[1] = '\0';
        }
        puts_(esc);
    }
    emit("\"", 1);
    e->kind = V_STR;
    memcpy(e->str, s, n + 1);
    e->slen = n;
}

/* [ ... ] (an array: one scalar type) or ( ... ) (a list: anything). */
static void gen_list(choices *c, const fkey *k, expect *e)
{
    unsigned shape = pick(c);
    bool list = shape & 1;
    unsigned n = (shape >> 1) % 8 == 0 ? (unsigned)pick(c) % MAX_LIST : (shape >> 1) % 8 - 1;
    bool all_l = pick(c) & 1;
    e->kind = V_LIST;
    e->list_ok = true;
    e->n = 0;
    puts_(list ? "(" : "[");
    for (unsigned i = 0; i < n && !full; i++) {
        if (i)
            puts_(", ");
        unsigned what = pick(c) % 16;
        if (what == 15) {
            puts_("\"0\"");
            e->list_ok = false;
            continue;
        }
        if (what == 14) {
            puts_("1.0");
            e->list_ok = false;
            continue;
        }
        __int128 v;
        if (what < 8 && k) {
            /* A small index, often repeated. */
            v = pick(c) % (what < 4 ? 8 : 70);
            emit_int(v, false, all_l);
        } else {
            v = interesting_int(c, k);
            bool wide = v < INT32_MIN || v > INT32_MAX;
            emit_int(v, false, all_l || (wide && (what & 1)));
        }
        e->list[e->n++] = v;
    }
    puts_(list ? ")" : "]");
}

/* A value the key takes: most files are then accepted, and their values checked. */
static void gen_fitting(choices *c, const fkey *k, expect *e)
{
    switch (k->kind) {
    case UINT:
    case U64: {
        __int128 v = k->min + (__int128)pick16(c) % ((__int128)k->max - k->min + 1);
        emit_int(v, pick(c) & 1, v > INT32_MAX || (pick(c) & 1));
        e->kind = V_INT;
        e->ival = v;
        break;
    }
    case MODE: {
        unsigned m = pick16(c) & 07777;
        char buf[16];
        snprintf(buf, sizeof buf, "\"%04o\"", m);
        puts_(buf);
        e->kind = V_STR;
        snprintf(e->str, sizeof e->str, "%04o", m);
        e->slen = strlen(e->str);
        break;
    }
    case STR:
    case PATH: {
        unsigned len = pick(c) % (k->cap < 120 ? (unsigned)k->cap : 120u);
        char s[128];
        size_t n = 0;
        if (k->kind == PATH && (len || k->min))
            s[n++] = '/';
        while (n < len)
            s[n++] = "abcdefghijklmnopqrstuvwxyz0123456789/._-"[pick(c) % 40];
        s[n] = '\0';
        puts_("\"");
        puts_(s);
        puts_("\"");
        e->kind = V_STR;
        memcpy(e->str, s, n + 1);
        e->slen = n;
        break;
    }
    case BOOL:
        e->kind = V_BOOL;
        e->bval = pick(c) & 1;
        puts_(e->bval ? "true" : "false");
        break;
    case IDS:
    case DEVICES: {
        if (k->kind == DEVICES && (pick(c) & 3) == 0) {
            puts_("\"all\"");
            e->kind = V_STR;
            memcpy(e->str, "all", 4);
            e->slen = 3;
            break;
        }
        unsigned n = pick(c) % 9;
        bool used[64] = {false};
        bool wide = k->kind == IDS && (pick(c) & 1);
        e->kind = V_LIST;
        e->list_ok = true;
        e->n = 0;
        puts_("[");
        for (unsigned i = 0; i < n; i++) {
            __int128 v;
            if (k->kind == DEVICES) {
                v = pick(c) % 64;
                if (used[v])
                    continue;
                used[v] = true;
            } else {
                v = wide ? 4294967294 - pick16(c) : pick16(c);
            }
            if (e->n)
                puts_(", ");
            emit_int(v, false, wide);
            e->list[e->n++] = v;
        }
        puts_("]");
        break;
    }
    }
}

static void gen_value(choices *c, const fkey *k, expect *e)
{
    memset(e, 0, offsetof(expect, str));
    e->set = true;
    unsigned v = pick(c) % 32;
    if (k && v >= 8) {
        gen_fitting(c, k, e);
        return;
    }
    switch (v % 8) {
    case 0:
    case 1: e->kind = V_INT; gen_int(c, k, &e->ival); break;
    case 2: gen_string(c, k, e); break;
    case 3: {
        static const char *const bools[] = {"true", "false", "TRUE", "False", "tRuE"};
        unsigned b = pick(c) % 5;
        puts_(bools[b]);
        e->kind = V_BOOL;
        e->bval = b == 0 || b == 2 || b == 4;
        break;
    }
    case 4: {
        static const char *const floats[] = {"1.5", "0.0", "-0.0", "1e3", "1E+3", ".5",
                                             "5.", "1e-4294967297", "256.0", "-1.5e-3"};
        puts_(floats[pick(c) % 10]);
        e->kind = V_OTHER;
        break;
    }
    case 5:
    case 6: gen_list(c, k, e); break;
    default:
        puts_("{ x = 1; }");
        e->kind = V_OTHER;
        break;
    }
}

static void gen_space(choices *c)
{
    static const char *const spaces[] = {" ", " ", "\n", "\t", " # a comment\n",
                                         " // a comment\n", " /* 12345678901 */ ", "\n\n"};
    puts_(spaces[pick(c) % 8]);
}

/* Mostly well-formed: each section and each key at most once (libconfig refuses repeats), in
 * an order from the input; a wrong section, a misplaced or unknown key, now and then. */
static void build(choices *c)
{
    tlen = 0;
    full = false;
    for (unsigned si = 0; si < N_SECTIONS; si++)
        for (unsigned ki = 0; ki < MAX_KEYS; ki++)
            want[si][ki].set = false;
    bool sec_used[N_SECTIONS] = {false};
    unsigned nsec = 1 + pick(c) % 6;
    for (unsigned s = 0; s < nsec && !full; s++) {
        unsigned b = pick(c);
        unsigned si = b % N_SECTIONS;
        if ((b & 0xe0) == 0xe0) { /* 1 in 8: a section that is wrong */
            static const char *const odd[] = {"sockets = { };\n", "Socket = { };\n",
                                              "cpu = 5;\n", "limits = \"all\";\n"};
            puts_(odd[b / 8 % 4]);
            continue;
        }
        if (sec_used[si] && (b & 0xe0) != 0xc0)
            continue; /* a repeat, 1 in 8 of the time */
        sec_used[si] = true;
        const fsection *sec = &sections[si];
        puts_(sec->name);
        puts_(b & 16 ? " : {" : " = {");
        gen_space(c);
        bool key_used[MAX_KEYS] = {false};
        unsigned nkeys = pick(c) % 10;
        for (unsigned i = 0; i < nkeys && !full; i++) {
            unsigned kb = pick(c);
            const fkey *k = NULL;
            expect scratch;
            expect *e = &scratch;
            if ((kb & 0x0f) == 0x0f) {
                /* A key of another section, or no key at all: unknown here. */
                const fsection *o = &sections[(si + 1 + kb / 16 % 4) % N_SECTIONS];
                puts_(kb & 0x80 ? o->keys[kb / 64 % o->n].name
                                : kb & 0x40 ? "Path" : "native-threads");
            } else {
                unsigned ki = kb % sec->n;
                if (key_used[ki] && (kb & 0x0f) != 0x0e)
                    continue; /* a repeat, 1 in 16 of the time */
                key_used[ki] = true;
                k = &sec->keys[ki];
                e = &want[si][ki];
                puts_(k->name);
            }
            puts_(kb & 0x20 ? ": " : " = ");
            gen_value(c, k, e);
            puts_(kb & 0x10 ? "," : ";");
            gen_space(c);
        }
        puts_("};\n");
    }
}

/* On an accepted file: every key the builder set holds what it wrote. */
static void check_wanted(const hy_config *cfg)
{
    for (unsigned si = 0; si < N_SECTIONS; si++) {
        for (unsigned ki = 0; ki < sections[si].n; ki++) {
            const expect *e = &want[si][ki];
            if (!e->set)
                continue;
            const fkey *k = &sections[si].keys[ki];
            const char *field = (const char *)cfg + k->off;
            switch (k->kind) {
            case UINT:
                REQUIRE(e->kind == V_INT);
                REQUIRE(*(const unsigned *)(const void *)field == e->ival);
                break;
            case U64:
                REQUIRE(e->kind == V_INT);
                REQUIRE(*(const uint64_t *)(const void *)field == e->ival);
                break;
            case MODE: {
                unsigned m = *(const unsigned *)(const void *)field;
                if (e->kind == V_INT) {
                    REQUIRE(m == e->ival);
                } else {
                    REQUIRE(e->kind == V_STR);
                    REQUIRE(e->slen >= 1 && e->slen <= 5);
                    unsigned long x = 0;
                    for (size_t i = 0; i < e->slen; i++) {
                        REQUIRE(e->str[i] >= '0' && e->str[i] <= '7');
                        x = x * 8 + (unsigned)(e->str[i] - '0');
                    }
                    REQUIRE(m == x);
                }
                break;
            }
            case STR:
            case PATH:
                REQUIRE(e->kind == V_STR);
                REQUIRE(strcmp(field, e->str) == 0);
                break;
            case BOOL:
                REQUIRE(e->kind == V_BOOL);
                REQUIRE(*(const bool *)field == e->bval);
                break;
            case DEVICES:
                if (e->kind == V_STR) {
                    REQUIRE(strcmp(e->str, "all") == 0);
                    REQUIRE(cfg->opencl_all_devices && cfg->n_devices == 0);
                    break;
                }
                REQUIRE(!cfg->opencl_all_devices);
                /* fall through */
            case IDS: {
                REQUIRE(e->kind == V_LIST && e->list_ok);
                unsigned n = *(const unsigned *)(const void *)((const char *)cfg + k->off_n);
                REQUIRE(n == e->n);
                const uint32_t *ids = (const uint32_t *)(const void *)field;
                for (unsigned i = 0; i < n; i++)
                    REQUIRE(ids[i] == e->list[i]);
                break;
            }
            }
        }
    }
}

/* ---- libconfig's objects ---- */

/* lsan.supp suppresses every leak allocated inside libconfig, by module: libconfig 1.5 leaks on
 * some syntax errors, and without a symbolizer its frames have no names to match. What hybridd
 * itself could leak through libconfig is a config_t it never destroys, which that suppression
 * would hide too: so the loader's config_init and config_destroy are wrapped (-Wl,--wrap, see
 * CMakeLists.txt) and every load must leave as many destroyed as initialised. */
#include <libconfig.h>

void __real_config_init(config_t *cfg);
void __real_config_destroy(config_t *cfg);
void __wrap_config_init(config_t *cfg);
void __wrap_config_destroy(config_t *cfg);

static long live_configs;

void __wrap_config_init(config_t *cfg)
{
    live_configs++;
    __real_config_init(cfg);
}

void __wrap_config_destroy(config_t *cfg)
{
    live_configs--;
    __real_config_destroy(cfg);
}

/* ---- the target ---- */

static int text_fd(const void *bytes, size_t n)
{
    int fd = memfd_create("fuzz_config", MFD_CLOEXEC);
    if (fd < 0)
        abort();
    for (size_t at = 0; at < n;) {
        ssize_t w = write(fd, (const char *)bytes + at, n - at);
        if (w <= 0)
            abort();
        at += (size_t)w;
    }
    return fd;
}

static hy_config c, before, again;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool structured = size > 0 && data[0] <= 0x08;
    const void *bytes = data;
    size_t n = size;
    if (structured) {
        choices ch = {data + 1, size - 1};
        build(&ch);
        bytes = text;
        n = tlen;
    }
    if (memmem(bytes, n, "@include", 8))
        return 0;
    if (show) /* FUZZ_CONFIG_SHOW=1: print each text (to read what a crash or a seed loads) */
        fprintf(stderr, "---- %zu bytes of text\n%.*s\n----\n", n, (int)n, (const char *)bytes);

    int fd = text_fd(bytes, n);
    char path[32];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    c = defaults;
    before = c;
    hy_error err = {0};
    int rc = hy_config_load(&c, path, &err);
    close(fd);
    REQUIRE(live_configs == 0);
    if (show)
        fprintf(stderr, "=> %d %s\n", rc, rc ? err.msg : "accepted");

    if (rc != 0) {
        REQUIRE(memcmp(&c, &before, sizeof c) == 0);
        REQUIRE(rc == HY_EINVAL && err.code == rc);
        REQUIRE(err.msg[0] != '\0');
        REQUIRE(strchr(err.msg, '\n') == NULL);
        return 0;
    }
    check_ranges(&c);
    if (structured)
        check_wanted(&c);

    /* Printed and loaded again (over the defaults): the very same struct. */
    int pfd = memfd_create("fuzz_config_print", MFD_CLOEXEC);
    REQUIRE(pfd >= 0);
    int dfd = dup(pfd);
    REQUIRE(dfd >= 0);
    FILE *f = fdopen(dfd, "w");
    REQUIRE(f != NULL);
    REQUIRE(hy_config_print(&c, f) == 0);
    REQUIRE(fclose(f) == 0);
    snprintf(path, sizeof path, "/proc/self/fd/%d", pfd);
    again = defaults;
    rc = hy_config_load(&again, path, &err);
    close(pfd);
    REQUIRE(live_configs == 0);
    if (rc != 0) {
        fprintf(stderr, "fuzz_config: the printed configuration does not load: %s\n", err.msg);
        abort();
    }
    REQUIRE(memcmp(&again, &c, sizeof c) == 0);
    return 0;
}
