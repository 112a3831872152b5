/* fuzz_http_request.c: the metrics endpoint's request parser (server/http.c) on any bytes, fed in
 * two pieces split where the first byte says (a request arrives in any number of reads). The
 * outcome must be one of the statuses http.h promises, the parser must never consume more than
 * the bound, and a complete request's method and path must be readable; then the response the
 * server would send must parse back (http_parser) with the same status. */
#include "../../server/http.h"
#include "fuzz.h"

#define MAX_REQUEST 1024

static int on_complete(http_parser *p) {
    *(int *)p->data = 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    http_request_t r;
    http_request_init(&r, MAX_REQUEST);
    size_t split = size ? data[0] % (size + 1) : 0;
    int status = http_request_feed(&r, (const char *)data, split);
    if (!status) status = http_request_feed(&r, (const char *)data + split, size - split);
    FUZZ_CHECK(status == 0 || status == 200 || status == 400 || status == 414 || status == 431,
               "status %d", status);
    FUZZ_CHECK(r.fed <= MAX_REQUEST, "%zu bytes consumed", r.fed);
    FUZZ_CHECK(r.url_len <= HTTP_URL_MAX && r.url[r.url_len] == '\0', "url of %zu", r.url_len);
    if (status == 200) {
        const char *method = http_request_method(&r);
        FUZZ_CHECK(method && *method, "no method");
        char path[HTTP_URL_MAX + 1];
        if (http_request_path(&r, path, sizeof path) == 0)
            FUZZ_CHECK(strlen(path) <= r.url_len, "path longer than the URL");
    }
    if (status == 0) return 0;

    codec_buf_t out;
    codec_buf_init(&out);
    FUZZ_CHECK(http_response(&out, status, "text/plain", data, size, false) == 0, "response");
    http_parser p;
    http_parser_init(&p, HTTP_RESPONSE);
    int complete = 0;
    p.data = &complete;
    http_parser_settings settings;
    http_parser_settings_init(&settings);
    settings.on_message_complete = on_complete;
    size_t n = http_parser_execute(&p, &settings, (const char *)out.data, out.len);
    FUZZ_CHECK(n == out.len && complete && p.status_code == (unsigned)status,
               "response parsed %zu of %zu bytes, status %u, errno %s", n, out.len, p.status_code,
               http_errno_name(HTTP_PARSER_ERRNO(&p)));
    codec_buf_free(&out);
    return 0;
}
