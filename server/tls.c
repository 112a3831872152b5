/* tls.c: the server's TLS context and per-connection sessions on memory BIOs (tls.h). */
#include "tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

/* Plaintext encrypted per SSL_write: the memory BIO holding its records stays this small. */
#define TLS_WRITE_CHUNK (64 * 1024)
/* A memory BIO whose buffer grew past this is replaced by an empty one once drained. */
#define TLS_BIO_KEEP 4096

struct tls_session {
    SSL *ssl;
    bool established;
    char *peer_cn;
};

/* Writes what why the last OpenSSL error says, after prefix, and clears OpenSSL's error queue. */
static void ssl_reason(char *why, size_t whylen, const char *prefix) {
    unsigned long e = ERR_peek_last_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    char buf[256];
    if (e && !reason) {
        ERR_error_string_n(e, buf, sizeof buf);
        reason = buf;
    }
    snprintf(why, whylen, "%s%s", prefix, reason ? reason : "unknown error");
    ERR_clear_error();
}

void tls_listen_address(const char *v, char *out, size_t outlen) {
    size_t n = strlen(v);
    const char *colon = strchr(v, ':');
    if (n > 0 && v[0] == '[' && v[n - 1] == ']')
        snprintf(out, outlen, "%s:%d", v, TLS_DEFAULT_PORT); /* [v6addr] */
    else if (!colon)
        snprintf(out, outlen, "%s:%d", v, TLS_DEFAULT_PORT); /* an IPv4 address */
    else if (v[0] != '[' && strchr(colon + 1, ':'))
        snprintf(out, outlen, "[%s]:%d", v, TLS_DEFAULT_PORT); /* a bare IPv6 address */
    else
        snprintf(out, outlen, "%s", v);
}

/* Checks that the file of option name can be read, for a clear message before OpenSSL's. */
static int check_readable(const char *name, const char *path, char *why, size_t whylen) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(why, whylen, "%s: cannot read %s: %s", name, path, strerror(errno));
        return -1;
    }
    fclose(f);
    return 0;
}

SSL_CTX *tls_ctx_new(const server_config_t *cfg, char *why, size_t whylen) {
    if (!cfg->tls_cert || !cfg->tls_key) {
        snprintf(why, whylen, "tls_listen is set: tls_cert and tls_key are required");
        return NULL;
    }
    if (check_readable("tls_cert", cfg->tls_cert, why, whylen) != 0 ||
        check_readable("tls_key", cfg->tls_key, why, whylen) != 0 ||
        (cfg->tls_ca && check_readable("tls_ca", cfg->tls_ca, why, whylen) != 0))
        return NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ssl_reason(why, whylen, "TLS: ");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* Clients connect afresh each time: no session cache and no TLS 1.3 tickets to send. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
    char prefix[600];
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
        snprintf(prefix, sizeof prefix, "tls_cert: %s is not a PEM certificate: ", cfg->tls_cert);
        goto failed;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1) {
        snprintf(prefix, sizeof prefix,
                 "tls_key: %s is not a PEM private key of tls_cert %s: ", cfg->tls_key,
                 cfg->tls_cert);
        goto failed;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(prefix, sizeof prefix, "tls_key: %s does not match tls_cert %s: ", cfg->tls_key,
                 cfg->tls_cert);
        goto failed;
    }
    if (cfg->tls_ca) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->tls_ca);
        if (!names || SSL_CTX_load_verify_locations(ctx, cfg->tls_ca, NULL) != 1) {
            if (names) sk_X509_NAME_pop_free(names, X509_NAME_free);
            snprintf(prefix, sizeof prefix,
                     "tls_ca: %s holds no PEM CA certificate: ", cfg->tls_ca);
            goto failed;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    return ctx;
failed:
    ssl_reason(why, whylen, prefix);
    SSL_CTX_free(ctx);
    return NULL;
}

void tls_ctx_free(SSL_CTX *ctx) {
    SSL_CTX_free(ctx);
}

int tls_check_config(const server_config_t *cfg, char *why, size_t whylen) {
    if (!cfg->tls_listen) {
        const char *set = cfg->tls_cert ? "tls_cert" : cfg->tls_key ? "tls_key" : "tls_ca";
        if (!cfg->tls_cert && !cfg->tls_key && !cfg->tls_ca) return 0;
        snprintf(why, whylen, "%s is set but tls_listen is not: set tls_listen to serve TLS", set);
        return -1;
    }
    char hostport[128], host[64];
    struct sockaddr_storage sa;
    tls_listen_address(cfg->tls_listen, hostport, sizeof hostport);
    int bad = addr_parse(hostport, &sa, host, sizeof host);
    if (bad == ADDR_BAD_FORM) {
        snprintf(why, whylen, "tls_listen: \"%s\" is not HOST or HOST:PORT", cfg->tls_listen);
        return -1;
    }
    if (bad == ADDR_BAD_HOST) {
        snprintf(why, whylen, "tls_listen: %s is not an IPv4 or IPv6 address", host);
        return -1;
    }
    SSL_CTX *ctx = tls_ctx_new(cfg, why, whylen);
    if (!ctx) return -1;
    SSL_CTX_free(ctx);
    return 0;
}

