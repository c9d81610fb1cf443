/* map.h - a chained hash map from byte-string keys to entries that embed
 * its node (the map allocates only its buckets), grown by doubling, with
 * deletion and iteration in the order entries were added. Not thread-safe. */
#ifndef OH_MAP_H
#define OH_MAP_H

#include <stddef.h>
#include <stdint.h>

/* Embedded in an entry; the entry is the caller's (allocated, freed, and
 * kept alive while it is in the map). */
struct oh_map_node {
    struct oh_map_node *chain;       /* in its bucket, the oldest first */
    struct oh_map_node *prev, *next; /* in the order they were added */
    const char *key;                 /* borrowed from the entry */
    size_t len;
    uint64_t hash;
};

/* All zero is an empty map. FIRST..NEXT visits every entry in the order
 * added; removing the one being visited is safe once its NEXT is read. */
typedef struct oh_map {
    struct oh_map_node **bucket;
    size_t nbucket; /* 0 or a power of two */
    size_t n;
    struct oh_map_node *first, *last;
} oh_map;

/* The entry of type TYPE whose member MEMBER is NODE (NULL-safe). */
#define oh_map_entry(node, type, member)                                                           \
    ((type *)oh_map_entry_((node), offsetof(type, member)))

static inline void *oh_map_entry_(struct oh_map_node *node, size_t off)
{
    return node ? (char *)node - off : NULL;
}

/* The hash of KEY (LEN bytes) that the map files it under. */
uint64_t oh_map_hash(const char *key, size_t len);

/* The node of KEY (LEN bytes, not NULL; HASH: oh_map_hash's): of equal
 * keys, the first added; NULL when there is none. */
struct oh_map_node *oh_map_get_hashed(const oh_map *m, const char *key, size_t len,
                                      uint64_t hash);

/* Adds NODE under KEY (LEN bytes, borrowed: it must stay unchanged while
 * NODE is in the map; HASH: oh_map_hash's), after any equal keys. The map
 * grows past one entry per bucket; a growth that fails leaves longer
 * chains. OH_ENOMEM only when the map has no buckets and cannot get any
 * (NODE is not added). */
int oh_map_put_hashed(oh_map *m, struct oh_map_node *node, const char *key, size_t len,
                      uint64_t hash);

/* The same, hashing KEY (the _hashed forms let a map under a lock hash
 * outside it). */
static inline struct oh_map_node *oh_map_get(const oh_map *m, const char *key, size_t len)
{
    return oh_map_get_hashed(m, key, len, oh_map_hash(key, len));
}

static inline int oh_map_put(oh_map *m, struct oh_map_node *node, const char *key, size_t len)
{
    return oh_map_put_hashed(m, node, key, len, oh_map_hash(key, len));
}

/* Removes NODE (in M); its entry stays the caller's. */
void oh_map_del(oh_map *m, struct oh_map_node *node);

/* Buckets for N entries without growing (a map used under a lock). */
int oh_map_reserve(oh_map *m, size_t n);

/* Frees the buckets and empties M; the entries stay the caller's (free
 * them first, walking FIRST..NEXT). */
void oh_map_clear(oh_map *m);

#endif
