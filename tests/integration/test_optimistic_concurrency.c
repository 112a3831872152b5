/* test_optimistic_concurrency.c: writers racing on the expected version of the same entities:
 * every version is stored exactly once. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"

TestSuite(race, .fini = fx_teardown, .timeout = 60);

/* Several writers race "read the latest version n, append n+1" on the same entities: in the end
 * every version is stored exactly once, each by the writer that was told ok, and every loser was
 * told conflict. */
enum { RACERS = 6, ATTEMPTS = 40, ENTITIES = 2 };

typedef struct racer {
    int index;
    int ok, conflicts;
    uint64_t won[ATTEMPTS][2]; /* entity index, version */
    char error[256];
} racer_t;

static const char *race_entity(int k) {
    return tname(k ? "race-1" : "race-0");
}

/* The latest version of entity, or -1; -2 on a broken connection. */
static int64_t latest_version(int fd, uint64_t id, const char *entity) {
    rq_t r;
    rq_begin(&r, "get-by-entity", id, 3);
    pk_str(&r.pk, "entity_id");
    pk_str(&r.pk, entity);
    pk_str(&r.pk, "backwards");
    msgpack_pack_true(&r.pk);
    pk_str(&r.pk, "limit");
    msgpack_pack_uint64(&r.pk, 1);
    int rc = raw_send_rq(fd, &r);
    rq_free(&r);
    reply_t rep;
    if (rc || raw_recv(fd, 10000, &rep) != 0) return -2;
    int64_t v = -2;
    const msgpack_object *evs = reply_get(&rep, "events");
    if (reply_ok(&rep) && evs && evs->type == MSGPACK_OBJECT_ARRAY) {
        v = -1;
        if (evs->via.array.size == 1)
            v = (int64_t)obj_get(&evs->via.array.ptr[0], "version")->via.u64;
    }
    reply_free(&rep);
    return v;
}

static void *race(void *arg) {
    racer_t *me = arg;
    int fd = test_connect_raw(&fx_daemon);
    if (fd < 0) {
        snprintf(me->error, sizeof me->error, "connect failed");
        return NULL;
    }
    uint64_t id = 1;
    for (int k = 0; k < ATTEMPTS; k++) {
        int e = (k + me->index) % ENTITIES;
        int64_t v = latest_version(fd, id++, race_entity(e));
        if (v < -1) {
            snprintf(me->error, sizeof me->error, "get-by-entity failed");
            break;
        }
        char payload[32];
        snprintf(payload, sizeof payload, "%d/%d", me->index, k);
        rq_t r;
        rq_begin(&r, "append", id, 1);
        pk_str(&r.pk, "events");
        msgpack_pack_array(&r.pk, 1);
        msgpack_pack_map(&r.pk, 4);
        pk_str(&r.pk, "entity_id");
        pk_str(&r.pk, race_entity(e));
        pk_str(&r.pk, "topic");
        pk_str(&r.pk, tname("t"));
        pk_str(&r.pk, "payload");
        pk_bin(&r.pk, payload, strlen(payload));
        pk_str(&r.pk, "version");
        msgpack_pack_uint64(&r.pk, (uint64_t)(v + 1));
        int rc = raw_send_rq(fd, &r);
        rq_free(&r);
        reply_t rep;
        if (rc || raw_recv(fd, 10000, &rep) != 0) {
            snprintf(me->error, sizeof me->error, "append got no reply");
            break;
        }
        uint64_t got = 0;
        if (!reply_id(&rep, &got) || got != id) {
            snprintf(me->error, sizeof me->error, "reply with the wrong id");
        } else if (reply_ok(&rep)) {
            me->won[me->ok][0] = (uint64_t)e;
            me->won[me->ok][1] = reply_get(&rep, "versions")->via.array.ptr[0].via.u64;
            me->ok++;
        } else if (strcmp(reply_code(&rep), "conflict") == 0) {
            const msgpack_object *cur = obj_get(reply_get(&rep, "error"), "current_version");
            if (!cur || cur->type != MSGPACK_OBJECT_POSITIVE_INTEGER || (int64_t)cur->via.u64 <= v)
                snprintf(me->error, sizeof me->error,
                         "conflict whose current_version is not past the version read");
            me->conflicts++;
        } else {
            snprintf(me->error, sizeof me->error, "append failed: %s", reply_code(&rep));
        }
        reply_free(&rep);
        id++;
        if (me->error[0]) break;
    }
    close(fd);
    return NULL;
}

Test(race, optimistic_writers_store_every_version_exactly_once, .timeout = 120) {
    fx_start(NULL);
    racer_t racers[RACERS];
    pthread_t threads[RACERS];
    memset(racers, 0, sizeof racers);
    for (int i = 0; i < RACERS; i++) {
        racers[i].index = i;
        cr_assert_eq(pthread_create(&threads[i], NULL, race, &racers[i]), 0);
    }
    for (int i = 0; i < RACERS; i++)
        pthread_join(threads[i], NULL);
    int ok[ENTITIES] = {0}, conflicts = 0;
    for (int i = 0; i < RACERS; i++) {
        cr_assert_eq(racers[i].error[0], '\0', "racer %d: %s", i, racers[i].error);
        cr_assert_eq(racers[i].ok + racers[i].conflicts, ATTEMPTS);
        for (int k = 0; k < racers[i].ok; k++)
            ok[racers[i].won[k][0]]++;
        conflicts += racers[i].conflicts;
    }
    cr_assert_gt(conflicts, 0, "no race happened: make the test harder");
    int fd = fx_connect();
    for (int e = 0; e < ENTITIES; e++) {
        rq_t r;
        rq_begin(&r, "get-by-entity", 100 + (uint64_t)e, 2);
        pk_str(&r.pk, "entity_id");
        pk_str(&r.pk, race_entity(e));
        pk_str(&r.pk, "limit");
        msgpack_pack_uint64(&r.pk, 10000);
        fx_send_rq(fd, &r);
        reply_t rep = fx_expect_ok(fd, 100 + (uint64_t)e);
        const msgpack_object *evs = reply_get(&rep, "events");
        cr_assert_eq(evs->via.array.size, (uint32_t)ok[e],
                     "entity %d holds %u events but %d appends were told ok", e,
                     evs->via.array.size, ok[e]);
        for (uint32_t v = 0; v < evs->via.array.size; v++) {
            const msgpack_object *ev = &evs->via.array.ptr[v];
            cr_assert_eq(obj_get(ev, "version")->via.u64, v, "versions not 0..n-1");
            /* The event at version v is the one whose writer was told it got v. */
            const msgpack_object *pl = obj_get(ev, "payload");
            int who = -1, attempt = -1;
            char text[32] = "";
            memcpy(text, pl->via.bin.ptr, pl->via.bin.size < 31 ? pl->via.bin.size : 31);
            cr_assert_eq(sscanf(text, "%d/%d", &who, &attempt), 2);
            bool told = false;
            for (int k = 0; k < racers[who].ok; k++)
                if (racers[who].won[k][0] == (uint64_t)e && racers[who].won[k][1] == v) told = true;
            cr_assert(told, "version %u of entity %d was stored for a writer not told so", v, e);
        }
        reply_free(&rep);
    }
    close(fd);
    fx_finish();
}
