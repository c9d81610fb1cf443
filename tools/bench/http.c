/* http.c - the load driver: CONCURRENCY persistent connections on one epoll
 * loop, each reissuing as soon as its answer is in (or on a fixed schedule
 * when a rate is given), with per-request latency. It speaks HTTP/1.1 or,
 * for the Redis ceiling, RESP. Requests are formatted with memcpy into a
 * buffer each connection keeps, answers are read into another; after the
 * first requests nothing is allocated, so the client costs a few
 * microseconds per request and the figures are the server's, not its own
 * (libcurl's multi handle cost ~46-50 us per request, more than nginx). */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "bench.h"
#include "core/oh.h"

#define REQ_TIMEOUT_US (60 * 1000000LL)

struct conn {
    int fd;
    bool busy;
    size_t i;
    int64_t sent_us;
    char *out;
    size_t out_len, out_off, out_cap;
    char *in;
    size_t in_len, in_cap;
    bool close_after;
};

struct target {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char host[256];
    char prefix[512]; /* a path under the base URL ("" mostly) */
};

static int parse_target(const char *base, struct target *t)
{
    memset(t, 0, sizeof *t);
    const char *p = strncmp(base, "http://", 7) == 0 ? base + 7 : base;
    const char *slash = strchr(p, '/');
    size_t hl = slash ? (size_t)(slash - p) : strlen(p);
    if (hl == 0 || hl >= sizeof t->host) return -1;
    memcpy(t->host, p, hl);
    if (slash) snprintf(t->prefix, sizeof t->prefix, "%s", slash);
    size_t pl = strlen(t->prefix);
    if (pl && t->prefix[pl - 1] == '/') t->prefix[pl - 1] = '\0';
    char name[256], port[16] = "80";
    snprintf(name, sizeof name, "%s", t->host);
    char *colon = strrchr(name, ':');
    if (colon && !strchr(colon, ']')) {
        snprintf(port, sizeof port, "%s", colon + 1);
        *colon = '\0';
    }
    if (name[0] == '[') { /* [::1] */
        memmove(name, name + 1, strlen(name));
        char *e = strchr(name, ']');
        if (e) *e = '\0';
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(name, port, &hints, &ai) || !ai) return -1;
    memcpy(&t->addr, ai->ai_addr, ai->ai_addrlen);
    t->addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

static void put(struct conn *c, const char *s, size_t n)
{
    memcpy(c->out + c->out_len, s, n);
    c->out_len += n;
}

static void puts_(struct conn *c, const char *s)
{
    put(c, s, strlen(s));
}

/* Formats request Q into C's buffer: an HTTP/1.1 request, or for RESP an
 * XADD of the body to the stream named by the path. */
static int format(struct conn *c, const struct target *t, int proto,
                  const struct bench_http_req *q)
{
    size_t blen = q->body ? q->len : 0, hl = 0;
    for (int k = 0; k < 4 && q->hdr[k]; k++)
        hl += strlen(q->hdr[k]) + 2;
    size_t need = blen + hl + strlen(q->path) + strlen(t->prefix) + strlen(t->host) + 160;
    if (oh_grow(&c->out, &c->out_cap, need, 1, 1024)) return -1;
    c->out_len = c->out_off = 0;
    char num[24];
    if (proto == BENCH_PROTO_RESP) {
        size_t kl = strlen(q->path);
        puts_(c, "*5\r\n$4\r\nXADD\r\n$");
        put(c, num, (size_t)snprintf(num, sizeof num, "%zu\r\n", kl));
        put(c, q->path, kl);
        puts_(c, "\r\n$1\r\n*\r\n$7\r\npayload\r\n$");
        put(c, num, (size_t)snprintf(num, sizeof num, "%zu\r\n", blen));
        if (blen) put(c, q->body, blen);
        puts_(c, "\r\n");
        return 0;
    }
    puts_(c, q->body ? "POST " : "GET ");
    puts_(c, t->prefix);
    puts_(c, q->path);
    puts_(c, " HTTP/1.1\r\nHost: ");
    puts_(c, t->host);
    puts_(c, "\r\n");
    if (q->body) {
        puts_(c, "Content-Type: application/json\r\nContent-Length: ");
        put(c, num, (size_t)snprintf(num, sizeof num, "%zu\r\n", blen));
    }
    for (int k = 0; k < 4 && q->hdr[k]; k++) {
        puts_(c, q->hdr[k]);
        puts_(c, "\r\n");
    }
    puts_(c, "\r\n");
    if (blen) put(c, q->body, blen);
    return 0;
}

/* An answer complete in C->in? 1 with *STATUS, the body and the bytes it
 * took; 0 for more; -1 malformed. Chunked bodies are decoded in place. */
static int parse_http(struct conn *c, long *status, char **body, size_t *blen, size_t *used)
{
    char *in = c->in;
    in[c->in_len] = '\0';
    char *he = strstr(in, "\r\n\r\n");
    if (!he) return c->in_len > (1 << 20) ? -1 : 0;
    if (strncmp(in, "HTTP/1.", 7) != 0 || c->in_len < 12) return -1;
    *status = strtol(in + 9, NULL, 10);
    long clen = -1;
    bool chunked = false;
    c->close_after = in[7] == '0';
    for (char *l = strstr(in, "\r\n") + 2; l < he; l = strstr(l, "\r\n") + 2) {
        if (strncasecmp(l, "Content-Length:", 15) == 0)
            clen = strtol(l + 15, NULL, 10);
        else if (strncasecmp(l, "Transfer-Encoding:", 18) == 0)
            chunked = strstr(l, "chunked") && strstr(l, "chunked") < strstr(l, "\r\n");
        else if (strncasecmp(l, "Connection:", 11) == 0) {
            const char *v = l + 11;
            while (*v == ' ')
                v++;
            if (strncasecmp(v, "close", 5) == 0) c->close_after = true;
        }
    }
    char *b = he + 4;
    size_t avail = c->in_len - (size_t)(b - in);
    if (*status == 204 || *status == 304 || (*status >= 100 && *status < 200)) clen = 0;
    if (!chunked) {
        if (clen < 0) { /* until the connection closes: the caller sees EOF */
            c->close_after = true;
            return 0;
        }
        if (avail < (size_t)clen) return 0;
        *body = b;
        *blen = (size_t)clen;
        *used = (size_t)(b - in) + (size_t)clen;
        return 1;
    }
    /* chunked: walk the sizes first, decode only once it is all here */
    size_t off = 0;
    for (;;) {
        char *nl = strstr(b + off, "\r\n");
        if (!nl) return 0;
        char *end;
        unsigned long sz = strtoul(b + off, &end, 16);
        if (end == b + off) return -1;
        size_t data = (size_t)(nl + 2 - b);
        if (sz == 0) {
            if (avail < data + 2) return 0;
            *used = (size_t)(b - in) + data + 2;
            break;
        }
        if (avail < data + sz + 2) return 0;
        off = data + sz + 2;
    }
    size_t w = 0, r = 0;
    for (;;) {
        char *end;
        unsigned long sz = strtoul(b + r, &end, 16);
        r = (size_t)(strstr(b + r, "\r\n") + 2 - b);
        if (sz == 0) break;
        memmove(b + w, b + r, sz);
        w += sz;
        r += sz + 2;
    }
    *body = b;
    *blen = w;
    return 1;
}

static int parse_resp(struct conn *c, long *status, char **body, size_t *blen, size_t *used)
{
    char *in = c->in;
    in[c->in_len] = '\0';
    char *nl = strstr(in, "\r\n");
    if (!nl) return 0;
    switch (in[0]) {
    case '+':
    case ':':
    case '-':
        *status = in[0] == '-' ? 500 : 200;
        *body = in + 1;
        *blen = (size_t)(nl - in - 1);
        *used = (size_t)(nl + 2 - in);
        return 1;
    case '$': {
        long n = strtol(in + 1, NULL, 10);
        size_t hdr = (size_t)(nl + 2 - in);
        if (n < 0) {
            *status = 200;
            *body = nl;
            *blen = 0;
            *used = hdr;
            return 1;
        }
        if (c->in_len < hdr + (size_t)n + 2) return 0;
        *status = 200;
        *body = in + hdr;
        *blen = (size_t)n;
        *used = hdr + (size_t)n + 2;
        return 1;
    }
    default: return -1; /* arrays: the bench sends no command answering one */
    }
}

static void drop(int ep, struct conn *c)
{
    if (c->fd < 0) return;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->in_len = 0;
    c->close_after = false;
}

static int dial(int ep, const struct target *t, struct conn *c)
{
    int fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* a blocking connect (loopback: immediate), then non-blocking I/O */
    if (connect(fd, (const struct sockaddr *)&t->addr, t->addrlen) ||
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)) {
        close(fd);
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev)) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    return 0;
}

