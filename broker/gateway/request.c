/* request.c - one HTTP request of the gateway: its lifetime, the answer
 * (reply helpers, the error body), async work on the worker pool and its
 * completion, header and query access, bearer authentication. The lowest
 * layer of the gateway: it calls none of the others. */
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include "core/json_dump.h"
#include "core/metrics.h"
#include "gateway/gateway_int.h"

/* ---- request lifetime ---- */

void gw_req_release(struct req *r)
{
    if (--r->refs > 0) return;
    for (int i = 0; i < r->nhdr; i++)
        free(r->hdr_val[i]);
    if (r->state_free) r->state_free(r->state);
    free(r->body);
    free(r->resp);
    free(r);
}

void gw_reply(struct req *r, int status, const char *ctype, const char *body, size_t len)
{
    free(r->resp);
    r->resp = malloc(LWS_PRE + len + 1);
    if (r->resp) {
        memcpy(r->resp + LWS_PRE, body, len);
        r->resp_len = len;
    } else {
        r->resp_len = 0;
    }
    r->status = status;
    oh_strcpy(r->ctype, sizeof r->ctype, ctype);
    r->ready = true;
}

void gw_reply_take(struct req *r, int status, const char *ctype, char *buf, size_t len)
{
    free(r->resp);
    r->resp = buf;
    r->resp_len = len;
    r->status = status;
    oh_strcpy(r->ctype, sizeof r->ctype, ctype);
    r->ready = true;
}

void gw_reply_json(struct req *r, int status, json_t *obj)
{
    char *s = obj ? oh_json_dump(obj, NULL) : NULL;
    json_decref(obj);
    if (!s) {
        gw_reply(r, 500, "application/json",
                 "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}", 56);
        return;
    }
    gw_reply(r, status, "application/json", s, strlen(s));
    free(s);
}

void gw_reply_error(struct req *r, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char lab[96];
    snprintf(lab, sizeof lab, "code=\"%d\"", status);
    oh_metrics_inc("omnihub_http_errors_total", lab, 1);
    gw_reply_json(r, status, json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg));
}

void *gw_state_new(struct req *r, size_t size, void (*state_free)(void *))
{
    void *state = calloc(1, size);
    if (!state) {
        gw_reply_error(r, 500, "internal", "out of memory");
        return NULL;
    }
    r->state = state;
    r->state_free = state_free;
    return state;
}

void gw_reply_store_error(struct req *r, int rc)
{
    if (rc == OH_ENOMEM)
        gw_reply_error(r, 500, "internal", "store: %s", oh_strerror(rc));
    else
        gw_reply_error(r, 503, "unavailable", "store: %s", oh_strerror(rc));
}

/* any thread */
void gw_complete(struct req *r)
{
    struct oh_gateway *gw = r->gw;
    pthread_mutex_lock(&gw->mu);
    r->next_done = gw->done;
    gw->done = r;
    bool wake = gw_wake_locked(gw);
    pthread_mutex_unlock(&gw->mu);
    if (wake) lws_cancel_service(gw->ctx);
}

/* With gw->mu held: whether the caller must wake the service thread. One
 * wake-up covers everything queued until the service thread has looked,
 * so a busy gateway does not pay a pipe write per completion. */
bool gw_wake_locked(struct oh_gateway *gw)
{
    if (gw->wake_pending) return false;
    gw->wake_pending = true;
    return true;
}

int gw_async(struct req *r, oh_work_fn fn)
{
    r->refs++;
    r->job = (struct gw_job){fn, r, &r->left, r->wsi ? lws_get_socket_fd(r->wsi) : -1, 0, 0, false};
    if (oh_workq_submit(r->gw->work, fn, r) == OH_OK) return OH_OK;
    r->refs--;
    gw_reply_error(r, 503, "unavailable", "server is shutting down");
    return OH_ECLOSED;
}

/* ---- request accessors ---- */

const char *gw_header(const struct req *r, const char *lname)
{
    for (int i = 0; i < r->nhdr; i++)
        if (strcmp(r->hdr_name[i], lname) == 0) return r->hdr_val[i];
    return NULL;
}

bool gw_query(const struct req *r, const char *name, char *out, size_t len)
{
    return oh_query_param(r->query, name, out, len) == OH_OK;
}

bool gw_query_has(const struct req *r, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = r->query; p && *p; p = strchr(p, '&'), p = p ? p + 1 : NULL)
        if (strncmp(p, name, n) == 0 && (p[n] == '=' || p[n] == '&' || !p[n])) return true;
    return false;
}

