/* config.c: the option table, the config-file parser and the helpers around them (config.h). */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <libpq-fe.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "../proto/codec.h"
#include "../proto/frame.h"
#include "addr.h"
#include "log.h"
#include "store.h"
#include "tls.h"

#define FIELD(f) offsetof(server_config_t, f), sizeof(((server_config_t *)0)->f)

/* The two flags of a row, by name: whether a reload may change the option (else it keeps its
 * value until a restart), and whether a string may be empty. */
#define RELOAD true
#define RESTART false
#define REQUIRED true
#define OPTIONAL false

/* The one option table. Keep evstored.conf(5) in step: tests/service checks that every name
 * below appears there. */
const config_option_t config_options[] = {
    {"listen", CONFIG_STRING, FIELD(listen), "127.0.0.1:7433", 0, 0, RESTART, OPTIONAL, "HOST:PORT",
     "TCP address to listen on ([v6addr]:PORT for IPv6; empty: no plain TCP listener)"},
    {"unix", CONFIG_STRING, FIELD(unix_path), "", 0, 0, RESTART, OPTIONAL, "PATH",
     "also listen on a Unix socket at PATH (empty: no Unix socket)"},
    {"store", CONFIG_STRING, FIELD(store_url), "memory", 0, 0, RESTART, REQUIRED, "URL",
     "\"memory\" or a PostgreSQL URL; $EVSTORE_STORE overrides the file"},
    {"migrate", CONFIG_BOOL, FIELD(migrate), "yes", 0, 1, RELOAD, OPTIONAL, "yes|no",
     "apply the schema migrations the PostgreSQL database lacks when connecting; no: never change "
     "the schema, refuse one that is behind (run evstored --migrate)"},
    {"max_frame", CONFIG_BYTES, FIELD(max_frame), "16777216", 64, UINT32_MAX, RELOAD, OPTIONAL,
     "BYTES", "largest request frame accepted"},
    {"max_event", CONFIG_BYTES, FIELD(max_event), "0", 0, UINT32_MAX, RELOAD, OPTIONAL, "BYTES",
     "largest event an append may store (entity_id, topic, payload and metadata bytes plus "
     "160); at most max_frame minus 64, which is what 0 means"},
    {"output_limit", CONFIG_BYTES, FIELD(out_limit), "2097152", 4096, (1ULL << 40), RELOAD,
     OPTIONAL, "BYTES",
     "per-connection queued output above which reading pauses and subscribers catch up "
     "from the store"},
    {"request_timeout", CONFIG_SECONDS, FIELD(request_timeout_ms), "30", 1, 86400, RELOAD, OPTIONAL,
     "SECONDS", "deadline of each store operation"},
    {"shutdown_timeout", CONFIG_SECONDS, FIELD(shutdown_timeout_ms), "10", 0, 3600, RELOAD,
     OPTIONAL, "SECONDS", "on SIGTERM, longest wait for requests in flight before exiting"},
    {"status_interval", CONFIG_SECONDS, FIELD(status_interval_ms), "30", 0, 86400, RELOAD, OPTIONAL,
     "SECONDS", "how often to send systemd a STATUS= line and probe the store (0: never)"},
    {"max_subscriptions", CONFIG_COUNT, FIELD(max_subscriptions), "256", 1, 1000000, RELOAD,
     OPTIONAL, "N", "most subscriptions one connection may hold"},
    {"max_subscription_topics", CONFIG_COUNT, FIELD(max_subscription_topics), "1024", 1, 1024,
     RELOAD, OPTIONAL, "N", "most topics one subscription may name"},
    {"idle_timeout", CONFIG_SECONDS, FIELD(idle_timeout_ms), "0", 0, 86400 * 365, RELOAD, OPTIONAL,
     "SECONDS",
     "close a connection without subscriptions that sent no request for this long (0: never)"},
    {"frame_timeout", CONFIG_SECONDS, FIELD(frame_timeout_ms), "30", 0, 86400, RELOAD, OPTIONAL,
     "SECONDS",
     "close a connection whose request frame is not complete this long after it began "
     "(0: never)"},
    {"frame_memory_limit", CONFIG_BYTES, FIELD(frame_memory_limit), "128M", 65536, (1ULL << 40),
     RELOAD, OPTIONAL, "BYTES",
     "memory for request frames not yet received whole, all connections together; the connection "
     "that would pass it is closed"},
    {"memory_limit", CONFIG_MEMORY, FIELD(memory_limit), "25%", 1024 * 1024, (1ULL << 50), RELOAD,
     OPTIONAL, "BYTES|N%",
     "memory store: bytes its events and indexes may take (N%: of physical memory); past it "
     "appends get limit_exceeded"},
    {"log_level", CONFIG_LOGLEVEL, FIELD(log_level), "info", 0, 0, RELOAD, OPTIONAL, "LEVEL",
     "error, warn, info or debug"},
    {"write_queue_bytes", CONFIG_BYTES, FIELD(write_queue_bytes), "67108864", 65536, (1ULL << 40),
     RELOAD, OPTIONAL, "BYTES",
     "PostgreSQL: most bytes of writes waiting for the database; past it writes are unavailable"},
    {"write_queue_requests", CONFIG_BYTES, FIELD(write_queue_requests), "10000", 1, 10000000,
     RELOAD, OPTIONAL, "COUNT",
     "PostgreSQL: most writes waiting for the database; past it writes are unavailable"},
    {"tls_listen", CONFIG_STRING, FIELD(tls_listen), "", 0, 0, RESTART, OPTIONAL, "HOST[:PORT]",
     "also listen for TLS connections here (port 7434 when only a host is given; empty: none)"},
    {"tls_cert", CONFIG_STRING, FIELD(tls_cert), "", 0, 0, RELOAD, OPTIONAL, "PATH",
     "PEM certificate chain of the TLS listener (read again on SIGHUP)"},
    {"tls_key", CONFIG_STRING, FIELD(tls_key), "", 0, 0, RELOAD, OPTIONAL, "PATH",
     "PEM private key of tls_cert (read again on SIGHUP)"},
    {"tls_ca", CONFIG_STRING, FIELD(tls_ca), "", 0, 0, RELOAD, OPTIONAL, "PATH",
     "PEM CA certificates: TLS clients must present a certificate they verify (empty: none asked)"},
    {"auth_file", CONFIG_STRING, FIELD(auth_file), "", 0, 0, RELOAD, OPTIONAL, "PATH",
     "principals, their credentials and permissions (docs/security.md); re-read on SIGHUP "
     "(empty: every client may do everything)"},
    {"allow_unauthenticated", CONFIG_BOOL, FIELD(allow_unauthenticated), "no", 0, 1, RELOAD,
     OPTIONAL, "yes|no",
     "allow listen on a non-loopback address without an auth_file (anyone who reaches the port "
     "may read, append and delete)"},
    {"unix_mode", CONFIG_STRING, FIELD(unix_mode), "", 0, 0, RESTART, OPTIONAL, "MODE",
     "octal permissions of the Unix socket, e.g. 0660 (empty: as the umask leaves them)"},
    {"unix_group", CONFIG_STRING, FIELD(unix_group), "", 0, 0, RESTART, OPTIONAL, "GROUP",
     "group (name or number) of the Unix socket (empty: the daemon's)"},
    /* The metrics endpoint (server/metrics.c, server/http.c). */
    {"metrics_listen", CONFIG_STRING, FIELD(metrics_listen), "", 0, 0, RESTART, OPTIONAL,
     "HOST:PORT",
     "serve Prometheus metrics at http://HOST:PORT/metrics, without authentication (empty: no "
     "metrics endpoint)"},
    {"metrics_max_connections", CONFIG_COUNT, FIELD(metrics_max_connections), "8", 1, 10000, RELOAD,
     OPTIONAL, "N", "most metrics connections open at once; one more gets 503"},
    {"metrics_timeout", CONFIG_SECONDS, FIELD(metrics_timeout_ms), "10", 1, 3600, RELOAD, OPTIONAL,
     "SECONDS", "a metrics connection is closed this long after it was accepted"},
    {"metrics_max_request", CONFIG_BYTES, FIELD(metrics_max_request), "8k", 1024, 1024 * 1024,
     RELOAD, OPTIONAL, "BYTES", "most bytes of a metrics request's line and headers (431 past it)"},
};
const size_t config_noptions = sizeof config_options / sizeof config_options[0];

