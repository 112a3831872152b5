/* domain_snapshot.c: an entity to a snapshot and back.
 *
 * A snapshot's payload is the canonical map the entity type's snapshot function fills; its
 * topic is the entity type's topic with the schema version after an '@' ("bank.Account@2"),
 * because the daemon keeps no metadata for snapshots. Restoring runs the topic's upcasters up
 * to the type's current schema, exactly as for events. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "domain_priv.h"

EVS_API void evs_snapshot_free(evs_snapshot_t *snap) {
    if (!snap) return;
    free(snap->entity_id);
    free(snap->topic);
    free(snap->payload);
    free(snap);
}

EVS_API int evs_entity_snapshot(const evs_entity_t *e, evs_snapshot_t **out, evs_error_t *err) {
    *out = NULL;
    dom_ok(err);
    if (!e || !e->type || !e->type->snapshot)
        return dom_fail(err, EVS_EINVAL, "the entity type %s cannot take snapshots",
                        e && e->type ? e->type->topic : "(none)");
    if (e->discarded)
        return dom_fail(err, EVS_EINVAL, "entity %s is discarded: no snapshot", e->id);
    char topic[EVS_NAME_MAX + 1];
    if (dom_snapshot_topic(e->type->topic, e->type->schema_version, topic, sizeof topic) < 0)
        return dom_fail(err, EVS_EINVAL, "the topic %s is too long for a snapshot", e->type->topic);
    evs_value_t *state = evs_map_new();
    if (!state) return dom_fail(err, EVS_ENOMEM, "out of memory for a snapshot");
    int r = e->type->snapshot(e, state, err);
    if (r < 0) {
        evs_value_free(state);
        if (err && !err->code) dom_fail(err, r, "the snapshot function of %s failed", topic);
        return r;
    }
    evs_snapshot_t *s = calloc(1, sizeof *s);
    if (s) {
        s->entity_id = strdup(e->id);
        s->topic = strdup(topic);
        s->version = e->version;
    }
    if (!s || !s->entity_id || !s->topic ||
        evs_value_encode(state, &s->payload, &s->payload_len) < 0) {
        evs_snapshot_free(s);
        evs_value_free(state);
        return dom_fail(err, EVS_ENOMEM, "out of memory for a snapshot");
    }
    evs_value_free(state);
    *out = s;
    return 0;
}

EVS_API int evs_player_restore(evs_entity_t *e, const evs_snapshot_t *snap, evs_error_t *err) {
    dom_ok(err);
    if (!e || !snap || !snap->topic || !snap->entity_id)
        return dom_fail(err, EVS_EINVAL, "restoring needs an entity and a snapshot");
    if (e->version != 0 || e->npending || e->discarded)
        return dom_fail(err, EVS_EINVAL, "only a fresh entity can be restored from a snapshot");
    if (strcmp(snap->entity_id, e->id) != 0)
        return dom_fail(err, EVS_EINVAL, "a snapshot of %s cannot restore %s", snap->entity_id,
                        e->id);
    if (!e->type->restore)
        return dom_fail(err, EVS_EINVAL, "the entity type %s cannot restore snapshots",
                        e->type->topic);
    size_t tlen;
    uint32_t schema;
    size_t own = strlen(e->type->topic);
    bool ours = strncmp(snap->topic, e->type->topic, own) == 0 &&
                (snap->topic[own] == '\0' || snap->topic[own] == '@');
    if (ours && dom_snapshot_topic_parse(snap->topic, &tlen, &schema) < 0)
        return dom_fail(err, EVS_EINVAL,
                        "the snapshot of %s has topic \"%s\", whose schema is not a number", e->id,
                        snap->topic);
    if (!ours || tlen != own)
        return dom_fail(err, EVS_EWRONG_TYPE,
                        "the snapshot of %s has topic \"%s\", not one of entity type %s", e->id,
                        snap->topic, e->type->topic);
    evs_value_t *state;
    int r = evs_value_decode(snap->payload, snap->payload_len, &state, err);
    if (r < 0) return r;
    if ((r = evs_registry_upcast(e->registry, e->type->topic, schema,
                                 dom_schema(e->type->schema_version), state, err)) < 0) {
        evs_value_free(state);
        return r;
    }
    r = e->type->restore(e, state, err);
    evs_value_free(state);
    if (r < 0) {
        if (err && !err->code)
            dom_fail(err, r, "restoring %s from its snapshot at version %" PRIu64 " failed", e->id,
                     snap->version);
        return r;
    }
    e->version = snap->version;
    return 0;
}
