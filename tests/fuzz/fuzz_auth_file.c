/* fuzz_auth_file.c: the auth_file parser (server/auth.h) on any text, as a reload reads it:
 * either a table, freed again, or an error message that is terminated text and no table. */
#include "../../server/auth.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    auth_table_t *table = NULL;
    char err[256];
    memset(err, 'x', sizeof err);
    int rc = auth_table_parse((const char *)data, size, &table, err, sizeof err);
    if (rc != 0) {
        FUZZ_CHECK(memchr(err, '\0', sizeof err) && err[0], "a refusal without a message");
        FUZZ_CHECK(table == NULL, "a table from a refused file");
    } else {
        FUZZ_CHECK(table != NULL, "no table from an accepted file");
    }
    if (table) auth_table_free(table);
    return 0;
}
