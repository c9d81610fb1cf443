/* ws.c - the WebSocket protocol of clients and agents: the upgrade's token,
 * client messages, subscribe (catch up from the store in pages, then live,
 * with no gap and no duplicate), send and its ack, read cursors, replay
 * backpressure, rate limits and idle timeouts; the wake-up that hands the
 * queued live events to the subscriptions, then completes the pool's jobs.
 * Live events to a subscription are ws_live.c, the outgoing frames and
 * their queue ws_out.c, the jobs' work on the pool ws_work.c. Everything
 * here runs on the service thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/json_pick.h"
#include "core/metrics.h"
#include "gateway/ws_int.h"

/* A replay page holds up to ws.max_queue / 4 bytes of frames: the first
 * FIRST_EVENTS events (small: its bytes leave while the next page is
 * read), then as many as the previous page's size per event says fit (a
 * PostgreSQL store sends every row a LIMIT asks for, so the limit, not
 * only the walk stopping, has to follow the byte budget). A catch-up of
 * "*" reads PAGE_FIRST conversations at a time. */
#define FIRST_EVENTS 32
#define PAGE_FIRST   256
#define PAGE_ROWS    4096
#define MAX_SUBS     64

static void conn_release(struct wsconn *c);

/* ---- subscriptions ---- */

/* Subscription records held (live ones and dead ones awaiting a job). */
static void subs_gauge(int by)
{
    oh_metrics_set("omnihub_ws_subscriptions", "",
                   oh_metrics_value("omnihub_ws_subscriptions", "") + by);
}

static void sub_free(struct sub *s)
{
    gw_ws_pend_clear(s);
    free(s);
    subs_gauge(-1);
}

/* Takes dead S off its connection and frees it once no job points at it
 * (a replay page in flight on a worker still writes to its job, and its
 * completion looks at S). */
static void sub_reap(struct sub *s)
{
    if (!s->dead || s->jobs) return;
    for (struct sub **p = &s->c->subs; *p; p = &(*p)->next_conn)
        if (*p == s) {
            *p = s->next_conn;
            break;
        }
    sub_free(s);
}

static void sub_unlink(struct oh_gateway *gw, struct sub *s)
{
    struct sub **p = s->all ? &gw->all_subs : &gw->subs[gw_ws_slot_of(s->conv)];
    for (; *p; p = &(*p)->next_hash)
        if (*p == s) {
            *p = s->next_hash;
            break;
        }
    s->dead = true;
    gw_ws_pend_clear(s);
}

/* Ends S on a connection that stays open: its slot is free again. */
static void sub_drop(struct sub *s)
{
    sub_unlink(s->c->gw, s);
    s->c->nsubs--;
    sub_reap(s);
}

static void drain_jobs(struct oh_gateway *gw);

void gw_ws_deliver_live(struct oh_gateway *gw)
{
    pthread_mutex_lock(&gw->mu);
    struct live_item *it = gw->live;
    gw->live = NULL;
    gw->live_tail = &gw->live;
    gw->live_len = 0;
    pthread_mutex_unlock(&gw->mu);
    while (it) {
        struct live_item *next = it->next;
        bool customer = false;
        for (struct sub *s = gw->subs[gw_ws_slot_of(it->conv)]; s && !customer; s = s->next_hash)
            customer = strcmp(s->conv, it->conv) == 0 && !oh_auth_is_agent(&s->c->who);
        for (struct sub *s = gw->all_subs; s && !customer; s = s->next_hash)
            customer = !oh_auth_is_agent(&s->c->who);
        if (customer && !(it = gw_ws_with_alt(it))) {
            it = next;
            continue;
        }
        for (struct sub *s = gw->subs[gw_ws_slot_of(it->conv)]; s; s = s->next_hash)
            if (strcmp(s->conv, it->conv) == 0) gw_ws_deliver(s, it);
        for (struct sub *s = gw->all_subs; s; s = s->next_hash)
            gw_ws_deliver(s, it);
        free(it);
        it = next;
    }
    drain_jobs(gw);
}

static struct wsjob *job_new(struct wsconn *c, enum job_kind kind)
{
    struct wsjob *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->kind = kind;
    j->c = c;
    c->refs++;
    return j;
}

