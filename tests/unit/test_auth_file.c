/* test_auth_file.c: the auth_file parser and the permission check (server/auth.c), and the store
 * password hidden in every spelling libpq accepts (config_store_masked). */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "../../server/auth.h"
#include "../../server/config.h"

/* The SHA-256 of "test" (echo -n test | sha256sum). */
#define TEST_SHA "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

static auth_table_t *parse_ok(const char *text) {
    auth_table_t *t = NULL;
    char err[256] = "";
    int rc = auth_table_parse(text, strlen(text), &t, err, sizeof err);
    cr_assert_eq(rc, 0, "refused: %s", err);
    cr_assert_not_null(t);
    return t;
}

/* Asserts text is refused with an error that contains want. */
static void parse_bad(const char *text, size_t len, const char *want) {
    auth_table_t *t = (auth_table_t *)1;
    char err[256] = "";
    cr_assert_eq(auth_table_parse(text, len, &t, err, sizeof err), -1, "accepted: %s", text);
    cr_assert_null(t);
    cr_assert_not_null(strstr(err, want), "error \"%s\" lacks \"%s\"", err, want);
}

Test(auth_file, the_sample_file_parses_into_its_principals) {
    auth_table_t *t =
        parse_ok("# NAME PERMISSIONS CREDENTIALS\n"
                 "\n"
                 "orders  read,write:orders-,write:carts-  token-sha256:" TEST_SHA "\n"
                 "auditor read   cert-cn:auditor.example   # a comment\r\n"
                 "ops     admin  uid:0 uid:1000\n");
    cr_assert_eq(auth_table_size(t), 3);
    const auth_principal_t *p = auth_find_token(t, "test", 4);
    cr_assert_not_null(p);
    cr_assert_str_eq(p->name, "orders");
    cr_assert_eq(p->npermissions, 3);
    cr_assert_str_eq(p->permissions[1], "write:orders-");
    cr_assert_null(auth_find_token(t, "tesT", 4));
    cr_assert_null(auth_find_token(t, "", 0));
    cr_assert_str_eq(auth_find_cert_cn(t, "auditor.example")->name, "auditor");
    cr_assert_null(auth_find_cert_cn(t, "auditor"));
    cr_assert_str_eq(auth_find_uid(t, 1000)->name, "ops");
    cr_assert_null(auth_find_uid(t, 1));
    cr_assert_str_eq(auth_find_name(t, "ops")->name, "ops");
    auth_table_free(t);
}

Test(auth_file, permissions_are_checked_per_entity_prefix) {
    auth_table_t *t = parse_ok("w write:orders-,write:carts-,delete:tmp- uid:1\n"
                               "a admin,read,write,delete uid:2\n");
    const auth_principal_t *w = auth_find_uid(t, 1), *a = auth_find_uid(t, 2);
    cr_assert(auth_allows(w, AUTH_WRITE, "orders-1"));
    cr_assert(auth_allows(w, AUTH_WRITE, "carts-9"));
    cr_assert_not(auth_allows(w, AUTH_WRITE, "order-1"));
    cr_assert(auth_allows(w, AUTH_WRITE, NULL), "some write permission");
    cr_assert(auth_allows(w, AUTH_DELETE, "tmp-1"));
    cr_assert_not(auth_allows(w, AUTH_DELETE, "orders-1"));
    cr_assert_not(auth_allows(w, AUTH_READ, NULL));
    cr_assert_not(auth_allows(w, AUTH_ADMIN, NULL));
    cr_assert(auth_allows(w, AUTH_NONE, NULL));
    cr_assert(auth_allows(a, AUTH_WRITE, "anything"));
    cr_assert(auth_allows(a, AUTH_ADMIN, NULL));
    cr_assert_not(auth_allows(NULL, AUTH_READ, NULL));
    cr_assert(auth_allows(NULL, AUTH_NONE, NULL));
    auth_table_free(t);
}

Test(auth_file, admin_does_not_imply_read) {
    auth_table_t *t = parse_ok("ops admin uid:0\n");
    cr_assert_not(auth_allows(auth_find_uid(t, 0), AUTH_READ, NULL));
    auth_table_free(t);
}

Test(auth_file, an_empty_file_is_a_table_without_principals) {
    auth_table_t *t = parse_ok("# nobody yet\n\n   \n");
    cr_assert_eq(auth_table_size(t), 0);
    cr_assert_null(auth_find_token(t, "test", 4));
    auth_table_free(t);
}

