/* pg/decide.h: deciding a group of appends in C, request by request, as the memory store does.
 *
 * The group commit lists the group's entities (decide_list_entities), fills in what is stored
 * (each entity's next version, from the version cache or phase 1's rows; the stored events that
 * have one of the group's client-chosen ids), then decides the whole group (decide_group): in
 * arrival order, a request is an idempotent retry (it gets the stored positions), or has a
 * conflict (its err is set, nothing of it is kept), or is accepted (its events get versions and
 * the next positions, and are marked written). group_commit.h describes the transaction around
 * it. */
#ifndef EVS_PG_DECIDE_H
#define EVS_PG_DECIDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uthash.h>

#include "group_commit.h"
#include "wire.h"

/* What the group knows about one entity. While one request is decided its versions are counted
 * in tentative (next stays as the accepted requests left it), so that a rejected request leaves
 * no trace; deciding says which request tentative belongs to. */
typedef struct decide_entity {
    const char *id;  /* points into a request's event */
    uint64_t next;   /* the version the entity's next event takes */
    size_t deciding; /* the number of the request whose versions tentative counts (0: none) */
    uint64_t tentative;
    bool taken_for_new; /* the fast path: the version cache does not know it */
    UT_hash_handle hh;
} decide_entity_t;

typedef struct decide_id decide_id_t;

typedef struct decide {
    decide_entity_t *entities; /* a uthash table of the group's entities, by id */
    decide_entity_t *nodes;    /* their memory: nodes[0..nentities) (one allocation per group) */
    size_t nentities;
    decide_id_t *ids;         /* the event ids known to be stored, or accepted in the group */
    size_t naccepted;         /* events accepted by decide_group */
    struct ckpt_group *ckpts; /* the consumers of a group with trackings (checkpoint.h), or NULL */
} decide_t;

/* Forgets the group: entities, ids, counts. A zeroed decide_t is empty. */
void decide_clear(decide_t *d);

/* Lists the distinct entities of the requests of group (next versions 0) and sets *total to the
 * number of events. Returns 0, or -1 when out of memory. */
int decide_list_entities(decide_t *d, gc_request_t *group, size_t *total);

/* The latest stored version of entity_id is version: its next is version + 1. */
void decide_set_latest(decide_t *d, const char *entity_id, uint64_t version);

/* An event with event_id is stored for entity_id at version and position. Returns 0, or -1 when
 * out of memory. */
int decide_add_stored(decide_t *d, const uint8_t event_id[16], const char *entity_id,
                      uint64_t version, uint64_t position);

/* Decides every request of group in arrival order, the accepted ones taking positions from
 * first_position on (request fields: versions, positions, written, err; the events' version and
 * position). Returns the last position taken. */
int64_t decide_group(decide_t *d, gc_request_t *group, int64_t first_position);

/* Appends the ids of the listed entities to b as a text[]: all of them, or only those taken for
 * new. */
void decide_put_entities(const decide_t *d, pg_wire_buf_t *b, bool only_new);

/* Appends the client-chosen event ids of the requests of group to b as a uuid[] (only those can
 * already be stored: an id the daemon drew is new). */
void decide_put_event_ids(gc_request_t *group, pg_wire_buf_t *b);

/* Fills p[SCHEMA_INSERT_NPARAMS], the parameters of SCHEMA_INSERT (schema.h), with every event
 * decide_group accepted, stamping each event's timestamp with ts (microseconds). Returns 0, or -1
 * when memory ran short. */
int decide_put_insert_params(const decide_t *d, gc_request_t *group, pg_wire_buf_t *p, int64_t ts);

#endif
