/* test_auth_startup.c: the defaults that keep a daemon from being open by accident: protected
 * mode (a non-loopback listen needs an auth_file or allow_unauthenticated), the lock that keeps a
 * second daemon off a Unix socket in use, and the store password hidden from the config op in
 * every spelling libpq accepts (on PostgreSQL; the unit tests check the same on strings). */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "auth_fixture.h"
#include "fixture.h"

TestSuite(auth_startup, .fini = fx_teardown, .timeout = 90);

/* Runs evstored with args (a shell-quoted string) and returns its exit status, with what it
 * wrote to stdout and stderr in out. */
static int run_evstored(const char *args, char *out, size_t outlen) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1 </dev/null", test_evstored_bin(), args);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, outlen - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    cr_assert(WIFEXITED(status), "evstored died of a signal: %s", out);
    return WEXITSTATUS(status);
}

Test(auth_startup, a_non_loopback_listen_needs_an_auth_file_or_the_opt_out) {
    char out[4096];
    int rc = run_evstored("--listen 0.0.0.0:7999 --store memory", out, sizeof out);
    cr_assert_eq(rc, 1, "evstored started on 0.0.0.0 without auth: %s", out);
    cr_assert(strstr(out, "0.0.0.0:7999 is not a loopback address") &&
                  strstr(out, "allow_unauthenticated"),
              "one line says why and what to do: %s", out);
    cr_assert_eq(strchr(out, '\n'), out + strlen(out) - 1, "one line: %s", out);
    rc = run_evstored("--listen [::]:7999 --store memory --check-config", out, sizeof out);
    cr_assert_eq(rc, 1, "[::] is refused too: %s", out);

    rc = run_evstored("--listen 0.0.0.0:7999 --store memory --allow-unauthenticated yes "
                      "--check-config",
                      out, sizeof out);
    cr_assert_eq(rc, 0, "the opt-out is accepted: %s", out);
    auth_file_write(auth_line("admin", "admin", AUTH_ADMIN));
    char args[256];
    snprintf(args, sizeof args,
             "--listen 0.0.0.0:7999 --store memory --auth-file %s --check-config",
             auth_file_path());
    rc = run_evstored(args, out, sizeof out);
    cr_assert_eq(rc, 0, "an auth_file is accepted: %s", out);
    rc = run_evstored("--listen 127.0.0.2:7999 --store memory --check-config", out, sizeof out);
    cr_assert_eq(rc, 0, "any loopback address is: %s", out);
    /* A broken auth_file is refused at start, naming the line. */
    auth_file_write("# ok\nadmin admin\n");
    rc = run_evstored(args, out, sizeof out);
    cr_assert_eq(rc, 1);
    cr_assert(strstr(out, ":2:") || strstr(out, "line 2"), "the line is named: %s", out);
}

