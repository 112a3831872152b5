/* auth.c: the auth_file parser and the principal table (see auth.h). */
#include "auth.h"

#include <errno.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct auth_table {
    auth_principal_t *principals;
    size_t n;
};

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (errlen) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---------------------------------------------------------------- the table */

static void free_strings(char **v, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void principal_free(auth_principal_t *p) {
    free(p->name);
    free_strings(p->write_prefixes, p->nwrite_prefixes);
    free_strings(p->delete_prefixes, p->ndelete_prefixes);
    free_strings(p->permissions, p->npermissions);
    free(p->token_sha256);
    free(p->uids);
    free_strings(p->cert_cns, p->ncert_cns);
}

void auth_table_free(auth_table_t *t) {
    if (!t) return;
    for (size_t i = 0; i < t->n; i++)
        principal_free(&t->principals[i]);
    free(t->principals);
    free(t);
}

size_t auth_table_size(const auth_table_t *t) {
    return t ? t->n : 0;
}

/* Grows the array *v of *n elements of size bytes by one zeroed element; NULL when out of
 * memory. The capacity is the power of two at or above *n, so it doubles when *n reaches one:
 * a file of many lines is parsed in linear time. */
static void *grow(void *v, size_t *n, size_t size) {
    if (*n >= SIZE_MAX / size / 2) return NULL;
    uint8_t *p = *(uint8_t **)v;
    if ((*n & (*n - 1)) == 0) { /* 0 or a power of two: full */
        p = realloc(p, (*n ? 2 * *n : 1) * size);
        if (!p) return NULL;
        *(void **)v = p;
    }
    memset(p + *n * size, 0, size);
    return p + (*n)++ * size;
}

static int add_string(char ***v, size_t *n, const char *s, size_t len) {
    char *dup = strndup(s, len);
    if (!dup) return -1;
    char **slot = grow(v, n, sizeof *slot);
    if (!slot) {
        free(dup);
        return -1;
    }
    *slot = dup;
    return 0;
}

/* ---------------------------------------------------------------- parsing */

/* One line being parsed: its fields are cut at blanks. */
typedef struct line {
    const char *p, *end;
    int no;
} line_t;

static bool is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* The next blank-separated field of l, or false at the end of the line. */
static bool next_field(line_t *l, const char **f, size_t *len) {
    while (l->p < l->end && is_blank(*l->p))
        l->p++;
    if (l->p == l->end) return false;
    *f = l->p;
    while (l->p < l->end && !is_blank(*l->p))
        l->p++;
    *len = (size_t)(l->p - *f);
    return true;
}

static bool name_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '@' || c == '-';
}

/* A prefix or cert-cn: printable ASCII or UTF-8 bytes, no blank, no comma (the list separator). */
static bool value_ok(const char *s, size_t len, size_t max) {
    if (len == 0 || len > max) return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x21 || s[i] == 0x7f || s[i] == ',') return false;
    return true;
}

static bool starts(const char *s, size_t len, const char *word) {
    size_t n = strlen(word);
    return len >= n && memcmp(s, word, n) == 0;
}

static bool equals(const char *s, size_t len, const char *word) {
    return len == strlen(word) && memcmp(s, word, len) == 0;
}

#define NOMEM(l) fail(err, errlen, "line %d: out of memory", (l)->no)

