/* json_pick.c - one pass over a JSON text that checks it by jansson's rules
 * (load.c: its lexer and parser, flags 0) and remembers where the picked
 * strings are; only those are decoded, once the whole text has passed. */
#include "core/json_pick.h"
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/oh.h"

#define SEG_MAX 63 /* bytes of one member name in a path */

struct seg {
    const char *s;
    size_t len;
};

struct want {
    struct seg seg[OH_JSON_PICK_DEPTH];
    int nseg;
    const unsigned char *raw; /* the string's text between its quotes */
    size_t rawlen;
    bool set, esc;
};

static bool is_digit(unsigned c)
{
    return c - '0' < 10;
}

static bool is_ws(unsigned c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int hexval(unsigned c)
{
    if (is_digit(c)) return (int)(c - '0');
    c |= 32;
    return c >= 'a' && c <= 'f' ? (int)(c - 'a' + 10) : -1;
}

/* The four hex digits at P (P + 4 <= END checked by the caller), or -1. */
static int32_t hex4(const unsigned char *p)
{
    int32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0) return -1;
        v = v << 4 | h;
    }
    return v;
}

/* Bytes of the UTF-8 sequence at P (a lead byte >= 0x80) as jansson's
 * utf8_check_first/utf8_check_full accept it; 0 when invalid or cut. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t k;
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF)
        k = 2, v = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        k = 3, v = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        k = 4, v = c & 0x07;
    else
        return 0;
    if ((size_t)(end - p) < k) return 0;
    for (size_t i = 1; i < k; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        v = v << 6 | (p[i] & 0x3Fu);
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) || (k == 3 && v < 0x800) ||
        (k == 4 && v < 0x10000))
        return 0;
    return k;
}

/* Past the run of string bytes at P that need no look: printable ASCII
 * but '"' and '\\'. Eight at a time: a byte stops the run when its high bit
 * is set, when it is below 0x20 (subtracting 0x20 borrows into its high
 * bit) or equal to '"' or '\\' (its XOR with it is zero, and subtracting 1
 * borrows). A borrow may flag bytes above a stopping one, never below: the
 * lowest flag is the first stop. */
static const unsigned char *plain_run(const unsigned char *p, const unsigned char *end)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    while (end - p >= 8) {
        uint64_t v, q, b;
        memcpy(&v, p, 8);
        q = v ^ (ones * '"');
        b = v ^ (ones * '\\');
        uint64_t stop =
            (v | ((v - ones * 0x20) & ~v) | ((q - ones) & ~q) | ((b - ones) & ~b)) & high;
        if (stop) return p + (__builtin_ctzll(stop) >> 3);
        p += 8;
    }
#endif
    while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
        p++;
    return p;
}

/* A string whose opening quote is just before *PP: moves *PP past its
 * closing quote and sets *ESC when it has escapes. -1 where jansson fails:
 * a control character, a bad escape or surrogate, "\u0000", bad UTF-8, or
 * no closing quote. */
static int string_end(const unsigned char **pp, const unsigned char *end, bool *esc)
{
    const unsigned char *p = *pp;
    *esc = false;
    for (;;) {
        p = plain_run(p, end);
        if (p >= end) return -1;
        unsigned c = *p;
        if (c == '"') break;
        if (c < 0x20) return -1;
        if (c >= 0x80) {
            size_t k = utf8_seq(p, end);
            if (!k) return -1;
            p += k;
            continue;
        }
        /* a backslash */
        *esc = true;
        if (end - p < 2) return -1;
        c = p[1];
        if (c != 'u') {
            if (!memchr("\"\\/bfnrt", (int)c, 8)) return -1;
            p += 2;
            continue;
        }
        int32_t v = end - p >= 6 ? hex4(p + 2) : -1;
        if (v <= 0) return -1; /* bad hex, or "\u0000" (no NUL without JSON_ALLOW_NUL) */
        p += 6;
        if (v >= 0xDC00 && v <= 0xDFFF) return -1; /* a low surrogate first */
        if (v >= 0xD800 && v <= 0xDBFF) {
            int32_t w = end - p >= 6 && p[0] == '\\' && p[1] == 'u' ? hex4(p + 2) : -1;
            if (w < 0xDC00 || w > 0xDFFF) return -1;
            p += 6;
        }
    }
    *pp = p + 1;
    return 0;
}

