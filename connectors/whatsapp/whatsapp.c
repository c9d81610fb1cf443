/* whatsapp.c - the WhatsApp Business Cloud API connector: configuration,
 * the webhook (verification challenge, signed deliveries) and the vtable. */
#include <stdlib.h>
#include <string.h>
#include "core/crypto.h"
#include "core/metrics.h"
#include "whatsapp.h"

static const struct oh_config_key wa_keys[] = {
    {"whatsapp.app_secret", OH_CFG_SECRET, NULL,
     "Meta app secret: checks X-Hub-Signature-256 of webhook deliveries"},
    {"whatsapp.verify_token", OH_CFG_SECRET, NULL,
     "token Meta echoes in the GET /webhooks/whatsapp subscription check"},
    {"whatsapp.access_token", OH_CFG_SECRET, NULL,
     "Graph API bearer token for sending and media downloads"},
    {"whatsapp.api_base_url", OH_CFG_STR, "https://graph.facebook.com/v21.0",
     "Graph API base URL, version included"},
    {"whatsapp.timeout_ms", OH_CFG_INT, "10000", "time limit of one Graph API call"},
    {"whatsapp.phone_number_ids", OH_CFG_LIST, NULL,
     "business phone_number_ids served here (default: every number the app receives)"},
    {NULL, 0, NULL, NULL},
};

static const char *const wa_headers[] = {"x-hub-signature-256", NULL};

static void wa_reject(const char *reason)
{
    char labels[96];
    snprintf(labels, sizeof labels, "channel=\"whatsapp\",reason=\"%s\"", reason);
    oh_metrics_inc("omnihub_webhook_rejected_total", labels, 1);
}

/* Runs on the HTTP service thread: a ring of the newest media ids. */
static void wa_media_owner_put(void *opaque, const char *media_id, const char *conv)
{
    struct wa_ctx *c = opaque;
    if (strlen(media_id) >= sizeof c->owners[0].media_id) return;
    pthread_mutex_lock(&c->lock);
    struct wa_media_owner *o = &c->owners[c->owner_next++ % WA_MEDIA_OWNERS];
    snprintf(o->media_id, sizeof o->media_id, "%s", media_id);
    snprintf(o->conv, sizeof o->conv, "%s", conv);
    pthread_mutex_unlock(&c->lock);
}

bool wa_media_owner_get(struct wa_ctx *c, const char *media_id, char conv[OH_ID_MAX])
{
    bool found = false;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < WA_MEDIA_OWNERS && !found; i++)
        if (c->owners[i].media_id[0] && strcmp(c->owners[i].media_id, media_id) == 0) {
            memcpy(conv, c->owners[i].conv, OH_ID_MAX);
            found = true;
        }
    pthread_mutex_unlock(&c->lock);
    return found;
}

/* The vtable's media_owner: media ids seen in recent deliveries. */
static bool wa_media_owner(void *ctx, const char *ref, char conv[OH_ID_MAX])
{
    return wa_media_owner_get(ctx, ref, conv);
}

static void wa_destroy(void *ctx)
{
    struct wa_ctx *c = ctx;
    if (!c) return;
    free(c->app_secret);
    free(c->verify_token);
    free(c->access_token);
    free(c->api_base_url);
    free(c->owners);
    for (size_t i = 0; i < c->nnumbers; i++)
        free(c->numbers[i]);
    free(c->numbers);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static int wa_init(oh_hub *hub, const oh_config *cfg, void **ctx, char *err, size_t errlen)
{
    static const char *const need[][2] = {
        {"whatsapp.app_secret", "to check the signature of webhook deliveries"},
        {"whatsapp.verify_token", "to answer Meta's webhook subscription check"},
        {"whatsapp.access_token", "to send replies and download media through Graph"},
    };
    for (size_t i = 0; i < OH_ARRAY_SIZE(need); i++) {
        int rc = oh_config_require(cfg, need[i][0], need[i][1], err, errlen);
        if (rc) return rc;
    }
    struct wa_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        oh_errf(err, errlen, "whatsapp: out of memory");
        return OH_ENOMEM;
    }
    pthread_mutex_init(&c->lock, NULL);
    oh_metrics_describe("omnihub_whatsapp_ignored_total",
                        "parts of deliveries ignored on purpose (other numbers, changes)");
    oh_metrics_describe("omnihub_whatsapp_account_errors_total",
                        "account-level errors Meta reported in deliveries");
    const char *base = oh_config_str(cfg, "whatsapp.api_base_url");
    c->hub = hub;
    c->app_secret = strdup(oh_config_str(cfg, "whatsapp.app_secret"));
    c->verify_token = strdup(oh_config_str(cfg, "whatsapp.verify_token"));
    c->access_token = strdup(oh_config_str(cfg, "whatsapp.access_token"));
    c->api_base_url = strdup(base ? base : "");
    c->owners = calloc(WA_MEDIA_OWNERS, sizeof *c->owners);
    c->timeout_ms = (long)oh_config_int(cfg, "whatsapp.timeout_ms");
    if (c->timeout_ms <= 0) c->timeout_ms = 10000;
    if (!c->app_secret || !c->verify_token || !c->access_token || !c->api_base_url || !c->owners) {
        wa_destroy(c);
        oh_errf(err, errlen, "whatsapp: out of memory");
        return OH_ENOMEM;
    }
    const char *const *items = NULL;
    size_t nitems = oh_config_list(cfg, "whatsapp.phone_number_ids", &items);
    if (nitems) {
        c->numbers = calloc(nitems, sizeof *c->numbers);
        for (size_t i = 0; c->numbers && i < nitems; i++)
            if ((c->numbers[c->nnumbers] = strdup(items[i]))) c->nnumbers++;
        if (c->nnumbers != nitems) {
            wa_destroy(c);
            oh_errf(err, errlen, "whatsapp: out of memory");
            return OH_ENOMEM;
        }
    }
    size_t n = strlen(c->api_base_url);
    while (n > 0 && c->api_base_url[n - 1] == '/')
        c->api_base_url[--n] = '\0';
    if (strncmp(c->api_base_url, "http://", 7) && strncmp(c->api_base_url, "https://", 8)) {
        oh_errf(err, errlen, "whatsapp.api_base_url must be an http(s) URL");
        wa_destroy(c);
        return OH_EINVAL;
    }
    *ctx = c;
    return OH_OK;
}

