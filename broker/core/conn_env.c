/* conn_env.c - the environment a connector instance gets instead of the hub
 * (ingest, message references, its own key-value space, config, logging),
 * and the shared channel rules the core enforces once: Meta's webhook checks
 * and the customer-service window. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/conn_env.h"
#include "core/crypto.h"
#include "core/hub_int.h"
#include "core/metrics.h"
#include "store/store.h"

struct oh_conn_env {
    oh_hub *hub;
    const struct oh_connector *vt;
    /* OH_WEBHOOK_META: "<name>.verify_token", "<name>.app_secret" (borrowed
     * from the config, NULL when unset) */
    const char *verify_token, *app_secret;
};

static const char *own_key(const oh_hub *hub, const struct oh_connector *vt, const char *key)
{
    char k[128];
    snprintf(k, sizeof k, "%s.%s", vt->name, key);
    return hub->cfg ? oh_config_str(hub->cfg, k) : NULL;
}

struct oh_conn_env *oh_conn_env_new(oh_hub *hub, const struct oh_connector *vt)
{
    struct oh_conn_env *env = calloc(1, sizeof *env);
    if (!env) return NULL;
    env->hub = hub;
    env->vt = vt;
    if (vt->webhook_auth == OH_WEBHOOK_META) {
        env->verify_token = own_key(hub, vt, "verify_token");
        env->app_secret = own_key(hub, vt, "app_secret");
    }
    return env;
}

void oh_conn_env_free(struct oh_conn_env *env)
{
    free(env);
}

const char *oh_env_name(const struct oh_conn_env *env)
{
    return env->vt->name;
}

const oh_config *oh_env_config(const struct oh_conn_env *env)
{
    return env->hub->cfg;
}

bool oh_env_has_store(const struct oh_conn_env *env)
{
    return env->hub->store != NULL;
}

int oh_env_ingest(const struct oh_conn_env *env, struct oh_event_list *events, oh_env_done_fn done,
                  void *opaque)
{
    return oh_hub_ingest(env->hub, events, done, opaque);
}

int oh_env_ingest_wait(const struct oh_conn_env *env, struct oh_event_list *events)
{
    return oh_hub_ingest_wait(env->hub, events);
}

int oh_env_ref_get(const struct oh_conn_env *env, const char *account, const char *ref, char *conv,
                   char *message_id, size_t msglen)
{
    oh_store *st = env->hub->store;
    struct oh_store_ref r;
    if (!st || !account || !ref) return OH_ENOTFOUND;
    int rc = oh_store_ref_get(st, env->vt->name, account, ref, &r);
    if (rc) return rc;
    if (conv) snprintf(conv, OH_ID_MAX, "%s", r.conversation_id);
    if (message_id) snprintf(message_id, msglen, "%s", r.message_id);
    return OH_OK;
}

int oh_env_ref_put(const struct oh_conn_env *env, const char *account, const char *ref,
                   const char *conv, const char *message_id)
{
    oh_store *st = env->hub->store;
    if (!st) return OH_OK; /* the sync service records what it materializes */
    return oh_store_ref_put(st, env->vt->name, account, ref, conv, message_id);
}

int oh_env_contact(const struct oh_conn_env *env, const char *conv, char *out, size_t outlen)
{
    oh_store *st = env->hub->store;
    struct oh_conversation cv;
    if (!st || !conv) return OH_ENOTFOUND;
    int rc = oh_store_conversation_get(st, conv, &cv);
    if (rc) return rc;
    snprintf(out, outlen, "%s", cv.contact_id);
    return OH_OK;
}

int oh_env_history(const struct oh_conn_env *env, const char *conv, int64_t after, int limit,
                   oh_env_row_fn fn, void *opaque)
{
    oh_store *st = env->hub->store;
    return st ? oh_store_history(st, conv, after, limit, fn, opaque) : OH_ENOTFOUND;
}

int oh_env_message_state(const struct oh_conn_env *env, const char *conv, const char *message_id,
                         char out[16])
{
    oh_store *st = env->hub->store;
    return st ? oh_store_message_state(st, conv, message_id, out) : OH_ENOTFOUND;
}

