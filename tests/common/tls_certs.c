/* tls_certs.c: throwaway certificates and raw TLS connections for the tests (tls_certs.h). */
#include "tls_certs.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A fresh P-256 key, or NULL. */
static EVP_PKEY *new_key(void) {
    return EVP_EC_gen("P-256");
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer ? issuer : cert, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext) return -1;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

/* A certificate for key with subject CN cn, signed by issuer (issuer_key), or self-signed when
 * issuer is NULL; a CA when san is NULL, else a leaf with those subjectAltNames ("" for none). */
static X509 *new_cert(EVP_PKEY *key, const char *cn, const char *san, X509 *issuer,
                      EVP_PKEY *issuer_key, long serial) {
    X509 *x = X509_new();
    if (!x) return NULL;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 7 * 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    int bad = add_ext(x, issuer, NID_subject_key_identifier, "hash");
    if (!san) {
        bad |= add_ext(x, issuer, NID_basic_constraints, "critical,CA:TRUE");
        bad |= add_ext(x, issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        bad |= add_ext(x, issuer, NID_basic_constraints, "CA:FALSE");
        bad |= add_ext(x, issuer, NID_authority_key_identifier, "keyid");
        bad |= add_ext(x, issuer, NID_ext_key_usage, "serverAuth,clientAuth");
        if (*san) bad |= add_ext(x, issuer, NID_subject_alt_name, san);
    }
    if (bad || !X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256())) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static int write_pem(const char *path, X509 *cert, EVP_PKEY *key) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    int ok =
        cert ? PEM_write_X509(f, cert) : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    return fclose(f) == 0 && ok ? 0 : -1;
}

int test_certs_make(test_certs_t *t) {
    memset(t, 0, sizeof *t);
    snprintf(t->dir, sizeof t->dir, "/tmp/evs-tls.XXXXXX");
    if (!mkdtemp(t->dir)) return -1;
#define PATH(f, name) snprintf(t->f, sizeof t->f, "%s/" name, t->dir)
    PATH(ca, "ca.pem");
    PATH(server_cert, "server.pem");
    PATH(server_key, "server.key");
    PATH(client_cert, "client.pem");
    PATH(client_key, "client.key");
    PATH(other_ca, "other-ca.pem");
    PATH(other_server_cert, "other-server.pem");
    PATH(other_server_key, "other-server.key");
#undef PATH
    EVP_PKEY *ca_key = new_key(), *srv_key = new_key(), *cli_key = new_key();
    EVP_PKEY *oca_key = new_key(), *osrv_key = new_key();
    X509 *ca = NULL, *srv = NULL, *cli = NULL, *oca = NULL, *osrv = NULL;
    int rc = -1;
    if (!ca_key || !srv_key || !cli_key || !oca_key || !osrv_key) goto done;
    ca = new_cert(ca_key, "evstore test CA", NULL, NULL, NULL, 1);
    oca = new_cert(oca_key, "evstore other test CA", NULL, NULL, NULL, 2);
    if (!ca || !oca) goto done;
    srv = new_cert(srv_key, "localhost", "IP:127.0.0.1,DNS:localhost", ca, ca_key, 3);
    cli = new_cert(cli_key, "client.example", "", ca, ca_key, 4);
    osrv = new_cert(osrv_key, "localhost", "IP:127.0.0.1,DNS:localhost", oca, oca_key, 5);
    if (!srv || !cli || !osrv) goto done;
    if (write_pem(t->ca, ca, NULL) || write_pem(t->server_cert, srv, NULL) ||
        write_pem(t->server_key, NULL, srv_key) || write_pem(t->client_cert, cli, NULL) ||
        write_pem(t->client_key, NULL, cli_key) || write_pem(t->other_ca, oca, NULL) ||
        write_pem(t->other_server_cert, osrv, NULL) ||
        write_pem(t->other_server_key, NULL, osrv_key))
        goto done;
    rc = 0;
done:
    if (rc) {
        fprintf(stderr, "tls_certs: cannot make the test certificates in %s\n", t->dir);
        ERR_print_errors_fp(stderr);
    }
    X509_free(ca), X509_free(srv), X509_free(cli), X509_free(oca), X509_free(osrv);
    EVP_PKEY_free(ca_key), EVP_PKEY_free(srv_key), EVP_PKEY_free(cli_key);
    EVP_PKEY_free(oca_key), EVP_PKEY_free(osrv_key);
    return rc;
}

