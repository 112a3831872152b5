/* conn.c: client connections (see conn.h for the model). */
#include "conn.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../proto/frame.h"
#include "auth.h"
#include "dispatch.h"
#include "log.h"
#include "subs.h"
#include "tls.h"

/* One uv_write of output: data[skip..skip+len) is written, data is freed after. */
typedef struct write_req {
    uv_write_t req;
    conn_t *conn;
    uint8_t *data;
    size_t skip, len;
} write_req_t;

conn_t *conn_new(server_t *srv) {
    conn_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->srv = srv;
    c->refs = 1; /* the handle's */
    frame_reader_init(&c->in, srv->cfg.max_frame);
    codec_buf_init(&c->out);
    return c;
}

static void conn_free(conn_t *c) {
    frame_reader_free(&c->in);
    codec_buf_free(&c->out);
    codec_buf_free(&c->wire);
    tls_session_free(c->tls);
    free(c);
}

int conn_use_tls(conn_t *c, struct ssl_ctx_st *ctx) {
    c->tls = tls_session_new(ctx);
    return c->tls ? 0 : -1;
}

const char *conn_tls_peer_cn(const conn_t *c) {
    return c->tls && tls_session_established(c->tls) ? tls_session_peer_cn(c->tls) : NULL;
}

void conn_discard(conn_t *c) {
    conn_free(c);
}

void conn_ref(conn_t *c) {
    c->refs++;
}

void conn_unref(conn_t *c) {
    if (--c->refs == 0) conn_free(c);
}

bool conn_is_open(const conn_t *c) {
    return !c->closing;
}

size_t conn_queued(const conn_t *c) {
    return c->out.len + c->wire.len + c->writing;
}

size_t conn_reply_room(const conn_t *c) {
    size_t queued = conn_queued(c), limit = c->srv->cfg.out_limit;
    size_t room = queued < limit ? limit - queued : 0;
    size_t page = codec_page_budget(c->srv->cfg.max_frame);
    return room < page ? room : page;
}

static void on_close(uv_handle_t *h) {
    conn_t *c = h->data;
    conn_unref(c);
}

/* Brings srv->input_bytes in step with what c's reader holds now. */
static void input_account(conn_t *c) {
    if (c->closing) return;
    c->srv->input_bytes = c->srv->input_bytes - c->in_counted + c->in.cap;
    c->in_counted = c->in.cap;
}

void conn_close(conn_t *c, const char *why) {
    if (c->closing) return;
    c->closing = true;
    if (why) log_info("conn", "%s: closed: %s", c->peer, why);
    subs_conn_closed(c->srv->subs, c);
    server_t *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    srv->nconns--;
    srv->input_bytes -= c->in_counted; /* the reader is freed with the connection */
    c->in_counted = 0;
    if (c->timer_started) uv_close((uv_handle_t *)&c->timer, on_close);
    uv_close(&c->h.handle, on_close);
}

/* ---------------------------------------------------------------- timeouts */

static void on_timer(uv_timer_t *t);

/* Idle as idle_timeout means it: no subscription, no request in flight, no output queued and no
 * part of a frame received. */
static bool is_idle(const conn_t *c) {
    return !c->subs && c->inflight == 0 && conn_queued(c) == 0 && frame_reader_pending(&c->in) == 0;
}

/* Arms c's timer to fire at due (uv_now time), unless it fires earlier already. */
static void timer_arm(conn_t *c, uint64_t due) {
    if (c->closing || !c->timer_started || (c->timer_due && c->timer_due <= due)) return;
    uint64_t now = uv_now(c->srv->loop);
    c->timer_due = due;
    uv_timer_start(&c->timer, on_timer, due > now ? due - now : 0, 0);
}

/* Closes c when its unfinished frame is older than frame_timeout, or when it has been idle for
 * idle_timeout; otherwise arms the timer for the nearest of the two deadlines. A connection
 * found busy counts as active now, so its idle time starts when it stops being busy. */
