/* fixture.h: what the PostgreSQL test files share: a throwaway database on the cluster of
 * EVSTORE_PG_URL and a libuv loop for the stores under test, and one raw append (with or without
 * a tracking) for the tests that drive daemons. */
#ifndef EVS_TESTS_PG_FIXTURE_H
#define EVS_TESTS_PG_FIXTURE_H

#include <uv.h>

#include "../common/db.h"
#include "../common/rawio.h"

/* Skips the test when EVSTORE_PG_URL is unset, else creates a throwaway database named after
 * prefix in that cluster (*url: the cluster's URL; drop it with test_db_drop). For the tests that
 * drive daemons rather than a store on a loop. */
void pg_db_setup(test_db_t *db, const char *prefix, const char **url);

/* As pg_db_setup, and initialises *loop. */
void pg_fixture_setup(uv_loop_t *loop, test_db_t *db, const char *prefix, const char **url);

/* Gives the stores a few loop turns to close their handles, drops the database, and aborts when
 * a handle is still open (a failed assertion in a .fini does not fail a Criterion test; a crash
 * there is reported, and scripts/run-tests.sh counts it as a failure). */
void pg_fixture_teardown(uv_loop_t *loop, test_db_t *db, const char *url);

/* Runs loop until *done, failing the test (naming what) after ms milliseconds. */
void pg_run_until(uv_loop_t *loop, const int *done, int ms, const char *what);

/* Appends one event (payload "x", topic tname("t")) to tname(entity) over the raw connection fd,
 * with a tracking {tname(consumer), position} when consumer is not NULL; returns the reply
 * (reply_free it). */
reply_t pg_append_one(int fd, uint64_t id, const char *entity, const char *consumer,
                      uint64_t position);

/* The same, the event asking for version (none when version < 0). */
reply_t pg_append_one_at(int fd, uint64_t id, const char *entity, int64_t version,
                         const char *consumer, uint64_t position);

#endif
