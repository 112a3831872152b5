/* main.c: evstore, the command-line client of evstored.
 *
 *   evstore [-s ADDR] [-t MS] [--token TOKEN] COMMAND ...
 *
 * Events are printed one JSON object per line. Errors go to stderr as "evstore: CODE: message";
 * the exit status is 0 on success, 1 when the server or the connection failed, 2 on bad usage. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uuid.h>

#include <evstore.h>

#include "bench.h"
#include "json.h"

#define PAGE 1000

static const char usage_text[] =
    "usage: evstore [-s ADDR] [-t TIMEOUT_MS] [--token TOKEN] [TLS OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "  ping                                   check the server, print its version\n"
    "  health                                 whether appends and reads work now: prints ok,\n"
    "                                         degraded: WHY or down: WHY; exits 0, 1 or 2\n"
    "  append ENTITY TOPIC [JSON|-]           append one event (payload: a JSON object;\n"
    "         [--version V] [--metadata JSON] [--event-id UUID]    '-' reads it from stdin)\n"
    "  get ENTITY [--from V] [--limit N] [--backwards]   events of one entity\n"
    "  topic TOPIC [--after P] [--limit N]    events of one topic\n"
    "  event UUID                             one event by id\n"
    "  all [--after P] [--limit N]            the global log\n"
    "  tail [--after P] [--topic T]... [--prefix E] [--consumer NAME]\n"
    "                                         follow new events until interrupted; reconnects\n"
    "                                         and resumes by itself after a lost connection;\n"
    "                                         with --consumer, starts after NAME's checkpoint\n"
    "                                         and checkpoints what it printed\n"
    "  consumers                              every consumer with its checkpoint and lag\n"
    "  delete ENTITY                          remove every event of an entity\n"
    "  stats | config                         the daemon's counters / effective options\n"
    "  bench [--help]                         load generator (appends)\n"
    "  token new [NAME [PERMISSIONS]]         print a new random token, then its auth_file line\n"
    "\n"
    "ADDR is HOST:PORT, tls://HOST:PORT or a Unix socket path (default $EVSTORE_ADDR, "
    "else\n" EVS_DEFAULT_ADDR ").\n"
    "TLS OPTIONS (any of them turns TLS on): --tls-ca FILE (CAs that verify the server; default\n"
    "$EVSTORE_TLS_CA, else the system's), --tls-cert FILE --tls-key FILE (a client certificate;\n"
    "default $EVSTORE_TLS_CERT, $EVSTORE_TLS_KEY), --tls-server-name NAME (the name the server's\n"
    "certificate must carry; default the host of ADDR).\n"
    "TOKEN is sent in an auth request on connecting (default $EVSTORE_TOKEN).\n"
    "Without --limit, get, topic and all page through every matching event.\n";

/* The TLS options of the command line and the environment; tls_on when any is set. */
static evs_tls_options_t tls_opts;
static bool tls_on;

/* Takes a --tls-* flag at argv[*i] (and its value): 1 when it was one, 0 when it is not one. */
static int take_tls_flag(int argc, char **argv, int *i) {
    static const char *const names[] = {"--tls-ca", "--tls-cert", "--tls-key", "--tls-server-name"};
    const char **fields[] = {&tls_opts.ca_file, &tls_opts.cert_file, &tls_opts.key_file,
                             &tls_opts.server_name};
    for (int k = 0; k < 4; k++)
        if (strcmp(argv[*i], names[k]) == 0 && *i + 1 < argc) {
            *fields[k] = argv[++*i];
            tls_on = true;
            return 1;
        }
    return 0;
}

/* The TLS options for evs_options_t.tls: NULL when none was given (a tls:// address still
 * connects with TLS, verified against the system's CAs). */
