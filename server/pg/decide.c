/* pg/decide.c: deciding a group of appends in C (see decide.h). */
#include "decide.h"

#include <stdlib.h>
#include <string.h>

#include "../store.h"
#include "checkpoint.h"
#include "schema.h"

/* One event id known to be stored: read in phase 1, or accepted earlier in the group. */
struct decide_id {
    uint8_t id[16];
    char *entity_id;
    bool owns_entity; /* entity_id was copied from a result (else it points into a request) */
    uint64_t version, position;
    UT_hash_handle hh;
};

/* ---------------------------------------------------------------- what is stored */

void decide_clear(decide_t *d) {
    decide_entity_t *e, *et;
    HASH_ITER(hh, d->entities, e, et) HASH_DEL(d->entities, e);
    free(d->nodes);
    d->nodes = NULL;
    d->nentities = 0;
    decide_id_t *in, *it;
    HASH_ITER(hh, d->ids, in, it) {
        HASH_DEL(d->ids, in);
        if (in->owns_entity) free(in->entity_id);
        free(in);
    }
    d->naccepted = 0;
}

static decide_id_t *find_id(decide_t *d, const uint8_t id[16]) {
    decide_id_t *n;
    HASH_FIND(hh, d->ids, id, 16, n);
    return n;
}

static decide_entity_t *find_entity(decide_t *d, const char *id) {
    decide_entity_t *e;
    HASH_FIND_STR(d->entities, id, e);
    return e;
}

int decide_list_entities(decide_t *d, gc_request_t *group, size_t *total_out) {
    size_t total = 0;
    for (gc_request_t *r = group; r; r = r->next)
        total += r->n;
    *total_out = total;
    d->nodes = calloc(total ? total : 1, sizeof *d->nodes); /* none: checkpoints alone */
    if (!d->nodes) return -1;
    size_t nent = 0;
    for (gc_request_t *r = group; r; r = r->next)
        for (size_t i = 0; i < r->n; i++) {
            if (find_entity(d, r->events[i].entity_id)) continue;
            decide_entity_t *e = &d->nodes[nent++];
            e->id = r->events[i].entity_id;
            HASH_ADD_KEYPTR(hh, d->entities, e->id, strlen(e->id), e);
        }
    d->nentities = nent;
    return 0;
}

void decide_set_latest(decide_t *d, const char *entity_id, uint64_t version) {
    decide_entity_t *e = find_entity(d, entity_id);
    if (e) e->next = version + 1;
}

int decide_add_stored(decide_t *d, const uint8_t event_id[16], const char *entity_id,
                      uint64_t version, uint64_t position) {
    if (find_id(d, event_id)) return 0;
    decide_id_t *in = calloc(1, sizeof *in);
    if (!in || !(in->entity_id = strdup(entity_id))) {
        free(in);
        return -1;
    }
    in->owns_entity = true;
    memcpy(in->id, event_id, 16);
    in->version = version;
    in->position = position;
    HASH_ADD(hh, d->ids, id, 16, in);
    return 0;
}

/* ---------------------------------------------------------------- deciding */

/* The idempotent-retry rule of store.h: every event id already stored (or accepted earlier in
 * this group) at the same entity and, when given, the same version. Fills r's positions and
 * versions with the stored ones when it is a retry. */
static bool is_retry(decide_t *d, gc_request_t *r) {
    /* An id the daemon drew for this request (122 random bits) cannot be stored yet. */
    for (size_t i = 0; i < r->n; i++)
        if (!r->events[i].has_event_id) return false;
    for (size_t i = 0; i < r->n; i++) {
        const evs_event_t *ev = &r->events[i];
        decide_id_t *f = find_id(d, ev->event_id);
        if (!f || strcmp(f->entity_id, ev->entity_id) != 0) return false;
        if (ev->has_version && ev->version != f->version) return false;
    }
    for (size_t i = 0; i < r->n; i++) {
        decide_id_t *f = find_id(d, r->events[i].event_id);
        r->positions[i] = f->position;
        r->versions[i] = f->version;
    }
    return store_positions_distinct(r->positions, r->n);
}

/* The next version of e as request number deciding counts it: on its first event of e, what the
 * requests accepted before left. */
static uint64_t *tentative_version(decide_entity_t *e, size_t deciding) {
    if (e->deciding != deciding) {
        e->deciding = deciding;
        e->tentative = e->next;
    }
    return &e->tentative;
}

