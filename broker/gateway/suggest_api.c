/* suggest_api.c - reply suggestions for a conversation (articles, drafts
 * from the articles, canned responses with variables, and the LLM's
 * grounded answer on a pool of its own, so no gateway worker waits for it)
 * and the bot's report, recomputed from the history. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gateway/kb_int.h"
#include "core/kbase.h"
#include "core/llm.h"
#include "core/metrics.h"

#define TAIL_EVENTS   100 /* events read back to find the latest inbound messages */
#define MAX_INBOUND   3   /* latest inbound messages the question is made of */
#define ARTICLES      3
#define CANNED_HITS   2
#define RENDER_MAX    16384
#define REPORT_CONVS  10000
#define REPORT_EVENTS 10000
/* LLM calls queued or running at most: past it, suggestions go without the
 * LLM at once ("busy") rather than queue behind a slow endpoint */
#define AI_PENDING_MAX 16

int gw_suggest_init(struct oh_gateway *gw, char *err, size_t errlen)
{
    const char *url = oh_config_str(gw->hub->cfg, "ai.llm_url");
    if (!url || !*url) return OH_OK;
    const char *model = oh_config_str(gw->hub->cfg, "ai.llm_model");
    if (!model || !*model) {
        oh_errf(err, errlen, "ai.llm_model is required with ai.llm_url");
        return OH_EINVAL;
    }
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        oh_errf(err, errlen, "ai.llm_url must be an http:// or https:// URL");
        return OH_EINVAL;
    }
    if (!(gw->ai = oh_workq_new(4, "oh-ai"))) {
        oh_errf(err, errlen, "out of memory");
        return OH_ENOMEM;
    }
    return OH_OK;
}

void gw_suggest_drain(struct oh_gateway *gw)
{
    oh_workq_free(gw->ai);
    gw->ai = NULL;
}

json_t *gw_kb_hits_json(const struct oh_kb_hit *hits, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_pack("{s:s, s:s, s:f, s:s}", "id", hits[i].id, "title",
                                           hits[i].title, "score", hits[i].score, "snippet",
                                           hits[i].snippet));
    return a;
}

/* ---- the question: the latest inbound messages ---- */

struct tail {
    json_t *texts; /* inbound texts since the last outbound message */
    json_t *last;  /* the last inbound text seen at all */
};

static int tail_row(void *opaque, const char *conv, int64_t seq, const char *json, size_t len)
{
    (void)conv;
    (void)seq;
    struct tail *t = opaque;
    json_t *ev = json_loadb(json, len, 0, NULL);
    const char *type = ev ? oh_event_get_type(ev) : NULL;
    const json_t *data = ev ? oh_event_data(ev) : NULL;
    if (type && strcmp(type, OH_EV_INBOUND) == 0) {
        const char *text = json_string_value(json_object_get(data, "text"));
        const char *subject = json_string_value(json_object_get(data, "subject"));
        char *both = NULL;
        if (text || subject) {
            size_t n = (text ? strlen(text) : 0) + (subject ? strlen(subject) : 0) + 2;
            if ((both = malloc(n)))
                snprintf(both, n, "%s%s%s", subject ? subject : "", subject && text ? "\n" : "",
                         text ? text : "");
        }
        if (both && *both) {
            json_array_append_new(t->texts, json_string(both));
            json_decref(t->last);
            t->last = json_string(both);
        }
        free(both);
    } else if (type && strcmp(type, OH_EV_OUTBOUND) == 0 &&
               !json_is_true(json_object_get(data, "internal"))) {
        json_array_clear(t->texts); /* answered: the question starts after it */
    }
    json_decref(ev);
    return 0;
}

/* The question of CONV (head HEAD): its latest unanswered inbound messages
 * (or the last inbound one), joined; malloc'd, "" when there is none. */