static const evs_tls_options_t *tls_options(void) {
    const char *env[] = {"EVSTORE_TLS_CA", "EVSTORE_TLS_CERT", "EVSTORE_TLS_KEY"};
    const char **fields[] = {&tls_opts.ca_file, &tls_opts.cert_file, &tls_opts.key_file};
    for (int k = 0; k < 3; k++) {
        const char *v = getenv(env[k]);
        if (!*fields[k] && v && *v) {
            *fields[k] = v;
            tls_on = true;
        }
    }
    return tls_on ? &tls_opts : NULL;
}

static int usage(const char *fmt, const char *arg) {
    if (fmt) {
        fprintf(stderr, "evstore: ");
        fprintf(stderr, fmt, arg);
        fprintf(stderr, "\n");
    }
    fputs(usage_text, stderr);
    return 2;
}

/* Prints the context's error as "evstore: CODE: message" and returns the exit status 1. */
static int fail(const evs_context_t *c) {
    fprintf(stderr, "evstore: %s: %s\n", evs_strcode(evs_err(c)), evs_errstr(c));
    return 1;
}

static int fail_msg(const char *code, const char *msg) {
    fprintf(stderr, "evstore: %s: %s\n", code, msg);
    return 1;
}

/* Prints one JSON value (consumed) with jansson's flags, then a newline. */
static int print_json_as(json_t *j, size_t flags) {
    if (!j) return fail_msg("out_of_memory", "cannot build the JSON output");
    int r = json_dumpf(j, stdout, flags | JSON_PRESERVE_ORDER);
    json_decref(j);
    fputc('\n', stdout);
    if (r < 0 || fflush(stdout) != 0) return fail_msg("io", "cannot write to stdout");
    return 0;
}

/* Prints one JSON value on its own line. */
static int print_json(json_t *j) {
    return print_json_as(j, JSON_COMPACT);
}

static int print_events(const evs_events_t *list) {
    for (size_t i = 0; i < list->n; i++)
        if (print_json(event_to_json(&list->events[i])) != 0) return 1;
    return 0;
}

/* ---------------------------------------------------------------- arguments */

/* The command's arguments after the command name: positionals and "--name value" options. */
typedef struct args {
    const char *pos[4];
    int npos;
    const char *from, *limit, *after, *version, *metadata, *event_id, *prefix, *consumer;
    const char *topics[EVS_MAX_TOPICS];
    size_t ntopics;
    int backwards;
} args_t;

static int parse_args(int argc, char **argv, args_t *a, const char *allowed) {
    memset(a, 0, sizeof *a);
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (strncmp(s, "--", 2) != 0 || strcmp(s, "-") == 0) {
            if (a->npos == 4) return usage("too many arguments: %s", s);
            a->pos[a->npos++] = s;
            continue;
        }
        const char *name = s + 2;
        char key[32];
        snprintf(key, sizeof key, ",%s,", name);
        if (!strstr(allowed, key)) return usage("unknown option for this command: %s", s);
        if (strcmp(name, "backwards") == 0) {
            a->backwards = 1;
            continue;
        }
        if (i + 1 >= argc) return usage("option %s needs a value", s);
        const char *v = argv[++i];
        if (strcmp(name, "from") == 0)
            a->from = v;
        else if (strcmp(name, "limit") == 0)
            a->limit = v;
        else if (strcmp(name, "after") == 0)
            a->after = v;
        else if (strcmp(name, "version") == 0)
            a->version = v;
        else if (strcmp(name, "metadata") == 0)
            a->metadata = v;
        else if (strcmp(name, "event-id") == 0)
            a->event_id = v;
        else if (strcmp(name, "prefix") == 0)
            a->prefix = v;
        else if (strcmp(name, "consumer") == 0)
            a->consumer = v;
        else if (strcmp(name, "topic") == 0) {
            if (a->ntopics == EVS_MAX_TOPICS) return usage("too many topics%s", "");
            a->topics[a->ntopics++] = v;
        }
    }
    return 0;
}

