/* daemon/ranks_files: a sort whose input and output are .npy paths (SUBMIT array FILES,
 * hybridd --mpi only): the header read and checked and the output created here, with MPI-IO
 * through the MPI thread (hy_mpi_file); then, across ranks, each rank reads its slice and
 * writes its sorted bucket (hy_ranks_sort_slices), or, for one rank, this one reads, sorts
 * with the row's backend and writes. The .npy header is parsed here because the daemon may not use
 * the client's parser (client/ is hybridctl's); it takes what numpy writes for a 1-D
 * little-endian array of the six dtypes and refuses the rest with a sentence. */
#include "ranks.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define NPY_MAGIC "\x93NUMPY"
#define NPY_PREFIX 12      /* magic, version, and the longest header length (4 bytes) */
#define NPY_HEADER_MAX 65536

/* The value after `key` in a header dict: NULL when the key is not there. */
static const char *npy_value(const char *h, const char *key)
{
    const char *p = strstr(h, key);
    if (!p)
        return NULL;
    p += strlen(key);
    while (*p == ' ')
        p++;
    if (*p++ != ':')
        return NULL;
    while (*p == ' ')
        p++;
    return p;
}

/* The dtype a descr names ('<f8' and friends; '|' or '=' are not what numpy writes for
 * these), or 0. */
static int npy_dtype(const char *v)
{
    static const char *const names[] = {"<i4", "<u4", "<i8", "<u8", "<f4", "<f8"};
    if (*v != '\'' && *v != '"')
        return 0;
    for (int d = 0; d < 6; d++)
        if (!strncmp(v + 1, names[d], 3) && v[4] == v[0])
            return d + 1; /* HY_DT_I32 .. HY_DT_F64, in common.h's order */
    return 0;
}

/* Parses a header dict: its dtype and its one dimension. 0, or the sentence (HY_EDTYPE for
 * a dtype that is not one of the six, HY_EINVAL for the rest). */
static int npy_parse(const char *path, const char *h, int *dtype, uint64_t *n, hy_error *err)
{
    const char *d = npy_value(h, "'descr'"), *f = npy_value(h, "'fortran_order'"),
               *s = npy_value(h, "'shape'");
    if (!d || !f || !s || *s != '(')
        return hy_error_set(err, HY_EINVAL, "%s: its .npy header is not a dict with descr, "
                            "fortran_order and shape", path);
    if (!(*dtype = npy_dtype(d)))
        return hy_error_set(err, HY_EDTYPE, "%s: dtype %.8s is not one of <i4 <u4 <i8 <u8 "
                            "<f4 <f8", path, d);
    if (strncmp(f, "False", 5) != 0)
        return hy_error_set(err, HY_EINVAL, "%s: a Fortran-order array (sort takes a 1-D "
                            "one)", path);
    char *end;
    s++;
    if (*s < '0' || *s > '9')
        return hy_error_set(err, HY_EINVAL, "%s: shape %.24s is not 1-D", path, s - 1);
    *n = strtoull(s, &end, 10);
    while (*end == ' ' || *end == 'L')
        end++;
    if (*end++ != ',')
        return hy_error_set(err, HY_EINVAL, "%s: shape %.24s is not 1-D", path, s - 1);
    while (*end == ' ')
        end++;
    if (*end != ')')
        return hy_error_set(err, HY_EINVAL, "%s: shape %.24s is not 1-D", path, s - 1);
    return 0;
}

/* Reads and checks IN's header: its dtype and length must be the job's (hybridctl read
 * them from the same file). *data gets where the elements start. */
static int read_header(const hy_engines *e, const hy_job_spec *s, uint64_t *data,
                       hy_error *err)
{
    unsigned char pre[NPY_PREFIX];
    uint64_t fsize = 0;
    int rc = hy_mpi_file(e->mpi, HY_MPI_FILE_READ, s->input, 0, pre, 10, &fsize, err);
    if (rc)
        return rc;
    if (memcmp(pre, NPY_MAGIC, 6) != 0 || pre[6] < 1 || pre[6] > 3)
        return hy_error_set(err, HY_EINVAL, "%s is not a .npy file (version 1 to 3)", s->input);
    uint64_t at = pre[6] == 1 ? 10 : 12, hlen = pre[8] | (uint64_t)pre[9] << 8;
    if (pre[6] > 1) {
        if ((rc = hy_mpi_file(e->mpi, HY_MPI_FILE_READ, s->input, 10, pre + 10, 2, NULL, err)))
            return rc;
        hlen |= (uint64_t)pre[10] << 16 | (uint64_t)pre[11] << 24;
    }
    if (hlen == 0 || hlen > NPY_HEADER_MAX)
        return hy_error_set(err, HY_EINVAL, "%s: a .npy header of %" PRIu64 " bytes", s->input,
                            hlen);
    char *h = malloc(hlen + 1);
    if (!h)
        return hy_error_set(err, HY_ENOMEM, "no memory for %s's header", s->input);
    int dtype = 0;
    uint64_t n = 0;
    if (!(rc = hy_mpi_file(e->mpi, HY_MPI_FILE_READ, s->input, at, h, hlen, NULL, err))) {
        h[hlen] = '\0';
        rc = npy_parse(s->input, h, &dtype, &n, err);
    }
    free(h);
    if (rc)
        return rc;
    *data = at + hlen;
    if (dtype != s->dtype || n != s->n)
        return hy_error_set(err, HY_EINVAL, "%s holds %" PRIu64 " %s, not the %" PRIu64 " %s "
                            "the job names (was it changed?)", s->input, n,
                            hy_dtype_name(dtype), s->n, hy_dtype_name(s->dtype));
    if (fsize < *data + s->array_bytes)
        return hy_error_set(err, HY_EINVAL, "%s ends %" PRIu64 " bytes short of its %" PRIu64
                            " elements", s->input, *data + s->array_bytes - fsize, n);
    return 0;
}

