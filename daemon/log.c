/* daemon/log: leveled one-line logging to stderr, journald-aware. */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int g_max = HY_LOG_INFO;
static bool g_journal;
static char g_tag[32]; /* "rank 3 ": which MPI rank a line is from; empty outside MPI */

/* JOURNAL_STREAM holds "DEV:INODE" of the stream systemd connected; only when stderr is that
 * very stream do the "<N>" prefixes mean anything (a redirect by the user would show them). */
static bool stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) != 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void hy_log_init(int max_level)
{
    g_max = max_level;
    g_journal = stderr_is_journal();
}

void hy_log_set_rank(int rank)
{
    snprintf(g_tag, sizeof g_tag, "rank %d: ", rank);
}

static const char *level_name(int level)
{
    switch (level) {
    case HY_LOG_ERR: return "error";
    case HY_LOG_WARNING: return "warning";
    case HY_LOG_NOTICE: return "notice";
    case HY_LOG_INFO: return "info";
    default: return "debug";
    }
}

void hy_log(int level, const char *fmt, ...)
{
    if (level > g_max)
        return;
    char line[1024];
    int off;
    if (g_journal) {
        off = snprintf(line, sizeof line, "<%d>%s", level, g_tag);
    } else {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        localtime_r(&ts.tv_sec, &tm);
        off = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
        off += snprintf(line + off, sizeof line - (size_t)off, ".%03ld hybridd[%ld] %s: %s",
                        ts.tv_nsec / 1000000, (long)getpid(), level_name(level), g_tag);
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + off, sizeof line - (size_t)off - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)off + (n < 0 ? 0 : (size_t)n);
    if (len > sizeof line - 2)
        len = sizeof line - 2; /* truncated: still one line */
    line[len++] = '\n';
    /* Logging must never stop the daemon: a full or closed stderr loses the line, nothing more. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
