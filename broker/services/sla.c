/* sla.c - the SLA clocks (CONTRACT part 2, SLA and KPIs): a first response
 * clock per episode and a next response clock per customer message after a
 * reply, paused while pending or snoozed, kept from the timeline in memory
 * and saved every sla.save_ms (the loop's coalesced saving, service.h; store
 * key/value space "sla", read by the gateway for the conversation's sla
 * object); a deadline that passes is a "breach" state command with an id
 * from the clock and its deadline, so a breach decided twice (a restart, a
 * second member) is recorded once. Thread "oh-sla". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/hub_int.h"
#include "core/convstate.h"
#include "core/event.h"
#include "core/slaclock.h"
#include "core/json_dump.h"
#include "core/map.h"
#include "store/store.h"
#include "services/service.h"

#define NS         "sla" /* the store's key/value namespace of the clocks */
#define REFIRE_MS  5000  /* a breach with no outcome seen is decided again */
#define CLOCKS_MAX 200000
#define PARTS_MAX  1024 /* timeline partitions a member can own */
/* how long an idle member waits for its partitions' ends before the wall
 * clock judges deadlines anyway (a partition that cannot be fetched) */
#define CATCH_UP_MS 30000

/* A conversation's clocks (core/slaclock.h; pt: its timeline partition,
 * seq: the last timeline event applied, a clock's f: when its breach was
 * decided) under its id, in the service's map. */
struct conv {
    struct oh_map_node node; /* keyed by ID */
    bool dirty; /* in sla.dirty */
    size_t off; /* save(): where its text starts in sla.text */
    struct oh_slaclock c;
    char id[];
};

struct sla {
    oh_hub *hub;
    struct oh_sla_targets tg;
    bool loaded;
    oh_map convs; /* the conversations not resolved, in the order added (fire()) */
    struct conv **dirty; /* changed since they were saved */
    size_t ndirty, capdirty;
    struct oh_json_buf text; /* save()'s texts, its memory kept between saves */
    /* the timeline partitions this member owns: only their conversations'
     * clocks are kept (another member sees the others' replies) */
    bool owned[PARTS_MAX];
    /* the group member (tick: has it read its partitions to their ends?)
     * and when partitions were last assigned, monotonic ms */
    oh_log_consumer *member;
    int64_t assigned_ms;
    bool waited; /* gave up waiting since that assignment (logged once) */
};

