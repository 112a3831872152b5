/* db.c: throwaway PostgreSQL databases (see db.h). */
#include "db.h"

#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

int test_sql(const char *url, const char *sql, char *out, size_t outlen, char *err, size_t errlen) {
    if (out && outlen) out[0] = '\0';
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "connect %s: %s", url, PQerrorMessage(c));
        PQfinish(c);
        return -1;
    }
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s: %s", sql, PQresultErrorMessage(r));
        rc = -1;
    } else if (out && st == PGRES_TUPLES_OK && PQntuples(r) > 0) {
        snprintf(out, outlen, "%s", PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    PQfinish(c);
    return rc;
}

int test_db_create(test_db_t *db, const char *cluster_url, const char *prefix, char *err,
                   size_t errlen) {
    memset(db, 0, sizeof *db);
    const char *scheme = strstr(cluster_url, "://");
    const char *path = scheme ? strchr(scheme + 3, '/') : NULL;
    const char *query = strchr(cluster_url, '?');
    if (!path || (query && query < path)) {
        snprintf(err, errlen, "%s names no database", cluster_url);
        return -1;
    }
    uint8_t r[4];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        snprintf(err, errlen, "getrandom failed");
        return -1;
    }
    char name[sizeof db->name];
    snprintf(name, sizeof name, "%s_%02x%02x%02x%02x", prefix, r[0], r[1], r[2], r[3]);
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    if (test_sql(cluster_url, sql, NULL, 0, err, errlen) != 0) return -1;
    memcpy(db->name, name, sizeof name);
    snprintf(db->url, sizeof db->url, "%.*s/%s%s", (int)(path - cluster_url), cluster_url, name,
             query ? query : "");
    return 0;
}

void test_db_drop(test_db_t *db, const char *cluster_url) {
    if (!db->name[0] || !cluster_url) return;
    char sql[128], err[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db->name);
    test_sql(cluster_url, sql, NULL, 0, err, sizeof err);
    db->name[0] = '\0';
}
