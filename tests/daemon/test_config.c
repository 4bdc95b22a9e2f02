/* tests/daemon: the configuration — default socket paths, the documented example file, print →
 * load round trip, and the strict loader's errors (parse, unknown key, range, type, missing). */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#ifndef HY_SOURCE_DIR
#error "HY_SOURCE_DIR must name the source tree (tests/daemon/CMakeLists.txt defines it)"
#endif

/* ---- helpers: a temporary file per test, removed at the end ---- */

static char tmp_path[64];

static void tmp_remove(void)
{
    if (tmp_path[0])
        unlink(tmp_path);
    tmp_path[0] = '\0';
}

/* Writes `text` to a fresh file under /tmp and returns its path. */
static const char *write_tmp(const char *text)
{
    tmp_remove();
    snprintf(tmp_path, sizeof tmp_path, "/tmp/hy-test-config-XXXXXX");
    int fd = mkstemp(tmp_path);
    cr_assert(fd >= 0, "mkstemp failed");
    size_t len = strlen(text);
    cr_assert_eq(write(fd, text, len), (ssize_t)len);
    cr_assert_eq(close(fd), 0);
    return tmp_path;
}

/* Loads `text` over the defaults for uid 1000; returns the code, fills *c and *err. */
static int load_text(const char *text, hy_config *c, hy_error *err)
{
    hy_config_defaults_for(c, 1000, "/run/user/1000");
    memset(err, 0, sizeof *err);
    return hy_config_load(c, write_tmp(text), err);
}

/* Expects `text` to be refused with HY_EINVAL and a message that holds every one of `needles`
 * (NULL-terminated), and the struct to be left as it was. */
static void expect_error(const char *text, const char *const *needles)
{
    hy_config c, before;
    hy_error err;
    hy_config_defaults_for(&before, 1000, "/run/user/1000");
    int rc = load_text(text, &c, &err);
    cr_assert_eq(rc, HY_EINVAL, "expected EINVAL for <%s>, got %d (%s)", text, rc, err.msg);
    cr_assert_eq(err.code, HY_EINVAL);
    for (const char *const *n = needles; *n; n++)
        cr_assert(strstr(err.msg, *n), "message <%s> lacks <%s>", err.msg, *n);
    cr_assert(memcmp(&c, &before, sizeof c) == 0, "a failed load changed the config");
}

#define EXPECT_ERROR(text, ...) expect_error((text), (const char *const[]){__VA_ARGS__, NULL})

TestSuite(config, .fini = tmp_remove);

/* ---- defaults ---- */

Test(config, default_socket_root)
{
    hy_config c;
    hy_config_defaults_for(&c, 0, "/run/user/0");
    cr_assert_str_eq(c.socket_path, "/run/hybridd/hybridd.sock");
}

Test(config, default_socket_xdg)
{
    hy_config c;
    hy_config_defaults_for(&c, 1000, "/run/user/1000");
    cr_assert_str_eq(c.socket_path, "/run/user/1000/hybridd.sock");
}

Test(config, default_socket_tmp)
{
    hy_config c;
    hy_config_defaults_for(&c, 1234, NULL);
    cr_assert_str_eq(c.socket_path, "/tmp/hybridd-1234/hybridd.sock");
    /* A relative or empty XDG_RUNTIME_DIR counts as unset. */
    hy_config_defaults_for(&c, 1234, "run/user");
    cr_assert_str_eq(c.socket_path, "/tmp/hybridd-1234/hybridd.sock");
    hy_config_defaults_for(&c, 1234, "");
    cr_assert_str_eq(c.socket_path, "/tmp/hybridd-1234/hybridd.sock");
}

