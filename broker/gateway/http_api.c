/* http_api.c - the REST API of agents and clients: conversation lists,
 * history pages, sending messages and read cursors. Store work runs on
 * the gateway's worker pool. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gateway/gateway_int.h"
#include "core/crypto.h"
#include "core/metrics.h"

/* Per-request state of the conversation routes. */
struct api {
    char conv[OH_ID_MAX];
    int64_t after;
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
    return gw_state_new(r, sizeof(struct api), api_free);
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

/* ---- GET /v1/conversations (the inbox list) ---- */

/* The list's parameters; every other one is a 400, so a typo never
 * silently widens a filter. */
enum { L_STATUS, L_ASSIGNEE, L_TEAM, L_PRIORITY, L_LABEL, L_CHANNEL, L_CONTACT, L_Q, L_NSTR };
/* the string filters first, in the enum's order */
static const char *const list_params[] = {"status", "assignee",      "team",       "priority",
                                          "label",  "channel",       "contact_id", "q",
                                          "limit",  "updated_after", "cursor"};

/* A page cursor: base64url of "<created_ms>:<id>", the last row's key. */
#define LIST_CURSOR_MAX (4 * ((24 + OH_ID_MAX + 2) / 3) + 1)

struct list_row {
    int64_t updated_ms;
    char id[OH_ID_MAX];
    json_t *o;
};

struct list_req {
    char str[L_NSTR][512];
    bool has[L_NSTR];
    struct oh_store_filter f;
    char before_id[OH_ID_MAX];
    struct list_row *rows; /* the page, in the store's (keyset) order */
    int n;
    int64_t last_created;
    char last_id[OH_ID_MAX];
    bool more;
    struct req *r;
};

static void list_req_free(void *p)
{
    struct list_req *l = p;
    for (int i = 0; l->rows && i < l->n; i++)
        json_decref(l->rows[i].o);
    free(l->rows);
    free(l);
}

/* Most recently updated first, ties by id descending (the list's order
 * before it had pages, kept within each page). */
static int row_cmp(const void *a, const void *b)
{
    const struct list_row *x = a, *y = b;
    if (x->updated_ms != y->updated_ms) return x->updated_ms > y->updated_ms ? -1 : 1;
    return -strcmp(x->id, y->id);
}

static int list_row(void *opaque, const struct oh_conversation *c, int64_t read_seq)
{
    struct list_req *l = opaque;
    if (l->n == l->f.limit - 1) { /* the one asked for beyond the page: there is more */
        l->more = true;
        return 1;
    }
    json_t *o = gw_conversation_json(c, c->head > read_seq ? c->head - read_seq : 0);
    if (!o) return OH_ENOMEM;
    struct list_row *row = &l->rows[l->n++];
    row->o = o;
    row->updated_ms = c->updated_ms;
    snprintf(row->id, sizeof row->id, "%s", c->id);
    l->last_created = c->created_ms;
    snprintf(l->last_id, sizeof l->last_id, "%s", c->id);
    return 0;
}

/* Row I's SLA document. */
static void list_sla(void *opaque, size_t i, const char *value)
{
    struct list_req *l = opaque;
    if (!json_object_get(l->rows[i].o, "sla"))
        json_object_set_new(l->rows[i].o, "sla", gw_sla_json(value));
}

/* Every row's "sla": the page's documents in one store call (one per row
 * cost a round trip each, most of a page's time on PostgreSQL). */
static int list_slas(struct req *r, struct list_req *l)
{
    const char **ids = l->n ? calloc((size_t)l->n, sizeof *ids) : NULL;
    if (l->n && !ids) return OH_ENOMEM;
    for (int i = 0; i < l->n; i++)
        ids[i] = l->rows[i].id;
    int rc = oh_store_kv_get_many(r->gw->hub->store, "sla", ids, (size_t)l->n, list_sla, l);
    free(ids);
    for (int i = 0; rc == 0 && i < l->n; i++)
        if (!json_object_get(l->rows[i].o, "sla"))
            json_object_set_new(l->rows[i].o, "sla", gw_sla_json(NULL));
    return rc;
}

static void list_work(void *opaque)
{
    struct req *r = opaque;
    struct list_req *l = r->state;
    int rc = (l->rows = calloc((size_t)l->f.limit, sizeof *l->rows))
                 ? oh_store_list(r->gw->hub->store, &l->f, list_row, l)
                 : OH_ENOMEM;
    if (rc == 0) rc = list_slas(r, l);
    json_t *arr = rc == 0 ? json_array() : NULL;
    if (rc == 0 && !arr) rc = OH_ENOMEM;
    if (rc) {
        gw_reply_store_error(r, rc);
        gw_complete(r);
        return;
    }
    json_t *next = json_null();
    if (l->more) {
        char key[24 + OH_ID_MAX + 2], enc[LIST_CURSOR_MAX];
        int n = snprintf(key, sizeof key, "%lld:%s", (long long)l->last_created, l->last_id);
        oh_base64url((const uint8_t *)key, (size_t)n, enc);
        next = json_string(enc);
    }
    qsort(l->rows, (size_t)l->n, sizeof *l->rows, row_cmp);
    for (int i = 0; i < l->n; i++) {
        json_array_append_new(arr, l->rows[i].o);
        l->rows[i].o = NULL;
    }
    gw_reply_json(r, 200, json_pack("{s:o, s:o}", "conversations", arr, "next_cursor", next));
    gw_complete(r);
}

static bool one_of(const char *v, const char *const *set)
{
    for (; *set; set++)
        if (strcmp(v, *set) == 0) return true;
    return false;
}

static bool list_cursor_parse(const char *v, struct list_req *l)
{
    char key[24 + OH_ID_MAX + 2];
    int n = oh_base64url_decode(v, strlen(v), (uint8_t *)key, sizeof key);
    if (n <= 0) return false;
    key[n] = '\0';
    char *colon = strchr(key, ':');
    int64_t created;
    if (!colon) return false;
    *colon = '\0';
    size_t idlen = strlen(colon + 1);
    if (!parse_int(key, 0, INT64_MAX, &created) || !oh_id_valid(colon + 1, idlen)) return false;
    l->f.before_created_ms = created;
    snprintf(l->before_id, sizeof l->before_id, "%s", colon + 1);
    l->f.before_id = l->before_id;
    return true;
}

static void list_conversations(struct req *r)
{
    static const char *const statuses[] = {"bot", "open", "pending", "snoozed", "resolved", NULL};
    static const char *const priorities[] = {"urgent", "high", "normal", "low", NULL};
    if (!oh_auth_is_agent(&r->who)) {
        gw_reply_error(r, 403, "forbidden", "only agents list conversations");
        return;
    }
    if (!gw_query_once(r, list_params, OH_ARRAY_SIZE(list_params), true)) return;
    struct list_req *l = gw_state_new(r, sizeof *l, list_req_free);
    if (!l) return;
    l->r = r;
    char v[LIST_CURSOR_MAX + 8];
    int64_t n = 50;
    if (gw_query_has(r, "limit") &&
        (!gw_query(r, "limit", v, sizeof v) || !parse_int(v, 1, 1000, &n))) {
        gw_reply_error(r, 400, "bad_request", "limit must be 1..1000");
        return;
    }
    l->f.limit = (int)n + 1; /* one more: whether there is a next page */
    if (gw_query_has(r, "updated_after") &&
        (!gw_query(r, "updated_after", v, sizeof v) || oh_time_parse(v, &l->f.updated_after_ms))) {
        gw_reply_error(r, 400, "bad_request", "updated_after must be RFC 3339");
        return;
    }
    if (gw_query_has(r, "cursor") &&
        (!gw_query(r, "cursor", v, sizeof v) || !list_cursor_parse(v, l))) {
        gw_reply_error(r, 400, "bad_request", "cursor is not a next_cursor of this list");
        return;
    }
    for (int i = 0; i < L_NSTR; i++) {
        if (!gw_query_has(r, list_params[i])) continue;
        /* an empty search box searches nothing: q= is no filter */
        if (i == L_Q && gw_query(r, "q", l->str[i], sizeof l->str[i]) && !l->str[i][0]) continue;
        if (!gw_query(r, list_params[i], l->str[i], sizeof l->str[i]) || !l->str[i][0] ||
            !oh_utf8_valid(l->str[i], strlen(l->str[i]))) {
            gw_reply_error(r, 400, "bad_request", "%s must be 1..511 bytes of UTF-8",
                           list_params[i]);
            return;
        }
        l->has[i] = true;
    }
    if (l->has[L_STATUS] && !one_of(l->str[L_STATUS], statuses)) {
        gw_reply_error(r, 400, "bad_request", "status must be bot|open|pending|snoozed|resolved");
        return;
    }
    if (l->has[L_PRIORITY] && !one_of(l->str[L_PRIORITY], priorities)) {
        gw_reply_error(r, 400, "bad_request", "priority must be urgent|high|normal|low");
        return;
    }
    /* assignee: me, none or an agent id; team: none or a team id */
    if (l->has[L_ASSIGNEE] && strcmp(l->str[L_ASSIGNEE], "me") == 0)
        snprintf(l->str[L_ASSIGNEE], sizeof l->str[L_ASSIGNEE], "%s", r->who.sub);
    else if (l->has[L_ASSIGNEE] && strcmp(l->str[L_ASSIGNEE], "none") == 0)
        l->str[L_ASSIGNEE][0] = '\0';
    if (l->has[L_TEAM] && strcmp(l->str[L_TEAM], "none") == 0) l->str[L_TEAM][0] = '\0';
    const char **dst[L_NSTR] = {&l->f.status, &l->f.assignee, &l->f.team,       &l->f.priority,
                                &l->f.label,  &l->f.channel,  &l->f.contact_id, &l->f.q};
    for (int i = 0; i < L_NSTR; i++)
        if (l->has[i]) *dst[i] = l->str[i];
    /* with contacts, contact_id is the person (core/contacts.h) */
    if (l->f.contact_id && oh_config_bool(r->gw->hub->cfg, "contacts.enabled")) {
        l->f.contact_ref = l->f.contact_id;
        l->f.contact_id = NULL;
    }
    l->f.reader_role = oh_auth_role_name(r->who.role);
    l->f.reader = r->who.sub;
    gw_async(r, list_work);
}

/* ---- GET /v1/conversations/{id} ---- */

static void get_one_work(void *opaque)
{
    struct req *r = opaque;
    struct api *a = r->state;
    struct oh_conversation c;
    if (gw_settle_later(r->gw, a->conv, &r->job)) return;
    int rc = gw_conversation_later(r->gw, a->conv, &c, &r->job);
    if (rc == GW_LATER) return;
    if (rc == OH_ENOTFOUND)
        gw_reply_error(r, 404, "not_found", "no such conversation");
    else if (rc)
        gw_reply_store_error(r, rc);
    else {
        json_t *o = gw_conversation_json(&c, gw_unread(r, &c));
        /* the clocks and the rest of the desk's state: an agent's view */
        if (o && r->who.role != OH_ROLE_CUSTOMER)
            json_object_set_new(o, "sla", gw_conversation_sla(r->gw->hub->store, c.id));
        else if (o)
            gw_conversation_for_customer(o);
        gw_reply_json(r, 200, o);
    }
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
    if (gw_settle_later(r->gw, a->conv, &r->job)) return;
    int rc = gw_conversation_later(r->gw, a->conv, &c, &r->job);
    if (rc == GW_LATER) return;
    struct page p = {.budget = r->gw->max_page, .customer = !oh_auth_is_agent(&r->who)};
    if (rc == OH_OK) rc = read_page(st, a->conv, a->after, a->limit, &p);
    if (rc == OH_ENOTFOUND) {
        gw_reply_error(r, 404, "not_found", "no such conversation");
    } else if (rc) {
        gw_reply_store_error(r, rc);
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
    static const char *const params[] = {"after", "limit"};
    struct api *a = api_state(r);
    char v[64];
    int64_t n = 100;
    if (!a) {
        gw_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    if (!gw_query_once(r, params, OH_ARRAY_SIZE(params), false)) return;
    snprintf(a->conv, sizeof a->conv, "%s", conv);
    if (gw_query_has(r, "after") &&
        (!gw_query(r, "after", v, sizeof v) || !parse_int(v, 0, INT64_MAX, &a->after))) {
        gw_reply_error(r, 400, "bad_request", "after must be a non-negative integer");
        return;
    }
    if (gw_query_has(r, "limit") &&
        (!gw_query(r, "limit", v, sizeof v) || !parse_int(v, 1, 1000, &n))) {
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
    int st =
        gw_build_message(r->gw, &r->who, a->conv, a->body, &r->job, &a->event, err, sizeof err);
    if (st == GW_LATER) return;
    if (st) {
        gw_reply_error(r, st, gw_error_code(st), "%s", err);
        gw_complete(r);
        return;
    }
    struct oh_event_list l = {0};
    oh_event_list_push(&l, json_incref(a->event));
    if (oh_hub_ingest_client(r->gw->hub, &l, on_sent, r) != OH_OK) {
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
    int rc = gw_conversation_later(r->gw, a->conv, &c, &r->job);
    if (rc == GW_LATER) return;
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
        gw_reply_store_error(r, rc);
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
