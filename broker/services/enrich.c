/* enrich.c - the triage service (CONTRACT part 2, "Triage"): consumes the
 * timeline (group omnihub-enrich), scores each customer's inbound message
 * with oh_triage_classify() and emits what it decides through the ingest
 * path: an omnihub.message.enriched event, and a raise_priority command when
 * the message is more urgent than its conversation. Runs on "oh-enrich". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/convstate.h"
#include "core/hub_int.h"
#include "core/metrics.h"
#include "core/triage.h"
#include "services/service.h"

#define KNOWN_MAX  100000 /* conversations whose priority is remembered */

struct enrich {
    oh_hub *hub;
    /* conversation id -> its priority (enum oh_triage_priority) as the
     * timeline read so far leaves it, or as our own raise will: read from
     * the store on a miss, then kept by the conversation.updated events of
     * the timeline (their data.state), which follow the reducer's order */
    json_t *known;
    /* conversation id -> the highest seq read: sync forwards stored events
     * to the timeline again after a crash, and timeline readers skip the
     * seqs they have */
    json_t *seen;
    json_t *out; /* the batch's decisions, kept until they are durable */
};

static bool is_customer_inbound(const struct oh_log_record *r)
{
    if (r->meta.type)
        return strcmp(r->meta.type, OH_EV_INBOUND) == 0 && r->meta.author &&
               strcmp(r->meta.author, "customer") == 0;
    /* written before records had metadata: the body decides (score) */
    static const char inbound[] = "\"" OH_EV_INBOUND "\"";
    return memmem(r->value, r->len, inbound, sizeof inbound - 1) != NULL;
}

/* A state change on the timeline: the conversation's priority after it,
 * for a conversation whose priority is remembered (the others are read from
 * the store when one of their messages comes). Only these bodies are read. */
static void note_state(struct enrich *e, const struct oh_log_record *r)
{
    if (!r->meta.subject || !json_object_get(e->known, r->meta.subject)) return;
    json_t *ev = json_loadb(r->value, r->len, 0, NULL);
    const char *p = json_string_value(
        json_object_get(json_object_get(oh_event_data(ev), "state"), "priority"));
    int rank = oh_triage_priority_parse(p);
    if (rank >= 0) json_object_set_new(e->known, r->meta.subject, json_integer(rank));
    json_decref(ev);
}

/* The conversation's priority: remembered, or read from the store. -1 when
 * the store cannot tell (the reducer then decides alone: it never lowers). */
static int priority_of(struct enrich *e, const char *conv)
{
    json_t *v = json_object_get(e->known, conv);
    if (v) return (int)json_integer_value(v);
    struct oh_conversation *c = malloc(sizeof *c);
    int rank = -1;
    if (c && e->hub->store && oh_store_conversation_get(e->hub->store, conv, c) == OH_OK)
        rank = oh_triage_priority_parse(c->priority);
    free(c);
    if (rank >= 0) {
        if (json_object_size(e->known) >= KNOWN_MAX) json_object_clear(e->known);
        json_object_set_new(e->known, conv, json_integer(rank));
    }
    return rank;
}

/* Scores one customer message (a timeline record) into E->out. */
static void score(struct enrich *e, const struct oh_log_record *r)
{
    json_t *ev = json_loadb(r->value, r->len, 0, NULL);
    const json_t *data = oh_event_data(ev);
    const char *type = oh_event_get_type(ev), *id = oh_event_get_id(ev);
    const char *conv = oh_event_subject(ev), *kind = oh_event_author_kind(ev);
    const char *channel = oh_event_data_str(ev, "channel");
    const char *account = oh_event_data_str(ev, "account");
    /* re-checked on the body: metadata may be missing (older records) */
    if (!type || strcmp(type, OH_EV_INBOUND) != 0 || !kind || strcmp(kind, "customer") != 0 ||
        !id || !conv || !channel || !account) {
        json_decref(ev);
        return;
    }
    /* the email connector gives the text with the quoted history trimmed
     * (the scorer skips quotes as well) and the subject beside it */
    json_t *text = json_object_get(data, "text");
    struct oh_triage t;
    oh_triage_classify(json_is_string(text) ? json_string_value(text) : "",
                       json_is_string(text) ? json_string_length(text) : 0,
                       oh_event_data_str(ev, "subject"), &t);
    const char *prio = oh_triage_priority_name(t.priority);
    /* three decimals: the scorer's resolution, and a stable text */
    double sentiment = (double)(long)(t.sentiment * 1000 + (t.sentiment < 0 ? -0.5 : 0.5)) / 1000;
    char eid[OH_ID_MAX];
    /* from the message's id alone: scoring it again (a replay after a
     * crash, a rebalance) makes the same event, which sync drops by id */
    oh_event_id(eid, "enriched", id, NULL);
    json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:b, s:f, s:s, s:b, s:s}", "conversation_id", conv,
                          "channel", channel, "account", account, "message_event_id", id,
                          "frustrated", t.frustrated, "sentiment", sentiment, "priority", prio,
                          "wants_human", t.wants_human, "language", t.language);
    json_t *out = d ? oh_event_new(OH_EV_ENRICHED, eid, 0, d) : NULL;
    if (out) json_array_append_new(e->out, out);
    char lab[40];
    snprintf(lab, sizeof lab, "priority=\"%s\"", prio);
    oh_metrics_inc("omnihub_triage_messages_total", lab, 1);
    /* priorities rank low 0 .. urgent 3 (triage.h) */
    int have = priority_of(e, conv);
    if (have < 0 || (int)t.priority > have) {
        char cid[OH_ID_MAX];
        oh_event_id(cid, "triage", id, NULL); /* its outcome is recorded once */
        json_t *c = json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s}}", "conversation_id", conv,
                              "channel", channel, "account", account, "op", "raise_priority",
                              "priority", prio, "author", "kind", "system", "id", "triage");
        json_t *cmd = c ? oh_event_new(OH_EV_COMMAND, cid, 0, c) : NULL;
        if (cmd) {
            json_array_append_new(e->out, cmd);
            if (have >= 0) json_object_set_new(e->known, conv, json_integer(t.priority));
            oh_metrics_inc("omnihub_triage_raises_total", "", 1);
        }
    }
    json_decref(ev);
}

