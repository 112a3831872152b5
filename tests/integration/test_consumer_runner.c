/* test_consumer_runner.c: the durable consumer of libevstore (client/consumer_runner.c): it
 * starts after the stored checkpoint, checkpoints every N events, every T ms or when asked,
 * hands domain events through a registry, applies a handler's tracked saves once, holds its
 * consumer alone (a second holder is a conflict, a standby takes over). One daemon per test,
 * on $EVSTORE_TEST_STORE. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <evstore.h>

#include "../common/clock.h"
#include "../common/daemon.h"
#include "../unit/test_domain_fixture.h"

static test_daemon_t daemon_;
static evs_context_t *c;
static char tag[16];   /* random per test */
static char topic[48]; /* the test's topic: every runner here follows only it */
static char name[48];  /* the test's consumer name */

static void setup(void) {
    cr_assert_eq(test_daemon_start(&daemon_, NULL), 0, "evstored did not start");
    evs_options_t o = {.addr = daemon_.addr, .timeout_ms = 10000};
    c = evs_connect_with_options(&o);
    cr_assert_not_null(c);
    cr_assert_eq(c->err, 0, "connect: %s", c->errstr);
    char r[37];
    evs_random_id(r);
    snprintf(tag, sizeof tag, "%.8s", r);
    snprintf(topic, sizeof topic, "cr.%s", tag);
    snprintf(name, sizeof name, "cr-%s", tag);
}

static void teardown(void) {
    evs_free(c);
    c = NULL;
    if (daemon_.pid > 0) cr_expect_eq(test_daemon_stop(&daemon_), 0, "evstored did not exit 0");
}

TestSuite(consumer_runner, .init = setup, .fini = teardown, .timeout = 60);

static uint64_t append_one(const char *t) {
    char id[64];
    snprintf(id, sizeof id, "e-%s", tag);
    evs_event_t ev = {
        .entity_id = id, .topic = (char *)t, .payload = (uint8_t *)"\x80", .payload_len = 1};
    uint64_t p;
    cr_assert_eq(evs_append(c, &ev, 1, &p, NULL), 0, "%s", c->errstr);
    return p;
}

static uint64_t checkpoint_of(const char *consumer) {
    uint64_t p = 99;
    cr_assert_eq(evs_get_checkpoint(c, consumer, &p), 0, "%s", c->errstr);
    return p;
}

typedef struct seen {
    uint64_t positions[64];
    int n;
    int fail_at; /* the handler fails on this event (1-based count of calls), 0: never */
    int calls;
    int already_at; /* the handler answers "already processed" on this call */
} seen_t;

static int record(evs_consumer_t *k, const evs_event_t *ev, void *arg) {
    seen_t *s = arg;
    s->calls++;
    if (s->fail_at && s->calls == s->fail_at) return EVS_EINVAL;
    if (s->already_at && s->calls == s->already_at) return EVS_EALREADY_PROCESSED;
    cr_assert_eq(evs_consumer_position(k), ev->position);
    cr_assert_lt(s->n, 64);
    s->positions[s->n++] = ev->position;
    return 0;
}

static evs_consumer_t *runner(seen_t *s, uint32_t every, int ms, bool manual) {
    const char *topics[] = {topic};
    evs_consumer_options_t o = {.addr = daemon_.addr,
                                .timeout_ms = 10000,
                                .consumer = name,
                                .topics = topics,
                                .ntopics = 1,
                                .checkpoint_every = every,
                                .checkpoint_ms = ms,
                                .manual = manual,
                                .on_event = record,
                                .arg = s};
    evs_consumer_t *k = evs_consumer_new(&o);
    cr_assert_not_null(k);
    return k;
}

/* Runs k until the handler has seen n events in all (deadline 10 s). */
static void run_until(evs_consumer_t *k, const seen_t *s, int n) {
    int64_t deadline = now_ms() + 10000;
    while (s->n < n) {
        cr_assert_lt(now_ms(), deadline, "only %d of %d events handled", s->n, n);
        int rc = evs_consumer_run(k, 100);
        cr_assert_geq(rc, 0, "%s: %s", evs_code_name(rc), evs_consumer_errstr(k));
    }
}

Test(consumer_runner, checkpoints_each_event_and_resumes_after_it) {
    uint64_t p[5];
    for (int i = 0; i < 5; i++)
        p[i] = append_one(topic);
    append_one("cr.other"); /* another topic: not handed */
    seen_t s = {0};
    evs_consumer_t *k = runner(&s, 0, 0, false);
    run_until(k, &s, 5);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(s.positions[i], p[i]);
    cr_assert_eq(checkpoint_of(name), p[4]);
    cr_assert_eq(evs_consumer_close(k), 0);

    uint64_t p6 = append_one(topic);
    seen_t s2 = {0};
    k = runner(&s2, 0, 0, false);
    run_until(k, &s2, 1);
    cr_assert_eq(evs_consumer_run(k, 100), 0, "nothing more comes");
    cr_assert_eq(s2.n, 1);
    cr_assert_eq(s2.positions[0], p6, "it starts after the checkpoint");
    cr_assert_eq(checkpoint_of(name), p6);
    evs_consumer_free(k);
}