Test(config, default_values)
{
    hy_config c;
    hy_config_defaults(&c);
    cr_assert(c.socket_path[0] == '/');
    cr_assert_eq(c.socket_mode, 0660);
    cr_assert_str_eq(c.socket_group, "");
    cr_assert_eq(c.n_uids, 0);
    cr_assert_eq(c.n_gids, 0);
    cr_assert_eq(c.native_threads, 0);
    cr_assert_eq(c.locked_threads, 0);
    cr_assert_eq(c.switch_interval_us, 5000);
    cr_assert(c.opencl_enabled);
    cr_assert(c.opencl_all_devices);
    cr_assert_str_eq(c.cache_dir, "");
    cr_assert_str_eq(c.history_path, ""); /* no history unless configured */
    cr_assert_eq(c.max_clients, 64);
    cr_assert_eq(c.max_frame_bytes, 1u << 20);
    cr_assert_eq(c.max_queued_jobs, 1024);
    cr_assert_eq(c.max_jobs_per_client, 64);
    cr_assert_eq(c.max_samples, UINT64_C(1) << 40);
    cr_assert_eq(c.max_sort_elements, UINT64_C(1) << 30);
    cr_assert_eq(c.max_job_bytes, UINT64_C(8) << 30);
    cr_assert_eq(c.job_timeout_s, 3600);
    cr_assert_eq(c.drain_timeout_s, 30);
    cr_assert_eq(c.peer_timeout_s, 30);
    cr_assert_eq(c.span_keep_bytes, HY_KEEP_BYTES);
}

/* ---- the example file ---- */

Test(config, example_file_loads)
{
    hy_config c;
    hy_error err = {0};
    hy_config_defaults_for(&c, 1000, NULL);
    int rc = hy_config_load(&c, HY_SOURCE_DIR "/systemd/hybridd.conf", &err);
    cr_assert_eq(rc, 0, "%s", err.msg);
    cr_assert_str_eq(c.socket_path, "/run/hybridd/hybridd.sock");
    cr_assert_eq(c.socket_mode, 0660);
    cr_assert_str_eq(c.socket_group, "hybridd");
    /* Empty lists: the socket's group alone says who may submit (README, "As a service"). */
    cr_assert_eq(c.n_uids, 0);
    cr_assert_eq(c.n_gids, 0);
    cr_assert_eq(c.native_threads, 0);
    cr_assert_eq(c.locked_threads, 0);
    cr_assert_eq(c.switch_interval_us, 5000);
    cr_assert(c.opencl_enabled);
    cr_assert(c.opencl_all_devices);
    cr_assert_str_eq(c.cache_dir, "/var/cache/hybridd");
    cr_assert_eq(c.max_clients, 64);
    cr_assert_eq(c.max_frame_bytes, 1048576);
    cr_assert_eq(c.max_queued_jobs, 1024);
    cr_assert_eq(c.max_jobs_per_client, 64);
    cr_assert_eq(c.max_samples, UINT64_C(1099511627776));
    cr_assert_eq(c.max_sort_elements, UINT64_C(1073741824));
    cr_assert_eq(c.max_job_bytes, UINT64_C(8589934592));
    cr_assert_eq(c.job_timeout_s, 3600);
    cr_assert_eq(c.drain_timeout_s, 30);
    cr_assert_str_eq(c.history_path, "/var/lib/hybridd/history");
}

/* ---- print → load ---- */

static void round_trip(const hy_config *want)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert(f);
    cr_assert_eq(hy_config_print(want, f), 0);
    cr_assert_eq(fclose(f), 0);

    hy_config got;
    hy_error err = {0};
    /* Start from different defaults, so every value must come from the printed text. */
    hy_config_defaults_for(&got, 0, NULL);
    int rc = hy_config_load(&got, write_tmp(buf), &err);
    cr_assert_eq(rc, 0, "%s\n%s", err.msg, buf);
    for (size_t i = 0; i < sizeof got; i++)
        cr_assert_eq(((const unsigned char *)&got)[i], ((const unsigned char *)want)[i],
                     "round trip differs at byte %zu of the struct:\n%s", i, buf);
    free(buf);
}

Test(config, print_load_round_trip_defaults)
{
    hy_config c;
    hy_config_defaults_for(&c, 1000, "/run/user/1000");
    round_trip(&c);
}

