/* sync_state.c - the desk's conversation state inside the sync service, the
 * one sequencer: commands and inbound messages go through the reducer
 * (core/convstate.c) in log order, against the states the store had when the
 * batch began, kept up to date in memory through the batch. Runs on the
 * sync service's thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "services/sync_state.h"
#include "core/hub_int.h"
#include "core/convstate.h"
#include "core/json_dump.h"
#include "core/metrics.h"
#include "core/triage.h"
#include "services/enrich_text.h"

struct oh_sync_desk {
    oh_hub *hub;
    /* conversation id -> {ids: [event ids of the batch not yet known to be
     * new], new: events known to be new (sequenced by this batch), and once
     * loaded: state, head, channel, account, exists} */
    json_t *convs;
    json_t *seen;  /* event and command ids of the batch */
    json_t *keep;  /* strings the batch's items borrow (outcome ids, bodies) */
    json_t *done;  /* ids of the outcomes the batch records */
    json_t *woken; /* "conv until" -> when its wake was appended (ms) */
    /* conversations known to be open (or bot) after the last committed batch:
     * an inbound message there changes nothing, so its state is not loaded.
     * Sync is the only writer of the state, per partition: forgotten when
     * the partitions move, or when a batch is given up. */
    json_t *open;
    /* conversation id -> its priority's rank (core/triage.h) after the last
     * committed batch, kept and forgotten as OPEN is (inline triage) */
    json_t *prio;
    /* inline triage (triage.inline, this process runs sync and enrich):
     * customers' messages are scored here, their enriched events and
     * raises sequenced with them, in the same batch */
    struct oh_enriched_writer *out;
    int64_t scanned_ms;
};

struct oh_sync_desk *oh_sync_desk_new(oh_hub *hub)
{
    struct oh_sync_desk *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->hub = hub;
    d->convs = json_object();
    d->seen = json_object();
    d->keep = json_array();
    d->done = json_array();
    d->woken = json_object();
    d->open = json_object();
    d->prio = json_object();
    if (oh_triage_inline(hub)) {
        if (!(d->out = calloc(1, sizeof *d->out))) {
            oh_sync_desk_free(d);
            return NULL;
        }
        oh_triage_metrics_describe();
    }
    if (!d->convs || !d->seen || !d->keep || !d->done || !d->woken || !d->open || !d->prio) {
        oh_sync_desk_free(d);
        return NULL;
    }
    return d;
}

void oh_sync_desk_free(struct oh_sync_desk *d)
{
    if (!d) return;
    json_decref(d->convs);
    json_decref(d->seen);
    json_decref(d->keep);
    json_decref(d->done);
    json_decref(d->woken);
    json_decref(d->open);
    json_decref(d->prio);
    if (d->out) oh_enriched_writer_free(d->out);
    free(d->out);
    free(d);
}

/* A string the items may borrow until the batch is done. */
static const char *keep(struct oh_sync_desk *d, json_t *s)
{
    json_array_append_new(d->keep, s);
    return json_string_value(s);
}

/* Waits out an unavailable store (as the batch's own store write does):
 * false when the hub stops first. */
static bool retry(struct oh_sync_desk *d, int rc, const char *what, int *delay_ms)
{
    if (atomic_load(&d->hub->stopping)) return false;
    OH_WARN("sync", "%s: %s; retrying in %d ms", what, oh_strerror(rc), *delay_ms);
    usleep((useconds_t)*delay_ms * 1000);
    *delay_ms = *delay_ms < 5000 ? *delay_ms * 2 : 5000;
    return true;
}

static json_t *entry(struct oh_sync_desk *d, const char *conv)
{
    json_t *e = json_object_get(d->convs, conv);
    if (!e) { /* {ids: [], new: 0}, built without json_pack's format parsing */
        e = json_object();
        json_object_set_new_nocheck(e, "ids", json_array());
        json_object_set_new_nocheck(e, "new", json_integer(0));
        json_object_set_new(d->convs, conv, e);
    }
    return e;
}

