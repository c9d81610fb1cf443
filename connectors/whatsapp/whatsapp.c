/* whatsapp.c - the WhatsApp Business Cloud API connector: configuration,
 * the webhook (verification challenge, signed deliveries) and the vtable. */
#include <stddef.h>
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

static const struct oh_config_field wa_map[] = {
    OH_CFG_FIELD("whatsapp.access_token", struct wa_conf, access_token),
    OH_CFG_FIELD("whatsapp.api_base_url", struct wa_conf, api_base_url),
    OH_CFG_FIELD("whatsapp.timeout_ms", struct wa_conf, timeout_ms),
    OH_CFG_FIELD("whatsapp.phone_number_ids", struct wa_conf, numbers),
    {NULL, 0},
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
    oh_config_map_free(wa_keys, wa_map, &c->conf);
    free(c->owners);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static int wa_init(const struct oh_conn_env *env, const oh_config *cfg, void **ctx, char *err,
                   size_t errlen)
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
        oh_errf(err, errlen, "out of memory");
        return OH_ENOMEM;
    }
    pthread_mutex_init(&c->lock, NULL);
    oh_metrics_describe("omnihub_whatsapp_ignored_total",
                        "parts of deliveries ignored on purpose (other numbers, changes)");
    oh_metrics_describe("omnihub_whatsapp_account_errors_total",
                        "account-level errors Meta reported in deliveries");
    c->env = env;
    c->owners = calloc(WA_MEDIA_OWNERS, sizeof *c->owners);
    if (oh_config_map(cfg, wa_keys, wa_map, &c->conf) != OH_OK || !c->owners) {
        wa_destroy(c);
        oh_errf(err, errlen, "out of memory");
        return OH_ENOMEM;
    }
    if (c->conf.timeout_ms < 0) c->conf.timeout_ms = 0; /* 0: the HTTP client's own bound */
    char *base = c->conf.api_base_url ? c->conf.api_base_url : "";
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        base[--n] = '\0';
    if (strncmp(base, "http://", 7) && strncmp(base, "https://", 8)) {
        oh_errf(err, errlen, "whatsapp.api_base_url must be an http(s) URL");
        wa_destroy(c);
        return OH_EINVAL;
    }
    *ctx = c;
    return OH_OK;
}

bool wa_number_allowed(const struct wa_ctx *c, const char *account)
{
    if (!c->conf.numbers) return true;
    for (size_t i = 0; account && c->conf.numbers[i]; i++)
        if (strcmp(c->conf.numbers[i], account) == 0) return true;
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

/* Runs on the HTTP service thread: no network, no store. */
static int wa_webhook(void *ctx, const struct oh_http_req *req, struct oh_event_list *events,
                      struct oh_http_reply *reply, char *err, size_t errlen)
{
    struct wa_ctx *c = ctx;
    int rc;
    struct oh_norm_ctx nc = {.account = NULL, .now_ms = oh_now_ms()};
    struct wa_parse_stats st = {0};
    size_t n0 = events->n;
    rc = wa_parse(&nc, req->body, req->body_len, events, &st, wa_media_owner_put, c, err, errlen);
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
    .webhook_auth = OH_WEBHOOK_META,
    .reply_window_s = WA_WINDOW_S,
    .reply_window_templates = true,
};
