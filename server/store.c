/* store.c: choosing a store implementation from its URL, and what every implementation shares. */
#include "store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

/* ---------------------------------------------------------------- choosing a store */

static const store_driver_t *const drivers[] = {&store_memory_driver, &pg_store_driver};

static const store_driver_t *driver_for(const char *url) {
    for (size_t k = 0; k < sizeof drivers / sizeof drivers[0]; k++)
        if (drivers[k]->accepts(url)) return drivers[k];
    return NULL;
}

bool store_url_is_valid(const char *url) {
    return url && driver_for(url) != NULL;
}

store_t *store_open(const char *url, void *loop, codec_error_t *err) {
    if (!url || !*url) url = "memory";
    const store_driver_t *d = driver_for(url);
    if (!d) {
        codec_error_set(err, EVS_EBAD_REQUEST,
                        "unknown store \"%s\": use \"memory\" or a postgresql:// URL", url);
        return NULL;
    }
    store_t *s = d->open(url, loop, err);
    if (s) s->request_timeout_ms = STORE_DEFAULT_TIMEOUT_MS;
    return s;
}

void store_set_commit_listener(store_t *s, store_commit_cb cb, void *arg) {
    s->on_commit = cb;
    s->on_commit_arg = arg;
}

void store_set_live_listener(store_t *s, void (*cb)(void *arg), void *arg) {
    s->on_live = cb;
    s->on_live_arg = arg;
}

/* ---------------------------------------------------------------- condition and administration */

const char *store_status_state_name(store_status_t status) {
    switch (status) {
    case STORE_STATUS_OK:
        return "ok";
    case STORE_STATUS_DEGRADED:
        return "degraded";
    case STORE_STATUS_DOWN:
        return "unavailable";
    default:
        return "unknown";
    }
}

const char *store_status_health_name(store_status_t status) {
    switch (status) {
    case STORE_STATUS_OK:
        return "ok";
    case STORE_STATUS_DEGRADED:
        return "degraded";
    default:
        return "down";
    }
}

void store_condition_error(const store_t *s, codec_error_t *err, const char *fallback) {
    const store_condition_t *c = &s->condition;
    if (c->status == STORE_STATUS_DOWN && c->reason[0])
        codec_error_set(err, EVS_EUNAVAILABLE, "%s; the daemon keeps retrying, retry later",
                        c->reason);
    else
        codec_error_set(err, EVS_EUNAVAILABLE, "%s", fallback);
}

void store_set_condition(store_t *s, store_status_t status, const char *kind, bool refused,
                         const char *fmt, ...) {
    store_condition_t *c = &s->condition;
    bool changed = c->status != status || !c->kind || strcmp(c->kind, kind) != 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->reason, sizeof c->reason, fmt, ap);
    va_end(ap);
    c->refused = refused;
    if (!changed) return;
    store_status_t before = c->status;
    c->status = status;
    c->kind = kind;
    if (status == STORE_STATUS_OK) {
        if (before != STORE_STATUS_STARTING)
            log_info("store", "ok: serving again");
        else
            log_info("store", "ok");
    } else if (status == STORE_STATUS_DOWN) {
        if (refused)
            log_error("store", "down: %s", c->reason);
        else
            log_warn("store", "down: %s", c->reason);
    } else if (status == STORE_STATUS_DEGRADED) {
        log_warn("store", "degraded: %s", c->reason);
    }
    if (s->on_condition) s->on_condition(s->on_condition_arg);
}

static int administer(const char *url, char *msg, size_t len, bool migrate) {
    const store_driver_t *d = url && *url ? driver_for(url) : &store_memory_driver;
    int (*fn)(const char *, char *, size_t) = !d ? NULL : migrate ? d->migrate : d->new_id;
    if (!d) {
        snprintf(msg, len, "unknown store \"%s\": use a postgresql:// URL", url);
        return -1;
    }
    if (!fn) {
        snprintf(msg, len, "the %s store keeps nothing between runs: %s only applies to PostgreSQL",
                 d->name, migrate ? "--migrate" : "--new-store-id");
        return -1;
    }
    return fn(url, msg, len);
}

