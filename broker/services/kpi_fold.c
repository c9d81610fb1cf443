/* kpi_fold.c - one conversation's episode figures, event by event: FRT,
 * bot FRT, NRT, handle time, resolution, breaches and bot involvement, as
 * CONTRACT part 2 defines them. Pure; the kpi service keeps one per
 * conversation and rebuilds it from the stored history when it has none. */
#include <stdio.h>
#include <string.h>
#include "core/convstate.h"
#include "core/event.h"
#include "services/kpi_fold.h"

bool oh_kpi_wants(const char *type)
{
    return !type || strcmp(type, OH_EV_INBOUND) == 0 || strcmp(type, OH_EV_OUTBOUND) == 0 ||
           strcmp(type, OH_EV_UPDATED) == 0;
}

void oh_kpi_conv_init(struct oh_kpi_conv *c, const char *id, const char *channel)
{
    memset(c, 0, sizeof *c);
    snprintf(c->id, sizeof c->id, "%s", id);
    snprintf(c->channel, sizeof c->channel, "%s", channel ? channel : "");
    snprintf(c->status, sizeof c->status, "open");
    c->state_episode = 1;
    c->aht_since_ms = c->nrt_since_ms = c->first_inbound_ms = -1;
}

static bool open_assigned(const struct oh_kpi_conv *c)
{
    return strcmp(c->status, "open") == 0 && c->assignee[0];
}

/* Starts an episode at T: its number is the state's, or the next one when
 * the conversation was resolved (an inbound message re-opens it before the
 * conversation.updated that says so). The previous episode learns it was
 * reopened. */
static void begin(struct oh_kpi_conv *c, int64_t t, bool reopening, struct oh_kpi_out *out)
{
    c->in_episode = true;
    memset(&c->cur, 0, sizeof c->cur);
    snprintf(c->cur.conversation_id, sizeof c->cur.conversation_id, "%s", c->id);
    snprintf(c->cur.channel, sizeof c->cur.channel, "%s", c->channel);
    c->cur.episode = c->state_episode + (reopening ? 1 : 0);
    c->cur.frt_ms = c->cur.bot_frt_ms = c->cur.aht_ms = c->cur.reopened_ms = -1;
    c->first_inbound_ms = -1;
    c->first_event_ms = t;
    c->nrt_since_ms = -1;
    c->last_outbound = false;
    c->aht_since_ms = open_assigned(c) ? t : -1;
    if (c->aht_since_ms >= 0) c->cur.aht_ms = 0;
    if (c->have_prev && c->prev.reopened_ms < 0 && c->prev.episode < c->cur.episode) {
        c->prev.reopened_ms = t;
        out->rows[out->nrows++] = c->prev;
    }
}

static void finish(struct oh_kpi_conv *c, int64_t t, struct oh_kpi_out *out)
{
    struct oh_store_episode *e = &c->cur;
    e->resolved_ms = t;
    e->start_ms = c->first_inbound_ms >= 0 ? c->first_inbound_ms : c->first_event_ms;
    if (c->assignee[0]) snprintf(e->agent, sizeof e->agent, "%s", c->assignee);
    snprintf(e->team, sizeof e->team, "%s", c->team);
    if (e->aht_ms >= 0) out->handle_s = (double)e->aht_ms / 1000.0;
    c->in_episode = false;
    c->have_prev = true;
    c->prev = *e;
    out->rows[out->nrows++] = *e;
}

/* What the fold reads of one event: the body's fields, or the record's
 * metadata (DATA NULL then: only for what needs nothing more). */
struct event {
    const char *type;
    const char *time;   /* RFC 3339 */
    const char *author; /* data.author.kind */
    bool internal;      /* data.internal is true */
    const json_t *data; /* for data.channel and conversation.updated */
};

static void message(struct oh_kpi_conv *c, const struct event *e, bool inbound, int64_t t,
                    struct oh_kpi_out *out)
{
    if (e->internal) return; /* a private note */
    if (inbound) {
        if (!c->in_episode) begin(c, t, strcmp(c->status, "resolved") == 0, out);
        if (c->first_inbound_ms < 0) c->first_inbound_ms = t;
        /* a later inbound message that follows an outbound one waits for
         * the next agent message (NRT), once the first response was made */
        if (c->last_outbound && c->cur.frt_ms >= 0 && c->nrt_since_ms < 0) c->nrt_since_ms = t;
        c->last_outbound = false;
        return;
    }
    if (!c->in_episode) return; /* between resolved and the next inbound message */
    const char *author = e->author;
    c->last_outbound = true;
    if (author && strcmp(author, "agent") == 0) {
        c->cur.agent_replied = true;
        if (c->cur.frt_ms < 0 && c->first_inbound_ms >= 0) {
            c->cur.frt_ms = t - c->first_inbound_ms;
            out->frt_s = (double)c->cur.frt_ms / 1000.0;
        }
        if (c->nrt_since_ms >= 0) {
            c->cur.nrt_sum_ms += t - c->nrt_since_ms;
            c->cur.nrt_count++;
            c->nrt_since_ms = -1;
        }
    } else if (author && strcmp(author, "bot") == 0) {
        c->cur.bot_involved = true;
        if (c->cur.bot_frt_ms < 0 && c->first_inbound_ms >= 0)
            c->cur.bot_frt_ms = t - c->first_inbound_ms;
    }
}

