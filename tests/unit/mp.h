/* mp.h: building msgpack bytes by hand for the unit tests.
 *
 * An mp_t is a codec_buf_t with a packer on it, so a test can mix msgpack-c packing with raw
 * bytes (for the malformed inputs the packer refuses to write). The mp_t must not be moved after
 * mp_init: the packer points at its buffer. */
#ifndef EVS_TEST_MP_H
#define EVS_TEST_MP_H

#include <criterion/criterion.h>
#include <msgpack.h>
#include <stdarg.h>
#include <string.h>

#include "../../proto/codec.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#include <stdio.h>
#include <stdlib.h>
#endif

/* The .fini of every unit suite: in a sanitizer build, memory the test leaked fails it. An
 * assertion in a .fini does not fail a Criterion test, but a crash there is reported ("crashed
 * during its setup or teardown"), and scripts/run-tests.sh counts that as a failure. */
static inline void leak_check(void) {
#if defined(__SANITIZE_ADDRESS__)
    if (__lsan_do_recoverable_leak_check()) {
        fprintf(stderr, "unit test leaked memory (see the report above)\n");
        abort();
    }
#endif
}

typedef struct mp {
    codec_buf_t b;
    msgpack_packer pk;
} mp_t;

static inline void mp_init(mp_t *m) {
    codec_buf_init(&m->b);
    codec_packer_init(&m->pk, &m->b);
}

static inline void mp_free(mp_t *m) {
    codec_buf_free(&m->b);
}

static inline void mp_raw(mp_t *m, const void *p, size_t n) {
    cr_assert_eq(codec_buf_write(&m->b, p, n), 0);
}

/* Appends the bytes given as ints (0..255), terminated by -1. */
static inline void mp_bytes(mp_t *m, ...) {
    va_list ap;
    va_start(ap, m);
    for (int c = va_arg(ap, int); c >= 0; c = va_arg(ap, int)) {
        uint8_t byte = (uint8_t)c;
        mp_raw(m, &byte, 1);
    }
    va_end(ap);
}

static inline void mp_str(mp_t *m, const char *s) {
    codec_pack_cstr(&m->pk, s);
}

static inline void mp_strn(mp_t *m, const char *s, size_t n) {
    msgpack_pack_str(&m->pk, n);
    if (n) msgpack_pack_str_body(&m->pk, s, n);
}

static inline void mp_bin(mp_t *m, const void *p, size_t n) {
    codec_pack_bin(&m->pk, p, n);
}

static inline void mp_uint(mp_t *m, uint64_t v) {
    msgpack_pack_uint64(&m->pk, v);
}

static inline void mp_int(mp_t *m, int64_t v) {
    msgpack_pack_int64(&m->pk, v);
}

static inline void mp_map(mp_t *m, uint32_t n) {
    msgpack_pack_map(&m->pk, n);
}

static inline void mp_array(mp_t *m, uint32_t n) {
    msgpack_pack_array(&m->pk, n);
}

/* A string of n copies of c (n < 1024). */
static inline const char *repeat(char c, size_t n) {
    static char buf[1024];
    cr_assert_lt(n, sizeof buf);
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

#endif
