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
#include "core/json_dump.h"
#include "store/store.h"
#include "services/service.h"

#define NS           "sla" /* the store's key/value namespace of the clocks */
#define REFIRE_MS    5000  /* a breach with no outcome seen is decided again */
#define CLOCKS_MAX   200000
#define BREACHES_MAX 64   /* kinds listed in one episode's "breached" */
#define PARTS_MAX    1024 /* timeline partitions a member can own */

struct sla {
    oh_hub *hub;
    int64_t frt_ms[4], nrt_ms[4]; /* by priority: urgent, high, normal, low */
    bool loaded;
    /* conversation id -> its clocks (below); the conversations not resolved */
    json_t *convs;
    json_t *dirty; /* ids whose clocks changed since they were saved */
    /* the timeline partitions this member owns: only their conversations'
     * clocks are kept (another member sees the others' replies) */
    bool owned[PARTS_MAX];
};

/* A conversation's clocks: {pt (its timeline partition), ch, ac, ep (episode), st (status), pr
 * (priority), seq (last timeline event applied), out (the last message the
 * customer saw was a reply), fd (first response given), nn (next response
 * clocks started), br (kinds breached in the episode), frt, nrt}; a clock:
 * {s: start ms, p: paused ms so far, ps: paused since (0 running), b:
 * breached, f: breach decided at (ms)}. */

static const char *const prios[] = {"urgent", "high", "normal", "low"};

static int prio_rank(const char *p)
{
    for (int i = 0; p && i < 4; i++)
        if (strcmp(p, prios[i]) == 0) return i;
    return 2;
}

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

static bool paused_status(const char *st)
{
    return strcmp(st, "pending") == 0 || strcmp(st, "snoozed") == 0;
}

/* The deadline of clock K ("frt"|"nrt") of C, 0 when none runs. */
static int64_t due_of(const struct sla *s, const json_t *c, const char *k)
{
    const json_t *clk = json_object_get(c, k);
    if (!json_is_object(clk) || iget(clk, "ps")) return 0;
    int p = prio_rank(sget(c, "pr"));
    int64_t target = strcmp(k, "frt") == 0 ? s->frt_ms[p] : s->nrt_ms[p];
    return iget(clk, "s") + iget(clk, "p") + target;
}

static json_t *time_or_null(int64_t ms)
{
    char t[32];
    if (ms <= 0) return json_null();
    oh_time_rfc3339(t, ms);
    return json_string(t);
}

/* The conversation's sla object (CONTRACT part 2). New reference. */
static json_t *public_sla(const struct sla *s, const json_t *c)
{
    json_t *br = json_object_get(c, "br");
    return json_pack("{s:o, s:o, s:o}", "first_response_due", time_or_null(due_of(s, c, "frt")),
                     "next_response_due", time_or_null(due_of(s, c, "nrt")), "breached",
                     json_is_array(br) ? json_copy(br) : json_array());
}

static json_t *fresh(const char *ch, const char *ac)
{
    return json_pack("{s:i, s:s, s:s, s:I, s:s, s:s, s:I, s:b, s:b, s:I, s:[], s:n, s:n}", "pt", 0,
                     "ch", ch, "ac", ac, "ep", (json_int_t)1, "st", "open", "pr", "normal", "seq",
                     (json_int_t)0, "out", 0, "fd", 0, "nn", (json_int_t)0, "br", "frt", "nrt");
}

/* A new episode: no clock, nothing breached. */
static void new_episode(json_t *c, int64_t ep)
{
    iset(c, "ep", ep);
    json_object_set_new(c, "out", json_false());
    json_object_set_new(c, "fd", json_false());
    iset(c, "nn", 0);
    json_object_set_new(c, "br", json_array());
    json_object_set_new(c, "frt", json_null());
    json_object_set_new(c, "nrt", json_null());
}

static void start_clock(json_t *c, const char *k, int64_t t)
{
    json_object_set_new(c, k,
                        json_pack("{s:I, s:I, s:I, s:b, s:I}", "s", (json_int_t)t, "p",
                                  (json_int_t)0, "ps", (json_int_t)0, "b", 0, "f", (json_int_t)0));
}

