/* api.c - the "api:<name>" channel: external connectors POST normalized
 * messages to /v1/inbound (signed with api.inbound_secret), and receive
 * agents' replies as signed CloudEvents POSTed to api.outbound_url. The
 * worked example of docs/connectors.md. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/connector.h"
#include "core/crypto.h"
#include "core/http_client.h"
#include "connectors/api/api_body.h"

#define API_MAX_FIELD 255

struct api_conf {
    char *secret;       /* api.inbound_secret */
    char *outbound_url; /* api.outbound_url, NULL when unset */
    int64_t timeout_ms; /* api.timeout_ms */
};

struct api_ctx {
    struct api_conf conf;
};

static const struct oh_config_key api_keys[] = {
    {"api.inbound_secret", OH_CFG_SECRET, NULL,
     "HMAC-SHA256 key of X-Omnihub-Signature, inbound and outbound"},
    {"api.outbound_url", OH_CFG_STR, NULL, "where agents' replies on api:* are POSTed"},
    {"api.timeout_ms", OH_CFG_INT, "10000", "deadline of one outbound POST"},
    {NULL, 0, NULL, NULL},
};

static const struct oh_config_field api_map[] = {
    OH_CFG_FIELD("api.inbound_secret", struct api_conf, secret),
    OH_CFG_FIELD("api.outbound_url", struct api_conf, outbound_url),
    OH_CFG_FIELD("api.timeout_ms", struct api_conf, timeout_ms),
    {NULL, 0},
};

static const char *const api_headers[] = {"x-omnihub-signature", NULL};