bool gw_query_once(struct req *r, const char *const *names, size_t n, bool only)
{
    for (const char *p = r->query; p && *p; p = strchr(p, '&'), p = p ? p + 1 : NULL) {
        size_t nlen = strcspn(p, "=&"), i = 0;
        while (i < n && (strlen(names[i]) != nlen || strncmp(p, names[i], nlen) != 0))
            i++;
        if (i == n) {
            if (!only || p[0] == '&') continue; /* "&&" names nothing */
            gw_reply_error(r, 400, "bad_request", "unknown parameter \"%.*s\"",
                           (int)(nlen > 64 ? 64 : nlen), p);
            return false;
        }
        for (const char *q = strchr(p, '&'); q; q = strchr(q + 1, '&')) {
            if (strncmp(q + 1, p, nlen) != 0) continue;
            char c = q[1 + nlen];
            if (c == '=' || c == '&' || c == '\0') {
                gw_reply_error(r, 400, "bad_request", "parameter \"%.*s\" given twice", (int)nlen,
                               p);
                return false;
            }
        }
    }
    return true;
}

bool gw_authenticate(struct req *r)
{
    const char *h = gw_header(r, "authorization");
    char token[4200] = "";
    /* REST takes the header only: a token in a URL ends up in proxy and
     * access logs (the WebSocket's ?access_token= is the one exception) */
    if (h && strncasecmp(h, "Bearer ", 7) == 0) snprintf(token, sizeof token, "%s", h + 7);
    char why[128];
    if (!token[0] ||
        oh_auth_verify(r->gw->auth, token, oh_now_ms() / 1000, &r->who, why, sizeof why)) {
        oh_metrics_inc("omnihub_auth_failures_total", "", 1);
        gw_reply_error(r, 401, "unauthorized", "%s", token[0] ? why : "missing bearer token");
        return false;
    }
    gw_principal_owns(r->gw, &r->who);
    r->has_auth = true;
    return true;
}

const char *gw_error_code(int status)
{
    switch (status) {
    case 401: return "unauthorized";
    case 403: return "forbidden";
    case 404: return "not_found";
    case 409: return "conflict";
    case 413: return "too_large";
    case 429: return "rate_limited";
    case 503: return "unavailable";
    default: return "bad_request";
    }
}

/* ---- what connectors decide for the gateway: who owns a conversation,
 * what was pushed or read (delivery states) ---- */

int gw_customer_conversation(struct oh_gateway *gw, const char *sub, struct oh_owned *out,
                             const char **channel)
{
    oh_hub *hub = gw->hub;
    for (size_t i = 0; i < hub->nconn; i++) {
        const struct oh_instance *in = &hub->conn[i];
        if (!in->vt->customer_conversation) continue;
        memset(out, 0, sizeof *out);
        int rc = in->vt->customer_conversation(in->ctx, sub, out);
        if (rc == OH_OK && channel) *channel = in->vt->name;
        return rc == OH_OK && out->conversation_id[0] ? OH_OK : OH_ENOTFOUND;
    }
    return OH_ENOTFOUND;
}

void gw_principal_owns(struct oh_gateway *gw, struct oh_principal *who)
{
    struct oh_owned o;
    who->owns[0] = '\0';
    if (who->role == OH_ROLE_CUSTOMER && gw_customer_conversation(gw, who->sub, &o, NULL) == OH_OK)
        snprintf(who->owns, sizeof who->owns, "%s", o.conversation_id);
}

void gw_notify_pushed(struct oh_gateway *gw, const char *conv, int64_t after, int64_t upto)
{
    oh_hub *hub = gw->hub;
    for (size_t i = 0; i < hub->nconn; i++)
        if (hub->conn[i].vt->on_pushed)
            hub->conn[i].vt->on_pushed(hub->conn[i].ctx, conv, after, upto);
}

void gw_notify_read(struct oh_gateway *gw, const char *conv, enum oh_role role, int64_t seq)
{
    oh_hub *hub = gw->hub;
    for (size_t i = 0; i < hub->nconn; i++)
        if (hub->conn[i].vt->on_read)
            hub->conn[i].vt->on_read(hub->conn[i].ctx, conv, oh_auth_role_name(role), seq);
}

/* How many bytes lws has read from the socket of WSI so far (TCP_INFO less
 * the receive queue), -1 unknown: both http_pipeline.c and http_guard.c use it,
 * and the guard sits below the pipeline. */
#define TCP_STATE_CLOSE_WAIT 8 /* include/net/tcp_states.h: the peer's FIN arrived */

long long gw_socket_bytes_read(struct lws *wsi)
{
    int fd = lws_get_socket_fd(wsi);
    if (fd < 0) return -1;
    /* only this thread reads the socket, so the queue can only grow
     * between the calls: equal queues before and after mean the received
     * count belongs to the same moment */
    for (int tries = 0; tries < 4; tries++) {
        int q1, q2;
        struct tcp_info ti;
        socklen_t len = sizeof ti;
        if (ioctl(fd, SIOCINQ, &q1) || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) ||
            ioctl(fd, SIOCINQ, &q2))
            return -1;
        if (len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received)
            return -1; /* a kernel before 4.1 */
        if (q1 != q2) continue;
        /* the received count includes the FIN's sequence number, the
         * queue does not */
        long long fin = ti.tcpi_state == TCP_STATE_CLOSE_WAIT;
        return (long long)ti.tcpi_bytes_received - fin - q1;
    }
    return -1;
}
