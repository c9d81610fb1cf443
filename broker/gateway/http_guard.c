/* http_guard.c - answers for the request heads libwebsockets 4.1.6 drops
 * without a word.
 *
 * lws fails its parse and closes the connection, with no callback in which
 * to answer, on a "%00" in the request target (lws_parse_urldecode() in
 * lib/roles/http/parsers.c returns -1 on the decoded NUL) and on a head
 * that overflows its header buffer (lws_pos_in_bounds()) or its table of
 * header fragments (lws_parse(): "More hdr frags than we can deal with").
 * RFC 9110/6585 want 400, 414 or 431 there.
 *
 * So the gateway reads each HTTP connection's bytes before lws does: a
 * libev watcher on the socket, at a higher priority than lws's own
 * watcher of the same descriptor (libev makes both pending from the same
 * epoll event and runs the higher priority first), peeks (MSG_PEEK) at
 * what lws has not read yet and feeds a small scanner that follows the
 * request heads of the stream (bodies skipped by Content-Length, so heads
 * pipelined behind others are seen too, even when lws later takes them
 * from its own stash). The scanner gives a verdict for the first head that
 * breaks a rule below; the verdict is answered
 *
 *   - at once, with send(), when the bad head is the one lws reads (first
 *     on its connection, or every earlier request answered); then lws's
 *     reading is ended (shutdown(SHUT_RD)) and lws closes its usual way;
 *   - in LWS_CALLBACK_HTTP when lws got through the head after all
 *     (gw_guard_verdict(): the normal answer path, then closed);
 *   - when lws closes the connection on a head it took from its stash
 *     behind an unanswered request, from LWS_CALLBACK_HTTP_DROP_PROTOCOL,
 *     which lws 4.1.6 calls before it shuts the socket down
 *     (gw_guard_dropped()). lws calls it only once the protocol is bound,
 *     which is after the first head: hence the first way.
 *
 * The rules, stricter than lws's limits so that lws never fails on a head
 * that passes them (GW_HEADER_SPACE is sized from them):
 *   - a NUL in the request target, "%00" or raw: 400;
 *   - a request line over GW_HEAD_MAX bytes: 414; a head over it: 431;
 *   - more than GW_HEAD_FIELDS header lines and query parameters
 *     together (each may take one of lws's 95 fragments): 431, or 414
 *     when the query parameters are the most.
 *
 * Where the peeking stands: with SO_PEEK_OFF (TCP since Linux 6.9) the
 * kernel keeps it, moving it back as lws reads; otherwise the bytes lws
 * has read (gw_socket_bytes_read()) say where the queue starts. The peek
 * reads at most GW_PEEK bytes more than what was scanned, more than lws
 * reads from a socket per event (pt_serv_buf_size, 4096), so the scanner
 * is always ahead of lws. While it is (the watcher running), the bytes
 * lws has read are those scanned less the peek offset: one getsockopt
 * (gw_guard_bytes_read(), for http_pipeline.c) instead of the two ioctls
 * and the getsockopt of gw_socket_bytes_read(). A read removes bytes from
 * the peek offset but never takes it below 0, so once lws may have read
 * past what was scanned (the watcher stopped, or paused even once) the
 * count is gw_socket_bytes_read()'s for the rest of the connection.
 *
 * After an upgrade the scanner follows the client's WebSocket frames
 * (their headers; payloads skipped whole) for the one rule lws 4.1.6 does
 * not check: a client frame must be masked (RFC 6455 5.1). One without a
 * mask is not answered here but flagged (gw_guard_unmasked()): the
 * gateway's WebSocket callback closes the connection with 1002, so that
 * lws writes the Close frame in order with what it is sending.
 *
 * Anything the scanner does not follow exactly (a method lws does not
 * know, a "%" lws refuses itself with 403, Transfer-Encoding, an Upgrade
 * with a body, a bare line break before the request line, a path under the
 * static mount that lws serves itself) ends the scanning of that connection: no
 * verdict, lws's behaviour as before. The watcher is stopped for good
 * once a verdict is reached or the scanning ends. It pauses while lws
 * does not read: a request in progress with more bytes queued (nothing new
 * to peek on GW_STALL turns in a row with no read by lws in between; lws's
 * own pauses between keep-alive requests last a turn or two; the first
 * such turn, after which lws most often reads what was just scanned, is
 * not counted and costs no getsockopt) and resumes, scanning first, when
 * lws reads a body or is done with the request. */
