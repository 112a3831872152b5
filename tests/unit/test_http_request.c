/* test_http_request.c: the metrics endpoint's request parser and responses (server/http.h). */
#include <criterion/criterion.h>
#include <string.h>

#include "../../server/http.h"

TestSuite(http_request);

static int feed(http_request_t *r, const char *s) {
    return http_request_feed(r, s, strlen(s));
}

Test(http_request, a_request_in_pieces_completes_at_the_end_of_its_headers) {
    http_request_t r;
    http_request_init(&r, 8192);
    const char *req = "GET /metrics?name=x HTTP/1.1\r\nHost: localhost\r\n\r\n";
    for (size_t i = 0; i + 1 < strlen(req); i++)
        cr_assert_eq(http_request_feed(&r, req + i, 1), 0, "complete after %zu bytes", i + 1);
    cr_assert_eq(http_request_feed(&r, req + strlen(req) - 1, 1), 200);
    cr_assert_str_eq(http_request_method(&r), "GET");
    char path[64];
    cr_assert_eq(http_request_path(&r, path, sizeof path), 0);
    cr_assert_str_eq(path, "/metrics");
    /* What follows the headers (a body, a second request) changes nothing. */
    cr_assert_eq(feed(&r, "POST / HTTP/1.1\r\n\r\n"), 200);
    cr_assert_str_eq(http_request_method(&r), "GET");
}

Test(http_request, garbage_is_400) {
    http_request_t r;
    http_request_init(&r, 8192);
    cr_assert_eq(feed(&r, "\x01\x02 nonsense\r\n\r\n"), 400);
}

Test(http_request, headers_over_the_bound_are_431_however_they_arrive) {
    http_request_t r;
    http_request_init(&r, 1024);
    cr_assert_eq(feed(&r, "GET /metrics HTTP/1.1\r\n"), 0);
    int status = 0;
    for (int i = 0; i < 100 && !status; i++)
        status = feed(&r, "X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    cr_assert_eq(status, 431);
    cr_assert_leq(r.fed, 1024);
}

Test(http_request, a_url_over_the_limit_is_414) {
    http_request_t r;
    http_request_init(&r, 8192);
    char req[HTTP_URL_MAX + 64] = "GET /";
    memset(req + 5, 'a', HTTP_URL_MAX);
    strcpy(req + 5 + HTTP_URL_MAX, " HTTP/1.1\r\n\r\n");
    cr_assert_eq(feed(&r, req), 414);
}

Test(http_request, a_response_has_its_length_and_no_body_for_head) {
    codec_buf_t b;
    codec_buf_init(&b);
    cr_assert_eq(http_response(&b, 405, "text/plain", "no\n", 3, false), 0);
    const char *want = "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\n"
                       "Content-Length: 3\r\nAllow: GET, HEAD\r\nConnection: close\r\n\r\nno\n";
    cr_assert_eq(b.len, strlen(want));
    cr_assert(memcmp(b.data, want, b.len) == 0);
    b.len = 0;
    cr_assert_eq(http_response(&b, 200, "text/plain", "body", 4, true), 0);
    cr_assert(memmem(b.data, b.len, "Content-Length: 4\r\n", 19) != NULL);
    cr_assert(memcmp(b.data + b.len - 4, "\r\n\r\n", 4) == 0, "a HEAD response with a body");
    codec_buf_free(&b);
}
