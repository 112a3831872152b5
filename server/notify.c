/* notify.c: sd_notify without libsystemd (see notify.h). */
#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

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
