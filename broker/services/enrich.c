/* enrich.c - the triage service (CONTRACT part 2, "Triage"): consumes the
 * timeline (group omnihub-enrich), scores each customer's inbound message
 * with oh_triage_classify() and emits what it decides through the ingest
 * path: an omnihub.message.enriched event, and a raise_priority command when
 * the message is more urgent than its conversation. Runs on "oh-enrich". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/hub_int.h"
#include "core/json_pick.h"
#include "core/metrics.h"
#include "core/triage.h"
#include "services/enrich_text.h"
#include "services/service.h"

#define KNOWN_MAX 100000     /* conversations whose priority is remembered */
#define KEEP_MAX  (1u << 20) /* bytes of scratch kept between batches */

/* One scored message, kept until its events are durable. The events are
 * built from it for each attempt to append them, so each is handed to the
 * hub with its only reference: the handoff to sync keeps it without a copy.
 * The enriched event's record text is written once, when it is scored. */
struct decision {
    size_t id, conv, channel, account, eid; /* offsets of NUL-terminated strings in strs */
    size_t text, len;                       /* the enriched event's record in the writer */
    struct oh_triage t;
    long milli; /* the sentiment in thousandths */
    int64_t time_ms;
    bool raise; /* also a raise_priority command */
};

enum { SKIP_MARKED, SKIP_IN_POLL, SKIP_IN_STORE, SKIP_N };
static const char *const skip_label[SKIP_N] = {
    [SKIP_MARKED] = "reason=\"marked\"",
    [SKIP_IN_POLL] = "reason=\"in_poll\"",
    [SKIP_IN_STORE] = "reason=\"in_store\"",
};

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
    /* message event ids whose enriched events the batch holds: sync scored
     * them inline (triage.inline), in the batch that stored them */
    json_t *scored;
    /* sync runs here with triage.inline: a message of the timeline whose
     * enriched event is not in the batch may have it in the store */
    bool inline_here;
    /* customer messages of the batch not scored here, by why:
     * omnihub_enrich_skipped_total{reason} */
    uint64_t skipped[SKIP_N];
    struct decision *dec; /* the batch's decisions */
    size_t ndec, capdec;
    char *strs; /* their strings */
    size_t nstrs, capstrs;
    char *pick; /* the strings picked from the record being read */
    size_t cappick;
    struct oh_enriched_writer out; /* the decisions' enriched records */
    /* per attempt to append: each event's record (NULL: the hub dumps it) */
    const char **tx;
    size_t captx, *txlen, captxlen;
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
    struct oh_json_pick p = {.path = "data.state.priority"};
    if (oh_grow(&e->pick, &e->cappick, r->len + 1, 1, 4096) ||
        oh_json_pick(r->value, r->len, &p, 1, e->pick) != OH_OK)
        return;
    int rank = oh_triage_priority_parse(p.s);
    if (rank >= 0) json_object_set_new(e->known, r->meta.subject, json_integer(rank));
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

/* Copies P (LEN bytes and its NUL) to E->strs; its offset, or -1. */
static ptrdiff_t keep(struct enrich *e, const struct oh_json_pick *p)
{
    if (oh_grow(&e->strs, &e->capstrs, e->nstrs + p->len + 1, 1, 4096)) return -1;
    memcpy(e->strs + e->nstrs, p->s, p->len + 1);
    e->nstrs += p->len + 1;
    return (ptrdiff_t)(e->nstrs - p->len - 1);
}

/* What scoring reads of a message: the members it needs, found in one pass
 * over the record's text (core/json_pick.h), none of the rest built. */
enum { F_TYPE, F_ID, F_CONV, F_KIND, F_CHANNEL, F_ACCOUNT, F_TEXT, F_MAIL_SUBJECT, F_N };
static const char *const fields[F_N] = {
    [F_TYPE] = "type",
    [F_ID] = "id",
    [F_CONV] = "subject",
    [F_KIND] = "data.author.kind",
    [F_CHANNEL] = "data.channel",
    [F_ACCOUNT] = "data.account",
    [F_TEXT] = "data.text",
    [F_MAIL_SUBJECT] = "data.subject",
};

/* The enriched event of D, its strings borrowed from E, in X. */
static const struct oh_enriched *enriched_of(const struct enrich *e, const struct decision *d,
                                             struct oh_enriched *x)
{
    *x = (struct oh_enriched){.id = e->strs + d->eid,
                              .message = e->strs + d->id,
                              .conv = e->strs + d->conv,
                              .channel = e->strs + d->channel,
                              .account = e->strs + d->account,
                              .t = &d->t,
                              .milli = d->milli,
                              .time_ms = d->time_ms};
    return x;
}

