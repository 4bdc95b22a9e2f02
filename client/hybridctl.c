/* client/hybridctl: the command line — finds the daemon, speaks the protocol through ipc/,
 * sends arrays in sealed memfds, shows progress, and prints what came back as a table, CSV
 * or JSON (report.c), with exit codes a script can rely on. */
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "client.h"

#ifndef HY_VERSION
#define HY_VERSION "0.0.0"
#endif

#define WAIT_SLICE_MS 100 /* how often a wait looks at Ctrl-C and the progress bar */

static const char *g_prog = "hybridctl";
static enum hc_format g_fmt = HC_TEXT;
static bool g_quiet, g_verbose;
static bool g_bar_shown;   /* a progress bar is on stderr: cleared before any message */
static bool g_doc_printed; /* stdout has its one document: no error document after it */
static const char *g_cmd;  /* the command, once known: usage errors point at its --help */

/* The failure being reported: the sentence on stderr, and --json's error document. */
static struct failure {
    int code;         /* a hy_err; 0 when hybridctl has none for it (the document says null) */
    bool from_daemon; /* the daemon's ERROR, not hybridctl's own finding */
    uint64_t job;     /* the job it concerns; 0 for none */
    char message[HY_IPC_MESSAGE_MAX + 256];
    char hint[768];   /* what to do about it; "" for nothing to add */
} g_fail;

static void record(int code, const char *hint, const char *fmt, va_list ap)
{
    g_fail.code = code;
    g_fail.from_daemon = false;
    g_fail.job = 0;
    vsnprintf(g_fail.message, sizeof g_fail.message, fmt, ap);
    snprintf(g_fail.hint, sizeof g_fail.hint, "%s", hint ? hint : "");
}

static void clear_bar(void)
{
    if (g_bar_shown)
        fprintf(stderr, "\r%80s\r", "");
    g_bar_shown = false;
}

/* A sentence on stderr. The last one is also what --json reports when a command fails after
 * saying why (a bad input file, say) without a code of its own. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record(0, NULL, fmt, ap);
    va_end(ap);
    clear_bar();
    fprintf(stderr, "%s: %s\n", g_prog, g_fail.message);
}

/* --json's one document for a failure, on stdout: {"error": {...}} with every key always
 * present (hybridctl(1), JSON OUTPUT). Every failing exit comes through here. */
static void error_document(int exit_code)
{
    if (g_fmt != HC_JSON || g_doc_printed || exit_code == 0)
        return;
    g_doc_printed = true;
    if (!g_fail.message[0])
        snprintf(g_fail.message, sizeof g_fail.message, "hybridctl failed (exit %d)", exit_code);
    if (g_fail.code)
        printf("{\"error\":{\"code\":%d,\"name\":\"%s\",\"message\":", g_fail.code,
               hy_err_name(g_fail.code));
    else
        printf("{\"error\":{\"code\":null,\"name\":null,\"message\":");
    hc_json_string(stdout, g_fail.message, strlen(g_fail.message));
    printf(",\"hint\":");
    if (g_fail.hint[0])
        hc_json_string(stdout, g_fail.hint, strlen(g_fail.hint));
    else
        printf("null");
    printf(",\"source\":\"%s\",\"job\":", g_fail.from_daemon ? "daemon" : "client");
    if (g_fail.job)
        printf("%" PRIu64, g_fail.job);
    else
        printf("null");
    printf(",\"exit\":%d}}\n", exit_code);
    fflush(stdout);
}

/* An output file the daemon is writing (a sort whose array travels as fds): whatever ends
 * hybridctl early removes its temporary file, so a failed job leaves nothing behind. */
static hc_pending g_pending = {.fd = -1};

static _Noreturn void die(int exit_code)
{
    hc_output_abandon(&g_pending);
    error_document(exit_code);
    exit(exit_code);
}

/* A failure of hybridctl's own: the sentence (and the hint, on a line of its own) on stderr,
 * the document on stdout with --json, then exit. */