static void check_timeouts(conn_t *c) {
    const server_config_t *cfg = &c->srv->cfg;
    uint64_t now = uv_now(c->srv->loop), next = UINT64_MAX;
    char why[160];
    c->timer_due = 0;
    if (c->closing || c->close_when_flushed) return;
    if (c->in_frame && c->reading && cfg->frame_timeout_ms) {
        uint64_t due = c->frame_ms + cfg->frame_timeout_ms;
        if (now >= due) {
            snprintf(why, sizeof why,
                     "%s begun %llu ms ago is not complete (frame_timeout is %u s)",
                     c->tls && !tls_session_established(c->tls) ? "the TLS handshake" : "a frame",
                     (unsigned long long)(now - c->frame_ms), cfg->frame_timeout_ms / 1000);
            conn_close(c, why);
            return;
        }
        next = due;
    }
    if (cfg->idle_timeout_ms) {
        if (!is_idle(c)) c->active_ms = now;
        uint64_t due = c->active_ms + cfg->idle_timeout_ms;
        if (now >= due) {
            snprintf(why, sizeof why, "idle for %u s (idle_timeout)", cfg->idle_timeout_ms / 1000);
            conn_close(c, why);
            return;
        }
        if (due < next) next = due;
    }
    if (next != UINT64_MAX) timer_arm(c, next);
}

static void on_timer(uv_timer_t *t) {
    check_timeouts(t->data);
}

void conn_timeouts_changed(server_t *srv) {
    for (conn_t *c = srv->conns; c; c = c->next)
        check_timeouts(c);
}

/* Notes that the reader of c holds the start of a frame, from now, if it was not noted yet: the
 * frame timeout runs while the daemon reads it (a connection paused by the daemon is not
 * timed). */
static void note_frame_start(conn_t *c) {
    if (c->in_frame || !c->reading || frame_reader_pending(&c->in) == 0) return;
    c->in_frame = true;
    c->frame_ms = uv_now(c->srv->loop);
    if (c->srv->cfg.frame_timeout_ms) timer_arm(c, c->frame_ms + c->srv->cfg.frame_timeout_ms);
}

/* ---------------------------------------------------------------- input memory */

/* Counts c's reader in srv->input_bytes; true when it grew and the readers of all connections
 * now hold more than frame_memory_limit. */
static bool input_grew_over_limit(conn_t *c) {
    bool grew = c->in.cap > c->in_counted;
    input_account(c);
    return grew && c->srv->input_bytes > c->srv->cfg.frame_memory_limit;
}

static void pause_reading(conn_t *c);

/* Refuses the frame c is receiving because frame_memory_limit would be passed: an `unavailable`
 * error (without id: the frame was never read whole) and the connection closes once it is
 * written (the rest of the frame cannot be skipped without reading it). */
static void refuse_input(conn_t *c) {
    size_t limit = c->srv->cfg.frame_memory_limit;
    log_warn("conn",
             "%s: closing: its unfinished frame (%zu bytes so far) would take the input memory of "
             "all connections past frame_memory_limit (%zu bytes)",
             c->peer, frame_reader_pending(&c->in), limit);
    codec_error_t err;
    codec_error_set(&err, EVS_EUNAVAILABLE,
                    "the server is short of memory for unfinished frames (frame_memory_limit, "
                    "%zu bytes for all connections); this connection closes: retry later on a "
                    "new one",
                    limit);
    codec_reply_error(&c->out, false, 0, &err);
    stats_error(&c->srv->stats, err.code);
    c->close_when_flushed = true;
    pause_reading(c);
    frame_reader_free(&c->in);
    input_account(c);
    conn_flush(c);
}

/* ---------------------------------------------------------------- reading */

/* A connection waiting to close (end of input, or an oversized frame) closes once no request is
 * waiting for the store and all its output is written. */
static bool ready_to_close(const conn_t *c) {
    return c->inflight == 0 && conn_queued(c) == 0;
}

/* Reads land in one buffer shared by every connection when the connection's reader holds no
 * partial frame: the reader parses them in place (frame_reader_lend), requests are handled before
 * the next read, and frame_reader_keep copies only the start of an unfinished frame into the
 * connection's own buffer. Idle connections hold no input memory at all. */
static uint8_t shared_in[FRAME_READ_CHUNK];
static bool shared_in_busy;

/* Where the next input of c goes (plaintext: from the socket, or decrypted by tls_pump): the
 * shared buffer, or room in c's reader; a NULL buffer when out of memory or when
 * frame_memory_limit would be passed (input_refused). */
