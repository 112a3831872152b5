/* test_subscription_limits.c: the caps on subscriptions per connection and topics per
 * subscription (limit_exceeded naming the option; the connection serves on), and a fan-out
 * whose work follows the matching subscriptions, not all of them: the daemon's
 * subscription_filter_checks counter (stats) counts the (event, subscription) pairs it examined. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"

TestSuite(sublimits, .fini = fx_teardown, .timeout = 60);

static void send_sb(int fd, msgpack_sbuffer *sb) {
    cr_assert_eq(raw_send_sb(fd, sb), 0);
}

/* Reads frames until the reply to id (pushes before it are skipped); returns it (free it). */
static reply_t reply_to(int fd, uint64_t id) {
    for (;;) {
        reply_t r;
        cr_assert_eq(raw_recv(fd, 10000, &r), 0, "no reply to request %llu",
                     (unsigned long long)id);
        uint64_t got = 0;
        if (reply_id(&r, &got) && got == id) return r;
        reply_free(&r);
    }
}

/* Subscribes from after 0 with topics and prefix; returns the reply (free it). */
static reply_t subscribe(int fd, uint64_t id, const char *const *topics, size_t ntopics,
                         const char *prefix) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    rq_subscribe(&sb, id, true, 0, topics, ntopics, prefix);
    send_sb(fd, &sb);
    msgpack_sbuffer_destroy(&sb);
    return reply_to(fd, id);
}

/* Asserts r is the limit_exceeded reply whose message names option; frees r. */
static void assert_limit(reply_t *r, const char *option) {
    cr_assert_str_eq(reply_code(r), "limit_exceeded");
    const msgpack_object *m = obj_get(reply_get(r, "error"), "message");
    cr_assert(m && m->type == MSGPACK_OBJECT_STR);
    char *text = strndup(m->via.str.ptr, m->via.str.size);
    cr_assert(strstr(text, option), "the message names %s: %s", option, text);
    free(text);
    reply_free(r);
}

static uint64_t sub_of(reply_t *r) {
    cr_assert(reply_ok(r), "subscribe failed: %s", reply_code(r));
    uint64_t sid = obj_uint(reply_get(r, "sub"));
    reply_free(r);
    return sid;
}

Test(sublimits, subscriptions_per_connection_are_capped) {
    fx_start((const char *[]){"--max-subscriptions", "3", NULL});
    int fd = fx_connect();
    const char *t = tname("t");
    uint64_t sids[3];
    for (uint64_t i = 0; i < 3; i++) {
        reply_t r = subscribe(fd, 10 + i, &t, 1, NULL);
        sids[i] = sub_of(&r);
    }
    reply_t r = subscribe(fd, 20, &t, 1, NULL);
    assert_limit(&r, "max_subscriptions");
    /* another connection has its own allowance */
    int other = fx_connect();
    r = subscribe(other, 21, NULL, 0, NULL);
    sub_of(&r);
    close(other);
    /* the connection serves on, and a slot freed is usable again */
    rq_t u;
    rq_begin(&u, "unsubscribe", 22, 1);
    pk_str(&u.pk, "sub");
    msgpack_pack_uint64(&u.pk, sids[1]);
    fx_send_rq(fd, &u);
    reply_t ur = reply_to(fd, 22);
    cr_assert(reply_ok(&ur));
    reply_free(&ur);
    r = subscribe(fd, 23, &t, 1, NULL);
    sub_of(&r);
    close(fd);
    fx_finish();
}

Test(sublimits, topics_per_subscription_are_capped) {
    fx_start((const char *[]){"--max-subscription-topics", "2", NULL});
    int fd = fx_connect();
    char names[3][64];
    const char *topics[3];
    for (int i = 0; i < 3; i++) {
        snprintf(names[i], sizeof names[i], "%s", tname(i == 0 ? "a" : i == 1 ? "b" : "c"));
        topics[i] = names[i];
    }
    reply_t r = subscribe(fd, 1, topics, 3, NULL);
    assert_limit(&r, "max_subscription_topics");
    r = subscribe(fd, 2, topics, 2, NULL);
    sub_of(&r);
    close(fd);
    fx_finish();
}

/* The daemon's subscription_filter_checks counter. */
static uint64_t filter_checks(int fd, uint64_t id) {
    rq_t q;
    rq_begin(&q, "stats", id, 0);
    fx_send_rq(fd, &q);
    reply_t r = reply_to(fd, id);
    const msgpack_object *v = obj_get(reply_get(&r, "stats"), "subscription_filter_checks");
    cr_assert(v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER,
              "stats has subscription_filter_checks");
    uint64_t n = v->via.u64;
    reply_free(&r);
    return n;
}

/* 300 subscriptions on topics nobody appends to and one on the topic appended to: a commit of 20
 * events examines that one for each event (not 301), and it receives all 20. (No subscription
 * without a topic filter here: on PostgreSQL the other tests' commits reach this daemon too, and
 * such a subscription would be examined for each of them.) */
