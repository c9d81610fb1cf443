/* http_api.c - the REST API of agents and clients: conversation lists,
 * history pages, sending messages and read cursors. Store work runs on
 * the gateway's worker pool. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gateway/gateway_int.h"
#include "core/metrics.h"

/* Per-request state of the conversation routes. */
struct api {
    char conv[OH_ID_MAX];
    int64_t after, since_ms;
    int limit;
    json_t *body;
    json_t *event; /* built message */
    int64_t read_seq;
};

static void api_free(void *p)
{
    struct api *a = p;
    json_decref(a->body);
    json_decref(a->event);
    free(a);
}

static struct api *api_state(struct req *r)
{
    struct api *a = calloc(1, sizeof *a);
    if (a) {
        r->state = a;
        r->state_free = api_free;
    }
    return a;
}

static bool parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno == ERANGE || v < lo || v > hi) return false;
    *out = v;
    return true;
}

/* Parses the JSON body; false after answering 400. */
static bool json_body(struct req *r, json_t **out)
{
    json_error_t e;
    *out = r->body ? json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &e) : NULL;
    if (!*out || !json_is_object(*out)) {
        gw_reply_error(r, 400, "bad_request", "body must be a JSON object%s%s", *out ? "" : ": ",
                       *out ? "" : (r->body ? e.text : "empty body"));
        json_decref(*out);
        *out = NULL;
        return false;
    }
    return true;
}

/* ---- GET /v1/conversations ---- */

static int conv_row(void *opaque, const struct oh_conversation *c)
{
    char upd[32], created[32];
    oh_time_rfc3339(upd, c->updated_ms);
    oh_time_rfc3339(created, c->created_ms);
    json_t *o = json_pack("{s:s, s:s, s:s, s:{s:s, s:s}, s:I, s:s, s:s}", "conversation_id", c->id,
                          "channel", c->channel, "account", c->account, "contact", "id",
                          c->contact_id, "name", c->contact_name, "head", (json_int_t)c->head,
                          "updated_at", upd, "created_at", created);
    if (o && c->last_inbound_ms) {
        oh_time_rfc3339(upd, c->last_inbound_ms);
        json_object_set_new(o, "last_inbound_at", json_string(upd));
    }
    json_array_append_new(opaque, o);
    return 0;
}

static void list_work(void *opaque)
{
    struct req *r = opaque;
    struct api *a = r->state;
    json_t *arr = json_array();
    int rc = oh_store_conversations(r->gw->hub->store, a->since_ms, a->limit, conv_row, arr);
    if (rc) {
        json_decref(arr);
        gw_reply_error(r, 503, "unavailable", "store: %s", oh_strerror(rc));
    } else {
        gw_reply_json(r, 200, json_pack("{s:o}", "conversations", arr));
    }
    gw_complete(r);
}

