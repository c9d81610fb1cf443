/* ws_work.c - what the pool's workers do for WebSocket clients (ws.c
 * submits, its service thread completes): a subscribe's head, epoch and
 * first replay page, the later pages (framed here from the stored text,
 * handed over in chunks as they fill), "*"'s catch-up of changed
 * conversations, a client's message made durable, a read cursor. Nothing
 * here touches a connection's queue or lws: results go back through
 * gw_ws_job_done(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gateway/ws_int.h"

static int page_frame(struct wsjob *j, int64_t seq, const char *json, size_t len);

void gw_ws_job_done(struct wsjob *j)
{
    struct oh_gateway *gw = j->c->gw;
    pthread_mutex_lock(&gw->mu);
    j->next = gw->ws_done;
    gw->ws_done = j;
    bool wake = gw_wake_locked(gw);
    pthread_mutex_unlock(&gw->mu);
    if (wake) lws_cancel_service(gw->ctx);
}

static int page_row(void *opaque, const char *conv, int64_t seq, const char *json, size_t len)
{
    struct wsjob *j = opaque;
    if (!oh_auth_is_agent(&j->c->who)) { /* who never changes: safe to read here */
        char *shown = NULL;
        size_t shown_len = 0;
        int rc = oh_event_customer_text(json, len, &shown, &shown_len);
        if (rc == OH_OK && shown) {
            rc = page_frame(j, seq, shown, shown_len);
            free(shown);
            return rc;
        }
        if (rc) return rc;
    }
    return page_frame(j, seq, json, len);
}

/* Hands J's frames so far to the service thread, which queues them while
 * the rest of the page is read: a page's first bytes leave after one
 * chunk, not after the whole page. No reference is taken: J, which holds
 * its connection and subscription, completes after its chunks (one list). */
static int page_hand_over(struct wsjob *j)
{
    struct wsjob *ch = calloc(1, sizeof *ch);
    if (!ch) return 0; /* not an error: the frames stay in the page */
    ch->kind = JOB_CHUNK;
    ch->c = j->c;
    ch->parent = j;
    ch->page = j->page;
    ch->sent = j->sent;
    ch->nrows = j->nrows;
    j->sent_bytes += j->page->len;
    j->sent = j->nrows;
    j->page = NULL;
    gw_ws_job_done(ch);
    return 0;
}

/* Puts one event frame into J's page. */
static int page_frame(struct wsjob *j, int64_t seq, const char *json, size_t len)
{
    /* sized on the first row for the rows expected: most subscribes replay
     * little, and what a worker touched stays resident after it is freed;
     * a later page goes out in chunks */
    if (!j->page) {
        size_t want = (size_t)j->expect * (len + 64);
        size_t most = (j->kind == JOB_PAGE ? OUT_CHUNK : j->budget) + OUT_CHUNK;
        if (want > most) want = most;
        if (!(j->page = gw_ws_outbuf_new(want))) return OH_ENOMEM;
    }
    j->offs[j->nrows] = j->page->len;
    if (!gw_ws_frame_put(&j->page, event_pre, sizeof event_pre - 1, json, len, "}", 1))
        return OH_ENOMEM;
    j->seqs[j->nrows++] = seq;
    if (j->nrows < j->limit && j->sent_bytes + j->page->len < j->budget) {
        /* not the subscribe's page: its "subscribed" answer goes first */
        if (j->kind == JOB_PAGE && j->page->len >= OUT_CHUNK) return page_hand_over(j);
        return 0;
    }
    j->more = true; /* stopped here (or at LIMIT); the rest comes with the next page */
    return 1;
}

/* Reads the page after J->after as ready-made event frames. */
static void read_page(struct wsjob *j)
{
    j->budget = j->c->gw->ws_max_queue / 4;
    j->seqs = calloc((size_t)j->limit, sizeof *j->seqs);
    j->offs = calloc((size_t)j->limit, sizeof *j->offs);
    int rc = j->seqs && j->offs
                 ? oh_store_history(j->c->gw->hub->store, j->conv, j->after, j->limit, page_row, j)
                 : OH_ENOMEM;
    if (rc && rc != OH_ENOTFOUND) j->status = 503;
}

/* The conversation's head and epoch, and the first page of the replay in
 * the same trip to the pool. */