/* Sends what is left of C's request; EPOLLOUT only while it does not fit. */
static int flush(int ep, struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w > 0) {
            c->out_off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            return 0;
        }
        return -1;
    }
    return 0;
}

struct loop {
    struct bench_http_run *r;
    struct target t;
    int ep;
    size_t done;
};

static void finish(struct loop *l, struct conn *c, long status, const char *body, size_t blen)
{
    struct bench_http_run *r = l->r;
    int64_t lat = bench_now_us() - c->sent_us;
    c->busy = false;
    l->done++;
    if (status >= 200 && status < 300) {
        r->ok++;
        bench_hist_record(&r->lat, lat);
    } else {
        r->failed++;
    }
    if (r->done) r->done(r->opaque, c->i, status, body ? body : "", blen, c->sent_us, lat);
}

static void issue(struct loop *l, struct conn *c, size_t i)
{
    struct bench_http_run *r = l->r;
    struct bench_http_req q = {0};
    r->gen(r->opaque, i, &q);
    c->i = i;
    c->busy = true;
    c->sent_us = bench_now_us();
    if (format(c, &l->t, r->proto, &q) || (c->fd < 0 && dial(l->ep, &l->t, c)) ||
        flush(l->ep, c)) {
        drop(l->ep, c);
        finish(l, c, 0, NULL, 0);
    }
}

