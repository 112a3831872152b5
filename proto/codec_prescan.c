/* codec_prescan.c: the pre-scan that checks untrusted msgpack before msgpack-c reads it. */
#include "codec_prescan.h"

static uint64_t be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

/* Walks the msgpack bytes with an explicit stack of "objects still to read" per nesting level.
 * Every element takes at least one byte, so a container declaring more elements than there are
 * bytes left is rejected before anything is allocated for it. */
int codec_prescan(const uint8_t *p, size_t len, int max_depth, const char **why) {
    uint64_t stack[CODEC_MAX_DEPTH + 1];
    int depth = 0;
    uint64_t pending = 1;
    size_t pos = 0;

    if (max_depth > CODEC_MAX_DEPTH) max_depth = CODEC_MAX_DEPTH;
    if (len == 0) {
        *why = "empty message";
        return -1;
    }
    if (!((p[0] >= 0x80 && p[0] <= 0x8f) || p[0] == 0xde || p[0] == 0xdf)) {
        *why = "a message must be a msgpack map";
        return -1;
    }
    for (;;) {
        if (pending == 0) {
            if (depth == 0) break;
            pending = stack[--depth];
            continue;
        }
        if (pos >= len) {
            *why = "truncated msgpack: the frame ends inside an object";
            return -1;
        }
        pending--;
        uint8_t b = p[pos++];
        size_t left = len - pos;
        uint64_t skip = 0;     /* bytes of payload after the header */
        uint64_t elements = 0; /* child objects of a container */
        int hdr = 0;           /* length bytes after the type byte */
        int container = 0;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* fixint, nil, bool */
        } else if (b <= 0x8f) {
            elements = 2 * (uint64_t)(b & 0x0f), container = 1;
        } else if (b <= 0x9f) {
            elements = b & 0x0f, container = 1;
        } else if (b <= 0xbf) {
            skip = b & 0x1f;
        } else {
            switch (b) {
            case 0xc1: *why = "invalid msgpack byte 0xc1"; return -1;
            case 0xc4: case 0xd9: hdr = 1; break;
            case 0xc5: case 0xda: hdr = 2; break;
            case 0xc6: case 0xdb: hdr = 4; break;
            case 0xc7: hdr = 1, skip = 1; break; /* ext8: length, then type byte */
            case 0xc8: hdr = 2, skip = 1; break;
            case 0xc9: hdr = 4, skip = 1; break;
            case 0xca: skip = 4; break;
            case 0xcb: skip = 8; break;
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xce: case 0xd2: skip = 4; break;
            case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break;
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: hdr = 2, container = 1; break;
            case 0xdd: hdr = 4, container = 1; break;
            case 0xde: hdr = 2, container = 2; break;
            case 0xdf: hdr = 4, container = 2; break;
            default: *why = "invalid msgpack"; return -1;
            }
        }
        if (hdr) {
            if ((size_t)hdr > left) {
                *why = "truncated msgpack: the frame ends inside a length";
                return -1;
            }
            uint64_t n = be(p + pos, hdr);
            pos += hdr;
            left -= hdr;
            if (container == 1) elements = n;
            else if (container == 2) elements = 2 * n;
            else skip += n;
        }
        if (container) {
            if (elements > left) {
                *why = "declared count larger than the frame";
                return -1;
            }
            /* depth counts the containers open around this one, the top-level map included. */
            if (depth + 1 > max_depth) {
                *why = "nesting too deep";
                return -1;
            }
            if (elements > 0) {
                stack[depth++] = pending;
                pending = elements;
            }
        } else if (skip > left) {
            *why = "declared length larger than the frame";
            return -1;
        } else {
            pos += (size_t)skip;
        }
    }
    if (pos != len) {
        *why = "trailing bytes after the message";
        return -1;
    }
    return 0;
}
