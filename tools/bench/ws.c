/* ws.c - many WebSocket clients on one thread: each connects, subscribes
 * to its conversation, catches up, then receives live events; push latency
 * from the send time the bench stamped into the text, gaps, duplicates and
 * per-message delivery counts. A minimal RFC 6455 client of its own on a
 * libev (epoll) loop: the replay of a resume is a megabyte of frames, and
 * libwebsockets 4.1's client parses what it receives a byte at a time
 * (about a third of the bench's CPU in `resume`, more than the daemon). */
#include <ctype.h>
#include <errno.h>
#include <ev.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "bench.h"

enum { C_IDLE, C_CONNECTING, C_OPEN, C_SUBSCRIBED, C_CAUGHT_UP, C_CLOSED };

#define RX_MAX   (16u << 20) /* the largest message accepted */
#define RX_CHUNK 262144      /* the receive buffer grows to this much */

struct client {
    struct bench_ws *w;
    ev_io io;
    int fd, state;
    bool upgraded; /* the 101 arrived */
    bool rx_full;  /* the last read filled the buffer */
    const char *conv;
    const char *token; /* NULL: the set's */
    int64_t after, head, last;
    int64_t sub_sent_us, started_us;
    bool got_event;
    char accept[32]; /* the Sec-WebSocket-Accept expected */
    unsigned char *rx;
    size_t rx_len, rx_cap;
    char *msg; /* a fragmented message being put together */
    size_t msg_len;
    unsigned char *tx; /* what the socket did not take yet */
    size_t tx_len;
};

struct bench_ws {
    struct ev_loop *loop; /* epoll: a poll() over 10k sockets per turn delays receipts */
    ev_async wake;
    ev_timer tick;
    struct client *c;
    int n, connecting, caught_up, dead;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char host[64];
    int port;
    char path[1200];
    const char *presence;
    struct bench_ws_stats st;
    struct bench_hist catchup;
    struct bench_hist first; /* subscribe to the first event */
    const char *prefix;
    size_t nmsg;
    unsigned *counts;
    bench_ws_event_fn hook; /* optional: told of every event */
    void *hook_opaque;
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

/* Whether any byte of X is zero / below N (N <= 128): exact for "any" and
 * for the lowest such byte (higher ones may be false positives). */
#define ONES            0x0101010101010101ull
#define HIGHS           0x8080808080808080ull
#define ANY_ZERO(x)     (((x)-ONES) & ~(x)&HIGHS)
#define ANY_BELOW(x, n) (((x)-ONES * (n)) & ~(x)&HIGHS)
#define ANY_BYTE(x, b)  ANY_ZERO((x) ^ (ONES * (b)))

/* P at the opening quote; returns just past the closing one, NULL if bad.
 * Eight bytes at a time while none of them is a quote, a backslash or a
 * control character (most of an event is plain string content). */
static const char *skip_string(const char *p, const char *end)
{
    for (p++;;) {
        while (end - p >= 8) {
            uint64_t x;
            memcpy(&x, p, 8);
            uint64_t m = ANY_BYTE(x, '"') | ANY_BYTE(x, '\\') | ANY_BELOW(x, 0x20);
            if (m) { /* the lowest flagged byte is a true one (little-endian load) */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                p += __builtin_ctzll(m) >> 3;
#endif
                break;
            }
            p += 8;
        }
        if (p >= end) return NULL;
        unsigned char ch = (unsigned char)*p;
        if (ch == '"') return p + 1;
        if (ch < 0x20) return NULL;
        if (ch != '\\') {
            p++;
        } else if (end - p >= 2 && strchr("\"\\/bfnrt", p[1]) && p[1]) {
            p += 2;
        } else if (end - p >= 6 && p[1] == 'u' && isxdigit((unsigned char)p[2]) &&
                   isxdigit((unsigned char)p[3]) && isxdigit((unsigned char)p[4]) &&
                   isxdigit((unsigned char)p[5])) {
            p += 6;
        } else {
            return NULL;
        }
    }
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static const char *skip_number(const char *p, const char *end)
{
#define DIGITS(min)                                                                                \
    do {                                                                                           \
        const char *d = p;                                                                         \
        while (p < end && *p >= '0' && *p <= '9')                                                  \
            p++;                                                                                   \
        if (p - d < (min)) return NULL;                                                            \
    } while (0)
    if (p < end && *p == '-') p++;
    if (p < end && *p == '0')
        p++;
    else
        DIGITS(1);
    if (p < end && *p == '.') {
        p++;
        DIGITS(1);
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        DIGITS(1);
    }
    return p;
#undef DIGITS
}

static const char *skip_value(const char *p, const char *end, int depth);

/* The members to record in an object: their spans in VALS; where SUB[i] is
 * set and member i is an object, it is walked with SUB[i] as it is skipped,
 * so nested members come out of the same single pass. */
struct scan_spec {
    const char *const *keys;
    struct span *vals;
    const struct scan_spec *const *sub; /* may be NULL */
    int nkeys;
};

/* Walks the object at P (SP NULL: checks and skips it). */
static const char *scan_object(const char *p, const char *end, int depth,
                               const struct scan_spec *sp)
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
        size_t klen = (size_t)(ke - 1 - k);
        int hit = -1;
        for (int i = 0; sp && i < sp->nkeys && hit < 0; i++)
            if (sp->keys[i][0] == *k && strlen(sp->keys[i]) == klen &&
                memcmp(sp->keys[i], k, klen) == 0)
                hit = i;
        const char *v = skip_ws(p + 1, end), *ve;
        if (hit >= 0 && sp->sub && sp->sub[hit] && v < end && *v == '{')
            ve = scan_object(v, end, depth + 1, sp->sub[hit]);
        else
            ve = skip_value(v, end, depth + 1);
        if (!ve) return NULL;
        if (hit >= 0) sp->vals[hit] = (struct span){v, ve};
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
    case '{': return scan_object(p, end, depth, NULL);
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
    default: return skip_number(p, end);
    }
}

