/* fuzz_config.c: evstored's config-file parser on any text (config_parse_text, the parser of
 * config_read_file), on top of the defaults as config_load does it, then what the daemon does
 * with a parsed file: config_check, and config_format of every option as the `config` op shows
 * it (config_pack). Every error is a line that names the file; every shown value must be
 * terminated, and the map one the client accepts. */
#include "../../server/config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    server_config_t cfg;
    FUZZ_CHECK(config_defaults(&cfg) == 0, "defaults");
    char why[CONFIG_WHY_MAX];
    memset(why, 'x', sizeof why);
    if (config_parse_text(&cfg, (const char *)data, size, "fuzz.conf", why, sizeof why) != 0) {
        /* Every error on its own line, each naming the file, the last one maybe saying that
         * more were not shown. */
        FUZZ_CHECK(memchr(why, '\0', sizeof why), "the messages are not terminated");
        FUZZ_CHECK(config_errors_count(why) > 0, "an error without a message");
        for (const char *line = why; line;
             line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
            FUZZ_CHECK(strncmp(line, "fuzz.conf:", 10) == 0 ||
                           strncmp(line, "(more errors not shown)", 23) == 0,
                       "a message without the file: %s", line);
    } else {
        char msg[CONFIG_WHY_MAX];
        config_check(&cfg, msg, sizeof msg);
        for (size_t i = 0; i < config_noptions; i++) {
            char value[1024];
            memset(value, 'x', sizeof value);
            config_format(&cfg, &config_options[i], value, sizeof value);
            FUZZ_CHECK(memchr(value, '\0', sizeof value), "%s: unterminated",
                       config_options[i].name);
        }
        codec_buf_t b;
        codec_buf_init(&b);
        msgpack_packer pk;
        codec_packer_init(&pk, &b);
        config_pack(&pk, &cfg);
        const char *bad = NULL;
        FUZZ_CHECK(!b.failed && codec_prescan(b.data, b.len, CODEC_MAX_DEPTH, &bad) == 0,
                   "the config map: %s", bad ? bad : "out of memory");
        codec_buf_free(&b);
    }
    config_free(&cfg);
    return 0;
}