bool wa_number_allowed(const struct wa_ctx *c, const char *account)
{
    if (!c->nnumbers) return true;
    for (size_t i = 0; account && i < c->nnumbers; i++)
        if (strcmp(c->numbers[i], account) == 0) return true;
    return false;
}

/* Drops the events of business numbers this hub does not serve (an app
 * shared with another system receives theirs too). */
static void wa_filter_numbers(struct wa_ctx *c, struct oh_event_list *events, size_t from)
{
    size_t kept = from, dropped = 0;
    for (size_t i = from; i < events->n; i++) {
        if (wa_number_allowed(c, oh_event_data_str(events->ev[i], "account"))) {
            events->ev[kept++] = events->ev[i];
        } else {
            json_decref(events->ev[i]);
            dropped++;
        }
    }
    events->n = kept;
    if (dropped) oh_metrics_inc("omnihub_whatsapp_ignored_total", "what=\"other_number\"", dropped);
}

/* GET: Meta's subscription check. */
static int wa_verify(struct wa_ctx *c, const struct oh_http_req *req, struct oh_http_reply *reply,
                     char *err, size_t errlen)
{
    char mode[32], token[512], challenge[512];
    if (oh_http_query_param(req, "hub.mode", mode, sizeof mode) ||
        oh_http_query_param(req, "hub.verify_token", token, sizeof token) ||
        strcmp(mode, "subscribe") != 0 ||
        !oh_ct_equal(token, strlen(token), c->verify_token, strlen(c->verify_token))) {
        wa_reject("verify_token");
        oh_errf(err, errlen, "hub.mode or hub.verify_token does not match");
        return OH_EFORBIDDEN;
    }
    if (oh_http_query_param(req, "hub.challenge", challenge, sizeof challenge)) {
        oh_errf(err, errlen, "hub.challenge is missing or too long");
        return OH_EINVAL;
    }
    reply->status = 200;
    snprintf(reply->content_type, sizeof reply->content_type, "text/plain");
    reply->body = strdup(challenge);
    if (!reply->body) return OH_ENOMEM;
    reply->body_len = strlen(challenge);
    return OH_OK;
}

/* Runs on the HTTP service thread: no network, no store. */
static int wa_webhook(void *ctx, const struct oh_http_req *req, struct oh_event_list *events,
                      struct oh_http_reply *reply, char *err, size_t errlen)
{
    struct wa_ctx *c = ctx;
    if (strcmp(req->method, "GET") == 0) return wa_verify(c, req, reply, err, errlen);
    if (strcmp(req->method, "POST") != 0) {
        oh_errf(err, errlen, "method %s not allowed", req->method);
        return OH_EINVAL;
    }
    const char *sig = req->header(req, "x-hub-signature-256");
    if (!sig || !*sig) {
        wa_reject("signature_missing");
        oh_errf(err, errlen, "X-Hub-Signature-256 is missing");
        return OH_EAUTH;
    }
    if (oh_sig_check_hex(c->app_secret, req->body, req->body_len, "sha256=", sig) != OH_OK) {
        wa_reject("signature_bad");
        oh_errf(err, errlen, "X-Hub-Signature-256 does not match the body");
        return OH_EAUTH;
    }
    struct oh_norm_ctx nc = {.account = NULL, .now_ms = oh_now_ms()};
    struct wa_parse_stats st = {0};
    size_t n0 = events->n;
    int rc =
        wa_parse(&nc, req->body, req->body_len, events, &st, wa_media_owner_put, c, err, errlen);
    if (rc) {
        wa_reject(strncmp(err, "invalid JSON", 12) == 0 ? "bad_json" : "bad_payload");
        return rc;
    }
    wa_filter_numbers(c, events, n0);
    if (st.account_errors) {
        oh_metrics_inc("omnihub_whatsapp_account_errors_total", "", st.account_errors);
        oh_metrics_inc("omnihub_webhook_errors_total",
                       "channel=\"whatsapp\",reason=\"account_error\"", st.account_errors);
    }
    if (st.ignored_changes)
        oh_metrics_inc("omnihub_whatsapp_ignored_total", "what=\"change\"", st.ignored_changes);
    if (st.malformed)
        oh_metrics_inc("omnihub_webhook_errors_total", "channel=\"whatsapp\",reason=\"malformed\"",
                       st.malformed);
    if (st.ignored_items)
        oh_metrics_inc("omnihub_whatsapp_ignored_total", "what=\"status\"", st.ignored_items);
    return OH_OK;
}

const struct oh_connector oh_connector_whatsapp = {
    .name = WA_CHANNEL,
    .config_keys = wa_keys,
    .headers = wa_headers,
    .init = wa_init,
    .webhook = wa_webhook,
    .normalize = wa_normalize,
    .send = wa_send,
    .media = wa_media,
    .media_owner = wa_media_owner,
    .destroy = wa_destroy,
};
