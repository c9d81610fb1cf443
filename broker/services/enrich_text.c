/* enrich_text.c - the enriched event of a scored message as a tree and as
 * its record text, written in the order the tree dumps, the raise command
 * and the triage metrics (enrich_text.h). */
#include "services/enrich_text.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/convstate.h"
#include "core/event.h"
#include "core/hub_int.h"
#include "core/json_dump.h"
#include "core/metrics.h"
#include "core/oh.h"

bool oh_triage_inline(const struct oh_hub *hub)
{
    return hub->run_sync && oh_config_bool(hub->cfg, "triage.enabled") &&
           oh_config_bool(hub->cfg, "triage.inline") && oh_hub_runs(hub, "enrich");
}

void oh_triage_metrics_describe(void)
{
    oh_metrics_describe("omnihub_triage_messages_total",
                        "customer messages scored by triage, by the priority found");
    oh_metrics_describe("omnihub_triage_raises_total",
                        "priority raises triage asked for (the reducer never lowers)");
}

void oh_triage_metrics_count(enum oh_triage_priority p, bool raise)
{
    if (raise) {
        oh_metrics_inc("omnihub_triage_raises_total", "", 1);
        return;
    }
    char lab[40];
    snprintf(lab, sizeof lab, "priority=\"%s\"", oh_triage_priority_name(p));
    oh_metrics_inc("omnihub_triage_messages_total", lab, 1);
}

long oh_enriched_milli(double sentiment)
{
    return (long)(sentiment * 1000 + (sentiment < 0 ? -0.5 : 0.5));
}

/* Sets KEY of O to V (taken; NULL-safe), without the checks json_object_set
 * makes: keys are literals, strings came checked from the parsed record.
 * Chained with ||: the members keep their order. */
static int put(json_t *o, const char *key, json_t *v)
{
    return json_object_set_new_nocheck(o, key, v);
}

json_t *oh_triage_raise_cmd(const char *message, const char *conv, const char *channel,
                            const char *account, enum oh_triage_priority p, int64_t time_ms)
{
    char cid[OH_ID_MAX];
    oh_event_id(cid, "triage", message, NULL);
    json_t *data = json_object(), *author = json_object();
    int bad = !data || !author;
    if (!bad)
        bad = put(author, "kind", json_string_nocheck("system")) ||
              put(author, "id", json_string_nocheck("triage")) ||
              put(data, "conversation_id", json_string_nocheck(conv)) ||
              put(data, "channel", json_string_nocheck(channel)) ||
              put(data, "account", json_string_nocheck(account)) ||
              put(data, "op", json_string_nocheck("raise_priority")) ||
              put(data, "priority", json_string_nocheck(oh_triage_priority_name(p))) ||
              put(data, "author", json_incref(author));
    json_decref(author);
    if (bad) {
        json_decref(data);
        return NULL;
    }
    return oh_event_new(OH_EV_COMMAND, cid, time_ms, data);
}

json_t *oh_enriched_event(const struct oh_enriched *x)
{
    json_t *data = json_object();
    if (!data) return NULL;
    /* the members in the order the scorer has always written them */
    int bad = put(data, "conversation_id", json_string_nocheck(x->conv)) ||
              put(data, "channel", json_string_nocheck(x->channel)) ||
              put(data, "account", json_string_nocheck(x->account)) ||
              put(data, "message_event_id", json_string_nocheck(x->message)) ||
              put(data, "frustrated", json_boolean(x->t->frustrated)) ||
              put(data, "sentiment", json_real((double)x->milli / 1000)) ||
              put(data, "priority", json_string_nocheck(oh_triage_priority_name(x->t->priority))) ||
              put(data, "wants_human", json_boolean(x->t->wants_human)) ||
              put(data, "language", json_string_nocheck(x->t->language));
    if (bad) {
        json_decref(data);
        return NULL;
    }
    return oh_event_new(OH_EV_ENRICHED, x->id, x->time_ms, data);
}

#define PUT_LIT(w, lit) (oh_json_buf_put(&(w)->buf, lit, sizeof lit - 1) == 0)

