/* pg/wire.c: PostgreSQL's binary format for parameters (see wire.h). */
#include "wire.h"

#include <endian.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- parameters */

void pg_wire_reset(pg_wire_buf_t *b) {
    b->len = 0;
    b->failed = false;
}

void pg_wire_free(pg_wire_buf_t *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

void pg_wire_put(pg_wire_buf_t *b, const void *data, size_t len) {
    if (b->failed) return;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (b->len + len > cap)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) {
            b->failed = true;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    if (len) memcpy(b->data + b->len, data, len);
    b->len += len;
}

void pg_wire_put_i32(pg_wire_buf_t *b, int32_t v) {
    uint32_t be = htobe32((uint32_t)v);
    pg_wire_put(b, &be, 4);
}

void pg_wire_put_i64(pg_wire_buf_t *b, int64_t v) {
    uint64_t be = htobe64((uint64_t)v);
    pg_wire_put(b, &be, 8);
}

void pg_wire_array_begin(pg_wire_buf_t *b, uint32_t elem_oid, size_t n, bool has_nulls) {
    pg_wire_put_i32(b, n ? 1 : 0);         /* dimensions */
    pg_wire_put_i32(b, has_nulls ? 1 : 0); /* flags */
    pg_wire_put_i32(b, (int32_t)elem_oid);
    if (n) {
        pg_wire_put_i32(b, (int32_t)n); /* length of the dimension */
        pg_wire_put_i32(b, 1);          /* lower bound */
    }
}

void pg_wire_array_elem(pg_wire_buf_t *b, const void *data, size_t len) {
    if (!data) {
        pg_wire_put_i32(b, -1);
        return;
    }
    pg_wire_put_i32(b, (int32_t)len);
    pg_wire_put(b, data, len);
}
