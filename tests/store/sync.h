/* sync.h: blocking helpers over the asynchronous store interface, for the conformance suite.
 *
 * The suite is written against server/store.h only, so that every store (memory, PostgreSQL)
 * runs the same tests. Each test gets a fresh store from store_open($EVSTORE_TEST_STORE or
 * "memory") on its own uv loop, and a random name prefix so that tests sharing one database never
 * see each other's entities or topics.
 *
 * Each sync_* call starts one operation and runs the loop until its callback has fired (which may
 * be before the call returns), failing the test after SYNC_TIMEOUT_MS or if the callback fires
 * twice. Results are deep copies owned by the result struct: free them with the *_free call. */
#ifndef EVS_TEST_STORE_SYNC_H
#define EVS_TEST_STORE_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../server/store.h"

#define SYNC_TIMEOUT_MS 10000

/* The store under test and the prefix of every name this test uses. */
extern store_t *S;
extern const char *PREFIX;

/* Criterion .init/.fini of every store test. */
void store_setup(void);
void store_teardown(void);

/* PREFIX "-" suffix, valid until the end of the test. */
const char *name(const char *suffix);

/* An event to append: fresh random event_id, no version, payload copied from the string (its
 * bytes without the NUL). Its strings are the caller's and must outlive the append call. */
evs_event_t new_event(const char *entity_id, const char *topic, const char *payload);
/* The same with an explicit version. */
evs_event_t new_event_v(const char *entity_id, const char *topic, const char *payload,
                        uint64_t version);

typedef struct append_result {
    int code; /* 0 or the error's code */
    codec_error_t err;
    uint64_t *positions, *versions;
    size_t n;
    size_t committed_seen; /* NCOMMITTED when the callback ran */
} append_result_t;

typedef struct events_result {
    int code;
    codec_error_t err;
    evs_event_t *events; /* deep copies */
    size_t n;
} events_result_t;

int sync_append(evs_event_t *events, size_t n, append_result_t *r);
/* The two halves of sync_append, for a test that acts between the call and its completion. */
typedef struct op op_t;
op_t *sync_append_start(evs_event_t *events, size_t n, append_result_t *r);
int sync_wait_append(op_t *o, append_result_t *r);
int sync_get_by_entity(const char *entity_id, uint64_t from_version, uint32_t limit, bool backwards,
                       events_result_t *r);
int sync_get_by_id(const uint8_t event_id[16], events_result_t *r);
int sync_read(const store_read_t *q, events_result_t *r);
int sync_delete_entity(const char *entity_id, uint64_t *count, codec_error_t *err);

typedef struct snapshot_result {
    int code;
    codec_error_t err;
    uint64_t version;
    char *topic;
    uint8_t *payload;
    size_t payload_len;
    int64_t timestamp;
} snapshot_result_t;

int sync_put_snapshot(const store_snapshot_t *snap, codec_error_t *err);
int sync_get_snapshot(const char *entity_id, uint64_t max_version, snapshot_result_t *r);
int sync_delete_snapshots(const char *entity_id, uint64_t *count, codec_error_t *err);
void snapshot_result_free(snapshot_result_t *r);

void append_result_free(append_result_t *r);
void events_result_free(events_result_t *r);

/* Appends and asserts success; returns the result (free it). */
append_result_t append_ok(evs_event_t *events, size_t n);
/* The entity's events from version 0, forwards, asserting success (free the result). */
events_result_t entity_events(const char *entity_id);

/* How many events the entity holds, asserting success. */
size_t entity_count(const char *entity_id);

/* Skips the test when the store has no delete_entity. */
void need_delete(void);

/* Deletes the entity and asserts success; returns how many events went. */
uint64_t delete_ok(const char *entity_id);

/* The commit listener: every committed event whose entity_id starts with PREFIX is copied here,
 * in the order the listener saw them (events of other tests sharing a database are left out). */
extern evs_event_t *COMMITTED;
extern size_t NCOMMITTED;
/* Listener calls that carried at least one of this test's events. */
extern size_t COMMIT_CALLS;

/* Microseconds since the Unix epoch, by the test's clock. */
int64_t wall_us(void);

#endif