/* The whole frame is one object with nothing after it. */
static bool scan_frame(const char *buf, size_t len, const struct scan_spec *sp)
{
    const char *end = buf + len, *p = scan_object(skip_ws(buf, end), end, 0, sp);
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

/* EV: the event's seq and data; DATA: data's text and message_id (all
 * found by on_text's one pass over the frame). */
static void on_event(struct client *c, struct span event, const struct span *ev,
                     const struct span *data)
{
    struct bench_ws *w = c->w;
    int64_t now = bench_now_us();
    int64_t seq = span_int(ev[0]);
    w->st.events++;
    if (!c->got_event) {
        c->got_event = true;
        bench_hist_record(&w->first, now - c->sub_sent_us);
    }
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
    if (w->hook) w->hook(w->hook_opaque, event.p, (size_t)(event.end - event.p), now);
    if (c->state == C_SUBSCRIBED && c->last >= c->head) caught_up(c, now);
}

static void on_text(struct client *c, const char *buf, size_t len)
{
    struct bench_ws *w = c->w;
    static const char *const keys[] = {"type", "event"}, *const ekeys[] = {"seq", "data"},
                             *const dkeys[] = {"text", "message_id"};
    struct span top[2] = {{0}}, ev[2] = {{0}}, data[2] = {{0}};
    const struct scan_spec dspec = {dkeys, data, NULL, 2};
    const struct scan_spec *const esub[] = {NULL, &dspec};
    const struct scan_spec espec = {ekeys, ev, esub, 2};
    const struct scan_spec *const tsub[] = {NULL, &espec};
    const struct scan_spec tspec = {keys, top, tsub, 2};
    if (!scan_frame(buf, len, &tspec)) {
        w->st.errors++;
        return;
    }
    if (span_is(top[0], "event")) {
        if (top[1].p && *top[1].p == '{')
            on_event(c, top[1], ev, data);
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

/* ---- the connection ---- */

static void client_close(struct client *c)
{
    struct bench_ws *w = c->w;
    if (c->state == C_CLOSED) return;
    if (c->state == C_CONNECTING) w->connecting--;
    c->state = C_CLOSED;
    w->st.closed++;
    w->dead++;
    if (c->fd >= 0) {
        ev_io_stop(w->loop, &c->io);
        close(c->fd);
        c->fd = -1;
    }
}

static void want_write(struct client *c, bool on)
{
    int ev = EV_READ | (on ? EV_WRITE : 0);
    if (c->io.events == ev) return;
    ev_io_stop(c->w->loop, &c->io);
    ev_io_set(&c->io, c->fd, ev);
    ev_io_start(c->w->loop, &c->io);
}

/* Sends what is pending, then BUF; keeps what the socket does not take. */
static int client_write(struct client *c, const void *buf, size_t len)
{
    if (len) {
        unsigned char *nb = realloc(c->tx, c->tx_len + len);
        if (!nb) return -1;
        memcpy(nb + c->tx_len, buf, len);
        c->tx = nb;
        c->tx_len += len;
    }
    while (c->tx_len) {
        ssize_t n = send(c->fd, c->tx, c->tx_len, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        memmove(c->tx, c->tx + n, c->tx_len - (size_t)n);
        c->tx_len -= (size_t)n;
    }
    want_write(c, c->tx_len > 0);
    return 0;
}

/* One masked client frame (RFC 6455 5.3). */
static int send_frame(struct client *c, int opcode, const void *payload, size_t len)
{
    unsigned char *f = malloc(len + 14), mask[4];
    if (!f) return -1;
    size_t h = 0;
    f[h++] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        f[h++] = (unsigned char)(0x80 | len);
    } else if (len < 65536) {
        f[h++] = 0x80 | 126;
        f[h++] = (unsigned char)(len >> 8);
        f[h++] = (unsigned char)len;
    } else {
        f[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            f[h++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    RAND_bytes(mask, 4);
    memcpy(f + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < len; i++)
        f[h + i] = ((const unsigned char *)payload)[i] ^ mask[i & 3];
    int rc = client_write(c, f, h + len);
    free(f);
    return rc;
}

static int send_subscribe(struct client *c)
{
    char buf[400];
    int n =
        snprintf(buf, sizeof buf, "{\"type\":\"subscribe\",\"conversation\":\"%s\",\"after\":%lld}",
                 c->conv, (long long)c->after);
    c->sub_sent_us = bench_now_us();
    return send_frame(c, 0x1, buf, (size_t)n);
}

/* The 101 answer: status and Sec-WebSocket-Accept; 0 complete, 1 more
 * needed, -1 refused. */
static int handshake(struct client *c)
{
    const char *end = memmem(c->rx, c->rx_len, "\r\n\r\n", 4);
    if (!end) return c->rx_len > 16384 ? -1 : 1;
    size_t hlen = (size_t)(end + 4 - (const char *)c->rx);
    char *h = strndup((const char *)c->rx, hlen);
    bool ok = h && strncmp(h, "HTTP/1.1 101", 12) == 0;
    char *acc = ok ? strcasestr(h, "\r\nsec-websocket-accept:") : NULL;
    if (acc) {
        acc += 23;
        while (*acc == ' ')
            acc++;
        ok = strncmp(acc, c->accept, strlen(c->accept)) == 0;
    } else {
        ok = false;
    }
    if (!ok && c->w->st.closed < 5)
        fprintf(stderr, "  ws connect error: %.*s\n", (int)strcspn(h ? h : "?", "\r"), h ? h : "?");
    free(h);
    if (!ok) return -1;
    memmove(c->rx, c->rx + hlen, c->rx_len - hlen);
    c->rx_len -= hlen;
    c->upgraded = true;
    c->w->connecting--;
    c->state = C_OPEN;
    if (send_subscribe(c)) return -1;
    if (c->w->presence) {
        char buf[96];
        int n = snprintf(buf, sizeof buf, "{\"type\":\"presence\",\"status\":\"%s\"}",
                         c->w->presence);
        if (send_frame(c, 0x1, buf, (size_t)n)) return -1;
    }
    return 0;
}

/* Complete frames at the front of the receive buffer; -1 closes. */
static int frames(struct client *c)
{
    size_t pos = 0;
    int rc = 0;
    while (rc == 0 && c->state != C_CLOSED) {
        const unsigned char *f = c->rx + pos;
        size_t avail = c->rx_len - pos;
        if (avail < 2) break;
        if (f[1] & 0x80 || f[0] & 0x70) { /* masked by the server, or reserved bits */
            rc = -1;
            break;
        }
        size_t h = 2;
        uint64_t len = f[1] & 0x7f;
        if (len == 126) {
            if (avail < 4) break;
            len = (uint64_t)f[2] << 8 | f[3];
            h = 4;
        } else if (len == 127) {
            if (avail < 10) break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | f[2 + i];
            h = 10;
        }
        if (len > RX_MAX) {
            rc = -1;
            break;
        }
        if (avail < h + len) {
            if (h + len > c->rx_cap) { /* a frame bigger than the buffer */
                unsigned char *nb = realloc(c->rx, h + len);
                if (!nb) return -1;
                c->rx = nb;
                c->rx_cap = h + len;
            }
            break;
        }
        const char *p = (const char *)f + h;
        bool fin = f[0] & 0x80;
        int op = f[0] & 0x0f;
        pos += h + len;
        if (op == 0x1 && fin && !c->msg) {
            on_text(c, p, len);
        } else if (op == 0x1 || op == 0x0) {
            if ((op == 0x1) == (c->msg != NULL) || c->msg_len + len > RX_MAX) {
                rc = -1; /* a new message inside one, or a stray continuation */
                break;
            }
            char *nb = realloc(c->msg, c->msg_len + len + 1);
            if (!nb) return -1;
            memcpy(nb + c->msg_len, p, len);
            c->msg = nb;
            c->msg_len += len;
            if (fin) {
                on_text(c, c->msg, c->msg_len);
                free(c->msg);
                c->msg = NULL;
                c->msg_len = 0;
            }
        } else if (op == 0x9) {
            rc = send_frame(c, 0xA, p, len);
        } else if (op == 0x8) {
            send_frame(c, 0x8, p, len < 2 ? len : 2); /* echo the status code */
            rc = -1;
        } else if (op != 0xA) {
            rc = -1; /* binary: the contract says text frames */
        }
    }
    memmove(c->rx, c->rx + pos, c->rx_len - pos);
    c->rx_len -= pos;
    return rc;
}

static void on_io(struct ev_loop *loop, ev_io *io, int revents)
{
    struct client *c = io->data;
    if (revents & EV_WRITE) {
        if (c->state == C_CONNECTING && !c->upgraded && c->tx_len) {
            int err = 0;
            socklen_t el = sizeof err;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
            if (err) {
                if (c->w->st.closed < 5) fprintf(stderr, "  ws connect error: %s\n", strerror(err));
                client_close(c);
                return;
            }
        }
        if (client_write(c, NULL, 0)) {
            client_close(c);
            return;
        }
    }
    if (!(revents & EV_READ)) return;
    /* small for an idle subscriber, doubling while reads fill it */
    size_t room = c->rx_cap - c->rx_len;
    if (room < 4096 || (c->rx_full && c->rx_cap < RX_CHUNK)) {
        size_t cap = c->rx_cap ? c->rx_cap * 2 : 16384;
        if (cap < c->rx_len + 4096) cap = c->rx_len + 4096;
        unsigned char *nb = realloc(c->rx, cap);
        if (!nb) {
            client_close(c);
            return;
        }
        c->rx = nb;
        c->rx_cap = cap;
        room = cap - c->rx_len;
    }
    ssize_t n = recv(c->fd, c->rx + c->rx_len, room, 0);
    c->rx_full = n == (ssize_t)room;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0) {
        if (n < 0 && c->w->st.closed < 5)
            fprintf(stderr, "  ws connection error: %s\n", strerror(errno));
        client_close(c);
        return;
    }
    c->rx_len += (size_t)n;
    int rc = c->upgraded ? 0 : handshake(c);
    if (rc == 0 && c->upgraded) rc = frames(c);
    if (rc < 0) client_close(c);
}

static void connect_one(struct bench_ws *w, struct client *c)
{
    c->state = C_CONNECTING;
    c->started_us = bench_now_us();
    w->connecting++;
    unsigned char key[16];
    char key64[32], req[1600], path[1200];
    if (c->token)
        snprintf(path, sizeof path, "/v1/ws?access_token=%s", c->token);
    else
        snprintf(path, sizeof path, "%s", w->path);
    RAND_bytes(key, sizeof key);
    EVP_EncodeBlock((unsigned char *)key64, key, sizeof key);
    /* Sec-WebSocket-Accept = base64(SHA-1(key + the RFC's GUID)) */
    char cat[96];
    unsigned char sha[SHA_DIGEST_LENGTH];
    int cl = snprintf(cat, sizeof cat, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key64);
    SHA1((unsigned char *)cat, (size_t)cl, sha);
    EVP_EncodeBlock((unsigned char *)c->accept, sha, sizeof sha);
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nOrigin: %s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: omnihub\r\n\r\n",
                     path, w->host, w->port, w->host, key64);
    c->fd = socket(w->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (c->fd >= 0) setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (c->fd < 0 ||
        (connect(c->fd, (struct sockaddr *)&w->addr, w->addrlen) && errno != EINPROGRESS)) {
        if (w->st.closed < 5) fprintf(stderr, "  ws connect error: %s\n", strerror(errno));
        client_close(c);
        return;
    }
    ev_io_init(&c->io, on_io, c->fd, EV_READ | EV_WRITE);
    c->io.data = c;
    ev_io_start(w->loop, &c->io);
    /* queued; goes out once the connection is up */
    c->tx = malloc((size_t)n);
    if (!c->tx) {
        client_close(c);
        return;
    }
    memcpy(c->tx, req, (size_t)n);
    c->tx_len = (size_t)n;
}

/* ---- the set ---- */

static void on_wake(struct ev_loop *loop, ev_async *a, int revents) {}
static void on_tick(struct ev_loop *loop, ev_timer *t, int revents) {}

struct bench_ws *bench_ws_new(char *err, size_t errlen)
{
    struct bench_ws *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (!w->loop) {
        snprintf(err, errlen, "ev_loop_new failed");
        free(w);
        return NULL;
    }
    ev_async_init(&w->wake, on_wake);
    ev_async_start(w->loop, &w->wake);
    /* a turn of the loop sleeps until its next event; the tick bounds it */
    ev_timer_init(&w->tick, on_tick, 0.02, 0.02);
    ev_timer_start(w->loop, &w->tick);
    return w;
}

void bench_ws_free(struct bench_ws *w)
{
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        struct client *c = &w->c[i];
        if (c->fd >= 0 && c->state != C_CLOSED) {
            ev_io_stop(w->loop, &c->io);
            close(c->fd);
        }
        free(c->rx);
        free(c->tx);
        free(c->msg);
    }
    ev_loop_destroy(w->loop);
    free(w->c);
    free(w->counts);
    free(w);
}

static void service(struct bench_ws *w)
{
    ev_run(w->loop, EVRUN_ONCE);
}

int bench_ws_connect(struct bench_ws *w, const struct bench_ws_spec *spec, int timeout_s)
{
    /* http://host:port -> host, port */
    const char *h = strstr(spec->base_url, "://");
    h = h ? h + 3 : spec->base_url;
    const char *colon = strrchr(h, ':');
    snprintf(w->host, sizeof w->host, "%.*s", (int)(colon ? colon - h : (long)strlen(h)), h);
    w->port = colon ? atoi(colon + 1) : 80;
    snprintf(w->path, sizeof w->path, "/v1/ws?access_token=%s", spec->token ? spec->token : "");
    w->presence = spec->presence;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", w->port);
    if (getaddrinfo(w->host, port, &hints, &ai) || !ai) {
        fprintf(stderr, "  ws: cannot resolve %s\n", w->host);
        return 0;
    }
    memcpy(&w->addr, ai->ai_addr, ai->ai_addrlen);
    w->addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    w->c = calloc((size_t)spec->n, sizeof *w->c);
    if (!w->c) return 0;
    w->n = spec->n;
    for (int i = 0; i < w->n; i++) {
        w->c[i].w = w;
        w->c[i].fd = -1;
        w->c[i].conv = spec->conv[i % spec->nconv];
        w->c[i].after = spec->after;
        if (spec->ntokens > 0) w->c[i].token = spec->tokens[i % spec->ntokens];
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

void bench_ws_on_event(struct bench_ws *w, bench_ws_event_fn fn, void *opaque)
{
    w->hook = fn;
    w->hook_opaque = opaque;
}

const unsigned *bench_ws_counts(struct bench_ws *w)
{
    return w->counts;
}

void bench_ws_reset_stats(struct bench_ws *w)
{
    memset(&w->st, 0, sizeof w->st);
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

const struct bench_hist *bench_ws_first(struct bench_ws *w)
{
    return &w->first;
}

uint64_t bench_ws_events(struct bench_ws *w)
{
    return __atomic_load_n(&w->st.events, __ATOMIC_RELAXED);
}

void bench_ws_wake(struct bench_ws *w)
{
    ev_async_send(w->loop, &w->wake);
}
