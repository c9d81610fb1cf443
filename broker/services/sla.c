/* sla.c - the SLA clocks (CONTRACT part 2, SLA and KPIs): a first response
 * clock per episode and a next response clock per customer message after a
 * reply, paused while pending or snoozed, kept from the timeline and saved
 * with each batch (store key/value space "sla", read by the gateway for the
 * conversation's sla object); a deadline that passes is a "breach" state
 * command with an id from the clock and its deadline, so a breach decided
 * twice (a restart, a second member) is recorded once. Thread "oh-sla". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/hub_int.h"
#include "core/convstate.h"
#include "core/event.h"
#include "core/slaclock.h"
#include "core/json_dump.h"
#include "store/store.h"
#include "services/service.h"

#define NS         "sla" /* the store's key/value namespace of the clocks */
#define REFIRE_MS  5000  /* a breach with no outcome seen is decided again */
#define CLOCKS_MAX 200000
#define PARTS_MAX  1024 /* timeline partitions a member can own */

struct sla {
    oh_hub *hub;
    struct oh_sla_targets tg;
    bool loaded;
    /* conversation id -> its clocks (below); the conversations not resolved */
    json_t *convs;
    json_t *dirty; /* ids whose clocks changed since they were saved */
    /* the timeline partitions this member owns: only their conversations'
     * clocks are kept (another member sees the others' replies) */
    bool owned[PARTS_MAX];
};

/* A conversation's clocks (core/slaclock.h) and, beside them, pt (its
 * timeline partition), seq (the last timeline event applied) and in each
 * clock f (when its breach was decided, ms). */

