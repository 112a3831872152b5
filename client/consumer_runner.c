/* consumer_runner.c: a durable consumer. It holds a consumer name with a subscription
 * ("consumer", docs/protocol.md section 11), hands every event to a handler (stored events, or
 * domain events decoded and upcast through a registry), and stores the consumer's checkpoint
 * every N events, every T milliseconds, or when the application asks.
 *
 * One connection carries the subscription, the checkpoints and the handler's own requests
 * (evs_consumer_context), so that a subscription that lost its consumer to another holder has
 * its checkpoints and tracked appends refused by the server. A lost connection is made again
 * (with a backoff) inside evs_consumer_run, which then subscribes after the last event handled:
 * an event handled but not checkpointed before a crash of the process comes again after it
 * (at least once); a handler that stores its effect with a tracking applies it once. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client_priv.h"
#include "domain_priv.h"

struct evs_consumer {
    evs_consumer_options_t o;
    char *consumer, *prefix, **topics;
    evs_context_t *c;
    uint64_t sub;
    uint64_t handled;      /* position of the last event handled (0: none yet) */
    uint64_t checkpointed; /* the checkpoint as this consumer knows it stored */
    uint32_t since;        /* events handled since the last checkpoint */
    int64_t checkpoint_at; /* when the next timed checkpoint is due (ms; 0: none) */
    int backoff_ms;
    unsigned reconnects;
    bool connected_once;
    char errstr[1024];
};

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

EVS_API evs_consumer_t *evs_consumer_new(const evs_consumer_options_t *opts) {
    if (!opts || !opts->consumer || !codec_valid_name(opts->consumer, strlen(opts->consumer)))
        return NULL;
    if (!opts->on_event == !opts->on_domain_event) return NULL; /* exactly one handler */
    if (opts->on_domain_event && !opts->registry) return NULL;
    if (opts->ntopics > EVS_MAX_TOPICS) return NULL;
    evs_consumer_t *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    k->o = *opts;
    bool ok = (k->consumer = strdup(opts->consumer)) != NULL;
    if (ok && opts->entity_prefix) ok = (k->prefix = dup_or_null(opts->entity_prefix)) != NULL;
    if (ok && opts->ntopics) {
        ok = (k->topics = calloc(opts->ntopics, sizeof *k->topics)) != NULL;
        for (size_t i = 0; ok && i < opts->ntopics; i++)
            ok = opts->topics[i] && (k->topics[i] = strdup(opts->topics[i])) != NULL;
    }
    k->o.consumer = k->consumer;
    k->o.entity_prefix = k->prefix;
    k->o.topics = (const char *const *)k->topics;
    if (!k->o.retry_min_ms) k->o.retry_min_ms = 100;
    if (!k->o.retry_max_ms) k->o.retry_max_ms = 5000;
    if (!k->o.checkpoint_every && !k->o.checkpoint_ms && !k->o.manual) k->o.checkpoint_every = 1;
    if (!ok) {
        evs_consumer_free(k);
        return NULL;
    }
    return k;
}

static void drop_connection(evs_consumer_t *k) {
    if (!k->c) return;
    if (k->c->err) snprintf(k->errstr, sizeof k->errstr, "%s", k->c->errstr);
    evs_free(k->c);
    k->c = NULL;
}

EVS_API void evs_consumer_free(evs_consumer_t *k) {
    if (!k) return;
    drop_connection(k);
    for (size_t i = 0; k->topics && i < k->o.ntopics; i++)
        free(k->topics[i]);
    free(k->topics);
    free(k->prefix);
    free(k->consumer);
    free(k);
}

EVS_API evs_context_t *evs_consumer_context(const evs_consumer_t *k) {
    return k ? k->c : NULL;
}
EVS_API uint64_t evs_consumer_position(const evs_consumer_t *k) {
    return k ? k->handled : 0;
}
EVS_API uint64_t evs_consumer_checkpointed(const evs_consumer_t *k) {
    return k ? k->checkpointed : 0;
}
EVS_API unsigned evs_consumer_reconnects(const evs_consumer_t *k) {
    return k ? k->reconnects : 0;
}
EVS_API const char *evs_consumer_errstr(const evs_consumer_t *k) {
    return k ? k->errstr : "";
}

/* Connects and subscribes: after the last event handled, else after the checkpoint. 0, or the
 * failure (the connection is dropped; the caller retries after a backoff unless it is final). */
static int connect_and_subscribe(evs_consumer_t *k) {
    evs_options_t co = {.addr = k->o.addr,
                        .timeout_ms = k->o.standby ? 0 : k->o.timeout_ms,
                        .tls = k->o.tls,
                        .token = k->o.token};
    k->c = evs_connect_with_options(&co);
    if (!k->c) {
        snprintf(k->errstr, sizeof k->errstr, "out of memory");
        return EVS_ENOMEM;
    }
    int rc = k->c->err;
    if (rc == 0) {
        evs_sub_options_t so = {.has_after = k->handled > 0,
                                .after = k->handled,
                                .topics = k->o.topics,
                                .ntopics = k->o.ntopics,
                                .entity_prefix = k->prefix,
                                .consumer = k->consumer,
                                .standby = k->o.standby};
        rc = evs_subscribe(k->c, &so, &k->sub);
    }
    if (rc < 0) {
        drop_connection(k);
        return rc;
    }
    if (k->connected_once) k->reconnects++;
    k->connected_once = true;
    k->backoff_ms = 0;
    if (!k->handled) { /* the checkpoint the subscription starts after */
        uint64_t after = 0;
        evs_sub_started_after(k->c, k->sub, &after);
        k->handled = k->checkpointed = after;
    }
    return 0;
}

