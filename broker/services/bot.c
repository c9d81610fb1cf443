/* bot.c - the bot (bot.enabled): answers customers of conversations in
 * status bot from the knowledge base when retrieval is confident, asks once
 * to rephrase when it is not, and hands off (status open, reason
 * handoff:<why>) on a request for a human, frustration, low confidence
 * twice or bot.max_turns answers. With ai.llm_url its answer is the LLM's,
 * grounded in the articles (the best article's snippet when that fails). A consumer of the timeline
 * (group omnihub-bot); what it decides about inbound message M has ids derived from M's, so a
 * replay (kill -9, a retried delivery) never answers twice. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/hub_int.h"
#include "core/convstate.h"
#include "core/kb.h"
#include "core/kbase.h"
#include "core/llm.h"
#include "core/metrics.h"
#include "core/triage.h"
#include "services/service.h"

#define HISTORY_MAX  500   /* events before the message that are read back */
#define RELOAD_MS    60000 /* without a gateway here, the index is rebuilt this often */
#define ANSWER_MAX   (OH_LLM_MAX_ANSWER + 1)
#define LLM_ARTICLES 3 /* articles in the LLM's prompt */

static const char clarify_text[] =
    "Sorry, I am not sure I understood. Could you tell me a bit more about what you need?";
static const char handoff_text[] = "I am passing you to a colleague, who will reply here shortly.";

struct bot {
    oh_hub *hub;
    struct oh_llm_conf llm; /* url NULL: answers are the best article's snippet */
    int64_t max_turns;
    double min_confidence;
    int64_t reloaded_ms;
};

/* What the bot did so far in the conversation, before the message. */
struct past {
    int answers, clarifies;
};

static int past_row(void *opaque, const char *conv, int64_t seq, const char *json, size_t len)
{
    (void)conv;
    (void)seq;
    struct past *p = opaque;
    if (!memmem(json, len, "\"bot\"", 5)) return 0; /* most events: not the bot's */
    json_t *ev = json_loadb(json, len, 0, NULL);
    const json_t *data = oh_event_data(ev);
    const char *type = ev ? oh_event_get_type(ev) : NULL;
    const char *kind = json_string_value(json_object_get(json_object_get(data, "bot"), "kind"));
    if (type && strcmp(type, OH_EV_OUTBOUND) == 0 && kind) {
        if (strcmp(kind, "answer") == 0) p->answers++;
        if (strcmp(kind, "clarify") == 0) p->clarifies++;
    }
    json_decref(ev);
    return 0;
}

/* The bot's message: an outbound event authored {kind: bot}, its id from
 * the inbound message's. */
static json_t *message(const struct oh_conversation *c, const char *in_id, const char *kind,
                       const char *text, json_t *article_ids, double confidence)
{
    char id[OH_ID_MAX], when[32];
    oh_event_id(id, "bot", c->id, in_id, (const char *)NULL);
    oh_time_rfc3339(when, oh_now_ms());
    json_t *data =
        json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:s, s:s, s:s, s:s, s:{s:s, s:s}, "
                  "s:{s:s, s:s, s:o, s:f}}",
                  "conversation_id", c->id, "channel", c->channel, "account", c->account,
                  "direction", "outbound", "contact", "id", c->contact_id, "name", c->contact_name,
                  "message_id", id, "kind", "text", "text", text, "sent_at", when, "author", "kind",
                  "bot", "id", "bot", "bot", "kind", kind, "in_reply_to", in_id, "article_ids",
                  article_ids ? article_ids : json_array(), "confidence", confidence);
    return data ? oh_event_new(OH_EV_OUTBOUND, id, 0, data) : NULL;
}

/* The handoff: a state command sync decides in log order (status open,
 * reason handoff:WHY), its id from the inbound message's. */
static json_t *handoff(const struct oh_conversation *c, const char *in_id, const char *why)
{
    char id[OH_ID_MAX], reason[48];
    oh_event_id(id, "command", "bot-handoff", c->id, in_id, (const char *)NULL);
    snprintf(reason, sizeof reason, "handoff:%s", why);
    json_t *data =
        json_pack("{s:s, s:s, s:s, s:s, s:{s:s}, s:{s:s, s:s}, s:s}", "conversation_id", c->id,
                  "channel", c->channel, "account", c->account, "op", "patch", "set", "status",
                  "open", "author", "kind", "bot", "id", "bot", "reason", reason);
    return data ? oh_event_new(OH_EV_COMMAND, id, 0, data) : NULL;
}

