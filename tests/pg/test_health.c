/* test_health.c: the health of a PostgreSQL store that cannot serve, and the schema's guards.
 *
 * Daemons run on a throwaway database each, with their log in a file of the test's own: a login
 * without the password the server asks for, a role that may not create the schema, a schema
 * whose append function was dropped, and an address where nothing listens each make `evstore
 * health` exit 2 with its own message (also the error of a failed append), logged once however
 * many times the daemon retries. A schema newer than the daemon knows, a half-applied one, and
 * one behind with migrate = no make the daemon exit 1 saying why; evstored --migrate applies the
 * migrations and --new-store-id changes the identity ping returns. Without $EVSTORE_PG_URL every
 * test is skipped. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/clock.h"
#include "../common/daemon.h"
#include "../common/db.h"
#include "../common/rawio.h"
#include "fixture.h"

static test_db_t db;
static const char *cluster_url;
static char logpath[64];

static void setup(void) {
    pg_db_setup(&db, "evs_health", &cluster_url);
    snprintf(logpath, sizeof logpath, "/tmp/evs-health-%d.log", (int)getpid());
}

static char role[64]; /* the test's role (make_role), dropped at the end; "" when none */

static void teardown(void) {
    unlink(logpath);
    char q[200], err[256];
    if (role[0]) {
        snprintf(q, sizeof q, "DROP OWNED BY %s", role);
        test_sql(db.url, q, NULL, 0, err, sizeof err);
    }
    test_db_drop(&db, cluster_url);
    if (role[0]) {
        snprintf(q, sizeof q, "DROP ROLE %s", role);
        test_sql(cluster_url, q, NULL, 0, err, sizeof err);
    }
}

TestSuite(pg_health, .init = setup, .fini = teardown, .timeout = 120);

/* ---------------------------------------------------------------- helpers */

static void sql(const char *url, const char *text) {
    char err[512];
    cr_assert_eq(test_sql(url, text, NULL, 0, err, sizeof err), 0, "%s: %s", text, err);
}

static void sql_value(const char *url, const char *text, char *out, size_t len) {
    char err[512];
    cr_assert_eq(test_sql(url, text, out, len, err, sizeof err), 0, "%s: %s", text, err);
}

/* The path of a binary next to the daemon's (evstore, evstored). */
static const char *bin(const char *name) {
    static char path[1024];
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", test_evstored_bin());
    snprintf(path, sizeof path, "%s/%s", dirname(dir), name);
    return path;
}

/* Runs a shell command, its stdout and stderr into out (one string); returns its exit status. */
static int run(char *out, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int run(char *out, size_t len, const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    strncat(cmd, " 2>&1", sizeof cmd - strlen(cmd) - 1);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "cannot run %s", cmd);
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The cluster's URL with user in place of its user and this test's database. */
static void url_as(char *out, size_t len, const char *user) {
    const char *at = strchr(db.url, '@');
    const char *scheme = strstr(db.url, "://");
    cr_assert(at && scheme, "cannot find the user in %s", db.url);
    snprintf(out, len, "%.*s%s%s", (int)(scheme + 3 - db.url), db.url, user, at);
}

/* The grants docs/service.md ("Privileges") lists for a daemon with migrate = no: keep them in
 * step. %1$s is the database, %2$s the role. */
static const char grants_fmt[] =
    "GRANT CONNECT ON DATABASE %1$s TO %2$s;"
    "GRANT USAGE ON SCHEMA public TO %2$s;"
    "GRANT SELECT ON evs_migrations, evs_store TO %2$s;"
    "GRANT SELECT, INSERT, DELETE ON evs_events TO %2$s;"
    "GRANT SELECT, INSERT, UPDATE, DELETE ON evs_snapshots, evs_checkpoints, evs_leases TO %2$s;"
    "GRANT SELECT, UPDATE ON evs_event_size TO %2$s;"
    "GRANT USAGE, SELECT, UPDATE ON SEQUENCE evs_position_seq TO %2$s;";

/* Creates the test's role (LOGIN with options), takes CREATE on schema public from PUBLIC (as
 * PostgreSQL 15 does), gives the role the grants above when granted, and returns the URL that
 * logs in as it. */
static const char *make_role(const char *options, bool granted) {
    static char url[1100];
    char q[2048];
    snprintf(role, sizeof role, "evs_role_%.40s", db.name + strlen("evs_health_"));
    snprintf(q, sizeof q, "CREATE ROLE %s LOGIN %s", role, options);
    sql(cluster_url, q);
    sql(db.url, "REVOKE CREATE ON SCHEMA public FROM PUBLIC");
    if (granted) {
        snprintf(q, sizeof q, grants_fmt, db.name, role);
        sql(db.url, q);
    }
    url_as(url, sizeof url, role);
    return url;
}

/* A daemon of the test's own, its stdout and stderr into logpath. */
typedef struct daemon {
    pid_t pid;
    int port;
    char addr[32];
} daemon_t;

/* Starts evstored on store with --log-level debug and extra flags (NULL-terminated, may be NULL);
 * returns once it answers on its port, or once it exited (pid then 0, status in *exited). */
static void start(daemon_t *d, const char *store, const char *const *extra, int *exited) {
    d->port = test_free_port();
    cr_assert_gt(d->port, 0);
    snprintf(d->addr, sizeof d->addr, "127.0.0.1:%d", d->port);
    const char *argv[32] = {test_evstored_bin(), "--listen", d->addr, "--store", store,
                            "--log-level",       "debug"};
    int n = 7;
    for (; extra && *extra && n < 30; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    d->pid = fork();
    cr_assert_geq(d->pid, 0);
    if (d->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0) _exit(99);
        dup2(fd, 1);
        dup2(fd, 2);
        unsetenv("PGPASSWORD");
        unsetenv("EVSTORE_STORE");
        execv(argv[0], (char *const *)argv);
        _exit(98);
    }
    int64_t end = now_ms() + 20000;
    while (now_ms() < end) {
        int status;
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
            d->pid = 0;
            cr_assert(exited, "evstored exited at start (status %d)", status);
            *exited = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            return;
        }
        int fd = raw_connect_tcp(d->port);
        if (fd >= 0) {
            close(fd);
            return;
        }
        sleep_ms(20);
    }
    cr_assert_fail("evstored did not answer on %s", d->addr);
}

