/* ws_out.c - the outgoing side of a WebSocket connection: messages framed
 * when queued, into chunks written raw in large slices; slow consumers,
 * pings and closes from the writable callback; refused upgrades. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/metrics.h"
#include "gateway/ws_int.h"

void gw_ws_close(struct wsconn *c, int code, const char *reason)
{
    if (!c->wsi || c->close_code) return;
    c->close_code = code;
    snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
    lws_callback_on_writable(c->wsi);
}

void gw_ws_close_after(struct wsconn *c, int code, const char *reason)
{
    if (!c->wsi || c->close_code) return;
    c->close_flush = true;
    gw_ws_close(c, code, reason);
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, GW_WS_CLOSE_FLUSH_S);
}

/* The header of an unmasked final text frame of LEN payload bytes. */
static size_t frame_header(unsigned char *h, size_t len)
{
    h[0] = 0x81;
    if (len < 126) {
        h[1] = (unsigned char)len;
        return 2;
    }
    if (len < 65536) {
        h[1] = 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
        return 4;
    }
    h[1] = 127;
    for (int i = 0; i < 8; i++)
        h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

struct outbuf *gw_ws_outbuf_new(size_t cap)
{
    struct outbuf *m = malloc(sizeof *m + cap);
    if (m) *m = (struct outbuf){NULL, 0, 0, cap};
    return m;
}

/* Appends one frame of the concatenated pieces to BUF (grown as needed);
 * false when out of memory. */
bool gw_ws_frame_put(struct outbuf **buf, const char *a, size_t alen, const char *b, size_t blen,
                     const char *z, size_t zlen)
{
    size_t len = alen + blen + zlen;
    struct outbuf *m = *buf;
    if (m->len + 10 + len > m->cap) {
        size_t cap = m->cap * 2 > m->len + 10 + len ? m->cap * 2 : m->len + 10 + len;
        m = realloc(m, sizeof *m + cap);
        if (!m) return false;
        m->cap = cap;
        *buf = m;
    }
    unsigned char *p = m->data + m->len;
    p += frame_header(p, len);
    memcpy(p, a, alen);
    if (blen) memcpy(p + alen, b, blen);
    if (zlen) memcpy(p + alen + blen, z, zlen);
    m->len = (size_t)(p - m->data) + len;
    return true;
}

bool gw_ws_queue_ok(struct wsconn *c, size_t len)
{
    if (!c->wsi || c->close_code) return false;
    if (c->out_bytes + len <= c->gw->ws_max_queue) return true;
    oh_metrics_inc("omnihub_ws_slow_closes_total", "", 1);
    OH_WARN("ws", "closing slow client %s/%s: %zu bytes queued", c->who.sub, c->who.device,
            c->out_bytes);
    gw_ws_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "slow consumer: resume later");
    return false;
}

void gw_ws_queue_link(struct wsconn *c, struct outbuf *m)
{
    bool idle = !c->out;
    if (c->out_last)
        c->out_last->next = m;
    else
        c->out = m;
    c->out_last = m;
    if (idle) lws_callback_on_writable(c->wsi);
}

