/* gateway.c - the libwebsockets service: one listener for the REST API,
 * connector webhooks, health, metrics and the WebSocket, on a libev (epoll)
 * loop. Blocking work goes to a worker pool; completions come back through
 * lws_cancel_service(). */
#include <ev.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include "oh_build_config.h"
#include "core/conn_env.h"
#include "core/daemon.h"
#include "core/json_dump.h"
#include "gateway/gateway_int.h"
#include "gateway/ws_int.h"
#include "core/metrics.h"
#include "core/ratelimit.h"

struct pss {
    struct req *req;
    struct wsconn *ws;
};

/* Completed async requests: ask for a writable callback. */
static void drain_done(struct oh_gateway *gw)
{
    pthread_mutex_lock(&gw->mu);
    struct req *r = gw->done;
    gw->done = NULL;
    pthread_mutex_unlock(&gw->mu);
    while (r) {
        struct req *next = r->next_done;
        if (r->after) r->after(r);
        if (r->wsi) lws_callback_on_writable(r->wsi);
        gw_req_release(r);
        r = next;
    }
}

/* ---- connectors' webhooks ---- */

/* Joins the strings up to a NULL into BUF (SIZE > 0 bytes, cut to fit):
 * the metrics' labels of every request, without snprintf's format parser. */
static const char *join(char *buf, size_t size, ...)
{
    va_list ap;
    size_t n = 0;
    va_start(ap, size);
    for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *))
        n += oh_strcpy(buf + n, size - n, s);
    va_end(ap);
    buf[n] = '\0';
    return buf;
}

static void on_ingested(void *opaque, int err)
{
    struct req *r = opaque;
    char lab[128];
    join(lab, sizeof lab, "channel=\"", r->channel, "\",result=\"", err ? "failed" : "accepted",
         "\"", (const char *)NULL);
    oh_metrics_inc("omnihub_ingest_total", lab, 1);
    oh_metrics_observe("omnihub_ingest_seconds", "", (double)(oh_mono_us() - r->started_us) / 1e6);
    if (err == OH_ETOOBIG) { /* the log's own bound, lower than ours */
        OH_WARN("gateway", "ingest on %s refused: an event is larger than the log takes",
                r->channel);
        gw_reply_error(r, 413, "too_large", "an event is larger than the log takes");
    } else if (err) {
        OH_ERROR("gateway", "ingest on %s failed: %s", r->channel, oh_strerror(err));
        r->retry_after = 1;
        gw_reply_error(r, 503, "unavailable", "the event could not be made durable; retry");
    }
    r->ready = true;
    gw_complete(r);
}

static const char *req_header(const struct oh_http_req *hr, const char *lname)
{
    return gw_header(hr->priv, lname);
}

static int status_of(int rc)
{
    switch (rc) {
    case OH_EAUTH: return 401;
    case OH_EFORBIDDEN: return 403;
    case OH_ETOOBIG: return 413;
    case OH_ENOTFOUND: return 404;
    case OH_EUNAVAIL: return 503;
    default: return 400;
    }
}

static void webhook(struct req *r, struct oh_instance *in)
{
    struct oh_http_req hr = {r->method,   r->path,    r->query, (const uint8_t *)r->body,
                             r->body_len, req_header, r};
    if (!hr.body) hr.body = (const uint8_t *)"";
    struct oh_event_list events = {0};
    struct oh_http_reply reply = {0};
    char err[512] = "";
    oh_strcpy(r->channel, sizeof r->channel, in->vt->name);
    bool answered;
    int rc = oh_conn_webhook_auth(in, &hr, &reply, &answered, err, sizeof err);
    if (rc == OH_OK && !answered)
        rc = in->vt->webhook(in->ctx, &hr, &events, &reply, err, sizeof err);
    char lab[128];
    if (rc) {
        oh_event_list_clear(&events);
        free(reply.body);
        snprintf(lab, sizeof lab, "channel=\"%s\",result=\"rejected\"", r->channel);
        oh_metrics_inc("omnihub_ingest_total", lab, 1);
        if (rc == OH_EAUTH) {
            snprintf(lab, sizeof lab, "channel=\"%s\"", r->channel);
            oh_metrics_inc("omnihub_signature_failures_total", lab, 1);
        }
        int st = status_of(rc);
        gw_reply_error(r, st, gw_error_code(st), "%s", err[0] ? err : oh_strerror(rc));
        return;
    }
    int status = reply.status ? reply.status : 200;
    const char *ctype = reply.content_type[0] ? reply.content_type : "application/json";
    if (reply.body)
        gw_reply(r, status, ctype, reply.body, reply.body_len);
    else
        gw_reply(r, status, ctype, "{}", 2);
    free(reply.body);
    if (events.n == 0) return;
    r->ready = false; /* answer only once durable */
    r->refs++;
    r->started_us = oh_mono_us();
    rc = oh_hub_ingest_client(r->gw->hub, &events, on_ingested, r);
    if (rc) {
        r->refs--;
        snprintf(lab, sizeof lab, "channel=\"%s\",result=\"rejected\"", r->channel);
        oh_metrics_inc("omnihub_ingest_total", lab, 1);
        if (rc == OH_ETOOBIG)
            gw_reply_error(r, 413, "too_large", "an event would be over %zu bytes",
                           oh_hub_record_max(r->gw->hub));
        else
            gw_reply_error(r, rc == OH_EINVAL ? 400 : 503,
                           rc == OH_EINVAL ? "bad_request" : "unavailable", "%s", oh_strerror(rc));
    }
}

/* ---- health ---- */

