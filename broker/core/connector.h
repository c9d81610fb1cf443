/* connector.h - the interface every channel connector implements. A
 * connector is one const struct oh_connector (designated initializers)
 * plus the state behind its void *ctx. NULL callbacks mean "not supported".
 * The core knows channels only through this table. */
#ifndef OH_CONNECTOR_H
#define OH_CONNECTOR_H

#include <jansson.h>
#include "core/oh.h"
#include "core/config.h"
#include "core/event.h"

struct oh_conn_env;

/* An HTTP request as the gateway hands it to a connector: fully buffered,
 * body limited by http.max_body. Everything is borrowed for the call. */
struct oh_http_req {
    const char *method; /* "GET", "POST" */
    const char *path;
    const char *query; /* raw query string without '?', "" when none */
    const uint8_t *body;
    size_t body_len;
    /* Value of header LNAME (lower case, as declared in .headers), or NULL. */
    const char *(*header)(const struct oh_http_req *req, const char *lname);
    void *priv;
};

/* Copies the URL-decoded query parameter NAME into OUT. OH_ENOTFOUND when
 * absent, OH_ETOOBIG when it does not fit. */
int oh_http_query_param(const struct oh_http_req *req, const char *name, char *out, size_t outlen);

/* What the connector wants answered. STATUS 0 means the default: 200 once
 * every produced event is durable. BODY (malloc'd, freed by the gateway)
 * NULL means "{}" for JSON. */
struct oh_http_reply {
    int status;
    char content_type[64];
    char *body;
    size_t body_len;
};

/* Context for the pure normalizer. */
struct oh_norm_ctx {
    const char *account; /* --account, or NULL: take it from the payload */
    int64_t now_ms;      /* received time, for payloads without a timestamp */
};

/* Outcome of a send. */
struct oh_send_result {
    char provider_message_id[512]; /* the channel's id for what was sent */
    char error_code[64];           /* provider's code on failure */
    char error[512];               /* readable reason on failure */
    int retry_after_ms;            /* hint for OH_ERETRY, 0 none */
};

/* The conversation a customer owns on a channel the gateway itself serves
 * (see customer_conversation). */
struct oh_owned {
    char conversation_id[OH_ID_MAX];
    char account[256];
};

/* A media object fetched through GET /v1/media/<connector>/<ref>. */
struct oh_media {
    uint8_t *data; /* malloc'd, freed by the gateway */
    size_t len;
    char content_type[128];
    char filename[256];
    char conversation_id[OH_ID_MAX]; /* owner check; "" if unknown */
};

/* Webhook authentication the core does for a connector (.webhook_auth). */
enum oh_webhook_auth {
    OH_WEBHOOK_SELF = 0, /* .webhook verifies the request itself */
    /* Meta's platforms (the Graph webhooks): only GET and POST;
     * a GET is the subscription check (hub.mode=subscribe, hub.verify_token
     * equal to "<name>.verify_token", hub.challenge echoed), answered by the
     * core and never passed on; a POST must carry X-Hub-Signature-256 =
     * "sha256=" + hex HMAC-SHA256 of the body under "<name>.app_secret"
     * (list that header in .headers). Rejections count in
     * omnihub_webhook_rejected_total. */
    OH_WEBHOOK_META,
};

struct oh_connector {
    const char *name; /* channel name, lower case; also the config prefix */

    /* Config keys, all under "<name>."; NULL-key terminated. The connector
     * is enabled when "<name>.enabled" is true, or when it is not given
     * and any of its keys is set. */
    const struct oh_config_key *config_keys;

    /* Lower-case request header names the webhook reads. */
    const char *const *headers;

    /* Webhook path; NULL means "/webhooks/<name>". */
    const char *webhook_path;

    /* A send failing transiently (OH_ERETRY) is retried until it is taken,
     * whatever dispatch.max_attempts says (a receiver whose contract is
     * "retried with backoff until a 2xx"). */
    bool retry_until_sent;

    /* Creates the instance on the main thread. ENV (borrowed, valid until
     * destroy) is everything the daemon offers it; CFG is oh_env_config(ENV).
     * Must fail with a clear ERR when a required secret is missing (the
     * caller adds "connector <name>: "). On failure frees whatever it
     * allocated. */
    int (*init)(const struct oh_conn_env *env, const oh_config *cfg, void **ctx, char *err,
                size_t errlen);

