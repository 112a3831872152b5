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

/* Packs an error reply for request id (has_id false: no id could be read) into c's output,
 * counted in the stats for the op being handled (or answered from a store callback). */
void dispatch_reply_error(conn_t *c, bool has_id, uint64_t id, const codec_error_t *err);

/* The same, counted for op (dispatch_op_index), for a reply made outside a request's handling
 * (a subscribe answered later). */
void dispatch_reply_error_to(conn_t *c, size_t op, bool has_id, uint64_t id,
                             const codec_error_t *err);

/* The index of op in the op table (the row of its stats), or STATS_OP_UNKNOWN. */
size_t dispatch_op_index(const char *op);

/* Writes the names of the op table's ops, in order, into names (at most max); returns their
 * number. Index i of stats_t.requests, op_errors and op_latency is the op names[i]. */
size_t dispatch_op_names(const char **names, size_t max);

#endif