/* A failure that another try cannot mend stops the run. */
static bool final_failure(int rc) {
    return rc == EVS_EUNAUTHORIZED || rc == EVS_EFORBIDDEN || rc == EVS_EINVAL ||
           rc == EVS_EBAD_REQUEST || rc == EVS_ECONFLICT || rc == EVS_ENOMEM;
}

EVS_API int evs_consumer_checkpoint(evs_consumer_t *k) {
    if (!k) return EVS_EINVAL;
    if (k->handled <= k->checkpointed) return 0;
    if (!k->c) return EVS_EIO;
    int rc = evs_checkpoint(k->c, k->consumer, k->handled, NULL);
    if (rc == 0) {
        k->checkpointed = k->handled;
        k->since = 0;
    } else {
        snprintf(k->errstr, sizeof k->errstr, "%s", k->c->errstr);
    }
    return rc;
}

EVS_API void evs_consumer_tracked(evs_consumer_t *k) {
    if (!k) return;
    if (k->handled > k->checkpointed) k->checkpointed = k->handled;
}

/* Hands one event to the handler. The event's position becomes the one handled once the
 * handler succeeded (EVS_EALREADY_PROCESSED counts as success: its effect is stored). */
static int handle(evs_consumer_t *k, const evs_event_t *stored) {
    int rc;
    uint64_t before = k->handled;
    k->handled = stored->position; /* what evs_consumer_position says inside the handler */
    if (k->o.on_event) {
        rc = k->o.on_event(k, stored, k->o.arg);
    } else {
        evs_error_t err = {0};
        evs_domain_event_t *ev = NULL;
        rc = dom_event_from_feed(k->o.registry, k->o.skip_unknown, stored, &ev, &err);
        if (rc == 0 && ev) rc = k->o.on_domain_event(k, ev, k->o.arg, &err);
        evs_domain_event_free(ev);
        if (rc < 0 && rc != EVS_EALREADY_PROCESSED)
            snprintf(k->errstr, sizeof k->errstr, "%s at position %" PRIu64 ": %s", stored->topic,
                     stored->position, err.str);
    }
    if (rc == EVS_EALREADY_PROCESSED) {
        rc = 0;
        if (k->checkpointed < stored->position) k->checkpointed = stored->position;
    }
    if (rc < 0) {
        k->handled = before;
        if (k->o.on_event)
            snprintf(k->errstr, sizeof k->errstr, "the handler failed on %s at position %" PRIu64,
                     stored->topic, stored->position);
        return rc;
    }
    if (k->checkpointed < k->handled) k->since++;
    return 0;
}

/* Stores the checkpoint when one is due (count or time). */
static int checkpoint_if_due(evs_consumer_t *k) {
    if (k->o.manual || k->handled <= k->checkpointed) return 0;
    bool due = (k->o.checkpoint_every && k->since >= k->o.checkpoint_every) ||
               (k->o.checkpoint_ms && k->checkpoint_at && mono_ms() >= k->checkpoint_at);
    if (!due) return 0;
    int rc = evs_consumer_checkpoint(k);
    if (k->o.checkpoint_ms) k->checkpoint_at = mono_ms() + k->o.checkpoint_ms;
    return rc;
}

EVS_API int evs_consumer_run(evs_consumer_t *k, int timeout_ms) {
    if (!k) return EVS_EINVAL;
    int64_t deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
    int handled = 0;
    for (;;) {
        int64_t now = mono_ms();
        int left = deadline < 0 ? -1 : (int)(deadline > now ? deadline - now : 0);
        if (!k->c) {
            int rc = connect_and_subscribe(k);
            if (rc < 0) {
                if (final_failure(rc)) return rc;
                k->backoff_ms = k->backoff_ms ? k->backoff_ms * 2 : k->o.retry_min_ms;
                if (k->backoff_ms > k->o.retry_max_ms) k->backoff_ms = k->o.retry_max_ms;
                int nap = left >= 0 && left < k->backoff_ms ? left : k->backoff_ms;
                struct timespec ts = {nap / 1000, (long)(nap % 1000) * 1000000};
                nanosleep(&ts, NULL); /* the backoff between tries, not a condition */
                if (left == 0) return handled;
                continue;
            }
            if (k->o.checkpoint_ms) k->checkpoint_at = mono_ms() + k->o.checkpoint_ms;
        }
        int wait = left;
        if (k->o.checkpoint_ms && !k->o.manual && k->handled > k->checkpointed) {
            int64_t due = k->checkpoint_at - now;
            if (due < 0) due = 0;
            if (wait < 0 || due < wait) wait = (int)due;
        }
        evs_push_t *push = NULL;
        int rc = evs_sub_next(k->c, k->sub, wait, &push);
        if (rc < 0) {
            drop_connection(k);
            continue;
        }
        for (size_t i = 0; push && i < push->n; i++) {
            if (push->events[i].position <= k->handled) continue; /* seen before a reconnect */
            if ((rc = handle(k, &push->events[i])) < 0) break;
            if (handled < INT32_MAX) handled++;
            if ((rc = checkpoint_if_due(k)) < 0) break;
        }
        evs_push_free(push);
        if (rc == 0) rc = checkpoint_if_due(k);
        if (rc < 0) {
            /* The events after the failing one in this push are gone with it: the next run
             * subscribes again after the last one handled. */
            bool dead = k->c && k->c->priv->dead;
            drop_connection(k);
            if (dead) continue; /* the connection died under the handler: retry */
            return rc;
        }
        if (deadline >= 0 && mono_ms() >= deadline) return handled;
    }
}

EVS_API int evs_consumer_close(evs_consumer_t *k) {
    if (!k) return 0;
    int rc = k->c && !k->o.manual ? evs_consumer_checkpoint(k) : 0;
    evs_consumer_free(k);
    return rc;
}
