/* ws_live.c - live events on their way to WebSocket subscriptions: the
 * feed's copies (queued from the thread that materialized them), what
 * customers may see of each, delivery to a subscription or held back
 * (bounded) while its replay catches up, then flushed when it goes live;
 * and the fan-out of signals and read notices to the connections watching
 * a conversation. The wake-up that walks the queued events over the
 * subscriptions, then completes the pool's jobs, is ws.c's (the order of
 * the two is the protocol's). Service thread except gw_ws_feed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/metrics.h"
#include "gateway/ws_int.h"

#define MAX_PENDING 10000

/* The bytes of IT that C may see. */
static const char *item_text(const struct wsconn *c, const struct live_item *it, size_t *len)
{
    if (it->alt && !oh_auth_is_agent(&c->who)) {
        *len = it->alt_len;
        return it->json + it->len + 1;
    }
    *len = it->len;
    return it->json;
}

static size_t item_size(const struct live_item *it)
{
    return sizeof *it + it->len + 1 + (it->alt ? it->alt_len + 1 : 0);
}

struct pend {
    struct pend *next;
    struct live_item *item;
};

static void send_event(struct wsconn *c, const char *json, size_t len)
{
    gw_ws_send(c, event_pre, sizeof event_pre - 1, json, len, "}", 1);
    oh_metrics_inc("omnihub_ws_events_pushed_total", "", 1);
}

/* Events of S's conversation with AFTER < seq <= UPTO went into the queue
 * of S's device: connectors that track delivery hear of it when the device
 * is a customer's (the queue refused nothing: the connection stays open). */
void gw_ws_pushed(const struct sub *s, int64_t after, int64_t upto)
{
    const struct wsconn *c = s->c;
    if (upto > after && c->who.role == OH_ROLE_CUSTOMER && c->wsi && !c->close_code)
        gw_notify_pushed(c->gw, s->conv, after, upto);
}

unsigned gw_ws_slot_of(const char *conv)
{
    uint32_t h = 2166136261u;
    for (; *conv; conv++)
        h = (h ^ (uint8_t)*conv) * 16777619u;
    return h % 4096;
}

void gw_ws_pend_clear(struct sub *s)
{
    while (s->pend) {
        struct pend *p = s->pend;
        s->pend = p->next;
        free(p->item);
        free(p);
    }
    s->pend_tail = &s->pend;
    s->npend = 0;
}

static struct live_item *item_copy(const struct live_item *it)
{
    struct live_item *n = malloc(item_size(it));
    if (n) memcpy(n, it, item_size(it));
    return n;
}

void gw_ws_deliver(struct sub *s, const struct live_item *it)
{
    struct wsconn *c = s->c;
    size_t len;
    const char *text = item_text(c, it, &len);
    if (s->all && s->live) {
        send_event(c, text, len);
        return;
    }
    if (!s->live) {
        /* catching up: keep it for after the replay, bounded */
        if (s->npend >= MAX_PENDING) {
            gw_ws_pend_clear(s);
            /* the store has them; read again ("*": its catch-up reads every
             * conversation changed until it ends, these included) */
            s->overflow = true;
            return;
        }
        struct pend *p = malloc(sizeof *p);
        if (p && (p->item = item_copy(it))) {
            p->next = NULL;
            *s->pend_tail = p;
            s->pend_tail = &p->next;
            s->npend++;
        } else {
            free(p);
            s->overflow = true;
        }
        return;
    }
    if (it->seq <= s->last) return;
    int64_t before = s->last;
    s->last = it->seq;
    send_event(c, text, len);
    gw_ws_pushed(s, before, s->last);
    oh_metrics_observe("omnihub_ws_push_seconds", "", (double)(oh_mono_us() - it->at_us) / 1e6);
}

/* Runs on the thread that materialized the event (sync): a copy queued
 * for the gateway thread. What customers may see of it is worked out there,
 * and only when a customer is subscribed (below): parsing every internal
 * event here for customers who mostly are not there cost 8 % of an
 * ingest's instructions. */
