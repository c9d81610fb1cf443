/* x.h - internals shared by the X (Twitter) Account Activity API connector's
 * files: instance state, the delivery parser and DM sending. */
#ifndef OH_X_H
#define OH_X_H

#include <pthread.h>
#include <jansson.h>
#include "core/connector.h"

#define X_CHANNEL       "x"
#define X_TIMEOUT_MS    15000
#define X_RECENT        1024 /* dm_event_ids of our own recent sends */
#define X_CRC_TOKEN_MAX 256  /* longest crc_token the CRC answers */

/* Instance state behind the vtable's ctx. */
/* The x.* keys, filled by x_map (x.c). */
struct x_conf {
    char *consumer_secret; /* x.consumer_secret: CRC answers and signatures */
    char *access_token;    /* x.access_token (user context); NULL: no sending */
    char *api_base_url;    /* x.api_base_url, without a trailing slash */
    char *app_id;          /* x.app_id: echoes carrying it are our sends; NULL if empty */
};

struct x_ctx {
    const struct oh_conn_env *env;
    struct x_conf conf;
    pthread_mutex_t lock; /* guards recent */
    char (*recent)[32];   /* ring of dm_event_ids send() got back */
    size_t recent_next;
};

/* Asked for every event the account itself sent (an echo): true drops it,
 * because it is one of our own sends already in the history. */
typedef bool (*x_skip_echo_fn)(void *opaque, const char *source_app_id, const char *event_id);

/* x_normalize with the echo hook (SKIP may be NULL). */
int x_parse(const struct oh_norm_ctx *nc, const uint8_t *body, size_t len, x_skip_echo_fn skip,
            void *opaque, struct oh_event_list *out, char *err, size_t errlen);

/* Pure: one Account Activity delivery -> one event per message_create in
 * direct_message_events and one read status per entry of
 * direct_message_mark_read_events. Other activity kinds give no event.
 * OH_EINVAL with a one-line reason in ERR for a body that is not a delivery. */
int x_normalize(const struct oh_norm_ctx *nc, const uint8_t *body, size_t len,
                struct oh_event_list *out, char *err, size_t errlen);

/* "sha256=" + base64(HMAC-SHA256(SECRET, MSG)); OUT holds 64 bytes. */
void x_sign(const char *secret, const void *msg, size_t len, char out[64]);

/* Outbound: one agent reply (borrowed CloudEvent) -> a DM to the contact.
 * Runs on a dispatcher thread. */
int x_send(void *ctx, const json_t *event, struct oh_send_result *res);

#endif
