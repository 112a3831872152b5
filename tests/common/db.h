/* db.h: throwaway PostgreSQL databases, one per test, in a cluster that scripts/pg-cluster.sh
 * started (its URL ends in a database name, normally /postgres). */
#ifndef EVS_TEST_DB_H
#define EVS_TEST_DB_H

#include <stddef.h>

typedef struct test_db {
    char name[64];  /* PREFIX_XXXXXXXX, random */
    char url[1024]; /* the cluster's URL with this database in place of its own */
} test_db_t;

/* Creates a database named prefix_ and 8 random hex digits in the cluster at cluster_url and
 * sets db. Returns 0, or -1 with the reason in err (errlen bytes). */
int test_db_create(test_db_t *db, const char *cluster_url, const char *prefix, char *err,
                   size_t errlen);

/* Drops db (forcing its connections out). Does nothing when db was never created. */
void test_db_drop(test_db_t *db, const char *cluster_url);

/* Runs one SQL command on url with a blocking connection. The first value of its first row (or
 * "") goes to out when out is not NULL. Returns 0, or -1 with the reason in err. */
int test_sql(const char *url, const char *sql, char *out, size_t outlen, char *err, size_t errlen);

#endif
