/* messenger.c - the Facebook Messenger connector: Meta webhooks with object "page" and
 * the Send API, both implemented in connectors/meta/ and shared. */
#include <stddef.h>
#include "../meta/meta.h"

static const struct oh_config_key ms_keys[] = {
    {"messenger.app_secret", OH_CFG_SECRET, NULL, "Meta app secret: checks X-Hub-Signature-256"},
    {"messenger.verify_token", OH_CFG_SECRET, NULL, "hub.verify_token of the subscription check"},
    {"messenger.access_token", OH_CFG_SECRET, NULL, "access token of the Facebook Page (Send API)"},
    {"messenger.app_id", OH_CFG_STR, NULL, "our Meta app id: echoes carrying it are our own sends"},
    {"messenger.api_base_url", OH_CFG_STR, "https://graph.facebook.com/v19.0",
     "Graph API base URL"},
    {NULL, 0, NULL, NULL},
};

static const struct oh_config_field ms_map[] = {
    OH_CFG_FIELD("messenger.access_token", struct meta_conf, access_token),
    OH_CFG_FIELD("messenger.app_id", struct meta_conf, app_id),
    OH_CFG_FIELD("messenger.api_base_url", struct meta_conf, api_base_url),
    {NULL, 0},
};

static const struct meta_channel ms_channel = {
    .name = "messenger",
    .object = "page",
    .keys = ms_keys,
    .map = ms_map,
};

static const char *const ms_headers[] = {"x-hub-signature-256", NULL};

static int ms_init(const struct oh_conn_env *env, const oh_config *cfg, void **ctx, char *err,
                   size_t errlen)
{
    return meta_init(&ms_channel, env, cfg, ctx, err, errlen);
}

static int ms_normalize(const struct oh_norm_ctx *nc, const uint8_t *body, size_t len,
                        struct oh_event_list *out, char *err, size_t errlen)
{
    return meta_normalize(&ms_channel, nc, NULL, NULL, body, len, out, err, errlen);
}

const struct oh_connector oh_connector_messenger = {
    .name = "messenger",
    .config_keys = ms_keys,
    .headers = ms_headers,
    .init = ms_init,
    .webhook = meta_webhook,
    .normalize = ms_normalize,
    .send = meta_send,
    .media = meta_media,
    .destroy = meta_destroy,
    .webhook_auth = OH_WEBHOOK_META,
    .reply_window_s = META_WINDOW_S,
};
