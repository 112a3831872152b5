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

/* ---------------------------------------------------------------- the domain */

typedef struct account {
    evs_entity_t base; /* first: the library's part */
    char owner[64];
    int64_t balance, overdraft; /* cents; the balance may go down to -overdraft */
} account_t;
#define ACCOUNT_OF(e) EVS_ENTITY_CAST(account_t, e) /* NULL if e is not an account */
/* The snapshot state is the plain fields {"balance", "overdraft", "owner"}. */
static const evs_field_t ACCOUNT_STATE[] = {
    EVS_F(account_t, owner), EVS_F(account_t, balance), EVS_F(account_t, overdraft), {0}};

/* Events: their attributes as a C struct (or one value), and `on`, which applies one. */
typedef struct opened {
    const char *owner;
    int64_t overdraft;
} opened_t;
static const evs_field_t OPENED_ATTRS[] = {EVS_F(opened_t, owner), EVS_F(opened_t, overdraft), {0}};
static const evs_field_t AMOUNT_ATTRS[] = {EVS_F_VALUE(int64_t, "amount"), {0}};
static void on_opened(evs_entity_t *e, const void *attrs) {
    const opened_t *o = attrs;
    snprintf(ACCOUNT_OF(e)->owner, sizeof ACCOUNT_OF(e)->owner, "%s", o->owner);
    ACCOUNT_OF(e)->overdraft = o->overdraft;
}
static void on_deposited(evs_entity_t *e, const void *amount) {
    ACCOUNT_OF(e)->balance += *(const int64_t *)amount;
}
static void on_withdrawn(evs_entity_t *e, const void *amount) {
    ACCOUNT_OF(e)->balance -= *(const int64_t *)amount;
}

static const evs_event_type_t OPENED = {.topic = "bank.AccountOpened",
                                        EVS_EVENT_FIELDS(opened_t, OPENED_ATTRS, on_opened)};
static const evs_event_type_t DEPOSITED = {.topic = "bank.Deposited",
                                           .schema_version = 2,
                                           EVS_EVENT_FIELDS(int64_t, AMOUNT_ATTRS, on_deposited)};
static const evs_event_type_t WITHDRAWN = {.topic = "bank.Withdrawn",
                                           EVS_EVENT_FIELDS(int64_t, AMOUNT_ATTRS, on_withdrawn)};
static const evs_event_type_t CLOSED = {.topic = "bank.AccountClosed", .discards = true};
static const evs_entity_type_t ACCOUNT = {.topic = "bank.Account",
                                          EVS_ENTITY_FIELDS(account_t, ACCOUNT_STATE),
                                          EVS_EVENTS(&OPENED, &DEPOSITED, &WITHDRAWN, &CLOSED)};

/* Deposited was {"amt": N} in schema 1 and is {"amount": N} since schema 2. */
static int deposited_v1_to_v2(evs_value_t *attrs, evs_error_t *err) {
    (void)err;
    return evs_map_rename(attrs, "amt", "amount");
}

/* Commands check the business rules, then trigger (and so apply) their event. Opening has no
 * rule: evs_entity_start(reg, &ACCOUNT, id, &OPENED, &(opened_t){owner, overdraft}, err). */
static int account_deposit(account_t *a, int64_t amount, evs_error_t *err) {
    if (amount <= 0) return evs_error_set(err, EVS_EINVAL, "a deposit must be positive");
    return evs_command(&a->base, &DEPOSITED, &amount, err);
}
static int account_withdraw(account_t *a, int64_t amount, evs_error_t *err) {
    if (amount <= 0) return evs_error_set(err, EVS_EINVAL, "a withdrawal must be positive");
    if (a->balance - amount < -a->overdraft)
        return evs_error_set(err, EVS_EINVAL, "refused: it would pass the overdraft limit");
    return evs_command(&a->base, &WITHDRAWN, &amount, err);
}
static int account_close(account_t *a, evs_error_t *err) {
    if (a->balance != 0) return evs_error_set(err, EVS_EINVAL, "refused: the balance is not 0");
    return evs_command(&a->base, &CLOSED, NULL, err);
}
/* The statement printer, a pub-sub handler: every saved money movement, as a line. */
static int print_statement_line(const evs_domain_event_t *ev, void *arg, evs_error_t *err) {
    (void)err;
    if (ev->type != &DEPOSITED && ev->type != &WITHDRAWN) return 0;
    printf(" statement %-15s %" PRId64 "\n", ev->type->topic, evs_attr_int(ev->attrs, "amount", 0));
    ++*(int *)arg;
    return 0;
}

/* ---------------------------------------------------------------- the scripted session */

