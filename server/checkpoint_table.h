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

#endif
