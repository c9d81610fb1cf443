/* http_hygiene.c - what libwebsockets 4.1.6 accepts in an HTTP/1.1 header
 * block but RFC 9110/9112 says to refuse, and answers for the requests lws
 * drops without a word.
 *
 * lws parses the header block itself and keeps only its reading of it:
 * headers it knows become "fragments" (a repeated one is a chain of
 * them), every other line becomes an entry of its "unknown header" list,
 * whose name is kept as received up to the colon. So "Transfer-Encoding :
 * chunked" is not Transfer-Encoding to lws but an unknown header named
 * "transfer-encoding :", and lws_hdr_custom_copy() returns the first of
 * repeated unknown headers and cuts a value at a NUL. The public API
 * cannot list the unknown headers, so gw_hygiene_check() reads lws's
 * header buffer (ah->data) the way lws 4.1.6 lays it out - bytes already
 * in memory, no system call - and refuses anything it does not recognize.
 * The layout, from lib/roles/http/parsers.c (lws_parse, issue_char):
 *
 *   - the request line's URI starts 9 bytes into the buffer (the method's
 *     name was stored there speculatively, 8 zero bytes first), then the
 *     query fragments and the version ("HTTP/1.1"), each ended by a NUL;
 *   - then, in arrival order, one item per header line: a known header's
 *     value ended by a NUL (a repeated one starts with the space lws puts
 *     in front of later fragments), or an unknown header's record: 16-bit
 *     big-endian name length, value length, 32-bit offset of the next
 *     record (0: last), the name with its colon, the value (no NUL);
 *   - after the blank line, 8 zero bytes and a CR (lws stores the start
 *     of every line speculatively as an unknown header's name).
 *
 * Walking the items up to the first unknown record (the head of lws's
 * list) and then following lws's own links lists every unknown header. */
#include <stdint.h>
#include <string.h>
#include "gateway_int.h"

#if LWS_LIBRARY_VERSION_MAJOR != 4 || LWS_LIBRARY_VERSION_MINOR != 1
#error "http_hygiene.c reads libwebsockets 4.1's header buffer; check its layout for this version"
#endif

#define URI_OFFSET 9 /* where lws 4.1 puts the request line's URI */
#define REC_HEAD   8 /* an unknown header's record: nlen, vlen, next */

/* The tokens of the request line: not header lines. */
static bool request_line_token(int t)
{
    switch (t) {
    case WSI_TOKEN_GET_URI:
    case WSI_TOKEN_POST_URI:
    case WSI_TOKEN_OPTIONS_URI:
    case WSI_TOKEN_PUT_URI:
    case WSI_TOKEN_PATCH_URI:
    case WSI_TOKEN_DELETE_URI:
    case WSI_TOKEN_CONNECT:
    case WSI_TOKEN_HEAD_URI:
    case WSI_TOKEN_HTTP_URI_ARGS:
    case WSI_TOKEN_HTTP: return true;
    default: return false;
    }
}

static unsigned be16(const char *p)
{
    return (unsigned)(uint8_t)p[0] << 8 | (uint8_t)p[1];
}

static uint32_t be32(const char *p)
{
    return (uint32_t)be16(p) << 16 | be16(p + 2);
}

struct walk {
    struct lws *wsi;
    const struct oh_gateway *gw;
    const char *base, *end;
    uint64_t seen; /* gw->header_names already met */
    char *why;
    size_t whylen;
};

/* The unknown header's record at P if it is one lws wrote: sane lengths,
 * a name ending in ':' and, when CONFIRM, one lws finds under that name
 * (a walk over lws's list: done for the head only, the rest follow lws's
 * own links). */
static bool record_at(const struct walk *w, const char *p, bool confirm)
{
    if (p < w->base || w->end - p < REC_HEAD + 1) return false;
    unsigned nlen = be16(p), vlen = be16(p + 2);
    if (nlen == 0 || (size_t)(w->end - p - REC_HEAD) < (size_t)nlen + vlen) return false;
    const char *name = p + REC_HEAD;
    if (name[nlen - 1] != ':') return false;
    return !confirm || lws_hdr_custom_length(w->wsi, name, (int)nlen) >= 0;
}

/* The blank line's speculative name: 8 zero bytes and a CR. */
static bool end_marker_at(const struct walk *w, const char *p)
{
    if (w->end - p < REC_HEAD + 1) return false;
    for (int i = 0; i < REC_HEAD; i++)
        if (p[i]) return false;
    return p[REC_HEAD] == '\r';
}

static int refuse(struct walk *w, const char *fmt, const char *name, int nlen)
{
    snprintf(w->why, w->whylen, fmt, nlen, name);
    return 400;
}