static void account_print(const account_t *a) {
    printf("account %s\n  owner      %s\n  balance    %" PRId64 ".%02" PRId64
           "\n  overdraft  %" PRId64 ".%02" PRId64 "\n  version    %" PRIu64 "%s\n",
           a->base.id, a->owner, a->balance / 100, (int64_t)llabs(a->balance % 100),
           a->overdraft / 100, a->overdraft % 100, a->base.version,
           a->base.discarded ? " (closed)" : "");
}

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
    evs_pubsub_subscribe(bus, NULL, print_statement_line, &lines);
    evs_repository_options_t ro = {
        .registry = reg, .type = &ACCOUNT, .snapshot_every = 3, .publish_to = bus};
    evs_repository_t *bank = evs_repository_new(c, &ro);
    evs_repository_options_t ro2 = {.registry = reg, .type = &ACCOUNT};
    evs_repository_t *other_teller = evs_repository_new(c2, &ro2);

    char id[64] = "account-", id2[64] = "account-";
    evs_random_id(id + strlen(id));
    evs_random_id(id2 + strlen(id2));
    evs_error_t err = {0};
    account_t *b = NULL, *b2 = NULL;
    bool found = false;

    /* 1. Open the account and save it. */
    account_t *a =
        evs_entity_start(reg, &ACCOUNT, id, &OPENED, &(opened_t){"Ada Lovelace", 10000}, &err);
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
    a = evs_repository_find(bank, id);
    step(a && a->balance == 5000, "reload: the old deposit is upcast to {\"amount\"}", c->errstr);
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

    /* 4. The save passed version 3, so the repository took a snapshot (of the plain fields). */
    evs_snapshot_t *snap = NULL;
    step(evs_get_snapshot(c, id, EVS_LATEST, &snap) == 0 && snap->version == 5 &&
             strcmp(snap->topic, "bank.Account@1") == 0,
         "a snapshot was taken at version 5", c->errstr);
    evs_snapshot_free(snap);

    /* 5. Another teller pays 20.00 in; our copy is now stale and its save is refused. */
    account_t *t = evs_repository_find(other_teller, id);
    step(t && account_deposit(t, 2000, &err) == 0 &&
             evs_repository_save(other_teller, &t->base) == 0,
         "another teller deposits 20.00", c2->errstr);
    if (t) evs_entity_free(&t->base);
    step(account_deposit(a, 500, &err) == 0 && evs_repository_save(bank, &a->base) == EVS_ECONFLICT,
         "our stale copy's deposit of 5.00 is a conflict", c->errstr);
    evs_entity_free(&a->base);
    a = evs_repository_find(bank, id);
    step(a && a->balance == 0 && a->base.version == 6,
         "the store kept the teller's deposit only: balance 0.00 at version 6", c->errstr);
    if (!a) goto out;

    /* 6. The account as it was at version 3 (after the opening, the old deposit, 200.00). */
    evs_entity_t *then = NULL;
    account_t *was = NULL;
    step(evs_repository_get_at(bank, id, 3, &then) == 0 &&
             (was = EVS_ENTITY_CAST(account_t, then)) && was->balance == 25000,
         "at version 3 the balance was 250.00", c->errstr);
    if (was) account_print(was);
    evs_entity_free(then);

    /* 7. A transfer: a withdrawal from a second account and a deposit into ours, saved in one
     * atomic append. When the second account's copy is stale, neither is stored. */
    b = evs_entity_start(reg, &ACCOUNT, id2, &OPENED, &(opened_t){"Charles Babbage", 0}, &err);
    step(b && account_deposit(b, 7000, &err) == 0 && evs_repository_save(bank, &b->base) == 0,
         "open a second account with 70.00", b ? c->errstr : err.str);
    if (!b) goto out;
    b2 = evs_repository_find(other_teller, id2);
    step(b2 && account_withdraw(b2, 1000, &err) == 0 &&
             evs_repository_save(other_teller, &b2->base) == 0,
         "another teller takes 10.00 from it", c2->errstr);
    step(account_withdraw(b, 6500, &err) == 0 && account_deposit(a, 6500, &err) == 0 &&
             EVS_SAVE_ALL(bank, &a->base, &b->base) == EVS_ECONFLICT && a->base.npending == 1,
         "a transfer of 65.00 from the stale copy is refused as a whole", c->errstr);
    evs_entity_free(&a->base);
    evs_entity_free(&b->base);
    a = evs_repository_find(bank, id);
    b = evs_repository_find(bank, id2);
    step(a && b && a->balance == 0 && b->balance == 6000, "neither account changed: 0.00 and 60.00",
         c->errstr);
    if (!a || !b) goto out;
    step(account_withdraw(b, 6000, &err) == 0 && account_deposit(a, 6000, &err) == 0 &&
             EVS_SAVE_ALL(bank, &a->base, &b->base) == 0,
         "a transfer of 60.00 is saved in one append", c->errstr);
    evs_entity_free(&a->base);
    a = evs_repository_find(bank, id);
    step(a && a->balance == 6000, "it arrived: 60.00", c->errstr);
    if (!a) goto out;
    step(account_withdraw(a, 6000, &err) == 0 && evs_repository_save(bank, &a->base) == 0,
         "withdraw the 60.00 again", c->errstr);

    /* 8. Close it: then the repository no longer finds it. */
    account_print(a);
    step(account_close(a, &err) == 0 && evs_repository_save(bank, &a->base) == 0,
         "close the account", err.code ? err.str : c->errstr);
    step(account_deposit(a, 100, &err) == EVS_EINVAL, "a closed account refuses deposits", NULL);
    step(evs_repository_find(bank, id) == NULL && c->err == EVS_ENOT_FOUND,
         "a closed account is not found", c->errstr);
    step(evs_repository_contains(bank, id, &found) == 0 && !found, "the bank no longer contains it",
         c->errstr);

out:
    if (a) evs_entity_free(&a->base);
    if (b) evs_entity_free(&b->base);
    if (b2) evs_entity_free(&b2->base);
    evs_repository_free(bank);
    evs_repository_free(other_teller);
    evs_pubsub_free(bus);
    evs_registry_free(reg);
    evs_free(c);
    evs_free(c2);
    printf("%s\n", failures ? "some steps FAILED" : "every step behaved");
    return failures ? 1 : 0;
}