static size_t utf8_put(char *o, uint32_t v)
{
    if (v < 0x80) {
        o[0] = (char)v;
        return 1;
    }
    if (v < 0x800) {
        o[0] = (char)(0xC0 | v >> 6);
        o[1] = (char)(0x80 | (v & 63));
        return 2;
    }
    if (v < 0x10000) {
        o[0] = (char)(0xE0 | v >> 12);
        o[1] = (char)(0x80 | (v >> 6 & 63));
        o[2] = (char)(0x80 | (v & 63));
        return 3;
    }
    o[0] = (char)(0xF0 | v >> 18);
    o[1] = (char)(0x80 | (v >> 12 & 63));
    o[2] = (char)(0x80 | (v >> 6 & 63));
    o[3] = (char)(0x80 | (v & 63));
    return 4;
}

/* Decodes the checked string text S (N bytes, between its quotes) into OUT;
 * returns the decoded length (<= N). */
static size_t decode(const unsigned char *s, size_t n, char *out)
{
    size_t o = 0, i = 0;
    while (i < n) {
        const unsigned char *bs = memchr(s + i, '\\', n - i);
        size_t run = bs ? (size_t)(bs - (s + i)) : n - i;
        memcpy(out + o, s + i, run);
        o += run;
        i += run;
        if (i >= n) break;
        unsigned c = s[i + 1];
        if (c != 'u') {
            out[o++] = c == 'b'   ? '\b'
                       : c == 'f' ? '\f'
                       : c == 'n' ? '\n'
                       : c == 'r' ? '\r'
                       : c == 't' ? '\t'
                                  : (char)c;
            i += 2;
            continue;
        }
        uint32_t v = (uint32_t)hex4(s + i + 2);
        i += 6;
        if (v >= 0xD800 && v <= 0xDBFF) {
            v = 0x10000 + ((v - 0xD800) << 10) + ((uint32_t)hex4(s + i + 2) - 0xDC00);
            i += 6;
        }
        o += utf8_put(out + o, v);
    }
    return o;
}

/* Whether a real of significand digits D (ND of them, the first nonzero;
 * the value is D × 10^(M - ND + 1)) whose leading digit is at 10^308
 * overflows a double: strtod decides, with the digits written without a
 * decimal point (no locale in the way). -1 when out of memory. */
static int overflows_near_max(const unsigned char *ip, size_t ilen, const unsigned char *fp,
                              size_t flen, size_t z)
{
    size_t nd = ilen + flen - z;
    char small[96], *s = nd + 16 <= sizeof small ? small : malloc(nd + 16);
    if (!s) return -1;
    size_t o = 0;
    for (size_t i = z; i < ilen + flen; i++)
        s[o++] = (char)(i < ilen ? ip[i] : fp[i - ilen]);
    /* value = digits × 10^(308 - (nd - 1)) */
    long long e = 308 - ((long long)nd - 1);
    snprintf(s + o, 16, "e%lld", e);
    errno = 0;
    double v = strtod(s, NULL);
    bool over = v == HUGE_VAL && errno == ERANGE;
    if (s != small) free(s);
    return over;
}

/* A number at *PP by jansson's lexer: moves *PP past it. -1 where jansson
 * fails (bad form, an integer outside int64_t, a real that overflows). */
