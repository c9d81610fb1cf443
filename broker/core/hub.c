/* hub.c - ingestion: validates normalized events and appends them to the
 * events topic, reporting back once every one of them is durable; and the
 * rebuild of the knowledge base's indexes from the store. */
#include <stdatomic.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "core/json_dump.h"
#include "core/hub_int.h"
#include "core/metrics.h"
#include "core/kbase.h"
#include "core/map.h"

/* Events appended and not yet acknowledged by the log, this process:
 * omnihub_ingest_pending (a gateway's queue towards the log). */
static atomic_long pending_appends;

static void pending_add(long by)
{
    long now = atomic_fetch_add(&pending_appends, by) + by;
    oh_metrics_set("omnihub_ingest_pending", "", (double)now);
}

/* The subjects this process appended to lately (oh_hub_appended_lately,
 * oh_hub_appended_at): a table indexed by the subject's hash, each slot the
 * time of the last append and where the last completed client append
 * (oh_hub_ingest_client) went. Two subjects sharing a slot take turns: the
 * one overwritten reads as "not lately". Slots are guarded by striped
 * locks: one append or lookup takes one, briefly. */
#define RECENT_SLOTS 16384
#define RECENT_LOCKS 64

static struct recent {
    uint64_t hash;
    int64_t ms;        /* the last append's start, monotonic */
    int32_t partition; /* the last completed client append's place; offset -1: none */
    int64_t offset;
} recent[RECENT_SLOTS];
static pthread_mutex_t recent_mu[RECENT_LOCKS];
static pthread_once_t recent_once = PTHREAD_ONCE_INIT;

static void recent_init(void)
{
    for (int i = 0; i < RECENT_LOCKS; i++)
        pthread_mutex_init(&recent_mu[i], NULL);
}

static struct recent *recent_lock(uint64_t h)
{
    pthread_once(&recent_once, recent_init);
    pthread_mutex_lock(&recent_mu[h % RECENT_LOCKS]);
    return &recent[h % RECENT_SLOTS];
}

static void recent_unlock(uint64_t h)
{
    pthread_mutex_unlock(&recent_mu[h % RECENT_LOCKS]);
}

static void recent_put(uint64_t h)
{
    struct recent *r = recent_lock(h);
    if (r->hash != h) *r = (struct recent){.hash = h, .offset = -1};
    r->ms = oh_mono_ms();
    recent_unlock(h);
}

static void recent_done(uint64_t h, int32_t partition, int64_t offset)
{
    struct recent *r = recent_lock(h);
    if (r->hash == h && (r->partition != partition || r->offset < offset)) {
        r->partition = partition;
        r->offset = offset;
    }
    recent_unlock(h);
}

/* The slot of ID when it was appended to in the last WITHIN_MS. */
static bool recent_get(const char *id, int64_t within_ms, struct recent *out)
{
    uint64_t h = oh_map_hash(id, strlen(id));
    struct recent *r = recent_lock(h);
    bool lately = r->hash == h && r->ms > 0 && r->ms >= oh_mono_ms() - within_ms;
    *out = *r;
    recent_unlock(h);
    return lately;
}

bool oh_hub_appended_lately(const char *id, int64_t within_ms)
{
    struct recent r;
    return recent_get(id, within_ms, &r);
}

bool oh_hub_appended_at(const char *id, int64_t within_ms, int32_t *partition, int64_t *offset)
{
    struct recent r;
    if (!recent_get(id, within_ms, &r) || r.offset < 0) return false;
    *partition = r.partition;
    *offset = r.offset;
    return true;
}

/* One ingest call: completes when its last append completes. */
struct batch {
    atomic_int pending;
    atomic_int err;
    int64_t started_us;
    oh_hub_done_fn done;
    void *opaque;
    struct append {
        struct batch *b;
        uint64_t subject; /* its hash */
        bool client;      /* a client waits on it (oh_hub_ingest_client) */
    } a[];                /* one per event */
};

static void release(struct batch *b)
{
    if (atomic_fetch_sub(&b->pending, 1) == 1) {
        b->done(b->opaque, atomic_load(&b->err));
        free(b);
    }
}

/* runs on the log's thread */
static void on_appended(void *opaque, int err, int32_t partition, int64_t offset)
{
    struct append *a = opaque;
    struct batch *b = a->b;
    if (err)
        atomic_store(&b->err, err);
    else if (a->client)
        recent_done(a->subject, partition, offset);
    oh_metrics_observe("omnihub_log_append_seconds", "",
                       (double)(oh_mono_us() - b->started_us) / 1e6);
    pending_add(-1);
    release(b);
}

static int ingest(oh_hub *hub, struct oh_event_list *events, const char *const *texts,
                  const size_t *lens, oh_hub_done_fn done, void *opaque, bool client);

int oh_hub_ingest(oh_hub *hub, struct oh_event_list *events, oh_hub_done_fn done, void *opaque)
{
    return ingest(hub, events, NULL, NULL, done, opaque, false);
}

int oh_hub_ingest_client(oh_hub *hub, struct oh_event_list *events, oh_hub_done_fn done,
                         void *opaque)
{
    return ingest(hub, events, NULL, NULL, done, opaque, true);
}