static int64_t iget(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static const char *sget(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static struct conv *conv_of(struct oh_map_node *n)
{
    return oh_map_entry(n, struct conv, node);
}

static struct conv *lookup(const struct sla *s, const char *id)
{
    return conv_of(oh_map_get(&s->convs, id, strlen(id)));
}

/* Adds the clocks C of ID (taking what C owns, also on failure). */
static struct conv *add(struct sla *s, const char *id, struct oh_slaclock *c)
{
    size_t len = strlen(id);
    struct conv *e = malloc(sizeof *e + len + 1);
    if (e) {
        *e = (struct conv){.c = *c};
        memcpy(e->id, id, len + 1);
    }
    if (!e || oh_map_put(&s->convs, &e->node, e->id, len)) {
        oh_slaclock_clear(c);
        free(e);
        return NULL;
    }
    return e;
}

static void forget(struct sla *s, struct conv *e)
{
    oh_map_del(&s->convs, &e->node);
    for (size_t i = 0; e->dirty && i < s->ndirty; i++) /* rare: a save failed before */
        if (s->dirty[i] == e) {
            s->dirty[i] = s->dirty[--s->ndirty];
            break;
        }
    oh_slaclock_clear(&e->c);
    free(e);
}

static int mark_dirty(struct sla *s, struct conv *e)
{
    if (e->dirty) return OH_OK;
    if (s->ndirty == s->capdirty) {
        size_t cap = s->capdirty ? s->capdirty * 2 : 256;
        struct conv **d = realloc(s->dirty, cap * sizeof *d);
        if (!d) return OH_ENOMEM;
        s->dirty = d;
        s->capdirty = cap;
    }
    s->dirty[s->ndirty++] = e;
    e->dirty = true;
    return OH_OK;
}

/* The clocks of CONV: in memory, else as saved, else new (NULL: no room or
 * the store cannot say; CH/AC: the record's channel and account). */
static struct conv *clocks(struct sla *s, const char *conv, const char *ch, const char *ac,
                           int *err)
{
    struct conv *e = lookup(s, conv);
    if (e) return e;
    if (s->convs.n >= CLOCKS_MAX) return NULL;
    char buf[8192];
    int rc = oh_store_kv_get(s->hub->store, NS, conv, buf, sizeof buf);
    if (rc && rc != OH_ENOTFOUND) {
        *err = rc;
        return NULL;
    }
    struct oh_slaclock c;
    if ((rc != OH_OK || oh_slaclock_read(&c, buf) != OH_OK) && oh_slaclock_init(&c, ch, ac))
        return NULL;
    return add(s, conv, &c);
}

/* Applies timeline record R (T: when it was sequenced). */
static int apply(struct sla *s, const struct oh_log_record *r)
{
    const char *type = r->meta.type, *conv = r->meta.subject;
    if (!type || !conv || r->meta.seq <= 0) return 0;
    bool in = strcmp(type, OH_EV_INBOUND) == 0, out = strcmp(type, OH_EV_OUTBOUND) == 0;
    bool up = strcmp(type, OH_EV_UPDATED) == 0;
    if (!in && !out && !up) return 0;
    int64_t t = r->timestamp_ms > 0 ? r->timestamp_ms : oh_now_ms();
    /* a message needs nothing of its body once the clocks are in memory
     * (most of them): the metadata and the time say it all. A reply's
     * metadata is whole when its TIME is there (sync writes TIME, AUTHOR
     * and INTERNAL together); older records are parsed. */
    bool whole = in || (out && r->meta.time);
    json_t *ev = NULL;
    struct conv *e = whole ? lookup(s, conv) : NULL;
    const json_t *data = NULL;
    int err = 0;
    if (!e) {
        ev = json_loadb(r->value, r->len, 0, NULL);
        data = oh_event_data(ev);
        e = clocks(s, conv, sget(data, "channel"), sget(data, "account"), &err);
    }
    if (!e || r->meta.seq <= e->c.seq) { /* applied before (a replay) */
        json_decref(ev);
        return err;
    }
    int rc = mark_dirty(s, e); /* before the change: one not saved is no change */
    if (rc) {
        json_decref(ev);
        return rc;
    }
    struct oh_slaclock *c = &e->c;
    c->seq = r->meta.seq;
    c->pt = r->partition;
    if (in) {
        oh_slaclock_inbound(c, t);
    } else if (out) {
        bool note = ev ? json_is_true(json_object_get(data, "internal")) : r->meta.internal;
        if (!note) { /* a note is no reply */
            const char *kind = r->meta.author || !ev ? r->meta.author : oh_event_author_kind(ev);
            oh_slaclock_outbound(c, kind && strcmp(kind, "agent") == 0, t);
        }
    } else {
        const json_t *st = json_object_get(data, "state");
        oh_slaclock_updated(c, iget(st, "episode"), sget(st, "status"), sget(st, "priority"),
                            sget(data, "reason"), t);
    }
    json_decref(ev);
    return 0;
}

/* Saves the clocks changed since the last save in one store transaction
 * (the loop calls it every sla.save_ms, before a rebalance and at a stop,
 * and commits the group's position after it); what is resolved leaves the
 * memory. The texts are written straight from the clocks into one buffer
 * (core/slaclock.h), NUL-separated. */
static int save(void *state)
{
    struct sla *s = state;
    size_t n = s->ndirty;
    if (!n) return 0;
    const char **keys = calloc(n, sizeof *keys), **texts = calloc(n, sizeof *texts);
    int rc = keys && texts ? 0 : OH_ENOMEM;
    s->text.len = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        struct conv *e = s->dirty[i];
        e->off = s->text.len;
        rc = oh_slaclock_write(&e->c, &s->tg, &s->text);
        if (!rc && oh_json_buf_put(&s->text, "", 1)) rc = OH_ENOMEM;
    }
    for (size_t i = 0; !rc && i < n; i++) {
        keys[i] = s->dirty[i]->id;
        texts[i] = s->text.p + s->dirty[i]->off;
    }
    if (!rc) rc = oh_store_kv_write(s->hub->store, NS, keys, texts, n);
    free(keys);
    free(texts);
    if (s->text.cap > 4u << 20) { /* a large batch's memory is not kept */
        free(s->text.p);
        s->text = (struct oh_json_buf){0};
    }
    if (rc) return rc;
    s->ndirty = 0;
    for (size_t i = 0; i < n; i++) {
        struct conv *e = s->dirty[i];
        e->dirty = false;
        if (strcmp(e->c.st, "resolved") == 0) forget(s, e);
    }
    return 0;
}

static void appended(void *opaque, int err)
{
    if (err) OH_WARN("sla", "breaches not appended (%s); decided again later", oh_strerror(err));
}

/* Decides a breach for each running clock whose deadline passed by NOW
 * (the timeline's time as read); one decided before is decided again
 * REFIRE_MS of the wall clock later while its outcome is not seen back. */
static void fire(struct sla *s, int64_t now)
{
    int64_t wall = oh_now_ms();
    struct oh_event_list out = {0};
    for (struct oh_map_node *n = s->convs.first; n; n = n->next) {
        struct conv *e = conv_of(n);
        struct oh_slaclock *c = &e->c;
        if (strcmp(c->st, "open") != 0) continue;
        for (int k = 0; k < 2; k++) {
            struct oh_sla_clock *clk = &c->clk[k];
            int64_t due = oh_slaclock_due(c, k, &s->tg);
            if (!due || due > now || clk->b || (clk->f && wall - clk->f < REFIRE_MS)) continue;
            const char *kind = oh_sla_kind_name[k];
            char id[OH_ID_MAX], ep[24], at[24];
            snprintf(ep, sizeof ep, "%lld", (long long)c->ep);
            snprintf(at, sizeof at, "%lld", (long long)due);
            oh_event_id(id, "sla-breach", e->id, kind, ep, at, NULL);
            json_t *sla = oh_slaclock_public(c, &s->tg);
            json_array_append_new(json_object_get(sla, "breached"), json_string(kind));
            json_t *data = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:o, s:{s:s, s:s}}",
                                     "conversation_id", e->id, "channel", c->ch, "account", c->ac,
                                     "op", "breach", "kind", kind, "episode", (json_int_t)c->ep,
                                     "sla", sla, "author", "kind", "system", "id", "sla");
            if (data) oh_event_list_push(&out, oh_event_new(OH_EV_COMMAND, id, 0, data));
            clk->f = wall;
        }
    }
    if (out.n && oh_hub_ingest(s->hub, &out, appended, NULL) != OH_OK)
        OH_WARN("sla", "breaches not appended; decided again later");
    oh_event_list_clear(&out);
}

