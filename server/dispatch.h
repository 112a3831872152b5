/* dispatch.h: the op table: each request frame is decoded and handed to its op's handler, which
 * replies (at once or when the store answers) into the connection's output. */
#ifndef EVS_DISPATCH_H
#define EVS_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"

/* Decodes and runs one request frame body; always produces exactly one reply for it (an error
 * reply when it cannot be decoded or its op is unknown). */
void dispatch_frame(conn_t *c, const uint8_t *body, size_t len);

/* Frees what dispatch keeps between requests (at exit). */
void dispatch_free(void);

/* Packs an error reply for request id (has_id false: no id could be read) into c's output. */
void dispatch_reply_error(conn_t *c, bool has_id, uint64_t id, const codec_error_t *err);

#endif