#include <ev.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include "core/metrics.h"
#include "gateway_int.h"

#if LWS_LIBRARY_VERSION_MAJOR != 4 || LWS_LIBRARY_VERSION_MINOR != 1
#error "http_guard.c mirrors libwebsockets 4.1's header parser limits; check them for this version"
#endif

#ifndef SO_PEEK_OFF
#define SO_PEEK_OFF 42 /* asm-generic/socket.h */
#endif

/* Bytes scanned ahead of lws per event: more than lws reads from a socket
 * at a time (pt_serv_buf_size, 4096 by default). */
#define GW_PEEK 8192
/* Turns of the loop with nothing new and no read by lws before pausing. */
#define GW_STALL 64

#define STR_(x) #x
#define STR(x)  STR_(x)

enum scan_state { SC_METHOD, SC_TARGET, SC_VERSION, SC_FIELDS, SC_BODY, SC_WS, SC_OFF };

/* Where a WebSocket frame's header stands (RFC 6455 section 5.2). */
enum ws_part { WS_B0, WS_B1, WS_LEN, WS_KEY, WS_DATA };

struct gw_conn {
    ev_io io; /* the watcher of the socket, at EV_MAXPRI */
    struct oh_gateway *gw;
    struct lws *wsi;
    uintptr_t pipeline_mark;    /* http_pipeline.c */
    bool peek_off;              /* SO_PEEK_OFF keeps where the peeking stands */
    bool counting;              /* scanned less the peek offset is what lws read */
    bool paused;                /* stopped while lws does not read */
    int idle;                   /* events in a row with nothing new to peek */
    long long idle_lead;        /* bytes scanned and not read by lws at the last */
    unsigned long long scanned; /* bytes of the stream scanned */
    unsigned dispatched;        /* heads lws announced (LWS_CALLBACK_HTTP) */
    bool busy;                  /* the last one is not answered yet */
    /* the scanner */
    enum scan_state st;
    unsigned head;    /* index of the head being scanned */
    unsigned bytes;   /* of that head so far */
    unsigned lines;   /* header lines */
    unsigned params;  /* '&' and ';' in the target: lws makes each a fragment */
    unsigned linelen; /* of the current line, CR not counted */
    char tok[20];     /* the method, the target's start, a field's name */
    unsigned toklen;
    int pct;       /* in the target: 0, 1 after '%', 2 after "%0", 3 after "%X" */
    uint8_t prev;  /* the target's previous byte */
    bool in_query; /* past the target's '?' */
    bool odd_path; /* '%', "/." or "//" in the target's path */
    bool in_name, in_clen, cl_seen, stop_after;
    bool upgrade; /* the head asks for an Upgrade */
    unsigned long long clen, body_left;
    /* the frames after an upgrade (SC_WS) */
    enum ws_part ws_part;
    unsigned ws_need;            /* bytes left of the length or the key */
    unsigned long long ws_left;  /* of the payload */
    bool websocket;              /* lws established the WebSocket */
    bool unmasked;               /* a client frame without a mask was seen */
    /* the verdict on head bad_head: 0 or a status */
    int status;
    unsigned bad_head;
    bool sent;
    char why[96];
};