/* Gives each event of r (request number deciding) its version and records its client-chosen
 * event id as stored. Returns false at the first version conflict, repeated or stored event id,
 * or allocation failure, with r->err set; *added counts the ids recorded either way. */
static bool take_versions_and_ids(decide_t *d, gc_request_t *r, size_t deciding, size_t *added) {
    for (size_t i = 0; i < r->n; i++) {
        evs_event_t *ev = &r->events[i];
        uint64_t *next = tentative_version(find_entity(d, ev->entity_id), deciding);
        if (ev->has_version && ev->version != *next) {
            store_conflict_version(&r->err, ev->entity_id, ev->version, *next);
            return false;
        }
        r->versions[i] = (*next)++;
        if (!ev->has_event_id) continue; /* drawn by the daemon: nothing to look up */
        if (find_id(d, ev->event_id)) {
            store_conflict_event_id(&r->err, ev->event_id);
            return false;
        }
        decide_id_t *in = calloc(1, sizeof *in);
        if (!in) {
            codec_error_set(&r->err, EVS_EINTERNAL, "out of memory");
            return false;
        }
        memcpy(in->id, ev->event_id, 16);
        in->entity_id = ev->entity_id;
        in->version = r->versions[i];
        HASH_ADD(hh, d->ids, id, 16, in);
        (*added)++;
    }
    return true;
}

/* Undoes what take_versions_and_ids did for a rejected request: removes the added ids it
 * recorded; the entities keep next, and lose the rejected request's tentative versions. */
static void reject_request(decide_t *d, gc_request_t *r, size_t added) {
    for (size_t i = 0; i < r->n && added; i++) {
        if (!r->events[i].has_event_id) continue;
        decide_id_t *in = find_id(d, r->events[i].event_id);
        if (!in || in->entity_id != r->events[i].entity_id) break;
        added--;
        HASH_DEL(d->ids, in);
        free(in);
    }
    for (size_t i = 0; i < r->n; i++)
        find_entity(d, r->events[i].entity_id)->deciding = 0;
}

/* Accepts a request whose versions were taken: its entities move to their tentative versions and
 * its events take the next positions, from *next_pos on. */
static void accept_request(decide_t *d, gc_request_t *r, int64_t *next_pos) {
    for (size_t i = 0; i < r->n; i++) {
        evs_event_t *ev = &r->events[i];
        decide_entity_t *e = find_entity(d, ev->entity_id);
        e->next = e->tentative;
        ev->version = r->versions[i];
        ev->position = r->positions[i] = (uint64_t)(*next_pos)++;
        if (ev->has_event_id) find_id(d, ev->event_id)->position = ev->position;
    }
    r->written = true;
    d->naccepted += r->n;
}

/* Decides one request (number deciding, counted from 1 in the group) against what is stored and
 * what the group accepted before it, exactly as the memory store decides one append: an
 * idempotent retry gets the stored positions, a conflict sets r->err and changes nothing, and an
 * accepted request gets its versions and positions. */
static void decide(decide_t *d, gc_request_t *r, size_t deciding, int64_t *next_pos) {
    if (r->track != GC_TRACK_NONE) {
        /* A tracking or checkpoint is decided first and moves with the events (checkpoint.h). */
        if (!ckpt_admit(d->ckpts, r, r->n > 0 && is_retry(d, r))) return;
    } else if (is_retry(d, r)) {
        return;
    }
    size_t added = 0;
    if (take_versions_and_ids(d, r, deciding, &added)) {
        accept_request(d, r, next_pos);
        if (r->track != GC_TRACK_NONE) ckpt_accept(d->ckpts, r);
    } else {
        reject_request(d, r, added);
    }
}

int64_t decide_group(decide_t *d, gc_request_t *group, int64_t first_position) {
    int64_t next_pos = first_position;
    size_t deciding = 1;
    for (gc_request_t *r = group; r; r = r->next)
        decide(d, r, deciding++, &next_pos);
    return next_pos - 1;
}

/* ---------------------------------------------------------------- as parameters */

void decide_put_entities(const decide_t *d, pg_wire_buf_t *b, bool only_new) {
    size_t n = 0;
    for (size_t k = 0; k < d->nentities; k++)
        n += !only_new || d->nodes[k].taken_for_new;
    pg_wire_array_begin(b, PG_TEXTOID, n, false);
    for (size_t k = 0; k < d->nentities && n; k++) {
        const decide_entity_t *e = &d->nodes[k];
        if (!only_new || e->taken_for_new) pg_wire_array_elem(b, e->id, strlen(e->id));
    }
}

