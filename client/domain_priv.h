/* domain_priv.h: what the domain layer's files share inside libevstore (not installed).
 *
 * The domain layer is split by concern: domain_value.c (attribute trees and their canonical
 * msgpack), domain_registry.c (types, topics, upcasters, stored <-> domain events),
 * domain_entity.c (entities and the event player), domain_snapshot.c (entity <-> snapshot),
 * domain_pubsub.c (in-process publish-subscribe). Those five never talk to the daemon, so the
 * unit tests compile them in directly. domain_repository.c (the repository and the persistence
 * subscriber) and client_snapshot.c (the two snapshot calls) use the connection. */
#ifndef EVS_DOMAIN_PRIV_H
#define EVS_DOMAIN_PRIV_H

#include <stdarg.h>

#include "evstore.h"

/* Key of the schema version in an event's metadata map. */
#define DOM_SCHEMA_KEY "schema"
/* Key of the topic of the entity type that triggered an event, in its metadata map. */
#define DOM_ORIGINATOR_KEY "originator_topic"

/* Reads a stored event's metadata: the schema version it was written with ("schema", else 1)
 * and the topic of the entity type that triggered it ("originator_topic", copied into
 * originator; "" when absent). 0, or EVS_EINVAL when the metadata is malformed. */
int dom_stored_meta(const evs_event_t *stored, uint32_t *schema, char originator[EVS_NAME_MAX + 1],
                    evs_error_t *err);

/* Fills err (may be NULL) with code and a printf-style sentence. Returns code. */
int dom_fail(evs_error_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clears err (may be NULL). */
void dom_ok(evs_error_t *err);

/* A schema version as stored in a type: 0 means 1. */
static inline uint32_t dom_schema(uint32_t v) {
    return v ? v : 1;
}

/* Releases what v holds and makes it nil (v itself is not freed). */
void dom_value_clear(evs_value_t *v);

/* Encodes a snapshot topic "TOPIC@N" into out (cap bytes). 0, or -1 when it does not fit. */
int dom_snapshot_topic(const char *topic, uint32_t schema, char *out, size_t cap);

/* Splits a snapshot topic "TOPIC@N" into its topic length and schema. 0, or -1 when it is not
 * one (a topic without '@' is schema 1). */
int dom_snapshot_topic_parse(const char *stopic, size_t *topic_len, uint32_t *schema);

/* A repository's context and options (domain_repository.c), for domain_unit.c. */
evs_context_t *dom_repository_context(const evs_repository_t *r);
const evs_repository_options_t *dom_repository_options(const evs_repository_t *r);
/* Saves the pending events of entities[0..n) (checked by the caller: of r's entity type, each
 * once) in one append, and then as evs_repository_save does: publication through r's kept
 * events (EVS_ESTORED_NOT_PUBLISHED when a subscriber fails), snapshots when due. */
int dom_repository_save(evs_repository_t *r, evs_entity_t *const *entities, size_t n);
/* dom_repository_save whose append carries consumer's tracking at position (consumer NULL: none);
 * with nothing pending it stores just the checkpoint. EVS_EALREADY_PROCESSED when the consumer
 * had processed position already (nothing stored, the pending events kept). */
int dom_repository_save_tracked(evs_repository_t *r, evs_entity_t *const *entities, size_t n,
                                const char *consumer, uint64_t position);

/* A stored event from a daemon feed as a domain event (domain_subscription.c): decoded and
 * upcast through reg, its originator and field table checked. 0 with *out NULL when
 * skip_unknown and reg does not know its topic; else 0 with *out set, or a failure in err. */
int dom_event_from_feed(const evs_registry_t *reg, bool skip_unknown, const evs_event_t *stored,
                        evs_domain_event_t **out, evs_error_t *err);

/* The innermost publication running on ps (for the persistence subscriber, which stores a
 * publication's events in one append): its id (unique per evs_pubsub_publish call on ps; 0
 * when none runs), its events[0..n) and the index i of the one being published. */
void dom_pubsub_batch(const evs_pubsub_t *ps, uint64_t *id,
                      const evs_domain_event_t *const **events, size_t *n, size_t *i);

#endif