static void readyz_work(void *opaque)
{
    struct req *r = opaque;
    oh_hub *hub = r->gw->hub;
    bool ok = oh_log_ping(hub->log) == OH_OK && oh_store_ping(hub->store) == OH_OK;
    json_t *details = json_object();
    for (size_t i = 0; i < hub->nconn; i++)
        if (hub->conn[i].vt->ready) hub->conn[i].vt->ready(hub->conn[i].ctx, details);
    /* a local log's bootstrap is its file: only its name on a public
     * listener (the directory layout is nobody else's business) */
    const char *boot = oh_log_bootstrap(hub->log) ? oh_log_bootstrap(hub->log) : "";
    const char *slash = strrchr(boot, '/');
    if (!r->admin && slash && strcmp(oh_log_backend(hub->log), "local") == 0) boot = slash + 1;
    json_t *o = json_pack("{s:s, s:{s:s, s:s}, s:{s:s}, s:s, s:s, s:o}", "status",
                          ok ? "ready" : "not_ready", "log", "backend", oh_log_backend(hub->log),
                          "bootstrap", boot, "store", "backend", oh_store_backend(hub->store),
                          "epoch", oh_store_epoch(hub->store), "role",
                          oh_config_str(hub->cfg, "role"), "connectors", details);
    gw_reply_json(r, ok ? 200 : 503, o);
    gw_complete(r);
}

/* Authorizes before anything leaves the daemon: the owner of a ref comes
 * from what its connector knows locally, and a caller who may not read it
 * (or asks for a ref nobody knows) gets the same 403 with no platform call,
 * so neither the bandwidth nor the answer says what exists upstream. */
static void media_work(void *opaque)
{
    struct req *r = opaque;
    const char *rest = r->path + strlen("/v1/media/");
    const char *slash = strchr(rest, '/');
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)(slash - rest), rest);
    struct oh_instance *in = oh_hub_connector(r->gw->hub, name);
    const char *ref = slash + 1;
    char owner[OH_ID_MAX] = "";
    if (!in->vt->media_owner || !in->vt->media_owner(in->ctx, ref, owner)) owner[0] = '\0';
    if (!oh_auth_may_access(&r->who, owner)) { /* "": agents only */
        gw_reply_error(r, 403, "forbidden", "not your media");
        gw_complete(r);
        return;
    }
    struct oh_media m = {0};
    char err[256] = "";
    int rc = in->vt->media(in->ctx, ref, 16u << 20, &m, err, sizeof err);
    if (rc) {
        int st = rc == OH_ETOOBIG ? 413 : rc == OH_ENOTFOUND ? 404 : rc == OH_EINVAL ? 400 : 502;
        gw_reply_error(r, st, st == 502 ? "upstream" : gw_error_code(st), "%s",
                       err[0] ? err : oh_strerror(rc));
    } else if (!oh_auth_may_access(&r->who, m.conversation_id[0] ? m.conversation_id : "")) {
        gw_reply_error(r, 403, "forbidden", "not your media");
    } else {
        gw_reply(r, 200, m.content_type[0] ? m.content_type : "application/octet-stream",
                 (const char *)m.data, m.len);
    }
    free(m.data);
    gw_complete(r);
}

/* ---- rate limits ---- */

/* Seconds to wait when the client address or bearer token of WSI is over
 * http.rate_limit / http.rate_limit_token, else 0. Health probes are
 * exempt from the per-address limit. */
static int rate_wait(struct oh_gateway *gw, struct lws *wsi, const char *token, bool probe)
{
    char ip[64] = "", lab[64];
    int wait = 0;
    if (gw->rl_ip && !probe && wsi) {
        lws_get_peer_simple(wsi, ip, sizeof ip);
        if ((wait = oh_ratelimit_take(gw->rl_ip, ip, strlen(ip), oh_mono_ms())))
            snprintf(lab, sizeof lab, "scope=\"address\"");
    }
    if (!wait && gw->rl_token && token && *token &&
        (wait = oh_ratelimit_take(gw->rl_token, token, strlen(token), oh_mono_ms())))
        snprintf(lab, sizeof lab, "scope=\"token\"");
    if (wait) oh_metrics_inc("omnihub_http_rate_limited_total", lab, 1);
    return wait;
}

static const char *bearer_of(const struct req *r, char *buf, size_t len)
{
    const char *h = gw_header(r, "authorization");
    if (h && strncasecmp(h, "Bearer ", 7) == 0) return h + 7;
    return gw_query(r, "access_token", buf, len) ? buf : NULL;
}

/* A WebSocket upgrade over a limit: a JSON 429 and the connection closed. */
static int ws_rate_limited(struct oh_gateway *gw, struct lws *wsi)
{
    if (!gw->rl_ip && !gw->rl_token) return 0;
    char tok[4200];
    int wait = rate_wait(gw, wsi, gw_ws_token(wsi, tok, sizeof tok) ? NULL : tok, false);
    if (!wait) return 0;
    return gw_refuse_upgrade(wsi, 429, "rate_limited", "too many requests", wait);
}

/* ---- routing ---- */

static void attach_if_asked(struct oh_gateway *gw);

/* Before oh_gateway_ready(): the log and the store are still opening.
 * /readyz says so in its ready answer's shape (what the configuration
 * knows); every other route is unavailable for now. */
static void starting(struct req *r)
{
    const oh_config *cfg = r->gw->hub->cfg;
    r->retry_after = 1;
    if (strcmp(r->path, "/readyz") == 0) {
        gw_reply_json(r, 503,
                      json_pack("{s:s, s:{s:s}, s:{s:s}, s:s}", "status", "starting", "log",
                                "backend", oh_config_str(cfg, "log.backend"), "store", "backend",
                                oh_config_str(cfg, "store.backend"), "role",
                                oh_config_str(cfg, "role")));
        return;
    }
    gw_reply_error(r, 503, "unavailable", "starting: the log and the store are not open yet");
}

