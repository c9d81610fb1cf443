/* conn.c - connections: N idle WebSocket connections (100,000 by default)
 * held by one omnihubd, then pushes at a fixed message rate to
 * conversations whose subscribers are among them. Time to accept and
 * subscribe all N, the daemon's RSS per idle connection, push latency, and
 * every push delivered to each subscriber exactly once.
 *
 * The client is built for the count, not for features (ws.c is the full
 * one): one epoll loop, non-blocking sockets, 16 bytes of state per
 * connection, one precomputed handshake (every connection sends the same
 * bytes: one agent token, one Sec-WebSocket-Key, so one expected
 * Sec-WebSocket-Accept), a shared receive buffer (a connection holds bytes
 * of its own only while a frame is split across reads). One source address
 * has ~28,000 ephemeral ports towards the daemon's address, so connection i
 * binds 127.0.0.(2 + i % S) first (IP_BIND_ADDRESS_NO_PORT: the port is
 * picked at connect time per 4-tuple). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include "bench.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum { K_CONNECTING = 1, K_HANDSHAKE, K_SUBSCRIBING, K_SUBSCRIBED, K_CLOSED };

#define WS_KEY    "b21uaWh1Yi1iZW5jaC1rZXk=" /* base64("omnihub-bench-key"), 16 bytes */
#define PART_MAX  (1u << 20)                 /* a frame split across reads, at most */
#define IN_FLIGHT 256                        /* handshakes at once: the listen backlog */
#define RBUF      (PART_MAX + (256u << 10))  /* room for a part in front of a read */

struct kconn {
    int fd;
    uint8_t state; /* its conversation is i % nconv */
    uint8_t *part; /* [4-byte length][bytes]: the unfinished frame or header */
};

struct kset {
    int ep, n, nconv, nsrc;
    struct kconn *c;
    struct sockaddr_in dst;
    char *req; /* the handshake request, the same for all */
    size_t req_len;
    char accept[32];
    char **sub; /* the subscribe frame of each conversation (masked, mask 0) */
    size_t *sub_len;
    int next, connecting, subscribed, closed, errors, refused;
    unsigned char *rbuf;
    /* pushes */
    const char *prefix;
    size_t nmsg;
    unsigned *counts;
    struct bench_hist push;
    uint64_t live, events;
};

static void k_close(struct kset *s, int i)
{
    struct kconn *c = &s->c[i];
    if (c->state == K_CLOSED) return;
    if (c->state == K_CONNECTING || c->state == K_HANDSHAKE) s->connecting--;
    c->state = K_CLOSED;
    s->closed++;
    if (c->fd >= 0) close(c->fd); /* close() takes it out of the epoll set */
    c->fd = -1;
    free(c->part);
    c->part = NULL;
}

/* The whole of BUF to the socket: these are small writes on an idle socket
 * (handshake, subscribe, pong), so a short write is an error. */
static int k_send(struct kconn *c, const void *buf, size_t len)
{
    ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
    return n == (ssize_t)len ? 0 : -1;
}

static void k_connect(struct kset *s, int i)
{
    struct kconn *c = &s->c[i];
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    c->state = K_CONNECTING;
    s->connecting++;
    if (c->fd < 0) {
        if (s->closed < 3) fprintf(stderr, "  connections: socket: %s\n", strerror(errno));
        k_close(s, i);
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(i % s->nsrc))};
    struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
    if (bind(c->fd, (struct sockaddr *)&src, sizeof src) ||
        (connect(c->fd, (struct sockaddr *)&s->dst, sizeof s->dst) && errno != EINPROGRESS) ||
        epoll_ctl(s->ep, EPOLL_CTL_ADD, c->fd, &ev)) {
        if (s->closed < 3) fprintf(stderr, "  connections: connect: %s\n", strerror(errno));
        k_close(s, i);
    }
}

