/* app.c: a program outside the tree, built by test_install.sh against a staged `make install`
 * with `cc app.c $(pkg-config --cflags --libs evstore)`: appends one event and reads it back. */
#include <evstore.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    evs_context_t *c = evs_connect(argc > 1 ? argv[1] : EVS_DEFAULT_ADDR);
    if (!c || evs_err(c)) {
        fprintf(stderr, "connect: %s\n", evs_errstr(c));
        evs_free(c);
        return 1;
    }
    evs_event_t ev = {.entity_id = "order-42",
                      .topic = "order-placed",
                      .payload = (uint8_t *)"\x80",
                      .payload_len = 1};
    uint64_t pos = 0;
    evs_events_t *list = NULL;
    if (evs_append(c, &ev, 1, &pos, NULL) < 0 ||
        evs_get_by_entity(c, "order-42", 0, 0, false, &list) < 0) {
        fprintf(stderr, "%s: %s\n", evs_strcode(evs_err(c)), evs_errstr(c));
        evs_free(c);
        return 1;
    }
    /* The helpers of <evstore/event.h> and <evstore/errors.h> are exported too. */
    char uuid[37] = "-";
    if (list->n) evs_uuid_format(list->events[0].event_id, uuid);
    printf("appended at position %llu; entity has %zu event(s), topic %s, first id %s (%s)\n",
           (unsigned long long)pos, list->n, list->n ? list->events[0].topic : "-", uuid,
           evs_code_name(EVS_OK));
    evs_events_free(list);
    evs_free(c);
    return 0;
}
