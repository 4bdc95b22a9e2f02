/* daemon/world: RANKS (hybridctl devices --ranks, status): a rank's record — its node, pools,
 * devices and counters — the bytes a peer sends for it through mpi/, and the reply that lists
 * every rank's. The loop asks and answers (server.c); nothing here waits or calls MPI. */
#ifndef HY_WORLD_H
#define HY_WORLD_H

#include <stddef.h>

#include "hy_mpi.h"
#include "ipc.h"

/* A rank's bytes for a peer: its record, then its rec->ndevices device records, as this
 * binary lays them out (every rank runs the same one). Malloc'd into *out. */
int hy_world_pack(const hy_rank_record *rec, const hy_device_record *devs, void **out,
                  size_t *len, hy_error *err);

/* Every rank's records in rank order: `own` (with own_devs) for rank `self`, the others from
 * their answers in `a`, each checked (its length, its rank, its device count) before use. */
typedef struct hy_world {
    unsigned nranks, ndevices;
    hy_rank_record *ranks;
    hy_device_record *devices;
} hy_world;
int hy_world_gather(hy_world *w, const hy_mpi_answers *a, int self, const hy_rank_record *own,
                    const hy_device_record *own_devs, hy_error *err);
void hy_world_free(hy_world *w);

#endif