static void route(struct req *r)
{
    struct oh_gateway *gw = r->gw;
    oh_hub *hub = gw->hub;
    char tokbuf[4200];
    int wait = rate_wait(gw, r->wsi, bearer_of(r, tokbuf, sizeof tokbuf),
                         !strcmp(r->path, "/healthz") || !strcmp(r->path, "/readyz"));
    if (wait) {
        r->retry_after = wait;
        gw_reply_error(r, 429, "rate_limited", "too many requests; retry in %d s", wait);
        return;
    }
    if (r->too_big) {
        gw_reply_error(r, 413, "too_large", "body over http.max_body (%zu bytes)", gw->max_body);
        return;
    }
    if (strcmp(r->path, "/healthz") == 0) {
        snprintf(r->route, sizeof r->route, "/healthz");
        gw_reply(r, 200, "application/json", "{\"status\":\"ok\"}", 15);
        return;
    }
    /* with an admin listener, operators' routes live there alone, and the
     * admin listener serves nothing else */
    bool ops = strcmp(r->path, "/readyz") == 0 || strcmp(r->path, "/metrics") == 0;
    if (gw->admin_vh && ops != r->admin) {
        gw_reply_error(r, 404, "not_found", "no route for %s %s on this listener", r->method,
                       r->path);
        return;
    }
    if (ops) snprintf(r->route, sizeof r->route, "%s", r->path);
    if (!atomic_load_explicit(&gw->ready, memory_order_acquire) &&
        strcmp(r->path, "/metrics") != 0) {
        starting(r);
        return;
    }
    if (strcmp(r->path, "/readyz") == 0) {
        gw_async(r, readyz_work);
        return;
    }
    if (strcmp(r->path, "/metrics") == 0) {
        size_t len;
        char *text = oh_metrics_render(&len);
        gw_reply(r, 200, "text/plain; version=0.0.4", text ? text : "", text ? len : 0);
        free(text);
        return;
    }
    for (size_t i = 0; i < hub->nconn; i++) {
        struct oh_instance *in = &hub->conn[i];
        char def[96];
        const char *path = in->vt->webhook_path;
        if (!path) {
            snprintf(def, sizeof def, "/webhooks/%s", in->vt->name);
            path = def;
        }
        if (in->vt->webhook && strcmp(r->path, path) == 0) {
            oh_strcpy(r->route, sizeof r->route, path);
            webhook(r, in);
            return;
        }
    }
    if (strncmp(r->path, "/v1/media/", 10) == 0) {
        const char *rest = r->path + 10, *slash = strchr(rest, '/');
        char name[64];
        snprintf(name, sizeof name, "%.*s", slash ? (int)(slash - rest) : 0, rest);
        struct oh_instance *in = slash ? oh_hub_connector(hub, name) : NULL;
        snprintf(r->route, sizeof r->route, "/v1/media/{connector}/{ref}");
        if (!in || !in->vt->media || !slash[1]) {
            gw_reply_error(r, 404, "not_found", "no such media");
            return;
        }
        if (gw_authenticate(r)) gw_async(r, media_work);
        return;
    }
    if (gw_kb_route(r) || gw_api_route(r) || gw_agents_route(r) || gw_contacts_route(r)) return;
    if (gw_kpi_route(r)) return;
    gw_reply_error(r, 404, "not_found", "no route for %s %s", r->method, r->path);
}

/* ---- libwebsockets plumbing ---- */

static const struct {
    const char *name;
    enum lws_token_indexes tok;
} std_headers[] = {
    {"authorization", WSI_TOKEN_HTTP_AUTHORIZATION},
    {"if-match", WSI_TOKEN_HTTP_IF_MATCH},
    {"content-type", WSI_TOKEN_HTTP_CONTENT_TYPE},
    {"user-agent", WSI_TOKEN_HTTP_USER_AGENT},
    {"host", WSI_TOKEN_HOST},
};

static void copy_header(struct req *r, const char *name, char *val)
{
    if (r->nhdr >= GW_MAX_HDRS) {
        free(val);
        return;
    }
    r->hdr_name[r->nhdr] = name;
    r->hdr_val[r->nhdr++] = val;
}

static void capture_headers(struct req *r, struct lws *wsi)
{
    for (size_t i = 0; i < OH_ARRAY_SIZE(std_headers); i++) {
        int n = lws_hdr_total_length(wsi, std_headers[i].tok);
        if (n <= 0) continue;
        char *v = malloc((size_t)n + 1);
        if (v && lws_hdr_copy(wsi, v, n + 1, std_headers[i].tok) >= 0)
            copy_header(r, std_headers[i].name, v);
        else
            free(v);
    }
    for (int i = 0; i < r->gw->nheader_names; i++) {
        const char *name = r->gw->header_names[i];
        char key[96];
        snprintf(key, sizeof key, "%s:", name);
        int n = lws_hdr_custom_length(wsi, key, (int)strlen(key));
        if (n < 0) continue;
        char *v = malloc((size_t)n + 1);
        if (v && lws_hdr_custom_copy(wsi, v, n + 1, key, (int)strlen(key)) >= 0)
            copy_header(r, name, v);
        else
            free(v);
    }
}

static void capture_query(struct req *r, struct lws *wsi)
{
    size_t o = 0;
    char frag[GW_HEAD_MAX];
    for (int i = 0; i < 64; i++) {
        int n = lws_hdr_copy_fragment(wsi, frag, sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n <= 0) break;
        if (o + (size_t)n + 2 >= sizeof r->query) break;
        if (o) r->query[o++] = '&';
        /* lws has already decoded the fragment; re-encode the separators */
        for (int k = 0; k < n && o + 4 < sizeof r->query; k++) {
            char c = frag[k];
            if (c == '&' || c == '%' || c == '+' || (c == '=' && memchr(frag, '=', (size_t)k))) {
                o +=
                    (size_t)snprintf(r->query + o, sizeof r->query - o, "%%%02X", (unsigned char)c);
            } else {
                r->query[o++] = c;
            }
        }
    }
    r->query[o] = '\0';
}