/* Sets a string field the way the loader does: the bytes after the string are zero. */
#define SET_STR(field, s)                                                                     \
    do {                                                                                      \
        memset((field), 0, sizeof(field));                                                    \
        snprintf((field), sizeof(field), "%s", (s));                                          \
    } while (0)

Test(config, print_load_round_trip_everything_set)
{
    hy_config c;
    hy_config_defaults_for(&c, 1000, "/run/user/1000");
    SET_STR(c.socket_path, "/tmp/odd \"dir\"\\x/s.sock");
    c.socket_mode = 02770;
    SET_STR(c.socket_group, "gpu-users");
    c.n_uids = 3;
    c.uids[0] = 0;
    c.uids[1] = 1000;
    c.uids[2] = 4000000000u; /* needs libconfig's int64 */
    c.n_gids = 2;
    c.gids[0] = 27;
    c.gids[1] = 44;
    c.native_threads = 256;
    c.locked_threads = 3;
    c.switch_interval_us = 1;
    c.opencl_enabled = false;
    c.opencl_all_devices = false;
    c.n_devices = 2;
    c.devices[0] = 2;
    c.devices[1] = 0;
    SET_STR(c.cache_dir, "/var/cache/hybridd\tx");
    c.hybrid_cpu_devices = true;
    c.n_cpus = 2;
    c.cpus[0] = 1;
    c.cpus[1] = 1023;
    c.max_clients = 65536;
    c.max_frame_bytes = 16u << 20;
    c.max_queued_jobs = 100000;
    c.max_jobs_per_client = 1;
    c.max_samples = INT64_MAX;
    c.max_sort_elements = UINT64_C(1) << 40;
    c.max_job_bytes = 1;
    c.job_timeout_s = 0;
    c.drain_timeout_s = 0;
    c.peer_timeout_s = 86400;
    c.span_keep_bytes = UINT64_C(1) << 48;
    SET_STR(c.history_path, "/var/lib/hybridd/history \"x\"");
    round_trip(&c);

    /* An empty device list (no device) and empty id lists survive too. */
    c.n_devices = 0;
    c.n_uids = 0;
    c.n_gids = 0;
    memset(c.devices, 0, sizeof c.devices);
    memset(c.uids, 0, sizeof c.uids);
    memset(c.gids, 0, sizeof c.gids);
    round_trip(&c);
}

/* ---- what a file may say ---- */

Test(config, empty_file_keeps_defaults)
{
    hy_config c, want;
    hy_error err;
    hy_config_defaults_for(&want, 1000, "/run/user/1000");
    cr_assert_eq(load_text("", &c, &err), 0, "%s", err.msg);
    cr_assert(memcmp(&c, &want, sizeof c) == 0);
    cr_assert_eq(load_text("# only a comment\n", &c, &err), 0, "%s", err.msg);
    cr_assert(memcmp(&c, &want, sizeof c) == 0);
}

Test(config, partial_file_changes_only_its_keys)
{
    hy_config c, want;
    hy_error err;
    hy_config_defaults_for(&want, 1000, "/run/user/1000");
    want.switch_interval_us = 100;
    want.socket_mode = 0600;
    want.opencl_all_devices = false;
    want.n_devices = 2;
    want.devices[0] = 0;
    want.devices[1] = 2;
    int rc = load_text("cpu = { switch_interval_us = 100; };\n"
                       "socket = { mode = 0x180; };\n" /* an integer mode: 0x180 == 0600 */
                       "opencl = { devices = ( 0, 2 ); };\n",
                       &c, &err);
    cr_assert_eq(rc, 0, "%s", err.msg);
    cr_assert(memcmp(&c, &want, sizeof c) == 0);
}

Test(config, int_and_int64_settings)
{
    /* A 64-bit key takes a plain int and an int64 (L) alike. */
    hy_config c;
    hy_error err;
    int rc = load_text("limits = { samples = 5; job_bytes = 4294967297L; };\n", &c, &err);
    cr_assert_eq(rc, 0, "%s", err.msg);
    cr_assert_eq(c.max_samples, 5);
    cr_assert_eq(c.max_job_bytes, UINT64_C(4294967297));
}

