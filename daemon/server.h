/* daemon/server: the event loop — the listening socket, every client connection, signals,
 * the executors' completions and a 100 ms timer for progress, timeouts and the drain — all
 * on one thread with epoll, never blocking on any one client. */
#ifndef HY_DAEMON_SERVER_H
#define HY_DAEMON_SERVER_H

#include "config.h"
#include "listen.h"
#include "runner.h"

typedef struct hy_server_setup {
    hy_config cfg;              /* the configuration in force (with --socket applied) */
    const char *config_path;    /* re-read on SIGHUP; NULL: built-in defaults only */
    const char *socket_override; /* --socket: kept across reloads */
    hy_listener *listener;      /* listening; the server closes it when it stops */
    hy_engines engines;         /* the CPU engine and OpenCL (NULL when off) */
    unsigned native_threads, locked_threads; /* resolved pool sizes */
} hy_server_setup;

/* Serves until SIGTERM or SIGINT has drained every job. The signals must already be blocked
 * in every thread (main does it before any thread starts). Returns the exit status. */
int hy_server_run(const hy_server_setup *setup);

#endif