Test(sublimits, fan_out_work_does_not_grow_with_non_matching_subscriptions) {
    fx_start((const char *[]){"--max-subscriptions", "1000", NULL});
    int subs_fd = fx_connect();
    for (int i = 0; i < 300; i++) {
        char suffix[32];
        snprintf(suffix, sizeof suffix, "cold-%d", i);
        const char *t = tname(suffix);
        reply_t r = subscribe(subs_fd, 100 + (uint64_t)i, &t, 1, NULL);
        sub_of(&r);
    }
    char hot[128];
    snprintf(hot, sizeof hot, "%s", tname("hot"));
    const char *hot_topic = hot;
    reply_t r = subscribe(subs_fd, 1000, &hot_topic, 1, NULL);
    uint64_t hot_sid = sub_of(&r);

    int fd = fx_connect();
    uint64_t before = filter_checks(fd, 1);
    rq_event_t evs[20];
    char entity[128];
    snprintf(entity, sizeof entity, "%s", tname("e"));
    for (int i = 0; i < 20; i++)
        evs[i] = (rq_event_t){.entity_id = entity, .topic = hot, .payload = "x", .payload_len = 1};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    rq_append(&sb, 2, evs, 20);
    send_sb(fd, &sb);
    msgpack_sbuffer_destroy(&sb);
    reply_t ar = reply_to(fd, 2);
    cr_assert(reply_ok(&ar), "append failed: %s", reply_code(&ar));
    reply_free(&ar);

    /* every event reaches the hot subscription, and nothing else is pushed */
    size_t got = 0;
    while (got < 20) {
        reply_t p;
        cr_assert_eq(raw_recv(subs_fd, 10000, &p), 0, "pushes stopped at %zu events", got);
        const msgpack_object *sid = reply_get(&p, "sub"), *e = reply_get(&p, "events");
        if (e) {
            cr_assert_eq(obj_uint(sid), hot_sid, "a push to a subscription that matches nothing");
            got += e->via.array.size;
        }
        reply_free(&p);
    }
    cr_assert_eq(got, 20);
    uint64_t checks = filter_checks(fd, 3) - before;
    cr_assert_leq(checks, 20 * 2, "%llu filter checks for 20 events and 1 matching subscription",
                  (unsigned long long)checks);
    close(fd);
    close(subs_fd);
    fx_finish();
}

/* 256 subscriptions of one topic and one append of 300 events of it: 76,800 matches, more than
 * the fan-out records before it delivers, so the commit reaches each subscription in several
 * pushes. Each still gets every event once, in position order. */
Test(sublimits, a_large_commit_to_many_subscriptions_arrives_whole_and_in_order) {
    enum { NSUBS = 256, NEVENTS = 300 };
    fx_start(NULL);
    int subs_fd = fx_connect();
    char topic[128];
    snprintf(topic, sizeof topic, "%s", tname("wide"));
    const char *t = topic;
    uint64_t sids[NSUBS];
    for (int i = 0; i < NSUBS; i++) {
        reply_t r = subscribe(subs_fd, 100 + (uint64_t)i, &t, 1, NULL);
        sids[i] = sub_of(&r);
    }
    int fd = fx_connect();
    static rq_event_t evs[NEVENTS];
    char entity[128];
    snprintf(entity, sizeof entity, "%s", tname("e"));
    for (int i = 0; i < NEVENTS; i++)
        evs[i] =
            (rq_event_t){.entity_id = entity, .topic = topic, .payload = "x", .payload_len = 1};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    rq_append(&sb, 2, evs, NEVENTS);
    send_sb(fd, &sb);
    msgpack_sbuffer_destroy(&sb);
    reply_t ar = reply_to(fd, 2);
    cr_assert(reply_ok(&ar), "append failed: %s", reply_code(&ar));
    const msgpack_object *pos = reply_get(&ar, "positions");
    cr_assert(pos && pos->type == MSGPACK_OBJECT_ARRAY && pos->via.array.size == NEVENTS);
    uint64_t first = obj_uint(&pos->via.array.ptr[0]);
    uint64_t last = obj_uint(&pos->via.array.ptr[NEVENTS - 1]);
    reply_free(&ar);

    static size_t got[NSUBS];
    static uint64_t prev[NSUBS];
    memset(got, 0, sizeof got);
    memset(prev, 0, sizeof prev);
    size_t done = 0;
    while (done < NSUBS) {
        reply_t p;
        cr_assert_eq(raw_recv(subs_fd, 10000, &p), 0, "pushes stopped: %zu subscriptions complete",
                     done);
        const msgpack_object *e = reply_get(&p, "events");
        if (e) {
            uint64_t sid = obj_uint(reply_get(&p, "sub"));
            size_t k = 0;
            while (k < NSUBS && sids[k] != sid)
                k++;
            cr_assert_lt(k, NSUBS, "a push for unknown subscription %llu", (unsigned long long)sid);
            for (uint32_t j = 0; j < e->via.array.size; j++) {
                uint64_t at = obj_uint(obj_get(&e->via.array.ptr[j], "position"));
                cr_assert_gt(at, prev[k], "subscription %llu: position %llu after %llu",
                             (unsigned long long)sid, (unsigned long long)at,
                             (unsigned long long)prev[k]);
                cr_assert(at >= first && at <= last);
                prev[k] = at;
                if (++got[k] == NEVENTS) done++;
            }
        }
        reply_free(&p);
    }
    for (size_t k = 0; k < NSUBS; k++)
        cr_assert_eq(prev[k], last);
    close(fd);
    close(subs_fd);
    fx_finish();
}
