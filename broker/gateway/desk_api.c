/* desk_api.c - changes of a conversation's state: PATCH /v1/conversations/{id}
 * and POST .../claim. The gateway only checks and appends a state command
 * (core/convstate.h); sync decides it in log order and records the outcome,
 * which the request waits for without holding a worker: sync's notification
 * (same process) or a poll of the store (sync elsewhere, or a missed wake). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gateway/gateway_int.h"
#include "core/convstate.h"
#include "core/crypto.h"
#include "core/map.h"
#include "core/metrics.h"

#define WAIT_MS       10000 /* no outcome by then: 503, the command may still apply */
#define POLL_LOCAL_MS 2000  /* sync in this process notifies; the poll is a safety net */
#define POLL_AWAY_MS  250   /* sync in another process (Kafka split roles): each tick (1 s) */
#define WAIT_RESERVE  1024  /* waiting requests the map holds before it grows (under the mutex) */

/* A request waiting for its command's outcome. */
struct dreq {
    struct oh_map_node node; /* keyed by ID while waiting (random: one request per id) */
    char id[OH_ID_MAX];
    char conv[OH_ID_MAX];
    const char *op;   /* "patch" | "claim" | "merge" | "unmerge" | "erase" */
    json_t *set;      /* the PATCH body; a contact command's data */
    bool contact;     /* CONV is a contact id (contacts_api.c) */
    int64_t if_match; /* -1: none */
    int64_t deadline_ms, poll_ms;
    bool failed;  /* the log refused the command (set under the desk's mutex) */
    bool waiting; /* in the desk's map (guarded by its mutex) */
    struct req *r;
    struct dreq *next; /* on the tick's list of due requests */
};

struct gw_desk {
    pthread_mutex_t mu; /* guards wait and each dreq's waiting, failed, poll_ms */
    oh_map wait;        /* the waiting requests, by command id, oldest first */
    bool local;         /* sync runs in this process */
};

static struct dreq *dreq_of(struct oh_map_node *n)
{
    return oh_map_entry(n, struct dreq, node);
}

/* Takes D out of the map (under the mutex). */
static void take(struct gw_desk *k, struct dreq *d)
{
    oh_map_del(&k->wait, &d->node);
    d->waiting = false;
}

static void dreq_free(void *p)
{
    struct dreq *d = p;
    json_decref(d->set);
    free(d);
}

static void count(const char *op, int status)
{
    char lab[64];
    snprintf(lab, sizeof lab, "op=\"%s\",outcome=\"%d\"", op, status);
    oh_metrics_inc("omnihub_desk_commands_total", lab, 1);
}

/* Removes D from the waiting set; false when it was not there (someone
 * else took it: a notification and a poll race). */
static bool unwait(struct gw_desk *k, struct dreq *d)
{
    pthread_mutex_lock(&k->mu);
    bool found = d->waiting;
    if (found) take(k, d);
    pthread_mutex_unlock(&k->mu);
    return found;
}

/* Adds D (not waiting) to the waiting set. The put cannot fail (the
 * buckets are reserved); it allocates only past WAIT_RESERVE waiting. */
static void await(struct gw_desk *k, struct dreq *d, int64_t now)
{
    uint64_t hash = oh_map_hash(d->id, strlen(d->id));
    pthread_mutex_lock(&k->mu);
    d->poll_ms = now + (k->local ? POLL_LOCAL_MS : POLL_AWAY_MS);
    oh_map_put_hashed(&k->wait, &d->node, d->id, strlen(d->id), hash);
    d->waiting = true;
    pthread_mutex_unlock(&k->mu);
}

/* Answers from the recorded outcome, or waits on (worker thread). */
static void outcome_work(void *opaque)
{
    struct req *r = opaque;
    struct dreq *d = r->state;
    oh_store *st = r->gw->hub->store;
    char body[8192];
    int code = 0, rc = st ? oh_store_command_result(st, d->conv, d->id, &code, body, sizeof body)
                          : OH_EUNAVAIL;
    int64_t now = oh_now_ms();
    if (d->failed) {
        r->retry_after = 1;
        gw_reply_error(r, 503, "unavailable", "the change could not be made durable; retry");
        count(d->op, 503);
        gw_complete(r);
        return;
    }
    if ((rc == OH_ENOTFOUND || rc == OH_EUNAVAIL || rc == OH_EIO) && now < d->deadline_ms) {
        await(r->gw->desk, d, now);
        return;
    }
    if (rc) {
        r->retry_after = 1;
        gw_reply_error(r, 503, "unavailable",
                       "the change was not decided in time; it may still "
                       "apply: read the conversation before retrying");
        code = 503;
    } else if (code == 200 && d->contact) {
        count(d->op, code);
        r->gw->contact_reply(r, d->conv); /* completes R */
        return;
    } else if (code == 200) {
        struct oh_conversation c;
        if ((rc = oh_store_conversation_get(st, d->conv, &c)) == OH_OK) {
            json_t *o = gw_conversation_json(&c, gw_unread(r, &c));
            if (o) json_object_set_new(o, "sla", gw_conversation_sla(st, c.id));
            gw_reply_json(r, 200, o);
        } else {
            gw_reply_store_error(r, rc);
            code = 503; /* applied, but not answered with it */
        }
    } else {
        gw_reply(r, code, "application/json", body, strlen(body));
    }
    count(d->op, code);
    gw_complete(r);
}

