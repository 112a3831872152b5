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

/* Checks that the len bytes at buf are exactly one well-formed msgpack map whose every declared
 * length and count fits in the bytes that follow it, nested at most max_depth deep. Returns 0,
 * or -1 with *why set to a static sentence saying what is wrong. Allocates nothing. */
int codec_prescan(const uint8_t *buf, size_t len, int max_depth, const char **why);

#endif
