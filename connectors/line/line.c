/* line.c - the LINE Messaging API connector: configuration, the webhook
 * (X-Line-Signature check, then the pure parser) and the vtable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/crypto.h"
#include "line.h"
#include "core/metrics.h"

static const struct oh_config_key line_keys[] = {
    {"line.channel_secret", OH_CFG_SECRET, NULL,
     "channel secret; verifies X-Line-Signature on every delivery"},
    {"line.access_token", OH_CFG_SECRET, NULL, "channel access token, for sending replies"},
    {"line.api_base_url", OH_CFG_STR, "https://api.line.me", "Messaging API base URL"},
    {"line.api_data_base_url", OH_CFG_STR, "https://api-data.line.me",
     "base URL of message content (media) downloads"},
    {NULL, 0, NULL, NULL},
};

static const struct oh_config_field line_map[] = {
    OH_CFG_FIELD("line.channel_secret", struct line_conf, channel_secret),
    OH_CFG_FIELD("line.access_token", struct line_conf, access_token),
    OH_CFG_FIELD("line.api_base_url", struct line_conf, api_base_url),
    OH_CFG_FIELD("line.api_data_base_url", struct line_conf, api_data_base_url),
    {NULL, 0},
};

static const char *const line_headers[] = {"x-line-signature", NULL};

static void line_destroy(void *opaque)
{
    struct line_ctx *c = opaque;
    if (!c) return;
    oh_config_map_free(line_keys, line_map, &c->conf);
    free(c->quotes);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* Drops URL's trailing slashes; false unless it is http(s). */
static bool base_url(char *url)
{
    if (!url || (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))) return false;
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        url[--n] = '\0';
    return true;
}

static int line_init(const struct oh_conn_env *env, const oh_config *cfg, void **ctx, char *err,
                     size_t errlen)
{
    if (oh_config_require(cfg, "line.channel_secret", "to verify LINE webhook signatures", err,
                          errlen) ||
        oh_config_require(cfg, "line.access_token", "to send replies through the push API", err,
                          errlen))
        return OH_EINVAL;
    struct line_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        oh_errf(err, errlen, "out of memory");
        return OH_ENOMEM;
    }
    pthread_mutex_init(&c->lock, NULL);
    c->env = env;
    c->quotes = calloc(LINE_QUOTES, sizeof *c->quotes);
    if (oh_config_map(cfg, line_keys, line_map, &c->conf) != OH_OK || !c->quotes) {
        line_destroy(c);
        oh_errf(err, errlen, "out of memory");
        return OH_ENOMEM;
    }
    if (!base_url(c->conf.api_base_url) || !base_url(c->conf.api_data_base_url)) {
        line_destroy(c);
        oh_errf(err, errlen, "line.api_base_url and line.api_data_base_url must be http(s) URLs");
        return OH_EINVAL;
    }
    *ctx = c;
    return OH_OK;
}

/* Remembers the quoteToken of every received message so that an agent's
 * reply_to can quote it (LINE only takes the token, not the message id). */
static void remember_quotes(struct line_ctx *c, const struct oh_event_list *events)
{
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < events->n; i++) {
        const char *mid = oh_event_data_str(events->ev[i], "message_id");
        const char *tok = oh_event_data_str(events->ev[i], "quote_token");
        if (!mid || !tok || strlen(mid) >= sizeof c->quotes[0].message_id ||
            strlen(tok) >= sizeof c->quotes[0].token)
            continue;
        struct line_quote *q = &c->quotes[c->quote_next];
        snprintf(q->message_id, sizeof q->message_id, "%s", mid);
        snprintf(q->token, sizeof q->token, "%s", tok);
        c->quote_next = (c->quote_next + 1) % LINE_QUOTES;
    }
    pthread_mutex_unlock(&c->lock);
}

bool line_quote_find(struct line_ctx *c, const char *message_id, char *out, size_t outlen)
{
    bool found = false;
    if (!message_id || !*message_id) return false;
    pthread_mutex_lock(&c->lock);
    /* newest first: walk back from the last entry written */
    for (size_t k = 1; k <= LINE_QUOTES && !found; k++) {
        const struct line_quote *q = &c->quotes[(c->quote_next + LINE_QUOTES - k) % LINE_QUOTES];
        if (q->message_id[0] && strcmp(q->message_id, message_id) == 0) {
            snprintf(out, outlen, "%s", q->token);
            found = true;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return found;
}

/* Runs on the HTTP service thread: no blocking. */
static int line_webhook(void *opaque, const struct oh_http_req *req, struct oh_event_list *events,
                        struct oh_http_reply *reply, char *err, size_t errlen)
{
    struct line_ctx *c = opaque;
    if (strcmp(req->method, "POST") != 0) {
        oh_errf(err, errlen, "LINE delivers events with POST");
        return OH_EINVAL;
    }
    if (oh_sig_check_b64(c->conf.channel_secret, req->body, req->body_len, "",
                         req->header(req, "x-line-signature")) != OH_OK) {
        oh_errf(err, errlen, "missing or wrong X-Line-Signature");
        return OH_EAUTH;
    }
    struct oh_norm_ctx nc = {.account = NULL, .now_ms = oh_now_ms()};
    int rc = line_normalize(&nc, req->body, req->body_len, events, err, errlen);
    if (rc != OH_OK) return rc;
    remember_quotes(c, events);
    for (size_t i = 0; i < events->n; i++)
        if (json_is_true(json_object_get(oh_event_data(events->ev[i]), "redelivery")))
            oh_metrics_inc("omnihub_webhook_redeliveries_total", "channel=\"line\"", 1);
    return OH_OK;
}

const struct oh_connector oh_connector_line = {
    .name = LINE_CHANNEL,
    .config_keys = line_keys,
    .headers = line_headers,
    .init = line_init,
    .webhook = line_webhook,
    .normalize = line_normalize,
    .send = line_send,
    .media = line_media,
    .destroy = line_destroy,
};