int oh_hub_ingest_texts(oh_hub *hub, struct oh_event_list *events, const char *const *texts,
                        const size_t *lens, oh_hub_done_fn done, void *opaque)
{
    return ingest(hub, events, texts, lens, done, opaque, false);
}

static int ingest(oh_hub *hub, struct oh_event_list *events, const char *const *texts,
                  const size_t *lens, oh_hub_done_fn done, void *opaque, bool client)
{
    char err[256];
    for (size_t i = 0; i < events->n; i++)
        if ((!texts || !texts[i]) && oh_event_validate(events->ev[i], err, sizeof err)) {
            OH_WARN("hub", "refusing event: %s", err);
            oh_event_list_clear(events);
            return OH_EINVAL;
        }
    if (events->n == 0) {
        oh_event_list_clear(events);
        done(opaque, OH_OK);
        return OH_OK;
    }
    /* every record made first: the batch is appended whole or not at all */
    struct record {
        const char *text;
        char *own;
        size_t len;
    } stack[4], *rec = events->n <= 4 ? stack : calloc(events->n, sizeof *rec);
    int rc = rec ? OH_OK : OH_ENOMEM;
    size_t made = 0;
    for (size_t i = 0; i < events->n && rc == OH_OK; i++, made++) {
        rec[i] = (struct record){texts ? texts[i] : NULL, NULL, texts && texts[i] ? lens[i] : 0};
        if (!rec[i].text) rec[i].text = rec[i].own = oh_json_dump(events->ev[i], &rec[i].len);
        if (!rec[i].text) rc = OH_ENOMEM;
        if (rc == OH_OK && rec[i].len > oh_hub_record_max(hub)) {
            OH_WARN("hub", "refusing event %s: %zu bytes, over the %zu a record may have",
                    oh_event_get_id(events->ev[i]), rec[i].len, oh_hub_record_max(hub));
            rc = OH_ETOOBIG;
        }
    }
    struct batch *b = rc == OH_OK ? calloc(1, sizeof *b + events->n * sizeof b->a[0]) : NULL;
    if (!b) {
        for (size_t i = 0; i < made; i++)
            free(rec[i].own);
        if (rec != stack) free(rec);
        oh_event_list_clear(events);
        return rc == OH_OK ? OH_ENOMEM : rc;
    }
    /* one extra count so the batch cannot complete while we still append */
    atomic_init(&b->pending, (int)events->n + 1);
    atomic_init(&b->err, 0);
    b->started_us = oh_mono_us();
    b->done = done;
    b->opaque = opaque;
    for (size_t i = 0; i < events->n; i++) {
        size_t len = rec[i].len;
        char *value = rec[i].own, subject[OH_ID_MAX];
        const char *text = rec[i].text;
        if (rc == OH_OK) {
            oh_strcpy(subject, sizeof subject, oh_event_subject(events->ev[i]));
            b->a[i] = (struct append){b, oh_map_hash(subject, strlen(subject)), client};
            recent_put(b->a[i].subject);
            /* what consumers route on travels beside the value; copied, as
             * the handoff may release the event */
            char type[128], author[64];
            const char *kind = oh_event_author_kind(events->ev[i]);
            oh_strcpy(type, sizeof type, oh_event_get_type(events->ev[i]));
            oh_strcpy(author, sizeof author, kind ? kind : "");
            struct oh_log_meta meta = {
                .type = type, .subject = subject, .author = kind ? author : NULL};
            /* before the append: the sync service may read the record at once */
            oh_handoff_put(hub->handoff, text, len, events->ev[i]);
            events->ev[i] = NULL;
            pending_add(1);
            rc = oh_log_append_meta(hub->log, OH_TOPIC_EVENTS, subject, &meta, text, len,
                                    on_appended, &b->a[i]);
            if (rc != OH_OK) pending_add(-1);
        }
        free(value);
        if (rc != OH_OK) {
            atomic_store(&b->err, rc);
            release(b); /* this append will never report */
        }
    }
    if (rec != stack) free(rec);
    oh_event_list_clear(events);
    release(b);
    return OH_OK;
}

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int err;
};

static void wake(void *opaque, int err)
{
    struct waiter *w = opaque;
    pthread_mutex_lock(&w->mu);
    w->done = true;
    w->err = err;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int oh_hub_ingest_wait(oh_hub *hub, struct oh_event_list *events)
{
    return oh_hub_ingest_texts_wait(hub, events, NULL, NULL);
}

int oh_hub_ingest_texts_wait(oh_hub *hub, struct oh_event_list *events, const char *const *texts,
                             const size_t *lens)
{
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0};
    int rc = oh_hub_ingest_texts(hub, events, texts, lens, wake, &w);
    if (rc) return rc;
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    return w.err;
}

struct oh_instance *oh_hub_connector(oh_hub *hub, const char *channel)
{
    size_t n = strcspn(channel, ":");
    for (size_t i = 0; i < hub->nconn; i++)
        if (strlen(hub->conn[i].vt->name) == n && strncmp(hub->conn[i].vt->name, channel, n) == 0)
            return &hub->conn[i];
    return NULL;
}

