/* test_frame_reader.c: frame_reader_t (proto/frame.h), the one reader that cuts a byte stream into
 * frames for the daemon, the client library and the test clients. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../../proto/frame.h"
#include "mp.h"

TestSuite(frame_reader, .fini = leak_check);

/* Writes a frame of n body bytes, each byte = fill, at out; returns its size with the header. */
static size_t put_frame(uint8_t *out, uint32_t n, uint8_t fill) {
    frame_put_header(out, n);
    memset(out + FRAME_HEADER, fill, n);
    return FRAME_HEADER + (size_t)n;
}

static void expect_frame(frame_reader_t *r, size_t len, uint8_t fill) {
    const uint8_t *body = NULL;
    size_t body_len = 0;
    cr_assert_eq(frame_reader_next(r, &body, &body_len), FRAME_OK);
    cr_assert_eq(body_len, len);
    for (size_t i = 0; i < len; i++)
        cr_assert_eq(body[i], fill, "byte %zu", i);
}

static void expect_incomplete(frame_reader_t *r) {
    const uint8_t *body;
    size_t body_len;
    cr_assert_eq(frame_reader_next(r, &body, &body_len), FRAME_INCOMPLETE);
}

Test(frame_reader, a_new_reader_holds_nothing_and_needs_a_header) {
    frame_reader_t r;
    frame_reader_init(&r, 1024);
    cr_assert_eq(frame_reader_pending(&r), 0);
    cr_assert_eq(frame_reader_missing(&r), FRAME_HEADER);
    expect_incomplete(&r);
    cr_assert_null(r.buf, "an empty reader allocates nothing");
    frame_reader_free(&r);
}

Test(frame_reader, frames_fed_a_byte_at_a_time_come_out_whole_and_in_order) {
    uint8_t stream[64];
    size_t n = put_frame(stream, 5, 'a');
    n += put_frame(stream + n, 1, 'b');
    n += put_frame(stream + n, 9, 'c');
    frame_reader_t r;
    frame_reader_init(&r, 1024);
    int got = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(frame_reader_feed(&r, stream + i, 1), 0);
        const uint8_t *body;
        size_t body_len;
        int rc = frame_reader_next(&r, &body, &body_len);
        if (rc == FRAME_INCOMPLETE) continue;
        cr_assert_eq(rc, FRAME_OK);
        const char want[] = "abc";
        cr_assert_eq(body[0], want[got], "frame %d", got);
        got++;
    }
    cr_assert_eq(got, 3);
    cr_assert_eq(frame_reader_pending(&r), 0);
    expect_incomplete(&r);
    cr_assert_null(r.buf, "a reader with nothing left frees its buffer");
    frame_reader_free(&r);
}

Test(frame_reader, missing_counts_the_rest_of_the_header_then_of_the_body) {
    uint8_t stream[4 + 100];
    put_frame(stream, 100, 'x');
    frame_reader_t r;
    frame_reader_init(&r, 1024);
    frame_reader_feed(&r, stream, 2);
    cr_assert_eq(frame_reader_missing(&r), 2);
    frame_reader_feed(&r, stream + 2, 10);
    cr_assert_eq(frame_reader_missing(&r), 104 - 12);
    frame_reader_feed(&r, stream + 12, sizeof stream - 12);
    cr_assert_eq(frame_reader_missing(&r), 0);
    expect_frame(&r, 100, 'x');
    frame_reader_free(&r);
}

Test(frame_reader, reads_go_straight_into_the_room_it_sets_aside) {
    uint8_t stream[4 + 300];
    put_frame(stream, 300, 'z');
    frame_reader_t r;
    frame_reader_init(&r, 1024);
    size_t off = 0;
    while (off < sizeof stream) {
        uint8_t *room;
        size_t room_len;
        cr_assert_eq(frame_reader_space(&r, 7, &room, &room_len), 0);
        cr_assert_geq(room_len, 7);
        size_t n = sizeof stream - off < 7 ? sizeof stream - off : 7;
        memcpy(room, stream + off, n);
        frame_reader_commit(&r, n);
        off += n;
        if (off < sizeof stream) expect_incomplete(&r);
    }
    expect_frame(&r, 300, 'z');
    frame_reader_free(&r);
}