/* Scores one customer message (a timeline record) into E's decisions. */
static void score(struct enrich *e, const struct oh_log_record *r)
{
    struct oh_json_pick f[F_N];
    for (int i = 0; i < F_N; i++)
        f[i] = (struct oh_json_pick){.path = fields[i]};
    if (oh_grow(&e->pick, &e->cappick, r->len + 1, 1, 4096) ||
        oh_json_pick(r->value, r->len, f, F_N, e->pick) != OH_OK)
        return;
    /* re-checked on the body: metadata may be missing (older records) */
    if (!f[F_TYPE].s || strcmp(f[F_TYPE].s, OH_EV_INBOUND) != 0 || !f[F_KIND].s ||
        strcmp(f[F_KIND].s, "customer") != 0 || !f[F_ID].s || !f[F_CONV].s || !f[F_CHANNEL].s ||
        !f[F_ACCOUNT].s)
        return;
    if (json_object_get(e->scored, f[F_ID].s)) {
        e->skipped[SKIP_IN_POLL]++;
        return;
    }
    /* its id from the message's alone: scoring it again (a replay after a
     * crash, a rebalance) makes the same event, which sync drops by id */
    char eid[OH_ID_MAX];
    oh_event_id(eid, "enriched", f[F_ID].s, NULL);
    if (e->inline_here && e->hub->store &&
        oh_store_event_get(e->hub->store, f[F_CONV].s, eid, NULL, NULL) == OH_OK) {
        e->skipped[SKIP_IN_STORE]++;
        return; /* scored inline: its batch was forwarded across two commits */
    }
    if (oh_grow(&e->dec, &e->capdec, e->ndec + 1, sizeof *e->dec, 64)) return;
    size_t mark = e->nstrs;
    ptrdiff_t id = keep(e, &f[F_ID]), conv = keep(e, &f[F_CONV]);
    ptrdiff_t channel = keep(e, &f[F_CHANNEL]), account = keep(e, &f[F_ACCOUNT]);
    if (id < 0 || conv < 0 || channel < 0 || account < 0) {
        e->nstrs = mark;
        return;
    }
    struct decision *d = &e->dec[e->ndec++];
    size_t written = e->out.buf.len;
    *d = (struct decision){.id = (size_t)id,
                           .conv = (size_t)conv,
                           .channel = (size_t)channel,
                           .account = (size_t)account,
                           .time_ms = oh_now_ms()};
    /* the email connector gives the text with the quoted history trimmed
     * (the scorer skips quotes as well) and the subject beside it */
    oh_triage_classify(f[F_TEXT].s ? f[F_TEXT].s : "", f[F_TEXT].len, f[F_MAIL_SUBJECT].s, &d->t);
    d->milli = oh_enriched_milli(d->t.sentiment);
    ptrdiff_t eo = keep(e, &(struct oh_json_pick){.s = eid, .len = strlen(eid)});
    if (eo >= 0) d->eid = (size_t)eo;
    struct oh_enriched x;
    if (eo < 0 || oh_enriched_text(&e->out, enriched_of(e, d, &x)) != OH_OK) {
        e->ndec--;
        e->nstrs = mark;
        e->out.buf.len = written;
        return;
    }
    d->text = written;
    d->len = e->out.buf.len - written;
    oh_triage_metrics_count(d->t.priority, false);
    /* priorities rank low 0 .. urgent 3 (triage.h) */
    int have = priority_of(e, e->strs + d->conv);
    if (have < 0 || (int)d->t.priority > have) {
        d->raise = true;
        if (have >= 0)
            json_object_set_new(e->known, e->strs + d->conv, json_integer(d->t.priority));
        oh_triage_metrics_count(d->t.priority, true);
    }
}

/* Appends the batch's decisions and waits until they are durable: OH_OK, or
 * OH_ECLOSED when the hub stops first (the batch is then read again). */
