/* evstore-bank-example: a bank account, event-sourced with libevstore's domain layer.
 *
 * An account is opened, takes deposits and withdrawals (a withdrawal may not take the balance
 * below minus the overdraft limit) and is closed. The program plays a scripted session against
 * a running evstored and checks every step; it exits 0 when all behaved as expected.
 *
 *   evstore-bank-example [--server ADDR]      (else $EVSTORE_ADDR, else 127.0.0.1:7433)
 *
 * It uses every piece of the domain layer: the registry, an entity with one apply function per
 * event type, the repository (save with optimistic concurrency, get, get_at, contains,
 * snapshots every 3 events), in-process pub-sub (a statement printer subscribed to saved
 * events), and an upcaster for the first shape of the Deposited event ({"amt"}), which older
 * software wrote. docs/client.md walks through this file. */
#include <evstore.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- the account entity */

typedef struct account {
    evs_entity_t base; /* first: the library's part */
    char owner[64];
    int64_t balance;   /* cents */
    int64_t overdraft; /* how far below zero the balance may go */
} account_t;

static int fail(evs_error_t *err, const char *msg) {
    snprintf(err->str, sizeof err->str, "%s", msg);
    return err->code = EVS_EINVAL;
}

/* One apply function per event type: they change the account's fields, nothing else. */
static int on_opened(evs_entity_t *e, const evs_domain_event_t *ev, evs_error_t *err) {
    account_t *a = (account_t *)e;
    const char *owner;
    if (evs_map_get_str(ev->attrs, "owner", &owner) < 0 ||
        evs_map_get_int(ev->attrs, "overdraft", &a->overdraft) < 0)
        return fail(err, "AccountOpened needs owner and overdraft");
    snprintf(a->owner, sizeof a->owner, "%s", owner);
    return 0;
}

static int on_deposited(evs_entity_t *e, const evs_domain_event_t *ev, evs_error_t *err) {
    int64_t amount;
    if (evs_map_get_int(ev->attrs, "amount", &amount) < 0)
        return fail(err, "Deposited needs an amount");
    ((account_t *)e)->balance += amount;
    return 0;
}

static int on_withdrawn(evs_entity_t *e, const evs_domain_event_t *ev, evs_error_t *err) {
    int64_t amount;
    if (evs_map_get_int(ev->attrs, "amount", &amount) < 0)
        return fail(err, "Withdrawn needs an amount");
    ((account_t *)e)->balance -= amount;
    return 0;
}

/* Deposited was {"amt": N} in schema 1 and is {"amount": N} since schema 2. */
static int deposited_v1_to_v2(evs_value_t *attrs, evs_error_t *err) {
    (void)err;
    return evs_map_rename(attrs, "amt", "amount");
}

static const evs_event_type_t OPENED = {.topic = "bank.AccountOpened", .apply = on_opened};
static const evs_event_type_t DEPOSITED = {
    .topic = "bank.Deposited", .schema_version = 2, .apply = on_deposited};
static const evs_event_type_t WITHDRAWN = {.topic = "bank.Withdrawn", .apply = on_withdrawn};
static const evs_event_type_t CLOSED = {.topic = "bank.AccountClosed", .discards = true};

/* The snapshot state is {"balance", "overdraft", "owner"}. */
static int account_snapshot(const evs_entity_t *e, evs_value_t *state, evs_error_t *err) {
    const account_t *a = (const account_t *)e;
    (void)err;
    if (evs_map_set_int(state, "balance", a->balance) < 0 ||
        evs_map_set_int(state, "overdraft", a->overdraft) < 0 ||
        evs_map_set_str(state, "owner", a->owner) < 0)
        return EVS_ENOMEM;
    return 0;
}

static int account_restore(evs_entity_t *e, const evs_value_t *state, evs_error_t *err) {
    account_t *a = (account_t *)e;
    const char *owner;
    if (evs_map_get_int(state, "balance", &a->balance) < 0 ||
        evs_map_get_int(state, "overdraft", &a->overdraft) < 0 ||
        evs_map_get_str(state, "owner", &owner) < 0)
        return fail(err, "a bank.Account snapshot needs balance, overdraft and owner");
    snprintf(a->owner, sizeof a->owner, "%s", owner);
    return 0;
}

static const evs_entity_type_t ACCOUNT = {
    .topic = "bank.Account",
    .size = sizeof(account_t),
    .snapshot = account_snapshot,
    .restore = account_restore,
    .events = (const evs_event_type_t *const[]){&OPENED, &DEPOSITED, &WITHDRAWN, &CLOSED, NULL}};

/* ---------------------------------------------------------------- commands */

/* Commands check the business rules, then trigger events; the apply functions do the rest. */
static account_t *account_open(const evs_registry_t *reg, const char *id, const char *owner,
                               int64_t overdraft, evs_error_t *err) {
    evs_value_t *attrs = evs_map_new();
    if (!attrs || evs_map_set_str(attrs, "owner", owner) < 0 ||
        evs_map_set_int(attrs, "overdraft", overdraft) < 0) {
        evs_value_free(attrs);
        return NULL;
    }
    account_t *a = (account_t *)evs_entity_new(reg, &ACCOUNT, id);
    if (!a) {
        evs_value_free(attrs);
        return NULL;
    }
    if (evs_entity_trigger(&a->base, &OPENED, attrs, err) < 0) { /* attrs taken in any case */
        evs_entity_free(&a->base);
        return NULL;
    }
    return a;
}