/* Reads what C's socket has; completes its request when the answer is in. */
static void on_readable(struct loop *l, struct conn *c)
{
    for (;;) {
        if (oh_grow(&c->in, &c->in_cap, c->in_len + 16384 + 1, 1, 1024)) {
            drop(l->ep, c);
            if (c->busy) finish(l, c, 0, NULL, 0);
            return;
        }
        size_t space = c->in_cap - c->in_len - 1;
        ssize_t n = recv(c->fd, c->in + c->in_len, space, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
            if ((size_t)n < space) break; /* drained */
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        /* closed: an answer delimited by the close completes here */
        if (c->busy && c->close_after && c->in_len) {
            c->in[c->in_len] = '\0';
            char *he = strstr(c->in, "\r\n\r\n");
            long st = he ? strtol(c->in + 9, NULL, 10) : 0;
            char *b = he ? he + 4 : NULL;
            size_t bl = he ? c->in_len - (size_t)(b - c->in) : 0;
            finish(l, c, st, b, bl);
            drop(l->ep, c);
            return;
        }
        drop(l->ep, c);
        if (c->busy) finish(l, c, 0, NULL, 0);
        return;
    }
    if (!c->busy) { /* nothing asked: a stray byte is a protocol error */
        drop(l->ep, c);
        return;
    }
    long status = 0;
    char *body = NULL;
    size_t blen = 0, used = 0;
    int rc = l->r->proto == BENCH_PROTO_RESP ? parse_resp(c, &status, &body, &blen, &used)
                                             : parse_http(c, &status, &body, &blen, &used);
    if (rc == 0) return;
    if (rc < 0) {
        drop(l->ep, c);
        finish(l, c, 0, NULL, 0);
        return;
    }
    bool close_after = c->close_after;
    finish(l, c, status, body, blen);
    if (close_after || used != c->in_len) /* a close, or bytes nobody asked for */
        drop(l->ep, c);
    else
        c->in_len = 0;
}

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int bench_http_load(struct bench_http_run *r)
{
    struct loop l = {.r = r, .ep = -1};
    if (parse_target(r->base_url, &l.t)) return -1;
    l.ep = epoll_create1(EPOLL_CLOEXEC);
    if (l.ep < 0) return -1;
    int nc = r->concurrency > 0 ? r->concurrency : 1;
    struct conn *conns = calloc((size_t)nc, sizeof *conns);
    struct epoll_event *evs = calloc((size_t)nc, sizeof *evs);
    if (!conns || !evs) {
        free(conns);
        free(evs);
        close(l.ep);
        return -1;
    }
    for (int k = 0; k < nc; k++)
        conns[k].fd = -1;
    bench_hist_reset(&r->lat);
    r->ok = r->failed = 0;
    size_t next = 0;
    double cpu0 = thread_cpu_s();
    int64_t t0 = bench_now_us(), last_sweep = t0;
    while (l.done < next || (next < r->n && !(r->stop && *r->stop))) {
        /* hand out free connections: at once, or when the schedule says so */
        int64_t now = bench_now_us();
        for (int k = 0; k < nc && next < r->n && !(r->stop && *r->stop); k++) {
            if (conns[k].busy) continue;
            if (r->rate > 0 && now < t0 + (int64_t)((double)next * 1e6 / r->rate)) break;
            issue(&l, &conns[k], next++);
        }
        int wait_ms = 50;
        if (r->rate > 0 && next < r->n) {
            int64_t due = t0 + (int64_t)((double)next * 1e6 / r->rate) - bench_now_us();
            /* rounded up: a 0 ms wait until the next send time would spin */
            wait_ms = due <= 0 ? 0 : (int)((due + 999) / 1000);
            if (wait_ms > 50) wait_ms = 50;
        }
        if (l.done == next && next < r->n && r->rate <= 0) wait_ms = 0;
        int n = epoll_wait(l.ep, evs, nc, wait_ms);
        for (int k = 0; k < n; k++) {
            struct conn *c = evs[k].data.ptr;
            if (c->fd < 0) continue;
            if (evs[k].events & EPOLLOUT) {
                if (flush(l.ep, c)) {
                    drop(l.ep, c);
                    if (c->busy) finish(&l, c, 0, NULL, 0);
                    continue;
                }
                if (c->out_off == c->out_len) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(l.ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
            if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(&l, c);
        }
        now = bench_now_us();
        if (now - last_sweep > 1000000) { /* answers overdue: failed */
            last_sweep = now;
            for (int k = 0; k < nc; k++)
                if (conns[k].busy && now - conns[k].sent_us > REQ_TIMEOUT_US) {
                    drop(l.ep, &conns[k]);
                    finish(&l, &conns[k], 0, NULL, 0);
                }
        }
    }
    r->elapsed_s = (double)(bench_now_us() - t0) / 1e6;
    r->client_cpu_s = thread_cpu_s() - cpu0;
    for (int k = 0; k < nc; k++) {
        if (conns[k].fd >= 0) close(conns[k].fd);
        free(conns[k].out);
        free(conns[k].in);
    }
    free(conns);
    free(evs);
    close(l.ep);
    return 0;
}

/* The blocking one-off requests below (libcurl): not timed. */
struct sink {
    char *buf;
    size_t len, cap;
};

static size_t on_get(char *p, size_t sz, size_t nm, void *opaque)
{
    struct sink *s = opaque;
    size_t n = sz * nm;
    if (oh_grow(&s->buf, &s->cap, s->len + n + 1, 1, 1024)) return 0;
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    s->buf[s->len] = '\0';
    return n;
}

long bench_http_get(const char *url, const char *bearer, char **body)
{
    CURL *e = curl_easy_init();
    if (!e) return 0;
    struct sink s = {0};
    struct curl_slist *h = NULL;
    char auth[1024];
    if (bearer) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", bearer);
        h = curl_slist_append(h, auth);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_get);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    long status = 0;
    if (curl_easy_perform(e) == CURLE_OK) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    if (body)
        *body = s.buf;
    else
        free(s.buf);
    return status;
}

long bench_http_post(const char *url, const char *header, const char *body, char **answer)
{
    CURL *e = curl_easy_init();
    if (!e) return 0;
    struct sink s = {0};
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (header) h = curl_slist_append(h, header);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_get);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    long status = 0;
    if (curl_easy_perform(e) == CURLE_OK) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    if (answer)
        *answer = s.buf;
    else
        free(s.buf);
    return status;
}