static int parse_u64(const char *s, const char *what, uint64_t *out) {
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-') return usage("%s must be an unsigned integer", what);
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return usage("%s must be an unsigned integer", what);
    *out = v;
    return 0;
}

static int parse_limit(const char *s, uint32_t *out) {
    uint64_t v = 0;
    if (!s) {
        *out = 0;
        return 0;
    }
    if (parse_u64(s, "--limit", &v) != 0) return 2;
    if (v == 0 || v > UINT32_MAX) return usage("--limit must be between 1 and %s", "4294967295");
    *out = (uint32_t)v;
    return 0;
}

/* ---------------------------------------------------------------- commands */

static int cmd_ping(evs_context_t *c, int argc, char **argv) {
    args_t a;
    if (parse_args(argc, argv, &a, ",") != 0) return 2;
    if (a.npos) return usage("ping takes no arguments%s", "");
    char version[64];
    if (evs_ping(c, version, sizeof version) < 0) return fail(c);
    return print_json(json_pack("{s:s}", "version", version));
}

/* health prints one line and exits 0 (ok), 1 (degraded) or 2 (down, also when the daemon
 * cannot be reached): for monitoring scripts and service checks. */
static int cmd_health(evs_context_t *c, int argc, char **argv) {
    (void)argv;
    if (argc) return usage("health takes no arguments%s", "");
    evs_health_t h;
    if (evs_health(c, &h) != 0) {
        printf("down: the daemon did not answer: %s\n", evs_errstr(c));
        return 2;
    }
    if (h.status == EVS_HEALTH_OK)
        printf("ok\n");
    else
        printf("%s: %s\n", h.status == EVS_HEALTH_DEGRADED ? "degraded" : "down", h.reason);
    return (int)h.status;
}

/* Reads all of stdin into a new string. */
static char *read_stdin(void) {
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    while (buf) {
        size_t n = fread(buf + len, 1, cap - len - 1, stdin);
        len += n;
        if (n == 0) break;
        if (cap - len < 2) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
    }
    if (buf) buf[len] = '\0';
    return buf;
}

/* Parses text as a JSON object and packs it as a msgpack map into b. */
static int json_object_to_msgpack(const char *text, const char *what, msgpack_sbuffer *b) {
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    if (!j) {
        fprintf(stderr, "evstore: invalid_argument: %s is not JSON: %s (line %d, column %d)\n",
                what, jerr.text, jerr.line, jerr.column);
        return 1;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        fprintf(stderr, "evstore: invalid_argument: %s must be a JSON object\n", what);
        return 1;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, msgpack_sbuffer_write);
    int rc = json_to_msgpack(&pk, j);
    json_decref(j);
    if (rc != 0) return fail_msg("out_of_memory", "cannot pack the payload");
    return 0;
}