static _Noreturn void fail(int exit_code, int code, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static _Noreturn void fail(int exit_code, int code, const char *hint, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record(code, hint, fmt, ap);
    va_end(ap);
    clear_bar();
    fprintf(stderr, "%s: %s\n", g_prog, g_fail.message);
    if (g_fail.hint[0])
        fprintf(stderr, "%s: %s\n", g_prog, g_fail.hint);
    die(exit_code);
}

/* ---- the command line: commands and options, one row each ---- */

enum { C_PING = 1, C_STATUS = 2, C_DEVICES = 4, C_CANCEL = 8, C_PI = 16, C_SORT = 32,
       C_CPI = 64, C_CSORT = 128, C_GLOBAL = 256, C_JOBS = 512, C_MODEL = 1024 };
#define C_JOB (C_PI | C_SORT | C_CPI | C_CSORT)
#define C_CMP (C_CPI | C_CSORT)

/* A command's words after its name, parsed once, before connecting (so that a typo never
 * waits on a daemon), and handed to its runner. */
struct jobopts;
struct cmdline;
struct conn;
typedef void parse_fn(int argc, char **argv, int i, struct cmdline *l);
typedef int run_fn(struct conn *c, const struct cmdline *l);
static parse_fn parse_none, parse_world, parse_cancel, parse_jobs, parse_pi, parse_sort, parse_compare;
static run_fn cmd_ping, cmd_status, cmd_devices, cmd_cancel, cmd_jobs, cmd_model, cmd_pi,
    cmd_sort, cmd_compare;

static const struct command {
    const char *name;
    unsigned bits;
    const char *synopsis; /* after "hybridctl [GLOBAL OPTIONS] " */
    const char *what;
    parse_fn *parse;
    run_fn *run;
} commands[] = {
    {"ping", C_PING, "ping", "Measures a round trip to the daemon.", parse_none, cmd_ping},
    {"status", C_STATUS, "status [--ranks]",
     "The daemon's version, uptime, queue and counters; under MPI (hybridd --mpi) its rank "
     "and the job's size, and with --ranks every rank's node and counters.",
     parse_world, cmd_status},
    {"devices", C_DEVICES, "devices [--ranks]",
     "The CPU pools and the OpenCL devices; with --ranks, every MPI rank's node, pools and "
     "devices, a section each.", parse_world, cmd_devices},
    {"jobs", C_JOBS, "jobs [--all] [--watch]",
     "The queued and running jobs: yours (everyone's with --all, for root).", parse_jobs,
     cmd_jobs},
    {"model", C_MODEL, "model",
     "The daemon's performance history: each configuration and size it measured.",
     parse_none, cmd_model},
    {"cancel", C_CANCEL, "cancel JOB",
     "Cancels one of your jobs by its id (see `hybridctl jobs`).", parse_cancel, cmd_cancel},
    {"pi", C_PI, "pi -n N [OPTIONS]", "Estimates pi from N random points.", parse_pi, cmd_pi},
    {"sort", C_SORT,
     "sort (--input FILE | -n N --dtype D [--dist DIST] [--seed S])\n"
     "       [--output FILE [--raw]] [--check] [OPTIONS]",
     "Sorts a 1-D array: a .npy or raw (--dtype) file, or a generated one.", parse_sort,
     cmd_sort},
    {"compare", C_CMP,
     "compare pi|sort [JOB INPUT] [--backends LIST]\n"
     "       [--threads LIST] [--replicate] [--transport pipe,shm] [--repeat R]\n"
     "       [--csv] [--plot FILE.svg] [OPTIONS]",
     "Runs the job under every backend and thread count, side by side.", parse_compare,
     cmd_compare},
};

/* Every option, for parsing (which take a value, which command takes which), for --help
 * and for the messages. A name has one row; cmp_* say what it means to compare, if else. */
static const struct option {
    const char *name, *alias;
    const char *arg; /* NULL: a flag */
    unsigned bits;   /* C_GLOBAL, or the commands that take it */
    const char *help;
    const char *cmp_arg, *cmp_help;
} options[] = {
    {"-s", "--socket", "SOCKET", C_GLOBAL,
     "the daemon's socket (default: $HYBRIDD_SOCKET, else your own hybridd's, else the "
     "system one)", NULL, NULL},
    {"--json", NULL, NULL, C_GLOBAL,
     "one JSON document on stdout: the result, or {\"error\": {...}} when it fails", NULL,
     NULL},
    {"-q", "--quiet", NULL, C_GLOBAL, "no progress bar and no notices", NULL, NULL},
    {"--verbose", NULL, NULL, C_GLOBAL,
     "notices even where no progress bar shows (a job queued behind others)", NULL, NULL},
    {"-h", "--help", NULL, C_GLOBAL, "this help; after a command, that command's", NULL, NULL},
    {"--version", NULL, NULL, C_GLOBAL, "hybridctl's version", NULL, NULL},
    {"-n", NULL, "N", C_JOB, "pi: samples; sort: elements of a generated array", NULL, NULL},
    {"--backend", NULL, "B", C_PI | C_SORT,
     "opencl, native (default), locked, serial, process, or auto: the daemon chooses from "
     "its history of runs (the fastest it predicts, or one it has yet to learn)", NULL, NULL},
    {"--backends", NULL, "LIST", C_CMP,
     "the backends side by side, e.g. native,locked (default: every one that can run)", NULL,
     NULL},
    {"--threads", NULL, "T", C_JOB,
     "threads of native or locked, worker processes of process (default: the whole "
     "pool; serial runs 1, opencl has none)",
     "LIST", "thread counts, e.g. 1,2 (default: 1, 2, 4 ... up to the smallest pool)"},
    {"--transport", NULL, "X", C_JOB,
     "process: how sort parts reach the workers, pipe (default: copied through their "
     "sockets) or shm (one shared mapping, only offsets travel)",
     "LIST", "the process rows' transports: pipe, shm or pipe,shm"},
    {"--replicate", NULL, NULL, C_JOB,
     "T copies of the job at once instead of one job split T ways (native, locked)", NULL,
     NULL},
    {"--seed", NULL, "S", C_JOB,
     "pi's generator key, or the generated array's seed: 0 to 2^64-1, decimal or 0x "
     "hex (default 1)", NULL, NULL},
    {"--device", NULL, "D", C_JOB, "the OpenCL device, 0..63 (see `hybridctl devices`)", NULL,
     NULL},
    {"--ranks", NULL, "N", C_PI | C_SORT,
     "the job across N ranks of an MPI job (hybridd --mpi), 1..65534, or all; the same "
     "result as one daemon's (default: this daemon alone). sort: with N > 1, a .npy input "
     "and .npy output are read and written by the daemons (MPI-IO), not sent", NULL, NULL},
    {"--nogil", NULL, NULL, C_JOB, "locked: release the lock in native code (sort's default)",
     NULL, NULL},
    {"--hold-lock", NULL, NULL, C_JOB, "locked: hold the lock throughout (pi's default)", NULL,
     NULL},
    {"--switch-interval", NULL, "US", C_JOB,
     "locked: the runtime's switch interval, 1..1000000 microseconds", NULL, NULL},
    {"--warmup", NULL, "W", C_JOB,
     "untimed runs first, 1..100, to warm caches and kernels (default: none)", NULL,
     "untimed runs per row before its timed ones, 1..100 (default 1)"},
    {"--repeat", NULL, "R", C_JOB, "timed runs, 1..1000: the median is reported (default 1)",
     NULL, "timed runs per row after one warm-up, 1..1000 (default 5)"},
    {"--input", NULL, "FILE", C_SORT | C_CSORT,
     "sort: .npy 1.0/2.0/3.0 (little-endian, C order), or raw with --dtype; - for standard "
     "input", NULL, NULL},
    {"--dtype", NULL, "D", C_SORT | C_CSORT, "sort: i32, u32, i64, u64, f32 or f64", NULL,
     NULL},
    {"--dist", NULL, "DIST", C_SORT | C_CSORT,
     "sort, generated: uniform (default), normal, sorted, reversed or few-unique", NULL, NULL},
    {"--output", NULL, "FILE", C_SORT,
     "sort: write the sorted array (.npy; raw with --raw); - for standard output",
     NULL, NULL},
    {"--raw", NULL, NULL, C_SORT, "sort: --output writes raw bytes", NULL, NULL},
    {"--check", NULL, NULL, C_SORT, "sort: verify the order of the result; exit 1 if not",
     NULL, NULL},
    {"--csv", NULL, NULL, C_CMP | C_PI | C_SORT,
     "compare: the table as CSV; pi, sort: each MPI rank's part and the whole as CSV (not "
     "with --json)", NULL, NULL},
    {"--plot", NULL, "FILE.svg", C_CMP, "compare: also write an SVG scaling chart", NULL, NULL},
    {"--all", NULL, NULL, C_JOBS,
     "jobs: every user's (root and the daemon's user; others see their own and a count of "
     "the rest)", NULL, NULL},
    {"--watch", NULL, NULL, C_JOBS, "jobs: redraw every second until Ctrl-C, like top", NULL,
     NULL},
};
#define NOPTIONS (sizeof options / sizeof options[0])
#define NCOMMANDS (sizeof commands / sizeof commands[0])

/* The command lines an option's bits stand for: a command, and compare's job after it. */
static const struct job_line {
    unsigned bit;
    const char *command;
    const char *job; /* the word after compare; NULL for pi and sort themselves */
} job_lines[] = {
    {C_PI, "pi", NULL},
    {C_SORT, "sort", NULL},
    {C_CPI, "compare", "pi"},
    {C_CSORT, "compare", "sort"},
    {C_JOBS, "jobs", NULL},
};
#define NJOB_LINES (sizeof job_lines / sizeof job_lines[0])

static const struct option *find_option(const char *name)
{
    for (size_t k = 0; k < NOPTIONS; k++)
        if (!strcmp(name, options[k].name) ||
            (options[k].alias && !strcmp(name, options[k].alias)))
            return &options[k];
    return NULL;
}

static const struct command *find_command(const char *name)
{
    for (size_t k = 0; k < NCOMMANDS; k++)
        if (!strcmp(name, commands[k].name))
            return &commands[k];
    return NULL;
}

/* A table's names, one at a time: name(k) for k = first, first + 1, ... until NULL. The
 * commands, common/'s backends, transports and dtypes and npy.c's distributions are all
 * walked this way, so that no message or --list keeps a copy of one of them. */
typedef const char *name_fn(int k);

static const char *command_name(int k)
{
    return k >= 0 && (size_t)k < NCOMMANDS ? commands[k].name : NULL;
}

static const char *dist_name(int k)
{
    return k >= 0 ? hc_dist_name((size_t)k) : NULL;
}

/* "a, b, c or d" into buf, for the sentences that name the valid values; returns buf. */
static const char *join_names(char *buf, size_t len, name_fn *name, int first)
{
    size_t at = 0;
    buf[0] = '\0';
    for (int k = first; name(k); k++) {
        const char *sep = k == first ? "" : name(k + 1) ? ", " : " or ";
        int w = snprintf(buf + at, len - at, "%s%s", sep, name(k));
        if (w < 0 || (size_t)w >= len - at)
            break; /* cut short; snprintf left it NUL-terminated */
        at += (size_t)w;
    }
    return buf;
}

/* Writes text from column `col` (where the cursor is), wrapped at 80 columns, continuation
 * lines indented to `col`. */
static void wrap(FILE *f, const char *text, int col)
{
    int at = col;
    for (const char *p = text; *p;) {
        size_t w = strcspn(p, " ");
        if (at > col && at + 1 + (int)w > 79) {
            fprintf(f, "\n%*s", col, "");
            at = col;
        } else if (at > col) {
            fputc(' ', f);
            at++;
        }
        fprintf(f, "%.*s", (int)w, p);
        at += (int)w;
        p += w;
        p += strspn(p, " ");
    }
    fputc('\n', f);
}

/* One option's help: "  --name ARG" padded to a column, its help wrapped beside it. */
static void option_help(FILE *f, const struct option *o, bool cmp)
{
    const char *arg = cmp && o->cmp_arg ? o->cmp_arg : o->arg;
    const char *help = cmp && o->cmp_help ? o->cmp_help : o->help;
    char left[64];
    snprintf(left, sizeof left, "%s%s%s%s%s", o->name, o->alias ? ", " : "",
             o->alias ? o->alias : "", arg ? " " : "", arg ? arg : "");
    fprintf(f, "  %-22s ", left);
    wrap(f, help, 25);
    if (!cmp && o->cmp_help) {
        char more[256];
        snprintf(more, sizeof more, "compare: %s%s%s", o->cmp_arg ? o->cmp_arg : "",
                 o->cmp_arg ? ", " : "", o->cmp_help);
        fprintf(f, "%25s", "");
        wrap(f, more, 25);
    }
}

static const char usage_tail[] =
"Options may come anywhere on the line, and a long option's value after '='\n"
"(--backend=serial). Counts accept 1000000, 1e6, 10M, 2^20 and 1Mi.\n"
"\n"
"Exit status: 0 success; 1 the job failed or was cancelled; 2 usage error; 3 the\n"
"daemon cannot be reached or refused the connection; 4 a bad input file, or an\n"
"output file that cannot be written. With --json, a failure prints one document\n"
"on stdout, {\"error\": {...}}: its keys are in hybridctl(1).\n";

static void usage(FILE *f)
{
    fprintf(f,
"usage: hybridctl [GLOBAL OPTIONS] COMMAND [OPTIONS]\n"
"\n"
"Runs pi and sort jobs on hybridd under its backends (serial, native, locked,\n"
"opencl, process) and shows what each one buys. `hybridctl COMMAND --help` tells\n"
"more.\n"
"\n"
"Commands:\n");
    for (size_t k = 0; k < NCOMMANDS; k++)
        fprintf(f, "  %-10s %s\n", commands[k].name, commands[k].what);
    fprintf(f, "\nGlobal options:\n");
    for (size_t k = 0; k < NOPTIONS; k++)
        if (options[k].bits & C_GLOBAL)
            option_help(f, &options[k], false);
    fprintf(f, "\nJob options (pi, sort, compare):\n");
    for (size_t k = 0; k < NOPTIONS; k++)
        if (options[k].bits & C_JOB)
            option_help(f, &options[k], false);
    fprintf(f, "\nOptions of jobs:\n");
    for (size_t k = 0; k < NOPTIONS; k++)
        if (options[k].bits & C_JOBS)
            option_help(f, &options[k], false);
    fprintf(f,
"\n"
"The socket is -s, else $HYBRIDD_SOCKET, else your own hybridd's\n"
"($XDG_RUNTIME_DIR/hybridd.sock, or /tmp/hybridd-UID/hybridd.sock without\n"
"XDG_RUNTIME_DIR) when it exists, else the system one, /run/hybridd/hybridd.sock.\n"
"A progress bar shows on stderr for jobs over a second when stderr is a terminal;\n"
"Ctrl-C cancels the job.\n\n");
    fprintf(f, "%s", usage_tail);
}

/* `hybridctl COMMAND --help`: its synopsis and the options it takes. */
static void usage_command(FILE *f, const struct command *c)
{
    fprintf(f, "usage: hybridctl %s\n\n%s\n", c->synopsis, c->what);
    bool cmp = c->bits & C_CMP;
    bool any = false;
    for (size_t k = 0; k < NOPTIONS; k++)
        if (options[k].bits & c->bits) {
            if (!any)
                fprintf(f, "\nOptions:\n");
            any = true;
            option_help(f, &options[k], cmp);
        }
    fprintf(f, "\nGlobal options:\n");
    for (size_t k = 0; k < NOPTIONS; k++)
        if (options[k].bits & C_GLOBAL)
            option_help(f, &options[k], false);
    fprintf(f, "\n%s", usage_tail);
}

static _Noreturn void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static _Noreturn void usage_error(const char *fmt, ...)
{
    char hint[64];
    snprintf(hint, sizeof hint, "see %s%s%s --help", g_prog, g_cmd ? " " : "",
             g_cmd ? g_cmd : "");
    va_list ap;
    va_start(ap, fmt);
    record(HY_EINVAL, hint, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s (%s)\n", g_prog, g_fail.message, hint);
    die(HC_EXIT_USAGE);
}

/* ---- parsing ---- */

/* 1000000, 1e6, 10M (k M G T: powers of 1000), 1Mi (Ki Mi Gi Ti: powers of 1024), 2^30. */
/* Returns 0, -1 for what is not a count, or -2 for one above 2^64-1. */
static int parse_count(const char *s, uint64_t *out)
{
    static const char digits[] = "0123456789";
    /* Plain digits are exact in any size (a double only up to 2^53). */
    if (s[0] && strspn(s, digits) == strlen(s)) {
        errno = 0;
        unsigned long long u = strtoull(s, NULL, 10);
        if (errno == ERANGE)
            return -2;
        *out = u;
        return 0;
    }
    const char *caret = strchr(s, '^');
    if (caret) {
        /* strtoull would take a sign and blanks: digits only, on both sides. */
        size_t nb = strspn(s, digits);
        if (nb == 0 || s + nb != caret || !caret[1] || strspn(caret + 1, digits) !=
            strlen(caret + 1))
            return -1;
        errno = 0;
        unsigned long long b = strtoull(s, NULL, 10);
        unsigned long long p = strtoull(caret + 1, NULL, 10);
        if (errno == ERANGE)
            return -2;
        uint64_t v = 1;
        for (unsigned long long i = 0; i < p; i++) {
            if (b != 0 && v > UINT64_MAX / b)
                return -2;
            v *= b;
        }
        *out = v;
        return 0;
    }
    char *e;
    errno = 0;
    double d = strtod(s, &e);
    if (e == s || errno || d < 0 || s[0] == '-' || s[0] == '+')
        return -1;
    static const struct {
        const char *suffix;
        double mul;
    } units[] = {{"", 1},       {"k", 1e3},   {"K", 1e3},          {"M", 1e6},
                 {"G", 1e9},    {"T", 1e12},  {"Ki", 1024.0},      {"Mi", 1048576.0},
                 {"Gi", 1073741824.0}, {"Ti", 1099511627776.0}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(e, units[i].suffix) == 0) {
            double v = d * units[i].mul;
            if (v != floor(v))
                return -1;
            if (v >= 18446744073709551616.0)
                return -2;
            *out = (uint64_t)v;
            return 0;
        }
    return -1;
}

static uint64_t count_arg(const char *opt, const char *s)
{
    uint64_t v;
    int rc = parse_count(s, &v);
    if (rc == -2)
        usage_error("%s %s: above the largest count, 18446744073709551615 (2^64-1)", opt, s);
    if (rc != 0)
        usage_error("%s %s: not a count (examples: 1000000, 1e6, 10M, 2^20)", opt, s);
    return v;
}

/* A seed is any u64, as SUBMIT carries it: a count's forms, or 0x and hexadecimal digits. */
static uint64_t seed_arg(const char *s)
{
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        const char *h = s + 2;
        if (!h[0] || strspn(h, "0123456789abcdefABCDEF") != strlen(h))
            usage_error("--seed %s: not a hexadecimal number (0x then the digits 0-9, a-f)", s);
        errno = 0;
        unsigned long long u = strtoull(h, NULL, 16);
        if (errno == ERANGE)
            usage_error("--seed %s: above the largest seed, 0xffffffffffffffff (2^64-1)", s);
        return u;
    }
    uint64_t v;
    int rc = parse_count(s, &v);
    if (rc == -2)
        usage_error("--seed %s: above the largest seed, 18446744073709551615 (2^64-1)", s);
    if (rc != 0)
        usage_error("--seed %s: a seed is a whole number from 0 to 18446744073709551615 "
                    "(2^64-1), decimal or 0x hexadecimal", s);
    return v;
}

static unsigned small_arg(const char *opt, const char *s, unsigned lo, unsigned hi)
{
    uint64_t v;
    if (parse_count(s, &v) != 0 || v < lo || v > hi)
        usage_error("%s %s: expected a whole number from %u to %u", opt, s, lo, hi);
    return (unsigned)v;
}

/* A backend's name; for a single job (`single`) also auto, the daemon's choice. */
static int backend_arg(const char *s, bool single)
{
    if (single && !strcmp(s, "auto"))
        return HY_BACKEND_AUTO;
    int b = hy_backend_parse(s);
    char names[160];
    if (!b)
        usage_error("unknown backend %s: use %s%s", s,
                    join_names(names, sizeof names, hy_backend_name, 1),
                    single ? ", or auto" : !strcmp(s, "auto")
                                 ? " (auto is for a single job: compare runs every backend)"
                                 : "");
    return b;
}

/* ---- the connection: ipc/'s client, with this program's ways of failing ---- */

typedef struct conn {
    hy_client *cl;
    char path[108];
    hy_msg *m;        /* a request being built (~56 KiB: on the heap) */
    const hy_msg *in; /* the last message received; the client's until the next receive */
    hy_msg_welcome welcome;
    char server[HY_IPC_NAME_MAX + 1];
    bool welcomed; /* WELCOME came: an ERROR now is a request's, not a refusal */
} conn;

static volatile sig_atomic_t g_interrupted;
static void on_sigint(int sig)
{
    (void)sig;
    g_interrupted = 1;
}

/* The daemon's socket for this user: what the daemon itself would pick, and for a normal user
 * without their own daemon, the system one. */
static void default_socket(char *buf, size_t len)
{
    const char *env = getenv("HYBRIDD_SOCKET");
    if (env && env[0]) {
        snprintf(buf, len, "%s", env);
        return;
    }
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (geteuid() != 0) {
        /* The daemon's own default for this user (config.c), when one is serving there. */
        struct stat st;
        if (xdg && xdg[0] == '/' && strlen(xdg) + sizeof "/hybridd.sock" <= 108)
            snprintf(buf, len, "%s/hybridd.sock", xdg);
        else
            snprintf(buf, len, "/tmp/hybridd-%u/hybridd.sock", (unsigned)geteuid());
        if (stat(buf, &st) == 0)
            return;
    }
    snprintf(buf, len, "/run/hybridd/hybridd.sock");
}

/* Whether this user is listed in group gid (as its primary group or a member) although this
 * process is not in it: a login session older than the membership. */
static bool member_later(gid_t gid, const struct group *gr)
{
    if (getegid() == gid)
        return false;
    gid_t mine[256];
    int n = getgroups(256, mine);
    for (int i = 0; i < n; i++)
        if (mine[i] == gid)
            return false;
    const struct passwd *pw = getpwuid(geteuid());
    if (!pw)
        return false;
    if (pw->pw_gid == gid)
        return true;
    for (char **m = gr ? gr->gr_mem : NULL; m && *m; m++)
        if (!strcmp(*m, pw->pw_name))
            return true;
    return false;
}

/* connect() said EACCES: the daemon may well be running, and the socket (or a directory on
 * the way to it) keeps this user out. Names the one that does, its owner, group and mode,
 * and who may let the user in. */
static void access_hint(const char *path, char *buf, size_t len)
{
    char what[sizeof ((struct sockaddr_un *)0)->sun_path];
    bool dir = false;
    snprintf(what, sizeof what, "%s", path);
    /* Every directory on the way must be searchable; the socket itself writable. */
    for (char *p = what + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        if (access(what, X_OK) != 0 && errno == EACCES) {
            dir = true;
            break;
        }
        *p = '/';
    }
    struct stat st;
    if (stat(what, &st) != 0) {
        snprintf(buf, len, "%s keeps you out, and cannot be examined: %s", what,
                 strerror(errno));
        return;
    }
    const struct passwd *pw = getpwuid(st.st_uid);
    char owner[64], group[64];
    snprintf(owner, sizeof owner, "%s", pw ? pw->pw_name : "");
    if (!pw)
        snprintf(owner, sizeof owner, "uid %u", (unsigned)st.st_uid);
    const struct group *gr = getgrgid(st.st_gid);
    snprintf(group, sizeof group, "%s", gr ? gr->gr_name : "");
    if (!gr)
        snprintf(group, sizeof group, "%u", (unsigned)st.st_gid);
    unsigned mode = (unsigned)st.st_mode & 07777, need = dir ? 01 : 02; /* x, or w */
    const char *verb = dir ? "enter it" : "connect";
    int n = snprintf(buf, len, "the %s %s belongs to %s, group %s, mode %04o: ",
                     dir ? "directory" : "socket", what, owner, group, mode);
    if (n < 0 || (size_t)n >= len)
        return;
    if (mode & need << 3 && member_later(st.st_gid, gr))
        snprintf(buf + n, len - (size_t)n, "you are in group %s, but this login session is "
                 "not yet; log in again (or run `newgrp %s`)", group, group);
    else if (mode & need << 3)
        snprintf(buf + n, len - (size_t)n, "only %s and group %s may %s; ask an "
                 "administrator to add you to group %s", owner, group, verb, group);
    else if (dir)
        snprintf(buf + n, len - (size_t)n, "only %s may enter it; ask an administrator to "
                 "open it to a group you are in", owner);
    else
        snprintf(buf + n, len - (size_t)n, "only %s may connect; ask an administrator to "
                 "give hybridd's socket a group you are in (socket.group and socket.mode in "
                 "hybridd.conf(5))", owner);
}

/* The daemon cannot be reached. err_no is connect()'s errno, or 0 once connected: the hint
 * to start hybridd is for a socket nobody serves (ENOENT, ECONNREFUSED) only. */
static _Noreturn void cannot_reach(const conn *c, int err_no, const char *why)
{
    char hint[sizeof g_fail.hint] = "";
    int code = HY_ESYS;
    if (err_no == ENOENT || err_no == ECONNREFUSED) {
        snprintf(hint, sizeof hint, "start it with `hybridd` (or `systemctl start "
                 "hybridd.socket`), or name its socket with -s or HYBRIDD_SOCKET");
    } else if (err_no == EACCES || err_no == EPERM) {
        access_hint(c->path, hint, sizeof hint);
        code = HY_EPERM;
    }
    fail(HC_EXIT_CONNECT, code, hint[0] ? hint : NULL, "cannot reach hybridd at %s: %s",
         c->path, why);
}

/* The daemon's ERROR: its sentence and code on stderr, after `context` when there is one. */
static _Noreturn void daemon_said(const hy_msg_error *e, const char *context, int exit_code)
{
    g_fail.code = e->code ? e->code : HY_EINTERNAL;
    g_fail.from_daemon = true;
    g_fail.job = e->job_id;
    g_fail.hint[0] = '\0';
    snprintf(g_fail.message, sizeof g_fail.message, "%s%.*s", context ? context : "",
             (int)e->message.len, e->message.p);
    clear_bar();
    fprintf(stderr, "%s: %s (%s)\n", g_prog, g_fail.message, hy_err_name(e->code));
    die(exit_code);
}

static _Noreturn void daemon_error(const hy_msg_error *e, int exit_code)
{
    daemon_said(e, NULL, exit_code);
}

/* Before WELCOME an ERROR is the daemon refusing the connection (EPERM: not in access;
 * EBUSY: too many clients); after it, a request's failure. */
static _Noreturn void conn_error(const conn *c, const hy_msg_error *e)
{
    if (c->welcomed)
        daemon_error(e, HC_EXIT_JOB);
    char context[160];
    snprintf(context, sizeof context, "hybridd at %s refused the connection: ", c->path);
    daemon_said(e, context, HC_EXIT_CONNECT);
}

/* What the client library reported when a wait failed: the daemon's ERROR, a message that
 * cannot be read (the stream goes on: exit 1), or a connection that broke or ended. */
static _Noreturn void conn_failed(conn *c, int rc, const hy_error *err, const char *timeout_why)
{
    if (rc == HY_CLIENT_ERROR)
        conn_error(c, &c->in->u.error);
    if (rc == HY_CLIENT_TIMEOUT)
        cannot_reach(c, 0, g_interrupted ? "interrupted" : timeout_why);
    if (rc < 0 && hy_client_usable(c->cl))
        fail(HC_EXIT_JOB, rc, NULL, "%s", err->msg);
    cannot_reach(c, 0, err->msg);
}

/* A daemon that refuses a connection sends its ERROR and closes; a send racing that close
 * fails (EPIPE, ECONNRESET) while the ERROR waits in our receive queue: the refused user
 * must see it, so a failed send reads what the daemon left before saying anything. */
static void conn_flush(conn *c)
{
    hy_error err = {0};
    if (hy_client_flush(c->cl, &err) == 0)
        return;
    hy_error perr = {0};
    if (hy_client_parting_error(c->cl, &c->in, &perr) == HY_CLIENT_ERROR)
        conn_error(c, &c->in->u.error);
    cannot_reach(c, 0, err.msg);
}

static uint64_t conn_send(conn *c, hy_msg *m, const int *fds, unsigned nfds)
{
    hy_error err = {0};
    m->request = hy_client_next_request(c->cl);
    if (hy_client_push(c->cl, m, fds, nfds, &err) != 0)
        fail(err.code == HY_ELIMIT ? HC_EXIT_INPUT : HC_EXIT_USAGE, err.code, NULL,
             "cannot send %s: %s", hy_msg_type_name(m->type), err.msg);
    conn_flush(c);
    return m->request;
}

/* The next message into c->in. Returns 0, or 1 when interrupted (Ctrl-C) or when
 * timeout_ms (> 0) passed with nothing. */
static int conn_recv(conn *c, int timeout_ms)
{
    int waited = 0;
    for (;;) {
        hy_error err = {0};
        int rc = hy_client_recv_buffered(c->cl, &c->in, &err);
        if (rc == HY_CLIENT_TIMEOUT) {
            if (g_interrupted)
                return 1;
            rc = hy_client_recv(c->cl, WAIT_SLICE_MS, &c->in, &err);
            if (rc == HY_CLIENT_TIMEOUT) {
                waited += WAIT_SLICE_MS;
                if (timeout_ms > 0 && waited >= timeout_ms)
                    return 1;
                continue;
            }
        }
        if (rc == 0)
            return 0;
        conn_failed(c, rc, &err, "no answer");
    }
}

/* Connects and says HELLO; exits 3 when the daemon cannot be reached or refuses. */
static void conn_open(conn *c, const char *path)
{
    memset(c, 0, sizeof *c);
    struct sockaddr_un a;
    if (path && strlen(path) >= sizeof a.sun_path)
        usage_error("socket path %s is too long: at most %zu bytes", path,
                    sizeof a.sun_path - 1);
    if (path)
        snprintf(c->path, sizeof c->path, "%s", path);
    else
        default_socket(c->path, sizeof c->path);
    hy_error err = {0};
    int e = 0;
    int rc = hy_client_connect(c->path, &c->cl, &e, &err);
    if (rc && e)
        cannot_reach(c, e, strerror(e));
    if (rc)
        fail(rc == HY_ENOMEM ? HC_EXIT_JOB : HC_EXIT_CONNECT, rc, NULL, "%s", err.msg);
    c->m = malloc(sizeof *c->m);
    if (!c->m)
        fail(HC_EXIT_JOB, HY_ENOMEM, NULL, "out of memory");
    hy_msg_hello h = {.min_version = HY_IPC_VERSION, .max_version = HY_IPC_VERSION,
                      .features = HY_FEATURE_MEMFD | HY_FEATURE_PROGRESS | HY_FEATURE_KEEP_MAP |
                                  HY_FEATURE_FILE_FDS,
                      .name = {"hybridctl", 9}};
    rc = hy_client_hello(c->cl, &h, 30000, &c->in, &err);
    if (rc == HY_EPROTO && c->in && c->in->type != HY_MSG_WELCOME)
        cannot_reach(c, 0, err.msg); /* an answer, but not WELCOME */
    if (rc)
        conn_failed(c, rc, &err, "no WELCOME within 30 s");
    c->welcomed = true;
    c->welcome = *hy_client_welcome(c->cl);
    snprintf(c->server, sizeof c->server, "%.*s", (int)c->welcome.server.len,
             c->welcome.server.p);
    c->welcome.server.p = c->server;
}

static void conn_close(conn *c)
{
    hy_client_close(c->cl);
    free(c->m);
}

/* One request, its one reply (an ERROR ends the program with exit_code). */
static const hy_msg *conn_ask(conn *c, int type, int reply)
{
    hy_msg *m = c->m;
    memset(m, 0, sizeof *m);
    m->type = (uint16_t)type;
    hy_error err = {0};
    int rc = hy_client_ask(c->cl, m, (uint16_t)reply, 30000, &c->in, &err);
    if (rc)
        conn_failed(c, rc, &err, "no reply within 30 s");
    return c->in;
}

/* ---- jobs: submit, progress, the answer ---- */

struct job_out {
    hy_result_row rows[HY_IPC_ROWS_MAX];
    unsigned nrows;
    hy_rank_row ranks[HY_IPC_RANK_ROWS_MAX]; /* a span's parts, in rank order */
    unsigned nranks;
    uint64_t job_id;
    unsigned repeat; /* ACCEPTED's: the timed runs of each row, the default resolved */
};


/* Where a job is, for one bar over all of it. PROGRESS carries the configuration (row) and
 * the done/total of the run in progress, not which of the row's runs (a compare's warm-up,
 * then --repeat) that is: `done` falling within a row starts the next run. A run that begins
 * and ends between two PROGRESS frames (the daemon sends one per 100 ms at most) is not
 * seen, so the bar may lag behind; it never goes back. */
struct progress {
    unsigned nrows, runs; /* configurations; runs of each */
    uint32_t row;
    unsigned run;
    uint64_t last_done;
    double shown;
};

/* Whether a person watches: the bar and the notices that go with it. */
static bool progress_shows(void)
{
    return !g_quiet && isatty(STDERR_FILENO);
}

/* A bar on stderr once a job has run a second, only for a person at a terminal. */
static void progress_bar(uint64_t job_id, const hy_msg_progress *p, struct progress *st,
                         double elapsed_s)
{
    if (p->total == 0)
        return;
    if (p->row != st->row) {
        st->row = p->row;
        st->run = 0;
    } else if (p->done < st->last_done && st->run + 1 < st->runs) {
        st->run++;
    }
    st->last_done = p->done;
    double frac = (double)(p->done < p->total ? p->done : p->total) / (double)p->total;
    frac = (st->run + frac) / st->runs;
    if (st->nrows > 1)
        frac = ((double)p->row + frac) / st->nrows;
    if (frac > 1)
        frac = 1;
    if (frac < st->shown)
        frac = st->shown;
    st->shown = frac;
    if (!progress_shows() || elapsed_s < 1.0)
        return;
    char bar[31];
    int full = (int)(frac * 30);
    for (int i = 0; i < 30; i++)
        bar[i] = i < full ? '#' : '.';
    bar[30] = '\0';
    fprintf(stderr, "\r[%s] %3.0f%%  job %" PRIu64, bar, 100 * frac, job_id);
    if (st->nrows > 1)
        fprintf(stderr, ", configuration %u of %u", p->row + 1, st->nrows);
    fprintf(stderr, ", %.0f s  (Ctrl-C cancels) ", elapsed_s);
    fflush(stderr);
    g_bar_shown = true;
}

/* What run_job's events need: the bar's state and when the job was sent. */
struct job_watch {
    struct progress st;
    uint64_t t0;
};

static void job_accepted(void *ctx, const hy_client_job *j)
{
    struct job_watch *w = ctx;
    /* The daemon states what the job runs; one that does not say leaves one row, one run. */
    if (j->nrows)
        w->st.nrows = j->nrows;
    if (j->repeat + j->warmup)
        w->st.runs = j->repeat + j->warmup;
    /* Scripts read stderr for errors: the notice is for a person, or --verbose. */
    if (j->queue_position > 0 && !g_quiet && (g_verbose || progress_shows()))
        say("job %" PRIu64 " queued behind %u job(s)", j->job_id, j->queue_position);
}

static void job_progress(void *ctx, const hy_client_job *j, const hy_msg_progress *p)
{
    struct job_watch *w = ctx;
    progress_bar(j->job_id, p, &w->st, (double)(hy_now_ns() - w->t0) / 1e9);
}

/* Ctrl-C. Before ACCEPTED the job has no id yet: the client cancels as soon as it has. */
static bool job_interrupted(void *ctx)
{
    (void)ctx;
    if (!g_interrupted)
        return false;
    g_interrupted = 0;
    return true;
}

static void job_cancelling(void *ctx, const hy_client_job *j)
{
    (void)ctx;
    say("cancelling job %" PRIu64 "...", j->job_id);
}

/* Sends the SUBMIT and waits for its one final answer. Ctrl-C sends CANCEL and waits for the
 * ECANCELED answer. Exits 1 on an ERROR. The bar's rows and runs come from ACCEPTED. */
static void run_job(conn *c, hy_msg *sub, const int *fds, unsigned nfds, struct job_out *out)
{
    struct sigaction sa = {.sa_handler = on_sigint};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    struct job_watch w = {.st = {.nrows = 1, .runs = 1}, .t0 = hy_now_ns()};
    hy_client_job j = {.request = conn_send(c, sub, fds, nfds)};
    hy_client_job_events ev = {.ctx = &w, .accepted = job_accepted, .progress = job_progress,
                               .want_cancel = job_interrupted, .cancelling = job_cancelling,
                               .slice_ms = WAIT_SLICE_MS};
    hy_error err = {0};
    int rc = hy_client_job_wait(c->cl, &j, &ev, -1, &c->in, &err);
    out->job_id = j.job_id;
    out->repeat = j.repeat;
    if (rc == 0) {
        clear_bar();
        out->nrows = c->in->u.result.nrows;
        memcpy(out->rows, c->in->u.result.rows_in, sizeof out->rows[0] * out->nrows);
        out->nranks = c->in->u.result.nrank_rows;
        memcpy(out->ranks, c->in->u.result.rank_rows_in, sizeof out->ranks[0] * out->nranks);
        return;
    }
    if (rc == HY_CLIENT_ERROR && c->in->request == j.request) {
        hy_msg_error e = c->in->u.error;
        if (!e.job_id)
            e.job_id = j.job_id;
        daemon_error(&e, HC_EXIT_JOB);
    }
    conn_failed(c, rc, &err, "no answer");
}

/* ---- job options shared by pi, sort and compare ---- */

struct jobopts {
    int backend;
    unsigned threads;
    bool replicate;
    uint64_t seed;
    int device;
    unsigned ranks;      /* 0: this daemon alone; HY_IPC_RANKS_ALL: every rank */
    int nogil;
    unsigned switch_us;
    unsigned repeat, warmup;
    uint64_t n;
    bool have_n;
    /* sort */
    const char *input, *output, *dist;
    int dtype;
    bool raw, check;
    /* process */
    int transport;       /* a single job's: 0 (the daemon's default, pipe) or an hy_transport */
    uint32_t transports; /* a compare's: a bit per transport, 1 << hy_transport; 0 if not given */
    /* compare */
    uint32_t backends;
    uint32_t threads_list[HY_IPC_THREADS_MAX];
    unsigned nthreads;
    bool csv;
    const char *plot;
};

static unsigned parse_threads(const char *s, uint32_t *list)
{
    unsigned k = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (k == HY_IPC_THREADS_MAX)
            usage_error("--threads lists more than %u counts", HY_IPC_THREADS_MAX);
        list[k++] = small_arg("--threads", t, 1, 256);
    }
    if (!k)
        usage_error("--threads needs at least one count");
    return k;
}