Test(consumer_runner, checkpoints_every_n_events_and_on_close) {
    uint64_t p[7];
    for (int i = 0; i < 7; i++)
        p[i] = append_one(topic);
    seen_t s = {0};
    evs_consumer_t *k = runner(&s, 3, 0, false);
    run_until(k, &s, 7);
    cr_assert_eq(checkpoint_of(name), p[5], "after the 3rd and the 6th");
    cr_assert_eq(evs_consumer_checkpointed(k), p[5]);
    cr_assert_eq(evs_consumer_close(k), 0);
    cr_assert_eq(checkpoint_of(name), p[6], "close stores the rest");
}

Test(consumer_runner, checkpoints_after_t_ms) {
    uint64_t p[3];
    for (int i = 0; i < 3; i++)
        p[i] = append_one(topic);
    seen_t s = {0};
    evs_consumer_t *k = runner(&s, 1000, 200, false);
    run_until(k, &s, 3);
    int64_t deadline = now_ms() + 10000;
    while (checkpoint_of(name) != p[2]) {
        cr_assert_lt(now_ms(), deadline, "the timed checkpoint never came");
        cr_assert_geq(evs_consumer_run(k, 50), 0, "%s", evs_consumer_errstr(k));
    }
    evs_consumer_free(k);
}

Test(consumer_runner, manual_checkpoints_only_when_asked) {
    uint64_t p[3];
    for (int i = 0; i < 3; i++)
        p[i] = append_one(topic);
    seen_t s = {0};
    evs_consumer_t *k = runner(&s, 0, 0, true);
    run_until(k, &s, 3);
    cr_assert_eq(checkpoint_of(name), 0);
    cr_assert_eq(evs_consumer_checkpoint(k), 0);
    cr_assert_eq(checkpoint_of(name), p[2]);
    evs_consumer_free(k);
}

Test(consumer_runner, a_failing_handler_sees_its_event_again) {
    uint64_t p[3];
    for (int i = 0; i < 3; i++)
        p[i] = append_one(topic);
    seen_t s = {.fail_at = 2};
    evs_consumer_t *k = runner(&s, 0, 0, false);
    int64_t deadline = now_ms() + 10000;
    int rc = 0;
    while ((rc = evs_consumer_run(k, 100)) >= 0 && s.calls < 2)
        cr_assert_lt(now_ms(), deadline);
    cr_assert_eq(rc, EVS_EINVAL, "the handler's code");
    cr_assert_eq(checkpoint_of(name), p[0]);
    run_until(k, &s, 3);
    cr_assert_eq(s.positions[1], p[1], "the failed event came again");
    cr_assert_eq(s.positions[2], p[2]);
    evs_consumer_free(k);
}

Test(consumer_runner, already_processed_counts_as_handled) {
    uint64_t p[2];
    for (int i = 0; i < 2; i++)
        p[i] = append_one(topic);
    seen_t s = {.already_at = 1};
    evs_consumer_t *k = runner(&s, 0, 0, true);
    int64_t deadline = now_ms() + 10000;
    while (s.calls < 2) {
        cr_assert_lt(now_ms(), deadline);
        cr_assert_geq(evs_consumer_run(k, 100), 0, "%s", evs_consumer_errstr(k));
    }
    cr_assert_eq(s.n, 1);
    cr_assert_eq(s.positions[0], p[1]);
    cr_assert_eq(evs_consumer_checkpointed(k), p[0], "its effect counts as stored");
    evs_consumer_free(k);
}

Test(consumer_runner, one_holder_and_a_standby_that_takes_over) {
    append_one(topic);
    seen_t s = {0}, s2 = {0};
    evs_consumer_t *k = runner(&s, 0, 0, false);
    run_until(k, &s, 1);
    evs_consumer_t *k2 = runner(&s2, 0, 0, false);
    cr_assert_eq(evs_consumer_run(k2, 100), EVS_ECONFLICT, "%s", evs_consumer_errstr(k2));
    evs_consumer_free(k2);

    evs_consumer_free(k);

    /* A holder in a child process (made after fork, so that this process shares none of its
     * connection), and a standby here that takes over when the child's holder goes. */
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(pfd[0]);
        seen_t s3 = {0};
        char none[64];
        snprintf(none, sizeof none, "%s.none", topic);
        const char *only[] = {none}; /* it sees nothing: the checkpoint stays for the standby */
        evs_consumer_options_t ho = {.addr = daemon_.addr,
                                     .consumer = name,
                                     .topics = only,
                                     .ntopics = 1,
                                     .on_event = record,
                                     .arg = &s3};
        evs_consumer_t *k3 = evs_consumer_new(&ho);
        if (evs_consumer_run(k3, 100) < 0) _exit(2); /* it holds the consumer from here */
        if (write(pfd[1], "x", 1) != 1) _exit(3);
        evs_consumer_run(k3, 300); /* holds a while, then goes */
        evs_consumer_close(k3);
        _exit(0);
    }
    close(pfd[1]);
    char x;
    cr_assert_eq(read(pfd[0], &x, 1), 1, "the child never held the consumer");
    close(pfd[0]);
    seen_t s4 = {0};
    const char *topics[] = {topic};
    evs_consumer_options_t o = {.addr = daemon_.addr,
                                .consumer = name,
                                .topics = topics,
                                .ntopics = 1,
                                .standby = true,
                                .on_event = record,
                                .arg = &s4};
    evs_consumer_t *ks = evs_consumer_new(&o);
    uint64_t p2 = append_one(topic);
    run_until(ks, &s4, 1);
    cr_assert_eq(s4.positions[0], p2, "the standby starts after the holder's checkpoint");
    cr_assert_eq(evs_consumer_close(ks), 0);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the holder failed");
    cr_assert_eq(checkpoint_of(name), p2);
}