void oh_hub_feed(oh_hub *hub, const char *conv, int64_t seq, const char *json, size_t len)
{
    if (hub->feed) hub->feed(hub->feed_opaque, conv, seq, json, len);
}

void oh_hub_outcomes(oh_hub *hub, const char *const *ids, size_t n)
{
    if (hub->outcomes) hub->outcomes(hub->outcomes_opaque, ids, n);
}

/* ---- the knowledge base's indexes ---- */

struct kb_rows {
    struct oh_kb_article *arts;
    json_t *keep; /* owns the strings the articles borrow */
    size_t n, cap;
    int rc;
};

static int kb_add(struct kb_rows *l, const char *id, const char *title, const char *body,
                  const char *locale, const char *tags_json)
{
    if (oh_grow(&l->arts, &l->cap, l->n + 1, sizeof *l->arts, 256)) return OH_ENOMEM;
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "id", id, "title", title ? title : "", "body",
                          body ? body : "", "locale", locale && *locale ? locale : "en");
    json_t *tags = tags_json ? json_loads(tags_json, 0, NULL) : NULL;
    if (!o) {
        json_decref(tags);
        return OH_ENOMEM;
    }
    json_array_append_new(l->keep, o);
    struct oh_kb_article *a = &l->arts[l->n++];
    *a = (struct oh_kb_article){
        .id = json_string_value(json_object_get(o, "id")),
        .title = json_string_value(json_object_get(o, "title")),
        .body = json_string_value(json_object_get(o, "body")),
        .locale = json_string_value(json_object_get(o, "locale")),
    };
    size_t nt = json_is_array(tags) ? json_array_size(tags) : 0;
    if (nt) {
        const char **t = calloc(nt, sizeof *t);
        json_t *arr = json_array(); /* the strings' owner, kept with the row */
        for (size_t i = 0; t && arr && i < nt; i++)
            if (json_is_string(json_array_get(tags, i))) {
                json_array_append(arr, json_array_get(tags, i));
                t[a->ntags++] = json_string_value(json_array_get(tags, i));
            }
        json_object_set_new(o, "tags", arr ? arr : json_array());
        a->tags = t; /* freed by oh_hub_kb_reload */
    }
    json_decref(tags);
    return 0;
}

static int kb_article_row(void *opaque, const struct oh_store_article *a)
{
    struct kb_rows *l = opaque;
    return kb_add(l, a->id, a->title, a->body, a->locale, a->tags);
}

static int kb_canned_row(void *opaque, const char *key, const char *value)
{
    struct kb_rows *l = opaque;
    json_t *o = json_loads(value, 0, NULL);
    int rc = kb_add(l, key, json_string_value(json_object_get(o, "title")),
                    json_string_value(json_object_get(o, "text")),
                    json_string_value(json_object_get(o, "locale")), NULL);
    json_decref(o);
    return rc;
}

int oh_hub_kb_reload(oh_hub *hub, bool canned, char *err, size_t errlen)
{
    struct oh_kbase *target = canned ? hub->canned : hub->kb;
    if (!target || !hub->store) return OH_OK;
    uint64_t gen = oh_kbase_next_gen(target);
    struct kb_rows l = {.keep = json_array()};
    int rc = !l.keep  ? OH_ENOMEM
             : canned ? oh_store_kv_scan(hub->store, OH_CANNED_NS, kb_canned_row, &l)
                      : oh_store_articles(hub->store, kb_article_row, &l);
    oh_kb *index = NULL;
    if (rc == OH_OK && l.n > 0 && !(index = oh_kb_new(l.arts, l.n, err, errlen)))
        rc = OH_ENOMEM;
    else if (rc)
        oh_errf(err, errlen, "store: %s", oh_strerror(rc));
    if (rc == OH_OK) oh_kbase_swap(target, index, gen);
    for (size_t i = 0; i < l.n; i++)
        free((void *)l.arts[i].tags);
    free(l.arts);
    json_decref(l.keep);
    return rc;
}

size_t oh_hub_record_max(oh_hub *hub)
{
    size_t max = atomic_load_explicit(&hub->record_max, memory_order_relaxed);
    if (max) return max;
    max = OH_HUB_RECORD_MAX;
    const char *backend = hub->cfg ? oh_config_str(hub->cfg, "log.backend") : NULL;
    if (backend && strcmp(backend, "kafka") == 0) {
        long long limit = oh_config_int(hub->cfg, "kafka.message_max_bytes") - OH_LOG_TIMELINE_ROOM;
        if (limit < (long long)max) max = limit > 0 ? (size_t)limit : 1;
    }
    atomic_store_explicit(&hub->record_max, max, memory_order_relaxed);
    return max;
}

bool oh_hub_runs(const oh_hub *hub, const char *role)
{
    if (strcmp(hub->roles, "all") == 0) return true;
    size_t n = strlen(role);
    for (const char *p = hub->roles; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, role, n) == 0) return true;
        p += len + (p[len] == ',');
    }
    return false;
}