static int cmd_append(evs_context_t *c, int argc, char **argv) {
    args_t a;
    if (parse_args(argc, argv, &a, ",version,metadata,event-id,") != 0) return 2;
    if (a.npos < 2 || a.npos > 3) return usage("append needs ENTITY TOPIC [JSON]%s", "");
    evs_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.entity_id = (char *)a.pos[0];
    ev.topic = (char *)a.pos[1];
    if (a.version) {
        if (parse_u64(a.version, "--version", &ev.version) != 0) return 2;
        ev.has_version = 1;
    }
    if (a.event_id) {
        if (evs_uuid_parse(a.event_id, ev.event_id) != 0)
            return usage("--event-id is not a UUID: %s", a.event_id);
    } else {
        /* Chosen here rather than by the server so that the output can name it. */
        uuid_generate_random(ev.event_id);
    }
    ev.has_event_id = 1;
    msgpack_sbuffer payload, meta;
    msgpack_sbuffer_init(&payload);
    msgpack_sbuffer_init(&meta);
    int rc = 0;
    char *text = NULL;
    const char *src = a.npos == 3 ? a.pos[2] : "{}";
    if (strcmp(src, "-") == 0) {
        src = text = read_stdin();
        if (!text) rc = fail_msg("io", "cannot read the payload from stdin");
    }
    if (rc == 0) rc = json_object_to_msgpack(src, "the payload", &payload);
    if (rc == 0 && a.metadata) rc = json_object_to_msgpack(a.metadata, "--metadata", &meta);
    if (rc == 0) {
        ev.payload = (uint8_t *)payload.data;
        ev.payload_len = payload.size;
        if (a.metadata) {
            ev.metadata = (uint8_t *)meta.data;
            ev.metadata_len = meta.size;
        }
        uint64_t pos, ver;
        if (evs_append(c, &ev, 1, &pos, &ver) < 0) {
            rc = fail(c);
        } else {
            char uuid[37];
            evs_uuid_format(ev.event_id, uuid);
            rc = print_json(json_pack("{s:s,s:I,s:s,s:I,s:s}", "event_id", uuid, "position",
                                      (json_int_t)pos, "entity_id", ev.entity_id, "version",
                                      (json_int_t)ver, "topic", ev.topic));
        }
    }
    free(text);
    msgpack_sbuffer_destroy(&payload);
    msgpack_sbuffer_destroy(&meta);
    return rc;
}

static int cmd_get(evs_context_t *c, int argc, char **argv) {
    args_t a;
    if (parse_args(argc, argv, &a, ",from,limit,backwards,") != 0) return 2;
    if (a.npos != 1) return usage("get needs ENTITY%s", "");
    uint64_t from = a.backwards ? EVS_LATEST : 0;
    uint32_t limit;
    if (a.from && parse_u64(a.from, "--from", &from) != 0) return 2;
    if (parse_limit(a.limit, &limit) != 0) return 2;
    for (;;) {
        evs_events_t *list;
        if (evs_get_by_entity(c, a.pos[0], from, limit ? limit : PAGE, a.backwards, &list) < 0)
            return fail(c);
        int rc = print_events(list);
        size_t n = list->n;
        uint64_t last = n ? list->events[n - 1].version : 0;
        evs_events_free(list);
        if (rc) return rc;
        if (limit || n == 0) return 0;
        if (a.backwards) {
            if (last == 0) return 0;
            from = last - 1;
        } else {
            from = last + 1;
        }
    }
}

/* Pages through a position-ordered read (topic or the global log). */
static int page_positions(evs_context_t *c, const char *topic, const args_t *a) {
    uint64_t after = 0;
    uint32_t limit;
    if (a->after && parse_u64(a->after, "--after", &after) != 0) return 2;
    if (parse_limit(a->limit, &limit) != 0) return 2;
    for (;;) {
        evs_events_t *list;
        int r = topic ? evs_get_by_topic(c, topic, after, limit ? limit : PAGE, &list)
                      : evs_read_all(c, after, limit ? limit : PAGE, &list);
        if (r < 0) return fail(c);
        int rc = print_events(list);
        size_t n = list->n;
        if (n) after = list->events[n - 1].position;
        evs_events_free(list);
        if (rc) return rc;
        if (limit || n == 0) return 0;
    }
}

static int cmd_topic(evs_context_t *c, int argc, char **argv) {
    args_t a;
    if (parse_args(argc, argv, &a, ",after,limit,") != 0) return 2;
    if (a.npos != 1) return usage("topic needs TOPIC%s", "");
    return page_positions(c, a.pos[0], &a);
}

static int cmd_all(evs_context_t *c, int argc, char **argv) {
    args_t a;
    if (parse_args(argc, argv, &a, ",after,limit,") != 0) return 2;
    if (a.npos) return usage("all takes no positional arguments%s", "");
    return page_positions(c, NULL, &a);
}

