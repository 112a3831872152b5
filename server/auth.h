/* auth.h: who may do what: the auth_file's principals, their credentials and permissions.
 *
 * The auth_file holds one principal per line, '#' starts a comment:
 *
 *     # NAME     PERMISSIONS                       CREDENTIALS
 *     orders     read,write:orders-,write:carts-   token-sha256:9f86d0...
 *     auditor    read                              token-sha256:2c26b4...  cert-cn:auditor.example
 *     ops        admin                             uid:0
 *
 * NAME is 1 to 64 letters, digits and ._@- characters, unique in the file. PERMISSIONS is a comma
 * list of read, write, delete and admin, where write and delete may be limited to entity-id
 * prefixes (write:PREFIX; several allowed). The permissions are independent: admin does not
 * imply read. CREDENTIALS are one or more of token-sha256:HEX (64 hex digits: the SHA-256 of a
 * bearer token), uid:N (a local peer on the Unix socket) and cert-cn:NAME (the subject CN of a
 * verified TLS client certificate); one credential names at most one principal.
 *
 * A table is immutable once parsed. Principals point into their table: code that keeps one
 * across a reload looks it up again by name in the new table (auth_find_name). */
#ifndef EVS_AUTH_H
#define EVS_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* What an op needs. AUTH_NONE: anyone, also before authenticating (ping, auth). */
typedef enum auth_perm { AUTH_NONE, AUTH_READ, AUTH_WRITE, AUTH_DELETE, AUTH_ADMIN } auth_perm_t;

/* The longest name, prefix and cert-cn, in bytes. */
#define AUTH_NAME_MAX 64
#define AUTH_PREFIX_MAX 255
/* The largest auth_file auth_table_load reads. */
#define AUTH_FILE_MAX (4u * 1024 * 1024)

typedef struct auth_principal {
    char *name;
    int line; /* of the auth_file */
    bool read, admin;
    bool write_all, delete_all; /* write / delete without a prefix */
    char **write_prefixes, **delete_prefixes;
    size_t nwrite_prefixes, ndelete_prefixes;
    char **permissions; /* as the file spells them, for the auth reply */
    size_t npermissions;
    uint8_t (*token_sha256)[32];
    size_t ntokens;
    uid_t *uids;
    size_t nuids;
    char **cert_cns;
    size_t ncert_cns;
} auth_principal_t;

typedef struct auth_table auth_table_t;

/* Parses len bytes of auth_file text (any bytes at all). 0 with *out a new table (free it with
 * auth_table_free), or -1 with *out NULL and err saying "line N: what is wrong". */
int auth_table_parse(const char *text, size_t len, auth_table_t **out, char *err, size_t errlen);

/* Reads the file at path (at most AUTH_FILE_MAX bytes) and parses it. 0, or -1 with err
 * "PATH: ..." or "PATH:N: ...". */
int auth_table_load(const char *path, auth_table_t **out, char *err, size_t errlen);

/* NULL is a no-op. */
void auth_table_free(auth_table_t *t);

size_t auth_table_size(const auth_table_t *t);

/* The principal whose token-sha256 is the SHA-256 of the len bytes at token, or NULL. The hash is
 * compared with every credential of the table in constant time (CRYPTO_memcmp). */
const auth_principal_t *auth_find_token(const auth_table_t *t, const char *token, size_t len);
const auth_principal_t *auth_find_uid(const auth_table_t *t, uid_t uid);
const auth_principal_t *auth_find_cert_cn(const auth_table_t *t, const char *cn);
const auth_principal_t *auth_find_name(const auth_table_t *t, const char *name);

/* Whether p has perm; for AUTH_WRITE and AUTH_DELETE with entity_id non-NULL, for that entity
 * (a prefix-limited permission covers the entities starting with one of its prefixes), with
 * entity_id NULL whether it has the permission for any entity at all. AUTH_NONE is always
 * allowed; a NULL principal has nothing else. */
bool auth_allows(const auth_principal_t *p, auth_perm_t perm, const char *entity_id);

/* The permission's name in the protocol and the files: "read", "write", "delete", "admin". */
const char *auth_perm_name(auth_perm_t perm);

/* Writes the lowercase hex SHA-256 of the len bytes at data into hex (65 bytes). 0, or -1. */
int auth_sha256_hex(const void *data, size_t len, char hex[65]);

#endif
