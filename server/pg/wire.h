/* pg/wire.h: PostgreSQL's binary format, for the parameters sent and the results read.
 *
 * Every statement of the store sends its parameters and takes its results in binary (format 1):
 * integers big-endian, uuid as 16 bytes, text and bytea as their bytes, one-dimensional arrays
 * with PostgreSQL's array header. A pg_wire_buf_t holds one parameter value; it grows on demand
 * and keeps its memory across pg_wire_reset, so that a buffer reused for every group allocates
 * only while it grows. */
#ifndef EVS_PG_WIRE_H
#define EVS_PG_WIRE_H

#include <endian.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Type OIDs of the binary parameters and results the store uses (PostgreSQL's pg_type.h). */
#define PG_INT4OID 23
#define PG_INT8OID 20
#define PG_TEXTOID 25
#define PG_BYTEAOID 17
#define PG_UUIDOID 2950
#define PG_INT8ARRAYOID 1016
#define PG_TEXTARRAYOID 1009
#define PG_BYTEAARRAYOID 1001
#define PG_UUIDARRAYOID 2951

/* A growable buffer holding one value in PostgreSQL's binary format. */
typedef struct pg_wire_buf {
    char *data;
    size_t len, cap;
    bool failed; /* an allocation failed: every later put is ignored until pg_wire_reset */
} pg_wire_buf_t;

/* Empties b, keeping its memory, and clears its failure. */
void pg_wire_reset(pg_wire_buf_t *b);
/* Frees b's memory and zeroes it (a zeroed buffer is empty and valid). */
void pg_wire_free(pg_wire_buf_t *b);
/* Appends len raw bytes; on allocation failure sets b->failed and keeps what it had. */
void pg_wire_put(pg_wire_buf_t *b, const void *data, size_t len);
void pg_wire_put_i32(pg_wire_buf_t *b, int32_t v);
void pg_wire_put_i64(pg_wire_buf_t *b, int64_t v);
/* Starts a one-dimensional array of n elements of type elem_oid (empty when n == 0). The n
 * elements follow, each added with pg_wire_array_elem (or, for fixed-size types, as a length
 * and the value). */
void pg_wire_array_begin(pg_wire_buf_t *b, uint32_t elem_oid, size_t n, bool has_nulls);
/* One array element: len bytes, or NULL when data is NULL. */
void pg_wire_array_elem(pg_wire_buf_t *b, const void *data, size_t len);

/* The value of a binary-format int8 / int4 column; the caller checked that it is not NULL. */
static inline int64_t pg_wire_get_i64(const PGresult *res, int row, int col) {
    uint64_t be;
    memcpy(&be, PQgetvalue(res, row, col), 8);
    return (int64_t)be64toh(be);
}

static inline int32_t pg_wire_get_i32(const PGresult *res, int row, int col) {
    uint32_t be;
    memcpy(&be, PQgetvalue(res, row, col), 4);
    return (int32_t)be32toh(be);
}

#endif
