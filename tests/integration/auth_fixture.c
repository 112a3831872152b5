/* auth_fixture.c: the auth tests' auth_file and daemon (see auth_fixture.h). */
#include "auth_fixture.h"

#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/rawio.h"

static char path[64];

static void remove_file(void) {
    if (path[0]) unlink(path);
}

const char *auth_file_path(void) {
    if (!path[0]) {
        snprintf(path, sizeof path, "/tmp/evs-auth-%d.conf", (int)getpid());
        atexit(remove_file);
    }
    return path;
}

void auth_file_write(const char *text) {
    char tmp[80];
    snprintf(tmp, sizeof tmp, "%s.new", auth_file_path());
    FILE *f = fopen(tmp, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(rename(tmp, path), 0);
}

const char *auth_line(const char *name, const char *perms, const char *token) {
    static __thread char line[256];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    cr_assert(EVP_Digest(token, strlen(token), md, &n, EVP_sha256(), NULL));
    int at = snprintf(line, sizeof line, "%s %s token-sha256:", name, perms);
    for (unsigned i = 0; i < n; i++)
        at += snprintf(line + at, sizeof line - (size_t)at, "%02x", md[i]);
    snprintf(line + at, sizeof line - (size_t)at, "\n");
    return line;
}

void auth_daemon_start(test_daemon_t *d, bool own_unix) {
    char text[2048], perms[128];
    snprintf(perms, sizeof perms, "read,write:%s-orders-", tprefix());
    int at = snprintf(text, sizeof text, "# the auth tests' principals\n");
    at += snprintf(text + at, sizeof text - (size_t)at, "%s",
                   auth_line("reader", "read", AUTH_READER));
    at += snprintf(text + at, sizeof text - (size_t)at, "%s",
                   auth_line("orders", perms, AUTH_ORDERS));
    at += snprintf(text + at, sizeof text - (size_t)at, "%s",
                   auth_line("admin", "admin,read,write,delete", AUTH_ADMIN));
    snprintf(text + at, sizeof text - (size_t)at, "local read,write uid:%u\n", (unsigned)getuid());
    auth_file_write(text);
    const char *extra[] = {"--auth-file", auth_file_path(), NULL};
    test_daemon_token = AUTH_READER;
    cr_assert_eq(test_daemon_launch(d, test_store(), own_unix, extra), 0, "evstored did not start");
}
