/* fuzz_frame_reader.c: the daemon's input path on any byte stream. A frame_reader_t is given the
 * stream in pieces whose sizes and ways in (frame_reader_feed, frame_reader_space and _commit,
 * frame_reader_lend and _keep) the input chooses, and each frame it hands out is decoded as
 * dispatch_frame does (request_check.h). Whatever the pieces, the reader must hand out exactly
 * the frames frame_parse finds in the whole stream, and stop for good at a length over max_frame.
 *
 * Input: byte 0 picks max_frame, bytes 1 to 8 describe the pieces (used in turn: low 5 bits a
 * size of 1 to 32 bytes, bits 5-6 multiply it by 1, 4, 16 or 64, bit 7 lends or reads in place
 * instead of copying), the rest is the stream. */
#include "../../proto/frame.h"
#include "request_check.h"

#define SCHEDULE 8

static const uint32_t max_frames[8] = {1, 16, 64, 100, 1000, 4096, 65536, FRAME_DEFAULT_MAX};

/* The frames of the whole stream as frame_parse cuts it: the statuses and body offsets. */
typedef struct expected {
    int status;
    size_t off, len;
} expected_t;

static size_t cut_stream(const uint8_t *s, size_t n, uint32_t max, expected_t *out, size_t cap,
                         int *last) {
    size_t k = 0, pos = 0;
    for (;;) {
        const uint8_t *body = NULL;
        size_t len = 0, consumed = 0;
        int rc = frame_parse(s + pos, n - pos, max, &body, &len, &consumed);
        *last = rc;
        if (rc == FRAME_INCOMPLETE || rc == FRAME_TOO_LARGE) return k;
        FUZZ_CHECK(k < cap, "more frames than bytes");
        if (rc == FRAME_EMPTY) {
            out[k++] = (expected_t){FRAME_EMPTY, pos + FRAME_HEADER, 0};
            pos += FRAME_HEADER;
        } else {
            out[k++] = (expected_t){FRAME_OK, (size_t)(body - s), len};
            pos += consumed;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 + SCHEDULE) return -1;
    uint32_t max = max_frames[data[0] & 7];
    const uint8_t *sched = data + 1, *s = data + 1 + SCHEDULE;
    size_t n = size - 1 - SCHEDULE;
    expected_t *want = malloc((n / FRAME_HEADER + 1) * sizeof *want);
    int last;
    size_t nwant = cut_stream(s, n, max, want, n / FRAME_HEADER + 1, &last);

    frame_reader_t r;
    frame_reader_init(&r, max);
    codec_request_t req;
    memset(&req, 0, sizeof req);
    size_t got = 0, fed = 0, piece = 0, consumed = 0;
    bool too_large = false;
    while (fed < n && !too_large) {
        uint8_t d = sched[piece++ % SCHEDULE];
        size_t len = (size_t)((d & 0x1f) + 1) << (2 * ((d >> 5) & 3));
        if (len > n - fed) len = n - fed;
        bool lent = false;
        if ((d & 0x80) && frame_reader_pending(&r) == 0) {
            FUZZ_CHECK(frame_reader_lend(&r, s + fed, len) == 0, "lend refused");
            lent = true;
        } else if (d & 0x80) {
            FUZZ_CHECK(frame_reader_lend(&r, s + fed, len) < 0, "lend with bytes pending");
            uint8_t *room;
            size_t room_len;
            FUZZ_CHECK(frame_reader_space(&r, len, &room, &room_len) == 0, "no room");
            FUZZ_CHECK(room_len >= len, "room %zu for %zu", room_len, len);
            memcpy(room, s + fed, len);
            frame_reader_commit(&r, len);
        } else {
            FUZZ_CHECK(frame_reader_feed(&r, s + fed, len) == 0, "feed failed");
        }
        fed += len;
        for (;;) {
            const uint8_t *body = NULL;
            size_t body_len = 0;
            int rc = frame_reader_next(&r, &body, &body_len);
            if (rc == FRAME_INCOMPLETE) {
                FUZZ_CHECK(frame_reader_missing(&r) > 0, "incomplete, yet nothing missing");
                break;
            }
            if (rc == FRAME_TOO_LARGE) {
                FUZZ_CHECK(got == nwant && last == FRAME_TOO_LARGE, "too large at frame %zu", got);
                FUZZ_CHECK(r.declared > max, "declared %zu, max %u", r.declared, max);
                FUZZ_CHECK(frame_reader_next(&r, &body, &body_len) == FRAME_TOO_LARGE, "sticky");
                too_large = true;
                break;
            }
            FUZZ_CHECK(got < nwant, "frame %zu of %zu", got, nwant);
            FUZZ_CHECK(rc == want[got].status, "frame %zu: %d, want %d", got, rc, want[got].status);
            consumed = want[got].off + want[got].len;
            if (rc == FRAME_OK) {
                FUZZ_CHECK(body_len == want[got].len &&
                               memcmp(body, s + want[got].off, body_len) == 0,
                           "frame %zu: other bytes", got);
                fuzz_decode_request(body, body_len, &req);
            }
            got++;
        }
        if (too_large) break;
        FUZZ_CHECK(frame_reader_pending(&r) == fed - consumed, "pending %zu, want %zu",
                   frame_reader_pending(&r), fed - consumed);
        if (lent) FUZZ_CHECK(frame_reader_keep(&r) == 0, "keep failed");
        /* The daemon gives back the buffer of a connection that sits between frames. */
        if (frame_reader_pending(&r) == 0) frame_reader_free(&r);
    }
    if (!too_large) FUZZ_CHECK(got == nwant, "%zu frames, want %zu", got, nwant);
    codec_request_free(&req);
    frame_reader_free(&r);
    free(want);
    return 0;
}
