/* telegram.h - internals shared by the Telegram Bot API connector's files:
 * instance state, the update parser, sending and media download. */
#ifndef OH_TELEGRAM_H
#define OH_TELEGRAM_H

#include <jansson.h>
#include "core/connector.h"

#define TG_CHANNEL         "telegram"
#define TG_DEFAULT_ACCOUNT "bot" /* account when no bot token is known */
#define TG_TIMEOUT_MS      15000

/* Instance state behind the vtable's ctx. */
/* The telegram.* keys, filled by tg_map (telegram.c). */
struct tg_conf {
    char *secret_token; /* telegram.secret_token */
    char *bot_token;    /* telegram.bot_token; NULL: sending disabled */
    char *api_base_url; /* telegram.api_base_url, without a trailing slash */
};

struct tg_ctx {
    const struct oh_conn_env *env;
    struct tg_conf conf;
    char account[64]; /* the bot id (token prefix before ':') or "bot" */
};

/* Pure: one webhook delivery (an Update object) -> 0 or 1 event appended to
 * OUT. Update kinds other than message, edited_message, channel_post,
 * edited_channel_post, callback_query and message_reaction give no event. OH_EINVAL with a
 * one-line reason in ERR for a body that is not an Update. */
int tg_normalize(const struct oh_norm_ctx *nc, const uint8_t *body, size_t len,
                 struct oh_event_list *out, char *err, size_t errlen);

/* Splits a message id of ours, "<chat_id>:<message_id>[:<edit_date>]" (or a
 * bare "<message_id>"), into its Telegram message_id. false when malformed. */
bool tg_parse_message_ref(const char *ref, long long *message_id);

/* Outbound: one agent reply (borrowed CloudEvent) -> sendMessage (or
 * sendPhoto/sendVideo/sendAudio/sendDocument for one attachment). Runs on a
 * dispatcher thread. */
int tg_send(void *ctx, const json_t *event, struct oh_send_result *res);

/* Downloads a file by its file_id (getFile, then the file path). Runs on a
 * worker thread. */
int tg_media(void *ctx, const char *ref, size_t max_bytes, struct oh_media *out, char *err,
             size_t errlen);

#endif