static void job_free(struct wsjob *j)
{
    if (j->sub) {
        j->sub->jobs--;
        sub_reap(j->sub);
    }
    free(j->page);
    free(j->offs);
    free(j->seqs);
    json_decref(j->body);
    json_decref(j->event);
    conn_release(j->c);
    free(j);
}

static void submit(struct wsjob *j, oh_work_fn fn)
{
    j->job = (struct gw_job){fn, j, &j->c->left, -1, 0, 0, false};
    if (oh_workq_submit(j->c->gw->work, fn, j) != OH_OK) {
        gw_ws_send_error(j->c, "unavailable", "server is shutting down");
        job_free(j);
    }
}

static void next_page(struct sub *s)
{
    if (s->page_busy || s->dead || s->live) return;
    if (s->c->out_bytes > s->c->gw->ws_max_queue / 2) {
        s->paused = true; /* resumes when the client has read */
        return;
    }
    struct wsjob *j = job_new(s->c, s->all ? JOB_CHANGES : JOB_PAGE);
    if (!j) return;
    s->paused = false;
    s->page_busy = true;
    s->overflow = false;
    j->sub = s;
    s->jobs++;
    if (s->all) {
        snprintf(j->pos, sizeof j->pos, "%s", s->pos);
        j->limit = PAGE_FIRST;
        submit(j, gw_ws_changes_work);
        return;
    }
    snprintf(j->conv, sizeof j->conv, "%s", s->conv);
    j->after = s->last;
    size_t fit = s->row_bytes ? s->c->gw->ws_max_queue / 4 / s->row_bytes + 1 : FIRST_EVENTS;
    j->limit = fit < 16 ? 16 : fit > PAGE_ROWS ? PAGE_ROWS : (int)fit;
    submit(j, gw_ws_page_work);
}

void gw_ws_drained(struct wsconn *c)
{
    for (struct sub *s = c->subs; s; s = s->next_conn)
        if (s->paused) next_page(s);
}

/* Queues the N frames in *PAGE (SEQS and OFFS: each one's seq and start)
 * from the first event the client has not had yet; *PAGE is taken when
 * queued. False when the connection is closing (a slow consumer). */
static bool queue_frames(struct sub *s, struct outbuf **page, const int64_t *seqs,
                         const size_t *offs, int n)
{
    struct wsconn *c = s->c;
    int i = 0;
    while (i < n && seqs[i] <= s->last) /* none, unless a page was read twice */
        i++;
    if (i == n) return true;
    struct outbuf *m = *page;
    if (offs[i]) {
        m->len -= offs[i];
        memmove(m->data, m->data + offs[i], m->len);
    }
    if (!gw_ws_queue_ok(c, m->len)) return false;
    c->out_bytes += m->len;
    gw_ws_queue_link(c, m);
    *page = NULL;
    int64_t before = s->last;
    s->last = seqs[n - 1];
    gw_ws_pushed(s, before, s->last);
    oh_metrics_inc("omnihub_ws_events_pushed_total", "", (uint64_t)(n - i));
    oh_metrics_inc("omnihub_ws_events_replayed_total", "", (uint64_t)(n - i));
    return true;
}

/* Queues the frames of a page that the pool is still reading. */
static void replay_chunk(struct wsjob *ch)
{
    struct wsjob *j = ch->parent;
    struct sub *s = j->sub;
    if (!ch->c->wsi || s->dead) return;
    queue_frames(s, &ch->page, j->seqs + ch->sent, j->offs + ch->sent, ch->nrows - ch->sent);
}

/* Queues a page read by the pool (what its chunks did not carry): its
 * frames go out as they are. */
static void replay_page(struct sub *s, struct wsjob *j)
{
    if (j->nrows) s->row_bytes = (j->sent_bytes + (j->page ? j->page->len : 0)) / (size_t)j->nrows;
    if (j->nrows > j->sent &&
        !queue_frames(s, &j->page, j->seqs + j->sent, j->offs + j->sent, j->nrows - j->sent))
        return;
    if (j->more || s->overflow)
        next_page(s);
    else
        gw_ws_go_live(s);
}

