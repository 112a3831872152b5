/* fuzz.h: what the libFuzzer harnesses of tests/fuzz share.
 *
 * A harness is one LLVMFuzzerTestOneInput over one parser of untrusted bytes. Crashes, leaks and
 * undefined behaviour are found by the sanitizers; FUZZ_CHECK adds the parser's own promises
 * (what it hands out is well-formed), and aborts with a message when one is broken, which
 * libFuzzer reports as a crash and saves the input of. */
#ifndef EVS_FUZZ_H
#define EVS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../proto/codec.h"
#include "../../proto/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: broken promise: %s: ", __FILE__, __LINE__, #cond);             \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Reads every byte of [p, p+n), so that a pointer handed out past its memory is caught by
 * AddressSanitizer where it is handed out rather than much later. */
static inline void fuzz_touch(const void *p, size_t n) {
    const volatile uint8_t *b = p;
    uint8_t x = 0;
    for (size_t i = 0; i < n; i++)
        x ^= b[i];
    (void)x;
}

/* True when the NUL-terminated s is valid UTF-8 (empty included): error messages quote client
 * input and must still decode as text on the other side. */
static inline int fuzz_utf8_ok(const char *s) {
    size_t n = strlen(s);
    return n == 0 || (n <= EVS_NAME_MAX && codec_valid_name(s, n));
}

/* Checks that the len bytes at frame are exactly one frame whose body a client accepts: a
 * declared length equal to the body's, and a body that is one msgpack map codec_prescan passes
 * and msgpack-c unpacks whole. Writes the unpacked map's "ok" into *ok (-1 when absent). */
static inline void fuzz_check_reply_frame(const uint8_t *frame, size_t len, int *ok, int *has_id) {
    FUZZ_CHECK(len > FRAME_HEADER, "a reply frame of %zu bytes", len);
    uint32_t n =
        (uint32_t)frame[0] << 24 | (uint32_t)frame[1] << 16 | (uint32_t)frame[2] << 8 | frame[3];
    FUZZ_CHECK(n == len - FRAME_HEADER, "declared %u, body %zu", n, len - 4);
    const char *why = NULL;
    FUZZ_CHECK(codec_prescan(frame + 4, n, CODEC_MAX_DEPTH, &why) == 0, "%s", why);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    msgpack_unpack_return ur = msgpack_unpack_next(&u, (const char *)frame + 4, n, &off);
    FUZZ_CHECK(ur == MSGPACK_UNPACK_SUCCESS && off == n && u.data.type == MSGPACK_OBJECT_MAP,
               "unpack %d, %zu of %u bytes", (int)ur, off, n);
    const msgpack_object *o = codec_map_get(&u.data, "ok");
    *ok = o && o->type == MSGPACK_OBJECT_BOOLEAN ? o->via.boolean : -1;
    *has_id = codec_map_get(&u.data, "id") != NULL;
    msgpack_unpacked_destroy(&u);
}

#endif