/* ---- the service ---- */

static bool owns(const struct sla *s, int64_t part)
{
    return part >= 0 && part < PARTS_MAX && s->owned[part];
}

static int saved_row(void *opaque, const char *key, const char *value)
{
    struct sla *s = opaque;
    struct oh_slaclock c;
    if (oh_slaclock_read(&c, value) != OH_OK) return 0;
    if (strcmp(c.st, "resolved") != 0 && owns(s, c.pt) && !lookup(s, key) &&
        s->convs.n < CLOCKS_MAX)
        add(s, key, &c);
    else
        oh_slaclock_clear(&c);
    return 0;
}

/* The clocks of the owned partitions still running when they were last
 * saved (by this member or the partitions' previous owner). */
static int load(struct sla *s)
{
    int rc = oh_store_kv_scan(s->hub->store, NS, saved_row, s);
    if (rc) return rc;
    s->loaded = true;
    if (s->convs.n) OH_INFO("sla", "%zu conversations with clocks", s->convs.n);
    return 0;
}

/* The batch is applied in memory, a record applied before (a batch read
 * again) skipped by its seq; the loop saves the clocks later (save()). */
static int process(void *state, struct oh_service_batch *b, const struct oh_log_record *recs, int n)
{
    struct sla *s = state;
    int rc = s->loaded ? 0 : load(s);
    int64_t read = 0; /* the newest record time of the batch */
    for (int i = 0; !rc && i < n; i++) {
        rc = apply(s, &recs[i]);
        if (recs[i].timestamp_ms > read) read = recs[i].timestamp_ms;
    }
    if (rc) return rc; /* the loop reads the batch again */
    /* a deadline passes when the timeline read shows it passed: while the
     * service reads behind (after a restart, under load), a reply made in
     * time may be in a batch still to come; idle, the wall clock (tick) */
    int64_t now = oh_now_ms();
    fire(s, read > 0 && read < now ? read : now);
    return OH_OK;
}

