/* pg/write_queue.c: the writes waiting for the writer connection (see write_queue.h). */
#include "write_queue.h"

void wq_push(write_queue_t *q, gc_request_t *r) {
    r->next = NULL;
    r->queued = true;
    q->count++;
    q->bytes += r->bytes;
    if (q->tail)
        q->tail->next = r;
    else
        q->head = r;
    q->tail = r;
}

gc_request_t *wq_pop(write_queue_t *q) {
    gc_request_t *r = q->head;
    if (r) {
        q->head = r->next;
        if (!q->head) q->tail = NULL;
        r->next = NULL;
        r->queued = false;
        q->count--;
        q->bytes -= r->bytes;
    }
    return r;
}

gc_request_t *wq_take_all(write_queue_t *q) {
    gc_request_t *list = q->head;
    for (gc_request_t *r = list; r; r = r->next)
        r->queued = false;
    q->head = q->tail = NULL;
    q->count = q->bytes = 0;
    return list;
}

void wq_remove(write_queue_t *q, gc_request_t *r) {
    gc_request_t **link = &q->head, *prev = NULL;
    while (*link != r) {
        prev = *link;
        link = &(*link)->next;
    }
    *link = r->next;
    if (q->tail == r) q->tail = prev;
    r->next = NULL;
    r->queued = false;
    q->count--;
    q->bytes -= r->bytes;
}

bool wq_full(const write_queue_t *q, size_t bytes, size_t max_requests, size_t max_bytes) {
    return q->count >= max_requests || (q->count > 0 && q->bytes + bytes > max_bytes);
}