Test(config, large_literal_without_suffix)
{
    /* libconfig 1.5 would wrap 4294967297 to 1 without a word: the loader refuses it instead,
     * and leaves alone the same digits in strings, comments and floats. */
    EXPECT_ERROR("# 4294967297\nlimits = {\n  job_bytes = 4294967297;\n};\n", ":3:",
                 "4294967297L");
    EXPECT_ERROR("access = { uids = [ 0xFFFFFFFF ]; };\n", ":1:", "0xFFFFFFFFL");
    /* Negative ones wrap too (-4294967295 would load as 1), and with L libconfig saturates
     * at 2^63 - 1 rather than refuse (fuzz_config found both). */
    EXPECT_ERROR("cpu = { native_threads = -4294967295; };\n", ":1:", "-4294967295");
    EXPECT_ERROR("limits = { samples = 99999999999999999999L; };\n", ":1:",
                 "99999999999999999999");
    hy_config c;
    hy_error err;
    int rc = load_text("/* 99999999999 */ socket = { group = \"g99999999999\"; };\n"
                       "// 99999999999\ncpu = { switch_interval_us = 2147483647; };\n",
                       &c, &err);
    cr_assert_eq(rc, HY_EINVAL); /* the range check, not the literal check */
    cr_assert(strstr(err.msg, "cpu.switch_interval_us"), "%s", err.msg);
}

/* ---- errors ---- */

Test(config, parse_error_names_file_and_line)
{
    hy_config c;
    hy_error err;
    int rc = load_text("cpu = {\n  native_threads = 2;\n  locked_threads = ;\n};\n", &c, &err);
    cr_assert_eq(rc, HY_EINVAL);
    char want[96];
    snprintf(want, sizeof want, "%s:3: ", tmp_path);
    cr_assert(strncmp(err.msg, want, strlen(want)) == 0, "<%s> does not start with <%s>", err.msg,
              want);
}

Test(config, unknown_key_top_level)
{
    EXPECT_ERROR("cpu = { native_threads = 1; };\n\nsockets = { path = \"/x\"; };\n",
                 "sockets", ":3:", "unknown key");
}

Test(config, unknown_key_nested)
{
    EXPECT_ERROR("limits = {\n  clients = 4;\n  client = 5;\n};\n", "limits.client", ":3:",
                 "unknown key");
}

Test(config, top_level_scalar_is_unknown)
{
    EXPECT_ERROR("verbose = true;\n", "verbose", ":1:");
}

Test(config, section_must_be_group)
{
    EXPECT_ERROR("cpu = 4;\n", "cpu", ":1:", "group");
}

Test(config, out_of_range_values)
{
    EXPECT_ERROR("cpu = { switch_interval_us = 0; };", "cpu.switch_interval_us", "0",
                 "1..1000000");
    EXPECT_ERROR("limits = { clients = 0; };", "limits.clients", "1..65536");
    EXPECT_ERROR("cpu = { native_threads = 257; };", "cpu.native_threads", "257", "0..256");
    EXPECT_ERROR("cpu = { locked_threads = 257; };", "cpu.locked_threads", "257");
    EXPECT_ERROR("limits = { frame_bytes = 10; };", "limits.frame_bytes", "10", "65536..16777216");
    /* The protocol caps a payload at 16 MiB: a larger frame limit could never be used. */
    EXPECT_ERROR("limits = { frame_bytes = 16777217; };", "limits.frame_bytes", "16777217",
                 "65536..16777216");
    EXPECT_ERROR("socket = { mode = \"0999\"; };", "socket.mode", "0999");
    EXPECT_ERROR("socket = { mode = 4096; };", "socket.mode", "4096");
    EXPECT_ERROR("opencl = { devices = [ -1 ]; };", "opencl.devices[0]", "-1");
    EXPECT_ERROR("opencl = { devices = [ 1, 1 ]; };", "opencl.devices[1]", "twice");
    EXPECT_ERROR("opencl = { devices = \"some\"; };", "opencl.devices", "all");
    EXPECT_ERROR("access = { uids = [ -5 ]; };", "access.uids[0]", "-5");
    EXPECT_ERROR("cpu = { cpus = [ 0, 1024 ]; };", "cpu.cpus[1]", "1024");
    EXPECT_ERROR("opencl = { hybrid_cpu_devices = 1; };", "opencl.hybrid_cpu_devices");
    EXPECT_ERROR("limits = { samples = -1L; };", "limits.samples", "-1");
    EXPECT_ERROR("limits = { sort_elements = 2199023255552L; };", "limits.sort_elements");
    EXPECT_ERROR("limits = { span_keep_bytes = -1; };", "limits.span_keep_bytes", "-1");
    EXPECT_ERROR("limits = { span_keep_bytes = 281474976710657L; };", "limits.span_keep_bytes",
                 "281474976710657");
    EXPECT_ERROR("socket = { path = \"relative.sock\"; };", "socket.path", "absolute");
    EXPECT_ERROR("socket = { path = \"\"; };", "socket.path", "empty");
    /* The daemon runs in /: a relative history path would land somewhere unexpected. */
    EXPECT_ERROR("state = { history = \"history\"; };", "state.history", "absolute");
    EXPECT_ERROR("state = { history = 1; };", "state.history", "string");
    EXPECT_ERROR("state = { journal = \"/x\"; };", "state.journal");
}