static int number_end(const unsigned char **pp, const unsigned char *end)
{
    const unsigned char *p = *pp;
    bool neg = *p == '-';
    if (neg) p++;
    if (p >= end || !is_digit(*p)) return -1;
    const unsigned char *ip = p;
    if (*p == '0') {
        p++;
        if (p < end && is_digit(*p)) return -1;
    } else {
        while (p < end && is_digit(*p))
            p++;
    }
    size_t ilen = (size_t)(p - ip);
    if (p >= end || (*p != '.' && *p != 'e' && *p != 'E')) {
        /* strtoll's range */
        if (ilen > 19 ||
            (ilen == 19 && memcmp(ip, neg ? "9223372036854775808" : "9223372036854775807", 19) > 0))
            return -1;
        *pp = p;
        return 0;
    }
    const unsigned char *fp = p;
    size_t flen = 0;
    if (*p == '.') {
        p++;
        if (p >= end || !is_digit(*p)) return -1;
        fp = p;
        while (p < end && is_digit(*p))
            p++;
        flen = (size_t)(p - fp);
    }
    long long exp = 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        bool eneg = p < end && *p == '-';
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || !is_digit(*p)) return -1;
        for (; p < end && is_digit(*p); p++)
            if (exp < 1000000) exp = exp * 10 + (*p - '0'); /* past it: certain either way */
        if (eneg) exp = -exp;
    }
    /* the power of ten of the first nonzero digit decides, but at 10^308 */
    size_t z = 0;
    while (z < ilen + flen && (z < ilen ? ip[z] : fp[z - ilen]) == '0')
        z++;
    if (z < ilen + flen) {
        long long m = (long long)ilen - 1 - (long long)z + exp;
        if (m > 308) return -1;
        if (m == 308) {
            int over = overflows_near_max(ip, ilen, fp, flen, z);
            if (over) return over < 0 ? OH_ENOMEM : -1;
        }
    }
    *pp = p;
    return 0;
}

/* true, false, null: jansson reads a whole run of letters as one word. */
static int literal_end(const unsigned char **pp, const unsigned char *end)
{
    const unsigned char *p = *pp, *w = p;
    while (p < end && (((*p | 32u) - 'a') < 26))
        p++;
    size_t n = (size_t)(p - w);
    if (!((n == 4 && (!memcmp(w, "true", 4) || !memcmp(w, "null", 4))) ||
          (n == 5 && !memcmp(w, "false", 5))))
        return -1;
    *pp = p;
    return 0;
}

/* The picks whose name at object depth D (1-based) is the member name K
 * (KLEN bytes of checked string text, escaped when ESC), among LIVE. */
static uint32_t matching(const struct want *w, int n, uint32_t live, int d, const unsigned char *k,
                         size_t klen, bool esc)
{
    char dec[6 * SEG_MAX + 6];
    const char *name = (const char *)k;
    size_t nlen = klen;
    if (esc) {
        /* each escape of at most 6 (12) bytes gives at least 1 (4): a
         * longer text is a name longer than any path's */
        if (klen > 6 * SEG_MAX) return 0;
        nlen = decode(k, klen, dec);
        name = dec;
    }
    uint32_t m = 0;
    for (uint32_t b = live; b; b &= b - 1) {
        int i = __builtin_ctz(b);
        const struct seg *g = &w[i].seg[d - 1];
        if (g->len == nlen && g->s[0] == name[0] && !memcmp(g->s, name, nlen)) m |= 1u << i;
    }
    return m;
}

static int parse_paths(struct want *w, const struct oh_json_pick *picks, int n)
{
    for (int i = 0; i < n; i++) {
        const char *p = picks[i].path;
        if (!p) return OH_EINVAL;
        w[i] = (struct want){.nseg = 0};
        for (;;) {
            const char *dot = strchr(p, '.');
            size_t len = dot ? (size_t)(dot - p) : strlen(p);
            if (len == 0 || len > SEG_MAX || w[i].nseg == OH_JSON_PICK_DEPTH) return OH_EINVAL;
            w[i].seg[w[i].nseg++] = (struct seg){p, len};
            if (!dot) break;
            p = dot + 1;
        }
    }
    return OH_OK;
}

