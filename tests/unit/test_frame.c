/* test_frame.c: the 4-byte length prefix (proto/frame.h) and codec_frame_begin/end. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../../proto/codec.h"
#include "../../proto/frame.h"
#include "mp.h"

TestSuite(frame, .fini = leak_check);
TestSuite(codec_frame, .fini = leak_check);

static int parse(const uint8_t *buf, size_t len, uint32_t max, const uint8_t **body,
                 size_t *body_len, size_t *consumed) {
    *body = NULL;
    *body_len = 12345;
    *consumed = 12345;
    return frame_parse(buf, len, max, body, body_len, consumed);
}

Test(frame, fewer_than_four_bytes_is_incomplete) {
    const uint8_t buf[4] = {0, 0, 0, 1};
    const uint8_t *body;
    size_t body_len, consumed;
    for (size_t len = 0; len < 4; len++)
        cr_assert_eq(parse(buf, len, 1024, &body, &body_len, &consumed), FRAME_INCOMPLETE,
                     "len %zu", len);
}

Test(frame, declared_length_zero_is_empty) {
    const uint8_t buf[] = {0, 0, 0, 0, 0x80};
    const uint8_t *body;
    size_t body_len, consumed;
    cr_assert_eq(parse(buf, sizeof buf, 1024, &body, &body_len, &consumed), FRAME_EMPTY);
}

Test(frame, whole_frame_is_ok_with_body_and_consumed) {
    const uint8_t buf[] = {0, 0, 0, 3, 0x81, 0xa1, 'a', 0xc0 /* next frame starts here */};
    const uint8_t *body;
    size_t body_len, consumed;
    /* 3 body bytes: the frame ends before 0xc0 */
    cr_assert_eq(parse(buf, sizeof buf, 1024, &body, &body_len, &consumed), FRAME_OK);
    cr_assert_eq(body, buf + 4);
    cr_assert_eq(body_len, 3);
    cr_assert_eq(consumed, 7);
}

Test(frame, body_one_byte_short_is_incomplete) {
    uint8_t buf[4 + 100];
    frame_put_header(buf, 100);
    memset(buf + 4, 0xc0, 100);
    const uint8_t *body;
    size_t body_len, consumed;
    for (size_t len = 4; len < sizeof buf; len++)
        cr_assert_eq(parse(buf, len, 1024, &body, &body_len, &consumed), FRAME_INCOMPLETE,
                     "len %zu", len);
    cr_assert_eq(parse(buf, sizeof buf, 1024, &body, &body_len, &consumed), FRAME_OK);
    cr_assert_eq(body_len, 100);
    cr_assert_eq(consumed, sizeof buf);
}

Test(frame, length_equal_to_max_frame_is_accepted) {
    size_t n = 1024;
    uint8_t *buf = calloc(1, 4 + n);
    frame_put_header(buf, (uint32_t)n);
    const uint8_t *body;
    size_t body_len, consumed;
    cr_assert_eq(parse(buf, 4 + n, (uint32_t)n, &body, &body_len, &consumed), FRAME_OK);
    cr_assert_eq(body_len, n);
    free(buf);
}

/* The length is judged from the header alone, before any of the body has arrived, so that the
 * reader never buffers or allocates for a frame it will refuse. */
Test(frame, length_over_max_frame_is_too_large_from_the_header_alone) {
    uint8_t buf[4];
    frame_put_header(buf, 1025);
    const uint8_t *body;
    size_t body_len, consumed;
    cr_assert_eq(parse(buf, 4, 1024, &body, &body_len, &consumed), FRAME_TOO_LARGE);
    cr_assert_eq(body_len, 1025, "the declared length is reported");
}

Test(frame, four_gigabyte_declaration_is_too_large_at_the_default_limit) {
    const uint8_t buf[] = {0xff, 0xff, 0xff, 0xff};
    const uint8_t *body;
    size_t body_len, consumed;
    cr_assert_eq(parse(buf, 4, FRAME_DEFAULT_MAX, &body, &body_len, &consumed), FRAME_TOO_LARGE);
    cr_assert_eq(body_len, 0xffffffffu);
}

Test(frame, default_max_frame_is_16_mib) {
    cr_assert_eq(FRAME_DEFAULT_MAX, 16u * 1024 * 1024);
    uint8_t buf[4];
    frame_put_header(buf, FRAME_DEFAULT_MAX);
    const uint8_t *body;
    size_t body_len, consumed;
    cr_assert_eq(parse(buf, 4, FRAME_DEFAULT_MAX, &body, &body_len, &consumed), FRAME_INCOMPLETE);
    frame_put_header(buf, FRAME_DEFAULT_MAX + 1);
    cr_assert_eq(parse(buf, 4, FRAME_DEFAULT_MAX, &body, &body_len, &consumed), FRAME_TOO_LARGE);
}

