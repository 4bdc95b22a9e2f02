/* daemon/world: every rank's node, pools, devices and counters for RANKS (docs/mpi.md,
 * "Seeing the ranks"). A peer's answer is its hy_rank_record and its device records as raw
 * bytes: mpi/ carries them uninterpreted, and the asking rank, running the same binary, reads
 * them back after checking that the length, the rank and the device count agree. */
#include "world.h"

#include <stdlib.h>
#include <string.h>

int hy_world_pack(const hy_rank_record *rec, const hy_device_record *devs, void **out,
                  size_t *len, hy_error *err)
{
    if (rec->ndevices > HY_IPC_DEVICES_MAX)
        return hy_error_set(err, HY_EINTERNAL, "%u devices, above the %u a rank lists",
                            rec->ndevices, HY_IPC_DEVICES_MAX);
    size_t n = sizeof *rec + (size_t)rec->ndevices * sizeof *devs;
    char *p = malloc(n);
    if (!p)
        return hy_error_set(err, HY_ENOMEM, "no memory for this rank's record");
    memcpy(p, rec, sizeof *rec);
    if (rec->ndevices)
        memcpy(p + sizeof *rec, devs, (size_t)rec->ndevices * sizeof *devs);
    *out = p;
    *len = n;
    return 0;
}

/* Rank r's record and devices from its answer, checked. */
static int unpack(const hy_mpi_answers *a, unsigned r, hy_rank_record *rec,
                  const hy_device_record **devs, hy_error *err)
{
    const char *p = a->blob[r];
    size_t n = a->len[r];
    if (!p || n < sizeof *rec)
        return hy_error_set(err, HY_EINTERNAL, "rank %u sent %zu bytes, not a rank record", r,
                            n);
    memcpy(rec, p, sizeof *rec);
    rec->host[sizeof rec->host - 1] = '\0';
    if (rec->rank != r || rec->ndevices > HY_IPC_DEVICES_MAX ||
        n != sizeof *rec + (size_t)rec->ndevices * sizeof **devs)
        return hy_error_set(err, HY_EINTERNAL, "rank %u's answer (%zu bytes, rank %u, %u "
                            "devices) does not hold together", r, n, rec->rank, rec->ndevices);
    *devs = (const hy_device_record *)(const void *)(p + sizeof *rec);
    return 0;
}

int hy_world_gather(hy_world *w, const hy_mpi_answers *a, int self, const hy_rank_record *own,
                    const hy_device_record *own_devs, hy_error *err)
{
    memset(w, 0, sizeof *w);
    if (a->size > HY_IPC_RANKS_MAX)
        return hy_error_set(err, HY_ELIMIT, "the MPI job has %u ranks; RANKS lists at most %u",
                            a->size, HY_IPC_RANKS_MAX);
    w->ranks = calloc(a->size, sizeof *w->ranks);
    w->devices = calloc(HY_IPC_RANK_DEVICES_MAX, sizeof *w->devices);
    if (!w->ranks || !w->devices) {
        hy_world_free(w);
        return hy_error_set(err, HY_ENOMEM, "no memory for %u ranks' records", a->size);
    }
    for (unsigned r = 0; r < a->size; r++) {
        hy_rank_record *rec = &w->ranks[r];
        const hy_device_record *devs = own_devs;
        int rc = 0;
        if ((int)r == self)
            *rec = *own;
        else
            rc = unpack(a, r, rec, &devs, err);
        if (!rc && w->ndevices + rec->ndevices > HY_IPC_RANK_DEVICES_MAX)
            rc = hy_error_set(err, HY_ELIMIT, "the ranks have more than the %u devices RANKS "
                              "lists", HY_IPC_RANK_DEVICES_MAX);
        if (rc) {
            hy_world_free(w);
            return rc;
        }
        if (rec->ndevices)
            memcpy(&w->devices[w->ndevices], devs, rec->ndevices * sizeof *devs);
        w->ndevices += rec->ndevices;
        w->nranks++;
    }
    return 0;
}

void hy_world_free(hy_world *w)
{
    free(w->ranks);
    free(w->devices);
    memset(w, 0, sizeof *w);
}
