/* errors.c: wire names of the stable error codes. */
#include "errors.h"

#include <string.h>

static const struct {
    int code;
    const char *name;
} code_names[] = {
    {EVS_OK, "ok"},
    {EVS_EBAD_REQUEST, "bad_request"},
    {EVS_ETOO_LARGE, "too_large"},
    {EVS_ECONFLICT, "conflict"},
    {EVS_ENOT_FOUND, "not_found"},
    {EVS_EUNAVAILABLE, "unavailable"},
    {EVS_EINTERNAL, "internal"},
    {EVS_ELIMIT_EXCEEDED, "limit_exceeded"},
    {EVS_EUNAUTHORIZED, "unauthorized"},
    {EVS_EFORBIDDEN, "forbidden"},
    {EVS_EIO, "io"},
    {EVS_EPROTOCOL, "protocol"},
    {EVS_ETIMEOUT, "timeout"},
    {EVS_EINVAL, "invalid_argument"},
    {EVS_ENOMEM, "out_of_memory"},
    {EVS_EWRONG_TYPE, "wrong_type"},
    {EVS_ESTORED_NOT_PUBLISHED, "stored_not_published"},
    {EVS_EALREADY_PROCESSED, "already_processed"},
};

const char *evs_code_name(int code) {
    for (size_t i = 0; i < sizeof code_names / sizeof code_names[0]; i++)
        if (code_names[i].code == code) return code_names[i].name;
    return "unknown";
}

int evs_code_from_name(const char *name, size_t len) {
    for (size_t i = 0; i < sizeof code_names / sizeof code_names[0]; i++)
        if (strlen(code_names[i].name) == len && memcmp(code_names[i].name, name, len) == 0)
            return code_names[i].code;
    return EVS_EINTERNAL;
}