static int transport_arg(const char *s)
{
    int t = hy_transport_parse(s);
    char names[64];
    if (!t)
        usage_error("unknown transport %s: use %s", s,
                    join_names(names, sizeof names, hy_transport_name, 1));
    return t;
}

static uint32_t parse_transports(const char *s)
{
    uint32_t mask = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        mask |= 1u << transport_arg(t);
    if (!mask)
        usage_error("--transport needs pipe, shm or pipe,shm");
    return mask;
}

static uint32_t parse_backends(const char *s)
{
    uint32_t mask = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        mask |= 1u << backend_arg(t, false);
    if (!mask)
        usage_error("--backends needs at least one backend");
    return mask;
}

/* A usage error for an option the command does not take: says which commands take it. */
static _Noreturn void not_here(const char *cmd, const char *a, const struct option *o)
{
    if (!strcmp(a, "--backend") && !strncmp(cmd, "compare", 7))
        usage_error("%s takes --backends LIST (every backend side by side), not --backend",
                    cmd);
    if (!strcmp(a, "--backends") && strncmp(cmd, "compare", 7))
        usage_error("%s takes --backend B; --backends LIST is for compare", cmd);
    char where[96] = "";
    for (size_t k = 0; k < NJOB_LINES; k++)
        if (o->bits & job_lines[k].bit)
            snprintf(where + strlen(where), sizeof where - strlen(where), "%s%s%s%s",
                     where[0] ? ", " : "", job_lines[k].command, job_lines[k].job ? " " : "",
                     job_lines[k].job ? job_lines[k].job : "");
    usage_error("%s takes no %s (an option of %s)", cmd, a, where);
}