static void on_push(struct kset *s, const char *p, size_t len, int64_t now)
{
    s->events++;
    static const char tkey[] = "\"text\":\"t=", mkey[] = "\"message_id\":\"";
    const char *t = memmem(p, len, tkey, sizeof tkey - 1);
    if (t) {
        bench_hist_record(&s->push, now - strtoll(t + sizeof tkey - 1, NULL, 10));
        s->live++;
    }
    const char *m = s->prefix ? memmem(p, len, mkey, sizeof mkey - 1) : NULL;
    if (!m) return;
    m += sizeof mkey - 1;
    size_t plen = strlen(s->prefix);
    const char *end = p + len;
    if ((size_t)(end - m) <= plen || memcmp(m, s->prefix, plen) != 0) return;
    size_t idx = 0;
    const char *d = m + plen;
    if (d >= end || *d < '0' || *d > '9') return;
    for (; d < end && *d >= '0' && *d <= '9'; d++)
        idx = idx * 10 + (size_t)(*d - '0');
    if (idx < s->nmsg) s->counts[idx]++;
}

static int on_text(struct kset *s, struct kconn *c, const char *p, size_t len)
{
    static const char ev[] = "{\"type\":\"event\"";
    if (len >= sizeof ev - 1 && memcmp(p, ev, sizeof ev - 1) == 0) {
        on_push(s, p, len, bench_now_us());
        return 0;
    }
    size_t head = len < 48 ? len : 48;
    if (memmem(p, head, "\"type\":\"subscribed\"", 19)) {
        if (c->state == K_SUBSCRIBING) {
            c->state = K_SUBSCRIBED;
            s->subscribed++;
        }
        return 0;
    }
    if (memmem(p, head, "\"type\":\"error\"", 14)) {
        if (s->errors++ < 5) fprintf(stderr, "  connections: ws error: %.*s\n", (int)len, p);
        if (c->state == K_SUBSCRIBING) return -1; /* refused: it would never be subscribed */
    }
    return 0;
}

/* Complete frames of BUF; the unfinished rest is returned in *USED. -1 closes. */
static int k_frames(struct kset *s, struct kconn *c, const unsigned char *buf, size_t len,
                    size_t *used)
{
    size_t pos = 0;
    for (;;) {
        const unsigned char *f = buf + pos;
        size_t avail = len - pos, h = 2;
        if (avail < 2) break;
        if (f[1] & 0x80 || f[0] & 0x70) return -1; /* masked by the server, or reserved bits */
        uint64_t n = f[1] & 0x7f;
        if (n == 126) {
            if (avail < 4) break;
            n = (uint64_t)f[2] << 8 | f[3];
            h = 4;
        } else if (n == 127) {
            if (avail < 10) break;
            n = 0;
            for (int i = 0; i < 8; i++)
                n = n << 8 | f[2 + i];
            h = 10;
        }
        if (n > PART_MAX) return -1;
        if (avail < h + n) break;
        int op = f[0] & 0x0f;
        const char *p = (const char *)f + h;
        pos += h + n;
        if (!(f[0] & 0x80) || op == 0x0) return -1; /* the daemon does not fragment */
        if (op == 0x1) {
            if (on_text(s, c, p, n)) return -1;
        } else if (op == 0x9) { /* pong with the same payload, masked with 0 */
            unsigned char pong[2 + 4 + 125];
            if (n > 125) return -1;
            pong[0] = 0x8A;
            pong[1] = (unsigned char)(0x80 | n);
            memset(pong + 2, 0, 4);
            memcpy(pong + 6, p, n);
            if (k_send(c, pong, 6 + n)) return -1;
        } else if (op == 0x8) {
            if (s->errors++ < 5)
                fprintf(stderr, "  connections: closed by the daemon: %.*s\n",
                        n > 2 ? (int)n - 2 : 0, p + 2);
            return -1;
        } else if (op != 0xA) {
            return -1;
        }
    }
    *used = pos;
    return 0;
}

