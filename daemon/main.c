/* daemon/main: hybridd's entry point — options, configuration, the listening socket, the
 * engines, detaching from the terminal, then the event loop. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>

#include "cl.h"
#include "config.h"
#include "history.h"
#include "hy_mpi.h"
#include "host.h"
#include "listen.h"
#include "log.h"
#include "proc.h"
#include "server.h"

#ifndef HY_VERSION
#define HY_VERSION "0.0.0"
#endif

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hybridd [-c FILE] [--socket PATH] [--foreground] [--check-config]\n"
            "               [--mpi] [--log-level LEVEL] [--version] [--help]\n"
            "\n"
            "hybridd owns this machine's OpenCL devices and CPU thread pools and runs pi and sort\n"
            "jobs for local users over a Unix socket, under these backends (hybridctl, its\n"
            "client, names them with --backend):\n");
    for (int b = 1; b <= HY_BACKEND_COUNT; b++)
        fprintf(f, "  %-8s %s\n", hy_backend_name(b), hy_backend_about(b));
    fprintf(f,
            "\n"
            "  -c, --config FILE   read FILE (libconfig; see hybridd.conf(5)) over the defaults\n"
            "  -s, --socket PATH   listen on PATH instead of socket.path\n"
            "  -f, --foreground    stay attached to the terminal (under systemd, always)\n"
            "      --check-config  check the configuration as start-up would, short of binding\n"
            "                      the socket; print it and exit\n"
            "      --mpi           run as one rank of an MPI job (mpirun -np N hybridd --mpi):\n"
            "                      %%r in the socket path is the rank; serves only this uid;\n"
            "                      stays in the foreground (docs/mpi.md)\n"
            "      --log-level L   error, warning, notice, info (default) or debug\n"
            "      --version       print the version and exit\n"
            "  -h, --help          print this help, with the built-in defaults, and exit\n"
            "\n"
            "Signals: SIGHUP reloads the configuration; SIGTERM and SIGINT stop accepting work,\n"
            "let running jobs finish within limits.drain_timeout_s, answer every client and\n"
            "exit 0. Exit status: 0 after a clean stop, 1 when serving failed (for example the\n"
            "socket is in use), 2 for a usage or configuration error.\n"
            "\n"
            "Built-in defaults for this user (what runs with no configuration file):\n\n");
}

static void check_warn(void *ctx, const char *sentence)
{
    (*(unsigned *)ctx)++;
    fprintf(stderr, "hybridd: warning: %s\n", sentence);
}

static int parse_level(const char *s)
{
    static const struct {
        const char *name;
        int level;
    } levels[] = {{"error", HY_LOG_ERR},   {"warning", HY_LOG_WARNING}, {"notice", HY_LOG_NOTICE},
                  {"info", HY_LOG_INFO},   {"debug", HY_LOG_DEBUG}};
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
        if (strcmp(s, levels[i].name) == 0)
            return levels[i].level;
    return 0;
}

/* Detaches: the parent waits until the child says it serves (or failed) and exits with
 * that, so `hybridd && hybridctl ping` works without a sleep in between. */
static int daemonize(int *ready_fd)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        fprintf(stderr, "hybridd: pipe: %s\n", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "hybridd: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid > 0) {
        char c = 1;
        close(p[1]);
        ssize_t n;
        do
            n = read(p[0], &c, 1);
        while (n < 0 && errno == EINTR);
        _exit(n == 1 && c == 0 ? 0 : EXIT_RUNTIME);
    }
    close(p[0]);
    if (setsid() < 0)
        return -1;
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        close(null);
    }
    *ready_fd = p[1];
    return 0;
}

static unsigned resolve_threads(unsigned configured)
{
    if (configured)
        return configured;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > HY_HOST_MAX_THREADS ? HY_HOST_MAX_THREADS : (unsigned)n;
}

static unsigned resolve_workers(unsigned configured)
{
    unsigned n = resolve_threads(configured);
    return n > HY_PROC_MAX_WORKERS ? HY_PROC_MAX_WORKERS : n;
}

/* The command line. */
struct args {
    const char *config_path, *socket_path; /* NULL: not given */
    bool foreground, check, mpi;
    int level;
};