/* Adds the permission s (len bytes, one item of the comma list) to p. */
static int parse_permission(auth_principal_t *p, const line_t *l, const char *s, size_t len,
                            char *err, size_t errlen) {
    const char *colon = memchr(s, ':', len);
    size_t word = colon ? (size_t)(colon - s) : len;
    bool is_write = equals(s, word, "write"), is_delete = equals(s, word, "delete");
    if (colon && !is_write && !is_delete)
        return fail(err, errlen, "line %d: only write and delete take a prefix (\"%.*s\")", l->no,
                    (int)(len > 80 ? 80 : len), s);
    if (colon) {
        const char *prefix = colon + 1;
        size_t plen = len - word - 1;
        if (!value_ok(prefix, plen, AUTH_PREFIX_MAX))
            return fail(err, errlen,
                        "line %d: %.*s: the prefix must be 1 to %d bytes without blanks or commas",
                        l->no, (int)word, s, AUTH_PREFIX_MAX);
        if (is_write ? add_string(&p->write_prefixes, &p->nwrite_prefixes, prefix, plen)
                     : add_string(&p->delete_prefixes, &p->ndelete_prefixes, prefix, plen))
            return NOMEM(l);
    } else if (is_write) {
        p->write_all = true;
    } else if (is_delete) {
        p->delete_all = true;
    } else if (equals(s, len, "read")) {
        p->read = true;
    } else if (equals(s, len, "admin")) {
        p->admin = true;
    } else {
        return fail(err, errlen,
                    "line %d: unknown permission \"%.*s\" (read, write[:PREFIX], "
                    "delete[:PREFIX] or admin)",
                    l->no, (int)(len > 80 ? 80 : len), s);
    }
    if (add_string(&p->permissions, &p->npermissions, s, len)) return NOMEM(l);
    return 0;
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int parse_credential(auth_principal_t *p, const line_t *l, const char *s, size_t len,
                            char *err, size_t errlen) {
    if (starts(s, len, "token-sha256:")) {
        const char *hex = s + 13;
        uint8_t hash[32];
        if (len - 13 != 64)
            return fail(err, errlen, "line %d: token-sha256 needs 64 hex digits (has %zu)", l->no,
                        len - 13);
        for (int i = 0; i < 32; i++) {
            int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
            if (hi < 0 || lo < 0)
                return fail(err, errlen, "line %d: token-sha256 holds a non-hex character", l->no);
            hash[i] = (uint8_t)(hi << 4 | lo);
        }
        uint8_t(*slot)[32] = grow(&p->token_sha256, &p->ntokens, sizeof *slot);
        if (!slot) return NOMEM(l);
        memcpy(*slot, hash, 32);
        return 0;
    }
    if (starts(s, len, "uid:")) {
        unsigned long long v = 0;
        if (len == 4 || len - 4 > 10)
            return fail(err, errlen, "line %d: uid needs a number", l->no);
        for (size_t i = 4; i < len; i++) {
            if (s[i] < '0' || s[i] > '9')
                return fail(err, errlen, "line %d: uid needs a number", l->no);
            v = v * 10 + (unsigned)(s[i] - '0');
        }
        if (v >= UINT32_MAX) return fail(err, errlen, "line %d: uid %llu is too large", l->no, v);
        uid_t uid = (uid_t)v;
        uid_t *slot = grow(&p->uids, &p->nuids, sizeof *slot);
        if (!slot) return NOMEM(l);
        *slot = uid;
        return 0;
    }
    if (starts(s, len, "cert-cn:")) {
        const char *cn = s + 8;
        size_t cnlen = len - 8;
        if (!value_ok(cn, cnlen, AUTH_NAME_MAX))
            return fail(err, errlen, "line %d: cert-cn needs 1 to %d bytes without blanks", l->no,
                        AUTH_NAME_MAX);
        if (add_string(&p->cert_cns, &p->ncert_cns, cn, cnlen)) return NOMEM(l);
        return 0;
    }
    return fail(err, errlen,
                "line %d: unknown credential \"%.*s\" (token-sha256:HEX, uid:N or cert-cn:NAME)",
                l->no, (int)(len > 40 ? 40 : len), s);
}

/* Parses one line (comment removed) into p: NAME PERMISSIONS CREDENTIAL... */
static int parse_line(auth_principal_t *p, line_t *l, char *err, size_t errlen) {
    const char *f;
    size_t len;
    next_field(l, &f, &len);
    for (size_t i = 0; i < len; i++)
        if (!name_char((unsigned char)f[i]))
            return fail(err, errlen,
                        "line %d: a name holds only letters, digits and the characters ._@-",
                        l->no);
    if (len > AUTH_NAME_MAX)
        return fail(err, errlen, "line %d: the name is longer than %d bytes", l->no, AUTH_NAME_MAX);
    char name[AUTH_NAME_MAX + 1];
    memcpy(name, f, len);
    name[len] = '\0';
    p->line = l->no;
    if (!(p->name = strdup(name))) return NOMEM(l);

    if (!next_field(l, &f, &len))
        return fail(err, errlen, "line %d: %s has no permissions (NAME PERMISSIONS CREDENTIALS)",
                    l->no, name);
    for (const char *item = f, *end = f + len; item <= end;) {
        const char *comma = memchr(item, ',', (size_t)(end - item));
        const char *stop = comma ? comma : end;
        if (stop == item) return fail(err, errlen, "line %d: empty permission in the list", l->no);
        if (parse_permission(p, l, item, (size_t)(stop - item), err, errlen)) return -1;
        item = stop + 1;
    }
    size_t ncred = 0;
    while (next_field(l, &f, &len)) {
        if (parse_credential(p, l, f, len, err, errlen)) return -1;
        ncred++;
    }
    if (ncred == 0)
        return fail(err, errlen,
                    "line %d: %s has no credentials (token-sha256:HEX, uid:N or cert-cn:NAME)",
                    l->no, name);
    return 0;
}

/* One name or credential of the table, for the check that none is given twice. */
typedef struct key_ref {
    int kind; /* 0 name, 1 token-sha256, 2 uid, 3 cert-cn */
    const void *key;
    size_t len;
    int line;
} key_ref_t;

static int key_cmp(const void *a, const void *b) {
    const key_ref_t *x = a, *y = b;
    if (x->kind != y->kind) return x->kind - y->kind;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    int c = memcmp(x->key, y->key, x->len);
    if (c) return c;
    return x->line - y->line;
}

/* Fails, naming the later line, when two principals have the same name or one credential names
 * two principals (or one twice). Sorting keeps this O(n log n) on a file of any size. */
static int check_unique(const auth_table_t *t, char *err, size_t errlen) {
    size_t n = 0;
    for (size_t i = 0; i < t->n; i++)
        n += 1 + t->principals[i].ntokens + t->principals[i].nuids + t->principals[i].ncert_cns;
    if (n < 2) return 0;
    key_ref_t *keys = malloc(n * sizeof *keys);
    if (!keys) return fail(err, errlen, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < t->n; i++) {
        const auth_principal_t *p = &t->principals[i];
        keys[k++] = (key_ref_t){0, p->name, strlen(p->name), p->line};
        for (size_t j = 0; j < p->ntokens; j++)
            keys[k++] = (key_ref_t){1, p->token_sha256[j], 32, p->line};
        for (size_t j = 0; j < p->nuids; j++)
            keys[k++] = (key_ref_t){2, &p->uids[j], sizeof p->uids[j], p->line};
        for (size_t j = 0; j < p->ncert_cns; j++)
            keys[k++] = (key_ref_t){3, p->cert_cns[j], strlen(p->cert_cns[j]), p->line};
    }
    qsort(keys, n, sizeof *keys, key_cmp);
    int rc = 0;
    for (size_t i = 1; i < n && rc == 0; i++) {
        const key_ref_t *a = &keys[i - 1], *b = &keys[i];
        if (a->kind != b->kind || a->len != b->len || memcmp(a->key, b->key, a->len) != 0) continue;
        if (b->kind == 0)
            rc = fail(err, errlen, "line %d: principal %s is defined twice (first on line %d)",
                      b->line, (const char *)b->key, a->line);
        else if (b->kind == 1)
            rc = fail(err, errlen, "line %d: this token-sha256 is given twice (also on line %d)",
                      b->line, a->line);
        else if (b->kind == 2)
            rc = fail(err, errlen, "line %d: uid:%u is given twice (also on line %d)", b->line,
                      (unsigned)*(const uid_t *)b->key, a->line);
        else
            rc = fail(err, errlen, "line %d: cert-cn:%s is given twice (also on line %d)", b->line,
                      (const char *)b->key, a->line);
    }
    free(keys);
    return rc;
}

int auth_table_parse(const char *text, size_t len, auth_table_t **out, char *err, size_t errlen) {
    *out = NULL;
    auth_table_t *t = calloc(1, sizeof *t);
    if (!t) return fail(err, errlen, "out of memory");
    const char *p = text, *end = text + len;
    int no = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        no++;
        if (memchr(p, '\0', (size_t)(stop - p))) {
            fail(err, errlen, "line %d: holds a NUL byte", no);
            goto failed;
        }
        const char *hash = memchr(p, '#', (size_t)(stop - p));
        line_t l = {.p = p, .end = hash ? hash : stop, .no = no};
        p = nl ? nl + 1 : end;
        const char *f;
        size_t flen;
        line_t probe = l;
        if (!next_field(&probe, &f, &flen)) continue; /* blank or comment */
        auth_principal_t *pr = grow(&t->principals, &t->n, sizeof *pr);
        if (!pr) {
            fail(err, errlen, "line %d: out of memory", no);
            goto failed;
        }
        if (parse_line(pr, &l, err, errlen) != 0) goto failed; /* freed with the table */
    }
    if (check_unique(t, err, errlen) != 0) goto failed;
    *out = t;
    return 0;
failed:
    auth_table_free(t);
    return -1;
}

