/* tests: processes as /proc shows them — a process's children (how many, which, whether any
 * is a zombie) and its resident memory — for the suites that check the process backend's
 * workers and what the daemon keeps after a job. */
#ifndef HY_TESTS_CHILDREN_H
#define HY_TESTS_CHILDREN_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* How many processes have `parent` as their parent; their pids into out (up to cap, out may
 * be NULL), and how many of them are zombies. UINT32_MAX when /proc cannot be read. */
static inline unsigned hyt_children(pid_t parent, pid_t *out, unsigned cap, unsigned *zombies)
{
    DIR *d = opendir("/proc");
    if (!d)
        return UINT32_MAX;
    unsigned n = 0;
    *zombies = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue; /* gone since readdir */
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        /* The command name may hold spaces and parentheses: the fields follow the last ')'. */
        char *rp = strrchr(buf, ')'), state;
        int ppid;
        if (rp && sscanf(rp + 1, " %c %d", &state, &ppid) == 2 && ppid == parent) {
            if (out && n < cap)
                out[n] = (pid_t)atoi(de->d_name);
            n++;
            *zombies += state == 'Z';
        }
    }
    closedir(d);
    return n;
}

/* VmRSS of `pid` in KiB, or -1 when it cannot be read. */
static inline long hyt_rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

#endif