/* Idle: the wall clock judges deadlines, once the member has read its
 * partitions to their ends. Before that (on Kafka, after joining its group,
 * polls find nothing until the first fetch is answered) a reply made in
 * time may still be unread: the deadline waits, up to CATCH_UP_MS. */
static void tick(void *state)
{
    struct sla *s = state;
    if (!s->loaded && load(s)) return;
    if (s->member && !oh_log_caught_up(s->member)) {
        if (oh_mono_ms() - s->assigned_ms < CATCH_UP_MS) return;
        if (!s->waited)
            OH_WARN("sla",
                    "the timeline was not read to its end in %d s; deadlines are judged "
                    "by the wall clock meanwhile",
                    CATCH_UP_MS / 1000);
        s->waited = true;
    }
    fire(s, oh_now_ms());
}

/* runs on the service's thread, inside a poll */
static void assigned(void *state, oh_log_consumer *c, const int32_t *parts, int n)
{
    struct sla *s = state;
    for (int i = 0; i < n; i++)
        if (parts[i] >= 0 && parts[i] < PARTS_MAX) s->owned[parts[i]] = true;
    s->loaded = false; /* the new partitions' clocks are read at the next batch or tick */
    s->member = c;
    s->assigned_ms = oh_mono_ms();
    s->waited = false;
}

/* The loop has saved the clocks (or failed to, and then not committed
 * what they hold: the next owner reads it again). */
static void revoked(void *state, oh_log_consumer *lc, const int32_t *parts, int n)
{
    struct sla *s = state;
    for (int i = 0; i < n; i++)
        if (parts[i] >= 0 && parts[i] < PARTS_MAX) s->owned[parts[i]] = false;
    for (struct oh_map_node *m = s->convs.first, *next; m; m = next) {
        next = m->next;
        if (!owns(s, conv_of(m)->c.pt)) forget(s, conv_of(m));
    }
}

static int init(oh_hub *hub, void **state, char *err, size_t errlen)
{
    struct sla *s = calloc(1, sizeof *s);
    if (!s) {
        oh_errf(err, errlen, "out of memory");
        return OH_ENOMEM;
    }
    s->hub = hub;
    static const char *const prios[] = {"urgent", "high", "normal", "low"};
    for (int i = 0; i < 4; i++) {
        char k[32];
        snprintf(k, sizeof k, "sla.frt_s.%s", prios[i]);
        s->tg.frt_ms[i] = oh_config_int(hub->cfg, k) * 1000;
        snprintf(k, sizeof k, "sla.nrt_s.%s", prios[i]);
        s->tg.nrt_ms[i] = oh_config_int(hub->cfg, k) * 1000;
    }
    *state = s;
    return OH_OK;
}

static void stop(void *state)
{
    struct sla *s = state;
    if (!s) return;
    while (s->convs.first)
        forget(s, conv_of(s->convs.first));
    oh_map_clear(&s->convs);
    free(s->dirty);
    free(s->text.p);
    free(s);
}

static bool wanted(const oh_hub *hub)
{
    return hub->store && oh_config_bool(hub->cfg, "sla.enabled");
}

const struct oh_service oh_service_sla = {
    .name = "sla",
    .role = "router",
    .group = OH_GROUP_SLA,
    .topic = OH_TOPIC_TIMELINE,
    .batch = 512,
    .wanted = wanted,
    .init = init,
    .process = process,
    .tick = tick,
    .assigned = assigned,
    .revoked = revoked,
    .stop = stop,
    .save = save,
    .save_key = "sla.save_ms",
    .save_ms = 200,
    .lingers = true,
};