static void finish_job(struct wsjob *j)
{
    struct wsconn *c = j->c;
    struct sub *s = j->sub;
    if (!c->wsi) return;
    switch (j->kind) {
    case JOB_SUBSCRIBE:
        if (s->dead) break;
        if (j->status) {
            gw_ws_send_error(c, gw_error_code(j->status),
                             j->status == 404 ? "no such conversation" : "store unavailable");
            sub_drop(s);
            break;
        }
        s->last = j->seq;
        gw_ws_send_json(c, json_pack("{s:s, s:s, s:s, s:I, s:b}", "type", "subscribed",
                                     "conversation", s->conv, "epoch", j->cur_epoch, "head",
                                     (json_int_t)j->head, "recovered", j->recovered));
        replay_page(s, j);
        break;
    case JOB_PAGE:
        s->page_busy = false;
        if (s->dead) break;
        if (j->status) {
            gw_ws_send_error(c, "unavailable", "store unavailable during replay");
            sub_drop(s);
            break;
        }
        replay_page(s, j);
        break;
    case JOB_CHANGES:
        s->page_busy = false;
        if (s->dead) break;
        if (j->status) {
            gw_ws_send_error(c, gw_error_code(j->status),
                             j->status == 400 ? "cursor is not one this server gave out"
                                              : "store unavailable during the catch-up");
            sub_drop(s);
            break;
        }
        if (j->page && j->page->len) {
            if (!gw_ws_queue_ok(c, j->page->len)) break;
            c->out_bytes += j->page->len;
            gw_ws_queue_link(c, j->page);
            j->page = NULL;
        }
        snprintf(s->pos, OH_STORE_POS_MAX, "%s", j->next_pos);
        if (j->more) {
            next_page(s);
            break;
        }
        {
            char cursor[64 + OH_STORE_POS_MAX];
            snprintf(cursor, sizeof cursor, "%s~%s", oh_store_epoch(c->gw->hub->store), s->pos);
            gw_ws_send_json(c, json_pack("{s:s, s:s, s:s, s:I, s:b, s:s}", "type", "subscribed",
                                         "conversation", "*", "epoch",
                                         oh_store_epoch(c->gw->hub->store), "head", (json_int_t)0,
                                         "recovered", s->recovered, "cursor", cursor));
        }
        gw_ws_go_live(s);
        break;
    case JOB_SEND:
        if (j->status) {
            gw_ws_send_json(c, json_pack("{s:s, s:s, s:s, s:s}", "type", "error", "code",
                                         j->status == 403   ? "forbidden"
                                         : j->status == 404 ? "not_found"
                                         : j->status == 409 ? "conflict"
                                         : j->status == 503 ? "unavailable"
                                                            : "bad_request",
                                         "message", j->err, "client_msg_id", j->key));
        } else {
            gw_ws_send_json(c, json_pack("{s:s, s:s, s:O, s:O}", "type", "ack", "client_msg_id",
                                         j->key, "event_id", json_object_get(j->event, "id"),
                                         "conversation_id", json_object_get(j->event, "subject")));
        }
        break;
    case JOB_CHUNK: break; /* queued by drain_jobs */
    case JOB_READ:
        if (j->status) {
            gw_ws_send_error(c, gw_error_code(j->status),
                             j->status == 400 ? "seq is past the head" : "cannot store the cursor");
        } else {
            gw_signal_read_fanout(c->gw, &c->who, j->conv, j->seq);
        }
        break;
    }
}

static void drain_jobs(struct oh_gateway *gw)
{
    pthread_mutex_lock(&gw->mu);
    struct wsjob *j = gw->ws_done, *rev = NULL;
    gw->ws_done = NULL;
    pthread_mutex_unlock(&gw->mu);
    while (j) { /* oldest first */
        struct wsjob *next = j->next;
        j->next = rev;
        rev = j;
        j = next;
    }
    while (rev) {
        struct wsjob *next = rev->next;
        if (rev->kind == JOB_CHUNK) { /* before its page's completion */
            replay_chunk(rev);
            free(rev->page);
            free(rev);
        } else {
            finish_job(rev);
            job_free(rev);
        }
        rev = next;
    }
}

/* ---- client messages ---- */

static bool conv_arg(struct wsconn *c, json_t *msg, char out[OH_ID_MAX], bool allow_new)
{
    const char *conv = json_string_value(json_object_get(msg, "conversation"));
    if (!conv || !*conv || strlen(conv) >= OH_ID_MAX) {
        gw_ws_send_error(c, "bad_request", "conversation must be a conversation id");
        return false;
    }
    if (!(allow_new && strcmp(conv, "new") == 0) && !(strcmp(conv, "*") == 0) &&
        !oh_auth_may_access(&c->who, conv)) {
        gw_ws_send_error(c, "forbidden", "not your conversation");
        return false;
    }
    snprintf(out, OH_ID_MAX, "%s", conv);
    return true;
}