/* The 101 at the start of BUF: its length, 0 when incomplete, -1 refused. */
static long k_handshake(struct kset *s, const unsigned char *buf, size_t len)
{
    const unsigned char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end) return len > 16384 ? -1 : 0;
    size_t hlen = (size_t)(end + 4 - buf);
    if (len < 12 || memcmp(buf, "HTTP/1.1 101", 12) != 0 ||
        !memmem(buf, hlen, s->accept, strlen(s->accept))) {
        if (s->refused++ < 3)
            fprintf(stderr, "  connections: refused: %.*s\n", (int)strcspn((const char *)buf, "\r"),
                    buf);
        return -1;
    }
    return (long)hlen;
}

static void k_read(struct kset *s, int i)
{
    struct kconn *c = &s->c[i];
    uint32_t have = 0;
    ssize_t n = recv(c->fd, s->rbuf + PART_MAX, RBUF - PART_MAX, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) { /* the daemon closed it, or an error */
        k_close(s, i);
        return;
    }
    if (c->part) { /* the unfinished frame goes in front */
        memcpy(&have, c->part, 4);
        memcpy(s->rbuf + PART_MAX - have, c->part + 4, have);
        free(c->part);
        c->part = NULL;
    }
    unsigned char *buf = s->rbuf + PART_MAX - have;
    size_t len = have + (size_t)n, pos = 0;
    if (c->state == K_HANDSHAKE) {
        long h = k_handshake(s, buf, len);
        if (h < 0) {
            k_close(s, i);
            return;
        }
        if (h > 0) {
            pos = (size_t)h;
            unsigned conv = (unsigned)i % (unsigned)s->nconv;
            if (k_send(c, s->sub[conv], s->sub_len[conv])) {
                k_close(s, i);
                return;
            }
            c->state = K_SUBSCRIBING;
            s->connecting--;
        }
    }
    size_t used = 0;
    if (c->state >= K_SUBSCRIBING && k_frames(s, c, buf + pos, len - pos, &used)) {
        k_close(s, i);
        return;
    }
    pos += used;
    if (pos < len) {
        if (len - pos > PART_MAX || !(c->part = malloc(4 + len - pos))) {
            k_close(s, i);
            return;
        }
        uint32_t rest = (uint32_t)(len - pos);
        memcpy(c->part, &rest, 4);
        memcpy(c->part + 4, buf + pos, rest);
    }
}

static void k_event(struct kset *s, int i, uint32_t events)
{
    struct kconn *c = &s->c[i];
    if (c->state == K_CLOSED) return;
    if (c->state == K_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (err || k_send(c, s->req, s->req_len) || epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &ev)) {
            if (err && s->closed < 3)
                fprintf(stderr, "  connections: connect: %s\n", strerror(err));
            k_close(s, i);
            return;
        }
        c->state = K_HANDSHAKE;
        return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) k_read(s, i);
}

/* One turn: up to TIMEOUT_MS waiting. */
static void k_poll(struct kset *s, int timeout_ms)
{
    struct epoll_event evs[1024];
    int n = epoll_wait(s->ep, evs, 1024, timeout_ms);
    for (int k = 0; k < n; k++)
        k_event(s, (int)evs[k].data.u32, evs[k].events);
}

