/* evstore-kanban-example: a kanban board, event-sourced with libevstore's domain layer.
 *
 * A board is created with its columns; cards are added (to the first column), moved and
 * removed. The program plays a scripted session against a running evstored and checks every
 * step; it exits 0 when all behaved as expected.
 *
 *   evstore-kanban-example [--server ADDR]    (else $EVSTORE_ADDR, else 127.0.0.1:7433)
 *
 * It shows the short style of the domain layer: field tables (the board's snapshot state,
 * with an array of strings and an array of structs, and every event's attributes), commands,
 * snapshots every 4 events, an upcaster, and one read model handler fed twice: in-process by
 * the repository's pub-sub, and live by a daemon subscription. docs/examples/kanban/README.md
 * says what each step shows. */
#include <evstore.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- the domain */

#define MAX_COLUMNS 8
#define MAX_CARDS 64

typedef struct card {
    char id[40], title[80];
    int32_t column;
} card_t;
typedef struct board {
    evs_entity_t base;
    char name[64];
    char columns[MAX_COLUMNS][24];
    size_t ncolumns;
    card_t cards[MAX_CARDS];
    size_t ncards;
} board_t;
#define BOARD_OF(e) EVS_ENTITY_CAST(board_t, e)
static const evs_field_t CARD[] = {
    EVS_F(card_t, id), EVS_F(card_t, title), EVS_F(card_t, column), {0}};
static const evs_field_t BOARD_STATE[] = {EVS_F(board_t, name),
                                          EVS_F_ARRAY(board_t, columns, ncolumns),
                                          EVS_F_ARRAY_STRUCT(board_t, cards, ncards, CARD),
                                          {0}};

/* Events: BoardCreated {name, columns}, CardAdded {card, title, column}, CardMoved {card,
 * column}, CardRemoved {card}. */
typedef struct created {
    const char *name, *columns[MAX_COLUMNS];
    size_t ncolumns;
} created_t;
typedef struct card_attrs {
    const char *card, *title;
    int32_t column;
} card_attrs_t;
static const evs_field_t CREATED_ATTRS[] = {
    EVS_F(created_t, name), EVS_F_ARRAY(created_t, columns, ncolumns), {0}};
static const evs_field_t ADDED_ATTRS[] = {
    EVS_F(card_attrs_t, card), EVS_F(card_attrs_t, title), EVS_F(card_attrs_t, column), {0}};
static const evs_field_t MOVED_ATTRS[] = {
    EVS_F(card_attrs_t, card), EVS_F(card_attrs_t, column), {0}};
static const evs_field_t REMOVED_ATTRS[] = {EVS_F_VALUE(const char *, "card"), {0}};

static int find_card(const board_t *b, const char *id) {
    for (size_t i = 0; i < b->ncards; i++)
        if (strcmp(b->cards[i].id, id) == 0) return (int)i;
    return -1;
}
static void on_created(evs_entity_t *e, const void *attrs) {
    const created_t *c = attrs;
    board_t *b = BOARD_OF(e);
    snprintf(b->name, sizeof b->name, "%s", c->name);
    for (b->ncolumns = 0; b->ncolumns < c->ncolumns; b->ncolumns++)
        snprintf(b->columns[b->ncolumns], sizeof b->columns[0], "%s", c->columns[b->ncolumns]);
}
static void on_added(evs_entity_t *e, const void *attrs) {
    const card_attrs_t *a = attrs;
    board_t *b = BOARD_OF(e);
    if (b->ncards == MAX_CARDS) return; /* the command refuses it first */
    card_t *c = &b->cards[b->ncards++];
    snprintf(c->id, sizeof c->id, "%s", a->card);
    snprintf(c->title, sizeof c->title, "%s", a->title);
    c->column = a->column;
}
static void on_moved(evs_entity_t *e, const void *attrs) {
    const card_attrs_t *a = attrs;
    int i = find_card(BOARD_OF(e), a->card);
    if (i >= 0) BOARD_OF(e)->cards[i].column = a->column;
}
static void on_removed(evs_entity_t *e, const void *card) {
    board_t *b = BOARD_OF(e);
    int i = find_card(b, *(const char *const *)card);
    if (i >= 0) b->cards[i] = b->cards[--b->ncards];
}

