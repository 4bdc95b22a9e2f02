/* tests/fuzz: libFuzzer target for hybridctl's .npy reader. The input is a whole file: it goes
 * into a memfd that hc_npy_read opens as /proc/self/fd/N, with a 1 MiB data limit. Checked:
 *   - a refusal leaves the array all zero and says why in one line that names the file, with
 *     HY_EINVAL or HY_ELIMIT (never HY_ESYS: a memfd can always be read);
 *   - an accepted file holds a known dtype, at most max_bytes of data, and its data are the
 *     file's last n * size bytes, byte for byte;
 *   - read again with a 256-byte limit, the answer is the same, except that an accepted file
 *     with more data than that is refused with HY_ELIMIT (the limit is the reader's last check,
 *     and the only one a 4 KiB input could not reach with 1 MiB);
 *   - hc_is_sorted agrees with itself: when it names a first bad index i, the prefix up to i is
 *     sorted and the pair (i, i+1) is not; it also runs over the raw input as every dtype;
 *   - what was read, written back with hc_npy_write (as .npy and raw), reads back the same. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "client.h"
#include "fuzz_memfd.h"

#define MAX_BYTES ((size_t)1 << 20)
#define SMALL_MAX 256u

static char tmpdir[64];
static uint64_t aligned[(4096 + 4096) / 8]; /* the input, 8-aligned, for the raw order checks */

static void cleanup(void)
{
    if (tmpdir[0])
        rmdir(tmpdir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* hc_npy_write renames a temporary file into place: give it a directory of its own, in
     * memory when /dev/shm exists. */
    snprintf(tmpdir, sizeof tmpdir, "%s", "/dev/shm/fuzz_npy.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        snprintf(tmpdir, sizeof tmpdir, "%s", "/tmp/fuzz_npy.XXXXXX");
        if (!mkdtemp(tmpdir))
            abort();
    }
    atexit(cleanup);
    return 0;
}

static void check_order(const void *data, int dtype, size_t n)
{
    size_t bad = SIZE_MAX;
    if (hc_is_sorted(data, dtype, n, &bad)) {
        if (bad != SIZE_MAX)
            abort(); /* left alone when sorted */
        return;
    }
    size_t esize = hy_dtype_size(dtype);
    if (bad == SIZE_MAX || bad + 1 >= n)
        abort();
    if (!hc_is_sorted(data, dtype, bad + 1, NULL))
        abort(); /* bad is the FIRST descent */
    if (hc_is_sorted((const char *)data + bad * esize, dtype, 2, NULL))
        abort();
}

/* Writes `a` to a file and reads it back: the same dtype, count and bytes. */
static void write_back(const hc_array *a, bool raw)
{
    char path[96];
    snprintf(path, sizeof path, "%s/a.npy", tmpdir);
    hy_error err = {0};
    if (hc_npy_write(path, a, raw, &err) != 0) {
        fprintf(stderr, "hc_npy_write: %s\n", err.msg);
        abort();
    }
    hc_array b;
    int rc = raw ? hc_raw_read(path, a->dtype, &b, MAX_BYTES, &err)
                 : hc_npy_read(path, &b, MAX_BYTES, &err);
    /* Raw values that happen to begin with the .npy magic are refused as "a .npy file"
     * (documented): the one input a raw round trip may not return. */
    static const char magic[6] = "\x93NUMPY";
    size_t bytes = a->n * hy_dtype_size(a->dtype);
    if (raw && bytes >= sizeof magic && memcmp(a->data, magic, sizeof magic) == 0) {
        if (rc != HY_EINVAL)
            abort();
        unlink(path);
        return;
    }
    if (rc != 0) {
        fprintf(stderr, "reading back: %s\n", err.msg);
        abort();
    }
    if (b.dtype != a->dtype || b.n != a->n || (bytes && memcmp(a->data, b.data, bytes) != 0))
        abort();
    hc_array_free(&b);
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[32];
    int fd = fuzz_memfd("fuzz_npy", data, size, path);

    hc_array a;
    memset(&a, 0xa5, sizeof a); /* "need not be initialised" */
    hy_error err = {0};
    int rc = hc_npy_read(path, &a, MAX_BYTES, &err);

    hc_array small;
    hy_error small_err = {0};
    int small_rc = hc_npy_read(path, &small, SMALL_MAX, &small_err);
    close(fd);
    if (rc == 0 && a.n * hy_dtype_size(a.dtype) > SMALL_MAX) {
        static const hc_array zero = {0};
        if (small_rc != HY_ELIMIT || memcmp(&small, &zero, sizeof small) != 0 ||
            !strstr(small_err.msg, path))
            abort();
    } else {
        if (small_rc != rc || (rc != 0 && strcmp(small_err.msg, err.msg) != 0))
            abort();
        if (rc == 0 && (small.dtype != a.dtype || small.n != a.n ||
                        (a.n && memcmp(small.data, a.data, a.n * hy_dtype_size(a.dtype)))))
            abort();
        hc_array_free(&small);
    }

    if (rc != 0) {
        static const hc_array zero = {0};
        if (memcmp(&a, &zero, sizeof a) != 0)
            abort();
        if (rc != HY_EINVAL && rc != HY_ELIMIT)
            abort();
        if (err.code != rc || err.msg[0] == '\0' || strchr(err.msg, '\n') ||
            !strstr(err.msg, path)) {
            fprintf(stderr, "bad error sentence (%d): %s\n", rc, err.msg);
            abort();
        }
    } else {
        size_t esize = hy_dtype_size(a.dtype);
        if (esize == 0 || (a.n == 0) != (a.data == NULL) || a.n > MAX_BYTES / esize)
            abort();
        size_t bytes = a.n * esize;
        if (bytes > size || (bytes && memcmp(a.data, data + size - bytes, bytes) != 0))
            abort();
        check_order(a.data, a.dtype, a.n);
        write_back(&a, false);
        write_back(&a, true);
        hc_array_free(&a);
        if (a.data || a.n)
            abort();
    }

    /* The order check over the raw bytes as each dtype (NaNs, -0.0, every integer edge). */
    size_t len = size < sizeof aligned ? size : sizeof aligned;
    memcpy(aligned, data, len);
    for (int dt = HY_DT_I32; dt <= HY_DT_F64; dt++)
        check_order(aligned, dt, len / hy_dtype_size(dt));
    return 0;
}
