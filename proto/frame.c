/* frame.c: the 4-byte big-endian length prefix. */
#include "frame.h"

int frame_parse(const uint8_t *buf, size_t len, uint32_t max_frame, const uint8_t **body,
                size_t *body_len, size_t *consumed) {
    if (len < FRAME_HEADER) return FRAME_INCOMPLETE;
    uint32_t n = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
    *body_len = n;
    if (n == 0) return FRAME_EMPTY;
    if (n > max_frame) return FRAME_TOO_LARGE;
    if (len - FRAME_HEADER < n) return FRAME_INCOMPLETE;
    *body = buf + FRAME_HEADER;
    *consumed = FRAME_HEADER + (size_t)n;
    return FRAME_OK;
}

void frame_put_header(uint8_t out[FRAME_HEADER], uint32_t body_len) {
    out[0] = (uint8_t)(body_len >> 24);
    out[1] = (uint8_t)(body_len >> 16);
    out[2] = (uint8_t)(body_len >> 8);
    out[3] = (uint8_t)body_len;
}