static const evs_event_type_t CREATED = {.topic = "kanban.BoardCreated",
                                         EVS_EVENT_FIELDS(created_t, CREATED_ATTRS, on_created)};
static const evs_event_type_t ADDED = {.topic = "kanban.CardAdded",
                                       .schema_version = 2,
                                       EVS_EVENT_FIELDS(card_attrs_t, ADDED_ATTRS, on_added)};
static const evs_event_type_t MOVED = {.topic = "kanban.CardMoved",
                                       EVS_EVENT_FIELDS(card_attrs_t, MOVED_ATTRS, on_moved)};
static const evs_event_type_t REMOVED = {.topic = "kanban.CardRemoved",
                                         EVS_EVENT_FIELDS(const char *, REMOVED_ATTRS, on_removed)};
static const evs_entity_type_t BOARD = {.topic = "kanban.Board",
                                        EVS_ENTITY_FIELDS(board_t, BOARD_STATE),
                                        EVS_EVENTS(&CREATED, &ADDED, &MOVED, &REMOVED)};

/* CardAdded had no column in schema 1: a card always went to the first column. */
static int added_v1_to_v2(evs_value_t *attrs, evs_error_t *err) {
    (void)err;
    return evs_map_set_int(attrs, "column", 0);
}

/* Commands: the board's rules, then the event. */
static int card_add(board_t *b, const char *card, const char *title, evs_error_t *err) {
    if (find_card(b, card) >= 0) return evs_error_set(err, EVS_EINVAL, "%s is on the board", card);
    if (b->ncards == MAX_CARDS) return evs_error_set(err, EVS_EINVAL, "the board is full");
    return evs_command(&b->base, &ADDED, &(card_attrs_t){card, title, 0}, err);
}
static int card_move(board_t *b, const char *card, const char *column, evs_error_t *err) {
    int i = find_card(b, card), to = -1;
    for (size_t c = 0; c < b->ncolumns; c++)
        if (strcmp(b->columns[c], column) == 0) to = (int)c;
    if (i < 0 || to < 0)
        return evs_error_set(err, EVS_EINVAL, "no card %s or column %s", card, column);
    if (b->cards[i].column == to) return evs_error_set(err, EVS_EINVAL, "%s is there", card);
    return evs_command(&b->base, &MOVED, &(card_attrs_t){.card = card, .column = to}, err);
}
static int card_remove(board_t *b, const char *card, evs_error_t *err) {
    if (find_card(b, card) < 0) return evs_error_set(err, EVS_EINVAL, "no card %s", card);
    return evs_command(&b->base, &REMOVED, &card, err);
}

/* The read model: how many cards each column holds. One handler, for the in-process pub-sub
 * and for a daemon subscription alike. */
typedef struct view {
    char cards[MAX_CARDS][40];
    int32_t column[MAX_CARDS], per_column[MAX_COLUMNS];
    size_t n, events;
} view_t;
static int view_handle(const evs_domain_event_t *ev, void *arg, evs_error_t *err) {
    view_t *v = arg;
    const char *card = evs_attr_str(ev->attrs, "card", "");
    int32_t to = (int32_t)evs_attr_int(ev->attrs, "column", 0), i = 0;
    while (i < (int32_t)v->n && strcmp(v->cards[i], card) != 0)
        i++;
    if (to < 0 || to >= MAX_COLUMNS ||
        (i == (int32_t)v->n && ev->type != &ADDED && ev->type != &CREATED))
        return evs_error_set(err, EVS_EINVAL, "the view cannot place %s", card);
    if (ev->type == &ADDED && v->n < MAX_CARDS) {
        snprintf(v->cards[v->n], sizeof v->cards[0], "%s", card);
        v->column[v->n++] = to;
        v->per_column[to]++;
    } else if (ev->type == &MOVED) {
        v->per_column[v->column[i]]--;
        v->per_column[v->column[i] = to]++;
    } else if (ev->type == &REMOVED) {
        v->per_column[v->column[i]]--;
        memcpy(v->cards[i], v->cards[--v->n], sizeof v->cards[0]);
        v->column[i] = v->column[v->n];
    }
    v->events++;
    return 0;
}