/* Which options the line gave, beyond the values they set: what the checks between options
 * (a --seed with --input, a --switch-interval without locked) need to know. */
struct given {
    bool seed, dist, threads, switch_us, nogil, hold;
};

/* One job option's value (NULL for a flag) into o; what was given into g. The option is
 * known, taken by this command, and has its value by now. Returns false for an option of
 * the table this has no case for. */
static bool set_option(const char *name, const char *v, bool compare, struct jobopts *o,
                       struct given *g)
{
    if (!strcmp(name, "-n")) {
        o->n = count_arg("-n", v);
        o->have_n = true;
    } else if (!strcmp(name, "--backend")) {
        o->backend = backend_arg(v, true);
    } else if (!strcmp(name, "--threads")) {
        g->threads = true;
        if (compare)
            o->nthreads = parse_threads(v, o->threads_list);
        else
            o->threads = small_arg("--threads", v, 1, 256);
    } else if (!strcmp(name, "--backends")) {
        o->backends = parse_backends(v);
    } else if (!strcmp(name, "--transport")) {
        if (compare)
            o->transports = parse_transports(v);
        else
            o->transport = transport_arg(v);
    } else if (!strcmp(name, "--replicate")) {
        o->replicate = true;
    } else if (!strcmp(name, "--seed")) {
        o->seed = seed_arg(v);
        g->seed = true;
    } else if (!strcmp(name, "--device")) {
        o->device = (int)small_arg("--device", v, 0, 63);
    } else if (!strcmp(name, "--ranks")) {
        o->ranks = !strcmp(v, "all") ? HY_IPC_RANKS_ALL
                                     : small_arg("--ranks", v, 1, HY_IPC_RANKS_ALL - 1);
    } else if (!strcmp(name, "--nogil")) {
        o->nogil = HY_NOGIL_RELEASE;
        g->nogil = true;
    } else if (!strcmp(name, "--hold-lock")) {
        o->nogil = HY_NOGIL_HOLD;
        g->hold = true;
    } else if (!strcmp(name, "--switch-interval")) {
        o->switch_us = small_arg("--switch-interval", v, 1, 1000000);
        g->switch_us = true;
    } else if (!strcmp(name, "--repeat")) {
        o->repeat = small_arg("--repeat", v, 1, 1000);
    } else if (!strcmp(name, "--warmup")) {
        o->warmup = small_arg("--warmup", v, 1, HY_IPC_WARMUP_MAX);
    } else if (!strcmp(name, "--input")) {
        o->input = v;
    } else if (!strcmp(name, "--output")) {
        o->output = v;
    } else if (!strcmp(name, "--raw")) {
        o->raw = true;
    } else if (!strcmp(name, "--check")) {
        o->check = true;
    } else if (!strcmp(name, "--dtype")) {
        char names[64];
        if (!(o->dtype = hy_dtype_parse(v)))
            usage_error("unknown dtype %s: use %s", v,
                        join_names(names, sizeof names, hy_dtype_name, 1));
    } else if (!strcmp(name, "--dist")) {
        o->dist = v;
        g->dist = true;
        bool ok = false;
        for (int k = 0; dist_name(k); k++)
            ok |= !strcmp(v, dist_name(k));
        char names[128];
        if (!ok)
            usage_error("unknown --dist %s: use %s", v,
                        join_names(names, sizeof names, dist_name, 0));
    } else if (!strcmp(name, "--csv")) {
        o->csv = true;
    } else if (!strcmp(name, "--plot")) {
        o->plot = v;
    } else {
        return false;
    }
    return true;
}

/* argv[i], and its value when its row says it takes one: checked against the option table
 * and this command (bit), then set. Returns how many words it took (1 or 2). */
static int take_option(int argc, char **argv, int i, const char *cmd, unsigned bit,
                       struct jobopts *o, struct given *g)
{
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    const struct option *opt = find_option(a);
    if (a[0] != '-' || !a[1])
        usage_error("%s: unexpected argument %s", cmd, a);
    if (!opt)
        usage_error("%s: unknown option %s", cmd, a);
    if (!(opt->bits & bit))
        not_here(cmd, a, opt);
    if (opt->arg && !v)
        usage_error("%s %s needs a value", cmd, a);
    if (!set_option(opt->name, opt->arg ? v : NULL, bit & C_CMP, o, g))
        usage_error("%s: unknown option %s", cmd, a);
    return opt->arg ? 2 : 1;
}

/* Flags that contradict each other: neither wins silently. */
static void check_contradictions(const struct jobopts *o, const struct given *g)
{
    if (g->nogil && g->hold)
        usage_error("--nogil and --hold-lock contradict each other: --nogil releases the lock "
                    "in native code, --hold-lock holds it throughout; give one");
    if (o->csv && g_fmt == HC_JSON)
        usage_error("--csv and --json contradict each other: each is the whole output's "
                    "format; give one");
}