static int fail(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *why, size_t whylen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return -1;
}

/* The last line of why once no further message fits. */
static const char more_errors[] = "(more errors not shown)";

/* Appends one message to the messages in why (one a line; why holds a string, "" at first) and
 * returns -1. Once a message does not fit, the last line says that more were not shown. */
static int add_error(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int add_error(char *why, size_t whylen, const char *fmt, ...) {
    if (!whylen) return -1;
    size_t at = strnlen(why, whylen - 1), m = sizeof more_errors - 1;
    why[at] = '\0';
    if (at >= m && strcmp(why + at - m, more_errors) == 0) return -1;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t sep = at ? 1 : 0, len = strlen(msg);
    if (at + sep + len + 1 + m + 1 <= whylen || (at == 0 && len < whylen))
        snprintf(why + at, whylen - at, "%s%s", sep ? "\n" : "", msg);
    else if (at + sep + m < whylen)
        snprintf(why + at, whylen - at, "%s%s", sep ? "\n" : "", more_errors);
    return -1;
}

/* The message of config_set after its "name: ", for a caller that names the option otherwise. */
static const char *after_name(const char *msg, const config_option_t *opt) {
    size_t n = strlen(opt->name);
    return strncmp(msg, opt->name, n) == 0 && strncmp(msg + n, ": ", 2) == 0 ? msg + n + 2 : msg;
}

/* Compares two keys with '-' and '_' the same. */
static bool key_equal(const char *a, const char *b) {
    for (;; a++, b++) {
        char x = *a == '-' ? '_' : *a, y = *b == '-' ? '_' : *b;
        if (x != y) return false;
        if (!x) return true;
    }
}

const config_option_t *config_find(const char *name) {
    for (size_t i = 0; i < config_noptions; i++)
        if (key_equal(config_options[i].name, name)) return &config_options[i];
    return NULL;
}

/* ---------------------------------------------------------------- fields */

static const char **str_field(server_config_t *cfg, const config_option_t *opt) {
    return (const char **)((char *)cfg + opt->offset);
}
static const char *str_value(const server_config_t *cfg, const config_option_t *opt) {
    return *(const char *const *)((const char *)cfg + opt->offset);
}

static unsigned long long num_value(const server_config_t *cfg, const config_option_t *opt) {
    const char *p = (const char *)cfg + opt->offset;
    if (opt->type == CONFIG_LOGLEVEL) return (unsigned long long)*(const int *)p;
    if (opt->size == sizeof(uint32_t)) return *(const uint32_t *)p;
    return *(const uint64_t *)p;
}

static void set_num(server_config_t *cfg, const config_option_t *opt, unsigned long long v) {
    char *p = (char *)cfg + opt->offset;
    if (opt->type == CONFIG_LOGLEVEL)
        *(int *)p = (int)v;
    else if (opt->size == sizeof(uint32_t))
        *(uint32_t *)p = (uint32_t)v;
    else
        *(uint64_t *)p = (uint64_t)v;
}

/* Parses a whole unsigned decimal number; for bytes an optional k, M or G suffix multiplies it
 * by 1024, 1024^2 or 1024^3; for seconds an optional "s" is allowed. */
static int parse_number(const char *s, unsigned long long *out, bool bytes) {
    char *end;
    if (!isdigit((unsigned char)s[0])) return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno) return -1;
    unsigned long long mul = 1;
    if (*end) {
        if (bytes && end[1] == '\0' && strchr("kK", end[0]))
            mul = 1024ULL;
        else if (bytes && end[1] == '\0' && strchr("mM", end[0]))
            mul = 1024ULL * 1024;
        else if (bytes && end[1] == '\0' && strchr("gG", end[0]))
            mul = 1024ULL * 1024 * 1024;
        else if (!bytes && strcmp(end, "s") == 0)
            mul = 1;
        else
            return -1;
    }
    if (v > ULLONG_MAX / mul) return -1;
    *out = v * mul;
    return 0;
}