static void count(const char *what)
{
    char lab[64];
    snprintf(lab, sizeof lab, "action=\"%s\"", what);
    oh_metrics_inc("omnihub_bot_actions_total", lab, 1);
}

static int body_row(void *opaque, const struct oh_store_article *a)
{
    json_t *o = json_pack("{s:s, s:s, s:s}", "id", a->id, "title", a->title, "body", a->body);
    if (o) json_array_append_new(opaque, o);
    return 1;
}

/* The LLM's answer grounded in HITS (their text from the store), or NULL
 * (failure, timeout: the caller answers with the best article). Blocks the
 * bot's thread for at most ai.llm_timeout_ms; ingest never waits for it. */
static char *llm_answer(struct bot *b, const struct oh_kb_hit *hits, size_t n, const char *q)
{
    json_t *keep = json_array();
    struct oh_llm_article arts[LLM_ARTICLES];
    size_t na = 0;
    for (size_t i = 0; keep && i < n && na < LLM_ARTICLES; i++) {
        if (oh_store_article_get(b->hub->store, hits[i].id, body_row, keep) != OH_OK) continue;
        json_t *o = json_array_get(keep, json_array_size(keep) - 1);
        arts[na++] = (struct oh_llm_article){json_string_value(json_object_get(o, "id")),
                                             json_string_value(json_object_get(o, "title")),
                                             json_string_value(json_object_get(o, "body"))};
    }
    char *text = NULL, err[256];
    if (na && oh_llm_answer(&b->llm, arts, na, q, strlen(q), &text, err, sizeof err) != OH_OK)
        OH_WARN("bot", "answering from the articles alone: %s", err);
    json_decref(keep);
    return text;
}

/* Decides about one inbound message (runs on the bot's thread). */
static int consider(struct bot *b, const struct oh_log_record *r)
{
    json_t *ev = json_loadb(r->value, r->len, 0, NULL);
    const char *conv = ev ? oh_event_subject(ev) : NULL, *in_id = ev ? oh_event_get_id(ev) : NULL;
    const json_t *data = ev ? oh_event_data(ev) : NULL;
    json_t *seqv = ev ? json_object_get(ev, "seq") : NULL;
    int64_t seq = r->meta.seq > 0 ? r->meta.seq : json_integer_value(seqv);
    struct oh_conversation c;
    int rc = OH_OK;
    if (!conv || !in_id || seq <= 0) goto out; /* not a sequenced message */
    if ((rc = oh_store_conversation_get(b->hub->store, conv, &c)) != OH_OK) {
        if (rc == OH_ENOTFOUND) rc = OH_OK;
        goto out;
    }
    if (strcmp(c.status, "bot") != 0) goto out; /* an agent's conversation (or not yet one) */
    struct past p = {0};
    int64_t after = seq > HISTORY_MAX ? seq - HISTORY_MAX : 0;
    if (seq - 1 > after &&
        (rc = oh_store_history(b->hub->store, conv, after, (int)(seq - 1 - after), past_row, &p)))
        goto out;
    const char *text = json_string_value(json_object_get(data, "text"));
    const char *subject = json_string_value(json_object_get(data, "subject"));
    if (!text) text = "";
    struct oh_triage t;
    oh_triage_classify(text, strlen(text), subject, &t);
    const char *why = t.wants_human               ? "asked_for_human"
                      : t.frustrated              ? "frustrated"
                      : p.answers >= b->max_turns ? "max_turns"
                                                  : NULL;
    struct oh_event_list l = {0};
    if (!why) {
        struct oh_kb_hit hits[LLM_ARTICLES];
        size_t n = 0;
        double conf = 0;
        void *ref;
        const oh_kb *idx = oh_kbase_get(b->hub->kb, &ref);
        char q[OH_KB_MAX_QUERY + 1];
        snprintf(q, sizeof q, "%s%s%s", subject ? subject : "", subject ? "\n" : "", text);
        if (idx && *q)
            oh_kb_query(idx, q, strlen(q), b->llm.url ? LLM_ARTICLES : 1, NULL, hits, &n, &conf,
                        NULL);
        if (n > 0 && conf >= b->min_confidence) {
            char answer[ANSWER_MAX];
            char *llm = b->llm.url ? llm_answer(b, hits, n, q) : NULL;
            json_t *ids = json_array();
            for (size_t i = 0; i < (llm ? n : 1); i++)
                json_array_append_new(ids, json_string(hits[i].id));
            if (llm)
                snprintf(answer, sizeof answer, "%s", llm);
            else
                snprintf(answer, sizeof answer, "%s\n\nMore in our help article \"%s\".",
                         hits[0].snippet, hits[0].title);
            json_t *out = message(&c, in_id, "answer", answer, ids, conf);
            json_object_set_new(json_object_get(oh_event_data(out), "bot"), "source",
                                json_string(llm ? "llm" : "kb"));
            oh_event_list_push(&l, out);
            count(llm ? "answer_llm" : "answer");
            free(llm);
        } else if (p.clarifies == 0) {
            oh_event_list_push(&l, message(&c, in_id, "clarify", clarify_text, NULL, conf));
            count("clarify");
        } else {
            why = "low_confidence";
        }
        oh_kbase_put(ref);
    }
    if (why) {
        oh_event_list_push(&l, message(&c, in_id, "handoff", handoff_text, NULL, 0));
        oh_event_list_push(&l, handoff(&c, in_id, why));
        char what[48];
        snprintf(what, sizeof what, "handoff:%s", why);
        count(what);
    }
    /* durable before the batch is committed; a replay gives the same ids */
    rc = l.n ? oh_hub_ingest_wait(b->hub, &l) : OH_OK;
    oh_event_list_clear(&l);
out:
    json_decref(ev);
    return rc;
}