/* Loads the conversation's stored state into E once (EV: the record that
 * needs it, for a conversation the store does not know yet). */
static int load(struct oh_sync_desk *d, json_t *e, const char *conv, const json_t *ev)
{
    if (json_object_get(e, "state")) return 0;
    struct oh_conversation c;
    int rc, delay_ms = 100;
    while ((rc = oh_store_conversation_get(d->hub->store, conv, &c)) && rc != OH_ENOTFOUND)
        if (!retry(d, rc, "cannot read a conversation's state", &delay_ms)) return OH_ECLOSED;
    if (rc == OH_ENOTFOUND) {
        const json_t *data = oh_event_data(ev);
        const char *cid =
            json_string_value(json_object_get(json_object_get(data, "contact"), "id"));
        const char *ch = json_string_value(json_object_get(data, "channel"));
        const char *acct = json_string_value(json_object_get(data, "account"));
        /* with contacts on, the contact is known once the conversation is stored */
        if (oh_config_bool(d->hub->cfg, "contacts.enabled")) cid = NULL;
        json_object_set_new(e, "state", oh_convstate_new(cid ? cid : ""));
        json_object_set_new(e, "fresh", json_true()); /* the store has not seen it */
        json_object_set_new(e, "head", json_integer(0));
        json_object_set_new(e, "channel", json_string(ch ? ch : ""));
        json_object_set_new(e, "account", json_string(acct ? acct : ""));
        /* a conversation an earlier record of the batch creates exists */
        if (!json_object_get(e, "exists")) json_object_set_new(e, "exists", json_false());
        return 0;
    }
    const char *contact = c.contact_ref[0] ? c.contact_ref : c.contact_id;
    json_object_set_new(e, "state",
                        oh_convstate_make(c.status, c.assignee, c.team, c.priority, c.labels,
                                          c.snoozed_until_ms, contact, c.episode));
    json_object_set_new(e, "head", json_integer(c.head));
    json_object_set_new(e, "channel", json_string(c.channel));
    json_object_set_new(e, "account", json_string(c.account));
    json_object_set_new(e, "exists", json_true());
    return 0;
}

/* Whether event ID of CONV is stored already: 1 yes, 0 no, OH_ECLOSED. */
static int stored(struct oh_sync_desk *d, const char *conv, const char *id)
{
    int rc, delay_ms = 100;
    while ((rc = oh_store_event_get(d->hub->store, conv, id, NULL, NULL)) && rc != OH_ENOTFOUND)
        if (!retry(d, rc, "cannot look an event up", &delay_ms)) return OH_ECLOSED;
    return rc == OH_OK;
}

static void count_new(json_t *e, int64_t n)
{
    json_object_set_new(e, "new", json_integer(json_integer_value(json_object_get(e, "new")) + n));
}

/* The conversation's head as the batch leaves it so far: the stored head
 * plus the batch's earlier events that are not repeats of stored ones
 * (looked up only when a command asks for If-Match). */
static int head_now(struct oh_sync_desk *d, json_t *e, const char *conv, int64_t *head)
{
    json_t *ids = json_object_get(e, "ids"), *v;
    size_t i;
    json_array_foreach(ids, i, v)
    {
        int s = stored(d, conv, json_string_value(v));
        if (s < 0) return s;
        if (!s) count_new(e, 1);
    }
    json_array_clear(ids);
    *head = json_integer_value(json_object_get(e, "head")) +
            json_integer_value(json_object_get(e, "new"));
    return 0;
}

/* The sequenced event of a change: its id from the cause's (a replay of
 * the cause is dropped by id, and so is this). */