/* Queues one text message made of the concatenated pieces. */
void gw_ws_send(struct wsconn *c, const char *a, size_t alen, const char *b, size_t blen,
                const char *z, size_t zlen)
{
    size_t len = alen + blen + zlen;
    if (!gw_ws_queue_ok(c, len)) return;
    struct outbuf *m = c->out_last;
    if (m && m->cap - m->len >= len + 10) { /* room in the last chunk */
        size_t before = m->len;
        gw_ws_frame_put(&m, a, alen, b, blen, z, zlen); /* fits: no realloc, cannot fail */
        c->out_bytes += m->len - before;
        return;
    }
    /* an idle connection's message gets a buffer of its own size (10k
     * subscribers each holding 64 KiB for one event would add up); one
     * behind others gets a chunk that the next ones can share */
    m = gw_ws_outbuf_new(!c->out || len + 10 > OUT_CHUNK ? len + 10 : OUT_CHUNK);
    if (!m || !gw_ws_frame_put(&m, a, alen, b, blen, z, zlen)) {
        free(m);
        gw_ws_close(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
        return;
    }
    c->out_bytes += m->len;
    gw_ws_queue_link(c, m);
}

void gw_ws_send_json(struct wsconn *c, json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (s) gw_ws_send(c, s, strlen(s), NULL, 0, NULL, 0);
    free(s);
}

void gw_ws_send_error(struct wsconn *c, const char *code, const char *msg)
{
    gw_ws_send_json(c, json_pack("{s:s, s:s, s:s}", "type", "error", "code", code, "message", msg));
}

void gw_ws_queue_free(struct wsconn *c)
{
    while (c->out) {
        struct outbuf *m = c->out;
        c->out = m->next;
        free(m);
    }
    c->out_last = NULL;
    c->out_bytes = 0;
}

int gw_ws_writable(struct wsconn *c)
{
    if (c->close_code && !(c->close_flush && c->out)) {
        lws_close_reason(c->wsi, (enum lws_close_status)c->close_code,
                         (unsigned char *)c->close_reason, strlen(c->close_reason));
        return -1;
    }
    if (c->want_ping) {
        /* with a payload: lws does not pass up an empty pong */
        unsigned char ping[LWS_PRE + 2] = {[LWS_PRE] = 'o', [LWS_PRE + 1] = 'h'};
        c->want_ping = false;
        if (lws_write(c->wsi, ping + LWS_PRE, 2, LWS_WRITE_PING) < 0) return -1;
        if (c->out) {
            lws_callback_on_writable(c->wsi);
            return 0;
        }
    }
    /* whole frames, framed when queued, in slices of up to OUT_CHUNK
     * until the socket would block, bounded so that other connections stay
     * served fairly (one frame per callback capped a connection at one
     * frame per service-loop turn: with 10k connections a busy subscriber
     * fell behind and was closed as slow). A raw write on a WebSocket
     * connection goes out as it is; lws keeps what the socket did not take
     * and holds back writable callbacks until it has sent it. */
    for (int k = 0; k < 32 && c->out; k++) {
        struct outbuf *m = c->out;
        if (k > 0 && lws_send_pipe_choked(c->wsi)) break;
        size_t n = m->len - m->off < OUT_CHUNK ? m->len - m->off : OUT_CHUNK;
        if (lws_write(c->wsi, m->data + m->off, n, LWS_WRITE_RAW) < (int)n) return -1;
        m->off += n;
        c->out_bytes -= n;
        if (m->off < m->len) continue;
        c->out = m->next;
        if (!c->out) c->out_last = NULL;
        free(m);
    }
    if (c->out || c->close_code) lws_callback_on_writable(c->wsi);
    if (!c->close_code && c->out_bytes <= c->gw->ws_max_queue / 2) c->gw->ws_drained(c);
    return 0;
}

int gw_refuse_upgrade(struct lws *wsi, int status, const char *code, const char *msg,
                      int retry_after)
{
    static const struct {
        int status;
        const char *text;
    } reasons[] = {{401, "Unauthorized"}, {404, "Not Found"}, {429, "Too Many Requests"}};
    const char *reason = "Error";
    for (size_t i = 0; i < OH_ARRAY_SIZE(reasons); i++)
        if (reasons[i].status == status) reason = reasons[i].text;
    char body[256], extra[48] = "", buf[LWS_PRE + 640];
    int blen =
        snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, msg);
    if (retry_after > 0) snprintf(extra, sizeof extra, "retry-after: %d\r\n", retry_after);
    int n = snprintf(buf + LWS_PRE, sizeof buf - LWS_PRE,
                     "HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n%s"
                     "content-length: %d\r\nconnection: close\r\n\r\n%s",
                     status, reason, extra, blen, body);
    lws_write(wsi, (unsigned char *)buf + LWS_PRE, (size_t)n, LWS_WRITE_HTTP);
    return -1;
}