/* ---------------------------------------------------------------- values of strings */

/* A listener's HOST:PORT, the option name first in the message. */
static int check_hostport(const char *name, const char *value, char *why, size_t whylen) {
    char host[64];
    struct sockaddr_storage sa;
    int bad = addr_parse(value, &sa, host, sizeof host);
    if (bad == ADDR_BAD_FORM)
        return fail(why, whylen, "%s: \"%s\" is not HOST:PORT (a port from 0 to 65535)", name,
                    value);
    if (bad == ADDR_BAD_HOST)
        return fail(why, whylen, "%s: %s is not an IPv4 or IPv6 address", name, host);
    return 0;
}

static int check_listen(const char *value, char *why, size_t whylen) {
    return check_hostport("listen", value, why, whylen);
}

static int check_metrics_listen(const char *value, char *why, size_t whylen) {
    return check_hostport("metrics_listen", value, why, whylen);
}

static int check_unix(const char *value, char *why, size_t whylen) {
    if (strlen(value) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return fail(why, whylen, "unix: the path is longer than %zu bytes",
                    sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
    return 0;
}

static int check_unix_mode(const char *value, char *why, size_t whylen) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(value, &end, 8);
    if (*value < '0' || *value > '7' || *end || errno || v > 0777)
        return fail(why, whylen, "unix_mode: \"%s\" is not an octal mode from 0 to 0777", value);
    return 0;
}

/* Whether s is a whole decimal number from min to max, blanks around it allowed (libpq's
 * parse_int_param reads numbers so). */
static bool conninfo_int(const char *s, long min, long max) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || errno) return false;
    while (isspace((unsigned char)*end))
        end++;
    return !*end && v >= min && v <= max;
}

/* The libpq parameters with a fixed set of values (only those present in the string are
 * checked, so a parameter a newer libpq adds is left to it). */
static const struct {
    const char *keyword, *const values[7];
} conninfo_enums[] = {
    {"sslmode", {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}},
    {"gssencmode", {"disable", "prefer", "require"}},
    {"channel_binding", {"disable", "prefer", "require"}},
    {"target_session_attrs",
     {"any", "read-write", "read-only", "primary", "standby", "prefer-standby"}},
};