static bool api_name_ok(const char *channel)
{
    if (strncmp(channel, "api:", 4) != 0) return false;
    size_t n = strlen(channel + 4);
    if (n == 0 || n > 32) return false;
    return strspn(channel + 4, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

/* One string member of a body as either parse read it: S (NUL-terminated),
 * NULL when absent or of another type; J the jansson value when there is
 * one, shared into the event rather than copied. */
struct api_str {
    const char *s;
    size_t len;
    const json_t *j;
};

/* What the normalizer reads of a body, from api_body_scan() or jansson. */
struct api_msg {
    struct api_str f[API_NFIELDS];
    bool contact_object; /* "contact" is an object */
    bool mistyped;       /* contact.name, text or sent_at not a string, attachments not a list */
    const json_t *idents, *att; /* jansson only: identifiers, attachments */
};

/* A required, bounded, non-empty string field. */
static const char *api_field(const struct api_str *f, const char *name, const char *where,
                             char *err, size_t errlen)
{
    if (!f->s || !*f->s || f->len > API_MAX_FIELD || !oh_utf8_valid(f->s, f->len)) {
        oh_errf(err, errlen, "%s%s must be a non-empty string of at most %d bytes", where, name,
                API_MAX_FIELD);
        return NULL;
    }
    return f->s;
}

/* A string made from F: its jansson value shared, or its bytes (UTF-8,
 * checked by the scan) copied. */
static json_t *api_json(const struct api_str *f)
{
    if (f->j) return json_incref((json_t *)f->j);
    return json_stringn_nocheck(f->s, f->len);
}

/* The strings every message repeats, made once and shared by reference as
 * event.c shares the envelope's (jansson's counts are atomic; nothing edits
 * a string in place): two allocations fewer each, on every delivery. */
enum { API_K_CUSTOMER, API_K_INBOUND, API_K_TEXT, API_K_N };
static const char *const api_k_text[API_K_N] = {"customer", "inbound", "text"};
static json_t *api_k[API_K_N];
static pthread_once_t api_k_once = PTHREAD_ONCE_INIT;

static void api_k_init(void)
{
    for (int i = 0; i < API_K_N; i++)
        api_k[i] = json_string_nocheck(api_k_text[i]);
}

static json_t *api_shared(int k)
{
    pthread_once(&api_k_once, api_k_init);
    return api_k[k] ? json_incref(api_k[k]) : json_string_nocheck(api_k_text[k]);
}

static int api_build(const struct oh_norm_ctx *nc, const struct api_msg *m,
                     struct oh_event_list *out, char *err, size_t errlen)
{
    const char *channel = api_field(&m->f[API_CHANNEL], "channel", "", err, errlen);
    const char *account =
        nc->account ? nc->account : api_field(&m->f[API_ACCOUNT], "account", "", err, errlen);
    const char *message_id = api_field(&m->f[API_MESSAGE_ID], "message_id", "", err, errlen);
    if (!channel || !account || !message_id) return OH_EINVAL;
    if (!api_name_ok(channel)) {
        oh_errf(err, errlen, "channel must be \"api:<name>\" with a name of [a-z0-9_-]{1,32}");
        return OH_EINVAL;
    }
    if (!m->contact_object) {
        oh_errf(err, errlen, "contact must be an object with an id");
        return OH_EINVAL;
    }
    const char *contact_id = api_field(&m->f[API_CONTACT_ID], "id", "contact.", err, errlen);
    if (!contact_id) return OH_EINVAL;
    const struct api_str *name = &m->f[API_CONTACT_NAME], *text = &m->f[API_TEXT];
    const char *sent = m->f[API_SENT_AT].s;
    const json_t *att = m->att, *idents = m->idents, *idv;
    if (m->mistyped) {
        oh_errf(err, errlen, "contact.name, text and sent_at must be strings, attachments a list");
        return OH_EINVAL;
    }
    /* identifiers the signed connector vouches for (verified) or merely
     * reports (an address it saw): contacts link on the verified ones */
    size_t ii;
    if (idents && (!json_is_array(idents) || json_array_size(idents) > 16)) {
        oh_errf(err, errlen, "contact.identifiers must be a list of at most 16");
        return OH_EINVAL;
    }
    json_array_foreach(idents, ii, idv)
    {
        const json_t *ver = json_object_get(idv, "verified");
        if (!json_string_value(json_object_get(idv, "type")) ||
            !json_string_value(json_object_get(idv, "value")) || (ver && !json_is_boolean(ver))) {
            oh_errf(err, errlen, "contact.identifiers[%zu] must be {type, value, verified?}", ii);
            return OH_EINVAL;
        }
    }
    if (!text->s && json_array_size(att) == 0) {
        oh_errf(err, errlen, "a message needs text or attachments");
        return OH_EINVAL;
    }
    int64_t sent_ms = nc->now_ms;
    if (sent && oh_time_parse(sent, &sent_ms)) {
        oh_errf(err, errlen, "sent_at must be RFC 3339");
        return OH_EINVAL;
    }
    const char *const text_kind = "text", *kind = text_kind;
    size_t i;
    json_t *a;
    json_array_foreach(att, i, a)
    {
        if (!json_is_object(a) || !json_string_value(json_object_get(a, "kind"))) {
            oh_errf(err, errlen, "attachments[%zu] must be an object with a kind", i);
            return OH_EINVAL;
        }
        if (i == 0 && !text->s) kind = json_string_value(json_object_get(a, "kind"));
    }
    char id[OH_ID_MAX], conv[OH_ID_MAX], when[32];
    oh_event_id(id, channel, account, message_id, (const char *)NULL);
    oh_conversation_id(conv, channel, account, contact_id);
    oh_time_rfc3339(when, sent_ms);
    /* built field by field: the hot path of every delivery (json_pack
     * parses its format string each time); the strings are valid UTF-8,
     * checked by the parser or made here */
    json_t *data = json_object(), *who = json_object(), *author = json_object();
    if (data && who && author) {
        json_t *cid = m->f[API_CONTACT_ID].j ? api_json(&m->f[API_CONTACT_ID])
                                             : json_string_nocheck(contact_id);
        json_object_set_new_nocheck(who, "id", json_incref(cid));
        json_object_set_new_nocheck(who, "name",
                                    name->s ? api_json(name) : json_string_nocheck(""));
        json_object_set_new_nocheck(author, "kind", api_shared(API_K_CUSTOMER));
        json_object_set_new_nocheck(author, "id", cid);
        json_object_set_new_nocheck(data, "conversation_id", json_string_nocheck(conv));
        json_object_set_new_nocheck(data, "channel", json_string_nocheck(channel));
        json_object_set_new_nocheck(data, "account", json_string_nocheck(account));
        json_object_set_new_nocheck(data, "direction", api_shared(API_K_INBOUND));
        if (idents) json_object_set_nocheck(who, "identifiers", (json_t *)idents);
        json_object_set_new_nocheck(data, "contact", who);
        json_object_set_new_nocheck(data, "message_id", json_string_nocheck(message_id));
        json_object_set_new_nocheck(
            data, "kind", kind == text_kind ? api_shared(API_K_TEXT) : json_string_nocheck(kind));
        json_object_set_new_nocheck(data, "text",
                                    text->s ? api_json(text) : json_string_nocheck(""));
        json_object_set_new_nocheck(data, "sent_at", json_string_nocheck(when));
        json_object_set_new_nocheck(data, "author", author);
        who = author = NULL;
        if (att) json_object_set_nocheck(data, "attachments", (json_t *)att);
    } else {
        json_decref(data);
        data = NULL;
    }
    json_decref(who);
    json_decref(author);
    return oh_event_list_push(out, oh_event_new(OH_EV_INBOUND, id, sent_ms, data));
}

/* F from member NAME of O: set when it is a string. */
static void api_from_json(struct api_str *f, const json_t *o, const char *name)
{
    const json_t *v = json_object_get(o, name);
    f->s = json_string_value(v);
    f->len = f->s ? json_string_length(v) : 0;
    f->j = f->s ? v : NULL;
}

static int api_normalize_json(const struct oh_norm_ctx *nc, const uint8_t *body, size_t len,
                              struct oh_event_list *out, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *in = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!in || !json_is_object(in)) {
        oh_errf(err, errlen, "body is not a JSON object: %s", in ? "wrong type" : jerr.text);
        json_decref(in);
        return OH_EINVAL;
    }
    struct api_msg m = {0};
    static const char *const names[API_NFIELDS] = {
        [API_CHANNEL] = "channel",  [API_ACCOUNT] = "account", [API_MESSAGE_ID] = "message_id",
        [API_TEXT] = "text",        [API_SENT_AT] = "sent_at", [API_CONTACT_ID] = "id",
        [API_CONTACT_NAME] = "name"};
    const json_t *contact = json_object_get(in, "contact");
    for (int i = 0; i < API_NFIELDS; i++)
        api_from_json(&m.f[i], i >= API_CONTACT_ID ? contact : in, names[i]);
    m.contact_object = json_is_object(contact);
    const json_t *name = json_object_get(contact, "name"), *text = json_object_get(in, "text");
    const json_t *sent = json_object_get(in, "sent_at");
    m.att = json_object_get(in, "attachments");
    m.idents = json_object_get(contact, "identifiers");
    m.mistyped = (name && !json_is_string(name)) || (text && !json_is_string(text)) ||
                 (m.att && !json_is_array(m.att)) || (sent && !json_is_string(sent));
    int rc = api_build(nc, &m, out, err, errlen);
    json_decref(in);
    return rc;
}

int api_normalize_with(const struct oh_norm_ctx *nc, const uint8_t *body, size_t len, bool fast,
                       struct oh_event_list *out, char *err, size_t errlen)
{
    struct api_body b;
    if (!fast || !api_body_scan((const char *)body, len, &b))
        return api_normalize_json(nc, body, len, out, err, errlen);
    struct api_msg m = {.contact_object = b.contact};
    for (int i = 0; i < API_NFIELDS; i++)
        m.f[i] = (struct api_str){b.s[i], b.len[i], NULL};
    int rc = api_build(nc, &m, out, err, errlen);
    api_body_free(&b);
    return rc;
}

static int api_normalize(const struct oh_norm_ctx *nc, const uint8_t *body, size_t len,
                         struct oh_event_list *out, char *err, size_t errlen)
{
    return api_normalize_with(nc, body, len, true, out, err, errlen);
}

static int api_webhook(void *ctx, const struct oh_http_req *req, struct oh_event_list *events,
                       struct oh_http_reply *reply, char *err, size_t errlen)
{
    struct api_ctx *api = ctx;
    if (strcmp(req->method, "POST") != 0) {
        oh_errf(err, errlen, "use POST");
        return OH_EINVAL;
    }
    if (oh_sig_check_hex(api->conf.secret, req->body, req->body_len,
                         "sha256=", req->header(req, "x-omnihub-signature"))) {
        oh_errf(err, errlen, "missing or bad X-Omnihub-Signature");
        return OH_EAUTH;
    }
    struct oh_norm_ctx nc = {NULL, oh_now_ms()};
    int rc = api_normalize(&nc, req->body, req->body_len, events, err, errlen);
    if (rc) return rc;
    reply->status = 202;
    json_t *ev = events->ev[0];
    /* both ids are URL-safe (checked by oh_id_valid when built): nothing to
     * escape; put together without snprintf, on every delivery */
    const char *id = oh_event_get_id(ev), *conv = oh_event_subject(ev);
    size_t il = strnlen(id, OH_ID_MAX), cl = strnlen(conv, OH_ID_MAX);
    char *p = reply->body = malloc(il + cl + 40);
    if (!p) return OH_OK; /* answered "{}": the event is still taken */
    memcpy(p, "{\"event_id\":\"", 13);
    memcpy(p += 13, id, il);
    memcpy(p += il, "\",\"conversation_id\":\"", 21);
    memcpy(p += 21, conv, cl);
    memcpy(p += cl, "\"}", 3);
    reply->body_len = il + cl + 36;
    return OH_OK;
}

/* runs on a dispatcher thread */
static int api_send(void *ctx, const json_t *event, struct oh_send_result *res)
{
    struct api_ctx *api = ctx;
    if (!api->conf.outbound_url) {
        snprintf(res->error_code, sizeof res->error_code, "not_configured");
        snprintf(res->error, sizeof res->error, "api.outbound_url is not set");
        return OH_EINVAL;
    }
    char *body = json_dumps(event, JSON_COMPACT);
    if (!body) return OH_ERETRY;
    char sig[72], sighdr[128], idem[200];
    oh_sig_make_hex(api->conf.secret, body, strlen(body), sig);
    snprintf(sighdr, sizeof sighdr, "X-Omnihub-Signature: %s", sig);
    snprintf(idem, sizeof idem, "Idempotency-Key: %s", oh_event_get_id(event));
    const char *headers[] = {sighdr, idem, NULL};
    /* the text we signed goes out as is */
    struct oh_http_post post = {.url = api->conf.outbound_url,
                                .body = body,
                                .content_type = "application/cloudevents+json",
                                .headers = headers,
                                .timeout_ms = (long)api->conf.timeout_ms,
                                .max_response = 1 << 16};
    struct oh_http_response resp;
    char why[256] = "";
    int rc = oh_http_post(&post, &resp, why, sizeof why);
    free(body);
    if (rc == OH_OK && resp.status >= 200 && resp.status < 300) {
        json_t *r = json_loadb(resp.body, resp.len, 0, NULL);
        const char *mid = json_string_value(json_object_get(r, "message_id"));
        if (mid) snprintf(res->provider_message_id, sizeof res->provider_message_id, "%s", mid);
        json_decref(r);
        oh_http_response_free(&resp);
        return OH_OK;
    }
    /* the contract: retried with backoff until a 2xx */
    if (rc == OH_OK)
        snprintf(res->error, sizeof res->error, "receiver answered HTTP %ld", resp.status);
    else
        snprintf(res->error, sizeof res->error, "%s", why);
    snprintf(res->error_code, sizeof res->error_code, "%ld", rc == OH_OK ? resp.status : 0L);
    res->retry_after_ms = resp.retry_after_ms;
    oh_http_response_free(&resp);
    return OH_ERETRY;
}

static void api_destroy(void *ctx)
{
    struct api_ctx *api = ctx;
    if (!api) return;
    oh_config_map_free(api_keys, api_map, &api->conf);
    free(api);
}

static int api_init(const struct oh_conn_env *env, const oh_config *cfg, void **ctx, char *err,
                    size_t errlen)
{
    if (oh_config_require(cfg, "api.inbound_secret", "for the api channel", err, errlen))
        return OH_EINVAL;
    struct api_ctx *api = calloc(1, sizeof *api);
    if (!api || oh_config_map(cfg, api_keys, api_map, &api->conf) != OH_OK) {
        api_destroy(api);
        oh_errf(err, errlen, "out of memory");
        return OH_ENOMEM;
    }
    *ctx = api;
    return OH_OK;
}

const struct oh_connector oh_connector_api = {
    .name = "api",
    .config_keys = api_keys,
    .headers = api_headers,
    .webhook_path = "/v1/inbound",
    .retry_until_sent = true, /* CONTRACT part 1: "retried with backoff until a 2xx" */
    .init = api_init,
    .webhook = api_webhook,
    .normalize = api_normalize,
    .send = api_send,
    .destroy = api_destroy,
};