/* Request smuggling: a body length another HTTP parser (a proxy in front)
 * could read differently - any Transfer-Encoding (lws reads request bodies
 * by Content-Length only), a repeated or non-numeric Content-Length. */
static bool ambiguous_framing(struct lws *wsi)
{
    char v[32];
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) return true;
    if (n <= 0) return false;
    if (n >= (int)sizeof v || lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, 0) != n ||
        lws_hdr_copy(wsi, v, sizeof v, WSI_TOKEN_HTTP_CONTENT_LENGTH) != n)
        return true;
    return strspn(v, "0123456789") != (size_t)n;
}

/* Whether lws will read a body after the header block: a positive (or
 * unreadable) Content-Length, or none on a method that has a body (lws then
 * reads until the connection ends). */
static bool expects_body(struct lws *wsi)
{
    char cl[32];
    int n = lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH);
    if (n != 0) return n < 0 || atoll(cl) != 0;
    return lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0 ||
           lws_hdr_total_length(wsi, WSI_TOKEN_PUT_URI) > 0 ||
           lws_hdr_total_length(wsi, WSI_TOKEN_PATCH_URI) > 0;
}

/* True when R's answer is complete and no other thread works on R: while
 * async work holds a reference (refs > 1; refs only changes on this
 * thread), READY and the answer belong to that work, and its completion
 * (drain_done) asks for the writable callback. */
static bool answered_here(const struct req *r)
{
    return r->refs == 1 && r->ready;
}

/* A request zeroed but for its query buffer (8 KiB of its 11 KiB), which
 * capture_query() fills and terminates before anything reads it: clearing
 * the whole struct was 11k instructions per request under callgrind. */
static struct req *req_new(void)
{
    struct req *r = malloc(sizeof *r);
    if (!r) return NULL;
    size_t q = offsetof(struct req, query), after = q + sizeof r->query;
    memset(r, 0, q);
    r->query[0] = '\0';
    memset((char *)r + after, 0, sizeof *r - after);
    return r;
}

/* VERDICT: http_guard.c's status for this head (0: none), reason in WHY. */
static int http_begin(struct lws *wsi, struct pss *pss, const char *uri, size_t urilen, int verdict,
                      const char *vwhy)
{
    struct oh_gateway *gw = lws_context_user(lws_get_context(wsi));
    struct req *r = req_new();
    if (!r) return -1;
    r->gw = gw;
    r->wsi = wsi;
    r->refs = 1;
    r->started_us = oh_mono_us();
    oh_strcpy(r->path, sizeof r->path, uri);
    oh_strcpy(r->route, sizeof r->route, "other");
    r->admin = gw->admin_vh && lws_get_vhost(wsi) == gw->admin_vh;
    static const struct {
        enum lws_token_indexes tok;
        const char *name;
    } methods[] = {{WSI_TOKEN_GET_URI, "GET"},         {WSI_TOKEN_POST_URI, "POST"},
                   {WSI_TOKEN_PUT_URI, "PUT"},         {WSI_TOKEN_DELETE_URI, "DELETE"},
                   {WSI_TOKEN_OPTIONS_URI, "OPTIONS"}, {WSI_TOKEN_PATCH_URI, "PATCH"},
                   {WSI_TOKEN_HEAD_URI, "HEAD"}};
    for (size_t i = 0; i < OH_ARRAY_SIZE(methods); i++)
        if (lws_hdr_total_length(wsi, methods[i].tok) > 0) {
            oh_strcpy(r->method, sizeof r->method, methods[i].name);
            break;
        }
    capture_query(r, wsi);
    capture_headers(r, wsi);
    pss->req = r;
    lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT,
                    (int)oh_config_int(gw->hub->cfg, "http.timeout"));
    char cl[32];
    long long clen = -1;
    if (lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) clen = atoll(cl);
    /* any body is read before the answer (also on a GET): the answer marks
     * where the connection's next request starts (gw_pipeline_mark) */
    bool has_body = expects_body(wsi);
    char why[160];
    int st;
    if (verdict) { /* a head over the limits that lws still read */
        r->close_after = true;
        gw_reply_error(r, verdict, gw_error_code(verdict), "%s", vwhy);
    } else if (memchr(uri, '\0', urilen)) { /* "%00": the path would be cut short */
        r->close_after = true;
        gw_reply_error(r, 400, "bad_request", "NUL in the request path");
    } else if (ambiguous_framing(wsi)) {
        r->close_after = true;
        gw_reply_error(r, 400, "bad_request",
                       "ambiguous body length: Transfer-Encoding or repeated Content-Length");
    } else if ((st = gw_hygiene_check(gw, wsi, why, sizeof why))) {
        /* closed after: what follows may be framed differently than it
         * looks (an ignored "Transfer-Encoding :", a body never announced) */
        r->close_after = true;
        gw_reply_error(r, st, gw_error_code(st), "%s", why);
    } else if (clen > (long long)gw->max_body * 64) {
        /* not worth reading: answer now and drop the connection */
        r->too_big = true;
        r->close_after = true;
        route(r);
    } else if (clen > (long long)gw->max_body) {
        /* read and discard the body (http_body), then answer 413 at its
         * end: closing while the client still sends would reset the
         * connection before it could read the answer */
        r->too_big = true;
    } else if (!has_body) {
        route(r);
    }
    if (answered_here(r)) lws_callback_on_writable(wsi);
    return 0;
}