/* What backend auto chooses itself (docs/scheduling.md): refused rather than ignored. */
static void check_auto_uses(const struct jobopts *o, const struct given *g)
{
    const char *named = g->threads ? "--threads" : o->device >= 0 ? "--device"
                        : o->transport ? "--transport" : o->nogil ? "--nogil and --hold-lock"
                        : g->switch_us ? "--switch-interval" : o->replicate ? "--replicate"
                                       : NULL;
    if (named)
        usage_error("--backend auto chooses the backend, its threads, device and transport "
                    "from the daemon's history, in split mode; %s is for a backend you name",
                    named);
}

/* Options a single job's backend has no use for: refused rather than ignored. */
static void check_backend_uses(const struct jobopts *o, const struct given *g)
{
    if (o->backend == HY_BACKEND_AUTO) {
        check_auto_uses(o, g);
        return;
    }
    const char *b = hy_backend_name(o->backend);
    if (o->nogil && o->backend != HY_BACKEND_LOCKED)
        usage_error("--nogil and --hold-lock are for the locked backend, not %s", b);
    if (g->switch_us && o->backend != HY_BACKEND_LOCKED)
        usage_error("--switch-interval is the locked runtime's: it is for --backend "
                    "locked, not %s", b);
    if (o->backend == HY_BACKEND_SERIAL && o->threads > 1)
        usage_error("--threads %u and --backend serial contradict each other: serial "
                    "runs on exactly one thread (use native or locked for more)",
                    o->threads);
    if (o->backend == HY_BACKEND_OPENCL && g->threads)
        usage_error("--threads is for native, locked and process: an opencl job runs "
                    "on the whole device and has no thread count");
    if (o->device >= 0 && o->backend != HY_BACKEND_OPENCL)
        usage_error("--device picks an OpenCL device: it is for --backend opencl, not %s",
                    b);
    if (o->replicate && (o->backend == HY_BACKEND_SERIAL ||
                         o->backend == HY_BACKEND_OPENCL))
        usage_error("--replicate runs a copy of the job per thread: it is for native and "
                    "locked (%s runs one copy)", b);
    if (o->transport && o->backend != HY_BACKEND_PROCESS)
        usage_error("--transport is for the process backend (--backend process)");
}

/* A compare's options for rows that --backends leaves out: refused rather than ignored. */
static void check_row_uses(const struct jobopts *o, const struct given *g)
{
    bool locked = o->backends >> HY_BACKEND_LOCKED & 1;
    bool threaded = o->backends & (1u << HY_BACKEND_NATIVE | 1u << HY_BACKEND_LOCKED |
                                   1u << HY_BACKEND_PROCESS);
    if (o->nogil && !locked)
        usage_error("--nogil and --hold-lock are for the locked rows: add locked to "
                    "--backends");
    if (g->switch_us && !locked)
        usage_error("--switch-interval is for the locked rows: add locked to --backends");
    if (g->threads && !threaded)
        usage_error("--threads lists counts for the native, locked and process rows: "
                    "--backends has none of them");
    if (o->device >= 0 && !(o->backends >> HY_BACKEND_OPENCL & 1))
        usage_error("--device picks the opencl row's device: add opencl to --backends");
}

/* The process backend splits only, and --transport is for it alone. */
static void check_process_uses(const struct jobopts *o, bool compare)
{
    bool process = compare ? (o->backends >> HY_BACKEND_PROCESS & 1)
                           : o->backend == HY_BACKEND_PROCESS;
    if (o->replicate && process)
        usage_error("process runs split only: it splits one job among its worker processes, "
                    "as multiprocessing.Pool.map does; --replicate is for the thread backends");
    if (compare && o->transports && o->replicate)
        usage_error("--transport is for the process rows, and a --replicate comparison has "
                    "none (process runs split only)");
    if (compare && o->transports && o->backends && !process)
        usage_error("--transport is for the process rows: add process to --backends");
}

/* What the job runs on: pi's -n; sort's --input, or -n and --dtype for a generated array. */
static void check_job_input(const struct jobopts *o, const struct given *g, const char *cmd,
                            bool sort)
{
    if (!sort && !o->have_n)
        usage_error("%s needs -n N (samples)", cmd);
    if (!sort && o->n == 0)
        usage_error("-n must be at least 1");
    if (!sort)
        return;
    if (o->input && o->have_n)
        usage_error("%s takes --input FILE or -n N, not both", cmd);
    if (!o->input && !o->have_n)
        usage_error("%s needs --input FILE or -n N --dtype D", cmd);
    if (!o->input && !o->dtype)
        usage_error("a generated array needs --dtype");
    if (o->input && g->seed)
        usage_error("--seed and --input contradict each other: --seed is for a generated "
                    "array (-n N --dtype D), --input reads one");
    if (o->input && g->dist)
        usage_error("--dist and --input contradict each other: --dist is for a generated "
                    "array (-n N --dtype D), --input reads one");
    if (o->raw && !o->output)
        usage_error("--raw is for --output");
}

static bool is_stdio(const char *path)
{
    return path && strcmp(path, HC_STDOUT_PATH) == 0;
}

/* sort --input IN.npy --output OUT.npy --ranks N (N > 1, or all): the daemon under MPI reads
 * and writes the two files itself with MPI-IO (SUBMIT array FILES, docs/mpi.md); only the
 * paths travel. A raw input or output, standard input or output, or --ranks 1 keep the memfd. */
static bool files_mode(const struct jobopts *o)
{
    const char *ext = o->input ? strrchr(o->input, '.') : NULL;
    return o->input && o->output && o->ranks > 1 && !is_stdio(o->input) &&
           !is_stdio(o->output) && !o->raw && (!o->dtype || (ext && !strcmp(ext, ".npy")));
}

/* "-" for standard input and output: the array's bytes own standard output, so nothing
 * else may write there, and binary data is not written to a terminal (as gzip refuses). */
static void check_stdio(const struct jobopts *o)
{
    if (is_stdio(o->plot))
        usage_error("--plot takes a file name; standard output (-) is for --output");
    if (!is_stdio(o->output))
        return;
    if (g_fmt == HC_JSON)
        usage_error("--json and --output - both want standard output: name a file for one");
    if (isatty(STDOUT_FILENO))
        fail(HC_EXIT_INPUT, HY_EINVAL, "redirect it (> FILE, | PROGRAM) or name a file",
             "not writing a binary array to a terminal (--output -)");
}

/* Parses argv[i..] for a job (the global options are gone from it by now, and --opt=value
 * is two words). Options that do not fit the command, or each other, are refused. */
static void parse_job(int argc, char **argv, int i, const char *cmd, bool sort, bool compare,
                      struct jobopts *o)
{
    memset(o, 0, sizeof *o);
    o->backend = HY_BACKEND_NATIVE;
    o->seed = 1;
    o->device = -1;
    o->dist = "uniform";
    unsigned bit = compare ? (sort ? C_CSORT : C_CPI) : sort ? C_SORT : C_PI;
    struct given g = {0};
    while (i < argc)
        i += take_option(argc, argv, i, cmd, bit, o, &g);
    check_contradictions(o, &g);
    if (!compare)
        check_backend_uses(o, &g);
    else if (o->backends)
        check_row_uses(o, &g);
    check_process_uses(o, compare);
    check_job_input(o, &g, cmd, sort);
    check_stdio(o);
    /* Before the job runs: a long job must never end with nowhere to put its result. (The
     * daemon writes a files-mode output, and checks it itself before it sorts.) */
    hy_error oerr = {0};
    if ((o->output && !files_mode(o) && hc_output_check(o->output, NULL, &oerr)) ||
        (o->plot && hc_output_check(o->plot, "the plot", &oerr)))
        fail(HC_EXIT_INPUT, oerr.code, NULL, "%s", oerr.msg);
}

/* What each command's parser leaves for its runner. */
struct cmdline {
    struct jobopts o; /* pi, sort, compare */
    bool sort;        /* compare: sort, else pi */
    uint64_t id;      /* cancel */
    bool all, watch;  /* jobs */
    bool ranks;       /* status, devices: every MPI rank's */
};

static void parse_none(int argc, char **argv, int i, struct cmdline *l)
{
    (void)argv;
    (void)l;
    if (i < argc)
        usage_error("%s takes no arguments", g_cmd);
}

/* status and devices: --ranks, a flag here (pi and sort's --ranks takes a count). */
static void parse_world(int argc, char **argv, int i, struct cmdline *l)
{
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--ranks"))
            usage_error("%s takes --ranks (every MPI rank's), not %s", g_cmd, argv[i]);
        l->ranks = true;
    }
}

static void parse_cancel(int argc, char **argv, int i, struct cmdline *l)
{
    if (i + 1 != argc)
        usage_error("cancel takes one job id");
    l->id = count_arg("cancel", argv[i]);
}

static void parse_jobs(int argc, char **argv, int i, struct cmdline *l)
{
    for (; i < argc; i++) {
        const struct option *o = find_option(argv[i]);
        if (o && !strcmp(o->name, "--all"))
            l->all = true;
        else if (o && !strcmp(o->name, "--watch"))
            l->watch = true;
        else if (o)
            not_here("jobs", argv[i], o);
        else
            usage_error("jobs takes --all and --watch, not %s", argv[i]);
    }
}

static void parse_pi(int argc, char **argv, int i, struct cmdline *l)
{
    parse_job(argc, argv, i, "pi", false, false, &l->o);
}

static void parse_sort(int argc, char **argv, int i, struct cmdline *l)
{
    parse_job(argc, argv, i, "sort", true, false, &l->o);
}

static void parse_compare(int argc, char **argv, int i, struct cmdline *l)
{
    if (i >= argc || (strcmp(argv[i], "pi") && strcmp(argv[i], "sort")))
        usage_error("compare needs pi or sort");
    l->sort = !strcmp(argv[i], "sort");
    parse_job(argc, argv, i + 1, l->sort ? "compare sort" : "compare pi", l->sort, true, &l->o);
}

/* The name of the OpenCL device that ran a row, for the report: RESULT rows carry only its
 * index, so this is the one thing a job asks DEVICES for, and only once an opencl row came
 * back. The daemon chooses every default itself (ACCEPTED states them). Copied into `name`. */
typedef char device_name[sizeof ((hy_device_record *)0)->name];

static const char *opencl_device_name(conn *c, const struct job_out *out, device_name name)
{
    int index = -1;
    for (unsigned r = 0; r < out->nrows; r++)
        if (out->rows[r].backend == HY_BACKEND_OPENCL)
            index = out->rows[r].device;
    if (index < 0)
        return NULL;
    const hy_msg *m = conn_ask(c, HY_MSG_DEVICES, HY_MSG_DEVICES_REPLY);
    for (unsigned i = 0; i < m->u.devices.ndevices; i++)
        if (m->u.devices.devices_in[i].index == (unsigned)index) {
            snprintf(name, sizeof(device_name), "%s", m->u.devices.devices_in[i].name);
            return name;
        }
    return NULL;
}

/* Fills the SUBMIT fields every job kind shares; what the options leave open (threads, the
 * device) is left 0 or HY_IPC_DEVICE_DEFAULT for the daemon to choose. */
static void fill_submit(hy_msg_submit *s, const struct jobopts *o)
{
    s->backend = (uint16_t)o->backend;
    s->mode = o->replicate ? HY_MODE_REPLICATE : HY_MODE_SPLIT;
    s->nogil = (uint16_t)o->nogil;
    s->repeat = o->repeat;
    s->warmup = (uint16_t)o->warmup;
    s->switch_interval_us = o->switch_us;
    s->n = o->n;
    s->seed = o->seed;
    s->device = (uint16_t)(o->device >= 0 ? o->device : (int)HY_IPC_DEVICE_DEFAULT);
    s->threads = o->backend == HY_BACKEND_SERIAL ? 1 : o->threads;
    s->transport = (uint16_t)o->transport;
    s->ranks = (uint16_t)o->ranks;
}

/* ---- commands ---- */


/* After a command printed its document: with --json, no error document may follow it. */
static int finish_output(int rc)
{
    g_doc_printed = true;
    if (fflush(stdout) != 0 || ferror(stdout)) {
        say("cannot write to standard output: %s", strerror(errno));
        return HC_EXIT_JOB;
    }
    return rc;
}