/* Parses the command line into *a. Returns -1 to go on, or the exit code of a run that ends
 * here: --version, --help, or a usage error (already reported). */
static int parse_args(int argc, char **argv, struct args *a)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},   {"socket", required_argument, NULL, 's'},
        {"foreground", no_argument, NULL, 'f'},     {"check-config", no_argument, NULL, 'C'},
        {"log-level", required_argument, NULL, 'L'}, {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},           {"mpi", no_argument, NULL, 'M'},
        {NULL, 0, NULL, 0}};
    *a = (struct args){.level = HY_LOG_INFO};
    int o;
    while ((o = getopt_long(argc, argv, "c:s:fh", opts, NULL)) != -1) {
        switch (o) {
        case 'c': a->config_path = optarg; break;
        case 's': a->socket_path = optarg; break;
        case 'f': a->foreground = true; break;
        case 'C': a->check = true; break;
        case 'M': a->mpi = a->foreground = true; break; /* mpirun waits on its ranks */
        case 'L':
            if (!(a->level = parse_level(optarg))) {
                fprintf(stderr, "hybridd: unknown log level %s\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'V': printf("hybridd %s\n", HY_VERSION); return 0;
        case 'h': {
            hy_config d;
            hy_config_defaults(&d);
            usage(stdout);
            return hy_config_print(&d, stdout) ? EXIT_RUNTIME : 0;
        }
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "hybridd: unexpected argument %s (see --help)\n", argv[optind]);
        return EXIT_USAGE;
    }
    return -1;
}

/* The configuration in force: the defaults, the file's settings, then --socket. Returns 0,
 * or EXIT_USAGE after reporting why not. */
static int load_config(const struct args *a, hy_config *cfg)
{
    hy_error err = {0};
    hy_config_defaults(cfg);
    if (a->config_path && hy_config_load(cfg, a->config_path, &err) != 0) {
        fprintf(stderr, "hybridd: %s\n", err.msg);
        return EXIT_USAGE;
    }
    if (a->socket_path) {
        if (a->socket_path[0] != '/' || strlen(a->socket_path) >= sizeof cfg->socket_path) {
            fprintf(stderr, "hybridd: --socket %s: needs an absolute path of at most %zu "
                    "bytes\n", a->socket_path, sizeof cfg->socket_path - 1);
            return EXIT_USAGE;
        }
        snprintf(cfg->socket_path, sizeof cfg->socket_path, "%s", a->socket_path);
    }
    return 0;
}

/* MPI mode: "%r" in the socket path becomes the rank, so N ranks on one machine do not
 * collide ("%%" is a "%"); the daemon serves only its own uid, being a per-user service in
 * the user's allocation (docs/mpi.md). Returns 0, or -1 after logging why not. */
static int apply_rank(hy_config *cfg, int rank, char *override, size_t cap)
{
    char out[sizeof cfg->socket_path];
    size_t o = 0;
    for (const char *p = cfg->socket_path; *p; p++) {
        int n = 1;
        if (p[0] == '%' && p[1] == 'r') {
            n = snprintf(out + o, sizeof out - o, "%d", rank);
            p++;
        } else if (p[0] == '%' && p[1] == '%') {
            out[o] = '%';
            p++;
        } else if (o < sizeof out)
            out[o] = *p;
        if (n < 0 || o + (size_t)n >= sizeof out) {
            hy_log(HY_LOG_ERR, "socket path %s: too long with the rank in it", cfg->socket_path);
            return -1;
        }
        o += (size_t)n;
    }
    out[o] = '\0';
    snprintf(cfg->socket_path, sizeof cfg->socket_path, "%s", out);
    snprintf(override, cap, "%s", out); /* a reload keeps the rank's path */
    cfg->n_uids = 1;
    cfg->uids[0] = (uint32_t)geteuid();
    cfg->n_gids = 0;
    return 0;
}

/* --check-config: everything start-up checks short of binding: the socket's group, every
 * level of its directory, what is at its path. What only this user could not do is a warning:
 * the daemon often runs as another user (hybridd.service's User=hybridd). Returns the exit
 * code. */
static int check_config(const struct args *a, const hy_config *cfg)
{
    hy_error err = {0};
    unsigned warnings = 0;
    const char *what = a->config_path ? a->config_path : "defaults";
    if (hy_listener_check(cfg->socket_path, cfg->socket_group, check_warn, &warnings,
                          &err) != 0) {
        fprintf(stderr, "hybridd: %s: %s\n", what, err.msg);
        return EXIT_USAGE;
    }
    if (warnings)
        printf("# %s: configuration OK, with %u warning(s) on stderr about this user; "
               "in force:\n", what, warnings);
    else
        printf("# %s: configuration OK; in force:\n", what);
    return hy_config_print(cfg, stdout) ? EXIT_RUNTIME : 0;
}

/* What the process needs before its first thread: enough fds, and the signals kept for the
 * event loop. */
static void prepare_process(void)
{
    /* Each connection is an fd and so is each queued memfd job: the soft limit (often 1024)
     * is below what limits.clients and limits.queued_jobs allow, so take the hard one. */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &nofile) != 0)
            hy_log(HY_LOG_WARNING, "cannot raise the open-file limit: %s", strerror(errno));
    }

    /* Every thread started from here on (pools, executors, the OpenCL runtime's) inherits
     * this mask, so the signals reach only the event loop's signalfd. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* A client chooses where in its output file the daemon writes (array fds): past a
     * LimitFSIZE= of the unit, the write fails with EFBIG and fails that job, rather than
     * the signal ending the daemon. */
    signal(SIGXFSZ, SIG_IGN);

    /* glibc raises its mmap threshold to the size of each mmapped block it frees (up to 32
     * MiB), after which blocks of jobs' sizes come from per-thread heaps that are rarely given
     * back: under tests/load's mixed jobs the RSS grew by 70 MiB and stayed. A fixed threshold
     * keeps every large block mmapped, so a finished job returns its memory. A failure is
     * not worth a warning: it happens where a sanitizer's allocator stands in for glibc's. */
    (void)mallopt(M_MMAP_THRESHOLD, 256 << 10);
}