static int account_deposit(account_t *a, int64_t amount, evs_error_t *err) {
    if (amount <= 0) return fail(err, "a deposit must be positive");
    evs_value_t *attrs = evs_map_new();
    if (!attrs || evs_map_set_int(attrs, "amount", amount) < 0) {
        evs_value_free(attrs);
        return EVS_ENOMEM;
    }
    return evs_entity_trigger(&a->base, &DEPOSITED, attrs, err);
}

static int account_withdraw(account_t *a, int64_t amount, evs_error_t *err) {
    if (amount <= 0) return fail(err, "a withdrawal must be positive");
    if (a->balance - amount < -a->overdraft)
        return fail(err, "refused: the withdrawal would pass the overdraft limit");
    evs_value_t *attrs = evs_map_new();
    if (!attrs || evs_map_set_int(attrs, "amount", amount) < 0) {
        evs_value_free(attrs);
        return EVS_ENOMEM;
    }
    return evs_entity_trigger(&a->base, &WITHDRAWN, attrs, err);
}

static int account_close(account_t *a, evs_error_t *err) {
    if (a->balance != 0) return fail(err, "refused: only an account at zero can be closed");
    return evs_entity_trigger(&a->base, &CLOSED, NULL, err);
}

static void account_print(const account_t *a) {
    printf("account %s\n  owner      %s\n  balance    %" PRId64 ".%02" PRId64
           "\n  overdraft  %" PRId64 ".%02" PRId64 "\n  version    %" PRIu64 "%s\n",
           a->base.id, a->owner, a->balance / 100, (int64_t)llabs(a->balance % 100),
           a->overdraft / 100, a->overdraft % 100, a->base.version,
           a->base.discarded ? " (closed)" : "");
}

/* ---------------------------------------------------------------- the statement printer */

/* A pub-sub handler: every saved event of the account, as a statement line. */
static int print_statement_line(const evs_domain_event_t *ev, void *arg, evs_error_t *err) {
    int *lines = arg;
    int64_t amount = 0;
    (void)err;
    evs_map_get_int(ev->attrs, "amount", &amount);
    printf("  statement  #%" PRIu64 " %-20s %" PRId64 "\n", ev->version, ev->type->topic, amount);
    ++*lines;
    return 0;
}

static bool is_money_movement(const evs_domain_event_t *ev, void *arg) {
    (void)arg;
    return ev->type == &DEPOSITED || ev->type == &WITHDRAWN;
}

/* ---------------------------------------------------------------- the scripted session */

static int failures;

static void step(bool ok, const char *what, const char *why) {
    printf("%s %s%s%s\n", ok ? "ok    " : "FAILED", what, ok || !why ? "" : ": ",
           ok || !why ? "" : why);
    if (!ok) failures++;
}