/* The libpq parameters that take a whole number, and their bounds. */
static const struct {
    const char *keyword;
    long min, max;
} conninfo_ints[] = {
    {"connect_timeout", 0, INT_MAX},  {"keepalives", 0, 1},
    {"keepalives_idle", 0, INT_MAX},  {"keepalives_interval", 0, INT_MAX},
    {"keepalives_count", 0, INT_MAX}, {"tcp_user_timeout", 0, INT_MAX},
};

/* Counts the comma-separated entries of a libpq host, hostaddr or port list. */
static size_t list_entries(const char *s) {
    size_t n = 1;
    for (; *s; s++)
        n += *s == ',';
    return n;
}

/* Checks a PostgreSQL connection string, URL or key=value, as libpq will read it when the store
 * connects: its syntax and keywords (PQconninfoParse), every port (1 to 65535, as many as hosts),
 * the numbers and the fixed sets of values of the parameters above. A password is never shown. */
static int check_conninfo(const char *value, char *why, size_t whylen) {
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(value, &err);
    if (!opts) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s", err ? err : "out of memory");
        PQfreemem(err);
        size_t n = strlen(msg);
        while (n && isspace((unsigned char)msg[n - 1]))
            msg[--n] = '\0';
        return fail(why, whylen, "store: not a PostgreSQL connection string libpq accepts: %s",
                    msg);
    }
    int rc = 0;
    const char *host = NULL, *hostaddr = NULL, *port = NULL;
    for (PQconninfoOption *o = opts; o->keyword && rc == 0; o++) {
        if (!o->val) continue;
        if (!strcmp(o->keyword, "host")) host = o->val;
        if (!strcmp(o->keyword, "hostaddr")) hostaddr = o->val;
        if (!strcmp(o->keyword, "port")) port = o->val;
        for (size_t i = 0; i < sizeof conninfo_ints / sizeof conninfo_ints[0]; i++)
            if (!strcmp(o->keyword, conninfo_ints[i].keyword) &&
                !conninfo_int(o->val, conninfo_ints[i].min, conninfo_ints[i].max))
                rc = fail(why, whylen, "store: %s: \"%.64s\" is not a whole number from %ld to %ld",
                          o->keyword, o->val, conninfo_ints[i].min, conninfo_ints[i].max);
        for (size_t i = 0; i < sizeof conninfo_enums / sizeof conninfo_enums[0]; i++) {
            if (strcmp(o->keyword, conninfo_enums[i].keyword) != 0) continue;
            bool known = false;
            char list[128] = "";
            for (const char *const *v = conninfo_enums[i].values; *v; v++) {
                known = known || !strcmp(o->val, *v);
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                         v == conninfo_enums[i].values ? "" : ", ", *v);
            }
            if (!known)
                rc = fail(why, whylen, "store: %s: \"%.64s\" is not one of %s", o->keyword, o->val,
                          list);
        }
    }
    if (rc == 0 && port) {
        /* Each entry empty (the default port) or a port number. */
        char buf[256];
        snprintf(buf, sizeof buf, "%s", port);
        for (char *save = NULL, *p = buf, *tok; rc == 0; p = NULL) {
            if (!(tok = strtok_r(p, ",", &save))) break;
            if (*tok && !conninfo_int(tok, 1, 65535))
                rc = fail(why, whylen,
                          "store: port: \"%.64s\" is not a port number from 1 to 65535", tok);
        }
        size_t hosts = list_entries(host       ? host
                                    : hostaddr ? hostaddr
                                               : ""),
               ports = list_entries(port);
        if (rc == 0 && ports > 1 && ports != hosts)
            rc = fail(why, whylen, "store: %zu ports for %zu hosts: give one port, or one per host",
                      ports, hosts);
    }
    PQconninfoFree(opts);
    return rc;
}

static int check_store(const char *value, char *why, size_t whylen) {
    if (!store_url_is_valid(value)) {
        /* Text with "://" or an "@" may hold a password: it is not shown. */
        bool secret = strstr(value, "://") || strchr(value, '@');
        return fail(why, whylen,
                    "store: %s%.64s%sis neither \"memory\" nor a PostgreSQL URL "
                    "(postgresql://...) or key=value connection string",
                    secret ? "" : "\"", secret ? "the value " : value, secret ? "" : "\" ");
    }
    if (!strchr(value, '=') && !strstr(value, "://")) return 0; /* memory */
    if (strncmp(value, "memory://", 9) == 0) return 0;
    return check_conninfo(value, why, whylen);
}

/* The string options whose values are checked as they are set, so that a bad one is reported
 * with where it came from (the file's line, the flag, the environment). */
static const struct {
    const char *name;
    int (*check)(const char *value, char *why, size_t whylen);
} string_checks[] = {
    {"listen", check_listen}, {"metrics_listen", check_metrics_listen},
    {"unix", check_unix},     {"unix_mode", check_unix_mode},
    {"store", check_store},
};

