/* tests/daemon: arrays that travel as the client's own file fds (array 4, feature FILE_FDS) —
 * the daemon reads the elements from the input's position and writes the sorted ones at the
 * output's, on every CPU backend, leaving the bytes around them and the fds' positions alone;
 * every fd it cannot safely use is refused with a code and a sentence, a file cut short or a
 * write refused fails only its own job, and the daemon serves on after each. */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "suite.h"

static void start(void)
{
    hyt_conf k = hyt_conf_default();
    k.sort_elements = 4000000; /* room for an array of several of the daemon's 8 MiB steps */
    suite_start(&k);
}

static void finish(void);

TestSuite(daemon_fds, .init = start, .fini = finish, .timeout = 120);

static hyt_client *fds_client(void)
{
    hyt_client *c = hyt_connect(D.sock);
    cr_assert_not_null(c, "cannot connect to %s", D.sock);
    int rc = hyt_hello(c, HY_FEATURE_MEMFD | HY_FEATURE_PROGRESS | HY_FEATURE_FILE_FDS);
    cr_assert_eq(rc, 0, "HELLO: %d %s", rc, c->err.msg);
    cr_assert(c->welcome.features & HY_FEATURE_FILE_FDS, "WELCOME did not grant FILE_FDS "
              "(features 0x%x)", c->welcome.features);
    return c;
}

static hy_msg_submit fds_sort(uint16_t backend, uint32_t threads, int dtype, uint64_t n)
{
    hy_msg_submit s = hyt_sort_memfd(backend, threads, dtype, n);
    s.array = HY_ARRAY_FDS;
    return s;
}

/* The bytes that stand before the array in each file: as a .npy header would, but of odd
 * lengths, so that nothing can pass by assuming an aligned or zero position. */
static const char IN_PRE[] = "input header, 37 bytes, not aligned.";
static const char OUT_PRE[] = "output header: 29 bytes here";
#define IN_OFF (sizeof IN_PRE)
#define OUT_OFF (sizeof OUT_PRE)

/* Where the test's files go: the daemon's directory, where that is on a file system the
 * daemon takes fds on (hy_file_array_check: ext4, tmpfs, ...); in a container whose /tmp is
 * an overlay, /dev/shm (tmpfs). */
static char shm_dir[128]; /* set when the files went to /dev/shm */

static const char *files_dir_made(void)
{
    return shm_dir[0] ? shm_dir : NULL;
}

static const char *files_dir(void)
{
    static char dir[128];
    if (dir[0])
        return dir;
    const char *cands[] = {D.dir, "/dev/shm"};
    for (size_t i = 0; i < 2; i++) {
        char probe[192];
        snprintf(probe, sizeof probe, "%s/hyt-probe-XXXXXX", cands[i]);
        int fd = mkostemp(probe, O_CLOEXEC);
        if (fd < 0)
            continue;
        unlink(probe);
        hy_file_array fa;
        hy_error err;
        bool ok = hy_file_array_check(fd, fd, 0, &fa, &err) == 0;
        close(fd);
        if (ok && i == 0) {
            snprintf(dir, sizeof dir, "%s", D.dir);
            return dir;
        }
        if (ok) {
            snprintf(dir, sizeof dir, "/dev/shm/hyt-fds-%d", (int)getpid());
            cr_assert(mkdir(dir, 0700) == 0 || errno == EEXIST, "mkdir %s", dir);
            snprintf(shm_dir, sizeof shm_dir, "%s", dir);
            return dir;
        }
    }
    suite_skip("neither %s nor /dev/shm is on a file system hybridd takes fds on", D.dir);
    return NULL;
}

/* The files a test made outside the daemon's directory (which suite_stop removes). */
static void finish(void)
{
    static const char *const names[] = {"in.bin", "out.bin", "wo.bin", "ro.bin", "ap.bin"};
    const char *dir = files_dir_made();
    if (dir) {
        char path[256];
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            unlink(path);
        }
        rmdir(dir);
    }
    suite_stop();
}

/* A new file in the test's directory holding `pre` then `data`, opened with `flags` and
 * positioned right after `pre`. */