/* The socket: the one systemd passed, else one of our own. Returns 0, or -1 after logging
 * why not. */
static int open_listener(hy_listener *l, const hy_config *cfg)
{
    hy_error err = {0};
    if (hy_listener_adopt(l, cfg->socket_path, &err) != 0) {
        hy_log(HY_LOG_ERR, "%s", err.msg);
        return -1;
    }
    if (l->fd < 0 &&
        hy_listener_open(l, cfg->socket_path, cfg->socket_mode, cfg->socket_group, &err)) {
        hy_log(HY_LOG_ERR, "cannot listen: %s", err.msg);
        return -1;
    }
    return 0;
}

/* Sort scratch the engine takes and touches at start (hy_host_prefault): a first sort of 10^7
 * f64 took 3x a warm one, its time in the kernel zeroing fresh scratch pages. This covers a
 * sort of 10^7 8-byte keys on a few threads (95 MB) and is below HY_KEEP_BYTES, so it is no
 * more than the daemon keeps after such a sort anyway; less when the sort limit is lower. */
#define PREFAULT_BYTES ((size_t)128 << 20)

static size_t prefault_bytes(const hy_config *cfg)
{
    uint64_t need = cfg->max_sort_elements * 10 + ((uint64_t)8 << 20); /* 8 bytes + chunks */
    return need < PREFAULT_BYTES ? (size_t)need : PREFAULT_BYTES;
}

/* The CPU executor's buffer for arrays read from files (hybridctl sort --input), faulted in
 * at start for the same reason: the first 10^7 f64 file-to-file sort after start took 0.51 s
 * against 0.21 s for the next, all of it outside the sort, in faulting in that buffer's
 * huge pages (with the kernel compacting memory for them, as THP's defrag=madvise does).
 * 80 MiB holds 10^7 8-byte elements; the executor keeps that much between jobs anyway
 * (HY_KEEP_BYTES). */
#define FILE_PREFAULT_BYTES ((size_t)80 << 20)

static size_t file_prefault_bytes(const hy_config *cfg)
{
    uint64_t need = cfg->max_sort_elements * 8;
    return need < FILE_PREFAULT_BYTES ? (size_t)need : FILE_PREFAULT_BYTES;
}

