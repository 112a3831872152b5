/* pg/version_cache.h: the next version of every entity the group commit has seen, between groups.
 *
 * The cache is valid while PostgreSQL's position sequence still holds seq, the value it had after
 * the writer's last COMMIT: every transaction that changes evs_events, on any daemon, takes the
 * append lock and then at least one position, so an unmoved sequence proves that the versions
 * remembered are still the latest. The group commit's fast path decides a group from it
 * (group_commit.h); any doubt (a failure, a lost connection, a reconnect) invalidates it. */
#ifndef EVS_PG_VERSION_CACHE_H
#define EVS_PG_VERSION_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Most entities remembered; past it the cache starts empty again. */
#define VCACHE_MAX 200000

typedef struct vcache_node vcache_node_t;

typedef struct vcache {
    vcache_node_t *nodes; /* a uthash table by entity id */
    size_t n;
    bool valid; /* seq is the sequence's value after our last COMMIT */
    int64_t seq;
} vcache_t;

/* Forgets every entity and marks the cache invalid: the next group reads the latest versions
 * from the database. Also frees the memory (call it before dropping the cache). */
void vcache_invalidate(vcache_t *c);

/* True with *next set when the cache holds entity_id, false when it has never seen it (which,
 * while the cache is valid, means nothing is known about it: the fast path takes it for new). */
bool vcache_lookup(const vcache_t *c, const char *entity_id, uint64_t *next);

/* Records that entity_id's next version is next (after a COMMIT that wrote it). Returns 0, or -1
 * when out of memory, after which the cache is invalid. */
int vcache_set(vcache_t *c, const char *entity_id, uint64_t next);

/* After a COMMIT: the sequence now holds seq and the cache is valid. */
void vcache_commit(vcache_t *c, int64_t seq);

/* A delete-entity took position seq. When it was the very next position after our last COMMIT,
 * nothing else changed in between: the entity starts again from version 0 and the cache stays
 * valid. Otherwise the cache is invalidated. */
void vcache_entity_deleted(vcache_t *c, const char *entity_id, int64_t seq);

#endif