static int make_file(const char *name, const void *pre, size_t npre, const void *data,
                     size_t bytes, int flags)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", files_dir(), name);
    int w = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    cr_assert_geq(w, 0, "create %s", path);
    cr_assert_eq(write(w, pre, npre), (ssize_t)npre);
    if (bytes)
        cr_assert_eq(write(w, data, bytes), (ssize_t)bytes);
    close(w);
    int fd = open(path, flags | O_CLOEXEC);
    cr_assert_geq(fd, 0, "open %s", path);
    cr_assert_eq(lseek(fd, (off_t)npre, SEEK_SET), (off_t)npre);
    return fd;
}

/* The whole of a file through its fd, from byte 0 (pread: the position stays). */
static void *file_bytes(int fd, size_t *len)
{
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    *len = (size_t)st.st_size;
    char *b = malloc(*len ? *len : 1);
    cr_assert_not_null(b);
    cr_assert_eq(pread(fd, b, *len, 0), (ssize_t)*len);
    return b;
}

/* One sort through files: the output holds OUT_PRE then exactly the reference order; the
 * input is untouched; both fds are where the client left them. */
static void sort_through_files(hyt_client *c, uint16_t backend, uint32_t threads,
                               uint16_t transport, int dtype, size_t n, uint64_t seed)
{
    char what[96];
    snprintf(what, sizeof what, "%s %u threads transport %u, %zu %s",
             hy_backend_name(backend), threads, transport, n, hy_dtype_name(dtype));
    size_t bytes = n * hy_dtype_size(dtype);
    void *data = malloc(bytes ? bytes : 1), *want = malloc(bytes ? bytes : 1);
    cr_assert(data && want);
    hyt_fill(dtype, data, n, seed);
    memcpy(want, data, bytes);
    hyt_sort_ref(dtype, want, n);
    int in = make_file("in.bin", IN_PRE, IN_OFF, data, bytes, O_RDONLY);
    int out = make_file("out.bin", OUT_PRE, OUT_OFF, NULL, 0, O_RDWR);
    hy_msg_submit s = fds_sort(backend, threads, dtype, n);
    s.transport = transport;
    int fds[2] = {in, out};
    hyt_job j;
    suite_run_ok(c, &s, fds, 2, &j, what);
    cr_expect_eq(j.nrows, 1, "%s: %u rows", what, j.nrows);
    cr_expect_eq(j.rows[0].n, n, "%s: row n %llu", what, (unsigned long long)j.rows[0].n);
    cr_expect_eq(j.array_bytes, 0, "%s: the RESULT carried %u array bytes", what,
                 j.array_bytes);
    hyt_job_release(c, &j);

    size_t len;
    char *got = file_bytes(out, &len);
    cr_assert_eq(len, OUT_OFF + bytes, "%s: the output holds %zu bytes, want %zu", what, len,
                 OUT_OFF + bytes);
    cr_expect_eq(memcmp(got, OUT_PRE, OUT_OFF), 0, "%s: the bytes before the array changed",
                 what);
    cr_expect_eq(memcmp(got + OUT_OFF, want, bytes), 0, "%s: the output is not the "
                 "reference order", what);
    free(got);
    char *again = file_bytes(in, &len);
    cr_expect_eq(len, IN_OFF + bytes, "%s: the input's length changed", what);
    cr_expect_eq(memcmp(again + IN_OFF, data, bytes), 0, "%s: the input changed", what);
    free(again);
    cr_expect_eq(lseek(in, 0, SEEK_CUR), (off_t)IN_OFF, "%s: the input fd moved", what);
    cr_expect_eq(lseek(out, 0, SEEK_CUR), (off_t)OUT_OFF, "%s: the output fd moved", what);
    close(in);
    close(out);
    free(data);
    free(want);
}

