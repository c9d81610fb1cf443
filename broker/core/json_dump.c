/* json_dump.c - compact serialization of jansson values into one growing
 * buffer: runs of plain characters are copied whole, where json_dumps calls
 * back per fragment. The output matches json_dumps(v, JSON_COMPACT). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/json_dump.h"
#include "core/oh.h"

#define MAX_DEPTH 2048

/* Room for MORE bytes and a NUL after them. */
static int reserve(struct oh_json_buf *b, size_t more)
{
    if (b->len + more < b->cap) return 0;
    if (more >= SIZE_MAX - b->len) return -1;
    return oh_grow(&b->p, &b->cap, b->len + more + 1, 1, 512) ? -1 : 0;
}

static int put(struct oh_json_buf *b, const char *s, size_t n)
{
    if (reserve(b, n)) return -1;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

/* 0: copied as is; 1: escaped; 2: first byte of a multi-byte sequence. */
static const unsigned char kind[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

/* Length of the valid UTF-8 sequence at S (at most N bytes), 0 if invalid:
 * no overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* The end of the run of bytes from I copied as they are (kind 0): eight at
 * a time while none of them is below 0x20, '"', '\\' or above 0x7f (the
 * word tests of "Bit Twiddling Hacks": exact for "any byte"), then one by
 * one to where the run stops. */
static size_t plain_run(const unsigned char *s, size_t i, size_t n)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    for (; i + 8 <= n; i += 8) {
        uint64_t w, q, bs;
        memcpy(&w, s + i, 8);
        q = w ^ (ones * '"');
        bs = w ^ (ones * '\\');
        if ((w | ((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((bs - ones) & ~bs)) & highs) break;
    }
    while (i < n && kind[s[i]] == 0)
        i++;
    return i;
}

static int put_string(struct oh_json_buf *b, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    /* worst case: every byte becomes \u00XX */
    if (n > (SIZE_MAX - 2) / 6 || reserve(b, n * 6 + 2)) return -1;
    char *o = b->p + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n;) {
        size_t run = plain_run(s, i, n);
        memcpy(o, s + i, run - i);
        o += run - i;
        i = run;
        if (i == n) break;
        unsigned c = s[i];
        if (kind[c] == 2) {
            size_t len = utf8_seq(s + i, n - i);
            if (!len) return -1;
            memcpy(o, s + i, len);
            o += len;
            i += len;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default: /* the other control characters, as jansson writes them */
            memcpy(o, "u00", 3);
            o[3] = "0123456789ABCDEF"[c >> 4];
            o[4] = "0123456789ABCDEF"[c & 15];
            o += 5;
            break;
        }
        i++;
    }
    *o++ = '"';
    b->len = (size_t)(o - b->p);
    return 0;
}

int oh_json_buf_put(struct oh_json_buf *b, const char *s, size_t n)
{
    return put(b, s, n);
}

int oh_json_buf_string(struct oh_json_buf *b, const char *s, size_t n)
{
    return put_string(b, s, n);
}

/* Decimal, as "%" JSON_INTEGER_FORMAT writes it, without printf's format
 * parser. */
int oh_json_buf_int(struct oh_json_buf *b, int64_t v)
{
    char num[24], *o = num + sizeof num;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--o = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--o = '-';
    return put(b, o, (size_t)(num + sizeof num - o));
}

static int put_value(struct oh_json_buf *b, const json_t *v, int depth)
{
    if (depth > MAX_DEPTH) return -1;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        if (put(b, "{", 1)) return -1;
        bool first = true;
        for (void *it = json_object_iter((json_t *)v); it;
             it = json_object_iter_next((json_t *)v, it)) {
            if (!first && put(b, ",", 1)) return -1;
            first = false;
            if (put_string(b, json_object_iter_key(it), json_object_iter_key_len(it)) ||
                put(b, ":", 1) || put_value(b, json_object_iter_value(it), depth + 1))
                return -1;
        }
        return put(b, "}", 1);
    }
    case JSON_ARRAY: {
        if (put(b, "[", 1)) return -1;
        for (size_t i = 0; i < json_array_size(v); i++)
            if ((i && put(b, ",", 1)) || put_value(b, json_array_get(v, i), depth + 1)) return -1;
        return put(b, "]", 1);
    }
    case JSON_STRING: return put_string(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER: return oh_json_buf_int(b, json_integer_value(v));
    case JSON_REAL: {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        int rc = s ? put(b, s, strlen(s)) : -1;
        free(s);
        return rc;
    }
    case JSON_TRUE: return put(b, "true", 4);
    case JSON_FALSE: return put(b, "false", 5);
    case JSON_NULL: return put(b, "null", 4);
    }
    return -1;
}

char *oh_json_dump(const json_t *v, size_t *len)
{
    struct oh_json_buf b = {0};
    if (!v || !(json_is_object(v) || json_is_array(v)) || put_value(&b, v, 0) || put(&b, "", 1)) {
        free(b.p);
        return NULL;
    }
    if (len) *len = b.len - 1;
    return b.p;
}

int oh_json_array_sort(json_t *arr, int (*cmp)(const void *, const void *))
{
    size_t n = json_array_size(arr);
    if (n < 2) return OH_OK;
    json_t **v = malloc(n * sizeof *v);
    if (!v) return OH_ENOMEM;
    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(arr, i));
    qsort(v, n, sizeof *v, cmp);
    json_array_clear(arr);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, v[i]);
    free(v);
    return OH_OK;
}
