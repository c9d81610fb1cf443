/* oh.h - error codes, structured logging and small macros shared by every
 * part of omnihub. Everything public is prefixed oh_ / OH_. */
#ifndef OH_H
#define OH_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define OH_VERSION "0.1.0"

/* Return codes: 0 is success, failures are negative. */
enum {
    OH_OK = 0,
    OH_EINVAL = -1,    /* malformed input */
    OH_ENOMEM = -2,    /* allocation failed */
    OH_EIO = -3,       /* storage or network failure */
    OH_ENOTFOUND = -4, /* no such object */
    OH_EDUP = -5,      /* already present (idempotent repeat) */
    OH_EAUTH = -6,     /* bad or missing signature / token */
    OH_EFORBIDDEN = -7,
    OH_ETOOBIG = -8,  /* over a size bound */
    OH_EUNAVAIL = -9, /* backend not ready, try later */
    OH_ERETRY = -10,  /* transient failure, retry with backoff */
    OH_ECLOSED = -11, /* handle is shutting down */
    OH_ETIMEOUT = -12,
    OH_EDAMAGED = -13, /* stored bytes fail their checksum */
};

/* Static text for an OH_E* code. */
const char *oh_strerror(int err);

/* Structured logs: one JSON object per line on stderr.
 * Thread-safe; never log secrets. */
enum oh_level { OH_LVL_DEBUG, OH_LVL_INFO, OH_LVL_WARN, OH_LVL_ERROR };
void oh_slog(enum oh_level lvl, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void oh_slog_set_level(enum oh_level lvl);

#define OH_DEBUG(comp, ...) oh_slog(OH_LVL_DEBUG, comp, __VA_ARGS__)
#define OH_INFO(comp, ...)  oh_slog(OH_LVL_INFO, comp, __VA_ARGS__)
#define OH_WARN(comp, ...)  oh_slog(OH_LVL_WARN, comp, __VA_ARGS__)
#define OH_ERROR(comp, ...) oh_slog(OH_LVL_ERROR, comp, __VA_ARGS__)

#define OH_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Copies the URL-decoded value of NAME in query Q ("a=b&c=d", NULL or "" for
 * none) into OUT: OH_OK, OH_ENOTFOUND when absent, OH_ETOOBIG when it does
 * not fit. Pure. */
int oh_query_param(const char *q, const char *name, char *out, size_t len);

/* Milliseconds since the epoch / a monotonic clock. */
int64_t oh_now_ms(void);
int64_t oh_mono_ms(void);
int64_t oh_mono_us(void);

/* FNV-1a (64 bits) of the NUL-terminated S, for in-memory hash tables
 * (never stored: not a stable format). */
uint64_t oh_fnv1a(const char *s);

/* Copies SRC into DST (SIZE > 0 bytes) as snprintf(DST, SIZE, "%s", SRC)
 * does, without parsing a format: at most SIZE - 1 bytes, always terminated.
 * Returns the bytes copied. For the per-request paths, where the format
 * parser was a measurable share (docs/performance.md, issue 21). */
size_t oh_strcpy(char *dst, size_t size, const char *src);

/* Makes the array *ARR (a pointer to the array's pointer), of *CAP
 * elements of SIZE bytes, hold at least NEED: the capacity doubles from
 * FIRST (> 0) until it does. OH_OK, or OH_ENOMEM with the array and *CAP
 * as they were. */
int oh_grow(void *arr, size_t *cap, size_t need, size_t size, size_t first);

/* snprintf into a fixed buffer; never overflows, always terminates. */
void oh_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
