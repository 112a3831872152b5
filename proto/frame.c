/* frame.c: the 4-byte big-endian length prefix, and the reader that cuts a stream into frames. */
#include "frame.h"

#include <stdlib.h>
#include <string.h>

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

/* ---------------------------------------------------------------- the reader */

void frame_reader_init(frame_reader_t *r, uint32_t max_frame) {
    memset(r, 0, sizeof *r);
    r->max_frame = max_frame;
}

void frame_reader_free(frame_reader_t *r) {
    free(r->buf);
    r->buf = NULL;
    r->cap = r->len = r->pos = 0;
    r->lent = NULL;
    r->lent_len = r->lent_pos = 0;
}

size_t frame_reader_pending(const frame_reader_t *r) {
    return (r->len - r->pos) + (r->lent_len - r->lent_pos);
}

/* The unconsumed bytes: the lent ones while a lend is open, else the owned ones. */
static const uint8_t *unread(const frame_reader_t *r, size_t *n) {
    if (r->lent) {
        *n = r->lent_len - r->lent_pos;
        return r->lent + r->lent_pos;
    }
    *n = r->len - r->pos;
    return r->buf ? r->buf + r->pos : NULL;
}

size_t frame_reader_missing(const frame_reader_t *r) {
    if (r->err) return 0;
    size_t n;
    const uint8_t *p = unread(r, &n);
    if (n < FRAME_HEADER) return FRAME_HEADER - n;
    uint32_t declared = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    if (declared == 0 || declared > r->max_frame) return 0;
    size_t whole = FRAME_HEADER + (size_t)declared;
    return n >= whole ? 0 : whole - n;
}

/* Drops consumed bytes, and the whole buffer when nothing is left, so an idle reader holds no
 * memory. Called only where bodies handed out before may be invalidated: when bytes are added,
 * and by frame_reader_next once everything is consumed (moving bytes on every frame would cost
 * quadratic time on a buffer full of small frames). */
static void compact(frame_reader_t *r) {
    if (r->pos == 0) return;
    if (r->pos == r->len) {
        free(r->buf);
        r->buf = NULL;
        r->cap = r->len = r->pos = 0;
        return;
    }
    memmove(r->buf, r->buf + r->pos, r->len - r->pos);
    r->len -= r->pos;
    r->pos = 0;
}

/* Makes room for extra more bytes after r->len. */
/* The size of the unfinished frame that starts the unconsumed owned bytes, header included, or 0
 * when its header is not all there or the frame will be refused. */
static size_t frame_in_progress(const frame_reader_t *r) {
    size_t n = r->len - r->pos;
    if (!r->buf || n < FRAME_HEADER) return 0;
    const uint8_t *p = r->buf + r->pos;
    uint32_t declared = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    if (declared == 0 || declared > r->max_frame) return 0;
    return FRAME_HEADER + (size_t)declared;
}

/* Makes room for extra more bytes after r->len. The buffer grows geometrically, so a large frame
 * read in small pieces is copied a bounded number of times rather than once per piece, but while
 * a frame is unfinished never past its end unless the caller asks for more: a slow sender's
 * partial frame holds at most what it declared. */
static int reserve(frame_reader_t *r, size_t extra) {
    compact(r);
    if (r->cap - r->len >= extra) return 0;
    if (extra > SIZE_MAX - r->len) return FRAME_NOMEM;
    size_t want = r->len + extra, whole = frame_in_progress(r);
    size_t cap = r->cap <= SIZE_MAX / 2 && r->cap * 2 > want ? r->cap * 2 : want;
    if (whole && want <= whole && cap > whole) cap = whole;
    if (whole && want > whole) cap = want;
    uint8_t *buf = realloc(r->buf, cap);
    if (!buf) return FRAME_NOMEM;
    r->buf = buf;
    r->cap = cap;
    return 0;
}

int frame_reader_feed(frame_reader_t *r, const uint8_t *data, size_t len) {
    if (len == 0) return 0;
    if (reserve(r, len) < 0) return FRAME_NOMEM;
    memcpy(r->buf + r->len, data, len);
    r->len += len;
    return 0;
}

int frame_reader_space(frame_reader_t *r, size_t min, uint8_t **room, size_t *room_len) {
    if (reserve(r, min ? min : FRAME_READ_CHUNK) < 0) return FRAME_NOMEM;
    *room = r->buf + r->len;
    *room_len = r->cap - r->len;
    return 0;
}

void frame_reader_commit(frame_reader_t *r, size_t n) {
    r->len += n;
}

int frame_reader_lend(frame_reader_t *r, const uint8_t *data, size_t len) {
    if (r->len - r->pos != 0 || r->lent) return -1;
    compact(r);
    r->lent = data;
    r->lent_len = len;
    r->lent_pos = 0;
    return 0;
}

int frame_reader_keep(frame_reader_t *r) {
    if (!r->lent) return 0;
    const uint8_t *rest = r->lent + r->lent_pos;
    size_t n = r->lent_len - r->lent_pos;
    r->lent = NULL;
    r->lent_len = r->lent_pos = 0;
    if (n == 0) return 0;
    /* The rest of the frame comes through frame_reader_space: set its room aside now rather
     * than grow the buffer again on the next read. */
    if (n > SIZE_MAX - FRAME_READ_CHUNK || reserve(r, n + FRAME_READ_CHUNK) < 0) return FRAME_NOMEM;
    memcpy(r->buf + r->len, rest, n);
    r->len += n;
    return 0;
}

int frame_reader_next(frame_reader_t *r, const uint8_t **body, size_t *body_len) {
    if (r->err) return r->err;
    if (!r->lent && r->buf && r->pos == r->len) compact(r); /* frees it: nothing is left */
    size_t n, consumed = 0, len = 0;
    const uint8_t *p = unread(r, &n);
    if (n == 0) return FRAME_INCOMPLETE;
    int rc = frame_parse(p, n, r->max_frame, body, &len, &consumed);
    if (rc == FRAME_INCOMPLETE) return rc;
    if (rc == FRAME_TOO_LARGE) {
        r->err = rc;
        r->declared = len;
        return rc;
    }
    if (rc == FRAME_EMPTY) {
        r->declared = 0;
        consumed = FRAME_HEADER;
    } else {
        *body_len = len;
    }
    if (r->lent)
        r->lent_pos += consumed;
    else
        r->pos += consumed;
    return rc;
}
