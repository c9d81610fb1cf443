/* handoff.c - a bounded multimap from an event's log text to its parsed
 * form (core/map.h), oldest evicted first, guarded by one mutex (one put
 * per append, one take per consumed record). */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/handoff.h"
#include "core/map.h"

struct entry {
    struct oh_map_node node; /* keyed by TEXT (its LEN bytes) */
    json_t *ev;
    char text[];
};

struct oh_handoff {
    pthread_mutex_t mu;
    oh_map map; /* its buckets reserved: it never grows under the mutex */
    size_t bytes, max_n, max_bytes;
};

oh_handoff *oh_handoff_new(size_t max_entries, size_t max_bytes)
{
    oh_handoff *h = calloc(1, sizeof *h);
    if (!h || oh_map_reserve(&h->map, max_entries * 2)) {
        free(h);
        return NULL;
    }
    pthread_mutex_init(&h->mu, NULL);
    h->max_n = max_entries ? max_entries : 1;
    h->max_bytes = max_bytes;
    return h;
}

static struct entry *entry_of(struct oh_map_node *n)
{
    return oh_map_entry(n, struct entry, node);
}

static void unlink_entry(oh_handoff *h, struct entry *e)
{
    oh_map_del(&h->map, &e->node);
    h->bytes -= e->node.len;
}

static void free_entry(struct entry *e)
{
    json_decref(e->ev);
    free(e);
}

void oh_handoff_free(oh_handoff *h)
{
    if (!h) return;
    for (struct oh_map_node *n = h->map.first, *next; n; n = next) {
        next = n->next;
        free_entry(entry_of(n));
    }
    pthread_mutex_destroy(&h->mu);
    oh_map_clear(&h->map);
    free(h);
}

/* The taker changes the envelope (seq, epoch) and data.status (correlation):
 * those must be this event's own, not shared with a caller. */
static bool exclusive(const json_t *ev)
{
    const json_t *data = json_object_get(ev, "data");
    const json_t *status = json_object_get(data, "status");
    return ev->refcount == 1 && (!data || data->refcount == 1) &&
           (!status || status->refcount == 1);
}

/* Whether TEXT holds the escape "\u0000": memchr to each backslash (a
 * record has few) costs a tenth of memmem's general search. */
static bool has_nul_escape(const char *text, size_t len)
{
    for (const char *p = text, *end = text + len; (p = memchr(p, '\\', (size_t)(end - p))) != NULL;
         p += 2) {
        if (end - p >= 6 && memcmp(p, "\\u0000", 6) == 0) return true;
        if (end - p < 2) break;
    }
    return false;
}

bool oh_handoff_put(oh_handoff *h, const char *text, size_t len, json_t *ev)
{
    struct entry *e = NULL;
    /* json_loadb refuses "\u0000" in strings: such a record must meet the
     * same parser the sync service would use */
    if (ev && !exclusive(ev)) {
        /* shared with its maker (a service keeping its decisions until they
         * are appended): a private copy, at a fifth of what parsing the
         * text again in the taker costs */
        json_t *own = json_deep_copy(ev);
        json_decref(ev);
        ev = own;
    }
    if (!h || !ev || len > h->max_bytes || has_nul_escape(text, len) ||
        !(e = malloc(sizeof *e + len))) {
        json_decref(ev);
        return false;
    }
    e->ev = ev;
    memcpy(e->text, text, len);
    uint64_t hash = oh_map_hash(text, len);
    struct entry *evicted = NULL;
    pthread_mutex_lock(&h->mu);
    while (h->map.first && (h->map.n >= h->max_n || h->bytes + len > h->max_bytes)) {
        struct entry *old = entry_of(h->map.first);
        unlink_entry(h, old);
        old->node.chain = evicted ? &evicted->node : NULL; /* freed after the unlock */
        evicted = old;
    }
    oh_map_put_hashed(&h->map, &e->node, e->text, len, hash); /* buckets reserved: cannot fail */
    h->bytes += len;
    pthread_mutex_unlock(&h->mu);
    while (evicted) {
        struct entry *next = entry_of(evicted->node.chain);
        free_entry(evicted);
        evicted = next;
    }
    return true;
}

json_t *oh_handoff_take(oh_handoff *h, const char *text, size_t len)
{
    if (!h) return NULL;
    uint64_t hash = oh_map_hash(text, len);
    pthread_mutex_lock(&h->mu);
    /* the oldest of equal texts first */
    struct entry *found = entry_of(oh_map_get_hashed(&h->map, text, len, hash));
    if (found) unlink_entry(h, found);
    pthread_mutex_unlock(&h->mu);
    if (!found) return NULL;
    json_t *ev = found->ev;
    found->ev = NULL;
    free_entry(found);
    return ev;
}
