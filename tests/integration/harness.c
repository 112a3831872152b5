/* harness.c: starting and stopping a real evstored for integration tests (see harness.h).
 *
 * The daemon is started with fork/exec as
 *   $EVSTORED_BIN --listen 127.0.0.1:PORT --store $EVSTORE_TEST_STORE --log-level LEVEL [extra]
 * on a port found free by binding 127.0.0.1:0. Another process may take that port before the
 * daemon binds it; the daemon then exits at once and the start is retried on a new port. The
 * daemon is ready when it answers a ping. It inherits stderr, so its logs and any sanitizer
 * report appear in the test output; LEVEL is $EVSTORE_TEST_LOG_LEVEL or "warn". It gets
 * PR_SET_PDEATHSIG, so a test process that dies (a crash, a Criterion timeout) takes its daemon
 * with it. Under ASan a leak makes the daemon's exit status, which test_daemon_stop returns,
 * non-zero. */
#include <libpq-fe.h>

#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rawio.h"

#define START_TIMEOUT_MS 10000
#define STOP_TIMEOUT_MS 10000
#define MAX_ARGS 64

static const char *env_or(const char *name, const char *dflt) {
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* A loopback port nobody listens on right now, or -1. */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

int test_connect_raw(const test_daemon_t *d) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int test_daemon_alive(const test_daemon_t *d) {
    if (d->pid <= 0) return 0;
    int fd = test_connect_raw(d);
    if (fd < 0) return 0;
    int ok = raw_ping(fd, 424242, 5000) == 0;
    close(fd);
    return ok;
}

/* The store the daemons of this test process use. On PostgreSQL each test process (Criterion
 * runs every test in a process of its own) gets a database of its own, created on first use
 * in the cluster that $EVSTORE_TEST_STORE names, so that a test may count what the whole store
 * holds, and tests running in parallel never see each other's events. All daemons of one test
 * (a restart, two daemons on one database) share it. */
static const char *test_store(void) {
    static char url[1024];
    const char *base = env_or("EVSTORE_TEST_STORE", "memory");
    if (strncmp(base, "postgresql://", 13) != 0 && strncmp(base, "postgres://", 11) != 0)
        return base;
    if (url[0]) return url;
    const char *path = strchr(strstr(base, "://") + 3, '/');
    const char *query = strchr(base, '?');
    if (!path || (query && query < path)) return base; /* no database in the URL: share it */
    char db[64];
    snprintf(db, sizeof db, "evs_test_%d_%d", (int)getpid(), (int)(now_ms() % 100000));
    PGconn *pg = PQconnectdb(base);
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
    PGresult *r = PQstatus(pg) == CONNECTION_OK ? PQexec(pg, sql) : NULL;
    bool ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "harness: cannot create database %s (%s): tests share the database\n",
                db, PQerrorMessage(pg));
    PQclear(r);
    PQfinish(pg);
    if (!ok) return base;
    snprintf(url, sizeof url, "%.*s/%s%s", (int)(path - base), base, db, query ? query : "");
    return url;
}