static int k_init(struct kset *s, const char *url, const char *token, const char *const *convs,
                  int nconv, int n, int nsrc)
{
    memset(s, 0, sizeof *s);
    const char *h = strstr(url, "://");
    h = h ? h + 3 : url;
    const char *colon = strrchr(h, ':');
    char host[64];
    snprintf(host, sizeof host, "%.*s", (int)(colon ? colon - h : (long)strlen(h)), h);
    int port = colon ? atoi(colon + 1) : 80;
    s->dst.sin_family = AF_INET;
    s->dst.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &s->dst.sin_addr) != 1) {
        fprintf(stderr, "  connections: %s is not an IPv4 address\n", host);
        return -1;
    }
    /* Sec-WebSocket-Accept = base64(SHA-1(key + the RFC's GUID)) */
    unsigned char sha[SHA_DIGEST_LENGTH];
    static const char cat[] = WS_KEY "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    SHA1((const unsigned char *)cat, sizeof cat - 1, sha);
    EVP_EncodeBlock((unsigned char *)s->accept, sha, sizeof sha);
    int rl = asprintf(&s->req,
                      "GET /v1/ws?access_token=%s HTTP/1.1\r\nHost: %s:%d\r\nOrigin: http://%s\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " WS_KEY
                      "\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: omnihub\r\n\r\n",
                      token, host, port, host);
    if (rl < 0) return -1;
    s->req_len = (size_t)rl;
    s->nconv = nconv;
    s->sub = calloc((size_t)nconv, sizeof *s->sub);
    s->sub_len = calloc((size_t)nconv, sizeof *s->sub_len);
    if (!s->sub || !s->sub_len) return -1;
    for (int k = 0; k < nconv; k++) {
        char msg[256];
        int ml = snprintf(msg, sizeof msg,
                          "{\"type\":\"subscribe\",\"conversation\":\"%s\",\"after\":0}", convs[k]);
        if (ml < 0 || ml >= 126) return -1;
        /* a masked client frame with mask 0: the payload as is */
        s->sub[k] = malloc((size_t)ml + 6);
        if (!s->sub[k]) return -1;
        s->sub[k][0] = (char)0x81;
        s->sub[k][1] = (char)(0x80 | ml);
        memset(s->sub[k] + 2, 0, 4);
        memcpy(s->sub[k] + 6, msg, (size_t)ml);
        s->sub_len[k] = (size_t)ml + 6;
    }
    s->n = n;
    s->nsrc = nsrc;
    s->c = calloc((size_t)n, sizeof *s->c);
    s->rbuf = malloc(RBUF);
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    if (!s->c || !s->rbuf || s->ep < 0) return -1;
    for (int i = 0; i < n; i++)
        s->c[i].fd = -1;
    return 0;
}

static void k_free(struct kset *s)
{
    for (int i = 0; s->c && i < s->n; i++)
        if (s->c[i].state != K_CLOSED && s->c[i].fd >= 0) {
            close(s->c[i].fd);
            free(s->c[i].part);
        }
    for (int k = 0; s->sub && k < s->nconv; k++)
        free(s->sub[k]);
    free(s->sub);
    free(s->sub_len);
    free(s->c);
    free(s->rbuf);
    free(s->req);
    free(s->counts);
    if (s->ep >= 0) close(s->ep);
}

/* Connects and subscribes every connection; returns when all are
 * subscribed or dead, or after TIMEOUT_S. */
static void k_connect_all(struct kset *s, int timeout_s)
{
    int64_t deadline = bench_now_us() + (int64_t)timeout_s * 1000000;
    while (s->subscribed + s->closed < s->n && bench_now_us() < deadline) {
        while (s->next < s->n && s->connecting < IN_FLIGHT)
            k_connect(s, s->next++);
        k_poll(s, 20);
    }
}

/* ---- the scenario ---- */

/* Descriptors for N connections plus the daemon's own, in this process and
 * (inherited) the daemon: raised as far as root may. */
static int k_nofile(int n)
{
    rlim_t need = (rlim_t)n + 512; /* HTTP feeders, the store, listeners */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl)) return -1;
    if (rl.rlim_cur >= need) return 0;
    if (rl.rlim_max < need) rl.rlim_max = need;
    rl.rlim_cur = need;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0) return 0;
    getrlimit(RLIMIT_NOFILE, &rl);
    fprintf(stderr,
            "omnihub-bench: %d connections need %llu descriptors in the bench and in omnihubd; "
            "the limit is %llu (hard %llu). As root: `ulimit -n %llu` (or `prlimit --pid $$ "
            "--nofile=%llu:%llu`), and `sysctl fs.nr_open=%llu` if that refuses.\n",
            n, (unsigned long long)need, (unsigned long long)rl.rlim_cur,
            (unsigned long long)rl.rlim_max, (unsigned long long)need, (unsigned long long)need,
            (unsigned long long)need, (unsigned long long)need);
    return -1;
}