/* "<name>" or "<name>.<space>". */
static int kv_ns(const struct oh_conn_env *env, const char *space, char *ns, size_t len)
{
    int n = space ? snprintf(ns, len, "%s.%s", env->vt->name, space)
                  : snprintf(ns, len, "%s", env->vt->name);
    return n < 0 || (size_t)n >= len ? OH_ETOOBIG : OH_OK;
}

int oh_env_kv_get(const struct oh_conn_env *env, const char *space, const char *key, char *out,
                  size_t outlen)
{
    char ns[128];
    if (!env->hub->store) return OH_ENOTFOUND;
    int rc = kv_ns(env, space, ns, sizeof ns);
    return rc ? rc : oh_store_kv_get(env->hub->store, ns, key, out, outlen);
}

int oh_env_kv_put(const struct oh_conn_env *env, const char *space, const char *key,
                  const char *value)
{
    char ns[128];
    if (!env->hub->store) return OH_EUNAVAIL;
    int rc = kv_ns(env, space, ns, sizeof ns);
    return rc ? rc : oh_store_kv_put(env->hub->store, ns, key, value);
}

#define UPDATE_TRIES 20 /* swaps lost to another process before giving up */

/* One read, change and swap of oh_env_kv_update; CUR has room for MAX. */
static int update_once(oh_store *st, const char *ns, const char *key, char *cur, size_t max,
                       oh_env_kv_change_fn fn, void *ctx)
{
    int got = oh_store_kv_get(st, ns, key, cur, max + 1);
    if (got && got != OH_ENOTFOUND) return got;
    char *next = NULL;
    int rc = fn(ctx, got ? NULL : cur, &next);
    if (rc == OH_OK && next) rc = oh_store_kv_swap(st, ns, key, got ? NULL : cur, next);
    free(next);
    return rc;
}

int oh_env_kv_update(const struct oh_conn_env *env, const char *space, const char *key,
                     size_t max, oh_env_kv_change_fn fn, void *ctx)
{
    char ns[128];
    if (!env->hub->store) return OH_EUNAVAIL;
    int rc = kv_ns(env, space, ns, sizeof ns);
    if (rc) return rc;
    char *cur = malloc(max + 1);
    if (!cur) return OH_ENOMEM;
    for (int i = 1; (rc = update_once(env->hub->store, ns, key, cur, max, fn, ctx)) == OH_ERETRY &&
                    i < UPDATE_TRIES;
         i++) {
        /* lost to another writer: 1-8 ms apart, so two do not keep colliding */
        uint8_t r = 0;
        if (oh_random(&r, 1) == 0) usleep(1000u + (r & 7u) * 1000u);
    }
    free(cur);
    return rc;
}

void oh_env_log(const struct oh_conn_env *env, enum oh_level lvl, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    oh_slog(lvl, env->vt->name, "%s", msg);
}

/* ---- Meta's webhook checks (the HTTP service thread; never block) ---- */

static void rejected(const char *channel, const char *reason)
{
    char labels[160];
    snprintf(labels, sizeof labels, "channel=\"%s\",reason=\"%s\"", channel, reason);
    oh_metrics_inc("omnihub_webhook_rejected_total", labels, 1);
}

/* GET ?hub.mode=subscribe&hub.verify_token=T&hub.challenge=C: answers C
 * when T is ours. */
static int verify_challenge(const char *channel, const char *ours, const struct oh_http_req *req,
                            struct oh_http_reply *reply, char *err, size_t errlen)
{
    char mode[32], token[512], challenge[512];
    if (!ours) ours = "";
    if (oh_http_query_param(req, "hub.mode", mode, sizeof mode) ||
        oh_http_query_param(req, "hub.verify_token", token, sizeof token) ||
        strcmp(mode, "subscribe") != 0 || !*ours ||
        !oh_ct_equal(token, strlen(token), ours, strlen(ours))) {
        rejected(channel, "verify_token");
        oh_errf(err, errlen, "hub.mode or hub.verify_token does not match");
        return OH_EFORBIDDEN;
    }
    if (oh_http_query_param(req, "hub.challenge", challenge, sizeof challenge)) {
        oh_errf(err, errlen, "hub.challenge is missing or too long");
        return OH_EINVAL;
    }
    reply->status = 200;
    snprintf(reply->content_type, sizeof reply->content_type, "text/plain");
    reply->body = strdup(challenge);
    if (!reply->body) return OH_ENOMEM;
    reply->body_len = strlen(challenge);
    return OH_OK;
}

