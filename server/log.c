/* log.c: leveled logging to stderr, and the names of the levels. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int log_level = LOG_INFO;

/* Indexed by enum log_level: the word in each log line, in the config file and in --log-level. */
static const char *const level_names[] = {"error", "warn", "info", "debug"};
#define NLEVELS (int)(sizeof level_names / sizeof level_names[0])

int log_level_parse(const char *name) {
    for (int i = 0; i < NLEVELS; i++)
        if (strcmp(name, level_names[i]) == 0) return i;
    return -1;
}

const char *log_level_name(int level) {
    return level >= 0 && level < NLEVELS ? level_names[level] : "?";
}

void log_msg(int level, const char *tag, const char *fmt, ...) {
    if (level > log_level) return;
    char line[1024];
    int n = snprintf(line, sizeof line, "%s %s: ", level_names[level], tag);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}
