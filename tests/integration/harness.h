/* harness.h: starting and stopping a real evstored for integration tests.
 *
 * The daemon binary is $EVSTORED_BIN, or build/san/bin/evstored when unset. Each test that needs
 * a daemon starts its own on a free loopback port and stops it at the end. The store is
 * $EVSTORE_TEST_STORE when set ("memory" otherwise). */
#ifndef EVS_TEST_HARNESS_H
#define EVS_TEST_HARNESS_H

#include <stdint.h>
#include <sys/types.h>

typedef struct test_daemon {
    pid_t pid;
    int port;
    char addr[64];      /* "127.0.0.1:PORT" */
    char unix_path[108]; /* set when started with a Unix listener, else "" */
} test_daemon_t;

/* Starts evstored on a free port with extra_args (NULL-terminated, may be NULL) appended, and
 * waits (up to 10 s) until it accepts connections. Returns 0 or -1. */
int test_daemon_start(test_daemon_t *d, const char *const *extra_args);

/* SIGTERM, then waits; returns the exit status (0 expected), or -1 if it had to be killed. */
int test_daemon_stop(test_daemon_t *d);

/* True if the daemon still answers a ping on a fresh raw connection. */
int test_daemon_alive(const test_daemon_t *d);

/* A raw TCP connection to the daemon, or -1. */
int test_connect_raw(const test_daemon_t *d);

#endif