int config_set(server_config_t *cfg, const config_option_t *opt, const char *value, char *why,
               size_t whylen) {
    unsigned long long v;
    switch (opt->type) {
    case CONFIG_STRING: {
        if (!*value && opt->required) return fail(why, whylen, "%s: may not be empty", opt->name);
        for (size_t i = 0; *value && i < sizeof string_checks / sizeof string_checks[0]; i++)
            if (strcmp(opt->name, string_checks[i].name) == 0 &&
                string_checks[i].check(value, why, whylen) != 0)
                return -1;
        char *dup = NULL;
        if (*value && !(dup = strdup(value))) return fail(why, whylen, "out of memory");
        const char **f = str_field(cfg, opt);
        free((char *)*f);
        *f = dup;
        return 0;
    }
    case CONFIG_LOGLEVEL: {
        int level = log_level_parse(value);
        if (level < 0)
            return fail(why, whylen, "%s: \"%s\" is not one of error, warn, info, debug", opt->name,
                        value);
        set_num(cfg, opt, (unsigned long long)level);
        return 0;
    }
    case CONFIG_MEMORY: {
        size_t len = strlen(value);
        if (len > 1 && value[len - 1] == '%') {
            char num[32];
            long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
            if (len - 1 >= sizeof num || pages <= 0 || page <= 0)
                return fail(why, whylen, "%s: \"%s\" is not a percentage of physical memory",
                            opt->name, value);
            memcpy(num, value, len - 1);
            num[len - 1] = '\0';
            if (parse_number(num, &v, false) || v < 1 || v > 100)
                return fail(why, whylen, "%s: \"%s\" is not a percentage from 1%% to 100%%",
                            opt->name, value);
            v = (unsigned long long)pages * (unsigned long long)page / 100 * v;
            if (v < opt->min) v = opt->min;
            set_num(cfg, opt, v);
            return 0;
        }
        __attribute__((fallthrough)); /* a size in bytes */
    }
    case CONFIG_BYTES:
        if (parse_number(value, &v, true) || v < opt->min || v > opt->max)
            return fail(why, whylen,
                        "%s: \"%s\" is not a size from %llu to %llu bytes "
                        "(a k, M or G suffix multiplies by 1024)",
                        opt->name, value, opt->min, opt->max);
        set_num(cfg, opt, v);
        return 0;
    case CONFIG_COUNT:
        if (parse_number(value, &v, false) || !isdigit((unsigned char)value[strlen(value) - 1]) ||
            v < opt->min || v > opt->max)
            return fail(why, whylen, "%s: \"%s\" is not a whole number from %llu to %llu",
                        opt->name, value, opt->min, opt->max);
        set_num(cfg, opt, v);
        return 0;
    case CONFIG_BOOL:
        if (!strcmp(value, "yes") || !strcmp(value, "true") || !strcmp(value, "on") ||
            !strcmp(value, "1"))
            v = 1;
        else if (!strcmp(value, "no") || !strcmp(value, "false") || !strcmp(value, "off") ||
                 !strcmp(value, "0"))
            v = 0;
        else
            return fail(why, whylen, "%s: \"%s\" is not yes or no", opt->name, value);
        set_num(cfg, opt, v);
        return 0;
    case CONFIG_SECONDS:
        if (parse_number(value, &v, false) || v < opt->min || v > opt->max)
            return fail(why, whylen,
                        "%s: \"%s\" is not a whole number of seconds from %llu to %llu", opt->name,
                        value, opt->min, opt->max);
        set_num(cfg, opt, v * 1000);
        return 0;
    }
    return fail(why, whylen, "%s: unknown option type", opt->name);
}

int config_defaults(server_config_t *cfg) {
    memset(cfg, 0, sizeof *cfg);
    char why[256];
    for (size_t i = 0; i < config_noptions; i++)
        if (config_set(cfg, &config_options[i], config_options[i].def, why, sizeof why) != 0) {
            config_free(cfg);
            return -1;
        }
    return 0;
}

void config_free(server_config_t *cfg) {
    for (size_t i = 0; i < config_noptions; i++)
        if (config_options[i].type == CONFIG_STRING) {
            const char **f = str_field(cfg, &config_options[i]);
            free((char *)*f);
            *f = NULL;
        }
}

bool config_same(const server_config_t *a, const server_config_t *b, const config_option_t *opt) {
    if (opt->type != CONFIG_STRING) return num_value(a, opt) == num_value(b, opt);
    const char *x = str_value(a, opt), *y = str_value(b, opt);
    if (!x || !y) return x == y;
    return strcmp(x, y) == 0;
}