/* The daemon's zero-copy path: frames are parsed from the caller's buffer, and only the start of
 * an unfinished frame is copied when the caller wants its buffer back. */
Test(frame_reader, lent_bytes_are_parsed_in_place_and_only_the_rest_is_kept) {
    uint8_t stream[64];
    size_t first = put_frame(stream, 3, 'a');
    size_t n = first + put_frame(stream + first, 20, 'b');
    frame_reader_t r;
    frame_reader_init(&r, 1024);
    cr_assert_eq(frame_reader_lend(&r, stream, n - 5), 0);
    const uint8_t *body;
    size_t body_len;
    cr_assert_eq(frame_reader_next(&r, &body, &body_len), FRAME_OK);
    cr_assert_eq(body, stream + FRAME_HEADER, "the body points into the lent buffer");
    expect_incomplete(&r);
    cr_assert_null(r.buf, "nothing is copied while lent");
    cr_assert_eq(frame_reader_keep(&r), 0);
    cr_assert_eq(frame_reader_pending(&r), n - 5 - first);
    uint8_t *kept = r.buf, *room;
    size_t room_len;
    cr_assert_eq(frame_reader_space(&r, 0, &room, &room_len), 0);
    cr_assert_eq(r.buf, kept, "keep set the next read's room aside");
    cr_assert_geq(room_len, FRAME_READ_CHUNK);
    memset(stream, 0, n - 5); /* the caller reuses its buffer */
    put_frame(stream, 20, 'b');
    frame_reader_feed(&r, stream + n - first - 5, 5);
    expect_frame(&r, 20, 'b');
    frame_reader_free(&r);
}

Test(frame_reader, lending_is_refused_while_the_reader_holds_bytes) {
    uint8_t stream[8];
    put_frame(stream, 4, 'q');
    frame_reader_t r;
    frame_reader_init(&r, 1024);
    frame_reader_feed(&r, stream, 2);
    cr_assert_eq(frame_reader_lend(&r, stream + 2, 6), -1);
    frame_reader_feed(&r, stream + 2, 6);
    expect_frame(&r, 4, 'q');
    frame_reader_free(&r);
}

Test(frame_reader, an_empty_frame_is_reported_consumed_and_reading_goes_on) {
    uint8_t stream[16] = {0, 0, 0, 0};
    size_t n = 4 + put_frame(stream + 4, 2, 'e');
    frame_reader_t r;
    frame_reader_init(&r, 1024);
    frame_reader_feed(&r, stream, n);
    const uint8_t *body;
    size_t body_len;
    cr_assert_eq(frame_reader_next(&r, &body, &body_len), FRAME_EMPTY);
    expect_frame(&r, 2, 'e');
    frame_reader_free(&r);
}

/* The length is judged from the header alone: nothing is set aside for the body of a frame the
 * reader refuses, and the error sticks since the stream cannot be trusted beyond it. */
Test(frame_reader, a_frame_over_max_frame_is_refused_from_its_header_and_the_error_sticks) {
    uint8_t hdr[4];
    frame_put_header(hdr, 1025);
    frame_reader_t r;
    frame_reader_init(&r, 1024);
    frame_reader_feed(&r, hdr, 4);
    cr_assert_eq(frame_reader_missing(&r), 0);
    const uint8_t *body;
    size_t body_len;
    cr_assert_eq(frame_reader_next(&r, &body, &body_len), FRAME_TOO_LARGE);
    cr_assert_eq(r.declared, 1025);
    uint8_t ok[8];
    frame_reader_feed(&r, ok, put_frame(ok, 4, 'k'));
    cr_assert_eq(frame_reader_next(&r, &body, &body_len), FRAME_TOO_LARGE);
    frame_reader_free(&r);
}

