/* event.c - building and checking CloudEvents envelopes; stable ids; time
 * and UTF-8 helpers shared by every connector. */
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include "core/crypto.h"
#include "core/event.h"
#include "core/contacts.h"
#include "core/convstate.h"

/* A digest context per thread, reused by every id: creating and freeing one
 * per id (and feeding each part separately) cost more than the hashing. */
static pthread_key_t md_key;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static bool md_key_ok;

static void md_free(void *md)
{
    EVP_MD_CTX_free(md);
}

static void md_key_init(void)
{
    md_key_ok = pthread_key_create(&md_key, md_free) == 0;
}

/* Hashes length-prefixed parts so ("ab","c") and ("a","bc") differ. */
static void hashed_id(char out[OH_ID_MAX], char prefix, const char *first, va_list ap)
{
    pthread_once(&md_once, md_key_init);
    EVP_MD_CTX *md = md_key_ok ? pthread_getspecific(md_key) : NULL, *own = NULL;
    if (!md) {
        md = EVP_MD_CTX_new();
        if (!md_key_ok || pthread_setspecific(md_key, md) != 0) own = md; /* freed below */
    }
    uint8_t digest[OH_SHA256_LEN];
    unsigned int dlen = sizeof digest;
    EVP_DigestInit_ex(md, oh_sha256_md(), NULL);
    /* the parts are short: gather them and hash once; longer ones go as they come */
    uint8_t buf[512];
    size_t used = 0;
    for (const char *p = first; p; p = va_arg(ap, const char *)) {
        size_t n = strlen(p);
        uint8_t len[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
        if (used + 4 + n > sizeof buf) {
            EVP_DigestUpdate(md, buf, used);
            used = 0;
            if (4 + n > sizeof buf) {
                EVP_DigestUpdate(md, len, sizeof len);
                EVP_DigestUpdate(md, p, n);
                continue;
            }
        }
        memcpy(buf + used, len, 4);
        memcpy(buf + used + 4, p, n);
        used += 4 + n;
    }
    if (used) EVP_DigestUpdate(md, buf, used);
    EVP_DigestFinal_ex(md, digest, &dlen);
    EVP_MD_CTX_free(own);
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

/* Writes V as N decimal digits. */
static char *put_digits(char *p, unsigned v, int n)
{
    for (int i = n - 1; i >= 0; i--, v /= 10)
        p[i] = (char)('0' + v % 10);
    return p + n;
}

void oh_time_rfc3339(char out[32], int64_t ms)
{
    if (ms < 0) ms = 0;
    if (ms > OH_TIME_MAX_S * 1000 + 999) ms = OH_TIME_MAX_S * 1000 + 999;
    /* civil date from days since 1970 (H. Hinnant's days_from_civil inverse):
     * gmtime_r + strftime + snprintf made every event pay for the time zone
     * lock and two format parsers */
    int64_t s = ms / 1000, days = s / 86400, sod = s % 86400;
    int64_t z = days + 719468, era = z / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
    unsigned y = (unsigned)(yoe + era * 400) + (m <= 2);
    char *p = put_digits(out, y, 4);
    *p++ = '-';
    p = put_digits(p, m, 2);
    *p++ = '-';
    p = put_digits(p, d, 2);
    *p++ = 'T';
    p = put_digits(p, (unsigned)(sod / 3600), 2);
    *p++ = ':';
    p = put_digits(p, (unsigned)(sod / 60 % 60), 2);
    *p++ = ':';
    p = put_digits(p, (unsigned)(sod % 60), 2);
    *p++ = '.';
    p = put_digits(p, (unsigned)(ms % 1000), 3);
    *p++ = 'Z';
    *p = '\0';
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

/* The strings every envelope repeats, made once and shared by reference
 * (jansson's reference counts are atomic; nothing edits a string in place). */
enum { ENV_SPEC, ENV_CTYPE, ENV_IN, ENV_OUT, ENV_STATUS, ENV_N };
static const char *const env_text[ENV_N] = {"1.0", "application/json", OH_EV_INBOUND,
                                            OH_EV_OUTBOUND, OH_EV_STATUS};
static json_t *env_json[ENV_N];
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

static void env_init(void)
{
    for (int i = 0; i < ENV_N; i++)
        env_json[i] = json_string_nocheck(env_text[i]);
}

static json_t *env_str(int k)
{
    pthread_once(&env_once, env_init);
    return env_json[k] ? json_incref(env_json[k]) : json_string_nocheck(env_text[k]);
}

/* Length of S when it is plain ASCII, else -1. */
static ptrdiff_t ascii_len(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p && *p < 0x80)
        p++;
    return *p ? -1 : (ptrdiff_t)(p - (const unsigned char *)s);
}

/* A string value, UTF-8 checked as json_pack checked it; plain ASCII (ids,
 * most sources) needs no check. NULL when S is NULL or not UTF-8. */
static json_t *str_of(const char *s)
{
    if (!s) return NULL;
    return ascii_len(s) >= 0 ? json_string_nocheck(s) : json_string(s);
}

static json_t *type_str(const char *type)
{
    if (type && strcmp(type, OH_EV_INBOUND) == 0) return env_str(ENV_IN);
    if (type && strcmp(type, OH_EV_OUTBOUND) == 0) return env_str(ENV_OUT);
    if (type && strcmp(type, OH_EV_STATUS) == 0) return env_str(ENV_STATUS);
    return str_of(type);
}

/* The subject: data's own conversation_id string, shared, when it is plain
 * ASCII without a NUL (what json_pack would have copied). */
static json_t *subject_str(const json_t *data)
{
    json_t *conv = json_object_get(data, "conversation_id");
    const char *subject = json_string_value(conv);
    if (!subject) return json_string_nocheck("");
    if (ascii_len(subject) == (ptrdiff_t)json_string_length(conv)) return json_incref(conv);
    return str_of(subject);
}

json_t *oh_event_new(const char *type, const char *id, int64_t time_ms, json_t *data)
{
    if (!data) return NULL;
    char when[32], small[256], *source = small;
    oh_time_rfc3339(when, time_ms ? time_ms : oh_now_ms());
    const char *channel = channel_of(data);
    const char *account = json_string_value(json_object_get(data, "account"));
    if (!channel) channel = "unknown";
    if (!account || !*account) account = "-";
    /* built whole: cutting a long account could split a UTF-8 sequence */
    size_t cl = strlen(channel), al = strlen(account);
    if (cl + al + 11 > sizeof small) source = malloc(cl + al + 11);
    if (source) {
        memcpy(source, "/omnihub/", 9);
        memcpy(source + 9, channel, cl);
        source[9 + cl] = '/';
        memcpy(source + 10 + cl, account, al + 1);
    }
    /* built key by key in the order json_pack gave them: its format parser
     * was most of the cost of an envelope */
    json_t *ev = source ? json_object() : NULL;
    if (ev && (json_object_set_new_nocheck(ev, "specversion", env_str(ENV_SPEC)) ||
               json_object_set_new_nocheck(ev, "id", str_of(id)) ||
               json_object_set_new_nocheck(ev, "source", str_of(source)) ||
               json_object_set_new_nocheck(ev, "type", type_str(type)) ||
               json_object_set_new_nocheck(ev, "time", json_string_nocheck(when)) ||
               json_object_set_new_nocheck(ev, "subject", subject_str(data)) ||
               json_object_set_new_nocheck(ev, "datacontenttype", env_str(ENV_CTYPE)))) {
        json_decref(ev);
        ev = NULL;
    }
    if (source != small) free(source);
    if (!ev) {
        json_decref(data); /* it was ours */
        return NULL;
    }
    if (json_object_set_new_nocheck(ev, "data", data) != 0) {
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

const char *oh_event_author_kind(const json_t *ev)
{
    return json_string_value(json_object_get(json_object_get(oh_event_data(ev), "author"), "kind"));
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
    /* a state command (convstate.h) carries no message: no direction, no kind */
    bool command = strcmp(type, OH_EV_COMMAND) == 0;
    /* triage's annotation of a message (services/enrich.c): no message either */
    bool enriched = strcmp(type, OH_EV_ENRICHED) == 0;
    bool contact_cmd = strcmp(type, OH_EV_CONTACT_COMMAND) == 0;
    if (strcmp(type, OH_EV_INBOUND) && strcmp(type, OH_EV_OUTBOUND) && strcmp(type, OH_EV_STATUS) &&
        !command && !enriched && !contact_cmd) {
        oh_errf(err, errlen, "unknown event type \"%s\"", type);
        return OH_EINVAL;
    }
    const json_t *data = oh_event_data(ev);
    if (!json_is_object(data)) {
        oh_errf(err, errlen, "event lacks a data object");
        return OH_EINVAL;
    }
    if (contact_cmd) { /* core/contacts.h: the contact's id is the subject */
        const char *cid = json_string_value(json_object_get(data, "contact_id"));
        const char *subject = oh_event_subject(ev);
        if (!cid || !json_string_value(json_object_get(data, "op")) || !subject ||
            strcmp(cid, subject) != 0 || !oh_id_valid(cid, strlen(cid))) {
            oh_errf(err, errlen, "contact command lacks contact_id (= subject) or op");
            return OH_EINVAL;
        }
        return 0;
    }
    static const char *fields[] = {"conversation_id", "channel", "account", "direction", "kind"};
    static const char *cmd_fields[] = {"conversation_id", "channel", "account", "op"};
    static const char *enr_fields[] = {"conversation_id", "channel", "account",
                                       "message_event_id"};
    if (command || enriched) {
        const char **f = command ? cmd_fields : enr_fields;
        for (size_t i = 0; i < 4; i++)
            if (!json_string_value(json_object_get(data, f[i]))) {
                oh_errf(err, errlen, "%s data lacks \"%s\"", command ? "command" : "enriched",
                        f[i]);
                return OH_EINVAL;
            }
    }
    for (size_t i = 0; !command && !enriched && i < OH_ARRAY_SIZE(fields); i++)
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
    if (oh_grow(&l->ev, &l->cap, l->n + 1, sizeof *l->ev, 4)) {
        json_decref(ev);
        return OH_ENOMEM;
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

json_t *oh_status_event(const json_t *outbound, const char *state, const char *provider_id,
                        const char *error_code, const char *error)
{
    const json_t *od = oh_event_data(outbound);
    const char *channel = json_string_value(json_object_get(od, "channel"));
    const char *account = json_string_value(json_object_get(od, "account"));
    const char *msgid = json_string_value(json_object_get(od, "message_id"));
    char id[OH_ID_MAX];
    oh_event_id(id, channel, account, msgid, "status", state, (const char *)NULL);
    json_t *status = json_pack("{s:s, s:s}", "message_id", msgid, "state", state);
    if (provider_id && *provider_id)
        json_object_set_new(status, "provider_message_id", json_string(provider_id));
    if (error_code || error)
        json_object_set_new(status, "error",
                            json_pack("{s:s, s:s}", "code", error_code ? error_code : "", "message",
                                      error ? error : ""));
    json_t *data =
        json_pack("{s:O, s:O, s:O, s:s, s:O, s:s, s:s, s:o, s:{s:s, s:s}}", "conversation_id",
                  json_object_get(od, "conversation_id"), "channel", json_object_get(od, "channel"),
                  "account", json_object_get(od, "account"), "direction", "outbound", "contact",
                  json_object_get(od, "contact"), "message_id", msgid, "kind",
                  json_string_value(json_object_get(od, "kind"))
                      ? json_string_value(json_object_get(od, "kind"))
                      : "text",
                  "status", status, "author", "kind", "system", "id", "omnihub");
    return oh_event_new(OH_EV_STATUS, id, 0, data);
}
