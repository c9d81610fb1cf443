/* router.c - the routing service (CONTRACT part 2, Routing): hands each open,
 * unassigned conversation to an online agent of its team with a free slot,
 * and requeues the conversations of agents offline past the grace period.
 * Decisions are "assign" state commands (core/convstate.h) with ids derived
 * from the state they were decided on, so a replayed or doubled decision is
 * one assignment at most. Follows the timeline from its end after taking
 * the open conversations from the store; runs on the thread "oh-router". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/hub_int.h"
#include "core/convstate.h"
#include "core/presence.h"
#include "store/store.h"
#include "services/service.h"

#define RETRY_MS   5000   /* a decision with no outcome seen is made again */
#define QUEUE_MAX  100000 /* open conversations the router keeps in view */
#define AGENTS_MAX 4096

struct router {
    oh_hub *hub;
    int64_t capacity, grace_ms;
    /* when an agent this process's presence does not know went offline:
     * with the local log (one process) since the router started; with Kafka
     * they may be on another gateway, so never (0) */
    int64_t unknown_gone_ms;
    bool loaded;
    int full_warned; /* the view reached QUEUE_MAX (said once) */
    /* conversation id -> {status, assignee, team, prio, seq, since, channel,
     * account, decided (ms, 0 none), basis (seq decided on)}: the open ones */
    json_t *convs;
    json_t *idle; /* agent id -> when they were last assigned one (ms) */
};

static const char *const prios[] = {"urgent", "high", "normal", "low"};

static int prio_rank(const char *p)
{
    for (int i = 0; p && i < 4; i++)
        if (strcmp(p, prios[i]) == 0) return i;
    return 2;
}

