/* pg/write_queue.h: the FIFO of writes waiting for the writer connection, with its count and
 * bytes (what the bounds write_queue_requests and write_queue_bytes are checked against). */
#ifndef EVS_PG_WRITE_QUEUE_H
#define EVS_PG_WRITE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

#include "group_commit.h"

/* Links requests through gc_request_t.next and marks them with gc_request_t.queued; it owns
 * neither: whoever takes a request out finishes it. Zero-initialised is empty. */
typedef struct write_queue {
    gc_request_t *head, *tail;
    size_t count, bytes; /* requests queued, and the sum of their gc_request_t.bytes */
} write_queue_t;

void wq_push(write_queue_t *q, gc_request_t *r);

/* The oldest request, taken out; NULL when the queue is empty. */
gc_request_t *wq_pop(write_queue_t *q);

/* Takes every request out at once and returns them as a list linked through next. */
gc_request_t *wq_take_all(write_queue_t *q);

/* Takes r out wherever it is. r must be queued in q (r->queued). */
void wq_remove(write_queue_t *q, gc_request_t *r);

/* True when a write of bytes may not join the queue: it holds max_requests requests already, or
 * it is not empty and would pass max_bytes (a single write bigger than max_bytes is let into an
 * empty queue, so that every write the daemon accepts can be written). */
bool wq_full(const write_queue_t *q, size_t bytes, size_t max_requests, size_t max_bytes);

#endif
