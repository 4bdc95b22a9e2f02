/* daemon/log: one line per event on stderr, with a level. Under systemd (stderr connected to
 * the journal) each line starts with the "<N>" priority prefix journald understands; on a
 * terminal or in a file it starts with a timestamp and the level's name. */
#ifndef HY_DAEMON_LOG_H
#define HY_DAEMON_LOG_H

/* syslog's numbers, which journald's prefixes use too. */
enum hy_log_level {
    HY_LOG_ERR = 3,
    HY_LOG_WARNING = 4,
    HY_LOG_NOTICE = 5,
    HY_LOG_INFO = 6,
    HY_LOG_DEBUG = 7,
};

/* Decides the line format once (journal or not) and the most verbose level written. */
void hy_log_init(int max_level);
/* Under MPI: every line after this names the rank ("rank 3: ..."). */
void hy_log_set_rank(int rank);
/* Writes one line with a single write(2), so lines from several threads never interleave. */
void hy_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