/* Appends the batch's decisions and waits until they are durable: OH_OK, or
 * OH_ECLOSED when the hub stops first (the batch is then read again). */
static int emit(struct enrich *e)
{
    int delay_ms = 100;
    while (json_array_size(e->out)) {
        struct oh_event_list l = {0};
        size_t i;
        json_t *v;
        json_array_foreach(e->out, i, v)
        {
            if (oh_event_list_push(&l, json_incref(v))) break;
        }
        int rc = l.n == json_array_size(e->out) ? oh_hub_ingest_wait(e->hub, &l) : OH_ENOMEM;
        oh_event_list_clear(&l);
        if (rc == OH_OK) break;
        if (rc == OH_EINVAL) { /* not ours to fix by trying again: said by the hub */
            OH_ERROR("enrich", "a batch of %zu decisions was refused", json_array_size(e->out));
            break;
        }
        if (atomic_load(&e->hub->stopping)) {
            json_array_clear(e->out);
            return OH_ECLOSED;
        }
        OH_WARN("enrich", "appending decisions failed (%s); retrying in %d ms", oh_strerror(rc),
                delay_ms);
        usleep((useconds_t)delay_ms * 1000);
        delay_ms = delay_ms < 5000 ? delay_ms * 2 : 5000;
    }
    json_array_clear(e->out);
    return OH_OK;
}

/* False for a record whose seq was read already (a repeat of the timeline). */
static bool fresh(struct enrich *e, const struct oh_log_record *r)
{
    if (!r->meta.subject || r->meta.seq <= 0) return true; /* cannot tell */
    json_t *v = json_object_get(e->seen, r->meta.subject);
    if (v && json_integer_value(v) >= r->meta.seq) return false;
    if (v) {
        json_integer_set(v, r->meta.seq);
    } else {
        if (json_object_size(e->seen) >= KNOWN_MAX) json_object_clear(e->seen);
        json_object_set_new(e->seen, r->meta.subject, json_integer(r->meta.seq));
    }
    return true;
}

static int process(void *state, struct oh_service_batch *b, const struct oh_log_record *recs,
                   int n)
{
    struct enrich *e = state;
    (void)b;
    for (int i = 0; i < n; i++) {
        const struct oh_log_record *r = &recs[i];
        if (!fresh(e, r)) continue;
        if (r->meta.type && strcmp(r->meta.type, OH_EV_UPDATED) == 0)
            note_state(e, r);
        else if (is_customer_inbound(r))
            score(e, r);
    }
    return emit(e);
}

/* Partitions moved: state changes of the conversations another member
 * consumed meanwhile were not seen here. */
static void moved(void *state, oh_log_consumer *c, const int32_t *parts, int n)
{
    struct enrich *e = state;
    (void)c, (void)parts, (void)n;
    json_object_clear(e->known);
}

static int init(oh_hub *hub, void **state, char *err, size_t errlen)
{
    struct enrich *e = calloc(1, sizeof *e);
    if (!e || !(e->known = json_object()) || !(e->seen = json_object()) ||
        !(e->out = json_array())) {
        if (e) {
            json_decref(e->known);
            json_decref(e->seen);
        }
        free(e);
        oh_errf(err, errlen, "out of memory");
        return OH_ENOMEM;
    }
    e->hub = hub;
    oh_metrics_describe("omnihub_triage_messages_total",
                        "customer messages scored by triage, by the priority found");
    oh_metrics_describe("omnihub_triage_raises_total",
                        "priority raises triage asked for (the reducer never lowers)");
    *state = e;
    return OH_OK;
}

static void stop(void *state)
{
    struct enrich *e = state;
    json_decref(e->known);
    json_decref(e->seen);
    json_decref(e->out);
    free(e);
}

static bool wanted(const oh_hub *hub)
{
    return hub->run_enrich && oh_config_bool(hub->cfg, "triage.enabled");
}

const struct oh_service oh_service_enrich = {
    .name = "enrich",
    .group = OH_GROUP_ENRICH,
    .topic = OH_TOPIC_TIMELINE,
    .batch = 256,
    .wanted = wanted,
    .init = init,
    .process = process,
    .assigned = moved,
    .revoked = moved,
    .stop = stop,
};