    /* Handles one webhook request on the HTTP service thread: must not
     * block. Verifies the request, then either fills REPLY (verification
     * challenges and the like) or normalizes the delivery into EVENTS. The
     * gateway makes every event durable before it answers. Returns 0, or
     * OH_EAUTH (401), OH_EFORBIDDEN (403), OH_EINVAL (400), OH_ETOOBIG
     * (413) with a message in ERR. */
    int (*webhook)(void *ctx, const struct oh_http_req *req, struct oh_event_list *events,
                   struct oh_http_reply *reply, char *err, size_t errlen);

    /* Pure: a raw provider payload -> normalized events. Used by the
     * webhook and by `omnihubctl normalize`. OH_EINVAL with a one-line
     * reason in ERR on bad input. */
    int (*normalize)(const struct oh_norm_ctx *nc, const uint8_t *body, size_t len,
                     struct oh_event_list *out, char *err, size_t errlen);

    /* Delivers one outbound event (borrowed) on a dispatcher thread; may
     * block, with timeouts. 0 sent, OH_ERETRY transient (backoff and try
     * again), any other negative code a permanent failure; RES says more. */
    int (*send)(void *ctx, const json_t *event, struct oh_send_result *res);

    /* Fetches a media object on a worker thread; may block. Called only
     * once the caller is authorized (see media_owner). */
    int (*media)(void *ctx, const char *ref, size_t max_bytes, struct oh_media *out, char *err,
                 size_t errlen);

    /* The conversation media REF belongs to, from what the instance knows
     * locally (never the network): fills CONV and returns true, or false
     * when it does not know. Runs on a worker thread before media; the
     * gateway answers 403 without fetching when the caller may not read
     * that conversation. NULL, or an unknown ref: only agents may fetch. */
    bool (*media_owner)(void *ctx, const char *ref, char conv[OH_ID_MAX]);

    /* Deletes media REF from what the instance keeps locally (a person's
     * erasure, DELETE /v1/contacts/{id}); 0 also when it keeps nothing of
     * it. Runs on the sync service's thread. NULL: it caches no media. */
    int (*media_erase)(void *ctx, const char *ref);

    /* Pollers (a mailbox, say): start their own threads, stop and join them. */
    int (*start)(void *ctx);
    void (*stop)(void *ctx);

    /* Adds readiness details to /readyz (object to extend); may be NULL. */
    void (*ready)(void *ctx, json_t *details);

    /* Frees the instance; accepts NULL. */
    void (*destroy)(void *ctx);

    /* ---- rules several channels share, enforced by the core once
     * (broker/core/conn_env.c); a connector declares which it follows ---- */

    /* Who authenticates a webhook request before .webhook runs (enum
     * oh_webhook_auth): the connector itself (the default), or the core
     * with the checks of a platform, under the connector's own keys. */
    int webhook_auth;

    /* The customer-service window: free-form replies only within this many
     * seconds of the customer's last message, checked against the store
     * before send() (failed "outside_window", never retried); 0 none. A
     * role without a store cannot tell and lets the provider decide. */
    int64_t reply_window_s;
    /* Templates may be sent outside the window (a channel whose platform allows it). */
    bool reply_window_templates;

    /* ---- channels the gateway itself serves (customers connect to the
     * REST API and the WebSocket with their own token). The core never
     * names such a channel: it asks the connector that sets
     * customer_conversation, and tells every connector that sets a hook
     * what the gateway did. All NULL/false for platform channels. ---- */

    /* Enabled unless "<name>.enabled" is false: the channel needs no
     * secret of its own, and customers' chat has always been on. */
    bool enabled_by_default;

    /* The conversation customer SUB owns on this channel (a customer
     * owns at most one, on the first connector that sets this): fills OUT
     * and returns 0, or OH_ENOTFOUND. Pure and quick: the gateway calls it
     * for every customer token, on its service thread. A customer's
     * "conversation":"new" send creates it, with this channel and account. */
    int (*customer_conversation)(void *ctx, const char *sub, struct oh_owned *out);

    /* The events of CONV with AFTER < seq <= UPTO were queued to a
     * customer's connected device (live, or replayed by a subscribe). Runs
     * on the gateway's service thread: must not block (queue the work). */
    void (*on_pushed)(void *ctx, const char *conv, int64_t after, int64_t upto);

    /* A read cursor of ROLE ("customer", "agent") in CONV was stored at
     * SEQ (REST or WebSocket). Runs on a gateway worker after the store
     * took it; should not block for long (queue the work). */
    void (*on_read)(void *ctx, const char *conv, const char *role, int64_t seq);
};

/* ---- the connector's environment (broker/core/conn_env.c) ----
 * What the daemon offers one connector instance: ingestion, its message
 * references, a key-value space of its own, its config, logging. Opaque;
 * valid from init to destroy; every function is thread-safe. Functions
 * marked "may block" reach the store: never call them on the HTTP service
 * thread (webhook). Outbound HTTP is core/http_client.h (oh_http_post). */

