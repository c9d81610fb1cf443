/* line.h - internals shared by the LINE Messaging API connector's files:
 * instance state, the webhook parser, push sending and media download. */
#ifndef OH_LINE_H
#define OH_LINE_H

#include <pthread.h>
#include <jansson.h>
#include "core/connector.h"

#define LINE_CHANNEL    "line"
#define LINE_TIMEOUT_MS 15000
#define LINE_QUOTES     4096 /* message id -> quoteToken entries kept */

/* What a reply needs to quote a received message. */
struct line_quote {
    char message_id[32];
    char token[256];
};

/* Instance state behind the vtable's ctx. */
/* The line.* keys, filled by line_map (line.c). */
struct line_conf {
    char *channel_secret;    /* line.channel_secret */
    char *access_token;      /* line.access_token; NULL: sending disabled */
    char *api_base_url;      /* line.api_base_url, without a trailing slash */
    char *api_data_base_url; /* line.api_data_base_url (message content), idem */
};

struct line_ctx {
    const struct oh_conn_env *env;
    struct line_conf conf;
    pthread_mutex_t lock;      /* guards quotes */
    struct line_quote *quotes; /* ring, newest win; lost on restart */
    size_t quote_next;
};

/* The quoteToken of a received message, if still remembered: copies it to
 * OUT and returns true. Any thread. */
bool line_quote_find(struct line_ctx *c, const char *message_id, char *out, size_t outlen);

/* Pure: one webhook delivery {"destination", "events": [...]} -> one event
 * per webhook event that has a source. An empty events[] (LINE's
 * connectivity check) gives none. OH_EINVAL with a one-line reason in ERR
 * for a body that is not a LINE delivery. */
int line_normalize(const struct oh_norm_ctx *nc, const uint8_t *body, size_t len,
                   struct oh_event_list *out, char *err, size_t errlen);

/* Outbound: one agent reply (borrowed CloudEvent) -> the push API. Runs on a
 * dispatcher thread. */
int line_send(void *ctx, const json_t *event, struct oh_send_result *res);

/* Downloads the content of an image, video, audio or file message by its
 * message id. Runs on a worker thread. */
int line_media(void *ctx, const char *ref, size_t max_bytes, struct oh_media *out, char *err,
               size_t errlen);

#endif