Test(frame_reader, a_frame_of_exactly_max_frame_is_accepted) {
    uint8_t *stream = malloc(4 + 1024);
    size_t n = put_frame(stream, 1024, 'm');
    frame_reader_t r;
    frame_reader_init(&r, 1024);
    frame_reader_feed(&r, stream, n);
    expect_frame(&r, 1024, 'm');
    free(stream);
    frame_reader_free(&r);
}

/* Many small frames in one large buffer: each comes out once and the buffer is released at the
 * end (the reader moves no bytes per frame). */
Test(frame_reader, a_thousand_pipelined_frames_in_one_feed) {
    size_t total = 1000 * (FRAME_HEADER + 3);
    uint8_t *stream = malloc(total);
    size_t n = 0;
    for (int i = 0; i < 1000; i++)
        n += put_frame(stream + n, 3, (uint8_t)i);
    frame_reader_t r;
    frame_reader_init(&r, 1024);
    frame_reader_feed(&r, stream, n);
    for (int i = 0; i < 1000; i++)
        expect_frame(&r, 3, (uint8_t)i);
    expect_incomplete(&r);
    cr_assert_null(r.buf);
    free(stream);
    frame_reader_free(&r);
}

/* The daemon frees the buffer of a connection between frames and reads on with the same reader,
 * whose limit a reload may change: the new limit applies to the next frame. */
Test(frame_reader, a_freed_reader_reads_on_with_the_limit_set_since) {
    uint8_t stream[2 * (4 + 100)];
    size_t n = put_frame(stream, 100, 'a');
    frame_reader_t r;
    frame_reader_init(&r, 1024);
    frame_reader_feed(&r, stream, 10); /* a partial frame, dropped */
    frame_reader_free(&r);
    cr_assert_eq(frame_reader_pending(&r), 0);
    frame_reader_feed(&r, stream, n);
    expect_frame(&r, 100, 'a');
    r.max_frame = 64;
    put_frame(stream + n, 100, 'b');
    frame_reader_feed(&r, stream + n, n);
    const uint8_t *body;
    size_t body_len;
    cr_assert_eq(frame_reader_next(&r, &body, &body_len), FRAME_TOO_LARGE);
    cr_assert_eq(r.declared, 100);
    frame_reader_free(&r);
}

/* A large frame read in small pieces: the buffer grows geometrically (a bounded number of
 * reallocations, not one per piece) and never past the frame it is reading. */
Test(frame_reader, a_large_frame_read_in_small_pieces_grows_the_buffer_a_few_times_to_its_size) {
    const uint32_t n = 1u << 20;
    uint8_t *stream = malloc(FRAME_HEADER + n);
    size_t total = put_frame(stream, n, 'g');
    frame_reader_t r;
    frame_reader_init(&r, 2u << 20);
    size_t off = 0, last_cap = 0;
    int grows = 0;
    while (off < total) {
        uint8_t *room;
        size_t room_len;
        cr_assert_eq(frame_reader_space(&r, 4096, &room, &room_len), 0);
        if (r.cap != last_cap) grows++;
        last_cap = r.cap;
        /* Past the frame only as far as the room asked for near its end. */
        size_t bound = off + 4096 > total ? off + 4096 : total;
        cr_assert_leq(r.cap, bound, "cap %zu past the frame's %zu bytes", r.cap, total);
        size_t k = total - off < 4096 ? total - off : 4096;
        memcpy(room, stream + off, k);
        frame_reader_commit(&r, k);
        off += k;
    }
    cr_assert_leq(grows, 12, "%d reallocations for 256 pieces", grows);
    expect_frame(&r, n, 'g');
    free(stream);
    frame_reader_free(&r);
}
