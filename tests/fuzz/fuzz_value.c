/* fuzz_value.c: the domain layer's payload decoder (evs_value_decode), which turns an event's
 * payload, bytes any writer may have stored, into an attribute tree. Whatever it accepts must
 * encode canonically: encoding the tree and decoding that gives an equal tree that encodes to
 * the same bytes, and a copy (evs_value_dup) is equal too. */
#include "../../client/evstore.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    evs_value_t *v = NULL;
    evs_error_t err;
    if (evs_value_decode(data, size, &v, &err) != 0) {
        FUZZ_CHECK(v == NULL && err.code < 0 && err.str[0], "a refusal without a message");
        FUZZ_CHECK(memchr(err.str, '\0', sizeof err.str), "unterminated message");
        return 0;
    }
    uint8_t *enc = NULL, *again = NULL;
    size_t len = 0, again_len = 0;
    FUZZ_CHECK(evs_value_encode(v, &enc, &len) == 0, "encoding a decoded tree");
    evs_value_t *w = NULL;
    FUZZ_CHECK(evs_value_decode(enc, len, &w, &err) == 0, "its encoding does not decode: %s",
               err.str);
    FUZZ_CHECK(evs_value_equal(v, w), "a tree differs from its encoding decoded");
    FUZZ_CHECK(evs_value_encode(w, &again, &again_len) == 0, "encoding again");
    FUZZ_CHECK(again_len == len && memcmp(enc, again, len) == 0, "not canonical: %zu, %zu bytes",
               len, again_len);
    evs_value_t *copy = evs_value_dup(v);
    FUZZ_CHECK(copy && evs_value_equal(v, copy), "a copy differs");
    evs_value_free(copy);
    evs_value_free(w);
    free(again);
    free(enc);
    evs_value_free(v);
    return 0;
}