static int meta_check(const char *channel, const char *verify_token, const char *app_secret,
                      const struct oh_http_req *req, struct oh_http_reply *reply, bool *answered,
                      char *err, size_t errlen)
{
    if (strcmp(req->method, "GET") == 0) {
        *answered = true;
        return verify_challenge(channel, verify_token, req, reply, err, errlen);
    }
    if (strcmp(req->method, "POST") != 0) {
        oh_errf(err, errlen, "method %s not allowed", req->method);
        return OH_EINVAL;
    }
    const char *sig = req->header(req, "x-hub-signature-256");
    if (!sig || !*sig) {
        rejected(channel, "signature_missing");
        oh_errf(err, errlen, "X-Hub-Signature-256 is missing");
        return OH_EAUTH;
    }
    if (!app_secret || !*app_secret ||
        oh_sig_check_hex(app_secret, req->body, req->body_len, "sha256=", sig)) {
        rejected(channel, "signature_bad");
        oh_errf(err, errlen, "X-Hub-Signature-256 does not match the body");
        return OH_EAUTH;
    }
    return OH_OK;
}

int oh_webhook_auth(const struct oh_connector *vt, const char *verify_token, const char *app_secret,
                    const struct oh_http_req *req, struct oh_http_reply *reply, bool *answered,
                    char *err, size_t errlen)
{
    *answered = false;
    switch (vt->webhook_auth) {
    case OH_WEBHOOK_META:
        return meta_check(vt->name, verify_token, app_secret, req, reply, answered, err, errlen);
    default: return OH_OK;
    }
}

int oh_conn_webhook_auth(const struct oh_instance *in, const struct oh_http_req *req,
                         struct oh_http_reply *reply, bool *answered, char *err, size_t errlen)
{
    return oh_webhook_auth(in->vt, in->env->verify_token, in->env->app_secret, req, reply, answered,
                           err, errlen);
}

/* ---- the customer-service window (dispatcher threads; may block) ---- */

static int reply_window(const struct oh_instance *in, const json_t *event,
                        struct oh_send_result *res)
{
    const struct oh_connector *vt = in->vt;
    const json_t *data = oh_event_data(event);
    const json_t *tmpl = json_object_get(data, "template");
    if (vt->reply_window_templates && tmpl && !json_is_null(tmpl)) return OH_OK;
    oh_store *st = in->env->hub->store;
    const char *conv = json_string_value(json_object_get(data, "conversation_id"));
    if (!st || !conv) return OH_OK; /* a role without a store cannot tell: the provider decides */
    struct oh_conversation cv;
    int rc = oh_store_conversation_get(st, conv, &cv);
    if (rc && rc != OH_ENOTFOUND) {
        snprintf(res->error_code, sizeof res->error_code, "store");
        snprintf(res->error, sizeof res->error, "store: %s", oh_strerror(rc));
        return OH_ERETRY;
    }
    int64_t last = rc == OH_ENOTFOUND ? 0 : cv.last_inbound_ms;
    if (last > 0 && oh_now_ms() - last <= vt->reply_window_s * 1000) return OH_OK;
    char labels[160];
    snprintf(labels, sizeof labels, "channel=\"%s\",reason=\"outside_window\"", vt->name);
    oh_metrics_inc("omnihub_send_refused_total", labels, 1);
    snprintf(res->error_code, sizeof res->error_code, "outside_window");
    snprintf(res->error, sizeof res->error, "outside the %lld-hour customer service window: %s; %s",
             (long long)(vt->reply_window_s / 3600),
             last ? "the customer's last message is older than that"
                  : "the customer has not written yet",
             vt->reply_window_templates ? "only a template can be sent"
                                        : "no free-form reply can be sent");
    return OH_EFORBIDDEN;
}

/* runs on a dispatcher thread */
int oh_conn_send(const struct oh_instance *in, const json_t *event, struct oh_send_result *res)
{
    if (in->vt->reply_window_s > 0) {
        int rc = reply_window(in, event, res);
        if (rc) return rc;
    }
    return in->vt->send(in->ctx, event, res);
}

int oh_http_query_param(const struct oh_http_req *req, const char *name, char *out, size_t outlen)
{
    return oh_query_param(req->query, name, out, outlen);
}