static const char *sget(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static int64_t iget(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

/* Puts what STATE says of CONV into the view (SEQ: the state's seq). */
static void note(struct router *rt, const char *conv, const json_t *state, int64_t seq,
                 const char *channel, const char *account, int64_t now)
{
    json_t *e = json_object_get(rt->convs, conv);
    if (e && iget(e, "seq") > seq) return; /* the view is newer (the store's snapshot) */
    const char *st = sget(state, "status");
    if (strcmp(st, "open") != 0) {
        json_object_del(rt->convs, conv);
        return;
    }
    if (!e && json_object_size(rt->convs) >= QUEUE_MAX) {
        if (!rt->full_warned++)
            OH_WARN("router", "%d open conversations in view: newer ones wait for a restart",
                    QUEUE_MAX);
        return;
    }
    const char *who = sget(state, "assignee");
    bool was_waiting = e && !*sget(e, "assignee");
    json_t *n = json_pack(
        "{s:s, s:s, s:s, s:i, s:I, s:I, s:s, s:s, s:I, s:I}", "status", st, "assignee", who, "team",
        sget(state, "team"), "prio", prio_rank(sget(state, "priority")), "seq", (json_int_t)seq,
        "since", (json_int_t)(was_waiting && !*who ? iget(e, "since") : now), "channel", channel,
        "account", account, "decided", (json_int_t)0, "basis", (json_int_t)0);
    if (!n) return;
    if (*who && (!e || strcmp(sget(e, "assignee"), who) != 0))
        json_object_set_new(rt->idle, who, json_integer(now)); /* newly assigned: not idle */
    json_object_set_new(rt->convs, conv, n);
}

/* ---- rebuilding the view from the store ---- */

struct page {
    struct router *rt;
    int64_t created;
    char last[OH_ID_MAX];
    int rows;
};

static int open_row(void *opaque, const struct oh_conversation *c, int64_t read_seq)
{
    struct page *p = opaque;
    json_t *state = json_pack("{s:s, s:s, s:s, s:s}", "status", c->status, "assignee", c->assignee,
                              "team", c->team, "priority", c->priority);
    note(p->rt, c->id, state, c->state_seq, c->channel, c->account, c->created_ms);
    json_decref(state);
    p->created = c->created_ms;
    snprintf(p->last, sizeof p->last, "%s", c->id);
    p->rows++;
    return 0;
}

/* The open conversations as the store holds them (after the consumer is
 * at the timeline's end, so nothing falls between the two). */
static int load(struct router *rt)
{
    struct page p = {rt, 0, "", 0};
    char before[OH_ID_MAX];
    struct oh_store_filter f = {.status = "open", .limit = 500};
    do {
        p.rows = 0;
        int rc = oh_store_list(rt->hub->store, &f, open_row, &p);
        if (rc) return rc;
        snprintf(before, sizeof before, "%s", p.last);
        f.before_created_ms = p.created;
        f.before_id = before;
    } while (p.rows == f.limit && json_object_size(rt->convs) < QUEUE_MAX);
    rt->loaded = true;
    OH_INFO("router", "%zu open conversations in view", json_object_size(rt->convs));
    return 0;
}

/* ---- deciding ---- */

struct agent {
    struct oh_agent_info info;
    int64_t load, idle_since;
};

struct agents {
    struct router *rt;
    struct agent *a;
    int n;
    json_t *load; /* agent id -> open assigned (and decided) */
};

static int agent_row(void *opaque, const struct oh_agent_info *a)
{
    struct agents *as = opaque;
    if (a->status != OH_PRESENCE_ONLINE || as->n >= AGENTS_MAX) return 0;
    struct agent *x = &as->a[as->n++];
    x->info = *a;
    x->load = iget(as->load, a->id);
    int64_t last = iget(as->rt->idle, a->id);
    x->idle_since = last > a->since_ms ? last : a->since_ms;
    return 0;
}

struct waiting {
    const char *conv;
    json_t *e;
};

static int by_prio_then_age(const void *a, const void *b)
{
    const struct waiting *x = a, *y = b;
    int64_t px = iget(x->e, "prio"), py = iget(y->e, "prio");
    if (px != py) return px < py ? -1 : 1;
    int64_t sx = iget(x->e, "since"), sy = iget(y->e, "since");
    if (sx != sy) return sx < sy ? -1 : 1;
    return strcmp(x->conv, y->conv);
}

static bool in_team(const struct oh_agent_info *a, const char *team)
{
    if (!*team) return true;
    for (int i = 0; i < a->nteams; i++)
        if (strcmp(a->teams[i], team) == 0) return true;
    return false;
}

/* An assign command for CONV (entry E): TO (NULL: back to the queue) in
 * place of the holder the view has; its id from the state's seq. */
static void decide(struct router *rt, struct oh_event_list *out, const char *conv, json_t *e,
                   const char *to, int64_t now)
{
    char id[OH_ID_MAX], basis[24];
    const char *holder = sget(e, "assignee");
    snprintf(basis, sizeof basis, "%lld", (long long)iget(e, "seq"));
    oh_event_id(id, to ? "route" : "requeue", conv, basis, holder, NULL);
    json_t *data = json_pack(
        "{s:s, s:s, s:s, s:s, s:o, s:o, s:s, s:{s:s, s:s}}", "conversation_id", conv, "channel",
        sget(e, "channel"), "account", sget(e, "account"), "op", "assign", "assignee",
        to ? json_string(to) : json_null(), "expect", *holder ? json_string(holder) : json_null(),
        "reason", to ? "routed" : "requeued", "author", "kind", "system", "id", "router");
    if (!data) return;
    oh_event_list_push(out, oh_event_new(OH_EV_COMMAND, id, 0, data));
    json_object_set_new(e, "decided", json_integer(now));
    json_object_set_new(e, "basis", json_integer(iget(e, "seq")));
}

/* A decision is pending while its outcome has not come back on the
 * timeline (the state's seq moved) and it is recent. */
static bool pending(const json_t *e, int64_t now)
{
    return iget(e, "decided") && iget(e, "basis") == iget(e, "seq") &&
           now - iget(e, "decided") < RETRY_MS;
}

static void appended(void *opaque, int err)
{
    if (err) OH_WARN("router", "decisions not appended (%s); made again later", oh_strerror(err));
}

static void route(struct router *rt)
{
    int64_t now = oh_now_ms();
    oh_presence *pr = rt->hub->presence;
    size_t n = json_object_size(rt->convs);
    struct waiting *q = n ? calloc(n, sizeof *q) : NULL;
    struct agents as = {rt, NULL, 0, json_object()};
    json_t *gone = json_object(); /* agent id -> offline since (ms), 0 not offline */
    struct oh_event_list out = {0};
    size_t nq = 0;
    const char *conv;
    json_t *e;
    if ((n && !q) || !as.load || !gone) goto done;
    /* loads, the queue, and the requeues of agents gone for good */
    json_object_foreach(rt->convs, conv, e)
    {
        const char *who = sget(e, "assignee");
        if (!*who) {
            if (pending(e, now)) continue; /* counted below with its agent */
            q[nq++] = (struct waiting){conv, e};
            continue;
        }
        json_object_set_new(as.load, who, json_integer(iget(as.load, who) + 1));
        if (!pr) continue; /* no presence in this process: nobody is known gone */
        json_t *g = json_object_get(gone, who); /* asked once per agent and pass */
        if (!g) {
            struct oh_agent_info a;
            bool known = oh_presence_get(pr, who, &a) == 0;
            g = json_integer(!known                            ? rt->unknown_gone_ms
                             : a.status == OH_PRESENCE_OFFLINE ? a.since_ms
                                                               : 0);
            json_object_set_new(gone, who, g);
        }
        int64_t gone_since = json_integer_value(g);
        if (gone_since && now - gone_since > rt->grace_ms && !pending(e, now))
            decide(rt, &out, conv, e, NULL, now);
    }
    /* decisions on their way hold the slot they took */
    json_object_foreach(rt->convs, conv, e)
    {
        if (!*sget(e, "assignee") && pending(e, now)) {
            const char *to = json_string_value(json_object_get(e, "to"));
            if (to) json_object_set_new(as.load, to, json_integer(iget(as.load, to) + 1));
        }
    }
    if (nq && pr) {
        /* the agents' table (megabytes) only when there is a queue to hand
         * out, and not zeroed: agent_row fills each row it hands out; a
         * calloc of it on every pass was 13 % of an ingest's instructions */
        if (!(as.a = malloc(AGENTS_MAX * sizeof *as.a))) goto done;
        oh_presence_each(pr, agent_row, &as);
        /* nobody with a free slot (no agent online, or all full): the
         * queue waits as it is, unsorted (the sort was 3 % of an ingest's
         * instructions with no agent online) */
        int nfree = 0;
        for (int k = 0; k < as.n; k++)
            nfree += as.a[k].load < rt->capacity;
        if (nfree) qsort(q, nq, sizeof *q, by_prio_then_age);
        for (size_t i = 0; i < nq && nfree; i++) {
            struct agent *best = NULL;
            const char *team = sget(q[i].e, "team");
            for (int k = 0; k < as.n; k++) {
                struct agent *x = &as.a[k];
                if (x->load >= rt->capacity || !in_team(&x->info, team)) continue;
                if (!best || x->load < best->load ||
                    (x->load == best->load &&
                     (x->idle_since < best->idle_since || (x->idle_since == best->idle_since &&
                                                           strcmp(x->info.id, best->info.id) < 0))))
                    best = x;
            }
            if (!best) continue; /* nobody of its team is free: it waits */
            decide(rt, &out, q[i].conv, q[i].e, best->info.id, now);
            json_object_set_new(q[i].e, "to", json_string(best->info.id));
            if (++best->load == rt->capacity) nfree--;
            best->idle_since = now;
            json_object_set_new(rt->idle, best->info.id, json_integer(now));
        }
    }
    if (out.n && oh_hub_ingest(rt->hub, &out, appended, NULL) != OH_OK)
        OH_WARN("router", "decisions not appended; made again later");
done:
    oh_event_list_clear(&out);
    json_decref(as.load);
    json_decref(gone);
    free(as.a);
    free(q);
}

/* ---- the service ---- */

static void apply(struct router *rt, const struct oh_log_record *r, int64_t now)
{
    const char *type = r->meta.type, *conv = r->meta.subject;
    if (!type || !conv) return;
    bool updated = strcmp(type, OH_EV_UPDATED) == 0;
    /* a new conversation (its first message, either way) is open and
     * unassigned; every later change comes as a conversation.updated */
    bool first =
        r->meta.seq == 1 && (strcmp(type, OH_EV_INBOUND) == 0 || strcmp(type, OH_EV_OUTBOUND) == 0);
    if (!updated && !first) return;
    if (first && json_object_get(rt->convs, conv)) return;
    json_t *ev = json_loadb(r->value, r->len, 0, NULL);
    const json_t *data = oh_event_data(ev);
    const char *ch = sget(data, "channel"), *acct = sget(data, "account");
    if (updated) {
        note(rt, conv, json_object_get(data, "state"), r->meta.seq, ch, acct, now);
    } else {
        json_t *fresh = oh_convstate_new("");
        note(rt, conv, fresh, 0, ch, acct, now);
        json_decref(fresh);
    }
    json_decref(ev);
}

static int process(void *state, struct oh_service_batch *b, const struct oh_log_record *recs, int n)
{
    struct router *rt = state;
    int64_t now = oh_now_ms();
    if (!rt->loaded && load(rt)) return OH_OK; /* the store answers later: tick retries */
    for (int i = 0; i < n; i++)
        apply(rt, &recs[i], now);
    route(rt);
    return OH_OK;
}

static void tick(void *state)
{
    struct router *rt = state;
    if (!rt->loaded) {
        int rc = load(rt);
        if (rc) {
            OH_WARN("router", "cannot read the open conversations: %s", oh_strerror(rc));
            return;
        }
    }
    route(rt);
}

static int init(oh_hub *hub, void **state, char *err, size_t errlen)
{
    struct router *rt = calloc(1, sizeof *rt);
    if (!rt || !(rt->convs = json_object()) || !(rt->idle = json_object())) {
        if (rt) json_decref(rt->convs);
        free(rt);
        oh_errf(err, errlen, "out of memory");
        return OH_ENOMEM;
    }
    rt->hub = hub;
    rt->capacity = oh_config_int(hub->cfg, "routing.capacity");
    rt->grace_ms = oh_config_int(hub->cfg, "routing.offline_grace_s") * 1000;
    rt->unknown_gone_ms = strcmp(oh_log_backend(hub->log), "local") == 0 ? oh_now_ms() : 0;
    *state = rt;
    return OH_OK;
}

static void stop(void *state)
{
    struct router *rt = state;
    if (!rt) return;
    json_decref(rt->convs);
    json_decref(rt->idle);
    free(rt);
}

static bool wanted(const oh_hub *hub)
{
    return hub->store && oh_config_bool(hub->cfg, "routing.enabled");
}

const struct oh_service oh_service_router = {
    .name = "router",
    .role = "router",
    .group = NULL, /* rebuilt from the store at start, then the timeline from its end */
    .topic = OH_TOPIC_TIMELINE,
    .batch = 512,
    .wanted = wanted,
    .init = init,
    .process = process,
    .tick = tick,
    .stop = stop,
    .lingers = true,
};
