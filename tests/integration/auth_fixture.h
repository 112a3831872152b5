/* auth_fixture.h: what the auth tests share: an auth_file written for this test process, its
 * tokens, and starting a daemon with it.
 *
 * The file names four principals (entity ids carry the process's tname prefix, so the
 * prefix-limited one is limited to this test's own entities):
 *   reader  read                         token AUTH_READER
 *   orders  read,write:PREFIX-orders-    token AUTH_ORDERS
 *   admin   admin,read,write,delete      token AUTH_ADMIN
 *   local   read,write                   uid of this process (Unix socket peers) */
#ifndef EVS_TEST_AUTH_FIXTURE_H
#define EVS_TEST_AUTH_FIXTURE_H

#include <stdbool.h>

#include "../common/daemon.h"

#define AUTH_READER "reader-token-0123456789abcdef"
#define AUTH_ORDERS "orders-token-0123456789abcdef"
#define AUTH_ADMIN "admin-token-0123456789abcdef"

/* The auth_file's path (written on first use, removed at exit). */
const char *auth_file_path(void);

/* Writes text as the auth_file (replacing it atomically). */
void auth_file_write(const char *text);

/* The auth_file line "NAME PERMS token-sha256:HEX" for token, in a per-thread buffer. */
const char *auth_line(const char *name, const char *perms, const char *token);

/* Writes the default file above, then starts d with --auth-file (and a Unix socket when
 * own_unix), or fails the test. */
void auth_daemon_start(test_daemon_t *d, bool own_unix);

#endif