static void copy_state(char *dst, size_t len, const json_t *v)
{
    snprintf(dst, len, "%s", json_is_string(v) ? json_string_value(v) : "");
}

static void updated(struct oh_kpi_conv *c, const json_t *data, int64_t t, struct oh_kpi_out *out)
{
    const json_t *state = json_object_get(data, "state");
    if (!json_is_object(state)) return;
    bool was = open_assigned(c);
    const char *status = json_string_value(json_object_get(state, "status"));
    if (status) copy_state(c->status, sizeof c->status, json_object_get(state, "status"));
    copy_state(c->assignee, sizeof c->assignee, json_object_get(state, "assignee"));
    copy_state(c->team, sizeof c->team, json_object_get(state, "team"));
    json_int_t ep = json_integer_value(json_object_get(state, "episode"));
    bool resolved = strcmp(c->status, "resolved") == 0;
    /* re-opened without an inbound message (an agent's PATCH) */
    if (!c->in_episode && !resolved && ep > c->state_episode) {
        c->state_episode = ep;
        begin(c, t, false, out);
        return;
    }
    if (ep > 0) c->state_episode = ep;
    if (!c->in_episode) return;
    bool now = open_assigned(c);
    if (was && !now) {
        c->cur.aht_ms = (c->cur.aht_ms > 0 ? c->cur.aht_ms : 0) + (t - c->aht_since_ms);
        c->aht_since_ms = -1;
    } else if (!was && now) {
        c->aht_since_ms = t;
        if (c->cur.aht_ms < 0) c->cur.aht_ms = 0;
    }
    if (c->assignee[0]) snprintf(c->cur.agent, sizeof c->cur.agent, "%s", c->assignee);
    const char *reason = json_string_value(json_object_get(data, "reason"));
    if (reason && strncmp(reason, "sla_breach:", 11) == 0) c->cur.breached = true;
    if (resolved) finish(c, t, out);
}

static void fold(struct oh_kpi_conv *c, const struct event *e, int64_t seq, struct oh_kpi_out *out)
{
    out->nrows = 0;
    out->frt_s = out->handle_s = -1;
    if (seq <= c->last_seq) return;
    c->last_seq = seq;
    int64_t t;
    if (!e->type || !e->time || oh_time_parse(e->time, &t)) return;
    if (!c->channel[0])
        copy_state(c->channel, sizeof c->channel, json_object_get(e->data, "channel"));
    if (strcmp(e->type, OH_EV_INBOUND) == 0)
        message(c, e, true, t, out);
    else if (strcmp(e->type, OH_EV_OUTBOUND) == 0)
        message(c, e, false, t, out);
    else if (strcmp(e->type, OH_EV_UPDATED) == 0)
        updated(c, e->data, t, out);
}

void oh_kpi_fold(struct oh_kpi_conv *c, const json_t *ev, int64_t seq, struct oh_kpi_out *out)
{
    const json_t *data = oh_event_data(ev);
    struct event e = {oh_event_get_type(ev), json_string_value(json_object_get(ev, "time")),
                      oh_event_author_kind(ev), json_is_true(json_object_get(data, "internal")),
                      data};
    fold(c, &e, seq, out);
}

bool oh_kpi_fold_meta(struct oh_kpi_conv *c, const struct oh_log_meta *m, struct oh_kpi_out *out)
{
    /* TIME is written together with INTERNAL (oh_log_meta_of): without it
     * the record predates them, or is not an event sync sequenced */
    if (!m->type || !m->time || m->seq < 1) return false;
    bool repeat = m->seq <= c->last_seq;
    if (!repeat && (!c->channel[0] || strcmp(m->type, OH_EV_UPDATED) == 0)) return false;
    struct event e = {m->type, m->time, m->author, m->internal, NULL};
    fold(c, &e, m->seq, out);
    return true;
}