int main(int argc, char **argv) {
    const char *addr = getenv("EVSTORE_ADDR");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--server") == 0 && i + 1 < argc)
            addr = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--server ADDR]\n", argv[0]);
            return 2;
        }
    }
    if (!addr || !*addr) addr = EVS_DEFAULT_ADDR;

    evs_options_t o = {.addr = addr, .timeout_ms = 10000};
    evs_context_t *c = evs_connect_with_options(&o), *c2 = evs_connect_with_options(&o);
    if (!c || c->err || !c2 || c2->err) {
        fprintf(stderr, "cannot connect to evstored at %s: %s\n", addr,
                evs_errstr(c && c->err ? c : c2));
        evs_free(c);
        evs_free(c2);
        return 1;
    }

    /* The registry: every event type, the entity type and the upcaster. */
    evs_registry_t *reg = evs_registry_new();
    if (!reg || evs_registry_add_event(reg, &OPENED) || evs_registry_add_event(reg, &DEPOSITED) ||
        evs_registry_add_event(reg, &WITHDRAWN) || evs_registry_add_event(reg, &CLOSED) ||
        evs_registry_add_entity(reg, &ACCOUNT) ||
        evs_registry_add_upcaster(reg, "bank.Deposited", 1, deposited_v1_to_v2)) {
        fprintf(stderr, "cannot fill the registry\n");
        return 1;
    }
    evs_pubsub_t *bus = evs_pubsub_new();
    int lines = 0;
    evs_pubsub_subscribe(bus, is_money_movement, print_statement_line, &lines);
    evs_repository_options_t ro = {
        .registry = reg, .type = &ACCOUNT, .snapshot_every = 3, .publish_to = bus};
    evs_repository_t *bank = evs_repository_new(c, &ro);
    evs_repository_options_t ro2 = {.registry = reg, .type = &ACCOUNT};
    evs_repository_t *other_teller = evs_repository_new(c2, &ro2);

    char id[64] = "account-";
    evs_random_id(id + strlen(id));
    evs_error_t err = {0};
    evs_entity_t *e = NULL;
    bool found = false;

    /* 1. Open the account and save it. */
    account_t *a = account_open(reg, id, "Ada Lovelace", 10000, &err);
    step(a && evs_repository_save(bank, &a->base) == 0, "open the account (overdraft 100.00)",
         a ? c->errstr : err.str);
    if (!a) goto out;

    /* 2. Software of last year deposited with the first shape of the event: {"amt"}, schema 1
     * (no metadata). Reading it runs the upcaster; the stored bytes stay as they are. */
    uint8_t old_payload[] = {0x81, 0xa3, 'a', 'm', 't', 0xcd, 0x13, 0x88}; /* {"amt": 5000} */
    evs_event_t old = {.entity_id = id,
                       .topic = "bank.Deposited",
                       .payload = old_payload,
                       .payload_len = sizeof old_payload,
                       .version = 1,
                       .has_version = 1};
    step(evs_append(c, &old, 1, NULL, NULL) == 0, "an old client deposits 50.00 ({\"amt\"})",
         c->errstr);
    evs_entity_free(&a->base);
    a = NULL;
    step(evs_repository_get(bank, id, &e) == 0 && ((account_t *)e)->balance == 5000,
         "reload: the old deposit is upcast to {\"amount\"}", c->errstr);
    a = (account_t *)e;
    if (!a) goto out;

    /* 3. Deposits, a withdrawal into the overdraft, and one the overdraft rule refuses. */
    step(account_deposit(a, 20000, &err) == 0 && account_deposit(a, 3000, &err) == 0 &&
             account_withdraw(a, 30000, &err) == 0,
         "deposit 200.00 and 30.00, withdraw 300.00", err.str);
    step(a->balance == -2000, "the balance is -20.00, inside the overdraft", NULL);
    int r = account_withdraw(a, 10000, &err);
    step(r == EVS_EINVAL && a->balance == -2000 && a->base.npending == 3,
         "withdrawing 100.00 more is refused by the overdraft rule", err.str);
    step(evs_repository_save(bank, &a->base) == 0 && a->base.npending == 0,
         "save the three events in one request", c->errstr);
    step(lines == 3, "the statement printer saw the three saved movements", NULL);

    /* 4. The save passed version 3, so the repository took a snapshot. */
    evs_snapshot_t *snap = NULL;
    step(evs_get_snapshot(c, id, EVS_LATEST, &snap) == 0 && snap->version == 5 &&
             strcmp(snap->topic, "bank.Account@1") == 0,
         "a snapshot was taken at version 5", c->errstr);
    evs_snapshot_free(snap);

    /* 5. Another teller pays 20.00 in; our copy is now stale and its save is refused. */
    evs_entity_t *e2 = NULL;
    step(evs_repository_get(other_teller, id, &e2) == 0 &&
             account_deposit((account_t *)e2, 2000, &err) == 0 &&
             evs_repository_save(other_teller, e2) == 0,
         "another teller deposits 20.00", c2->errstr);
    evs_entity_free(e2);
    step(account_deposit(a, 500, &err) == 0 && evs_repository_save(bank, &a->base) == EVS_ECONFLICT,
         "our stale copy's deposit of 5.00 is a conflict", c->errstr);
    evs_entity_free(&a->base);
    a = NULL;
    step(evs_repository_get(bank, id, &e) == 0 && ((account_t *)e)->balance == 0 && e->version == 6,
         "the store kept the teller's deposit only: balance 0.00 at version 6", c->errstr);
    a = (account_t *)e;
    if (!a) goto out;

    /* 6. The account as it was at version 3 (after the opening, the old deposit, 200.00). */
    evs_entity_t *then = NULL;
    step(evs_repository_get_at(bank, id, 3, &then) == 0 && ((account_t *)then)->balance == 25000,
         "at version 3 the balance was 250.00", c->errstr);
    if (then) account_print((account_t *)then);
    evs_entity_free(then);

    /* 7. Close it: then the repository no longer finds it. */
    account_print(a);
    step(account_close(a, &err) == 0 && evs_repository_save(bank, &a->base) == 0,
         "close the account", err.code ? err.str : c->errstr);
    step(account_deposit(a, 100, &err) == EVS_EINVAL, "a closed account refuses deposits", NULL);
    step(evs_repository_get(bank, id, &e) == EVS_ENOT_FOUND, "a closed account is not found",
         c->errstr);
    step(evs_repository_contains(bank, id, &found) == 0 && !found, "the bank no longer contains it",
         c->errstr);

out:
    if (a) evs_entity_free(&a->base);
    evs_repository_free(bank);
    evs_repository_free(other_teller);
    evs_pubsub_free(bus);
    evs_registry_free(reg);
    evs_free(c);
    evs_free(c2);
    printf("%s\n", failures ? "some steps FAILED" : "every step behaved");
    return failures ? 1 : 0;
}
