/* event.c: copying and releasing events, and UUIDs (random ones, and their text form). */
#include "event.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "codec.h"

/* All the bytes of a duplicated event live in one block that starts with entity_id, so that
 * evs_event_clear frees them with one call. */
int evs_event_dup(evs_event_t *dst, const evs_event_t *src) {
    char *block = malloc(codec_event_bytes(src));
    if (!block) return -1;
    codec_event_copy_into(dst, src, block);
    return 0;
}

void evs_event_clear(evs_event_t *ev) {
    if (!ev) return;
    free(ev->entity_id);
    memset(ev, 0, sizeof *ev);
}

int evs_uuid_generate(uint8_t *ids, size_t n) {
    size_t len = n * 16, got = 0;
    while (got < len) {
        ssize_t r = getrandom(ids + got, len - got, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        got += (size_t)r;
    }
    for (size_t i = 0; i < n; i++) {
        ids[i * 16 + 6] = (uint8_t)((ids[i * 16 + 6] & 0x0f) | 0x40); /* version 4 */
        ids[i * 16 + 8] = (uint8_t)((ids[i * 16 + 8] & 0x3f) | 0x80); /* RFC 4122 variant */
    }
    return 0;
}

void evs_uuid_format(const uint8_t id[16], char out[37]) {
    static const char hex[] = "0123456789abcdef";
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) *p++ = '-';
        *p++ = hex[id[i] >> 4];
        *p++ = hex[id[i] & 15];
    }
    *p = '\0';
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int evs_uuid_parse(const char *text, uint8_t id[16]) {
    if (strlen(text) != 36) return -1;
    int n = 0;
    for (int i = 0; i < 36;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (text[i] != '-') return -1;
            i++;
            continue;
        }
        int hi = hexval(text[i]), lo = hexval(text[i + 1]);
        if (hi < 0 || lo < 0) return -1;
        id[n++] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    return 0;
}

uint64_t evs_partition_hash(const char *entity_id) {
    uint64_t h = UINT64_C(14695981039346656037);
    for (const unsigned char *p = (const unsigned char *)entity_id; *p; p++) {
        h ^= *p;
        h *= UINT64_C(1099511628211);
    }
    return h;
}