static int http_body(struct pss *pss, const void *in, size_t len)
{
    struct req *r = pss->req;
    if (!r) return 0;
    /* lws restarts its timeout at every chunk: bound the whole body */
    if (oh_mono_us() - r->started_us > oh_config_int(r->gw->hub->cfg, "http.timeout") * 1000000)
        return -1;
    if (r->too_big || len == 0) return 0; /* lws may hand over empty chunks */
    if (r->body_len + len > r->gw->max_body) {
        r->too_big = true; /* the rest is discarded; 413 once it has arrived */
        free(r->body);
        r->body = NULL;
        return 0;
    }
    char *nb = realloc(r->body, r->body_len + len + 1);
    if (!nb) return -1;
    memcpy(nb + r->body_len, in, len);
    r->body_len += len;
    nb[r->body_len] = '\0';
    r->body = nb;
    return 0;
}

static int http_write(struct lws *wsi, struct pss *pss)
{
    struct req *r = pss->req;
    if (!r || !answered_here(r)) return 0;
    uint8_t hdr[LWS_PRE + 1024], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr - 1;
    if (lws_add_http_common_headers(wsi, (unsigned int)r->status, r->ctype, r->resp_len, &p, end))
        return 1;
    if (r->retry_after) {
        char ra[16];
        int n = snprintf(ra, sizeof ra, "%d", r->retry_after);
        if (lws_add_http_header_by_name(
                wsi, (const unsigned char *)"retry-after:", (const unsigned char *)ra, n, &p, end))
            return 1;
    }
    bool head = strcmp(r->method, "HEAD") == 0;
    size_t body = head ? 0 : r->resp_len;
    if (lws_finalize_http_header(wsi, &p, end)) return 1;
    size_t hlen = (size_t)(p - start);
    if (body && body <= (size_t)(end - p)) {
        /* small answers (nearly all): headers and body in one send */
        memcpy(p, r->resp + LWS_PRE, body);
        if (lws_write(wsi, start, hlen + body, LWS_WRITE_HTTP_FINAL) < 0) return 1;
    } else if (lws_write(wsi, start, hlen, LWS_WRITE_HTTP_HEADERS) < 0 ||
               (body && lws_write(wsi, (unsigned char *)r->resp + LWS_PRE, body,
                                  LWS_WRITE_HTTP_FINAL) < 0)) {
        return 1;
    }
    char lab[192], st[12];
    int v = r->status;
    if (v >= 100 && v <= 999) { /* every status we answer; snprintf otherwise */
        st[0] = (char)('0' + v / 100);
        st[1] = (char)('0' + v / 10 % 10);
        st[2] = (char)('0' + v % 10);
        st[3] = '\0';
    } else {
        snprintf(st, sizeof st, "%d", v);
    }
    join(lab, sizeof lab, "method=\"", r->method[0] ? r->method : "OTHER", "\",route=\"", r->route,
         "\",status=\"", st, "\"", (const char *)NULL);
    oh_metrics_inc("omnihub_http_requests_total", lab, 1);
    pss->req = NULL;
    r->wsi = NULL;
    bool close_after = r->close_after;
    gw_req_release(r);
    if (close_after) return -1;
    gw_pipeline_mark(wsi);
    if (lws_http_transaction_completed(wsi)) return -1;
    gw_guard_resume(wsi, true); /* lws reads the next head */
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct pss *pss = user;
    struct oh_gateway *gw = lws_context_user(lws_get_context(wsi));
    char why[96];
    int verdict;
    switch (reason) {
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED: /* before lws reads from it */
        gw_guard_open(gw, wsi);
        break;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL: gw_guard_dropped(wsi, pss && pss->req, in); break;
    case LWS_CALLBACK_WSI_DESTROY: gw_guard_free(wsi); break;
    case LWS_CALLBACK_HTTP:
        /* counted for every head lws announces */
        if ((verdict = gw_guard_verdict(wsi, why, sizeof why)) < 0) return -1;
        if (pss->req) /* pipelined before we answered: refuse */
            return -1;
        /* a request with a body pipelined behind an answered one: lws
         * would spin on it (http_pipeline.c). Closing here, before lws
         * reads anything as its body, is what RFC 9112 section 9.3.2 lets
         * a server do: the client retries it on a new connection. */
        if (expects_body(wsi) && gw_pipeline_stashed(wsi)) {
            oh_metrics_inc("omnihub_http_pipeline_refused_total", "", 1);
            return -1;
        }
        return http_begin(wsi, pss, in, len, verdict, why);
    case LWS_CALLBACK_HTTP_FILE_COMPLETION: /* a static file (http.static_dir) */
        gw_pipeline_mark(wsi);
        break;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: gw_hygiene_ignore_h2c(in); return 0;
    case LWS_CALLBACK_HTTP_BODY: gw_guard_resume(wsi, false); return http_body(pss, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (pss->req && pss->req->refs == 1 && !pss->req->ready) {
            route(pss->req);
            if (answered_here(pss->req)) lws_callback_on_writable(wsi);
        }
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE: return http_write(wsi, pss);
    case LWS_CALLBACK_CLOSED_HTTP:
        gw_guard_stop(wsi); /* before lws closes the socket */
        if (pss && pss->req) {
            pss->req->wsi = NULL;
            atomic_store(&pss->req->left, true);
            gw_req_release(pss->req);
            pss->req = NULL;
        }
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (gw) {
            pthread_mutex_lock(&gw->mu);
            gw->wake_pending = false; /* later queueing wakes us again */
            pthread_mutex_unlock(&gw->mu);
            attach_if_asked(gw);
            drain_done(gw);
            gw_ws_deliver_live(gw);
            gw_signals_drain(gw);
            if (gw->stop) ev_break(gw->loop, EVBREAK_ALL); /* oh_gateway_stop() */
        }
        return 0;
    default: break;
    }
    if (reason == LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION && gw->admin_vh &&
        lws_get_vhost(wsi) == gw->admin_vh)
        return gw_refuse_upgrade(wsi, 404, "not_found", "no WebSocket on the admin listener", 0);
    if (reason == LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION &&
        !atomic_load_explicit(&gw->ready, memory_order_acquire))
        return gw_refuse_upgrade(wsi, 503, "unavailable",
                                 "starting: the log and the store are not open yet", 1);
    if (reason == LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION && ws_rate_limited(gw, wsi)) return -1;
    if (reason == LWS_CALLBACK_ESTABLISHED) gw_guard_websocket(wsi); /* frames from now on */
    if ((reason == LWS_CALLBACK_RECEIVE || reason == LWS_CALLBACK_SERVER_WRITEABLE ||
         reason == LWS_CALLBACK_RECEIVE_PONG) &&
        gw_guard_unmasked(wsi)) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR, (unsigned char *)"unmasked frame", 14);
        return -1;
    }
    if (reason == LWS_CALLBACK_RECEIVE) gw_guard_resume(wsi, false);
    if (reason == LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION || reason == LWS_CALLBACK_ESTABLISHED ||
        reason == LWS_CALLBACK_RECEIVE || reason == LWS_CALLBACK_SERVER_WRITEABLE ||
        reason == LWS_CALLBACK_CLOSED || reason == LWS_CALLBACK_RECEIVE_PONG)
        return gw_ws_callback(wsi, reason, &pss->ws, in, len);
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* lws gives every WebSocket connection a receive buffer of rx_buffer_size
 * when it upgrades: at 64 KiB each one dirtied a page of its own (4.7 KiB
 * of the 9.5 KiB RSS per idle connection in `omnihub-bench connections`).
 * Client messages are small; a longer one (up to ws.max_frame) arrives in
 * pieces that ws.c puts together. Writes keep 64 KiB (tx_packet_size). */