/* ---------------------------------------------------------------- the scripted session */

static int failures;

static void step(bool ok, const char *what, const char *why) {
    printf("%s %s%s%s\n", ok ? "ok    " : "FAILED", what, ok || !why ? "" : ": ",
           ok || !why ? "" : why);
    if (!ok) failures++;
}

static void board_print(const board_t *b) {
    printf("board %s \"%s\" at version %" PRIu64 "\n", b->base.id, b->name, b->base.version);
    for (size_t c = 0; c < b->ncolumns; c++) {
        printf("  %-6s", b->columns[c]);
        for (size_t i = 0; i < b->ncards; i++)
            if (b->cards[i].column == (int32_t)c)
                printf(" [%s: %s]", b->cards[i].id, b->cards[i].title);
        printf("\n");
    }
}

static int32_t column_of(const board_t *b, const char *card) {
    int i = find_card(b, card);
    return i < 0 ? -1 : b->cards[i].column;
}

static bool view_is(const view_t *v, int todo, int doing, int done) {
    return v->per_column[0] == todo && v->per_column[1] == doing && v->per_column[2] == done;
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
    char store[EVS_STORE_ID_LEN];
    uint64_t head = 0;
    if (!c || c->err || !c2 || c2->err || evs_store_info(c, store, &head) < 0) {
        fprintf(stderr, "cannot connect to evstored at %s: %s\n", addr,
                evs_errstr(c && c->err ? c : c2));
        evs_free(c);
        evs_free(c2);
        return 1;
    }

    evs_registry_t *reg = evs_registry_new();
    if (!reg || evs_registry_add_event(reg, &CREATED) || evs_registry_add_event(reg, &ADDED) ||
        evs_registry_add_event(reg, &MOVED) || evs_registry_add_event(reg, &REMOVED) ||
        evs_registry_add_entity(reg, &BOARD) ||
        evs_registry_add_upcaster(reg, "kanban.CardAdded", 1, added_v1_to_v2)) {
        fprintf(stderr, "cannot fill the registry\n");
        return 1;
    }
    char id[64] = "board-";
    evs_random_id(id + strlen(id));

    /* The in-process view sees what this program's repository saves; the live view is fed by
     * the daemon (every writer), from the store's head on, for this board only. */
    view_t *local = calloc(1, sizeof *local), *live = calloc(1, sizeof *live);
    evs_pubsub_t *bus = evs_pubsub_new();
    evs_pubsub_subscribe(bus, NULL, view_handle, local);
    evs_domain_subscription_options_t so = {.stream = {.addr = addr,
                                                       .timeout_ms = 10000,
                                                       .has_after = true,
                                                       .after = head,
                                                       .entity_prefix = id,
                                                       .store_id = store},
                                            .registry = reg};
    evs_domain_subscription_t *sub = evs_domain_subscribe(&so);
    evs_repository_options_t ro = {
        .registry = reg, .type = &BOARD, .snapshot_every = 4, .publish_to = bus};
    evs_repository_t *boards = evs_repository_new(c, &ro);
    evs_repository_options_t ro2 = {.registry = reg, .type = &BOARD};
    evs_repository_t *other = evs_repository_new(c2, &ro2);
    evs_error_t err = {0};
    board_t *b2 = NULL;

    /* 1. Create the board; add three cards and move one, saved in one append. */
    created_t launch = {"Launch", {"todo", "doing", "done"}, 3};
    board_t *b = evs_entity_start(reg, &BOARD, id, &CREATED, &launch, &err);
    step(b && evs_repository_save(boards, &b->base) == 0, "create a board with three columns",
         b ? c->errstr : err.str);
    if (!b || !local || !live || !sub) goto out;
    step(card_add(b, "a", "write the plan", &err) == 0 &&
             card_add(b, "b", "book the room", &err) == 0 &&
             card_add(b, "c", "order pizza", &err) == 0 && card_move(b, "a", "doing", &err) == 0,
         "add cards a, b, c and move a to doing", err.str);
    step(evs_repository_save(boards, &b->base) == 0, "save the four events in one append",
         c->errstr);

    /* 2. The board's rules refuse, and nothing is pending. */
    step(card_add(b, "a", "again", &err) == EVS_EINVAL && card_move(b, "b", "later", &err) < 0 &&
             card_move(b, "a", "doing", &err) < 0 && card_remove(b, "z", &err) < 0 &&
             b->base.npending == 0,
         "a second card a, an unknown column, a move in place, an unknown card: refused", NULL);

    /* 3. The save passed version 4: a snapshot of the plain fields at version 5. */
    evs_snapshot_t *snap = NULL;
    step(evs_get_snapshot(c, id, EVS_LATEST, &snap) == 0 && snap->version == 5 &&
             strcmp(snap->topic, "kanban.Board@1") == 0,
         "a snapshot was taken at version 5", c->errstr);
    evs_snapshot_free(snap);
    step(card_move(b, "b", "done", &err) == 0 && card_remove(b, "c", &err) == 0 &&
             evs_repository_save(boards, &b->base) == 0,
         "move b to done, remove c", err.code ? err.str : c->errstr);

    /* 4. Last year's client added card d with the first shape of CardAdded (no column). */
    uint8_t old_payload[] = {0x82, 0xa4, 'c', 'a', 'r', 'd',  0xa1, 'd', 0xa5,
                             't',  'i',  't', 'l', 'e', 0xa3, 'o',  'l', 'd'};
    evs_event_t old = {.entity_id = id,
                       .topic = "kanban.CardAdded",
                       .payload = old_payload,
                       .payload_len = sizeof old_payload,
                       .version = 7,
                       .has_version = 1};
    step(evs_append(c2, &old, 1, NULL, NULL) == 0, "an old client adds card d ({card, title})",
         c2->errstr);

    /* 5. Another process moves d: a repository on another connection, no pub-sub. */
    b2 = evs_repository_find(other, id);
    step(b2 && b2->ncards == 3 && column_of(b2, "d") == 0,
         "reload elsewhere: d was upcast into the first column", c2->errstr);
    step(b2 && card_move(b2, "d", "doing", &err) == 0 && evs_repository_save(other, &b2->base) == 0,
         "another process moves d to doing", c2->errstr);

    /* 6. The live view, fed by the daemon, sees all 9 events; the in-process one only ours. */
    for (int i = 0; i < 100 && live->events < 9; i++)
        if (evs_domain_subscription_dispatch(sub, 100, NULL, view_handle, live, &err) < 0) break;
    step(live->events == 9 && view_is(live, 0, 2, 1), "live view: todo 0, doing 2, done 1",
         err.code ? err.str : NULL);
    step(local->events == 7 && view_is(local, 0, 1, 1),
         "in-process view: todo 0, doing 1, done 1 (it never saw d)", NULL);

    /* 7. Reload (from the snapshot and the events after it), and the board at version 5. */
    evs_entity_free(&b->base);
    b = evs_repository_find(boards, id);
    step(b && b->base.version == 9 && b->ncards == 3, "reload: 3 cards at version 9", c->errstr);
    if (b) board_print(b);
    evs_entity_t *then = NULL;
    board_t *was = NULL;
    step(evs_repository_get_at(boards, id, 5, &then) == 0 &&
             (was = EVS_ENTITY_CAST(board_t, then)) && was->ncards == 3 && column_of(was, "c") == 0,
         "at version 5, c was still in todo", c->errstr);
    if (was) board_print(was);
    evs_entity_free(then);

out:
    if (b) evs_entity_free(&b->base);
    if (b2) evs_entity_free(&b2->base);
    evs_domain_subscription_close(sub);
    evs_repository_free(boards);
    evs_repository_free(other);
    evs_pubsub_free(bus);
    evs_registry_free(reg);
    free(local);
    free(live);
    evs_free(c);
    evs_free(c2);
    printf("%s\n", failures ? "some steps FAILED" : "every step behaved");
    return failures ? 1 : 0;
}
