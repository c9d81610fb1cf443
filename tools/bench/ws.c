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

/* ---- a skimming JSON reader for the event frames ----
 *
 * Parsing every replayed event into a jansson tree cost the client about
 * 10 us per kilobyte-sized event and made the bench, not the server, the
 * bottleneck of `resume`. The client only needs a few members (type, head,
 * event.seq, event.data.text and .message_id), so it walks the frame once:
 * every value is checked for JSON structure and skipped without building
 * anything, and only the members asked for are recorded. */

struct span {
    const char *p, *end; /* the value's bytes; p NULL when absent */
};

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* P at the opening quote; returns just past the closing one, NULL if bad. */
static const char *skip_string(const char *p, const char *end)
{
    for (p++;;) {
        const char *q = memchr(p, '"', (size_t)(end - p));
        if (!q) return NULL;
        bool escaped = false; /* the quote found is part of the string */
        for (const char *b = p; b < q && !escaped; b++) {
            if ((unsigned char)*b < 0x20) return NULL;
            if (*b == '\\' && ++b == q) escaped = true;
        }
        if (!escaped) return q + 1;
        p = q + 1;
    }
}

static const char *skip_value(const char *p, const char *end, int depth);

/* Walks the object at P; for each of the NKEYS names, the value's span. */
static const char *scan_object(const char *p, const char *end, int depth, const char *const *keys,
                               struct span *vals, int nkeys)
{
    if (p >= end || *p != '{' || depth > 64) return NULL;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}') return p + 1;
    for (;;) {
        if (p >= end || *p != '"') return NULL;
        const char *k = p + 1, *ke = skip_string(p, end);
        if (!ke) return NULL;
        p = skip_ws(ke, end);
        if (p >= end || *p != ':') return NULL;
        const char *v = skip_ws(p + 1, end), *ve = skip_value(v, end, depth + 1);
        if (!ve) return NULL;
        size_t klen = (size_t)(ke - 1 - k);
        for (int i = 0; i < nkeys; i++)
            if (strlen(keys[i]) == klen && memcmp(keys[i], k, klen) == 0)
                vals[i] = (struct span){v, ve};
        p = skip_ws(ve, end);
        if (p < end && *p == '}') return p + 1;
        if (p >= end || *p != ',') return NULL;
        p = skip_ws(p + 1, end);
    }
}

static const char *skip_value(const char *p, const char *end, int depth)
{
    if (p >= end) return NULL;
    switch (*p) {
    case '"': return skip_string(p, end);
    case '{': return scan_object(p, end, depth, NULL, NULL, 0);
    case '[':
        if (depth > 64) return NULL;
        p = skip_ws(p + 1, end);
        if (p < end && *p == ']') return p + 1;
        for (;;) {
            p = skip_value(p, end, depth + 1);
            if (!p) return NULL;
            p = skip_ws(p, end);
            if (p < end && *p == ']') return p + 1;
            if (p >= end || *p != ',') return NULL;
            p = skip_ws(p + 1, end);
        }
    case 't': return end - p >= 4 && memcmp(p, "true", 4) == 0 ? p + 4 : NULL;
    case 'f': return end - p >= 5 && memcmp(p, "false", 5) == 0 ? p + 5 : NULL;
    case 'n': return end - p >= 4 && memcmp(p, "null", 4) == 0 ? p + 4 : NULL;
    default: {
        const char *s = p;
        if (p < end && *p == '-') p++;
        while (p < end && ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' ||
                           *p == '+' || *p == '-'))
            p++;
        return p > s && (p[-1] >= '0' && p[-1] <= '9') ? p : NULL;
    }
    }
}

/* The whole frame is one object with nothing after it. */
static bool scan_frame(const char *buf, size_t len, const char *const *keys, struct span *vals,
                       int nkeys)
{
    const char *end = buf + len, *p = scan_object(skip_ws(buf, end), end, 0, keys, vals, nkeys);
    return p && skip_ws(p, end) == end;
}

