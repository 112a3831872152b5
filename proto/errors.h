/* errors.h: the stable error codes of the evstore protocol.
 *
 * Every error a client sees carries one of these codes, both as a number (this enum, used by C
 * code on both sides) and as a string on the wire (evs_code_name). The strings are part of the
 * public protocol (docs/protocol.md) and never change; new codes are only ever added.
 * This header is self-contained: it is installed as <evstore/errors.h>. */
#ifndef EVS_ERRORS_H
#define EVS_ERRORS_H

#include <stddef.h>

/* Exported from libevstore.so (built with hidden visibility by default). */
#ifndef EVS_PROTO_API
#if defined(__GNUC__)
#define EVS_PROTO_API __attribute__((visibility("default")))
#else
#define EVS_PROTO_API
#endif
#endif

typedef enum evs_code {
    EVS_OK = 0,
    /* Codes a server sends. */
    EVS_EBAD_REQUEST = -1,    /* malformed or invalid request */
    EVS_ETOO_LARGE = -2,      /* frame longer than the server's max_frame */
    EVS_ECONFLICT = -3,       /* optimistic-concurrency failure or duplicate event id */
    EVS_ENOT_FOUND = -4,      /* no such event */
    EVS_EUNAVAILABLE = -5,    /* the store cannot serve now; retry later */
    EVS_EINTERNAL = -6,       /* a bug or an unexpected failure in the server */
    EVS_ELIMIT_EXCEEDED = -7, /* a configured limit of the server refused the request */
    EVS_EUNAUTHORIZED = -8,   /* no credentials, or wrong ones (auth) */
    EVS_EFORBIDDEN = -9,      /* the principal lacks the permission the request needs */
    /* Codes only the client library produces (never on the wire). */
    EVS_EIO = -100,       /* connect, read or write failed; the context is dead */
    EVS_EPROTOCOL = -101, /* the server sent something that is not the protocol; dead */
    EVS_ETIMEOUT = -102,  /* no reply in time; the context is dead */
    EVS_EINVAL = -103,    /* the caller passed an invalid argument; nothing was sent */
    EVS_ENOMEM = -104,    /* out of memory */
    /* Codes only the client library's domain layer produces. */
    EVS_EWRONG_TYPE = -105,           /* an event that belongs to another entity type */
    EVS_ESTORED_NOT_PUBLISHED = -106, /* events stored, but an in-process subscriber failed */
    EVS_EALREADY_PROCESSED = -107 /* a tracked save's event was processed before: nothing stored */
} evs_code_t;

/* The wire name of a code ("conflict", ...); "unknown" for a value that is not a code. */
EVS_PROTO_API const char *evs_code_name(int code);

/* The code whose wire name is the len bytes at name; EVS_EINTERNAL for an unknown name, so that
 * a client meeting a code added after it was written still sees an error. */
EVS_PROTO_API int evs_code_from_name(const char *name, size_t len);

#endif
