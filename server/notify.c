/* notify.c: sd_notify and its watchdog without libsystemd (see notify.h). */
#include "notify.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

int notify_send(const char *msg) {
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path) return 0;
    /* A path must be absolute; '@' stands for the NUL that starts an abstract name. */
    if (path[0] != '/' && path[0] != '@') return -EAFNOSUPPORT;
    size_t plen = strlen(path);
    struct sockaddr_un sa;
    if (plen > sizeof sa.sun_path - (path[0] == '/')) return -ENAMETOOLONG;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, plen);
    if (path[0] == '@') sa.sun_path[0] = '\0';
    /* An abstract name is exactly plen bytes long (no terminating NUL); a path may have one. */
    socklen_t salen =
        (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + (path[0] == '/' ? 1 : 0));

    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    ssize_t n = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
    int rc = n < 0 ? -errno : 1;
    close(fd);
    return rc;
}

/* ---------------------------------------------------------------- watchdog */

/* Parses a whole decimal number into *out; false for anything else (sign, spaces, overflow). */
static bool parse_decimal(const char *s, unsigned long long *out) {
    if (!s || *s < '0' || *s > '9') return false;
    errno = 0;
    char *end;
    *out = strtoull(s, &end, 10);
    return errno == 0 && *end == '\0';
}

uint64_t notify_watchdog_interval_ms(const char *usec, const char *pid, pid_t self) {
    unsigned long long us, p;
    if (!parse_decimal(usec, &us) || us == 0) return 0;
    /* $WATCHDOG_PID names the process meant; another one (a child that inherited the
     * environment) must not keep the service alive. */
    if (pid && *pid && (!parse_decimal(pid, &p) || p != (unsigned long long)self)) return 0;
    uint64_t ms = us / 2000;
    return ms ? ms : 1;
}

static void on_watchdog_tick(uv_timer_t *t) {
    static bool warned;
    (void)t;
    int rc = notify_send("WATCHDOG=1");
    if (rc < 0 && !warned) {
        warned = true;
        log_warn("main", "cannot send the watchdog keep-alive to $NOTIFY_SOCKET: %s",
                 strerror(-rc));
    }
}

uint64_t notify_watchdog_start(uv_timer_t *timer) {
    uint64_t ms =
        notify_watchdog_interval_ms(getenv("WATCHDOG_USEC"), getenv("WATCHDOG_PID"), getpid());
    if (ms) uv_timer_start(timer, on_watchdog_tick, 0, ms);
    return ms;
}