/* S as oh_json_dump writes a string: quoted when QUOTED, else escaped only
 * (a part of a longer string). False also when S is not UTF-8 (never from a
 * parsed record). */
static bool put_str(struct oh_enriched_writer *w, const char *s, bool quoted)
{
    struct oh_json_buf *b = &w->buf;
    size_t at = b->len;
    if (oh_json_buf_string(b, s, strlen(s))) return false;
    if (!quoted) {
        memmove(b->p + at, b->p + at + 1, b->len - at - 2);
        b->len -= 2;
    }
    return true;
}

static bool put_cstr(struct oh_enriched_writer *w, const char *s)
{
    return put_str(w, s, true);
}

/* What oh_json_dump writes of the real MILLI / 1000: jansson's own text
 * (oh_json_dump has jansson write reals), kept in W per value, or in TMP
 * outside the scorer's range. NULL when out of memory. */
static const char *real_text(struct oh_enriched_writer *w, long milli, char tmp[64])
{
    char *slot = milli >= -OH_ENRICHED_MILLI_MAX && milli <= OH_ENRICHED_MILLI_MAX
                     ? w->reals[milli + OH_ENRICHED_MILLI_MAX]
                     : NULL;
    if (slot && *slot) return slot;
    json_t *r = json_real((double)milli / 1000);
    char *s = r ? json_dumps(r, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(r);
    if (!s || strlen(s) >= 64) { /* %.17g is at most 24 bytes */
        free(s);
        return NULL;
    }
    char *out = slot && strlen(s) < sizeof w->reals[0] ? slot : tmp;
    strcpy(out, s);
    free(s);
    return out;
}

int oh_enriched_text(struct oh_enriched_writer *w, const struct oh_enriched *x)
{
    char when[32], tmp[64];
    const char *sentiment = real_text(w, x->milli, tmp);
    /* oh_event_new's source: an empty account shows as "-" */
    const char *account = *x->account ? x->account : "-";
    const struct oh_triage *t = x->t;
    oh_time_rfc3339(when, x->time_ms);
    size_t start = w->buf.len;
    bool ok = sentiment && PUT_LIT(w, "{\"specversion\":\"1.0\",\"id\":") && put_cstr(w, x->id) &&
              PUT_LIT(w, ",\"source\":\"/omnihub/") && put_str(w, x->channel, false) &&
              PUT_LIT(w, "/") && put_str(w, account, false) &&
              PUT_LIT(w, "\",\"type\":\"" OH_EV_ENRICHED "\",\"time\":") && put_cstr(w, when) &&
              PUT_LIT(w, ",\"subject\":") && put_cstr(w, x->conv) &&
              PUT_LIT(w, ",\"datacontenttype\":\"application/json\",\"data\":{"
                         "\"conversation_id\":") &&
              put_cstr(w, x->conv) && PUT_LIT(w, ",\"channel\":") && put_cstr(w, x->channel) &&
              PUT_LIT(w, ",\"account\":") && put_cstr(w, x->account) &&
              PUT_LIT(w, ",\"message_event_id\":") && put_cstr(w, x->message) &&
              (t->frustrated ? PUT_LIT(w, ",\"frustrated\":true,\"sentiment\":")
                             : PUT_LIT(w, ",\"frustrated\":false,\"sentiment\":")) &&
              oh_json_buf_put(&w->buf, sentiment, strlen(sentiment)) == 0 &&
              PUT_LIT(w, ",\"priority\":") && put_cstr(w, oh_triage_priority_name(t->priority)) &&
              (t->wants_human ? PUT_LIT(w, ",\"wants_human\":true,\"language\":")
                              : PUT_LIT(w, ",\"wants_human\":false,\"language\":")) &&
              put_cstr(w, t->language) && PUT_LIT(w, "}}");
    if (!ok) {
        w->buf.len = start;
        return OH_ENOMEM;
    }
    return OH_OK;
}

void oh_enriched_writer_free(struct oh_enriched_writer *w)
{
    if (!w) return;
    free(w->buf.p);
    w->buf = (struct oh_json_buf){0};
}