void test_certs_remove(test_certs_t *t) {
    if (!t->dir[0]) return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->dir);
    if (system(cmd) != 0) fprintf(stderr, "tls_certs: cannot remove %s\n", t->dir);
    t->dir[0] = '\0';
}

int test_certs_copy(const char *from, const char *to) {
    char tmp[256], buf[8192];
    snprintf(tmp, sizeof tmp, "%s.new", to);
    FILE *in = fopen(from, "r"), *out = fopen(tmp, "w");
    int rc = in && out ? 0 : -1;
    size_t n;
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) rc = -1;
    if (in) fclose(in);
    if (out && fclose(out) != 0) rc = -1;
    return rc == 0 ? rename(tmp, to) : -1;
}

int test_daemon_start_logged(test_daemon_t *d, const char *log_path,
                             const char *const *extra_args) {
    fflush(stderr);
    int saved = dup(2), log = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (saved < 0 || log < 0 || dup2(log, 2) < 0) {
        if (saved >= 0) close(saved);
        if (log >= 0) close(log);
        return -1;
    }
    close(log);
    int rc = test_daemon_start(d, extra_args);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    return rc;
}

int test_count_lines(const char *path, const char *needle) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle)) n++;
    fclose(f);
    return n;
}

int test_tls_daemon_start(test_daemon_t *d, int *tls_port, const char *log_path, const char *cert,
                          const char *key, const char *ca, const char *const *extra_args) {
    for (int attempt = 0; attempt < 3; attempt++) {
        char hostport[64];
        const char *args[40];
        int n = 0;
        *tls_port = test_free_port();
        snprintf(hostport, sizeof hostport, "127.0.0.1:%d", *tls_port);
        args[n++] = "--tls-listen", args[n++] = hostport;
        args[n++] = "--tls-cert", args[n++] = cert;
        args[n++] = "--tls-key", args[n++] = key;
        if (ca) args[n++] = "--tls-ca", args[n++] = ca;
        args[n++] = "--log-level", args[n++] = "info";
        for (int i = 0; extra_args && extra_args[i] && n < 39; i++)
            args[n++] = extra_args[i];
        args[n] = NULL;
        /* A daemon that could not bind the TLS port exits: try another one. */
        if (test_daemon_start_logged(d, log_path, args) == 0) return 0;
    }
    return -1;
}

SSL *test_tls_connect(int port, const char *ca_file, const char *cert_file, const char *key_file,
                      int rcvbuf) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) return NULL;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL *ssl = NULL;
    int fd = -1;
    if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) goto failed;
    if (cert_file && (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1 ||
                      SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1))
        goto failed;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) goto failed;
    if (!(ssl = SSL_new(ctx)) || SSL_set_fd(ssl, fd) != 1 || SSL_set1_host(ssl, "localhost") != 1 ||
        SSL_connect(ssl) != 1)
        goto failed;
    SSL_CTX_free(ctx); /* the session holds its own reference */
    return ssl;
failed:
    ERR_clear_error();
    SSL_free(ssl);
    if (fd >= 0) close(fd);
    SSL_CTX_free(ctx);
    return NULL;
}

void test_tls_close(SSL *ssl) {
    if (!ssl) return;
    int fd = SSL_get_fd(ssl);
    SSL_free(ssl);
    if (fd >= 0) close(fd);
}
