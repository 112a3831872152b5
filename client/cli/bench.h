/* bench.h: evstore bench, the append load generator (one libuv loop, many connections). */
#ifndef EVS_CLI_BENCH_H
#define EVS_CLI_BENCH_H

/* Runs the benchmark against addr with the arguments after "bench". Returns the exit status. */
int bench_main(const char *addr, int argc, char **argv);

#endif
