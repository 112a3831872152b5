/* pg/op.c: the PostgreSQL store's operations and their deadlines (see op.h). */
#include "op.h"

#include <stdio.h>
#include <stdlib.h>

/* ---------------------------------------------------------------- the deadline list */

static void unlist(op_t *op) {
    op_list_t *l = op->list;
    if (op->prev)
        op->prev->next = op->next;
    else
        l->head = op->next;
    if (op->next)
        op->next->prev = op->prev;
    else
        l->tail = op->prev;
    op->prev = op->next = NULL;
}

static void on_deadline(uv_timer_t *t);

static void arm_deadline(op_list_t *l) {
    if (!l->head) {
        uv_timer_stop(&l->timer);
        return;
    }
    uint64_t now = uv_now(l->loop);
    uint64_t due = l->head->deadline > now ? l->head->deadline - now : 0;
    uv_timer_start(&l->timer, on_deadline, due, 0);
}

static void on_deadline(uv_timer_t *t) {
    op_list_t *l = t->data;
    uint64_t now = uv_now(l->loop);
    while (l->head && l->head->deadline <= now) {
        char why[160];
        snprintf(why, sizeof why,
                 "PostgreSQL did not answer within the request timeout (%u ms); retry later",
                 *l->timeout_ms);
        op_answer_unavailable(l->head, why);
    }
    arm_deadline(l);
}

void op_list_init(op_list_t *l, uv_loop_t *loop, const uint32_t *timeout_ms) {
    l->head = l->tail = NULL;
    l->loop = loop;
    l->timeout_ms = timeout_ms;
    uv_timer_init(loop, &l->timer);
    l->timer.data = l;
}

void op_list_close(op_list_t *l, const char *why, uv_close_cb closed, void *data) {
    while (l->head)
        op_answer_unavailable(l->head, why);
    l->timer.data = data;
    uv_close((uv_handle_t *)&l->timer, closed);
}

/* ---------------------------------------------------------------- ops */

op_t *op_new(op_list_t *l, struct pg_store *s, op_kind_t kind, void *arg) {
    op_t *op = calloc(1, sizeof *op);
    if (!op) return NULL;
    op->list = l;
    op->s = s;
    op->kind = kind;
    op->arg = arg;
    op->deadline = uv_now(l->loop) + (*l->timeout_ms ? *l->timeout_ms : STORE_DEFAULT_TIMEOUT_MS);
    op->prev = l->tail;
    if (l->tail)
        l->tail->next = op;
    else
        l->head = op;
    l->tail = op;
    if (!uv_is_active((uv_handle_t *)&l->timer)) arm_deadline(l);
    return op;
}

void op_free(op_t *op) {
    if (!op->answered) unlist(op);
    for (int i = 0; i < OP_MAX_PARAMS; i++)
        pg_wire_free(&op->params[i]);
    if (op->req.events) {
        for (size_t i = 0; i < op->req.n; i++)
            evs_event_clear(&op->req.events[i]);
        free(op->req.events);
    }
    free(op->req.positions);
    free(op->req.versions);
    free(op->req.entity_id);
    free(op->what);
    free(op);
}

void op_answered(op_t *op) {
    op->answered = true;
    unlist(op);
}

/* ---------------------------------------------------------------- answers */

void op_answer_committed(op_t *op) {
    if (op->answered) return;
    op_answered(op);
    op->cb.append(op->arg, NULL, op->req.positions, op->req.versions, op->req.n);
}

void op_answer_error(op_t *op, const codec_error_t *err) {
    if (op->answered) return;
    if (op->committed) {
        op_answer_committed(op);
        return;
    }
    op_answered(op);
    switch (op->kind) {
    case OP_APPEND:
        op->cb.append(op->arg, err, NULL, NULL, 0);
        break;
    case OP_EVENTS:
        op->cb.events(op->arg, err, NULL, 0);
        break;
    case OP_DELETE:
    case OP_PUT_SNAPSHOT:
    case OP_DELETE_SNAPSHOTS:
        op->cb.count(op->arg, err, 0);
        break;
    case OP_GET_SNAPSHOT:
        op->cb.snapshot(op->arg, err, NULL);
        break;
    }
    /* A write not sent yet is dropped, not written late, and its memory is freed now (which
     * may free op: nothing may use it after this). */
    if (op->kind == OP_APPEND || op->kind == OP_DELETE) gc_cancel(&op->req);
}

void op_answer_unavailable(op_t *op, const char *why) {
    codec_error_t err;
    codec_error_set(&err, EVS_EUNAVAILABLE, "%s", why);
    op_answer_error(op, &err);
}