static json_t *updated(const char *cause, const char *kind, const char *conv, json_t *e,
                       json_t *changes, const char *reason, json_t *author)
{
    char id[OH_ID_MAX];
    oh_event_id(id, kind, cause, NULL);
    json_t *data =
        json_pack("{s:s, s:s, s:s, s:o, s:o, s:s, s:O}", "conversation_id", conv, "channel",
                  json_string_value(json_object_get(e, "channel")), "account",
                  json_string_value(json_object_get(e, "account")), "changes", changes, "state",
                  json_deep_copy(json_object_get(e, "state")), "reason", reason, "author", author);
    return data ? oh_event_new(OH_EV_UPDATED, id, 0, data) : NULL;
}

static void outcome(struct oh_sync_desk *d, struct oh_store_item *it, const char *id,
                    const char *conv, int code, const json_t *body)
{
    char *text = oh_json_dump(body, NULL);
    it->outcome_id = keep(d, json_string(id));
    it->outcome_conv = keep(d, json_string(conv));
    it->outcome_code = code;
    it->outcome_body = keep(d, json_string(text ? text : "{}"));
    free(text);
    json_array_append_new(d->done, json_string(id));
}

static int command(struct oh_sync_desk *d, struct oh_store_item *items, size_t *n, json_t *ev,
                   int32_t partition, int64_t offset)
{
    const char *conv = oh_event_subject(ev), *id = oh_event_get_id(ev);
    const json_t *cmd = oh_event_data(ev);
    int code, rc, delay_ms = 100;
    char body[64];
    /* decided before (the log repeated the record): its outcome stands */
    while ((rc = oh_store_command_result(d->hub->store, conv, id, &code, body, sizeof body)) &&
           rc != OH_ENOTFOUND)
        if (!retry(d, rc, "cannot read a command's outcome", &delay_ms)) return OH_ECLOSED;
    if (rc == OH_OK) return 0;
    json_t *e = entry(d, conv);
    if ((rc = load(d, e, conv, ev))) return rc;
    struct oh_store_item *it = &items[*n];
    *it =
        (struct oh_store_item){.src_partition = partition, .src_offset = offset, .want_text = true};
    if (!json_is_true(json_object_get(e, "exists"))) {
        json_t *b = json_pack("{s:{s:s, s:s}}", "error", "code", "not_found", "message",
                              "no such conversation");
        outcome(d, it, id, conv, 404, b);
        json_decref(b);
        (*n)++;
        return 0;
    }
    int64_t head = 0;
    if (json_object_get(cmd, "if_match") && (rc = head_now(d, e, conv, &head))) return rc;
    struct oh_convstate_result res;
    oh_convstate_command(json_object_get(e, "state"), head, cmd, &res);
    if (res.code == 200 && res.changes) {
        json_t *author = json_object_get(cmd, "author");
        json_t *sys = json_pack("{s:s, s:s}", "kind", "system", "id", "sync");
        it->event = updated(id, "updated", conv, e, res.changes, res.reason,
                            json_is_object(author) ? author : sys);
        res.changes = NULL; /* taken */
        json_decref(sys);
        count_new(e, 1);
    }
    outcome(d, it, id, conv, res.code, res.body);
    oh_convstate_result_clear(&res);
    (*n)++;
    return 0;
}

/* A conversation an inbound message creates while the bot is enabled
 * starts in status bot (CONTRACT part 2): a conversation.updated after the
 * message, its id from the message's. */
static int bot_start(struct oh_sync_desk *d, struct oh_store_item *items, size_t *n, json_t *e,
                     json_t *ev, int32_t partition, int64_t offset)
{
    const char *id = oh_event_get_id(ev), *conv = oh_event_subject(ev);
    json_t *state = json_object_get(e, "state");
    json_object_set_new(state, "status", json_string("bot"));
    count_new(e, 1); /* the message */
    json_t *author = json_pack("{s:s, s:s}", "kind", "system", "id", "sync");
    json_t *up =
        updated(id, "botstart", conv, e, json_pack("{s:s}", "status", "bot"), "bot", author);
    json_decref(author);
    if (up) {
        items[(*n)++] = (struct oh_store_item){
            .event = up, .src_partition = partition, .src_offset = offset, .want_text = true};
        count_new(e, 1);
    }
    return 0;
}

