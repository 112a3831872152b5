/* test_consumer_client.c: the consumers' calls of libevstore (client/consumer.c) and
 * `evstore tail --consumer`, which starts after the consumer's checkpoint and checkpoints what
 * it printed. One daemon per test. */
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

#include "../common/clock.h"
#include "fixture.h"

TestSuite(consumer_client, .fini = fx_teardown, .timeout = 60);

static uint64_t append_n(evs_context_t *c, size_t n, uint64_t *positions) {
    for (size_t i = 0; i < n; i++) {
        evs_event_t ev = {.entity_id = (char *)tname("acc"),
                          .topic = (char *)"t",
                          .payload = (uint8_t *)"\x80",
                          .payload_len = 1};
        cr_assert_eq(evs_append(c, &ev, 1, &positions[i], NULL), 0, "%s", c->errstr);
    }
    return positions[n - 1];
}

Test(consumer_client, checkpoints_and_tracked_appends) {
    fx_start(NULL);
    evs_context_t *c = evs_connect(fx_daemon.addr);
    cr_assert_eq(c->err, 0, "%s", c->errstr);
    uint64_t p[3], got = 9;
    append_n(c, 3, p);
    const char *name = tname("proj");
    cr_assert_eq(evs_get_checkpoint(c, name, &got), 0);
    cr_assert_eq(got, 0);
    cr_assert_eq(evs_checkpoint(c, name, p[1], &got), 0, "%s", c->errstr);
    cr_assert_eq(got, p[1]);
    cr_assert_eq(evs_checkpoint(c, name, p[0], NULL), EVS_ECONFLICT);
    cr_assert(c->detail.has_position);
    cr_assert_eq(c->detail.position, p[1]);

    evs_consumer_info_t *list;
    size_t n;
    uint64_t head;
    cr_assert_eq(evs_consumers(c, &list, &n, &head), 0, "%s", c->errstr);
    bool found = false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i].consumer, name) == 0) {
            found = true;
            cr_assert_eq(list[i].position, p[1]);
            cr_assert_eq(list[i].lag, list[i].head - p[1]);
        }
    cr_assert(found);
    cr_assert_geq(head, p[2]);
    free(list);

    const char *pm = tname("pm");
    evs_event_t effect = {.entity_id = (char *)tname("out"),
                          .topic = (char *)"t",
                          .payload = (uint8_t *)"\x80",
                          .payload_len = 1};
    cr_assert_eq(evs_uuid_generate(effect.event_id, 1), 0);
    effect.has_event_id = 1;
    uint64_t pos, again;
    cr_assert_eq(evs_append_tracked(c, &effect, 1, pm, p[0], &pos, NULL), 0, "%s", c->errstr);
    cr_assert_eq(evs_append_tracked(c, &effect, 1, pm, p[0], &again, NULL), 0,
                 "the retry failed: %s", c->errstr);
    cr_assert_eq(again, pos, "the retry did not get the original position");
    effect.has_event_id = 0;
    cr_assert_eq(evs_append_tracked(c, &effect, 1, pm, p[0], NULL, NULL), EVS_ECONFLICT);
    cr_assert(c->detail.tracking, "the processed event is not reported as such");
    cr_assert_eq(evs_delete_checkpoint(c, name, &got), 0);
    cr_assert_eq(got, 1);
    evs_free(c);
    fx_finish();
}

static void cli_path(char *out, size_t len) {
    const char *bin = getenv("EVSTORED_BIN");
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", bin ? bin : "build/san/bin/evstored");
    snprintf(out, len, "%s/evstore", dirname(copy));
}

static pid_t spawn_tail(const char *consumer, const char *out_path) {
    char cli[4096];
    cli_path(cli, sizeof cli);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 1);
        execl(cli, cli, "-s", fx_daemon.addr, "-t", "5000", "tail", "--consumer", consumer,
              "--prefix", tprefix(), (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* The positions printed in the file, up to max. */
static size_t read_positions(const char *path, uint64_t *out, size_t max) {
    FILE *f = fopen(path, "r");
    size_t n = 0;
    char line[8192];
    if (!f) return 0;
    while (n < max && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "\"position\":");
        if (!p || !strchr(line, '\n')) break;
        out[n++] = strtoull(p + strlen("\"position\":"), NULL, 10);
    }
    fclose(f);
    return n;
}

/* Runs tail --consumer until it printed want events, then interrupts it; returns them. */
static void tail_until(const char *consumer, size_t want, uint64_t *out) {
    char path[] = "/tmp/evs-tail-consumer-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    pid_t pid = spawn_tail(consumer, path);
    int64_t until = now_ms() + 15000;
    while (read_positions(path, out, want + 1) < want && now_ms() < until)
        sleep_ms(20);
    cr_assert_eq(read_positions(path, out, want + 1), want, "tail printed the wrong events");
    kill(pid, SIGINT);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "tail did not exit cleanly");
    unlink(path);
}

Test(consumer_client, tail_with_a_consumer_resumes_after_what_it_printed) {
    fx_start(NULL);
    evs_context_t *c = evs_connect(fx_daemon.addr);
    cr_assert_eq(c->err, 0, "%s", c->errstr);
    uint64_t p[8], printed[8];
    append_n(c, 5, p);
    const char *name = tname("tail");
    tail_until(name, 5, printed);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(printed[i], p[i]);
    uint64_t stored;
    cr_assert_eq(evs_get_checkpoint(c, name, &stored), 0);
    cr_assert_eq(stored, p[4], "tail did not checkpoint what it printed");
    append_n(c, 3, p + 5);
    tail_until(name, 3, printed);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(printed[i], p[5 + i], "the second run did not resume after the checkpoint");
    evs_free(c);
    fx_finish();
}
