/* pg/version_cache.c: the entities' next versions between groups (see version_cache.h). */
#include "version_cache.h"

#include <stdlib.h>
#include <string.h>
#include <uthash.h>

struct vcache_node {
    uint64_t next;
    UT_hash_handle hh;
    char id[]; /* the entity id, NUL-terminated */
};

static void clear(vcache_t *c) {
    vcache_node_t *node, *tmp;
    HASH_ITER(hh, c->nodes, node, tmp) {
        HASH_DEL(c->nodes, node);
        free(node);
    }
    c->n = 0;
}

void vcache_invalidate(vcache_t *c) {
    clear(c);
    c->valid = false;
}

static vcache_node_t *find(const vcache_t *c, const char *entity_id) {
    vcache_node_t *node;
    HASH_FIND_STR(c->nodes, entity_id, node);
    return node;
}

bool vcache_lookup(const vcache_t *c, const char *entity_id, uint64_t *next) {
    vcache_node_t *node = find(c, entity_id);
    if (node) *next = node->next;
    return node != NULL;
}

int vcache_set(vcache_t *c, const char *entity_id, uint64_t next) {
    vcache_node_t *node = find(c, entity_id);
    if (!node) {
        if (c->n >= VCACHE_MAX) clear(c);
        size_t len = strlen(entity_id);
        if (!(node = malloc(sizeof *node + len + 1))) {
            vcache_invalidate(c);
            return -1;
        }
        memcpy(node->id, entity_id, len + 1);
        HASH_ADD_KEYPTR(hh, c->nodes, node->id, len, node);
        c->n++;
    }
    node->next = next;
    return 0;
}

void vcache_commit(vcache_t *c, int64_t seq) {
    c->seq = seq;
    c->valid = true;
}

void vcache_entity_deleted(vcache_t *c, const char *entity_id, int64_t seq) {
    if (!c->valid || seq != c->seq + 1) {
        vcache_invalidate(c);
        return;
    }
    vcache_node_t *node = find(c, entity_id);
    if (node) node->next = 0;
    c->seq = seq;
}