Test(daemon_fds, every_cpu_backend_sorts_from_the_input_into_the_output)
{
    hyt_client *c = fds_client();
    const struct {
        uint16_t backend, transport;
        uint32_t threads;
    } rows[] = {
        {HY_BACKEND_SERIAL, 0, 1},
        {HY_BACKEND_NATIVE, 0, 2},
        {HY_BACKEND_LOCKED, 0, 2},
        {HY_BACKEND_PROCESS, HY_TRANSPORT_PIPE, 2},
        {HY_BACKEND_PROCESS, HY_TRANSPORT_SHM, 2},
    };
    const int dtypes[] = {HY_DT_I32, HY_DT_U32, HY_DT_I64, HY_DT_U64, HY_DT_F32, HY_DT_F64};
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++)
        for (size_t d = 0; d < sizeof dtypes / sizeof dtypes[0]; d++)
            sort_through_files(c, rows[r].backend, rows[r].threads, rows[r].transport,
                               dtypes[d], 20011 + 97 * d, 40 + r * 8 + d);
    /* Several of the daemon's steps, the last one partial; then a smaller array, which reuses
     * the buffer the larger one left; then none at all. */
    sort_through_files(c, HY_BACKEND_NATIVE, 2, 0, HY_DT_U64, 2500001, 7);
    sort_through_files(c, HY_BACKEND_NATIVE, 2, 0, HY_DT_F64, 1000003, 8);
    sort_through_files(c, HY_BACKEND_NATIVE, 2, 0, HY_DT_F32, 0, 9);
    suite_client_clean(c);
    hyt_close(c);
}

Test(daemon_fds, fds_it_cannot_use_are_refused_and_the_connection_goes_on)
{
    hyt_client *c = fds_client();
    uint32_t data[64];
    hyt_fill(HY_DT_U32, data, 64, 3);
    hy_msg_submit s = fds_sort(HY_BACKEND_NATIVE, 2, HY_DT_U32, 64);
    int in = make_file("in.bin", IN_PRE, IN_OFF, data, sizeof data, O_RDONLY);
    int out = make_file("out.bin", OUT_PRE, OUT_OFF, NULL, 0, O_RDWR);
    int p[2];
    cr_assert_eq(pipe(p), 0);

    int pipe_in[2] = {p[0], out};
    suite_run_refused(c, &s, pipe_in, 2, HY_EINVAL, 0, "a pipe as the input");
    int pipe_out[2] = {in, p[1]};
    suite_run_refused(c, &s, pipe_out, 2, HY_EINVAL, 0, "a pipe as the output");

    int wronly = make_file("wo.bin", IN_PRE, IN_OFF, data, sizeof data, O_WRONLY);
    int unreadable[2] = {wronly, out};
    suite_run_refused(c, &s, unreadable, 2, HY_EINVAL, 0, "an input open for writing only");
    int rdonly = make_file("ro.bin", OUT_PRE, OUT_OFF, NULL, 0, O_RDONLY);
    int unwritable[2] = {in, rdonly};
    suite_run_refused(c, &s, unwritable, 2, HY_EINVAL, 0, "an output open for reading only");
    int append = make_file("ap.bin", OUT_PRE, OUT_OFF, NULL, 0, O_WRONLY | O_APPEND);
    int appending[2] = {in, append};
    suite_run_refused(c, &s, appending, 2, HY_EINVAL, 0, "an output open with O_APPEND");

    /* The input holds 64 elements from its position: 65 do not fit, nor do 64 from one byte
     * further on. */
    hy_msg_submit more = fds_sort(HY_BACKEND_NATIVE, 2, HY_DT_U32, 65);
    int both[2] = {in, out};
    suite_run_refused(c, &more, both, 2, HY_EINVAL, 0, "an input shorter than n elements");
    cr_assert_eq(lseek(in, IN_OFF + 1, SEEK_SET), (off_t)IN_OFF + 1);
    suite_run_refused(c, &s, both, 2, HY_EINVAL, 0, "an input positioned too far on");
    cr_assert_eq(lseek(in, IN_OFF, SEEK_SET), (off_t)IN_OFF);

    suite_run_refused(c, &s, both, 1, HY_EPROTO, 0, "array fds with one fd");
    int three[3] = {in, out, out};
    suite_run_refused(c, &s, three, 3, HY_EPROTO, 0, "array fds with three fds");
    suite_run_refused(c, &s, NULL, 0, HY_EPROTO, 0, "array fds with no fd");
    hy_msg_submit cmp = s;
    cmp.job = HY_JOB_COMPARE_SORT;
    cmp.backend = 0;
    cmp.threads = 0;
    suite_run_refused(c, &cmp, both, 2, HY_EINVAL, 0, "array fds on a compare");
    hy_msg_submit across = s;
    across.ranks = 2;
    suite_run_refused(c, &across, both, 2, HY_EINVAL, 0, "array fds across two ranks");

    /* Regular files that are not on a local file system's mount: a pseudo-file of /proc
     * (a root daemon's write would reach its handler with the daemon's rights), and a
     * memfd (no mount the daemon's table lists: it travels as array 2). */
    int proc = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    cr_assert_geq(proc, 0);
    int from_proc[2] = {proc, out};
    suite_run_refused(c, &s, from_proc, 2, HY_EINVAL, 0, "an input under /proc");
    int mfd;
    void *map;
    hy_error err;
    cr_assert_eq(hy_memfd_create("hyt-out", 4096, &mfd, &map, &err), 0, "%s", err.msg);
    hy_memfd_unmap(map, 4096);
    int to_memfd[2] = {in, mfd};
    suite_run_refused(c, &s, to_memfd, 2, HY_EINVAL, 0, "a memfd as the output");
    /* sysfs says 4096 bytes for its files, so only the file system's type refuses this one
     * (where /sys is mounted: a bare chroot may not have it). */
    int sys = open("/sys/devices/system/cpu/online", O_RDONLY | O_CLOEXEC);
    if (sys >= 0) {
        struct stat st;
        cr_assert_eq(fstat(sys, &st), 0);
        if (st.st_size >= (off_t)sizeof data) {
            int from_sys[2] = {sys, out};
            suite_run_refused(c, &s, from_sys, 2, HY_EINVAL, 0, "an input under /sys");
        }
        close(sys);
    }
    close(proc);
    close(mfd);
    int opath = open(D.dir, O_PATH | O_CLOEXEC);
    cr_assert_geq(opath, 0);
    int with_opath[2] = {opath, out};
    suite_run_refused(c, &s, with_opath, 2, HY_EINVAL, 0, "an O_PATH fd as the input");
    close(opath);

    /* A connection that did not ask for FILE_FDS. */
    hyt_client *plain = suite_client();
    suite_run_refused(plain, &s, both, 2, HY_EPROTO, 0, "array fds without FILE_FDS");
    hyt_close(plain);

    /* After all that, the same connection and the same files sort. */
    hyt_job j;
    suite_run_ok(c, &s, both, 2, &j, "a good fds sort after the refusals");
    hyt_job_release(c, &j);
    size_t len;
    uint32_t *got = file_bytes(out, &len);
    cr_assert_eq(len, OUT_OFF + sizeof data);
    hyt_sort_ref(HY_DT_U32, data, 64);
    cr_expect_eq(memcmp((char *)got + OUT_OFF, data, sizeof data), 0,
                 "the good sort after the refusals wrote the wrong order");
    free(got);
    int fds[] = {in, out, p[0], p[1], wronly, rdonly, append};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        close(fds[i]);
    suite_client_clean(c);
    hyt_close(c);
}