static int cmd_ping(conn *c, const struct cmdline *l)
{
    (void)l;
    hy_msg *m = c->m;
    memset(m, 0, sizeof *m);
    m->type = HY_MSG_PING;
    m->u.ping.nonce = (uint64_t)getpid() << 20 ^ hy_now_ns();
    uint64_t nonce = m->u.ping.nonce;
    uint64_t t0 = hy_now_ns();
    uint64_t req = conn_send(c, m, NULL, 0);
    do
        if (conn_recv(c, 30000) != 0)
            cannot_reach(c, 0, "no PONG within 30 s");
    while (c->in->request != req);
    uint64_t rtt = hy_now_ns() - t0;
    if (c->in->type != HY_MSG_PONG || c->in->u.ping.nonce != nonce) {
        say("the daemon answered PING with something else than its PONG");
        return HC_EXIT_JOB;
    }
    if (g_fmt == HC_JSON) {
        printf("{\"socket\":");
        hc_json_string(stdout, c->path, strlen(c->path));
        printf(",\"server\":");
        hc_json_string(stdout, c->server, strlen(c->server));
        printf(",\"rtt_ns\":%" PRIu64 "}\n", rtt);
    } else {
        printf("PONG from %s at %s: %.1f us\n", c->server, c->path, (double)rtt / 1e3);
    }
    return finish_output(0);
}

/* RANKS (ALL with `every`), copied out of the connection's buffer into *out (malloc'd). NULL
 * when the daemon predates RANKS (ETYPE) and `every` was not asked; any other failure ends
 * hybridctl as conn_ask does. */
static hy_msg_ranks_reply *ask_ranks(conn *c, bool every)
{
    hy_msg *m = c->m;
    memset(m, 0, sizeof *m);
    m->type = HY_MSG_RANKS;
    m->u.ranks.flags = every ? HY_RANKS_ALL : 0;
    hy_error err = {0};
    /* Every rank answers from its event loop; a minute covers a busy, oversubscribed job. */
    int rc = hy_client_ask(c->cl, m, HY_MSG_RANKS_REPLY, 60000, &c->in, &err);
    if (rc == HY_ETYPE && !every)
        return NULL;
    if (rc)
        conn_failed(c, rc, &err, "no RANKS_REPLY within 60 s");
    hy_msg_ranks_reply *r = malloc(sizeof *r);
    if (!r)
        fail(HC_EXIT_JOB, HY_ENOMEM, NULL, "no memory for the ranks' records");
    *r = c->in->u.ranks_reply;
    r->ranks = r->ranks_in;
    r->devices = r->devices_in;
    return r;
}

static int cmd_status(conn *c, const struct cmdline *l)
{
    /* RANKS first: STATUS's reply (its version string) lives in the connection's buffer. */
    hy_msg_ranks_reply *w = ask_ranks(c, l->ranks);
    const hy_msg *m = conn_ask(c, HY_MSG_STATUS, HY_MSG_STATUS_REPLY);
    int rc = hc_print_status_world(stdout, &m->u.status, w, l->ranks, g_fmt);
    free(w);
    return finish_output(rc ? HC_EXIT_JOB : 0);
}

static int cmd_devices(conn *c, const struct cmdline *l)
{
    if (l->ranks) {
        hy_msg_ranks_reply *w = ask_ranks(c, true);
        int rc = hc_print_ranks(stdout, w, g_fmt);
        free(w);
        return finish_output(rc ? HC_EXIT_JOB : 0);
    }
    const hy_msg *m = conn_ask(c, HY_MSG_DEVICES, HY_MSG_DEVICES_REPLY);
    hy_msg_devices_reply *d = malloc(sizeof *d);
    if (!d)
        return HC_EXIT_JOB;
    *d = m->u.devices;
    d->devices = d->devices_in;
    int rc = hc_print_devices(stdout, d, g_fmt);
    free(d);
    return finish_output(rc ? HC_EXIT_JOB : 0);
}

static int cmd_cancel(conn *c, const struct cmdline *l)
{
    uint64_t id = l->id;
    hy_msg *m = c->m;
    memset(m, 0, sizeof *m);
    m->type = HY_MSG_CANCEL;
    m->u.cancel.job_id = id;
    uint64_t req = conn_send(c, m, NULL, 0);
    /* CANCEL has no reply of its own; a PING behind it tells that it was taken (an ERROR
     * for the CANCEL would come first). */
    memset(m, 0, sizeof *m);
    m->type = HY_MSG_PING;
    uint64_t ping = conn_send(c, m, NULL, 0);
    for (;;) {
        if (conn_recv(c, 30000) != 0)
            cannot_reach(c, 0, "no answer within 30 s");
        if (c->in->type == HY_MSG_ERROR && c->in->request == req)
            daemon_error(&c->in->u.error, HC_EXIT_JOB);
        if (c->in->type == HY_MSG_PONG && c->in->request == ping)
            break;
    }
    if (g_fmt == HC_JSON)
        printf("{\"cancelled\":%" PRIu64 "}\n", id);
    else if (!g_quiet)
        printf("job %" PRIu64 " is being cancelled\n", id);
    return finish_output(0);
}

static int cmd_model(conn *c, const struct cmdline *l)
{
    (void)l;
    const hy_msg *m = conn_ask(c, HY_MSG_MODEL, HY_MSG_MODEL_REPLY);
    return finish_output(hc_print_model(stdout, &m->u.model, g_fmt) ? HC_EXIT_JOB : 0);
}

/* One JOBS round trip: the reply copied out (it is large, and the next receive reuses the
 * connection's message), its records' owners named from the password database. */
static void ask_jobs(conn *c, bool all, hy_msg_jobs_reply *r, char (*names)[33],
                     const char **owners)
{
    hy_msg *m = c->m;
    memset(m, 0, sizeof *m);
    m->type = HY_MSG_JOBS;
    m->u.jobs.flags = all ? HY_JOBS_ALL : 0;
    hy_error err = {0};
    int rc = hy_client_ask(c->cl, m, HY_MSG_JOBS_REPLY, 30000, &c->in, &err);
    if (rc)
        conn_failed(c, rc, &err, "no reply within 30 s");
    *r = c->in->u.jobs_reply;
    r->jobs = r->jobs_in;
    for (unsigned i = 0; i < r->njobs; i++) {
        const struct passwd *pw = getpwuid(r->jobs_in[i].uid);
        if (pw)
            snprintf(names[i], sizeof names[i], "%s", pw->pw_name);
        else
            snprintf(names[i], sizeof names[i], "%u", (unsigned)r->jobs_in[i].uid);
        owners[i] = names[i];
    }
}

/* `hybridctl jobs`: once, or with --watch every second until Ctrl-C (on a terminal the
 * screen is redrawn, as top does; elsewhere one table, or one JSON line, after another). */
static int cmd_jobs(conn *c, const struct cmdline *l)
{
    static hy_msg_jobs_reply r;
    static char names[HY_IPC_JOBS_MAX][33];
    static const char *owners[HY_IPC_JOBS_MAX];
    struct sigaction sa = {.sa_handler = on_sigint};
    sigemptyset(&sa.sa_mask);
    if (l->watch)
        sigaction(SIGINT, &sa, NULL);
    bool redraw = l->watch && g_fmt != HC_JSON && isatty(STDOUT_FILENO);
    for (bool first = true;; first = false) {
        ask_jobs(c, l->all, &r, names, owners);
        if (redraw)
            fputs("\033[H\033[2J", stdout);
        else if (!first && g_fmt != HC_JSON)
            fputc('\n', stdout);
        if (hc_print_jobs(stdout, &r, owners, g_fmt) || fflush(stdout) != 0)
            return finish_output(HC_EXIT_JOB);
        if (!l->watch)
            break;
        for (int t = 0; t < 1000 && !g_interrupted; t += WAIT_SLICE_MS)
            usleep(WAIT_SLICE_MS * 1000);
        if (g_interrupted)
            break;
    }
    return finish_output(0);
}

static int cmd_pi(conn *c, const struct cmdline *l)
{
    struct jobopts o = l->o;
    device_name dname;
    hy_msg *m = c->m;
    memset(m, 0, sizeof *m);
    m->type = HY_MSG_SUBMIT;
    m->u.submit.job = HY_JOB_PI;
    fill_submit(&m->u.submit, &o);
    struct job_out *out = malloc(sizeof *out);
    if (!out)
        return HC_EXIT_JOB;
    run_job(c, m, NULL, 0, out);
    hc_pi_report r = {.seed = o.seed, .row = &out->rows[0],
                      .device_name = opencl_device_name(c, out, dname), .ranks = out->ranks,
                      .nranks = out->nranks};
    int rc = hc_print_pi(stdout, &r, o.csv ? HC_CSV : g_fmt);
    free(out);
    return finish_output(rc ? HC_EXIT_JOB : 0);
}

/* The sort's array, in a sealed memfd: read from the input file or generated in place. */
struct memfd_array {
    int fd;
    void *map;
    size_t bytes;
    hc_array a; /* points at the mapping */
};

/* The input file opened and checked against --dtype and the daemon's limit, unread. */
static void open_input_file(const struct jobopts *o, uint64_t max_elems, hc_input *in)
{
    hy_error err = {0};
    size_t max_bytes = (size_t)max_elems * 8;
    const char *ext = strrchr(o->input, '.');
    bool npy = !o->dtype || (ext && !strcmp(ext, ".npy"));
    int rc = is_stdio(o->input) ? hc_npy_open_stdin(in, max_bytes, &err)
             : npy              ? hc_npy_open(o->input, in, max_bytes, &err)
                                : hc_raw_open(o->input, o->dtype, in, max_bytes, &err);
    if (rc)
        fail(HC_EXIT_INPUT, err.code, NULL, "%s", err.msg);
    if (o->dtype && npy && o->dtype != in->dtype)
        fail(HC_EXIT_INPUT, HY_EDTYPE, NULL, "%s holds %s, not the %s that --dtype names",
             o->input, hy_dtype_name(in->dtype), hy_dtype_name(o->dtype));
}

/* Raw values from standard input (--input - --dtype D): their count is known only at EOF, so
 * they flow into a memfd that grows (splice from a pipe, no copy through hybridctl), which
 * is then sized, mapped and sealed. */
