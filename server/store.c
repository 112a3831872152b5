/* store.c: choosing a store implementation from its URL. */
#include "store.h"

#include <string.h>

#include "store_memory.h"
#include "store_pg.h"

static bool is_postgres_url(const char *url) {
    return strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0 ||
           strchr(url, '=') != NULL;
}

store_t *store_open(const char *url, void *loop, codec_error_t *err) {
    store_t *s = NULL;
    (void)loop;
    if (!url || !*url || strcmp(url, "memory") == 0 || strcmp(url, "memory://") == 0) {
        s = store_memory_new();
        if (!s) codec_error_set(err, EVS_EINTERNAL, "out of memory");
    } else if (is_postgres_url(url)) {
        /* PostgreSQL store (store_pg.c). */
        s = store_pg_open(url, loop, err);
    } else {
        codec_error_set(err, EVS_EBAD_REQUEST,
                        "unknown store \"%s\": use \"memory\" or a postgresql:// URL", url);
    }
    if (s) s->request_timeout_ms = STORE_DEFAULT_TIMEOUT_MS;
    return s;
}

void store_set_commit_listener(store_t *s, store_commit_cb cb, void *arg) {
    s->on_commit = cb;
    s->on_commit_arg = arg;
}