/* The checks pass at SUBMIT; what happens to the files while the job waits in the queue is
 * found when it runs: a job, not the daemon, fails. */
Test(daemon_fds, a_file_cut_short_while_queued_fails_only_its_job)
{
    hyt_client *c = fds_client();
    size_t n = 100000;
    uint64_t *data = malloc(n * 8);
    cr_assert_not_null(data);
    hyt_fill(HY_DT_U64, data, n, 11);
    int in = make_file("in.bin", IN_PRE, IN_OFF, data, n * 8, O_RDWR);
    int out = make_file("out.bin", OUT_PRE, OUT_OFF, NULL, 0, O_RDWR);

    /* A long pi holds the CPU executor (1e11 samples: about a minute) while the sort waits;
     * the input is cut short, then the pi is cancelled and the sort runs. */
    hy_msg_submit pi = hyt_pi(HY_BACKEND_NATIVE, 2, 100000000000ull, 1);
    hyt_job a, b;
    cr_assert_eq(hyt_submit(c, &pi, NULL, 0, &a), 0);
    cr_assert_eq(hyt_wait_accepted(c, &a, HYT_WAIT_MS), 0);
    cr_assert(a.accepted, "the long pi was refused: %s", a.message);
    hy_msg_submit s = fds_sort(HY_BACKEND_NATIVE, 2, HY_DT_U64, n);
    int both[2] = {in, out};
    cr_assert_eq(hyt_submit(c, &s, both, 2, &b), 0);
    cr_assert_eq(hyt_wait_accepted(c, &b, HYT_WAIT_MS), 0);
    cr_assert(b.accepted, "the fds sort was refused: %s", b.message);
    cr_assert_eq(ftruncate(in, (off_t)(IN_OFF + n * 4)), 0);
    cr_assert_eq(hyt_cancel(c, a.job_id, NULL), 0);
    cr_assert_eq(hyt_wait_final(c, &a, HYT_WAIT_MS), 0);
    cr_expect_eq(a.code, HY_ECANCELED, "the pi ended with %s", suite_code(a.code));
    cr_assert_eq(hyt_wait_final(c, &b, HYT_WAIT_MS), 0);
    cr_expect_eq(b.code, HY_EINVAL, "a sort of a file cut short ended with %s \"%s\"",
                 suite_code(b.code), b.message);
    cr_expect(strstr(b.message, "truncated") != NULL, "the sentence does not say why: \"%s\"",
              b.message);
    cr_expect_eq(b.error_job_id, b.job_id);
    hyt_job_release(c, &a);
    hyt_job_release(c, &b);

    cr_assert_eq(pwrite(in, data, n * 8, IN_OFF), (ssize_t)(n * 8));
    /* The daemon serves on, and the same connection sorts the restored file. */
    hyt_job j;
    suite_run_ok(c, &s, both, 2, &j, "an fds sort after the failures");
    hyt_job_release(c, &j);
    size_t len;
    char *got = file_bytes(out, &len);
    cr_assert_eq(len, OUT_OFF + n * 8);
    hyt_sort_ref(HY_DT_U64, data, n);
    cr_expect_eq(memcmp(got + OUT_OFF, data, n * 8), 0, "the sort after the failures is wrong");
    free(got);
    free(data);
    close(in);
    close(out);
    suite_client_clean(c);
    hyt_close(c);
}

