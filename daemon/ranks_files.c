/* daemon/ranks_files: a sort whose input and output are .npy paths (SUBMIT array FILES,
 * hybridd --mpi only): the header read and checked and the output created here, with MPI-IO
 * through the MPI thread (hy_mpi_file); then, across ranks, each rank reads its slice and
 * writes its sorted bucket (hy_ranks_sort_slices), or, for one rank, this one reads, sorts
 * with the row's backend and writes. The header's bytes are parsed by common/npy.c, the
 * parser hybridctl reads the same file with. */
#include "ranks.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Reads and checks IN's header: its dtype and length must be the job's (hybridctl read
 * them from the same file). *data gets where the elements start. */
static int read_header(const hy_engines *e, const hy_job_spec *s, uint64_t *data,
                       hy_error *err)
{
    unsigned char pre[HY_NPY_PREFIX_MAX];
    uint64_t fsize = 0, at = 0, hlen = 0;
    int rc = hy_mpi_file(e->mpi, HY_MPI_FILE_READ, s->input, 0, pre, 10, &fsize, err);
    if (!rc)
        rc = hy_npy_prefix(s->input, pre, 10, &at, &hlen, err);
    if (!rc && hlen == 0) { /* versions 2 and 3: a 4-byte length */
        rc = hy_mpi_file(e->mpi, HY_MPI_FILE_READ, s->input, 10, pre + 10, 2, NULL, err);
        if (!rc)
            rc = hy_npy_prefix(s->input, pre, HY_NPY_PREFIX_MAX, &at, &hlen, err);
    }
    if (rc)
        return rc;
    char *h = malloc(hlen);
    if (!h)
        return hy_error_set(err, HY_ENOMEM, "no memory for %s's header", s->input);
    int dtype = 0;
    uint64_t n = 0;
    if (!(rc = hy_mpi_file(e->mpi, HY_MPI_FILE_READ, s->input, at, h, hlen, NULL, err)))
        rc = hy_npy_dict(s->input, h, hlen, &dtype, &n, err);
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
