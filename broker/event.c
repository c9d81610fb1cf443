/* event.c - building and checking CloudEvents envelopes; stable ids; time
 * and UTF-8 helpers shared by every connector. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include "crypto.h"
#include "event.h"

/* Hashes length-prefixed parts so ("ab","c") and ("a","bc") differ. */
static void hashed_id(char out[OH_ID_MAX], char prefix, const char *first, va_list ap)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t digest[OH_SHA256_LEN];
    unsigned int dlen = sizeof digest;
    EVP_DigestInit_ex(md, oh_sha256_md(), NULL);
    for (const char *p = first; p; p = va_arg(ap, const char *)) {
        uint32_t n = (uint32_t)strlen(p);
        uint8_t len[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
        EVP_DigestUpdate(md, len, sizeof len);
        EVP_DigestUpdate(md, p, n);
    }
    EVP_DigestFinal_ex(md, digest, &dlen);
    EVP_MD_CTX_free(md);
    char enc[48];
    oh_base64url(digest, 24, enc); /* 192 bits -> 32 chars */
    out[0] = prefix;
    out[1] = '_';
    memcpy(out + 2, enc, 33);
}

void oh_event_id(char out[OH_ID_MAX], const char *part, ...)
{
    va_list ap;
    va_start(ap, part);
    hashed_id(out, 'e', part, ap);
    va_end(ap);
}

static void conv_id(char out[OH_ID_MAX], const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    hashed_id(out, 'c', first, ap);
    va_end(ap);
}

void oh_conversation_id(char out[OH_ID_MAX], const char *channel, const char *account,
                        const char *contact)
{
    conv_id(out, "conversation", channel, account ? account : "", contact ? contact : "",
            (const char *)NULL);
}

#define OH_TIME_MAX_S 253402300799LL /* 9999-12-31T23:59:59Z */

int64_t oh_time_from_seconds(int64_t seconds)
{
    return seconds > 0 && seconds <= OH_TIME_MAX_S ? seconds * 1000 : 0;
}

void oh_time_rfc3339(char out[32], int64_t ms)
{
    if (ms < 0) ms = 0;
    if (ms > OH_TIME_MAX_S * 1000 + 999) ms = OH_TIME_MAX_S * 1000 + 999;
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (**p < '0' || **p > '9') return -1;
        v = v * 10 + (**p - '0');
    }
    *out = v;
    return 0;
}

int oh_time_parse(const char *s, int64_t *ms)
{
    int Y, M, D, h, m, sec, frac = 0;
    const char *p = s;
    if (!s || digits(&p, 4, &Y) || *p++ != '-' || digits(&p, 2, &M) || *p++ != '-' ||
        digits(&p, 2, &D) || (*p != 'T' && *p != 't' && *p != ' '))
        return OH_EINVAL;
    p++;
    if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &m) || *p++ != ':' || digits(&p, 2, &sec))
        return OH_EINVAL;
    if (*p == '.') {
        p++;
        int nd = 0;
        while (*p >= '0' && *p <= '9') {
            if (nd < 3) frac = frac * 10 + (*p - '0');
            nd++;
            p++;
        }
        if (nd == 0) return OH_EINVAL;
        for (; nd < 3; nd++)
            frac *= 10;
    }
    int offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om)) return OH_EINVAL;
        offset = sign * (oh * 60 + om);
    } else {
        return OH_EINVAL;
    }
    if (*p || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60) return OH_EINVAL;
    struct tm tm = {.tm_year = Y - 1900,
                    .tm_mon = M - 1,
                    .tm_mday = D,
                    .tm_hour = h,
                    .tm_min = m,
                    .tm_sec = sec};
    time_t t = timegm(&tm);
    *ms = ((int64_t)t - offset * 60) * 1000 + frac;
    return OH_OK;
}

bool oh_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c == 0) return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        int n;
        uint32_t cp;
        if ((c & 0xE0) == 0xC0) {
            n = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        for (int k = 1; k <= n; k++) {
            if (i + (size_t)k >= len || (s[i + k] & 0xC0) != 0x80) return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        /* overlong forms, surrogates and values past U+10FFFF */
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return false;
        i += (size_t)n + 1;
    }
    return true;
}

void oh_utf8_sanitize(char *str)
{
    unsigned char *s = (unsigned char *)str;
    while (*s) {
        int n = *s < 0x80             ? 0
                : (*s & 0xE0) == 0xC0 ? 1
                : (*s & 0xF0) == 0xE0 ? 2
                : (*s & 0xF8) == 0xF0 ? 3
                                      : -1;
        int k = 1;
        for (; n > 0 && k <= n && (s[k] & 0xC0) == 0x80; k++)
            ;
        if (n < 0 || k <= n || !oh_utf8_valid((const char *)s, (size_t)n + 1)) {
            *s++ = '?'; /* a stray or broken byte */
            continue;
        }
        s += n + 1;
    }
}