Test(auth_file, bad_lines_are_refused_naming_the_line) {
    parse_bad("ok read uid:1\nbad\n", 18, "line 2: bad has no permissions");
    parse_bad("x read\n", 7, "line 1: x has no credentials");
    parse_bad("x reed uid:1\n", 13, "unknown permission");
    parse_bad("x read:orders- uid:1\n", 21, "only write and delete take a prefix");
    parse_bad("x write: uid:1\n", 15, "the prefix must be");
    parse_bad("x read,,write uid:1\n", 20, "empty permission");
    parse_bad("x read token-sha256:abc\n", 24, "64 hex digits");
    parse_bad("x read token-sha256:" TEST_SHA "\ny read token-sha256:" TEST_SHA "\n",
              strlen("x read token-sha256:" TEST_SHA "\ny read token-sha256:" TEST_SHA "\n"),
              "line 2: this token-sha256 is given twice");
    parse_bad("x read uid:1\nx read uid:2\n", 26, "line 2: principal x is defined twice");
    parse_bad("x read uid:1\ny read uid:1\n", 26, "uid:1 is given twice");
    parse_bad("x read uid:-1\n", 14, "uid needs a number");
    parse_bad("x read uid:99999999999\n", 23, "uid");
    parse_bad("x read password:1\n", 18, "unknown credential");
    parse_bad("x/y read uid:1\n", 15, "a name holds only");
    parse_bad("x read uid:1\0\n", 14, "NUL");
    parse_bad("x read cert-cn:\n", 16, "cert-cn needs");
}

Test(auth_file, any_bytes_are_refused_or_parsed_without_crashing) {
    /* Every prefix of a valid file, and a few mangled ones. */
    const char *good = "orders read,write:orders- token-sha256:" TEST_SHA " uid:7 cert-cn:a.b\n";
    for (size_t n = 0; n <= strlen(good); n++) {
        auth_table_t *t = NULL;
        char err[128];
        if (auth_table_parse(good, n, &t, err, sizeof err) == 0) auth_table_free(t);
    }
    unsigned char junk[512];
    unsigned seed = 7;
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < sizeof junk; i++) {
            seed = seed * 1103515245 + 12345;
            junk[i] = (unsigned char)(seed >> 16);
        }
        auth_table_t *t = NULL;
        char err[128];
        if (auth_table_parse((const char *)junk, sizeof junk, &t, err, sizeof err) == 0)
            auth_table_free(t);
    }
}

Test(auth_file, load_names_the_file_and_line) {
    char path[] = "/tmp/evs-auth-unit-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs("a read uid:1\nb bogus uid:2\n", f);
    fclose(f);
    auth_table_t *t = NULL;
    char err[512];
    cr_assert_eq(auth_table_load(path, &t, err, sizeof err), -1);
    char want[128];
    snprintf(want, sizeof want, "%s: line 2:", path);
    cr_assert_not_null(strstr(err, want), "%s", err);
    unlink(path);
    cr_assert_eq(auth_table_load(path, &t, err, sizeof err), -1);
    cr_assert_not_null(strstr(err, "No such file"), "%s", err);
}

/* Asserts that the masked url shows none of the secrets and shows "***". */
static void assert_masked(const char *url, const char *const *secrets) {
    char buf[1024];
    config_store_masked(url, buf, sizeof buf);
    for (size_t i = 0; secrets[i]; i++)
        cr_assert_null(strstr(buf, secrets[i]), "%s -> %s shows %s", url, buf, secrets[i]);
    cr_assert_not_null(strstr(buf, "***"), "%s -> %s", url, buf);
}

Test(store_url, the_password_is_hidden_in_every_spelling_libpq_accepts) {
    assert_masked("host=db user=ev password = s3cret dbname=ev", (const char *[]){"s3cret", NULL});
    assert_masked("host=db password='my s3cret' user=ev", (const char *[]){"s3cret", "my", NULL});
    assert_masked("password='it\\'s s3cret'", (const char *[]){"s3cret", NULL});
    assert_masked("postgresql://ev:s3cretA@db:5432/ev?password=s3cretB&password=s3cretC",
                  (const char *[]){"s3cret", NULL});
    assert_masked("postgres://ev:p%40ss@db/ev", (const char *[]){"p%40ss", "p@ss", NULL});
    assert_masked("postgresql:///ev?host=/run/pg&password=x1y2", (const char *[]){"x1y2", NULL});
}

Test(store_url, what_holds_no_password_is_shown_as_it_is) {
    char buf[256];
    config_store_masked("memory", buf, sizeof buf);
    cr_assert_str_eq(buf, "memory");
    config_store_masked("postgresql://ev@db/ev", buf, sizeof buf);
    cr_assert_str_eq(buf, "postgresql://ev@db/ev");
    config_store_masked("host=db password", buf, sizeof buf);
    cr_assert_null(strstr(buf, "password"), "an unparsable string is not shown: %s", buf);
}
