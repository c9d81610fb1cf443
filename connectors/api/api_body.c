/* api_body.c - one pass over the usual POST /v1/inbound body: its string
 * members copied (unescaped) into one buffer, where json_loadb built a tree
 * of allocations to be read and freed again (36k of the gateway thread's
 * 201k instructions per message; docs/performance.md, issue 21). Only what
 * it is sure of: every other body goes to jansson, the parser of record.
 * tests/fuzz/fuzz_api_body.c checks both give the same. */
#include <stdlib.h>
#include <string.h>
#include "connectors/api/api_body.h"

struct scan {
    const char *p, *end;
    char *o; /* next free byte of the output buffer */
};

static void skip_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static bool eat(struct scan *s, char c)
{
    skip_ws(s);
    if (s->p == s->end || *s->p != c) return false;
    s->p++;
    return true;
}

/* A string at the cursor, unescaped into the output (NUL-terminated);
 * false for anything jansson should judge. */
static bool string(struct scan *s, const char **val, size_t *len)
{
    if (!eat(s, '"')) return false;
    char *start = s->o, *o = s->o;
    for (;;) {
        const char *p = s->p;
        while (p < s->end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
            p++;
        memcpy(o, s->p, (size_t)(p - s->p));
        o += p - s->p;
        s->p = p;
        if (p == s->end || (unsigned char)*p < 0x20) return false;
        s->p++;
        if (*p == '"') break;
        if (s->p == s->end) return false;
        switch (*s->p++) { /* \u (and NUL, surrogates): jansson's */
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        default: return false;
        }
    }
    /* escapes make ASCII only, so the raw bytes were UTF-8 exactly when
     * these are; no NUL can be among them */
    if (!oh_utf8_valid(start, (size_t)(o - start))) return false;
    *o++ = '\0';
    *val = start;
    *len = (size_t)(o - start) - 1;
    s->o = o;
    return true;
}

/* The field a key names; -1 for any other. */
static int field_of(const char *key, size_t n, bool in_contact)
{
    static const char *const top[] = {[API_CHANNEL] = "channel",
                                      [API_ACCOUNT] = "account",
                                      [API_MESSAGE_ID] = "message_id",
                                      [API_TEXT] = "text",
                                      [API_SENT_AT] = "sent_at"};
    if (in_contact) {
        if (n == 2 && memcmp(key, "id", 2) == 0) return API_CONTACT_ID;
        if (n == 4 && memcmp(key, "name", 4) == 0) return API_CONTACT_NAME;
        return -1;
    }
    for (int i = 0; i < (int)OH_ARRAY_SIZE(top); i++)
        if (strlen(top[i]) == n && memcmp(key, top[i], n) == 0) return i;
    return -1;
}

/* The members of an object at the cursor (after its '{'), into OUT. */
static bool members(struct scan *s, struct api_body *out, bool in_contact)
{
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return true;
    }
    for (;;) {
        const char *key;
        size_t klen;
        if (!string(s, &key, &klen) || !eat(s, ':')) return false;
        skip_ws(s);
        if (!in_contact && klen == 7 && memcmp(key, "contact", 7) == 0) {
            if (out->contact || !eat(s, '{')) return false; /* repeated, or not an object */
            out->contact = true;
            if (!members(s, out, true)) return false;
        } else {
            int f = field_of(key, klen, in_contact);
            /* a repeated member: JSON_REJECT_DUPLICATES refuses the body */
            if (f < 0 || out->s[f] || !string(s, &out->s[f], &out->len[f])) return false;
        }
        if (eat(s, '}')) return true;
        if (!eat(s, ',')) return false;
    }
}

bool api_body_scan(const char *body, size_t len, struct api_body *out)
{
    memset(out, 0, sizeof *out);
    /* every string is at most as long unescaped, plus its NUL; keys are
     * written too (then reused) */
    if (len > SIZE_MAX / 2 || !(out->buf = malloc(len + 1))) return false;
    struct scan s = {body, body + len, out->buf};
    if (!eat(&s, '{') || !members(&s, out, false)) {
        api_body_free(out);
        return false;
    }
    skip_ws(&s);
    if (s.p != s.end) { /* json_loadb wants nothing but space after the value */
        api_body_free(out);
        return false;
    }
    return true;
}

void api_body_free(struct api_body *b)
{
    if (!b) return;
    free(b->buf);
    memset(b, 0, sizeof *b);
}
