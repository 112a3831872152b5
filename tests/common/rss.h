/* rss.h: a process's resident memory, for the tests that bound the daemon's memory. */
#ifndef EVS_TEST_RSS_H
#define EVS_TEST_RSS_H

#include <sys/types.h>

/* The resident memory of process pid in KB (VmRSS of /proc/PID/status), or -1. */
long rss_kb(pid_t pid);

/* The peak resident memory of process pid so far in KB (VmHWM), or -1: catches a spike that
 * was freed before the test could look. */
long rss_peak_kb(pid_t pid);

#endif
