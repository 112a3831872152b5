/* tls.h: TLS for the daemon's connections (OpenSSL 3).
 *
 * The server's context (an SSL_CTX) is built from tls_cert, tls_key and the optional tls_ca
 * (then a client must present a certificate that tls_ca verifies); TLS 1.2 is the lowest version
 * accepted. A reload builds a new context for the connections accepted from then on; each
 * session holds a reference to the context it began with, so older connections keep theirs.
 *
 * A session never touches the socket: conn.c feeds it the ciphertext it read (tls_session_feed)
 * and writes what the session gives back (tls_session_take_output, tls_session_write), so the
 * loop never blocks on a handshake and conn.c's limits count the ciphertext waiting to be
 * written. The session's buffers are released when it is idle (SSL_MODE_RELEASE_BUFFERS, and
 * memory BIOs dropped once drained), so an idle TLS connection stays small. */
#ifndef EVS_TLS_H
#define EVS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../proto/codec.h"
#include "server.h"

/* The port of tls_listen when it names only a host. */
#define TLS_DEFAULT_PORT 7434

enum {
    TLS_AGAIN = 0,   /* the session needs more ciphertext */
    TLS_CLOSED = -1, /* the peer ended the session (close_notify) */
    TLS_FAILED = -2, /* the session failed (handshake refused, bad record): close the connection */
};

typedef struct tls_session tls_session_t;

/* Writes tls_listen as HOST:PORT into out: the value itself, or with ":7434" added when it names
 * only a host ("127.0.0.1", "[::1]", "::1"). */
void tls_listen_address(const char *tls_listen, char *out, size_t outlen);

/* Checks the TLS options of cfg: tls_listen a valid address, tls_cert and tls_key set, readable
 * and matching, tls_ca readable. 0 (also when tls_listen is not set), or -1 with why set. */
int tls_check_config(const server_config_t *cfg, char *why, size_t whylen);

/* Builds the server context from cfg. NULL with why set. */
struct ssl_ctx_st *tls_ctx_new(const server_config_t *cfg, char *why, size_t whylen);
/* Drops the server's reference (sessions keep theirs). NULL is a no-op. */
void tls_ctx_free(struct ssl_ctx_st *ctx);

/* A session for one accepted connection, on ctx. NULL when out of memory. */
tls_session_t *tls_session_new(struct ssl_ctx_st *ctx);
void tls_session_free(tls_session_t *s);

/* Hands the session n bytes of ciphertext read from the socket. 0, or -1 when out of memory. */
int tls_session_feed(tls_session_t *s, const uint8_t *p, size_t n);

/* Advances the handshake with what was fed: 1 when established, TLS_AGAIN, or TLS_FAILED with a
 * reason in why. What it has to send is left for tls_session_take_output. */
int tls_session_handshake(tls_session_t *s, char *why, size_t whylen);
bool tls_session_established(const tls_session_t *s);

/* Decrypts into buf (len bytes of room): the bytes decrypted (> 0), TLS_AGAIN, TLS_CLOSED or
 * TLS_FAILED (why set). */
ssize_t tls_session_read(tls_session_t *s, uint8_t *buf, size_t len, char *why, size_t whylen);

/* True when the session holds input not decrypted yet (fed ciphertext or decrypted bytes). */
bool tls_session_has_input(const tls_session_t *s);

/* Encrypts n bytes of plaintext and appends the ciphertext to out. 0, or -1 (out of memory or
 * a failed session). */
int tls_session_write(tls_session_t *s, const uint8_t *p, size_t n, codec_buf_t *out);

/* Appends what the session has to send (handshake messages, alerts) to out. 0, or -1 when out
 * of memory. */
int tls_session_take_output(tls_session_t *s, codec_buf_t *out);

/* Queues a close_notify alert (for tls_session_take_output). */
void tls_session_close_notify(tls_session_t *s);

/* The subject CN of the client certificate the handshake verified (tls_ca set), or NULL. */
const char *tls_session_peer_cn(const tls_session_t *s);

#endif
