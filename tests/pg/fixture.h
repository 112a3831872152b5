/* fixture.h: the setup and teardown the PostgreSQL test files share: a throwaway database on the
 * cluster of EVSTORE_PG_URL and a libuv loop for the stores under test. */
#ifndef EVS_TESTS_PG_FIXTURE_H
#define EVS_TESTS_PG_FIXTURE_H

#include <uv.h>

#include "../common/db.h"

/* Skips the test when EVSTORE_PG_URL is not set; else sets *url to it, creates a database named
 * after prefix in *db and initialises *loop. */
void pg_fixture_setup(uv_loop_t *loop, test_db_t *db, const char *prefix, const char **url);

/* Gives the stores a few loop turns to close their handles, drops the database, and aborts when
 * a handle is still open (a failed assertion in a .fini does not fail a Criterion test; a crash
 * there is reported, and scripts/run-tests.sh counts it as a failure). */
void pg_fixture_teardown(uv_loop_t *loop, test_db_t *db, const char *url);

/* Runs loop until *done, failing the test (naming what) after ms milliseconds. */
void pg_run_until(uv_loop_t *loop, const int *done, int ms, const char *what);

#endif
