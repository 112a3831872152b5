/* evstore-saga-example: a bank transfer saga, exactly once under kill -9.
 *
 * A transfer debits the source account (TransferDebited, saved by the teller) and credits the
 * target account (TransferCredited, saved by the process manager when it sees the debit). The
 * process manager is a durable consumer (evs_consumer_t) that saves each credit together with
 * the position of the debit it reacted to (evs_repository_save_tracked), so that a crash at any
 * moment neither loses nor repeats a credit. The balances projection is a second consumer that
 * folds every event of the run's accounts into a table.
 *
 *   evstore-saga-example [--server ADDR] --run TAG setup N     open N accounts of 1000 each
 *   evstore-saga-example [--server ADDR] --run TAG transfers M M transfers between them
 *   evstore-saga-example [--server ADDR] --run TAG pm          the process manager (until killed)
 *   evstore-saga-example [--server ADDR] --run TAG check N M   wait for M credits, then check
 *   evstore-saga-example [--server ADDR] --run TAG progress    the process manager's checkpoint
 *
 * `check` waits (up to a minute) until the process manager has credited all M transfers, then
 * projects the balances and exits 0 when the sum is N * 1000, every transfer was debited and
 * credited exactly once, and every balance agrees with its account. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime with -std=c11 */
#include <evstore.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OPENING 1000

/* ---------------------------------------------------------------- the domain */

typedef struct account {
    evs_entity_t base;
    int64_t balance;
} account_t;
#define ACCOUNT_OF(e) EVS_ENTITY_CAST(account_t, e)
static const evs_field_t ACCOUNT_STATE[] = {EVS_F(account_t, balance), {0}};

typedef struct moved {
    const char *transfer, *other; /* the transfer's id; the other account */
    int64_t amount;
} moved_t;
static const evs_field_t MOVED_ATTRS[] = {
    EVS_F(moved_t, transfer), EVS_F(moved_t, other), EVS_F(moved_t, amount), {0}};
static const evs_field_t AMOUNT_ATTRS[] = {EVS_F_VALUE(int64_t, "amount"), {0}};
static void on_opened(evs_entity_t *e, const void *amount) {
    ACCOUNT_OF(e)->balance = *(const int64_t *)amount;
}
static void on_debited(evs_entity_t *e, const void *m) {
    ACCOUNT_OF(e)->balance -= ((const moved_t *)m)->amount;
}
static void on_credited(evs_entity_t *e, const void *m) {
    ACCOUNT_OF(e)->balance += ((const moved_t *)m)->amount;
}
static const evs_event_type_t OPENED = {.topic = "saga.AccountOpened",
                                        EVS_EVENT_FIELDS(int64_t, AMOUNT_ATTRS, on_opened)};
static const evs_event_type_t DEBITED = {.topic = "saga.TransferDebited",
                                         EVS_EVENT_FIELDS(moved_t, MOVED_ATTRS, on_debited)};
static const evs_event_type_t CREDITED = {.topic = "saga.TransferCredited",
                                          EVS_EVENT_FIELDS(moved_t, MOVED_ATTRS, on_credited)};
static const evs_entity_type_t ACCOUNT = {.topic = "saga.Account",
                                          EVS_ENTITY_FIELDS(account_t, ACCOUNT_STATE),
                                          EVS_EVENTS(&OPENED, &DEBITED, &CREDITED)};

static const char *addr, *run;
static char pm_consumer[128]; /* "saga-TAG-pm" */
static evs_registry_t *reg;

static void account_id(char out[96], int i) {
    snprintf(out, 96, "saga-%s-acct-%d", run, i);
}

/* Loads id, runs the command (trigger type with m) and saves, again on a version conflict. */
static int move(evs_repository_t *repo, const char *id, const evs_event_type_t *type,
                const moved_t *m, const char *consumer, uint64_t position) {
    for (int attempt = 0; attempt < 100; attempt++) {
        evs_error_t err = {0};
        account_t *a = evs_repository_find(repo, id);
        if (!a) return EVS_ENOT_FOUND;
        int rc = evs_command(&a->base, type, m, &err);
        if (rc == 0)
            rc = consumer ? evs_repository_save_tracked(repo, (evs_entity_t *[]){&a->base}, 1,
                                                        consumer, position)
                          : evs_repository_save(repo, &a->base);
        evs_entity_free(&a->base);
        if (rc != EVS_ECONFLICT) return rc;
    }
    return EVS_ECONFLICT;
}

