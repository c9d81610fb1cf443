/* map.c - the chained hash map of map.h: a word-at-a-time hash, buckets
 * doubled at one entry per bucket, chains and the order list kept oldest
 * first. */
#include <stdlib.h>
#include <string.h>
#include "core/map.h"
#include "core/oh.h"

#define MIN_BUCKETS 16

/* Eight bytes per multiply-rotate step, then murmur3's finalizer so that
 * the low bits (the bucket) depend on every byte: ids often differ only in
 * their last characters. */
uint64_t oh_map_hash(const char *s, size_t len)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ len, w;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h = (h << 29) | (h >> 35);
    }
    w = 0;
    for (size_t k = 0; i + k < len; k++)
        w |= (uint64_t)(unsigned char)s[i + k] << (8 * k);
    h ^= w;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

/* Spreads the entries over NB buckets (a power of two): walked from the
 * newest, each put at the head of its chain, so chains stay oldest first. */
static int rehash(oh_map *m, size_t nb)
{
    struct oh_map_node **b = calloc(nb, sizeof *b);
    if (!b) return OH_ENOMEM;
    for (struct oh_map_node *e = m->last; e; e = e->prev) {
        e->chain = b[e->hash & (nb - 1)];
        b[e->hash & (nb - 1)] = e;
    }
    free(m->bucket);
    m->bucket = b;
    m->nbucket = nb;
    return OH_OK;
}

int oh_map_reserve(oh_map *m, size_t n)
{
    size_t nb = MIN_BUCKETS;
    while (nb < n && nb < SIZE_MAX / 2 / sizeof *m->bucket)
        nb *= 2;
    return nb > m->nbucket ? rehash(m, nb) : OH_OK;
}

struct oh_map_node *oh_map_get_hashed(const oh_map *m, const char *key, size_t len, uint64_t h)
{
    if (!m->n) return NULL;
    for (struct oh_map_node *e = m->bucket[h & (m->nbucket - 1)]; e; e = e->chain)
        if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0) return e;
    return NULL;
}

int oh_map_put_hashed(oh_map *m, struct oh_map_node *node, const char *key, size_t len,
                      uint64_t hash)
{
    if (m->n >= m->nbucket && rehash(m, m->nbucket ? m->nbucket * 2 : MIN_BUCKETS) &&
        !m->nbucket)
        return OH_ENOMEM;
    *node = (struct oh_map_node){.prev = m->last, .key = key, .len = len, .hash = hash};
    struct oh_map_node **p = &m->bucket[node->hash & (m->nbucket - 1)];
    while (*p)
        p = &(*p)->chain;
    *p = node;
    if (m->last)
        m->last->next = node;
    else
        m->first = node;
    m->last = node;
    m->n++;
    return OH_OK;
}

void oh_map_del(oh_map *m, struct oh_map_node *node)
{
    struct oh_map_node **p = &m->bucket[node->hash & (m->nbucket - 1)];
    while (*p != node)
        p = &(*p)->chain;
    *p = node->chain;
    if (node->prev)
        node->prev->next = node->next;
    else
        m->first = node->next;
    if (node->next)
        node->next->prev = node->prev;
    else
        m->last = node->prev;
    m->n--;
}

void oh_map_clear(oh_map *m)
{
    free(m->bucket);
    *m = (oh_map){0};
}
