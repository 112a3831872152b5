/* daemon.h: starting and stopping a real evstored for a test or a benchmark.
 *
 * The daemon binary is $EVSTORED_BIN, or bin/evstored of the build this executable belongs to
 * (BUILD/tests/X or BUILD/bench/X: BUILD/bin/evstored). Each test that needs a daemon starts its
 * own on a free loopback port and stops it at the end. */
#ifndef EVS_TEST_DAEMON_H
#define EVS_TEST_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct test_daemon {
    pid_t pid;
    int port;
    char addr[64];       /* "127.0.0.1:PORT" */
    char unix_path[108]; /* its Unix socket when it has one, else "" */
    char dir[64];        /* the temporary folder of a socket made by test_daemon_launch, or "" */
} test_daemon_t;

/* Starts evstored on a free port with store $EVSTORE_TEST_STORE ("memory" when unset; on
 * PostgreSQL a database of this test process's own, see test_store) and extra_args
 * (NULL-terminated, may be NULL) appended. Returns 0 or -1; see test_daemon_launch. */
int test_daemon_start(test_daemon_t *d, const char *const *extra_args);

/* Starts evstored --listen 127.0.0.1:PORT (a free port) --store store --log-level LEVEL
 * ($EVSTORE_TEST_LOG_LEVEL or "warn"), plus --unix DIR/evstored.sock in a fresh temporary folder
 * when own_unix is set, plus extra_args. It is ready when it answers a ping and its store serves
 * a read-all (on PostgreSQL the live feed has started by then); one that answers pings but whose
 * store does not serve within 20 s is taken as ready anyway (a test may want exactly that).
 * Another process may take the port before the daemon binds it; the daemon then exits at once
 * and the start is retried on a new port. The daemon inherits stderr, so its logs and any
 * sanitizer report appear in the test output, and it gets PR_SET_PDEATHSIG, so a test process
 * that dies takes its daemon with it. Returns 0, or -1 when it answered no ping in time. */
int test_daemon_launch(test_daemon_t *d, const char *store, bool own_unix,
                       const char *const *extra_args);

/* As test_daemon_launch (without a Unix socket), but returns as soon as the daemon answers a
 * ping, without waiting for its store to serve: for tests of the daemon's first moments. */
int test_daemon_launch_pinged(test_daemon_t *d, const char *store, const char *const *extra_args);

/* SIGTERM, then waits (up to 20 s, then SIGKILL); returns the exit status (0 expected; under
 * ASan a leak makes it non-zero), or -1 when it had to be killed or died of a signal. Removes
 * the temporary folder of its socket. */
int test_daemon_stop(test_daemon_t *d);

/* True if the daemon still answers a ping on a fresh raw connection. */
int test_daemon_alive(const test_daemon_t *d);

/* A raw TCP connection to the daemon, or -1. */
int test_connect_raw(const test_daemon_t *d);

/* The store of this test process's daemons: $EVSTORE_TEST_STORE, or "memory". On PostgreSQL each
 * test process (Criterion runs every test in a process of its own) gets a database of its own,
 * created on first use in the cluster that $EVSTORE_TEST_STORE names, so that a test may count
 * what the whole store holds and tests running in parallel never see each other's events. All
 * daemons of one test (a restart, two daemons on one database) share it. */
const char *test_store(void);

/* A token the readiness check sends in an auth request before its read (for daemons started
 * with an auth_file); NULL: none. */
extern const char *test_daemon_token;

/* A loopback TCP port nobody listens on right now, or -1 (another process may take it before
 * it is bound: test_daemon_launch tries again when that happens). */
int test_free_port(void);

/* The daemon binary (see above). */
const char *test_evstored_bin(void);

#endif