/* Runs on sync's thread after it committed outcomes: must not block. */
static void on_outcomes(void *opaque, const char *const *ids, size_t n)
{
    struct oh_gateway *gw = opaque;
    struct gw_desk *k = gw->desk;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(ids[i]);
        uint64_t hash = oh_map_hash(ids[i], len);
        pthread_mutex_lock(&k->mu);
        struct dreq *d = dreq_of(oh_map_get_hashed(&k->wait, ids[i], len, hash));
        if (d) take(k, d);
        pthread_mutex_unlock(&k->mu);
        if (d && (!gw->work || oh_workq_submit(gw->work, outcome_work, d->r) != OH_OK))
            await(k, d, 0); /* the next tick polls it */
    }
}

/* Polls the requests due, the oldest first (service thread). */
void gw_desk_tick(struct oh_gateway *gw)
{
    struct gw_desk *k = gw->desk;
    struct dreq *due = NULL, **tail = &due;
    int64_t now = oh_now_ms();
    if (!k) return;
    pthread_mutex_lock(&k->mu);
    for (struct oh_map_node *n = k->wait.first, *next; n; n = next) {
        struct dreq *d = dreq_of(n);
        next = n->next;
        if (now >= d->poll_ms || now >= d->deadline_ms) {
            take(k, d);
            d->next = NULL;
            *tail = d;
            tail = &d->next;
        }
    }
    pthread_mutex_unlock(&k->mu);
    while (due) {
        struct dreq *d = due;
        due = d->next;
        if (!gw->work || oh_workq_submit(gw->work, outcome_work, d->r) != OH_OK) await(k, d, now);
    }
}

/* What the log's report of a command's append needs: not the request,
 * which the outcome may have answered and freed first (sync reads the
 * record as soon as it is committed, before the log's callbacks run; and a
 * Kafka append may fail after the wait's deadline answered 503). */
struct appending {
    struct gw_desk *k;
    char id[OH_ID_MAX];
};

/* Runs on the log's thread once the command is durable (or not). A refused
 * command still waiting is marked failed and made due: the next tick
 * answers it 503 (nothing can decide an unwritten command). */
static void on_appended(void *opaque, int err)
{
    struct appending *a = opaque;
    if (err) {
        size_t len = strlen(a->id);
        uint64_t hash = oh_map_hash(a->id, len);
        pthread_mutex_lock(&a->k->mu);
        struct dreq *d = dreq_of(oh_map_get_hashed(&a->k->wait, a->id, len, hash));
        if (d) {
            d->failed = true;
            d->poll_ms = 0;
        }
        pthread_mutex_unlock(&a->k->mu);
    }
    free(a);
}

static void append(struct req *r, struct dreq *d, json_t *ev);

static void submit_work(void *opaque)
{
    struct req *r = opaque;
    struct dreq *d = r->state;
    struct oh_conversation c;
    int rc = d->contact ? OH_OK : gw_conversation_later(r->gw, d->conv, &c, &r->job);
    if (rc == GW_LATER) return;
    if (rc) {
        int st = rc == OH_ENOTFOUND ? 404 : 503;
        gw_reply_error(r, st, gw_error_code(st), "%s",
                       st == 404 ? "no such conversation" : oh_strerror(rc));
        count(d->op, st);
        gw_complete(r);
        return;
    }
    unsigned char rnd[16];
    char hex[33];
    if (oh_random(rnd, sizeof rnd) != OH_OK) {
        gw_reply_error(r, 503, "unavailable", "no randomness for the command's id");
        count(d->op, 503);
        gw_complete(r);
        return;
    }
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    oh_event_id(d->id, "command", hex, NULL);
    if (d->contact) {
        json_t *cd = json_deep_copy(d->set);
        json_object_set_new(cd, "contact_id", json_string(d->conv));
        json_object_set_new(cd, "op", json_string(d->op));
        json_object_set_new(cd, "author",
                            json_pack("{s:s, s:s}", "kind", "agent", "id", r->who.sub));
        append(r, d, oh_event_new(OH_EV_CONTACT_COMMAND, d->id, 0, cd));
        return;
    }
    json_t *data = json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s}}", "conversation_id", d->conv,
                             "channel", c.channel, "account", c.account, "op", d->op, "author",
                             "kind", "agent", "id", r->who.sub);
    if (data && d->set) json_object_set(data, "set", d->set);
    if (data && d->if_match >= 0) json_object_set_new(data, "if_match", json_integer(d->if_match));
    append(r, d, data ? oh_event_new(OH_EV_COMMAND, d->id, 0, data) : NULL);
}