Test(config, too_long_strings)
{
    char text[512];
    char longpath[200];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    snprintf(text, sizeof text, "socket = { path = \"%s\"; };", longpath);
    EXPECT_ERROR(text, "socket.path", "107");
}

Test(config, wrong_types)
{
    EXPECT_ERROR("cpu = { native_threads = \"4\"; };", "cpu.native_threads", "string");
    EXPECT_ERROR("limits = { clients = 1.5; };", "limits.clients", "float");
    EXPECT_ERROR("opencl = { enabled = 1; };", "opencl.enabled", "integer");
    EXPECT_ERROR("socket = { path = 5; };", "socket.path", "integer");
    EXPECT_ERROR("access = { uids = 1000; };", "access.uids", "integer");
    EXPECT_ERROR("access = { gids = ( \"wheel\" ); };", "access.gids[0]", "string");
}

Test(config, missing_file)
{
    hy_config c, before;
    hy_error err = {0};
    hy_config_defaults_for(&c, 1000, NULL);
    before = c;
    int rc = hy_config_load(&c, "/nonexistent/hybridd.conf", &err);
    cr_assert_eq(rc, HY_ESYS);
    cr_assert(strstr(err.msg, "/nonexistent/hybridd.conf"), "%s", err.msg);
    cr_assert(strstr(err.msg, "No such file"), "%s", err.msg);
    cr_assert(memcmp(&c, &before, sizeof c) == 0);
}

/* ---- what a reload applies: the code's one list against hybridd.conf(5) ---- */

/* hy_config_diff_fn that writes "key old -> new class" lines to a FILE. */
static void diff_line(void *ctx, const char *key, const char *old_value, const char *new_value,
                      hy_config_reload reload)
{
    fprintf(ctx, "%s %s -> %s %d\n", key, old_value, new_value, (int)reload);
}



/* Whether `key` occurs in [from, to) as a whole name, not the start of a longer one. */
static bool names_key(const char *from, const char *to, const char *key)
{
    size_t n = strlen(key);
    for (const char *p = from; (p = strstr(p, key)) && p + n <= to; p++) {
        char next = p[n];
        if (!((next >= 'a' && next <= 'z') || (next >= '0' && next <= '9') || next == '_'))
            return true;
    }
    return false;
}

