/* reads.c: the read side of the PostgreSQL benchmark (scripts/bench-pg.sh).
 *
 *   bench-reads ADDR
 *
 * Appends one entity of 1,000 events (100-byte payloads, 10 appends of 100), then times 500
 * get-by-entity calls of the whole entity (p50/p90/p99), then pages through the whole global log
 * with read-all by 1,000 and reports events/s. One JSON object per measure on stdout. */
#include <evstore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../tests/common/clock.h"

static double now_s(void) {
    return (double)now_ns() / 1e9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: bench-reads ADDR\n");
        return 2;
    }
    evs_context_t *c = evs_connect(argv[1]);
    if (!c || evs_err(c)) {
        fprintf(stderr, "bench-reads: connect %s: %s\n", argv[1], c ? evs_errstr(c) : "oom");
        return 1;
    }
    char entity[64];
    snprintf(entity, sizeof entity, "bench-read-%ld", (long)time(NULL));
    static uint8_t payload[100];
    memset(payload, 'x', sizeof payload);
    evs_event_t evs[100];
    memset(evs, 0, sizeof evs);
    for (int i = 0; i < 100; i++) {
        evs[i].entity_id = entity;
        evs[i].topic = "bench.Read";
        evs[i].payload = payload;
        evs[i].payload_len = sizeof payload;
    }
    for (int k = 0; k < 10; k++)
        if (evs_append(c, evs, 100, NULL, NULL) != 0) {
            fprintf(stderr, "bench-reads: append: %s\n", evs_errstr(c));
            return 1;
        }
    enum { N = 500 };
    static double lat[N];
    for (int i = 0; i < N; i++) {
        evs_events_t *out = NULL;
        double t = now_s();
        if (evs_get_by_entity(c, entity, 0, 1000, false, &out) != 0 || out->n != 1000) {
            fprintf(stderr, "bench-reads: get-by-entity: %s\n", evs_errstr(c));
            return 1;
        }
        lat[i] = (now_s() - t) * 1e6;
        evs_events_free(out);
    }
    qsort(lat, N, sizeof lat[0], cmp_double);
    printf("{\"measure\":\"get-by-entity-1000\",\"calls\":%d,\"p50_us\":%.0f,\"p90_us\":%.0f,"
           "\"p99_us\":%.0f}\n",
           N, lat[N / 2], lat[N * 9 / 10], lat[N * 99 / 100]);
    uint64_t after = 0, total = 0;
    double t0 = now_s();
    for (;;) {
        evs_events_t *out = NULL;
        if (evs_read_all(c, after, 1000, &out) != 0) {
            fprintf(stderr, "bench-reads: read-all: %s\n", evs_errstr(c));
            return 1;
        }
        size_t n = out->n;
        if (n) after = out->events[n - 1].position;
        total += n;
        evs_events_free(out);
        if (n == 0 || now_s() - t0 > 20) break;
    }
    double secs = now_s() - t0;
    printf("{\"measure\":\"read-all-by-1000\",\"events\":%llu,\"seconds\":%.2f,\"events_per_s\":%."
           "0f}\n",
           (unsigned long long)total, secs, total / secs);
    evs_free(c);
    return 0;
}