/* The connector's name (its config prefix); borrowed. */
const char *oh_env_name(const struct oh_conn_env *env);
/* The daemon's configuration; borrowed. */
const oh_config *oh_env_config(const struct oh_conn_env *env);

/* Called once every event of one ingest is durable (ERR 0) or one failed.
 * Runs on a log thread: must not block. */
typedef void (*oh_env_done_fn)(void *opaque, int err);
/* Validates and appends EVENTS to the log (takes them; the list is left
 * empty). DONE is called exactly once unless a negative value is returned.
 * Any thread. */
int oh_env_ingest(const struct oh_conn_env *env, struct oh_event_list *events, oh_env_done_fn done,
                  void *opaque);
/* Blocking form for pollers; never on the HTTP service thread. */
int oh_env_ingest_wait(const struct oh_conn_env *env, struct oh_event_list *events);

/* Message references of this channel: a provider's or a mail's id REF of
 * ACCOUNT -> (conversation, our message id). Used for email threading,
 * bounces and reply context. May block. Without a store (a Kafka gateway
 * or dispatcher) get answers OH_ENOTFOUND and put does nothing (OH_OK):
 * the sync service, which has the store, records the references of every
 * materialized event. CONV holds OH_ID_MAX bytes, MESSAGE_ID MSGLEN. */
int oh_env_ref_get(const struct oh_conn_env *env, const char *account, const char *ref, char *conv,
                   char *message_id, size_t msglen);
int oh_env_ref_put(const struct oh_conn_env *env, const char *account, const char *ref,
                   const char *conv, const char *message_id);
/* The contact id of conversation CONV into OUT. May block. OH_ENOTFOUND
 * when unknown or without a store. */
int oh_env_contact(const struct oh_conn_env *env, const char *conv, char *out, size_t outlen);

/* One stored event of a conversation, borrowed for the call; return
 * non-zero to stop (a negative value is passed on as the result). */
typedef int (*oh_env_row_fn)(void *opaque, const char *conv, int64_t seq, const char *json,
                             size_t len);
/* CONV's sequenced events with seq > AFTER, at most LIMIT, in order. May
 * block. OH_ENOTFOUND for an unknown conversation or without a store. */
int oh_env_history(const struct oh_conn_env *env, const char *conv, int64_t after, int limit,
                   oh_env_row_fn fn, void *opaque);
/* The delivery state ("sent", "delivered", "read", "failed") recorded for
 * our message MESSAGE_ID in CONV, into OUT. May block. OH_ENOTFOUND when
 * none or without a store. */
int oh_env_message_state(const struct oh_conn_env *env, const char *conv, const char *message_id,
                         char out[16]);

/* The connector's own key-value space: SPACE NULL is "<name>", else
 * "<name>.<space>" ("<name>.thread"). Values up to 64 KiB; get copies into
 * OUT (OH_ENOTFOUND, OH_ETOOBIG). May block. Without a store: get
 * OH_ENOTFOUND, put OH_EUNAVAIL. */
int oh_env_kv_get(const struct oh_conn_env *env, const char *space, const char *key, char *out,
                  size_t outlen);
int oh_env_kv_put(const struct oh_conn_env *env, const char *space, const char *key,
                  const char *value);
/* Changes KEY, which processes of several roles may change at once:
 * reads its value (up to MAX bytes; CUR NULL when absent), FN(CTX, CUR,
 * &NEXT) answers the new value in NEXT (malloc'd; NULL: nothing to write)
 * or an error, and NEXT is written only if KEY still holds what was read;
 * else it reads again, 1-8 ms later, up to 20 times (then OH_ERETRY).
 * Without a store OH_EUNAVAIL. May block. */
typedef int (*oh_env_kv_change_fn)(void *ctx, const char *cur, char **next);
int oh_env_kv_update(const struct oh_conn_env *env, const char *space, const char *key,
                     size_t max, oh_env_kv_change_fn fn, void *ctx);
/* True when this role has the store (the functions above can answer). */
bool oh_env_has_store(const struct oh_conn_env *env);

/* Logs under the connector's name (structured, like OH_WARN). Metrics are
 * process-wide: core/metrics.h. */
void oh_env_log(const struct oh_conn_env *env, enum oh_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The registry generated from connectors/meson.build. */
extern const struct oh_connector *const oh_connectors[];
/* Looks a connector up by name; NULL if unknown. */
const struct oh_connector *oh_connector_find(const char *name);

#endif
