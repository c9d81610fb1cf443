/* sync.c - the session-sync service: consumes the events topic, drops
 * repeats, gives each conversation its next seq, stores events together
 * with the consumed position (exactly once), forwards the sequenced events
 * to the timeline topic and the live feed. A service (service.h): runs on
 * the thread "oh-sync". */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/hub_int.h"
#include "services/service.h"
#include "core/json_dump.h"
#include "core/metrics.h"
#include "services/sync_state.h"
#include "services/sync_contacts.h"

#define MAX_BATCH 4096
#define MAX_PARTS 256

struct sync_state {
    oh_hub *hub;
    /* 4 * MAX_BATCH of them: a record may add a state change, and a
     * customer's message with inline triage its enriched event and a raise */
    struct oh_store_item *items;
    /* beside each item: the metadata its record carried when the item is
     * that record's event as this process appended it (type and subject
     * copied from that very event, core/hub.c), else NULL */
    const struct oh_log_meta **from;
    /* beside each item: true for a customer's message sync scored inline
     * (its enriched event among the items after it), marked for the enrich
     * service once it has its seq (hub->scored) */
    bool *scored;
    struct oh_sync_desk *desk;
    struct oh_sync_contacts *contacts; /* NULL: contacts.enabled off */
    /* forwarded-to-timeline positions not yet written to the store */
    struct oh_store_pos published[MAX_PARTS];
    size_t npublished;
    int64_t published_at_ms;
    /* assigned partitions' stored positions, to commit as the group's
     * (flush_assigned): a member killed between storing a batch and
     * committing it leaves the group's offset behind the store's, and the
     * new owner, reading on from the store's, would commit nothing on that
     * partition until a record comes: its lag would show records long
     * stored as unread */
    oh_log_consumer *consumer;
    struct oh_store_pos assigned[MAX_PARTS];
    size_t nassigned;
};

/* Commits the positions noted at assignment, outside the rebalance (on
 * the service's thread, before a batch is processed, or when idle). */
static void flush_assigned(struct sync_state *s)
{
    for (size_t i = 0; i < s->nassigned; i++)
        oh_log_commit(s->consumer, s->assigned[i].partition, s->assigned[i].next);
    s->nassigned = 0;
}

/* Writes the forwarded positions, at most every 250 ms unless FORCE: each
 * write is a store commit, and a stale value only means forwarding a few
 * events again after a crash (timeline readers skip seqs they have). */
static void flush_published(struct sync_state *s, bool force)
{
    int64_t now = oh_mono_ms();
    if (!s->npublished || (!force && now - s->published_at_ms < 250)) return;
    for (size_t p = 0; p < s->npublished; p++)
        oh_store_position_published(s->hub->store, OH_GROUP_SYNC, OH_TOPIC_EVENTS,
                                    s->published[p].partition, s->published[p].next);
    s->npublished = 0;
    s->published_at_ms = now;
}

static void note_published(struct sync_state *s, int32_t partition, int64_t next)
{
    size_t p;
    for (p = 0; p < s->npublished && s->published[p].partition != partition; p++)
        ;
    if (p == s->npublished && s->npublished < MAX_PARTS)
        s->published[s->npublished++] = (struct oh_store_pos){OH_TOPIC_EVENTS, partition, next};
    else if (p < s->npublished)
        s->published[p].next = next;
}

/* Waits for a set of timeline appends. */
struct pubwait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending, err;
    int toobig; /* appends the log refused for their size: never retried */
};

