/* rss.c: a process's resident memory (see rss.h). */
#include "rss.h"

#include <stdio.h>

/* The value in kB of the line "field: N kB" of /proc/PID/status, or -1. */
static long status_kb(pid_t pid, const char *field) {
    char path[64], line[256], format[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    snprintf(format, sizeof format, "%s: %%ld kB", field);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, format, &kb) == 1) break;
    fclose(f);
    return kb;
}

long rss_kb(pid_t pid) {
    return status_kb(pid, "VmRSS");
}

long rss_peak_kb(pid_t pid) {
    return status_kb(pid, "VmHWM");
}

int rss_peak_reset(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/clear_refs", (int)pid);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    int rc = fputs("5", f) < 0 ? -1 : 0;
    if (fclose(f) != 0) rc = -1;
    return rc;
}