static void input_room(conn_t *c, uv_buf_t *buf) {
    if (frame_reader_pending(&c->in) == 0 && !shared_in_busy) {
        shared_in_busy = true;
        *buf = uv_buf_init((char *)shared_in, sizeof shared_in);
        return;
    }
    uint8_t *room;
    size_t room_len;
    if (frame_reader_space(&c->in, FRAME_READ_CHUNK, &room, &room_len) < 0) {
        *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
        return;
    }
    if (input_grew_over_limit(c)) {
        c->input_refused = true;
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init((char *)room, (unsigned)room_len);
}

static void pause_reading(conn_t *c) {
    if (c->reading) uv_read_stop(&c->h.stream);
    c->reading = false;
    c->read_paused = true;
    c->in_frame = false; /* not timed while the daemon does not read */
}

/* Answers the frame the reader refused: FRAME_TOO_LARGE ends the connection once the reply is
 * written (the framing cannot be trusted past it), FRAME_EMPTY is a bad request and reading goes
 * on. */
static void reply_bad_frame(conn_t *c, int status) {
    codec_error_t err;
    uint32_t max = c->srv->cfg.max_frame;
    if (status == FRAME_TOO_LARGE) {
        codec_error_set(&err, EVS_ETOO_LARGE,
                        "frame of %zu bytes is over this server's max_frame of %u bytes; "
                        "split the request",
                        c->in.declared, max);
        log_info("conn", "%s: frame of %zu bytes over max_frame %u", c->peer, c->in.declared, max);
        c->close_when_flushed = true;
        pause_reading(c);
    } else {
        codec_error_set(&err, EVS_EBAD_REQUEST, "empty frame: a frame holds one msgpack map");
    }
    codec_reply_error(&c->out, false, 0, &err);
    stats_error(&c->srv->stats, err.code);
}

/* Hands every whole frame the reader holds to dispatch, stopping early when the connection has
 * too many requests in flight or too much output queued (the rest waits in the reader until
 * output_drained resumes). */
static void process_frames(conn_t *c) {
    c->in.max_frame = c->srv->cfg.max_frame; /* a reload may have changed it */
    c->in_process = true;
    while (!c->closing && !c->close_when_flushed) {
        const uint8_t *body;
        size_t body_len;
        int rc = frame_reader_next(&c->in, &body, &body_len);
        if (rc == FRAME_INCOMPLETE) break;
        if (rc != FRAME_OK) {
            reply_bad_frame(c, rc);
            continue;
        }
        c->in_frame = false;
        c->active_ms = uv_now(c->srv->loop);
        if (c->srv->draining) continue; /* shutting down: requests not yet started are dropped */
        dispatch_frame(c, body, body_len);
        if (c->reads_inflight > 0) {
            /* The reply of a read is cut to the room left under output_limit when it is packed:
             * the next request waits for it, so that replies in flight cannot add up. */
            pause_reading(c);
            break;
        }
        if (c->inflight >= CONN_MAX_INFLIGHT) {
            /* The replies of requests still in the store are not counted in the output yet:
             * bound them too. Reading resumes once half of them are answered. */
            pause_reading(c);
            break;
        }
        if (conn_queued(c) >= c->srv->cfg.out_limit) {
            conn_flush(c);
            if (conn_queued(c) >= c->srv->cfg.out_limit) {
                pause_reading(c);
                break;
            }
        }
    }
    c->in_process = false;
}

/* Handles the frames the reader holds, keeps what is left (out of the shared buffer, if it was
 * lent), then writes the replies. A connection that will read no more drops its input. */
static void process_input(conn_t *c) {
    process_frames(c);
    if (c->closing || c->close_when_flushed) {
        frame_reader_free(&c->in);
    } else if (frame_reader_keep(&c->in) < 0) {
        conn_close(c, "out of memory for the input buffer");
        return;
    } else if (frame_reader_pending(&c->in) == 0) {
        frame_reader_free(&c->in); /* an idle connection keeps no input buffer */
    }
    if (input_grew_over_limit(c) && !c->closing && !c->close_when_flushed) {
        refuse_input(c);
        return;
    }
    note_frame_start(c);
    conn_flush(c);
}

/* Takes what came into buf (from input_room): nread bytes, or the end of the input (UV_EOF),
 * an error, UV_ENOBUFS when input_room gave no buffer, or 0 to give the buffer back. */
static void input_take(conn_t *c, ssize_t nread, const uv_buf_t *buf) {
    bool shared = buf->base == (char *)shared_in;
    if (shared) shared_in_busy = false;
    if (nread > 0) {
        if (!shared) {
            frame_reader_commit(&c->in, (size_t)nread);
        } else if (frame_reader_lend(&c->in, shared_in, (size_t)nread) < 0) {
            /* on_alloc lends the shared buffer only to a reader between frames */
            conn_close(c, "input read into the shared buffer behind a partial frame");
            return;
        }
        process_input(c);
        return;
    }
    if (nread == UV_ENOBUFS) {
        if (c->input_refused)
            refuse_input(c);
        else
            conn_close(c, "out of memory for the input buffer");
        return;
    }
    if (nread < 0) {
        if (nread == UV_EOF) {
            if (frame_reader_pending(&c->in))
                log_info("conn", "%s: closed in the middle of a frame", c->peer);
            /* The client may only have shut its sending side: its requests still get their
             * replies before the connection closes. */
            conn_stop_reading(c);
            c->close_when_flushed = true;
            if (ready_to_close(c)) conn_close(c, NULL);
        } else {
            conn_close(c, uv_strerror((int)nread));
        }
        return;
    }
    /* Nothing read: a buffer set aside for a reader between frames is given back. */
    if (frame_reader_pending(&c->in) == 0) frame_reader_free(&c->in);
    input_account(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    input_room(h->data, buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    input_take(s->data, nread, buf);
}

/* ---------------------------------------------------------------- TLS */

/* The TLS handshake of c is complete. From here on conn_tls_peer_cn(c) is the CN of a verified
 * client certificate (tls_ca set): this is where a certificate maps to a principal. */
static void tls_established(conn_t *c) {
    c->in_frame = false;
    const char *cn = conn_tls_peer_cn(c);
    if (!cn) return;
    log_info("conn", "%s: TLS client certificate verified: CN \"%s\"", c->peer, cn);
    conn_auth_cert_cn(c, cn); /* the principal whose cert-cn it is, from the first request */
}

/* Ends a connection whose handshake failed: the session's alert goes out, then it closes. */
static void tls_refuse(conn_t *c, const char *why) {
    log_info("conn", "%s: TLS handshake failed: %s", c->peer, why);
    c->close_when_flushed = true;
    conn_stop_reading(c);
    conn_flush(c);
}

/* Drives c's session with the ciphertext it was fed: the handshake first, then the plaintext is
 * decrypted into the reader and handled as input_take handles a plain read, for as long as c
 * reads. What is left waits in the session until reading resumes (output_drained). */
static void tls_pump(conn_t *c) {
    char why[256];
    if (c->tls_pumping || c->closing) return;
    if (!tls_session_established(c->tls)) {
        int rc = tls_session_handshake(c->tls, why, sizeof why);
        if (rc == TLS_FAILED) {
            tls_refuse(c, why);
            return;
        }
        conn_flush(c);
        if (rc == TLS_AGAIN || c->closing) return;
        tls_established(c);
    }
    c->tls_pumping = true;
    while (c->reading && !c->closing && !c->close_when_flushed) {
        uv_buf_t room;
        input_room(c, &room);
        if (!room.base) {
            input_take(c, UV_ENOBUFS, &room);
            break;
        }
        ssize_t n = tls_session_read(c->tls, (uint8_t *)room.base, room.len, why, sizeof why);
        if (n > 0) {
            input_take(c, n, &room);
            continue;
        }
        input_take(c, 0, &room); /* gives the buffer back */
        if (n == TLS_CLOSED) input_take(c, UV_EOF, &(uv_buf_t){0});
        if (n == TLS_FAILED) conn_close(c, why);
        if (n == TLS_AGAIN) conn_flush(c); /* what reading made the session send */
        break;
    }
    c->tls_pumping = false;
}

/* Ciphertext is read into one buffer shared by every TLS connection and fed to the session at
 * once. */
static uint8_t shared_cipher_in[FRAME_READ_CHUNK];

static void on_alloc_tls(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)h, (void)suggested;
    *buf = uv_buf_init((char *)shared_cipher_in, sizeof shared_cipher_in);
}

static void on_read_tls(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    conn_t *c = s->data;
    if (nread > 0) {
        if (tls_session_feed(c->tls, (const uint8_t *)buf->base, (size_t)nread) != 0)
            conn_close(c, "out of memory for TLS input");
        else
            tls_pump(c);
    } else if (nread < 0) {
        input_take(c, nread, &(uv_buf_t){0});
    }
}

/* Starts reading c's socket with the callbacks of its transport. */
static int read_start(conn_t *c) {
    return c->tls ? uv_read_start(&c->h.stream, on_alloc_tls, on_read_tls)
                  : uv_read_start(&c->h.stream, on_alloc, on_read);
}

void conn_start(conn_t *c) {
    c->h.handle.data = c;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (c->h.handle.type == UV_TCP &&
        uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &len) == 0) {
        char ip[48];
        if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
            snprintf(c->peer, sizeof c->peer, "[%s]:%d", ip,
                     ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
        } else {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
            snprintf(c->peer, sizeof c->peer, "%s:%d", ip,
                     ntohs(((struct sockaddr_in *)&ss)->sin_port));
        }
        uv_tcp_nodelay(&c->h.tcp, 1);
    } else {
        struct ucred cred;
        socklen_t clen = sizeof cred;
        uv_os_fd_t fd;
        if (uv_fileno(&c->h.handle, &fd) == 0 &&
            getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0) {
            c->has_uid = true;
            c->uid = cred.uid;
            c->principal = auth_find_uid(c->srv->auth, cred.uid);
            snprintf(c->peer, sizeof c->peer, "unix(uid %u, pid %d)", (unsigned)cred.uid,
                     (int)cred.pid);
        } else {
            snprintf(c->peer, sizeof c->peer, "unix");
        }
    }
    server_t *srv = c->srv;
    c->next = srv->conns;
    if (srv->conns) srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    srv->stats.connections_accepted++;
    uv_timer_init(srv->loop, &c->timer);
    c->timer.data = c;
    c->timer_started = true;
    conn_ref(c); /* the timer's */
    c->active_ms = uv_now(srv->loop);
    if (srv->cfg.idle_timeout_ms) timer_arm(c, c->active_ms + srv->cfg.idle_timeout_ms);
    if (c->tls) { /* the handshake is timed as a frame */
        c->in_frame = true;
        c->frame_ms = c->active_ms;
        if (srv->cfg.frame_timeout_ms) timer_arm(c, c->frame_ms + srv->cfg.frame_timeout_ms);
    }
    int rc = read_start(c);
    if (rc) {
        conn_close(c, uv_strerror(rc));
        return;
    }
    c->reading = true;
}

void conn_auth_cert_cn(conn_t *c, const char *cn) {
    const auth_principal_t *p = auth_find_cert_cn(c->srv->auth, cn);
    if (p) c->principal = p;
    log_info("conn", "%s: client certificate CN \"%.64s\"%s%s", c->peer, cn,
             p ? ": principal " : " (no principal lists it)", p ? p->name : "");
}

void conn_auth_reloaded(server_t *srv) {
    for (conn_t *c = srv->conns; c; c = c->next) {
        const auth_principal_t *p = c->principal;
        if (p) p = auth_find_name(srv->auth, p->name);
        if (!p && c->has_uid) p = auth_find_uid(srv->auth, c->uid);
        c->principal = p;
    }
}

void conn_stop_reading(conn_t *c) {
    if (c->reading) uv_read_stop(&c->h.stream);
    c->reading = false;
    c->in_frame = false; /* a frame that will not be read is not timed */
}

/* ---------------------------------------------------------------- clean close */

/* Where the input of shutting-down connections goes: it is only dropped. */
static uint8_t discarded_in[FRAME_READ_CHUNK];

static void on_alloc_discard(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)h, (void)suggested;
    *buf = uv_buf_init((char *)discarded_in, sizeof discarded_in);
}