Test(frame, header_is_big_endian) {
    uint8_t h[4];
    frame_put_header(h, 0x01020304u);
    cr_assert_eq(h[0], 1);
    cr_assert_eq(h[1], 2);
    cr_assert_eq(h[2], 3);
    cr_assert_eq(h[3], 4);
    frame_put_header(h, 0xffffffffu);
    cr_assert_eq(h[0] & h[1] & h[2] & h[3], 0xff);
}

Test(frame, consecutive_frames_parse_one_after_the_other) {
    uint8_t buf[4 + 1 + 4 + 2];
    frame_put_header(buf, 1);
    buf[4] = 0x80;
    frame_put_header(buf + 5, 2);
    buf[9] = 0x81;
    buf[10] = 0xc0;
    const uint8_t *body;
    size_t body_len, consumed;
    cr_assert_eq(parse(buf, sizeof buf, 1024, &body, &body_len, &consumed), FRAME_OK);
    cr_assert_eq(consumed, 5);
    cr_assert_eq(body_len, 1);
    cr_assert_eq(parse(buf + consumed, sizeof buf - consumed, 1024, &body, &body_len, &consumed),
                 FRAME_OK);
    cr_assert_eq(body, buf + 9);
    cr_assert_eq(body_len, 2);
    cr_assert_eq(consumed, 6);
}

/* ---------------------------------------------------------------- codec_frame_begin/end */

Test(codec_frame, begin_end_writes_the_body_length) {
    mp_t m;
    mp_init(&m);
    size_t start = codec_frame_begin(&m.b);
    cr_assert_eq(start, 0);
    mp_map(&m, 1);
    mp_str(&m, "op");
    mp_str(&m, "ping");
    size_t body = m.b.len - 4;
    cr_assert_eq(codec_frame_end(&m.b, start, 1024), 0);
    const uint8_t *bp;
    size_t body_len, consumed;
    cr_assert_eq(frame_parse(m.b.data, m.b.len, 1024, &bp, &body_len, &consumed), FRAME_OK);
    cr_assert_eq(body_len, body);
    cr_assert_eq(consumed, m.b.len);
    const char *why = NULL;
    cr_assert_eq(codec_prescan(bp, body_len, CODEC_MAX_DEPTH, &why), 0, "%s", why);
    mp_free(&m);
}

Test(codec_frame, two_frames_in_one_buffer) {
    mp_t m;
    mp_init(&m);
    size_t a = codec_frame_begin(&m.b);
    mp_map(&m, 0);
    cr_assert_eq(codec_frame_end(&m.b, a, 1024), 0);
    size_t b = codec_frame_begin(&m.b);
    cr_assert_eq(b, 5);
    mp_map(&m, 1);
    mp_str(&m, "k");
    mp_uint(&m, 7);
    cr_assert_eq(codec_frame_end(&m.b, b, 1024), 0);
    const uint8_t *bp;
    size_t body_len, consumed;
    cr_assert_eq(frame_parse(m.b.data, m.b.len, 1024, &bp, &body_len, &consumed), FRAME_OK);
    cr_assert_eq(body_len, 1);
    cr_assert_eq(
        frame_parse(m.b.data + consumed, m.b.len - consumed, 1024, &bp, &body_len, &consumed),
        FRAME_OK);
    cr_assert_eq(body_len, 4);
    mp_free(&m);
}

Test(codec_frame, empty_body_is_refused_and_removed) {
    mp_t m;
    mp_init(&m);
    size_t a = codec_frame_begin(&m.b);
    mp_map(&m, 0);
    cr_assert_eq(codec_frame_end(&m.b, a, 1024), 0);
    size_t keep = m.b.len;
    size_t b = codec_frame_begin(&m.b);
    cr_assert_eq(codec_frame_end(&m.b, b, 1024), -1);
    cr_assert_eq(m.b.len, keep, "the refused frame is removed, the earlier one kept");
    mp_free(&m);
}

Test(codec_frame, body_over_max_frame_is_refused_and_removed) {
    mp_t m;
    mp_init(&m);
    size_t a = codec_frame_begin(&m.b);
    mp_map(&m, 1);
    mp_str(&m, "k");
    mp_str(&m, repeat('x', 100));
    cr_assert_eq(codec_frame_end(&m.b, a, 50), -1);
    cr_assert_eq(m.b.len, 0);
    /* exactly max_frame is fine */
    a = codec_frame_begin(&m.b);
    mp_map(&m, 0);
    cr_assert_eq(codec_frame_end(&m.b, a, 1), 0);
    cr_assert_eq(m.b.len, 5);
    mp_free(&m);
}
