/* checkpoint_table.c: consumers' checkpoints in memory (see checkpoint_table.h). */
#include "checkpoint_table.h"

#include <stdlib.h>
#include <string.h>
#include <uthash.h>

struct cpt_node {
    uint64_t position;
    int64_t expires_us; /* leases */
    UT_hash_handle hh;
    char name[]; /* NUL-terminated */
};

static cpt_node_t *find(const cpt_table_t *t, const char *consumer) {
    cpt_node_t *node;
    HASH_FIND_STR(t->nodes, consumer, node);
    return node;
}

uint64_t cpt_get(const cpt_table_t *t, const char *consumer) {
    cpt_node_t *node = find(t, consumer);
    return node ? node->position : 0;
}

int cpt_set(cpt_table_t *t, const char *consumer, uint64_t position) {
    cpt_node_t *node = find(t, consumer);
    if (!node) {
        size_t len = strlen(consumer);
        if (!(node = malloc(sizeof *node + len + 1))) return -1;
        memcpy(node->name, consumer, len + 1);
        node->expires_us = 0;
        HASH_ADD_KEYPTR(hh, t->nodes, node->name, len, node);
        t->n++;
        t->bytes += sizeof *node + len + 1;
    }
    node->position = position;
    return 0;
}

bool cpt_delete(cpt_table_t *t, const char *consumer) {
    cpt_node_t *node = find(t, consumer);
    if (!node) return false;
    HASH_DEL(t->nodes, node);
    t->n--;
    t->bytes -= sizeof *node + strlen(node->name) + 1;
    free(node);
    return true;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const store_consumer_t *)a)->consumer, ((const store_consumer_t *)b)->consumer);
}

store_consumer_t *cpt_list(const cpt_table_t *t, size_t *n) {
    *n = t->n;
    if (t->n == 0) return NULL;
    store_consumer_t *list = calloc(t->n, sizeof *list);
    if (!list) return NULL;
    size_t k = 0;
    for (cpt_node_t *node = t->nodes; node; node = node->hh.next)
        list[k++] = (store_consumer_t){.consumer = node->name, .position = node->position};
    qsort(list, k, sizeof *list, by_name);
    return list;
}

void cpt_free(cpt_table_t *t) {
    cpt_node_t *node, *tmp;
    HASH_ITER(hh, t->nodes, node, tmp) {
        HASH_DEL(t->nodes, node);
        free(node);
    }
    t->n = t->bytes = 0;
}

int cpt_lease(cpt_table_t *t, const char *consumer, uint64_t fence, int64_t expires_us,
              int64_t now_us, uint64_t *out) {
    cpt_node_t *node = find(t, consumer);
    if (fence == 0 && node && node->expires_us > now_us) return 0;
    if (fence != 0 && (!node || node->position != fence)) return 0;
    uint64_t next = fence ? fence : (node ? node->position : 0) + 1;
    if (cpt_set(t, consumer, next) != 0) return -1;
    node = find(t, consumer);
    node->expires_us = expires_us;
    *out = next;
    return 1;
}

uint64_t cpt_lease_fence(const cpt_table_t *t, const char *consumer, int64_t now_us, bool *active) {
    cpt_node_t *node = find(t, consumer);
    *active = node && node->expires_us > now_us;
    return node ? node->position : 0;
}

bool cpt_lease_release(cpt_table_t *t, const char *consumer, uint64_t fence) {
    cpt_node_t *node = find(t, consumer);
    if (!node || node->position != fence) return false;
    node->expires_us = 0;
    return true;
}