int store_migrate(const char *url, char *msg, size_t len) {
    return administer(url, msg, len, true);
}

int store_new_id(const char *url, char *msg, size_t len) {
    return administer(url, msg, len, false);
}

/* ---------------------------------------------------------------- for implementations */

int64_t store_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void store_conflict_version(codec_error_t *err, const char *entity_id, uint64_t asked,
                            uint64_t next) {
    codec_error_set(err, EVS_ECONFLICT,
                    "entity %.255s is at version %lld: version %llu is not its next version "
                    "(%llu); reload the entity and retry",
                    entity_id, (long long)next - 1, (unsigned long long)asked,
                    (unsigned long long)next);
    err->has_entity = true;
    snprintf(err->entity_id, sizeof err->entity_id, "%s", entity_id);
    err->has_version = true;
    err->version = asked;
    err->has_current = true;
    err->current_version = (int64_t)next - 1;
}

void store_conflict_event_id(codec_error_t *err, const uint8_t event_id[16]) {
    char text[37];
    evs_uuid_format(event_id, text);
    codec_error_set(err, EVS_ECONFLICT,
                    "event id %s is already stored (or repeated in this request) for another "
                    "event",
                    text);
    err->has_event_id = true;
    memcpy(err->event_id, event_id, 16);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

bool store_positions_distinct(const uint64_t *positions, size_t n) {
    size_t i = 1;
    while (i < n && positions[i] > positions[i - 1])
        i++;
    if (i >= n) return true; /* increasing, as a retry of a whole request is */
    uint64_t *sorted = malloc(n * sizeof *sorted);
    if (!sorted) return false;
    memcpy(sorted, positions, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_u64);
    bool distinct = true;
    for (i = 1; i < n && distinct; i++)
        distinct = sorted[i] != sorted[i - 1];
    free(sorted);
    return distinct;
}

void store_conflict_tracking(codec_error_t *err, const store_tracking_t *t, uint64_t stored) {
    codec_error_set(err, EVS_ECONFLICT,
                    "consumer %.255s is at position %llu: position %llu was processed before; "
                    "nothing was stored",
                    t->consumer, (unsigned long long)stored, (unsigned long long)t->position);
    err->has_tracking = true;
    err->has_position = true;
    err->position = stored;
}

void store_conflict_checkpoint(codec_error_t *err, const char *consumer, uint64_t asked,
                               uint64_t stored) {
    codec_error_set(err, EVS_ECONFLICT,
                    "consumer %.255s is at position %llu, past %llu: a checkpoint never moves "
                    "back (delete it first)",
                    consumer, (unsigned long long)stored, (unsigned long long)asked);
    err->has_position = true;
    err->position = stored;
}

void store_bad_position(codec_error_t *err, uint64_t position, uint64_t head) {
    codec_error_set(err, EVS_EBAD_REQUEST,
                    "position %llu is past the store's newest position (%llu): a consumer can "
                    "only have processed stored positions",
                    (unsigned long long)position, (unsigned long long)head);
}

int store_decide_tracking(const store_tracking_t *t, bool is_checkpoint, uint64_t stored,
                          uint64_t head, codec_error_t *err) {
    if (!is_checkpoint && t->position == 0)
        return codec_error_set(err, EVS_EBAD_REQUEST, "tracking position must be at least 1");
    if (t->position > head) {
        store_bad_position(err, t->position, head);
        return EVS_EBAD_REQUEST;
    }
    if (is_checkpoint && t->position < stored) {
        store_conflict_checkpoint(err, t->consumer, t->position, stored);
        return EVS_ECONFLICT;
    }
    if (!is_checkpoint && stored >= t->position) {
        store_conflict_tracking(err, t, stored);
        return EVS_ECONFLICT;
    }
    return 0;
}

void store_conflict_lease(codec_error_t *err, const char *consumer) {
    codec_error_set(err, EVS_ECONFLICT,
                    "this connection's subscription lost its lease on consumer %.255s to "
                    "another: its checkpoints are refused; nothing was stored",
                    consumer);
}
