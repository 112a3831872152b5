/* addr.c: parsing "HOST:PORT" into a socket address (see addr.h). */
#include "addr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* Splits hostport at its last ':' into host (without brackets) and port. 0, or -1 when
 * malformed. */
static int split_hostport(const char *hostport, char *host, size_t hostlen, int *port) {
    const char *colon = strrchr(hostport, ':');
    if (!colon || colon == hostport) return -1;
    const char *h = hostport;
    size_t n = (size_t)(colon - hostport);
    if (h[0] == '[') {
        if (n < 2 || h[n - 1] != ']') return -1;
        h++;
        n -= 2;
    }
    if (n == 0 || n >= hostlen) return -1;
    memcpy(host, h, n);
    host[n] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 0 || p > 65535 || end == colon + 1) return -1;
    *port = (int)p;
    return 0;
}

int addr_parse(const char *hostport, struct sockaddr_storage *sa, char *host, size_t hostlen) {
    int port;
    if (split_hostport(hostport, host, hostlen, &port) != 0) return ADDR_BAD_FORM;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)sa) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)sa) != 0)
        return ADDR_BAD_HOST;
    return 0;
}

int addr_parse_listen(const char *what, const char *hostport, struct sockaddr_storage *sa,
                      char *why, size_t whylen) {
    char host[64];
    int bad = addr_parse(hostport, sa, host, sizeof host);
    if (bad == ADDR_BAD_FORM)
        snprintf(why, whylen, "%s %s: expected HOST:PORT", what, hostport);
    else if (bad == ADDR_BAD_HOST)
        snprintf(why, whylen, "%s %s: %s is not an IPv4 or IPv6 address", what, hostport, host);
    return bad ? -1 : 0;
}
