/* store_memory.h: the in-memory store, the default. Nothing survives a restart. */
#ifndef EVS_STORE_MEMORY_H
#define EVS_STORE_MEMORY_H

#include "store.h"

/* A new empty in-memory store; NULL when out of memory. Free it with s->ops->free(s). */
store_t *store_memory_new(void);

#endif
