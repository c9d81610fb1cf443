/* ws.c - many WebSocket clients on one lws client context: each connects,
 * subscribes to its conversation, catches up, then receives live events;
 * push latency from the send time the bench stamped into the text, gaps,
 * duplicates and per-message delivery counts. Single-threaded, on a libev
 * (epoll) loop. */
#include <ev.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"

enum { C_IDLE, C_CONNECTING, C_OPEN, C_SUBSCRIBED, C_CAUGHT_UP, C_CLOSED };

struct client {
    struct bench_ws *w;
    struct lws *wsi;
    int state;
    const char *conv;
    int64_t after, head, last;
    int64_t sub_sent_us;
    bool want_sub;
    char *rx;
    size_t rx_len, rx_cap;
};

struct bench_ws {
    struct lws_context *ctx;
    struct ev_loop *loop; /* epoll: a poll() over 10k sockets per turn delays receipts */
    void *foreign_loops[1];
    lws_retry_bo_t retry; /* all zero */
    struct client *c;
    int n, connecting, caught_up, dead;
    char host[64];
    int port;
    char path[1200];
    struct bench_ws_stats st;
    struct bench_hist catchup;
    const char *prefix;
    size_t nmsg;
    unsigned *counts;
    lws_sorted_usec_list_t tick;
};

static void on_text(struct client *c, const char *buf, size_t len)
{
    struct bench_ws *w = c->w;
    json_t *m = json_loadb(buf, len, 0, NULL);
    const char *type = json_string_value(json_object_get(m, "type"));
    if (!type) {
        w->st.errors++;
    } else if (strcmp(type, "subscribed") == 0) {
        c->head = json_integer_value(json_object_get(m, "head"));
        c->state = C_SUBSCRIBED;
        if (strcmp(c->conv, "*") == 0 || c->head <= c->after) {
            c->state = C_CAUGHT_UP;
            w->caught_up++;
            bench_hist_record(&w->catchup, bench_now_us() - c->sub_sent_us);
        }
    } else if (strcmp(type, "event") == 0) {
        int64_t now = bench_now_us();
        json_t *ev = json_object_get(m, "event");
        int64_t seq = json_integer_value(json_object_get(ev, "seq"));
        w->st.events++;
        if (strcmp(c->conv, "*") != 0) {
            if (seq <= c->last)
                w->st.dups++;
            else if (seq != c->last + 1)
                w->st.gaps++;
            if (seq > c->last) c->last = seq;
        }
        json_t *data = json_object_get(ev, "data");
        const char *text = json_string_value(json_object_get(data, "text"));
        if (text && strncmp(text, "t=", 2) == 0) {
            bench_hist_record(&w->st.push, now - strtoll(text + 2, NULL, 10));
            w->st.live++;
        }
        if (w->prefix) {
            const char *mid = json_string_value(json_object_get(data, "message_id"));
            const char *p = mid ? strstr(mid, w->prefix) : NULL;
            if (p) {
                long i = strtol(p + strlen(w->prefix), NULL, 10);
                if (i >= 0 && (size_t)i < w->nmsg) w->counts[i]++;
            }
        }
        if (c->state == C_SUBSCRIBED && c->last >= c->head) {
            c->state = C_CAUGHT_UP;
            w->caught_up++;
            bench_hist_record(&w->catchup, now - c->sub_sent_us);
        }
    } else if (strcmp(type, "error") == 0) {
        w->st.errors++;
        if (w->st.errors < 5) fprintf(stderr, "  ws error: %.*s\n", (int)len, buf);
    }
    json_decref(m);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct client *c = lws_get_opaque_user_data(wsi);
    if (!c) return 0;
    struct bench_ws *w = c->w;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        w->connecting--;
        c->state = C_OPEN;
        c->want_sub = true;
        lws_callback_on_writable(wsi);
        break;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (c->want_sub) {
            unsigned char buf[LWS_PRE + 400];
            int n = snprintf((char *)buf + LWS_PRE, 400,
                             "{\"type\":\"subscribe\",\"conversation\":\"%s\",\"after\":%lld}",
                             c->conv, (long long)c->after);
            c->want_sub = false;
            c->sub_sent_us = bench_now_us();
            if (lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_TEXT) < n) return -1;
        }
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (c->rx_len + len + 1 > c->rx_cap) {
            size_t cap = (c->rx_len + len + 1) * 2;
            char *nb = realloc(c->rx, cap);
            if (!nb) return -1;
            c->rx = nb;
            c->rx_cap = cap;
        }
        memcpy(c->rx + c->rx_len, in, len);
        c->rx_len += len;
        if (lws_is_final_fragment(wsi)) {
            on_text(c, c->rx, c->rx_len);
            c->rx_len = 0;
        }
        break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (w->st.closed < 5) fprintf(stderr, "  ws connect error: %s\n", in ? (char *)in : "?");
        /* fall through */
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (c->state == C_CONNECTING) w->connecting--;
        if (c->state != C_CLOSED) {
            c->state = C_CLOSED;
            w->st.closed++;
            w->dead++;
        }
        c->wsi = NULL;
        lws_set_opaque_user_data(wsi, NULL);
        break;
    default: break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"omnihub", callback, 0, 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