static void list_conversations(struct req *r)
{
    if (!oh_auth_is_agent(&r->who)) {
        gw_reply_error(r, 403, "forbidden", "only agents list conversations");
        return;
    }
    struct api *a = api_state(r);
    char v[64];
    int64_t n = 50;
    if (!a) {
        gw_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    if (gw_query(r, "limit", v, sizeof v) && !parse_int(v, 1, 1000, &n)) {
        gw_reply_error(r, 400, "bad_request", "limit must be 1..1000");
        return;
    }
    a->limit = (int)n;
    if (gw_query(r, "updated_after", v, sizeof v) && oh_time_parse(v, &a->since_ms)) {
        gw_reply_error(r, 400, "bad_request", "updated_after must be RFC 3339");
        return;
    }
    gw_async(r, list_work);
}

/* ---- GET /v1/conversations/{id} ---- */

static void get_one_work(void *opaque)
{
    struct req *r = opaque;
    struct api *a = r->state;
    struct oh_conversation c;
    int rc = oh_store_conversation_get(r->gw->hub->store, a->conv, &c);
    if (rc == OH_ENOTFOUND)
        gw_reply_error(r, 404, "not_found", "no such conversation");
    else if (rc)
        gw_reply_error(r, 503, "unavailable", "store: %s", oh_strerror(rc));
    else
        gw_reply_json(r, 200, gw_conversation_json(&c, gw_unread(r, &c)));
    gw_complete(r);
}

static void get_conversation(struct req *r, const char *conv)
{
    struct api *a = api_state(r);
    if (!a) {
        gw_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    snprintf(a->conv, sizeof a->conv, "%s", conv);
    gw_async(r, get_one_work);
}

/* ---- GET /v1/conversations/{id}/events ---- */

/* A page holds at most http.max_page bytes of events (as the WebSocket
 * replay's pages hold ws.max_queue / 4), and at least one event: 1000 rows
 * of the largest events a client may send would otherwise be held, per
 * request, in the store's answer and in the page. next_after carries the
 * rest; a page shorter than the limit is not the end, next_after == head
 * is. */
#define PAGE_FIRST_ROWS 16
/* room kept before the events for the page's head (its strings are
 * bounded: a conversation id, the epoch, three integers) */
#define PAGE_HEAD_MAX 512

struct page {
    char *buf; /* LWS_PRE + PAGE_HEAD_MAX bytes, then the events */
    size_t len, cap, budget;
    int64_t last;
    int count, rows; /* in the page; in this store call */
    bool full;       /* stopped at the budget */
    bool customer;   /* internal events go out as placeholders */
};

static int page_put(struct page *p, int64_t seq, const char *json, size_t len);

/* Stored text as it is for agents (no parse); for a customer, what
 * oh_event_customer_text() says they see (parsed only when the text may be
 * internal). */
static int page_row(void *opaque, const char *conv, int64_t seq, const char *json, size_t len)
{
    struct page *p = opaque;
    char *shown = NULL;
    size_t shown_len = 0;
    if (!p->customer) return page_put(p, seq, json, len);
    int rc = oh_event_customer_text(json, len, &shown, &shown_len);
    if (rc) return rc;
    rc = shown ? page_put(p, seq, shown, shown_len) : page_put(p, seq, json, len);
    free(shown);
    return rc;
}

static int page_put(struct page *p, int64_t seq, const char *json, size_t len)
{
    if (p->count && p->len + len + 1 > p->budget) {
        p->full = true;
        return 1;
    }
    size_t at = LWS_PRE + PAGE_HEAD_MAX + p->len;
    if (at + len + 4 > p->cap) {
        size_t cap = (at + len + 4) * 2;
        if (cap < at + len + 4 + p->budget / 4) cap = at + len + 4 + p->budget / 4;
        char *nb = realloc(p->buf, cap);
        if (!nb) return OH_ENOMEM;
        p->buf = nb;
        p->cap = cap;
    }
    if (p->count++) p->buf[at++] = ',';
    memcpy(p->buf + at, json, len);
    p->len = at + len - LWS_PRE - PAGE_HEAD_MAX;
    p->last = seq;
    p->rows++;
    return 0;
}

/* Reads up to LIMIT events after AFTER into P, in store calls whose row
 * limit follows the budget (a PostgreSQL store sends every row a LIMIT
 * asks for, so stopping the walk alone would not bound its answer). */
static int read_page(oh_store *st, const char *conv, int64_t after, int limit, struct page *p)
{
    int want = limit < PAGE_FIRST_ROWS ? limit : PAGE_FIRST_ROWS;
    for (;;) {
        p->rows = 0;
        int rc = oh_store_history(st, conv, after, want, page_row, p);
        if (rc) return rc;
        if (p->full || p->rows < want || p->count >= limit) return OH_OK;
        after = p->last;
        size_t per_row = p->len / (size_t)p->count + 1;
        size_t fit = p->len < p->budget ? (p->budget - p->len) / per_row + 1 : 1;
        want = limit - p->count;
        if ((size_t)want > fit) want = (int)fit;
    }
}

static void events_work(void *opaque)
{
    struct req *r = opaque;
    struct api *a = r->state;
    oh_store *st = r->gw->hub->store;
    struct oh_conversation c;
    struct page p = {.budget = r->gw->max_page, .customer = !oh_auth_is_agent(&r->who)};
    int rc = oh_store_conversation_get(st, a->conv, &c);
    if (rc == OH_OK) rc = read_page(st, a->conv, a->after, a->limit, &p);
    if (rc == OH_ENOTFOUND) {
        gw_reply_error(r, 404, "not_found", "no such conversation");
    } else if (rc) {
        gw_reply_error(r, rc == OH_ENOMEM ? 500 : 503, rc == OH_ENOMEM ? "internal" : "unavailable",
                       "store: %s", oh_strerror(rc));
    } else if (!p.buf && !(p.buf = malloc(LWS_PRE + PAGE_HEAD_MAX + 4))) {
        gw_reply_error(r, 500, "internal", "out of memory");
    } else {
        char head[PAGE_HEAD_MAX];
        int64_t next = p.count ? p.last : a->after;
        int n = snprintf(head, sizeof head,
                         "{\"conversation_id\":\"%s\",\"epoch\":\"%s\",\"head\":%lld,"
                         "\"next_after\":%lld,\"events\":[",
                         a->conv, oh_store_epoch(st), (long long)c.head, (long long)next);
        if (n <= 0 || n >= (int)sizeof head) {
            gw_reply_error(r, 500, "internal", "page head too long");
        } else {
            /* the head goes in front of the events in place: no second copy */
            char *body = p.buf + LWS_PRE;
            memmove(body + n, body + PAGE_HEAD_MAX, p.len);
            memcpy(body, head, (size_t)n);
            memcpy(body + n + p.len, "]}", 3);
            gw_reply_take(r, 200, "application/json", p.buf, (size_t)n + p.len + 2);
            p.buf = NULL;
        }
    }
    free(p.buf);
    gw_complete(r);
}

static void list_events(struct req *r, const char *conv)
{
    struct api *a = api_state(r);
    char v[64];
    int64_t n = 100;
    if (!a) {
        gw_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    snprintf(a->conv, sizeof a->conv, "%s", conv);
    if (gw_query(r, "after", v, sizeof v) && !parse_int(v, 0, INT64_MAX, &a->after)) {
        gw_reply_error(r, 400, "bad_request", "after must be a non-negative integer");
        return;
    }
    if (gw_query(r, "limit", v, sizeof v) && !parse_int(v, 1, 1000, &n)) {
        gw_reply_error(r, 400, "bad_request", "limit must be 1..1000");
        return;
    }
    a->limit = (int)n;
    gw_async(r, events_work);
}

/* ---- sending (the message itself: compose.c) ---- */

static void on_sent(void *opaque, int err)
{
    struct req *r = opaque;
    struct api *a = r->state;
    gw_message_count(a->event, err);
    if (err) {
        gw_message_forget(a->event); /* nothing was stored: the key is free again */
        r->retry_after = 1;
        gw_reply_error(r, 503, "unavailable", "the message could not be made durable; retry");
    } else {
        gw_reply_json(r, 202,
                      json_pack("{s:O, s:O}", "event_id", json_object_get(a->event, "id"),
                                "conversation_id", json_object_get(a->event, "subject")));
    }
    gw_complete(r);
}

static void send_work(void *opaque)
{
    struct req *r = opaque;
    struct api *a = r->state;
    char err[256];
    int st = gw_build_message(r->gw, &r->who, a->conv, a->body, &a->event, err, sizeof err);
    if (st) {
        gw_reply_error(r, st, gw_error_code(st), "%s", err);
        gw_complete(r);
        return;
    }
    struct oh_event_list l = {0};
    oh_event_list_push(&l, json_incref(a->event));
    if (oh_hub_ingest(r->gw->hub, &l, on_sent, r) != OH_OK) {
        gw_message_forget(a->event);
        gw_reply_error(r, 503, "unavailable", "log unavailable");
        gw_complete(r);
    }
}

static void post_message(struct req *r, const char *conv)
{
    struct api *a = api_state(r);
    if (!a || !json_body(r, &a->body)) return;
    snprintf(a->conv, sizeof a->conv, "%s", conv);
    gw_async(r, send_work);
}

/* ---- read cursors ---- */

static void after_read(struct req *r)
{
    struct api *a = r->state;
    if (r->status == 200) r->gw->read_fanout(r->gw, &r->who, a->conv, a->read_seq);
}

static void read_work(void *opaque)
{
    struct req *r = opaque;
    struct api *a = r->state;
    oh_store *st = r->gw->hub->store;
    struct oh_conversation c;
    int rc = oh_store_conversation_get(st, a->conv, &c);
    if (rc == OH_OK && a->read_seq > c.head) {
        gw_reply_error(r, 400, "bad_request", "seq %lld is past the head %lld",
                       (long long)a->read_seq, (long long)c.head);
    } else if (rc == OH_OK &&
               (rc = oh_store_cursor_set(st, a->conv, oh_auth_role_name(r->who.role), r->who.sub,
                                         r->who.device, a->read_seq)) == OH_OK) {
        gw_notify_read(r->gw, a->conv, r->who.role, a->read_seq);
        r->after = after_read;
        gw_reply_json(r, 200,
                      json_pack("{s:s, s:I, s:s}", "conversation_id", a->conv, "seq",
                                (json_int_t)a->read_seq, "device", r->who.device));
    } else if (rc == OH_ENOTFOUND) {
        gw_reply_error(r, 404, "not_found", "no such conversation");
    } else {
        gw_reply_error(r, 503, "unavailable", "store: %s", oh_strerror(rc));
    }
    gw_complete(r);
}

static void post_read(struct req *r, const char *conv)
{
    struct api *a = api_state(r);
    json_t *body;
    if (!a || !json_body(r, &body)) return;
    json_t *seq = json_object_get(body, "seq");
    if (!json_is_integer(seq) || json_integer_value(seq) < 0) {
        json_decref(body);
        gw_reply_error(r, 400, "bad_request", "seq must be a non-negative integer");
        return;
    }
    a->read_seq = json_integer_value(seq);
    json_decref(body);
    snprintf(a->conv, sizeof a->conv, "%s", conv);
    gw_async(r, read_work);
}

/* ---- routing ---- */

bool gw_api_route(struct req *r)
{
    const char *p = r->path;
    if (strncmp(p, "/v1/conversations", 17) != 0 || (p[17] && p[17] != '/')) return false;
    snprintf(r->route, sizeof r->route, "/v1/conversations");
    if (!gw_authenticate(r)) return true;
    if (!p[17] || !p[18]) {
        if (strcmp(r->method, "GET") != 0)
            gw_reply_error(r, 405, "method_not_allowed", "use GET");
        else
            list_conversations(r);
        return true;
    }
    const char *id = p + 18, *slash = strchr(id, '/');
    size_t idlen = slash ? (size_t)(slash - id) : strlen(id);
    char conv[OH_ID_MAX];
    bool is_new = idlen == 3 && strncmp(id, "new", 3) == 0;
    if (!oh_id_valid(id, idlen) || (slash && !slash[1])) {
        gw_reply_error(r, 404, "not_found", "no such conversation");
        return true;
    }
    snprintf(conv, sizeof conv, "%.*s", (int)idlen, id);
    if (!slash) {
        snprintf(r->route, sizeof r->route, "/v1/conversations/{id}");
        if (is_new || !oh_auth_may_access(&r->who, conv))
            gw_reply_error(r, is_new ? 404 : 403, is_new ? "not_found" : "forbidden",
                           is_new ? "no such conversation" : "not your conversation");
        else if (strcmp(r->method, "GET") == 0)
            get_conversation(r, conv);
        else if (strcmp(r->method, "PATCH") == 0)
            gw_desk_patch(r, conv);
        else
            gw_reply_error(r, 405, "method_not_allowed", "use GET or PATCH");
        return true;
    }
    const char *what = slash + 1;
    if (!strcmp(what, "events") || !strcmp(what, "messages") || !strcmp(what, "read") ||
        !strcmp(what, "claim"))
        snprintf(r->route, sizeof r->route, "/v1/conversations/{id}/%s", what);
    else
        snprintf(r->route, sizeof r->route, "/v1/conversations/{id}/other");
    bool get = strcmp(r->method, "GET") == 0, post = strcmp(r->method, "POST") == 0;
    if (!(is_new && strcmp(what, "messages") == 0 && post) && !oh_auth_may_access(&r->who, conv)) {
        gw_reply_error(r, 403, "forbidden", "not your conversation");
        return true;
    }
    if (strcmp(what, "events") == 0 && get)
        list_events(r, conv);
    else if (strcmp(what, "messages") == 0 && post)
        post_message(r, conv);
    else if (strcmp(what, "read") == 0 && post)
        post_read(r, conv);
    else if (strcmp(what, "claim") == 0 && post)
        gw_desk_claim(r, conv);
    else if (!strcmp(what, "events") || !strcmp(what, "messages") || !strcmp(what, "read") ||
             !strcmp(what, "claim"))
        gw_reply_error(r, 405, "method_not_allowed", "method not allowed here");
    else
        gw_reply_error(r, 404, "not_found", "no route for %s", r->path);
    return true;
}