static void on_subscribe(struct wsconn *c, json_t *msg)
{
    char conv[OH_ID_MAX];
    json_t *after = json_object_get(msg, "after");
    json_t *epoch = json_object_get(msg, "epoch");
    json_t *cursor = json_object_get(msg, "cursor");
    bool customer = c->who.role == OH_ROLE_CUSTOMER;
    if (!conv_arg(c, msg, conv, customer)) return;
    if (customer && strcmp(conv, "new") == 0) { /* a new device: "my conversation" */
        if (!c->who.owns[0]) {
            gw_ws_send_error(c, "forbidden", "no conversation of yours here");
            return;
        }
        snprintf(conv, sizeof conv, "%s", c->who.owns);
    }
    if ((after && (!json_is_integer(after) || json_integer_value(after) < 0)) ||
        (epoch && !json_is_null(epoch) && !json_is_string(epoch))) {
        gw_ws_send_error(c, "bad_request", "after must be a non-negative integer, epoch a string");
        return;
    }
    bool all = strcmp(conv, "*") == 0;
    if (cursor && (!all || !json_is_string(cursor) ||
                   strlen(json_string_value(cursor)) >= 64 + OH_STORE_POS_MAX)) {
        gw_ws_send_error(c, "bad_request", "cursor is a string, for \"*\" only");
        return;
    }
    if (all && !oh_auth_is_agent(&c->who)) {
        gw_ws_send_error(c, "forbidden", "only agents subscribe to every conversation");
        return;
    }
    for (struct sub *s = c->subs, *next; s; s = next) {
        next = s->next_conn;
        if (!s->dead && strcmp(s->conv, conv) == 0) sub_drop(s); /* a new subscribe replaces it */
    }
    if (c->nsubs >= MAX_SUBS) {
        gw_ws_send_error(c, "bad_request", "too many subscriptions on one connection");
        return;
    }
    struct sub *s = calloc(1, sizeof *s + (all ? OH_STORE_POS_MAX : 0));
    if (!s) return;
    s->c = c;
    s->all = all;
    s->pend_tail = &s->pend;
    snprintf(s->conv, sizeof s->conv, "%s", conv);
    s->next_conn = c->subs;
    c->subs = s;
    c->nsubs++;
    subs_gauge(1);
    oh_metrics_inc("omnihub_ws_subscriptions_total", "", 1);
    if (all && cursor) { /* live first (held back), then the catch-up: no gap */
        s->next_hash = c->gw->all_subs;
        c->gw->all_subs = s;
        s->resume = s->recovered = true;
        const char *v = json_string_value(cursor), *tilde = strchr(v, '~');
        const char *ours = oh_store_epoch(c->gw->hub->store);
        if (!*v) {
            s->pos[0] = '\0'; /* now */
        } else if (tilde && (size_t)(tilde - v) == strlen(ours) &&
                   strncmp(v, ours, strlen(ours)) == 0) {
            snprintf(s->pos, OH_STORE_POS_MAX, "%s", tilde + 1);
        } else { /* another store's position: every conversation */
            s->recovered = false;
            snprintf(s->pos, OH_STORE_POS_MAX, "r0");
        }
        next_page(s);
        return;
    }
    if (all) {
        s->live = true;
        s->next_hash = c->gw->all_subs;
        c->gw->all_subs = s;
        gw_ws_send_json(c,
                        json_pack("{s:s, s:s, s:s, s:I, s:b}", "type", "subscribed", "conversation",
                                  "*", "epoch", oh_store_epoch(c->gw->hub->store), "head",
                                  (json_int_t)0, "recovered", true));
        return;
    }
    /* live first, then the replay: nothing can fall between the two */
    unsigned slot = gw_ws_slot_of(conv);
    s->next_hash = c->gw->subs[slot];
    c->gw->subs[slot] = s;
    struct wsjob *j = job_new(c, JOB_SUBSCRIBE);
    if (!j) return;
    j->sub = s;
    s->jobs++;
    snprintf(j->conv, sizeof j->conv, "%s", conv);
    j->after = after ? json_integer_value(after) : 0;
    j->limit = FIRST_EVENTS;
    if (json_is_string(epoch)) {
        j->has_epoch = true;
        snprintf(j->epoch, sizeof j->epoch, "%s", json_string_value(epoch));
    }
    submit(j, gw_ws_subscribe_work);
}