struct bench_ws *bench_ws_new(char *err, size_t errlen)
{
    struct bench_ws *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info = {0};
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.gid = -1;
    info.uid = -1;
    info.timeout_secs = 30;
    info.options = LWS_SERVER_OPTION_LIBEV;
    /* no validity timer per connection (lws keeps them in one sorted list,
     * walked on every insertion); the server pings, lws answers */
    info.retry_and_idle_policy = &w->retry;
    w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    w->foreign_loops[0] = w->loop;
    info.foreign_loops = w->foreign_loops;
    w->ctx = w->loop ? lws_create_context(&info) : NULL;
    if (!w->ctx) {
        snprintf(err, errlen, "lws_create_context failed");
        if (w->loop) ev_loop_destroy(w->loop);
        free(w);
        return NULL;
    }
    return w;
}

void bench_ws_free(struct bench_ws *w)
{
    if (!w) return;
    lws_context_destroy(w->ctx);
    ev_loop_destroy(w->loop);
    for (int i = 0; i < w->n; i++)
        free(w->c[i].rx);
    free(w->c);
    free(w->counts);
    free(w);
}

static void service(struct bench_ws *w);

static void connect_one(struct bench_ws *w, struct client *c)
{
    struct lws_client_connect_info ci = {0};
    ci.context = w->ctx;
    ci.address = w->host;
    ci.port = w->port;
    ci.path = w->path;
    ci.host = w->host;
    ci.origin = w->host;
    ci.protocol = "omnihub";
    ci.local_protocol_name = "omnihub";
    ci.opaque_user_data = c;
    ci.pwsi = &c->wsi;
    c->state = C_CONNECTING;
    w->connecting++;
    if (!lws_client_connect_via_info(&ci) && c->state == C_CONNECTING) {
        w->connecting--;
        c->state = C_CLOSED;
        w->st.closed++;
        w->dead++;
    }
}

int bench_ws_connect(struct bench_ws *w, const struct bench_ws_spec *spec, int timeout_s)
{
    /* http://host:port -> host, port */
    const char *h = strstr(spec->base_url, "://");
    h = h ? h + 3 : spec->base_url;
    const char *colon = strrchr(h, ':');
    snprintf(w->host, sizeof w->host, "%.*s", (int)(colon ? colon - h : (long)strlen(h)), h);
    w->port = colon ? atoi(colon + 1) : 80;
    snprintf(w->path, sizeof w->path, "/v1/ws?access_token=%s", spec->token);
    w->c = calloc((size_t)spec->n, sizeof *w->c);
    if (!w->c) return 0;
    w->n = spec->n;
    for (int i = 0; i < w->n; i++) {
        w->c[i].w = w;
        w->c[i].conv = spec->conv[i % spec->nconv];
        w->c[i].after = spec->after;
    }
    int next = 0;
    int64_t deadline = bench_now_us() + (int64_t)timeout_s * 1000000;
    while (w->caught_up + w->dead < w->n && bench_now_us() < deadline) {
        /* a bounded number of handshakes in flight: the listen backlog */
        while (next < w->n && w->connecting < 128)
            connect_one(w, &w->c[next++]);
        service(w);
    }
    return w->caught_up;
}

void bench_ws_track(struct bench_ws *w, const char *prefix, size_t nmsg)
{
    free(w->counts);
    w->counts = calloc(nmsg ? nmsg : 1, sizeof *w->counts);
    w->prefix = prefix;
    w->nmsg = nmsg;
}

const unsigned *bench_ws_counts(struct bench_ws *w)
{
    return w->counts;
}

void bench_ws_reset_stats(struct bench_ws *w)
{
    memset(&w->st, 0, sizeof w->st);
}

static void on_tick(lws_sorted_usec_list_t *sul) {}

/* One turn of the loop: it sleeps until its next event or timer (up to
 * 30 s), so a tick bounds it. */
static void service(struct bench_ws *w)
{
    lws_sul_schedule(w->ctx, 0, &w->tick, on_tick, 20 * LWS_US_PER_MS);
    ev_run(w->loop, EVRUN_ONCE);
}

void bench_ws_run(struct bench_ws *w, volatile int *stop, int timeout_ms)
{
    int64_t deadline = bench_now_us() + (int64_t)timeout_ms * 1000;
    while (!(stop && *stop) && bench_now_us() < deadline)
        service(w);
}

void bench_ws_stats(struct bench_ws *w, struct bench_ws_stats *out)
{
    *out = w->st;
}

const struct bench_hist *bench_ws_catchup(struct bench_ws *w)
{
    return &w->catchup;
}

uint64_t bench_ws_events(struct bench_ws *w)
{
    return __atomic_load_n(&w->st.events, __ATOMIC_RELAXED);
}

void bench_ws_wake(struct bench_ws *w)
{
    lws_cancel_service(w->ctx);
}