static const struct lws_protocols protocols[] = {
    {"omnihub", callback, sizeof(struct pss), 1024, 0, NULL, 65536},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void add_header_name(struct oh_gateway *gw, const char *name)
{
    for (int i = 0; i < gw->nheader_names; i++)
        if (strcmp(gw->header_names[i], name) == 0) return;
    for (size_t i = 0; i < OH_ARRAY_SIZE(std_headers); i++)
        if (strcmp(std_headers[i].name, name) == 0) return;
    if (gw->nheader_names < (int)OH_ARRAY_SIZE(gw->header_names))
        gw->header_names[gw->nheader_names++] = strdup(name);
}

/* libwebsockets' own log lines, as JSON log lines like ours (it would
 * print raw text on stderr). lws ends each line with a newline and may
 * prefix a timestamp of its own; both go. Hostile clients make lws log
 * (a header flood: "Ran out of header data space" per connection), so at
 * most LWS_LOG_BURST lines per 10 s are written and the rest counted.
 * Runs on the service thread. */
#define LWS_LOG_BURST 20
static void lws_emit(int level, const char *line)
{
    static int64_t window_ms;
    static int written, dropped;
    int64_t now = oh_mono_ms();
    if (now - window_ms >= 10000) {
        if (dropped)
            OH_WARN("lws", "%d more libwebsockets lines in the last 10 s were not logged", dropped);
        window_ms = now;
        written = dropped = 0;
    }
    if (written++ >= LWS_LOG_BURST) {
        dropped++;
        return;
    }
    const char *p = line;
    if (*p == '[') { /* "[2026/12/03 17:30:01:1234] E: " */
        const char *close = strchr(p, ']');
        if (close) p = close + 1;
    }
    while (*p == ' ')
        p++;
    if (p[0] && p[1] == ':' && p[2] == ' ') p += 3; /* the level letter */
    int n = (int)strcspn(p, "\n");
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\r'))
        n--;
    oh_slog(level & LLL_ERR ? OH_LVL_ERROR : OH_LVL_WARN, "lws", "%.*s", n, p);
}

static void tick(lws_sorted_usec_list_t *sul);
static lws_sorted_usec_list_t tick_sul;
static struct oh_gateway *tick_gw;

static void tick(lws_sorted_usec_list_t *sul)
{
    /* what it ticks is set up by attach(), before oh_gateway_ready() */
    if (atomic_load_explicit(&tick_gw->ready, memory_order_acquire)) {
        gw_ws_tick(tick_gw);
        gw_desk_tick(tick_gw);
        gw_signals_tick(tick_gw);
    }
    lws_sul_schedule(tick_gw->ctx, 0, &tick_sul, tick, LWS_US_PER_SEC);
}

/* The agent workspace's built files (workspace/dist, installed under
 * share/omnihub/workspace) at /workspace/, chained after /app/. lws's URI
 * parser folds "..", "%2e%2e" and "//" before a mount sees the path, so no
 * request reaches above the directory (test_workspace.py checks it). No
 * directory there: no mount, /workspace/ answers 404 as any unknown path. */
static void mount_workspace(struct oh_gateway *gw, const char *dir,
                            struct lws_context_creation_info *info)
{
    struct stat st;
    if (!dir || !*dir) return;
    /* the default, not installed: a daemon run from its build tree serves
     * that tree's build (tools/dev build makes it) */
    if (strcmp(dir, OH_DEFAULT_WORKSPACE) == 0 && stat(dir, &st) != 0 &&
        stat(OH_TREE_WORKSPACE "/index.html", &st) == 0) {
        OH_INFO("gateway", "%s is not installed: the agent workspace is this build tree's %s", dir,
                OH_TREE_WORKSPACE);
        dir = OH_TREE_WORKSPACE;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        OH_INFO("gateway", "no agent workspace at %s (http.workspace_dir): /workspace/ is off",
                dir);
        return;
    }
    gw->wmount.mountpoint = "/workspace";
    gw->wmount.mountpoint_len = 10;
    gw->wmount.origin = dir;
    gw->wmount.def = "index.html";
    gw->wmount.origin_protocol = LWSMPRO_FILE;
    if (info->mounts)
        gw->mount.mount_next = &gw->wmount;
    else
        info->mounts = &gw->wmount;
}

struct oh_gateway *oh_gateway_new(oh_hub *hub, char *err, size_t errlen)
{
    struct oh_gateway *gw = calloc(1, sizeof *gw);
    if (!gw) {
        oh_errf(err, errlen, "out of memory");
        return NULL;
    }
    gw->hub = hub;
    if (!(gw->auth = oh_auth_from_config(hub->cfg, err, errlen))) {
        free(gw);
        return NULL;
    }
    gw->max_body = (size_t)oh_config_int(hub->cfg, "http.max_body");
    gw->max_page = (size_t)oh_config_int(hub->cfg, "http.max_page");
    gw->ws_max_frame = (size_t)oh_config_int(hub->cfg, "ws.max_frame");
    gw->ws_max_queue = (size_t)oh_config_int(hub->cfg, "ws.max_queue");
    gw->ws_rate = (int)oh_config_int(hub->cfg, "ws.rate");
    gw->ws_ping = (int)oh_config_int(hub->cfg, "ws.ping_interval");
    gw->ws_idle = (int)oh_config_int(hub->cfg, "ws.idle_timeout");
    gw->started_ms = oh_now_ms();
    gw->rl_ip = oh_ratelimit_new((double)oh_config_int(hub->cfg, "http.rate_limit"), 16384);
    gw->rl_token =
        oh_ratelimit_new((double)oh_config_int(hub->cfg, "http.rate_limit_token"), 16384);
    pthread_mutex_init(&gw->mu, NULL);
    pthread_cond_init(&gw->attached, NULL);
    if (!(gw->presence = oh_presence_new(GW_MAX_AGENTS))) {
        oh_errf(err, errlen, "out of memory");
        oh_gateway_free(gw);
        return NULL;
    }
    gw->read_fanout = gw_signal_read_fanout;
    gw->ws_drained = gw_ws_drained;
    gw->contact_reply = gw_contact_reply;
    gw->ws_each_watcher = gw_ws_each_watcher;
    gw->ws_read_fanout = gw_ws_read_fanout;
    gw->live_tail = &gw->live;
    add_header_name(gw, "x-request-id");

    const char *listen = oh_config_str(hub->cfg, "http.listen");
    const char *admin = oh_config_str(hub->cfg, "http.admin_listen");
    char host[256], ahost[256];
    int port, aport = 0;
    if (oh_config_hostport(hub->cfg, "http.listen", host, sizeof host, &port, err, errlen) ||
        (admin && *admin &&
         oh_config_hostport(hub->cfg, "http.admin_listen", ahost, sizeof ahost, &aport, err,
                            errlen))) {
        oh_gateway_free(gw);
        return NULL;
    }
    gw->work = oh_workq_new(4, "oh-gw-work");
    oh_metrics_set("omnihub_gateway_sync_waits", "", 0);
    if (gw_kb_init(gw, err, errlen) != OH_OK) {
        oh_gateway_free(gw);
        return NULL;
    }
    /* lws's default loop poll()s every descriptor on each turn, which with
     * 10k WebSocket clients costs more than the work; libev waits with
     * epoll. Our own ("foreign") loop, so that oh_gateway_run() can leave
     * it and the context is destroyed outside it. */
    gw->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    gw->foreign_loops[0] = gw->loop;
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = port;
    info.iface = host[0] && strcmp(host, "0.0.0.0") != 0 ? host : NULL;
    info.protocols = protocols;
    info.user = gw;
    info.timeout_secs = (unsigned int)oh_config_int(hub->cfg, "http.timeout");
    info.timeout_secs_ah_idle = info.timeout_secs; /* slow headers (slowloris) */
    /* an idle keep-alive connection is kept as long as a request may take
     * (lws' 5 s default closed busy clients' connections just as they sent
     * their next request: "closed without response") */
    info.keepalive_timeout = (int)info.timeout_secs;
    info.max_http_header_data = GW_HEADER_SPACE;   /* http_hygiene.c reads it */
    /* no lws validity pings (zero policy): gw_ws_tick() sends them */
    info.retry_and_idle_policy = &gw->retry;
    info.options =
        LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_IPV6 | LWS_SERVER_OPTION_LIBEV;
    info.foreign_loops = gw->foreign_loops;
    info.fd_limit_per_thread = 0;
    const char *static_dir = oh_config_str(hub->cfg, "http.static_dir");
    if (static_dir) {
        gw->mount.mountpoint = "/app";
        gw->mount.mountpoint_len = 4;
        gw->mount.origin = static_dir;
        gw->mount.def = "index.html";
        gw->mount.origin_protocol = LWSMPRO_FILE;
        info.mounts = &gw->mount;
    }
    mount_workspace(gw, oh_config_str(hub->cfg, "http.workspace_dir"), &info);
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_emit);
    /* lws sizes its descriptor table from the soft limit: take the hard
     * one, so that thousands of idle clients do not lock others out */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    gw->ctx = gw->loop ? lws_create_context(&info) : NULL;
    if (!gw->ctx || !gw->work) {
        oh_errf(err, errlen, "cannot listen on %s (in use or not permitted?)", listen);
        oh_gateway_free(gw);
        return NULL;
    }
    if (aport) {
        /* a second vhost on the same loop: health, readiness and metrics
         * for operators, off the public listener */
        info.port = aport;
        info.iface = ahost[0] && strcmp(ahost, "0.0.0.0") != 0 ? ahost : NULL;
        info.mounts = NULL;
        info.vhost_name = "admin";
        if (!(gw->admin_vh = lws_create_vhost(gw->ctx, &info))) {
            oh_errf(err, errlen, "cannot listen on %s (http.admin_listen: in use?)", admin);
            oh_gateway_free(gw);
            return NULL;
        }
        OH_INFO("gateway", "admin listener on http://%s", admin);
    }
    hub->feed = gw_ws_feed;
    hub->feed_opaque = gw;
    hub->presence = gw->presence;
    /* here, before the loop runs: scheduled from a callback (attach()),
     * lws 4.1.6 on libev never armed its timer and it never ran */
    tick_gw = gw;
    lws_sul_schedule(gw->ctx, 0, &tick_sul, tick, LWS_US_PER_SEC);
    OH_INFO("gateway", "listening on http://%s", listen);
    return gw;
}

