/* whatsapp.h - internals shared by the WhatsApp Business Cloud API
 * connector's files: instance state, the parser, sending and media. */
#ifndef OH_WHATSAPP_H
#define OH_WHATSAPP_H

#include <pthread.h>
#include "core/connector.h"

#define WA_CHANNEL      "whatsapp"
#define WA_TEXT_MAX     4096        /* characters Graph accepts in a text body */
#define WA_WINDOW_S     (24 * 3600) /* enforced by the core: .reply_window_s */
#define WA_MEDIA_OWNERS 4096        /* media id -> conversation entries kept */
#define WA_ERR_WINDOW   "outside_window"
#define WA_GRAPH_WINDOW 131047 /* Graph: re-engagement message (window closed) */

/* What one parse saw besides events; the webhook turns it into metrics. */
struct wa_parse_stats {
    size_t messages, statuses;
    size_t account_errors;  /* value.errors[] entries */
    size_t ignored_changes; /* changes of fields other than "messages" */
    size_t ignored_items;   /* statuses with a state we do not map */
    size_t malformed;       /* messages or statuses without their ids, skipped */
};

/* Called by the parser for every attachment: (media id, conversation). */
typedef void (*wa_media_fn)(void *opaque, const char *media_id, const char *conv);

/* Parses one webhook delivery into OUT (owned events appended). Pure apart
 * from MEDIA_FN (may be NULL). OH_EINVAL with a one-line reason in ERR for
 * a body that is not a WhatsApp Business Account delivery. */
int wa_parse(const struct oh_norm_ctx *nc, const uint8_t *body, size_t len,
             struct oh_event_list *out, struct wa_parse_stats *stats, wa_media_fn media_fn,
             void *opaque, char *err, size_t errlen);

/* The vtable's normalize: wa_parse without side channels. */
int wa_normalize(const struct oh_norm_ctx *nc, const uint8_t *body, size_t len,
                 struct oh_event_list *out, char *err, size_t errlen);

/* Remembers which conversation a media id belongs to (bounded, newest win). */
struct wa_media_owner {
    char media_id[128];
    char conv[OH_ID_MAX];
};

/* The configuration, filled by the config map (whatsapp.c). */
struct wa_conf {
    char *access_token;
    char *api_base_url; /* without a trailing slash */
    int64_t timeout_ms;
    char **numbers; /* whatsapp.phone_number_ids; NULL: any number of the app */
};

/* Instance state behind the vtable's ctx. */
struct wa_ctx {
    const struct oh_conn_env *env;
    struct wa_conf conf;
    pthread_mutex_t lock; /* guards owners */
    struct wa_media_owner *owners;
    size_t owner_next;
};

/* Outbound: one agent reply (borrowed CloudEvent) -> Graph /messages.
 * runs on a dispatcher thread */
int wa_send(void *ctx, const json_t *event, struct oh_send_result *res);

/* Pure: the Graph request body for the outbound event's DATA. OH_EINVAL
 * with ERROR_CODE / ERR filled when the reply cannot be sent as is. Caller
 * decrefs the result. */
json_t *wa_send_body(const json_t *data, char *error_code, size_t codelen, char *err,
                     size_t errlen);

/* Two-step Graph media download. runs on a worker thread */
int wa_media(void *ctx, const char *ref, size_t max_bytes, struct oh_media *out, char *err,
             size_t errlen);

/* True when ACCOUNT is one of the configured business numbers (or none
 * are configured). */
bool wa_number_allowed(const struct wa_ctx *c, const char *account);

/* Conversation of a media id seen in a delivery; false when unknown. */
bool wa_media_owner_get(struct wa_ctx *c, const char *media_id, char conv[OH_ID_MAX]);

#endif