/* OUT created (or truncated) to its final size before anything is sorted, so that a path
 * that cannot be written fails the job before its work; then the header. */
static int create_output(const hy_engines *e, const hy_job_spec *s, uint64_t *data,
                         hy_error *err)
{
    char h[256];
    size_t hlen = hy_npy_header(s->dtype, s->n, h, sizeof h);
    if (hlen == 0)
        return hy_error_set(err, HY_EINTERNAL, "the .npy header of %s does not fit", s->output);
    int rc = hy_mpi_file(e->mpi, HY_MPI_FILE_CREATE, s->output, hlen + s->array_bytes, NULL, 0,
                         NULL, err);
    if (!rc)
        rc = hy_mpi_file(e->mpi, HY_MPI_FILE_WRITE, s->output, 0, h, hlen, NULL, err);
    *data = hlen;
    return rc;
}

/* The keys at a, sorted by the row's backend on this rank alone (a span of one rank), and
 * written into OUT at out_at. */
static int sort_keys(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                     const hy_run_io *io, void *a, uint64_t out_at, hy_run_once *o,
                     hy_error *err)
{
    hy_job_spec own = *s;
    own.array = HY_ARRAY_INLINE; /* what the backend sorts: keys in memory */
    hy_run_io kio = *io;
    kio.array = a;
    kio.array_fd = -1;
    kio.pristine = NULL;
    if (s->n == 0)
        return 0;
    int rc = hy_backend_get(r->backend)->sort(e, &own, r, &kio, o, err);
    return rc ? rc : hy_mpi_file(e->mpi, HY_MPI_FILE_WRITE, s->output, out_at, a,
                                 s->array_bytes, NULL, err);
}

/* A header's sentence names the rank, as MPI-IO's do (mpi.c): the client may be ranks away. */
static int on_rank(const hy_engines *e, int rc, hy_error *err)
{
    if (rc && strncmp(err->msg, "rank ", 5) != 0) {
        char was[sizeof err->msg];
        snprintf(was, sizeof was, "%s", err->msg);
        hy_error_set(err, rc, "rank %d: %s", hy_mpi_rank(e->mpi), was);
    }
    return rc;
}

int hy_ranks_sort_files(const hy_engines *e, const hy_job_spec *s, const hy_row_spec *r,
                        const hy_run_io *io, hy_run_once *o, hy_error *err)
{
    HY_ASSERT(e->mpi != NULL && s->input && s->output);
    uint64_t t0 = hy_now_ns(), in_at = 0, out_at = 0;
    int rc = on_rank(e, read_header(e, s, &in_at, err), err);
    if (rc || (rc = on_rank(e, create_output(e, s, &out_at, err), err)))
        return rc;
    if (s->ranks > 1 && s->n > 0) { /* every rank reads its slice and writes its run */
        uint64_t head_ns = hy_now_ns() - t0;
        rc = hy_ranks_sort_slices(e, s, r, io, in_at, out_at, o, err);
        for (unsigned k = 0; k < o->span.n; k++) /* the header and the output's are I/O too */
            if ((int)o->span.r[k].rank == hy_mpi_rank(e->mpi))
                o->span.r[k].io_ns += head_ns;
        o->wall_ns = hy_now_ns() - t0;
        return rc;
    }
    void *a = malloc(s->array_bytes ? s->array_bytes : 1);
    if (!a)
        return hy_error_set(err, HY_ENOMEM, "no memory for the %zu bytes of %s", s->array_bytes,
                            s->input);
    rc = hy_mpi_file(e->mpi, HY_MPI_FILE_READ, s->input, in_at, a, s->array_bytes, NULL, err);
    uint64_t t1 = hy_now_ns();
    if (!rc)
        rc = sort_keys(e, s, r, io, a, out_at, o, err);
    free(a);
    uint64_t t2 = hy_now_ns();
    if (rc)
        return rc;
    hy_log(HY_LOG_INFO, "sort of %s into %s across %u rank(s): n %" PRIu64 ", read %.3f ms, "
           "sort and write %.3f ms", s->input, s->output, s->ranks, s->n,
           (double)(t1 - t0) / 1e6, (double)(t2 - t1) / 1e6);
    o->wall_ns = t2 - t0;
    return 0;
}