Test(config, reload_classes_match_the_man_page)
{
    static char man[1 << 16];
    FILE *f = fopen(HY_SOURCE_DIR "/docs/man/hybridd.conf.5", "r");
    cr_assert_not_null(f, "cannot open hybridd.conf.5");
    size_t len = fread(man, 1, sizeof man - 1, f);
    fclose(f);
    man[len] = '\0';
    const char *sec = strstr(man, "\n.SH RELOADING\n");
    cr_assert_not_null(sec, "hybridd.conf.5 has no RELOADING section");
    const char *end = strstr(sec + 1, "\n.SH ");
    cr_assert_not_null(end);
    const char *apply = strstr(sec, "Applied at once:");
    const char *later = strstr(sec, "For connections made after the reload:");
    const char *restart = strstr(sec, "until a restart:");
    cr_assert(apply && later && restart && apply < later && later < restart && restart < end,
              "RELOADING lost its three parts");

    hy_config_key_info keys[64];
    size_t n = hy_config_keys(keys, 64);
    cr_assert(n > 20 && n <= 64, "%zu keys", n);
    unsigned restarts = 0;
    for (size_t i = 0; i < n; i++) {
        const char *k = keys[i].name;
        switch (keys[i].reload) {
        case HY_RELOAD_APPLY:
            cr_expect(names_key(apply, later, k) && !names_key(later, end, k),
                      "hybridd.conf.5 does not list %s as applied at once", k);
            break;
        case HY_RELOAD_NEW_CONNECTIONS:
            cr_expect(names_key(later, restart, k) && !names_key(apply, later, k) &&
                      !names_key(restart, end, k),
                      "hybridd.conf.5 does not list %s as applied to new connections", k);
            break;
        case HY_RELOAD_RESTART:
            restarts++;
            cr_expect(names_key(restart, end, k) && !names_key(apply, restart, k),
                      "hybridd.conf.5 does not list %s as needing a restart", k);
            break;
        }
    }
    cr_expect_eq(restarts, 10u, "socket.path, 3 cpu pool sizes, cpu.cpus, 4 opencl keys, "
                                "state.history");
}

/* hy_config_diff names exactly the keys that changed, old value first, as the file writes
 * them; restart keys keep their running values. */
Test(config, diff_names_changed_keys_with_both_values)
{
    hy_config a, b;
    hy_config_defaults_for(&a, 1000, NULL);
    b = a;
    b.max_jobs_per_client = 16;
    b.process_workers = 3;
    b.socket_mode = 0600;
    snprintf(b.socket_group, sizeof b.socket_group, "users");
    b.n_gids = 2;
    b.gids[0] = 100;
    b.gids[1] = 27;
    b.opencl_all_devices = false;
    b.n_devices = 1;
    b.devices[0] = 2;
    static char out[4096];
    FILE *f = fmemopen(out, sizeof out, "w");
    cr_assert_not_null(f);
    hy_config_diff(&a, &b, diff_line, f);
    fclose(f);
    cr_assert_str_eq(out, "socket.mode \"0660\" -> \"0600\" 0\n"
                          "socket.group \"\" -> \"users\" 0\n"
                          "access.gids [ ] -> [ 100, 27 ] 1\n"
                          "cpu.process_workers 0 -> 3 2\n"
                          "opencl.devices \"all\" -> [ 2 ] 2\n"
                          "limits.jobs_per_client 64 -> 16 0\n");
    /* Values are compared whole: paths that differ only past what the log shows differ. */
    hy_config c = a, d = a;
    memset(c.cache_dir, 'x', 200);
    memset(d.cache_dir, 'x', 200);
    c.cache_dir[0] = d.cache_dir[0] = '/';
    d.cache_dir[150] = 'y';
    memset(out, 0, sizeof out);
    f = fmemopen(out, sizeof out, "w");
    cr_assert_not_null(f);
    hy_config_diff(&c, &d, diff_line, f);
    fclose(f);
    char want[512];
    snprintf(want, sizeof want, "opencl.cache_dir \"%.200s\" -> \"%.200s\" 2\n", c.cache_dir,
             d.cache_dir);
    cr_expect_str_eq(out, want);

    hy_config_keep_restart_keys(&b, &a);
    cr_expect_eq(b.process_workers, 0u);
    cr_expect(b.opencl_all_devices);
    cr_expect_eq(b.n_devices, 0u);
    cr_expect_eq(b.max_jobs_per_client, 16u);
    cr_expect_eq(b.socket_mode, 0600u);
}