/* One unknown header: NAME (with its colon, lower case) and VALUE. */
static int check_unknown(struct walk *w, const char *name, int nlen, const char *value, int vlen)
{
    int n = nlen - 1; /* without the colon */
    if (memchr(name, '\0', (size_t)n)) return refuse(w, "NUL in a header name (%.*s)", "", 0);
    if (strcspn(name, " \t") < (size_t)n || memchr(name, '\r', (size_t)n) ||
        memchr(name, '\n', (size_t)n))
        return refuse(w, "whitespace or a line break in the header name \"%.*s\"", name,
                      (int)strcspn(name, " \t\r\n"));
    if (memchr(value, '\0', (size_t)vlen))
        return refuse(w, "NUL in the value of header %.*s", name, n);
    for (int i = 0; i < w->gw->nheader_names; i++) {
        const char *rel = w->gw->header_names[i];
        if (strlen(rel) != (size_t)n || strncmp(rel, name, (size_t)n) != 0) continue;
        if (strcmp(rel, "x-request-id") == 0) break; /* informational: proxies add one */
        if (w->seen & (UINT64_C(1) << i)) return refuse(w, "repeated header %.*s", name, n);
        w->seen |= UINT64_C(1) << i;
    }
    return 0;
}

/* The known headers' fragments, copied (lws's API gives their bytes, not
 * where they are): the walk recognizes them by content, in any order. */
struct known {
    char buf[GW_HEADER_SPACE];
    size_t used;
    struct {
        uint16_t off, len;
        bool met;
    } f[256];
    int n, left;
};

/* Whether the NUL-terminated item at P is a known fragment not met yet. */
static bool known_at(struct known *k, const char *p, const char *end)
{
    size_t len = strnlen(p, (size_t)(end - p));
    for (int i = 0; i < k->n; i++)
        if (!k->f[i].met && k->f[i].len == len && memcmp(k->buf + k->f[i].off, p, len) == 0) {
            k->f[i].met = true;
            k->left--;
            return true;
        }
    return false;
}

/* Lists lws's unknown headers from P (the first item after the request
 * line) and checks each; 0 or 400. */
static int walk_items(struct walk *w, const char *p, struct known *k)
{
    const char *head = NULL;
    while (p < w->end && !head) {
        if (end_marker_at(w, p)) {
            if (k->left) break; /* a known header not found: see below */
            return 0;           /* no unknown header */
        } else if (record_at(w, p, true)) {
            head = p;
        } else if (known_at(k, p, w->end)) {
            p += strnlen(p, (size_t)(w->end - p)) + 1;
        } else if (!k->left) {
            /* past every known header: NUL bytes at the end of the last
             * value, or stale bytes after a header block that ended with a
             * bare LF (no marker). A record or the marker right after NULs
             * means the former. */
            for (const char *q = p; q < w->end && q - p < 64 && !*q; q++)
                if (q > p && (record_at(w, q, true) || end_marker_at(w, q))) {
                    snprintf(w->why, w->whylen, "NUL in a header value");
                    return 400;
                }
            return 0;
        } else {
            break;
        }
    }
    if (!head) {
        /* a NUL ended a known header's value early (lws drops what follows
         * it), or lws's layout is not the one this file reads: refuse
         * rather than guess */
        snprintf(w->why, w->whylen, "malformed header block (NUL in a header value?)");
        return 400;
    }
    /* lws's own list from its head; offsets only grow */
    int n = 0;
    for (const char *r = head; r; n++) {
        if (n > 1000 || !record_at(w, r, false)) {
            snprintf(w->why, w->whylen, "malformed header block");
            return 400;
        }
        unsigned nlen = be16(r), vlen = be16(r + 2);
        int st = check_unknown(w, r + REC_HEAD, (int)nlen, r + REC_HEAD + nlen, (int)vlen);
        if (st) return st;
        uint32_t next = be32(r + 4);
        if (next && w->base + next <= r) {
            snprintf(w->why, w->whylen, "malformed header block");
            return 400;
        }
        r = next ? w->base + next : NULL;
    }
    return 0;
}

/* Past the request line: the URI and its NUL, each query fragment after
 * one byte lws skips ('?', '&') and its NUL, then the version and its NUL;
 * NULL when the bytes are not those lws reports. */
static const char *after_request_line(struct lws *wsi, const char *uri, int urilen, const char *end,
                                      char *tmp, size_t tmplen)
{
    const char *p = uri + urilen;
    if (p >= end || *p) return NULL;
    p++;
    int len;
    for (int f = 0;
         (len = lws_hdr_copy_fragment(wsi, tmp, (int)tmplen, WSI_TOKEN_HTTP_URI_ARGS, f)) >= 0;
         f++) {
        if (end - p < len + 2 || memcmp(p + 1, tmp, (size_t)len) || p[1 + len]) return NULL;
        p += len + 2;
    }
    len = lws_hdr_copy(wsi, tmp, (int)tmplen, WSI_TOKEN_HTTP);
    if (len <= 0 || end - p < len + 1 || memcmp(p, tmp, (size_t)len) || p[len]) return NULL;
    return p + len + 1;
}

