/* codec_prescan.c: the pre-scan that checks untrusted msgpack before msgpack-c reads it. */
#include "codec_prescan.h"

static uint64_t be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* What the type byte of one msgpack object announces. */
typedef struct item {
    int hdr;           /* length bytes after the type byte */
    int container;     /* 0: none; 1: an array (n elements); 2: a map (2n elements) */
    uint64_t skip;     /* payload bytes after the header (plus the length, if hdr) */
    uint64_t elements; /* child objects of a container (from the length, if hdr) */
} item_t;

/* Reads the type byte b into *it. 0, or -1 with *why set for a byte that msgpack never uses. */
static int classify(uint8_t b, item_t *it, const char **why) {
    *it = (item_t){0};
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
        /* fixint, nil, bool */
    } else if (b <= 0x8f) {
        it->elements = 2 * (uint64_t)(b & 0x0f), it->container = 1;
    } else if (b <= 0x9f) {
        it->elements = b & 0x0f, it->container = 1;
    } else if (b <= 0xbf) {
        it->skip = b & 0x1f;
    } else {
        switch (b) {
        case 0xc1:
            *why = "invalid msgpack byte 0xc1";
            return -1;
        case 0xc4:
        case 0xd9:
            it->hdr = 1;
            break;
        case 0xc5:
        case 0xda:
            it->hdr = 2;
            break;
        case 0xc6:
        case 0xdb:
            it->hdr = 4;
            break;
        case 0xc7:
            it->hdr = 1, it->skip = 1;
            break; /* ext8: length, then type byte */
        case 0xc8:
            it->hdr = 2, it->skip = 1;
            break;
        case 0xc9:
            it->hdr = 4, it->skip = 1;
            break;
        case 0xca:
            it->skip = 4;
            break;
        case 0xcb:
            it->skip = 8;
            break;
        case 0xcc:
        case 0xd0:
            it->skip = 1;
            break;
        case 0xcd:
        case 0xd1:
            it->skip = 2;
            break;
        case 0xce:
        case 0xd2:
            it->skip = 4;
            break;
        case 0xcf:
        case 0xd3:
            it->skip = 8;
            break;
        case 0xd4:
            it->skip = 2;
            break;
        case 0xd5:
            it->skip = 3;
            break;
        case 0xd6:
            it->skip = 5;
            break;
        case 0xd7:
            it->skip = 9;
            break;
        case 0xd8:
            it->skip = 17;
            break;
        case 0xdc:
            it->hdr = 2, it->container = 1;
            break;
        case 0xdd:
            it->hdr = 4, it->container = 1;
            break;
        case 0xde:
            it->hdr = 2, it->container = 2;
            break;
        case 0xdf:
            it->hdr = 4, it->container = 2;
            break;
        default:
            *why = "invalid msgpack";
            return -1;
        }
    }
    return 0;
}

/* Walks the msgpack bytes with an explicit stack of "objects still to read" per nesting level.
 * Every element takes at least one byte, so a container declaring more elements than there are
 * bytes left is rejected before anything is allocated for it. */
int codec_prescan(const uint8_t *p, size_t len, int max_depth, const char **why) {
    return codec_prescan_limited(p, len, max_depth, UINT64_MAX, why);
}

int codec_prescan_limited(const uint8_t *p, size_t len, int max_depth, uint64_t max_objects,
                          const char **why) {
    uint64_t stack[CODEC_MAX_DEPTH + 1];
    int depth = 0;
    uint64_t pending = 1;
    uint64_t objects = 1; /* counted when declared: the top-level value, then every element */
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
        item_t it;
        if (classify(p[pos++], &it, why) != 0) return -1;
        size_t left = len - pos;
        if (it.hdr) {
            if ((size_t)it.hdr > left) {
                *why = "truncated msgpack: the frame ends inside a length";
                return -1;
            }
            uint64_t n = be(p + pos, it.hdr);
            pos += it.hdr;
            left -= it.hdr;
            if (it.container == 1)
                it.elements = n;
            else if (it.container == 2)
                it.elements = 2 * n;
            else
                it.skip += n;
        }
        if (it.container) {
            if (it.elements > left) {
                *why = "declared count larger than the frame";
                return -1;
            }
            if (it.elements > max_objects - objects) {
                *why = "too many msgpack objects for one request";
                return -1;
            }
            objects += it.elements;
            /* depth counts the containers open around this one, the top-level map included. */
            if (depth + 1 > max_depth) {
                *why = "nesting too deep";
                return -1;
            }
            if (it.elements > 0) {
                stack[depth++] = pending;
                pending = it.elements;
            }
        } else if (it.skip > left) {
            *why = "declared length larger than the frame";
            return -1;
        } else {
            pos += (size_t)it.skip;
        }
    }
    if (pos != len) {
        *why = "trailing bytes after the message";
        return -1;
    }
    return 0;
}
