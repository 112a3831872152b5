/* bench.h: evstore bench, the append load generator (one libuv loop, many connections). */
#ifndef EVS_CLI_BENCH_H
#define EVS_CLI_BENCH_H

#include <evstore.h>

/* Runs the benchmark against addr (with TLS as tls says, when non-NULL) with the arguments after
 * "bench". Returns the exit status. */
int bench_main(const char *addr, const evs_tls_options_t *tls, int argc, char **argv);

#endif