static int cmd_event(evs_context_t *c, int argc, char **argv) {
    args_t a;
    if (parse_args(argc, argv, &a, ",") != 0) return 2;
    if (a.npos != 1) return usage("event needs UUID%s", "");
    uint8_t id[16];
    if (evs_uuid_parse(a.pos[0], id) != 0) return usage("not a UUID: %s", a.pos[0]);
    evs_event_t *ev;
    if (evs_get_by_id(c, id, &ev) < 0) return fail(c);
    int rc = print_json(event_to_json(ev));
    evs_event_free(ev);
    return rc;
}

static int cmd_delete(evs_context_t *c, int argc, char **argv) {
    args_t a;
    if (parse_args(argc, argv, &a, ",") != 0) return 2;
    if (a.npos != 1) return usage("delete needs ENTITY%s", "");
    uint64_t n;
    if (evs_delete_entity(c, a.pos[0], &n) < 0) return fail(c);
    return print_json(json_pack("{s:I}", "deleted", (json_int_t)n));
}

/* `evstore stats` and `evstore config`: the daemon's map for the op, as indented JSON in the
 * daemon's key order (so the output follows whatever counters the daemon adds). */
static int print_admin_map(evs_context_t *c, const char *op, int argc) {
    if (argc) {
        fprintf(stderr, "evstore: %s takes no arguments\n", op);
        return 2;
    }
    uint8_t *map;
    size_t len;
    if (evs_admin_call(c, op, &map, &len) < 0) return fail(c);
    json_t *j = msgpack_map_bytes_to_json(map, len);
    free(map);
    return print_json_as(j, JSON_INDENT(2));
}

/* consumers: one JSON object per consumer. */
static int cmd_consumers(evs_context_t *c, int argc, char **argv) {
    (void)argv;
    if (argc) return usage("consumers takes no arguments%s", "");
    evs_consumer_info_t *list;
    size_t n;
    if (evs_consumers(c, &list, &n, NULL) != 0) return fail(c);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = print_json(json_pack("{s:s, s:I, s:I, s:I, s:b}", "consumer", list[i].consumer,
                                  "position", (json_int_t)list[i].position, "head",
                                  (json_int_t)list[i].head, "lag", (json_int_t)list[i].lag,
                                  "active", list[i].active));
    free(list);
    return rc;
}

static int cmd_stats(evs_context_t *c, int argc, char **argv) {
    (void)argv;
    return print_admin_map(c, "stats", argc);
}

static int cmd_config(evs_context_t *c, int argc, char **argv) {
    (void)argv;
    return print_admin_map(c, "config", argc);
}

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

/* tail follows the log through an evs_stream_t: it connects by itself (also when the daemon is
 * not up yet), and after a lost connection or a daemon restart it resumes from the last event
 * it printed, so that its output has every event once and in order. */
static const char *token; /* --token; NULL: the library reads $EVSTORE_TOKEN */

/* A consumer's checkpoint, kept by tail --consumer on a connection of its own: written after
 * the events are printed (so an interruption prints some again, never skips one), when the
 * stream goes quiet or every CHECKPOINT_EVERY events. A failure is reported and tried again
 * with the next checkpoint, on a new connection. */
#define CHECKPOINT_EVERY 100

typedef struct tail_consumer {
    const char *name;
    const char *addr;
    int timeout_ms;
    evs_context_t *c;
    uint64_t printed, stored; /* the last position printed, and checkpointed */
} tail_consumer_t;

static evs_context_t *tail_connect(tail_consumer_t *t) {
    if (t->c && evs_err(t->c) < 0 && evs_err(t->c) <= EVS_EIO) {
        evs_free(t->c);
        t->c = NULL;
    }
    if (!t->c) {
        evs_options_t o = {
            .addr = t->addr, .timeout_ms = t->timeout_ms, .tls = tls_options(), .token = token};
        t->c = evs_connect_with_options(&o);
    }
    return t->c;
}