int config_copy_option(server_config_t *dst, const server_config_t *src,
                       const config_option_t *opt) {
    if (opt->type != CONFIG_STRING) {
        set_num(dst, opt, num_value(src, opt));
        return 0;
    }
    const char *s = str_value(src, opt);
    char *dup = NULL;
    if (s && !(dup = strdup(s))) return -1;
    const char **f = str_field(dst, opt);
    free((char *)*f);
    *f = dup;
    return 0;
}

/* ---------------------------------------------------------------- the file */

/* Removes blanks at both ends of s in place and returns the new start. */
static char *trim(char *s) {
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* Cuts an unquoted value at an inline comment: a '#' at its start or after a blank. */
static void cut_comment(char *value) {
    for (char *p = value; *p; p++)
        if (*p == '#' && (p == value || isspace((unsigned char)p[-1]))) {
            *p = '\0';
            break;
        }
}

/* Parses one line (s, without its newline) into cfg; at names it ("PATH:LINE") in messages,
 * which are appended to why. 0, or -1. */
static int read_line(server_config_t *cfg, char *s, const char *at, char *why, size_t whylen) {
    s = trim(s);
    if (!*s || *s == '#' || *s == ';') return 0;
    char *eq = strchr(s, '=');
    if (!eq) return add_error(why, whylen, "%s: expected \"key = value\"", at);
    *eq = '\0';
    char *key = trim(s), *value = eq + 1;
    while (isspace((unsigned char)*value))
        value++;
    const config_option_t *opt = config_find(key);
    if (!opt)
        return add_error(why, whylen, "%s: unknown option \"%.64s\" (evstored --help lists them)",
                         at, key);
    if (*value == '"') {
        /* Quoted: the value is what the quotes hold; after them only blanks or a comment. */
        char *close = strchr(value + 1, '"');
        if (!close) return add_error(why, whylen, "%s: %s: unterminated quote", at, opt->name);
        *close = '\0';
        char *rest = close + 1;
        while (isspace((unsigned char)*rest))
            rest++;
        if (*rest && *rest != '#')
            return add_error(why, whylen, "%s: %s: text after the closing quote: %.64s", at,
                             opt->name, rest);
        value++;
    } else {
        cut_comment(value);
        value = trim(value);
    }
    char msg[1024];
    if (config_set(cfg, opt, value, msg, sizeof msg) != 0)
        return add_error(why, whylen, "%s: %s", at, msg);
    return 0;
}

/* Parses the lines of f into cfg; path names the file in messages. Every line is read: each
 * error is appended to why. 0, or -1 when there was any. */
static int read_lines(server_config_t *cfg, FILE *f, const char *path, char *why, size_t whylen) {
    char line[4096], at[300];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        snprintf(at, sizeof at, "%.280s:%d", path, lineno);
        size_t n = strlen(line);
        if (n == sizeof line - 1 && line[n - 1] != '\n' && !feof(f)) {
            rc = add_error(why, whylen, "%s: line longer than %zu bytes", at, sizeof line - 2);
            int c;
            while ((c = fgetc(f)) != EOF && c != '\n')
                ; /* the rest of the long line */
            continue;
        }
        if (n && line[n - 1] == '\n') line[n - 1] = '\0';
        if (read_line(cfg, line, at, why, whylen) != 0) rc = -1;
    }
    if (ferror(f)) rc = add_error(why, whylen, "%s: read error", path);
    return rc;
}

/* Reads the file at path into cfg, appending its errors to why. 0, or -1. */
static int read_file(server_config_t *cfg, const char *path, char *why, size_t whylen) {
    FILE *f = fopen(path, "r");
    if (!f) return add_error(why, whylen, "%s: %s", path, strerror(errno));
    int rc = read_lines(cfg, f, path, why, whylen);
    fclose(f);
    return rc;
}

int config_read_file(server_config_t *cfg, const char *path, char *why, size_t whylen) {
    if (whylen) why[0] = '\0';
    return read_file(cfg, path, why, whylen);
}

int config_parse_text(server_config_t *cfg, const char *text, size_t len, const char *name,
                      char *why, size_t whylen) {
    if (whylen) why[0] = '\0';
    if (len == 0) return 0;
    FILE *f = fmemopen((void *)text, len, "r");
    if (!f) return add_error(why, whylen, "%s: %s", name, strerror(errno));
    int rc = read_lines(cfg, f, name, why, whylen);
    fclose(f);
    return rc;
}

