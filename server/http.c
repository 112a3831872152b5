/* http.c: the small HTTP/1.1 server of the metrics endpoint (see http.h). */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "log.h"

/* ---------------------------------------------------------------- parsing one request */

static int on_url(http_parser *p, const char *at, size_t len) {
    http_request_t *r = p->data;
    if (r->url_too_long || len > HTTP_URL_MAX - r->url_len) {
        r->url_too_long = true;
        return 0;
    }
    memcpy(r->url + r->url_len, at, len);
    r->url_len += len;
    r->url[r->url_len] = '\0';
    return 0;
}

/* The headers are complete: that is all the server reads, so the parser stops here. */
static int on_headers_complete(http_parser *p) {
    http_request_t *r = p->data;
    r->headers_done = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings request_settings = {
    .on_url = on_url,
    .on_headers_complete = on_headers_complete,
};

void http_request_init(http_request_t *r, size_t max_bytes) {
    memset(r, 0, sizeof *r);
    http_parser_init(&r->parser, HTTP_REQUEST);
    r->parser.data = r;
    r->max_bytes = max_bytes;
}

int http_request_feed(http_request_t *r, const char *data, size_t len) {
    if (r->status) return r->status;
    size_t room = r->max_bytes > r->fed ? r->max_bytes - r->fed : 0;
    size_t n = len < room ? len : room;
    if (n > 0) r->fed += http_parser_execute(&r->parser, &request_settings, data, n);
    if (r->headers_done)
        r->status = r->url_too_long ? 414 : 200;
    else if (HTTP_PARSER_ERRNO(&r->parser) != HPE_OK)
        r->status = 400;
    else if (n < len || r->fed >= r->max_bytes)
        r->status = 431;
    return r->status;
}

const char *http_request_method(const http_request_t *r) {
    return http_method_str((enum http_method)r->parser.method);
}

int http_request_path(const http_request_t *r, char *buf, size_t len) {
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (len == 0 ||
        http_parser_parse_url(r->url, r->url_len, r->parser.method == HTTP_CONNECT, &u) != 0)
        return -1;
    buf[0] = '\0';
    if (u.field_set & (1 << UF_PATH)) {
        size_t n = u.field_data[UF_PATH].len;
        if (n >= len) return -1;
        memcpy(buf, r->url + u.field_data[UF_PATH].off, n);
        buf[n] = '\0';
    }
    return 0;
}

static const char *reason(int status) {
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

int http_response(codec_buf_t *out, int status, const char *content_type, const void *body,
                  size_t body_len, bool head_only) {
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                     "Connection: close\r\n\r\n",
                     status, reason(status), content_type, body_len,
                     status == 405 ? "Allow: GET, HEAD\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof head) return -1;
    codec_buf_write(out, head, (size_t)n);
    if (!head_only && body_len) codec_buf_write(out, body, body_len);
    return out->failed ? -1 : 0;
}

/* ---------------------------------------------------------------- the server */

/* Bytes read from a socket at once, into the connection's own buffer. */
#define HTTP_READ_CHUNK 2048

typedef struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* the connection's deadline (timeout_ms after accept) */
    http_server_t *srv;
    struct http_conn *next, *prev; /* in srv->conns */
    int handles;                   /* handles not yet closed: freed at 0 */
    bool closing;
    bool answered; /* the response is written or being written: input is discarded */
    bool counted;  /* in srv->nconns */
    http_request_t req;
    codec_buf_t out;
    uv_write_t write_req;
    uv_shutdown_t shutdown_req;
    char in[HTTP_READ_CHUNK];
} http_conn_t;

struct http_server {
    uv_tcp_t listener;
    uv_loop_t *loop;
    http_limits_t limits;
    http_handler_t handler;
    void *arg;
    http_conn_t *conns; /* open ones */
    size_t nconns;      /* of which counted against max_connections */
    size_t allocated;   /* connections not yet freed (closing ones too) */
    uint64_t refused;
    bool closing;
    bool listener_closed;
};

static void server_maybe_free(http_server_t *s) {
    if (s->closing && s->listener_closed && s->allocated == 0) free(s);
}

static void on_conn_handle_closed(uv_handle_t *h) {
    http_conn_t *c = h->data;
    if (--c->handles > 0) return;
    http_server_t *s = c->srv;
    codec_buf_free(&c->out);
    free(c);
    s->allocated--;
    server_maybe_free(s);
}

/* Closes c (once): takes it out of the server's list and closes its handles. */
static void conn_close(http_conn_t *c) {
    if (c->closing) return;
    c->closing = true;
    http_server_t *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else if (s->conns == c)
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    if (c->counted) s->nconns--;
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    /* server_maybe_free runs when the handles are closed. */
}

static void on_deadline(uv_timer_t *t) {
    conn_close(t->data);
}

/* The response is written: the sending side is shut down (the client reads it, then EOF);
 * what the client still sends is read and dropped until it closes its side, so that the close
 * is no reset that could cost it the response. The deadline bounds the wait. */
static void on_shutdown(uv_shutdown_t *req, int status) {
    if (status < 0) conn_close(req->data);
}

static void on_written(uv_write_t *req, int status) {
    http_conn_t *c = req->data;
    if (c->closing) return;
    if (status < 0 || uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        conn_close(c);
}

/* Writes c->out and ends the connection after it. */
static void send_out(http_conn_t *c) {
    c->answered = true;
    uv_buf_t b = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
    if (c->out.failed || uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0)
        conn_close(c);
}

static void send_text(http_conn_t *c, int status, const char *text, bool head_only) {
    c->out.len = 0;
    if (http_response(&c->out, status, "text/plain; charset=utf-8", text, strlen(text),
                      head_only) != 0)
        c->out.failed = true;
    send_out(c);
}

/* Answers the complete request in c->req (status 200) or its error. */
static void answer(http_conn_t *c, int status) {
    if (status != 200) {
        send_text(c, status,
                  status == 414   ? "URL too long\n"
                  : status == 431 ? "request headers too large\n"
                                  : "bad request\n",
                  false);
        return;
    }
    const char *method = http_request_method(&c->req);
    bool head = strcmp(method, "HEAD") == 0;
    if (!head && strcmp(method, "GET") != 0) {
        send_text(c, 405, "only GET and HEAD are served\n", false);
        return;
    }
    char path[HTTP_URL_MAX + 1];
    if (http_request_path(&c->req, path, sizeof path) != 0) {
        send_text(c, 400, "bad request URL\n", head);
        return;
    }
    codec_buf_t body;
    codec_buf_init(&body);
    const char *type = "text/plain; charset=utf-8";
    int rc = c->srv->handler(c->srv->arg, path, &body, &type);
    if (rc != 200) {
        codec_buf_free(&body);
        send_text(c, 404, "not found\n", head);
        return;
    }
    c->out.len = 0;
    if (body.failed || http_response(&c->out, 200, type, body.data, body.len, head) != 0)
        c->out.failed = true;
    codec_buf_free(&body);
    send_out(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    http_conn_t *c = h->data;
    (void)suggested;
    *buf = uv_buf_init(c->in, sizeof c->in);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    http_conn_t *c = stream->data;
    if (c->closing) return;
    if (nread < 0) {
        conn_close(c); /* EOF or an error: nothing more to send or to wait for */
        return;
    }
    if (nread == 0 || c->answered) return;
    int status = http_request_feed(&c->req, buf->base, (size_t)nread);
    if (status) answer(c, status);
}

static void on_connection(uv_stream_t *listener, int status) {
    http_server_t *s = listener->data;
    if (status < 0) {
        log_warn("metrics", "accept: %s", uv_strerror(status));
        return;
    }
    http_conn_t *c = calloc(1, sizeof *c);
    if (!c) {
        log_error("metrics", "out of memory for a connection");
        return;
    }
    c->srv = s;
    s->allocated++;
    codec_buf_init(&c->out);
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->write_req.data = c->shutdown_req.data = c;
    c->handles = 2;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    http_request_init(&c->req, s->limits.max_request);
    uv_timer_start(&c->timer, on_deadline, s->limits.timeout_ms, 0);
    if (s->nconns >= s->limits.max_connections) {
        /* Over the cap: a short answer, written if the socket takes it at once, then closed. */
        s->refused++;
        codec_buf_t out;
        codec_buf_init(&out);
        if (http_response(&out, 503, "text/plain; charset=utf-8", "busy\n", 5, false) == 0) {
            uv_buf_t b = uv_buf_init((char *)out.data, (unsigned)out.len);
            uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        }
        codec_buf_free(&out);
        conn_close(c);
        return;
    }
    c->counted = true;
    s->nconns++;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) conn_close(c);
}

http_server_t *http_server_new(uv_loop_t *loop, const char *option, const char *hostport,
                               const http_limits_t *limits, http_handler_t handler, void *arg,
                               char *why, size_t whylen) {
    struct sockaddr_storage addr;
    if (addr_parse_listen(option, hostport, &addr, why, whylen) != 0) return NULL;
    http_server_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    s->loop = loop;
    s->limits = *limits;
    s->handler = handler;
    s->arg = arg;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    int rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0);
    if (!rc) rc = uv_listen((uv_stream_t *)&s->listener, 64, on_connection);
    if (rc) {
        snprintf(why, whylen, "%s: cannot listen on %s: %s", option, hostport, uv_strerror(rc));
        http_server_close(s);
        return NULL;
    }
    return s;
}

void http_server_set_limits(http_server_t *s, const http_limits_t *limits) {
    s->limits = *limits;
}

size_t http_server_connections(const http_server_t *s) {
    return s->nconns;
}

uint64_t http_server_refused(const http_server_t *s) {
    return s->refused;
}

static void on_listener_closed(uv_handle_t *h) {
    http_server_t *s = h->data;
    s->listener_closed = true;
    server_maybe_free(s);
}

void http_server_close(http_server_t *s) {
    if (s->closing) return;
    s->closing = true;
    while (s->conns)
        conn_close(s->conns);
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}