/* ---------------------------------------------------------------- sessions */

/* An empty memory BIO that reports "retry" when read empty (more ciphertext will come). */
static BIO *mem_bio(void) {
    BIO *b = BIO_new(BIO_s_mem());
    if (b) BIO_set_mem_eof_return(b, -1);
    return b;
}

/* Replaces a drained memory BIO whose buffer grew past TLS_BIO_KEEP by an empty one. */
static void trim_bios(tls_session_t *s) {
    BUF_MEM *bm = NULL;
    BIO *r = SSL_get_rbio(s->ssl), *w = SSL_get_wbio(s->ssl), *b;
    if (BIO_ctrl_pending(r) == 0 && BIO_get_mem_ptr(r, &bm) == 1 && bm && bm->max > TLS_BIO_KEEP &&
        (b = mem_bio()))
        SSL_set0_rbio(s->ssl, b);
    bm = NULL;
    if (BIO_ctrl_pending(w) == 0 && BIO_get_mem_ptr(w, &bm) == 1 && bm && bm->max > TLS_BIO_KEEP &&
        (b = mem_bio()))
        SSL_set0_wbio(s->ssl, b);
}

tls_session_t *tls_session_new(SSL_CTX *ctx) {
    tls_session_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    BIO *r = mem_bio(), *w = mem_bio();
    s->ssl = SSL_new(ctx);
    if (!s->ssl || !r || !w) {
        BIO_free(r);
        BIO_free(w);
        SSL_free(s->ssl);
        free(s);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_bio(s->ssl, r, w);
    SSL_set_accept_state(s->ssl);
    return s;
}

void tls_session_free(tls_session_t *s) {
    if (!s) return;
    SSL_free(s->ssl);
    free(s->peer_cn);
    free(s);
}

int tls_session_feed(tls_session_t *s, const uint8_t *p, size_t n) {
    if (n == 0) return 0;
    return BIO_write(SSL_get_rbio(s->ssl), p, (int)n) == (int)n ? 0 : -1;
}

/* Keeps the subject CN of the client certificate the handshake verified. */
static void take_peer_cn(tls_session_t *s) {
    X509 *cert = SSL_get0_peer_certificate(s->ssl);
    if (!cert || SSL_get_verify_result(s->ssl) != X509_V_OK) return;
    char cn[256];
    int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
    if (n > 0 && (size_t)n < sizeof cn) s->peer_cn = strdup(cn);
}

int tls_session_handshake(tls_session_t *s, char *why, size_t whylen) {
    if (s->established) return 1;
    int r = SSL_do_handshake(s->ssl);
    if (r == 1) {
        s->established = true;
        take_peer_cn(s);
        trim_bios(s);
        return 1;
    }
    int e = SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        trim_bios(s);
        return TLS_AGAIN;
    }
    long verify = SSL_get_verify_result(s->ssl);
    if (verify != X509_V_OK) {
        snprintf(why, whylen, "client certificate not verified: %s",
                 X509_verify_cert_error_string(verify));
        ERR_clear_error();
    } else if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN) {
        snprintf(why, whylen, "the client ended the handshake");
        ERR_clear_error();
    } else {
        ssl_reason(why, whylen, "");
    }
    return TLS_FAILED;
}

bool tls_session_established(const tls_session_t *s) {
    return s->established;
}

ssize_t tls_session_read(tls_session_t *s, uint8_t *buf, size_t len, char *why, size_t whylen) {
    int r = SSL_read(s->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    if (r > 0) return r;
    int e = SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        trim_bios(s);
        return TLS_AGAIN;
    }
    if (e == SSL_ERROR_ZERO_RETURN) return TLS_CLOSED;
    ssl_reason(why, whylen, "TLS: ");
    return TLS_FAILED;
}

bool tls_session_has_input(const tls_session_t *s) {
    return BIO_ctrl_pending(SSL_get_rbio(s->ssl)) > 0 || SSL_has_pending(s->ssl);
}

int tls_session_take_output(tls_session_t *s, codec_buf_t *out) {
    BIO *w = SSL_get_wbio(s->ssl);
    size_t n = BIO_ctrl_pending(w);
    if (n == 0) return 0;
    if (codec_buf_reserve(out, n) != 0) return -1;
    int r = BIO_read(w, out->data + out->len, (int)n);
    if (r != (int)n) return -1;
    out->len += n;
    trim_bios(s);
    return 0;
}

int tls_session_write(tls_session_t *s, const uint8_t *p, size_t n, codec_buf_t *out) {
    size_t off = 0;
    while (off < n) {
        size_t chunk = n - off < TLS_WRITE_CHUNK ? n - off : TLS_WRITE_CHUNK;
        int r = SSL_write(s->ssl, p + off, (int)chunk);
        if (r <= 0) {
            ERR_clear_error();
            return -1;
        }
        off += (size_t)r;
        if (tls_session_take_output(s, out) != 0) return -1;
    }
    return 0;
}

void tls_session_close_notify(tls_session_t *s) {
    if (s->established) SSL_shutdown(s->ssl);
    ERR_clear_error();
}

const char *tls_session_peer_cn(const tls_session_t *s) {
    return s->peer_cn;
}
