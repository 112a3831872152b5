/* fuzz_request.c: one request frame body, any bytes, through the daemon's decoder
 * (codec_request_decode: codec_prescan_limited, msgpack-c, then the argument checks), twice in a
 * row on one reused zone as dispatch_frame does. See request_check.h for what is checked. */
#include "request_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    codec_request_t req;
    memset(&req, 0, sizeof req);
    fuzz_decode_request(data, size, &req);
    /* The same bytes again on the zone the first decode left: the daemon's steady state. */
    fuzz_decode_request(data, size, &req);
    codec_request_free(&req);
    return 0;
}