int gw_hygiene_check(const struct oh_gateway *gw, struct lws *wsi, char *why, size_t whylen)
{
    char *uri = NULL;
    int urilen = 0;
    char ver[16] = "";
    if (lws_http_get_uri_and_method(wsi, &uri, &urilen) < 0 || !uri ||
        lws_hdr_copy(wsi, ver, sizeof ver, WSI_TOKEN_HTTP) <= 0) {
        snprintf(why, whylen, "no request line");
        return 400;
    }
    bool http11 = strcmp(ver, "HTTP/1.1") == 0;

    /* known headers: NUL in a value (lws's copies stop at it), repeats of
     * those the daemon relies on */
    static const struct {
        enum lws_token_indexes tok;
        const char *name;
    } once[] = {{WSI_TOKEN_HOST, "Host"},
                {WSI_TOKEN_HTTP_AUTHORIZATION, "Authorization"},
                {WSI_TOKEN_HTTP_CONTENT_LENGTH, "Content-Length"},
                {WSI_TOKEN_HTTP_TRANSFER_ENCODING, "Transfer-Encoding"}};
    static struct known k; /* the service thread's; 4 KB off its stack */
    k.used = 0;
    k.n = 0;
    bool host = false;
    for (int t = 0; t < WSI_TOKEN_COUNT; t++) {
        if (request_line_token(t)) continue;
        int f = 0, len;
        /* lws counts a fragment's bytes without its NULs, so a NUL inside
         * shows in the copy (which then misses the last byte) */
        while (k.n < (int)OH_ARRAY_SIZE(k.f) &&
               (len = lws_hdr_copy_fragment(wsi, k.buf + k.used, (int)(sizeof k.buf - k.used),
                                            (enum lws_token_indexes)t, f)) >= 0) {
            if (memchr(k.buf + k.used, '\0', (size_t)len)) {
                snprintf(why, whylen, "NUL in a header value");
                return 400;
            }
            k.f[k.n].off = (uint16_t)k.used;
            k.f[k.n].len = (uint16_t)len;
            k.f[k.n++].met = false;
            k.used += (size_t)len;
            f++;
        }
        if (t == WSI_TOKEN_HOST) host = f > 0;
        for (size_t i = 0; i < OH_ARRAY_SIZE(once); i++)
            if ((int)once[i].tok == t && f > 1) {
                snprintf(why, whylen, "repeated %s header", once[i].name);
                return 400;
            }
    }
    k.left = k.n;
    if (http11 && !host) {
        snprintf(why, whylen, "HTTP/1.1 request without a Host header");
        return 400;
    }

    /* unknown headers: lws's list, read from its buffer */
    struct walk w = {.wsi = wsi, .gw = gw, .why = why, .whylen = whylen};
    w.base = uri - URI_OFFSET;
    w.end = w.base + GW_HEADER_SPACE;
    char tmp[GW_HEADER_SPACE];
    const char *p = after_request_line(wsi, uri, urilen, w.end, tmp, sizeof tmp);
    if (!p) {
        snprintf(why, whylen, "malformed request line");
        return 400;
    }
    int st = walk_items(&w, p, &k);
    if (st) return st;

    /* a body-bearing method without a length: lws would wait for the body
     * until http.timeout (RFC 9112 section 6.3 lets a server refuse) */
    bool body_method = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0 ||
                       lws_hdr_total_length(wsi, WSI_TOKEN_PUT_URI) > 0 ||
                       lws_hdr_total_length(wsi, WSI_TOKEN_PATCH_URI) > 0;
    if (body_method && lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0 &&
        lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) <= 0) {
        snprintf(why, whylen, "Content-Length required");
        return 411;
    }
    return 0;
}

/* ---- h2c ---- */

void gw_hygiene_ignore_h2c(char *upgrade)
{
    /* lws compares its pointer to the Upgrade value with "websocket" and
     * "h2c" right after LWS_CALLBACK_HTTP_CONFIRM_UPGRADE and serves the
     * request as plain HTTP/1.1 when neither matches (RFC 9113 section
     * 3.1: h2c is deprecated; a server may ignore Upgrade). Same length,
     * so lws's view of its buffer stays whole. */
    if (upgrade && strcasecmp(upgrade, "h2c") == 0) upgrade[2] = '-';
}