static bool span_is(struct span s, const char *str)
{
    size_t n = strlen(str);
    return s.p && (size_t)(s.end - s.p) == n + 2 && s.p[0] == '"' && memcmp(s.p + 1, str, n) == 0;
}

/* An integer member; 0 when absent or not an integer (as json_integer_value). */
static int64_t span_int(struct span s)
{
    if (!s.p || !(*s.p == '-' || (*s.p >= '0' && *s.p <= '9'))) return 0;
    for (const char *q = s.p; q < s.end; q++)
        if (*q == '.' || *q == 'e' || *q == 'E') return 0;
    return strtoll(s.p, NULL, 10);
}

static void caught_up(struct client *c, int64_t now)
{
    c->state = C_CAUGHT_UP;
    c->w->caught_up++;
    bench_hist_record(&c->w->catchup, now - c->sub_sent_us);
}

static void on_event(struct client *c, struct span event)
{
    struct bench_ws *w = c->w;
    int64_t now = bench_now_us();
    static const char *const ekeys[] = {"seq", "data"}, *const dkeys[] = {"text", "message_id"};
    struct span ev[2] = {{0}}, data[2] = {{0}};
    if (!scan_object(event.p, event.end, 1, ekeys, ev, 2) ||
        (ev[1].p && *ev[1].p == '{' && !scan_object(ev[1].p, ev[1].end, 2, dkeys, data, 2))) {
        w->st.errors++;
        return;
    }
    int64_t seq = span_int(ev[0]);
    w->st.events++;
    if (strcmp(c->conv, "*") != 0) {
        if (seq <= c->last)
            w->st.dups++;
        else if (seq != c->last + 1)
            w->st.gaps++;
        if (seq > c->last) c->last = seq;
    }
    struct span text = data[0], mid = data[1];
    if (text.p && *text.p == '"' && text.end - text.p > 3 && memcmp(text.p + 1, "t=", 2) == 0) {
        bench_hist_record(&w->st.push, now - strtoll(text.p + 3, NULL, 10));
        w->st.live++;
    }
    if (w->prefix && mid.p && *mid.p == '"') {
        /* the message id's raw bytes; the bench's own ids hold no escapes */
        size_t plen = strlen(w->prefix), mlen = (size_t)(mid.end - mid.p - 2);
        const char *m = mid.p + 1, *p = NULL;
        for (size_t i = 0; i + plen <= mlen && !p; i++)
            if (memcmp(m + i, w->prefix, plen) == 0) p = m + i;
        if (p) {
            long i = 0;
            const char *d = p + plen;
            if (d < mid.end - 1 && *d >= '0' && *d <= '9') {
                for (; d < mid.end - 1 && *d >= '0' && *d <= '9'; d++)
                    i = i * 10 + (*d - '0');
                if ((size_t)i < w->nmsg) w->counts[i]++;
            }
        }
    }
    if (c->state == C_SUBSCRIBED && c->last >= c->head) caught_up(c, now);
}

static void on_text(struct client *c, const char *buf, size_t len)
{
    struct bench_ws *w = c->w;
    static const char *const keys[] = {"type", "event"};
    struct span top[2] = {{0}};
    if (!scan_frame(buf, len, keys, top, 2)) {
        w->st.errors++;
        return;
    }
    if (span_is(top[0], "event")) {
        if (top[1].p && *top[1].p == '{')
            on_event(c, top[1]);
        else
            w->st.errors++;
        return;
    }
    /* the rare frames: the full parser */
    json_t *m = json_loadb(buf, len, 0, NULL);
    const char *type = json_string_value(json_object_get(m, "type"));
    if (!type) {
        w->st.errors++;
    } else if (strcmp(type, "subscribed") == 0) {
        c->head = json_integer_value(json_object_get(m, "head"));
        c->state = C_SUBSCRIBED;
        if (strcmp(c->conv, "*") == 0 || c->head <= c->after) caught_up(c, bench_now_us());
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
