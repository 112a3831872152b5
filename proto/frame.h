/* frame.h: the length-prefixed framing shared by server and client.
 *
 * Each message is a 4-byte unsigned big-endian length N (1..max_frame) followed by N bytes that
 * hold exactly one msgpack map. */
#ifndef EVS_FRAME_H
#define EVS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_HEADER 4
#define FRAME_DEFAULT_MAX (16u * 1024 * 1024)

enum frame_status {
    FRAME_OK = 0,          /* a whole frame is there */
    FRAME_INCOMPLETE = 1,  /* not an error: more bytes are needed */
    FRAME_EMPTY = -1,      /* declared length 0 */
    FRAME_TOO_LARGE = -2,  /* declared length over max_frame */
};

/* Looks at the len bytes at buf for one frame. On FRAME_OK, *body and *body_len are the frame's
 * body and *consumed the bytes it took with its header. On FRAME_TOO_LARGE, *body_len holds the
 * declared length. The length is checked before the caller allocates anything for the body. */
int frame_parse(const uint8_t *buf, size_t len, uint32_t max_frame, const uint8_t **body,
                size_t *body_len, size_t *consumed);

/* Writes the 4-byte header for a body of body_len bytes. */
void frame_put_header(uint8_t out[FRAME_HEADER], uint32_t body_len);

#endif
