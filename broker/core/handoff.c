/* handoff.c - a bounded multimap from an event's log text to its parsed
 * form, oldest evicted first, guarded by one mutex (one put per append, one
 * take per consumed record). */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/handoff.h"

struct entry {
    struct entry *chain;         /* same bucket */
    struct entry *older, *newer; /* insertion order */
    uint64_t hash;
    char *text;
    size_t len;
    json_t *ev;
};

struct oh_handoff {
    pthread_mutex_t mu;
    struct entry **bucket;
    size_t mask;
    struct entry *oldest, *newest;
    size_t n, bytes, max_n, max_bytes;
};

/* 64-bit multiply-rotate hash over 8-byte words. */
static uint64_t hash_text(const char *s, size_t len)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ len, w;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h = (h << 29) | (h >> 35);
    }
    w = 0;
    memcpy(&w, s + i, len - i);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 32);
}

oh_handoff *oh_handoff_new(size_t max_entries, size_t max_bytes)
{
    oh_handoff *h = calloc(1, sizeof *h);
    size_t nb = 16;
    while (nb < max_entries * 2)
        nb *= 2;
    if (!h || !(h->bucket = calloc(nb, sizeof *h->bucket))) {
        free(h);
        return NULL;
    }
    pthread_mutex_init(&h->mu, NULL);
    h->mask = nb - 1;
    h->max_n = max_entries ? max_entries : 1;
    h->max_bytes = max_bytes;
    return h;
}

static void unlink_entry(oh_handoff *h, struct entry *e)
{
    struct entry **p = &h->bucket[e->hash & h->mask];
    while (*p != e)
        p = &(*p)->chain;
    *p = e->chain;
    if (e->older)
        e->older->newer = e->newer;
    else
        h->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        h->newest = e->older;
    h->n--;
    h->bytes -= e->len;
}

static void free_entry(struct entry *e)
{
    json_decref(e->ev);
    free(e->text);
    free(e);
}

void oh_handoff_free(oh_handoff *h)
{
    if (!h) return;
    for (struct entry *e = h->oldest, *next; e; e = next) {
        next = e->newer;
        free_entry(e);
    }
    pthread_mutex_destroy(&h->mu);
    free(h->bucket);
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
    char *copy = NULL;
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
    if (!h || !ev || len > h->max_bytes || has_nul_escape(text, len) || !(e = malloc(sizeof *e)) ||
        !(copy = malloc(len ? len : 1))) {
        json_decref(ev);
        free(e);
        return false;
    }
    memcpy(copy, text, len);
    *e = (struct entry){.hash = hash_text(text, len), .text = copy, .len = len, .ev = ev};
    struct entry *evicted = NULL;
    pthread_mutex_lock(&h->mu);
    while (h->oldest && (h->n >= h->max_n || h->bytes + len > h->max_bytes)) {
        struct entry *old = h->oldest;
        unlink_entry(h, old);
        old->chain = evicted;
        evicted = old;
    }
    struct entry **b = &h->bucket[e->hash & h->mask];
    e->chain = *b;
    *b = e;
    e->older = h->newest;
    if (h->newest)
        h->newest->newer = e;
    else
        h->oldest = e;
    h->newest = e;
    h->n++;
    h->bytes += len;
    pthread_mutex_unlock(&h->mu);
    while (evicted) {
        struct entry *next = evicted->chain;
        free_entry(evicted);
        evicted = next;
    }
    return true;
}

json_t *oh_handoff_take(oh_handoff *h, const char *text, size_t len)
{
    if (!h) return NULL;
    uint64_t hash = hash_text(text, len);
    struct entry *found = NULL;
    pthread_mutex_lock(&h->mu);
    /* the oldest of equal texts first: a chain lists the newest first */
    for (struct entry *e = h->bucket[hash & h->mask]; e; e = e->chain)
        if (e->hash == hash && e->len == len && memcmp(e->text, text, len) == 0) found = e;
    if (found) unlink_entry(h, found);
    pthread_mutex_unlock(&h->mu);
    if (!found) return NULL;
    json_t *ev = found->ev;
    found->ev = NULL;
    free_entry(found);
    return ev;
}