Test(auth_startup, a_second_daemon_on_the_same_unix_socket_refuses_to_start) {
    cr_assert_eq(test_daemon_launch(&fx_daemon, test_store(), true, NULL), 0);
    char out[4096], args[256];
    snprintf(args, sizeof args, "--listen 127.0.0.1:0 --store memory --unix %s",
             fx_daemon.unix_path);
    int rc = run_evstored(args, out, sizeof out);
    cr_assert_eq(rc, 1, "a second daemon took the socket over: %s", out);
    cr_assert(strstr(out, "another evstored"), "it says why: %s", out);
    struct stat st;
    cr_assert_eq(stat(fx_daemon.unix_path, &st), 0, "the first daemon's socket is still there");
    int fd = raw_connect_unix(fx_daemon.unix_path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(raw_ping(fd, 1, 5000), 0, "the first daemon still serves its socket");
    close(fd);
    fx_finish();
}

Test(auth_startup, the_unix_socket_gets_the_mode_and_group_asked_for) {
    char group[16];
    snprintf(group, sizeof group, "%u", (unsigned)getgid());
    const char *extra[] = {"--unix-mode", "0640", "--unix-group", group, NULL};
    cr_assert_eq(test_daemon_launch(&fx_daemon, test_store(), true, extra), 0);
    struct stat st;
    cr_assert_eq(stat(fx_daemon.unix_path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0640, "mode %o", (unsigned)(st.st_mode & 0777));
    cr_assert_eq(st.st_gid, getgid());
    char lock[160];
    snprintf(lock, sizeof lock, "%s.lock", fx_daemon.unix_path);
    cr_assert_eq(stat(lock, &st), 0, "the daemon holds PATH.lock");
    fx_finish();
    cr_assert_neq(stat(lock, &st), 0, "the lock file is removed at exit");

    char out[4096];
    int rc = run_evstored("--unix-mode 0999 --check-config", out, sizeof out);
    cr_assert_eq(rc, 1, "a mode that is not octal is refused: %s", out);
    rc = run_evstored("--unix /tmp/evs-no-such-group.sock --unix-group no-such-group-x "
                      "--listen 127.0.0.1:0 --store memory",
                      out, sizeof out);
    cr_assert_eq(rc, 1, "an unknown group is refused: %s", out);
    cr_assert_not_null(strstr(out, "no-such-group-x"), "%s", out);
    cr_assert_neq(stat("/tmp/evs-no-such-group.sock", &st), 0, "the socket was removed");
    cr_assert_neq(stat("/tmp/evs-no-such-group.sock.lock", &st), 0, "the lock file was removed");
}

/* Starts a daemon on store with the default auth_file, reads config as admin and checks that
 * the store's value hides every secret (none of them appears, "***" does). */
static void check_masked(const char *store, const char *const *secrets) {
    auth_file_write(auth_line("admin", "admin", AUTH_ADMIN));
    const char *extra[] = {"--auth-file", auth_file_path(), NULL};
    test_daemon_token = AUTH_ADMIN;
    cr_assert_eq(test_daemon_launch(&fx_daemon, store, false, extra), 0);
    int fd = fx_connect();
    rq_t r;
    rq_begin(&r, "auth", 1, 1);
    pk_str(&r.pk, "token");
    pk_str(&r.pk, AUTH_ADMIN);
    fx_send_rq(fd, &r);
    reply_free((reply_t[]){fx_expect_ok(fd, 1)});
    rq_begin(&r, "config", 2, 0);
    fx_send_rq(fd, &r);
    reply_t rep = fx_expect_ok(fd, 2);
    const msgpack_object *v = obj_get(obj_get(reply_get(&rep, "config"), "store"), "value");
    cr_assert(v && v->type == MSGPACK_OBJECT_STR);
    char shown[1024];
    snprintf(shown, sizeof shown, "%.*s", (int)v->via.str.size, v->via.str.ptr);
    for (size_t i = 0; secrets[i]; i++)
        cr_assert_null(strstr(shown, secrets[i]), "\"%s\" shows %s", shown, secrets[i]);
    cr_assert_not_null(strstr(shown, "***"), "\"%s\" says a password is hidden", shown);
    reply_free(&rep);
    close(fd);
    fx_finish();
}

Test(auth_startup, admin_sees_config_with_the_store_password_masked_in_every_spelling) {
    const char *url = test_store();
    if (strncmp(url, "postgres", 8) != 0) {
        cr_log_info("memory store: no password to hide (tests/unit checks the masking)");
        return;
    }
    /* The test cluster trusts every local connection, so any password connects. */
    PQconninfoOption *opts = PQconninfoParse(url, NULL);
    cr_assert_not_null(opts);
    char kv[1024] = "", store[1200];
    size_t at = 0;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (o->val) at += (size_t)snprintf(kv + at, sizeof kv - at, "%s=%s ", o->keyword, o->val);
    PQconninfoFree(opts);

    snprintf(store, sizeof store, "%spassword = s3cret", kv);
    check_masked(store, (const char *[]){"s3cret", NULL});
    snprintf(store, sizeof store, "%spassword='my s3cret'", kv);
    check_masked(store, (const char *[]){"s3cret", NULL});
    /* A URL with user:password@ and the password given twice in its query. */
    const char *at_sign = strchr(url, '@');
    cr_assert_not_null(at_sign);
    snprintf(store, sizeof store, "%.*s:s3cretA%s%spassword=s3cretB&password=s3cretC",
             (int)(at_sign - url), url, at_sign, strchr(url, '?') ? "&" : "?");
    check_masked(store, (const char *[]){"s3cret", NULL});
}
