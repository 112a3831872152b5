/* codec_prescan.h: the check that untrusted msgpack bytes are safe to hand to msgpack-c.
 *
 * msgpack-c allocates for an array or map as soon as it reads its header, so before it sees
 * bytes from the network every declared length and count is checked against the bytes that are
 * really there, and nesting is capped. Both sides run it: the server on each request
 * (codec_request_decode), the client on each reply and push. */
#ifndef EVS_CODEC_PRESCAN_H
#define EVS_CODEC_PRESCAN_H

#include <stddef.h>
#include <stdint.h>

#define CODEC_MAX_DEPTH 32 /* deepest nesting of arrays and maps in one frame */

/* Most msgpack objects (every value, key and container counts one) in one request frame. An op
 * needs far fewer: an append of 10,000 events of 7 keys and a metadata map of 40 entries each
 * stays below it. msgpack-c spends some 24 bytes per object while unpacking, so a request costs
 * at most ~25 MB however its bytes are spent (a 16 MiB map of 8.4 million nil:nil pairs would
 * cost 400 MB). */
#define CODEC_MAX_REQUEST_OBJECTS (1u << 20)

/* Checks that the len bytes at buf are exactly one well-formed msgpack map whose every declared
 * length and count fits in the bytes that follow it, nested at most max_depth deep. Returns 0,
 * or -1 with *why set to a static sentence saying what is wrong. Allocates nothing. */
int codec_prescan(const uint8_t *buf, size_t len, int max_depth, const char **why);

/* The same check, and also at most max_objects msgpack objects in all (the top-level map
 * counting one): a container declaring more elements than the budget has left is refused at
 * its header, before anything walks or allocates them. */
int codec_prescan_limited(const uint8_t *buf, size_t len, int max_depth, uint64_t max_objects,
                          const char **why);

#endif
