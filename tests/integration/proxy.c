/* proxy.c: a TCP proxy in a thread of the test process (see proxy.h). */
#include "proxy.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/rawio.h"

#define MAX_PAIRS 16

static int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void *proxy_run(void *arg) {
    proxy_t *p = arg;
    int a[MAX_PAIRS], b[MAX_PAIRS], n = 0, cuts_done = 0;
    char buf[65536];
    while (!atomic_load(&p->stop)) {
        if (atomic_load(&p->cuts_requested) != cuts_done) {
            cuts_done = atomic_load(&p->cuts_requested);
            for (int i = 0; i < n; i++) {
                close(a[i]);
                close(b[i]);
            }
            n = 0;
        }
        struct pollfd fds[2 + 2 * MAX_PAIRS];
        fds[0] = (struct pollfd){.fd = p->listen_fd, .events = POLLIN};
        fds[1] = (struct pollfd){.fd = p->wake[0], .events = POLLIN};
        for (int i = 0; i < n; i++) {
            fds[2 + 2 * i] = (struct pollfd){.fd = a[i], .events = POLLIN};
            fds[3 + 2 * i] = (struct pollfd){.fd = b[i], .events = POLLIN};
        }
        if (poll(fds, (nfds_t)(2 + 2 * n), 100) <= 0) continue;
        if (fds[1].revents) {
            char c;
            (void)!read(p->wake[0], &c, 1);
        }
        for (int i = n - 1; i >= 0; i--) {
            for (int side = 0; side < 2; side++) {
                struct pollfd *f = &fds[2 + 2 * i + side];
                if (!f->revents) continue;
                ssize_t got = read(f->fd, buf, sizeof buf);
                int to = side ? a[i] : b[i];
                if (got <= 0 || raw_send(to, buf, (size_t)got) != 0) {
                    close(a[i]);
                    close(b[i]);
                    a[i] = a[n - 1];
                    b[i] = b[n - 1];
                    n--;
                    break;
                }
            }
        }
        if (fds[0].revents && n < MAX_PAIRS) {
            int c = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
            int s = c >= 0 ? connect_to(atomic_load(&p->target_port)) : -1;
            if (c >= 0 && s >= 0) {
                a[n] = c;
                b[n] = s;
                n++;
            } else {
                if (c >= 0) close(c);
            }
        }
    }
    for (int i = 0; i < n; i++) {
        close(a[i]);
        close(b[i]);
    }
    return NULL;
}

void proxy_start(proxy_t *p, int target) {
    memset(p, 0, sizeof *p);
    p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    cr_assert_eq(bind(p->listen_fd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(p->listen_fd, 16), 0);
    getsockname(p->listen_fd, (struct sockaddr *)&sa, &len);
    p->port = ntohs(sa.sin_port);
    atomic_store(&p->target_port, target);
    cr_assert_eq(pipe2(p->wake, O_CLOEXEC), 0);
    pthread_create(&p->thread, NULL, proxy_run, p);
}

/* Closes every connection through the proxy (new ones are still accepted). */
void proxy_cut(proxy_t *p) {
    atomic_fetch_add(&p->cuts_requested, 1);
    (void)!write(p->wake[1], "x", 1);
}

void proxy_stop(proxy_t *p) {
    atomic_store(&p->stop, true);
    (void)!write(p->wake[1], "x", 1);
    pthread_join(p->thread, NULL);
    close(p->listen_fd);
    close(p->wake[0]);
    close(p->wake[1]);
}
