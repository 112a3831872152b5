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

/* Parses text on top of the defaults; returns config_parse_text's result, why filled. */
static int parse(server_config_t *cfg, const char *text, char *why, size_t whylen) {
    cr_assert_eq(config_defaults(cfg), 0);
    return config_parse_text(cfg, text, strlen(text), "c.conf", why, whylen);
}

Test(config_text, every_error_is_reported_each_on_its_own_line) {
    server_config_t cfg;
    char why[CONFIG_WHY_MAX];
    const char *bad = "max_frame = 1\nlisten = 127.0.0.1:7444\nnope = 1\nlog_level = loud\n";
    cr_assert_eq(parse(&cfg, bad, why, sizeof why), -1);
    cr_assert_str_eq(why, "c.conf:1: max_frame: \"1\" is not a size from 64 to 4294967295 bytes (a "
                          "k, M or G suffix multiplies by 1024)\n"
                          "c.conf:3: unknown option \"nope\" (evstored --help lists them)\n"
                          "c.conf:4: log_level: \"loud\" is not one of error, warn, info, debug");
    cr_assert_eq(config_errors_count(why), 3);
    cr_assert_str_eq(cfg.listen, "127.0.0.1:7444", "the good lines between are applied");
    config_free(&cfg);
}

Test(config_text, errors_past_the_buffer_end_in_a_line_that_says_so) {
    server_config_t cfg;
    char why[300];
    char text[4000] = "";
    for (int i = 0; i < 100; i++)
        strcat(text, "max_frame = 1\n");
    cr_assert_eq(parse(&cfg, text, why, sizeof why), -1);
    cr_assert_lt(strlen(why), sizeof why);
    const char *last = strrchr(why, '\n');
    cr_assert_not_null(last);
    cr_assert_str_eq(last + 1, "(more errors not shown)");
    cr_assert(strncmp(why, "c.conf:1: max_frame:", 20) == 0, "%s", why);
    config_free(&cfg);
}

Test(config_text, an_inline_comment_ends_an_unquoted_value) {
    server_config_t cfg;
    char why[CONFIG_WHY_MAX];
    const char *text = "listen = 127.0.0.1:7444 # the port\n"
                       "store = memory\t# for now\n"
                       "unix_group = \"a #b\"   # quoted: kept\n"
                       "unix = /tmp/a#b\n";
    cr_assert_eq(parse(&cfg, text, why, sizeof why), 0, "%s", why);
    cr_assert_str_eq(cfg.listen, "127.0.0.1:7444");
    cr_assert_str_eq(cfg.store_url, "memory");
    cr_assert_str_eq(cfg.unix_group, "a #b");
    cr_assert_str_eq(cfg.unix_path, "/tmp/a#b", "a '#' inside a word is not a comment");
    config_free(&cfg);
}

Test(config_text, text_after_a_closing_quote_is_an_error) {
    server_config_t cfg;
    char why[CONFIG_WHY_MAX];
    cr_assert_eq(parse(&cfg, "store = \"memory\" x\nlisten = \"1.2.3.4:5\n", why, sizeof why), -1);
    cr_assert_str_eq(why, "c.conf:1: store: text after the closing quote: x\n"
                          "c.conf:2: listen: unterminated quote");
    config_free(&cfg);
}

/* config_set on the store option: 0 or -1, with the message in why. */
static int set_store(const char *value, char *why, size_t whylen) {
    server_config_t cfg;
    cr_assert_eq(config_defaults(&cfg), 0);
    int rc = config_set(&cfg, config_find("store"), value, why, whylen);
    config_free(&cfg);
    return rc;
}

