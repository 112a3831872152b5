/* test_log.c: the log line (log_format): one line whatever the message, the journal's priority
 * prefix or an ISO 8601 time, the length bound; and the journal detection (log_fd_is_journal). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../server/log.h"
#include "mp.h"

TestSuite(log, .fini = leak_check);

/* 2026-12-03T07:45:12.345Z */
static const struct timespec when = {.tv_sec = 1796283912, .tv_nsec = 345678901};

Test(log, a_line_outside_the_journal_starts_with_the_utc_time_in_milliseconds) {
    char line[LOG_LINE_MAX + 1];
    size_t n = log_format(line, LOG_WARN, "main", "hello", false, &when);
    cr_assert_str_eq(line, "2026-12-03T07:45:12.345Z warn main: hello\n");
    cr_assert_eq(n, strlen(line));
}

Test(log, a_line_for_the_journal_starts_with_its_syslog_priority) {
    char line[LOG_LINE_MAX + 1];
    const struct {
        int level;
        const char *want;
    } cases[] = {{LOG_ERROR, "<3>error pg: x\n"},
                 {LOG_WARN, "<4>warn pg: x\n"},
                 {LOG_INFO, "<6>info pg: x\n"},
                 {LOG_DEBUG, "<7>debug pg: x\n"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        log_format(line, cases[i].level, "pg", "x", true, &when);
        cr_assert_str_eq(line, cases[i].want);
    }
}

Test(log, a_postgresql_error_of_several_lines_is_one_line) {
    char line[LOG_LINE_MAX + 1];
    log_format(line, LOG_ERROR, "pg",
               "ERROR:  relation \"x\" does not exist\nDETAIL:\tnone\r\n  HINT: create it\n\n",
               true, &when);
    cr_assert_str_eq(line,
                     "<3>error pg: ERROR:  relation \"x\" does not exist | DETAIL: none | HINT: "
                     "create it\n");
}

Test(log, blank_lines_and_blanks_at_the_ends_are_dropped) {
    char line[LOG_LINE_MAX + 1];
    log_format(line, LOG_INFO, "conn", "\n\n\ta\n\n\nb\t\n", true, &when);
    cr_assert_str_eq(line, "<6>info conn: a | b\n");
}

Test(log, a_long_message_is_cut_to_the_bound_at_a_character_boundary) {
    char line[LOG_LINE_MAX + 1];
    /* "é" is two bytes: wherever the cut falls, it must not split one. */
    size_t len = 3 * LOG_LINE_MAX;
    char *msg = malloc(len + 1);
    for (size_t i = 0; i + 1 < len; i += 2)
        memcpy(msg + i, "\xc3\xa9", 2);
    msg[len] = '\0';
    for (int shift = 0; shift < 2; shift++) {
        const char *tag = shift ? "pg" : "p"; /* moves the cut by one byte */
        size_t n = log_format(line, LOG_INFO, tag, msg, true, &when);
        cr_assert_leq(n, LOG_LINE_MAX);
        cr_assert_eq(strlen(line), n);
        cr_assert_eq(memchr(line, '\n', n), line + n - 1, "one line");
        cr_assert(n >= 4 && memcmp(line + n - 4, "...\n", 4) == 0, "ends in ...");
        const char *body = strstr(line, ": ") + 2;
        cr_assert_eq((line + n - 4 - body) % 2, 0, "a character was cut in two (tag %s)", tag);
    }
    free(msg);
}

Test(log, a_message_that_just_fits_is_not_cut) {
    char line[LOG_LINE_MAX + 1];
    const char *head = "<6>info main: ";
    size_t room = LOG_LINE_MAX - 1 - strlen(head);
    char *msg = malloc(room + 1);
    memset(msg, 'a', room);
    msg[room] = '\0';
    size_t n = log_format(line, LOG_INFO, "main", msg, true, &when);
    cr_assert_eq(n, LOG_LINE_MAX);
    cr_assert_eq(line[n - 2], 'a');
    free(msg);
}

Test(log, the_journal_is_the_stream_journal_stream_names) {
    char path[] = "/tmp/evs-log.XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    char v[64];
    unsetenv("JOURNAL_STREAM");
    cr_assert_not(log_fd_is_journal(fd));
    snprintf(v, sizeof v, "%ju:%ju", (uintmax_t)st.st_dev, (uintmax_t)st.st_ino);
    setenv("JOURNAL_STREAM", v, 1);
    cr_assert(log_fd_is_journal(fd));
    snprintf(v, sizeof v, "%ju:%ju", (uintmax_t)st.st_dev, (uintmax_t)st.st_ino + 1);
    setenv("JOURNAL_STREAM", v, 1);
    cr_assert_not(log_fd_is_journal(fd), "another inode");
    snprintf(v, sizeof v, "%ju:%jux", (uintmax_t)st.st_dev, (uintmax_t)st.st_ino);
    setenv("JOURNAL_STREAM", v, 1);
    cr_assert_not(log_fd_is_journal(fd), "trailing garbage");
    setenv("JOURNAL_STREAM", "", 1);
    cr_assert_not(log_fd_is_journal(fd));
    unsetenv("JOURNAL_STREAM");
    close(fd);
}
