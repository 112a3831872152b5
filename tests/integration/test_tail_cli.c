/* test_tail_cli.c: `evstore tail` keeps following the log across a lost connection and a daemon
 * restart: its output holds every appended event once, in order.
 *
 * The CLI is the evstore binary next to $EVSTORED_BIN. It reaches the daemon through the test's
 * proxy (proxy.h), which the test cuts, or points at a new daemon on the same PostgreSQL
 * database. */
#include <criterion/criterion.h>
#include <evstore.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/daemon.h"
#include "../common/rawio.h"
#include "proxy.h"

#define PER_ROUND 20

static void cli_path(char *out, size_t len) {
    const char *bin = getenv("EVSTORED_BIN");
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", bin ? bin : "build/san/bin/evstored");
    snprintf(out, len, "%s/evstore", dirname(copy));
}

static pid_t spawn_tail(int proxy_port, const char *prefix, const char *out_path) {
    char cli[4096], addr[64];
    cli_path(cli, sizeof cli);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", proxy_port);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 1);
        execl(cli, cli, "-s", addr, "-t", "5000", "tail", "--after", "0", "--prefix", prefix,
              (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Positions printed so far, in output order. */
static size_t read_positions(const char *path, uint64_t *out, size_t max) {
    FILE *f = fopen(path, "r");
    size_t n = 0;
    char line[8192];
    if (!f) return 0;
    while (n < max && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "\"position\":");
        if (!p || !strchr(line, '\n')) break; /* a line still being written */
        out[n++] = strtoull(p + strlen("\"position\":"), NULL, 10);
    }
    fclose(f);
    return n;
}

static void append_round(const char *addr, const char *prefix, uint64_t *acked, size_t *nacked) {
    evs_context_t *c = evs_connect(addr);
    cr_assert_eq(c->err, 0, "%s", c->errstr);
    char entity[300];
    for (int i = 0; i < PER_ROUND; i++) {
        snprintf(entity, sizeof entity, "%s%d", prefix, i % 3);
        evs_event_t ev = {.entity_id = entity,
                          .topic = "tail.Test",
                          .payload = (uint8_t *)"\x80",
                          .payload_len = 1};
        cr_assert_eq(evs_append(c, &ev, 1, &acked[*nacked], NULL), 0, "%s", c->errstr);
        (*nacked)++;
    }
    evs_free(c);
}

static void wait_for(const char *path, size_t want) {
    uint64_t got[PER_ROUND * 4];
    int64_t until = now_ms() + 15000;
    while (read_positions(path, got, PER_ROUND * 4) < want && now_ms() < until)
        sleep_ms(50);
}

/* Starts a daemon: on store when it is not NULL, else on the suite's store. */
static void start_on(test_daemon_t *d, const char *store) {
    if (store)
        cr_assert_eq(test_daemon_launch(d, store, false, NULL), 0);
    else
        cr_assert_eq(test_daemon_start(d, NULL), 0);
}

/* Three rounds of appends; between them the connection is cut, or the daemon restarted (on
 * store, or on the suite's store when NULL). On a memory store every restart is a new, empty
 * store: tail must print each store's events from its beginning, positions starting again. */
static void run(bool restart, const char *store) {
    test_daemon_t d;
    proxy_t p;
    start_on(&d, store);
    proxy_start(&p, d.port);
    const char *prefix = tname("tail-");
    char out[] = "/tmp/evstore-tail-XXXXXX";
    int fd = mkstemp(out);
    cr_assert_geq(fd, 0);
    close(fd);
    pid_t tail = spawn_tail(p.port, prefix, out);
    uint64_t acked[PER_ROUND * 3];
    size_t nacked = 0;
    for (int round = 0; round < 3; round++) {
        append_round(d.addr, prefix, acked, &nacked);
        wait_for(out, nacked);
        if (round == 2) break;
        if (restart) {
            test_daemon_t next;
            start_on(&next, store);
            cr_assert_eq(test_daemon_stop(&d), 0);
            d = next;
            atomic_store(&p.target_port, d.port);
        }
        proxy_cut(&p);
    }
    kill(tail, SIGINT);
    int status;
    cr_assert_eq(waitpid(tail, &status, 0), tail);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "evstore tail exit status %d", status);
    uint64_t got[PER_ROUND * 4];
    size_t n = read_positions(out, got, PER_ROUND * 4);
    unlink(out);
    cr_assert_eq(n, nacked, "tail printed %zu events, %zu were appended", n, nacked);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(got[i], acked[i], "line %zu: position %llu, expected %llu", i,
                     (unsigned long long)got[i], (unsigned long long)acked[i]);
    proxy_stop(&p);
    cr_assert_eq(test_daemon_stop(&d), 0);
}

Test(tail_cli, follows_the_log_across_lost_connections) {
    run(false, NULL);
}

Test(tail_cli, follows_the_log_across_daemon_restarts) {
    const char *store = getenv("EVSTORE_TEST_STORE");
    if (!store || strcmp(store, "memory") == 0)
        cr_skip_test("the memory store forgets everything at a restart");
    run(true, NULL);
}

Test(tail_cli, reads_a_restarted_memory_daemon_from_its_beginning) {
    run(true, "memory");
}
