/* config.h: evstored's options: one table, and everything driven by it.
 *
 * Each option has a name (its key in the config file; the command-line flag is the name with
 * '-' for '_'), a type, a default, bounds, a help line and a reloadable flag. The table drives
 * the config-file parser, the command-line flags, --help, the `config` op (show config) and the
 * test that every option is documented in evstored.conf(5).
 *
 * Precedence, lowest first: the defaults, the config file, $EVSTORE_STORE (store only), the
 * command-line flags. A reload (SIGHUP) reads the file again and applies the same environment
 * and flags on top, so flags keep winning.
 *
 * The file: one "key = value" per line; blank lines and lines whose first non-blank character
 * is '#' or ';' are ignored; the value runs to the end of the line or to a '#' that starts it or
 * follows a blank (an inline comment), surrounding blanks removed; it may be put in double quotes
 * (to keep blanks or a " #"), followed only by blanks or a comment. Keys may be written with '-'
 * or '_'. An unknown key or a bad value is an error that names the file and line.
 *
 * Errors: a function that takes why and whylen writes there every error it found, one a line
 * ('\n' between them), each starting with where the value came from: "PATH:LINE: ", "--flag: ",
 * "$EVSTORE_STORE: " (errors between options, e.g. max_event over max_frame, name the options
 * instead). CONFIG_WHY_MAX bytes hold many; past them the last line says more were not shown.
 *
 * Strings in a server_config_t filled here belong to it: config_free releases them. */
#ifndef EVS_CONFIG_H
#define EVS_CONFIG_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "server.h"

#ifndef EVS_SYSCONFDIR
#define EVS_SYSCONFDIR "/etc"
#endif
/* A size of why that holds the messages of many errors. */
#define CONFIG_WHY_MAX 8192

/* Read at start-up when --config is not given and the file exists. */
#define CONFIG_DEFAULT_PATH EVS_SYSCONFDIR "/evstore/evstored.conf"

typedef enum config_type {
    CONFIG_STRING,   /* const char *; "" in the file means unset (NULL) unless required */
    CONFIG_BYTES,    /* size_t or uint32_t; a number with an optional k, M or G (x1024) suffix */
    CONFIG_SECONDS,  /* uint32_t milliseconds; the value is whole seconds, optional "s" */
    CONFIG_LOGLEVEL, /* int: error, warn, info or debug */
    CONFIG_COUNT,    /* uint32_t or uint64_t; a whole number, no suffix */
    CONFIG_MEMORY,   /* size_t; bytes as CONFIG_BYTES, or N% of the machine's physical memory */
    CONFIG_BOOL,     /* uint32_t 0 or 1: yes/no, true/false, on/off, 1/0 */
} config_type_t;

typedef struct config_option {
    const char *name; /* key; the flag is --name with '-' for '_' */
    config_type_t type;
    size_t offset;               /* of the field in server_config_t */
    size_t size;                 /* of that field (numbers: 4 or 8 bytes) */
    const char *def;             /* the default, as it would be written in the file */
    unsigned long long min, max; /* bounds of numbers, in the unit written (bytes, seconds) */
    bool reloadable;     /* false: a change needs a restart (a reload keeps the old value) */
    bool required;       /* strings: may not be empty */
    const char *metavar; /* for --help */
    const char *help;    /* one sentence for --help and the man page */
} config_option_t;

/* The table, config_noptions entries. */
extern const config_option_t config_options[];
extern const size_t config_noptions;

/* The command-line flag of an option without its "--" (the key with '-' for '_', except where a
 * one-shot mode took that name: --migrate applies the migrations, so the option migrate is
 * --migrate-mode), written into buf. Returns buf. */
const char *config_flag_name(const config_option_t *o, char *buf, size_t len);

/* Finds an option by key ('-' and '_' are the same); NULL when there is none. */
const config_option_t *config_find(const char *name);

/* Fills cfg with every default (strings duplicated). 0, or -1 when out of memory. */
int config_defaults(server_config_t *cfg);

/* Sets one option from its text, checking it whole (a listen address, a PostgreSQL connection
 * string as libpq reads it). 0, or -1 with one message in why ("max_frame: ..."). */
int config_set(server_config_t *cfg, const config_option_t *opt, const char *value, char *why,
               size_t whylen);

/* Reads a config file into cfg (on top of what it holds). 0, or -1 with every error in why
 * ("PATH:LINE: message", or "PATH: strerror"); cfg then holds the lines without one. */
int config_read_file(server_config_t *cfg, const char *path, char *why, size_t whylen);

/* The same for the len bytes at text, as if they were a file called name (the fuzz harness of
 * the parser reads its inputs so). */
int config_parse_text(server_config_t *cfg, const char *text, size_t len, const char *name,
                      char *why, size_t whylen);

/* A value given on the command line, applied after the file. */
typedef struct config_override {
    const config_option_t *opt;
    const char *value;
} config_override_t;

/* The smallest max_event accepted: CODEC_EVENT_OVERHEAD and a few bytes of names and payload. */
#define CONFIG_MIN_EVENT 256

/* The largest event an append may store: max_event, or when it is 0 the most that a reply of at
 * most max_frame bytes can carry (max_frame minus CODEC_PAGE_ENVELOPE). */
size_t config_max_event(const server_config_t *cfg);

/* Builds a whole configuration: defaults, then the file at path (when non-NULL), then
 * $EVSTORE_STORE, then the overrides, then config_check. 0, or -1 with every error of all of them
 * in why and cfg freed. */
int config_load(server_config_t *cfg, const char *path, const config_override_t *overrides,
                size_t noverrides, char *why, size_t whylen);

/* Checks what values alone cannot say (a listener at all, TLS files, limits against each
 * other, protected mode). 0, or -1 with every error in why. */
int config_check(const server_config_t *cfg, char *why, size_t whylen);

/* The number of errors in why as the functions above fill it. */
size_t config_errors_count(const char *why);

/* Copies a store URL (or conninfo string) into buf with its password hidden, in every form libpq
 * accepts: the URL's user:password@, ?password= (also given twice), and password = 'quoted' in
 * a key=value string. A string libpq cannot parse is not shown. */
void config_store_masked(const char *url, char *buf, size_t len);

/* Writes opt's value in cfg as the file would hold it (a store URL's password hidden). */
void config_format(const server_config_t *cfg, const config_option_t *opt, char *buf, size_t len);

/* True when opt has the same value in a and b. */
bool config_same(const server_config_t *a, const server_config_t *b, const config_option_t *opt);

/* Copies opt's value from src into dst (a string is duplicated). 0, or -1 when out of memory. */
int config_copy_option(server_config_t *dst, const server_config_t *src,
                       const config_option_t *opt);

/* Frees the strings of cfg and clears it. */
void config_free(server_config_t *cfg);

/* Prints the option lines of --help. */
void config_print_help(FILE *out);

/* Packs the effective options as a map of maps: name -> {"value", "default", "reloadable"}. */
void config_pack(msgpack_packer *pk, const server_config_t *cfg);

#endif
