/* fuzz_client_reply.c: libevstore reading whatever a server sends. The bytes go into a context's
 * frame reader as if read from its socket (the context has none: fd -1, and every wait has a
 * deadline of now), and client_wait_frame cuts, pre-scans and unpacks them one frame at a time.
 * Each frame then goes where client_request_end sends it: a push ({"sub"} without "id") to its
 * subscription's queue (sub_queue_push_frame), an error reply to client_take_server_error, an ok
 * reply to the decoder of the call that byte 0 of the input picks (events of a read, positions
 * and versions of an append, the event of get-by-id, the map of stats or config). A fatal error
 * ends the input, as it kills a real context; the pushes queued are then taken with evs_sub_next.
 * Everything handed out is checked to be readable, with valid names. */
#include "../../client/client_priv.h"
#include "fuzz.h"

enum { CALL_READ, CALL_APPEND, CALL_GET_BY_ID, CALL_ADMIN, NCALLS };

static void check_event(const evs_event_t *ev) {
    FUZZ_CHECK(ev->entity_id && codec_valid_name(ev->entity_id, strlen(ev->entity_id)), "entity");
    FUZZ_CHECK(ev->topic && codec_valid_name(ev->topic, strlen(ev->topic)), "topic");
    fuzz_touch(ev->payload, ev->payload_len);
    if (ev->metadata) {
        const char *why = NULL;
        FUZZ_CHECK(codec_prescan(ev->metadata, ev->metadata_len, CODEC_MAX_DEPTH, &why) == 0,
                   "metadata: %s", why);
    }
}

/* An error reply: the code is a server's, the message and details are terminated strings. */
static void take_error(evs_context_t *c, const msgpack_object *obj) {
    int code = client_take_server_error(c, obj);
    if (code == EVS_EPROTOCOL) return;
    FUZZ_CHECK(code < 0 && code > EVS_EIO, "code %d from a server", code);
    FUZZ_CHECK(memchr(c->errstr, '\0', sizeof c->errstr), "errstr unterminated");
    if (c->detail.has_entity_id)
        FUZZ_CHECK(memchr(c->detail.entity_id, '\0', sizeof c->detail.entity_id), "entity_id");
}

/* An ok reply to the call picked by the input. */
static void take_ok(evs_context_t *c, const msgpack_object *res, int call) {
    switch (call) {
    case CALL_READ: {
        evs_events_t *list = NULL;
        if (client_decode_events(c, codec_map_get(res, "events"), &list) < 0) return;
        for (size_t i = 0; i < list->n; i++)
            check_event(&list->events[i]);
        evs_events_free(list);
        return;
    }
    case CALL_APPEND: {
        const msgpack_object *a = codec_map_get(res, "positions");
        size_t n = a && a->type == MSGPACK_OBJECT_ARRAY ? a->via.array.size : 0;
        uint64_t *out = malloc((n ? n : 1) * sizeof *out);
        if (client_take_uints(c, res, "positions", n, out) == 0)
            client_take_uints(c, res, "versions", n, out);
        free(out);
        return;
    }
    case CALL_GET_BY_ID: {
        evs_event_t ev, copy;
        const char *why = NULL;
        if (codec_decode_event(codec_map_get(res, "event"), c->priv->frame.zone, &ev, &why) < 0) {
            FUZZ_CHECK(why != NULL, "a refused event without a reason");
            client_fail(c, EVS_EPROTOCOL, "bad event from the server: %s", why);
            return;
        }
        check_event(&ev);
        FUZZ_CHECK(evs_event_dup(&copy, &ev) == 0, "out of memory");
        check_event(&copy);
        evs_event_clear(&copy);
        return;
    }
    default: { /* stats or config: the map is packed again into bytes the caller owns */
        const msgpack_object *m = codec_map_get(res, "config");
        if (!m || m->type != MSGPACK_OBJECT_MAP) return;
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        FUZZ_CHECK(msgpack_pack_object(&pk, *m) == 0, "repacking the map");
        const char *why = NULL;
        FUZZ_CHECK(codec_prescan((const uint8_t *)sb.data, sb.size, CODEC_MAX_DEPTH, &why) == 0,
                   "the map packed again: %s", why);
        msgpack_sbuffer_destroy(&sb);
        return;
    }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return -1;
    int call = data[0] % NCALLS;
    /* The context as evs_connect_with_options sets it up, without a socket. */
    evs_context_t *c = calloc(1, sizeof *c);
    c->fd = -1;
    c->priv = calloc(1, sizeof *c->priv);
    struct evs_context_priv *p = c->priv;
    p->max_frame = p->max_reply = 1u << 20;
    p->next_id = 1;
    codec_buf_init(&p->wbuf);
    msgpack_unpacked_init(&p->frame);
    frame_reader_init(&p->reader, p->max_reply);
    FUZZ_CHECK(frame_reader_feed(&p->reader, data + 1, size - 1) == 0, "feed");

    while (!p->dead) {
        client_frame_release(c);
        int r = client_wait_frame(c, client_deadline(0), false);
        if (r != WAIT_FRAME) break;
        const msgpack_object *obj = &p->frame.data;
        FUZZ_CHECK(obj->type == MSGPACK_OBJECT_MAP, "a frame that is not a map");
        const msgpack_object *oid = codec_map_get(obj, "id");
        if (!oid && codec_map_get(obj, "sub")) {
            sub_queue_push_frame(c, obj);
            continue;
        }
        if (oid && oid->type != MSGPACK_OBJECT_POSITIVE_INTEGER) break;
        const msgpack_object *ok = codec_map_get(obj, "ok");
        if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN) break;
        if (!ok->via.boolean)
            take_error(c, obj);
        else if (oid)
            take_ok(c, obj, call);
    }
    if (!p->dead) {
        evs_push_t *push;
        while (evs_sub_next(c, 0, 0, &push) == 0 && push) {
            FUZZ_CHECK(push->caught_up || push->n == 0 || push->events, "a push without events");
            for (size_t i = 0; i < push->n; i++)
                check_event(&push->events[i]);
            evs_push_free(push);
        }
    }
    evs_free(c);
    return 0;
}