static int question(oh_store *st, const char *conv, int64_t head, char **out)
{
    struct tail t = {json_array(), NULL};
    int rc = oh_store_history(st, conv, head > TAIL_EVENTS ? head - TAIL_EVENTS : 0, TAIL_EVENTS,
                              tail_row, &t);
    size_t n = json_array_size(t.texts), from = n > MAX_INBOUND ? n - MAX_INBOUND : 0, len = 0;
    if (n == 0 && t.last) {
        json_array_append(t.texts, t.last);
        n = 1;
        from = 0;
    }
    for (size_t i = from; i < n; i++)
        len += json_string_length(json_array_get(t.texts, i)) + 1;
    if (len > OH_KB_MAX_QUERY) len = OH_KB_MAX_QUERY;
    char *q = malloc(len + 1);
    size_t at = 0;
    for (size_t i = from; q && i < n; i++) {
        const json_t *s = json_array_get(t.texts, i);
        size_t k = json_string_length(s);
        if (at + k + 1 > len) k = len > at + 1 ? len - at - 1 : 0;
        while (k > 0 && ((unsigned char)json_string_value(s)[k] & 0xC0) == 0x80)
            k--; /* a whole UTF-8 character */
        memcpy(q + at, json_string_value(s), k);
        at += k;
        if (at < len) q[at++] = '\n';
    }
    if (q) q[at] = '\0';
    json_decref(t.texts);
    json_decref(t.last);
    *out = q;
    return rc ? rc : q ? OH_OK : OH_ENOMEM;
}

/* ---- canned variables ---- */

/* TEXT with {{contact.name}}, {{contact.id}}, {{agent.name}}, {{agent.id}},
 * {{conversation.id}} and {{channel}} replaced; other {{...}} stay. */
static char *render(const char *text, const struct oh_conversation *c,
                    const struct oh_principal *who)
{
    const struct {
        const char *name, *value;
    } vars[] = {
        {"contact.name", c->contact_name[0] ? c->contact_name : c->contact_id},
        {"contact.id", c->contact_id},
        {"agent.name", who->name[0] ? who->name : who->sub},
        {"agent.id", who->sub},
        {"conversation.id", c->id},
        {"channel", c->channel},
    };
    char *out = malloc(RENDER_MAX);
    size_t at = 0;
    if (!out) return NULL;
    for (const char *p = text; *p && at + 1 < RENDER_MAX;) {
        bool done = false;
        if (p[0] == '{' && p[1] == '{') {
            const char *q = p + 2;
            while (*q == ' ')
                q++;
            for (size_t i = 0; i < OH_ARRAY_SIZE(vars) && !done; i++) {
                size_t n = strlen(vars[i].name);
                const char *e = q + n;
                if (strncmp(q, vars[i].name, n) != 0) continue;
                while (*e == ' ')
                    e++;
                if (e[0] != '}' || e[1] != '}') continue;
                size_t v = strlen(vars[i].value);
                if (at + v + 1 >= RENDER_MAX) v = RENDER_MAX - at - 1;
                memcpy(out + at, vars[i].value, v);
                at += v;
                p = e + 2;
                done = true;
            }
        }
        if (!done) out[at++] = *p++;
    }
    out[at] = '\0';
    return out;
}

/* ---- the suggestions ---- */

struct sug {
    char conv[OH_ID_MAX];
    int64_t head;
    char *question;
    json_t *articles, *replies; /* the answer being built */
    struct oh_llm_article arts[ARTICLES];
    json_t *keep; /* owns the articles' strings */
    size_t narts;
};

static void sug_free(void *p)
{
    struct sug *s = p;
    free(s->question);
    json_decref(s->articles);
    json_decref(s->replies);
    json_decref(s->keep);
    free(s);
}

static json_t *reply(const struct sug *s, const char *source, const char *text, json_t *ids)
{
    char head[24], id[OH_ID_MAX];
    snprintf(head, sizeof head, "%lld", (long long)s->head);
    oh_event_id(id, "suggestion", s->conv, head, source, text, (const char *)NULL);
    return json_pack("{s:s, s:s, s:s, s:o}", "suggestion_id", id, "text", text, "source", source,
                     "article_ids", ids ? ids : json_array());
}

static void answer(struct req *r, struct sug *s, const char *llm)
{
    gw_reply_json(r, 200,
                  json_pack("{s:s, s:O, s:O, s:s}", "conversation_id", s->conv, "articles",
                            s->articles, "replies", s->replies, "llm", llm));
}