/* Forks and execs the daemon on port; returns its pid or -1. */
static pid_t spawn(const char *bin, int port, const char *const *extra) {
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    const char *argv[MAX_ARGS + 1];
    int n = 0;
    argv[n++] = bin;
    argv[n++] = "--listen";
    argv[n++] = listen;
    argv[n++] = "--store";
    argv[n++] = test_store();
    argv[n++] = "--log-level";
    argv[n++] = env_or("EVSTORE_TEST_LOG_LEVEL", "warn");
    for (int i = 0; extra && extra[i]; i++) {
        if (n == MAX_ARGS) {
            fprintf(stderr, "harness: too many extra arguments\n");
            return -1;
        }
        argv[n++] = extra[i];
    }
    argv[n] = NULL;

    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(126); /* the parent died before prctl */
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        /* Criterion may have blocked or ignored signals in its worker: undo it for the daemon. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        execv(bin, (char *const *)argv);
        fprintf(stderr, "harness: cannot run %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    return pid;
}

/* True when a read-all of one event is answered ok: the store serves (on PostgreSQL, reads wait
 * for the live feed's start, so a subscription without "after" is accepted from then on). */
static bool store_serves(int fd) {
    rq_t r;
    rq_begin(&r, "read-all", 2, 1);
    pk_str(&r.pk, "limit");
    msgpack_pack_uint64(&r.pk, 1);
    int rc = raw_send_rq(fd, &r);
    rq_free(&r);
    reply_t rep;
    if (rc != 0 || raw_recv(fd, 2000, &rep) != 0) return false;
    bool ok = reply_ok(&rep);
    reply_free(&rep);
    return ok;
}

/* Waits until the daemon answers a ping and its store serves a read, as a service manager
 * waits for READY=1: 0; 1 when it exited first (*status set); -1 when it answered no ping in
 * time. A daemon that answers pings but whose store does not serve within the time is taken as
 * ready anyway (a test may want exactly that). */
static int wait_ready(test_daemon_t *d, int *status) {
    int64_t deadline = now_ms() + START_TIMEOUT_MS;
    bool pinged = false;
    while (now_ms() < deadline) {
        if (waitpid(d->pid, status, WNOHANG) == d->pid) return 1;
        int fd = test_connect_raw(d);
        if (fd >= 0) {
            bool served = false;
            if (raw_ping(fd, 1, 2000) == 0) {
                pinged = true;
                served = store_serves(fd);
            }
            close(fd);
            if (served) return 0;
        }
        sleep_ms(20);
    }
    return pinged ? 0 : -1;
}

int test_daemon_start(test_daemon_t *d, const char *const *extra_args) {
    memset(d, 0, sizeof *d);
    const char *bin = env_or("EVSTORED_BIN", "build/san/bin/evstored");
    for (int i = 0; extra_args && extra_args[i]; i++)
        if (strcmp(extra_args[i], "--unix") == 0 && extra_args[i + 1])
            snprintf(d->unix_path, sizeof d->unix_path, "%s", extra_args[i + 1]);

    for (int attempt = 0; attempt < 5; attempt++) {
        d->port = free_port();
        if (d->port < 0) return -1;
        snprintf(d->addr, sizeof d->addr, "127.0.0.1:%d", d->port);
        d->pid = spawn(bin, d->port, extra_args);
        if (d->pid < 0) return -1;
        int status = 0;
        int rc = wait_ready(d, &status);
        if (rc == 0) return 0;
        if (rc < 0) {
            fprintf(stderr, "harness: %s did not answer a ping within %d ms\n", bin,
                    START_TIMEOUT_MS);
            kill(d->pid, SIGKILL);
            waitpid(d->pid, NULL, 0);
            d->pid = 0;
            return -1;
        }
        /* It exited before answering: most likely the port was taken meanwhile. */
        fprintf(stderr, "harness: %s exited (status 0x%x) before answering; retrying\n", bin,
                status);
        d->pid = 0;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127) return -1;
    }
    return -1;
}

int test_daemon_stop(test_daemon_t *d) {
    if (d->pid <= 0) return -1;
    pid_t pid = d->pid;
    d->pid = 0;
    int status = 0;
    if (kill(pid, SIGTERM) != 0) {
        waitpid(pid, &status, 0);
        return -1;
    }
    int64_t deadline = now_ms() + STOP_TIMEOUT_MS;
    while (now_ms() < deadline) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            if (WIFEXITED(status)) return WEXITSTATUS(status);
            fprintf(stderr, "harness: evstored died of signal %d\n", WTERMSIG(status));
            return -1;
        }
        if (w < 0 && errno != EINTR) return -1;
        sleep_ms(10);
    }
    fprintf(stderr, "harness: evstored did not exit within %d ms of SIGTERM; killing it\n",
            STOP_TIMEOUT_MS);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}
