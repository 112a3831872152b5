/* log.c: leveled logging to stderr, one line each, for the journal or with a time stamp (log.h). */
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int log_level = LOG_INFO;

/* Indexed by enum log_level: the word in each log line, in the config file and in --log-level. */
static const char *const level_names[] = {"error", "warn", "info", "debug"};
/* Indexed by enum log_level: the syslog priority (LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG). */
static const int level_priorities[] = {3, 4, 6, 7};
#define NLEVELS (int)(sizeof level_names / sizeof level_names[0])

int log_level_parse(const char *name) {
    for (int i = 0; i < NLEVELS; i++)
        if (strcmp(name, level_names[i]) == 0) return i;
    return -1;
}

const char *log_level_name(int level) {
    return level >= 0 && level < NLEVELS ? level_names[level] : "?";
}

bool log_fd_is_journal(int fd) {
    const char *js = getenv("JOURNAL_STREAM");
    if (!js || !*js) return false;
    uintmax_t dev, ino;
    int used = 0;
    if (sscanf(js, "%ju:%ju%n", &dev, &ino, &used) != 2 || js[used] != '\0') return false;
    struct stat st;
    if (fstat(fd, &st) != 0) return false;
    return (uintmax_t)st.st_dev == dev && (uintmax_t)st.st_ino == ino;
}

/* The line being built: len bytes at p, at most cap; cut once something did not fit. */
typedef struct line {
    char *p;
    size_t len, cap;
    bool cut;
} line_t;

static void put(line_t *l, const char *s, size_t n) {
    if (l->cut) return;
    if (l->len + n > l->cap) {
        l->cut = true;
        return;
    }
    memcpy(l->p + l->len, s, n);
    l->len += n;
}

/* Appends msg folded into one line: see log.h. */
static void put_folded(line_t *l, const char *msg) {
    bool any = false, brk = false, blank = false;
    for (const char *s = msg; *s && !l->cut; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\n' || c == '\r') {
            brk = true;
            continue;
        }
        if (c < 0x20 || c == 0x7f || (brk && c == ' ')) {
            blank = true;
            continue;
        }
        if (any && brk)
            put(l, " | ", 3);
        else if (any && blank)
            put(l, " ", 1);
        brk = blank = false;
        any = true;
        put(l, s, 1);
    }
}

size_t log_format(char *line, int level, const char *tag, const char *msg, bool journal,
                  const struct timespec *now) {
    line_t l = {.p = line, .len = 0, .cap = LOG_LINE_MAX - 1};
    char head[128];
    int n;
    if (level < 0 || level >= NLEVELS) level = LOG_ERROR;
    if (journal) {
        n = snprintf(head, sizeof head, "<%d>%s %.32s: ", level_priorities[level],
                     level_names[level], tag);
    } else {
        struct tm tm;
        time_t secs = now->tv_sec;
        gmtime_r(&secs, &tm);
        n = snprintf(head, sizeof head,
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %.32s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     now->tv_nsec / 1000000, level_names[level], tag);
    }
    put(&l, head, n > 0 && (size_t)n < sizeof head ? (size_t)n : 0);
    size_t body = l.len;
    put_folded(&l, msg);
    if (l.cut) {
        /* Room for "...", and no UTF-8 character cut in two. */
        if (l.len > l.cap - 3) l.len = l.cap - 3;
        while (l.len > body && ((unsigned char)l.p[l.len] & 0xC0) == 0x80)
            l.len--;
        memcpy(l.p + l.len, "...", 3);
        l.len += 3;
    }
    line[l.len++] = '\n';
    line[l.len] = '\0';
    return l.len;
}

void log_msg(int level, const char *tag, const char *fmt, ...) {
    if (level > log_level) return;
    /* stderr does not change while the daemon runs: look once. */
    static int journal = -1;
    if (journal < 0) journal = log_fd_is_journal(STDERR_FILENO);
    char small[LOG_LINE_MAX], line[LOG_LINE_MAX + 1], *msg = small, *big = NULL;
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    /* Folding can shorten a message (blank lines): format a long one whole before cutting it. */
    if (n >= (int)sizeof small && (big = malloc((size_t)n + 1))) {
        vsnprintf(big, (size_t)n + 1, fmt, again);
        msg = big;
    }
    va_end(again);
    va_end(ap);
    if (n < 0) snprintf(small, sizeof small, "(unformattable message: %s)", fmt);
    struct timespec now = {0, 0};
    if (!journal) clock_gettime(CLOCK_REALTIME, &now);
    size_t len = log_format(line, level, tag, msg, journal, &now);
    free(big);
    ssize_t w;
    do
        w = write(STDERR_FILENO, line, len);
    while (w < 0 && errno == EINTR);
}
