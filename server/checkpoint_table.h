/* checkpoint_table.h: consumers' checkpoints kept in the daemon's memory (the memory store's).
 *
 * A table from consumer name to position, listed by name. The strings it returns belong to the
 * table and stay valid until the entry is set again, deleted or the table freed. */
#ifndef EVS_CHECKPOINT_TABLE_H
#define EVS_CHECKPOINT_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

typedef struct cpt_node cpt_node_t;

typedef struct cpt_table {
    cpt_node_t *nodes; /* a uthash table by name */
    size_t n;
    size_t bytes; /* what the entries allocated */
} cpt_table_t;

/* The consumer's position; 0 when it has none. */
uint64_t cpt_get(const cpt_table_t *t, const char *consumer);

/* Sets the consumer's position. Returns 0, or -1 when out of memory (nothing changed). */
int cpt_set(cpt_table_t *t, const char *consumer, uint64_t position);

/* Removes the consumer; returns whether it had a position. */
bool cpt_delete(cpt_table_t *t, const char *consumer);

/* Every consumer in name order (active false), as a malloc'd array whose strings belong to t;
 * *n is its length. NULL with *n == 0 when empty; NULL with *n > 0 when out of memory. */
store_consumer_t *cpt_list(const cpt_table_t *t, size_t *n);

void cpt_free(cpt_table_t *t);

/* Leases (store.h, lease) in a table of their own: position is the fencing number and
 * expires_us the expiry. Returns whether the lease is held after the call (*fence set), or -1
 * when out of memory. */
int cpt_lease(cpt_table_t *t, const char *consumer, uint64_t fence, int64_t expires_us,
              int64_t now_us, uint64_t *out);

/* The current fencing number of consumer's lease, 0 when never taken; *active when unexpired. */
uint64_t cpt_lease_fence(const cpt_table_t *t, const char *consumer, int64_t now_us, bool *active);

/* Expires the lease now when fence is current; returns whether it was. */
bool cpt_lease_release(cpt_table_t *t, const char *consumer, uint64_t fence);

#endif
