/* proxy.h: a TCP proxy run by a test, between a client and a daemon, so that the test can cut
 * the client's connections (a network failure) or send new ones to another daemon (a restart).
 * Every socket is close-on-exec, so that daemons the test starts later do not inherit them. */
#ifndef EVS_TEST_PROXY_H
#define EVS_TEST_PROXY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

typedef struct proxy {
    int listen_fd, port;    /* the proxy listens on 127.0.0.1:port */
    atomic_int target_port; /* new connections go to 127.0.0.1:target_port */
    atomic_int cuts_requested;
    atomic_bool stop;
    int wake[2];
    pthread_t thread;
} proxy_t;

/* Starts the proxy towards 127.0.0.1:target (asserts on failure). */
void proxy_start(proxy_t *p, int target);
/* Closes every connection through the proxy; new ones are still accepted. */
void proxy_cut(proxy_t *p);
void proxy_stop(proxy_t *p);

#endif