/* ---------------------------------------------------------------- the process manager */

/* On each debit: credit the target, with the debit's position as the tracking. */
static int on_debit(evs_consumer_t *k, const evs_domain_event_t *ev, void *arg, evs_error_t *err) {
    evs_repository_t *repo = arg;
    if (ev->type != &DEBITED) return 0;
    evs_repository_set_conn(repo, evs_consumer_context(k));
    moved_t m = {evs_attr_str(ev->attrs, "transfer", ""), ev->entity_id,
                 evs_attr_int(ev->attrs, "amount", 0)};
    int rc = move(repo, evs_attr_str(ev->attrs, "other", ""), &CREDITED, &m, pm_consumer,
                  evs_consumer_position(k));
    if (rc == 0) evs_consumer_tracked(k);
    if (rc < 0 && rc != EVS_EALREADY_PROCESSED)
        evs_error_set(err, rc, "crediting %s: %s", m.transfer, evs_errstr(evs_consumer_context(k)));
    return rc;
}

static int process_manager(evs_context_t *c) {
    char prefix[96];
    snprintf(prefix, sizeof prefix, "saga-%s-", run);
    evs_repository_options_t ro = {.registry = reg, .type = &ACCOUNT};
    evs_repository_t *repo = evs_repository_new(c, &ro);
    const char *topics[] = {DEBITED.topic};
    evs_consumer_options_t o = {.addr = addr,
                                .timeout_ms = 10000,
                                .consumer = pm_consumer,
                                .topics = topics,
                                .ntopics = 1,
                                .entity_prefix = prefix,
                                .standby = true,
                                /* Each credit stores the checkpoint with it; the rest (none
                                 * here: it follows only debits) in batches. */
                                .checkpoint_every = 100,
                                .checkpoint_ms = 1000,
                                .registry = reg,
                                .on_domain_event = on_debit,
                                .arg = repo};
    evs_consumer_t *k = evs_consumer_new(&o);
    int rc;
    while ((rc = evs_consumer_run(k, 1000)) >= 0)
        ;
    fprintf(stderr, "process manager: %s: %s\n", evs_code_name(rc), evs_consumer_errstr(k));
    evs_consumer_free(k);
    evs_repository_free(repo);
    return 1;
}

/* ---------------------------------------------------------------- the balances projection */

typedef struct projection {
    int naccounts, ntransfers;
    int64_t *balance;      /* per account */
    int *debits, *credits; /* per transfer */
    int other;             /* events of no known account or transfer */
    uint64_t last_debit;   /* position of the newest debit */
} projection_t;

static int index_of(const char *s, const char *prefix, int n) {
    size_t len = strlen(prefix);
    if (strncmp(s, prefix, len) != 0) return -1;
    char *end;
    long i = strtol(s + len, &end, 10);
    return *end || i < 0 || i >= n ? -1 : (int)i;
}