/* on the LLM pool */
static void llm_work(void *opaque)
{
    struct req *r = opaque;
    struct sug *s = r->state;
    const oh_config *cfg = r->gw->hub->cfg;
    struct oh_llm_conf conf = {
        .url = oh_config_str(cfg, "ai.llm_url"),
        .model = oh_config_str(cfg, "ai.llm_model"),
        .api_key = oh_config_str(cfg, "ai.llm_api_key"),
        .timeout_ms = (long)oh_config_int(cfg, "ai.llm_timeout_ms"),
    };
    char *text = NULL, err[256];
    int64_t t0 = oh_mono_us();
    int rc = oh_llm_answer(&conf, s->arts, s->narts, s->question, strlen(s->question), &text, err,
                           sizeof err);
    oh_metrics_observe("omnihub_llm_seconds", "", (double)(oh_mono_us() - t0) / 1e6);
    const char *outcome = rc == OH_OK ? "ok" : rc == OH_ETIMEOUT ? "timeout" : "failed";
    char lab[48];
    snprintf(lab, sizeof lab, "outcome=\"%s\"", outcome);
    oh_metrics_inc("omnihub_llm_requests_total", lab, 1);
    if (rc == OH_OK) {
        json_t *ids = json_array();
        for (size_t i = 0; i < s->narts; i++)
            json_array_append_new(ids, json_string(s->arts[i].id));
        json_array_insert_new(s->replies, 0, reply(s, "llm", text, ids));
    } else {
        OH_WARN("kb", "suggestions of %s without the LLM: %s", s->conv, err);
    }
    free(text);
    answer(r, s, outcome);
    atomic_fetch_sub(&r->gw->ai_pending, 1);
    gw_complete(r);
}

static int body_row(void *opaque, const struct oh_store_article *a)
{
    struct sug *s = opaque;
    json_t *o = json_pack("{s:s, s:s, s:s}", "id", a->id, "title", a->title, "body", a->body);
    if (!o) return OH_ENOMEM;
    json_array_append_new(s->keep, o);
    s->arts[s->narts++] = (struct oh_llm_article){
        .id = json_string_value(json_object_get(o, "id")),
        .title = json_string_value(json_object_get(o, "title")),
        .body = json_string_value(json_object_get(o, "body")),
    };
    return 1;
}