/* Whether sa is an address only this machine reaches: 127.0.0.0/8, ::1 or ::ffff:127.x.y.z. */
static bool addr_is_loopback(const struct sockaddr_storage *sa) {
    if (sa->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->ss_family != AF_INET6) return false;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

size_t config_max_event(const server_config_t *cfg) {
    return cfg->max_event ? cfg->max_event : codec_page_budget(cfg->max_frame);
}

/* Appends to why every error of cfg that involves more than one option, or a file (TLS):
 * the values themselves were checked as they were set. 0, or -1 when there was any. */
static int check_together(const server_config_t *cfg, char *why, size_t whylen) {
    int rc = 0;
    if (!cfg->listen && !cfg->tls_listen && !cfg->unix_path)
        rc = add_error(why, whylen, "no listener: set listen, tls_listen or unix");
    char msg[1024];
    if (tls_check_config(cfg, msg, sizeof msg) != 0) rc = add_error(why, whylen, "%s", msg);
    if (cfg->frame_memory_limit < (size_t)cfg->max_frame + FRAME_HEADER + FRAME_READ_CHUNK)
        rc = add_error(why, whylen,
                       "frame_memory_limit: %zu bytes cannot hold one frame of max_frame (%u "
                       "bytes) as it arrives: give it at least %llu",
                       cfg->frame_memory_limit, cfg->max_frame,
                       (unsigned long long)cfg->max_frame + FRAME_HEADER + FRAME_READ_CHUNK);
    /* Protected mode, as Redis has it: a plain listener that other machines can reach needs an
     * auth_file, or the explicit opt-out. */
    char host[64];
    struct sockaddr_storage sa;
    if (cfg->listen && addr_parse(cfg->listen, &sa, host, sizeof host) == 0 && !cfg->auth_file &&
        !cfg->allow_unauthenticated && !addr_is_loopback(&sa))
        rc = add_error(why, whylen,
                       "listen: %s is not a loopback address and no auth_file is set: anyone who "
                       "reaches it could read, append and delete; set auth_file "
                       "(docs/security.md), listen on 127.0.0.1, or set allow_unauthenticated = "
                       "yes",
                       cfg->listen);
    /* Every stored event must come back in one reply or push, whose envelope takes at most
     * CODEC_PAGE_ENVELOPE bytes of a frame. */
    if (cfg->max_event > codec_page_budget(cfg->max_frame))
        rc = add_error(why, whylen,
                       "max_event (%u) is over max_frame (%u) minus %d bytes of reply envelope: "
                       "an event that large could be stored but never read back; lower max_event "
                       "to at most %zu or raise max_frame",
                       cfg->max_event, cfg->max_frame, CODEC_PAGE_ENVELOPE,
                       codec_page_budget(cfg->max_frame));
    else if (config_max_event(cfg) < CONFIG_MIN_EVENT)
        rc = add_error(why, whylen,
                       "max_event: %zu bytes is too small to hold an event (at least %d; "
                       "max_event 0 means max_frame minus %d)",
                       config_max_event(cfg), CONFIG_MIN_EVENT, CODEC_PAGE_ENVELOPE);
    return rc;
}

int config_check(const server_config_t *cfg, char *why, size_t whylen) {
    if (whylen) why[0] = '\0';
    return check_together(cfg, why, whylen);
}

size_t config_errors_count(const char *why) {
    if (!*why) return 0;
    size_t n = 1;
    for (const char *p = why; *p; p++)
        n += *p == '\n';
    return n;
}

/* Sets opt from a value given outside the file; source names it in a message ("--store",
 * "$EVSTORE_STORE"). */
static int set_from(server_config_t *cfg, const config_option_t *opt, const char *value,
                    const char *source, char *why, size_t whylen) {
    char msg[1024];
    if (config_set(cfg, opt, value, msg, sizeof msg) == 0) return 0;
    return add_error(why, whylen, "%s: %s", source, after_name(msg, opt));
}

int config_load(server_config_t *cfg, const char *path, const config_override_t *overrides,
                size_t noverrides, char *why, size_t whylen) {
    if (whylen) why[0] = '\0';
    if (config_defaults(cfg) != 0) return add_error(why, whylen, "out of memory");
    int rc = path ? read_file(cfg, path, why, whylen) : 0;
    /* $EVSTORE_STORE is not even checked when --store replaces it. */
    const config_option_t *store = config_find("store");
    const char *env = getenv("EVSTORE_STORE");
    for (size_t i = 0; i < noverrides; i++)
        if (overrides[i].opt == store) env = NULL;
    if (env && *env && set_from(cfg, store, env, "$EVSTORE_STORE", why, whylen) != 0) rc = -1;
    for (size_t i = 0; i < noverrides; i++) {
        char flag[80];
        snprintf(flag, sizeof flag, "--%s", overrides[i].opt->name);
        for (char *p = flag + 2; *p; p++)
            if (*p == '_') *p = '-';
        if (set_from(cfg, overrides[i].opt, overrides[i].value, flag, why, whylen) != 0) rc = -1;
    }
    if (check_together(cfg, why, whylen) != 0) rc = -1;
    if (rc != 0) config_free(cfg);
    return rc;
}

/* ---------------------------------------------------------------- showing */

/* Appends " key=value" to buf (at *at of len), the value quoted as libpq reads it when it holds
 * a blank, a quote or a backslash, or is empty. */
static void append_keyword(char *buf, size_t len, size_t *at, const char *key, const char *value) {
    bool quote = !*value || strpbrk(value, " \t\n\r\f\v'\\") != NULL;
    int n = snprintf(buf + *at, len - *at, "%s%s=%s", *at ? " " : "", key, quote ? "'" : "");
    if (n > 0) *at = *at + (size_t)n < len ? *at + (size_t)n : len - 1;
    for (const char *v = value; *v && *at + 3 < len; v++) {
        if (*v == '\'' || *v == '\\') buf[(*at)++] = '\\';
        buf[(*at)++] = *v;
    }
    buf[*at] = '\0';
    if (quote && *at + 1 < len) {
        buf[(*at)++] = '\'';
        buf[*at] = '\0';
    }
}

void config_store_masked(const char *url, char *buf, size_t len) {
    if (!len) return;
    if (!strchr(url, '=') && !strstr(url, "://")) {
        snprintf(buf, len, "%s", url); /* not a connection string: "memory" */
        return;
    }
    /* libpq's own parser finds the password wherever it is; a string it cannot parse might hold
     * one where it was not found, so it is not shown. */
    char *why = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &why);
    PQfreemem(why);
    if (!opts) {
        snprintf(buf, len, "(a connection string libpq cannot parse: not shown)");
        return;
    }
    bool has_password = false;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (o->val && strcmp(o->keyword, "password") == 0) has_password = true;
    if (!has_password) {
        snprintf(buf, len, "%s", url);
        PQconninfoFree(opts);
        return;
    }
    /* Written again as key=value pairs, which libpq reads as it read the original. */
    size_t at = 0;
    buf[0] = '\0';
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (o->val)
            append_keyword(buf, len, &at, o->keyword,
                           strcmp(o->keyword, "password") == 0 ? "***" : o->val);
    PQconninfoFree(opts);
}