static int load_raw_stdin(const struct jobopts *o, uint64_t max_elems, struct memfd_array *ma)
{
    hy_error err = {0};
    int fd = memfd_create("hybridctl-array", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        fail(HC_EXIT_JOB, HY_ESYS, NULL, "memfd_create: %s", strerror(errno));
    ma->fd = fd;
    size_t n;
    if (hc_raw_stdin(o->dtype, fd, (size_t)max_elems * hy_dtype_size(o->dtype), &n, &err))
        fail(HC_EXIT_INPUT, err.code, NULL, "%s", err.msg);
    ma->a.dtype = o->dtype;
    ma->a.n = n;
    ma->bytes = n * hy_dtype_size(o->dtype);
    /* A memfd of size 0 cannot be mapped: an empty array travels as one byte it ignores. */
    size_t alloc = ma->bytes ? ma->bytes : 1;
    if (ftruncate(fd, (off_t)alloc) != 0)
        fail(HC_EXIT_JOB, HY_ESYS, NULL, "ftruncate of a memfd: %s", strerror(errno));
    ma->map = mmap(NULL, alloc, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (ma->map == MAP_FAILED) {
        ma->map = NULL;
        fail(HC_EXIT_JOB, HY_ESYS, NULL, "mmap of a %zu-byte memfd: %s", alloc,
             strerror(errno));
    }
    ma->a.data = ma->map;
    if (hy_memfd_seal(ma->fd, &err))
        fail(HC_EXIT_JOB, err.code, NULL, "%s", err.msg);
    return 0;
}

/* The array goes into the memfd without passing through hybridctl's memory: a file's data
 * by sendfile (the kernel copies page cache into the memfd's pages), a generated one written
 * in place. Then the memfd is sealed and mapped for the order check and the output. */
static int load_array(const struct jobopts *o, uint64_t max_elems, struct memfd_array *ma)
{
    hy_error err = {0};
    hc_input in = {.fd = -1};
    memset(ma, 0, sizeof *ma);
    ma->fd = -1;
    if (is_stdio(o->input) && o->dtype)
        return load_raw_stdin(o, max_elems, ma);
    if (o->input) {
        open_input_file(o, max_elems, &in);
        ma->a.dtype = in.dtype;
        ma->a.n = in.n;
    } else {
        ma->a.dtype = o->dtype;
        ma->a.n = (size_t)o->n;
    }
    ma->bytes = ma->a.n * hy_dtype_size(ma->a.dtype);
    if (ma->a.n > max_elems)
        fail(HC_EXIT_JOB, HY_ELIMIT, NULL, "%zu elements are above the daemon's limit of %" PRIu64,
             ma->a.n, max_elems);
    /* A memfd of size 0 cannot be mapped: an empty array travels as one byte it ignores. */
    size_t alloc = ma->bytes ? ma->bytes : 1;
    if (hy_memfd_create("hybridctl-array", alloc, &ma->fd, &ma->map, &err))
        fail(HC_EXIT_JOB, err.code, NULL, "%s", err.msg);
    if (o->input) {
        if (hc_input_send(&in, ma->fd, &err))
            fail(HC_EXIT_INPUT, err.code, NULL, "%s", err.msg);
    } else if (hc_generate(ma->map, o->dtype, (size_t)o->n, o->dist, o->seed, &err)) {
        fail(HC_EXIT_USAGE, err.code, NULL, "%s", err.msg);
    }
    ma->a.data = ma->map;
    if (hy_memfd_seal(ma->fd, &err))
        fail(HC_EXIT_JOB, err.code, NULL, "%s", err.msg);
    return 0;
}

static void free_array(struct memfd_array *ma)
{
    if (ma->map)
        hy_memfd_unmap(ma->map, ma->bytes ? ma->bytes : 1);
    if (ma->fd >= 0)
        close(ma->fd);
}

/* An absolute form of `path` for a daemon whose working directory is not ours: the input's
 * real path (it exists: its header was read), the output's joined to ours if relative (it
 * may not exist yet, and the daemon says so if its directory does not). */
static void absolute_path(const char *path, bool exists, char *out, size_t cap)
{
    char cwd[PATH_MAX];
    int len;
    if (exists) {
        char *real = realpath(path, NULL);
        if (!real)
            fail(HC_EXIT_INPUT, HY_ESYS, NULL, "%s: %s", path, strerror(errno));
        len = snprintf(out, cap, "%s", real);
        free(real);
    } else if (path[0] == '/') {
        len = snprintf(out, cap, "%s", path);
    } else {
        if (!getcwd(cwd, sizeof cwd))
            fail(HC_EXIT_INPUT, HY_ESYS, NULL, "getcwd: %s", strerror(errno));
        len = snprintf(out, cap, "%s/%s", cwd, path);
    }
    if (len < 0 || (size_t)len >= cap || (size_t)len > HY_IPC_PATH_MAX)
        fail(HC_EXIT_INPUT, HY_ELIMIT, NULL, "%s: the path is longer than the %u bytes a "
             "SUBMIT carries", path, HY_IPC_PATH_MAX);
}

/* --check of a files-mode sort: the output the daemon wrote, read back. */
/* 1 sorted, 0 not (*bad the index), -1 unreadable (err says why). */
static int check_output_file(const char *path, uint64_t max_elems, size_t *bad, hy_error *err)
{
    hc_array a;
    if (hc_npy_read(path, &a, (size_t)max_elems * 8, err))
        return -1;
    int ok = hc_is_sorted(a.data, a.dtype, a.n, bad);
    hc_array_free(&a);
    return ok;
}

/* The report of a sort from a file to a file the daemon wrote (files or fds mode): the row,
 * and the order --check found (checked: 1 sorted, 0 not at index `bad`, -1 not checked).
 * Frees `out`. */
static int report_file_sort(conn *c, const struct jobopts *o, int dtype, int checked,
                            size_t bad, struct job_out *out)
{
    device_name dname;
    hc_sort_report r = {.dtype = dtype, .source = o->input, .output = o->output,
                        .checked = checked, .row = &out->rows[0],
                        .device_name = opencl_device_name(c, out, dname), .ranks = out->ranks,
                        .nranks = out->nranks};
    int rc = hc_print_sort(stdout, &r, o->csv ? HC_CSV : g_fmt) ? HC_EXIT_JOB : 0;
    if (checked == 0) {
        say("%s came back out of order at index %zu", o->output, bad);
        rc = rc ? rc : HC_EXIT_JOB;
    }
    free(out);
    return finish_output(rc);
}

/* sort in files mode (files_mode): the header is read here for the dtype and n the SUBMIT
 * names, which the daemon checks against the file; then the paths go instead of a memfd. */
static int cmd_sort_files(conn *c, const struct jobopts *o)
{
    hc_input in = {.fd = -1};
    open_input_file(o, c->welcome.max_sort_elements, &in);
    int dtype = in.dtype;
    size_t n = in.n;
    hc_input_close(&in);
    static char inp[PATH_MAX], outp[PATH_MAX];
    absolute_path(o->input, true, inp, sizeof inp);
    absolute_path(o->output, false, outp, sizeof outp);
    hy_msg *m = c->m;
    memset(m, 0, sizeof *m);
    m->type = HY_MSG_SUBMIT;
    hy_msg_submit *s = &m->u.submit;
    s->job = HY_JOB_SORT;
    fill_submit(s, o);
    s->n = n;
    s->dtype = (uint16_t)dtype;
    s->array = HY_ARRAY_FILES;
    s->input = (hy_str){inp, (uint32_t)strlen(inp)};
    s->output = (hy_str){outp, (uint32_t)strlen(outp)};
    s->input_len = (uint16_t)s->input.len;
    s->output_len = (uint16_t)s->output.len;
    struct job_out *out = malloc(sizeof *out);
    if (!out)
        return HC_EXIT_JOB;
    run_job(c, m, NULL, 0, out);
    size_t bad = 0;
    hy_error err = {0};
    int checked = o->check ? check_output_file(outp, c->welcome.max_sort_elements, &bad, &err)
                           : -1;
    if (o->check && checked < 0) {
        free(out); /* fail() exits: nothing may be left for a leak checker to find */
        fail(HC_EXIT_INPUT, err.code, NULL, "--check: %s", err.msg);
    }
    return report_file_sort(c, o, dtype, checked, bad, out);
}

/* Whether a sort can hand the daemon its input file and its output's temporary file (array
 * fds): both are files on disk, the daemon offers it, and the job runs on one daemon. Then the
 * daemon reads the input into memory it keeps between jobs and writes the output itself: no
 * memfd is filled, mapped and freed, which halves the fresh pages a file-to-file sort
 * touches (docs/benchmarks.md). */
static bool fds_mode(const conn *c, const struct jobopts *o)
{
    struct stat st;
    return (c->welcome.features & HY_FEATURE_FILE_FDS) && o->input && o->output &&
           o->ranks <= 1 && !is_stdio(o->input) && !is_stdio(o->output) &&
           stat(o->input, &st) == 0 && S_ISREG(st.st_mode);
}

/* A sort in fds mode, or 1 where the memfd way must serve: an output not written through a
 * temporary file (a FIFO, a device, a file replaced in place), a temporary file that would
 * have a name while the job runs (no O_TMPFILE there: a hybridctl killed meanwhile would
 * leave it behind), or files the daemon would refuse (hy_file_array_check: not on a local
 * file system). */
static int cmd_sort_fds(conn *c, const struct jobopts *o)
{
    hy_error err = {0};
    if (hc_output_begin(o->output, NULL, &g_pending, &err))
        fail(HC_EXIT_INPUT, err.code, NULL, "%s", err.msg);
    if (g_pending.fd >= 0 && !g_pending.unnamed)
        hc_output_abandon(&g_pending);
    if (g_pending.fd < 0)
        return 1;
    hc_input in = {.fd = -1};
    uint64_t max_elems = c->welcome.max_sort_elements;
    open_input_file(o, max_elems, &in);
    if (in.n > max_elems)
        fail(HC_EXIT_JOB, HY_ELIMIT, NULL, "%zu elements are above the daemon's limit of %" PRIu64,
             in.n, max_elems);
    /* The header first: the file's position is then where the daemon writes the array. */
    char header[256];
    size_t header_len = o->raw ? 0 : hy_npy_header(in.dtype, in.n, header, sizeof header);
    if (!o->raw && header_len == 0)
        fail(HC_EXIT_JOB, HY_EINTERNAL, NULL, "the .npy header of %zu elements does not fit",
             in.n);
    for (size_t done = 0; done < header_len;) {
        ssize_t w = write(g_pending.fd, header + done, header_len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            fail(HC_EXIT_INPUT, HY_ESYS, NULL, "cannot write %s: write: %s", o->output,
                 w < 0 ? strerror(errno) : "nothing written");
        done += (size_t)w;
    }
    size_t bytes = in.n * hy_dtype_size(in.dtype);
    hy_file_array fa;
    if (hy_file_array_check(in.fd, g_pending.fd, bytes, &fa, &err)) {
        hc_output_abandon(&g_pending);
        hc_input_close(&in);
        return 1;
    }
    hy_msg *m = c->m;
    memset(m, 0, sizeof *m);
    m->type = HY_MSG_SUBMIT;
    m->u.submit.job = HY_JOB_SORT;
    fill_submit(&m->u.submit, o);
    m->u.submit.n = in.n;
    m->u.submit.dtype = (uint16_t)in.dtype;
    m->u.submit.array = HY_ARRAY_FDS;
    struct job_out *out = malloc(sizeof *out);
    if (!out)
        fail(HC_EXIT_JOB, HY_ENOMEM, NULL, "out of memory");
    int fds[2] = {in.fd, g_pending.fd};
    run_job(c, m, fds, 2, out);
    hc_input_close(&in);
    int checked = -1;
    size_t bad = 0;
    if (o->check) { /* read back from the file the daemon wrote, as a user would */
        void *map = bytes ? mmap(NULL, header_len + bytes, PROT_READ, MAP_SHARED,
                                 g_pending.fd, 0) : NULL;
        if (map == MAP_FAILED) {
            free(out);
            fail(HC_EXIT_INPUT, HY_ESYS, NULL, "--check: mapping %s: %s", o->output,
                 strerror(errno));
        }
        checked = hc_is_sorted(map ? (char *)map + header_len : NULL, in.dtype, in.n, &bad);
        if (map)
            munmap(map, header_len + bytes);
    }
    if (hc_output_commit(&g_pending, &err)) {
        free(out);
        fail(HC_EXIT_INPUT, err.code, NULL, "%s", err.msg);
    }
    return report_file_sort(c, o, in.dtype, checked, bad, out);
}

static int cmd_sort(conn *c, const struct cmdline *l)
{
    struct jobopts o = l->o;
    struct memfd_array ma;
    device_name dname;
    int rc;
    if (files_mode(&o))
        return cmd_sort_files(c, &o);
    if (fds_mode(c, &o) && (rc = cmd_sort_fds(c, &o)) != 1)
        return rc;
    if ((rc = load_array(&o, c->welcome.max_sort_elements, &ma)))
        return rc;
    hy_msg *m = c->m;
    memset(m, 0, sizeof *m);
    m->type = HY_MSG_SUBMIT;
    m->u.submit.job = HY_JOB_SORT;
    fill_submit(&m->u.submit, &o);
    m->u.submit.n = ma.a.n;
    m->u.submit.dtype = (uint16_t)ma.a.dtype;
    m->u.submit.array = HY_ARRAY_MEMFD;
    struct job_out *out = malloc(sizeof *out);
    if (!out)
        return HC_EXIT_JOB;
    run_job(c, m, &ma.fd, 1, out);
    int checked = -1;
    size_t bad = 0;
    if (o.check)
        checked = hc_is_sorted(ma.map, ma.a.dtype, ma.a.n, &bad);
    rc = 0;
    if (o.output) {
        /* Before the report, so a failed write ends in its one error (and one --json
         * document) rather than a report that names a file that was not written. */
        hy_error err = {0};
        if (hc_npy_write_memfd(o.output, &ma.a, ma.fd, o.raw, &err)) {
            free(out); /* fail() exits: nothing may be left for a leak checker to find */
            free_array(&ma);
            fail(HC_EXIT_INPUT, err.code, NULL, "%s", err.msg);
        }
    }
    const char *source = is_stdio(o.input) ? HC_STDIN_NAME : o.input ? o.input : o.dist;
    hc_sort_report r = {.dtype = ma.a.dtype, .source = source,
                        .output = o.output, .checked = checked,
                        .row = &out->rows[0], .device_name = opencl_device_name(c, out, dname),
                        .ranks = out->ranks, .nranks = out->nranks};
    /* With --output -, the array owns standard output and the report goes to stderr. */
    if (hc_print_sort(is_stdio(o.output) ? stderr : stdout, &r, o.csv ? HC_CSV : g_fmt))
        rc = rc ? rc : HC_EXIT_JOB;
    if (checked == 0) {
        say("the array came back out of order at index %zu", bad);
        rc = rc ? rc : HC_EXIT_JOB;
    }
    free(out);
    free_array(&ma);
    return finish_output(rc);
}

static int cmd_compare(conn *c, const struct cmdline *l)
{
    bool sort = l->sort;
    struct jobopts o = l->o;
    struct memfd_array ma = {.fd = -1};
    device_name dname;
    /* No --backends, no --threads, no --repeat: the daemon's defaults (docs/protocol.md,
     * SUBMIT), which its ACCEPTED and RESULT state. */
    hy_msg *m = c->m;
    memset(m, 0, sizeof *m);
    m->type = HY_MSG_SUBMIT;
    o.backend = HY_BACKEND_NATIVE; /* ignored by compares */
    fill_submit(&m->u.submit, &o);
    m->u.submit.job = sort ? HY_JOB_COMPARE_SORT : HY_JOB_COMPARE_PI;
    m->u.submit.backends = o.backends;
    m->u.submit.transports = o.transports;
    m->u.submit.nthreads_list = o.nthreads;
    memcpy(m->u.submit.threads_list, o.threads_list, sizeof o.threads_list);
    int rc;
    if (sort) {
        if ((rc = load_array(&o, c->welcome.max_sort_elements, &ma)))
            return rc;
        m = c->m; /* load_array does not touch it, but keep the message fresh */
        m->u.submit.n = ma.a.n;
        m->u.submit.dtype = (uint16_t)ma.a.dtype;
        m->u.submit.array = HY_ARRAY_MEMFD;
    }
    struct job_out *out = malloc(sizeof *out);
    if (!out) {
        if (sort)
            free_array(&ma);
        return HC_EXIT_JOB;
    }
    double load_before = 0, load_after = 0;
    unsigned cpus = 0;
    bool have_load = hc_machine_load(&load_before, &cpus);
    run_job(c, m, sort ? &ma.fd : NULL, sort ? 1 : 0, out);
    have_load = have_load && hc_machine_load(&load_after, &cpus);
    /* The repeat the daemon ran: ACCEPTED's, or from a daemon that does not say, a row's. */
    unsigned repeat = out->repeat ? out->repeat : out->rows[0].repeat;
    hc_compare cmp = {.job = sort ? HY_JOB_COMPARE_SORT : HY_JOB_COMPARE_PI,
                      .n = sort ? ma.a.n : o.n, .seed = o.seed, .dtype = ma.a.dtype,
                      .dist = o.input ? o.input : o.dist,
                      .mode = o.replicate ? HY_MODE_REPLICATE : HY_MODE_SPLIT,
                      .repeat = repeat, .nrows = out->nrows, .rows = out->rows,
                      .device_name = opencl_device_name(c, out, dname), .server = c->server,
                      .load_before = load_before, .load_after = load_after,
                      .cpus = have_load ? cpus : 0};
    rc = hc_print_compare(stdout, &cmp, o.csv && g_fmt != HC_JSON ? HC_CSV : g_fmt)
             ? HC_EXIT_JOB : 0;
    if (o.plot) {
        hy_error err = {0};
        if (hc_write_plot(o.plot, &cmp, &err)) {
            say("%s", err.msg);
            rc = rc ? rc : HC_EXIT_INPUT;
        } else if (!g_quiet && g_fmt == HC_TEXT && !o.csv) {
            printf("plot: %s\n", o.plot);
        }
    }
    free(out);
    if (sort)
        free_array(&ma);
    return finish_output(rc);
}

/* The line with the global options taken out, wherever they stood. */
struct line {
    const char *sock;
    bool help, version;
    char **args; /* the command and its words, --opt=value split in two */
    int nargs;
};

/* Reads the whole line first, so that --json anywhere on it shapes even a usage error's
 * report; a long option's "=value" becomes its value (the completion offers that form). */
static void read_line(int argc, char **argv, struct line *ln)
{
    char problem[256] = "";
    memset(ln, 0, sizeof *ln);
    ln->args = calloc((size_t)argc * 2 + 1, sizeof *ln->args);
    if (!ln->args)
        fail(HC_EXIT_JOB, HY_ENOMEM, NULL, "out of memory");
    for (int i = 1; i < argc; i++) {
        char *a = argv[i], *eq = NULL;
        const char *v = NULL;
        if (a[0] == '-' && a[1] == '-' && (eq = strchr(a, '=')) != NULL) {
            *eq = '\0';
            v = eq + 1;
        }
        const struct option *o = a[0] == '-' && a[1] ? find_option(a) : NULL;
        if (!o) {
            if (eq)
                *eq = '=';
            ln->args[ln->nargs++] = a;
            continue;
        }
        if (eq && !o->arg) {
            if (!problem[0])
                snprintf(problem, sizeof problem, "%s takes no value (%s=%s)", a, a, v);
            continue;
        }
        if (o->arg && !eq && i + 1 < argc)
            v = argv[++i];
        if (!(o->bits & C_GLOBAL)) {
            ln->args[ln->nargs++] = a;
            if (v)
                ln->args[ln->nargs++] = (char *)v;
            continue;
        }
        if (!strcmp(o->name, "-s")) {
            if (!v && !problem[0])
                snprintf(problem, sizeof problem, "%s needs a path", a);
            ln->sock = v;
        } else if (!strcmp(o->name, "--json")) {
            g_fmt = HC_JSON;
        } else if (!strcmp(o->name, "-q")) {
            g_quiet = true;
        } else if (!strcmp(o->name, "--verbose")) {
            g_verbose = true;
        } else if (!strcmp(o->name, "-h")) {
            ln->help = true;
        } else {
            ln->version = true;
        }
    }
    if (problem[0])
        usage_error("%s", problem);
    if (g_quiet && g_verbose)
        usage_error("--quiet and --verbose contradict each other: give one");
}

/* ---- --list: the completion's words, read from the tables above ---- */

/* `hybridctl --list WHAT [ARGS]` prints one word a line, for client/hybridctl.bash-completion:
 * the completion asks the hybridctl it completes for every list it offers (as git's asks
 * `git --list-cmds`), so a new command, option, backend or dtype needs no second copy there.
 * Taken only as the first word and left out of --help: it is for the completion, not for
 * people (hybridctl(1) mentions it under FILES). */

static void print_names(name_fn *name, int first)
{
    for (int k = first; name(k); k++)
        printf("%s\n", name(k));
}

/* The options (and their aliases) whose bits meet `bits`; with `values`, only those that take
 * a value: the word after one of those is never a command. */
static void print_options(unsigned bits, bool values)
{
    for (size_t k = 0; k < NOPTIONS; k++) {
        const struct option *o = &options[k];
        if (!(o->bits & bits) || (values && !o->arg && !o->cmp_arg))
            continue;
        printf("%s\n", o->name);
        if (o->alias)
            printf("%s\n", o->alias);
    }
}

static void list_commands(char **args)
{
    (void)args;
    print_names(command_name, 0);
}

static void list_globals(char **args)
{
    (void)args;
    print_options(C_GLOBAL, false);
}

static void list_takes_value(char **args)
{
    (void)args;
    print_options(~0u, true);
}

static void list_backends(char **args)
{
    (void)args;
    print_names(hy_backend_name, 1);
}

/* What a single job's --backend takes: every backend, and auto. */
static void list_job_backends(char **args)
{
    list_backends(args);
    printf("auto\n");
}

static void list_transports(char **args)
{
    (void)args;
    print_names(hy_transport_name, 1);
}

/* Both spellings hy_dtype_parse takes: "i32", then numpy's "int32". common/ names only the
 * short one, so numpy's is spelled from it (the kind letter written out) and printed only
 * when the parser takes it back as the same dtype: never a word the parser would refuse. */
static void list_dtypes(char **args)
{
    (void)args;
    print_names(hy_dtype_name, 1);
    static const struct { char letter; const char *kind; } kinds[] = {
        {'i', "int"}, {'u', "uint"}, {'f', "float"}};
    for (int d = 1; hy_dtype_name(d); d++) {
        const char *s = hy_dtype_name(d);
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
            char numpy[32];
            snprintf(numpy, sizeof numpy, "%s%s", kinds[k].kind, s + 1);
            if (s[0] == kinds[k].letter && hy_dtype_parse(numpy) == d)
                printf("%s\n", numpy);
        }
    }
}

static void list_dists(char **args)
{
    (void)args;
    print_names(dist_name, 0);
}

/* The job words a command takes after it: compare's pi and sort; none for the others. */
static void list_jobs(char **args)
{
    for (size_t k = 0; k < NJOB_LINES; k++)
        if (job_lines[k].job && !strcmp(job_lines[k].command, args[0]))
            printf("%s\n", job_lines[k].job);
}

/* The options of a command (not the global ones), of compare's JOB when one is given. */
static void list_options(char **args)
{
    const struct command *c = find_command(args[0]);
    if (!c)
        usage_error("--list options %s: no such command", args[0]);
    unsigned bits = c->bits;
    if (args[1]) {
        bits = 0;
        for (size_t k = 0; k < NJOB_LINES; k++)
            if (job_lines[k].job && !strcmp(job_lines[k].command, c->name) &&
                !strcmp(job_lines[k].job, args[1]))
                bits = job_lines[k].bit;
        if (!bits)
            usage_error("--list options %s %s: %s takes no job %s", c->name, args[1], c->name,
                        args[1]);
    }
    print_options(bits, false);
}

static const struct word_list {
    const char *what;
    int min_args, max_args; /* the words after WHAT */
    void (*print)(char **args);
} word_lists[] = {
    {"commands", 0, 0, list_commands},     {"globals", 0, 0, list_globals},
    {"takes-value", 0, 0, list_takes_value}, {"backends", 0, 0, list_backends},
    {"job-backends", 0, 0, list_job_backends},
    {"transports", 0, 0, list_transports}, {"dtypes", 0, 0, list_dtypes},
    {"dists", 0, 0, list_dists},           {"jobs", 1, 1, list_jobs},
    {"options", 1, 2, list_options},
};
#define NWORD_LISTS (sizeof word_lists / sizeof word_lists[0])

static const char *word_list_name(int k)
{
    return k >= 0 && (size_t)k < NWORD_LISTS ? word_lists[k].what : NULL;
}

/* argv: the words after --list. args[] handed on is NULL-terminated. */
static int list_words(int argc, char **argv)
{
    char names[160];
    join_names(names, sizeof names, word_list_name, 0);
    if (argc < 1)
        usage_error("--list needs what to list: %s", names);
    for (size_t k = 0; k < NWORD_LISTS; k++) {
        const struct word_list *l = &word_lists[k];
        if (strcmp(argv[0], l->what))
            continue;
        if (argc - 1 < l->min_args || argc - 1 > l->max_args)
            usage_error("--list %s takes %d to %d words after it", l->what, l->min_args,
                        l->max_args);
        l->print(argv + 1);
        return finish_output(0);
    }
    usage_error("--list %s: unknown; lists are %s", argv[0], names);
}

static int finish(int rc)
{
    error_document(rc);
    return rc;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc >= 2 && !strcmp(argv[1], "--list"))
        return list_words(argc - 2, argv + 2);
    /* Static: the line's words live until exit, whichever return or fail() ends the run. */
    static struct line ln;
    read_line(argc, argv, &ln);
    if (ln.version) {
        printf("hybridctl %s\n", HY_VERSION);
        return 0;
    }
    if (ln.nargs == 0) {
        if (ln.help) {
            usage(stdout);
            return 0;
        }
        char names[128];
        usage_error("which command? %s", join_names(names, sizeof names, command_name, 0));
    }
    const char *cmd = ln.args[0];
    if (cmd[0] == '-') {
        if (find_option(cmd))
            usage_error("%s is an option of pi, sort and compare: put it after the command",
                        cmd);
        usage_error("unknown option %s", cmd);
    }
    const struct command *command = find_command(cmd);
    if (!command)
        usage_error("unknown command %s", cmd);
    g_cmd = command->name;
    if (ln.help) {
        usage_command(stdout, command);
        return 0;
    }
    /* Static, like ln: a compare's options are large, and live until exit. */
    static struct cmdline cl;
    command->parse(ln.nargs, ln.args, 1, &cl);
    conn c;
    conn_open(&c, ln.sock);
    int rc = command->run(&c, &cl);
    conn_close(&c);
    free(ln.args);
    return finish(rc);
}
