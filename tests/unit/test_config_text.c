/* test_config_text.c: config_parse_text, the config-file parser on text in memory (what the fuzz
 * harness of the parser calls): the same result as config_read_file on a file of those bytes. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../server/config.h"
#include "mp.h"

TestSuite(config_text, .fini = leak_check);

static const char text[] = "# a comment\n"
                           "max-frame = 64k\n"
                           "listen = \"127.0.0.1:7444\"\n"
                           "log_level = debug\n"
                           "request_timeout = 5s\n";

Test(config_text, parses_as_a_file_with_the_same_bytes_does) {
    server_config_t a, b;
    char why[512];
    cr_assert_eq(config_defaults(&a), 0);
    cr_assert_eq(config_defaults(&b), 0);
    cr_assert_eq(config_parse_text(&a, text, strlen(text), "mem", why, sizeof why), 0, "%s", why);

    char path[] = "/tmp/evs-config-text.XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    int rc = config_read_file(&b, path, why, sizeof why);
    unlink(path);
    cr_assert_eq(rc, 0, "%s", why);

    cr_assert_eq(a.max_frame, 65536);
    cr_assert_str_eq(a.listen, "127.0.0.1:7444");
    cr_assert_eq(a.request_timeout_ms, 5000);
    for (size_t i = 0; i < config_noptions; i++)
        cr_assert(config_same(&a, &b, &config_options[i]), "%s differs", config_options[i].name);
    config_free(&a);
    config_free(&b);
}

Test(config_text, an_error_names_the_text_and_its_line) {
    server_config_t cfg;
    char why[512];
    cr_assert_eq(config_defaults(&cfg), 0);
    const char *bad = "log_level = info\nmax_frame = 1\n";
    cr_assert_eq(config_parse_text(&cfg, bad, strlen(bad), "mem.conf", why, sizeof why), -1);
    cr_assert(strncmp(why, "mem.conf:2: max_frame:", 22) == 0, "%s", why);
    config_free(&cfg);
}

Test(config_text, empty_text_changes_nothing) {
    server_config_t cfg;
    char why[512];
    cr_assert_eq(config_defaults(&cfg), 0);
    cr_assert_eq(config_parse_text(&cfg, "", 0, "empty", why, sizeof why), 0);
    cr_assert_str_eq(cfg.listen, "127.0.0.1:7433");
    config_free(&cfg);
}

Test(config_text, a_line_without_a_newline_at_the_end_counts) {
    server_config_t cfg;
    char why[512];
    cr_assert_eq(config_defaults(&cfg), 0);
    /* Exactly the bytes, without a NUL after them: AddressSanitizer catches a read past len. */
    const char *line = "max_subscriptions = 7";
    char *t = malloc(strlen(line));
    memcpy(t, line, strlen(line));
    cr_assert_eq(config_parse_text(&cfg, t, strlen(line), "t", why, sizeof why), 0, "%s", why);
    free(t);
    cr_assert_eq(cfg.max_subscriptions, 7);
    config_free(&cfg);
}
