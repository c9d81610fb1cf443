/* http_api.c - the REST API of agents and clients: conversation lists,
 * history pages, sending messages and read cursors. Store work runs on
 * the gateway's worker pool. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gateway_int.h"
#include "metrics.h"

#define MAX_TEXT 65536
#define WEBCHAT  "webchat"

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
    if (r->who.role != OH_ROLE_AGENT) {
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

/* ---- GET /v1/conversations/{id}/events ---- */

struct page {
    char *buf;
    size_t len, cap;
    int64_t last;
    int count;
};

static int page_row(void *opaque, const char *conv, int64_t seq, const char *json, size_t len)
{
    struct page *p = opaque;
    if (p->len + len + 2 > p->cap) {
        size_t cap = (p->cap + len + 2) * 2;
        char *nb = realloc(p->buf, cap);
        if (!nb) return 1;
        p->buf = nb;
        p->cap = cap;
    }
    if (p->count++) p->buf[p->len++] = ',';
    memcpy(p->buf + p->len, json, len);
    p->len += len;
    p->last = seq;
    return 0;
}

static void events_work(void *opaque)
{
    struct req *r = opaque;
    struct api *a = r->state;
    oh_store *st = r->gw->hub->store;
    struct oh_conversation c;
    int rc = oh_store_conversation_get(st, a->conv, &c);
    struct page p = {0};
    if (rc == OH_OK) rc = oh_store_history(st, a->conv, a->after, a->limit, page_row, &p);
    if (rc == OH_ENOTFOUND) {
        gw_reply_error(r, 404, "not_found", "no such conversation");
    } else if (rc) {
        gw_reply_error(r, 503, "unavailable", "store: %s", oh_strerror(rc));
    } else {
        char *head = NULL;
        int64_t next = p.count ? p.last : a->after;
        int n = asprintf(&head,
                         "{\"conversation_id\":\"%s\",\"epoch\":\"%s\",\"head\":%lld,"
                         "\"next_after\":%lld,\"events\":[",
                         a->conv, oh_store_epoch(st), (long long)c.head, (long long)next);
        char *out = n > 0 ? malloc((size_t)n + p.len + 3) : NULL;
        if (out) {
            memcpy(out, head, (size_t)n);
            if (p.len) memcpy(out + n, p.buf, p.len);
            memcpy(out + (size_t)n + p.len, "]}", 3);
            gw_reply(r, 200, "application/json", out, (size_t)n + p.len + 2);
        } else {
            gw_reply_error(r, 500, "internal", "out of memory");
        }
        free(out);
        free(head);
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

/* ---- sending ---- */

int gw_build_message(struct oh_gateway *gw, const struct oh_principal *who, const char *conv,
                     const json_t *body, json_t **out, char *err, size_t errlen)
{
    const json_t *text = json_object_get(body, "text");
    const char *key = json_string_value(json_object_get(body, "client_msg_id"));
    const json_t *tmpl = json_object_get(body, "template");
    const json_t *att = json_object_get(body, "attachments");
    const json_t *reply_to = json_object_get(body, "reply_to");
    *out = NULL;
    if (!key || !*key || strlen(key) > 128) {
        oh_errf(err, errlen, "client_msg_id must be a string of 1..128 characters");
        return 400;
    }
    if ((text && !json_is_string(text)) || (tmpl && !json_is_object(tmpl)) ||
        (att && !json_is_array(att)) || (reply_to && !json_is_string(reply_to))) {
        oh_errf(err, errlen,
                "text and reply_to must be strings, template an object, "
                "attachments an array");
        return 400;
    }
    if (!text && !tmpl && !att) {
        oh_errf(err, errlen, "text is required");
        return 400;
    }
    if (text && json_string_length(text) > MAX_TEXT) {
        oh_errf(err, errlen, "text is longer than %d bytes", MAX_TEXT);
        return 413;
    }
    if (text && !oh_utf8_valid(json_string_value(text), json_string_length(text))) {
        oh_errf(err, errlen, "text must be valid UTF-8 without NUL");
        return 400;
    }
    bool agent = who->role == OH_ROLE_AGENT;
    char mine[OH_ID_MAX];
    oh_auth_customer_conversation(who->sub, mine);
    if (!agent && strcmp(conv, "new") == 0) conv = mine;
    if (!oh_auth_may_access(who, conv)) {
        oh_errf(err, errlen, "not your conversation");
        return 403;
    }
    struct oh_conversation c;
    int rc = oh_store_conversation_get(gw->hub->store, conv, &c);
    if (rc == OH_ENOTFOUND && !agent) {
        /* a customer's first message opens their webchat conversation */
        memset(&c, 0, sizeof c);
        snprintf(c.id, sizeof c.id, "%s", conv);
        snprintf(c.channel, sizeof c.channel, WEBCHAT);
        snprintf(c.account, sizeof c.account, "default");
        snprintf(c.contact_id, sizeof c.contact_id, "%s", who->sub);
        snprintf(c.contact_name, sizeof c.contact_name, "%s", who->sub);
    } else if (rc == OH_ENOTFOUND) {
        oh_errf(err, errlen, "no such conversation");
        return 404;
    } else if (rc) {
        oh_errf(err, errlen, "store: %s", oh_strerror(rc));
        return 503;
    }
    char id[OH_ID_MAX], when[32];
    oh_event_id(id, "message", conv, key, (const char *)NULL);
    oh_time_rfc3339(when, oh_now_ms());
    const char *kind = "text";
    if (att && json_array_size(att))
        kind = json_string_value(json_object_get(json_array_get(att, 0), "kind"));
    json_t *data = json_pack(
        "{s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:s, s:s, s:s, s:s, "
        "s:{s:s, s:s}}",
        "conversation_id", conv, "channel", c.channel, "account", c.account, "direction",
        agent ? "outbound" : "inbound", "contact", "id", c.contact_id, "name", c.contact_name,
        "message_id", id, "kind", kind ? kind : "text", "text", text ? json_string_value(text) : "",
        "sent_at", when, "author", "kind", agent ? "agent" : "customer", "id", who->sub);
    if (data && tmpl) json_object_set(data, "template", (json_t *)tmpl);
    if (data && att) json_object_set(data, "attachments", (json_t *)att);
    if (data && reply_to) json_object_set(data, "reply_to", (json_t *)reply_to);
    json_object_set_new(data, "client_msg_id", json_string(key));
    *out = oh_event_new(agent ? OH_EV_OUTBOUND : OH_EV_INBOUND, id, 0, data);
    if (!*out) {
        oh_errf(err, errlen, "out of memory");
        return 500;
    }
    return 0;
}

static void on_sent(void *opaque, int err)
{
    struct req *r = opaque;
    struct api *a = r->state;
    if (err) {
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
    if (r->status == 200) gw_ws_read_fanout(r->gw, &r->who, a->conv, a->read_seq);
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
    if (!oh_id_valid(id, idlen) || !slash) {
        gw_reply_error(r, 404, "not_found", "no such conversation");
        return true;
    }
    snprintf(conv, sizeof conv, "%.*s", (int)idlen, id);
    const char *what = slash + 1;
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
    else if (!strcmp(what, "events") || !strcmp(what, "messages") || !strcmp(what, "read"))
        gw_reply_error(r, 405, "method_not_allowed", "method not allowed here");
    else
        gw_reply_error(r, 404, "not_found", "no route for %s", r->path);
    return true;
}