int auth_table_load(const char *path, auth_table_t **out, char *err, size_t errlen) {
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) return fail(err, errlen, "%s: %s", path, strerror(errno));
    char *buf = malloc(AUTH_FILE_MAX + 1);
    if (!buf) {
        fclose(f);
        return fail(err, errlen, "%s: out of memory", path);
    }
    size_t n = fread(buf, 1, AUTH_FILE_MAX + 1, f);
    int bad = ferror(f);
    fclose(f);
    int rc = 0;
    char msg[256];
    if (bad)
        rc = fail(err, errlen, "%s: read error", path);
    else if (n > AUTH_FILE_MAX)
        rc = fail(err, errlen, "%s: larger than %u bytes", path, AUTH_FILE_MAX);
    else if (auth_table_parse(buf, n, out, msg, sizeof msg) != 0)
        rc = fail(err, errlen, "%s: %s", path, msg);
    free(buf);
    return rc;
}

/* ---------------------------------------------------------------- lookups */

int auth_sha256_hex(const void *data, size_t len, char hex[65]) {
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) return -1;
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return 0;
}

const auth_principal_t *auth_find_token(const auth_table_t *t, const char *token, size_t len) {
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (!t || !EVP_Digest(token, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) return NULL;
    /* Every hash is compared, whichever matches: the time taken says nothing about which. */
    const auth_principal_t *found = NULL;
    for (size_t i = 0; i < t->n; i++)
        for (size_t k = 0; k < t->principals[i].ntokens; k++)
            if (CRYPTO_memcmp(t->principals[i].token_sha256[k], md, 32) == 0)
                found = &t->principals[i];
    OPENSSL_cleanse(md, sizeof md);
    return found;
}

const auth_principal_t *auth_find_uid(const auth_table_t *t, uid_t uid) {
    for (size_t i = 0; t && i < t->n; i++)
        for (size_t k = 0; k < t->principals[i].nuids; k++)
            if (t->principals[i].uids[k] == uid) return &t->principals[i];
    return NULL;
}

const auth_principal_t *auth_find_cert_cn(const auth_table_t *t, const char *cn) {
    for (size_t i = 0; t && cn && i < t->n; i++)
        for (size_t k = 0; k < t->principals[i].ncert_cns; k++)
            if (strcmp(t->principals[i].cert_cns[k], cn) == 0) return &t->principals[i];
    return NULL;
}

const auth_principal_t *auth_find_name(const auth_table_t *t, const char *name) {
    for (size_t i = 0; t && name && i < t->n; i++)
        if (strcmp(t->principals[i].name, name) == 0) return &t->principals[i];
    return NULL;
}

/* ---------------------------------------------------------------- permissions */

static bool has_prefix(char *const *prefixes, size_t n, const char *entity_id) {
    for (size_t i = 0; i < n; i++)
        if (strncmp(entity_id, prefixes[i], strlen(prefixes[i])) == 0) return true;
    return false;
}

bool auth_allows(const auth_principal_t *p, auth_perm_t perm, const char *entity_id) {
    if (perm == AUTH_NONE) return true;
    if (!p) return false;
    switch (perm) {
    case AUTH_READ:
        return p->read;
    case AUTH_ADMIN:
        return p->admin;
    case AUTH_WRITE:
        if (p->write_all) return true;
        if (!entity_id) return p->nwrite_prefixes > 0;
        return has_prefix(p->write_prefixes, p->nwrite_prefixes, entity_id);
    case AUTH_DELETE:
        if (p->delete_all) return true;
        if (!entity_id) return p->ndelete_prefixes > 0;
        return has_prefix(p->delete_prefixes, p->ndelete_prefixes, entity_id);
    case AUTH_NONE:
        break;
    }
    return true;
}

const char *auth_perm_name(auth_perm_t perm) {
    static const char *const names[] = {"none", "read", "write", "delete", "admin"};
    return (unsigned)perm < 5 ? names[perm] : "?";
}
