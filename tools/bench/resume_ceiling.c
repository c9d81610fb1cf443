/* resume_ceiling.c - the resume scenario's ceiling: a minimal WebSocket
 * server on loopback that answers a subscribe with the conversation's rows
 * read straight from the daemon's store (SQLite or PostgreSQL), each framed
 * as the daemon frames an event and sent in 64 KiB writes; the bench's own
 * WebSocket client reads them as it reads the daemon's. */
#include "oh_build_config.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "bench.h"
#ifdef OH_HAVE_POSTGRES
#include <libpq-fe.h>
#endif

#define SLICE 65536 /* bytes per send(), as the daemon's writes */

static const char read_sql[] = "SELECT seq, json FROM history WHERE conversation_id = %c1 "
                               "AND seq > %c2 ORDER BY seq LIMIT %c3";

struct bench_resume_ceiling {
    int lfd;
    pthread_t thread;
    bool started;
    const char *conv; /* borrowed */
    int k;
    sqlite3 *db;
    sqlite3_stmt *st;
#ifdef OH_HAVE_POSTGRES
    PGconn *pg;
#endif
    unsigned char *out; /* the frames not sent yet */
    size_t out_len, out_cap;
    int fd; /* the connection being served */
    bool failed;
    int served, refused;
};

static int send_all(int fd, const unsigned char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Appends one unmasked text frame of A then B then Z to the output; sends
 * the output once it holds a slice. */
static int put_frame(struct bench_resume_ceiling *c, const char *a, size_t alen, const char *b,
                     size_t blen, const char *z, size_t zlen)
{
    size_t len = alen + blen + zlen;
    if (c->out_len + len + 10 > c->out_cap) {
        size_t cap = c->out_len + len + 10 + SLICE;
        unsigned char *nb = realloc(c->out, cap);
        if (!nb) return -1;
        c->out = nb;
        c->out_cap = cap;
    }
    unsigned char *p = c->out + c->out_len;
    *p++ = 0x81;
    if (len < 126) {
        *p++ = (unsigned char)len;
    } else if (len < 65536) {
        *p++ = 126;
        *p++ = (unsigned char)(len >> 8);
        *p++ = (unsigned char)len;
    } else {
        *p++ = 127;
        for (int i = 7; i >= 0; i--)
            *p++ = (unsigned char)((uint64_t)len >> (8 * i));
    }
    memcpy(p, a, alen);
    memcpy(p + alen, b, blen);
    memcpy(p + alen + blen, z, zlen);
    c->out_len = (size_t)(p - c->out) + len;
    if (c->out_len < SLICE) return 0;
    int rc = send_all(c->fd, c->out, c->out_len);
    c->out_len = 0;
    return rc;
}

static const char event_pre[] = "{\"type\":\"event\",\"event\":";

/* The K rows after AFTER, framed and sent as they are read; 0 or -1. */
static int send_rows(struct bench_resume_ceiling *c, int64_t after)
{
    int rows = 0, rc = 0;
#ifdef OH_HAVE_POSTGRES
    if (c->pg) {
        char a[32], l[16];
        snprintf(a, sizeof a, "%lld", (long long)after);
        snprintf(l, sizeof l, "%d", c->k);
        const char *params[] = {c->conv, a, l};
        PGresult *res = PQexecPrepared(c->pg, "resume", 3, params, NULL, NULL, 0);
        rows = PQresultStatus(res) == PGRES_TUPLES_OK ? PQntuples(res) : -1;
        for (int i = 0; i < rows && !rc; i++)
            rc = put_frame(c, event_pre, sizeof event_pre - 1, PQgetvalue(res, i, 1),
                           (size_t)PQgetlength(res, i, 1), "}", 1);
        PQclear(res);
        return rc || rows != c->k ? -1 : 0;
    }
#endif
    sqlite3_bind_text(c->st, 1, c->conv, -1, SQLITE_STATIC);
    sqlite3_bind_int64(c->st, 2, after);
    sqlite3_bind_int(c->st, 3, c->k);
    while (!rc && sqlite3_step(c->st) == SQLITE_ROW) {
        rc = put_frame(c, event_pre, sizeof event_pre - 1,
                       (const char *)sqlite3_column_text(c->st, 1),
                       (size_t)sqlite3_column_bytes(c->st, 1), "}", 1);
        rows++;
    }
    sqlite3_reset(c->st);
    return rc || rows != c->k ? -1 : 0;
}

/* Reads until BUF holds what DONE finds complete; its length, -1 on error. */
static ssize_t read_until(int fd, unsigned char *buf, size_t cap, size_t have,
                          ssize_t (*done)(const unsigned char *, size_t))
{
    for (;;) {
        ssize_t n = done(buf, have);
        if (n != 0) return n;
        if (have == cap) return -1;
        ssize_t r = recv(fd, buf + have, cap - have, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        have += (size_t)r;
    }
}

static ssize_t request_done(const unsigned char *b, size_t n)
{
    const unsigned char *e = memmem(b, n, "\r\n\r\n", 4);
    return e ? e + 4 - b : 0;
}

/* A masked client frame with a short payload (the subscribe). */
static ssize_t frame_done(const unsigned char *b, size_t n)
{
    if (n < 2) return 0;
    if (!(b[1] & 0x80)) return -1;
    size_t len = b[1] & 0x7f, h = 6;
    if (len == 127) return -1;
    if (len == 126) {
        if (n < 4) return 0;
        len = (size_t)b[2] << 8 | b[3];
        h = 8;
    }
    return n >= h + len ? (ssize_t)(h + len) : 0;
}

/* One client: the upgrade, its subscribe, the replay; then waits for it
 * to close. 0 or -1. */
static int serve(struct bench_resume_ceiling *c)
{
    unsigned char in[8192];
    ssize_t hlen = read_until(c->fd, in, sizeof in - 1, 0, request_done);
    if (hlen < 0) return -1;
    in[hlen] = '\0';
    char *key = strcasestr((char *)in, "\r\nsec-websocket-key:");
    if (!key) return -1;
    key += 20;
    key += strspn(key, " ");
    size_t klen = strcspn(key, "\r ");
    char cat[128], accept[40], resp[256];
    unsigned char sha[SHA_DIGEST_LENGTH];
    if (klen > 60) return -1;
    int cl = snprintf(cat, sizeof cat, "%.*s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", (int)klen, key);
    SHA1((unsigned char *)cat, (size_t)cl, sha);
    EVP_EncodeBlock((unsigned char *)accept, sha, sizeof sha);
    int rl = snprintf(resp, sizeof resp,
                      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                      "Sec-WebSocket-Protocol: omnihub\r\n\r\n",
                      accept);
    if (send_all(c->fd, (unsigned char *)resp, (size_t)rl)) return -1;
    /* the subscribe frame: unmasked in place, "after" taken from it */
    ssize_t flen = read_until(c->fd, in, sizeof in - 1, 0, frame_done);
    if (flen < 0) return -1;
    size_t h = (in[1] & 0x7f) == 126 ? 8 : 6;
    unsigned char *pl = in + h;
    for (size_t i = 0; i < (size_t)flen - h; i++)
        pl[i] ^= in[h - 4 + (i & 3)];
    pl[flen - (ssize_t)h] = '\0';
    const char *a = strstr((char *)pl, "\"after\":");
    int64_t after = a ? strtoll(a + 8, NULL, 10) : 0;
    char sub[256];
    int sl = snprintf(sub, sizeof sub,
                      "{\"type\":\"subscribed\",\"conversation\":\"%s\",\"epoch\":\"ceiling\","
                      "\"head\":%lld,\"recovered\":true}",
                      c->conv, (long long)(after + c->k));
    c->out_len = 0;
    if (put_frame(c, sub, (size_t)sl, "", 0, "", 0) || send_rows(c, after) ||
        send_all(c->fd, c->out, c->out_len))
        return -1;
    while (recv(c->fd, in, sizeof in, 0) > 0) /* the client's close */
        ;
    return 0;
}

static void *run(void *opaque)
{
    struct bench_resume_ceiling *c = opaque;
    for (;;) {
        c->fd = accept(c->lfd, NULL, NULL);
        if (c->fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            break; /* the listener was shut down */
        }
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (serve(c))
            c->refused++;
        else
            c->served++;
        close(c->fd);
    }
    return NULL;
}

struct bench_resume_ceiling *bench_resume_ceiling_start(const char *db, const char *dsn,
                                                        const char *conv, int k, char *url,
                                                        size_t urllen, char *err, size_t errlen)
{
    struct bench_resume_ceiling *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->conv = conv;
    c->k = k;
    c->lfd = -1;
    char sql[160];
    if (dsn) {
#ifdef OH_HAVE_POSTGRES
        snprintf(sql, sizeof sql, read_sql, '$', '$', '$');
        c->pg = PQconnectdb(dsn);
        PGresult *prep =
            PQstatus(c->pg) == CONNECTION_OK ? PQprepare(c->pg, "resume", sql, 3, NULL) : NULL;
        bool ok = prep && PQresultStatus(prep) == PGRES_COMMAND_OK;
        PQclear(prep);
        if (!ok) {
            snprintf(err, errlen, "ceiling: libpq: %s", PQerrorMessage(c->pg));
            bench_resume_ceiling_stop(c);
            return NULL;
        }
#else
        snprintf(err, errlen, "ceiling: built without PostgreSQL");
        bench_resume_ceiling_stop(c);
        return NULL;
#endif
    } else {
        snprintf(sql, sizeof sql, read_sql, '?', '?', '?');
        if (sqlite3_open_v2(db, &c->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(c->db, sql, -1, &c->st, NULL) != SQLITE_OK) {
            snprintf(err, errlen, "ceiling: sqlite: %s", sqlite3_errmsg(c->db));
            bench_resume_ceiling_stop(c);
            return NULL;
        }
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    c->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->lfd < 0 || bind(c->lfd, (struct sockaddr *)&sa, sizeof sa) || listen(c->lfd, 16) ||
        getsockname(c->lfd, (struct sockaddr *)&sa, &sl) ||
        pthread_create(&c->thread, NULL, run, c)) {
        snprintf(err, errlen, "ceiling: listen: %s", strerror(errno));
        bench_resume_ceiling_stop(c);
        return NULL;
    }
    c->started = true;
    snprintf(url, urllen, "http://127.0.0.1:%d", ntohs(sa.sin_port));
    return c;
}

int bench_resume_ceiling_stop(struct bench_resume_ceiling *c)
{
    if (!c) return 0;
    if (c->lfd >= 0) shutdown(c->lfd, SHUT_RDWR); /* accept() returns */
    if (c->started) pthread_join(c->thread, NULL);
    if (c->lfd >= 0) close(c->lfd);
    sqlite3_finalize(c->st);
    sqlite3_close(c->db);
#ifdef OH_HAVE_POSTGRES
    PQfinish(c->pg);
#endif
    int refused = c->refused;
    free(c->out);
    free(c);
    return refused;
}
