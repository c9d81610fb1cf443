/* meta.c - the Messenger / Instagram connector instance: webhook checks
 * (subscription challenge, X-Hub-Signature-256) and the Send API client. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "meta.h"
#include "core/crypto.h"
#include "core/http_client.h"
#include "core/metrics.h"

#define META_RECENT 1024 /* mids of our own recent sends, to drop their echoes */

struct meta_ctx {
    const struct meta_channel *ch;
    const struct oh_conn_env *env;
    struct meta_conf conf; /* from the channel's config map */
    pthread_mutex_t lock;  /* guards recent[] (HTTP thread vs. dispatcher threads) */
    char *recent[META_RECENT];
    size_t recent_next;
};

static void mc_label(const struct meta_ctx *c, const char *reason, char *out, size_t len)
{
    snprintf(out, len, "channel=\"%s\",reason=\"%s\"", c->ch->name, reason);
}

void meta_destroy(void *vctx)
{
    struct meta_ctx *c = vctx;
    if (!c) return;
    oh_config_map_free(c->ch->keys, c->ch->map, &c->conf);
    for (size_t i = 0; i < META_RECENT; i++)
        free(c->recent[i]);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

int meta_init(const struct meta_channel *ch, const struct oh_conn_env *env, const oh_config *cfg,
              void **ctx, char *err, size_t errlen)
{
    static const char *const required[] = {"app_secret", "verify_token", "access_token"};
    char key[128];
    for (size_t i = 0; i < OH_ARRAY_SIZE(required); i++) {
        snprintf(key, sizeof key, "%s.%s", ch->name, required[i]);
        int rc = oh_config_require(cfg, key, "when the connector is enabled", err, errlen);
        if (rc != 0) return rc;
    }
    struct meta_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        oh_errf(err, errlen, "out of memory");
        return OH_ENOMEM;
    }
    pthread_mutex_init(&c->lock, NULL);
    c->ch = ch;
    c->env = env;
    if (oh_config_map(cfg, ch->keys, ch->map, &c->conf) != OH_OK) {
        meta_destroy(c);
        oh_errf(err, errlen, "out of memory");
        return OH_ENOMEM;
    }
    if (c->conf.app_id && !*c->conf.app_id) {
        free(c->conf.app_id);
        c->conf.app_id = NULL;
    }
    char *base = c->conf.api_base_url;
    size_t n = base ? strlen(base) : 0;
    while (n > 0 && base[n - 1] == '/')
        base[--n] = '\0';
    if (!c->conf.app_id)
        OH_INFO(ch->name,
                "%s.app_id not set: echoes of our own sends are recognized by their "
                "message id only while this process remembers them",
                ch->name);
    *ctx = c;
    return OH_OK;
}

/* ---- echoes of our own sends ---- */

static void mc_remember(struct meta_ctx *c, const char *mid)
{
    char *copy = strdup(mid);
    if (!copy) return;
    pthread_mutex_lock(&c->lock);
    free(c->recent[c->recent_next]);
    c->recent[c->recent_next] = copy;
    c->recent_next = (c->recent_next + 1) % META_RECENT;
    pthread_mutex_unlock(&c->lock);
}

/* An echo is ours when it carries our app id, or its mid is one our
 * send() just got back (Instagram echoes may lack app_id). */
static bool mc_skip_echo(void *opaque, const char *app_id, const char *mid)
{
    struct meta_ctx *c = opaque;
    if (c->conf.app_id && app_id && strcmp(c->conf.app_id, app_id) == 0) return true;
    bool found = false;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < META_RECENT && !found; i++)
        found = c->recent[i] && strcmp(c->recent[i], mid) == 0;
    pthread_mutex_unlock(&c->lock);
    return found;
}

/* ---- webhook (HTTP service thread; never blocks) ---- */

int meta_webhook(void *vctx, const struct oh_http_req *req, struct oh_event_list *events,
                 struct oh_http_reply *reply, char *err, size_t errlen)
{
    struct meta_ctx *c = vctx;
    char labels[128];
    int rc;
    struct oh_norm_ctx nc = {.account = NULL, .now_ms = oh_now_ms()};
    rc = meta_normalize(c->ch, &nc, mc_skip_echo, c, req->body, req->body_len, events, err, errlen);
    if (rc == OH_EINVAL) {
        mc_label(c, "bad_payload", labels, sizeof labels);
        oh_metrics_inc("omnihub_webhook_errors_total", labels, 1);
    }
    return rc;
}

/* ---- Send API (dispatcher threads; may block) ---- */

