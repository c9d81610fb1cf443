/* meta.h - what the Messenger and Instagram connectors share: Meta's webhook
 * verification, the messaging[] parser and the Send API client. */
#ifndef OH_META_H
#define OH_META_H

#include "core/connector.h"

/* The instance's configuration, filled by the channel's config map. */
struct meta_conf {
    char *access_token;
    char *app_id; /* NULL when not configured */
    char *api_base_url;
};

/* What differs between the two Meta channels. */
struct meta_channel {
    const char *name;                  /* "messenger" | "instagram": channel and config prefix */
    const char *object;                /* the webhook's "object": "page" | "instagram" */
    const struct oh_config_key *keys;  /* "<name>.*" */
    const struct oh_config_field *map; /* keys -> struct meta_conf */
};

/* The 24-hour messaging window of both platforms (the core enforces it:
 * .reply_window_s in each vtable). */
#define META_WINDOW_S (24 * 3600)

/* Pure: a webhook body of CH -> normalized events appended to OUT.
 * SKIP (may be NULL) is asked about every echo (message.is_echo): when it
 * returns true the echo is one of our own sends and is left out. Returns
 * OH_EINVAL with a one-line reason in ERR on a malformed body; OUT then
 * holds nothing new. */
typedef bool (*meta_skip_echo_fn)(void *opaque, const char *app_id, const char *mid);
int meta_normalize(const struct meta_channel *ch, const struct oh_norm_ctx *nc,
                   meta_skip_echo_fn skip, void *opaque, const uint8_t *body, size_t len,
                   struct oh_event_list *out, char *err, size_t errlen);

/* The connector callbacks, parameterized by CH. meta_init reads
 * "<name>.app_secret", ".verify_token", ".access_token" (required),
 * ".app_id" and ".api_base_url"; the instance is freed with meta_destroy. */
int meta_init(const struct meta_channel *ch, const struct oh_conn_env *env, const oh_config *cfg,
              void **ctx, char *err, size_t errlen);
/* runs on the HTTP service thread */
int meta_webhook(void *ctx, const struct oh_http_req *req, struct oh_event_list *events,
                 struct oh_http_reply *reply, char *err, size_t errlen);
/* runs on a dispatcher thread */
int meta_send(void *ctx, const json_t *event, struct oh_send_result *res);
void meta_destroy(void *ctx);
/* Runs on a worker thread. Fetches an attachment by the media_ref the parser gave it (base64url of
 * the platform's CDN URL); only Meta CDN hosts are fetched. */
int meta_media(void *ctx, const char *ref, size_t max_bytes, struct oh_media *out, char *err,
               size_t errlen);

#endif
