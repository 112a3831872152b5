/* log.h: leveled logging to stderr, one line per notable event, with a short context tag.
 *
 * A line is "PREFIX LEVEL tag: message". When stderr is the systemd journal ($JOURNAL_STREAM
 * names the device and inode of stderr, as systemd sets it for StandardError=journal), PREFIX is
 * the syslog priority in angle brackets ("<3>" error, "<4>" warn, "<6>" info, "<7>" debug), which
 * journald takes as the line's priority (so `journalctl -p warning` selects warnings and errors)
 * and strips; the journal adds the time. Otherwise PREFIX is the time in UTC, ISO 8601 with
 * milliseconds ("2026-12-03T07:45:12.345Z").
 *
 * A message is always one line: a line break (with the blanks after it) becomes " | ", a tab or
 * another control character a blank, and line breaks and blanks at either end are dropped, so
 * "ERROR: x\nDETAIL: y\n" logs as "ERROR: x | DETAIL: y". A line takes at most LOG_LINE_MAX
 * bytes with its newline; a longer message is cut (at a UTF-8 character boundary) and ends in
 * "...". Each line is written with one write(2), so lines of concurrent writers never mix. */
#ifndef EVS_LOG_H
#define EVS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* The longest line written, its newline included. */
#define LOG_LINE_MAX 2048

extern int log_level;

/* Parses "error", "warn", "info" or "debug" into its enum log_level; -1 for anything else. */
int log_level_parse(const char *name);

/* The name of an enum log_level, as log_level_parse takes it; "?" for any other value. */
const char *log_level_name(int level);

/* Whether fd is the stream $JOURNAL_STREAM ("DEV:INODE") names. */
bool log_fd_is_journal(int fd);

/* Formats one log line into line (LOG_LINE_MAX + 1 bytes: the line, its newline and a NUL) as
 * described above: with the journal's priority prefix when journal is true, else with the time
 * now. Returns the line's length with its newline (at most LOG_LINE_MAX). */
size_t log_format(char *line, int level, const char *tag, const char *msg, bool journal,
                  const struct timespec *now);

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