static void tail_checkpoint(tail_consumer_t *t) {
    if (!t->name || t->printed <= t->stored) return;
    evs_context_t *c = tail_connect(t);
    if (c && !c->err && evs_checkpoint(c, t->name, t->printed, NULL) == 0) {
        t->stored = t->printed;
        return;
    }
    fprintf(stderr, "evstore: checkpoint of %s at %llu failed: %s\n", t->name,
            (unsigned long long)t->printed, evs_errstr(c));
    if (c && evs_err(c) == EVS_ECONFLICT) t->stored = t->printed; /* moved on elsewhere */
}

static int tail_main(const char *addr, int timeout_ms, int argc, char **argv) {
    args_t a;
    if (parse_args(argc, argv, &a, ",after,topic,prefix,consumer,") != 0) return 2;
    if (a.npos) return usage("tail takes no positional arguments%s", "");
    evs_stream_options_t o = {.addr = addr,
                              .timeout_ms = timeout_ms,
                              .topics = a.topics,
                              .ntopics = a.ntopics,
                              .entity_prefix = a.prefix,
                              .tls = tls_options(),
                              .token = token};
    if (a.after) {
        if (parse_u64(a.after, "--after", &o.after) != 0) return 2;
        o.has_after = true;
    }
    tail_consumer_t tc = {.name = a.consumer, .addr = addr, .timeout_ms = timeout_ms};
    if (a.consumer && !a.after) {
        /* Start after the consumer's checkpoint; wait for the daemon like the stream does. */
        for (;;) {
            evs_context_t *c = tail_connect(&tc);
            if (c && !c->err && evs_get_checkpoint(c, a.consumer, &o.after) == 0) break;
            if (c && evs_err(c) == EVS_EBAD_REQUEST) return fail(c);
            if (interrupted) return 1;
            evs_free(tc.c);
            tc.c = NULL;
            struct timespec ts = {.tv_sec = 0, .tv_nsec = 200000000};
            nanosleep(&ts, NULL);
        }
        o.has_after = true;
        tc.stored = tc.printed = o.after;
    }
    /* No SA_RESTART: the waits inside evs_stream_next return when a signal comes. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    evs_stream_t *s = evs_stream_open(&o);
    if (!s) return usage("invalid --topic or --prefix (UTF-8 of 1 to 255 bytes)%s", "");
    int rc = 0;
    unsigned reconnects = 0, store_changes = 0;
    while (!interrupted && rc == 0) {
        evs_event_t *ev;
        int r = evs_stream_next(s, 1000, &ev);
        if (r < 0) {
            if (r == EVS_ENOMEM)
                fprintf(stderr, "evstore: out of memory\n");
            else
                fprintf(stderr, "evstore: stopped after position %llu: %s\n",
                        (unsigned long long)evs_stream_position(s), evs_stream_errstr(s));
            rc = 1;
            break;
        }
        if (evs_stream_store_changes(s) != store_changes) {
            store_changes = evs_stream_store_changes(s);
            reconnects = evs_stream_reconnects(s);
            fprintf(stderr,
                    "evstore: reconnected to a different store (store_id %s): its positions are "
                    "not the old store's; reading it from its beginning\n",
                    evs_stream_store_id(s));
        }
        if (evs_stream_reconnects(s) != reconnects) {
            reconnects = evs_stream_reconnects(s);
            fprintf(stderr, "evstore: reconnected; resuming after position %llu\n",
                    (unsigned long long)evs_stream_position(s));
        }
        if (!ev) {
            tail_checkpoint(&tc); /* quiet: keep what was printed */
            continue;
        }
        rc = print_json(event_to_json(ev));
        tc.printed = ev->position;
        evs_event_free(ev);
        fflush(stdout);
        if (tc.printed - tc.stored >= CHECKPOINT_EVERY) tail_checkpoint(&tc);
    }
    if (rc == 0) tail_checkpoint(&tc);
    evs_free(tc.c);
    evs_stream_close(s);
    return rc;
}

/* ---------------------------------------------------------------- tokens */