void gw_ws_feed(void *opaque, const char *conv, int64_t seq, const char *json, size_t len)
{
    struct oh_gateway *gw = opaque;
    struct live_item *it = malloc(sizeof *it + len + 1);
    if (!it) return;
    it->next = NULL;
    snprintf(it->conv, sizeof it->conv, "%s", conv);
    it->seq = seq;
    it->at_us = oh_mono_us();
    it->len = len;
    memcpy(it->json, json, len);
    it->json[len] = '\0';
    it->alt = false;
    it->alt_len = 0;
    pthread_mutex_lock(&gw->mu);
    *gw->live_tail = it;
    gw->live_tail = &it->next;
    gw->live_len++;
    bool wake = gw_wake_locked(gw);
    pthread_mutex_unlock(&gw->mu);
    if (wake) lws_cancel_service(gw->ctx);
}

/* IT with what customers get instead appended (visibility.c); IT itself
 * when they see it whole, NULL when out of memory (IT freed). */
struct live_item *gw_ws_with_alt(struct live_item *it)
{
    char *alt = NULL;
    size_t alt_len = 0;
    if (oh_event_customer_text(it->json, it->len, &alt, &alt_len) != OH_OK) {
        /* stored text that does not parse: customers get nothing rather
         * than what may be internal (their replay fails the same way) */
        alt = strdup("");
        alt_len = 0;
        if (!alt) {
            free(it);
            return NULL;
        }
    }
    if (!alt) return it;
    struct live_item *n = realloc(it, sizeof *it + it->len + 1 + alt_len + 1);
    if (!n) {
        free(alt);
        free(it);
        return NULL;
    }
    memcpy(n->json + n->len + 1, alt, alt_len + 1);
    n->alt = true;
    n->alt_len = alt_len;
    free(alt);
    return n;
}

/* The replay reached the store's head: flush what arrived meanwhile. */
void gw_ws_go_live(struct sub *s)
{
    int64_t before = s->last;
    s->live = true;
    if (s->all) { /* what arrived during the catch-up, all of it */
        for (struct pend *p = s->pend; p; p = p->next) {
            size_t len;
            const char *text = item_text(s->c, p->item, &len);
            send_event(s->c, text, len);
        }
        gw_ws_pend_clear(s);
        return;
    }
    for (struct pend *p = s->pend; p; p = p->next)
        if (p->item->seq > s->last) {
            size_t len;
            const char *text = item_text(s->c, p->item, &len);
            s->last = p->item->seq;
            send_event(s->c, text, len);
        }
    gw_ws_pend_clear(s);
    gw_ws_pushed(s, before, s->last);
}

void gw_ws_each_watcher(struct oh_gateway *gw, const char *conv, gw_ws_watcher_fn fn, void *opaque)
{
    uint64_t mark = ++gw->mark; /* a connection with several matching subs hears once */
    for (struct sub *s = conv ? gw->subs[gw_ws_slot_of(conv)] : NULL; s; s = s->next_hash)
        if (!s->dead && strcmp(s->conv, conv) == 0 && s->c->wsi && !s->c->close_code &&
            s->c->mark != mark) {
            s->c->mark = mark;
            fn(s->c, false, opaque);
        }
    for (struct sub *s = gw->all_subs; s; s = s->next_hash)
        if (!s->dead && s->c->wsi && !s->c->close_code && s->c->mark != mark) {
            s->c->mark = mark;
            fn(s->c, true, opaque);
        }
}

void gw_ws_read_fanout(struct oh_gateway *gw, const struct oh_principal *who, const char *conv,
                       int64_t seq)
{
    gw_signal_read(gw, who, conv, seq);
    /* the sub alone is not the user: a customer may carry an agent's sub */
    for (struct wsconn *c = gw->conns; c; c = c->next)
        if (c->wsi && c->who.role == who->role && strcmp(c->who.sub, who->sub) == 0 &&
            strcmp(c->who.device, who->device) != 0 && oh_auth_may_access(&c->who, conv))
            gw_ws_send_json(c, json_pack("{s:s, s:s, s:I, s:s}", "type", "read", "conversation",
                                         conv, "seq", (json_int_t)seq, "device", who->device));
}