/* A send's client_msg_id as its answers carry it: "" when absent or too long. */
#define SEND_KEY_MAX 128
static const char *send_key(json_t *msg)
{
    const char *key = json_string_value(json_object_get(msg, "client_msg_id"));
    return key && strlen(key) <= SEND_KEY_MAX ? key : "";
}

static void on_send(struct wsconn *c, json_t *msg)
{
    char conv[OH_ID_MAX];
    if (!conv_arg(c, msg, conv, c->who.role == OH_ROLE_CUSTOMER)) return;
    if (strcmp(conv, "*") == 0) {
        gw_ws_send_error(c, "bad_request", "cannot send to \"*\"");
        return;
    }
    struct wsjob *j = job_new(c, JOB_SEND);
    if (!j) return;
    snprintf(j->conv, sizeof j->conv, "%s", conv);
    snprintf(j->key, sizeof j->key, "%s", send_key(msg));
    j->body = json_incref(msg);
    submit(j, gw_ws_send_work);
}

static void on_read(struct wsconn *c, json_t *msg)
{
    char conv[OH_ID_MAX];
    json_t *seq = json_object_get(msg, "seq");
    if (!conv_arg(c, msg, conv, false)) return;
    if (!json_is_integer(seq) || json_integer_value(seq) < 0 || strcmp(conv, "*") == 0) {
        gw_ws_send_error(c, "bad_request", "read needs a conversation and a non-negative seq");
        return;
    }
    struct wsjob *j = job_new(c, JOB_READ);
    if (!j) return;
    snprintf(j->conv, sizeof j->conv, "%s", conv);
    j->seq = json_integer_value(seq);
    submit(j, gw_ws_read_work);
}

static bool rate_ok(struct wsconn *c)
{
    if (c->gw->ws_rate <= 0) return true;
    int64_t now = oh_mono_ms();
    c->tokens += (double)(now - c->tokens_ms) * c->gw->ws_rate / 1000.0;
    c->tokens_ms = now;
    if (c->tokens > 2.0 * c->gw->ws_rate) c->tokens = 2.0 * c->gw->ws_rate;
    if (c->tokens < 1) return false;
    c->tokens -= 1;
    return true;
}

json_t *gw_ws_parse(const char *buf, size_t len, const char **type, const char **why)
{
    json_error_t e;
    json_t *msg = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &e);
    *type = json_string_value(json_object_get(msg, "type"));
    *why = !msg || !json_is_object(msg) ? "each message must be one JSON object"
           : !*type                     ? "message lacks \"type\""
                                        : NULL;
    if (*why) {
        json_decref(msg);
        return NULL;
    }
    return msg;
}

/* Refuses the client message BUF (LEN bytes; NULL: none) with CODE and
 * MSG. A send's refusal names its client_msg_id by send_key's rule, so the
 * client knows which to send again; it is read in one pass without
 * building the document (a flood is one of the things refused here). */
static void refuse(struct wsconn *c, const char *buf, size_t len, const char *code, const char *msg)
{
    struct oh_json_pick p[2] = {{.path = "type"}, {.path = "client_msg_id"}};
    char *strs = buf ? malloc(len + 1) : NULL;
    json_t *e = json_pack("{s:s, s:s, s:s}", "type", "error", "code", code, "message", msg);
    if (e && strs && oh_json_pick(buf, len, p, 2, strs) == OH_OK && p[0].s &&
        strcmp(p[0].s, "send") == 0)
        json_object_set_new(e, "client_msg_id",
                            p[1].s && p[1].len <= SEND_KEY_MAX ? json_stringn(p[1].s, p[1].len)
                                                               : json_string(""));
    free(strs);
    gw_ws_send_json(c, e);
}

/* C's token has expired: an error frame (BUF, the client message that
 * found it so, NULL none). gw_ws_tick then closes C with 1008, policy
 * violation, once the requests C made in time are answered. */
