/* json.h: msgpack <-> JSON for the evstore CLI, on top of jansson and msgpack-c.
 *
 * JSON objects, arrays, strings, integers, reals, booleans and null map to the msgpack types of
 * the same meaning. Back from msgpack, bin and ext become base64 strings, map keys that are not
 * strings become their JSON text, and unsigned integers beyond INT64_MAX become reals. */
#ifndef EVS_CLI_JSON_H
#define EVS_CLI_JSON_H

#include <jansson.h>
#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include <evstore.h>

/* Packs a JSON value as msgpack. Returns 0, or -1 when the packer's writer failed (out of
 * memory). */
int json_to_msgpack(msgpack_packer *pk, const json_t *j);

/* A new JSON value for a msgpack object (the caller json_decref's it), or NULL when out of
 * memory. */
json_t *msgpack_to_json(const msgpack_object *o);

/* The len bytes at data as JSON if they are exactly one msgpack map (pre-scanned first: the
 * bytes may be anything), else NULL. */
json_t *msgpack_map_bytes_to_json(const uint8_t *data, size_t len);

/* A new base64 string value (standard alphabet, padded). */
json_t *json_base64(const uint8_t *data, size_t len);

/* One event as the CLI prints it: {"event_id", "position", "entity_id", "version", "topic",
 * "timestamp", "payload" (JSON, when the payload is a msgpack map) or "payload_base64",
 * "metadata" (when present)}. The caller json_decref's it. */
json_t *event_to_json(const evs_event_t *ev);

#endif
