/* listener.h: the TCP and Unix-socket listeners that accept connections into conn_t. */
#ifndef EVS_LISTENER_H
#define EVS_LISTENER_H

#include "server.h"

/* Listens on "HOST:PORT" ("[v6addr]:PORT" for IPv6). NULL with a message in why on failure. */
listener_t *listener_tcp(server_t *srv, const char *hostport, char *why, size_t whylen);

/* Listens on "HOST:PORT" for TLS connections, on srv->tls_ctx at the time each is accepted. */
listener_t *listener_tls(server_t *srv, const char *hostport, char *why, size_t whylen);

/* Listens on a Unix socket at path (a stale socket file there is removed first). */
listener_t *listener_unix(server_t *srv, const char *path, char *why, size_t whylen);

/* Stops accepting and frees the listener (asynchronously; the loop finishes it). */
void listener_close(listener_t *l);

#endif