/* Conversation CONV's priority rank (core/triage.h) where the batch has got
 * to, in *RANK: from its state in the batch, else as the last committed
 * batch left it, else from the store. 0 or OH_ECLOSED. */
static int priority_now(struct oh_sync_desk *d, json_t *e, const char *conv, const json_t *ev,
                        int *rank)
{
    json_t *known = json_object_get(e, "state") ? NULL : json_object_get(d->prio, conv);
    if (known) {
        *rank = (int)json_integer_value(known);
        return 0;
    }
    int rc = load(d, e, conv, ev);
    if (rc) return rc;
    *rank = oh_triage_priority_parse(
        json_string_value(json_object_get(json_object_get(e, "state"), "priority")));
    return 0;
}

/* Inline triage of customer message EV (new to the batch, its item added):
 * its enriched event follows it, and when it is more urgent than its
 * conversation, the raise that command() decides. 0 or OH_ECLOSED. */
static int triage(struct oh_sync_desk *d, struct oh_store_item *items, size_t *n, json_t *e,
                  const json_t *ev, int32_t partition, int64_t offset)
{
    const json_t *data = oh_event_data(ev), *text = json_object_get(data, "text");
    const char *kind = json_string_value(json_object_get(json_object_get(data, "author"), "kind"));
    const char *id = oh_event_get_id(ev), *conv = oh_event_subject(ev);
    const char *channel = json_string_value(json_object_get(data, "channel"));
    const char *account = json_string_value(json_object_get(data, "account"));
    if (!kind || strcmp(kind, "customer") != 0 || !channel || !account) return 0;
    struct oh_triage t;
    /* the email connector gives the text with the quoted history trimmed,
     * and the subject beside it */
    oh_triage_classify(json_is_string(text) ? json_string_value(text) : "",
                       json_string_length(text),
                       json_string_value(json_object_get(data, "subject")), &t);
    oh_triage_metrics_count(t.priority, false);
    char eid[OH_ID_MAX];
    oh_event_id(eid, "enriched", id, NULL);
    struct oh_enriched x = {.id = eid,
                            .message = id,
                            .conv = conv,
                            .channel = channel,
                            .account = account,
                            .t = &t,
                            .milli = oh_enriched_milli(t.sentiment),
                            .time_ms = oh_now_ms()};
    d->out->buf.len = 0;
    json_t *enr = oh_enriched_event(&x), *raw = NULL;
    if (enr && oh_enriched_text(d->out, &x) == OH_OK)
        raw = json_stringn_nocheck(d->out->buf.p, d->out->buf.len);
    if (!raw) {
        json_decref(enr);
        OH_ERROR("sync", "out of memory: message %s of %s not scored", id, conv);
        return 0;
    }
    /* stored as this text with seq and epoch appended, no dump of the tree */
    items[(*n)++] = (struct oh_store_item){.event = enr,
                                           .src_partition = partition,
                                           .src_offset = offset,
                                           .want_text = true,
                                           .raw = keep(d, raw),
                                           .raw_len = d->out->buf.len};
    json_array_append_new(json_object_get(e, "ids"), json_string_nocheck(eid));
    int have, rc = priority_now(d, e, conv, ev, &have);
    if (rc) return rc;
    bool raise = have < 0 || (int)t.priority > have;
    /* a repeat of a message stored before this batch was scored when it came */
    if (raise && (rc = stored(d, conv, id)) != 0) return rc < 0 ? rc : 0;
    json_t *cmd = raise ? oh_triage_raise_cmd(id, conv, channel, account, t.priority, 0) : NULL;
    if (cmd && !json_object_get(d->seen, oh_event_get_id(cmd))) {
        json_object_set_new_nocheck(d->seen, oh_event_get_id(cmd), json_true());
        oh_triage_metrics_count(t.priority, true);
        rc = command(d, items, n, cmd, partition, offset);
    }
    json_decref(cmd);
    return rc;
}