static void token_expired(struct wsconn *c, const char *buf, size_t len)
{
    refuse(c, buf, len, "unauthorized", "token expired");
    c->expired = true;
}

static void on_message(struct wsconn *c, const char *buf, size_t len)
{
    if (c->close_code) return; /* closing: no answer could reach the client */
    if (oh_auth_expired(c->who.exp, oh_now_ms() / 1000)) {
        token_expired(c, buf, len);
        return;
    }
    if (!rate_ok(c)) {
        oh_metrics_inc("omnihub_ws_rate_limited_total", "", 1);
        refuse(c, buf, len, "rate_limited", "too many messages; slow down");
        return;
    }
    const char *type, *why;
    json_t *msg = gw_ws_parse(buf, len, &type, &why);
    if (!msg) {
        gw_ws_send_error(c, "bad_request", why);
    } else if (strcmp(type, "subscribe") == 0) {
        on_subscribe(c, msg);
    } else if (strcmp(type, "send") == 0) {
        on_send(c, msg);
    } else if (strcmp(type, "read") == 0) {
        on_read(c, msg);
    } else if (strcmp(type, "typing") == 0) {
        gw_signal_typing(c, msg);
    } else if (strcmp(type, "presence") == 0) {
        gw_signal_presence(c, msg);
    } else if (strcmp(type, "ping") == 0) {
        gw_ws_send_json(c, json_pack("{s:s}", "type", "pong"));
    } else {
        gw_ws_send_error(c, "bad_request", "unknown message type");
    }
    json_decref(msg);
}

/* ---- connection lifetime ---- */

static void conn_release(struct wsconn *c)
{
    if (--c->refs > 0) return;
    while (c->subs) {
        struct sub *s = c->subs;
        c->subs = s->next_conn;
        sub_free(s);
    }
    gw_ws_queue_free(c);
    free(c->rx);
    free(c);
}

static void conn_closed(struct wsconn *c)
{
    struct oh_gateway *gw = c->gw;
    for (struct sub *s = c->subs; s; s = s->next_conn)
        if (!s->dead) sub_unlink(gw, s);
    gw_signal_closed(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        gw->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->wsi = NULL;
    atomic_store(&c->left, true);
    oh_metrics_set("omnihub_ws_connections", "",
                   oh_metrics_value("omnihub_ws_connections", "") - 1);
    conn_release(c);
}

int gw_ws_token(struct lws *wsi, char *out, size_t len)
{
    char h[4200];
    if (lws_hdr_copy(wsi, h, sizeof h, WSI_TOKEN_HTTP_AUTHORIZATION) > 7 &&
        strncasecmp(h, "Bearer ", 7) == 0) {
        snprintf(out, len, "%s", h + 7);
        return 0;
    }
    /* lws copies "access_token=<value>" and points at the value */
    const char *v = lws_get_urlarg_by_name(wsi, "access_token=", h, (int)sizeof h);
    if (!v) return -1;
    snprintf(out, len, "%s", v);
    return 0;
}

int gw_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len)
{
    struct wsconn **slot = user;
    struct oh_gateway *gw = lws_context_user(lws_get_context(wsi));
    struct wsconn *c = slot ? *slot : NULL;
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
        char uri[64] = "", token[4200], why[128];
        struct oh_principal who;
        lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI);
        if (strcmp(uri, "/v1/ws") != 0)
            return gw_refuse_upgrade(wsi, 404, "not_found", "no WebSocket here", 0);
        if (gw_ws_token(wsi, token, sizeof token) ||
            oh_auth_verify(gw->auth, token, oh_now_ms() / 1000, &who, why, sizeof why)) {
            oh_metrics_inc("omnihub_auth_failures_total", "", 1);
            return gw_refuse_upgrade(wsi, 401, "unauthorized", "missing, bad or expired token", 0);
        }
        gw_principal_owns(gw, &who);
        c = calloc(1, sizeof *c);
        if (!c) return -1;
        c->who = who;
        c->authed = true;
        *slot = c;
        return 0;
    }
    case LWS_CALLBACK_ESTABLISHED:
        if (!c) return -1;
        c->gw = gw;
        c->wsi = wsi;
        c->refs = 1;
        c->last_rx_ms = c->ping_ms = c->tokens_ms = oh_mono_ms();
        c->tokens = 2.0 * gw->ws_rate;
        c->next = gw->conns;
        if (gw->conns) gw->conns->prev = c;
        gw->conns = c;
        oh_metrics_set("omnihub_ws_connections", "",
                       oh_metrics_value("omnihub_ws_connections", "") + 1);
        oh_metrics_inc("omnihub_ws_connections_total", "", 1);
        gw_signal_connected(c);
        if (gw->stop) gw_ws_bye(gw); /* upgraded while the daemon says goodbye */
        return 0;
    case LWS_CALLBACK_RECEIVE:
        if (!c || !c->wsi) return -1;
        c->last_rx_ms = oh_mono_ms();
        /* protocol violations: close at once, telling the peer why */
        if (lws_frame_is_binary(wsi)) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
                             (unsigned char *)"text frames only", 16);
            return -1;
        }
        if (c->rx_len + len > gw->ws_max_frame) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                             (unsigned char *)"message too large", 17);
            return -1;
        }
        if (lws_is_first_fragment(wsi) && lws_is_final_fragment(wsi) && !c->rx_len) {
            on_message(c, in, len);
            return 0;
        }
        {
            char *nb = realloc(c->rx, c->rx_len + len + 1);
            if (!nb) return -1;
            memcpy(nb + c->rx_len, in, len);
            c->rx = nb;
            c->rx_len += len;
        }
        if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
            on_message(c, c->rx, c->rx_len);
            c->rx_len = 0;
        }
        return 0;
    case LWS_CALLBACK_RECEIVE_PONG:
        if (c) c->last_rx_ms = oh_mono_ms();
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE: return c && c->wsi ? gw_ws_writable(c) : -1;
    case LWS_CALLBACK_CLOSED:
        if (c && c->wsi)
            conn_closed(c);
        else if (c)
            free(c); /* filtered but never established */
        *slot = NULL;
        return 0;
    default: return 0;
    }
}