/* The CPU engine, OpenCL (unless configured off) and the process backend's workers, into
 * set->engines. Returns 0, or -1 after logging which failed; what started is the caller's to
 * close either way. */
static int start_engines(hy_server_setup *set)
{
    const hy_config *cfg = &set->cfg;
    hy_error err = {0};
    set->native_threads = resolve_threads(cfg->native_threads);
    set->locked_threads = resolve_threads(cfg->locked_threads);
    unsigned pool = set->native_threads > set->locked_threads ? set->native_threads
                                                              : set->locked_threads;
    hy_host_config hc = {.threads = pool, .switch_interval_us = cfg->switch_interval_us,
                         .cpus = cfg->cpus, .ncpus = cfg->n_cpus};
    if (hy_host_create(&hc, &set->engines.host, &err) != 0) {
        hy_log(HY_LOG_ERR, "cannot start the CPU engine: %s", err.msg);
        return -1;
    }
    hy_log(HY_LOG_INFO, "CPU engine: %u native thread(s), %u locked-runtime thread(s), switch "
           "interval %u us, pi kernel %s", set->native_threads, set->locked_threads,
           cfg->switch_interval_us, hy_host_pi_kernel());
    if (cfg->opencl_enabled) {
        hy_cl_config cc = {.cache_dir = cfg->cache_dir};
        /* For tests only (tests/daemon/test_daemon_faults.c): a failed kernel build at start. */
        const char *brk = getenv("HYBRIDD_TEST_BREAK_OPENCL");
        cc.test_break_build = brk && strcmp(brk, "1") == 0;
        /* For tests only (test_daemon_faults.c): the k-th job on each device meets a broken
         * queue, as after a device fault, to drive recovery. */
        const char *fault = getenv("HYBRIDD_TEST_CL_FAULT");
        cc.test_fault_job = fault ? (unsigned)strtoul(fault, NULL, 10) : 0;
        /* For tests only (test_daemon_opencl.c): a small cap on one device sort's keys, so
         * that small arrays are sorted in key-range parts as huge ones are. */
        const char *part = getenv("HYBRIDD_TEST_CL_PART_BYTES");
        set->engines.cl_part_bytes = part ? strtoull(part, NULL, 10) : 0;
        uint64_t t0 = hy_now_ns();
        if (hy_cl_open(&cc, &set->engines.cl, &err) != 0) {
            hy_log(HY_LOG_ERR, "cannot start OpenCL: %s", err.msg);
            return -1;
        }
        hy_log(HY_LOG_INFO, "OpenCL: %u device(s) found in %.0f ms",
               hy_cl_device_count(set->engines.cl), (double)(hy_now_ns() - t0) / 1e6);
    } else {
        hy_log(HY_LOG_INFO, "OpenCL: off (opencl.enabled = false)");
    }
    /* After detaching: a worker dies with the thread that started it (PR_SET_PDEATHSIG),
     * and this one runs the event loop until the end. */
    hy_proc_config pc = {.workers = resolve_workers(cfg->process_workers)};
    uint64_t t0 = hy_now_ns();
    if (hy_proc_pool_create(&pc, &set->engines.proc, &err) != 0) {
        hy_log(HY_LOG_ERR, "cannot start the process backend: %s", err.msg);
        return -1;
    }
    hy_log(HY_LOG_INFO, "process backend: %u worker process(es) started in %.1f ms",
           pc.workers, (double)(hy_now_ns() - t0) / 1e6);
    /* After the workers are forked, so that none inherits the scratch. */
    t0 = hy_now_ns();
    size_t prefault = prefault_bytes(cfg);
    hy_host_prefault(set->engines.host, prefault);
    hy_log(HY_LOG_INFO, "CPU engine: %.0f MiB of sort scratch ready in %.1f ms",
           (double)prefault / (1 << 20), (double)(hy_now_ns() - t0) / 1e6);
    set->engines.file_buf_bytes = file_prefault_bytes(cfg);
    return 0;
}

/* The performance history (state.history; memory-only when unset), loaded before any job runs.
 * A file that cannot be trusted is set aside inside, with a warning, and the daemon goes on with
 * an empty one: a history is an aid, never a reason not to serve. Its thread saves at most once
 * a second; hy_history_close, after the server (and its executors) stopped, saves the rest. */
