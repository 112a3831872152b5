/* daemon.c: starting and stopping a real evstored (see daemon.h). */
#include "daemon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "db.h"
#include "rawio.h"

#define START_TIMEOUT_MS 20000
#define STOP_TIMEOUT_MS 20000
#define MAX_ARGS 64

static const char *env_or(const char *name, const char *dflt) {
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

const char *test_evstored_bin(void) {
    static char path[PATH_MAX];
    const char *env = getenv("EVSTORED_BIN");
    if (env && *env) return env;
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return "build/san/bin/evstored";
    self[n] = '\0';
    snprintf(path, sizeof path, "%s/bin/evstored", dirname(dirname(self)));
    return path;
}

const char *test_store(void) {
    static test_db_t db;
    const char *base = env_or("EVSTORE_TEST_STORE", "memory");
    if (strncmp(base, "postgresql://", 13) != 0 && strncmp(base, "postgres://", 11) != 0)
        return base;
    if (db.name[0]) return db.url;
    char err[512];
    if (test_db_create(&db, base, "evs_test", err, sizeof err) != 0) {
        fprintf(stderr, "daemon: cannot create a database (%s): tests share the database\n", err);
        return base;
    }
    return db.url;
}

int test_free_port(void) {
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
    return raw_connect_tcp(d->port);
}

int test_daemon_alive(const test_daemon_t *d) {
    if (d->pid <= 0) return 0;
    int fd = test_connect_raw(d);
    if (fd < 0) return 0;
    int ok = raw_ping(fd, 424242, 5000) == 0;
    close(fd);
    return ok;
}

/* Forks and execs argv[0] with argv; returns its pid or -1. */
static pid_t spawn(const char *const *argv) {
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
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "daemon: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

/* True when a read-all of one event is answered ok: the store serves (on PostgreSQL, reads wait
 * for the live feed's start, so a subscription without "after" is accepted from then on). */
const char *test_daemon_token;

static bool store_serves(int fd) {
    rq_t r;
    if (test_daemon_token) {
        rq_begin(&r, "auth", 3, 1);
        pk_str(&r.pk, "token");
        pk_str(&r.pk, test_daemon_token);
        int rc = raw_send_rq(fd, &r);
        rq_free(&r);
        reply_t rep = {0};
        bool ok = rc == 0 && raw_recv(fd, 2000, &rep) == 0 && reply_ok(&rep);
        reply_free(&rep);
        if (!ok) return false;
    }
    rq_begin(&r, "read-all", 2, 1);
    pk_str(&r.pk, "limit");
    msgpack_pack_uint64(&r.pk, 1);
    int rc = raw_send_rq(fd, &r);
    rq_free(&r);
    if (rc != 0) return false;
    reply_t rep;
    bool ok = raw_recv(fd, 2000, &rep) == 0 && reply_ok(&rep);
    reply_free(&rep);
    return ok;
}

/* Waits until the daemon answers a ping and its store serves a read, as a service manager
 * waits for READY=1: 0; 1 when it exited first (*status set); -1 when it answered no ping in
 * time. */
static int wait_ready(test_daemon_t *d, int *status, bool store_too) {
    int64_t deadline = now_ms() + START_TIMEOUT_MS;
    bool pinged = false;
    while (now_ms() < deadline) {
        if (waitpid(d->pid, status, WNOHANG) == d->pid) return 1;
        int fd = test_connect_raw(d);
        if (fd >= 0) {
            bool served = false;
            if (raw_ping(fd, 1, 2000) == 0) {
                pinged = true;
                served = !store_too || store_serves(fd);
            }
            close(fd);
            if (served) return 0;
        }
        sleep_ms(20);
    }
    return pinged ? 0 : -1;
}

int test_daemon_start(test_daemon_t *d, const char *const *extra_args) {
    return test_daemon_launch(d, test_store(), false, extra_args);
}

static int launch(test_daemon_t *d, const char *store, bool own_unix, const char *const *extra_args,
                  bool wait_store);

int test_daemon_launch(test_daemon_t *d, const char *store, bool own_unix,
                       const char *const *extra_args) {
    return launch(d, store, own_unix, extra_args, true);
}

int test_daemon_launch_pinged(test_daemon_t *d, const char *store, const char *const *extra_args) {
    return launch(d, store, false, extra_args, false);
}

static int launch(test_daemon_t *d, const char *store, bool own_unix, const char *const *extra_args,
                  bool wait_store) {
    memset(d, 0, sizeof *d);
    const char *argv[MAX_ARGS + 1];
    int n = 0;
    argv[n++] = test_evstored_bin();
    argv[n++] = "--listen";
    argv[n++] = d->addr;
    argv[n++] = "--store";
    argv[n++] = store;
    argv[n++] = "--log-level";
    argv[n++] = env_or("EVSTORE_TEST_LOG_LEVEL", "warn");
    if (own_unix) {
        snprintf(d->dir, sizeof d->dir, "/tmp/evs-test.XXXXXX");
        if (!mkdtemp(d->dir)) return -1;
        snprintf(d->unix_path, sizeof d->unix_path, "%s/evstored.sock", d->dir);
        argv[n++] = "--unix";
        argv[n++] = d->unix_path;
    }
    for (int i = 0; extra_args && extra_args[i]; i++) {
        if (n == MAX_ARGS) {
            fprintf(stderr, "daemon: too many extra arguments\n");
            return -1;
        }
        if (strcmp(extra_args[i], "--unix") == 0 && extra_args[i + 1])
            snprintf(d->unix_path, sizeof d->unix_path, "%s", extra_args[i + 1]);
        argv[n++] = extra_args[i];
    }
    argv[n] = NULL;

    for (int attempt = 0; attempt < 5; attempt++) {
        d->port = test_free_port();
        if (d->port < 0) return -1;
        snprintf(d->addr, sizeof d->addr, "127.0.0.1:%d", d->port);
        d->pid = spawn(argv);
        if (d->pid < 0) return -1;
        int status = 0;
        int rc = wait_ready(d, &status, wait_store);
        if (rc == 0) return 0;
        if (rc < 0) {
            fprintf(stderr, "daemon: %s did not answer a ping within %d ms\n", argv[0],
                    START_TIMEOUT_MS);
            kill(d->pid, SIGKILL);
            waitpid(d->pid, NULL, 0);
            d->pid = 0;
            return -1;
        }
        /* It exited before answering: most likely the port was taken meanwhile. */
        fprintf(stderr, "daemon: %s exited (status 0x%x) before answering; retrying\n", argv[0],
                status);
        d->pid = 0;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127) return -1;
    }
    return -1;
}

/* Removes the socket and temporary folder that test_daemon_launch made. */
static void remove_dir(test_daemon_t *d) {
    if (!d->dir[0]) return;
    unlink(d->unix_path);
    rmdir(d->dir);
    d->dir[0] = '\0';
}

int test_daemon_stop(test_daemon_t *d) {
    if (d->pid <= 0) {
        remove_dir(d);
        return -1;
    }
    pid_t pid = d->pid;
    d->pid = 0;
    int status = 0, rc = -1;
    if (kill(pid, SIGTERM) != 0) {
        waitpid(pid, &status, 0);
        remove_dir(d);
        return -1;
    }
    int64_t deadline = now_ms() + STOP_TIMEOUT_MS;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            if (WIFEXITED(status))
                rc = WEXITSTATUS(status);
            else
                fprintf(stderr, "daemon: evstored died of signal %d\n", WTERMSIG(status));
            break;
        }
        if (w < 0 && errno != EINTR) break;
        if (now_ms() >= deadline) {
            fprintf(stderr, "daemon: evstored did not exit within %d ms of SIGTERM; killing it\n",
                    STOP_TIMEOUT_MS);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        sleep_ms(10);
    }
    remove_dir(d);
    return rc;
}