/* Appends the client-chosen event ids of the group to b as a uuid[] (only those can already be
 * stored: an id the daemon drew is new). */
void decide_put_event_ids(gc_request_t *group, pg_wire_buf_t *b) {
    size_t nids = 0;
    for (gc_request_t *r = group; r; r = r->next)
        for (size_t i = 0; i < r->n; i++)
            nids += r->events[i].has_event_id ? 1 : 0;
    pg_wire_array_begin(b, PG_UUIDOID, nids, false);
    for (gc_request_t *r = group; r; r = r->next)
        for (size_t i = 0; i < r->n; i++)
            if (r->events[i].has_event_id) pg_wire_array_elem(b, r->events[i].event_id, 16);
}

/* Fills the INSERT's arrays with every accepted event of the group, stamping each with the
 * commit time. Returns -1 when memory ran short. */
int decide_put_insert_params(const decide_t *d, gc_request_t *group, pg_wire_buf_t *p, int64_t ts) {
    bool meta_nulls = false;
    size_t n = d->naccepted;
    for (int k = 0; k < SCHEMA_INSERT_NPARAMS; k++)
        pg_wire_reset(&p[k]);
    for (gc_request_t *r = group; r; r = r->next)
        if (r->written)
            for (size_t i = 0; i < r->n; i++)
                meta_nulls |= r->events[i].metadata == NULL;
    pg_wire_array_begin(&p[SCHEMA_INSERT_P_POSITIONS], PG_INT8OID, n, false);
    pg_wire_array_begin(&p[SCHEMA_INSERT_P_EVENT_IDS], PG_UUIDOID, n, false);
    pg_wire_array_begin(&p[SCHEMA_INSERT_P_ENTITY_IDS], PG_TEXTOID, n, false);
    pg_wire_array_begin(&p[SCHEMA_INSERT_P_VERSIONS], PG_INT8OID, n, false);
    pg_wire_array_begin(&p[SCHEMA_INSERT_P_TOPICS], PG_TEXTOID, n, false);
    pg_wire_put_i64(&p[SCHEMA_INSERT_P_STORED_AT], ts);
    pg_wire_array_begin(&p[SCHEMA_INSERT_P_PAYLOADS], PG_BYTEAOID, n, false);
    pg_wire_array_begin(&p[SCHEMA_INSERT_P_METADATA], PG_BYTEAOID, n, meta_nulls);
    pg_wire_array_begin(&p[SCHEMA_INSERT_P_PARTITIONS], PG_INT8OID, n, false);
    for (gc_request_t *r = group; r; r = r->next) {
        if (!r->written) continue;
        for (size_t i = 0; i < r->n; i++) {
            evs_event_t *ev = &r->events[i];
            ev->timestamp = ts;
            pg_wire_put_i32(&p[SCHEMA_INSERT_P_POSITIONS], 8);
            pg_wire_put_i64(&p[SCHEMA_INSERT_P_POSITIONS], (int64_t)ev->position);
            pg_wire_array_elem(&p[SCHEMA_INSERT_P_EVENT_IDS], ev->event_id, 16);
            pg_wire_array_elem(&p[SCHEMA_INSERT_P_ENTITY_IDS], ev->entity_id,
                               strlen(ev->entity_id));
            pg_wire_put_i32(&p[SCHEMA_INSERT_P_VERSIONS], 8);
            pg_wire_put_i64(&p[SCHEMA_INSERT_P_VERSIONS], (int64_t)ev->version);
            pg_wire_array_elem(&p[SCHEMA_INSERT_P_TOPICS], ev->topic, strlen(ev->topic));
            pg_wire_array_elem(&p[SCHEMA_INSERT_P_PAYLOADS],
                               ev->payload ? (const void *)ev->payload : "", ev->payload_len);
            pg_wire_array_elem(&p[SCHEMA_INSERT_P_METADATA], ev->metadata, ev->metadata_len);
            pg_wire_put_i32(&p[SCHEMA_INSERT_P_PARTITIONS], 8);
            pg_wire_put_i64(&p[SCHEMA_INSERT_P_PARTITIONS],
                            (int64_t)evs_partition_hash(ev->entity_id));
        }
    }
    bool oom = false;
    for (int k = 0; k < SCHEMA_INSERT_NPARAMS; k++)
        oom |= p[k].failed;
    return oom ? -1 : 0;
}