static bool is_hex(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static void judge(struct gw_conn *c, int status, const char *why)
{
    c->status = status;
    c->bad_head = c->head;
    snprintf(c->why, sizeof c->why, "%s", why);
    c->st = SC_OFF;
}

static void next_head(struct gw_conn *c)
{
    c->head++;
    c->st = SC_METHOD;
    c->bytes = c->lines = c->params = c->linelen = c->toklen = 0;
    c->pct = 0;
    c->prev = 0;
    c->in_query = c->odd_path = false;
    c->in_name = c->in_clen = c->cl_seen = c->stop_after = c->upgrade = false;
    c->clen = 0;
}

/* The methods lws 4.1.6 knows; it answers any other with 403 itself. */
static bool known_method(const struct gw_conn *c)
{
    static const char *const known[] = {"GET",    "POST", "PUT",     "PATCH",
                                        "DELETE", "HEAD", "OPTIONS", "CONNECT"};
    for (size_t i = 0; i < OH_ARRAY_SIZE(known); i++)
        if (c->toklen == strlen(known[i]) && strncasecmp(c->tok, known[i], c->toklen) == 0)
            return true;
    return false;
}

/* The end of the request target: a path under the static mount is served
 * by lws itself, with no LWS_CALLBACK_HTTP to count; a path lws rewrites
 * ("%61", "/..", "//") might end there too. */
static void end_target(struct gw_conn *c)
{
    const char *mp = c->gw->mount.mountpoint;
    size_t ml = mp ? strlen(mp) : 0;
    if (mp && (c->odd_path || (c->toklen >= ml && strncmp(c->tok, mp, ml) == 0)))
        c->st = SC_OFF;
    else
        c->st = SC_VERSION;
}

static void target_byte(struct gw_conn *c, uint8_t b)
{
    if (c->toklen < sizeof c->tok) c->tok[c->toklen++] = (char)b;
    if (b == '?') c->in_query = true;
    if (!c->in_query && (b == '%' || ((b == '.' || b == '/') && c->prev == '/')))
        c->odd_path = true;
    c->prev = b;
    if (b == '\0' || (c->pct == 2 && b == '0')) {
        judge(c, 400, "NUL in the request path");
    } else if (c->pct == 1) {
        c->pct = !is_hex(b) ? -1 : b == '0' ? 2 : 3;
    } else if (c->pct >= 2) {
        c->pct = is_hex(b) ? 0 : -1;
    } else if (b == ' ') {
        c->toklen--;
        end_target(c);
    } else if (b == '%') {
        c->pct = 1;
    } else if (b == '&' || b == ';') {
        c->params++;
    } else if (b == '\r' || b == '\n') {
        c->st = SC_OFF; /* no version: lws reads it its own way */
    }
    if (c->pct < 0) c->st = SC_OFF; /* a bad escape: lws answers 403 itself */
}

static void end_name(struct gw_conn *c)
{
    c->in_name = false;
    if (c->toklen >= sizeof c->tok) return; /* longer than any name looked for */
    c->tok[c->toklen] = '\0';
    if (strcmp(c->tok, "content-length") == 0) {
        if (c->cl_seen) c->stop_after = true; /* refused (400) and closed */
        c->cl_seen = c->in_clen = true;
    } else if (strcmp(c->tok, "transfer-encoding") == 0) {
        c->stop_after = true; /* refused and closed */
    } else if (strcmp(c->tok, "upgrade") == 0) {
        c->upgrade = true; /* no longer HTTP: frames follow, if anything */
    }
}

static void end_line(struct gw_conn *c)
{
    if (c->linelen == 0) { /* the blank line */
        if (c->stop_after || (c->upgrade && c->clen))
            c->st = SC_OFF;
        else if (c->upgrade)
            c->st = SC_WS, c->ws_part = WS_B0;
        else if (c->clen)
            c->st = SC_BODY, c->body_left = c->clen;
        else
            next_head(c);
        return;
    }
    if (++c->lines + c->params > GW_HEAD_FIELDS) {
        if (c->params > c->lines)
            judge(c, 414, "over " STR(GW_HEAD_FIELDS) " query parameters and header lines");
        else
            judge(c, 431, "over " STR(GW_HEAD_FIELDS) " header lines");
        return;
    }
    c->linelen = c->toklen = 0;
    c->in_name = true;
    c->in_clen = false;
}

static void field_byte(struct gw_conn *c, uint8_t b)
{
    if (b == '\n') {
        end_line(c);
        return;
    }
    if (b == '\r') return;
    c->linelen++;
    if (c->in_name) {
        if (b == ':')
            end_name(c);
        else if (c->toklen < sizeof c->tok)
            c->tok[c->toklen++] = (char)(b >= 'A' && b <= 'Z' ? b + 'a' - 'A' : b);
        else
            c->toklen = sizeof c->tok;
    } else if (c->in_clen) {
        if (b >= '0' && b <= '9' && c->clen < 1000000000000ULL)
            c->clen = c->clen * 10 + (b - '0');
        else if (b != ' ' && b != '\t')
            c->stop_after = true; /* refused (400) and closed */
    }
}

/* One byte of the client's frames after an upgrade. Only the frame
 * boundaries and the MASK bit are followed: lws checks the rest. */
static void ws_byte(struct gw_conn *c, uint8_t b)
{
    switch (c->ws_part) {
    case WS_B0: c->ws_part = WS_B1; break;
    case WS_B1:
        if (!(b & 0x80)) { /* RFC 6455 5.1: the server closes the connection */
            c->unmasked = true;
            c->st = SC_OFF;
            return;
        }
        c->ws_left = b & 0x7f;
        c->ws_need = c->ws_left == 126 ? 2 : c->ws_left == 127 ? 8 : 0;
        if (c->ws_need)
            c->ws_left = 0, c->ws_part = WS_LEN;
        else
            c->ws_need = 4, c->ws_part = WS_KEY;
        break;
    case WS_LEN:
        c->ws_left = c->ws_left << 8 | b;
        if (--c->ws_need == 0) c->ws_need = 4, c->ws_part = WS_KEY;
        break;
    case WS_KEY:
        if (--c->ws_need == 0) c->ws_part = c->ws_left ? WS_DATA : WS_B0;
        break;
    case WS_DATA:
        if (--c->ws_left == 0) c->ws_part = WS_B0;
        break;
    }
}

/* Feeds one byte of the stream. */
static void scan(struct gw_conn *c, uint8_t b)
{
    if (c->st == SC_WS) {
        ws_byte(c, b);
        return;
    }
    if (c->st == SC_BODY) {
        if (--c->body_left == 0) next_head(c);
        return;
    }
    if (c->st == SC_OFF) return;
    if (++c->bytes > GW_HEAD_MAX) {
        if (c->st == SC_FIELDS)
            judge(c, 431, "request header block over " STR(GW_HEAD_MAX) " bytes");
        else
            judge(c, 414, "request line over " STR(GW_HEAD_MAX) " bytes");
        return;
    }
    switch (c->st) {
    case SC_METHOD:
        if (b == ' ' && known_method(c)) {
            c->st = SC_TARGET;
            c->toklen = 0;
        } else if (c->toklen < 8 && b > ' ' && b < 0x7f) {
            c->tok[c->toklen++] = (char)b;
        } else {
            c->st = SC_OFF;
        }
        break;
    case SC_TARGET: target_byte(c, b); break;
    case SC_VERSION:
        if (b == '\n') {
            c->st = SC_FIELDS;
            c->in_name = true;
            c->linelen = c->toklen = 0;
        }
        break;
    case SC_FIELDS: field_byte(c, b); break;
    case SC_BODY:
    case SC_WS:
    case SC_OFF: break;
    }
}

/* ---- the watcher ---- */

static struct gw_conn *conn_of(struct lws *wsi)
{
    return wsi ? lws_get_opaque_user_data(wsi) : NULL;
}

static void stop(struct gw_conn *c)
{
    ev_io_stop(c->gw->loop, &c->io);
    c->counting = false; /* lws may read past what was scanned */
}

/* Where the peeking stands: bytes scanned and not read by lws; -1 unknown. */
static long long peek_offset(const struct gw_conn *c)
{
    int off = 0;
    socklen_t len = sizeof off;
    if (getsockopt(lws_get_socket_fd(c->wsi), SOL_SOCKET, SO_PEEK_OFF, &off, &len) || off < 0)
        return -1;
    return off;
}

/* Peeks at the bytes not scanned yet (at most GW_PEEK) and scans them;
 * the count, 0 when there is nothing new, -1 when the scanning ends. */
static long peek_and_scan(struct gw_conn *c)
{
    static uint8_t buf[2 * GW_PEEK]; /* the service thread's */
    size_t skip = 0;
    if (c->peek_off && c->st == SC_WS) {
        /* lws read past what was scanned (the frames of a paused scanner):
         * the frame boundaries are lost, and the checking ends */
        long long q = gw_socket_bytes_read(c->wsi);
        if (q < 0 || (unsigned long long)q > c->scanned) {
            c->st = SC_OFF;
            return -1;
        }
    }
    if (!c->peek_off) {
        /* the queue starts where lws stands; skip what was scanned */
        long long q = gw_socket_bytes_read(c->wsi);
        if (q < 0 || (unsigned long long)q > c->scanned ||
            c->scanned - (unsigned long long)q > GW_PEEK)
            return -1;
        skip = (size_t)(c->scanned - (unsigned long long)q);
    }
    ssize_t n = recv(lws_get_socket_fd(c->wsi), buf, skip + GW_PEEK, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
    if (n == 0) return -1; /* the peer is done sending */
    if ((size_t)n <= skip) return 0;
    for (size_t i = skip; i < (size_t)n && c->st != SC_OFF; i++) {
        if (c->st == SC_WS && c->ws_part == WS_DATA && c->ws_left > 1) {
            /* a payload: skip it whole, up to its last byte */
            size_t k = (size_t)n - i;
            if (k > c->ws_left - 1) k = (size_t)(c->ws_left - 1);
            c->ws_left -= k;
            i += k - 1;
            continue;
        }
        if (c->st == SC_BODY && c->body_left > 1) {
            /* a request body: skipped whole up to its last byte, as scan()
             * would count it down (byte by byte, 4k instructions of a
             * signed POST /v1/inbound) */
            size_t k = (size_t)n - i;
            if (k > c->body_left - 1) k = (size_t)(c->body_left - 1);
            c->body_left -= k;
            i += k - 1;
            continue;
        }
        scan(c, buf[i]);
    }
    c->scanned += (size_t)n - skip;
    return c->st == SC_OFF ? -1 : (long)((size_t)n - skip);
}

/* Bytes scanned and not yet read by lws; -1 when unknown. */
static long long lead(struct gw_conn *c)
{
    if (c->peek_off) return peek_offset(c);
    long long q = gw_socket_bytes_read(c->wsi);
    return q < 0 ? -1 : (long long)c->scanned - q;
}

static const char *reason_of(int status)
{
    switch (status) {
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    default: return "Bad Request";
    }
}

/* Writes the answer to the bad head on the socket, ahead of lws. */
static void answer(struct gw_conn *c)
{
    c->sent = true;
    char body[256], msg[512];
    int blen = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}",
                        gw_error_code(c->status), c->why);
    int n = snprintf(msg, sizeof msg,
                     "HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                     "connection: close\r\n\r\n%s",
                     c->status, reason_of(c->status), blen, body);
    if (send(lws_get_socket_fd(c->wsi), msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n)
        OH_DEBUG("gateway", "the %d answer was not sent whole", c->status);
    char lab[32];
    snprintf(lab, sizeof lab, "code=\"%d\"", c->status);
    oh_metrics_inc("omnihub_http_errors_total", lab, 1);
}

/* Answers at once when the bad head is the one lws reads (every earlier
 * request answered), and then ends lws's reading: after the queued bytes,
 * lws reads an end of stream and closes the connection its usual way (its
 * close shuts the sending side down after the answer). */
static void answer_if_due(struct gw_conn *c)
{
    if (c->status && !c->sent && !c->busy && c->bad_head == c->dispatched) {
        answer(c);
        shutdown(lws_get_socket_fd(c->wsi), SHUT_RD);
    }
}

/* Scans what is new: peek_and_scan()'s count. */
static long step(struct gw_conn *c)
{
    long n = peek_and_scan(c);
    answer_if_due(c);
    return n;
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct gw_conn *c = (struct gw_conn *)w;
    long n = step(c);
    if (n < 0) {
        stop(c);
        if (c->unmasked && c->websocket) lws_callback_on_writable(c->wsi); /* to close it */
        return;
    }
    if (n > 0) {
        c->idle = 0;
        return;
    }
    /* nothing new: lws has not read all that was scanned. When it stops
     * reading (a request in progress), pause rather than wake up on every
     * turn of the loop. The first such turn is not counted: lws most often
     * reads in it what the turn before scanned, and not asking where it
     * stands saves a system call per request. */
    if (c->idle++ == 0) return;
    long long l = lead(c);
    if (c->idle > 2 && l != c->idle_lead) c->idle = 2; /* lws read meanwhile */
    if (c->idle > GW_STALL) { /* GW_STALL turns counted */
        stop(c);
        c->paused = true;
    }
    c->idle_lead = l;
}

/* ---- the gateway's side ---- */

void gw_guard_open(struct oh_gateway *gw, struct lws *wsi)
{
    if (conn_of(wsi)) return;
    int fd = lws_get_socket_fd(wsi);
    struct gw_conn *c = fd >= 0 ? calloc(1, sizeof *c) : NULL;
    if (!c) return; /* no guard: lws's behaviour */
    c->gw = gw;
    c->wsi = wsi;
    c->st = SC_METHOD;
    int zero = 0;
    c->peek_off = setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof zero) == 0;
    c->counting = c->peek_off; /* lws has read nothing yet */
    lws_set_opaque_user_data(wsi, c);
    ev_io_init(&c->io, on_readable, fd, EV_READ);
    ev_set_priority(&c->io, EV_MAXPRI); /* before lws's watcher (priority 0) */
    ev_io_start(gw->loop, &c->io);
}