/* ---------------------------------------------------------------- domain events, tracked */

typedef struct pm {
    evs_registry_t *reg;
    evs_repository_t *repo;
    int calls;
    int tracked_again;
} pm_t;

/* For each Added to an item "src", it creates one "dst" item, saved with the tracking. */
static int react(evs_consumer_t *k, const evs_domain_event_t *ev, void *arg, evs_error_t *err) {
    pm_t *pm = arg;
    pm->calls++;
    if (ev->type != &ADDED) return 0;
    evs_repository_set_conn(pm->repo, evs_consumer_context(k));
    char id[96];
    snprintf(id, sizeof id, "dst-%s-%" PRIu64, tag, ev->position);
    evs_entity_t *e = evs_entity_new(pm->reg, &ITEM, id);
    int rc = evs_entity_trigger(e, &CREATED, attrs_name("copy"), err);
    if (rc == 0) rc = evs_repository_save_tracked(pm->repo, &e, 1, name, ev->position);
    if (rc == EVS_EALREADY_PROCESSED) pm->tracked_again++;
    if (rc == 0) evs_consumer_tracked(k);
    evs_entity_free(e);
    return rc;
}

Test(consumer_runner, domain_events_with_tracked_saves) {
    pm_t pm = {.reg = fixture_registry()};
    evs_repository_options_t ro = {.registry = pm.reg, .type = &ITEM};
    cr_assert_not_null(pm.repo = evs_repository_new(c, &ro));
    char src[64], prefix[64];
    snprintf(src, sizeof src, "src-%s", tag);
    snprintf(prefix, sizeof prefix, "src-%s", tag);
    item_t *it = (item_t *)evs_entity_new(pm.reg, &ITEM, src);
    evs_error_t err = {0};
    cr_assert_eq(evs_entity_trigger(&it->base, &CREATED, attrs_name("s"), &err), 0);
    cr_assert_eq(evs_entity_trigger(&it->base, &ADDED, attrs_n(1), &err), 0);
    cr_assert_eq(evs_entity_trigger(&it->base, &ADDED, attrs_n(2), &err), 0);
    cr_assert_eq(evs_repository_save(pm.repo, &it->base), 0, "%s", c->errstr);
    evs_entity_free(&it->base);
    evs_events_t *l;
    cr_assert_eq(evs_get_by_entity(c, src, 0, 0, false, &l), 0);
    cr_assert_eq(l->n, 3);
    uint64_t last = l->events[2].position;
    evs_events_free(l);

    evs_consumer_options_t o = {.addr = daemon_.addr,
                                .timeout_ms = 10000,
                                .consumer = name,
                                .entity_prefix = prefix,
                                .checkpoint_every = 100,
                                .registry = pm.reg,
                                .on_domain_event = react,
                                .arg = &pm};
    evs_consumer_t *k = evs_consumer_new(&o);
    cr_assert_not_null(k);
    int64_t deadline = now_ms() + 10000;
    while (pm.calls < 3) {
        cr_assert_lt(now_ms(), deadline);
        cr_assert_geq(evs_consumer_run(k, 100), 0, "%s", evs_consumer_errstr(k));
    }
    cr_assert_eq(checkpoint_of(name), last, "the tracked save is the checkpoint");
    cr_assert_eq(evs_consumer_checkpointed(k), last);
    evs_consumer_free(k);

    size_t dst = 0;
    evs_events_t *all;
    cr_assert_eq(evs_read_all(c, 0, 1000, &all), 0, "%s", c->errstr);
    for (size_t i = 0; i < all->n; i++)
        if (strncmp(all->events[i].entity_id, "dst-", 4) == 0 &&
            strstr(all->events[i].entity_id, tag))
            dst++;
    evs_events_free(all);
    cr_assert_eq(dst, 2, "one reaction per Added");
    cr_assert_eq(pm.tracked_again, 0);
    evs_repository_free(pm.repo);
    evs_registry_free(pm.reg);
}
