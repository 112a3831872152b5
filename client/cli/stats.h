/* stats.h: `evstore stats` and `evstore config`: the daemon's counters and its effective
 * options, printed as indented JSON. */
#ifndef EVS_CLI_STATS_H
#define EVS_CLI_STATS_H

#include <evstore.h>

/* Each sends its op on c and prints the result; returns the exit status (0, 1 when the server
 * or the connection failed, 2 on bad usage). Signatures fit main.c's command table. */
int cmd_stats(evs_context_t *c, int argc, char **argv);
int cmd_config(evs_context_t *c, int argc, char **argv);

#endif