/* Moves the clocks of C to status ST at T (pause, resume, stop). */
static void set_status(json_t *c, const char *st, int64_t t)
{
    bool was = paused_status(sget(c, "st")), now = paused_status(st);
    static const char *const ks[] = {"frt", "nrt"};
    for (int i = 0; i < 2; i++) {
        json_t *clk = json_object_get(c, ks[i]);
        if (!json_is_object(clk)) continue;
        if (!was && now) iset(clk, "ps", t);
        if (was && !now && iget(clk, "ps")) {
            iset(clk, "p", iget(clk, "p") + (t > iget(clk, "ps") ? t - iget(clk, "ps") : 0));
            iset(clk, "ps", 0);
        }
    }
    if (strcmp(st, "resolved") == 0) { /* the episode's clocks end with it */
        json_object_set_new(c, "frt", json_null());
        json_object_set_new(c, "nrt", json_null());
    }
    json_object_set_new(c, "st", json_string(st));
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
    json_t *ev = json_loadb(r->value, r->len, 0, NULL);
    const json_t *data = oh_event_data(ev);
    int err = 0;
    json_t *c = clocks(s, conv, sget(data, "channel"), sget(data, "account"), &err);
    if (!c || r->meta.seq <= iget(c, "seq")) { /* applied before (a replay) */
        json_decref(ev);
        return err;
    }
    iset(c, "seq", r->meta.seq);
    iset(c, "pt", r->partition);
    if (in) {
        const char *st = sget(c, "st");
        if (strcmp(st, "resolved") == 0) new_episode(c, iget(c, "ep") + 1);
        if (strcmp(st, "open") != 0 && strcmp(st, "bot") != 0) set_status(c, "open", t);
        if (!json_is_object(json_object_get(c, "frt")) && !json_is_true(json_object_get(c, "fd")))
            start_clock(c, "frt", t);
        else if (json_is_true(json_object_get(c, "fd")) &&
                 json_is_true(json_object_get(c, "out")) &&
                 !json_is_object(json_object_get(c, "nrt"))) {
            start_clock(c, "nrt", t);
            iset(c, "nn", iget(c, "nn") + 1);
        }
        json_object_set_new(c, "out", json_false());
    } else if (out) {
        if (!json_is_true(json_object_get(data, "internal"))) { /* a note is no reply */
            const char *kind = r->meta.author ? r->meta.author : oh_event_author_kind(ev);
            if (kind && strcmp(kind, "agent") == 0) {
                if (json_is_object(json_object_get(c, "frt")))
                    json_object_set_new(c, "fd", json_true());
                json_object_set_new(c, "frt", json_null());
                json_object_set_new(c, "nrt", json_null());
            }
            json_object_set_new(c, "out", json_true());
        }
    } else {
        const json_t *state = json_object_get(data, "state");
        int64_t ep = iget(state, "episode");
        if (ep > iget(c, "ep")) new_episode(c, ep);
        if (*sget(state, "status")) set_status(c, sget(state, "status"), t);
        if (*sget(state, "priority")) json_object_set(c, "pr", json_object_get(state, "priority"));
        const char *reason = sget(data, "reason");
        if (strncmp(reason, "sla_breach:", 11) == 0) {
            const char *k = reason + 11;
            json_t *clk = json_object_get(c, k);
            if (json_is_object(clk)) json_object_set_new(clk, "b", json_true());
            json_t *br = json_object_get(c, "br");
            if (json_is_array(br) && json_array_size(br) < BREACHES_MAX)
                json_array_append_new(br, json_string(k));
        }
    }
    json_object_set_new(s->dirty, conv, json_true());
    json_decref(ev);
    return 0;
}

/* Saves the changed clocks; what is resolved leaves the memory. */
static int save(struct sla *s)
{
    const char *conv;
    json_t *v, *tmp;
    json_object_foreach_safe(s->dirty, tmp, conv, v)
    {
        json_t *c = json_object_get(s->convs, conv);
        if (!c) {
            json_object_del(s->dirty, conv);
            continue;
        }
        json_t *doc = json_pack("{s:o, s:O}", "sla", public_sla(s, c), "v", c);
        char *text = doc ? oh_json_dump(doc, NULL) : NULL;
        json_decref(doc);
        int rc = text ? oh_store_kv_put(s->hub->store, NS, conv, text) : OH_ENOMEM;
        free(text);
        if (rc) return rc;
        if (strcmp(sget(c, "st"), "resolved") == 0) json_object_del(s->convs, conv);
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
            int64_t due = due_of(s, c, ks[i]);
            if (!due || due > now || json_is_true(json_object_get(clk, "b")) ||
                (iget(clk, "f") && now - iget(clk, "f") < REFIRE_MS))
                continue;
            char id[OH_ID_MAX], ep[24], at[24];
            snprintf(ep, sizeof ep, "%lld", (long long)iget(c, "ep"));
            snprintf(at, sizeof at, "%lld", (long long)due);
            oh_event_id(id, "sla-breach", conv, ks[i], ep, at, NULL);
            json_t *sla = public_sla(s, c);
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
    for (int i = 0; i < 4; i++) {
        char k[32];
        snprintf(k, sizeof k, "sla.frt_s.%s", prios[i]);
        s->frt_ms[i] = oh_config_int(hub->cfg, k) * 1000;
        snprintf(k, sizeof k, "sla.nrt_s.%s", prios[i]);
        s->nrt_ms[i] = oh_config_int(hub->cfg, k) * 1000;
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
    return hub->run_router && hub->store && oh_config_bool(hub->cfg, "sla.enabled");
}

const struct oh_service oh_service_sla = {
    .name = "sla",
    .group = "omnihub-sla",
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