void gw_ws_subscribe_work(void *opaque)
{
    struct wsjob *j = opaque;
    oh_store *st = j->c->gw->hub->store;
    struct oh_conversation conv;
    snprintf(j->cur_epoch, sizeof j->cur_epoch, "%s", oh_store_epoch(st));
    int rc = gw_conversation_later(j->c->gw, j->conv, &conv, &j->job);
    if (rc == GW_LATER) return;
    if (rc == OH_OK)
        j->head = conv.head;
    else if (rc == OH_ENOTFOUND && j->c->who.role == OH_ROLE_CUSTOMER)
        j->head = 0; /* the conversation they own, not opened yet */
    else
        j->status = rc == OH_ENOTFOUND ? 404 : 503;
    /* a position past the head is not one this epoch gave out: like an
     * unknown epoch, the replay starts over (or live events past the head
     * would be held back until seq passed it) */
    j->recovered =
        j->has_epoch ? strcmp(j->epoch, j->cur_epoch) == 0 && j->after <= j->head : j->after == 0;
    j->seq = j->recovered ? j->after : 0; /* where the replay starts */
    if (!j->status) {
        int64_t asked = j->after;
        j->after = j->seq;
        j->expect = j->head > j->after && j->head - j->after < j->limit ? (int)(j->head - j->after)
                                                                        : j->limit;
        read_page(j);
        j->after = asked;
    }
    gw_ws_job_done(j);
}

void gw_ws_page_work(void *opaque)
{
    struct wsjob *j = opaque;
    j->expect = j->limit;
    read_page(j);
    gw_ws_job_done(j);
}

static int max_read(void *opaque, const char *device, int64_t seq)
{
    int64_t *max = opaque;
    if (seq > *max) *max = seq;
    return 0;
}

static const char conv_pre[] = "{\"type\":\"conversation\",\"conversation\":";

/* One changed conversation as a frame: the list's object, with the
 * agent's unread count (a cursor read per row: catch-ups are small). */
static int change_row(void *opaque, const struct oh_conversation *conv)
{
    struct wsjob *j = opaque;
    struct wsconn *c = j->c;
    int64_t read = 0;
    if (oh_store_cursors(c->gw->hub->store, conv->id, oh_auth_role_name(c->who.role), c->who.sub,
                         max_read, &read))
        read = -1;
    json_t *o = gw_conversation_json(conv, read < 0            ? -1
                                           : conv->head > read ? conv->head - read
                                                               : 0);
    if (o) json_object_set_new(o, "sla", gw_conversation_sla(c->gw->hub->store, conv->id));
    char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!txt) return OH_ENOMEM;
    if (!j->page && !(j->page = gw_ws_outbuf_new(16384))) {
        free(txt);
        return OH_ENOMEM;
    }
    bool ok = gw_ws_frame_put(&j->page, conv_pre, sizeof conv_pre - 1, txt, strlen(txt), "}", 1);
    free(txt);
    if (!ok) return OH_ENOMEM;
    j->nrows++;
    if (j->page->len < j->budget) return 0;
    j->more = true; /* the store's position includes this row */
    return 1;
}

/* A batch of "*"'s catch-up: the conversations changed after J->pos. */
void gw_ws_changes_work(void *opaque)
{
    struct wsjob *j = opaque;
    j->budget = j->c->gw->ws_max_queue / 4;
    int rc = oh_store_changes(j->c->gw->hub->store, j->pos, j->limit, change_row, j, j->next_pos);
    if (rc == 0 && j->nrows >= j->limit) j->more = true;
    if (rc) j->status = rc == OH_EINVAL ? 400 : 503;
    gw_ws_job_done(j);
}

static void on_send_durable(void *opaque, int err)
{
    struct wsjob *j = opaque;
    gw_message_count(j->event, err);
    if (err) {
        gw_message_forget(j->event); /* nothing was stored: the key is free again */
        j->status = 503;
        snprintf(j->err, sizeof j->err, "the message could not be made durable; retry");
    }
    gw_ws_job_done(j);
}

void gw_ws_send_work(void *opaque)
{
    struct wsjob *j = opaque;
    int st = gw_build_message(j->c->gw, &j->c->who, j->conv, j->body, &j->job, &j->event, j->err,
                              sizeof j->err);
    if (st == GW_LATER) return;
    j->status = st;
    if (j->status) {
        gw_ws_job_done(j);
        return;
    }
    struct oh_event_list l = {0};
    oh_event_list_push(&l, json_incref(j->event));
    if (oh_hub_ingest_client(j->c->gw->hub, &l, on_send_durable, j) != OH_OK) {
        gw_message_forget(j->event);
        j->status = 503;
        snprintf(j->err, sizeof j->err, "log unavailable");
        gw_ws_job_done(j);
    }
}

void gw_ws_read_work(void *opaque)
{
    struct wsjob *j = opaque;
    oh_store *st = j->c->gw->hub->store;
    struct oh_conversation conv;
    int rc = gw_conversation_later(j->c->gw, j->conv, &conv, &j->job);
    if (rc == GW_LATER) return;
    if (rc == OH_OK && j->seq > conv.head)
        j->status = 400;
    else if (rc == OH_OK)
        rc = oh_store_cursor_set(st, j->conv, oh_auth_role_name(j->c->who.role), j->c->who.sub,
                                 j->c->who.device, j->seq);
    if (!j->status && rc) j->status = rc == OH_ENOTFOUND ? 404 : 503;
    if (!j->status) gw_notify_read(j->c->gw, j->conv, j->c->who.role, j->seq);
    gw_ws_job_done(j);
}