/* ---- start-up: from "starting" to ready ---- */

/* What needs the open log, store and connectors (the connectors' headers,
 * the desk's outcomes, the signals shared through the log). Service thread,
 * so that nothing it sets is written while the service thread reads it. */
static int attach(struct oh_gateway *gw)
{
    oh_hub *hub = gw->hub;
    for (size_t i = 0; i < hub->nconn; i++)
        for (const char *const *h = hub->conn[i].vt->headers; h && *h; h++)
            add_header_name(gw, *h);
    if (gw_desk_init(gw) != OH_OK) return OH_ENOMEM;
    gw_signals_init(gw);
    return OH_OK;
}

static void attach_if_asked(struct oh_gateway *gw)
{
    pthread_mutex_lock(&gw->mu);
    if (gw->attach == GW_ATTACH_ASKED) {
        gw->attach = attach(gw) == OH_OK ? GW_ATTACH_DONE : GW_ATTACH_FAILED;
        pthread_cond_broadcast(&gw->attached);
    }
    pthread_mutex_unlock(&gw->mu);
}

int oh_gateway_attach(struct oh_gateway *gw, char *err, size_t errlen)
{
    pthread_mutex_lock(&gw->mu);
    if (gw->attach == GW_ATTACH_IDLE) {
        gw->attach = GW_ATTACH_ASKED;
        lws_cancel_service(gw->ctx);
    }
    while (gw->attach == GW_ATTACH_ASKED)
        pthread_cond_wait(&gw->attached, &gw->mu);
    int rc = gw->attach == GW_ATTACH_DONE     ? OH_OK
             : gw->attach == GW_ATTACH_FAILED ? OH_ENOMEM
                                              : OH_EUNAVAIL;
    pthread_mutex_unlock(&gw->mu);
    if (rc) oh_errf(err, errlen, "gateway: %s", rc == OH_ENOMEM ? "out of memory" : "stopped");
    return rc;
}

