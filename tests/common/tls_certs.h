/* tls_certs.h: throwaway certificates for the TLS tests, made at test time with OpenSSL (no key
 * is checked in), and a raw TLS connection for tests that must control every byte.
 *
 * test_certs_make writes into a fresh temporary folder: a CA (ca.pem), a server certificate
 * for 127.0.0.1 and localhost signed by it (server.pem, server.key), a client certificate with
 * CN "client.example" signed by it (client.pem, client.key), and a second CA that signed
 * nothing there (other-ca.pem) with its own server certificate (other-server.pem,
 * other-server.key): a client that trusts only one CA refuses the other's server. */
#ifndef EVS_TEST_TLS_CERTS_H
#define EVS_TEST_TLS_CERTS_H

#include <openssl/ssl.h>

#include "daemon.h"

typedef struct test_certs {
    char dir[64];
    char ca[128], server_cert[128], server_key[128], client_cert[128], client_key[128];
    char other_ca[128], other_server_cert[128], other_server_key[128];
} test_certs_t;

/* Makes the files above. 0, or -1 with a message on stderr. */
int test_certs_make(test_certs_t *t);
/* Removes them and the folder. */
void test_certs_remove(test_certs_t *t);

/* Copies the file at from over to (atomically: written aside, then renamed). 0 or -1. */
int test_certs_copy(const char *from, const char *to);

/* Starts evstored as test_daemon_start does, with its stderr (its log) going to the file
 * log_path instead of the test's. 0 or -1. */
int test_daemon_start_logged(test_daemon_t *d, const char *log_path, const char *const *extra_args);

/* Counts the lines of the file at path that contain needle. */
int test_count_lines(const char *path, const char *needle);

/* Starts evstored as test_daemon_start_logged does, plus a TLS listener on a free port (stored in
 * *tls_port) with cert and key, and tls_ca when ca is non-NULL, at log level info. 0 or -1. */
int test_tls_daemon_start(test_daemon_t *d, int *tls_port, const char *log_path, const char *cert,
                          const char *key, const char *ca, const char *const *extra_args);

/* A TLS connection on a blocking socket to 127.0.0.1:port that trusts ca_file and presents
 * cert_file/key_file when non-NULL, with a receive buffer of rcvbuf bytes when rcvbuf > 0. NULL
 * when the handshake fails. Free with test_tls_close. */
SSL *test_tls_connect(int port, const char *ca_file, const char *cert_file, const char *key_file,
                      int rcvbuf);
void test_tls_close(SSL *ssl);

#endif