/* Appends command EV (taken) and waits for its outcome. */
static void append(struct req *r, struct dreq *d, json_t *ev)
{
    struct oh_event_list l = {0};
    int64_t now = oh_now_ms();
    d->deadline_ms = now + WAIT_MS;
    if (ev && d->contact) json_object_set_new(ev, "subject", json_string(d->conv));
    struct appending *a = malloc(sizeof *a);
    if (a) {
        a->k = r->gw->desk;
        oh_strcpy(a->id, sizeof a->id, d->id);
    }
    /* waiting before the append: sync may decide before the append reports */
    await(r->gw->desk, d, now);
    if (!ev || !a || oh_event_list_push(&l, ev) != OH_OK ||
        oh_hub_ingest_client(r->gw->hub, &l, on_appended, a) != OH_OK) {
        /* on_appended was not called and will not be; the list owns EV
         * once pushed (the push frees it when it fails) */
        if (ev && !a) json_decref(ev);
        free(a);
        oh_event_list_clear(&l);
        if (unwait(r->gw->desk, d)) {
            gw_reply_error(r, 503, "unavailable", "log unavailable");
            count(d->op, 503);
            gw_complete(r);
        }
    }
}

/* If-Match: the head the client saw, as a number or a quoted ETag; "*"
 * or absent: no condition (-1). False when malformed. */
static bool if_match(const char *h, int64_t *out)
{
    *out = -1;
    if (!h || strcmp(h, "*") == 0) return true;
    size_t n = strlen(h);
    if (n >= 2 && h[0] == '"' && h[n - 1] == '"') {
        h++;
        n -= 2;
    }
    if (n == 0 || n > 18) return false;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (h[i] < '0' || h[i] > '9') return false;
        v = v * 10 + (h[i] - '0');
    }
    *out = v;
    return true;
}

static struct dreq *start(struct req *r, const char *conv, const char *op)
{
    if (r->who.role == OH_ROLE_CUSTOMER) {
        gw_reply_error(r, 403, "forbidden", "only agents change a conversation's state");
        count(op, 403);
        return NULL;
    }
    struct dreq *d = gw_state_new(r, sizeof *d, dreq_free);
    if (!d) return NULL;
    snprintf(d->conv, sizeof d->conv, "%s", conv);
    d->op = op;
    d->r = r;
    if (!if_match(gw_header(r, "if-match"), &d->if_match)) {
        gw_reply_error(r, 400, "bad_request", "If-Match must be the conversation's head");
        count(op, 400);
        return NULL;
    }
    return d;
}

void gw_desk_patch(struct req *r, const char *conv)
{
    struct dreq *d = start(r, conv, "patch");
    if (!d) return;
    json_error_t e;
    char why[256];
    d->set = r->body ? json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &e) : NULL;
    if (!d->set) {
        gw_reply_error(r, 400, "bad_request", "body must be a JSON object: %s",
                       r->body ? e.text : "empty body");
        count("patch", 400);
        return;
    }
    if (oh_convstate_check_patch(d->set, oh_now_ms(), why, sizeof why)) {
        gw_reply_error(r, 400, "bad_request", "%s", why);
        count("patch", 400);
        return;
    }
    gw_async(r, submit_work);
}

void gw_desk_contact(struct req *r, const char *contact, const char *op, json_t *data)
{
    struct dreq *d = start(r, contact, op);
    if (!d) {
        json_decref(data);
        return;
    }
    d->contact = true;
    d->set = data;
    gw_async(r, submit_work);
}

void gw_desk_claim(struct req *r, const char *conv)
{
    struct dreq *d = start(r, conv, "claim");
    if (d) gw_async(r, submit_work);
}

int gw_desk_init(struct oh_gateway *gw)
{
    struct gw_desk *k = calloc(1, sizeof *k);
    if (!k || oh_map_reserve(&k->wait, WAIT_RESERVE)) {
        free(k);
        return OH_ENOMEM;
    }
    pthread_mutex_init(&k->mu, NULL);
    k->local = gw->hub->run_sync && gw->hub->store;
    gw->desk = k;
    gw->hub->outcomes = on_outcomes;
    gw->hub->outcomes_opaque = gw;
    return OH_OK;
}

/* After sync stopped and the work queue is drained: whoever still waits
 * is answered 503 (the command may still apply after a restart). */
void gw_desk_free(struct oh_gateway *gw)
{
    struct gw_desk *k = gw->desk;
    if (!k) return;
    if (gw->hub->outcomes_opaque == gw) gw->hub->outcomes = NULL;
    while (k->wait.first) {
        struct dreq *d = dreq_of(k->wait.first);
        take(k, d);
        d->r->retry_after = 1;
        gw_reply_error(d->r, 503, "unavailable", "shutting down; the change may still apply");
        gw_complete(d->r);
    }
    oh_map_clear(&k->wait);
    pthread_mutex_destroy(&k->mu);
    free(k);
    gw->desk = NULL;
}