/* token new [NAME [PERMISSIONS]]: 256 random bits as 64 hex digits on the first line, and the
 * auth_file line that grants them (only the token's SHA-256 goes into the file) on the second. */
static int token_main(int argc, char **argv) {
    if (argc < 1 || strcmp(argv[0], "new") != 0 || argc > 3)
        return usage("usage: evstore token new [NAME [PERMISSIONS]]%s", "");
    const char *name = argc > 1 ? argv[1] : "client", *perms = argc > 2 ? argv[2] : "read";
    unsigned char raw[32], md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    char token[65], hash[65];
    if (RAND_bytes(raw, sizeof raw) != 1) return fail_msg("internal", "no randomness for a token");
    for (int k = 0; k < 32; k++)
        snprintf(token + 2 * k, 3, "%02x", raw[k]);
    if (!EVP_Digest(token, 64, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
        return fail_msg("internal", "cannot hash the token");
    for (int k = 0; k < 32; k++)
        snprintf(hash + 2 * k, 3, "%02x", md[k]);
    printf("%s\n%s %s token-sha256:%s\n", token, name, perms, hash);
    return fflush(stdout) == 0 ? 0 : fail_msg("io", "cannot write to stdout");
}

/* ---------------------------------------------------------------- main */

static const struct {
    const char *name;
    int (*run)(evs_context_t *c, int argc, char **argv);
} commands[] = {
    {"ping", cmd_ping},           {"append", cmd_append}, {"get", cmd_get},
    {"topic", cmd_topic},         {"event", cmd_event},   {"all", cmd_all},
    {"delete", cmd_delete},       {"stats", cmd_stats},   {"config", cmd_config},
    {"consumers", cmd_consumers}, {"health", cmd_health},
};

int main(int argc, char **argv) {
    const char *addr = getenv("EVSTORE_ADDR");
    if (!addr || !*addr) addr = EVS_DEFAULT_ADDR;
    int timeout_ms = 0;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("evstore %s\n", EVS_VERSION);
            return 0;
        }
        if (strcmp(argv[i], "--token") == 0 && i + 1 < argc) {
            token = argv[++i];
            continue;
        }
        if ((strcmp(argv[i], "-s") == 0 || strcmp(argv[i], "-t") == 0) && i + 1 < argc) {
            if (argv[i][1] == 's')
                addr = argv[++i];
            else
                timeout_ms = atoi(argv[++i]);
            continue;
        }
        if (take_tls_flag(argc, argv, &i)) continue;
        return usage("unknown option: %s", argv[i]);
    }
    const evs_tls_options_t *tls = tls_options();
    if (i >= argc) return usage(NULL, NULL);
    const char *cmd = argv[i];
    if (strcmp(cmd, "token") == 0) return token_main(argc - i - 1, argv + i + 1);
    if (token) setenv("EVSTORE_TOKEN", token, 1); /* for bench's connections too */
    if (strcmp(cmd, "bench") == 0) return bench_main(addr, tls, argc - i - 1, argv + i + 1);
    if (strcmp(cmd, "tail") == 0) return tail_main(addr, timeout_ms, argc - i - 1, argv + i + 1);
    for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++) {
        if (strcmp(commands[k].name, cmd) != 0) continue;
        evs_options_t opts = {.addr = addr, .timeout_ms = timeout_ms, .tls = tls, .token = token};
        evs_context_t *c = evs_connect_with_options(&opts);
        if ((!c || c->err) && strcmp(cmd, "health") == 0) {
            printf("down: cannot reach the daemon at %s: %s\n", addr,
                   c ? evs_errstr(c) : "out of memory");
            evs_free(c);
            return 2;
        }
        if (!c || c->err) {
            int rc = fail(c);
            evs_free(c);
            return rc;
        }
        int rc = commands[k].run(c, argc - i - 1, argv + i + 1);
        evs_free(c);
        return rc;
    }
    return usage("unknown command: %s", cmd);
}
