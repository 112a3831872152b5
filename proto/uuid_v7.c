/* uuid_v7.c: time-ordered UUIDs (version 7, RFC 9562 section 5.7), monotonic in a process.
 *
 * Layout (big-endian, 128 bits):
 *   48 bits  unix_ts_ms   milliseconds since the Unix epoch
 *    4 bits  version      0111
 *   12 bits  counter      the counter's high 12 bits (rand_a)
 *    2 bits  variant      10
 *   30 bits  counter      the counter's low 30 bits (top of rand_b)
 *   32 bits  random       fresh random bits for every id
 *
 * The 42-bit counter is RFC 9562's "Fixed Bit-Length Dedicated Counter" (method 1, section
 * 6.2): when the millisecond moves on it is seeded from random bits with its top bit clear (so
 * that at least 2^41 ids fit in the millisecond); within a millisecond it goes up by one. When the
 * clock goes backwards, or the counter would overflow, the last timestamp is kept or moved on by
 * one millisecond (section 6.2, "Monotonic Error Checking"): every id a process makes is then
 * greater, as 16 unsigned bytes, than the one before it, whatever the thread. A forked child
 * starts a sequence of its own (its counter is seeded again), and the 32 random bits of each id
 * keep two processes apart within one millisecond. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "event.h"

#define COUNTER_BITS 42
#define COUNTER_MAX ((UINT64_C(1) << COUNTER_BITS) - 1)
#define TS_MAX ((UINT64_C(1) << 48) - 1)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t last_ms; /* the timestamp of the last id made */
static uint64_t counter; /* the counter of the last id made */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void forget_after_fork(void) {
    pthread_mutex_init(&lock, NULL);
    last_ms = counter = 0;
}

static void install_atfork(void) {
    pthread_atfork(NULL, NULL, forget_after_fork);
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec < 0) return 0;
    return ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000) & TS_MAX;
}

/* A counter seed from 6 random bytes: 41 bits, the top bit of the 42 clear. */
static uint64_t seed_from(const uint8_t r[6]) {
    uint64_t v = 0;
    for (int i = 0; i < 6; i++)
        v = v << 8 | r[i];
    return v & (COUNTER_MAX >> 1);
}

void evs_uuid_v7_stamp(uint8_t id[16]) {
    pthread_once(&atfork_once, install_atfork);
    uint64_t ms = now_ms(), seed = seed_from(id), ts, c;
    pthread_mutex_lock(&lock);
    if (ms > last_ms) {
        last_ms = ms;
        counter = seed;
    } else if (counter < COUNTER_MAX) {
        counter++; /* the same millisecond, or the clock went back: keep the last one */
    } else {
        last_ms++; /* the counter is spent: borrow the next millisecond */
        counter = seed;
    }
    ts = last_ms;
    c = counter;
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < 6; i++)
        id[i] = (uint8_t)(ts >> (40 - 8 * i));
    id[6] = (uint8_t)(0x70 | (c >> 38));
    id[7] = (uint8_t)(c >> 30);
    id[8] = (uint8_t)(0x80 | ((c >> 24) & 0x3f));
    id[9] = (uint8_t)(c >> 16);
    id[10] = (uint8_t)(c >> 8);
    id[11] = (uint8_t)c;
    /* id[12..15] keep their random bits */
}

int evs_uuid_generate_v7(uint8_t *ids, size_t n) {
    size_t len = n * 16, got = 0;
    while (got < len) {
        ssize_t r = getrandom(ids + got, len - got, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        got += (size_t)r;
    }
    for (size_t i = 0; i < n; i++)
        evs_uuid_v7_stamp(ids + 16 * i);
    return 0;
}