/* Drops the input of a shut-down connection; its end (EOF or an error) closes it. */
static void on_read_discard(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    (void)buf;
    if (nread < 0) conn_close(s->data, NULL);
}

/* The sending side is shut down (everything queued was written): read to the peer's EOF. */
static void on_shutdown(uv_shutdown_t *req, int status) {
    conn_t *c = req->data;
    if (!c->closing) {
        if (status == 0 && uv_read_start(&c->h.stream, on_alloc_discard, on_read_discard) == 0)
            c->reading = true;
        else
            conn_close(c, NULL);
    }
    conn_unref(c);
}

void conn_shutdown(conn_t *c) {
    if (c->closing || c->shutting_down) return;
    c->shutting_down = true;
    conn_stop_reading(c);
    frame_reader_free(&c->in); /* requests not started are dropped, as in any drain */
    if (c->tls) tls_session_close_notify(c->tls);
    conn_flush(c);
    if (c->closing) return;
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, &c->h.stream, on_shutdown) != 0) {
        conn_close(c, NULL);
        return;
    }
    conn_ref(c);
}

/* ---------------------------------------------------------------- writing */

/* Called when queued output went down: resumes reading and subscribers once it is under half
 * the limit, and finishes a close that waited for the output. */
static void output_drained(conn_t *c) {
    if (c->closing || c->in_process) return;
    if (c->close_when_flushed) {
        if (ready_to_close(c)) conn_close(c, NULL);
        return;
    }
    if (conn_queued(c) > c->srv->cfg.out_limit / 2) return;
    if (c->subs) subs_conn_drained(c->srv->subs, c);
    if (c->read_paused && !c->srv->draining && c->inflight <= CONN_MAX_INFLIGHT / 2 &&
        c->reads_inflight == 0) {
        c->read_paused = false;
        if (frame_reader_pending(&c->in)) process_input(c);
        if (!c->read_paused && !c->closing && !c->reading && read_start(c) == 0) c->reading = true;
        if (c->tls && c->reading && tls_session_has_input(c->tls)) tls_pump(c);
    }
}