static void suggest_work(void *opaque)
{
    struct req *r = opaque;
    struct sug *s = r->state;
    oh_hub *hub = r->gw->hub;
    struct oh_conversation c;
    int rc = gw_conversation_later(r->gw, s->conv, &c, &r->job);
    if (rc == GW_LATER) return;
    if (rc == OH_OK) {
        s->head = c.head;
        rc = question(hub->store, s->conv, c.head, &s->question);
    }
    if (rc) {
        gw_reply_error(r, rc == OH_ENOTFOUND ? 404 : 503,
                       rc == OH_ENOTFOUND ? "not_found" : "unavailable", "%s",
                       rc == OH_ENOTFOUND ? "no such conversation" : oh_strerror(rc));
        gw_complete(r);
        return;
    }
    struct oh_kb_hit hits[ARTICLES];
    size_t n = 0, nc = 0;
    void *ref, *cref;
    const oh_kb *idx = oh_kbase_get(hub->kb, &ref);
    if (idx && s->question[0])
        oh_kb_query(idx, s->question, strlen(s->question), ARTICLES, NULL, hits, &n, NULL, NULL);
    s->articles = gw_kb_hits_json(hits, n);
    s->replies = json_array();
    s->keep = json_array();
    if (n > 0) {
        json_t *ids = json_pack("[s]", hits[0].id);
        json_array_append_new(s->replies, reply(s, "kb", hits[0].snippet, ids));
    }
    /* the articles' text for the LLM (the index keeps only snippets) */
    for (size_t i = 0; gw_is_llm(r->gw) && i < n; i++)
        oh_store_article_get(hub->store, hits[i].id, body_row, s);
    oh_kbase_put(ref);
    struct oh_kb_hit ch[CANNED_HITS];
    const oh_kb *cidx = oh_kbase_get(hub->canned, &cref);
    if (cidx && s->question[0])
        oh_kb_query(cidx, s->question, strlen(s->question), CANNED_HITS, NULL, ch, &nc, NULL, NULL);
    for (size_t i = 0; i < nc; i++) {
        char buf[16384];
        if (oh_store_kv_get(hub->store, OH_CANNED_NS, ch[i].id, buf, sizeof buf)) continue;
        json_t *o = json_loads(buf, 0, NULL);
        const char *raw = json_string_value(json_object_get(o, "text"));
        char *text = render(raw ? raw : "", &c, &r->who);
        if (text) {
            json_t *rep = reply(s, "canned", text, json_array());
            json_object_set_new(rep, "canned_id", json_string(ch[i].id));
            json_array_append_new(s->replies, rep);
        }
        free(text);
        json_decref(o);
    }
    oh_kbase_put(cref);
    if (!s->articles || !s->replies || !s->keep) {
        gw_reply_error(r, 500, "internal", "out of memory");
        gw_complete(r);
        return;
    }
    /* the LLM's turn on its own pool; its answer completes the request */
    bool busy = false;
    if (s->narts > 0 && r->gw->ai) {
        busy = atomic_fetch_add(&r->gw->ai_pending, 1) >= AI_PENDING_MAX;
        if (!busy && oh_workq_submit(r->gw->ai, llm_work, r) == OH_OK) return;
        atomic_fetch_sub(&r->gw->ai_pending, 1);
    }
    answer(r, s, !gw_is_llm(r->gw) ? "off" : busy ? "busy" : s->narts ? "failed" : "no_articles");
    gw_complete(r);
}

bool gw_is_llm(const struct oh_gateway *gw)
{
    return gw->ai != NULL;
}

void gw_suggestions(struct req *r, const char *conv)
{
    snprintf(r->route, sizeof r->route, "/v1/conversations/{id}/suggestions");
    if (strcmp(r->method, "GET") != 0) {
        gw_reply_error(r, 405, "method_not_allowed", "use GET");
        return;
    }
    struct sug *s = gw_state_new(r, sizeof *s, sug_free);
    if (!s) return;
    snprintf(s->conv, sizeof s->conv, "%s", conv);
    gw_async(r, suggest_work);
}

/* ---- GET /v1/reports/bot: recomputed from the history ---- */

struct report {
    oh_store *st;
    int64_t window_ms, now_ms;
    json_t *ids;
    /* totals */
    int64_t conversations, involved, resolved, resolved_pending;
    json_t *handed_off, *used;
    /* the conversation being read */
    bool conv_involved, ep_agent, ep_bot, conv_resolved, conv_pending;
    int64_t resolved_at; /* a candidate: resolved with the bot and no agent; 0 none */
};

static void settle(struct report *p)
{
    if (!p->resolved_at) return;
    if (p->now_ms - p->resolved_at >= p->window_ms)
        p->conv_resolved = true;
    else
        p->conv_pending = true;
    p->resolved_at = 0;
}