void oh_gateway_ready(struct oh_gateway *gw)
{
    atomic_store_explicit(&gw->ready, true, memory_order_release);
}

static void bye_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

/* Says goodbye to the WebSocket clients (1001) while everything still
 * runs: a last turn of the loop, until each has closed or BYE_S has
 * passed (a peer that does not read cannot hold the stop). */
#define BYE_S 1.0
static void say_bye(struct oh_gateway *gw)
{
    if (!gw_ws_bye(gw)) return;
    ev_timer deadline;
    ev_now_update(gw->loop);
    ev_timer_init(&deadline, bye_timeout, BYE_S, 0.);
    ev_timer_start(gw->loop, &deadline);
    int64_t end = oh_mono_ms() + (int64_t)(BYE_S * 1000);
    while (gw->conns && oh_mono_ms() < end)
        ev_run(gw->loop, EVRUN_ONCE);
    ev_timer_stop(gw->loop, &deadline);
}

int oh_gateway_run(struct oh_gateway *gw)
{
    /* ev_break() in LWS_CALLBACK_EVENT_WAIT_CANCELLED once stop is set;
     * false when nothing is left to wait for (cannot happen: the listener) */
    while (!gw->stop)
        if (!ev_run(gw->loop, 0)) break;
    pthread_mutex_lock(&gw->mu); /* no attach from now on (oh_gateway_attach) */
    if (gw->attach == GW_ATTACH_IDLE || gw->attach == GW_ATTACH_ASKED)
        gw->attach = GW_ATTACH_CLOSED;
    pthread_cond_broadcast(&gw->attached);
    pthread_mutex_unlock(&gw->mu);
    say_bye(gw);
    return OH_OK;
}

void oh_gateway_stop(struct oh_gateway *gw)
{
    gw->stop = 1;
    if (gw->ctx) lws_cancel_service(gw->ctx);
}

void oh_gateway_drain(struct oh_gateway *gw)
{
    if (!gw) return;
    oh_workq_free(gw->work); /* finishes queued work first */
    gw->work = NULL;
    gw_kb_drain(gw); /* then the LLM calls that work queued */
    gw_signals_bye(gw);
}

void oh_gateway_free(struct oh_gateway *gw)
{
    if (!gw) return;
    if (gw->hub->feed_opaque == gw) gw->hub->feed = NULL;
    if (gw->hub->presence == gw->presence) gw->hub->presence = NULL;
    if (gw->hub->signal_opaque == gw) gw->hub->signal_in = NULL;
    oh_workq_free(gw->work); /* finishes queued work first */
    gw->work = NULL;
    gw_kb_drain(gw);
    gw_desk_free(gw);
    gw_kb_free(gw);
    if (gw->ctx) {
        lws_sul_cancel(&tick_sul);
        drain_done(gw);
        lws_context_destroy(gw->ctx);
    }
    if (gw->loop) ev_loop_destroy(gw->loop);
    gw_ws_free_all(gw);
    gw_signals_free(gw);
    for (int i = 0; i < gw->nheader_names; i++)
        free(gw->header_names[i]);
    oh_auth_free(gw->auth);
    oh_presence_free(gw->presence);
    oh_ratelimit_free(gw->rl_ip);
    oh_ratelimit_free(gw->rl_token);
    pthread_mutex_destroy(&gw->mu);
    pthread_cond_destroy(&gw->attached);
    free(gw);
}
