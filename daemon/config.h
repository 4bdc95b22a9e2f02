/* daemon/config: hybridd's configuration — built-in defaults, loading a libconfig file with
 * strict checks (unknown keys and out-of-range values are errors), and printing it back. */
#ifndef HY_DAEMON_CONFIG_H
#define HY_DAEMON_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common.h"

#define HY_CONFIG_PATH_MAX 108     /* sizeof(sockaddr_un.sun_path), NUL included */
#define HY_CONFIG_GROUP_MAX 64     /* a group name, NUL included */
#define HY_CONFIG_DIR_MAX 4096     /* PATH_MAX, NUL included */
#define HY_CONFIG_MAX_IDS 64       /* entries in access.uids and in access.gids */
#define HY_CONFIG_MAX_DEVICES 64   /* entries in opencl.devices; an index is below this too */
#define HY_CONFIG_MAX_THREADS 256  /* cpu.native_threads and cpu.locked_threads */
#define HY_CONFIG_MAX_WORKERS 64   /* cpu.process_workers */
#define HY_CONFIG_MAX_CPU_INDEX 1023 /* cpu.cpus: CPU numbers, as taskset(1) and cpu_set_t have them */

typedef struct hy_config {
    /* socket = { ... } */
    char socket_path[HY_CONFIG_PATH_MAX]; /* absolute path of the listening socket */
    unsigned socket_mode;                 /* permission bits of the socket file, <= 07777 */
    char socket_group[HY_CONFIG_GROUP_MAX]; /* group of the socket file; "" = the daemon's own */

    /* access = { ... }: both lists empty = every local user the socket's mode lets in;
     * otherwise a peer is allowed when its uid or its gid is listed. */
    unsigned n_uids;
    uint32_t uids[HY_CONFIG_MAX_IDS];
    unsigned n_gids;
    uint32_t gids[HY_CONFIG_MAX_IDS];

    /* cpu = { ... } */
    unsigned native_threads;     /* native pool size; 0 = online CPUs; <= 256 */
    unsigned locked_threads;     /* locked-runtime threads; 0 = online CPUs; <= 256 */
    unsigned switch_interval_us; /* locked runtime's switch interval, 1..1000000 */
    unsigned process_workers;    /* process backend's worker processes; 0 = online CPUs; <= 64 */
    unsigned n_cpus;             /* cpus = [ ... ]: the CPU engine's threads pinned, thread i */
    uint32_t cpus[HY_CONFIG_MAX_THREADS]; /* to cpus[i % n_cpus]; none listed: not pinned */

    /* opencl = { ... } */
    bool opencl_enabled;
    bool opencl_all_devices;               /* devices = "all" (n_devices is then 0) */
    unsigned n_devices;                    /* devices = [ ... ] when !opencl_all_devices */
    unsigned devices[HY_CONFIG_MAX_DEVICES]; /* indices, each < HY_CONFIG_MAX_DEVICES, no repeats */
    char cache_dir[HY_CONFIG_DIR_MAX];     /* program binary cache; "" = no cache */
    bool hybrid_cpu_devices; /* hybrid jobs use OpenCL CPU devices too (cores of their own) */

    /* limits = { ... } */
    uint64_t max_clients;         /* 1..65536 */
    uint64_t max_frame_bytes;     /* 64 KiB..16 MiB */
    uint64_t max_queued_jobs;     /* 1..100000, all clients together */
    uint64_t max_jobs_per_client; /* 1..10000 */
    uint64_t max_samples;         /* pi samples per job, 1..2^63-1 */
    uint64_t max_sort_elements;   /* sort elements per job, 1..2^40 */
    uint64_t max_job_bytes;       /* array bytes per job, 1..2^48 */
    uint64_t job_timeout_s;       /* 0 = none, else 1..2^31-1 */
    uint64_t drain_timeout_s;     /* 0..86400: how long SIGTERM waits for running jobs */
    uint64_t peer_timeout_s;      /* 0 = none, else 1..86400: an MPI rank's silence (docs/mpi.md) */
    uint64_t span_keep_bytes;     /* 0..2^48: what an MPI rank keeps between sort spans */

    /* state = { ... } */
    char history_path[HY_CONFIG_DIR_MAX]; /* the performance history file; "" = none kept */
} hy_config;

/* The built-in defaults for the calling process (its effective uid and $XDG_RUNTIME_DIR). */
void hy_config_defaults(hy_config *c);

/* The defaults as they would be for `uid` with XDG_RUNTIME_DIR = `xdg_runtime_dir` (NULL when
 * unset): the socket is /run/hybridd/hybridd.sock for uid 0, $XDG_RUNTIME_DIR/hybridd.sock when
 * it is absolute and the path fits, else /tmp/hybridd-<uid>/hybridd.sock. Split out so tests can
 * reach all three without being root. */
void hy_config_defaults_for(hy_config *c, unsigned uid, const char *xdg_runtime_dir);

/* Applies the libconfig file at `path` on top of *c (normally the defaults). On error *c is left
 * untouched and err says why: HY_ESYS for a file that cannot be opened, HY_EINVAL for a parse
 * error ("FILE:LINE: text"), an unknown key, a wrong type or an out-of-range value (each naming
 * the key, its line, and for values the value and the allowed range). */
int hy_config_load(hy_config *c, const char *path, hy_error *err);

/* Writes *c as a libconfig file that hy_config_load reads back to the same struct. Returns 0, or
 * HY_ESYS when writing to f failed. */
int hy_config_print(const hy_config *c, FILE *f);

/* What SIGHUP does with a changed key: the one list, in the schema, that the reload, its log,
 * hybridd.conf(5) and the tests follow. */
typedef enum hy_config_reload {
    HY_RELOAD_APPLY = 0,           /* applied at once */
    HY_RELOAD_NEW_CONNECTIONS = 1, /* applied to connections made after the reload */
    HY_RELOAD_RESTART = 2,         /* logged, and left as it runs until a restart */
} hy_config_reload;

#define HY_CONFIG_VALUE_MAX 1024 /* a value as hy_config_diff writes it, NUL included */

/* Calls fn once for every key whose value differs between old and now, in the file's order,
 * with its dotted name ("limits.jobs_per_client") and both values as the file writes them
 * (strings quoted and made printable, lists as [ 1, 2 ]). */
typedef void hy_config_diff_fn(void *ctx, const char *key, const char *old_value,
                               const char *new_value, hy_config_reload reload);
void hy_config_diff(const hy_config *old, const hy_config *now, hy_config_diff_fn *fn,
                    void *ctx);
/* Sets every HY_RELOAD_RESTART key of *now to its value in *running. */
void hy_config_keep_restart_keys(hy_config *now, const hy_config *running);

/* Every key's dotted name and reload class, into out[0..cap); returns how many keys there are. */
typedef struct hy_config_key_info {
    char name[64];
    hy_config_reload reload;
} hy_config_key_info;
size_t hy_config_keys(hy_config_key_info *out, size_t cap);

#endif