/* A daemon whose files may not grow past 4 MiB (RLIMIT_FSIZE, as a unit's LimitFSIZE= sets
 * it), so that a client's output cannot take its array: the write fails that job with the
 * system's refusal, and the daemon, which ignores SIGXFSZ, serves on. */
static void start_fsize_limited(void)
{
    struct rlimit old, lim;
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)4 << 20;
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    start();
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0); /* the test's own files are larger */
}

TestSuite(daemon_fds_fsize, .init = start_fsize_limited, .fini = finish, .timeout = 120);

Test(daemon_fds_fsize, a_write_the_file_refuses_fails_only_its_job)
{
    hyt_client *c = fds_client();
    size_t n = 1000000; /* 8 MB: past the daemon's 4 MiB */
    uint64_t *data = malloc(n * 8);
    cr_assert_not_null(data);
    hyt_fill(HY_DT_U64, data, n, 12);
    int in = make_file("in.bin", IN_PRE, IN_OFF, data, n * 8, O_RDONLY);
    int out = make_file("out.bin", OUT_PRE, OUT_OFF, NULL, 0, O_RDWR);
    hy_msg_submit s = fds_sort(HY_BACKEND_NATIVE, 2, HY_DT_U64, n);
    int both[2] = {in, out};
    hyt_job w;
    cr_assert_eq(hyt_run(c, &s, both, 2, &w), 0, "no answer: %s", c->err.msg);
    cr_expect_eq(w.code, HY_ESYS, "a write past the file size limit ended with %s \"%s\"",
                 suite_code(w.code), w.message);
    cr_expect(strstr(w.message, "writing the output") != NULL, "\"%s\"", w.message);
    hyt_job_release(c, &w);
    /* The daemon serves on: a smaller array fits. */
    hy_msg_submit small = fds_sort(HY_BACKEND_NATIVE, 2, HY_DT_U64, 1000);
    cr_assert_eq(ftruncate(out, OUT_OFF), 0);
    hyt_job j;
    suite_run_ok(c, &small, both, 2, &j, "a small fds sort after a refused write");
    hyt_job_release(c, &j);
    size_t len;
    char *got = file_bytes(out, &len);
    cr_expect_eq(len, OUT_OFF + 1000 * 8);
    hyt_sort_ref(HY_DT_U64, data, 1000);
    cr_expect_eq(memcmp(got + OUT_OFF, data, 1000 * 8), 0, "the small sort is wrong");
    free(got);
    free(data);
    close(in);
    close(out);
    hyt_close(c);
}