static char *mc_urlencode(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(strlen(s) * 3 + 1), *o = out;
    if (!out) return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

/* Contract attachment kind -> Send API attachment type. */
static const char *mc_att_type(const char *kind)
{
    if (!kind) return "file";
    if (strcmp(kind, "image") == 0 || strcmp(kind, "sticker") == 0) return "image";
    if (strcmp(kind, "video") == 0 || strcmp(kind, "audio") == 0) return kind;
    return "file";
}

/* Fills RES from a Graph error answer {"error":{"message","code",...}}. */
static void mc_graph_error(const struct oh_http_response *resp, struct oh_send_result *res)
{
    json_t *root = resp->body ? json_loadb(resp->body, resp->len, 0, NULL) : NULL;
    const json_t *e = json_object_get(root, "error");
    const json_t *code = json_object_get(e, "code");
    const char *msg = json_string_value(json_object_get(e, "message"));
    if (json_is_integer(code))
        snprintf(res->error_code, sizeof res->error_code, "%lld",
                 (long long)json_integer_value(code));
    else
        snprintf(res->error_code, sizeof res->error_code, "http_%ld", resp->status);
    snprintf(res->error, sizeof res->error, "Graph API answered %ld: %s", resp->status,
             msg ? msg : "no error message");
    json_decref(root);
}

/* POSTs one Send API request. 0 with the new mid in MID (>= 512 bytes). */
static int mc_post(struct meta_ctx *c, json_t *body, char *mid, struct oh_send_result *res)
{
    char *tok = mc_urlencode(c->conf.access_token);
    size_t ulen = strlen(c->conf.api_base_url) + (tok ? strlen(tok) : 0) + 64;
    char *url = malloc(ulen);
    int rc = OH_ENOMEM;
    if (!tok || !url) {
        snprintf(res->error, sizeof res->error, "out of memory");
        goto out;
    }
    /* The documented form: the Page access token as a query parameter. */
    snprintf(url, ulen, "%s/me/messages?access_token=%s", c->conf.api_base_url, tok);
    struct oh_http_post post = {.url = url, .json = body, .timeout_ms = 15000};
    struct oh_http_response resp;
    char err[256] = "";
    int hrc = oh_http_post(&post, &resp, err, sizeof err);
    if (hrc != 0) {
        snprintf(res->error_code, sizeof res->error_code, "transport");
        snprintf(res->error, sizeof res->error, "Graph API unreachable: %s", err);
        rc = OH_ERETRY;
    } else if (resp.status >= 200 && resp.status < 300) {
        json_t *root = json_loadb(resp.body, resp.len, 0, NULL);
        const char *m = json_string_value(json_object_get(root, "message_id"));
        if (m && *m) {
            snprintf(mid, 512, "%s", m);
            rc = OH_OK;
        } else {
            snprintf(res->error_code, sizeof res->error_code, "bad_response");
            snprintf(res->error, sizeof res->error, "Graph API answer lacks message_id");
            rc = OH_EIO;
        }
        json_decref(root);
    } else {
        mc_graph_error(&resp, res);
        if (oh_http_retryable(resp.status)) {
            res->retry_after_ms = resp.retry_after_ms;
            rc = OH_ERETRY;
        } else {
            rc = OH_EINVAL;
        }
    }
    oh_http_response_free(&resp);
out:
    free(tok);
    free(url);
    return rc;
}

/* The 24-hour window is the core's (.reply_window_s): checked before this
 * runs. */
int meta_send(void *vctx, const json_t *event, struct oh_send_result *res)
{
    struct meta_ctx *c = vctx;
    const json_t *data = oh_event_data(event);
    const char *conv = json_string_value(json_object_get(data, "conversation_id"));
    const char *to = json_string_value(json_object_get(json_object_get(data, "contact"), "id"));
    const char *text = json_string_value(json_object_get(data, "text"));
    const char *reply_to = json_string_value(json_object_get(data, "reply_to"));
    const json_t *atts = json_object_get(data, "attachments");
    if (!conv || !to || !*to) {
        snprintf(res->error_code, sizeof res->error_code, "bad_event");
        snprintf(res->error, sizeof res->error, "outbound event lacks conversation or contact");
        return OH_EINVAL;
    }
    if ((!text || !*text) && !json_array_size(atts)) {
        snprintf(res->error_code, sizeof res->error_code, "empty");
        snprintf(res->error, sizeof res->error, "nothing to send: no text, no attachment");
        return OH_EINVAL;
    }
    int rc;
    /* The text first, then one message per attachment (the Send API takes
     * one attachment per message); the first mid identifies the send. */
    size_t parts = (text && *text ? 1 : 0) + json_array_size(atts);
    for (size_t i = 0; i < parts; i++) {
        json_t *msg;
        size_t ai = text && *text ? i - 1 : i;
        if (text && *text && i == 0) {
            msg = json_pack("{s:s}", "text", text);
        } else {
            const json_t *a = json_array_get(atts, ai);
            const char *url = json_string_value(json_object_get(a, "url"));
            if (!url) url = json_string_value(json_object_get(a, "link"));
            if (!url) {
                snprintf(res->error_code, sizeof res->error_code, "bad_attachment");
                snprintf(res->error, sizeof res->error, "attachment %zu has no url", ai);
                return OH_EINVAL;
            }
            const char *kind = json_string_value(json_object_get(a, "kind"));
            msg = json_pack("{s:{s:s, s:{s:s, s:b}}}", "attachment", "type", mc_att_type(kind),
                            "payload", "url", url, "is_reusable", 0);
        }
        json_t *body = json_pack("{s:{s:s}, s:s, s:o}", "recipient", "id", to, "messaging_type",
                                 "RESPONSE", "message", msg);
        if (body && reply_to && *reply_to && i == 0)
            json_object_set_new(body, "reply_to", json_pack("{s:s}", "mid", reply_to));
        if (!body) return OH_ENOMEM;
        char mid[512];
        rc = mc_post(c, body, mid, res);
        json_decref(body);
        if (rc != 0) return rc;
        mc_remember(c, mid);
        if (i == 0) snprintf(res->provider_message_id, sizeof res->provider_message_id, "%s", mid);
    }
    return OH_OK;
}

/* ---- media: GET /v1/media/<channel>/<ref> (worker thread; may block) ---- */

/* base64url (no padding) -> malloc'd NUL-terminated text; NULL if invalid
 * or when it holds a NUL. */
static char *mc_ref_url(const char *in)
{
    size_t n = strlen(in), cap = n * 3 / 4 + 2;
    char *out = malloc(cap);
    /* a lone last character encodes no whole byte: not base64url */
    int len = out && n % 4 != 1 ? oh_base64url_decode(in, n, (uint8_t *)out, cap) : -1;
    if (len < 0 || memchr(out, '\0', (size_t)len)) {
        free(out);
        return NULL;
    }
    out[len] = '\0';
    return out;
}

/* Copies the host of URL ("scheme://host[:port]/...") into OUT. */
static bool mc_host(const char *url, char *out, size_t len)
{
    const char *h = strstr(url, "://");
    if (!h) return false;
    h += 3;
    size_t n = strcspn(h, ":/?#");
    if (n == 0 || n >= len || memchr(h, '@', strcspn(h, "/?#"))) return false;
    memcpy(out, h, n);
    out[n] = '\0';
    return true;
}

/* Only Meta's CDNs (https), and the configured Graph host (a trusted config
 * value; the tests' stand-in), are fetched: the ref comes from the client. */
static bool mc_media_allowed(const struct meta_ctx *c, const char *url)
{
    static const char *const cdns[] = {"fbcdn.net", "fbsbx.com", "cdninstagram.com", "facebook.com",
                                       "instagram.com"};
    char host[256];
    if (!mc_host(url, host, sizeof host)) return false;
    /* same scheme://host:port as api_base_url */
    const char *auth = strstr(c->conf.api_base_url, "://");
    size_t olen = auth ? (size_t)(auth + 3 - c->conf.api_base_url) + strcspn(auth + 3, "/?#") : 0;
    if (olen && strncmp(url, c->conf.api_base_url, olen) == 0 && strchr("/?#", url[olen]))
        return true;
    if (strncmp(url, "https://", 8) != 0) return false;
    size_t hl = strlen(host);
    for (size_t i = 0; i < OH_ARRAY_SIZE(cdns); i++) {
        size_t cl = strlen(cdns[i]);
        if (hl == cl
                ? strcasecmp(host, cdns[i]) == 0
                : hl > cl && host[hl - cl - 1] == '.' && strcasecmp(host + hl - cl, cdns[i]) == 0)
            return true;
    }
    return false;
}

/* runs on a worker thread */
int meta_media(void *vctx, const char *ref, size_t max_bytes, struct oh_media *out, char *err,
               size_t errlen)
{
    struct meta_ctx *c = vctx;
    char *url = mc_ref_url(ref);
    if (!url || !mc_media_allowed(c, url)) {
        oh_errf(err, errlen, "not a %s attachment reference", c->ch->name);
        free(url);
        return OH_ENOTFOUND;
    }
    struct oh_http_request req = {
        .method = "GET", .url = url, .timeout_ms = 30000, .max_response = max_bytes};
    struct oh_http_response resp = {0};
    int rc = oh_http_do(&req, &resp, err, errlen);
    if (rc == OH_ETOOBIG) {
        oh_errf(err, errlen, "attachment larger than %zu bytes", max_bytes);
    } else if (rc != 0) {
        rc = OH_EIO;
    } else if (resp.status == 403 || resp.status == 404 || resp.status == 410) {
        oh_errf(err, errlen, "the platform no longer serves this attachment (%ld)", resp.status);
        rc = OH_ENOTFOUND; /* CDN URLs expire */
    } else if (resp.status < 200 || resp.status >= 300) {
        oh_errf(err, errlen, "the platform's CDN answered %ld", resp.status);
        rc = OH_EIO;
    } else {
        out->data = (uint8_t *)resp.body;
        out->len = resp.len;
        resp.body = NULL;
        snprintf(out->content_type, sizeof out->content_type, "%s", resp.content_type);
        const char *end = url + strcspn(url, "?#"), *slash = end;
        while (slash > url && slash[-1] != '/')
            slash--;
        snprintf(out->filename, sizeof out->filename, "%.*s", (int)(end - slash), slash);
        out->conversation_id[0] = '\0'; /* the ref does not say: agents only */
    }
    oh_http_response_free(&resp);
    free(url);
    return rc;
}