static int emit(struct enrich *e)
{
    int delay_ms = 100, ret = OH_OK;
    while (e->ndec) {
        struct oh_event_list l = {0};
        /* room for each event's record */
        int rc = oh_grow(&e->tx, &e->captx, 2 * e->ndec, sizeof *e->tx, 128);
        if (rc == OH_OK) rc = oh_grow(&e->txlen, &e->captxlen, 2 * e->ndec, sizeof *e->txlen, 128);
        for (size_t i = 0; rc == OH_OK && i < e->ndec; i++) {
            const struct decision *d = &e->dec[i];
            struct oh_enriched x;
            /* the event for the handoff to sync, its record as written */
            e->tx[l.n] = e->out.buf.p + d->text;
            e->txlen[l.n] = d->len;
            rc = oh_event_list_push(&l, oh_enriched_event(enriched_of(e, d, &x)));
            if (rc == OH_OK && d->raise) {
                e->tx[l.n] = NULL;
                rc = oh_event_list_push(&l, oh_triage_raise_cmd(e->strs + d->id, e->strs + d->conv,
                                                                e->strs + d->channel,
                                                                e->strs + d->account, d->t.priority,
                                                                d->time_ms));
            }
        }
        /* the hub takes the list's references, whatever it answers */
        if (rc == OH_OK) rc = oh_hub_ingest_texts_wait(e->hub, &l, e->tx, e->txlen);
        oh_event_list_clear(&l);
        if (rc == OH_OK) break;
        if (rc == OH_EINVAL) { /* not ours to fix by trying again: said by the hub */
            OH_ERROR("enrich", "a batch of %zu decisions was refused", e->ndec);
            break;
        }
        if (atomic_load(&e->hub->stopping)) {
            ret = OH_ECLOSED;
            break;
        }
        OH_WARN("enrich", "appending decisions failed (%s); retrying in %d ms", oh_strerror(rc),
                delay_ms);
        usleep((useconds_t)delay_ms * 1000);
        delay_ms = delay_ms < 5000 ? delay_ms * 2 : 5000;
    }
    e->ndec = 0;
    e->nstrs = 0;
    e->out.buf.len = 0;
    /* a huge record or batch leaves no huge buffers behind */
    if (e->cappick > KEEP_MAX) {
        free(e->pick);
        e->pick = NULL;
        e->cappick = 0;
    }
    if (e->capstrs > KEEP_MAX) {
        free(e->strs);
        e->strs = NULL;
        e->capstrs = 0;
    }
    if (e->out.buf.cap > KEEP_MAX) oh_enriched_writer_free(&e->out);
    return ret;
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

/* Notes the message an enriched event of the timeline scores. */
static void note_scored(struct enrich *e, const struct oh_log_record *r)
{
    struct oh_json_pick p = {.path = "data.message_event_id"};
    if (oh_grow(&e->pick, &e->cappick, r->len + 1, 1, 4096) ||
        oh_json_pick(r->value, r->len, &p, 1, e->pick) != OH_OK || !p.s)
        return;
    json_object_set_new(e->scored, p.s, json_true());
}

static int process(void *state, struct oh_service_batch *b, const struct oh_log_record *recs, int n)
{
    struct enrich *e = state;
    (void)b;
    /* sync stores an inline-scored message and its enriched event in one
     * batch and forwards them together: in this process it marks the
     * message (hub->scored), elsewhere a poll that holds both needs no
     * score here (one split between two polls is scored again, and the
     * repeated events are dropped by id) */
    bool noted = false;
    for (int i = 0; i < n; i++) {
        const struct oh_log_record *r = &recs[i];
        if (!fresh(e, r)) continue;
        if (r->meta.type && strcmp(r->meta.type, OH_EV_UPDATED) == 0) {
            note_state(e, r);
            continue;
        }
        if (!is_customer_inbound(r)) continue;
        /* marked by sync in this process as it stored it with its enriched
         * event: not even read */
        if (r->meta.seq > 0 && oh_marks_has(e->hub->scored, r->meta.subject, r->meta.seq)) {
            e->skipped[SKIP_MARKED]++;
            continue;
        }
        if (!noted) { /* the batch's enriched events, before the first score */
            json_object_clear(e->scored);
            for (int k = 0; k < n; k++)
                if (recs[k].meta.type && strcmp(recs[k].meta.type, OH_EV_ENRICHED) == 0)
                    note_scored(e, &recs[k]);
            noted = true;
        }
        score(e, r);
    }
    for (int k = 0; k < SKIP_N; k++) {
        if (e->skipped[k])
            oh_metrics_inc("omnihub_enrich_skipped_total", skip_label[k], e->skipped[k]);
        e->skipped[k] = 0;
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
        !(e->scored = json_object())) {
        if (e) {
            json_decref(e->known);
            json_decref(e->seen);
        }
        free(e);
        oh_errf(err, errlen, "out of memory");
        return OH_ENOMEM;
    }
    e->hub = hub;
    e->inline_here = oh_triage_inline(hub);
    oh_metrics_describe("omnihub_enrich_skipped_total",
                        "customer messages the enrich service did not score, their enriched "
                        "event being stored already: marked (sync scored it inline in this "
                        "process; not read), in_poll (its enriched event in the same poll), "
                        "in_store");
    oh_triage_metrics_describe();
    *state = e;
    return OH_OK;
}

static void stop(void *state)
{
    struct enrich *e = state;
    json_decref(e->known);
    json_decref(e->seen);
    json_decref(e->scored);
    free(e->dec);
    free(e->strs);
    free(e->pick);
    oh_enriched_writer_free(&e->out);
    free(e->tx);
    free(e->txlen);
    free(e);
}

static bool wanted(const oh_hub *hub)
{
    return oh_config_bool(hub->cfg, "triage.enabled");
}

const struct oh_service oh_service_enrich = {
    .name = "enrich",
    .role = "enrich",
    .group = OH_GROUP_ENRICH,
    .topic = OH_TOPIC_TIMELINE,
    .batch = 256,
    .wanted = wanted,
    .init = init,
    .process = process,
    .assigned = moved,
    .revoked = moved,
    .stop = stop,
    .lingers = true,
};
