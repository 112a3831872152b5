/* frame.h: the length-prefixed framing shared by server and client, and the reader that cuts a
 * byte stream into frames.
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
    FRAME_OK = 0,         /* a whole frame is there */
    FRAME_INCOMPLETE = 1, /* not an error: more bytes are needed */
    FRAME_EMPTY = -1,     /* declared length 0 */
    FRAME_TOO_LARGE = -2, /* declared length over max_frame */
};

/* Looks at the len bytes at buf for one frame. On FRAME_OK, *body and *body_len are the frame's
 * body and *consumed the bytes it took with its header. On FRAME_TOO_LARGE, *body_len holds the
 * declared length. The length is checked before the caller allocates anything for the body. */
int frame_parse(const uint8_t *buf, size_t len, uint32_t max_frame, const uint8_t **body,
                size_t *body_len, size_t *consumed);

/* Writes the 4-byte header for a body of body_len bytes. */
void frame_put_header(uint8_t out[FRAME_HEADER], uint32_t body_len);

/* ---------------------------------------------------------------- the reader
 *
 * A frame_reader_t cuts a byte stream into frames (hiredis's redisReader is the model): bytes go
 * in, whole frame bodies come out, and a declared length is checked against max_frame before any
 * memory is set aside for the body. It is used by every side that reads frames: the daemon's
 * connections, the client library and the test clients.
 *
 * Bytes reach it in one of three ways:
 *   - frame_reader_space + frame_reader_commit: read(2) straight into the reader's own buffer;
 *   - frame_reader_feed: copy bytes in;
 *   - frame_reader_lend: zero copy. While the reader holds no bytes of its own it can parse from
 *     the caller's buffer; before the caller reuses that buffer it calls frame_reader_keep, which
 *     copies only the bytes not consumed yet (the start of an unfinished frame).
 *
 * frame_reader_next hands out one frame at a time. A body points into the reader's buffer (or the
 * lent one) and stays valid until the next call on the reader other than frame_reader_pending
 * and frame_reader_missing. The reader's buffer is freed as
 * soon as it holds no unconsumed byte, so an idle reader costs no memory.
 *
 * Errors: a declared length of 0 (FRAME_EMPTY) is consumed and reported, and reading may go on (the
 * daemon answers it and carries on; a client may treat it as fatal). A declared length over
 * max_frame (FRAME_TOO_LARGE) is sticky, as the framing cannot be trusted beyond it: every later
 * frame_reader_next returns it again. Allocation failures return FRAME_NOMEM and change nothing. */

#define FRAME_NOMEM (-3)       /* frame_reader_feed/space/keep: out of memory */
#define FRAME_READ_CHUNK 65536 /* default room frame_reader_space sets aside for one read */

typedef struct frame_reader {
    uint8_t *buf; /* owned bytes, or NULL; buf[pos..len) are not consumed yet */
    size_t cap, len, pos;
    const uint8_t *lent; /* the caller's bytes between frame_reader_lend and _keep */
    size_t lent_len, lent_pos;
    uint32_t max_frame; /* may be changed between calls (a daemon reloading its limit) */
    int err;            /* 0 or FRAME_TOO_LARGE (sticky) */
    size_t declared;    /* the declared length of the last FRAME_EMPTY/FRAME_TOO_LARGE */
} frame_reader_t;

/* Sets up an empty reader that accepts frames of up to max_frame bytes. Allocates nothing. */
void frame_reader_init(frame_reader_t *r, uint32_t max_frame);

/* Frees the reader's buffer, dropping the bytes it holds (lent ones included). The reader may be
 * initialised again, or used on as an empty reader with the same max_frame and error state (the
 * daemon does so to give back the buffer of a connection that sits between frames). */
void frame_reader_free(frame_reader_t *r);

/* The number of bytes the reader holds that no frame_reader_next has consumed yet (lent ones
 * included). 0 means the reader sits between frames. */
size_t frame_reader_pending(const frame_reader_t *r);

/* How many more bytes the next frame needs: the rest of the header, or when the header is there,
 * the rest of its body (bounded by max_frame). 0 when a whole frame is there or the reader is in
 * error. A blocking client reads at least this much in one go. */
size_t frame_reader_missing(const frame_reader_t *r);

/* Copies len bytes into the reader. Returns 0 or FRAME_NOMEM. Not allowed between
 * frame_reader_lend and frame_reader_keep. */
int frame_reader_feed(frame_reader_t *r, const uint8_t *data, size_t len);

/* Sets aside at least min bytes of room (FRAME_READ_CHUNK when min is 0) at the end of the
 * reader's buffer for a read and returns it in *room and *room_len; frame_reader_commit then
 * says how many bytes were written there. Returns 0 or FRAME_NOMEM. */
int frame_reader_space(frame_reader_t *r, size_t min, uint8_t **room, size_t *room_len);
void frame_reader_commit(frame_reader_t *r, size_t n);

/* Lets the reader parse len bytes of the caller's own buffer without copying them. Only allowed
 * when frame_reader_pending is 0 (returns -1 otherwise: use frame_reader_feed). The bytes must stay
 * untouched until frame_reader_keep. */
int frame_reader_lend(frame_reader_t *r, const uint8_t *data, size_t len);

/* Ends a lend: copies the lent bytes not consumed yet into the reader's own buffer (so the
 * caller may reuse its buffer) and forgets the lent buffer. When it copies any, it also sets
 * aside FRAME_READ_CHUNK bytes of room for the read that brings the rest of the frame. Returns
 * 0 or FRAME_NOMEM (the unconsumed bytes are then lost: the stream cannot go on). A no-op when
 * nothing is lent. */
int frame_reader_keep(frame_reader_t *r);

/* Takes the next frame. Returns FRAME_OK with *body and *body_len set, FRAME_INCOMPLETE when
 * more bytes are needed, FRAME_EMPTY (a zero-length frame, consumed), or FRAME_TOO_LARGE (sticky;
 * the declared length is in r->declared). */
int frame_reader_next(frame_reader_t *r, const uint8_t **body, size_t *body_len);

#endif
