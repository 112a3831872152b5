/* http.h: a small HTTP/1.1 server on the daemon's loop, for the metrics endpoint (metrics.h).
 *
 * It answers one request per connection, then closes it (Connection: close): enough for a
 * Prometheus scraper, and nothing for a hostile client to hold. Requests are parsed by
 * http_parser (Debian's libhttp-parser, the parser of Node.js before llhttp), and only the request
 * line and the headers are read: a body is ignored. Every connection is bounded:
 *   - the request line and headers may take at most max_request bytes (431 past it);
 *   - the whole connection, from accept to close, at most timeout_ms (it is closed then, answered
 *     or not: a client that sends slowly or does not read its response holds nothing longer);
 *   - at most max_connections are open at once; one more gets a 503 and is closed.
 * A request that http_parser refuses gets 400, a URL over HTTP_URL_MAX bytes 414, a method other
 * than GET or HEAD 405; the handler answers the rest (200 with a body, or 404).
 *
 * Everything runs on the loop thread. */
#ifndef EVS_HTTP_H
#define EVS_HTTP_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "../proto/codec.h"

/* Longest request URL kept (longer ones get 414). */
#define HTTP_URL_MAX 1024

/* ---------------------------------------------------------------- parsing one request */

/* The request line and headers of one request, fed in pieces as they arrive. */
typedef struct http_request {
    http_parser parser;
    size_t max_bytes; /* most bytes of request line and headers */
    size_t fed;       /* bytes the parser consumed */
    char url[HTTP_URL_MAX + 1];
    size_t url_len;
    bool url_too_long;
    bool headers_done;
    int status; /* 0 while incomplete; then 200 (a request to answer) or the error status */
} http_request_t;

/* Starts parsing a request whose line and headers may take max_bytes. */
void http_request_init(http_request_t *r, size_t max_bytes);

/* Feeds the next len bytes. Returns 0 while the headers are incomplete, then (and on every later
 * call) the outcome: 200 for a complete request (http_request_method, http_request_path), 400
 * when it is no HTTP request, 414 when its URL is over HTTP_URL_MAX, 431 when the line and
 * headers are over max_bytes. Bytes after the headers (a body, a second request) are ignored. */
int http_request_feed(http_request_t *r, const char *data, size_t len);

/* The method of a complete request ("GET", ...). */
const char *http_request_method(const http_request_t *r);

/* Writes the path of a complete request (its URL without query or fragment; "" when it has none)
 * into buf, NUL-terminated; returns -1 when the URL cannot be parsed. */
int http_request_path(const http_request_t *r, char *buf, size_t len);

/* Writes a whole response (status line, Content-Type, Content-Length, Connection: close, and
 * the body unless head_only) into out. Returns 0, or -1 when out of memory. */
int http_response(codec_buf_t *out, int status, const char *content_type, const void *body,
                  size_t body_len, bool head_only);

/* ---------------------------------------------------------------- the server */

typedef struct http_server http_server_t;

/* Answers a GET or HEAD of path: returns 200 with the body written into body and its type in
 * *content_type, or 404 (the body is then ignored). */
typedef int (*http_handler_t)(void *arg, const char *path, codec_buf_t *body,
                              const char **content_type);

typedef struct http_limits {
    size_t max_request;       /* bytes of request line and headers */
    uint32_t timeout_ms;      /* a connection's whole life */
    uint32_t max_connections; /* open at once */
} http_limits_t;

/* Listens on "HOST:PORT" ("[v6addr]:PORT" for IPv6); option names the option it comes from, for
 * messages. NULL with a message in why on failure. */
http_server_t *http_server_new(uv_loop_t *loop, const char *option, const char *hostport,
                               const http_limits_t *limits, http_handler_t handler, void *arg,
                               char *why, size_t whylen);

/* New limits (a reload): connections accepted from now on get them. */
void http_server_set_limits(http_server_t *s, const http_limits_t *limits);

/* Connections open now, and refused since start because max_connections were open. */
size_t http_server_connections(const http_server_t *s);
uint64_t http_server_refused(const http_server_t *s);

/* Stops listening and closes every connection; the server is freed once the loop has closed
 * their handles. */
void http_server_close(http_server_t *s);

#endif