static void on_published(void *opaque, int err, int32_t partition, int64_t offset)
{
    struct pubwait *w = opaque;
    pthread_mutex_lock(&w->mu);
    if (err == OH_ETOOBIG)
        w->toobig++;
    else if (err)
        w->err = err;
    if (--w->pending == 0) pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void pub_init(struct pubwait *w)
{
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->pending = 1; /* released by pub_wait */
    w->err = 0;
    w->toobig = 0;
}

/* Appends a sequenced event to the timeline with META beside it. */
static void pub_one(oh_hub *hub, struct pubwait *w, const struct oh_log_meta *meta,
                    const char *json, size_t len)
{
    pthread_mutex_lock(&w->mu);
    w->pending++;
    pthread_mutex_unlock(&w->mu);
    int rc = oh_log_append_meta(hub->log, OH_TOPIC_TIMELINE, meta->subject, meta, json, len,
                                on_published, w);
    if (rc) on_published(w, rc, 0, 0);
}

/* The first error of the appends that may work when tried again. A record
 * larger than the log takes (an event stored under an older or another
 * bound, a contact event listing a huge family) never will: it stays in
 * the history, is not forwarded, and is logged and counted, rather than
 * holding up every later event of its partitions. */
static int pub_wait(struct pubwait *w)
{
    on_published(w, 0, 0, 0);
    pthread_mutex_lock(&w->mu);
    while (w->pending > 0)
        pthread_cond_wait(&w->cv, &w->mu);
    int err = w->err;
    if (w->toobig) {
        OH_ERROR("sync",
                 "%d stored event(s) larger than the log takes were not forwarded to the "
                 "timeline (live readers and services miss them; the history has them)",
                 w->toobig);
        oh_metrics_inc("omnihub_sync_forward_too_large_total", "", w->toobig);
    }
    pthread_mutex_unlock(&w->mu);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    return err;
}

struct republish {
    oh_hub *hub;
    struct pubwait *w;
    int count;
};

static int republish_row(void *opaque, const char *conv, int64_t seq, const char *json, size_t len)
{
    struct republish *r = opaque;
    /* rare (after a crash): the metadata comes from the stored text */
    json_t *ev = json_loadb(json, len, 0, NULL);
    struct oh_log_meta meta =
        ev ? oh_log_meta_of(ev, seq) : (struct oh_log_meta){.subject = conv, .seq = seq};
    meta.subject = conv;
    pub_one(r->hub, r->w, &meta, json, len);
    json_decref(ev);
    oh_hub_feed(r->hub, conv, seq, json, len);
    r->count++;
    return 0;
}

/* After a crash between "stored" and "forwarded", forward what is missing
 * (at least once; timeline readers skip seqs they already have). */
static void resume_partition(struct sync_state *s, oh_log_consumer *c, int32_t part)
{
    int64_t next = 0, published = 0;
    while (oh_store_position_get(s->hub->store, OH_GROUP_SYNC, OH_TOPIC_EVENTS, part, &next,
                                 &published) != OH_OK) {
        if (atomic_load(&s->hub->stopping)) return;
        OH_WARN("sync", "store unavailable while resuming partition %d; retrying", part);
        sleep(1);
    }
    if (published < next) {
        struct pubwait w;
        pub_init(&w);
        struct republish r = {s->hub, &w, 0};
        oh_store_since_source(s->hub->store, part, published, republish_row, &r);
        if (pub_wait(&w) == OH_OK)
            oh_store_position_published(s->hub->store, OH_GROUP_SYNC, OH_TOPIC_EVENTS, part, next);
        OH_INFO("sync", "partition %d: forwarded %d stored events again", part, r.count);
    }
    oh_log_seek(c, part, next);
    s->consumer = c;
    if (s->nassigned < MAX_PARTS)
        s->assigned[s->nassigned++] = (struct oh_store_pos){OH_TOPIC_EVENTS, part, next};
    OH_INFO("sync", "partition %d assigned, resuming at offset %lld", part, (long long)next);
}

/* runs on the service's thread, inside a poll */
static void on_assigned(void *opaque, oh_log_consumer *c, const int32_t *parts, int n)
{
    struct sync_state *s = opaque;
    oh_sync_desk_forget(s->desk);
    for (int i = 0; i < n; i++)
        resume_partition(opaque, c, parts[i]);
}

static void on_revoked(void *opaque, oh_log_consumer *c, const int32_t *parts, int n)
{
    /* Every batch is stored before the next poll, so nothing is in flight
     * here: the positions in the store already cover what was consumed.
     * Write the forwarded positions so the next owner forwards little. */
    struct sync_state *s = opaque;
    flush_published(s, true);
    s->nassigned = 0; /* no longer ours to commit */
    oh_sync_desk_forget(s->desk);
    OH_INFO("sync", "%d partition(s) revoked", n);
}

/* Our message a provider id stands for: first among the earlier items of
 * this batch (a "sent" status and the provider's own status may travel
 * together), then in the store. */
static bool find_ours(oh_store *st, struct oh_store_item *items, size_t n, const char *channel,
                      const char *account, const char *pid, struct oh_store_ref *ref)
{
    for (size_t i = n; i-- > 0;) {
        const json_t *d = oh_event_data(items[i].event), *s = json_object_get(d, "status");
        const char *p = json_string_value(json_object_get(s, "provider_message_id"));
        const char *m = json_string_value(json_object_get(s, "message_id"));
        if (p && m && strcmp(p, pid) == 0 && strcmp(m, pid) != 0 &&
            strcmp(json_string_value(json_object_get(d, "channel")), channel) == 0 &&
            strcmp(json_string_value(json_object_get(d, "account")), account) == 0) {
            snprintf(ref->message_id, sizeof ref->message_id, "%s", m);
            return true;
        }
    }
    return oh_store_ref_get(st, channel, account, pid, ref) == OH_OK;
}

/* Replaces a provider's message id in a status (EV of TYPE) with ours,
 * when known: true when it did (EV no longer matches its record's text). */
static bool correlate(oh_store *st, struct oh_store_item *earlier, size_t n, json_t *ev,
                      const char *type)
{
    if (strcmp(type, OH_EV_STATUS) != 0) return false;
    json_t *data = oh_event_data(ev), *status = json_object_get(data, "status");
    /* a connector may name the provider's id in either field */
    const char *pid = json_string_value(json_object_get(status, "provider_message_id"));
    if (!pid) pid = json_string_value(json_object_get(status, "message_id"));
    if (!pid || !*pid) return false;
    struct oh_store_ref ref;
    if (!find_ours(st, earlier, n, json_string_value(json_object_get(data, "channel")),
                   json_string_value(json_object_get(data, "account")), pid, &ref) ||
        strcmp(ref.message_id, pid) == 0)
        return false;
    char *provider = strdup(pid); /* pid may point into the value replaced below */
    json_object_set_new(status, "message_id", json_string(ref.message_id));
    json_object_set_new(status, "provider_message_id", json_string(provider));
    free(provider);
    return true;
}

/* The sequenced event's text: as the store handed it back, or dumped now
 * (a backend that stores other text, or a repeat given its seq back). */
static bool text_of(struct oh_store_item *it)
{
    if (!it->json) it->json = oh_json_dump(it->event, &it->len);
    return it->json != NULL;
}

/* The timeline metadata of sequenced item I: type and subject from its
 * record's metadata when it has it (no lookups in the event), the rest
 * from the event (the events topic carries no time and no internal). */
static struct oh_log_meta meta_of(const struct sync_state *s, size_t i)
{
    const struct oh_store_item *it = &s->items[i];
    const struct oh_log_meta *rec = s->from[i];
    return oh_log_meta_known(it->event, it->seq, rec ? rec->type : NULL, rec ? rec->subject : NULL);
}

/* Appends the batch's stored events to the timeline once more and waits
 * (timeline readers skip seqs they already have). */
static int forward_again(struct sync_state *s, size_t nitems)
{
    struct pubwait w;
    pub_init(&w);
    for (size_t i = 0; i < nitems; i++) {
        struct oh_store_item *it = &s->items[i];
        if (it->seq && text_of(it)) {
            struct oh_log_meta meta = meta_of(s, i);
            pub_one(s->hub, &w, &meta, it->json, it->len);
        }
    }
    return pub_wait(&w);
}

struct contact_fwd {
    oh_hub *hub;
    struct pubwait *w;
};

/* A contact event (its own timeline, keyed by the contact id) to the
 * timeline topic and the live feed. */
static void forward_contact(void *opaque, const char *contact, int64_t seq, const char *type,
                            const char *json, size_t len)
{
    struct contact_fwd *f = opaque;
    struct oh_log_meta meta = {.type = type, .subject = contact, .seq = seq, .author = "agent"};
    pub_one(f->hub, f->w, &meta, json, len);
    oh_hub_feed(f->hub, contact, seq, json, len);
}

static void discard_contact(void *opaque, const char *contact, int64_t seq, const char *type,
                            const char *json, size_t len)
{
}

/* A dropped repeat whose id is stored for another conversation: the same
 * (channel, account, message_id) from another contact, which the contract
 * calls the same message. Its 202 named a conversation that holds nothing,
 * so say so where an operator looks (rare: a retry finds its own). */
static void note_conflict(oh_store *st, json_t *ev)
{
    const char *conv = oh_event_subject(ev), *id = oh_event_get_id(ev);
    if (!conv || !id || oh_store_event_get(st, conv, id, NULL, NULL) != OH_ENOTFOUND) return;
    OH_WARN("sync",
            "event %s dropped as a repeat for conversation %s, but its id is stored for another "
            "conversation: the same channel, account and message_id came from another contact",
            id, conv);
    oh_metrics_inc("omnihub_sync_conflicting_repeats_total", "", 1);
}

/* Stores one polled batch; retries until the store takes it, then commits
 * the batch and forwards it. OH_ECLOSED when the hub stopped first. */
static int materialize(void *state, struct oh_service_batch *b, const struct oh_log_record *recs,
                       int n)
{
    struct sync_state *s = state;
    int ret = OH_OK;
    oh_hub *hub = s->hub;
    size_t nitems = 0, npos = 0;
    flush_assigned(s); /* before the batch's own, which goes further */
    struct oh_store_pos pos[MAX_PARTS];
    for (int i = 0; i < n; i++) {
        const struct oh_log_record *r = &recs[i];
        size_t p;
        for (p = 0; p < npos && pos[p].partition != r->partition; p++)
            ;
        if (p == npos && npos < MAX_PARTS)
            pos[npos++] = (struct oh_store_pos){OH_TOPIC_EVENTS, r->partition, 0};
        if (p < npos) pos[p].next = r->offset + 1;
        /* appended by this process: parsed and validated already, and
         * the record's text is its compact dump */
        json_t *ev = oh_handoff_take(hub->handoff, r->value, r->len);
        bool dumped = ev != NULL;
        /* the record's metadata was taken from this very event (core/hub.c) */
        const struct oh_log_meta *rec = ev && r->meta.type && r->meta.subject ? &r->meta : NULL;
        json_error_t jerr;
        char why[256];
        if (!ev && (!(ev = json_loadb(r->value, r->len, 0, &jerr)) ||
                    oh_event_validate(ev, why, sizeof why))) {
            OH_ERROR("sync", "skipping unreadable record at %d/%lld: %s", r->partition,
                     (long long)r->offset, ev ? why : jerr.text);
            oh_metrics_inc("omnihub_sync_poison_total", "", 1);
            json_decref(ev);
            continue;
        }
        const char *type = rec ? rec->type : oh_event_get_type(ev);
        if (correlate(hub->store, s->items, nitems, ev, type)) dumped = false;
        size_t at = nitems;
        if (strcmp(type, OH_EV_CONTACT_COMMAND) == 0) {
            /* decided here, never stored as itself (dropped when contacts are off) */
            int crc = s->contacts ? oh_sync_contacts_command(s->contacts, s->items, &nitems, ev,
                                                             r->partition, r->offset)
                                  : 0;
            json_decref(ev);
            for (; at < nitems; at++) {
                s->from[at] = NULL;
                s->scored[at] = false;
            }
            if (crc) {
                ret = OH_ECLOSED;
                goto out;
            }
            continue;
        }
        /* messages as themselves, state commands as their outcomes, each
         * with the state change it causes */
        if (oh_sync_desk_add(s->desk, s->items, &nitems, ev, r->partition, r->offset)) {
            ret = OH_ECLOSED;
            goto out;
        }
        bool scored = false;
        for (size_t k = at; k < nitems; k++) {
            s->from[k] = k == at && s->items[k].event == ev ? rec : NULL;
            s->scored[k] = false;
            if (k > at && s->items[k].event &&
                strcmp(oh_event_get_type(s->items[k].event), OH_EV_ENRICHED) == 0)
                scored = true;
        }
        if (at < nitems && s->items[at].event == ev) s->scored[at] = scored;
        /* stored as its record's text with seq and epoch appended: no
         * second dump (the record outlives the store's call) */
        if (dumped && at < nitems && s->items[at].event == ev) {
            s->items[at].raw = r->value;
            s->items[at].raw_len = r->len;
        }
    }
    int delay_ms = 100;
    int rc;
    /* new conversations get their contact with the batch (SQLite: in its
     * transaction; a replay gives the same seqs back and links again,
     * idempotently) */
    struct oh_store_then then = {oh_sync_contacts_link, s->contacts};
    while ((rc = oh_store_materialize_then(hub->store, OH_GROUP_SYNC, s->items, nitems, pos, npos,
                                           s->contacts ? &then : NULL))) {
        OH_WARN("sync", "store refused a batch of %zu (%s); retrying in %d ms", nitems,
                oh_strerror(rc), delay_ms);
        oh_metrics_inc("omnihub_sync_store_errors_total", "", 1);
        if (atomic_load(&hub->stopping)) {
            ret = OH_ECLOSED;
            goto out;
        }
        usleep((useconds_t)delay_ms * 1000);
        delay_ms = delay_ms < 5000 ? delay_ms * 2 : 5000;
    }
    struct pubwait w;
    pub_init(&w);
    size_t stored = 0;
    int64_t now = oh_now_ms();
    for (size_t i = 0; i < nitems; i++) {
        struct oh_store_item *it = &s->items[i];
        if (!it->event) continue; /* a command's outcome only */
        if (!it->seq) {
            oh_metrics_inc("omnihub_sync_duplicates_total", "", 1);
            note_conflict(hub->store, it->event);
            continue;
        }
        stored++;
        if (!text_of(it)) continue;
        struct oh_log_meta meta = meta_of(s, i);
        /* stored with its enriched event: the enrich service may skip it */
        if (s->scored[i]) oh_marks_put(hub->scored, meta.subject, it->seq);
        pub_one(hub, &w, &meta, it->json, it->len);
        oh_hub_feed(hub, meta.subject, it->seq, it->json, it->len);
    }
    oh_sync_contacts_linked(s->contacts);
    struct contact_fwd cf = {hub, &w};
    oh_sync_contacts_take(s->contacts, true, forward_contact, &cf);
    oh_metrics_inc("omnihub_sync_materialized_total", "", stored);
    oh_sync_desk_done(s->desk, true); /* the gateway answers its commands */
    if (n > 0)
        oh_metrics_set("omnihub_sync_lag_seconds", "",
                       (double)(now - recs[n - 1].timestamp_ms) / 1000.0);
    /* The group's offset in the log is for lag and for other readers: the
     * store holds the position that counts, so it may be committed now,
     * in the same log transaction as the timeline records. */
    oh_service_commit(b);
    int fwd = pub_wait(&w);
    /* Stored but not forwarded (the timeline's leader unreachable past
     * kafka.message_timeout_ms): forward again until it works, so dispatch
     * and live clients get it now rather than after a restart. */
    for (delay_ms = 500; fwd != OH_OK && !atomic_load(&hub->stopping);) {
        OH_WARN("sync", "forwarding to the timeline failed (%s); again in %d ms", oh_strerror(fwd),
                delay_ms);
        oh_metrics_inc("omnihub_sync_forward_errors_total", "", 1);
        usleep((useconds_t)delay_ms * 1000);
        delay_ms = delay_ms < 5000 ? delay_ms * 2 : 5000;
        fwd = forward_again(s, nitems);
    }
    if (fwd == OH_OK) {
        for (size_t p = 0; p < npos; p++)
            note_published(s, pos[p].partition, pos[p].next);
        flush_published(s, false);
    } else {
        OH_ERROR("sync", "forwarding to the timeline failed; will forward again on restart");
    }
out:
    /* not stored: the replay forwards them */
    oh_sync_contacts_take(s->contacts, false, discard_contact, NULL);
    for (size_t i = 0; i < nitems; i++) {
        json_decref(s->items[i].event);
        free(s->items[i].json);
    }
    oh_sync_desk_done(s->desk, false);
    oh_sync_desk_wake(s->desk); /* also under a load that leaves no idle poll */
    return ret;
}

/* the service's thread, when a poll found nothing: nothing to batch with */
static void idle(void *state)
{
    struct sync_state *s = state;
    flush_published(s, true);
    flush_assigned(s);
    oh_sync_desk_wake(s->desk);
}

/* ---- which log the store consumed ---- */

/* Where the store keeps the identity of the log its positions refer to
 * (the kv space: no connector's name has a dot). */
#define LOG_NS  "omnihub.sync"
#define LOG_KEY "log"

/* Rewinds the stored positions for a log being adopted: a log that only
 * lost its tail (BEHIND, the same identity) is read on from its end, what
 * it still holds being stored already; another log from its start, the
 * events it repeats being dropped by id. */
static int adopt(oh_hub *hub, const struct oh_log_lag *lag, int n, bool other)
{
    struct oh_store_pos pos[MAX_PARTS];
    for (int i = 0; i < n; i++)
        pos[i] = (struct oh_store_pos){OH_TOPIC_EVENTS, lag[i].partition, other ? 0 : lag[i].end};
    int rc = oh_store_materialize(hub->store, OH_GROUP_SYNC, NULL, 0, pos, (size_t)n);
    for (int i = 0; i < n && rc == OH_OK; i++)
        rc = oh_store_position_published(hub->store, OH_GROUP_SYNC, OH_TOPIC_EVENTS,
                                         pos[i].partition, pos[i].next);
    return rc;
}

int oh_sync_check_log(oh_hub *hub, char *err, size_t errlen)
{
    char have[256], want[256] = "";
    struct oh_log_lag lag[MAX_PARTS];
    int rc = oh_log_identity(hub->log, have, sizeof have);
    if (rc) {
        oh_errf(err, errlen, "cannot tell which log this is: %s", oh_strerror(rc));
        return rc;
    }
    rc = oh_store_kv_get(hub->store, LOG_NS, LOG_KEY, want, sizeof want);
    if (rc && rc != OH_ENOTFOUND) {
        oh_errf(err, errlen, "cannot read which log the store consumed: %s", oh_strerror(rc));
        return rc;
    }
    /* The first partition whose stored position lies beyond the log's end,
     * and how much the store consumed. The positions are read before the
     * ends: another member of the group may consume on meanwhile (both only
     * grow), and a position read after the end could pass it with no
     * record lost. A Kafka end offset can also come from a broker that lags
     * behind the leader: "behind" must hold on a few reads. */
    int n = 0, behind = -1;
    int64_t behind_next = 0, consumed = 0, next[MAX_PARTS];
    for (int attempt = 0; attempt < 5 && (attempt == 0 || behind >= 0); attempt++) {
        if (attempt) sleep(1);
        int np = oh_log_partitions(hub->log, OH_TOPIC_EVENTS);
        if (np > MAX_PARTS) np = MAX_PARTS;
        for (int p = 0; p < np; p++) {
            int64_t published = 0;
            next[p] = 0;
            rc = oh_store_position_get(hub->store, OH_GROUP_SYNC, OH_TOPIC_EVENTS, p, &next[p],
                                       &published);
            if (rc) {
                oh_errf(err, errlen, "cannot read the stored positions: %s", oh_strerror(rc));
                return rc;
            }
        }
        n = oh_log_lag(hub->log, OH_GROUP_SYNC, OH_TOPIC_EVENTS, lag, MAX_PARTS);
        if (n < 0 || np < 0) {
            rc = n < 0 ? n : np;
            oh_errf(err, errlen, "cannot read the end of the log: %s", oh_strerror(rc));
            return rc;
        }
        behind = -1;
        consumed = 0;
        for (int i = 0; i < n; i++) {
            int32_t p = lag[i].partition;
            int64_t at = p >= 0 && p < np ? next[p] : 0;
            consumed += at;
            if (at > lag[i].end && behind < 0) {
                behind = i;
                behind_next = at;
            }
        }
    }
    /* A store that never recorded an identity (new, or from before this
     * check) takes the log's, unless its positions already contradict it. */
    bool other = *want && strcmp(want, have) != 0;
    if (!other && behind < 0) {
        if (strcmp(want, have) != 0) {
            rc = oh_store_kv_put(hub->store, LOG_NS, LOG_KEY, have);
            if (rc) {
                oh_errf(err, errlen, "cannot record which log the store consumes: %s",
                        oh_strerror(rc));
                return rc;
            }
            OH_INFO("sync", "the store now follows log %s", have);
        }
        return OH_OK;
    }
    char what[512];
    if (other)
        snprintf(what, sizeof what,
                 "the log is %s, not %s that the store consumed (up to %lld records): it was "
                 "lost, replaced or recreated",
                 have, want, (long long)consumed);
    else
        snprintf(what, sizeof what,
                 "log %s ends at offset %lld of partition %d but the store consumed it up to "
                 "offset %lld: it lost records (restored from an older backup, or recreated)",
                 have, (long long)lag[behind].end, (int)lag[behind].partition,
                 (long long)behind_next);
    if (!oh_config_bool(hub->cfg, "sync.adopt_log")) {
        oh_errf(err, errlen,
                "%s. Messages acknowledged after the store's position would be skipped, "
                "so omnihubd does not start. Restore the log the store consumed, or start once "
                "with sync.adopt_log=true (OMNIHUB_SYNC_ADOPT_LOG=true) to consume this log %s; "
                "see docs/operations.md",
                what, other ? "from its beginning" : "from its end");
        return OH_EINVAL;
    }
    if ((rc = adopt(hub, lag, n, other)) ||
        (rc = oh_store_kv_put(hub->store, LOG_NS, LOG_KEY, have))) {
        oh_errf(err, errlen, "cannot adopt the log: %s", oh_strerror(rc));
        return rc;
    }
    OH_WARN("sync", "%s; sync.adopt_log: consuming it %s", what,
            other ? "from its beginning" : "from its end");
    return OH_OK;
}

static int init(oh_hub *hub, void **state, char *err, size_t errlen)
{
    struct sync_state *s = calloc(1, sizeof *s);
    if (!s || !(s->items = calloc(4 * MAX_BATCH, sizeof *s->items)) ||
        !(s->from = calloc(4 * MAX_BATCH, sizeof *s->from)) ||
        !(s->scored = calloc(4 * MAX_BATCH, sizeof *s->scored)) ||
        !(s->desk = oh_sync_desk_new(hub))) {
        if (s) {
            free(s->items);
            free(s->from);
            free(s->scored);
        }
        free(s);
        oh_errf(err, errlen, "out of memory");
        return OH_ENOMEM;
    }
    s->hub = hub;
    s->contacts = oh_sync_contacts_new(hub);
    *state = s;
    return OH_OK;
}

static void stop(void *state)
{
    struct sync_state *s = state;
    flush_published(s, true);
    oh_sync_desk_free(s->desk);
    oh_sync_contacts_free(s->contacts);
    free(s->items);
    free(s->from);
    free(s->scored);
    free(s);
}

static bool wanted(const oh_hub *hub)
{
    return hub->run_sync;
}

const struct oh_service oh_service_sync = {
    .name = "sync",
    .group = OH_GROUP_SYNC,
    .topic = OH_TOPIC_EVENTS,
    .batch_key = "sync.batch",
    .batch = 512,
    .wanted = wanted,
    .init = init,
    .process = materialize,
    .tick = idle,
    .assigned = on_assigned,
    .revoked = on_revoked,
    .stop = stop,
};

/* The sync service alone (the unit tests). */
struct oh_sync {
    struct oh_service_run *run;
};

struct oh_sync *oh_sync_start(oh_hub *hub, char *err, size_t errlen)
{
    struct oh_sync *s = calloc(1, sizeof *s);
    if (!s) {
        oh_errf(err, errlen, "out of memory");
        return NULL;
    }
    if (!(s->run = oh_service_start(&oh_service_sync, hub, err, errlen))) {
        free(s);
        return NULL;
    }
    return s;
}

/* Call after hub->stopping is set. */
void oh_sync_stop(struct oh_sync *s)
{
    if (!s) return;
    oh_service_stop(s->run);
    free(s);
}