struct kfeeder {
    struct bench_http_run run;
    volatile int done;
};

static void *kfeed_thread(void *opaque)
{
    struct kfeeder *f = opaque;
    bench_http_load(&f->run);
    __atomic_store_n(&f->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

int bench_connections(const struct bench_opts *o)
{
    int n = o->connections > 0 ? o->connections : 100000;
    int nconv = o->conversations > 0 ? (int)o->conversations : (n < 10000 ? n : 10000);
    if (nconv > n) nconv = n;
    int nsrc = o->sources > 0 ? o->sources : (n + 19999) / 20000;
    if (nsrc > 250) nsrc = 250;
    size_t nmsg = (size_t)o->rate * (size_t)o->seconds;
    if (k_nofile(n)) return 1;
    char err[512];
    struct bench_daemon d;
    /* the gateway and the push path (sync materializes) only: the desk's
     * roles (router, SLA clocks, triage, KPIs) run elsewhere in a
     * scaled-out deployment, and their work grows with the open
     * conversations (every one here is new and unassigned), not with the
     * connections */
    static const char *const kv[] = {"role", "gateway,sync", NULL};
    if (o->url ? bench_daemon_attach(&d, o)
               : bench_daemon_start(&d, o, kv, NULL, err, sizeof err)) {
        fprintf(stderr, "omnihub-bench: omnihubd: %s\n", err);
        return 1;
    }
    int rc = 1;
    struct kset s = {.ep = -1};
    struct bench_feed warm = {0}, live = {0};
    char *tok = NULL;
    /* the conversations exist: one message each */
    const char *const *convs = bench_feed_warm(&warm, d.url, nconv, 120);
    if (!convs) goto out;
    tok = bench_agent_token();
    if (!tok || k_init(&s, d.url, tok, convs, nconv, n, nsrc)) {
        fprintf(stderr, "omnihub-bench: connections: out of memory\n");
        goto out;
    }
    struct bench_proc before = {0}, idle = {0}, p0 = {0}, p1 = {0}, pe = {0};
    if (d.pid) bench_proc_read(d.pid, &before);
    int64_t t0 = bench_now_us();
    k_connect_all(&s, 300);
    double connect_s = (double)(bench_now_us() - t0) / 1e6;
    int64_t settle = bench_now_us() + 2000000;
    while (bench_now_us() < settle) /* the replays of the first load drain */
        k_poll(&s, 50);
    if (d.pid) bench_proc_read(d.pid, &idle);
    double per_kib =
        s.subscribed > 0 && d.pid ? (double)(idle.rss_kb - before.rss_kb) / s.subscribed : -1;
    fprintf(stderr,
            "  connections: %d/%d subscribed over %d source address(es) in %.1f s (%.0f/s); "
            "daemon RSS %ld -> %ld KiB: %.2f KiB per idle connection\n",
            s.subscribed, n, nsrc, connect_s, s.subscribed / (connect_s > 0 ? connect_s : 1),
            before.rss_kb, idle.rss_kb, per_kib);

    /* pushes: message i goes to conversation i % nconv, whose subscribers
     * are connections i % nconv + k * nconv */
    if (bench_feed_init(&live, "api", nmsg, nconv, true)) goto out;
    memcpy(live.account, warm.account, sizeof live.account);
    s.prefix = live.prefix;
    s.nmsg = nmsg;
    s.counts = calloc(nmsg ? nmsg : 1, sizeof *s.counts);
    if (!s.counts) goto out;
    bench_hist_reset(&s.push);
    s.live = s.events = 0;
    struct kfeeder fd = {.run = {.base_url = d.url,
                                 .n = nmsg,
                                 .concurrency = o->concurrency > 64 ? o->concurrency : 64,
                                 .rate = o->rate,
                                 .gen = bench_feed_gen,
                                 .done = bench_feed_done,
                                 .opaque = &live}};
    if (d.pid) bench_proc_read(d.pid, &p0);
    pthread_t th;
    pthread_create(&th, NULL, kfeed_thread, &fd);
    while (!__atomic_load_n(&fd.done, __ATOMIC_ACQUIRE))
        k_poll(&s, 20);
    pthread_join(th, NULL);
    if (d.pid) bench_proc_read(d.pid, &p1);
    uint64_t want = 0;
    for (size_t i = 0; i < nmsg; i++)
        if (live.acked[i]) {
            size_t k = i % (size_t)nconv;
            want += (size_t)(n / nconv) + (k < (size_t)(n % nconv));
        }
    int64_t drain_end = bench_now_us() + 15 * 1000000LL;
    while (s.live < want && bench_now_us() < drain_end)
        k_poll(&s, 50);
    long missing = 0, dups = 0, short_msgs = 0;
    for (size_t i = 0; i < nmsg; i++) {
        size_t k = i % (size_t)nconv;
        long subs = n / nconv + (k < (size_t)(n % nconv)), got = (long)s.counts[i];
        if (live.acked[i] && got < subs) {
            missing += subs - got;
            short_msgs++;
        }
        if (got > subs) dups += got - subs;
    }
    if (d.pid) bench_proc_read(d.pid, &pe);
    double p99 = (double)bench_hist_pct(&s.push, 99) / 1000.0;
    double per_s = fd.run.elapsed_s > 0 ? (double)fd.run.ok / fd.run.elapsed_s : 0;
    fprintf(stderr,
            "  connections: %zu acknowledged (%.0f/s), %llu pushes (%.1f per message), %ld "
            "missing, %ld duplicated, %d closed; push p50 %.2f ms p99 %.2f ms\n",
            fd.run.ok, per_s, (unsigned long long)s.live, (double)n / nconv, missing, dups,
            s.closed, (double)bench_hist_pct(&s.push, 50) / 1000.0, p99);
    bool all_up = s.subscribed == n && s.closed == 0;
    char variant[64];
    snprintf(variant, sizeof variant, "%d conns", n);
    struct bench_row row = {.scenario = "connections",
                            .variant = variant,
                            .unit = "msg/s",
                            .rate = per_s,
                            .lat = &s.push,
                            .ceiling_rate = -1,
                            .ratio = -1,
                            .target = "push p99 <= 50 ms, <= 8 KiB/conn",
                            .pass = d.pid ? (p99 <= 50 && per_kib <= 8 && all_up) : -1,
                            .cpu_s = d.pid ? p1.cpu_s - p0.cpu_s : -1,
                            .hwm_kb = d.pid ? pe.hwm_kb : -1,
                            /* acknowledged, and pushed to each of its subscribers */
                            .acked = (long)fd.run.ok,
                            .found = (long)fd.run.ok - short_msgs,
                            .dups = dups};
    json_t *extra =
        json_pack("{s:i, s:i, s:i, s:i, s:f, s:o, s:I, s:I, s:I, s:I, s:i, s:i, s:i, s:f}",
                  "connections", n, "connections_subscribed", s.subscribed, "source_addresses",
                  nsrc, "conversations", nconv, "connect_s", connect_s,
                  "rss_per_idle_connection_kib", per_kib < 0 ? json_null() : json_real(per_kib),
                  "daemon_rss_before_kib", (json_int_t)before.rss_kb, "daemon_rss_idle_kib",
                  (json_int_t)idle.rss_kb, "pushes", (json_int_t)s.live, "push_missing",
                  (json_int_t)missing, "push_duplicates", (int)dups, "connections_closed", s.closed,
                  "ws_errors", s.errors + s.refused, "offered_rate", (double)o->rate);
    json_object_set_new(extra, "ack_latency", bench_hist_json(&fd.run.lat));
    bench_report_row(&row, extra);
    rc = all_up && !missing && !dups && fd.run.ok == nmsg ? 0 : 1;
out:
    k_free(&s);
    free(tok);
    if (warm.n) bench_feed_free(&warm);
    if (live.n) bench_feed_free(&live);
    bench_daemon_stop(&d);
    return rc;
}
