/* fixture.h: the fixture of the integration tests that talk the raw protocol: one daemon per
 * test (fx_daemon), started by the test and checked at its end, and assertions on raw replies.
 *
 * A test calls fx_start, talks to fx_daemon over fx_connect connections, and ends with
 * fx_finish, which checks that the daemon still serves a fresh connection and exits 0 on SIGTERM
 * (a sanitizer report or a leak makes that exit non-zero). Suites use fx_teardown as their .fini,
 * so that a test that failed half-way does not leave its daemon running. */
#ifndef EVS_TEST_FIXTURE_H
#define EVS_TEST_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "../common/daemon.h"
#include "../common/rawio.h"

extern test_daemon_t fx_daemon;

/* Starts fx_daemon with extra (NULL-terminated, may be NULL) or fails the test. */
void fx_start(const char *const *extra);
/* Ends a test: the daemon must still answer a ping, then exit 0 on SIGTERM. */
void fx_finish(void);
/* Stops fx_daemon if it still runs. */
void fx_teardown(void);

/* A raw connection to fx_daemon, or the test fails. */
int fx_connect(void);

/* A connection to fx_daemon with a 4 KB receive buffer, so that the daemon meets backpressure
 * early, or the test fails. */
int fx_connect_small_rcvbuf(void);

/* Receives one reply and asserts it is an error with code and a message, with the id when
 * id > 0 and without one when id == 0. */
void fx_expect_error(int fd, const char *code, uint64_t id);
/* Receives one reply and asserts it is ok with the id; returns it (reply_free it). */
reply_t fx_expect_ok(int fd, uint64_t id);
/* The connection still works: a ping on it is answered. */
void fx_conn_still_serves(int fd);

/* Send, or the test fails. fx_send_rq frees r. */
void fx_send_bytes(int fd, const void *p, size_t n);
void fx_send_frame(int fd, const void *p, size_t n);
void fx_send_rq(int fd, rq_t *r);

/* Packs one append event {"entity_id", "topic": tname(topic), "payload"} with payload_len bytes of
 * 'x'. Valid names go through tname (rawio.h) so that tests sharing a store do not meet. */
void fx_pack_event(msgpack_packer *pk, const char *entity, size_t entity_len, const char *topic,
                   size_t payload_len);
/* Sends an append of one event to entity (given as bytes), with request id. */
void fx_send_append(int fd, uint64_t id, const char *entity, size_t entity_len, size_t payload_len);

#endif
