/* telegram.c - the Telegram Bot API connector: configuration, the webhook
 * (secret token check, then the pure parser) and the vtable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/crypto.h"
#include "core/metrics.h"
#include "telegram.h"

static const struct oh_config_key tg_keys[] = {
    {"telegram.secret_token", OH_CFG_SECRET, NULL,
     "secret_token given to setWebhook; checked on every delivery"},
    {"telegram.bot_token", OH_CFG_SECRET, NULL, "bot token from @BotFather, for sending replies"},
    {"telegram.api_base_url", OH_CFG_STR, "https://api.telegram.org", "Bot API base URL"},
    {NULL, 0, NULL, NULL},
};

static const struct oh_config_field tg_map[] = {
    OH_CFG_FIELD("telegram.secret_token", struct tg_conf, secret_token),
    OH_CFG_FIELD("telegram.bot_token", struct tg_conf, bot_token),
    OH_CFG_FIELD("telegram.api_base_url", struct tg_conf, api_base_url),
    {NULL, 0},
};

static const char *const tg_headers[] = {"x-telegram-bot-api-secret-token", NULL};

static void tg_destroy(void *opaque)
{
    struct tg_ctx *c = opaque;
    if (!c) return;
    oh_config_map_free(tg_keys, tg_map, &c->conf);
    free(c);
}

static int tg_init(const struct oh_conn_env *env, const oh_config *cfg, void **ctx, char *err,
                   size_t errlen)
{
    if (oh_config_require(cfg, "telegram.secret_token", "to verify Telegram webhook deliveries",
                          err, errlen) ||
        oh_config_require(cfg, "telegram.bot_token", "to send replies through the Bot API", err,
                          errlen))
        return OH_EINVAL;
    struct tg_ctx *c = calloc(1, sizeof *c);
    if (!c || oh_config_map(cfg, tg_keys, tg_map, &c->conf) != OH_OK) {
        tg_destroy(c);
        oh_errf(err, errlen, "out of memory");
        return OH_ENOMEM;
    }
    c->env = env;
    char *base = c->conf.api_base_url;
    if (!base || (strncmp(base, "http://", 7) && strncmp(base, "https://", 8))) {
        tg_destroy(c);
        oh_errf(err, errlen, "telegram.api_base_url must be an http(s) URL");
        return OH_EINVAL;
    }
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        base[--n] = '\0';
    /* The bot's own id prefixes its token ("123456:ABC-..."): it names the
     * account, so two bots never share a conversation. */
    const char *bot = c->conf.bot_token;
    const char *colon = bot ? strchr(bot, ':') : NULL;
    if (colon && colon > bot && (size_t)(colon - bot) < sizeof c->account)
        snprintf(c->account, sizeof c->account, "%.*s", (int)(colon - bot), bot);
    else
        snprintf(c->account, sizeof c->account, "%s", TG_DEFAULT_ACCOUNT);
    *ctx = c;
    return OH_OK;
}

/* Compares the header with the configured token without revealing where
 * (or whether, by length) they differ: both sides are hashed first. */
static bool secret_matches(const char *want, const char *got)
{
    if (!got) return false;
    uint8_t a[OH_SHA256_LEN], b[OH_SHA256_LEN];
    oh_sha256(want, strlen(want), a);
    oh_sha256(got, strlen(got), b);
    return oh_ct_equal(a, sizeof a, b, sizeof b);
}

/* Runs on the HTTP service thread: no blocking. */
static int tg_webhook(void *opaque, const struct oh_http_req *req, struct oh_event_list *events,
                      struct oh_http_reply *reply, char *err, size_t errlen)
{
    struct tg_ctx *c = opaque;
    if (strcmp(req->method, "POST") != 0) {
        oh_errf(err, errlen, "telegram delivers updates with POST");
        return OH_EINVAL;
    }
    if (!secret_matches(c->conf.secret_token,
                        req->header(req, "x-telegram-bot-api-secret-token"))) {
        oh_errf(err, errlen, "missing or wrong X-Telegram-Bot-Api-Secret-Token");
        return OH_EAUTH;
    }
    struct oh_norm_ctx nc = {.account = c->account, .now_ms = oh_now_ms()};
    int rc = tg_normalize(&nc, req->body, req->body_len, events, err, errlen);
    if (rc == OH_OK && events->n == 0)
        oh_metrics_inc("omnihub_webhook_ignored_total", "channel=\"telegram\"", 1);
    return rc;
}

const struct oh_connector oh_connector_telegram = {
    .name = TG_CHANNEL,
    .config_keys = tg_keys,
    .headers = tg_headers,
    .init = tg_init,
    .webhook = tg_webhook,
    .normalize = tg_normalize,
    .send = tg_send,
    .media = tg_media,
    .destroy = tg_destroy,
};