static int report_event(void *opaque, const char *conv, int64_t seq, const char *json, size_t len)
{
    (void)conv;
    (void)seq;
    struct report *p = opaque;
    json_t *ev = json_loadb(json, len, 0, NULL);
    const char *type = ev ? oh_event_get_type(ev) : NULL;
    const json_t *data = ev ? oh_event_data(ev) : NULL;
    const char *author =
        json_string_value(json_object_get(json_object_get(data, "author"), "kind"));
    int64_t t = 0;
    oh_time_parse(json_string_value(json_object_get(ev, "time")), &t);
    if (!type) {
        json_decref(ev);
        return 0;
    }
    if (author && strcmp(author, "bot") == 0) p->conv_involved = p->ep_bot = true;
    if (strcmp(type, OH_EV_OUTBOUND) == 0 && author && strcmp(author, "agent") == 0) {
        if (!json_is_true(json_object_get(data, "internal"))) p->ep_agent = true;
        const char *src =
            json_string_value(json_object_get(json_object_get(data, "suggestion"), "source"));
        if (src) {
            json_t *v = json_object_get(p->used, src);
            json_object_set_new(p->used, src, json_integer(json_integer_value(v) + 1));
        }
    } else if (strcmp(type, OH_EV_UPDATED) == 0) {
        const char *reason = json_string_value(json_object_get(data, "reason"));
        const char *status =
            json_string_value(json_object_get(json_object_get(data, "changes"), "status"));
        if (status && strcmp(status, "bot") == 0) p->conv_involved = p->ep_bot = true;
        if (reason && strncmp(reason, "handoff:", 8) == 0) {
            json_t *v = json_object_get(p->handed_off, reason + 8);
            json_object_set_new(p->handed_off, reason + 8, json_integer(json_integer_value(v) + 1));
        }
        if (status && strcmp(status, "resolved") == 0) {
            settle(p);
            if (p->ep_bot && !p->ep_agent) p->resolved_at = t ? t : p->now_ms;
        } else if (status && strcmp(status, "open") == 0 && reason &&
                   strcmp(reason, "inbound") == 0) {
            /* re-opened: within the window the bot did not resolve it */
            if (p->resolved_at && t - p->resolved_at < p->window_ms) p->resolved_at = 0;
            settle(p);
            p->ep_agent = p->ep_bot = false; /* a new episode */
        }
    }
    json_decref(ev);
    return 0;
}

static int report_conv(void *opaque, const struct oh_conversation *c)
{
    struct report *p = opaque;
    json_array_append_new(p->ids, json_string(c->id));
    return json_array_size(p->ids) >= REPORT_CONVS;
}

static void report_work(void *opaque)
{
    struct req *r = opaque;
    oh_store *st = r->gw->hub->store;
    struct report p = {
        .st = st,
        .window_ms = oh_config_int(r->gw->hub->cfg, "bot.reopen_window_s") * 1000,
        .now_ms = oh_now_ms(),
        .ids = json_array(),
        .handed_off = json_pack("{s:i, s:i, s:i, s:i}", "asked_for_human", 0, "frustrated", 0,
                                "low_confidence", 0, "max_turns", 0),
        .used = json_pack("{s:i, s:i, s:i}", "kb", 0, "llm", 0, "canned", 0),
    };
    int rc = p.ids && p.handed_off && p.used
                 ? oh_store_conversations(st, 0, REPORT_CONVS, report_conv, &p)
                 : OH_ENOMEM;
    size_t i;
    json_t *v;
    json_array_foreach(p.ids, i, v)
    {
        if (rc) break;
        p.conv_involved = p.ep_agent = p.ep_bot = p.conv_resolved = p.conv_pending = false;
        p.resolved_at = 0;
        rc = oh_store_history(st, json_string_value(v), 0, REPORT_EVENTS, report_event, &p);
        if (rc == OH_ENOTFOUND) rc = 0;
        settle(&p);
        p.conversations++;
        p.involved += p.conv_involved;
        p.resolved += p.conv_resolved;
        p.resolved_pending += !p.conv_resolved && p.conv_pending;
    }
    if (rc) {
        gw_reply_store_error(r, rc);
        json_decref(p.handed_off);
        json_decref(p.used);
    } else {
        gw_reply_json(r, 200,
                      json_pack("{s:I, s:I, s:I, s:I, s:o, s:o, s:b}", "conversations",
                                (json_int_t)p.conversations, "involved", (json_int_t)p.involved,
                                "resolved_by_bot", (json_int_t)p.resolved, "resolved_in_window",
                                (json_int_t)p.resolved_pending, "handed_off", p.handed_off,
                                "suggestions_used", p.used, "truncated",
                                json_array_size(p.ids) >= REPORT_CONVS));
    }
    json_decref(p.ids);
    gw_complete(r);
}

void gw_report_bot(struct req *r)
{
    snprintf(r->route, sizeof r->route, "/v1/reports/bot");
    if (strcmp(r->method, "GET") != 0)
        gw_reply_error(r, 405, "method_not_allowed", "use GET");
    else
        gw_async(r, report_work);
}
