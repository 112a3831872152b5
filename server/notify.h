/* notify.h: the systemd readiness protocol (sd_notify) and its watchdog, written here so that
 * evstored needs no libsystemd.
 *
 * When systemd starts a Type=notify service it sets $NOTIFY_SOCKET to a Unix datagram socket:
 * a path, or an abstract name written with a leading '@'. The daemon sends newline-separated
 * "KEY=VALUE" assignments there: READY=1 once it serves, RELOADING=1 and READY=1 around a
 * reload, STOPPING=1 when it starts shutting down, STATUS=... a line for `systemctl status`.
 * Without $NOTIFY_SOCKET every call does nothing.
 *
 * With WatchdogSec= in the unit, systemd also sets $WATCHDOG_USEC (and $WATCHDOG_PID, the pid
 * meant) and kills the service when no WATCHDOG=1 arrives within that many microseconds. The
 * keep-alive is sent from a timer on the event loop, so it stops when the loop is stuck, and
 * systemd then restarts the daemon (Restart=on-failure). */
#ifndef EVS_NOTIFY_H
#define EVS_NOTIFY_H

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

/* Sends msg (one or more "KEY=VALUE" lines) in one datagram to $NOTIFY_SOCKET. Returns 1 when
 * sent, 0 when $NOTIFY_SOCKET is unset or empty, or a negative errno value when the socket
 * address is unusable or the send failed (the caller logs it; systemd then times the unit
 * out). */
int notify_send(const char *msg);

/* The interval in milliseconds at which WATCHDOG=1 is due, from the values of $WATCHDOG_USEC
 * (usec) and $WATCHDOG_PID (pid, may be NULL) for the process self: half of usec (at least
 * 1 ms), as sd_watchdog_enabled(3) advises; 0 when no keep-alive is asked of this process
 * (usec unset, empty, 0 or not a decimal number; pid set and not self or not a number). */
uint64_t notify_watchdog_interval_ms(const char *usec, const char *pid, pid_t self);

/* Starts timer (initialised by the caller on its loop, closed by the caller) sending WATCHDOG=1
 * every notify_watchdog_interval_ms of the environment, the first one at once. A failed send
 * is logged once. Returns the interval, or 0 when systemd asks for no keep-alive (the timer
 * is left stopped). */
uint64_t notify_watchdog_start(uv_timer_t *timer);

#endif
