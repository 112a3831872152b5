/* addr.h: the "HOST:PORT" form of a TCP address ("[v6addr]:PORT" for IPv6), parsed into a socket
 * address. config.c checks the listen option with it and listener.c binds what it gives, so
 * the two always agree on what a valid address is. */
#ifndef EVS_ADDR_H
#define EVS_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

enum {
    ADDR_BAD_FORM = -1, /* not HOST:PORT with a port of 0..65535 */
    ADDR_BAD_HOST = -2, /* HOST is not a numeric IPv4 or IPv6 address */
};

/* Parses hostport into *sa. HOST comes out in host (hostlen bytes, brackets removed) for the
 * caller's messages; it must fit there with its NUL or hostport is ADDR_BAD_FORM. Returns 0,
 * ADDR_BAD_FORM or ADDR_BAD_HOST (host is then set). */
int addr_parse(const char *hostport, struct sockaddr_storage *sa, char *host, size_t hostlen);

/* addr_parse for a listener: 0, or -1 with "WHAT HOSTPORT: what is wrong" in why, where what
 * names the setting it comes from ("--listen", "metrics_listen"). */
int addr_parse_listen(const char *what, const char *hostport, struct sockaddr_storage *sa,
                      char *why, size_t whylen);

#endif
