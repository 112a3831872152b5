/* log.h: leveled logging to stderr, one line per notable event, with a short context tag.
 * journald adds time stamps; a line is "LEVEL tag: message". */
#ifndef EVS_LOG_H
#define EVS_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

extern int log_level;

/* Parses "error", "warn", "info" or "debug" into its enum log_level; -1 for anything else. */
int log_level_parse(const char *name);

/* The name of an enum log_level, as log_level_parse takes it; "?" for any other value. */
const char *log_level_name(int level);

void log_msg(int level, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(tag, ...) log_msg(LOG_ERROR, tag, __VA_ARGS__)
#define log_warn(tag, ...) log_msg(LOG_WARN, tag, __VA_ARGS__)
#define log_info(tag, ...) log_msg(LOG_INFO, tag, __VA_ARGS__)
#define log_debug(tag, ...)                                                                        \
    do {                                                                                           \
        if (log_level >= LOG_DEBUG) log_msg(LOG_DEBUG, tag, __VA_ARGS__);                          \
    } while (0)

#endif
