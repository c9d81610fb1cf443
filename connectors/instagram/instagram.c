/* instagram.c - the Instagram Direct connector: Meta webhooks with object "instagram" and
 * the Send API, both implemented in connectors/meta/ and shared. */
#include <stddef.h>
#include "../meta/meta.h"

static const struct oh_config_key ig_keys[] = {
    {"instagram.app_secret", OH_CFG_SECRET, NULL, "Meta app secret: checks X-Hub-Signature-256"},
    {"instagram.verify_token", OH_CFG_SECRET, NULL, "hub.verify_token of the subscription check"},
    {"instagram.access_token", OH_CFG_SECRET, NULL,
     "access token of the Instagram professional account (Send API)"},
    {"instagram.app_id", OH_CFG_STR, NULL, "our Meta app id: echoes carrying it are our own sends"},
    {"instagram.api_base_url", OH_CFG_STR, "https://graph.facebook.com/v19.0",
     "Graph API base URL"},
    {NULL, 0, NULL, NULL},
};

static const struct oh_config_field ig_map[] = {
    OH_CFG_FIELD("instagram.access_token", struct meta_conf, access_token),
    OH_CFG_FIELD("instagram.app_id", struct meta_conf, app_id),
    OH_CFG_FIELD("instagram.api_base_url", struct meta_conf, api_base_url),
    {NULL, 0},
};

static const struct meta_channel ig_channel = {
    .name = "instagram",
    .object = "instagram",
    .keys = ig_keys,
    .map = ig_map,
};

static const char *const ig_headers[] = {"x-hub-signature-256", NULL};

static int ig_init(const struct oh_conn_env *env, const oh_config *cfg, void **ctx, char *err,
                   size_t errlen)
{
    return meta_init(&ig_channel, env, cfg, ctx, err, errlen);
}

static int ig_normalize(const struct oh_norm_ctx *nc, const uint8_t *body, size_t len,
                        struct oh_event_list *out, char *err, size_t errlen)
{
    return meta_normalize(&ig_channel, nc, NULL, NULL, body, len, out, err, errlen);
}

const struct oh_connector oh_connector_instagram = {
    .name = "instagram",
    .config_keys = ig_keys,
    .headers = ig_headers,
    .init = ig_init,
    .webhook = meta_webhook,
    .normalize = ig_normalize,
    .send = meta_send,
    .media = meta_media,
    .destroy = meta_destroy,
    .webhook_auth = OH_WEBHOOK_META,
    .reply_window_s = META_WINDOW_S,
};