static int project(evs_consumer_t *k, const evs_domain_event_t *ev, void *arg, evs_error_t *err) {
    (void)k, (void)err;
    projection_t *p = arg;
    char prefix[96];
    snprintf(prefix, sizeof prefix, "saga-%s-acct-", run);
    int a = index_of(ev->entity_id, prefix, p->naccounts);
    int t = index_of(evs_attr_str(ev->attrs, "transfer", ""), "t", p->ntransfers);
    if (a < 0 || (ev->type != &OPENED && t < 0)) {
        p->other++;
        return 0;
    }
    int64_t amount = evs_attr_int(ev->attrs, "amount", 0);
    if (ev->type == &OPENED) p->balance[a] += amount;
    if (ev->type == &DEBITED) {
        p->balance[a] -= amount;
        p->debits[t]++;
        p->last_debit = ev->position;
    }
    if (ev->type == &CREDITED) {
        p->balance[a] += amount;
        p->credits[t]++;
    }
    return 0;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int check(evs_context_t *c, int naccounts, int ntransfers) {
    projection_t p = {naccounts,
                      ntransfers,
                      calloc(naccounts, sizeof(int64_t)),
                      calloc(ntransfers, sizeof(int)),
                      calloc(ntransfers, sizeof(int)),
                      0,
                      0};
    char consumer[128], prefix[96], id[96];
    char r[37];
    evs_random_id(r);
    snprintf(consumer, sizeof consumer, "saga-%s-balances-%.8s", run, r);
    snprintf(prefix, sizeof prefix, "saga-%s-", run);
    evs_consumer_options_t o = {.addr = addr,
                                .timeout_ms = 10000,
                                .consumer = consumer,
                                .entity_prefix = prefix,
                                .manual = true, /* a fresh table each time: nothing stored */
                                .registry = reg,
                                .on_domain_event = project,
                                .arg = &p};
    evs_consumer_t *k = evs_consumer_new(&o);
    int64_t deadline = now_ms() + 60000;
    int failures = 0;
    /* 1. Every transfer debited, and the process manager past the newest debit. */
    for (;;) {
        int debited = 0;
        for (int t = 0; t < ntransfers; t++)
            debited += p.debits[t] > 0;
        uint64_t pm = 0;
        if (debited == ntransfers && evs_get_checkpoint(c, pm_consumer, &pm) == 0 &&
            pm >= p.last_debit)
            break;
        if (now_ms() > deadline || evs_consumer_run(k, 200) < 0) {
            printf("FAILED %d of %d transfers debited, the process manager at %" PRIu64 "\n",
                   debited, ntransfers, pm);
            failures++;
            goto out;
        }
    }
    /* 2. The projection up to the newest event of every account. */
    uint64_t newest = 0;
    for (int i = 0; i < naccounts; i++) {
        evs_events_t *l;
        account_id(id, i);
        if (evs_get_by_entity(c, id, EVS_LATEST, 1, true, &l) < 0) {
            failures++;
            goto out;
        }
        if (l->n && l->events[0].position > newest) newest = l->events[0].position;
        evs_events_free(l);
    }
    while (evs_consumer_position(k) < newest)
        if (now_ms() > deadline || evs_consumer_run(k, 200) < 0) {
            printf("FAILED the projection never reached position %" PRIu64 "\n", newest);
            failures++;
            goto out;
        }
    /* 3. The checks. */
    int64_t sum = 0;
    evs_repository_options_t ro = {.registry = reg, .type = &ACCOUNT};
    evs_repository_t *repo = evs_repository_new(c, &ro);
    for (int i = 0; i < naccounts; i++) {
        sum += p.balance[i];
        account_id(id, i);
        account_t *a = evs_repository_find(repo, id);
        if (!a || a->balance != p.balance[i]) {
            printf("FAILED account %d: the projection says %" PRId64 "\n", i, p.balance[i]);
            failures++;
        }
        evs_entity_free(a ? &a->base : NULL);
    }
    evs_repository_free(repo);
    int once = 0;
    for (int t = 0; t < ntransfers; t++)
        once += p.debits[t] == 1 && p.credits[t] == 1;
    printf("%s sum of balances %" PRId64 " (expected %" PRId64 ")\n",
           sum == (int64_t)naccounts * OPENING ? "ok    " : "FAILED", sum,
           (int64_t)naccounts * OPENING);
    printf("%s %d of %d transfers debited once and credited once\n",
           once == ntransfers ? "ok    " : "FAILED", once, ntransfers);
    failures += (sum != (int64_t)naccounts * OPENING) + (once != ntransfers) + (p.other != 0);
out:
    evs_consumer_free(k);
    free(p.balance);
    free(p.debits);
    free(p.credits);
    if (!failures) printf("every step behaved\n");
    return failures ? 1 : 0;
}

/* ---------------------------------------------------------------- setup, transfers, main */

static int setup(evs_context_t *c, int n) {
    evs_repository_options_t ro = {.registry = reg, .type = &ACCOUNT};
    evs_repository_t *repo = evs_repository_new(c, &ro);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char id[96];
        account_id(id, i);
        evs_error_t err = {0};
        int64_t opening = OPENING;
        account_t *a = evs_entity_start(reg, &ACCOUNT, id, &OPENED, &opening, &err);
        rc = a ? evs_repository_save(repo, &a->base) : err.code;
        if (rc) fprintf(stderr, "setup: %s\n", a ? evs_errstr(c) : err.str);
        evs_entity_free(a ? &a->base : NULL);
    }
    evs_repository_free(repo);
    return rc ? 1 : 0;
}