/* What new event EV of TYPE causes in the desk's state (a re-open, the bot
 * taking a new conversation), its items after EV's. */
static int follow(struct oh_sync_desk *d, struct oh_store_item *items, size_t *n, json_t *e,
                  json_t *ev, const char *type, int32_t partition, int64_t offset)
{
    const char *id = oh_event_get_id(ev), *conv = oh_event_subject(ev);
    if (!json_is_true(json_object_get(e, "exists")))
        json_object_set_new_nocheck(e, "exists", json_true());
    if (strcmp(type, OH_EV_INBOUND) != 0) {
        json_array_append_new(json_object_get(e, "ids"), json_string_nocheck(id));
        return 0;
    }
    if (!json_object_get(e, "state") && json_object_get(d->open, conv)) {
        json_array_append_new(json_object_get(e, "ids"), json_string_nocheck(id));
        return 0; /* stays open */
    }
    int rc = load(d, e, conv, ev);
    if (rc) return rc;
    json_t *state = json_object_get(e, "state");
    if (json_is_true(json_object_get(e, "fresh"))) {
        json_object_del(e, "fresh");
        if (oh_config_bool(d->hub->cfg, "bot.enabled"))
            return bot_start(d, items, n, e, ev, partition, offset);
    }
    const char *st = json_string_value(json_object_get(state, "status"));
    if (!st || (strcmp(st, "pending") && strcmp(st, "snoozed") && strcmp(st, "resolved"))) {
        json_array_append_new(json_object_get(e, "ids"), json_string_nocheck(id));
        return 0;
    }
    /* only a message seen for the first time re-opens */
    int s = stored(d, conv, id);
    if (s < 0) return s;
    if (s) return 0;
    count_new(e, 1);
    json_t *changes = oh_convstate_inbound(state);
    if (!changes) return 0;
    json_t *author = json_pack("{s:s, s:s}", "kind", "system", "id", "sync");
    json_t *up = updated(id, "reopen", conv, e, changes, "inbound", author);
    json_decref(author);
    if (up) {
        items[(*n)++] = (struct oh_store_item){
            .event = up, .src_partition = partition, .src_offset = offset, .want_text = true};
        count_new(e, 1);
    }
    return 0;
}

int oh_sync_desk_add(struct oh_sync_desk *d, struct oh_store_item *items, size_t *n, json_t *ev,
                     int32_t partition, int64_t offset)
{
    const char *type = oh_event_get_type(ev), *id = oh_event_get_id(ev);
    const char *conv = oh_event_subject(ev);
    bool repeat = json_object_get(d->seen, id) != NULL;
    if (!repeat) json_object_set_new_nocheck(d->seen, id, json_true()); /* a checked event id */
    if (strcmp(type, OH_EV_COMMAND) == 0) {
        int rc = repeat ? 0 : command(d, items, n, ev, partition, offset);
        json_decref(ev); /* never stored */
        return rc;
    }
    items[(*n)++] = (struct oh_store_item){
        .event = ev, .src_partition = partition, .src_offset = offset, .want_text = true};
    if (repeat) return 0;
    json_t *e = entry(d, conv);
    int rc = follow(d, items, n, e, ev, type, partition, offset);
    if (rc == 0 && d->out && strcmp(type, OH_EV_INBOUND) == 0)
        rc = triage(d, items, n, e, ev, partition, offset);
    return rc;
}

#define OPEN_KNOWN_MAX 100000

void oh_sync_desk_forget(struct oh_sync_desk *d)
{
    json_object_clear(d->open);
    json_object_clear(d->prio);
}