static int64_t iget(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static const char *sget(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static void iset(json_t *o, const char *k, int64_t v)
{
    json_object_set_new(o, k, json_integer(v));
}

static json_t *fresh(const char *ch, const char *ac)
{
    json_t *c = oh_slaclock_new(ch, ac);
    if (c) {
        iset(c, "pt", 0);
        iset(c, "seq", 0);
    }
    return c;
}

/* The clocks of CONV: in memory, else as saved, else new (NULL: no room or
 * the store cannot say; CH/AC: the record's channel and account). */
static json_t *clocks(struct sla *s, const char *conv, const char *ch, const char *ac, int *err)
{
    json_t *c = json_object_get(s->convs, conv);
    if (c) return c;
    if (json_object_size(s->convs) >= CLOCKS_MAX) return NULL;
    char buf[8192];
    int rc = oh_store_kv_get(s->hub->store, NS, conv, buf, sizeof buf);
    if (rc && rc != OH_ENOTFOUND) {
        *err = rc;
        return NULL;
    }
    json_t *doc = rc == OH_OK ? json_loads(buf, 0, NULL) : NULL;
    json_t *saved = json_object_get(doc, "v");
    c = json_is_object(saved) ? json_incref(saved) : fresh(ch, ac);
    json_decref(doc);
    if (!c) return NULL;
    json_object_set_new(s->convs, conv, c);
    return c;
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
    json_t *ev = NULL, *c = whole ? json_object_get(s->convs, conv) : NULL;
    const json_t *data = NULL;
    int err = 0;
    if (!c) {
        ev = json_loadb(r->value, r->len, 0, NULL);
        data = oh_event_data(ev);
        c = clocks(s, conv, sget(data, "channel"), sget(data, "account"), &err);
    }
    if (!c || r->meta.seq <= iget(c, "seq")) { /* applied before (a replay) */
        json_decref(ev);
        return err;
    }
    iset(c, "seq", r->meta.seq);
    iset(c, "pt", r->partition);
    if (in) {
        oh_slaclock_inbound(c, t);
    } else if (out) {
        bool note = ev ? json_is_true(json_object_get(data, "internal")) : r->meta.internal;
        if (!note) { /* a note is no reply */
            const char *kind = r->meta.author || !ev ? r->meta.author : oh_event_author_kind(ev);
            oh_slaclock_outbound(c, kind && strcmp(kind, "agent") == 0, t);
        }
    } else {
        oh_slaclock_updated(c, json_object_get(data, "state"), sget(data, "reason"), t);
    }
    json_object_set_new(s->dirty, conv, json_true());
    json_decref(ev);
    return 0;
}

/* Saves the changed clocks in one store transaction (one commit per batch,
 * where a commit per conversation was most of this thread's system time);
 * what is resolved leaves the memory. */
static int save(struct sla *s)
{
    size_t n = json_object_size(s->dirty), k = 0;
    if (!n) return 0;
    const char **keys = calloc(n, sizeof *keys);
    char **texts = calloc(n, sizeof *texts);
    int rc = keys && texts ? 0 : OH_ENOMEM;
    const char *conv;
    json_t *v, *tmp;
    json_object_foreach(s->dirty, conv, v)
    {
        json_t *c = json_object_get(s->convs, conv);
        if (rc || !c) continue; /* forgotten: nothing to save */
        json_t *doc = json_pack("{s:o, s:O}", "sla", oh_slaclock_public(c, &s->tg), "v", c);
        texts[k] = doc ? oh_json_dump(doc, NULL) : NULL;
        json_decref(doc);
        if (texts[k])
            keys[k++] = conv;
        else
            rc = OH_ENOMEM;
    }
    if (!rc) rc = oh_store_kv_write(s->hub->store, NS, keys, (const char *const *)texts, k);
    for (size_t i = 0; i < k; i++)
        free(texts[i]);
    free(keys);
    free(texts);
    if (rc) return rc;
    json_object_foreach_safe(s->dirty, tmp, conv, v)
    {
        json_t *c = json_object_get(s->convs, conv);
        if (c && strcmp(sget(c, "st"), "resolved") == 0) json_object_del(s->convs, conv);
        json_object_del(s->dirty, conv);
    }
    return 0;
}

static void appended(void *opaque, int err)
{
    if (err) OH_WARN("sla", "breaches not appended (%s); decided again later", oh_strerror(err));
}

/* Decides a breach for each running clock whose deadline passed. */
static void fire(struct sla *s)
{
    int64_t now = oh_now_ms();
    struct oh_event_list out = {0};
    const char *conv;
    json_t *c;
    json_object_foreach(s->convs, conv, c)
    {
        if (strcmp(sget(c, "st"), "open") != 0) continue;
        static const char *const ks[] = {"frt", "nrt"};
        for (int i = 0; i < 2; i++) {
            json_t *clk = json_object_get(c, ks[i]);
            int64_t due = oh_slaclock_due(c, ks[i], &s->tg);
            if (!due || due > now || json_is_true(json_object_get(clk, "b")) ||
                (iget(clk, "f") && now - iget(clk, "f") < REFIRE_MS))
                continue;
            char id[OH_ID_MAX], ep[24], at[24];
            snprintf(ep, sizeof ep, "%lld", (long long)iget(c, "ep"));
            snprintf(at, sizeof at, "%lld", (long long)due);
            oh_event_id(id, "sla-breach", conv, ks[i], ep, at, NULL);
            json_t *sla = oh_slaclock_public(c, &s->tg);
            json_array_append_new(json_object_get(sla, "breached"), json_string(ks[i]));
            json_t *data =
                json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:o, s:{s:s, s:s}}", "conversation_id",
                          conv, "channel", sget(c, "ch"), "account", sget(c, "ac"), "op", "breach",
                          "kind", ks[i], "episode", (json_int_t)iget(c, "ep"), "sla", sla, "author",
                          "kind", "system", "id", "sla");
            if (data) oh_event_list_push(&out, oh_event_new(OH_EV_COMMAND, id, 0, data));
            iset(clk, "f", now);
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
    json_t *doc = json_loads(value, 0, NULL);
    json_t *c = json_object_get(doc, "v");
    if (json_is_object(c) && strcmp(sget(c, "st"), "resolved") != 0 && owns(s, iget(c, "pt")) &&
        !json_object_get(s->convs, key) && json_object_size(s->convs) < CLOCKS_MAX)
        json_object_set(s->convs, key, c);
    json_decref(doc);
    return 0;
}

/* The clocks of the owned partitions still running when they were last
 * saved (by this member or the partitions' previous owner). */
static int load(struct sla *s)
{
    int rc = oh_store_kv_scan(s->hub->store, NS, saved_row, s);
    if (rc) return rc;
    s->loaded = true;
    if (json_object_size(s->convs))
        OH_INFO("sla", "%zu conversations with clocks", json_object_size(s->convs));
    return 0;
}

static int process(void *state, struct oh_service_batch *b, const struct oh_log_record *recs, int n)
{
    struct sla *s = state;
    int rc = s->loaded ? 0 : load(s);
    for (int i = 0; !rc && i < n; i++)
        rc = apply(s, &recs[i]);
    if (!rc) rc = save(s);
    if (rc) {
        OH_WARN("sla", "clocks not saved: %s; the batch is read again after a restart",
                oh_strerror(rc));
        return rc;
    }
    fire(s);
    return OH_OK;
}

static void tick(void *state)
{
    struct sla *s = state;
    if (!s->loaded && load(s)) return;
    if (json_object_size(s->dirty) && save(s)) return;
    fire(s);
}

/* runs on the service's thread, inside a poll */
static void assigned(void *state, oh_log_consumer *c, const int32_t *parts, int n)
{
    struct sla *s = state;
    for (int i = 0; i < n; i++)
        if (parts[i] >= 0 && parts[i] < PARTS_MAX) s->owned[parts[i]] = true;
    s->loaded = false; /* the new partitions' clocks are read at the next batch or tick */
}

static void revoked(void *state, oh_log_consumer *lc, const int32_t *parts, int n)
{
    struct sla *s = state;
    if (save(s))
        OH_WARN("sla", "clocks not saved before a rebalance; the next owner reads the batch again");
    for (int i = 0; i < n; i++)
        if (parts[i] >= 0 && parts[i] < PARTS_MAX) s->owned[parts[i]] = false;
    const char *conv;
    json_t *c, *tmp;
    json_object_foreach_safe(s->convs, tmp, conv, c)
    {
        if (!owns(s, iget(c, "pt"))) json_object_del(s->convs, conv);
    }
}

static int init(oh_hub *hub, void **state, char *err, size_t errlen)
{
    struct sla *s = calloc(1, sizeof *s);
    if (!s || !(s->convs = json_object()) || !(s->dirty = json_object())) {
        if (s) json_decref(s->convs);
        free(s);
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
    json_decref(s->convs);
    json_decref(s->dirty);
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
};