/* runs on the service's thread */
static int process(void *state, struct oh_service_batch *batch, const struct oh_log_record *recs,
                   int n)
{
    (void)batch;
    struct bot *b = state;
    for (int i = 0; i < n; i++) {
        const struct oh_log_record *r = &recs[i];
        if (r->meta.type && strcmp(r->meta.type, OH_EV_INBOUND) != 0) continue;
        if (!r->meta.type &&
            !memmem(r->value, r->len, "\"" OH_EV_INBOUND "\"", sizeof OH_EV_INBOUND + 1))
            continue;
        int rc, delay_ms = 100;
        while ((rc = consider(b, r)) != OH_OK) {
            if (atomic_load(&b->hub->stopping)) return rc; /* not committed: read again */
            OH_WARN("bot", "%s; retrying in %d ms", oh_strerror(rc), delay_ms);
            usleep((useconds_t)delay_ms * 1000);
            delay_ms = delay_ms < 5000 ? delay_ms * 2 : 5000;
        }
    }
    return OH_OK;
}

/* Without a gateway in this process no change of the articles reaches the
 * index: rebuild it now and then. */
static void tick(void *state)
{
    struct bot *b = state;
    int64_t now = oh_now_ms();
    if (b->hub->run_gateway || now - b->reloaded_ms < RELOAD_MS) return;
    char err[256];
    b->reloaded_ms = now;
    if (oh_hub_kb_reload(b->hub, false, err, sizeof err))
        OH_WARN("bot", "rebuilding the article index: %s", err);
}

static int init(oh_hub *hub, void **state, char *err, size_t errlen)
{
    if (!hub->store || !hub->kb) {
        oh_errf(err, errlen, "the bot needs the store (store.backend)");
        return OH_EINVAL;
    }
    struct bot *b = calloc(1, sizeof *b);
    if (!b) {
        oh_errf(err, errlen, "out of memory");
        return OH_ENOMEM;
    }
    b->hub = hub;
    const char *url = oh_config_str(hub->cfg, "ai.llm_url");
    if (url && *url) {
        b->llm = (struct oh_llm_conf){url, oh_config_str(hub->cfg, "ai.llm_model"),
                                      oh_config_str(hub->cfg, "ai.llm_api_key"),
                                      (long)oh_config_int(hub->cfg, "ai.llm_timeout_ms")};
        if (!b->llm.model || !*b->llm.model) {
            oh_errf(err, errlen, "ai.llm_model is required with ai.llm_url");
            free(b);
            return OH_EINVAL;
        }
    }
    b->max_turns = oh_config_int(hub->cfg, "bot.max_turns");
    b->min_confidence = (double)oh_config_int(hub->cfg, "bot.min_confidence_pct") / 100.0;
    b->reloaded_ms = oh_now_ms();
    *state = b;
    return OH_OK;
}

static void stop(void *state)
{
    free(state);
}

static bool wanted(const oh_hub *hub)
{
    return oh_config_bool(hub->cfg, "bot.enabled");
}

const struct oh_service oh_service_bot = {
    .name = "bot",
    .role = "bot",
    .group = "omnihub-bot",
    .topic = OH_TOPIC_TIMELINE,
    .batch = 64,
    .wanted = wanted,
    .init = init,
    .process = process,
    .tick = tick,
    .stop = stop,
    .lingers = true,
};