/* Once a second: a connection whose token expired at least a second ago
 * is closed (a client message is refused from exp on, on_message; the
 * second between is where a message sent at exp gets its own answer,
 * client_msg_id and all, rather than a race with this close); idle
 * connections are closed; a connection silent for ws.ping_interval is
 * pinged, and closed when its peer has not answered for twice that plus
 * 10 s. These pings are ours, not lws's retry policy: lws keeps one timer
 * per connection for them in a sorted list that every timer insertion
 * walks, which with 10k connections cost more CPU than all the rest of the
 * gateway. */
void gw_ws_tick(struct oh_gateway *gw)
{
    int64_t now = oh_mono_ms(), ping = (int64_t)gw->ws_ping * 1000, now_s = oh_now_ms() / 1000;
    for (struct wsconn *c = gw->conns; c; c = c->next) {
        if (c->close_code) continue;
        if (c->expired || oh_auth_expired(c->who.exp + 1, now_s)) {
            /* a job still on the pool answers a request made in time (a
             * send stored must be acknowledged): the close waits for it,
             * CLOSE_FLUSH_S past exp at most */
            if (c->refs > 1 && !oh_auth_expired(c->who.exp + GW_WS_CLOSE_FLUSH_S, now_s)) continue;
            if (!c->expired) token_expired(c, NULL, 0);
            gw_ws_close_after(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "token expired");
        } else if (gw->ws_idle > 0 && now - c->last_rx_ms > (int64_t)gw->ws_idle * 1000) {
            gw_ws_close(c, LWS_CLOSE_STATUS_GOINGAWAY, "idle timeout");
        } else if (ping > 0 && now - c->last_rx_ms > 2 * ping + 10000) {
            gw_ws_close(c, LWS_CLOSE_STATUS_GOINGAWAY, "no answer to pings");
        } else if (ping > 0 && now - c->last_rx_ms >= ping && now - c->ping_ms >= ping && c->wsi) {
            c->ping_ms = now;
            c->want_ping = true;
            lws_callback_on_writable(c->wsi);
        }
    }
}

bool gw_ws_bye(struct oh_gateway *gw)
{
    for (struct wsconn *c = gw->conns; c; c = c->next)
        gw_ws_close_after(c, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down");
    return gw->conns != NULL;
}

void gw_ws_free_all(struct oh_gateway *gw)
{
    drain_jobs(gw);
    while (gw->live) {
        struct live_item *it = gw->live;
        gw->live = it->next;
        free(it);
    }
}