static int open_history(hy_server_setup *set)
{
    char host[HY_HISTORY_HOST_MAX];
    hy_error err = {0};
    hy_history_host_id(host, sizeof host);
    hy_history_options o = {.path = set->cfg.history_path, .host = host, .version = HY_VERSION,
                            .save_every_ms = 1000};
    if (hy_history_open(&o, &set->engines.history, NULL, &err) != 0) {
        hy_log(HY_LOG_ERR, "cannot start the performance history: %s", err.msg);
        return -1;
    }
    return 0;
}

/* The socket listens and the engines run: tell the parent waiting in daemonize it can go. */
static void tell_ready(int *ready_fd)
{
    char zero = 0;
    if (write(*ready_fd, &zero, 1) != 1)
        hy_log(HY_LOG_WARNING, "cannot tell the parent we are ready: %s", strerror(errno));
    close(*ready_fd);
    *ready_fd = -1;
}

int main(int argc, char **argv)
{
    /* A process-backend worker: the pool starts this binary with exactly this argument and
     * its channel on fd 3 (proc/worker.c refuses to run without one). Not in --help. */
    if (argc == 2 && strcmp(argv[1], "--process-worker") == 0)
        return hy_proc_worker_main();

    struct args a;
    int code = parse_args(argc, argv, &a);
    if (code >= 0)
        return code;
    hy_log_init(a.level);

    hy_config cfg;
    if ((code = load_config(&a, &cfg)) != 0)
        return code;
    if (a.check)
        return check_config(&a, &cfg);

    prepare_process();
    /* MPI starts after the signal mask (its threads inherit it) and before the socket,
     * whose path names the rank. */
    hy_mpi *mpi = NULL;
    static char rank_socket[sizeof cfg.socket_path];
    if (a.mpi) {
        hy_error err = {0};
        if (hy_mpi_start(&mpi, &err) != 0) {
            hy_log(HY_LOG_ERR, "--mpi: %s", err.msg);
            return EXIT_RUNTIME;
        }
        hy_log_set_rank(hy_mpi_rank(mpi));
        hy_mpi_set_peer_timeout(mpi, cfg.peer_timeout_s * 1000);
        hy_mpi_buf_keep((size_t)cfg.span_keep_bytes);
        if (apply_rank(&cfg, hy_mpi_rank(mpi), rank_socket, sizeof rank_socket) != 0) {
            hy_mpi_stop(mpi);
            return EXIT_RUNTIME;
        }
        a.socket_path = rank_socket;
        hy_log(HY_LOG_INFO, "MPI: rank %d of %d, socket %s, serving uid %u only",
               hy_mpi_rank(mpi), hy_mpi_size(mpi), cfg.socket_path, (unsigned)geteuid());
    }
    hy_listener listener;
    if (open_listener(&listener, &cfg) != 0) {
        hy_mpi_stop(mpi);
        return EXIT_RUNTIME;
    }
    int ready_fd = -1;
    /* Detach before any thread exists: fork copies only the calling thread. */
    if (!a.foreground && daemonize(&ready_fd) != 0) {
        hy_listener_close(&listener);
        return EXIT_RUNTIME;
    }

    hy_log(HY_LOG_INFO, "hybridd %s starting (pid %d)%s%s", HY_VERSION, (int)getpid(),
           a.config_path ? ", configuration " : ", built-in defaults",
           a.config_path ? a.config_path : "");
    hy_server_setup set = {.cfg = cfg, .config_path = a.config_path,
                           .socket_override = a.socket_path, .listener = &listener,
                           .engines.mpi = mpi};
    code = EXIT_RUNTIME;
    if (start_engines(&set) == 0 && open_history(&set) == 0) {
        if (ready_fd >= 0)
            tell_ready(&ready_fd);
        code = hy_server_run(&set);
    }
    if (ready_fd >= 0)
        close(ready_fd);
    hy_listener_close(&listener);
    /* After the loop has stopped: no executor waits on a span any more. */
    hy_mpi_stop(mpi);
    hy_history_close(set.engines.history);
    hy_proc_pool_destroy(set.engines.proc);
    hy_cl_close(set.engines.cl);
    hy_host_destroy(set.engines.host);
    return code;
}
