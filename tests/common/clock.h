/* clock.h: the one clock of the tests and benchmarks. */
#ifndef EVS_TEST_CLOCK_H
#define EVS_TEST_CLOCK_H

#include <stdint.h>

/* Milliseconds and nanoseconds of a monotonic clock. */
int64_t now_ms(void);
uint64_t now_ns(void);

/* Sleeps for ms milliseconds. Only for pacing and polling loops that wait for a condition, never
 * in place of one. */
void sleep_ms(int ms);

#endif
