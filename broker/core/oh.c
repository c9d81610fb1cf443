/* oh.c - error strings, structured JSON logging and clocks. */
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/oh.h"

const char *oh_strerror(int err)
{
    switch (err) {
    case OH_OK: return "ok";
    case OH_EINVAL: return "invalid input";
    case OH_ENOMEM: return "out of memory";
    case OH_EIO: return "i/o error";
    case OH_ENOTFOUND: return "not found";
    case OH_EDUP: return "duplicate";
    case OH_EAUTH: return "unauthorized";
    case OH_EFORBIDDEN: return "forbidden";
    case OH_ETOOBIG: return "too large";
    case OH_EUNAVAIL: return "unavailable";
    case OH_ERETRY: return "temporary failure";
    case OH_ECLOSED: return "closed";
    case OH_ETIMEOUT: return "timed out";
    case OH_EDAMAGED: return "stored data damaged (checksum mismatch)";
    default: return "unknown error";
    }
}

static enum oh_level min_level = OH_LVL_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void oh_slog_set_level(enum oh_level lvl)
{
    min_level = lvl;
}

/* Appends S to OUT as a JSON string body (no quotes), escaping as needed. */
static size_t json_escape(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
    return o;
}

void oh_slog(enum oh_level lvl, const char *component, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (lvl < min_level) return;
    char msg[2048], esc[4200], ts[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_escape(esc, sizeof esc, msg);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03ldZ", now.tv_nsec / 1000000);
    pthread_mutex_lock(&log_lock);
    fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":\"%s\",\"msg\":\"%s\"}\n", ts,
            names[lvl], component, esc);
    pthread_mutex_unlock(&log_lock);
}

int64_t oh_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t oh_mono_ms(void)
{
    return oh_mono_us() / 1000;
}

int64_t oh_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void oh_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int hex(int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

size_t oh_strcpy(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
    return n;
}

int oh_grow(void *arr, size_t *cap, size_t need, size_t size, size_t first)
{
    if (need <= *cap) return OH_OK;
    size_t n = *cap ? *cap : first;
    while (n < need) {
        if (n > SIZE_MAX / 2) return OH_ENOMEM;
        n *= 2;
    }
    if (n > SIZE_MAX / size) return OH_ENOMEM;
    void *old, *p;
    memcpy(&old, arr, sizeof old); /* ARR is a T **: read and written as bytes */
    if (!(p = realloc(old, n * size))) return OH_ENOMEM;
    memcpy(arr, &p, sizeof p);
    *cap = n;
    return OH_OK;
}

int oh_query_param(const char *q, const char *name, char *out, size_t len)
{
    size_t n = strlen(name);
    for (const char *p = q; p && *p; p = strchr(p, '&'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, n) != 0 || p[n] != '=') continue;
        size_t o = 0;
        for (const char *v = p + n + 1; *v && *v != '&'; v++) {
            char c = *v;
            if (c == '+')
                c = ' ';
            else if (c == '%' && hex(v[1]) >= 0 && hex(v[2]) >= 0) {
                c = (char)(hex(v[1]) << 4 | hex(v[2]));
                v += 2;
            }
            if (o + 1 >= len) return OH_ETOOBIG;
            out[o++] = c;
        }
        out[o] = '\0';
        return OH_OK;
    }
    return OH_ENOTFOUND;
}

uint64_t oh_fnv1a(const char *s)
{
    uint64_t h = 14695981039346656037ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}