static int scan(const unsigned char *p, const unsigned char *end, struct want *w, int n)
{
    /* containers open: bit d of kind set when the one at depth d is an object */
    uint8_t kind[JSON_PARSER_MAX_DEPTH / 8 + 1] = {0};
    /* picks alive in the object at depth d (their first d - 1 names led there) */
    uint32_t live[OH_JSON_PICK_DEPTH + 2] = {0};
    uint32_t leaf = 0, inner = 0; /* picks the member being read sets or enters */
    int depth = 0, rc;
    bool esc;
    live[1] = n ? (uint32_t)((1ull << n) - 1) : 0;

    while (p < end && is_ws(*p))
        p++;
    if (p >= end || (*p != '{' && *p != '[')) return OH_EINVAL;

value:
    /* jansson counts every value, scalars too, against its depth limit */
    if (depth + 1 > JSON_PARSER_MAX_DEPTH || p >= end) return OH_EINVAL;
    switch (*p) {
    case '{':
        depth++;
        kind[depth / 8] |= (uint8_t)(1u << (depth % 8));
        if (depth <= OH_JSON_PICK_DEPTH + 1) live[depth] = depth == 1 ? live[1] : inner;
        leaf = inner = 0;
        for (p++; p < end && is_ws(*p); p++)
            ;
        if (p < end && *p == '}') goto close;
        goto key;
    case '[':
        depth++;
        kind[depth / 8] &= (uint8_t) ~(1u << (depth % 8));
        leaf = inner = 0;
        for (p++; p < end && is_ws(*p); p++)
            ;
        if (p < end && *p == ']') goto close;
        goto value;
    case '"': {
        const unsigned char *s = ++p;
        if (string_end(&p, end, &esc)) return OH_EINVAL;
        for (uint32_t b = leaf; b; b &= b - 1) {
            int i = __builtin_ctz(b);
            w[i].raw = s;
            w[i].rawlen = (size_t)(p - 1 - s);
            w[i].esc = esc;
            w[i].set = true;
        }
        break;
    }
    default:
        rc = *p == '-' || is_digit(*p) ? number_end(&p, end) : literal_end(&p, end);
        if (rc) return rc == OH_ENOMEM ? OH_ENOMEM : OH_EINVAL;
        /* jansson reads one character past a number or a word and puts it
         * back; a NUL put back reads as "nothing buffered" and is lost */
        if (p < end && *p == '\0') p++;
    }
    leaf = inner = 0;

next:
    while (p < end && is_ws(*p))
        p++;
    if (depth == 0) return p == end ? OH_OK : OH_EINVAL;
    if (p >= end) return OH_EINVAL;
    if (kind[depth / 8] >> (depth % 8) & 1) {
        if (*p == '}') goto close;
        if (*p != ',') return OH_EINVAL;
        for (p++; p < end && is_ws(*p); p++)
            ;
        goto key;
    }
    if (*p == ']') goto close;
    if (*p != ',') return OH_EINVAL;
    for (p++; p < end && is_ws(*p); p++)
        ;
    goto value;

close:
    depth--;
    p++;
    goto next;

key:
    if (p >= end || *p != '"') return OH_EINVAL;
    {
        const unsigned char *k = ++p;
        if (string_end(&p, end, &esc)) return OH_EINVAL;
        uint32_t on = depth <= OH_JSON_PICK_DEPTH ? live[depth] : 0;
        uint32_t m = on ? matching(w, n, on, depth, k, (size_t)(p - 1 - k), esc) : 0;
        leaf = inner = 0;
        for (uint32_t b = m; b; b &= b - 1) {
            int i = __builtin_ctz(b);
            w[i].set = false; /* a later member of the same name replaces it whole */
            if (w[i].nseg == depth)
                leaf |= 1u << i;
            else
                inner |= 1u << i;
        }
    }
    while (p < end && is_ws(*p))
        p++;
    if (p >= end || *p != ':') return OH_EINVAL;
    for (p++; p < end && is_ws(*p); p++)
        ;
    goto value;
}

int oh_json_pick(const char *text, size_t len, struct oh_json_pick *picks, int n, char *buf)
{
    struct want w[OH_JSON_PICK_MAX];
    if (n < 0 || n > OH_JSON_PICK_MAX || (n && !picks)) return OH_EINVAL;
    for (int i = 0; i < n; i++) {
        picks[i].s = NULL;
        picks[i].len = 0;
    }
    if (!text || !buf || parse_paths(w, picks, n)) return OH_EINVAL;
    const unsigned char *t = (const unsigned char *)text;
    int rc = scan(t, t + len, w, n);
    if (rc) return rc;
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        if (!w[i].set) continue;
        int same = 0;
        while (same < i && !(w[same].set && w[same].raw == w[i].raw))
            same++;
        if (same < i) { /* the same path twice */
            picks[i].s = picks[same].s;
            picks[i].len = picks[same].len;
            continue;
        }
        size_t dl = w[i].esc ? decode(w[i].raw, w[i].rawlen, buf + o) : w[i].rawlen;
        if (!w[i].esc) memcpy(buf + o, w[i].raw, dl);
        buf[o + dl] = '\0';
        picks[i].s = buf + o;
        picks[i].len = dl;
        o += dl + 1;
    }
    return OH_OK;
}
