/* x.c - the X Account Activity API connector: configuration, the CRC
 * challenge, the signed webhook (then the pure parser) and the vtable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/crypto.h"
#include "core/metrics.h"
#include "x.h"

static const struct oh_config_key x_keys[] = {
    {"x.consumer_secret", OH_CFG_SECRET, NULL,
     "app consumer secret: answers CRC checks and verifies x-twitter-webhooks-signature"},
    {"x.access_token", OH_CFG_SECRET, NULL, "OAuth 2.0 user access token (dm.write), for replies"},
    {"x.api_base_url", OH_CFG_STR, "https://api.twitter.com", "X API base URL"},
    {"x.app_id", OH_CFG_STR, NULL, "our app id: DMs echoed with it as source_app_id are skipped"},
    {NULL, 0, NULL, NULL},
};

static const struct oh_config_field x_map[] = {
    OH_CFG_FIELD("x.consumer_secret", struct x_conf, consumer_secret),
    OH_CFG_FIELD("x.access_token", struct x_conf, access_token),
    OH_CFG_FIELD("x.api_base_url", struct x_conf, api_base_url),
    OH_CFG_FIELD("x.app_id", struct x_conf, app_id),
    {NULL, 0},
};

static const char *const x_headers[] = {"x-twitter-webhooks-signature", NULL};

static void x_destroy(void *opaque)
{
    struct x_ctx *c = opaque;
    if (!c) return;
    pthread_mutex_destroy(&c->lock);
    oh_config_map_free(x_keys, x_map, &c->conf);
    free(c->recent);
    free(c);
}

static int x_init(const struct oh_conn_env *env, const oh_config *cfg, void **ctx, char *err,
                  size_t errlen)
{
    if (oh_config_require(cfg, "x.consumer_secret",
                          "to answer X's CRC checks and verify webhook signatures", err, errlen) ||
        oh_config_require(cfg, "x.access_token", "to send DMs through the X API", err, errlen))
        return OH_EINVAL;
    struct x_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        oh_errf(err, errlen, "out of memory");
        return OH_ENOMEM;
    }
    pthread_mutex_init(&c->lock, NULL);
    c->env = env;
    c->recent = calloc(X_RECENT, sizeof *c->recent);
    if (oh_config_map(cfg, x_keys, x_map, &c->conf) != OH_OK || !c->recent) {
        x_destroy(c);
        oh_errf(err, errlen, "out of memory");
        return OH_ENOMEM;
    }
    char *base = c->conf.api_base_url;
    if (!base || (strncmp(base, "http://", 7) && strncmp(base, "https://", 8))) {
        x_destroy(c);
        oh_errf(err, errlen, "x.api_base_url must be an http(s) URL");
        return OH_EINVAL;
    }
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        base[--n] = '\0';
    if (c->conf.app_id && !*c->conf.app_id) { /* empty: no app id */
        free(c->conf.app_id);
        c->conf.app_id = NULL;
    }
    *ctx = c;
    return OH_OK;
}

/* An echo is one of our sends when it carries our app id, or its event id
 * is one send() just got back. Runs on the HTTP service thread. */
static bool x_skip_echo(void *opaque, const char *app_id, const char *event_id)
{
    struct x_ctx *c = opaque;
    if (c->conf.app_id && app_id && strcmp(app_id, c->conf.app_id) == 0) return true;
    bool found = false;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < X_RECENT && !found; i++)
        found = c->recent[i][0] && strcmp(c->recent[i], event_id) == 0;
    pthread_mutex_unlock(&c->lock);
    return found;
}

/* The CRC answer is HMAC(secret, T), exactly the signature X puts on a
 * delivery whose body is T: answering any T would sign whatever a stranger
 * wants to POST. So T must be what X sends (a short URL-safe, base64-like
 * string) and can never be a delivery: none of these bytes is '{' or JSON
 * whitespace, and x_webhook refuses every body that does not start so. */
static bool crc_token_ok(const char *t)
{
    size_t n = strlen(t);
    return n > 0 && n <= X_CRC_TOKEN_MAX &&
           strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_.~") == n;
}

/* GET ?crc_token=T -> {"response_token": "sha256=<base64 HMAC(secret, T)>"}. */
static int x_crc(struct x_ctx *c, const struct oh_http_req *req, struct oh_http_reply *reply,
                 char *err, size_t errlen)
{
    char token[X_CRC_TOKEN_MAX + 2], sig[64];
    int rc = oh_http_query_param(req, "crc_token", token, sizeof token);
    if (rc == OH_ENOTFOUND || (rc == OH_OK && !token[0])) {
        oh_errf(err, errlen, "crc_token is missing");
        return OH_EINVAL;
    }
    if (rc != OH_OK || !crc_token_ok(token)) {
        oh_errf(err, errlen, "crc_token must be 1 to %d characters of [A-Za-z0-9+/=._~-]",
                X_CRC_TOKEN_MAX);
        return OH_EINVAL;
    }
    x_sign(c->conf.consumer_secret, token, strlen(token), sig);
    json_t *j = json_pack("{s:s}", "response_token", sig);
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!body) {
        oh_errf(err, errlen, "out of memory");
        return OH_ENOMEM;
    }
    reply->status = 200;
    snprintf(reply->content_type, sizeof reply->content_type, "application/json");
    reply->body = body;
    reply->body_len = strlen(body);
    return OH_OK;
}

/* Runs on the HTTP service thread: no blocking. */
static int x_webhook(void *opaque, const struct oh_http_req *req, struct oh_event_list *events,
                     struct oh_http_reply *reply, char *err, size_t errlen)
{
    struct x_ctx *c = opaque;
    if (strcmp(req->method, "GET") == 0) return x_crc(c, req, reply, err, errlen);
    if (strcmp(req->method, "POST") != 0) {
        oh_errf(err, errlen, "X answers CRC checks with GET and delivers events with POST");
        return OH_EINVAL;
    }
    /* A delivery is a JSON object. Refused before the signature is looked
     * at, so no string a CRC answer ever signed can pass as one. */
    size_t i = 0;
    while (i < req->body_len && (req->body[i] == ' ' || req->body[i] == '\t' ||
                                 req->body[i] == '\r' || req->body[i] == '\n'))
        i++;
    if (i == req->body_len || req->body[i] != '{') {
        oh_errf(err, errlen, "body is not a JSON object");
        return OH_EINVAL;
    }
    if (oh_sig_check_b64(c->conf.consumer_secret, req->body, req->body_len,
                         "sha256=", req->header(req, "x-twitter-webhooks-signature")) != OH_OK) {
        oh_errf(err, errlen, "missing or wrong x-twitter-webhooks-signature");
        return OH_EAUTH;
    }
    struct oh_norm_ctx nc = {.account = NULL, .now_ms = oh_now_ms()};
    size_t before = events->n;
    int rc = x_parse(&nc, req->body, req->body_len, x_skip_echo, c, events, err, errlen);
    if (rc == OH_OK && events->n == before)
        oh_metrics_inc("omnihub_webhook_ignored_total", "channel=\"x\"", 1);
    return rc;
}

const struct oh_connector oh_connector_x = {
    .name = X_CHANNEL,
    .config_keys = x_keys,
    .headers = x_headers,
    .init = x_init,
    .webhook = x_webhook,
    .normalize = x_normalize,
    .send = x_send,
    .destroy = x_destroy,
};