void config_format(const server_config_t *cfg, const config_option_t *opt, char *buf, size_t len) {
    unsigned long long v = 0;
    if (opt->type != CONFIG_STRING) v = num_value(cfg, opt);
    switch (opt->type) {
    case CONFIG_STRING: {
        const char *s = str_value(cfg, opt);
        if (!s) s = "";
        if (strcmp(opt->name, "store") == 0)
            config_store_masked(s, buf, len);
        else
            snprintf(buf, len, "%s", s);
        break;
    }
    case CONFIG_BYTES:
    case CONFIG_COUNT:
    case CONFIG_MEMORY:
        snprintf(buf, len, "%llu", v);
        break;
    case CONFIG_SECONDS:
        snprintf(buf, len, "%llu", v / 1000);
        break;
    case CONFIG_LOGLEVEL:
        snprintf(buf, len, "%s", log_level_name((int)v));
        break;
    case CONFIG_BOOL:
        snprintf(buf, len, "%s", v ? "yes" : "no");
        break;
    }
}

const char *config_flag_name(const config_option_t *o, char *buf, size_t len) {
    snprintf(buf, len, "%s", strcmp(o->name, "migrate") == 0 ? "migrate-mode" : o->name);
    for (char *p = buf; *p; p++)
        if (*p == '_') *p = '-';
    return buf;
}

void config_print_help(FILE *out) {
    for (size_t i = 0; i < config_noptions; i++) {
        const config_option_t *o = &config_options[i];
        char flag[64], name[48], text[512];
        snprintf(flag, sizeof flag, "--%s %s", config_flag_name(o, name, sizeof name), o->metavar);
        snprintf(text, sizeof text, "%s (default %s%s%s%s)", o->help, *o->def ? "" : "\"", o->def,
                 *o->def ? "" : "\"", o->reloadable ? "" : "; restart to change");
        /* Word-wrap the text into a 68-column column after the flag. */
        fprintf(out, "  %-28s", flag);
        const char *t = text;
        while (*t) {
            size_t n = strlen(t);
            if (n > 68) {
                n = 68;
                while (n > 0 && t[n] != ' ')
                    n--;
                if (n == 0) n = 68;
            }
            fprintf(out, " %.*s\n", (int)n, t);
            t += n;
            while (*t == ' ')
                t++;
            if (*t) fprintf(out, "  %-28s", "");
        }
    }
}

void config_pack(msgpack_packer *pk, const server_config_t *cfg) {
    msgpack_pack_map(pk, config_noptions);
    for (size_t i = 0; i < config_noptions; i++) {
        const config_option_t *o = &config_options[i];
        char value[1024];
        config_format(cfg, o, value, sizeof value);
        codec_pack_key(pk, o->name);
        msgpack_pack_map(pk, 3);
        codec_pack_key(pk, "value");
        codec_pack_cstr(pk, value);
        codec_pack_key(pk, "default");
        codec_pack_cstr(pk, o->def);
        codec_pack_key(pk, "reloadable");
        if (o->reloadable)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
    }
}