void gw_guard_resume(struct lws *wsi, bool answered)
{
    struct gw_conn *c = conn_of(wsi);
    if (!c) return;
    if (answered) {
        c->busy = false;
        answer_if_due(c); /* a bad head already scanned is next */
    }
    if (!c->paused || c->st == SC_OFF) return;
    if (c->st == SC_WS) {
        /* lws may have read past the frames scanned while paused: then the
         * frame boundaries are lost, and the checking ends */
        long long q = gw_socket_bytes_read(c->wsi);
        if (q < 0 || (unsigned long long)q > c->scanned) {
            c->st = SC_OFF;
            return;
        }
    }
    c->paused = false;
    c->idle = 0;
    /* lws may read in this same turn: scan first */
    if (step(c) >= 0) ev_io_start(c->gw->loop, &c->io);
}

int gw_guard_verdict(struct lws *wsi, char *why, size_t whylen)
{
    struct gw_conn *c = conn_of(wsi);
    if (!c) return 0;
    unsigned head = c->dispatched++;
    c->busy = true;
    if (!c->status || c->bad_head != head) return 0;
    if (c->sent) return -1;
    c->sent = true;
    snprintf(why, whylen, "%s", c->why);
    return c->status;
}

void gw_guard_dropped(struct lws *wsi, bool request_open, const char *caller)
{
    struct gw_conn *c = conn_of(wsi);
    /* lws unbinds the protocol at the end of each keep-alive transaction
     * too (lws_bind_protocol from lws_http_transaction_completed); only its
     * close passes this caller */
    if (!c || !caller || strcmp(caller, "__lws_close_free_wsi") != 0) return;
    stop(c);
    if (!c->status || c->sent || c->bad_head != c->dispatched || request_open) return;
    /* lws is closing while on the bad head (taken from its stash of bytes
     * read with an earlier request): answer it before lws shuts the socket
     * down, right after this callback */
    answer(c);
}