/* Transfer t goes from account t % n to account (t * 7 + 1) % n, for 1 + t % 50. */
static int transfers(evs_context_t *c, int n, int m) {
    evs_repository_options_t ro = {.registry = reg, .type = &ACCOUNT};
    evs_repository_t *repo = evs_repository_new(c, &ro);
    int rc = 0;
    for (int t = 0; t < m && rc == 0; t++) {
        char from[96], to[96], tid[32];
        int dst = (t * 7 + 1) % n;
        if (dst == t % n) dst = (dst + 1) % n;
        account_id(from, t % n);
        account_id(to, dst);
        snprintf(tid, sizeof tid, "t%d", t);
        moved_t mv = {tid, to, 1 + t % 50};
        rc = move(repo, from, &DEBITED, &mv, NULL, 0);
    }
    evs_repository_free(repo);
    if (rc) fprintf(stderr, "transfers: %s\n", evs_errstr(c));
    return rc ? 1 : 0;
}

int main(int argc, char **argv) {
    addr = getenv("EVSTORE_ADDR");
    int i = 1;
    for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
        if (strcmp(argv[i], "--server") == 0)
            addr = argv[i + 1];
        else if (strcmp(argv[i], "--run") == 0)
            run = argv[i + 1];
    }
    if (!addr || !*addr) addr = EVS_DEFAULT_ADDR;
    const char *cmd = i < argc ? argv[i] : "";
    int n = i + 1 < argc ? atoi(argv[i + 1]) : 0, m = i + 2 < argc ? atoi(argv[i + 2]) : 0;
    bool known = (strcmp(cmd, "setup") == 0 && n > 1) || (strcmp(cmd, "transfers") == 0 && n > 1) ||
                 strcmp(cmd, "pm") == 0 || strcmp(cmd, "progress") == 0 ||
                 (strcmp(cmd, "check") == 0 && n > 1 && m > 0);
    if (!run || !known) {
        fprintf(stderr,
                "usage: %s [--server ADDR] --run TAG setup N | transfers N M | pm | "
                "check N M | progress\n",
                argv[0]);
        return 2;
    }
    snprintf(pm_consumer, sizeof pm_consumer, "saga-%s-pm", run);
    evs_options_t o = {.addr = addr, .timeout_ms = 10000};
    evs_context_t *c = evs_connect_with_options(&o);
    reg = evs_registry_new();
    if (!c || c->err || !reg || evs_registry_add_event(reg, &OPENED) ||
        evs_registry_add_event(reg, &DEBITED) || evs_registry_add_event(reg, &CREDITED) ||
        evs_registry_add_entity(reg, &ACCOUNT)) {
        fprintf(stderr, "cannot connect to evstored at %s: %s\n", addr, evs_errstr(c));
        evs_free(c);
        evs_registry_free(reg);
        return 1;
    }
    uint64_t at = 0;
    int rc = strcmp(cmd, "progress") == 0    ? (evs_get_checkpoint(c, pm_consumer, &at) < 0)
             : strcmp(cmd, "setup") == 0     ? setup(c, n)
             : strcmp(cmd, "transfers") == 0 ? transfers(c, n, m)
             : strcmp(cmd, "pm") == 0        ? process_manager(c)
                                             : check(c, n, m);
    if (strcmp(cmd, "progress") == 0) printf("%" PRIu64 "\n", at);
    evs_registry_free(reg);
    evs_free(c);
    return rc;
}
