/* notify.h: the systemd readiness protocol (sd_notify), written here so that evstored needs no
 * libsystemd.
 *
 * When systemd starts a Type=notify service it sets $NOTIFY_SOCKET to a Unix datagram socket:
 * a path, or an abstract name written with a leading '@'. The daemon sends newline-separated
 * "KEY=VALUE" assignments there: READY=1 once it serves, RELOADING=1 and READY=1 around a
 * reload, STOPPING=1 when it starts shutting down, STATUS=... a line for `systemctl status`.
 * Without $NOTIFY_SOCKET every call does nothing. */
#ifndef EVS_NOTIFY_H
#define EVS_NOTIFY_H

/* Sends msg (one or more "KEY=VALUE" lines) in one datagram to $NOTIFY_SOCKET. Returns 1 when
 * sent, 0 when $NOTIFY_SOCKET is unset or empty, or a negative errno value when the socket
 * address is unusable or the send failed (the caller logs it; systemd then times the unit
 * out). */
int notify_send(const char *msg);

#endif