/* Waits for a daemon that should exit by itself; returns its exit status. */
static int wait_exit(pid_t pid) {
    int64_t end = now_ms() + 30000;
    int status;
    while (waitpid(pid, &status, WNOHANG) != pid) {
        cr_assert(now_ms() < end, "evstored did not exit");
        sleep_ms(20);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void stop(daemon_t *d) {
    if (!d->pid) return;
    kill(d->pid, SIGTERM);
    cr_assert_eq(wait_exit(d->pid), 0, "evstored did not exit 0");
    d->pid = 0;
}

/* Starts a daemon that must refuse to start; returns its log. */
static const char *refused_start(const char *store, const char *const *extra) {
    daemon_t d;
    int status = -1;
    start(&d, store, extra, &status);
    if (d.pid) status = wait_exit(d.pid);
    cr_assert_eq(status, 1, "evstored exited %d, not 1", status);
    static char log[16384];
    int n = run(log, sizeof log, "cat %s", logpath);
    cr_assert_eq(n, 0);
    return log;
}

/* The number of lines of the daemon's log that hold text. */
static int log_count(const char *text) {
    char out[64];
    run(out, sizeof out, "grep -c -F '%s' %s", text, logpath);
    return atoi(out);
}

/* Runs evstore health against d; returns its exit status with its output in out. */
static int health(const daemon_t *d, char *out, size_t len) {
    return run(out, len, "%s -s %s health", bin("evstore"), d->addr);
}

/* Polls evstore health until its output starts with prefix; returns its exit status. */
static int health_until(const daemon_t *d, const char *prefix, char *out, size_t len) {
    int64_t end = now_ms() + 20000;
    for (;;) {
        int rc = health(d, out, len);
        if (strncmp(out, prefix, strlen(prefix)) == 0) return rc;
        cr_assert(now_ms() < end, "health never said \"%s\"; last: %s", prefix, out);
        sleep_ms(50);
    }
}

/* Waits until the daemon's log holds text at least n times (the daemon retried). */
static void wait_log(const char *text, int n) {
    int64_t end = now_ms() + 30000;
    while (log_count(text) < n) {
        cr_assert(now_ms() < end, "the log never held \"%s\" %d times", text, n);
        sleep_ms(100);
    }
}

/* Asserts that the condition was logged once although the daemon retried (attempt is what
 * the debug log says at each attempt). */
static void logged_once(const char *attempt) {
    wait_log(attempt, 3);
    cr_assert_eq(log_count("store: down:"), 1, "the condition was logged %d times",
                 log_count("store: down:"));
}

static void migrate(const char *url) {
    char out[1024];
    int rc = run(out, sizeof out, "%s --store '%s' --migrate", bin("evstored"), url);
    cr_assert_eq(rc, 0, "evstored --migrate failed: %s", out);
}

/* ---------------------------------------------------------------- health */

Test(pg_health, a_working_store_is_ok) {
    daemon_t d;
    start(&d, db.url, NULL, NULL);
    char out[16384];
    cr_assert_eq(health_until(&d, "ok", out, sizeof out), 0, "%s", out);
    run(out, sizeof out, "%s -s %s stats", bin("evstore"), d.addr);
    cr_assert(strstr(out, "\"store_state\": \"ok\""), "%s", out);
    stop(&d);
}

Test(pg_health, a_login_without_the_password_asked_is_an_authentication_failure) {
    char n[8];
    sql_value(cluster_url,
              "SELECT count(*) FROM pg_hba_file_rules WHERE '+evs_password_login' = ANY(user_name)",
              n, sizeof n);
    if (atoi(n) == 0) cr_skip_test("the cluster asks no password of evs_password_login");
    sql(cluster_url, "DO $$ BEGIN CREATE ROLE evs_password_login NOLOGIN; EXCEPTION WHEN "
                     "duplicate_object OR unique_violation THEN NULL; END $$");
    const char *url = make_role("PASSWORD 'secret' IN ROLE evs_password_login", false);

    daemon_t d;
    start(&d, url, NULL, NULL);
    char out[16384];
    int rc = health_until(&d, "down: PostgreSQL refused the login", out, sizeof out);
    cr_assert_eq(rc, 2);
    cr_assert(strstr(out, "no password supplied"), "%s", out);
    rc = run(out, sizeof out, "%s -s %s append e t '{}'", bin("evstore"), d.addr);
    cr_assert_eq(rc, 1);
    cr_assert(strstr(out, "unavailable: PostgreSQL refused the login") &&
                  strstr(out, "no password supplied"),
              "%s", out);
    run(out, sizeof out, "%s -s %s stats", bin("evstore"), d.addr);
    cr_assert(strstr(out, "\"store_state\": \"unavailable\""), "%s", out);
    cr_assert(strstr(out, "\"store_reason\": \"PostgreSQL refused the login"), "%s", out);
    logged_once("writer: connect failed");
    stop(&d);
}

Test(pg_health, a_role_that_may_not_create_the_schema_is_permission_denied) {
    const char *url = make_role("", false);

    daemon_t d;
    start(&d, url, NULL, NULL);
    char out[2048];
    int rc = health_until(&d, "down: permission denied in PostgreSQL", out, sizeof out);
    cr_assert_eq(rc, 2);
    cr_assert(strstr(out, "permission denied for schema public"), "%s", out);
    logged_once("writer: rejected");
    stop(&d);
}

Test(pg_health, a_schema_without_its_append_function_is_broken) {
    migrate(db.url);
    sql(db.url, "DROP FUNCTION evs_append_guard");
    daemon_t d;
    start(&d, db.url, NULL, NULL);
    char out[2048];
    int rc = health_until(&d, "down: broken schema", out, sizeof out);
    cr_assert_eq(rc, 2);
    cr_assert(strstr(out, "evs_append_guard") && strstr(out, "does not exist"), "%s", out);
    rc = run(out, sizeof out, "%s -s %s append e t '{}'", bin("evstore"), d.addr);
    cr_assert_eq(rc, 1);
    cr_assert(strstr(out, "unavailable: broken schema"), "%s", out);
    logged_once("writer: rejected");
    stop(&d);
}

Test(pg_health, an_address_where_nothing_listens_is_unreachable) {
    char url[256];
    snprintf(url, sizeof url, "postgresql://evstore@127.0.0.1:%d/evstore", test_free_port());
    daemon_t d;
    start(&d, url, NULL, NULL);
    char out[2048];
    int rc = health_until(&d, "down: PostgreSQL is not reachable", out, sizeof out);
    cr_assert_eq(rc, 2);
    logged_once("writer: connect failed");
    stop(&d);
    rc = health(&d, out, sizeof out);
    cr_assert_eq(rc, 2);
    cr_assert(strncmp(out, "down: cannot reach the daemon", 29) == 0, "%s", out);
}

/* ---------------------------------------------------------------- the schema's guards */

Test(pg_health, a_schema_newer_than_the_daemon_is_refused_at_start) {
    migrate(db.url);
    sql(db.url, "INSERT INTO evs_migrations (version, name) VALUES (9999, '9999_future')");
    const char *log = refused_start(db.url, NULL);
    cr_assert(strstr(log, "the schema is newer than this evstored") && strstr(log, "9999"), "%s",
              log);
    char out[1024];
    cr_assert_eq(run(out, sizeof out, "%s --store '%s' --migrate", bin("evstored"), db.url), 1);
    cr_assert(strstr(out, "newer"), "%s", out);
}

Test(pg_health, a_half_applied_schema_is_refused_at_start) {
    sql(db.url, "CREATE TABLE evs_events (position bigint)");
    const char *log = refused_start(db.url, NULL);
    cr_assert(strstr(log, "half-applied schema: evs_events exists") && strstr(log, "001_events"),
              "%s", log);
}

Test(pg_health, migrate_no_refuses_a_schema_behind_until_migrate_applies_it) {
    migrate(db.url);
    sql(db.url, "DELETE FROM evs_migrations WHERE version = 9");
    sql(db.url, "DROP FUNCTION evs_tracking_advance");
    const char *const no[] = {"--migrate-mode", "no", NULL};
    const char *log = refused_start(db.url, no);
    cr_assert(strstr(log, "the schema is behind this evstored") && strstr(log, "009_tracking"),
              "%s", log);
    char out[1024];
    cr_assert_eq(run(out, sizeof out, "%s --store '%s' --migrate", bin("evstored"), db.url), 0,
                 "%s", out);
    cr_assert(strstr(out, "applied 1 migration(s)"), "%s", out);
    daemon_t d;
    start(&d, db.url, no, NULL);
    cr_assert_eq(health_until(&d, "ok", out, sizeof out), 0, "%s", out);
    stop(&d);
}

Test(pg_health, migrate_no_on_an_empty_database_is_refused_at_start) {
    const char *const no[] = {"--migrate-mode", "no", NULL};
    const char *log = refused_start(db.url, no);
    cr_assert(strstr(log, "no evstore schema") && strstr(log, "--migrate"), "%s", log);
    char n[8];
    sql_value(db.url, "SELECT count(*) FROM pg_class WHERE relname LIKE 'evs%'", n, sizeof n);
    cr_assert_str_eq(n, "0", "migrate = no changed the schema");
}

/* Sends r (and frees it); asserts an ok reply. */
static void send_ok(int fd, rq_t *r, const char *what) {
    cr_assert_eq(raw_send_rq(fd, r), 0);
    rq_free(r);
    reply_t rep;
    cr_assert_eq(raw_recv(fd, 30000, &rep), 0, "no reply to %s", what);
    cr_assert(reply_ok(&rep), "%s failed: %s", what, reply_code(&rep));
    reply_free(&rep);
}

Test(pg_health, a_role_with_the_documented_grants_serves_with_migrate_no) {
    migrate(db.url);
    const char *url = make_role("", true);

    const char *const no[] = {"--migrate-mode", "no", NULL};
    daemon_t d;
    start(&d, url, no, NULL);
    char out[2048];
    cr_assert_eq(health_until(&d, "ok", out, sizeof out), 0, "%s", out);
    int fd = raw_connect_tcp(d.port);
    cr_assert_geq(fd, 0);

    /* Appends (one with a tracking: checkpoints; one over 1024 bytes: the largest size
     * stored), a checkpoint, a snapshot, reads and a delete. */
    reply_t rep = pg_append_one(fd, 1, "e", NULL, 0);
    cr_assert(reply_ok(&rep), "append: %s", reply_code(&rep));
    reply_free(&rep);
    rep = pg_append_one(fd, 2, "e", "c", 1);
    cr_assert(reply_ok(&rep), "tracked append: %s", reply_code(&rep));
    reply_free(&rep);
    static char big[2000];
    memset(big, 'x', sizeof big);
    rq_t r;
    rq_begin(&r, "append", 3, 1);
    pk_str(&r.pk, "events");
    msgpack_pack_array(&r.pk, 1);
    msgpack_pack_map(&r.pk, 3);
    pk_str(&r.pk, "entity_id");
    pk_str(&r.pk, tname("big"));
    pk_str(&r.pk, "topic");
    pk_str(&r.pk, tname("t"));
    pk_str(&r.pk, "payload");
    pk_bin(&r.pk, big, sizeof big);
    send_ok(fd, &r, "a large append");
    rq_begin(&r, "checkpoint", 4, 2);
    pk_str(&r.pk, "consumer");
    pk_str(&r.pk, tname("c"));
    pk_str(&r.pk, "position");
    msgpack_pack_uint64(&r.pk, 2);
    send_ok(fd, &r, "checkpoint");
    rq_begin(&r, "put-snapshot", 5, 4);
    pk_str(&r.pk, "entity_id");
    pk_str(&r.pk, tname("e"));
    pk_str(&r.pk, "version");
    msgpack_pack_uint64(&r.pk, 1);
    pk_str(&r.pk, "topic");
    pk_str(&r.pk, tname("s"));
    pk_str(&r.pk, "payload");
    pk_bin(&r.pk, "s", 1);
    send_ok(fd, &r, "put-snapshot");
    rq_begin(&r, "get-snapshot", 6, 1);
    pk_str(&r.pk, "entity_id");
    pk_str(&r.pk, tname("e"));
    send_ok(fd, &r, "get-snapshot");
    rq_begin(&r, "read-all", 7, 0);
    send_ok(fd, &r, "read-all");
    rq_begin(&r, "consumers", 8, 0);
    send_ok(fd, &r, "consumers");
    rq_begin(&r, "delete-entity", 9, 1);
    pk_str(&r.pk, "entity_id");
    pk_str(&r.pk, tname("e"));
    send_ok(fd, &r, "delete-entity");
    close(fd);
    cr_assert_eq(health(&d, out, sizeof out), 0, "%s", out);
    stop(&d);
}

Test(pg_health, appends_refused_for_a_privilege_make_it_down_until_one_succeeds) {
    migrate(db.url);
    const char *url = make_role("", true);
    char q[256];
    snprintf(q, sizeof q, "REVOKE INSERT ON evs_events FROM %s", role);
    sql(db.url, q);

    const char *const no[] = {"--migrate-mode", "no", NULL};
    daemon_t d;
    start(&d, url, no, NULL);
    char out[2048];
    cr_assert_eq(health_until(&d, "ok", out, sizeof out), 0, "%s", out);
    int fd = raw_connect_tcp(d.port);
    cr_assert_geq(fd, 0);
    for (uint64_t id = 1; id <= 3; id++) {
        reply_t rep = pg_append_one(fd, id, "e", NULL, 0);
        cr_assert(!reply_ok(&rep), "an append without INSERT succeeded");
        reply_free(&rep);
    }
    cr_assert_eq(health(&d, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "down: permission denied in PostgreSQL: appends:") &&
                  strstr(out, "evs_events"),
              "%s", out);
    cr_assert_eq(log_count("store: down:"), 1, "logged %d times", log_count("store: down:"));
    snprintf(q, sizeof q, "GRANT INSERT ON evs_events TO %s", role);
    sql(db.url, q);
    reply_t rep = pg_append_one(fd, 4, "e", NULL, 0);
    cr_assert(reply_ok(&rep), "the append after the GRANT failed: %s", reply_code(&rep));
    reply_free(&rep);
    cr_assert_eq(health(&d, out, sizeof out), 0, "%s", out);
    close(fd);
    stop(&d);
}

/* ---------------------------------------------------------------- the store's identity */

/* The store_id a ping to d returns. */
static void ping_store_id(const daemon_t *d, char out[37]) {
    int fd = raw_connect_tcp(d->port);
    cr_assert_geq(fd, 0);
    rq_t r;
    rq_begin(&r, "ping", 1, 0);
    cr_assert_eq(raw_send_rq(fd, &r), 0);
    rq_free(&r);
    reply_t rep;
    cr_assert_eq(raw_recv(fd, 10000, &rep), 0);
    const msgpack_object *id = reply_get(&rep, "store_id");
    cr_assert(id && id->type == MSGPACK_OBJECT_STR && id->via.str.size == 36);
    memcpy(out, id->via.str.ptr, 36);
    out[36] = '\0';
    reply_free(&rep);
    close(fd);
}

Test(pg_health, new_store_id_changes_the_identity_ping_returns) {
    migrate(db.url);
    daemon_t d;
    start(&d, db.url, NULL, NULL);
    char out[1024], before[37], after[37], stored[64];
    cr_assert_eq(health_until(&d, "ok", out, sizeof out), 0, "%s", out);
    ping_store_id(&d, before);
    stop(&d);
    cr_assert_eq(run(out, sizeof out, "%s --store '%s' --new-store-id", bin("evstored"), db.url), 0,
                 "%s", out);
    cr_assert(strstr(out, before), "the old identity is not named: %s", out);
    start(&d, db.url, NULL, NULL);
    cr_assert_eq(health_until(&d, "ok", out, sizeof out), 0, "%s", out);
    ping_store_id(&d, after);
    stop(&d);
    cr_assert_str_neq(before, after);
    sql_value(db.url, "SELECT store_id::text FROM evs_store", stored, sizeof stored);
    cr_assert_str_eq(after, stored);
}
