/* tls.c: TLS under libevstore's contexts, blocking and asynchronous (OpenSSL 3).
 *
 * A session sits on the context's non-blocking socket (SSL_set_fd): the blocking client waits
 * with poll for what the session asks (readable or writable), the asynchronous one asks its
 * event loop through its hooks. The server is verified against ca_file or the system's store,
 * and its certificate must name the host the address gives (or server_name): a DNS name, or an
 * IP address for a numeric host. TLS 1.2 is the lowest version accepted. */
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_priv.h"

struct client_tls {
    SSL_CTX *ctx;
    SSL *ssl;
};

const char *client_tls_strip(const char *addr, bool *tls) {
    *tls = strncmp(addr, "tls://", 6) == 0;
    return *tls ? addr + 6 : addr;
}

/* Writes the last OpenSSL error's reason after prefix, and clears OpenSSL's error queue. */
static void ssl_reason(char *err, size_t errlen, const char *prefix) {
    unsigned long e = ERR_peek_last_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    snprintf(err, errlen, "%s%s", prefix, reason ? reason : "the connection was closed");
    ERR_clear_error();
}

void client_tls_free(client_tls_t *t) {
    if (!t) return;
    SSL_free(t->ssl);
    SSL_CTX_free(t->ctx);
    free(t);
}

/* Loads the trust anchors and the client certificate of o into a new client context. */
static SSL_CTX *client_ctx(const evs_tls_options_t *o, char *err, size_t errlen) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        ssl_reason(err, errlen, "TLS: ");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    char prefix[600];
    const char *ca = o ? o->ca_file : NULL;
    if (ca ? SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1
           : SSL_CTX_set_default_verify_paths(ctx) != 1) {
        snprintf(prefix, sizeof prefix,
                 "TLS: cannot load the CA certificates %s: ", ca ? ca : "of the system");
        goto failed;
    }
    if (o && (o->cert_file || o->key_file)) {
        if (!o->cert_file || !o->key_file) {
            snprintf(err, errlen, "TLS: a client certificate needs both cert_file and key_file");
            SSL_CTX_free(ctx);
            return NULL;
        }
        snprintf(prefix, sizeof prefix,
                 "TLS: cannot load the client certificate %s and key %s: ", o->cert_file,
                 o->key_file);
        if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1)
            goto failed;
    }
    return ctx;
failed:
    ssl_reason(err, errlen, prefix);
    SSL_CTX_free(ctx);
    return NULL;
}

client_tls_t *client_tls_new(int fd, const char *addr, const evs_tls_options_t *o, char *err,
                             size_t errlen) {
    /* The host to verify: server_name, else the address's host without brackets. */
    char host[256];
    if (o && o->server_name) {
        snprintf(host, sizeof host, "%s", o->server_name);
    } else {
        const char *colon = strrchr(addr, ':');
        size_t n = colon ? (size_t)(colon - addr) : strlen(addr);
        if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']') {
            addr++;
            n -= 2;
        }
        if (n >= sizeof host) n = sizeof host - 1;
        memcpy(host, addr, n);
        host[n] = '\0';
    }
    client_tls_t *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!(t->ctx = client_ctx(o, err, errlen))) {
        free(t);
        return NULL;
    }
    t->ssl = SSL_new(t->ctx);
    unsigned char ip[16];
    bool numeric = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
    if (!t->ssl || SSL_set_fd(t->ssl, fd) != 1 ||
        (numeric
             ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host) != 1
             : SSL_set1_host(t->ssl, host) != 1 || SSL_set_tlsext_host_name(t->ssl, host) != 1)) {
        ssl_reason(err, errlen, "TLS: ");
        client_tls_free(t);
        return NULL;
    }
    SSL_set_connect_state(t->ssl);
    return t;
}

/* Maps an SSL call's result r that is not a success to CLIENT_TLS_*, with a reason in err. */
static int ssl_status(client_tls_t *t, int r, char *err, size_t errlen) {
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ) return CLIENT_TLS_WANT_READ;
    if (e == SSL_ERROR_WANT_WRITE) return CLIENT_TLS_WANT_WRITE;
    if (e == SSL_ERROR_ZERO_RETURN) {
        ERR_clear_error();
        return CLIENT_TLS_CLOSED;
    }
    long verify = SSL_get_verify_result(t->ssl);
    if (verify != X509_V_OK) {
        snprintf(err, errlen, "TLS: the server's certificate is not trusted: %s",
                 X509_verify_cert_error_string(verify));
        ERR_clear_error();
    } else if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        ERR_clear_error();
        return CLIENT_TLS_CLOSED;
    } else {
        ssl_reason(err, errlen, "TLS: ");
    }
    return CLIENT_TLS_ERROR;
}

int client_tls_handshake(client_tls_t *t, char *err, size_t errlen) {
    int r = SSL_do_handshake(t->ssl);
    return r == 1 ? 0 : ssl_status(t, r, err, errlen);
}

ssize_t client_tls_read(client_tls_t *t, void *buf, size_t len, char *err, size_t errlen) {
    int r = SSL_read(t->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    return r > 0 ? r : ssl_status(t, r, err, errlen);
}

ssize_t client_tls_write(client_tls_t *t, const void *buf, size_t len, char *err, size_t errlen) {
    int r = SSL_write(t->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    return r > 0 ? r : ssl_status(t, r, err, errlen);
}

bool client_tls_pending(const client_tls_t *t) {
    return SSL_pending(t->ssl) > 0;
}

int client_tls_connect(evs_context_t *c, const char *addr, const evs_tls_options_t *o,
                       int64_t deadline) {
    char err[512];
    client_tls_t *t = client_tls_new(c->fd, addr, o, err, sizeof err);
    if (!t) return client_fail(c, EVS_EIO, "%s (connecting to %s)", err, addr);
    c->priv->tls = t;
    for (;;) {
        int r = client_tls_handshake(t, err, sizeof err);
        if (r == 0) return 0;
        if (r == CLIENT_TLS_CLOSED)
            return client_fail(c, EVS_EIO,
                               "TLS: %s closed the connection during the handshake (is it a TLS "
                               "port, and does it want a client certificate?)",
                               addr);
        if (r == CLIENT_TLS_ERROR) return client_fail(c, EVS_EIO, "%s (%s)", err, addr);
        struct pollfd pfd = {.fd = c->fd, .events = r == CLIENT_TLS_WANT_READ ? POLLIN : POLLOUT};
        int left = client_remaining_ms(deadline);
        int p = poll(&pfd, 1, left);
        if (p == 0) return client_fail(c, EVS_ETIMEOUT, "TLS handshake with %s timed out", addr);
        if (p < 0 && errno != EINTR) return client_fail(c, EVS_EIO, "poll: %s", strerror(errno));
    }
}
