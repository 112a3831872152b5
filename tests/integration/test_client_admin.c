/* test_client_admin.c: evs_admin_call, the daemon's stats and config maps through libevstore
 * against a real evstored (one fresh daemon per test, tests/common/daemon.h). */
#include <criterion/criterion.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include <evstore.h>

#include "../common/daemon.h"

static test_daemon_t daemon_;
static evs_context_t *c;

static void setup(void) {
    const char *const args[] = {"--max-frame", "1M", NULL};
    cr_assert_eq(test_daemon_start(&daemon_, args), 0, "evstored did not start");
    evs_options_t o = {.addr = daemon_.addr, .timeout_ms = 10000};
    c = evs_connect_with_options(&o);
    cr_assert_not_null(c);
    cr_assert_eq(c->err, 0, "connect: %s", c->errstr);
}

static void teardown(void) {
    evs_free(c);
    c = NULL;
    if (daemon_.pid > 0) cr_expect_eq(test_daemon_stop(&daemon_), 0, "evstored did not exit 0");
}

TestSuite(client_admin, .init = setup, .fini = teardown, .timeout = 30);

/* Calls op and decodes its map into a tree the caller frees. */
static evs_value_t *admin_map(const char *op) {
    uint8_t *bytes = NULL;
    size_t len = 0;
    cr_assert_eq(evs_admin_call(c, op, &bytes, &len), 0, "%s: %s", op, c->errstr);
    cr_assert_not_null(bytes);
    evs_value_t *map = NULL;
    evs_error_t err;
    cr_assert_eq(evs_value_decode(bytes, len, &map, &err), 0, "%s map: %s", op, err.str);
    free(bytes);
    return map;
}

Test(client_admin, stats_count_the_appends_made_on_the_connection) {
    evs_event_t ev = {
        .entity_id = "acct-1", .topic = "deposited", .payload = (uint8_t *)"x", .payload_len = 1};
    cr_assert_eq(evs_append(c, &ev, 1, NULL, NULL), 0, "append: %s", c->errstr);
    evs_value_t *stats = admin_map("stats");
    uint64_t n = 0;
    cr_assert_eq(evs_map_get_uint(stats, "events_appended", &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(evs_map_get_uint(stats, "connections", &n), 0);
    cr_assert_eq(n, 1);
    const evs_value_t *requests = evs_map_get(stats, "requests");
    cr_assert_not_null(requests);
    cr_assert_eq(evs_map_get_uint(requests, "append", &n), 0);
    cr_assert_eq(n, 1);
    const char *store = NULL;
    cr_assert_eq(evs_map_get_str(stats, "store_state", &store), 0);
    cr_assert_str_eq(store, "ok");
    evs_value_free(stats);
}

Test(client_admin, config_gives_each_option_its_value_default_and_reloadability) {
    evs_value_t *config = admin_map("config");
    const evs_value_t *max_frame = evs_map_get(config, "max_frame");
    cr_assert_not_null(max_frame);
    const char *s = NULL;
    cr_assert_eq(evs_map_get_str(max_frame, "value", &s), 0);
    cr_assert_str_eq(s, "1048576");
    cr_assert_eq(evs_map_get_str(max_frame, "default", &s), 0);
    cr_assert_str_eq(s, "16777216");
    bool reloadable = false;
    cr_assert_eq(evs_map_get_bool(max_frame, "reloadable", &reloadable), 0);
    cr_assert(reloadable);
    const evs_value_t *listen = evs_map_get(config, "listen");
    cr_assert_not_null(listen);
    cr_assert_eq(evs_map_get_str(listen, "value", &s), 0);
    cr_assert_str_eq(s, daemon_.addr);
    evs_value_free(config);
}

Test(client_admin, the_map_keeps_the_daemons_key_order) {
    uint8_t *bytes = NULL;
    size_t len = 0;
    cr_assert_eq(evs_admin_call(c, "stats", &bytes, &len), 0, "stats: %s", c->errstr);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(&u, (const char *)bytes, len, &off), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(off, len, "exactly one map");
    cr_assert_eq(u.data.type, MSGPACK_OBJECT_MAP);
    cr_assert_gt(u.data.via.map.size, 1);
    const msgpack_object *first = &u.data.via.map.ptr[0].key;
    cr_assert_eq(first->type, MSGPACK_OBJECT_STR);
    /* The daemon packs "version" first, though "connections" sorts before it. */
    cr_assert_eq(first->via.str.size, strlen("version"));
    cr_assert_eq(memcmp(first->via.str.ptr, "version", first->via.str.size), 0);
    msgpack_unpacked_destroy(&u);
    free(bytes);
}

Test(client_admin, another_op_is_refused_before_anything_is_sent) {
    uint8_t *bytes = (uint8_t *)"not touched";
    size_t len = 7;
    cr_assert_eq(evs_admin_call(c, "ping", &bytes, &len), EVS_EINVAL);
    cr_assert_null(bytes);
    cr_assert_eq(len, 0);
    cr_assert_eq(evs_admin_call(c, NULL, &bytes, &len), EVS_EINVAL);
    char version[32];
    cr_assert_eq(evs_ping(c, version, sizeof version), 0, "the context stays usable: %s",
                 c->errstr);
}