void gw_guard_websocket(struct lws *wsi)
{
    struct gw_conn *c = conn_of(wsi);
    if (!c) return;
    c->websocket = true;
    if (c->unmasked)
        lws_callback_on_writable(wsi); /* seen before the upgrade completed */
    else if (c->st != SC_WS)
        stop(c); /* not following the frames */
}

bool gw_guard_unmasked(struct lws *wsi)
{
    struct gw_conn *c = conn_of(wsi);
    return c && c->unmasked;
}

void gw_guard_stop(struct lws *wsi)
{
    struct gw_conn *c = conn_of(wsi);
    if (c) stop(c);
}

void gw_guard_free(struct lws *wsi)
{
    struct gw_conn *c = conn_of(wsi);
    if (!c) return;
    stop(c);
    lws_set_opaque_user_data(wsi, NULL);
    free(c);
}

long long gw_guard_bytes_read(struct lws *wsi)
{
    struct gw_conn *c = conn_of(wsi);
    if (!c || !c->counting) return gw_socket_bytes_read(wsi);
    long long off = peek_offset(c);
    if (off < 0 || (unsigned long long)off > c->scanned) return gw_socket_bytes_read(wsi);
    return (long long)(c->scanned - (unsigned long long)off);
}

uintptr_t *gw_guard_pipeline_mark(struct lws *wsi)
{
    struct gw_conn *c = conn_of(wsi);
    return c ? &c->pipeline_mark : NULL;
}
