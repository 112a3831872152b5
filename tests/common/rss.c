/* rss.c: a process's resident memory (see rss.h). */
#include "rss.h"

#include <stdio.h>

/* One "FIELD: N kB" line of /proc/PID/status, or -1. */
static long status_kb(pid_t pid, const char *field) {
    char path[64], line[256], want[64];
    snprintf(want, sizeof want, "%s: %%ld kB", field);
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, want, &kb) == 1) break;
    fclose(f);
    return kb;
}

long rss_kb(pid_t pid) {
    return status_kb(pid, "VmRSS");
}

long rss_peak_kb(pid_t pid) {
    return status_kb(pid, "VmHWM");
}