Test(config_text, a_store_string_libpq_would_refuse_is_refused) {
    static const char *const bad[][2] = {
        {"host=db bogusparam=1", "invalid connection option \"bogusparam\""},
        {"postgresql://db/x?bogus=1", "invalid URI query parameter: \"bogus\""},
        {"host='db", "unterminated quoted string"},
        {"host=db port=notaport", "port: \"notaport\" is not a port number from 1 to 65535"},
        {"postgresql://db:0/x", "port: \"0\" is not a port number"},
        {"postgresql://db:65536/x", "port: \"65536\" is not a port number"},
        {"host=a,b port=1,2,3", "3 ports for 2 hosts"},
        {"host=db sslmode=sometimes", "sslmode: \"sometimes\" is not one of disable"},
        {"host=db target_session_attrs=any-old", "target_session_attrs: \"any-old\""},
        {"host=db connect_timeout=soon", "connect_timeout: \"soon\" is not a whole number"},
        {"host=db keepalives=2", "keepalives: \"2\" is not a whole number from 0 to 1"},
        {"mysql://db/x", "is neither \"memory\" nor a PostgreSQL URL"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char why[1024] = "";
        cr_assert_eq(set_store(bad[i][0], why, sizeof why), -1, "%s accepted", bad[i][0]);
        cr_assert(strncmp(why, "store: ", 7) == 0, "%s", why);
        cr_assert(strstr(why, bad[i][1]), "%s: %s", bad[i][0], why);
    }
}

Test(config_text, a_store_error_never_shows_a_password) {
    char why[1024];
    cr_assert_eq(set_store("postgresq://u:s3cret@db/x", why, sizeof why), -1);
    cr_assert_null(strstr(why, "s3cret"), "%s", why);
    cr_assert_eq(set_store("postgresql://u:s3cret@db:99999/x", why, sizeof why), -1);
    cr_assert_null(strstr(why, "s3cret"), "%s", why);
    cr_assert_eq(set_store("host=db password=s3cret bogus=1", why, sizeof why), -1);
    cr_assert_null(strstr(why, "s3cret"), "%s", why);
}

Test(config_text, the_store_strings_libpq_accepts_are_accepted) {
    static const char *const good[] = {
        "memory",
        "memory://",
        "postgresql://evstore@localhost/evstore",
        "postgres://u:p@db:5432,db2:5433/x?sslmode=verify-full&connect_timeout=5",
        "postgresql:///evstore?host=/run/postgresql",
        "host=db port=5432 dbname=evstore user=evstore application_name=evstored",
        "host=a,b port=1,2",
        "host=a,b port=5432",
        "host=db port=' 5432 ' keepalives=1 target_session_attrs=read-write",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char why[1024] = "";
        cr_assert_eq(set_store(good[i], why, sizeof why), 0, "%s: %s", good[i], why);
    }
}

Test(config_text, load_names_the_flag_and_the_environment_of_an_error) {
    server_config_t cfg;
    char why[CONFIG_WHY_MAX];
    config_override_t o[] = {{config_find("max_frame"), "3"}, {config_find("listen"), "x"}};
    setenv("EVSTORE_STORE", "host=db port=x", 1);
    int rc = config_load(&cfg, NULL, o, 2, why, sizeof why);
    unsetenv("EVSTORE_STORE");
    cr_assert_eq(rc, -1);
    cr_assert_eq(config_errors_count(why), 3, "%s", why);
    cr_assert(strstr(why, "$EVSTORE_STORE: port: \"x\" is not a port number"), "%s", why);
    cr_assert(strstr(why, "\n--max-frame: \"3\" is not a size"), "%s", why);
    cr_assert(strstr(why, "\n--listen: \"x\" is not HOST:PORT"), "%s", why);
}

Test(config_text, a_store_flag_replaces_the_environment_unchecked) {
    server_config_t cfg;
    char why[CONFIG_WHY_MAX];
    config_override_t o[] = {{config_find("store"), "memory"}};
    setenv("EVSTORE_STORE", "bogus", 1);
    int rc = config_load(&cfg, NULL, o, 1, why, sizeof why);
    unsetenv("EVSTORE_STORE");
    cr_assert_eq(rc, 0, "%s", why);
    cr_assert_str_eq(cfg.store_url, "memory");
    config_free(&cfg);
}
