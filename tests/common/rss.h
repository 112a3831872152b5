/* rss.h: a process's resident memory, for the tests that bound the daemon's memory. */
#ifndef EVS_TEST_RSS_H
#define EVS_TEST_RSS_H

#include <sys/types.h>

/* The resident memory of process pid in KB (VmRSS of /proc/PID/status), or -1. */
long rss_kb(pid_t pid);

/* The peak resident memory of process pid in KB since it started or since the last
 * rss_peak_reset (VmHWM), or -1. */
long rss_peak_kb(pid_t pid);

/* Resets the peak of process pid to its current resident memory (writes 5 to
 * /proc/PID/clear_refs): how a test measures the peak of one request. 0, or -1. */
int rss_peak_reset(pid_t pid);

#endif