/* What the committed batch leaves: which of its conversations are open. */
static void note_open(struct oh_sync_desk *d)
{
    const char *conv;
    json_t *e;
    if (json_object_size(d->open) > OPEN_KNOWN_MAX) json_object_clear(d->open);
    if (json_object_size(d->prio) > OPEN_KNOWN_MAX) json_object_clear(d->prio);
    json_object_foreach(d->convs, conv, e)
    {
        json_t *state = json_object_get(e, "state");
        const char *st = json_string_value(json_object_get(state, "status"));
        if (!st) continue;
        if (d->out) {
            int rank =
                oh_triage_priority_parse(json_string_value(json_object_get(state, "priority")));
            json_object_set_new(d->prio, conv, json_integer(rank));
        }
        if (strcmp(st, "open") == 0 || strcmp(st, "bot") == 0) {
            if (!json_object_get(d->open, conv)) json_object_set(d->open, conv, json_true());
        } else
            json_object_del(d->open, conv);
    }
}

void oh_sync_desk_done(struct oh_sync_desk *d, bool committed)
{
    size_t n = json_array_size(d->done);
    if (committed)
        note_open(d);
    else if (json_object_size(d->convs))
        oh_sync_desk_forget(d); /* the states in memory were not stored */
    if (committed && n) {
        const char **ids = calloc(n, sizeof *ids);
        for (size_t i = 0; ids && i < n; i++)
            ids[i] = json_string_value(json_array_get(d->done, i));
        if (ids) oh_hub_outcomes(d->hub, ids, n);
        free(ids);
    }
    json_object_clear(d->convs);
    json_object_clear(d->seen);
    json_array_clear(d->keep);
    json_array_clear(d->done);
}

/* ---- snooze wake ---- */

struct due {
    struct oh_sync_desk *d;
    struct oh_event_list wakes;
    int64_t now;
};

static int due_row(void *opaque, const struct oh_conversation *c)
{
    struct due *u = opaque;
    char key[OH_ID_MAX + 32], until[24], id[OH_ID_MAX];
    snprintf(until, sizeof until, "%lld", (long long)c->snoozed_until_ms);
    snprintf(key, sizeof key, "%s %s", c->id, until);
    if (json_object_get(u->d->woken, key)) return 0; /* on its way */
    json_object_set_new(u->d->woken, key, json_integer(u->now));
    oh_event_id(id, "wake", c->id, until, NULL);
    json_t *data =
        json_pack("{s:s, s:s, s:s, s:s, s:I, s:{s:s, s:s}}", "conversation_id", c->id, "channel",
                  c->channel, "account", c->account, "op", "wake", "until",
                  (json_int_t)c->snoozed_until_ms, "author", "kind", "system", "id", "sync");
    if (data) oh_event_list_push(&u->wakes, oh_event_new(OH_EV_COMMAND, id, 0, data));
    return 0;
}

static void wake_appended(void *opaque, int err)
{
    if (err) OH_WARN("sync", "a snooze wake was not appended (%s); again later", oh_strerror(err));
}

void oh_sync_desk_wake(struct oh_sync_desk *d)
{
    int64_t now = oh_now_ms();
    if (!d->hub->store || now - d->scanned_ms < 1000) return;
    d->scanned_ms = now;
    const char *k;
    json_t *v, *tmp;
    json_object_foreach_safe(d->woken, tmp, k, v)
    {
        if (now - json_integer_value(v) > 10000) json_object_del(d->woken, k);
    }
    struct due u = {d, {0}, now};
    int rc = oh_store_snoozed_due(d->hub->store, now, 256, due_row, &u);
    if (rc) OH_WARN("sync", "cannot look for snoozes that ended: %s", oh_strerror(rc));
    if (u.wakes.n && oh_hub_ingest(d->hub, &u.wakes, wake_appended, NULL) != OH_OK)
        OH_WARN("sync", "snooze wakes not appended; again later");
    oh_event_list_clear(&u.wakes);
}
