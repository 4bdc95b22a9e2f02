/* mpi-rate: how fast MPI alone moves a sort span's bucket between two ranks here, the
 * exchange term of docs/scale-out.md's model measured without hybridd around it.
 *
 *   mpirun -np 2 build/bench/mpi-rate [--mib 40] [--chunk-mib 16] [--repeat 9]
 *
 * Each repetition, both ranks at once send the other --mib MiB and receive as much, in
 * messages of at most --chunk-mib MiB (as hybridd's MPI thread sends a bucket), into warm
 * buffers; a barrier starts every repetition. Rank 0 prints the median, least and greatest
 * time and the rate a rank sends at (its bytes over the median). Run it with the transport
 * hybridd's ranks use (tests/mpi: OMPI_MCA_btl=self,vader,
 * OMPI_MCA_btl_vader_single_copy_mechanism=none). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int usage(int rank)
{
    if (rank == 0)
        fprintf(stderr, "usage: mpirun -np 2 mpi-rate [--mib M] [--chunk-mib C] [--repeat R]\n");
    return 2;
}

/* One exchange: bytes to the peer and as many from it, in chunks, the sends not blocking. */
static int exchange(char *out, char *in, size_t bytes, size_t chunk, int peer, MPI_Request *req)
{
    int nreq = 0;
    for (size_t at = 0; at < bytes; at += chunk) {
        int len = (int)(bytes - at < chunk ? bytes - at : chunk);
        if (MPI_Isend(out + at, len, MPI_BYTE, peer, 1, MPI_COMM_WORLD, &req[nreq++]) !=
            MPI_SUCCESS)
            return -1;
    }
    for (size_t at = 0; at < bytes; at += chunk) {
        int len = (int)(bytes - at < chunk ? bytes - at : chunk);
        if (MPI_Recv(in + at, len, MPI_BYTE, peer, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE) !=
            MPI_SUCCESS)
            return -1;
    }
    return MPI_Waitall(nreq, req, MPI_STATUSES_IGNORE) == MPI_SUCCESS ? 0 : -1;
}

int main(int argc, char **argv)
{
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    long mib = 40, chunk_mib = 16, repeat = 9;
    for (int i = 1; i < argc; i++) {
        long *v = !strcmp(argv[i], "--mib")         ? &mib
                  : !strcmp(argv[i], "--chunk-mib") ? &chunk_mib
                  : !strcmp(argv[i], "--repeat")    ? &repeat
                                                    : NULL;
        char *end;
        if (!v || i + 1 >= argc || (*v = strtol(argv[++i], &end, 10)) < 1 || *end) {
            MPI_Finalize();
            return usage(rank);
        }
    }
    if (size != 2 || mib > 4096 || chunk_mib > 1024 || repeat > 1000) {
        if (rank == 0)
            fprintf(stderr, "mpi-rate: 2 ranks, --mib up to 4096, --chunk-mib up to 1024, "
                            "--repeat up to 1000\n");
        MPI_Finalize();
        return 2;
    }
    size_t bytes = (size_t)mib << 20, chunk = (size_t)chunk_mib << 20;
    char *out = malloc(bytes), *in = malloc(bytes);
    MPI_Request *req = malloc(sizeof *req * (bytes / chunk + 1));
    double *t = malloc(sizeof *t * (size_t)(repeat + 1));
    int rc = 0;
    if (!out || !in || !req || !t) {
        fprintf(stderr, "mpi-rate: rank %d: no memory for %ld MiB twice\n", rank, mib);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    memset(out, rank + 1, bytes); /* both buffers warm: no page fault is timed */
    memset(in, 0, bytes);
    for (long r = 0; r <= repeat && rc == 0; r++) { /* repetition 0 warms the transport */
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        rc = exchange(out, in, bytes, chunk, 1 - rank, req);
        t[r] = MPI_Wtime() - t0;
        if (rc == 0 && in[bytes - 1] != (char)(2 - rank))
            rc = -1; /* what came is not the peer's */
    }
    if (rc != 0) {
        fprintf(stderr, "mpi-rate: rank %d: the exchange failed\n", rank);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    if (rank == 0) {
        qsort(t + 1, (size_t)repeat, sizeof *t, cmp_double);
        double med = t[1 + repeat / 2];
        printf("mpi-rate: %ld MiB each way at once, chunks of %ld MiB, %ld repetitions: median "
               "%.1f ms (%.1f-%.1f), %.2f GB/s a rank sends\n",
               mib, chunk_mib, repeat, med * 1e3, t[1] * 1e3, t[repeat] * 1e3,
               (double)bytes / med / 1e9);
    }
    free(out);
    free(in);
    free(req);
    free(t);
    MPI_Finalize();
    return 0;
}