static const char *channel_of(const json_t *data)
{
    return json_string_value(json_object_get(data, "channel"));
}

json_t *oh_event_new(const char *type, const char *id, int64_t time_ms, json_t *data)
{
    if (!data) return NULL;
    char when[32], *source = NULL;
    oh_time_rfc3339(when, time_ms ? time_ms : oh_now_ms());
    const char *channel = channel_of(data);
    const char *account = json_string_value(json_object_get(data, "account"));
    /* built whole: cutting a long account could split a UTF-8 sequence */
    if (asprintf(&source, "/omnihub/%s/%s", channel ? channel : "unknown",
                 account && *account ? account : "-") < 0)
        source = NULL;
    const char *subject = json_string_value(json_object_get(data, "conversation_id"));
    json_t *ev = source
                     ? json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "specversion", "1.0", "id",
                                 id, "source", source, "type", type, "time", when, "subject",
                                 subject ? subject : "", "datacontenttype", "application/json")
                     : NULL;
    free(source);
    if (!ev) {
        json_decref(data); /* it was ours */
        return NULL;
    }
    if (json_object_set_new(ev, "data", data) != 0) {
        json_decref(ev);
        return NULL;
    }
    return ev;
}

const char *oh_event_get_id(const json_t *ev)
{
    return json_string_value(json_object_get(ev, "id"));
}

const char *oh_event_get_type(const json_t *ev)
{
    return json_string_value(json_object_get(ev, "type"));
}

const char *oh_event_subject(const json_t *ev)
{
    return json_string_value(json_object_get(ev, "subject"));
}

json_t *oh_event_data(const json_t *ev)
{
    return json_object_get(ev, "data");
}

const char *oh_event_data_str(const json_t *ev, const char *field)
{
    return json_string_value(json_object_get(json_object_get(ev, "data"), field));
}

bool oh_id_valid(const char *s, size_t len)
{
    if (len == 0 || len > OH_ID_MAX - 1) return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') &&
            c != '-' && c != '_' && c != '.' && c != '~')
            return false;
    }
    return true;
}

int oh_event_validate(const json_t *ev, char *err, size_t errlen)
{
    static const char *attrs[] = {"specversion", "id", "source", "type", "time", "subject"};
    if (!json_is_object(ev)) {
        oh_errf(err, errlen, "event is not an object");
        return OH_EINVAL;
    }
    for (size_t i = 0; i < OH_ARRAY_SIZE(attrs); i++)
        if (!json_string_value(json_object_get(ev, attrs[i]))) {
            oh_errf(err, errlen, "event lacks \"%s\"", attrs[i]);
            return OH_EINVAL;
        }
    const char *type = oh_event_get_type(ev);
    if (strcmp(type, OH_EV_INBOUND) && strcmp(type, OH_EV_OUTBOUND) && strcmp(type, OH_EV_STATUS)) {
        oh_errf(err, errlen, "unknown event type \"%s\"", type);
        return OH_EINVAL;
    }
    const json_t *data = oh_event_data(ev);
    if (!json_is_object(data)) {
        oh_errf(err, errlen, "event lacks a data object");
        return OH_EINVAL;
    }
    static const char *fields[] = {"conversation_id", "channel", "account", "direction", "kind"};
    for (size_t i = 0; i < OH_ARRAY_SIZE(fields); i++)
        if (!json_string_value(json_object_get(data, fields[i]))) {
            oh_errf(err, errlen, "event data lacks \"%s\"", fields[i]);
            return OH_EINVAL;
        }
    const char *conv = oh_event_subject(ev);
    if (!oh_id_valid(conv, strlen(conv)) ||
        strcmp(conv, json_string_value(json_object_get(data, "conversation_id")))) {
        oh_errf(err, errlen, "bad conversation id");
        return OH_EINVAL;
    }
    if (!oh_id_valid(oh_event_get_id(ev), strlen(oh_event_get_id(ev)))) {
        oh_errf(err, errlen, "bad event id");
        return OH_EINVAL;
    }
    return OH_OK;
}

int oh_event_list_push(struct oh_event_list *l, json_t *ev)
{
    if (!ev) return OH_ENOMEM;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        json_t **p = realloc(l->ev, cap * sizeof *p);
        if (!p) {
            json_decref(ev);
            return OH_ENOMEM;
        }
        l->ev = p;
        l->cap = cap;
    }
    l->ev[l->n++] = ev;
    return OH_OK;
}

void oh_event_list_clear(struct oh_event_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        json_decref(l->ev[i]);
    free(l->ev);
    l->ev = NULL;
    l->n = l->cap = 0;
}