static void on_write(uv_write_t *req, int status) {
    write_req_t *w = (write_req_t *)req;
    conn_t *c = w->conn;
    c->writing -= w->len;
    free(w->data);
    free(w);
    if (status < 0 && status != UV_ECANCELED)
        conn_close(c, uv_strerror(status));
    else if (status == 0)
        output_drained(c);
    conn_unref(c);
}

/* The bytes to hand to the socket: c->out itself on a plain connection; on a TLS one, c->wire,
 * into which c->out is encrypted (after what the session has to send) and emptied. NULL when
 * out of memory. */
static codec_buf_t *wire_out(conn_t *c) {
    if (!c->tls) return &c->out;
    if (tls_session_take_output(c->tls, &c->wire) != 0 ||
        (c->out.len && tls_session_write(c->tls, c->out.data, c->out.len, &c->wire) != 0))
        return NULL;
    c->out.len = 0;
    if (c->out.cap > 1024 * 1024) codec_buf_free(&c->out);
    return &c->wire;
}

void conn_flush(conn_t *c) {
    if (c->closing) {
        c->out.len = c->wire.len = 0;
        return;
    }
    codec_buf_t *out = c->out.failed ? NULL : wire_out(c);
    if (!out || out->failed) {
        conn_close(c, "out of memory for the output buffer");
        return;
    }
    if (out->len == 0) {
        if (c->close_when_flushed && ready_to_close(c)) conn_close(c, NULL);
        return;
    }
    size_t done = 0;
    if (c->writing == 0) {
        uv_buf_t b = uv_buf_init((char *)out->data, (unsigned)out->len);
        int n = uv_try_write(&c->h.stream, &b, 1);
        if (n > 0)
            done = (size_t)n;
        else if (n < 0 && n != UV_EAGAIN) {
            conn_close(c, uv_strerror(n));
            return;
        }
    }
    if (done == out->len) {
        out->len = 0;
        if (out->cap > 1024 * 1024) codec_buf_free(out);
        output_drained(c);
        return;
    }
    write_req_t *w = malloc(sizeof *w);
    if (!w) {
        conn_close(c, "out of memory for a write");
        return;
    }
    /* Hand the buffer over, with what try_write took skipped, instead of copying the rest: a
     * reply the client does not read then costs its own bytes once, not twice. */
    w->conn = c;
    w->data = out->data;
    w->skip = done;
    w->len = out->len - done;
    codec_buf_init(out);
    uv_buf_t b = uv_buf_init((char *)w->data + w->skip, (unsigned)w->len);
    int rc = uv_write(&w->req, &c->h.stream, &b, 1, on_write);
    if (rc) {
        free(w->data);
        free(w);
        conn_close(c, uv_strerror(rc));
        return;
    }
    c->writing += w->len;
    conn_ref(c);
}

void conn_schedule_flush(conn_t *c) {
    if (c->flush_queued || c->closing) return;
    c->flush_queued = true;
    conn_ref(c);
    c->flush_next = NULL;
    if (!c->srv->flush_list) c->srv->flush_tail = &c->srv->flush_list;
    *c->srv->flush_tail = c;
    c->srv->flush_tail = &c->flush_next;
}

void conn_flush_all(server_t *srv) {
    while (srv->flush_list) {
        conn_t *c = srv->flush_list;
        srv->flush_list = c->flush_next;
        c->flush_queued = false;
        conn_flush(c);
        conn_unref(c);
    }
}
